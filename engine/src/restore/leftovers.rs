//! Leftovers of a failed upgrade: objects in the live database that the backup's dump does
//! not create (tables, views, sequences, schemas, functions, types, columns), and
//! `schema_migrations` versions newer than the backup's `db_version`.
//!
//! The dump's side is a [`DumpCatalog`], built from the dump's table of contents (pg_dump's
//! `-- Name: X; Type: Y; Schema: Z` headers) and the columns of its `CREATE TABLE`
//! statements. The live side is an [`Inventory`]. Each leftover says whether GitLab's drop
//! task removes it (tables and views on the search path, everything in the partition
//! schemas, sequences owned by dropped tables): the others survive a restore and are shown
//! as such.

use std::collections::{BTreeMap, BTreeSet};

use postgres::GenericClient;
use serde::Serialize;

use super::drop::EXTRA_SCHEMAS;
use super::inventory::{Inventory, RelKind};
use crate::pg::conn::describe_pg_error;

/// What kind of object a leftover is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LeftoverKind {
    Schema,
    Table,
    View,
    MaterializedView,
    Sequence,
    Function,
    Type,
    Column,
    Migration,
}

impl LeftoverKind {
    /// A short word for displays.
    pub fn label(self) -> &'static str {
        match self {
            LeftoverKind::Schema => "schema",
            LeftoverKind::Table => "table",
            LeftoverKind::View => "view",
            LeftoverKind::MaterializedView => "materialized view",
            LeftoverKind::Sequence => "sequence",
            LeftoverKind::Function => "function",
            LeftoverKind::Type => "type",
            LeftoverKind::Column => "column",
            LeftoverKind::Migration => "migration",
        }
    }
}

/// One object the backup does not create.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Leftover {
    pub kind: LeftoverKind,
    /// Schema (empty for a schema or a migration).
    pub schema: String,
    /// Name: `table`, `func(args)`, `table.column`, or the migration version.
    pub name: String,
    /// Whether GitLab's drop task (and so Rewind's restore) removes it.
    pub removed_by_drop: bool,
}

impl Leftover {
    /// `schema.name` (or just the name).
    pub fn display_name(&self) -> String {
        if self.schema.is_empty() {
            self.name.clone()
        } else {
            format!("{}.{}", self.schema, self.name)
        }
    }
}

/// What a dump creates, as far as leftovers are concerned.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DumpCatalog {
    /// `(TYPE, schema, name)` as in the TOC headers (`TABLE`, `VIEW`, `SEQUENCE`,
    /// `SCHEMA`, `FUNCTION`, `TYPE`, `DOMAIN`, ...); schema empty for schemas.
    pub objects: BTreeSet<(String, String, String)>,
    /// Column names of each `CREATE TABLE`, keyed by `(schema, table)`.
    pub columns: BTreeMap<(String, String), Vec<String>>,
    /// Roles the dump names, with how (`OWNER TO`, `GRANT`/`REVOKE`, `SET ROLE`).
    pub roles: BTreeMap<String, RoleUse>,
    /// Extensions the dump creates, with the schema it names (`WITH SCHEMA s`).
    pub extensions: BTreeMap<String, Option<String>>,
    /// Databases its `\connect` lines name, with where (`line N (byte M)`): a dump that
    /// connects to another database is refused before anything is changed.
    pub connects: Vec<(String, String)>,
}

/// How often a dump names a role, by statement kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RoleUse {
    /// `ALTER ... OWNER TO role` and `ALTER DEFAULT PRIVILEGES FOR ROLE role`.
    pub ownership: usize,
    /// `GRANT ... TO role`, `REVOKE ... FROM role`.
    pub grants: usize,
    /// `SET ROLE role`, `SET SESSION AUTHORIZATION role`.
    pub session: usize,
}

impl DumpCatalog {
    /// Record a TOC entry (`Type: TABLE`, `Schema: public`, `Name: projects`). A schema
    /// entry may carry `-` as its schema; it is stored with an empty one.
    pub fn add_object(&mut self, typ: &str, schema: Option<&str>, name: &str) {
        let schema = match schema {
            Some("-") | None => "",
            Some(s) => s,
        };
        let schema = if typ == "SCHEMA" { "" } else { schema };
        self.objects
            .insert((typ.to_string(), schema.to_string(), name.to_string()));
    }

    /// Record the columns of a `CREATE TABLE`.
    pub fn add_columns(&mut self, schema: &str, table: &str, columns: Vec<String>) {
        self.columns
            .insert((schema.to_string(), table.to_string()), columns);
    }

    /// Record the ownership, privilege and session statements naming roles, and the
    /// extensions created, of one statement.
    pub fn add_statement_roles(&mut self, sql: &str) {
        use crate::dump::{
            create_extension, privilege_statement, session_role, PrivilegeStatement,
        };
        if let Some(p) = privilege_statement(sql) {
            let ownership = matches!(
                p,
                PrivilegeStatement::OwnerTo { .. }
                    | PrivilegeStatement::AlterDefaultPrivileges { .. }
            );
            for r in p.roles() {
                let u = self.roles.entry(r.clone()).or_default();
                if ownership {
                    u.ownership += 1;
                } else {
                    u.grants += 1;
                }
            }
        } else if let Some(r) = session_role(sql) {
            self.roles.entry(r).or_default().session += 1;
        } else if let Some((name, schema)) = create_extension(sql) {
            self.extensions.insert(name, schema);
        }
    }

    /// Whether the dump creates an object of type `typ`.
    pub fn has(&self, typ: &str, schema: &str, name: &str) -> bool {
        self.objects
            .contains(&(typ.to_string(), schema.to_string(), name.to_string()))
    }

    fn has_schema(&self, name: &str) -> bool {
        // `public` exists in every database; pg_dump only emits it when changed.
        name == "public"
            || self.has("SCHEMA", "", name)
            || self.objects.iter().any(|(_, s, _)| s == name)
    }

    fn has_relation(&self, kind: RelKind, schema: &str, name: &str) -> bool {
        match kind {
            RelKind::Table | RelKind::PartitionedTable => self.has("TABLE", schema, name),
            RelKind::View => self.has("VIEW", schema, name),
            RelKind::MaterializedView => self.has("MATERIALIZED VIEW", schema, name),
            RelKind::ForeignTable => self.has("FOREIGN TABLE", schema, name),
        }
    }

    /// Number of objects recorded.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// Whether nothing was recorded (not a pg_dump plain dump, or an empty one).
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }
}

/// The leftovers of the inventory relative to the dump, plus migrations newer than
/// `db_version`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Leftovers {
    pub items: Vec<Leftover>,
}

impl Leftovers {
    /// Those GitLab's drop does not remove: they survive the restore.
    pub fn surviving(&self) -> impl Iterator<Item = &Leftover> {
        self.items.iter().filter(|l| !l.removed_by_drop)
    }

    /// Whether `schema.name` of `kind` is a leftover.
    pub fn contains(&self, kind: LeftoverKind, schema: &str, name: &str) -> bool {
        self.items
            .iter()
            .any(|l| l.kind == kind && l.schema == schema && l.name == name)
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }
}

/// Compare an inventory with what the dump creates. `migrations` are the live
/// `schema_migrations` versions newer than the backup's `db_version` (see
/// [`newer_migrations`]).
pub fn compute(inv: &Inventory, dump: &DumpCatalog, migrations: &[String]) -> Leftovers {
    let on_path = |s: &str| inv.search_path_schemas.iter().any(|p| p == s);
    let in_extra = |s: &str| EXTRA_SCHEMAS.contains(&s);
    let mut items = Vec::new();
    let mut dropped_tables: BTreeSet<(&str, &str)> = BTreeSet::new();
    for r in &inv.relations {
        let removed = in_extra(&r.schema) || on_path(&r.schema);
        if r.kind.is_table() && removed {
            dropped_tables.insert((&r.schema, &r.name));
        }
    }
    for s in &inv.schemas {
        if !dump.has_schema(s) {
            items.push(Leftover {
                kind: LeftoverKind::Schema,
                schema: String::new(),
                name: s.clone(),
                removed_by_drop: in_extra(s),
            });
        }
    }
    for r in &inv.relations {
        let removed = in_extra(&r.schema)
            || (on_path(&r.schema) && (r.kind.is_table() || r.kind.is_view()))
            || r.partition_of
                .as_ref()
                .is_some_and(|(s, n)| dropped_tables.contains(&(s.as_str(), n.as_str())));
        if !dump.has_relation(r.kind, &r.schema, &r.name) {
            let kind = match r.kind {
                RelKind::View => LeftoverKind::View,
                RelKind::MaterializedView => LeftoverKind::MaterializedView,
                _ => LeftoverKind::Table,
            };
            items.push(Leftover {
                kind,
                schema: r.schema.clone(),
                name: r.name.clone(),
                removed_by_drop: removed,
            });
        } else if r.kind.is_table() {
            if let Some(cols) = dump.columns.get(&(r.schema.clone(), r.name.clone())) {
                for c in r.columns.iter().filter(|c| !cols.contains(c)) {
                    items.push(Leftover {
                        kind: LeftoverKind::Column,
                        schema: r.schema.clone(),
                        name: format!("{}.{}", r.name, c),
                        removed_by_drop: removed,
                    });
                }
            }
        }
    }
    for s in &inv.sequences {
        if !dump.has("SEQUENCE", &s.schema, &s.name) {
            let removed = in_extra(&s.schema)
                || s.owned_by
                    .as_ref()
                    .is_some_and(|(ts, tn)| dropped_tables.contains(&(ts.as_str(), tn.as_str())));
            items.push(Leftover {
                kind: LeftoverKind::Sequence,
                schema: s.schema.clone(),
                name: s.name.clone(),
                removed_by_drop: removed,
            });
        }
    }
    for f in &inv.functions {
        let name = format!("{}({})", f.name, f.args);
        if !dump.has("FUNCTION", &f.schema, &name) && !dump.has("PROCEDURE", &f.schema, &name) {
            items.push(Leftover {
                kind: LeftoverKind::Function,
                schema: f.schema.clone(),
                name,
                removed_by_drop: in_extra(&f.schema),
            });
        }
    }
    for t in &inv.types {
        if !dump.has("TYPE", &t.schema, &t.name) && !dump.has("DOMAIN", &t.schema, &t.name) {
            items.push(Leftover {
                kind: LeftoverKind::Type,
                schema: t.schema.clone(),
                name: t.name.clone(),
                removed_by_drop: in_extra(&t.schema),
            });
        }
    }
    for v in migrations {
        items.push(Leftover {
            kind: LeftoverKind::Migration,
            schema: String::new(),
            name: v.clone(),
            // TRUNCATE schema_migrations removes every version.
            removed_by_drop: true,
        });
    }
    Leftovers { items }
}

/// Compare two migration versions as numbers (digit strings of possibly different length).
fn version_newer(v: &str, than: &str) -> bool {
    let a = v.trim_start_matches('0');
    let b = than.trim_start_matches('0');
    (a.len(), a) > (b.len(), b)
}

/// `schema_migrations` versions newer than `db_version`, in order. Empty when the table
/// does not exist.
pub fn newer_migrations(
    client: &mut impl GenericClient,
    db_version: &str,
) -> Result<Vec<String>, String> {
    let exists: bool = client
        .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])
        .map_err(|e| describe_pg_error(&e))?
        .get(0);
    if !exists {
        return Ok(Vec::new());
    }
    let rows = client
        .query("SELECT version::text FROM schema_migrations", &[])
        .map_err(|e| describe_pg_error(&e))?;
    let mut newer: Vec<String> = rows
        .iter()
        .map(|r| r.get::<_, String>(0))
        .filter(|v| version_newer(v, db_version))
        .collect();
    newer.sort_by(|a, b| {
        let a = a.trim_start_matches('0');
        let b = b.trim_start_matches('0');
        (a.len(), a).cmp(&(b.len(), b))
    });
    Ok(newer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg::cluster::TempCluster;
    use crate::restore::inventory::inventory;

    #[test]
    fn versions_compare_as_numbers() {
        assert!(version_newer("20240201000000", "20240101000000"));
        assert!(!version_newer("20240101000000", "20240101000000"));
        assert!(version_newer("100", "99"));
        assert!(!version_newer("099", "99"));
    }

    #[test]
    fn finds_what_the_failed_upgrade_added() {
        let c = TempCluster::start().unwrap();
        c.create_database("gl").unwrap();
        let mut db = c.connect("gl").unwrap();
        db.batch_execute(
            "CREATE EXTENSION pg_trgm;
             CREATE TABLE schema_migrations (version varchar PRIMARY KEY);
             INSERT INTO schema_migrations VALUES ('20240101000000'), ('20240301000000'), ('20240201000000');
             CREATE TABLE projects (id bigserial PRIMARY KEY, name text);
             CREATE SCHEMA gitlab_partitions_static;
             -- the failed upgrade:
             ALTER TABLE projects ADD COLUMN new_flag boolean;
             CREATE TABLE lfs_objects (id bigserial PRIMARY KEY);
             CREATE VIEW lfs_view AS SELECT id FROM lfs_objects;
             CREATE SEQUENCE standalone_seq;
             CREATE FUNCTION trig() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
             CREATE TYPE new_enum AS ENUM ('a');
             CREATE SCHEMA extra;
             CREATE TABLE gitlab_partitions_static.p1 (id int);",
        )
        .unwrap();
        let inv = inventory(&mut db).unwrap();
        let mut dump = DumpCatalog::default();
        dump.add_object("TABLE", Some("public"), "schema_migrations");
        dump.add_object("TABLE", Some("public"), "projects");
        dump.add_object("SEQUENCE", Some("public"), "projects_id_seq");
        dump.add_object("SCHEMA", Some("-"), "gitlab_partitions_static");
        dump.add_object("EXTENSION", Some("-"), "pg_trgm");
        dump.add_columns("public", "projects", vec!["id".into(), "name".into()]);
        let mig = newer_migrations(&mut db, "20240101000000").unwrap();
        assert_eq!(mig, vec!["20240201000000", "20240301000000"]);
        let l = compute(&inv, &dump, &mig);
        let got: Vec<(LeftoverKind, String, bool)> = l
            .items
            .iter()
            .map(|x| (x.kind, x.display_name(), x.removed_by_drop))
            .collect();
        use LeftoverKind::*;
        let want = vec![
            (Schema, "extra".to_string(), false),
            (Table, "gitlab_partitions_static.p1".into(), true),
            (Table, "public.lfs_objects".into(), true),
            (View, "public.lfs_view".into(), true),
            (Column, "public.projects.new_flag".into(), true),
            (Sequence, "public.lfs_objects_id_seq".into(), true),
            (Sequence, "public.standalone_seq".into(), false),
            (Function, "public.trig()".into(), false),
            (Type, "public.new_enum".into(), false),
            (Migration, "20240201000000".into(), true),
            (Migration, "20240301000000".into(), true),
        ];
        assert_eq!(got, want);
        assert_eq!(l.surviving().count(), 4);
        // Without schema_migrations: no versions, no error.
        db.batch_execute("DROP TABLE schema_migrations").unwrap();
        assert!(newer_migrations(&mut db, "1").unwrap().is_empty());
    }
}

/// Column names of a pg_dump `CREATE TABLE name (...)` statement, or `None` when the
/// statement's column list does not tell the whole story (inheritance, typed tables,
/// `PARTITION OF`, `LIKE`) or cannot be read. Quoted names are unquoted; bare names are
/// folded to lower case, as PostgreSQL does.
pub fn create_table_columns(sql: &str) -> Option<Vec<String>> {
    let upper = sql.to_ascii_uppercase();
    let words: Vec<&str> = upper.split_whitespace().collect();
    if words.iter().any(|w| w.starts_with("INHERITS"))
        || words
            .windows(2)
            .any(|w| w[0] == "PARTITION" && w[1] == "OF")
    {
        return None;
    }
    // The column list: from the first `(` outside quotes to its matching `)`.
    let bytes = sql.as_bytes();
    let mut i = 0;
    let mut in_q = false;
    let mut open = None;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => in_q = !in_q,
            b'(' if !in_q => {
                open = Some(i);
                break;
            }
            b' ' if !in_q && upper[i..].starts_with(" OF ") && open.is_none() => return None,
            _ => {}
        }
        i += 1;
    }
    let start = open? + 1;
    let mut depth = 0i32;
    let mut elems = Vec::new();
    let mut cur = String::new();
    let mut chars = sql[start..].chars().peekable();
    let (mut dq, mut sq) = (false, false);
    let mut closed = false;
    while let Some(c) = chars.next() {
        if dq {
            cur.push(c);
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    cur.push('"');
                    chars.next();
                } else {
                    dq = false;
                }
            }
            continue;
        }
        if sq {
            cur.push(c);
            if c == '\'' {
                if chars.peek() == Some(&'\'') {
                    cur.push('\'');
                    chars.next();
                } else {
                    sq = false;
                }
            }
            continue;
        }
        match c {
            '"' => {
                dq = true;
                cur.push(c)
            }
            '\'' => {
                sq = true;
                cur.push(c)
            }
            '(' => {
                depth += 1;
                cur.push(c)
            }
            ')' if depth == 0 => {
                closed = true;
                break;
            }
            ')' => {
                depth -= 1;
                cur.push(c)
            }
            ',' if depth == 0 => elems.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    if !closed {
        return None;
    }
    if !cur.trim().is_empty() {
        elems.push(cur);
    }
    let mut cols = Vec::new();
    for e in elems {
        let e = e.trim();
        let first_word = e
            .split(|c: char| c.is_whitespace() || c == '(')
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        match first_word.as_str() {
            "CONSTRAINT" | "PRIMARY" | "UNIQUE" | "CHECK" | "FOREIGN" | "EXCLUDE" => continue,
            "LIKE" => return None,
            _ => {}
        }
        if let Some(rest) = e.strip_prefix('"') {
            let mut name = String::new();
            let mut it = rest.chars().peekable();
            loop {
                match it.next() {
                    Some('"') if it.peek() == Some(&'"') => {
                        name.push('"');
                        it.next();
                    }
                    Some('"') => break,
                    Some(c) => name.push(c),
                    None => return None,
                }
            }
            cols.push(name);
        } else {
            let name: String = e
                .chars()
                .take_while(|c| !c.is_whitespace())
                .collect::<String>()
                .to_lowercase();
            if name.is_empty() {
                return None;
            }
            cols.push(name);
        }
    }
    Some(cols)
}

#[cfg(test)]
mod column_tests {
    use super::create_table_columns;

    #[test]
    fn reads_pg_dump_create_table() {
        let sql = "CREATE TABLE public.\"we\"\"ird (\" (\n    id bigint NOT NULL,\n    \"Name\" character varying(255) DEFAULT 'a, (b)'::character varying,\n    total numeric(10,2),\n    g integer GENERATED ALWAYS AS ((id * 2)) STORED,\n    CONSTRAINT check_x CHECK ((char_length(\"Name\") <= 255))\n);";
        assert_eq!(
            create_table_columns(sql).unwrap(),
            vec!["id", "Name", "total", "g"]
        );
        assert_eq!(
            create_table_columns("CREATE TABLE public.e (\n);").unwrap(),
            Vec::<String>::new()
        );
        assert!(create_table_columns(
            "CREATE TABLE public.c (\n    x int\n)\nINHERITS (public.p);"
        )
        .is_none());
        assert!(create_table_columns("CREATE TABLE public.t OF public.ty;").is_none());
        assert!(create_table_columns("CREATE TABLE public.t (\n    x int").is_none());
    }
}

/// Cost of the catalogue pass (it reads the whole member once more).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CatalogCost {
    /// Decompressed bytes read.
    pub bytes: u64,
    pub seconds: f64,
}

/// Read a whole dump once with the streaming dump parser ([`crate::dump::DumpParser`]) and
/// return what it creates: every TOC entry of a statement, and the columns of each
/// `CREATE TABLE` (read from the statement itself), the roles it names and the extensions
/// it creates. COPY data is skipped, not kept.
/// Errors name `member`.
pub fn read_catalog(
    reader: impl std::io::Read,
    member: &str,
) -> Result<(DumpCatalog, CatalogCost), String> {
    use crate::dump::{classify, DumpParser, Item, Kind};
    let started = std::time::Instant::now();
    let mut parser = DumpParser::new(std::io::BufReader::with_capacity(1 << 20, reader));
    let mut catalog = DumpCatalog::default();
    loop {
        let item = parser.next_item().map_err(|e| format!("{member}: {e}"))?;
        let Some(item) = item else { break };
        if let Item::Meta {
            command: crate::dump::MetaCommand::Connect { args },
            at,
        } = &item
        {
            if let Some(t) = crate::restore::load::connect_target(args) {
                catalog.connects.push((t, at.to_string()));
            }
        }
        if let Item::Statement(st) = item {
            if let Some(h) = st.toc.as_deref().filter(|h| !h.data) {
                catalog.add_object(&h.kind, h.schema.as_deref(), &h.name);
            }
            catalog.add_statement_roles(&st.sql);
            if let Kind::CreateTable { table } = classify(&st.sql, st.toc.as_deref()) {
                if let Some(cols) = create_table_columns(&st.sql) {
                    let schema = table.schema.clone().unwrap_or_else(|| "public".into());
                    catalog.add_columns(&schema, &table.name, cols);
                }
            }
        }
    }
    Ok((
        catalog,
        CatalogCost {
            bytes: parser.bytes_read(),
            seconds: started.elapsed().as_secs_f64(),
        },
    ))
}

#[cfg(test)]
mod catalog_tests {
    use super::*;

    #[test]
    fn reads_headers_tables_and_skips_copy_data() {
        let dump = "--\n-- PostgreSQL database dump\n--\n\nSET statement_timeout = 0;\n\n\
--\n-- Name: gitlab_partitions_static; Type: SCHEMA; Schema: -; Owner: gitlab\n--\n\n\
CREATE SCHEMA gitlab_partitions_static;\n\n\
CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public;\n\
COMMENT ON EXTENSION pg_trgm IS 'trgm';\n\
ALTER SCHEMA gitlab_partitions_static OWNER TO \"gitlab-psql\";\n\
GRANT ALL ON SCHEMA gitlab_partitions_static TO pgbouncer;\n\
REVOKE ALL ON SCHEMA gitlab_partitions_static FROM PUBLIC;\n\
SET SESSION AUTHORIZATION 'gitlab';\n\
--\n-- Name: we; ird; Type: TABLE; Schema: public; Owner: gitlab\n--\n\n\
CREATE TABLE public.\"we; ird\" (\n    id integer,\n    \"Body\" text\n);\n\n\
--\n-- Data for Name: we; ird; Type: TABLE DATA; Schema: public; Owner: gitlab\n--\n\n\
COPY public.\"we; ird\" (id, \"Body\") FROM stdin;\n1\t-- Name: x; Type: TABLE; Schema: public; Owner: g\n2\t\\\\.\n\\.\n\n\
--\n-- Name: add(integer); Type: FUNCTION; Schema: public; Owner: gitlab\n--\n\n\
CREATE FUNCTION public.add(integer) RETURNS integer\n    LANGUAGE sql\n    AS $$\n-- Name: y; Type: TABLE; Schema: public; Owner: g\nSELECT 1;\n$$;\n";
        let (cat, cost) = read_catalog(dump.as_bytes(), "db/database.sql.gz").unwrap();
        assert_eq!(cost.bytes, dump.len() as u64);
        assert!(cat.has("TABLE", "public", "we; ird"));
        assert!(cat.has("SCHEMA", "", "gitlab_partitions_static"));
        assert!(cat.has("FUNCTION", "public", "add(integer)"));
        assert_eq!(
            cat.extensions.get("pg_trgm"),
            Some(&Some("public".to_string()))
        );
        assert_eq!(cat.roles["gitlab-psql"].ownership, 1);
        assert_eq!(cat.roles["pgbouncer"].grants, 1);
        assert_eq!(cat.roles["gitlab"].session, 1);
        assert!(!cat.roles.contains_key("public"));
        assert!(
            !cat.has("TABLE", "public", "x"),
            "a row was taken for a header"
        );
        assert!(
            !cat.has("TABLE", "public", "y"),
            "a function body was taken for a header"
        );
        assert_eq!(
            cat.columns
                .get(&("public".into(), "we; ird".into()))
                .unwrap(),
            &vec!["id".to_string(), "Body".to_string()]
        );
        // Cut inside the COPY block: an error naming the member and the table.
        let cut = &dump[..dump.find("2\t").unwrap()];
        let e = read_catalog(cut.as_bytes(), "db/database.sql.gz").unwrap_err();
        assert!(
            e.contains("db/database.sql.gz") && e.contains("we; ird"),
            "{e}"
        );
    }
}
