//! The backups the wizard offers: every `<id>_gitlab_backup.tar` in the backup directory,
//! newest first, with the version, size, components and whether the version matches. Only
//! the tar headers and `backup_information.yml` are read.

use std::fs::File;
use std::io::{BufReader, Read};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use rewind_engine::version::GitLabVersion;

use super::state::BackupRow;

const SUFFIX: &str = "_gitlab_backup.tar";

/// List the backups in `dir` (a path on this machine).
pub fn list(dir: &Path, installed: Option<&GitLabVersion>) -> Result<Vec<BackupRow>, String> {
    let rd = std::fs::read_dir(dir).map_err(|e| {
        format!(
            "{}: {e}. Point Rewind at the backup directory with --backup-dir",
            dir.display()
        )
    })?;
    let mut rows = Vec::new();
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(id) = name.strip_suffix(SUFFIX) else {
            continue;
        };
        let path = e.path();
        if !path.is_file() {
            continue;
        }
        rows.push(read_row(id, &path, installed));
    }
    rows.sort_by(|a, b| b.created.cmp(&a.created).then(b.id.cmp(&a.id)));
    Ok(rows)
}

/// `(epoch, version)` from `<epoch>_YYYY_MM_DD_<version>`.
fn parse_id(id: &str) -> (Option<i64>, Option<GitLabVersion>) {
    let parts: Vec<&str> = id.splitn(5, '_').collect();
    let epoch = parts.first().and_then(|p| p.parse().ok());
    let version = parts.get(4).and_then(|v| v.parse().ok());
    (epoch, version)
}

/// `YYYY-MM-DD HH:MM` (UTC) of a Unix time.
fn utc(epoch: i64) -> String {
    let days = epoch.div_euclid(86_400);
    let secs = epoch.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        secs / 3600,
        secs / 60 % 60
    )
}

/// The value of `:key:` in GitLab's `backup_information.yml` (symbol keys, scalar values).
fn info_value(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let l = l.trim();
        let rest = l
            .strip_prefix(&format!(":{key}:"))
            .or_else(|| l.strip_prefix(&format!("{key}:")))?;
        let v = rest.trim().trim_matches('\'').trim_matches('"').to_string();
        (!v.is_empty()).then_some(v)
    })
}

fn read_row(id: &str, path: &Path, installed: Option<&GitLabVersion>) -> BackupRow {
    let meta = std::fs::metadata(path).ok();
    let (epoch, id_version) = parse_id(id);
    let mut components = Vec::new();
    let mut info = String::new();
    let mut error = None;
    match File::open(path) {
        Ok(f) => {
            let mut a = tar::Archive::new(BufReader::new(f));
            match a.entries() {
                Ok(entries) => {
                    for e in entries {
                        let mut e = match e {
                            Ok(e) => e,
                            Err(err) => {
                                error = Some(err.to_string());
                                break;
                            }
                        };
                        let name = e
                            .path()
                            .map(|p| p.to_string_lossy().trim_start_matches("./").to_string())
                            .unwrap_or_default();
                        let top = name.split('/').next().unwrap_or("").to_string();
                        if name == "backup_information.yml" {
                            let _ = (&mut e).take(1 << 20).read_to_string(&mut info);
                        }
                        let comp = if top == "db" {
                            Some("db".to_string())
                        } else if top == "repositories" {
                            Some("repositories".to_string())
                        } else if !name.contains('/') {
                            name.strip_suffix(".tar.gz")
                                .or_else(|| name.strip_suffix(".tar.zst"))
                                .or_else(|| name.strip_suffix(".tar"))
                                .map(str::to_string)
                        } else {
                            None
                        };
                        if let Some(c) = comp {
                            if !components.contains(&c) {
                                components.push(c);
                            }
                        }
                    }
                }
                Err(err) => error = Some(err.to_string()),
            }
        }
        Err(err) => error = Some(err.to_string()),
    }
    let version = info_value(&info, "gitlab_version")
        .and_then(|v| v.parse().ok())
        .or(id_version);
    let skipped = info_value(&info, "skipped")
        .map(|s| s.split(',').map(|x| x.trim().to_string()).collect())
        .unwrap_or_default();
    let mut details = Vec::new();
    if let Some(v) = info_value(&info, "db_version") {
        details.push(("db_version".to_string(), v));
    }
    if let Some(e) = error {
        details.push(("error".to_string(), e));
    }
    BackupRow {
        id: id.to_string(),
        path: path.to_path_buf(),
        created: epoch.map(utc).unwrap_or_default(),
        matches_installed: match (&version, installed) {
            (Some(v), Some(i)) => v.same_release(i),
            _ => false,
        },
        version,
        size: meta.as_ref().map(|m| m.len()).unwrap_or(0),
        mtime: meta.as_ref().map(|m| m.mtime()).unwrap_or(0),
        components,
        skipped,
        details,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_times_read_like_gitlab_writes_them() {
        let (e, v) = parse_id("1713867342_2024_04_23_16.10.3-ee");
        assert_eq!(e, Some(1_713_867_342));
        assert_eq!(v.unwrap().to_string(), "16.10.3-ee");
        assert_eq!(utc(1_713_867_342), "2024-04-23 10:15");
        assert_eq!(
            info_value(
                ":db_version: '20240412091512'\n:gitlab_version: 16.10.3-ee\n",
                "db_version"
            ),
            Some("20240412091512".into())
        );
    }
}
