//! RepairMigrations: a failed db:migrate log, the assessment, a typed confirmation per
//! version, and the rounds of mark-complete + migrate.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::Frame;

use super::{boxed, fit, pending};
use crate::tui::state::{Loadable, State};
use crate::tui::view::Theme;

pub fn draw(s: &State, t: &Theme, f: &mut Frame, area: Rect) {
    let r = &s.repair;
    let [top, rounds] = Layout::vertical([Constraint::Min(8), Constraint::Length(6)]).areas(area);
    let w = top.width.saturating_sub(4) as usize;
    let mut lines = vec![
        Line::from(" When an upgrade fails on objects that already exist (PG::DuplicateTable, …),"),
        Line::from(" the failed migration can be marked complete, then db:migrate runs again."),
        Line::styled(
            " Dangerous: only when the object really matches what the migration creates.",
            t.warn(),
        ),
        Line::from(""),
    ];
    match &r.assessment {
        None => {
            lines.push(Line::from(
                " Path of the failed db:migrate log (or paste it):",
            ));
            lines.push(Line::from(vec![
                Span::raw(" > "),
                Span::styled(fit(&r.input, w.saturating_sub(4)), t.bold()),
                Span::styled("▏", t.accent()),
            ]));
            if !r.candidates.is_empty() {
                lines.push(Line::styled(
                    format!(
                        " Tab picks: {}",
                        r.candidates
                            .iter()
                            .map(|p| p.display().to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    t.dim(),
                ));
            }
        }
        Some(l) => {
            if let Some(p) = pending(t, l, "Reading the log") {
                lines.extend(p);
            } else if let Loadable::Ready(items) = l {
                if items.is_empty() {
                    lines.push(Line::styled(
                        " No failed migration found in that log. Esc picks another.",
                        t.ok(),
                    ));
                }
                for (i, it) in items.iter().enumerate() {
                    lines.push(Line::from(vec![
                        Span::styled(format!(" {} ", it.version), t.bold()),
                        Span::raw(fit(&it.name, w.saturating_sub(16))),
                    ]));
                    lines.push(Line::from(format!(
                        "   {}",
                        fit(&it.error, w.saturating_sub(3))
                    )));
                    lines.push(Line::styled(
                        format!("   {}", fit(&it.verdict, w.saturating_sub(3))),
                        if i == 0 { t.warn() } else { t.dim() },
                    ));
                }
                if let Some(first) = items.first() {
                    lines.push(Line::from(vec![
                        Span::raw(" Type "),
                        Span::styled(first.version.clone(), t.bold()),
                        Span::raw(" to mark it complete: "),
                        Span::styled(r.confirm.clone(), t.bold()),
                        Span::styled("▏", t.accent()),
                    ]));
                }
            }
        }
    }
    f.render_widget(super::boxed_wrap("Repair migrations", lines), top);
    let h = rounds.height.saturating_sub(2) as usize;
    let start = r.rounds.len().saturating_sub(h);
    let rl: Vec<Line> = if r.rounds.is_empty() {
        vec![Line::styled(" No round run yet.", t.dim())]
    } else {
        r.rounds[start..]
            .iter()
            .map(|l| Line::from(format!(" {}", fit(l, w))))
            .collect()
    };
    f.render_widget(boxed("Rounds", rl), rounds);
}
