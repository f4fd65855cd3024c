//! Progress reporting from long engine operations to whatever front end runs them.
//!
//! The engine calls [`Sink::event`] from worker threads; the TUI forwards events into its
//! event loop, the CLI prints them. A sink must be cheap and must not block for long.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde::Serialize;

/// Phases of a recovery, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Verify,
    Snapshot,
    Drop,
    Schema,
    Data,
    Indexes,
    Constraints,
    Files,
    Repositories,
    Check,
    Command,
}

impl Phase {
    pub fn label(self) -> &'static str {
        match self {
            Phase::Verify => "verify archive",
            Phase::Snapshot => "safety snapshot",
            Phase::Drop => "drop tables",
            Phase::Schema => "schema",
            Phase::Data => "data",
            Phase::Indexes => "indexes",
            Phase::Constraints => "constraints",
            Phase::Files => "files",
            Phase::Repositories => "repositories",
            Phase::Check => "verify restore",
            Phase::Command => "command",
        }
    }
}

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Info,
    Warn,
    Error,
}

/// One progress event.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A phase started; `total` is its unit count when known (bytes for data/verify, items
    /// otherwise).
    PhaseStarted { phase: Phase, total: Option<u64> },
    /// Work done in a phase so far (`done` in the phase's unit), with an optional current
    /// item (table, member, file) and rows.
    Progress {
        phase: Phase,
        done: u64,
        total: Option<u64>,
        current: Option<String>,
        rows: Option<u64>,
    },
    /// A phase ended.
    PhaseFinished { phase: Phase, ok: bool },
    /// What one connection of a parallel phase is working on now: `slot` numbers the
    /// phase's connections from 0; `what` is the object (`INDEX public.index_notes_on_note`,
    /// `FK CONSTRAINT public.notes fk_rails_...`), `None` when the connection is idle or
    /// done with the phase.
    Worker {
        slot: usize,
        phase: Phase,
        what: Option<String>,
    },
    /// A line for the log pane.
    Log { level: Level, message: String },
    /// A line of output of an external command Rewind runs.
    Output { line: String },
    /// The safety snapshot of `database` is complete at `path`, and the journal says so.
    SnapshotWritten {
        database: String,
        path: std::path::PathBuf,
        bytes: u64,
    },
    /// Every table of `database` was dropped (the transaction committed), and the journal
    /// says so: from here on the database holds no data until the load.
    Dropped { database: String },
    /// All of a table's data was read from the dump and handed to the database (`rows`
    /// rows): front ends add these up for the rows of all tables, which
    /// [`Event::Progress`]'s `rows` (the current table's) is not.
    TableLoaded { table: String, rows: u64 },
}

/// Receives progress events. Implemented for closures.
pub trait Sink: Send + Sync {
    fn event(&self, event: Event);
}

impl<F: Fn(Event) + Send + Sync> Sink for F {
    fn event(&self, event: Event) {
        self(event)
    }
}

/// A sink that drops everything.
pub struct NullSink;

impl Sink for NullSink {
    fn event(&self, _event: Event) {}
}

/// Convenience methods on any sink.
pub trait SinkExt: Sink {
    fn log(&self, level: Level, message: impl Into<String>) {
        self.event(Event::Log {
            level,
            message: message.into(),
        })
    }
    fn info(&self, message: impl Into<String>) {
        self.log(Level::Info, message)
    }
    fn warn(&self, message: impl Into<String>) {
        self.log(Level::Warn, message)
    }
}

impl<S: Sink + ?Sized> SinkExt for S {}

/// A cancellation flag shared between the front end and a running operation. Operations
/// check it between units of work and stop at the next safe point.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst)
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
    /// The shared flag, for signal handlers (`signal_hook::flag::register`).
    pub fn flag(&self) -> Arc<AtomicBool> {
        self.0.clone()
    }
}
