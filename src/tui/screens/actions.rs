//! StopServices, RollbackPackage, StartServices: the exact commands, their streamed output,
//! and what re-detection found.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;

use super::{boxed, fit};
use crate::tui::state::{ActionStatus, State, Step};
use crate::tui::view::Theme;

pub fn draw(s: &State, t: &Theme, f: &mut Frame, area: Rect) {
    let Some(a) = s.action(s.step) else {
        return;
    };
    let intro = match s.step {
        Step::StopServices => "Stop the services that write to the database (puma, sidekiq), so nothing writes while the database is restored.",
        Step::RollbackPackage => "Install the GitLab version the backup was made on. GitLab refuses to restore a backup from another version.",
        _ => "Start GitLab again and check that it comes up.",
    };
    let w = area.width.saturating_sub(4) as usize;
    let mut top = vec![Line::from(format!(" {intro}")), Line::from("")];
    let question = (s.step == Step::RollbackPackage && !s.allow_edition_change)
        .then_some(s.edition_question.as_ref())
        .flatten();
    if let Some(q) = question {
        top.push(Line::styled(
            format!(
                " The editions differ: {} is installed, the backup was made on GitLab {} ({}).",
                q.installed_package, q.backup_version, q.backup_package
            ),
            t.warn(),
        ));
        top.push(Line::from(
            " GitLab restores a backup only into the edition that made it (a version without -ee is CE).",
        ));
        top.push(Line::from(""));
        top.push(Line::styled(" Decision", t.bold()));
        top.push(Line::from(format!(
            "   i    install {} {} in place of {} (the backup's edition)",
            q.backup_package, q.backup_version, q.installed_package
        )));
        top.push(Line::from(
            "   Esc  go back: pick another backup, or change the edition by hand",
        ));
    } else {
        match &a.status {
            ActionStatus::NotPlanned | ActionStatus::Planning => {
                top.push(Line::styled(" Working out the commands…", t.dim()))
            }
            ActionStatus::Skipped(why) => {
                top.push(Line::styled(format!(" Skipped: {why}"), t.ok()));
                top.push(Line::from(" Enter goes on."));
            }
            ActionStatus::Unavailable(why) => {
                top.push(Line::styled(format!(" {why}"), t.warn()));
                top.push(Line::from(
                    " Do this step by hand, then press Enter to go on.",
                ));
            }
            st => {
                // Wrapped, never cut: the package version is at the command's end.
                for c in &a.commands {
                    top.push(Line::styled(format!("   $ {c}"), t.bold()));
                }
                top.push(Line::from(""));
                top.push(match st {
                    ActionStatus::Ready => {
                        Line::from(" Enter runs these commands (you confirm first).")
                    }
                    ActionStatus::Running => Line::styled(" Running…", t.accent()),
                    ActionStatus::Succeeded => Line::styled(
                        format!(" Done. {}", a.result.clone().unwrap_or_default()),
                        t.ok(),
                    ),
                    ActionStatus::Failed(e) => Line::styled(format!(" Failed: {e}"), t.bad()),
                    _ => Line::from(""),
                });
            }
        }
    }
    let rows = Paragraph::new(top.clone())
        .wrap(Wrap { trim: false })
        .line_count(area.width.saturating_sub(2).max(1));
    let top_h = (rows as u16 + 2).min(area.height.saturating_sub(3));
    let [head, out] = Layout::vertical([Constraint::Length(top_h), Constraint::Min(3)]).areas(area);
    f.render_widget(super::boxed_wrap(s.step.title(), top), head);
    let h = out.height.saturating_sub(2) as usize;
    let start = a.output.len().saturating_sub(h);
    let lines: Vec<Line> = a.output[start..]
        .iter()
        .map(|l| Line::from(format!(" {}", fit(l, w))))
        .collect();
    f.render_widget(boxed("Output", lines), out);
}
