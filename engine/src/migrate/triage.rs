//! Triage of a failed upgrade: is a rollback needed at all?
//!
//! A restore throws away everything written since the backup. Many failed upgrades do not
//! need one: GitLab itself prints the fix for an unfinished batched background migration
//! (`gitlab-rake gitlab:background_migrations:finalize[...]`), a `gitlab.rb` setting the new
//! version removed stops `gitlab-ctl reconfigure` before any migration runs, a `pg_dump` of
//! the wrong major version stops the pre-upgrade backup. GitLab's own page keeps the
//! rollback for upgrades that "made database changes that cannot be readily reverted".
//!
//! [`classify`] reads the failed `db:migrate` / `gitlab-ctl reconfigure` output (with the
//! parser of [`super::log`] and a scan for GitLab's and PostgreSQL's own messages) and says
//! which kind of failure it is and what to do: [`Decision::FixForward`] with the commands, or
//! [`Decision::RollbackNeeded`]. [`triage`] adds what the host says: whether an upgrade
//! happened since the newest backup (installed version newer than the backup's,
//! `schema_migrations` versions newer than its `db_version`, a failed migrate log written
//! after it) and, for duplicate objects, the assessment of the existing repair path
//! (marking is only recommended when the object has the migration's shape).
//!
//! Read-only: nothing here writes to the host or the database.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use chrono::{DateTime, NaiveDateTime, Utc};
use regex::Regex;
use serde::Serialize;

use super::assess::{assess, assess_offline, Verdict};
use super::describe::rake_command;
use super::log::{self, ErrorKind, Failure, LogError, LogReport, LogTooLarge, MAX_LOG};
use crate::backup::catalogue::BackupEntry;
use crate::detect::{DatabaseConn, InstallKind, Installation};
use crate::restore::leftovers::newer_migrations;

/// The kind of failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// `PG::DuplicateTable` and friends: an object the migration creates is already there.
    DuplicateObjects,
    /// GitLab's `ensure_batched_background_migration_is_finished` stopped the migrations.
    UnfinishedBackgroundMigration,
    /// A unique, not-null, foreign-key or check violation: rows, not schema.
    DataProblem,
    /// `gitlab-ctl reconfigure` stopped on the configuration (`gitlab.rb`).
    Configuration,
    /// `pg_dump` of another major version than the server, or a PostgreSQL version the new
    /// GitLab does not support.
    PostgresqlVersion,
    /// A failure Rewind does not recognise as one that can be fixed forward.
    Other,
    /// The output shows no failure.
    NoFailure,
}

impl Class {
    /// In words.
    pub fn describe(self) -> &'static str {
        match self {
            Class::DuplicateObjects => "duplicate objects",
            Class::UnfinishedBackgroundMigration => "unfinished batched background migration",
            Class::DataProblem => "data problem",
            Class::Configuration => "configuration error",
            Class::PostgresqlVersion => "PostgreSQL version problem",
            Class::Other => "other failure",
            Class::NoFailure => "no failure",
        }
    }
}

/// What to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Restore the backup (the recovery Rewind runs).
    RollbackNeeded,
    /// Fix the cause and go on with the new version; no data is thrown away.
    FixForward,
    /// Nothing failed.
    NothingFailed,
}

/// What the output says, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Classification {
    pub class: Class,
    pub decision: Decision,
    /// One sentence: `a rollback is needed`, `fix forward: ...` or `nothing failed`.
    pub verdict: String,
    /// Why, in a sentence or two.
    pub why: String,
    /// What the output shows (quoted lines, the key of a duplicate row, settings).
    pub evidence: Vec<String>,
    /// The commands to run, in order.
    pub commands: Vec<String>,
    /// The failed migration, as the log parser read it.
    pub failure: Option<Failure>,
    /// 1-based line of the output the classification rests on.
    pub line: Option<usize>,
}

static FINALIZE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"((?:sudo\s+)?gitlab-rake\s+gitlab:background_migrations:finalize\[.*\])")
        .expect("regex")
});
static BBM: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"Expected batched background migration for the given configuration to be marked as 'finished', but it is '(\w+)'")
        .expect("regex")
});
static BBM_JOB: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"job_class_name(?:"?=>|:)\s*"?([\w:]+)"?.*?table_name(?:"?=>|:)\s*[:"]?(\w+)"#)
        .expect("regex")
});
static REMOVED_CONFIG: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"Removed configurations found in gitlab\.rb\. Aborting reconfigure").expect("regex")
});
static REMOVED_SETTING: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\*?\s*(\S+\[\S+\](?:\[\S+\])*) has been deprecated since (\S+) and was removed in (\d+(?:\.\d+)*)")
        .expect("regex")
});
static RECONFIGURE_ERROR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"There was an error running gitlab-ctl reconfigure").expect("regex")
});
static PG_DUMP_MISMATCH: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"server version: (\d+(?:\.\d+)*)[^;]*; (pg_dump|pg_restore|psql) version: (\d+(?:\.\d+)*)",
    )
    .expect("regex")
});
static ABORT_MISMATCH: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"aborting because of server version mismatch").expect("regex"));
static PG_REQUIRED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"You are using PostgreSQL (\S+) for the (\w+) database, but this version of GitLab requires PostgreSQL >= (\S+?)\.?\s*$")
        .expect("regex")
});
static KEY_DETAIL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^Key \((.*)\)=\((.*)\) (.*?)\.?$").expect("regex"));

/// PostgreSQL error classes (Ruby `PG::` names) that are about rows, not schema.
const DATA_CLASSES: [&str; 8] = [
    "UniqueViolation",
    "NotNullViolation",
    "ForeignKeyViolation",
    "CheckViolation",
    "ExclusionViolation",
    "InvalidTextRepresentation",
    "NumericValueOutOfRange",
    "StringDataRightTruncation",
];

/// Lines of `text`, cleaned as the log parser cleans them, with syslog's `#011` (tab) read
/// as a tab; 1-based numbers.
fn cleaned(text: &str) -> Vec<(usize, String)> {
    text.split('\n')
        .enumerate()
        .map(|(i, l)| (i + 1, log::clean_line(l).replace("#011", "\t")))
        .collect()
}

/// The first line matching `re`, with its number and captures as strings.
fn first_match(lines: &[(usize, String)], re: &Regex) -> Option<(usize, Vec<String>)> {
    lines.iter().find_map(|(n, l)| {
        re.captures(l).map(|c| {
            (
                *n,
                c.iter()
                    .map(|m| m.map(|m| m.as_str().to_string()).unwrap_or_default())
                    .collect(),
            )
        })
    })
}

/// Classify failed `db:migrate` / `gitlab-ctl reconfigure` output. `kind` is the
/// installation kind (for the commands as GitLab's documentation gives them); `log_name` is
/// how the output is named in commands (`rewind repair --log <log_name>`).
pub fn classify(
    text: &str,
    report: &LogReport,
    kind: Option<InstallKind>,
    log_name: &str,
) -> Classification {
    let lines = cleaned(text);
    let failure = report.first_failure().cloned();
    let migrate = rake_command(kind, "db:migrate");
    let mut c = Classification {
        class: Class::NoFailure,
        decision: Decision::NothingFailed,
        verdict: "nothing failed".into(),
        why: String::new(),
        evidence: Vec::new(),
        commands: Vec::new(),
        failure: failure.clone(),
        line: failure.as_ref().map(|f| f.line),
    };

    // 1. GitLab's own message for an unfinished batched background migration.
    if let Some((n, caps)) = first_match(&lines, &BBM) {
        c.class = Class::UnfinishedBackgroundMigration;
        c.decision = Decision::FixForward;
        c.line = Some(n);
        let status = caps[1].clone();
        // The configuration may be on the same line or wrapped onto the next ones.
        let joined: String = lines
            .iter()
            .skip(n - 1)
            .take(4)
            .map(|(_, l)| l.trim())
            .collect::<Vec<_>>()
            .join("");
        let job = BBM_JOB
            .captures(&joined)
            .map(|j| format!("{} on table {}", &j[1], &j[2]));
        c.evidence.push(format!(
            "batched background migration {}is '{status}', not 'finished'",
            job.as_ref().map(|j| format!("{j} ")).unwrap_or_default()
        ));
        match first_match(&lines, &FINALIZE) {
            Some((_, f)) => {
                let cmd = f[1].trim().to_string();
                let cmd = if cmd.starts_with("sudo ") || kind == Some(InstallKind::Source) {
                    cmd
                } else {
                    format!("sudo {cmd}")
                };
                c.commands.push(cmd);
            }
            None => c.evidence.push(
                "the output does not show GitLab's finalize command: find it in Admin > Monitoring > Background migrations".into(),
            ),
        }
        c.commands.push(migrate.clone());
        c.verdict =
            "fix forward: finalize the batched background migration, then migrate again".into();
        c.why = "GitLab stopped the upgrade because a batched background migration of an earlier version has not finished; the schema change it waits for was not made, and GitLab prints the command that finishes it.".into();
        return c;
    }

    if let Some(f) = &failure {
        let err = f.error.as_ref();
        let class = err.map(|e| e.class.as_str()).unwrap_or("");
        if f.kind().is_duplicate_object() {
            c.class = Class::DuplicateObjects;
            c.decision = Decision::FixForward;
            if let Some(e) = err {
                c.evidence.push(format!("PG::{}: {}", e.class, e.message));
            }
            c.commands.push(format!("rewind repair --log {log_name}"));
            c.verdict =
                "fix forward: rewind repair marks the failed migration complete, then migrates"
                    .into();
            c.why = "the migration failed because an object it creates already exists (left by an earlier run or a restore without the drop); GitLab's documented fix is to mark the migration complete when the object is really there.".into();
            return c;
        }
        if DATA_CLASSES.contains(&class) || f.kind() == ErrorKind::UniqueViolation {
            c.class = Class::DataProblem;
            c.decision = Decision::FixForward;
            if let Some(e) = err {
                c.evidence.push(format!("PG::{}: {}", e.class, e.message));
                if let Some(d) = &e.detail {
                    match KEY_DETAIL.captures(d) {
                        Some(k) => c
                            .evidence
                            .push(format!("row: ({}) = ({}) {}", &k[1], &k[2], &k[3])),
                        None => c.evidence.push(format!("row: {d}")),
                    }
                }
                if let Some(s) = &e.statement {
                    c.evidence.push(format!(
                        "statement: {}",
                        s.chars().take(200).collect::<String>()
                    ));
                }
            }
            c.commands.push(migrate.clone());
            c.verdict =
                "fix forward: correct or remove the row PostgreSQL names, then migrate again"
                    .into();
            c.why = "the migration failed on rows that break a constraint, not on the schema; Rails rolled the failed migration back, and fixing the rows lets it run.".into();
            return c;
        }
        if let Some((n, caps)) = first_match(&lines, &PG_REQUIRED) {
            return pg_required(c, n, &caps, kind);
        }
        c.class = Class::Other;
        c.decision = Decision::RollbackNeeded;
        c.evidence.push(f.summary());
        c.verdict = "a rollback is needed".into();
        c.why = "Rewind does not recognise this failure as one that can be fixed forward: restore the backup of the version that ran (GitLab's documented way back), or get the failure looked at before going on.".into();
        return c;
    }

    // No failed migration: the failure is outside db:migrate.
    if let Some((n, caps)) = first_match(&lines, &PG_DUMP_MISMATCH) {
        c.class = Class::PostgresqlVersion;
        c.decision = Decision::FixForward;
        c.line = Some(n);
        let major = |v: &str| v.split('.').next().unwrap_or(v).to_string();
        c.evidence.push(format!(
            "{} {} cannot dump a PostgreSQL {} server",
            caps[2], caps[3], caps[1]
        ));
        c.verdict = format!(
            "fix forward: give GitLab PostgreSQL {} client tools, then upgrade again",
            major(&caps[1])
        );
        c.why = format!(
            "{} refused the server's newer major version, so the backup GitLab takes before an upgrade stopped before any migration ran: the database is as it was.",
            caps[2]
        );
        c.commands.push(rake_command(kind, "gitlab:env:info"));
        return c;
    }
    if let Some((n, _)) = first_match(&lines, &ABORT_MISMATCH) {
        c.class = Class::PostgresqlVersion;
        c.decision = Decision::FixForward;
        c.line = Some(n);
        c.evidence
            .push("aborting because of server version mismatch".into());
        c.verdict =
            "fix forward: give GitLab client tools of the server's major version, upgrade again"
                .into();
        c.why = "a PostgreSQL client tool refused the server's major version; the database is as it was.".into();
        return c;
    }
    if let Some((n, _)) = first_match(&lines, &REMOVED_CONFIG) {
        c.class = Class::Configuration;
        c.decision = Decision::FixForward;
        c.line = Some(n);
        let mut seen = Vec::new();
        for (_, l) in &lines {
            if let Some(s) = REMOVED_SETTING.captures(l) {
                let e = format!("{} (removed in {})", &s[1], &s[3]);
                if !seen.contains(&e) {
                    seen.push(e);
                }
            }
        }
        if seen.is_empty() {
            c.evidence
                .push("Removed configurations found in gitlab.rb. Aborting reconfigure.".into());
        }
        c.evidence
            .extend(seen.into_iter().map(|s| format!("setting: {s}")));
        c.commands
            .push("edit /etc/gitlab/gitlab.rb: remove or replace the settings above".into());
        c.commands.push("sudo gitlab-ctl reconfigure".into());
        c.verdict =
            "fix forward: remove the dropped settings from gitlab.rb, then reconfigure".into();
        c.why = "gitlab-ctl reconfigure stopped on gitlab.rb before it ran the database migrations: the new version is installed and the database has not changed.".into();
        return c;
    }
    if let Some((n, caps)) = first_match(&lines, &PG_REQUIRED) {
        return pg_required(c, n, &caps, kind);
    }
    if let Some((n, _)) = first_match(&lines, &RECONFIGURE_ERROR) {
        c.class = Class::Configuration;
        c.decision = Decision::FixForward;
        c.line = Some(n);
        // The line after the heading says what went wrong.
        if let Some((_, l)) = lines.iter().skip(n).find(|(_, l)| !l.trim().is_empty()) {
            c.evidence.push(l.trim().chars().take(200).collect());
        }
        c.commands.push("sudo gitlab-ctl reconfigure".into());
        c.verdict =
            "fix forward: correct what gitlab-ctl reconfigure reports, then run it again".into();
        c.why = "gitlab-ctl reconfigure failed outside the database migrations (no failed migration in the output).".into();
        return c;
    }
    if let Some(m) = &report.unfinished {
        c.class = Class::Other;
        c.decision = Decision::RollbackNeeded;
        c.evidence.push(format!(
            "migration {} {} started and never finished (was the run killed?)",
            m.version, m.name
        ));
        c.verdict = "a rollback is needed".into();
        c.why = "the migrations stopped without an error Rewind can read, so it cannot tell what the database holds; restore the backup of the version that ran.".into();
        return c;
    }
    c.why = format!(
        "no failure in the output ({} migration(s) completed).",
        report.migrated.len()
    );
    c
}

fn pg_required(
    mut c: Classification,
    n: usize,
    caps: &[String],
    kind: Option<InstallKind>,
) -> Classification {
    c.class = Class::PostgresqlVersion;
    c.decision = Decision::FixForward;
    c.line = Some(n);
    c.evidence.push(format!(
        "the {} database runs PostgreSQL {}; this GitLab requires {} or newer",
        caps[2], caps[1], caps[3]
    ));
    c.verdict = format!(
        "fix forward: upgrade PostgreSQL to {} or newer, then migrate again",
        caps[3]
    );
    c.why = "the new GitLab does not support the database's PostgreSQL version; its migrations may use what only the newer server has.".into();
    if kind != Some(InstallKind::Source) {
        c.commands.push("sudo gitlab-ctl pg-upgrade".into());
    }
    c.commands.push(rake_command(kind, "db:migrate"));
    c
}

/// Whether an upgrade happened since the backup, and what says so.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UpgradeSigns {
    pub installed_version: Option<String>,
    pub backup_id: Option<String>,
    pub backup_version: Option<String>,
    pub backup_created_at: Option<DateTime<Utc>>,
    /// The backup's `:db_version:`.
    pub backup_db_version: Option<String>,
    /// The installed version is newer than the backup's.
    pub installed_newer: Option<bool>,
    /// Versions in `schema_migrations` newer than `backup_db_version`, per database.
    pub newer_migrations: Vec<NewerMigrations>,
    /// The failed log read, and when it was written.
    pub log: Option<String>,
    pub log_written_at: Option<DateTime<Utc>>,
    /// The failed log was written after the backup.
    pub log_newer: Option<bool>,
    /// Any of the three.
    pub failed_upgrade: bool,
    /// What could not be looked at.
    pub notes: Vec<String>,
}

/// `schema_migrations` versions of one database newer than the backup's `db_version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewerMigrations {
    pub database: String,
    pub count: usize,
    pub newest: Option<String>,
}

impl UpgradeSigns {
    /// One sentence: what says an upgrade happened since the backup.
    pub fn summary(&self) -> String {
        let mut why = Vec::new();
        if self.installed_newer == Some(true) {
            why.push(format!(
                "GitLab {} is installed, the backup is {}",
                self.installed_version.as_deref().unwrap_or("?"),
                self.backup_version.as_deref().unwrap_or("?")
            ));
        }
        let newer: usize = self.newer_migrations.iter().map(|m| m.count).sum();
        if newer > 0 {
            why.push(format!(
                "{newer} migration(s) in schema_migrations are newer than the backup's db_version {}",
                self.backup_db_version.as_deref().unwrap_or("?")
            ));
        }
        if self.log_newer == Some(true) {
            why.push("a failed migrate log was written after the backup".into());
        }
        if why.is_empty() {
            match &self.backup_id {
                Some(_) => "no upgrade since the backup was found".into(),
                None => "no backup to compare with".into(),
            }
        } else {
            format!("upgrade since the backup: {}", why.join("; "))
        }
    }
}

/// The output to triage.
#[derive(Debug, Clone)]
pub struct LogText {
    /// How to name it: a path, or `stdin`.
    pub name: String,
    pub text: String,
    /// When it was written, if known.
    pub written_at: Option<DateTime<Utc>>,
    /// Whether it was found by Rewind (newest failed migrate log) rather than given.
    pub discovered: bool,
}

/// The whole triage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Triage {
    pub upgrade: UpgradeSigns,
    #[serde(flatten)]
    pub classification: Classification,
    /// The repair path's assessment, for duplicate objects (verdict and reason).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assessment: Option<String>,
    /// The next step after GitLab's message for this installation kind
    /// ([`crate::hints::hint`]).
    pub hint: Option<String>,
}

impl Triage {
    /// Whether the verdict asks for action (exit code 4 of the CLI).
    pub fn needs_action(&self) -> bool {
        self.classification.decision != Decision::NothingFailed
    }
}

/// Errors of triage.
#[derive(Debug, thiserror::Error)]
pub enum TriageError {
    #[error(transparent)]
    Log(#[from] LogError),
}

/// Read a log file for triage: opened without following links, at most [`MAX_LOG`]
/// bytes; invalid UTF-8 is replaced. The time is the file's modification time.
pub fn read_log_file(path: &Path) -> Result<LogText, LogError> {
    use std::os::unix::fs::OpenOptionsExt;
    let err = |source| LogError::Read {
        path: path.to_path_buf(),
        source,
    };
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
        .map_err(err)?;
    let written_at = f
        .metadata()
        .and_then(|m| m.modified())
        .ok()
        .map(DateTime::<Utc>::from);
    let text = read_bounded(f).map_err(err)?;
    Ok(LogText {
        name: path.display().to_string(),
        text,
        written_at: name_time(path).or(written_at),
        discovered: false,
    })
}

/// Read at most [`MAX_LOG`] bytes ([`LogTooLarge`] past that).
pub fn read_bounded(r: impl Read) -> std::io::Result<String> {
    let mut buf = Vec::new();
    let mut reader = BufReader::new(r.take(MAX_LOG + 1));
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            break;
        }
        let n = chunk.len();
        buf.extend_from_slice(chunk);
        reader.consume(n);
        if buf.len() as u64 > MAX_LOG {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                LogTooLarge,
            ));
        }
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// The time in Omnibus's `gitlab-rails-db-migrate-YYYY-MM-DD-HH-MM-SS.log` name (the host's
/// local time; read as UTC when the local offset is unknown).
pub fn name_time(path: &Path) -> Option<DateTime<Utc>> {
    let name = path.file_name()?.to_str()?;
    let stamp = name
        .strip_prefix("gitlab-rails-db-migrate-")?
        .strip_suffix(".log")?;
    let naive = NaiveDateTime::parse_from_str(stamp, "%Y-%m-%d-%H-%M-%S").ok()?;
    use chrono::TimeZone;
    chrono::Local
        .from_local_datetime(&naive)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .or_else(|| Some(Utc.from_utc_datetime(&naive)))
}

/// The newest failed migrate log in GitLab's Rails log dir, read for triage; `None` when
/// there is none.
pub fn newest_failed_log(
    root: &crate::root::HostRoot,
    inst: &Installation,
) -> Option<Result<LogText, LogError>> {
    let path: PathBuf = log::failed_migrate_logs(root, inst.log_dir.as_deref())
        .into_iter()
        .next()?;
    Some(read_log_file(&path).map(|mut l| {
        l.discovered = true;
        l
    }))
}

/// Triage: classify `log` (if any) and look at the host and databases for signs of an
/// upgrade since `backup`. `conns` are the databases to read (those with database tasks);
/// a database that cannot be read is a note, not an error.
pub fn triage(
    inst: &Installation,
    backup: Option<&BackupEntry>,
    log: Option<&LogText>,
    conns: &[DatabaseConn],
) -> Triage {
    let mut up = UpgradeSigns {
        installed_version: inst.version.as_ref().map(|v| v.to_string()),
        ..Default::default()
    };
    if let Some(b) = backup {
        up.backup_id = Some(b.id.clone());
        up.backup_version = b.version_text.clone();
        up.backup_created_at = b.backup_created_at().or(b.created_at);
        up.backup_db_version = b.information.as_ref().and_then(|i| i.db_version.clone());
        up.installed_newer = match (&inst.version, &b.version) {
            (Some(i), Some(v)) => Some(i.sort_key() > v.sort_key()),
            _ => None,
        };
    } else {
        up.notes
            .push("no readable backup: the upgrade cannot be compared with one".into());
    }

    let mut clients: Vec<(String, postgres::Client)> = Vec::new();
    for conn in conns.iter().filter(|c| c.database_tasks) {
        match conn.spec.connect() {
            Ok(c) => clients.push((conn.name.to_string(), c)),
            Err(e) => up.notes.push(format!(
                "database {} ({}) not read: {e}",
                conn.name, conn.spec.dbname
            )),
        }
    }
    if let Some(dbv) = up.backup_db_version.clone() {
        for (name, client) in clients.iter_mut() {
            match newer_migrations(client, &dbv) {
                Ok(v) => up.newer_migrations.push(NewerMigrations {
                    database: name.clone(),
                    count: v.len(),
                    newest: v.last().cloned(),
                }),
                Err(e) => up.notes.push(format!(
                    "database {name}: reading schema_migrations failed: {e}"
                )),
            }
        }
    }

    let classification = match log {
        Some(l) => {
            up.log = Some(l.name.clone());
            up.log_written_at = l.written_at;
            up.log_newer = match (l.written_at, up.backup_created_at) {
                (Some(w), Some(b)) => Some(w > b),
                _ => None,
            };
            let report = log::parse_str(&l.text);
            classify(&l.text, &report, inst.kind, &l.name)
        }
        None => Classification {
            class: Class::NoFailure,
            decision: Decision::NothingFailed,
            verdict: "nothing failed".into(),
            why: "no failed db:migrate log in GitLab's log directory; if an upgrade failed, pass its output with --log FILE (or - for stdin)".into(),
            evidence: Vec::new(),
            commands: Vec::new(),
            failure: None,
            line: None,
        },
    };
    up.failed_upgrade = up.installed_newer == Some(true)
        || up.newer_migrations.iter().any(|m| m.count > 0)
        || up.log_newer == Some(true);

    let mut t = Triage {
        upgrade: up,
        classification,
        assessment: None,
        hint: None,
    };

    // A failed log Rewind found itself that predates the backup is not this upgrade's.
    if let Some(l) = log {
        if l.discovered && t.upgrade.log_newer == Some(false) && t.needs_action() {
            t.classification.evidence.insert(
                0,
                format!("the failed log {} is older than the backup", l.name),
            );
            t.classification.decision = Decision::NothingFailed;
            t.classification.verdict = "nothing failed since the backup".into();
            t.classification.why = "the newest failed migrate log was written before the backup was made, so the backup already holds what followed it; pass the failed upgrade's output with --log FILE if there is one.".into();
            t.classification.commands.clear();
        }
    }

    // Duplicate objects: the repair path's own assessment decides whether marking is right.
    if t.classification.class == Class::DuplicateObjects {
        if let Some(f) = t.classification.failure.clone() {
            let wanted = f.database.clone().unwrap_or_else(|| "main".into());
            let pick = clients.iter_mut().find(|(n, _)| *n == wanted);
            let a = match pick {
                Some((name, client)) => match assess(&f, name, client) {
                    Ok(a) => a,
                    Err(e) => {
                        t.upgrade.notes.push(e.to_string());
                        assess_offline(&f, &wanted)
                    }
                },
                None => assess_offline(&f, &wanted),
            };
            t.assessment = Some(format!(
                "{}: {}",
                match a.verdict {
                    Verdict::MarkComplete => "mark complete",
                    Verdict::DoNotMark => "do not mark",
                    Verdict::NothingToDo => "nothing to do",
                },
                a.reason
            ));
            if a.verdict == Verdict::DoNotMark && a.object_exists == Some(false) {
                // The object is gone since (dropped, or restored over): the error no longer
                // holds and the migration can simply run again.
                t.classification.verdict =
                    "fix forward: the object is gone; run the migrations again".into();
                t.classification.commands = vec![rake_command(inst.kind, "db:migrate")];
            } else if a.verdict == Verdict::DoNotMark && a.object_exists == Some(true) {
                // Rewind looked and marking would be wrong: the object is not what the
                // migration makes; the schema cannot be readily repaired.
                t.classification.decision = Decision::RollbackNeeded;
                t.classification.verdict = "a rollback is needed".into();
                t.classification.why = format!(
                    "the object the migration creates is there but marking it complete would be wrong ({}); the schema is not what this version expects.",
                    a.reason.trim_end_matches('.')
                );
                t.classification.commands.clear();
            }
        }
    }
    t.hint = next_step(&t, inst.kind);
    t
}

/// The hint that follows the verdict: what the decision means on this installation kind.
fn next_step(t: &Triage, kind: Option<InstallKind>) -> Option<String> {
    use crate::hints::{hint, MessageClass};
    let class = match (t.classification.decision, t.classification.class) {
        (Decision::NothingFailed, _) | (_, Class::PostgresqlVersion) => return None,
        (Decision::RollbackNeeded, _) => MessageClass::RollbackNeeded {
            backup_version: t.upgrade.backup_version.clone(),
        },
        (Decision::FixForward, Class::Configuration) => MessageClass::ReconfigureFailed,
        (Decision::FixForward, _) => MessageClass::MigrateFailed,
    };
    hint(kind, &class)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/triage")
            .join(name);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    fn run(name: &str) -> Classification {
        let text = fixture(name);
        classify(
            &text,
            &log::parse_str(&text),
            Some(InstallKind::Omnibus),
            name,
        )
    }

    #[test]
    fn unfinished_batched_background_migration_shows_gitlabs_finalize_command() {
        let c = run("bbm-unfinished.log");
        assert_eq!(c.class, Class::UnfinishedBackgroundMigration);
        assert_eq!(c.decision, Decision::FixForward);
        assert!(c.verdict.starts_with("fix forward: "), "{c:?}");
        assert_eq!(
            c.commands,
            vec![
                "sudo gitlab-rake gitlab:background_migrations:finalize[BackfillProjectNamespaceDetails,projects,id,'[]']",
                "sudo gitlab-rake db:migrate",
            ]
        );
        assert!(
            c.evidence[0].contains("BackfillProjectNamespaceDetails on table projects is 'active'"),
            "{c:?}"
        );
        assert_eq!(c.line, Some(7));
        // Syslog's #011 tabs, a wrapped line and GitLab 14's wording.
        let c = run("bbm-unfinished-syslog.log");
        assert_eq!(c.class, Class::UnfinishedBackgroundMigration);
        assert_eq!(
            c.commands[0],
            "sudo gitlab-rake gitlab:background_migrations:finalize[ProjectNamespaces::BackfillProjectNamespaces,projects,id,'[null\\,\"up\"]']"
        );
        assert!(
            c.evidence[0]
                .contains("ProjectNamespaces::BackfillProjectNamespaces on table projects"),
            "{c:?}"
        );
    }

    #[test]
    fn duplicate_objects_go_to_the_repair_path() {
        let c = run("duplicate-table.log");
        assert_eq!(c.class, Class::DuplicateObjects);
        assert_eq!(c.decision, Decision::FixForward);
        assert_eq!(c.commands, vec!["rewind repair --log duplicate-table.log"]);
        assert_eq!(
            c.failure.as_ref().and_then(|f| f.version()),
            Some("20240417093215")
        );
    }

    #[test]
    fn a_duplicated_key_is_a_data_problem_showing_the_row() {
        let c = run("unique-index-duplicated.log");
        assert_eq!(c.class, Class::DataProblem);
        assert_eq!(c.decision, Decision::FixForward);
        assert!(
            c.evidence
                .contains(&"row: (name) = (bug) is duplicated".to_string()),
            "{c:?}"
        );
        // The older shape (a primary key's duplicate).
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../tests/fixtures/migrate-logs/unique-violation.log"),
        )
        .unwrap();
        let c = classify(&text, &log::parse_str(&text), None, "x");
        assert_eq!(c.class, Class::DataProblem);
        assert!(
            c.evidence
                .contains(&"row: (id) = (9) already exists".to_string()),
            "{c:?}"
        );
    }

    #[test]
    fn removed_settings_are_a_configuration_error() {
        let c = run("reconfigure-removed-config.log");
        assert_eq!(c.class, Class::Configuration);
        assert_eq!(c.decision, Decision::FixForward);
        assert_eq!(
            c.evidence,
            vec![
                "setting: unicorn['worker_processes'] (removed in 14.0)",
                "setting: unicorn['worker_timeout'] (removed in 14.0)",
            ]
        );
        assert_eq!(c.commands.last().unwrap(), "sudo gitlab-ctl reconfigure");
    }

    #[test]
    fn postgresql_version_problems() {
        let c = run("pg-dump-version-mismatch.log");
        assert_eq!(c.class, Class::PostgresqlVersion);
        assert_eq!(c.decision, Decision::FixForward);
        assert!(c.verdict.contains("PostgreSQL 16"), "{c:?}");
        assert_eq!(
            c.evidence,
            vec!["pg_dump 14.11 cannot dump a PostgreSQL 16.2 server"]
        );
        let c = run("pg-unsupported-version.log");
        assert_eq!(c.class, Class::PostgresqlVersion);
        assert!(
            c.verdict.contains("upgrade PostgreSQL to 13 or newer"),
            "{c:?}"
        );
        assert_eq!(c.commands[0], "sudo gitlab-ctl pg-upgrade");
    }

    #[test]
    fn an_unrecognised_failure_needs_a_rollback_and_no_failure_needs_nothing() {
        let text = crate::sandbox::upgrade::upgrade_migrate_log();
        let c = classify(&text, &log::parse_str(&text), None, "x");
        assert_eq!(c.class, Class::Other);
        assert_eq!(c.decision, Decision::RollbackNeeded);
        assert_eq!(c.verdict, "a rollback is needed");
        let ok = "== 20240101000000 AddFoo: migrating ====\n-- add_column(:a, :b, :text)\n== 20240101000000 AddFoo: migrated (0.01s) ====\n";
        let c = classify(ok, &log::parse_str(ok), None, "x");
        assert_eq!(
            (c.class, c.decision),
            (Class::NoFailure, Decision::NothingFailed)
        );
    }
}
