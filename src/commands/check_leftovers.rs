//! `rewind check-leftovers [--backup ID]`: before the next upgrade, the tables, columns,
//! indexes, schemas (and other objects) in the live database that the backup's dump does
//! not create, and the schema_migrations versions newer than the backup's db_version, with
//! the statements that would drop them and advice. Reads only; exits 0 whether or not something is left over (see `--json`'s
//! `databases[].items`).

use std::process::ExitCode;

use color_eyre::eyre::{eyre, WrapErr};
use rewind_engine::backup::catalogue::{list_backups, resolve};
use rewind_engine::detect::detect;
use rewind_engine::migrate::check::check_backup;

use super::mark_migration::{connections, detect_options};
use super::Ctx;
use crate::output::print_json;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Backup id (or unique prefix) in the backup directory, or a backup's path. Default:
    /// the newest readable backup.
    #[arg(long, value_name = "ID|PATH")]
    pub backup: Option<String>,
}

pub fn run(ctx: &Ctx, args: Args) -> color_eyre::Result<ExitCode> {
    let inst =
        detect(&ctx.root, &detect_options(ctx)).wrap_err("detecting the GitLab installation")?;
    let installed = inst.version.as_ref();
    let entry = match &args.backup {
        Some(id) => resolve(&ctx.root, &inst.backup_path, id, installed, false)?,
        None => {
            let dir = ctx.root.join(&inst.backup_path);
            list_backups(&dir, installed)?
                .into_iter()
                .find(|b| b.error.is_none())
                .ok_or_else(|| {
                    eyre!(
                        "no readable backup in {}; pass --backup ID|PATH",
                        inst.backup_path.display()
                    )
                })?
        }
    };
    let conns = connections(ctx, "all")?;
    let report = check_backup(&entry, &conns)?;
    // Leftovers found: nothing failed, but they need acting on before the next upgrade.
    let code = if report.databases.iter().all(|d| d.is_clean()) {
        crate::exit::code(crate::exit::DONE)
    } else {
        crate::exit::code(crate::exit::ACT)
    };
    if ctx.json() {
        print_json(&report)?;
        return Ok(code);
    }
    let s = ctx.style;
    println!(
        "{} {} (db_version {})",
        s.bold("Backup"),
        report.backup_id,
        report.db_version.as_deref().unwrap_or("unknown")
    );
    for d in &report.databases {
        println!();
        println!(
            "{} {} ({}), compared with {} ({} objects)",
            s.bold("Database"),
            d.database,
            d.dbname,
            d.member,
            d.dump_objects
        );
        if d.is_clean() {
            println!("  {}", s.ok("nothing left over"));
            continue;
        }
        for i in &d.items {
            let survives = if i.removed_by_drop {
                String::new()
            } else {
                format!(" {}", s.warn("(survives the drop step)"))
            };
            match &i.drop_sql {
                Some(sql) => println!(
                    "  {:<10} {}{survives}\n             {}",
                    i.kind,
                    i.name,
                    s.dim(sql)
                ),
                None => println!(
                    "  {:<10} {} (newer than the backup's db_version)",
                    i.kind, i.name
                ),
            }
        }
    }
    for sk in &report.skipped {
        println!("  skipped: {sk}");
    }
    println!();
    for a in &report.advice {
        println!("{a}");
    }
    Ok(code)
}
