//! `rewind drill`: a complete, disposable GitLab-like host on which the real recovery is
//! rehearsed, and a check that the recovery ended where it should.
//!
//! [`Sandbox::prepare`] builds, in a temp dir used as the host root: a throwaway
//! PostgreSQL cluster, an Omnibus-like tree whose `database.yml` points at it, a backup
//! made on 16.10.3 with the fixture builder, stand-in `gitlab-ee` packages installed with a
//! sandboxed dpkg, a `gitlab-ctl` stand-in, and then the scenario's failure (a failed
//! upgrade to 16.11.0, a truncated backup, ...). [`auto::run`] performs the recovery the
//! way a careful engineer would, through the same engine calls as the wizard and the CLI;
//! [`check::outcome`] compares the result with what the scenario expects. Nothing outside
//! the temp dir is touched, and everything is removed when the [`Sandbox`] is dropped
//! unless it was kept.

pub mod auto;
pub mod check;
pub mod prereq;
pub mod report;
pub mod scenario;
pub mod setup;
pub mod standin_migrate;
pub mod standin_rake;
pub mod standin_ready;

pub use report::DrillReport;
pub use scenario::Scenario;
pub use setup::Sandbox;

use crate::progress::Cancel;

/// Default data scale: the default drill builds and restores in well under a minute.
pub const DEFAULT_SCALE: u32 = 1;

/// How to run a drill.
#[derive(Debug, Clone)]
pub struct DrillOptions {
    pub scenario: Scenario,
    /// Rows per table grow linearly with this.
    pub scale: u32,
    /// Parallel restore connections.
    pub jobs: usize,
    /// Keep the sandbox (cluster running, files in place) and print where.
    pub keep: bool,
    /// Set by Ctrl-C/SIGTERM: the drill stops at the next step and cleans up.
    pub cancel: Cancel,
    /// Restore in place (snapshot, drop, load) instead of beside-and-swap.
    pub in_place: bool,
}

impl DrillOptions {
    pub fn new(scenario: Scenario) -> Self {
        DrillOptions {
            scenario,
            scale: DEFAULT_SCALE,
            jobs: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            keep: false,
            cancel: Cancel::new(),
            in_place: false,
        }
    }
}

/// Errors that stop a drill (a failed check is not an error: it is in the report).
#[derive(Debug, thiserror::Error)]
pub enum DrillError {
    #[error("{0}")]
    Prerequisites(String),
    #[error("drill setup: {step}: {detail}")]
    Setup { step: String, detail: String },
    #[error("drill interrupted at step `{0}`; the sandbox was removed")]
    Cancelled(String),
}

pub(crate) fn setup_err<E: std::fmt::Display>(step: &str) -> impl FnOnce(E) -> DrillError + '_ {
    move |e| DrillError::Setup {
        step: step.to_string(),
        detail: e.to_string(),
    }
}
