//! The journal: an append-only JSON-lines record of every action Rewind takes, written
//! before and after each action, in a `rewind/` directory under the backup path, mode
//! `0600`, both opened without following links and checked for owner on their handles
//! (the backup directory belongs to `git`). It holds step names, commands (argv), SQL statement classes and results, never
//! data and never passwords. The wizard reads it back to resume after a disconnect.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use crate::safefs::{self, SafeError};

use serde::{Deserialize, Serialize};

/// Errors writing or reading the journal.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot write the journal {path}: {source}. Rewind records every action before it runs it; free space or fix permissions on that directory, or pass --journal-dir")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the journal {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Safe(#[from] SafeError),
}

/// Open Rewind's own directory `dir` (`<backup_path>/rewind` or below): its parent resolved
/// once (links above it are an admin's choice), `dir` itself created `0700` when `create`,
/// opened without following a link and checked on the handle ([`safefs::private_dir`]).
pub fn open_private_dir(dir: &Path, create: bool) -> Result<Option<OwnedFd>, SafeError> {
    let name = dir
        .file_name()
        .ok_or_else(|| SafeError::refused(dir, "it has no name"))?;
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if create {
        fs::create_dir_all(parent).map_err(|e| SafeError::io("creating", parent, e))?;
    }
    let pfd = match nix::fcntl::open(
        parent,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(nix::errno::Errno::ENOENT) if !create => return Ok(None),
        Err(e) => return Err(SafeError::io("opening", parent, e)),
    };
    safefs::private_dir(pfd.as_fd(), name, dir, create)
}

/// Open the file `name` in Rewind's own directory `dir` for reading, as Rewind's private
/// files are read: the directory through [`open_private_dir`], the file without following
/// a link and refused, naming the path, when it is a link or not owned by the user running
/// Rewind. `Ok(None)` when the directory or the file does not exist.
pub fn open_private_file(dir: &Path, name: &str) -> Result<Option<File>, SafeError> {
    let path = dir.join(name);
    let Some(dfd) = open_private_dir(dir, false)? else {
        return Ok(None);
    };
    let fd = match nix::fcntl::openat(
        &dfd,
        name,
        OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(nix::errno::Errno::ENOENT) => return Ok(None),
        Err(nix::errno::Errno::ELOOP) => {
            return Err(SafeError::refused(&path, "it is a symbolic link"))
        }
        Err(e) => return Err(SafeError::io("opening", &path, e)),
    };
    let st = safefs::fstat(&fd).map_err(|e| SafeError::io("reading", &path, e))?;
    safefs::check_owned_file(&st, &path)?;
    Ok(Some(File::from(fd)))
}

/// Whether an entry announces an action or reports its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Begin,
    End,
    Note,
}

/// One journal line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// RFC 3339 UTC time.
    pub time: String,
    /// The step (`snapshot`, `drop`, `restore.data`, `rollback.install`, ...).
    pub step: String,
    pub stage: Stage,
    /// What is done, in words or as argv joined for display.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// `ok`, `failed`, `cancelled`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// Structured details (paths, counts, versions). Never data, never passwords.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub detail: serde_json::Value,
}

/// An open journal file.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: Mutex<File>,
}

impl Journal {
    /// Journal directory for a backup path: `<backup_path>/rewind`.
    pub fn dir_for(backup_path: &Path) -> PathBuf {
        backup_path.join("rewind")
    }

    /// Open (create, `0600`) `journal.jsonl` in `dir` (created `0700`) for appending. The
    /// directory and the file are opened without following links and refused (naming the
    /// path) when either is a link or not owned by the user running Rewind; the file's mode
    /// is set on its handle.
    pub fn open_in(dir: &Path) -> Result<Journal, JournalError> {
        let path = dir.join("journal.jsonl");
        let dfd = open_private_dir(dir, true)?.expect("created");
        let werr = |source| JournalError::Write {
            path: path.clone(),
            source,
        };
        let fd = nix::fcntl::openat(
            &dfd,
            "journal.jsonl",
            OFlag::O_WRONLY
                | OFlag::O_APPEND
                | OFlag::O_CREAT
                | OFlag::O_NOFOLLOW
                | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(|e| match e {
            nix::errno::Errno::ELOOP => {
                JournalError::Safe(SafeError::refused(&path, "it is a symbolic link"))
            }
            e => werr(e.into()),
        })?;
        let st = safefs::fstat(&fd).map_err(werr)?;
        safefs::check_owned_file(&st, &path)?;
        // An existing file keeps its mode; make sure it is private.
        nix::sys::stat::fchmod(&fd, Mode::from_bits_truncate(0o600)).map_err(|e| werr(e.into()))?;
        Ok(Journal {
            path,
            file: Mutex::new(File::from(fd)),
        })
    }

    /// Path of the journal file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append one entry and flush it to disk.
    pub fn write(&self, entry: &Entry) -> Result<(), JournalError> {
        let mut line = serde_json::to_string(entry).expect("journal entries serialise");
        line.push('\n');
        let mut f = self.file.lock().unwrap_or_else(|e| e.into_inner());
        f.write_all(line.as_bytes())
            .and_then(|_| f.sync_data())
            .map_err(|source| JournalError::Write {
                path: self.path.clone(),
                source,
            })
    }

    fn entry(
        step: &str,
        stage: Stage,
        action: Option<String>,
        result: Option<String>,
        detail: serde_json::Value,
    ) -> Entry {
        Entry {
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            step: step.to_string(),
            stage,
            action,
            result,
            detail,
        }
    }

    /// Record that `action` of `step` is about to run.
    pub fn begin(
        &self,
        step: &str,
        action: impl Into<String>,
        detail: serde_json::Value,
    ) -> Result<(), JournalError> {
        self.write(&Self::entry(
            step,
            Stage::Begin,
            Some(action.into()),
            None,
            detail,
        ))
    }

    /// Record how `step` ended.
    pub fn end(
        &self,
        step: &str,
        result: impl Into<String>,
        detail: serde_json::Value,
    ) -> Result<(), JournalError> {
        self.write(&Self::entry(
            step,
            Stage::End,
            None,
            Some(result.into()),
            detail,
        ))
    }

    /// Record a note (a decision, a warning the user accepted).
    pub fn note(
        &self,
        step: &str,
        text: impl Into<String>,
        detail: serde_json::Value,
    ) -> Result<(), JournalError> {
        self.write(&Self::entry(
            step,
            Stage::Note,
            Some(text.into()),
            None,
            detail,
        ))
    }

    /// Read the entries of `journal.jsonl` in a journal directory, opened as it is written:
    /// the directory and the file without following links, owned by this user. `Ok(None)`
    /// when there is no journal yet.
    pub fn read_in(dir: &Path) -> Result<Option<Vec<Entry>>, JournalError> {
        let Some(file) = open_private_file(dir, "journal.jsonl")? else {
            return Ok(None);
        };
        Ok(Some(
            BufReader::new(file)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| serde_json::from_str(&l).ok())
                .collect(),
        ))
    }

    /// Read all entries of a journal file. Lines that do not parse (a torn last line after
    /// a crash) are skipped.
    pub fn read(path: &Path) -> Result<Vec<Entry>, JournalError> {
        let f = File::open(path).map_err(|source| JournalError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(BufReader::new(f)
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| serde_json::from_str(&l).ok())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn appends_private_lines_and_reads_them_back() {
        let dir = tempfile::tempdir().unwrap();
        let jdir = dir.path().join("rewind");
        let j = Journal::open_in(&jdir).unwrap();
        j.begin(
            "drop",
            "drop all tables",
            serde_json::json!({"database": "gitlabhq_production"}),
        )
        .unwrap();
        j.end("drop", "ok", serde_json::Value::Null).unwrap();
        let mode = fs::metadata(j.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dmode = fs::metadata(&jdir).unwrap().permissions().mode() & 0o777;
        assert_eq!(dmode, 0o700);
        // A torn line is skipped.
        OpenOptions::new()
            .append(true)
            .open(j.path())
            .unwrap()
            .write_all(b"{\"time\":")
            .unwrap();
        let entries = Journal::read(j.path()).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].stage, Stage::Begin);
        assert_eq!(entries[1].result.as_deref(), Some("ok"));
    }

    #[test]
    fn refuses_a_linked_journal_and_leaves_its_target_alone() {
        let dir = tempfile::tempdir().unwrap();
        let jdir = dir.path().join("rewind");
        fs::create_dir(&jdir).unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, b"keep").unwrap();
        fs::set_permissions(&victim, fs::Permissions::from_mode(0o644)).unwrap();
        std::os::unix::fs::symlink(&victim, jdir.join("journal.jsonl")).unwrap();
        let err = Journal::open_in(&jdir).unwrap_err().to_string();
        assert!(
            err.contains("journal.jsonl") && err.contains("symbolic link"),
            "{err}"
        );
        assert_eq!(fs::read(&victim).unwrap(), b"keep");
        assert_eq!(
            fs::metadata(&victim).unwrap().permissions().mode() & 0o777,
            0o644
        );
        // A linked journal directory is refused too.
        let other = dir.path().join("other");
        fs::create_dir(&other).unwrap();
        std::os::unix::fs::symlink(&other, dir.path().join("linked")).unwrap();
        let err = Journal::open_in(&dir.path().join("linked"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("linked") && err.contains("symbolic link"),
            "{err}"
        );
        assert_eq!(fs::read_dir(&other).unwrap().count(), 0);
        // A hard link to another file is refused.
        fs::remove_file(jdir.join("journal.jsonl")).unwrap();
        fs::hard_link(&victim, jdir.join("journal.jsonl")).unwrap();
        let err = Journal::open_in(&jdir).unwrap_err().to_string();
        assert!(err.contains("hard links"), "{err}");
        assert_eq!(fs::read(&victim).unwrap(), b"keep");
    }
}
