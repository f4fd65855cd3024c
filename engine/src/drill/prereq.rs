//! What the drill needs on the machine, checked before anything is built, each missing
//! piece named with the package that provides it.

use std::path::Path;

use crate::pg::cluster;

/// A missing prerequisite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    pub what: &'static str,
    pub package: &'static str,
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false)
        || Path::new("/usr/sbin").join(tool).is_file()
        || Path::new("/sbin").join(tool).is_file()
}

/// Check the tools the drill uses. Empty when everything is there.
pub fn check(needs_packages: bool) -> Vec<Missing> {
    let mut missing = Vec::new();
    if cluster::find_server_bin_dir().is_err() {
        missing.push(Missing {
            what: "PostgreSQL server binaries (initdb, pg_ctl, postgres, pg_dump)",
            package: "postgresql",
        });
    }
    if cluster::running_as_root() && !on_path("runuser") {
        missing.push(Missing {
            what: "runuser (to run PostgreSQL as the postgres user)",
            package: "util-linux",
        });
    }
    if !on_path("tar") {
        missing.push(Missing {
            what: "GNU tar",
            package: "tar",
        });
    }
    if !on_path("git") {
        missing.push(Missing {
            what: "git (makes the sandbox's repositories and their backup bundles)",
            package: "git",
        });
    }
    if needs_packages {
        for (tool, package) in [("dpkg", "dpkg"), ("dpkg-deb", "dpkg"), ("apt-get", "apt")] {
            if !on_path(tool) {
                missing.push(Missing {
                    what: match tool {
                        "dpkg" => "dpkg (the sandbox's package database)",
                        "dpkg-deb" => "dpkg-deb (builds the stand-in gitlab-ee packages)",
                        _ => "apt-get (installs the older package in the sandbox)",
                    },
                    package,
                });
            }
        }
    }
    missing
}

/// One message naming every missing piece and the packages to install.
pub fn message(missing: &[Missing]) -> String {
    let mut pkgs: Vec<&str> = missing.iter().map(|m| m.package).collect();
    pkgs.sort();
    pkgs.dedup();
    let what: Vec<&str> = missing.iter().map(|m| m.what).collect();
    format!(
        "the drill needs {} which this machine lacks; install with `apt-get install {}` (Debian/Ubuntu) and run it again",
        what.join(", "),
        pkgs.join(" ")
    )
}
