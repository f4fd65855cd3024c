//! Detection of the GitLab installation on the host (under a [`HostRoot`]): kind (Omnibus
//! or source), installed version and edition, backup directory, database connections.
//!
//! Every fact records the path it was read from, and every fact that could not be found
//! records where Rewind looked, so the user can point Rewind at it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::pg::conn::{ConnSpec, Secret};
use crate::root::HostRoot;
use crate::version::{Edition, GitLabVersion};

/// Omnibus paths (host paths, mapped through the root).
pub mod omnibus {
    pub const VERSION: &str = "/opt/gitlab/embedded/service/gitlab-rails/VERSION";
    pub const REVISION: &str = "/opt/gitlab/embedded/service/gitlab-rails/REVISION";
    pub const MANIFEST: &str = "/opt/gitlab/version-manifest.txt";
    pub const GITLAB_RB: &str = "/etc/gitlab/gitlab.rb";
    pub const DATABASE_YML: &str = "/var/opt/gitlab/gitlab-rails/etc/database.yml";
    pub const DEFAULT_BACKUP_PATH: &str = "/var/opt/gitlab/backups";
    pub const GITLAB_CTL: &str = "/opt/gitlab/bin/gitlab-ctl";
    pub const GITLAB_RAKE: &str = "/opt/gitlab/bin/gitlab-rake";
    pub const EMBEDDED_BIN: &str = "/opt/gitlab/embedded/bin";
    pub const RAILS_LOG_DIR: &str = "/var/log/gitlab/gitlab-rails";
    pub const RAILS_ROOT: &str = "/opt/gitlab/embedded/service/gitlab-rails";
}

/// Source-install paths.
pub mod source {
    pub const RAILS_ROOT: &str = "/home/git/gitlab";
    pub const VERSION: &str = "/home/git/gitlab/VERSION";
    pub const DATABASE_YML: &str = "/home/git/gitlab/config/database.yml";
    pub const GITLAB_YML: &str = "/home/git/gitlab/config/gitlab.yml";
    pub const DEFAULT_BACKUP_PATH: &str = "/home/git/gitlab/tmp/backups";
    pub const LOG_DIR: &str = "/home/git/gitlab/log";
}

/// How GitLab is installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InstallKind {
    Omnibus,
    Source,
}

/// One thing Rewind looked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What was looked for (`installed version`, `backup directory`, ...).
    pub what: String,
    /// Host path read (or looked at).
    pub path: PathBuf,
    /// Whether it was found.
    pub found: bool,
    /// The value found, or why it was not usable.
    pub note: String,
}

/// A database connection's name in database.yml: GitLab's `main` and `ci`, or another
/// (`sec`, `embedding`, `geo`, ...). Serialised as the name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Connection {
    Main,
    Ci,
    Other(String),
}

impl Connection {
    /// The connection of a database.yml key.
    pub fn parse(name: &str) -> Connection {
        match name {
            "main" => Connection::Main,
            "ci" => Connection::Ci,
            other => Connection::Other(other.to_string()),
        }
    }

    /// The name as database.yml has it.
    pub fn as_str(&self) -> &str {
        match self {
            Connection::Main => "main",
            Connection::Ci => "ci",
            Connection::Other(s) => s,
        }
    }

    pub fn is_main(&self) -> bool {
        *self == Connection::Main
    }
}

impl std::fmt::Display for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for Connection {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Connection {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl AsRef<str> for Connection {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for Connection {
    fn from(s: &str) -> Self {
        Connection::parse(s)
    }
}

impl Serialize for Connection {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A database connection of the installation (`main`, `ci`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DatabaseConn {
    /// Connection name in database.yml (`main`, `ci`).
    pub name: Connection,
    pub spec: ConnSpec,
    /// `false` when this connection shares main's database (GitLab's
    /// `database_tasks: false`): it has no dump of its own.
    pub database_tasks: bool,
}

/// What detection found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Installation {
    pub kind: Option<InstallKind>,
    pub version: Option<GitLabVersion>,
    pub edition: Option<Edition>,
    /// `gitlab-ee` / `gitlab-ce` (from the version manifest, else from the edition).
    pub package: Option<String>,
    /// Host path of the Rails root.
    pub rails_root: Option<PathBuf>,
    /// Host path of the backup directory.
    pub backup_path: PathBuf,
    /// Database connections, main first.
    pub databases: Vec<DatabaseConn>,
    /// Host path of GitLab's Rails log dir.
    pub log_dir: Option<PathBuf>,
    /// Everything looked at.
    pub findings: Vec<Finding>,
}

impl Installation {
    /// The main database connection, if found.
    pub fn main_db(&self) -> Option<&DatabaseConn> {
        self.databases.iter().find(|d| d.name == "main")
    }
}

/// Errors of detection that stop it (most missing facts are findings, not errors).
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error("{path}: cannot parse as YAML: {detail}")]
    BadYaml { path: PathBuf, detail: String },
    #[error("{path}: {detail}")]
    BadVersion { path: PathBuf, detail: String },
    #[error("{path}: cannot read: {detail}")]
    Unreadable { path: PathBuf, detail: String },
}

/// A bounded read of a configuration file under the root (see [`crate::limited`]).
fn read_config(path: &Path) -> std::io::Result<String> {
    crate::limited::read_text(path, crate::limited::MAX_CONFIG)
}

/// An environment lookup (`std::env::var` in production, a map in tests).
pub type EnvLookup = std::sync::Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Options for detection.
#[derive(Clone, Default)]
pub struct DetectOptions {
    /// Use this backup directory (host path) instead of the configured one.
    pub backup_dir: Option<PathBuf>,
    /// Environment lookup for `GITLAB_BACKUP_*` overrides (tests pass a map).
    pub env: Option<EnvLookup>,
}

impl std::fmt::Debug for DetectOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DetectOptions")
            .field("backup_dir", &self.backup_dir)
            .finish()
    }
}

fn read_trimmed(path: &Path) -> Option<String> {
    read_config(path).ok().map(|s| s.trim().to_string())
}

/// Detect the installation under `root`.
pub fn detect(root: &HostRoot, opts: &DetectOptions) -> Result<Installation, DetectError> {
    let mut findings = Vec::new();
    let env: EnvLookup = opts
        .env
        .clone()
        .unwrap_or_else(|| std::sync::Arc::new(|k: &str| std::env::var(k).ok()));

    let omni_version_path = root.join(omnibus::VERSION);
    let src_version_path = root.join(source::VERSION);
    let (kind, version_host_path) = if omni_version_path.is_file() {
        (Some(InstallKind::Omnibus), omnibus::VERSION)
    } else if src_version_path.is_file() {
        (Some(InstallKind::Source), source::VERSION)
    } else {
        findings.push(Finding {
            what: "installed version".into(),
            path: omnibus::VERSION.into(),
            found: false,
            note: format!(
                "neither {} (Omnibus) nor {} (source) exists",
                omnibus::VERSION,
                source::VERSION
            ),
        });
        (None, omnibus::VERSION)
    };

    let mut version = None;
    if kind.is_some() {
        let raw = read_trimmed(&root.join(version_host_path)).unwrap_or_default();
        match raw.parse::<GitLabVersion>() {
            Ok(v) => {
                findings.push(Finding {
                    what: "installed version".into(),
                    path: version_host_path.into(),
                    found: true,
                    note: v.to_string(),
                });
                version = Some(v);
            }
            Err(e) => {
                return Err(DetectError::BadVersion {
                    path: version_host_path.into(),
                    detail: e.to_string(),
                })
            }
        }
    }

    // Package name and edition from the version manifest (Omnibus).
    let mut package = None;
    if kind == Some(InstallKind::Omnibus) {
        let p = root.join(omnibus::MANIFEST);
        match read_config(&p) {
            Ok(text) => {
                let first = text.lines().next().unwrap_or("").trim().to_string();
                let mut parts = first.split_whitespace();
                let name = parts.next().unwrap_or("");
                if name == "gitlab-ee" || name == "gitlab-ce" {
                    package = Some(name.to_string());
                    findings.push(Finding {
                        what: "package".into(),
                        path: omnibus::MANIFEST.into(),
                        found: true,
                        note: first.clone(),
                    });
                } else {
                    findings.push(Finding {
                        what: "package".into(),
                        path: omnibus::MANIFEST.into(),
                        found: false,
                        note: format!("first line `{first}` does not name gitlab-ee or gitlab-ce"),
                    });
                }
            }
            Err(e) => findings.push(Finding {
                what: "package".into(),
                path: omnibus::MANIFEST.into(),
                found: false,
                note: e.to_string(),
            }),
        }
    }
    let edition = match (&version, &package) {
        (Some(v), _) if v.edition.is_some() => v.edition,
        (_, Some(p)) if p == "gitlab-ee" => Some(Edition::Ee),
        (_, Some(p)) if p == "gitlab-ce" => Some(Edition::Ce),
        (Some(_), None) => Some(Edition::Ce),
        _ => None,
    };
    // Current CE writes no suffix in VERSION: complete the version's edition.
    let version = version.map(|v| match (v.edition, edition) {
        (None, Some(e)) => v.with_edition(e),
        _ => v,
    });
    if package.is_none() {
        package = edition.map(|e| e.package().to_string());
    }

    // Backup directory.
    let backup_path = if let Some(dir) = &opts.backup_dir {
        findings.push(Finding {
            what: "backup directory".into(),
            path: dir.clone(),
            found: root.join(dir).is_dir(),
            note: "given with --backup-dir".into(),
        });
        dir.clone()
    } else {
        match kind {
            Some(InstallKind::Source) => source_backup_path(root, &mut findings),
            _ => omnibus_backup_path(root, &mut findings),
        }
    };

    // Databases.
    let (db_yml, rails_root, log_dir) = match kind {
        Some(InstallKind::Source) => (
            source::DATABASE_YML,
            Some(PathBuf::from(source::RAILS_ROOT)),
            Some(PathBuf::from(source::LOG_DIR)),
        ),
        _ => (
            omnibus::DATABASE_YML,
            kind.map(|_| PathBuf::from(omnibus::RAILS_ROOT)),
            Some(PathBuf::from(omnibus::RAILS_LOG_DIR)),
        ),
    };
    let mut databases = Vec::new();
    match read_config(&root.join(db_yml)) {
        Err(e) if crate::limited::is_limit_error(&e) => {
            // A FIFO or a huge file is not "no database.yml": never guess the defaults then.
            return Err(DetectError::Unreadable {
                path: db_yml.into(),
                detail: e.to_string(),
            });
        }
        Ok(text) => {
            let parsed = parse_database_yml(&text).map_err(|detail| DetectError::BadYaml {
                path: db_yml.into(),
                detail,
            })?;
            for mut db in parsed {
                db.spec.apply_env(db.name.as_str(), &*env);
                findings.push(Finding {
                    what: format!("database `{}`", db.name),
                    path: db_yml.into(),
                    found: true,
                    note: format!(
                        "{} on {} as {}{}",
                        db.spec.dbname,
                        db.spec.target(),
                        db.spec.user,
                        if db.spec.is_socket() {
                            String::new()
                        } else {
                            format!(
                                ", sslmode={}",
                                db.spec.sslmode.as_deref().unwrap_or("prefer")
                            )
                        }
                    ),
                });
                databases.push(db);
            }
        }
        Err(e) => {
            findings.push(Finding {
                what: "database settings".into(),
                path: db_yml.into(),
                found: false,
                note: format!("{e}; Omnibus defaults assumed (socket /var/opt/gitlab/postgresql, database gitlabhq_production); use --database-url to override"),
            });
            let mut spec = ConnSpec::omnibus_default();
            spec.apply_libpq_env(&*env);
            spec.apply_env("main", &*env);
            databases.push(DatabaseConn {
                name: "main".into(),
                spec,
                database_tasks: true,
            });
        }
    }

    Ok(Installation {
        kind,
        version,
        edition,
        package,
        rails_root,
        backup_path,
        databases,
        log_dir,
        findings,
    })
}

fn omnibus_backup_path(root: &HostRoot, findings: &mut Vec<Finding>) -> PathBuf {
    let rb = root.join(omnibus::GITLAB_RB);
    let read = read_config(&rb);
    if let Err(e) = &read {
        if crate::limited::is_limit_error(e) {
            findings.push(Finding {
                what: "backup directory".into(),
                path: omnibus::GITLAB_RB.into(),
                found: false,
                note: format!("{e}; default {}", omnibus::DEFAULT_BACKUP_PATH),
            });
            return PathBuf::from(omnibus::DEFAULT_BACKUP_PATH);
        }
    }
    if let Ok(text) = read {
        if let Some(p) = gitlab_rb_setting(&text, "gitlab_rails", "backup_path") {
            findings.push(Finding {
                what: "backup directory".into(),
                path: omnibus::GITLAB_RB.into(),
                found: true,
                note: format!("gitlab_rails['backup_path'] = {p}"),
            });
            return PathBuf::from(p);
        }
        findings.push(Finding {
            what: "backup directory".into(),
            path: omnibus::GITLAB_RB.into(),
            found: true,
            note: format!(
                "gitlab_rails['backup_path'] not set; default {}",
                omnibus::DEFAULT_BACKUP_PATH
            ),
        });
    } else {
        findings.push(Finding {
            what: "backup directory".into(),
            path: omnibus::GITLAB_RB.into(),
            found: false,
            note: format!("not readable; default {}", omnibus::DEFAULT_BACKUP_PATH),
        });
    }
    PathBuf::from(omnibus::DEFAULT_BACKUP_PATH)
}

fn source_backup_path(root: &HostRoot, findings: &mut Vec<Finding>) -> PathBuf {
    if let Ok(text) = read_config(&root.join(source::GITLAB_YML)) {
        if let Ok(v) = serde_saphyr::from_str::<serde_json::Value>(&text) {
            if let Some(p) = v
                .pointer("/production/backup/path")
                .and_then(|p| p.as_str())
            {
                let path = if p.starts_with('/') {
                    PathBuf::from(p)
                } else {
                    Path::new(source::RAILS_ROOT).join(p)
                };
                findings.push(Finding {
                    what: "backup directory".into(),
                    path: source::GITLAB_YML.into(),
                    found: true,
                    note: format!("production.backup.path = {p}"),
                });
                return path;
            }
        }
    }
    findings.push(Finding {
        what: "backup directory".into(),
        path: source::GITLAB_YML.into(),
        found: false,
        note: format!(
            "backup.path not set; default {}",
            source::DEFAULT_BACKUP_PATH
        ),
    });
    PathBuf::from(source::DEFAULT_BACKUP_PATH)
}

/// Read `key['name'] = "value"` (or `key["name"] = 'value'`) from `gitlab.rb`, ignoring
/// commented lines. Returns the last assignment, as Ruby would.
pub fn gitlab_rb_setting(text: &str, key: &str, name: &str) -> Option<String> {
    let mut found = None;
    for line in text.lines() {
        let l = line.trim();
        if l.starts_with('#') {
            continue;
        }
        for q in ['\'', '"'] {
            let prefix = format!("{key}[{q}{name}{q}]");
            if let Some(rest) = l.strip_prefix(&prefix) {
                let rest = rest.trim_start();
                if let Some(rest) = rest.strip_prefix('=') {
                    let rest = rest.trim();
                    let rest = rest.split(" #").next().unwrap_or(rest).trim();
                    let v = rest.trim_matches(|c| c == '"' || c == '\'');
                    if !v.is_empty() {
                        found = Some(v.to_string());
                    }
                }
            }
        }
    }
    found
}

/// Parse GitLab's `database.yml`: `production:` holding either connection maps (`main:`,
/// `ci:`, ...) or, in the old single-database form, the settings themselves.
pub fn parse_database_yml(text: &str) -> Result<Vec<DatabaseConn>, String> {
    let v: serde_json::Value = serde_saphyr::from_str(text).map_err(|e| e.to_string())?;
    let prod = v
        .get("production")
        .ok_or_else(|| "no `production:` section".to_string())?;
    let obj = prod
        .as_object()
        .ok_or_else(|| "`production:` is not a mapping".to_string())?;
    let mut conns: BTreeMap<usize, DatabaseConn> = BTreeMap::new();
    let single = obj.contains_key("adapter") || obj.contains_key("database");
    let entries: Vec<(String, &serde_json::Value)> = if single {
        vec![("main".to_string(), prod)]
    } else {
        obj.iter().map(|(k, v)| (k.clone(), v)).collect()
    };
    let main_db = entries
        .iter()
        .find(|(n, _)| n == "main")
        .and_then(|(_, v)| v.get("database"))
        .and_then(|d| d.as_str())
        .map(str::to_string);
    for (idx, (name, cfg)) in entries.into_iter().enumerate() {
        if !cfg.is_object() {
            continue;
        }
        // geo, embedding, ... are not GitLab's shared databases; only main/ci/sec are backed up.
        if !matches!(name.as_str(), "main" | "ci" | "sec") {
            continue;
        }
        let s = |k: &str| {
            cfg.get(k).and_then(|v| match v {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
        };
        let mut spec = ConnSpec::omnibus_default();
        if let Some(d) = s("database") {
            spec.dbname = d;
        }
        if let Some(u) = s("username") {
            spec.user = u;
        }
        if let Some(h) = s("host") {
            spec.host = h;
        }
        if let Some(p) = s("port").and_then(|p| p.parse().ok()) {
            spec.port = p;
        }
        spec.password = Secret::new(s("password"));
        spec.sslmode = s("sslmode");
        spec.sslrootcert = s("sslrootcert");
        spec.sslcert = s("sslcert");
        spec.sslkey = s("sslkey");
        spec.sslcrl = s("sslcrl");
        spec.connect_timeout = s("connect_timeout").and_then(|t| t.trim().parse().ok());
        // `application_name` names Rails' connections; Rewind names its own.
        let tasks_flag = cfg
            .get("database_tasks")
            .and_then(|v| v.as_bool())
            .unwrap_or(true);
        let shares_main = name != "main" && main_db.as_deref() == Some(spec.dbname.as_str());
        let order = if name == "main" { 0 } else { idx + 1 };
        conns.insert(
            order,
            DatabaseConn {
                name: Connection::parse(&name),
                spec,
                database_tasks: tasks_flag && !shares_main,
            },
        );
    }
    if conns.is_empty() {
        return Err("`production:` names no main/ci database".into());
    }
    Ok(conns.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    const OMNIBUS_DB_YML: &str = r#"# This file is managed by gitlab-ctl. Manual changes will be
# erased! To change the contents below, edit /etc/gitlab/gitlab.rb
# and run `sudo gitlab-ctl reconfigure`.

production:
  main:
    adapter: postgresql
    encoding: unicode
    collation:
    database: gitlabhq_production
    username: "gitlab"
    password:
    host: "/var/opt/gitlab/postgresql"
    port: 5432
    socket:
    sslmode:
    application_name:
    prepared_statements: false
    database_tasks: true
  ci:
    adapter: postgresql
    database: gitlabhq_production_ci
    username: "gitlab"
    password: "s3cret"
    host: "/var/opt/gitlab/postgresql"
    port: 5432
    database_tasks: true
"#;

    #[test]
    fn parses_decomposed_omnibus_database_yml() {
        let dbs = parse_database_yml(OMNIBUS_DB_YML).unwrap();
        assert_eq!(dbs.len(), 2);
        assert_eq!(dbs[0].name, "main");
        assert_eq!(dbs[0].spec.dbname, "gitlabhq_production");
        assert_eq!(dbs[0].spec.host, "/var/opt/gitlab/postgresql");
        assert_eq!(dbs[1].name, "ci");
        assert_eq!(dbs[1].spec.password.expose(), Some("s3cret"));
        assert!(dbs[1].database_tasks);
    }

    #[test]
    fn reads_tls_settings_from_database_yml() {
        let y = "production:\n  main:\n    database: gl\n    host: db.example\n    sslmode: verify-full\n    sslrootcert: /etc/gitlab/ssl/rds-ca.pem\n    sslcert: /etc/gitlab/ssl/client.crt\n    sslkey: /etc/gitlab/ssl/client.key\n    connect_timeout: 5\n";
        let dbs = parse_database_yml(y).unwrap();
        let s = &dbs[0].spec;
        assert_eq!(s.sslmode.as_deref(), Some("verify-full"));
        assert_eq!(s.sslrootcert.as_deref(), Some("/etc/gitlab/ssl/rds-ca.pem"));
        assert_eq!(s.sslcert.as_deref(), Some("/etc/gitlab/ssl/client.crt"));
        assert_eq!(s.sslkey.as_deref(), Some("/etc/gitlab/ssl/client.key"));
        assert_eq!(s.connect_timeout, Some(5));
    }

    #[test]
    fn ci_sharing_main_database_has_no_tasks() {
        let y = "production:\n  main:\n    database: gl\n  ci:\n    database: gl\n    database_tasks: false\n";
        let dbs = parse_database_yml(y).unwrap();
        assert!(!dbs[1].database_tasks);
        let y = "production:\n  adapter: postgresql\n  database: old_single\n  host: localhost\n";
        let dbs = parse_database_yml(y).unwrap();
        assert_eq!(dbs.len(), 1);
        assert_eq!(dbs[0].spec.dbname, "old_single");
    }

    #[test]
    fn reads_backup_path_from_gitlab_rb() {
        let rb = "# gitlab_rails['backup_path'] = \"/commented\"\ngitlab_rails['backup_path'] = \"/mnt/backups\" # where\n";
        assert_eq!(
            gitlab_rb_setting(rb, "gitlab_rails", "backup_path").as_deref(),
            Some("/mnt/backups")
        );
        assert_eq!(gitlab_rb_setting("", "gitlab_rails", "backup_path"), None);
    }

    #[test]
    fn detects_an_omnibus_tree() {
        let dir = tempfile::tempdir().unwrap();
        let root = HostRoot::new(dir.path());
        let w = |p: &str, c: &str| {
            let f = root.join(p);
            fs::create_dir_all(f.parent().unwrap()).unwrap();
            fs::write(f, c).unwrap();
        };
        w(omnibus::VERSION, "16.10.3-ee\n");
        w(omnibus::MANIFEST, "gitlab-ee 16.10.3\n\ngitaly 16.10.3\n");
        w(
            omnibus::GITLAB_RB,
            "external_url 'https://gitlab.example'\n",
        );
        w(omnibus::DATABASE_YML, OMNIBUS_DB_YML);
        let inst = detect(
            &root,
            &DetectOptions {
                backup_dir: None,
                env: Some(std::sync::Arc::new(|_| None)),
            },
        )
        .unwrap();
        assert_eq!(inst.kind, Some(InstallKind::Omnibus));
        assert_eq!(inst.version.unwrap().to_string(), "16.10.3-ee");
        assert_eq!(inst.package.as_deref(), Some("gitlab-ee"));
        assert_eq!(inst.backup_path, PathBuf::from("/var/opt/gitlab/backups"));
        assert_eq!(inst.databases.len(), 2);
    }

    #[test]
    fn tcp_database_finding_names_the_sslmode() {
        let dir = tempfile::tempdir().unwrap();
        let root = HostRoot::new(dir.path());
        let yml = root.join(omnibus::DATABASE_YML);
        fs::create_dir_all(yml.parent().unwrap()).unwrap();
        fs::write(
            &yml,
            "production:\n  main:\n    database: gl\n    host: db.example\n    sslmode: verify-full\n",
        )
        .unwrap();
        let inst = detect(
            &root,
            &DetectOptions {
                backup_dir: None,
                env: Some(std::sync::Arc::new(|_| None)),
            },
        )
        .unwrap();
        let f = inst
            .findings
            .iter()
            .find(|f| f.what == "database `main`")
            .unwrap();
        assert!(
            f.note.contains("host db.example:5432") && f.note.ends_with("sslmode=verify-full"),
            "{}",
            f.note
        );
    }

    #[test]
    fn fifo_or_huge_config_is_an_error_not_a_hang() {
        let dir = tempfile::tempdir().unwrap();
        let root = HostRoot::new(dir.path());
        let yml = root.join(omnibus::DATABASE_YML);
        fs::create_dir_all(yml.parent().unwrap()).unwrap();
        nix::unistd::mkfifo(&yml, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let rb = root.join(omnibus::GITLAB_RB);
        fs::create_dir_all(rb.parent().unwrap()).unwrap();
        nix::unistd::mkfifo(&rb, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let opts = DetectOptions {
            backup_dir: None,
            env: Some(std::sync::Arc::new(|_| None)),
        };
        let e = detect(&root, &opts).unwrap_err().to_string();
        assert!(
            e.contains("database.yml") && e.contains("not a regular file"),
            "{e}"
        );
        fs::remove_file(&yml).unwrap();
        let f = fs::File::create(&yml).unwrap();
        f.set_len(crate::limited::MAX_CONFIG + 1).unwrap();
        let e = detect(&root, &opts).unwrap_err().to_string();
        assert!(e.contains("database.yml") && e.contains("16 MiB"), "{e}");
    }

    #[test]
    fn ce_without_suffix_gets_ce_edition_and_missing_install_is_a_finding() {
        let dir = tempfile::tempdir().unwrap();
        let root = HostRoot::new(dir.path());
        let f = root.join(omnibus::VERSION);
        fs::create_dir_all(f.parent().unwrap()).unwrap();
        fs::write(&f, "17.2.1\n").unwrap();
        let inst = detect(
            &root,
            &DetectOptions {
                backup_dir: None,
                env: Some(std::sync::Arc::new(|_| None)),
            },
        )
        .unwrap();
        assert_eq!(inst.version.unwrap().to_string(), "17.2.1-ce");
        assert_eq!(inst.package.as_deref(), Some("gitlab-ce"));

        let empty = tempfile::tempdir().unwrap();
        let inst = detect(
            &HostRoot::new(empty.path()),
            &DetectOptions {
                backup_dir: None,
                env: Some(std::sync::Arc::new(|_| None)),
            },
        )
        .unwrap();
        assert!(inst.kind.is_none());
        assert!(inst
            .findings
            .iter()
            .any(|f| !f.found && f.what == "installed version"));
    }

    #[test]
    fn a_bad_version_file_is_an_error_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let root = HostRoot::new(dir.path());
        let f = root.join(omnibus::VERSION);
        fs::create_dir_all(f.parent().unwrap()).unwrap();
        fs::write(&f, "16.10; rm -rf /\n").unwrap();
        let err = detect(&root, &DetectOptions::default()).unwrap_err();
        assert!(err.to_string().contains("VERSION"), "{err}");
    }
}
