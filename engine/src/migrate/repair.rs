//! The repair loop: GitLab's documented "mark the failing migration complete, run
//! db:migrate again, repeat", guided and checked.
//!
//! Each round takes the first failure of the latest migrate output, assesses it against the
//! database ([`super::assess`]), and only when the verdict is "mark complete" and the
//! caller confirms ([`Confirm`]) marks it ([`super::mark`]) and runs the migration command
//! again, streaming its output and parsing it as it comes. The loop stops when the
//! migrations run clean, when an error appears that marking cannot fix, when the same
//! version fails twice (marking did not help), or when the user stops. Every round that
//! writes is journaled (`migrate.repair.round`, `migrate.mark`, `migrate.repair.migrate`).

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use serde::Serialize;

use super::assess::{assess, AssessError, Assessment, Verdict};
use super::log::{Failure, LogReport, Parser};
use super::mark::{mark_complete, MarkError, MarkResult};
use crate::detect::{omnibus, DatabaseConn};
use crate::journal::{Journal, JournalError};
use crate::pg::conn::ConnError;
use crate::progress::{Event, Sink};
use crate::root::HostRoot;

/// Errors that stop the repair loop.
#[derive(Debug, thiserror::Error)]
pub enum RepairError {
    #[error("no database connection is configured (none in database.yml; pass --database-url)")]
    NoDatabase,
    #[error("connecting to database {name}: {source}")]
    Connect {
        name: String,
        #[source]
        source: ConnError,
    },
    #[error(transparent)]
    Assess(#[from] AssessError),
    #[error(transparent)]
    Mark(#[from] MarkError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// Another recovery holds the host: nothing was marked or run.
    #[error(transparent)]
    Lock(#[from] crate::recovery::lock::LockError),
    #[error("cannot run the migration command `{command}`: {source}. Give the right one with --migrate-cmd (e.g. --migrate-cmd /opt/gitlab/bin/gitlab-rake --migrate-cmd db:migrate)")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the migration command is empty; pass --migrate-cmd PROGRAM [--migrate-cmd ARG ...]")]
    EmptyCommand,
    #[error("reading the output of `{command}`: {source}")]
    Output {
        command: String,
        #[source]
        source: std::io::Error,
    },
}

/// The database connections of the installation, opened on first use.
pub struct Databases {
    conns: Vec<DatabaseConn>,
    clients: HashMap<String, postgres::Client>,
}

impl Databases {
    /// Connections as detected (main first) or made from `--database-url`.
    pub fn new(conns: Vec<DatabaseConn>) -> Self {
        Databases {
            conns,
            clients: HashMap::new(),
        }
    }

    /// The connection named `wanted` (`main`, `ci`), or main (the first) when there is no
    /// such connection or none is wanted.
    pub fn pick(&self, wanted: Option<&str>) -> Option<&DatabaseConn> {
        wanted
            .and_then(|w| self.conns.iter().find(|c| c.name == w))
            .or_else(|| self.conns.iter().find(|c| c.name == "main"))
            .or_else(|| self.conns.first())
    }

    /// A client for the connection [`Databases::pick`] chooses, and its name.
    pub fn client(
        &mut self,
        wanted: Option<&str>,
    ) -> Result<(String, &mut postgres::Client), RepairError> {
        let conn = self.pick(wanted).ok_or(RepairError::NoDatabase)?.clone();
        let name = conn.name.to_string();
        if !self.clients.contains_key(&name) {
            let c = conn.spec.connect().map_err(|source| RepairError::Connect {
                name: name.clone(),
                source,
            })?;
            self.clients.insert(name.clone(), c);
        }
        let client = self.clients.get_mut(&name).ok_or(RepairError::NoDatabase)?;
        Ok((name, client))
    }
}

/// The caller's answer to "mark this version complete?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Mark,
    Stop,
}

/// Asks whether to mark (the CLI asks the user to type the version; `--yes` always marks).
pub trait Confirm {
    /// `sql` is the statement that would run, with its bound value shown.
    fn confirm(&mut self, assessment: &Assessment, sql: &str) -> Decision;
}

/// Always mark (`--yes`).
pub struct AssumeYes;

impl Confirm for AssumeYes {
    fn confirm(&mut self, _assessment: &Assessment, _sql: &str) -> Decision {
        Decision::Mark
    }
}

/// Options of the loop.
#[derive(Debug, Clone)]
pub struct RepairOptions {
    /// argv of the migration command (`gitlab-rake db:migrate`).
    pub migrate_cmd: Vec<OsString>,
    /// Stop after this many rounds whatever happens.
    pub max_rounds: usize,
    /// The host whose lock the repair holds while it marks and migrates (one change to a
    /// host at a time), with the command line the lock records; `None` only where nothing
    /// else can change the host (a drill's own sandbox).
    pub host: Option<(crate::root::HostRoot, String)>,
}

/// The default migration command: `/opt/gitlab/bin/gitlab-rake db:migrate` when that exists
/// under `root`, else `gitlab-rake db:migrate` from `PATH`.
pub fn default_migrate_cmd(root: &HostRoot) -> Vec<OsString> {
    let rake = root.join(omnibus::GITLAB_RAKE);
    let prog = if rake.is_file() {
        rake.into_os_string()
    } else {
        OsString::from("gitlab-rake")
    };
    vec![prog, OsString::from("db:migrate")]
}

/// The migration command GitLab's documentation gives for this installation: Omnibus's
/// `gitlab-rake db:migrate` ([`default_migrate_cmd`]); from source, `bundle exec rake
/// db:migrate RAILS_ENV=production` as `git` in the Rails root (`env --chdir`, no shell).
pub fn migrate_cmd_for(root: &HostRoot, inst: &crate::detect::Installation) -> Vec<OsString> {
    match inst.kind {
        Some(crate::detect::InstallKind::Source) => {
            let rails = inst
                .rails_root
                .clone()
                .unwrap_or_else(|| std::path::PathBuf::from("/home/git/gitlab"));
            let mut chdir = OsString::from("--chdir=");
            chdir.push(root.join(&rails));
            let mut argv: Vec<OsString> = ["sudo", "-u", "git", "-H", "env"]
                .into_iter()
                .map(OsString::from)
                .collect();
            argv.push(chdir);
            argv.extend(
                [
                    "bundle",
                    "exec",
                    "rake",
                    "db:migrate",
                    "RAILS_ENV=production",
                ]
                .into_iter()
                .map(OsString::from),
            );
            argv
        }
        _ => default_migrate_cmd(root),
    }
}

/// Split a `--migrate-cmd` given as one argument into words at whitespace (no shell: no
/// quoting, no expansion). Several arguments are taken as argv as they are.
pub fn migrate_cmd_from_args(args: &[String]) -> Vec<OsString> {
    if args.len() == 1 {
        args[0].split_whitespace().map(OsString::from).collect()
    } else {
        args.iter().map(OsString::from).collect()
    }
}

/// One run of the migration command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MigrateRun {
    pub command: Vec<String>,
    /// Exit code (`None`: killed by a signal).
    pub exit_code: Option<i32>,
    /// What its output says.
    pub summary: String,
}

/// One round of the loop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Round {
    pub number: usize,
    pub failure: Failure,
    pub assessment: Assessment,
    /// The marking done this round.
    pub marked: Option<MarkResult>,
    /// The migration run after marking.
    pub migrate: Option<MigrateRun>,
}

/// Why the loop stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Stop {
    /// The migration command finished without a failure.
    Succeeded,
    /// The first log shows no failure: nothing to repair.
    NoFailure,
    /// The assessment says marking would be wrong.
    NotMarkable { version: Option<String> },
    /// The user (or a non-interactive caller) did not confirm.
    Declined { version: String },
    /// The same version failed again after it was marked: marking did not help.
    SameVersionTwice { version: String },
    /// The migration command failed without a migration failure in its output.
    CommandFailed { exit_code: Option<i32> },
    /// The round limit was reached.
    MaxRounds { rounds: usize },
}

/// What the loop did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RepairReport {
    pub rounds: Vec<Round>,
    pub stop: Stop,
    /// Versions marked, in order.
    pub marked: Vec<MarkResult>,
    /// A sentence for people.
    pub message: String,
}

impl RepairReport {
    /// Whether the migrations now run clean.
    pub fn succeeded(&self) -> bool {
        matches!(self.stop, Stop::Succeeded | Stop::NoFailure)
    }
}

const ROUND: &str = "migrate.repair.round";
const MIGRATE: &str = "migrate.repair.migrate";

/// Run the loop from `initial` (the parsed failed log).
pub fn repair(
    initial: LogReport,
    dbs: &mut Databases,
    opts: &RepairOptions,
    confirm: &mut dyn Confirm,
    journal: Option<&Journal>,
    sink: &dyn Sink,
) -> Result<RepairReport, RepairError> {
    let _lock = opts
        .host
        .as_ref()
        .map(|(root, command)| crate::recovery::lock::host(root, command))
        .transpose()?;
    let mut current = initial;
    let mut rounds: Vec<Round> = Vec::new();
    let mut marked: Vec<MarkResult> = Vec::new();
    let mut number = 0usize;
    let stop = loop {
        number += 1;
        let Some(failure) = current.first_failure().cloned() else {
            break if number == 1 {
                Stop::NoFailure
            } else {
                Stop::Succeeded
            };
        };
        if number > opts.max_rounds {
            break Stop::MaxRounds {
                rounds: opts.max_rounds,
            };
        }
        if let Some(v) = failure.version() {
            if marked.iter().any(|m| m.version == v) {
                if let Some(j) = journal {
                    j.note(
                        ROUND,
                        format!("round {number}: {v} failed again after it was marked; stopping"),
                        serde_json::json!({"round": number, "version": v, "summary": failure.summary()}),
                    )?;
                }
                break Stop::SameVersionTwice {
                    version: v.to_string(),
                };
            }
        }
        let (dbname, client) = dbs.client(failure.database.as_deref())?;
        let assessment = assess(&failure, &dbname, client)?;
        let detail = serde_json::json!({
            "round": number,
            "database": dbname,
            "version": failure.version(),
            "class": failure.error.as_ref().map(|e| e.class.clone()),
            "object": failure.error.as_ref().and_then(|e| e.object.as_ref()).map(|o| o.to_string()),
            "verdict": assessment.verdict,
        });
        let mut round = Round {
            number,
            failure: failure.clone(),
            assessment: assessment.clone(),
            marked: None,
            migrate: None,
        };
        let version = match (&assessment.verdict, failure.version()) {
            (Verdict::MarkComplete, Some(v)) => v.to_string(),
            _ => {
                if let Some(j) = journal.filter(|_| number > 1) {
                    j.note(
                        ROUND,
                        format!("round {number}: not marking: {}", assessment.reason),
                        detail,
                    )?;
                }
                rounds.push(round);
                break Stop::NotMarkable {
                    version: failure.version().map(str::to_string),
                };
            }
        };
        let sql = assessment.mark_sql().unwrap_or_default();
        if confirm.confirm(&assessment, &sql) == Decision::Stop {
            if let Some(j) = journal.filter(|_| number > 1) {
                j.note(ROUND, format!("round {number}: user stopped"), detail)?;
            }
            rounds.push(round);
            break Stop::Declined { version };
        }
        if let Some(j) = journal {
            j.begin(
                ROUND,
                format!("round {number}: mark {version} complete, then migrate"),
                detail.clone(),
            )?;
        }
        let (dbname, client) = dbs.client(failure.database.as_deref())?;
        let result = mark_complete(client, &dbname, &version, journal)?;
        sink.event(Event::Log {
            level: crate::progress::Level::Info,
            message: result.message(),
        });
        marked.push(result.clone());
        round.marked = Some(result);

        let (run, parsed) = run_migrate(&opts.migrate_cmd, journal, sink)?;
        let exit = run.exit_code;
        round.migrate = Some(run);
        if let Some(j) = journal {
            let outcome = if parsed.succeeded() && exit == Some(0) {
                "migrations_succeeded"
            } else {
                "migration_failed"
            };
            j.end(
                ROUND,
                outcome,
                serde_json::json!({"round": number, "marked": version, "exit_code": exit, "next": parsed.summary()}),
            )?;
        }
        rounds.push(round);
        if parsed.succeeded() {
            if exit == Some(0) {
                break Stop::Succeeded;
            }
            break Stop::CommandFailed { exit_code: exit };
        }
        current = parsed;
    };
    let message = match &stop {
        Stop::Succeeded => format!(
            "Migrations succeeded after marking {} version(s) complete: {}",
            marked.len(),
            marked
                .iter()
                .map(|m| m.version.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Stop::NoFailure => "The log shows no failed migration: nothing to repair.".into(),
        Stop::NotMarkable { version } => format!(
            "Stopped: {} cannot be fixed by marking it complete ({}).",
            version.as_deref().unwrap_or("the failed migration"),
            rounds
                .last()
                .map(|r| r.assessment.reason.clone())
                .unwrap_or_default()
        ),
        Stop::Declined { version } => {
            format!("Stopped before marking {version}: nothing was written for it.")
        }
        Stop::SameVersionTwice { version } => format!(
            "Stopped: {version} failed again after it was marked complete; marking did not help. Look at the migration's later steps and the error above."
        ),
        Stop::CommandFailed { exit_code } => format!(
            "Stopped: the migration command exited with {} without a migration failure Rewind could read; see its output above.",
            exit_code
                .map(|c| c.to_string())
                .unwrap_or_else(|| "a signal".into())
        ),
        Stop::MaxRounds { rounds } => format!("Stopped after {rounds} rounds."),
    };
    Ok(RepairReport {
        rounds,
        stop,
        marked,
        message,
    })
}

/// Run the migration command with stdout and stderr on one pipe (as Omnibus's `2>&1 |
/// tee` does, so lines keep their order), stdin closed; stream each line to `sink` as
/// [`Event::Output`] and parse it as it comes.
pub fn run_migrate(
    argv: &[OsString],
    journal: Option<&Journal>,
    sink: &dyn Sink,
) -> Result<(MigrateRun, LogReport), RepairError> {
    let (prog, args) = argv.split_first().ok_or(RepairError::EmptyCommand)?;
    let shown: Vec<String> = argv
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let command = shown.join(" ");
    let spawn_err = |source| RepairError::Spawn {
        command: command.clone(),
        source,
    };
    if let Some(j) = journal {
        j.begin(MIGRATE, command.clone(), serde_json::json!({"argv": shown}))?;
    }
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| spawn_err(std::io::Error::from(e)))?;
    let write2 = write.try_clone().map_err(spawn_err)?;
    let mut cmd = Command::new(prog);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(write))
        .stderr(Stdio::from(write2));
    let spawned = cmd.spawn();
    // Close the parent's copies of the write end, or the reader never sees EOF.
    drop(cmd);
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            if let Some(j) = journal {
                j.end(
                    MIGRATE,
                    "failed",
                    serde_json::json!({"error": e.to_string()}),
                )?;
            }
            return Err(spawn_err(e));
        }
    };
    let mut parser = Parser::new();
    let mut reader = BufReader::new(std::fs::File::from(read));
    let mut buf = Vec::new();
    let read_result = loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) => break Ok(()),
            Ok(_) => {
                let line = String::from_utf8_lossy(&buf);
                let line = line.trim_end_matches(['\n', '\r']);
                sink.event(Event::Output {
                    line: line.to_string(),
                });
                parser.feed(line);
            }
            Err(e) => break Err(e),
        }
    };
    let status = child.wait().map_err(|source| RepairError::Output {
        command: command.clone(),
        source,
    })?;
    read_result.map_err(|source| RepairError::Output {
        command: command.clone(),
        source,
    })?;
    let report = parser.finish();
    let run = MigrateRun {
        command: shown,
        exit_code: status.code(),
        summary: report.summary(),
    };
    if let Some(j) = journal {
        j.end(
            MIGRATE,
            if status.success() { "ok" } else { "failed" },
            serde_json::json!({"exit_code": status.code(), "summary": run.summary}),
        )?;
    }
    Ok((run, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrate_cmd_words() {
        assert_eq!(
            migrate_cmd_from_args(&["/opt/x/rake  db:migrate".into()]),
            vec![OsString::from("/opt/x/rake"), OsString::from("db:migrate")]
        );
        assert_eq!(
            migrate_cmd_from_args(&["/p/with space".into(), "a b".into()]),
            vec![OsString::from("/p/with space"), OsString::from("a b")]
        );
        let d = tempfile::tempdir().unwrap();
        let root = HostRoot::new(d.path());
        assert_eq!(default_migrate_cmd(&root)[0], OsString::from("gitlab-rake"));
        let rake = root.join(omnibus::GITLAB_RAKE);
        std::fs::create_dir_all(rake.parent().unwrap()).unwrap();
        std::fs::write(&rake, "#!/bin/sh\n").unwrap();
        assert_eq!(default_migrate_cmd(&root)[0], rake.into_os_string());
    }

    #[test]
    fn runs_a_command_and_parses_interleaved_output() {
        let d = tempfile::tempdir().unwrap();
        let script = d.path().join("m.sh");
        std::fs::write(
            &script,
            "#!/bin/sh\necho '== 20200101000000 CreateThings: migrating ==='\necho '-- create_table(:things)'\necho 'rake aborted!' >&2\necho 'StandardError: An error has occurred, all later migrations canceled:' >&2\necho '' >&2\necho 'PG::DuplicateTable: ERROR:  relation \"things\" already exists' >&2\nexit 1\n",
        )
        .unwrap();
        let lines = std::sync::Mutex::new(Vec::new());
        let sink = |e: Event| {
            if let Event::Output { line } = e {
                lines.lock().unwrap().push(line);
            }
        };
        let (run, report) = run_migrate(
            &[OsString::from("/bin/sh"), script.into_os_string()],
            None,
            &sink,
        )
        .unwrap();
        assert_eq!(run.exit_code, Some(1));
        assert_eq!(lines.lock().unwrap().len(), 6);
        let f = report.first_failure().unwrap();
        assert_eq!(f.version(), Some("20200101000000"));
        let e = run_migrate(&[OsString::from("/nonexistent/rake")], None, &sink).unwrap_err();
        assert!(e.to_string().contains("--migrate-cmd"), "{e}");
    }
}
