//! Restoring GitLab's file components (`uploads.tar.gz`, `builds.tar.gz`, `artifacts.tar.gz`,
//! `pages.tar.gz`, `lfs.tar.gz`, `terraform_state.tar.gz`, `registry.tar.gz`,
//! `packages.tar.gz`, `ci_secure_files.tar.gz`, `external_diffs.tar.gz` and any other
//! `<name>.tar.gz`) from a backup archive to their directories on the host.
//!
//! Each component is streamed from inside the outer tar, decompressed by its magic bytes
//! (gzip or zstd; GitLab keeps the `.tar.gz` name whatever the compressor) on a separate
//! thread, and extracted safely ([`extract`]) into a staging directory on the target's
//! filesystem. Only when the whole component extracted cleanly are the existing contents
//! moved aside to `<backup_path>/tmp/<name>.<epoch>/<dir>` (GitLab deletes that copy at the
//! end; Rewind keeps it and reports it) and the staging directory renamed into place. A
//! target that is a mount point cannot be renamed (EBUSY): its contents are moved instead.
//!
//! Rewind runs as root in directories `git` can write ([`crate::safefs`]): the target's
//! parent is resolved and opened once; the target itself, the staging and moved-aside
//! directories and everything in them are reached only through handles, never by
//! following a link. A target that is a link is refused. Staging happens in a directory
//! root creates `0700` and checks on its handle, so its name can be swapped but its
//! contents cannot be reached.

pub mod extract;

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use serde::Serialize;

use crate::detect::InstallKind;
use crate::journal::{Journal, JournalError};
use crate::progress::{Cancel, Event, Phase, Sink, SinkExt};
use crate::root::HostRoot;
use crate::safefs::{self, SafeError};

pub use extract::{ExtractError, ExtractOptions, ExtractStats};

/// Omnibus `gitlab-rails/shared` directory.
pub const OMNIBUS_SHARED: &str = "/var/opt/gitlab/gitlab-rails/shared";

/// Where each known component is restored on an Omnibus host (host paths), in GitLab's
/// restore order.
pub const OMNIBUS_TARGETS: [(&str, &str); 11] = [
    ("uploads", "/var/opt/gitlab/gitlab-rails/uploads"),
    ("builds", "/var/opt/gitlab/gitlab-ci/builds"),
    ("artifacts", "/var/opt/gitlab/gitlab-rails/shared/artifacts"),
    ("pages", "/var/opt/gitlab/gitlab-rails/shared/pages"),
    ("lfs", "/var/opt/gitlab/gitlab-rails/shared/lfs-objects"),
    (
        "terraform_state",
        "/var/opt/gitlab/gitlab-rails/shared/terraform_state",
    ),
    ("registry", "/var/opt/gitlab/gitlab-rails/shared/registry"),
    ("packages", "/var/opt/gitlab/gitlab-rails/shared/packages"),
    (
        "ci_secure_files",
        "/var/opt/gitlab/gitlab-rails/shared/ci_secure_files",
    ),
    (
        "external_diffs",
        "/var/opt/gitlab/gitlab-rails/shared/external-diffs",
    ),
    (
        "ci_catalog_bundles",
        "/var/opt/gitlab/gitlab-rails/shared/ci_catalog_bundles",
    ),
];

/// Source-install targets (host paths).
pub const SOURCE_TARGETS: [(&str, &str); 11] = [
    ("uploads", "/home/git/gitlab/public/uploads"),
    ("builds", "/home/git/gitlab/builds"),
    ("artifacts", "/home/git/gitlab/shared/artifacts"),
    ("pages", "/home/git/gitlab/shared/pages"),
    ("lfs", "/home/git/gitlab/shared/lfs-objects"),
    ("terraform_state", "/home/git/gitlab/shared/terraform_state"),
    ("registry", "/home/git/gitlab/shared/registry"),
    ("packages", "/home/git/gitlab/shared/packages"),
    ("ci_secure_files", "/home/git/gitlab/shared/ci_secure_files"),
    ("external_diffs", "/home/git/gitlab/shared/external-diffs"),
    (
        "ci_catalog_bundles",
        "/home/git/gitlab/shared/ci_catalog_bundles",
    ),
];

/// One file component to restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Component {
    /// `uploads`, `lfs`, ...
    pub name: String,
    /// Member of the outer archive (`uploads.tar.gz`, possibly `./uploads.tar.gz`).
    pub member: String,
    /// Host path it is restored into.
    pub target: PathBuf,
    /// Whether the target is Rewind's assumption (a component GitLab added that Rewind
    /// does not know): `gitlab-rails/shared/<name>`.
    pub assumed_target: bool,
}

/// The target (host path) of a component.
pub fn target_for(name: &str, kind: InstallKind) -> (PathBuf, bool) {
    let table = match kind {
        InstallKind::Omnibus => &OMNIBUS_TARGETS,
        InstallKind::Source => &SOURCE_TARGETS,
    };
    match table.iter().find(|(n, _)| *n == name) {
        Some((_, p)) => (PathBuf::from(p), false),
        None => {
            let shared = match kind {
                InstallKind::Omnibus => OMNIBUS_SHARED,
                InstallKind::Source => "/home/git/gitlab/shared",
            };
            (Path::new(shared).join(name), true)
        }
    }
}

/// The file components among the outer archive's `members`, minus the backup's `skipped`
/// list and the user's `skip` list, in GitLab's restore order (unknown ones last, by name).
pub fn select_components(
    members: &[String],
    skipped: &[String],
    skip: &[String],
    kind: InstallKind,
) -> Vec<Component> {
    let mut out: Vec<Component> = Vec::new();
    for m in members {
        let clean = m.strip_prefix("./").unwrap_or(m);
        let Some(name) = clean.strip_suffix(".tar.gz") else {
            continue;
        };
        if name.is_empty()
            || name.contains('/')
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            continue;
        }
        if skipped.iter().chain(skip).any(|s| s.trim() == name) {
            continue;
        }
        if out.iter().any(|c| c.name == name) {
            continue;
        }
        let (target, assumed_target) = target_for(name, kind);
        out.push(Component {
            name: name.to_string(),
            member: m.clone(),
            target,
            assumed_target,
        });
    }
    let order = |n: &str| {
        OMNIBUS_TARGETS
            .iter()
            .position(|(k, _)| *k == n)
            .unwrap_or(usize::MAX)
    };
    out.sort_by(|a, b| {
        order(&a.name)
            .cmp(&order(&b.name))
            .then(a.name.cmp(&b.name))
    });
    out
}

/// Errors of a file restore.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error("cannot read the backup archive {path}: {source}")]
    Archive {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the backup archive {archive} has no member {member}")]
    MissingMember { archive: PathBuf, member: String },
    #[error("{member}: not gzip, zstd or tar data (first bytes {magic}). Rewind reads what GitLab writes: gzip (default) or zstd (COMPRESS_CMD); decompress it with the tool that made it")]
    UnknownCompression { member: String, magic: String },
    #[error("{member}: decompressing: {source}. The component is damaged or truncated")]
    Decompress {
        member: String,
        #[source]
        source: io::Error,
    },
    #[error("{member} → {target}: {source}")]
    Extract {
        member: String,
        target: PathBuf,
        #[source]
        source: ExtractError,
    },
    #[error("moving the existing contents of {path} aside to {to}: {source}. Nothing of this component was changed; make room or fix permissions, then retry")]
    MoveAside {
        path: PathBuf,
        to: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{member}: restored {found_files} files / {found_bytes} bytes into {target}, but the archive holds {files} files / {bytes} bytes")]
    VerifyMismatch {
        member: String,
        target: PathBuf,
        files: u64,
        bytes: u64,
        found_files: u64,
        found_bytes: u64,
    },
    #[error("cancelled before restoring {member}; components before it are restored")]
    Cancelled { member: String },
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Safe(#[from] SafeError),
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> FilesError + 'a {
    move |source| FilesError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Owner given to restored files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OwnerPolicy {
    /// `git:git` when running as root and the user `git` exists, else the current user.
    #[default]
    Auto,
    /// Leave files owned by the user running Rewind.
    Current,
    /// These ids.
    Ids(u32, u32),
}

impl OwnerPolicy {
    fn resolve(self) -> Option<(u32, u32)> {
        match self {
            OwnerPolicy::Current => None,
            OwnerPolicy::Ids(u, g) => Some((u, g)),
            OwnerPolicy::Auto => {
                if !nix::unistd::geteuid().is_root() {
                    return None;
                }
                let user = nix::unistd::User::from_name("git").ok().flatten()?;
                Some((user.uid.as_raw(), user.gid.as_raw()))
            }
        }
    }
}

/// Options of a file restore.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    pub owner: OwnerPolicy,
    /// Epoch used in `<name>.<epoch>` (default: now).
    pub epoch: Option<i64>,
    /// Checked between components.
    pub cancel: Option<Cancel>,
}

/// Where the previous contents of a target went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MovedAside {
    /// Host path.
    pub path: PathBuf,
    pub files: u64,
    pub bytes: u64,
}

/// What restoring one component did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ComponentReport {
    pub name: String,
    pub member: String,
    /// Host path restored into.
    pub target: PathBuf,
    /// What the archive held.
    pub archive: ExtractStats,
    /// Files and bytes found in the target afterwards.
    pub restored_files: u64,
    pub restored_bytes: u64,
    /// The previous contents, kept; `None` when the target did not exist or was empty.
    pub moved_aside: Option<MovedAside>,
    /// Compression found (`gzip`, `zstd`, `none`).
    pub compression: String,
}

impl ComponentReport {
    /// The Verify line: `uploads: 42 files, 1.2 MiB restored = archive`.
    pub fn verify_line(&self) -> String {
        format!(
            "{}: {} files, {} bytes in {} — archive holds {} files, {} bytes: {}",
            self.name,
            self.restored_files,
            self.restored_bytes,
            self.target.display(),
            self.archive.files,
            self.archive.bytes,
            if self.restored_files == self.archive.files
                && self.restored_bytes == self.archive.bytes
            {
                "equal"
            } else {
                "DIFFERENT"
            }
        )
    }
}

/// A member of an uncompressed outer tar: where its data starts and how long it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberSpan {
    pub name: String,
    pub offset: u64,
    pub size: u64,
}

/// List the regular-file members of the (uncompressed) backup archive with their data
/// offsets, reading only the headers.
pub fn archive_members(archive: &Path) -> Result<Vec<MemberSpan>, FilesError> {
    let f = File::open(archive).map_err(|source| FilesError::Archive {
        path: archive.to_path_buf(),
        source,
    })?;
    let mut a = tar::Archive::new(f);
    let mut out = Vec::new();
    let entries = a
        .entries_with_seek()
        .map_err(|source| FilesError::Archive {
            path: archive.to_path_buf(),
            source,
        })?;
    for e in entries {
        let e = e.map_err(|source| FilesError::Archive {
            path: archive.to_path_buf(),
            source,
        })?;
        if !e.header().entry_type().is_file() {
            continue;
        }
        out.push(MemberSpan {
            name: String::from_utf8_lossy(&e.path_bytes()).into_owned(),
            offset: e.raw_file_position(),
            size: e.size(),
        });
    }
    Ok(out)
}

/// Compression of a component, by magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Gzip,
    Zstd,
    None,
}

impl Compression {
    /// Detect from the first bytes: gzip `1f 8b`, zstd `28 b5 2f fd`, plain tar (`ustar` at
    /// offset 257, or a short stream of zero blocks).
    pub fn sniff(head: &[u8]) -> Option<Compression> {
        if head.starts_with(&[0x1f, 0x8b]) {
            Some(Compression::Gzip)
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Some(Compression::Zstd)
        } else if head.len() >= 262 && &head[257..262] == b"ustar" {
            Some(Compression::None)
        } else {
            None
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::None => "none",
        }
    }
}

/// A `Read` fed by a decompression thread through a bounded channel of buffers.
struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Vec<u8>>>,
    cur: Vec<u8>,
    pos: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    self.cur = chunk;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Counts bytes read through it (compressed progress).
struct Counting<R> {
    inner: R,
    count: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

const CHUNK: usize = 1 << 20;

/// Decompress `input` (gzip, zstd or plain, by magic) on a separate thread and extract the
/// tar stream into `dest`. Returns the compression found and the extraction counts.
pub fn extract_component<R: Read + Send>(
    input: R,
    member: &str,
    dest: BorrowedFd<'_>,
    dest_path: &Path,
    opts: &ExtractOptions,
    progress: &mut dyn FnMut(&ExtractStats, &str),
) -> Result<(Compression, ExtractStats), FilesError> {
    let mut input = BufReader::with_capacity(CHUNK, input);
    let head = input
        .fill_buf()
        .map_err(|source| FilesError::Decompress {
            member: member.to_string(),
            source,
        })?
        .to_vec();
    let compression = match Compression::sniff(&head) {
        Some(c) => c,
        None => {
            return Err(FilesError::UnknownCompression {
                member: member.to_string(),
                magic: head
                    .iter()
                    .take(4)
                    .map(|b| format!("{b:02x}"))
                    .collect::<Vec<_>>()
                    .join(" "),
            })
        }
    };
    let (tx, rx) = mpsc::sync_channel::<io::Result<Vec<u8>>>(8);
    std::thread::scope(|s| {
        let producer = s.spawn(move || {
            let mut dec: Box<dyn Read + Send> = match compression {
                Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(input)),
                Compression::Zstd => match zstd::stream::read::Decoder::with_buffer(input) {
                    Ok(d) => Box::new(d),
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                },
                Compression::None => Box::new(input),
            };
            loop {
                let mut buf = vec![0u8; CHUNK];
                let mut filled = 0;
                // Fill whole chunks: fewer, larger hand-offs.
                while filled < CHUNK {
                    match dec.read(&mut buf[filled..]) {
                        Ok(0) => break,
                        Ok(n) => filled += n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    }
                }
                if filled == 0 {
                    return;
                }
                buf.truncate(filled);
                if tx.send(Ok(buf)).is_err() {
                    return;
                }
            }
        });
        let reader = ChannelReader {
            rx,
            cur: Vec::new(),
            pos: 0,
        };
        let result = extract::extract_tar_at(reader, dest, dest_path, opts, progress);
        // On an extraction error the receiver is dropped here and the producer stops.
        let _ = producer.join();
        match result {
            Ok(stats) => Ok((compression, stats)),
            Err(ExtractError::Read(source)) => Err(FilesError::Decompress {
                member: member.to_string(),
                source,
            }),
            Err(source) => Err(FilesError::Extract {
                member: member.to_string(),
                target: dest_path.to_path_buf(),
                source,
            }),
        }
    })
}

/// Owner, group and mode Omnibus gives a component's directory when it creates it:
/// `registry` belongs to `registry:git` `0770`, `pages` to `git:gitlab-www` `0750`, the
/// others to `git:git` `0700`. Users or groups missing on the host fall back to `git`.
fn omnibus_default(name: &str) -> (&'static str, &'static str, u32) {
    match name {
        "registry" => ("registry", "git", 0o770),
        "pages" => ("git", "gitlab-www", 0o750),
        _ => ("git", "git", 0o700),
    }
}

fn ids_of(user: &str, group: &str) -> Option<(u32, u32)> {
    let git = nix::unistd::User::from_name("git").ok().flatten();
    let uid = nix::unistd::User::from_name(user)
        .ok()
        .flatten()
        .map(|u| u.uid.as_raw())
        .or_else(|| git.as_ref().map(|g| g.uid.as_raw()))?;
    let gid = nix::unistd::Group::from_name(group)
        .ok()
        .flatten()
        .map(|g| g.gid.as_raw())
        .or_else(|| git.as_ref().map(|g| g.gid.as_raw()))?;
    Some((uid, gid))
}

/// Restore one component from `input` (the member's bytes, compressed) into its target.
#[allow(clippy::too_many_arguments)]
pub fn restore_component<R: Read + Send>(
    input: R,
    total: Option<u64>,
    component: &Component,
    root: &HostRoot,
    backup_path: &Path,
    opts: &RestoreOptions,
    sink: &dyn Sink,
    journal: Option<&Journal>,
) -> Result<ComponentReport, FilesError> {
    let epoch = opts.epoch.unwrap_or_else(|| chrono::Utc::now().timestamp());
    let step = format!("files.{}", component.name);
    // The target's parent, resolved once: links above the component's directory that exist
    // now are followed, shown and journaled; nothing below is ever followed.
    let parent_host = component
        .target
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"));
    let (parent_fd, parent_real, links) =
        safefs::open_dir_resolved(root, &root.join(&parent_host), 0o755)?;
    let links_shown: Vec<String> = links
        .iter()
        .map(|(l, t)| format!("{} -> {}", l.display(), t.display()))
        .collect();
    if !links.is_empty() {
        sink.info(format!(
            "{}: {} is reached through {}; restoring into {}",
            component.name,
            parent_host.display(),
            links_shown.join(", "),
            root.host_path(&parent_real).display()
        ));
    }
    if let Some(j) = journal {
        j.begin(
            &step,
            format!(
                "restore {} into {}",
                component.member,
                component.target.display()
            ),
            serde_json::json!({
                "member": component.member,
                "target": component.target,
                "epoch": epoch,
                "parent_resolved": root.host_path(&parent_real),
                "links": links_shown,
            }),
        )?;
    }
    let result = restore_inner(
        input,
        total,
        component,
        parent_fd.as_fd(),
        &parent_real,
        root,
        backup_path,
        epoch,
        opts,
        sink,
    );
    if let Some(j) = journal {
        match &result {
            Ok(r) => j.end(&step, "ok", serde_json::to_value(r).unwrap_or_default())?,
            Err(e) => j.end(
                &step,
                "failed",
                serde_json::json!({ "error": e.to_string() }),
            )?,
        }
    }
    result
}

/// The private directory (root, `0700`) the staging directory is made in, and what to
/// remove when done.
struct Guard<'a> {
    parent: BorrowedFd<'a>,
    name: std::ffi::OsString,
    fd: OwnedFd,
    stat: nix::sys::stat::FileStat,
}

impl Guard<'_> {
    /// Remove the guard and what is left in it, by its handle; its name in the parent is
    /// removed only while it is still this directory.
    fn remove(self) {
        let _ = safefs::remove_contents(self.fd.as_fd());
        if let Ok(Some(st)) = safefs::stat_at(self.parent, &self.name) {
            if safefs::same(&st, &self.stat) {
                let _ = nix::unistd::unlinkat(
                    self.parent,
                    self.name.as_os_str(),
                    nix::unistd::UnlinkatFlags::RemoveDir,
                );
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn restore_inner<R: Read + Send>(
    input: R,
    total: Option<u64>,
    component: &Component,
    parent: BorrowedFd<'_>,
    parent_real: &Path,
    root: &HostRoot,
    backup_path: &Path,
    epoch: i64,
    opts: &RestoreOptions,
    sink: &dyn Sink,
) -> Result<ComponentReport, FilesError> {
    if component.assumed_target {
        sink.warn(format!(
            "{}: Rewind does not know this component; restoring it into {} (GitLab's shared directory)",
            component.member,
            component.target.display()
        ));
    }
    let base: std::ffi::OsString = component
        .target
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| component.name.clone().into());
    let target_real = parent_real.join(&base);
    let shown = root.host_path(&target_real);

    // The component's directory itself: never followed.
    let existing = safefs::stat_at(parent, &base).map_err(io_err("reading", &shown))?;
    let target_fd = match &existing {
        None => None,
        Some(st) if safefs::is_symlink(st) => {
            return Err(SafeError::refused(
                &shown,
                "it is a symbolic link; GitLab's data directories must be real directories (move the data there, or link a directory above it)",
            )
            .into())
        }
        Some(st) if !safefs::is_dir(st) => {
            return Err(SafeError::refused(&shown, "it is not a directory").into())
        }
        Some(_) => Some(safefs::open_dir_checked(parent, &base, &shown)?),
    };
    let tstat = match &target_fd {
        Some(fd) => Some(safefs::fstat(fd).map_err(io_err("reading", &shown))?),
        None => None,
    };
    let pstat = safefs::fstat(parent).map_err(io_err("reading", parent_real))?;
    let mount = tstat.as_ref().is_some_and(|t| t.st_dev != pstat.st_dev);

    // Owner, group and mode of the directory: those of the one it replaces, recorded now;
    // else Omnibus's. Its contents get the same owner and group.
    let is_root = safefs::euid() == 0;
    let owner = match opts.owner {
        OwnerPolicy::Current => None,
        OwnerPolicy::Ids(u, g) => Some((u, g)),
        OwnerPolicy::Auto if !is_root => None,
        OwnerPolicy::Auto => match &tstat {
            Some(t) => Some((t.st_uid, t.st_gid)),
            None => {
                let (u, g, _) = omnibus_default(&component.name);
                ids_of(u, g).or_else(|| opts.owner.resolve())
            }
        },
    };
    let dir_mode = match &tstat {
        Some(t) => t.st_mode & 0o7777,
        None => omnibus_default(&component.name).2,
    };

    // Staging on the target's filesystem (inside a mount point, else beside the target), in
    // a private directory root creates and checks on its handle: nobody else can reach into
    // it, whatever happens to its name.
    let staging_parent = match (&target_fd, mount) {
        (Some(fd), true) => fd.as_fd(),
        _ => parent,
    };
    let staging_parent_path = if mount {
        target_real.clone()
    } else {
        parent_real.to_path_buf()
    };
    let guard_name = safefs::unique_name(&format!(".{}.rewind-staging.", base.to_string_lossy()));
    let guard_path = root.host_path(&staging_parent_path.join(&guard_name));
    nix::sys::stat::mkdirat(
        staging_parent,
        guard_name.as_os_str(),
        nix::sys::stat::Mode::from_bits_truncate(0o700),
    )
    .map_err(|e| FilesError::Io {
        op: "creating a staging directory",
        path: guard_path.clone(),
        source: e.into(),
    })?;
    let guard_fd = safefs::private_dir(staging_parent, &guard_name, &guard_path, false)?
        .ok_or_else(|| SafeError::refused(&guard_path, "it disappeared after Rewind created it"))?;
    let guard = Guard {
        parent: staging_parent,
        name: guard_name.clone(),
        stat: safefs::fstat(&guard_fd).map_err(io_err("reading", &guard_path))?,
        fd: guard_fd,
    };
    let r = restore_staged(
        input,
        total,
        component,
        &guard,
        &guard_path,
        parent,
        &base,
        &shown,
        target_fd.as_ref().map(|f| f.as_fd()),
        tstat.as_ref(),
        mount,
        root,
        backup_path,
        epoch,
        owner,
        dir_mode,
        sink,
    );
    guard.remove();
    r
}

#[allow(clippy::too_many_arguments)]
fn restore_staged<R: Read + Send>(
    input: R,
    total: Option<u64>,
    component: &Component,
    guard: &Guard<'_>,
    guard_path: &Path,
    parent: BorrowedFd<'_>,
    base: &std::ffi::OsStr,
    shown: &Path,
    target_fd: Option<BorrowedFd<'_>>,
    tstat: Option<&nix::sys::stat::FileStat>,
    mount: bool,
    root: &HostRoot,
    backup_path: &Path,
    epoch: i64,
    owner: Option<(u32, u32)>,
    dir_mode: u32,
    sink: &dyn Sink,
) -> Result<ComponentReport, FilesError> {
    let staging_name = std::ffi::OsStr::new("staging");
    let staging_path = guard_path.join(staging_name);
    nix::sys::stat::mkdirat(
        &guard.fd,
        staging_name,
        nix::sys::stat::Mode::from_bits_truncate(0o700),
    )
    .map_err(|e| FilesError::Io {
        op: "creating",
        path: staging_path.clone(),
        source: e.into(),
    })?;
    let staging = safefs::open_dir_checked(guard.fd.as_fd(), staging_name, &staging_path)?;

    let xopts = ExtractOptions {
        owner,
        only_under: None,
    };
    sink.event(Event::PhaseStarted {
        phase: Phase::Files,
        total,
    });
    let count = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counting = Counting {
        inner: input,
        count: count.clone(),
    };
    let mut last = std::time::Instant::now();
    let name = component.name.clone();
    let mut progress = |s: &ExtractStats, _entry: &str| {
        if last.elapsed() >= std::time::Duration::from_millis(200) {
            last = std::time::Instant::now();
            sink.event(Event::Progress {
                phase: Phase::Files,
                done: count.load(std::sync::atomic::Ordering::Relaxed),
                total,
                current: Some(format!("{name}: {} files, {} bytes", s.files, s.bytes)),
                rows: Some(s.files),
            });
        }
    };
    let extracted = extract_component(
        counting,
        &component.member,
        staging.as_fd(),
        &staging_path,
        &xopts,
        &mut progress,
    );
    let (compression, stats) = match extracted {
        Ok(x) => x,
        Err(e) => {
            sink.event(Event::PhaseFinished {
                phase: Phase::Files,
                ok: false,
            });
            return Err(e);
        }
    };
    // The directory's own owner and mode (set on the handle, still inside the guard).
    if let Some((u, g)) = owner {
        nix::unistd::fchown(
            &staging,
            Some(nix::unistd::Uid::from_raw(u)),
            Some(nix::unistd::Gid::from_raw(g)),
        )
        .map_err(|e| FilesError::Io {
            op: "setting the owner of",
            path: staging_path.clone(),
            source: e.into(),
        })?;
    }
    nix::sys::stat::fchmod(&staging, nix::sys::stat::Mode::from_bits_truncate(dir_mode)).map_err(
        |e| FilesError::Io {
            op: "setting the mode of",
            path: staging_path.clone(),
            source: e.into(),
        },
    )?;

    // Move the existing contents aside, then put the staging directory in place.
    let mut moved = None;
    let has_contents = match target_fd {
        Some(fd) => safefs::list(fd)
            .map_err(io_err("reading", shown))?
            .iter()
            .any(|n| n != &guard.name),
        None => false,
    };
    if let (Some(tfd), Some(tst), true) = (target_fd, tstat, has_contents) {
        let (files, bytes) = safefs::count_tree(tfd).unwrap_or((0, 0));
        let (aside_fd, aside_host) = aside_dir(root, backup_path, &component.name, epoch)?;
        let aside = aside_host.join(base);
        let maperr = |source| FilesError::MoveAside {
            path: component.target.clone(),
            to: aside.clone(),
            source,
        };
        let mut by_contents = mount;
        if !mount {
            match safefs::move_entry(parent, aside_fd.as_fd(), base) {
                Ok(()) => {
                    // What was moved must be the directory opened at the start.
                    match safefs::stat_at(&aside_fd, base) {
                        Ok(Some(st)) if safefs::same(&st, tst) => {}
                        Ok(Some(st)) if !safefs::is_dir(&st) || st.st_dev == tst.st_dev => {
                            return Err(SafeError::refused(
                                shown,
                                "it was replaced while Rewind was restoring it; what was there is now in the moved-aside directory",
                            )
                            .into())
                        }
                        // Copied across filesystems: a new inode.
                        _ => {}
                    }
                }
                Err(e) if e.raw_os_error() == Some(nix::libc::EBUSY) => by_contents = true,
                Err(e) => return Err(maperr(e)),
            }
        }
        if by_contents {
            nix::sys::stat::mkdirat(
                &aside_fd,
                base,
                nix::sys::stat::Mode::from_bits_truncate(0o700),
            )
            .map_err(|e| maperr(e.into()))?;
            let dst = safefs::open_dir_at(&aside_fd, base).map_err(maperr)?;
            for n in safefs::list(tfd).map_err(maperr)? {
                if n == guard.name {
                    continue;
                }
                safefs::move_entry(tfd, dst.as_fd(), &n).map_err(maperr)?;
            }
        }
        sink.info(format!(
            "{}: previous contents ({files} files, {bytes} bytes) moved to {}; Rewind keeps them",
            component.name,
            aside.display()
        ));
        moved = Some(MovedAside {
            path: aside,
            files,
            bytes,
        });
    }
    let (rf, rb) = if mount {
        // A mount point cannot be renamed: fill it; it keeps its owner and mode.
        let tfd = target_fd.expect("a mount point exists");
        for n in safefs::list(&staging).map_err(io_err("reading", &staging_path))? {
            safefs::move_entry(staging.as_fd(), tfd, &n).map_err(io_err("moving into", shown))?;
        }
        let _ = nix::unistd::unlinkat(
            &guard.fd,
            staging_name,
            nix::unistd::UnlinkatFlags::RemoveDir,
        );
        let mut rf = 0;
        let mut rb = 0;
        for n in safefs::list(tfd).map_err(io_err("counting", shown))? {
            if n == guard.name {
                continue;
            }
            match safefs::stat_at(tfd, &n).map_err(io_err("counting", shown))? {
                Some(st) if safefs::is_dir(&st) => {
                    let d = safefs::open_dir_at(tfd, &n).map_err(io_err("counting", shown))?;
                    let (f, b) =
                        safefs::count_tree(d.as_fd()).map_err(io_err("counting", shown))?;
                    rf += f;
                    rb += b;
                }
                Some(st) if safefs::is_file(&st) => {
                    rf += 1;
                    rb += st.st_size as u64;
                }
                _ => {}
            }
        }
        (rf, rb)
    } else {
        if target_fd.is_some() && !has_contents {
            // An empty directory: removed (never through a link), then replaced.
            nix::unistd::unlinkat(parent, base, nix::unistd::UnlinkatFlags::RemoveDir).map_err(
                |e| FilesError::Io {
                    op: "removing the empty directory",
                    path: shown.to_path_buf(),
                    source: e.into(),
                },
            )?;
        }
        match nix::fcntl::renameat2(
            &guard.fd,
            staging_name,
            parent,
            base,
            nix::fcntl::RenameFlags::RENAME_NOREPLACE,
        ) {
            Ok(()) => {}
            Err(nix::errno::Errno::EEXIST) | Err(nix::errno::Errno::ENOTEMPTY) => {
                return Err(SafeError::refused(
                    shown,
                    "something was put at that name while Rewind was restoring it; the restored tree was not put in place",
                )
                .into())
            }
            Err(e) => {
                return Err(FilesError::Io {
                    op: "renaming the staging directory to",
                    path: shown.to_path_buf(),
                    source: e.into(),
                })
            }
        }
        safefs::count_tree(staging.as_fd()).map_err(io_err("counting", shown))?
    };
    let report = ComponentReport {
        name: component.name.clone(),
        member: component.member.clone(),
        target: component.target.clone(),
        archive: stats,
        restored_files: rf,
        restored_bytes: rb,
        moved_aside: moved,
        compression: compression.as_str().into(),
    };
    sink.event(Event::Progress {
        phase: Phase::Files,
        done: count.load(std::sync::atomic::Ordering::Relaxed),
        total,
        current: Some(component.name.clone()),
        rows: Some(stats.files),
    });
    sink.event(Event::PhaseFinished {
        phase: Phase::Files,
        ok: true,
    });
    sink.info(report.verify_line());
    if rf != stats.files || rb != stats.bytes {
        return Err(FilesError::VerifyMismatch {
            member: component.member.clone(),
            target: component.target.clone(),
            files: stats.files,
            bytes: stats.bytes,
            found_files: rf,
            found_bytes: rb,
        });
    }
    Ok(report)
}

/// The moved-aside directory of a component: `<backup_path>/tmp/<name>.<epoch>`, or
/// `<name>.<epoch>.<n>` when that exists (two runs in the same second); created by Rewind
/// `0700` and checked on its handle. Returns the handle and its host path.
fn aside_dir(
    root: &HostRoot,
    backup_path: &Path,
    name: &str,
    epoch: i64,
) -> Result<(OwnedFd, PathBuf), FilesError> {
    let (bfd, _, _) = safefs::open_dir_resolved(root, &root.join(backup_path), 0o700)?;
    let tmp_host = backup_path.join("tmp");
    // `tmp` is GitLab's (git may own it); it must be a real directory.
    let tmp = std::ffi::OsStr::new("tmp");
    if safefs::stat_at(&bfd, tmp)
        .map_err(io_err("reading", &tmp_host))?
        .is_none()
    {
        match nix::sys::stat::mkdirat(&bfd, tmp, nix::sys::stat::Mode::from_bits_truncate(0o700)) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => {
                return Err(FilesError::Io {
                    op: "creating",
                    path: tmp_host,
                    source: e.into(),
                })
            }
        }
    }
    let tfd = safefs::open_dir_checked(bfd.as_fd(), tmp, &tmp_host)?;
    for n in 0..1000 {
        let dir = if n == 0 {
            format!("{name}.{epoch}")
        } else {
            format!("{name}.{epoch}.{n}")
        };
        let host = tmp_host.join(&dir);
        match nix::sys::stat::mkdirat(
            &tfd,
            dir.as_str(),
            nix::sys::stat::Mode::from_bits_truncate(0o700),
        ) {
            Ok(()) => {}
            Err(nix::errno::Errno::EEXIST) => continue,
            Err(e) => {
                return Err(FilesError::Io {
                    op: "creating",
                    path: host,
                    source: e.into(),
                })
            }
        }
        let fd = safefs::private_dir(tfd.as_fd(), std::ffi::OsStr::new(&dir), &host, false)?
            .ok_or_else(|| SafeError::refused(&host, "it disappeared after Rewind created it"))?;
        return Ok((fd, host));
    }
    Err(SafeError::refused(
        tmp_host.join(format!("{name}.{epoch}")),
        "1000 moved-aside directories of that name exist",
    )
    .into())
}

/// Restore `components` from the backup `archive` (an uncompressed GitLab backup tar) under
/// `root`, moving previous contents aside under `<backup_path>/tmp` (`backup_path` is a host
/// path). Components are restored in order; the first failure stops the run (components
/// already restored stay restored, the failed one is left as it was).
pub fn restore_components(
    archive: &Path,
    components: &[Component],
    root: &HostRoot,
    backup_path: &Path,
    opts: &RestoreOptions,
    sink: &dyn Sink,
    journal: Option<&Journal>,
) -> Result<Vec<ComponentReport>, FilesError> {
    let mut reports = Vec::new();
    for c in components {
        if opts.cancel.as_ref().is_some_and(|c| c.is_cancelled()) {
            return Err(FilesError::Cancelled {
                member: c.member.clone(),
            });
        }
        // The member's bytes in place: in the archive, or a file of an unpacked backup.
        let loc =
            crate::backup::compression::locate_member(archive, &c.member).map_err(|e| match e {
                crate::backup::BackupError::MemberNotFound { .. } => FilesError::MissingMember {
                    archive: archive.to_path_buf(),
                    member: c.member.clone(),
                },
                other => FilesError::Archive {
                    path: archive.to_path_buf(),
                    source: io::Error::other(other.to_string()),
                },
            })?;
        let span = MemberSpan {
            name: c.member.clone(),
            offset: loc.offset,
            size: loc.size,
        };
        let mut f = File::open(&loc.file).map_err(|source| FilesError::Archive {
            path: loc.file.clone(),
            source,
        })?;
        f.seek(SeekFrom::Start(span.offset))
            .map_err(|source| FilesError::Archive {
                path: archive.to_path_buf(),
                source,
            })?;
        sink.info(format!("Restoring {} ...", c.name));
        let r = restore_component(
            f.take(span.size),
            Some(span.size),
            c,
            root,
            backup_path,
            opts,
            sink,
            journal,
        )?;
        reports.push(r);
    }
    Ok(reports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selects_components_in_gitlab_order_honouring_skips() {
        let members: Vec<String> = [
            "backup_information.yml",
            "db/database.sql.gz",
            "repositories/default/@hashed",
            "lfs.tar.gz",
            "uploads.tar.gz",
            "artifacts.tar.gz",
            "./builds.tar.gz",
            "pages.tar.gz",
            "registry.tar.gz",
            "new_thing.tar.gz",
            "../evil.tar.gz",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let c = select_components(
            &members,
            &["registry".to_string()],
            &["pages".to_string()],
            InstallKind::Omnibus,
        );
        let names: Vec<&str> = c.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            vec!["uploads", "builds", "artifacts", "lfs", "new_thing"]
        );
        assert_eq!(
            c[0].target,
            PathBuf::from("/var/opt/gitlab/gitlab-rails/uploads")
        );
        assert_eq!(c[1].member, "./builds.tar.gz");
        assert_eq!(
            c[3].target,
            PathBuf::from("/var/opt/gitlab/gitlab-rails/shared/lfs-objects")
        );
        assert!(c[4].assumed_target);
        let s = select_components(&members, &[], &[], InstallKind::Source);
        assert_eq!(
            s[0].target,
            PathBuf::from("/home/git/gitlab/public/uploads")
        );
    }

    #[test]
    fn sniffs_compression() {
        assert_eq!(
            Compression::sniff(&[0x1f, 0x8b, 8, 0]),
            Some(Compression::Gzip)
        );
        assert_eq!(
            Compression::sniff(&[0x28, 0xb5, 0x2f, 0xfd, 0]),
            Some(Compression::Zstd)
        );
        assert_eq!(Compression::sniff(b"PK\x03\x04"), None);
    }
}
