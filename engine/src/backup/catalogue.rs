//! The backup directory: every `<id>_gitlab_backup.tar`, unpacked ("non tarred") backups,
//! and backups given by path, described from their tar headers and manifest alone.
//!
//! Listing reads each archive's headers and seeks past member data, so a directory of
//! large archives lists quickly; only `backup_information.yml` (a few hundred bytes) and
//! the first bytes of dumps and components (their compression magic) are read.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use chrono::{DateTime, TimeZone, Utc};
use regex::Regex;
use serde::Serialize;

use super::compression::Compression;
use super::metadata::{BackupInformation, MANIFEST_NAME};
use super::stream::StreamBuf;
use super::tar_headers::{EntryKind, TarReader};
use super::{tar_error, BackupError, FILE_NAME_SUFFIX};
use crate::root::HostRoot;
use crate::version::{Edition, GitLabVersion};

use crate::limited::MAX_MANIFEST;

/// How a backup is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackupKind {
    /// `<id>_gitlab_backup.tar`.
    Tar,
    /// An unpacked backup: a directory holding `backup_information.yml` and the members.
    Directory,
}

/// One member of a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberInfo {
    /// Name without a leading `./` (`db/database.sql.gz`, `uploads.tar.gz`).
    pub name: String,
    pub kind: EntryKind,
    /// Bytes stored (compressed size for compressed members).
    pub size: u64,
    /// Detected compression, for the members whose first bytes were read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compression: Option<Compression>,
}

/// A database dump in the backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DatabaseDump {
    /// Connection name: `main` for `db/database.sql.gz`, `<name>` for
    /// `db/<name>_database.sql.gz` (`ci`).
    pub name: String,
    /// Member name.
    pub member: String,
    pub size: u64,
    pub compression: Option<Compression>,
}

/// A file component (`<name>.tar.gz`) in the backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileComponent {
    /// Component name (`uploads`, `builds`, `artifacts`, ...).
    pub name: String,
    /// Member name (`uploads.tar.gz`).
    pub member: String,
    pub size: u64,
    pub compression: Option<Compression>,
}

/// What Rewind knows about one backup.
#[derive(Debug, Clone, Serialize)]
pub struct BackupEntry {
    /// Backup id (`1713867342_2024_04_23_16.10.3-ee`).
    pub id: String,
    /// The archive file or unpacked directory (a real path, under the root).
    pub path: PathBuf,
    pub kind: BackupKind,
    /// Bytes on disk (the archive; the sum of the files for a directory).
    pub size: u64,
    /// Creation time: from the manifest, else the id's epoch, else the file time.
    pub created_at: Option<DateTime<Utc>>,
    /// GitLab version that made the backup (manifest, else the id).
    pub version: Option<GitLabVersion>,
    /// The version as written, also when it is not a version (old git SHA).
    pub version_text: Option<String>,
    /// Edition of that version (no suffix means CE).
    pub edition: Option<Edition>,
    /// Whether the backup's version is the installed one (GitLab restores only then);
    /// `None` when either is unknown.
    pub version_matches: Option<bool>,
    /// The manifest.
    pub information: Option<BackupInformation>,
    /// All members, in archive order.
    pub members: Vec<MemberInfo>,
    /// Database dumps, main first.
    pub databases: Vec<DatabaseDump>,
    /// File components.
    pub components: Vec<FileComponent>,
    /// Whether `repositories/` is present.
    pub repositories: bool,
    /// Components skipped when the backup was made.
    pub skipped: Vec<String>,
    /// Why this backup could not be read (listing only; reading one backup fails instead).
    pub error: Option<String>,
}

/// The parts of a backup id: `<epoch>[_YYYY_MM_DD[_<version>]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdParts {
    /// Seconds since the epoch.
    pub epoch: i64,
    /// Version part, when present and valid.
    pub version: Option<GitLabVersion>,
}

fn id_regex() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        // GitLab's `backup_file?` (lib/backup/manager.rb), made lenient about the version
        // part so that `-ce` and custom suffixes still give the time.
        Regex::new(r"^(\d{10})(?:_\d{4}_\d{2}_\d{2}(?:_(.+))?)?$").expect("static regex")
    })
}

/// Parse a default-form backup id; `None` for ids given with `BACKUP=<name>`.
pub fn parse_id(id: &str) -> Option<IdParts> {
    let c = id_regex().captures(id)?;
    let epoch = c.get(1)?.as_str().parse().ok()?;
    let version = c.get(2).and_then(|m| m.as_str().parse().ok());
    Some(IdParts { epoch, version })
}

/// The id of a `<id>_gitlab_backup.tar` file name.
pub fn id_from_file_name(name: &str) -> Option<&str> {
    name.strip_suffix(FILE_NAME_SUFFIX)
        .filter(|s| !s.is_empty())
}

/// The connection a `db/...` member is the dump of (`main`, `ci`), if it is one.
pub(crate) fn database_name(member: &str) -> Option<String> {
    let file = member.strip_prefix("db/")?;
    if file.contains('/') {
        return None;
    }
    if file == "database.sql.gz" {
        return Some("main".into());
    }
    file.strip_suffix("_database.sql.gz")
        .filter(|n| !n.is_empty())
        .map(String::from)
}

fn component_name(member: &str) -> Option<String> {
    if member.contains('/') {
        return None;
    }
    member
        .strip_suffix(".tar.gz")
        .filter(|n| !n.is_empty())
        .map(String::from)
}

fn wants_magic(name: &str) -> bool {
    database_name(name).is_some() || component_name(name).is_some()
}

fn read_manifest(
    archive: &Path,
    r: impl Read,
    size: u64,
) -> Result<BackupInformation, BackupError> {
    if size > MAX_MANIFEST {
        return Err(BackupError::MalformedInformation {
            archive: archive.to_path_buf(),
            detail: format!("it is {size} bytes, far larger than a manifest"),
        });
    }
    let mut bytes = Vec::with_capacity(size as usize);
    r.take(MAX_MANIFEST)
        .read_to_end(&mut bytes)
        .map_err(|e| super::compression::classify(e, archive, MANIFEST_NAME, Compression::Plain))?;
    let text = String::from_utf8(bytes).map_err(|_| BackupError::MalformedInformation {
        archive: archive.to_path_buf(),
        detail: "it is not UTF-8 text".into(),
    })?;
    BackupInformation::parse(&text).map_err(|e| BackupError::MalformedInformation {
        archive: archive.to_path_buf(),
        detail: e.0,
    })
}

impl BackupEntry {
    /// `:backup_created_at:` of the manifest, when it reads as a time: what was written
    /// after it is lost by a restore (never the id's epoch or the file's time).
    pub fn backup_created_at(&self) -> Option<DateTime<Utc>> {
        self.information
            .as_ref()
            .and_then(|i| i.created_at.as_ref())
            .and_then(|c| c.time())
    }

    fn new(id: String, path: PathBuf, kind: BackupKind, size: u64) -> Self {
        Self {
            id,
            path,
            kind,
            size,
            created_at: None,
            version: None,
            version_text: None,
            edition: None,
            version_matches: None,
            information: None,
            members: Vec::new(),
            databases: Vec::new(),
            components: Vec::new(),
            repositories: false,
            skipped: Vec::new(),
            error: None,
        }
    }

    fn add_member(&mut self, m: MemberInfo) {
        if let Some(db) = database_name(&m.name) {
            self.databases.push(DatabaseDump {
                name: db,
                member: m.name.clone(),
                size: m.size,
                compression: m.compression,
            });
        } else if let Some(c) = component_name(&m.name) {
            self.components.push(FileComponent {
                name: c,
                member: m.name.clone(),
                size: m.size,
                compression: m.compression,
            });
        }
        if m.name == "repositories" || m.name.starts_with("repositories/") {
            self.repositories = true;
        }
        self.members.push(m);
    }

    /// Fill the derived fields from the manifest, the id and the installed version.
    fn finish(
        &mut self,
        info: BackupInformation,
        installed: Option<&GitLabVersion>,
        mtime: Option<DateTime<Utc>>,
    ) {
        let from_id = parse_id(&self.id);
        // The id's version only stands in when the manifest names none: a `:gitlab_version:`
        // that does not parse leaves the version unknown (a restore then needs
        // --allow-version-mismatch), never replaced by what the file name says.
        self.version = match (&info.gitlab_version, &info.gitlab_version_raw) {
            (Some(v), _) => Some(v.clone()),
            (None, Some(_)) => None,
            (None, None) => from_id.as_ref().and_then(|p| p.version.clone()),
        };
        self.version_text = info
            .version_text()
            .or_else(|| self.version.as_ref().map(|v| v.to_string()));
        self.edition = self.version.as_ref().map(GitLabVersion::edition_or_ce);
        self.created_at = info
            .created_at
            .as_ref()
            .and_then(|c| c.time())
            .or_else(|| from_id.and_then(|p| Utc.timestamp_opt(p.epoch, 0).single()))
            .or(mtime);
        self.version_matches = match (&self.version, installed) {
            (Some(v), Some(i)) => Some(v.same_release(i)),
            _ => None,
        };
        self.skipped = info.skipped.clone();
        // Main first, then the others by name.
        self.databases
            .sort_by(|a, b| (a.name != "main", &a.name).cmp(&(b.name != "main", &b.name)));
        self.information = Some(info);
    }

    /// The dump of connection `name` (`main`, `ci`).
    pub fn database(&self, name: &str) -> Option<&DatabaseDump> {
        self.databases.iter().find(|d| d.name == name)
    }
}

fn mtime_of(meta: &fs::Metadata) -> Option<DateTime<Utc>> {
    meta.modified().ok().map(DateTime::<Utc>::from)
}

/// Read one backup: a `*_gitlab_backup.tar` (or any tar given by path) or an unpacked
/// backup directory. Only headers, the manifest and the first bytes of dumps and
/// components are read; with `all_compression` the first bytes of every file member too.
/// A damaged archive, a missing or malformed manifest is an error.
pub fn read_backup(
    path: &Path,
    installed: Option<&GitLabVersion>,
    all_compression: bool,
) -> Result<BackupEntry, BackupError> {
    let meta = fs::metadata(path).map_err(|e| BackupError::unreadable(path, e))?;
    if meta.is_dir() {
        return read_directory(path, installed, all_compression);
    }
    // Not File::open: a FIFO would block it until a writer appears.
    let file = crate::limited::open_regular(path).map_err(|e| BackupError::unreadable(path, e))?;
    let meta = file
        .metadata()
        .map_err(|e| BackupError::unreadable(path, e))?;
    let len = meta.len();
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let id_from_name = id_from_file_name(&file_name).map(String::from);
    let mut entry = BackupEntry::new(
        id_from_name.clone().unwrap_or_default(),
        path.to_path_buf(),
        BackupKind::Tar,
        len,
    );
    let mut tar = TarReader::new(StreamBuf::new(file, 16 * 1024)).with_len(len);
    let mut info = None;
    let mut seen = SeenMembers::default();
    while let Some(e) = tar.next_entry_seek().map_err(|e| tar_error(path, e))? {
        let name = e.clean_name().to_string();
        if name.is_empty() {
            continue;
        }
        seen.add(path, &name, e.kind)?;
        if name == MANIFEST_NAME && e.kind == EntryKind::File {
            if e.data_offset + e.size > len {
                return Err(BackupError::Truncated {
                    archive: path.to_path_buf(),
                    member: MANIFEST_NAME.into(),
                    detail: "the archive ends inside it".into(),
                });
            }
            info = Some(read_manifest(path, tar.data(), e.size)?);
        }
        let compression = if e.kind == EntryKind::File && (all_compression || wants_magic(&name)) {
            let mut d = tar.data();
            Some(Compression::detect(
                d.peek(4)
                    .map_err(|err| BackupError::unreadable(path, err))?,
            ))
        } else {
            None
        };
        entry.add_member(MemberInfo {
            name,
            kind: e.kind,
            size: e.size,
            compression,
        });
    }
    let info = info.ok_or_else(|| BackupError::MissingInformation {
        archive: path.to_path_buf(),
    })?;
    if id_from_name.is_none() {
        entry.id = info.backup_id.clone().unwrap_or_else(|| {
            file_name
                .strip_suffix(".tar")
                .unwrap_or(&file_name)
                .to_string()
        });
    }
    entry.finish(info, installed, mtime_of(&meta));
    Ok(entry)
}

/// Member names seen so far in an archive: a name stored twice (but for a directory
/// repeated as a directory, which changes nothing) is refused, since a reader takes the
/// first copy and GNU tar extracts the last.
#[derive(Default)]
pub(crate) struct SeenMembers(std::collections::HashMap<String, EntryKind>);

impl SeenMembers {
    pub(crate) fn add(
        &mut self,
        archive: &Path,
        name: &str,
        kind: EntryKind,
    ) -> Result<(), BackupError> {
        match self.0.insert(name.to_string(), kind) {
            Some(EntryKind::Dir) if kind == EntryKind::Dir => Ok(()),
            Some(_) => Err(BackupError::DuplicateMember {
                archive: archive.to_path_buf(),
                member: name.to_string(),
            }),
            None => Ok(()),
        }
    }
}

fn read_directory(
    dir: &Path,
    installed: Option<&GitLabVersion>,
    all_compression: bool,
) -> Result<BackupEntry, BackupError> {
    let manifest = dir.join(MANIFEST_NAME);
    let mfile = match crate::limited::open_regular(&manifest) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(BackupError::MissingInformation {
                archive: dir.to_path_buf(),
            })
        }
        Err(e) => return Err(BackupError::unreadable(&manifest, e)),
    };
    let msize = mfile
        .metadata()
        .map_err(|e| BackupError::unreadable(&manifest, e))?
        .len();
    let info = read_manifest(dir, mfile, msize)?;
    let dir_name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let id = info.backup_id.clone().unwrap_or(dir_name);
    let meta = fs::metadata(&manifest).ok();
    let mut entry = BackupEntry::new(id, dir.to_path_buf(), BackupKind::Directory, 0);
    let mut stack = vec![(dir.to_path_buf(), String::new())];
    let mut members = Vec::new();
    while let Some((real, rel)) = stack.pop() {
        let rd = fs::read_dir(&real).map_err(|e| BackupError::unreadable(&real, e))?;
        for item in rd {
            let item = item.map_err(|e| BackupError::unreadable(&real, e))?;
            let name = item.file_name().to_string_lossy().into_owned();
            let rel_name = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            let md = item
                .path()
                .symlink_metadata()
                .map_err(|e| BackupError::unreadable(&item.path(), e))?;
            let ft = md.file_type();
            let kind = if ft.is_dir() {
                stack.push((item.path(), rel_name.clone()));
                EntryKind::Dir
            } else if ft.is_symlink() {
                EntryKind::Symlink
            } else if ft.is_file() {
                EntryKind::File
            } else {
                EntryKind::Other
            };
            let size = if kind == EntryKind::File { md.len() } else { 0 };
            let compression =
                if kind == EntryKind::File && (all_compression || wants_magic(&rel_name)) {
                    let mut magic = [0u8; 4];
                    let mut f = File::open(item.path())
                        .map_err(|e| BackupError::unreadable(&item.path(), e))?;
                    let mut got = 0;
                    while got < 4 {
                        match f.read(&mut magic[got..]) {
                            Ok(0) => break,
                            Ok(n) => got += n,
                            Err(e) => return Err(BackupError::unreadable(&item.path(), e)),
                        }
                    }
                    Some(Compression::detect(&magic[..got]))
                } else {
                    None
                };
            members.push(MemberInfo {
                name: rel_name,
                kind,
                size,
                compression,
            });
        }
    }
    members.sort_by(|a, b| a.name.cmp(&b.name));
    // The manifest first, as in an archive.
    members.sort_by_key(|m| m.name != MANIFEST_NAME);
    for m in members {
        entry.size += m.size;
        entry.add_member(m);
    }
    entry.finish(info, installed, meta.as_ref().and_then(mtime_of));
    Ok(entry)
}

/// A backup found in the directory, before it is read.
#[derive(Debug, Clone)]
struct Candidate {
    id: String,
    path: PathBuf,
}

fn candidates(dir: &Path) -> Result<Vec<Candidate>, BackupError> {
    let rd = fs::read_dir(dir).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => BackupError::NoDir {
            dir: dir.to_path_buf(),
            source: e,
        },
        _ => BackupError::unreadable(dir, e),
    })?;
    let mut out = Vec::new();
    if dir.join(MANIFEST_NAME).exists() {
        // GitLab's "non tarred" backup: the backup directory itself.
        let id = crate::limited::read_text(&dir.join(MANIFEST_NAME), MAX_MANIFEST)
            .ok()
            .and_then(|t| BackupInformation::parse(&t).ok())
            .and_then(|i| i.backup_id)
            .unwrap_or_else(|| {
                dir.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "unpacked".into())
            });
        out.push(Candidate {
            id,
            path: dir.to_path_buf(),
        });
    }
    for item in rd {
        let item = item.map_err(|e| BackupError::unreadable(dir, e))?;
        let name = item.file_name().to_string_lossy().into_owned();
        let path = item.path();
        if let Some(id) = id_from_file_name(&name) {
            // Only regular files (through a link, too): a FIFO or a device named like a
            // backup would hang or never end the listing.
            if !fs::metadata(&path).is_ok_and(|m| m.is_file()) {
                continue;
            }
            out.push(Candidate {
                id: id.to_string(),
                path,
            });
        } else if path.is_dir() && path.join(MANIFEST_NAME).exists() {
            let id = crate::limited::read_text(&path.join(MANIFEST_NAME), MAX_MANIFEST)
                .ok()
                .and_then(|t| BackupInformation::parse(&t).ok())
                .and_then(|i| i.backup_id)
                .unwrap_or(name);
            out.push(Candidate { id, path });
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

fn broken_entry(c: &Candidate, e: &BackupError) -> BackupEntry {
    let meta = fs::metadata(&c.path).ok();
    let mut entry = BackupEntry::new(
        c.id.clone(),
        c.path.clone(),
        if meta.as_ref().is_some_and(|m| m.is_dir()) {
            BackupKind::Directory
        } else {
            BackupKind::Tar
        },
        meta.as_ref().map(|m| m.len()).unwrap_or(0),
    );
    let from_id = parse_id(&c.id);
    entry.version = from_id.as_ref().and_then(|p| p.version.clone());
    entry.version_text = entry.version.as_ref().map(|v| v.to_string());
    entry.edition = entry.version.as_ref().map(GitLabVersion::edition_or_ce);
    entry.created_at = from_id
        .and_then(|p| Utc.timestamp_opt(p.epoch, 0).single())
        .or_else(|| meta.as_ref().and_then(mtime_of));
    entry.error = Some(e.to_string());
    entry
}

/// Sort newest first (then by id, descending).
fn sort_newest_first(entries: &mut [BackupEntry]) {
    entries.sort_by(|a, b| {
        b.created_at
            .cmp(&a.created_at)
            .then_with(|| b.id.cmp(&a.id))
    });
}

/// List every backup in `dir` (a real path), newest first. A backup that cannot be read
/// is listed with its [`BackupEntry::error`] set. A directory holding no backup is an
/// error.
pub fn list_backups(
    dir: &Path,
    installed: Option<&GitLabVersion>,
) -> Result<Vec<BackupEntry>, BackupError> {
    let found = candidates(dir)?;
    if found.is_empty() {
        return Err(BackupError::EmptyDir {
            dir: dir.to_path_buf(),
        });
    }
    let mut entries: Vec<BackupEntry> = found
        .iter()
        .map(|c| match read_backup(&c.path, installed, false) {
            Ok(mut e) => {
                // The id is the one the directory lists it under.
                e.id = c.id.clone();
                e
            }
            Err(err) => broken_entry(c, &err),
        })
        .collect();
    sort_newest_first(&mut entries);
    Ok(entries)
}

/// Find the backup `id` in `dir`: the exact id (a `_gitlab_backup.tar` suffix is allowed),
/// else the one id starting with it. No match, or several, is an error listing the ids.
pub fn find_backup(
    dir: &Path,
    id: &str,
    installed: Option<&GitLabVersion>,
    all_compression: bool,
) -> Result<BackupEntry, BackupError> {
    let wanted = id.strip_suffix(FILE_NAME_SUFFIX).unwrap_or(id);
    let found = candidates(dir)?;
    if found.is_empty() {
        return Err(BackupError::EmptyDir {
            dir: dir.to_path_buf(),
        });
    }
    let exact: Vec<&Candidate> = found.iter().filter(|c| c.id == wanted).collect();
    let matched: Vec<&Candidate> = if exact.is_empty() {
        found.iter().filter(|c| c.id.starts_with(wanted)).collect()
    } else {
        exact
    };
    match matched.as_slice() {
        [one] => {
            let mut e = read_backup(&one.path, installed, all_compression)?;
            e.id = one.id.clone();
            Ok(e)
        }
        [] => Err(BackupError::NoSuchBackup {
            id: id.to_string(),
            dir: dir.to_path_buf(),
            available: found
                .iter()
                .map(|c| c.id.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }),
        several => Err(BackupError::Ambiguous {
            id: id.to_string(),
            matches: several
                .iter()
                .map(|c| c.path.display().to_string())
                .collect::<Vec<_>>()
                .join("\n  "),
        }),
    }
}

/// Resolve what the user typed: a path to an archive or unpacked backup (taken as given,
/// else under the root), or an id in `backup_dir` (a host path, mapped through the root).
pub fn resolve(
    root: &HostRoot,
    backup_dir: &Path,
    arg: &str,
    installed: Option<&GitLabVersion>,
    all_compression: bool,
) -> Result<BackupEntry, BackupError> {
    let as_path = Path::new(arg);
    let looks_like_path = arg.contains('/') || arg.ends_with(".tar") && as_path.exists();
    if looks_like_path {
        let path = if as_path.exists() || root.is_system() {
            as_path.to_path_buf()
        } else {
            let under = root.join(as_path);
            if under.exists() {
                under
            } else {
                as_path.to_path_buf()
            }
        };
        return read_backup(&path, installed, all_compression);
    }
    find_backup(&root.join(backup_dir), arg, installed, all_compression)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_in_every_form_gitlab_wrote() {
        let p = parse_id("1493107454_2018_04_25_10.6.4-ce").unwrap();
        assert_eq!(p.epoch, 1493107454);
        assert_eq!(p.version.unwrap().to_string(), "10.6.4-ce");
        let p = parse_id("1755221522_2025_08_15_15.1.0").unwrap();
        assert_eq!(p.version.unwrap().to_string(), "15.1.0");
        let p = parse_id("1495618967_2017_05_23_9.3.0-pre").unwrap();
        assert_eq!(p.version.unwrap().to_string(), "9.3.0-pre");
        let p = parse_id("1393513186").unwrap();
        assert_eq!((p.epoch, p.version), (1393513186, None));
        let p = parse_id("1393513186_2014_02_27").unwrap();
        assert_eq!(p.version, None);
        assert_eq!(parse_id("before-upgrade"), None);
        assert_eq!(
            id_from_file_name("1393513186_gitlab_backup.tar"),
            Some("1393513186")
        );
        assert_eq!(id_from_file_name("_gitlab_backup.tar"), None);
        assert_eq!(id_from_file_name("notes.txt"), None);
    }

    #[test]
    fn database_and_component_names() {
        assert_eq!(database_name("db/database.sql.gz").as_deref(), Some("main"));
        assert_eq!(
            database_name("db/ci_database.sql.gz").as_deref(),
            Some("ci")
        );
        assert_eq!(
            database_name("db/sec_database.sql.gz").as_deref(),
            Some("sec")
        );
        assert_eq!(database_name("db/other.sql.gz"), None);
        assert_eq!(component_name("uploads.tar.gz").as_deref(), Some("uploads"));
        assert_eq!(component_name("repositories/x.tar.gz"), None);
    }
}
