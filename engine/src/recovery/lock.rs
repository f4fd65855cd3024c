//! One recovery at a time: a lock file for the host in a directory only root may write
//! (`/run/rewind/`, not the backup directory, which the `git` user can write), and a
//! PostgreSQL advisory lock per database. Both name the holder when they are taken.

use std::fs;
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;

use crate::pg::conn::{describe_pg_error, ConnError, ConnSpec};
use crate::root::HostRoot;

/// Host path of the lock file.
pub const HOST_LOCK: &str = "/run/rewind/recovery.lock";

/// The advisory lock key Rewind takes in each database (`pg_try_advisory_lock`): "rewind"
/// in ASCII.
pub const ADVISORY_KEY: i64 = 0x7265_7769_6e64_i64;

/// Errors taking a lock.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another Rewind recovery is running on this host (pid {pid}, started {started}: `{command}`; lock {path}). Wait for it to finish or stop it; nothing was changed")]
    HostBusy {
        path: PathBuf,
        pid: String,
        started: String,
        command: String,
    },
    #[error("cannot use the lock file {path}: {detail}. Nothing was changed")]
    HostFile { path: PathBuf, detail: String },
    #[error("another session holds Rewind's lock on database `{database}` (pid {pid}): another recovery is restoring it. Wait for it to finish; nothing was changed")]
    DatabaseBusy { database: String, pid: String },
    #[error("taking Rewind's lock on database `{database}` failed: {detail}. Nothing was changed")]
    Database { database: String, detail: String },
    #[error(transparent)]
    Connect(#[from] ConnError),
}

/// This process's command line, as recorded in the host lock and shown to whoever finds
/// it taken, with passwords redacted: `scheme://user:PASSWORD@host` and libpq's
/// `password=...` (in one argument or the next).
pub fn invocation() -> String {
    redact_args(std::env::args())
}

/// [`invocation`] for any argument list.
pub fn redact_args(args: impl IntoIterator<Item = String>) -> String {
    args.into_iter()
        .map(|a| redact_arg(&a))
        .collect::<Vec<_>>()
        .join(" ")
}

fn redact_arg(a: &str) -> String {
    let mut out = a.to_string();
    // URL userinfo: `://user:secret@`.
    if let Some(scheme) = out.find("://") {
        let rest = &out[scheme + 3..];
        if let Some(at) = rest.find('@') {
            if let Some(colon) = rest[..at].find(':') {
                let start = scheme + 3 + colon + 1;
                let end = scheme + 3 + at;
                out.replace_range(start..end, "<redacted>");
            }
        }
    }
    // key=value connection strings and URL query parameters: `password=secret`.
    let lower = out.to_ascii_lowercase();
    if let Some(i) = lower.find("password=") {
        let start = i + "password=".len();
        let end = out[start..]
            .find([' ', '&'])
            .map(|e| start + e)
            .unwrap_or(out.len());
        out.replace_range(start..end, "<redacted>");
    }
    out
}

/// The host lock, held until dropped. Re-entrant within one thread: an engine step that
/// takes it while its caller, on the same thread, already holds it (a command that runs
/// several steps) gets a guard of its own, and the lock is released when the outermost
/// guard is dropped. Another thread or process is refused, as before. Not `Send`: a guard
/// is dropped on the thread that took it.
#[derive(Debug)]
pub struct HostLock {
    /// `None` for a nested guard.
    _file: Option<nix::fcntl::Flock<fs::File>>,
    pub path: PathBuf,
    _thread: std::marker::PhantomData<*const ()>,
}

thread_local! {
    /// The host lock files this thread holds, with their guard counts.
    static HELD: std::cell::RefCell<Vec<(PathBuf, usize)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

impl Drop for HostLock {
    fn drop(&mut self) {
        HELD.with(|h| {
            let mut held = h.borrow_mut();
            if let Some(i) = held.iter().position(|(p, _)| *p == self.path) {
                held[i].1 -= 1;
                if held[i].1 == 0 {
                    held.remove(i);
                }
            }
        });
        // The file lock itself (outermost guard) is released when `_file` drops, after
        // this.
    }
}

/// Take the host lock (non-blocking). `command` is recorded for whoever finds it taken.
pub fn host(root: &HostRoot, command: &str) -> Result<HostLock, LockError> {
    let path = root.join(HOST_LOCK);
    let nested = HELD.with(|h| {
        let mut held = h.borrow_mut();
        match held.iter_mut().find(|(p, _)| *p == path) {
            Some(entry) => {
                entry.1 += 1;
                true
            }
            None => false,
        }
    });
    if nested {
        return Ok(HostLock {
            _file: None,
            path,
            _thread: std::marker::PhantomData,
        });
    }
    let lock = take_host(path, command)?;
    HELD.with(|h| h.borrow_mut().push((lock.path.clone(), 1)));
    Ok(lock)
}

fn take_host(path: PathBuf, command: &str) -> Result<HostLock, LockError> {
    let err = |detail: String| LockError::HostFile {
        path: path.clone(),
        detail,
    };
    let dir = path.parent().expect("lock has a parent");
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| err(format!("creating {}: {e}", dir.display())))?;
    let meta = fs::symlink_metadata(dir).map_err(|e| err(e.to_string()))?;
    let me = nix::unistd::geteuid().as_raw();
    if !meta.is_dir() || meta.uid() != me || meta.permissions().mode() & 0o022 != 0 {
        return Err(err(format!(
            "{} must be a directory owned by uid {me} that no one else may write (it is {}, uid {}, mode {:o})",
            dir.display(),
            if meta.file_type().is_symlink() { "a link" } else if meta.is_dir() { "a directory" } else { "not a directory" },
            meta.uid(),
            meta.permissions().mode() & 0o7777
        )));
    }
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(&path)
        .map_err(|e| err(e.to_string()))?;
    let mut locked =
        match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
            Ok(l) => l,
            Err((mut file, nix::errno::Errno::EWOULDBLOCK)) => {
                let mut text = String::new();
                let _ = (&mut file).take(4096).read_to_string(&mut text);
                let mut lines = text.lines();
                return Err(LockError::HostBusy {
                    path: path.clone(),
                    pid: lines.next().unwrap_or("?").to_string(),
                    started: lines.next().unwrap_or("?").to_string(),
                    command: redact_args(lines.next().unwrap_or("?").split(' ').map(String::from)),
                });
            }
            Err((_, e)) => return Err(err(e.to_string())),
        };
    let record = format!(
        "{}\n{}\n{}\n",
        std::process::id(),
        chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ"),
        redact_args(command.replace('\n', " ").split(' ').map(String::from))
    );
    locked
        .set_len(0)
        .and_then(|_| locked.rewind())
        .and_then(|_| locked.write_all(record.as_bytes()))
        .map_err(|e| err(e.to_string()))?;
    Ok(HostLock {
        _file: Some(locked),
        path,
        _thread: std::marker::PhantomData,
    })
}

/// A database's advisory lock, held by its own session until dropped.
pub struct DatabaseLock {
    pub client: postgres::Client,
    pub database: String,
}

impl std::fmt::Debug for DatabaseLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseLock")
            .field("database", &self.database)
            .finish()
    }
}

/// Take Rewind's advisory lock on the database of `spec` (non-blocking).
pub fn database(spec: &ConnSpec) -> Result<DatabaseLock, LockError> {
    let database = spec.dbname.clone();
    let mut client = spec.connect()?;
    let dberr = |e: postgres::Error| LockError::Database {
        database: database.clone(),
        detail: describe_pg_error(&e),
    };
    let got: bool = client
        .query_one("SELECT pg_try_advisory_lock($1)", &[&ADVISORY_KEY])
        .map_err(dberr)?
        .get(0);
    if !got {
        let pid: Option<i32> = client
            .query_opt(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted \
                 AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                 AND classid = ($1::bigint >> 32)::oid AND objid = ($1::bigint & 4294967295)::oid AND objsubid = 1",
                &[&ADVISORY_KEY],
            )
            .map_err(dberr)?
            .map(|r| r.get(0));
        return Err(LockError::DatabaseBusy {
            database,
            pid: pid.map(|p| p.to_string()).unwrap_or_else(|| "?".into()),
        });
    }
    Ok(DatabaseLock { client, database })
}

/// Who holds the host lock right now, if anyone (read without taking it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Holder {
    pub pid: String,
    pub started: String,
    pub command: String,
}

/// Whether a recovery holds the host lock, found without touching the lock: a restore
/// test must never make a recovery's `flock` fail, so it looks the lock file's inode up in
/// `/proc/locks` instead of trying the lock itself. `None` when no lock file exists, it
/// is not a regular file, or no process holds it.
pub fn host_holder(root: &HostRoot) -> Option<Holder> {
    let path = root.join(HOST_LOCK);
    let meta = fs::symlink_metadata(&path).ok()?;
    if !meta.is_file() {
        return None;
    }
    let locks = fs::read_to_string("/proc/locks").ok()?;
    let held = locks
        .lines()
        .any(|l| lock_line_matches(l, meta.dev(), meta.ino()));
    if !held {
        return None;
    }
    let mut text = String::new();
    if let Ok(f) = fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(&path)
    {
        let _ = f.take(4096).read_to_string(&mut text);
    }
    let mut lines = text.lines();
    Some(Holder {
        pid: lines.next().unwrap_or("?").to_string(),
        started: lines.next().unwrap_or("?").to_string(),
        command: lines.next().unwrap_or("?").to_string(),
    })
}

/// A `/proc/locks` line (`1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF`) for a flock
/// on the file `dev`/`ino` (major and minor in hex, inode in decimal).
fn lock_line_matches(line: &str, dev: u64, ino: u64) -> bool {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let Some(i) = fields.iter().position(|f| *f == "FLOCK") else {
        return false;
    };
    let Some(id) = fields.get(i + 4) else {
        return false;
    };
    let parts: Vec<&str> = id.split(':').collect();
    if parts.len() != 3 {
        return false;
    }
    let major = nix::sys::stat::major(dev);
    let minor = nix::sys::stat::minor(dev);
    u64::from_str_radix(parts[0], 16) == Ok(major)
        && u64::from_str_radix(parts[1], 16) == Ok(minor)
        && parts[2].parse::<u64>() == Ok(ino)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_lock_is_reentrant_in_one_thread_and_released_by_the_outermost_guard() {
        let dir = tempfile::tempdir().unwrap();
        let root = HostRoot::new(dir.path().to_path_buf());
        let outer = host(&root, "rewind services finish").unwrap();
        let inner = host(&root, "config restore").unwrap();
        drop(inner);
        // Still held: another open file description cannot take it.
        let f = fs::File::open(&outer.path).unwrap();
        let f = match nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock) {
            Ok(_) => panic!("released by the inner guard"),
            Err((f, e)) => {
                assert_eq!(e, nix::errno::Errno::EWOULDBLOCK);
                f
            }
        };
        drop(outer);
        assert!(
            nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock).is_ok(),
            "released by the outermost guard"
        );
        // And taken afresh afterwards.
        let again = host(&root, "x").unwrap();
        assert!(again._file.is_some());
    }

    #[test]
    fn recorded_command_lines_never_hold_a_password() {
        let line = redact_args(
            [
                "rewind",
                "restore",
                "--database-url",
                "postgresql://gitlab:hunter2@db.example:5432/gitlabhq_production?sslmode=require",
                "host=db user=gitlab password=s3cret dbname=x",
                "postgresql://gitlab@db/x?password=qwerty&sslmode=require",
            ]
            .map(String::from),
        );
        for secret in ["hunter2", "s3cret", "qwerty"] {
            assert!(!line.contains(secret), "{line}");
        }
        assert!(
            line.contains("postgresql://gitlab:<redacted>@db.example:5432"),
            "{line}"
        );
        assert!(line.contains("sslmode=require"), "{line}");
    }

    #[test]
    fn second_holder_is_refused_with_the_first_ones_pid() {
        let dir = tempfile::tempdir().unwrap();
        let root = HostRoot::new(dir.path());
        let first = host(&root, "rewind restore --backup A").unwrap();
        // Another thread (as another process) is refused.
        let err = std::thread::scope(|sc| {
            sc.spawn(|| host(&root, "rewind restore --backup B").map(|_| ()))
                .join()
                .unwrap()
        })
        .unwrap_err()
        .to_string();
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        assert!(err.contains("rewind restore --backup A"), "{err}");
        let mode = fs::metadata(&first.path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        drop(first);
        host(&root, "again").unwrap();
    }

    #[test]
    fn a_planted_link_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let root = HostRoot::new(dir.path());
        let victim = dir.path().join("victim");
        fs::write(&victim, "keep").unwrap();
        let lock = root.join(HOST_LOCK);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(lock.parent().unwrap())
            .unwrap();
        std::os::unix::fs::symlink(&victim, &lock).unwrap();
        assert!(host(&root, "x").is_err());
        assert_eq!(fs::read_to_string(&victim).unwrap(), "keep");
    }

    #[test]
    fn the_holder_is_seen_without_taking_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let root = HostRoot::new(dir.path());
        assert_eq!(host_holder(&root), None);
        let lock = host(&root, "rewind restore --backup A").unwrap();
        let h = host_holder(&root).expect("holder seen");
        assert_eq!(h.pid, std::process::id().to_string());
        assert_eq!(h.command, "rewind restore --backup A");
        drop(lock);
        assert_eq!(host_holder(&root), None);
        // Looking did not take it.
        host(&root, "again").unwrap();
    }
}
