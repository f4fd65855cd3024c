//! Safe, streaming extraction of a component tarball (`tar -C <dir> -cf - .` output) into a
//! directory.
//!
//! Refused (the whole component fails, [`ExtractError::Unsafe`]): entry names with `..` or
//! an absolute path, names that lead through a symlink, symlinks whose target is absolute or
//! resolves outside the directory (checked against the final tree, so chains of links cannot
//! escape either), hardlinks to anything but a regular file this extraction created, device
//! files and FIFOs. Everything is created relative to directory handles opened below the
//! extraction directory without following links (`openat(O_NOFOLLOW|O_DIRECTORY)`,
//! `mkdirat`, `O_EXCL|O_NOFOLLOW` files, `linkat` without `AT_SYMLINK_FOLLOW`), so nothing
//! is ever written through a link, however the tree changes during the extraction.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::Mode;
use nix::unistd::UnlinkatFlags;

use crate::safefs;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tar::EntryType;

/// Counts of what an extraction wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ExtractStats {
    /// Regular files (hardlinks included).
    pub files: u64,
    /// Bytes of regular files (a hardlink counts its target's size).
    pub bytes: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub hardlinks: u64,
}

/// Ownership and modes.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExtractOptions {
    /// Give every entry this uid/gid (GitLab's files belong to `git`).
    pub owner: Option<(u32, u32)>,
    /// Extract only the entries under this top-level directory of the stream, without it
    /// (`repositories/x` becomes `x`); other entries are read past. Hardlinks must point
    /// under it too.
    pub only_under: Option<&'static str>,
}

/// Why an extraction failed.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error("unsafe entry `{entry}`: {reason}. Rewind refuses archives whose entries could write outside the target directory; nothing of this component was put in place")]
    Unsafe { entry: String, reason: String },
    #[error("reading the archive: {0}. The component tarball is damaged or truncated")]
    Read(#[source] io::Error),
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn unsafe_entry(entry: &str, reason: impl Into<String>) -> ExtractError {
    ExtractError::Unsafe {
        entry: entry.to_string(),
        reason: reason.into(),
    }
}

/// The normal components of an archive name; `..`, `/` and prefixes are refused.
fn safe_components<'a>(name: &'a Path, shown: &str) -> Result<Vec<&'a OsStr>, ExtractError> {
    let mut out = Vec::new();
    for c in name.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            Component::ParentDir => return Err(unsafe_entry(shown, "its name contains `..`")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(unsafe_entry(shown, "its name is an absolute path"))
            }
        }
    }
    Ok(out)
}

/// Resolve `link` (a path relative to the extraction directory `dest`, whose last
/// component is a symlink) the way the kernel would, following links inside `dest`, and
/// report whether it stays inside.
fn link_stays_inside(dest: BorrowedFd<'_>, link_rel: &[&OsStr]) -> Result<(), String> {
    // Components still to walk, front first; start from the link's parent directory.
    let mut stack: Vec<std::ffi::OsString> = Vec::new();
    let mut todo: std::collections::VecDeque<std::ffi::OsString> =
        link_rel.iter().map(|c| c.to_os_string()).collect();
    let mut hops = 0;
    while let Some(c) = todo.pop_front() {
        if c == ".." {
            if stack.pop().is_none() {
                return Err("it resolves to a path outside the target directory".into());
            }
            continue;
        }
        if c == "." || c.is_empty() {
            continue;
        }
        stack.push(c);
        let here: PathBuf = stack.iter().collect();
        match safefs::stat_at(dest, here.as_os_str()) {
            Ok(Some(st)) if safefs::is_symlink(&st) => {
                hops += 1;
                if hops > 40 {
                    return Err("too many levels of symbolic links".into());
                }
                let target = PathBuf::from(
                    nix::fcntl::readlinkat(dest, here.as_os_str()).map_err(|e| e.to_string())?,
                );
                if target.is_absolute() {
                    return Err(format!(
                        "it points to the absolute path {}",
                        target.display()
                    ));
                }
                stack.pop();
                for (i, t) in target.components().enumerate() {
                    let part = match t {
                        Component::ParentDir => OsStr::new("..").to_os_string(),
                        Component::Normal(p) => p.to_os_string(),
                        _ => continue,
                    };
                    todo.insert(i, part);
                }
            }
            _ => {}
        }
    }
    Ok(())
}

struct DirMeta {
    rel: PathBuf,
    mode: u32,
    mtime: Option<SystemTime>,
}

/// A regular file this extraction created: where, and its size.
struct Created {
    dev: u64,
    ino: u64,
    size: u64,
}

/// Open (creating missing ones, `0700`) the directory `parts` below `dest`, never following
/// a link: a link or a file on the way refuses the entry.
fn open_parent(
    dest: BorrowedFd<'_>,
    parts: &[&OsStr],
    shown: &str,
    dest_path: &Path,
    opts: &ExtractOptions,
) -> Result<OwnedFd, ExtractError> {
    let mut cur = safefs::reopen_dir(dest).map_err(|e| write_err(dest_path, e))?;
    let mut rel = PathBuf::new();
    for p in parts {
        rel.push(p);
        match safefs::stat_at(&cur, p).map_err(|e| write_err(&dest_path.join(&rel), e))? {
            Some(st) if safefs::is_symlink(&st) => {
                return Err(unsafe_entry(
                    shown,
                    format!("it leads through the symlink {}", rel.display()),
                ))
            }
            Some(st) if !safefs::is_dir(&st) => {
                return Err(unsafe_entry(
                    shown,
                    format!("{} is not a directory", rel.display()),
                ))
            }
            Some(_) => {}
            None => {
                nix::sys::stat::mkdirat(&cur, *p, Mode::from_bits_truncate(0o700))
                    .map_err(|e| write_err(&dest_path.join(&rel), e.into()))?;
                if let Some((u, g)) = opts.owner {
                    chown_at(&cur, p, u, g).map_err(|e| write_err(&dest_path.join(&rel), e))?;
                }
            }
        }
        cur = safefs::open_dir_at(&cur, p).map_err(|_| {
            unsafe_entry(
                shown,
                format!(
                    "{} is not a directory Rewind can enter without following a link",
                    rel.display()
                ),
            )
        })?;
    }
    Ok(cur)
}

fn write_err(path: &Path, source: io::Error) -> ExtractError {
    ExtractError::Write {
        path: path.to_path_buf(),
        source,
    }
}

fn chown_at(dir: impl AsFd, name: &OsStr, u: u32, g: u32) -> io::Result<()> {
    nix::unistd::fchownat(
        dir,
        name,
        Some(nix::unistd::Uid::from_raw(u)),
        Some(nix::unistd::Gid::from_raw(g)),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(io::Error::from)
}

/// Extract the tar stream `reader` into the existing directory `dest`, opened without
/// following a link. See [`extract_tar_at`].
pub fn extract_tar<R: Read>(
    reader: R,
    dest: &Path,
    opts: &ExtractOptions,
    progress: &mut dyn FnMut(&ExtractStats, &str),
) -> Result<ExtractStats, ExtractError> {
    let fd = nix::fcntl::open(
        dest,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| write_err(dest, e.into()))?;
    extract_tar_at(reader, fd.as_fd(), dest, opts, progress)
}

/// Extract the tar stream `reader` into the directory handle `dest` (`dest_path` names it
/// in messages); every name is created relative to handles opened below it, without
/// following links. `progress` is called after each entry with the running totals.
pub fn extract_tar_at<R: Read>(
    reader: R,
    dest: BorrowedFd<'_>,
    dest_path: &Path,
    opts: &ExtractOptions,
    progress: &mut dyn FnMut(&ExtractStats, &str),
) -> Result<ExtractStats, ExtractError> {
    let mut archive = tar::Archive::new(reader);
    let mut stats = ExtractStats::default();
    let mut dirs: Vec<DirMeta> = Vec::new();
    let mut links: Vec<PathBuf> = Vec::new();
    let mut created: HashMap<PathBuf, Created> = HashMap::new();
    // The directory of the previous entry: archives list a directory's files together.
    let mut last_parent: Option<(PathBuf, OwnedFd)> = None;
    let mut buf = vec![0u8; 256 * 1024];

    for entry in archive.entries().map_err(ExtractError::Read)? {
        let mut entry = entry.map_err(ExtractError::Read)?;
        let header = entry.header();
        let kind = header.entry_type();
        if matches!(
            kind,
            EntryType::XGlobalHeader
                | EntryType::XHeader
                | EntryType::GNULongName
                | EntryType::GNULongLink
        ) {
            continue;
        }
        let raw_name = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw_name).into_owned();
        let name = PathBuf::from(OsStr::from_bytes(&raw_name));
        let mut parts = safe_components(&name, &shown)?;
        if let Some(top) = opts.only_under {
            if parts.first().is_none_or(|p| *p != OsStr::new(top)) {
                continue;
            }
            parts.remove(0);
        }
        let rel: PathBuf = parts.iter().collect();
        // setuid and setgid stripped; the sticky bit kept.
        let mode = header.mode().unwrap_or(0o644) & 0o1777;
        let mtime = header
            .mtime()
            .ok()
            .map(|t| SystemTime::UNIX_EPOCH + Duration::from_secs(t));
        let target = dest_path.join(&rel);

        // The top directory (`./`) itself: only its mode and time.
        if parts.is_empty() {
            if kind.is_dir() {
                dirs.push(DirMeta {
                    rel: PathBuf::new(),
                    mode,
                    mtime,
                });
            }
            continue;
        }

        // Every parent must be a real directory inside dest (created if missing).
        let parent_rel: PathBuf = parts[..parts.len() - 1].iter().collect();
        if last_parent.as_ref().map(|(p, _)| p) != Some(&parent_rel) {
            let fd = open_parent(dest, &parts[..parts.len() - 1], &shown, dest_path, opts)?;
            last_parent = Some((parent_rel.clone(), fd));
        }
        let parent = &last_parent.as_ref().expect("set above").1;
        let leaf = *parts.last().expect("not empty");

        // Replace whatever a previous entry of the same name left, except directories.
        let existing = safefs::stat_at(parent, leaf).map_err(|e| write_err(&target, e))?;
        let existing_dir = existing.as_ref().is_some_and(safefs::is_dir);
        let replace = |created: &mut HashMap<PathBuf, Created>| -> Result<(), ExtractError> {
            if existing.is_some() && !existing_dir {
                nix::unistd::unlinkat(parent, leaf, UnlinkatFlags::NoRemoveDir)
                    .map_err(|e| write_err(&target, e.into()))?;
                created.remove(&rel);
            }
            Ok(())
        };

        match kind {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                if existing_dir {
                    return Err(unsafe_entry(&shown, "a directory of that name exists"));
                }
                replace(&mut created)?;
                let fd = nix::fcntl::openat(
                    parent,
                    leaf,
                    OFlag::O_WRONLY
                        | OFlag::O_CREAT
                        | OFlag::O_EXCL
                        | OFlag::O_NOFOLLOW
                        | OFlag::O_CLOEXEC,
                    Mode::from_bits_truncate(0o600),
                )
                .map_err(|e| write_err(&target, e.into()))?;
                let mut f = File::from(fd);
                let mut n = 0u64;
                loop {
                    let k = entry.read(&mut buf).map_err(ExtractError::Read)?;
                    if k == 0 {
                        break;
                    }
                    f.write_all(&buf[..k]).map_err(|e| write_err(&target, e))?;
                    n += k as u64;
                }
                finish_file(&f, &target, mode, mtime, opts)?;
                let st = safefs::fstat(&f).map_err(|e| write_err(&target, e))?;
                stats.files += 1;
                stats.bytes += n;
                created.insert(
                    rel.clone(),
                    Created {
                        dev: st.st_dev,
                        ino: st.st_ino,
                        size: n,
                    },
                );
            }
            EntryType::Directory => {
                if !existing_dir {
                    replace(&mut created)?;
                    nix::sys::stat::mkdirat(parent, leaf, Mode::from_bits_truncate(0o700))
                        .map_err(|e| write_err(&target, e.into()))?;
                    if let Some((u, g)) = opts.owner {
                        chown_at(parent, leaf, u, g).map_err(|e| write_err(&target, e))?;
                    }
                }
                dirs.push(DirMeta {
                    rel: rel.clone(),
                    mode,
                    mtime,
                });
                stats.dirs += 1;
            }
            EntryType::Symlink => {
                let link = entry
                    .link_name_bytes()
                    .map(|b| PathBuf::from(OsStr::from_bytes(&b)))
                    .unwrap_or_default();
                if link.as_os_str().is_empty() {
                    return Err(unsafe_entry(&shown, "symlink without a target"));
                }
                if link.is_absolute() {
                    return Err(unsafe_entry(
                        &shown,
                        format!("symlink to the absolute path {}", link.display()),
                    ));
                }
                // Lexical check now; the final tree is checked again at the end.
                let mut depth = parts.len() as i64 - 1;
                for c in link.components() {
                    match c {
                        Component::ParentDir => depth -= 1,
                        Component::Normal(_) => depth += 1,
                        _ => {}
                    }
                    if depth < 0 {
                        return Err(unsafe_entry(
                            &shown,
                            format!(
                                "symlink to {} points outside the target directory",
                                link.display()
                            ),
                        ));
                    }
                }
                if existing_dir {
                    return Err(unsafe_entry(&shown, "a directory of that name exists"));
                }
                replace(&mut created)?;
                nix::unistd::symlinkat(link.as_os_str(), parent, leaf)
                    .map_err(|e| write_err(&target, e.into()))?;
                if let Some((u, g)) = opts.owner {
                    chown_at(parent, leaf, u, g).map_err(|e| write_err(&target, e))?;
                }
                links.push(rel.clone());
                stats.symlinks += 1;
            }
            EntryType::Link => {
                let link = entry
                    .link_name_bytes()
                    .map(|b| PathBuf::from(OsStr::from_bytes(&b)))
                    .unwrap_or_default();
                let outside = || {
                    unsafe_entry(
                        &shown,
                        format!(
                            "hardlink to {}, which is not a regular file extracted before it",
                            link.display()
                        ),
                    )
                };
                let mut lparts = safe_components(&link, &shown).map_err(|_| outside())?;
                if let Some(top) = opts.only_under {
                    if lparts.first().is_none_or(|p| *p != OsStr::new(top)) {
                        return Err(outside());
                    }
                    lparts.remove(0);
                }
                let lrel: PathBuf = lparts.iter().collect();
                // Only to a regular file this extraction created, still the same file,
                // reached without following any link.
                let Some((src_dev, src_ino, size)) =
                    created.get(&lrel).map(|c| (c.dev, c.ino, c.size))
                else {
                    return Err(outside());
                };
                let Some((src_leaf, src_dirs)) = lparts.split_last() else {
                    return Err(outside());
                };
                let src_parent =
                    open_parent(dest, src_dirs, &shown, dest_path, opts).map_err(|_| outside())?;
                match safefs::stat_at(&src_parent, src_leaf) {
                    Ok(Some(st))
                        if safefs::is_file(&st) && st.st_dev == src_dev && st.st_ino == src_ino => {
                    }
                    _ => return Err(outside()),
                }
                if existing_dir {
                    return Err(unsafe_entry(&shown, "a directory of that name exists"));
                }
                replace(&mut created)?;
                nix::unistd::linkat(&src_parent, *src_leaf, parent, leaf, AtFlags::empty())
                    .map_err(|e| write_err(&target, e.into()))?;
                created.insert(
                    rel.clone(),
                    Created {
                        dev: src_dev,
                        ino: src_ino,
                        size,
                    },
                );
                stats.files += 1;
                stats.hardlinks += 1;
                stats.bytes += size;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                return Err(unsafe_entry(
                    &shown,
                    "device files and FIFOs are not restored",
                ));
            }
            other => {
                return Err(unsafe_entry(
                    &shown,
                    format!("entry type {other:?} is not a file, directory or link"),
                ));
            }
        }
        progress(&stats, &shown);
    }
    drop(last_parent);

    for l in &links {
        let parts: Vec<&OsStr> = l.iter().collect();
        link_stays_inside(dest, &parts).map_err(|reason| {
            unsafe_entry(&l.display().to_string(), format!("symlink: {reason}"))
        })?;
    }
    // Directory modes and times last (deepest first), so read-only directories do not block
    // their own contents.
    for d in dirs.iter().rev() {
        let path = dest_path.join(&d.rel);
        let parts: Vec<&OsStr> = d.rel.iter().collect();
        let fd = open_parent(dest, &parts, &d.rel.display().to_string(), dest_path, opts)?;
        nix::sys::stat::fchmod(&fd, Mode::from_bits_truncate(mode_or_dir(d.mode)))
            .map_err(|e| write_err(&path, e.into()))?;
        if let Some(t) = d.mtime {
            let ts = nix::sys::time::TimeSpec::from_duration(
                t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default(),
            );
            let _ = nix::sys::stat::futimens(&fd, &ts, &ts);
        }
    }
    Ok(stats)
}

fn mode_or_dir(mode: u32) -> u32 {
    // A directory without owner rwx would lock Rewind (and GitLab) out of it.
    mode | 0o700
}

fn finish_file(
    f: &File,
    path: &Path,
    mode: u32,
    mtime: Option<SystemTime>,
    opts: &ExtractOptions,
) -> Result<(), ExtractError> {
    let wr = |source| ExtractError::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some((u, g)) = opts.owner {
        std::os::unix::fs::fchown(f, Some(u), Some(g)).map_err(wr)?;
    }
    f.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(wr)?;
    if let Some(t) = mtime {
        f.set_modified(t).map_err(wr)?;
    }
    Ok(())
}

/// Count regular files and their bytes under `dir` (symlinks not followed): the Verify line
/// compares these with what the archive held.
pub fn count_tree(dir: &Path) -> io::Result<(u64, u64)> {
    let fd = nix::fcntl::open(
        dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    safefs::count_tree(fd.as_fd())
}
