//! `rewind triage [--log FILE|-] [--backup ID]`: is a rollback needed? Classifies the
//! failed `db:migrate` / `gitlab-ctl reconfigure` output (default: the newest failed
//! gitlab-rails-db-migrate-*.log) and compares the host with the newest backup. Reads
//! only. Exit code 4 when a rollback or a fix-forward action is needed, 0 when nothing
//! failed.

use std::path::PathBuf;
use std::process::ExitCode;

use color_eyre::eyre::WrapErr;
use rewind_engine::backup::catalogue::{list_backups, resolve};
use rewind_engine::detect::detect;
use rewind_engine::migrate::triage::{
    newest_failed_log, read_bounded, read_log_file, triage, Decision, LogText, Triage,
};

use super::mark_migration::{connections, detect_options};
use super::Ctx;
use crate::output::{print_json, Style};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The failed output (db:migrate, gitlab-ctl reconfigure, apt/dnf, docker logs), or `-`
    /// for stdin. Default: the newest failed gitlab-rails-db-migrate-*.log.
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Backup id (or unique prefix) or path to compare with. Default: the newest readable
    /// backup.
    #[arg(long, value_name = "ID|PATH")]
    pub backup: Option<String>,
}

pub fn run(ctx: &Ctx, args: Args) -> color_eyre::Result<ExitCode> {
    let inst =
        detect(&ctx.root, &detect_options(ctx)).wrap_err("detecting the GitLab installation")?;
    let installed = inst.version.as_ref();
    let backup = match &args.backup {
        Some(id) => Some(resolve(&ctx.root, &inst.backup_path, id, installed, false)?),
        None => list_backups(&ctx.root.join(&inst.backup_path), installed)
            .ok()
            .and_then(|v| v.into_iter().find(|b| b.error.is_none())),
    };
    let log: Option<LogText> = match &args.log {
        Some(p) if p.as_os_str() == "-" => Some(LogText {
            name: "stdin".into(),
            text: read_bounded(std::io::stdin().lock())
                .wrap_err("reading the failed output from stdin")?,
            written_at: None,
            discovered: false,
        }),
        Some(p) => Some(read_log_file(p)?),
        None => newest_failed_log(&ctx.root, &inst).transpose()?,
    };
    // The databases are optional evidence: without them triage still reads the log.
    let conns = connections(ctx, "all").unwrap_or_default();
    let t = triage(&inst, backup.as_ref(), log.as_ref(), &conns);
    let code = if t.needs_action() {
        crate::exit::ACT
    } else {
        crate::exit::DONE
    };
    if ctx.json() {
        print_json(&t)?;
    } else {
        print_triage(ctx.style, &t);
    }
    Ok(crate::exit::code(code))
}

/// The triage for people.
pub fn print_triage(s: Style, t: &Triage) {
    let c = &t.classification;
    let u = &t.upgrade;
    println!("{}", s.bold("Triage"));
    println!("  upgrade:   {}", u.summary());
    if let Some(l) = &u.log {
        let line = c.line.map(|n| format!(" (line {n})")).unwrap_or_default();
        println!("  output:    {l}{line}");
    }
    if let Some(f) = &c.failure {
        let line: String = f.summary().chars().take(200).collect();
        println!("  failure:   {line}");
    }
    println!("  class:     {}", c.class.describe());
    for e in &c.evidence {
        println!("  evidence:  {e}");
    }
    if let Some(a) = &t.assessment {
        println!("  repair:    {a}");
    }
    for n in &u.notes {
        println!("  note:      {}", s.dim(n));
    }
    println!();
    let verdict = match c.decision {
        Decision::RollbackNeeded => s.bad(&c.verdict),
        Decision::FixForward => s.warn(&c.verdict),
        Decision::NothingFailed => s.ok(&c.verdict),
    };
    println!("{} {verdict}", s.bold("Verdict:"));
    if !c.why.is_empty() {
        println!("  {}", c.why);
    }
    for (i, cmd) in c.commands.iter().enumerate() {
        println!("  {}. {cmd}", i + 1);
    }
    if c.decision == Decision::RollbackNeeded {
        println!("  Restore with the wizard (rewind) or `rewind restore`; `rewind restore --dry-run` shows what is lost.");
    }
    if let Some(h) = &t.hint {
        println!("  {h}");
    }
}
