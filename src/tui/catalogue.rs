//! The backups the wizard offers, from the engine's catalogue (`backup::list_backups`):
//! newest first, with version, size, components and whether the version matches.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use rewind_engine::backup::catalogue::{list_backups, BackupEntry, BackupKind};
use rewind_engine::version::GitLabVersion;

use super::state::BackupRow;

/// List the backups in `dir` (a path on this machine).
pub fn list(dir: &Path, installed: Option<&GitLabVersion>) -> Result<Vec<BackupRow>, String> {
    let entries = list_backups(dir, installed).map_err(|e| e.to_string())?;
    Ok(entries.iter().map(row).collect())
}

/// One catalogue entry as the wizard shows it.
pub fn row(e: &BackupEntry) -> BackupRow {
    let mut components = Vec::new();
    if !e.databases.is_empty() {
        components.push("db".to_string());
    }
    components.extend(e.components.iter().map(|c| c.name.clone()));
    if e.repositories {
        components.push("repositories".to_string());
    }
    let mut details = Vec::new();
    if e.kind == BackupKind::Directory {
        details.push(("kind".to_string(), "unpacked directory".to_string()));
    }
    if let Some(info) = &e.information {
        if let Some(v) = &info.db_version {
            details.push(("db_version".to_string(), v.clone()));
        }
    }
    if let Some(d) = e.databases.first() {
        if let Some(c) = d.compression {
            details.push(("compressed".to_string(), c.as_str().to_string()));
        }
    }
    if e.version.is_none() {
        if let Some(t) = &e.version_text {
            details.push(("version text".to_string(), t.clone()));
        }
    }
    if let Some(err) = &e.error {
        details.push(("error".to_string(), err.clone()));
    }
    BackupRow {
        id: e.id.clone(),
        path: e.path.clone(),
        created: e
            .created_at
            .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
            .unwrap_or_default(),
        backup_created_at: e.backup_created_at(),
        version: e.version.clone(),
        size: e.size,
        mtime: std::fs::metadata(&e.path).map(|m| m.mtime()).unwrap_or(0),
        components,
        skipped: e.skipped.clone(),
        matches_installed: e.version_matches == Some(true),
        details,
    }
}
