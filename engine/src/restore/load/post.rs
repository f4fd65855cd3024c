//! Post-data index builds over several connections.
//!
//! `CREATE INDEX` takes a SHARE lock, so several can build on the same table at once;
//! `ALTER TABLE ... ADD CONSTRAINT ... PRIMARY KEY|UNIQUE|EXCLUDE` takes ACCESS EXCLUSIVE,
//! so it runs alone on its table (never waiting on a lock while holding a connection).
//! Largest tables first. Everything else of post-data (foreign keys, attachments,
//! triggers, ...) runs afterwards in dump order on the main connection.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use super::session::{skip_reason, Conn, Outcome, OwnedElsewhere, Session, StatementFacts};
use crate::dump::{QualifiedName, Statement};
use crate::progress::Cancel;

/// One index build.
pub(crate) struct IndexUnit {
    pub stmt: Statement,
    pub table: QualifiedName,
    /// Needs the table alone (key constraints).
    pub exclusive: bool,
    pub session: Arc<Session>,
    /// Bytes of COPY data the table had (scheduling weight).
    pub weight: u64,
    /// Position in the dump (tie-break).
    pub order: usize,
}

/// Result of one unit.
pub(crate) struct UnitResult {
    pub unit: IndexUnit,
    pub outcome: Outcome,
    pub seconds: f64,
}

#[derive(Default)]
struct TableLocks {
    shared: usize,
    exclusive: bool,
}

struct Sched {
    pending: Vec<IndexUnit>,
    running: HashMap<QualifiedName, TableLocks>,
    results: Vec<UnitResult>,
}

/// Run the units over `conns`; returns the results (in completion order) and the
/// connections still usable. Stops handing out work when `stop` is set (cancel, or a
/// failure without continue-on-error); `on_done` is called after each unit.
pub(crate) fn run_units(
    mut units: Vec<IndexUnit>,
    conns: Vec<Conn>,
    kept: &OwnedElsewhere,
    stop: &AtomicBool,
    cancel: &Cancel,
    continue_on_error: bool,
    on_done: &(dyn Fn(&UnitResult, usize) + Sync),
) -> (Vec<UnitResult>, Vec<Conn>) {
    units.sort_by(|a, b| b.weight.cmp(&a.weight).then(a.order.cmp(&b.order)));
    let sched = Mutex::new(Sched {
        pending: units,
        running: HashMap::new(),
        results: Vec::new(),
    });
    let cv = Condvar::new();
    let mut usable = Vec::new();
    std::thread::scope(|scope| {
        let handles: Vec<_> = conns
            .into_iter()
            .map(|conn| {
                let sched = &sched;
                let cv = &cv;
                scope.spawn(move || {
                    unit_worker(
                        conn,
                        sched,
                        cv,
                        Policy {
                            kept,
                            stop,
                            cancel,
                            continue_on_error,
                        },
                        on_done,
                    )
                })
            })
            .collect();
        for h in handles {
            if let Ok(Some(c)) = h.join() {
                usable.push(c);
            }
        }
    });
    let s = sched.into_inner().unwrap_or_else(|p| p.into_inner());
    (s.results, usable)
}

/// When a worker stops taking work.
#[derive(Clone, Copy)]
struct Policy<'a> {
    kept: &'a OwnedElsewhere,
    stop: &'a AtomicBool,
    cancel: &'a Cancel,
    continue_on_error: bool,
}

impl Policy<'_> {
    /// Whether this outcome stops every worker: a lost connection, or an error that is
    /// neither accepted (continue-on-error) nor skipped as GitLab's restore does.
    fn stops(&self, sql: &str, outcome: &Outcome) -> bool {
        match outcome {
            Outcome::Fatal(_) => true,
            Outcome::Failed(m, code) => {
                !self.continue_on_error
                    && skip_reason(&StatementFacts::of(sql), code.as_deref(), m, self.kept)
                        .is_none()
            }
            _ => false,
        }
    }
}

fn unit_worker(
    mut conn: Conn,
    sched: &Mutex<Sched>,
    cv: &Condvar,
    policy: Policy<'_>,
    on_done: &(dyn Fn(&UnitResult, usize) + Sync),
) -> Option<Conn> {
    let Policy { stop, cancel, .. } = policy;
    loop {
        let unit = {
            let mut s = sched.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                if stop.load(Ordering::SeqCst) || cancel.is_cancelled() || s.pending.is_empty() {
                    return Some(conn);
                }
                let pick = s.pending.iter().position(|u| {
                    let l = s.running.get(&u.table);
                    match l {
                        None => true,
                        Some(l) if u.exclusive => l.shared == 0 && !l.exclusive,
                        Some(l) => !l.exclusive,
                    }
                });
                match pick {
                    Some(i) => {
                        let u = s.pending.remove(i);
                        let l = s.running.entry(u.table.clone()).or_default();
                        if u.exclusive {
                            l.exclusive = true;
                        } else {
                            l.shared += 1;
                        }
                        break u;
                    }
                    None => {
                        s = cv
                            .wait_timeout(s, Duration::from_millis(200))
                            .unwrap_or_else(|p| p.into_inner())
                            .0;
                    }
                }
            }
        };
        let started = std::time::Instant::now();
        let outcome = match conn.apply(&unit.session) {
            Err(m) => Outcome::Fatal(m),
            Ok(()) => {
                let mut o = conn.run(&unit.stmt.sql);
                // A deadlock between concurrent builds is Rewind's doing, not the dump's:
                // run the statement again once.
                if matches!(&o, Outcome::Failed(_, Some(code)) if code == "40P01") {
                    o = conn.run(&unit.stmt.sql);
                }
                o
            }
        };
        let fatal = matches!(outcome, Outcome::Fatal(_));
        if policy.stops(&unit.stmt.sql, &outcome) {
            stop.store(true, Ordering::SeqCst);
        }
        let result = UnitResult {
            unit,
            outcome,
            seconds: started.elapsed().as_secs_f64(),
        };
        {
            let mut s = sched.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(l) = s.running.get_mut(&result.unit.table) {
                if result.unit.exclusive {
                    l.exclusive = false;
                } else {
                    l.shared -= 1;
                }
                if l.shared == 0 && !l.exclusive {
                    s.running.remove(&result.unit.table);
                }
            }
            let n = s.results.len() + 1;
            on_done(&result, n);
            s.results.push(result);
        }
        cv.notify_all();
        if fatal {
            return None;
        }
    }
}
