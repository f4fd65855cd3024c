//! One module per subcommand. Each has its clap `Args` and a `run` that calls the engine.

pub mod backups;
pub mod check_leftovers;
pub mod cleanup;
pub mod config;
pub mod detect;
pub mod drill;
pub mod drill_backup;
pub mod drill_wizard;
pub mod inspect;
pub mod mark_migration;
pub mod plan;
pub mod repair;
pub mod restore;
pub mod rollback;
pub mod salvage;
pub mod sandbox;
pub mod services;
pub mod triage;
pub mod undo;
pub mod wizard;

use std::process::ExitCode;

use rewind_engine::progress::Cancel;
use rewind_engine::root::HostRoot;

use crate::cli::{Cli, Command, GlobalOpts};
use crate::output::Style;

/// What every command gets: the parsed global options and derived helpers.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub global: GlobalOpts,
    pub root: HostRoot,
    pub style: Style,
}

impl Ctx {
    pub fn new(global: GlobalOpts) -> Self {
        let style = Style {
            color: crate::output::color_enabled(&global),
        };
        let root = if global.root == std::path::Path::new("/") {
            HostRoot::system()
        } else {
            HostRoot::new(global.root.clone())
        };
        Ctx {
            global,
            root,
            style,
        }
    }

    pub fn json(&self) -> bool {
        self.global.json
    }

    /// The host lock every command that changes the host holds while it does (the
    /// restore's runner and the package step take it in the engine): one change at a time.
    pub fn host_lock(
        &self,
    ) -> Result<rewind_engine::recovery::lock::HostLock, rewind_engine::recovery::lock::LockError>
    {
        use rewind_engine::recovery::lock;
        lock::host(&self.root, &lock::invocation())
    }
}

/// Ctrl-C, SIGTERM and SIGHUP (the SSH session that ran Rewind went away) set `cancel`,
/// so a long command stops at its next safe point instead of dying mid-step. `message` is
/// printed once on stderr, if stderr is still there.
pub fn cancel_on_signals(cancel: &Cancel, message: Option<&'static str>) -> std::io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    let cancel = cancel.clone();
    std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            // First the flag: after a hang-up, writing to the terminal may fail.
            cancel.cancel();
            if let Some(m) = message {
                use std::io::Write;
                let _ = writeln!(std::io::stderr(), "{m}");
            }
        }
    });
    Ok(())
}

/// Run the command the user asked for.
pub fn dispatch(cli: Cli) -> color_eyre::Result<ExitCode> {
    let ctx = Ctx::new(cli.global);
    if cli.command.is_some() && (cli.wizard.in_place || cli.wizard.db_admin.is_some()) {
        eprintln!(
            "rewind: --in-place and --db-admin before the subcommand are the wizard's; give them after it (`rewind restore --in-place`)"
        );
        return Ok(crate::exit::code(crate::exit::USAGE));
    }
    match cli.command {
        Some(Command::Detect(args)) => detect::run(&ctx, args),
        Some(Command::Backups(args)) => backups::run(&ctx, args),
        Some(Command::Inspect(args)) => inspect::run(&ctx, args),
        Some(Command::MarkMigration(args)) => mark_migration::run(&ctx, args),
        Some(Command::Repair(args)) => repair::run(&ctx, args),
        Some(Command::Plan(args)) => plan::run(&ctx, args),
        Some(Command::Rollback(args)) => rollback::run(&ctx, args),
        Some(Command::Services(args)) => services::run(&ctx, args),
        Some(Command::Sandbox(args)) => sandbox::run(&ctx, args),
        Some(Command::Restore(args)) => restore::run(&ctx, args),
        Some(Command::CheckLeftovers(args)) => check_leftovers::run(&ctx, args),
        Some(Command::Triage(args)) => triage::run(&ctx, args),
        Some(Command::Salvage(args)) => salvage::run(&ctx, args),
        Some(Command::Drill(args)) => drill::run(&ctx, args),
        Some(Command::DrillMigrate) => drill::run_standin_migrate(&ctx),
        Some(Command::DrillGitalyBackup { args }) => drill::run_standin_gitaly_backup(&ctx, args),
        Some(Command::DrillRake { args }) => drill::run_standin_rake(&ctx, &args),
        Some(Command::Config(args)) => config::run(&ctx, args),
        Some(Command::Undo(args)) => undo::run(&ctx, args),
        Some(Command::Cleanup(args)) => cleanup::run(&ctx, args),
        None => wizard::run(&ctx, &cli.wizard),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sighup_cancels_like_sigterm() {
        let cancel = Cancel::new();
        cancel_on_signals(&cancel, None).unwrap();
        // Without the handler, SIGHUP would end this test process.
        signal_hook::low_level::raise(signal_hook::consts::SIGHUP).unwrap();
        let start = std::time::Instant::now();
        while !cancel.is_cancelled() {
            assert!(start.elapsed().as_secs() < 10, "SIGHUP did not cancel");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}
