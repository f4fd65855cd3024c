//! `rewind detect`: what Rewind finds on this host, and what it does not.

use std::process::ExitCode;

use color_eyre::eyre::WrapErr;
use rewind_engine::detect::{detect, DetectOptions};

use super::Ctx;
use crate::output::print_json;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(ctx: &Ctx, _args: Args) -> color_eyre::Result<ExitCode> {
    let inst = detect(
        &ctx.root,
        &DetectOptions {
            backup_dir: ctx.global.backup_dir.clone(),
            env: None,
        },
    )
    .wrap_err("detecting the GitLab installation")?;
    if ctx.json() {
        print_json(&inst)?;
        return Ok(ExitCode::SUCCESS);
    }
    let s = ctx.style;
    let kind = match inst.kind {
        Some(k) => format!("{k:?}").to_lowercase(),
        None => s.bad("not found"),
    };
    println!("{}", s.bold("GitLab installation"));
    println!("  kind:           {kind}");
    println!(
        "  version:        {}",
        inst.version
            .as_ref()
            .map(|v| v.to_string())
            .unwrap_or_else(|| s.bad("unknown"))
    );
    println!(
        "  package:        {}",
        inst.package.as_deref().unwrap_or("unknown")
    );
    println!("  backup dir:     {}", inst.backup_path.display());
    for db in &inst.databases {
        println!(
            "  database {:<6} {} on {} as {}{}",
            format!("{}:", db.name),
            db.spec.dbname,
            db.spec.target(),
            db.spec.user,
            if db.database_tasks {
                ""
            } else {
                " (shares main's database)"
            }
        );
    }
    println!();
    println!("{}", s.bold("Looked at"));
    for f in &inst.findings {
        let mark = if f.found {
            s.ok("found  ")
        } else {
            s.warn("missing")
        };
        println!(
            "  {mark} {:<20} {}  {}",
            f.what,
            f.path.display(),
            s.dim(&f.note)
        );
    }
    if inst.kind.is_none() {
        println!();
        println!(
            "No GitLab installation found under {}. Point Rewind at the host tree with --root, or at a backup directory with --backup-dir.",
            ctx.root.base().display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
