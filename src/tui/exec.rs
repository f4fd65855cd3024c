//! Executes [`Command`]s: engine calls on blocking worker threads, whose results and
//! progress come back to the event loop as [`Event::Engine`] messages. Nothing here blocks
//! the UI for longer than a small file write.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rewind_engine::detect::{detect, DatabaseConn, DetectOptions, Installation};
use rewind_engine::pg::conn::ConnSpec;
use rewind_engine::preflight::{self, Inputs};
use rewind_engine::progress::{self, Cancel, Level};
use rewind_engine::root::HostRoot;
use rewind_engine::session::{BackupIdentity, Session};
use tokio::sync::mpsc::UnboundedSender;

use super::event::{Command, Event, Msg};
use super::state::{ResumeOffer, State, Step};

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

const NOT_IN_BUILD: &str = "not available in this build";

impl Executor {
    pub fn new(opts: ExecOptions, tx: UnboundedSender<Event>) -> Self {
        Executor {
            opts: Arc::new(opts),
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
            Command::LoadBackups => self.send(Msg::Unavailable {
                step: Step::SelectBackup,
                reason: format!("Listing backups is {NOT_IN_BUILD}."),
            }),
            Command::Preflight { backup } => {
                let Some(inst) = s.installation.ready().cloned() else {
                    return Flow::Continue;
                };
                let inputs = Inputs {
                    archive: backup.path.clone(),
                    target: backup.version.clone(),
                    conn: inst.main_db().map(|d| d.spec.clone()),
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
                let inst = s.installation.ready();
                if step == Step::RollbackPackage {
                    if let (Some(installed), Some(target)) = (
                        inst.and_then(|i| i.version.as_ref()),
                        backup.version.as_ref(),
                    ) {
                        if installed.same_release(target) {
                            self.send(Msg::ActionPlanned {
                                step,
                                result: Ok(super::event::ActionPlan {
                                    commands: Vec::new(),
                                    skip: Some(format!(
                                        "GitLab {installed} is installed, the version the backup was made on"
                                    )),
                                }),
                            });
                            return Flow::Continue;
                        }
                    }
                }
                self.send(Msg::Unavailable {
                    step,
                    reason: format!("Running {} is {NOT_IN_BUILD}.", step.title().to_lowercase()),
                });
            }
            Command::RunAction { step, .. } => self.send(Msg::Unavailable {
                step,
                reason: format!("Running {} is {NOT_IN_BUILD}.", step.title().to_lowercase()),
            }),
            Command::LoadInventory { .. } => self.send(Msg::Unavailable {
                step: Step::ConfirmDrop,
                reason: format!("Listing what the drop destroys is {NOT_IN_BUILD}."),
            }),
            Command::Restore { .. } => self.send(Msg::Unavailable {
                step: Step::Restore,
                reason: format!("The restore is {NOT_IN_BUILD}."),
            }),
            Command::Verify { .. } => self.send(Msg::Unavailable {
                step: Step::Verify,
                reason: format!("Verifying the restore is {NOT_IN_BUILD}."),
            }),
            Command::AssessRepair { .. } | Command::RunRepair { .. } => {
                self.send(Msg::Unavailable {
                    step: Step::RepairMigrations,
                    reason: format!("Migration repair is {NOT_IN_BUILD}."),
                })
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
