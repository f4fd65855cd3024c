//! `rewind inspect <ID|PATH> [--verify]`: one backup's manifest and members; with
//! `--verify`, the full streaming check of every member. Writes nothing.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use color_eyre::eyre::WrapErr;
use rewind_engine::backup::catalogue::{resolve, BackupEntry};
use rewind_engine::backup::tar_headers::EntryKind;
use rewind_engine::backup::verify::{verify, VerifyReport};
use rewind_engine::detect::{detect, DetectOptions};
use rewind_engine::progress::{Event, Level, Sink};
use serde::Serialize;

use super::Ctx;
use crate::output::{human_bytes, print_json};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Backup id (or a unique prefix of it) in the backup directory, or the path of a
    /// `*_gitlab_backup.tar` or of an unpacked backup directory.
    #[arg(value_name = "ID|PATH")]
    pub backup: String,
    /// Also stream every member end to end: tar structure, gzip CRCs, zstd checksums,
    /// nested component archives, the manifest.
    #[arg(long)]
    pub verify: bool,
}

#[derive(Serialize)]
struct Document<'a> {
    backup: &'a BackupEntry,
    host_path: String,
    verify: Option<&'a VerifyReport>,
}

/// Prints a progress line on stderr (only used when stderr is a terminal).
struct StderrProgress {
    last: Mutex<Option<Instant>>,
}

impl Sink for StderrProgress {
    fn event(&self, event: Event) {
        match event {
            Event::Progress {
                done,
                total,
                current,
                ..
            } => {
                let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
                if last.is_some_and(|t| t.elapsed() < Duration::from_millis(200)) {
                    return;
                }
                *last = Some(Instant::now());
                let pct = total
                    .filter(|t| *t > 0)
                    .map(|t| format!("{:>3}%", done * 100 / t))
                    .unwrap_or_default();
                let mut err = std::io::stderr().lock();
                let _ = write!(
                    err,
                    "\r\x1b[2Kverifying {pct} {} of {}  {}",
                    human_bytes(done),
                    human_bytes(total.unwrap_or(0)),
                    current.unwrap_or_default()
                );
                let _ = err.flush();
            }
            Event::PhaseFinished { .. } => {
                let _ = write!(std::io::stderr(), "\r\x1b[2K");
            }
            Event::Log { level, message } if level != Level::Info => {
                eprintln!("\r\x1b[2K{message}");
            }
            _ => {}
        }
    }
}

/// Collects warnings when stderr is not a terminal.
struct QuietSink;
impl Sink for QuietSink {
    fn event(&self, event: Event) {
        if let Event::Log {
            level: Level::Warn | Level::Error,
            message,
        } = event
        {
            eprintln!("{message}");
        }
    }
}

pub fn run(ctx: &Ctx, args: Args) -> color_eyre::Result<ExitCode> {
    let inst = detect(
        &ctx.root,
        &DetectOptions {
            backup_dir: ctx.global.backup_dir.clone(),
            env: None,
        },
    )
    .wrap_err("detecting the GitLab installation")?;
    let entry = resolve(
        &ctx.root,
        &inst.backup_path,
        &args.backup,
        inst.version.as_ref(),
        true,
    )?;
    let report = if args.verify {
        let started = Instant::now();
        let result = if std::io::stderr().is_terminal() && !ctx.json() {
            verify(
                &entry.path,
                &StderrProgress {
                    last: Mutex::new(None),
                },
                None,
            )
        } else {
            verify(&entry.path, &QuietSink, None)
        };
        let report = result?;
        if !ctx.json() {
            eprintln!("verified in {:.1}s", started.elapsed().as_secs_f64());
        }
        Some(report)
    } else {
        None
    };
    if ctx.json() {
        print_json(&Document {
            backup: &entry,
            host_path: ctx.root.host_path(&entry.path).display().to_string(),
            verify: report.as_ref(),
        })?;
        return Ok(ExitCode::SUCCESS);
    }
    print_human(ctx, &entry, report.as_ref());
    Ok(ExitCode::SUCCESS)
}

fn print_human(ctx: &Ctx, b: &BackupEntry, report: Option<&VerifyReport>) {
    let s = ctx.style;
    let info = b.information.as_ref();
    println!("{} {}", s.bold("Backup"), b.id);
    println!(
        "  path:              {}",
        ctx.root.host_path(&b.path).display()
    );
    println!(
        "  kind:              {}",
        match b.kind {
            rewind_engine::backup::BackupKind::Tar => "tar archive",
            rewind_engine::backup::BackupKind::Directory => "unpacked directory",
        }
    );
    println!(
        "  created:           {}",
        b.created_at
            .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
            .unwrap_or_else(|| "unknown".into())
    );
    let matches = match b.version_matches {
        Some(true) => s.ok("matches the installed version"),
        Some(false) => s.warn("differs from the installed version"),
        None => s.dim("installed version unknown"),
    };
    println!(
        "  GitLab version:    {} ({})",
        b.version_text.as_deref().unwrap_or("unknown"),
        matches
    );
    println!("  size:              {}", human_bytes(b.size));
    if let Some(i) = info {
        let field = |name: &str, v: Option<&str>| {
            println!(
                "  {:<18} {}",
                format!("{name}:"),
                v.filter(|v| !v.is_empty()).unwrap_or("-")
            )
        };
        field("db version", i.db_version.as_deref());
        field("installation type", i.installation_type.as_deref());
        field("tar version", i.tar_version.as_deref());
        field("skipped", Some(&i.skipped.join(",")));
        if !i.repositories_storages.is_empty() {
            field("repo storages", Some(&i.repositories_storages.join(",")));
        }
        if !i.repositories_paths.is_empty() {
            field("repo paths", Some(&i.repositories_paths.join(",")));
        }
        if !i.skip_repositories_paths.is_empty() {
            field(
                "skipped repo paths",
                Some(&i.skip_repositories_paths.join(",")),
            );
        }
        if i.repositories_server_side == Some(true) {
            field("repositories", Some("server side (not in the archive)"));
        }
        if let Some(f) = &i.full_backup_id {
            field("full backup id", Some(f));
        }
        for (k, v) in &i.extra {
            field(k, Some(&v.to_string()));
        }
        for w in &i.warnings {
            println!("  {} {w}", s.warn("note:"));
        }
    }
    println!();
    println!("{}", s.bold("Contents"));
    for d in &b.databases {
        println!(
            "  database {:<8} {:<28} {:>10}  {}",
            d.name,
            d.member,
            human_bytes(d.size),
            d.compression.map(|c| c.to_string()).unwrap_or_default()
        );
    }
    for c in &b.components {
        println!(
            "  files    {:<8} {:<28} {:>10}  {}",
            c.name,
            c.member,
            human_bytes(c.size),
            c.compression.map(|c| c.to_string()).unwrap_or_default()
        );
    }
    if b.repositories {
        let n = b
            .members
            .iter()
            .filter(|m| m.name.starts_with("repositories/") && m.kind == EntryKind::File)
            .count();
        println!("  repositories ({n} files)");
    }
    println!();
    println!("{}", s.bold("Members"));
    const SHOWN_UNDER_REPOSITORIES: usize = 20;
    let mut repo_shown = 0;
    let mut repo_hidden = 0;
    for m in &b.members {
        if m.name.starts_with("repositories/") {
            if repo_shown >= SHOWN_UNDER_REPOSITORIES {
                repo_hidden += 1;
                continue;
            }
            repo_shown += 1;
        }
        let kind = match m.kind {
            EntryKind::File => m.compression.map(|c| c.to_string()).unwrap_or_default(),
            EntryKind::Dir => "dir".into(),
            other => format!("{other:?}").to_lowercase(),
        };
        println!("  {:>10}  {:<6} {}", human_bytes(m.size), kind, m.name);
    }
    if repo_hidden > 0 {
        println!("  ... and {repo_hidden} more under repositories/ (all are in --json)");
    }
    if let Some(r) = report {
        println!();
        println!(
            "{} every member read end to end: {} read, {} members, tar structure, gzip CRCs, zstd checksums and the manifest are sound",
            s.ok("Verified:"),
            human_bytes(r.bytes_read),
            r.members.len()
        );
        for m in r.members.iter().filter(|m| m.decoded_bytes.is_some()) {
            if m.compression
                .is_some_and(|c| c != rewind_engine::backup::Compression::Plain)
                || m.nested_entries.is_some()
            {
                println!(
                    "  {:<30} {} -> {}{}",
                    m.name,
                    m.compression.map(|c| c.to_string()).unwrap_or_default(),
                    human_bytes(m.decoded_bytes.unwrap_or(0)),
                    m.nested_entries
                        .map(|n| format!(", {n} entries inside"))
                        .unwrap_or_default()
                );
            }
        }
        for w in &r.warnings {
            println!("  {} {w}", s.warn("note:"));
        }
    }
}
