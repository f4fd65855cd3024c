//! One module per screen; each draws the body of its step.

mod actions;
mod backups;
mod config;
mod confirm;
pub use confirm::{drop_order, thousands};
mod detect;
mod done;
mod postcheck;
mod preflight;
mod repair;
mod restore;
mod resume;

use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Wrap};
use ratatui::Frame;

use super::state::{Loadable, State, Step};
use super::view::Theme;

/// Draw the body of the current step.
pub fn draw(s: &State, t: &Theme, f: &mut Frame, area: Rect) {
    match s.step {
        Step::Resume => resume::draw(s, t, f, area),
        Step::Detect => detect::draw(s, t, f, area),
        Step::SelectBackup => backups::draw(s, t, f, area),
        Step::Preflight => preflight::draw(s, t, f, area),
        Step::StopServices | Step::RollbackPackage | Step::StartServices => {
            actions::draw(s, t, f, area)
        }
        Step::ConfirmDrop if s.on_repo_page() => confirm::draw_repositories(s, t, f, area),
        Step::ConfirmDrop => confirm::draw(s, t, f, area),
        Step::RestoreConfig => config::draw(s, t, f, area),
        Step::PostChecks => postcheck::draw(s, t, f, area),
        Step::SafetySnapshot => confirm::draw_snapshot(s, t, f, area),
        Step::Restore => restore::draw(s, t, f, area),
        Step::Verify => done::draw_verify(s, t, f, area),
        Step::Done => done::draw(s, t, f, area),
        Step::RepairMigrations => repair::draw(s, t, f, area),
    }
}

/// A bordered block with a title.
fn block(title: &str) -> Block<'_> {
    Block::bordered().title(format!(" {title} "))
}

/// A bordered block with an owned title.
fn block_owned(title: String) -> Block<'static> {
    Block::bordered().title(format!(" {title} "))
}

/// A paragraph in a titled block; long lines are cut (values are fitted by the screens).
fn boxed<'a>(title: &'a str, lines: Vec<Line<'a>>) -> Paragraph<'a> {
    Paragraph::new(lines).block(block(title))
}

/// A wrapped paragraph in a titled block, for messages.
fn boxed_wrap<'a>(title: &'a str, lines: Vec<Line<'a>>) -> Paragraph<'a> {
    Paragraph::new(lines)
        .wrap(Wrap { trim: false })
        .block(block(title))
}

/// `label  value` with the label padded.
fn field<'a>(t: &Theme, label: &str, value: impl Into<String>, style: Style) -> Line<'a> {
    // A label as long as the column keeps a space before its value.
    let w = label.chars().count().max(10) + 1;
    Line::from(vec![
        Span::styled(format!(" {label:<w$}"), t.dim()),
        Span::styled(value.into(), style),
    ])
}

/// Like [`field`], with the value cut to fit `width` columns (long paths keep their end).
fn field_fit<'a>(t: &Theme, label: &str, value: &str, style: Style, width: usize) -> Line<'a> {
    let room = width.saturating_sub(13);
    let n = value.chars().count();
    let v = if n <= room {
        value.to_string()
    } else {
        crate::tui::detail::note_cut();
        let tail: String = value.chars().skip(n - room.saturating_sub(1)).collect();
        format!("…{tail}")
    };
    field(t, label, v, style)
}

/// Lines for a loadable that is not ready (loading, failed, unavailable).
fn pending<T>(t: &Theme, l: &Loadable<T>, what: &str) -> Option<Vec<Line<'static>>> {
    match l {
        Loadable::Ready(_) => None,
        Loadable::NotStarted | Loadable::Loading => {
            Some(vec![Line::styled(format!(" {what}…"), t.dim())])
        }
        Loadable::Failed(e) => Some(vec![
            Line::styled(format!(" {what} failed:"), t.bad()),
            Line::from(format!(" {e}")),
        ]),
        Loadable::Unavailable(e) => Some(vec![Line::styled(format!(" {e}"), t.warn())]),
    }
}

/// A text progress bar of `width` cells.
fn bar(ratio: f64, width: usize) -> String {
    let ratio = ratio.clamp(0.0, 1.0);
    let full = (ratio * width as f64).round() as usize;
    let mut s = "█".repeat(full);
    s.push_str(&"░".repeat(width - full));
    s
}

/// `1:02:03` or `2:03`.
fn clock(secs: u64) -> String {
    if secs >= 3600 {
        format!("{}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
    } else {
        format!("{}:{:02}", secs / 60, secs % 60)
    }
}

/// Truncate to `n` characters with an ellipsis.
pub fn fit(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        crate::tui::detail::note_cut();
        let mut out: String = s.chars().take(n.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

/// `text` wrapped to `width` columns, each line indented by one space, in `style`.
fn para(text: &str, width: usize, style: Style) -> Vec<Line<'static>> {
    confirm::wrap(text, width.saturating_sub(2).max(10), 12)
        .into_iter()
        .map(|l| Line::styled(format!(" {l}"), style))
        .collect()
}

/// `text` in lines of at most `width` characters, at most `max` lines (the last cut with
/// `…` when there is more).
pub fn wrap_text(text: &str, width: usize, max: usize) -> Vec<String> {
    confirm::wrap(text, width, max)
}
