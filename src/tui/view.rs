//! Rendering: `view(&State, &mut Frame)`. The frame is a header (step, banner), the body of
//! the current screen, an optional log pane, a notice line and the key bar; the help overlay
//! and questions draw on top.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};
use ratatui::Frame;
use rewind_engine::progress::Level;

use super::screens;
use super::state::{Loadable, Modal, State, Step};

/// Colours and emphasis, honouring NO_COLOR.
#[derive(Debug, Clone, Copy)]
pub struct Theme {
    pub color: bool,
    /// Drawn for the detail view, where nothing needs cutting: no side panes.
    pub full: bool,
}

impl Theme {
    fn fg(&self, c: Color) -> Style {
        if self.color {
            Style::default().fg(c)
        } else {
            Style::default()
        }
    }
    pub fn ok(&self) -> Style {
        self.fg(Color::Green)
    }
    pub fn warn(&self) -> Style {
        self.fg(Color::Yellow)
    }
    pub fn bad(&self) -> Style {
        self.fg(Color::Red).add_modifier(Modifier::BOLD)
    }
    pub fn dim(&self) -> Style {
        if self.color {
            Style::default().fg(Color::DarkGray)
        } else {
            Style::default()
        }
    }
    pub fn bold(&self) -> Style {
        Style::default().add_modifier(Modifier::BOLD)
    }
    pub fn key(&self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }
    pub fn accent(&self) -> Style {
        self.fg(Color::Cyan)
    }
    pub fn selected(&self) -> Style {
        Style::default().add_modifier(Modifier::REVERSED)
    }
    pub fn banner(&self) -> Style {
        if self.color {
            Style::default()
                .fg(Color::Black)
                .bg(Color::Yellow)
                .add_modifier(Modifier::BOLD)
        } else {
            Style::default().add_modifier(Modifier::REVERSED | Modifier::BOLD)
        }
    }
    pub fn danger_button(&self) -> Style {
        if self.color {
            Style::default()
                .fg(Color::White)
                .bg(Color::Red)
                .add_modifier(Modifier::BOLD)
        } else {
            Style::default().add_modifier(Modifier::REVERSED | Modifier::BOLD)
        }
    }
    pub fn level(&self, l: Level) -> Style {
        match l {
            Level::Info => Style::default(),
            Level::Warn => self.warn(),
            Level::Error => self.bad(),
        }
    }
}

/// Draw the whole wizard.
pub fn view(s: &State, f: &mut Frame) {
    let t = Theme {
        color: s.color,
        full: false,
    };
    let area = f.area();
    let banner_h = u16::from(s.banner.is_some());
    let log_h = if s.log_visible {
        (area.height / 3).clamp(4, 12)
    } else {
        0
    };
    let notice_h = match &s.notice {
        Some(n) if n.chars().count() + 3 > area.width as usize => 2,
        Some(_) => 1,
        None => 0,
    };
    let [banner, header, body, log, notice, keys] = Layout::vertical([
        Constraint::Length(banner_h),
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(log_h),
        Constraint::Length(notice_h),
        Constraint::Length(1),
    ])
    .areas(area);
    if let Some(b) = &s.banner {
        f.render_widget(
            Paragraph::new(Line::from(format!(" {b} "))).style(t.banner()),
            banner,
        );
    }
    draw_header(s, &t, f, header);
    super::detail::take_cuts();
    screens::draw(s, &t, f, body);
    if s.log_visible {
        draw_log(s, &t, f, log, "Log (l hides, PgUp/PgDn scroll)");
    }
    // Something on the screen was cut: the key bar offers the detail view.
    let notice_cut = s
        .notice
        .as_ref()
        .is_some_and(|n| n.chars().count() + 3 > 2 * area.width as usize);
    let cut = super::detail::take_cuts() > 0
        || notice_cut
        || super::detail::touches_edge(f.buffer_mut(), body);
    if let Some(n) = &s.notice {
        f.render_widget(
            Paragraph::new(Line::from(vec![
                Span::styled(" ! ", t.warn()),
                Span::raw(n),
            ]))
            .wrap(Wrap { trim: false }),
            notice,
        );
    }
    draw_keys(s, &t, f, keys, cut);
    if let Some(m) = &s.modal {
        draw_modal(s, &t, f, m);
    }
    if s.help {
        draw_help(s, &t, f);
    }
    if s.overview {
        draw_overview(s, &t, f);
    }
    if let Some(scroll) = s.detail {
        super::detail::draw(s, &t, f, scroll);
    }
}

/// The key that opens the detail view on this screen (`v`, or F3 where letters are typed).
pub fn detail_key(s: &State) -> &'static str {
    if s.text_input() {
        "F3"
    } else {
        "v"
    }
}

/// Every step with where it stands ([`super::overview::rows`]).
fn draw_overview(s: &State, t: &Theme, f: &mut Frame) {
    use super::overview::{rows, Mark};
    let width = f.area().width.saturating_sub(4).min(76);
    let mut lines = Vec::new();
    for (step, mark, words) in rows(s) {
        let style = match mark {
            Mark::Done => t.ok(),
            Mark::Failed => t.bad(),
            Mark::Current | Mark::Running => t.bold(),
            Mark::Skipped | Mark::Pending => t.dim(),
        };
        // The screen shown is marked whatever its step's state (a passed check, say).
        let here = if step == s.step && mark != Mark::Current {
            "›"
        } else {
            " "
        };
        let head = format!(
            " {}{here}{:>2} {:<18}",
            mark.symbol(),
            step.number().unwrap_or(0),
            step.title()
        );
        let room = (width as usize).saturating_sub(head.chars().count() + 3);
        lines.push(Line::from(vec![
            Span::styled(head, style),
            Span::raw(crate::tui::screens::fit(&words, room)),
        ]));
    }
    lines.push(Line::from(""));
    lines.push(Line::styled(
        " ✓ done  › here  … running  ✗ failed  – skipped. Any key closes.",
        t.dim(),
    ));
    let r = centered(f.area(), width, lines.len() as u16 + 2);
    f.render_widget(Clear, r);
    f.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" Steps ")),
        r,
    );
}

fn draw_header(s: &State, t: &Theme, f: &mut Frame, area: Rect) {
    let mut spans = vec![Span::styled(" Rewind ", t.bold())];
    match s.step.number() {
        Some(n) => spans.push(Span::raw(format!(
            "· step {n}/{} · {}",
            Step::PATH.len(),
            s.step.title()
        ))),
        None => spans.push(Span::raw(format!("· {}", s.step.title()))),
    }
    // The trail of steps, when it fits.
    let trail: Vec<Span> = Step::PATH
        .iter()
        .enumerate()
        .flat_map(|(i, st)| {
            let style = if *st == s.step {
                t.selected()
            } else if st.number() < s.step.number() && s.step.number().is_some() {
                t.ok()
            } else {
                t.dim()
            };
            let mut v = vec![Span::styled(st.title(), style)];
            if i + 1 < Step::PATH.len() {
                v.push(Span::styled(" › ", t.dim()));
            }
            v
        })
        .collect();
    let used: usize = spans.iter().map(|s| s.width()).sum();
    let trail_w: usize = trail.iter().map(|s| s.width()).sum();
    if used + trail_w + 4 <= area.width as usize {
        spans.push(Span::raw("   "));
        spans.extend(trail);
    } else if !s.root.is_system() {
        spans.push(Span::styled(
            format!("   root {}", s.root.base().display()),
            t.dim(),
        ));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// Draw the log pane in `area`.
pub fn draw_log(s: &State, t: &Theme, f: &mut Frame, area: Rect, title: &str) {
    let inner_h = area.height.saturating_sub(2) as usize;
    let end = s.log.len().saturating_sub(s.log_scroll);
    let start = end.saturating_sub(inner_h);
    let lines: Vec<Line> = s.log[start..end]
        .iter()
        .map(|l| {
            let secs = l.at.as_secs();
            Line::from(vec![
                Span::styled(
                    format!("{:02}:{:02}:{:02} ", secs / 3600, secs / 60 % 60, secs % 60),
                    t.dim(),
                ),
                Span::styled(
                    match l.level {
                        Level::Info => "",
                        Level::Warn => "warning: ",
                        Level::Error => "error: ",
                    },
                    t.level(l.level),
                ),
                Span::styled(
                    crate::tui::screens::fit(
                        &l.text,
                        (area.width as usize).saturating_sub(
                            9 + match l.level {
                                Level::Info => 0,
                                Level::Warn => 9,
                                Level::Error => 7,
                            },
                        ),
                    ),
                    t.level(l.level),
                ),
            ])
        })
        .collect();
    let title = if s.log_scroll > 0 {
        format!(" {title} · {} lines up ", s.log_scroll)
    } else {
        format!(" {title} ")
    };
    f.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::TOP).title(title)),
        area,
    );
}

/// The keys that work on the current screen (key, what it does).
pub fn keys(s: &State) -> Vec<(&'static str, &'static str)> {
    if s.detail.is_some() {
        return vec![
            ("↑↓ PgUp/PgDn", "scroll"),
            ("Home/End", "top/bottom"),
            ("Esc", "close"),
        ];
    }
    if s.help {
        return vec![("Esc", "close help")];
    }
    if let Some(m) = &s.modal {
        return match m {
            Modal::ConfirmCancel => vec![("y", "cancel the restore"), ("n/Esc", "keep going")],
            _ => vec![("y", "yes"), ("n/Esc", "no")],
        };
    }
    let mut k: Vec<(&str, &str)> = Vec::new();
    let text = s.text_input();
    match s.step {
        Step::Resume => {
            k.push(("Enter", "resume"));
            k.push(("n", "start over"));
        }
        Step::Detect if !s.interrupted.is_empty() => {
            k.push(("c", "complete the swap"));
            k.push(("u", "reverse it"));
        }
        Step::Detect => {
            k.push(("Enter", "backups"));
            k.push(("r", "detect again"));
            k.push(("m", "repair migrations"));
        }
        Step::SelectBackup => {
            k.push(("↑↓/jk", "move"));
            k.push(("Enter", "pick"));
            k.push(("r", "reload"));
        }
        Step::Preflight => {
            k.push(("↑↓", "move"));
            k.push(("Enter", "continue"));
            k.push(("r", "check again"));
        }
        Step::RollbackPackage if s.edition_question.is_some() && !s.allow_edition_change => {
            k.push(("i", "install the backup's edition"));
        }
        Step::StopServices | Step::RollbackPackage | Step::StartServices => {
            k.push(("Enter", "run / continue"));
        }
        Step::ConfirmDrop if s.on_repo_page() => {
            k.push(("y", "replace repositories"));
            k.push(("s", "leave them out"));
            k.push(("b", "bundle on/off"));
        }
        Step::ConfirmDrop => {
            k.push(("type", "database name"));
            k.push(("Enter", "confirm"));
            if crate::tui::update::created_since(s) > 0
                && matches!(s.salvage, Loadable::NotStarted | Loadable::Failed(_))
            {
                k.push(("^S", "salvage first"));
            }
        }
        Step::RestoreConfig => {
            if s.config.result.is_none() {
                k.push(("↑↓", "archive"));
                k.push(("y", "restore"));
                k.push(("s", "skip"));
            }
            k.push(("Enter", "continue"));
        }
        Step::PostChecks => {
            k.push(("↑↓", "check"));
            if !s.post.running {
                k.push(("Space", "tick"));
            }
            k.push(("PgUp/Dn", "output"));
            k.push(("Enter", if s.post.ran { "continue" } else { "run" }));
            if s.post.ran && !s.post.running {
                k.push(("r", "again"));
            }
            if !s.post.ran && !s.post.running {
                k.push(("s", "skip"));
            }
        }
        Step::SafetySnapshot => {
            k.push(("Enter", "start"));
            if !s.beside() && !s.without_snapshot().is_empty() && !s.snapshot_declined {
                k.push(("d", "decline snapshot"));
            }
        }
        Step::Restore => {
            if s.restore.result.is_none() {
                k.push(("Ctrl-C", "cancel"));
            } else {
                k.push(("Enter", "continue"));
            }
        }
        Step::Verify => {
            k.push(("Enter", "continue"));
            k.push(("r", "verify again"));
        }
        Step::Done => {
            k.push(("Enter", "exit"));
            k.push(("m", "repair migrations"));
        }
        Step::RepairMigrations => {
            if s.repair.assessment.is_none() {
                k.push(("Tab", "newest failed log"));
                k.push(("↑↓", "field"));
            }
            k.push(("Enter", "go on"));
        }
    }
    let back_ok = match s.step {
        Step::Detect | Step::Done | Step::Resume => false,
        Step::RepairMigrations => true,
        st => st.previous().is_some_and(|p| s.change_since(p).is_none()),
    };
    if back_ok {
        k.push(("Esc", "back"));
    }
    if text {
        k.push(("F1", "help"));
        k.push(("Ctrl-L", "log"));
    } else {
        k.push(("?", "help"));
        k.push(("l", "log"));
        if !s.running(super::state::Job::Restore) {
            k.push(("q", "quit"));
        }
    }
    k
}

fn draw_keys(s: &State, t: &Theme, f: &mut Frame, area: Rect, cut: bool) {
    let mut spans = Vec::new();
    let mut keys = keys(s);
    if cut && s.detail.is_none() && s.modal.is_none() && !s.help && !s.overview {
        // After the screen's own keys, before back/help/log/quit.
        let at = keys
            .iter()
            .position(|(k, _)| matches!(*k, "Esc" | "?" | "F1"))
            .unwrap_or(keys.len());
        keys.insert(at, (detail_key(s), "details"));
    }
    // Too long for the terminal: the log key goes first (help lists it), then the
    // descriptions of help and quit.
    let width = |k: &[(&str, &str)]| {
        k.iter()
            .map(|(a, b)| a.chars().count() + b.chars().count() + 3)
            .sum::<usize>()
    };
    if width(&keys) > area.width as usize {
        keys.retain(|(k, _)| !matches!(*k, "l" | "Ctrl-L"));
    }
    if width(&keys) > area.width as usize {
        for (k, what) in keys.iter_mut() {
            match *k {
                "?" | "F1" => *what = "",
                "q" => *what = "",
                _ => {}
            }
        }
    }
    for (key, what) in keys {
        spans.push(Span::styled(format!(" {key}"), t.key()));
        spans.push(Span::raw(if what.is_empty() {
            " ".to_string()
        } else {
            format!(" {what} ")
        }));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// A rectangle of `w` x `h` centred in `area` (clamped to it).
pub fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

fn draw_modal(s: &State, t: &Theme, f: &mut Frame, m: &Modal) {
    let (title, lines): (&str, Vec<Line>) = match m {
        Modal::ConfirmQuit => (
            "Quit?",
            std::iter::once(Line::from("This run changed the host:"))
                .chain(
                    s.changes
                        .iter()
                        .map(|c| Line::from(format!("  - {} ({})", c.what, c.step.title()))),
                )
                .chain([
                    Line::from("The session is saved: run rewind again to resume."),
                    Line::from(""),
                    Line::from(vec![
                        Span::styled("y", t.key()),
                        Span::raw(" quit   "),
                        Span::styled("n", t.key()),
                        Span::raw(" stay"),
                    ]),
                ])
                .collect(),
        ),
        Modal::ConfirmCancel => {
            let after: [&str; 2] = if s.beside() {
                [
                    "Before the swap the live database is untouched and the new",
                    "one is removed; after it, `rewind undo` swaps back.",
                ]
            } else {
                [
                    "The database is then incomplete: run the restore again",
                    "(it restarts from the drop) or restore the safety snapshot.",
                ]
            };
            (
                "Cancel the restore?",
                vec![
                    Line::from("The restore stops at the next safe point."),
                    Line::from(after[0]),
                    Line::from(after[1]),
                    Line::from(""),
                    Line::from(vec![
                        Span::styled("y", t.key()),
                        Span::raw(" cancel   "),
                        Span::styled("n", t.key()),
                        Span::raw(" keep going"),
                    ]),
                ],
            )
        }
        Modal::ConfirmRun(step) => {
            let cmds = s
                .action(*step)
                .map(|a| a.commands.clone())
                .unwrap_or_default();
            let mut v = vec![Line::from("Run these commands now?"), Line::from("")];
            let beside = s.strategy.ready().filter(|v| v.beside());
            if let (Step::RollbackPackage, Some(b)) = (*step, beside) {
                v.push(Line::from(
                    "No safety snapshot: the restore will run beside the live database",
                ));
                v.push(Line::from(
                    "and keep it whole (renamed aside, nothing dropped). Decided by:",
                ));
                for r in &b.reasons {
                    for l in crate::tui::screens::wrap_text(r, 66, 2) {
                        v.push(Line::styled(format!("  {l}"), t.dim()));
                    }
                }
                v.push(Line::from(""));
            } else if *step == Step::RollbackPackage && !s.snapshot_declined {
                let missing: Vec<String> = s
                    .installation
                    .ready()
                    .map(|i| {
                        i.databases
                            .iter()
                            .filter(|d| d.database_tasks)
                            .map(|d| d.spec.dbname.clone())
                            .filter(|d| !s.snapshots_taken.contains_key(d))
                            .collect()
                    })
                    .unwrap_or_default();
                if !missing.is_empty() {
                    v.push(Line::from(
                        "First, a safety snapshot (pg_dump -Fc, 0600) of each database as the",
                    ));
                    v.push(Line::from(
                        "failed upgrade left it, before the older package's reconfigure runs:",
                    ));
                    for db in missing {
                        v.push(Line::styled(format!("  {db}"), t.bold()));
                    }
                    if let Some(st) = s.strategy.ready() {
                        for l in crate::tui::screens::wrap_text(
                            &format!(
                                "The restore will run {}: {}",
                                st.strategy.label(),
                                st.reasons.join("; ")
                            ),
                            68,
                            2,
                        ) {
                            v.push(Line::styled(l, t.dim()));
                        }
                    }
                    v.push(Line::from(""));
                }
            }
            v.extend(
                cmds.into_iter()
                    .map(|c| Line::styled(format!("  $ {c}"), t.bold())),
            );
            v.push(Line::from(""));
            v.push(Line::from(vec![
                Span::styled("y", t.key()),
                Span::raw(" run   "),
                Span::styled("n", t.key()),
                Span::raw(" not now"),
            ]));
            (step.title(), v)
        }
        Modal::DiscardSession => ("Discard the saved session?", {
            let mut v = Vec::new();
            if let Some(o) = &s.resume {
                v.push(Line::from(format!(
                    "It stopped at: {}.",
                    o.session
                        .in_progress
                        .or_else(|| o.session.done.last().map(|d| d.step))
                        .map(|st| st.label())
                        .unwrap_or("the start")
                )));
                if o.session
                    .done
                    .iter()
                    .any(|d| d.step >= rewind_engine::session::SessionStep::Drop)
                    || o.session.in_progress >= Some(rewind_engine::session::SessionStep::Drop)
                {
                    v.push(Line::styled(
                        "The database was dropped: it may be half loaded until a restore finishes.",
                        t.bad(),
                    ));
                }
            }
            v.push(Line::from(
                "Starting over forgets what this recovery did (the journal keeps it).",
            ));
            v.push(Line::from(""));
            v.push(Line::from(vec![
                Span::styled("y", t.key()),
                Span::raw(" discard and start over   "),
                Span::styled("n", t.key()),
                Span::raw(" keep it"),
            ]));
            v
        }),
        Modal::ConfirmConfig => {
            let name = s
                .config
                .selected()
                .map(|a| a.name.clone())
                .unwrap_or_default();
            let files = s.config.would_restore();
            let mut v = vec![Line::from(format!(
                "Restore {} from {name}?",
                files.join(" and ")
            ))];
            v.push(Line::from(""));
            for f in &files {
                v.push(Line::styled(format!("  /etc/gitlab/{f}"), t.bold()));
            }
            v.push(Line::from(""));
            v.push(Line::from(
                "The live files are moved aside (<name>.rewind-<time>, kept);",
            ));
            v.push(Line::from(
                "the archive's are written 0600, owner root. The next step reconfigures.",
            ));
            v.push(Line::from(""));
            v.push(Line::from(vec![
                Span::styled("y", t.key()),
                Span::raw(" restore   "),
                Span::styled("n", t.key()),
                Span::raw(" not now"),
            ]));
            ("Restore the configuration?", v)
        }
        Modal::ConfirmShellSetup => (
            "Rebuild authorized_keys?",
            vec![
                Line::from("gitlab-rake gitlab:shell:setup rewrites authorized_keys from the"),
                Line::from("restored database's SSH keys: keys added since the backup stop"),
                Line::from("working. It runs with the other checks (Enter)."),
                Line::from(""),
                Line::from(vec![
                    Span::styled("y", t.key()),
                    Span::raw(" select it   "),
                    Span::styled("n", t.key()),
                    Span::raw(" leave it"),
                ]),
            ],
        ),
        Modal::DeclineSnapshot => (
            "Go on without a safety snapshot?",
            vec![
                Line::styled(
                    "Without a snapshot, the database as it is now cannot be recovered",
                    t.bad(),
                ),
                Line::styled("if the restore goes wrong.", t.bad()),
                Line::from(""),
                Line::from(vec![
                    Span::styled("y", t.key()),
                    Span::raw(" no snapshot   "),
                    Span::styled("n", t.key()),
                    Span::raw(" take the snapshot"),
                ]),
            ],
        ),
    };
    let w = lines
        .iter()
        .map(|l| l.width() as u16)
        .max()
        .unwrap_or(20)
        .max(title.len() as u16)
        + 4;
    // Sized to the content as it wraps at this width, so the last line (the keys) is
    // never cut off.
    let w = w.min(f.area().width);
    let para = Paragraph::new(lines).wrap(Wrap { trim: false });
    let h = para.line_count(w.saturating_sub(2)) as u16 + 2;
    let r = centered(f.area(), w, h);
    f.render_widget(Clear, r);
    f.render_widget(para.block(Block::bordered().title(format!(" {title} "))), r);
}

fn draw_help(s: &State, t: &Theme, f: &mut Frame) {
    let mut lines = vec![Line::styled("This screen", t.bold())];
    for (k, what) in keys(&State {
        help: false,
        ..s.clone()
    }) {
        lines.push(Line::from(vec![
            Span::styled(format!("  {k:<8}"), t.key()),
            Span::raw(what),
        ]));
    }
    lines.push(Line::from(""));
    lines.push(Line::styled("Everywhere", t.bold()));
    for (k, what) in [
        ("↑↓ j k", "move"),
        ("Enter", "go on"),
        ("Esc", "back, while nothing changed since that step"),
        ("?  F1", "this help"),
        ("o  F2", "every step and where it stands"),
        ("l  ^L", "show or hide the log (PgUp/Dn scroll it)"),
        (
            "v  F3",
            "details: every line of the screen in full, when one is cut",
        ),
        ("q", "quit (asks once something changed)"),
        ("Ctrl-C", "cancel a restore at the next safe point"),
    ] {
        lines.push(Line::from(vec![
            Span::styled(format!("  {k:<8}"), t.key()),
            Span::raw(what),
        ]));
    }
    lines.push(Line::from(""));
    lines.push(Line::styled(
        "Every action is journaled; a killed wizard resumes when started again.",
        t.dim(),
    ));
    let r = centered(f.area(), 74, lines.len() as u16 + 2);
    f.render_widget(Clear, r);
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(Block::bordered().title(" Help (Esc closes) ")),
        r,
    );
}
