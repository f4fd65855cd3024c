//! SelectBackup: the backups, newest first, and the details of the highlighted one.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::Frame;

use super::{boxed, field, field_fit, fit, pending};
use crate::output::human_bytes;
use crate::tui::state::{BackupRow, State};
use crate::tui::view::Theme;

pub fn draw(s: &State, t: &Theme, f: &mut Frame, area: Rect) {
    if let Some(lines) = pending(t, &s.backups, "Reading the backup directory") {
        f.render_widget(boxed("Backups", lines), area);
        return;
    }
    let rows = s.backups.ready().cloned().unwrap_or_default();
    if rows.is_empty() {
        let dir = s
            .installation
            .ready()
            .map(|i| i.backup_path.display().to_string())
            .unwrap_or_default();
        f.render_widget(
            super::boxed_wrap(
                "Backups",
                vec![
                    Line::styled(format!(" No backup archive in {dir}."), t.warn()),
                    Line::from(" Copy the backup made on the version you roll back to there,"),
                    Line::from(" or start Rewind with --backup-dir DIR."),
                ],
            ),
            area,
        );
        return;
    }
    let wide = area.width >= 110 && !t.full;
    let (list_area, detail_area) = if wide {
        let [a, b] = Layout::horizontal([Constraint::Min(60), Constraint::Length(44)]).areas(area);
        (a, b)
    } else {
        let detail_h = 9.min(area.height / 2);
        let [a, b] =
            Layout::vertical([Constraint::Min(4), Constraint::Length(detail_h)]).areas(area);
        (a, b)
    };
    let installed = s
        .installation
        .ready()
        .and_then(|i| i.version.as_ref())
        .map(|v| v.to_string())
        .unwrap_or_else(|| "unknown".into());
    let inner_w = list_area.width.saturating_sub(2) as usize;
    let comp_w = inner_w.saturating_sub(2 + 17 + 13 + 10 + 8).max(6);
    let mut lines = vec![Line::styled(
        format!(
            "  {:<17}{:<13}{:>9} {:<w$} {}",
            "date",
            "version",
            "size",
            "components",
            "match",
            w = comp_w
        ),
        t.dim(),
    )];
    let visible = list_area.height.saturating_sub(3) as usize;
    let first = s.backup_cursor.saturating_sub(visible.saturating_sub(1));
    for (i, r) in rows.iter().enumerate().skip(first).take(visible) {
        let sel = i == s.backup_cursor;
        let version = r
            .version
            .as_ref()
            .map(|v| v.to_string())
            .unwrap_or_else(|| "?".into());
        let text = format!(
            "{}{:<17}{:<13}{:>9} {:<w$} ",
            if sel { "› " } else { "  " },
            fit(&r.created, 16),
            fit(&version, 12),
            human_bytes(r.size),
            fit(&r.components.join(","), comp_w),
            w = comp_w
        );
        let mark = if r.matches_installed {
            Span::styled("yes", t.ok())
        } else {
            Span::styled("no", t.warn())
        };
        let style = if sel {
            t.selected()
        } else {
            Default::default()
        };
        lines.push(Line::from(vec![Span::styled(text, style), mark]));
    }
    f.render_widget(
        boxed(
            &format!("Backups, newest first (installed: {installed})"),
            lines,
        ),
        list_area,
    );
    if let Some(r) = rows.get(s.backup_cursor) {
        let dw = detail_area.width.saturating_sub(2) as usize;
        f.render_widget(
            super::boxed_wrap("Details", details(t, r, &installed, dw)),
            detail_area,
        );
    }
}

fn details(t: &Theme, r: &BackupRow, installed: &str, width: usize) -> Vec<Line<'static>> {
    let mut v = vec![
        field(t, "id", r.id.clone(), t.bold()),
        field_fit(
            t,
            "file",
            &r.path.display().to_string(),
            Default::default(),
            width,
        ),
        field(
            t,
            "version",
            r.version
                .as_ref()
                .map(|v| v.to_string())
                .unwrap_or_else(|| "unknown".into()),
            Default::default(),
        ),
        field(t, "components", r.components.join(", "), Default::default()),
    ];
    if !r.skipped.is_empty() {
        v.push(field(t, "skipped", r.skipped.join(", "), t.warn()));
    }
    for (k, val) in &r.details {
        v.push(field(t, k, val.clone(), Default::default()));
    }
    v.push(if r.matches_installed {
        Line::styled(" Same version as installed: no rollback needed.", t.ok())
    } else {
        Line::styled(
            format!(
                " Installed is {installed}: picking this rolls GitLab back to {}.",
                r.version
                    .as_ref()
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "?".into())
            ),
            t.warn(),
        )
    });
    v
}
