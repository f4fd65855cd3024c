//! Inventory of a live GitLab database, read from the system catalogs over one connection
//! (no psql): schemas, tables with row estimates and sizes, partitioned tables and their
//! partitions, views, materialized views, sequences, functions, types and extensions.
//!
//! Objects that belong to an extension (`pg_depend.deptype = 'e'`, e.g. the
//! `pg_stat_statements` view) are left out, as GitLab's `gitlab:db:drop_tables` leaves them
//! out; the extensions themselves are listed.

use postgres::GenericClient;
use serde::Serialize;

use crate::pg::conn::describe_pg_error;

/// Errors reading the inventory.
#[derive(Debug, thiserror::Error)]
#[error("reading the inventory of database `{database}` failed while listing {what}: {detail}. Check that the role can read the system catalogs")]
pub struct InventoryError {
    pub database: String,
    pub what: &'static str,
    pub detail: String,
}

/// Kinds of relation (`pg_class.relkind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RelKind {
    Table,
    PartitionedTable,
    View,
    MaterializedView,
    ForeignTable,
}

impl RelKind {
    fn from_relkind(c: i8) -> Option<Self> {
        match c as u8 {
            b'r' => Some(RelKind::Table),
            b'p' => Some(RelKind::PartitionedTable),
            b'v' => Some(RelKind::View),
            b'm' => Some(RelKind::MaterializedView),
            b'f' => Some(RelKind::ForeignTable),
            _ => None,
        }
    }

    /// The word pg_dump uses in its `Type:` headers.
    pub fn dump_type(self) -> &'static str {
        match self {
            RelKind::Table | RelKind::PartitionedTable => "TABLE",
            RelKind::View => "VIEW",
            RelKind::MaterializedView => "MATERIALIZED VIEW",
            RelKind::ForeignTable => "FOREIGN TABLE",
        }
    }

    /// Whether GitLab's drop task treats it as a table (`connection.tables`: `r`, `p`).
    pub fn is_table(self) -> bool {
        matches!(self, RelKind::Table | RelKind::PartitionedTable)
    }

    /// Whether GitLab's drop task treats it as a view (`connection.views`: `v`, `m`).
    pub fn is_view(self) -> bool {
        matches!(self, RelKind::View | RelKind::MaterializedView)
    }
}

/// A table, view, materialized view or foreign table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Relation {
    pub schema: String,
    pub name: String,
    pub kind: RelKind,
    /// The larger of `pg_class.reltuples` (set by VACUUM/ANALYZE; `-1` before) and the live
    /// rows the statistics collector counted (`n_live_tup`, right after inserts without
    /// ANALYZE): an estimate either way.
    pub row_estimate: u64,
    /// `pg_total_relation_size` in bytes (heap, indexes, TOAST).
    pub size_bytes: u64,
    /// For a partition: its parent as `(schema, name)`.
    pub partition_of: Option<(String, String)>,
    /// Column names in order (dropped columns excluded).
    pub columns: Vec<String>,
}

/// A schema-qualified object without further detail (sequence, type).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Named {
    pub schema: String,
    pub name: String,
}

/// A sequence, with the table whose column owns it (`OWNED BY`, serial and identity
/// columns): such a sequence goes away with its table.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Sequence {
    pub schema: String,
    pub name: String,
    pub owned_by: Option<(String, String)>,
}

/// A function or procedure, with its argument types as pg_dump's TOC names them
/// (`integer, timestamp with time zone`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Function {
    pub schema: String,
    pub name: String,
    pub args: String,
}

/// An installed extension.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Extension {
    pub name: String,
    pub version: String,
    pub schema: String,
}

/// Everything in one database that a restore drops or recreates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Inventory {
    /// The database's name (`current_database()`).
    pub database: String,
    /// `server_version_num` (e.g. 150008).
    pub server_version_num: u32,
    /// `pg_database_size` in bytes.
    pub database_size: u64,
    /// Non-system schemas (not `pg_*`, not `information_schema`).
    pub schemas: Vec<String>,
    /// Schemas on the connection's search path (`current_schemas(false)`): where GitLab's
    /// drop task looks for tables and views.
    pub search_path_schemas: Vec<String>,
    /// Tables, partitioned tables, partitions, views, materialized views, foreign tables.
    pub relations: Vec<Relation>,
    pub sequences: Vec<Sequence>,
    pub functions: Vec<Function>,
    /// User-defined types: enums, domains, ranges, multiranges, stand-alone composites.
    pub types: Vec<Named>,
    pub extensions: Vec<Extension>,
}

impl Inventory {
    /// The relation `schema.name`, if present.
    pub fn relation(&self, schema: &str, name: &str) -> Option<&Relation> {
        self.relations
            .iter()
            .find(|r| r.schema == schema && r.name == name)
    }

    /// Sum of the sizes of all relations (partitions counted once, as their own rows).
    pub fn total_relation_bytes(&self) -> u64 {
        self.relations.iter().map(|r| r.size_bytes).sum()
    }
}

const SYSTEM_SCHEMA_FILTER: &str =
    "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_'";

/// Read the inventory over an open connection.
pub fn inventory(client: &mut impl GenericClient) -> Result<Inventory, InventoryError> {
    let mut database = String::new();
    let err = |database: &str, what: &'static str, e: postgres::Error| InventoryError {
        database: database.to_string(),
        what,
        detail: describe_pg_error(&e),
    };
    let row = client
        .query_one(
            "SELECT current_database()::text, current_setting('server_version_num')::int4, \
             pg_database_size(current_database())::int8, \
             array(SELECT unnest(current_schemas(false))::text)",
            &[],
        )
        .map_err(|e| err("?", "the database itself", e))?;
    database.push_str(row.get::<_, &str>(0));
    let server_version_num = row.get::<_, i32>(1).max(0) as u32;
    let database_size = row.get::<_, i64>(2).max(0) as u64;
    let search_path_schemas: Vec<String> = row.get(3);

    let schemas = client
        .query(
            &format!(
                "SELECT n.nspname::text FROM pg_namespace n WHERE {SYSTEM_SCHEMA_FILTER} \
                 AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_namespace'::regclass \
                   AND d.objid = n.oid AND d.deptype = 'e') ORDER BY 1"
            ),
            &[],
        )
        .map_err(|e| err(&database, "schemas", e))?
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect();

    let rel_rows = client
        .query(
            &format!(
                "SELECT n.nspname::text, c.relname::text, c.relkind, \
                   GREATEST(c.reltuples, pg_stat_get_live_tuples(c.oid), 0)::int8, \
                   pg_total_relation_size(c.oid)::int8, \
                   pn.nspname::text, pc.relname::text, \
                   array(SELECT a.attname::text FROM pg_attribute a WHERE a.attrelid = c.oid \
                         AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum) \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 LEFT JOIN pg_inherits i ON i.inhrelid = c.oid AND c.relispartition \
                 LEFT JOIN pg_class pc ON pc.oid = i.inhparent \
                 LEFT JOIN pg_namespace pn ON pn.oid = pc.relnamespace \
                 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND {SYSTEM_SCHEMA_FILTER} \
                 AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass \
                   AND d.objid = c.oid AND d.deptype = 'e') \
                 ORDER BY 1, 2"
            ),
            &[],
        )
        .map_err(|e| err(&database, "tables and views", e))?;
    let mut relations = Vec::with_capacity(rel_rows.len());
    for r in &rel_rows {
        let Some(kind) = RelKind::from_relkind(r.get::<_, i8>(2)) else {
            continue;
        };
        let parent_schema: Option<String> = r.get(5);
        let parent_name: Option<String> = r.get(6);
        relations.push(Relation {
            schema: r.get(0),
            name: r.get(1),
            kind,
            row_estimate: r.get::<_, i64>(3).max(0) as u64,
            size_bytes: r.get::<_, i64>(4).max(0) as u64,
            partition_of: parent_schema.zip(parent_name),
            columns: r.get(7),
        });
    }

    let sequences = client
        .query(
            &format!(
                "SELECT n.nspname::text, c.relname::text, tn.nspname::text, t.relname::text \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 LEFT JOIN pg_depend o ON o.classid = 'pg_class'::regclass AND o.objid = c.oid \
                   AND o.refclassid = 'pg_class'::regclass AND o.deptype IN ('a', 'i') \
                 LEFT JOIN pg_class t ON t.oid = o.refobjid \
                 LEFT JOIN pg_namespace tn ON tn.oid = t.relnamespace \
                 WHERE c.relkind = 'S' AND {SYSTEM_SCHEMA_FILTER} \
                 AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass \
                   AND d.objid = c.oid AND d.deptype = 'e') ORDER BY 1, 2"
            ),
            &[],
        )
        .map_err(|e| err(&database, "sequences", e))?
        .iter()
        .map(|r| Sequence {
            schema: r.get(0),
            name: r.get(1),
            owned_by: r
                .get::<_, Option<String>>(2)
                .zip(r.get::<_, Option<String>>(3)),
        })
        .collect();

    let functions = client
        .query(
            &format!(
                "SELECT n.nspname::text, p.proname::text, oidvectortypes(p.proargtypes) \
                 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
                 WHERE {SYSTEM_SCHEMA_FILTER} \
                 AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass \
                   AND d.objid = p.oid AND d.deptype = 'e') ORDER BY 1, 2, 3"
            ),
            &[],
        )
        .map_err(|e| err(&database, "functions", e))?
        .iter()
        .map(|r| Function {
            schema: r.get(0),
            name: r.get(1),
            args: r.get(2),
        })
        .collect();

    let types = client
        .query(
            &format!(
                "SELECT n.nspname::text, t.typname::text FROM pg_type t \
                 JOIN pg_namespace n ON n.oid = t.typnamespace \
                 LEFT JOIN pg_class c ON c.oid = t.typrelid \
                 WHERE {SYSTEM_SCHEMA_FILTER} \
                 AND (t.typtype IN ('e', 'd', 'r', 'm') OR (t.typtype = 'c' AND c.relkind = 'c') \
                      OR (t.typtype = 'b' AND t.typelem = 0 AND t.typrelid = 0)) \
                 AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass \
                   AND d.objid = t.oid AND d.deptype = 'e') \
                 AND NOT EXISTS (SELECT 1 FROM pg_range rg WHERE rg.rngmultitypid = t.oid \
                   AND EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass \
                     AND d.objid = rg.rngtypid AND d.deptype = 'e')) \
                 ORDER BY 1, 2"
            ),
            &[],
        )
        .map_err(|e| err(&database, "types", e))?
        .iter()
        .map(|r| Named {
            schema: r.get(0),
            name: r.get(1),
        })
        .collect();

    let extensions = client
        .query(
            "SELECT e.extname::text, e.extversion, n.nspname::text FROM pg_extension e \
             JOIN pg_namespace n ON n.oid = e.extnamespace ORDER BY 1",
            &[],
        )
        .map_err(|e| err(&database, "extensions", e))?
        .iter()
        .map(|r| Extension {
            name: r.get(0),
            version: r.get(1),
            schema: r.get(2),
        })
        .collect();

    Ok(Inventory {
        database,
        server_version_num,
        database_size,
        schemas,
        search_path_schemas,
        relations,
        sequences,
        functions,
        types,
        extensions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg::cluster::TempCluster;

    #[test]
    fn lists_every_kind_and_leaves_extension_objects_out() {
        let c = TempCluster::start().unwrap();
        c.create_database("inv").unwrap();
        let mut db = c.connect("inv").unwrap();
        db.batch_execute(
            "CREATE EXTENSION pg_stat_statements;
             CREATE EXTENSION pg_trgm;
             CREATE SCHEMA gitlab_partitions_dynamic;
             CREATE TYPE mood AS ENUM ('ok', 'sad');
             CREATE DOMAIN positive AS int CHECK (VALUE > 0);
             CREATE TABLE projects (id bigserial PRIMARY KEY, name text, m mood);
             INSERT INTO projects (name) SELECT 'p' || g FROM generate_series(1, 500) g;
             ANALYZE projects;
             CREATE TABLE events (id bigint, created_at date) PARTITION BY RANGE (created_at);
             CREATE TABLE gitlab_partitions_dynamic.events_2024 PARTITION OF events
               FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
             CREATE VIEW project_names AS SELECT name FROM projects;
             CREATE MATERIALIZED VIEW project_count AS SELECT count(*) FROM projects;
             CREATE SEQUENCE standalone_seq;
             CREATE FUNCTION add_one(i int) RETURNS int LANGUAGE sql AS $$ SELECT i + 1 $$;",
        )
        .unwrap();
        let inv = inventory(&mut db).unwrap();
        assert_eq!(inv.database, "inv");
        assert!(inv.server_version_num >= 100000);
        assert!(inv.database_size > 0);
        assert!(inv.schemas.contains(&"public".to_string()));
        assert!(inv
            .schemas
            .contains(&"gitlab_partitions_dynamic".to_string()));
        assert_eq!(inv.search_path_schemas, vec!["public".to_string()]);
        let p = inv.relation("public", "projects").unwrap();
        assert_eq!(p.kind, RelKind::Table);
        assert_eq!(p.row_estimate, 500);
        assert!(p.size_bytes > 8192);
        assert_eq!(p.columns, vec!["id", "name", "m"]);
        assert_eq!(
            inv.relation("public", "events").unwrap().kind,
            RelKind::PartitionedTable
        );
        let part = inv
            .relation("gitlab_partitions_dynamic", "events_2024")
            .unwrap();
        assert_eq!(
            part.partition_of,
            Some(("public".to_string(), "events".to_string()))
        );
        assert_eq!(
            inv.relation("public", "project_names").unwrap().kind,
            RelKind::View
        );
        assert_eq!(
            inv.relation("public", "project_count").unwrap().kind,
            RelKind::MaterializedView
        );
        // pg_stat_statements' views belong to the extension: not listed.
        assert!(inv.relation("public", "pg_stat_statements").is_none());
        assert!(inv
            .extensions
            .iter()
            .any(|e| e.name == "pg_stat_statements"));
        // pg_trgm's functions are the extension's.
        assert!(!inv.functions.iter().any(|f| f.name == "similarity"));
        assert!(inv
            .functions
            .iter()
            .any(|f| f.name == "add_one" && f.args == "integer"));
        let seqs: Vec<(&str, bool)> = inv
            .sequences
            .iter()
            .map(|s| (s.name.as_str(), s.owned_by.is_some()))
            .collect();
        assert_eq!(
            seqs,
            vec![("projects_id_seq", true), ("standalone_seq", false)]
        );
        let types: Vec<&str> = inv.types.iter().map(|s| s.name.as_str()).collect();
        assert!(
            types.contains(&"mood") && types.contains(&"positive"),
            "{types:?}"
        );
        assert!(!types.contains(&"gtrgm"), "{types:?}");
        assert!(!types.contains(&"projects"), "{types:?}");
    }
}

#[cfg(test)]
mod estimate_tests {
    use super::*;
    use crate::pg::cluster::TempCluster;

    /// A failed upgrade's rows, never analysed: the estimate comes from the statistics
    /// collector's live row count, not 0 from `reltuples`.
    #[test]
    fn rows_inserted_without_analyze_are_estimated() {
        let c = TempCluster::start().unwrap();
        c.create_database("est").unwrap();
        let mut db = c.connect_app("est").unwrap();
        db.batch_execute(
            "CREATE TABLE zoekt_tasks (id bigserial PRIMARY KEY, note text);
             INSERT INTO zoekt_tasks (note) SELECT 'n' || g FROM generate_series(1, 300) g;",
        )
        .unwrap();
        drop(db);
        // The inserting session reports its counts when it ends; another one reads them.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let mut other = c.connect_app("est").unwrap();
            let inv = inventory(&mut other).unwrap();
            let t = inv.relation("public", "zoekt_tasks").unwrap();
            if t.row_estimate == 300 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "estimate {} for 300 rows never analysed",
                t.row_estimate
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }
}
