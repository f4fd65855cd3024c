//! `rewind salvage [--backup ID] [--dry-run]`: before the restore drops anything, write the
//! rows created since the backup (the loss report's tables) to a private directory under
//! the backup directory, as CSV with a manifest.
//!
//! `rewind salvage --import DIR [--dry-run] [--yes]`: after the restore, bring them back
//! into the restored database(s): only the columns the backup's schema has, ids kept,
//! parents first; rows that conflict or lost their parent are skipped and listed. Exit
//! code 4 when some rows cannot come back.

use std::path::PathBuf;
use std::process::ExitCode;

use color_eyre::eyre::WrapErr;
use rewind_engine::backup::catalogue::{list_backups, resolve};
use rewind_engine::detect::{detect, DetectOptions};
use rewind_engine::journal::Journal;
use rewind_engine::recovery;
use rewind_engine::restore::database::ArchiveSource;
use rewind_engine::restore::salvage::{
    self, ExportDatabase, ExportOutcome, ImportDatabase, ImportReport, SalvageError, SkipReason,
    SHOWN_SKIPPED,
};

use super::Ctx;
use crate::output::{human_bytes, print_json, Style};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The backup the restore will use (id, unique prefix or path): rows created after its
    /// backup_created_at are written. Default: the newest readable backup.
    #[arg(long, value_name = "ID", conflicts_with = "import")]
    pub backup: Option<String>,
    /// Bring back the rows of this salvage directory (the one `rewind salvage` printed)
    /// into the restored database(s).
    #[arg(long, value_name = "DIR")]
    pub import: Option<PathBuf>,
    /// Say what would be written (or imported and skipped) and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Confirm the import (it writes into the restored database).
    #[arg(long, requires = "import")]
    pub yes: bool,
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

    if let Some(dir) = &args.import {
        if !args.dry_run && !args.yes {
            return Err(SalvageError::Refused(format!(
                "the import writes into the restored database: see what comes back with `rewind salvage --import {} --dry-run`, then run it with --yes. Nothing was imported",
                dir.display()
            ))
            .into());
        }
        let _lock = if args.dry_run {
            None
        } else {
            Some(ctx.host_lock()?)
        };
        let journal = if args.dry_run {
            None
        } else {
            Some(Journal::open_in(&Journal::dir_for(&backup_path))?)
        };
        let dbs: Vec<ImportDatabase<'_>> = jobs
            .iter()
            .map(|j| ImportDatabase {
                connection: j.connection.to_string(),
                spec: &j.spec,
            })
            .collect();
        let report = salvage::import(dir, &dbs, args.dry_run, journal.as_ref())?;
        if ctx.json() {
            print_json(&report)?;
        } else {
            print_import(ctx.style, &report);
        }
        return Ok(crate::exit::code(if report.not_back() > 0 {
            crate::exit::ACT
        } else {
            crate::exit::DONE
        }));
    }

    let installed = inst.version.as_ref();
    let backup = match &args.backup {
        Some(id) => resolve(&ctx.root, &inst.backup_path, id, installed, false)
            .wrap_err_with(|| format!("finding backup `{id}`"))?,
        None => list_backups(&backup_path, installed)
            .ok()
            .and_then(|v| v.into_iter().find(|b| b.error.is_none()))
            .ok_or_else(|| {
                SalvageError::Refused(format!(
                    "no readable backup in {}: name the one the restore will use with --backup ID",
                    backup_path.display()
                ))
            })?,
    };
    let Some(at) = backup.backup_created_at() else {
        return Err(SalvageError::Refused(format!(
            "backup {} has no readable backup_created_at in backup_information.yml: what was created since cannot be told. Nothing was written",
            backup.id
        ))
        .into());
    };
    let db_version = backup
        .information
        .as_ref()
        .and_then(|i| i.db_version.clone());
    let source = ArchiveSource::new(&backup);
    let reports = salvage::loss_reports(&source, &jobs, at, db_version.as_deref())?;
    let dbs: Vec<ExportDatabase<'_>> = reports
        .iter()
        .map(|(i, r)| ExportDatabase {
            connection: jobs[*i].connection.to_string(),
            spec: &jobs[*i].spec,
            report: r,
        })
        .collect();
    let journal = if args.dry_run {
        None
    } else {
        Some(Journal::open_in(&Journal::dir_for(&backup_path))?)
    };
    let out = salvage::export(
        &backup_path,
        &backup.id,
        at,
        &dbs,
        args.dry_run,
        journal.as_ref(),
    )?;
    if ctx.json() {
        print_json(&out)?;
    } else {
        print_export(ctx.style, &out);
    }
    Ok(crate::exit::code(crate::exit::DONE))
}

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn print_export(s: Style, out: &ExportOutcome) {
    let m = &out.manifest;
    println!(
        "{}",
        s.bold(&format!(
            "Salvage: rows created since backup {} ({} UTC)",
            m.backup_id,
            m.backup_created_at.format("%Y-%m-%d %H:%M:%S")
        ))
    );
    if m.rows() == 0 {
        println!("  Nothing was created since the backup: nothing to salvage.");
    }
    for d in &m.databases {
        if d.tables.is_empty() && d.notes.is_empty() {
            continue;
        }
        println!("  {} ({}):", d.database, d.connection);
        for t in &d.tables {
            let size = if out.dry_run {
                String::new()
            } else {
                format!("  {}", human_bytes(t.bytes))
            };
            println!(
                "    {:<40} {:>9} row{}{size}",
                t.table,
                t.rows,
                plural(t.rows)
            );
        }
        for n in &d.notes {
            println!("    {}", s.dim(n));
        }
    }
    if out.dry_run {
        if m.rows() > 0 {
            println!(
                "Dry run: {} row{} in {} tables would be written; nothing was written.",
                m.rows(),
                plural(m.rows()),
                m.tables()
            );
        }
        return;
    }
    if let (Some(dir), Some(cmd)) = (&out.dir, &out.import_command) {
        println!(
            "Written: {} row{} in {} tables to {}",
            m.rows(),
            plural(m.rows()),
            m.tables(),
            dir.display()
        );
        println!("After the restore, bring them back with:");
        println!("  {cmd} --dry-run");
        println!("  {cmd} --yes");
    }
}

fn print_import(s: Style, r: &ImportReport) {
    println!(
        "{}",
        s.bold(&format!(
            "{}Salvage import from {} (backup {})",
            if r.dry_run { "Dry run: " } else { "" },
            r.dir.display(),
            r.backup_id
        ))
    );
    for d in &r.databases {
        println!("  {} ({}):", d.database, d.connection);
        for t in &d.tables {
            println!(
                "    {:<40} {:>7} of {:>7} back",
                t.table, t.imported, t.rows
            );
            if let Some(e) = &t.error {
                println!("      {}", s.bad(&format!("not imported: {e}")));
            }
            if !t.dropped_columns.is_empty() {
                println!(
                    "      {}",
                    s.dim(&format!(
                        "left out (not in the backup's schema): {}",
                        t.dropped_columns.join(", ")
                    ))
                );
            }
            let listed: Vec<_> = t.skipped.iter().filter(|r| !r.same_id).collect();
            for row in listed.iter().take(SHOWN_SKIPPED) {
                let why = match row.reason {
                    SkipReason::Conflict => "conflict",
                    SkipReason::Orphan => "no parent",
                    SkipReason::Failed => "failed",
                };
                println!("      skipped {} ({why}): {}", row.key, row.detail);
            }
            if listed.len() > SHOWN_SKIPPED {
                println!(
                    "      ... and {} more (see the report file)",
                    listed.len() - SHOWN_SKIPPED
                );
            }
            let same = t.skipped.iter().filter(|r| r.same_id).count() as u64;
            if same > 0 {
                println!(
                    "      skipped {same} row{} whose id the restored database already has",
                    plural(same)
                );
            }
            if t.skipped_unlisted > 0 && t.error.is_none() {
                println!(
                    "      skipped {} row{} (no primary key to name them by)",
                    t.skipped_unlisted,
                    plural(t.skipped_unlisted)
                );
            }
            for q in &t.sequences {
                println!("      {}", s.dim(&format!("sequence {q}")));
            }
        }
    }
    let verb = if r.dry_run { "would come back" } else { "back" };
    let line = format!(
        "{} of {} rows {verb}; {} cannot come back",
        r.imported(),
        r.rows(),
        r.not_back()
    );
    println!(
        "{}",
        if r.not_back() > 0 {
            s.warn(&line)
        } else {
            s.ok(&line)
        }
    );
    if let Some(f) = &r.report_file {
        println!("Every skipped row, with its key: {}", f.display());
    }
    if r.dry_run {
        println!("Nothing was imported (dry run). Run it with --yes to import.");
    }
    if r.not_back() > 0 {
        println!("Rows that cannot come back stay in the salvage files (and the safety snapshot).");
    }
}
