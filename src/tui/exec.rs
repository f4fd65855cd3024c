//! Executes [`Command`]s: engine calls on blocking worker threads, whose results and
//! progress come back to the event loop as [`Event::Engine`] messages. Nothing here blocks
//! the UI for longer than a small file write.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rewind_engine::detect::{detect, DatabaseConn, DetectOptions, InstallKind, Installation};
use rewind_engine::exec::Runner;
use rewind_engine::journal::Journal;
use rewind_engine::migrate::assess::{assess, Assessment, Verdict};
use rewind_engine::migrate::log::{parse_file, LogReport};
use rewind_engine::migrate::repair::{
    default_migrate_cmd, repair, Confirm, Databases, Decision, RepairOptions,
};
use rewind_engine::packages::rollback::{self, RollbackOptions, RollbackPlan};
use rewind_engine::pg::conn::ConnSpec;
use rewind_engine::preflight::{self, Inputs};
use rewind_engine::progress::{self, Cancel, Level, SinkExt};
use rewind_engine::restore::database::{member_for, DatabaseJob, RestoreFacts, RestoreOptions};
use rewind_engine::restore::drop::DropOptions;
use rewind_engine::restore::plan::{build_plan, BackupFacts};
use rewind_engine::restore::verify::Status as VerifyStatus;
use rewind_engine::root::HostRoot;
use rewind_engine::services::{post_restore_steps, GitlabCtl};
use rewind_engine::session::{BackupIdentity, Session};
use tokio::sync::mpsc::UnboundedSender;

use super::event::{ActionPlan, Command, Event, Msg};
use super::source::source_for;
use super::state::{
    BackupRow, DropItem, Inventory, RepairItem, ResumeOffer, State, Step, VerifyLine,
};

/// What the executor needs to reach the host.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    pub root: HostRoot,
    pub backup_dir: Option<PathBuf>,
    pub database_url: Option<String>,
}

/// Runs commands; owns the cancellation flags of running work.
pub struct Executor {
    opts: Arc<ExecOptions>,
    /// The parsed failed migrate log being repaired.
    repair_log: Arc<Mutex<Option<LogReport>>>,
    /// Answers to the running repair loop's questions.
    repair_answer: Option<std::sync::mpsc::Sender<bool>>,
    /// Verify lines of the last restore this process ran.
    verified: Arc<Mutex<Option<Vec<VerifyLine>>>>,
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
            repair_log: Arc::new(Mutex::new(None)),
            repair_answer: None,
            verified: Arc::new(Mutex::new(None)),
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

    /// Execute one command.
    pub fn execute(&mut self, cmd: Command, s: &State) -> Flow {
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
            Command::LoadSession => {
                let Some(dir) = s.journal_dir.clone() else {
                    return Flow::Continue;
                };
                let installed = s.installation.ready().and_then(|i| i.version.clone());
                let tx = self.tx.clone();
                self.spawn(move || match Session::load(&dir) {
                    Ok(Some(session)) => {
                        let id = BackupIdentity::of(&session.backup.path).ok();
                        let decision = session
                            .resume_point(id.as_ref(), installed.as_ref())
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
            Command::LoadBackups => {
                let Some(inst) = s.installation.ready().cloned() else {
                    return Flow::Continue;
                };
                let dir = self.opts.root.join(&inst.backup_path);
                let tx = self.tx.clone();
                self.spawn(move || {
                    let r = super::catalogue::list(&dir, inst.version.as_ref());
                    let _ = tx.send(Event::Engine(Msg::Backups(r)));
                });
            }
            Command::Preflight { backup } => {
                let Some(inst) = s.installation.ready().cloned() else {
                    return Flow::Continue;
                };
                let inputs = Inputs {
                    archive: backup.path.clone(),
                    target: backup.version.clone(),
                    databases: Inputs::databases_of(&inst),
                    root: self.opts.root.clone(),
                    snapshot_dir: s
                        .journal_dir
                        .clone()
                        .unwrap_or_else(|| self.opts.root.join(&inst.backup_path)),
                    installation: inst,
                };
                let cancel = self.new_cancel();
                let sink = self.sink();
                let tx = self.tx.clone();
                self.spawn(move || {
                    preflight::run_all(&inputs, &sink, &cancel, &mut |c| {
                        let _ = tx.send(Event::Engine(Msg::PreflightCheck(c.clone())));
                    });
                    let _ = tx.send(Event::Engine(Msg::PreflightDone));
                });
            }
            Command::PlanAction { step, backup } => {
                let Some(inst) = s.installation.ready().cloned() else {
                    return Flow::Continue;
                };
                let root = self.opts.root.clone();
                let tx = self.tx.clone();
                self.spawn(move || {
                    let result = plan_action(&root, &inst, step, &backup);
                    let m = match result {
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
            Command::RunAction { step, backup } => {
                let Some(inst) = s.installation.ready().cloned() else {
                    return Flow::Continue;
                };
                let root = self.opts.root.clone();
                let jdir = s.journal_dir.clone();
                let sink = self.sink();
                let tx = self.tx.clone();
                let opts = self.opts.clone();
                self.spawn(move || {
                    let journal = jdir.as_deref().and_then(|d| Journal::open_in(d).ok());
                    let result = run_action(&root, &inst, step, &backup, &sink, journal.as_ref());
                    let again = detect_with(&opts).ok().map(Box::new);
                    let _ = tx.send(Event::Engine(Msg::ActionDone {
                        step,
                        result,
                        installation: again,
                    }));
                });
            }
            Command::LoadInventory { backup } => {
                let Some(inst) = s.installation.ready().cloned() else {
                    return Flow::Continue;
                };
                let root = self.opts.root.clone();
                let tx = self.tx.clone();
                self.spawn(move || {
                    let r = inventory(&root, &inst, &backup);
                    let _ = tx.send(Event::Engine(Msg::Inventory(r)));
                });
            }
            Command::Restore {
                backup,
                snapshot,
                reuse,
            } => {
                let Some(inst) = s.installation.ready().cloned() else {
                    return Flow::Continue;
                };
                let root = self.opts.root.clone();
                let jdir = s.journal_dir.clone();
                let confirm = s.confirm_input.clone();
                let cancel = self.new_cancel();
                let tx = self.tx.clone();
                let verified = self.verified.clone();
                self.spawn(move || {
                    let r = restore(
                        &root,
                        &inst,
                        &backup,
                        snapshot.is_some(),
                        reuse,
                        &confirm,
                        jdir.as_deref(),
                        &tx,
                        &cancel,
                    );
                    let r = r.map(|(summary, lines)| {
                        *verified.lock().unwrap_or_else(|e| e.into_inner()) = Some(lines);
                        summary
                    });
                    let _ = tx.send(Event::Engine(Msg::RestoreDone(r)));
                });
            }
            Command::Verify { .. } => {
                let lines = self
                    .verified
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone();
                match lines {
                    Some(l) => self.send(Msg::Verified(Ok(l))),
                    None => self.send(Msg::Verified(Err(
                        "the restore ran before the wizard was restarted; its verification is in the journal (restore.*.verify)".into(),
                    ))),
                }
            }
            Command::AssessRepair { log } => {
                let Some(inst) = s.installation.ready().cloned() else {
                    return Flow::Continue;
                };
                let root = self.opts.root.clone();
                let store = self.repair_log.clone();
                let tx = self.tx.clone();
                self.spawn(move || {
                    let r = assess_log(&root, &inst, &log, &store);
                    let _ = tx.send(Event::Engine(Msg::RepairAssessed(r)));
                });
            }
            Command::RunRepair { versions } => {
                let Some(inst) = s.installation.ready().cloned() else {
                    return Flow::Continue;
                };
                let Some(report) = self
                    .repair_log
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take()
                else {
                    self.send(Msg::RepairDone(Err("no log assessed".into())));
                    return Flow::Continue;
                };
                let (atx, arx) = std::sync::mpsc::channel();
                self.repair_answer = Some(atx);
                let root = self.opts.root.clone();
                let jdir = s.journal_dir.clone();
                let sink = self.sink();
                let tx = self.tx.clone();
                self.spawn(move || {
                    let journal = jdir.as_deref().and_then(|d| Journal::open_in(d).ok());
                    let mut dbs = Databases::new(inst.databases.clone());
                    let mut confirm = TuiConfirm {
                        confirmed: versions.first().cloned(),
                        answers: arx,
                        tx: tx.clone(),
                    };
                    let opts = RepairOptions {
                        migrate_cmd: default_migrate_cmd(&root),
                        max_rounds: 20,
                    };
                    let r = repair(
                        report,
                        &mut dbs,
                        &opts,
                        &mut confirm,
                        journal.as_ref(),
                        &sink,
                    );
                    match r {
                        Ok(rep) => {
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
                            let _ = tx.send(Event::Engine(Msg::RepairDone(Ok(rep.message))));
                        }
                        Err(e) => {
                            let _ = tx.send(Event::Engine(Msg::RepairDone(Err(e.to_string()))));
                        }
                    }
                });
            }
            Command::RepairAnswer { mark } => {
                if let Some(a) = &self.repair_answer {
                    let _ = a.send(mark);
                }
            }
            Command::SaveSession(sess) => {
                if let Some(dir) = &s.journal_dir {
                    if let Err(e) = sess.save(dir) {
                        self.send(Msg::Progress(progress::Event::Log {
                            level: Level::Error,
                            message: e.to_string(),
                        }));
                    }
                }
            }
            Command::RemoveSession => {
                if let Some(dir) = &s.journal_dir {
                    let _ = Session::remove(dir);
                }
            }
        }
        Flow::Continue
    }
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
}

fn plan_action(
    root: &HostRoot,
    inst: &Installation,
    step: Step,
    backup: &BackupRow,
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
            match rollback::plan(root, target, RollbackOptions::default())
                .map_err(|e| e.to_string())?
            {
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

fn run_action(
    root: &HostRoot,
    inst: &Installation,
    step: Step,
    backup: &BackupRow,
    sink: &dyn progress::Sink,
    journal: Option<&Journal>,
) -> Result<String, String> {
    let ctl = GitlabCtl::new(root);
    let runner = Runner::new(sink, journal);
    match step {
        Step::StopServices => {
            for svc in ["puma", "sidekiq"] {
                ctl.stop(&runner, Some(svc)).map_err(|e| e.to_string())?;
            }
            Ok("puma and sidekiq are stopped".into())
        }
        Step::StartServices => {
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
            match rollback::plan(root, target, RollbackOptions::default())
                .map_err(|e| e.to_string())?
            {
                RollbackPlan::Package(p) => {
                    let out = rollback::run(root, &p, sink, journal).map_err(|e| e.to_string())?;
                    Ok(format!("GitLab {} is installed", out.detected))
                }
                RollbackPlan::AlreadyInstalled { version } => {
                    Ok(format!("GitLab {version} is already installed"))
                }
                _ => Err(format!(
                    "Rewind does not roll back {:?} installs; follow the checklist",
                    inst.kind
                )),
            }
        }
        _ => Err(format!("{} runs no commands", step.title())),
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

fn restore_options(confirm: &str, snapshot: bool) -> RestoreOptions {
    RestoreOptions {
        confirm_drop: vec![confirm.to_string()],
        snapshot,
        reuse_snapshot: None,
        jobs: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .clamp(2, 4),
        continue_on_error: false,
        allow_version_mismatch: false,
        drop: DropOptions::default(),
    }
}

/// What the drop destroys, with the failed upgrade's leftovers marked (read-only).
fn inventory(
    root: &HostRoot,
    inst: &Installation,
    backup: &BackupRow,
) -> Result<Inventory, String> {
    let jobs = jobs_of(inst);
    let main = jobs
        .first()
        .ok_or("no database connection found in database.yml")?;
    let source = source_for(&backup.path)?;
    let facts = facts_of(root, inst, backup);
    // The plan needs a confirmation to say "runnable"; the inventory does not.
    let opts = restore_options(&main.spec.dbname, true);
    let plan = build_plan(
        &source,
        &jobs,
        &BackupFacts {
            id: backup.id.clone(),
            components: backup.components.clone(),
            skipped_at_backup: backup.skipped.clone(),
        },
        &facts,
        &opts,
        &[],
    );
    let db = plan.databases.first().ok_or("the plan lists no database")?;
    if db.drop.is_empty() && db.status != "restore" {
        return Err(db.status.clone());
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
    })
}

/// The engine's recovery runner, with the confirmations the wizard collected: the
/// database name typed on the drop screen (which also lists the file components that are
/// replaced), the snapshot taken, declined or already taken. The runner checks first (host
/// and database locks, version, every archive member, free space, connections), then
/// snapshots, drops, loads, verifies and restores the file components.
#[allow(clippy::too_many_arguments)]
fn restore(
    root: &HostRoot,
    inst: &Installation,
    backup: &BackupRow,
    snapshot: bool,
    reuse: Option<PathBuf>,
    confirm: &str,
    journal_dir: Option<&std::path::Path>,
    tx: &UnboundedSender<Event>,
    cancel: &Cancel,
) -> Result<(String, Vec<VerifyLine>), String> {
    let jdir = journal_dir.ok_or("no journal directory (backup path unknown)")?;
    let journal = Journal::open_in(jdir).map_err(|e| e.to_string())?;
    let txs = tx.clone();
    let sink = move |e: progress::Event| {
        // The path the engine reports, once the snapshot is complete and journaled.
        if let progress::Event::SnapshotWritten { path, .. } = &e {
            let _ = txs.send(Event::Engine(Msg::SnapshotTaken(path.clone())));
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
        confirm_drop: vec![confirm.to_string()],
        confirm_files: true,
        snapshot,
        reuse_snapshot: reuse,
        jobs: restore_options(confirm, snapshot).jobs,
        skip: Vec::new(),
        continue_on_error: false,
        allow_version_mismatch: false,
        command: "rewind (wizard)".into(),
    };
    let started = std::time::Instant::now();
    let report = rewind_engine::recovery::restore(&req, &journal, &sink, cancel)
        .map_err(|e| e.to_string())?;
    let mut lines = Vec::new();
    let mut rows = 0u64;
    for o in &report.databases {
        if let Some(l) = &o.load {
            rows += l.tables.iter().map(|t| t.rows).sum::<u64>();
        }
        match &o.verify {
            Some(v) => lines.extend(v.lines.iter().map(|l| VerifyLine {
                ok: l.status != VerifyStatus::Fail,
                text: format!(
                    "{}: {}{}: {}",
                    o.database,
                    l.check,
                    if l.status == VerifyStatus::Skipped {
                        " (not checked)"
                    } else {
                        ""
                    },
                    l.detail
                ),
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
    if backup.components.iter().any(|c| c == "repositories") {
        lines.push(VerifyLine {
            ok: false,
            text: "repositories: in the backup but not restored by the wizard; restore them with GitLab's tooling (gitaly-backup, as `gitlab-backup restore` does)".into(),
        });
    }
    sink.info(format!("restore finished: {rows} rows"));
    let secs = started.elapsed().as_secs();
    Ok((
        format!(
            "{} database(s), {rows} rows in {}:{:02}",
            report.databases.len(),
            secs / 60,
            secs % 60
        ),
        lines,
    ))
}

/// The wizard's answers to the repair loop: the version typed before the loop started is
/// marked without asking again; every later round asks the screen and waits.
struct TuiConfirm {
    confirmed: Option<String>,
    answers: std::sync::mpsc::Receiver<bool>,
    tx: UnboundedSender<Event>,
}

impl Confirm for TuiConfirm {
    fn confirm(&mut self, assessment: &Assessment, sql: &str) -> Decision {
        if self.confirmed.is_some() && assessment.version == self.confirmed {
            self.confirmed = None;
            return Decision::Mark;
        }
        self.confirmed = None;
        let _ = self
            .tx
            .send(Event::Engine(Msg::RepairAsk(repair_item(assessment, sql))));
        match self.answers.recv() {
            Ok(true) => Decision::Mark,
            _ => Decision::Stop,
        }
    }
}

fn repair_item(a: &Assessment, sql: &str) -> RepairItem {
    RepairItem {
        version: a.version.clone().unwrap_or_else(|| "?".into()),
        name: a.migration_name.clone().unwrap_or_default(),
        error: a
            .message
            .clone()
            .or_else(|| a.error_class.clone())
            .unwrap_or_default(),
        verdict: format!("{} {}", a.reason, a.advice).trim().to_string(),
        markable: a.verdict == Verdict::MarkComplete,
        sql: sql.to_string(),
    }
}

/// Parse a failed migrate log (a path as typed: on this machine, else under the root) and
/// assess its first failure against the database.
fn assess_log(
    root: &HostRoot,
    inst: &Installation,
    log: &std::path::Path,
    store: &Mutex<Option<LogReport>>,
) -> Result<Vec<RepairItem>, String> {
    let path = if log.is_file() {
        log.to_path_buf()
    } else {
        root.join(log)
    };
    let report = parse_file(&path).map_err(|e| e.to_string())?;
    let Some(failure) = report.first_failure().cloned() else {
        *store.lock().unwrap_or_else(|e| e.into_inner()) = None;
        return Ok(Vec::new());
    };
    let mut dbs = Databases::new(inst.databases.clone());
    let (name, client) = dbs
        .client(failure.database.as_deref())
        .map_err(|e| e.to_string())?;
    let a = assess(&failure, &name, client).map_err(|e| e.to_string())?;
    let sql = a.mark_sql().unwrap_or_default();
    *store.lock().unwrap_or_else(|e| e.into_inner()) = Some(report);
    Ok(vec![repair_item(&a, &sql)])
}
