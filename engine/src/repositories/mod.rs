//! Restoring repositories with `gitaly-backup`, as GitLab's restore runs it
//! (`lib/backup/gitaly_backup.rb`):
//!
//! `gitaly-backup restore -path <dir>/repositories -layout manifest [-parallel N]
//! [-parallel-storage N] -remove-all-repositories <storages> -id <backup_id>`
//! (`-server-side` instead of `-path ... -layout manifest` for server-side backups),
//!
//! with `GITALY_SERVERS` (base64 JSON of each storage's address and token, from the rendered
//! `gitlab.yml`) in the environment and one JSON line per repository on stdin (enumerated from
//! the restored database). Existing repositories on those storages are deleted by
//! gitaly-backup, not moved aside: the caller warns first ([`warning`]) and can bundle the
//! repositories pushed to since the backup aside ([`pushed`]).

pub mod manifest;
pub mod pushed;
pub mod run;
pub mod standin;

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
/// Gitaly's configuration on an Omnibus install (host path).
pub const GITALY_CONFIG: &str = "/var/opt/gitlab/gitaly/config.toml";
/// Omnibus' default storage directory of the `default` storage (host path).
pub const DEFAULT_STORAGE_PATH: &str = "/var/opt/gitlab/git-data/repositories";

/// Errors of the repository restore.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("{path} not found: Rewind restores repositories with GitLab's gitaly-backup, which this host does not have. Restore them with GitLab instead: `gitlab-backup restore BACKUP={backup_id} SKIP=db,uploads,builds,artifacts,lfs,terraform_state,registry,pages,packages,ci_secure_files,external_diffs` (that restores only the repositories)")]
    NoGitalyBackup { path: PathBuf, backup_id: String },
    #[error("the backup has no repositories/ directory in {path}: pick a backup with repositories, or leave them out with --skip repositories")]
    NoRepositories { path: PathBuf },
    #[error("gitaly-backup would restore nothing: the backup's metadata names backup id `{id}`, but the manifests in repositories/manifests are for {found}; gitaly-backup skips every repository whose manifest it does not find. Nothing was changed; check the backup (`rewind inspect`)")]
    IdMismatch { id: String, found: String },
    #[error(
        "extracting repositories/ from {archive}: {detail}. The repositories were not touched"
    )]
    Extract { archive: PathBuf, detail: String },
    #[error("gitaly-backup failed ({status}): {restored} repositories restored, {skipped} skipped, {failed} failed of {expected}. Repositories on {storages} may be partly restored (gitaly-backup removed the existing ones first); fix the cause (is Gitaly running? `gitlab-ctl status gitaly`) and run the restore again{tail}")]
    Failed {
        status: String,
        restored: u64,
        skipped: u64,
        failed: u64,
        expected: u64,
        storages: String,
        tail: String,
    },
    #[error("bundling {path} aside failed: {detail}. Nothing was replaced yet; free space or fix the repository, or leave out --bundle-pushed")]
    Bundle { path: PathBuf, detail: String },
    #[error(transparent)]
    Safe(#[from] crate::safefs::SafeError),
    #[error(transparent)]
    Journal(#[from] crate::journal::JournalError),
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

pub fn valid_storage(s: &str) -> bool {
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

/// How gitaly-backup is run, from the backup's metadata and the user's flags.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RepoOptions {
    /// `-id`: the backup's `:backup_id:` (manifest layout), when its metadata has one.
    pub backup_id: Option<String>,
    /// `-server-side`: the repositories are in Gitaly's backup storage, not in the archive.
    pub server_side: bool,
    /// `-parallel N`.
    pub parallel: Option<u32>,
    /// `-parallel-storage N`.
    pub parallel_storage: Option<u32>,
    /// `-remove-all-repositories <storages>`; empty: not passed (GitLab leaves it out when
    /// the backup was limited to paths).
    pub remove_all: Vec<String>,
}

impl RepoOptions {
    /// The options GitLab uses for `backup`: its `:backup_id:`, `:repositories_server_side:`,
    /// and every storage (or `:repositories_storages:`) removed unless the backup was limited
    /// to `:repositories_paths:`.
    pub fn for_backup(
        info: Option<&crate::backup::metadata::BackupInformation>,
        configured_storages: &[String],
        parallel: Option<u32>,
        parallel_storage: Option<u32>,
    ) -> RepoOptions {
        let server_side = info
            .and_then(|i| i.repositories_server_side)
            .unwrap_or(false);
        let limited_to_paths = info.is_some_and(|i| !i.repositories_paths.is_empty());
        let remove_all = if limited_to_paths {
            Vec::new()
        } else {
            info.map(|i| i.repositories_storages.clone())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| configured_storages.to_vec())
        };
        RepoOptions {
            backup_id: info.and_then(|i| i.backup_id.clone()),
            server_side,
            parallel,
            parallel_storage,
            remove_all,
        }
    }
}

/// gitaly-backup's arguments for a restore from `path` (ignored for server-side backups),
/// in GitLab's order.
pub fn restore_args(path: &Path, o: &RepoOptions) -> Vec<std::ffi::OsString> {
    let mut a: Vec<std::ffi::OsString> = vec!["restore".into()];
    if o.server_side {
        a.push("-server-side".into());
    } else {
        a.push("-path".into());
        a.push(path.as_os_str().to_os_string());
        a.push("-layout".into());
        a.push("manifest".into());
    }
    if let Some(n) = o.parallel {
        a.push("-parallel".into());
        a.push(n.to_string().into());
    }
    if let Some(n) = o.parallel_storage {
        a.push("-parallel-storage".into());
        a.push(n.to_string().into());
    }
    if !o.remove_all.is_empty() {
        a.push("-remove-all-repositories".into());
        a.push(o.remove_all.join(",").into());
    }
    if let Some(id) = &o.backup_id {
        a.push("-id".into());
        a.push(id.into());
    }
    a
}

/// gitaly-backup's stdin: one JSON object per line, as GitLab's `schedule_backup_job`
/// writes them.
pub fn stdin_lines(repos: &[RepoRef]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in repos {
        out.extend_from_slice(
            serde_json::to_string(r)
                .expect("plain strings serialize")
                .as_bytes(),
        );
        out.push(b'\n');
    }
    out
}

/// The storages this host configures: the rendered gitlab.yml's
/// `production.repositories.storages`, else `default`.
pub fn configured_storages(root: &HostRoot) -> Vec<String> {
    let yml = std::fs::read_to_string(root.join(OMNIBUS_GITLAB_YML))
        .ok()
        .and_then(|t| serde_saphyr::from_str::<serde_json::Value>(&t).ok());
    let mut names: Vec<String> = yml
        .as_ref()
        .and_then(|v| v.pointer("/production/repositories/storages"))
        .and_then(|s| s.as_object())
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    names.retain(|n| valid_storage(n));
    if names.is_empty() {
        names.push("default".into());
    }
    names
}

/// Gitaly's storage directories (host paths), from `/var/opt/gitlab/gitaly/config.toml`'s
/// `[[storage]]` tables, else Omnibus' default for `default`.
pub fn storage_paths(root: &HostRoot) -> std::collections::BTreeMap<String, PathBuf> {
    let mut out = std::collections::BTreeMap::new();
    if let Ok(text) = std::fs::read_to_string(root.join(GITALY_CONFIG)) {
        for t in manifest::tables(&text, "storage") {
            if let (Some(n), Some(p)) = (t.get("name"), t.get("path")) {
                if valid_storage(n) && p.starts_with('/') {
                    out.insert(n.clone(), PathBuf::from(p));
                }
            }
        }
    }
    if out.is_empty() {
        out.insert("default".into(), PathBuf::from(DEFAULT_STORAGE_PATH));
    }
    out
}

/// Plan the repository restore from `path` (host path of the extracted `repositories/`).
pub fn plan(root: &HostRoot, path: &Path, opts: &RepoOptions) -> Result<RepoPlan, RepoError> {
    let bin = root.join(GITALY_BACKUP);
    if !bin.is_file() {
        return Err(RepoError::NoGitalyBackup {
            path: PathBuf::from(GITALY_BACKUP),
            backup_id: opts
                .backup_id
                .clone()
                .unwrap_or_else(|| "<backup id>".into()),
        });
    }
    for s in &opts.remove_all {
        if !valid_storage(s) {
            return Err(RepoError::BadStorage { name: s.clone() });
        }
    }
    let storages = if opts.remove_all.is_empty() {
        configured_storages(root)
    } else {
        opts.remove_all.clone()
    };
    let servers = gitaly_servers(root, &storages);
    let cmd = Cmd::new(bin)
        .args(restore_args(path, opts))
        .env("GITALY_SERVERS", base64(servers.to_string().as_bytes()));
    Ok(RepoPlan {
        cmd,
        storages,
        path: path.to_path_buf(),
    })
}

/// The warning shown before the restore.
pub fn warning(storages: &[String]) -> String {
    format!(
        "gitaly-backup deletes every existing repository on the storage(s) {} before restoring the backup's repositories. They are not moved aside.",
        storages.join(", ")
    )
}

/// The repositories to restore, from the restored database, as GitLab enumerates them
/// (`Backup::Targets::Repositories`): every project's repository (always created) and wiki,
/// its design repository (when `design_management_repositories` says it has one, or always
/// on versions without that table), each snippet's repository, each group wiki. A project
/// without a `project_repositories` row has GitLab's hashed path
/// (`@hashed/ab/cd/<sha256 of the id>.git`) on its `repository_storage` (else `default`).
pub fn repositories_from_db(client: &mut postgres::Client) -> Result<Vec<RepoRef>, RepoError> {
    let mut out = Vec::new();
    let has = |client: &mut postgres::Client, table: &str| -> Result<bool, postgres::Error> {
        Ok(client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])?
            .get(0))
    };
    let has_column = |client: &mut postgres::Client,
                      table: &str,
                      column: &str|
     -> Result<bool, postgres::Error> {
        Ok(client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM information_schema.columns \
                  WHERE table_schema = current_schema() AND table_name = $1 AND column_name = $2)",
                &[&table, &column],
            )?
            .get(0))
    };
    if has(client, "projects")? {
        let pr = has(client, "project_repositories")? && has(client, "shards")?;
        let design = has(client, "design_management_repositories")?;
        let storage_col = has_column(client, "projects", "repository_storage")?;
        // Fixed SQL text chosen by which tables exist; no input is interpolated.
        let storage = match (pr, storage_col) {
            (true, true) => "COALESCE(s.name, p.repository_storage, 'default')",
            (true, false) => "COALESCE(s.name, 'default')",
            (false, true) => "COALESCE(p.repository_storage, 'default')",
            (false, false) => "'default'",
        };
        let disk = if pr {
            "COALESCE(pr.disk_path, '@hashed/' || substr(h.h, 1, 2) || '/' || substr(h.h, 3, 2) || '/' || h.h)"
        } else {
            "'@hashed/' || substr(h.h, 1, 2) || '/' || substr(h.h, 3, 2) || '/' || h.h"
        };
        let joins = if pr {
            "LEFT JOIN project_repositories pr ON pr.project_id = p.id \
             LEFT JOIN shards s ON s.id = pr.shard_id"
        } else {
            ""
        };
        let has_design = if design {
            "EXISTS (SELECT 1 FROM design_management_repositories d WHERE d.project_id = p.id)"
        } else {
            "true"
        };
        let sql = format!(
            "SELECT ({storage})::text, ({disk})::text, COALESCE(rt.path, '')::text, {has_design} \
               FROM projects p \
               CROSS JOIN LATERAL (SELECT encode(sha256(p.id::text::bytea), 'hex') AS h) h \
               {joins} \
               LEFT JOIN routes rt ON rt.source_type = 'Project' AND rt.source_id = p.id \
              ORDER BY p.id"
        );
        for r in client.query(&sql, &[])? {
            let storage: String = r.get(0);
            let disk: String = r.get(1);
            let path: String = r.get(2);
            let with_design: bool = r.get(3);
            for (suffix, gl_suffix, always) in [
                (".git", "", true),
                (".wiki.git", ".wiki", false),
                (".design.git", ".design", false),
            ] {
                if suffix == ".design.git" && !with_design {
                    continue;
                }
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
        let path = Path::new("/var/opt/gitlab/backups/rewind-repositories.1/repositories");
        let opts = RepoOptions {
            backup_id: Some("1712_2024_04_05_16.10.3-ee".into()),
            remove_all: vec!["default".into(), "nfs1".into()],
            ..Default::default()
        };
        let err = plan(&root, path, &opts).unwrap_err();
        assert!(
            err.to_string()
                .contains("gitlab-backup restore BACKUP=1712_2024_04_05_16.10.3-ee SKIP=db,"),
            "{err}"
        );
        let bin = root.join(GITALY_BACKUP);
        std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
        std::fs::write(&bin, "#!/bin/sh\n").unwrap();
        let p = plan(&root, path, &opts).unwrap();
        let argv = p.cmd.argv();
        assert_eq!(
            argv[1..],
            [
                "restore".to_string(),
                "-path".into(),
                path.display().to_string(),
                "-layout".into(),
                "manifest".into(),
                "-remove-all-repositories".into(),
                "default,nfs1".into(),
                "-id".into(),
                "1712_2024_04_05_16.10.3-ee".into(),
            ]
        );
        assert_eq!(p.cmd.env[0].0, "GITALY_SERVERS");
        // The token inside GITALY_SERVERS is never shown.
        assert!(p.cmd.display().contains("GITALY_SERVERS=<redacted>"));
        let bad = RepoOptions {
            remove_all: vec!["a,b".into()],
            ..Default::default()
        };
        assert!(plan(&root, path, &bad).is_err());
        assert!(warning(&["default".into()]).contains("deletes every existing repository"));
    }

    #[test]
    fn arguments_follow_gitlabs_order_for_each_option() {
        let path = Path::new("/b/repositories");
        let s = |o: &RepoOptions| -> Vec<String> {
            restore_args(path, o)
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect()
        };
        assert_eq!(
            s(&RepoOptions::default()),
            ["restore", "-path", "/b/repositories", "-layout", "manifest"]
        );
        let o = RepoOptions {
            backup_id: Some("X".into()),
            server_side: true,
            parallel: Some(4),
            parallel_storage: Some(2),
            remove_all: vec!["default".into()],
        };
        assert_eq!(
            s(&o),
            [
                "restore",
                "-server-side",
                "-parallel",
                "4",
                "-parallel-storage",
                "2",
                "-remove-all-repositories",
                "default",
                "-id",
                "X"
            ]
        );
        // From the backup's metadata: its id, its storages; none removed for a backup
        // limited to paths.
        let mut info = crate::backup::metadata::BackupInformation {
            backup_id: Some("1712_2024_04_05_16.10.3-ee".into()),
            repositories_server_side: Some(false),
            ..Default::default()
        };
        let o = RepoOptions::for_backup(Some(&info), &["default".into()], None, Some(3));
        assert_eq!(o.backup_id.as_deref(), Some("1712_2024_04_05_16.10.3-ee"));
        assert_eq!(o.remove_all, ["default"]);
        assert_eq!(o.parallel_storage, Some(3));
        info.repositories_storages = vec!["nfs1".into()];
        let o = RepoOptions::for_backup(Some(&info), &["default".into()], None, None);
        assert_eq!(o.remove_all, ["nfs1"]);
        info.repositories_paths = vec!["group/project".into()];
        let o = RepoOptions::for_backup(Some(&info), &["default".into()], None, None);
        assert!(o.remove_all.is_empty());
        info.repositories_server_side = Some(true);
        assert!(RepoOptions::for_backup(Some(&info), &[], None, None).server_side);
    }

    #[test]
    fn stdin_is_one_json_object_per_line_as_gitlab_writes_it() {
        let repos = vec![
            RepoRef {
                storage_name: "default".into(),
                relative_path: "@hashed/6b/86/6b86.git".into(),
                gl_project_path: "group/one".into(),
                always_create: true,
            },
            RepoRef {
                storage_name: "default".into(),
                relative_path: "@hashed/6b/86/6b86.wiki.git".into(),
                gl_project_path: "group/one.wiki".into(),
                always_create: false,
            },
        ];
        let text = String::from_utf8(stdin_lines(&repos)).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(text.ends_with('\n'));
        assert_eq!(
            lines[0],
            r#"{"storage_name":"default","relative_path":"@hashed/6b/86/6b86.git","gl_project_path":"group/one","always_create":true}"#
        );
        let v: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(v["always_create"], false);
    }
}
