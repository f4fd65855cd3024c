//! The runner of a restore: checks first, then the destructive steps, journaled.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{capacity, lock};
use crate::backup::catalogue::BackupEntry;
use crate::detect::{InstallKind, Installation};
use crate::files::{self, ComponentReport, FilesError};
use crate::journal::{Journal, JournalError};
use crate::pg::conn::{ConnError, ConnSpec};
use crate::progress::{Cancel, Sink, SinkExt};
use crate::repositories;
use crate::restore::beside::{self, DecideInput, Strategy, StrategyDecision};
use crate::restore::database::BesidePlan;
use crate::restore::database::{
    check_version, member_for, ArchiveSource, DatabaseJob, DatabaseOutcome, Outcome,
    ParallelLoader, RestoreError, RestoreFacts, RestoreOptions, RestoreRun,
};
use crate::restore::drop::{DropConfirmation, DropOptions};
use crate::restore::plan::{component_plan, ComponentPlan, COMPONENT_ORDER};
use crate::root::HostRoot;

/// What to restore, and the confirmations given for it.
#[derive(Debug, Clone)]
pub struct RestoreRequest<'a> {
    pub root: &'a HostRoot,
    pub installation: &'a Installation,
    pub backup: &'a BackupEntry,
    /// The databases, main first ([`databases_for`]).
    pub databases: Vec<DatabaseJob>,
    /// Names the user typed (`--confirm-drop`): each database's must be among them.
    pub confirm_drop: Vec<String>,
    /// The user confirmed replacing the file components (their contents moved aside).
    pub confirm_files: bool,
    /// Take the safety snapshot (declined only explicitly: `--no-snapshot`).
    pub snapshot: bool,
    /// Snapshots this recovery already took (a retry), by database name: reused instead
    /// of taking another.
    pub reuse_snapshots: BTreeMap<String, PathBuf>,
    /// The archive's end-to-end verification done earlier by this process (the wizard's
    /// preflight), used instead of reading the archive again when the file is unchanged
    /// (same device, inode, size, modification and change times).
    pub verified: Option<crate::backup::verify::Verified>,
    pub jobs: usize,
    /// Components not to restore (GitLab's names).
    pub skip: Vec<String>,
    pub continue_on_error: bool,
    pub allow_version_mismatch: bool,
    /// How the run was started, recorded in the host lock for whoever finds it taken.
    pub command: String,
    /// The repository restore's confirmation and options.
    pub repositories: RepositoriesRequest,
    /// `--in-place`: GitLab's way (snapshot, drop, load) even where beside-and-swap can run.
    pub in_place: bool,
    /// `--db-admin OSUSER[:ROLE]`: the administrator that creates and renames databases
    /// when the owner role cannot (default: Omnibus's `gitlab-psql`).
    pub db_admin: Option<String>,
    /// The strategy the user confirmed (the wizard shows it before the drop screen):
    /// when the runner's own decision differs, it refuses before changing anything
    /// instead of running what was not confirmed. `None`: whatever it decides.
    pub expect_strategy: Option<Strategy>,
}

/// What the user chose for the repositories.
#[derive(Debug, Clone, Default)]
pub struct RepositoriesRequest {
    /// The user confirmed that gitaly-backup may replace every repository on the storages
    /// (`--confirm-repositories`).
    pub confirm: bool,
    /// Bundle the repositories pushed to since the backup aside first (`--bundle-pushed`).
    pub bundle_pushed: bool,
    /// gitaly-backup's `-parallel`.
    pub parallel: Option<u32>,
    /// gitaly-backup's `-parallel-storage`.
    pub parallel_storage: Option<u32>,
}

/// What happened to the repositories.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RepositoriesOutcome {
    /// Project repositories pushed to since the backup (from the live database, before
    /// the drop): what gitaly-backup's `-remove-all-repositories` deletes.
    pub pushed_since_backup: Vec<repositories::pushed::PushedRepo>,
    /// Where they were bundled (host path), when asked.
    pub bundled_to: Option<PathBuf>,
    pub bundled: Vec<repositories::pushed::Bundled>,
    /// gitaly-backup's run.
    pub restore: Option<repositories::run::RepoReport>,
}

/// What a restore did.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    pub backup: String,
    pub databases: Vec<DatabaseOutcome>,
    pub files: Vec<ComponentReport>,
    pub components: Vec<ComponentPlan>,
    /// Loader jobs used (after fitting them to the server's connections).
    pub jobs: usize,
    /// Things the user was told along the way (jobs reduced, ...).
    pub notes: Vec<String>,
    /// The repositories (`None` when not restored: skipped or absent).
    pub repositories: Option<RepositoriesOutcome>,
    /// The strategy that ran, and why (`None` with `--skip db`).
    pub strategy: Option<StrategyDecision>,
    /// Databases the failed upgrade's data is kept in (beside strategy).
    pub kept_databases: Vec<String>,
    /// Interrupted swaps found in the journal and completed by this run.
    pub resolved: Vec<String>,
}

impl RestoreReport {
    /// Every database verified, the repositories (when restored) all accounted for.
    pub fn ok(&self) -> bool {
        self.databases
            .iter()
            .all(|o| o.verify.as_ref().is_none_or(|v| v.ok()))
            && self
                .repositories
                .as_ref()
                .and_then(|r| r.restore.as_ref())
                .is_none_or(|r| r.ok())
    }
}

/// Why a restore was refused or failed. Each says whether anything changed.
#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error("unknown component `{name}` in --skip: GitLab's components are {known}. Nothing was changed")]
    BadSkip { name: String, known: String },
    #[error(transparent)]
    Lock(#[from] lock::LockError),
    #[error(transparent)]
    Restore(#[from] RestoreError),
    #[error("the backup {archive} cannot be restored: {detail}. Nothing was changed; pick another backup (`rewind backups`)")]
    Archive { archive: PathBuf, detail: String },
    #[error("restoring the file components ({names}) replaces their directories (the previous contents are moved aside to {aside}); confirm with --confirm-files, or leave them out with --skip {names}. Nothing was changed")]
    FilesNotConfirmed { names: String, aside: PathBuf },
    #[error("restoring the repositories runs gitaly-backup with -remove-all-repositories {storages}: it deletes every repository on those storages, including what was pushed since the backup{pushed_hint}, and restores the backup's. Confirm with --confirm-repositories (add --bundle-pushed to keep the pushed repositories as git bundles first), or leave them out with --skip repositories. Nothing was changed")]
    RepositoriesNotConfirmed {
        storages: String,
        pushed_hint: String,
    },
    #[error("Gitaly is not running ({status}): gitaly-backup restores the repositories through it, and a restore with Gitaly down fails after the databases were replaced. Start it with `gitlab-ctl start gitaly` (Rewind stops only Puma and Sidekiq), check with `gitlab-ctl status gitaly`, and run the restore again, or leave the repositories out with --skip repositories. Nothing was changed")]
    GitalyDown { status: String },
    #[error("{0} Nothing was changed")]
    RepositoriesRefused(repositories::RepoError),
    #[error("restoring the repositories: {0}")]
    Repositories(repositories::RepoError),
    #[error("not enough free space in {dir} to extract {what}: {needed} bytes needed, {available} available. Free some space or skip components with --skip; nothing was changed")]
    DiskSpace {
        dir: PathBuf,
        what: String,
        needed: u64,
        available: u64,
    },
    #[error("database `{database}`: {detail}. Nothing was changed")]
    Capacity { database: String, detail: String },
    #[error("no database connection found (looked for GitLab's database.yml under {root}); pass --database-url postgresql://USER@HOST:PORT/DBNAME")]
    NoDatabase { root: PathBuf },
    #[error(transparent)]
    Connect(#[from] ConnError),
    #[error("restoring the file components failed: {0}")]
    Files(#[from] FilesError),
    #[error("the safety snapshot of `{database}` cannot be taken: {detail}. Nothing was changed; fix that, or pass --no-snapshot to go on without a way back but another backup")]
    SnapshotPrecheck { database: String, detail: String },
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("the restore would now run {now} ({reasons}), but {confirmed} was confirmed. Nothing was changed; confirm again with the strategy shown now")]
    StrategyChanged {
        confirmed: &'static str,
        now: &'static str,
        reasons: String,
    },
}

impl RecoveryError {
    /// What this error left behind: every check of the runner comes before the first
    /// change, so its refusals changed nothing.
    pub fn outcome(&self) -> Outcome {
        match self {
            RecoveryError::Restore(e) => e.outcome(),
            RecoveryError::Files(_)
            | RecoveryError::Journal(_)
            | RecoveryError::Repositories(_) => Outcome::Changed,
            _ => Outcome::NothingChanged,
        }
    }
}

/// `--skip` names must be GitLab's (a typo must not restore what the user meant to skip).
pub fn validate_skip(skip: &[String]) -> Result<(), RecoveryError> {
    for s in skip {
        if !COMPONENT_ORDER.contains(&s.as_str()) {
            return Err(RecoveryError::BadSkip {
                name: s.clone(),
                known: COMPONENT_ORDER.join(", "),
            });
        }
    }
    Ok(())
}

/// The databases to restore: database.yml's (main, then ci when it has a database of its
/// own), `--database-url` replacing main.
pub fn databases_for(
    root: &HostRoot,
    inst: &Installation,
    database_url: Option<&str>,
) -> Result<Vec<DatabaseJob>, RecoveryError> {
    let mut jobs = Vec::new();
    if let Some(url) = database_url {
        jobs.push(DatabaseJob {
            connection: "main".into(),
            spec: ConnSpec::from_url(url)?,
            member: member_for("main"),
        });
    }
    for db in inst.databases.iter().filter(|d| d.database_tasks) {
        if db.name == "main" && !jobs.is_empty() {
            continue;
        }
        jobs.push(DatabaseJob {
            connection: db.name.clone(),
            spec: db.spec.clone(),
            member: member_for(&db.name),
        });
    }
    if jobs.is_empty() {
        return Err(RecoveryError::NoDatabase {
            root: root.base().to_path_buf(),
        });
    }
    jobs.sort_by_key(|j| j.connection != "main");
    Ok(jobs)
}

/// Which strategy a restore of `databases` will run, and why (read-only): beside-and-swap
/// where it can run, in place otherwise or with `in_place`. `dump_bytes`: the decompressed
/// dump size per database name, when known (else the live database's size is the estimate).
pub fn strategy(
    root: &HostRoot,
    inst: &Installation,
    databases: &[DatabaseJob],
    in_place: bool,
    db_admin: Option<&str>,
    dump_bytes: std::collections::BTreeMap<String, u64>,
) -> StrategyDecision {
    let server = databases
        .first()
        .and_then(|j| beside::live_facts(&j.spec).ok())
        .map(|f| f.server_version_num)
        .unwrap_or(0);
    let admin = db_admin.and_then(|a| beside::AdminConfig::parse(a, root, server));
    beside::decide(
        root,
        inst.kind,
        databases,
        &DecideInput {
            in_place,
            admin,
            dump_bytes,
        },
    )
}

/// Swaps the journal says were interrupted between their renames, completed (`how`
/// Complete) or reversed; one line per swap resolved.
pub fn resolve_interrupted(
    databases: &[DatabaseJob],
    how: beside::Resolve,
    journal: &Journal,
    sink: &dyn Sink,
) -> Result<Vec<String>, RecoveryError> {
    let entries = Journal::read(journal.path())?;
    let mut out = Vec::new();
    for rec in beside::interrupted(&entries) {
        let Some(job) = databases
            .iter()
            .find(|j| j.spec.dbname == rec.live)
            .or_else(|| {
                databases
                    .iter()
                    .find(|j| j.connection.to_string() == rec.connection)
            })
        else {
            continue;
        };
        match beside::finish_interrupted(&job.spec, &rec, how, journal) {
            Ok(Some(msg)) => {
                sink.warn(msg.clone());
                out.push(msg);
            }
            Ok(None) => {}
            Err(detail) => {
                return Err(RecoveryError::Restore(RestoreError::Beside {
                    detail: format!(
                        "an interrupted swap of `{}` (journal: {}) could not be resolved: {detail}. Run `rewind undo` or rename the databases by hand ({} / {} / {})",
                        rec.live,
                        journal.path().display(),
                        rec.live,
                        rec.new,
                        rec.kept
                    ),
                    changed: false,
                }))
            }
        }
    }
    Ok(out)
}

/// The facts a restore compares against.
pub fn facts_of(root: &HostRoot, inst: &Installation, backup: &BackupEntry) -> RestoreFacts {
    let info = backup.information.clone().unwrap_or_default();
    RestoreFacts {
        backup_version: info.gitlab_version.clone().or(backup.version.clone()),
        backup_version_text: info
            .gitlab_version_raw
            .clone()
            .or(backup.version_text.clone()),
        installed_version: inst.version.clone(),
        db_version: info.db_version.clone(),
        backup_path: root.join(&inst.backup_path),
    }
}

/// The components of the backup and what happens to each.
pub fn components_of(backup: &BackupEntry, skip: &[String]) -> Vec<ComponentPlan> {
    let mut present: Vec<String> = backup.components.iter().map(|c| c.name.clone()).collect();
    if !backup.databases.is_empty() {
        present.insert(0, "db".into());
    }
    if backup.repositories {
        present.push("repositories".into());
    }
    component_plan(&present, &backup.skipped, skip)
}

/// Restore a backup: every check before the first change, then the databases (snapshot,
/// drop, load, verify) and the file components.
pub fn restore(
    req: &RestoreRequest<'_>,
    journal: &Journal,
    sink: &dyn Sink,
    cancel: &Cancel,
) -> Result<RestoreReport, RecoveryError> {
    validate_skip(&req.skip)?;
    let host_lock = lock::host(req.root, &req.command)?;
    journal.note(
        "recovery.lock",
        format!(
            "host lock taken ({})",
            req.root.host_path(&host_lock.path).display()
        ),
        serde_json::json!({"pid": std::process::id()}),
    )?;
    let backup = req.backup;
    let inst = req.installation;
    let facts = facts_of(req.root, inst, backup);
    // The version gate leads, whatever is skipped.
    check_version(&facts, req.allow_version_mismatch).map_err(|e| match e {
        // GitLab's message, then the next step for this installation kind.
        RestoreError::VersionMismatch(m) => {
            let v = facts
                .backup_version
                .as_ref()
                .map(|v| v.to_string())
                .unwrap_or_else(|| "<the backup's version>".into());
            match crate::hints::hint(
                inst.kind,
                &crate::hints::MessageClass::VersionMismatch { backup_version: v },
            ) {
                Some(h) => RestoreError::VersionMismatch(format!("{m}\n\n{h}")),
                None => RestoreError::VersionMismatch(m),
            }
        }
        e => e,
    })?;
    let skip_db = req.skip.iter().any(|s| s == "db");
    if !skip_db {
        for job in &req.databases {
            let given = req
                .confirm_drop
                .iter()
                .find(|c| **c == job.spec.dbname)
                .or(req.confirm_drop.first());
            DropConfirmation::new(given.map(String::as_str), &job.spec.dbname)
                .map_err(RestoreError::Confirm)?;
        }
    }
    // A swap interrupted between its renames (a crash, a kill) is finished first: its new
    // database was verified before the first rename.
    if !skip_db {
        let resolved =
            resolve_interrupted(&req.databases, beside::Resolve::Complete, journal, sink)?;
        if !resolved.is_empty() {
            drop(host_lock);
            let kept = Journal::read(journal.path())
                .map(|e| beside::completed(&e).into_iter().map(|r| r.kept).collect())
                .unwrap_or_default();
            return Ok(RestoreReport {
                backup: backup.id.clone(),
                databases: Vec::new(),
                files: Vec::new(),
                components: Vec::new(),
                jobs: 0,
                notes: vec![
                    "an interrupted swap was completed; nothing else was done. Run `rewind restore` again only to restore anew, or `rewind undo` to go back to the failed upgrade's database".into(),
                ],
                repositories: None,
                strategy: None,
                kept_databases: kept,
                resolved,
            });
        }
    }
    let members: Vec<String> = backup.components.iter().map(|c| c.member.clone()).collect();
    let file_components = files::select_components(
        &members,
        &backup.skipped,
        &req.skip,
        inst.kind.unwrap_or(InstallKind::Omnibus),
    );
    if !file_components.is_empty() && !req.confirm_files {
        return Err(RecoveryError::FilesNotConfirmed {
            names: file_components
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(","),
            aside: inst.backup_path.join("tmp"),
        });
    }

    // The repositories: confirmed, gitaly-backup present, before anything changes.
    let repo_opts = repositories_wanted(req).then(|| {
        repositories::RepoOptions::for_backup(
            backup.information.as_ref(),
            &repositories::configured_storages(req.root),
            req.repositories.parallel,
            req.repositories.parallel_storage,
        )
    });
    if let Some(o) = &repo_opts {
        if !req.repositories.confirm {
            return Err(RecoveryError::RepositoriesNotConfirmed {
                storages: o.remove_all.join(","),
                pushed_hint: String::new(),
            });
        }
        let bin = req.root.join(repositories::GITALY_BACKUP);
        if !bin.is_file() {
            return Err(RecoveryError::RepositoriesRefused(
                repositories::RepoError::NoGitalyBackup {
                    path: PathBuf::from(repositories::GITALY_BACKUP),
                    backup_id: backup.id.clone(),
                },
            ));
        }
        check_gitaly(req.root, journal, sink)?;
    }

    // Every member decodes, end to end, before anything changes.
    journal.begin(
        "recovery.verify",
        "decode every member of the backup",
        serde_json::json!({"archive": backup.path}),
    )?;
    let earlier = req
        .verified
        .as_ref()
        .and_then(|v| v.still_valid(&backup.path))
        .cloned();
    let reused = earlier.is_some();
    let result = match earlier {
        Some(report) => {
            sink.info(format!(
                "{}: verified end to end by the preflight and unchanged since: not read again",
                backup.path.display()
            ));
            Ok(report)
        }
        None => crate::backup::verify::verify(&backup.path, sink, Some(cancel)),
    };
    let verified = match result {
        Ok(v) => v,
        Err(e) => {
            journal.end(
                "recovery.verify",
                "failed",
                serde_json::json!({"error": e.to_string()}),
            )?;
            return Err(RecoveryError::Archive {
                archive: backup.path.clone(),
                detail: e.to_string(),
            });
        }
    };
    journal.end(
        "recovery.verify",
        "ok",
        serde_json::json!({"members": verified.members.len(), "bytes": verified.bytes_read,
            "verified_by_preflight": reused}),
    )?;
    let decoded: HashMap<&str, u64> = verified
        .members
        .iter()
        .map(|m| {
            (
                m.name.strip_prefix("./").unwrap_or(&m.name),
                m.decoded_bytes.unwrap_or(m.size),
            )
        })
        .collect();
    check_file_space(req.root, &file_components, &decoded, journal)?;
    if let Some(o) = &repo_opts {
        check_repositories(req, o, &verified.members, journal)?;
    }

    // The repositories pushed to since the backup, from the live database before the drop;
    // bundled aside when asked.
    let mut repos_outcome = None;
    if let Some(_o) = &repo_opts {
        repos_outcome = Some(pushed_before_drop(req, journal, sink)?);
    }

    let mut notes = Vec::new();
    let mut jobs = req.jobs.max(1);
    let mut databases = Vec::new();
    let mut decision = None;
    let mut kept_databases = Vec::new();
    if skip_db {
        journal.note(
            "restore",
            "database skipped (--skip db)",
            serde_json::Value::Null,
        )?;
    } else {
        // One recovery per database; the loader's connections fit before anything drops.
        let mut locks = Vec::new();
        for job in &req.databases {
            let mut l = lock::database(&job.spec)?;
            let cap = capacity::read(&mut l.client).map_err(|detail| RecoveryError::Capacity {
                database: job.spec.dbname.clone(),
                detail,
            })?;
            match capacity::fit(jobs, &cap) {
                Ok((n, why)) => {
                    if let Some(why) = why {
                        journal.note(
                            "recovery.capacity",
                            why.clone(),
                            serde_json::to_value(&cap).unwrap_or_default(),
                        )?;
                        sink.warn(format!("`{}`: {why}", job.spec.dbname));
                        notes.push(format!("`{}`: {why}", job.spec.dbname));
                    }
                    jobs = n;
                }
                Err(detail) => {
                    journal.note(
                        "recovery.capacity",
                        format!("refused: {detail}"),
                        serde_json::to_value(&cap).unwrap_or_default(),
                    )?;
                    return Err(RecoveryError::Capacity {
                        database: job.spec.dbname.clone(),
                        detail,
                    });
                }
            }
            locks.push(l);
        }
        let dump_bytes = req
            .databases
            .iter()
            .filter_map(|j| {
                decoded
                    .get(j.member.as_str())
                    .map(|b| (j.spec.dbname.clone(), *b))
            })
            .collect();
        let d = strategy(
            req.root,
            inst,
            &req.databases,
            req.in_place,
            req.db_admin.as_deref(),
            dump_bytes,
        );
        journal.note(
            "recovery.strategy",
            format!("{}: {}", d.strategy.label(), d.reasons.join("; ")),
            serde_json::to_value(&d).unwrap_or_default(),
        )?;
        sink.info(format!(
            "strategy: {} ({})",
            d.strategy.label(),
            d.reasons.join("; ")
        ));
        if let Some(want) = req.expect_strategy.filter(|w| *w != d.strategy) {
            return Err(RecoveryError::StrategyChanged {
                confirmed: want.label(),
                now: d.strategy.label(),
                reasons: d.reasons.join("; "),
            });
        }
        let beside_plan = match (&d.strategy, &d.admin) {
            (Strategy::Beside, Some(admin)) => Some(BesidePlan {
                admin: admin.clone(),
                stamp: d.stamp.clone(),
            }),
            _ => None,
        };
        let opts = RestoreOptions {
            confirm_drop: req.confirm_drop.clone(),
            snapshot: req.snapshot,
            reuse_snapshots: req.reuse_snapshots.clone(),
            jobs,
            continue_on_error: req.continue_on_error,
            allow_version_mismatch: req.allow_version_mismatch,
            drop: DropOptions::default(),
            throwaway: false,
            beside: beside_plan.clone(),
            catalogs: verified.catalogs(),
        };
        let source = ArchiveSource::new(backup);
        let run = RestoreRun {
            root: req.root,
            source: &source,
            loader: &ParallelLoader,
            facts: &facts,
            opts: &opts,
            journal,
            sink,
            cancel,
        };
        databases = run.run(&req.databases)?;
        // Rewind's own sessions on the live databases end before they are renamed.
        drop(locks);
        if let Some(plan) = &beside_plan {
            swap_all(req, plan, &mut databases, journal, sink)?;
            kept_databases = databases
                .iter()
                .filter_map(|o| o.kept_database.clone())
                .collect();
        }
        decision = Some(d);
    }

    let files = if file_components.is_empty() {
        Vec::new()
    } else {
        files::restore_components(
            &backup.path,
            &file_components,
            req.root,
            &inst.backup_path,
            &files::RestoreOptions {
                cancel: Some(cancel.clone()),
                ..Default::default()
            },
            sink,
            Some(journal),
        )?
    };
    if let (Some(o), Some(outcome)) = (&repo_opts, repos_outcome.as_mut()) {
        outcome.restore = Some(restore_repositories(req, o, journal, sink, cancel)?);
    }
    let mut components = components_of(backup, &req.skip);
    for c in components.iter_mut() {
        if c.name == "repositories" {
            if let Some(r) = repos_outcome.as_ref().and_then(|o| o.restore.as_ref()) {
                c.status = r.line();
            }
        }
        if let Some(r) = files.iter().find(|r| r.name == c.name) {
            c.status = format!(
                "restored: {} files, {} bytes{}",
                r.restored_files,
                r.restored_bytes,
                r.moved_aside
                    .as_ref()
                    .map(|m| format!("; previous contents kept in {}", m.path.display()))
                    .unwrap_or_default()
            );
        }
    }
    drop(host_lock);
    Ok(RestoreReport {
        backup: backup.id.clone(),
        databases,
        files,
        components,
        jobs,
        notes,
        repositories: repos_outcome,
        strategy: decision,
        kept_databases,
        resolved: Vec::new(),
    })
}

/// Swap every new database in (each verified already), main first. A failure before a
/// database's first rename removes the new databases not swapped yet.
fn swap_all(
    req: &RestoreRequest<'_>,
    plan: &BesidePlan,
    databases: &mut [crate::restore::database::DatabaseOutcome],
    journal: &Journal,
    sink: &dyn Sink,
) -> Result<(), RecoveryError> {
    let mut swapped: Vec<String> = Vec::new();
    for i in 0..databases.len() {
        let Some(b) = databases[i].beside.clone() else {
            continue;
        };
        let Some(job) = req.databases.iter().find(|j| j.spec.dbname == b.live) else {
            continue;
        };
        let rec = beside::SwapRecord {
            connection: job.connection.to_string(),
            live: b.live.clone(),
            new: b.new.clone(),
            kept: b.kept_database.clone(),
            admin: plan.admin.clone(),
        };
        match beside::swap(&job.spec, &rec, journal, sink) {
            Ok(done) => {
                databases[i].kept_database = Some(done.kept_database.clone());
                databases[i].status = format!(
                    "restored (beside, swapped in; the failed upgrade's database is kept as {})",
                    done.kept_database
                );
                databases[i].beside = Some(done);
                swapped.push(b.live.clone());
            }
            Err(e) => {
                // Remove the new databases not swapped in (this one included when its
                // first rename did not run).
                let mut removed = Vec::new();
                for o in databases.iter().skip(i) {
                    if let (Some(nb), Some(j)) = (
                        o.beside.as_ref(),
                        req.databases
                            .iter()
                            .find(|j| o.beside.as_ref().is_some_and(|b| b.live == j.spec.dbname)),
                    ) {
                        if beside::exists(&plan.admin, &j.spec, &nb.live).unwrap_or(false)
                            && beside::drop_new(
                                &plan.admin,
                                &j.spec,
                                &nb.new,
                                journal,
                                "beside.remove",
                            )
                            .is_ok()
                        {
                            removed.push(nb.new.clone());
                        }
                    }
                }
                return Err(RecoveryError::Restore(RestoreError::Beside {
                    detail: format!(
                        "{e}{}{}",
                        if removed.is_empty() {
                            String::new()
                        } else {
                            format!(" Removed the new database(s) {}.", removed.join(", "))
                        },
                        if swapped.is_empty() {
                            String::new()
                        } else {
                            format!(
                                " Already swapped: {} (`rewind undo` swaps back).",
                                swapped.join(", ")
                            )
                        }
                    ),
                    changed: !swapped.is_empty() || e.to_string().contains("there is no database"),
                }));
            }
        }
    }
    Ok(())
}

/// Whether this run restores repositories: in the backup, not skipped now or then.
fn repositories_wanted(req: &RestoreRequest<'_>) -> bool {
    req.backup.repositories
        && !req.skip.iter().any(|s| s == "repositories")
        && !req.backup.skipped.iter().any(|s| s == "repositories")
}

/// Before anything changes: Gitaly runs (`gitlab-ctl status gitaly`), since gitaly-backup
/// restores through it. Without `gitlab-ctl` (source installs) it cannot be asked: said and
/// journaled, not refused.
fn check_gitaly(root: &HostRoot, journal: &Journal, sink: &dyn Sink) -> Result<(), RecoveryError> {
    let ctl = crate::services::GitlabCtl::new(root);
    if !ctl.exists() {
        let text = format!(
            "{} not found: Rewind cannot check that Gitaly runs; gitaly-backup needs it running",
            ctl.path().display()
        );
        sink.warn(text.clone());
        journal.note("recovery.gitaly", text, serde_json::Value::Null)?;
        return Ok(());
    }
    let status = ctl.service_status("gitaly");
    let (running, line) = match &status {
        Ok(Some(s)) => (s.is_running(), s.raw.clone()),
        Ok(None) => (
            false,
            "`gitlab-ctl status gitaly` does not list gitaly".into(),
        ),
        Err(e) => (false, e.to_string()),
    };
    journal.note(
        "recovery.gitaly",
        format!(
            "gitlab-ctl status gitaly: {}",
            if running { "running" } else { "not running" }
        ),
        serde_json::json!({"running": running, "status": line}),
    )?;
    if !running {
        return Err(RecoveryError::GitalyDown { status: line });
    }
    sink.info(format!("Gitaly runs ({line})"));
    Ok(())
}

/// Before anything changes: free space for `repositories/` in the backup directory, and
/// manifests for the backup id gitaly-backup is given (it silently skips the others).
fn check_repositories(
    req: &RestoreRequest<'_>,
    o: &repositories::RepoOptions,
    members: &[crate::backup::verify::VerifiedMember],
    journal: &Journal,
) -> Result<(), RecoveryError> {
    if o.server_side || !req.backup.path.is_file() {
        return Ok(());
    }
    let needed = repositories::run::repositories_bytes(
        members
            .iter()
            .map(|m| (m.name.as_str(), m.decoded_bytes.unwrap_or(m.size))),
    );
    repositories_space(
        &req.root.join(&req.installation.backup_path),
        needed,
        journal,
    )?;
    if let Some(id) = &o.backup_id {
        let mut ids = std::collections::BTreeSet::new();
        for m in members {
            let n = m.name.strip_prefix("./").unwrap_or(&m.name);
            if let Some(rest) = n.strip_prefix("repositories/manifests/") {
                if let Some(file) = rest
                    .rsplit('/')
                    .next()
                    .and_then(|f| f.strip_suffix(".toml"))
                {
                    if file != "+latest" {
                        ids.insert(file.to_string());
                    }
                }
            }
        }
        if !ids.is_empty() && !ids.contains(id) {
            return Err(RecoveryError::RepositoriesRefused(
                repositories::RepoError::IdMismatch {
                    id: id.clone(),
                    found: ids
                        .iter()
                        .map(|i| format!("`{i}`"))
                        .collect::<Vec<_>>()
                        .join(", "),
                },
            ));
        }
    }
    Ok(())
}

/// Free space in `dir` (the backup directory, where `repositories/` is extracted) for
/// `needed` bytes, with the same headroom as the file components.
fn repositories_space(dir: &Path, needed: u64, journal: &Journal) -> Result<(), RecoveryError> {
    let dir = existing_ancestor(dir).unwrap_or_else(|| dir.to_path_buf());
    let available = nix::sys::statvfs::statvfs(&dir)
        .map(|st| st.blocks_available() * st.fragment_size())
        .unwrap_or(u64::MAX);
    journal.note(
        "recovery.space",
        format!(
            "{}: {needed} bytes of repositories/ to extract, {available} free",
            dir.display()
        ),
        serde_json::json!({"components": ["repositories"], "needed": needed, "available": available}),
    )?;
    if needed.saturating_add(needed / 20).saturating_add(64 << 20) > available {
        return Err(RecoveryError::DiskSpace {
            dir,
            what: "repositories".into(),
            needed,
            available,
        });
    }
    Ok(())
}

/// The repositories pushed to since the backup (live main database, read-only), told to
/// the user and journaled; bundled aside when asked. Nothing is replaced here.
fn pushed_before_drop(
    req: &RestoreRequest<'_>,
    journal: &Journal,
    sink: &dyn Sink,
) -> Result<RepositoriesOutcome, RecoveryError> {
    let mut out = RepositoriesOutcome::default();
    let since = req.backup.created_at;
    let main = req.databases.iter().find(|j| j.connection == "main");
    if let (Some(since), Some(job)) = (since, main) {
        match job
            .spec
            .connect()
            .map_err(|e| e.to_string())
            .and_then(|mut c| {
                repositories::pushed::pushed_since(&mut c, since).map_err(|e| e.to_string())
            }) {
            Ok(list) => out.pushed_since_backup = list,
            Err(e) => {
                sink.warn(format!(
                    "could not list the repositories pushed to since the backup: {e}"
                ));
            }
        }
    }
    journal.note(
        "repositories.pushed_since_backup",
        format!(
            "{} project repositories pushed to since the backup",
            out.pushed_since_backup.len()
        ),
        serde_json::json!({"repositories": out.pushed_since_backup}),
    )?;
    if !out.pushed_since_backup.is_empty() {
        let names: Vec<&str> = out
            .pushed_since_backup
            .iter()
            .take(10)
            .map(|r| r.project_path.as_str())
            .collect();
        sink.warn(format!(
            "{} repositories were pushed to since the backup ({}{}); gitaly-backup replaces them with the backup's{}",
            out.pushed_since_backup.len(),
            names.join(", "),
            if out.pushed_since_backup.len() > names.len() { ", ..." } else { "" },
            if req.repositories.bundle_pushed {
                ": bundling them aside first"
            } else {
                " (--bundle-pushed keeps them as git bundles)"
            }
        ));
        if req.repositories.bundle_pushed {
            let parent = req.root.join(&req.installation.backup_path);
            let (dir, bundled) = repositories::pushed::bundle_aside(
                req.root,
                &out.pushed_since_backup,
                &parent,
                &req.backup.id,
                sink,
                journal,
            )
            .map_err(RecoveryError::RepositoriesRefused)?;
            out.bundled_to = Some(dir);
            out.bundled = bundled;
        }
    }
    Ok(out)
}

/// Extract `repositories/`, list the restored database's repositories, run gitaly-backup.
fn restore_repositories(
    req: &RestoreRequest<'_>,
    o: &repositories::RepoOptions,
    journal: &Journal,
    sink: &dyn Sink,
    cancel: &Cancel,
) -> Result<repositories::run::RepoReport, RecoveryError> {
    let backup = req.backup;
    journal.begin(
        "repositories",
        "restore the repositories with gitaly-backup",
        serde_json::json!({"options": o}),
    )?;
    let fail = |e: repositories::RepoError| RecoveryError::Repositories(e);
    let extracted;
    let path = if o.server_side {
        PathBuf::new()
    } else if backup.path.is_dir() {
        backup.path.join("repositories")
    } else {
        let parent = req.root.join(&req.installation.backup_path);
        extracted =
            repositories::run::extract(&backup.path, &parent, sink, cancel).map_err(fail)?;
        extracted.path.clone()
    };
    let main = req
        .databases
        .iter()
        .find(|j| j.connection == "main")
        .ok_or_else(|| RecoveryError::NoDatabase {
            root: req.root.base().to_path_buf(),
        })?;
    let mut client = main.spec.connect()?;
    let repos = repositories::repositories_from_db(&mut client).map_err(fail)?;
    drop(client);
    let result = repositories::run::restore(req.root, &path, o, &repos, sink, journal);
    match &result {
        Ok(r) => journal.end(
            "repositories",
            if r.ok() { "ok" } else { "incomplete" },
            serde_json::json!({"restored": r.tally.restored, "skipped": r.tally.skipped,
                "failed": r.tally.failed, "expected": r.expected}),
        )?,
        Err(e) => journal.end(
            "repositories",
            "failed",
            serde_json::json!({"error": e.to_string()}),
        )?,
    }
    result.map_err(fail)
}

/// Free space for the extraction of each component, per file system of its target.
fn check_file_space(
    root: &HostRoot,
    components: &[files::Component],
    decoded: &HashMap<&str, u64>,
    journal: &Journal,
) -> Result<(), RecoveryError> {
    // (fsid) -> (dir, needed, available, names)
    let mut per_fs: HashMap<u64, (PathBuf, u64, u64, Vec<String>)> = HashMap::new();
    for c in components {
        let member = c.member.strip_prefix("./").unwrap_or(&c.member);
        let need = decoded.get(member).copied().unwrap_or(0);
        let target = root.join(&c.target);
        let Some(dir) = existing_ancestor(&target) else {
            continue;
        };
        let Ok(st) = nix::sys::statvfs::statvfs(&dir) else {
            continue;
        };
        let avail = st.blocks_available() * st.fragment_size();
        let e = per_fs
            .entry(st.filesystem_id())
            .or_insert((dir.clone(), 0, avail, Vec::new()));
        e.1 += need;
        e.3.push(c.name.clone());
    }
    for (dir, needed, available, names) in per_fs.into_values() {
        journal.note(
            "recovery.space",
            format!(
                "{}: {needed} bytes to extract, {available} free",
                dir.display()
            ),
            serde_json::json!({"components": names, "needed": needed, "available": available}),
        )?;
        // Headroom for file system overhead (blocks, inodes): 5 % and 64 MiB.
        if needed + needed / 20 + (64 << 20) > available {
            return Err(RecoveryError::DiskSpace {
                dir,
                what: names.join(", "),
                needed,
                available,
            });
        }
    }
    Ok(())
}

fn existing_ancestor(p: &Path) -> Option<PathBuf> {
    let mut cur = Some(p);
    while let Some(d) = cur {
        if d.is_dir() {
            return Some(d.to_path_buf());
        }
        cur = d.parent();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extraction_that_does_not_fit_is_refused_with_the_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let root = HostRoot::new(dir.path());
        let journal = Journal::open_in(&dir.path().join("journal")).unwrap();
        let comps = files::select_components(
            &["uploads.tar.gz".to_string()],
            &[],
            &[],
            InstallKind::Omnibus,
        );
        assert_eq!(comps.len(), 1);
        let mut decoded = HashMap::new();
        decoded.insert("uploads.tar.gz", 1u64 << 20);
        check_file_space(&root, &comps, &decoded, &journal).unwrap();
        decoded.insert("uploads.tar.gz", u64::MAX / 4);
        let e = check_file_space(&root, &comps, &decoded, &journal).unwrap_err();
        assert!(
            matches!(&e, RecoveryError::DiskSpace { what, needed, .. }
                if what == "uploads" && *needed == u64::MAX / 4),
            "{e}"
        );
        assert!(
            e.to_string().contains("Nothing was changed")
                || e.to_string().contains("nothing was changed")
        );
    }

    #[test]
    fn repositories_that_do_not_fit_are_refused_with_the_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open_in(&dir.path().join("journal")).unwrap();
        repositories_space(dir.path(), 1 << 20, &journal).unwrap();
        let e = repositories_space(&dir.path().join("missing/below"), u64::MAX / 4, &journal)
            .unwrap_err();
        assert!(
            matches!(&e, RecoveryError::DiskSpace { what, needed, available, dir: d }
                if what == "repositories" && *needed == u64::MAX / 4 && *available > 0
                    && d == dir.path()),
            "{e}"
        );
        let text = e.to_string();
        assert!(text.contains(&(u64::MAX / 4).to_string()), "{text}");
        assert!(text.contains("nothing was changed"), "{text}");
        assert_eq!(e.outcome(), Outcome::NothingChanged);
    }
}
