//! Parsers for what package managers print, and the validated [`PackageVersion`].

use std::fmt;
use std::sync::OnceLock;

use regex::Regex;
use serde::Serialize;

use crate::version::{Edition, GitLabVersion};

/// A GitLab package version as the package manager spells it (`16.10.3-ee.0`,
/// `16.10.3-ee.0.el8`, `16.10.3-ee.sles15`, `16.10.3-ce.0`, ...), validated: it is only ever
/// built by [`PackageVersion::parse`], which accepts digits, dots, dashes and a lowercase
/// platform tag, so it is safe to pass to a package manager as one argument.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct PackageVersion {
    /// The version string exactly as the package manager prints it.
    pub raw: String,
    /// The GitLab version it packages (edition set).
    pub gitlab: GitLabVersion,
    /// Platform tag (`el8`, `amazon2023`, `sles15`), when the string has one.
    pub platform: Option<String>,
}

fn package_version_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(
            r"^(?:[0-9]{1,4}:)?([0-9]{1,6})\.([0-9]{1,6})\.([0-9]{1,6})(?:[-.]rc([0-9]{1,6}))?[-.](ee|ce)(?:\.[0-9]{1,6})?(?:\.([a-z][a-z0-9_]{0,30}))?$",
        )
        .expect("static regex")
    })
}

impl PackageVersion {
    /// Parse a package version string. `None` when it is not a GitLab package version.
    pub fn parse(raw: &str) -> Option<PackageVersion> {
        let raw = raw.trim();
        let c = package_version_re().captures(raw)?;
        let rc = c
            .get(4)
            .map(|m| format!("-rc{}", m.as_str()))
            .unwrap_or_default();
        let text = format!("{}.{}.{}{rc}-{}", &c[1], &c[2], &c[3], &c[5]);
        let gitlab: GitLabVersion = text.parse().ok()?;
        Some(PackageVersion {
            raw: raw.to_string(),
            gitlab,
            platform: c.get(6).map(|m| m.as_str().to_string()),
        })
    }

    /// Edition of the package.
    pub fn edition(&self) -> Edition {
        self.gitlab.edition_or_ce()
    }
}

impl fmt::Display for PackageVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

/// One version a repository offers (or the one installed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Offered {
    /// Package name (`gitlab-ee`).
    pub package: String,
    pub version: PackageVersion,
    /// Repository (or source line) offering it.
    pub repository: String,
    /// Whether this is the installed one (yum/dnf `Installed Packages`, zypper `i`).
    pub installed: bool,
}

/// Parse `apt-cache madison <package>`:
/// ` gitlab-ee | 16.10.3-ee.0 | https://packages.gitlab.com/gitlab/gitlab-ee/ubuntu jammy/main amd64 Packages`.
/// Lines for other packages, and versions that are not GitLab package versions, are skipped.
pub fn parse_madison(text: &str, package: &str) -> Vec<Offered> {
    let mut out: Vec<Offered> = Vec::new();
    for line in text.lines() {
        let cols: Vec<&str> = line.split('|').map(str::trim).collect();
        if cols.len() < 3 || cols[0] != package {
            continue;
        }
        let Some(version) = PackageVersion::parse(cols[1]) else {
            continue;
        };
        if out.iter().any(|o| o.version == version) {
            continue;
        }
        out.push(Offered {
            package: package.to_string(),
            version,
            repository: cols[2].to_string(),
            installed: false,
        });
    }
    out
}

/// Parse `yum --showduplicates list <package>` / `dnf --showduplicates list <package>`:
/// sections `Installed Packages` / `Available Packages` of `name.arch  version-release  repo`
/// rows (a long name wraps the rest of its row onto the next line).
pub fn parse_yum_list(text: &str, package: &str) -> Vec<Offered> {
    let mut out: Vec<Offered> = Vec::new();
    let mut installed_section = false;
    let mut pending: Option<String> = None;
    for line in text.lines() {
        let lower = line.trim().to_ascii_lowercase();
        if lower.starts_with("installed packages") {
            installed_section = true;
            continue;
        }
        if lower.starts_with("available packages") {
            installed_section = false;
            continue;
        }
        let mut fields: Vec<String> = line.split_whitespace().map(str::to_string).collect();
        if let Some(name) = pending.take() {
            if line.starts_with(char::is_whitespace) && fields.len() == 2 {
                fields.insert(0, name);
            }
        }
        if fields.len() == 1 && !line.starts_with(char::is_whitespace) {
            pending = Some(fields.remove(0));
            continue;
        }
        if fields.len() != 3 {
            continue;
        }
        let name = fields[0].rsplit_once('.').map(|(n, _arch)| n).unwrap_or("");
        if name != package {
            continue;
        }
        let Some(version) = PackageVersion::parse(&fields[1]) else {
            continue;
        };
        let repo = fields[2].clone();
        let installed = installed_section || repo.starts_with('@');
        if let Some(existing) = out.iter_mut().find(|o| o.version == version) {
            existing.installed |= installed;
            continue;
        }
        out.push(Offered {
            package: package.to_string(),
            version,
            repository: repo,
            installed,
        });
    }
    out
}

/// Parse `zypper search -s <package>`: a `|`-separated table with a header row
/// (`S | Name | Type | Version | Arch | Repository`); `i`/`i+` in the status column means
/// installed.
pub fn parse_zypper_search(text: &str, package: &str) -> Vec<Offered> {
    let mut out: Vec<Offered> = Vec::new();
    let mut header: Option<Vec<String>> = None;
    for line in text.lines() {
        if !line.contains('|') {
            continue;
        }
        let cols: Vec<&str> = line.split('|').map(str::trim).collect();
        if header.is_none() {
            if cols.iter().any(|c| c.eq_ignore_ascii_case("version"))
                && cols.iter().any(|c| c.eq_ignore_ascii_case("name"))
            {
                header = Some(cols.iter().map(|c| c.to_ascii_lowercase()).collect());
            }
            continue;
        }
        let Some(h) = &header else { continue };
        let col = |name: &str| {
            h.iter()
                .position(|c| c == name)
                .and_then(|i| cols.get(i).copied())
                .unwrap_or("")
        };
        if col("name") != package || (!col("type").is_empty() && col("type") != "package") {
            continue;
        }
        let Some(version) = PackageVersion::parse(col("version")) else {
            continue;
        };
        let installed = col("s").starts_with('i');
        if let Some(existing) = out.iter_mut().find(|o| o.version == version) {
            existing.installed |= installed;
            continue;
        }
        out.push(Offered {
            package: package.to_string(),
            version,
            repository: col("repository").to_string(),
            installed,
        });
    }
    out
}

/// Parse `dpkg-query -W -f='${db:Status-Status} ${Version}'` output: the version when the
/// status is `installed`.
pub fn parse_dpkg_query(text: &str) -> Option<PackageVersion> {
    let mut it = text.split_whitespace();
    let status = it.next()?;
    let version = it.next()?;
    (status == "installed")
        .then(|| PackageVersion::parse(version))
        .flatten()
}

/// Parse `rpm -q --qf '%{VERSION}-%{RELEASE}\n' <package>` output.
pub fn parse_rpm_query(text: &str) -> Option<PackageVersion> {
    text.lines().find_map(PackageVersion::parse)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> String {
        PackageVersion::parse(s).unwrap().gitlab.to_string()
    }

    #[test]
    fn package_versions_of_every_platform() {
        assert_eq!(v("16.10.3-ee.0"), "16.10.3-ee");
        assert_eq!(v("16.10.3-ee.0.el8"), "16.10.3-ee");
        assert_eq!(v("16.10.3-ee.0.el7"), "16.10.3-ee");
        assert_eq!(v("16.10.3-ee.0.amazon2023"), "16.10.3-ee");
        assert_eq!(v("16.10.3-ee.sles15"), "16.10.3-ee");
        assert_eq!(v("16.10.3-ee.0.sles12"), "16.10.3-ee");
        assert_eq!(v("16.10.3-ce.0"), "16.10.3-ce");
        assert_eq!(v("16.10.3-ce.0.el9"), "16.10.3-ce");
        assert_eq!(v("17.0.0-rc42.ee.0"), "17.0.0-rc42-ee");
        assert_eq!(
            PackageVersion::parse("16.10.3-ee.0.el8")
                .unwrap()
                .platform
                .as_deref(),
            Some("el8")
        );
        for bad in [
            "",
            "16.10.3",
            "16.10.3-ee.0; rm -rf /",
            "16.10.3-xe.0",
            "16.10-ee.0",
            "16.10.3-ee.0.EL8",
            "$(id)",
            "16.10.3-ee.0 ",
        ] {
            if bad.ends_with(' ') {
                // Surrounding whitespace is trimmed, not part of the version.
                assert_eq!(PackageVersion::parse(bad).unwrap().raw, bad.trim());
                continue;
            }
            assert!(PackageVersion::parse(bad).is_none(), "{bad:?} accepted");
        }
    }

    #[test]
    fn parses_apt_cache_madison() {
        let text = " gitlab-ee | 16.11.0-ee.0 | https://packages.gitlab.com/gitlab/gitlab-ee/ubuntu jammy/main amd64 Packages
 gitlab-ee | 16.10.3-ee.0 | https://packages.gitlab.com/gitlab/gitlab-ee/ubuntu jammy/main amd64 Packages
 gitlab-ee | 16.10.2-ee.0 | https://packages.gitlab.com/gitlab/gitlab-ee/ubuntu jammy/main amd64 Packages
 gitlab-ce | 16.10.3-ce.0 | https://packages.gitlab.com/gitlab/gitlab-ce/ubuntu jammy/main amd64 Packages
 gitlab-ee | 16.10.3-ee.0 | file:/srv/mirror ./ Packages
";
        let o = parse_madison(text, "gitlab-ee");
        let vs: Vec<&str> = o.iter().map(|o| o.version.raw.as_str()).collect();
        assert_eq!(vs, vec!["16.11.0-ee.0", "16.10.3-ee.0", "16.10.2-ee.0"]);
        assert!(o[0].repository.contains("jammy/main"));
        assert!(parse_madison("N: Unable to locate package gitlab-ee\n", "gitlab-ee").is_empty());
    }

    #[test]
    fn parses_yum_showduplicates_list() {
        let text = "Loaded plugins: fastestmirror, ovl
Loading mirror speeds from cached hostfile
 * base: mirror.example.org
Installed Packages
gitlab-ee.x86_64                    16.11.0-ee.0.el7                     @gitlab_gitlab-ee
Available Packages
gitlab-ee.x86_64                    16.10.2-ee.0.el7                     gitlab_gitlab-ee
gitlab-ee.x86_64                    16.10.3-ee.0.el7                     gitlab_gitlab-ee
gitlab-ee.x86_64                    16.11.0-ee.0.el7                     gitlab_gitlab-ee
gitlab-ee-debuginfo.x86_64          16.10.3-ee.0.el7                     gitlab_gitlab-ee
";
        let o = parse_yum_list(text, "gitlab-ee");
        let vs: Vec<(&str, bool)> = o
            .iter()
            .map(|o| (o.version.raw.as_str(), o.installed))
            .collect();
        assert_eq!(
            vs,
            vec![
                ("16.11.0-ee.0.el7", true),
                ("16.10.2-ee.0.el7", false),
                ("16.10.3-ee.0.el7", false),
            ]
        );
    }

    #[test]
    fn parses_dnf_showduplicates_list_with_wrapped_rows() {
        let text = "Last metadata expiration check: 0:12:41 ago on Mon 15 Apr 2024 10:02:11 AM UTC.
Installed Packages
gitlab-ee.x86_64                   16.11.0-ee.0.el8                   @gitlab_gitlab-ee
Available Packages
gitlab-ee.x86_64
                                   16.10.3-ee.0.el8                   gitlab_gitlab-ee
gitlab-ee.x86_64                   16.11.0-ee.0.el8                   gitlab_gitlab-ee
";
        let o = parse_yum_list(text, "gitlab-ee");
        assert_eq!(o.len(), 2);
        assert_eq!(o[1].version.raw, "16.10.3-ee.0.el8");
        assert_eq!(o[1].repository, "gitlab_gitlab-ee");
        assert!(o[0].installed);
        // dnf5 spells the headers in lower case.
        let text5 = "Installed packages\ngitlab-ee.x86_64 16.11.0-ee.0.amazon2023 @gitlab_gitlab-ee\nAvailable packages\ngitlab-ee.x86_64 16.10.3-ee.0.amazon2023 gitlab_gitlab-ee\n";
        let o = parse_yum_list(text5, "gitlab-ee");
        assert_eq!(o.len(), 2);
        assert!(o[0].installed && !o[1].installed);
        assert_eq!(o[1].version.platform.as_deref(), Some("amazon2023"));
    }

    #[test]
    fn parses_zypper_search() {
        let text = "Loading repository data...
Reading installed packages...

S  | Name      | Type    | Version           | Arch   | Repository
---+-----------+---------+-------------------+--------+-----------------
i+ | gitlab-ee | package | 16.11.0-ee.sles15 | x86_64 | gitlab_gitlab-ee
v  | gitlab-ee | package | 16.10.3-ee.sles15 | x86_64 | gitlab_gitlab-ee
v  | gitlab-ee | package | 16.10.2-ee.sles15 | x86_64 | gitlab_gitlab-ee
   | gitlab-ee-debuginfo | package | 16.10.3-ee.sles15 | x86_64 | gitlab_gitlab-ee
";
        let o = parse_zypper_search(text, "gitlab-ee");
        let vs: Vec<(&str, bool)> = o
            .iter()
            .map(|o| (o.version.raw.as_str(), o.installed))
            .collect();
        assert_eq!(
            vs,
            vec![
                ("16.11.0-ee.sles15", true),
                ("16.10.3-ee.sles15", false),
                ("16.10.2-ee.sles15", false),
            ]
        );
        let sles12 = "S | Name | Type | Version | Arch | Repository\n--+---\n  | gitlab-ce | package | 16.10.3-ce.0.sles12 | x86_64 | gitlab_gitlab-ce\n";
        let o = parse_zypper_search(sles12, "gitlab-ce");
        assert_eq!(o[0].version.gitlab.to_string(), "16.10.3-ce");
        assert!(parse_zypper_search("No matching items found.\n", "gitlab-ee").is_empty());
    }

    #[test]
    fn parses_installed_queries() {
        assert_eq!(
            parse_dpkg_query("installed 16.11.0-ee.0").unwrap().raw,
            "16.11.0-ee.0"
        );
        assert!(parse_dpkg_query("config-files 16.11.0-ee.0").is_none());
        assert!(parse_dpkg_query("").is_none());
        assert_eq!(
            parse_rpm_query("16.11.0-ee.0.el8\n").unwrap().raw,
            "16.11.0-ee.0.el8"
        );
        assert!(parse_rpm_query("package gitlab-ee is not installed\n").is_none());
    }
}
