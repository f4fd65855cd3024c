//! The repositories pushed to since the backup, which gitaly-backup's
//! `-remove-all-repositories` deletes: listed from the live database's `events` (GitLab's
//! push action) before anything is dropped, and optionally bundled aside (`git bundle
//! create --all`) into a root-owned `0700` directory, files `0600`, before gitaly-backup
//! replaces anything.

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::RepoError;
use crate::journal::Journal;
use crate::progress::{Sink, SinkExt};
use crate::restore::loss::PUSHED_ACTION;
use crate::root::HostRoot;
use crate::safefs;

/// A project repository pushed to since the backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PushedRepo {
    pub storage: String,
    /// Relative path in the storage (`@hashed/ab/cd/<sha256>.git`).
    pub relative_path: String,
    /// The project's path (`group/project`), when routes has it.
    pub project_path: String,
    pub pushes: i64,
    /// The last push, as the database has it (UTC).
    pub last_push: String,
}

/// The project repositories with a push event after `since`, from the live database
/// (read-only). Empty when the database has no `events` or `projects`.
pub fn pushed_since(
    client: &mut postgres::Client,
    since: DateTime<Utc>,
) -> Result<Vec<PushedRepo>, postgres::Error> {
    let mut tx = client.build_transaction().read_only(true).start()?;
    // `timestamp without time zone` columns hold UTC: compare in UTC either way.
    tx.batch_execute("SET LOCAL TimeZone = 'UTC'; SET LOCAL statement_timeout = '30s'")?;
    let has = |tx: &mut postgres::Transaction<'_>, t: &str| -> Result<bool, postgres::Error> {
        Ok(tx
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&t])?
            .get(0))
    };
    if !has(&mut tx, "events")? || !has(&mut tx, "projects")? {
        return Ok(Vec::new());
    }
    let pr = has(&mut tx, "project_repositories")? && has(&mut tx, "shards")?;
    let (storage, disk, joins) = if pr {
        (
            "COALESCE(s.name, 'default')",
            "COALESCE(pr.disk_path, '@hashed/' || substr(h.h, 1, 2) || '/' || substr(h.h, 3, 2) || '/' || h.h)",
            "LEFT JOIN project_repositories pr ON pr.project_id = p.id LEFT JOIN shards s ON s.id = pr.shard_id",
        )
    } else {
        (
            "'default'",
            "'@hashed/' || substr(h.h, 1, 2) || '/' || substr(h.h, 3, 2) || '/' || h.h",
            "",
        )
    };
    let sql = format!(
        "SELECT ({storage})::text, ({disk})::text, COALESCE(rt.path, '')::text, e.n, \
                to_char(e.last, 'YYYY-MM-DD HH24:MI:SS') \
           FROM (SELECT project_id, count(*) AS n, max(created_at) AS last FROM events \
                  WHERE action = $1 AND created_at > $2::text::timestamp AND project_id IS NOT NULL \
                  GROUP BY project_id) e \
           JOIN projects p ON p.id = e.project_id \
           CROSS JOIN LATERAL (SELECT encode(sha256(p.id::text::bytea), 'hex') AS h) h \
           {joins} \
           LEFT JOIN routes rt ON rt.source_type = 'Project' AND rt.source_id = p.id \
          ORDER BY 3, 2"
    );
    let since_text = since.format("%Y-%m-%d %H:%M:%S%.6f").to_string();
    let rows = tx.query(&sql, &[&PUSHED_ACTION, &since_text])?;
    Ok(rows
        .iter()
        .map(|r| PushedRepo {
            storage: r.get(0),
            relative_path: format!("{}.git", r.get::<_, String>(1)),
            project_path: r.get(2),
            pushes: r.get(3),
            last_push: r.get(4),
        })
        .collect())
}

/// One repository bundled aside.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bundled {
    pub project_path: String,
    /// Host path of the repository.
    pub repository: PathBuf,
    /// Host path of the bundle, `None` when the repository was not on disk.
    pub bundle: Option<PathBuf>,
    pub bytes: u64,
}

fn bundle_name(r: &PushedRepo) -> String {
    let mut n: String = format!("{}_{}", r.storage, r.relative_path)
        .chars()
        .map(|c| if c == '/' { '_' } else { c })
        .collect();
    n.push_str(".bundle");
    n
}

/// Bundle each of `pushed` (`git bundle create - --all`, run as the repository's owner, its
/// output written by Rewind to a `0600` file it created) into a new `0700` directory
/// `rewind-pushed-<id>.<unique>` in `parent` (host path, the backup directory). The
/// repository directories are resolved without following links; one behind a link is
/// refused. Returns the directory and what was bundled.
pub fn bundle_aside(
    root: &HostRoot,
    pushed: &[PushedRepo],
    parent: &Path,
    backup_id: &str,
    sink: &dyn Sink,
    journal: &Journal,
) -> Result<(PathBuf, Vec<Bundled>), RepoError> {
    let storages = super::storage_paths(root);
    let parent_fd = nix::fcntl::open(
        parent,
        nix::fcntl::OFlag::O_RDONLY
            | nix::fcntl::OFlag::O_DIRECTORY
            | nix::fcntl::OFlag::O_NOFOLLOW
            | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| RepoError::Bundle {
        path: parent.to_path_buf(),
        detail: e.to_string(),
    })?;
    let name = safefs::unique_name(&format!("rewind-pushed-{backup_id}."));
    let dir = parent.join(&name);
    let dir_fd = safefs::private_dir(parent_fd.as_fd(), &name, &dir, true)?.ok_or_else(|| {
        RepoError::Bundle {
            path: dir.clone(),
            detail: "not created".into(),
        }
    })?;
    journal.begin(
        "repositories.bundle_pushed",
        format!(
            "bundle {} repositories pushed to since the backup",
            pushed.len()
        ),
        serde_json::json!({"dir": root.host_path(&dir), "repositories": pushed}),
    )?;
    let mut out = Vec::new();
    for r in pushed {
        let Some(storage) = storages.get(&r.storage) else {
            sink.warn(format!(
                "{}: storage `{}` has no directory on this host (Gitaly's config.toml): not bundled",
                r.project_path, r.storage
            ));
            continue;
        };
        let repo_host = storage.join(&r.relative_path);
        let (real, links) = safefs::resolve(root, &root.join(&repo_host));
        if !links.is_empty() {
            return Err(RepoError::Bundle {
                path: repo_host,
                detail:
                    "the path goes through a symbolic link; Rewind does not follow links as root"
                        .into(),
            });
        }
        let Ok(meta) = std::fs::symlink_metadata(&real) else {
            sink.warn(format!(
                "{}: {} is not on disk: nothing to bundle",
                r.project_path,
                repo_host.display()
            ));
            out.push(Bundled {
                project_path: r.project_path.clone(),
                repository: repo_host,
                bundle: None,
                bytes: 0,
            });
            continue;
        };
        if !meta.is_dir() {
            return Err(RepoError::Bundle {
                path: repo_host,
                detail: "not a directory".into(),
            });
        }
        let file_name = bundle_name(r);
        let fd = nix::fcntl::openat(
            dir_fd.as_fd(),
            OsStr::new(&file_name),
            nix::fcntl::OFlag::O_WRONLY
                | nix::fcntl::OFlag::O_CREAT
                | nix::fcntl::OFlag::O_EXCL
                | nix::fcntl::OFlag::O_NOFOLLOW
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .map_err(|e| RepoError::Bundle {
            path: dir.join(&file_name),
            detail: e.to_string(),
        })?;
        let file = File::from(fd);
        let owner = {
            use std::os::unix::fs::MetadataExt;
            meta.uid()
        };
        // As root, git runs as the repository's owner (its config is the owner's to write);
        // Rewind writes what it prints.
        let mut cmd = if safefs::euid() != 0 || owner == 0 {
            let mut c = std::process::Command::new("git");
            c.arg("-c")
                .arg(format!("safe.directory={}", real.display()));
            c
        } else {
            let user = nix::unistd::User::from_uid(owner.into())
                .ok()
                .flatten()
                .ok_or_else(|| RepoError::Bundle {
                    path: repo_host.clone(),
                    detail: format!("its owner (uid {owner}) has no account name"),
                })?;
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", &user.name, "--", "git"]);
            c
        };
        cmd.arg("-C")
            .arg(&real)
            .args(["bundle", "create", "-", "--all"])
            .stdin(Stdio::null())
            .stdout(Stdio::from(file))
            .stderr(Stdio::piped());
        let output = cmd.output().map_err(|e| RepoError::Bundle {
            path: repo_host.clone(),
            detail: format!("running git: {e}"),
        })?;
        let bundle = dir.join(&file_name);
        let bytes = std::fs::metadata(&bundle).map(|m| m.len()).unwrap_or(0);
        if !output.status.success() {
            let err = String::from_utf8_lossy(&output.stderr).trim().to_string();
            // An empty repository has nothing to bundle: not an error.
            if err.contains("empty bundle") || err.contains("Refusing to create empty bundle") {
                let _ = nix::unistd::unlinkat(
                    dir_fd.as_fd(),
                    OsStr::new(&file_name),
                    nix::unistd::UnlinkatFlags::NoRemoveDir,
                );
                out.push(Bundled {
                    project_path: r.project_path.clone(),
                    repository: repo_host,
                    bundle: None,
                    bytes: 0,
                });
                continue;
            }
            journal.end(
                "repositories.bundle_pushed",
                "failed",
                serde_json::json!({"repository": repo_host, "error": err}),
            )?;
            return Err(RepoError::Bundle {
                path: repo_host,
                detail: format!("git bundle create failed: {err}"),
            });
        }
        sink.info(format!(
            "{}: bundled to {} ({bytes} bytes)",
            r.project_path,
            root.host_path(&bundle).display()
        ));
        out.push(Bundled {
            project_path: r.project_path.clone(),
            repository: repo_host,
            bundle: Some(root.host_path(&bundle)),
            bytes,
        });
    }
    journal.end(
        "repositories.bundle_pushed",
        "ok",
        serde_json::json!({"dir": root.host_path(&dir), "bundled": out}),
    )?;
    Ok((root.host_path(&dir), out))
}
