//! A streaming parser of pg_dump's plain (SQL script) format.
//!
//! [`DumpParser`] reads any [`BufRead`] (the decompressed member stream, possibly many GB)
//! line by line with flat memory and yields [`Item`]s: SQL statements, `COPY ... FROM stdin`
//! headers and the psql meta-commands pg_dump emits. After an [`Item::Copy`] the caller pulls
//! the table's rows with [`DumpParser::read_copy_chunk`] in large chunks split at row
//! boundaries, without allocating per row; calling [`DumpParser::next_item`] first skips the
//! rest of the block.
//!
//! Statements are split the way psql's lexer splits them: a `;` ends a statement only
//! outside string literals (`'...'` with `''`, `E'...'` with backslash escapes), quoted
//! identifiers (`"a;b"`), dollar quoting (`$$`, `$fn$`), `--` comments and nested `/* */`
//! comments. pg_dump writes `SET standard_conforming_strings = on`, which this lexer assumes.

use std::io::{BufRead, Read};
use std::sync::Arc;

use serde::Serialize;

use super::classify::{parse_copy_header, QualifiedName};
use super::toc::TocHeader;

/// Where an item starts in the (decompressed) dump: 1-based line and 0-based byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Position {
    pub line: u64,
    pub offset: u64,
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {} (byte {})", self.line, self.offset)
    }
}

/// One SQL statement, text from its first significant character through its `;`.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub sql: String,
    /// The last TOC header seen before the statement (a hint, see [`TocHeader`]).
    pub toc: Option<Arc<TocHeader>>,
    pub at: Position,
}

/// A `COPY table (cols) FROM stdin;` statement; its rows follow.
#[derive(Debug, Clone, PartialEq)]
pub struct CopyHeader {
    /// The statement as written in the dump.
    pub sql: String,
    /// The table, parsed from the statement itself.
    pub table: QualifiedName,
    pub toc: Option<Arc<TocHeader>>,
    pub at: Position,
}

/// psql meta-commands that pg_dump writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaCommand {
    /// `\connect ARGS` (`pg_dump -C`, or a change of user with old dumps).
    Connect { args: String },
    /// `\restrict KEY` (pg_dump 13.22/14.19/15.14/16.10/17.6 and later).
    Restrict { key: String },
    /// `\unrestrict KEY`.
    Unrestrict { key: String },
}

/// What the dump contains next.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Statement(Statement),
    Copy(CopyHeader),
    Meta { command: MetaCommand, at: Position },
}

/// Result of one [`DumpParser::read_copy_chunk`] call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyChunk {
    /// Rows appended to the buffer by this call.
    pub rows: u64,
    /// `true` when the `\.` terminator was read: the block is complete.
    pub done: bool,
}

/// Errors reading a plain dump. Positions are in the decompressed stream.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("reading the dump at {at} failed: {source}")]
    Io {
        at: Position,
        #[source]
        source: std::io::Error,
    },
    #[error("the dump ends inside the data of `COPY {table}` (started at {start}, {rows} rows read, stream ended at {at}): the dump is truncated or its decompression failed; use a complete backup")]
    TruncatedCopy {
        table: String,
        start: Position,
        rows: u64,
        at: Position,
    },
    #[error("the dump ends inside a statement started at {start} (`{excerpt}`): the dump is truncated or its decompression failed; use a complete backup")]
    TruncatedStatement { start: Position, excerpt: String },
    #[error("unsupported psql meta-command `{line}` at {at}: Rewind understands only the `\\connect`, `\\restrict` and `\\unrestrict` that pg_dump writes; restore this script with psql")]
    UnsupportedMeta { line: String, at: Position },
    #[error("psql meta-command `{line}` at {at} while the script is restricted by `\\restrict` (only `\\unrestrict` with the same key is allowed): the dump has been tampered with or is not a pg_dump script")]
    Restricted { line: String, at: Position },
    #[error("the statement at {at} is not valid UTF-8: Rewind restores UTF8 dumps (`SET client_encoding = 'UTF8'`) only")]
    Encoding { at: Position },
    #[error("the statement at {at} is larger than {limit} bytes (`{excerpt}`): pg_dump writes no such statement; the dump is damaged or not a pg_dump script, so Rewind refuses it before anything is changed")]
    StatementTooLarge {
        at: Position,
        limit: usize,
        excerpt: String,
    },
    #[error("`COPY ... PROGRAM` at {at} (`{excerpt}`): pg_dump never writes it and it would run a program on the database server; Rewind refuses this dump before anything is changed")]
    CopyProgram { at: Position, excerpt: String },
    #[error("cannot understand the COPY statement at {at} (`{excerpt}`): {detail}")]
    BadCopy {
        at: Position,
        excerpt: String,
        detail: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Lex {
    Normal,
    Single { escapes: bool },
    Double,
    Dollar(Vec<u8>),
    Block(u32),
}

/// Lexer state carried across the lines of one statement.
struct Lexer {
    state: Lex,
    prev: u8,
    prev2: u8,
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

/// Length of a dollar-quote delimiter (`$$`, `$tag$`) at the start of `s`.
fn dollar_tag(s: &[u8]) -> Option<usize> {
    debug_assert_eq!(s.first(), Some(&b'$'));
    let mut i = 1;
    while i < s.len() {
        let b = s[i];
        if b == b'$' {
            return Some(i + 1);
        }
        let ok = if i == 1 {
            b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
        } else {
            b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
        };
        if !ok {
            return None;
        }
        i += 1;
    }
    None
}

impl Lexer {
    fn new() -> Self {
        Lexer {
            state: Lex::Normal,
            prev: b' ',
            prev2: b' ',
        }
    }

    /// Scan `s`; returns the index of the `;` that ends the statement, if any.
    fn scan(&mut self, s: &[u8]) -> Option<usize> {
        let n = s.len();
        let mut i = 0;
        while i < n {
            let c = s[i];
            let next = s.get(i + 1).copied();
            match &mut self.state {
                Lex::Normal => match c {
                    b';' => return Some(i),
                    b'\'' => {
                        let escapes =
                            matches!(self.prev, b'E' | b'e') && !is_ident_byte(self.prev2);
                        self.state = Lex::Single { escapes };
                    }
                    b'"' => self.state = Lex::Double,
                    b'-' if next == Some(b'-') => {
                        // A line comment runs to the end of the line.
                        let end = s[i..].iter().position(|&b| b == b'\n').map(|p| i + p);
                        match end {
                            Some(e) => i = e,
                            None => return None,
                        }
                    }
                    b'/' if next == Some(b'*') => {
                        self.state = Lex::Block(1);
                        i += 1;
                    }
                    b'$' if !is_ident_byte(self.prev) => {
                        if let Some(len) = dollar_tag(&s[i..]) {
                            self.state = Lex::Dollar(s[i..i + len].to_vec());
                            i += len - 1;
                        }
                    }
                    _ => {}
                },
                Lex::Single { escapes } => {
                    if *escapes && c == b'\\' {
                        i += 1;
                    } else if c == b'\'' {
                        if next == Some(b'\'') {
                            i += 1;
                        } else {
                            self.state = Lex::Normal;
                        }
                    }
                }
                Lex::Double => {
                    if c == b'"' {
                        if next == Some(b'"') {
                            i += 1;
                        } else {
                            self.state = Lex::Normal;
                        }
                    }
                }
                Lex::Dollar(tag) => {
                    if c == b'$' && s[i..].starts_with(tag) {
                        i += tag.len() - 1;
                        self.state = Lex::Normal;
                    }
                }
                Lex::Block(depth) => {
                    if c == b'/' && next == Some(b'*') {
                        *depth += 1;
                        i += 1;
                    } else if c == b'*' && next == Some(b'/') {
                        *depth -= 1;
                        i += 1;
                        if *depth == 0 {
                            self.state = Lex::Normal;
                        }
                    }
                }
            }
            // Remember the last two bytes (for `E'` and identifier-adjacent `$`).
            let j = i.min(n - 1);
            self.prev2 = if j >= 1 { s[j - 1] } else { self.prev };
            self.prev = s[j];
            i += 1;
        }
        None
    }
}

struct CopyState {
    table: String,
    start: Position,
    rows: u64,
}

/// The streaming parser. See the module documentation.
pub struct DumpParser<R> {
    reader: R,
    /// Lines fully consumed so far.
    line_no: u64,
    /// Bytes consumed so far.
    offset: u64,
    toc: Option<Arc<TocHeader>>,
    copy: Option<CopyState>,
    line: Vec<u8>,
    /// Rest of a line after a `;` (another statement on the same line), with its position.
    pending: Option<(Vec<u8>, Position)>,
    restrict_key: Option<String>,
}

const EXCERPT: usize = 120;

/// The largest statement (outside COPY data) Rewind reads: pg_dump's statements are small
/// (the largest are function bodies and views), so a larger one is a damaged or crafted
/// script, refused in the first, read-only pass instead of being buffered in memory.
pub const MAX_STATEMENT_BYTES: usize = 256 << 20;

fn excerpt(sql: &[u8]) -> String {
    let s = String::from_utf8_lossy(sql);
    let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.chars().count() > EXCERPT {
        let mut e: String = s.chars().take(EXCERPT).collect();
        e.push_str("...");
        e
    } else {
        s
    }
}

/// `COPY ... FROM PROGRAM` / `TO PROGRAM`: runs a program on the server; pg_dump never
/// writes it.
fn is_copy_program(sql: &str) -> bool {
    let mut words = sql.split(|c: char| c.is_whitespace() || c == '(' || c == ';');
    words
        .by_ref()
        .find(|w| !w.is_empty())
        .is_some_and(|w| w.eq_ignore_ascii_case("COPY"))
        && words.any(|w| w.eq_ignore_ascii_case("PROGRAM"))
}

impl<R: BufRead> DumpParser<R> {
    pub fn new(reader: R) -> Self {
        DumpParser {
            reader,
            line_no: 0,
            offset: 0,
            toc: None,
            copy: None,
            line: Vec::with_capacity(8192),
            pending: None,
            restrict_key: None,
        }
    }

    /// Bytes of the (decompressed) dump consumed so far.
    pub fn bytes_read(&self) -> u64 {
        self.offset
    }

    /// Position of the next unread byte.
    pub fn position(&self) -> Position {
        Position {
            line: self.line_no + 1,
            offset: self.offset,
        }
    }

    /// The TOC header currently in force.
    pub fn current_toc(&self) -> Option<&Arc<TocHeader>> {
        self.toc.as_ref()
    }

    /// Read the next line into `self.line`; returns its start position, or `None` at EOF.
    fn read_line(&mut self) -> Result<Option<Position>, ParseError> {
        self.line.clear();
        let at = self.position();
        let n = (&mut self.reader)
            .take(MAX_STATEMENT_BYTES as u64 + 1)
            .read_until(b'\n', &mut self.line)
            .map_err(|source| ParseError::Io { at, source })?;
        if n == 0 {
            return Ok(None);
        }
        if n > MAX_STATEMENT_BYTES {
            return Err(ParseError::StatementTooLarge {
                at,
                limit: MAX_STATEMENT_BYTES,
                excerpt: excerpt(&self.line[..self.line.len().min(200)]),
            });
        }
        self.offset += n as u64;
        self.line_no += 1;
        Ok(Some(at))
    }

    /// The next item, or `None` at the clean end of the dump.
    pub fn next_item(&mut self) -> Result<Option<Item>, ParseError> {
        if self.copy.is_some() {
            self.skip_copy()?;
        }
        let mut sql: Vec<u8> = Vec::new();
        let mut start: Option<Position> = None;
        let mut lexer = Lexer::new();
        loop {
            let (seg, seg_at) = match self.pending.take() {
                Some((p, at)) => (p, at),
                None => match self.read_line()? {
                    Some(at) => (std::mem::take(&mut self.line), at),
                    None => {
                        if start.is_some() && sql.iter().any(|b| !b.is_ascii_whitespace()) {
                            return Err(ParseError::TruncatedStatement {
                                start: start.unwrap_or_default(),
                                excerpt: excerpt(&sql),
                            });
                        }
                        return Ok(None);
                    }
                },
            };
            let mut body: &[u8] = &seg;
            let mut body_at = seg_at;
            if start.is_none() {
                let ws = seg
                    .iter()
                    .position(|b| !b.is_ascii_whitespace())
                    .unwrap_or(seg.len());
                body = &seg[ws..];
                body_at.offset += ws as u64;
                if body.is_empty() {
                    self.recycle(seg);
                    continue;
                }
                if body.starts_with(b"--") {
                    if let Ok(text) = std::str::from_utf8(body) {
                        if let Some(h) = TocHeader::parse(text) {
                            self.toc = Some(Arc::new(h));
                        }
                    }
                    self.recycle(seg);
                    continue;
                }
                if body.starts_with(b"\\") {
                    let item = self.meta_command(body, body_at)?;
                    self.recycle(seg);
                    return Ok(Some(item));
                }
                start = Some(body_at);
            }
            match lexer.scan(body) {
                Some(end) => {
                    sql.extend_from_slice(&body[..=end]);
                    let rest = &body[end + 1..];
                    if rest.iter().any(|b| !b.is_ascii_whitespace()) {
                        let mut at = body_at;
                        at.offset += (end + 1) as u64;
                        self.pending = Some((rest.to_vec(), at));
                    }
                    self.recycle(seg);
                    let at = start.unwrap_or_default();
                    return self.finish_statement(sql, at).map(Some);
                }
                None => {
                    if sql.len() + body.len() > MAX_STATEMENT_BYTES {
                        return Err(ParseError::StatementTooLarge {
                            at: start.unwrap_or_default(),
                            limit: MAX_STATEMENT_BYTES,
                            excerpt: excerpt(&sql[..sql.len().min(200)]),
                        });
                    }
                    sql.extend_from_slice(body);
                    self.recycle(seg);
                }
            }
        }
    }

    fn recycle(&mut self, seg: Vec<u8>) {
        if seg.capacity() > self.line.capacity() {
            self.line = seg;
        }
    }

    fn finish_statement(&mut self, sql: Vec<u8>, at: Position) -> Result<Item, ParseError> {
        let sql = String::from_utf8(sql).map_err(|_| ParseError::Encoding { at })?;
        if is_copy_from_stdin(&sql) {
            let table = parse_copy_header(&sql).map_err(|detail| ParseError::BadCopy {
                at,
                excerpt: excerpt(sql.as_bytes()),
                detail,
            })?;
            if let Some((rest, _)) = &self.pending {
                if rest.iter().any(|b| !b.is_ascii_whitespace()) {
                    return Err(ParseError::BadCopy {
                        at,
                        excerpt: excerpt(sql.as_bytes()),
                        detail: "text follows the statement on its line, where its data should start on the next line".into(),
                    });
                }
            }
            self.copy = Some(CopyState {
                table: table.to_string(),
                start: at,
                rows: 0,
            });
            return Ok(Item::Copy(CopyHeader {
                sql,
                table,
                toc: self.toc.clone(),
                at,
            }));
        }
        if is_copy_program(&sql) {
            return Err(ParseError::CopyProgram {
                at,
                excerpt: excerpt(sql.as_bytes()),
            });
        }
        Ok(Item::Statement(Statement {
            sql,
            toc: self.toc.clone(),
            at,
        }))
    }

    fn meta_command(&mut self, body: &[u8], at: Position) -> Result<Item, ParseError> {
        let text = String::from_utf8_lossy(body).trim_end().to_string();
        let mut words = text[1..].splitn(2, char::is_whitespace);
        let cmd = words.next().unwrap_or("");
        let args = words.next().unwrap_or("").trim().to_string();
        if let Some(key) = &self.restrict_key {
            if cmd == "unrestrict" && args == *key {
                self.restrict_key = None;
                return Ok(Item::Meta {
                    command: MetaCommand::Unrestrict { key: args },
                    at,
                });
            }
            return Err(ParseError::Restricted { line: text, at });
        }
        let command = match cmd {
            "connect" | "c" => MetaCommand::Connect { args },
            "restrict" if !args.is_empty() => {
                self.restrict_key = Some(args.clone());
                MetaCommand::Restrict { key: args }
            }
            "unrestrict" => MetaCommand::Unrestrict { key: args },
            _ => return Err(ParseError::UnsupportedMeta { line: text, at }),
        };
        Ok(Item::Meta { command, at })
    }

    /// Append rows of the current COPY block to `buf` until it holds at least `target`
    /// bytes or the block ends. Rows are appended whole, with their line ends, exactly as
    /// in the dump (COPY text format); the `\.` terminator is consumed, never appended.
    ///
    /// Calling this outside a COPY block returns `done` at once.
    pub fn read_copy_chunk(
        &mut self,
        buf: &mut Vec<u8>,
        target: usize,
    ) -> Result<CopyChunk, ParseError> {
        let mut rows = 0;
        if self.copy.is_none() {
            return Ok(CopyChunk { rows, done: true });
        }
        while buf.len() < target {
            let start = buf.len();
            let at = self.position();
            let n = self
                .reader
                .read_until(b'\n', buf)
                .map_err(|source| ParseError::Io { at, source })?;
            let line = &buf[start..];
            let complete = line.last() == Some(&b'\n');
            if n == 0 || (!complete && line != b"\\.") {
                let st = self.copy.take().map(|c| (c.table, c.start, c.rows));
                let (table, start, prev) = st.unwrap_or_default();
                return Err(ParseError::TruncatedCopy {
                    table,
                    start,
                    rows: prev,
                    at: Position {
                        line: self.line_no + 1,
                        offset: self.offset + n as u64,
                    },
                });
            }
            self.offset += n as u64;
            self.line_no += 1;
            if line == b"\\.\n" || line == b"\\.\r\n" || line == b"\\." {
                buf.truncate(start);
                self.copy = None;
                return Ok(CopyChunk { rows, done: true });
            }
            rows += 1;
            if let Some(c) = self.copy.as_mut() {
                c.rows += 1;
            }
        }
        Ok(CopyChunk { rows, done: false })
    }

    /// Skip the rest of the current COPY block.
    fn skip_copy(&mut self) -> Result<(), ParseError> {
        let mut buf = Vec::with_capacity(64 * 1024);
        loop {
            buf.clear();
            if self.read_copy_chunk(&mut buf, 64 * 1024)?.done {
                return Ok(());
            }
        }
    }
}

/// `COPY ... FROM stdin;` (as pg_dump writes it), case-insensitively.
fn is_copy_from_stdin(sql: &str) -> bool {
    let head = sql.get(..4).unwrap_or("");
    if !head.eq_ignore_ascii_case("copy") {
        return false;
    }
    let t = sql.trim_end_matches(|c: char| c == ';' || c.is_whitespace());
    let tail_start = t.len().saturating_sub(10);
    t.get(tail_start..)
        .is_some_and(|tail| tail.eq_ignore_ascii_case("FROM stdin"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(text: &str) -> Vec<Item> {
        let mut p = DumpParser::new(text.as_bytes());
        let mut out = Vec::new();
        while let Some(i) = p.next_item().unwrap() {
            out.push(i);
        }
        out
    }

    fn sqls(text: &str) -> Vec<String> {
        items(text)
            .into_iter()
            .map(|i| match i {
                Item::Statement(s) => s.sql,
                Item::Copy(c) => c.sql,
                Item::Meta { command, .. } => format!("{command:?}"),
            })
            .collect()
    }

    #[test]
    fn splits_across_quoting_and_comments() {
        let text = "SET a = 1; SET b = 'x;y';\n\
            CREATE FUNCTION f() RETURNS text AS $fn$ select ';'; $$ inner; $$ $fn$ LANGUAGE sql;\n\
            CREATE FUNCTION g() RETURNS int\n    LANGUAGE plpgsql\n    AS $$\nBEGIN\n  RETURN 1; -- ;\nEND;\n$$;\n\
            SELECT 'it''s; fine', E'esc\\'; still', \"q;\"\"x\" FROM t; -- trailing; comment\n\
            /* outer /* nested ; */ still ; */ SELECT 2;\n\
            SELECT a$b$c FROM t;\n\
            SELECT $1;\n";
        let s = sqls(text);
        assert_eq!(s.len(), 8, "{s:#?}");
        assert_eq!(s[0], "SET a = 1;");
        assert_eq!(s[1], "SET b = 'x;y';");
        assert!(s[2].ends_with("$fn$ LANGUAGE sql;"));
        assert!(s[3].starts_with("CREATE FUNCTION g()") && s[3].ends_with("$$;"));
        assert!(s[4].ends_with("FROM t;"));
        assert!(s[5].starts_with("/* outer") && s[5].ends_with("SELECT 2;"));
        assert_eq!(s[6], "SELECT a$b$c FROM t;");
        assert_eq!(s[7], "SELECT $1;");
    }

    #[test]
    fn toc_headers_are_attached() {
        let text = "--\n-- Name: a; b; Type: TABLE; Schema: public; Owner: gitlab\n--\n\n\
            CREATE TABLE public.\"a; b\" (id int);\n";
        let it = items(text);
        let Item::Statement(s) = &it[0] else {
            panic!("{it:?}")
        };
        let toc = s.toc.as_ref().unwrap();
        assert_eq!(toc.name, "a; b");
        assert_eq!(s.at.line, 5);
        assert_eq!(s.at.offset, text.find("CREATE").unwrap() as u64);
    }

    #[test]
    fn copy_blocks_stream_rows() {
        let text =
            "COPY public.t (a, b) FROM stdin;\n1\t\\\\.\n2\t\\N\n\\\\.\n3\tx\\ty\n\\.\nSELECT 1;\n";
        let mut p = DumpParser::new(text.as_bytes());
        let Some(Item::Copy(h)) = p.next_item().unwrap() else {
            panic!()
        };
        assert_eq!(h.table, QualifiedName::new(Some("public"), "t"));
        let mut buf = Vec::new();
        let mut rows = 0;
        let mut calls = 0;
        loop {
            let mut chunk = Vec::new();
            let c = p.read_copy_chunk(&mut chunk, 4).unwrap();
            buf.extend_from_slice(&chunk);
            rows += c.rows;
            calls += 1;
            if c.done {
                break;
            }
        }
        assert!(
            calls >= 4,
            "chunks are cut at row boundaries near the target size"
        );
        assert_eq!(rows, 4);
        assert_eq!(buf, b"1\t\\\\.\n2\t\\N\n\\\\.\n3\tx\\ty\n");
        let Some(Item::Statement(s)) = p.next_item().unwrap() else {
            panic!()
        };
        assert_eq!(s.sql, "SELECT 1;");
        assert!(p.next_item().unwrap().is_none());
    }

    #[test]
    fn unread_copy_data_is_skipped() {
        let text = "COPY t FROM stdin;\na\nb\n\\.\nCOPY u FROM stdin;\n\\.\n";
        let s = sqls(text);
        assert_eq!(s, vec!["COPY t FROM stdin;", "COPY u FROM stdin;"]);
    }

    #[test]
    fn truncation_is_an_error() {
        let mut p = DumpParser::new(&b"COPY t FROM stdin;\na\nb"[..]);
        p.next_item().unwrap();
        let mut buf = Vec::new();
        let e = p.read_copy_chunk(&mut buf, 1 << 20).unwrap_err();
        assert!(
            matches!(e, ParseError::TruncatedCopy { rows: 1, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("COPY t"), "{e}");

        let mut p = DumpParser::new(&b"COPY t FROM stdin;\na\n"[..]);
        p.next_item().unwrap();
        assert!(matches!(
            p.next_item(),
            Err(ParseError::TruncatedCopy { .. })
        ));

        let mut p = DumpParser::new(&b"SELECT 1;\nCREATE FUNCTION f() AS $$ x;\n"[..]);
        p.next_item().unwrap();
        let e = p.next_item().unwrap_err();
        assert!(
            matches!(e, ParseError::TruncatedStatement { start, .. } if start.line == 2),
            "{e}"
        );
        // Comments and blank lines at the end are fine.
        assert_eq!(
            sqls("SELECT 1;\n--\n-- PostgreSQL database dump complete\n--\n\n").len(),
            1
        );
    }

    #[test]
    fn meta_commands() {
        let text = "\\restrict abc123\nSET a = 1;\n\\unrestrict abc123\n\\connect gitlab\n";
        let it = items(text);
        assert_eq!(it.len(), 4);
        assert!(
            matches!(&it[0], Item::Meta { command: MetaCommand::Restrict { key }, .. } if key == "abc123")
        );
        assert!(
            matches!(&it[3], Item::Meta { command: MetaCommand::Connect { args }, .. } if args == "gitlab")
        );

        let mut p = DumpParser::new(&b"SELECT 1;\n\\! rm -rf /\n"[..]);
        p.next_item().unwrap();
        let e = p.next_item().unwrap_err();
        assert!(
            matches!(&e, ParseError::UnsupportedMeta { at, .. } if at.line == 2),
            "{e}"
        );

        let mut p = DumpParser::new(&b"\\restrict k\n\\connect other\n"[..]);
        p.next_item().unwrap();
        assert!(matches!(p.next_item(), Err(ParseError::Restricted { .. })));
    }

    #[test]
    fn invalid_utf8_names_position() {
        let mut p = DumpParser::new(&b"SELECT 1;\nSELECT '\xff';\n"[..]);
        p.next_item().unwrap();
        assert!(matches!(p.next_item(), Err(ParseError::Encoding { at }) if at.line == 2));
    }
}

#[cfg(test)]
mod newer_pg_dump_tests {
    use super::*;
    use crate::dump::{classify, Kind};

    /// Shapes pg_dump 17/18 write: `\restrict`, `transaction_timeout`, statistics data.
    #[test]
    fn pg18_script_shapes() {
        let text = "\\restrict Zq3vKx9RrT1aB2cD3eF4gH5iJ6kL7mN8oP9qR0sT1uV2wX3yZ4\n\n\
            SET statement_timeout = 0;\nSET transaction_timeout = 0;\n\
            SELECT pg_catalog.set_config('search_path', '', false);\n\
            --\n-- Name: t; Type: TABLE; Schema: public; Owner: gitlab\n--\n\n\
            CREATE TABLE public.t (\n    id bigint NOT NULL\n);\n\n\
            --\n-- Data for Name: t; Type: TABLE DATA; Schema: public; Owner: gitlab\n--\n\n\
            COPY public.t (id) FROM stdin;\n1\n\\.\n\n\
            --\n-- Statistics for Name: t; Type: STATISTICS DATA; Schema: public; Owner: -\n--\n\n\
            SELECT * FROM pg_catalog.pg_restore_relation_stats(\n\t'version', '180000'::integer,\n\t'schemaname', 'public',\n\t'relname', 't',\n\t'relpages', '1'::integer\n);\n\n\
            \\unrestrict Zq3vKx9RrT1aB2cD3eF4gH5iJ6kL7mN8oP9qR0sT1uV2wX3yZ4\n";
        let mut p = DumpParser::new(text.as_bytes());
        let mut kinds = Vec::new();
        while let Some(item) = p.next_item().unwrap() {
            kinds.push(match item {
                Item::Statement(s) => format!("{:?}", classify(&s.sql, s.toc.as_deref())),
                Item::Copy(c) => format!("copy {}", c.table),
                Item::Meta { command, .. } => format!("{command:?}").chars().take(10).collect(),
            });
        }
        assert_eq!(kinds.len(), 8, "{kinds:#?}");
        assert!(kinds[0].starts_with("Restrict"));
        assert_eq!(
            kinds[2],
            format!(
                "{:?}",
                Kind::Session {
                    key: "transaction_timeout".into()
                }
            )
        );
        assert_eq!(kinds[5], "copy public.t");
        assert_eq!(kinds[6], format!("{:?}", Kind::Other));
        assert!(kinds[7].starts_with("Unrestrict"));
    }
}
