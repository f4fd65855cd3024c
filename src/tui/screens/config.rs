//! RestoreConfig: the configuration archives with their dates (the one nearest before the
//! backup marked), what the shown one differs in from the live `/etc/gitlab` (files, and
//! gitlab-secrets.json's key names, never values), and the restore of gitlab-secrets.json
//! and gitlab.rb on confirmation.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::Frame;

use super::{boxed, boxed_wrap, fit, pending};
use crate::output::human_bytes;
use crate::tui::state::{Loadable, State};
use crate::tui::view::Theme;
use rewind_engine::recovery::config::FileState;

pub fn draw(s: &State, t: &Theme, f: &mut Frame, area: Rect) {
    let c = &s.config;
    let archives = c.archives.as_ref().and_then(|a| a.ready());
    // No archive: two lines of advice.
    let n = archives.map_or(1, |v| v.len().max(2));
    let list_h = (n.min(4) as u16) + 2;
    let [list_area, diff_area, act_area] = Layout::vertical([
        Constraint::Length(list_h),
        Constraint::Min(5),
        Constraint::Length(4),
    ])
    .areas(area);

    // The archives.
    let w = list_area.width.saturating_sub(2) as usize;
    let lines = match c.archives.as_ref() {
        None => vec![Line::styled(" Listing the configuration archives…", t.dim())],
        Some(l) => pending(t, l, "Listing the configuration archives").unwrap_or_else(|| {
            let v = archives.map(Vec::as_slice).unwrap_or_default();
            if v.is_empty() {
                return super::para(
                    "None: `gitlab-ctl backup-etc` writes them. Restore gitlab-secrets.json and gitlab.rb from your own copy, if this host lost them.",
                    w,
                    t.warn(),
                );
            }
            let visible = list_h.saturating_sub(2) as usize;
            let first = c.cursor.saturating_sub(visible.saturating_sub(1));
            v.iter()
                .enumerate()
                .skip(first)
                .take(visible)
                .map(|(i, a)| {
                    let mark = if i == c.cursor { "›" } else { " " };
                    // To the minute: `2026-11-15 09:46 UTC`.
                    let date = a
                        .created
                        .as_deref()
                        .map(|d| d.replace('T', " ").chars().take(16).collect::<String>() + " UTC")
                        .unwrap_or_else(|| "time unknown".into());
                    let tail = if a.nearest { " ← nearest" } else { "" };
                    let size = human_bytes(a.size);
                    let name_w = a.name.chars().count().max(39) + 1;
                    let wide = w >= 2 + name_w + 21 + 10 + 10;
                    let name_w = name_w.min(w.saturating_sub(2 + 21 + 10)).max(12);
                    let text = format!(
                        "{mark} {:<nw$}{:<21}{}",
                        fit(&a.name, name_w.saturating_sub(1)),
                        date,
                        if wide { format!("{size:>9} ") } else { String::new() },
                        nw = name_w
                    );
                    let style = if i == c.cursor { t.selected() } else { t.dim() };
                    Line::from(vec![Span::styled(text, style), Span::styled(tail, t.ok())])
                })
                .collect()
        }),
    };
    f.render_widget(
        boxed(
            "Archives in /etc/gitlab/config_backup · ← nearest before the backup",
            lines,
        ),
        list_area,
    );

    // What differs.
    let dw = diff_area.width.saturating_sub(2) as usize;
    let mut d = Vec::new();
    match c.diff.as_ref() {
        None => d.push(Line::styled(" Nothing to compare.", t.dim())),
        Some(Loadable::Ready(diff)) => {
            match &diff.secrets {
                None => d.push(Line::styled(
                    " gitlab-secrets.json: not in this archive.",
                    t.warn(),
                )),
                Some(sd) if sd.identical() => d.push(Line::styled(
                    format!(
                        " gitlab-secrets.json: the same {} keys as the live file.",
                        sd.same
                    ),
                    t.ok(),
                )),
                Some(sd) => {
                    d.extend(super::para(
                        &format!(
                            "gitlab-secrets.json differs: {} key(s) with other values, {} missing from the live file, {} only in it{}",
                            sd.different.len(),
                            sd.missing_live.len(),
                            sd.only_live.len(),
                            if sd.live_readable { "" } else { " (live file unreadable)" }
                        ),
                        dw,
                        t.warn(),
                    ));
                    d.push(Line::styled(
                        "   (key names only; values are never shown)",
                        t.dim(),
                    ));
                    for (label, keys) in [
                        ("other value", &sd.different),
                        ("missing live", &sd.missing_live),
                        ("only live", &sd.only_live),
                    ] {
                        if !keys.is_empty() {
                            d.push(Line::from(format!("   {label:<13}{}", keys.join(", "))));
                        }
                    }
                }
            }
            if diff.files.is_empty() {
                d.push(Line::styled(
                    format!(" Files: all {} the same.", diff.unchanged),
                    t.ok(),
                ));
            } else {
                let word = |st: FileState| match st {
                    FileState::Same => "same",
                    FileState::Differs => "differs",
                    FileState::OnlyInArchive => "only in archive",
                    FileState::OnlyLive => "only live",
                    FileState::KindDiffers => "file/dir differs",
                };
                d.extend(super::para(
                    &format!(
                        "Files ({} the same): {}",
                        diff.unchanged,
                        diff.files
                            .iter()
                            .map(|x| format!("{} {}", x.name, word(x.state)))
                            .collect::<Vec<_>>()
                            .join("; ")
                    ),
                    dw,
                    t.bold(),
                ));
            }
        }
        Some(l) => {
            d.extend(pending(t, l, "Comparing with the live /etc/gitlab").unwrap_or_default())
        }
    }
    let title = match c.selected() {
        Some(a) => format!("{} vs the live /etc/gitlab", a.name),
        None => "Compared with the live /etc/gitlab".into(),
    };
    f.render_widget(boxed(&title, d), diff_area);

    // The decision.
    let would = c.would_restore();
    let act = match &c.result {
        Some(Ok(done)) => vec![
            Line::styled(format!(" ✓ {done}"), t.ok()),
            Line::from(" Enter goes on: the next step reconfigures and starts GitLab."),
        ],
        Some(Err(e)) => vec![
            Line::styled(format!(" ✗ {e}"), t.bad()),
            Line::from(" r tries again, s goes on without."),
        ],
        None if c.running => vec![Line::styled(" Restoring…", t.dim())],
        None if c.selected().is_none() => vec![Line::from(
            " No archive to restore from. Enter goes on to start GitLab.",
        )],
        None if would.is_empty() => vec![Line::from(
            " Both files match this archive: nothing to restore. Enter goes on.",
        )],
        None => vec![
            Line::from(vec![
                Span::styled(" y ", t.key()),
                Span::raw(format!("restores {}; ", would.join(" and "))),
                Span::styled("s", t.key()),
                Span::raw(" goes on without."),
            ]),
            Line::styled(
                " Without the backup's secrets, CI variables, 2FA and runner tokens fail.",
                t.dim(),
            ),
        ],
    };
    f.render_widget(
        boxed_wrap("Restore gitlab-secrets.json and gitlab.rb", act),
        act_area,
    );
}
