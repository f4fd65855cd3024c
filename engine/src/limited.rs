//! Bounded reads of small text files (configuration, manifests): a FIFO, a device or a huge
//! file where one was expected must give a clear error, not a hang or an unbounded read.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Largest configuration file Rewind reads (database.yml, gitlab.rb, gitlab.yml, version
/// files).
pub const MAX_CONFIG: u64 = 16 << 20;
/// Largest `backup_information.yml` Rewind reads (real ones are under 1 KiB).
pub const MAX_MANIFEST: u64 = 1 << 20;

/// Why a bounded read was refused (inside the `io::Error` [`read_text`] returns).
#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    #[error("`{path}` is not a regular file")]
    NotRegular { path: String },
    #[error("`{path}` is larger than {}, the most Rewind reads from this file", human(*.limit))]
    TooLarge { path: String, limit: u64 },
}

/// `1 MiB`, `16 MiB`, `512 KiB`, `100 bytes`.
pub fn human(bytes: u64) -> String {
    if bytes >= 1 << 20 && bytes % (1 << 20) == 0 {
        format!("{} MiB", bytes >> 20)
    } else if bytes >= 1 << 10 && bytes % (1 << 10) == 0 {
        format!("{} KiB", bytes >> 10)
    } else {
        format!("{bytes} bytes")
    }
}

/// Whether `e` is a refusal of [`read_text`] (not an I/O error of the file system).
pub fn is_limit_error(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|i| i.is::<LimitError>())
}

/// Open `path` for reading without blocking on a FIFO, and refuse anything that is not a
/// regular file (the check is on the opened handle, so it cannot be swapped in between).
pub fn open_regular(path: &Path) -> io::Result<File> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(path)?;
    if !f.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            LimitError::NotRegular {
                path: path.display().to_string(),
            },
        ));
    }
    // Regular files ignore O_NONBLOCK; clear it anyway for clarity.
    let _ = nix::fcntl::fcntl(
        &f,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty()),
    );
    Ok(f)
}

/// Read a regular file of at most `limit` bytes as text (invalid UTF-8 is an error).
pub fn read_text(path: &Path, limit: u64) -> io::Result<String> {
    let f = open_regular(path)?;
    let mut buf = Vec::new();
    f.take(limit + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            LimitError::TooLarge {
                path: path.display().to_string(),
                limit,
            },
        ));
    }
    String::from_utf8(buf).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("`{}` is not UTF-8 text", path.display()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_fifos_devices_and_large_files() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("database.yml");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        // Without a writer, a blocking open would hang here.
        let e = read_text(&fifo, MAX_CONFIG).unwrap_err();
        assert!(is_limit_error(&e), "{e}");
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let e = read_text(Path::new("/dev/zero"), MAX_CONFIG).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let big = dir.path().join("gitlab.rb");
        std::fs::write(&big, vec![b'#'; 2048]).unwrap();
        let e = read_text(&big, 1024).unwrap_err();
        assert!(is_limit_error(&e));
        assert!(
            e.to_string().contains("gitlab.rb") && e.to_string().contains("1 KiB"),
            "{e}"
        );
        assert_eq!(read_text(&big, 2048).unwrap().len(), 2048);
    }
}
