//! Pointing real apt and dpkg at a sandbox root, leaving the host untouched.
//!
//! apt reads its configuration files before it parses `-o` options, so `-o Dir=...` alone
//! still reads the host's `/etc/apt/apt.conf.d` (whose hooks, such as Docker's
//! `docker-clean`, act on the host). Rewind therefore sets `APT_CONFIG` to a file in the
//! sandbox that sets only `Dir`, so apt reads the sandbox's own `etc/apt`, and passes every
//! other setting visibly as `-o` options:
//!
//! - `Dir=<root>/`: sources, lists, caches and logs of the sandbox;
//! - `Dir::State::status=<root>/var/lib/dpkg/status`: the sandbox's dpkg database;
//! - `DPkg::Options::=--root=<root>`, `--admindir=<root>/var/lib/dpkg`,
//!   `--log=<root>/var/log/dpkg.log`: dpkg installs into the sandbox, records there, and
//!   logs there (without `--log` dpkg appends to the host's `/var/log/dpkg.log`);
//! - `Debug::NoLocking=1`: no host lock files;
//! - `APT::Sandbox::User=root`: fetch as the current user (the `_apt` user cannot read a
//!   private sandbox).

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use super::PackageError;
use crate::root::HostRoot;

/// Host path of the `APT_CONFIG` file Rewind writes into a sandbox root.
pub const CONFIG: &str = "/var/lib/rewind/apt.conf";

/// The directories apt and dpkg need in a sandbox root.
pub const DIRS: [&str; 10] = [
    "/etc/apt/apt.conf.d",
    "/etc/apt/preferences.d",
    "/etc/apt/sources.list.d",
    "/var/lib/apt/lists/partial",
    "/var/cache/apt/archives/partial",
    "/var/lib/dpkg/info",
    "/var/lib/dpkg/updates",
    "/var/lib/dpkg/triggers",
    "/var/log/apt",
    "/var/lib/rewind",
];

fn base(root: &HostRoot) -> String {
    root.base()
        .display()
        .to_string()
        .trim_end_matches('/')
        .to_string()
}

/// The `-o` options that confine apt (and the dpkg it runs) to `root`.
pub fn options(root: &HostRoot) -> Vec<String> {
    let b = base(root);
    let mut opts = vec![
        format!("Dir={b}/"),
        format!("Dir::State::status={b}/var/lib/dpkg/status"),
        format!("DPkg::Options::=--root={b}"),
        format!("DPkg::Options::=--admindir={b}/var/lib/dpkg"),
        format!("DPkg::Options::=--log={b}/var/log/dpkg.log"),
        "Debug::NoLocking=1".to_string(),
        "APT::Sandbox::User=root".to_string(),
    ];
    if !nix::unistd::geteuid().is_root() {
        opts.push("DPkg::Options::=--force-not-root".to_string());
    }
    opts.into_iter()
        .flat_map(|o| ["-o".to_string(), o])
        .collect()
}

/// The dpkg arguments that confine dpkg itself to `root` (for `dpkg -i` of a file).
pub fn dpkg_args(root: &HostRoot) -> Vec<String> {
    let b = base(root);
    let mut a = vec![
        format!("--root={b}"),
        format!("--admindir={b}/var/lib/dpkg"),
        format!("--log={b}/var/log/dpkg.log"),
    ];
    if !nix::unistd::geteuid().is_root() {
        a.push("--force-not-root".into());
    }
    a
}

/// Create the directories apt and dpkg need under `root` (and an empty dpkg status file if
/// there is none).
pub fn ensure_dirs(root: &HostRoot) -> Result<(), PackageError> {
    for d in DIRS {
        let p = root.join(d);
        fs::create_dir_all(&p).map_err(|source| PackageError::Sandbox { path: p, source })?;
    }
    for f in ["/var/lib/dpkg/status", "/var/lib/dpkg/available"] {
        let p = root.join(f);
        if !p.exists() {
            fs::write(&p, b"").map_err(|source| PackageError::Sandbox { path: p, source })?;
        }
    }
    Ok(())
}

/// Write (if missing or different) the `APT_CONFIG` file for `root` and return its path.
pub fn ensure_config(root: &HostRoot) -> Result<PathBuf, PackageError> {
    let path = root.join(CONFIG);
    let text = format!(
        "// Written by Rewind: makes apt read its configuration from this sandbox root, not the host.\nDir \"{}/\";\n",
        base(root)
    );
    if fs::read_to_string(&path).ok().as_deref() == Some(text.as_str()) {
        return Ok(path);
    }
    let err = |source| PackageError::Sandbox {
        path: path.clone(),
        source,
    };
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(err)?;
    }
    let mut f = fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o644)
        .open(&path)
        .map_err(err)?;
    f.write_all(text.as_bytes()).map_err(err)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_name_only_sandbox_paths() {
        let root = HostRoot::new("/tmp/sb/");
        let o = options(&root);
        assert_eq!(o[0], "-o");
        assert_eq!(o[1], "Dir=/tmp/sb/");
        assert!(o.contains(&"DPkg::Options::=--admindir=/tmp/sb/var/lib/dpkg".to_string()));
        assert!(o.contains(&"DPkg::Options::=--log=/tmp/sb/var/log/dpkg.log".to_string()));
        for v in o.iter().skip(1).step_by(2) {
            assert!(
                !v.contains('/') || v.contains("/tmp/sb"),
                "{v} names a host path"
            );
        }
    }
}
