//! What goes into [`super::update::update`] (events) and what comes out (commands).

use std::path::PathBuf;
use std::time::Duration;

use crossterm::event::KeyEvent;
use rewind_engine::detect::Installation;
use rewind_engine::preflight::Check;
use rewind_engine::progress;
use rewind_engine::session::Session;

use super::state::{BackupRow, Inventory, RepairItem, ResumeOffer, Step, VerifyLine};

/// An input to the state machine.
#[derive(Debug, Clone)]
pub enum Event {
    /// A key press.
    Key(KeyEvent),
    /// Pasted text (bracketed paste).
    Paste(String),
    /// A clock tick: time since the wizard started.
    Tick(Duration),
    /// The terminal was resized (the next draw adapts; nothing to change).
    Resize,
    /// SIGTERM or SIGHUP: leave now (the session is saved; a running restore is cancelled
    /// at the next safe point by the runtime).
    Terminate,
    /// A result or progress report from engine work.
    Engine(Msg),
}

/// Reports from engine work running on worker threads.
#[derive(Debug, Clone)]
pub enum Msg {
    Detected(Result<Box<Installation>, String>),
    /// A saved session, with the resume decision.
    SessionFound(Box<ResumeOffer>),
    Backups(Result<Vec<BackupRow>, String>),
    PreflightCheck(Check),
    PreflightDone,
    /// Progress of whatever runs (verify, restore, commands).
    Progress(progress::Event),
    /// The commands a step would run, or why it is skipped.
    ActionPlanned {
        step: Step,
        result: Result<ActionPlan, String>,
    },
    /// A step's commands finished; `Ok` carries what re-detection found, in words, and
    /// the installation as re-detected.
    ActionDone {
        step: Step,
        result: Result<String, String>,
        installation: Option<Box<Installation>>,
    },
    Inventory(Result<Inventory, String>),
    /// The safety snapshot was written here.
    SnapshotTaken(PathBuf),
    RestoreDone(Result<String, String>),
    Verified(Result<Vec<VerifyLine>, String>),
    RepairAssessed(Result<Vec<RepairItem>, String>),
    RepairRound(Result<String, String>),
    /// The running repair loop asks to mark this version (a new round).
    RepairAsk(RepairItem),
    RepairDone(Result<String, String>),
    /// The engine code for this step is not in this build.
    Unavailable {
        step: Step,
        reason: String,
    },
}

/// What a command step would do.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionPlan {
    pub commands: Vec<String>,
    /// Set when nothing needs doing, with the reason.
    pub skip: Option<String>,
}

/// Work for the runtime: engine calls (on worker threads) and terminal actions.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Detect,
    /// Look for a saved session next to the journal.
    LoadSession,
    LoadBackups,
    Preflight {
        backup: BackupRow,
    },
    /// Work out what a command step would run.
    PlanAction {
        step: Step,
        backup: BackupRow,
    },
    RunAction {
        step: Step,
        backup: BackupRow,
    },
    LoadInventory {
        backup: BackupRow,
    },
    /// Snapshot (unless `snapshot` is None), drop, load. `reuse`: the snapshot this
    /// recovery already took (a retry), which the engine reuses and journals as such.
    Restore {
        backup: BackupRow,
        snapshot: Option<PathBuf>,
        reuse: Option<PathBuf>,
    },
    Verify {
        backup: BackupRow,
    },
    /// Cancel the running work at the next safe point.
    Cancel,
    SaveSession(Box<Session>),
    RemoveSession,
    AssessRepair {
        log: PathBuf,
    },
    RunRepair {
        versions: Vec<String>,
    },
    /// The answer to the running repair loop's question.
    RepairAnswer {
        mark: bool,
    },
    Quit,
}
