//! The step overview: every step of the recovery with where it stands, derived from the
//! state (nothing of its own), shown over any screen with `o` (F2 where letters are input).

use rewind_engine::preflight::Status;

use super::state::{ActionStatus, Loadable, PhaseState, State, Step};

/// Where a step stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Done,
    Current,
    Running,
    Failed,
    Skipped,
    Pending,
}

impl Mark {
    pub fn symbol(self) -> &'static str {
        match self {
            Mark::Done => "✓",
            Mark::Current => "›",
            Mark::Running => "…",
            Mark::Failed => "✗",
            Mark::Skipped => "–",
            Mark::Pending => " ",
        }
    }
}

fn action(a: &super::state::ActionStep) -> (Mark, String) {
    match &a.status {
        ActionStatus::Succeeded => (Mark::Done, a.result.clone().unwrap_or_default()),
        ActionStatus::Skipped(why) => (Mark::Skipped, why.clone()),
        ActionStatus::Unavailable(why) => (Mark::Skipped, format!("by hand: {why}")),
        ActionStatus::Running => (Mark::Running, "running".into()),
        ActionStatus::Failed(e) => (Mark::Failed, e.clone()),
        ActionStatus::Ready => (Mark::Pending, "commands ready, not run".into()),
        ActionStatus::Planning | ActionStatus::NotPlanned => (Mark::Pending, String::new()),
    }
}

/// Each step of the main path with its mark and a few words.
pub fn rows(s: &State) -> Vec<(Step, Mark, String)> {
    Step::PATH
        .iter()
        .map(|&step| {
            let (mark, words) = match step {
                Step::Detect => match &s.installation {
                    Loadable::Ready(i) => (
                        Mark::Done,
                        i.version
                            .as_ref()
                            .map(|v| format!("GitLab {v}"))
                            .unwrap_or_default(),
                    ),
                    Loadable::Failed(e) => (Mark::Failed, e.clone()),
                    Loadable::Loading => (Mark::Running, String::new()),
                    _ => (Mark::Pending, String::new()),
                },
                Step::SelectBackup => match &s.chosen {
                    Some(b) => (Mark::Done, b.id.clone()),
                    None => (Mark::Pending, String::new()),
                },
                Step::Preflight => {
                    let p = &s.preflight;
                    if p.running {
                        (Mark::Running, format!("{} checks done", p.checks.len()))
                    } else if let Some(f) = p.failures().first() {
                        (Mark::Failed, format!("{} failed", f.kind.label()))
                    } else if p.checks.is_empty() {
                        (Mark::Pending, String::new())
                    } else {
                        let warn = p.checks.iter().filter(|c| c.status == Status::Warn).count();
                        (
                            Mark::Done,
                            format!("{} passed, {warn} warned", p.checks.len() - warn),
                        )
                    }
                }
                Step::StopServices => action(&s.stop),
                Step::RollbackPackage => action(&s.rollback),
                Step::StartServices => action(&s.start),
                Step::ConfirmDrop => {
                    // The strategy the restore runs: what the confirmation is for.
                    let how = match s.strategy.ready() {
                        Some(v) if v.beside() => "beside and swap, nothing dropped",
                        Some(_) => "in place: drop, then load",
                        None => "",
                    };
                    if s.all_confirmed() {
                        (
                            Mark::Done,
                            format!("{} ({how})", s.drop_databases().join(", ")),
                        )
                    } else {
                        (Mark::Pending, how.to_string())
                    }
                }
                Step::SafetySnapshot if s.beside() && s.snapshots_taken.is_empty() => (
                    Mark::Skipped,
                    "not needed: the live database is kept whole".into(),
                ),
                Step::SafetySnapshot => {
                    if !s.snapshots_taken.is_empty() {
                        (Mark::Done, format!("{} taken", s.snapshots_taken.len()))
                    } else if s.snapshot_declined {
                        (Mark::Skipped, "declined".into())
                    } else if s.restore.phases.iter().any(|g| {
                        g.phase == rewind_engine::progress::Phase::Snapshot
                            && g.state == PhaseState::Running
                    }) {
                        (Mark::Running, String::new())
                    } else {
                        (Mark::Pending, String::new())
                    }
                }
                Step::Restore => match &s.restore.result {
                    Some(Ok(summary)) => (Mark::Done, summary.clone()),
                    Some(Err(e)) => (Mark::Failed, e.clone()),
                    None if s.restore.started.is_some() => (Mark::Running, String::new()),
                    None => (Mark::Pending, String::new()),
                },
                Step::Verify => match &s.verify {
                    Loadable::Ready(lines) => {
                        let bad = lines.iter().filter(|l| !l.ok).count();
                        if bad == 0 {
                            (Mark::Done, format!("{} checks", lines.len()))
                        } else {
                            (Mark::Failed, format!("{bad} problem(s)"))
                        }
                    }
                    Loadable::Failed(e) => (Mark::Failed, e.clone()),
                    Loadable::Loading => (Mark::Running, String::new()),
                    _ => (Mark::Pending, String::new()),
                },
                Step::RestoreConfig => match &s.config.result {
                    Some(Ok(_)) => (
                        Mark::Done,
                        s.config.would_restore().join(", ") + " restored",
                    ),
                    Some(Err(e)) => (Mark::Failed, e.clone()),
                    None if s.config.running => (Mark::Running, String::new()),
                    None if s.config.skipped => (Mark::Skipped, "skipped".into()),
                    None => (Mark::Pending, String::new()),
                },
                Step::PostChecks => {
                    let failed = s.post.failed().len();
                    if s.post.running {
                        (Mark::Running, String::new())
                    } else if s.post.skipped {
                        (Mark::Skipped, "skipped".into())
                    } else if !s.post.ran {
                        (Mark::Pending, String::new())
                    } else if failed == 0 {
                        (Mark::Done, "passed".into())
                    } else {
                        (Mark::Failed, format!("{failed} reported problems"))
                    }
                }
                Step::Done => {
                    if s.step == Step::Done {
                        (Mark::Done, String::new())
                    } else {
                        (Mark::Pending, String::new())
                    }
                }
                Step::Resume | Step::RepairMigrations => (Mark::Pending, String::new()),
            };
            // The screen shown is the current step unless it already ended.
            let mark = if step == s.step && matches!(mark, Mark::Pending) {
                Mark::Current
            } else {
                mark
            };
            (step, mark, words)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::fixtures::*;

    #[test]
    fn marks_follow_the_state() {
        let s = at_confirm();
        let r = rows(&s);
        let mark = |st: Step| r.iter().find(|(x, _, _)| *x == st).unwrap().1;
        assert_eq!(mark(Step::Detect), Mark::Done);
        assert_eq!(mark(Step::SelectBackup), Mark::Done);
        assert_eq!(mark(Step::Preflight), Mark::Done);
        assert_eq!(mark(Step::StopServices), Mark::Done);
        assert_eq!(mark(Step::RollbackPackage), Mark::Done);
        assert_eq!(mark(Step::ConfirmDrop), Mark::Current);
        assert_eq!(mark(Step::Restore), Mark::Pending);
        let s = mid_restore();
        let r = rows(&s);
        let mark = |st: Step| r.iter().find(|(x, _, _)| *x == st).unwrap().1;
        assert_eq!(mark(Step::ConfirmDrop), Mark::Done);
        assert_eq!(mark(Step::SafetySnapshot), Mark::Done);
        assert_eq!(mark(Step::Restore), Mark::Running);
    }
}
