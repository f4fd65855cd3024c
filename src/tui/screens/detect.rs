//! Detect: what Rewind found on this host and what it could not find.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::Frame;
use rewind_engine::detect::InstallKind;

use super::{boxed, field, field_fit, fit, pending};
use crate::tui::state::{Loadable, State};
use crate::tui::view::Theme;

pub fn draw(s: &State, t: &Theme, f: &mut Frame, area: Rect) {
    if let Some(lines) = pending(t, &s.installation, "Detecting the GitLab installation") {
        f.render_widget(boxed("Installation", lines), area);
        return;
    }
    let Loadable::Ready(inst) = &s.installation else {
        return;
    };
    let none = t.bad();
    let mut lines = vec![
        field(
            t,
            "kind",
            match inst.kind {
                Some(InstallKind::Omnibus) => "Omnibus package".to_string(),
                Some(InstallKind::Source) => "source install".to_string(),
                None => "not found".to_string(),
            },
            if inst.kind.is_some() { t.bold() } else { none },
        ),
        field(
            t,
            "version",
            inst.version
                .as_ref()
                .map(|v| v.to_string())
                .unwrap_or_else(|| "unknown".into()),
            if inst.version.is_some() {
                t.bold()
            } else {
                none
            },
        ),
        field(
            t,
            "edition",
            inst.edition
                .map(|e| e.as_str().to_string())
                .unwrap_or_else(|| "unknown".into()),
            Default::default(),
        ),
        field(
            t,
            "package",
            inst.package.clone().unwrap_or_else(|| "unknown".into()),
            Default::default(),
        ),
        field(
            t,
            "backups",
            inst.backup_path.display().to_string(),
            Default::default(),
        ),
    ];
    if inst.databases.is_empty() {
        lines.push(field(t, "database", "not found", none));
    }
    let width = area.width.saturating_sub(2) as usize;
    for db in &inst.databases {
        lines.push(field_fit(
            t,
            &format!("db {}", db.name),
            // Cut from the left when narrow: the database and the role stay readable.
            &format!(
                "{} · {} as {}{}",
                db.spec.target(),
                db.spec.dbname,
                db.spec.user,
                if db.database_tasks {
                    ""
                } else {
                    " (shares main)"
                }
            ),
            Default::default(),
            width,
        ));
    }
    lines.push(field(
        t,
        "services",
        match inst.kind {
            Some(InstallKind::Omnibus) => "gitlab-ctl (puma, sidekiq, gitaly, postgresql, …)",
            Some(InstallKind::Source) => "systemd gitlab.target (puma, sidekiq, gitaly)",
            None => "unknown",
        },
        Default::default(),
    ));
    let found_h = lines.len() as u16 + 2;
    let [top, bottom] =
        Layout::vertical([Constraint::Length(found_h), Constraint::Min(3)]).areas(area);
    f.render_widget(boxed("Installation", lines), top);

    let w = bottom.width.saturating_sub(4) as usize;
    let mut looked = Vec::new();
    for fd in &inst.findings {
        let (mark, style) = if fd.found {
            ("✓", t.ok())
        } else {
            ("✗", t.warn())
        };
        let head = format!(" {mark} {:<18} ", fit(&fd.what, 18));
        let rest = format!("{}  {}", fd.path.display(), fd.note);
        looked.push(Line::from(vec![
            Span::styled(head.clone(), style),
            Span::raw(fit(&rest, w.saturating_sub(head.chars().count()))),
        ]));
    }
    if inst.kind.is_none() {
        looked.push(Line::from(""));
        looked.push(Line::styled(
            format!(
                " No GitLab found under {}. Run rewind --root DIR (a host tree) or --backup-dir DIR.",
                s.root.base().display()
            ),
            t.warn(),
        ));
    }
    f.render_widget(boxed("Looked at", looked), bottom);
}
