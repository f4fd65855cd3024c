//! Restoring GitLab's file components (`uploads.tar.gz`, `builds.tar.gz`, `artifacts.tar.gz`,
//! `pages.tar.gz`, `lfs.tar.gz`, `terraform_state.tar.gz`, `registry.tar.gz`,
//! `packages.tar.gz`, `ci_secure_files.tar.gz`, `external_diffs.tar.gz` and any other
//! `<name>.tar.gz`) from a backup archive to their directories on the host.
//!
//! Each component is streamed from inside the outer tar, decompressed by its magic bytes
//! (gzip or zstd; GitLab keeps the `.tar.gz` name whatever the compressor) on a separate
//! thread, and extracted safely ([`extract`]) into a staging directory on the target's
//! filesystem. Only when the whole component extracted cleanly are the existing contents
//! moved aside to `<backup_path>/tmp/<name>.<epoch>` (GitLab deletes that copy at the end;
//! Rewind keeps it and reports it) and the staging directory renamed into place. A target
//! that is a mount point cannot be renamed (EBUSY): its contents are moved instead.

pub mod extract;

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use serde::Serialize;

use crate::detect::InstallKind;
use crate::journal::{Journal, JournalError};
use crate::progress::{Cancel, Event, Phase, Sink, SinkExt};
use crate::root::HostRoot;

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
    dest: &Path,
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
        let result = extract::extract_tar(reader, dest, opts, progress);
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
                target: dest.to_path_buf(),
                source,
            }),
        }
    })
}

/// Resolve a target host path to the directory to write (GitLab resolves the real path:
/// `public/uploads` may be a symlink). Inside a sandbox root an absolute link target is
/// taken as a host path under the root.
fn resolve_target(root: &HostRoot, host_path: &Path) -> PathBuf {
    let mut p = root.join(host_path);
    for _ in 0..8 {
        match fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let Ok(t) = fs::read_link(&p) else { break };
                p = if t.is_absolute() {
                    root.join(&t)
                } else {
                    p.parent().map(|d| d.join(&t)).unwrap_or(t)
                };
            }
            _ => break,
        }
    }
    p
}

fn is_empty_dir(p: &Path) -> io::Result<bool> {
    Ok(fs::read_dir(p)?.next().is_none())
}

fn is_mount_point(p: &Path) -> bool {
    let (Ok(m), Some(parent)) = (fs::metadata(p), p.parent()) else {
        return false;
    };
    match fs::metadata(parent) {
        Ok(pm) => pm.dev() != m.dev(),
        Err(_) => false,
    }
}

/// Move `src` to `dst` by rename; across filesystems (EXDEV) copy then delete.
fn move_path(src: &Path, dst: &Path) -> io::Result<()> {
    match fs::rename(src, dst) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(nix::libc::EXDEV) => {
            copy_tree(src, dst)?;
            let md = fs::symlink_metadata(src)?;
            if md.is_dir() {
                fs::remove_dir_all(src)
            } else {
                fs::remove_file(src)
            }
        }
        Err(e) => Err(e),
    }
}

fn copy_tree(src: &Path, dst: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let md = fs::symlink_metadata(src)?;
    let ft = md.file_type();
    if ft.is_symlink() {
        std::os::unix::fs::symlink(fs::read_link(src)?, dst)?;
        let _ = std::os::unix::fs::lchown(dst, Some(md.uid()), Some(md.gid()));
    } else if ft.is_dir() {
        fs::create_dir(dst)?;
        for e in fs::read_dir(src)? {
            let e = e?;
            copy_tree(&e.path(), &dst.join(e.file_name()))?;
        }
        fs::set_permissions(dst, fs::Permissions::from_mode(md.mode() & 0o7777))?;
        let _ = std::os::unix::fs::lchown(dst, Some(md.uid()), Some(md.gid()));
    } else if ft.is_file() {
        fs::copy(src, dst)?;
        let _ = std::os::unix::fs::lchown(dst, Some(md.uid()), Some(md.gid()));
    }
    Ok(())
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
    let target = resolve_target(root, &component.target);
    let epoch = opts.epoch.unwrap_or_else(|| chrono::Utc::now().timestamp());
    let step = format!("files.{}", component.name);
    if let Some(j) = journal {
        j.begin(
            &step,
            format!("restore {} into {}", component.member, component.target.display()),
            serde_json::json!({ "member": component.member, "target": component.target, "epoch": epoch }),
        )?;
    }
    let result = restore_inner(
        input,
        total,
        component,
        &target,
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

#[allow(clippy::too_many_arguments)]
fn restore_inner<R: Read + Send>(
    input: R,
    total: Option<u64>,
    component: &Component,
    target: &Path,
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
    let parent = target
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| root.base().to_path_buf());
    fs::create_dir_all(&parent).map_err(io_err("creating", &parent))?;
    let mount = target.is_dir() && is_mount_point(target);
    // Staging on the target's filesystem: inside a mount point, else beside the target.
    let staging_parent = if mount {
        target.to_path_buf()
    } else {
        parent.clone()
    };
    let base_name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| component.name.clone());
    let staging = tempfile::Builder::new()
        .prefix(&format!(".{base_name}.rewind-staging."))
        .tempdir_in(&staging_parent)
        .map_err(io_err("creating a staging directory in", &staging_parent))?;

    let owner = opts.owner.resolve();
    let xopts = ExtractOptions { owner };
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
        staging.path(),
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

    // Move the existing contents aside, then put the staging directory in place.
    let aside_dir = root.join(backup_path).join("tmp");
    let aside = aside_dir.join(format!("{}.{epoch}", component.name));
    let mut moved = None;
    let exists = fs::symlink_metadata(target).is_ok();
    let has_contents = if exists {
        if mount {
            fs::read_dir(target)
                .map_err(io_err("reading", target))?
                .flatten()
                .any(|e| e.path() != staging.path())
        } else {
            !is_empty_dir(target).unwrap_or(false)
        }
    } else {
        false
    };
    if has_contents {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&aside_dir)
            .map_err(io_err("creating", &aside_dir))?;
        let (files, bytes) = extract::count_tree(target).unwrap_or((0, 0));
        let maperr = |source| FilesError::MoveAside {
            path: component.target.clone(),
            to: root.host_path(&aside),
            source,
        };
        if mount {
            move_contents(target, &aside, Some(staging.path())).map_err(maperr)?;
        } else {
            match move_path(target, &aside) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(nix::libc::EBUSY) => {
                    move_contents(target, &aside, Some(staging.path())).map_err(maperr)?
                }
                Err(e) => return Err(maperr(e)),
            }
        }
        sink.info(format!(
            "{}: previous contents ({files} files, {bytes} bytes) moved to {}; Rewind keeps them",
            component.name,
            root.host_path(&aside).display()
        ));
        moved = Some(MovedAside {
            path: root.host_path(&aside),
            files,
            bytes,
        });
    }
    let staging_path = staging.keep();
    if mount || fs::symlink_metadata(target).is_ok() {
        // A mount point (or a target that could not be renamed away): fill it.
        if !target.exists() {
            fs::create_dir(target).map_err(io_err("creating", target))?;
        }
        move_contents(&staging_path, target, None).map_err(io_err("moving into", target))?;
        let md = fs::metadata(&staging_path).map_err(io_err("reading", &staging_path))?;
        let _ = fs::set_permissions(target, md.permissions());
        fs::remove_dir(&staging_path).map_err(io_err("removing", &staging_path))?;
    } else {
        fs::rename(&staging_path, target)
            .map_err(io_err("renaming the staging directory to", target))?;
    }
    if let Some((u, g)) = owner {
        let _ = std::os::unix::fs::lchown(target, Some(u), Some(g));
    }
    let (rf, rb) = extract::count_tree(target).map_err(io_err("counting", target))?;
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

/// Move every child of `from` (except `except`) into `to` (created).
fn move_contents(from: &Path, to: &Path, except: Option<&Path>) -> io::Result<()> {
    if !to.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(to)?;
    }
    for e in fs::read_dir(from)? {
        let e = e?;
        let p = e.path();
        if Some(p.as_path()) == except {
            continue;
        }
        move_path(&p, &to.join(e.file_name()))?;
    }
    Ok(())
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
