//! `rewind rollback --to VERSION`: install the exact GitLab version of a backup.
//!
//! Shows the plan (each exact command), then runs it on confirmation or with `--yes`:
//! stop Puma and Sidekiq, install the package, `gitlab-ctl reconfigure`, detect again and
//! confirm the version. On a non-terminal without `--yes` it only prints the plan.

use std::process::ExitCode;

use rewind_engine::packages::rollback::{self, RollbackOptions, RollbackPlan};
use rewind_engine::version::GitLabVersion;

use super::services::{confirm, open_journal, CliSink};
use super::Ctx;
use crate::output::print_json;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The GitLab version to install (the backup's version), e.g. 16.10.3 or 16.10.3-ee.
    #[arg(long, value_name = "VERSION")]
    pub to: GitLabVersion,
    /// Print the plan only.
    #[arg(long)]
    pub dry_run: bool,
    /// Run without asking for confirmation.
    #[arg(long)]
    pub yes: bool,
    /// Allow installing the other edition (EE <-> CE).
    #[arg(long)]
    pub allow_edition_change: bool,
}

/// Print a rollback plan for people.
pub fn print_plan(ctx: &Ctx, plan: &RollbackPlan) {
    let s = ctx.style;
    match plan {
        RollbackPlan::AlreadyInstalled { version } => {
            println!("GitLab {version} is already installed: nothing to roll back.");
        }
        RollbackPlan::Package(p) => {
            println!(
                "{}",
                s.bold(&format!(
                    "Roll back {} {} to {} {} ({})",
                    p.installed.package,
                    p.installed.version,
                    p.target.edition_or_ce().package(),
                    p.install.version,
                    p.manager
                ))
            );
            for (i, step) in p.steps.iter().enumerate() {
                println!("  {}. {}", i + 1, step.what);
                println!("     {}", s.dim(&step.cmd.display()));
            }
            println!(
                "  {}. detect the installation again and confirm GitLab {}",
                p.steps.len() + 1,
                p.target
            );
        }
        RollbackPlan::Source {
            target,
            checkout,
            checklist,
            ..
        } => {
            println!(
                "{}",
                s.bold(&format!("Source install: roll back to {target}"))
            );
            println!("  checkout: {}", checkout.display());
            for item in checklist {
                println!("  [ ] {}", item.text);
                if let Some(c) = &item.command {
                    println!("      {}", s.dim(c));
                }
            }
        }
        RollbackPlan::Docker { image, note, .. } => {
            println!("{}", s.bold(&format!("Docker: run {image}")));
            println!("  {note}");
        }
    }
}

pub fn run(ctx: &Ctx, args: Args) -> color_eyre::Result<ExitCode> {
    let plan = rollback::plan(
        &ctx.root,
        &args.to,
        RollbackOptions {
            allow_edition_change: args.allow_edition_change,
        },
    )?;
    if ctx.json() && (args.dry_run || !matches!(plan, RollbackPlan::Package(_))) {
        print_json(&plan)?;
        return Ok(ExitCode::SUCCESS);
    }
    if !ctx.json() {
        print_plan(ctx, &plan);
    }
    let RollbackPlan::Package(p) = plan else {
        return Ok(ExitCode::SUCCESS);
    };
    if args.dry_run {
        return Ok(ExitCode::SUCCESS);
    }
    if !args.yes && !confirm("This stops Puma and Sidekiq and replaces the GitLab package.")? {
        println!("Not run. Pass --yes to run these commands (or run them yourself).");
        return Ok(ExitCode::SUCCESS);
    }
    let journal = open_journal(ctx)?;
    let sink = CliSink::new(ctx);
    let outcome = rollback::run(&ctx.root, &p, &sink, Some(&journal))?;
    if ctx.json() {
        print_json(&outcome)?;
    } else {
        println!(
            "{}",
            ctx.style.ok(&format!(
                "Rolled back: GitLab {} is installed. Next: restore the backup (`rewind restore`).",
                outcome.detected
            ))
        );
    }
    Ok(ExitCode::SUCCESS)
}
