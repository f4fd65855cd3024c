//! The post-data pool: index builds, keys and foreign keys over several connections.
//!
//! Lock levels (PostgreSQL documentation, "Explicit Locking" and `ALTER TABLE`):
//! - `CREATE INDEX` takes SHARE on its table: several builds on one table run at once.
//! - `ALTER TABLE ... ADD CONSTRAINT ... PRIMARY KEY|UNIQUE|EXCLUDE` takes ACCESS EXCLUSIVE:
//!   it runs alone on its table. The plain form pg_dump writes is split in two
//!   (`keyindex.rs`): its unique index built under SHARE beside the table's other builds,
//!   then attached under ACCESS EXCLUSIVE, alone on the table but without a build.
//! - `ALTER TABLE ... ADD CONSTRAINT ... FOREIGN KEY` takes SHARE ROW EXCLUSIVE on the table
//!   and on the referenced table. That mode conflicts with SHARE (index builds), with
//!   ACCESS EXCLUSIVE (keys) and with itself, so a foreign key runs alone on both its tables.
//!   It also needs the referenced key (a primary key or unique index) and is best checked
//!   with the tables' indexes in place, so it waits until every index and key of both
//!   tables is built.
//!
//! A unit is handed to a connection only when no unit running on another connection holds
//! a conflicting lock on any of its tables, so no connection ever waits on a lock held by
//! another of the pool's connections. Largest work first (bytes of COPY data of the tables
//! involved), dump order on ties.
//!
//! Not in the pool (they run afterwards in dump order on the main connection): a foreign key
//! on or to a partitioned table (it recurses to, and locks, partitions the scheduler does
//! not track), and every statement whose dependencies and locks are not known here:
//! triggers, rules, policies, index attachments, CHECK constraints added `NOT VALID` (ACCESS
//! EXCLUSIVE, no scan: nothing to gain), `CLUSTER ON`, comments, grants, owners,
//! materialized view refreshes, anything unrecognised.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::keyindex::KeyViaIndex;
use super::session::{skip_reason, Conn, Outcome, OwnedElsewhere, Session, StatementFacts};
use crate::dump::{QualifiedName, Statement};
use crate::progress::{Cancel, Phase};

/// What a unit is, as far as locks and dependencies go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum UnitKind {
    /// `CREATE INDEX`: SHARE on `table`.
    Index,
    /// Primary key, unique or exclusion constraint: ACCESS EXCLUSIVE on `table`. With
    /// `via_index`, two stages: the unique index under SHARE, then the attach under ACCESS
    /// EXCLUSIVE.
    Key { via_index: Option<KeyViaIndex> },
    /// Foreign key: SHARE ROW EXCLUSIVE on `table` and `references`, after their indexes.
    ForeignKey { references: QualifiedName },
}

/// One unit of post-data work.
pub(crate) struct IndexUnit {
    pub stmt: Statement,
    pub table: QualifiedName,
    pub kind: UnitKind,
    pub session: Arc<Session>,
    /// Bytes of COPY data of the tables involved (scheduling weight).
    pub weight: u64,
    /// Position in the dump (tie-break, and the order results are accounted in).
    pub order: usize,
    /// A two-stage key: whether its first stage (the unique index) succeeded, once run.
    pub index_built: Option<bool>,
    /// Seconds spent on earlier stages.
    pub spent: f64,
}

impl IndexUnit {
    /// The phase its statement belongs to (for counts and errors).
    pub fn phase(&self) -> Phase {
        match self.kind {
            UnitKind::ForeignKey { .. } => Phase::Constraints,
            _ => Phase::Indexes,
        }
    }

    /// Whether this is the first stage of a two-stage key (its unique index, under SHARE).
    fn first_stage(&self) -> bool {
        matches!(&self.kind, UnitKind::Key { via_index: Some(_) }) && self.index_built.is_none()
    }

    /// The tables it locks, each with whether the lock excludes every other unit.
    fn locks(&self) -> Vec<(&QualifiedName, bool)> {
        match &self.kind {
            UnitKind::Index => vec![(&self.table, false)],
            UnitKind::Key { .. } if self.first_stage() => vec![(&self.table, false)],
            UnitKind::Key { .. } => vec![(&self.table, true)],
            UnitKind::ForeignKey { references } if references == &self.table => {
                vec![(&self.table, true)]
            }
            UnitKind::ForeignKey { references } => {
                vec![(&self.table, true), (references, true)]
            }
        }
    }

    /// Whether it builds an index (something foreign keys wait for).
    fn builds_index(&self) -> bool {
        matches!(self.kind, UnitKind::Index | UnitKind::Key { .. })
    }
}

/// Result of one unit.
pub(crate) struct UnitResult {
    pub unit: IndexUnit,
    pub outcome: Outcome,
    pub seconds: f64,
    /// The pool connection (0-based) that ran it.
    pub slot: usize,
}

/// What one pool connection did.
#[derive(Debug, Clone, Default)]
pub(crate) struct SlotStats {
    pub units: u64,
    pub busy_seconds: f64,
}

#[derive(Default)]
struct TableLocks {
    shared: usize,
    exclusive: bool,
}

struct Sched {
    pending: Vec<IndexUnit>,
    running: HashMap<QualifiedName, TableLocks>,
    /// Index and key units not finished yet, per table (foreign keys wait for zero).
    unbuilt: HashMap<QualifiedName, usize>,
    results: Vec<UnitResult>,
}

impl Sched {
    /// Whether `u` may start now: no conflicting lock held by a running unit, and for a
    /// foreign key, every index and key of both its tables built.
    fn ready(&self, u: &IndexUnit) -> bool {
        if let UnitKind::ForeignKey { references } = &u.kind {
            if [&u.table, references]
                .iter()
                .any(|t| self.unbuilt.get(*t).is_some_and(|n| *n > 0))
            {
                return false;
            }
        }
        u.locks()
            .iter()
            .all(|(t, exclusive)| match self.running.get(*t) {
                None => true,
                Some(l) if *exclusive => l.shared == 0 && !l.exclusive,
                Some(l) => !l.exclusive,
            })
    }

    fn take(&mut self, u: &IndexUnit) {
        for (t, exclusive) in u.locks() {
            let l = self.running.entry(t.clone()).or_default();
            if exclusive {
                l.exclusive = true;
            } else {
                l.shared += 1;
            }
        }
    }

    fn release(&mut self, u: &IndexUnit) {
        for (t, exclusive) in u.locks() {
            if let Some(l) = self.running.get_mut(t) {
                if exclusive {
                    l.exclusive = false;
                } else {
                    l.shared = l.shared.saturating_sub(1);
                }
                if l.shared == 0 && !l.exclusive {
                    self.running.remove(t);
                }
            }
        }
        if u.builds_index() && !u.first_stage() {
            if let Some(n) = self.unbuilt.get_mut(&u.table) {
                *n = n.saturating_sub(1);
            }
        }
    }
}

/// Callbacks of the pool: a connection started a unit (`Some`) or has nothing more to do
/// (`None`); a unit finished (with the count finished so far).
pub(crate) struct Hooks<'a> {
    pub on_start: &'a (dyn Fn(usize, Option<&IndexUnit>) + Sync),
    pub on_done: &'a (dyn Fn(&UnitResult, usize) + Sync),
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
    hooks: &Hooks<'_>,
) -> (Vec<UnitResult>, Vec<Conn>, Vec<SlotStats>) {
    units.sort_by(priority);
    let mut unbuilt: HashMap<QualifiedName, usize> = HashMap::new();
    for u in units.iter().filter(|u| u.builds_index()) {
        *unbuilt.entry(u.table.clone()).or_default() += 1;
    }
    let sched = Mutex::new(Sched {
        pending: units,
        running: HashMap::new(),
        unbuilt,
        results: Vec::new(),
    });
    let cv = Condvar::new();
    let mut usable = Vec::new();
    let mut stats = Vec::new();
    std::thread::scope(|scope| {
        let handles: Vec<_> = conns
            .into_iter()
            .enumerate()
            .map(|(slot, conn)| {
                let sched = &sched;
                let cv = &cv;
                scope.spawn(move || {
                    unit_worker(
                        conn,
                        slot,
                        sched,
                        cv,
                        Policy {
                            kept,
                            stop,
                            cancel,
                            continue_on_error,
                        },
                        hooks,
                    )
                })
            })
            .collect();
        for h in handles {
            if let Ok((c, st)) = h.join() {
                usable.extend(c);
                stats.push(st);
            }
        }
    });
    let s = sched.into_inner().unwrap_or_else(|p| p.into_inner());
    (s.results, usable, stats)
}

/// Largest work first, dump order on ties.
fn priority(a: &IndexUnit, b: &IndexUnit) -> std::cmp::Ordering {
    b.weight.cmp(&a.weight).then(a.order.cmp(&b.order))
}

/// Run a statement; a deadlock between concurrent units is Rewind's doing, not the dump's:
/// run it again once.
fn run_retrying(conn: &mut Conn, sql: &str) -> Outcome {
    let o = conn.run(sql);
    if matches!(&o, Outcome::Failed(_, Some(code)) if code == "40P01") {
        return conn.run(sql);
    }
    o
}

/// Run one stage of a unit. The second stage of a two-stage key attaches its index, or
/// (when the index failed, or the attach does) drops it and runs the dump's statement, so
/// the outcome is psql's.
fn run_stage(conn: &mut Conn, unit: &IndexUnit) -> Outcome {
    let UnitKind::Key { via_index: Some(k) } = &unit.kind else {
        return run_retrying(conn, &unit.stmt.sql);
    };
    match unit.index_built {
        None => run_retrying(conn, &k.index_sql),
        Some(true) => match run_retrying(conn, &k.attach_sql) {
            Outcome::Ok => Outcome::Ok,
            Outcome::Fatal(m) => Outcome::Fatal(m),
            _ => match conn.run(&k.drop_sql) {
                Outcome::Fatal(m) => Outcome::Fatal(m),
                _ => run_retrying(conn, &unit.stmt.sql),
            },
        },
        Some(false) => run_retrying(conn, &unit.stmt.sql),
    }
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
    slot: usize,
    sched: &Mutex<Sched>,
    cv: &Condvar,
    policy: Policy<'_>,
    hooks: &Hooks<'_>,
) -> (Option<Conn>, SlotStats) {
    let Policy { stop, cancel, .. } = policy;
    let mut stats = SlotStats::default();
    loop {
        let unit = {
            let mut s = sched.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                if stop.load(Ordering::SeqCst) || cancel.is_cancelled() || s.pending.is_empty() {
                    drop(s);
                    (hooks.on_start)(slot, None);
                    return (Some(conn), stats);
                }
                match s.pending.iter().position(|u| s.ready(u)) {
                    Some(i) => {
                        let u = s.pending.remove(i);
                        s.take(&u);
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
        (hooks.on_start)(slot, Some(&unit));
        let started = Instant::now();
        let outcome = match conn.apply(&unit.session) {
            Err(m) => Outcome::Fatal(m),
            Ok(()) => run_stage(&mut conn, &unit),
        };
        let fatal = matches!(outcome, Outcome::Fatal(_));
        let elapsed = started.elapsed().as_secs_f64();
        stats.busy_seconds += elapsed;
        let mut unit = unit;
        if unit.first_stage() && !fatal {
            // Back into the queue for the attach; any error of the index stage is settled
            // by running the dump's own statement there.
            {
                let mut s = sched.lock().unwrap_or_else(|p| p.into_inner());
                s.release(&unit);
                unit.index_built = Some(matches!(outcome, Outcome::Ok));
                unit.spent += elapsed;
                let at = s
                    .pending
                    .partition_point(|p| priority(p, &unit) == std::cmp::Ordering::Less);
                s.pending.insert(at, unit);
            }
            cv.notify_all();
            continue;
        }
        if policy.stops(&unit.stmt.sql, &outcome) {
            stop.store(true, Ordering::SeqCst);
        }
        stats.units += 1;
        let seconds = unit.spent + elapsed;
        let result = UnitResult {
            unit,
            outcome,
            seconds,
            slot,
        };
        {
            let mut s = sched.lock().unwrap_or_else(|p| p.into_inner());
            s.release(&result.unit);
            let n = s.results.len() + 1;
            (hooks.on_done)(&result, n);
            s.results.push(result);
        }
        cv.notify_all();
        if fatal {
            (hooks.on_start)(slot, None);
            return (None, stats);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dump::Position;

    fn unit(table: &str, kind: UnitKind) -> IndexUnit {
        IndexUnit {
            stmt: Statement {
                sql: String::new(),
                toc: None,
                at: Position::default(),
            },
            table: QualifiedName::new(Some("public"), table),
            kind,
            session: Arc::new(Session::default()),
            weight: 0,
            order: 0,
            index_built: None,
            spent: 0.0,
        }
    }

    fn fk(table: &str, references: &str) -> IndexUnit {
        unit(
            table,
            UnitKind::ForeignKey {
                references: QualifiedName::new(Some("public"), references),
            },
        )
    }

    fn sched(units: &[&IndexUnit]) -> Sched {
        let mut unbuilt: HashMap<QualifiedName, usize> = HashMap::new();
        for u in units.iter().filter(|u| u.builds_index()) {
            *unbuilt.entry(u.table.clone()).or_default() += 1;
        }
        Sched {
            pending: Vec::new(),
            running: HashMap::new(),
            unbuilt,
            results: Vec::new(),
        }
    }

    #[test]
    fn foreign_keys_wait_for_both_tables_indexes_and_run_alone_on_them() {
        let gin = unit("notes", UnitKind::Index);
        let users_key = unit("users", UnitKind::Key { via_index: None });
        let notes_users = fk("notes", "users");
        let projects_users = fk("projects", "users");
        let tree = fk("namespaces", "namespaces");
        let mut s = sched(&[&gin, &users_key]);
        // Nothing built yet: only tables without pending index work may go.
        assert!(!s.ready(&notes_users));
        assert!(!s.ready(&projects_users));
        assert!(s.ready(&tree));
        s.take(&gin);
        s.take(&users_key);
        s.release(&users_key);
        // users is built; notes' index still runs (SHARE vs SHARE ROW EXCLUSIVE).
        assert!(s.ready(&projects_users));
        assert!(!s.ready(&notes_users));
        // Two foreign keys touching users never run together (self-exclusive lock).
        s.take(&projects_users);
        s.release(&gin);
        assert!(!s.ready(&notes_users));
        // Nor an index build on a table a foreign key holds.
        let late = unit("projects", UnitKind::Index);
        assert!(!s.ready(&late));
        s.release(&projects_users);
        assert!(s.ready(&notes_users));
        assert!(s.ready(&late));
        // A self-reference locks its one table once and releases it.
        s.take(&tree);
        assert!(!s.ready(&unit("namespaces", UnitKind::Index)));
        s.release(&tree);
        assert!(s.running.is_empty());
    }
}
