//! ConfirmDrop: what will be destroyed, and a text input where the database name is typed.
//! SafetySnapshot: where the snapshot goes, and the choice to decline it.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;

use ratatui::widgets::{Cell, Row, Table};

use super::{fit, pending};
use crate::output::human_bytes;
use crate::tui::state::{DropItem, Inventory, Loadable, State};
use crate::tui::update::{created_since, drop_blocked, drop_enabled};
use crate::tui::view::Theme;

pub fn draw(s: &State, t: &Theme, f: &mut Frame, area: Rect) {
    let inv = s.confirm_inventory();
    let db = inv
        .map(|i| i.database.clone())
        .or_else(|| s.database.clone())
        .unwrap_or_else(|| "?".into());
    let count = s.drop_databases().len();
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
    let snap = match (s.snapshots_taken.get(&db), s.snapshot_declined) {
        (Some(p), _) => format!("A safety snapshot was already taken: {}", p.display()),
        (None, true) => "The safety snapshot was declined.".to_string(),
        (None, false) => {
            "A safety snapshot (pg_dump -Fc, 0600) is taken first, on the next screen.".into()
        }
    };
    let mut warn = Vec::new();
    if count > 1 {
        warn.push(Line::styled(
            format!(
                " Database {} of {count}: each database is confirmed by its own name ({}).",
                s.confirm_index + 1,
                s.drop_databases().join(", ")
            ),
            t.bold(),
        ));
    }
    let beside = s.strategy.ready().filter(|v| v.beside());
    if beside.is_some() {
        warn.push(Line::styled(
            format!(
                " {db} is replaced: the backup is loaded into a new database beside it, verified, then swapped in."
            ),
            t.warn(),
        ));
        warn.push(Line::styled(
            format!(
                " The live database is kept as {}, nothing is dropped.",
                State::kept_name(&db)
            ),
            t.ok(),
        ));
    } else {
        warn.push(Line::styled(
            format!(" Everything in {db} is dropped, then the backup is loaded."),
            t.bad(),
        ));
        warn.push(Line::from(format!(" {snap}")));
    }
    // The first reason, wrapped with the box (the others are in the log and on the next
    // screen).
    if let Some(st) = s.strategy.ready() {
        warn.push(Line::styled(
            format!(
                " Strategy: {}: {}",
                st.strategy.label(),
                st.reasons.first().map(String::as_str).unwrap_or("")
            ),
            t.dim(),
        ));
    }
    warn.extend(files_line.map(Line::from));
    // Sized to the warning as it wraps (the snapshot's path is long), never cut.
    let warn_rows = Paragraph::new(warn.clone())
        .wrap(Wrap { trim: false })
        .line_count(area.width.saturating_sub(2).max(1)) as u16;
    let [warn_area, list_area, input_area] = Layout::vertical([
        Constraint::Length(warn_rows + 2),
        Constraint::Min(4),
        Constraint::Length(5),
    ])
    .areas(area);
    f.render_widget(
        super::boxed_wrap(
            if beside.is_some() {
                "Replace the database (the live one is kept)"
            } else {
                "Danger: this drops every table"
            },
            warn,
        ),
        warn_area,
    );

    draw_list(s, t, f, list_area, &db);
    let enabled = drop_enabled(s);
    let label = if s.confirm_index + 1 < count {
        "Confirm, next database"
    } else if beside.is_some() {
        "Restore beside and swap"
    } else {
        "Drop and restore"
    };
    let button = if enabled {
        Span::styled(format!(" {label} (Enter) "), t.danger_button())
    } else {
        Span::styled(format!(" {label} (disabled) "), t.dim())
    };
    let mut input = vec![
        Line::from(vec![
            Span::raw(" Type the database name "),
            Span::styled(db.clone(), t.bold()),
            Span::raw(" to confirm:"),
        ]),
        Line::from(vec![
            Span::raw(" > "),
            Span::styled(s.confirm_input().to_string(), t.bold()),
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

/// The salvage line of the drop screen, cut to `width`: the offer (when rows were created
/// since the backup), the salvage running, done (where) or failed. `(text, done)`.
fn salvage_line(s: &State, width: usize) -> Option<(String, bool)> {
    let text = match &s.salvage {
        Loadable::Loading => (
            "Salvaging the rows created since the backup…".to_string(),
            false,
        ),
        Loadable::Ready(d) => {
            // The end of the path is what tells salvages apart: cut at the front.
            let head = format!("Salvaged {} rows ({} tables) to ", d.rows, d.tables);
            let path = d.dir.display().to_string();
            let room = width.saturating_sub(head.chars().count());
            let n = path.chars().count();
            let path = if n > room && room > 1 {
                crate::tui::detail::note_cut();
                let tail: String = path.chars().skip(n - (room - 1)).collect();
                format!("…{tail}")
            } else {
                path
            };
            (format!("{head}{path}"), true)
        }
        Loadable::Failed(e) => (format!("Salvage failed: {e}"), false),
        _ if created_since(s) > 0 => (
            "Ctrl-S: salvage the rows created since first (CSV, re-imported after)".to_string(),
            false,
        ),
        _ => return None,
    };
    Some((fit(&text.0, width), text.1))
}

/// Words of `text` in lines of at most `width` characters, at most `max` lines (the last
/// one cut with `…` when there is more).
pub(super) fn wrap(text: &str, width: usize, max: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut cur = String::new();
    for word in text.split_whitespace() {
        if !cur.is_empty() && cur.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(word);
    }
    if !cur.is_empty() {
        lines.push(cur);
    }
    if lines.len() > max {
        crate::tui::detail::note_cut();
        lines.truncate(max);
        let last = &mut lines[max - 1];
        let keep: String = last.chars().take(width.saturating_sub(1)).collect();
        *last = format!("{keep}…");
    }
    lines.into_iter().map(|l| fit(&l, width)).collect()
}

pub fn draw_snapshot(s: &State, t: &Theme, f: &mut Frame, area: Rect) {
    let dbs = s.drop_databases();
    let names = if dbs.is_empty() {
        s.database.clone().unwrap_or_else(|| "?".into())
    } else {
        dbs.join(" and ")
    };
    if let Some(st) = s.strategy.ready().filter(|v| v.beside()) {
        let w = area.width.saturating_sub(4).max(20) as usize;
        let mut lines = Vec::new();
        let para = |text: &str, style| {
            super::wrap_text(text, w, 4)
                .into_iter()
                .map(move |l| Line::styled(format!(" {l}"), style))
        };
        lines.extend(para(
            &format!("No safety snapshot is needed: the restore runs beside {names}, which is kept whole."),
            t.bold(),
        ));
        lines.push(Line::from(""));
        lines.push(Line::from(
            " 1. create a new database like it and load the backup into it",
        ));
        lines.push(Line::from(
            " 2. verify it there (the live database is not touched until then)",
        ));
        lines.push(Line::from(
            " 3. swap: end the sessions left on the live database, then rename",
        ));
        for db in if dbs.is_empty() {
            vec![names.clone()]
        } else {
            dbs.clone()
        } {
            lines.push(Line::styled(
                format!("    {db} -> {}", State::kept_name(&db)),
                t.ok(),
            ));
        }
        lines.push(Line::from("    and the new database -> the live name"));
        lines.push(Line::from(""));
        lines.extend(para(
            "A failure before the swap leaves the live database as it is and removes the new one. After it, `rewind undo` swaps back; `rewind cleanup` removes the kept database once GitLab is healthy.",
            Default::default(),
        ));
        lines.extend(para(&format!("Strategy: {}.", st.line()), t.dim()));
        lines.push(Line::from(""));
        lines.push(Line::from(vec![
            Span::raw(" Enter starts: "),
            Span::styled("load beside, verify, then swap", t.bold()),
            Span::raw("."),
        ]));
        f.render_widget(
            super::boxed_wrap("No snapshot: restore beside", lines),
            area,
        );
        return;
    }
    let missing = s.without_snapshot();
    let intro = if missing.is_empty() && !s.snapshots_taken.is_empty() {
        format!(" Rewind saved {names} with pg_dump -Fc before the package step,")
            + " as the failed upgrade left it."
    } else {
        format!(" Before the drop, Rewind saves {names} as it is now with pg_dump -Fc.")
    };
    let mut lines = vec![
        Line::from(intro),
        Line::from(" If the restore goes wrong, pg_restore of this file brings it back."),
        Line::from(""),
    ];
    for (db, p) in &s.snapshots_taken {
        lines.push(Line::styled(
            format!(" {db}: taken earlier in this recovery (reused, not taken twice):"),
            t.ok(),
        ));
        lines.push(Line::from(format!("   {}", p.display())));
    }
    if s.snapshot_declined && !missing.is_empty() {
        lines.push(Line::styled(
            format!(" Declined: no snapshot of {} is taken.", missing.join(", ")),
            t.bad(),
        ));
    } else if !missing.is_empty() {
        lines.push(Line::from(" Written (mode 0600) to:"));
        for db in &missing {
            lines.push(Line::styled(
                format!(
                    "   {}",
                    s.journal_dir
                        .as_ref()
                        .map(|d| d
                            .join("snapshots")
                            .join(format!("{db}-<UTC time>.dump"))
                            .display()
                            .to_string())
                        .unwrap_or_else(|| "(the journal directory)".into())
                ),
                t.bold(),
            ));
        }
        lines.push(Line::styled(
            "   (the exact path is shown once it is written)",
            t.dim(),
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
    let take = !s.snapshot_declined && !missing.is_empty();
    lines.push(Line::from(""));
    lines.push(Line::from(vec![
        Span::raw(" Enter starts: "),
        Span::styled(
            if take {
                "snapshot, drop, then restore"
            } else {
                "drop, then restore"
            },
            t.bold(),
        ),
        Span::raw("."),
    ]));
    if take {
        lines.push(Line::styled(
            " d goes on without the snapshot (a second warning follows).",
            t.dim(),
        ));
    }
    f.render_widget(super::boxed_wrap("Safety snapshot", lines), area);
}

/// The repositories page of the drop confirmation: what gitaly-backup's
/// `-remove-all-repositories` deletes, the repositories pushed to since the backup, and
/// the choice to bundle them aside first.
pub fn draw_repositories(s: &State, t: &Theme, f: &mut Frame, area: Rect) {
    let plan = s.repo_plan();
    let storages = plan.map(|p| p.storages.join(",")).filter(|x| !x.is_empty());
    let inner = area.width.saturating_sub(2).max(1) as usize;
    let mut warn = Vec::new();
    match (&s.repositories, plan) {
        (crate::tui::state::Loadable::Failed(e), _) => {
            warn.extend(super::para(
                &format!("Cannot say what gitaly-backup would replace: {e}"),
                inner,
                t.bad(),
            ));
            warn.extend(super::para(
                "s leaves the repositories out; restore them later with rewind restore.",
                inner,
                t.bold(),
            ));
        }
        (_, Some(p)) => {
            match &storages {
                Some(st) => warn.extend(super::para(
                    &format!(
                        "gitaly-backup restore -remove-all-repositories {st} deletes every repository on {st}, then restores the backup's."
                    ),
                    inner,
                    t.bad(),
                )),
                None => warn.extend(super::para(
                    "The backup was limited to some repositories: gitaly-backup replaces those, nothing else is removed.",
                    inner,
                    t.bold(),
                )),
            }
            warn.extend(super::para(
                "What was pushed since the backup is lost unless bundled first. Gitaly must be running (checked before the drop).",
                inner,
                t.bold(),
            ));
            if p.server_side {
                warn.extend(super::para(
                    "The repositories are in Gitaly's backup storage (-server-side).",
                    inner,
                    t.bold(),
                ));
            }
        }
        _ => warn.push(Line::styled(
            " Listing the repositories pushed since the backup…",
            t.dim(),
        )),
    }
    let warn_rows = warn.len() as u16;
    let [warn_area, list_area, choice_area] = Layout::vertical([
        Constraint::Length(warn_rows + 2),
        Constraint::Min(3),
        Constraint::Length(5),
    ])
    .areas(area);
    f.render_widget(
        super::boxed("Repositories: replaced with the backup's", warn),
        warn_area,
    );

    let pushed = plan.map(|p| &p.pushed);
    let w = list_area.width.saturating_sub(2) as usize;
    let (title, lines) = match pushed {
        Some(Ok(v)) if v.is_empty() => (
            "Pushed to since the backup: none".to_string(),
            vec![Line::styled(
                " No push event since the backup in the live database.",
                t.ok(),
            )],
        ),
        Some(Ok(v)) => {
            let visible = list_area.height.saturating_sub(3) as usize;
            let first = s.inventory_scroll.min(v.len().saturating_sub(visible));
            let name_w = w.saturating_sub(2 + 8 + 22).max(10);
            let mut lines = vec![Line::styled(
                format!(
                    "  {:<nw$}{:>8}  {}",
                    "project",
                    "pushes",
                    "last push (UTC)",
                    nw = name_w
                ),
                t.dim(),
            )];
            for r in v.iter().skip(first).take(visible) {
                lines.push(Line::from(format!(
                    "  {:<nw$}{:>8}  {}",
                    fit(&r.project, name_w.saturating_sub(1)),
                    r.pushes,
                    fit(&r.last_push, 20),
                    nw = name_w
                )));
            }
            (
                format!(
                    "Pushed to since the backup: {}{}",
                    v.len(),
                    if v.len() > visible {
                        " (↑↓ scroll)"
                    } else {
                        ""
                    }
                ),
                lines,
            )
        }
        Some(Err(e)) => (
            "Pushed to since the backup: not listed".to_string(),
            vec![Line::styled(format!(" {e}"), t.warn())],
        ),
        None => ("Pushed to since the backup".to_string(), Vec::new()),
    };
    f.render_widget(super::boxed_wrap(&title, lines), list_area);

    let what = match pushed {
        Some(Ok(v)) => format!("the {} pushed repositories", v.len()),
        _ => "the pushed repositories (if listed then)".into(),
    };
    let tick = if s.repo_bundle { "[x]" } else { "[ ]" };
    let mut choice = vec![
        Line::from(vec![
            Span::styled(" b ", t.key()),
            Span::raw(format!(
                "{tick} bundle {what} aside first (git bundle, 0600)"
            )),
        ]),
        Line::from(vec![
            Span::styled(" y ", t.key()),
            Span::styled("replace the repositories with the backup's", t.bold()),
        ]),
        Line::from(vec![
            Span::styled(" s ", t.key()),
            Span::raw("leave them out of this restore (databases and files still restored)"),
        ]),
    ];
    if let Some(why) = drop_blocked(s) {
        choice.push(Line::styled(format!(" {why}"), t.warn()));
    }
    f.render_widget(
        super::boxed("Confirm the repositories", choice),
        choice_area,
    );
}

/// The objects of `inv` in the order the drop list shows them: the failed upgrade's
/// (not in the backup) first, then the rest, each group in the engine's order.
pub fn drop_order(inv: &Inventory) -> Vec<&DropItem> {
    let mut v: Vec<&DropItem> = inv.items.iter().filter(|i| i.leftover).collect();
    v.extend(inv.items.iter().filter(|i| !i.leftover));
    v
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let d = n.to_string();
    let mut out = String::new();
    for (i, c) in d.chars().enumerate() {
        if i > 0 && (d.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Objects, estimated rows and bytes of one database's drop.
fn totals(inv: &Inventory) -> (usize, u64, u64) {
    let rows = inv
        .items
        .iter()
        .filter_map(|i| i.rows)
        .map(|r| r.max(0) as u64)
        .sum();
    let bytes = inv.items.iter().filter_map(|i| i.bytes).sum();
    (inv.items.len(), rows, bytes)
}

/// The drop list: what the restore loses (since the backup), the salvage offer, then a
/// table of the objects of the database being confirmed (the failed upgrade's first and
/// marked), its totals, and the other databases' totals.
fn draw_list(s: &State, t: &Theme, f: &mut Frame, list_area: Rect, db: &str) {
    let inv = s.confirm_inventory();
    let beside = s.strategy.ready().is_some_and(|v| v.beside());
    // The list's position goes in the title once it scrolls (known after the layout).
    let title = |pos: Option<String>| {
        let what = if beside {
            format!("What {db} holds now (kept, renamed aside)")
        } else {
            format!("What will be dropped in {db}")
        };
        match pos {
            Some(p) => format!("{what} ({p})"),
            None => what,
        }
    };
    // Beside, nothing is dropped or truncated: the objects are listed by their kind.
    let kind_of = |k: &str| -> String {
        if !beside {
            return k.to_string();
        }
        match k.strip_prefix("drop ") {
            Some(kind) => kind.to_string(),
            None if k == "truncate" => "table".into(),
            None => k.to_string(),
        }
    };
    let block = super::block_owned(title(None));
    let inner = block.inner(list_area);
    f.render_widget(block, list_area);
    let w = inner.width as usize;
    if let Some(p) = pending(t, &s.inventory, "Listing what would be dropped") {
        f.render_widget(Paragraph::new(p), inner);
        return;
    }
    let Some(inv) = inv else {
        return;
    };
    let others: Vec<String> = s
        .inventory
        .ready()
        .map(|all| {
            all.iter()
                .filter(|i| i.database != inv.database)
                .map(|i| {
                    let (n, rows, bytes) = totals(i);
                    format!(
                        "{}: {n} objects, {} rows, {}",
                        i.database,
                        thousands(rows),
                        human_bytes(bytes)
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let foot_h = 1 + u16::from(!others.is_empty());
    // What the restore throws away, first: at most 4 lines, fewer when the list would keep
    // less than 3 rows (below its header, above the totals).
    let salvage = salvage_line(s, w.saturating_sub(2).max(20));
    let room = (inner.height as usize)
        .saturating_sub(foot_h as usize + 1 + 3 + usize::from(salvage.is_some()))
        .clamp(1, 4);
    let mut head: Vec<Line> = inv
        .since_backup
        .as_deref()
        .map(|text| wrap(text, w.saturating_sub(2).max(20), room))
        .unwrap_or_default()
        .into_iter()
        .map(|l| Line::styled(format!(" {l}"), t.warn()))
        .collect();
    if let Some((text, ok)) = salvage {
        head.push(Line::styled(
            format!(" {text}"),
            if ok { t.ok() } else { t.accent() },
        ));
    }
    let [head_area, table_area, foot_area] = Layout::vertical([
        Constraint::Length(head.len() as u16),
        Constraint::Min(2),
        Constraint::Length(foot_h),
    ])
    .areas(inner);
    f.render_widget(Paragraph::new(head), head_area);

    let items = drop_order(inv);
    let kind_w = items
        .iter()
        .map(|i| kind_of(&i.kind).chars().count())
        .max()
        .unwrap_or(4)
        .clamp(4, 17) as u16;
    let widths = [
        Constraint::Length(kind_w),
        Constraint::Fill(1),
        Constraint::Length(13),
        Constraint::Length(10),
        Constraint::Length(3),
    ];
    // The name column: what is left after the others and the spacing.
    let name_w = (table_area.width as usize)
        .saturating_sub(kind_w as usize + 13 + 10 + 3 + 4 + 2)
        .max(8);
    let visible = (table_area.height as usize).saturating_sub(1).max(1);
    let cursor = s.drop_cursor.min(items.len().saturating_sub(1));
    let first = (cursor + 1).saturating_sub(visible);
    let rows: Vec<Row> = items
        .iter()
        .enumerate()
        .skip(first)
        .take(visible)
        .map(|(i, it)| {
            let style = if i == cursor {
                t.selected()
            } else if it.leftover {
                t.warn()
            } else {
                ratatui::style::Style::default()
            };
            Row::new(vec![
                Cell::from(fit(&kind_of(&it.kind), kind_w as usize)),
                Cell::from(fit(&it.name, name_w)),
                Cell::from(
                    Line::from(
                        it.rows
                            .map(|r| thousands(r.max(0) as u64))
                            .unwrap_or_default(),
                    )
                    .right_aligned(),
                ),
                Cell::from(
                    Line::from(it.bytes.map(human_bytes).unwrap_or_default()).right_aligned(),
                ),
                Cell::from(if it.leftover { "new" } else { "" }),
            ])
            .style(style)
        })
        .collect();
    let header = Row::new(vec![
        Cell::from("kind"),
        Cell::from("name"),
        Cell::from(Line::from("rows (est)").right_aligned()),
        Cell::from(Line::from("size").right_aligned()),
        Cell::from(""),
    ])
    .style(t.dim());
    f.render_widget(
        Table::new(rows, widths).header(header).column_spacing(1),
        Rect {
            x: table_area.x + 1,
            width: table_area.width.saturating_sub(2),
            ..table_area
        },
    );

    let (n, total_rows, bytes) = totals(inv);
    let leftovers = items.iter().filter(|i| i.leftover).count();
    let mut foot = vec![Line::from(vec![
        Span::styled(
            format!(
                " {db}: {n} objects, {} rows, {}",
                thousands(total_rows),
                human_bytes(bytes)
            ),
            t.bold(),
        ),
        Span::styled(format!(" · {leftovers} new"), t.dim()),
    ])];
    if !others.is_empty() {
        foot.push(Line::styled(
            format!(" also confirmed: {}", others.join("; ")),
            t.dim(),
        ));
    }
    let foot: Vec<Line> = foot
        .into_iter()
        .map(|l| {
            let text: String = l.spans.iter().map(|s| s.content.as_ref()).collect();
            if text.chars().count() > w {
                Line::styled(fit(&text, w), t.dim())
            } else {
                l
            }
        })
        .collect();
    f.render_widget(Paragraph::new(foot), foot_area);
    if items.len() > visible {
        let pos = format!(
            "{}-{} of {}, ↑↓",
            first + 1,
            (first + visible).min(items.len()),
            items.len()
        );
        f.render_widget(super::block_owned(title(Some(pos))), list_area);
    }
}
