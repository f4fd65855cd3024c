//! What goes into [`super::update::update`] (events) and what comes out (commands).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crossterm::event::KeyEvent;
use rewind_engine::backup::verify::Verified;
use rewind_engine::detect::Installation;
use rewind_engine::migrate::triage::Triage;
use rewind_engine::preflight::Check;
use rewind_engine::progress;
use rewind_engine::session::Session;

use rewind_engine::recovery::config::{ConfigArchive, ConfigDiff};
use rewind_engine::recovery::postcheck::DoctorSecrets;

use super::state::{
    BackupRow, EditionQuestion, Inventory, PostRow, RepairItem, RepoPlan, ResumeOffer, Salvaged,
    Step, StrategyView, VerifyLine,
};

/// An input to the state machine.
#[derive(Debug, Clone)]
pub enum Event {
    /// A key press.
    Key(KeyEvent),
    /// Pasted text (bracketed paste).
    Paste(String),
    /// A clock tick: time since the wizard started.
    Tick(Duration),
    /// The terminal was resized to (columns, rows) (the next draw adapts; the detail
    /// view scrolls by it).
    Resize(u16, u16),
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
    /// Is a rollback needed: the failed upgrade's triage (newest failed migrate log, the
    /// newest backup, the databases).
    Triaged(Result<Box<Triage>, String>),
    /// A saved session, with the resume decision.
    SessionFound(Box<ResumeOffer>),
    Backups(Result<Vec<BackupRow>, String>),
    PreflightCheck(Check),
    /// The preflight read the archive end to end: the restore need not read it again while
    /// the file is unchanged.
    ArchiveVerified(Box<Verified>),
    PreflightDone,
    /// Progress of whatever runs (verify, restore, commands).
    Progress(progress::Event),
    /// The commands a step would run, or why it is skipped.
    ActionPlanned {
        step: Step,
        result: Result<ActionPlan, String>,
    },
    /// Roll back: the backup was made on the other edition; the user is asked.
    EditionDiffers(EditionQuestion),
    /// A step's commands finished; `Ok` carries what re-detection found, in words, and
    /// the installation as re-detected.
    ActionDone {
        step: Step,
        result: Result<String, ActionFailed>,
        installation: Option<Box<Installation>>,
    },
    /// What the drop destroys, one inventory per database (main first).
    Inventory(Result<Vec<Inventory>, String>),
    /// The salvage written, or why not.
    Salvaged(Result<Salvaged, String>),
    /// What restoring the backup's repositories replaces (`None`: the backup has none to
    /// restore).
    Repositories(Result<Option<RepoPlan>, String>),
    /// The configuration archives, newest first, the one nearest before the backup marked.
    ConfigListed(Result<Vec<ConfigArchive>, String>),
    /// The archive `name` compared with the live `/etc/gitlab`.
    ConfigDiffed {
        name: String,
        result: Result<Box<ConfigDiff>, String>,
    },
    /// The configuration files were restored (what, and where the live ones went).
    ConfigRestored(Result<String, String>),
    /// The checks after the restore, the readiness wait first.
    PostPlanned(Result<Vec<PostRow>, String>),
    /// A check (by journal step) starts: its output follows as progress output.
    PostStarted {
        step: String,
    },
    /// A check ended: passed or failed with a few words; the doctor's table when it was
    /// `gitlab:doctor:secrets`.
    PostDone {
        step: String,
        result: Result<String, String>,
        doctor: Option<Box<DoctorSecrets>>,
    },
    /// Every selected check ran.
    PostFinished,
    /// The safety snapshot of `database` was written to `path`.
    SnapshotTaken {
        database: String,
        path: PathBuf,
    },
    RestoreDone(Result<RestoreSummary, RestoreFailure>),
    /// The failed db:migrate logs found in GitLab's log directory, newest first, and the
    /// migration command GitLab's docs give for this installation.
    MigrateLogs {
        logs: Vec<PathBuf>,
        migrate_cmd: Vec<String>,
    },
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
    /// The restore strategy, decided as `rewind restore` decides it.
    StrategyDecided(Result<StrategyView, String>),
    /// Swaps interrupted between their renames, from the journal (one line each).
    InterruptedSwaps(Result<Vec<String>, String>),
    /// The interrupted swaps completed or reversed: what was done, one line each.
    SwapsResolved(Result<Vec<String>, String>),
}

/// Why a restore did not finish.
#[derive(Debug, Clone, PartialEq)]
pub struct RestoreFailure {
    pub message: String,
    /// The engine refused, changing nothing, because the restore would now run with
    /// another strategy than the one confirmed (`RecoveryError::StrategyChanged`).
    pub strategy_changed: bool,
}

impl From<String> for RestoreFailure {
    fn from(message: String) -> Self {
        RestoreFailure {
            message,
            strategy_changed: false,
        }
    }
}

impl From<&str> for RestoreFailure {
    fn from(message: &str) -> Self {
        message.to_string().into()
    }
}

/// What a finished restore reports: a one-line summary and the verification lines.
#[derive(Debug, Clone, PartialEq)]
pub struct RestoreSummary {
    pub text: String,
    pub verify: Vec<VerifyLine>,
    /// Rows loaded, over every table of every database.
    pub rows: u64,
    /// Tables whose data was loaded.
    pub tables: u64,
    /// The failed upgrade's databases kept whole by a beside restore, by name.
    pub kept: Vec<String>,
}

/// The host as the wizard knows it, which every engine command works on: commands carry
/// it, so the executor reads no wizard state.
#[derive(Debug, Clone, PartialEq)]
pub struct Host {
    pub installation: Box<Installation>,
    /// The journal directory on this machine (`<backup_path>/rewind`).
    pub journal_dir: PathBuf,
}

/// The repositories as confirmed on the drop screens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepoChoice {
    /// The backup has none to restore (the runner refuses if it finds some).
    NotInBackup,
    /// gitaly-backup replaces them; `bundle`: the pushed ones are bundled aside first.
    Replace { bundle: bool },
    /// Left out (`--skip repositories`).
    Leave,
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
    /// Triage the host: a failed upgrade since the newest backup, and whether it needs a
    /// rollback (reads only).
    Triage {
        host: Host,
    },
    /// Look for a saved session next to the journal.
    LoadSession {
        host: Host,
    },
    LoadBackups {
        host: Host,
    },
    Preflight {
        host: Host,
        backup: BackupRow,
    },
    /// Work out what a command step would run.
    PlanAction {
        host: Host,
        step: Step,
        backup: BackupRow,
        /// Roll back: install the backup's edition in place of the installed one.
        allow_edition_change: bool,
    },
    RunAction {
        host: Host,
        step: Step,
        backup: BackupRow,
        /// Roll back: take the safety snapshot of each database without one in `taken`
        /// before the package step (false once the user declined it).
        snapshot: bool,
        /// The snapshots this recovery already took, by database.
        taken: BTreeMap<String, PathBuf>,
        /// Roll back: why no snapshot is taken when `snapshot` is false, for the journal.
        no_snapshot_because: String,
        /// Roll back: install the backup's edition in place of the installed one.
        allow_edition_change: bool,
    },
    LoadInventory {
        host: Host,
        backup: BackupRow,
        /// The preflight's end-to-end read of the archive: its dump catalogues are used
        /// while the archive is unchanged, instead of reading each dump again.
        verified: Option<Box<Verified>>,
    },
    /// Write the rows created since the backup to a salvage directory (before the drop).
    Salvage {
        host: Host,
        backup: BackupRow,
    },
    /// The engine's recovery with the confirmations collected: each database name typed
    /// (`confirm`), a snapshot of each database unless declined (`snapshot`), and the
    /// snapshots this recovery already took (`reuse`, by database), which the engine
    /// reuses and journals as such.
    Restore {
        host: Host,
        backup: BackupRow,
        confirm: Vec<String>,
        snapshot: bool,
        reuse: BTreeMap<String, PathBuf>,
        /// The preflight's verification of the archive, reused while the file is unchanged.
        verified: Option<Box<Verified>>,
        /// The repositories, as confirmed.
        repositories: RepoChoice,
        /// The strategy shown on the drop screens: the engine refuses, changing nothing,
        /// if it would now run another.
        strategy: Option<rewind_engine::restore::beside::Strategy>,
    },
    /// Decide the restore strategy (read-only).
    DecideStrategy {
        host: Host,
    },
    /// Read the journal for swaps interrupted between their renames.
    FindInterruptedSwaps {
        host: Host,
    },
    /// Complete (`complete`) or reverse the interrupted swaps.
    ResolveSwaps {
        host: Host,
        complete: bool,
    },
    /// List the configuration archives (the one nearest before `before` marked) and
    /// compare the nearest (else the newest) with the live `/etc/gitlab`.
    LoadConfig {
        host: Host,
        before: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// Compare the archive `name` with the live `/etc/gitlab`.
    DiffConfig {
        host: Host,
        name: String,
    },
    /// Restore `files` from the archive `name` (confirmed).
    RestoreConfig {
        host: Host,
        name: String,
        files: Vec<String>,
    },
    /// The checks after the restore, for the screen.
    PlanPostChecks {
        host: Host,
    },
    /// Run the selected checks (by journal step), in order.
    RunPostChecks {
        host: Host,
        steps: Vec<String>,
    },
    /// Read the last restore's verification back from the journal (after a restart).
    Verify {
        host: Host,
    },
    /// Cancel the running work at the next safe point.
    Cancel,
    SaveSession {
        dir: PathBuf,
        session: Box<Session>,
    },
    RemoveSession {
        dir: PathBuf,
    },
    /// List the failed db:migrate logs in GitLab's log directory.
    FindMigrateLogs {
        host: Host,
    },
    AssessRepair {
        host: Host,
        log: PathBuf,
    },
    /// The repair loop on `log`: mark `version` (typed), run `migrate_cmd`, ask again.
    RunRepair {
        host: Host,
        log: PathBuf,
        version: String,
        migrate_cmd: Vec<String>,
    },
    /// The answer to the running repair loop's question.
    RepairAnswer {
        mark: bool,
    },
    Quit,
}

/// A step's commands failed: why, and whether the host was left as it was (refused before
/// anything ran: the host lock taken, the safety snapshot's checks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionFailed {
    pub message: String,
    pub unchanged: bool,
}

impl From<String> for ActionFailed {
    fn from(message: String) -> Self {
        ActionFailed {
            message,
            unchanged: false,
        }
    }
}

impl From<&str> for ActionFailed {
    fn from(message: &str) -> Self {
        message.to_string().into()
    }
}
