//! Restore: one gauge per phase, the current table, rows, throughput, elapsed and ETA, and
//! the log pane.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::Frame;
use rewind_engine::progress::Phase;

use super::{bar, boxed, clock, fit, thousands};
use crate::output::human_bytes;
use crate::tui::state::{Eta, PhaseGauge, PhaseState, State};
use crate::tui::view::{draw_log, Theme};

pub fn draw(s: &State, t: &Theme, f: &mut Frame, area: Rect) {
    let gauges_h = s.restore.phases.len() as u16 + 2;
    // The connections' work in flight, while a parallel phase runs (at most 4 rows; the
    // log keeps at least 3).
    let conns_h = if s.restore.workers.is_empty() {
        0
    } else {
        s.restore.workers.len().min(4) as u16 + 2
    };
    let [gauges, stats, conns, log] = Layout::vertical([
        Constraint::Length(gauges_h),
        Constraint::Length(5),
        Constraint::Length(conns_h),
        Constraint::Min(3),
    ])
    .areas(area);
    let w = gauges.width.saturating_sub(2) as usize;
    let bar_w = w.saturating_sub(17 + 2 + 26).clamp(8, 60);
    let lines: Vec<Line> = s
        .restore
        .phases
        .iter()
        .map(|g| gauge_line(s, t, g, bar_w))
        .collect();
    let title = match &s.restore.result {
        None if s.restore.cancel_requested => "Restore (cancelling at the next safe point)",
        None => "Restore",
        Some(Ok(_)) => "Restore: finished",
        Some(Err(_)) => "Restore: stopped",
    };
    f.render_widget(boxed(title, lines), gauges);

    let now = s.restore.finished.unwrap_or(s.now);
    let elapsed = s
        .restore
        .started
        .map(|st| now.saturating_sub(st))
        .unwrap_or_default();
    let data = s.restore.phases.iter().find(|g| g.phase == Phase::Data);
    let data_done = data.is_some_and(|g| g.state == PhaseState::Done);
    let rate = match s.restore.data_rate(now) {
        Some(r) if data_done => format!("{}/s (data, average)", human_bytes(r as u64)),
        Some(r) => format!("{}/s of the dump", human_bytes(r as u64)),
        None => "…".into(),
    };
    // Time left of the whole restore: the data by bytes of the dump read and the measured
    // rate, index builds and constraints by their measured pace once they run; the phases
    // that cannot be measured yet are named, not guessed.
    let eta = match s.restore.eta(now) {
        Eta::Finished => match &s.restore.result {
            Some(Ok(_)) => "done".to_string(),
            _ => "-".to_string(),
        },
        Eta::Unknown => "…".to_string(),
        Eta::Left { secs, then } if then.is_empty() => clock(secs),
        Eta::Left { secs, then } => format!(
            "{} + {}",
            clock(secs),
            then.iter()
                .map(|p| p.label())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let sw = stats.width.saturating_sub(16) as usize;
    let rows = if s.restore.tables_loaded > 0 || s.restore.result.is_some() {
        format!(
            "{} in {} tables",
            thousands(s.restore.rows_total()),
            s.restore.tables_loaded
        )
    } else {
        thousands(s.restore.rows_total())
    };
    let mut st = vec![
        Line::from(vec![
            Span::styled(" table       ", t.dim()),
            Span::raw(fit(s.restore.current.as_deref().unwrap_or("-"), sw)),
        ]),
        Line::from(vec![
            Span::styled(" rows        ", t.dim()),
            Span::raw(rows),
            Span::styled("   throughput ", t.dim()),
            Span::raw(rate),
        ]),
        Line::from(vec![
            Span::styled(" elapsed     ", t.dim()),
            Span::raw(clock(elapsed.as_secs())),
            Span::styled("   ETA ", t.dim()),
            Span::raw(eta),
        ]),
    ];
    match &s.restore.result {
        Some(Ok(summary)) => st[0] = Line::styled(format!(" {}", fit(summary, sw + 12)), t.ok()),
        Some(Err(e)) => st[0] = Line::styled(format!(" {}", fit(e, sw + 12)), t.bad()),
        None => {}
    }
    f.render_widget(boxed("Now", st), stats);
    if conns_h > 0 {
        let cw = conns.width.saturating_sub(2) as usize;
        let mut lines: Vec<Line> = s
            .restore
            .workers
            .iter()
            .take(4)
            .map(|(slot, (phase, what))| {
                let head = format!(" #{} {:<12}", slot + 1, phase.label());
                let room = cw.saturating_sub(head.chars().count());
                Line::from(vec![
                    Span::styled(head, t.dim()),
                    Span::raw(fit(what, room)),
                ])
            })
            .collect();
        if s.restore.workers.len() > 4 {
            lines.truncate(3);
            lines.push(Line::styled(
                format!(" and {} more connections", s.restore.workers.len() - 3),
                t.dim(),
            ));
        }
        f.render_widget(boxed("Connections", lines), conns);
    }
    draw_log(s, t, f, log, "Log (PgUp/PgDn scroll)");
}

fn gauge_line<'a>(s: &State, t: &Theme, g: &PhaseGauge, bar_w: usize) -> Line<'a> {
    let label = format!(" {:<16}", g.phase.label());
    let ratio = match (g.state, g.total) {
        (PhaseState::Done, _) => 1.0,
        (_, Some(total)) if total > 0 => g.done as f64 / total as f64,
        _ => 0.0,
    };
    let (style, status) = match g.state {
        PhaseState::Pending => (t.dim(), "waiting".to_string()),
        PhaseState::Skipped => (t.dim(), "skipped".to_string()),
        PhaseState::Failed => (t.bad(), "failed".to_string()),
        PhaseState::Done => {
            let secs = match (g.started, g.finished) {
                (Some(a), Some(b)) => b.saturating_sub(a).as_secs(),
                _ => 0,
            };
            (t.ok(), format!("done in {}", clock(secs)))
        }
        PhaseState::Running => {
            let pct = (ratio * 100.0) as u32;
            let detail = match (g.phase, g.total) {
                (Phase::Data | Phase::Snapshot, Some(total)) => {
                    format!("{pct:>3}% {}/{}", human_bytes(g.done), human_bytes(total))
                }
                (_, Some(total)) => format!("{pct:>3}% {}/{total}", g.done),
                (Phase::Data | Phase::Snapshot, None) => human_bytes(g.done),
                (_, None) => format!("{}", g.done),
            };
            let _ = s;
            (t.accent(), detail)
        }
    };
    Line::from(vec![
        Span::styled(label, t.bold()),
        Span::styled(bar(ratio, bar_w), style),
        Span::styled(format!(" {status}"), style),
    ])
}
