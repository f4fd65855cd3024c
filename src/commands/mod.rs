//! One module per subcommand. Each has its clap `Args` and a `run` that calls the engine.

pub mod backups;
pub mod check_leftovers;
pub mod detect;
pub mod drill;
pub mod drill_wizard;
pub mod inspect;
pub mod mark_migration;
pub mod plan;
pub mod repair;
pub mod restore;
pub mod rollback;
pub mod sandbox;
pub mod services;
pub mod wizard;

use std::process::ExitCode;

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
}

/// Run the command the user asked for.
pub fn dispatch(cli: Cli) -> color_eyre::Result<ExitCode> {
    let ctx = Ctx::new(cli.global);
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
        Some(Command::Drill(args)) => drill::run(&ctx, args),
        Some(Command::DrillMigrate) => drill::run_standin_migrate(&ctx),
        None => wizard::run(&ctx),
    }
}
