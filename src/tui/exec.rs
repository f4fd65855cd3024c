//! Executes [`Command`]s: engine calls on blocking worker threads, whose results and
//! progress come back to the event loop as [`Event::Engine`] messages. Nothing here blocks
//! the UI for longer than a small file write.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rewind_engine::backup::catalogue::list_backups;
use rewind_engine::detect::{detect, DatabaseConn, DetectOptions, InstallKind, Installation};
use rewind_engine::exec::Runner;
use rewind_engine::journal::Journal;
use rewind_engine::migrate::assess::{assess, Assessment, Verdict};
use rewind_engine::migrate::describe::{facts, gitlab_mark_command_for};
use rewind_engine::migrate::log::{failed_migrate_logs, parse_file, Failure};
use rewind_engine::migrate::repair::{
    migrate_cmd_for, repair, Confirm, Databases, Decision, RepairOptions,
};
use rewind_engine::migrate::triage::{newest_failed_log, triage, Triage};
use rewind_engine::packages::rollback::{self, RollbackError, RollbackOptions, RollbackPlan};
use rewind_engine::packages::PackageError;
use rewind_engine::pg::conn::ConnSpec;
use rewind_engine::preflight::{self, Inputs};
use rewind_engine::progress::{self, Cancel, Level, SinkExt};
use rewind_engine::recovery::last_verification;
use rewind_engine::restore::beside::{Resolve, Strategy};
use rewind_engine::restore::database::{member_for, DatabaseJob, RestoreFacts, RestoreOptions};
use rewind_engine::restore::drop::DropOptions;
use rewind_engine::restore::plan::{build_plan, BackupFacts};
use rewind_engine::restore::salvage;
use rewind_engine::restore::verify::{Status as VerifyStatus, VerifyReport};
use rewind_engine::root::HostRoot;
use rewind_engine::services::{post_restore_steps, GitlabCtl};
use rewind_engine::session::{BackupIdentity, Session};
use tokio::sync::mpsc::UnboundedSender;

use rewind_engine::recovery::{config, postcheck};
use rewind_engine::repositories;

use super::event::{
    ActionFailed, ActionPlan, Command, Event, Host, Msg, RepoChoice, RestoreFailure, RestoreSummary,
};
use super::source::source_for;
use super::state::{
    BackupRow, CheckState, DropItem, EditionQuestion, Inventory, PostRow, PushedRow, RepairItem,
    RepoPlan, ResumeOffer, Salvaged, Step, StrategyView, VerifyLine,
};

/// What the executor needs to reach the host.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    pub root: HostRoot,
    pub backup_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    /// `--in-place`: GitLab's way (snapshot, drop, load) even where beside-and-swap can run.
    pub in_place: bool,
    /// `--db-admin OSUSER[:ROLE]`: who creates and renames databases for beside-and-swap
    /// (default: Omnibus's `gitlab-psql`).
    pub db_admin: Option<String>,
}

/// Runs commands; owns the cancellation flags of running work.
pub struct Executor {
    opts: Arc<ExecOptions>,
    /// Answers to the running repair loop's questions.
    repair_answer: Option<std::sync::mpsc::Sender<bool>>,
    tx: UnboundedSender<Event>,
    cancels: Arc<Mutex<Vec<Cancel>>>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

/// Whether the loop goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Quit,
}

impl Executor {
    pub fn new(opts: ExecOptions, tx: UnboundedSender<Event>) -> Self {
        Executor {
            opts: Arc::new(opts),
            repair_answer: None,
            tx,
            cancels: Arc::new(Mutex::new(Vec::new())),
            workers: Vec::new(),
        }
    }

    /// Work still running on worker threads.
    pub fn running(&mut self) -> usize {
        self.workers.retain(|w| !w.is_finished());
        self.workers.len()
    }

    fn send(&self, m: Msg) {
        let _ = self.tx.send(Event::Engine(m));
    }

    /// A sink forwarding engine progress into the event loop.
    fn sink(&self) -> impl progress::Sink + 'static {
        let tx = self.tx.clone();
        move |e: progress::Event| {
            // The path the engine reports, once the snapshot is complete and journaled.
            if let progress::Event::SnapshotWritten { database, path, .. } = &e {
                let _ = tx.send(Event::Engine(Msg::SnapshotTaken {
                    database: database.clone(),
                    path: path.clone(),
                }));
            }
            let _ = tx.send(Event::Engine(Msg::Progress(e)));
        }
    }

    fn new_cancel(&self) -> Cancel {
        let c = Cancel::new();
        self.cancels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(c.clone());
        c
    }

    /// Run `f` on a blocking worker thread.
    fn spawn(&mut self, f: impl FnOnce() + Send + 'static) {
        self.workers.push(tokio::task::spawn_blocking(f));
    }

    /// Execute one command. Commands carry everything they need: the executor reads no
    /// wizard state.
    pub fn execute(&mut self, cmd: Command) -> Flow {
        match cmd {
            Command::Quit => return Flow::Quit,
            Command::Cancel => {
                for c in self
                    .cancels
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .drain(..)
                {
                    c.cancel();
                }
            }
            Command::Detect => {
                let opts = self.opts.clone();
                let tx = self.tx.clone();
                self.spawn(move || {
                    let r = detect_with(&opts);
                    let _ = tx.send(Event::Engine(Msg::Detected(r.map(Box::new))));
                });
            }
            Command::Triage { host } => {
                let root = self.opts.root.clone();
                let tx = self.tx.clone();
                self.spawn(move || {
                    let r = triage_host(&root, &host.installation);
                    let _ = tx.send(Event::Engine(Msg::Triaged(r.map(Box::new))));
                });
            }
            Command::LoadSession { host } => {
                let tx = self.tx.clone();
                self.spawn(move || match Session::load(&host.journal_dir) {
                    Ok(Some(session)) => {
                        let id = BackupIdentity::of(&session.backup.path).ok();
                        let decision = session
                            .resume_point(id.as_ref(), host.installation.version.as_ref())
                            .map_err(|v| v.iter().map(|m| m.to_string()).collect());
                        let _ = tx.send(Event::Engine(Msg::SessionFound(Box::new(ResumeOffer {
                            session,
                            decision,
                        }))));
                    }
                    Ok(None) => {}
                    Err(e) => {
                        let _ = tx.send(Event::Engine(Msg::Progress(progress::Event::Log {
                            level: Level::Warn,
                            message: e.to_string(),
                        })));
                    }
                });
            }
            Command::LoadBackups { host } => {
                let dir = self.opts.root.join(&host.installation.backup_path);
                let tx = self.tx.clone();
                self.spawn(move || {
                    let r = super::catalogue::list(&dir, host.installation.version.as_ref());
                    let _ = tx.send(Event::Engine(Msg::Backups(r)));
                });
            }
            Command::Preflight { host, backup } => {
                let inst = *host.installation;
                let inputs = Inputs {
                    archive: backup.path.clone(),
                    target: backup.version.clone(),
                    databases: Inputs::databases_of(&inst),
                    root: self.opts.root.clone(),
                    snapshot_dir: host.journal_dir,
                    installation: inst,
                };
                let cancel = self.new_cancel();
                let sink = self.sink();
                let tx = self.tx.clone();
                self.spawn(move || {
                    let (_, verified) =
                        preflight::run_all_keeping(&inputs, &sink, &cancel, &mut |c| {
                            let _ = tx.send(Event::Engine(Msg::PreflightCheck(c.clone())));
                        });
                    if let Some(v) = verified {
                        let _ = tx.send(Event::Engine(Msg::ArchiveVerified(Box::new(v))));
                    }
                    let _ = tx.send(Event::Engine(Msg::PreflightDone));
                });
            }
            Command::PlanAction {
                host,
                step,
                backup,
                allow_edition_change,
            } => {
                let root = self.opts.root.clone();
                let tx = self.tx.clone();
                self.spawn(move || {
                    let result = plan_action(
                        &root,
                        &host.installation,
                        step,
                        &backup,
                        allow_edition_change,
                    );
                    let m = match result {
                        Ok(Planned::Edition(q)) => Msg::EditionDiffers(q),
                        Ok(Planned::Plan(p)) => Msg::ActionPlanned {
                            step,
                            result: Ok(p),
                        },
                        Ok(Planned::ByHand(reason)) => Msg::Unavailable { step, reason },
                        Err(e) => Msg::ActionPlanned {
                            step,
                            result: Err(e),
                        },
                    };
                    let _ = tx.send(Event::Engine(m));
                });
            }
            Command::RunAction {
                host,
                step,
                backup,
                snapshot,
                taken,
                no_snapshot_because,
                allow_edition_change,
            } => {
                let root = self.opts.root.clone();
                let sink = self.sink();
                let tx = self.tx.clone();
                let opts = self.opts.clone();
                let cancel = self.new_cancel();
                self.spawn(move || {
                    let journal = Journal::open_in(&host.journal_dir).ok();
                    let result = run_action(
                        &root,
                        &host.installation,
                        step,
                        &backup,
                        &ActionEnv {
                            sink: &sink,
                            journal: journal.as_ref(),
                            snapshot,
                            taken: &taken,
                            no_snapshot_because: &no_snapshot_because,
                            cancel: &cancel,
                            allow_edition_change,
                        },
                    );
                    let again = detect_with(&opts).ok().map(Box::new);
                    let _ = tx.send(Event::Engine(Msg::ActionDone {
                        step,
                        result,
                        installation: again,
                    }));
                });
            }
            Command::Salvage { host, backup } => {
                let root = self.opts.root.clone();
                let tx = self.tx.clone();
                self.spawn(move || {
                    let r = salvage(&root, &host, &backup);
                    let _ = tx.send(Event::Engine(Msg::Salvaged(r)));
                });
            }
            Command::LoadInventory {
                host,
                backup,
                verified,
            } => {
                let root = self.opts.root.clone();
                let tx = self.tx.clone();
                self.spawn(move || {
                    let r = inventory(&root, &host.installation, &backup, verified.as_deref());
                    let _ = tx.send(Event::Engine(Msg::Inventory(r)));
                    let r = repo_plan(&root, &host.installation, &backup);
                    let _ = tx.send(Event::Engine(Msg::Repositories(r)));
                });
            }
            Command::Restore {
                host,
                backup,
                confirm,
                snapshot,
                reuse,
                verified,
                repositories,
                strategy,
            } => {
                let root = self.opts.root.clone();
                let cancel = self.new_cancel();
                let tx = self.tx.clone();
                let opts = self.opts.clone();
                self.spawn(move || {
                    let r = restore(
                        &root,
                        &host,
                        &backup,
                        Confirmed {
                            names: confirm,
                            snapshot,
                            reuse,
                            verified,
                            repositories,
                            strategy,
                            in_place: opts.in_place,
                            db_admin: opts.db_admin.clone(),
                        },
                        &tx,
                        &cancel,
                    );
                    let _ = tx.send(Event::Engine(Msg::RestoreDone(r)));
                });
            }
            Command::DecideStrategy { host } => {
                let root = self.opts.root.clone();
                let opts = self.opts.clone();
                let tx = self.tx.clone();
                self.spawn(move || {
                    let r = decide_strategy(&root, &host, opts.in_place, opts.db_admin.as_deref());
                    let _ = tx.send(Event::Engine(Msg::StrategyDecided(r)));
                });
            }
            Command::FindInterruptedSwaps { host } => {
                let tx = self.tx.clone();
                self.spawn(move || {
                    let r = interrupted_swaps(&host);
                    let _ = tx.send(Event::Engine(Msg::InterruptedSwaps(r)));
                });
            }
            Command::ResolveSwaps { host, complete } => {
                let root = self.opts.root.clone();
                let sink = self.sink();
                let tx = self.tx.clone();
                self.spawn(move || {
                    let r = resolve_swaps(&root, &host, complete, &sink);
                    let _ = tx.send(Event::Engine(Msg::SwapsResolved(r)));
                });
            }
            Command::LoadConfig { host, before } => {
                let root = self.opts.root.clone();
                let tx = self.tx.clone();
                self.spawn(move || {
                    let all = config::list(&root, before);
                    let shown = all
                        .iter()
                        .find(|a| a.nearest)
                        .or(all.first())
                        .map(|a| a.name.clone());
                    let _ = tx.send(Event::Engine(Msg::ConfigListed(Ok(all))));
                    if let Some(name) = shown {
                        let result = config_diff(&root, &name);
                        let _ = tx.send(Event::Engine(Msg::ConfigDiffed { name, result }));
                    }
                    let _ = host;
                });
            }
            Command::DiffConfig { host, name } => {
                let root = self.opts.root.clone();
                let tx = self.tx.clone();
                self.spawn(move || {
                    let result = config_diff(&root, &name);
                    let _ = tx.send(Event::Engine(Msg::ConfigDiffed { name, result }));
                    let _ = host;
                });
            }
            Command::RestoreConfig { host, name, files } => {
                let root = self.opts.root.clone();
                let tx = self.tx.clone();
                let sink = self.sink();
                self.spawn(move || {
                    let r = restore_config(&root, &host, &name, &files, &sink);
                    let _ = tx.send(Event::Engine(Msg::ConfigRestored(r)));
                });
            }
            Command::PlanPostChecks { host } => {
                let root = self.opts.root.clone();
                let tx = self.tx.clone();
                self.spawn(move || {
                    let _ = host;
                    let _ = tx.send(Event::Engine(Msg::PostPlanned(Ok(post_rows(&root)))));
                });
            }
            Command::RunPostChecks { host, steps } => {
                let root = self.opts.root.clone();
                let tx = self.tx.clone();
                let sink = self.sink();
                let cancel = self.new_cancel();
                self.spawn(move || {
                    run_post_checks(&root, &host, &steps, &sink, &tx, &cancel);
                    let _ = tx.send(Event::Engine(Msg::PostFinished));
                });
            }
            Command::Verify { host } => {
                let tx = self.tx.clone();
                self.spawn(move || {
                    let r = last_verification(&host.journal_dir)
                        .map_err(|e| e.to_string())
                        .and_then(|reports| {
                            if reports.is_empty() {
                                Err("the journal holds no verification of the last restore: it stopped before verifying; run the restore again".into())
                            } else {
                                Ok(reports.iter().flat_map(verify_lines).collect())
                            }
                        });
                    let _ = tx.send(Event::Engine(Msg::Verified(r)));
                });
            }
            Command::FindMigrateLogs { host } => {
                let root = self.opts.root.clone();
                let tx = self.tx.clone();
                self.spawn(move || {
                    let logs = failed_migrate_logs(&root, host.installation.log_dir.as_deref());
                    let migrate_cmd = migrate_cmd_for(&root, &host.installation)
                        .into_iter()
                        .map(|w| w.to_string_lossy().into_owned())
                        .collect();
                    let _ = tx.send(Event::Engine(Msg::MigrateLogs { logs, migrate_cmd }));
                });
            }
            Command::AssessRepair { host, log } => {
                let root = self.opts.root.clone();
                let tx = self.tx.clone();
                self.spawn(move || {
                    let r = assess_log(&root, &host.installation, &log);
                    let _ = tx.send(Event::Engine(Msg::RepairAssessed(r)));
                });
            }
            Command::RunRepair {
                host,
                log,
                version,
                migrate_cmd,
            } => {
                let (atx, arx) = std::sync::mpsc::channel();
                self.repair_answer = Some(atx);
                let root = self.opts.root.clone();
                let sink = self.sink();
                let tx = self.tx.clone();
                self.spawn(move || {
                    let r = run_repair(&root, &host, &log, version, migrate_cmd, arx, &tx, &sink);
                    let _ = tx.send(Event::Engine(Msg::RepairDone(r)));
                });
            }
            Command::RepairAnswer { mark } => {
                if let Some(a) = &self.repair_answer {
                    let _ = a.send(mark);
                }
            }
            Command::SaveSession { dir, session } => {
                if let Err(e) = session.save(&dir) {
                    self.send(Msg::Progress(progress::Event::Log {
                        level: Level::Error,
                        message: e.to_string(),
                    }));
                }
            }
            Command::RemoveSession { dir } => {
                let _ = Session::remove(&dir);
            }
        }
        Flow::Continue
    }
}

/// The triage of the host: the newest failed migrate log, the newest readable backup, the
/// databases with database tasks. Reads only.
pub fn triage_host(root: &HostRoot, inst: &Installation) -> Result<Triage, String> {
    let backup = list_backups(&root.join(&inst.backup_path), inst.version.as_ref())
        .ok()
        .and_then(|v| v.into_iter().find(|b| b.error.is_none()));
    let log = newest_failed_log(root, inst)
        .transpose()
        .map_err(|e| e.to_string())?;
    Ok(triage(inst, backup.as_ref(), log.as_ref(), &inst.databases))
}

/// Detection with the wizard's overrides (backup directory, database URL).
pub fn detect_with(opts: &ExecOptions) -> Result<Installation, String> {
    let mut inst = detect(
        &opts.root,
        &DetectOptions {
            backup_dir: opts.backup_dir.clone(),
            env: None,
        },
    )
    .map_err(|e| e.to_string())?;
    if let Some(url) = &opts.database_url {
        let spec = ConnSpec::from_url(url).map_err(|e| format!("--database-url: {e}"))?;
        inst.databases.retain(|d| d.name != "main");
        inst.databases.insert(
            0,
            DatabaseConn {
                name: "main".into(),
                spec,
                database_tasks: true,
            },
        );
    }
    Ok(inst)
}

/// What planning a command step found.
enum Planned {
    Plan(ActionPlan),
    /// The user does this step by hand (source or Docker installs), with the steps.
    ByHand(String),
    /// The backup was made on the other edition: ask before planning.
    Edition(EditionQuestion),
}

fn plan_action(
    root: &HostRoot,
    inst: &Installation,
    step: Step,
    backup: &BackupRow,
    allow_edition_change: bool,
) -> Result<Planned, String> {
    let ctl = GitlabCtl::new(root);
    match step {
        Step::StopServices | Step::StartServices => {
            if inst.kind == Some(InstallKind::Source) {
                return Ok(Planned::ByHand(format!(
                    "Source install: {} the services with your init system (sudo systemctl {} gitlab.target)",
                    if step == Step::StopServices { "stop" } else { "start" },
                    if step == Step::StopServices { "stop" } else { "start" }
                )));
            }
            if !ctl.exists() {
                return Ok(Planned::ByHand(format!(
                    "{} not found",
                    ctl.path().display()
                )));
            }
            let cmds = if step == Step::StopServices {
                vec![
                    ctl.stop_cmd(Some("puma")).map_err(|e| e.to_string())?,
                    ctl.stop_cmd(Some("sidekiq")).map_err(|e| e.to_string())?,
                ]
            } else {
                post_restore_steps(root)
                    .into_iter()
                    .filter(|s| s.changes_host)
                    .map(|s| s.cmd)
                    .collect()
            };
            Ok(Planned::Plan(ActionPlan {
                commands: cmds.iter().map(|c| c.display()).collect(),
                skip: None,
            }))
        }
        Step::RollbackPackage => {
            let Some(target) = backup.version.as_ref() else {
                return Err("the backup does not say which GitLab version made it".into());
            };
            if let Some(installed) = &inst.version {
                if installed.same_release(target) {
                    return Ok(Planned::Plan(ActionPlan {
                        commands: Vec::new(),
                        skip: Some(format!(
                            "GitLab {installed} is installed, the version the backup was made on"
                        )),
                    }));
                }
            }
            let opts = RollbackOptions {
                allow_edition_change,
                ..RollbackOptions::default()
            };
            let plan = match rollback::plan(root, target, opts) {
                Err(RollbackError::Package(PackageError::EditionChange {
                    target,
                    target_edition,
                    installed_package,
                })) => {
                    return Ok(Planned::Edition(EditionQuestion {
                        installed_package,
                        backup_package: target_edition.package().to_string(),
                        backup_version: target.with_edition(target_edition).to_string(),
                    }))
                }
                other => other.map_err(|e| e.to_string())?,
            };
            match plan {
                RollbackPlan::Package(p) => Ok(Planned::Plan(ActionPlan {
                    commands: p.steps.iter().map(|s| s.cmd.display()).collect(),
                    skip: None,
                })),
                RollbackPlan::AlreadyInstalled { version } => Ok(Planned::Plan(ActionPlan {
                    commands: Vec::new(),
                    skip: Some(format!("GitLab {version} is already installed")),
                })),
                RollbackPlan::Source {
                    checkout,
                    checklist,
                    ..
                } => {
                    let mut text = format!("Source install: run {}", checkout.display());
                    for c in checklist {
                        text.push_str("; ");
                        text.push_str(&c.command.unwrap_or(c.text));
                    }
                    Ok(Planned::ByHand(text))
                }
                RollbackPlan::Docker { image, note, .. } => Ok(Planned::ByHand(format!(
                    "Docker: run the image {image}. {note}"
                ))),
            }
        }
        _ => Err(format!("{} runs no commands", step.title())),
    }
}

/// What running a command step needs besides the host and the backup.
struct ActionEnv<'a> {
    sink: &'a dyn progress::Sink,
    journal: Option<&'a Journal>,
    /// Roll back: take the missing safety snapshots before the package step.
    snapshot: bool,
    taken: &'a BTreeMap<String, PathBuf>,
    /// Roll back: why no snapshot is taken, for the journal (when `snapshot` is false).
    no_snapshot_because: &'a str,
    cancel: &'a Cancel,
    /// Roll back: install the backup's edition in place of the installed one.
    allow_edition_change: bool,
}

fn run_action(
    root: &HostRoot,
    inst: &Installation,
    step: Step,
    backup: &BackupRow,
    env: &ActionEnv<'_>,
) -> Result<String, ActionFailed> {
    let (sink, journal) = (env.sink, env.journal);
    let ctl = GitlabCtl::new(root);
    let runner = Runner::new(sink, journal);
    // One change to the host at a time, as every command that changes it (the package
    // step takes the lock in the engine).
    let lock = || {
        rewind_engine::recovery::lock::host(root, "rewind (wizard)").map_err(|e| ActionFailed {
            message: e.to_string(),
            unchanged: true,
        })
    };
    match step {
        Step::StopServices => {
            let _lock = lock()?;
            for svc in ["puma", "sidekiq"] {
                ctl.stop(&runner, Some(svc)).map_err(|e| e.to_string())?;
            }
            Ok("puma and sidekiq are stopped".into())
        }
        Step::StartServices => {
            let _lock = lock()?;
            for st in post_restore_steps(root)
                .into_iter()
                .filter(|s| s.changes_host)
            {
                runner.run(&st.step, &st.cmd).map_err(|e| e.to_string())?;
            }
            Ok("GitLab reconfigured and started".into())
        }
        Step::RollbackPackage => {
            let target = backup
                .version
                .as_ref()
                .ok_or("the backup does not say which GitLab version made it")?;
            let opts = RollbackOptions {
                allow_edition_change: env.allow_edition_change,
                ..RollbackOptions::default()
            };
            match rollback::plan(root, target, opts).map_err(|e| e.to_string())? {
                RollbackPlan::Package(p) => {
                    let journal = journal.ok_or(
                        "Rewind's journal could not be opened: nothing is changed without it",
                    )?;
                    // The in-place strategy's safety snapshots come before the package
                    // step (the restore reuses them); the engine checks and sequences it.
                    let databases = if env.snapshot {
                        rewind_engine::recovery::databases_for(root, inst, None)
                            .map_err(|e| e.to_string())?
                    } else {
                        Vec::new()
                    };
                    let (out, _) = rewind_engine::recovery::snapshot::roll_back(
                        &rewind_engine::recovery::snapshot::PackageStep {
                            root,
                            plan: &p,
                            databases: &databases,
                            backup_path: &root.join(&inst.backup_path),
                            snapshot: env.snapshot,
                            no_snapshot_because: env.no_snapshot_because,
                            taken: env.taken,
                        },
                        journal,
                        sink,
                        env.cancel,
                    )
                    .map_err(|e| match e {
                        rewind_engine::recovery::snapshot::PackageStepError::Refused(
                            r @ rewind_engine::recovery::RecoveryError::SnapshotPrecheck { .. },
                        ) => ActionFailed {
                            message: format!("{r} (press d to go on without the safety snapshot)"),
                            unchanged: true,
                        },
                        rewind_engine::recovery::snapshot::PackageStepError::Refused(r) => {
                            ActionFailed {
                                message: r.to_string(),
                                unchanged: true,
                            }
                        }
                        other => other.to_string().into(),
                    })?;
                    Ok(format!("GitLab {} is installed", out.detected))
                }
                RollbackPlan::AlreadyInstalled { version } => {
                    Ok(format!("GitLab {version} is already installed"))
                }
                _ => Err(format!(
                    "Rewind does not roll back {:?} installs; follow the checklist",
                    inst.kind
                )
                .into()),
            }
        }
        _ => Err(format!("{} runs no commands", step.title()).into()),
    }
}

fn jobs_of(inst: &Installation) -> Vec<DatabaseJob> {
    inst.databases
        .iter()
        .filter(|d| d.database_tasks)
        .map(|d| DatabaseJob {
            connection: d.name.clone(),
            spec: d.spec.clone(),
            member: member_for(&d.name),
        })
        .collect()
}

fn facts_of(root: &HostRoot, inst: &Installation, backup: &BackupRow) -> RestoreFacts {
    RestoreFacts {
        backup_version: backup.version.clone(),
        backup_version_text: backup.version.as_ref().map(|v| v.to_string()),
        installed_version: inst.version.clone(),
        db_version: backup
            .details
            .iter()
            .find(|(k, _)| k == "db_version")
            .map(|(_, v)| v.clone()),
        backup_path: root.join(&inst.backup_path),
    }
}

/// Parallel restore connections for the wizard: the cores, 2 to 4.
fn wizard_jobs() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(2, 4)
}

fn restore_options(snapshot: bool) -> RestoreOptions {
    RestoreOptions {
        confirm_drop: Vec::new(),
        snapshot,
        reuse_snapshots: BTreeMap::new(),
        jobs: wizard_jobs(),
        continue_on_error: false,
        allow_version_mismatch: false,
        drop: DropOptions::default(),
        throwaway: false,
        beside: None,
        catalogs: BTreeMap::new(),
    }
}

/// What the drop destroys in each database (main first), with the failed upgrade's
/// leftovers marked (read-only).
fn inventory(
    root: &HostRoot,
    inst: &Installation,
    backup: &BackupRow,
    verified: Option<&rewind_engine::backup::verify::Verified>,
) -> Result<Vec<Inventory>, String> {
    let jobs = jobs_of(inst);
    if jobs.is_empty() {
        return Err("no database connection found in database.yml".into());
    }
    let source = source_for(&backup.path)?;
    let facts = facts_of(root, inst, backup);
    // The plan needs confirmations to say "runnable"; the inventory does not.
    let mut opts = restore_options(true);
    opts.confirm_drop = jobs.iter().map(|j| j.spec.dbname.clone()).collect();
    if let Some(report) = verified.and_then(|v| v.still_valid(&backup.path)) {
        opts.catalogs = report.catalogs();
    }
    let plan = build_plan(
        &source,
        &jobs,
        &BackupFacts {
            id: backup.id.clone(),
            components: backup.components.clone(),
            skipped_at_backup: backup.skipped.clone(),
            created_at: backup.backup_created_at,
        },
        &facts,
        &opts,
        &[],
    );
    if plan.databases.is_empty() {
        return Err("the plan lists no database".into());
    }
    plan.databases
        .iter()
        .map(|db| {
            if db.drop.is_empty() && db.status != "restore" {
                return Err(format!("{}: {}", db.database, db.status));
            }
            Ok(Inventory {
                database: db.database.clone(),
                items: db
                    .drop
                    .iter()
                    .map(|d| DropItem {
                        kind: d.class.to_lowercase(),
                        name: d.object.clone(),
                        rows: d.rows.map(|r| r as i64),
                        bytes: d.bytes,
                        leftover: d.leftover,
                    })
                    .collect(),
                created_since: db
                    .since_backup
                    .as_ref()
                    .map(|r| r.created_total())
                    .unwrap_or(0),
                since_backup: match (&db.since_backup, &db.since_backup_error) {
                    (Some(r), _) => Some(r.summary()),
                    (None, Some(e)) => Some(format!("Written since the backup: not counted ({e})")),
                    (None, None) => None,
                },
            })
        })
        .collect()
}

/// The salvage of the rows created since the backup, from the live databases, before the
/// drop: the loss report's tables (as the drop screen counted them), journaled.
fn salvage(root: &HostRoot, host: &Host, backup: &BackupRow) -> Result<Salvaged, String> {
    let inst = &host.installation;
    let at = backup.backup_created_at.ok_or_else(|| {
        "the backup's time is unknown (no backup_created_at): what was created since cannot be told"
            .to_string()
    })?;
    let jobs = jobs_of(inst);
    let source = source_for(&backup.path)?;
    let facts = facts_of(root, inst, backup);
    let reports = salvage::loss_reports(&source, &jobs, at, facts.db_version.as_deref())
        .map_err(|e| e.to_string())?;
    let dbs: Vec<salvage::ExportDatabase<'_>> = reports
        .iter()
        .map(|(i, r)| salvage::ExportDatabase {
            connection: jobs[*i].connection.to_string(),
            spec: &jobs[*i].spec,
            report: r,
        })
        .collect();
    let journal = Journal::open_in(&host.journal_dir).map_err(|e| e.to_string())?;
    let out = salvage::export(
        &facts.backup_path,
        &backup.id,
        at,
        &dbs,
        false,
        Some(&journal),
    )
    .map_err(|e| e.to_string())?;
    match (out.dir, out.import_command) {
        (Some(dir), Some(import_command)) => Ok(Salvaged {
            dir,
            rows: out.manifest.rows(),
            tables: out.manifest.tables(),
            import_command,
        }),
        _ => Err("nothing was created since the backup: nothing to salvage".into()),
    }
}

/// What restoring the backup's repositories replaces: the storages gitaly-backup empties
/// and the repositories pushed to since the backup (live main database, read-only).
/// `None` when the backup has no repositories to restore.
fn repo_plan(
    root: &HostRoot,
    inst: &Installation,
    backup: &BackupRow,
) -> Result<Option<RepoPlan>, String> {
    let entry = rewind_engine::backup::catalogue::resolve(
        root,
        &inst.backup_path,
        &backup.id,
        inst.version.as_ref(),
        false,
    )
    .map_err(|e| e.to_string())?;
    if !entry.repositories || entry.skipped.iter().any(|s| s == "repositories") {
        return Ok(None);
    }
    let o = repositories::RepoOptions::for_backup(
        entry.information.as_ref(),
        &repositories::configured_storages(root),
        None,
        None,
    );
    let pushed = match (
        entry.created_at,
        jobs_of(inst).into_iter().find(|j| j.connection == "main"),
    ) {
        (Some(since), Some(main)) => main
            .spec
            .connect()
            .map_err(|e| e.to_string())
            .and_then(|mut c| {
                repositories::pushed::pushed_since(&mut c, since).map_err(|e| e.to_string())
            })
            .map(|v| {
                v.into_iter()
                    .map(|r| PushedRow {
                        project: r.project_path,
                        pushes: r.pushes,
                        last_push: r.last_push,
                    })
                    .collect()
            }),
        (None, _) => Err("the backup does not say when it was made".into()),
        (_, None) => Err("no main database in database.yml".into()),
    };
    Ok(Some(RepoPlan {
        storages: o.remove_all,
        server_side: o.server_side,
        pushed,
    }))
}

/// The configuration archive `name` compared with the live `/etc/gitlab`.
fn config_diff(root: &HostRoot, name: &str) -> Result<Box<config::ConfigDiff>, String> {
    let a = config::choose(root, Some(name), None).map_err(|e| e.to_string())?;
    let contents = config::read_archive(root, &a).map_err(|e| e.to_string())?;
    Ok(Box::new(config::diff(root, &contents)))
}

/// Restore `files` from the archive `name` (the engine checks the archive again, journals
/// each move before it, and moves the live files aside).
fn restore_config(
    root: &HostRoot,
    host: &Host,
    name: &str,
    files: &[String],
    sink: &dyn progress::Sink,
) -> Result<String, String> {
    let journal = Journal::open_in(&host.journal_dir).map_err(|e| e.to_string())?;
    let a = config::choose(root, Some(name), None).map_err(|e| e.to_string())?;
    let contents = config::read_archive(root, &a).map_err(|e| e.to_string())?;
    let done =
        config::restore(root, &contents, files, &journal, sink).map_err(|e| e.to_string())?;
    Ok(done
        .iter()
        .map(|r| match &r.moved_aside {
            Some(m) => format!("{} restored (previous: {})", r.path.display(), m.display()),
            None => format!("{} restored", r.path.display()),
        })
        .collect::<Vec<_>>()
        .join("; "))
}

/// Journal step of the readiness wait.
const READINESS: &str = "post.readiness";
/// How long the wizard waits for GitLab to answer ready.
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// The checks screen's rows: the readiness wait, then GitLab's checks (the default ones
/// selected, the others offered).
fn post_rows(root: &HostRoot) -> Vec<PostRow> {
    let eps: Vec<String> = postcheck::endpoints(root)
        .iter()
        .map(|e| e.to_string())
        .collect();
    let mut rows = vec![PostRow {
        step: READINESS.into(),
        what: format!(
            "GitLab answers its readiness endpoint (waits up to {} s)",
            READY_TIMEOUT.as_secs()
        ),
        command: format!("GET {}", eps.join(", or ")),
        selected: true,
        changes_host: false,
        state: CheckState::Pending,
        output: Vec::new(),
    }];
    rows.extend(postcheck::checks(root).into_iter().map(|c| PostRow {
        step: c.step.into(),
        what: c.what.into(),
        command: c.cmd.display(),
        selected: c.default,
        changes_host: c.changes_host,
        state: CheckState::Pending,
        output: Vec::new(),
    }));
    rows
}

/// Run the selected checks in order, each journaled with its output; a check that fails is
/// reported, not fatal. Stops between checks when cancelled.
fn run_post_checks(
    root: &HostRoot,
    host: &Host,
    steps: &[String],
    sink: &dyn progress::Sink,
    tx: &UnboundedSender<Event>,
    cancel: &Cancel,
) {
    let send = |m: Msg| {
        let _ = tx.send(Event::Engine(m));
    };
    let journal = match Journal::open_in(&host.journal_dir) {
        Ok(j) => j,
        Err(e) => {
            for step in steps {
                send(Msg::PostDone {
                    step: step.clone(),
                    result: Err(format!("Rewind's journal could not be opened: {e}")),
                    doctor: None,
                });
            }
            return;
        }
    };
    let checks = postcheck::checks(root);
    for step in steps {
        if cancel.is_cancelled() {
            break;
        }
        send(Msg::PostStarted { step: step.clone() });
        if step == READINESS {
            let _ = journal.begin(
                READINESS,
                "wait for GitLab to answer /-/readiness",
                serde_json::json!({"timeout_secs": READY_TIMEOUT.as_secs()}),
            );
            // What it hears while waiting is the row's output.
            let as_output = |e: progress::Event| match e {
                progress::Event::Log { message, .. } => {
                    sink.event(progress::Event::Output { line: message })
                }
                e => sink.event(e),
            };
            let r = postcheck::wait_ready(
                root,
                READY_TIMEOUT,
                std::time::Duration::from_secs(2),
                &as_output,
                Some(cancel),
            );
            let result = match r {
                Ok(r) => {
                    let _ = journal.end(
                        READINESS,
                        "ok",
                        serde_json::to_value(&r).unwrap_or_default(),
                    );
                    sink.event(progress::Event::Output {
                        line: format!("{}: HTTP {} {}", r.endpoint, r.answer.status, r.answer.body),
                    });
                    Ok(format!(
                        "GitLab answers ready after {} s ({})",
                        r.waited_ms / 1000,
                        r.endpoint
                    ))
                }
                Err(e) => {
                    let _ = journal.end(
                        READINESS,
                        "failed",
                        serde_json::json!({"error": e.to_string()}),
                    );
                    Err(e.to_string())
                }
            };
            send(Msg::PostDone {
                step: step.clone(),
                result,
                doctor: None,
            });
            continue;
        }
        let Some(c) = checks.iter().find(|c| c.step == step) else {
            send(Msg::PostDone {
                step: step.clone(),
                result: Err("not a check of this host".into()),
                doctor: None,
            });
            continue;
        };
        let runner = Runner::new(sink, Some(&journal));
        let f = match runner.run_unchecked(c.step, &c.cmd) {
            Ok(f) => f,
            Err(e) => {
                send(Msg::PostDone {
                    step: step.clone(),
                    result: Err(e.to_string()),
                    doctor: None,
                });
                continue;
            }
        };
        let _ = journal.note(
            c.step,
            "output captured",
            serde_json::json!({ "exit_code": f.code, "lines": f.lines }),
        );
        let exit = match (f.code, f.signal) {
            (Some(c), _) => format!("exit code {c}"),
            (None, Some(s)) => format!("killed by signal {s}"),
            (None, None) => "ended".into(),
        };
        let (result, doctor) = if c.step == "post.doctor_secrets" {
            let d = postcheck::parse_doctor_secrets(&f.lines.join("\n"));
            let _ = journal.note(
                c.step,
                if d.ok() {
                    "every value decrypts"
                } else {
                    "values that cannot be decrypted"
                },
                serde_json::to_value(&d).unwrap_or_default(),
            );
            let r = if !d.done {
                Err(format!("{exit}; it did not run to its end (no `Done!`)"))
            } else if d.ok() && f.success() {
                Ok(format!(
                    "every encrypted value decrypts ({} models)",
                    d.models.len()
                ))
            } else if d.ok() {
                Err(exit)
            } else {
                Err(format!(
                    "{} row(s) cannot be decrypted with this host's gitlab-secrets.json",
                    d.total
                        .unwrap_or_else(|| d.failing().map(|m| m.failures).sum())
                ))
            };
            (r, Some(Box::new(d)))
        } else if f.success() {
            (Ok(exit), None)
        } else {
            (Err(exit), None)
        };
        send(Msg::PostDone {
            step: step.clone(),
            result,
            doctor,
        });
    }
}

/// The confirmations the wizard collected for the restore.
struct Confirmed {
    /// Each database's name, typed.
    names: Vec<String>,
    /// Snapshot each database that has none yet.
    snapshot: bool,
    /// Snapshots already taken in this recovery, by database.
    reuse: BTreeMap<String, PathBuf>,
    /// The preflight's verification of the archive.
    verified: Option<Box<rewind_engine::backup::verify::Verified>>,
    /// The repositories, as confirmed on the drop screens.
    repositories: RepoChoice,
    /// The strategy the drop screens showed (the engine refuses another).
    strategy: Option<Strategy>,
    /// The wizard was started with `--in-place`.
    in_place: bool,
    /// `--db-admin`.
    db_admin: Option<String>,
}

/// The restore strategy, decided as `rewind restore` and `rewind rollback` decide it.
fn decide_strategy(
    root: &HostRoot,
    host: &Host,
    in_place: bool,
    db_admin: Option<&str>,
) -> Result<StrategyView, String> {
    let inst = &*host.installation;
    let databases =
        rewind_engine::recovery::databases_for(root, inst, None).map_err(|e| e.to_string())?;
    let d = rewind_engine::recovery::strategy(
        root,
        inst,
        &databases,
        in_place,
        db_admin,
        Default::default(),
    );
    Ok(StrategyView {
        strategy: d.strategy,
        reasons: d.reasons,
    })
}

/// Swaps the journal shows interrupted between their renames, one line each.
pub(crate) fn interrupted_swaps(host: &Host) -> Result<Vec<String>, String> {
    // No journal yet: no recovery ran on this host.
    let Some(entries) = Journal::read_in(&host.journal_dir).map_err(|e| e.to_string())? else {
        return Ok(Vec::new());
    };
    Ok(rewind_engine::restore::beside::interrupted(&entries)
        .into_iter()
        .map(|r| {
            format!(
                "`{}` was renamed to `{}`, but the restore `{}` was not yet renamed to `{}`",
                r.live, r.kept, r.new, r.live
            )
        })
        .collect())
}

/// Complete or reverse the interrupted swaps through the engine (journaled before each
/// rename).
fn resolve_swaps(
    root: &HostRoot,
    host: &Host,
    complete: bool,
    sink: &dyn progress::Sink,
) -> Result<Vec<String>, String> {
    let inst = &*host.installation;
    let journal = Journal::open_in(&host.journal_dir).map_err(|e| e.to_string())?;
    let databases =
        rewind_engine::recovery::databases_for(root, inst, None).map_err(|e| e.to_string())?;
    let how = if complete {
        Resolve::Complete
    } else {
        Resolve::Reverse
    };
    rewind_engine::recovery::resolve_interrupted(&databases, how, &journal, sink)
        .map_err(|e| e.to_string())
}

/// The engine's recovery runner, with the confirmations the wizard collected: each
/// database name typed on the drop screens (which also list the file components that are
/// replaced), the snapshots taken, declined or already taken. The runner checks first
/// (host and database locks, version, every archive member, free space, connections),
/// then snapshots, drops, loads, verifies and restores the file components.
fn restore(
    root: &HostRoot,
    host: &Host,
    backup: &BackupRow,
    confirmed: Confirmed,
    tx: &UnboundedSender<Event>,
    cancel: &Cancel,
) -> Result<RestoreSummary, RestoreFailure> {
    let inst = &*host.installation;
    let journal = Journal::open_in(&host.journal_dir).map_err(|e| e.to_string())?;
    let txs = tx.clone();
    let sink = move |e: progress::Event| {
        // The path the engine reports, once the snapshot is complete and journaled.
        if let progress::Event::SnapshotWritten { database, path, .. } = &e {
            let _ = txs.send(Event::Engine(Msg::SnapshotTaken {
                database: database.clone(),
                path: path.clone(),
            }));
        }
        let _ = txs.send(Event::Engine(Msg::Progress(e)));
    };
    let entry = rewind_engine::backup::catalogue::resolve(
        root,
        &inst.backup_path,
        &backup.id,
        inst.version.as_ref(),
        false,
    )
    .map_err(|e| e.to_string())?;
    let databases =
        rewind_engine::recovery::databases_for(root, inst, None).map_err(|e| e.to_string())?;
    let req = rewind_engine::recovery::RestoreRequest {
        root,
        installation: inst,
        backup: &entry,
        databases,
        confirm_drop: confirmed.names,
        confirm_files: true,
        snapshot: confirmed.snapshot,
        reuse_snapshots: confirmed.reuse,
        verified: confirmed.verified.map(|v| *v),
        jobs: wizard_jobs(),
        // Left out on the repositories page: as `--skip repositories`.
        skip: if confirmed.repositories == RepoChoice::Leave {
            vec!["repositories".into()]
        } else {
            Vec::new()
        },
        continue_on_error: false,
        allow_version_mismatch: false,
        command: "rewind (wizard)".into(),
        // Exactly what the repositories page confirmed: replacing them (gitaly-backup's
        // -remove-all-repositories), and bundling the pushed ones aside first or not.
        repositories: rewind_engine::recovery::RepositoriesRequest {
            confirm: matches!(confirmed.repositories, RepoChoice::Replace { .. }),
            bundle_pushed: matches!(confirmed.repositories, RepoChoice::Replace { bundle: true }),
            ..Default::default()
        },
        // The strategy shown on the drop screens: in place when it said so, and the
        // engine refuses (changing nothing) if it would now run another.
        in_place: confirmed.in_place || confirmed.strategy == Some(Strategy::InPlace),
        db_admin: confirmed.db_admin,
        expect_strategy: confirmed.strategy,
    };
    let started = std::time::Instant::now();
    let report = rewind_engine::recovery::restore(&req, &journal, &sink, cancel).map_err(|e| {
        RestoreFailure {
            strategy_changed: matches!(
                e,
                rewind_engine::recovery::RecoveryError::StrategyChanged { .. }
            ),
            message: e.to_string(),
        }
    })?;
    let mut lines = Vec::new();
    let mut rows = 0u64;
    let mut tables = 0u64;
    for o in &report.databases {
        if let Some(l) = &o.load {
            rows += l.tables.iter().map(|t| t.rows).sum::<u64>();
            tables += l.tables.len() as u64;
        }
        match &o.verify {
            // Beside: verified in the new database before the swap, which now holds the
            // live name: shown under that name.
            Some(v) => lines.extend(verify_lines(&VerifyReport {
                database: o.database.clone(),
                ..v.clone()
            })),
            None => lines.push(VerifyLine {
                ok: true,
                text: format!("{}: {}", o.database, o.status),
            }),
        }
    }
    for n in &report.notes {
        lines.push(VerifyLine {
            ok: true,
            text: n.clone(),
        });
    }
    for r in &report.files {
        lines.push(VerifyLine {
            ok: true,
            text: r.verify_line(),
        });
    }
    if let Some(r) = &report.repositories {
        if !r.pushed_since_backup.is_empty() {
            lines.push(VerifyLine {
                ok: true,
                text: format!(
                    "repositories pushed to since the backup: {}{}",
                    r.pushed_since_backup.len(),
                    r.bundled_to
                        .as_ref()
                        .map(|d| format!(", bundled to {}", d.display()))
                        .unwrap_or_default()
                ),
            });
        }
        if let Some(rr) = &r.restore {
            lines.push(VerifyLine {
                ok: rr.ok(),
                text: format!("repositories: {}", rr.line()),
            });
        }
    }
    sink.info(format!("restore finished: {rows} rows"));
    let secs = started.elapsed().as_secs();
    Ok(RestoreSummary {
        text: format!(
            "{} database(s), {} rows in {tables} tables, in {}:{:02}",
            report.databases.len(),
            crate::tui::screens::thousands(rows),
            secs / 60,
            secs % 60
        ),
        verify: lines,
        rows,
        tables,
        kept: report.kept_databases,
    })
}

/// The verify screen's lines of one database's verification.
fn verify_lines(v: &VerifyReport) -> Vec<VerifyLine> {
    v.lines
        .iter()
        .map(|l| VerifyLine {
            ok: l.status != VerifyStatus::Fail,
            text: format!(
                "{}: {}{}: {}",
                v.database,
                l.check,
                if l.status == VerifyStatus::Skipped {
                    " (not checked)"
                } else {
                    ""
                },
                l.detail
            ),
        })
        .collect()
}

/// The repair loop on `log`: `version` (typed on the screen) is marked without asking
/// again; every later round asks the screen and waits for `answers`.
#[allow(clippy::too_many_arguments)]
fn run_repair(
    root: &HostRoot,
    host: &Host,
    log: &std::path::Path,
    version: String,
    migrate_cmd: Vec<String>,
    answers: std::sync::mpsc::Receiver<bool>,
    tx: &UnboundedSender<Event>,
    sink: &dyn progress::Sink,
) -> Result<String, String> {
    let inst = &*host.installation;
    let report = parse_file(&log_path(root, log)).map_err(|e| e.to_string())?;
    let journal = Journal::open_in(&host.journal_dir).map_err(|e| e.to_string())?;
    let mut dbs = Databases::new(inst.databases.clone());
    let mut confirm = TuiConfirm {
        confirmed: Some(version),
        answers,
        tx: tx.clone(),
        inst: inst.clone(),
    };
    let argv = if migrate_cmd.is_empty() {
        migrate_cmd_for(root, inst)
    } else {
        migrate_cmd.into_iter().map(Into::into).collect()
    };
    // The engine's repair holds the host lock while it marks and migrates.
    let opts = RepairOptions {
        migrate_cmd: argv,
        max_rounds: 20,
        host: Some((root.clone(), "rewind (wizard)".into())),
    };
    let rep = repair(report, &mut dbs, &opts, &mut confirm, Some(&journal), sink)
        .map_err(|e| e.to_string())?;
    for round in &rep.rounds {
        let line = format!(
            "round {}: {} {}{}{}",
            round.number,
            round.assessment.version.as_deref().unwrap_or("?"),
            round.assessment.migration_name.as_deref().unwrap_or(""),
            round
                .marked
                .as_ref()
                .map(|m| format!(", marked ({})", m.message()))
                .unwrap_or_default(),
            round
                .migrate
                .as_ref()
                .map(|m| format!(", db:migrate: {}", m.summary))
                .unwrap_or_default(),
        );
        let _ = tx.send(Event::Engine(Msg::RepairRound(Ok(line))));
    }
    Ok(rep.message)
}

/// The wizard's answers to the repair loop: the version typed before the loop started is
/// marked without asking again; every later round asks the screen and waits.
struct TuiConfirm {
    confirmed: Option<String>,
    answers: std::sync::mpsc::Receiver<bool>,
    tx: UnboundedSender<Event>,
    inst: Installation,
}

impl Confirm for TuiConfirm {
    fn confirm(&mut self, assessment: &Assessment, sql: &str) -> Decision {
        if self.confirmed.is_some() && assessment.version == self.confirmed {
            self.confirmed = None;
            return Decision::Mark;
        }
        self.confirmed = None;
        let _ = self.tx.send(Event::Engine(Msg::RepairAsk(repair_item(
            None,
            assessment,
            sql,
            Some(&self.inst),
        ))));
        match self.answers.recv() {
            Ok(true) => Decision::Mark,
            _ => Decision::Stop,
        }
    }
}

fn repair_item(
    f: Option<&Failure>,
    a: &Assessment,
    sql: &str,
    inst: Option<&Installation>,
) -> RepairItem {
    let gitlab = a
        .version
        .as_deref()
        .map(|v| gitlab_mark_command_for(inst, &a.database, v));
    RepairItem {
        version: a.version.clone().unwrap_or_else(|| "?".into()),
        name: a.migration_name.clone().unwrap_or_default(),
        error: a
            .message
            .clone()
            .or_else(|| a.error_class.clone())
            .unwrap_or_default(),
        verdict: format!("{} {}", a.reason, a.advice).trim().to_string(),
        markable: a.verdict == Verdict::MarkComplete && a.already_marked != Some(true),
        already_marked: a.already_marked == Some(true),
        sql: sql.to_string(),
        facts: facts(f, a, gitlab.as_deref()),
        gitlab_command: gitlab.unwrap_or_default(),
    }
}

/// A log path as typed: on this machine, else under the host root.
fn log_path(root: &HostRoot, log: &std::path::Path) -> PathBuf {
    if log.is_file() {
        log.to_path_buf()
    } else {
        root.join(log)
    }
}

/// Parse a failed migrate log and assess its first failure against the database.
fn assess_log(
    root: &HostRoot,
    inst: &Installation,
    log: &std::path::Path,
) -> Result<Vec<RepairItem>, String> {
    let path = log_path(root, log);
    if path.is_dir() {
        return Err(format!(
            "{} is a directory: give the failed db:migrate log file in it (Tab picks the newest failed one)",
            path.display()
        ));
    }
    let report = parse_file(&path).map_err(|e| e.to_string())?;
    let Some(failure) = report.first_failure().cloned() else {
        return Ok(Vec::new());
    };
    let mut dbs = Databases::new(inst.databases.clone());
    let (name, client) = dbs
        .client(failure.database.as_deref())
        .map_err(|e| e.to_string())?;
    let a = assess(&failure, &name, client).map_err(|e| e.to_string())?;
    let sql = a.mark_sql().unwrap_or_default();
    Ok(vec![repair_item(Some(&failure), &a, &sql, Some(inst))])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wizard's repair marks migrations and runs db:migrate: like `rewind repair`, it is
    /// refused, writing nothing, while another recovery holds the host.
    #[test]
    fn the_wizards_repair_is_refused_while_another_recovery_holds_the_host() {
        let dir = tempfile::tempdir().unwrap();
        let root = HostRoot::new(dir.path().to_path_buf());
        let log = dir.path().join("db-migrate.log");
        std::fs::write(
            &log,
            "PG::DuplicateTable: ERROR:  relation \"ci_runner_taggings\" already exists\n",
        )
        .unwrap();
        let journal_dir = dir.path().join("journal");
        let host = Host {
            installation: Box::new(crate::tui::fixtures::installation()),
            journal_dir: journal_dir.clone(),
        };
        let held = rewind_engine::recovery::lock::host(&root, "rewind restore (other terminal)")
            .expect("the test holds the host");
        let worker_root = root.clone();
        let r = std::thread::spawn(move || {
            let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
            let (_atx, arx) = std::sync::mpsc::channel();
            run_repair(
                &worker_root,
                &host,
                &log,
                "20240101000000".into(),
                Vec::new(),
                arx,
                &tx,
                &progress::NullSink,
            )
        })
        .join()
        .unwrap();
        let e = r.unwrap_err();
        assert!(e.contains("another Rewind recovery is running"), "{e}");
        assert!(e.contains("rewind restore (other terminal)"), "{e}");
        let journaled =
            std::fs::read_to_string(journal_dir.join("journal.jsonl")).unwrap_or_default();
        assert!(journaled.is_empty(), "nothing journaled: {journaled}");
        drop(held);
    }
}
