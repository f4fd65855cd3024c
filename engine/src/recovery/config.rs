//! The configuration step: GitLab's restore prerequisites say to put back
//! `/etc/gitlab/gitlab-secrets.json` (and `gitlab.rb`) from the configuration backup that
//! matches the data backup, and reconfigure, before starting GitLab; without the same
//! secrets, CI variables, runner tokens, 2FA and webhooks cannot be decrypted.
//!
//! `gitlab-ctl backup-etc` writes `/etc/gitlab/config_backup/gitlab_config_<epoch>_<date>.tar`
//! with `tar --absolute-names --create --exclude /etc/gitlab/config_backup -- /etc/gitlab`:
//! its members are named `/etc/gitlab/...` (also accepted without the leading `/`).
//!
//! This module lists the archives with their dates, picks the one nearest before the data
//! backup ([`crate::packages::guard::config_backup_before`]), shows what differs from the
//! live `/etc/gitlab` (files; the names of `gitlab-secrets.json`'s keys present, missing or
//! different, never their values) and restores `gitlab-secrets.json` and `gitlab.rb`.
//!
//! Hostile archives: the archive is refused as a whole (nothing restored) for a member
//! whose name has a `..` component or lies outside `etc/gitlab`, a device or FIFO member,
//! a restorable file present twice, or a restorable file that is a link or too large.
//! The archive is opened without following links. Writing into `/etc/gitlab` goes through
//! a handle on the directory: the new file is created beside the live one with
//! `O_EXCL|O_NOFOLLOW`, mode 0600, owner root, synced; the live file (whatever it is, a
//! link included, never followed) is renamed aside to `<name>.rewind-<stamp>`, then the new
//! file is renamed into place; each move is journaled before it is made.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use nix::errno::Errno;
use nix::fcntl::{OFlag, RenameFlags};
use nix::sys::stat::Mode;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::journal::{Journal, JournalError};
use crate::packages::guard::config_backup_before;
use crate::progress::{Sink, SinkExt};
use crate::root::HostRoot;
use crate::safefs::{self, SafeError};
use crate::services::{config_backups, CONFIG_BACKUP_DIR};

/// The live configuration directory.
pub const ETC_GITLAB: &str = "/etc/gitlab";
/// The files the step restores, in the order it restores them.
pub const RESTORABLE: [&str; 2] = ["gitlab-secrets.json", "gitlab.rb"];
/// Largest restorable file read from an archive.
const MAX_FILE: u64 = 16 << 20;

/// Why the configuration step refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("no configuration archive `{name}` in {dir}: `rewind config` lists them")]
    NotFound { name: String, dir: PathBuf },
    #[error("no configuration archive in {dir} was made before the data backup ({before}); `gitlab-ctl backup-etc` writes them. Restore gitlab-secrets.json and gitlab.rb from your own copy, or pick one with --archive NAME")]
    NoneBefore { dir: PathBuf, before: String },
    #[error("no configuration archive in {dir} (`gitlab-ctl backup-etc` writes them there). Restore gitlab-secrets.json and gitlab.rb from your own copy")]
    NoArchives { dir: PathBuf },
    #[error("reading the configuration archive {archive}: {detail}. Nothing was changed")]
    Read { archive: PathBuf, detail: String },
    #[error("the configuration archive {archive} is refused: member `{member}` {reason}. Nothing was changed; pick another archive with --archive NAME")]
    Hostile {
        archive: PathBuf,
        member: String,
        reason: String,
    },
    #[error("the configuration archive {archive} has no {file}: nothing was changed. Pick another archive with --archive NAME, or restore {file} from your own copy")]
    Missing { archive: PathBuf, file: String },
    #[error("{path}: {detail}")]
    Live { path: PathBuf, detail: String },
    #[error(transparent)]
    Safe(#[from] SafeError),
    #[error(transparent)]
    Lock(#[from] super::lock::LockError),
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// An archive of `/etc/gitlab/config_backup`, with its date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigArchive {
    /// Host path.
    pub path: PathBuf,
    pub name: String,
    pub size: u64,
    /// When it was made: the epoch in its name, else the file's time (RFC 3339).
    pub created: Option<String>,
    /// The one nearest before the data backup.
    pub nearest: bool,
}

/// When an archive was made: the epoch in `gitlab_config_<epoch>_<date>.tar`, else its time.
fn created_of(name: &str, modified: Option<&str>) -> Option<DateTime<Utc>> {
    name.strip_prefix("gitlab_config_")
        .and_then(|r| r.split('_').next())
        .and_then(|e| e.parse::<i64>().ok())
        .and_then(|e| DateTime::from_timestamp(e, 0))
        .or_else(|| {
            modified
                .and_then(|m| DateTime::parse_from_rfc3339(m).ok())
                .map(|d| d.with_timezone(&Utc))
        })
}

/// Every archive (newest first), the one nearest before `before` marked.
pub fn list(root: &HostRoot, before: Option<DateTime<Utc>>) -> Vec<ConfigArchive> {
    let nearest = before.and_then(|b| config_backup_before(root, b));
    let mut out: Vec<(Option<DateTime<Utc>>, ConfigArchive)> = config_backups(root)
        .into_iter()
        .map(|c| {
            let name = c
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let created = created_of(&name, c.modified.as_deref());
            let is_nearest = nearest.as_ref().is_some_and(|n| n.path == c.path);
            (
                created,
                ConfigArchive {
                    path: c.path,
                    name,
                    size: c.size,
                    created: created.map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                    nearest: is_nearest,
                },
            )
        })
        .collect();
    out.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| b.1.name.cmp(&a.1.name)));
    out.into_iter().map(|(_, c)| c).collect()
}

/// The archive to use: `name` when given, else the one nearest before `before`.
pub fn choose(
    root: &HostRoot,
    name: Option<&str>,
    before: Option<DateTime<Utc>>,
) -> Result<ConfigArchive, ConfigError> {
    let all = list(root, before);
    let dir = PathBuf::from(CONFIG_BACKUP_DIR);
    if let Some(n) = name {
        let n = Path::new(n)
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        return all
            .into_iter()
            .find(|c| c.name == n)
            .ok_or(ConfigError::NotFound { name: n, dir });
    }
    if all.is_empty() {
        return Err(ConfigError::NoArchives { dir });
    }
    match before {
        Some(b) => all
            .into_iter()
            .find(|c| c.nearest)
            .ok_or(ConfigError::NoneBefore {
                dir,
                before: b.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            }),
        // No data backup to match: the newest.
        None => Ok(all.into_iter().next().expect("not empty")),
    }
}

/// What a member of the archive is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    File,
    Dir,
    Link,
}

/// A member, named relative to `/etc/gitlab`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    pub name: String,
    pub kind: Kind,
    pub size: u64,
    /// SHA-256 of a regular file's contents.
    #[serde(skip)]
    pub sha256: Option<[u8; 32]>,
}

/// An archive read: its members and the restorable files' contents.
#[derive(Debug, Clone)]
pub struct ArchiveContents {
    pub archive: ConfigArchive,
    pub members: Vec<Member>,
    /// Contents of the restorable files found as regular files (never shown).
    files: BTreeMap<String, Vec<u8>>,
}

impl ArchiveContents {
    /// Whether the archive holds `name` (one of [`RESTORABLE`]).
    pub fn has(&self, name: &str) -> bool {
        self.files.contains_key(name)
    }
}

fn hostile(archive: &Path, member: &str, reason: &str) -> ConfigError {
    ConfigError::Hostile {
        archive: archive.to_path_buf(),
        member: member.to_string(),
        reason: reason.to_string(),
    }
}

/// The member's name relative to `/etc/gitlab` (`""` for the directory itself), or why it
/// is refused.
fn relative_name(raw: &str) -> Result<String, &'static str> {
    let trimmed = raw.trim_start_matches('/');
    let mut parts = Vec::new();
    for c in trimmed.split('/') {
        match c {
            "" | "." => continue,
            ".." => return Err("has a `..` component"),
            c => parts.push(c),
        }
    }
    if parts.len() < 2 || parts[0] != "etc" || parts[1] != "gitlab" {
        return Err("lies outside etc/gitlab (gitlab-ctl backup-etc archives only /etc/gitlab)");
    }
    Ok(parts[2..].join("/"))
}

/// Read an archive (host path `archive.path` under `root`), applying the hostile-entry rules.
pub fn read_archive(
    root: &HostRoot,
    archive: &ConfigArchive,
) -> Result<ArchiveContents, ConfigError> {
    let path = root.join(&archive.path);
    let shown = archive.path.clone();
    let read_err = |detail: String| ConfigError::Read {
        archive: shown.clone(),
        detail,
    };
    let fd = nix::fcntl::open(
        &path,
        OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| {
        read_err(if e == Errno::ELOOP {
            "it is a symbolic link (not followed)".into()
        } else {
            e.desc().to_string()
        })
    })?;
    let file = File::from(fd);
    let md = file.metadata().map_err(|e| read_err(e.to_string()))?;
    if !md.is_file() {
        return Err(read_err("not a regular file".into()));
    }
    let mut tar = tar::Archive::new(file);
    let mut members = Vec::new();
    let mut files = BTreeMap::new();
    let entries = tar.entries().map_err(|e| read_err(e.to_string()))?;
    for e in entries {
        let mut e = e.map_err(|e| read_err(e.to_string()))?;
        let raw = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        let name = relative_name(&raw).map_err(|r| hostile(&shown, &raw, r))?;
        let et = e.header().entry_type();
        let kind = if et.is_dir() {
            Kind::Dir
        } else if et.is_file() || et.is_contiguous() {
            Kind::File
        } else if et.is_symlink() || et.is_hard_link() {
            Kind::Link
        } else if et.is_pax_global_extensions()
            || et.is_pax_local_extensions()
            || et.is_gnu_longname()
            || et.is_gnu_longlink()
        {
            continue;
        } else {
            return Err(hostile(
                &shown,
                &raw,
                "is a device, FIFO or unknown entry type (a configuration archive holds files, directories and links)",
            ));
        };
        if name.is_empty() {
            continue;
        }
        let size = e.size();
        let restorable = RESTORABLE.contains(&name.as_str());
        if restorable && members.iter().any(|m: &Member| m.name == name) {
            return Err(hostile(
                &shown,
                &raw,
                "appears twice (which one tar would extract is ambiguous)",
            ));
        }
        if restorable && kind == Kind::Link {
            return Err(hostile(&shown, &raw, "is a link, not a file"));
        }
        if restorable && kind == Kind::Dir {
            return Err(hostile(&shown, &raw, "is a directory, not a file"));
        }
        let mut sha = None;
        if kind == Kind::File {
            if restorable && size > MAX_FILE {
                return Err(hostile(
                    &shown,
                    &raw,
                    &format!("is {size} bytes (more than {MAX_FILE})"),
                ));
            }
            let mut h = Sha256::new();
            let mut keep = Vec::new();
            let mut buf = [0u8; 64 * 1024];
            loop {
                let n = e.read(&mut buf).map_err(|e| read_err(e.to_string()))?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
                if restorable {
                    keep.extend_from_slice(&buf[..n]);
                }
            }
            sha = Some(h.finalize().into());
            if restorable {
                files.insert(name.clone(), keep);
            }
        }
        members.push(Member {
            name,
            kind,
            size,
            sha256: sha,
        });
    }
    if let Some(s) = files.get("gitlab-secrets.json") {
        if serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(s).is_err() {
            return Err(hostile(
                &shown,
                "/etc/gitlab/gitlab-secrets.json",
                "is not a JSON object (GitLab's reconfigure would fail on it)",
            ));
        }
    }
    members.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(ArchiveContents {
        archive: archive.clone(),
        members,
        files,
    })
}

/// How a file of the archive compares with the live one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileState {
    Same,
    Differs,
    OnlyInArchive,
    OnlyLive,
    /// A file on one side, a directory or link on the other.
    KindDiffers,
}

/// One file's comparison.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileDiff {
    pub name: String,
    pub state: FileState,
}

/// `gitlab-secrets.json` compared by key names (dotted paths), never by printing values.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SecretsDiff {
    /// Whether the live file exists and is a JSON object.
    pub live_readable: bool,
    /// In the archive, missing from the live file.
    pub missing_live: Vec<String>,
    /// In the live file, not in the archive.
    pub only_live: Vec<String>,
    /// In both, with different values (values never shown).
    pub different: Vec<String>,
    /// In both, equal.
    pub same: usize,
}

impl SecretsDiff {
    pub fn identical(&self) -> bool {
        self.live_readable
            && self.missing_live.is_empty()
            && self.only_live.is_empty()
            && self.different.is_empty()
    }
}

/// What differs between an archive and the live `/etc/gitlab`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigDiff {
    pub archive: ConfigArchive,
    /// Files that differ (same ones left out), by name.
    pub files: Vec<FileDiff>,
    pub unchanged: usize,
    /// `None` when the archive has no gitlab-secrets.json.
    pub secrets: Option<SecretsDiff>,
    /// Which restorable files differ from the live ones (what a restore would change).
    pub would_restore: Vec<String>,
}

/// Flatten a JSON object into dotted key paths with their values (objects descended).
fn flatten(prefix: &str, v: &serde_json::Value, out: &mut BTreeMap<String, serde_json::Value>) {
    match v {
        serde_json::Value::Object(m) if !m.is_empty() => {
            for (k, v) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&p, v, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.clone());
        }
    }
}

/// Compare two `gitlab-secrets.json` texts by key paths.
pub fn secrets_diff(archive: &[u8], live: Option<&[u8]>) -> SecretsDiff {
    let parse = |b: &[u8]| {
        serde_json::from_slice::<serde_json::Value>(b)
            .ok()
            .filter(|v| v.is_object())
    };
    let mut a = BTreeMap::new();
    if let Some(v) = parse(archive) {
        flatten("", &v, &mut a);
    }
    let mut l = BTreeMap::new();
    let live_v = live.and_then(parse);
    let live_readable = live_v.is_some();
    if let Some(v) = &live_v {
        flatten("", v, &mut l);
    }
    let mut d = SecretsDiff {
        live_readable,
        ..Default::default()
    };
    for (k, v) in &a {
        match l.get(k) {
            None => d.missing_live.push(k.clone()),
            Some(lv) if lv != v => d.different.push(k.clone()),
            Some(_) => d.same += 1,
        }
    }
    d.only_live = l.keys().filter(|k| !a.contains_key(*k)).cloned().collect();
    d
}

/// A live file under `/etc/gitlab`: kind and contents hash (links never followed).
fn live_tree(root: &HostRoot) -> BTreeMap<String, (Kind, Option<[u8; 32]>)> {
    let mut out = BTreeMap::new();
    let base = root.join(ETC_GITLAB);
    let skip = root.join(CONFIG_BACKUP_DIR);
    let mut todo = vec![base.clone()];
    while let Some(dir) = todo.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p == skip {
                continue;
            }
            let Ok(md) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            let rel = p
                .strip_prefix(&base)
                .map(|r| r.to_string_lossy().into_owned())
                .unwrap_or_default();
            if md.file_type().is_symlink() {
                out.insert(rel, (Kind::Link, None));
            } else if md.is_dir() {
                out.insert(rel, (Kind::Dir, None));
                todo.push(p);
            } else if md.is_file() {
                out.insert(
                    rel,
                    (
                        Kind::File,
                        read_nofollow(&p).ok().map(|b| Sha256::digest(&b).into()),
                    ),
                );
            }
        }
    }
    out
}

/// Read a file without following a link at its last component.
fn read_nofollow(path: &Path) -> io::Result<Vec<u8>> {
    let fd = nix::fcntl::open(
        path,
        OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let mut f = File::from(fd);
    let mut v = Vec::new();
    Read::by_ref(&mut f)
        .take(MAX_FILE + 1)
        .read_to_end(&mut v)?;
    Ok(v)
}

/// Compare an archive with the live `/etc/gitlab`.
pub fn diff(root: &HostRoot, contents: &ArchiveContents) -> ConfigDiff {
    let live = live_tree(root);
    let mut files = Vec::new();
    let mut unchanged = 0;
    let mut seen = BTreeSet::new();
    for m in &contents.members {
        seen.insert(m.name.clone());
        let state = match live.get(&m.name) {
            None => FileState::OnlyInArchive,
            Some((k, _)) if *k != m.kind => FileState::KindDiffers,
            Some((Kind::File, h)) if *h != m.sha256 => FileState::Differs,
            Some(_) => {
                unchanged += 1;
                continue;
            }
        };
        files.push(FileDiff {
            name: m.name.clone(),
            state,
        });
    }
    for name in live.keys().filter(|n| !seen.contains(*n)) {
        files.push(FileDiff {
            name: name.clone(),
            state: FileState::OnlyLive,
        });
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    let secrets = contents.files.get("gitlab-secrets.json").map(|a| {
        let live = read_nofollow(&root.join(ETC_GITLAB).join("gitlab-secrets.json")).ok();
        secrets_diff(a, live.as_deref())
    });
    let would_restore = RESTORABLE
        .iter()
        .filter(|n| contents.has(n))
        .filter(|n| files.iter().any(|f| f.name == **n))
        .map(|n| n.to_string())
        .collect();
    ConfigDiff {
        archive: contents.archive.clone(),
        files,
        unchanged,
        secrets,
        would_restore,
    }
}

/// One file put back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Restored {
    /// Host path.
    pub path: PathBuf,
    /// Where the live file was moved (host path), when there was one.
    pub moved_aside: Option<PathBuf>,
}

/// Put back `names` (from [`RESTORABLE`]) from the archive into `/etc/gitlab`. Every file
/// is checked first (present in the archive as a file); each move is journaled before it
/// is made. Returns what was restored and where the live files went.
pub fn restore(
    root: &HostRoot,
    contents: &ArchiveContents,
    names: &[String],
    journal: &Journal,
    sink: &dyn Sink,
) -> Result<Vec<Restored>, ConfigError> {
    // One change to the host at a time (re-entrant: `services finish` holds it already).
    let _lock = super::lock::host(root, &super::lock::invocation())?;
    for n in names {
        if !RESTORABLE.contains(&n.as_str()) {
            return Err(ConfigError::Live {
                path: Path::new(ETC_GITLAB).join(n),
                detail: format!(
                    "Rewind restores only {} from a configuration archive; nothing was changed",
                    RESTORABLE.join(" and ")
                ),
            });
        }
        if !contents.has(n) {
            return Err(ConfigError::Missing {
                archive: contents.archive.path.clone(),
                file: n.clone(),
            });
        }
    }
    let (dir, _real, links) = safefs::open_dir_resolved(root, Path::new(ETC_GITLAB), 0o775)?;
    for (link, target) in &links {
        sink.info(format!(
            "{} is a link to {}: files are written there",
            link.display(),
            target.display()
        ));
    }
    let stamp = Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let mut out = Vec::new();
    for n in names {
        let data = &contents.files[n];
        let host = Path::new(ETC_GITLAB).join(n);
        let aside_name = format!("{n}.rewind-{stamp}");
        let live =
            safefs::stat_at(&dir, OsStr::new(n)).map_err(|e| SafeError::io("reading", &host, e))?;
        if let Some(st) = &live {
            if safefs::is_dir(st) {
                return Err(ConfigError::Live {
                    path: host,
                    detail: "is a directory; move it away, then retry".into(),
                });
            }
        }
        journal.begin(
            "config.restore",
            format!(
                "restore {} from {}{}",
                host.display(),
                contents.archive.path.display(),
                if live.is_some() {
                    format!("; the live file is moved to {aside_name}")
                } else {
                    String::new()
                }
            ),
            serde_json::json!({"file": host, "archive": contents.archive.path,
                "aside": live.as_ref().map(|_| Path::new(ETC_GITLAB).join(&aside_name)),
                "bytes": data.len()}),
        )?;
        // The new file, beside the live one, never through a link.
        let tmp = safefs::unique_name(&format!(".{n}.rewind-new."));
        let fd = nix::fcntl::openat(
            &dir,
            tmp.as_os_str(),
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(|e| SafeError::io("creating", Path::new(ETC_GITLAB).join(&tmp), e))?;
        let mut f = File::from(fd);
        let write = |f: &mut File| -> io::Result<()> {
            nix::sys::stat::fchmod(f.as_fd(), Mode::from_bits_truncate(0o600))?;
            nix::unistd::fchown(
                f.as_fd(),
                Some(nix::unistd::Uid::from_raw(0)),
                Some(nix::unistd::Gid::from_raw(0)),
            )?;
            f.write_all(data)?;
            f.sync_all()
        };
        if let Err(e) = write(&mut f) {
            drop(f);
            let _ = nix::unistd::unlinkat(
                &dir,
                tmp.as_os_str(),
                nix::unistd::UnlinkatFlags::NoRemoveDir,
            );
            return Err(SafeError::io("writing", Path::new(ETC_GITLAB).join(&tmp), e).into());
        }
        drop(f);
        let mut moved = None;
        if live.is_some() {
            nix::fcntl::renameat2(
                &dir,
                OsStr::new(n),
                &dir,
                OsStr::new(&aside_name),
                RenameFlags::RENAME_NOREPLACE,
            )
            .map_err(|e| SafeError::io("moving aside", &host, e))?;
            moved = Some(Path::new(ETC_GITLAB).join(&aside_name));
        }
        nix::fcntl::renameat2(
            &dir,
            tmp.as_os_str(),
            &dir,
            OsStr::new(n),
            RenameFlags::RENAME_NOREPLACE,
        )
        .map_err(|e| SafeError::io("renaming into place", &host, e))?;
        journal.end(
            "config.restore",
            "ok",
            serde_json::json!({"file": host, "moved_aside": moved}),
        )?;
        sink.info(format!(
            "restored {} (0600, root){}",
            host.display(),
            moved
                .as_ref()
                .map(|m| format!("; the previous file is {}", m.display()))
                .unwrap_or_default()
        ));
        out.push(Restored {
            path: host,
            moved_aside: moved,
        });
    }
    Ok(out)
}

/// Test and drill support: make an archive the way `gitlab-ctl backup-etc` does (GNU tar,
/// `--absolute-names`, `/etc/gitlab` minus `config_backup`, mode 0600), with member names
/// `/etc/gitlab/...` as on a host, from the tree under `root`. Returns the archive's path.
pub fn backup_etc(root: &HostRoot, epoch: i64) -> io::Result<PathBuf> {
    let dir = root.join(CONFIG_BACKUP_DIR);
    std::fs::create_dir_all(&dir)?;
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    let date = DateTime::from_timestamp(epoch, 0)
        .unwrap_or_default()
        .format("%Y_%m_%d");
    let archive = dir.join(format!("gitlab_config_{epoch}_{date}.tar"));
    let etc = root.join(ETC_GITLAB);
    let base = root.base().display().to_string();
    let mut c = std::process::Command::new("tar");
    c.arg("--absolute-names")
        .arg("--create")
        .arg("--file")
        .arg(&archive)
        .arg("--exclude")
        .arg(&dir);
    if !root.is_system() {
        // Names as on the host: the sandbox's root prefix removed.
        c.arg(format!("--transform=s|^{}||", base.trim_end_matches('/')));
    }
    let out = c.arg("--").arg(&etc).output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "tar: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    std::fs::set_permissions(
        &archive,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )?;
    Ok(archive)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_names_outside_etc_gitlab_or_with_dotdot_are_refused() {
        assert_eq!(relative_name("/etc/gitlab/gitlab.rb").unwrap(), "gitlab.rb");
        assert_eq!(
            relative_name("etc/gitlab/trusted-certs/a.crt").unwrap(),
            "trusted-certs/a.crt"
        );
        assert_eq!(relative_name("/etc/gitlab/").unwrap(), "");
        assert!(relative_name("/etc/gitlab/../shadow").is_err());
        assert!(relative_name("/etc/passwd").is_err());
        assert!(relative_name("/root/.ssh/authorized_keys").is_err());
    }

    #[test]
    fn secrets_are_compared_by_key_names() {
        let a = br#"{"gitlab_rails":{"db_key_base":"aaa","secret_key_base":"s","otp_key_base":"o"},"gitlab_shell":{"secret_token":"t"}}"#;
        let l = br#"{"gitlab_rails":{"db_key_base":"bbb","secret_key_base":"s"},"gitlab_pages":{"api_secret_key":"p"}}"#;
        let d = secrets_diff(a, Some(l));
        assert!(d.live_readable);
        assert_eq!(d.different, vec!["gitlab_rails.db_key_base"]);
        assert_eq!(
            d.missing_live,
            vec!["gitlab_rails.otp_key_base", "gitlab_shell.secret_token"]
        );
        assert_eq!(d.only_live, vec!["gitlab_pages.api_secret_key"]);
        assert_eq!(d.same, 1);
        let text = serde_json::to_string(&d).unwrap();
        for v in ["aaa", "bbb", "\"s\"", "\"t\""] {
            assert!(!text.contains(v), "a value leaked: {text}");
        }
        let none = secrets_diff(a, None);
        assert!(!none.live_readable);
        assert_eq!(none.missing_live.len(), 4);
        assert!(secrets_diff(a, Some(a)).identical());
    }
}
