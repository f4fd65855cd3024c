//! RepairMigrations: a failed db:migrate log, the assessment, a typed confirmation per
//! version, and the rounds of mark-complete + migrate.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::Frame;

use super::{boxed, fit, pending};
use rewind_engine::migrate::describe::Tone;

use crate::tui::state::{Loadable, RepairField, State};
use crate::tui::view::Theme;

pub fn draw(s: &State, t: &Theme, f: &mut Frame, area: Rect) {
    let r = &s.repair;
    let [top, rounds] = Layout::vertical([Constraint::Min(8), Constraint::Length(5)]).areas(area);
    let w = top.width.saturating_sub(4) as usize;
    let mut prompt: Vec<Line> = Vec::new();
    // The explanation while a log is picked; the assessment needs the room after.
    let mut lines = if r.assessment.is_none() {
        vec![
            Line::from(
                " When an upgrade fails on objects that already exist (PG::DuplicateTable, …),",
            ),
            Line::from(" the failed migration can be marked complete, then db:migrate runs again."),
            Line::styled(
                " Dangerous: only when the object really matches what the migration creates.",
                t.warn(),
            ),
            Line::from(""),
        ]
    } else {
        Vec::new()
    };
    match &r.assessment {
        None => {
            let field = |label: &str, text: &str, on: bool| {
                let mut spans = vec![
                    Span::styled(format!(" {label:<16}"), if on { t.bold() } else { t.dim() }),
                    Span::styled(fit_tail(text, w.saturating_sub(20)), t.bold()),
                ];
                if on {
                    spans.push(Span::styled("▏", t.accent()));
                }
                Line::from(spans)
            };
            lines.push(Line::from(
                " The failed db:migrate log (Tab: the newest failed one), and the command",
            ));
            lines.push(Line::from(
                " that runs the migrations again after marking (↑↓ switch field):",
            ));
            lines.push(field("log", &r.input, r.field == RepairField::Log));
            lines.push(field(
                "migrate command",
                &r.migrate_cmd,
                r.field == RepairField::MigrateCommand,
            ));
            match r.candidates.len() {
                0 => lines.push(Line::styled(
                    " No failed db:migrate log found in GitLab's log directory.",
                    t.dim(),
                )),
                n => lines.push(Line::styled(
                    format!(
                        " {n} failed log{} found; newest: {}",
                        if n == 1 { "" } else { "s" },
                        r.candidates[0]
                            .file_name()
                            .map(|f| f.to_string_lossy().into_owned())
                            .unwrap_or_default()
                    ),
                    t.dim(),
                )),
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
                if let Some(it) = items.first() {
                    // GitLab's command goes with the question below.
                    for fact in it.facts.iter().filter(|f| f.label != "GitLab") {
                        let style = match fact.tone {
                            Tone::Plain => ratatui::style::Style::default(),
                            Tone::Strong => t.bold(),
                            Tone::Good => t.ok(),
                            Tone::Bad => t.bad(),
                            Tone::Warn => t.warn(),
                            Tone::Dim => t.dim(),
                        };
                        let label = if fact.label.is_empty() {
                            String::new()
                        } else {
                            format!("{}:", fact.label)
                        };
                        let label = fit(&label, 12);
                        lines.push(Line::from(vec![
                            Span::styled(format!(" {label:<12} "), t.dim()),
                            Span::styled(fact.text.clone(), style),
                        ]));
                    }
                    if it.already_marked {
                        prompt.push(Line::styled(
                            format!(
                                " {} is already marked complete: nothing to mark. Esc goes back.",
                                it.version
                            ),
                            t.warn(),
                        ));
                    } else if it.markable {
                        if !it.gitlab_command.is_empty() {
                            prompt.push(Line::from(vec![
                                Span::raw(" as GitLab's "),
                                Span::styled(
                                    fit(&it.gitlab_command, w.saturating_sub(14)),
                                    t.bold(),
                                ),
                            ]));
                        }
                        prompt.push(Line::from(vec![
                            Span::raw(" then runs: "),
                            Span::styled(fit(&r.migrate_cmd, w.saturating_sub(12)), t.bold()),
                        ]));
                        prompt.push(Line::from(vec![
                            Span::raw(" Type "),
                            Span::styled(it.version.clone(), t.bold()),
                            Span::raw(" to mark it complete:"),
                        ]));
                        prompt.push(Line::from(vec![
                            Span::raw(" > "),
                            Span::styled(r.confirm.clone(), t.bold()),
                            Span::styled("▏", t.accent()),
                        ]));
                    } else {
                        prompt.push(Line::styled(
                            " Rewind advises against marking this version. Esc goes back.",
                            t.bad(),
                        ));
                    }
                }
            }
        }
    }
    // The question stays on screen below the facts, however many there are.
    if prompt.is_empty() {
        f.render_widget(super::boxed_wrap("Repair migrations", lines), top);
    } else {
        let [facts_area, prompt_area] = Layout::vertical([
            Constraint::Min(3),
            Constraint::Length(prompt.len() as u16 + 2),
        ])
        .areas(top);
        f.render_widget(super::boxed_wrap("Repair migrations", lines), facts_area);
        f.render_widget(super::boxed_wrap("Decision", prompt), prompt_area);
    }
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

/// The end of `text` in `width` columns (a path's file name matters most).
fn fit_tail(text: &str, width: usize) -> String {
    let n = text.chars().count();
    if n <= width || width < 2 {
        return text.to_string();
    }
    crate::tui::detail::note_cut();
    let tail: String = text.chars().skip(n - (width - 1)).collect();
    format!("…{tail}")
}
