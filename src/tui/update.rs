//! The transitions: `update(&mut State, Event) -> Vec<Command>`. Pure: no I/O, no terminal,
//! no engine calls. Engine work is asked for with [`Command`]s; its results come back as
//! [`Event::Engine`].

use std::path::PathBuf;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use rewind_engine::journal::Journal;
use rewind_engine::preflight::Status;
use rewind_engine::progress::{Event as Progress, Level, Phase};
use rewind_engine::session::{BackupIdentity, Session, SessionStep};

use super::event::{ActionPlan, Command, Event, Msg, RepoChoice};
use super::state::{
    ActionStatus, BackupRow, Change, CheckState, Job, Loadable, Modal, PhaseState, RepairField,
    RepoDecision, RestoreState, State, Step,
};

/// The commands to run when the wizard starts.
pub fn start(s: &mut State) -> Vec<Command> {
    s.installation = Loadable::Loading;
    s.jobs.push(Job::Detect);
    vec![Command::Detect]
}

/// Apply one event.
pub fn update(s: &mut State, ev: Event) -> Vec<Command> {
    match ev {
        Event::Tick(t) => {
            s.now = t;
            Vec::new()
        }
        Event::Resize(w, h) => {
            s.size = (w, h);
            Vec::new()
        }
        Event::Terminate => {
            s.quit = true;
            let mut out = Vec::new();
            if !s.jobs.is_empty() {
                out.push(Command::Cancel);
            }
            out.push(Command::Quit);
            out
        }
        Event::Paste(text) => {
            if let Some(buf) = input_buffer(s) {
                buf.extend(text.chars().filter(|c| !c.is_control()));
            }
            Vec::new()
        }
        Event::Key(k) => {
            if k.kind == KeyEventKind::Release {
                return Vec::new();
            }
            on_key(s, k)
        }
        Event::Engine(m) => on_msg(s, m),
    }
}

fn input_buffer(s: &mut State) -> Option<&mut String> {
    match s.step {
        Step::ConfirmDrop => {
            let i = s.confirm_index;
            if s.confirm_inputs.len() <= i {
                s.confirm_inputs.resize(i + 1, String::new());
            }
            Some(&mut s.confirm_inputs[i])
        }
        Step::RepairMigrations if s.text_input() => {
            if s.repair.assessment.is_none() {
                Some(repair_field(&mut s.repair))
            } else {
                Some(&mut s.repair.confirm)
            }
        }
        _ => None,
    }
}

fn ctrl(k: &KeyEvent, c: char) -> bool {
    k.modifiers.contains(KeyModifiers::CONTROL) && k.code == KeyCode::Char(c)
}

fn on_key(s: &mut State, k: KeyEvent) -> Vec<Command> {
    if let Some(m) = s.modal.clone() {
        return on_modal_key(s, m, k);
    }
    if s.overview {
        // Any key closes it (the key is not passed on).
        s.overview = false;
        return Vec::new();
    }
    if let Some(scroll) = s.detail {
        return detail_key(s, scroll, k);
    }
    if s.help {
        if matches!(
            k.code,
            KeyCode::Esc | KeyCode::Enter | KeyCode::Char('?') | KeyCode::Char('q') | KeyCode::F(1)
        ) {
            s.help = false;
        }
        return Vec::new();
    }
    // The detail view opens over the notice, which it shows in full.
    if k.code == KeyCode::F(3)
        || (k.code == KeyCode::Char('v')
            && !s.text_input()
            && !k.modifiers.contains(KeyModifiers::CONTROL))
    {
        s.detail = Some(crate::tui::detail::initial_scroll(s, s.size));
        return Vec::new();
    }
    s.notice = None;
    if ctrl(&k, 'c') {
        return on_interrupt(s);
    }
    if ctrl(&k, 'l') {
        s.log_visible = !s.log_visible;
        return Vec::new();
    }
    if k.code == KeyCode::F(1) {
        s.help = true;
        return Vec::new();
    }
    if k.code == KeyCode::F(2) {
        s.overview = true;
        return Vec::new();
    }
    if s.log_visible {
        match k.code {
            KeyCode::PageUp => {
                s.log_scroll = (s.log_scroll + 5).min(s.log.len().saturating_sub(1));
                return Vec::new();
            }
            KeyCode::PageDown => {
                s.log_scroll = s.log_scroll.saturating_sub(5);
                return Vec::new();
            }
            _ => {}
        }
    }
    if k.code == KeyCode::Esc {
        return on_back(s);
    }
    if !s.text_input() && !k.modifiers.contains(KeyModifiers::CONTROL) {
        match k.code {
            KeyCode::Char('?') => {
                s.help = true;
                return Vec::new();
            }
            KeyCode::Char('q') => return on_quit(s),
            KeyCode::Char('o') => {
                s.overview = true;
                return Vec::new();
            }
            KeyCode::Char('l') => {
                s.log_visible = !s.log_visible;
                return Vec::new();
            }
            _ => {}
        }
    }
    match s.step {
        Step::Resume => resume_key(s, k),
        Step::Detect => detect_key(s, k),
        Step::SelectBackup => backup_key(s, k),
        Step::Preflight => preflight_key(s, k),
        Step::StopServices | Step::RollbackPackage | Step::StartServices => action_key(s, k),
        Step::ConfirmDrop if s.on_repo_page() => repo_key(s, k),
        Step::ConfirmDrop => confirm_key(s, k),
        Step::RestoreConfig => config_key(s, k),
        Step::PostChecks => post_key(s, k),
        Step::SafetySnapshot => snapshot_key(s, k),
        Step::Restore => restore_key(s, k),
        Step::Verify => verify_key(s, k),
        Step::Done => done_key(s, k),
        Step::RepairMigrations => repair_key(s, k),
    }
}

/// Keys of the detail view: scroll, or close it (Esc, v, q, Enter, F3). Ctrl-C still
/// reaches a running restore.
fn detail_key(s: &mut State, scroll: usize, k: KeyEvent) -> Vec<Command> {
    if ctrl(&k, 'c') {
        s.detail = None;
        return on_interrupt(s);
    }
    let max = crate::tui::detail::max_scroll(s, s.size);
    let page = (crate::tui::detail::text_area(s.size).height as usize)
        .saturating_sub(1)
        .max(1);
    let scroll = scroll.min(max);
    s.detail = match k.code {
        KeyCode::Esc | KeyCode::Enter | KeyCode::F(3) | KeyCode::Char('v') | KeyCode::Char('q') => {
            None
        }
        KeyCode::Up | KeyCode::Char('k') => Some(scroll.saturating_sub(1)),
        KeyCode::Down | KeyCode::Char('j') => Some((scroll + 1).min(max)),
        KeyCode::PageUp => Some(scroll.saturating_sub(page)),
        KeyCode::PageDown | KeyCode::Char(' ') => Some((scroll + page).min(max)),
        KeyCode::Home | KeyCode::Char('g') => Some(0),
        KeyCode::End | KeyCode::Char('G') => Some(max),
        _ => Some(scroll),
    };
    Vec::new()
}

fn on_modal_key(s: &mut State, m: Modal, k: KeyEvent) -> Vec<Command> {
    let yes = matches!(k.code, KeyCode::Char('y') | KeyCode::Char('Y'));
    let no = matches!(
        k.code,
        KeyCode::Char('n') | KeyCode::Char('N') | KeyCode::Esc
    ) || ctrl(&k, 'c') && m != Modal::ConfirmCancel;
    if no {
        s.modal = None;
        return Vec::new();
    }
    if ctrl(&k, 'c') && m == Modal::ConfirmCancel {
        // A second Ctrl-C while asked means yes.
        s.modal = None;
        return cancel_restore(s);
    }
    if !yes {
        return Vec::new();
    }
    s.modal = None;
    match m {
        Modal::ConfirmQuit => quit_now(s),
        Modal::ConfirmCancel => cancel_restore(s),
        Modal::ConfirmRun(step) => run_action(s, step),
        Modal::DiscardSession => discard_session(s),
        Modal::ConfirmConfig => restore_config(s),
        Modal::ConfirmShellSetup => {
            if let Some(Loadable::Ready(rows)) = s.post.rows.as_mut() {
                if let Some(r) = rows.iter_mut().find(|r| r.changes_host) {
                    r.selected = true;
                }
            }
            Vec::new()
        }
        Modal::DeclineSnapshot => {
            s.snapshot_declined = true;
            if let Some(sess) = s.session.as_mut() {
                sess.snapshot_declined = true;
            }
            s.log(Level::Warn, "safety snapshot declined");
            // Declined where the rollback failed to take it: the rollback runs without.
            if s.step == Step::RollbackPackage {
                run_action(s, Step::RollbackPackage)
            } else {
                start_restore(s)
            }
        }
    }
}

fn on_interrupt(s: &mut State) -> Vec<Command> {
    // The checks: the readiness wait stops at once, the rest after the running command.
    if s.running(Job::PostChecks) {
        s.notice = Some(
            "Stopping the checks: the readiness wait stops now, a running check finishes first."
                .into(),
        );
        s.log(Level::Warn, "checks stopped by Ctrl-C");
        return vec![Command::Cancel];
    }
    if s.running(Job::Restore) {
        if s.restore.cancel_requested {
            s.notice = Some(
                "Cancel requested: the restore stops at the next safe point. Please wait.".into(),
            );
        } else {
            s.modal = Some(Modal::ConfirmCancel);
        }
        return Vec::new();
    }
    on_quit(s)
}

fn on_quit(s: &mut State) -> Vec<Command> {
    if s.running(Job::Restore) {
        s.notice = Some(
            "A restore is running: quitting now would leave the database half loaded. Press Ctrl-C to cancel it at the next safe point first."
                .into(),
        );
        return Vec::new();
    }
    if s.running(Job::Action(Step::RollbackPackage))
        || s.running(Job::Action(Step::StopServices))
        || s.running(Job::Action(Step::StartServices))
        || s.running(Job::Config)
        || s.running(Job::PostChecks)
    {
        s.notice = Some("A command is running on the host: wait for it to finish.".into());
        return Vec::new();
    }
    if s.changes.is_empty() || s.step == Step::Done {
        return quit_now(s);
    }
    s.modal = Some(Modal::ConfirmQuit);
    Vec::new()
}

fn quit_now(s: &mut State) -> Vec<Command> {
    s.quit = true;
    let mut out = Vec::new();
    if !s.jobs.is_empty() {
        out.push(Command::Cancel);
    }
    if s.changes.is_empty() && s.resume.is_none() {
        // Nothing changed: nothing to resume.
        out.extend(remove_session(s));
    }
    out.push(Command::Quit);
    out
}

fn cancel_restore(s: &mut State) -> Vec<Command> {
    if !s.running(Job::Restore) {
        return Vec::new();
    }
    s.restore.cancel_requested = true;
    s.log(
        Level::Warn,
        "cancel requested: the restore stops at the next safe point",
    );
    vec![Command::Cancel]
}

fn on_back(s: &mut State) -> Vec<Command> {
    match s.step {
        Step::Resume => {
            s.notice = Some("Enter resumes, n starts over.".into());
            return Vec::new();
        }
        Step::RepairMigrations => {
            if s.repair.awaiting {
                s.repair.awaiting = false;
                s.repair.confirm.clear();
                return vec![Command::RepairAnswer { mark: false }];
            }
            if s.repair.running {
                s.notice = Some("The repair is running: wait for its round to end.".into());
                return Vec::new();
            }
            if s.repair.assessment.is_some() {
                s.repair.assessment = None;
                s.repair.confirm.clear();
                return Vec::new();
            }
            s.step = s.repair.from.unwrap_or(Step::Detect);
            return Vec::new();
        }
        Step::ConfirmDrop if s.confirm_index > 0 => {
            // Back to the previous database's confirmation.
            s.confirm_index -= 1;
            s.inventory_scroll = 0;
            s.drop_cursor = 0;
            return Vec::new();
        }
        Step::Restore if s.running(Job::Restore) => {
            s.notice = Some(
                "The restore is running; there is no way back. Ctrl-C cancels at the next safe point."
                    .into(),
            );
            return Vec::new();
        }
        _ => {}
    }
    let Some(prev) = s.step.previous() else {
        s.notice = Some(if s.step == Step::Detect {
            "This is the first step. q quits.".into()
        } else {
            "The recovery is finished: there is no step to go back to.".into()
        });
        return Vec::new();
    };
    if let Some(c) = s.change_since(prev) {
        s.notice = Some(format!(
            "No way back: {} (step {}). Going back would not undo it.",
            c.what,
            c.step.title()
        ));
        return Vec::new();
    }
    let mut out = Vec::new();
    if s.step == Step::Preflight && s.running(Job::Preflight) {
        out.push(Command::Cancel);
        s.jobs.retain(|j| *j != Job::Preflight);
        s.preflight.running = false;
    }
    s.step = prev;
    // Back on the drop screen: the strategy is decided again, so what it says is what the
    // restore will run (a restore refused because the strategy changed comes back here).
    if prev == Step::ConfirmDrop {
        out.extend(decide_strategy(s));
    }
    out
}

fn nav(cursor: &mut usize, len: usize, k: &KeyEvent) -> bool {
    match k.code {
        KeyCode::Up | KeyCode::Char('k') => {
            *cursor = cursor.saturating_sub(1);
            true
        }
        KeyCode::Down | KeyCode::Char('j') => {
            if len > 0 {
                *cursor = (*cursor + 1).min(len - 1);
            }
            true
        }
        KeyCode::Home | KeyCode::Char('g') => {
            *cursor = 0;
            true
        }
        KeyCode::End | KeyCode::Char('G') => {
            *cursor = len.saturating_sub(1);
            true
        }
        _ => false,
    }
}

// ---------------------------------------------------------------- Resume

fn resume_key(s: &mut State, k: KeyEvent) -> Vec<Command> {
    match k.code {
        KeyCode::Enter => {
            let Some(offer) = s.resume.clone() else {
                s.step = Step::Detect;
                return Vec::new();
            };
            match offer.decision {
                Ok(point) => apply_resume(s, offer.session, point),
                Err(why) => {
                    s.notice = Some(format!(
                        "Cannot resume: {}. Press n to start over.",
                        why.join("; ")
                    ));
                    Vec::new()
                }
            }
        }
        KeyCode::Char('n') => {
            s.modal = Some(Modal::DiscardSession);
            Vec::new()
        }
        _ => Vec::new(),
    }
}

/// Discard the saved session (confirmed) and start over.
fn discard_session(s: &mut State) -> Vec<Command> {
    s.resume = None;
    s.log(Level::Info, "saved session discarded; starting over");
    s.step = if s.installation.ready().is_some() {
        Step::SelectBackup
    } else {
        Step::Detect
    };
    remove_session(s).into_iter().collect()
}

fn apply_resume(
    s: &mut State,
    session: Session,
    point: rewind_engine::session::ResumePoint,
) -> Vec<Command> {
    let row = s
        .backups
        .ready()
        .and_then(|rows| rows.iter().find(|r| r.path == session.backup.path).cloned())
        .unwrap_or_else(|| BackupRow {
            id: session
                .backup
                .path
                .file_name()
                .map(|n| {
                    n.to_string_lossy()
                        .trim_end_matches("_gitlab_backup.tar")
                        .to_string()
                })
                .unwrap_or_default(),
            path: session.backup.path.clone(),
            created: String::new(),
            backup_created_at: None,
            version: session.target_version.clone(),
            size: session.backup.size,
            mtime: session.backup.mtime,
            components: Vec::new(),
            skipped: Vec::new(),
            matches_installed: false,
            details: Vec::new(),
        });
    s.chosen = Some(row.clone());
    s.snapshots_taken = point.snapshots.clone();
    s.snapshot_declined = session.snapshot_declined;
    if let Some(db) = &session.database {
        s.database = Some(db.clone());
    }
    for d in &session.done {
        match d.step {
            SessionStep::StopServices => {
                s.stop.status = ActionStatus::Succeeded;
                s.stop.result = Some(d.summary.clone());
                s.changes.push(Change {
                    step: Step::StopServices,
                    what: "the services were stopped".into(),
                });
            }
            SessionStep::RollbackPackage => {
                s.rollback.status = ActionStatus::Succeeded;
                s.rollback.result = Some(d.summary.clone());
                s.changes.push(Change {
                    step: Step::RollbackPackage,
                    what: "the package was rolled back".into(),
                });
            }
            SessionStep::Drop => s.changes.push(Change {
                step: Step::Restore,
                what: "the database was dropped".into(),
            }),
            SessionStep::StartServices => {
                s.start.status = ActionStatus::Succeeded;
                s.start.result = Some(d.summary.clone());
            }
            _ => {}
        }
    }
    if matches!(
        session.in_progress,
        Some(SessionStep::Drop | SessionStep::Restore)
    ) && !s.changes.iter().any(|c| c.step == Step::Restore)
    {
        // A restore in progress with no drop done ran beside the live database (the
        // in-place one records its drop first).
        let beside = session.in_progress == Some(SessionStep::Restore)
            && !session.done.iter().any(|d| d.step == SessionStep::Drop);
        s.changes.push(Change {
            step: Step::Restore,
            what: if beside {
                "a restore beside the live database was started (the live one is untouched until the swap)".into()
            } else {
                "the database was dropped".into()
            },
        });
    }
    s.log(
        Level::Info,
        format!(
            "resuming the session of {}: {}",
            session.started, point.reason
        ),
    );
    s.session = Some(session);
    s.resume = None;
    // Preflight changes nothing and the world may have moved: run it again.
    let mut out = begin_preflight(s, &row);
    let step = match point.step {
        SessionStep::Preflight => Step::Preflight,
        SessionStep::StopServices => Step::StopServices,
        SessionStep::RollbackPackage => Step::RollbackPackage,
        SessionStep::SafetySnapshot | SessionStep::Drop | SessionStep::Restore => Step::ConfirmDrop,
        SessionStep::Verify => Step::Verify,
        SessionStep::StartServices => Step::StartServices,
        SessionStep::Done => Step::Done,
    };
    out.extend(enter_step(s, step));
    out
}

/// Save the session next to the journal (once the journal directory is known).
fn save(dir: &Option<PathBuf>, sess: &Session) -> Option<Command> {
    Some(Command::SaveSession {
        dir: dir.clone()?,
        session: Box::new(sess.clone()),
    })
}

/// Remove the saved session (once the journal directory is known).
fn remove_session(s: &State) -> Option<Command> {
    Some(Command::RemoveSession {
        dir: s.journal_dir.clone()?,
    })
}

// ---------------------------------------------------------------- Detect

fn detect_key(s: &mut State, k: KeyEvent) -> Vec<Command> {
    if !s.interrupted.is_empty() || s.running(Job::Swaps) {
        return swap_key(s, k);
    }
    match k.code {
        KeyCode::Enter => match &s.installation {
            Loadable::Ready(_) => enter_step(s, Step::SelectBackup),
            Loadable::Failed(e) => {
                s.notice = Some(format!(
                    "Detection failed: {e}. Fix it, or point Rewind at the host with --root; r detects again."
                ));
                Vec::new()
            }
            _ => {
                s.notice = Some("Still detecting…".into());
                Vec::new()
            }
        },
        KeyCode::Char('r') if !s.running(Job::Detect) => start(s),
        KeyCode::Char('m') => enter_repair(s, Step::Detect),
        _ => Vec::new(),
    }
}

/// Detect with swaps interrupted between their renames: c completes them (the verified
/// restore takes the live name), u reverses them (the failed upgrade's database takes it
/// back); nothing else runs first.
fn swap_key(s: &mut State, k: KeyEvent) -> Vec<Command> {
    if s.running(Job::Swaps) {
        s.notice = Some("Reading the journal for interrupted swaps…".into());
        return Vec::new();
    }
    let complete = match k.code {
        KeyCode::Char('c') => true,
        KeyCode::Char('u') => false,
        KeyCode::Char('r') if !s.running(Job::Detect) => return start(s),
        _ => {
            s.notice = Some(
                "A swap was interrupted between its renames: c completes it (the restore takes the live name), u reverses it (the failed upgrade's database takes it back). Nothing else runs first."
                    .into(),
            );
            return Vec::new();
        }
    };
    let Some(host) = s.host() else {
        return Vec::new();
    };
    s.log(
        Level::Warn,
        if complete {
            "completing the interrupted swap"
        } else {
            "reversing the interrupted swap"
        },
    );
    s.jobs.push(Job::Swaps);
    vec![Command::ResolveSwaps { host, complete }]
}

/// Decide the restore strategy (again), as `rewind restore` does.
fn decide_strategy(s: &mut State) -> Vec<Command> {
    let Some(host) = s.host() else {
        return Vec::new();
    };
    if s.running(Job::Strategy) {
        return Vec::new();
    }
    if !matches!(s.strategy, Loadable::Ready(_)) {
        s.strategy = Loadable::Loading;
    }
    s.jobs.push(Job::Strategy);
    vec![Command::DecideStrategy { host }]
}

fn enter_repair(s: &mut State, from: Step) -> Vec<Command> {
    if !s.jobs.iter().all(|j| matches!(j, Job::Backups)) {
        s.notice = Some("Wait for the running work to finish first.".into());
        return Vec::new();
    }
    s.repair.from = Some(from);
    s.repair.assessment = None;
    s.repair.confirm.clear();
    s.repair.cursor = None;
    s.step = Step::RepairMigrations;
    // The failed logs and the migration command GitLab's docs give for this install.
    s.host()
        .map(|host| Command::FindMigrateLogs { host })
        .into_iter()
        .collect()
}

// ---------------------------------------------------------------- SelectBackup

fn backup_key(s: &mut State, k: KeyEvent) -> Vec<Command> {
    let len = s.backups.ready().map(|b| b.len()).unwrap_or(0);
    if nav(&mut s.backup_cursor, len, &k) {
        return Vec::new();
    }
    match k.code {
        KeyCode::Enter => {
            let Some(row) = s
                .backups
                .ready()
                .and_then(|b| b.get(s.backup_cursor))
                .cloned()
            else {
                s.notice = Some(match &s.backups {
                    Loadable::Ready(_) => "No backup to pick: put the archive in the backup directory, or pass --backup-dir.".into(),
                    Loadable::Failed(e) => format!("Cannot list the backups: {e}"),
                    Loadable::Unavailable(e) => e.clone(),
                    _ => "Still reading the backup directory…".into(),
                });
                return Vec::new();
            };
            pick_backup(s, row)
        }
        KeyCode::Char('r') if !s.running(Job::Backups) => {
            let Some(host) = s.host() else {
                return Vec::new();
            };
            s.backups = Loadable::Loading;
            s.jobs.push(Job::Backups);
            vec![Command::LoadBackups { host }]
        }
        _ => Vec::new(),
    }
}

fn pick_backup(s: &mut State, row: BackupRow) -> Vec<Command> {
    let installed = s.installation.ready().and_then(|i| i.version.clone());
    s.session = Some(Session::new(
        BackupIdentity {
            path: row.path.clone(),
            size: row.size,
            mtime: row.mtime,
        },
        row.version.clone(),
        installed,
        s.database.clone(),
    ));
    s.log(
        Level::Info,
        format!(
            "picked backup {} (GitLab {})",
            row.id,
            row.version
                .as_ref()
                .map(|v| v.to_string())
                .unwrap_or_else(|| "unknown".into())
        ),
    );
    s.chosen = Some(row.clone());
    // A new pick resets every later step.
    s.stop = Default::default();
    s.rollback = Default::default();
    s.edition_question = None;
    s.allow_edition_change = false;
    s.start = Default::default();
    s.inventory = Loadable::NotStarted;
    s.confirm_inputs.clear();
    s.confirm_index = 0;
    s.step = Step::Preflight;
    begin_preflight(s, &row)
}

fn begin_preflight(s: &mut State, row: &BackupRow) -> Vec<Command> {
    let Some(host) = s.host() else {
        return Vec::new();
    };
    s.preflight.checks.clear();
    s.archive_verified = None;
    s.preflight.verify = None;
    s.preflight.running = true;
    s.preflight.cursor = 0;
    if !s.running(Job::Preflight) {
        s.jobs.push(Job::Preflight);
    }
    vec![Command::Preflight {
        host,
        backup: row.clone(),
    }]
}

// ---------------------------------------------------------------- Preflight

fn preflight_key(s: &mut State, k: KeyEvent) -> Vec<Command> {
    let len = s.preflight.checks.len();
    if nav(&mut s.preflight.cursor, len, &k) {
        return Vec::new();
    }
    match k.code {
        KeyCode::Enter => {
            if s.preflight.running {
                s.notice = Some(format!(
                    "The checks are still running ({} done so far).",
                    s.preflight.checks.len()
                ));
                return Vec::new();
            }
            let fails = s.preflight.failures();
            if let Some(f) = fails.first() {
                s.notice = Some(format!(
                    "Blocked: {} failed: {}. Fix: {}. Then press r to check again.",
                    f.label(true),
                    one_line(&f.reason),
                    f.fix
                ));
                return Vec::new();
            }
            if let Some(sess) = s.session.as_mut() {
                let warn = s
                    .preflight
                    .checks
                    .iter()
                    .filter(|c| c.status == Status::Warn)
                    .count();
                sess.finish(
                    SessionStep::Preflight,
                    format!("{} checks, {warn} warnings", s.preflight.checks.len()),
                );
            }
            enter_step(s, Step::StopServices)
        }
        KeyCode::Char('r') if !s.preflight.running => match s.chosen.clone() {
            Some(row) => begin_preflight(s, &row),
            None => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// Go to `step` and ask for what it needs.
fn enter_step(s: &mut State, step: Step) -> Vec<Command> {
    s.step = step;
    let (Some(backup), Some(host)) = (s.chosen.clone(), s.host()) else {
        return Vec::new();
    };
    match step {
        Step::StopServices | Step::RollbackPackage | Step::StartServices => {
            let a = s.action_mut(step).expect("a command step");
            if matches!(
                a.status,
                ActionStatus::Succeeded
                    | ActionStatus::Running
                    | ActionStatus::Planning
                    | ActionStatus::Ready
                    | ActionStatus::Skipped(_)
            ) {
                return Vec::new();
            }
            a.status = ActionStatus::Planning;
            a.commands.clear();
            vec![Command::PlanAction {
                host,
                step,
                backup,
                allow_edition_change: s.allow_edition_change,
            }]
        }
        Step::ConfirmDrop => {
            s.confirm_index = 0;
            s.confirm_inputs.clear();
            s.inventory_scroll = 0;
            s.drop_cursor = 0;
            s.repo_decision = None;
            if s.running(Job::Inventory) {
                return Vec::new();
            }
            s.inventory = Loadable::Loading;
            s.repositories = Loadable::Loading;
            s.jobs.push(Job::Inventory);
            s.jobs.push(Job::Repositories);
            // Decided again now (free space may have changed since the package step):
            // the screen says exactly what the restore does.
            let mut out = vec![Command::LoadInventory {
                host,
                backup,
                verified: s.archive_verified.clone(),
            }];
            out.extend(decide_strategy(s));
            out
        }
        Step::RestoreConfig => {
            if s.config.archives.is_some() || s.running(Job::Config) {
                return Vec::new();
            }
            s.config.archives = Some(Loadable::Loading);
            s.config.diff = Some(Loadable::Loading);
            s.jobs.push(Job::Config);
            vec![Command::LoadConfig {
                host,
                before: backup.backup_created_at,
            }]
        }
        Step::PostChecks => {
            if s.post.rows.is_some() {
                return Vec::new();
            }
            s.post.rows = Some(Loadable::Loading);
            vec![Command::PlanPostChecks { host }]
        }
        Step::Verify => {
            if matches!(s.verify, Loadable::Ready(_)) || s.running(Job::Verify) {
                return Vec::new();
            }
            s.verify = Loadable::Loading;
            s.jobs.push(Job::Verify);
            vec![Command::Verify { host }]
        }
        Step::Done => {
            if let Some(sess) = s.session.as_mut() {
                sess.finish(SessionStep::Done, "recovery finished");
            }
            s.log(Level::Info, "recovery finished");
            remove_session(s).into_iter().collect()
        }
        _ => Vec::new(),
    }
}

// ---------------------------------------------------------------- command steps

fn action_key(s: &mut State, k: KeyEvent) -> Vec<Command> {
    let step = s.step;
    // The editions differ: nothing is planned until the user answers.
    if step == Step::RollbackPackage && !s.allow_edition_change {
        if let Some(q) = s.edition_question.clone() {
            return match k.code {
                KeyCode::Char('i') => {
                    s.allow_edition_change = true;
                    s.log(
                        Level::Warn,
                        format!(
                            "install {} {} in place of {} (the backup's edition)",
                            q.backup_package, q.backup_version, q.installed_package
                        ),
                    );
                    s.rollback.status = ActionStatus::NotPlanned;
                    enter_step(s, Step::RollbackPackage)
                }
                KeyCode::Enter => {
                    s.notice = Some(format!(
                        "The editions differ: press i to install {} {} (the backup's edition), or Esc to go back.",
                        q.backup_package, q.backup_version
                    ));
                    Vec::new()
                }
                _ => Vec::new(),
            };
        }
    }
    let Some(a) = s.action(step).cloned() else {
        return Vec::new();
    };
    match (k.code, &a.status) {
        (KeyCode::Enter, ActionStatus::Ready)
            if step == Step::RollbackPackage
                && matches!(s.strategy, Loadable::Loading | Loadable::NotStarted) =>
        {
            s.notice = Some(
                "Deciding the restore strategy first (it says whether a safety snapshot is needed)…"
                    .into(),
            );
            Vec::new()
        }
        (KeyCode::Enter, ActionStatus::Ready) => {
            s.modal = Some(Modal::ConfirmRun(step));
            Vec::new()
        }
        (KeyCode::Enter, ActionStatus::Skipped(_) | ActionStatus::Succeeded) => {
            next_after_action(s, step)
        }
        (KeyCode::Enter, ActionStatus::Unavailable(why)) => {
            s.log(
                Level::Warn,
                format!("{}: not run by Rewind ({why}); do it by hand", step.title()),
            );
            next_after_action(s, step)
        }
        (KeyCode::Enter, ActionStatus::Failed(e)) => {
            let decline = if step == Step::RollbackPackage
                && !s.snapshot_declined
                && e.contains("safety snapshot")
            {
                " (d goes on without the safety snapshot)"
            } else {
                ""
            };
            s.notice = Some(format!(
                "{} failed: {e}. Fix the cause and press r to run it again{decline}.",
                step.title()
            ));
            Vec::new()
        }
        (KeyCode::Enter, _) => {
            s.notice = Some("Please wait: the step is running.".into());
            Vec::new()
        }
        (KeyCode::Char('r'), ActionStatus::Failed(_)) => {
            s.modal = Some(Modal::ConfirmRun(step));
            Vec::new()
        }
        // The snapshot before the package step failed (no space, ...): going on without it
        // takes the same second warning as on the snapshot screen.
        (KeyCode::Char('d'), ActionStatus::Failed(e))
            if step == Step::RollbackPackage
                && !s.snapshot_declined
                && e.contains("safety snapshot") =>
        {
            s.modal = Some(Modal::DeclineSnapshot);
            Vec::new()
        }
        _ => Vec::new(),
    }
}

fn next_after_action(s: &mut State, step: Step) -> Vec<Command> {
    match step {
        Step::StopServices => enter_step(s, Step::RollbackPackage),
        Step::RollbackPackage => enter_step(s, Step::ConfirmDrop),
        _ => enter_step(s, Step::PostChecks),
    }
}

fn run_action(s: &mut State, step: Step) -> Vec<Command> {
    let (Some(backup), Some(host)) = (s.chosen.clone(), s.host()) else {
        return Vec::new();
    };
    if step == Step::RollbackPackage && !s.preflight.failures().is_empty() {
        s.notice = Some("Blocked: a preflight check failed.".into());
        return Vec::new();
    }
    let a = s.action_mut(step).expect("a command step");
    a.status = ActionStatus::Running;
    a.output.clear();
    a.result = None;
    s.jobs.push(Job::Action(step));
    let what = match step {
        Step::StopServices => "the services were stopped",
        Step::RollbackPackage => "the GitLab package was changed",
        _ => "the services were started",
    };
    if step != Step::StartServices {
        s.changes.push(Change {
            step,
            what: what.into(),
        });
    }
    let mut out = Vec::new();
    if let Some(sess) = s.session.as_mut() {
        sess.begin(session_step(step));
        out.extend(save(&s.journal_dir, sess));
    }
    // Beside-and-swap keeps the failed upgrade's database whole: no snapshot then.
    let beside = s.strategy.ready().filter(|v| v.beside());
    let no_snapshot_because = match beside {
        Some(v) => format!(
            "not needed: the restore will run beside the live database and keep it whole ({})",
            v.reasons.join("; ")
        ),
        None => "declined by the user (second warning)".into(),
    };
    out.push(Command::RunAction {
        host,
        step,
        backup,
        snapshot: !s.snapshot_declined && beside.is_none(),
        taken: s.snapshots_taken.clone(),
        no_snapshot_because,
        allow_edition_change: s.allow_edition_change,
    });
    out
}

fn session_step(step: Step) -> SessionStep {
    match step {
        Step::StopServices => SessionStep::StopServices,
        Step::RollbackPackage => SessionStep::RollbackPackage,
        _ => SessionStep::StartServices,
    }
}

// ---------------------------------------------------------------- ConfirmDrop

/// One screen per database, main first (as GitLab restores them): each name is typed;
/// Enter on the last goes on to the snapshot.
fn confirm_key(s: &mut State, k: KeyEvent) -> Vec<Command> {
    let i = s.confirm_index;
    if s.confirm_inputs.len() <= i {
        s.confirm_inputs.resize(i + 1, String::new());
    }
    match k.code {
        KeyCode::Char('s') if k.modifiers.contains(KeyModifiers::CONTROL) => salvage_start(s),
        KeyCode::Char(c) if !k.modifiers.contains(KeyModifiers::CONTROL) => {
            s.confirm_inputs[i].push(c);
            Vec::new()
        }
        KeyCode::Backspace => {
            s.confirm_inputs[i].pop();
            Vec::new()
        }
        KeyCode::Up => {
            s.drop_cursor = s.drop_cursor.saturating_sub(1);
            Vec::new()
        }
        KeyCode::Down => {
            let len = s.confirm_inventory().map(|i| i.items.len()).unwrap_or(0);
            s.drop_cursor = (s.drop_cursor + 1).min(len.saturating_sub(1));
            Vec::new()
        }
        KeyCode::PageUp => {
            s.drop_cursor = s.drop_cursor.saturating_sub(10);
            Vec::new()
        }
        KeyCode::PageDown => {
            let len = s.confirm_inventory().map(|i| i.items.len()).unwrap_or(0);
            s.drop_cursor = (s.drop_cursor + 10).min(len.saturating_sub(1));
            Vec::new()
        }
        KeyCode::Home => {
            s.drop_cursor = 0;
            Vec::new()
        }
        KeyCode::End => {
            let len = s.confirm_inventory().map(|i| i.items.len()).unwrap_or(0);
            s.drop_cursor = len.saturating_sub(1);
            Vec::new()
        }
        KeyCode::Enter => {
            if let Some(why) = drop_blocked(s) {
                s.notice = Some(why);
                return Vec::new();
            }
            let Some(db) = s.confirm_inventory().map(|inv| inv.database.clone()) else {
                return Vec::new();
            };
            if s.confirm_input() != db {
                s.notice = Some(format!(
                    "Type the database name exactly ({db}) to enable the drop."
                ));
                return Vec::new();
            }
            s.log(
                Level::Warn,
                format!("drop of {db} confirmed by typing its name"),
            );
            let count = s.drop_databases().len();
            if i + 1 < count || s.repo_page() {
                // The next database, or the repositories after the last one.
                s.confirm_index = i + 1;
                s.inventory_scroll = 0;
                s.drop_cursor = 0;
                return Vec::new();
            }
            enter_step(s, Step::SafetySnapshot)
        }
        _ => Vec::new(),
    }
}

/// Rows created since the backup, over the databases listed (what a salvage writes).
pub fn created_since(s: &State) -> u64 {
    s.inventory
        .ready()
        .map(|v| v.iter().map(|i| i.created_since).sum())
        .unwrap_or(0)
}

/// Ctrl-S on the drop screen: write the rows created since the backup to a salvage
/// directory before anything is dropped (offered when the loss report is not empty).
fn salvage_start(s: &mut State) -> Vec<Command> {
    match &s.salvage {
        Loadable::Loading => {
            s.notice = Some("The salvage is already running.".into());
            return Vec::new();
        }
        Loadable::Ready(done) => {
            s.notice = Some(format!("Already salvaged to {}.", done.dir.display()));
            return Vec::new();
        }
        _ => {}
    }
    if created_since(s) == 0 {
        s.notice = Some("Nothing was created since the backup: nothing to salvage.".into());
        return Vec::new();
    }
    let (Some(host), Some(backup)) = (s.host(), s.chosen.clone()) else {
        return Vec::new();
    };
    s.salvage = Loadable::Loading;
    s.jobs.push(Job::Salvage);
    s.log(
        Level::Info,
        "salvage: writing the rows created since the backup before the drop",
    );
    vec![Command::Salvage { host, backup }]
}

/// Why the drop cannot go on, if it cannot.
pub fn drop_blocked(s: &State) -> Option<String> {
    if s.salvage == Loadable::Loading {
        return Some("The salvage is still writing the rows created since the backup: the drop waits for it.".into());
    }
    if s.preflight.running {
        return Some(format!(
            "The preflight checks are still running ({} done so far): the drop waits for them.",
            s.preflight.checks.len()
        ));
    }
    if let Some(f) = s.preflight.failures().first() {
        return Some(format!(
            "Blocked by preflight: {} failed ({}). Fix: {}.",
            f.label(true),
            one_line(&f.reason),
            f.fix
        ));
    }
    if s.preflight.checks.is_empty() {
        return Some("The preflight checks have not run.".into());
    }
    match &s.strategy {
        _ if s.running(Job::Strategy) => {
            return Some("Deciding the restore strategy (beside and swap, or in place)…".into())
        }
        Loadable::Ready(_) => {}
        Loadable::Failed(e) | Loadable::Unavailable(e) => {
            return Some(format!(
                "The restore strategy could not be decided: {e}. Check the database connection (database.yml), then Esc and come back."
            ))
        }
        _ => return Some("Deciding the restore strategy (beside and swap, or in place)…".into()),
    }
    match &s.inventory {
        Loadable::Ready(v) if v.is_empty() => Some("No database found to restore into.".into()),
        Loadable::Ready(_) => None,
        Loadable::Failed(e) => Some(format!("Cannot list what would be dropped: {e}")),
        Loadable::Unavailable(e) => Some(e.clone()),
        _ => Some("Still listing what would be dropped…".into()),
    }
}

/// Whether the confirm button of the database shown is enabled.
pub fn drop_enabled(s: &State) -> bool {
    drop_blocked(s).is_none()
        && s.confirm_inventory()
            .is_some_and(|inv| s.confirm_input() == inv.database)
}

/// The repositories page of the drop confirmation: y lets gitaly-backup replace them
/// (the pushed ones bundled aside first unless b turned that off), s leaves them out.
fn repo_key(s: &mut State, k: KeyEvent) -> Vec<Command> {
    match k.code {
        KeyCode::Up => {
            s.inventory_scroll = s.inventory_scroll.saturating_sub(1);
            Vec::new()
        }
        KeyCode::Down => {
            s.inventory_scroll += 1;
            Vec::new()
        }
        KeyCode::Char('b') => {
            s.repo_bundle = !s.repo_bundle;
            s.log(
                Level::Info,
                if s.repo_bundle {
                    "repositories pushed since the backup: bundled aside first"
                } else {
                    "repositories pushed since the backup: not bundled"
                },
            );
            Vec::new()
        }
        KeyCode::Char('y') | KeyCode::Char('s') => {
            if let Some(why) = drop_blocked(s) {
                s.notice = Some(why);
                return Vec::new();
            }
            match &s.repositories {
                Loadable::Loading => {
                    s.notice =
                        Some("Still listing the repositories pushed since the backup…".into());
                    return Vec::new();
                }
                Loadable::Failed(e) if k.code == KeyCode::Char('y') => {
                    s.notice = Some(format!(
                        "Cannot say what gitaly-backup would replace ({e}): s leaves the repositories out."
                    ));
                    return Vec::new();
                }
                _ => {}
            }
            let d = if k.code == KeyCode::Char('y') {
                RepoDecision::Replace
            } else {
                RepoDecision::Leave
            };
            s.repo_decision = Some(d);
            s.log(
                Level::Warn,
                match d {
                    RepoDecision::Replace if s.repo_bundle => {
                        "repositories: replaced by the backup's (confirmed), the pushed ones bundled aside first"
                    }
                    RepoDecision::Replace => {
                        "repositories: replaced by the backup's (confirmed), the pushed ones not bundled"
                    }
                    RepoDecision::Leave => "repositories: left out of this restore",
                },
            );
            enter_step(s, Step::SafetySnapshot)
        }
        KeyCode::Enter => {
            s.notice = Some(
                "Decide for the repositories: y replaces them with the backup's, s leaves them out (b: bundle the pushed ones first or not)."
                    .into(),
            );
            Vec::new()
        }
        _ => Vec::new(),
    }
}

/// What the drop screens confirmed for the repositories.
fn repo_choice(s: &State) -> RepoChoice {
    match s.repo_decision {
        _ if !s.repo_page() => RepoChoice::NotInBackup,
        Some(RepoDecision::Replace) => RepoChoice::Replace {
            bundle: s.repo_bundle,
        },
        _ => RepoChoice::Leave,
    }
}

// ---------------------------------------------------------------- SafetySnapshot

fn snapshot_key(s: &mut State, k: KeyEvent) -> Vec<Command> {
    match k.code {
        KeyCode::Enter => {
            if let Some(why) = drop_blocked(s) {
                s.notice = Some(why);
                return Vec::new();
            }
            if !s.all_confirmed() {
                s.notice = Some("Confirm the drop of every database first (Esc).".into());
                return Vec::new();
            }
            start_restore(s)
        }
        KeyCode::Char('d')
            if !s.beside() && !s.snapshot_declined && !s.without_snapshot().is_empty() =>
        {
            s.modal = Some(Modal::DeclineSnapshot);
            Vec::new()
        }
        _ => Vec::new(),
    }
}

/// Run the engine's recovery with what was confirmed: every database typed, a snapshot of
/// each database that has none yet (unless declined), and the snapshots already taken.
fn start_restore(s: &mut State) -> Vec<Command> {
    let (Some(backup), Some(host)) = (s.chosen.clone(), s.host()) else {
        return Vec::new();
    };
    let beside = s.beside();
    let take = !beside && !s.snapshot_declined && !s.without_snapshot().is_empty();
    s.step = Step::Restore;
    s.verify = Loadable::NotStarted;
    s.restore = RestoreState {
        started: Some(s.now),
        ..RestoreState::default()
    };
    for g in s.restore.phases.iter_mut() {
        // Beside: nothing is snapshotted or dropped (the live database is kept whole).
        if (g.phase == Phase::Snapshot && !take) || (g.phase == Phase::Drop && beside) {
            g.state = PhaseState::Skipped;
        }
    }
    s.jobs.push(Job::Restore);
    let mut out = Vec::new();
    if let Some(sess) = s.session.as_mut() {
        sess.begin(if take {
            SessionStep::SafetySnapshot
        } else if beside {
            SessionStep::Restore
        } else {
            SessionStep::Drop
        });
        out.extend(save(&s.journal_dir, sess));
    }
    out.push(Command::Restore {
        host,
        backup,
        confirm: s.confirm_inputs.clone(),
        snapshot: !s.snapshot_declined,
        reuse: s.snapshots_taken.clone(),
        verified: s.archive_verified.clone(),
        repositories: repo_choice(s),
        strategy: s.strategy.ready().map(|v| v.strategy),
    });
    out
}

// ---------------------------------------------------------------- Restore

fn restore_key(s: &mut State, k: KeyEvent) -> Vec<Command> {
    match (k.code, &s.restore.result) {
        (KeyCode::Enter, Some(Ok(_))) => enter_step(s, Step::Verify),
        (KeyCode::Enter | KeyCode::Char('r'), Some(Err(e))) if s.restore.strategy_changed => {
            s.notice = Some(format!(
                "{e}. Esc twice goes back to the drop screen, which shows the strategy now."
            ));
            Vec::new()
        }
        (KeyCode::Enter, Some(Err(e))) => {
            // What to do first: the reason can be long (v shows it whole).
            s.notice = Some(if s.snapshots_taken.is_empty() {
                format!("Press r to run the restore again. It did not finish: {e}")
            } else {
                format!("Press r to run the restore again from the drop (the snapshots already taken are kept and reused). It did not finish: {e}")
            });
            Vec::new()
        }
        // Retry: snapshots taken are reused; a database without one (cancelled, refused)
        // is offered the snapshot again, unless the user declined it.
        (KeyCode::Char('r'), Some(Err(_)))
            if !s.beside() && !s.snapshot_declined && !s.without_snapshot().is_empty() =>
        {
            s.step = Step::SafetySnapshot;
            s.notice = Some(format!(
                "No safety snapshot of {} was taken yet: Enter takes it before the drop, d declines it.",
                s.without_snapshot().join(", ")
            ));
            Vec::new()
        }
        (KeyCode::Char('r'), Some(Err(_))) => start_restore(s),
        (KeyCode::Enter, None) => {
            s.notice =
                Some("The restore is running. Ctrl-C cancels at the next safe point.".into());
            Vec::new()
        }
        _ => Vec::new(),
    }
}

// ---------------------------------------------------------------- Verify / Done

fn verify_key(s: &mut State, k: KeyEvent) -> Vec<Command> {
    match (k.code, &s.verify) {
        (KeyCode::Enter, Loadable::Ready(_) | Loadable::Unavailable(_)) => {
            enter_step(s, Step::RestoreConfig)
        }
        (KeyCode::Enter, Loadable::Failed(e)) => {
            s.notice = Some(format!("Verification failed: {e}. r runs it again."));
            Vec::new()
        }
        (KeyCode::Char('r'), Loadable::Failed(_) | Loadable::Ready(_)) => {
            s.verify = Loadable::NotStarted;
            enter_step(s, Step::Verify)
        }
        _ => Vec::new(),
    }
}

// ---------------------------------------------------------------- RestoreConfig

fn config_key(s: &mut State, k: KeyEvent) -> Vec<Command> {
    if s.config.running {
        if k.code == KeyCode::Enter {
            s.notice = Some("Please wait: the files are being restored.".into());
        }
        return Vec::new();
    }
    let len = s
        .config
        .archives
        .as_ref()
        .and_then(|a| a.ready())
        .map_or(0, Vec::len);
    let before = s.config.cursor;
    if s.config.result.is_none() && nav(&mut s.config.cursor, len, &k) {
        if s.config.cursor != before {
            if let (Some(host), Some(a)) = (s.host(), s.config.selected()) {
                let name = a.name.clone();
                s.config.diff = Some(Loadable::Loading);
                return vec![Command::DiffConfig { host, name }];
            }
        }
        return Vec::new();
    }
    match k.code {
        KeyCode::Char('y') if s.config.result.is_none() => {
            if !matches!(s.config.diff, Some(Loadable::Ready(_))) {
                s.notice = Some(
                    "Nothing compared yet: wait for the comparison with the live /etc/gitlab."
                        .into(),
                );
            } else if s.config.would_restore().is_empty() {
                s.notice = Some(
                    "Nothing to restore: gitlab-secrets.json and gitlab.rb match this archive. Enter goes on."
                        .into(),
                );
            } else {
                s.modal = Some(Modal::ConfirmConfig);
            }
            Vec::new()
        }
        KeyCode::Char('s') if s.config.result.is_none() => {
            s.config.skipped = true;
            s.log(
                Level::Warn,
                "configuration not restored (skipped): gitlab-secrets.json and gitlab.rb stay as they are",
            );
            enter_step(s, Step::StartServices)
        }
        KeyCode::Char('r') if matches!(s.config.result, Some(Err(_))) => {
            s.config.result = None;
            Vec::new()
        }
        KeyCode::Enter => {
            let loaded = s.config.archives.as_ref().and_then(|a| a.ready());
            let nothing = match loaded {
                Some(v) if v.is_empty() => true,
                None => matches!(s.config.archives, Some(Loadable::Failed(_))),
                Some(_) => {
                    matches!(s.config.diff, Some(Loadable::Ready(_)))
                        && s.config.would_restore().is_empty()
                }
            };
            match &s.config.result {
                Some(Ok(_)) => enter_step(s, Step::StartServices),
                Some(Err(e)) => {
                    s.notice = Some(format!(
                        "The configuration restore failed: {e}. r tries again, s goes on without."
                    ));
                    Vec::new()
                }
                None if nothing => enter_step(s, Step::StartServices),
                None => {
                    s.notice = Some(format!(
                        "{} differ from the archive: y restores them (live files moved aside), s goes on without.",
                        s.config.would_restore().join(" and ")
                    ));
                    Vec::new()
                }
            }
        }
        _ => Vec::new(),
    }
}

fn restore_config(s: &mut State) -> Vec<Command> {
    let (Some(host), Some(a)) = (s.host(), s.config.selected()) else {
        return Vec::new();
    };
    let name = a.name.clone();
    let files = s.config.would_restore();
    s.config.running = true;
    s.jobs.push(Job::Config);
    s.changes.push(Change {
        step: Step::RestoreConfig,
        what: format!("{} were restored from {name}", files.join(" and ")),
    });
    vec![Command::RestoreConfig { host, name, files }]
}

// ---------------------------------------------------------------- PostChecks

fn post_key(s: &mut State, k: KeyEvent) -> Vec<Command> {
    let len = s.post.rows().len();
    match k.code {
        KeyCode::Up | KeyCode::Char('k') | KeyCode::Down | KeyCode::Char('j') => {
            let before = s.post.cursor;
            nav(&mut s.post.cursor, len, &k);
            if s.post.cursor != before {
                s.post.scroll = 0;
            }
            Vec::new()
        }
        // Lines scrolled up from the newest output.
        KeyCode::PageUp => {
            let len = s
                .post
                .rows()
                .get(s.post.cursor)
                .map_or(0, |r| r.output.len());
            s.post.scroll = (s.post.scroll + 5).min(len);
            Vec::new()
        }
        KeyCode::PageDown => {
            s.post.scroll = s.post.scroll.saturating_sub(5);
            Vec::new()
        }
        KeyCode::Char(' ') if !s.post.running => {
            let cursor = s.post.cursor;
            let Some(Loadable::Ready(rows)) = s.post.rows.as_mut() else {
                return Vec::new();
            };
            let Some(r) = rows.get_mut(cursor) else {
                return Vec::new();
            };
            if r.changes_host && !r.selected {
                // It rewrites authorized_keys: asked first.
                s.modal = Some(Modal::ConfirmShellSetup);
            } else {
                r.selected = !r.selected;
            }
            Vec::new()
        }
        KeyCode::Enter if s.post.running => {
            s.notice = Some("Please wait: the checks are running.".into());
            Vec::new()
        }
        KeyCode::Enter if s.post.ran || matches!(s.post.rows, Some(Loadable::Failed(_))) => {
            enter_step(s, Step::Done)
        }
        KeyCode::Char('s') if !s.post.running && !s.post.ran => {
            s.post.skipped = true;
            s.log(
                Level::Warn,
                "checks after the restore not run (skipped): run gitlab-rake gitlab:check SANITIZE=true and gitlab:doctor:secrets by hand",
            );
            enter_step(s, Step::Done)
        }
        KeyCode::Enter | KeyCode::Char('r') if !s.post.running => run_post_checks(s),
        _ => Vec::new(),
    }
}

fn run_post_checks(s: &mut State) -> Vec<Command> {
    let Some(host) = s.host() else {
        return Vec::new();
    };
    let Some(Loadable::Ready(rows)) = s.post.rows.as_mut() else {
        return Vec::new();
    };
    let mut steps = Vec::new();
    for r in rows.iter_mut() {
        r.output.clear();
        if r.selected {
            r.state = CheckState::Pending;
            steps.push(r.step.clone());
        } else {
            r.state = CheckState::Skipped("not selected".into());
        }
    }
    s.post.running = true;
    s.post.doctor = None;
    s.post.scroll = 0;
    s.jobs.push(Job::PostChecks);
    vec![Command::RunPostChecks { host, steps }]
}

fn done_key(s: &mut State, k: KeyEvent) -> Vec<Command> {
    match k.code {
        KeyCode::Enter => quit_now(s),
        KeyCode::Char('m') => enter_repair(s, Step::Done),
        _ => Vec::new(),
    }
}

// ---------------------------------------------------------------- RepairMigrations

/// The text field typing goes to on the repair screen, before an assessment.
fn repair_field(r: &mut super::state::RepairState) -> &mut String {
    match r.field {
        RepairField::Log => &mut r.input,
        RepairField::MigrateCommand => &mut r.migrate_cmd,
    }
}

fn repair_key(s: &mut State, k: KeyEvent) -> Vec<Command> {
    let r = &mut s.repair;
    match &r.assessment {
        None => match k.code {
            KeyCode::Char(c) if !k.modifiers.contains(KeyModifiers::CONTROL) => {
                repair_field(r).push(c);
                Vec::new()
            }
            KeyCode::Backspace => {
                repair_field(r).pop();
                Vec::new()
            }
            KeyCode::Up | KeyCode::Down | KeyCode::BackTab => {
                r.field = match r.field {
                    RepairField::Log => RepairField::MigrateCommand,
                    RepairField::MigrateCommand => RepairField::Log,
                };
                Vec::new()
            }
            KeyCode::Tab => {
                r.field = RepairField::Log;
                if r.candidates.is_empty() {
                    s.notice = Some(
                        "No failed db:migrate log found in GitLab's log directory: type or paste the path of the log."
                            .into(),
                    );
                } else {
                    let next = r.cursor.map_or(0, |c| (c + 1) % r.candidates.len());
                    r.cursor = Some(next);
                    r.input = r.candidates[next].display().to_string();
                }
                Vec::new()
            }
            KeyCode::Enter => {
                let input = r.input.trim().to_string();
                if input.is_empty() {
                    s.notice = Some(
                        "Type or paste the path of the failed db:migrate log (Tab completes to the newest failed one)."
                            .into(),
                    );
                    return Vec::new();
                }
                let Some(host) = s.host() else {
                    s.notice = Some("The installation is not detected yet.".into());
                    return Vec::new();
                };
                let r = &mut s.repair;
                r.log = Some(PathBuf::from(&input));
                r.assessment = Some(Loadable::Loading);
                s.jobs.push(Job::Repair);
                vec![Command::AssessRepair {
                    host,
                    log: PathBuf::from(input),
                }]
            }
            _ => Vec::new(),
        },
        Some(Loadable::Ready(items)) if !items.is_empty() => match k.code {
            KeyCode::Char(c) if !k.modifiers.contains(KeyModifiers::CONTROL) => {
                r.confirm.push(c);
                Vec::new()
            }
            KeyCode::Backspace => {
                r.confirm.pop();
                Vec::new()
            }
            KeyCode::Enter => {
                let item = items[0].clone();
                repair_confirm(s, item)
            }
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

/// The migration command to run: the detected argv while the field shows it unedited,
/// else the edited text split at whitespace (no shell).
fn migrate_argv(r: &super::state::RepairState) -> Vec<String> {
    if !r.migrate_argv.is_empty() && r.migrate_cmd == r.migrate_argv.join(" ") {
        r.migrate_argv.clone()
    } else {
        r.migrate_cmd.split_whitespace().map(String::from).collect()
    }
}

fn repair_confirm(s: &mut State, item: super::state::RepairItem) -> Vec<Command> {
    if s.repair.running && !s.repair.awaiting {
        s.notice = Some("The repair is running: wait for its round to end.".into());
        return Vec::new();
    }
    if item.already_marked {
        s.notice = Some(format!(
            "{} is already marked complete in schema_migrations: there is nothing to mark. The log is older than the database; run the migrations again.",
            item.version
        ));
        return Vec::new();
    }
    if !item.markable {
        s.notice = Some(format!(
            "Rewind advises against marking {}: {}",
            item.version, item.verdict
        ));
        return Vec::new();
    }
    if s.repair.confirm.trim() != item.version {
        s.notice = Some(format!(
            "Type the migration version ({}) to mark it complete.",
            item.version
        ));
        return Vec::new();
    }
    if !s.repair.awaiting && s.repair.migrate_cmd.split_whitespace().next().is_none() {
        s.notice = Some(
            "No migration command to run after marking: Esc, then give it (↓ to the field).".into(),
        );
        return Vec::new();
    }
    s.repair.confirm.clear();
    s.changes.push(Change {
        step: Step::RepairMigrations,
        what: format!("migration {} was marked complete", item.version),
    });
    if s.repair.awaiting {
        s.repair.awaiting = false;
        return vec![Command::RepairAnswer { mark: true }];
    }
    let (Some(host), Some(log)) = (s.host(), s.repair.log.clone()) else {
        return Vec::new();
    };
    s.repair.running = true;
    s.jobs.push(Job::Repair);
    vec![Command::RunRepair {
        host,
        log,
        version: item.version,
        migrate_cmd: migrate_argv(&s.repair),
    }]
}

// ---------------------------------------------------------------- engine messages

fn on_msg(s: &mut State, m: Msg) -> Vec<Command> {
    match m {
        Msg::Detected(r) => {
            s.jobs.retain(|j| *j != Job::Detect);
            match r {
                Ok(inst) => {
                    let jdir = Journal::dir_for(&s.root.join(&inst.backup_path));
                    s.journal_dir = Some(jdir);
                    if s.database.is_none() {
                        s.database = inst.main_db().map(|d| d.spec.dbname.clone());
                    }
                    s.log(
                        Level::Info,
                        format!(
                            "detected GitLab {}",
                            inst.version
                                .as_ref()
                                .map(|v| v.to_string())
                                .unwrap_or_else(|| "(version unknown)".into())
                        ),
                    );
                    s.installation = Loadable::Ready(*inst);
                    s.backups = Loadable::Loading;
                    s.jobs.push(Job::Backups);
                    let host = s.host().expect("detected, with a journal directory");
                    s.triage = Loadable::Loading;
                    // A swap interrupted between its renames is found first; the strategy
                    // is decided once there is none (a half-swapped database has no live
                    // name to decide on).
                    s.jobs.push(Job::Swaps);
                    vec![
                        Command::FindInterruptedSwaps { host: host.clone() },
                        Command::LoadSession { host: host.clone() },
                        Command::LoadBackups { host: host.clone() },
                        Command::Triage { host },
                    ]
                }
                Err(e) => {
                    s.log(Level::Error, format!("detection failed: {e}"));
                    s.installation = Loadable::Failed(e);
                    Vec::new()
                }
            }
        }
        Msg::InterruptedSwaps(r) => {
            s.jobs.retain(|j| *j != Job::Swaps);
            match r {
                Ok(v) if v.is_empty() => {
                    s.interrupted.clear();
                    decide_strategy(s)
                }
                Ok(v) => {
                    for l in &v {
                        s.log(Level::Warn, format!("interrupted swap: {l}"));
                    }
                    s.interrupted = v;
                    // Nothing else runs first: the resume offer waits on Detect.
                    if s.step == Step::Resume {
                        s.step = Step::Detect;
                    }
                    Vec::new()
                }
                Err(e) => {
                    s.log(
                        Level::Warn,
                        format!("the journal could not be read for interrupted swaps: {e}"),
                    );
                    decide_strategy(s)
                }
            }
        }
        Msg::SwapsResolved(r) => {
            s.jobs.retain(|j| *j != Job::Swaps);
            match r {
                Ok(done) => {
                    for l in &done {
                        s.log(Level::Warn, l.clone());
                        s.changes.push(Change {
                            step: Step::Detect,
                            what: l.clone(),
                        });
                    }
                    s.interrupted.clear();
                    s.swaps_resolved = done;
                    if s.resume.is_some() && s.step == Step::Detect {
                        s.step = Step::Resume;
                    }
                    decide_strategy(s)
                }
                Err(e) => {
                    s.log(Level::Error, format!("interrupted swap not resolved: {e}"));
                    s.notice = Some(format!(
                        "The interrupted swap was not resolved: {e}. c completes it, u reverses it (or see `rewind undo`)."
                    ));
                    let Some(host) = s.host() else {
                        return Vec::new();
                    };
                    s.jobs.push(Job::Swaps);
                    vec![Command::FindInterruptedSwaps { host }]
                }
            }
        }
        Msg::StrategyDecided(r) => {
            s.jobs.retain(|j| *j != Job::Strategy);
            s.strategy = match r {
                Ok(v) => {
                    // Decided again on the drop screen: logged when it changed.
                    if s.strategy.ready() != Some(&v) {
                        s.log(Level::Info, format!("restore strategy: {}", v.line()));
                    }
                    Loadable::Ready(v)
                }
                Err(e) => {
                    s.log(
                        Level::Warn,
                        format!("the restore strategy could not be decided: {e}"),
                    );
                    Loadable::Failed(e)
                }
            };
            Vec::new()
        }
        Msg::Triaged(r) => {
            s.triage = match r {
                Ok(t) => {
                    if t.upgrade.failed_upgrade {
                        let level = if t.needs_action() {
                            Level::Warn
                        } else {
                            Level::Info
                        };
                        s.log(
                            level,
                            format!(
                                "triage: {}: {}",
                                t.upgrade.summary(),
                                t.classification.verdict
                            ),
                        );
                    }
                    Loadable::Ready(*t)
                }
                Err(e) => {
                    s.log(Level::Warn, format!("triage failed: {e}"));
                    Loadable::Failed(e)
                }
            };
            Vec::new()
        }
        Msg::SessionFound(offer) => {
            if matches!(s.step, Step::Detect | Step::SelectBackup)
                && s.changes.is_empty()
                && s.interrupted.is_empty()
            {
                s.step = Step::Resume;
            }
            s.resume = Some(*offer);
            Vec::new()
        }
        Msg::Backups(r) => {
            s.jobs.retain(|j| *j != Job::Backups);
            s.backups = match r {
                Ok(rows) => {
                    s.backup_cursor = 0;
                    s.log(Level::Info, format!("{} backups found", rows.len()));
                    Loadable::Ready(rows)
                }
                Err(e) => {
                    s.log(Level::Error, format!("listing backups failed: {e}"));
                    Loadable::Failed(e)
                }
            };
            Vec::new()
        }
        Msg::PreflightCheck(c) => {
            let level = match c.status {
                Status::Pass => Level::Info,
                Status::Warn => Level::Warn,
                Status::Fail => Level::Error,
            };
            s.log(
                level,
                format!(
                    "preflight {}: {}: {}",
                    c.status.as_str(),
                    c.label(true),
                    one_line(&c.reason)
                ),
            );
            s.preflight
                .checks
                .retain(|x| (x.kind, &x.database) != (c.kind, &c.database));
            s.preflight.checks.push(c);
            Vec::new()
        }
        Msg::ArchiveVerified(v) => {
            // Only for the archive still chosen (a pick made meanwhile starts over).
            if s.chosen
                .as_ref()
                .is_some_and(|b| b.path == v.report.archive)
            {
                s.archive_verified = Some(v);
            }
            Vec::new()
        }
        Msg::PreflightDone => {
            s.jobs.retain(|j| *j != Job::Preflight);
            s.preflight.running = false;
            // Show the first failure's fix: the cursor goes to it.
            if let Some(i) = s
                .preflight
                .rows()
                .iter()
                .position(|(_, c)| c.is_some_and(|c| c.status == Status::Fail))
            {
                s.preflight.cursor = i;
            }
            Vec::new()
        }
        Msg::Progress(p) => on_progress(s, p),
        Msg::EditionDiffers(q) => {
            s.log(
                Level::Warn,
                format!(
                    "the editions differ: {} is installed, the backup was made on {} ({})",
                    q.installed_package, q.backup_version, q.backup_package
                ),
            );
            s.rollback.status = ActionStatus::NotPlanned;
            s.edition_question = Some(q);
            Vec::new()
        }
        Msg::ActionPlanned { step, result } => {
            let Some(a) = s.action_mut(step) else {
                return Vec::new();
            };
            match result {
                Ok(ActionPlan { commands, skip }) => {
                    a.commands = commands;
                    a.status = match skip {
                        Some(why) => ActionStatus::Skipped(why),
                        None => ActionStatus::Ready,
                    };
                }
                Err(e) => a.status = ActionStatus::Failed(e),
            }
            Vec::new()
        }
        Msg::ActionDone {
            step,
            result,
            installation,
        } => {
            s.jobs.retain(|j| *j != Job::Action(step));
            if let Some(inst) = installation {
                if let Some(sess) = s.session.as_mut() {
                    sess.installed_version = inst.version.clone();
                }
                s.installation = Loadable::Ready(*inst);
            }
            let Some(a) = s.action_mut(step) else {
                return Vec::new();
            };
            let mut out = Vec::new();
            match result {
                Ok(found) => {
                    a.status = ActionStatus::Succeeded;
                    a.result = Some(found.clone());
                    s.log(Level::Info, format!("{}: {found}", step.title()));
                    if let Some(sess) = s.session.as_mut() {
                        sess.finish(session_step(step), found);
                        out.extend(save(&s.journal_dir, sess));
                    }
                }
                Err(e) => {
                    a.status = ActionStatus::Failed(e.message.clone());
                    s.log(
                        Level::Error,
                        format!("{} failed: {}", step.title(), e.message),
                    );
                    // Refused before anything ran: the quit dialog and the summary do not
                    // say this step changed the host.
                    if e.unchanged {
                        if let Some(i) = s.changes.iter().rposition(|c| c.step == step) {
                            s.changes.remove(i);
                        }
                        s.log(
                            Level::Info,
                            format!("{}: nothing was changed", step.title()),
                        );
                    }
                }
            }
            out
        }
        Msg::Inventory(r) => {
            s.jobs.retain(|j| *j != Job::Inventory);
            s.inventory = match r {
                Ok(invs) => {
                    if let Some(main) = invs.first() {
                        s.database = Some(main.database.clone());
                    }
                    // What was typed while the list loaded is kept.
                    s.confirm_inputs.resize(invs.len().max(1), String::new());
                    s.confirm_index = s.confirm_index.min(invs.len().saturating_sub(1));
                    Loadable::Ready(invs)
                }
                Err(e) => Loadable::Failed(e),
            };
            Vec::new()
        }
        Msg::Salvaged(r) => {
            s.jobs.retain(|j| *j != Job::Salvage);
            s.salvage = match r {
                Ok(done) => {
                    s.log(
                        Level::Info,
                        format!(
                            "salvage: {} rows in {} tables written to {}",
                            done.rows,
                            done.tables,
                            done.dir.display()
                        ),
                    );
                    s.changes.push(Change {
                        step: s.step,
                        what: format!(
                            "salvaged {} rows created since the backup to {}",
                            done.rows,
                            done.dir.display()
                        ),
                    });
                    Loadable::Ready(done)
                }
                Err(e) => {
                    s.log(Level::Error, format!("salvage failed: {e}"));
                    s.notice = Some(format!("Salvage failed (nothing was dropped): {e}"));
                    Loadable::Failed(e)
                }
            };
            Vec::new()
        }
        Msg::Repositories(r) => {
            s.jobs.retain(|j| *j != Job::Repositories);
            s.repositories = match r {
                Ok(p) => Loadable::Ready(p),
                Err(e) => Loadable::Failed(e),
            };
            Vec::new()
        }
        Msg::ConfigListed(r) => {
            s.config.cursor = r
                .as_ref()
                .ok()
                .and_then(|v| v.iter().position(|a| a.nearest))
                .unwrap_or(0);
            if !matches!(r, Ok(ref v) if !v.is_empty()) {
                s.jobs.retain(|j| *j != Job::Config);
                s.config.diff = None;
            }
            s.config.archives = Some(match r {
                Ok(v) => Loadable::Ready(v),
                Err(e) => Loadable::Failed(e),
            });
            Vec::new()
        }
        Msg::ConfigDiffed { name, result } => {
            s.jobs.retain(|j| *j != Job::Config);
            // A diff of an archive no longer shown is dropped.
            if s.config.selected().is_some_and(|a| a.name == name) {
                s.config.diff = Some(match result {
                    Ok(d) => Loadable::Ready(*d),
                    Err(e) => Loadable::Failed(e),
                });
            }
            Vec::new()
        }
        Msg::ConfigRestored(r) => {
            s.jobs.retain(|j| *j != Job::Config);
            s.config.running = false;
            match &r {
                Ok(t) => s.log(Level::Info, format!("configuration: {t}")),
                Err(e) => s.log(Level::Error, format!("configuration restore failed: {e}")),
            }
            s.config.result = Some(r);
            Vec::new()
        }
        Msg::PostPlanned(r) => {
            s.post.rows = Some(match r {
                Ok(v) => Loadable::Ready(v),
                Err(e) => Loadable::Failed(e),
            });
            Vec::new()
        }
        Msg::PostStarted { step } => {
            if let Some(r) = s.post.row_mut(&step) {
                r.state = CheckState::Running;
            }
            if let Some(i) = s.post.rows().iter().position(|r| r.step == step) {
                s.post.cursor = i;
                s.post.scroll = 0;
            }
            s.post.current = Some(step);
            Vec::new()
        }
        Msg::PostDone {
            step,
            result,
            doctor,
        } => {
            if let Some(d) = doctor {
                s.post.doctor = Some(*d);
            }
            let text = match &result {
                Ok(t) => format!("{step}: {t}"),
                Err(e) => format!("{step}: {e}"),
            };
            s.log(
                if result.is_ok() {
                    Level::Info
                } else {
                    Level::Warn
                },
                text,
            );
            if let Some(r) = s.post.row_mut(&step) {
                r.state = match result {
                    Ok(t) => CheckState::Passed(t),
                    Err(e) => CheckState::Failed(e),
                };
            }
            s.post.current = None;
            Vec::new()
        }
        Msg::PostFinished => {
            s.jobs.retain(|j| *j != Job::PostChecks);
            s.post.running = false;
            s.post.ran = true;
            s.post.current = None;
            if let Some(Loadable::Ready(rows)) = s.post.rows.as_mut() {
                for r in rows.iter_mut() {
                    if matches!(r.state, CheckState::Pending | CheckState::Running) {
                        r.state = CheckState::Skipped("not run (stopped)".into());
                    }
                }
            }
            // The first failure is shown.
            if let Some(i) = s
                .post
                .rows()
                .iter()
                .position(|r| matches!(r.state, CheckState::Failed(_)))
            {
                s.post.cursor = i;
                s.post.scroll = 0;
            }
            Vec::new()
        }
        Msg::SnapshotTaken { database, path } => {
            s.log(
                Level::Info,
                format!(
                    "safety snapshot of {database} written to {}",
                    path.display()
                ),
            );
            s.snapshots_taken.insert(database.clone(), path.clone());
            // Taken by the restore (the snapshot step ends when every database has one),
            // or before the package step by the rollback (recorded only).
            let all = s.running(Job::Restore) && s.without_snapshot().is_empty();
            let mut out = Vec::new();
            if let Some(sess) = s.session.as_mut() {
                sess.snapshots.insert(database, path.clone());
                if all {
                    sess.finish(SessionStep::SafetySnapshot, path.display().to_string());
                    sess.begin(SessionStep::Drop);
                }
                out.extend(save(&s.journal_dir, sess));
            }
            out
        }
        Msg::RestoreDone(r) => {
            s.jobs.retain(|j| *j != Job::Restore);
            s.restore.finished = Some(s.now);
            s.restore.workers.clear();
            let mut out = Vec::new();
            match &r {
                Ok(summary) => {
                    for g in &mut s.restore.phases {
                        if g.state == PhaseState::Pending {
                            g.state = PhaseState::Skipped;
                        }
                    }
                    s.log(Level::Info, format!("restore finished: {}", summary.text));
                    for k in &summary.kept {
                        s.log(
                            Level::Info,
                            format!("the failed upgrade's database is kept whole as {k}"),
                        );
                        s.changes.push(Change {
                            step: Step::Restore,
                            what: format!(
                                "the restore was swapped in; the failed upgrade's database is kept as {k}"
                            ),
                        });
                    }
                    s.kept_databases = summary.kept.clone();
                    if let Some(sess) = s.session.as_mut() {
                        sess.finish(SessionStep::Restore, summary.text.clone());
                        out.extend(save(&s.journal_dir, sess));
                    }
                }
                Err(e) => {
                    for g in &mut s.restore.phases {
                        if g.state == PhaseState::Running {
                            g.state = PhaseState::Failed;
                        }
                    }
                    s.log(Level::Error, format!("restore stopped: {}", e.message));
                }
            }
            match r {
                Ok(summary) => {
                    // The restore's own count of every table's rows.
                    s.restore.rows_loaded = summary.rows;
                    s.restore.tables_loaded = summary.tables;
                    s.restore.rows = 0;
                    s.restore.result = Some(Ok(summary.text));
                    // The runner verified each database: the Verify step shows it.
                    out.extend(on_msg(s, Msg::Verified(Ok(summary.verify))));
                }
                Err(e) => {
                    s.restore.strategy_changed = e.strategy_changed;
                    s.restore.result = Some(Err(e.message));
                }
            }
            out
        }
        Msg::Verified(r) => {
            s.jobs.retain(|j| *j != Job::Verify);
            let mut out = Vec::new();
            s.verify = match r {
                Ok(lines) => {
                    let bad = lines.iter().filter(|l| !l.ok).count();
                    if let Some(sess) = s.session.as_mut() {
                        sess.finish(
                            SessionStep::Verify,
                            format!("{} checks, {bad} problems", lines.len()),
                        );
                        out.extend(save(&s.journal_dir, sess));
                    }
                    Loadable::Ready(lines)
                }
                Err(e) => Loadable::Failed(e),
            };
            out
        }
        Msg::RepairAssessed(r) => {
            s.jobs.retain(|j| *j != Job::Repair);
            s.repair.assessment = Some(match r {
                Ok(items) => Loadable::Ready(items),
                Err(e) => Loadable::Failed(e),
            });
            Vec::new()
        }
        Msg::MigrateLogs { logs, migrate_cmd } => {
            let r = &mut s.repair;
            if r.migrate_cmd.is_empty() {
                r.migrate_cmd = migrate_cmd.join(" ");
                r.migrate_argv = migrate_cmd;
            }
            if r.input.is_empty() {
                if let Some(newest) = logs.first() {
                    s.log(
                        Level::Info,
                        format!("newest failed db:migrate log: {}", newest.display()),
                    );
                }
            }
            s.repair.candidates = logs;
            Vec::new()
        }
        Msg::RepairRound(r) => {
            let line = match r {
                Ok(l) => l,
                Err(e) => format!("error: {e}"),
            };
            s.log(Level::Info, format!("repair: {line}"));
            s.repair.rounds.push(line);
            Vec::new()
        }
        Msg::RepairAsk(item) => {
            s.repair.assessment = Some(Loadable::Ready(vec![item]));
            s.repair.confirm.clear();
            s.repair.awaiting = true;
            Vec::new()
        }
        Msg::RepairDone(r) => {
            s.jobs.retain(|j| *j != Job::Repair);
            s.repair.running = false;
            s.repair.awaiting = false;
            let line = match r {
                Ok(l) => l,
                Err(e) => format!("stopped: {e}"),
            };
            s.repair.rounds.push(line);
            s.repair.assessment = None;
            Vec::new()
        }
        Msg::Unavailable { step, reason } => {
            s.log(Level::Warn, format!("{}: {reason}", step.title()));
            match step {
                Step::SelectBackup => {
                    s.jobs.retain(|j| *j != Job::Backups);
                    s.backups = Loadable::Unavailable(reason);
                }
                Step::StopServices | Step::RollbackPackage | Step::StartServices => {
                    s.jobs.retain(|j| *j != Job::Action(step));
                    if let Some(a) = s.action_mut(step) {
                        a.status = ActionStatus::Unavailable(reason);
                    }
                }
                Step::ConfirmDrop => {
                    s.jobs.retain(|j| *j != Job::Inventory);
                    s.inventory = Loadable::Unavailable(reason);
                }
                Step::Restore => {
                    s.jobs.retain(|j| *j != Job::Restore);
                    s.restore.result = Some(Err(reason));
                }
                Step::Verify => {
                    s.jobs.retain(|j| *j != Job::Verify);
                    s.verify = Loadable::Unavailable(reason);
                }
                Step::RepairMigrations => {
                    s.jobs.retain(|j| *j != Job::Repair);
                    s.repair.running = false;
                    s.repair.assessment = Some(Loadable::Unavailable(reason));
                }
                _ => {}
            }
            Vec::new()
        }
    }
}

fn on_progress(s: &mut State, p: Progress) -> Vec<Command> {
    match p {
        Progress::Log { level, message } => {
            s.log(level, message);
            Vec::new()
        }
        Progress::Output { line } if s.post.current.is_some() => {
            let step = s.post.current.clone().unwrap_or_default();
            if let Some(r) = s.post.row_mut(&step) {
                r.output.push(line);
                if r.output.len() > 5000 {
                    r.output.drain(..1000);
                }
            }
            Vec::new()
        }
        Progress::Output { line } => {
            let step = s.jobs.iter().find_map(|j| match j {
                Job::Action(st) => Some(*st),
                _ => None,
            });
            match step.and_then(|st| s.action_mut(st)) {
                Some(a) => {
                    a.output.push(line);
                    if a.output.len() > 2000 {
                        a.output.drain(..500);
                    }
                }
                None => s.log(Level::Info, line),
            }
            Vec::new()
        }
        Progress::PhaseStarted {
            phase: Phase::Verify,
            total,
        } => {
            s.preflight.verify = Some((0, total));
            Vec::new()
        }
        Progress::Progress {
            phase: Phase::Verify,
            done,
            total,
            ..
        } => {
            s.preflight.verify = Some((done, total));
            Vec::new()
        }
        Progress::PhaseFinished {
            phase: Phase::Verify,
            ..
        } => {
            if let Some((done, total)) = s.preflight.verify {
                s.preflight.verify = Some((total.unwrap_or(done), total));
            }
            Vec::new()
        }
        Progress::PhaseStarted { phase, total } => {
            let now = s.now;
            if let Some(g) = s.restore.phases.iter_mut().find(|g| g.phase == phase) {
                g.state = PhaseState::Running;
                g.total = total;
                g.done = 0;
                g.started = Some(now);
            }
            s.restore.current = None;
            Vec::new()
        }
        Progress::Progress {
            phase,
            done,
            total,
            current,
            rows,
        } => {
            if let Some(g) = s.restore.phases.iter_mut().find(|g| g.phase == phase) {
                g.done = done;
                if total.is_some() {
                    g.total = total;
                }
                if g.state == PhaseState::Pending {
                    g.state = PhaseState::Running;
                    g.started = Some(s.now);
                }
            }
            if current.is_some() {
                s.restore.current = current;
            }
            if let (Some(r), Phase::Data) = (rows, phase) {
                s.restore.rows = r;
            }
            Vec::new()
        }
        Progress::PhaseFinished { phase, ok } => {
            let now = s.now;
            s.restore.workers.retain(|_, (p, _)| *p != phase);
            if let Some(g) = s.restore.phases.iter_mut().find(|g| g.phase == phase) {
                g.state = if ok {
                    PhaseState::Done
                } else {
                    PhaseState::Failed
                };
                g.finished = Some(now);
                if ok {
                    if let Some(t) = g.total {
                        g.done = t;
                    }
                }
            }
            let _ = ok;
            Vec::new()
        }
        // The drop committed and is journaled: only now do the wizard and its session say
        // so (a cancel or refusal before it leaves every table in place).
        Progress::Dropped { database } => {
            s.changes.push(Change {
                step: Step::Restore,
                what: format!("the database {database} was dropped for the restore"),
            });
            let mut out = Vec::new();
            if let Some(sess) = s.session.as_mut() {
                sess.finish(SessionStep::Drop, "all tables dropped");
                sess.begin(SessionStep::Restore);
                out.extend(save(&s.journal_dir, sess));
            }
            out
        }
        Progress::SnapshotWritten { .. } => Vec::new(),
        // What each connection works on, drawn under "Now"; an idle one is dropped.
        Progress::Worker { slot, phase, what } => {
            match what {
                Some(w) => {
                    s.restore.workers.insert(slot, (phase, w));
                }
                None => {
                    s.restore.workers.remove(&slot);
                }
            }
            Vec::new()
        }
        // A table's data was read whole: its rows count in the total, the table being
        // read starts from none.
        Progress::TableLoaded { rows, .. } => {
            s.restore.rows_loaded += rows;
            s.restore.tables_loaded += 1;
            s.restore.rows = 0;
            Vec::new()
        }
    }
}

/// A multi-line text (GitLab's version-mismatch message) on one line, for notices and the
/// log.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
#[path = "update_tests.rs"]
mod tests;
