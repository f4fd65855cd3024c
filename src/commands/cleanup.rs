//! `rewind cleanup`: list what recoveries kept (the failed upgrade's databases kept by the
//! beside strategy, safety snapshots, file components' moved-aside contents), with their
//! sizes, and remove each only when its name is typed (`--remove NAME`).

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use std::process::ExitCode;

use color_eyre::eyre::{eyre, WrapErr};
use rewind_engine::detect::{detect, DetectOptions};
use rewind_engine::journal::{open_private_dir, Journal, Stage};
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
    /// Where a file item is, relative to a directory opened without following links.
    #[serde(skip)]
    place: Option<Place>,
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
                place: None,
                removed: false,
            })),
            Err(e) => eprintln!("warning: the kept databases could not be listed: {e}"),
        }
    }
    // Snapshots: regular files in Rewind's own snapshot directory (opened without
    // following links, refused unless it is root's own).
    let snap_dir = rewind_engine::restore::snapshot::snapshot_dir(&backup_path);
    if let Some(sfd) = open_snapshots(&backup_path, &snap_dir)? {
        for name in
            safefs::list(&sfd).wrap_err_with(|| format!("reading {}", snap_dir.display()))?
        {
            let Ok(Some(st)) = safefs::stat_at(&sfd, &name) else {
                continue;
            };
            if safefs::is_file(&st) {
                items.push(Kept {
                    kind: "snapshot",
                    name: name.to_string_lossy().into_owned(),
                    bytes: st.st_size as u64,
                    location: ctx
                        .root
                        .host_path(&snap_dir.join(&name))
                        .display()
                        .to_string(),
                    place: Some(Place::Snapshot(name)),
                    removed: false,
                });
            }
        }
    }
    // Moved-aside contents, from the journal: each in a directory of Rewind's own,
    // `<backup dir>/tmp/<component>.<epoch>` (GitLab's place for them); anything the journal
    // names elsewhere, or that is no longer a directory of root's there, is not offered.
    let tmp_host = inst.backup_path.join("tmp");
    for e in &entries {
        if e.stage != Stage::End || e.result.as_deref() != Some("ok") {
            continue;
        }
        let Some(p) = e.detail["moved_aside"]["path"].as_str() else {
            continue;
        };
        let host = PathBuf::from(p);
        let Some(container) = host
            .parent()
            .filter(|c| c.parent() == Some(tmp_host.as_path()))
            .and_then(|c| c.file_name())
            .map(|n| n.to_os_string())
        else {
            continue;
        };
        if items
            .iter()
            .any(|i| matches!(&i.place, Some(Place::Aside(n)) if *n == container))
        {
            continue;
        }
        if aside_dir(&backup_path, &container).is_ok_and(|d| d.is_some()) {
            items.push(Kept {
                kind: "moved_aside",
                name: container.to_string_lossy().into_owned(),
                bytes: e.detail["moved_aside"]["bytes"].as_u64().unwrap_or(0),
                location: tmp_host.join(&container).display().to_string(),
                place: Some(Place::Aside(container)),
                removed: false,
            });
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
        let _lock = ctx.host_lock()?;
        let journal = Journal::open_in(&dir)?;
        let admin = jobs.first().map(|j| {
            recovery::strategy(&ctx.root, &inst, &jobs, false, None, Default::default())
                .admin
                .unwrap_or(beside::AdminPath::Owner {
                    role: j.spec.user.clone(),
                })
        });
        for it in items.iter_mut().filter(|i| args.remove.contains(&i.name)) {
            let res = match (it.kind, &it.place) {
                ("database", _) => match (&admin, jobs.first()) {
                    (Some(a), Some(j)) => beside::drop_kept(a, &j.spec, &it.name, &journal),
                    _ => Err("no database connection".into()),
                },
                (_, Some(place)) => {
                    remove_kept(&backup_path, &snap_dir, place, &it.location, &journal)
                }
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

/// A kept file item, by the directory it is in.
#[derive(Debug, Clone)]
enum Place {
    /// A file in Rewind's snapshot directory.
    Snapshot(OsString),
    /// A directory `<component>.<epoch>` in the backup directory's `tmp`.
    Aside(OsString),
}

/// Rewind's snapshot directory, opened as its private directories are (`None` when absent).
fn open_snapshots(backup_path: &Path, snap_dir: &Path) -> color_eyre::Result<Option<OwnedFd>> {
    let Some(jfd) = open_private_dir(&Journal::dir_for(backup_path), false)? else {
        return Ok(None);
    };
    Ok(safefs::private_dir(
        jfd.as_fd(),
        OsStr::new("snapshots"),
        snap_dir,
        false,
    )?)
}

/// The backup directory's `tmp`, opened, when the moved-aside directory `container` in it
/// is a directory (not a link) owned by the user running Rewind, which created it `0700`.
fn aside_dir(backup_path: &Path, container: &OsStr) -> Result<Option<OwnedFd>, String> {
    let bfd = safefs::open_dir_path(backup_path)
        .map_err(|e| format!("opening {}: {e}", backup_path.display()))?;
    let tmp_shown = backup_path.join("tmp");
    let tfd = safefs::open_dir_checked(bfd.as_fd(), OsStr::new("tmp"), &tmp_shown)
        .map_err(|e| e.to_string())?;
    let shown = tmp_shown.join(container);
    match safefs::stat_at(&tfd, container) {
        Ok(Some(st)) if safefs::is_dir(&st) => {
            safefs::check_owner(&st, &shown).map_err(|e| e.to_string())?;
            safefs::open_dir_checked(tfd.as_fd(), container, &shown).map_err(|e| e.to_string())?;
            Ok(Some(tfd))
        }
        Ok(Some(_)) => Err(format!("{} is not a directory", shown.display())),
        Ok(None) => Ok(None),
        Err(e) => Err(format!("reading {}: {e}", shown.display())),
    }
}

/// Remove a kept snapshot file or moved-aside directory, journaled first, relative to its
/// opened directory and without following links.
fn remove_kept(
    backup_path: &Path,
    snap_dir: &Path,
    place: &Place,
    shown: &str,
    journal: &Journal,
) -> Result<(), String> {
    journal
        .begin(
            "cleanup.path",
            format!("remove {shown}"),
            serde_json::json!({"path": shown}),
        )
        .map_err(|e| e.to_string())?;
    let r = match place {
        Place::Snapshot(name) => match open_snapshots(backup_path, snap_dir) {
            Ok(Some(sfd)) => match safefs::stat_at(&sfd, name) {
                Ok(Some(st)) if safefs::is_file(&st) => {
                    safefs::remove_entry_at(sfd.as_fd(), name).map_err(|e| e.to_string())
                }
                Ok(Some(_)) => Err(format!("{shown} is no longer a regular file")),
                Ok(None) => Err(format!("{shown} is already gone")),
                Err(e) => Err(e.to_string()),
            },
            Ok(None) => Err(format!("{} is gone", snap_dir.display())),
            Err(e) => Err(e.to_string()),
        },
        Place::Aside(container) => match aside_dir(backup_path, container) {
            Ok(Some(tfd)) => {
                safefs::remove_entry_at(tfd.as_fd(), container).map_err(|e| e.to_string())
            }
            Ok(None) => Err(format!("{shown} is already gone")),
            Err(e) => Err(e),
        },
    };
    let _ = journal.end(
        "cleanup.path",
        if r.is_ok() { "ok" } else { "failed" },
        serde_json::json!({"error": r.as_ref().err()}),
    );
    r
}
