//! The GitLab package on the host: which package manager installed it, which version is
//! installed, which versions the configured repositories offer, and the exact package
//! version for a GitLab version (`16.10.3-ee` → `16.10.3-ee.0`, `16.10.3-ee.0.el8`,
//! `16.10.3-ee.sles15`, ...).
//!
//! Everything runs against a [`HostRoot`]: on a sandbox root, apt and dpkg are pointed at the
//! sandbox only (see [`apt_sandbox`]), rpm/yum/dnf/zypper get `--root`/`--installroot`.

pub mod apt_sandbox;
pub mod guard;
pub mod parse;
pub mod rollback;
pub mod sandbox_repo;

use std::fmt;
use std::fs;
use std::path::PathBuf;

use serde::Serialize;

pub use parse::{Offered, PackageVersion};

use crate::exec::{self, Cmd, ExecError};
use crate::root::HostRoot;
use crate::version::{Edition, GitLabVersion};

/// A package manager that can install GitLab.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Manager {
    /// dpkg + apt (Debian, Ubuntu).
    Apt,
    /// rpm + yum (EL7, Amazon Linux 2).
    Yum,
    /// rpm + dnf (EL8+, Amazon Linux 2023).
    Dnf,
    /// rpm + zypper (SLES, openSUSE).
    Zypper,
}

impl Manager {
    /// The program that installs packages.
    pub fn program(self) -> &'static str {
        match self {
            Manager::Apt => "apt-get",
            Manager::Yum => "yum",
            Manager::Dnf => "dnf",
            Manager::Zypper => "zypper",
        }
    }

    /// Package file extension.
    pub fn file_ext(self) -> &'static str {
        match self {
            Manager::Apt => "deb",
            _ => "rpm",
        }
    }
}

impl fmt::Display for Manager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Manager::Apt => "apt/dpkg",
            Manager::Yum => "yum/rpm",
            Manager::Dnf => "dnf/rpm",
            Manager::Zypper => "zypper/rpm",
        })
    }
}

/// The OS, from `/etc/os-release` under the root.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OsRelease {
    /// `ID` (`ubuntu`, `debian`, `rhel`, `almalinux`, `amzn`, `sles`, ...).
    pub id: String,
    /// `ID_LIKE`.
    pub id_like: String,
    /// `VERSION_ID` (`22.04`, `8.9`, `2023`, `15.5`).
    pub version_id: String,
    /// `VERSION_CODENAME` (`jammy`, `bookworm`).
    pub codename: String,
}

impl OsRelease {
    /// Read `/etc/os-release` (or `/usr/lib/os-release`) under `root`.
    pub fn read(root: &HostRoot) -> OsRelease {
        let text = fs::read_to_string(root.join("/etc/os-release"))
            .or_else(|_| fs::read_to_string(root.join("/usr/lib/os-release")))
            .unwrap_or_default();
        let mut os = OsRelease::default();
        for line in text.lines() {
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            let v = v.trim().trim_matches('"').trim_matches('\'').to_string();
            match k.trim() {
                "ID" => os.id = v,
                "ID_LIKE" => os.id_like = v,
                "VERSION_ID" => os.version_id = v,
                "VERSION_CODENAME" => os.codename = v,
                _ => {}
            }
        }
        os
    }

    fn major(&self) -> &str {
        self.version_id.split('.').next().unwrap_or("")
    }

    fn is(&self, ids: &[&str]) -> bool {
        ids.contains(&self.id.as_str()) || self.id_like.split_whitespace().any(|l| ids.contains(&l))
    }

    /// GitLab's package platform tag for this OS (`el8`, `amazon2023`, `sles15`), `None` for
    /// Debian-family systems (their packages carry none).
    pub fn platform_tag(&self) -> Option<String> {
        if self.id == "amzn" {
            return Some(format!("amazon{}", self.major()));
        }
        if self.is(&["sles", "opensuse-leap", "suse", "opensuse"]) {
            return Some(format!("sles{}", self.major()));
        }
        if self.is(&["rhel", "centos", "fedora", "rocky", "almalinux", "ol"]) {
            return Some(format!("el{}", self.major()));
        }
        None
    }
}

/// The GitLab package installed on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Installed {
    /// `gitlab-ee` / `gitlab-ce`.
    pub package: String,
    pub version: PackageVersion,
}

/// The backup's version is not offered by the repositories.
#[derive(Debug, thiserror::Error)]
#[error("{package} {version} is not offered by the configured {manager} repositories. Available: {available}.\nRun `{refresh}` if the list is old; or download the package file from {url} and install it with `{install_file}`")]
pub struct Unavailable {
    pub package: String,
    pub version: GitLabVersion,
    pub manager: Manager,
    /// Versions offered, comma-separated (or `none`).
    pub available: String,
    pub refresh: String,
    pub url: String,
    pub install_file: String,
}

/// Errors about packages.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("no package manager found for {root}: neither a dpkg database (var/lib/dpkg/status) with apt-get, nor an rpm database (var/lib/rpm) with dnf, yum or zypper. Rewind rolls back Omnibus packages only; for a source install use the checklist `rewind plan` prints")]
    NoManager { root: PathBuf },
    #[error("neither gitlab-ee nor gitlab-ce is installed according to {manager} under {root}. Install the package of the backup's version by hand (see `rewind plan`), then restore")]
    NotInstalled { manager: Manager, root: PathBuf },
    #[error(transparent)]
    NotAvailable(Box<Unavailable>),
    #[error("the backup is GitLab {target} ({target_edition}; a version without -ee is CE, as GitLab's restore reads it) but {installed_package} is installed: the editions differ. GitLab restores a backup only into the edition that made it, so the rollback would install {target_edition}: pass --allow-edition-change to install it, or give the backup's version with its edition (e.g. -ee) if the backup was made on the installed edition")]
    EditionChange {
        target: GitLabVersion,
        target_edition: Edition,
        installed_package: String,
    },
    #[error("`{command}` failed (exit code {code:?}): {stderr}")]
    Query {
        command: String,
        code: Option<i32>,
        stderr: String,
    },
    #[error(transparent)]
    Exec(#[from] ExecError),
    #[error("preparing the sandbox root {path}: {source}")]
    Sandbox {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Detect the package manager that owns GitLab under `root`: a dpkg database and `apt-get`
/// → apt; an rpm database and `zypper`/`dnf`/`yum` (in that order on SUSE, else dnf before
/// yum) → that one.
pub fn detect_manager(root: &HostRoot) -> Option<Manager> {
    let os = OsRelease::read(root);
    let have = |p: &str| exec::find_program(p).is_some();
    if root.join("/var/lib/dpkg/status").is_file() && have("dpkg-query") && have("apt-get") {
        return Some(Manager::Apt);
    }
    let rpmdb = root.join("/var/lib/rpm").is_dir() || root.join("/usr/lib/sysimage/rpm").is_dir();
    if rpmdb && have("rpm") {
        let suse = os.is(&["sles", "opensuse-leap", "suse", "opensuse"]);
        if (suse || !have("dnf") && !have("yum")) && have("zypper") {
            return Some(Manager::Zypper);
        }
        if have("dnf") {
            return Some(Manager::Dnf);
        }
        if have("yum") {
            return Some(Manager::Yum);
        }
    }
    None
}

/// Arguments that point a manager at `root` (empty for the real host). For apt this is the
/// set of `-o` options from [`apt_sandbox::options`].
pub fn root_args(manager: Manager, root: &HostRoot) -> Vec<String> {
    if root.is_system() {
        return Vec::new();
    }
    let base = root.base().display().to_string();
    match manager {
        Manager::Apt => apt_sandbox::options(root),
        Manager::Yum | Manager::Dnf => vec![format!("--installroot={base}")],
        Manager::Zypper => vec!["--root".into(), base],
    }
}

/// A command of `manager`'s family (`apt-get`, `apt-cache`, `dnf`, ...) pointed at `root`.
pub fn manager_cmd(manager: Manager, program: &str, root: &HostRoot) -> Result<Cmd, PackageError> {
    let mut c = Cmd::new(program);
    if manager == Manager::Apt && !root.is_system() {
        let conf = apt_sandbox::ensure_config(root)?;
        c = c.env("APT_CONFIG", conf);
    }
    Ok(c.args(root_args(manager, root)))
}

/// The GitLab package installed under `root` (`gitlab-ee` looked up first).
pub fn installed(root: &HostRoot, manager: Manager) -> Result<Option<Installed>, PackageError> {
    for package in ["gitlab-ee", "gitlab-ce"] {
        let cmd = match manager {
            Manager::Apt => Cmd::new("dpkg-query")
                .arg(format!(
                    "--admindir={}",
                    root.join("/var/lib/dpkg").display()
                ))
                .args(["-W", "-f=${db:Status-Status} ${Version}", package]),
            _ => {
                let mut c = Cmd::new("rpm").arg("-q");
                if !root.is_system() {
                    c = c.arg("--root").arg(root.base());
                }
                c.args(["--qf", "%{VERSION}-%{RELEASE}\\n", package])
            }
        };
        let out = exec::capture(&cmd)?;
        let found = match manager {
            Manager::Apt => parse::parse_dpkg_query(&out.stdout),
            _ => parse::parse_rpm_query(&out.stdout),
        };
        if let Some(version) = found {
            return Ok(Some(Installed {
                package: package.to_string(),
                version,
            }));
        }
    }
    Ok(None)
}

/// The command listing the versions of `package` the repositories offer.
pub fn list_cmd(manager: Manager, root: &HostRoot, package: &str) -> Result<Cmd, PackageError> {
    Ok(match manager {
        Manager::Apt => manager_cmd(manager, "apt-cache", root)?.args(["madison", package]),
        Manager::Yum | Manager::Dnf => manager_cmd(manager, manager.program(), root)?.args([
            "--showduplicates",
            "list",
            package,
        ]),
        Manager::Zypper => manager_cmd(manager, "zypper", root)?.args([
            "--non-interactive",
            "search",
            "-s",
            "--match-exact",
            package,
        ]),
    })
}

/// The command refreshing the repository lists (`apt-get update`, `dnf makecache`, ...).
pub fn refresh_cmd(manager: Manager, root: &HostRoot) -> Result<Cmd, PackageError> {
    Ok(match manager {
        Manager::Apt => manager_cmd(manager, "apt-get", root)?.arg("update"),
        Manager::Yum | Manager::Dnf => {
            manager_cmd(manager, manager.program(), root)?.arg("makecache")
        }
        Manager::Zypper => {
            manager_cmd(manager, "zypper", root)?.args(["--non-interactive", "refresh"])
        }
    })
}

/// The versions of `package` the configured repositories offer, as listed by
/// [`list_cmd`]. A non-zero exit with nothing parsed is an error; an empty list is not.
pub fn available(
    manager: Manager,
    root: &HostRoot,
    package: &str,
) -> Result<Vec<Offered>, PackageError> {
    let cmd = list_cmd(manager, root, package)?;
    let out = exec::capture(&cmd)?;
    let parsed = match manager {
        Manager::Apt => parse::parse_madison(&out.stdout, package),
        Manager::Yum | Manager::Dnf => parse::parse_yum_list(&out.stdout, package),
        Manager::Zypper => parse::parse_zypper_search(&out.stdout, package),
    };
    // yum/dnf exit 1 and zypper 104 when nothing matches: that is an empty list.
    let nothing_matched = matches!(
        (manager, out.code),
        (Manager::Yum | Manager::Dnf, Some(1)) | (Manager::Zypper, Some(104))
    );
    if parsed.is_empty() && !out.success() && !nothing_matched {
        return Err(PackageError::Query {
            command: out.command,
            code: out.code,
            stderr: out.stderr.trim().to_string(),
        });
    }
    Ok(parsed)
}

/// The package version string GitLab publishes for `version` on this platform (what
/// `apt install gitlab-ee=<this>` etc. takes): `16.10.3-ee.0`, `16.10.3-ee.0.el8`,
/// `16.10.3-ee.0.amazon2023`, `16.10.3-ee.sles15`, `16.10.3-ee.0.sles12`.
pub fn expected_package_version(
    version: &GitLabVersion,
    manager: Manager,
    os: &OsRelease,
) -> String {
    let ed = version.edition_or_ce();
    let base = version.base();
    match (manager, os.platform_tag()) {
        (Manager::Apt, _) | (_, None) => format!("{base}-{ed}.0"),
        (_, Some(tag)) if tag == "sles15" => format!("{base}-{ed}.{tag}"),
        (_, Some(tag)) => format!("{base}-{ed}.0.{tag}"),
    }
}

/// Where the package file for `version` can be downloaded on packages.gitlab.com, and the
/// command that installs a downloaded file.
pub fn package_file_hint(
    version: &GitLabVersion,
    manager: Manager,
    os: &OsRelease,
) -> (String, String) {
    let ed = version.edition_or_ce();
    let package = ed.package();
    let pv = expected_package_version(version, manager, os);
    match manager {
        Manager::Apt => {
            let distro = if os.id.is_empty() { "<distro>" } else { &os.id };
            let code = if os.codename.is_empty() {
                "<codename>"
            } else {
                &os.codename
            };
            let file = format!("{package}_{pv}_amd64.deb");
            (
                format!("https://packages.gitlab.com/gitlab/{package}/packages/{distro}/{code}/{file}/download.deb"),
                format!("apt-get install -y --allow-downgrades ./{file}"),
            )
        }
        _ => {
            let (distro, rel) = match os.platform_tag() {
                Some(t) if t.starts_with("amazon") => {
                    ("amazon".to_string(), os.major().to_string())
                }
                Some(t) if t.starts_with("sles") => ("sles".to_string(), os.version_id.clone()),
                Some(_) => ("el".to_string(), os.major().to_string()),
                None => ("<distro>".to_string(), "<release>".to_string()),
            };
            let file = format!("{package}-{pv}.x86_64.rpm");
            let install = match manager {
                Manager::Zypper => {
                    format!("zypper --non-interactive install --oldpackage ./{file}")
                }
                m => format!("{} install -y ./{file}", m.program()),
            };
            (
                format!("https://packages.gitlab.com/gitlab/{package}/packages/{distro}/{rel}/{file}/download.rpm"),
                install,
            )
        }
    }
}

/// Find the offered package version for `target` (same release and edition), or explain
/// what is available and how to get the package file.
pub fn resolve(
    offered: &[Offered],
    target: &GitLabVersion,
    manager: Manager,
    root: &HostRoot,
) -> Result<Offered, PackageError> {
    let package = target.edition_or_ce().package();
    if let Some(o) = offered
        .iter()
        .find(|o| o.package == package && o.version.gitlab.same_release(target))
    {
        return Ok(o.clone());
    }
    let os = OsRelease::read(root);
    let mut list: Vec<&Offered> = offered.iter().filter(|o| o.package == package).collect();
    list.sort_by(|a, b| {
        b.version
            .gitlab
            .sort_key()
            .cmp(&a.version.gitlab.sort_key())
    });
    let available = if list.is_empty() {
        "none".to_string()
    } else {
        list.iter()
            .map(|o| o.version.raw.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (url, install_file) = package_file_hint(target, manager, &os);
    Err(PackageError::NotAvailable(Box::new(Unavailable {
        package: package.to_string(),
        version: target.clone(),
        manager,
        available,
        refresh: refresh_cmd(manager, root)
            .map(|c| c.display())
            .unwrap_or_else(|_| format!("{} update", manager.program())),
        url,
        install_file,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(id: &str, like: &str, ver: &str, code: &str) -> OsRelease {
        OsRelease {
            id: id.into(),
            id_like: like.into(),
            version_id: ver.into(),
            codename: code.into(),
        }
    }

    #[test]
    fn expected_versions_per_platform() {
        let ee: GitLabVersion = "16.10.3-ee".parse().unwrap();
        let ce: GitLabVersion = "16.10.3".parse().unwrap();
        let ubuntu = os("ubuntu", "debian", "22.04", "jammy");
        let alma = os("almalinux", "rhel centos fedora", "8.9", "");
        let amzn = os("amzn", "fedora", "2023", "");
        let sles15 = os("sles", "suse", "15.5", "");
        let sles12 = os("sles", "suse", "12.5", "");
        assert_eq!(
            expected_package_version(&ee, Manager::Apt, &ubuntu),
            "16.10.3-ee.0"
        );
        assert_eq!(
            expected_package_version(&ce, Manager::Apt, &ubuntu),
            "16.10.3-ce.0"
        );
        assert_eq!(
            expected_package_version(&ee, Manager::Dnf, &alma),
            "16.10.3-ee.0.el8"
        );
        assert_eq!(
            expected_package_version(&ee, Manager::Dnf, &amzn),
            "16.10.3-ee.0.amazon2023"
        );
        assert_eq!(
            expected_package_version(&ee, Manager::Zypper, &sles15),
            "16.10.3-ee.sles15"
        );
        assert_eq!(
            expected_package_version(&ce, Manager::Zypper, &sles12),
            "16.10.3-ce.0.sles12"
        );
        let (url, install) = package_file_hint(&ee, Manager::Apt, &ubuntu);
        assert_eq!(url, "https://packages.gitlab.com/gitlab/gitlab-ee/packages/ubuntu/jammy/gitlab-ee_16.10.3-ee.0_amd64.deb/download.deb");
        assert!(install.ends_with("./gitlab-ee_16.10.3-ee.0_amd64.deb"));
        let (url, _) = package_file_hint(&ee, Manager::Dnf, &alma);
        assert_eq!(url, "https://packages.gitlab.com/gitlab/gitlab-ee/packages/el/8/gitlab-ee-16.10.3-ee.0.el8.x86_64.rpm/download.rpm");
    }

    #[test]
    fn resolve_finds_the_exact_release_or_lists_the_offer() {
        let offered = parse::parse_yum_list(
            "Available Packages\ngitlab-ee.x86_64 16.10.2-ee.0.el8 gitlab\ngitlab-ee.x86_64 16.11.0-ee.0.el8 gitlab\ngitlab-ee.x86_64 16.10.3-ee.0.el8 gitlab\n",
            "gitlab-ee",
        );
        let root = HostRoot::new("/nonexistent-rewind-root");
        let t: GitLabVersion = "16.10.3-ee".parse().unwrap();
        let got = resolve(&offered, &t, Manager::Dnf, &root).unwrap();
        assert_eq!(got.version.raw, "16.10.3-ee.0.el8");
        let missing: GitLabVersion = "16.9.0-ee".parse().unwrap();
        let err = resolve(&offered, &missing, Manager::Dnf, &root)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("Available: 16.11.0-ee.0.el8, 16.10.3-ee.0.el8, 16.10.2-ee.0.el8"),
            "{err}"
        );
        assert!(err.contains("packages.gitlab.com"), "{err}");
        // CE target never matches EE packages.
        let ce: GitLabVersion = "16.10.3-ce".parse().unwrap();
        assert!(resolve(&offered, &ce, Manager::Dnf, &root)
            .unwrap_err()
            .to_string()
            .contains("Available: none"));
    }

    #[test]
    fn reads_os_release_under_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = HostRoot::new(dir.path());
        fs::create_dir_all(root.join("/etc")).unwrap();
        fs::write(
            root.join("/etc/os-release"),
            "NAME=\"AlmaLinux\"\nID=\"almalinux\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"9.3\"\n",
        )
        .unwrap();
        let os = OsRelease::read(&root);
        assert_eq!(os.platform_tag().as_deref(), Some("el9"));
        assert_eq!(detect_manager(&root), None);
    }
}
