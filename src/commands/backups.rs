//! `rewind backups`: the backups in the backup directory, newest first. Reads tar headers
//! and manifests only; writes nothing.

use std::process::ExitCode;

use color_eyre::eyre::WrapErr;
use rewind_engine::backup::catalogue::{list_backups, BackupEntry};
use rewind_engine::detect::{detect, DetectOptions};
use serde::Serialize;

use super::Ctx;
use crate::output::{human_bytes, print_json};

#[derive(Debug, clap::Args)]
pub struct Args {}

/// One line of the listing (the `--json` form).
#[derive(Debug, Serialize)]
struct Row<'a> {
    id: &'a str,
    path: String,
    kind: rewind_engine::backup::BackupKind,
    created_at: Option<String>,
    version: Option<&'a str>,
    edition: Option<rewind_engine::version::Edition>,
    size: u64,
    databases: Vec<&'a str>,
    components: Vec<&'a str>,
    repositories: bool,
    skipped: &'a [String],
    version_matches: Option<bool>,
    error: Option<&'a str>,
}

#[derive(Debug, Serialize)]
struct Listing<'a> {
    backup_dir: String,
    installed_version: Option<String>,
    backups: Vec<Row<'a>>,
}

fn row<'a>(ctx: &Ctx, b: &'a BackupEntry) -> Row<'a> {
    Row {
        id: &b.id,
        path: ctx.root.host_path(&b.path).display().to_string(),
        kind: b.kind,
        created_at: b.created_at.map(|t| t.to_rfc3339()),
        version: b.version_text.as_deref(),
        edition: b.edition,
        size: b.size,
        databases: b.databases.iter().map(|d| d.name.as_str()).collect(),
        components: b.components.iter().map(|c| c.name.as_str()).collect(),
        repositories: b.repositories,
        skipped: &b.skipped,
        version_matches: b.version_matches,
        error: b.error.as_deref(),
    }
}

pub fn run(ctx: &Ctx, _args: Args) -> color_eyre::Result<ExitCode> {
    let inst = detect(
        &ctx.root,
        &DetectOptions {
            backup_dir: ctx.global.backup_dir.clone(),
            env: None,
        },
    )
    .wrap_err("detecting the GitLab installation")?;
    let dir = ctx.root.join(&inst.backup_path);
    let backups = list_backups(&dir, inst.version.as_ref())?;
    let broken = backups.iter().filter(|b| b.error.is_some()).count();
    if ctx.json() {
        print_json(&Listing {
            backup_dir: inst.backup_path.display().to_string(),
            installed_version: inst.version.as_ref().map(|v| v.to_string()),
            backups: backups.iter().map(|b| row(ctx, b)).collect(),
        })?;
    } else {
        print_table(ctx, &inst, &backups);
    }
    if broken > 0 {
        eprintln!(
            "rewind: {broken} of {} backups in {} could not be read (see above); `rewind inspect <ID>` shows why",
            backups.len(),
            inst.backup_path.display()
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_table(ctx: &Ctx, inst: &rewind_engine::detect::Installation, backups: &[BackupEntry]) {
    let s = ctx.style;
    println!(
        "{} in {} (installed: {})",
        s.bold("Backups"),
        inst.backup_path.display(),
        inst.version
            .as_ref()
            .map(|v| v.to_string())
            .unwrap_or_else(|| "unknown".into())
    );
    let header = [
        "ID",
        "CREATED (UTC)",
        "VERSION",
        "SIZE",
        "CONTENTS",
        "SKIPPED",
        "MATCH",
    ];
    let rows: Vec<[String; 7]> = backups
        .iter()
        .map(|b| {
            let mut contents: Vec<String> = b
                .databases
                .iter()
                .map(|d| {
                    if d.name == "main" {
                        "db".to_string()
                    } else {
                        format!("db:{}", d.name)
                    }
                })
                .collect();
            contents.extend(b.components.iter().map(|c| c.name.clone()));
            if b.repositories {
                contents.push("repositories".into());
            }
            [
                b.id.clone(),
                b.created_at
                    .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                    .unwrap_or_else(|| "?".into()),
                b.version_text.clone().unwrap_or_else(|| "?".into()),
                human_bytes(b.size),
                if b.error.is_some() {
                    "UNREADABLE".into()
                } else {
                    contents.join(",")
                },
                if b.skipped.is_empty() {
                    "-".into()
                } else {
                    b.skipped.join(",")
                },
                match b.version_matches {
                    Some(true) => "yes".into(),
                    Some(false) => "no".into(),
                    None => "?".into(),
                },
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r.iter()) {
            *w = (*w).max(c.chars().count());
        }
    }
    let pad = |cells: &[String]| -> Vec<String> {
        cells
            .iter()
            .zip(widths.iter())
            .map(|(c, w)| format!("{c:<w$}"))
            .collect()
    };
    let print = |cells: Vec<String>| println!("  {}", cells.join("  ").trim_end());
    let head: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    print(pad(&head).iter().map(|c| s.bold(c)).collect());
    for (r, b) in rows.iter().zip(backups) {
        let mut cells = pad(r);
        let last = cells.len() - 1;
        cells[last] = match b.version_matches {
            Some(true) => s.ok(cells[last].trim_end()),
            Some(false) => s.warn(cells[last].trim_end()),
            None => cells[last].trim_end().to_string(),
        };
        print(cells);
    }
    for b in backups {
        if let Some(e) = &b.error {
            println!();
            println!("  {} {}: {}", s.bad("unreadable"), b.id, e);
        }
    }
    if backups.iter().any(|b| b.version_matches == Some(false)) {
        println!();
        println!(
            "  GitLab restores a backup only on the exact version that made it; `MATCH no` backups need the package rolled back to their version first."
        );
    }
}
