//! `rewind undo`: go back to the failed upgrade's database. After the beside strategy it
//! swaps the kept database back in (two renames, journaled before each); a swap
//! interrupted between its renames is reversed. After the in-place strategy it restores
//! the newest safety snapshot (`pg_restore --clean --if-exists` in one transaction,
//! [`rewind_engine::restore::snapshot::restore_snapshot`]). Each database is confirmed by
//! typing its name.

use std::process::ExitCode;

use color_eyre::eyre::{eyre, WrapErr};
use rewind_engine::detect::{detect, DetectOptions};
use rewind_engine::journal::{Journal, Stage};
use rewind_engine::progress::NullSink;
use rewind_engine::recovery;
use rewind_engine::restore::beside::{self, Resolve};
use serde::Serialize;

use super::Ctx;
use crate::output::print_json;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Confirm going back for this database: must equal its name (repeat per database).
    #[arg(long, value_name = "DBNAME")]
    pub confirm: Vec<String>,
    /// Say what would be done and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// One way back, run with the journal.
type Action = Box<dyn Fn(&Journal) -> Result<String, String>>;

#[derive(Debug, Serialize)]
struct Done {
    database: String,
    /// `swap_back`, `reverse_interrupted_swap`, `restore_snapshot`.
    action: String,
    detail: String,
    done: bool,
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
    let jobs = recovery::databases_for(&ctx.root, &inst, ctx.global.database_url.as_deref())?;
    let backup_path = ctx.root.join(&inst.backup_path);
    let dir = Journal::dir_for(&backup_path);
    let entries = Journal::read_in(&dir)?.unwrap_or_default();
    let _lock = recovery::lock::host(&ctx.root, "rewind undo")?;

    let mut todo: Vec<(String, String, Action)> = Vec::new();
    for rec in beside::interrupted(&entries) {
        let Some(job) = jobs.iter().find(|j| j.spec.dbname == rec.live).cloned() else {
            continue;
        };
        let detail = format!(
            "a swap was interrupted between its renames: `{}` goes back to the failed upgrade's database (`{}`)",
            rec.live, rec.kept
        );
        todo.push((
            rec.live.clone(),
            detail,
            Box::new(move |j: &Journal| {
                beside::finish_interrupted(&job.spec, &rec, Resolve::Reverse, j).map(|d| {
                    d.unwrap_or_else(|| "nothing to reverse: the swap had not begun".into())
                })
            }),
        ));
    }
    for rec in beside::completed(&entries) {
        if todo.iter().any(|t| t.0 == rec.live) {
            continue;
        }
        let Some(job) = jobs.iter().find(|j| j.spec.dbname == rec.live).cloned() else {
            continue;
        };
        let detail = format!(
            "swap back: `{}` (the restore) becomes `{}`, the kept `{}` becomes `{}` again",
            rec.live, rec.new, rec.kept, rec.live
        );
        todo.push((
            rec.live.clone(),
            detail,
            Box::new(move |j: &Journal| beside::undo(&job.spec, &rec, j)),
        ));
    }
    // In place: the newest safety snapshot of each database not swapped.
    for job in &jobs {
        if todo.iter().any(|t| t.0 == job.spec.dbname) {
            continue;
        }
        let snap = entries.iter().rev().find_map(|e| {
            (e.step == "snapshot" && e.stage == Stage::End && e.result.as_deref() == Some("ok"))
                .then(|| e.detail["path"].as_str().map(std::path::PathBuf::from))
                .flatten()
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with(&job.spec.dbname))
                })
        });
        let Some(path) = snap else { continue };
        let spec = job.spec.clone();
        let root = ctx.root.clone();
        let detail = format!(
            "restore the safety snapshot {} into `{}` (pg_restore --clean --if-exists, in one transaction)",
            path.display(),
            spec.dbname
        );
        todo.push((
            spec.dbname.clone(),
            detail,
            Box::new(move |j: &Journal| {
                rewind_engine::restore::snapshot::restore_snapshot(&root, &spec, &path, j)
            }),
        ));
    }
    if todo.is_empty() {
        return Err(eyre!(
            "nothing to undo: the journal in {} records no swap and no safety snapshot of {}. Nothing was changed",
            dir.display(),
            jobs.iter().map(|j| j.spec.dbname.as_str()).collect::<Vec<_>>().join(", ")
        ));
    }
    let mut results = Vec::new();
    let mut refused = Vec::new();
    let journal = if args.dry_run {
        None
    } else {
        Some(Journal::open_in(&dir)?)
    };
    for (db, detail, act) in &todo {
        let confirmed = args.confirm.iter().any(|c| c == db);
        let mut d = Done {
            database: db.clone(),
            action: if detail.starts_with("swap back") {
                "swap_back"
            } else if detail.starts_with("a swap") {
                "reverse_interrupted_swap"
            } else {
                "restore_snapshot"
            }
            .into(),
            detail: detail.clone(),
            done: false,
        };
        match (&journal, confirmed) {
            (Some(j), true) => match act(j) {
                Ok(m) => {
                    d.detail = m;
                    d.done = true;
                }
                Err(e) => {
                    if !ctx.json() {
                        for r in &results {
                            print_done(r);
                        }
                    }
                    return Err(eyre!("undo of `{db}` failed: {e}"));
                }
            },
            (Some(_), false) => refused.push(db.clone()),
            (None, _) => {}
        }
        results.push(d);
    }
    let _ = NullSink;
    if ctx.json() {
        print_json(&serde_json::json!({"undo": results, "unconfirmed": refused}))?;
    } else {
        for r in &results {
            print_done(r);
        }
    }
    if !refused.is_empty() {
        if !ctx.json() {
            println!(
                "Not done: confirm with {} (each database's name). Nothing else was changed.",
                refused
                    .iter()
                    .map(|d| format!("--confirm {d}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
        }
        return Ok(crate::exit::code(if results.iter().any(|r| r.done) {
            crate::exit::ACT
        } else {
            crate::exit::REFUSED
        }));
    }
    Ok(if args.dry_run {
        crate::exit::code(crate::exit::DONE)
    } else {
        ExitCode::SUCCESS
    })
}

fn print_done(r: &Done) {
    println!(
        "{} {}: {}",
        if r.done { "done:" } else { "would:" },
        r.database,
        r.detail
    );
}
