//! `rewind cleanup`: list what recoveries kept (the failed upgrade's databases kept by the
//! beside strategy, safety snapshots, file components' moved-aside contents), with their
//! sizes, and remove each only when its name is typed (`--remove NAME`).

use std::path::PathBuf;
use std::process::ExitCode;

use color_eyre::eyre::{eyre, WrapErr};
use rewind_engine::detect::{detect, DetectOptions};
use rewind_engine::journal::{Journal, Stage};
use rewind_engine::recovery;
use rewind_engine::restore::beside;
use rewind_engine::safefs;
use serde::Serialize;

use super::Ctx;
use crate::output::{human_bytes, print_json};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Remove this kept item: type its name exactly as listed (repeat for several). Do this
    /// once GitLab is healthy: a removed item is no way back any more.
    #[arg(long, value_name = "NAME")]
    pub remove: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
struct Kept {
    /// `database`, `snapshot`, `moved_aside`.
    kind: &'static str,
    /// What to type to remove it.
    name: String,
    bytes: u64,
    /// Host path (files), or the database's server.
    location: String,
    #[serde(skip)]
    path: Option<PathBuf>,
    removed: bool,
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
    let mut items = Vec::new();
    if let Some(job) = jobs.first() {
        match beside::kept_databases(&job.spec) {
            Ok(dbs) => items.extend(dbs.into_iter().map(|(name, bytes)| Kept {
                kind: "database",
                name,
                bytes,
                location: job.spec.target(),
                path: None,
                removed: false,
            })),
            Err(e) => eprintln!("warning: the kept databases could not be listed: {e}"),
        }
    }
    // Snapshots: regular files in the snapshot directory.
    let snaps = rewind_engine::restore::snapshot::snapshot_dir(&backup_path);
    if let Ok(rd) = std::fs::read_dir(&snaps) {
        for e in rd.flatten() {
            let Ok(m) = e.path().symlink_metadata() else {
                continue;
            };
            if m.is_file() {
                items.push(Kept {
                    kind: "snapshot",
                    name: e.file_name().to_string_lossy().into_owned(),
                    bytes: m.len(),
                    location: ctx.root.host_path(&e.path()).display().to_string(),
                    path: Some(e.path()),
                    removed: false,
                });
            }
        }
    }
    // Moved-aside contents, from the journal.
    for e in &entries {
        if e.stage != Stage::End || e.result.as_deref() != Some("ok") {
            continue;
        }
        if let Some(p) = e.detail["moved_aside"]["path"].as_str() {
            let host = PathBuf::from(p);
            let real = ctx.root.join(&host);
            if real.symlink_metadata().is_ok_and(|m| m.is_dir())
                && !items
                    .iter()
                    .any(|i| i.location == host.display().to_string())
            {
                items.push(Kept {
                    kind: "moved_aside",
                    name: host
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    bytes: e.detail["moved_aside"]["bytes"].as_u64().unwrap_or(0),
                    location: host.display().to_string(),
                    path: Some(real),
                    removed: false,
                });
            }
        }
    }
    for r in &args.remove {
        if !items.iter().any(|i| &i.name == r) {
            return Err(eyre!(
                "`{r}` is not among what recoveries kept ({}). Nothing was removed",
                items
                    .iter()
                    .map(|i| i.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    if !args.remove.is_empty() {
        let journal = Journal::open_in(&dir)?;
        let admin = jobs.first().map(|j| {
            recovery::strategy(&ctx.root, &inst, &jobs, false, None, Default::default())
                .admin
                .unwrap_or(beside::AdminPath::Owner {
                    role: j.spec.user.clone(),
                })
        });
        for it in items.iter_mut().filter(|i| args.remove.contains(&i.name)) {
            let res = match (it.kind, &it.path) {
                ("database", _) => match (&admin, jobs.first()) {
                    (Some(a), Some(j)) => beside::drop_kept(a, &j.spec, &it.name, &journal),
                    _ => Err("no database connection".into()),
                },
                (_, Some(p)) => remove_path(p, &journal),
                _ => Err("nothing to remove".into()),
            };
            res.map_err(|e| eyre!("removing `{}` failed: {e}", it.name))?;
            it.removed = true;
        }
    }
    if ctx.json() {
        print_json(&serde_json::json!({"kept": items}))?;
    } else if items.is_empty() {
        println!("Nothing kept by earlier recoveries.");
    } else {
        println!("{}", ctx.style.bold("Kept by earlier recoveries"));
        for i in &items {
            println!(
                "  {:<11} {:<52} {:>10}  {}{}",
                i.kind,
                i.name,
                human_bytes(i.bytes),
                i.location,
                if i.removed { "  REMOVED" } else { "" }
            );
        }
        if args.remove.is_empty() {
            println!(
                "Once GitLab is healthy, remove an item with --remove NAME (typed exactly as above)."
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Remove a file, or a directory tree without following links (relative to its opened
/// parent), journaled first.
fn remove_path(p: &std::path::Path, journal: &Journal) -> Result<(), String> {
    journal
        .begin(
            "cleanup.path",
            format!("remove {}", p.display()),
            serde_json::json!({"path": p}),
        )
        .map_err(|e| e.to_string())?;
    let r = safefs::remove_path(p).map_err(|e| e.to_string());
    let _ = journal.end(
        "cleanup.path",
        if r.is_ok() { "ok" } else { "failed" },
        serde_json::json!({"error": r.as_ref().err()}),
    );
    r
}
