//! "A failed upgrade to 16.11.0" on top of a live sandbox database, and the `db:migrate`
//! logs that go with it.
//!
//! [`apply_failed_upgrade`] runs `assets/sandbox/upgrade_16_11.sql`: the migrations of
//! [`UPGRADE_MIGRATIONS`] that "finished" (two new tables, a new column on `projects`, a
//! new index on `issues`, a new `audit_events` partition) and their `schema_migrations`
//! rows, all newer than [`super::DB_VERSION`]. [`FAILING_MIGRATION`] is the one that broke
//! the upgrade ([`upgrade_migrate_log`]).
//!
//! Restoring the 16.10.3 backup with `pg_dump --clean --if-exists` SQL but without dropping
//! the tables first leaves the two new tables behind ([`LEFTOVER_TABLES`]): the dump does
//! not know them. Re-running `db:migrate` then fails on the first of them with
//! `PG::DuplicateTable` ([`failed_migrate_log`]); GitLab's documented loop marks that
//! migration complete and runs again ([`duplicate_table_migrate_log`] for each step).

use super::{sql_err, Result};

/// The upgrade's SQL.
pub const UPGRADE_SQL: &str = include_str!("../../../assets/sandbox/upgrade_16_11.sql");

/// One migration of the failed upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpgradeMigration {
    /// 14-digit version (the `schema_migrations` row).
    pub version: &'static str,
    /// Rails migration class name.
    pub name: &'static str,
    /// The table it creates, if any (what `PG::DuplicateTable` names on a re-run).
    pub creates_table: Option<&'static str>,
    /// Log lines of its steps (`-- create_table(:x)` ...), each followed by a timing line.
    pub steps: &'static [&'static str],
}

/// The migrations [`apply_failed_upgrade`] records as done, oldest first.
pub const UPGRADE_MIGRATIONS: &[UpgradeMigration] = &[
    UpgradeMigration {
        version: "20240417093215",
        name: "CreateZoektReplicas",
        creates_table: Some("zoekt_replicas"),
        steps: &[
            "-- create_table(:zoekt_replicas)",
            "-- add_index(:zoekt_replicas, [:namespace_id, :state], {:name=>\"index_zoekt_replicas_on_namespace_id_and_state\"})",
        ],
    },
    UpgradeMigration {
        version: "20240418101500",
        name: "CreateMlModelMetadata",
        creates_table: Some("ml_model_metadata"),
        steps: &[
            "-- create_table(:ml_model_metadata)",
            "-- add_index(:ml_model_metadata, [:model_id, :name], {:unique=>true, :name=>\"index_ml_model_metadata_on_model_id_and_name\"})",
        ],
    },
    UpgradeMigration {
        version: "20240419082037",
        name: "AddDuoFeaturesEnabledToProjects",
        creates_table: None,
        steps: &["-- add_column(:projects, :duo_features_enabled, :boolean, {:default=>true, :null=>false})"],
    },
    UpgradeMigration {
        version: "20240422142000",
        name: "AddIndexIssuesOnProjectIdAndClosedAt",
        creates_table: None,
        steps: &[
            "-- transaction_open?(nil)",
            "-- index_exists?(:issues, [:project_id, :closed_at], {:name=>\"index_issues_on_project_id_and_closed_at\", :algorithm=>:concurrently})",
            "-- add_index(:issues, [:project_id, :closed_at], {:name=>\"index_issues_on_project_id_and_closed_at\", :algorithm=>:concurrently})",
        ],
    },
    UpgradeMigration {
        version: "20240423064716",
        name: "CreateAuditEventsPartition202406",
        creates_table: None,
        steps: &["-- execute(\"CREATE TABLE gitlab_partitions_dynamic.audit_events_202406 PARTITION OF audit_events FOR VALUES FROM ('2024-06-01 00:00:00+00') TO ('2024-07-01 00:00:00+00')\")"],
    },
];

/// The migration that broke the upgrade (not recorded in `schema_migrations`).
pub const FAILING_MIGRATION: UpgradeMigration = UpgradeMigration {
    version: "20240424120000",
    name: "BackfillDuoFeaturesEnabled",
    creates_table: None,
    steps: &["-- execute(\"UPDATE projects SET duo_features_enabled = archived IS NOT TRUE\")"],
};

/// Tables of the upgrade that survive a restore made without dropping tables first.
pub const LEFTOVER_TABLES: [&str; 2] = ["zoekt_replicas", "ml_model_metadata"];

/// The column the upgrade adds, as `(table, column)`.
pub const NEW_COLUMN: (&str, &str) = ("projects", "duo_features_enabled");

/// The index the upgrade adds.
pub const NEW_INDEX: &str = "index_issues_on_project_id_and_closed_at";

/// The newest `schema_migrations` version after [`apply_failed_upgrade`].
pub fn upgraded_db_version() -> &'static str {
    UPGRADE_MIGRATIONS
        .last()
        .map(|m| m.version)
        .unwrap_or(super::DB_VERSION)
}

/// Apply the failed upgrade to a database holding the sandbox schema (in one transaction).
pub fn apply_failed_upgrade(client: &mut postgres::Client) -> Result<()> {
    let mut tx = client
        .transaction()
        .map_err(sql_err("starting the upgrade transaction"))?;
    tx.batch_execute(UPGRADE_SQL)
        .map_err(sql_err("applying assets/sandbox/upgrade_16_11.sql"))?;
    tx.commit()
        .map_err(sql_err("committing the failed upgrade"))
}

/// Rails' announce line: `== <version> <Name>: <message> ====...` padded to 79 columns.
fn announce(version: &str, name: &str, message: &str) -> String {
    let text = format!("{version} {name}: {message}");
    let pad = 75usize.saturating_sub(text.chars().count());
    format!("== {text} {}", "=".repeat(pad))
}

fn migrated_block(m: &UpgradeMigration, out: &mut String, seed: usize) {
    out.push_str(&announce(m.version, m.name, "migrating"));
    out.push('\n');
    let mut total = 0.0;
    for (i, step) in m.steps.iter().enumerate() {
        let t = 0.0011 + ((seed * 7 + i * 13) % 97) as f64 / 10_000.0;
        total += t;
        out.push_str(&format!("{step}\n   -> {t:.4}s\n"));
    }
    out.push_str(&announce(
        m.version,
        m.name,
        &format!("migrated ({total:.4}s)"),
    ));
    out.push_str("\n\n");
}

fn abort_block(out: &mut String, migration: &UpgradeMigration, pg_class: &str, message: &str) {
    let file = snake_case(migration.name);
    out.push_str(&format!(
        "rake aborted!\nStandardError: An error has occurred, this and all later migrations canceled:\n\n{pg_class}: ERROR:  {message}\n"
    ));
    out.push_str(&format!(
        "/opt/gitlab/embedded/service/gitlab-rails/db/migrate/{}_{file}.rb:8:in `change'\n",
        migration.version
    ));
    out.push_str("/opt/gitlab/embedded/service/gitlab-rails/lib/tasks/gitlab/db.rake:136:in `block (3 levels) in <top (required)>'\n");
    out.push_str("/opt/gitlab/embedded/bin/bundle:23:in `load'\n/opt/gitlab/embedded/bin/bundle:23:in `<main>'\n\n");
    out.push_str(&format!(
        "Caused by:\nActiveRecord::StatementInvalid: {pg_class}: ERROR:  {message}\n"
    ));
    out.push_str(&format!(
        "/opt/gitlab/embedded/service/gitlab-rails/db/migrate/{}_{file}.rb:8:in `change'\n\n",
        migration.version
    ));
    out.push_str(&format!(
        "Caused by:\n{pg_class}: ERROR:  {message}\n/opt/gitlab/embedded/service/gitlab-rails/db/migrate/{}_{file}.rb:8:in `change'\nTasks: TOP => db:migrate\n(See full trace by running task with --trace)\n",
        migration.version
    ));
}

fn snake_case(name: &str) -> String {
    let mut s = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                s.push('_');
            }
            s.push(c.to_ascii_lowercase());
        } else {
            s.push(c);
        }
    }
    s
}

/// The `db:migrate` log of the upgrade itself: the migrations of [`UPGRADE_MIGRATIONS`]
/// succeed, then [`FAILING_MIGRATION`] fails with `PG::QueryCanceled` (a statement
/// timeout), aborting the rake task.
pub fn upgrade_migrate_log() -> String {
    let mut out = String::new();
    for (i, m) in UPGRADE_MIGRATIONS.iter().enumerate() {
        migrated_block(m, &mut out, i);
    }
    let m = &FAILING_MIGRATION;
    out.push_str(&announce(m.version, m.name, "migrating"));
    out.push('\n');
    out.push_str(m.steps[0]);
    out.push('\n');
    abort_block(
        &mut out,
        m,
        "PG::QueryCanceled",
        "canceling statement due to statement timeout",
    );
    out
}

/// The log of re-running `db:migrate` on a database restored without dropping the
/// upgrade's tables, where every migration before `migration` has been marked complete:
/// `migration` fails with `PG::DuplicateTable` on the table it creates. `None` when the
/// migration creates no table.
pub fn duplicate_table_migrate_log(migration: &UpgradeMigration) -> Option<String> {
    let table = migration.creates_table?;
    let mut out = String::new();
    out.push_str(&announce(migration.version, migration.name, "migrating"));
    out.push('\n');
    out.push_str(&format!("-- create_table(:{table})\n"));
    abort_block(
        &mut out,
        migration,
        "PG::DuplicateTable",
        &format!("relation \"{table}\" already exists"),
    );
    Some(out)
}

/// The leftover-tables scenario's first failure: re-running `db:migrate` after the backup
/// was restored without the drop fails on `zoekt_replicas` (migration `20240417093215
/// CreateZoektReplicas`) with `PG::DuplicateTable: ERROR:  relation "zoekt_replicas"
/// already exists`.
pub fn failed_migrate_log() -> String {
    duplicate_table_migrate_log(&UPGRADE_MIGRATIONS[0]).unwrap_or_default()
}

/// When the sandbox's upgrade ran: 2024-04-25 09:00:00 UTC (five days after the backup).
pub fn failed_at() -> chrono::DateTime<chrono::Utc> {
    use chrono::TimeZone;
    chrono::Utc
        .with_ymd_and_hms(2024, 4, 25, 9, 0, 0)
        .single()
        .unwrap_or_default()
}

/// The host side of the failed upgrade: mark [`super::UPGRADE_VERSION`] as installed
/// (`VERSION`, `REVISION`, version manifest) and write [`upgrade_migrate_log`] where
/// Omnibus puts it. Returns the log's real path. Pair with [`apply_failed_upgrade`] for the
/// database side.
pub fn mark_upgraded(root: &crate::root::HostRoot) -> Result<std::path::PathBuf> {
    super::host::set_installed_version(root, super::UPGRADE_VERSION)?;
    super::host::write_migrate_log(root, failed_at(), &upgrade_migrate_log())
}
