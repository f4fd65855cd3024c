//! Restoring the databases of a backup: preconditions first (version, confirmation,
//! reachability, dump present), then per database snapshot → drop → load → verify, each
//! journaled before and after, cancellable between steps, with progress through a
//! [`Sink`].
//!
//! Databases are restored as GitLab does: `main` from `db/database.sql.gz` first, then
//! `ci` from `db/ci_database.sql.gz`. A missing ci dump is GitLab's "Source backup for
//! the database ci doesn't exist. Skipping the task" (and later databases are not tried);
//! a missing main dump is an error.
//!
//! The dump is read twice, both times streamed from inside the archive: a cheap first pass
//! for the catalogue (what it creates, for the leftovers and their verification; the roles
//! it names and the extensions it needs, checked against what the restoring role may do
//! before anything changes), then the load. The load goes through the [`Loader`] trait.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use super::drop::{drop_all, DropConfirmation, DropError, DropOptions, DropPlan, DropReport};
use super::inventory::{inventory, Inventory};
use super::leftovers::{self, CatalogCost, DumpCatalog, Leftovers};
use super::load::{
    excerpt, kept_by_drop, load_dump, skip_reason, LoadOptions, OwnedElsewhere, PhaseReport,
    SkippedStatement, StatementError, StatementFacts,
};
use super::privileges::{check_privileges, PrecheckError, PrivilegeReport};
use super::snapshot::{take_snapshot, Snapshot, SnapshotError, SnapshotTarget};
use super::verify::{self, Expected, TableRows, VerifyReport};
use crate::dump::{describe, DumpParser, Item, Position};
use crate::journal::{Journal, JournalError};
use crate::pg::conn::{ConnError, ConnSpec};
use crate::pg::tools;
use crate::progress::{Cancel, Event, Phase, Sink, SinkExt};
use crate::root::HostRoot;
use crate::version::GitLabVersion;

/// GitLab's member name for a database's dump: `db/database.sql.gz` for main,
/// `db/<name>_database.sql.gz` otherwise.
pub fn member_for(connection: impl AsRef<str>) -> String {
    let connection = connection.as_ref();
    if connection == "main" {
        "db/database.sql.gz".to_string()
    } else {
        format!("db/{connection}_database.sql.gz")
    }
}

/// GitLab's message for a missing non-main dump.
pub fn skipping_message(connection: impl AsRef<str>) -> String {
    let connection = connection.as_ref();
    format!("Source backup for the database {connection} doesn't exist. Skipping the task")
}

/// GitLab's version-mismatch message (`lib/backup/restore/preconditions.rb`).
pub fn version_mismatch_message(installed: &str, backup: &str) -> String {
    format!(
        "GitLab version mismatch:\n  Your current GitLab version ({installed}) differs from the GitLab version in the backup!\n  Please switch to the following version and try again:\n  version: {backup}\n\n  Hint: git checkout v{backup}"
    )
}

/// A decompressed dump stream, with the compressed progress.
pub struct OpenedDump {
    pub reader: Box<dyn Read + Send>,
    /// Compressed size of the member.
    pub compressed_size: u64,
    /// Compressed bytes read so far.
    pub compressed_read: Arc<dyn Fn() -> u64 + Send + Sync>,
}

/// Where dumps come from (the backup archive).
pub trait DumpSource {
    /// Whether the backup holds `member`.
    fn has(&self, member: &str) -> bool;
    /// Open `member` for streaming, decompressed. Read errors must name the member.
    fn open(&self, member: &str) -> Result<OpenedDump, String>;
    /// The archive, for messages.
    fn describe(&self) -> String;
}

/// What a load did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LoadOutcome {
    /// Which loader ran (`psql`, `parallel`).
    pub loader: String,
    /// Rows per table, as their COPY blocks carried them.
    pub tables: Vec<TableRows>,
    /// Errors outside GitLab's ignore list (each with its object where known).
    pub errors: Vec<String>,
    /// Lines GitLab ignores too (`WARNING:`, `... does not exist`, `must be owner of`).
    pub ignored: Vec<String>,
    /// Ownership and privilege statements the restoring role may not run, and creations of
    /// objects kept as they were (owned by another role): skipped, as GitLab's restore
    /// leaves them, each with its object.
    pub skipped_privilege: Vec<SkippedStatement>,
    /// Decompressed bytes loaded.
    pub bytes: u64,
    pub seconds: f64,
    /// Statements and time per phase (parallel loader).
    pub phases: Vec<PhaseReport>,
}

/// Input of a load.
pub struct LoadInput<'a> {
    pub dump: OpenedDump,
    pub member: &'a str,
    pub spec: &'a ConnSpec,
    pub server_version_num: u32,
    pub jobs: usize,
    pub continue_on_error: bool,
}

/// Loads a dump into an emptied database.
pub trait Loader {
    fn load(
        &self,
        input: LoadInput<'_>,
        sink: &dyn Sink,
        cancel: &Cancel,
    ) -> Result<LoadOutcome, String>;
}

/// Rewind's parallel streaming loader ([`load_dump`]): schema in order, table data over
/// `jobs` connections, indexes concurrently, the rest in order; same result as psql.
#[derive(Debug, Clone, Copy, Default)]
pub struct ParallelLoader;

/// Reports the data phase in compressed bytes of the member (its size is known, so the
/// front end can show a percentage, MB/s and an ETA).
struct CompressedProgress<'a> {
    inner: &'a dyn Sink,
    read: Arc<dyn Fn() -> u64 + Send + Sync>,
    size: u64,
}

impl Sink for CompressedProgress<'_> {
    fn event(&self, event: Event) {
        match event {
            Event::Progress {
                phase: Phase::Data,
                current,
                rows,
                ..
            } => self.inner.event(Event::Progress {
                phase: Phase::Data,
                done: (self.read)(),
                total: Some(self.size),
                current,
                rows,
            }),
            Event::PhaseStarted {
                phase: Phase::Data, ..
            } => self.inner.event(Event::PhaseStarted {
                phase: Phase::Data,
                total: Some(self.size),
            }),
            other => self.inner.event(other),
        }
    }
}

impl Loader for ParallelLoader {
    fn load(
        &self,
        input: LoadInput<'_>,
        sink: &dyn Sink,
        cancel: &Cancel,
    ) -> Result<LoadOutcome, String> {
        let mut opts = LoadOptions::new(input.spec.clone());
        opts.jobs = input.jobs.max(1);
        opts.continue_on_error = input.continue_on_error;
        opts.cancel = cancel.clone();
        let progress = CompressedProgress {
            inner: sink,
            read: input.dump.compressed_read.clone(),
            size: input.dump.compressed_size,
        };
        let reader = BufReader::with_capacity(1 << 20, input.dump.reader);
        let report = load_dump(reader, &opts, &progress).map_err(|e| e.to_string())?;
        Ok(LoadOutcome {
            loader: format!("parallel, {} jobs", report.jobs),
            tables: report
                .tables
                .iter()
                .map(|t| TableRows {
                    schema: t.table.schema.clone().unwrap_or_else(|| "public".into()),
                    table: t.table.name.clone(),
                    rows: t.rows,
                })
                .collect(),
            errors: report.failed.iter().map(|e| e.to_string()).collect(),
            ignored: report.ignored.iter().map(|e| e.to_string()).collect(),
            skipped_privilege: report.skipped_privilege.clone(),
            bytes: report.bytes,
            seconds: report.seconds,
            phases: report.phases,
        })
    }
}

/// Whether GitLab ignores a psql stderr line (`lib/backup/targets/database.rb`).
pub fn gitlab_ignores(line: &str) -> bool {
    line.contains("WARNING:")
        || line.trim_end().ends_with("does not exist")
        || line.contains("must be owner of")
}

/// GitLab's own pipeline: the decompressed dump into one `psql` (of the server's major
/// version), no `ON_ERROR_STOP`, errors filtered by GitLab's ignore list. Rows per table
/// are counted from the stream on the way through.
#[derive(Debug, Clone)]
pub struct PsqlLoader {
    pub root: HostRoot,
}

impl Loader for PsqlLoader {
    fn load(
        &self,
        input: LoadInput<'_>,
        sink: &dyn Sink,
        cancel: &Cancel,
    ) -> Result<LoadOutcome, String> {
        let started = Instant::now();
        let major = tools::major_from_version_num(input.server_version_num);
        let psql = tools::find_tool(&self.root, "psql", major).map_err(|e| e.to_string())?;
        let spec = input.spec;
        let mut cmd = spec.client_command(&psql.path, "rewind-restore");
        // `-f -` reads stdin as GitLab's `psql <db>` does, with line numbers in the errors
        // (to tell which statement failed).
        cmd.args(["--no-psqlrc", "--quiet", "--no-password", "-f", "-"]);
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", psql.path.display()))?;
        let stderr = child.stderr.take();
        let err_thread = std::thread::spawn(move || {
            let mut lines = Vec::new();
            if let Some(e) = stderr {
                for l in BufReader::new(e).lines().map_while(Result::ok) {
                    lines.push(l);
                }
            }
            lines
        });
        sink.event(Event::PhaseStarted {
            phase: Phase::Data,
            total: Some(input.dump.compressed_size),
        });
        let stdin = child.stdin.take();
        let total = input.dump.compressed_size;
        let progress = input.dump.compressed_read.clone();
        let tee = Tee {
            inner: input.dump.reader,
            out: stdin,
        };
        let mut parser = DumpParser::new(BufReader::with_capacity(1 << 20, tee));
        let mut copies: Vec<TableRows> = Vec::new();
        let mut chunk = Vec::with_capacity(1 << 20);
        let mut last = Instant::now();
        let mut failure: Option<String> = None;
        // Statements whose failure may be skipped, by the dump line psql reports (their `;`).
        let mut notes: std::collections::HashMap<u64, (StatementFacts, String, Position, String)> =
            std::collections::HashMap::new();
        'items: loop {
            if cancel.is_cancelled() {
                failure = Some(format!(
                    "cancelled at {} of {}",
                    parser.position(),
                    input.member
                ));
                break;
            }
            let header = match parser.next_item() {
                Ok(None) => break,
                Ok(Some(Item::Copy(h))) => h,
                Ok(Some(Item::Statement(st))) => {
                    let facts = StatementFacts::of(&st.sql);
                    if facts.any() {
                        let end = st.at.line + st.sql.matches('\n').count() as u64;
                        notes.insert(
                            end,
                            (
                                facts,
                                describe(&st.sql, st.toc.as_deref()),
                                st.at,
                                excerpt(&st.sql),
                            ),
                        );
                    }
                    continue;
                }
                Ok(Some(_)) => continue,
                Err(e) => {
                    failure = Some(format!("{}: {e}", input.member));
                    break;
                }
            };
            let schema = header
                .table
                .schema
                .clone()
                .unwrap_or_else(|| "public".into());
            let table = header.table.name.clone();
            let mut rows = 0u64;
            loop {
                chunk.clear();
                match parser.read_copy_chunk(&mut chunk, 1 << 20) {
                    Ok(c) => {
                        rows += c.rows;
                        if last.elapsed().as_millis() >= 200 {
                            last = Instant::now();
                            sink.event(Event::Progress {
                                phase: Phase::Data,
                                done: progress(),
                                total: Some(total),
                                current: Some(format!("{schema}.{table}")),
                                rows: Some(rows),
                            });
                        }
                        if c.done {
                            break;
                        }
                    }
                    Err(e) => {
                        failure = Some(format!("{}: {e}", input.member));
                        break 'items;
                    }
                }
                if cancel.is_cancelled() {
                    failure = Some(format!(
                        "cancelled in the data of {schema}.{table} at {} of {}",
                        parser.position(),
                        input.member
                    ));
                    break 'items;
                }
            }
            sink.event(Event::TableLoaded {
                table: format!("{schema}.{table}"),
                rows,
            });
            copies.push(TableRows {
                schema,
                table,
                rows,
            });
        }
        let bytes = parser.bytes_read();
        // Closes psql's stdin.
        drop(parser);
        if failure.is_some() {
            // Do not let psql finish a half-read script as if it were whole.
            let _ = child.kill();
        }
        let status = child.wait().map_err(|e| format!("waiting for psql: {e}"))?;
        let stderr_lines = err_thread.join().unwrap_or_default();
        sink.event(Event::PhaseFinished {
            phase: Phase::Data,
            ok: failure.is_none() && status.success(),
        });
        if let Some(f) = failure {
            return Err(f);
        }
        let (ignored, errors, skipped_privilege) = classify_psql_stderr(stderr_lines, &notes);
        if !status.success() {
            return Err(format!(
                "psql exited with {status}: {}",
                errors
                    .iter()
                    .take(5)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(" | ")
            ));
        }
        Ok(LoadOutcome {
            loader: "psql".into(),
            tables: copies,
            errors,
            ignored,
            skipped_privilege,
            bytes,
            seconds: started.elapsed().as_secs_f64(),
            phases: Vec::new(),
        })
    }
}

/// `psql:<stdin>:LINE: ERROR:  message` -> (LINE, the text from `ERROR:` on).
fn psql_error_line(line: &str) -> Option<(u64, &str)> {
    let rest = line.strip_prefix("psql:")?;
    let rest = &rest[rest.find(':')? + 1..];
    let colon = rest.find(':')?;
    let n: u64 = rest[..colon].parse().ok()?;
    let msg = rest[colon + 1..].trim_start();
    msg.starts_with("ERROR:").then_some((n, msg))
}

/// Split psql's stderr as GitLab's filter does (ignored / errors), except that errors of
/// statements the parallel loader skips (by statement kind and error, see
/// `load::skip_reason`) are reported as skipped, with their object. Continuation lines
/// (`DETAIL:`, `HINT:`) follow their error.
#[allow(clippy::type_complexity)]
fn classify_psql_stderr(
    lines: Vec<String>,
    notes: &std::collections::HashMap<u64, (StatementFacts, String, Position, String)>,
) -> (Vec<String>, Vec<String>, Vec<SkippedStatement>) {
    let mut ignored = Vec::new();
    let mut errors = Vec::new();
    let mut skipped: Vec<SkippedStatement> = Vec::new();
    let mut kept = OwnedElsewhere::new();
    let mut in_skipped = false;
    for l in lines {
        if let Some((n, msg)) = psql_error_line(&l) {
            in_skipped = false;
            if let Some((facts, object, at, statement)) = notes.get(&n) {
                let text = msg.trim_start_matches("ERROR:").trim();
                if let Some(reason) = skip_reason(facts, None, text, &kept) {
                    skipped.push(SkippedStatement {
                        reason,
                        error: StatementError {
                            phase: Phase::Data,
                            object: object.clone(),
                            at: *at,
                            statement: statement.clone(),
                            message: msg.to_string(),
                            sqlstate: None,
                        },
                    });
                    in_skipped = true;
                    continue;
                }
                if gitlab_ignores(&l) {
                    kept.extend(kept_by_drop(facts, text));
                }
            }
        } else if in_skipped && !l.starts_with("psql:") {
            if let Some(s) = skipped.last_mut() {
                s.error.message.push_str(&format!(" ({})", l.trim()));
            }
            continue;
        } else {
            in_skipped = false;
        }
        if gitlab_ignores(&l) {
            ignored.push(l);
        } else {
            errors.push(l);
        }
    }
    (ignored, errors, skipped)
}

/// Passes everything read on to psql's stdin.
struct Tee<R> {
    inner: R,
    out: Option<std::process::ChildStdin>,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(w) = self.out.as_mut() {
            w.write_all(&buf[..n]).map_err(|e| {
                std::io::Error::new(e.kind(), format!("psql stopped reading the dump: {e}"))
            })?;
        }
        Ok(n)
    }
}

/// One database to restore.
#[derive(Debug, Clone, Serialize)]
pub struct DatabaseJob {
    /// Connection name (`main`, `ci`).
    pub connection: crate::detect::Connection,
    pub spec: ConnSpec,
    /// Member in the backup (`db/database.sql.gz`).
    pub member: String,
}

/// Options of a restore.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// Values of `--confirm-drop`: each database's name must be among them.
    pub confirm_drop: Vec<String>,
    pub snapshot: bool,
    /// Snapshots this recovery already took (a retry or a resumed session), by database
    /// name: reused instead of taking another (whatever `snapshot` says); each must still
    /// be there. A database without one gets a new snapshot when `snapshot` is on.
    pub reuse_snapshots: BTreeMap<String, PathBuf>,
    pub jobs: usize,
    pub continue_on_error: bool,
    pub allow_version_mismatch: bool,
    pub drop: DropOptions,
    /// The target is a throwaway database made for a restore test (`rewind drill
    /// --backup`): nothing there to protect, so no safety snapshot and no warning about it.
    pub throwaway: bool,
    /// Restore beside the live database and swap ([`super::beside`]): no snapshot, no
    /// drop. `None`: in place.
    pub beside: Option<BesidePlan>,
    /// Catalogues of dump members read while the archive was verified, by member name
    /// (`db/database.sql.gz`): the first pass uses them instead of reading the dump again.
    pub catalogs: BTreeMap<String, DumpCatalog>,
}

/// How the beside strategy runs.
#[derive(Debug, Clone, Serialize)]
pub struct BesidePlan {
    pub admin: super::beside::AdminPath,
    /// Time stamp of the new and kept databases' names.
    pub stamp: String,
}

/// The facts a restore compares against.
#[derive(Debug, Clone)]
pub struct RestoreFacts {
    pub backup_version: Option<GitLabVersion>,
    /// `:gitlab_version:` as written (for the mismatch message when it does not parse).
    pub backup_version_text: Option<String>,
    pub installed_version: Option<GitLabVersion>,
    pub db_version: Option<String>,
    /// Host backup directory, made real through the root (journal, snapshots).
    pub backup_path: PathBuf,
}

/// Errors of a database restore. Each says what changed (nothing, unless stated).
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("{0}")]
    VersionMismatch(String),
    #[error(transparent)]
    Confirm(DropError),
    #[error("{0}. Nothing was changed")]
    Connect(#[from] ConnError),
    #[error("Source database file does not exist {member} in {archive}. Nothing was changed")]
    MissingMain { member: String, archive: String },
    #[error("cannot read the inventory of `{database}`: {detail}. Nothing was changed")]
    Inventory { database: String, detail: String },
    #[error("reading the dump {member} failed: {detail}. Nothing was changed")]
    Catalog { member: String, detail: String },
    #[error(transparent)]
    Privileges(#[from] PrecheckError),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error(transparent)]
    Drop(DropError),
    #[error("loading {member} into `{database}` failed: {detail}. The tables were dropped and the load is incomplete: do not start GitLab. Run the restore again (drop + load is idempotent){snapshot}")]
    Load {
        member: String,
        database: String,
        detail: String,
        snapshot: String,
    },
    #[error("loading {member} into `{database}` reported {count} error(s) outside GitLab's ignore list (first: {first}). Rerun with --continue-on-error to accept them as GitLab does, or fix their cause{snapshot}")]
    LoadErrors {
        member: String,
        database: String,
        count: usize,
        first: String,
        snapshot: String,
    },
    #[error("verification of `{database}` could not run: {detail}")]
    Verify { database: String, detail: String },
    #[error("{detail}")]
    Beside {
        detail: String,
        /// Whether the live database (or anything else) changed.
        changed: bool,
    },
    #[error("restore of `{database}` cancelled {when}")]
    Cancelled { database: String, when: String },
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// What a failed step left behind, for the front ends' exit codes and wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Refused or stopped before anything on the host changed.
    NothingChanged,
    /// Stopped after something changed (or it cannot be known that nothing did).
    Changed,
    /// Cancelled by the user (Ctrl-C, SIGTERM, SIGHUP).
    Interrupted,
}

impl RestoreError {
    /// What this error left behind.
    pub fn outcome(&self) -> Outcome {
        match self {
            RestoreError::VersionMismatch(_)
            | RestoreError::Confirm(_)
            | RestoreError::Connect(_)
            | RestoreError::MissingMain { .. }
            | RestoreError::Inventory { .. }
            | RestoreError::Catalog { .. }
            | RestoreError::Privileges(_)
            | RestoreError::Snapshot(_) => Outcome::NothingChanged,
            RestoreError::Cancelled { .. } => Outcome::Interrupted,
            RestoreError::Beside { changed: false, .. } => Outcome::NothingChanged,
            _ => Outcome::Changed,
        }
    }
}

/// What happened to one database.
#[derive(Debug, Clone, Serialize)]
pub struct DatabaseOutcome {
    pub connection: crate::detect::Connection,
    pub database: String,
    pub member: String,
    /// `restored`, or GitLab's skip message for a missing non-main dump.
    pub status: String,
    pub snapshot: Option<Snapshot>,
    pub drop: Option<DropReport>,
    pub load: Option<LoadOutcome>,
    pub catalog_cost: Option<CatalogCost>,
    pub leftovers: Option<Leftovers>,
    /// What the restoring role may do with the dump (checked before the drop).
    pub privileges: Option<PrivilegeReport>,
    pub verify: Option<VerifyReport>,
    /// The beside strategy: the new database, and the kept one after the swap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub beside: Option<super::beside::BesideOutcome>,
    /// The failed upgrade's database, kept whole under this name (beside strategy, after
    /// the swap).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept_database: Option<String>,
}

/// Preconditions on one database, checked before anything is changed anywhere.
#[derive(Debug)]
pub struct Prepared {
    pub job: DatabaseJob,
    pub confirm: DropConfirmation,
    pub inventory: Inventory,
}

/// Check the version precondition (GitLab's exact message) unless allowed.
pub fn check_version(facts: &RestoreFacts, allow_mismatch: bool) -> Result<(), RestoreError> {
    let backup = facts
        .backup_version
        .as_ref()
        .map(|v| v.to_string())
        .or_else(|| facts.backup_version_text.clone());
    let same = match (&facts.backup_version, &facts.installed_version) {
        (Some(b), Some(i)) => b.same_release(i),
        _ => false,
    };
    if same || allow_mismatch {
        return Ok(());
    }
    let installed = facts
        .installed_version
        .as_ref()
        .map(|v| v.to_string())
        .unwrap_or_else(|| "unknown".into());
    let unparsed = match (&facts.backup_version, &facts.backup_version_text) {
        (None, Some(text)) => format!(
            " The backup's manifest gives `:gitlab_version: {text}`, which is not a GitLab version, so the backup's version is unknown (the one in its file name is not taken instead)."
        ),
        _ => String::new(),
    };
    Err(RestoreError::VersionMismatch(format!(
        "{}\n\nRewind could not confirm that the installed version equals the backup's.{unparsed} Install that version first, or pass --allow-version-mismatch if you are sure.",
        version_mismatch_message(&installed, backup.as_deref().unwrap_or("unknown"))
    )))
}

/// Confirmation and reachability of one database (read-only connection).
pub fn prepare(job: &DatabaseJob, opts: &RestoreOptions) -> Result<Prepared, RestoreError> {
    let dbname = &job.spec.dbname;
    let given = opts
        .confirm_drop
        .iter()
        .find(|c| *c == dbname)
        .or(opts.confirm_drop.first());
    let confirm =
        DropConfirmation::new(given.map(String::as_str), dbname).map_err(RestoreError::Confirm)?;
    let mut client = job.spec.connect()?;
    let inv = inventory(&mut client).map_err(|e| RestoreError::Inventory {
        database: dbname.clone(),
        detail: e.to_string(),
    })?;
    Ok(Prepared {
        job: job.clone(),
        confirm,
        inventory: inv,
    })
}

/// The leftovers of one database relative to a dump (first pass over the member): with
/// the catalogue read while the archive was verified when there is one (`known`; its cost
/// is then nothing), else read from the member now.
pub fn catalog_and_leftovers(
    known: Option<&DumpCatalog>,
    source: &dyn DumpSource,
    member: &str,
    spec: &ConnSpec,
    inv: &Inventory,
    db_version: Option<&str>,
) -> Result<(DumpCatalog, CatalogCost, Leftovers), RestoreError> {
    let (catalog, cost) = match known {
        Some(c) => (
            c.clone(),
            CatalogCost {
                bytes: 0,
                seconds: 0.0,
            },
        ),
        None => {
            let cat_err = |detail: String| RestoreError::Catalog {
                member: member.to_string(),
                detail,
            };
            let opened = source.open(member).map_err(cat_err)?;
            leftovers::read_catalog(opened.reader, member).map_err(cat_err)?
        }
    };
    let left = leftovers_of(&catalog, member, spec, inv, db_version)?;
    Ok((catalog, cost, left))
}

/// The leftovers of the live database against a dump's catalogue (read now or while the
/// archive was verified); refuses a dump that connects to another database.
pub fn leftovers_of(
    catalog: &DumpCatalog,
    member: &str,
    spec: &ConnSpec,
    inv: &Inventory,
    db_version: Option<&str>,
) -> Result<Leftovers, RestoreError> {
    let cat_err = |detail: String| RestoreError::Catalog {
        member: member.to_string(),
        detail,
    };
    if let Some((other, at)) = catalog.connects.iter().find(|(t, _)| *t != spec.dbname) {
        return Err(cat_err(format!(
            "the dump connects to another database (`\\connect {other}` at {at}): Rewind restores into `{}` only and refuses a dump that would go on in another database",
            spec.dbname
        )));
    }
    let newer = match db_version {
        Some(v) => {
            let mut c = spec.connect()?;
            leftovers::newer_migrations(&mut c, v).map_err(cat_err)?
        }
        None => Vec::new(),
    };
    Ok(leftovers::compute(inv, catalog, &newer))
}

/// A database whose first pass and snapshot are done, ready to be replaced.
struct Staged {
    prepared: Prepared,
    catalog: DumpCatalog,
    cost: CatalogCost,
    left: Leftovers,
    privileges: PrivilegeReport,
    snapshot: Option<Snapshot>,
    snap_hint: String,
}

/// Everything a restore run shares.
pub struct RestoreRun<'a> {
    pub root: &'a HostRoot,
    pub source: &'a dyn DumpSource,
    pub loader: &'a dyn Loader,
    pub facts: &'a RestoreFacts,
    pub opts: &'a RestoreOptions,
    pub journal: &'a Journal,
    pub sink: &'a dyn Sink,
    pub cancel: &'a Cancel,
}

impl RestoreRun<'_> {
    /// Restore every database of `jobs` (main first). All preconditions of all databases
    /// are checked before the first one is changed.
    pub fn run(&self, jobs: &[DatabaseJob]) -> Result<Vec<DatabaseOutcome>, RestoreError> {
        check_version(self.facts, self.opts.allow_version_mismatch)?;
        if !self.facts.backup_version.as_ref().is_some_and(|b| {
            self.facts
                .installed_version
                .as_ref()
                .is_some_and(|i| b.same_release(i))
        }) {
            self.journal.note(
                "restore.preconditions",
                "version mismatch accepted (--allow-version-mismatch)",
                serde_json::json!({
                    "backup": self.facts.backup_version_text,
                    "installed": self.facts.installed_version.as_ref().map(|v| v.to_string()),
                }),
            )?;
            self.sink
                .warn("restoring a backup of another GitLab version (--allow-version-mismatch)");
        }
        // GitLab: main must exist; a missing later dump skips it and the rest.
        let mut active = Vec::new();
        let mut outcomes = Vec::new();
        for job in jobs {
            if !self.source.has(&job.member) {
                if job.connection == "main" {
                    return Err(RestoreError::MissingMain {
                        member: job.member.clone(),
                        archive: self.source.describe(),
                    });
                }
                let msg = skipping_message(&job.connection);
                self.sink.info(msg.clone());
                self.journal.note(
                    "restore.skip",
                    msg.clone(),
                    serde_json::json!({"member": job.member}),
                )?;
                outcomes.push(DatabaseOutcome {
                    connection: job.connection.clone(),
                    database: job.spec.dbname.clone(),
                    member: job.member.clone(),
                    status: msg,
                    snapshot: None,
                    drop: None,
                    load: None,
                    catalog_cost: None,
                    leftovers: None,
                    privileges: None,
                    verify: None,
                    beside: None,
                    kept_database: None,
                });
                break;
            }
            active.push(job);
        }
        let mut prepared = Vec::new();
        for job in &active {
            let who = job.spec.connect_as();
            self.journal.note(
                "restore.connect",
                format!("`{}` connects {}", job.spec.dbname, who.describe()),
                serde_json::json!({"database": job.spec.dbname, "role": job.spec.user,
                    "connect_as": who}),
            )?;
            prepared.push(prepare(job, self.opts)?);
        }
        // Every database's first pass (catalogue, privileges) and snapshot come before any
        // database is dropped: a refusal of ci leaves main untouched too.
        let mut staged = Vec::new();
        for p in prepared {
            staged.push(self.first_pass(p)?);
        }
        let mut done = Vec::new();
        if let Some(plan) = &self.opts.beside {
            // Load and verify every new database before the first swap; any failure
            // removes the new ones and leaves the live ones as they were.
            let mut made: Vec<String> = Vec::new();
            for st in staged {
                let spec = st.prepared.job.spec.clone();
                match self.build_beside(st, plan, &mut made) {
                    Ok(o) => done.push(o),
                    Err(e) => {
                        let mut left = Vec::new();
                        for new in &made {
                            if let Err(d) = super::beside::drop_new(
                                &plan.admin,
                                &spec,
                                new,
                                self.journal,
                                "beside.remove",
                            ) {
                                left.push(format!("`{new}` ({d})"));
                            }
                        }
                        let cleaned = if left.is_empty() {
                            if made.is_empty() {
                                String::new()
                            } else {
                                format!(" The new database(s) were removed ({}); the live database(s) were not changed.", made.join(", "))
                            }
                        } else {
                            format!(" Removing the new database(s) failed: {}; drop them with `rewind cleanup`. The live database(s) were not changed.", left.join(", "))
                        };
                        let detail = format!("{}{cleaned}", e.to_string().replace(
                            "The tables were dropped and the load is incomplete: do not start GitLab. Run the restore again (drop + load is idempotent)",
                            "The load went into a new database beside the live one"));
                        return Err(match e {
                            RestoreError::Cancelled { .. } => e,
                            _ => RestoreError::Beside {
                                detail,
                                changed: !left.is_empty(),
                            },
                        });
                    }
                }
            }
            done.extend(outcomes);
            return Ok(done);
        }
        for st in staged {
            done.push(self.replace(st)?);
        }
        done.extend(outcomes);
        Ok(done)
    }

    fn check_cancel(&self, database: &str, when: &str) -> Result<(), RestoreError> {
        if self.cancel.is_cancelled() {
            let _ = self.journal.note(
                "restore.cancelled",
                format!("cancelled {when}"),
                serde_json::json!({"database": database}),
            );
            return Err(RestoreError::Cancelled {
                database: database.to_string(),
                when: when.to_string(),
            });
        }
        Ok(())
    }

    /// Everything before the drop: catalogue and leftovers, privileges, snapshot.
    fn first_pass(&self, p: Prepared) -> Result<Staged, RestoreError> {
        let job = &p.job;
        let db = job.spec.dbname.clone();
        let j = self.journal;
        let step = |s: &str| format!("restore.{}.{s}", job.connection);

        // 1. Catalogue of the dump and leftovers (read-only).
        j.begin(
            &step("catalog"),
            "read the dump's table of contents",
            serde_json::json!({"member": job.member, "database": db}),
        )?;
        let known = self.opts.catalogs.get(&job.member);
        let first = catalog_and_leftovers(
            known,
            self.source,
            &job.member,
            &job.spec,
            &p.inventory,
            self.facts.db_version.as_deref(),
        );
        let (catalog, cost, left) = match first {
            Ok(x) => x,
            Err(e) => {
                j.end(
                    &step("catalog"),
                    "failed",
                    serde_json::json!({"error": e.to_string()}),
                )?;
                return Err(e);
            }
        };
        j.end(
            &step("catalog"),
            "ok",
            serde_json::json!({"objects": catalog.len(), "leftovers": left.len(),
                "bytes": cost.bytes, "seconds": cost.seconds,
                "read_while_verifying": known.is_some()}),
        )?;
        for l in &left.items {
            self.sink.info(format!(
                "leftover {} {}{}",
                l.kind.label(),
                l.display_name(),
                if l.removed_by_drop {
                    ""
                } else {
                    " (survives the drop)"
                }
            ));
        }
        // What the restoring role may do with the dump (read-only): refuse now, while
        // nothing has changed, what the load could not create.
        j.begin(
            &step("privileges"),
            "check the roles and extensions the dump needs",
            serde_json::json!({"database": db, "role": job.spec.user}),
        )?;
        let checked = job
            .spec
            .connect()
            .map_err(RestoreError::from)
            .and_then(|mut c| check_privileges(&mut c, &catalog).map_err(RestoreError::from));
        let privileges = match checked {
            Ok(p) => p,
            Err(e) => {
                j.end(
                    &step("privileges"),
                    "failed",
                    serde_json::json!({"error": e.to_string()}),
                )?;
                return Err(e);
            }
        };
        if let Some(refusal) = privileges.refusal() {
            j.end(
                &step("privileges"),
                "refused",
                serde_json::json!({"error": refusal.to_string(),
                    "report": serde_json::to_value(&privileges).unwrap_or_default()}),
            )?;
            return Err(refusal.into());
        }
        for w in privileges.warnings() {
            self.sink.warn(w);
        }
        j.end(
            &step("privileges"),
            "ok",
            serde_json::to_value(&privileges).unwrap_or_default(),
        )?;
        self.check_cancel(&db, "before the snapshot: nothing was changed")?;

        // 2. Snapshot.
        let mut reused_hint: Option<String> = None;
        let snapshot = if let Some(path) = self.opts.reuse_snapshots.get(&db) {
            // The snapshot directory is under the backup directory, which `git` may write:
            // only a regular, non-empty file of ours (not a link) counts as the snapshot.
            use std::os::unix::fs::MetadataExt;
            let me = nix::unistd::geteuid().as_raw();
            let ok = std::fs::symlink_metadata(path)
                .is_ok_and(|m| m.is_file() && m.len() > 0 && m.uid() == me && m.nlink() == 1);
            if !ok {
                return Err(RestoreError::Inventory {
                    database: db.clone(),
                    detail: format!(
                        "the safety snapshot taken earlier in this recovery ({}) is gone or is not a regular file of this user; run the restore again to take a new one",
                        path.display()
                    ),
                });
            }
            j.note(
                "snapshot",
                "reused: taken earlier in this recovery",
                serde_json::json!({"database": db, "path": path}),
            )?;
            reused_hint = Some(crate::restore::snapshot::restore_command(
                &crate::restore::snapshot::pg_restore_for(
                    self.root,
                    p.inventory.server_version_num,
                ),
                &job.spec,
                path,
            ));
            None
        } else if self.opts.beside.is_some() {
            j.note(
                "snapshot",
                "not needed: the restore goes into a new database beside the live one, which is kept whole",
                serde_json::json!({"database": db}),
            )?;
            None
        } else if self.opts.throwaway {
            j.note(
                "snapshot",
                "not needed: a throwaway database made for the restore test",
                serde_json::json!({"database": db}),
            )?;
            None
        } else if self.opts.snapshot {
            Some(take_snapshot(
                self.root,
                &self.facts.backup_path,
                &SnapshotTarget {
                    spec: &job.spec,
                    server_version_num: p.inventory.server_version_num,
                    database_size: p.inventory.database_size,
                },
                Some(j),
                self.sink,
                self.cancel,
            )?)
        } else {
            j.note(
                "snapshot",
                "skipped (--no-snapshot)",
                serde_json::json!({"database": db}),
            )?;
            self.sink.warn(format!(
                "no safety snapshot of `{db}` (--no-snapshot): if the restore fails there is no way back but another backup"
            ));
            None
        };
        let snap_hint = snapshot
            .as_ref()
            .map(|s| s.restore_command.clone())
            .or(reused_hint)
            .map(|c| format!("; to go back to the database as it was: {c}"))
            .unwrap_or_default();
        Ok(Staged {
            prepared: p,
            catalog,
            cost,
            left,
            privileges,
            snapshot,
            snap_hint,
        })
    }

    /// The beside strategy up to the swap: create the new database like the live one,
    /// load into it as the owner, verify there. Nothing of the live database changes.
    fn build_beside(
        &self,
        st: Staged,
        plan: &BesidePlan,
        made: &mut Vec<String>,
    ) -> Result<DatabaseOutcome, RestoreError> {
        let Staged {
            prepared: p,
            catalog,
            cost,
            left,
            privileges,
            snapshot,
            snap_hint,
        } = st;
        let job = &p.job;
        let live = job.spec.dbname.clone();
        self.check_cancel(
            &live,
            "before the new database was made: nothing was changed",
        )?;
        let (new, kept) = super::beside::names(&live, &plan.stamp);
        let facts =
            super::beside::live_facts(&job.spec).map_err(|detail| RestoreError::Inventory {
                database: live.clone(),
                detail,
            })?;
        made.push(new.clone());
        super::beside::create_beside(
            &plan.admin,
            &job.spec,
            &facts,
            &new,
            self.journal,
            &format!("beside.{}.create", job.connection),
        )
        .map_err(|e| RestoreError::Beside {
            detail: e.to_string(),
            changed: false,
        })?;
        self.sink.info(format!(
            "loading into `{new}` beside `{live}` (which stays as it is until the swap)"
        ));
        let target = job.spec.with_dbname(&new);
        let (load, report) = self.load_verify(job, &target, &p, &catalog, &left, &snap_hint)?;
        if !report.ok() {
            return Err(RestoreError::Verify {
                database: new,
                detail: "the checks failed (see the journal); the live database was not swapped"
                    .into(),
            });
        }
        Ok(DatabaseOutcome {
            connection: job.connection.clone(),
            database: live.clone(),
            member: job.member.clone(),
            status: "loaded beside, verified".into(),
            snapshot,
            drop: None,
            load: Some(load),
            catalog_cost: Some(cost),
            leftovers: Some(left),
            privileges: Some(privileges),
            verify: Some(report),
            beside: Some(super::beside::BesideOutcome {
                live,
                new,
                kept_database: kept,
                swapped: false,
                ended_sessions: Vec::new(),
            }),
            kept_database: None,
        })
    }

    /// The destructive part: drop, load, verify.
    fn replace(&self, st: Staged) -> Result<DatabaseOutcome, RestoreError> {
        let Staged {
            prepared: p,
            catalog,
            cost,
            left,
            privileges,
            snapshot,
            snap_hint,
        } = st;
        let job = &p.job;
        let db = job.spec.dbname.clone();
        let j = self.journal;
        self.check_cancel(&db, "before the drop: nothing was dropped")?;

        // 3. Drop.
        let mut client = job.spec.connect()?;
        let dropped = drop_all(
            &mut client,
            &p.confirm,
            &self.opts.drop,
            Some(j),
            self.sink,
            self.cancel,
        )
        .map_err(RestoreError::Drop)?;
        drop(client);

        let (load, report) = self.load_verify(job, &job.spec, &p, &catalog, &left, &snap_hint)?;
        Ok(DatabaseOutcome {
            connection: job.connection.clone(),
            database: db,
            member: job.member.clone(),
            status: "restored".into(),
            snapshot,
            drop: Some(dropped),
            load: Some(load),
            catalog_cost: Some(cost),
            leftovers: Some(left),
            privileges: Some(privileges),
            verify: Some(report),
            beside: None,
            kept_database: None,
        })
    }

    /// Load the dump into `target` (the live database after the drop, or the new one
    /// beside it) and verify it there.
    #[allow(clippy::too_many_arguments)]
    fn load_verify(
        &self,
        job: &DatabaseJob,
        target: &ConnSpec,
        p: &Prepared,
        catalog: &DumpCatalog,
        left: &Leftovers,
        snap_hint: &str,
    ) -> Result<(LoadOutcome, VerifyReport), RestoreError> {
        let db = target.dbname.clone();
        let j = self.journal;
        let step = |s: &str| format!("restore.{}.{s}", job.connection);
        // 4. Load.
        j.begin(
            &step("load"),
            format!("load {} ({} jobs)", job.member, self.opts.jobs),
            serde_json::json!({"member": job.member, "database": db}),
        )?;
        let loaded = self.source.open(&job.member).and_then(|dump| {
            self.loader.load(
                LoadInput {
                    dump,
                    member: &job.member,
                    spec: target,
                    server_version_num: p.inventory.server_version_num,
                    jobs: self.opts.jobs,
                    continue_on_error: self.opts.continue_on_error,
                },
                self.sink,
                self.cancel,
            )
        });
        let load = match loaded {
            Ok(l) => l,
            Err(detail) => {
                j.end(
                    &step("load"),
                    if self.cancel.is_cancelled() {
                        "cancelled"
                    } else {
                        "failed"
                    },
                    serde_json::json!({"error": detail}),
                )?;
                return Err(RestoreError::Load {
                    member: job.member.clone(),
                    database: db.clone(),
                    detail,
                    snapshot: snap_hint.to_string(),
                });
            }
        };
        j.end(
            &step("load"),
            if load.errors.is_empty() {
                "ok"
            } else {
                "errors"
            },
            serde_json::json!({"tables": load.tables.len(),
                "rows": load.tables.iter().map(|t| t.rows).sum::<u64>(),
                "errors": load.errors.len(), "ignored": load.ignored.len(),
                "skipped_privilege": load.skipped_privilege.len(),
                "bytes": load.bytes, "seconds": load.seconds, "loader": load.loader}),
        )?;
        for e in &load.errors {
            self.sink.log(crate::progress::Level::Error, e.clone());
        }
        if !load.skipped_privilege.is_empty() {
            j.note(
                &step("load.skipped"),
                format!(
                    "{} statement(s) skipped, as GitLab's restore skips them",
                    load.skipped_privilege.len()
                ),
                serde_json::to_value(&load.skipped_privilege).unwrap_or_default(),
            )?;
        }
        if !load.errors.is_empty() && !self.opts.continue_on_error {
            return Err(RestoreError::LoadErrors {
                member: job.member.clone(),
                database: db.clone(),
                count: load.errors.len(),
                first: load.errors[0].clone(),
                snapshot: snap_hint.to_string(),
            });
        }

        // 5. Verify.
        j.begin(
            &step("verify"),
            "verify the restored database",
            serde_json::json!({"database": db}),
        )?;
        self.sink.event(Event::PhaseStarted {
            phase: Phase::Check,
            total: None,
        });
        let verified = target
            .connect()
            .map_err(|e| e.to_string())
            .and_then(|mut c| {
                verify::verify(
                    &mut c,
                    &db,
                    &Expected {
                        db_version: self.facts.db_version.as_deref(),
                        table_rows: &load.tables,
                        dump: Some(catalog),
                        leftovers_before: Some(left),
                        backup_version: self.facts.backup_version.as_ref(),
                        installed_version: self.facts.installed_version.as_ref(),
                    },
                )
                .map_err(|e| e.to_string())
            });
        self.sink.event(Event::PhaseFinished {
            phase: Phase::Check,
            ok: verified.as_ref().is_ok_and(|r| r.ok()),
        });
        let report = match verified {
            Ok(r) => r,
            Err(detail) => {
                j.end(
                    &step("verify"),
                    "failed",
                    serde_json::json!({"error": detail}),
                )?;
                return Err(RestoreError::Verify {
                    database: db.clone(),
                    detail,
                });
            }
        };
        j.end(
            &step("verify"),
            if report.ok() { "ok" } else { "failed" },
            serde_json::to_value(&report).unwrap_or_default(),
        )?;
        Ok((load, report))
    }
}

/// The drop plan of a prepared database (for the plan and the confirmation screen).
pub fn drop_plan(p: &Prepared) -> DropPlan {
    DropPlan::from_inventory(&p.inventory)
}

/// A [`DumpSource`] over a backup (a `_gitlab_backup.tar` or an unpacked backup
/// directory): members are streamed out of the tar in place and decompressed by their
/// magic bytes ([`crate::backup::open_member`]); nothing is unpacked to disk.
#[derive(Debug, Clone)]
pub struct ArchiveSource {
    pub archive: PathBuf,
    pub members: Vec<String>,
}

impl ArchiveSource {
    /// The source for a catalogued backup.
    pub fn new(entry: &crate::backup::BackupEntry) -> Self {
        ArchiveSource {
            archive: entry.path.clone(),
            members: entry.members.iter().map(|m| m.name.clone()).collect(),
        }
    }

    /// The source for a backup given by path (archive or unpacked directory); reads only
    /// the tar headers.
    pub fn from_path(path: &std::path::Path) -> Result<Self, String> {
        crate::backup::catalogue::read_backup(path, None, false)
            .map(|entry| Self::new(&entry))
            .map_err(|e| e.to_string())
    }
}

impl DumpSource for ArchiveSource {
    fn has(&self, member: &str) -> bool {
        self.members.iter().any(|m| m == member)
    }

    fn open(&self, member: &str) -> Result<OpenedDump, String> {
        let m = crate::backup::open_member(&self.archive, member).map_err(|e| e.to_string())?;
        let counter = m.progress.clone();
        Ok(OpenedDump {
            compressed_size: m.compressed_size,
            compressed_read: Arc::new(move || counter.get()),
            reader: Box::new(m),
        })
    }

    fn describe(&self) -> String {
        self.archive.display().to_string()
    }
}

/// A [`DumpSource`] over an unpacked backup directory or plain files (`<dir>/<member>`),
/// decompressed by magic bytes (gzip, zstd, plain).
#[derive(Debug, Clone)]
pub struct DirSource {
    pub dir: PathBuf,
}

impl DumpSource for DirSource {
    fn has(&self, member: &str) -> bool {
        self.dir.join(member).is_file()
    }

    fn open(&self, member: &str) -> Result<OpenedDump, String> {
        open_file(&self.dir.join(member), member)
    }

    fn describe(&self) -> String {
        self.dir.display().to_string()
    }
}

struct Counting<R> {
    inner: R,
    n: Arc<std::sync::atomic::AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.n
            .fetch_add(k as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(k)
    }
}

struct Named<R> {
    inner: R,
    member: String,
}

impl<R: Read> Read for Named<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("{} is corrupt or truncated: {e}", self.member),
            )
        })
    }
}

/// Open a (possibly compressed) dump file.
pub fn open_file(path: &Path, member: &str) -> Result<OpenedDump, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let size = f.metadata().map(|m| m.len()).unwrap_or(0);
    let n = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut buffered = BufReader::with_capacity(
        1 << 20,
        Counting {
            inner: f,
            n: n.clone(),
        },
    );
    let magic = buffered
        .fill_buf()
        .map_err(|e| format!("{}: {e}", path.display()))?
        .to_vec();
    let reader: Box<dyn Read + Send> = if magic.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::bufread::MultiGzDecoder::new(buffered))
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::with_buffer(buffered).map_err(|e| e.to_string())?)
    } else {
        Box::new(buffered)
    };
    Ok(OpenedDump {
        reader: Box::new(Named {
            inner: reader,
            member: member.to_string(),
        }),
        compressed_size: size,
        compressed_read: Arc::new(move || n.load(std::sync::atomic::Ordering::Relaxed)),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::pg::cluster::TempCluster;
    use crate::progress::NullSink;
    use std::ffi::OsStr;

    /// A small GitLab-like schema with awkward corners.
    pub const SCHEMA: &str = r#"
        CREATE EXTENSION IF NOT EXISTS pg_trgm;
        CREATE TABLE schema_migrations (version character varying NOT NULL PRIMARY KEY);
        INSERT INTO schema_migrations VALUES ('20240101000000'), ('20240301000000');
        CREATE TABLE ar_internal_metadata (key varchar PRIMARY KEY, value varchar);
        INSERT INTO ar_internal_metadata VALUES ('environment', 'production');
        CREATE TABLE projects (id bigserial PRIMARY KEY, name text NOT NULL, data bytea,
            doubled bigint GENERATED ALWAYS AS (id * 2) STORED);
        INSERT INTO projects (name, data) SELECT 'p' || g || E'\t\\x', '\x00ff'::bytea
            FROM generate_series(1, 300) g;
        INSERT INTO projects (name) VALUES ('\.'), (E'line\nbreak'), ('ünï'), ('');
        CREATE TABLE "we; ird" (id int GENERATED BY DEFAULT AS IDENTITY, body text);
        INSERT INTO "we; ird" (body) VALUES (NULL), ('a;b');
        CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $fn$
          BEGIN NEW.name := NEW.name || ';'; RETURN NEW; END $fn$;
        CREATE SCHEMA gitlab_partitions_dynamic;
        CREATE TABLE events (id bigint, created_at date NOT NULL) PARTITION BY RANGE (created_at);
        CREATE TABLE gitlab_partitions_dynamic.events_2024 PARTITION OF events
            FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
        INSERT INTO events SELECT g, '2024-03-01' FROM generate_series(1, 50) g;
        CREATE INDEX ON events (id);
        CREATE MATERIALIZED VIEW project_names AS SELECT name FROM projects;
    "#;

    /// What a failed 16.11 upgrade leaves behind.
    pub const FAILED_UPGRADE: &str = r#"
        INSERT INTO schema_migrations VALUES ('20240501000000');
        CREATE TABLE lfs_objects (id bigserial PRIMARY KEY, oid text);
        ALTER TABLE projects ADD COLUMN new_flag boolean;
        CREATE VIEW lfs_view AS SELECT id FROM lfs_objects;
        UPDATE projects SET name = 'changed' WHERE id < 10;
    "#;

    /// GitLab's backup of `db`: `pg_dump --clean --if-exists` as the application role
    /// (`gitlab`, through the peer map), gzip'd into `out`.
    pub fn dump_gz(c: &TempCluster, db: &str, out: &Path) {
        std::fs::create_dir_all(out.parent().unwrap()).unwrap();
        let dump = c
            .conn_spec(db)
            .client_command(&c.tool_path("pg_dump"), "backup")
            .args(["--clean", "--if-exists"])
            .output()
            .unwrap();
        assert!(
            dump.status.success(),
            "{}",
            String::from_utf8_lossy(&dump.stderr)
        );
        let mut gz = flate2::write::GzEncoder::new(
            std::fs::File::create(out).unwrap(),
            flate2::Compression::fast(),
        );
        gz.write_all(&dump.stdout).unwrap();
        gz.finish().unwrap();
    }

    /// `pg_dump -s`, normalised as the drill compares schemas.
    pub fn schema_of(c: &TempCluster, db: &str) -> String {
        let out = c
            .command("pg_dump", &[OsStr::new("-s"), OsStr::new(db)])
            .output()
            .unwrap();
        assert!(out.status.success());
        crate::sandbox::compare::normalize_schema(&String::from_utf8_lossy(&out.stdout))
    }

    /// Per table and materialized view: rows and an order-independent hash; sequences.
    pub fn data_of(c: &TempCluster, db: &str) -> crate::sandbox::compare::DbFingerprint {
        crate::sandbox::compare::content_fingerprint(&mut c.connect(db).unwrap()).unwrap()
    }

    fn psql_reference(c: &TempCluster, gz: &Path, db: &str) {
        c.create_database(db).unwrap();
        let sql = {
            let mut s = Vec::new();
            flate2::read::MultiGzDecoder::new(std::fs::File::open(gz).unwrap())
                .read_to_end(&mut s)
                .unwrap();
            s
        };
        // GitLab's pipeline as Omnibus runs it: psql as the application role, through
        // the peer map.
        let psql = c.tool_path("psql");
        let mut child = c
            .conn_spec(db)
            .client_command(&psql, "psql-reference")
            .arg("-q")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&sql).unwrap();
        assert!(child.wait().unwrap().success());
    }

    fn facts(backup_path: &Path) -> RestoreFacts {
        let v: GitLabVersion = "16.10.3-ee".parse().unwrap();
        RestoreFacts {
            backup_version: Some(v.clone()),
            backup_version_text: Some("16.10.3-ee".into()),
            installed_version: Some(v),
            db_version: Some("20240301000000".into()),
            backup_path: backup_path.to_path_buf(),
        }
    }

    fn opts(confirm: &str) -> RestoreOptions {
        RestoreOptions {
            confirm_drop: vec![confirm.to_string()],
            snapshot: true,
            reuse_snapshots: BTreeMap::new(),
            jobs: 2,
            continue_on_error: false,
            allow_version_mismatch: false,
            drop: DropOptions::default(),
            throwaway: false,
            beside: None,
            catalogs: BTreeMap::new(),
        }
    }

    #[test]
    fn psql_errors_of_skippable_statements_are_told_by_line() {
        assert_eq!(
            psql_error_line("psql:<stdin>:42: ERROR:  must be member of role \"gitlab-psql\""),
            Some((42, "ERROR:  must be member of role \"gitlab-psql\""))
        );
        assert_eq!(
            psql_error_line("psql:<stdin>:7: WARNING:  no privileges"),
            None
        );
        assert_eq!(psql_error_line("ERROR:  x"), None);
        let mut notes = std::collections::HashMap::new();
        let owner = "ALTER FUNCTION public.f() OWNER TO \"gitlab-psql\";";
        notes.insert(
            12,
            (
                StatementFacts::of(owner),
                "FUNCTION public.f()".to_string(),
                Position {
                    line: 12,
                    offset: 0,
                },
                owner.to_string(),
            ),
        );
        let table = "CREATE TABLE public.t (a int);";
        notes.insert(
            20,
            (
                StatementFacts::of(table),
                "TABLE public.t".to_string(),
                Position {
                    line: 20,
                    offset: 0,
                },
                table.to_string(),
            ),
        );
        let (ignored, errors, skipped) = classify_psql_stderr(
            vec![
                "psql:<stdin>:3: ERROR:  must be owner of extension pg_trgm".into(),
                "psql:<stdin>:12: ERROR:  must be able to SET ROLE \"gitlab-psql\"".into(),
                "DETAIL:  only roles with the SET option may".into(),
                "psql:<stdin>:20: ERROR:  permission denied for schema public".into(),
            ],
            &notes,
        );
        assert_eq!(ignored.len(), 1);
        assert_eq!(
            errors,
            vec!["psql:<stdin>:20: ERROR:  permission denied for schema public"]
        );
        assert_eq!(skipped.len(), 1);
        assert_eq!(skipped[0].error.object, "FUNCTION public.f()");
        assert!(skipped[0].error.message.contains("DETAIL"));
    }

    #[test]
    fn restore_equals_gitlabs_pipeline_after_a_failed_upgrade() {
        let c = TempCluster::start().unwrap();
        c.create_database("gitlabhq_production").unwrap();
        c.connect_app("gitlabhq_production")
            .unwrap()
            .batch_execute(SCHEMA)
            .unwrap();
        let backup = tempfile::tempdir().unwrap();
        let gz = backup.path().join("db/database.sql.gz");
        dump_gz(&c, "gitlabhq_production", &gz);
        psql_reference(&c, &gz, "reference");
        c.connect_app("gitlabhq_production")
            .unwrap()
            .batch_execute(FAILED_UPGRADE)
            .unwrap();

        let backup_path = tempfile::tempdir().unwrap();
        let journal = Journal::open_in(&Journal::dir_for(backup_path.path())).unwrap();
        let facts = facts(backup_path.path());
        let root = HostRoot::system();
        let source = DirSource {
            dir: backup.path().to_path_buf(),
        };
        let loader = ParallelLoader;
        let mut spec = c.conn_spec("gitlabhq_production");
        spec.password = crate::pg::conn::Secret::new(Some("s3cret-pw".into()));
        let jobs = vec![
            DatabaseJob {
                connection: "main".into(),
                spec: spec.clone(),
                member: member_for("main"),
            },
            DatabaseJob {
                connection: "ci".into(),
                spec: c.conn_spec("gitlabhq_production_ci"),
                member: member_for("ci"),
            },
        ];
        let o = opts("gitlabhq_production");
        // Every table read whole is told (TableLoaded), with the rows the report counts.
        let events = std::sync::Mutex::new(Vec::new());
        let sink = |e: Event| {
            if let Event::TableLoaded { table, rows } = e {
                events.lock().unwrap().push((table, rows));
            }
        };
        let run = RestoreRun {
            root: &root,
            source: &source,
            loader: &loader,
            facts: &facts,
            opts: &o,
            journal: &journal,
            sink: &sink,
            cancel: &Cancel::new(),
        };
        let out = run.run(&jobs).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].status, skipping_message("ci"));
        let main = &out[0];
        let left = main.leftovers.as_ref().unwrap();
        for (kind, name) in [
            (leftovers::LeftoverKind::Table, "lfs_objects"),
            (leftovers::LeftoverKind::View, "lfs_view"),
            (leftovers::LeftoverKind::Column, "projects.new_flag"),
            (leftovers::LeftoverKind::Migration, "20240501000000"),
        ] {
            assert!(
                left.items.iter().any(|l| l.kind == kind && l.name == name),
                "{kind:?} {name} not found in {left:?}"
            );
        }
        let report = main.verify.as_ref().unwrap();
        assert!(report.ok(), "{report:?}");
        assert_eq!(
            schema_of(&c, "gitlabhq_production"),
            schema_of(&c, "reference")
        );
        assert_eq!(data_of(&c, "gitlabhq_production"), data_of(&c, "reference"));
        let rows: u64 = main
            .load
            .as_ref()
            .unwrap()
            .tables
            .iter()
            .map(|t| t.rows)
            .sum();
        assert!(rows > 300);
        let told = std::mem::take(&mut *events.lock().unwrap());
        let tables = &main.load.as_ref().unwrap().tables;
        assert_eq!(told.len(), tables.len(), "{told:?}");
        assert_eq!(told.iter().map(|(_, r)| r).sum::<u64>(), rows);
        for t in tables {
            let name = t.table.to_string();
            assert!(
                told.iter()
                    .any(|(n, r)| n.ends_with(name.as_str()) && *r == t.rows),
                "{} ({} rows) not told in {told:?}",
                t.table,
                t.rows
            );
        }
        // Snapshot: private, and holds the failed upgrade's state.
        let snap = main.snapshot.as_ref().unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&snap.path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // Journal: begin/end for each step, never the password.
        let text = std::fs::read_to_string(journal.path()).unwrap();
        assert!(!text.contains("s3cret-pw"));
        let entries = Journal::read(journal.path()).unwrap();
        for step in [
            "restore.main.catalog",
            "snapshot",
            "drop",
            "restore.main.load",
            "restore.main.verify",
        ] {
            let begins = entries
                .iter()
                .filter(|e| e.step == step && e.stage == crate::journal::Stage::Begin)
                .count();
            let ends = entries
                .iter()
                .filter(|e| {
                    e.step == step
                        && e.stage == crate::journal::Stage::End
                        && e.result.as_deref() == Some("ok")
                })
                .count();
            assert_eq!((begins, ends), (1, 1), "{step}: {text}");
        }
        assert!(entries.iter().any(|e| e.step == "restore.skip"));

        // GitLab's own pipeline through the same orchestration gives the same database.
        c.connect_app("gitlabhq_production")
            .unwrap()
            .batch_execute(FAILED_UPGRADE)
            .unwrap();
        let psql = PsqlLoader { root: root.clone() };
        let o2 = RestoreOptions {
            snapshot: false,
            ..o.clone()
        };
        let out = RestoreRun {
            loader: &psql,
            opts: &o2,
            ..run
        }
        .run(&jobs[..1])
        .unwrap();
        assert!(out[0].verify.as_ref().unwrap().ok());
        assert_eq!(out[0].load.as_ref().unwrap().loader, "psql");
        let told = std::mem::take(&mut *events.lock().unwrap());
        let psql_tables = &out[0].load.as_ref().unwrap().tables;
        assert_eq!(told.len(), psql_tables.len(), "{told:?}");
        assert_eq!(
            told.iter().map(|(_, r)| r).sum::<u64>(),
            psql_tables.iter().map(|t| t.rows).sum::<u64>()
        );
        assert_eq!(told.iter().map(|(_, r)| r).sum::<u64>(), rows);
        assert_eq!(
            schema_of(&c, "gitlabhq_production"),
            schema_of(&c, "reference")
        );
        assert_eq!(data_of(&c, "gitlabhq_production"), data_of(&c, "reference"));
    }

    #[test]
    fn preconditions_refuse_before_anything_changes() {
        let c = TempCluster::start().unwrap();
        c.create_database("gitlabhq_production").unwrap();
        c.connect_app("gitlabhq_production")
            .unwrap()
            .batch_execute(SCHEMA)
            .unwrap();
        let backup = tempfile::tempdir().unwrap();
        let gz = backup.path().join("db/database.sql.gz");
        dump_gz(&c, "gitlabhq_production", &gz);
        c.connect_app("gitlabhq_production")
            .unwrap()
            .batch_execute(FAILED_UPGRADE)
            .unwrap();
        let before = (
            schema_of(&c, "gitlabhq_production"),
            data_of(&c, "gitlabhq_production"),
        );
        let backup_path = tempfile::tempdir().unwrap();
        let journal = Journal::open_in(&Journal::dir_for(backup_path.path())).unwrap();
        let root = HostRoot::system();
        let source = DirSource {
            dir: backup.path().to_path_buf(),
        };
        let loader = ParallelLoader;
        let job = DatabaseJob {
            connection: "main".into(),
            spec: c.conn_spec("gitlabhq_production"),
            member: member_for("main"),
        };
        let run_with = |facts: &RestoreFacts, o: &RestoreOptions, job: &DatabaseJob| {
            RestoreRun {
                root: &root,
                source: &source,
                loader: &loader,
                facts,
                opts: o,
                journal: &journal,
                sink: &NullSink,
                cancel: &Cancel::new(),
            }
            .run(std::slice::from_ref(job))
        };
        // Wrong confirmation.
        let e = run_with(
            &facts(backup_path.path()),
            &opts("gitlabhq_production_ci"),
            &job,
        )
        .unwrap_err();
        assert!(matches!(e, RestoreError::Confirm(_)), "{e}");
        // Version mismatch: GitLab's message.
        let mut f = facts(backup_path.path());
        f.installed_version = Some("16.11.0-ee".parse().unwrap());
        let e = run_with(&f, &opts("gitlabhq_production"), &job)
            .unwrap_err()
            .to_string();
        for line in [
            "GitLab version mismatch:",
            "Your current GitLab version (16.11.0-ee) differs from the GitLab version in the backup!",
            "Please switch to the following version and try again:",
            "version: 16.10.3-ee",
            "Hint: git checkout v16.10.3-ee",
        ] {
            assert!(e.contains(line), "{e}");
        }
        // Unreachable server: names the socket and the database.
        let mut bad = job.clone();
        bad.spec.host = "/nonexistent/socket/dir".into();
        let e = run_with(
            &facts(backup_path.path()),
            &opts("gitlabhq_production"),
            &bad,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("/nonexistent/socket/dir/.s.PGSQL.") && e.contains("gitlabhq_production"),
            "{e}"
        );
        assert!(e.contains("Nothing was changed"), "{e}");
        assert_eq!(
            (
                schema_of(&c, "gitlabhq_production"),
                data_of(&c, "gitlabhq_production")
            ),
            before
        );
    }

    #[test]
    fn truncated_dump_is_an_error_naming_the_member() {
        let c = TempCluster::start().unwrap();
        c.create_database("gl").unwrap();
        c.connect_app("gl").unwrap().batch_execute(SCHEMA).unwrap();
        let backup = tempfile::tempdir().unwrap();
        let gz = backup.path().join("db/database.sql.gz");
        dump_gz(&c, "gl", &gz);
        let bytes = std::fs::read(&gz).unwrap();
        std::fs::write(&gz, &bytes[..bytes.len() * 2 / 3]).unwrap();
        let backup_path = tempfile::tempdir().unwrap();
        let journal = Journal::open_in(&Journal::dir_for(backup_path.path())).unwrap();
        let root = HostRoot::system();
        let source = DirSource {
            dir: backup.path().to_path_buf(),
        };
        let loader = ParallelLoader;
        let job = DatabaseJob {
            connection: "main".into(),
            spec: c.conn_spec("gl"),
            member: member_for("main"),
        };
        let e = RestoreRun {
            root: &root,
            source: &source,
            loader: &loader,
            facts: &facts(backup_path.path()),
            opts: &opts("gl"),
            journal: &journal,
            sink: &NullSink,
            cancel: &Cancel::new(),
        }
        .run(&[job])
        .unwrap_err()
        .to_string();
        assert!(e.contains("db/database.sql.gz"), "{e}");
        // The catalogue pass already saw the truncation: nothing was dropped.
        assert!(e.contains("Nothing was changed"), "{e}");
        let n: i64 = c
            .connect("gl")
            .unwrap()
            .query_one("SELECT count(*) FROM projects", &[])
            .unwrap()
            .get(0);
        assert_eq!(n, 304);
    }
}
