//! GitLab version strings, parsed into a type.
//!
//! Accepted: `MAJOR.MINOR.PATCH`, optionally followed by `-pre` or `-rcN` (also `.rcN`, as
//! GitLab's backup-file regex allows), then optionally `-ee` or `-ce`. Examples:
//! `16.10.3`, `16.10.3-ee`, `17.0.0-rc42-ee`, `16.11.0-pre`. Anything else is rejected:
//! a version string is never passed on to a shell or a package manager unparsed.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// GitLab edition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Edition {
    /// Enterprise Edition (`-ee`, package `gitlab-ee`).
    Ee,
    /// Community Edition (`-ce` or no suffix, package `gitlab-ce`).
    Ce,
}

impl Edition {
    /// Package name of this edition.
    pub fn package(self) -> &'static str {
        match self {
            Edition::Ee => "gitlab-ee",
            Edition::Ce => "gitlab-ce",
        }
    }

    /// The suffix letters (`ee`/`ce`).
    pub fn as_str(self) -> &'static str {
        match self {
            Edition::Ee => "ee",
            Edition::Ce => "ce",
        }
    }
}

impl fmt::Display for Edition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Pre-release marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Pre {
    /// `-rcN`
    Rc(u32),
    /// `-pre`
    Pre,
}

/// A parsed GitLab version.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GitLabVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
    pub pre: Option<Pre>,
    /// Edition suffix as written; `None` when the string had none (current CE, or a
    /// version given without edition).
    pub edition: Option<Edition>,
}

/// Why a version string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{input}` is not a GitLab version ({reason}); expected MAJOR.MINOR.PATCH with an optional -rcN/-pre and -ee/-ce suffix, e.g. 16.10.3-ee")]
pub struct VersionError {
    pub input: String,
    pub reason: &'static str,
}

fn parse_num(s: &str, input: &str) -> Result<u32, VersionError> {
    if s.is_empty() || s.len() > 6 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(VersionError {
            input: input.to_string(),
            reason: "each of major, minor and patch must be a number",
        });
    }
    s.parse().map_err(|_| VersionError {
        input: input.to_string(),
        reason: "number out of range",
    })
}

impl FromStr for GitLabVersion {
    type Err = VersionError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let s = input.trim();
        if s.is_empty() {
            return Err(VersionError {
                input: input.to_string(),
                reason: "empty",
            });
        }
        if s.len() > 40
            || !s
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        {
            return Err(VersionError {
                input: input.to_string(),
                reason: "only digits, letters, dots and dashes are allowed",
            });
        }
        let mut rest = s;
        let mut edition = None;
        for (suffix, ed) in [("-ee", Edition::Ee), ("-ce", Edition::Ce)] {
            if let Some(r) = rest.strip_suffix(suffix) {
                rest = r;
                edition = Some(ed);
                break;
            }
        }
        let mut pre = None;
        if let Some(r) = rest.strip_suffix("-pre") {
            rest = r;
            pre = Some(Pre::Pre);
        } else if let Some(idx) = rest.rfind("rc") {
            let (head, tail) = rest.split_at(idx);
            let n = &tail[2..];
            if let Some(h) = head.strip_suffix('-').or_else(|| head.strip_suffix('.')) {
                pre = Some(Pre::Rc(parse_num(n, input)?));
                rest = h;
            }
        }
        let parts: Vec<&str> = rest.split('.').collect();
        if parts.len() != 3 {
            return Err(VersionError {
                input: input.to_string(),
                reason: "expected three dot-separated numbers",
            });
        }
        Ok(GitLabVersion {
            major: parse_num(parts[0], input)?,
            minor: parse_num(parts[1], input)?,
            patch: parse_num(parts[2], input)?,
            pre,
            edition,
        })
    }
}

impl GitLabVersion {
    /// `16.10.3` (no pre-release, no edition).
    pub fn numeric(&self) -> String {
        format!("{}.{}.{}", self.major, self.minor, self.patch)
    }

    /// The version without its edition suffix: `16.10.3`, `17.0.0-rc42`.
    pub fn base(&self) -> String {
        let mut s = self.numeric();
        match self.pre {
            Some(Pre::Rc(n)) => s.push_str(&format!("-rc{n}")),
            Some(Pre::Pre) => s.push_str("-pre"),
            None => {}
        }
        s
    }

    /// The same version with an edition set.
    pub fn with_edition(&self, edition: Edition) -> Self {
        Self {
            edition: Some(edition),
            ..self.clone()
        }
    }

    /// Edition, treating no suffix as CE (GitLab's own convention for current CE).
    pub fn edition_or_ce(&self) -> Edition {
        self.edition.unwrap_or(Edition::Ce)
    }

    /// Equality as GitLab's restore precondition needs it: same numbers, pre-release and
    /// edition, where a missing suffix means CE.
    pub fn same_release(&self, other: &GitLabVersion) -> bool {
        self.major == other.major
            && self.minor == other.minor
            && self.patch == other.patch
            && self.pre == other.pre
            && self.edition_or_ce() == other.edition_or_ce()
    }

    /// Ordering key ignoring the edition (pre-releases sort before the release).
    pub fn sort_key(&self) -> (u32, u32, u32, u32) {
        let p = match self.pre {
            Some(Pre::Pre) => 0,
            Some(Pre::Rc(n)) => 1 + n.min(u32::MAX - 2),
            None => u32::MAX,
        };
        (self.major, self.minor, self.patch, p)
    }
}

impl fmt::Display for GitLabVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.base())?;
        if let Some(e) = self.edition {
            write!(f, "-{e}")?;
        }
        Ok(())
    }
}

impl Serialize for GitLabVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for GitLabVersion {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_gitlab_writes() {
        let v: GitLabVersion = "16.10.3-ee".parse().unwrap();
        assert_eq!((v.major, v.minor, v.patch), (16, 10, 3));
        assert_eq!(v.edition, Some(Edition::Ee));
        assert_eq!(v.to_string(), "16.10.3-ee");
        let v: GitLabVersion = "15.1.0".parse().unwrap();
        assert_eq!(v.edition, None);
        assert_eq!(v.edition_or_ce(), Edition::Ce);
        let v: GitLabVersion = "17.0.0-rc42-ee".parse().unwrap();
        assert_eq!(v.pre, Some(Pre::Rc(42)));
        assert_eq!(v.to_string(), "17.0.0-rc42-ee");
        let v: GitLabVersion = "10.6.4.rc1-ce".parse().unwrap();
        assert_eq!(v.pre, Some(Pre::Rc(1)));
        let v: GitLabVersion = "16.11.0-pre".parse().unwrap();
        assert_eq!(v.pre, Some(Pre::Pre));
    }

    #[test]
    fn rejects_everything_else() {
        for bad in [
            "",
            "16",
            "16.10",
            "16.10.3.4",
            "16.10.x",
            "v16.10.3",
            "16.10.3-ee; rm -rf /",
            "16.10.3 ee",
            "16.10.3-xe",
            "$(id)",
            "1234567.1.1",
            "-1.2.3",
        ] {
            assert!(bad.parse::<GitLabVersion>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn release_equality_treats_missing_suffix_as_ce() {
        let a: GitLabVersion = "16.10.3".parse().unwrap();
        let b: GitLabVersion = "16.10.3-ce".parse().unwrap();
        let c: GitLabVersion = "16.10.3-ee".parse().unwrap();
        assert!(a.same_release(&b));
        assert!(!a.same_release(&c));
        let d: GitLabVersion = "16.11.0-ee".parse().unwrap();
        assert!(d.sort_key() > c.sort_key());
    }
}
