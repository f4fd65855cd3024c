//! `rewind config [--backup ID] [--archive NAME] [--restore [--file NAME]... --yes]`: the
//! configuration archives of `/etc/gitlab/config_backup` with their dates, the one nearest
//! before the data backup, what differs from the live `/etc/gitlab` (files; the names of
//! `gitlab-secrets.json`'s keys, never their values), and restoring `gitlab-secrets.json`
//! and `gitlab.rb` from it (the live files moved aside) before `gitlab-ctl reconfigure`.

use std::process::ExitCode;

use color_eyre::eyre::WrapErr;
use rewind_engine::backup::catalogue;
use rewind_engine::detect::{detect, DetectOptions};
use rewind_engine::recovery::config::{self, ConfigDiff, FileState, RESTORABLE};
use serde::Serialize;

use super::services::{confirm, open_journal, CliSink};
use super::Ctx;
use crate::exit;
use crate::output::print_json;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The data backup to match (id or path); default: the newest readable one.
    #[arg(long)]
    pub backup: Option<String>,
    /// The configuration archive to use (file name in /etc/gitlab/config_backup); default:
    /// the one nearest before the data backup.
    #[arg(long)]
    pub archive: Option<String>,
    /// Restore gitlab-secrets.json and gitlab.rb from the archive (those that differ); the
    /// live files are moved aside to <name>.rewind-<time>.
    #[arg(long)]
    pub restore: bool,
    /// Restore only this file (gitlab-secrets.json or gitlab.rb); repeatable.
    #[arg(long = "file", requires = "restore", value_parser = ["gitlab-secrets.json", "gitlab.rb"])]
    pub files: Vec<String>,
    /// Restore without asking.
    #[arg(long, requires = "restore")]
    pub yes: bool,
}

#[derive(Serialize)]
struct Report<'a> {
    archives: Vec<config::ConfigArchive>,
    backup: Option<String>,
    diff: &'a ConfigDiff,
    restored: Vec<config::Restored>,
}

fn print_diff(ctx: &Ctx, d: &ConfigDiff) {
    let s = ctx.style;
    println!();
    println!(
        "{}",
        s.bold(&format!(
            "{} compared with the live /etc/gitlab:",
            d.archive.name
        ))
    );
    if d.files.is_empty() {
        println!("  every file is the same ({} compared)", d.unchanged);
    }
    for f in &d.files {
        let what = match f.state {
            FileState::Same => "same",
            FileState::Differs => "differs",
            FileState::OnlyInArchive => "missing from /etc/gitlab (only in the archive)",
            FileState::OnlyLive => "only in /etc/gitlab (not in the archive)",
            FileState::KindDiffers => "a file on one side, a directory or link on the other",
        };
        println!("  {:<40} {}", f.name, what);
    }
    match &d.secrets {
        None => println!(
            "{}",
            s.warn("  the archive has no gitlab-secrets.json: it cannot give the secrets back")
        ),
        Some(sd) if sd.identical() => println!(
            "  gitlab-secrets.json: the same keys and values as the live file ({} keys)",
            sd.same
        ),
        Some(sd) => {
            println!("  gitlab-secrets.json keys (names only, values are never shown):");
            if !sd.live_readable {
                println!(
                    "{}",
                    s.bad("    the live /etc/gitlab/gitlab-secrets.json is missing or not JSON")
                );
            }
            for k in &sd.different {
                println!("    {}", s.bad(&format!("different value: {k}")));
            }
            for k in &sd.missing_live {
                println!(
                    "    {}",
                    s.warn(&format!("missing from the live file: {k}"))
                );
            }
            for k in &sd.only_live {
                println!("    only in the live file: {k}");
            }
            println!("    {} keys the same", sd.same);
        }
    }
}

pub fn run(ctx: &Ctx, args: Args) -> color_eyre::Result<ExitCode> {
    let root = &ctx.root;
    let s = ctx.style;
    let inst = detect(
        root,
        &DetectOptions {
            backup_dir: ctx.global.backup_dir.clone(),
            env: None,
        },
    )
    .wrap_err("detecting the GitLab installation")?;
    let backup = match &args.backup {
        Some(id) => Some(
            catalogue::resolve(root, &inst.backup_path, id, inst.version.as_ref(), false)
                .wrap_err("finding the backup")?,
        ),
        None => catalogue::list_backups(&root.join(&inst.backup_path), inst.version.as_ref())
            .ok()
            .and_then(|l| l.into_iter().find(|b| b.error.is_none())),
    };
    let before = backup.as_ref().and_then(|b| b.backup_created_at());
    let archives = config::list(root, before);
    if !ctx.json() {
        match (&backup, before) {
            (Some(b), Some(t)) => println!(
                "Data backup {} was made {}.",
                b.id,
                t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
            (Some(b), None) => println!("Data backup {} (its time is unknown).", b.id),
            _ => println!("No data backup found: the newest configuration archive is used."),
        }
        println!(
            "{}",
            s.bold("Configuration archives (/etc/gitlab/config_backup):")
        );
        if archives.is_empty() {
            println!("  none");
        }
        for a in &archives {
            println!(
                "  {} {:<46} {:>9} bytes  {}",
                if a.nearest { "→" } else { " " },
                a.name,
                a.size,
                a.created.as_deref().unwrap_or("time unknown")
            );
        }
    }
    let chosen = config::choose(root, args.archive.as_deref(), before)?;
    let contents = config::read_archive(root, &chosen)?;
    let d = config::diff(root, &contents);
    if !ctx.json() {
        print_diff(ctx, &d);
    }
    let wanted: Vec<String> = if args.files.is_empty() {
        d.would_restore.clone()
    } else {
        args.files.clone()
    };
    let mut restored = Vec::new();
    let mut code = exit::DONE;
    if !args.restore {
        if !d.would_restore.is_empty() {
            code = exit::ACT;
            if !ctx.json() {
                println!();
                println!(
                    "{} differ from the archive. To put the archive's back (the live files are moved aside), then reconfigure:",
                    d.would_restore.join(" and ")
                );
                println!("  rewind config --archive {} --restore --yes", chosen.name);
                println!("  rewind services finish");
            }
        }
    } else if wanted.is_empty() {
        if !ctx.json() {
            println!();
            println!(
                "{}",
                s.ok(&format!(
                    "{} already match the archive: nothing to restore.",
                    RESTORABLE.join(" and ")
                ))
            );
        }
    } else {
        if !ctx.json() {
            println!();
            println!(
                "Will restore {} from {} into /etc/gitlab (0600, root); the live files are moved aside.",
                wanted.join(" and "),
                chosen.path.display()
            );
        }
        if !args.yes && !confirm("This replaces GitLab's configuration files.")? {
            println!("Not restored. Pass --yes to restore without asking.");
            return Ok(exit::code(exit::ACT));
        }
        let journal = open_journal(ctx)?;
        let sink = CliSink::new(ctx);
        restored = config::restore(root, &contents, &wanted, &journal, &sink)?;
        if !ctx.json() {
            println!(
                "{}",
                s.ok("Restored. Run `rewind services finish` (gitlab-ctl reconfigure, start, checks) next.")
            );
        }
    }
    if ctx.json() {
        print_json(&Report {
            archives,
            backup: backup.map(|b| b.id),
            diff: &d,
            restored,
        })?;
    }
    Ok(exit::code(code))
}
