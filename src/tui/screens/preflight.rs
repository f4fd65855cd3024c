//! Preflight: each check with its verdict, reason and fix; the archive verification bar.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::Frame;
use rewind_engine::preflight::{CheckKind, Status};

use super::{bar, boxed, boxed_wrap, fit};
use crate::output::human_bytes;
use crate::tui::state::State;
use crate::tui::update::one_line;
use crate::tui::view::Theme;

pub fn draw(s: &State, t: &Theme, f: &mut Frame, area: Rect) {
    let [checks_area, fix_area] =
        Layout::vertical([Constraint::Min(9), Constraint::Length(6)]).areas(area);
    let w = checks_area.width.saturating_sub(2) as usize;
    let mut lines = Vec::new();
    if let Some(b) = &s.chosen {
        lines.push(Line::from(vec![
            Span::styled(" backup ", t.dim()),
            Span::raw(fit(&b.id, w.saturating_sub(9))),
        ]));
    }
    let label_w = 36.min(w / 2);
    let rows = s.preflight.rows();
    // Each row is its verdict line and a reason line. When they do not all fit (a
    // decomposed installation has two database and two writers rows), passing checks lose
    // their reason line first, then every row but the selected one.
    let room = (checks_area.height as usize).saturating_sub(2 + lines.len());
    let reasons = |all: bool| {
        rows.iter()
            .enumerate()
            .filter(|(i, (_, c))| {
                *i == s.preflight.cursor || all || c.is_none_or(|c| c.status != Status::Pass)
            })
            .count()
    };
    let level = if rows.len() + reasons(true) <= room {
        2
    } else if rows.len() + reasons(false) <= room {
        1
    } else {
        0
    };
    for (i, (kind, check)) in rows.iter().copied().enumerate() {
        let (tag, style) = match check.map(|c| c.status) {
            Some(Status::Pass) => ("PASS", t.ok()),
            Some(Status::Warn) => ("WARN", t.warn()),
            Some(Status::Fail) => ("FAIL", t.bad()),
            None if s.preflight.running => ("....", t.dim()),
            None => ("    ", t.dim()),
        };
        let sel = i == s.preflight.cursor;
        let text = check
            .map(|c| c.label(s.preflight.several(kind)))
            .unwrap_or_else(|| kind.label().to_string());
        let label = format!("{}{:<lw$}", if sel { "›" } else { " " }, text, lw = label_w);
        lines.push(Line::from(vec![
            Span::styled(format!(" [{tag}] "), style),
            Span::styled(label, if sel { t.selected() } else { t.bold() }),
        ]));
        let reason_line = match level {
            2 => true,
            1 => sel || check.is_none_or(|c| c.status != Status::Pass),
            _ => sel,
        };
        if !reason_line {
            continue;
        }
        if let Some(c) = check {
            lines.push(Line::from(Span::raw(format!(
                "        {}",
                fit(&one_line(&c.reason), w.saturating_sub(8))
            ))));
        } else if kind == CheckKind::Archive {
            if let Some((done, total)) = s.preflight.verify {
                let ratio = total
                    .filter(|t| *t > 0)
                    .map(|t| done as f64 / t as f64)
                    .unwrap_or(0.0);
                let bw = w.saturating_sub(36).clamp(10, 50);
                lines.push(Line::from(vec![
                    Span::raw("        "),
                    Span::styled(bar(ratio, bw), t.accent()),
                    Span::raw(format!(
                        " {:>3}% {} of {}",
                        (ratio * 100.0) as u32,
                        human_bytes(done),
                        total.map(human_bytes).unwrap_or_else(|| "?".into())
                    )),
                ]));
            } else {
                lines.push(Line::from(""));
            }
        } else {
            lines.push(Line::from(""));
        }
    }
    let title = if s.preflight.running {
        "Preflight checks (running; nothing is changed)"
    } else {
        "Preflight checks (nothing is changed)"
    };
    f.render_widget(boxed(title, lines), checks_area);

    let fails = s.preflight.failures();
    let mut fix = Vec::new();
    if let Some(c) = s.preflight.selected().filter(|c| !c.fix.is_empty()) {
        fix.push(Line::from(vec![
            Span::styled(
                format!(" {}: ", c.label(s.preflight.several(c.kind))),
                t.bold(),
            ),
            Span::raw(c.fix.clone()),
        ]));
    }
    if !fails.is_empty() {
        fix.push(Line::styled(
            format!(
                " {} check(s) failed: the destructive steps are blocked until they pass (r checks again).",
                fails.len()
            ),
            t.bad(),
        ));
    } else if s.preflight.passed() {
        fix.push(Line::styled(
            " All checks passed or warned: Enter goes on to stopping the services.",
            t.ok(),
        ));
    }
    f.render_widget(boxed_wrap("Fix", fix), fix_area);
}
