//! What a dump statement does, read from the statement itself (TOC headers only help).
//!
//! A small SQL tokenizer reads the first words of a statement (skipping comments, folding
//! unquoted identifiers to lower case, unescaping quoted ones) so that names containing
//! `;`, spaces or quotes are read correctly.

use std::fmt;

use serde::Serialize;

use super::toc::TocHeader;
use crate::pg::ident::quote_ident;

/// A possibly schema-qualified relation name, as PostgreSQL resolves it (unquoted parts
/// folded to lower case).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct QualifiedName {
    pub schema: Option<String>,
    pub name: String,
}

impl QualifiedName {
    pub fn new(schema: Option<&str>, name: &str) -> Self {
        QualifiedName {
            schema: schema.map(str::to_string),
            name: name.to_string(),
        }
    }

    /// The name quoted for SQL: `"schema"."name"`.
    pub fn quoted(&self) -> String {
        match &self.schema {
            Some(s) => format!("{}.{}", quote_ident(s), quote_ident(&self.name)),
            None => quote_ident(&self.name),
        }
    }
}

impl fmt::Display for QualifiedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.schema {
            Some(s) => write!(f, "{s}.{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    /// Unquoted word, as written.
    Word(String),
    /// Quoted identifier, unescaped.
    Ident(String),
    /// String literal, unescaped (standard strings).
    Str(String),
    Punct(char),
    Other,
}

impl Tok {
    fn is_kw(&self, kw: &str) -> bool {
        matches!(self, Tok::Word(w) if w.eq_ignore_ascii_case(kw))
    }
    fn name(&self) -> Option<String> {
        match self {
            Tok::Word(w) => Some(w.to_ascii_lowercase()),
            Tok::Ident(s) => Some(s.clone()),
            _ => None,
        }
    }
}

/// The first `max` tokens of `sql`.
fn tokens(sql: &str, max: usize) -> Vec<Tok> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() && out.len() < max {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'-' && b.get(i + 1) == Some(&b'-') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == b'"' || c == b'\'' {
            let mut s = Vec::new();
            i += 1;
            while i < b.len() {
                if b[i] == c {
                    if b.get(i + 1) == Some(&c) {
                        s.push(c);
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                s.push(b[i]);
                i += 1;
            }
            let s = String::from_utf8_lossy(&s).into_owned();
            out.push(if c == b'"' {
                Tok::Ident(s)
            } else {
                Tok::Str(s)
            });
        } else if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 {
            let st = i;
            while i < b.len()
                && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'$' || b[i] >= 0x80)
            {
                i += 1;
            }
            out.push(Tok::Word(String::from_utf8_lossy(&b[st..i]).into_owned()));
        } else if c.is_ascii_digit() {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                i += 1;
            }
            out.push(Tok::Other);
        } else {
            out.push(Tok::Punct(c as char));
            i += 1;
        }
    }
    out
}

/// A qualified name at `toks[i..]`; returns it and the index after it.
fn qualified_at(toks: &[Tok], i: usize) -> Option<(QualifiedName, usize)> {
    let first = toks.get(i)?.name()?;
    if toks.get(i + 1) == Some(&Tok::Punct('.')) {
        let second = toks.get(i + 2)?.name()?;
        Some((
            QualifiedName {
                schema: Some(first),
                name: second,
            },
            i + 3,
        ))
    } else {
        Some((
            QualifiedName {
                schema: None,
                name: first,
            },
            i + 1,
        ))
    }
}

/// The table of a `COPY table [(cols)] FROM stdin;` statement.
pub fn parse_copy_header(sql: &str) -> Result<QualifiedName, String> {
    let toks = tokens(sql, 8);
    if !toks.first().is_some_and(|t| t.is_kw("COPY")) {
        return Err("it does not start with COPY".into());
    }
    let (name, next) =
        qualified_at(&toks, 1).ok_or_else(|| "no table name after COPY".to_string())?;
    match toks.get(next) {
        Some(Tok::Punct('(')) => Ok(name),
        Some(t) if t.is_kw("FROM") => Ok(name),
        _ => Err("expected a column list or FROM after the table name".into()),
    }
}

/// What a statement does, as far as scheduling is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// `SET name ...`, `RESET name`, `SELECT pg_catalog.set_config('name', ..., false)`:
    /// session state every connection must replay. `key` identifies the setting.
    Session { key: String },
    /// `CREATE [UNLOGGED] TABLE name ...`.
    CreateTable { table: QualifiedName },
    /// `SELECT pg_catalog.setval(...)`: sequence state, independent of table data.
    SequenceSet,
    /// `CREATE [UNIQUE] INDEX ... ON [ONLY] table ...`: can run beside other index builds,
    /// also on the same table.
    Index { table: QualifiedName },
    /// `ALTER TABLE [ONLY] table ADD CONSTRAINT name PRIMARY KEY|UNIQUE|EXCLUDE ...`:
    /// builds an index under an exclusive lock on the table.
    KeyConstraint { table: QualifiedName },
    /// Another statement of pg_dump's post-data section (foreign keys, triggers, rules,
    /// index attachment, policies, publications, materialized view refresh, ...).
    PostData,
    /// Anything else.
    Other,
}

/// TOC types that pg_dump puts in its post-data section.
const POST_DATA_TOC: &[&str] = &[
    "INDEX",
    "CONSTRAINT",
    "FK CONSTRAINT",
    "TRIGGER",
    "RULE",
    "INDEX ATTACH",
    "MATERIALIZED VIEW DATA",
    "POLICY",
    "ROW SECURITY",
    "PUBLICATION",
    "PUBLICATION TABLE",
    "PUBLICATION TABLES IN SCHEMA",
    "EVENT TRIGGER",
    "STATISTICS",
    "SUBSCRIPTION",
];

/// Classify one statement (`toc` is the header in force, a hint only).
pub fn classify(sql: &str, toc: Option<&TocHeader>) -> Kind {
    let t = tokens(sql, 16);
    let kw = |i: usize, k: &str| t.get(i).is_some_and(|x| x.is_kw(k));
    if kw(0, "SET") {
        let mut i = 1;
        if kw(1, "LOCAL") || kw(1, "CONSTRAINTS") || kw(1, "TRANSACTION") {
            return Kind::Other;
        }
        if kw(1, "SESSION") {
            if kw(2, "AUTHORIZATION") {
                return Kind::Session {
                    key: "session authorization".into(),
                };
            }
            if kw(2, "CHARACTERISTICS") {
                return Kind::Other;
            }
            i = 2;
        }
        if kw(i, "TIME") && kw(i + 1, "ZONE") {
            return Kind::Session {
                key: "timezone".into(),
            };
        }
        return match setting_name(&t, i) {
            Some(key) => Kind::Session { key },
            None => Kind::Other,
        };
    }
    if kw(0, "RESET") {
        if kw(1, "SESSION") && kw(2, "AUTHORIZATION") {
            return Kind::Session {
                key: "session authorization".into(),
            };
        }
        return match setting_name(&t, 1) {
            Some(key) if key != "all" => Kind::Session { key },
            _ => Kind::Other,
        };
    }
    if kw(0, "SELECT") {
        let mut i = 1;
        if kw(1, "pg_catalog") && t.get(2) == Some(&Tok::Punct('.')) {
            i = 3;
        }
        if kw(i, "setval") && t.get(i + 1) == Some(&Tok::Punct('(')) {
            return Kind::SequenceSet;
        }
        if kw(i, "set_config") && t.get(i + 1) == Some(&Tok::Punct('(')) {
            if let (Some(Tok::Str(name)), Some(Tok::Punct(',')), Some(Tok::Str(_))) =
                (t.get(i + 2), t.get(i + 3), t.get(i + 4))
            {
                if t.get(i + 5) == Some(&Tok::Punct(',')) && kw(i + 6, "false") {
                    return Kind::Session {
                        key: name.to_ascii_lowercase(),
                    };
                }
            }
        }
        return Kind::Other;
    }
    if kw(0, "CREATE") {
        let mut i = 1;
        if kw(1, "UNIQUE") {
            i = 2;
        }
        if kw(i, "INDEX") {
            // CREATE [UNIQUE] INDEX [CONCURRENTLY] [[IF NOT EXISTS] name] ON [ONLY] table
            let on = (i + 1..t.len().min(i + 8)).find(|&j| kw(j, "ON"));
            if let Some(on) = on {
                let at = if kw(on + 1, "ONLY") { on + 2 } else { on + 1 };
                if let Some((table, _)) = qualified_at(&t, at) {
                    return Kind::Index { table };
                }
            }
            return Kind::PostData;
        }
        let mut i = 1;
        if kw(1, "UNLOGGED") {
            i = 2;
        }
        if kw(i, "TABLE") {
            let at = if kw(i + 1, "IF") && kw(i + 2, "NOT") && kw(i + 3, "EXISTS") {
                i + 4
            } else {
                i + 1
            };
            if let Some((table, next)) = qualified_at(&t, at) {
                if !kw(next, "AS") {
                    return Kind::CreateTable { table };
                }
            }
            return Kind::Other;
        }
        let mut i = 1;
        if kw(1, "OR") && kw(2, "REPLACE") {
            i = 3;
        }
        if kw(i, "TRIGGER")
            || (kw(i, "CONSTRAINT") && kw(i + 1, "TRIGGER"))
            || kw(i, "RULE")
            || kw(i, "POLICY")
            || kw(i, "PUBLICATION")
            || kw(i, "STATISTICS")
            || (kw(i, "EVENT") && kw(i + 1, "TRIGGER"))
        {
            return Kind::PostData;
        }
    }
    if kw(0, "REFRESH") && kw(1, "MATERIALIZED") {
        return Kind::PostData;
    }
    if kw(0, "ALTER") && kw(1, "INDEX") && t.iter().any(|x| x.is_kw("ATTACH")) {
        return Kind::PostData;
    }
    if kw(0, "ALTER") && kw(1, "PUBLICATION") {
        return Kind::PostData;
    }
    if kw(0, "ALTER") && kw(1, "TABLE") {
        let mut i = 2;
        if kw(i, "IF") && kw(i + 1, "EXISTS") {
            i += 2;
        }
        if kw(i, "ONLY") {
            i += 1;
        }
        if let Some((table, next)) = qualified_at(&t, i) {
            if kw(next, "ADD") && kw(next + 1, "CONSTRAINT") && t.get(next + 2).is_some() {
                let c = next + 3;
                if (kw(c, "PRIMARY") && kw(c + 1, "KEY")) || kw(c, "UNIQUE") || kw(c, "EXCLUDE") {
                    return Kind::KeyConstraint { table };
                }
                if kw(c, "FOREIGN") {
                    return Kind::PostData;
                }
            }
        }
    }
    if toc.is_some_and(|h| !h.data && POST_DATA_TOC.contains(&h.kind.as_str())) {
        return Kind::PostData;
    }
    Kind::Other
}

/// `name` or `ext.name` of a `SET`/`RESET`, lower-cased.
fn setting_name(t: &[Tok], i: usize) -> Option<String> {
    let first = t.get(i)?.name()?;
    if t.get(i + 1) == Some(&Tok::Punct('.')) {
        let second = t.get(i + 2)?.name()?;
        return Some(format!("{first}.{second}"));
    }
    Some(first)
}

/// A short description of the object a statement works on, for messages: from the TOC
/// header when there is one, else the statement's first words.
pub fn describe(sql: &str, toc: Option<&TocHeader>) -> String {
    if let Some(h) = toc {
        return h.describe();
    }
    let words: Vec<&str> = sql.split_whitespace().take(4).collect();
    let s = words.join(" ");
    if s.chars().count() > 80 {
        s.chars().take(80).collect::<String>() + "..."
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: Option<&str>, n: &str) -> QualifiedName {
        QualifiedName::new(s, n)
    }

    #[test]
    fn copy_headers() {
        assert_eq!(
            parse_copy_header("COPY public.users (id, name) FROM stdin;").unwrap(),
            q(Some("public"), "users")
        );
        assert_eq!(
            parse_copy_header("COPY \"we; ird\".\"A \"\"b\"\"\" FROM stdin;").unwrap(),
            q(Some("we; ird"), "A \"b\"")
        );
        assert_eq!(
            parse_copy_header("COPY Mixed FROM stdin;").unwrap(),
            q(None, "mixed")
        );
        assert!(parse_copy_header("COPY FROM stdin;").is_err());
    }

    #[test]
    fn sessions_and_sequences() {
        let k = |s: &str| classify(s, None);
        assert_eq!(
            k("SET statement_timeout = 0;"),
            Kind::Session {
                key: "statement_timeout".into()
            }
        );
        assert_eq!(
            k("SELECT pg_catalog.set_config('search_path', '', false);"),
            Kind::Session {
                key: "search_path".into()
            }
        );
        assert_eq!(
            k("SELECT pg_catalog.set_config('search_path', '', true);"),
            Kind::Other
        );
        assert_eq!(k("SET LOCAL work_mem = '1GB';"), Kind::Other);
        assert_eq!(
            k("SET SESSION AUTHORIZATION 'gitlab';"),
            Kind::Session {
                key: "session authorization".into()
            }
        );
        assert_eq!(
            k("SELECT pg_catalog.setval('public.users_id_seq', 42, true);"),
            Kind::SequenceSet
        );
    }

    #[test]
    fn post_data() {
        let k = |s: &str| classify(s, None);
        assert_eq!(
            k("CREATE UNIQUE INDEX index_users_on_email ON public.users USING btree (email);"),
            Kind::Index {
                table: q(Some("public"), "users")
            }
        );
        assert_eq!(
            k("CREATE INDEX i ON ONLY public.p USING btree (a);"),
            Kind::Index {
                table: q(Some("public"), "p")
            }
        );
        assert_eq!(
            k("ALTER TABLE ONLY public.\"a; b\"\n    ADD CONSTRAINT \"a; b_pkey\" PRIMARY KEY (id);"),
            Kind::KeyConstraint {
                table: q(Some("public"), "a; b")
            }
        );
        assert_eq!(
            k("ALTER TABLE ONLY public.t ADD CONSTRAINT u UNIQUE (a) DEFERRABLE INITIALLY DEFERRED;"),
            Kind::KeyConstraint {
                table: q(Some("public"), "t")
            }
        );
        assert_eq!(
            k("ALTER TABLE ONLY public.t ADD CONSTRAINT fk FOREIGN KEY (a) REFERENCES public.u(id);"),
            Kind::PostData
        );
        assert_eq!(
            k("ALTER TABLE ONLY public.t ADD CONSTRAINT c CHECK ((a > 0));"),
            Kind::Other
        );
        assert_eq!(
            k("ALTER INDEX public.p_pkey ATTACH PARTITION gitlab_partitions_static.p1_pkey;"),
            Kind::PostData
        );
        assert_eq!(k("REFRESH MATERIALIZED VIEW public.mv;"), Kind::PostData);
        assert_eq!(
            k("CREATE TRIGGER t BEFORE INSERT ON public.x FOR EACH ROW EXECUTE FUNCTION f();"),
            Kind::PostData
        );
        assert_eq!(
            k("CREATE TABLE public.users (\n id bigint\n);"),
            Kind::CreateTable {
                table: q(Some("public"), "users")
            }
        );
        assert_eq!(k("CREATE TABLE public.x AS SELECT 1;"), Kind::Other);
        assert_eq!(k("COMMENT ON TABLE public.users IS 'x';"), Kind::Other);
    }

    #[test]
    fn describe_uses_header() {
        let h =
            TocHeader::parse("-- Name: users; Type: TABLE; Schema: public; Owner: gitlab").unwrap();
        assert_eq!(describe("CREATE TABLE ...", Some(&h)), "TABLE public.users");
        assert_eq!(
            describe(
                "CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public;",
                None
            ),
            "CREATE EXTENSION IF NOT"
        );
    }
}
