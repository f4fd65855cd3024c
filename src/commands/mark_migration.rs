//! `rewind mark-migration VERSION [--database main|ci|all]`: GitLab's
//! `gitlab:db:mark_migration_complete[VERSION]`, with a stricter version check, a bound
//! parameter and a journal entry.

use std::process::ExitCode;

use color_eyre::eyre::{bail, WrapErr};
use rewind_engine::detect::{detect, DatabaseConn, DetectOptions};
use rewind_engine::journal::Journal;
use rewind_engine::migrate::mark::{mark_complete, validate_version, MarkResult};
use rewind_engine::pg::conn::ConnSpec;

use super::Ctx;
use crate::output::print_json;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The migration version to mark complete: the number of the failing
    /// `== <version> <Name>: migrating` line.
    #[arg(allow_hyphen_values = true, value_name = "VERSION")]
    pub version: String,
    /// Which database: `main`, `ci`, or `all` (every database GitLab runs migrations on).
    #[arg(long, default_value = "all", value_name = "main|ci|all")]
    pub database: String,
}

/// The connections a `--database` choice means: from `--database-url` (one connection,
/// named after the choice) or from detection (`all` = every connection with database tasks).
pub fn connections(ctx: &Ctx, choice: &str) -> color_eyre::Result<Vec<DatabaseConn>> {
    if !matches!(choice, "main" | "ci" | "sec" | "all") {
        bail!("--database must be main, ci or all (got `{choice}`)");
    }
    if let Some(url) = &ctx.global.database_url {
        let spec = ConnSpec::from_url(url).wrap_err("reading --database-url")?;
        let name = if choice == "all" { "main" } else { choice };
        return Ok(vec![DatabaseConn {
            name: name.into(),
            spec,
            database_tasks: true,
        }]);
    }
    let inst =
        detect(&ctx.root, &detect_options(ctx)).wrap_err("detecting the GitLab installation")?;
    let conns: Vec<DatabaseConn> = inst
        .databases
        .into_iter()
        .filter(|d| {
            if choice == "all" {
                d.database_tasks
            } else {
                d.name == choice
            }
        })
        .collect();
    if conns.is_empty() {
        bail!(
            "no `{choice}` database is configured in GitLab's database.yml (under --root {}); pass --database-url or --database main",
            ctx.root.base().display()
        );
    }
    Ok(conns)
}

pub(crate) fn detect_options(ctx: &Ctx) -> DetectOptions {
    DetectOptions {
        backup_dir: ctx.global.backup_dir.clone(),
        env: None,
    }
}

/// The journal in `<backup dir>/rewind/` of the detected installation.
pub fn open_journal(ctx: &Ctx) -> color_eyre::Result<Journal> {
    let inst =
        detect(&ctx.root, &detect_options(ctx)).wrap_err("detecting the GitLab installation")?;
    let dir = Journal::dir_for(&ctx.root.join(&inst.backup_path));
    Ok(Journal::open_in(&dir)?)
}

pub fn run(ctx: &Ctx, args: Args) -> color_eyre::Result<ExitCode> {
    if let Err(e) = validate_version(&args.version) {
        if ctx.json() {
            print_json(&serde_json::json!({
                "version": args.version,
                "error": rewind_engine::migrate::mark::BAD_VERSION_MESSAGE,
                "written": false,
            }))?;
        } else {
            println!(
                "{}",
                ctx.style
                    .bad(rewind_engine::migrate::mark::BAD_VERSION_MESSAGE)
            );
        }
        eprintln!("rewind: {e}; nothing was written");
        return Ok(ExitCode::FAILURE);
    }
    let conns = connections(ctx, &args.database)?;
    let _lock = ctx.host_lock()?;
    let journal = open_journal(ctx)?;
    let mut results: Vec<MarkResult> = Vec::new();
    for conn in &conns {
        let mut client = conn
            .spec
            .connect()
            .wrap_err_with(|| format!("connecting to database {}", conn.name))?;
        let r = mark_complete(
            &mut client,
            conn.name.as_str(),
            &args.version,
            Some(&journal),
        )
        .wrap_err_with(|| {
            format!(
                "marking {} complete on database {}",
                args.version, conn.name
            )
        })?;
        if !ctx.json() {
            let line = r.message();
            match r.outcome {
                rewind_engine::migrate::mark::MarkOutcome::Marked => {
                    println!("{}", ctx.style.ok(&line))
                }
                rewind_engine::migrate::mark::MarkOutcome::AlreadyMarked => {
                    println!("{}", ctx.style.warn(&line))
                }
            }
        }
        results.push(r);
    }
    if ctx.json() {
        print_json(&serde_json::json!({
            "version": args.version,
            "results": results,
            "journal": journal.path(),
        }))?;
    }
    Ok(ExitCode::SUCCESS)
}
