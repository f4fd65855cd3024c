//! The host root: a prefix for every host path Rewind reads or writes.
//!
//! On a production host it is `/`; tests and `rewind drill` point it at a sandbox tree made
//! like a GitLab host. Code never joins absolute host paths by hand: it asks the root.

use std::path::{Component, Path, PathBuf};

/// A directory standing for `/` of the GitLab host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRoot {
    base: PathBuf,
}

impl Default for HostRoot {
    fn default() -> Self {
        Self::system()
    }
}

impl HostRoot {
    /// The real host: `/`.
    pub fn system() -> Self {
        Self {
            base: PathBuf::from("/"),
        }
    }

    /// A sandbox tree standing for `/`.
    pub fn new(base: impl Into<PathBuf>) -> Self {
        Self { base: base.into() }
    }

    /// The directory standing for `/`.
    pub fn base(&self) -> &Path {
        &self.base
    }

    /// Whether this is the real host root.
    pub fn is_system(&self) -> bool {
        self.base == Path::new("/")
    }

    /// Map a host path (absolute, as GitLab names it, e.g. `/etc/gitlab/gitlab.rb`) into
    /// this root. Relative paths are taken as relative to the host's `/`. `..` components
    /// are dropped so a host path can never leave the root.
    pub fn join(&self, host_path: impl AsRef<Path>) -> PathBuf {
        let mut out = self.base.clone();
        for c in host_path.as_ref().components() {
            match c {
                Component::Normal(part) => out.push(part),
                Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
                Component::ParentDir => {}
            }
        }
        out
    }

    /// The inverse of [`HostRoot::join`]: the host path a path under this root stands for.
    /// Paths outside the root are returned unchanged.
    pub fn host_path(&self, path: &Path) -> PathBuf {
        match path.strip_prefix(&self.base) {
            Ok(rel) => Path::new("/").join(rel),
            Err(_) => path.to_path_buf(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_absolute_host_paths_under_the_base() {
        let r = HostRoot::new("/tmp/sandbox");
        assert_eq!(
            r.join("/etc/gitlab/gitlab.rb"),
            PathBuf::from("/tmp/sandbox/etc/gitlab/gitlab.rb")
        );
        assert_eq!(r.join("var/opt"), PathBuf::from("/tmp/sandbox/var/opt"));
    }

    #[test]
    fn parent_components_cannot_escape() {
        let r = HostRoot::new("/tmp/sandbox");
        assert_eq!(
            r.join("/../../etc/passwd"),
            PathBuf::from("/tmp/sandbox/etc/passwd")
        );
    }

    #[test]
    fn system_root_is_identity() {
        let r = HostRoot::system();
        assert!(r.is_system());
        assert_eq!(r.join("/etc/gitlab"), PathBuf::from("/etc/gitlab"));
        let s = HostRoot::new("/tmp/x");
        assert_eq!(
            s.host_path(Path::new("/tmp/x/var/opt")),
            PathBuf::from("/var/opt")
        );
    }
}
