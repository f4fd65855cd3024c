//! `rewind` with no subcommand: the wizard on a terminal; on a non-terminal, the plan and a
//! hint about the CLI.

use std::io::IsTerminal;
use std::process::ExitCode;

use super::Ctx;
use crate::tui::{run_wizard, WizardOptions};

/// Start the wizard (TTY) or print the plan (non-TTY).
pub fn run(ctx: &Ctx, wizard: &crate::cli::WizardOpts) -> color_eyre::Result<ExitCode> {
    let tty = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    if !tty || ctx.json() {
        return print_plan(ctx);
    }
    let mut opts = WizardOptions::new(ctx.root.clone());
    opts.backup_dir = ctx.global.backup_dir.clone();
    opts.database_url = ctx.global.database_url.clone();
    opts.in_place = wizard.in_place;
    opts.db_admin = wizard.db_admin.clone();
    opts.color = !ctx.global.no_color && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    if !ctx.root.is_system() {
        opts.banner = Some(format!(
            "SANDBOX ROOT {}: host paths are read and written under it",
            ctx.root.base().display()
        ));
    }
    run_wizard(opts)
}

/// What the wizard would do, for a non-terminal: `rewind plan`, then a hint.
fn print_plan(ctx: &Ctx) -> color_eyre::Result<ExitCode> {
    let code = super::plan::run(
        ctx,
        super::plan::Args {
            backup: None,
            skip: Vec::new(),
            repositories_parallel: None,
            repositories_parallel_storage: None,
            in_place: false,
        },
    )?;
    if !ctx.json() {
        println!();
        println!(
            "Not a terminal: the wizard needs one. Run `rewind` on a terminal, or follow the plan \
             with the CLI (`rewind backups`, `rewind restore`, `rewind repair`; `rewind --help` lists all)."
        );
    }
    Ok(code)
}
