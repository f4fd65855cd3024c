//! PostChecks: the readiness wait and GitLab's checks after the restore, each with its
//! exact command and captured output (scrollable), and gitlab:doctor:secrets read into a
//! table of the models that fail with GitLab's fix for each.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::Frame;

use super::confirm::wrap;
use super::{boxed, fit, pending};
use crate::tui::state::{CheckState, PostRow, State};
use crate::tui::view::Theme;
use rewind_engine::recovery::postcheck::{fix_for, RESTORE_SECRETS_FIRST};

/// A row's short name: the rake task, or the endpoint.
fn label(r: &PostRow) -> String {
    if r.step == "post.readiness" {
        return "/-/readiness".into();
    }
    r.command
        .split_whitespace()
        .nth(1)
        .unwrap_or(&r.command)
        .to_string()
}

pub fn draw(s: &State, t: &Theme, f: &mut Frame, area: Rect) {
    let p = &s.post;
    let rows = p.rows();
    let list_h = (rows.len().max(1) as u16 + 2).min(area.height / 2);
    let [list_area, detail_area] =
        Layout::vertical([Constraint::Length(list_h), Constraint::Min(4)]).areas(area);
    let w = list_area.width.saturating_sub(2) as usize;

    let lines = match p.rows.as_ref() {
        None => vec![Line::styled(" Listing the checks…", t.dim())],
        Some(l) => pending(t, l, "Listing the checks").unwrap_or_else(|| {
            let visible = list_h.saturating_sub(2) as usize;
            let first = p.cursor.saturating_sub(visible.saturating_sub(1));
            rows.iter()
                .enumerate()
                .skip(first)
                .take(visible)
                .map(|(i, r)| {
                    let (mark, style, words) = match &r.state {
                        CheckState::Pending => ("  ", t.dim(), String::new()),
                        CheckState::Running => ("… ", t.accent(), "running".into()),
                        CheckState::Passed(x) => ("✓ ", t.ok(), x.clone()),
                        CheckState::Failed(x) => ("✗ ", t.bad(), x.clone()),
                        CheckState::Skipped(x) => ("– ", t.dim(), x.clone()),
                    };
                    let cur = if i == p.cursor { "›" } else { " " };
                    let tick = if r.selected { "[x]" } else { "[ ]" };
                    let name = format!("{:<26}", fit(&label(r), 25));
                    let rest = if words.is_empty() {
                        if r.changes_host {
                            format!("{} (changes the host)", r.what)
                        } else {
                            r.what.clone()
                        }
                    } else {
                        words
                    };
                    let room = w.saturating_sub(1 + 4 + 2 + 26);
                    Line::from(vec![
                        Span::raw(format!("{cur}{tick} ")),
                        Span::styled(mark, style),
                        Span::styled(name, if i == p.cursor { t.bold() } else { t.dim() }),
                        Span::styled(fit(&rest, room), style),
                    ])
                })
                .collect()
        }),
    };
    let title = if p.running {
        "Checks after the restore (running)"
    } else if p.ran {
        "Checks after the restore"
    } else {
        "Checks after the restore: Enter runs the ticked ones"
    };
    f.render_widget(boxed(title, lines), list_area);

    let Some(r) = rows.get(p.cursor) else {
        f.render_widget(boxed("Output", Vec::new()), detail_area);
        return;
    };
    let dw = detail_area.width.saturating_sub(2) as usize;
    let mut d = vec![Line::styled(
        format!(" $ {}", fit(&r.command, dw.saturating_sub(3))),
        t.bold(),
    )];
    // The output, then (for gitlab:doctor:secrets) the table read from it: scrolled up
    // from the end, so a running command's newest lines and the table show first.
    let mut body: Vec<Line> = r
        .output
        .iter()
        .map(|l| Line::from(format!(" {}", fit(l, dw.saturating_sub(1)))))
        .collect();
    if r.output.is_empty() {
        body.push(Line::styled(
            match r.state {
                CheckState::Pending => " (not run yet)",
                CheckState::Skipped(_) => " (not run)",
                _ => " (no output yet)",
            },
            t.dim(),
        ));
    }
    if r.step == "post.doctor_secrets" {
        if let Some(doc) = &p.doctor {
            if doc.done && doc.failing().next().is_some() {
                for l in wrap(RESTORE_SECRETS_FIRST, dw.saturating_sub(2), 2) {
                    body.push(Line::styled(format!(" {l}"), t.warn()));
                }
                body.push(Line::styled(
                    format!(" {:<24}{:>6}  what breaks; GitLab's fix", "model", "rows"),
                    t.dim(),
                ));
                for m in doc.failing() {
                    let fx = fix_for(&m.model);
                    body.push(Line::from(vec![
                        Span::styled(format!(" {:<24}", fit(&m.model, 23)), t.bad()),
                        Span::raw(format!("{:>6}  ", m.failures)),
                        Span::raw(fit(fx.breaks, dw.saturating_sub(33))),
                    ]));
                    for l in wrap(
                        &format!("{}: {}", fx.section, fx.fix),
                        dw.saturating_sub(4),
                        2,
                    ) {
                        body.push(Line::styled(format!("   {l}"), t.dim()));
                    }
                }
            } else if doc.ok() {
                body.push(Line::styled(
                    format!(
                        " Every encrypted value decrypts ({} models checked).",
                        doc.models.len()
                    ),
                    t.ok(),
                ));
            }
        }
    }
    let room = (detail_area.height.saturating_sub(2) as usize).saturating_sub(d.len());
    let end = body
        .len()
        .saturating_sub(p.scroll)
        .max(room.min(body.len()));
    let first = end.saturating_sub(room);
    let more = if body.len() > room && room > 0 {
        format!(
            " · lines {}-{} of {} (PgUp/PgDn)",
            first + 1,
            end,
            body.len()
        )
    } else {
        String::new()
    };
    d.extend(body.into_iter().skip(first).take(room));
    let title = format!(
        "{}{more}",
        fit(&r.what, dw.saturating_sub(more.chars().count() + 4))
    );
    f.render_widget(boxed(&title, d), detail_area);
}
