//! Table data: `COPY` blocks streamed from the parser thread to worker connections.
//!
//! The parser thread reads a table's rows in chunks (split at row boundaries) and hands
//! them to workers through bounded queues, so memory stays flat whatever the table size.
//! A small table (its whole data read before dispatch) is one `COPY` on the least busy
//! worker, in autocommit like psql. A large table is split: every worker opens
//! `BEGIN; COPY ...` on it and pulls chunks from the table's shared queue, so all cores
//! load it; the parts commit together only when every part succeeded (a barrier), otherwise
//! all roll back, so a table is loaded whole or not at all, as with psql's single `COPY`.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::session::{outcome_of, Conn, Outcome, Session};
use crate::dump::{CopyHeader, QualifiedName};

const WAIT: Duration = Duration::from_millis(100);

/// A bounded multi-consumer queue of data chunks for one table.
pub(crate) struct ChunkQueue {
    state: Mutex<QueueState>,
    not_empty: Condvar,
    not_full: Condvar,
    capacity: usize,
}

struct QueueState {
    q: VecDeque<Vec<u8>>,
    closed: bool,
}

impl TableJob {
    /// Connections loading this table.
    pub fn parts(&self) -> usize {
        self.parts
    }
}

impl ChunkQueue {
    fn new(capacity: usize) -> Self {
        ChunkQueue {
            state: Mutex::new(QueueState {
                q: VecDeque::new(),
                closed: false,
            }),
            not_empty: Condvar::new(),
            not_full: Condvar::new(),
            capacity,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Add a chunk, waiting while the queue is full. `false` when the load is aborting.
    fn push(&self, chunk: Vec<u8>, abort: &AtomicBool) -> bool {
        let mut st = self.lock();
        while st.q.len() >= self.capacity {
            if abort.load(Ordering::Relaxed) {
                return false;
            }
            st = self
                .not_full
                .wait_timeout(st, WAIT)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        st.q.push_back(chunk);
        self.not_empty.notify_one();
        true
    }

    /// Add a chunk without waiting (the first chunks of a table, before dispatch).
    fn push_now(&self, chunk: Vec<u8>) {
        self.lock().q.push_back(chunk);
        self.not_empty.notify_one();
    }

    fn close(&self) {
        self.lock().closed = true;
        self.not_empty.notify_all();
    }

    /// The next chunk, or `None` when the queue is closed and empty (or aborting).
    fn pop(&self, abort: &AtomicBool) -> Option<Vec<u8>> {
        let mut st = self.lock();
        loop {
            if let Some(c) = st.q.pop_front() {
                self.not_full.notify_one();
                return Some(c);
            }
            if st.closed || abort.load(Ordering::Relaxed) {
                return None;
            }
            st = self
                .not_empty
                .wait_timeout(st, WAIT)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

/// Commit decision for the parts of a split table.
struct Barrier {
    state: Mutex<(usize, bool)>,
    cv: Condvar,
}

impl Barrier {
    /// Arrive with this part's result; wait for all parts; `true` when all succeeded.
    /// `None` if the load aborts meanwhile.
    fn arrive(&self, ok: bool, parts: usize, abort: &AtomicBool) -> Option<bool> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.0 += 1;
        st.1 &= ok;
        self.cv.notify_all();
        while st.0 < parts {
            if abort.load(Ordering::Relaxed) {
                return None;
            }
            st = self
                .cv
                .wait_timeout(st, WAIT)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        Some(st.1)
    }
}

/// One table's COPY, shared by the workers loading it.
pub(crate) struct TableJob {
    pub header: CopyHeader,
    pub session: Arc<Session>,
    queue: ChunkQueue,
    parts: usize,
    barrier: Barrier,
    /// Rows the server reported, summed over parts.
    pub server_rows: AtomicU64,
    /// Set when the table's COPY failed (nothing of it is committed).
    pub failed: AtomicBool,
    started: Instant,
    /// Nanoseconds from start to the last part's end.
    pub nanos: AtomicU64,
}

/// A failure inside a worker.
#[derive(Debug, Clone)]
pub(crate) struct WorkerError {
    pub table: QualifiedName,
    pub header: CopyHeader,
    pub message: String,
    pub sqlstate: Option<String>,
    pub ignored: bool,
    pub fatal: bool,
}

/// State shared by the parser thread and the workers.
pub(crate) struct Shared {
    pub abort: AtomicBool,
    pub errors: Mutex<Vec<WorkerError>>,
    pub continue_on_error: bool,
    free: Mutex<Vec<Vec<u8>>>,
    /// Per worker connection: table parts loaded and seconds spent loading them.
    pub busy: Mutex<Vec<(u64, f64)>>,
}

impl Shared {
    fn record(&self, e: WorkerError) {
        if e.fatal || (!e.ignored && !self.continue_on_error) {
            self.abort.store(true, Ordering::SeqCst);
        }
        self.errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(e);
    }

    fn recycle(&self, mut buf: Vec<u8>) {
        buf.clear();
        let mut f = self.free.lock().unwrap_or_else(|p| p.into_inner());
        if f.len() < 16 {
            f.push(buf);
        }
    }

    pub fn buffer(&self, cap: usize) -> Vec<u8> {
        self.free
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(cap + 64 * 1024))
    }
}

struct Worker {
    tx: SyncSender<Arc<TableJob>>,
    pending: Arc<AtomicUsize>,
    handle: JoinHandle<Option<Conn>>,
}

/// The worker connections of one data stretch of the dump.
pub(crate) struct DataPool {
    workers: Vec<Worker>,
    pub shared: Arc<Shared>,
    pub jobs: Vec<Arc<TableJob>>,
    queue_chunks: usize,
    /// When the pool started (its wall time in the report).
    pub started: Instant,
}

impl DataPool {
    pub fn start(conns: Vec<Conn>, continue_on_error: bool) -> DataPool {
        let shared = Arc::new(Shared {
            abort: AtomicBool::new(false),
            errors: Mutex::new(Vec::new()),
            continue_on_error,
            free: Mutex::new(Vec::new()),
            busy: Mutex::new(vec![(0, 0.0); conns.len()]),
        });
        let n = conns.len();
        let workers = conns
            .into_iter()
            .enumerate()
            .map(|(slot, conn)| {
                let (tx, rx) = sync_channel::<Arc<TableJob>>(2);
                let pending = Arc::new(AtomicUsize::new(0));
                let p = pending.clone();
                let sh = shared.clone();
                let handle = std::thread::spawn(move || worker(conn, slot, rx, p, sh));
                Worker {
                    tx,
                    pending,
                    handle,
                }
            })
            .collect();
        DataPool {
            workers,
            shared,
            jobs: Vec::new(),
            queue_chunks: 2 * n + 2,
            started: Instant::now(),
        }
    }

    pub fn aborted(&self) -> bool {
        self.shared.abort.load(Ordering::SeqCst)
    }

    /// Start a table: `first` holds the chunks read so far; `complete` when they are all
    /// of it. Returns the job; feed the rest with [`DataPool::feed`], then
    /// [`DataPool::close`]. `false` from those means the load is aborting.
    pub fn begin(
        &mut self,
        header: CopyHeader,
        session: Arc<Session>,
        first: Vec<Vec<u8>>,
        complete: bool,
    ) -> Option<Arc<TableJob>> {
        let parts = if complete { 1 } else { self.workers.len() };
        let job = Arc::new(TableJob {
            header,
            session,
            queue: ChunkQueue::new(self.queue_chunks.max(first.len())),
            parts,
            barrier: Barrier {
                state: Mutex::new((0, true)),
                cv: Condvar::new(),
            },
            server_rows: AtomicU64::new(0),
            failed: AtomicBool::new(false),
            started: Instant::now(),
            nanos: AtomicU64::new(0),
        });
        for c in first {
            job.queue.push_now(c);
        }
        if complete {
            job.queue.close();
        }
        let targets: Vec<usize> = if parts == 1 {
            let best = (0..self.workers.len())
                .min_by_key(|&i| self.workers[i].pending.load(Ordering::SeqCst))
                .unwrap_or(0);
            vec![best]
        } else {
            (0..self.workers.len()).collect()
        };
        for i in targets {
            let w = &self.workers[i];
            w.pending.fetch_add(1, Ordering::SeqCst);
            if w.tx.send(job.clone()).is_err() {
                self.shared.abort.store(true, Ordering::SeqCst);
                job.queue.close();
                return None;
            }
        }
        self.jobs.push(job.clone());
        Some(job)
    }

    pub fn feed(&self, job: &TableJob, chunk: Vec<u8>) -> bool {
        job.queue.push(chunk, &self.shared.abort)
    }

    pub fn close(&self, job: &TableJob) {
        job.queue.close();
    }

    /// Wait for every worker to finish; returns the connections still usable.
    pub fn finish(self) -> (Vec<Conn>, Arc<Shared>, Vec<Arc<TableJob>>) {
        let mut conns = Vec::new();
        for w in self.workers {
            drop(w.tx);
            if let Ok(Some(c)) = w.handle.join() {
                conns.push(c);
            }
        }
        (conns, self.shared, self.jobs)
    }
}

fn worker(
    mut conn: Conn,
    slot: usize,
    rx: Receiver<Arc<TableJob>>,
    pending: Arc<AtomicUsize>,
    shared: Arc<Shared>,
) -> Option<Conn> {
    for job in rx {
        let t = Instant::now();
        let r = load_part(&mut conn, &job, &shared);
        if let Some(b) = shared
            .busy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(slot)
        {
            b.0 += 1;
            b.1 += t.elapsed().as_secs_f64();
        }
        pending.fetch_sub(1, Ordering::SeqCst);
        let now = job.started.elapsed().as_nanos() as u64;
        job.nanos.fetch_max(now, Ordering::SeqCst);
        if !r {
            return None;
        }
    }
    Some(conn)
}

/// Drain what is left of a table's chunks (after a failure of this part).
fn drain(job: &TableJob, shared: &Shared) {
    while let Some(c) = job.queue.pop(&shared.abort) {
        shared.recycle(c);
    }
}

/// Load this worker's part of a table. `false` when the connection is unusable.
fn load_part(conn: &mut Conn, job: &TableJob, shared: &Shared) -> bool {
    let abort = &shared.abort;
    let fail = |conn: &Conn, e: &CopyFail| -> (WorkerError, bool) {
        let outcome = match e {
            CopyFail::Pg(e) => outcome_of(&conn.client, e),
            CopyFail::Io(e) => Outcome::Fatal(format!("sending COPY data failed: {e}")),
        };
        let (message, sqlstate, ignored, fatal) = match outcome {
            Outcome::Ok => (String::new(), None, false, false),
            Outcome::Ignored(m, c) => (m, c, true, false),
            Outcome::Failed(m, c) => (m, c, false, false),
            Outcome::Fatal(m) => (m, None, false, true),
        };
        (
            WorkerError {
                table: job.header.table.clone(),
                header: job.header.clone(),
                message,
                sqlstate,
                ignored,
                fatal,
            },
            fatal,
        )
    };
    if abort.load(Ordering::SeqCst) {
        drain(job, shared);
        return true;
    }
    if let Err(m) = conn.apply(&job.session) {
        shared.record(WorkerError {
            table: job.header.table.clone(),
            header: job.header.clone(),
            message: m,
            sqlstate: None,
            ignored: false,
            fatal: true,
        });
        return false;
    }
    let split = job.parts > 1;
    // A part starts its transaction with its first chunk; a part that gets none only
    // votes at the barrier.
    let mut first = match job.queue.pop(abort) {
        Some(c) => Some(c),
        None if !split => Some(Vec::new()),
        None => None,
    };
    let mut result: Result<u64, (WorkerError, bool)> = Ok(0);
    let mut began = false;
    if let Some(chunk) = first.take() {
        if split {
            if let Err(e) = conn.client.batch_execute("BEGIN") {
                result = Err(fail(conn, &CopyFail::Pg(e)));
            } else {
                began = true;
            }
        }
        if result.is_ok() {
            result = copy_chunks(conn, job, shared, chunk).map_err(|e| fail(conn, &e));
        }
    }
    if result.is_err() {
        drain(job, shared);
    }
    let ok = result.is_ok();
    let mut fatal = false;
    match result {
        Ok(rows) => {
            job.server_rows.fetch_add(rows, Ordering::SeqCst);
        }
        Err((e, f)) => {
            fatal = f;
            job.failed.store(true, Ordering::SeqCst);
            shared.record(e);
        }
    }
    if split {
        let decision = job.barrier.arrive(ok, job.parts, abort);
        if fatal {
            return false;
        }
        if began {
            let sql = if decision == Some(true) {
                "COMMIT"
            } else {
                "ROLLBACK"
            };
            if let Err(e) = conn.client.batch_execute(sql) {
                let (e, f) = fail(conn, &CopyFail::Pg(e));
                job.failed.store(true, Ordering::SeqCst);
                shared.record(e);
                if f {
                    return false;
                }
            }
        }
        if decision != Some(true) {
            job.failed.store(true, Ordering::SeqCst);
        }
    }
    !fatal
}

enum CopyFail {
    Pg(postgres::Error),
    Io(std::io::Error),
}

fn copy_chunks(
    conn: &mut Conn,
    job: &TableJob,
    shared: &Shared,
    first: Vec<u8>,
) -> Result<u64, CopyFail> {
    let mut w = conn
        .client
        .copy_in(job.header.sql.as_str())
        .map_err(CopyFail::Pg)?;
    let mut chunk = Some(first);
    let mut io_err = None;
    while let Some(c) = chunk.take() {
        if io_err.is_none() {
            if let Err(e) = w.write_all(&c) {
                io_err = Some(e);
            }
        }
        shared.recycle(c);
        if io_err.is_some() {
            break;
        }
        chunk = job.queue.pop(&shared.abort);
    }
    if shared.abort.load(Ordering::SeqCst) && io_err.is_none() {
        // Leave without committing anything of this table: dropping the writer aborts
        // the COPY.
        drop(w);
        return Ok(0);
    }
    if io_err.is_some() {
        drain(job, shared);
    }
    // `finish` reports the server's error if the COPY failed (also after a write error).
    match (w.finish(), io_err) {
        (Err(e), _) => Err(CopyFail::Pg(e)),
        (Ok(_), Some(e)) => Err(CopyFail::Io(e)),
        (Ok(rows), None) => Ok(rows),
    }
}
