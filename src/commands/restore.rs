//! `rewind restore`: restore the database(s) of a backup, GitLab's way but guarded, faster
//! and visible: preconditions, safety snapshot, drop of all tables (one transaction), load
//! streamed from inside the archive, verification. `--dry-run` prints the plan only.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Instant;

use color_eyre::eyre::{eyre, WrapErr};
use rewind_engine::backup::catalogue::resolve;
use rewind_engine::detect::{detect, DetectOptions};
use rewind_engine::journal::Journal;
use rewind_engine::progress::{Cancel, Event, Level, Phase, Sink};
use rewind_engine::recovery::plan::{PlanOptions, PlanRequest};
use rewind_engine::recovery::{self, RestoreRequest};
use rewind_engine::restore::database::DatabaseOutcome;
use rewind_engine::restore::verify::Status;
use serde::Serialize;

use super::Ctx;
use crate::output::{human_bytes, print_json};

/// `--reuse-snapshot DB=PATH`.
fn parse_reuse(s: &str) -> Result<(String, PathBuf), String> {
    match s.split_once('=') {
        Some((db, path)) if !db.is_empty() && !path.is_empty() => {
            Ok((db.to_string(), PathBuf::from(path)))
        }
        _ => Err(format!(
            "`{s}` is not DB=PATH (the database's name, `=`, the snapshot file `rewind rollback` printed)"
        )),
    }
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The backup: its id (`1713867342_2024_04_23_16.10.3-ee`, or a unique prefix) in the
    /// backup directory, or a path to a `_gitlab_backup.tar` or an unpacked backup.
    #[arg(long, value_name = "ID")]
    pub backup: String,
    /// Confirm that every table of this database may be dropped: must equal the database's
    /// name (repeat for a decomposed installation's ci database).
    #[arg(long, value_name = "DBNAME")]
    pub confirm_drop: Vec<String>,
    /// Connections used to load table data (default: number of CPUs).
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Do not take the safety snapshot (pg_dump -Fc) before dropping. There is then no
    /// way back but another backup.
    #[arg(long)]
    pub no_snapshot: bool,
    /// Use this safety snapshot of database DB, taken earlier in this recovery (by
    /// `rewind rollback` before the package step), instead of taking another: `DB=PATH`,
    /// repeat per database. It must be a regular, non-empty file of the user running Rewind.
    #[arg(long, value_name = "DB=PATH", value_parser = parse_reuse)]
    pub reuse_snapshot: Vec<(String, PathBuf)>,
    /// Confirm replacing the file components (uploads, builds, artifacts, lfs, ...): their
    /// directories' previous contents are moved aside to `<backup_path>/tmp`.
    #[arg(long)]
    pub confirm_files: bool,
    /// Confirm restoring the repositories with gitaly-backup, which deletes every
    /// repository on the storages first (-remove-all-repositories), including what was
    /// pushed since the backup.
    #[arg(long)]
    pub confirm_repositories: bool,
    /// Before gitaly-backup replaces anything, bundle the repositories pushed to since the
    /// backup (`git bundle create --all`) into `<backup_path>/rewind-pushed-<id>.*` (0700,
    /// files 0600).
    #[arg(long)]
    pub bundle_pushed: bool,
    /// gitaly-backup's -parallel: repositories restored at once.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub repositories_parallel: Option<u32>,
    /// gitaly-backup's -parallel-storage: repositories restored at once per storage.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub repositories_parallel_storage: Option<u32>,
    /// Components not to restore (comma-separated: db,repositories,uploads,...).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub skip: Vec<String>,
    /// Print the plan (snapshot path, what is dropped with leftovers marked, phases, jobs)
    /// and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Restore a backup whose GitLab version differs from the installed one.
    #[arg(long)]
    pub allow_version_mismatch: bool,
    /// Accept SQL errors during the load as GitLab does (it only prints them).
    #[arg(long)]
    pub continue_on_error: bool,
    /// Restore in place (GitLab's way: safety snapshot, drop every table, load) even where
    /// the default, beside-and-swap, can run.
    #[arg(long)]
    pub in_place: bool,
    /// The administrator that creates and renames databases when the owner role has no
    /// CREATEDB: `psql` runs as OS user OSUSER and logs in as ROLE (default: Omnibus's
    /// `gitlab-psql`, both).
    #[arg(long, value_name = "OSUSER[:ROLE]")]
    pub db_admin: Option<String>,
    /// With --dry-run: read the main database's plan and loss report (what was written
    /// since the backup) from this database instead, e.g. the failed upgrade's database
    /// kept by a beside restore (`<name>_before_rewind_<ts>`).
    #[arg(long, value_name = "DBNAME", requires = "dry_run")]
    pub loss_from: Option<String>,
}

/// The `--json` document of a restore.
#[derive(Debug, Serialize)]
struct Report<'a> {
    backup: &'a str,
    ok: bool,
    databases: &'a [DatabaseOutcome],
    components: Vec<rewind_engine::restore::plan::ComponentPlan>,
    /// Loader jobs used (fitted to the server's free connections).
    jobs: usize,
    notes: &'a [String],
    repositories: Option<&'a recovery::RepositoriesOutcome>,
    /// The strategy that ran and why.
    strategy: Option<&'a rewind_engine::restore::beside::StrategyDecision>,
    /// Databases holding the failed upgrade's data (beside strategy).
    kept_databases: &'a [String],
    /// Interrupted swaps this run completed.
    resolved: &'a [String],
    journal: PathBuf,
}

/// Progress on stderr: a live line on a terminal, plain lines otherwise, nothing with
/// `--json` but warnings and errors.
struct CliSink {
    tty: bool,
    quiet: bool,
    state: Mutex<LiveState>,
}

struct LiveState {
    phase: Option<Phase>,
    started: Instant,
    line_open: bool,
    /// What each connection of the running phase works on (`Event::Worker`).
    workers: Vec<Option<String>>,
    /// The amount part of the last progress line (redrawn when a worker changes).
    amount: String,
}

/// The work in flight per connection, compactly: `1: INDEX public.a  2: idle`.
fn in_flight(workers: &[Option<String>]) -> String {
    workers
        .iter()
        .enumerate()
        .map(|(i, w)| format!("{}: {}", i + 1, w.as_deref().unwrap_or("idle")))
        .collect::<Vec<_>>()
        .join("  ")
}

/// A live line cut to 79 columns, so that `\r` redraws it in place at 80 columns.
fn live_line(mut line: String) -> String {
    line.truncate(line.char_indices().nth(79).map_or(line.len(), |(i, _)| i));
    line
}

impl CliSink {
    fn new(quiet: bool) -> Self {
        CliSink {
            tty: std::io::stderr().is_terminal(),
            quiet,
            state: Mutex::new(LiveState {
                phase: None,
                started: Instant::now(),
                line_open: false,
                workers: Vec::new(),
                amount: String::new(),
            }),
        }
    }
}

fn rate_eta(done: u64, total: Option<u64>, secs: f64) -> String {
    if secs < 0.5 || done == 0 {
        return String::new();
    }
    let rate = done as f64 / secs;
    let mut s = format!("  {:.1} MB/s", rate / 1e6);
    if let Some(t) = total.filter(|t| *t > done) {
        let eta = (t - done) as f64 / rate;
        s.push_str(&format!("  ETA {}s", eta.round() as u64));
    }
    s
}

impl Sink for CliSink {
    fn event(&self, event: Event) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut err = std::io::stderr().lock();
        let close = |st: &mut LiveState, err: &mut std::io::StderrLock<'_>| {
            if st.line_open {
                let _ = writeln!(err);
                st.line_open = false;
            }
        };
        match event {
            Event::PhaseStarted { phase, .. } => {
                st.phase = Some(phase);
                st.started = Instant::now();
                st.workers.clear();
                st.amount.clear();
                if !self.quiet {
                    close(&mut st, &mut err);
                    let _ = writeln!(err, "==> {}", phase.label());
                }
            }
            Event::PhaseFinished { phase, ok } => {
                if !self.quiet {
                    close(&mut st, &mut err);
                    let secs = st.started.elapsed().as_secs_f64();
                    let _ = writeln!(
                        err,
                        "    {} {} ({secs:.1} s)",
                        phase.label(),
                        if ok { "done" } else { "FAILED" }
                    );
                }
            }
            Event::Progress {
                phase,
                done,
                total,
                current,
                rows,
            } => {
                if self.quiet || !self.tty {
                    return;
                }
                let secs = st.started.elapsed().as_secs_f64();
                let amount = match phase {
                    Phase::Data | Phase::Snapshot => match total {
                        Some(t) if t > 0 => format!(
                            "{} / {} ({}%)",
                            human_bytes(done),
                            human_bytes(t),
                            done * 100 / t
                        ),
                        _ => human_bytes(done),
                    },
                    _ => match total {
                        Some(t) => format!("{done}/{t}"),
                        None => done.to_string(),
                    },
                };
                let speed = if matches!(phase, Phase::Data | Phase::Snapshot) {
                    rate_eta(done, total, secs)
                } else {
                    String::new()
                };
                let cur = if st.workers.iter().any(Option::is_some) {
                    in_flight(&st.workers)
                } else {
                    current.unwrap_or_default()
                };
                let rows = rows.map(|r| format!(" {r} rows")).unwrap_or_default();
                let line = live_line(format!("    {amount}{speed}  {cur}{rows}"));
                let _ = write!(err, "\r\x1b[2K{line}");
                st.amount = amount;
                st.line_open = true;
            }
            Event::Worker { slot, phase, what } => {
                if st.phase != Some(phase) {
                    return;
                }
                if st.workers.len() <= slot {
                    st.workers.resize(slot + 1, None);
                }
                st.workers[slot] = what;
                if self.quiet || !self.tty {
                    return;
                }
                let line = live_line(format!("    {}  {}", st.amount, in_flight(&st.workers)));
                let _ = write!(err, "\r\x1b[2K{line}");
                st.line_open = true;
            }
            Event::Log { level, message } => {
                if self.quiet && level == Level::Info {
                    return;
                }
                close(&mut st, &mut err);
                let tag = match level {
                    Level::Info => "",
                    Level::Warn => "warning: ",
                    Level::Error => "error: ",
                };
                let _ = writeln!(err, "    {tag}{message}");
            }
            Event::Output { line } => {
                if !self.quiet {
                    close(&mut st, &mut err);
                    let _ = writeln!(err, "    | {line}");
                }
            }
            // Told by the engine's own lines (after the journal recorded them).
            Event::SnapshotWritten { .. } | Event::Dropped { .. } | Event::TableLoaded { .. } => {}
        }
    }
}

pub fn run(ctx: &Ctx, args: Args) -> color_eyre::Result<ExitCode> {
    // A typo in --skip must not restore what was meant to be skipped.
    recovery::validate_skip(&args.skip)?;
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
        &args.backup,
        inst.version.as_ref(),
        false,
    )
    .wrap_err_with(|| format!("finding backup `{}`", args.backup))?;
    // Databases: database.yml (main, then ci when it has its own database, with GitLab's
    // GITLAB_BACKUP_* overrides applied by detection); --database-url replaces main.
    let jobs = recovery::databases_for(&ctx.root, &inst, ctx.global.database_url.as_deref())?;
    let jobs_n = args.jobs.unwrap_or_else(super::plan::default_jobs).max(1);

    if args.dry_run {
        // The same plan `rewind plan` prints, with this command's flags.
        let plan = recovery::plan::plan(&PlanRequest {
            root: &ctx.root,
            installation: &inst,
            backup: Some(&backup),
            options: PlanOptions {
                confirm_drop: args.confirm_drop.clone(),
                confirm_files: args.confirm_files,
                confirm_repositories: args.confirm_repositories,
                snapshot: !args.no_snapshot,
                reuse_snapshots: args.reuse_snapshot.iter().cloned().collect(),
                jobs: jobs_n,
                skip: args.skip.clone(),
                continue_on_error: args.continue_on_error,
                allow_version_mismatch: args.allow_version_mismatch,
                in_place: args.in_place,
                db_admin: args.db_admin.clone(),
                repositories_parallel: args.repositories_parallel,
                repositories_parallel_storage: args.repositories_parallel_storage,
                database_url: ctx.global.database_url.clone(),
                loss_from: args.loss_from.clone(),
            },
        });
        if ctx.json() {
            print_json(&plan)?;
        } else {
            super::plan::print(ctx, &plan);
            println!();
            println!("Dry run: nothing was changed.");
        }
        // A dry run that would be refused: nothing failed, but something needs acting on.
        return Ok(if plan.runnable() {
            ExitCode::SUCCESS
        } else {
            crate::exit::code(crate::exit::ACT)
        });
    }

    let backup_path = ctx.root.join(&inst.backup_path);
    let journal = Journal::open_in(&Journal::dir_for(&backup_path))?;
    let sink = CliSink::new(ctx.json());
    let cancel = Cancel::new();
    super::cancel_on_signals(
        &cancel,
        Some("\nrewind: stopping at the next safe point (the journal records where)..."),
    )
    .wrap_err("installing the signal handler")?;
    let command = rewind_engine::recovery::lock::invocation();
    journal.begin(
        "restore",
        format!("rewind restore --backup {}", backup.id),
        serde_json::json!({
            "backup": backup.id,
            "archive": backup.path,
            "databases": jobs.iter().map(|j| &j.spec.dbname).collect::<Vec<_>>(),
            "jobs": jobs_n,
            "snapshot": !args.no_snapshot,
            "skip": args.skip,
        }),
    )?;
    let req = RestoreRequest {
        root: &ctx.root,
        installation: &inst,
        backup: &backup,
        databases: jobs,
        confirm_drop: args.confirm_drop.clone(),
        confirm_files: args.confirm_files,
        snapshot: !args.no_snapshot,
        reuse_snapshots: args.reuse_snapshot.iter().cloned().collect(),
        verified: None,
        jobs: jobs_n,
        skip: args.skip.clone(),
        continue_on_error: args.continue_on_error,
        allow_version_mismatch: args.allow_version_mismatch,
        command,
        repositories: recovery::RepositoriesRequest {
            confirm: args.confirm_repositories,
            bundle_pushed: args.bundle_pushed,
            parallel: args.repositories_parallel,
            parallel_storage: args.repositories_parallel_storage,
        },
        in_place: args.in_place,
        db_admin: args.db_admin.clone(),
        expect_strategy: None,
    };
    let report = match recovery::restore(&req, &journal, &sink, &cancel) {
        Ok(r) => r,
        Err(e) => {
            journal.end(
                "restore",
                if cancel.is_cancelled() {
                    "cancelled"
                } else {
                    "failed"
                },
                serde_json::json!({"error": e.to_string()}),
            )?;
            return Err(eyre!(e).wrap_err(format!(
                "restore of backup {} failed (journal: {})",
                backup.id,
                journal.path().display()
            )));
        }
    };
    let ok = report.ok();
    journal.end(
        "restore",
        if ok { "ok" } else { "verify failed" },
        serde_json::json!({"databases": report.databases.len()}),
    )?;
    if ctx.json() {
        print_json(&Report {
            backup: &backup.id,
            ok,
            databases: &report.databases,
            components: report.components.clone(),
            jobs: report.jobs,
            notes: &report.notes,
            repositories: report.repositories.as_ref(),
            strategy: report.strategy.as_ref(),
            kept_databases: &report.kept_databases,
            resolved: &report.resolved,
            journal: journal.path().to_path_buf(),
        })?;
    } else {
        for r in &report.resolved {
            println!("{}", ctx.style.warn(r));
        }
        for n in report.notes.iter().filter(|_| !report.resolved.is_empty()) {
            println!("{n}");
        }
        if let Some(d) = &report.strategy {
            println!(
                "{}",
                ctx.style.bold(&format!("Strategy: {}", d.strategy.label()))
            );
            for r in &d.reasons {
                println!("  {r}");
            }
        }
        print_summary(
            ctx,
            &backup.id,
            &report.databases,
            &report.components,
            journal.path(),
        );
        if !report.kept_databases.is_empty() {
            println!();
            println!(
                "The failed upgrade's database is kept whole: {}. `rewind undo` swaps it back; `rewind cleanup` removes it once GitLab is healthy.",
                report.kept_databases.join(", ")
            );
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_summary(
    ctx: &Ctx,
    id: &str,
    outcomes: &[DatabaseOutcome],
    components: &[rewind_engine::restore::plan::ComponentPlan],
    journal: &std::path::Path,
) {
    let s = ctx.style;
    println!("{}", s.bold(&format!("Restore of backup {id}")));
    for o in outcomes {
        println!();
        println!(
            "  {} {} ({})",
            s.bold(o.connection.as_str()),
            o.database,
            o.member
        );
        if o.status != "restored" && o.kept_database.is_none() {
            println!("    {}", o.status);
            continue;
        }
        if let Some(k) = &o.kept_database {
            println!(
                "    strategy:  beside and swap: loaded into a new database, verified, swapped in"
            );
            println!("    kept:      {k} (the failed upgrade's database, whole; `rewind undo` swaps back)");
        } else if let Some(snap) = &o.snapshot {
            println!(
                "    snapshot:  {} ({})",
                snap.path.display(),
                human_bytes(snap.bytes)
            );
            println!("               to go back: {}", snap.restore_command);
        } else {
            println!("    snapshot:  {}", s.warn("none (--no-snapshot)"));
        }
        if let Some(c) = &o.catalog_cost {
            println!(
                "    catalogue: {} of dump read in {:.1} s (first pass, for the leftovers)",
                human_bytes(c.bytes),
                c.seconds
            );
        }
        if let Some(l) = &o.leftovers {
            for x in &l.items {
                println!(
                    "    leftover:  {} {}{}",
                    x.kind.label(),
                    x.display_name(),
                    if x.removed_by_drop {
                        ""
                    } else {
                        " (GitLab's drop keeps it)"
                    }
                );
            }
        }
        if let Some(p) = &o.privileges {
            for w in p.warnings() {
                println!("    {} {w}", s.warn("note:"));
            }
        }
        if let Some(d) = &o.drop {
            println!("    dropped:   {} tables, {} views", d.tables, d.views);
        }
        if let Some(l) = &o.load {
            let rows: u64 = l.tables.iter().map(|t| t.rows).sum();
            println!(
                "    loaded:    {} tables, {rows} rows, {} in {:.1} s ({})",
                l.tables.len(),
                human_bytes(l.bytes),
                l.seconds,
                l.loader
            );
            if !l.skipped_privilege.is_empty() {
                println!(
                    "    {}",
                    s.warn(&format!(
                        "{} statement(s) the restoring role may not run, skipped as GitLab's restore skips them:",
                        l.skipped_privilege.len()
                    ))
                );
                for x in &l.skipped_privilege {
                    println!("      {x}");
                }
                if l.skipped_privilege
                    .iter()
                    .any(|x| x.error.statement.contains(" OWNER TO "))
                {
                    println!(
                        "    {}",
                        s.dim(&format!(
                            "to give those objects back to their owner, run the OWNER TO statements as a superuser (Omnibus: gitlab-psql -d {} -c '<statement>'); `gitlab-ctl reconfigure` recreates pg_shadow_lookup for PgBouncer",
                            o.database
                        ))
                    );
                }
            }
            if !l.errors.is_empty() {
                println!(
                    "    {}",
                    s.warn(&format!(
                        "{} errors accepted (--continue-on-error):",
                        l.errors.len()
                    ))
                );
                println!("------ BEGIN ERRORS -----");
                for e in &l.errors {
                    println!("{e}");
                }
                println!("------ END ERRORS -------");
            }
        }
        if let Some(v) = &o.verify {
            println!("    verify:");
            for line in &v.lines {
                let tag = match line.status {
                    Status::Pass => s.ok("pass"),
                    Status::Fail => s.bad("FAIL"),
                    Status::Skipped => s.dim("skip"),
                    Status::Warn => s.warn("warn"),
                };
                println!("      {tag}  {:<18} {}", line.check, line.detail);
            }
        }
    }
    println!();
    println!("  components:");
    for c in components {
        let status = if c.name == "db" && c.status == "restore" {
            "restored (above)"
        } else {
            c.status.as_str()
        };
        println!("    {:<16} {status}", c.name);
    }
    println!();
    println!("  journal: {}", journal.display());
}
