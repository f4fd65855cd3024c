//! Transitions of the wizard, driven without a terminal.

use std::time::Duration;

use crossterm::event::KeyCode;
use rewind_engine::preflight::Status;
use rewind_engine::progress::{Event as P, Phase};
use rewind_engine::restore::beside::Strategy;
use rewind_engine::root::HostRoot;
use rewind_engine::session::{BackupIdentity, Session, SessionStep};

use super::{start, update};
use crate::tui::event::{
    ActionPlan, Command, Event, Msg, RepoChoice, RestoreFailure, RestoreSummary,
};
use crate::tui::fixtures::*;
use crate::tui::state::{
    ActionStatus, Job, Loadable, Modal, PhaseState, RepairItem, ResumeOffer, State, Step,
    VerifyLine,
};

#[test]
fn start_detects_then_loads_backups_and_the_session() {
    let mut s = State::new(HostRoot::new("/srv/sandbox"), Some("DRILL".into()));
    assert_eq!(start(&mut s), vec![Command::Detect]);
    assert!(matches!(s.installation, Loadable::Loading));
    let cmds = update(
        &mut s,
        Event::Engine(Msg::Detected(Ok(Box::new(installation())))),
    );
    let host = s.host().expect("host");
    assert_eq!(
        cmds,
        vec![
            Command::FindInterruptedSwaps { host: host.clone() },
            Command::LoadSession { host: host.clone() },
            Command::LoadBackups { host: host.clone() },
            Command::Triage { host }
        ]
    );
    assert!(matches!(s.triage, Loadable::Loading));
    assert_eq!(
        s.journal_dir.as_deref(),
        Some(std::path::Path::new(
            "/srv/sandbox/var/opt/gitlab/backups/rewind"
        ))
    );
    assert_eq!(s.database.as_deref(), Some(DB));
    assert!(s.running(Job::Backups));
    update(&mut s, Event::Engine(Msg::Backups(Ok(backups()))));
    assert!(!s.running(Job::Backups));
    assert_eq!(s.step, Step::Detect);
}

#[test]
fn failed_detection_keeps_the_user_on_detect_with_the_reason() {
    let mut s = State::new(HostRoot::system(), None);
    start(&mut s);
    update(
        &mut s,
        Event::Engine(Msg::Detected(Err("/opt/gitlab/.../VERSION: bad".into()))),
    );
    assert!(update(&mut s, key(KeyCode::Enter)).is_empty());
    assert_eq!(s.step, Step::Detect);
    assert!(s.notice.as_deref().unwrap().contains("Detection failed"));
    assert_eq!(update(&mut s, ch('r')), vec![Command::Detect]);
}

#[test]
fn backup_list_moves_with_arrows_and_jk_within_bounds() {
    let mut s = at_backups();
    assert_eq!(s.step, Step::SelectBackup);
    update(&mut s, ch('k'));
    assert_eq!(s.backup_cursor, 0);
    update(&mut s, ch('j'));
    assert_eq!(s.backup_cursor, 1);
    update(&mut s, key(KeyCode::Down));
    assert_eq!(s.backup_cursor, 1);
    update(&mut s, key(KeyCode::Up));
    assert_eq!(s.backup_cursor, 0);
    assert!(update(&mut s, key(KeyCode::Esc)).is_empty());
    assert_eq!(s.step, Step::Detect);
}

#[test]
fn picking_a_backup_fixes_the_target_and_runs_the_preflight() {
    let mut s = at_backups();
    let cmds = update(&mut s, key(KeyCode::Enter));
    let row = backups()[0].clone();
    assert_eq!(
        cmds,
        vec![Command::Preflight {
            host: s.host().unwrap(),
            backup: row.clone()
        }]
    );
    assert_eq!(s.step, Step::Preflight);
    assert_eq!(s.chosen.as_ref().unwrap().version, row.version);
    let sess = s.session.as_ref().unwrap();
    assert_eq!(sess.target_version, row.version);
    assert_eq!(sess.backup.path, row.path);
    // Enter waits for the checks.
    assert!(update(&mut s, key(KeyCode::Enter)).is_empty());
    assert!(s.notice.as_deref().unwrap().contains("still running"));
}

#[test]
fn a_failed_check_blocks_going_on_and_says_why() {
    let mut s = at_preflight(Status::Fail);
    assert!(update(&mut s, key(KeyCode::Enter)).is_empty());
    assert_eq!(s.step, Step::Preflight);
    let n = s.notice.clone().unwrap();
    assert!(n.contains("archive readable end to end failed"), "{n}");
    assert!(n.contains("copy it again"), "{n}");
    // r checks again.
    let cmds = update(&mut s, ch('r'));
    assert!(matches!(cmds[..], [Command::Preflight { .. }]));
    assert!(s.preflight.checks.is_empty() && s.preflight.running);
}

#[test]
fn every_database_reports_its_own_checks_and_all_kinds_must_report() {
    use rewind_engine::preflight::{Check, CheckKind};
    let mut s = at_backups();
    update(&mut s, key(KeyCode::Enter));
    let mut ci = checks(Status::Pass);
    ci.retain(|c| matches!(c.kind, CheckKind::Database | CheckKind::Writers));
    for c in &mut ci {
        c.database = Some("ci".into());
        c.status = Status::Pass;
    }
    let all: Vec<Check> = checks(Status::Pass).into_iter().chain(ci).collect();
    // The engine reports all checks of a kind together (cancellation is looked at between
    // kinds): once every kind has reported and none failed, the checks passed.
    for c in &all[..all.len() - 1] {
        update(&mut s, Event::Engine(Msg::PreflightCheck(c.clone())));
    }
    update(&mut s, Event::Engine(Msg::PreflightDone));
    assert!(s.preflight.passed(), "every kind reported");
    assert_eq!(s.preflight.checks.len(), 6);
    // A check of one database replaces only that database's check.
    let mut failed = all[all.len() - 1].clone();
    failed.status = Status::Fail;
    failed.reason = "cannot connect to gitlabhq_production_ci".into();
    failed.kind = CheckKind::Database;
    update(&mut s, Event::Engine(Msg::PreflightCheck(failed)));
    assert_eq!(s.preflight.checks.len(), 6);
    assert!(!s.preflight.passed());
    assert!(update(&mut s, key(KeyCode::Enter)).is_empty());
    assert_eq!(s.step, Step::Preflight);
    let n = s.notice.clone().unwrap();
    assert!(
        n.contains("database reachable with privileges (ci) failed: cannot connect to gitlabhq_production_ci"),
        "{n}"
    );

    let mut s = at_backups();
    update(&mut s, key(KeyCode::Enter));
    for c in checks(Status::Pass)
        .into_iter()
        .filter(|c| c.kind != CheckKind::Writers)
    {
        update(&mut s, Event::Engine(Msg::PreflightCheck(c)));
    }
    update(&mut s, Event::Engine(Msg::PreflightDone));
    assert!(!s.preflight.passed(), "the writers check never reported");
}

#[test]
fn passing_checks_go_on_to_stop_services_which_runs_only_after_confirmation() {
    let mut s = at_preflight(Status::Pass);
    let cmds = update(&mut s, key(KeyCode::Enter));
    assert_eq!(s.step, Step::StopServices);
    assert!(matches!(
        cmds[..],
        [Command::PlanAction {
            step: Step::StopServices,
            ..
        }]
    ));
    assert!(s.session.as_ref().unwrap().is_done(SessionStep::Preflight));
    update(
        &mut s,
        Event::Engine(Msg::ActionPlanned {
            step: Step::StopServices,
            result: Ok(ActionPlan {
                commands: plan_commands(Step::StopServices),
                skip: None,
            }),
        }),
    );
    assert_eq!(s.stop.status, ActionStatus::Ready);
    assert!(update(&mut s, key(KeyCode::Enter)).is_empty());
    assert_eq!(s.modal, Some(Modal::ConfirmRun(Step::StopServices)));
    // n: nothing runs.
    assert!(update(&mut s, ch('n')).is_empty());
    assert_eq!(s.modal, None);
    assert!(s.changes.is_empty());
    // Esc is still allowed: nothing changed.
    update(&mut s, key(KeyCode::Esc));
    assert_eq!(s.step, Step::Preflight);
    update(&mut s, key(KeyCode::Enter));
    update(&mut s, key(KeyCode::Enter));
    let cmds = update(&mut s, ch('y'));
    assert!(matches!(cmds[0], Command::SaveSession { .. }));
    assert!(matches!(
        cmds[1],
        Command::RunAction {
            step: Step::StopServices,
            ..
        }
    ));
    assert_eq!(s.stop.status, ActionStatus::Running);
    // Output streams into the step's pane.
    update(
        &mut s,
        Event::Engine(Msg::Progress(P::Output {
            line: "ok: down: puma".into(),
        })),
    );
    assert_eq!(s.stop.output, vec!["ok: down: puma".to_string()]);
    // q refuses while the command runs.
    assert!(update(&mut s, ch('q')).is_empty());
    assert!(!s.quit);
    let cmds = update(
        &mut s,
        Event::Engine(Msg::ActionDone {
            step: Step::StopServices,
            result: Ok("puma and sidekiq are down".into()),
            installation: Some(Box::new(installation())),
        }),
    );
    assert!(matches!(cmds[..], [Command::SaveSession { .. }]));
    assert_eq!(s.stop.status, ActionStatus::Succeeded);
    // The way back is closed now, and the notice says why.
    update(&mut s, key(KeyCode::Esc));
    assert_eq!(s.step, Step::StopServices);
    assert!(s
        .notice
        .as_deref()
        .unwrap()
        .contains("the services were stopped"));
    let cmds = update(&mut s, key(KeyCode::Enter));
    assert_eq!(s.step, Step::RollbackPackage);
    assert!(matches!(
        cmds[..],
        [Command::PlanAction {
            step: Step::RollbackPackage,
            ..
        }]
    ));
}

#[test]
fn a_skipped_rollback_goes_straight_on_to_the_drop_inventory() {
    let mut s = at_preflight(Status::Pass);
    update(&mut s, key(KeyCode::Enter));
    s.stop.status = ActionStatus::Succeeded;
    update(&mut s, key(KeyCode::Enter));
    update(
        &mut s,
        Event::Engine(Msg::ActionPlanned {
            step: Step::RollbackPackage,
            result: Ok(ActionPlan {
                commands: vec![],
                skip: Some("16.10.3-ee is installed".into()),
            }),
        }),
    );
    let cmds = update(&mut s, key(KeyCode::Enter));
    assert_eq!(s.step, Step::ConfirmDrop);
    assert!(matches!(
        cmds[..],
        [
            Command::LoadInventory { .. },
            Command::DecideStrategy { .. }
        ]
    ));
}

#[test]
fn a_failed_command_can_be_retried_but_not_skipped() {
    let mut s = at_preflight(Status::Pass);
    update(&mut s, key(KeyCode::Enter));
    update(
        &mut s,
        Event::Engine(Msg::ActionPlanned {
            step: Step::StopServices,
            result: Ok(ActionPlan {
                commands: plan_commands(Step::StopServices),
                skip: None,
            }),
        }),
    );
    update(&mut s, key(KeyCode::Enter));
    update(&mut s, ch('y'));
    update(
        &mut s,
        Event::Engine(Msg::ActionDone {
            step: Step::StopServices,
            result: Err("gitlab-ctl exited 1".into()),
            installation: None,
        }),
    );
    assert!(update(&mut s, key(KeyCode::Enter)).is_empty());
    assert_eq!(s.step, Step::StopServices);
    assert!(s.notice.as_deref().unwrap().contains("gitlab-ctl exited 1"));
    update(&mut s, ch('r'));
    assert_eq!(s.modal, Some(Modal::ConfirmRun(Step::StopServices)));
}

#[test]
fn a_step_refused_before_it_ran_is_not_counted_as_a_change() {
    let mut s = at_preflight(Status::Pass);
    update(&mut s, key(KeyCode::Enter));
    update(
        &mut s,
        Event::Engine(Msg::ActionPlanned {
            step: Step::StopServices,
            result: Ok(ActionPlan {
                commands: plan_commands(Step::StopServices),
                skip: None,
            }),
        }),
    );
    update(&mut s, key(KeyCode::Enter));
    update(&mut s, ch('y'));
    assert!(s.changes.iter().any(|c| c.step == Step::StopServices));
    // Another Rewind holds the host: nothing ran.
    update(
        &mut s,
        Event::Engine(Msg::ActionDone {
            step: Step::StopServices,
            result: Err(crate::tui::event::ActionFailed {
                message: "another Rewind recovery is running on this host".into(),
                unchanged: true,
            }),
            installation: None,
        }),
    );
    assert!(
        !s.changes.iter().any(|c| c.step == Step::StopServices),
        "{:?}",
        s.changes
    );
    // A failure while it ran stays a change (the services may be half stopped).
    update(&mut s, ch('r'));
    update(&mut s, ch('y'));
    update(
        &mut s,
        Event::Engine(Msg::ActionDone {
            step: Step::StopServices,
            result: Err("gitlab-ctl exited 1".into()),
            installation: None,
        }),
    );
    assert!(s.changes.iter().any(|c| c.step == Step::StopServices));
}

#[test]
fn the_drop_needs_the_exact_database_name() {
    let mut s = at_confirm();
    assert_eq!(s.step, Step::ConfirmDrop);
    // Letters are input here: q and l do not quit or toggle.
    typed(&mut s, "gitlabhq_productio");
    assert!(!s.quit && !s.log_visible);
    assert!(!crate::tui::update::drop_enabled(&s));
    assert!(update(&mut s, key(KeyCode::Enter)).is_empty());
    assert_eq!(s.step, Step::ConfirmDrop);
    assert!(s
        .notice
        .as_deref()
        .unwrap()
        .contains("Type the database name"));
    typed(&mut s, "nX");
    update(&mut s, key(KeyCode::Backspace));
    assert_eq!(s.confirm_input(), "gitlabhq_production");
    assert!(crate::tui::update::drop_enabled(&s));
    update(&mut s, key(KeyCode::Enter));
    assert_eq!(s.step, Step::SafetySnapshot);
    assert!(s.changes.iter().all(|c| c.step != Step::Restore));
}

#[test]
fn a_failed_preflight_blocks_confirm_drop_even_with_the_right_name() {
    let mut s = at_confirm();
    s.preflight.checks = checks(Status::Fail);
    typed(&mut s, DB);
    assert!(!crate::tui::update::drop_enabled(&s));
    assert!(update(&mut s, key(KeyCode::Enter)).is_empty());
    assert_eq!(s.step, Step::ConfirmDrop);
    assert!(s
        .notice
        .as_deref()
        .unwrap()
        .contains("Blocked by preflight"));
}

#[test]
fn the_restore_starts_with_the_snapshot_and_closes_the_way_back() {
    let mut s = at_confirm();
    typed(&mut s, DB);
    update(&mut s, key(KeyCode::Enter));
    let cmds = update(&mut s, key(KeyCode::Enter));
    assert_eq!(s.step, Step::Restore);
    assert!(matches!(cmds[0], Command::SaveSession { .. }));
    assert_eq!(
        cmds[1],
        Command::Restore {
            host: s.host().unwrap(),
            backup: s.chosen.clone().unwrap(),
            confirm: vec![DB.to_string()],
            snapshot: true,
            reuse: Default::default(),
            verified: None,
            repositories: RepoChoice::NotInBackup,
            strategy: Some(Strategy::InPlace),
        }
    );
    assert_eq!(
        s.session.as_ref().unwrap().in_progress,
        Some(SessionStep::SafetySnapshot)
    );
    // Esc and q are refused mid-restore.
    update(&mut s, key(KeyCode::Esc));
    assert_eq!(s.step, Step::Restore);
    assert!(s.notice.as_deref().unwrap().contains("no way back"));
    assert!(update(&mut s, ch('q')).is_empty());
    assert!(!s.quit);
    assert!(s.notice.as_deref().unwrap().contains("Ctrl-C"));
}

#[test]
fn progress_fills_the_gauges_and_saves_the_session_at_the_drop() {
    let s = mid_restore();
    let g = |p| {
        s.restore
            .phases
            .iter()
            .find(|g| g.phase == p)
            .unwrap()
            .clone()
    };
    assert_eq!(g(Phase::Snapshot).state, PhaseState::Done);
    assert_eq!(g(Phase::Drop).state, PhaseState::Done);
    assert_eq!(g(Phase::Data).state, PhaseState::Running);
    assert_eq!(g(Phase::Data).done, 671_088_640);
    assert_eq!(s.restore.current.as_deref(), Some("public.ci_builds"));
    assert_eq!(s.restore.rows, 512_334);
    let sess = s.session.as_ref().unwrap();
    assert!(sess.is_done(SessionStep::SafetySnapshot));
    assert!(sess.is_done(SessionStep::Drop));
    assert_eq!(sess.in_progress, Some(SessionStep::Restore));
    assert!(sess.snapshots.contains_key(DB));
}

#[test]
fn ctrl_c_during_the_restore_asks_then_cancels() {
    let mut s = mid_restore();
    assert!(update(&mut s, ctrl('c')).is_empty());
    assert_eq!(s.modal, Some(Modal::ConfirmCancel));
    // n keeps going.
    update(&mut s, ch('n'));
    assert_eq!(s.modal, None);
    assert!(!s.restore.cancel_requested);
    update(&mut s, ctrl('c'));
    assert_eq!(update(&mut s, ch('y')), vec![Command::Cancel]);
    assert!(s.restore.cancel_requested);
    // A cancelled restore can be run again, from the drop, without a second snapshot.
    update(
        &mut s,
        Event::Engine(Msg::RestoreDone(Err("cancelled at a safe point".into()))),
    );
    assert!(update(&mut s, key(KeyCode::Enter)).is_empty());
    let cmds = update(&mut s, ch('r'));
    assert!(matches!(
        cmds.last(),
        Some(Command::Restore { reuse, .. }) if reuse.contains_key(DB)
    ));
}

#[test]
fn after_the_drop_esc_is_refused_with_the_reason() {
    let mut s = mid_restore();
    let cmds = update(
        &mut s,
        Event::Engine(Msg::RestoreDone(Ok(RestoreSummary {
            text: "2.1 GiB in 1:42".into(),
            verify: vec![VerifyLine {
                ok: true,
                text: "gitlabhq_production: row counts: 42 tables".into(),
            }],
            rows: 0,
            tables: 0,
            kept: Vec::new(),
        }))),
    );
    // Saved twice: the restore finished, and its verification.
    assert!(matches!(
        cmds[..],
        [Command::SaveSession { .. }, Command::SaveSession { .. }]
    ));
    assert!(s
        .restore
        .phases
        .iter()
        .any(|g| g.phase == Phase::Repositories && g.state == PhaseState::Skipped));
    // The runner verified: the Verify step shows its lines without asking again.
    let cmds = update(&mut s, key(KeyCode::Enter));
    assert_eq!(s.step, Step::Verify);
    assert!(cmds.is_empty());
    assert!(matches!(&s.verify, Loadable::Ready(l) if l.len() == 1));
    update(&mut s, key(KeyCode::Esc));
    assert_eq!(s.step, Step::Verify);
    let n = s.notice.clone().unwrap();
    assert!(n.contains("No way back") && n.contains("dropped"), "{n}");
}

#[test]
fn declining_the_snapshot_needs_a_second_yes() {
    let mut s = at_confirm();
    typed(&mut s, DB);
    update(&mut s, key(KeyCode::Enter));
    update(&mut s, ch('d'));
    assert_eq!(s.modal, Some(Modal::DeclineSnapshot));
    update(&mut s, key(KeyCode::Esc));
    assert_eq!(s.step, Step::SafetySnapshot);
    update(&mut s, ch('d'));
    let cmds = update(&mut s, ch('y'));
    assert!(matches!(
        cmds.last(),
        Some(Command::Restore {
            snapshot: false,
            ..
        })
    ));
    assert!(s.session.as_ref().unwrap().snapshot_declined);
}

#[test]
fn quit_asks_only_once_something_changed() {
    let mut s = at_backups();
    assert_eq!(
        update(&mut s, ch('q')),
        vec![
            Command::Cancel,
            Command::RemoveSession {
                dir: s.journal_dir.clone().unwrap()
            },
            Command::Quit
        ]
        .into_iter()
        .filter(|c| *c != Command::Cancel || !s.jobs.is_empty())
        .collect::<Vec<_>>()
    );
    assert!(s.quit);

    let mut s = at_confirm();
    update(&mut s, key(KeyCode::Esc)); // refused: the services were stopped
    update(&mut s, ctrl('c'));
    assert_eq!(s.modal, Some(Modal::ConfirmQuit));
    update(&mut s, ch('n'));
    assert!(!s.quit);
    update(&mut s, ctrl('c'));
    let cmds = update(&mut s, ch('y'));
    assert_eq!(cmds.last(), Some(&Command::Quit));
    // The session is kept for a resume.
    assert!(!cmds
        .iter()
        .any(|c| matches!(c, Command::RemoveSession { .. })));
}

#[test]
fn help_overlay_swallows_keys_until_closed() {
    let mut s = at_backups();
    update(&mut s, ch('?'));
    assert!(s.help);
    assert!(update(&mut s, ch('j')).is_empty());
    assert_eq!(s.backup_cursor, 0);
    update(&mut s, key(KeyCode::Esc));
    assert!(!s.help);
    assert_eq!(s.step, Step::SelectBackup);
    update(&mut s, ch('l'));
    assert!(s.log_visible);
    update(&mut s, ctrl('l'));
    assert!(!s.log_visible);
}

#[test]
fn signals_cancel_running_work_and_quit() {
    let mut s = mid_restore();
    assert_eq!(
        update(&mut s, Event::Terminate),
        vec![Command::Cancel, Command::Quit]
    );
    assert!(s.quit);
}

fn interrupted_session() -> Session {
    let row = &backups()[0];
    let mut sess = Session::new(
        BackupIdentity {
            path: row.path.clone(),
            size: row.size,
            mtime: row.mtime,
        },
        row.version.clone(),
        Some("16.10.3-ee".parse().unwrap()),
        Some(DB.into()),
    );
    for st in [
        SessionStep::Preflight,
        SessionStep::StopServices,
        SessionStep::RollbackPackage,
        SessionStep::SafetySnapshot,
        SessionStep::Drop,
    ] {
        sess.finish(st, "ok");
    }
    sess.snapshots.insert(
        DB.into(),
        "/var/opt/gitlab/backups/rewind/snapshot-1-gitlabhq_production.dump".into(),
    );
    sess.begin(SessionStep::Restore);
    sess
}

#[test]
fn resume_restarts_an_interrupted_load_from_the_drop_without_a_second_snapshot() {
    let mut s = at_backups();
    s.step = Step::Detect;
    let sess = interrupted_session();
    let row = backups()[0].clone();
    let point = sess
        .resume_point(
            Some(&BackupIdentity {
                path: row.path.clone(),
                size: row.size,
                mtime: row.mtime,
            }),
            Some(&"16.10.3-ee".parse().unwrap()),
        )
        .unwrap();
    update(
        &mut s,
        Event::Engine(Msg::SessionFound(Box::new(ResumeOffer {
            session: sess.clone(),
            decision: Ok(point),
        }))),
    );
    assert_eq!(s.step, Step::Resume);
    let cmds = update(&mut s, key(KeyCode::Enter));
    assert_eq!(s.step, Step::ConfirmDrop);
    assert!(matches!(cmds[0], Command::Preflight { .. }));
    assert!(matches!(cmds[1], Command::LoadInventory { .. }));
    assert_eq!(s.snapshots_taken, sess.snapshots);
    assert_eq!(s.stop.status, ActionStatus::Succeeded);
    // The way back is closed: the database was dropped.
    update(&mut s, key(KeyCode::Esc));
    assert_eq!(s.step, Step::ConfirmDrop);
    // Going on: the snapshot is not taken again.
    for c in checks(Status::Pass) {
        update(&mut s, Event::Engine(Msg::PreflightCheck(c)));
    }
    update(&mut s, Event::Engine(Msg::PreflightDone));
    update(&mut s, Event::Engine(Msg::Inventory(Ok(vec![inventory()]))));
    update(&mut s, Event::Engine(Msg::Repositories(Ok(None))));
    update(&mut s, Event::Engine(Msg::StrategyDecided(Ok(in_place()))));
    typed(&mut s, DB);
    update(&mut s, key(KeyCode::Enter));
    assert_eq!(s.step, Step::SafetySnapshot);
    update(&mut s, ch('d'));
    assert_eq!(s.modal, None, "nothing to decline: already taken");
    let cmds = update(&mut s, key(KeyCode::Enter));
    assert!(matches!(
        cmds.last(),
        Some(Command::Restore { reuse, .. }) if reuse.contains_key(DB)
    ));
    assert_eq!(
        s.session.as_ref().unwrap().in_progress,
        Some(SessionStep::Drop)
    );
}

#[test]
fn a_refused_resume_says_why_and_n_starts_over() {
    let mut s = at_backups();
    s.step = Step::Detect;
    update(
        &mut s,
        Event::Engine(Msg::SessionFound(Box::new(ResumeOffer {
            session: interrupted_session(),
            decision: Err(vec!["the backup file /x changed: size 1 -> 2".into()]),
        }))),
    );
    assert_eq!(s.step, Step::Resume);
    assert!(update(&mut s, key(KeyCode::Enter)).is_empty());
    assert!(s.notice.as_deref().unwrap().contains("size 1 -> 2"));
    // n asks first; n again keeps the session.
    assert!(update(&mut s, ch('n')).is_empty());
    assert_eq!(s.modal, Some(Modal::DiscardSession));
    assert!(update(&mut s, ch('n')).is_empty());
    assert_eq!((s.step, s.modal.clone()), (Step::Resume, None));
    update(&mut s, ch('n'));
    assert!(matches!(
        update(&mut s, ch('y'))[..],
        [Command::RemoveSession { .. }]
    ));
    assert_eq!(s.step, Step::SelectBackup);
    assert!(s.resume.is_none());
}

#[test]
fn verify_then_start_services_then_done_removes_the_session() {
    let mut s = mid_restore();
    update(
        &mut s,
        Event::Engine(Msg::RestoreDone(Ok(RestoreSummary {
            text: "done".into(),
            verify: Vec::new(),
            rows: 0,
            tables: 0,
            kept: Vec::new(),
        }))),
    );
    update(&mut s, key(KeyCode::Enter));
    update(
        &mut s,
        Event::Engine(Msg::Verified(Ok(vec![crate::tui::state::VerifyLine {
            ok: true,
            text: "schema_migrations matches".into(),
        }]))),
    );
    assert!(s.session.as_ref().unwrap().is_done(SessionStep::Verify));
    // Verify goes on to the configuration; with no archive on the host, Enter goes on.
    let cmds = update(&mut s, key(KeyCode::Enter));
    assert_eq!(s.step, Step::RestoreConfig);
    assert!(matches!(cmds[..], [Command::LoadConfig { .. }]));
    update(&mut s, Event::Engine(Msg::ConfigListed(Ok(Vec::new()))));
    assert!(!s.running(Job::Config));
    let cmds = update(&mut s, key(KeyCode::Enter));
    assert_eq!(s.step, Step::StartServices);
    assert!(matches!(cmds[..], [Command::PlanAction { .. }]));
    update(
        &mut s,
        Event::Engine(Msg::ActionPlanned {
            step: Step::StartServices,
            result: Ok(ActionPlan {
                commands: plan_commands(Step::StartServices),
                skip: None,
            }),
        }),
    );
    update(&mut s, key(KeyCode::Enter));
    update(&mut s, ch('y'));
    update(
        &mut s,
        Event::Engine(Msg::ActionDone {
            step: Step::StartServices,
            result: Ok("all services are up".into()),
            installation: None,
        }),
    );
    // Then the checks: the readiness wait and the ticked checks, run on Enter.
    let cmds = update(&mut s, key(KeyCode::Enter));
    assert_eq!(s.step, Step::PostChecks);
    assert!(matches!(cmds[..], [Command::PlanPostChecks { .. }]));
    update(&mut s, Event::Engine(Msg::PostPlanned(Ok(post_rows()))));
    let cmds = update(&mut s, key(KeyCode::Enter));
    assert!(matches!(&cmds[..], [Command::RunPostChecks { steps, .. }]
        if steps == &["post.readiness", "post.check", "post.doctor_secrets"]));
    assert_eq!(
        s.step,
        Step::PostChecks,
        "Enter ran the checks, it did not leave"
    );
    for step in ["post.readiness", "post.check", "post.doctor_secrets"] {
        update(
            &mut s,
            Event::Engine(Msg::PostStarted { step: step.into() }),
        );
        update(
            &mut s,
            Event::Engine(Msg::PostDone {
                step: step.into(),
                result: Ok("ok".into()),
                doctor: None,
            }),
        );
    }
    update(&mut s, key(KeyCode::Enter));
    assert_eq!(s.step, Step::PostChecks, "still running: Enter waits");
    assert!(s.notice.as_deref().unwrap().contains("running"));
    update(&mut s, Event::Engine(Msg::PostFinished));
    let cmds = update(&mut s, key(KeyCode::Enter));
    assert_eq!(s.step, Step::Done);
    assert!(matches!(cmds[..], [Command::RemoveSession { .. }]));
    // Done quits without asking; m opens the repair.
    update(&mut s, ch('m'));
    assert_eq!(s.step, Step::RepairMigrations);
    update(&mut s, key(KeyCode::Esc));
    assert_eq!(s.step, Step::Done);
    let cmds = update(&mut s, ch('q'));
    assert_eq!(cmds.last(), Some(&Command::Quit));
    let _ = Duration::ZERO;
}

#[test]
fn repair_needs_the_version_typed_for_each_migration() {
    let mut s = at_backups();
    s.step = Step::Detect;
    let cmds = update(&mut s, ch('m'));
    assert_eq!(s.step, Step::RepairMigrations);
    assert!(matches!(cmds[..], [Command::FindMigrateLogs { .. }]));
    // Tab with no failed log found says so; the found logs and the command arrive.
    update(&mut s, key(KeyCode::Tab));
    assert!(s
        .notice
        .as_deref()
        .unwrap()
        .contains("No failed db:migrate log"));
    update(
        &mut s,
        Event::Engine(Msg::MigrateLogs {
            logs: vec![
                "/var/log/gitlab/gitlab-rails/gitlab-rails-db-migrate-2026-11-25-10-00-00.log"
                    .into(),
                "/var/log/gitlab/gitlab-rails/gitlab-rails-db-migrate-2026-11-24-10-00-00.log"
                    .into(),
            ],
            migrate_cmd: vec!["gitlab-rake".into(), "db:migrate".into()],
        }),
    );
    assert_eq!(s.repair.migrate_cmd, "gitlab-rake db:migrate");
    assert_eq!(s.repair.migrate_argv, vec!["gitlab-rake", "db:migrate"]);
    assert!(update(&mut s, key(KeyCode::Enter)).is_empty());
    // Tab completes to the newest failed log, then the next one, then around.
    update(&mut s, key(KeyCode::Tab));
    assert!(s.repair.input.ends_with("2026-11-25-10-00-00.log"));
    update(&mut s, key(KeyCode::Tab));
    assert!(s.repair.input.ends_with("2026-11-24-10-00-00.log"));
    update(&mut s, key(KeyCode::Tab));
    assert!(s.repair.input.ends_with("2026-11-25-10-00-00.log"));
    // The migrate command is edited on the screen (↓ moves to it).
    update(&mut s, key(KeyCode::Down));
    for _ in 0.."db:migrate".len() {
        update(&mut s, key(KeyCode::Backspace));
    }
    typed(&mut s, "db:migrate:main");
    assert_eq!(s.repair.migrate_cmd, "gitlab-rake db:migrate:main");
    update(&mut s, key(KeyCode::Up));
    s.repair.input.clear();
    typed(&mut s, "/var/log/gitlab/gitlab-rails/migrate.log");
    let cmds = update(&mut s, key(KeyCode::Enter));
    assert!(matches!(cmds[..], [Command::AssessRepair { .. }]));
    update(
        &mut s,
        Event::Engine(Msg::RepairAssessed(Ok(vec![item(
            "20151103134857",
            true,
            false,
        )]))),
    );
    typed(&mut s, "2015110313485");
    assert!(update(&mut s, key(KeyCode::Enter)).is_empty());
    typed(&mut s, "7");
    let cmds = update(&mut s, key(KeyCode::Enter));
    assert_eq!(
        cmds,
        vec![Command::RunRepair {
            host: s.host().unwrap(),
            log: "/var/log/gitlab/gitlab-rails/migrate.log".into(),
            version: "20151103134857".into(),
            migrate_cmd: vec!["gitlab-rake".into(), "db:migrate:main".into()],
        }]
    );
    assert!(s.repair.running);
    // The loop's next round asks again; Esc answers no.
    update(
        &mut s,
        Event::Engine(Msg::RepairAsk(item("20240412091512", true, false))),
    );
    assert!(s.repair.awaiting);
    typed(&mut s, "20240412091512");
    assert_eq!(
        update(&mut s, key(KeyCode::Enter)),
        vec![Command::RepairAnswer { mark: true }]
    );
    update(
        &mut s,
        Event::Engine(Msg::RepairAsk(item("20240412091513", false, false))),
    );
    typed(&mut s, "20240412091513");
    assert!(update(&mut s, key(KeyCode::Enter)).is_empty());
    assert!(s.notice.as_deref().unwrap().contains("advises against"));
    // A version already in schema_migrations is reported, not offered.
    update(
        &mut s,
        Event::Engine(Msg::RepairAsk(item("20240412091514", false, true))),
    );
    typed(&mut s, "20240412091514");
    assert!(update(&mut s, key(KeyCode::Enter)).is_empty());
    assert!(s
        .notice
        .as_deref()
        .unwrap()
        .contains("already marked complete"));
    assert_eq!(
        update(&mut s, key(KeyCode::Esc)),
        vec![Command::RepairAnswer { mark: false }]
    );
}

#[test]
fn a_restore_refused_before_the_drop_does_not_close_the_way_back() {
    let mut s = at_confirm();
    typed(&mut s, DB);
    update(&mut s, key(KeyCode::Enter));
    update(&mut s, key(KeyCode::Enter));
    assert_eq!(s.step, Step::Restore);
    // The snapshot ran, then the runner refused (say, another recovery holds the lock):
    // no Dropped event came, so every table is still there.
    update(
        &mut s,
        Event::Engine(Msg::Progress(P::PhaseFinished {
            phase: Phase::Snapshot,
            ok: true,
        })),
    );
    update(
        &mut s,
        Event::Engine(Msg::RestoreDone(Err(
            "another Rewind recovery is running on this host (pid 42 ...)".into(),
        ))),
    );
    update(&mut s, key(KeyCode::Esc));
    let n = s.notice.clone().unwrap_or_default();
    assert!(!n.contains("dropped"), "{n}");
    assert_ne!(
        s.step,
        Step::Restore,
        "Esc goes back when nothing was dropped"
    );
    // Once the engine reports the drop, the way back is closed.
    let mut s = at_confirm();
    typed(&mut s, DB);
    update(&mut s, key(KeyCode::Enter));
    update(&mut s, key(KeyCode::Enter));
    update(
        &mut s,
        Event::Engine(Msg::Progress(P::Dropped {
            database: DB.into(),
        })),
    );
    update(
        &mut s,
        Event::Engine(Msg::RestoreDone(Err("load failed".into()))),
    );
    update(&mut s, key(KeyCode::Esc));
    let n = s.notice.clone().unwrap_or_default();
    assert!(n.contains("No way back") && n.contains("dropped"), "{n}");
}

#[test]
fn a_retry_offers_a_snapshot_never_taken_and_reuses_one_taken() {
    // Cancelled during the snapshot: nothing was taken, nothing dropped.
    let mut s = at_confirm();
    typed(&mut s, DB);
    update(&mut s, key(KeyCode::Enter));
    update(&mut s, key(KeyCode::Enter));
    update(
        &mut s,
        Event::Engine(Msg::RestoreDone(Err(
            "restore of `gitlabhq_production` cancelled before the drop".into(),
        ))),
    );
    let cmds = update(&mut s, ch('r'));
    assert!(cmds.is_empty(), "{cmds:?}");
    assert_eq!(
        s.step,
        Step::SafetySnapshot,
        "the snapshot is offered again"
    );
    let cmds = update(&mut s, key(KeyCode::Enter));
    assert!(
        matches!(
            cmds.last(),
            Some(Command::Restore {
                snapshot: true,
                reuse,
                ..
            }) if reuse.is_empty()
        ),
        "{cmds:?}"
    );
    // Taken, then the load failed: the retry reuses it.
    let mut s = at_confirm();
    typed(&mut s, DB);
    update(&mut s, key(KeyCode::Enter));
    update(&mut s, key(KeyCode::Enter));
    let snap = std::path::PathBuf::from("/var/opt/gitlab/backups/rewind/snapshots/x.dump");
    update(
        &mut s,
        Event::Engine(Msg::SnapshotTaken {
            database: DB.into(),
            path: snap.clone(),
        }),
    );
    update(
        &mut s,
        Event::Engine(Msg::RestoreDone(Err("load failed".into()))),
    );
    let cmds = update(&mut s, ch('r'));
    assert!(
        matches!(cmds.last(), Some(Command::Restore { reuse, .. }) if reuse.get(DB) == Some(&snap)),
        "{cmds:?}"
    );
}

fn item(version: &str, markable: bool, already_marked: bool) -> RepairItem {
    RepairItem {
        version: version.into(),
        name: "CreateLfsObjects".into(),
        error: "PG::DuplicateTable: relation \"lfs_objects\" already exists".into(),
        verdict: "the table exists with the migration's columns: safe to mark".into(),
        markable,
        already_marked,
        sql: "INSERT INTO schema_migrations (version) VALUES ($1)".into(),
        facts: Vec::new(),
        gitlab_command: format!("gitlab-rake gitlab:db:mark_migration_complete[{version}]"),
    }
}

#[test]
fn a_decomposed_install_confirms_each_database_by_its_own_name_main_first() {
    let mut s = at_confirm();
    let mut ci = inventory();
    ci.database = "gitlabhq_production_ci".into();
    update(
        &mut s,
        Event::Engine(Msg::Inventory(Ok(vec![inventory(), ci]))),
    );
    assert_eq!(
        s.drop_databases(),
        vec![DB.to_string(), "gitlabhq_production_ci".to_string()]
    );
    // main first; its name does not confirm ci.
    typed(&mut s, DB);
    assert!(update(&mut s, key(KeyCode::Enter)).is_empty());
    assert_eq!((s.step, s.confirm_index), (Step::ConfirmDrop, 1));
    assert!(!crate::tui::update::drop_enabled(&s));
    typed(&mut s, DB);
    update(&mut s, key(KeyCode::Enter));
    assert_eq!(s.step, Step::ConfirmDrop);
    assert!(s
        .notice
        .as_deref()
        .unwrap()
        .contains("gitlabhq_production_ci"));
    // Esc goes back to main's confirmation, which is kept.
    update(&mut s, key(KeyCode::Esc));
    assert_eq!((s.step, s.confirm_index), (Step::ConfirmDrop, 0));
    assert_eq!(s.confirm_input(), DB);
    update(&mut s, key(KeyCode::Enter));
    for _ in 0..DB.len() {
        update(&mut s, key(KeyCode::Backspace));
    }
    typed(&mut s, "gitlabhq_production_ci");
    update(&mut s, key(KeyCode::Enter));
    assert_eq!(s.step, Step::SafetySnapshot);
    let cmds = update(&mut s, key(KeyCode::Enter));
    assert!(
        matches!(cmds.last(), Some(Command::Restore { confirm, snapshot: true, .. })
            if *confirm == vec![DB.to_string(), "gitlabhq_production_ci".to_string()]),
        "{cmds:?}"
    );
    // Only main's snapshot was written before a failure: the retry offers ci's and
    // reuses main's.
    let snap = std::path::PathBuf::from("/var/opt/gitlab/backups/rewind/snapshots/main.dump");
    update(
        &mut s,
        Event::Engine(Msg::SnapshotTaken {
            database: DB.into(),
            path: snap.clone(),
        }),
    );
    update(
        &mut s,
        Event::Engine(Msg::RestoreDone(Err(
            "cancelled during the snapshot of ci".into()
        ))),
    );
    update(&mut s, ch('r'));
    assert_eq!(s.step, Step::SafetySnapshot);
    assert!(s
        .notice
        .as_deref()
        .unwrap()
        .contains("gitlabhq_production_ci"));
    let cmds = update(&mut s, key(KeyCode::Enter));
    assert!(
        matches!(cmds.last(), Some(Command::Restore { snapshot: true, reuse, .. })
            if reuse.get(DB) == Some(&snap) && reuse.len() == 1),
        "{cmds:?}"
    );
}

#[test]
fn a_name_typed_while_the_drop_list_loads_is_kept() {
    let mut s = at_confirm();
    update(&mut s, key(KeyCode::Esc)); // refused; stays
    s.inventory = Loadable::Loading;
    s.confirm_inputs.clear();
    typed(&mut s, DB);
    update(&mut s, Event::Engine(Msg::Inventory(Ok(vec![inventory()]))));
    assert_eq!(s.confirm_input(), DB);
    assert!(crate::tui::update::drop_enabled(&s));
}

#[test]
fn the_detected_migrate_command_runs_as_argv_until_edited() {
    let mut r = crate::tui::state::RepairState {
        migrate_argv: vec![
            "/srv/a b/opt/gitlab/bin/gitlab-rake".into(),
            "db:migrate".into(),
        ],
        ..Default::default()
    };
    r.migrate_cmd = r.migrate_argv.join(" ");
    // A path with a space stays one word.
    assert_eq!(super::migrate_argv(&r), r.migrate_argv);
    r.migrate_cmd.push_str(":main");
    assert_eq!(
        super::migrate_argv(&r),
        vec!["/srv/a", "b/opt/gitlab/bin/gitlab-rake", "db:migrate:main"]
    );
}

#[test]
fn the_step_overview_opens_with_o_or_f2_and_any_key_closes_it() {
    let mut s = at_backups();
    update(&mut s, ch('o'));
    assert!(s.overview);
    // The closing key does nothing else.
    assert!(update(&mut s, key(KeyCode::Enter)).is_empty());
    assert!(!s.overview);
    assert_eq!(s.step, Step::SelectBackup);
    // On a screen that takes text, o is a letter; F2 opens it.
    let mut s = at_confirm();
    update(&mut s, ch('o'));
    assert!(!s.overview);
    assert_eq!(s.confirm_input(), "o");
    update(&mut s, key(KeyCode::F(2)));
    assert!(s.overview);
}

#[test]
fn triage_is_kept_and_a_failed_upgrade_is_logged() {
    let mut s = at_backups();
    let t = triage("bbm-unfinished.log");
    let cmds = update(&mut s, Event::Engine(Msg::Triaged(Ok(Box::new(t.clone())))));
    assert!(cmds.is_empty());
    assert_eq!(s.triage.ready(), Some(&t));
    let last = &s.log.last().expect("logged").text;
    assert!(
        last.starts_with("triage: upgrade since the backup: GitLab 16.11.1-ee is installed")
            && last.ends_with(
                "fix forward: finalize the batched background migration, then migrate again"
            ),
        "{last}"
    );
    // No upgrade since the backup: kept, not logged.
    let n = s.log.len();
    let mut quiet = t;
    quiet.upgrade.failed_upgrade = false;
    update(&mut s, Event::Engine(Msg::Triaged(Ok(Box::new(quiet)))));
    assert_eq!(s.log.len(), n);
    // A failed triage is a warning in the log, nothing else.
    update(
        &mut s,
        Event::Engine(Msg::Triaged(Err("cannot read the log".into()))),
    );
    assert!(matches!(s.triage, Loadable::Failed(_)));
    assert_eq!(s.step, Step::SelectBackup);
}

/// A backup with repositories: after the last database name, a page of its own says what
/// gitaly-backup's -remove-all-repositories deletes and lists the pushed ones; y replaces
/// them (bundled first by default, b toggles), s leaves them out; the restore gets
/// exactly that.
#[test]
fn the_repositories_are_confirmed_on_their_own_page_and_passed_as_confirmed() {
    let mut s = at_confirm();
    // Still listing what was pushed: the page is there, y waits.
    s.repositories = Loadable::Loading;
    typed(&mut s, DB);
    update(&mut s, key(KeyCode::Enter));
    assert_eq!(s.step, Step::ConfirmDrop);
    assert!(s.on_repo_page());
    assert!(!s.text_input(), "letters are keys on the repositories page");
    update(&mut s, ch('y'));
    assert_eq!(s.step, Step::ConfirmDrop);
    assert!(s.notice.as_deref().unwrap().contains("Still listing"));
    update(
        &mut s,
        Event::Engine(Msg::Repositories(Ok(Some(repo_plan())))),
    );
    // Enter alone decides nothing.
    update(&mut s, key(KeyCode::Enter));
    assert_eq!(s.step, Step::ConfirmDrop);
    assert!(s.notice.as_deref().unwrap().contains("y replaces"));
    assert!(!s.all_confirmed());
    // Esc goes back to the database's page, the name kept; Enter returns.
    update(&mut s, key(KeyCode::Esc));
    assert!(!s.on_repo_page());
    assert_eq!(s.confirm_input(), DB);
    update(&mut s, key(KeyCode::Enter));
    assert!(s.on_repo_page());
    assert!(s.repo_bundle, "bundling the pushed ones is the default");
    update(&mut s, ch('b'));
    assert!(!s.repo_bundle);
    update(&mut s, ch('b'));
    assert!(s.repo_bundle);
    update(&mut s, ch('y'));
    assert_eq!(s.step, Step::SafetySnapshot);
    assert!(s.all_confirmed());
    let cmds = update(&mut s, key(KeyCode::Enter));
    assert!(matches!(
        cmds.last(),
        Some(Command::Restore {
            repositories: RepoChoice::Replace { bundle: true },
            ..
        })
    ));

    // Not bundled, when turned off.
    let mut s = at_confirm_with_repositories();
    typed(&mut s, DB);
    update(&mut s, key(KeyCode::Enter));
    update(&mut s, ch('b'));
    update(&mut s, ch('y'));
    let cmds = update(&mut s, key(KeyCode::Enter));
    assert!(matches!(
        cmds.last(),
        Some(Command::Restore {
            repositories: RepoChoice::Replace { bundle: false },
            ..
        })
    ));

    // Left out.
    let mut s = at_confirm_with_repositories();
    typed(&mut s, DB);
    update(&mut s, key(KeyCode::Enter));
    update(&mut s, ch('s'));
    assert_eq!(s.step, Step::SafetySnapshot);
    let cmds = update(&mut s, key(KeyCode::Enter));
    assert!(matches!(
        cmds.last(),
        Some(Command::Restore {
            repositories: RepoChoice::Leave,
            ..
        })
    ));

    // When what would be replaced cannot be listed, only leaving them out goes on.
    let mut s = at_confirm();
    s.repositories = Loadable::Failed("the catalogue cannot be read".into());
    typed(&mut s, DB);
    update(&mut s, key(KeyCode::Enter));
    update(&mut s, ch('y'));
    assert_eq!(s.step, Step::ConfirmDrop);
    assert!(s.notice.as_deref().unwrap().contains("s leaves"));
    update(&mut s, ch('s'));
    assert_eq!(s.step, Step::SafetySnapshot);
}

/// From a finished restore to the configuration step.
fn at_config() -> State {
    let mut s = mid_restore();
    update(
        &mut s,
        Event::Engine(Msg::RestoreDone(Ok(RestoreSummary {
            text: "done".into(),
            verify: Vec::new(),
            rows: 0,
            tables: 0,
            kept: Vec::new(),
        }))),
    );
    update(&mut s, key(KeyCode::Enter));
    update(
        &mut s,
        Event::Engine(Msg::Verified(Ok(vec![VerifyLine {
            ok: true,
            text: "schema_migrations matches".into(),
        }]))),
    );
    let cmds = update(&mut s, key(KeyCode::Enter));
    assert_eq!(s.step, Step::RestoreConfig);
    let backup_at = s.chosen.as_ref().unwrap().backup_created_at;
    assert!(matches!(&cmds[..], [Command::LoadConfig { before, .. }] if *before == backup_at));
    s
}

/// The nearest archive before the backup is shown first; arrows compare another; y asks,
/// a second y restores the files that differ; the way back closes; Enter goes on.
#[test]
fn the_configuration_is_restored_from_the_archive_shown_after_a_confirmation() {
    let mut s = at_config();
    update(
        &mut s,
        Event::Engine(Msg::ConfigListed(Ok(config_archives()))),
    );
    assert_eq!(s.config.cursor, 1, "the one nearest before the backup");
    let nearest = config_archives()[1].name.clone();
    update(
        &mut s,
        Event::Engine(Msg::ConfigDiffed {
            name: nearest.clone(),
            result: Ok(Box::new(config_diff())),
        }),
    );
    assert!(!s.running(Job::Config));
    // Enter does not skip silently.
    update(&mut s, key(KeyCode::Enter));
    assert_eq!(s.step, Step::RestoreConfig);
    assert!(s.notice.as_deref().unwrap().contains("y restores"));
    // Another archive: compared anew; a late answer for the old one is dropped.
    let cmds = update(&mut s, key(KeyCode::Down));
    let older = config_archives()[2].name.clone();
    assert!(matches!(&cmds[..], [Command::DiffConfig { name, .. }] if *name == older));
    assert_eq!(s.config.diff, Some(Loadable::Loading));
    update(
        &mut s,
        Event::Engine(Msg::ConfigDiffed {
            name: nearest.clone(),
            result: Ok(Box::new(config_diff())),
        }),
    );
    assert_eq!(s.config.diff, Some(Loadable::Loading));
    update(&mut s, key(KeyCode::Up));
    update(
        &mut s,
        Event::Engine(Msg::ConfigDiffed {
            name: nearest.clone(),
            result: Ok(Box::new(config_diff())),
        }),
    );
    // y asks; n keeps everything.
    assert!(update(&mut s, ch('y')).is_empty());
    assert_eq!(s.modal, Some(Modal::ConfirmConfig));
    update(&mut s, ch('n'));
    assert_eq!(s.modal, None);
    assert!(s.changes.iter().all(|c| c.step != Step::RestoreConfig));
    update(&mut s, ch('y'));
    let cmds = update(&mut s, ch('y'));
    assert_eq!(
        cmds,
        vec![Command::RestoreConfig {
            host: s.host().unwrap(),
            name: nearest,
            files: vec!["gitlab-secrets.json".into(), "gitlab.rb".into()],
        }]
    );
    assert!(s.config.running);
    update(&mut s, key(KeyCode::Enter));
    assert!(s.notice.as_deref().unwrap().contains("Please wait"));
    update(
        &mut s,
        Event::Engine(Msg::ConfigRestored(Ok(
            "/etc/gitlab/gitlab-secrets.json restored".into(),
        ))),
    );
    update(&mut s, key(KeyCode::Esc));
    assert_eq!(
        s.step,
        Step::RestoreConfig,
        "no way back past a restored file"
    );
    assert!(s.notice.as_deref().unwrap().contains("No way back"));
    let cmds = update(&mut s, key(KeyCode::Enter));
    assert_eq!(s.step, Step::StartServices);
    assert!(matches!(cmds[..], [Command::PlanAction { .. }]));
}

/// s goes on without restoring, said in the log; a failed restore is retried with r.
#[test]
fn the_configuration_can_be_skipped_and_a_failed_restore_retried() {
    let mut s = at_config();
    update(
        &mut s,
        Event::Engine(Msg::ConfigListed(Ok(config_archives()))),
    );
    update(
        &mut s,
        Event::Engine(Msg::ConfigDiffed {
            name: config_archives()[1].name.clone(),
            result: Ok(Box::new(config_diff())),
        }),
    );
    update(&mut s, ch('y'));
    update(&mut s, ch('y'));
    update(
        &mut s,
        Event::Engine(Msg::ConfigRestored(Err(
            "the archive has no gitlab.rb".into()
        ))),
    );
    update(&mut s, key(KeyCode::Enter));
    assert_eq!(s.step, Step::RestoreConfig);
    assert!(s.notice.as_deref().unwrap().contains("r tries again"));
    update(&mut s, ch('r'));
    assert_eq!(s.config.result, None);
    update(&mut s, ch('s'));
    assert_eq!(s.step, Step::StartServices);
    assert!(s.config.skipped);
    assert!(s.log.iter().any(|l| l.text.contains("skipped")));
}

/// The checks screen: Space ticks the offered checks; gitlab:shell:setup, which rewrites
/// authorized_keys, only after a y; each check's output goes to its own row; the doctor's
/// table is kept; after the run the first failure is shown.
#[test]
fn checks_are_ticked_run_and_their_output_kept_per_check() {
    let mut s = at_config();
    update(&mut s, Event::Engine(Msg::ConfigListed(Ok(Vec::new()))));
    update(&mut s, key(KeyCode::Enter));
    s.start.status = crate::tui::state::ActionStatus::Succeeded;
    let cmds = update(&mut s, key(KeyCode::Enter));
    assert_eq!(s.step, Step::PostChecks);
    assert!(matches!(cmds[..], [Command::PlanPostChecks { .. }]));
    update(&mut s, Event::Engine(Msg::PostPlanned(Ok(post_rows()))));
    // Tick the artifacts check, untick it, tick it again.
    for _ in 0..3 {
        update(&mut s, key(KeyCode::Down));
    }
    update(&mut s, ch(' '));
    assert!(s.post.rows()[3].selected);
    update(&mut s, ch(' '));
    assert!(!s.post.rows()[3].selected);
    update(&mut s, ch(' '));
    // shell:setup asks first.
    for _ in 0..3 {
        update(&mut s, key(KeyCode::Down));
    }
    assert_eq!(s.post.cursor, 6);
    update(&mut s, ch(' '));
    assert_eq!(s.modal, Some(Modal::ConfirmShellSetup));
    update(&mut s, ch('n'));
    assert!(!s.post.rows()[6].selected);
    update(&mut s, ch(' '));
    update(&mut s, ch('y'));
    assert!(s.post.rows()[6].selected);
    let cmds = update(&mut s, key(KeyCode::Enter));
    assert!(matches!(&cmds[..], [Command::RunPostChecks { steps, .. }]
        if steps == &["post.readiness", "post.check", "post.doctor_secrets",
            "post.artifacts_check", "post.shell_setup"]));
    assert!(s.running(Job::PostChecks));
    update(&mut s, ch(' '));
    assert!(s.post.rows()[6].selected, "no ticking while they run");
    let out = |s: &mut State, line: &str| {
        update(
            s,
            Event::Engine(Msg::Progress(P::Output { line: line.into() })),
        );
    };
    update(
        &mut s,
        Event::Engine(Msg::PostStarted {
            step: "post.check".into(),
        }),
    );
    assert_eq!(s.post.cursor, 1, "the running check is shown");
    out(&mut s, "Checking GitLab subtasks ...");
    out(&mut s, "Checking GitLab subtasks ... Finished");
    update(
        &mut s,
        Event::Engine(Msg::PostDone {
            step: "post.check".into(),
            result: Ok("exit code 0".into()),
            doctor: None,
        }),
    );
    update(
        &mut s,
        Event::Engine(Msg::PostStarted {
            step: "post.doctor_secrets".into(),
        }),
    );
    let text = "I, [2026-11-25T10:00:00.000000 #1]  INFO -- : - Ci::Variable failures: 2\nI, [2026-11-25T10:00:00.000000 #1]  INFO -- : Total: 2 row(s) affected\nI, [2026-11-25T10:00:00.000000 #1]  INFO -- : Done!";
    for l in text.lines() {
        out(&mut s, l);
    }
    let doctor = rewind_engine::recovery::postcheck::parse_doctor_secrets(text);
    assert!(!doctor.ok());
    update(
        &mut s,
        Event::Engine(Msg::PostDone {
            step: "post.doctor_secrets".into(),
            result: Err("2 row(s) cannot be decrypted".into()),
            doctor: Some(Box::new(doctor.clone())),
        }),
    );
    update(&mut s, Event::Engine(Msg::PostFinished));
    assert!(!s.running(Job::PostChecks));
    assert_eq!(s.post.rows()[1].output.len(), 2);
    assert_eq!(s.post.rows()[2].output.len(), 3);
    assert_eq!(s.post.doctor, Some(doctor));
    assert_eq!(s.post.cursor, 2, "the first failure is shown");
    // Not run (the run stopped before them): said, not left pending.
    assert!(matches!(
        s.post.rows()[3].state,
        crate::tui::state::CheckState::Skipped(_)
    ));
    // Scrolling is bounded by the output.
    update(&mut s, key(KeyCode::PageUp));
    assert_eq!(s.post.scroll, 3);
    update(&mut s, key(KeyCode::PageDown));
    assert_eq!(s.post.scroll, 0);
    // Done, with the failure in the overview.
    let r = crate::tui::overview::rows(&s);
    assert!(r
        .iter()
        .any(|(st, m, _)| *st == Step::PostChecks && *m == crate::tui::overview::Mark::Failed));
    update(&mut s, key(KeyCode::Enter));
    assert_eq!(s.step, Step::Done);
}

/// The checks can be left out (s), said in the log and the overview; not while they run.
#[test]
fn checks_can_be_skipped_before_they_run() {
    let mut s = at_config();
    update(&mut s, Event::Engine(Msg::ConfigListed(Ok(Vec::new()))));
    update(&mut s, key(KeyCode::Enter));
    s.start.status = crate::tui::state::ActionStatus::Succeeded;
    update(&mut s, key(KeyCode::Enter));
    update(&mut s, Event::Engine(Msg::PostPlanned(Ok(post_rows()))));
    update(&mut s, key(KeyCode::Enter));
    update(&mut s, ch('s'));
    assert_eq!(s.step, Step::PostChecks, "not while they run");
    update(&mut s, Event::Engine(Msg::PostFinished));
    update(&mut s, ch('s'));
    assert_eq!(s.step, Step::PostChecks, "they ran: Enter goes on");
    let mut s2 = at_config();
    update(&mut s2, Event::Engine(Msg::ConfigListed(Ok(Vec::new()))));
    update(&mut s2, key(KeyCode::Enter));
    s2.start.status = crate::tui::state::ActionStatus::Succeeded;
    update(&mut s2, key(KeyCode::Enter));
    update(&mut s2, Event::Engine(Msg::PostPlanned(Ok(post_rows()))));
    update(&mut s2, ch('s'));
    assert_eq!(s2.step, Step::Done);
    assert!(s2.log.iter().any(|l| l.text.contains("not run (skipped)")));
    let r = crate::tui::overview::rows(&s2);
    assert!(r
        .iter()
        .any(|(st, m, _)| *st == Step::PostChecks && *m == crate::tui::overview::Mark::Skipped));
}

/// Ctrl-C while the checks run stops them (the readiness wait may take minutes); y on the
/// configuration before the comparison arrived asks to wait.
#[test]
fn ctrl_c_stops_the_checks_and_y_waits_for_the_comparison() {
    let mut s = at_config();
    update(
        &mut s,
        Event::Engine(Msg::ConfigListed(Ok(config_archives()))),
    );
    update(&mut s, ch('y'));
    assert_eq!(s.modal, None);
    assert!(s
        .notice
        .as_deref()
        .unwrap()
        .contains("wait for the comparison"));
    update(&mut s, ch('s'));
    s.start.status = crate::tui::state::ActionStatus::Succeeded;
    update(&mut s, key(KeyCode::Enter));
    update(&mut s, Event::Engine(Msg::PostPlanned(Ok(post_rows()))));
    update(&mut s, key(KeyCode::Enter));
    update(
        &mut s,
        Event::Engine(Msg::PostStarted {
            step: "post.readiness".into(),
        }),
    );
    let cmds = update(&mut s, ctrl('c'));
    assert_eq!(cmds, vec![Command::Cancel]);
    assert!(!s.quit);
    update(
        &mut s,
        Event::Engine(Msg::PostDone {
            step: "post.readiness".into(),
            result: Err("cancelled while waiting for GitLab to answer ready".into()),
            doctor: None,
        }),
    );
    update(&mut s, Event::Engine(Msg::PostFinished));
    assert!(matches!(
        s.post.rows()[1].state,
        crate::tui::state::CheckState::Skipped(_)
    ));
    update(&mut s, key(KeyCode::Enter));
    assert_eq!(s.step, Step::Done);
}

/// The editions differ: nothing is planned or run until the user answers; i re-plans with
/// the backup's edition allowed, and the run carries that answer. A new pick forgets it.
#[test]
fn an_edition_difference_is_asked_before_the_rollback_is_planned() {
    let mut s = at_preflight(Status::Pass);
    update(&mut s, key(KeyCode::Enter));
    s.stop.status = ActionStatus::Succeeded;
    let cmds = update(&mut s, key(KeyCode::Enter));
    assert_eq!(s.step, Step::RollbackPackage);
    assert!(matches!(
        cmds[..],
        [Command::PlanAction {
            step: Step::RollbackPackage,
            allow_edition_change: false,
            ..
        }]
    ));
    update(
        &mut s,
        Event::Engine(Msg::EditionDiffers(crate::tui::state::EditionQuestion {
            installed_package: "gitlab-ee".into(),
            backup_package: "gitlab-ce".into(),
            backup_version: "16.10.3".into(),
        })),
    );
    // Enter does not run anything: it says what to press.
    assert!(update(&mut s, key(KeyCode::Enter)).is_empty());
    assert_eq!(s.modal, None);
    assert!(
        s.notice.as_deref().unwrap().contains("press i"),
        "{:?}",
        s.notice
    );
    assert!(s.changes.is_empty());
    // i: planned again with the backup's edition allowed.
    let cmds = update(&mut s, ch('i'));
    assert!(s.allow_edition_change);
    assert!(matches!(
        cmds[..],
        [Command::PlanAction {
            step: Step::RollbackPackage,
            allow_edition_change: true,
            ..
        }]
    ));
    update(
        &mut s,
        Event::Engine(Msg::ActionPlanned {
            step: Step::RollbackPackage,
            result: Ok(ActionPlan {
                commands: vec![
                    "apt-get install -y --allow-downgrades gitlab-ce=16.10.3-ce.0".into(),
                ],
                skip: None,
            }),
        }),
    );
    update(&mut s, key(KeyCode::Enter));
    assert_eq!(s.modal, Some(Modal::ConfirmRun(Step::RollbackPackage)));
    let cmds = update(&mut s, ch('y'));
    assert!(cmds.iter().any(|c| matches!(
        c,
        Command::RunAction {
            step: Step::RollbackPackage,
            allow_edition_change: true,
            ..
        }
    )));
}

fn salvaged() -> crate::tui::state::Salvaged {
    crate::tui::state::Salvaged {
        dir: std::path::PathBuf::from(
            "/var/opt/gitlab/backups/rewind/salvage-1713867342_2024_04_23_16.10.3-ee-20240425T091500Z",
        ),
        rows: 101,
        tables: 4,
        import_command: "rewind salvage --import /var/opt/gitlab/backups/rewind/salvage-1713867342_2024_04_23_16.10.3-ee-20240425T091500Z".into(),
    }
}

#[test]
fn ctrl_s_on_the_drop_screen_salvages_first_and_the_drop_waits_for_it() {
    let mut s = at_confirm();
    typed(&mut s, "gitlab");
    let cmds = update(&mut s, ctrl('s'));
    assert!(
        matches!(cmds.as_slice(), [Command::Salvage { backup, .. }] if backup.id == s.chosen.as_ref().unwrap().id),
        "{cmds:?}"
    );
    assert_eq!(s.salvage, Loadable::Loading);
    // Ctrl-S is not typed into the name.
    assert_eq!(s.confirm_input(), "gitlab");
    // Not twice.
    assert!(update(&mut s, ctrl('s')).is_empty());
    assert!(s.notice.as_deref().unwrap().contains("already running"));
    // The drop waits for it, even with the right name.
    typed(&mut s, "hq_production");
    assert!(!crate::tui::update::drop_enabled(&s));
    assert!(update(&mut s, key(KeyCode::Enter)).is_empty());
    assert_eq!(s.step, Step::ConfirmDrop);
    assert!(s.notice.as_deref().unwrap().contains("drop waits"));

    update(&mut s, Event::Engine(Msg::Salvaged(Ok(salvaged()))));
    assert_eq!(s.salvage, Loadable::Ready(salvaged()));
    assert!(s
        .changes
        .iter()
        .any(|c| c.what.contains("salvaged 101 rows") && c.step == Step::ConfirmDrop));
    assert!(crate::tui::update::drop_enabled(&s));
    // Done: a second Ctrl-S says where it is.
    assert!(update(&mut s, ctrl('s')).is_empty());
    assert!(s.notice.as_deref().unwrap().contains("Already salvaged"));
    // The exit summary names the import command.
    let lines = crate::tui::summary::lines(&s).join("\n");
    assert!(
        lines.contains(&format!(
            "{} --dry-run, then --yes",
            salvaged().import_command
        )),
        "{lines}"
    );
    update(&mut s, key(KeyCode::Enter));
    assert_eq!(s.step, Step::SafetySnapshot);
}

#[test]
fn nothing_to_salvage_when_nothing_was_created_and_a_failed_salvage_is_said() {
    let mut s = at_confirm();
    let mut inv = inventory();
    inv.created_since = 0;
    update(&mut s, Event::Engine(Msg::Inventory(Ok(vec![inv]))));
    assert!(update(&mut s, ctrl('s')).is_empty());
    assert_eq!(s.salvage, Loadable::NotStarted);
    assert!(s.notice.as_deref().unwrap().contains("nothing to salvage"));

    let mut s = at_confirm();
    assert_eq!(update(&mut s, ctrl('s')).len(), 1);
    update(
        &mut s,
        Event::Engine(Msg::Salvaged(Err(
            "cannot connect to gitlabhq_production".into()
        ))),
    );
    assert!(matches!(&s.salvage, Loadable::Failed(e) if e.contains("cannot connect")));
    assert!(s.notice.as_deref().unwrap().contains("nothing was dropped"));
    assert!(s.changes.iter().all(|c| !c.what.contains("salvage")));
    // Tried again.
    assert_eq!(update(&mut s, ctrl('s')).len(), 1);
}

// ---------------------------------------------------------------- Detail view

/// Every line of the detail view as text.
fn detail_text(s: &State) -> Vec<String> {
    let a = crate::tui::detail::text_area(s.size);
    crate::tui::detail::lines(s, a.width.saturating_sub(1))
        .0
        .iter()
        .map(|l| l.spans.iter().map(|sp| sp.content.as_ref()).collect())
        .collect()
}

/// The detail view's text with its wrapping undone (continuations are indented by two).
fn detail_joined(s: &State) -> String {
    detail_text(s).join("\n").replace("\n  ", "")
}

#[test]
fn v_opens_the_detail_view_which_scrolls_and_closes_with_esc() {
    let mut s = mid_restore();
    s.log_visible = true;
    for i in 0..60 {
        s.log(
            rewind_engine::progress::Level::Info,
            format!("line {i} of a long log that the pane cuts at eighty columns, kept whole here"),
        );
    }
    s.size = (80, 24);
    let max = crate::tui::detail::max_scroll(&s, s.size);
    assert!(max > 10, "the log makes the text longer than the screen");
    assert!(update(&mut s, ch('v')).is_empty());
    assert_eq!(s.detail, Some(0));
    update(&mut s, key(KeyCode::Down));
    update(&mut s, key(KeyCode::Down));
    assert_eq!(s.detail, Some(2));
    update(&mut s, key(KeyCode::PageDown));
    let page = crate::tui::detail::text_area(s.size).height as usize - 1;
    assert_eq!(s.detail, Some(2 + page));
    update(&mut s, key(KeyCode::End));
    assert_eq!(s.detail, Some(max));
    update(&mut s, key(KeyCode::Down));
    assert_eq!(s.detail, Some(max), "not past the end");
    update(&mut s, key(KeyCode::Up));
    assert_eq!(s.detail, Some(max - 1));
    update(&mut s, key(KeyCode::PageUp));
    assert_eq!(s.detail, Some(max - 1 - page));
    update(&mut s, key(KeyCode::Home));
    assert_eq!(s.detail, Some(0));
    // Keys of the screen below do nothing while it is open.
    update(&mut s, ch('l'));
    assert!(s.log_visible);
    update(&mut s, key(KeyCode::Esc));
    assert_eq!(s.detail, None);
    assert_eq!(s.step, Step::Restore, "Esc closed the view, nothing else");
    // The whole log line, not cut.
    let text = detail_joined(&s);
    assert!(text.contains("line 59 of a long log that the pane cuts at eighty columns,"));
}

#[test]
fn the_detail_view_holds_every_line_of_the_screen_in_full() {
    let mut s = mid_restore();
    s.size = (80, 24);
    let text = detail_joined(&s);
    // The snapshot path the log pane cuts at 80 columns.
    assert!(
        text.contains(
            "/var/opt/gitlab/backups/rewind/snapshots/gitlabhq_production-20251116T134000Z.dump"
        ),
        "{text}"
    );
    // No line longer than the view.
    let w = crate::tui::detail::text_area(s.size).width as usize - 1;
    for l in detail_text(&s) {
        assert!(l.chars().count() <= w, "{l:?} is wider than {w}");
    }
}

#[test]
fn f3_opens_the_detail_view_where_letters_are_typed_and_v_is_typed() {
    let mut s = at_confirm();
    update(&mut s, ch('v'));
    assert_eq!(
        s.confirm_input(),
        "v",
        "v is a letter of the database name here"
    );
    assert_eq!(s.detail, None);
    update(&mut s, key(KeyCode::F(3)));
    assert!(s.detail.is_some());
    update(&mut s, ch('x'));
    assert_eq!(
        s.confirm_input(),
        "v",
        "typing does not reach the input under the view"
    );
    update(&mut s, key(KeyCode::F(3)));
    assert_eq!(s.detail, None);
    assert_eq!(s.step, Step::ConfirmDrop);
}

#[test]
fn the_detail_view_shows_the_notice_in_full() {
    let mut s = at_backups();
    let long = "GitLab refused: the backup was made on 16.10.3-ee and 16.11.1-ee is installed; \
                install gitlab-ee=16.10.3-ee.0 with apt-get install gitlab-ee=16.10.3-ee.0 and run again";
    s.notice = Some(long.into());
    s.size = (80, 24);
    update(&mut s, ch('v'));
    assert!(s.detail.is_some());
    assert_eq!(
        s.notice.as_deref(),
        Some(long),
        "opening the view keeps the notice"
    );
    let text = detail_joined(&s);
    assert!(
        text.contains("install gitlab-ee=16.10.3-ee.0 with apt-get install"),
        "{text}"
    );
}

#[test]
fn the_detail_view_opens_at_the_focused_line() {
    let mut s = at_confirm();
    s.size = (80, 24);
    let len = s.confirm_inventory().expect("inventory").items.len();
    for _ in 0..len {
        update(&mut s, key(KeyCode::Down));
    }
    assert_eq!(s.drop_cursor, len - 1);
    let a = crate::tui::detail::text_area(s.size);
    let (lines, focus) = crate::tui::detail::lines(&s, a.width - 1);
    let focus = focus.expect("the focused row is marked");
    let text: String = lines[focus]
        .spans
        .iter()
        .map(|sp| sp.content.as_ref())
        .collect();
    let last = crate::tui::screens::drop_order(s.confirm_inventory().expect("inventory"))[len - 1]
        .name
        .clone();
    assert!(text.contains(&last), "{text:?} is the focused {last}");
    update(&mut s, key(KeyCode::F(3)));
    assert_eq!(
        s.detail,
        Some(
            focus
                .saturating_sub(2)
                .min(crate::tui::detail::max_scroll(&s, s.size))
        )
    );
}

// ---------------------------------------------------------------- Drop list

#[test]
fn the_drop_cursor_moves_over_the_list_with_the_new_objects_first() {
    let mut s = at_confirm();
    let inv = s.confirm_inventory().expect("inventory").clone();
    let order = crate::tui::screens::drop_order(&inv);
    let new = inv.items.iter().filter(|i| i.leftover).count();
    assert!(new > 0 && new < order.len());
    assert!(order[..new].iter().all(|i| i.leftover));
    assert!(order[new..].iter().all(|i| !i.leftover));
    assert_eq!(s.drop_cursor, 0);
    update(&mut s, key(KeyCode::Up));
    assert_eq!(s.drop_cursor, 0);
    update(&mut s, key(KeyCode::Down));
    assert_eq!(s.drop_cursor, 1);
    update(&mut s, key(KeyCode::End));
    assert_eq!(s.drop_cursor, order.len() - 1);
    update(&mut s, key(KeyCode::Down));
    assert_eq!(s.drop_cursor, order.len() - 1, "not past the end");
    update(&mut s, key(KeyCode::PageUp));
    assert_eq!(s.drop_cursor, (order.len() - 1).saturating_sub(10));
    update(&mut s, key(KeyCode::Home));
    assert_eq!(s.drop_cursor, 0);
    assert_eq!(s.confirm_input(), "", "the keys typed nothing");
}

// ---------------------------------------------------------------- Progress

#[test]
fn rows_are_counted_over_every_table_and_the_restore_s_count_is_final() {
    let mut s = mid_restore();
    // public.projects read whole, public.ci_builds being read.
    assert_eq!(s.restore.tables_loaded, 1);
    assert_eq!(s.restore.rows_total(), 18_402 + 512_334);
    update(
        &mut s,
        Event::Engine(Msg::Progress(P::TableLoaded {
            table: "public.ci_builds".into(),
            rows: 651_299,
        })),
    );
    assert_eq!(s.restore.rows_total(), 18_402 + 651_299);
    update(
        &mut s,
        Event::Engine(Msg::Progress(P::Progress {
            phase: Phase::Data,
            done: 900_000_000,
            total: Some(1_610_612_736),
            current: Some("public.notes".into()),
            rows: Some(10),
        })),
    );
    assert_eq!(s.restore.rows_total(), 18_402 + 651_299 + 10);
    update(
        &mut s,
        Event::Engine(Msg::RestoreDone(Ok(RestoreSummary {
            text: "1 database(s), 669,701 rows in 40 tables, in 3:10".into(),
            verify: Vec::new(),
            rows: 669_701,
            tables: 40,
            kept: Vec::new(),
        }))),
    );
    assert_eq!(s.restore.rows_total(), 669_701);
    assert_eq!(s.restore.tables_loaded, 40);
}

#[test]
fn the_eta_covers_the_whole_restore_not_one_phase() {
    use crate::tui::state::Eta;
    let mut s = mid_restore();
    // The data phase started at 150s; at 180s 640 MiB of 1.5 GiB were read.
    let now = Duration::from_secs(180);
    let rate = s.restore.data_rate(now).expect("measured");
    let left = ((1_610_612_736u64 - 671_088_640) as f64 / rate).ceil() as u64;
    assert_eq!(
        s.restore.eta(now),
        Eta::Left {
            secs: left,
            then: vec![Phase::Indexes, Phase::Constraints]
        }
    );
    // Data read, indexes at 42%: the time left is the indexes' and the constraints are
    // still to come (the old per-phase ETA said 0:00 here).
    let at = |s: &mut State, secs: u64, e: P| {
        update(s, Event::Tick(Duration::from_secs(secs)));
        update(s, Event::Engine(Msg::Progress(e)));
    };
    at(
        &mut s,
        240,
        P::PhaseFinished {
            phase: Phase::Data,
            ok: true,
        },
    );
    at(
        &mut s,
        240,
        P::PhaseStarted {
            phase: Phase::Indexes,
            total: Some(100),
        },
    );
    at(
        &mut s,
        282,
        P::Progress {
            phase: Phase::Indexes,
            done: 42,
            total: Some(100),
            current: None,
            rows: None,
        },
    );
    assert_eq!(
        s.restore.eta(Duration::from_secs(282)),
        Eta::Left {
            secs: 58,
            then: vec![Phase::Constraints]
        }
    );
    at(
        &mut s,
        340,
        P::PhaseFinished {
            phase: Phase::Indexes,
            ok: true,
        },
    );
    at(
        &mut s,
        340,
        P::PhaseStarted {
            phase: Phase::Constraints,
            total: Some(10),
        },
    );
    at(
        &mut s,
        345,
        P::Progress {
            phase: Phase::Constraints,
            done: 5,
            total: Some(10),
            current: None,
            rows: None,
        },
    );
    assert_eq!(
        s.restore.eta(Duration::from_secs(345)),
        Eta::Left {
            secs: 5,
            then: vec![]
        }
    );
    update(
        &mut s,
        Event::Engine(Msg::RestoreDone(Ok(RestoreSummary {
            text: "done".into(),
            verify: Vec::new(),
            rows: 1,
            tables: 1,
            kept: Vec::new(),
        }))),
    );
    assert_eq!(s.restore.eta(Duration::from_secs(350)), Eta::Finished);
}

// ---------------------------------------------------------------- restore strategy

const SWAP: &str = "`gitlabhq_production` was renamed to `gitlabhq_production_before_rewind_20261130T031502`, but the restore `gitlabhq_production_rewind_20261130T031502` was not yet renamed to `gitlabhq_production`";

/// Detected, with a swap the journal shows interrupted between its renames.
fn detected_mid_swap() -> State {
    let mut s = State::new(HostRoot::system(), None);
    start(&mut s);
    update(
        &mut s,
        Event::Engine(Msg::Detected(Ok(Box::new(installation())))),
    );
    assert!(s.running(Job::Swaps), "the journal is read at detection");
    let cmds = update(
        &mut s,
        Event::Engine(Msg::InterruptedSwaps(Ok(vec![SWAP.into()]))),
    );
    assert!(cmds.is_empty(), "no strategy is decided mid-swap: {cmds:?}");
    update(&mut s, Event::Engine(Msg::Backups(Ok(backups()))));
    s
}

#[test]
fn an_interrupted_swap_blocks_everything_until_c_completes_it() {
    let mut s = detected_mid_swap();
    assert_eq!(s.step, Step::Detect);
    // Nothing else runs first: not the backups, not the repair.
    for k in [key(KeyCode::Enter), ch('m')] {
        assert!(update(&mut s, k).is_empty());
        assert_eq!(s.step, Step::Detect);
        assert!(
            s.notice.as_deref().unwrap().contains("c completes it"),
            "{:?}",
            s.notice
        );
    }
    let cmds = update(&mut s, ch('c'));
    assert_eq!(
        cmds,
        vec![Command::ResolveSwaps {
            host: s.host().unwrap(),
            complete: true
        }]
    );
    assert!(s.running(Job::Swaps));
    // While it runs, keys wait.
    assert!(update(&mut s, ch('u')).is_empty());
    let done = "completed an interrupted swap: `gitlabhq_production` now holds the verified restore, the failed upgrade's database is kept as `gitlabhq_production_before_rewind_20261130T031502`";
    let cmds = update(
        &mut s,
        Event::Engine(Msg::SwapsResolved(Ok(vec![done.into()]))),
    );
    // The strategy is decided now that the live name exists again.
    assert_eq!(
        cmds,
        vec![Command::DecideStrategy {
            host: s.host().unwrap()
        }]
    );
    assert!(s.interrupted.is_empty());
    assert_eq!(s.swaps_resolved, vec![done.to_string()]);
    assert!(s.changes.iter().any(|c| c.what == done));
    update(&mut s, Event::Engine(Msg::StrategyDecided(Ok(beside()))));
    update(&mut s, key(KeyCode::Enter));
    assert_eq!(s.step, Step::SelectBackup);
}

#[test]
fn u_reverses_an_interrupted_swap_and_a_failure_reads_the_journal_again() {
    let mut s = detected_mid_swap();
    let cmds = update(&mut s, ch('u'));
    assert_eq!(
        cmds,
        vec![Command::ResolveSwaps {
            host: s.host().unwrap(),
            complete: false
        }]
    );
    let cmds = update(
        &mut s,
        Event::Engine(Msg::SwapsResolved(
            Err("permission denied to rename".into()),
        )),
    );
    assert_eq!(
        cmds,
        vec![Command::FindInterruptedSwaps {
            host: s.host().unwrap()
        }]
    );
    assert!(s.notice.as_deref().unwrap().contains("permission denied"));
    assert_eq!(s.interrupted, vec![SWAP.to_string()], "still blocked");
    assert!(s.changes.is_empty(), "nothing was renamed");
}

#[test]
fn a_saved_session_waits_behind_an_interrupted_swap() {
    let mut s = detected_mid_swap();
    let mut sess = saved_session();
    sess.finish(SessionStep::StopServices, "stopped");
    update(
        &mut s,
        Event::Engine(Msg::SessionFound(Box::new(ResumeOffer {
            session: sess,
            decision: Err(vec!["x".into()]),
        }))),
    );
    assert_eq!(s.step, Step::Detect, "the swap comes first");
    update(&mut s, ch('c'));
    update(
        &mut s,
        Event::Engine(Msg::SwapsResolved(Ok(vec!["done".into()]))),
    );
    assert_eq!(s.step, Step::Resume, "then the saved session is offered");
}

/// A saved session of the newest backup.
fn saved_session() -> Session {
    let row = backups()[0].clone();
    Session::new(
        BackupIdentity {
            path: row.path.clone(),
            size: row.size,
            mtime: row.mtime,
        },
        row.version.clone(),
        Some("16.11.1-ee".parse().unwrap()),
        Some(DB.into()),
    )
}

#[test]
fn an_interrupted_swap_found_after_the_resume_offer_takes_the_screen_back() {
    let mut s = State::new(HostRoot::system(), None);
    start(&mut s);
    update(
        &mut s,
        Event::Engine(Msg::Detected(Ok(Box::new(installation())))),
    );
    let sess = saved_session();
    update(
        &mut s,
        Event::Engine(Msg::SessionFound(Box::new(ResumeOffer {
            session: sess,
            decision: Err(vec!["x".into()]),
        }))),
    );
    assert_eq!(s.step, Step::Resume);
    update(
        &mut s,
        Event::Engine(Msg::InterruptedSwaps(Ok(vec![SWAP.into()]))),
    );
    assert_eq!(s.step, Step::Detect);
}

/// At the Roll back package step with its plan ready and the confirmation asked.
fn rollback_confirmed(strategy: crate::tui::state::StrategyView) -> (State, Vec<Command>) {
    let mut s = at_preflight_with(Status::Pass, strategy);
    update(&mut s, key(KeyCode::Enter));
    s.stop.status = ActionStatus::Succeeded;
    update(&mut s, key(KeyCode::Enter));
    update(
        &mut s,
        Event::Engine(Msg::ActionPlanned {
            step: Step::RollbackPackage,
            result: Ok(ActionPlan {
                commands: plan_commands(Step::RollbackPackage),
                skip: None,
            }),
        }),
    );
    update(&mut s, key(KeyCode::Enter));
    assert_eq!(s.modal, Some(Modal::ConfirmRun(Step::RollbackPackage)));
    let cmds = update(&mut s, ch('y'));
    (s, cmds)
}

#[test]
fn beside_skips_the_package_steps_snapshot_with_the_reason_journaled() {
    let (_, cmds) = rollback_confirmed(beside());
    let Some(Command::RunAction {
        snapshot,
        no_snapshot_because,
        ..
    }) = cmds.last()
    else {
        panic!("{cmds:?}")
    };
    assert!(!snapshot);
    assert!(
        no_snapshot_because.starts_with(
            "not needed: the restore will run beside the live database and keep it whole ("
        ) && no_snapshot_because.contains("gitlab-psql"),
        "{no_snapshot_because}"
    );
    // In place: the snapshot is taken before the package step, as before.
    let (_, cmds) = rollback_confirmed(in_place());
    assert!(matches!(
        cmds.last(),
        Some(Command::RunAction { snapshot: true, .. })
    ));
}

#[test]
fn the_package_step_waits_for_the_strategy() {
    let mut s = at_preflight_with(Status::Pass, beside());
    s.strategy = Loadable::Loading;
    update(&mut s, key(KeyCode::Enter));
    s.stop.status = ActionStatus::Succeeded;
    update(&mut s, key(KeyCode::Enter));
    update(
        &mut s,
        Event::Engine(Msg::ActionPlanned {
            step: Step::RollbackPackage,
            result: Ok(ActionPlan {
                commands: plan_commands(Step::RollbackPackage),
                skip: None,
            }),
        }),
    );
    update(&mut s, key(KeyCode::Enter));
    assert_eq!(s.modal, None);
    assert!(s
        .notice
        .as_deref()
        .unwrap()
        .contains("Deciding the restore strategy"));
}

#[test]
fn the_drop_screen_decides_again_and_waits_for_it() {
    let mut s = at_confirm_with(beside());
    // Opening the drop screen decided the strategy again (answered by the fixture).
    assert!(!s.running(Job::Strategy));
    s.jobs.push(Job::Strategy);
    typed(&mut s, DB);
    assert!(!crate::tui::update::drop_enabled(&s));
    update(&mut s, key(KeyCode::Enter));
    assert_eq!(s.step, Step::ConfirmDrop);
    // It now says in place (the space went): the screen and the restore follow it.
    update(&mut s, Event::Engine(Msg::StrategyDecided(Ok(in_place()))));
    assert!(crate::tui::update::drop_enabled(&s));
    update(&mut s, key(KeyCode::Enter));
    assert_eq!(s.step, Step::SafetySnapshot);
    let cmds = update(&mut s, key(KeyCode::Enter));
    assert!(matches!(
        cmds.last(),
        Some(Command::Restore {
            snapshot: true,
            strategy: Some(Strategy::InPlace),
            ..
        })
    ));
}

#[test]
fn a_beside_restore_takes_no_snapshot_and_reports_the_kept_database() {
    let mut s = at_confirm_with(beside());
    typed(&mut s, DB);
    update(&mut s, key(KeyCode::Enter));
    assert_eq!(s.step, Step::SafetySnapshot);
    // Nothing to decline: no snapshot is taken.
    update(&mut s, ch('d'));
    assert_eq!(s.modal, None);
    let cmds = update(&mut s, key(KeyCode::Enter));
    assert_eq!(s.step, Step::Restore);
    assert!(
        matches!(
            cmds.last(),
            Some(Command::Restore {
                strategy: Some(Strategy::Beside),
                confirm,
                ..
            }) if confirm == &vec![DB.to_string()]
        ),
        "{cmds:?}"
    );
    for phase in [Phase::Snapshot, Phase::Drop] {
        let g = s.restore.phases.iter().find(|g| g.phase == phase).unwrap();
        assert_eq!(g.state, PhaseState::Skipped, "{phase:?}");
    }
    assert_eq!(
        s.session.as_ref().unwrap().in_progress,
        Some(SessionStep::Restore)
    );
    let kept = format!("{DB}_before_rewind_20261130T031502");
    update(
        &mut s,
        Event::Engine(Msg::RestoreDone(Ok(RestoreSummary {
            text: "1 database(s), 10 rows in 0:03".into(),
            verify: Vec::new(),
            rows: 0,
            tables: 0,
            kept: vec![kept.clone()],
        }))),
    );
    assert_eq!(s.kept_databases, vec![kept.clone()]);
    assert!(s
        .changes
        .iter()
        .any(|c| c.step == Step::Restore && c.what.contains(&kept)));
    assert!(
        !s.changes.iter().any(|c| c.what.contains("dropped")),
        "nothing was dropped"
    );
}

#[test]
fn resuming_a_beside_restore_does_not_say_the_database_was_dropped() {
    let mut s = at_backups_with(beside());
    s.step = Step::Detect;
    let mut sess = saved_session();
    for st in [
        SessionStep::Preflight,
        SessionStep::StopServices,
        SessionStep::RollbackPackage,
    ] {
        sess.finish(st, "ok");
    }
    sess.installed_version = Some("16.10.3-ee".parse().unwrap());
    // The wizard begins Restore directly when the restore runs beside (no snapshot, no drop).
    sess.begin(SessionStep::Restore);
    let row = backups()[0].clone();
    let point = sess
        .resume_point(
            Some(&BackupIdentity {
                path: row.path.clone(),
                size: row.size,
                mtime: row.mtime,
            }),
            Some(&"16.10.3-ee".parse().unwrap()),
        )
        .unwrap();
    update(
        &mut s,
        Event::Engine(Msg::SessionFound(Box::new(ResumeOffer {
            session: sess,
            decision: Ok(point),
        }))),
    );
    update(&mut s, key(KeyCode::Enter));
    let restore = s
        .changes
        .iter()
        .find(|c| c.step == Step::Restore)
        .expect("the started restore is a change");
    assert!(
        restore.what.contains("beside the live database") && !restore.what.contains("dropped"),
        "{}",
        restore.what
    );
    // The in-place session (its drop recorded) still says so.
    let mut s = at_backups();
    s.step = Step::Detect;
    let sess = interrupted_session();
    let point = sess
        .resume_point(
            Some(&BackupIdentity {
                path: row.path.clone(),
                size: row.size,
                mtime: row.mtime,
            }),
            Some(&"16.10.3-ee".parse().unwrap()),
        )
        .unwrap();
    update(
        &mut s,
        Event::Engine(Msg::SessionFound(Box::new(ResumeOffer {
            session: sess,
            decision: Ok(point),
        }))),
    );
    update(&mut s, key(KeyCode::Enter));
    assert!(s
        .changes
        .iter()
        .any(|c| c.step == Step::Restore && c.what == "the database was dropped"));
}

/// A beside restore confirmed and started.
fn restoring_beside() -> State {
    let mut s = at_confirm_with(beside());
    typed(&mut s, DB);
    update(&mut s, key(KeyCode::Enter));
    update(&mut s, key(KeyCode::Enter));
    assert_eq!(s.step, Step::Restore);
    s
}

#[test]
fn a_restore_refused_for_a_changed_strategy_goes_back_to_a_drop_screen_deciding_again() {
    let mut s = restoring_beside();
    let refused = "the restore would now run in place (not enough free space beside the live database), but beside and swap was confirmed. Nothing was changed; confirm again with the strategy shown now";
    update(
        &mut s,
        Event::Engine(Msg::RestoreDone(Err(RestoreFailure {
            message: refused.into(),
            strategy_changed: true,
        }))),
    );
    // r does not run the same refused request again.
    assert!(update(&mut s, ch('r')).is_empty());
    assert_eq!(s.step, Step::Restore);
    assert!(s.notice.as_deref().unwrap().contains("Esc twice"));
    update(&mut s, key(KeyCode::Esc));
    assert_eq!(s.step, Step::SafetySnapshot);
    let cmds = update(&mut s, key(KeyCode::Esc));
    assert_eq!(s.step, Step::ConfirmDrop);
    assert!(
        matches!(cmds[..], [Command::DecideStrategy { .. }]),
        "{cmds:?}"
    );
    assert!(
        !crate::tui::update::drop_enabled(&s),
        "waits for the decision"
    );
    update(&mut s, Event::Engine(Msg::StrategyDecided(Ok(in_place()))));
    assert!(crate::tui::update::drop_enabled(&s));
}

#[test]
fn the_connections_work_in_flight_is_kept_until_idle_or_the_phase_ends() {
    let mut s = mid_restore();
    let worker = |slot, what: Option<&str>| {
        Event::Engine(Msg::Progress(P::Worker {
            slot,
            phase: Phase::Indexes,
            what: what.map(String::from),
        }))
    };
    update(&mut s, worker(0, Some("INDEX public.index_notes_on_note")));
    update(
        &mut s,
        worker(1, Some("FK CONSTRAINT public.notes fk_rails_1")),
    );
    assert_eq!(s.restore.workers.len(), 2);
    assert_eq!(
        s.restore.workers.get(&1).map(|(_, w)| w.as_str()),
        Some("FK CONSTRAINT public.notes fk_rails_1")
    );
    update(&mut s, worker(1, None));
    assert_eq!(s.restore.workers.len(), 1, "an idle connection is dropped");
    update(
        &mut s,
        Event::Engine(Msg::Progress(P::PhaseFinished {
            phase: Phase::Indexes,
            ok: true,
        })),
    );
    assert!(
        s.restore.workers.is_empty(),
        "the phase's connections are done"
    );
}

#[test]
fn only_the_engines_changed_strategy_refusal_sends_the_user_back_not_its_wording() {
    let mut s = restoring_beside();
    // Another failure whose text happens to read alike: r runs the restore again.
    update(
        &mut s,
        Event::Engine(Msg::RestoreDone(Err(
            "psql said: the value was confirmed. Nothing was changed".into(),
        ))),
    );
    let cmds = update(&mut s, ch('r'));
    assert!(
        cmds.iter().any(|c| matches!(c, Command::Restore { .. })),
        "{cmds:?}"
    );
}
