//! The recovery, defined once: its steps as data ([`steps`]), and the runner that performs
//! the restore part of it ([`restore`]) with the confirmations it was given, enforcing the
//! safety rules every front end gets:
//!
//! 1. No drop without a snapshot of that database taken in this recovery, unless the
//!    snapshot was declined (`--no-snapshot`); with a package rollback it is taken before the
//!    package step ([`snapshot::roll_back`]) and reused by the restore; every database's
//!    first pass and snapshot come before any database is dropped
//!    ([`crate::restore::database::RestoreRun`]).
//! 2. Before the first destructive step: the version gate (also when `db` is skipped), a
//!    decode of every member of the archive, `--skip` names checked against GitLab's
//!    component list, the file components' confirmation, and free disk for what the run
//!    extracts.
//! 3. One recovery at a time per host ([`lock::HostLock`], in a root-owned directory) and
//!    per database (a PostgreSQL advisory lock), naming the holder.
//! 4. Capacity: the loader's connections fit the server's free connections and the
//!    role's and database's connection limits ([`capacity`]); jobs are reduced and the
//!    user told, or the run is refused, before anything is dropped.
//! 5. What the loader would refuse is found by the dump's first, read-only pass (a
//!    `\connect` to another database, meta-commands, `COPY ... PROGRAM`, oversized
//!    statements).
//! 6. The journal records each step before and after it runs; events reach the front end
//!    after the journal.
//!
//! `rewind restore` and the drill's automatic mode call [`restore`]; `rewind plan` and
//! `rewind restore --dry-run` both print [`plan::plan`], built on [`steps::STEPS`].

pub mod capacity;
pub mod config;
mod journal_read;
pub mod lock;
pub mod plan;
pub mod postcheck;
pub mod restore_test;
mod runner;
pub mod snapshot;
pub mod steps;

pub use journal_read::last_verification;
pub use runner::{
    components_of, databases_for, facts_of, resolve_interrupted, restore, strategy, validate_skip,
    RecoveryError, RepositoriesOutcome, RepositoriesRequest, RestoreReport, RestoreRequest,
};
