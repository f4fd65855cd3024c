//! Where the wizard's restore reads dumps from: an unpacked backup directory (the engine's
//! `DirSource`), or a `_gitlab_backup.tar`, whose member is streamed in place (the file is
//! read from the member's offset for its size; nothing is unpacked to disk).

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rewind_engine::restore::database::{DirSource, DumpSource, OpenedDump};

/// A dump source for a backup path (archive or directory).
pub fn source_for(path: &Path) -> Box<dyn DumpSource + Send + Sync> {
    if path.is_dir() {
        Box::new(DirSource {
            dir: path.to_path_buf(),
        })
    } else {
        Box::new(TarSource {
            archive: path.to_path_buf(),
        })
    }
}

/// Members of a GitLab backup tar.
#[derive(Debug, Clone)]
pub struct TarSource {
    pub archive: PathBuf,
}

fn clean(name: &str) -> &str {
    name.trim_start_matches("./")
}

impl TarSource {
    /// Offset and size of a regular-file member.
    fn locate(&self, member: &str) -> Result<Option<(u64, u64)>, String> {
        let f =
            File::open(&self.archive).map_err(|e| format!("{}: {e}", self.archive.display()))?;
        let mut a = tar::Archive::new(BufReader::new(f));
        let entries = a
            .entries()
            .map_err(|e| format!("{}: {e}", self.archive.display()))?;
        for e in entries {
            let e = e.map_err(|e| format!("{}: {e}", self.archive.display()))?;
            if !e.header().entry_type().is_file() {
                continue;
            }
            let name = e
                .path()
                .map_err(|e| format!("{}: {e}", self.archive.display()))?
                .to_string_lossy()
                .into_owned();
            if clean(&name) == member {
                return Ok(Some((e.raw_file_position(), e.size())));
            }
        }
        Ok(None)
    }
}

struct Counting<R> {
    inner: R,
    n: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.n.fetch_add(k as u64, Ordering::Relaxed);
        Ok(k)
    }
}

impl DumpSource for TarSource {
    fn has(&self, member: &str) -> bool {
        matches!(self.locate(member), Ok(Some(_)))
    }

    fn open(&self, member: &str) -> Result<OpenedDump, String> {
        let (offset, size) = self
            .locate(member)?
            .ok_or_else(|| format!("{member} is not in {}", self.archive.display()))?;
        let mut f =
            File::open(&self.archive).map_err(|e| format!("{}: {e}", self.archive.display()))?;
        f.seek(SeekFrom::Start(offset))
            .map_err(|e| format!("{}: {e}", self.archive.display()))?;
        let n = Arc::new(AtomicU64::new(0));
        let mut buffered = BufReader::with_capacity(
            1 << 20,
            Counting {
                inner: f.take(size),
                n: n.clone(),
            },
        );
        let magic = buffered
            .fill_buf()
            .map_err(|e| format!("{member}: {e}"))?
            .to_vec();
        let reader: Box<dyn Read + Send> = if magic.starts_with(&[0x1f, 0x8b]) {
            Box::new(flate2::bufread::MultiGzDecoder::new(buffered))
        } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Box::new(
                zstd::stream::read::Decoder::with_buffer(buffered)
                    .map_err(|e| format!("{member}: {e}"))?,
            )
        } else {
            Box::new(buffered)
        };
        Ok(OpenedDump {
            reader,
            compressed_size: size,
            compressed_read: Arc::new(move || n.load(Ordering::Relaxed)),
        })
    }

    fn describe(&self) -> String {
        self.archive.display().to_string()
    }
}
