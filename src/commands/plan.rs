//! `rewind plan [--backup ID]`: the whole recovery plan for this host, in order, with the
//! exact commands: stop services, roll back, snapshot and drop, restore (databases,
//! repositories, files), reconfigure, start, check. Prints only; changes nothing.
//!
//! The plan is the engine's ([`recovery::plan::plan`]); `rewind restore --dry-run` prints
//! the same plan with [`print`], so the two cannot disagree.

use std::process::ExitCode;

use color_eyre::eyre::WrapErr;
use rewind_engine::backup::catalogue::{self, BackupEntry};
use rewind_engine::detect::{detect, DetectOptions};
use rewind_engine::recovery::{
    self,
    plan::{PlanOptions, PlanRequest, RecoveryPlan},
    steps::Undo,
};
use rewind_engine::restore::plan::DatabasePlan;

use super::Ctx;
use crate::output::{human_bytes, print_json};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The backup to plan for (id or path); default: the newest readable one.
    #[arg(long, value_name = "ID")]
    pub backup: Option<String>,
    /// Components not to restore (comma-separated: uploads,builds,...).
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    pub skip: Vec<String>,
    /// gitaly-backup's -parallel, as `rewind restore --repositories-parallel`.
    #[arg(long, value_name = "N")]
    pub repositories_parallel: Option<u32>,
    /// gitaly-backup's -parallel-storage, as `rewind restore --repositories-parallel-storage`.
    #[arg(long, value_name = "N")]
    pub repositories_parallel_storage: Option<u32>,
    /// Plan the in-place strategy (snapshot, drop, load), as `rewind restore --in-place`.
    #[arg(long)]
    pub in_place: bool,
}

pub fn run(ctx: &Ctx, args: Args) -> color_eyre::Result<ExitCode> {
    recovery::validate_skip(&args.skip)?;
    let root = &ctx.root;
    let inst = detect(
        root,
        &DetectOptions {
            backup_dir: ctx.global.backup_dir.clone(),
            env: None,
        },
    )
    .wrap_err("detecting the GitLab installation")?;
    let backup: Option<BackupEntry> = match &args.backup {
        Some(id) => Some(
            catalogue::resolve(root, &inst.backup_path, id, inst.version.as_ref(), false)
                .wrap_err("finding the backup")?,
        ),
        None => catalogue::list_backups(&root.join(&inst.backup_path), inst.version.as_ref())
            .ok()
            .and_then(|l| l.into_iter().find(|b| b.error.is_none())),
    };
    // The plan is followed with the confirmations its restore command gives.
    let plan = recovery::plan::plan(&PlanRequest {
        root,
        installation: &inst,
        backup: backup.as_ref(),
        options: PlanOptions {
            confirm_drop: recovery::databases_for(root, &inst, ctx.global.database_url.as_deref())
                .map(|jobs| jobs.into_iter().map(|j| j.spec.dbname).collect())
                .unwrap_or_default(),
            confirm_files: true,
            confirm_repositories: true,
            snapshot: true,
            jobs: default_jobs(),
            skip: args.skip.clone(),
            in_place: args.in_place,
            repositories_parallel: args.repositories_parallel,
            repositories_parallel_storage: args.repositories_parallel_storage,
            database_url: ctx.global.database_url.clone(),
            ..Default::default()
        },
    });
    if ctx.json() {
        print_json(&plan)?;
    } else {
        print(ctx, &plan);
        println!();
        println!("This only prints. Nothing was changed.");
    }
    // Something must be fixed before the plan can be followed: act on it.
    Ok(if plan.followable() {
        ExitCode::SUCCESS
    } else {
        crate::exit::code(crate::exit::ACT)
    })
}

/// Loader connections by default: the number of CPUs.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Print the plan: the strategy, every step in order with what it does and its commands,
/// the per-database detail (drop list, loss report), the components and the refusals.
/// `rewind plan` and `rewind restore --dry-run` both print with this.
pub fn print(ctx: &Ctx, plan: &RecoveryPlan) {
    let s = ctx.style;
    println!(
        "{}",
        s.bold(&format!(
            "Recovery plan: GitLab {} installed, backup {} ({})",
            plan.installed.as_deref().unwrap_or("unknown"),
            plan.backup.as_deref().unwrap_or("none found"),
            plan.backup_version.as_deref().unwrap_or("version unknown"),
        ))
    );
    if let Some(d) = &plan.strategy {
        println!("{}", s.bold(&format!("Strategy: {}", d.strategy.label())));
        for r in &d.reasons {
            println!("  {r}");
        }
    }
    println!("  jobs:       {}", plan.jobs);
    println!(
        "  snapshot:   {}",
        if plan.snapshot {
            "yes (pg_dump -Fc, 0600)"
        } else {
            "NO (--no-snapshot)"
        }
    );
    if let Some(j) = &plan.journal {
        println!("  journal:    {}", j.display());
    }
    for (i, st) in plan.steps.iter().enumerate() {
        println!();
        let r = st.step;
        let head = format!("{:>2}. {}", i + 1, r.title);
        match &st.why_not {
            Some(w) if !st.runs => {
                println!("{} {}", s.bold(&head), s.dim(&format!("(not run: {w})")))
            }
            Some(w) => println!("{} {}", s.bold(&head), s.dim(&format!("({w})"))),
            None => println!("{}", s.bold(&head)),
        }
        println!(
            "    {}",
            s.dim(&format!(
                "GitLab: {}; changes: {:?}; undo: {}",
                r.gitlab,
                r.changes,
                match r.undo {
                    Undo::NotNeeded => "nothing to undo",
                    Undo::Inverse => "by the inverse step",
                    Undo::FromSnapshot => "from the safety snapshot",
                    Undo::MovedAside => "move the kept contents back",
                    Undo::No => "cannot be undone",
                }
            ))
        );
        for d in &st.does {
            println!("    {d}");
        }
        for c in &st.commands {
            println!("    $ {c}");
        }
    }
    for db in &plan.databases {
        print_database(ctx, db);
    }
    if !plan.components.is_empty() {
        println!();
        println!("{}", s.bold("Components"));
        for c in &plan.components {
            println!("  {:<16} {}", c.name, c.status);
        }
    }
    println!();
    for w in &plan.warnings {
        println!("{}", s.warn(&format!("note: {w}")));
    }
    if !plan.refusals.is_empty() {
        println!();
        println!("{}", s.warn("As it stands this restore would be refused:"));
        for r in &plan.refusals {
            println!(
                "  {} {}",
                s.bad(&format!("{}:", recovery::steps::step(r.step).title)),
                r.message
            );
            if let Some(h) = &r.hint {
                println!("    {h}");
            }
        }
    }
}

fn print_database(ctx: &Ctx, db: &DatabasePlan) {
    let s = ctx.style;
    println!();
    println!(
        "{}",
        s.bold(&format!(
            "Database {} ({} on {})",
            db.connection, db.database, db.target
        ))
    );
    println!("  member:   {}", db.member);
    println!("  status:   {}", db.status);
    if let Some(p) = &db.snapshot_path {
        println!("  snapshot: {}", p.display());
    }
    if !db.phases.is_empty() {
        println!("  phases:   {}", db.phases.join(" -> "));
    }
    for w in &db.privilege_warnings {
        println!("  {} {w}", s.warn("note:"));
    }
    print_loss(ctx, db);
    if let Some(c) = &db.catalog_cost {
        println!(
            "  catalogue pass: {} read in {:.1} s",
            human_bytes(c.bytes),
            c.seconds
        );
    }
    if !db.drop.is_empty() {
        println!("  drop (one transaction; * = not in the backup, added by the failed upgrade):");
        for d in &db.drop {
            let mark = if d.leftover { s.warn("*") } else { " ".into() };
            let size = match (d.rows, d.bytes) {
                (Some(r), Some(b)) => format!("  ~{r} rows, {}", human_bytes(b)),
                _ => String::new(),
            };
            println!("   {mark} {:<24} {}{}", d.class, d.object, s.dim(&size));
        }
    }
    if let Some(l) = &db.leftovers {
        let surviving: Vec<_> = l.surviving().collect();
        if !surviving.is_empty() {
            println!(
                "  {}",
                s.warn("leftovers GitLab's drop does not remove (they survive the restore):")
            );
            for x in surviving {
                println!("    {} {}", x.kind.label(), x.display_name());
            }
        }
        for x in l.items.iter().filter(|x| {
            matches!(
                x.kind,
                rewind_engine::restore::leftovers::LeftoverKind::Column
                    | rewind_engine::restore::leftovers::LeftoverKind::Migration
            )
        }) {
            println!(
                "    * {} {} (removed by the restore)",
                x.kind.label(),
                x.display_name()
            );
        }
    }
}

/// What the restore throws away: written since the backup, read-only.
fn print_loss(ctx: &Ctx, db: &rewind_engine::restore::plan::DatabasePlan) {
    let s = ctx.style;
    if let Some(e) = &db.since_backup_error {
        println!("  {} {e}", s.warn("since the backup:"));
    }
    let Some(r) = &db.since_backup else {
        return;
    };
    println!(
        "  {}",
        s.warn(&format!("{} (lost by the restore)", r.summary()))
    );
    let count = |n: Option<u64>, est: bool| match n {
        Some(n) if est => format!("~{n}"),
        Some(n) => n.to_string(),
        None => "-".into(),
    };
    if !r.tables.is_empty() {
        println!(
            "    {:<32} {:>10} {:>10}   (tables checked: {})",
            "table", "created", "updated", r.tables_checked
        );
        for t in &r.tables {
            let mut tail = Vec::new();
            if t.estimate {
                tail.push("estimate".to_string());
            }
            tail.extend(t.notes.iter().cloned());
            println!(
                "    {:<32} {:>10} {:>10}   {}",
                t.table,
                count(t.created, t.estimate),
                count(t.updated, t.estimate),
                s.dim(&tail.join("; "))
            );
        }
    }
    if !r.new_tables.is_empty() {
        println!("    tables the failed upgrade added:");
        for t in &r.new_tables {
            let mut tail = Vec::new();
            if t.estimate {
                tail.push("estimate".to_string());
            }
            tail.extend(t.notes.iter().cloned());
            println!(
                "      {:<30} {:>10} rows   {}",
                t.table,
                count(t.rows, t.estimate),
                s.dim(&tail.join("; "))
            );
        }
    }
    if let Some(n) = r.pushed_projects {
        let mut line = format!("    projects pushed to: {n}");
        if !r.pushed_project_paths.is_empty() {
            line.push_str(&format!(" ({}", r.pushed_project_paths.join(", ")));
            if (r.pushed_project_paths.len() as u64) < n {
                line.push_str(", ...");
            }
            line.push(')');
        }
        println!("{line}");
    }
    for n in &r.notes {
        println!("    {}", s.dim(&format!("note: {n}")));
    }
}
