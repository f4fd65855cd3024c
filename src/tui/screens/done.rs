//! Verify and Done: the verify lines, the commands GitLab recommends next, and where the
//! journal and the snapshot are.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::Frame;

use super::{boxed_wrap, pending};
use crate::tui::state::{Loadable, State};
use crate::tui::view::Theme;

pub fn draw_verify(s: &State, t: &Theme, f: &mut Frame, area: Rect) {
    let lines = pending(t, &s.verify, "Verifying the restore").unwrap_or_else(|| {
        let mut v = Vec::new();
        if let Loadable::Ready(items) = &s.verify {
            for l in items {
                v.push(Line::from(vec![
                    if l.ok {
                        Span::styled(" ✓ ", t.ok())
                    } else {
                        Span::styled(" ✗ ", t.bad())
                    },
                    Span::raw(l.text.clone()),
                ]));
            }
            let bad = items.iter().filter(|l| !l.ok).count();
            v.push(Line::from(""));
            v.push(if bad == 0 {
                Line::styled(" The database matches the backup. Enter starts the services.", t.ok())
            } else {
                Line::styled(
                    format!(" {bad} problem(s): read them before starting GitLab (the log has details)."),
                    t.bad(),
                )
            });
        }
        v
    });
    f.render_widget(boxed_wrap("Verify", lines), area);
}

pub fn draw(s: &State, t: &Theme, f: &mut Frame, area: Rect) {
    // Room for the checks that reported problems and the commands to run them again.
    let next_h = if s.post.ran && !s.post.failed().is_empty() {
        9
    } else {
        7
    };
    let [summary, next] =
        Layout::vertical([Constraint::Min(6), Constraint::Length(next_h)]).areas(area);
    let mut lines = Vec::new();
    let version = s
        .installation
        .ready()
        .and_then(|i| i.version.as_ref())
        .map(|v| v.to_string())
        .unwrap_or_else(|| "unknown".into());
    lines.push(Line::styled(
        format!(" GitLab {version} is back on the backup's data."),
        t.ok(),
    ));
    if let Some(b) = &s.chosen {
        lines.push(Line::from(format!(" backup    {}", b.id)));
    }
    if let Some(Ok(summary)) = &s.restore.result {
        lines.push(Line::from(format!(" restore   {summary}")));
    }
    if let Some(dir) = &s.journal_dir {
        lines.push(Line::from(format!(
            " journal   {}",
            dir.join("journal.jsonl").display()
        )));
    }
    match (&s.config.result, s.config.skipped) {
        (Some(Ok(_)), _) => lines.push(Line::from(
            " config    gitlab-secrets.json and gitlab.rb restored from the archive",
        )),
        (_, true) => lines.push(Line::styled(" config    not restored (skipped)", t.warn())),
        _ => {}
    }
    for k in &s.kept_databases {
        lines.push(Line::styled(format!(" kept      {k}"), t.warn()));
    }
    if !s.kept_databases.is_empty() {
        lines.push(Line::from(
            "           the failed upgrade's database, whole: `rewind undo` swaps it back;",
        ));
        lines.push(Line::from(
            "           `rewind cleanup` removes it once GitLab is healthy",
        ));
    }
    if s.snapshots_taken.is_empty() && s.kept_databases.is_empty() {
        lines.push(Line::from(" snapshot  none taken"));
    }
    for (db, p) in &s.snapshots_taken {
        lines.push(Line::from(format!(" snapshot  {db}: {}", p.display())));
    }
    if let Loadable::Ready(d) = &s.salvage {
        lines.push(Line::styled(
            format!(
                " salvage   {} rows created since the backup; bring them back with:",
                d.rows
            ),
            t.warn(),
        ));
        lines.push(Line::styled(
            format!("   {} --dry-run, then --yes", d.import_command),
            t.bold(),
        ));
    }
    f.render_widget(boxed_wrap("Done", lines), summary);
    let [check, secrets] = crate::tui::summary::checks(s);
    let failed: Vec<String> = s
        .post
        .failed()
        .iter()
        .map(|r| {
            r.command
                .split_whitespace()
                .nth(1)
                .unwrap_or(&r.step)
                .to_string()
        })
        .collect();
    let mut next_lines = if s.post.ran && failed.is_empty() {
        vec![Line::styled(
            " The checks after the restore passed (their output is in the journal).",
            t.ok(),
        )]
    } else if s.post.ran {
        vec![
            Line::styled(
                format!(" Checks that reported problems: {}.", failed.join(", ")),
                t.bad(),
            ),
            Line::from(" Their output and GitLab's fixes are in the journal; run them again:"),
            Line::styled(format!("   {check}"), t.bold()),
            Line::styled(format!("   {secrets}"), t.bold()),
        ]
    } else {
        vec![
            Line::from(" Check GitLab as its documentation recommends:"),
            Line::styled(format!("   {check}"), t.bold()),
            Line::styled(format!("   {secrets}"), t.bold()),
        ]
    };
    next_lines.push(Line::from(
        " If a later upgrade fails on tables that already exist, m repairs the migrations.",
    ));
    f.render_widget(boxed_wrap("Next", next_lines), next);
}
