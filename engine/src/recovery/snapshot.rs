//! The safety snapshots of the in-place strategy, taken before the package step: once Puma
//! and Sidekiq are stopped nothing writes to the databases, and the older package's
//! `gitlab-ctl reconfigure` (which runs GitLab's migrations) has not touched them yet. The
//! restore later reuses these snapshots instead of taking others
//! ([`crate::restore::database::RestoreOptions::reuse_snapshots`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::RecoveryError;
use crate::journal::Journal;
use crate::packages::rollback::{self, PackagePlan, RollbackError, RollbackOutcome};
use crate::progress::{Cancel, Sink};
use crate::restore::database::DatabaseJob;
use crate::restore::snapshot::{
    free_bytes, take_snapshot, Snapshot, SnapshotError, SnapshotTarget,
};
use crate::root::HostRoot;

/// What the snapshot needs to know about a database's server.
fn server_facts(job: &DatabaseJob) -> Result<(u32, u64), SnapshotError> {
    let failed = |detail: String| SnapshotError::Server {
        database: job.spec.dbname.clone(),
        detail,
    };
    let mut client = job.spec.connect().map_err(|e| failed(e.to_string()))?;
    let row = client
        .query_one(
            "SELECT current_setting('server_version_num')::int4, \
             pg_database_size(current_database())::int8",
            &[],
        )
        .map_err(|e| failed(e.to_string()))?;
    let version: i32 = row.get(0);
    let size: i64 = row.get(1);
    Ok((version.max(0) as u32, size.max(0) as u64))
}

/// Take the safety snapshot of each database that has none in `taken` (main first). Stops
/// at the first failure: the snapshots already written stay (they are valid, journaled and
/// announced to the sink as [`crate::progress::Event::SnapshotWritten`]).
pub fn take_missing(
    root: &HostRoot,
    backup_path: &Path,
    databases: &[DatabaseJob],
    taken: &BTreeMap<String, PathBuf>,
    journal: &Journal,
    sink: &dyn Sink,
    cancel: &Cancel,
) -> Result<Vec<Snapshot>, SnapshotError> {
    let mut out = Vec::new();
    for job in databases {
        if taken.contains_key(&job.spec.dbname) {
            continue;
        }
        let (server_version_num, database_size) = server_facts(job)?;
        let snap = take_snapshot(
            root,
            backup_path,
            &SnapshotTarget {
                spec: &job.spec,
                server_version_num,
                database_size,
            },
            Some(journal),
            sink,
            cancel,
        )?;
        out.push(snap);
    }
    Ok(out)
}

/// Before anything is stopped or installed: every database that needs a snapshot answers,
/// and the backup directory's filesystem has room for all of them (`pg_database_size`).
/// Returns the bytes the snapshots will take at most.
pub fn precheck(
    backup_path: &Path,
    databases: &[DatabaseJob],
    taken: &BTreeMap<String, PathBuf>,
) -> Result<u64, RecoveryError> {
    let mut needed = 0u64;
    let mut names = Vec::new();
    for job in databases {
        if taken.contains_key(&job.spec.dbname) {
            continue;
        }
        let (_, size) = server_facts(job).map_err(|e| RecoveryError::SnapshotPrecheck {
            database: job.spec.dbname.clone(),
            detail: e.to_string(),
        })?;
        needed = needed.saturating_add(size);
        names.push(job.spec.dbname.clone());
    }
    if names.is_empty() {
        return Ok(0);
    }
    // The snapshot directory is made under the backup directory when the first is taken.
    let available = free_bytes(backup_path).map_err(|e| RecoveryError::SnapshotPrecheck {
        database: names.join(", "),
        detail: e.to_string(),
    })?;
    if available < needed {
        return Err(RecoveryError::SnapshotPrecheck {
            database: names.join(", "),
            detail: format!(
                "{} has {available} bytes free, the database(s) take {needed} bytes",
                backup_path.display()
            ),
        });
    }
    Ok(needed)
}

/// The package step of the in-place strategy, as every front end runs it: the safety
/// snapshots are checked for (every database answers, room for them) before anything is
/// stopped, then taken once Puma and Sidekiq are stopped and before the package is
/// installed ([`rollback::run`]'s `before_package`); declined snapshots are journaled.
pub struct PackageStep<'a> {
    pub root: &'a HostRoot,
    pub plan: &'a PackagePlan,
    /// The databases, main first ([`super::databases_for`]).
    pub databases: &'a [DatabaseJob],
    /// The installation's backup directory (the snapshots go under it).
    pub backup_path: &'a Path,
    /// Take the snapshot of each database without one in `taken`; false when the user
    /// declined it (`--no-snapshot`, the wizard's second warning) or when the restore will
    /// run beside the live database (which it keeps whole).
    pub snapshot: bool,
    /// Why there is no snapshot, for the journal (when `snapshot` is false).
    pub no_snapshot_because: &'a str,
    /// Snapshots this recovery already took, by database name.
    pub taken: &'a BTreeMap<String, PathBuf>,
}

/// Why the package step stopped.
#[derive(Debug, thiserror::Error)]
pub enum PackageStepError {
    /// Refused before anything was stopped or installed.
    #[error(transparent)]
    Refused(#[from] RecoveryError),
    #[error(transparent)]
    Rollback(#[from] RollbackError),
}

/// Run the package step: see [`PackageStep`]. Returns the rollback's outcome and the
/// snapshots taken now (those in `taken` are not taken again).
pub fn roll_back(
    step: &PackageStep<'_>,
    journal: &Journal,
    sink: &dyn Sink,
    cancel: &Cancel,
) -> Result<(RollbackOutcome, Vec<Snapshot>), PackageStepError> {
    // One change to the host at a time: not while a restore (or another package step) runs.
    let _lock =
        super::lock::host(step.root, &super::lock::invocation()).map_err(RecoveryError::from)?;
    if step.snapshot {
        precheck(step.backup_path, step.databases, step.taken)?;
    }
    let mut taken_now = Vec::new();
    let mut before_package = || {
        if !step.snapshot {
            journal.note(
                "rollback.snapshot",
                step.no_snapshot_because,
                serde_json::json!({}),
            )?;
            return Ok(());
        }
        taken_now = take_missing(
            step.root,
            step.backup_path,
            step.databases,
            step.taken,
            journal,
            sink,
            cancel,
        )?;
        Ok(())
    };
    let outcome = rollback::run(
        step.root,
        step.plan,
        sink,
        Some(journal),
        &mut before_package,
    )?;
    Ok((outcome, taken_now))
}
