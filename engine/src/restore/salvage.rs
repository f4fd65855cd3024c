//! Salvage: the rows created since the backup, kept before the drop and brought back after
//! the restore.
//!
//! **Export** ([`export`]), before anything is dropped: from the live database, for every
//! table of the loss report ([`super::loss`]) with rows created after the backup's
//! `backup_created_at`, `COPY (SELECT ... WHERE created_at > <backup time>) TO STDOUT WITH
//! (FORMAT csv, HEADER)` streamed to a file, all tables in one `REPEATABLE READ READ ONLY`
//! transaction (one consistent picture). The directory, `<backup_path>/rewind/salvage-<backup
//! id>-<UTC time>/`, is Rewind's own: created `0700` through the handle of
//! `<backup_path>/rewind`, never through a link; the files are created `0600` with
//! `O_EXCL|O_NOFOLLOW`. `manifest.json` lists, per database and table, the file, the
//! columns with their types, the rows and the file's sha256.
//!
//! **Import** ([`import`]), after the restore: the directory and every file are opened
//! without following links and refused unless they are root's (the user running Rewind)
//! with mode `0700`/`0600` and one link; every file's sha256 is checked before the database
//! is touched. Then, in one transaction per database, tables parents first (foreign keys
//! from `pg_constraint`): the CSV is copied into a temporary table `LIKE` the restored one
//! (the backup's schema), and `INSERT ... SELECT` of the columns both have, ids kept,
//! `WHERE` every parent row exists, `ON CONFLICT DO NOTHING`; what did not come back is
//! listed with its key and why (a primary or unique key already there, a parent missing).
//! Sequences are moved past the imported ids. A dry run does the same and rolls back.
//!
//! Both sessions use `TimeZone = UTC` and ISO dates, so what is written reads back the same.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use postgres::{Client, IsolationLevel, Transaction};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::loss::{display_name, time_literal, LossReport};
use super::snapshot::file_safe;
use crate::journal::{self, Journal, JournalError};
use crate::pg::conn::{describe_pg_error, ConnError, ConnSpec};
use crate::pg::ident::{qualified, quote_ident};
use crate::safefs::{self, SafeError};

/// The manifest's file name.
pub const MANIFEST: &str = "manifest.json";

/// Version of the manifest's format.
pub const FORMAT: u32 = 1;

/// How many self-referencing passes an import makes at most (a child whose parent is in
/// the same file comes back on a later pass).
const MAX_PASSES: usize = 64;

/// How many skipped rows are listed per table in the output (the report file lists all).
pub const SHOWN_SKIPPED: usize = 20;

/// Errors of a salvage.
#[derive(Debug, thiserror::Error)]
pub enum SalvageError {
    #[error(transparent)]
    Safe(#[from] SafeError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Connect(#[from] ConnError),
    #[error("salvage of `{database}` failed while {what}: {detail}. {after}")]
    Db {
        database: String,
        what: String,
        detail: String,
        /// What it left behind, in words (`Nothing was imported`, `The directory ... is
        /// incomplete`).
        after: String,
        changed: bool,
    },
    #[error("cannot {step} {path}: {source}")]
    Io {
        step: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
        changed: bool,
    },
    #[error("{path}: {detail}. The salvage directory is not usable as it is: use the one `rewind salvage` printed, untouched")]
    Manifest { path: PathBuf, detail: String },
    #[error("{path}: sha256 is {found}, the manifest says {expected}: the file changed since it was written. Nothing was imported")]
    Checksum {
        path: PathBuf,
        expected: String,
        found: String,
    },
    #[error("{0}")]
    Refused(String),
}

impl SalvageError {
    /// What this error left behind.
    pub fn outcome(&self) -> super::database::Outcome {
        use super::database::Outcome;
        let changed = match self {
            SalvageError::Db { changed, .. } | SalvageError::Io { changed, .. } => *changed,
            _ => false,
        };
        if changed {
            Outcome::Changed
        } else {
            Outcome::NothingChanged
        }
    }
}

fn db_err(
    database: &str,
    what: impl Into<String>,
    after: &str,
    changed: bool,
) -> impl Fn(postgres::Error) -> SalvageError {
    let database = database.to_string();
    let what = what.into();
    let after = after.to_string();
    move |e| SalvageError::Db {
        database: database.clone(),
        what: what.clone(),
        detail: describe_pg_error(&e),
        after: after.clone(),
        changed,
    }
}

/// One column of a salvaged table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    /// `format_type` of the live column.
    #[serde(rename = "type")]
    pub type_name: String,
}

/// One salvaged table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SalvagedTable {
    pub schema: String,
    pub name: String,
    /// `name` in `public`, else `schema.name` (as the loss report names it).
    pub table: String,
    /// The CSV file in the salvage directory (`None` in a dry run).
    pub file: Option<String>,
    pub columns: Vec<Column>,
    pub rows: u64,
    pub bytes: u64,
    pub sha256: Option<String>,
}

/// The salvaged tables of one database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SalvagedDatabase {
    /// `main`, `ci`.
    pub connection: String,
    pub database: String,
    pub tables: Vec<SalvagedTable>,
    /// Tables of the loss report that were not written, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub backup_id: String,
    /// Rows with `created_at` after this were written.
    pub backup_created_at: DateTime<Utc>,
    pub written_at: DateTime<Utc>,
    pub databases: Vec<SalvagedDatabase>,
}

impl Manifest {
    pub fn rows(&self) -> u64 {
        self.databases
            .iter()
            .flat_map(|d| &d.tables)
            .map(|t| t.rows)
            .sum()
    }

    pub fn tables(&self) -> usize {
        self.databases.iter().map(|d| d.tables.len()).sum()
    }
}

/// What [`export`] did (or, in a dry run, would do).
#[derive(Debug, Clone, Serialize)]
pub struct ExportOutcome {
    pub dry_run: bool,
    /// The salvage directory (`None` in a dry run or when nothing was created since).
    pub dir: Option<PathBuf>,
    pub manifest: Manifest,
    /// The command that brings the rows back after the restore.
    pub import_command: Option<String>,
}

/// A database to salvage and its loss report (computed as the restore plan does).
#[derive(Debug, Clone)]
pub struct ExportDatabase<'a> {
    pub connection: String,
    pub spec: &'a ConnSpec,
    pub report: &'a LossReport,
}

/// The tables of a loss report worth salvaging: rows created since (or not counted, so
/// possibly some).
pub fn tables_to_salvage(report: &LossReport) -> Vec<String> {
    report
        .tables
        .iter()
        .filter(|t| {
            t.created.is_some_and(|n| n > 0) || (t.created.is_none() && !t.notes.is_empty())
        })
        .map(|t| t.table.clone())
        .collect()
}

/// The loss report of every database of `jobs` the backup holds a dump of, computed as
/// the restore's plan does (the dump's catalogue, the live inventory and leftovers):
/// `(index in jobs, report)`. Read-only.
pub fn loss_reports(
    source: &dyn super::database::DumpSource,
    jobs: &[super::database::DatabaseJob],
    backup_created_at: DateTime<Utc>,
    db_version: Option<&str>,
) -> Result<Vec<(usize, LossReport)>, SalvageError> {
    let mut out = Vec::new();
    for (i, job) in jobs.iter().enumerate() {
        if !source.has(&job.member) {
            continue;
        }
        let why = |e: String| {
            SalvageError::Refused(format!(
                "cannot tell what was written to `{}` since the backup: {e}. Nothing was written",
                job.spec.dbname
            ))
        };
        let mut c = job.spec.connect()?;
        let inv = super::inventory::inventory(&mut c).map_err(|e| why(e.to_string()))?;
        let (catalog, _, left) = super::database::catalog_and_leftovers(
            None,
            source,
            &job.member,
            &job.spec,
            &inv,
            db_version,
        )
        .map_err(|e| why(e.to_string()))?;
        let report = super::loss::since_backup(
            &mut c,
            backup_created_at,
            &catalog,
            &left,
            &super::loss::LossOptions::default(),
        )
        .map_err(|e| why(e.to_string()))?;
        out.push((i, report));
    }
    Ok(out)
}

/// The directory name of a salvage: `salvage-<backup id>-<YYYYmmddTHHMMSSZ>`.
pub fn salvage_dir_name(backup_id: &str, now: DateTime<Utc>) -> String {
    format!(
        "salvage-{}-{}",
        file_safe(backup_id),
        now.format("%Y%m%dT%H%M%SZ")
    )
}

/// Session settings of both directions: UTC, ISO dates, exact floats, hex bytea.
/// The salvage's transaction settings: text formats that read back exactly, and no
/// statement timeout (Omnibus's default of 60 s would cut the export or import of a large
/// table the user asked to keep; the loss report's counts have their own bound).
const SESSION: &str = "SET LOCAL TimeZone = 'UTC'; SET LOCAL DateStyle = 'ISO, MDY';
    SET LOCAL IntervalStyle = 'postgres'; SET LOCAL extra_float_digits = 3;
    SET LOCAL bytea_output = 'hex'; SET LOCAL statement_timeout = 0";

/// A table of the live database found by its report name.
struct LiveTable {
    schema: String,
    name: String,
    oid: u32,
}

fn find_table(
    tx: &mut Transaction<'_>,
    shown: &str,
    database: &str,
    after: &str,
) -> Result<Option<LiveTable>, SalvageError> {
    let rows = tx
        .query(
            "SELECT n.nspname::text, c.relname::text, c.oid
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
                AND CASE WHEN n.nspname = 'public' THEN c.relname::text
                         ELSE n.nspname::text || '.' || c.relname::text END = $1",
            &[&shown],
        )
        .map_err(db_err(
            database,
            format!("finding table {shown}"),
            after,
            false,
        ))?;
    Ok(rows.first().map(|r| LiveTable {
        schema: r.get(0),
        name: r.get(1),
        oid: r.get(2),
    }))
}

/// Columns (name, `format_type`, `typname`, generated) of a table, in order.
fn columns_of(
    tx: &mut Transaction<'_>,
    oid: u32,
    database: &str,
    after: &str,
) -> Result<Vec<(Column, String, bool)>, SalvageError> {
    let rows = tx
        .query(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), t.typname::text,
                    a.attgenerated <> ''
               FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
              WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
              ORDER BY a.attnum",
            &[&oid],
        )
        .map_err(db_err(database, "reading the columns", after, false))?;
    Ok(rows
        .iter()
        .map(|r| {
            (
                Column {
                    name: r.get(0),
                    type_name: r.get(1),
                },
                r.get(2),
                r.get(3),
            )
        })
        .collect())
}

/// A writer that hashes and counts what goes through it.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Create `name` in `dir` for writing: `O_EXCL|O_NOFOLLOW`, mode `0600` set on the handle.
fn create_private_file(dir: BorrowedFd<'_>, name: &str, shown: &Path) -> Result<File, SafeError> {
    let fd = nix::fcntl::openat(
        dir,
        name,
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    )
    .map_err(|e| SafeError::io("creating", shown, e))?;
    nix::sys::stat::fchmod(&fd, Mode::from_bits_truncate(0o600))
        .map_err(|e| SafeError::io("setting the mode of", shown, e))?;
    Ok(File::from(fd))
}

/// Write the rows created since `backup_created_at` of every database's loss-report tables
/// to a new salvage directory under `<backup_path>/rewind` (see the module). In a dry run,
/// count them only and write nothing. Journaled before and after.
pub fn export(
    backup_path: &Path,
    backup_id: &str,
    backup_created_at: DateTime<Utc>,
    databases: &[ExportDatabase<'_>],
    dry_run: bool,
    journal: Option<&Journal>,
) -> Result<ExportOutcome, SalvageError> {
    let now = Utc::now();
    let mut manifest = Manifest {
        format: FORMAT,
        backup_id: backup_id.to_string(),
        backup_created_at,
        written_at: now,
        databases: Vec::new(),
    };
    let wanted: Vec<Vec<String>> = databases
        .iter()
        .map(|d| tables_to_salvage(d.report))
        .collect();
    let nothing = wanted.iter().all(|w| w.is_empty());
    let rewind_dir = Journal::dir_for(backup_path);
    let name = salvage_dir_name(backup_id, now);
    let dir_path = rewind_dir.join(&name);
    // The directory: only when something is to be written.
    let dir = if dry_run || nothing {
        None
    } else {
        let jfd = journal::open_private_dir(&rewind_dir, true)?.expect("created");
        if safefs::stat_at(&jfd, OsStr::new(&name))
            .map_err(|e| SafeError::io("reading", &dir_path, e))?
            .is_some()
        {
            return Err(SalvageError::Refused(format!(
                "{} already exists; wait a second and run `rewind salvage` again",
                dir_path.display()
            )));
        }
        if let Some(j) = journal {
            j.begin(
                "salvage.export",
                format!(
                    "write the rows created since the backup to {}",
                    dir_path.display()
                ),
                serde_json::json!({
                    "dir": dir_path,
                    "backup": backup_id,
                    "backup_created_at": backup_created_at,
                    "tables": wanted,
                }),
            )?;
        }
        let fd =
            safefs::private_dir(jfd.as_fd(), OsStr::new(&name), &dir_path, true)?.expect("created");
        Some(fd)
    };
    let result = export_into(
        dir.as_ref().map(|d| (d.as_fd(), dir_path.as_path())),
        backup_created_at,
        databases,
        &wanted,
        &mut manifest,
    );
    if let (Some(fd), Ok(())) = (&dir, &result) {
        let mpath = dir_path.join(MANIFEST);
        let werr = |e: io::Error| SalvageError::Io {
            step: "write",
            path: mpath.clone(),
            source: e,
            changed: true,
        };
        let mut f = create_private_file(fd.as_fd(), MANIFEST, &mpath)?;
        let text = serde_json::to_vec_pretty(&manifest).map_err(|e| werr(e.into()))?;
        f.write_all(&text).map_err(werr)?;
        f.write_all(b"\n").map_err(werr)?;
        f.sync_all().map_err(werr)?;
    }
    if dir.is_some() {
        if let Some(j) = journal {
            j.end(
                "salvage.export",
                if result.is_ok() { "ok" } else { "failed" },
                serde_json::json!({
                    "dir": dir_path,
                    "tables": manifest.tables(),
                    "rows": manifest.rows(),
                    "error": result.as_ref().err().map(|e| e.to_string()),
                }),
            )?;
        }
    }
    result?;
    let import_command = dir
        .as_ref()
        .map(|_| format!("rewind salvage --import {}", dir_path.display()));
    Ok(ExportOutcome {
        dry_run,
        dir: dir.map(|_| dir_path),
        manifest,
        import_command,
    })
}

fn export_into(
    dir: Option<(BorrowedFd<'_>, &Path)>,
    at: DateTime<Utc>,
    databases: &[ExportDatabase<'_>],
    wanted: &[Vec<String>],
    manifest: &mut Manifest,
) -> Result<(), SalvageError> {
    let after = match dir {
        Some((_, p)) => format!(
            "{} is incomplete (no manifest.json): remove it and run `rewind salvage` again; nothing was dropped",
            p.display()
        ),
        None => "Nothing was written".to_string(),
    };
    let changed = dir.is_some();
    let mut seq = 0usize;
    for (db, tables) in databases.iter().zip(wanted) {
        let database = db.spec.dbname.clone();
        let mut out = SalvagedDatabase {
            connection: db.connection.clone(),
            database: database.clone(),
            tables: Vec::new(),
            notes: Vec::new(),
        };
        if tables.is_empty() {
            manifest.databases.push(out);
            continue;
        }
        let mut client = db.spec.connect()?;
        let mut tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .map_err(db_err(
                &database,
                "starting a read-only transaction",
                &after,
                changed,
            ))?;
        tx.batch_execute(SESSION).map_err(db_err(
            &database,
            "setting the session",
            &after,
            changed,
        ))?;
        for shown in tables {
            let Some(t) = find_table(&mut tx, shown, &database, &after)? else {
                out.notes
                    .push(format!("{shown}: no longer in the database"));
                continue;
            };
            let cols = columns_of(&mut tx, t.oid, &database, &after)?;
            let Some(created) = cols.iter().find(|c| c.0.name == "created_at") else {
                out.notes.push(format!("{shown}: no created_at column"));
                continue;
            };
            let tz = match created.1.as_str() {
                "timestamptz" => true,
                "timestamp" => false,
                other => {
                    out.notes
                        .push(format!("{shown}: created_at is {other}, not a timestamp"));
                    continue;
                }
            };
            let from = qualified(&t.schema, &t.name);
            let cond = format!("\"created_at\" > {}", time_literal(at, tz));
            let rows: i64 = tx
                .query_one(&format!("SELECT count(*) FROM {from} WHERE {cond}"), &[])
                .map_err(db_err(
                    &database,
                    format!("counting the rows of {shown}"),
                    &after,
                    changed,
                ))?
                .get(0);
            if rows == 0 {
                continue;
            }
            let columns: Vec<Column> = cols.into_iter().map(|c| c.0).collect();
            let mut st = SalvagedTable {
                schema: t.schema.clone(),
                name: t.name.clone(),
                table: display_name(&t.schema, &t.name),
                file: None,
                columns,
                rows: rows as u64,
                bytes: 0,
                sha256: None,
            };
            if let Some((dfd, dpath)) = dir {
                seq += 1;
                let file = format!(
                    "{seq:03}-{}-{}.csv",
                    file_safe(&db.connection),
                    file_safe(&st.table)
                );
                let fpath = dpath.join(&file);
                let f = create_private_file(dfd, &file, &fpath)?;
                let list: Vec<String> = st.columns.iter().map(|c| quote_ident(&c.name)).collect();
                let sql = format!(
                    "COPY (SELECT {} FROM {from} WHERE {cond}) TO STDOUT WITH (FORMAT csv, HEADER)",
                    list.join(", ")
                );
                let mut w = Hashing {
                    inner: io::BufWriter::new(f),
                    hash: Sha256::new(),
                    bytes: 0,
                };
                let mut reader = tx.copy_out(&sql).map_err(db_err(
                    &database,
                    format!("copying out {shown}"),
                    &after,
                    true,
                ))?;
                let ioerr = |e: io::Error| SalvageError::Io {
                    step: "write",
                    path: fpath.clone(),
                    source: e,
                    changed: true,
                };
                io::copy(&mut reader, &mut w).map_err(ioerr)?;
                drop(reader);
                let Hashing { inner, hash, bytes } = w;
                let f = inner.into_inner().map_err(|e| ioerr(e.into_error()))?;
                f.sync_all().map_err(ioerr)?;
                st.file = Some(file);
                st.bytes = bytes;
                st.sha256 = Some(hex(&hash.finalize()));
            }
            out.tables.push(st);
        }
        tx.rollback().map_err(db_err(
            &database,
            "ending the read-only transaction",
            &after,
            changed,
        ))?;
        manifest.databases.push(out);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Import

/// Why a row did not come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// A row with the same primary or unique key is in the restored database.
    Conflict,
    /// It refers to a row (foreign key) the restored database does not have.
    Orphan,
    /// The table could not be imported (see the table's error).
    Failed,
}

/// A row that did not come back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedRow {
    /// Its key (`id=42`), or `row N` of the file for a table without a primary key.
    pub key: String,
    pub reason: SkipReason,
    /// Which key it conflicts on, or which parent is missing.
    pub detail: String,
    /// A conflict on the primary key: the restored database has a row with this id
    /// (usually the same row, already in the backup).
    #[serde(default)]
    pub same_id: bool,
}

/// One table's import.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportedTable {
    pub table: String,
    pub file: String,
    /// Rows in the file.
    pub rows: u64,
    pub imported: u64,
    pub skipped: Vec<SkippedRow>,
    /// Rows not listed (a table without a primary key).
    pub skipped_unlisted: u64,
    /// Columns of the file the restored table does not have (not imported).
    pub dropped_columns: Vec<String>,
    /// Sequences moved: `sequence -> value`.
    pub sequences: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ImportedTable {
    pub fn not_back(&self) -> u64 {
        self.rows.saturating_sub(self.imported)
    }
}

/// One database's import.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportedDatabase {
    pub connection: String,
    pub database: String,
    pub tables: Vec<ImportedTable>,
}

/// What [`import`] did (or, in a dry run, would do).
#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    pub dir: PathBuf,
    pub dry_run: bool,
    pub backup_id: String,
    pub backup_created_at: DateTime<Utc>,
    pub databases: Vec<ImportedDatabase>,
    /// The report file written in the salvage directory (not in a dry run).
    pub report_file: Option<PathBuf>,
}

impl ImportReport {
    pub fn rows(&self) -> u64 {
        self.tables().map(|t| t.rows).sum()
    }
    pub fn imported(&self) -> u64 {
        self.tables().map(|t| t.imported).sum()
    }
    pub fn not_back(&self) -> u64 {
        self.tables().map(|t| t.not_back()).sum()
    }
    fn tables(&self) -> impl Iterator<Item = &ImportedTable> {
        self.databases.iter().flat_map(|d| &d.tables)
    }
}

/// A database to import into.
#[derive(Debug, Clone)]
pub struct ImportDatabase<'a> {
    pub connection: String,
    pub spec: &'a ConnSpec,
}

/// Open a file of the salvage directory: no link, a regular file of the user running
/// Rewind with one link and mode `0600`.
fn open_salvage_file(dir: BorrowedFd<'_>, name: &str, shown: &Path) -> Result<File, SalvageError> {
    if name.is_empty() || name.contains('/') || name.starts_with('.') {
        return Err(SalvageError::Manifest {
            path: shown.to_path_buf(),
            detail: format!("`{name}` is not a file name of this directory"),
        });
    }
    let fd = match nix::fcntl::openat(
        dir,
        name,
        OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(nix::errno::Errno::ELOOP) => {
            return Err(SafeError::refused(shown, "it is a symbolic link").into())
        }
        Err(e) => return Err(SafeError::io("opening", shown, e).into()),
    };
    let st = safefs::fstat(&fd).map_err(|e| SafeError::io("reading", shown, e))?;
    safefs::check_owned_file(&st, shown)?;
    let mode = st.st_mode & 0o7777;
    if mode != 0o600 {
        return Err(SafeError::refused(
            shown,
            format!("its mode is {mode:04o}; the files Rewind writes are 0600"),
        )
        .into());
    }
    Ok(File::from(fd))
}

/// Open a salvage directory: its parent resolved once, the directory itself without
/// following a link, refused unless it is the user's with no access for others.
fn open_salvage_dir(dir: &Path) -> Result<OwnedFd, SalvageError> {
    let name = dir
        .file_name()
        .ok_or_else(|| SafeError::refused(dir, "it has no name"))?;
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let pfd = nix::fcntl::open(
        parent,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| SafeError::io("opening", parent, e))?;
    let fd = safefs::open_dir_checked(pfd.as_fd(), name, dir)?;
    let st = safefs::fstat(&fd).map_err(|e| SafeError::io("reading", dir, e))?;
    safefs::check_owner(&st, dir)?;
    if st.st_mode & 0o077 != 0 {
        return Err(SafeError::refused(
            dir,
            format!(
                "its mode is {:04o}; a salvage directory is 0700",
                st.st_mode & 0o7777
            ),
        )
        .into());
    }
    Ok(fd)
}

/// Read and check a salvage directory: the manifest, and every file's ownership, mode and
/// sha256. Returns the directory's handle, the manifest, and the files opened (rewound).
pub fn read_salvage(
    dir: &Path,
) -> Result<(OwnedFd, Manifest, BTreeMap<String, File>), SalvageError> {
    let fd = open_salvage_dir(dir)?;
    let mpath = dir.join(MANIFEST);
    let mut f = open_salvage_file(fd.as_fd(), MANIFEST, &mpath)?;
    let mut text = Vec::new();
    Read::by_ref(&mut f)
        .take(64 << 20)
        .read_to_end(&mut text)
        .map_err(|e| SalvageError::Io {
            step: "read",
            path: mpath.clone(),
            source: e,
            changed: false,
        })?;
    let manifest: Manifest = serde_json::from_slice(&text).map_err(|e| SalvageError::Manifest {
        path: mpath.clone(),
        detail: format!("not a salvage manifest ({e})"),
    })?;
    if manifest.format != FORMAT {
        return Err(SalvageError::Manifest {
            path: mpath,
            detail: format!(
                "format {} (this Rewind reads format {FORMAT})",
                manifest.format
            ),
        });
    }
    let mut files = BTreeMap::new();
    for t in manifest.databases.iter().flat_map(|d| &d.tables) {
        let (Some(name), Some(expected)) = (&t.file, &t.sha256) else {
            return Err(SalvageError::Manifest {
                path: mpath,
                detail: format!("table {} has no file or no sha256", t.table),
            });
        };
        let path = dir.join(name);
        let mut f = open_salvage_file(fd.as_fd(), name, &path)?;
        let mut h = Sha256::new();
        let ioerr = |e: io::Error| SalvageError::Io {
            step: "read",
            path: path.clone(),
            source: e,
            changed: false,
        };
        io::copy(&mut f, &mut h).map_err(ioerr)?;
        let found = hex(&h.finalize());
        if &found != expected {
            return Err(SalvageError::Checksum {
                path,
                expected: expected.clone(),
                found,
            });
        }
        f.rewind().map_err(ioerr)?;
        files.insert(name.clone(), f);
    }
    Ok((fd, manifest, files))
}

/// A target table's facts for the import.
struct Target {
    oid: u32,
    from: String,
    /// (name, generated, has a serial/identity sequence)
    columns: Vec<(String, bool)>,
    primary: Vec<String>,
    /// Unique indexes (name, columns), primary key included.
    uniques: Vec<(String, Vec<String>)>,
    /// Foreign keys: (constraint, parent `schema.name` shown, parent SQL, columns, parent
    /// columns, parent oid).
    fks: Vec<Fk>,
}

struct Fk {
    parent_shown: String,
    parent_sql: String,
    parent_oid: u32,
    columns: Vec<String>,
    parent_columns: Vec<String>,
}

fn target(tx: &mut Transaction<'_>, oid: u32) -> Result<Target, postgres::Error> {
    let r = tx.query_one(
        "SELECT n.nspname::text, c.relname::text FROM pg_class c
           JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1",
        &[&oid],
    )?;
    let from = qualified(r.get(0), r.get(1));
    let columns = tx
        .query(
            "SELECT attname::text, attgenerated <> '' FROM pg_attribute
              WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            &[&oid],
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let mut primary = Vec::new();
    let mut uniques = Vec::new();
    for r in tx.query(
        "SELECT ic.relname::text, i.indisprimary,
                array(SELECT a.attname::text FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(n, o)
                        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n
                       ORDER BY k.o)
           FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
          WHERE i.indrelid = $1 AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL
          ORDER BY NOT i.indisprimary, ic.relname",
        &[&oid],
    )? {
        let cols: Vec<String> = r.get(2);
        if r.get::<_, bool>(1) {
            primary = cols.clone();
        }
        uniques.push((r.get(0), cols));
    }
    let mut fks = Vec::new();
    for r in tx.query(
        "SELECT n.nspname::text, p.relname::text, c.confrelid,
                array(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k(n, o)
                        JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.o),
                array(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY k(n, o)
                        JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.o)
           FROM pg_constraint c JOIN pg_class p ON p.oid = c.confrelid
           JOIN pg_namespace n ON n.oid = p.relnamespace
          WHERE c.contype = 'f' AND c.conrelid = $1
          ORDER BY c.conname",
        &[&oid],
    )? {
        let (schema, name): (String, String) = (r.get(0), r.get(1));
        fks.push(Fk {
            parent_shown: display_name(&schema, &name),
            parent_sql: qualified(&schema, &name),
            parent_oid: r.get(2),
            columns: r.get(3),
            parent_columns: r.get(4),
        });
    }
    Ok(Target {
        oid,
        from,
        columns,
        primary,
        uniques,
        fks,
    })
}

/// Tables parents first: by the foreign keys among them, ties (and cycles) in the given order.
fn parents_first(oids: &[u32], parents: &BTreeMap<u32, BTreeSet<u32>>) -> Vec<usize> {
    let mut done: Vec<usize> = Vec::new();
    let mut placed = BTreeSet::new();
    while done.len() < oids.len() {
        let next = (0..oids.len()).find(|&i| {
            !placed.contains(&i)
                && parents.get(&oids[i]).is_none_or(|ps| {
                    ps.iter().all(|p| {
                        *p == oids[i]
                            || !oids.contains(p)
                            || oids
                                .iter()
                                .enumerate()
                                .any(|(j, o)| o == p && placed.contains(&j))
                    })
                })
        });
        // A cycle: the first left, in the given order.
        let i = next.unwrap_or_else(|| (0..oids.len()).find(|i| !placed.contains(i)).unwrap());
        placed.insert(i);
        done.push(i);
    }
    done
}

const ROW: &str = "rewind_salvage_row";
const DONE: &str = "rewind_salvage_done";

/// Bring the rows of a salvage directory back into the restored databases (see the
/// module). Files are checked (ownership, mode, sha256) before anything is imported. In a
/// dry run, the same work in transactions that are rolled back, and no report file.
pub fn import(
    dir: &Path,
    databases: &[ImportDatabase<'_>],
    dry_run: bool,
    journal: Option<&Journal>,
) -> Result<ImportReport, SalvageError> {
    let (dfd, manifest, mut files) = read_salvage(dir)?;
    let mut report = ImportReport {
        dir: dir.to_path_buf(),
        dry_run,
        backup_id: manifest.backup_id.clone(),
        backup_created_at: manifest.backup_created_at,
        databases: Vec::new(),
        report_file: None,
    };
    for sdb in &manifest.databases {
        if sdb.tables.is_empty() {
            continue;
        }
        let Some(db) = databases.iter().find(|d| d.connection == sdb.connection) else {
            return Err(SalvageError::Refused(format!(
                "{}: the salvage holds rows of the `{}` database ({}), which this installation does not configure; nothing was imported",
                dir.join(MANIFEST).display(),
                sdb.connection,
                sdb.database
            )));
        };
        if let Some(j) = journal {
            j.begin(
                "salvage.import",
                format!(
                    "{} the rows of {} into {}",
                    if dry_run { "dry run: import" } else { "import" },
                    dir.display(),
                    db.spec.dbname
                ),
                serde_json::json!({"dir": dir, "database": db.spec.dbname, "dry_run": dry_run,
                    "tables": sdb.tables.iter().map(|t| &t.table).collect::<Vec<_>>()}),
            )?;
        }
        let result = import_database(sdb, db.spec, &mut files, dir, dry_run);
        if let Some(j) = journal {
            j.end(
                "salvage.import",
                if result.is_ok() { "ok" } else { "failed" },
                match &result {
                    Ok(d) => serde_json::json!({
                        "imported": d.tables.iter().map(|t| t.imported).sum::<u64>(),
                        "not_back": d.tables.iter().map(|t| t.not_back()).sum::<u64>(),
                        "dry_run": dry_run,
                    }),
                    Err(e) => serde_json::json!({"error": e.to_string()}),
                },
            )?;
        }
        let done = match result {
            Ok(d) => d,
            // An earlier database's import is committed: say so, it changed something.
            Err(e) if !dry_run && !report.databases.is_empty() => {
                let committed: Vec<&str> = report
                    .databases
                    .iter()
                    .map(|d| d.database.as_str())
                    .collect();
                return Err(SalvageError::Db {
                    database: db.spec.dbname.clone(),
                    what: "importing".into(),
                    detail: e.to_string(),
                    after: format!(
                        "The rows of {} were imported (committed) before this failed; run the import again once this is fixed: rows already back are skipped as conflicts",
                        committed.join(", ")
                    ),
                    changed: true,
                });
            }
            Err(e) => return Err(e),
        };
        report.databases.push(done);
    }
    if !dry_run {
        let name = format!("import-{}.json", Utc::now().format("%Y%m%dT%H%M%S%.3fZ"));
        let path = dir.join(&name);
        report.report_file = Some(path.clone());
        let werr = |e: io::Error| SalvageError::Io {
            step: "write",
            path: path.clone(),
            source: e,
            changed: true,
        };
        let mut f = create_private_file(dfd.as_fd(), &name, &path)?;
        let text = serde_json::to_vec_pretty(&report).map_err(|e| werr(e.into()))?;
        f.write_all(&text).map_err(werr)?;
        f.sync_all().map_err(werr)?;
    }
    Ok(report)
}

fn import_database(
    sdb: &SalvagedDatabase,
    spec: &ConnSpec,
    files: &mut BTreeMap<String, File>,
    dir: &Path,
    dry_run: bool,
) -> Result<ImportedDatabase, SalvageError> {
    let database = spec.dbname.clone();
    let after = "The transaction was rolled back: nothing was imported";
    let mut client: Client = spec.connect()?;
    let mut tx = client.transaction().map_err(db_err(
        &database,
        "starting the transaction",
        after,
        false,
    ))?;
    tx.batch_execute(SESSION)
        .map_err(db_err(&database, "setting the session", after, false))?;
    // The restored tables, by the names the salvage has.
    let mut oids = Vec::new();
    let mut out_tables: Vec<Option<ImportedTable>> = Vec::new();
    for t in &sdb.tables {
        let oid: Option<u32> = tx
            .query_opt(
                "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')",
                &[&t.schema, &t.name],
            )
            .map_err(db_err(
                &database,
                format!("finding table {}", t.table),
                after,
                false,
            ))?
            .map(|r| r.get(0));
        match oid {
            Some(o) => {
                oids.push(o);
                out_tables.push(None);
            }
            None => {
                oids.push(0);
                out_tables.push(Some(ImportedTable {
                    table: t.table.clone(),
                    file: t.file.clone().unwrap_or_default(),
                    rows: t.rows,
                    imported: 0,
                    skipped: Vec::new(),
                    skipped_unlisted: t.rows,
                    dropped_columns: Vec::new(),
                    sequences: Vec::new(),
                    error: Some(
                        "the restored database has no such table (the failed upgrade added it)"
                            .into(),
                    ),
                }))
            }
        }
    }
    let mut parents: BTreeMap<u32, BTreeSet<u32>> = BTreeMap::new();
    for r in tx
        .query(
            "SELECT conrelid, confrelid FROM pg_constraint WHERE contype = 'f' AND conrelid = ANY($1)",
            &[&oids],
        )
        .map_err(db_err(&database, "reading the foreign keys", after, false))?
    {
        parents
            .entry(r.get::<_, u32>(0))
            .or_default()
            .insert(r.get(1));
    }
    for (n, i) in parents_first(&oids, &parents).into_iter().enumerate() {
        if out_tables[i].is_some() {
            continue;
        }
        let t = &sdb.tables[i];
        let file_name = t.file.clone().unwrap_or_default();
        let file = files.get_mut(&file_name).expect("checked by read_salvage");
        let mut sp =
            tx.transaction()
                .map_err(db_err(&database, "opening a savepoint", after, false))?;
        let res = import_table(&mut sp, t, oids[i], n, file, &dir.join(&file_name));
        let it = match res {
            Ok(it) => {
                sp.commit()
                    .map_err(db_err(&database, "releasing a savepoint", after, false))?;
                it
            }
            Err(e) => {
                sp.rollback().map_err(db_err(
                    &database,
                    "rolling back a savepoint",
                    after,
                    false,
                ))?;
                ImportedTable {
                    table: t.table.clone(),
                    file: file_name.clone(),
                    rows: t.rows,
                    imported: 0,
                    skipped: Vec::new(),
                    skipped_unlisted: t.rows,
                    dropped_columns: Vec::new(),
                    sequences: Vec::new(),
                    error: Some(e),
                }
            }
        };
        out_tables[i] = Some(it);
    }
    if dry_run {
        tx.rollback()
            .map_err(db_err(&database, "rolling back the dry run", after, false))?;
    } else {
        tx.commit()
            .map_err(db_err(&database, "committing the import", after, false))?;
    }
    Ok(ImportedDatabase {
        connection: sdb.connection.clone(),
        database,
        tables: out_tables.into_iter().flatten().collect(),
    })
}

/// Import one table (inside a savepoint); an error is the table's, in words.
fn import_table(
    tx: &mut Transaction<'_>,
    t: &SalvagedTable,
    oid: u32,
    n: usize,
    file: &mut File,
    path: &Path,
) -> Result<ImportedTable, String> {
    let pg =
        |what: &'static str| move |e: postgres::Error| format!("{what}: {}", describe_pg_error(&e));
    let target = target(tx, oid).map_err(pg("reading the restored table"))?;
    debug_assert_eq!(target.oid, oid);
    let have: BTreeMap<&str, bool> = target
        .columns
        .iter()
        .map(|(c, g)| (c.as_str(), *g))
        .collect();
    let file_cols: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
    let common: Vec<&str> = file_cols
        .iter()
        .copied()
        .filter(|c| have.get(c) == Some(&false))
        .collect();
    let dropped: Vec<String> = file_cols
        .iter()
        .filter(|c| !have.contains_key(*c))
        .map(|c| c.to_string())
        .collect();
    let stage = quote_ident(&format!("rewind_salvage_{n}"));
    tx.batch_execute(&format!(
        "CREATE TEMP TABLE {stage} (LIKE {} INCLUDING DEFAULTS) ON COMMIT DROP",
        target.from
    ))
    .map_err(pg("creating the staging table"))?;
    let mut alter = Vec::new();
    for c in &dropped {
        alter.push(format!("ADD COLUMN {} text", quote_ident(c)));
    }
    // Columns the file does not fill stay empty in the staging table (the restored table's
    // defaults apply on insert).
    for (c, _) in &target.columns {
        if !file_cols.contains(&c.as_str()) {
            alter.push(format!("ALTER COLUMN {} DROP NOT NULL", quote_ident(c)));
        }
    }
    if !alter.is_empty() {
        tx.batch_execute(&format!("ALTER TABLE {stage} {}", alter.join(", ")))
            .map_err(pg("preparing the staging table"))?;
    }
    let list: Vec<String> = file_cols.iter().map(|c| quote_ident(c)).collect();
    let mut w = tx
        .copy_in(&format!(
            "COPY {stage} ({}) FROM STDIN WITH (FORMAT csv, HEADER true)",
            list.join(", ")
        ))
        .map_err(pg("copying the file in"))?;
    io::copy(file, &mut w).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let staged = w.finish().map_err(pg("copying the file in"))?;
    tx.batch_execute(&format!(
        "ALTER TABLE {stage} ADD COLUMN {ROW} bigint GENERATED ALWAYS AS IDENTITY,
                             ADD COLUMN {DONE} boolean NOT NULL DEFAULT false"
    ))
    .map_err(pg("numbering the staged rows"))?;

    let q = |c: &str| quote_ident(c);
    let in_common = |cols: &[String]| cols.iter().all(|c| common.contains(&c.as_str()));
    // A row's parents exist: per foreign key whose columns the file has, a null column
    // (MATCH SIMPLE) or the parent row.
    let fk_conds: Vec<String> = target
        .fks
        .iter()
        .filter(|f| in_common(&f.columns))
        .map(|f| {
            let nulls: Vec<String> = f
                .columns
                .iter()
                .map(|c| format!("s.{} IS NULL", q(c)))
                .collect();
            let eq: Vec<String> = f
                .columns
                .iter()
                .zip(&f.parent_columns)
                .map(|(c, p)| format!("p.{} = s.{}", q(p), q(c)))
                .collect();
            format!(
                "({} OR EXISTS (SELECT 1 FROM {} p WHERE {}))",
                nulls.join(" OR "),
                f.parent_sql,
                eq.join(" AND ")
            )
        })
        .collect();
    let fk_used: Vec<&Fk> = target
        .fks
        .iter()
        .filter(|f| in_common(&f.columns))
        .collect();
    let self_ref = fk_used.iter().any(|f| f.parent_oid == oid);
    let key: Vec<String> = if !target.primary.is_empty() && in_common(&target.primary) {
        target.primary.clone()
    } else {
        Vec::new()
    };
    let cols_sql: Vec<String> = common.iter().map(|c| q(c)).collect();
    let sel_sql: Vec<String> = common.iter().map(|c| format!("s.{}", q(c))).collect();
    let mut wher = vec![format!("NOT s.{DONE}")];
    wher.extend(fk_conds.iter().cloned());
    let insert = format!(
        "INSERT INTO {} ({}) OVERRIDING SYSTEM VALUE SELECT {} FROM {stage} s WHERE {} ON CONFLICT DO NOTHING",
        target.from,
        cols_sql.join(", "),
        sel_sql.join(", "),
        wher.join(" AND ")
    );
    let mut imported = 0u64;
    if key.is_empty() {
        imported = tx.execute(&insert, &[]).map_err(pg("inserting the rows"))?;
    } else {
        let ret: Vec<String> = key.iter().map(|c| q(c)).collect();
        let on: Vec<String> = key
            .iter()
            .map(|c| format!("s.{} = ins.{}", q(c), q(c)))
            .collect();
        let sql = format!(
            "WITH ins AS ({insert} RETURNING {}) UPDATE {stage} s SET {DONE} = true FROM ins WHERE {} AND NOT s.{DONE}",
            ret.join(", "),
            on.join(" AND ")
        );
        for _ in 0..MAX_PASSES {
            let n = tx.execute(&sql, &[]).map_err(pg("inserting the rows"))?;
            imported += n;
            if n == 0 || !self_ref {
                break;
            }
        }
    }
    // What did not come back, and why.
    let mut skipped = Vec::new();
    let mut skipped_unlisted = 0;
    if key.is_empty() {
        skipped_unlisted = staged.saturating_sub(imported);
    } else {
        let key_text: Vec<String> = key
            .iter()
            .map(|c| {
                format!(
                    "'{}=' || COALESCE(s.{}::text, 'NULL')",
                    c.replace('\'', "''"),
                    q(c)
                )
            })
            .collect();
        let mut sel = vec![format!("concat_ws(', ', {})", key_text.join(", "))];
        for (f, cond) in fk_used.iter().zip(&fk_conds) {
            let vals: Vec<String> = f
                .columns
                .iter()
                .map(|c| format!("s.{}::text", q(c)))
                .collect();
            sel.push(cond.clone());
            sel.push(format!("concat_ws(', ', {})", vals.join(", ")));
        }
        let uniq: Vec<&(String, Vec<String>)> =
            target.uniques.iter().filter(|u| in_common(&u.1)).collect();
        for (_, cols) in &uniq {
            let eq: Vec<String> = cols
                .iter()
                .map(|c| format!("t.{} = s.{}", q(c), q(c)))
                .collect();
            sel.push(format!(
                "EXISTS (SELECT 1 FROM {} t WHERE {})",
                target.from,
                eq.join(" AND ")
            ));
        }
        let sql = format!(
            "SELECT {} FROM {stage} s WHERE NOT s.{DONE} ORDER BY s.{ROW}",
            sel.join(", ")
        );
        for r in tx
            .query(&sql, &[])
            .map_err(pg("listing the rows not imported"))?
        {
            let k: String = r.get(0);
            let mut reason = None;
            for (j, f) in fk_used.iter().enumerate() {
                let ok: bool = r.get(1 + 2 * j);
                if !ok {
                    let vals: String = r.get(2 + 2 * j);
                    reason = Some(SkippedRow {
                        key: k.clone(),
                        same_id: false,
                        reason: SkipReason::Orphan,
                        detail: format!(
                            "no {} row with ({}) = ({vals})",
                            f.parent_shown,
                            f.parent_columns.join(", ")
                        ),
                    });
                    break;
                }
            }
            if reason.is_none() {
                let base = 1 + 2 * fk_used.len();
                let hit = uniq
                    .iter()
                    .enumerate()
                    .find(|(j, _)| r.get::<_, bool>(base + j));
                let same_id = hit.is_some_and(|(_, (_, cols))| *cols == key);
                let on = hit
                    .map(|(_, (name, cols))| {
                        format!("{name} ({}) is already taken", cols.join(", "))
                    })
                    .unwrap_or_else(|| {
                        "a unique key is already taken (or the row is in the file twice)".into()
                    });
                reason = Some(SkippedRow {
                    key: k,
                    same_id,
                    reason: SkipReason::Conflict,
                    detail: on,
                });
            }
            skipped.extend(reason);
        }
    }
    // Sequences past the imported ids.
    let mut sequences = Vec::new();
    if imported > 0 {
        for c in &common {
            let seq: Option<String> = tx
                .query_one("SELECT pg_get_serial_sequence($1, $2)", &[&target.from, c])
                .map_err(pg("finding the sequences"))?
                .get(0);
            let Some(seq) = seq else { continue };
            let r = tx
                .query_opt(
                    &format!(
                        "SELECT $1::text, setval($1::regclass, GREATEST(m.mx, COALESCE(pg_sequence_last_value($1::regclass), 0)))
                           FROM (SELECT max({})::bigint AS mx FROM {}) m
                          WHERE m.mx IS NOT NULL",
                        q(c),
                        target.from
                    ),
                    &[&seq],
                )
                .map_err(pg("moving the sequences"))?;
            if let Some(r) = r {
                let seq: String = r.get(0);
                let v: i64 = r.get(1);
                sequences.push(format!("{seq} -> {v}"));
            }
        }
    }
    tx.batch_execute(&format!("DROP TABLE {stage}"))
        .map_err(pg("dropping the staging table"))?;
    Ok(ImportedTable {
        table: t.table.clone(),
        file: t.file.clone().unwrap_or_default(),
        rows: staged,
        imported,
        skipped,
        skipped_unlisted,
        dropped_columns: dropped,
        sequences,
        error: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg::cluster::TempCluster;
    use crate::restore::loss::TableLoss;
    use chrono::TimeZone;
    use std::os::unix::fs::PermissionsExt;

    /// The backup was made at 12:00 UTC.
    fn backup_time() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 6, 1, 12, 0, 0).unwrap()
    }

    /// The backup's schema, and the rows it holds.
    const BACKUP: &str = "
        CREATE TABLE users (id bigserial PRIMARY KEY, username text NOT NULL,
            created_at timestamptz NOT NULL);
        CREATE UNIQUE INDEX index_users_on_username ON users (username);
        CREATE TABLE namespaces (id integer GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            parent_id integer REFERENCES namespaces(id), owner_id bigint REFERENCES users(id),
            path text NOT NULL, created_at timestamptz NOT NULL);
        CREATE TABLE projects (id bigserial PRIMARY KEY,
            namespace_id integer NOT NULL REFERENCES namespaces(id),
            name text NOT NULL, data bytea, created_at timestamptz NOT NULL);
        CREATE TABLE issues (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            project_id bigint NOT NULL REFERENCES projects(id), title text,
            created_at timestamp NOT NULL);
        INSERT INTO users (id, username, created_at) VALUES
            (1, 'root', '2024-01-01 00:00+00'), (2, 'alice', '2024-01-02 00:00+00');
        SELECT setval('users_id_seq', 2);
        INSERT INTO namespaces (id, path, owner_id, created_at) VALUES (1, 'group', 1, '2024-01-01 00:00+00');
        SELECT setval(pg_get_serial_sequence('namespaces', 'id'), 1);
        INSERT INTO projects (id, namespace_id, name, created_at) VALUES (1, 1, 'one', '2024-01-01 00:00+00');
        SELECT setval('projects_id_seq', 1);
        INSERT INTO issues (id, project_id, title, created_at) OVERRIDING SYSTEM VALUE VALUES
            (1, 1, 'old', '2024-05-01 00:00');
        SELECT setval(pg_get_serial_sequence('issues', 'id'), 1);";

    /// After the backup, and the failed upgrade (a new column).
    const SINCE: &str = "
        INSERT INTO users (id, username, created_at) VALUES
            (3, 'bob', '2024-06-01 12:30+00'),
            (4, 'carol', '2024-06-01 07:30-05');              -- 12:30 UTC
        INSERT INTO namespaces (id, parent_id, owner_id, path, created_at) VALUES
            (2, 1, 3, 'group/sub', '2024-06-02 00:00+00'),
            (3, 2, 3, 'group/sub/deeper', '2024-06-01 13:00+00'),
            (4, NULL, 3, 'bobs', '2024-06-01 12:00:01+00'),
            (5, NULL, 4, 'carols', '2024-06-01 12:00:01+00');
        INSERT INTO projects (id, namespace_id, name, data, created_at) VALUES
            (2, 2, E'two, \"quoted\"\nlines', '\\x00ff', '2024-06-02 00:00+00'),
            (3, 4, 'three', NULL, '2024-06-02 00:00+00'),
            (4, 5, E'four, \"quoted\"\nlines', '\\x00ff', '2024-06-02 00:00+00');
        INSERT INTO issues (id, project_id, title, created_at) OVERRIDING SYSTEM VALUE VALUES
            (2, 2, 'new', '2024-06-01 12:00:01'),
            (3, 1, 'on an old project', '2024-06-03 00:00'),
            (4, 3, NULL, '2024-06-03 00:00'),
            (5, 1, 'before', '2024-06-01 11:59:59'),
            (6, 4, 'on carol''s project', '2024-06-04 00:00');
        ALTER TABLE projects ADD COLUMN duo_features_enabled boolean DEFAULT true NOT NULL;";

    fn report() -> LossReport {
        let t = |name: &str, n: u64| TableLoss {
            table: name.into(),
            created: Some(n),
            updated: Some(0),
            estimate: false,
            notes: vec![],
        };
        LossReport {
            backup_created_at: backup_time(),
            tables: vec![
                t("users", 2),
                t("projects", 2),
                t("namespaces", 3),
                t("issues", 3),
                t("routes", 0),
            ],
            tables_checked: 5,
            new_tables: vec![],
            pushed_projects: Some(0),
            pushed_project_paths: vec![],
            notes: vec![],
        }
    }

    #[test]
    fn rows_created_since_the_backup_come_back_after_the_restore() {
        let c = TempCluster::start().unwrap();
        c.create_database("live").unwrap();
        c.create_database("restored").unwrap();
        let mut live = c.connect_app("live").unwrap();
        live.batch_execute(BACKUP).unwrap();
        live.batch_execute(SINCE).unwrap();
        // The session's zone must not matter.
        live.batch_execute("ALTER DATABASE live SET TimeZone = 'America/New_York'")
            .unwrap();
        let spec = c.conn_spec("live");
        let backup_dir = tempfile::tempdir().unwrap();
        let journal = Journal::open_in(&Journal::dir_for(backup_dir.path())).unwrap();
        let rep = report();
        let dbs = [ExportDatabase {
            connection: "main".into(),
            spec: &spec,
            report: &rep,
        }];

        // Dry run: counts, writes nothing.
        let dry = export(
            backup_dir.path(),
            "1717243200_2024_06_01_16.10.3-ee",
            backup_time(),
            &dbs,
            true,
            Some(&journal),
        )
        .unwrap();
        assert!(dry.dir.is_none());
        assert_eq!(dry.manifest.rows(), 13);
        let names = |p: &Path| {
            let mut v: Vec<String> = std::fs::read_dir(p)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };
        assert_eq!(
            names(&Journal::dir_for(backup_dir.path())),
            vec!["journal.jsonl"]
        );

        let out = export(
            backup_dir.path(),
            "1717243200_2024_06_01_16.10.3-ee",
            backup_time(),
            &dbs,
            false,
            Some(&journal),
        )
        .unwrap();
        let dir = out.dir.clone().unwrap();
        assert!(dir.starts_with(Journal::dir_for(backup_dir.path())));
        assert!(dir
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("salvage-1717243200_2024_06_01_16.10.3-ee-"));
        assert_eq!(
            std::fs::metadata(&dir).unwrap().permissions().mode() & 0o7777,
            0o700
        );
        let m = &out.manifest;
        let per: Vec<(&str, u64)> = m.databases[0]
            .tables
            .iter()
            .map(|t| (t.table.as_str(), t.rows))
            .collect();
        assert_eq!(
            per,
            vec![
                ("users", 2),
                ("projects", 3),
                ("namespaces", 4),
                ("issues", 4)
            ]
        );
        for t in &m.databases[0].tables {
            let p = dir.join(t.file.as_ref().unwrap());
            assert_eq!(
                std::fs::metadata(&p).unwrap().permissions().mode() & 0o7777,
                0o600
            );
            let bytes = std::fs::read(&p).unwrap();
            assert_eq!(
                t.sha256.as_deref(),
                Some(hex(&Sha256::digest(&bytes)).as_str())
            );
        }
        let projects = &m.databases[0].tables[1];
        assert_eq!(
            projects.columns.last().unwrap(),
            &Column {
                name: "duo_features_enabled".into(),
                type_name: "boolean".into()
            }
        );
        let csv = std::fs::read_to_string(dir.join(projects.file.as_ref().unwrap())).unwrap();
        assert!(
            csv.starts_with("id,namespace_id,name,data,created_at,duo_features_enabled\n"),
            "{csv}"
        );
        assert!(csv.contains("2024-06-02 00:00:00+00"), "{csv}");
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join(MANIFEST)).unwrap()).unwrap();
        assert_eq!(manifest["backup_created_at"], "2024-06-01T12:00:00Z");
        assert_eq!(
            manifest["databases"][0]["tables"][0]["columns"][1]["type"],
            "text"
        );

        // The restore: the backup's schema and rows; a user `bob` made again by hand
        // (conflicts on username, another id) and namespace 4 gone with its project.
        let mut restored = c.connect_app("restored").unwrap();
        restored.batch_execute(BACKUP).unwrap();
        restored
            .batch_execute("INSERT INTO users (id, username, created_at) VALUES (10, 'bob', now()); SELECT setval('users_id_seq', 10);")
            .unwrap();
        let rspec = c.conn_spec("restored");
        let idbs = [ImportDatabase {
            connection: "main".into(),
            spec: &rspec,
        }];
        let count = |cl: &mut Client, t: &str| -> i64 {
            cl.query_one(&format!("SELECT count(*) FROM {t}"), &[])
                .unwrap()
                .get(0)
        };

        let dry = import(&dir, &idbs, true, Some(&journal)).unwrap();
        assert!(dry.report_file.is_none());
        assert_eq!(count(&mut restored, "issues"), 1);
        let r = import(&dir, &idbs, false, Some(&journal)).unwrap();
        assert_eq!(
            (dry.imported(), dry.not_back()),
            (r.imported(), r.not_back())
        );
        let tables: BTreeMap<&str, &ImportedTable> = r.databases[0]
            .tables
            .iter()
            .map(|t| (t.table.as_str(), t))
            .collect();
        // Parents first.
        let order: Vec<&str> = r.databases[0]
            .tables
            .iter()
            .map(|t| t.table.as_str())
            .collect();
        assert_eq!(
            order,
            vec!["users", "projects", "namespaces", "issues"],
            "report order is the manifest's"
        );
        let users = tables["users"];
        assert_eq!(users.imported, 1);
        assert_eq!(
            users.skipped,
            vec![SkippedRow {
                key: "id=3".into(),
                same_id: false,
                reason: SkipReason::Conflict,
                detail: "index_users_on_username (username) is already taken".into()
            }]
        );
        // Namespace 2 and 4 are owned by bob (id 3, not back): orphans; 3 under 2 too.
        let ns = tables["namespaces"];
        assert_eq!(ns.imported, 1);
        let keys: Vec<(&str, SkipReason)> = ns
            .skipped
            .iter()
            .map(|s| (s.key.as_str(), s.reason))
            .collect();
        assert_eq!(
            keys,
            vec![
                ("id=2", SkipReason::Orphan),
                ("id=3", SkipReason::Orphan),
                ("id=4", SkipReason::Orphan)
            ]
        );
        assert!(
            ns.skipped[0]
                .detail
                .contains("no users row with (id) = (3)"),
            "{:?}",
            ns.skipped
        );
        let issues = tables["issues"];
        // Only because namespaces came before projects, and projects before issues.
        assert_eq!(issues.imported, 2);
        assert_eq!(issues.skipped.len(), 2);
        assert_eq!(
            tables["projects"].dropped_columns,
            vec!["duo_features_enabled"]
        );
        assert_eq!(tables["projects"].imported, 1);
        assert_eq!(r.imported(), 5);
        assert_eq!(r.not_back(), 8);
        let (name, data): (String, Vec<u8>) = restored
            .query_one("SELECT name, data FROM projects WHERE id = 4", &[])
            .map(|r| (r.get(0), r.get(1)))
            .unwrap();
        assert_eq!(
            (name.as_str(), data),
            ("four, \"quoted\"\nlines", vec![0u8, 0xff])
        );
        let row: (String, String) = restored
            .query_one(
                "SELECT title, created_at::text FROM issues WHERE id = 3",
                &[],
            )
            .map(|r| (r.get(0), r.get(1)))
            .unwrap();
        assert_eq!(
            row,
            ("on an old project".into(), "2024-06-03 00:00:00".into())
        );
        assert_eq!(
            restored
                .query_one("SELECT username FROM users WHERE id = 4", &[])
                .unwrap()
                .get::<_, String>(0),
            "carol"
        );
        // Sequences past the ids: the next issue is 7, the next user 11 (already past 4).
        let next: i64 = restored
            .query_one(
                "SELECT nextval(pg_get_serial_sequence('issues', 'id'))",
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!(next, 7);
        let next: i64 = restored
            .query_one("SELECT nextval('users_id_seq')", &[])
            .unwrap()
            .get(0);
        assert_eq!(next, 11);
        let report_file = r.report_file.clone().unwrap();
        assert_eq!(
            std::fs::metadata(&report_file)
                .unwrap()
                .permissions()
                .mode()
                & 0o7777,
            0o600
        );
        let rep: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&report_file).unwrap()).unwrap();
        assert_eq!(
            rep["databases"][0]["tables"][0]["skipped"][0]["key"],
            "id=3"
        );
        let j = std::fs::read_to_string(journal.path()).unwrap();
        assert!(
            j.contains("\"salvage.export\"") && j.contains("\"salvage.import\""),
            "{j}"
        );
    }

    #[test]
    fn a_child_whose_parent_is_in_the_same_file_comes_back() {
        let c = TempCluster::start().unwrap();
        c.create_database("live").unwrap();
        c.create_database("restored").unwrap();
        let mut live = c.connect_app("live").unwrap();
        live.batch_execute(BACKUP).unwrap();
        // Children before their parents in the file.
        live.batch_execute(
            "INSERT INTO namespaces (id, parent_id, path, created_at) VALUES
                 (9, NULL, 'top', '2024-06-05 00:00+00');
             INSERT INTO namespaces (id, parent_id, path, created_at) VALUES
                 (7, 8, 'a/b/c', '2024-06-03 00:00+00'), (8, 9, 'a/b', '2024-06-04 00:00+00');
             UPDATE namespaces SET path = path WHERE id = 9;",
        )
        .unwrap();
        let spec = c.conn_spec("live");
        let backup_dir = tempfile::tempdir().unwrap();
        let rep = report();
        let dbs = [ExportDatabase {
            connection: "main".into(),
            spec: &spec,
            report: &rep,
        }];
        let out = export(backup_dir.path(), "b", backup_time(), &dbs, false, None).unwrap();
        let dir = out.dir.unwrap();
        c.connect_app("restored")
            .unwrap()
            .batch_execute(BACKUP)
            .unwrap();
        let rspec = c.conn_spec("restored");
        let idbs = [ImportDatabase {
            connection: "main".into(),
            spec: &rspec,
        }];
        let r = import(&dir, &idbs, false, None).unwrap();
        assert_eq!((r.imported(), r.not_back()), (3, 0), "{r:#?}");
        let next: i32 = c
            .connect_app("restored")
            .unwrap()
            .query_one(
                "SELECT nextval(pg_get_serial_sequence('namespaces', 'id'))::int",
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!(next, 10);
    }

    #[test]
    fn a_tampered_salvage_directory_is_refused_before_the_database_is_touched() {
        let c = TempCluster::start().unwrap();
        c.create_database("live").unwrap();
        let mut live = c.connect_app("live").unwrap();
        live.batch_execute(BACKUP).unwrap();
        live.batch_execute(SINCE).unwrap();
        let spec = c.conn_spec("live");
        let backup_dir = tempfile::tempdir().unwrap();
        let rep = report();
        let dbs = [ExportDatabase {
            connection: "main".into(),
            spec: &spec,
            report: &rep,
        }];
        let out = export(backup_dir.path(), "b", backup_time(), &dbs, false, None).unwrap();
        let dir = out.dir.unwrap();
        let file = dir.join(out.manifest.databases[0].tables[0].file.as_ref().unwrap());
        let idbs = [ImportDatabase {
            connection: "main".into(),
            spec: &spec,
        }];
        let before: i64 = live
            .query_one("SELECT count(*) FROM users", &[])
            .unwrap()
            .get(0);

        // A changed file.
        let orig = std::fs::read(&file).unwrap();
        std::fs::write(
            &file,
            b"id,username,created_at\n99,mallory,2024-06-02 00:00:00+00\n",
        )
        .unwrap();
        let e = import(&dir, &idbs, false, None).unwrap_err();
        assert!(matches!(e, SalvageError::Checksum { .. }), "{e}");
        assert!(e.to_string().contains(&file.display().to_string()), "{e}");
        std::fs::write(&file, &orig).unwrap();
        // Readable by others.
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = import(&dir, &idbs, false, None).unwrap_err().to_string();
        assert!(e.contains("0644"), "{e}");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        // A link in its place.
        let aside = backup_dir.path().join("aside.csv");
        std::fs::rename(&file, &aside).unwrap();
        std::os::unix::fs::symlink(&aside, &file).unwrap();
        let e = import(&dir, &idbs, false, None).unwrap_err().to_string();
        assert!(
            e.contains("symbolic link") && e.contains(&file.display().to_string()),
            "{e}"
        );
        std::fs::remove_file(&file).unwrap();
        // A hard link.
        std::fs::hard_link(&aside, &file).unwrap();
        let e = import(&dir, &idbs, false, None).unwrap_err().to_string();
        assert!(e.contains("hard links"), "{e}");
        // The directory itself a link.
        let link = backup_dir.path().join("link");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        let e = import(&link, &idbs, false, None).unwrap_err().to_string();
        assert!(e.contains("symbolic link"), "{e}");
        let after: i64 = live
            .query_one("SELECT count(*) FROM users", &[])
            .unwrap()
            .get(0);
        assert_eq!(before, after);
    }
}
