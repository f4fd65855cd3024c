//! `rewind drill --backup ID|PATH`: a restore test of one of this host's backups, always
//! non-interactive (for a schedule). The test itself is the engine's
//! [`rewind_engine::recovery::restore_test`]; this prints its report.

use std::process::ExitCode;

use color_eyre::eyre::WrapErr;
use rewind_engine::backup::catalogue::resolve;
use rewind_engine::detect::{detect, DetectOptions};
use rewind_engine::progress::{Cancel, Event, Level};
use rewind_engine::recovery::restore_test::{self, TestReport, TestRequest};
use rewind_engine::recovery::{self};

use super::Ctx;
use crate::exit;
use crate::output::{human_bytes, print_json};

pub fn run(ctx: &Ctx, id: &str, args: &super::drill::Args) -> color_eyre::Result<ExitCode> {
    let inst = detect(
        &ctx.root,
        &DetectOptions {
            backup_dir: ctx.global.backup_dir.clone(),
            env: None,
        },
    )
    .wrap_err("detecting the GitLab installation")?;
    let backup = resolve(
        &ctx.root,
        &inst.backup_path,
        id,
        inst.version.as_ref(),
        false,
    )
    .wrap_err_with(|| format!("finding backup `{id}`"))?;
    let databases = recovery::databases_for(&ctx.root, &inst, None)?;
    let cancel = Cancel::new();
    // Ctrl-C / SIGTERM / SIGHUP: stop at the next safe point; what was made is removed.
    super::cancel_on_signals(
        &cancel,
        Some("rewind: stopping the restore test and removing its cluster and files ..."),
    )
    .wrap_err("installing the signal handler")?;
    let quiet = ctx.json();
    let style = ctx.style;
    let sink = move |ev: Event| {
        if quiet {
            return;
        }
        match ev {
            Event::Log { level, message } => match level {
                Level::Info => eprintln!("{}", style.dim(&message)),
                Level::Warn => eprintln!("{}", style.warn(&message)),
                Level::Error => eprintln!("{}", style.bad(&message)),
            },
            Event::Output { line } => eprintln!("  | {line}"),
            _ => {}
        }
    };
    if !quiet {
        eprintln!(
            "{}",
            style.bold(&format!(
                "Rewind restore test of {}: a throwaway PostgreSQL cluster and a temp directory; production is not touched.",
                backup.id
            ))
        );
    }
    let req = TestRequest {
        root: &ctx.root,
        installation: &inst,
        backup: &backup,
        databases,
        work_dir: args.work_dir.clone().unwrap_or_else(std::env::temp_dir),
        jobs: args
            .jobs
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
            .max(1),
        keep: args.keep,
    };
    let report = restore_test::run(&req, &sink, &cancel)?;
    let passed = report.passed();
    if ctx.json() {
        print_json(&serde_json::json!({
            "passed": passed,
            "failed_step": report.failed_step(),
            "report": report,
        }))?;
    } else {
        print!("{}", render(ctx, &report));
    }
    Ok(exit::code(if passed { exit::DONE } else { exit::ACT }))
}

fn secs(s: f64) -> String {
    if s >= 120.0 {
        format!("{}m{:02}s", (s / 60.0) as u64, (s % 60.0) as u64)
    } else {
        format!("{s:.1}s")
    }
}

fn render(ctx: &Ctx, r: &TestReport) -> String {
    use std::fmt::Write as _;
    let s = ctx.style;
    let mut out = String::new();
    let _ = writeln!(out);
    let _ = writeln!(out, "{}", s.bold(&format!("Restore test of {}", r.backup)));
    let _ = writeln!(
        out,
        "  archive:  {}",
        ctx.root.host_path(&r.archive).display()
    );
    let _ = writeln!(
        out,
        "  GitLab:   backup {}, this host {}",
        r.backup_version.as_deref().unwrap_or("unknown"),
        r.host_version.as_deref().unwrap_or("unknown")
    );
    if let Some(srv) = &r.server {
        let _ = writeln!(
            out,
            "  server:   {}{}",
            srv.version_line,
            r.dump_pg_major
                .map(|m| format!(" (dump made by pg_dump {m})"))
                .unwrap_or_default()
        );
    }
    let _ = writeln!(out, "\n{}", s.bold("Checks"));
    for c in &r.checks {
        let label = match c.status {
            restore_test::CheckStatus::Pass => s.ok(c.status.label()),
            restore_test::CheckStatus::Fail => s.bad(c.status.label()),
            restore_test::CheckStatus::Skipped => s.dim(c.status.label()),
        };
        let _ = writeln!(out, "  {label} {}: {}", c.step, c.detail);
    }
    let _ = writeln!(out, "\n{}", s.bold("Phases"));
    for p in &r.phases {
        let _ = writeln!(
            out,
            "  {:<18} {:>8}{}",
            p.phase,
            secs(p.seconds),
            if p.ok { "" } else { "  (failed)" }
        );
    }
    let _ = writeln!(out, "\n{}", s.bold("Measured on this host"));
    let _ = writeln!(
        out,
        "  restore time:  {} (databases loaded and verified, files extracted)",
        secs(r.restore_seconds)
    );
    for d in &r.databases {
        let _ = writeln!(
            out,
            "  {}: dump {}, {} on disk, {} tables, {} rows, loaded in {}",
            d.database,
            human_bytes(d.dump_bytes),
            human_bytes(d.size_bytes),
            d.tables,
            d.rows,
            secs(d.load_seconds)
        );
    }
    for f in &r.files {
        let _ = writeln!(
            out,
            "  {}: {} files, {}",
            f.name,
            f.files,
            human_bytes(f.bytes)
        );
    }
    let _ = writeln!(
        out,
        "  peak disk:     {} (throwaway cluster and extracted files){}",
        human_bytes(r.peak_disk_bytes),
        r.space
            .as_ref()
            .map(|sp| format!(
                "; {} free in {} before the test",
                human_bytes(sp.available),
                sp.dir.display()
            ))
            .unwrap_or_default()
    );
    if let Some(m) = r.peak_rss_bytes {
        let _ = writeln!(
            out,
            "  peak memory:   {} (Rewind itself; PostgreSQL not counted)",
            human_bytes(m)
        );
    }
    let _ = writeln!(out, "\n{}", s.bold("A recovery from this backup restores"));
    for c in &r.components {
        let _ = writeln!(out, "  {:<14} {}", c.name, c.status);
    }
    if let Some(k) = &r.kept {
        let _ = writeln!(out, "\n{}", s.bold("Kept (--keep)"));
        let _ = writeln!(out, "  cluster:  {}", k.cluster_dir.display());
        if let Some(f) = &k.files_dir {
            let _ = writeln!(out, "  files:    {}", f.display());
        }
        let _ = writeln!(out, "  connect:  {}", k.connect);
        let _ = writeln!(out, "  stop:     {}", k.stop);
        let _ = writeln!(out, "  remove:   {}", k.remove);
    } else {
        let _ = writeln!(
            out,
            "\n{}",
            s.dim("The throwaway cluster and the temp directory were removed.")
        );
    }
    let _ = writeln!(out);
    if r.passed() {
        let _ = writeln!(
            out,
            "{}",
            s.ok(&format!(
                "PASS: backup {} restores on this host in {}.",
                r.backup,
                secs(r.restore_seconds)
            ))
        );
    } else if let Some(h) = &r.gave_way_to {
        let _ = writeln!(
            out,
            "{}",
            s.warn(&format!(
                "STOPPED: a recovery started (pid {}); the test gave way. Run it again later.",
                h.pid
            ))
        );
    } else {
        let _ = writeln!(
            out,
            "{}",
            s.bad(&format!(
                "FAIL at `{}`: backup {} does not restore as it is. Pick another backup (`rewind backups`) and find out why this one fails.",
                r.failed_step().unwrap_or("?"),
                r.backup
            ))
        );
    }
    out
}
