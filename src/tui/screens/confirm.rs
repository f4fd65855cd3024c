//! ConfirmDrop: what will be destroyed, and a text input where the database name is typed.
//! SafetySnapshot: where the snapshot goes, and the choice to decline it.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::Frame;

use super::{boxed, fit, pending};
use crate::output::human_bytes;
use crate::tui::state::State;
use crate::tui::update::{drop_blocked, drop_enabled};
use crate::tui::view::Theme;

pub fn draw(s: &State, t: &Theme, f: &mut Frame, area: Rect) {
    let db = s.database.clone().unwrap_or_else(|| "?".into());
    // The file components the same confirmation replaces (previous contents kept).
    let files: Vec<&str> = s
        .chosen
        .as_ref()
        .map(|b| {
            b.components
                .iter()
                .map(String::as_str)
                .filter(|c| *c != "db" && *c != "repositories")
                .collect()
        })
        .unwrap_or_default();
    let files_line = (!files.is_empty()).then(|| {
        format!(
            " Files replaced (old contents kept aside): {}.",
            files.join(", ")
        )
    });
    let inner = area.width.saturating_sub(2).max(1) as usize;
    let files_rows = files_line
        .as_ref()
        .map_or(0, |l| l.chars().count().div_ceil(inner) as u16);
    let [warn_area, list_area, input_area] = Layout::vertical([
        Constraint::Length(4 + files_rows),
        Constraint::Min(4),
        Constraint::Length(5),
    ])
    .areas(area);
    let snap = match (&s.snapshot_taken, s.snapshot_declined) {
        (Some(p), _) => format!("A safety snapshot was already taken: {}", p.display()),
        (None, true) => "The safety snapshot was declined.".to_string(),
        (None, false) => {
            "A safety snapshot (pg_dump -Fc, 0600) is taken first, on the next screen.".into()
        }
    };
    f.render_widget(
        super::boxed_wrap(
            "Danger: this drops every table",
            vec![
                Line::styled(
                    format!(" Everything in {db} is dropped, then the backup is loaded."),
                    t.bad(),
                ),
                Line::from(format!(" {snap}")),
            ]
            .into_iter()
            .chain(files_line.map(Line::from))
            .collect(),
        ),
        warn_area,
    );

    let w = list_area.width.saturating_sub(2) as usize;
    let lines = if let Some(p) = pending(t, &s.inventory, "Listing what would be dropped") {
        p
    } else {
        let inv = s.inventory.ready().cloned().unwrap_or_default();
        let leftovers = inv.items.iter().filter(|i| i.leftover).count();
        let name_w = w.saturating_sub(2 + 10 + 12 + 11 + 5).max(10);
        let mut v = vec![Line::styled(
            format!(
                "  {:<10}{:<nw$}{:>12}{:>11}  {}",
                "kind",
                "name",
                "rows (est)",
                "size",
                "",
                nw = name_w
            ),
            t.dim(),
        )];
        let visible = list_area.height.saturating_sub(4) as usize;
        let max_scroll = inv.items.len().saturating_sub(visible);
        let first = s.inventory_scroll.min(max_scroll);
        for it in inv.items.iter().skip(first).take(visible) {
            let text = format!(
                "  {:<10}{:<nw$}{:>12}{:>11}  ",
                it.kind,
                fit(&it.name, name_w.saturating_sub(1)),
                it.rows.map(|r| r.to_string()).unwrap_or_default(),
                it.bytes.map(human_bytes).unwrap_or_default(),
                nw = name_w
            );
            let mut spans = vec![Span::raw(text)];
            if it.leftover {
                spans.push(Span::styled("new", t.warn()));
            }
            v.push(Line::from(spans));
        }
        v.push(Line::styled(
            format!(
                "  {} objects; {} marked new: not in the backup, added by the failed upgrade{}",
                inv.items.len(),
                leftovers,
                if inv.items.len() > visible {
                    "; ↑↓ scroll"
                } else {
                    ""
                }
            ),
            t.dim(),
        ));
        v
    };
    f.render_widget(boxed("What will be dropped", lines), list_area);

    let enabled = drop_enabled(s);
    let button = if enabled {
        Span::styled(" Drop and restore (Enter) ", t.danger_button())
    } else {
        Span::styled(" Drop and restore (disabled) ", t.dim())
    };
    let mut input = vec![
        Line::from(vec![
            Span::raw(" Type the database name "),
            Span::styled(db.clone(), t.bold()),
            Span::raw(" to confirm:"),
        ]),
        Line::from(vec![
            Span::raw(" > "),
            Span::styled(s.confirm_input.clone(), t.bold()),
            Span::styled("▏", t.accent()),
            Span::raw("   "),
            button,
        ]),
    ];
    if let Some(why) = drop_blocked(s) {
        input.push(Line::styled(format!(" {why}"), t.warn()));
    }
    f.render_widget(super::boxed_wrap("Confirm", input), input_area);
}

pub fn draw_snapshot(s: &State, t: &Theme, f: &mut Frame, area: Rect) {
    let db = s.database.clone().unwrap_or_else(|| "?".into());
    let mut lines = vec![
        Line::from(format!(
            " Before the drop, Rewind saves {db} as it is now with pg_dump -Fc."
        )),
        Line::from(" If the restore goes wrong, pg_restore of this file brings it back."),
        Line::from(""),
    ];
    match (&s.snapshot_taken, s.snapshot_declined) {
        (Some(p), _) => {
            lines.push(Line::styled(
                " Already taken earlier in this session (not taken twice):",
                t.ok(),
            ));
            lines.push(Line::from(format!("   {}", p.display())));
        }
        (None, true) => lines.push(Line::styled(" Declined: no snapshot is taken.", t.bad())),
        (None, false) => {
            lines.push(Line::from(" It will be written (mode 0600) to:"));
            lines.push(Line::styled(
                format!(
                    "   {}",
                    s.snapshot_path
                        .as_ref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|| "(the journal directory)".into())
                ),
                t.bold(),
            ));
            if let Some(c) = s
                .preflight
                .checks
                .iter()
                .find(|c| c.kind == rewind_engine::preflight::CheckKind::FreeDisk)
            {
                lines.push(Line::from(format!("   free space: {}", c.reason)));
            }
        }
    }
    lines.push(Line::from(""));
    lines.push(Line::from(vec![
        Span::raw(" Enter starts: "),
        Span::styled(
            if s.snapshot_taken.is_some() || s.snapshot_declined {
                "drop, then restore"
            } else {
                "snapshot, drop, then restore"
            },
            t.bold(),
        ),
        Span::raw("."),
    ]));
    if s.snapshot_taken.is_none() && !s.snapshot_declined {
        lines.push(Line::styled(
            " d goes on without the snapshot (a second warning follows).",
            t.dim(),
        ));
    }
    f.render_widget(super::boxed_wrap("Safety snapshot", lines), area);
}
