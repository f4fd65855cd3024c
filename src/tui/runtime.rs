//! The event loop: crossterm's `EventStream`, a tick, signals, and engine messages from
//! worker threads, into `update`; commands out to the [`Executor`]; `view` after each batch.
//! The terminal is restored on every exit path: normal, error, panic, SIGTERM and SIGHUP.

use std::io::{self, Stdout};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossterm::event::{
    DisableBracketedPaste, EnableBracketedPaste, Event as CtEvent, EventStream, KeyEventKind,
};
use crossterm::execute;
use crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use futures::StreamExt;
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;
use rewind_engine::progress::Level;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use super::event::Event;
use super::exec::{ExecOptions, Executor, Flow};
use super::state::State;
use super::update::{start, update};
use super::view::view;
use super::WizardOptions;

static RAW: AtomicBool = AtomicBool::new(false);

/// Leave raw mode and the alternate screen (idempotent, errors ignored: the terminal may
/// be gone after a hangup).
pub fn restore_terminal() {
    if RAW.swap(false, Ordering::SeqCst) {
        let _ = disable_raw_mode();
        let mut out = io::stdout();
        let _ = execute!(
            out,
            DisableBracketedPaste,
            LeaveAlternateScreen,
            crossterm::cursor::Show
        );
    }
}

/// Restores the terminal when dropped (normal return, `?` errors, unwinding).
struct TerminalGuard;

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore_terminal();
    }
}

fn setup_terminal() -> io::Result<(Terminal<CrosstermBackend<Stdout>>, TerminalGuard)> {
    // Chain a panic hook that restores the terminal before the report is printed.
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore_terminal();
        prev(info);
    }));
    enable_raw_mode()?;
    RAW.store(true, Ordering::SeqCst);
    let guard = TerminalGuard;
    let mut out = io::stdout();
    // Clear with a plain escape: `Terminal::clear` asks the terminal for the cursor
    // position, which a slow link (or a terminal that does not answer) turns into an error.
    execute!(
        out,
        EnterAlternateScreen,
        EnableBracketedPaste,
        crossterm::terminal::Clear(crossterm::terminal::ClearType::All)
    )?;
    let mut terminal = Terminal::new(CrosstermBackend::new(out))?;
    terminal.hide_cursor()?;
    Ok((terminal, guard))
}

/// What the run measured.
#[derive(Debug, Clone)]
pub struct RunStats {
    /// From `run_wizard` to the first frame on the terminal.
    pub first_draw: Duration,
    /// What to print once the terminal is restored ([`super::summary::lines`]).
    pub summary: Vec<String>,
}

/// Run the wizard until the user quits or a signal arrives.
pub async fn run(opts: WizardOptions, started: Instant) -> color_eyre::Result<RunStats> {
    let (mut terminal, _guard) = setup_terminal()?;
    let (tx, mut rx) = mpsc::unbounded_channel::<Event>();
    let mut state = State::new(opts.root.clone(), opts.banner.clone());
    state.color = opts.color;
    if let Ok(size) = terminal.size() {
        state.size = (size.width, size.height);
    }
    let mut exec = Executor::new(
        ExecOptions {
            root: opts.root.clone(),
            backup_dir: opts.backup_dir.clone(),
            database_url: opts.database_url.clone(),
            in_place: opts.in_place,
            db_admin: opts.db_admin.clone(),
        },
        tx.clone(),
    );
    for cmd in start(&mut state) {
        exec.execute(cmd);
    }
    terminal.draw(|f| view(&state, f))?;
    let first_draw = started.elapsed();
    state.log(
        Level::Info,
        format!(
            "first screen drawn {} ms after start",
            first_draw.as_millis()
        ),
    );

    let mut events = EventStream::new();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sighup = signal(SignalKind::hangup())?;
    let t0 = started;

    'outer: loop {
        let ev = tokio::select! {
            maybe = events.next() => match maybe {
                Some(Ok(e)) => match map_terminal_event(e) {
                    Some(ev) => ev,
                    None => continue,
                },
                Some(Err(e)) => return Err(e.into()),
                None => Event::Terminate,
            },
            Some(e) = rx.recv() => e,
            _ = tick.tick() => Event::Tick(t0.elapsed()),
            _ = sigterm.recv() => Event::Terminate,
            _ = sighup.recv() => Event::Terminate,
        };
        let mut batch = vec![ev];
        // Take whatever else is waiting, so a burst of progress draws once.
        while let Ok(e) = rx.try_recv() {
            batch.push(e);
            if batch.len() > 512 {
                break;
            }
        }
        for ev in batch {
            for cmd in update(&mut state, ev) {
                if exec.execute(cmd) == Flow::Quit {
                    break 'outer;
                }
            }
        }
        terminal.draw(|f| view(&state, f))?;
    }
    // Give cancelled work a moment to reach its safe point (a restore journals its stop).
    let deadline = Instant::now() + Duration::from_secs(5);
    while exec.running() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(terminal);
    restore_terminal();
    Ok(RunStats {
        first_draw,
        summary: super::summary::lines(&state),
    })
}

fn map_terminal_event(e: CtEvent) -> Option<Event> {
    match e {
        CtEvent::Key(k) if k.kind != KeyEventKind::Release => Some(Event::Key(k)),
        CtEvent::Paste(s) => Some(Event::Paste(s)),
        CtEvent::Resize(w, h) => Some(Event::Resize(w, h)),
        _ => None,
    }
}
