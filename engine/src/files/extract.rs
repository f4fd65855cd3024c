//! Safe, streaming extraction of a component tarball (`tar -C <dir> -cf - .` output) into a
//! directory.
//!
//! Refused (the whole component fails, [`ExtractError::Unsafe`]): entry names with `..` or
//! an absolute path, names that lead through a symlink, symlinks whose target is absolute or
//! resolves outside the directory (checked against the final tree, so chains of links cannot
//! escape either), hardlinks to names outside the archive, device files and FIFOs. Files are
//! created with `O_EXCL|O_NOFOLLOW`, so nothing is ever written through a link.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
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

/// Resolve `link` (a path relative to `dest`, whose last component is a symlink) the way the
/// kernel would, following links inside `dest`, and report whether it stays inside.
fn link_stays_inside(dest: &Path, link_rel: &[&OsStr]) -> Result<(), String> {
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
        let here: PathBuf = stack.iter().fold(dest.to_path_buf(), |p, c| p.join(c));
        match fs::symlink_metadata(&here) {
            Ok(md) if md.file_type().is_symlink() => {
                hops += 1;
                if hops > 40 {
                    return Err("too many levels of symbolic links".into());
                }
                let target = fs::read_link(&here).map_err(|e| e.to_string())?;
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
    path: PathBuf,
    mode: u32,
    mtime: Option<SystemTime>,
}

/// Extract the tar stream `reader` into the existing directory `dest`. `progress` is called
/// after each entry with the running totals.
pub fn extract_tar<R: Read>(
    reader: R,
    dest: &Path,
    opts: &ExtractOptions,
    progress: &mut dyn FnMut(&ExtractStats, &str),
) -> Result<ExtractStats, ExtractError> {
    let mut archive = tar::Archive::new(reader);
    let mut stats = ExtractStats::default();
    let mut safe_dirs: HashSet<PathBuf> = HashSet::new();
    safe_dirs.insert(PathBuf::new());
    let mut dirs: Vec<DirMeta> = Vec::new();
    let mut links: Vec<PathBuf> = Vec::new();
    let mut sizes: std::collections::HashMap<PathBuf, u64> = std::collections::HashMap::new();
    let mut buf = vec![0u8; 256 * 1024];
    let wr = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ExtractError::Write { path, source }
    };

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
        let parts = safe_components(&name, &shown)?;
        let rel: PathBuf = parts.iter().collect();
        let mode = header.mode().unwrap_or(0o644) & 0o1777;
        let mtime = header
            .mtime()
            .ok()
            .map(|t| SystemTime::UNIX_EPOCH + Duration::from_secs(t));
        let target = dest.join(&rel);

        // The top directory (`./`) itself: only its mode and time.
        if parts.is_empty() {
            if kind.is_dir() {
                dirs.push(DirMeta {
                    path: dest.to_path_buf(),
                    mode,
                    mtime,
                });
            }
            continue;
        }

        // Every parent must be a real directory inside dest (created if missing).
        let mut parent = PathBuf::new();
        for p in &parts[..parts.len() - 1] {
            parent.push(p);
            if safe_dirs.contains(&parent) {
                continue;
            }
            let full = dest.join(&parent);
            match fs::symlink_metadata(&full) {
                Ok(md) if md.file_type().is_symlink() => {
                    return Err(unsafe_entry(
                        &shown,
                        format!("it leads through the symlink {}", parent.display()),
                    ))
                }
                Ok(md) if md.is_dir() => {}
                Ok(_) => {
                    return Err(unsafe_entry(
                        &shown,
                        format!("{} is not a directory", parent.display()),
                    ))
                }
                Err(_) => {
                    fs::create_dir(&full).map_err(wr(&full))?;
                    if let Some((u, g)) = opts.owner {
                        std::os::unix::fs::lchown(&full, Some(u), Some(g)).map_err(wr(&full))?;
                    }
                }
            }
            safe_dirs.insert(parent.clone());
        }

        // Replace whatever a previous entry of the same name left, except directories.
        let existing = fs::symlink_metadata(&target).ok();
        let replace = |t: &Path| -> Result<(), ExtractError> {
            if existing.as_ref().is_some_and(|m| !m.is_dir()) {
                fs::remove_file(t).map_err(wr(t))?;
            }
            Ok(())
        };

        match kind {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                if existing.as_ref().is_some_and(|m| m.is_dir()) {
                    return Err(unsafe_entry(&shown, "a directory of that name exists"));
                }
                replace(&target)?;
                let mut f = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .custom_flags(nix::libc::O_NOFOLLOW)
                    .mode(0o600)
                    .open(&target)
                    .map_err(wr(&target))?;
                let mut n = 0u64;
                loop {
                    let k = entry.read(&mut buf).map_err(ExtractError::Read)?;
                    if k == 0 {
                        break;
                    }
                    f.write_all(&buf[..k]).map_err(wr(&target))?;
                    n += k as u64;
                }
                finish_file(&f, &target, mode, mtime, opts)?;
                stats.files += 1;
                stats.bytes += n;
                sizes.insert(rel.clone(), n);
            }
            EntryType::Directory => {
                match &existing {
                    Some(m) if m.is_dir() => {}
                    _ => {
                        replace(&target)?;
                        fs::create_dir(&target).map_err(wr(&target))?;
                        if let Some((u, g)) = opts.owner {
                            std::os::unix::fs::lchown(&target, Some(u), Some(g))
                                .map_err(wr(&target))?;
                        }
                    }
                }
                safe_dirs.insert(rel.clone());
                dirs.push(DirMeta {
                    path: target.clone(),
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
                if existing.as_ref().is_some_and(|m| m.is_dir()) {
                    return Err(unsafe_entry(&shown, "a directory of that name exists"));
                }
                replace(&target)?;
                std::os::unix::fs::symlink(&link, &target).map_err(wr(&target))?;
                if let Some((u, g)) = opts.owner {
                    std::os::unix::fs::lchown(&target, Some(u), Some(g)).map_err(wr(&target))?;
                }
                links.push(rel.clone());
                stats.symlinks += 1;
            }
            EntryType::Link => {
                let link = entry
                    .link_name_bytes()
                    .map(|b| PathBuf::from(OsStr::from_bytes(&b)))
                    .unwrap_or_default();
                let lparts = safe_components(&link, &shown).map_err(|_| {
                    unsafe_entry(
                        &shown,
                        format!("hardlink to {} outside the archive", link.display()),
                    )
                })?;
                let lrel: PathBuf = lparts.iter().collect();
                let src = dest.join(&lrel);
                match fs::symlink_metadata(&src) {
                    Ok(m) if m.is_file() => {}
                    _ => {
                        return Err(unsafe_entry(
                            &shown,
                            format!(
                                "hardlink to {}, which is not a file extracted before it",
                                link.display()
                            ),
                        ))
                    }
                }
                if existing.as_ref().is_some_and(|m| m.is_dir()) {
                    return Err(unsafe_entry(&shown, "a directory of that name exists"));
                }
                replace(&target)?;
                fs::hard_link(&src, &target).map_err(wr(&target))?;
                let size = sizes.get(&lrel).copied().unwrap_or(0);
                sizes.insert(rel.clone(), size);
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

    for l in &links {
        let parts: Vec<&OsStr> = l.iter().collect();
        link_stays_inside(dest, &parts).map_err(|reason| {
            unsafe_entry(&l.display().to_string(), format!("symlink: {reason}"))
        })?;
    }
    // Directory modes and times last (deepest first), so read-only directories do not block
    // their own contents.
    for d in dirs.iter().rev() {
        fs::set_permissions(&d.path, fs::Permissions::from_mode(mode_or_dir(d.mode)))
            .map_err(wr(&d.path))?;
        if let Some(t) = d.mtime {
            if let Ok(f) = File::open(&d.path) {
                let _ = f.set_modified(t);
            }
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
    let mut files = 0;
    let mut bytes = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d)? {
            let e = e?;
            let ft = e.file_type()?;
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                files += 1;
                bytes += e.metadata()?.len();
            }
        }
    }
    Ok((files, bytes))
}
