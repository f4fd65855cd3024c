//! Before the next upgrade: what in the live database the backup's dump does not create
//! (tables, columns, indexes, schemas, views, sequences, functions, types) and the
//! `schema_migrations` versions newer than the backup's `db_version`. These are what make
//! the next upgrade's migrations fail with `PG::DuplicateTable`/`DuplicateColumn`.
//!
//! Built on the restore engine's catalogue of a dump ([`crate::restore::leftovers`]) and
//! inventory ([`crate::restore::inventory`]); indexes, which those do not cover, are read
//! here from `pg_index` and compared with the dump's `INDEX` and `CONSTRAINT` entries.
//! Read-only: nothing is dropped; the report carries the statements one would run.

use std::io::Read;
use std::path::PathBuf;

use serde::Serialize;

use crate::backup::catalogue::BackupEntry;
use crate::backup::open_member;
use crate::detect::DatabaseConn;
use crate::pg::conn::{describe_pg_error, ConnError};
use crate::pg::ident::{qualified, quote_ident};
use crate::restore::drop::EXTRA_SCHEMAS;
use crate::restore::inventory::{inventory, Inventory};
use crate::restore::leftovers::{
    compute, newer_migrations, read_catalog, DumpCatalog, LeftoverKind, Leftovers,
};

/// Errors of the check.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("connecting to database {name}: {source}")]
    Connect {
        name: String,
        #[source]
        source: ConnError,
    },
    #[error("database {database}: {step}: {detail}")]
    Database {
        database: String,
        step: String,
        detail: String,
    },
    #[error("backup {backup}, member {member}: {detail}")]
    Dump {
        backup: String,
        member: String,
        detail: String,
    },
    #[error("backup {backup} has no database dump for {database} (members: {members}); it cannot say what {database} should contain")]
    NoDump {
        backup: String,
        database: String,
        members: String,
    },
}

/// An index the dump does not create, on a table the dump does create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IndexLeftover {
    pub schema: String,
    pub table: String,
    pub name: String,
    /// `pg_get_indexdef`.
    pub definition: String,
    /// Whether GitLab's drop step removes it (with its table).
    pub removed_by_drop: bool,
}

/// One leftover as shown: kind, name, and the statement that would remove it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShownLeftover {
    /// `table`, `column`, `index`, `schema`, `view`, `sequence`, `function`, `type`,
    /// `migration`.
    pub kind: String,
    /// `schema.name` (`schema.table.column` for a column; the version for a migration).
    pub name: String,
    pub removed_by_drop: bool,
    /// The statement that drops it (not run by Rewind); none for migrations.
    pub drop_sql: Option<String>,
}

/// The check of one database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DatabaseCheck {
    /// Connection name (`main`, `ci`).
    pub database: String,
    /// PostgreSQL database name.
    pub dbname: String,
    /// The dump member compared with (`db/database.sql.gz`).
    pub member: String,
    /// Objects the dump creates (TOC entries).
    pub dump_objects: usize,
    /// Leftovers from the restore engine's comparison (no indexes).
    pub leftovers: Leftovers,
    pub indexes: Vec<IndexLeftover>,
    /// Everything, in display order, with drop statements.
    pub items: Vec<ShownLeftover>,
}

impl DatabaseCheck {
    /// Whether nothing is left over.
    pub fn is_clean(&self) -> bool {
        self.items.is_empty()
    }

    /// Versions in schema_migrations newer than the backup's db_version.
    pub fn newer_migrations(&self) -> Vec<&str> {
        self.items
            .iter()
            .filter(|i| i.kind == "migration")
            .map(|i| i.name.as_str())
            .collect()
    }
}

/// The check of a backup against the live databases.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    pub backup_id: String,
    pub backup_path: PathBuf,
    /// The backup's `:db_version:`.
    pub db_version: Option<String>,
    pub databases: Vec<DatabaseCheck>,
    /// Connections not checked, with why.
    pub skipped: Vec<String>,
    /// What to do, in sentences.
    pub advice: Vec<String>,
}

impl CheckReport {
    /// Whether every checked database is clean.
    pub fn is_clean(&self) -> bool {
        self.databases.iter().all(DatabaseCheck::is_clean)
    }
}

/// Indexes in the live database that `dump` does not create, on tables it does create
/// (indexes of leftover tables go with their table). Constraint indexes count as created
/// when the dump has the constraint (`CONSTRAINT`, named `<table> <constraint>`).
pub fn index_leftovers(
    client: &mut postgres::Client,
    dump: &DumpCatalog,
    inv: &Inventory,
) -> Result<Vec<IndexLeftover>, String> {
    let rows = client
        .query(
            "SELECT n.nspname::text, ct.relname::text, ci.relname::text,
                    pg_get_indexdef(i.indexrelid), con.conname::text
               FROM pg_index i
               JOIN pg_class ci ON ci.oid = i.indexrelid
               JOIN pg_class ct ON ct.oid = i.indrelid
               JOIN pg_namespace n ON n.oid = ci.relnamespace
               LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid
                                          AND con.conrelid = i.indrelid
                                          AND con.contype IN ('p', 'u', 'x')
              WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
                AND n.nspname !~ '^pg_'
                AND ct.relkind IN ('r', 'p', 'm')
                AND NOT EXISTS (SELECT 1 FROM pg_depend d
                                 WHERE d.classid = 'pg_class'::regclass
                                   AND d.objid = ct.oid AND d.deptype = 'e')
              ORDER BY 1, 2, 3",
            &[],
        )
        .map_err(|e| describe_pg_error(&e))?;
    let mut out = Vec::new();
    for r in rows {
        let (schema, table, name, def, con): (String, String, String, String, Option<String>) =
            (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
        let table_in_dump =
            dump.has("TABLE", &schema, &table) || dump.has("MATERIALIZED VIEW", &schema, &table);
        if !table_in_dump {
            continue;
        }
        if dump.has("INDEX", &schema, &name) {
            continue;
        }
        if let Some(c) = &con {
            if dump.has("CONSTRAINT", &schema, &format!("{table} {c}")) {
                continue;
            }
        }
        let removed =
            EXTRA_SCHEMAS.contains(&schema.as_str()) || inv.search_path_schemas.contains(&schema);
        out.push(IndexLeftover {
            schema,
            table,
            name,
            definition: def,
            removed_by_drop: removed,
        });
    }
    Ok(out)
}

fn shown(leftovers: &Leftovers, indexes: &[IndexLeftover]) -> Vec<ShownLeftover> {
    let mut items = Vec::new();
    for l in &leftovers.items {
        let (kind, drop_sql) = match l.kind {
            LeftoverKind::Schema => (
                "schema",
                Some(format!("DROP SCHEMA {} CASCADE;", quote_ident(&l.name))),
            ),
            LeftoverKind::Table => (
                "table",
                Some(format!(
                    "DROP TABLE {} CASCADE;",
                    qualified(&l.schema, &l.name)
                )),
            ),
            LeftoverKind::View => (
                "view",
                Some(format!("DROP VIEW {};", qualified(&l.schema, &l.name))),
            ),
            LeftoverKind::MaterializedView => (
                "materialized view",
                Some(format!(
                    "DROP MATERIALIZED VIEW {};",
                    qualified(&l.schema, &l.name)
                )),
            ),
            LeftoverKind::Sequence => (
                "sequence",
                Some(format!("DROP SEQUENCE {};", qualified(&l.schema, &l.name))),
            ),
            LeftoverKind::Function => {
                let (fname, args) = l.name.split_once('(').unwrap_or((&l.name, ")"));
                (
                    "function",
                    Some(format!(
                        "DROP FUNCTION {}({};",
                        qualified(&l.schema, fname),
                        args
                    )),
                )
            }
            LeftoverKind::Type => (
                "type",
                Some(format!("DROP TYPE {};", qualified(&l.schema, &l.name))),
            ),
            LeftoverKind::Column => {
                let (t, c) = l.name.split_once('.').unwrap_or((&l.name, ""));
                (
                    "column",
                    Some(format!(
                        "ALTER TABLE {} DROP COLUMN {};",
                        qualified(&l.schema, t),
                        quote_ident(c)
                    )),
                )
            }
            LeftoverKind::Migration => ("migration", None),
        };
        items.push(ShownLeftover {
            kind: kind.to_string(),
            name: l.display_name(),
            removed_by_drop: l.removed_by_drop,
            drop_sql,
        });
    }
    for i in indexes {
        items.push(ShownLeftover {
            kind: "index".into(),
            name: format!("{}.{}", i.schema, i.name),
            removed_by_drop: i.removed_by_drop,
            drop_sql: Some(format!("DROP INDEX {};", qualified(&i.schema, &i.name))),
        });
    }
    items
}

/// Compare one live database with one dump (read once, streaming).
pub fn check_database(
    conn: &DatabaseConn,
    dump: impl Read,
    backup: &str,
    member: &str,
    db_version: Option<&str>,
) -> Result<DatabaseCheck, CheckError> {
    let dberr = |step: &str, detail: String| CheckError::Database {
        database: conn.name.to_string(),
        step: step.to_string(),
        detail,
    };
    let (catalog, _cost) = read_catalog(dump, member).map_err(|detail| CheckError::Dump {
        backup: backup.to_string(),
        member: member.to_string(),
        detail,
    })?;
    let mut client = conn.spec.connect().map_err(|source| CheckError::Connect {
        name: conn.name.to_string(),
        source,
    })?;
    let inv = inventory(&mut client).map_err(|e| dberr("reading the inventory", e.to_string()))?;
    let newer = match db_version {
        Some(v) => {
            newer_migrations(&mut client, v).map_err(|d| dberr("reading schema_migrations", d))?
        }
        None => Vec::new(),
    };
    let leftovers = compute(&inv, &catalog, &newer);
    let indexes =
        index_leftovers(&mut client, &catalog, &inv).map_err(|d| dberr("reading indexes", d))?;
    let items = shown(&leftovers, &indexes);
    Ok(DatabaseCheck {
        database: conn.name.to_string(),
        dbname: inv.database.clone(),
        member: member.to_string(),
        dump_objects: catalog.len(),
        leftovers,
        indexes,
        items,
    })
}

/// Check every database with its own dump (connections with database tasks) against
/// `backup`.
pub fn check_backup(
    backup: &BackupEntry,
    conns: &[DatabaseConn],
) -> Result<CheckReport, CheckError> {
    let db_version = backup
        .information
        .as_ref()
        .and_then(|i| i.db_version.clone());
    let mut databases = Vec::new();
    let mut skipped = Vec::new();
    for conn in conns.iter().filter(|c| c.database_tasks) {
        let Some(dump) = backup.database(conn.name.as_str()) else {
            if conn.name == "main" {
                return Err(CheckError::NoDump {
                    backup: backup.id.clone(),
                    database: conn.name.to_string(),
                    members: backup
                        .members
                        .iter()
                        .map(|m| m.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
            skipped.push(format!(
                "{}: the backup has no dump for it (GitLab: \"{} doesn't exist. Skipping\")",
                conn.name, conn.name
            ));
            continue;
        };
        let opened = open_member(&backup.path, &dump.member).map_err(|e| CheckError::Dump {
            backup: backup.id.clone(),
            member: dump.member.clone(),
            detail: e.to_string(),
        })?;
        databases.push(check_database(
            conn,
            opened.reader,
            &backup.id,
            &dump.member,
            db_version.as_deref(),
        )?);
    }
    let mut advice = Vec::new();
    let objects: usize = databases
        .iter()
        .map(|d| d.items.iter().filter(|i| i.kind != "migration").count())
        .sum();
    let surviving: usize = databases
        .iter()
        .map(|d| {
            d.items
                .iter()
                .filter(|i| i.kind != "migration" && !i.removed_by_drop)
                .count()
        })
        .sum();
    let newer: usize = databases.iter().map(|d| d.newer_migrations().len()).sum();
    if objects > 0 {
        advice.push(format!(
            "{objects} object(s) the backup does not create are in the database: left by the failed upgrade, they make the next upgrade's migrations fail (PG::DuplicateTable, PG::DuplicateColumn). Restore the backup with the drop-tables step (`rewind restore`; GitLab's restore drops the tables first), or drop them by hand with the statements shown after checking their contents."
        ));
    }
    if surviving > 0 {
        advice.push(format!(
            "{surviving} of them survive GitLab's drop step (outside the search path, or not tables/views): drop those by hand even if you restore."
        ));
    }
    if newer > 0 {
        advice.push(format!(
            "schema_migrations holds {newer} version(s) newer than the backup's db_version {}: the database is not in the backup's state, and the next upgrade would skip those migrations. Restore with the drop step (it truncates schema_migrations) rather than deleting versions by hand.",
            db_version.as_deref().unwrap_or("?")
        ));
    }
    if advice.is_empty() {
        advice.push("Nothing left over: the database matches what the backup creates; the next upgrade can run.".into());
    }
    Ok(CheckReport {
        backup_id: backup.id.clone(),
        backup_path: backup.path.clone(),
        db_version,
        databases,
        skipped,
        advice,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg::cluster::TempCluster;

    #[test]
    fn finds_leftover_indexes_but_not_dumped_or_constraint_ones() {
        let c = TempCluster::start().unwrap();
        c.create_database("gl").unwrap();
        let mut db = c.connect("gl").unwrap();
        db.batch_execute(
            "CREATE TABLE projects (id bigserial PRIMARY KEY, name text, path text);
             CREATE INDEX index_projects_on_name ON projects (name);",
        )
        .unwrap();
        let out = c.command("pg_dump", &["gl".as_ref()]).output().unwrap();
        assert!(out.status.success());
        let dump = out.stdout;
        db.batch_execute(
            "CREATE INDEX index_projects_on_path ON projects (path);
             CREATE TABLE lfs_objects (id bigserial PRIMARY KEY, oid text);
             CREATE INDEX index_lfs_objects_on_oid ON lfs_objects (oid);
             ALTER TABLE projects ADD COLUMN new_flag boolean;
             CREATE SCHEMA leftover_schema;",
        )
        .unwrap();
        let conn = DatabaseConn {
            name: "main".into(),
            spec: c.conn_spec("gl"),
            database_tasks: true,
        };
        let chk = check_database(&conn, &dump[..], "b1", "db/database.sql.gz", None).unwrap();
        let names: Vec<(String, String)> = chk
            .items
            .iter()
            .map(|i| (i.kind.clone(), i.name.clone()))
            .collect();
        assert!(
            names.contains(&("index".into(), "public.index_projects_on_path".into())),
            "{names:?}"
        );
        assert!(
            !names
                .iter()
                .any(|(_, n)| n.contains("index_projects_on_name")
                    || n.contains("projects_pkey")
                    || n.contains("index_lfs_objects_on_oid")),
            "{names:?}"
        );
        assert!(names.contains(&("table".into(), "public.lfs_objects".into())));
        assert!(names.contains(&("column".into(), "public.projects.new_flag".into())));
        assert!(names.contains(&("schema".into(), "leftover_schema".into())));
        let col = chk.items.iter().find(|i| i.kind == "column").unwrap();
        assert_eq!(
            col.drop_sql.as_deref(),
            Some("ALTER TABLE \"public\".\"projects\" DROP COLUMN \"new_flag\";")
        );
    }
}
