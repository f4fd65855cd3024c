//! End-to-end verification of a backup in one streaming pass: the outer tar to its
//! end-of-archive marker, every gzip member inflated with its CRC and length checked, every
//! zstd frame decoded with its checksum, every nested `<component>.tar.gz` walked to its own
//! end, and `backup_information.yml` parsed. Memory stays flat (fixed buffers); nothing is
//! written anywhere.

use std::fs::File;
use std::io::{self, BufRead, Read};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::compression::{classify, ByteCounter, Compression, CountingReader};
use super::metadata::{BackupInformation, MANIFEST_NAME};
use super::stream::StreamBuf;
use super::tar_headers::{clean_name, is_safe_path, EntryKind, TarError, TarReader};
use super::{tar_error, BackupError};
use crate::progress::{Cancel, Event, Phase, Sink, SinkExt};
use crate::restore::leftovers::DumpCatalog;

/// Read size from the archive file.
const OUTER_BUFFER: usize = 1024 * 1024;
/// Scratch buffer decoded bytes are inflated into (and dropped).
const SCRATCH: usize = 256 * 1024;
/// Emit a progress event every this many archive bytes.
const PROGRESS_STEP: u64 = 16 * 1024 * 1024;

/// What was checked in one member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifiedMember {
    /// Member name (`db/database.sql.gz`).
    pub name: String,
    /// Bytes stored in the archive.
    pub size: u64,
    /// Compression found (file members).
    pub compression: Option<Compression>,
    /// Bytes after decompression (file members).
    pub decoded_bytes: Option<u64>,
    /// Entries of the tar inside a `<component>.tar.gz` (or `.tar`).
    pub nested_entries: Option<u64>,
    /// A database dump's catalogue, read while it was decoded (the restore's first pass
    /// uses it instead of reading the dump once more); `None` for other members, or when
    /// the dump did not parse (the restore reads it again and reports why).
    #[serde(skip)]
    pub catalog: Option<Box<DumpCatalog>>,
}

/// The result of a successful verification.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerifyReport {
    pub archive: PathBuf,
    /// Bytes read from the archive (or the unpacked backup's files).
    pub bytes_read: u64,
    /// Every member checked, in archive order.
    pub members: Vec<VerifiedMember>,
    /// The manifest.
    pub information: BackupInformation,
    /// Things that are odd but do not stop a restore.
    pub warnings: Vec<String>,
}

impl VerifyReport {
    /// The dump catalogues read while verifying, by member name (`db/database.sql.gz`),
    /// for [`crate::restore::database::RestoreOptions::catalogs`].
    pub fn catalogs(&self) -> std::collections::BTreeMap<String, DumpCatalog> {
        self.members
            .iter()
            .filter_map(|m| {
                let name = m.name.strip_prefix("./").unwrap_or(&m.name);
                m.catalog
                    .as_ref()
                    .map(|c| (name.to_string(), (**c).clone()))
            })
            .collect()
    }
}

struct Ctx<'a> {
    archive: &'a Path,
    sink: &'a dyn Sink,
    cancel: Option<&'a Cancel>,
    counter: ByteCounter,
    total: u64,
    last: u64,
    warnings: Vec<String>,
}

impl Ctx<'_> {
    fn tick(&mut self, member: &str) -> io::Result<()> {
        let done = self.counter.get();
        if done >= self.last + PROGRESS_STEP {
            self.last = done;
            self.sink.event(Event::Progress {
                phase: Phase::Verify,
                done,
                total: Some(self.total),
                current: Some(member.to_string()),
                rows: None,
            });
            if self.cancel.is_some_and(Cancel::is_cancelled) {
                return Err(io::Error::new(io::ErrorKind::Interrupted, Cancelled));
            }
        }
        Ok(())
    }
}

#[derive(Debug)]
struct Cancelled;
impl std::fmt::Display for Cancelled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("verification cancelled")
    }
}
impl std::error::Error for Cancelled {}

fn is_nested_tar(name: &str) -> bool {
    name.ends_with(".tar.gz") || name.ends_with(".tar")
}

/// Which archive file was read: device, inode, size, modification and change times.
/// Writing to the file or replacing it changes at least one of them, and the change time
/// is the kernel's, which no user can set back: an equal stamp means the same bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchiveStamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl ArchiveStamp {
    /// The stamp of the archive file at `path`; `None` for an unpacked backup directory,
    /// whose contents a stamp does not cover.
    pub fn of(path: &Path) -> io::Result<Option<ArchiveStamp>> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path)?;
        if !m.is_file() {
            return Ok(None);
        }
        Ok(Some(ArchiveStamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }))
    }
}

/// A verification, with the stamp of the archive taken before it was read: a later step
/// may rely on it instead of reading the archive again while the stamp is unchanged.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    pub stamp: ArchiveStamp,
    pub report: VerifyReport,
}

impl Verified {
    /// The report, if it is of the archive at `path` and the file is unchanged since.
    pub fn still_valid(&self, path: &Path) -> Option<&VerifyReport> {
        (self.report.archive == path && ArchiveStamp::of(path).ok().flatten() == Some(self.stamp))
            .then_some(&self.report)
    }
}

/// [`verify`], keeping the stamp of the archive file (taken before reading) with the
/// report; `None` as the second value for an unpacked backup directory.
pub fn verify_stamped(
    path: &Path,
    sink: &dyn Sink,
    cancel: Option<&Cancel>,
) -> Result<(VerifyReport, Option<Verified>), BackupError> {
    let stamp = ArchiveStamp::of(path).map_err(|e| BackupError::unreadable(path, e))?;
    let report = verify(path, sink, cancel)?;
    let kept = stamp.map(|stamp| Verified {
        stamp,
        report: report.clone(),
    });
    Ok((report, kept))
}

/// Verify the backup at `path` (an archive or an unpacked backup directory) end to end,
/// reporting progress (phase [`Phase::Verify`], bytes of the archive) to `sink`.
pub fn verify(
    path: &Path,
    sink: &dyn Sink,
    cancel: Option<&Cancel>,
) -> Result<VerifyReport, BackupError> {
    let meta = std::fs::metadata(path).map_err(|e| BackupError::unreadable(path, e))?;
    let result = if meta.is_dir() {
        verify_directory(path, sink, cancel)
    } else {
        verify_tar(path, meta.len(), sink, cancel)
    };
    sink.event(Event::PhaseFinished {
        phase: Phase::Verify,
        ok: result.is_ok(),
    });
    result
}

fn verify_tar(
    path: &Path,
    len: u64,
    sink: &dyn Sink,
    cancel: Option<&Cancel>,
) -> Result<VerifyReport, BackupError> {
    let file = crate::limited::open_regular(path).map_err(|e| BackupError::unreadable(path, e))?;
    let counting = CountingReader::new(file);
    let mut ctx = Ctx {
        archive: path,
        sink,
        cancel,
        counter: counting.counter(),
        total: len,
        last: 0,
        warnings: Vec::new(),
    };
    sink.event(Event::PhaseStarted {
        phase: Phase::Verify,
        total: Some(len),
    });
    let mut tar = TarReader::new(StreamBuf::new(counting, OUTER_BUFFER));
    let mut members = Vec::new();
    let mut information = None;
    let mut scratch = vec![0u8; SCRATCH];
    let mut seen = super::catalogue::SeenMembers::default();
    while let Some(entry) = tar.next_entry().map_err(|e| tar_error(path, e))? {
        let name = entry.clean_name().to_string();
        if !name.is_empty() {
            seen.add(path, &name, entry.kind)?;
        }
        if name.is_empty() || entry.kind != EntryKind::File {
            if !name.is_empty() {
                members.push(VerifiedMember {
                    name,
                    size: entry.size,
                    compression: None,
                    decoded_bytes: None,
                    nested_entries: None,
                    catalog: None,
                });
            }
            continue;
        }
        if name == MANIFEST_NAME {
            information = Some(read_manifest(path, tar.data(), entry.size)?);
            members.push(VerifiedMember {
                name,
                size: entry.size,
                compression: Some(Compression::Plain),
                decoded_bytes: Some(entry.size),
                nested_entries: None,
                catalog: None,
            });
            continue;
        }
        let mut data = tar.data();
        let magic = data
            .peek(4)
            .map_err(|e| classify(e, path, &name, Compression::Plain))?;
        let compression = Compression::detect(magic);
        let checked = check_member(
            &mut data,
            &name,
            entry.size,
            compression,
            &mut ctx,
            &mut scratch,
        )?;
        members.push(checked);
    }
    let information = information.ok_or_else(|| BackupError::MissingInformation {
        archive: path.to_path_buf(),
    })?;
    let bytes_read = ctx.counter.get();
    sink.event(Event::Progress {
        phase: Phase::Verify,
        done: len,
        total: Some(len),
        current: None,
        rows: None,
    });
    Ok(VerifyReport {
        archive: path.to_path_buf(),
        bytes_read,
        members,
        information,
        warnings: ctx.warnings,
    })
}

fn read_manifest(
    path: &Path,
    mut r: impl Read,
    size: u64,
) -> Result<BackupInformation, BackupError> {
    if size > 1 << 20 {
        return Err(BackupError::MalformedInformation {
            archive: path.to_path_buf(),
            detail: format!("it is {size} bytes, far larger than a manifest"),
        });
    }
    let mut bytes = Vec::with_capacity(size as usize);
    r.read_to_end(&mut bytes)
        .map_err(|e| classify(e, path, MANIFEST_NAME, Compression::Plain))?;
    let text = String::from_utf8(bytes).map_err(|_| BackupError::MalformedInformation {
        archive: path.to_path_buf(),
        detail: "it is not UTF-8 text".into(),
    })?;
    BackupInformation::parse(&text).map_err(|e| BackupError::MalformedInformation {
        archive: path.to_path_buf(),
        detail: e.0,
    })
}

/// Decode one member completely; walk it as a tar when it is one.
fn check_member<R: BufRead>(
    input: &mut R,
    name: &str,
    size: u64,
    compression: Compression,
    ctx: &mut Ctx<'_>,
    scratch: &mut [u8],
) -> Result<VerifiedMember, BackupError> {
    let archive = ctx.archive;
    let fail = |e: io::Error| classify(e, archive, name, compression);
    let (decoded, nested, catalog) = match compression {
        Compression::Gzip => {
            let mut d = flate2::bufread::MultiGzDecoder::new(&mut *input);
            decode(&mut d, name, ctx, scratch)
                .map_err(|e| nested_or(e, archive, name, compression))?
        }
        Compression::Zstd => {
            let mut d = zstd::stream::read::Decoder::with_buffer(&mut *input).map_err(fail)?;
            decode(&mut d, name, ctx, scratch)
                .map_err(|e| nested_or(e, archive, name, compression))?
        }
        Compression::Plain => decode(&mut *input, name, ctx, scratch)
            .map_err(|e| nested_or(e, archive, name, compression))?,
    };
    // Bytes after the compressed stream (decoders stop at its end).
    let mut trailing = 0u64;
    loop {
        let n = input.fill_buf().map_err(fail)?.len();
        if n == 0 {
            break;
        }
        trailing += n as u64;
        input.consume(n);
    }
    if trailing > 0 {
        let msg = format!(
            "{}: member `{name}` has {trailing} byte(s) after its {compression} data (ignored, as gzip does)",
            archive.display()
        );
        ctx.sink.warn(msg.clone());
        ctx.warnings.push(msg);
    }
    Ok(VerifiedMember {
        name: name.to_string(),
        size,
        compression: Some(compression),
        decoded_bytes: Some(decoded),
        nested_entries: nested,
        catalog,
    })
}

/// A failure inside decoding: an I/O (decoder) error, a damaged nested tar, or a database
/// dump whose content is no SQL.
enum DecodeError {
    Io(io::Error),
    Nested(String),
    NotADump(String),
}

fn nested_or(e: DecodeError, archive: &Path, name: &str, compression: Compression) -> BackupError {
    match e {
        DecodeError::Io(e) => {
            if e.get_ref().is_some_and(|i| i.is::<Cancelled>()) {
                return BackupError::CorruptNested {
                    archive: archive.to_path_buf(),
                    member: name.to_string(),
                    detail:
                        "verification cancelled before this member was checked; nothing was changed"
                            .into(),
                };
            }
            classify(e, archive, name, compression)
        }
        DecodeError::Nested(detail) => BackupError::CorruptNested {
            archive: archive.to_path_buf(),
            member: name.to_string(),
            detail,
        },
        DecodeError::NotADump(detail) => BackupError::NotADump {
            archive: archive.to_path_buf(),
            member: name.to_string(),
            detail: match compression {
                Compression::Plain if detail.starts_with("its content") => {
                    format!("it is neither gzip nor zstd, and {detail}")
                }
                Compression::Plain => detail,
                c => format!("after {c} decompression, {detail}"),
            },
        },
    }
}

/// What decoding one member found: decoded bytes, nested tar entries, a dump's catalogue.
type Decoded = (u64, Option<u64>, Option<Box<DumpCatalog>>);

/// Read `d` to its end; walk it as a tar first when `name` says it is one; read a database
/// dump's catalogue on the way.
fn decode<D: Read>(
    d: &mut D,
    name: &str,
    ctx: &mut Ctx<'_>,
    scratch: &mut [u8],
) -> Result<Decoded, DecodeError> {
    if is_nested_tar(name) {
        let mut counted = CountingReader::new(&mut *d);
        let out = counted.counter();
        let mut inner = TarReader::new(StreamBuf::new(&mut counted, SCRATCH));
        let mut entries = 0u64;
        loop {
            let entry = match inner.next_entry() {
                Ok(Some(e)) => e,
                Ok(None) => break,
                Err(TarError::Io(e)) => return Err(DecodeError::Io(e)),
                Err(TarError::NotATar(d)) => {
                    return Err(DecodeError::Nested(format!(
                        "its content is not a tar archive ({d})"
                    )))
                }
                Err(e) => {
                    return Err(DecodeError::Nested(format!(
                        "the tar inside is damaged: {e}"
                    )))
                }
            };
            entries += 1;
            check_nested_entry(&entry.name, entry.kind, entry.link_name.as_deref())
                .map_err(DecodeError::Nested)?;
            ctx.tick(name).map_err(DecodeError::Io)?;
        }
        // The rest of the stream (tar's record padding) must decode too.
        let mut src = inner.into_source();
        loop {
            let n = src.fill_buf().map_err(DecodeError::Io)?.len();
            if n == 0 {
                break;
            }
            src.consume(n);
            ctx.tick(name).map_err(DecodeError::Io)?;
        }
        return Ok((out.get(), Some(entries), None));
    }
    if super::catalogue::database_name(name).is_some() {
        return decode_dump(d, name, ctx);
    }
    let mut total = 0u64;
    loop {
        let n = match d.read(scratch) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted && e.get_ref().is_none() => continue,
            Err(e) => return Err(DecodeError::Io(e)),
        };
        total += n as u64;
        ctx.tick(name).map_err(DecodeError::Io)?;
    }
    Ok((total, None, None))
}

/// A database dump's decoded stream, checked as it is read: its start must be SQL, progress
/// and cancel are served, and the first failure is kept (the catalogue reader only sees
/// that it stopped).
struct DumpTap<'a, 'c, D> {
    inner: &'a mut D,
    name: &'a str,
    ctx: &'a mut Ctx<'c>,
    head: Vec<u8>,
    total: u64,
    failure: Option<DecodeError>,
}

impl<D: Read> Read for DumpTap<'_, '_, D> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.failure.is_some() {
            return Err(io::Error::other("the member could not be decoded"));
        }
        let n = loop {
            match self.inner.read(buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted && e.get_ref().is_none() => {
                    continue
                }
                Err(e) => {
                    self.failure = Some(DecodeError::Io(e));
                    return Err(io::Error::other("the member could not be decoded"));
                }
            }
        };
        let short = self.head.len() < SQL_HEAD;
        if short {
            let more = n.min(SQL_HEAD - self.head.len());
            self.head.extend_from_slice(&buf[..more]);
        }
        if short && (self.head.len() == SQL_HEAD || n == 0) {
            if let Err(m) = sql_dump_start(&self.head) {
                self.failure = Some(DecodeError::NotADump(m));
                return Err(io::Error::other("not a dump"));
            }
        }
        self.total += n as u64;
        if let Err(e) = self.ctx.tick(self.name) {
            self.failure = Some(DecodeError::Io(e));
            return Err(io::Error::other("cancelled"));
        }
        Ok(n)
    }
}

/// Decode a database dump to its end, reading its catalogue on the way.
fn decode_dump<D: Read>(d: &mut D, name: &str, ctx: &mut Ctx<'_>) -> Result<Decoded, DecodeError> {
    let mut tap = DumpTap {
        inner: d,
        name,
        ctx,
        head: Vec::new(),
        total: 0,
        failure: None,
    };
    let read = crate::restore::leftovers::read_catalog(&mut tap, name);
    // What the catalogue reader left (all of it, when it stopped early) must decode too.
    let mut rest = vec![0u8; SCRATCH];
    while tap.failure.is_none() {
        match tap.read(&mut rest) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    if let Some(f) = tap.failure.take() {
        return Err(f);
    }
    Ok((tap.total, None, read.ok().map(|(c, _)| Box::new(c))))
}

/// Bytes of a dump's start looked at.
const SQL_HEAD: usize = 256;

/// Whether `head` (a dump's first decoded bytes) starts like `pg_dump`'s plain SQL, as
/// GitLab's restore feeds it to `psql`: a comment (`--`, `/*`), a psql meta-command
/// (`\restrict`, `\connect`) or an SQL statement.
pub(crate) fn sql_dump_start(head: &[u8]) -> Result<(), String> {
    let text = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head);
    let start = text
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .map(|i| &text[i..]);
    let Some(start) = start else {
        return Err("the dump is empty".into());
    };
    if start.starts_with(b"PGDMP") {
        return Err(
            "it is a pg_dump custom-format archive, not the plain SQL GitLab's restore feeds to psql"
                .into(),
        );
    }
    if start.starts_with(b"--") || start.starts_with(b"/*") || start.starts_with(b"\\") {
        return Ok(());
    }
    let word: String = start
        .iter()
        .take_while(|b| b.is_ascii_alphabetic())
        .map(|b| b.to_ascii_uppercase() as char)
        .collect();
    const STATEMENTS: &[&str] = &[
        "SET", "SELECT", "CREATE", "ALTER", "DROP", "BEGIN", "START", "COMMENT", "INSERT", "COPY",
        "GRANT", "REVOKE", "DO", "COMMIT",
    ];
    if STATEMENTS.contains(&word.as_str()) {
        return Ok(());
    }
    let bytes: Vec<String> = start.iter().take(8).map(|b| format!("{b:02x}")).collect();
    Err(format!(
        "its content is not plain SQL (it starts with bytes {})",
        bytes.join(" ")
    ))
}

/// An entry of a component archive that a restore must refuse.
fn check_nested_entry(name: &str, kind: EntryKind, link: Option<&str>) -> Result<(), String> {
    let clean = clean_name(name);
    if !is_safe_path(name) {
        return Err(format!(
            "the tar inside holds `{name}`, which would be written outside its directory"
        ));
    }
    match kind {
        EntryKind::CharDevice | EntryKind::BlockDevice => Err(format!(
            "the tar inside holds a device file `{clean}`, which GitLab never backs up"
        )),
        EntryKind::HardLink => match link {
            Some(t) if !is_safe_path(t) => Err(format!(
                "the tar inside holds a hard link `{clean}` to `{t}`, outside its directory"
            )),
            _ => Ok(()),
        },
        EntryKind::Symlink => match link {
            Some(t) if t.starts_with('/') || escapes(clean, t) => Err(format!(
                "the tar inside holds a symbolic link `{clean}` -> `{t}`, pointing outside its directory"
            )),
            _ => Ok(()),
        },
        _ => Ok(()),
    }
}

/// Whether a relative link target, resolved from the link's directory, leaves the root.
fn escapes(link_path: &str, target: &str) -> bool {
    let mut depth: i64 = link_path
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .count() as i64
        - 1;
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                depth -= 1;
                if depth < 0 {
                    return true;
                }
            }
            _ => depth += 1,
        }
    }
    false
}

fn verify_directory(
    dir: &Path,
    sink: &dyn Sink,
    cancel: Option<&Cancel>,
) -> Result<VerifyReport, BackupError> {
    // The member list (and the manifest check) come from the catalogue.
    let entry = super::catalogue::read_backup(dir, None, false)?;
    let total: u64 = entry.size;
    sink.event(Event::PhaseStarted {
        phase: Phase::Verify,
        total: Some(total),
    });
    let counter = ByteCounter::default();
    let mut ctx = Ctx {
        archive: dir,
        sink,
        cancel,
        counter: counter.clone(),
        total,
        last: 0,
        warnings: Vec::new(),
    };
    let mut scratch = vec![0u8; SCRATCH];
    let mut members = Vec::new();
    let mut done = 0u64;
    for m in &entry.members {
        if m.kind != EntryKind::File {
            members.push(VerifiedMember {
                name: m.name.clone(),
                size: m.size,
                compression: None,
                decoded_bytes: None,
                nested_entries: None,
                catalog: None,
            });
            continue;
        }
        let path = dir.join(&m.name);
        let file = File::open(&path).map_err(|e| BackupError::unreadable(&path, e))?;
        let mut src = StreamBuf::new(CountingReader::new(file), OUTER_BUFFER);
        let compression = Compression::detect(
            src.peek(4)
                .map_err(|e| classify(e, dir, &m.name, Compression::Plain))?,
        );
        // Progress counts bytes of all files read so far.
        ctx.counter = src.get_ref().counter();
        ctx.last = 0;
        let mut checked = if m.name == MANIFEST_NAME {
            io::copy(&mut src, &mut io::sink())
                .map_err(|e| classify(e, dir, &m.name, Compression::Plain))?;
            VerifiedMember {
                name: m.name.clone(),
                size: m.size,
                compression: Some(Compression::Plain),
                decoded_bytes: Some(m.size),
                nested_entries: None,
                catalog: None,
            }
        } else {
            check_member(
                &mut src,
                &m.name,
                m.size,
                compression,
                &mut ctx,
                &mut scratch,
            )?
        };
        checked.size = m.size;
        done += src.get_ref().count();
        sink.event(Event::Progress {
            phase: Phase::Verify,
            done,
            total: Some(total),
            current: Some(m.name.clone()),
            rows: None,
        });
        members.push(checked);
    }
    let information = entry
        .information
        .clone()
        .ok_or_else(|| BackupError::MissingInformation {
            archive: dir.to_path_buf(),
        })?;
    Ok(VerifyReport {
        archive: dir.to_path_buf(),
        bytes_read: done,
        members,
        information,
        warnings: ctx.warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_entries_that_leave_their_directory_are_refused() {
        assert!(check_nested_entry("./a/b.txt", EntryKind::File, None).is_ok());
        assert!(check_nested_entry("../x", EntryKind::File, None).is_err());
        assert!(check_nested_entry("/etc/x", EntryKind::File, None).is_err());
        assert!(check_nested_entry("./dev", EntryKind::CharDevice, None).is_err());
        assert!(check_nested_entry("./a/l", EntryKind::Symlink, Some("../b")).is_ok());
        assert!(check_nested_entry("./a/l", EntryKind::Symlink, Some("../../b")).is_err());
        assert!(check_nested_entry("./l", EntryKind::Symlink, Some("/etc/passwd")).is_err());
        assert!(check_nested_entry("./h", EntryKind::HardLink, Some("../h")).is_err());
    }
}

#[cfg(test)]
mod stamp_tests {
    use super::*;
    use std::io::Write;

    fn report(path: &Path) -> VerifyReport {
        VerifyReport {
            archive: path.to_path_buf(),
            bytes_read: 3,
            members: Vec::new(),
            information: Default::default(),
            warnings: Vec::new(),
        }
    }

    #[test]
    fn a_verification_holds_only_while_the_file_is_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("1_gitlab_backup.tar");
        std::fs::write(&path, b"abc").unwrap();
        let v = Verified {
            stamp: ArchiveStamp::of(&path).unwrap().unwrap(),
            report: report(&path),
        };
        assert_eq!(v.still_valid(&path), Some(&v.report));
        // Another path is not this verification.
        let other = dir.path().join("2_gitlab_backup.tar");
        std::fs::write(&other, b"abc").unwrap();
        assert_eq!(v.still_valid(&other), None);
        // Written to (the change time moves even if the size and mtime were put back).
        std::thread::sleep(std::time::Duration::from_millis(20));
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .write_all(b"x")
            .unwrap();
        let f = std::fs::File::options().write(true).open(&path).unwrap();
        f.set_modified(mtime).unwrap();
        assert_eq!(v.still_valid(&path), None);
        // Replaced by a file with the same bytes: another inode.
        let v = Verified {
            stamp: ArchiveStamp::of(&path).unwrap().unwrap(),
            report: report(&path),
        };
        let copy = dir.path().join("copy");
        std::fs::copy(&path, &copy).unwrap();
        std::fs::rename(&copy, &path).unwrap();
        assert_eq!(v.still_valid(&path), None);
        // A directory (an unpacked backup) has no stamp.
        assert_eq!(ArchiveStamp::of(dir.path()).unwrap(), None);
    }
}
