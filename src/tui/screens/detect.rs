//! Detect: what Rewind found on this host and what it could not find.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::Frame;
use rewind_engine::detect::InstallKind;
use rewind_engine::migrate::triage::{Class, Decision};

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
    let swaps = swap_lines(s, t, area.width.saturating_sub(2) as usize);
    let triage = if swaps.is_empty() {
        triage_lines(s, t, area.width.saturating_sub(2) as usize)
    } else {
        swaps
    };
    let triage_h = if triage.is_empty() {
        0
    } else {
        triage.len() as u16 + 2
    };
    let [top, middle, bottom] = Layout::vertical([
        Constraint::Length(found_h),
        Constraint::Length(triage_h),
        Constraint::Min(3),
    ])
    .areas(area);
    f.render_widget(boxed("Installation", lines), top);
    if !triage.is_empty() {
        let title = if s.interrupted.is_empty() {
            "Failed upgrade: is a rollback needed?"
        } else {
            "Interrupted swap: resolve it before anything else"
        };
        f.render_widget(boxed(title, triage), middle);
    }

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

/// Swaps the journal shows interrupted between their renames, and the two ways out.
fn swap_lines<'a>(s: &State, t: &Theme, width: usize) -> Vec<Line<'a>> {
    if s.interrupted.is_empty() {
        return Vec::new();
    }
    let w = width.saturating_sub(2).max(20);
    let mut out = Vec::new();
    for l in s.interrupted.iter().take(2) {
        for line in super::wrap_text(&format!("A restore stopped mid-swap: {l}."), w, 4) {
            out.push(Line::styled(format!(" {line}"), t.bad()));
        }
    }
    out.push(Line::from(vec![
        Span::styled(" c ", t.key()),
        Span::raw(fit(
            "completes it: the verified restore takes the live name",
            w.saturating_sub(3),
        )),
    ]));
    out.push(Line::from(vec![
        Span::styled(" u ", t.key()),
        Span::raw(fit(
            "reverses it: the failed upgrade's database takes it back",
            w.saturating_sub(3),
        )),
    ]));
    out
}

/// The triage's verdict, when an upgrade since the newest backup was found: the verdict,
/// what says so, the failure and its class, the first commands (at most 7 lines).
fn triage_lines<'a>(s: &State, t: &Theme, width: usize) -> Vec<Line<'a>> {
    let Loadable::Ready(tr) = &s.triage else {
        return Vec::new();
    };
    if !tr.upgrade.failed_upgrade {
        return Vec::new();
    }
    let c = &tr.classification;
    let room = width.saturating_sub(13);
    let style = match c.decision {
        Decision::RollbackNeeded => t.bad(),
        Decision::FixForward => t.warn(),
        Decision::NothingFailed => t.ok(),
    };
    let mut out = vec![Line::styled(
        format!(" {}", fit(&c.verdict, width.saturating_sub(1))),
        style,
    )];
    let signs = tr.upgrade.summary();
    let signs = signs
        .strip_prefix("upgrade since the backup: ")
        .unwrap_or(&signs);
    out.push(field(t, "signs", fit(signs, room), Default::default()));
    let failure = c.failure.as_ref().map(|f| f.summary());
    // GitLab's message for an unfinished background migration is long: the evidence says it.
    if c.class != Class::UnfinishedBackgroundMigration {
        if let Some(f) = &failure {
            out.push(field(t, "failure", fit(f, room), Default::default()));
        }
    }
    out.push(field(
        t,
        "class",
        fit(c.class.describe(), room),
        Default::default(),
    ));
    for e in c.evidence.iter().take(1) {
        if Some(e) != failure.as_ref() {
            out.push(field(t, "shows", fit(e, room), Default::default()));
        }
    }
    if c.decision == Decision::RollbackNeeded {
        out.push(field(
            t,
            "next",
            fit(
                "Enter: choose the backup; the loss is shown before the drop",
                room,
            ),
            Default::default(),
        ));
    }
    let mut cut = c.commands.len() > 2;
    for (i, cmd) in c.commands.iter().take(2).enumerate() {
        let label = if i == 0 { "run" } else { "" };
        let text = format!("{}. {cmd}", i + 1);
        cut |= text.chars().count() > room;
        out.push(field(t, label, fit(&text, room), t.bold()));
    }
    if cut {
        out.truncate(6);
        out.push(field(
            t,
            "",
            "`rewind triage` prints the commands in full",
            t.dim(),
        ));
    }
    out.truncate(7);
    out
}
