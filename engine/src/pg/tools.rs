//! Finding PostgreSQL client binaries (`pg_dump`, `pg_restore`, `psql`) whose major version
//! matches a server.
//!
//! A `pg_dump` older than the server refuses to dump it, and a newer one writes archives
//! an older `pg_restore` cannot read, so Rewind looks for the exact major version, in the
//! order an Omnibus host makes most likely: GitLab's embedded binaries (under `--root`),
//! then the distribution's PostgreSQL directories, then `PATH`. Every candidate is checked
//! by running it with `--version` (argv only), never trusted by its directory name.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Serialize;

use crate::root::HostRoot;

/// A client binary that was found and whose version was checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PgTool {
    /// Path of the executable (a real path on this machine, i.e. already under `--root`).
    pub path: PathBuf,
    /// Major version it reported (`15`).
    pub major: u32,
    /// Its `--version` line, e.g. `pg_dump (PostgreSQL) 15.8`.
    pub version_line: String,
}

/// Errors finding a client binary.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("no {tool} of PostgreSQL {major} found (looked in {searched}; found other versions: {others}). Install the PostgreSQL {major} client (e.g. `apt-get install postgresql-client-{major}`) or put its bin directory on PATH")]
    NotFound {
        tool: String,
        major: u32,
        searched: String,
        others: String,
    },
    #[error("no PostgreSQL server of version {major} or newer to restore the dump into (looked for initdb and pg_ctl in {searched}; found: {others}). Install the PostgreSQL {major} server package (e.g. `apt-get install postgresql-{major}`) or set REWIND_PG_BIN to its bin directory")]
    NoServer {
        major: u32,
        searched: String,
        others: String,
    },
}

/// Major version from a `server_version_num` (`150008` → 15; `90624` → 9, the first
/// number of a pre-10 version, which is what `pg_dump --version` is compared with).
pub fn major_from_version_num(num: u32) -> u32 {
    num / 10_000
}

/// Parse the major version of a `pg_dump --version` line: `pg_dump (PostgreSQL) 15.8
/// (Debian 15.8-1.pgdg120+1)` → 15; `pg_dump (PostgreSQL) 9.6.24` → 9.
pub fn parse_version_line(line: &str) -> Option<u32> {
    let rest = line.split(')').nth(1)?.trim();
    let ver = rest.split_whitespace().next()?;
    let major = ver
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    Some(major)
}

/// Directories to search for `major`, in order.
pub fn candidate_dirs(root: &HostRoot, major: u32) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os("REWIND_PG_BIN") {
        dirs.push(PathBuf::from(d));
    }
    dirs.push(root.join(format!("/opt/gitlab/embedded/postgresql/{major}/bin")));
    dirs.push(root.join(crate::detect::omnibus::EMBEDDED_BIN));
    let system = [
        format!("/usr/lib/postgresql/{major}/bin"),
        format!("/usr/pgsql-{major}/bin"),
    ];
    for s in &system {
        if !root.is_system() {
            dirs.push(root.join(s));
        }
        dirs.push(PathBuf::from(s));
    }
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    let mut seen = std::collections::HashSet::new();
    dirs.retain(|d| seen.insert(d.clone()));
    dirs
}

/// Run `<exe> --version` and return its first line.
pub fn version_line(exe: &Path) -> Option<String> {
    let out = Command::new(exe)
        .arg("--version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .map(|l| l.trim().to_string())
}

/// Find `tool` (`pg_dump`, `pg_restore`, `psql`) of PostgreSQL `major`.
pub fn find_tool(root: &HostRoot, tool: &str, major: u32) -> Result<PgTool, ToolError> {
    let dirs = candidate_dirs(root, major);
    let mut others = Vec::new();
    for dir in &dirs {
        let exe = dir.join(tool);
        if !exe.is_file() {
            continue;
        }
        let Some(line) = version_line(&exe) else {
            others.push(format!("{} (did not run)", exe.display()));
            continue;
        };
        match parse_version_line(&line) {
            Some(m) if m == major => {
                return Ok(PgTool {
                    path: exe,
                    major: m,
                    version_line: line,
                })
            }
            Some(m) => others.push(format!("{} ({m})", exe.display())),
            None => others.push(format!("{} ({line})", exe.display())),
        }
    }
    Err(ToolError::NotFound {
        tool: tool.to_string(),
        major,
        searched: dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        others: if others.is_empty() {
            "none".into()
        } else {
            others.join(", ")
        },
    })
}

/// PostgreSQL server binaries (`initdb`, `pg_ctl`, `postgres`) found for a throwaway
/// cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerBin {
    /// The bin directory (a real path on this machine).
    pub dir: PathBuf,
    pub major: u32,
    /// `initdb --version`.
    pub version_line: String,
}

/// Directories that may hold server binaries, in order: `REWIND_PG_BIN`, GitLab's
/// embedded PostgreSQL (under `--root`), the distribution's `/usr/lib/postgresql/*/bin`
/// and `/usr/pgsql-*/bin` (under `--root`, then this machine's).
fn server_dirs(root: &HostRoot) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os("REWIND_PG_BIN") {
        dirs.push(PathBuf::from(d));
    }
    let globbed = |parent: PathBuf, prefix: &str, dirs: &mut Vec<PathBuf>| {
        let Ok(rd) = std::fs::read_dir(&parent) else {
            return;
        };
        let mut found: Vec<(u32, PathBuf)> = rd
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().to_string();
                let major = name.strip_prefix(prefix)?.parse::<u32>().ok()?;
                Some((major, e.path().join("bin")))
            })
            .collect();
        found.sort();
        dirs.extend(found.into_iter().map(|(_, d)| d));
    };
    globbed(root.join("/opt/gitlab/embedded/postgresql"), "", &mut dirs);
    dirs.push(root.join(crate::detect::omnibus::EMBEDDED_BIN));
    let mut bases = vec![PathBuf::from("/")];
    if !root.is_system() {
        bases.insert(0, root.base().to_path_buf());
    }
    for base in bases {
        globbed(base.join("usr/lib/postgresql"), "", &mut dirs);
        globbed(base.join("usr"), "pgsql-", &mut dirs);
    }
    let mut seen = std::collections::HashSet::new();
    dirs.retain(|d| seen.insert(d.clone()));
    dirs
}

/// Server binaries of PostgreSQL `min_major` or newer (the nearest major wins: the one
/// closest to the server the dump came from); every candidate is checked by running
/// `initdb --version`.
pub fn find_server_bin(root: &HostRoot, min_major: u32) -> Result<ServerBin, ToolError> {
    let dirs = server_dirs(root);
    let mut best: Option<ServerBin> = None;
    let mut others = Vec::new();
    for dir in &dirs {
        if !(dir.join("initdb").is_file() && dir.join("pg_ctl").is_file()) {
            continue;
        }
        let Some(line) = version_line(&dir.join("initdb")) else {
            others.push(format!("{} (initdb did not run)", dir.display()));
            continue;
        };
        match parse_version_line(&line) {
            Some(m) if m >= min_major => {
                if best.as_ref().is_none_or(|b| m < b.major) {
                    best = Some(ServerBin {
                        dir: dir.clone(),
                        major: m,
                        version_line: line,
                    });
                }
            }
            Some(m) => others.push(format!("{} ({m})", dir.display())),
            None => others.push(format!("{} ({line})", dir.display())),
        }
    }
    best.ok_or_else(|| ToolError::NoServer {
        major: min_major,
        searched: dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        others: if others.is_empty() {
            "none".into()
        } else {
            others.join(", ")
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn parses_version_lines() {
        assert_eq!(
            parse_version_line("pg_dump (PostgreSQL) 15.8 (Debian 15.8-1.pgdg120+1)"),
            Some(15)
        );
        assert_eq!(parse_version_line("pg_dump (PostgreSQL) 9.6.24"), Some(9));
        assert_eq!(parse_version_line("pg_dump (PostgreSQL) 17beta1"), Some(17));
        assert_eq!(parse_version_line("garbage"), None);
        assert_eq!(major_from_version_num(150008), 15);
        assert_eq!(major_from_version_num(90624), 9);
    }

    #[test]
    fn finds_the_matching_major_and_skips_impostors() {
        let server = crate::pg::cluster::find_server_bin_dir().expect("PostgreSQL installed");
        let line = version_line(&server.join("pg_dump")).unwrap();
        let major = parse_version_line(&line).unwrap();
        // A sandbox root whose embedded bin has a pg_dump reporting another version.
        let dir = tempfile::tempdir().unwrap();
        let root = HostRoot::new(dir.path());
        let emb = root.join("/opt/gitlab/embedded/bin");
        std::fs::create_dir_all(&emb).unwrap();
        let fake = emb.join("pg_dump");
        std::fs::write(
            &fake,
            format!("#!/bin/sh\necho 'pg_dump (PostgreSQL) {}.1'\n", major + 1),
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let t = find_tool(&root, "pg_dump", major).unwrap();
        assert_eq!(t.major, major);
        assert_ne!(t.path, fake);
        // Asking for the impostor's version finds it.
        let t = find_tool(&root, "pg_dump", major + 1).unwrap();
        assert_eq!(t.path, fake);
        // A version nobody has: a clear error naming the places searched.
        let err = find_tool(&root, "pg_dump", 3).unwrap_err().to_string();
        assert!(err.contains("PostgreSQL 3"), "{err}");
        assert!(err.contains("/opt/gitlab/embedded/bin"), "{err}");
    }

    #[test]
    fn finds_server_binaries_of_the_dumps_major_or_newer() {
        let server = crate::pg::cluster::find_server_bin_dir().expect("PostgreSQL installed");
        let major = parse_version_line(&version_line(&server.join("initdb")).unwrap()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let root = HostRoot::new(dir.path());
        let found = find_server_bin(&root, major - 1).unwrap();
        assert_eq!(found.major, major);
        assert!(found.dir.join("pg_ctl").is_file());
        let err = find_server_bin(&root, major + 1).unwrap_err().to_string();
        assert!(err.contains(&format!("PostgreSQL {}", major + 1)), "{err}");
        assert!(err.contains(&format!("({major})")), "{err}");
    }
}
