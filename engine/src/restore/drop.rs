//! Dropping every table before a restore, as GitLab's `gitlab:db:drop_tables` does, but in
//! one transaction and only with the user's explicit confirmation.
//!
//! GitLab's task (`lib/tasks/gitlab/db.rake`), per connection:
//! 1. `TRUNCATE schema_migrations` when that table exists (the table itself is kept);
//! 2. `DROP VIEW IF EXISTS <view> CASCADE` for every view (`relkind` `v` and `m`) on the
//!    connection's search path (`current_schemas(false)`), except views owned by an extension;
//! 3. `DROP TABLE IF EXISTS <table> CASCADE` for every other table (`r`, `p`) on the search
//!    path except `schema_migrations`;
//! 4. `DROP SCHEMA IF EXISTS <s> CASCADE` for `gitlab_partitions_dynamic` and
//!    `gitlab_partitions_static`.
//!
//! Rewind runs the same statements, every identifier quoted and schema-qualified, inside one
//! transaction with a `lock_timeout`: if any statement fails (a lock held by a process that
//! should have been stopped, a permission error) nothing is dropped. One deliberate
//! difference: a materialized view is dropped with `DROP MATERIALIZED VIEW`, since `DROP
//! VIEW` refuses it and would abort GitLab's task.

use std::time::Duration;

use postgres::{Client, Transaction};
use serde::Serialize;

use super::inventory::{self, Inventory, RelKind};
use crate::journal::{Journal, JournalError};
use crate::pg::conn::describe_pg_error;
use crate::pg::ident::{qualified, quote_ident};
use crate::progress::{Cancel, Event, Phase, Sink, SinkExt};

/// GitLab's extra schemas (`Gitlab::Database::EXTRA_SCHEMAS`), dropped with `CASCADE`.
pub const EXTRA_SCHEMAS: [&str; 2] = ["gitlab_partitions_dynamic", "gitlab_partitions_static"];

/// Proof that the user typed the name of the database to drop. It can only be built by
/// [`DropConfirmation::new`] from the value of `--confirm-drop` (or the confirmation
/// screen), and only when that value equals the target database's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropConfirmation {
    database: String,
}

/// Why the drop was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum DropError {
    #[error("refusing to drop the tables of database `{database}`: no confirmation given. Pass --confirm-drop {database} (the database's name) to confirm that every table in it may be dropped")]
    NotConfirmed { database: String },
    #[error("refusing to drop the tables of database `{database}`: --confirm-drop names `{given}`, not `{database}`. Nothing was changed; pass --confirm-drop {database} if `{database}` is the database to replace")]
    WrongConfirmation { database: String, given: String },
    #[error("{0}")]
    Inventory(#[from] inventory::InventoryError),
    #[error("dropping tables in database `{database}` failed at `{statement}`: {detail}.{hint} The transaction was rolled back: nothing was dropped")]
    Statement {
        database: String,
        statement: String,
        detail: String,
        hint: String,
    },
    #[error(
        "dropping tables in database `{database}` failed to {step}: {detail}. Nothing was dropped"
    )]
    Transaction {
        database: String,
        step: &'static str,
        detail: String,
    },
    #[error("drop of the tables in `{database}` cancelled before commit: nothing was dropped")]
    Cancelled { database: String },
    #[error(transparent)]
    Journal(#[from] JournalError),
}

impl DropConfirmation {
    /// Check the user's confirmation against the target database's name. Exact match: no
    /// trimming or case folding (PostgreSQL names are case-sensitive).
    pub fn new(given: Option<&str>, database: &str) -> Result<Self, DropError> {
        match given {
            None | Some("") => Err(DropError::NotConfirmed {
                database: database.to_string(),
            }),
            Some(g) if g == database => Ok(DropConfirmation {
                database: database.to_string(),
            }),
            Some(g) => Err(DropError::WrongConfirmation {
                database: database.to_string(),
                given: g.to_string(),
            }),
        }
    }

    /// The confirmed database name.
    pub fn database(&self) -> &str {
        &self.database
    }
}

/// One statement of the drop, with the object it concerns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DropStatement {
    /// `TRUNCATE`, `DROP VIEW`, `DROP MATERIALIZED VIEW`, `DROP TABLE`, `DROP SCHEMA`.
    pub class: &'static str,
    /// Schema of the object (empty for a schema).
    pub schema: String,
    pub name: String,
    /// The SQL, identifiers quoted.
    pub sql: String,
}

/// What the drop will do, computed from an [`Inventory`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DropPlan {
    pub database: String,
    pub statements: Vec<DropStatement>,
}

impl DropPlan {
    /// GitLab's drop task applied to an inventory.
    pub fn from_inventory(inv: &Inventory) -> DropPlan {
        let on_path = |schema: &str| inv.search_path_schemas.iter().any(|s| s == schema);
        let mut statements = Vec::new();
        // `connection.table_exists?('schema_migrations')` resolves through the search path:
        // the first schema on it holding the table.
        let sm_schema = inv.search_path_schemas.iter().find(|s| {
            inv.relation(s, "schema_migrations")
                .is_some_and(|r| r.kind.is_table())
        });
        if let Some(s) = sm_schema {
            statements.push(DropStatement {
                class: "TRUNCATE",
                schema: s.clone(),
                name: "schema_migrations".into(),
                sql: format!("TRUNCATE {}", qualified(s, "schema_migrations")),
            });
        }
        for r in inv
            .relations
            .iter()
            .filter(|r| r.kind.is_view() && on_path(&r.schema))
        {
            let class = if r.kind == RelKind::MaterializedView {
                "DROP MATERIALIZED VIEW"
            } else {
                "DROP VIEW"
            };
            statements.push(DropStatement {
                class,
                schema: r.schema.clone(),
                name: r.name.clone(),
                sql: format!(
                    "{class} IF EXISTS {} CASCADE",
                    qualified(&r.schema, &r.name)
                ),
            });
        }
        for r in inv
            .relations
            .iter()
            .filter(|r| r.kind.is_table() && on_path(&r.schema) && r.name != "schema_migrations")
        {
            statements.push(DropStatement {
                class: "DROP TABLE",
                schema: r.schema.clone(),
                name: r.name.clone(),
                sql: format!(
                    "DROP TABLE IF EXISTS {} CASCADE",
                    qualified(&r.schema, &r.name)
                ),
            });
        }
        for s in EXTRA_SCHEMAS {
            statements.push(DropStatement {
                class: "DROP SCHEMA",
                schema: String::new(),
                name: s.to_string(),
                sql: format!("DROP SCHEMA IF EXISTS {} CASCADE", quote_ident(s)),
            });
        }
        DropPlan {
            database: inv.database.clone(),
            statements,
        }
    }

    /// Number of statements of a class.
    pub fn count(&self, class: &str) -> usize {
        self.statements.iter().filter(|s| s.class == class).count()
    }

    /// Counts per statement class, for the journal and summaries.
    pub fn counts(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        for s in &self.statements {
            let e = m.entry(s.class.to_string()).or_insert(serde_json::json!(0));
            *e = serde_json::json!(e.as_u64().unwrap_or(0) + 1);
        }
        serde_json::Value::Object(m)
    }
}

/// Options of [`drop_all`].
#[derive(Debug, Clone)]
pub struct DropOptions {
    /// How long a statement waits for a lock before the whole drop is rolled back (another
    /// session still using the database). `None`: the server's setting.
    pub lock_timeout: Option<Duration>,
}

impl Default for DropOptions {
    fn default() -> Self {
        DropOptions {
            lock_timeout: Some(Duration::from_secs(30)),
        }
    }
}

/// What the drop did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DropReport {
    pub database: String,
    pub truncated: usize,
    pub views: usize,
    pub tables: usize,
    pub schemas: usize,
}

fn hint_for(detail: &str) -> String {
    if detail.contains("lock timeout") || detail.contains("canceling statement due to lock") {
        " Another session holds a lock on this object: stop Puma, Sidekiq and anything else connected to the database (`gitlab-ctl stop puma; gitlab-ctl stop sidekiq`), check pg_stat_activity, and run again.".into()
    } else if detail.contains("out of shared memory") {
        " Dropping every table in one transaction needs more lock slots than the server has: raise max_locks_per_transaction (e.g. to 1024) and restart PostgreSQL, then run again.".into()
    } else if detail.contains("must be owner") || detail.contains("permission denied") {
        " Connect as the owner of GitLab's tables (database.yml's user) or as a superuser.".into()
    } else {
        String::new()
    }
}

fn execute_plan(
    tx: &mut Transaction<'_>,
    plan: &DropPlan,
    sink: &dyn Sink,
    cancel: &Cancel,
) -> Result<(), DropError> {
    let total = plan.statements.len() as u64;
    for (i, st) in plan.statements.iter().enumerate() {
        if cancel.is_cancelled() {
            return Err(DropError::Cancelled {
                database: plan.database.clone(),
            });
        }
        tx.batch_execute(&st.sql).map_err(|e| {
            let detail = describe_pg_error(&e);
            DropError::Statement {
                database: plan.database.clone(),
                statement: st.sql.clone(),
                hint: hint_for(&detail),
                detail,
            }
        })?;
        sink.event(Event::Progress {
            phase: Phase::Drop,
            done: i as u64 + 1,
            total: Some(total),
            current: Some(if st.schema.is_empty() {
                st.name.clone()
            } else {
                format!("{}.{}", st.schema, st.name)
            }),
            rows: None,
        });
    }
    Ok(())
}

/// Drop all tables of the connected database, as GitLab's `gitlab:db:drop_tables`, in one
/// transaction. The inventory is read inside that transaction, so the statements match the
/// database as it is when they run. Journaled before and after (statement classes and
/// counts, never data).
pub fn drop_all(
    client: &mut Client,
    confirm: &DropConfirmation,
    opts: &DropOptions,
    journal: Option<&Journal>,
    sink: &dyn Sink,
    cancel: &Cancel,
) -> Result<DropReport, DropError> {
    let database = confirm.database().to_string();
    let txerr = |step: &'static str| {
        let database = database.clone();
        move |e: postgres::Error| DropError::Transaction {
            database,
            step,
            detail: describe_pg_error(&e),
        }
    };
    let mut tx = client
        .transaction()
        .map_err(txerr("begin the transaction"))?;
    if let Some(t) = opts.lock_timeout {
        tx.batch_execute(&format!("SET LOCAL lock_timeout = '{}ms'", t.as_millis()))
            .map_err(txerr("set lock_timeout"))?;
    }
    let inv = inventory::inventory(&mut tx)?;
    if inv.database != confirm.database() {
        // The connection reached another database than the one confirmed.
        return Err(DropError::WrongConfirmation {
            database: inv.database,
            given: confirm.database().to_string(),
        });
    }
    let plan = DropPlan::from_inventory(&inv);
    if let Some(j) = journal {
        j.begin(
            "drop",
            "drop all tables (gitlab:db:drop_tables, one transaction)",
            serde_json::json!({
                "database": database,
                "statements": plan.counts(),
                "schemas": EXTRA_SCHEMAS,
            }),
        )?;
    }
    sink.event(Event::PhaseStarted {
        phase: Phase::Drop,
        total: Some(plan.statements.len() as u64),
    });
    let result = execute_plan(&mut tx, &plan, sink, cancel).and_then(|()| {
        if cancel.is_cancelled() {
            return Err(DropError::Cancelled {
                database: database.clone(),
            });
        }
        tx.commit().map_err(txerr("commit"))
    });
    sink.event(Event::PhaseFinished {
        phase: Phase::Drop,
        ok: result.is_ok(),
    });
    match result {
        Ok(()) => {
            let report = DropReport {
                database: database.clone(),
                truncated: plan.count("TRUNCATE"),
                views: plan.count("DROP VIEW") + plan.count("DROP MATERIALIZED VIEW"),
                tables: plan.count("DROP TABLE"),
                schemas: plan.count("DROP SCHEMA"),
            };
            if let Some(j) = journal {
                j.end(
                    "drop",
                    "ok",
                    serde_json::to_value(&report).unwrap_or_default(),
                )?;
            }
            sink.event(Event::Dropped {
                database: database.clone(),
            });
            sink.info(format!(
                "dropped {} tables and {} views in `{database}` (schema_migrations truncated: {})",
                report.tables,
                report.views,
                if report.truncated > 0 {
                    "yes"
                } else {
                    "absent"
                }
            ));
            Ok(report)
        }
        Err(e) => {
            if let Some(j) = journal {
                let result = if matches!(e, DropError::Cancelled { .. }) {
                    "cancelled"
                } else {
                    "failed"
                };
                j.end(
                    "drop",
                    result,
                    serde_json::json!({"error": e.to_string(), "rolled_back": true}),
                )?;
            }
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg::cluster::TempCluster;
    use crate::progress::NullSink;

    const SCHEMA: &str = "
        CREATE EXTENSION pg_stat_statements;
        CREATE TABLE schema_migrations (version varchar PRIMARY KEY);
        INSERT INTO schema_migrations VALUES ('20240101000000'), ('20240201000000');
        CREATE TABLE ar_internal_metadata (key varchar PRIMARY KEY, value varchar);
        CREATE TABLE projects (id bigserial PRIMARY KEY, name text);
        CREATE TABLE \"we\"\"ird; DROP TABLE projects; --\" (id int REFERENCES projects);
        CREATE SCHEMA gitlab_partitions_dynamic;
        CREATE SCHEMA gitlab_partitions_static;
        CREATE TABLE events (id bigint, created_at date) PARTITION BY RANGE (created_at);
        CREATE TABLE gitlab_partitions_dynamic.events_2024 PARTITION OF events
          FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
        CREATE VIEW project_names AS SELECT name FROM projects;
        CREATE MATERIALIZED VIEW project_count AS SELECT count(*) FROM projects;
        CREATE SCHEMA other;
        CREATE TABLE other.kept (id int);
        CREATE TYPE mood AS ENUM ('ok');
    ";

    fn relnames(c: &mut Client) -> Vec<String> {
        c.query(
            "SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n \
             ON n.oid = c.relnamespace WHERE c.relkind IN ('r','p','v','m') \
             AND n.nspname NOT IN ('pg_catalog','information_schema') ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
    }

    #[test]
    fn confirmation_must_name_the_database() {
        assert!(matches!(
            DropConfirmation::new(None, "gitlabhq_production"),
            Err(DropError::NotConfirmed { .. })
        ));
        let e = DropConfirmation::new(Some("gitlabhq_production_ci"), "gitlabhq_production")
            .unwrap_err();
        assert!(e.to_string().contains("--confirm-drop gitlabhq_production"));
        assert!(DropConfirmation::new(Some("GITLABHQ_PRODUCTION"), "gitlabhq_production").is_err());
        let ok = DropConfirmation::new(Some("gitlabhq_production"), "gitlabhq_production").unwrap();
        assert_eq!(ok.database(), "gitlabhq_production");
    }

    #[test]
    fn drops_like_gitlab_in_one_transaction() {
        let c = TempCluster::start().unwrap();
        c.create_database("gl").unwrap();
        let mut db = c.connect("gl").unwrap();
        db.batch_execute(SCHEMA).unwrap();
        let plan = DropPlan::from_inventory(&inventory::inventory(&mut db).unwrap());
        assert_eq!(
            plan.statements[0].sql,
            "TRUNCATE \"public\".\"schema_migrations\""
        );
        assert!(plan.statements.iter().any(|s| s.sql
            == "DROP TABLE IF EXISTS \"public\".\"we\"\"ird; DROP TABLE projects; --\" CASCADE"));
        assert!(plan
            .statements
            .iter()
            .any(|s| s.sql
                == "DROP MATERIALIZED VIEW IF EXISTS \"public\".\"project_count\" CASCADE"));
        // Tables outside the search path are GitLab's business only through the schemas.
        assert!(!plan.statements.iter().any(|s| s.schema == "other"));

        // A session holding a lock on one table makes the whole drop roll back.
        let mut blocker = c.connect("gl").unwrap();
        let mut btx = blocker.transaction().unwrap();
        btx.batch_execute("LOCK TABLE ar_internal_metadata IN ACCESS SHARE MODE")
            .unwrap();
        let before = relnames(&mut db);
        let jdir = tempfile::tempdir().unwrap();
        let journal = Journal::open_in(jdir.path()).unwrap();
        let confirm = DropConfirmation::new(Some("gl"), "gl").unwrap();
        let opts = DropOptions {
            lock_timeout: Some(Duration::from_millis(300)),
        };
        let err = drop_all(
            &mut db,
            &confirm,
            &opts,
            Some(&journal),
            &NullSink,
            &Cancel::new(),
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("ar_internal_metadata"), "{msg}");
        assert!(msg.contains("nothing was dropped"), "{msg}");
        assert!(msg.contains("stop Puma"), "{msg}");
        assert_eq!(
            relnames(&mut db),
            before,
            "a failed drop changed the database"
        );
        let n: i64 = db
            .query_one("SELECT count(*) FROM schema_migrations", &[])
            .unwrap()
            .get(0);
        assert_eq!(n, 2, "TRUNCATE was not rolled back");
        btx.rollback().unwrap();

        // Now it goes through.
        let report = drop_all(
            &mut db,
            &confirm,
            &opts,
            Some(&journal),
            &NullSink,
            &Cancel::new(),
        )
        .unwrap();
        assert_eq!(report.tables, 4); // ar_internal_metadata, events, projects, we"ird
        assert_eq!(report.views, 2);
        assert_eq!(
            relnames(&mut db),
            vec![
                "other.kept".to_string(),
                // The extension's views survive, as with GitLab.
                "public.pg_stat_statements".to_string(),
                "public.pg_stat_statements_info".to_string(),
                "public.schema_migrations".to_string()
            ]
        );
        let n: i64 = db
            .query_one("SELECT count(*) FROM schema_migrations", &[])
            .unwrap()
            .get(0);
        assert_eq!(n, 0);
        let schemas: i64 = db
            .query_one(
                "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'gitlab_partitions_%'",
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!(schemas, 0);
        let entries = Journal::read(journal.path()).unwrap();
        let stages: Vec<(String, Option<String>)> = entries
            .iter()
            .map(|e| (format!("{:?}", e.stage), e.result.clone()))
            .collect();
        assert_eq!(
            stages,
            vec![
                ("Begin".into(), None),
                ("End".into(), Some("failed".into())),
                ("Begin".into(), None),
                ("End".into(), Some("ok".into())),
            ]
        );
    }

    #[test]
    fn cancel_before_commit_drops_nothing() {
        let c = TempCluster::start().unwrap();
        c.create_database("gl").unwrap();
        let mut db = c.connect("gl").unwrap();
        db.batch_execute(SCHEMA).unwrap();
        let before = relnames(&mut db);
        let cancel = Cancel::new();
        let cancel2 = cancel.clone();
        // Cancel as soon as the first statement has run.
        let sink = move |e: Event| {
            if matches!(e, Event::Progress { .. }) {
                cancel2.cancel()
            }
        };
        let confirm = DropConfirmation::new(Some("gl"), "gl").unwrap();
        let err = drop_all(
            &mut db,
            &confirm,
            &DropOptions::default(),
            None,
            &sink,
            &cancel,
        )
        .unwrap_err();
        assert!(matches!(err, DropError::Cancelled { .. }));
        assert_eq!(relnames(&mut db), before);
    }
}
