//! What stays in the terminal after the wizard exits: what this run did, where the journal
//! and the safety snapshots are, and what to run next. Pure: built from the state.

use rewind_engine::migrate::describe::rake_command;

use super::state::{Loadable, State, Step};

/// GitLab's checks after a restore, as its documentation gives them for this installation.
pub fn checks(s: &State) -> [String; 2] {
    let kind = s.installation.ready().and_then(|i| i.kind);
    [
        rake_command(kind, "gitlab:check SANITIZE=true"),
        rake_command(kind, "gitlab:doctor:secrets"),
    ]
}

/// The lines printed after the wizard leaves the alternate screen. Empty when the run
/// changed nothing and did not finish (nothing to report beyond the terminal prompt).
pub fn lines(s: &State) -> Vec<String> {
    let finished = s.step == Step::Done;
    if s.changes.is_empty()
        && !finished
        && s.snapshots_taken.is_empty()
        && s.kept_databases.is_empty()
    {
        return Vec::new();
    }
    let mut out = Vec::new();
    out.push(if finished {
        "Rewind: the recovery finished.".to_string()
    } else {
        format!(
            "Rewind: left at step {} ({}); the recovery is not finished.",
            s.step.number().map(|n| n.to_string()).unwrap_or_default(),
            s.step.title()
        )
    });
    if let Some(b) = &s.chosen {
        out.push(format!(
            "  backup      {}{}",
            b.id,
            b.version
                .as_ref()
                .map(|v| format!(" (GitLab {v})"))
                .unwrap_or_default()
        ));
    }
    for c in &s.changes {
        out.push(format!("  changed     {} ({})", c.what, c.step.title()));
    }
    if let Some(Ok(summary)) = &s.restore.result {
        out.push(format!("  restored    {summary}"));
    }
    if let Loadable::Ready(lines) = &s.verify {
        let bad = lines.iter().filter(|l| !l.ok).count();
        out.push(format!(
            "  verified    {} checks, {bad} problem(s){}",
            lines.len(),
            if bad > 0 {
                ": read them in the journal"
            } else {
                ""
            }
        ));
    }
    if let Some(dir) = &s.journal_dir {
        out.push(format!(
            "  journal     {}",
            dir.join("journal.jsonl").display()
        ));
    }
    for (db, p) in &s.snapshots_taken {
        out.push(format!(
            "  snapshot    {db}: {} (pg_restore of it brings the database back as it was)",
            p.display()
        ));
    }
    for k in &s.kept_databases {
        out.push(format!(
            "  kept        {k}: the failed upgrade's database, whole (renamed aside, not dropped)"
        ));
    }
    if !s.kept_databases.is_empty() {
        out.push("              `rewind undo` swaps it back; `rewind cleanup` removes it once GitLab is healthy".into());
    }
    if let Loadable::Ready(d) = &s.salvage {
        out.push(format!(
            "  salvage     {} rows created since the backup, in {}",
            d.rows,
            d.dir.display()
        ));
        out.push(format!(
            "              after the restore: {} --dry-run, then --yes",
            d.import_command
        ));
    }
    if finished {
        out.push("  next        check GitLab as its documentation recommends:".into());
        for c in checks(s) {
            out.push(format!("                {c}"));
        }
        out.push(
            "              gitlab-secrets.json must be the one of the backup's time, or CI variables and 2FA break"
                .into(),
        );
    } else {
        out.push(
            "  next        run rewind again: it offers to resume where this run stopped".into(),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::fixtures::*;
    use crate::tui::state::Change;

    #[test]
    fn nothing_changed_prints_nothing() {
        let s = at_backups();
        assert!(lines(&s).is_empty());
    }

    #[test]
    fn a_run_left_midway_says_where_it_stopped_and_how_to_resume() {
        let mut s = at_confirm();
        s.snapshots_taken.insert(
            DB.into(),
            "/var/opt/gitlab/backups/rewind/snapshots/x.dump".into(),
        );
        let text = lines(&s).join("\n");
        assert!(text.contains("left at step 6 (Confirm drop)"), "{text}");
        assert!(text.contains("the services were stopped"), "{text}");
        assert!(
            text.contains("journal     /var/opt/gitlab/backups/rewind/journal.jsonl"),
            "{text}"
        );
        assert!(
            text.contains(
                "snapshot    gitlabhq_production: /var/opt/gitlab/backups/rewind/snapshots/x.dump"
            ),
            "{text}"
        );
        assert!(text.contains("run rewind again"), "{text}");
    }

    #[test]
    fn a_beside_restore_names_the_kept_database_with_undo_and_cleanup() {
        let mut s = at_confirm();
        s.step = Step::Done;
        s.kept_databases = vec!["gitlabhq_production_before_rewind_20261130T001500".into()];
        let text = lines(&s).join("\n");
        assert!(
            text.contains("kept        gitlabhq_production_before_rewind_20261130T001500: the failed upgrade's database"),
            "{text}"
        );
        assert!(text.contains("`rewind undo` swaps it back"), "{text}");
        assert!(text.contains("`rewind cleanup` removes it"), "{text}");
        // No snapshot line: none was taken.
        assert!(!text.contains("snapshot    "), "{text}");
    }

    #[test]
    fn a_finished_run_says_what_to_run_next() {
        let mut s = at_confirm();
        s.step = Step::Done;
        s.changes.push(Change {
            step: Step::Restore,
            what: "the database was dropped".into(),
        });
        let text = lines(&s).join("\n");
        assert!(text.starts_with("Rewind: the recovery finished."), "{text}");
        assert!(
            text.contains("sudo gitlab-rake gitlab:check SANITIZE=true"),
            "{text}"
        );
        assert!(text.contains("gitlab:doctor:secrets"), "{text}");
    }
}
