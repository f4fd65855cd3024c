//! The recovery's plan, computed once and read-only: every step of [`super::steps::STEPS`],
//! in that order, with what it will do on this host (the strategy and why, per database
//! what is dropped, truncated and loaded, the snapshots, the file components, the
//! repositories, the configuration, the checks) and the refusals that would stop the run.
//! `rewind plan` and `rewind restore --dry-run` both print [`plan`]'s result, so they cannot
//! disagree.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use super::steps::{self, Step, StepId};
use super::{capacity, components_of, databases_for, facts_of, strategy};
use crate::backup::catalogue::BackupEntry;
use crate::detect::{InstallKind, Installation};
use crate::hints::{self, MessageClass};
use crate::packages::rollback::{self, RollbackOptions, RollbackPlan};
use crate::restore::beside::{Strategy, StrategyDecision};
use crate::restore::database::{ArchiveSource, RestoreOptions};
use crate::restore::drop::DropOptions;
use crate::restore::plan::{build_plan, BackupFacts, ComponentPlan, DatabasePlan};
use crate::root::HostRoot;
use crate::services::{self, GitlabCtl, RESTORE_STOPPED};
use crate::{files, repositories};

/// The choices a run would be made with (`rewind restore`'s flags).
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    pub confirm_drop: Vec<String>,
    pub confirm_files: bool,
    pub confirm_repositories: bool,
    /// Take the safety snapshot (`false`: `--no-snapshot`).
    pub snapshot: bool,
    pub reuse_snapshots: BTreeMap<String, PathBuf>,
    pub jobs: usize,
    pub skip: Vec<String>,
    pub continue_on_error: bool,
    pub allow_version_mismatch: bool,
    pub in_place: bool,
    pub db_admin: Option<String>,
    pub repositories_parallel: Option<u32>,
    pub repositories_parallel_storage: Option<u32>,
    /// `--database-url`: replaces database.yml's main database.
    pub database_url: Option<String>,
    /// Read the main database's drop list and loss report from this database instead
    /// (the failed upgrade's database kept by a beside restore).
    pub loss_from: Option<String>,
}

/// What to plan.
#[derive(Debug, Clone)]
pub struct PlanRequest<'a> {
    pub root: &'a HostRoot,
    pub installation: &'a Installation,
    /// `None`: no readable backup found (a refusal).
    pub backup: Option<&'a BackupEntry>,
    pub options: PlanOptions,
}

/// Why a run as planned would stop before changing anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalKind {
    /// A confirmation flag is missing (`--confirm-drop`, `--confirm-files`, ...).
    Confirmation,
    /// The backup's version is not installed: the plan's package step resolves it.
    Version,
    /// Something on the host must be fixed first (no backup, no database, capacity, ...).
    Blocked,
}

/// A refusal: the step that would refuse, GitLab's or Rewind's message, what to do.
#[derive(Debug, Clone, Serialize)]
pub struct Refusal {
    pub step: StepId,
    pub kind: RefusalKind,
    pub message: String,
    /// The next step for this installation (see [`crate::hints`]).
    pub hint: Option<String>,
}

/// One step of the recovery as it will run here.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedStep {
    /// The step's row in [`steps::STEPS`]: title, GitLab's step, what it changes, undo.
    pub step: &'static Step,
    /// Whether it runs in this recovery.
    pub runs: bool,
    /// Why it does not run (or runs only on a condition).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why_not: Option<String>,
    /// What it will do here, one line per fact.
    pub does: Vec<String>,
    /// The exact commands, in order.
    pub commands: Vec<String>,
}

impl PlannedStep {
    fn new(id: StepId) -> Self {
        PlannedStep {
            step: steps::step(id),
            runs: true,
            why_not: None,
            does: Vec::new(),
            commands: Vec::new(),
        }
    }

    fn not_run(mut self, why: impl Into<String>) -> Self {
        self.runs = false;
        self.why_not = Some(why.into());
        self
    }
}

/// The plan.
#[derive(Debug, Clone, Serialize)]
pub struct RecoveryPlan {
    pub kind: Option<InstallKind>,
    pub installed: Option<String>,
    pub backup: Option<String>,
    pub backup_version: Option<String>,
    /// Which restore strategy will run, and why (`None`: no database to restore).
    pub strategy: Option<StrategyDecision>,
    /// Every step of the recovery, in order.
    pub steps: Vec<PlannedStep>,
    /// What would stop `rewind restore` as given.
    pub refusals: Vec<Refusal>,
    /// Per database: the drop list with leftovers marked, the loss report, the snapshot.
    pub databases: Vec<DatabasePlan>,
    /// Every component of the backup and what happens to it.
    pub components: Vec<ComponentPlan>,
    /// Loader connections.
    pub jobs: usize,
    pub snapshot: bool,
    pub journal: Option<PathBuf>,
    /// The `rewind restore` command that runs the restore steps, confirmations included.
    pub restore_command: String,
    pub warnings: Vec<String>,
}

impl RecoveryPlan {
    /// Whether `rewind restore` with these options would run (no refusal at all).
    pub fn runnable(&self) -> bool {
        self.refusals.is_empty()
    }

    /// Whether following the plan, confirmations and package step included, would run:
    /// no refusal that needs the host fixed first.
    pub fn followable(&self) -> bool {
        self.refusals.iter().all(|r| r.kind != RefusalKind::Blocked)
    }

    /// The step of `id`.
    pub fn step(&self, id: StepId) -> Option<&PlannedStep> {
        self.steps.iter().find(|s| s.step.id == id)
    }
}

fn human(n: u64) -> String {
    crate::limited::human(n)
}

/// Compute the plan. Read-only: connects to the databases, reads the dump once for its
/// catalogue, runs `gitlab-ctl status`; changes nothing.
pub fn plan(req: &PlanRequest<'_>) -> RecoveryPlan {
    let root = req.root;
    let inst = req.installation;
    let o = &req.options;
    let kind = inst.kind;
    let mut refusals: Vec<Refusal> = Vec::new();
    let mut warnings = Vec::new();
    let skip_db = o.skip.iter().any(|s| s == "db");

    // The databases (main first) and where they are.
    let (mut jobs, db_error) = match databases_for(root, inst, o.database_url.as_deref()) {
        Ok(j) => (j, None),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    if let Some(e) = &db_error {
        if !skip_db {
            refusals.push(Refusal {
                step: StepId::Detect,
                kind: RefusalKind::Blocked,
                message: e.clone(),
                hint: None,
            });
        }
    }
    let live_names: Vec<String> = jobs.iter().map(|j| j.spec.dbname.clone()).collect();
    if let Some(kept) = &o.loss_from {
        if let Some(main) = jobs.iter_mut().find(|j| j.connection == "main") {
            main.spec = main.spec.with_dbname(kept);
        }
    }

    // 1. Detect.
    let mut detect = PlannedStep::new(StepId::Detect);
    detect.does.push(format!(
        "GitLab {} installed ({})",
        inst.version
            .as_ref()
            .map(|v| v.to_string())
            .unwrap_or_else(|| "version unknown".into()),
        match kind {
            Some(InstallKind::Omnibus) => "Omnibus package",
            Some(InstallKind::Source) => "source install",
            None => "installation kind unknown",
        }
    ));
    for j in &jobs {
        detect.does.push(format!(
            "database {}: {} on {}",
            j.connection,
            j.spec.dbname,
            j.spec.target()
        ));
    }
    detect
        .does
        .push(format!("backup directory: {}", inst.backup_path.display()));

    // 2. The backup.
    let backup = req.backup;
    let mut select = PlannedStep::new(StepId::SelectBackup);
    match backup {
        Some(b) => {
            select.does.push(format!(
                "{} (GitLab {}) at {}",
                b.id,
                b.version
                    .as_ref()
                    .map(|v| v.to_string())
                    .or(b.version_text.clone())
                    .unwrap_or_else(|| "version unknown".into()),
                b.path.display()
            ));
        }
        None => {
            let msg = format!(
                "no readable backup in {}: pass --backup ID (`rewind backups` lists them)",
                inst.backup_path.display()
            );
            select.does.push(msg.clone());
            refusals.push(Refusal {
                step: StepId::SelectBackup,
                kind: RefusalKind::Blocked,
                message: msg,
                hint: None,
            });
        }
    }

    // The restore's own plan (per database), from the same code the dry run always used.
    let facts = backup.map(|b| facts_of(root, inst, b));
    let restore_opts = RestoreOptions {
        confirm_drop: o.confirm_drop.clone(),
        snapshot: o.snapshot,
        reuse_snapshots: o.reuse_snapshots.clone(),
        jobs: o.jobs.max(1),
        continue_on_error: o.continue_on_error,
        allow_version_mismatch: o.allow_version_mismatch,
        drop: DropOptions::default(),
        throwaway: false,
        beside: None,
        catalogs: Default::default(),
    };
    let restore_plan = match (backup, &facts) {
        (Some(b), Some(f)) => {
            let source = ArchiveSource::new(b);
            let bf = BackupFacts {
                id: b.id.clone(),
                components: components_of(b, &[]).into_iter().map(|c| c.name).collect(),
                skipped_at_backup: b.skipped.clone(),
                created_at: b.backup_created_at(),
            };
            Some(build_plan(&source, &jobs, &bf, f, &restore_opts, &o.skip))
        }
        _ => None,
    };
    let decision = (!skip_db && !jobs.is_empty()).then(|| {
        strategy(
            root,
            inst,
            &jobs,
            o.in_place,
            o.db_admin.as_deref(),
            Default::default(),
        )
    });
    let beside = decision
        .as_ref()
        .is_some_and(|d| d.strategy == Strategy::Beside);

    // 3. Preflight: the version gate, the archive, the connections.
    let mut preflight = PlannedStep::new(StepId::Preflight);
    let backup_version = backup.and_then(|b| {
        facts
            .as_ref()
            .and_then(|f| f.backup_version.clone())
            .or(b.version.clone())
    });
    let rollback_needed = match (&backup_version, &inst.version) {
        (Some(bv), Some(iv)) => !bv.same_release(iv),
        (Some(_), None) => true,
        _ => false,
    };
    if let Some(p) = restore_plan
        .as_ref()
        .and_then(|p| p.version_problem.clone())
    {
        let bv = backup_version.as_ref().map(|v| v.to_string());
        preflight.does.push(format!(
            "version gate: the backup is GitLab {}, {} is installed: GitLab refuses it",
            bv.as_deref().unwrap_or("(unknown)"),
            inst.version
                .as_ref()
                .map(|v| v.to_string())
                .unwrap_or_else(|| "no version".into())
        ));
        refusals.push(Refusal {
            step: StepId::Preflight,
            kind: RefusalKind::Version,
            message: p,
            hint: hints::hint(
                kind,
                &MessageClass::VersionMismatch {
                    backup_version: bv.unwrap_or_else(|| "<the backup's version>".into()),
                },
            ),
        });
    } else if let (Some(bv), true) = (&backup_version, backup.is_some()) {
        preflight.does.push(if rollback_needed {
            format!("version gate: the backup is GitLab {bv}; the mismatch is allowed (--allow-version-mismatch)")
        } else {
            format!("version gate: the backup is GitLab {bv}, the installed version: passes")
        });
    }
    if let Some(b) = backup {
        preflight.does.push(format!(
            "every member of {} is decoded end to end before anything changes",
            b.path.display()
        ));
    }
    if !skip_db {
        let mut n = o.jobs.max(1);
        for j in &jobs {
            // A database that cannot be reached is refused once, by the restore step.
            let Ok(mut client) = j.spec.connect() else {
                continue;
            };
            match capacity::read(&mut client).and_then(|c| capacity::fit(n, &c)) {
                Ok((fitted, why)) => {
                    if let Some(why) = why {
                        preflight.does.push(format!("`{}`: {why}", j.spec.dbname));
                    }
                    n = fitted;
                }
                Err(detail) => refusals.push(Refusal {
                    step: StepId::Preflight,
                    kind: RefusalKind::Blocked,
                    message: format!("database `{}`: {detail}", j.spec.dbname),
                    hint: None,
                }),
            }
        }
        if !jobs.is_empty() {
            preflight.does.push(format!(
                "loader connections: {n} (fitted to the server's free connections)"
            ));
        }
    }

    // 4. Stop the services.
    let ctl = GitlabCtl::new(root);
    let mut stop = PlannedStep::new(StepId::StopServices);
    stop.commands = RESTORE_STOPPED
        .iter()
        .map(|s| ctl.cmd(["stop", s]).display())
        .collect();
    match ctl.status() {
        Ok(list) => {
            let down: Vec<String> = list
                .iter()
                .filter(|s| !s.is_running())
                .map(|s| s.service.clone())
                .collect();
            stop.does.push(if down.is_empty() {
                "every service runs now".to_string()
            } else {
                format!("not running now: {}", down.join(", "))
            });
        }
        Err(e) => stop.does.push(e.to_string()),
    }
    stop.does
        .push("PostgreSQL, Redis and Gitaly keep running: the restore needs them".to_string());
    if !live_names.is_empty() {
        stop.does.push(format!(
            "before the drop Rewind lists any other client still connected to {} (pg_stat_activity)",
            live_names.join(", ")
        ));
    }
    if kind == Some(InstallKind::Source) {
        stop.does.push("source install: stop Puma and Sidekiq with your init system (`sudo service gitlab stop`), then start Gitaly again".into());
    }

    let confirm_names: Vec<&str> = live_names.iter().map(String::as_str).collect();
    let db_plans: Vec<DatabasePlan> = restore_plan
        .as_ref()
        .map(|p| p.databases.clone())
        .unwrap_or_default();

    // 5. Safety snapshot.
    let mut snap = PlannedStep::new(StepId::SafetySnapshot);
    if skip_db {
        snap = snap.not_run("--skip db: no database is restored");
    } else if beside {
        snap = snap.not_run("beside and swap: nothing is dropped; the live database is renamed aside and kept whole (`--in-place` takes the snapshot and drops)");
    } else if !o.snapshot {
        snap = snap.not_run("--no-snapshot: there is no way back but another backup");
    } else {
        for (j, name) in jobs.iter().zip(&live_names) {
            if let Some(p) = o.reuse_snapshots.get(name) {
                snap.does.push(format!(
                    "{name}: reuses the snapshot {} (taken earlier in this recovery)",
                    p.display()
                ));
            } else {
                let path = db_plans
                    .iter()
                    .find(|d| d.connection == j.connection)
                    .and_then(|d| d.snapshot_path.clone());
                snap.does.push(match path {
                    Some(p) => format!("{name}: pg_dump -Fc to {} (0600)", p.display()),
                    None => format!("{name}: pg_dump -Fc (0600)"),
                });
            }
        }
        if rollback_needed {
            snap.does.push("taken by `rewind rollback` once Puma and Sidekiq are stopped, before the older package's reconfigure runs; `rewind restore --reuse-snapshot DB=PATH` (as `rewind rollback` prints) uses it instead of taking another".into());
        }
    }

    // 6. Roll the package back.
    let mut roll = PlannedStep::new(StepId::RollbackPackage);
    match (&backup_version, &inst.version) {
        (Some(_), Some(iv)) if !rollback_needed => {
            roll = roll.not_run(format!("GitLab {iv}, the backup's version, is installed"));
        }
        (Some(bv), _) => {
            roll.commands.push(format!("rewind rollback --to {bv}"));
            match rollback::plan(root, bv, RollbackOptions::default()) {
                Ok(RollbackPlan::Package(p)) => {
                    roll.commands.extend(
                        p.steps
                            .iter()
                            .filter(|s| !s.step.starts_with("rollback.stop."))
                            .map(|s| s.cmd.display()),
                    );
                    roll.does.push(format!(
                        "{} {} → {} ({})",
                        p.installed.package, p.installed.version, p.install.version, p.manager
                    ));
                }
                Ok(RollbackPlan::AlreadyInstalled { version }) => {
                    roll.does.push(format!("{version} is already installed"))
                }
                Ok(RollbackPlan::Source {
                    checkout,
                    checklist,
                    ..
                }) => {
                    roll.commands = vec![checkout.display()];
                    roll.does
                        .extend(checklist.into_iter().map(|c| match c.command {
                            Some(cmd) => format!("[ ] {}: {cmd}", c.text),
                            None => format!("[ ] {}", c.text),
                        }));
                }
                Ok(RollbackPlan::Docker { note, .. }) => {
                    roll.commands.clear();
                    roll.does.push(note);
                }
                Err(e) => roll.does.push(format!("cannot plan the rollback yet: {e}")),
            }
        }
        (None, _) => roll = roll.not_run("no backup, so no version to roll back to"),
    }

    // 7. Confirm the drop.
    let mut confirm = PlannedStep::new(StepId::ConfirmDrop);
    if skip_db {
        confirm = confirm.not_run("--skip db");
    }
    for d in db_plans.iter().filter(|d| d.present && !skip_db) {
        let count = |class: &str| d.drop.iter().filter(|x| x.class == class).count();
        let truncated: Vec<&str> = d
            .drop
            .iter()
            .filter(|x| x.class == "TRUNCATE")
            .map(|x| x.object.as_str())
            .collect();
        let leftovers = d.drop.iter().filter(|x| x.leftover).count();
        if beside {
            confirm.does.push(format!(
                "{}: nothing dropped in the live database; it is renamed aside and kept",
                d.database
            ));
        } else {
            confirm.does.push(format!(
                "{}: drop {} tables, {} views, {} materialized views, {} schemas in one transaction ({} not in the backup: the failed upgrade added them)",
                d.database,
                count("DROP TABLE"),
                count("DROP VIEW"),
                count("DROP MATERIALIZED VIEW"),
                count("DROP SCHEMA"),
                leftovers
            ));
            for t in truncated {
                confirm.does.push(format!(
                    "{}: TRUNCATE {t} (emptied, not dropped, as GitLab does)",
                    d.database
                ));
            }
        }
        // What the step does does not depend on the flags given; a missing confirmation
        // is a refusal.
        if !d.confirmed {
            refusals.push(Refusal {
                step: StepId::ConfirmDrop,
                kind: RefusalKind::Confirmation,
                message: format!(
                    "dropping every table of `{}` needs its name typed: --confirm-drop {}",
                    d.database, d.database
                ),
                hint: None,
            });
        }
    }

    // 8. Restore the databases.
    let mut dbs = PlannedStep::new(StepId::RestoreDatabases);
    if skip_db {
        dbs = dbs.not_run("--skip db");
    }
    for d in db_plans.iter().filter(|_| !skip_db) {
        let size = backup
            .and_then(|b| b.databases.iter().find(|x| x.member.ends_with(&d.member)))
            .map(|x| format!(" ({})", human(x.size)))
            .unwrap_or_default();
        // A missing confirmation is a refusal, not what the step does.
        let status = if d.status.starts_with("restore (needs --confirm-drop") {
            "restore"
        } else {
            d.status.as_str()
        };
        dbs.does.push(format!(
            "{}{size} → {} on {}: {status}",
            d.member, d.database, d.target
        ));
        if beside && d.present {
            dbs.does.push(format!(
                "{}: loaded into a new database beside it, verified, then swapped in by renaming (the live one is kept as {}_before_rewind_<time>)",
                d.database, d.database
            ));
        }
        if let Some(l) = &d.since_backup {
            dbs.does.push(format!(
                "{}: {} (lost by the restore)",
                d.database,
                l.summary()
            ));
        }
        let blocked = d.status.starts_with("refused:")
            || d.status.starts_with("cannot plan:")
            || d.status.starts_with("Source database file does not exist");
        if blocked {
            refusals.push(Refusal {
                step: StepId::RestoreDatabases,
                kind: RefusalKind::Blocked,
                message: format!("database `{}`: {}", d.database, d.status),
                hint: None,
            });
        }
    }
    if let Some(e) = db_error.as_ref().filter(|_| !skip_db) {
        dbs.does.push(e.clone());
    }

    // 9. File components.
    let mut file_step = PlannedStep::new(StepId::RestoreFiles);
    if let Some(b) = backup {
        let members: Vec<String> = b.components.iter().map(|c| c.member.clone()).collect();
        let comps = files::select_components(
            &members,
            &b.skipped,
            &o.skip,
            kind.unwrap_or(InstallKind::Omnibus),
        );
        for c in &comps {
            file_step.does.push(format!(
                "{} → {}{} (existing contents moved aside to {}/tmp/{}.<time>, kept)",
                c.member,
                c.target.display(),
                if c.assumed_target { " (assumed)" } else { "" },
                inst.backup_path.display(),
                c.name
            ));
        }
        if comps.is_empty() {
            file_step =
                file_step.not_run("no file component to restore (none in the backup, or skipped)");
        } else if !o.confirm_files {
            let names: Vec<&str> = comps.iter().map(|c| c.name.as_str()).collect();
            refusals.push(Refusal {
                step: StepId::RestoreFiles,
                kind: RefusalKind::Confirmation,
                message: format!(
                    "replacing the file components ({}) needs --confirm-files (or --skip {})",
                    names.join(", "),
                    names.join(",")
                ),
                hint: None,
            });
        }
    } else {
        file_step = file_step.not_run("no backup");
    }

    // 10. Repositories.
    let mut repo_step = PlannedStep::new(StepId::RestoreRepositories);
    let repos_wanted = backup.is_some_and(|b| {
        b.repositories
            && !o.skip.iter().any(|s| s == "repositories")
            && !b.skipped.iter().any(|s| s == "repositories")
    });
    if let (true, Some(b)) = (repos_wanted, backup) {
        let ro = repositories::RepoOptions::for_backup(
            b.information.as_ref(),
            &repositories::configured_storages(root),
            o.repositories_parallel,
            o.repositories_parallel_storage,
        );
        repo_step.does.push(repositories::warning(&ro.remove_all));
        let path = inst
            .backup_path
            .join("rewind-repositories.<unique>/repositories");
        match repositories::plan(root, &path, &ro) {
            Ok(p) => repo_step.commands.push(p.cmd.display()),
            Err(e) => refusals.push(Refusal {
                step: StepId::RestoreRepositories,
                kind: RefusalKind::Blocked,
                message: e.to_string(),
                hint: None,
            }),
        }
        repo_step.does.push(format!(
            "repositories/ is extracted to {} (root-only) first, after a free-space check; stdin: the restored database's projects, wikis, designs, snippets and group wikis",
            path.display()
        ));
        if ctl.exists() {
            match ctl.service_status("gitaly") {
                Ok(Some(s)) if s.is_running() => repo_step.does.push("Gitaly runs".into()),
                other => {
                    let status = match other {
                        Ok(Some(s)) => s.raw,
                        Ok(None) => "`gitlab-ctl status gitaly` does not list gitaly".into(),
                        Err(e) => e.to_string(),
                    };
                    refusals.push(Refusal {
                        step: StepId::RestoreRepositories,
                        kind: RefusalKind::Blocked,
                        message: format!("Gitaly is not running ({status}): gitaly-backup restores through it; start it with `gitlab-ctl start gitaly`, or --skip repositories"),
                        hint: None,
                    });
                }
            }
        }
        if !o.confirm_repositories {
            refusals.push(Refusal {
                step: StepId::RestoreRepositories,
                kind: RefusalKind::Confirmation,
                message: "replacing every repository on the storages needs --confirm-repositories (--bundle-pushed keeps what was pushed since the backup), or --skip repositories".into(),
                hint: None,
            });
        }
    } else {
        repo_step = repo_step.not_run(if backup.is_some_and(|b| b.repositories) {
            "skipped"
        } else {
            "the backup holds no repositories"
        });
    }

    // 11. Verify.
    let mut verify = PlannedStep::new(StepId::Verify);
    if skip_db || db_plans.is_empty() {
        verify = verify.not_run("no database restored");
    } else {
        verify.does.push(
            "schema_migrations equal the backup's, row counts per table, no leftover table".into(),
        );
    }

    // 12. Configuration: the archive nearest before the backup, compared.
    let mut config = PlannedStep::new(StepId::RestoreConfig);
    let before = backup.and_then(|b| b.backup_created_at());
    match super::config::choose(root, None, before)
        .and_then(|a| super::config::read_archive(root, &a))
    {
        Ok(c) => {
            let d = super::config::diff(root, &c);
            config.does.push(format!(
                "{} ({}): {}",
                c.archive.name,
                c.archive.created.as_deref().unwrap_or("time unknown"),
                if d.would_restore.is_empty() {
                    "gitlab-secrets.json and gitlab.rb match the live files".to_string()
                } else {
                    format!(
                        "{} differ (`rewind config` lists what)",
                        d.would_restore.join(" and ")
                    )
                }
            ));
            if d.would_restore.is_empty() {
                config.runs = false;
                config.why_not = Some("nothing differs".into());
            } else {
                config.commands.push(format!(
                    "rewind config --archive {} --restore --yes",
                    c.archive.name
                ));
            }
        }
        // No archive to compare: the step still matters (the user's own copy).
        Err(e) => config.does.push(e.to_string()),
    }

    // 13. Reconfigure and start.
    let mut start = PlannedStep::new(StepId::StartServices);
    for s in services::post_restore_steps(root)
        .into_iter()
        .filter(|s| s.changes_host)
    {
        start.does.push(s.what);
        start.commands.push(s.cmd.display());
    }

    // 14. Checks.
    let mut checks_step = PlannedStep::new(StepId::PostChecks);
    for c in super::postcheck::checks(root) {
        checks_step.does.push(format!(
            "{}{}",
            c.what,
            if c.default { "" } else { " (offered)" }
        ));
        checks_step.commands.push(c.cmd.display());
    }

    // 15. Repair: only when db:migrate fails afterwards.
    let repair = PlannedStep::new(StepId::RepairMigrations)
        .not_run("only when db:migrate fails after the restore: `rewind triage` reads its log");

    // The restore command, with every confirmation it needs.
    let mut restore_command = format!(
        "rewind restore --backup {}",
        backup.map(|b| b.id.as_str()).unwrap_or("<ID>")
    );
    if !skip_db {
        for n in &confirm_names {
            restore_command.push_str(&format!(" --confirm-drop {n}"));
        }
    }
    if file_step.runs {
        restore_command.push_str(" --confirm-files");
    }
    if repos_wanted {
        restore_command.push_str(" --confirm-repositories");
    }
    if !o.skip.is_empty() {
        restore_command.push_str(&format!(" --skip {}", o.skip.join(",")));
    }
    for st in [&mut confirm, &mut dbs, &mut file_step, &mut repo_step] {
        if st.runs {
            st.commands.insert(0, restore_command.clone());
        }
    }
    if !snap.runs || rollback_needed {
        // Taken by `rewind rollback`, or not at all.
    } else {
        snap.commands.push(restore_command.clone());
    }

    warnings.push(services::SECRETS_WARNING.to_string());
    for c in services::config_backups(root) {
        warnings.push(format!(
            "configuration backup: {} ({})",
            c.path.display(),
            human(c.size)
        ));
    }

    // In STEPS' order.
    let mut by_id: Vec<PlannedStep> = vec![
        detect,
        select,
        preflight,
        stop,
        roll,
        confirm,
        snap,
        dbs,
        file_step,
        repo_step,
        verify,
        config,
        start,
        checks_step,
        repair,
    ];
    let steps: Vec<PlannedStep> = steps::STEPS
        .iter()
        .filter_map(|s| {
            by_id
                .iter()
                .position(|p| p.step.id == s.id)
                .map(|i| by_id.swap_remove(i))
        })
        .collect();

    RecoveryPlan {
        kind,
        installed: inst.version.as_ref().map(|v| v.to_string()),
        backup: backup.map(|b| b.id.clone()),
        backup_version: backup_version.map(|v| v.to_string()),
        strategy: decision,
        steps,
        refusals,
        databases: db_plans,
        components: restore_plan
            .as_ref()
            .map(|p| p.components.clone())
            .unwrap_or_default(),
        jobs: o.jobs.max(1),
        snapshot: o.snapshot,
        journal: restore_plan.as_ref().map(|p| p.journal.clone()),
        restore_command,
        warnings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bare(kind: Option<InstallKind>) -> Installation {
        Installation {
            kind,
            version: Some("16.11.0-ee".parse().unwrap()),
            edition: None,
            package: None,
            rails_root: None,
            backup_path: PathBuf::from("/var/opt/gitlab/backups"),
            databases: Vec::new(),
            log_dir: None,
            findings: Vec::new(),
        }
    }

    #[test]
    fn every_step_in_order_and_what_stops_it_on_a_bare_host() {
        let dir = tempfile::tempdir().unwrap();
        let root = HostRoot::new(dir.path());
        let inst = bare(Some(InstallKind::Omnibus));
        let p = plan(&PlanRequest {
            root: &root,
            installation: &inst,
            backup: None,
            options: PlanOptions {
                snapshot: true,
                ..Default::default()
            },
        });
        let ids: Vec<StepId> = p.steps.iter().map(|s| s.step.id).collect();
        let want: Vec<StepId> = steps::STEPS.iter().map(|s| s.id).collect();
        assert_eq!(ids, want);
        // No database and no backup: both refused as needing the host fixed, nothing
        // else claimed.
        let blocked: Vec<StepId> = p
            .refusals
            .iter()
            .filter(|r| r.kind == RefusalKind::Blocked)
            .map(|r| r.step)
            .collect();
        assert_eq!(
            blocked,
            vec![StepId::Detect, StepId::SelectBackup],
            "{p:#?}"
        );
        assert!(!p.followable() && !p.runnable());
        assert!(p.refusals[0].message.contains("--database-url"), "{p:#?}");
        assert!(p.strategy.is_none());
        for id in [
            StepId::RollbackPackage,
            StepId::RestoreFiles,
            StepId::RepairMigrations,
        ] {
            assert!(!p.step(id).unwrap().runs, "{id:?}");
        }
        assert!(p.restore_command.contains("--backup <ID>"));
        // --skip db: no database needed, no database step runs.
        let p = plan(&PlanRequest {
            root: &root,
            installation: &inst,
            backup: None,
            options: PlanOptions {
                skip: vec!["db".into()],
                ..Default::default()
            },
        });
        assert!(
            p.refusals.iter().all(|r| r.step != StepId::Detect),
            "{p:#?}"
        );
        for id in [
            StepId::SafetySnapshot,
            StepId::ConfirmDrop,
            StepId::RestoreDatabases,
            StepId::Verify,
        ] {
            assert!(!p.step(id).unwrap().runs, "{id:?}");
        }
        assert!(!p.restore_command.contains("--confirm-drop"));
    }
}
