//! Restoring repositories with `gitaly-backup`, exactly as GitLab's restore runs it:
//!
//! `gitaly-backup restore -path <backup_path>/repositories -layout manifest
//! -remove-all-repositories <storages> -id <backup_id>`
//!
//! with `GITALY_SERVERS` (base64 JSON of each storage's address and token, from the rendered
//! `gitlab.yml`) in the environment and one JSON line per repository on stdin (enumerated from
//! the restored database). Existing repositories on those storages are deleted by
//! gitaly-backup, not moved aside: the caller must warn first ([`warning`]).

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::exec::{Cmd, ExecError};
use crate::root::HostRoot;

/// gitaly-backup of an Omnibus install (host path).
pub const GITALY_BACKUP: &str = "/opt/gitlab/embedded/bin/gitaly-backup";
/// The rendered gitlab.yml of an Omnibus install (host path).
pub const OMNIBUS_GITLAB_YML: &str = "/var/opt/gitlab/gitlab-rails/etc/gitlab.yml";
/// Omnibus' default Gitaly socket.
pub const DEFAULT_GITALY_ADDRESS: &str = "unix:/var/opt/gitlab/gitaly/gitaly.socket";

/// Errors of the repository restore.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("{path} not found: Rewind restores repositories with GitLab's gitaly-backup, which this host does not have. Restore them with GitLab instead: `gitlab-backup restore BACKUP={backup_id} SKIP=db,uploads,builds,artifacts,lfs,terraform_state,registry,pages,packages,ci_secure_files,external_diffs` (that restores only the repositories)")]
    NoGitalyBackup { path: PathBuf, backup_id: String },
    #[error("the backup has no repositories/ directory in {path}: unpack the archive's repositories/ into the backup directory first (GitLab extracts the whole archive there), or skip repositories")]
    NoRepositories { path: PathBuf },
    #[error("`{name}` is not a storage name")]
    BadStorage { name: String },
    #[error("gitaly-backup failed: {0}. Repositories on the listed storages may be partly restored; fix the cause (is Gitaly running?) and run the repository restore again")]
    Exec(#[from] ExecError),
    #[error("listing the repositories to restore from the database: {0}")]
    Db(#[from] postgres::Error),
}

/// One repository for gitaly-backup's stdin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RepoRef {
    pub storage_name: String,
    pub relative_path: String,
    pub gl_project_path: String,
    pub always_create: bool,
}

/// A planned repository restore.
#[derive(Debug, Clone, Serialize)]
pub struct RepoPlan {
    pub cmd: Cmd,
    pub storages: Vec<String>,
    /// Host path of `<backup_path>/repositories`.
    pub path: PathBuf,
}

fn valid_storage(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

/// Storage addresses and token from the rendered gitlab.yml (`production.repositories.
/// storages.<name>.gitaly_address`, `production.gitaly.token`); Omnibus defaults when absent.
pub fn gitaly_servers(root: &HostRoot, storages: &[String]) -> serde_json::Value {
    let yml = std::fs::read_to_string(root.join(OMNIBUS_GITLAB_YML))
        .ok()
        .and_then(|t| serde_saphyr::from_str::<serde_json::Value>(&t).ok());
    let token = yml
        .as_ref()
        .and_then(|v| v.pointer("/production/gitaly/token"))
        .and_then(|t| t.as_str())
        .unwrap_or("")
        .to_string();
    let mut out = serde_json::Map::new();
    for s in storages {
        let addr = yml
            .as_ref()
            .and_then(|v| {
                v.pointer(&format!(
                    "/production/repositories/storages/{s}/gitaly_address"
                ))
            })
            .and_then(|a| a.as_str())
            .unwrap_or(DEFAULT_GITALY_ADDRESS);
        out.insert(
            s.clone(),
            serde_json::json!({ "address": addr, "token": token }),
        );
    }
    serde_json::Value::Object(out)
}

fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        s.push(T[(n >> 18) as usize & 63] as char);
        s.push(T[(n >> 12) as usize & 63] as char);
        s.push(if c.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        s.push(if c.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
    }
    s
}

/// Plan the repository restore: `backup_path` is a host path; `storages` are the storages
/// whose repositories are removed and restored (GitLab: all configured storages, or
/// `REPOSITORIES_STORAGES`).
pub fn plan(
    root: &HostRoot,
    backup_path: &Path,
    backup_id: &str,
    storages: &[String],
) -> Result<RepoPlan, RepoError> {
    let bin = root.join(GITALY_BACKUP);
    if !bin.is_file() {
        return Err(RepoError::NoGitalyBackup {
            path: PathBuf::from(GITALY_BACKUP),
            backup_id: backup_id.to_string(),
        });
    }
    for s in storages {
        if !valid_storage(s) {
            return Err(RepoError::BadStorage { name: s.clone() });
        }
    }
    let path = root.join(backup_path).join("repositories");
    if !path.is_dir() {
        return Err(RepoError::NoRepositories {
            path: Path::new(backup_path).join("repositories"),
        });
    }
    let servers = gitaly_servers(root, storages);
    let cmd = Cmd::new(bin)
        .args(["restore", "-path"])
        .arg(&path)
        .args(["-layout", "manifest", "-remove-all-repositories"])
        .arg(storages.join(","))
        .args(["-id", backup_id])
        .env("GITALY_SERVERS", base64(servers.to_string().as_bytes()));
    Ok(RepoPlan {
        cmd,
        storages: storages.to_vec(),
        path,
    })
}

/// The warning shown before the restore.
pub fn warning(storages: &[String]) -> String {
    format!(
        "gitaly-backup deletes every existing repository on the storage(s) {} before restoring the backup's repositories. They are not moved aside.",
        storages.join(", ")
    )
}

/// The repositories to restore, from the restored database, as GitLab enumerates them:
/// each project's repository (always created), wiki and design repository, each snippet's
/// repository, each group wiki.
pub fn repositories_from_db(client: &mut postgres::Client) -> Result<Vec<RepoRef>, RepoError> {
    let mut out = Vec::new();
    let has = |client: &mut postgres::Client, table: &str| -> Result<bool, postgres::Error> {
        Ok(client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])?
            .get(0))
    };
    if has(client, "project_repositories")? {
        for r in client.query(
            "SELECT s.name::text, pr.disk_path::text, COALESCE(rt.path, '')::text \
               FROM project_repositories pr \
               JOIN shards s ON s.id = pr.shard_id \
               LEFT JOIN routes rt ON rt.source_type = 'Project' AND rt.source_id = pr.project_id \
              ORDER BY pr.project_id",
            &[],
        )? {
            let storage: String = r.get(0);
            let disk: String = r.get(1);
            let path: String = r.get(2);
            for (suffix, gl_suffix, always) in [
                (".git", "", true),
                (".wiki.git", ".wiki", false),
                (".design.git", ".design", false),
            ] {
                out.push(RepoRef {
                    storage_name: storage.clone(),
                    relative_path: format!("{disk}{suffix}"),
                    gl_project_path: format!("{path}{gl_suffix}"),
                    always_create: always,
                });
            }
        }
    }
    if has(client, "snippet_repositories")? {
        for r in client.query(
            "SELECT s.name::text, sr.disk_path::text, sr.snippet_id \
               FROM snippet_repositories sr JOIN shards s ON s.id = sr.shard_id \
              ORDER BY sr.snippet_id",
            &[],
        )? {
            let id: i64 = r.get(2);
            out.push(RepoRef {
                storage_name: r.get(0),
                relative_path: format!("{}.git", r.get::<_, String>(1)),
                gl_project_path: format!("snippets/{id}"),
                always_create: false,
            });
        }
    }
    if has(client, "group_wiki_repositories")? {
        for r in client.query(
            "SELECT s.name::text, g.disk_path::text, COALESCE(rt.path, '')::text \
               FROM group_wiki_repositories g JOIN shards s ON s.id = g.shard_id \
               LEFT JOIN routes rt ON rt.source_type = 'Namespace' AND rt.source_id = g.group_id \
              ORDER BY g.group_id",
            &[],
        )? {
            out.push(RepoRef {
                storage_name: r.get(0),
                relative_path: format!("{}.git", r.get::<_, String>(1)),
                gl_project_path: format!("{}.wiki", r.get::<_, String>(2)),
                always_create: false,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn plans_gitlabs_exact_command_or_explains() {
        let dir = tempfile::tempdir().unwrap();
        let root = HostRoot::new(dir.path());
        let bp = Path::new("/var/opt/gitlab/backups");
        let err = plan(&root, bp, "1712_2024_04_05_16.10.3-ee", &["default".into()]).unwrap_err();
        assert!(
            err.to_string()
                .contains("gitlab-backup restore BACKUP=1712_2024_04_05_16.10.3-ee SKIP=db,"),
            "{err}"
        );
        let bin = root.join(GITALY_BACKUP);
        std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
        std::fs::write(&bin, "#!/bin/sh\n").unwrap();
        std::fs::create_dir_all(root.join(bp).join("repositories")).unwrap();
        let p = plan(
            &root,
            bp,
            "1712_2024_04_05_16.10.3-ee",
            &["default".into(), "nfs1".into()],
        )
        .unwrap();
        let argv = p.cmd.argv();
        assert_eq!(
            argv[1..],
            [
                "restore".to_string(),
                "-path".into(),
                root.join(bp).join("repositories").display().to_string(),
                "-layout".into(),
                "manifest".into(),
                "-remove-all-repositories".into(),
                "default,nfs1".into(),
                "-id".into(),
                "1712_2024_04_05_16.10.3-ee".into(),
            ]
        );
        assert_eq!(p.cmd.env[0].0, "GITALY_SERVERS");
        assert!(plan(&root, bp, "x", &["a,b".into()]).is_err());
        assert!(warning(&["default".into()]).contains("deletes every existing repository"));
    }
}
