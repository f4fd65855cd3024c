//! The loss report: what a restore throws away, read from the live database before the
//! drop. Rows created and rows updated after the backup's `backup_created_at` in every
//! table the backup's dump also has (with `created_at`/`updated_at` columns), the tables the
//! failed upgrade added with their rows, and the projects pushed to since (GitLab's
//! `events.action = 5`).
//!
//! Read-only: one `READ ONLY` transaction; every statement runs under a
//! `statement_timeout`, inside a savepoint, so one huge table cannot stall the recovery
//! (it is then reported as not counted). A large table without an index leading with the
//! compared column is not scanned: the planner's estimate is reported, marked as one.
//!
//! GitLab stores `timestamp without time zone` as UTC: such columns are compared with the
//! backup time written in UTC, `timestamptz` columns with the time and its `+00` offset, so
//! the session's `TimeZone` never matters.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use postgres::error::SqlState;
use postgres::{Client, Transaction};
use serde::Serialize;

use super::leftovers::{DumpCatalog, LeftoverKind, Leftovers};
use crate::pg::conn::describe_pg_error;
use crate::pg::ident::{qualified, quote_literal};

/// GitLab's user-facing tables, always reported (when present in both databases), with the
/// words used in the summary (plural, singular).
pub const KEY_TABLES: [(&str, &str, &str); 8] = [
    ("users", "users", "user"),
    ("projects", "projects", "project"),
    ("namespaces", "namespaces", "namespace"),
    ("issues", "issues", "issue"),
    ("merge_requests", "merge requests", "merge request"),
    ("notes", "notes", "note"),
    ("ci_pipelines", "pipelines", "pipeline"),
    ("events", "events", "event"),
];

/// GitLab's `Event` action for a push (`pushed: 5`).
pub const PUSHED_ACTION: i16 = 5;

/// How many project paths the report lists.
pub const MAX_PATHS: usize = 10;

/// What a statement that ran out of time is reported as.
pub const NOT_COUNTED_TIMEOUT: &str = "not counted (timeout)";

/// The note about `updated_at` every report carries.
pub const MIGRATIONS_NOTE: &str = "updated counts may include rows that the failed upgrade's migrations touched (they set updated_at too)";

/// Limits of the count.
#[derive(Debug, Clone)]
pub struct LossOptions {
    /// Above this many rows (`pg_class.reltuples` or `pg_stat_user_tables.n_live_tup`), a
    /// table without a usable index is estimated, not scanned.
    pub estimate_above: f64,
    /// `statement_timeout` of every statement.
    pub statement_timeout: Duration,
}

impl Default for LossOptions {
    fn default() -> Self {
        LossOptions {
            estimate_above: 1_000_000.0,
            statement_timeout: Duration::from_secs(10),
        }
    }
}

/// Rows of one table written since the backup.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableLoss {
    /// `name` in `public`, else `schema.name`.
    pub table: String,
    /// Rows with `created_at` after the backup; `None` when not counted (see `notes`) or
    /// the table has no `created_at`.
    pub created: Option<u64>,
    /// Rows with `updated_at` after the backup and `created_at` not after it.
    pub updated: Option<u64>,
    /// A count is the planner's estimate (large table, no usable index).
    pub estimate: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// A table the failed upgrade added (not in the backup's dump), and its rows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewTable {
    pub table: String,
    pub rows: Option<u64>,
    pub estimate: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// What a restore of the backup throws away.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LossReport {
    pub backup_created_at: DateTime<Utc>,
    /// The key tables, and every other table with rows written since (or not counted).
    pub tables: Vec<TableLoss>,
    /// Tables looked at (in both databases, with `created_at` or `updated_at`).
    pub tables_checked: usize,
    pub new_tables: Vec<NewTable>,
    /// Distinct projects with a push event since the backup; `None` when not counted.
    pub pushed_projects: Option<u64>,
    /// Up to [`MAX_PATHS`] of their paths (`routes`), sorted.
    pub pushed_project_paths: Vec<String>,
    pub notes: Vec<String>,
}

/// Errors of the loss report (a table that cannot be counted is a note, not an error).
#[derive(Debug, thiserror::Error)]
#[error(
    "reading what was written since the backup failed while {what}: {detail}. Nothing was changed"
)]
pub struct LossError {
    pub what: &'static str,
    pub detail: String,
}

fn err(what: &'static str) -> impl Fn(postgres::Error) -> LossError {
    move |e| LossError {
        what,
        detail: describe_pg_error(&e),
    }
}

/// A timestamp column of a table.
#[derive(Debug, Clone, Copy)]
struct Column {
    tz: bool,
    indexed: bool,
}

#[derive(Debug, Default)]
struct LiveTable {
    rows: f64,
    created: Option<Column>,
    updated: Option<Column>,
}

/// The outcome of one count.
enum Tally {
    Exact(u64),
    Estimate(u64),
    NotCounted(String),
}

impl LossReport {
    /// Rows created since the backup, over all tables counted.
    pub fn created_total(&self) -> u64 {
        self.tables.iter().filter_map(|t| t.created).sum()
    }

    /// Rows updated since the backup, over all tables counted.
    pub fn updated_total(&self) -> u64 {
        self.tables.iter().filter_map(|t| t.updated).sum()
    }

    /// Whether any number is an estimate or was not counted.
    pub fn approximate(&self) -> bool {
        self.tables
            .iter()
            .any(|t| t.estimate || !t.notes.is_empty())
            || self
                .new_tables
                .iter()
                .any(|t| t.estimate || t.rows.is_none())
            || self.pushed_projects.is_none()
    }

    /// One paragraph: `Written since the backup (2024-01-01 10:00 UTC): 3 issues, 2 merge
    /// requests, 40 rows in 5 other tables created; 7 rows updated; 2 projects pushed to;
    /// 1 new table with 12 rows`.
    pub fn summary(&self) -> String {
        let approx = |estimate: bool| if estimate { "~" } else { "" };
        let mut created = Vec::new();
        let mut other_rows = 0u64;
        let mut other_tables = 0usize;
        let mut other_est = false;
        for t in &self.tables {
            let Some(n) = t.created.filter(|n| *n > 0) else {
                continue;
            };
            match KEY_TABLES.iter().find(|k| k.0 == t.table) {
                Some((_, plural, singular)) => created.push(format!(
                    "{}{n} {}",
                    approx(t.estimate),
                    if n == 1 { singular } else { plural }
                )),
                None => {
                    other_rows += n;
                    other_tables += 1;
                    other_est |= t.estimate;
                }
            }
        }
        if other_tables > 0 {
            created.push(format!(
                "{}{other_rows} row{} in {other_tables} other table{}",
                approx(other_est),
                plural_s(other_rows),
                plural_s(other_tables as u64)
            ));
        }
        let mut parts = Vec::new();
        parts.push(if created.is_empty() {
            "nothing created".to_string()
        } else {
            format!("{} created", created.join(", "))
        });
        let updated = self.updated_total();
        let upd_est = self
            .tables
            .iter()
            .any(|t| t.estimate && t.updated.is_some());
        parts.push(format!(
            "{}{updated} row{} updated",
            approx(upd_est && updated > 0),
            plural_s(updated)
        ));
        parts.push(match self.pushed_projects {
            Some(n) => format!("{n} project{} pushed to", plural_s(n)),
            None => "projects pushed to: not counted".into(),
        });
        if !self.new_tables.is_empty() {
            let rows: u64 = self.new_tables.iter().filter_map(|t| t.rows).sum();
            let est = self.new_tables.iter().any(|t| t.estimate);
            parts.push(format!(
                "{} new table{} with {}{rows} row{}",
                self.new_tables.len(),
                plural_s(self.new_tables.len() as u64),
                approx(est),
                plural_s(rows)
            ));
        }
        let not_counted = self.tables.iter().filter(|t| !t.notes.is_empty()).count()
            + self.new_tables.iter().filter(|t| t.rows.is_none()).count();
        if not_counted > 0 {
            parts.push(format!(
                "{not_counted} table{} not counted",
                plural_s(not_counted as u64)
            ));
        }
        format!(
            "Written since the backup ({} UTC): {}",
            self.backup_created_at.format("%Y-%m-%d %H:%M"),
            parts.join("; ")
        )
    }
}

fn plural_s(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

pub(crate) fn display_name(schema: &str, name: &str) -> String {
    if schema == "public" {
        name.to_string()
    } else {
        format!("{schema}.{name}")
    }
}

/// The backup time as a literal of the column's type: UTC, with `+00` for `timestamptz`.
pub(crate) fn time_literal(t: DateTime<Utc>, tz: bool) -> String {
    let text = t.format("%Y-%m-%d %H:%M:%S%.6f").to_string();
    if tz {
        format!("{}::timestamptz", quote_literal(&format!("{text}+00")))
    } else {
        format!("{}::timestamp", quote_literal(&text))
    }
}

/// Run a `SELECT count(*)` in a savepoint; a timeout or an error is reported, not raised.
fn count(tx: &mut Transaction<'_>, sql: &str) -> Result<Tally, LossError> {
    let mut sp = tx.transaction().map_err(err("opening a savepoint"))?;
    match sp.query_one(sql, &[]) {
        Ok(row) => {
            let n: i64 = row.get(0);
            sp.commit().map_err(err("releasing a savepoint"))?;
            Ok(Tally::Exact(n.max(0) as u64))
        }
        Err(e) => {
            sp.rollback().map_err(err("rolling back a savepoint"))?;
            Ok(Tally::NotCounted(
                if e.code() == Some(&SqlState::QUERY_CANCELED) {
                    NOT_COUNTED_TIMEOUT.to_string()
                } else {
                    format!("not counted ({})", describe_pg_error(&e))
                },
            ))
        }
    }
}

/// The planner's row estimate of `SELECT 1 FROM <from> WHERE <cond>` (first plan line).
fn estimate(tx: &mut Transaction<'_>, from: &str, cond: &str) -> Result<Tally, LossError> {
    let sql = format!("EXPLAIN SELECT 1 FROM {from} WHERE {cond}");
    let mut sp = tx.transaction().map_err(err("opening a savepoint"))?;
    match sp.query(&sql, &[]) {
        Ok(rows) => {
            sp.commit().map_err(err("releasing a savepoint"))?;
            let first: Option<String> = rows.first().map(|r| r.get(0));
            let n = first.as_deref().and_then(|l| {
                let rest = &l[l.find(" rows=")? + 6..];
                let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
                digits.parse::<u64>().ok()
            });
            Ok(match n {
                Some(n) => Tally::Estimate(n),
                None => Tally::NotCounted("not estimated (no plan estimate)".into()),
            })
        }
        Err(e) => {
            sp.rollback().map_err(err("rolling back a savepoint"))?;
            Ok(Tally::NotCounted(format!(
                "not estimated ({})",
                describe_pg_error(&e)
            )))
        }
    }
}

const LIVE_TABLES: &str = "
SELECT n.nspname::text, c.relname::text, a.attname::text, t.typname::text,
       CASE WHEN c.relkind = 'p' THEN
         (SELECT COALESCE(sum(GREATEST(cc.reltuples::float8, COALESCE(ss.n_live_tup, 0)::float8, 0)), 0)
            FROM pg_partition_tree(c.oid) pt
            JOIN pg_class cc ON cc.oid = pt.relid
            LEFT JOIN pg_stat_user_tables ss ON ss.relid = cc.oid
           WHERE pt.isleaf)
       ELSE GREATEST(c.reltuples::float8, COALESCE(s.n_live_tup, 0)::float8, 0) END,
       EXISTS (SELECT 1 FROM pg_index i
                 JOIN pg_class ic ON ic.oid = i.indexrelid
                 JOIN pg_am am ON am.oid = ic.relam
                WHERE i.indrelid = c.oid AND i.indkey[0] = a.attnum
                  AND i.indisvalid AND i.indpred IS NULL
                  AND am.amname IN ('btree', 'brin'))
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                     AND a.attname IN ('created_at', 'updated_at')
  JOIN pg_type t ON t.oid = a.atttypid
  LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
 WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
   AND t.typname IN ('timestamp', 'timestamptz')";

/// Count what was written since `backup_created_at` in the live database `client` is
/// connected to: tables of `dump` (the backup's catalogue), the tables of `leftovers`
/// (added by the failed upgrade), the projects pushed to. Read-only.
pub fn since_backup(
    client: &mut Client,
    backup_created_at: DateTime<Utc>,
    dump: &DumpCatalog,
    leftovers: &Leftovers,
    opts: &LossOptions,
) -> Result<LossReport, LossError> {
    let mut tx = client
        .build_transaction()
        .read_only(true)
        .start()
        .map_err(err("starting a read-only transaction"))?;
    let ms = opts.statement_timeout.as_millis().max(1);
    tx.batch_execute(&format!(
        "SET LOCAL statement_timeout = {}",
        quote_literal(&format!("{ms}ms"))
    ))
    .map_err(err("setting the statement timeout"))?;

    let mut live: BTreeMap<(String, String), LiveTable> = BTreeMap::new();
    for r in tx
        .query(LIVE_TABLES, &[])
        .map_err(err("listing the tables' timestamp columns"))?
    {
        let key = (r.get::<_, String>(0), r.get::<_, String>(1));
        let col: String = r.get(2);
        // Only columns the backup's tables had too.
        if let Some(cols) = dump.columns.get(&key) {
            if !cols.contains(&col) {
                continue;
            }
        }
        let c = Column {
            tz: r.get::<_, String>(3) == "timestamptz",
            indexed: r.get(5),
        };
        let t = live.entry(key).or_default();
        t.rows = r.get(4);
        if col == "created_at" {
            t.created = Some(c);
        } else {
            t.updated = Some(c);
        }
    }
    live.retain(|(s, n), _| dump.has("TABLE", s, n));

    // Key tables first, in their order, then the others by name.
    let mut order: Vec<(String, String)> = Vec::new();
    for (k, _, _) in KEY_TABLES {
        if let Some((key, _)) = live.iter().find(|((s, n), _)| n == k && s == "public") {
            order.push(key.clone());
        }
    }
    for key in live.keys() {
        if !order.contains(key) {
            order.push(key.clone());
        }
    }

    let mut tables = Vec::new();
    for key in &order {
        let t = &live[key];
        let from = qualified(&key.0, &key.1);
        let large = t.rows > opts.estimate_above;
        let mut loss = TableLoss {
            table: display_name(&key.0, &key.1),
            created: None,
            updated: None,
            estimate: false,
            notes: Vec::new(),
        };
        let take = |what: &str, c: Tally, loss: &mut TableLoss| match c {
            Tally::Exact(n) => Some(n),
            Tally::Estimate(n) => {
                loss.estimate = true;
                Some(n)
            }
            Tally::NotCounted(why) => {
                loss.notes.push(format!("{what}: {why}"));
                None
            }
        };
        if let Some(c) = t.created {
            let cond = format!("\"created_at\" > {}", time_literal(backup_created_at, c.tz));
            let got = if large && !c.indexed {
                estimate(&mut tx, &from, &cond)?
            } else {
                count(
                    &mut tx,
                    &format!("SELECT count(*) FROM {from} WHERE {cond}"),
                )?
            };
            loss.created = take("created", got, &mut loss);
        }
        if let Some(u) = t.updated {
            let mut cond = format!("\"updated_at\" > {}", time_literal(backup_created_at, u.tz));
            match t.created {
                Some(c) => cond.push_str(&format!(
                    " AND (\"created_at\" <= {} OR \"created_at\" IS NULL)",
                    time_literal(backup_created_at, c.tz)
                )),
                None => loss
                    .notes
                    .push("updated: no created_at, so rows created since count too".into()),
            }
            let got = if large && !u.indexed {
                estimate(&mut tx, &from, &cond)?
            } else {
                count(
                    &mut tx,
                    &format!("SELECT count(*) FROM {from} WHERE {cond}"),
                )?
            };
            loss.updated = take("updated", got, &mut loss);
        }
        let key_table = key.0 == "public" && KEY_TABLES.iter().any(|k| k.0 == key.1);
        let written = loss.created.unwrap_or(0) + loss.updated.unwrap_or(0) > 0;
        let uncounted = (t.created.is_some() && loss.created.is_none())
            || (t.updated.is_some() && loss.updated.is_none());
        if key_table || written || uncounted {
            tables.push(loss);
        }
    }

    let mut new_tables = Vec::new();
    for l in leftovers
        .items
        .iter()
        .filter(|l| l.kind == LeftoverKind::Table)
    {
        let row = tx
            .query_opt(
                "SELECT c.relispartition,
                        CASE WHEN c.relkind = 'p' THEN
                          (SELECT COALESCE(sum(GREATEST(cc.reltuples::float8, 0)), 0)
                             FROM pg_partition_tree(c.oid) pt JOIN pg_class cc ON cc.oid = pt.relid
                            WHERE pt.isleaf)
                        ELSE GREATEST(c.reltuples::float8, COALESCE(s.n_live_tup, 0)::float8, 0) END
                   FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                   LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
                  WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')",
                &[&l.schema, &l.name],
            )
            .map_err(err("reading the new tables' sizes"))?;
        // Gone since the inventory, or a partition (its rows are its parent's).
        let Some(row) = row else { continue };
        if row.get::<_, bool>(0) {
            continue;
        }
        let rows: f64 = row.get(1);
        let mut t = NewTable {
            table: display_name(&l.schema, &l.name),
            rows: None,
            estimate: false,
            notes: Vec::new(),
        };
        if rows > opts.estimate_above {
            t.rows = Some(rows as u64);
            t.estimate = true;
        } else {
            let from = qualified(&l.schema, &l.name);
            match count(&mut tx, &format!("SELECT count(*) FROM {from}"))? {
                Tally::Exact(n) | Tally::Estimate(n) => t.rows = Some(n),
                Tally::NotCounted(why) => {
                    t.rows = Some(rows as u64);
                    t.estimate = true;
                    t.notes.push(why);
                }
            }
        }
        new_tables.push(t);
    }

    let mut notes = vec![MIGRATIONS_NOTE.to_string()];
    let (pushed_projects, pushed_project_paths) =
        pushed(&mut tx, backup_created_at, &live, &mut notes)?;
    if tables.iter().any(|t| t.estimate) || new_tables.iter().any(|t| t.estimate) {
        notes.push(format!(
            "~ marks the planner's estimate: a table of more than {} rows without an index on the column compared is not scanned",
            opts.estimate_above as u64
        ));
    }
    tx.rollback()
        .map_err(err("ending the read-only transaction"))?;
    Ok(LossReport {
        backup_created_at,
        tables,
        tables_checked: live.len(),
        new_tables,
        pushed_projects,
        pushed_project_paths,
        notes,
    })
}

/// Distinct projects with a push event since the backup, and up to [`MAX_PATHS`] paths.
fn pushed(
    tx: &mut Transaction<'_>,
    at: DateTime<Utc>,
    live: &BTreeMap<(String, String), LiveTable>,
    notes: &mut Vec<String>,
) -> Result<(Option<u64>, Vec<String>), LossError> {
    let key = ("public".to_string(), "events".to_string());
    let Some(created) = live.get(&key).and_then(|t| t.created) else {
        notes.push("projects pushed to: no events table with created_at".into());
        return Ok((None, Vec::new()));
    };
    let has_cols = |tx: &mut Transaction<'_>, table: &str, cols: &[&str]| {
        tx.query_one(
            "SELECT count(*) FROM pg_attribute
              WHERE attrelid = to_regclass($1) AND attname = ANY($2) AND NOT attisdropped",
            &[&table, &cols],
        )
        .map(|r| r.get::<_, i64>(0) == cols.len() as i64)
        .map_err(err("reading the events and routes columns"))
    };
    if !has_cols(tx, "public.events", &["action", "project_id"])? {
        notes.push("projects pushed to: events has no action or project_id".into());
        return Ok((None, Vec::new()));
    }
    let pushes = format!(
        "SELECT DISTINCT \"project_id\" FROM \"public\".\"events\"
          WHERE \"action\" = {PUSHED_ACTION} AND \"project_id\" IS NOT NULL AND \"created_at\" > {}",
        time_literal(at, created.tz)
    );
    let n = match count(tx, &format!("SELECT count(*) FROM ({pushes}) p"))? {
        Tally::Exact(n) | Tally::Estimate(n) => n,
        Tally::NotCounted(why) => {
            notes.push(format!("projects pushed to: {why}"));
            return Ok((None, Vec::new()));
        }
    };
    let mut paths = Vec::new();
    if n > 0 && has_cols(tx, "public.routes", &["source_type", "source_id", "path"])? {
        let sql = format!(
            "SELECT \"path\"::text FROM \"public\".\"routes\"
              WHERE \"source_type\" = 'Project' AND \"source_id\" IN ({pushes})
              ORDER BY 1 LIMIT {MAX_PATHS}"
        );
        let mut sp = tx.transaction().map_err(err("opening a savepoint"))?;
        match sp.query(&sql, &[]) {
            Ok(rows) => {
                sp.commit().map_err(err("releasing a savepoint"))?;
                paths = rows.iter().map(|r| r.get(0)).collect();
            }
            Err(e) => {
                sp.rollback().map_err(err("rolling back a savepoint"))?;
                notes.push(format!(
                    "project paths not listed ({})",
                    if e.code() == Some(&SqlState::QUERY_CANCELED) {
                        "timeout".to_string()
                    } else {
                        describe_pg_error(&e)
                    }
                ));
            }
        }
    }
    Ok((Some(n), paths))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg::cluster::TempCluster;
    use crate::restore::leftovers::Leftover;
    use chrono::TimeZone;

    /// The backup was made at 12:00 UTC.
    fn backup_time() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 6, 1, 12, 0, 0).unwrap()
    }

    const SCHEMA: &str = "
        CREATE TABLE issues (id bigserial PRIMARY KEY, title text,
            created_at timestamp NOT NULL, updated_at timestamp NOT NULL);
        CREATE TABLE notes (id bigserial PRIMARY KEY,
            created_at timestamptz, updated_at timestamptz);
        CREATE TABLE projects (id bigserial PRIMARY KEY,
            created_at timestamp, updated_at timestamp);
        CREATE TABLE routes (id bigserial PRIMARY KEY, source_id bigint, source_type text, path text);
        CREATE TABLE events (id bigserial PRIMARY KEY, project_id bigint, action smallint,
            created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL);
        CREATE TABLE ci_pipelines (id bigserial PRIMARY KEY, created_at timestamp);
        CREATE INDEX index_ci_pipelines_on_created_at ON ci_pipelines (created_at);
        CREATE TABLE audit_logs (id bigserial PRIMARY KEY, created_at timestamp);
        CREATE TABLE quiet (id bigserial PRIMARY KEY, created_at timestamp, updated_at timestamp);
        CREATE TABLE plain (id bigserial PRIMARY KEY, name text);";

    /// Rows on both sides of 12:00 UTC. The timestamp-without-time-zone rows at 10:00 and
    /// 13:00 are misjudged by a comparison in the session's zone (New York, UTC-4).
    const DATA: &str = "
        INSERT INTO issues (title, created_at, updated_at) VALUES
            ('old', '2024-06-01 10:00', '2024-06-01 10:00'),
            ('old, edited', '2024-05-01 00:00', '2024-06-01 13:00'),
            ('old, edited late', '2024-06-01 11:59:59', '2024-06-02 09:00'),
            ('new', '2024-06-01 13:00', '2024-06-01 13:00'),
            ('new too', '2024-06-01 12:00:00.5', '2024-06-01 12:00:00.5'),
            ('newest', '2024-07-01 00:00', '2024-07-01 00:00');
        INSERT INTO notes (created_at, updated_at) VALUES
            ('2024-06-01 07:30-05', '2024-06-01 07:30-05'),   -- 12:30 UTC: created
            ('2024-06-01 13:30+02', '2024-06-01 13:30+02'),   -- 11:30 UTC: old
            ('2024-06-01 13:30+02', '2024-06-01 12:30+00');   -- old, updated
        INSERT INTO projects (id, created_at, updated_at) VALUES
            (1, '2024-01-01', '2024-01-01'), (2, '2024-01-01', '2024-06-05'),
            (3, '2024-06-03', '2024-06-03');
        INSERT INTO routes (source_id, source_type, path) VALUES
            (1, 'Project', 'group/one'), (2, 'Project', 'group/two'),
            (3, 'Project', 'group/three'), (1, 'Namespace', 'group');
        INSERT INTO events (project_id, action, created_at, updated_at) VALUES
            (1, 5, '2024-06-01 13:00+00', '2024-06-01 13:00+00'),
            (1, 5, '2024-06-02 13:00+00', '2024-06-02 13:00+00'),
            (3, 5, '2024-06-03 13:00+00', '2024-06-03 13:00+00'),
            (2, 1, '2024-06-03 13:00+00', '2024-06-03 13:00+00'),
            (2, 5, '2024-05-03 13:00+00', '2024-05-03 13:00+00');
        INSERT INTO ci_pipelines (created_at)
            SELECT '2024-01-01'::timestamp + g * interval '1 minute' FROM generate_series(1, 2000) g;
        INSERT INTO ci_pipelines (created_at) VALUES ('2024-06-01 12:00:01'), ('2024-06-02');
        INSERT INTO audit_logs (created_at)
            SELECT '2024-01-01'::timestamp + g * interval '1 minute' FROM generate_series(1, 2000) g;
        INSERT INTO audit_logs (created_at)
            SELECT '2024-06-02'::timestamp + g * interval '1 second' FROM generate_series(1, 500) g;
        INSERT INTO quiet (created_at, updated_at) VALUES ('2024-01-01', '2024-01-01');
        INSERT INTO plain (name) VALUES ('x');
        -- the failed upgrade:
        CREATE TABLE lfs_objects (id bigserial PRIMARY KEY, oid text);
        INSERT INTO lfs_objects (oid) SELECT 'o' || g FROM generate_series(1, 7) g;
        CREATE TABLE gitlab_spam (id bigserial PRIMARY KEY) PARTITION BY RANGE (id);
        CREATE TABLE gitlab_spam_1 PARTITION OF gitlab_spam FOR VALUES FROM (1) TO (100);
        INSERT INTO gitlab_spam SELECT g FROM generate_series(1, 4) g;
        ALTER TABLE plain ADD COLUMN created_at timestamp DEFAULT '2024-06-05';
        ANALYZE;";

    fn dump_catalog() -> DumpCatalog {
        let mut d = DumpCatalog::default();
        for t in [
            "issues",
            "notes",
            "projects",
            "routes",
            "events",
            "ci_pipelines",
            "audit_logs",
            "quiet",
            "plain",
        ] {
            d.add_object("TABLE", Some("public"), t);
        }
        d.add_columns("public", "plain", vec!["id".into(), "name".into()]);
        d
    }

    fn leftovers() -> Leftovers {
        let table = |name: &str| Leftover {
            kind: LeftoverKind::Table,
            schema: "public".into(),
            name: name.into(),
            removed_by_drop: true,
        };
        Leftovers {
            items: vec![
                table("lfs_objects"),
                table("gitlab_spam"),
                table("gitlab_spam_1"),
                Leftover {
                    kind: LeftoverKind::Column,
                    schema: "public".into(),
                    name: "plain.created_at".into(),
                    removed_by_drop: true,
                },
            ],
        }
    }

    fn setup(c: &TempCluster) -> Client {
        c.create_database("gitlabhq_production").unwrap();
        let mut db = c.connect_app("gitlabhq_production").unwrap();
        db.batch_execute(SCHEMA).unwrap();
        db.batch_execute(DATA).unwrap();
        db
    }

    fn table<'a>(r: &'a LossReport, name: &str) -> &'a TableLoss {
        r.tables
            .iter()
            .find(|t| t.table == name)
            .unwrap_or_else(|| panic!("{name} not in {:#?}", r.tables))
    }

    #[test]
    fn counts_rows_created_and_updated_since_the_backup_in_utc() {
        let c = TempCluster::start().unwrap();
        let mut db = setup(&c);
        // The session's zone must not matter.
        db.batch_execute("SET TimeZone = 'America/New_York'")
            .unwrap();
        let opts = LossOptions {
            estimate_above: 1000.0,
            ..LossOptions::default()
        };
        let r = since_backup(&mut db, backup_time(), &dump_catalog(), &leftovers(), &opts).unwrap();
        let got = |name: &str| {
            let t = table(&r, name);
            (t.created, t.updated, t.estimate)
        };
        assert_eq!(got("issues"), (Some(3), Some(2), false));
        assert_eq!(got("notes"), (Some(1), Some(1), false));
        assert_eq!(got("projects"), (Some(1), Some(1), false));
        assert_eq!(got("events"), (Some(4), Some(0), false));
        // Large, but indexed on created_at: counted exactly.
        assert_eq!(got("ci_pipelines"), (Some(2), None, false));
        // Large, no index on created_at: the planner's estimate, said to be one.
        let audit = table(&r, "audit_logs");
        assert!(audit.estimate);
        let est = audit.created.unwrap();
        assert!((250..=1000).contains(&est), "estimate {est}");
        // Nothing written: not listed, but checked. `plain.created_at` came with the
        // failed upgrade: not compared.
        assert!(r.tables.iter().all(|t| t.table != "quiet"));
        assert!(r.tables.iter().all(|t| t.table != "plain"));
        assert_eq!(r.tables_checked, 7);
        // Key tables first, in their order.
        let names: Vec<&str> = r.tables.iter().map(|t| t.table.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "projects",
                "issues",
                "notes",
                "ci_pipelines",
                "events",
                "audit_logs"
            ]
        );
        assert_eq!(
            r.new_tables,
            vec![
                NewTable {
                    table: "lfs_objects".into(),
                    rows: Some(7),
                    estimate: false,
                    notes: vec![]
                },
                NewTable {
                    table: "gitlab_spam".into(),
                    rows: Some(4),
                    estimate: false,
                    notes: vec![]
                },
            ]
        );
        assert_eq!(r.pushed_projects, Some(2));
        assert_eq!(r.pushed_project_paths, vec!["group/one", "group/three"]);
        assert!(r.notes.iter().any(|n| n == MIGRATIONS_NOTE));
        let s = r.summary();
        assert!(
            s.starts_with("Written since the backup (2024-06-01 12:00 UTC): 1 project, 3 issues, 1 note, 2 pipelines, 4 events, ~"),
            "{s}"
        );
        assert!(s.contains(" row"), "{s}");
        assert!(
            s.contains("2 projects pushed to; 2 new tables with 11 rows"),
            "{s}"
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["backup_created_at"], "2024-06-01T12:00:00Z");
        assert_eq!(json["tables"][1]["table"], "issues");
        assert_eq!(json["tables"][1]["created"], 3);
        assert_eq!(json["tables"][1]["updated"], 2);
        assert_eq!(json["new_tables"][0]["rows"], 7);
        // Read-only, and the session as it was.
        let tz: String = db.query_one("SHOW TimeZone", &[]).unwrap().get(0);
        assert_eq!(tz, "America/New_York");
        let timeout: String = db.query_one("SHOW statement_timeout", &[]).unwrap().get(0);
        assert_eq!(timeout, "0");
    }

    #[test]
    fn a_table_that_cannot_be_read_in_time_is_not_counted() {
        let c = TempCluster::start().unwrap();
        let mut db = setup(&c);
        // Another session holds the table (as a running migration would).
        let mut other = c.connect_app("gitlabhq_production").unwrap();
        let mut hold = other.transaction().unwrap();
        hold.batch_execute("LOCK TABLE issues IN ACCESS EXCLUSIVE MODE")
            .unwrap();
        let opts = LossOptions {
            estimate_above: 1000.0,
            statement_timeout: Duration::from_millis(300),
        };
        let r = since_backup(&mut db, backup_time(), &dump_catalog(), &leftovers(), &opts).unwrap();
        hold.rollback().unwrap();
        let issues = table(&r, "issues");
        assert_eq!((issues.created, issues.updated), (None, None));
        assert_eq!(
            issues.notes,
            vec![
                format!("created: {NOT_COUNTED_TIMEOUT}"),
                format!("updated: {NOT_COUNTED_TIMEOUT}")
            ]
        );
        // The others are counted all the same.
        assert_eq!(table(&r, "notes").created, Some(1));
        assert!(
            r.summary().contains("1 table not counted"),
            "{}",
            r.summary()
        );
    }
}
