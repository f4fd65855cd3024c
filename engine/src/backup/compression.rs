//! Member compression, detected by magic bytes (GitLab's `COMPRESS_CMD` keeps the `.gz`
//! name whatever the compressor), streaming decoders, and [`open_member`]: one member of
//! an archive as a decoded stream, read in place without extracting anything.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::Serialize;

use super::stream::{input_ended, ExactTake, StreamBuf};
use super::tar_headers::{clean_name, is_safe_path, EntryKind, TarReader};
use super::{tar_error, BackupError};

/// Buffer between the archive file and a decoder.
const READ_BUFFER: usize = 256 * 1024;

/// How a member's bytes are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// gzip (`1f 8b`), possibly several concatenated members.
    Gzip,
    /// zstd (`28 b5 2f fd`), possibly several frames.
    Zstd,
    /// Neither: read as is.
    Plain,
}

impl Compression {
    /// Detect from a member's first bytes (at least 4 when the member has them).
    pub fn detect(magic: &[u8]) -> Self {
        if magic.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::Plain
        }
    }

    /// `gzip`, `zstd`, `plain`.
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::Plain => "plain",
        }
    }
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A streaming decoder of `input` for `compression`: multi-member gzip with every CRC and
/// length checked, zstd with frame checksums verified, or the bytes as they are.
pub fn decoder<'a, R: BufRead + Send + 'a>(
    input: R,
    compression: Compression,
) -> io::Result<Box<dyn Read + Send + 'a>> {
    Ok(match compression {
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(input)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(input)?),
        Compression::Plain => Box::new(input),
    })
}

/// A shared count of bytes, readable from any thread while a reader advances it.
#[derive(Debug, Clone, Default)]
pub struct ByteCounter(Arc<AtomicU64>);

impl ByteCounter {
    /// Bytes counted so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
    fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
}

/// A reader that counts the bytes read through it (for progress: compressed bytes read
/// against the member's size). Clone its [`ByteCounter`] before handing the reader on.
#[derive(Debug)]
pub struct CountingReader<R> {
    inner: R,
    counter: ByteCounter,
}

impl<R> CountingReader<R> {
    /// Count the bytes read from `inner`.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            counter: ByteCounter::default(),
        }
    }
    /// A handle on the count.
    pub fn counter(&self) -> ByteCounter {
        self.counter.clone()
    }
    /// Bytes read so far.
    pub fn count(&self) -> u64 {
        self.counter.get()
    }
    /// The wrapped reader.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.counter.add(n as u64);
        Ok(n)
    }
}

/// Turn an I/O error met while decoding `member` into the typed error it stands for.
pub fn classify(
    e: io::Error,
    archive: &Path,
    member: &str,
    compression: Compression,
) -> BackupError {
    if let Some(ended) = input_ended(&e) {
        return BackupError::Truncated {
            archive: archive.to_path_buf(),
            member: member.to_string(),
            detail: format!(
                "the last {} byte(s) of the member are missing",
                ended.missing
            ),
        };
    }
    if e.raw_os_error().is_some() {
        return BackupError::unreadable(archive, e);
    }
    let e = match e.into_inner() {
        Some(inner) => match inner.downcast::<BackupError>() {
            Ok(typed) => return *typed,
            Err(other) => other.to_string(),
        },
        None => "unexpected end of data".to_string(),
    };
    match compression {
        Compression::Gzip => BackupError::CorruptGzip {
            archive: archive.to_path_buf(),
            member: member.to_string(),
            detail: e,
        },
        Compression::Zstd => BackupError::CorruptZstd {
            archive: archive.to_path_buf(),
            member: member.to_string(),
            detail: e,
        },
        Compression::Plain => BackupError::CorruptNested {
            archive: archive.to_path_buf(),
            member: member.to_string(),
            detail: e,
        },
    }
}

/// One member of a backup, open for streaming its decoded bytes.
///
/// Read errors are `io::Error`s wrapping a [`BackupError`] that names the archive and the
/// member (`err.into_inner()` and downcast, or just display it).
pub struct OpenMember {
    /// The decoded bytes (SQL text for `db/database.sql.gz`, a tar for
    /// `<component>.tar.gz`).
    pub reader: Box<dyn Read + Send>,
    /// The member's compression, detected from its first bytes.
    pub compression: Compression,
    /// The member's size in the archive (compressed bytes).
    pub compressed_size: u64,
    /// Compressed bytes read so far (compare with `compressed_size` for progress).
    pub progress: ByteCounter,
    /// The archive (or unpacked backup directory).
    pub archive: PathBuf,
    /// The member's name (`db/database.sql.gz`).
    pub member: String,
}

impl std::fmt::Debug for OpenMember {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenMember")
            .field("archive", &self.archive)
            .field("member", &self.member)
            .field("compression", &self.compression)
            .field("compressed_size", &self.compressed_size)
            .finish()
    }
}

impl Read for OpenMember {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reader.read(buf)
    }
}

/// Maps decoder errors to typed errors naming archive and member.
struct Contextual {
    inner: Box<dyn Read + Send>,
    archive: PathBuf,
    member: String,
    compression: Compression,
}

impl Read for Contextual {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|e| {
            let kind = e.kind();
            let typed = classify(e, &self.archive, &self.member, self.compression);
            io::Error::new(kind, typed)
        })
    }
}

/// Where a member's bytes are: the archive file and the byte range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberLocation {
    /// The file holding the bytes (the archive, or the file in an unpacked backup).
    pub file: PathBuf,
    /// Offset of the member's first byte in `file`.
    pub offset: u64,
    /// Member size.
    pub size: u64,
}

/// Find `member` (e.g. `db/database.sql.gz`) in a backup archive or unpacked backup
/// directory, reading only tar headers.
pub fn locate_member(archive: &Path, member: &str) -> Result<MemberLocation, BackupError> {
    let wanted = clean_name(member);
    if !is_safe_path(wanted) || wanted.is_empty() {
        return Err(BackupError::UnsafeMemberName {
            member: member.to_string(),
        });
    }
    if archive.is_dir() {
        let file = archive.join(wanted);
        let meta = std::fs::metadata(&file).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                BackupError::MemberNotFound {
                    archive: archive.to_path_buf(),
                    member: wanted.to_string(),
                    available: list_dir_top(archive),
                    hint: member_hint(wanted),
                }
            } else {
                BackupError::unreadable(&file, e)
            }
        })?;
        if !meta.is_file() {
            return Err(BackupError::unreadable(
                &file,
                io::Error::other("not a regular file"),
            ));
        }
        return Ok(MemberLocation {
            file,
            offset: 0,
            size: meta.len(),
        });
    }
    let file =
        crate::limited::open_regular(archive).map_err(|e| BackupError::unreadable(archive, e))?;
    let len = file
        .metadata()
        .map_err(|e| BackupError::unreadable(archive, e))?
        .len();
    let mut tar = TarReader::new(StreamBuf::new(file, 16 * 1024)).with_len(len);
    let mut seen: Vec<String> = Vec::new();
    while let Some(entry) = tar.next_entry_seek().map_err(|e| tar_error(archive, e))? {
        let name = entry.clean_name();
        if name == wanted && entry.kind == EntryKind::File {
            if entry.data_offset + entry.size > len {
                return Err(BackupError::Truncated {
                    archive: archive.to_path_buf(),
                    member: wanted.to_string(),
                    detail: format!(
                        "{} of its {} bytes are missing",
                        entry.data_offset + entry.size - len,
                        entry.size
                    ),
                });
            }
            return Ok(MemberLocation {
                file: archive.to_path_buf(),
                offset: entry.data_offset,
                size: entry.size,
            });
        }
        if !name.contains('/') && seen.len() < 40 {
            seen.push(name.to_string());
        }
    }
    Err(BackupError::MemberNotFound {
        archive: archive.to_path_buf(),
        member: wanted.to_string(),
        available: if seen.is_empty() {
            "nothing".into()
        } else {
            seen.join(", ")
        },
        hint: member_hint(wanted),
    })
}

fn member_hint(member: &str) -> String {
    if member.starts_with("db/") {
        "a backup made with SKIP=db has no database dump; pick a backup that has one".into()
    } else {
        "the component may have been skipped when the backup was made (see `skipped` in `rewind inspect`)".into()
    }
}

fn list_dir_top(dir: &Path) -> String {
    match std::fs::read_dir(dir) {
        Ok(rd) => {
            let mut names: Vec<String> = rd
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names.join(", ")
        }
        Err(e) => format!("unreadable: {e}"),
    }
}

/// Open one member of a backup (archive file or unpacked directory) for streaming, decoded
/// according to its detected compression, without extracting anything: the archive is
/// opened, the member's header found by walking headers, and its bytes read in place.
pub fn open_member(archive: &Path, member: &str) -> Result<OpenMember, BackupError> {
    let loc = locate_member(archive, member)?;
    let member = clean_name(member).to_string();
    let mut file = File::open(&loc.file).map_err(|e| BackupError::unreadable(&loc.file, e))?;
    if loc.offset > 0 {
        use std::io::Seek;
        file.seek(io::SeekFrom::Start(loc.offset))
            .map_err(|e| BackupError::unreadable(&loc.file, e))?;
    }
    let counting = CountingReader::new(ExactTake::new(file, loc.size));
    let progress = counting.counter();
    let mut buffered = BufReader::with_capacity(READ_BUFFER, counting);
    let compression = {
        // Up to 4 bytes of magic (the buffer is empty, so one fill is enough unless the
        // file system returns tiny reads: fall back to plain detection then).
        let head = buffered
            .fill_buf()
            .map_err(|e| classify(e, archive, &member, Compression::Plain))?;
        Compression::detect(&head[..head.len().min(4)])
    };
    let inner =
        decoder(buffered, compression).map_err(|e| classify(e, archive, &member, compression))?;
    Ok(OpenMember {
        reader: Box::new(Contextual {
            inner,
            archive: archive.to_path_buf(),
            member: member.clone(),
            compression,
        }),
        compression,
        compressed_size: loc.size,
        progress,
        archive: archive.to_path_buf(),
        member,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn detects_by_magic_not_by_name() {
        assert_eq!(Compression::detect(&[0x1f, 0x8b, 8, 0]), Compression::Gzip);
        assert_eq!(
            Compression::detect(&[0x28, 0xb5, 0x2f, 0xfd]),
            Compression::Zstd
        );
        assert_eq!(Compression::detect(b"-- P"), Compression::Plain);
        assert_eq!(Compression::detect(b""), Compression::Plain);
    }

    #[test]
    fn decoders_check_integrity() {
        let text = b"COPY public.t (a) FROM stdin;\n1\n\\.\n".repeat(1000);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&text).unwrap();
        let mut gz = gz.finish().unwrap();
        // Two gzip members concatenated decode as one stream (gzip's multi-member format).
        let second = gz.clone();
        gz.extend_from_slice(&second);
        let mut out = Vec::new();
        decoder(&gz[..], Compression::Gzip)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out.len(), text.len() * 2);
        // A flipped byte in the CRC trailer of the last member is caught.
        let n = gz.len();
        gz[n - 6] ^= 0xff;
        let mut out = Vec::new();
        assert!(decoder(&gz[..], Compression::Gzip)
            .unwrap()
            .read_to_end(&mut out)
            .is_err());

        let zs = zstd::stream::encode_all(&text[..], 3).unwrap();
        let mut out = Vec::new();
        decoder(&zs[..], Compression::Zstd)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, text);
        let cut = &zs[..zs.len() / 2];
        let mut out = Vec::new();
        assert!(decoder(cut, Compression::Zstd)
            .unwrap()
            .read_to_end(&mut out)
            .is_err());
    }

    #[test]
    fn counting_reader_counts() {
        let data = vec![1u8; 10_000];
        let mut r = CountingReader::new(&data[..]);
        let c = r.counter();
        io::copy(&mut r, &mut io::sink()).unwrap();
        assert_eq!(c.get(), 10_000);
    }
}
