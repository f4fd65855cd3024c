//! `backup_information.yml`: GitLab's backup manifest.
//!
//! GitLab writes a Ruby hash with symbol keys, its leading `---` line removed, so every
//! line looks like `:key: value`. `:backup_created_at:` is either a plain time string or an
//! `!ruby/object:ActiveSupport::TimeWithZone` mapping with `utc:`/`time:` keys. Older files
//! hold only five keys; files from GitLab 6 and earlier hold a git SHA as the version. This
//! module reads all of them leniently (unknown keys are kept, odd values become warnings)
//! and writes GitLab's exact layout for the fixture builder.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::version::GitLabVersion;

/// File name of the manifest inside an archive or an unpacked backup.
pub const MANIFEST_NAME: &str = "backup_information.yml";

/// When the backup was made, as written in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum CreatedAt {
    /// A time Rewind could read.
    Time(DateTime<Utc>),
    /// A value Rewind could not read as a time, kept as written.
    Raw(String),
}

impl CreatedAt {
    /// The time, when it could be read.
    pub fn time(&self) -> Option<DateTime<Utc>> {
        match self {
            CreatedAt::Time(t) => Some(*t),
            CreatedAt::Raw(_) => None,
        }
    }
}

/// The parsed manifest. Every field GitLab has written in any version is optional; unknown
/// keys are kept in [`BackupInformation::extra`].
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BackupInformation {
    /// `:db_version:`: the schema migration version (digits) at backup time.
    pub db_version: Option<String>,
    /// `:backup_created_at:`.
    pub created_at: Option<CreatedAt>,
    /// `:gitlab_version:` when it parses as a GitLab version.
    pub gitlab_version: Option<GitLabVersion>,
    /// `:gitlab_version:` as written (also set when it did not parse, e.g. an old git SHA).
    pub gitlab_version_raw: Option<String>,
    /// `:tar_version:`, e.g. `tar (GNU tar) 1.34`.
    pub tar_version: Option<String>,
    /// `:installation_type:`, e.g. `omnibus-gitlab`.
    pub installation_type: Option<String>,
    /// `:skipped:`: components skipped at backup time (`db`, `uploads`, `repositories`, ...).
    pub skipped: Vec<String>,
    /// `:repositories_storages:` (empty = all storages).
    pub repositories_storages: Vec<String>,
    /// `:repositories_paths:`.
    pub repositories_paths: Vec<String>,
    /// `:skip_repositories_paths:`.
    pub skip_repositories_paths: Vec<String>,
    /// `:repositories_server_side:`: repositories live in Gitaly's object storage, not in
    /// the archive.
    pub repositories_server_side: Option<bool>,
    /// `:backup_id:`.
    pub backup_id: Option<String>,
    /// `:full_backup_id:` (incremental backups).
    pub full_backup_id: Option<String>,
    /// Keys Rewind does not know, without their leading `:`, as parsed.
    pub extra: BTreeMap<String, Value>,
    /// Values Rewind could not interpret (not fatal), one sentence each.
    pub warnings: Vec<String>,
}

/// Why a manifest could not be read at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MetadataError(pub String);

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn list(v: &Value) -> Vec<String> {
    match v {
        Value::Array(items) => items.iter().filter_map(scalar_text).collect(),
        other => scalar_text(other)
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
    }
}

/// Parse a time the way Ruby writes it (`2024-04-23 10:15:42.123456789 Z`,
/// `2015-01-20 14:32:10.123456000 +01:00`) or as RFC 3339.
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for fmt in [
        "%Y-%m-%d %H:%M:%S%.f %:z",
        "%Y-%m-%d %H:%M:%S%.f %z",
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%d %H:%M:%S%.f%z",
    ] {
        if let Ok(t) = DateTime::<FixedOffset>::parse_from_str(s, fmt) {
            return Some(t.with_timezone(&Utc));
        }
    }
    for suffix in [" Z", "Z", " UTC", " +00:00", ""] {
        if let Some(head) = s.strip_suffix(suffix) {
            for fmt in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
                if let Ok(t) = NaiveDateTime::parse_from_str(head.trim(), fmt) {
                    return Some(Utc.from_utc_datetime(&t));
                }
            }
        }
    }
    None
}

fn created_at(v: &Value, warnings: &mut Vec<String>) -> Option<CreatedAt> {
    let text = match v {
        Value::Null => return None,
        // `!ruby/object:ActiveSupport::TimeWithZone` (the tag is dropped by the parser) or
        // a Time object dumped as a mapping.
        Value::Object(map) => ["utc", "time"]
            .iter()
            .find_map(|k| map.get(*k).and_then(scalar_text)),
        Value::Number(n) => {
            // Seconds since the epoch (not what GitLab writes, but unambiguous).
            if let Some(t) = n
                .as_i64()
                .and_then(|secs| Utc.timestamp_opt(secs, 0).single())
            {
                return Some(CreatedAt::Time(t));
            }
            Some(n.to_string())
        }
        other => scalar_text(other),
    };
    let Some(text) = text else {
        warnings.push(format!(
            ":backup_created_at: has no time in it ({v}); the creation time is taken from the file name"
        ));
        return None;
    };
    match parse_time(&text) {
        Some(t) => Some(CreatedAt::Time(t)),
        None => {
            warnings.push(format!(
                ":backup_created_at: `{text}` is not a time Rewind can read; kept as written"
            ));
            Some(CreatedAt::Raw(text))
        }
    }
}

impl BackupInformation {
    /// Parse the text of a `backup_information.yml`.
    pub fn parse(text: &str) -> Result<Self, MetadataError> {
        if text.trim().is_empty() {
            return Err(MetadataError("the file is empty".into()));
        }
        let doc: Value = serde_saphyr::from_str(text)
            .map_err(|e| MetadataError(format!("not valid YAML: {e}")))?;
        let Value::Object(map) = doc else {
            return Err(MetadataError(format!(
                "expected a mapping of `:key: value` lines, found {}",
                kind_name(&doc)
            )));
        };
        let mut info = BackupInformation::default();
        let mut known = 0usize;
        for (raw_key, value) in map {
            let key = raw_key.strip_prefix(':').unwrap_or(&raw_key).to_string();
            match key.as_str() {
                "db_version" => {
                    info.db_version = scalar_text(&value);
                    if let Some(v) = &info.db_version {
                        if !v.bytes().all(|b| b.is_ascii_digit()) {
                            info.warnings.push(format!(
                                ":db_version: `{v}` is not a migration version (digits)"
                            ));
                        }
                    }
                }
                "backup_created_at" => info.created_at = created_at(&value, &mut info.warnings),
                "gitlab_version" => {
                    let raw = scalar_text(&value);
                    if let Some(raw) = &raw {
                        match raw.parse::<GitLabVersion>() {
                            Ok(v) => info.gitlab_version = Some(v),
                            Err(e) => info.warnings.push(format!(
                                ":gitlab_version: kept as text: {e} (backups from GitLab 6 and older hold a git SHA here)"
                            )),
                        }
                    }
                    info.gitlab_version_raw = raw;
                }
                "tar_version" => info.tar_version = scalar_text(&value),
                "installation_type" => info.installation_type = scalar_text(&value),
                "skipped" => info.skipped = list(&value),
                "repositories_storages" => info.repositories_storages = list(&value),
                "repositories_paths" => info.repositories_paths = list(&value),
                "skip_repositories_paths" => info.skip_repositories_paths = list(&value),
                "repositories_server_side" => {
                    info.repositories_server_side = match &value {
                        Value::Bool(b) => Some(*b),
                        Value::Null => None,
                        other => match scalar_text(other).as_deref() {
                            Some("true") => Some(true),
                            Some("false") | Some("") => Some(false),
                            _ => {
                                info.warnings.push(format!(
                                    ":repositories_server_side: `{other}` is not true or false"
                                ));
                                None
                            }
                        },
                    }
                }
                "backup_id" => info.backup_id = scalar_text(&value),
                "full_backup_id" => info.full_backup_id = scalar_text(&value),
                _ => {
                    info.extra.insert(key, value);
                    continue;
                }
            }
            known += 1;
        }
        if known == 0 {
            return Err(MetadataError(
                "none of GitLab's keys (:db_version:, :backup_created_at:, :gitlab_version:, ...) is present".into(),
            ));
        }
        Ok(info)
    }

    /// The version as written, for display: the parsed version, else the raw text.
    pub fn version_text(&self) -> Option<String> {
        self.gitlab_version
            .as_ref()
            .map(|v| v.to_string())
            .or_else(|| self.gitlab_version_raw.clone())
    }

    /// The manifest in GitLab's layout: the Ruby hash with symbol keys, in GitLab's key
    /// order, without the leading `---` line. Unset values are written empty, as Ruby does
    /// for `nil`; `:backup_id:` is written only when set.
    pub fn to_yaml(&self) -> String {
        let mut out = String::new();
        let opt = |v: &Option<String>| v.as_deref().map(quote);
        let line = |out: &mut String, key: &str, value: Option<String>| {
            match value {
                Some(v) => writeln!(out, ":{key}: {v}"),
                None => writeln!(out, ":{key}:"),
            }
            .expect("writing to a String cannot fail");
        };
        line(
            &mut out,
            "db_version",
            self.db_version.as_deref().map(quote),
        );
        match &self.created_at {
            Some(CreatedAt::Time(t)) => {
                let ts = t.format("%Y-%m-%d %H:%M:%S%.9f Z").to_string();
                let _ = writeln!(
                    out,
                    ":backup_created_at: !ruby/object:ActiveSupport::TimeWithZone\n  utc: {ts}\n  zone: !ruby/object:ActiveSupport::TimeZone\n    name: Etc/UTC\n  time: {ts}"
                );
            }
            Some(CreatedAt::Raw(s)) => line(&mut out, "backup_created_at", Some(quote(s))),
            None => line(&mut out, "backup_created_at", None),
        }
        let version = self
            .gitlab_version
            .as_ref()
            .map(|v| v.to_string())
            .or_else(|| self.gitlab_version_raw.clone());
        line(&mut out, "gitlab_version", opt(&version));
        line(&mut out, "tar_version", opt(&self.tar_version));
        line(&mut out, "installation_type", opt(&self.installation_type));
        for (key, items) in [
            ("skipped", &self.skipped),
            ("repositories_storages", &self.repositories_storages),
            ("repositories_paths", &self.repositories_paths),
            ("skip_repositories_paths", &self.skip_repositories_paths),
        ] {
            line(&mut out, key, Some(quote(&items.join(","))));
        }
        line(
            &mut out,
            "repositories_server_side",
            Some(self.repositories_server_side.unwrap_or(false).to_string()),
        );
        if self.backup_id.is_some() {
            line(&mut out, "backup_id", opt(&self.backup_id));
        }
        line(&mut out, "full_backup_id", opt(&self.full_backup_id));
        for (key, value) in &self.extra {
            let v = match value {
                Value::Null => None,
                Value::String(s) => Some(quote(s)),
                Value::Bool(_) | Value::Number(_) => Some(value.to_string()),
                other => Some(quote(&other.to_string())),
            };
            line(&mut out, key, v);
        }
        out
    }
}

fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a single string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// A YAML scalar as Psych writes it: plain when unambiguous, else single-quoted.
fn quote(s: &str) -> String {
    let plain_chars = s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b" ._()/+-,@".contains(&b));
    let first_ok = s
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'/' || b == b'.' || b == b'(');
    let looks_typed = s
        .bytes()
        .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-' || b == b'+')
        && !s.bytes().any(|b| b.is_ascii_alphabetic())
        && s.bytes().filter(|b| *b == b'.').count() < 2;
    let reserved = matches!(
        s.to_ascii_lowercase().as_str(),
        "true" | "false" | "yes" | "no" | "on" | "off" | "null" | "y" | "n" | "~"
    );
    if !s.is_empty() && plain_chars && first_ok && !looks_typed && !reserved && !s.ends_with(' ') {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::version::Edition;

    const GITLAB_16: &str = "\
:db_version: '20240410123456'
:backup_created_at: !ruby/object:ActiveSupport::TimeWithZone
  utc: 2024-04-23 10:15:42.123456789 Z
  zone: !ruby/object:ActiveSupport::TimeZone
    name: Etc/UTC
  time: 2024-04-23 10:15:42.123456789 Z
:gitlab_version: 16.10.3-ee
:tar_version: tar (GNU tar) 1.34
:installation_type: omnibus-gitlab
:skipped: builds,artifacts
:repositories_storages: ''
:repositories_paths: ''
:skip_repositories_paths: ''
:repositories_server_side: false
:full_backup_id:
:some_future_key: 42
";

    #[test]
    fn reads_a_current_manifest() {
        let info = BackupInformation::parse(GITLAB_16).unwrap();
        assert_eq!(info.db_version.as_deref(), Some("20240410123456"));
        let v = info.gitlab_version.clone().unwrap();
        assert_eq!((v.major, v.minor, v.patch), (16, 10, 3));
        assert_eq!(v.edition, Some(Edition::Ee));
        let t = info.created_at.as_ref().and_then(CreatedAt::time).unwrap();
        assert_eq!(t.to_rfc3339(), "2024-04-23T10:15:42.123456789+00:00");
        assert_eq!(info.skipped, vec!["builds", "artifacts"]);
        assert!(info.repositories_storages.is_empty());
        assert_eq!(info.repositories_server_side, Some(false));
        assert_eq!(info.installation_type.as_deref(), Some("omnibus-gitlab"));
        assert_eq!(info.tar_version.as_deref(), Some("tar (GNU tar) 1.34"));
        assert_eq!(info.full_backup_id, None);
        assert_eq!(info.extra.get("some_future_key"), Some(&Value::from(42)));
        assert!(info.warnings.is_empty(), "{:?}", info.warnings);
    }

    #[test]
    fn reads_an_old_five_key_manifest_with_a_plain_time_and_a_sha() {
        let text = ":db_version: 20150120093012\n:backup_created_at: 2015-01-20 14:32:10.123456000 +01:00\n:gitlab_version: 6.4.3\n:tar_version: tar (GNU tar) 1.26\n:skipped: \n";
        let info = BackupInformation::parse(text).unwrap();
        assert_eq!(info.db_version.as_deref(), Some("20150120093012"));
        assert_eq!(
            info.created_at.unwrap().time().unwrap().to_rfc3339(),
            "2015-01-20T13:32:10.123456+00:00"
        );
        assert!(info.skipped.is_empty());

        let sha = ":db_version: 20130403003950\n:backup_created_at: 2013-05-01 10:00:00 UTC\n:gitlab_version: 5ab2c4b\n:tar_version: tar (GNU tar) 1.26\n:skipped:\n";
        let info = BackupInformation::parse(sha).unwrap();
        assert_eq!(info.gitlab_version, None);
        assert_eq!(info.gitlab_version_raw.as_deref(), Some("5ab2c4b"));
        assert_eq!(info.version_text().as_deref(), Some("5ab2c4b"));
        assert_eq!(info.warnings.len(), 1, "{:?}", info.warnings);
        assert!(info.created_at.unwrap().time().is_some());
    }

    #[test]
    fn unreadable_times_are_kept_as_text() {
        let text = ":db_version: '1'\n:backup_created_at: last tuesday\n:gitlab_version: 16.1.0\n";
        let info = BackupInformation::parse(text).unwrap();
        assert_eq!(info.created_at, Some(CreatedAt::Raw("last tuesday".into())));
        assert_eq!(info.warnings.len(), 1);
    }

    #[test]
    fn rejects_what_is_not_a_manifest() {
        for bad in [
            "",
            "   \n",
            "just a string",
            "- a\n- list\n",
            ":db_version: [unclosed\n",
            "foo: bar\n",
        ] {
            assert!(BackupInformation::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn writes_gitlabs_layout_and_reads_it_back() {
        let info = BackupInformation::parse(GITLAB_16).unwrap();
        let text = info.to_yaml();
        assert!(!text.starts_with("---"));
        assert!(text.starts_with(":db_version: '20240410123456'\n:backup_created_at: !ruby/object:ActiveSupport::TimeWithZone\n  utc: 2024-04-23 10:15:42.123456789 Z\n"), "{text}");
        assert!(text.contains("\n:gitlab_version: 16.10.3-ee\n"), "{text}");
        assert!(text.contains("\n:skipped: builds,artifacts\n"), "{text}");
        assert!(text.contains("\n:repositories_storages: ''\n"), "{text}");
        assert!(
            text.contains("\n:repositories_server_side: false\n"),
            "{text}"
        );
        assert!(text.contains("\n:full_backup_id:\n"), "{text}");
        let back = BackupInformation::parse(&text).unwrap();
        assert_eq!(back, info);
    }

    #[test]
    fn quoting_keeps_values_as_strings() {
        for s in [
            "", "123", "1.5", "true", "a: b", "it's", " x", "#x", "~", "-1",
        ] {
            let info = BackupInformation {
                tar_version: Some(s.to_string()),
                gitlab_version: Some("16.1.0".parse().unwrap()),
                ..Default::default()
            };
            let back = BackupInformation::parse(&info.to_yaml()).unwrap();
            assert_eq!(back.tar_version.as_deref().unwrap_or(""), s, "{s:?}");
        }
    }
}
