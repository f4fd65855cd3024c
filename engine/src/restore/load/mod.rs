//! Loading a plain pg_dump script into PostgreSQL, in parallel, with the result psql gives.
//!
//! [`load_dump`] reads the dump once, as a stream, and runs it the way `psql` would, but
//! spread over several connections where that cannot change the result:
//!
//! - **Schema** (pre-data: settings, schemas, extensions, types, functions, tables, ...):
//!   in dump order on one connection, as the statements stream in.
//! - **Data**: each `COPY` block is handed, in chunks split at row boundaries, to worker
//!   connections through bounded queues (flat memory). Decompression and parsing on the
//!   calling thread overlap with the server's COPY work; small tables go whole to the least
//!   busy worker, large ones are loaded by all workers at once, committed together only if
//!   every part succeeded. Sequence `setval`s run in order on the main connection.
//! - **Indexes and foreign keys**: post-data `CREATE INDEX`, primary/unique/exclusion keys
//!   and foreign keys run in one pool over the worker connections, largest work first,
//!   with a larger `maintenance_work_mem`: key constraints alone on their table, each
//!   foreign key alone on both its tables once their indexes and keys are built (lock
//!   rules in `post.rs`), so a connection never idles behind one long index build while
//!   foreign keys of other tables wait.
//! - **Constraints**: the rest of post-data (foreign keys of partitioned tables, index
//!   attachments, triggers, rules, comments, ACLs, materialized view refreshes, anything
//!   unrecognised) in dump order on the main connection, after the pool.
//!
//! The load connections commit with `synchronous_commit = off` (the server flushes the
//! WAL within a few hundred milliseconds instead of at every statement's commit); before
//! [`load_dump`] reports success it commits one transaction with `synchronous_commit = on`,
//! whose WAL flush covers every commit before it, so a success is durable.
//!
//! Session settings from the dump (`SET ...`, `set_config('search_path', '', false)`) are
//! replayed on every connection. Each statement runs in its own implicit transaction as in
//! psql's autocommit mode. Errors that GitLab's restore ignores (`does not exist`, `must be
//! owner of`) are recorded and skipped. So are, reported with their object in
//! [`LoadReport::skipped_privilege`], the ownership and privilege statements the restoring
//! role may not run (`ALTER ... OWNER TO` a role it is not a member of, `COMMENT ON
//! EXTENSION`, `GRANT`/`REVOKE`, ... failing for insufficient privilege) and the `CREATE`
//! of an object whose `DROP ... IF EXISTS` failed for lack of ownership ("already
//! exists"): GitLab's psql restore fails on those too and leaves the same database. Both
//! are recognised by the statement's kind and the error, never by the message alone. Any
//! other error stops the load unless [`LoadOptions::continue_on_error`] is set (GitLab's
//! behaviour).

mod autovacuum;
mod data;
mod keyindex;
mod post;
mod session;

use std::collections::{HashMap, HashSet};
use std::io::BufRead;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::dump::{
    classify, creates_partitioned_table, describe, foreign_key, CopyHeader, DumpParser, Item, Kind,
    MetaCommand, ParseError, Position, QualifiedName, Statement,
};
use crate::pg::conn::{ConnError, ConnSpec};
use crate::progress::{Cancel, Event, Phase, Sink, SinkExt};

use data::{DataPool, TableJob};
use post::{run_units, Hooks, IndexUnit, UnitKind};
pub use session::{
    already_exists_error, ignored_by_gitlab, kept_by_drop, privilege_error, skip_reason,
    OwnedElsewhere, SkipReason, StatementFacts,
};
use session::{Conn, Outcome, Role, Session};

/// How to load a dump.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The target database (must exist; normally emptied by the drop step).
    pub conn: ConnSpec,
    /// Worker connections for data and index builds (at least 1; the main connection
    /// comes on top).
    pub jobs: usize,
    /// Go on after errors GitLab's restore does not ignore (record them), as GitLab does.
    pub continue_on_error: bool,
    /// Checked between units of work (statements, data chunks, index builds).
    pub cancel: Cancel,
    /// `maintenance_work_mem` for index-building connections (only ever raised), e.g.
    /// `"256MB"`; `None` keeps the server's.
    pub maintenance_work_mem: Option<String>,
    /// Size of the data chunks handed to workers (default 1 MiB).
    pub chunk_bytes: usize,
    /// `max_parallel_maintenance_workers` for index-building connections (parallel btree
    /// builds); `None` keeps the server's.
    pub parallel_maintenance_workers: Option<u32>,
    /// Commit with `synchronous_commit = off` on the load connections (default); the load
    /// is made durable once at the end before success is reported.
    pub async_commit: bool,
}

impl LoadOptions {
    /// Defaults: one job per core, stop on errors, 256MB `maintenance_work_mem`, 1 MiB
    /// chunks.
    pub fn new(conn: ConnSpec) -> Self {
        LoadOptions {
            conn,
            jobs: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            continue_on_error: false,
            cancel: Cancel::new(),
            maintenance_work_mem: Some("256MB".into()),
            chunk_bytes: 1 << 20,
            async_commit: true,
            parallel_maintenance_workers: None,
        }
    }
}

/// A statement that failed, with where it is in the dump and what the server said.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatementError {
    pub phase: Phase,
    /// The object, from the TOC header (`TABLE public.users`) or the statement.
    pub object: String,
    pub at: Position,
    /// The statement (shortened).
    pub statement: String,
    /// The server's message (`ERROR: ...`).
    pub message: String,
    pub sqlstate: Option<String>,
}

impl std::fmt::Display for StatementError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (dump {}, {}): {} [statement: {}]",
            self.object,
            self.at,
            self.phase.label(),
            self.message,
            self.statement
        )
    }
}

/// A failed statement that was skipped and the load went on: the database is the same as
/// after GitLab's psql restore, which fails on it too (see [`SkipReason`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SkippedStatement {
    pub reason: SkipReason,
    #[serde(flatten)]
    pub error: StatementError,
}

impl std::fmt::Display for SkippedStatement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (dump {}): {}; skipped ({}), as GitLab's restore does [statement: {}]",
            self.error.object,
            self.error.at,
            self.error.message,
            self.reason.label(),
            self.error.statement
        )
    }
}

/// One table's data.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableLoad {
    pub table: QualifiedName,
    /// Rows the dump's COPY block carried (compare with the database afterwards).
    pub rows: u64,
    /// Rows the server reported loading (equals `rows` when `loaded`).
    pub server_rows: u64,
    /// Bytes of COPY data.
    pub bytes: u64,
    /// `false` when its COPY failed (nothing of it is committed).
    pub loaded: bool,
    /// Loaded by several connections at once.
    pub split: bool,
    pub seconds: f64,
}

/// Statements and time of one phase.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PhaseReport {
    pub phase: Phase,
    pub statements: u64,
    pub seconds: f64,
}

/// What one connection of a parallel phase did (where the time went).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConnectionReport {
    /// `data` for COPY workers, `indexes` for the post-data pool (index builds, keys and
    /// foreign keys).
    pub phase: Phase,
    /// The connection within its pool, from 0.
    pub slot: usize,
    /// Tables (data) or statements (indexes) it ran.
    pub units: u64,
    /// Seconds it spent running them (the rest of the phase it idled).
    pub busy_seconds: f64,
    /// Seconds the pool ran.
    pub wall_seconds: f64,
}

/// What a load did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LoadReport {
    /// Per table, in dump order.
    pub tables: Vec<TableLoad>,
    /// Schema, Data, Indexes, Constraints (those that ran).
    pub phases: Vec<PhaseReport>,
    /// Errors GitLab's restore ignores.
    pub ignored: Vec<StatementError>,
    /// Ownership and privilege statements the restoring role may not run, and creations of
    /// objects kept as they were (owned by another role): skipped, the load went on.
    pub skipped_privilege: Vec<SkippedStatement>,
    /// Other errors (only with `continue_on_error`; without it the first one is returned
    /// as [`LoadError::Statement`]).
    pub failed: Vec<StatementError>,
    /// Bytes of the (decompressed) dump read.
    pub bytes: u64,
    pub seconds: f64,
    pub jobs: usize,
    /// Per connection of the parallel phases, summed over the dump's stretches.
    pub connections: Vec<ConnectionReport>,
}

/// Why a load stopped.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error(transparent)]
    Connect(#[from] ConnError),
    #[error("restoring {0}\nRewind stops at the first error GitLab's restore would not ignore. Fix the cause and run the restore again (it drops all tables first), or pass --continue-on-error to record such errors and go on as GitLab does")]
    Statement(Box<StatementError>),
    #[error("lost the connection to PostgreSQL during {phase} ({object}, dump {at}): {detail}. The database is only partly restored: when the server is back, run the restore again (it drops all tables first)")]
    ConnectionLost {
        phase: &'static str,
        object: String,
        at: Position,
        detail: String,
    },
    #[error("cancelled at dump {at}: the database is only partly restored; run the restore again to finish (it drops all tables first)")]
    Cancelled { at: Position },
    #[error("the dump switches to database `{target}` with \\connect at {at} (a pg_dump -C or pg_dumpall script): Rewind restores one database; use a dump of the database alone")]
    OtherDatabase { target: String, at: Position },
    #[error("the dump was loaded, but autovacuum could not be switched back on for {tables} ({detail}); Rewind switched it off during the load. Before starting GitLab, run as the database owner: {fix}")]
    AutovacuumLeftOff {
        tables: String,
        detail: String,
        fix: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Pre,
    Data,
    Post,
}

/// Rows read ahead before deciding whether a table is small (one connection) or large
/// (all workers): this many chunks.
const SPLIT_CHUNKS: usize = 4;

struct PendingTable {
    job: Arc<TableJob>,
    rows: u64,
    bytes: u64,
}

struct Loader<'a> {
    opts: &'a LoadOptions,
    sink: &'a dyn Sink,
    main: Conn,
    spare: Vec<Conn>,
    session: Arc<Session>,
    mode: Mode,
    pool: Option<DataPool>,
    pending_tables: Vec<PendingTable>,
    units: Vec<IndexUnit>,
    tail: Vec<(Statement, Arc<Session>)>,
    table_bytes: HashMap<QualifiedName, u64>,
    order: usize,
    report: LoadReport,
    phase: Option<(Phase, Instant)>,
    phase_stats: Vec<PhaseReport>,
    last_progress: Instant,
    /// Objects whose `DROP ... IF EXISTS` failed for lack of ownership.
    kept: OwnedElsewhere,
    /// Partitioned tables created by the dump (their foreign keys stay in dump order).
    partitioned: HashSet<QualifiedName>,
    /// Schema statements waiting to be sent together ([`Loader::flush_schema`]).
    schema_batch: Vec<Statement>,
    schema_batch_bytes: usize,
    /// Tables this load created that autovacuum may be switched off for
    /// ([`autovacuum::candidate`]), and those it was switched off for.
    created: HashSet<QualifiedName>,
    autovacuum_off: Vec<QualifiedName>,
}

/// At most this many schema statements, or bytes of them, in one round trip.
const SCHEMA_BATCH_STATEMENTS: usize = 256;
const SCHEMA_BATCH_BYTES: usize = 256 * 1024;

/// Whether a schema statement may be sent in a batch: plain DDL that runs inside a
/// transaction block and has no effect outside it. Anything else (transaction control,
/// `CREATE DATABASE`, `CONCURRENTLY`, `ALTER SYSTEM`, `VACUUM`, tablespaces, `SELECT`s,
/// psql-only text) runs alone, as psql runs it.
fn batchable(sql: &str) -> bool {
    // Only the first words are read (no allocation): a statement that still cannot run in
    // a transaction block (`DETACH PARTITION ... CONCURRENTLY`) fails its batch, which then
    // runs statement by statement.
    let mut words = sql.split_whitespace().take(5);
    let first = words.next().unwrap_or("");
    if !["CREATE", "ALTER", "DROP", "COMMENT", "GRANT", "REVOKE"]
        .iter()
        .any(|k| first.eq_ignore_ascii_case(k))
    {
        return false;
    }
    const BANNED: [&str; 5] = [
        "DATABASE",
        "TABLESPACE",
        "SYSTEM",
        "CONCURRENTLY",
        "SUBSCRIPTION",
    ];
    !words.any(|w| {
        let w = w.trim_end_matches(';');
        BANNED.iter().any(|b| w.eq_ignore_ascii_case(b))
    })
}

/// Load a plain pg_dump script from `input` (the decompressed stream, read once) into
/// `opts.conn`'s database. See the module documentation for what runs where.
pub fn load_dump<R: BufRead>(
    input: R,
    opts: &LoadOptions,
    sink: &dyn Sink,
) -> Result<LoadReport, LoadError> {
    let started = Instant::now();
    let main = connect(opts, Role::Main)?;
    let mut loader = Loader {
        opts,
        sink,
        main,
        spare: Vec::new(),
        session: Arc::new(Session::default()),
        mode: Mode::Pre,
        pool: None,
        pending_tables: Vec::new(),
        units: Vec::new(),
        tail: Vec::new(),
        table_bytes: HashMap::new(),
        order: 0,
        report: LoadReport {
            jobs: opts.jobs.max(1),
            ..LoadReport::default()
        },
        phase: None,
        phase_stats: Vec::new(),
        last_progress: Instant::now(),
        kept: OwnedElsewhere::new(),
        partitioned: HashSet::new(),
        schema_batch: Vec::new(),
        schema_batch_bytes: 0,
        created: HashSet::new(),
        autovacuum_off: Vec::new(),
    };
    let mut parser = DumpParser::new(input);
    let result = loader.run(&mut parser);
    loader.report.bytes = parser.bytes_read();
    if let Err(e) = result {
        loader.abort_pool();
        // As far as the connection allows; the restore must run again anyway.
        let _ = loader.autovacuum_back_on();
        loader.end_phase(false);
        return Err(e);
    }
    if let Err(e) = loader.autovacuum_back_on() {
        loader.end_phase(false);
        return Err(e);
    }
    if let Err(detail) = loader.main.make_durable() {
        loader.end_phase(false);
        return Err(LoadError::ConnectionLost {
            phase: "final commit",
            object: opts.conn.target(),
            at: parser.position(),
            detail,
        });
    }
    loader.end_phase(true);
    let mut report = loader.report;
    report.phases = loader.phase_stats;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

fn connect(opts: &LoadOptions, role: Role) -> Result<Conn, LoadError> {
    let client = opts.conn.connect()?;
    Conn::new(
        client,
        role,
        opts.maintenance_work_mem.clone(),
        opts.parallel_maintenance_workers,
        opts.async_commit,
    )
    .map_err(|detail| LoadError::ConnectionLost {
        phase: "connection setup",
        object: opts.conn.target(),
        at: Position::default(),
        detail,
    })
}

/// A statement shortened to one line for messages.
pub(crate) fn excerpt(sql: &str) -> String {
    let s = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.chars().count() > 160 {
        s.chars().take(160).collect::<String>() + "..."
    } else {
        s
    }
}

/// The database a `\connect` names (`-` or none: the current one).
pub(crate) fn connect_target(args: &str) -> Option<String> {
    if let Some(i) = args.find("dbname=") {
        let rest = &args[i + 7..];
        if let Some(quoted) = rest.strip_prefix('\'') {
            let end = quoted.find('\'').unwrap_or(quoted.len());
            return Some(quoted[..end].to_string());
        }
        let end = rest
            .find(|c: char| c == '"' || c.is_whitespace())
            .unwrap_or(rest.len());
        return Some(rest[..end].to_string());
    }
    let first = args.split_whitespace().find(|w| !w.starts_with("-reuse"))?;
    let first = first.trim_matches('"');
    (first != "-").then(|| first.to_string())
}

impl Loader<'_> {
    fn run<R: BufRead>(&mut self, parser: &mut DumpParser<R>) -> Result<(), LoadError> {
        self.enter(Phase::Schema);
        loop {
            if self.opts.cancel.is_cancelled() {
                return Err(LoadError::Cancelled {
                    at: parser.position(),
                });
            }
            let Some(item) = parser.next_item()? else {
                break;
            };
            match item {
                Item::Statement(s) => self.statement(s)?,
                Item::Copy(h) => self.copy(h, parser)?,
                Item::Meta {
                    command: MetaCommand::Connect { args },
                    at,
                } => {
                    if let Some(t) = connect_target(&args) {
                        if t != self.opts.conn.dbname {
                            return Err(LoadError::OtherDatabase { target: t, at });
                        }
                    }
                    self.flush_schema()?;
                    self.flush()?;
                    self.main = connect(self.opts, Role::Main)?;
                    self.session = self.session.reset();
                    self.main.mark_applied(&self.session);
                }
                Item::Meta { .. } => {}
            }
        }
        self.flush_schema()?;
        self.flush()
    }

    fn enter(&mut self, phase: Phase) {
        self.enter_with(phase, None)
    }

    fn enter_with(&mut self, phase: Phase, total: Option<u64>) {
        if self.phase.map(|(p, _)| p) == Some(phase) {
            return;
        }
        self.end_phase(true);
        self.sink.event(Event::PhaseStarted { phase, total });
        self.phase = Some((phase, Instant::now()));
    }

    fn end_phase(&mut self, ok: bool) {
        if let Some((p, t)) = self.phase.take() {
            let secs = t.elapsed().as_secs_f64();
            match self.phase_stats.iter_mut().find(|s| s.phase == p) {
                Some(s) => s.seconds += secs,
                None => self.phase_stats.push(PhaseReport {
                    phase: p,
                    statements: 0,
                    seconds: secs,
                }),
            }
            self.sink.event(Event::PhaseFinished { phase: p, ok });
        }
    }

    fn count(&mut self, phase: Phase) {
        match self.phase_stats.iter_mut().find(|s| s.phase == phase) {
            Some(s) => s.statements += 1,
            None => self.phase_stats.push(PhaseReport {
                phase,
                statements: 1,
                seconds: 0.0,
            }),
        }
    }

    fn statement(&mut self, s: Statement) -> Result<(), LoadError> {
        let kind = classify(&s.sql, s.toc.as_deref());
        let joins_batch =
            self.mode == Mode::Pre && !matches!(kind, Kind::Session { .. }) && batchable(&s.sql);
        if !joins_batch {
            self.flush_schema()?;
        }
        self.order += 1;
        match self.mode {
            Mode::Post => {
                match kind {
                    Kind::Session { key } => self.session = self.session.with(&key, &s.sql),
                    Kind::Index { table } => self.push_unit(s, table, UnitKind::Index),
                    Kind::KeyConstraint { table } => {
                        let via_index = if self.partitioned.contains(&table) {
                            None
                        } else {
                            keyindex::key_via_index(&s.sql, &table)
                        };
                        self.push_unit(s, table, UnitKind::Key { via_index })
                    }
                    Kind::PostData => match foreign_key(&s.sql) {
                        // Only a plain table's foreign key, both names schema-qualified as
                        // pg_dump writes them (the pool tracks locks by name).
                        Some(fk)
                            if fk.only
                                && fk.table.schema.is_some()
                                && fk.references.schema.is_some()
                                && !self.partitioned.contains(&fk.table)
                                && !self.partitioned.contains(&fk.references) =>
                        {
                            self.push_unit(
                                s,
                                fk.table,
                                UnitKind::ForeignKey {
                                    references: fk.references,
                                },
                            )
                        }
                        _ => self.tail.push((s, self.session.clone())),
                    },
                    _ => self.tail.push((s, self.session.clone())),
                }
                Ok(())
            }
            Mode::Data => match kind {
                Kind::Index { .. } | Kind::KeyConstraint { .. } | Kind::PostData => {
                    self.mode = Mode::Post;
                    self.order -= 1;
                    self.statement(s)
                }
                Kind::Session { key } => self.run_session(&s, &key, Phase::Data),
                Kind::SequenceSet => self.exec_main(&s, Phase::Data),
                _ => {
                    // Anything else waits for the data in flight: psql would run it after.
                    self.finish_pool()?;
                    self.exec_main(&s, Phase::Data)
                }
            },
            Mode::Pre => {
                self.enter(Phase::Schema);
                if let Kind::CreateTable { table } = &kind {
                    if creates_partitioned_table(&s.sql) {
                        self.partitioned.insert(table.clone());
                    }
                }
                match kind {
                    Kind::Session { key } => self.run_session(&s, &key, Phase::Schema),
                    _ if joins_batch => {
                        self.schema_batch_bytes += s.sql.len();
                        self.schema_batch.push(s);
                        if self.schema_batch.len() >= SCHEMA_BATCH_STATEMENTS
                            || self.schema_batch_bytes >= SCHEMA_BATCH_BYTES
                        {
                            self.flush_schema()?;
                        }
                        Ok(())
                    }
                    _ => self.exec_main(&s, Phase::Schema),
                }
            }
        }
    }

    fn push_unit(&mut self, stmt: Statement, table: QualifiedName, kind: UnitKind) {
        let bytes = |t: &QualifiedName| self.table_bytes.get(t).copied().unwrap_or(0);
        let mut weight = bytes(&table);
        if let UnitKind::ForeignKey { references } = &kind {
            if references != &table {
                weight += bytes(references);
            }
        }
        self.units.push(IndexUnit {
            stmt,
            table,
            kind,
            session: self.session.clone(),
            weight,
            order: self.order,
            index_built: None,
            spent: 0.0,
        });
    }

    fn run_session(&mut self, s: &Statement, key: &str, phase: Phase) -> Result<(), LoadError> {
        self.exec_main(s, phase)?;
        self.session = self.session.with(key, &s.sql);
        self.main.mark_applied(&self.session);
        Ok(())
    }

    /// Send the batched schema statements in one round trip: one implicit transaction, so
    /// that either all of them took effect or none did. When any fails, each runs again
    /// alone, so that every statement's outcome is accounted exactly as psql's run of the
    /// dump would have it (an error skipped, ignored or stopping, as one statement).
    fn flush_schema(&mut self) -> Result<(), LoadError> {
        if self.schema_batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.schema_batch);
        self.schema_batch_bytes = 0;
        if batch.len() > 1 {
            if let Err(detail) = self.main.apply(&self.session) {
                return Err(self.lost(Phase::Schema, &batch[0], detail));
            }
            let mut sql = String::with_capacity(batch.iter().map(|s| s.sql.len() + 2).sum());
            for st in &batch {
                sql.push_str(st.sql.trim_end());
                if !sql.ends_with(';') {
                    sql.push(';');
                }
                sql.push('\n');
            }
            match self.main.run(&sql) {
                Outcome::Ok => {
                    for st in &batch {
                        self.count(Phase::Schema);
                        self.note_created(st);
                    }
                    return Ok(());
                }
                Outcome::Fatal(detail) => return Err(self.lost(Phase::Schema, &batch[0], detail)),
                // Rolled back as a whole: each again, alone.
                Outcome::Failed(..) | Outcome::Ignored(..) => {}
            }
        }
        for st in &batch {
            self.exec_main(st, Phase::Schema)?;
        }
        Ok(())
    }

    /// Run a statement on the main connection and account for its outcome.
    fn exec_main(&mut self, s: &Statement, phase: Phase) -> Result<(), LoadError> {
        if let Err(detail) = self.main.apply(&self.session) {
            return Err(self.lost(phase, s, detail));
        }
        let outcome = self.main.run(&s.sql);
        self.count(phase);
        if matches!(outcome, Outcome::Ok) {
            self.note_created(s);
        }
        self.account(phase, s, outcome)
    }

    /// Remember a table this load created (autovacuum may be switched off for it).
    fn note_created(&mut self, s: &Statement) {
        if let Some(t) = autovacuum::candidate(&s.sql) {
            self.created.insert(t);
        }
    }

    /// Switch autovacuum off for a large table this load created, before its data goes.
    fn autovacuum_off(&mut self, table: &QualifiedName) -> Result<(), LoadError> {
        if !self.created.remove(table) {
            return Ok(());
        }
        match self.main.run(&autovacuum::off_sql(table)) {
            Outcome::Ok => {
                self.autovacuum_off.push(table.clone());
                Ok(())
            }
            Outcome::Fatal(detail) => Err(LoadError::ConnectionLost {
                phase: "data",
                object: format!("TABLE {table}"),
                at: Position::default(),
                detail,
            }),
            // Not ours to change after all: loaded as it is.
            Outcome::Failed(..) | Outcome::Ignored(..) => Ok(()),
        }
    }

    /// Reset autovacuum on every table it was switched off for (one round trip; one by one
    /// when that fails, naming what could not be reset).
    fn autovacuum_back_on(&mut self) -> Result<(), LoadError> {
        if self.autovacuum_off.is_empty() {
            return Ok(());
        }
        let tables = std::mem::take(&mut self.autovacuum_off);
        let all: String = tables
            .iter()
            .map(autovacuum::reset_sql)
            .collect::<Vec<_>>()
            .join("\n");
        if matches!(self.main.run(&all), Outcome::Ok) {
            return Ok(());
        }
        let mut left = Vec::new();
        let mut detail = String::new();
        for t in &tables {
            let o = self.main.run(&autovacuum::reset_sql(t));
            let m = match o {
                Outcome::Ok => continue,
                Outcome::Fatal(m) | Outcome::Failed(m, _) | Outcome::Ignored(m, _) => m,
            };
            if detail.is_empty() {
                detail = m;
            }
            left.push(t.clone());
        }
        if left.is_empty() {
            return Ok(());
        }
        Err(LoadError::AutovacuumLeftOff {
            tables: left
                .iter()
                .map(|t| t.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            detail,
            fix: left
                .iter()
                .map(|t| format!("ALTER TABLE {} RESET (autovacuum_enabled);", t.quoted()))
                .collect::<Vec<_>>()
                .join(" "),
        })
    }

    fn lost(&self, phase: Phase, s: &Statement, detail: String) -> LoadError {
        LoadError::ConnectionLost {
            phase: phase.label(),
            object: describe(&s.sql, s.toc.as_deref()),
            at: s.at,
            detail,
        }
    }

    fn account(&mut self, phase: Phase, s: &Statement, outcome: Outcome) -> Result<(), LoadError> {
        let err = |message: String, sqlstate: Option<String>| StatementError {
            phase,
            object: describe(&s.sql, s.toc.as_deref()),
            at: s.at,
            statement: excerpt(&s.sql),
            message,
            sqlstate,
        };
        let (message, code, ignored) = match outcome {
            Outcome::Ok => return Ok(()),
            Outcome::Fatal(detail) => return Err(self.lost(phase, s, detail)),
            Outcome::Ignored(m, code) => (m, code, true),
            Outcome::Failed(m, code) => (m, code, false),
        };
        let facts = StatementFacts::of(&s.sql);
        if let Some(reason) = skip_reason(&facts, code.as_deref(), &message, &self.kept) {
            let e = err(message, code);
            self.sink.warn(format!(
                "skipped {} (dump {}): {} ({}, as GitLab's restore does)",
                e.object,
                e.at,
                e.message,
                reason.label()
            ));
            self.report
                .skipped_privilege
                .push(SkippedStatement { reason, error: e });
            return Ok(());
        }
        if ignored {
            self.kept.extend(kept_by_drop(&facts, &message));
            self.report.ignored.push(err(message, code));
            return Ok(());
        }
        let e = err(message, code);
        if self.opts.continue_on_error {
            self.sink.warn(format!("error restoring {e}"));
            self.report.failed.push(e);
            Ok(())
        } else {
            Err(LoadError::Statement(Box::new(e)))
        }
    }

    /// Connections for workers: spare ones first, then new ones, `jobs` in all.
    fn worker_conns(&mut self, role: Role) -> Result<Vec<Conn>, LoadError> {
        let jobs = self.opts.jobs.max(1);
        let mut conns: Vec<Conn> = Vec::new();
        while conns.len() < jobs {
            let mut c = match self.spare.pop() {
                Some(c) => c,
                None => connect(self.opts, role)?,
            };
            let _ = c.set_role(role);
            conns.push(c);
        }
        Ok(conns)
    }

    fn copy<R: BufRead>(
        &mut self,
        header: CopyHeader,
        parser: &mut DumpParser<R>,
    ) -> Result<(), LoadError> {
        self.flush_schema()?;
        if self.mode == Mode::Post {
            self.flush()?;
        }
        if self.mode == Mode::Pre {
            self.enter(Phase::Data);
            self.mode = Mode::Data;
        }
        if self.pool.is_none() {
            let conns = self.worker_conns(Role::Data)?;
            self.pool = Some(DataPool::start(conns, self.opts.continue_on_error));
        }
        let chunk = self.opts.chunk_bytes.max(4096);
        let table = header.table.clone();
        let label = table.to_string();
        let mut rows = 0u64;
        let mut bytes = 0u64;
        let mut first = Vec::new();
        let mut done = false;
        let Some(pool) = self.pool.as_mut() else {
            return Ok(());
        };
        while !done && first.len() < SPLIT_CHUNKS {
            let mut buf = pool.shared.buffer(chunk);
            let c = parser.read_copy_chunk(&mut buf, chunk)?;
            rows += c.rows;
            bytes += buf.len() as u64;
            done = c.done;
            if !buf.is_empty() {
                first.push(buf);
            }
        }
        if !done {
            // A large table: keep autovacuum off it until the load ends.
            self.autovacuum_off(&table)?;
        }
        let Some(pool) = self.pool.as_mut() else {
            return Ok(());
        };
        let job = pool.begin(header, self.session.clone(), first, done);
        let Some(job) = job else {
            return self.finish_pool();
        };
        while !done {
            if self.opts.cancel.is_cancelled() {
                return Err(LoadError::Cancelled {
                    at: parser.position(),
                });
            }
            let Some(pool) = self.pool.as_ref() else {
                break;
            };
            let mut buf = pool.shared.buffer(chunk);
            let c = parser.read_copy_chunk(&mut buf, chunk)?;
            rows += c.rows;
            bytes += buf.len() as u64;
            done = c.done;
            if !buf.is_empty() && !pool.feed(&job, buf) {
                break;
            }
            if self.last_progress.elapsed() > Duration::from_millis(250) {
                self.last_progress = Instant::now();
                self.sink.event(Event::Progress {
                    phase: Phase::Data,
                    done: parser.bytes_read(),
                    total: None,
                    current: Some(label.clone()),
                    rows: Some(rows),
                });
            }
        }
        if let Some(pool) = self.pool.as_ref() {
            pool.close(&job);
        }
        *self.table_bytes.entry(table).or_insert(0) += bytes;
        self.pending_tables.push(PendingTable { job, rows, bytes });
        self.count(Phase::Data);
        if self.pool.as_ref().is_some_and(|p| p.aborted()) {
            return self.finish_pool();
        }
        if self.last_progress.elapsed() > Duration::from_millis(250) {
            self.last_progress = Instant::now();
            self.sink.event(Event::Progress {
                phase: Phase::Data,
                done: parser.bytes_read(),
                total: None,
                current: Some(label.clone()),
                rows: Some(rows),
            });
        }
        self.sink.event(Event::TableLoaded { table: label, rows });
        Ok(())
    }

    /// Stop the data workers at once (error path): nothing of a table in flight commits.
    fn abort_pool(&mut self) {
        if let Some(pool) = self.pool.take() {
            pool.shared
                .abort
                .store(true, std::sync::atomic::Ordering::SeqCst);
            let (conns, _, _) = pool.finish();
            self.spare.extend(conns);
        }
    }

    /// Wait for the data in flight; account for its tables and errors.
    fn finish_pool(&mut self) -> Result<(), LoadError> {
        let Some(pool) = self.pool.take() else {
            return Ok(());
        };
        let started = pool.started;
        let (conns, shared, _jobs) = pool.finish();
        let wall = started.elapsed();
        self.spare.extend(conns);
        let busy = shared
            .busy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        self.add_connections(Phase::Data, busy, wall.as_secs_f64());
        for t in self.pending_tables.drain(..) {
            let failed = t.job.failed.load(std::sync::atomic::Ordering::SeqCst);
            self.report.tables.push(TableLoad {
                table: t.job.header.table.clone(),
                rows: t.rows,
                server_rows: t.job.server_rows.load(std::sync::atomic::Ordering::SeqCst),
                bytes: t.bytes,
                loaded: !failed,
                split: t.job.parts() > 1,
                seconds: t.job.nanos.load(std::sync::atomic::Ordering::SeqCst) as f64 / 1e9,
            });
        }
        let errors = std::mem::take(&mut *shared.errors.lock().unwrap_or_else(|p| p.into_inner()));
        let mut first_failure = None;
        for e in errors {
            let se = StatementError {
                phase: Phase::Data,
                object: format!("TABLE DATA {}", e.table),
                at: e.header.at,
                statement: excerpt(&e.header.sql),
                message: e.message.clone(),
                sqlstate: e.sqlstate.clone(),
            };
            if e.fatal {
                return Err(LoadError::ConnectionLost {
                    phase: Phase::Data.label(),
                    object: se.object,
                    at: se.at,
                    detail: se.message,
                });
            }
            if e.ignored {
                self.report.ignored.push(se);
            } else if self.opts.continue_on_error {
                self.sink.warn(format!("error restoring {se}"));
                self.report.failed.push(se);
            } else if first_failure.is_none() {
                first_failure = Some(se);
            }
        }
        match first_failure {
            Some(se) => Err(LoadError::Statement(Box::new(se))),
            None => Ok(()),
        }
    }

    /// Add one pool's per-connection figures (`(units, busy seconds)` per slot) to the
    /// report, summed with earlier pools of the same phase.
    fn add_connections(&mut self, phase: Phase, slots: Vec<(u64, f64)>, wall: f64) {
        for (slot, (units, busy)) in slots.into_iter().enumerate() {
            match self
                .report
                .connections
                .iter_mut()
                .find(|c| c.phase == phase && c.slot == slot)
            {
                Some(c) => {
                    c.units += units;
                    c.busy_seconds += busy;
                    c.wall_seconds += wall;
                }
                None => self.report.connections.push(ConnectionReport {
                    phase,
                    slot,
                    units,
                    busy_seconds: busy,
                    wall_seconds: wall,
                }),
            }
        }
    }

    /// Run everything buffered: data in flight, then the post-data pool (index builds,
    /// keys, foreign keys), then the ordered tail.
    fn flush(&mut self) -> Result<(), LoadError> {
        self.finish_pool()?;
        self.mode = Mode::Pre;
        let units = std::mem::take(&mut self.units);
        let tail = std::mem::take(&mut self.tail);
        if !units.is_empty() {
            let total = units.len() as u64;
            self.enter_with(Phase::Indexes, Some(total));
            let conns = self.worker_conns(Role::Index)?;
            let stop = AtomicBool::new(false);
            let sink = self.sink;
            let on_done = |r: &post::UnitResult, n: usize| {
                sink.event(Event::Progress {
                    phase: Phase::Indexes,
                    done: n as u64,
                    total: Some(total),
                    current: Some(r.unit.table.to_string()),
                    rows: None,
                });
            };
            let on_start = |slot: usize, u: Option<&IndexUnit>| {
                sink.event(Event::Worker {
                    slot,
                    phase: Phase::Indexes,
                    what: u.map(|u| describe(&u.stmt.sql, u.stmt.toc.as_deref())),
                });
            };
            let started = Instant::now();
            let (results, conns, stats) = run_units(
                units,
                conns,
                &self.kept,
                &stop,
                &self.opts.cancel,
                self.opts.continue_on_error,
                &Hooks {
                    on_start: &on_start,
                    on_done: &on_done,
                },
            );
            self.spare.extend(conns);
            self.add_connections(
                Phase::Indexes,
                stats.iter().map(|s| (s.units, s.busy_seconds)).collect(),
                started.elapsed().as_secs_f64(),
            );
            let mut results = results;
            results.sort_by_key(|r| r.unit.order);
            let mut first_err = None;
            for r in results {
                let phase = r.unit.phase();
                self.count(phase);
                if r.seconds >= 1.0 {
                    self.sink.info(format!(
                        "{} {} in {:.1}s (connection {})",
                        describe(&r.unit.stmt.sql, r.unit.stmt.toc.as_deref()),
                        if phase == Phase::Indexes {
                            "built"
                        } else {
                            "added"
                        },
                        r.seconds,
                        r.slot + 1
                    ));
                }
                if let Err(e) = self.account(phase, &r.unit.stmt, r.outcome) {
                    if first_err.is_none() || matches!(e, LoadError::ConnectionLost { .. }) {
                        first_err = Some(e);
                    }
                }
            }
            if let Some(e) = first_err {
                return Err(e);
            }
            if self.opts.cancel.is_cancelled() {
                return Err(LoadError::Cancelled {
                    at: Position::default(),
                });
            }
        }
        if !tail.is_empty() {
            let total = tail.len() as u64;
            self.enter_with(Phase::Constraints, Some(total));
            for (i, (s, session)) in tail.into_iter().enumerate() {
                if self.last_progress.elapsed() > Duration::from_millis(250) {
                    self.last_progress = Instant::now();
                    self.sink.event(Event::Progress {
                        phase: Phase::Constraints,
                        done: i as u64,
                        total: Some(total),
                        current: Some(describe(&s.sql, s.toc.as_deref())),
                        rows: None,
                    });
                }
                if self.opts.cancel.is_cancelled() {
                    return Err(LoadError::Cancelled { at: s.at });
                }
                if let Err(detail) = self.main.apply(&session) {
                    return Err(self.lost(Phase::Constraints, &s, detail));
                }
                let outcome = self.main.run(&s.sql);
                self.count(Phase::Constraints);
                self.account(Phase::Constraints, &s, outcome)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_plain_transactional_ddl_is_batched() {
        for sql in [
            "CREATE TABLE public.t (a int);",
            "ALTER TABLE ONLY public.t ALTER COLUMN a SET DEFAULT 1;",
            "DROP INDEX IF EXISTS public.i;",
            "COMMENT ON TABLE public.t IS 'x';",
            "GRANT SELECT ON TABLE public.t TO reader;",
            "CREATE INDEX i ON public.t USING btree (a);",
        ] {
            assert!(super::batchable(sql), "{sql}");
        }
        for sql in [
            "BEGIN;",
            "COMMIT;",
            "SELECT pg_catalog.set_config('search_path', '', false);",
            "SET statement_timeout = 0;",
            "CREATE DATABASE x;",
            "DROP DATABASE IF EXISTS x;",
            "CREATE INDEX CONCURRENTLY i ON public.t (a);",
            "ALTER SYSTEM SET work_mem = '1MB';",
            "CREATE TABLESPACE t LOCATION '/x';",
            "VACUUM public.t;",
            "CREATE SUBSCRIPTION s CONNECTION 'x' PUBLICATION p;",
        ] {
            assert!(!super::batchable(sql), "{sql}");
        }
    }

    use super::*;

    #[test]
    fn connect_targets() {
        assert_eq!(
            connect_target("gitlabhq_production").as_deref(),
            Some("gitlabhq_production")
        );
        assert_eq!(connect_target("-"), None);
        assert_eq!(
            connect_target("-reuse-previous=on \"dbname='x y'\"").as_deref(),
            Some("x y")
        );
    }
}
