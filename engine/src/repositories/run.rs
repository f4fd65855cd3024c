//! Running the repository restore: `repositories/` extracted from the archive into a
//! root-owned `0700` directory, gitaly-backup run with the restored database's repositories
//! on stdin, its log lines counted (restored, skipped, failed) and streamed as progress.

use std::ffi::OsStr;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;

use super::{plan, RepoError, RepoOptions, RepoRef};
use crate::exec::{ExecError, Runner};
use crate::files::extract::{extract_tar_at, ExtractOptions};
use crate::journal::Journal;
use crate::progress::{Cancel, Event, Phase, Sink, SinkExt};
use crate::root::HostRoot;
use crate::safefs;

/// What gitaly-backup said of one repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineOutcome {
    Started,
    Restored,
    Skipped,
    Failed,
}

/// Read one of gitaly-backup's JSON log lines (`{"level":"info","msg":"completed
/// restore","relative_path":...}`, `"skipped restore"`, `"restore failed"`): the outcome
/// and the repository (`gl_project_path`, else `relative_path`).
pub fn parse_line(line: &str) -> Option<(LineOutcome, String, Option<String>)> {
    let v: serde_json::Value = serde_json::from_str(line.trim()).ok()?;
    let msg = v.get("msg")?.as_str()?;
    let outcome = if msg.starts_with("started") {
        LineOutcome::Started
    } else if msg.starts_with("completed") {
        LineOutcome::Restored
    } else if msg.starts_with("skipped") {
        LineOutcome::Skipped
    } else if msg.ends_with("failed") {
        LineOutcome::Failed
    } else {
        return None;
    };
    let field = |k: &str| {
        v.get(k)
            .and_then(|x| x.as_str())
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let repo = field("gl_project_path")
        .or_else(|| field("relative_path"))
        .unwrap_or_default();
    Some((outcome, repo, field("error")))
}

/// Counts of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub restored: u64,
    pub skipped: u64,
    pub failed: u64,
    /// `<repository>: <error>` of each failure.
    pub failures: Vec<String>,
}

/// What the repository restore did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RepoReport {
    /// The command as run (`GITALY_SERVERS` redacted).
    pub command: String,
    /// Repositories sent on stdin (from the restored database).
    pub expected: u64,
    /// Of those, project repositories (always created).
    pub projects: u64,
    #[serde(flatten)]
    pub tally: Tally,
    /// Bytes extracted from the archive (0 for server-side backups).
    pub extracted_bytes: u64,
    /// Differences between gitaly-backup's counts and the database's.
    pub notes: Vec<String>,
}

impl RepoReport {
    /// Every repository the database names accounted for, none failed, every project
    /// repository restored or created.
    pub fn ok(&self) -> bool {
        self.tally.failed == 0 && self.notes.is_empty()
    }

    /// One line for the summary.
    pub fn line(&self) -> String {
        format!(
            "restored {} repositories, skipped {} (not in the backup), failed {}, of {} in the database",
            self.tally.restored, self.tally.skipped, self.tally.failed, self.expected
        )
    }
}

/// Bytes the archive's `repositories/` members take once extracted.
pub fn repositories_bytes<'a>(members: impl Iterator<Item = (&'a str, u64)>) -> u64 {
    members
        .filter(|(n, _)| {
            let n = n.strip_prefix("./").unwrap_or(n);
            n.starts_with("repositories/")
        })
        .map(|(_, b)| b)
        .sum()
}

/// A root-owned `0700` directory holding the extracted `repositories/`, removed on drop.
pub struct Extracted {
    /// Host path of the directory made for it.
    pub dir: PathBuf,
    /// Host path of `repositories/` inside it (`-path`).
    pub path: PathBuf,
    pub bytes: u64,
}

impl Drop for Extracted {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Extract `repositories/` of the backup archive `archive` into a new private directory in
/// `parent` (an existing host directory, e.g. the backup directory), with the extractor of
/// the file components (no `..`, no absolute names, no links out, nothing followed).
pub fn extract(
    archive: &Path,
    parent: &Path,
    sink: &dyn Sink,
    cancel: &Cancel,
) -> Result<Extracted, RepoError> {
    let err = |detail: String| RepoError::Extract {
        archive: archive.to_path_buf(),
        detail,
    };
    let parent_fd = nix::fcntl::open(
        parent,
        nix::fcntl::OFlag::O_RDONLY
            | nix::fcntl::OFlag::O_DIRECTORY
            | nix::fcntl::OFlag::O_NOFOLLOW
            | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| err(format!("opening {}: {e}", parent.display())))?;
    let name = safefs::unique_name("rewind-repositories.");
    let shown = parent.join(&name);
    let dir_fd = safefs::private_dir(parent_fd.as_fd(), &name, &shown, true)?
        .ok_or_else(|| err(format!("{} was not created", shown.display())))?;
    let mut out = Extracted {
        dir: shown.clone(),
        path: shown.join("repositories"),
        bytes: 0,
    };
    nix::sys::stat::mkdirat(
        dir_fd.as_fd(),
        OsStr::new("repositories"),
        nix::sys::stat::Mode::from_bits_truncate(0o700),
    )
    .map_err(|e| err(format!("creating {}: {e}", out.path.display())))?;
    let repo_fd = safefs::open_dir_at(dir_fd.as_fd(), OsStr::new("repositories"))
        .map_err(|e| err(format!("opening {}: {e}", out.path.display())))?;
    let file = std::fs::File::open(archive).map_err(|e| err(e.to_string()))?;
    let opts = ExtractOptions {
        owner: None,
        only_under: Some("repositories"),
    };
    sink.event(Event::PhaseStarted {
        phase: Phase::Repositories,
        total: None,
    });
    let stats = extract_tar_at(
        std::io::BufReader::new(file),
        repo_fd.as_fd(),
        &out.path,
        &opts,
        &mut |st, name| {
            if st.files % 64 == 0 {
                sink.event(Event::Progress {
                    phase: Phase::Repositories,
                    done: st.bytes,
                    total: None,
                    current: Some(format!("extracting {name}")),
                    rows: None,
                });
            }
            let _ = cancel;
        },
    )
    .map_err(|e| err(e.to_string()))?;
    out.bytes = stats.bytes;
    sink.info(format!(
        "repositories/: {} files, {} bytes extracted to {}",
        stats.files,
        stats.bytes,
        out.path.display()
    ));
    Ok(out)
}

/// The backup ids that `repositories/manifests` holds manifests for (file names without
/// `.toml`, `+latest` left out), up to `limit`.
pub fn manifest_ids(path: &Path, limit: usize) -> Vec<String> {
    let mut out = std::collections::BTreeSet::new();
    let mut stack = vec![path.join("manifests")];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            let name = e.file_name().to_string_lossy().into_owned();
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                if let Some(id) = name.strip_suffix(".toml") {
                    if id != "+latest" {
                        out.insert(id.to_string());
                    }
                }
            }
            if out.len() >= limit {
                return out.into_iter().collect();
            }
        }
    }
    out.into_iter().collect()
}

/// With `-id`, gitaly-backup finds only manifests named after it and silently skips the
/// rest: refuse when the manifests are all for other ids.
pub fn check_backup_id(path: &Path, opts: &RepoOptions) -> Result<(), RepoError> {
    let Some(id) = &opts.backup_id else {
        return Ok(());
    };
    if opts.server_side {
        return Ok(());
    }
    let ids = manifest_ids(path, 64);
    if ids.is_empty() || ids.iter().any(|i| i == id) {
        return Ok(());
    }
    Err(RepoError::IdMismatch {
        id: id.clone(),
        found: ids
            .iter()
            .map(|i| format!("`{i}`"))
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// Run gitaly-backup on `path` with `repos` on stdin, streaming its log into progress and
/// counting what it did; journaled as `repositories.gitaly_backup`.
pub fn restore(
    root: &HostRoot,
    path: &Path,
    opts: &RepoOptions,
    repos: &[RepoRef],
    sink: &dyn Sink,
    journal: &Journal,
) -> Result<RepoReport, RepoError> {
    let p = plan(root, path, opts)?;
    let expected = repos.len() as u64;
    let projects = repos.iter().filter(|r| r.always_create).count() as u64;
    let tally = Mutex::new(Tally::default());
    let counting = |e: Event| {
        if let Event::Output { line } = &e {
            if let Some((outcome, repo, error)) = parse_line(line) {
                let mut t = tally.lock().unwrap_or_else(|e| e.into_inner());
                match outcome {
                    LineOutcome::Started => {}
                    LineOutcome::Restored => t.restored += 1,
                    LineOutcome::Skipped => t.skipped += 1,
                    LineOutcome::Failed => {
                        t.failed += 1;
                        t.failures
                            .push(format!("{repo}: {}", error.unwrap_or_default()));
                    }
                }
                if outcome != LineOutcome::Started {
                    let done = t.restored + t.skipped + t.failed;
                    drop(t);
                    sink.event(Event::Progress {
                        phase: Phase::Repositories,
                        done,
                        total: Some(expected),
                        current: Some(repo),
                        rows: None,
                    });
                }
            }
        }
        sink.event(e);
    };
    sink.event(Event::PhaseStarted {
        phase: Phase::Repositories,
        total: Some(expected),
    });
    let input = super::stdin_lines(repos);
    let result = Runner::new(&counting, Some(journal)).run_with_input(
        "repositories.gitaly_backup",
        &p.cmd,
        &input,
    );
    let tally = tally.into_inner().unwrap_or_else(|e| e.into_inner());
    sink.event(Event::PhaseFinished {
        phase: Phase::Repositories,
        ok: result.is_ok() && tally.failed == 0,
    });
    if let Err(e) = result {
        let (status, tail) = match &e {
            ExecError::Failed { status, tail, .. } => (status.clone(), tail.clone()),
            other => (other.to_string(), String::new()),
        };
        journal.note(
            "repositories.result",
            "gitaly-backup failed",
            serde_json::json!({"restored": tally.restored, "skipped": tally.skipped,
                "failed": tally.failed, "expected": expected, "failures": tally.failures}),
        )?;
        return Err(RepoError::Failed {
            status,
            restored: tally.restored,
            skipped: tally.skipped,
            failed: tally.failed,
            expected,
            storages: p.storages.join(", "),
            tail,
        });
    }
    let mut notes = Vec::new();
    let seen = tally.restored + tally.skipped + tally.failed;
    if seen != expected {
        notes.push(format!(
            "gitaly-backup reported on {seen} repositories; the restored database names {expected}"
        ));
    }
    if tally.restored < projects {
        notes.push(format!(
            "{} project repositories are in the database but only {} repositories were restored",
            projects, tally.restored
        ));
    }
    let report = RepoReport {
        command: p.cmd.display(),
        expected,
        projects,
        tally,
        extracted_bytes: 0,
        notes,
    };
    journal.note(
        "repositories.result",
        report.line(),
        serde_json::to_value(&report).unwrap_or_default(),
    )?;
    for n in &report.notes {
        sink.warn(format!("repositories: {n}"));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_gitaly_backup_log_lines() {
        let done = r#"{"command":"restore","gl_project_path":"group/one","level":"info","msg":"completed restore","relative_path":"@hashed/6b/86/x.git","storage_name":"default","time":"2024-04-05T16:00:00Z"}"#;
        assert_eq!(
            parse_line(done),
            Some((LineOutcome::Restored, "group/one".into(), None))
        );
        let skipped = r#"{"command":"restore","error":"manager: repository skipped: restore bundle: doesn't exist","gl_project_path":"","level":"warning","msg":"skipped restore","relative_path":"@hashed/6b/86/x.wiki.git","storage_name":"default"}"#;
        let (o, repo, err) = parse_line(skipped).unwrap();
        assert_eq!(o, LineOutcome::Skipped);
        assert_eq!(repo, "@hashed/6b/86/x.wiki.git");
        assert!(err.unwrap().contains("doesn't exist"));
        let failed = r#"{"level":"error","msg":"restore failed","relative_path":"a.git","error":"rpc error: code = Unavailable"}"#;
        assert_eq!(parse_line(failed).unwrap().0, LineOutcome::Failed);
        assert_eq!(parse_line("time=... level=info msg=\"hello\""), None);
        assert_eq!(parse_line(r#"{"msg":"something else"}"#), None);
    }

    #[test]
    fn counts_only_repositories_members() {
        let m = [
            ("./backup_information.yml", 10u64),
            ("repositories/manifests/default/a.git/x.toml", 100),
            ("./repositories/default/a.git/x/001.bundle", 1000),
            ("db/database.sql.gz", 5000),
        ];
        assert_eq!(repositories_bytes(m.iter().map(|(n, b)| (*n, *b))), 1100);
    }
}
