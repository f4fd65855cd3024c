//! The detail view: every line of the current screen in full, wrapped and scrollable, for
//! the lines the screen had to cut (long paths, package versions, GitLab's messages).
//!
//! Its text is the screen itself drawn off-screen at a width where nothing is cut, so every
//! screen has one without code of its own; the line the screen focuses (drawn reversed)
//! stays marked. Screens report what they cut through [`note_cut`] (every `fit` that drops
//! characters does), which is how the key bar knows to offer the view.

use std::cell::Cell;

use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph};
use ratatui::{Frame, Terminal};

use super::state::State;
use super::view::Theme;

/// The width the screen is drawn at for the detail view: wider than any line a screen
/// writes uncut (paths, package versions, GitLab's messages on one line).
const FULL_WIDTH: u16 = 400;
/// Rows the screen is drawn on for the detail view (lists show this many entries).
const FULL_HEIGHT: u16 = 240;

thread_local! {
    static CUTS: Cell<usize> = const { Cell::new(0) };
}

/// A screen cut a line to fit (called by `fit` and the other shorteners).
pub fn note_cut() {
    CUTS.with(|c| c.set(c.get() + 1));
}

/// Forget the cuts counted so far; returns their number.
pub fn take_cuts() -> usize {
    CUTS.with(|c| c.replace(0))
}

/// The area of the detail box's text for a terminal of `size` (columns, rows): the whole
/// screen but the key bar, inside a border.
pub fn text_area(size: (u16, u16)) -> Rect {
    let (w, h) = size;
    Rect {
        x: 1,
        y: 1,
        width: w.saturating_sub(2),
        height: h.saturating_sub(3),
    }
}

/// The detail view's lines at `width` columns, and the index of the first line of the
/// focused entry when the screen has one.
pub fn lines(s: &State, width: u16) -> (Vec<Line<'static>>, Option<usize>) {
    let width = width.max(20) as usize;
    let mut out: Vec<Line<'static>> = Vec::new();
    let t = Theme {
        color: s.color,
        full: true,
    };
    if let Some(n) = &s.notice {
        push_wrapped(&mut out, vec![(format!("! {n}"), t.warn())], width);
        out.push(Line::from(""));
    }
    let mut focus = None;
    let buf = full_render(s, &t);
    let mut blank = true;
    for row in rows_of(&buf) {
        if row.is_empty() {
            if !blank {
                out.push(Line::from(""));
            }
            blank = true;
            continue;
        }
        blank = false;
        if focus.is_none()
            && row
                .iter()
                .any(|(_, st)| st.add_modifier.contains(Modifier::REVERSED))
        {
            focus = Some(out.len());
        }
        push_wrapped(&mut out, row, width);
    }
    if s.log_visible && s.step != super::state::Step::Restore {
        out.push(Line::from(""));
        out.push(Line::styled("Log", t.bold()));
        for l in &s.log {
            let secs = l.at.as_secs();
            push_wrapped(
                &mut out,
                vec![(
                    format!(
                        "{:02}:{:02}:{:02} {}",
                        secs / 3600,
                        secs / 60 % 60,
                        secs % 60,
                        l.text
                    ),
                    t.level(l.level),
                )],
                width,
            );
        }
    }
    while out.last().is_some_and(|l| l.width() == 0) {
        out.pop();
    }
    (out, focus)
}

/// The largest scroll of the detail view for a terminal of `size`.
pub fn max_scroll(s: &State, size: (u16, u16)) -> usize {
    let a = text_area(size);
    let (lines, _) = lines(s, a.width.saturating_sub(1));
    lines.len().saturating_sub(a.height as usize)
}

/// Where the detail view starts when opened: a little above the focused entry.
pub fn initial_scroll(s: &State, size: (u16, u16)) -> usize {
    let a = text_area(size);
    let (_, focus) = lines(s, a.width.saturating_sub(1));
    focus
        .map(|f| f.saturating_sub(2))
        .unwrap_or(0)
        .min(max_scroll(s, size))
}

/// Draw the detail view over the whole screen but the key bar.
pub fn draw(s: &State, t: &Theme, f: &mut Frame, scroll: usize) {
    let area = f.area();
    let size = (area.width, area.height);
    let a = text_area(size);
    let (lines, _) = lines(s, a.width.saturating_sub(1));
    let visible = a.height as usize;
    let max = lines.len().saturating_sub(visible);
    let first = scroll.min(max);
    let shown: Vec<Line> = lines
        .into_iter()
        .skip(first)
        .take(visible)
        .map(|l| {
            let mut spans = vec![Span::raw(" ")];
            spans.extend(l.spans);
            Line::from(spans)
        })
        .collect();
    let title = if max == 0 {
        format!(" {}: whole text (Esc closes) ", s.step.title())
    } else {
        format!(
            " {}: whole text, lines {}-{} of {} (Esc closes) ",
            s.step.title(),
            first + 1,
            (first + visible).min(max + visible),
            max + visible
        )
    };
    let r = Rect {
        x: 0,
        y: 0,
        width: area.width,
        height: area.height.saturating_sub(1),
    };
    f.render_widget(Clear, r);
    f.render_widget(
        Paragraph::new(shown).block(Block::bordered().title(title).border_style(t.accent())),
        r,
    );
}

/// The current screen's body drawn at [`FULL_WIDTH`] x [`FULL_HEIGHT`]; the cuts it makes
/// (none, normally) are not counted for the real screen.
fn full_render(s: &State, t: &Theme) -> Buffer {
    let before = take_cuts();
    let mut term = match Terminal::new(TestBackend::new(FULL_WIDTH, FULL_HEIGHT)) {
        Ok(t) => t,
        Err(_) => return Buffer::empty(Rect::default()),
    };
    let _ = term.draw(|f| {
        let area = f.area();
        super::screens::draw(s, t, f, area);
    });
    let buf = term.backend().buffer().clone();
    take_cuts();
    CUTS.with(|c| c.set(before));
    buf
}

/// Box-drawing characters of borders.
fn is_border(sym: &str) -> bool {
    matches!(
        sym,
        "│" | "─" | "┌" | "┐" | "└" | "┘" | "├" | "┤" | "╭" | "╮" | "╰" | "╯"
    )
}

/// Each row of `buf` as runs of (text, style), borders taken off, trailing blanks
/// trimmed. A top border's title stays (as the heading of its box).
fn rows_of(buf: &Buffer) -> Vec<Vec<(String, Style)>> {
    let area = buf.area;
    let mut out = Vec::new();
    for y in area.top()..area.bottom() {
        let mut cells: Vec<(String, Style)> = Vec::new();
        for x in area.left()..area.right() {
            let c = &buf[(x, y)];
            let sym = if is_border(c.symbol()) {
                " "
            } else {
                c.symbol()
            };
            cells.push((sym.to_string(), c.style()));
        }
        while cells.last().is_some_and(|(c, _)| c.trim().is_empty()) {
            cells.pop();
        }
        // The left border and the space after it.
        let lead = cells
            .iter()
            .take_while(|(c, _)| c.trim().is_empty())
            .count();
        cells.drain(..lead.min(2));
        // Columns drawn for 400 columns are far apart: runs of spaces after the
        // indentation become two, so rows wrap at words, not inside the gaps.
        let indent = cells
            .iter()
            .take_while(|(c, _)| c.trim().is_empty())
            .count();
        let mut squeezed: Vec<(String, Style)> = Vec::with_capacity(cells.len());
        let mut run = 0;
        for (i, (sym, st)) in cells.into_iter().enumerate() {
            if i >= indent && sym == " " {
                run += 1;
                if run > 2 {
                    continue;
                }
            } else {
                run = 0;
            }
            squeezed.push((sym, st));
        }
        let cells = squeezed;
        let mut runs: Vec<(String, Style)> = Vec::new();
        for (sym, st) in cells {
            match runs.last_mut() {
                Some((text, s)) if *s == st => text.push_str(&sym),
                _ => runs.push((sym, st)),
            }
        }
        out.push(runs);
    }
    out
}

/// Append `runs` word-wrapped to `width` columns (continuations indented by two).
fn push_wrapped(out: &mut Vec<Line<'static>>, runs: Vec<(String, Style)>, width: usize) {
    let chars: Vec<(char, Style)> = runs
        .iter()
        .flat_map(|(t, s)| t.chars().map(move |c| (c, *s)))
        .collect();
    let mut start = 0;
    let mut first = true;
    while start < chars.len() || first {
        let room = if first {
            width
        } else {
            width.saturating_sub(2)
        }
        .max(8);
        let rest = &chars[start..];
        let take = if rest.len() <= room {
            rest.len()
        } else {
            // The last space in the room, if it leaves at least half a line.
            match rest[..room].iter().rposition(|(c, _)| *c == ' ') {
                Some(p) if p >= room / 2 => p + 1,
                _ => room,
            }
        };
        let piece = &rest[..take];
        let mut spans: Vec<Span<'static>> = Vec::new();
        if !first {
            spans.push(Span::raw("  "));
        }
        let mut cur = String::new();
        let mut cur_style = piece.first().map(|(_, s)| *s).unwrap_or_default();
        for (c, st) in piece {
            if *st != cur_style && !cur.is_empty() {
                spans.push(Span::styled(std::mem::take(&mut cur), cur_style));
            }
            cur_style = *st;
            cur.push(*c);
        }
        if !cur.is_empty() {
            spans.push(Span::styled(cur, cur_style));
        }
        out.push(Line::from(spans));
        start += take;
        first = false;
        // Spaces at a break are not carried to the next line.
        while start < chars.len() && chars[start].0 == ' ' && start > 0 {
            start += 1;
        }
    }
}

/// Rows of the body `area` of `buf` that run into its right edge: text that a paragraph
/// without wrapping cut (the last column inside a full-width box is written).
pub fn touches_edge(buf: &Buffer, area: Rect) -> bool {
    if area.width < 3 {
        return false;
    }
    let edge = area.right() - 1;
    (area.top()..area.bottom()).any(|y| {
        let border = buf[(edge, y)].symbol() == "│";
        let inner = buf[(edge - 1, y)].symbol();
        border && !inner.trim().is_empty() && !is_border(inner)
    })
}
