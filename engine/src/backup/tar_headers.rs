//! A tar header walker: ustar, GNU (long names, base-256 sizes) and pax extended headers.
//!
//! It reads headers and leaves member data to the caller, who either streams it (through
//! [`TarReader::data`]) or skips it, by reading or by seeking. Unlike a lenient extractor it
//! treats every early end as an error: input ending inside a header or inside a member's
//! data, and an archive without its end-of-archive marker.

use std::io::{self, BufRead, Read, Seek};

use super::stream::{Bounded, StreamBuf};

const BLOCK: u64 = 512;
/// Largest GNU long name / pax header Rewind reads (GitLab's are a few hundred bytes).
const MAX_META: u64 = 1 << 20;

/// Kind of a tar entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    HardLink,
    CharDevice,
    BlockDevice,
    Fifo,
    /// Any other type flag (GNU sparse, multi-volume, ...).
    Other,
}

/// One entry's header, with the long name / pax attributes applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TarEntry {
    /// Path as stored (a leading `./` kept).
    pub name: String,
    pub kind: EntryKind,
    /// Bytes of data stored in the archive for this entry.
    pub size: u64,
    pub mode: u32,
    /// Link target of symbolic and hard links.
    pub link_name: Option<String>,
    /// Offset of the entry's (first) header.
    pub header_offset: u64,
    /// Offset of the entry's data.
    pub data_offset: u64,
}

impl TarEntry {
    /// The name without a leading `./` and without a trailing `/`.
    pub fn clean_name(&self) -> &str {
        clean_name(&self.name)
    }
}

/// `./db/x` -> `db/x`, `db/` -> `db`.
pub fn clean_name(name: &str) -> &str {
    let mut n = name;
    while let Some(rest) = n.strip_prefix("./") {
        n = rest;
    }
    let n = n.trim_end_matches('/');
    if n == "." {
        ""
    } else {
        n
    }
}

/// Whether `name` stays inside the directory it is extracted into: relative, no `..`.
pub fn is_safe_path(name: &str) -> bool {
    !name.starts_with('/') && !name.split('/').any(|c| c == "..")
}

/// Why walking stopped.
#[derive(Debug)]
pub enum TarError {
    /// Reading failed.
    Io(io::Error),
    /// The first block is not a tar header.
    NotATar(String),
    /// Input ended inside `member` (its header or its data).
    Truncated { member: String, detail: String },
    /// Input ended at a member boundary without the end-of-archive marker.
    MissingEnd { last_member: String },
    /// A later header is damaged.
    BadHeader {
        offset: u64,
        after: String,
        detail: String,
    },
}

impl std::fmt::Display for TarError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TarError::Io(e) => write!(f, "read error: {e}"),
            TarError::NotATar(d) => write!(f, "not a tar archive ({d})"),
            TarError::Truncated { member, detail } => {
                write!(f, "tar ends inside `{member}` ({detail})")
            }
            TarError::MissingEnd { last_member } => write!(
                f,
                "tar ends after `{last_member}` without its end-of-archive marker"
            ),
            TarError::BadHeader {
                offset,
                after,
                detail,
            } => write!(
                f,
                "damaged tar header at byte {offset} after `{after}`: {detail}"
            ),
        }
    }
}

fn parse_octal(field: &[u8]) -> Option<u64> {
    // GNU base-256 for values that do not fit the octal field.
    if let Some(&first) = field.first() {
        if first & 0x80 != 0 {
            if first & 0x40 != 0 {
                return None; // negative
            }
            let mut v: u64 = u64::from(first & 0x3f);
            for &b in &field[1..] {
                v = v.checked_mul(256)?.checked_add(u64::from(b))?;
            }
            return Some(v);
        }
    }
    let s: Vec<u8> = field
        .iter()
        .copied()
        .skip_while(|b| *b == b' ')
        .take_while(|b| *b != 0 && *b != b' ')
        .collect();
    if s.is_empty() {
        return Some(0);
    }
    let mut v: u64 = 0;
    for b in s {
        if !(b'0'..=b'7').contains(&b) {
            return None;
        }
        v = v.checked_mul(8)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(v)
}

fn cstr(field: &[u8]) -> String {
    let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

fn checksum_ok(h: &[u8; 512]) -> Result<(), String> {
    let Some(stored) = parse_octal(&h[148..156]) else {
        return Err("checksum field is not a number".into());
    };
    let mut unsigned: u64 = 0;
    let mut signed: i64 = 0;
    for (i, b) in h.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { *b };
        unsigned += u64::from(b);
        signed += i64::from(b as i8);
    }
    if stored == unsigned || i64::try_from(stored).is_ok_and(|s| s == signed) {
        Ok(())
    } else {
        Err(format!(
            "header checksum {stored:o} does not match its contents ({unsigned:o})"
        ))
    }
}

/// Attributes from GNU long-name and pax headers, applied to the next real header.
#[derive(Default)]
struct Pending {
    name: Option<String>,
    link: Option<String>,
    size: Option<u64>,
}

fn parse_pax(data: &[u8], pending: &mut Pending) -> Result<(), String> {
    let mut rest = data;
    while !rest.is_empty() {
        if rest.iter().all(|b| *b == 0) {
            break;
        }
        let sp = rest
            .iter()
            .position(|b| *b == b' ')
            .ok_or("pax record without a length")?;
        let len: usize = std::str::from_utf8(&rest[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or("pax record length is not a number")?;
        if len <= sp + 1 || len > rest.len() {
            return Err("pax record length out of range".into());
        }
        let record = &rest[sp + 1..len];
        let record = record.strip_suffix(b"\n").unwrap_or(record);
        if let Some(eq) = record.iter().position(|b| *b == b'=') {
            let key = &record[..eq];
            let value = String::from_utf8_lossy(&record[eq + 1..]).into_owned();
            match key {
                b"path" => pending.name = Some(value),
                b"linkpath" => pending.link = Some(value),
                b"size" => {
                    pending.size = Some(
                        value
                            .parse()
                            .map_err(|_| format!("pax size `{value}` is not a number"))?,
                    )
                }
                _ => {}
            }
        }
        rest = &rest[len..];
    }
    Ok(())
}

/// Walks the headers of a tar stream.
pub struct TarReader<R> {
    src: StreamBuf<R>,
    /// Data bytes of the current entry not consumed yet.
    data_left: u64,
    /// Padding after the current entry's data.
    pad_left: u64,
    last_name: String,
    entries: u64,
    ended: bool,
    /// Length of the input when known (a file): lets skipping by seeking notice truncation.
    len: Option<u64>,
}

impl<R: Read> TarReader<R> {
    /// Walk `src` from its current position, which must be the start of the archive.
    pub fn new(src: StreamBuf<R>) -> Self {
        Self {
            src,
            data_left: 0,
            pad_left: 0,
            last_name: String::new(),
            entries: 0,
            ended: false,
            len: None,
        }
    }

    /// Tell the walker the input's total length (for skipping by seeking).
    pub fn with_len(mut self, len: u64) -> Self {
        self.len = Some(len);
        self
    }

    /// The underlying stream.
    pub fn source(&self) -> &StreamBuf<R> {
        &self.src
    }

    /// The underlying stream, positioned after the last header or data read.
    pub fn into_source(self) -> StreamBuf<R> {
        self.src
    }

    /// Name of the last entry returned.
    pub fn last_name(&self) -> &str {
        &self.last_name
    }

    /// The current entry's data not read yet. Reading it is optional: the next
    /// [`TarReader::next_entry`] skips whatever is left.
    pub fn data(&mut self) -> TarData<'_, R> {
        TarData {
            inner: Bounded::new(&mut self.src, self.data_left),
            data_left: &mut self.data_left,
        }
    }

    /// Next entry, skipping the rest of the current one by reading through it. `None`
    /// after the end-of-archive marker.
    pub fn next_entry(&mut self) -> Result<Option<TarEntry>, TarError> {
        let skip = self.data_left + self.pad_left;
        let skipped = self.src.skip_read(skip).map_err(TarError::Io)?;
        if skipped < skip {
            return Err(self.truncated_in_data(skip - skipped));
        }
        self.data_left = 0;
        self.pad_left = 0;
        self.read_header()
    }

    fn truncated_in_data(&self, missing: u64) -> TarError {
        let what = if missing > self.pad_left {
            format!(
                "{} byte(s) of its data missing",
                missing.saturating_sub(self.pad_left)
            )
        } else {
            "its padding is missing".into()
        };
        TarError::Truncated {
            member: self.last_name.clone(),
            detail: what,
        }
    }

    /// Read and consume `n` bytes of metadata data (long name, pax), plus padding.
    fn read_meta(&mut self, n: u64, what: &str) -> Result<Vec<u8>, TarError> {
        if n > MAX_META {
            return Err(TarError::BadHeader {
                offset: self.src.position(),
                after: self.last_name.clone(),
                detail: format!("{what} of {n} bytes is implausibly large"),
            });
        }
        let mut data = vec![0u8; n as usize];
        let mut b = Bounded::new(&mut self.src, n);
        b.read_exact(&mut data).map_err(|e| {
            if super::stream::input_ended(&e).is_some() {
                TarError::Truncated {
                    member: format!("{what} after `{}`", self.last_name),
                    detail: "input ends inside it".into(),
                }
            } else {
                TarError::Io(e)
            }
        })?;
        let pad = padding(n);
        if self.src.skip_read(pad).map_err(TarError::Io)? < pad {
            return Err(TarError::Truncated {
                member: format!("{what} after `{}`", self.last_name),
                detail: "input ends inside its padding".into(),
            });
        }
        Ok(data)
    }

    fn read_header(&mut self) -> Result<Option<TarEntry>, TarError> {
        if self.ended {
            return Ok(None);
        }
        let mut pending = Pending::default();
        loop {
            let header_offset = self.src.position();
            let block = self.src.peek(BLOCK as usize).map_err(TarError::Io)?;
            if block.is_empty() {
                return Err(if self.entries == 0 {
                    TarError::NotATar("the file is empty".into())
                } else {
                    TarError::MissingEnd {
                        last_member: self.last_name.clone(),
                    }
                });
            }
            if block.len() < BLOCK as usize {
                return Err(if self.entries == 0 {
                    TarError::NotATar(format!(
                        "{} bytes, shorter than one tar header",
                        block.len()
                    ))
                } else {
                    TarError::Truncated {
                        member: format!("header after `{}`", self.last_name),
                        detail: format!("only {} of 512 header bytes present", block.len()),
                    }
                });
            }
            let mut h = [0u8; 512];
            h.copy_from_slice(block);
            self.src.consume(BLOCK as usize);
            if h.iter().all(|b| *b == 0) {
                // End of archive (an archive of nothing starts with it: valid, and empty).
                self.ended = true;
                return Ok(None);
            }
            if let Err(detail) = checksum_ok(&h) {
                return Err(if self.entries == 0 {
                    TarError::NotATar(detail)
                } else {
                    TarError::BadHeader {
                        offset: header_offset,
                        after: self.last_name.clone(),
                        detail,
                    }
                });
            }
            let Some(mut size) = parse_octal(&h[124..136]) else {
                return Err(TarError::BadHeader {
                    offset: header_offset,
                    after: self.last_name.clone(),
                    detail: "size field is not a number".into(),
                });
            };
            self.entries += 1;
            let flag = h[156];
            match flag {
                b'L' => {
                    let d = self.read_meta(size, "GNU long name")?;
                    pending.name = Some(cstr(&d));
                    continue;
                }
                b'K' => {
                    let d = self.read_meta(size, "GNU long link name")?;
                    pending.link = Some(cstr(&d));
                    continue;
                }
                b'x' | b'X' => {
                    let d = self.read_meta(size, "pax header")?;
                    parse_pax(&d, &mut pending).map_err(|detail| TarError::BadHeader {
                        offset: header_offset,
                        after: self.last_name.clone(),
                        detail,
                    })?;
                    continue;
                }
                b'g' => {
                    self.read_meta(size, "pax global header")?;
                    continue;
                }
                _ => {}
            }
            let ustar = &h[257..263] == b"ustar\0";
            let mut name = cstr(&h[0..100]);
            if ustar && h[345] != 0 {
                name = format!("{}/{}", cstr(&h[345..500]), name);
            }
            if let Some(n) = pending.name.take() {
                name = n;
            }
            if let Some(s) = pending.size.take() {
                size = s;
            }
            let kind = match flag {
                b'0' | 0 | b'7' => EntryKind::File,
                b'1' => EntryKind::HardLink,
                b'2' => EntryKind::Symlink,
                b'3' => EntryKind::CharDevice,
                b'4' => EntryKind::BlockDevice,
                b'5' => EntryKind::Dir,
                b'6' => EntryKind::Fifo,
                _ => EntryKind::Other,
            };
            let kind = if kind == EntryKind::File && name.ends_with('/') {
                EntryKind::Dir
            } else {
                kind
            };
            // Links and directories carry no data, whatever their size field says
            // (except GNU's dumpdir 'D', which is `Other`).
            let size = match kind {
                EntryKind::HardLink | EntryKind::Symlink | EntryKind::Dir => 0,
                EntryKind::CharDevice | EntryKind::BlockDevice | EntryKind::Fifo => 0,
                _ => size,
            };
            let link_name = match kind {
                EntryKind::HardLink | EntryKind::Symlink => {
                    Some(pending.link.take().unwrap_or_else(|| cstr(&h[157..257])))
                }
                _ => None,
            };
            let mode = parse_octal(&h[100..108]).unwrap_or(0) as u32;
            self.last_name = name.clone();
            self.data_left = size;
            self.pad_left = padding(size);
            return Ok(Some(TarEntry {
                name,
                kind,
                size,
                mode,
                link_name,
                header_offset,
                data_offset: self.src.position(),
            }));
        }
    }
}

impl<R: Read + Seek> TarReader<R> {
    /// Next entry, skipping the rest of the current one by seeking: only headers are read.
    pub fn next_entry_seek(&mut self) -> Result<Option<TarEntry>, TarError> {
        let skip = self.data_left + self.pad_left;
        self.src.skip_seek(skip).map_err(TarError::Io)?;
        if let Some(len) = self.len {
            let pos = self.src.position();
            if pos > len {
                return Err(self.truncated_in_data(pos - len));
            }
        }
        self.data_left = 0;
        self.pad_left = 0;
        self.read_header()
    }
}

/// Bytes of padding after `size` bytes of data.
pub fn padding(size: u64) -> u64 {
    (BLOCK - size % BLOCK) % BLOCK
}

/// The current entry's data: a bounded buffered reader over the archive stream.
pub struct TarData<'a, R> {
    inner: Bounded<'a, R>,
    data_left: &'a mut u64,
}

impl<R: Read> TarData<'_, R> {
    /// Up to `n` bytes ahead without consuming them.
    pub fn peek(&mut self, n: usize) -> io::Result<&[u8]> {
        self.inner.peek(n)
    }
}

impl<R: Read> BufRead for TarData<'_, R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }
    fn consume(&mut self, amt: usize) {
        self.inner.consume(amt);
        *self.data_left = self.inner.remaining();
    }
}

impl<R: Read> Read for TarData<'_, R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(out)?;
        *self.data_left = self.inner.remaining();
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn octal_and_base256_sizes() {
        assert_eq!(parse_octal(b"00000001750\0"), Some(1000));
        assert_eq!(parse_octal(b"     1750 \0"), Some(1000));
        let mut f = [0u8; 12];
        f[0] = 0x80;
        f[7] = 0x02;
        f[8..12].copy_from_slice(&[0, 0, 0, 0]);
        assert_eq!(parse_octal(&f), Some(2u64 << 32));
        assert_eq!(parse_octal(b"12x4"), None);
    }

    #[test]
    fn names_are_cleaned_and_checked() {
        assert_eq!(clean_name("./db/database.sql.gz"), "db/database.sql.gz");
        assert_eq!(clean_name("db/"), "db");
        assert_eq!(clean_name("./"), "");
        assert!(is_safe_path("./a/b"));
        assert!(!is_safe_path("../a"));
        assert!(!is_safe_path("a/../../b"));
        assert!(!is_safe_path("/etc/passwd"));
    }

    #[test]
    fn an_archive_of_nothing_is_empty_not_broken() {
        let zeros = vec![0u8; 10240];
        let mut t = TarReader::new(StreamBuf::new(&zeros[..], 4096));
        assert!(t.next_entry().unwrap().is_none());
        let none: &[u8] = &[];
        let mut t = TarReader::new(StreamBuf::new(none, 4096));
        assert!(matches!(t.next_entry(), Err(TarError::NotATar(_))));
        let text = b"not a tar at all ".repeat(64);
        let mut t = TarReader::new(StreamBuf::new(&text[..], 4096));
        assert!(matches!(t.next_entry(), Err(TarError::NotATar(_))));
    }

    #[test]
    fn pax_records() {
        let mut p = Pending::default();
        parse_pax(b"28 path=some/very/long/name\n11 size=99\n", &mut p).unwrap();
        assert_eq!(p.name.as_deref(), Some("some/very/long/name"));
        assert_eq!(p.size, Some(99));
        assert!(parse_pax(b"x path=a\n", &mut Pending::default()).is_err());
    }
}
