//! File work in directories other users can write, as root, without following links.
//!
//! Rewind runs as root; GitLab's data and backup directories belong to `git`. Anything
//! below them may be a link planted to turn root's writes against the host. So:
//! - a directory path is resolved once ([`open_dir_resolved`]): links *above* it that exist
//!   when Rewind starts (an admin's `/var/opt/gitlab -> /data/gitlab`) are followed and
//!   reported; the directory is then used only through the handle opened;
//! - below a handle, every name is opened with `O_NOFOLLOW` (and `O_DIRECTORY` for
//!   directories), created with `mkdirat`/`openat(O_EXCL)`, moved with `renameat2`, and
//!   modes and owners are set on handles (`fchmod`, `fchown`);
//! - Rewind's own directories and files (journal, session, snapshots, moved-aside data) are
//!   refused when they are links or not owned by the user running Rewind ([`private_dir`],
//!   [`check_owned_file`]).

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, RenameFlags};
use nix::sys::stat::{FileStat, Mode, SFlag};
use nix::unistd::UnlinkatFlags;

use crate::root::HostRoot;

/// Why a file operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum SafeError {
    #[error("refusing {path}: {reason}. Rewind runs as root and neither follows links nor uses files it does not own in directories other users can write; remove or fix it, then retry")]
    Refused { path: PathBuf, reason: String },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl SafeError {
    pub fn refused(path: impl Into<PathBuf>, reason: impl Into<String>) -> SafeError {
        SafeError::Refused {
            path: path.into(),
            reason: reason.into(),
        }
    }

    pub fn io(op: &'static str, path: impl Into<PathBuf>, e: impl Into<io::Error>) -> SafeError {
        SafeError::Io {
            op,
            path: path.into(),
            source: e.into(),
        }
    }
}

const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

/// `fstat` as `io::Result`.
pub fn fstat(fd: impl AsFd) -> io::Result<FileStat> {
    Ok(nix::sys::stat::fstat(fd)?)
}

/// `fstatat(AT_SYMLINK_NOFOLLOW)`; `None` when the name does not exist.
pub fn stat_at(dir: impl AsFd, name: &OsStr) -> io::Result<Option<FileStat>> {
    match nix::sys::stat::fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub fn is_dir(st: &FileStat) -> bool {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR
}

pub fn is_file(st: &FileStat) -> bool {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFREG
}

pub fn is_symlink(st: &FileStat) -> bool {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK
}

/// Same file: device and inode.
pub fn same(a: &FileStat, b: &FileStat) -> bool {
    a.st_dev == b.st_dev && a.st_ino == b.st_ino
}

/// Open the directory `name` in `dir` without following a link (`ELOOP`/`ENOTDIR` when
/// it is a link or not a directory).
pub fn open_dir_at(dir: impl AsFd, name: &OsStr) -> io::Result<OwnedFd> {
    Ok(nix::fcntl::openat(dir, name, DIR_FLAGS, Mode::empty())?)
}

/// Open a directory by its path, the way Rewind opens a configured directory (the backup
/// directory, a data directory): links in the path, an admin's choice, are followed; what
/// is below is then used only through this handle.
pub fn open_dir_path(path: &Path) -> io::Result<OwnedFd> {
    Ok(nix::fcntl::open(
        path,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?)
}

/// A second, independent handle on a directory (for reading its entries).
pub fn reopen_dir(dir: impl AsFd) -> io::Result<OwnedFd> {
    open_dir_at(dir, OsStr::new("."))
}

/// The names in a directory (without `.` and `..`).
pub fn list(dir: impl AsFd) -> io::Result<Vec<OsString>> {
    let fd = reopen_dir(dir)?;
    let mut d = nix::dir::Dir::from_fd(fd)?;
    let mut out = Vec::new();
    for e in d.iter() {
        let e = e?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            out.push(OsStr::from_bytes(n).to_os_string());
        }
    }
    Ok(out)
}

/// Open the directory `name` in `dir`, refusing (naming `shown`) a link or a non-directory.
pub fn open_dir_checked(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    shown: &Path,
) -> Result<OwnedFd, SafeError> {
    match stat_at(dir, name) {
        Ok(Some(st)) if is_symlink(&st) => {
            return Err(SafeError::refused(shown, "it is a symbolic link"))
        }
        Ok(Some(st)) if !is_dir(&st) => {
            return Err(SafeError::refused(shown, "it is not a directory"))
        }
        Ok(_) => {}
        Err(e) => return Err(SafeError::io("reading", shown, e)),
    }
    open_dir_at(dir, name).map_err(|e| match e.raw_os_error() {
        Some(nix::libc::ELOOP) | Some(nix::libc::ENOTDIR) => SafeError::refused(
            shown,
            "it was replaced by a link or a file while Rewind opened it",
        ),
        _ => SafeError::io("opening", shown, e),
    })
}

/// The effective user id.
pub fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// Refuse a file or directory Rewind keeps for itself that is not owned by the user
/// running Rewind (root, on a GitLab host).
pub fn check_owner(st: &FileStat, shown: &Path) -> Result<(), SafeError> {
    let me = euid();
    if st.st_uid != me {
        return Err(SafeError::refused(
            shown,
            format!(
                "it is owned by uid {}, not by {} (uid {me}) that runs Rewind",
                st.st_uid,
                if me == 0 { "root" } else { "the user" }
            ),
        ));
    }
    Ok(())
}

/// Refuse a file of Rewind's own that is not a plain regular file owned by the user
/// running Rewind, with one link.
pub fn check_owned_file(st: &FileStat, shown: &Path) -> Result<(), SafeError> {
    if !is_file(st) {
        return Err(SafeError::refused(shown, "it is not a regular file"));
    }
    check_owner(st, shown)?;
    if st.st_nlink != 1 {
        return Err(SafeError::refused(
            shown,
            format!("it has {} hard links; Rewind's files have one", st.st_nlink),
        ));
    }
    Ok(())
}

/// A directory of Rewind's own, `name` in `parent` (`shown` names it in messages):
/// created `0700` when `create` and missing, opened without following links, refused when
/// it is a link, not a directory or not owned by the user running Rewind; mode `0700` set
/// on the handle. `Ok(None)` when it does not exist and `create` is false.
pub fn private_dir(
    parent: BorrowedFd<'_>,
    name: &OsStr,
    shown: &Path,
    create: bool,
) -> Result<Option<OwnedFd>, SafeError> {
    if create {
        match nix::sys::stat::mkdirat(parent, name, Mode::from_bits_truncate(0o700)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(SafeError::io("creating", shown, e)),
        }
    } else if stat_at(parent, name)
        .map_err(|e| SafeError::io("reading", shown, e))?
        .is_none()
    {
        return Ok(None);
    }
    let fd = open_dir_checked(parent, name, shown)?;
    let st = fstat(&fd).map_err(|e| SafeError::io("reading", shown, e))?;
    check_owner(&st, shown)?;
    nix::sys::stat::fchmod(&fd, Mode::from_bits_truncate(0o700))
        .map_err(|e| SafeError::io("setting the mode of", shown, e))?;
    Ok(Some(fd))
}

/// Resolve `path` (a path on this machine, under `root`) the way the kernel would, taking
/// absolute link targets as host paths under `root`. Returns the real path and the links
/// followed, as `(host path of the link, what it points to)`. Missing trailing components
/// are kept as they are.
pub fn resolve(root: &HostRoot, path: &Path) -> (PathBuf, Links) {
    let mut links = Vec::new();
    let mut done = root.base().to_path_buf();
    let rel = path.strip_prefix(root.base()).unwrap_or(path);
    let mut todo: std::collections::VecDeque<OsString> = rel
        .components()
        .filter_map(|c| match c {
            Component::Normal(p) => Some(p.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect();
    let mut hops = 0;
    while let Some(c) = todo.pop_front() {
        if c == ".." {
            if done != root.base() {
                done.pop();
            }
            continue;
        }
        let next = done.join(&c);
        match std::fs::symlink_metadata(&next) {
            Ok(m) if m.file_type().is_symlink() && hops < 40 => {
                hops += 1;
                let Ok(t) = std::fs::read_link(&next) else {
                    done = next;
                    continue;
                };
                links.push((root.host_path(&next), t.clone()));
                if t.is_absolute() {
                    done = root.base().to_path_buf();
                }
                let parts: Vec<OsString> = t
                    .components()
                    .filter_map(|c| match c {
                        Component::Normal(p) => Some(p.to_os_string()),
                        Component::ParentDir => Some(OsString::from("..")),
                        _ => None,
                    })
                    .collect();
                for p in parts.into_iter().rev() {
                    todo.push_front(p);
                }
            }
            _ => done = next,
        }
    }
    (done, links)
}

/// Links followed while resolving a path: `(host path of the link, what it points to)`.
pub type Links = Vec<(PathBuf, PathBuf)>;

/// Open the directory `path` (under `root`), resolving the links above and in it once,
/// creating missing directories (`mode`, without following links). Returns the handle,
/// the real path and the links followed.
pub fn open_dir_resolved(
    root: &HostRoot,
    path: &Path,
    mode: u32,
) -> Result<(OwnedFd, PathBuf, Links), SafeError> {
    let (real, links) = resolve(root, path);
    // The deepest existing ancestor, then each missing component created and opened
    // relative to its parent's handle.
    let mut existing = real.clone();
    let mut missing: Vec<OsString> = Vec::new();
    while std::fs::symlink_metadata(&existing).is_err() {
        match (existing.file_name(), existing.parent()) {
            (Some(n), Some(p)) => {
                missing.push(n.to_os_string());
                existing = p.to_path_buf();
            }
            _ => break,
        }
    }
    let mut fd = nix::fcntl::open(
        &existing,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| SafeError::io("opening", root.host_path(&existing), e))?;
    let mut shown = existing.clone();
    for n in missing.iter().rev() {
        shown.push(n);
        match nix::sys::stat::mkdirat(&fd, n.as_os_str(), Mode::from_bits_truncate(mode)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(SafeError::io("creating", root.host_path(&shown), e)),
        }
        fd = open_dir_checked(fd.as_fd(), n, &root.host_path(&shown))?;
    }
    Ok((fd, real, links))
}

/// Files and bytes of regular files under the directory `dir` (links not followed).
pub fn count_tree(dir: BorrowedFd<'_>) -> io::Result<(u64, u64)> {
    let mut files = 0;
    let mut bytes = 0;
    let mut stack = vec![reopen_dir(dir)?];
    while let Some(d) = stack.pop() {
        for n in list(&d)? {
            let Some(st) = stat_at(&d, &n)? else { continue };
            if is_dir(&st) {
                stack.push(open_dir_at(&d, &n)?);
            } else if is_file(&st) {
                files += 1;
                bytes += st.st_size as u64;
            }
        }
    }
    Ok((files, bytes))
}

/// Remove everything in the directory `dir` (links removed, never followed).
pub fn remove_contents(dir: BorrowedFd<'_>) -> io::Result<()> {
    for n in list(dir)? {
        let Some(st) = stat_at(dir, &n)? else {
            continue;
        };
        if is_dir(&st) {
            let sub = open_dir_at(dir, &n)?;
            remove_contents(sub.as_fd())?;
            nix::unistd::unlinkat(dir, n.as_os_str(), UnlinkatFlags::RemoveDir)?;
        } else {
            nix::unistd::unlinkat(dir, n.as_os_str(), UnlinkatFlags::NoRemoveDir)?;
        }
    }
    Ok(())
}

/// Copy `name` in `from` to `name` in `to` (a tree; links copied as links, owners and
/// modes kept where permitted), never following links.
pub fn copy_tree(from: BorrowedFd<'_>, to: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let Some(st) = stat_at(from, name)? else {
        return Ok(());
    };
    let mode = Mode::from_bits_truncate(st.st_mode & 0o7777);
    let owner = (
        Some(nix::unistd::Uid::from_raw(st.st_uid)),
        Some(nix::unistd::Gid::from_raw(st.st_gid)),
    );
    if is_symlink(&st) {
        let t = nix::fcntl::readlinkat(from, name)?;
        nix::unistd::symlinkat(t.as_os_str(), to, name)?;
        let _ = nix::unistd::fchownat(to, name, owner.0, owner.1, AtFlags::AT_SYMLINK_NOFOLLOW);
    } else if is_dir(&st) {
        nix::sys::stat::mkdirat(to, name, Mode::from_bits_truncate(0o700))?;
        let src = open_dir_at(from, name)?;
        let dst = open_dir_at(to, name)?;
        for n in list(&src)? {
            copy_tree(src.as_fd(), dst.as_fd(), &n)?;
        }
        let _ = nix::unistd::fchown(&dst, owner.0, owner.1);
        nix::sys::stat::fchmod(&dst, mode)?;
    } else if is_file(&st) {
        let src = nix::fcntl::openat(
            from,
            name,
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        let dst = nix::fcntl::openat(
            to,
            name,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )?;
        let mut src = std::fs::File::from(src);
        let mut dst = std::fs::File::from(dst);
        io::copy(&mut src, &mut dst)?;
        let _ = nix::unistd::fchown(&dst, owner.0, owner.1);
        nix::sys::stat::fchmod(&dst, mode)?;
    }
    Ok(())
}

/// Move `name` from `from` to `to` (same name), never replacing what is there: by
/// `renameat2(RENAME_NOREPLACE)`, across filesystems by copying then removing.
pub fn move_entry(from: BorrowedFd<'_>, to: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    move_entry_as(from, name, to, name)
}

/// Move `name` in `from` to `new` in `to`, never replacing what is there.
pub fn move_entry_as(
    from: BorrowedFd<'_>,
    name: &OsStr,
    to: BorrowedFd<'_>,
    new: &OsStr,
) -> io::Result<()> {
    match nix::fcntl::renameat2(from, name, to, new, RenameFlags::RENAME_NOREPLACE) {
        Ok(()) => Ok(()),
        Err(Errno::EXDEV) => {
            let st = stat_at(from, name)?.ok_or(io::ErrorKind::NotFound)?;
            if new != name {
                return Err(io::Error::from_raw_os_error(nix::libc::EXDEV));
            }
            copy_tree(from, to, name)?;
            if is_dir(&st) {
                let d = open_dir_at(from, name)?;
                remove_contents(d.as_fd())?;
                nix::unistd::unlinkat(from, name, UnlinkatFlags::RemoveDir)?;
            } else {
                nix::unistd::unlinkat(from, name, UnlinkatFlags::NoRemoveDir)?;
            }
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// A name unique to this process and moment: `<prefix><pid>.<nanos>.<n>`.
pub fn unique_name(prefix: &str) -> OsString {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    OsString::from(format!(
        "{prefix}{}.{nanos}.{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Remove the entry `name` of the directory `dir`: a file or link (the link itself), or a
/// directory with everything in it, never following a link. `name` must be one plain path
/// component (no `/`, not `.` or `..`).
pub fn remove_entry_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes == b"." || bytes == b".." || bytes.contains(&b'/') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("`{}` is not a plain file name", name.to_string_lossy()),
        ));
    }
    let st = stat_at(dir, name)?
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "already gone"))?;
    if is_dir(&st) {
        // Opened without following a link: a directory swapped for a link since the stat
        // fails here (ELOOP/ENOTDIR) instead of emptying the link's target.
        let d = open_dir_at(dir, name)?;
        if !same(&fstat(&d)?, &st) {
            return Err(io::Error::other(
                "it was replaced while Rewind was removing it",
            ));
        }
        remove_contents(d.as_fd())?;
        nix::unistd::unlinkat(dir, name, UnlinkatFlags::RemoveDir)?;
    } else {
        nix::unistd::unlinkat(dir, name, UnlinkatFlags::NoRemoveDir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_dir_refuses_links_and_foreign_owners() {
        let t = tempfile::tempdir().unwrap();
        let outside = t.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, t.path().join("rewind")).unwrap();
        let parent = nix::fcntl::open(t.path(), DIR_FLAGS, Mode::empty()).unwrap();
        let err = private_dir(
            parent.as_fd(),
            OsStr::new("rewind"),
            Path::new("/b/rewind"),
            true,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("/b/rewind") && err.contains("symbolic link"),
            "{err}"
        );
        let fd = private_dir(parent.as_fd(), OsStr::new("mine"), Path::new("mine"), true)
            .unwrap()
            .unwrap();
        assert_eq!(fstat(&fd).unwrap().st_mode & 0o7777, 0o700);
        if euid() == 0 {
            std::fs::create_dir(t.path().join("theirs")).unwrap();
            std::os::unix::fs::chown(t.path().join("theirs"), Some(1234), None).unwrap();
            let err = private_dir(
                parent.as_fd(),
                OsStr::new("theirs"),
                Path::new("theirs"),
                true,
            )
            .unwrap_err()
            .to_string();
            assert!(err.contains("owned by uid 1234"), "{err}");
        }
    }

    #[test]
    fn resolves_links_above_under_the_root() {
        let t = tempfile::tempdir().unwrap();
        let root = HostRoot::new(t.path());
        std::fs::create_dir_all(root.join("/data/gitlab/gitlab-rails")).unwrap();
        std::fs::create_dir_all(root.join("/var/opt")).unwrap();
        std::os::unix::fs::symlink("/data/gitlab", root.join("/var/opt/gitlab")).unwrap();
        let (real, links) = resolve(&root, &root.join("/var/opt/gitlab/gitlab-rails/uploads"));
        assert_eq!(real, root.join("/data/gitlab/gitlab-rails/uploads"));
        assert_eq!(links[0].0, PathBuf::from("/var/opt/gitlab"));
    }
}
