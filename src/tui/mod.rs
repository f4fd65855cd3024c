//! The wizard: a state machine TUI that walks the on-call engineer through the recovery.
//!
//! - [`state`]: plain data; [`update::update`] is the pure transition function
//!   `(&mut State, Event) -> Vec<Command>`; [`view::view`] draws a state.
//! - [`runtime`]: the tokio loop (terminal events, tick, signals, engine messages);
//!   [`exec`]: runs commands by calling the engine on worker threads.
//! - [`screens`]: one module per step's body.

pub mod catalogue;
pub mod detail;
pub mod event;
pub mod exec;
pub mod overview;
pub mod runtime;
pub mod screens;
pub mod source;
pub mod state;
pub mod summary;
pub mod update;
pub mod view;

#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(test)]
mod snapshot_tests;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use rewind_engine::root::HostRoot;

/// How the wizard starts. `rewind` (no subcommand) and `rewind drill` both use it.
#[derive(Debug, Clone)]
pub struct WizardOptions {
    /// The host root (`/`, or a sandbox tree for the drill).
    pub root: HostRoot,
    /// Backup directory (host path) instead of the configured one.
    pub backup_dir: Option<PathBuf>,
    /// Database to restore into instead of database.yml's.
    pub database_url: Option<String>,
    /// A banner on every screen (e.g. "DRILL: sandbox, nothing on this host is touched").
    pub banner: Option<String>,
    /// Draw colours (false with NO_COLOR or --no-color).
    pub color: bool,
    /// Print the time to the first screen on stderr after exit.
    pub debug: bool,
    /// Print what the run did and what to do next once the terminal is restored (the
    /// drill prints its own report instead).
    pub summary: bool,
    /// Restore in place (GitLab's way: snapshot, drop, load) even where beside-and-swap
    /// can run.
    pub in_place: bool,
    /// Who creates and renames databases for beside-and-swap (`OSUSER[:ROLE]`; default:
    /// Omnibus's `gitlab-psql`).
    pub db_admin: Option<String>,
}

impl WizardOptions {
    /// Options for a root, with colour following `NO_COLOR`.
    pub fn new(root: HostRoot) -> Self {
        WizardOptions {
            root,
            backup_dir: None,
            database_url: None,
            banner: None,
            color: std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
            debug: false,
            summary: true,
            in_place: false,
            db_admin: None,
        }
    }
}

/// Run the wizard on this terminal until the user leaves it.
pub fn run_wizard(opts: WizardOptions) -> color_eyre::Result<ExitCode> {
    let started = Instant::now();
    let debug = opts.debug || std::env::var_os("REWIND_DEBUG").is_some();
    let opts_summary = opts.summary;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = rt.block_on(runtime::run(opts, started));
    runtime::restore_terminal();
    // Workers blocked in the engine are not waited for past the runtime's grace period.
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    let stats = result?;
    if opts_summary {
        for line in &stats.summary {
            println!("{line}");
        }
    }
    if debug {
        eprintln!(
            "rewind: first screen drawn {} ms after start",
            stats.first_draw.as_millis()
        );
    }
    Ok(ExitCode::SUCCESS)
}
