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
    // No GitLab found here (neither kind nor version): nothing failed, but the user must
    // point Rewind at the host (--root) before anything else works.
    let code = if inst.kind.is_none() && inst.version.is_none() {
        crate::exit::code(crate::exit::ACT)
    } else {
        ExitCode::SUCCESS
    };
    if ctx.json() {
        // Each database also says whom Rewind connects as, and why.
        let mut v = serde_json::to_value(&inst)?;
        if let Some(dbs) = v.get_mut("databases").and_then(|d| d.as_array_mut()) {
            for (j, db) in dbs.iter_mut().zip(&inst.databases) {
                if let Some(o) = j.as_object_mut() {
                    o.insert(
                        "connect_as".into(),
                        serde_json::to_value(db.spec.connect_as())?,
                    );
                }
            }
        }
        print_json(&v)?;
        return Ok(code);
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
        println!(
            "         {:<6} {}",
            "",
            s.dim(&format!("connects {}", db.spec.connect_as().describe()))
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
    Ok(code)
}
