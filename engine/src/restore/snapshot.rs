//! The safety snapshot: before anything is dropped, a `pg_dump -Fc` of the database as it
//! is now, so that a restore that goes wrong can itself be undone.
//!
//! The `pg_dump` used has the server's major version ([`crate::pg::tools`]). It runs with
//! an argv (no shell), the connection in `PG*` environment variables (the password only in
//! `PGPASSWORD`, never on the command line), and writes to a file Rewind creates itself
//! with mode `0600` under `<backup_path>/rewind/snapshots/`: the directories and the file are
//! opened without following links and checked for owner on their handles. Free space is checked against
//! `pg_database_size` first.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd};

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::journal::{Journal, JournalError};
use crate::pg::conn::ConnSpec;
use crate::pg::tools::{self, PgTool, ToolError};
use crate::progress::{Cancel, Event, Phase, Sink, SinkExt};
use crate::root::HostRoot;
use crate::safefs::{self, SafeError};

/// Errors taking the snapshot. Any of them stops the restore before the drop.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("cannot take the safety snapshot: {0}")]
    Tool(#[from] ToolError),
    #[error("not enough free space for the safety snapshot of `{database}` in {dir}: {available} bytes free, the database is {needed} bytes. Free space there, use another --backup-dir, or pass --no-snapshot to restore without a way back")]
    NoSpace {
        database: String,
        dir: PathBuf,
        available: u64,
        needed: u64,
    },
    #[error("cannot {step} {path}: {source}")]
    Io {
        step: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("pg_dump of `{database}` failed ({status}): {stderr}. The partial snapshot was removed; nothing was dropped")]
    DumpFailed {
        database: String,
        status: String,
        stderr: String,
    },
    #[error("cannot read the server facts of `{database}` for its safety snapshot (size, version): {detail}. Nothing was changed by the snapshot; check that the database is running and reachable")]
    Server { database: String, detail: String },
    #[error("safety snapshot of `{database}` cancelled; the partial file was removed and nothing was dropped")]
    Cancelled { database: String },
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Safe(#[from] SafeError),
}

/// A finished snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    pub database: String,
    /// Path of the `.dump` file (custom format, `0600`).
    pub path: PathBuf,
    pub bytes: u64,
    /// The `pg_dump` used.
    pub tool: PgTool,
    /// How to put the database back from it.
    pub restore_command: String,
}

/// Directory of snapshots for a backup path: `<backup_path>/rewind/snapshots`.
pub fn snapshot_dir(backup_path: &Path) -> PathBuf {
    Journal::dir_for(backup_path).join("snapshots")
}

/// File name component for a database name: anything but `[A-Za-z0-9_.-]` becomes `_`.
pub(crate) fn file_safe(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    s.trim_start_matches('.').to_string()
}

/// Where the snapshot of `database` taken now goes:
/// `<backup_path>/rewind/snapshots/<db>-<UTC YYYYmmddTHHMMSSZ>.dump`.
pub fn snapshot_path(
    backup_path: &Path,
    database: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> PathBuf {
    snapshot_dir(backup_path).join(format!(
        "{}-{}.dump",
        file_safe(database),
        now.format("%Y%m%dT%H%M%SZ")
    ))
}

/// The command that restores a snapshot into its database, complete: `pg_restore` of the
/// server's major (`pg_restore` on PATH when none is found), the connection as Rewind made
/// it (`-h`/`-p`/`-U`, never a password), run as the OS user the server's peer rule admits
/// for the role (`runuser -u git --` on Omnibus), reading the file on stdin.
pub fn restore_command(pg_restore: &Path, spec: &ConnSpec, path: &Path) -> String {
    let sudo = spec
        .connect_as()
        .os_user()
        .map(|u| format!("runuser -u {} -- ", shell_word(&u.name)))
        .unwrap_or_default();
    // The snapshot is root's 0600 file: the shell running this as root reads it and the
    // client, running as that user, gets it on stdin.
    format!(
        "{sudo}{} -h {} -p {} -U {} --clean --if-exists -d {} < {}",
        shell_word(&pg_restore.display().to_string()),
        shell_word(&spec.host),
        spec.port,
        shell_word(&spec.user),
        shell_word(&spec.dbname),
        shell_word(&path.display().to_string())
    )
}

/// `pg_restore` of the server's major, for [`restore_command`].
pub fn pg_restore_for(root: &HostRoot, server_version_num: u32) -> std::path::PathBuf {
    tools::find_tool(
        root,
        "pg_restore",
        tools::major_from_version_num(server_version_num),
    )
    .map(|t| t.path)
    .unwrap_or_else(|_| "pg_restore".into())
}

/// Which entries of a snapshot's table of contents (`pg_restore -l`) the restoring role
/// can drop and create again: not the extensions (and their comments), which belong to the
/// superuser that created them, and not the objects (and their grants) another role owns
/// (on Omnibus `gitlab-psql`'s `pg_shadow_lookup`, the `public` schema of
/// `pg_database_owner`). Returns the list to restore and the entries left out, one line each.
pub fn restorable_entries(
    toc: &str,
    role: &str,
    roles: &std::collections::BTreeSet<String>,
) -> (String, Vec<String>) {
    let mut keep = String::new();
    let mut left = Vec::new();
    for line in toc.lines() {
        // `ID; CATALOG OID DESC NAMESPACE TAG OWNER` (comments start with `;`).
        let rest = line
            .split_once("; ")
            .filter(|(id, _)| !id.is_empty() && id.chars().all(|c| c.is_ascii_digit()))
            .and_then(|(_, r)| r.splitn(3, ' ').nth(2));
        let Some(rest) = rest else {
            keep.push_str(line);
            keep.push('\n');
            continue;
        };
        let owner = (!line.ends_with(' '))
            .then(|| rest.rsplit(' ').next())
            .flatten()
            .filter(|o| roles.contains(*o));
        let extension = rest.starts_with("EXTENSION ") || rest.starts_with("COMMENT - EXTENSION ");
        if extension || owner.is_some_and(|o| o != role) {
            left.push(rest.trim_end().to_string());
        } else {
            keep.push_str(line);
            keep.push('\n');
        }
    }
    (keep, left)
}

/// Put a database back as its safety snapshot holds it (`rewind undo` after the in-place
/// strategy), in one transaction: `pg_restore --clean --if-exists` of the entries the
/// connecting role can restore ([`restorable_entries`]) as SQL, run as root on the file
/// opened without following links, piped into `psql --single-transaction` with
/// `ON_ERROR_STOP` as the role (run as the OS user its peer rule admits). Any error rolls
/// everything back: the database is then as it was before. Journaled before it runs.
/// Objects created since the snapshot that it does not hold stay (as with `pg_restore
/// --clean`). Returns what was done, in words.
pub fn restore_snapshot(
    root: &HostRoot,
    spec: &ConnSpec,
    path: &Path,
    journal: &Journal,
) -> Result<String, String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut client = spec.connect().map_err(|e| e.to_string())?;
    let version: i32 = client
        .query_one("SELECT current_setting('server_version_num')::int4", &[])
        .map_err(|e| e.to_string())?
        .get(0);
    let roles: std::collections::BTreeSet<String> = client
        .query("SELECT rolname::text FROM pg_roles", &[])
        .map_err(|e| e.to_string())?
        .iter()
        .map(|r| r.get(0))
        .collect();
    drop(client);
    let major = tools::major_from_version_num(version.max(0) as u32);
    let tool = |name: &str| {
        tools::find_tool(root, name, major)
            .map(|t| t.path)
            .map_err(|e| format!("{name}: {e}"))
    };
    let (pg_restore, psql) = (tool("pg_restore")?, tool("psql")?);
    let open = || {
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(OFlag::O_NOFOLLOW.bits())
            .open(path)
            .map_err(|e| format!("{}: {e}", path.display()))
    };
    let listed = Command::new(&pg_restore)
        .arg("-l")
        .stdin(Stdio::from(open()?))
        .output()
        .map_err(|e| format!("cannot run {}: {e}", pg_restore.display()))?;
    if !listed.status.success() {
        return Err(format!(
            "{} is not a readable snapshot: {}",
            path.display(),
            String::from_utf8_lossy(&listed.stderr).trim()
        ));
    }
    let (list, left_out) =
        restorable_entries(&String::from_utf8_lossy(&listed.stdout), &spec.user, &roles);
    // The list for `pg_restore -L`: a private temporary file (0600, created exclusively).
    let mut list_file = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
    list_file
        .write_all(list.as_bytes())
        .map_err(|e| e.to_string())?;
    journal
        .begin(
            "undo.snapshot",
            format!(
                "pg_restore --clean --if-exists {} | psql --single-transaction -d {}",
                path.display(),
                spec.dbname
            ),
            serde_json::json!({"database": spec.dbname, "path": path, "left_out": left_out}),
        )
        .map_err(|e| e.to_string())?;
    let mut sql = Command::new(&pg_restore)
        .args(["--clean", "--if-exists", "-f", "-", "-L"])
        .arg(list_file.path())
        .stdin(Stdio::from(open()?))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", pg_restore.display()))?;
    let sql_out = sql.stdout.take().expect("piped");
    let loaded = spec
        .client_command(&psql, "rewind-undo")
        .args([
            "-X",
            "-q",
            "--no-password",
            "--single-transaction",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
        ])
        .arg(&spec.dbname)
        .stdin(Stdio::from(sql_out))
        .stdout(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", psql.display()));
    let made = sql.wait_with_output();
    let failure = match (&loaded, &made) {
        (Err(e), _) => Some(e.clone()),
        (Ok(o), _) if !o.status.success() => Some(format!(
            "psql exited with {}: {}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .take(5)
                .collect::<Vec<_>>()
                .join(" | ")
        )),
        (_, Err(e)) => Some(format!("pg_restore: {e}")),
        (_, Ok(m)) if !m.status.success() => Some(format!(
            "pg_restore exited with {}: {}",
            m.status,
            String::from_utf8_lossy(&m.stderr).trim()
        )),
        _ => None,
    };
    journal
        .end(
            "undo.snapshot",
            if failure.is_none() { "ok" } else { "failed" },
            serde_json::json!({"error": failure}),
        )
        .map_err(|e| e.to_string())?;
    if let Some(f) = failure {
        return Err(format!(
            "{f}. The transaction was rolled back: `{}` is unchanged",
            spec.dbname
        ));
    }
    Ok(format!(
        "`{}` restored from {} in one transaction{}",
        spec.dbname,
        path.display(),
        if left_out.is_empty() {
            String::new()
        } else {
            format!(
                " (left as they are, not the restoring role's: {})",
                left_out.join(", ")
            )
        }
    ))
}

/// Quote a word for display in a shell command line (shown to the user, never executed).
fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./:=@".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Free bytes available to unprivileged users on the filesystem holding `dir`.
pub fn free_bytes(dir: &Path) -> Result<u64, SnapshotError> {
    let st = nix::sys::statvfs::statvfs(dir).map_err(|e| SnapshotError::Io {
        step: "check free space in",
        path: dir.to_path_buf(),
        source: std::io::Error::from(e),
    })?;
    Ok((st.blocks_available() as u64).saturating_mul(st.fragment_size() as u64))
}

/// Refuse when `dir` has less than `needed` bytes free.
pub fn check_free_space(dir: &Path, database: &str, needed: u64) -> Result<u64, SnapshotError> {
    let available = free_bytes(dir)?;
    if available < needed {
        return Err(SnapshotError::NoSpace {
            database: database.to_string(),
            dir: dir.to_path_buf(),
            available,
            needed,
        });
    }
    Ok(available)
}

/// The `pg_dump` command for a snapshot: argv only, connection in the environment, run
/// as the OS user the server admits for the role ([`ConnSpec::client_command`]).
pub fn pg_dump_command(tool: &Path, spec: &ConnSpec) -> Command {
    let mut cmd = spec.client_command(tool, "rewind-snapshot");
    cmd.args(["--format=custom", "--no-password"]);
    cmd
}

/// What [`take_snapshot`] needs to know about the server (from the inventory).
#[derive(Debug, Clone)]
pub struct SnapshotTarget<'a> {
    pub spec: &'a ConnSpec,
    /// `server_version_num`.
    pub server_version_num: u32,
    /// `pg_database_size`, bytes.
    pub database_size: u64,
}

/// Take the safety snapshot. Journaled before (path, tool) and after (bytes, result).
pub fn take_snapshot(
    root: &HostRoot,
    backup_path: &Path,
    target: &SnapshotTarget<'_>,
    journal: Option<&Journal>,
    sink: &dyn Sink,
    cancel: &Cancel,
) -> Result<Snapshot, SnapshotError> {
    let database = target.spec.dbname.clone();
    let major = tools::major_from_version_num(target.server_version_num);
    let tool = tools::find_tool(root, "pg_dump", major)?;
    let dir = snapshot_dir(backup_path);
    // `<backup_path>/rewind/snapshots`, both Rewind's own: opened without following links
    // and checked on their handles (the backup directory belongs to `git`).
    let jfd =
        crate::journal::open_private_dir(&Journal::dir_for(backup_path), true)?.expect("created");
    let dfd = safefs::private_dir(jfd.as_fd(), std::ffi::OsStr::new("snapshots"), &dir, true)?
        .expect("created");
    check_free_space(&dir, &database, target.database_size)?;
    let path = snapshot_path(backup_path, &database, chrono::Utc::now());
    let file_name = path.file_name().expect("a file name").to_os_string();
    let argv = format!("{} --format=custom --no-password", tool.path.display());
    if let Some(j) = journal {
        j.begin(
            "snapshot",
            argv.clone(),
            serde_json::json!({
                "database": database,
                "path": path,
                "pg_dump": tool.version_line,
                "database_size": target.database_size,
            }),
        )?;
    }
    sink.event(Event::PhaseStarted {
        phase: Phase::Snapshot,
        total: Some(target.database_size),
    });
    let result = run_pg_dump(
        &tool,
        target.spec,
        dfd.as_fd(),
        &file_name,
        &path,
        target.database_size,
        sink,
        cancel,
    );
    sink.event(Event::PhaseFinished {
        phase: Phase::Snapshot,
        ok: result.is_ok(),
    });
    match result {
        Ok(bytes) => {
            let snap = Snapshot {
                database: database.clone(),
                restore_command: restore_command(
                    &pg_restore_for(root, target.server_version_num),
                    target.spec,
                    &path,
                ),
                path,
                bytes,
                tool,
            };
            if let Some(j) = journal {
                j.end(
                    "snapshot",
                    "ok",
                    serde_json::json!({"path": snap.path, "bytes": bytes, "restore_command": snap.restore_command}),
                )?;
            }
            sink.event(Event::SnapshotWritten {
                database: database.clone(),
                path: snap.path.clone(),
                bytes,
            });
            sink.info(format!(
                "safety snapshot written to {} ({} bytes); to go back to it: {}",
                snap.path.display(),
                bytes,
                snap.restore_command
            ));
            Ok(snap)
        }
        Err(e) => {
            let _ = nix::unistd::unlinkat(
                &dfd,
                file_name.as_os_str(),
                nix::unistd::UnlinkatFlags::NoRemoveDir,
            );
            if let Some(j) = journal {
                let r = if matches!(e, SnapshotError::Cancelled { .. }) {
                    "cancelled"
                } else {
                    "failed"
                };
                j.end(
                    "snapshot",
                    r,
                    serde_json::json!({"error": e.to_string(), "path": path}),
                )?;
            }
            Err(e)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn run_pg_dump(
    tool: &PgTool,
    spec: &ConnSpec,
    dir: BorrowedFd<'_>,
    file_name: &std::ffi::OsStr,
    path: &Path,
    expected: u64,
    sink: &dyn Sink,
    cancel: &Cancel,
) -> Result<u64, SnapshotError> {
    let database = spec.dbname.clone();
    let ioerr = |step: &'static str| {
        move |source: std::io::Error| SnapshotError::Io {
            step,
            path: path.to_path_buf(),
            source,
        }
    };
    let fd = nix::fcntl::openat(
        dir,
        file_name,
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    )
    .map_err(|e| ioerr("create")(e.into()))?;
    nix::sys::stat::fchmod(&fd, Mode::from_bits_truncate(0o600))
        .map_err(|e| ioerr("set the mode of")(e.into()))?;
    let file = File::from(fd);
    // A second handle on the same file: its size, as pg_dump writes it.
    let watch = file.try_clone().map_err(ioerr("open"))?;
    let mut child = pg_dump_command(&tool.path, spec)
        .stdin(Stdio::null())
        .stdout(Stdio::from(file))
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| SnapshotError::Io {
            step: "run",
            path: tool.path.clone(),
            source,
        })?;
    // Collect stderr on a thread so pg_dump never blocks on a full pipe.
    let stderr = child.stderr.take();
    let err_thread = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut e) = stderr {
            let _ = e.read_to_string(&mut s);
        }
        s
    });
    let started = Instant::now();
    let mut last = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(source) => {
                return Err(SnapshotError::Io {
                    step: "wait for pg_dump writing",
                    path: path.to_path_buf(),
                    source,
                })
            }
        }
        if cancel.is_cancelled() {
            let _ = child.kill();
            let _ = child.wait();
            return Err(SnapshotError::Cancelled { database });
        }
        if last.elapsed() >= Duration::from_millis(500) {
            last = Instant::now();
            let done = watch.metadata().map(|m| m.len()).unwrap_or(0);
            sink.event(Event::Progress {
                phase: Phase::Snapshot,
                done,
                total: Some(expected),
                current: Some(format!("{database} ({}s)", started.elapsed().as_secs())),
                rows: None,
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = err_thread.join().unwrap_or_default();
    if !status.success() {
        return Err(SnapshotError::DumpFailed {
            database,
            status: status.to_string(),
            stderr: stderr.trim().to_string(),
        });
    }
    let bytes = watch.metadata().map_err(ioerr("stat"))?.len();
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_restorable_entries_leave_out_extensions_and_other_roles_objects() {
        let toc = ";\n; Archive created at 2026-11-30 00:35:15 UTC\n;\n\
2; 3079 16385 EXTENSION - pg_trgm \n\
3351; 0 0 COMMENT - EXTENSION pg_trgm \n\
216; 1255 16400 FUNCTION public pg_shadow_lookup(text) gitlab-psql\n\
3352; 0 0 ACL public FUNCTION pg_shadow_lookup(text) gitlab-psql\n\
215; 1259 16390 TABLE public projects gitlab\n\
217; 1259 16391 TABLE public gitlab-psql gitlab\n\
3350; 0 16390 TABLE DATA public projects gitlab\n";
        let roles = ["gitlab", "gitlab-psql", "pg_database_owner"]
            .into_iter()
            .map(String::from)
            .collect();
        let (keep, left) = super::restorable_entries(toc, "gitlab", &roles);
        assert_eq!(
            left,
            vec![
                "EXTENSION - pg_trgm",
                "COMMENT - EXTENSION pg_trgm",
                "FUNCTION public pg_shadow_lookup(text) gitlab-psql",
                "ACL public FUNCTION pg_shadow_lookup(text) gitlab-psql",
            ]
        );
        // The role's own objects stay, a table named like a role too (owner is last).
        assert!(keep.contains("215; 1259 16390 TABLE public projects gitlab\n"));
        assert!(keep.contains("217; 1259 16391 TABLE public gitlab-psql gitlab\n"));
        assert!(keep.contains("3350; 0 16390 TABLE DATA public projects gitlab\n"));
        assert!(keep.starts_with(";\n; Archive created"));
    }

    use super::*;
    use crate::pg::cluster::TempCluster;
    use crate::pg::conn::Secret;
    use crate::progress::NullSink;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn names_and_commands() {
        let t = chrono::DateTime::parse_from_rfc3339("2024-05-06T07:08:09Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let p = snapshot_path(Path::new("/var/opt/gitlab/backups"), "gitlab/../x y", t);
        assert_eq!(
            p,
            Path::new(
                "/var/opt/gitlab/backups/rewind/snapshots/gitlab_.._x_y-20240506T070809Z.dump"
            )
        );
        let mut tcp = ConnSpec::omnibus_default();
        tcp.host = "db.example".into();
        tcp.port = 5433;
        tcp.user = "gitlab".into();
        tcp.dbname = "it's".into();
        tcp.password = Secret::new(Some("hunter2".into()));
        let cmd = restore_command(
            Path::new("/usr/bin/pg_restore"),
            &tcp,
            Path::new("/b/s.dump"),
        );
        assert_eq!(
            cmd,
            "/usr/bin/pg_restore -h db.example -p 5433 -U gitlab --clean --if-exists -d 'it'\\''s' < /b/s.dump"
        );
        assert!(!cmd.contains("hunter2"));
        let mut spec = ConnSpec::omnibus_default();
        spec.password = Secret::new(Some("hunter2".into()));
        let cmd = pg_dump_command(Path::new("/usr/bin/pg_dump"), &spec);
        let argv: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(!argv.iter().any(|a| a.contains("hunter2")));
        assert!(cmd
            .get_envs()
            .any(|(k, v)| k == "PGPASSWORD" && v == Some(std::ffi::OsStr::new("hunter2"))));
    }

    #[test]
    fn refuses_when_space_is_short() {
        let dir = tempfile::tempdir().unwrap();
        let e = check_free_space(dir.path(), "gl", u64::MAX).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("--no-snapshot") && msg.contains("gl"), "{msg}");
        assert!(check_free_space(dir.path(), "gl", 1).is_ok());
    }

    #[test]
    fn snapshot_is_private_and_restorable() {
        let c = TempCluster::start().unwrap();
        c.create_database("gl").unwrap();
        let mut db = c.connect_app("gl").unwrap();
        db.batch_execute(
            "CREATE TABLE projects (id bigserial PRIMARY KEY, name text);
             INSERT INTO projects (name) SELECT 'p' || g FROM generate_series(1, 1000) g;",
        )
        .unwrap();
        let inv = crate::restore::inventory::inventory(&mut db).unwrap();
        let backups = tempfile::tempdir().unwrap();
        let journal = Journal::open_in(&Journal::dir_for(backups.path())).unwrap();
        let spec = c.conn_spec("gl");
        let snap = take_snapshot(
            &HostRoot::system(),
            backups.path(),
            &SnapshotTarget {
                spec: &spec,
                server_version_num: inv.server_version_num,
                database_size: inv.database_size,
            },
            Some(&journal),
            &NullSink,
            &Cancel::new(),
        )
        .unwrap();
        assert!(snap
            .path
            .starts_with(backups.path().join("rewind/snapshots")));
        let mode = fs::metadata(&snap.path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(snap.bytes > 0);
        // Change the database, then run the command Rewind prints to go back: the data is
        // back (as the OS user the peer rule admits, the private file read by the shell).
        db.batch_execute("DROP TABLE projects").unwrap();
        assert!(
            snap.restore_command.contains(" -d gl < "),
            "{}",
            snap.restore_command
        );
        let out = std::process::Command::new("sh")
            .args(["-c", &snap.restore_command])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            snap.restore_command,
            String::from_utf8_lossy(&out.stderr)
        );
        let n: i64 = db
            .query_one("SELECT count(*) FROM projects", &[])
            .unwrap()
            .get(0);
        assert_eq!(n, 1000);
        let entries = Journal::read(journal.path()).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].result.as_deref(), Some("ok"));
    }

    #[test]
    fn failed_pg_dump_leaves_no_file() {
        let c = TempCluster::start().unwrap();
        let spec = c.conn_spec("no_such_db");
        let backups = tempfile::tempdir().unwrap();
        let v: i32 = c
            .connect("postgres")
            .unwrap()
            .query_one("SELECT current_setting('server_version_num')::int", &[])
            .unwrap()
            .get(0);
        let e = take_snapshot(
            &HostRoot::system(),
            backups.path(),
            &SnapshotTarget {
                spec: &spec,
                server_version_num: v as u32,
                database_size: 1,
            },
            None,
            &NullSink,
            &Cancel::new(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("no_such_db"), "{e}");
        let left: Vec<_> = fs::read_dir(snapshot_dir(backups.path()))
            .unwrap()
            .collect();
        assert!(left.is_empty());
    }
}
