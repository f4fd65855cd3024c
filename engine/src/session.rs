//! The wizard's session file: where a recovery stands, kept next to the journal (`0600`),
//! so a wizard killed by an SSH drop resumes at the right step when started again.
//!
//! Resume rules ([`Session::resume_point`]):
//! - refuse when the backup file changed (missing, other size or modification time) or
//!   the installed GitLab version is not the one recorded after the last step, and say which;
//! - a restore interrupted after the drop began restarts from the drop, and the safety
//!   snapshot already taken is not taken again;
//! - otherwise continue at the first step not finished.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use crate::safefs::SafeError;

use serde::{Deserialize, Serialize};

use crate::version::GitLabVersion;

/// File name of the session in the journal directory.
pub const FILE_NAME: &str = "wizard-session.json";

/// Errors reading or writing the session file.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("cannot write the wizard session {path}: {source}. Free space or fix permissions on that directory")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the wizard session {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the wizard session {path} is damaged ({detail}); move it aside to start over")]
    Parse { path: PathBuf, detail: String },
    #[error(transparent)]
    Safe(#[from] SafeError),
}

/// The backup file as it was when the session started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupIdentity {
    /// Path of the archive on this machine.
    pub path: PathBuf,
    pub size: u64,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
}

impl BackupIdentity {
    /// Read the identity of a backup file.
    pub fn of(path: &Path) -> std::io::Result<BackupIdentity> {
        let m = fs::metadata(path)?;
        Ok(BackupIdentity {
            path: path.to_path_buf(),
            size: m.len(),
            mtime: m.mtime(),
        })
    }
}

/// Steps of the recovery the session tracks, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionStep {
    Preflight,
    StopServices,
    RollbackPackage,
    SafetySnapshot,
    Drop,
    Restore,
    Verify,
    StartServices,
    Done,
}

impl SessionStep {
    /// Words for screens.
    pub fn label(self) -> &'static str {
        match self {
            SessionStep::Preflight => "preflight checks",
            SessionStep::StopServices => "services stopped",
            SessionStep::RollbackPackage => "package rolled back",
            SessionStep::SafetySnapshot => "safety snapshot taken",
            SessionStep::Drop => "tables dropped",
            SessionStep::Restore => "backup restored",
            SessionStep::Verify => "restore verified",
            SessionStep::StartServices => "services started",
            SessionStep::Done => "done",
        }
    }
}

/// One finished step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoneStep {
    pub step: SessionStep,
    /// RFC 3339 UTC.
    pub at: String,
    /// What it did, in words (commands, paths, counts).
    pub summary: String,
}

/// The session state saved after every step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// RFC 3339 UTC time the session started.
    pub started: String,
    pub backup: BackupIdentity,
    /// The version the backup was made on.
    pub target_version: Option<GitLabVersion>,
    /// The installed version as of the last saved step.
    pub installed_version: Option<GitLabVersion>,
    /// The database restored into.
    pub database: Option<String>,
    /// Finished steps, in order.
    pub done: Vec<DoneStep>,
    /// Steps begun and not finished (a kill leaves its step here).
    pub in_progress: Option<SessionStep>,
    /// The safety snapshots taken, by database (paths on this machine).
    #[serde(default)]
    pub snapshots: BTreeMap<String, PathBuf>,
    /// The user declined the safety snapshot (after the second warning).
    pub snapshot_declined: bool,
}

/// Where a resumed session continues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumePoint {
    /// The first step to run.
    pub step: SessionStep,
    /// Why here, in words.
    pub reason: String,
    /// The snapshots already taken, by database (not taken again).
    pub snapshots: BTreeMap<String, PathBuf>,
}

/// Why a session cannot be resumed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    BackupMissing {
        path: PathBuf,
    },
    BackupChanged {
        path: PathBuf,
        detail: String,
    },
    VersionChanged {
        recorded: Option<GitLabVersion>,
        now: Option<GitLabVersion>,
    },
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = |v: &Option<GitLabVersion>| {
            v.as_ref()
                .map(|v| v.to_string())
                .unwrap_or_else(|| "unknown".into())
        };
        match self {
            Mismatch::BackupMissing { path } => {
                write!(f, "the backup file {} is gone", path.display())
            }
            Mismatch::BackupChanged { path, detail } => {
                write!(f, "the backup file {} changed: {detail}", path.display())
            }
            Mismatch::VersionChanged { recorded, now } => write!(
                f,
                "the installed GitLab version changed: {} when the session was saved, {} now",
                v(recorded),
                v(now)
            ),
        }
    }
}

impl Session {
    /// A new session for a backup.
    pub fn new(
        backup: BackupIdentity,
        target_version: Option<GitLabVersion>,
        installed_version: Option<GitLabVersion>,
        database: Option<String>,
    ) -> Session {
        Session {
            started: now(),
            backup,
            target_version,
            installed_version,
            database,
            done: Vec::new(),
            in_progress: None,
            snapshots: BTreeMap::new(),
            snapshot_declined: false,
        }
    }

    /// Path of the session file in a journal directory.
    pub fn path_in(journal_dir: &Path) -> PathBuf {
        journal_dir.join(FILE_NAME)
    }

    /// Load the session in `journal_dir`, if there is one. The directory and the file are
    /// opened without following links and refused, naming the path, when either is a link
    /// or not owned by the user running Rewind: a planted session could claim a snapshot.
    pub fn load(journal_dir: &Path) -> Result<Option<Session>, SessionError> {
        let path = Self::path_in(journal_dir);
        let Some(mut file) = crate::journal::open_private_file(journal_dir, FILE_NAME)? else {
            return Ok(None);
        };
        let mut text = String::new();
        file.read_to_string(&mut text)
            .map_err(|source| SessionError::Read {
                path: path.clone(),
                source,
            })?;
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| SessionError::Parse {
                path,
                detail: e.to_string(),
            })
    }

    /// Save atomically (temp file + rename in the directory's handle), mode `0600` set on
    /// the file's handle, directory `0700`; nothing is followed through a link.
    pub fn save(&self, journal_dir: &Path) -> Result<PathBuf, SessionError> {
        let path = Self::path_in(journal_dir);
        let werr = |source| SessionError::Write {
            path: path.clone(),
            source,
        };
        let dfd = crate::journal::open_private_dir(journal_dir, true)?.expect("created");
        let tmp = format!(".{FILE_NAME}.tmp");
        let text = serde_json::to_vec_pretty(self).map_err(|e| werr(e.into()))?;
        match nix::unistd::unlinkat(&dfd, tmp.as_str(), nix::unistd::UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(nix::errno::Errno::ENOENT) => {}
            Err(e) => return Err(werr(e.into())),
        }
        {
            let fd = nix::fcntl::openat(
                &dfd,
                tmp.as_str(),
                OFlag::O_WRONLY
                    | OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o600),
            )
            .map_err(|e| werr(e.into()))?;
            nix::sys::stat::fchmod(&fd, Mode::from_bits_truncate(0o600))
                .map_err(|e| werr(e.into()))?;
            let mut f = fs::File::from(fd);
            f.write_all(&text).map_err(werr)?;
            f.sync_all().map_err(werr)?;
        }
        nix::fcntl::renameat(&dfd, tmp.as_str(), &dfd, FILE_NAME).map_err(|e| werr(e.into()))?;
        Ok(path)
    }

    /// Remove the session file (the recovery finished or was abandoned on purpose).
    pub fn remove(journal_dir: &Path) -> Result<(), SessionError> {
        let path = Self::path_in(journal_dir);
        let Some(dfd) = crate::journal::open_private_dir(journal_dir, false)? else {
            return Ok(());
        };
        match nix::unistd::unlinkat(&dfd, FILE_NAME, nix::unistd::UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(nix::errno::Errno::ENOENT) => Ok(()),
            Err(e) => Err(SessionError::Write {
                path,
                source: e.into(),
            }),
        }
    }

    /// Mark a step begun.
    pub fn begin(&mut self, step: SessionStep) {
        self.in_progress = Some(step);
    }

    /// Mark a step finished.
    pub fn finish(&mut self, step: SessionStep, summary: impl Into<String>) {
        if self.in_progress == Some(step) {
            self.in_progress = None;
        }
        self.done.retain(|d| d.step != step);
        self.done.push(DoneStep {
            step,
            at: now(),
            summary: summary.into(),
        });
    }

    /// Whether a step is finished.
    pub fn is_done(&self, step: SessionStep) -> bool {
        self.done.iter().any(|d| d.step == step)
    }

    /// Whether anything destructive began (after this, going back is closed).
    pub fn destructive_begun(&self) -> bool {
        self.is_done(SessionStep::RollbackPackage)
            || self.is_done(SessionStep::Drop)
            || matches!(
                self.in_progress,
                Some(SessionStep::Drop | SessionStep::Restore | SessionStep::RollbackPackage)
            )
    }

    /// Check that the world still matches the session, and say where to continue.
    pub fn resume_point(
        &self,
        backup_now: Option<&BackupIdentity>,
        installed_now: Option<&GitLabVersion>,
    ) -> Result<ResumePoint, Vec<Mismatch>> {
        let mut problems = Vec::new();
        match backup_now {
            None => problems.push(Mismatch::BackupMissing {
                path: self.backup.path.clone(),
            }),
            Some(b) => {
                let mut what = Vec::new();
                if b.size != self.backup.size {
                    what.push(format!("size {} -> {}", self.backup.size, b.size));
                }
                if b.mtime != self.backup.mtime {
                    what.push("modification time differs".to_string());
                }
                if !what.is_empty() {
                    problems.push(Mismatch::BackupChanged {
                        path: self.backup.path.clone(),
                        detail: what.join(", "),
                    });
                }
            }
        }
        let same = match (&self.installed_version, installed_now) {
            (Some(a), Some(b)) => a.same_release(b),
            (None, None) => true,
            _ => false,
        };
        // An interrupted rollback may legitimately have changed the version: then resume
        // at the rollback, which re-detects.
        let rollback_interrupted = self.in_progress == Some(SessionStep::RollbackPackage);
        if !same && !rollback_interrupted {
            problems.push(Mismatch::VersionChanged {
                recorded: self.installed_version.clone(),
                now: installed_now.cloned(),
            });
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let snapshots = self.snapshots.clone();
        let interrupted_restore = matches!(
            self.in_progress,
            Some(SessionStep::Drop | SessionStep::Restore)
        ) || (self.is_done(SessionStep::Drop)
            && !self.is_done(SessionStep::Restore));
        if interrupted_restore {
            return Ok(ResumePoint {
                step: SessionStep::Drop,
                reason:
                    "the restore was interrupted after the drop began: it restarts from the drop"
                        .into(),
                snapshots,
            });
        }
        let order = [
            SessionStep::Preflight,
            SessionStep::StopServices,
            SessionStep::RollbackPackage,
            SessionStep::SafetySnapshot,
            SessionStep::Drop,
            SessionStep::Restore,
            SessionStep::Verify,
            SessionStep::StartServices,
            SessionStep::Done,
        ];
        let next = order
            .iter()
            .copied()
            .find(|s| {
                let declined = *s == SessionStep::SafetySnapshot && self.snapshot_declined;
                !self.is_done(*s) && !declined
            })
            .unwrap_or(SessionStep::Done);
        let step = next;
        Ok(ResumePoint {
            reason: match self.in_progress {
                Some(s) if s == step => format!("{} was interrupted: it runs again", s.label()),
                _ => format!("continues with: {}", step_words(step)),
            },
            step,
            snapshots,
        })
    }
}

fn step_words(step: SessionStep) -> &'static str {
    match step {
        SessionStep::Preflight => "the preflight checks",
        SessionStep::StopServices => "stopping the services",
        SessionStep::RollbackPackage => "rolling back the package",
        SessionStep::SafetySnapshot => "the safety snapshot",
        SessionStep::Drop => "the drop and the restore",
        SessionStep::Restore => "the restore",
        SessionStep::Verify => "verifying the restore",
        SessionStep::StartServices => "starting the services",
        SessionStep::Done => "the summary",
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn v(s: &str) -> GitLabVersion {
        s.parse().unwrap()
    }

    fn session(dir: &Path) -> (Session, PathBuf) {
        let archive = dir.join("1700000000_2026_11_20_16.10.3-ee_gitlab_backup.tar");
        fs::write(&archive, b"tar bytes").unwrap();
        let s = Session::new(
            BackupIdentity::of(&archive).unwrap(),
            Some(v("16.10.3-ee")),
            Some(v("16.11.1-ee")),
            Some("gitlabhq_production".into()),
        );
        (s, archive)
    }

    #[test]
    fn saves_private_and_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = session(dir.path());
        s.finish(SessionStep::Preflight, "5 checks");
        let jdir = dir.path().join("rewind");
        let p = s.save(&jdir).unwrap();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(Session::load(&jdir).unwrap(), Some(s));
        Session::remove(&jdir).unwrap();
        assert_eq!(Session::load(&jdir).unwrap(), None);
        fs::write(Session::path_in(&jdir), "{").unwrap();
        assert!(matches!(
            Session::load(&jdir),
            Err(SessionError::Parse { .. })
        ));
    }

    #[test]
    fn continues_at_the_first_unfinished_step() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, archive) = session(dir.path());
        s.finish(SessionStep::Preflight, "ok");
        s.finish(SessionStep::StopServices, "puma, sidekiq");
        let id = BackupIdentity::of(&archive).unwrap();
        let p = s.resume_point(Some(&id), Some(&v("16.11.1-ee"))).unwrap();
        assert_eq!(p.step, SessionStep::RollbackPackage);
    }

    #[test]
    fn an_interrupted_load_restarts_from_the_drop_without_a_second_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, archive) = session(dir.path());
        for st in [
            SessionStep::Preflight,
            SessionStep::StopServices,
            SessionStep::RollbackPackage,
        ] {
            s.finish(st, "ok");
        }
        s.installed_version = Some(v("16.10.3-ee"));
        s.snapshots
            .insert("gitlabhq_production".into(), dir.path().join("snap.dump"));
        s.finish(SessionStep::SafetySnapshot, "snap.dump");
        s.finish(SessionStep::Drop, "dropped");
        s.begin(SessionStep::Restore);
        let id = BackupIdentity::of(&archive).unwrap();
        let p = s.resume_point(Some(&id), Some(&v("16.10.3-ee"))).unwrap();
        assert_eq!(p.step, SessionStep::Drop);
        assert_eq!(
            p.snapshots.get("gitlabhq_production"),
            Some(&dir.path().join("snap.dump"))
        );
    }

    #[test]
    fn refuses_when_the_backup_or_the_version_changed_and_says_which() {
        let dir = tempfile::tempdir().unwrap();
        let (s, archive) = session(dir.path());
        fs::write(&archive, b"other, longer tar bytes").unwrap();
        let id = BackupIdentity::of(&archive).unwrap();
        let err = s
            .resume_point(Some(&id), Some(&v("16.11.2-ee")))
            .unwrap_err();
        assert_eq!(err.len(), 2);
        assert!(
            err[0].to_string().contains("changed: size 9 -> 23"),
            "{}",
            err[0]
        );
        assert!(err[1]
            .to_string()
            .contains("16.11.1-ee when the session was saved, 16.11.2-ee now"));
        let err = s.resume_point(None, Some(&v("16.11.1-ee"))).unwrap_err();
        assert!(err[0].to_string().contains("is gone"));
    }

    #[test]
    fn refuses_planted_or_linked_session_files() {
        let dir = tempfile::tempdir().unwrap();
        let jdir = dir.path().join("rewind");
        fs::create_dir(&jdir).unwrap();
        let victim = dir.path().join("victim.json");
        fs::write(&victim, b"{}").unwrap();
        std::os::unix::fs::symlink(&victim, Session::path_in(&jdir)).unwrap();
        let err = Session::load(&jdir).unwrap_err().to_string();
        assert!(
            err.contains(FILE_NAME) && err.contains("symbolic link"),
            "{err}"
        );
        fs::remove_file(Session::path_in(&jdir)).unwrap();
        if crate::safefs::euid() == 0 {
            // Written by someone else (git): not trusted.
            fs::write(Session::path_in(&jdir), b"{}").unwrap();
            std::os::unix::fs::chown(Session::path_in(&jdir), Some(4242), None).unwrap();
            let err = Session::load(&jdir).unwrap_err().to_string();
            assert!(
                err.contains(FILE_NAME) && err.contains("owned by uid 4242"),
                "{err}"
            );
        }
    }
}
