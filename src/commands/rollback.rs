//! `rewind rollback --to VERSION`: install the exact GitLab version of a backup.
//!
//! Checks first what would make the downgrade fail (the PostgreSQL data directory against
//! the majors the older package ships, `gitlab.rb` keys it does not know), then shows the
//! plan (each exact command), then runs it on confirmation or with `--yes`: stop Puma and
//! Sidekiq, install the package, `gitlab-ctl reconfigure`, detect again and confirm the
//! version, hold the package. On a non-terminal without `--yes` it only prints the plan.

use std::process::ExitCode;

use color_eyre::eyre::WrapErr;

use rewind_engine::backup::catalogue::list_backups;
use rewind_engine::detect::{detect, DetectOptions};
use rewind_engine::packages::rollback::{self, RollbackOptions, RollbackPlan};
use rewind_engine::progress::Cancel;
use rewind_engine::recovery;
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
    /// Allow installing the other edition (EE <-> CE). A version without -ee is CE, as
    /// GitLab's restore reads it.
    #[arg(long)]
    pub allow_edition_change: bool,
    /// Do not take the safety snapshot of the database(s) before the package step. By
    /// default it is taken once Puma and Sidekiq are stopped, before the older package's
    /// reconfigure can touch the database; `rewind restore --reuse-snapshot` then uses it.
    #[arg(long)]
    pub no_snapshot: bool,
    /// The restore that follows will run in place (`rewind restore --in-place`): take the
    /// safety snapshot even where beside-and-swap could run (it needs none).
    #[arg(long)]
    pub in_place: bool,
    /// The administrator `rewind restore --db-admin` will use (for the strategy decision).
    #[arg(long, value_name = "OSUSER[:ROLE]")]
    pub db_admin: Option<String>,
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
            println!("  {}. {}", p.steps.len() + 2, p.hold.what);
            println!("     {}", s.dim(&p.hold.cmd.display()));
            println!("     release it before the next upgrade: {}", p.release);
            println!("Checked before the package step:");
            println!("  PostgreSQL: {}", p.guard.postgres.note);
            match &p.guard.unknown_keys {
                Some(k) if k.is_empty() => {
                    println!("  gitlab.rb: every key is known to {}", p.target)
                }
                Some(_) => {}
                None => {
                    if let Some(n) = &p.guard.template_note {
                        println!("  gitlab.rb: {n}");
                    }
                }
            }
            for w in p.guard.warnings() {
                println!("  {}", s.warn(&format!("warning: {w}")));
            }
            if let Some(c) = &p.guard.config_backup {
                println!(
                    "  configuration archive nearest before the backup: {}",
                    c.path.display()
                );
            }
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
    // When the newest backup of that version was made: the configuration archive nearest
    // before it is offered.
    let backup_created = detect(&ctx.root, &DetectOptions::default())
        .ok()
        .and_then(|inst| list_backups(&ctx.root.join(&inst.backup_path), None).ok())
        .and_then(|list| {
            list.into_iter()
                .filter(|b| {
                    b.version
                        .as_ref()
                        .is_some_and(|v| v.numeric() == args.to.numeric() && v.pre == args.to.pre)
                })
                .filter_map(|b| b.created_at)
                .max()
        });
    let plan = rollback::plan(
        &ctx.root,
        &args.to,
        RollbackOptions {
            allow_edition_change: args.allow_edition_change,
            backup_created,
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
    let what = if args.no_snapshot {
        "This stops Puma and Sidekiq and replaces the GitLab package (no safety snapshot: --no-snapshot)."
    } else {
        "This stops Puma and Sidekiq, takes a safety snapshot of the database(s) (pg_dump -Fc, 0600, under the backup directory), then replaces the GitLab package."
    };
    if !args.yes && !confirm(what)? {
        println!("Not run. Pass --yes to run these commands (or run them yourself).");
        return Ok(ExitCode::SUCCESS);
    }
    let inst = detect(
        &ctx.root,
        &DetectOptions {
            backup_dir: ctx.global.backup_dir.clone(),
            env: None,
        },
    )
    .wrap_err("detecting the installation")?;
    // Beside-and-swap keeps the failed upgrade's database whole: no snapshot then.
    let mut beside_reason: Option<String> = None;
    let mut because = "skipped (--no-snapshot)".to_string();
    let databases = if args.no_snapshot {
        Vec::new()
    } else {
        let jobs = recovery::databases_for(&ctx.root, &inst, ctx.global.database_url.as_deref())
            .wrap_err("the safety snapshot before the package step needs the database (pass --no-snapshot to roll back without one)")?;
        let decision = recovery::strategy(
            &ctx.root,
            &inst,
            &jobs,
            args.in_place,
            args.db_admin.as_deref(),
            Default::default(),
        );
        if decision.strategy == rewind_engine::restore::beside::Strategy::Beside {
            let why = decision.reasons.join("; ");
            because = format!(
                "not needed: the restore will run beside the live database and keep it whole ({why})"
            );
            beside_reason = Some(why);
        }
        jobs
    };
    let journal = open_journal(ctx)?;
    let sink = CliSink::new(ctx);
    let cancel = Cancel::new();
    let (outcome, snapshots) = recovery::snapshot::roll_back(
        &recovery::snapshot::PackageStep {
            root: &ctx.root,
            plan: &p,
            databases: &databases,
            backup_path: &ctx.root.join(&inst.backup_path),
            snapshot: !args.no_snapshot && beside_reason.is_none(),
            no_snapshot_because: &because,
            taken: &Default::default(),
        },
        &journal,
        &sink,
        &cancel,
    )?;
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
        if let Some(why) = &beside_reason {
            println!(
                "No safety snapshot was taken: `rewind restore` will restore beside the live database and keep it whole ({why}). Pass --in-place to take one."
            );
        }
        for snap in &snapshots {
            println!(
                "Safety snapshot of {} (taken before the package step): {}",
                snap.database,
                snap.path.display()
            );
        }
        if !snapshots.is_empty() {
            let reuse: Vec<String> = snapshots
                .iter()
                .map(|s| format!("--reuse-snapshot {}={}", s.database, s.path.display()))
                .collect();
            println!(
                "Pass {} to `rewind restore` so it uses this snapshot instead of taking another.",
                reuse.join(" ")
            );
        }
        if let Some(h) = &outcome.hold {
            println!(
                "The package is held ({}). Release it before the next upgrade: {}",
                h.command, h.release
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
