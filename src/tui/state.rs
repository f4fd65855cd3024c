//! The wizard's state: plain data, no I/O, no terminal. [`super::update::update`] changes
//! it; [`super::view::view`] draws it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use rewind_engine::detect::Installation;
use rewind_engine::preflight::{Check, CheckKind, Status};
use rewind_engine::progress::{Level, Phase};
use rewind_engine::root::HostRoot;
use rewind_engine::session::{ResumePoint, Session};
use rewind_engine::version::GitLabVersion;

/// The wizard's screens, in the order of the recovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Step {
    /// Offered first when a saved session exists.
    Resume,
    Detect,
    SelectBackup,
    Preflight,
    StopServices,
    RollbackPackage,
    ConfirmDrop,
    SafetySnapshot,
    Restore,
    Verify,
    RestoreConfig,
    StartServices,
    PostChecks,
    Done,
    /// The branch: reachable from Detect and from Done.
    RepairMigrations,
}

impl Step {
    /// The main path, in order (Resume and RepairMigrations are off it).
    pub const PATH: [Step; 13] = [
        Step::Detect,
        Step::SelectBackup,
        Step::Preflight,
        Step::StopServices,
        Step::RollbackPackage,
        Step::ConfirmDrop,
        Step::SafetySnapshot,
        Step::Restore,
        Step::Verify,
        Step::RestoreConfig,
        Step::StartServices,
        Step::PostChecks,
        Step::Done,
    ];

    /// Title for the header.
    pub fn title(self) -> &'static str {
        match self {
            Step::Resume => "Resume",
            Step::Detect => "Detect",
            Step::SelectBackup => "Select backup",
            Step::Preflight => "Preflight",
            Step::StopServices => "Stop services",
            Step::RollbackPackage => "Roll back package",
            Step::ConfirmDrop => "Confirm drop",
            Step::SafetySnapshot => "Safety snapshot",
            Step::Restore => "Restore",
            Step::Verify => "Verify",
            Step::RestoreConfig => "Configuration",
            Step::StartServices => "Start services",
            Step::PostChecks => "Checks",
            Step::Done => "Done",
            Step::RepairMigrations => "Repair migrations",
        }
    }

    /// Position on the main path (1-based), if on it.
    pub fn number(self) -> Option<usize> {
        Self::PATH.iter().position(|s| *s == self).map(|i| i + 1)
    }

    /// The step Esc goes back to.
    pub fn previous(self) -> Option<Step> {
        let i = Self::PATH.iter().position(|s| *s == self)?;
        i.checked_sub(1).map(|j| Self::PATH[j])
    }

    /// The step Enter goes on to.
    pub fn next(self) -> Option<Step> {
        let i = Self::PATH.iter().position(|s| *s == self)?;
        Self::PATH.get(i + 1).copied()
    }
}

/// Something loaded by a worker.
#[derive(Debug, Clone, PartialEq)]
pub enum Loadable<T> {
    NotStarted,
    Loading,
    Ready(T),
    Failed(String),
    /// The engine code for this step is not in this build.
    Unavailable(String),
}

impl<T> Loadable<T> {
    pub fn ready(&self) -> Option<&T> {
        match self {
            Loadable::Ready(t) => Some(t),
            _ => None,
        }
    }
}

/// One backup in the catalogue, as the wizard shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct BackupRow {
    /// Backup id (the file name without `_gitlab_backup.tar`).
    pub id: String,
    /// The archive on this machine.
    pub path: PathBuf,
    /// When it was made (`2026-11-20 10:14 UTC`).
    pub created: String,
    /// `backup_created_at` of its manifest: what was written after it is lost.
    pub backup_created_at: Option<chrono::DateTime<chrono::Utc>>,
    pub version: Option<GitLabVersion>,
    pub size: u64,
    /// Modification time of the archive, seconds since the epoch (session identity).
    pub mtime: i64,
    pub components: Vec<String>,
    pub skipped: Vec<String>,
    /// Whether its version is the installed one.
    pub matches_installed: bool,
    /// More facts for the details pane (label, value).
    pub details: Vec<(String, String)>,
}

/// A step that runs host commands (stop services, roll back the package, start services).
#[derive(Debug, Clone, PartialEq)]
pub struct ActionStep {
    pub status: ActionStatus,
    /// The exact commands, for display.
    pub commands: Vec<String>,
    /// Their output, streamed.
    pub output: Vec<String>,
    /// What re-detection found afterwards.
    pub result: Option<String>,
}

impl Default for ActionStep {
    fn default() -> Self {
        ActionStep {
            status: ActionStatus::NotPlanned,
            commands: Vec::new(),
            output: Vec::new(),
            result: None,
        }
    }
}

/// Where an [`ActionStep`] stands.
#[derive(Debug, Clone, PartialEq)]
pub enum ActionStatus {
    NotPlanned,
    Planning,
    /// Nothing to do, with the reason.
    Skipped(String),
    /// Commands shown, waiting for confirmation.
    Ready,
    Running,
    Succeeded,
    Failed(String),
    Unavailable(String),
}

/// The editions differ: what is installed, and what the backup needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EditionQuestion {
    /// The installed package (`gitlab-ee`).
    pub installed_package: String,
    /// The backup's edition's package (`gitlab-ce`).
    pub backup_package: String,
    /// The backup's version with its edition (`16.10.3` is CE).
    pub backup_version: String,
}

/// One object the drop destroys.
#[derive(Debug, Clone, PartialEq)]
pub struct DropItem {
    /// `schema`, `table`, `view`, `sequence`, ...
    pub kind: String,
    pub name: String,
    pub rows: Option<i64>,
    pub bytes: Option<u64>,
    /// Not in the backup's schema: added by the failed upgrade.
    pub leftover: bool,
}

/// What the drop destroys.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Inventory {
    pub database: String,
    pub items: Vec<DropItem>,
    /// What was written since the backup (the engine's loss report in one paragraph), or
    /// why it was not counted.
    pub since_backup: Option<String>,
    /// Rows created since the backup (what a salvage would write); 0 when none or not
    /// counted.
    pub created_since: u64,
}

/// The rows created since the backup, salvaged from the drop screen before the drop.
#[derive(Debug, Clone, PartialEq)]
pub struct Salvaged {
    pub dir: PathBuf,
    pub rows: u64,
    pub tables: usize,
    /// `rewind salvage --import DIR`: brings them back after the restore.
    pub import_command: String,
}

/// One repository pushed to since the backup (the live database's push events).
#[derive(Debug, Clone, PartialEq)]
pub struct PushedRow {
    pub project: String,
    pub pushes: i64,
    pub last_push: String,
}

/// What restoring the repositories replaces: shown on the drop confirmation.
#[derive(Debug, Clone, PartialEq)]
pub struct RepoPlan {
    /// The storages gitaly-backup's `-remove-all-repositories` empties (empty: the backup
    /// was limited to paths and nothing is removed first).
    pub storages: Vec<String>,
    /// The repositories are in Gitaly's backup storage (`-server-side`).
    pub server_side: bool,
    /// Repositories pushed to since the backup, or why they could not be listed.
    pub pushed: Result<Vec<PushedRow>, String>,
}

/// What the user decided for the repositories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepoDecision {
    /// gitaly-backup replaces them with the backup's.
    Replace,
    /// Left out of this restore (`--skip repositories`).
    Leave,
}

/// The configuration step: the archives of `/etc/gitlab/config_backup` and what differs.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConfigState {
    pub archives: Option<Loadable<Vec<rewind_engine::recovery::config::ConfigArchive>>>,
    /// The archive shown (index into the archives).
    pub cursor: usize,
    /// The shown archive compared with the live `/etc/gitlab`.
    pub diff: Option<Loadable<rewind_engine::recovery::config::ConfigDiff>>,
    pub running: bool,
    /// Restored (what, where the live files went) or the failure.
    pub result: Option<Result<String, String>>,
    /// The user went on without restoring.
    pub skipped: bool,
}

impl ConfigState {
    /// The archive under the cursor.
    pub fn selected(&self) -> Option<&rewind_engine::recovery::config::ConfigArchive> {
        self.archives.as_ref()?.ready()?.get(self.cursor)
    }

    /// The files a restore from the shown archive changes.
    pub fn would_restore(&self) -> Vec<String> {
        self.diff
            .as_ref()
            .and_then(|d| d.ready())
            .map(|d| d.would_restore.clone())
            .unwrap_or_default()
    }
}

/// Where a post-restore check stands.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckState {
    Pending,
    Running,
    Passed(String),
    Failed(String),
    /// Not selected, or skipped with the reason.
    Skipped(String),
}

/// One row of the checks screen: the readiness wait or a GitLab check.
#[derive(Debug, Clone, PartialEq)]
pub struct PostRow {
    /// Journal step (`post.readiness`, `post.check`, ...).
    pub step: String,
    pub what: String,
    /// The exact command (or the endpoint asked).
    pub command: String,
    /// Run unless unticked (the others are offered).
    pub selected: bool,
    /// Changes the host (gitlab:shell:setup).
    pub changes_host: bool,
    pub state: CheckState,
    /// Captured output.
    pub output: Vec<String>,
}

/// The checks screen.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PostState {
    pub rows: Option<Loadable<Vec<PostRow>>>,
    pub cursor: usize,
    /// Lines scrolled up from the newest of the selected row's output.
    pub scroll: usize,
    /// The step whose output comes in now.
    pub current: Option<String>,
    pub running: bool,
    /// The checks ran (once at least).
    pub ran: bool,
    /// The user went on without running them.
    pub skipped: bool,
    /// `gitlab:doctor:secrets` read.
    pub doctor: Option<rewind_engine::recovery::postcheck::DoctorSecrets>,
}

impl PostState {
    pub fn rows(&self) -> &[PostRow] {
        self.rows
            .as_ref()
            .and_then(|r| r.ready())
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    pub fn row_mut(&mut self, step: &str) -> Option<&mut PostRow> {
        match self.rows.as_mut() {
            Some(Loadable::Ready(v)) => v.iter_mut().find(|r| r.step == step),
            _ => None,
        }
    }

    /// Checks that failed.
    pub fn failed(&self) -> Vec<&PostRow> {
        self.rows()
            .iter()
            .filter(|r| matches!(r.state, CheckState::Failed(_)))
            .collect()
    }
}

/// One phase gauge of the restore.
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseGauge {
    pub phase: Phase,
    pub state: PhaseState,
    pub done: u64,
    pub total: Option<u64>,
    /// Tick time the phase started and ended.
    pub started: Option<Duration>,
    pub finished: Option<Duration>,
}

/// State of one phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhaseState {
    Pending,
    Running,
    Done,
    Failed,
    Skipped,
}

/// The restore screen's state.
#[derive(Debug, Clone, PartialEq)]
pub struct RestoreState {
    pub phases: Vec<PhaseGauge>,
    pub current: Option<String>,
    /// Rows of the table being read (the engine's `Progress.rows`).
    pub rows: u64,
    /// Rows and tables whose data was read completely, over every table and database
    /// (then the restore's own count once it finished).
    pub rows_loaded: u64,
    pub tables_loaded: u64,
    /// What each connection of the running parallel phase works on now, by slot (from 0):
    /// its phase and object.
    pub workers: BTreeMap<usize, (Phase, String)>,
    pub started: Option<Duration>,
    pub finished: Option<Duration>,
    pub result: Option<Result<String, String>>,
    /// The failure was the engine's refusal of a changed strategy (nothing changed).
    pub strategy_changed: bool,
    pub cancel_requested: bool,
}

impl Default for RestoreState {
    fn default() -> Self {
        RestoreState {
            phases: RESTORE_PHASES
                .iter()
                .map(|p| PhaseGauge {
                    phase: *p,
                    state: PhaseState::Pending,
                    done: 0,
                    total: None,
                    started: None,
                    finished: None,
                })
                .collect(),
            current: None,
            rows: 0,
            rows_loaded: 0,
            tables_loaded: 0,
            workers: BTreeMap::new(),
            started: None,
            finished: None,
            result: None,
            strategy_changed: false,
            cancel_requested: false,
        }
    }
}

impl RestoreState {
    /// Rows of all tables so far: the tables read completely and the one being read.
    pub fn rows_total(&self) -> u64 {
        self.rows_loaded + self.rows
    }

    /// The data phase's rate in bytes of the dump per second, measured over the whole
    /// phase so far (`now`: the wizard's clock), once it ran half a second.
    pub fn data_rate(&self, now: Duration) -> Option<f64> {
        let g = self.phases.iter().find(|g| g.phase == Phase::Data)?;
        let start = g.started?;
        let end = g.finished.unwrap_or(now);
        let secs = end.saturating_sub(start).as_secs_f64();
        (secs > 0.5 && g.done > 0).then(|| g.done as f64 / secs)
    }

    /// The time left of the whole restore, as far as it can be measured now.
    pub fn eta(&self, now: Duration) -> Eta {
        if self.result.is_some() {
            return Eta::Finished;
        }
        let mut secs = 0.0;
        let mut unknown = Vec::new();
        let mut measured = false;
        for g in &self.phases {
            if !matches!(g.phase, Phase::Data | Phase::Indexes | Phase::Constraints) {
                continue;
            }
            match g.state {
                PhaseState::Done | PhaseState::Skipped | PhaseState::Failed => {}
                PhaseState::Pending => unknown.push(g.phase),
                PhaseState::Running => {
                    let left = match (g.phase, g.total) {
                        (Phase::Data, Some(total)) => self
                            .data_rate(now)
                            .map(|r| total.saturating_sub(g.done) as f64 / r),
                        (_, Some(total)) if g.done > 0 => g.started.map(|st| {
                            let per = now.saturating_sub(st).as_secs_f64() / g.done as f64;
                            total.saturating_sub(g.done) as f64 * per
                        }),
                        _ => None,
                    };
                    match left {
                        Some(l) => {
                            secs += l;
                            measured = true;
                        }
                        None => unknown.push(g.phase),
                    }
                }
            }
        }
        if !measured {
            return Eta::Unknown;
        }
        Eta::Left {
            secs: secs.ceil() as u64,
            then: unknown,
        }
    }
}

/// The restore's time left.
#[derive(Debug, Clone, PartialEq)]
pub enum Eta {
    /// Nothing measured yet.
    Unknown,
    /// `secs` for the phases measured, then the phases that cannot be measured yet (index
    /// builds before the data is read).
    Left {
        secs: u64,
        then: Vec<Phase>,
    },
    Finished,
}

/// The phases of the restore screen.
pub const RESTORE_PHASES: [Phase; 8] = [
    Phase::Snapshot,
    Phase::Drop,
    Phase::Schema,
    Phase::Data,
    Phase::Indexes,
    Phase::Constraints,
    Phase::Files,
    Phase::Repositories,
];

/// One line of the verify screen.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifyLine {
    pub ok: bool,
    pub text: String,
}

/// One line of the log pane.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    pub at: Duration,
    pub level: Level,
    pub text: String,
}

/// Preflight screen state.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PreflightState {
    pub checks: Vec<Check>,
    pub running: bool,
    /// Archive verification progress: bytes read, archive size.
    pub verify: Option<(u64, Option<u64>)>,
    pub cursor: usize,
}

impl PreflightState {
    /// The checks that failed.
    pub fn failures(&self) -> Vec<&Check> {
        self.checks
            .iter()
            .filter(|c| c.status == Status::Fail)
            .collect()
    }

    /// All checks ran and none failed. A kind may have several checks (one per
    /// database); every kind must have reported.
    pub fn passed(&self) -> bool {
        !self.running
            && CheckKind::ALL
                .iter()
                .all(|k| self.checks.iter().any(|c| c.kind == *k))
            && self.failures().is_empty()
    }

    /// The screen's rows: every kind in order, with one row per check of that kind (the
    /// database checks once per database), or one empty row while it has not reported.
    pub fn rows(&self) -> Vec<(CheckKind, Option<&Check>)> {
        let mut rows = Vec::new();
        for kind in CheckKind::ALL {
            let before = rows.len();
            rows.extend(
                self.checks
                    .iter()
                    .filter(|c| c.kind == kind)
                    .map(|c| (kind, Some(c))),
            );
            if rows.len() == before {
                rows.push((kind, None));
            }
        }
        rows
    }

    /// Whether `kind` has several checks (so their labels name the database).
    pub fn several(&self, kind: CheckKind) -> bool {
        self.checks.iter().filter(|c| c.kind == kind).count() > 1
    }

    /// The check under the cursor.
    pub fn selected(&self) -> Option<&Check> {
        self.rows().get(self.cursor).and_then(|(_, c)| *c)
    }
}

/// A migration the repair would mark complete.
#[derive(Debug, Clone, PartialEq)]
pub struct RepairItem {
    pub version: String,
    pub name: String,
    pub error: String,
    pub verdict: String,
    /// Rewind's assessment says marking is right (and the version is not marked yet).
    pub markable: bool,
    /// The version is already in schema_migrations.
    pub already_marked: bool,
    /// The statement that would run.
    pub sql: String,
    /// The assessment, fact by fact, as `rewind repair` prints it.
    pub facts: Vec<rewind_engine::migrate::describe::Fact>,
    /// GitLab's own command for the same marking.
    pub gitlab_command: String,
}

/// The field of the repair screen that takes typed text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RepairField {
    #[default]
    Log,
    MigrateCommand,
}

/// Repair screen state.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RepairState {
    /// The log path typed or picked.
    pub input: String,
    /// Failed db:migrate logs found in GitLab's log directory, newest first.
    pub candidates: Vec<PathBuf>,
    /// The candidate Tab showed last (`None`: not cycled yet).
    pub cursor: Option<usize>,
    /// The migration command run after marking, as shown and edited (words, no shell).
    pub migrate_cmd: String,
    /// The detected command as argv (its words may hold spaces, e.g. in a path): run as
    /// it is while `migrate_cmd` still shows it unedited.
    pub migrate_argv: Vec<String>,
    /// Which field typing goes to.
    pub field: RepairField,
    /// The log the shown assessment is of.
    pub log: Option<PathBuf>,
    pub assessment: Option<Loadable<Vec<RepairItem>>>,
    /// The confirmation typed for the current item.
    pub confirm: String,
    pub rounds: Vec<String>,
    pub running: bool,
    /// The running loop waits for the typed confirmation of the shown version.
    pub awaiting: bool,
    /// Where Esc returns to.
    pub from: Option<Step>,
}

/// A question over the current screen.
#[derive(Debug, Clone, PartialEq)]
pub enum Modal {
    /// Quit although something changed.
    ConfirmQuit,
    /// Cancel the running restore at the next safe point.
    ConfirmCancel,
    /// Run the commands of this step.
    ConfirmRun(Step),
    /// Second warning before going on without a safety snapshot.
    DeclineSnapshot,
    /// Throw the saved session away and start over.
    DiscardSession,
    /// Restore these files from the configuration archive shown.
    ConfirmConfig,
    /// Run `gitlab:shell:setup`, which rewrites authorized_keys.
    ConfirmShellSetup,
}

/// The restore strategy as `rewind restore` decides it ([`rewind_engine::recovery::strategy`]):
/// beside-and-swap where it can run, in place otherwise, with the facts that decided it.
#[derive(Debug, Clone, PartialEq)]
pub struct StrategyView {
    pub strategy: rewind_engine::restore::beside::Strategy,
    /// One line per fact that decided it (free space with numbers, the admin path, or
    /// what is missing).
    pub reasons: Vec<String>,
}

impl StrategyView {
    pub fn beside(&self) -> bool {
        self.strategy == rewind_engine::restore::beside::Strategy::Beside
    }

    /// `label (reason; reason)`.
    pub fn line(&self) -> String {
        format!("{} ({})", self.strategy.label(), self.reasons.join("; "))
    }
}

/// A change made on the host, which closes the way back past it.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub step: Step,
    pub what: String,
}

/// A saved session found at start.
#[derive(Debug, Clone, PartialEq)]
pub struct ResumeOffer {
    pub session: Session,
    /// Where it continues, or why it cannot.
    pub decision: Result<ResumePoint, Vec<String>>,
}

/// The work running on a worker thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    Detect,
    Backups,
    Preflight,
    Action(Step),
    Inventory,
    Salvage,
    Restore,
    Verify,
    Repair,
    Repositories,
    Config,
    PostChecks,
    /// Deciding the restore strategy.
    Strategy,
    /// Reading the journal for swaps interrupted between their renames, or resolving one.
    Swaps,
}

/// The whole wizard.
#[derive(Debug, Clone)]
pub struct State {
    pub step: Step,
    pub root: HostRoot,
    /// Drill or sandbox banner.
    pub banner: Option<String>,
    /// Whether to draw colours (off with NO_COLOR / --no-color).
    pub color: bool,
    /// Time since start (from ticks).
    pub now: Duration,
    pub installation: Loadable<Installation>,
    /// Is a rollback needed (shown on Detect when an upgrade since the backup is found).
    pub triage: Loadable<rewind_engine::migrate::triage::Triage>,
    /// Journal directory on this machine (`<backup_path>/rewind`).
    pub journal_dir: Option<PathBuf>,
    pub backups: Loadable<Vec<BackupRow>>,
    pub backup_cursor: usize,
    pub chosen: Option<BackupRow>,
    pub preflight: PreflightState,
    /// The preflight's end-to-end read of the chosen archive, with its stamp.
    pub archive_verified: Option<Box<rewind_engine::backup::verify::Verified>>,
    pub stop: ActionStep,
    pub rollback: ActionStep,
    /// The editions differ (the backup's against the installed package): the question the
    /// Roll back step asks before it plans.
    pub edition_question: Option<EditionQuestion>,
    /// The user chose to install the backup's edition in place of the installed one.
    pub allow_edition_change: bool,
    pub start: ActionStep,
    /// What the drop destroys, one per database (main first).
    pub inventory: Loadable<Vec<Inventory>>,
    pub inventory_scroll: usize,
    /// The object of the drop list under the cursor (index into the list as shown: the
    /// failed upgrade's objects first).
    pub drop_cursor: usize,
    /// The database the drop screen asks for (index into the inventories).
    pub confirm_index: usize,
    /// What was typed for each database.
    pub confirm_inputs: Vec<String>,
    /// Snapshots taken in this recovery, by database: not taken again.
    pub snapshots_taken: BTreeMap<String, PathBuf>,
    pub snapshot_declined: bool,
    /// The salvage of the rows created since the backup (drop screen, Ctrl-S).
    pub salvage: Loadable<Salvaged>,
    /// What restoring the repositories replaces (`Ready(None)`: the backup has none).
    pub repositories: Loadable<Option<RepoPlan>>,
    /// Bundle the repositories pushed to since the backup aside first (default on).
    pub repo_bundle: bool,
    pub repo_decision: Option<RepoDecision>,
    pub restore: RestoreState,
    pub verify: Loadable<Vec<VerifyLine>>,
    pub config: ConfigState,
    pub post: PostState,
    pub repair: RepairState,
    pub resume: Option<ResumeOffer>,
    pub session: Option<Session>,
    pub log: Vec<LogLine>,
    pub log_visible: bool,
    /// Lines scrolled up from the bottom of the log pane.
    pub log_scroll: usize,
    pub help: bool,
    /// The step overview is shown over the screen.
    pub overview: bool,
    /// The detail view (every line of the screen in full) is open, scrolled this far.
    pub detail: Option<usize>,
    /// The terminal's size (columns, rows), for scrolling the detail view.
    pub size: (u16, u16),
    pub modal: Option<Modal>,
    /// Changes made so far, in order.
    pub changes: Vec<Change>,
    /// Running work.
    pub jobs: Vec<Job>,
    /// A short message for the user (refusals, hints), cleared on the next key.
    pub notice: Option<String>,
    pub quit: bool,
    /// The main database's name (from detection, then from the inventory).
    pub database: Option<String>,
    /// The restore strategy (decided after detection, again when the drop screen opens).
    pub strategy: Loadable<StrategyView>,
    /// Swaps the journal shows interrupted between their two renames, one line each:
    /// nothing else runs until they are completed or reversed.
    pub interrupted: Vec<String>,
    /// What resolving them did.
    pub swaps_resolved: Vec<String>,
    /// The failed upgrade's databases a beside restore kept, by name.
    pub kept_databases: Vec<String>,
}

impl State {
    /// The state at start.
    pub fn new(root: HostRoot, banner: Option<String>) -> State {
        State {
            step: Step::Detect,
            root,
            banner,
            color: true,
            now: Duration::ZERO,
            installation: Loadable::NotStarted,
            triage: Loadable::NotStarted,
            journal_dir: None,
            backups: Loadable::NotStarted,
            backup_cursor: 0,
            chosen: None,
            preflight: PreflightState::default(),
            archive_verified: None,
            stop: ActionStep::default(),
            rollback: ActionStep::default(),
            edition_question: None,
            allow_edition_change: false,
            start: ActionStep::default(),
            inventory: Loadable::NotStarted,
            inventory_scroll: 0,
            drop_cursor: 0,
            confirm_index: 0,
            confirm_inputs: Vec::new(),
            snapshots_taken: BTreeMap::new(),
            snapshot_declined: false,
            salvage: Loadable::NotStarted,
            repositories: Loadable::NotStarted,
            repo_bundle: true,
            repo_decision: None,
            restore: RestoreState::default(),
            verify: Loadable::NotStarted,
            config: ConfigState::default(),
            post: PostState::default(),
            repair: RepairState::default(),
            resume: None,
            session: None,
            log: Vec::new(),
            log_visible: false,
            log_scroll: 0,
            help: false,
            overview: false,
            detail: None,
            size: (80, 24),
            modal: None,
            changes: Vec::new(),
            jobs: Vec::new(),
            notice: None,
            quit: false,
            database: None,
            strategy: Loadable::NotStarted,
            interrupted: Vec::new(),
            swaps_resolved: Vec::new(),
            kept_databases: Vec::new(),
        }
    }

    /// The host the engine commands work on, once detected.
    pub fn host(&self) -> Option<super::event::Host> {
        Some(super::event::Host {
            installation: Box::new(self.installation.ready()?.clone()),
            journal_dir: self.journal_dir.clone()?,
        })
    }

    /// The databases the drop replaces, main first (empty until listed).
    pub fn drop_databases(&self) -> Vec<String> {
        self.inventory
            .ready()
            .map(|v| v.iter().map(|i| i.database.clone()).collect())
            .unwrap_or_default()
    }

    /// The inventory the drop screen shows now.
    pub fn confirm_inventory(&self) -> Option<&Inventory> {
        self.inventory.ready()?.get(self.confirm_index)
    }

    /// What is typed for the database the drop screen asks for.
    pub fn confirm_input(&self) -> &str {
        self.confirm_inputs
            .get(self.confirm_index)
            .map(String::as_str)
            .unwrap_or("")
    }

    /// Every database's name typed exactly, and the repositories decided when the backup
    /// has them.
    pub fn all_confirmed(&self) -> bool {
        let dbs = self.drop_databases();
        !dbs.is_empty()
            && dbs
                .iter()
                .enumerate()
                .all(|(i, d)| self.confirm_inputs.get(i) == Some(d))
            && (!self.repo_page() || self.repo_decision.is_some())
    }

    /// The repository plan, when the backup has repositories to restore.
    pub fn repo_plan(&self) -> Option<&RepoPlan> {
        self.repositories.ready().and_then(Option::as_ref)
    }

    /// The drop confirmation has a repositories page (after the databases): the backup
    /// has repositories, or whether it has is not known yet.
    pub fn repo_page(&self) -> bool {
        matches!(
            self.repositories,
            Loadable::Ready(Some(_)) | Loadable::Loading | Loadable::Failed(_)
        )
    }

    /// The drop confirmation shows the repositories page now.
    pub fn on_repo_page(&self) -> bool {
        self.step == Step::ConfirmDrop
            && self.repo_page()
            && self.inventory.ready().is_some()
            && self.confirm_index >= self.drop_databases().len()
    }

    /// Databases still without a snapshot in this recovery.
    pub fn without_snapshot(&self) -> Vec<String> {
        self.drop_databases()
            .into_iter()
            .filter(|d| !self.snapshots_taken.contains_key(d))
            .collect()
    }

    /// The restore will run beside the live database(s) and swap (decided so).
    pub fn beside(&self) -> bool {
        self.strategy.ready().is_some_and(StrategyView::beside)
    }

    /// The name the failed upgrade's database `db` is kept under by a beside restore (the
    /// time stamp is the restore's, in UTC).
    pub fn kept_name(db: &str) -> String {
        format!("{db}_before_rewind_<UTC time>")
    }

    /// Whether a job of this kind runs.
    pub fn running(&self, job: Job) -> bool {
        self.jobs.contains(&job)
    }

    /// Whether the screen takes typed text (letters are input, not keys).
    pub fn text_input(&self) -> bool {
        (self.step == Step::ConfirmDrop && !self.on_repo_page())
            || (self.step == Step::RepairMigrations && self.repair.assessment.is_none())
            || (self.step == Step::RepairMigrations
                && matches!(self.repair.assessment, Some(Loadable::Ready(ref v)) if !v.is_empty()))
    }

    /// The last change at or after `step`, which closes the way back to it.
    pub fn change_since(&self, step: Step) -> Option<&Change> {
        self.changes.iter().rev().find(|c| c.step >= step)
    }

    /// The action step state of a command step.
    pub fn action(&self, step: Step) -> Option<&ActionStep> {
        match step {
            Step::StopServices => Some(&self.stop),
            Step::RollbackPackage => Some(&self.rollback),
            Step::StartServices => Some(&self.start),
            _ => None,
        }
    }

    /// Mutable action step state of a command step.
    pub fn action_mut(&mut self, step: Step) -> Option<&mut ActionStep> {
        match step {
            Step::StopServices => Some(&mut self.stop),
            Step::RollbackPackage => Some(&mut self.rollback),
            Step::StartServices => Some(&mut self.start),
            _ => None,
        }
    }

    /// Add a line to the log pane.
    pub fn log(&mut self, level: Level, text: impl Into<String>) {
        self.log.push(LogLine {
            at: self.now,
            level,
            text: text.into(),
        });
        if self.log.len() > 5000 {
            self.log.drain(..1000);
        }
    }
}
