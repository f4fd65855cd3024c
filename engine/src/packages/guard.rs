//! What can make the package downgrade itself fail on this host, checked before the package
//! step changes anything:
//!
//! - the PostgreSQL data directory (`PG_VERSION`) belongs to a newer major than any the
//!   target package ships (the failed upgrade ran `gitlab-ctl pg-upgrade`): refused;
//! - `gitlab.rb` sets keys the target version does not know (its own `gitlab.rb.template`,
//!   read from the package file, tells): warned, with key and line;
//! - the configuration archive in `/etc/gitlab/config_backup` nearest before the data
//!   backup: offered, for when `gitlab.rb` or `gitlab-secrets.json` must be put back.

use std::collections::BTreeSet;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{manager_cmd, Manager, PackageError};
use crate::detect::{gitlab_rb_setting, omnibus};
use crate::exec::{self, Cmd};
use crate::root::HostRoot;
use crate::services::{config_backups, ConfigBackup};
use crate::version::GitLabVersion;

/// GitLab's table of the PostgreSQL versions each Linux package ships (see its header).
pub const PG_TABLE: &str = include_str!("../../../assets/postgresql_versions.txt");

/// Omnibus's default PostgreSQL data directory (`postgresql['data_dir']`).
pub const DEFAULT_PG_DATA_DIR: &str = "/var/opt/gitlab/postgresql/data";

/// Where the Linux package keeps the `gitlab.rb` template it ships.
pub const GITLAB_RB_TEMPLATE: &str = "/opt/gitlab/etc/gitlab.rb.template";

/// A PostgreSQL major version as `PG_VERSION` writes it: `9.6`, `10`, `14`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PgMajor {
    pub major: u32,
    /// The second number, for majors before 10 (`9.6`).
    pub minor: Option<u32>,
}

impl PgMajor {
    /// The major of a PostgreSQL version: `9.6.17` → `9.6`, `14.11` → `14`, `16` → `16`.
    pub fn of_version(s: &str) -> Option<PgMajor> {
        let mut it = s.trim().split('.');
        let major: u32 = it.next()?.parse().ok()?;
        if major >= 10 {
            return Some(PgMajor { major, minor: None });
        }
        let minor: u32 = it.next()?.parse().ok()?;
        Some(PgMajor {
            major,
            minor: Some(minor),
        })
    }
}

impl fmt::Display for PgMajor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.minor {
            Some(m) => write!(f, "{}.{m}", self.major),
            None => write!(f, "{}", self.major),
        }
    }
}

impl Serialize for PgMajor {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One row of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgRow {
    /// The GitLab versions the row starts at (one per release series).
    pub first: Vec<GitLabVersion>,
    /// PostgreSQL versions shipped, as written (`13.14`, `14.11`).
    pub shipped: Vec<String>,
    pub default_fresh: String,
    pub default_upgrade: String,
}

impl PgRow {
    /// The majors shipped.
    pub fn majors(&self) -> Vec<PgMajor> {
        self.shipped
            .iter()
            .filter_map(|v| PgMajor::of_version(v))
            .collect()
    }
}

/// The parsed table.
#[derive(Debug, Clone)]
pub struct PgTable {
    pub rows: Vec<PgRow>,
    /// The newest GitLab minor the table was read for (`17.5`).
    pub covered_through: (u32, u32),
}

/// What the table says about one GitLab version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Shipped {
    /// The row's first version that applies.
    pub since: String,
    pub majors: Vec<PgMajor>,
    pub default_fresh: String,
    pub default_upgrade: String,
    /// The version is newer than the table covers: the row is a guess.
    pub beyond_table: bool,
}

impl PgTable {
    /// Parse the table's text (see `assets/postgresql_versions.txt`).
    pub fn parse(text: &str) -> Result<PgTable, String> {
        let mut rows = Vec::new();
        let mut covered = None;
        for (i, line) in text.lines().enumerate() {
            let l = line.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            if let Some(v) = l.strip_prefix("covered-through:") {
                let (a, b) = v
                    .trim()
                    .split_once('.')
                    .ok_or(format!("line {}: covered-through needs MAJOR.MINOR", i + 1))?;
                covered = Some((
                    a.parse()
                        .map_err(|_| format!("line {}: bad major", i + 1))?,
                    b.parse()
                        .map_err(|_| format!("line {}: bad minor", i + 1))?,
                ));
                continue;
            }
            let cols: Vec<&str> = l.split('|').map(str::trim).collect();
            if cols.len() != 4 {
                return Err(format!(
                    "line {}: expected 4 columns, got {}",
                    i + 1,
                    cols.len()
                ));
            }
            let list = |s: &str| -> Vec<String> {
                s.split(',')
                    .map(|x| x.trim().to_string())
                    .filter(|x| !x.is_empty())
                    .collect()
            };
            let first = list(cols[0])
                .iter()
                .map(|v| v.parse::<GitLabVersion>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("line {}: {e}", i + 1))?;
            let shipped = list(cols[1]);
            for v in &shipped {
                PgMajor::of_version(v)
                    .ok_or(format!("line {}: `{v}` is not a PostgreSQL version", i + 1))?;
            }
            // The defaults are not always among the versions shipped (GitLab's rows for
            // 15.10.8 and 15.11.7 name 12.12 for upgrades), so they are only parsed.
            for d in [cols[2], cols[3]] {
                PgMajor::of_version(d)
                    .ok_or(format!("line {}: `{d}` is not a PostgreSQL version", i + 1))?;
            }
            if first.is_empty() || shipped.is_empty() {
                return Err(format!("line {}: empty column", i + 1));
            }
            rows.push(PgRow {
                first,
                shipped,
                default_fresh: cols[2].to_string(),
                default_upgrade: cols[3].to_string(),
            });
        }
        let covered_through = covered.ok_or("no `covered-through:` line")?;
        Ok(PgTable {
            rows,
            covered_through,
        })
    }

    /// The table Rewind carries.
    pub fn embedded() -> PgTable {
        PgTable::parse(PG_TABLE).expect("the embedded PostgreSQL table parses (unit-tested)")
    }

    /// What the package of `v` ships: the row whose first version is the greatest one not
    /// after `v`. `None` for versions older than the table.
    pub fn shipped(&self, v: &GitLabVersion) -> Option<Shipped> {
        let mut best: Option<(&GitLabVersion, &PgRow)> = None;
        for row in &self.rows {
            for f in &row.first {
                if f.sort_key() <= v.sort_key()
                    && best.is_none_or(|(b, _)| f.sort_key() > b.sort_key())
                {
                    best = Some((f, row));
                }
            }
        }
        let (since, row) = best?;
        Some(Shipped {
            since: since.to_string(),
            majors: row.majors(),
            default_fresh: row.default_fresh.clone(),
            default_upgrade: row.default_upgrade.clone(),
            beyond_table: (v.major, v.minor) > self.covered_through,
        })
    }
}

/// What the PostgreSQL check found.
#[derive(Debug, Clone, Serialize)]
pub struct PgCheck {
    /// Host path of the data directory.
    pub data_dir: PathBuf,
    /// Its `PG_VERSION`, when there is one (none: external database, or not on this host).
    pub data_major: Option<PgMajor>,
    /// What the target package ships.
    pub shipped: Option<Shipped>,
    /// A line for the user (passed, or why it could not tell).
    pub note: String,
}

/// The data directory is newer than the target package can run.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the PostgreSQL data directory {data_dir} belongs to PostgreSQL {found} (its PG_VERSION), but GitLab {target} ships PostgreSQL {shipped} only: after the downgrade its PostgreSQL could not start on this data. The failed upgrade ran `gitlab-ctl pg-upgrade`. Revert that first, while the newer package is still installed: `sudo gitlab-ctl revert-pg-upgrade -V {revert_to}` (GitLab's way back to the data directory pg-upgrade kept), check PG_VERSION says {revert_to}, then run the rollback again. Nothing was changed")]
pub struct PgTooNew {
    pub data_dir: PathBuf,
    pub found: PgMajor,
    pub target: GitLabVersion,
    /// The shipped majors, comma-separated.
    pub shipped: String,
    /// The major to revert to (the newest the target ships).
    pub revert_to: PgMajor,
}

/// The host path of the PostgreSQL data directory: `postgresql['data_dir']` from
/// `gitlab.rb`, else Omnibus's default.
pub fn pg_data_dir(root: &HostRoot) -> PathBuf {
    std::fs::read_to_string(root.join(omnibus::GITLAB_RB))
        .ok()
        .and_then(|t| gitlab_rb_setting(&t, "postgresql", "data_dir"))
        .filter(|d| d.starts_with('/'))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_PG_DATA_DIR))
}

/// Check the data directory's `PG_VERSION` against what `target`'s package ships.
pub fn check_postgres(
    root: &HostRoot,
    table: &PgTable,
    target: &GitLabVersion,
) -> Result<PgCheck, PgTooNew> {
    let data_dir = pg_data_dir(root);
    let data_major = std::fs::read_to_string(root.join(data_dir.join("PG_VERSION")))
        .ok()
        .and_then(|t| PgMajor::of_version(t.lines().next().unwrap_or("")));
    let shipped = table.shipped(target);
    let note = match (&data_major, &shipped) {
        (None, _) => format!(
            "no PG_VERSION in {}: the bundled PostgreSQL is not used here (external database?), not checked",
            data_dir.display()
        ),
        (Some(_), None) => format!(
            "GitLab {target} is older than Rewind's table of shipped PostgreSQL versions: not checked"
        ),
        (Some(found), Some(s)) => {
            let list = join(&s.majors);
            let newest = s.majors.iter().max().copied();
            if newest.is_some_and(|n| *found > n) && !s.beyond_table {
                return Err(PgTooNew {
                    data_dir,
                    found: *found,
                    target: target.clone(),
                    shipped: list,
                    revert_to: newest.unwrap_or(*found),
                });
            }
            if s.beyond_table {
                format!(
                    "PostgreSQL {found} data; GitLab {target} is newer than Rewind's table (through {}.{}), which cannot tell what it ships",
                    table.covered_through.0, table.covered_through.1
                )
            } else if s.majors.contains(found) {
                format!("PostgreSQL {found} data; GitLab {target} ships PostgreSQL {list}")
            } else {
                format!(
                    "PostgreSQL {found} data is older than GitLab {target} ships ({list}): its reconfigure may upgrade or refuse it"
                )
            }
        }
    };
    Ok(PgCheck {
        data_dir,
        data_major,
        shipped,
        note,
    })
}

fn join(v: &[PgMajor]) -> String {
    v.iter()
        .map(|m| m.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A key set in `gitlab.rb`: `gitlab_rails['time_zone']` (nested keys by their first
/// level), or a top-level setting such as `external_url`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RbKey {
    pub key: String,
    /// 1-based line in `gitlab.rb`.
    pub line: usize,
}

const RUBY_WORDS: &[&str] = &[
    "if", "elsif", "else", "end", "unless", "case", "when", "do", "def", "require", "puts",
    "return", "begin", "rescue", "ensure", "while", "until", "for", "then", "and", "or", "not",
];

/// The key an (uncommented) line of `gitlab.rb` sets, if it sets one.
fn line_key(line: &str) -> Option<String> {
    let l = line.trim();
    let ident_end = l
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(l.len());
    let ident = &l[..ident_end];
    if ident.is_empty()
        || !ident.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        || RUBY_WORDS.contains(&ident)
    {
        return None;
    }
    let rest = &l[ident_end..];
    if let Some(r) = rest.strip_prefix('[') {
        let q = r.chars().next().filter(|c| *c == '\'' || *c == '"')?;
        let r = &r[1..];
        let end = r.find(q)?;
        let name = &r[..end];
        if !r[end + 1..].starts_with(']') || name.is_empty() {
            return None;
        }
        return Some(format!("{ident}['{name}']"));
    }
    // `external_url 'https://...'`, `roles ['...']`
    let r = rest.strip_prefix(' ')?.trim_start();
    if r.starts_with(['\'', '"', '[']) {
        return Some(ident.to_string());
    }
    None
}

/// The keys `gitlab.rb` sets, in order (commented lines skipped).
pub fn rb_keys(text: &str) -> Vec<RbKey> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim_start().starts_with('#'))
        .filter_map(|(i, l)| line_key(l).map(|key| RbKey { key, line: i + 1 }))
        .collect()
}

/// The keys a `gitlab.rb.template` knows: every key it names, commented or not.
pub fn template_keys(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| line_key(l.trim_start().trim_start_matches('#')))
        .collect()
}

/// The keys of `gitlab_rb` the template does not know.
pub fn unknown_keys(gitlab_rb: &str, template: &str) -> Vec<RbKey> {
    let known = template_keys(template);
    rb_keys(gitlab_rb)
        .into_iter()
        .filter(|k| !known.contains(&k.key))
        .collect()
}

/// The package file of `package` `version` (`16.10.3-ee.0`) for apt: apt's cache under the
/// root, the file itself when the repository is a local (`file:`) one, else downloaded into
/// apt's cache with `--download-only` (the install step then uses it; nothing is
/// installed). Other managers: `None` (not read yet).
pub fn package_file(
    manager: Manager,
    root: &HostRoot,
    package: &str,
    version: &str,
) -> Result<Option<PathBuf>, PackageError> {
    if let Some(p) = cached_package_file(manager, root, package, version)? {
        return Ok(Some(p));
    }
    if manager != Manager::Apt {
        return Ok(None);
    }
    let spec = format!("{package}={version}");
    let dl = exec::capture(&manager_cmd(manager, "apt-get", root)?.args([
        "install",
        "-q",
        "-y",
        "--download-only",
        "--allow-downgrades",
        spec.as_str(),
    ]))?;
    if !dl.success() {
        return Err(PackageError::Query {
            command: dl.command,
            code: dl.code,
            stderr: dl.stderr.trim().to_string(),
        });
    }
    cached_package_file(manager, root, package, version)
}

/// The package file when it is on this host already (apt's cache, or a local `file:`
/// repository); nothing is downloaded.
pub fn cached_package_file(
    manager: Manager,
    root: &HostRoot,
    package: &str,
    version: &str,
) -> Result<Option<PathBuf>, PackageError> {
    if manager != Manager::Apt {
        return Ok(None);
    }
    let cached = || -> Option<PathBuf> {
        let dir = root.join("/var/cache/apt/archives");
        let prefix = format!("{package}_{}_", version.replace(':', "%3a"));
        std::fs::read_dir(dir)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".deb"))
            })
    };
    if let Some(p) = cached() {
        return Ok(Some(p));
    }
    let spec = format!("{package}={version}");
    let uris = exec::capture(&manager_cmd(manager, "apt-get", root)?.args([
        "install",
        "-qq",
        "--print-uris",
        "-y",
        "--allow-downgrades",
        spec.as_str(),
    ]))?;
    for line in uris.stdout.lines() {
        let uri = line
            .split_whitespace()
            .next()
            .unwrap_or("")
            .trim_matches('\'');
        let file = uri.rsplit('/').next().unwrap_or("");
        if !file.starts_with(&format!("{package}_")) {
            continue;
        }
        if let Some(path) = uri.strip_prefix("file:") {
            let p = PathBuf::from(path);
            if p.is_file() {
                return Ok(Some(p));
            }
        }
    }
    Ok(None)
}

/// Read `gitlab.rb.template` out of a `.deb` (`dpkg-deb --fsys-tarfile`, streamed: nothing
/// else of the package is unpacked). `None` when the package has none.
pub fn template_from_deb(deb: &Path) -> Result<Option<String>, PackageError> {
    let cmd = Cmd::new("dpkg-deb").arg("--fsys-tarfile").arg(deb);
    let mut child = cmd
        .command()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| PackageError::Query {
            command: cmd.display(),
            code: None,
            stderr: e.to_string(),
        })?;
    let want = GITLAB_RB_TEMPLATE.trim_start_matches('/');
    let mut found = None;
    if let Some(out) = child.stdout.take() {
        let mut ar = tar::Archive::new(out);
        if let Ok(entries) = ar.entries() {
            for e in entries.flatten() {
                let is_it = e
                    .path()
                    .ok()
                    .is_some_and(|p| p.strip_prefix("./").unwrap_or(&p) == Path::new(want));
                if is_it {
                    let mut text = String::new();
                    e.take(4 << 20)
                        .read_to_string(&mut text)
                        .map_err(|e| PackageError::Query {
                            command: cmd.display(),
                            code: None,
                            stderr: e.to_string(),
                        })?;
                    found = Some(text);
                    break;
                }
            }
        }
    }
    // Stop dpkg-deb if the template came early in a large package.
    let _ = child.kill();
    let _ = child.wait();
    Ok(found)
}

/// The archive in `/etc/gitlab/config_backup` nearest before `before` (by the epoch in
/// `gitlab_config_<epoch>_<date>.tar`, else the file's time).
pub fn config_backup_before(root: &HostRoot, before: DateTime<Utc>) -> Option<ConfigBackup> {
    let when = |c: &ConfigBackup| -> Option<DateTime<Utc>> {
        let name = c.path.file_name()?.to_str()?;
        name.strip_prefix("gitlab_config_")
            .and_then(|r| r.split('_').next())
            .and_then(|e| e.parse::<i64>().ok())
            .and_then(|e| DateTime::from_timestamp(e, 0))
            .or_else(|| {
                c.modified
                    .as_deref()
                    .and_then(|m| DateTime::parse_from_rfc3339(m).ok())
                    .map(|d| d.with_timezone(&Utc))
            })
    };
    config_backups(root)
        .into_iter()
        .filter_map(|c| when(&c).map(|t| (t, c)))
        .filter(|(t, _)| *t <= before)
        .max_by_key(|(t, _)| *t)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> GitLabVersion {
        s.parse().unwrap()
    }

    #[test]
    fn the_embedded_table_parses_and_answers() {
        let t = PgTable::embedded();
        assert!(t.rows.len() >= 25);
        let s = t.shipped(&v("16.10.3-ee")).unwrap();
        assert_eq!(s.since, "16.10.1");
        assert_eq!(join(&s.majors), "13, 14");
        assert_eq!(s.default_upgrade, "14.11");
        assert!(!s.beyond_table);
        // 16.9.4 is in the 16.9 series row, 16.9.0 falls back to the 16.8.5 row: same majors.
        assert_eq!(t.shipped(&v("16.9.4")).unwrap().since, "16.9.3");
        assert_eq!(join(&t.shipped(&v("17.0.0")).unwrap().majors), "14");
        assert_eq!(join(&t.shipped(&v("17.5.2")).unwrap().majors), "14, 16");
        assert_eq!(
            join(&t.shipped(&v("12.9.0")).unwrap().majors),
            "9.6, 10, 11"
        );
        assert!(t.shipped(&v("18.1.0")).unwrap().beyond_table);
        assert!(t.shipped(&v("8.13.0")).is_none());
    }

    #[test]
    fn table_errors_are_named() {
        assert!(PgTable::parse("17.0.0 | 14.11 | 14.11 | 14.11\n")
            .unwrap_err()
            .contains("covered-through"));
        assert!(
            PgTable::parse("covered-through: 17.5\n17.0.0 | 14.11 | x | 14.11\n")
                .unwrap_err()
                .contains("line 2")
        );
        assert!(PgTable::parse("covered-through: 17.5\nx | 14.11 | 14.11 | 14.11\n").is_err());
    }

    #[test]
    fn majors() {
        assert_eq!(PgMajor::of_version("9.6.17").unwrap().to_string(), "9.6");
        assert_eq!(PgMajor::of_version("14.11").unwrap().to_string(), "14");
        assert_eq!(PgMajor::of_version("16\n").unwrap().to_string(), "16");
        assert!(PgMajor::of_version("9.6").unwrap() < PgMajor::of_version("10").unwrap());
        assert!(PgMajor::of_version("x").is_none());
    }

    fn host(pg: Option<&str>, rb: &str) -> (tempfile::TempDir, HostRoot) {
        let dir = tempfile::tempdir().unwrap();
        let root = HostRoot::new(dir.path());
        std::fs::create_dir_all(root.join("/etc/gitlab")).unwrap();
        std::fs::write(root.join(omnibus::GITLAB_RB), rb).unwrap();
        if let Some(pg) = pg {
            let d = root.join(pg_data_dir(&root));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("PG_VERSION"), pg).unwrap();
        }
        (dir, root)
    }

    #[test]
    fn newer_data_directory_is_refused_with_both_majors_and_the_way_back() {
        let t = PgTable::embedded();
        let (_d, root) = host(Some("16\n"), "");
        let err = check_postgres(&root, &t, &v("16.10.3-ee")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("PostgreSQL 16"), "{msg}");
        assert!(msg.contains("ships PostgreSQL 13, 14 only"), "{msg}");
        assert!(msg.contains("gitlab-ctl revert-pg-upgrade -V 14"), "{msg}");
        assert!(msg.contains("/var/opt/gitlab/postgresql/data"), "{msg}");

        let (_d, root) = host(Some("14\n"), "");
        let ok = check_postgres(&root, &t, &v("16.10.3-ee")).unwrap();
        assert!(ok.note.contains("ships PostgreSQL 13, 14"), "{}", ok.note);

        // data_dir moved by gitlab.rb.
        let (_d, root) = host(Some("16\n"), "postgresql['data_dir'] = \"/srv/pg/data\"\n");
        assert_eq!(pg_data_dir(&root), PathBuf::from("/srv/pg/data"));
        let err = check_postgres(&root, &t, &v("16.10.3")).unwrap_err();
        assert_eq!(err.data_dir, PathBuf::from("/srv/pg/data"));

        // No bundled PostgreSQL: not checked.
        let (_d, root) = host(None, "");
        assert!(check_postgres(&root, &t, &v("16.10.3"))
            .unwrap()
            .data_major
            .is_none());
    }

    #[test]
    fn unknown_gitlab_rb_keys_are_found_with_their_lines() {
        let template = "external_url 'GENERATED_EXTERNAL_URL'\n# gitlab_rails['time_zone'] = 'UTC'\n#   gitlab_rails['databases']['ci']['enable'] = true\n# postgresql['data_dir'] = \"/var/opt/gitlab/postgresql/data\"\n# roles ['redis_sentinel_role']\n";
        let rb = "external_url 'https://x'\n# gitlab_rails['made_up'] = 1\ngitlab_rails['time_zone'] = 'UTC'\ngitlab_rails['databases']['ci']['enable'] = true\nif true\n  gitlab_kas[\"new_thing\"] = true\nend\nroles ['a']\nnew_top_level 'x'\n";
        let u = unknown_keys(rb, template);
        assert_eq!(
            u,
            vec![
                RbKey {
                    key: "gitlab_kas['new_thing']".into(),
                    line: 6
                },
                RbKey {
                    key: "new_top_level".into(),
                    line: 9
                }
            ]
        );
    }

    #[test]
    fn nearest_config_backup_before_the_data_backup() {
        let dir = tempfile::tempdir().unwrap();
        let root = HostRoot::new(dir.path());
        let cb = root.join(crate::services::CONFIG_BACKUP_DIR);
        std::fs::create_dir_all(&cb).unwrap();
        for e in [1713000000, 1713800000, 1713900000] {
            std::fs::write(cb.join(format!("gitlab_config_{e}_2024_04_x.tar")), b"t").unwrap();
        }
        let before = DateTime::from_timestamp(1713867342, 0).unwrap();
        let c = config_backup_before(&root, before).unwrap();
        assert!(c.path.ends_with("gitlab_config_1713800000_2024_04_x.tar"));
        let early = DateTime::from_timestamp(1000, 0).unwrap();
        assert!(config_backup_before(&root, early).is_none());
    }
}
