//! `rewind` with no subcommand: the wizard on a terminal; on a non-terminal, the plan and a
//! hint about the CLI.

use std::io::IsTerminal;
use std::process::ExitCode;

use color_eyre::eyre::WrapErr;

use super::Ctx;
use crate::tui::exec::{detect_with, ExecOptions};
use crate::tui::{run_wizard, WizardOptions};

/// Start the wizard (TTY) or print the plan (non-TTY).
pub fn run(ctx: &Ctx) -> color_eyre::Result<ExitCode> {
    let tty = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    if !tty || ctx.json() {
        return print_plan(ctx);
    }
    let mut opts = WizardOptions::new(ctx.root.clone());
    opts.backup_dir = ctx.global.backup_dir.clone();
    opts.database_url = ctx.global.database_url.clone();
    opts.color = !ctx.global.no_color && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    if !ctx.root.is_system() {
        opts.banner = Some(format!(
            "SANDBOX ROOT {}: host paths are read and written under it",
            ctx.root.base().display()
        ));
    }
    run_wizard(opts)
}

/// What the wizard would do, for a non-terminal.
fn print_plan(ctx: &Ctx) -> color_eyre::Result<ExitCode> {
    let inst = detect_with(&ExecOptions {
        root: ctx.root.clone(),
        backup_dir: ctx.global.backup_dir.clone(),
        database_url: ctx.global.database_url.clone(),
    })
    .map_err(color_eyre::eyre::Report::msg)
    .wrap_err("detecting the GitLab installation")?;
    if ctx.json() {
        crate::output::print_json(&serde_json::json!({
            "installation": inst,
            "steps": STEPS.iter().map(|(s, _)| s).collect::<Vec<_>>(),
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    let s = ctx.style;
    println!("{}", s.bold("Rewind: recovery plan"));
    println!(
        "  installed: GitLab {} ({})",
        inst.version
            .as_ref()
            .map(|v| v.to_string())
            .unwrap_or_else(|| "unknown".into()),
        inst.kind
            .map(|k| format!("{k:?}").to_lowercase())
            .unwrap_or_else(|| "not found".into())
    );
    println!("  backups:   {}", inst.backup_path.display());
    if let Some(db) = inst.main_db() {
        println!("  database:  {} on {}", db.spec.dbname, db.spec.target());
    }
    println!();
    for (i, (_, what)) in STEPS.iter().enumerate() {
        println!("  {:>2}. {what}", i + 1);
    }
    println!();
    println!(
        "Not a terminal: the wizard needs one. Run `rewind` on a terminal, or use the CLI \
         (`rewind detect`, `rewind backups`, `rewind inspect <backup>`; `rewind --help` lists all)."
    );
    Ok(ExitCode::SUCCESS)
}

const STEPS: [(&str, &str); 10] = [
    (
        "select_backup",
        "pick the backup made on the version to roll back to",
    ),
    (
        "preflight",
        "check the archive end to end, free disk, database privileges, target version, writers",
    ),
    ("stop_services", "stop puma and sidekiq"),
    (
        "rollback_package",
        "install the backup's GitLab version (skipped when it is installed)",
    ),
    (
        "confirm_drop",
        "confirm the drop by typing the database name",
    ),
    (
        "safety_snapshot",
        "pg_dump -Fc of the database as it is now (0600)",
    ),
    (
        "restore",
        "drop every table, load the dump, restore the file components",
    ),
    (
        "verify",
        "schema_migrations, row counts, no leftover tables, version",
    ),
    ("start_services", "start GitLab"),
    (
        "done",
        "gitlab-rake gitlab:check SANITIZE=true; gitlab-rake gitlab:doctor:secrets",
    ),
];
