//! Resume: a saved session was found; what was done, and where it continues (or why not).

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::Frame;

use super::boxed;
use crate::tui::state::State;
use crate::tui::view::Theme;

pub fn draw(s: &State, t: &Theme, f: &mut Frame, area: Rect) {
    let Some(offer) = &s.resume else {
        f.render_widget(boxed("Resume", vec![]), area);
        return;
    };
    let sess = &offer.session;
    let mut lines = vec![
        Line::from(format!(
            " A recovery started {} was interrupted.",
            sess.started
        )),
        Line::from(format!(" backup   {}", sess.backup.path.display())),
        Line::from(format!(
            " target   GitLab {}",
            sess.target_version
                .as_ref()
                .map(|v| v.to_string())
                .unwrap_or_else(|| "unknown".into())
        )),
        Line::from(""),
        Line::styled(" Done so far:", t.bold()),
    ];
    if sess.done.is_empty() {
        lines.push(Line::styled("   nothing", t.dim()));
    }
    for d in &sess.done {
        lines.push(Line::from(vec![
            Span::styled("   ✓ ", t.ok()),
            Span::raw(format!("{:<22}", d.step.label())),
            Span::styled(format!("{}  {}", d.at, d.summary), t.dim()),
        ]));
    }
    if let Some(st) = sess.in_progress {
        lines.push(Line::from(vec![
            Span::styled("   … ", t.warn()),
            Span::raw(format!("{} (interrupted)", st.label())),
        ]));
    }
    lines.push(Line::from(""));
    match &offer.decision {
        Ok(p) => {
            lines.push(Line::styled(format!(" Resume: {}.", p.reason), t.ok()));
            for (db, snap) in &p.snapshots {
                lines.push(Line::from(format!(
                    " The safety snapshot of {db}, {}, is kept and not taken again.",
                    snap.display()
                )));
            }
            lines.push(Line::from(
                " Enter resumes (the checks run again first); n starts over.",
            ));
        }
        Err(why) => {
            lines.push(Line::styled(" This session cannot be resumed:", t.bad()));
            for w in why {
                lines.push(Line::styled(format!("   {w}"), t.bad()));
            }
            lines.push(Line::from(" n starts over with what is on the host now."));
        }
    }
    f.render_widget(
        super::boxed_wrap("Resume an interrupted recovery", lines),
        area,
    );
}
