//! Assessment of a failed migration against the live database: is marking it complete
//! right?
//!
//! Marking is only right when the error says an object the migration creates already
//! exists (`PG::DuplicateTable`, `DuplicateColumn`, `DuplicateObject`, ...), the object is
//! really there, and it has the shape the migration gives it as far as the log shows
//! (columns and types of the printed `CREATE TABLE`/`ALTER TABLE ... ADD` statement or of
//! `-- add_column(...)` lines). The other steps the log printed for the migration are
//! checked too: Rails runs a migration in one transaction, so what the failed run did
//! before the error was rolled back and must already exist for marking to be safe.
//! Any other error is explained: a missing object means an earlier step is missing, a
//! unique violation is about data, not schema.

use serde::Serialize;

use super::log::{
    alter_add_column, create_table_columns, DbObject, ErrorKind, Failure, ObjectKind, SchemaOp,
};
use super::mark;
use crate::pg::conn::describe_pg_error;
use crate::pg::ident::qualified;

/// Row counts stop at this many rows (an upper bound keeps the check fast on big tables).
pub const ROW_COUNT_CAP: i64 = 10_000;

/// Errors assessing (the database could not be read).
#[derive(Debug, thiserror::Error)]
pub enum AssessError {
    #[error("database {database}: {step} failed: {detail}")]
    Sql {
        database: String,
        step: String,
        detail: String,
    },
}

/// Rewind's recommendation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The failed migration's work is in the database: mark it complete and migrate again.
    MarkComplete,
    /// Marking would be wrong; see the reason and advice.
    DoNotMark,
    /// The log shows no failure.
    NothingToDo,
}

/// How one expected column compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnStatus {
    Matches,
    Missing,
    TypeDiffers,
}

/// One column the migration creates, compared with the database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ColumnCheck {
    pub table: String,
    pub column: String,
    /// The type the migration gives it (SQL form, or the Rails type of `add_column`).
    pub expected: Option<String>,
    /// The type in the database (`format_type`), if the column exists.
    pub found: Option<String>,
    pub status: ColumnStatus,
}

/// One `-- op(...)` step of the failed migration, checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepCheck {
    pub step: String,
    /// Whether the object the step creates exists; `None` when Rewind cannot tell.
    pub exists: Option<bool>,
}

/// What Rewind found and recommends for one failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Assessment {
    /// The failed migration's version, if the log names it.
    pub version: Option<String>,
    pub migration_name: Option<String>,
    /// Connection name (`main`, `ci`) the migration ran on (as assessed).
    pub database: String,
    /// `PG::<class>` without the prefix, if a PostgreSQL error.
    pub error_class: Option<String>,
    pub kind: ErrorKind,
    pub message: Option<String>,
    pub object: Option<DbObject>,
    /// Whether the named object exists now (`None`: not checked).
    pub object_exists: Option<bool>,
    /// What the object is (`table public.lfs_objects`, an index definition, ...).
    pub object_detail: Option<String>,
    /// Rows in the table (non-null values for a column), up to [`ROW_COUNT_CAP`].
    pub rows: Option<i64>,
    /// Whether `rows` hit the cap (there are at least that many).
    pub rows_capped: bool,
    /// Columns the migration creates, compared.
    pub shape: Vec<ColumnCheck>,
    /// Columns in the table the migration does not create (when the full column list is known).
    pub extra_columns: Vec<String>,
    /// The migration's printed steps, checked.
    pub steps: Vec<StepCheck>,
    /// Whether the version is in schema_migrations (`None`: no table, or not checked).
    pub already_marked: Option<bool>,
    pub verdict: Verdict,
    /// Why, in a sentence or two.
    pub reason: String,
    /// What to do.
    pub advice: String,
    /// Further observations.
    pub notes: Vec<String>,
}

/// Normalise a SQL type name to PostgreSQL's `format_type` spelling.
pub fn normalize_sql_type(ty: &str) -> String {
    let t = ty.trim().to_ascii_lowercase();
    let (base, modifier) = match t.find('(') {
        Some(i) => (t[..i].trim().to_string(), t[i..].to_string()),
        None => (t.clone(), String::new()),
    };
    let (base, tz) = if let Some(b) = base.strip_suffix(" with time zone") {
        (b.to_string(), Some(" with time zone"))
    } else if let Some(b) = base.strip_suffix(" without time zone") {
        (b.to_string(), Some(" without time zone"))
    } else {
        (base, None)
    };
    let modifier = match modifier.find(')') {
        Some(i) if tz.is_none() => {
            // `timestamp(6) without time zone`: modifier followed by the zone words.
            let rest = modifier[i + 1..].trim().to_string();
            let m = modifier[..=i].to_string();
            return finish(&base, &m, if rest.is_empty() { None } else { Some(rest) });
        }
        _ => modifier,
    };
    finish(&base, &modifier, tz.map(|s| s.trim().to_string()))
}

fn finish(base: &str, modifier: &str, tz: Option<String>) -> String {
    let b = match base {
        "serial" | "serial4" | "int" | "int4" => "integer",
        "bigserial" | "serial8" | "int8" => "bigint",
        "smallserial" | "serial2" | "int2" => "smallint",
        "varchar" => "character varying",
        "char" | "bpchar" => "character",
        "bool" => "boolean",
        "float8" | "float" => "double precision",
        "float4" => "real",
        "decimal" => "numeric",
        "timestamptz" => "timestamp with time zone",
        "timetz" => "time with time zone",
        other => other,
    };
    match b {
        "timestamp" | "time" => {
            let zone = tz.unwrap_or_else(|| "without time zone".into());
            format!("{b}{modifier} {zone}")
        }
        _ => match tz {
            Some(z) if !b.contains("time zone") => format!("{b}{modifier} {z}"),
            _ => format!("{b}{modifier}"),
        },
    }
}

/// The SQL type a Rails `add_column` type becomes (`integer` with `limit: 8` → `bigint`).
pub fn rails_type_to_sql(rails: &str, options: Option<&str>) -> Option<String> {
    let limit = options.and_then(|o| {
        let re = regex::Regex::new(r"(?::limit\s*=>\s*|\blimit:\s*)(\d+)").ok()?;
        re.captures(o).and_then(|c| c[1].parse::<u32>().ok())
    });
    let t = match rails {
        "integer" => match limit {
            Some(1 | 2) => "smallint",
            Some(8) => "bigint",
            _ => "integer",
        },
        "bigint" | "references" | "belongs_to" => "bigint",
        "smallint" => "smallint",
        "string" => "character varying",
        "text" => "text",
        "boolean" => "boolean",
        "datetime" | "timestamp" => "timestamp without time zone",
        "datetime_with_timezone" | "timestamptz" => "timestamp with time zone",
        "date" => "date",
        "time" => "time without time zone",
        "float" => "double precision",
        "decimal" | "numeric" => "numeric",
        "json" => "json",
        "jsonb" => "jsonb",
        "binary" => "bytea",
        "uuid" => "uuid",
        "inet" => "inet",
        "cidr" => "cidr",
        _ => return None,
    };
    Some(t.to_string())
}

/// Whether a found type satisfies an expected one; a modifier-less expectation
/// (`character varying`) matches any modifier (`character varying(255)`).
pub fn types_match(expected: &str, found: &str) -> bool {
    let e = normalize_sql_type(expected);
    let f = normalize_sql_type(found);
    if e == f {
        return true;
    }
    let strip = |s: &str| {
        let mut out = String::new();
        let mut depth = 0;
        for ch in s.chars() {
            match ch {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ if depth == 0 => out.push(ch),
                _ => {}
            }
        }
        out.split_whitespace().collect::<Vec<_>>().join(" ")
    };
    !e.contains('(') && strip(&e) == strip(&f)
}

struct Relation {
    schema: String,
    relkind: String,
    oid: u32,
}

fn relkind_word(k: &str) -> &'static str {
    match k {
        "r" => "table",
        "p" => "partitioned table",
        "i" | "I" => "index",
        "S" => "sequence",
        "v" => "view",
        "m" => "materialized view",
        "f" => "foreign table",
        "c" => "composite type",
        "t" => "TOAST table",
        _ => "relation",
    }
}

struct Db<'a> {
    client: &'a mut postgres::Client,
    database: String,
}

impl Db<'_> {
    fn err(&self, step: &str, e: postgres::Error) -> AssessError {
        AssessError::Sql {
            database: self.database.clone(),
            step: step.to_string(),
            detail: describe_pg_error(&e),
        }
    }

    /// A relation by name, preferring the search path's schemas.
    fn relation(&mut self, name: &str) -> Result<Option<Relation>, AssessError> {
        let row = self
            .client
            .query_opt(
                "SELECT n.nspname::text, c.relkind::text, c.oid
                   FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE c.relname = $1
                  ORDER BY coalesce(array_position(current_schemas(false), n.nspname), 1000), n.nspname
                  LIMIT 1",
                &[&name],
            )
            .map_err(|e| self.err(&format!("looking up relation {name}"), e))?;
        Ok(row.map(|r| Relation {
            schema: r.get(0),
            relkind: r.get(1),
            oid: r.get(2),
        }))
    }

    fn columns(&mut self, oid: u32) -> Result<Vec<(String, String)>, AssessError> {
        let rows = self
            .client
            .query(
                "SELECT attname::text, format_type(atttypid, atttypmod)
                   FROM pg_attribute
                  WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped
                  ORDER BY attnum",
                &[&oid],
            )
            .map_err(|e| self.err("reading columns", e))?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    fn count(
        &mut self,
        rel: &Relation,
        name: &str,
        column: Option<&str>,
    ) -> Result<i64, AssessError> {
        let table = qualified(&rel.schema, name);
        let filter = column
            .map(|c| format!(" WHERE {} IS NOT NULL", crate::pg::ident::quote_ident(c)))
            .unwrap_or_default();
        let sql =
            format!("SELECT count(*) FROM (SELECT 1 FROM {table}{filter} LIMIT {ROW_COUNT_CAP}) s");
        let row = self
            .client
            .query_one(&sql, &[])
            .map_err(|e| self.err(&format!("counting rows of {name}"), e))?;
        Ok(row.get(0))
    }

    fn exists(
        &mut self,
        sql: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
        what: &str,
    ) -> Result<Option<String>, AssessError> {
        let row = self
            .client
            .query_opt(sql, params)
            .map_err(|e| self.err(&format!("looking up {what}"), e))?;
        Ok(row.map(|r| r.get::<_, String>(0)))
    }

    fn column_type(&mut self, table: &str, column: &str) -> Result<Option<String>, AssessError> {
        let Some(rel) = self.relation(table)? else {
            return Ok(None);
        };
        Ok(self
            .columns(rel.oid)?
            .into_iter()
            .find(|(c, _)| c == column)
            .map(|(_, t)| t))
    }

    /// Whether the object a step creates exists.
    fn step_exists(&mut self, op: &SchemaOp) -> Result<Option<bool>, AssessError> {
        match op.op.as_str() {
            "create_table" => match &op.table {
                Some(t) => Ok(Some(self.relation(t)?.is_some())),
                None => Ok(None),
            },
            "add_column" | "add_column_with_default" | "add_reference" | "add_belongs_to" => {
                match (&op.table, &op.column) {
                    (Some(t), Some(c)) => Ok(Some(self.column_type(t, c)?.is_some())),
                    _ => Ok(None),
                }
            }
            "add_index" | "add_concurrent_index" => match &op.index_name {
                Some(i) => Ok(Some(
                    self.relation(i)?
                        .is_some_and(|r| r.relkind == "i" || r.relkind == "I"),
                )),
                None => Ok(None),
            },
            _ => Ok(None),
        }
    }
}

/// The columns the migration creates on `table`, with expected types, from the failed
/// statement and the `-- add_column` lines. `full` is true when the statement was a
/// `CREATE TABLE` listing every column.
fn expected_columns(failure: &Failure, table: &str) -> (Vec<(String, Option<String>)>, bool) {
    let mut cols = Vec::new();
    let mut full = false;
    if let Some(stmt) = failure.error.as_ref().and_then(|e| e.statement.as_deref()) {
        if let Some((t, list)) = create_table_columns(stmt) {
            if t == table {
                full = true;
                cols.extend(list.into_iter().map(|(c, ty)| (c, Some(ty))));
            }
        } else if let Some((t, c, ty)) = alter_add_column(stmt) {
            if t == table {
                cols.push((c, Some(ty)));
            }
        }
    }
    for op in &failure.operations {
        if op.table.as_deref() == Some(table) {
            if let Some(c) = &op.column {
                if !cols.iter().any(|(n, _)| n == c) {
                    let ty = op
                        .column_type
                        .as_deref()
                        .and_then(|t| rails_type_to_sql(t, op.options.as_deref()));
                    cols.push((c.clone(), ty));
                }
            }
        }
    }
    (cols, full)
}

fn non_duplicate_advice(kind: ErrorKind) -> (String, String) {
    use ErrorKind::*;
    match kind {
        UniqueViolation => (
            "a unique violation is about data, not schema: rows the migration inserts or backfills collide with rows already in the database (DETAIL names the key). Marking it complete would skip that data change and leave the database inconsistent.".into(),
            "Look at the rows the DETAIL line names. They usually come from the failed upgrade's partial run: restore the backup with the drop-tables step (`rewind restore`), or remove the conflicting rows after checking them, then run db:migrate again.".into(),
        ),
        UndefinedTable | UndefinedColumn | UndefinedObject | UndefinedFunction => (
            "the migration needs an object that is not there: an earlier step is missing (a migration that never ran, an incomplete restore, or a database older than this GitLab version supports). Marking it complete would skip this migration as well and make things worse.".into(),
            "Run `gitlab-rake db:migrate:status` and look for `down` rows before this version; check that the backup restore finished without errors; upgrade along GitLab's supported upgrade path (stop at each required version), then run db:migrate again.".into(),
        ),
        InsufficientPrivilege => (
            "the database user may not do what the migration needs; the migration's work is not done. Marking it complete would skip it.".into(),
            "Give the GitLab database user ownership of the objects (after a restore made as another role: `ALTER TABLE ... OWNER TO gitlab` as the superuser, e.g. via `gitlab-psql`), then run db:migrate again.".into(),
        ),
        QueryCanceled => (
            "the statement was cancelled (statement timeout or an operator); the migration's work is not done.".into(),
            "Run db:migrate again when the database is quiet, or with a longer statement_timeout.".into(),
        ),
        DependentObjectsStillExist => (
            "the migration could not drop an object other objects depend on; its work is not done.".into(),
            "Find the dependent objects named in the error (DETAIL/HINT), decide whether they are leftovers to drop, then run db:migrate again.".into(),
        ),
        _ => (
            "this is not a duplicate-object error, so the migration's work is not in the database; marking it complete would skip work that never happened.".into(),
            "Fix the cause shown in the error, then run db:migrate again.".into(),
        ),
    }
}

impl Assessment {
    fn base(failure: &Failure, database: &str) -> Assessment {
        Assessment {
            version: failure.version().map(str::to_string),
            migration_name: failure.migration.as_ref().map(|m| m.name.clone()),
            database: database.to_string(),
            error_class: failure.error.as_ref().map(|e| e.class.clone()),
            kind: failure.kind(),
            message: failure
                .error
                .as_ref()
                .map(|e| e.message.clone())
                .or_else(|| failure.error_text.clone()),
            object: failure.error.as_ref().and_then(|e| e.object.clone()),
            object_exists: None,
            object_detail: None,
            rows: None,
            rows_capped: false,
            shape: Vec::new(),
            extra_columns: Vec::new(),
            steps: Vec::new(),
            already_marked: None,
            verdict: Verdict::DoNotMark,
            reason: String::new(),
            advice: String::new(),
            notes: Vec::new(),
        }
    }

    /// The SQL marking would run, with the version shown in place of `$1`.
    pub fn mark_sql(&self) -> Option<String> {
        self.version.as_ref().map(|v| {
            format!(
                "{}    -- $1 = '{v}' (bound parameter), on database {}",
                mark::MARK_SQL,
                self.database
            )
        })
    }
}

/// Assessment without a database connection: the error class alone decides that marking
/// is wrong; a duplicate-object error cannot be confirmed without looking.
pub fn assess_offline(failure: &Failure, database: &str) -> Assessment {
    let mut a = Assessment::base(failure, database);
    if !failure.kind().is_duplicate_object() || failure.version().is_none() {
        return judge_without_object(a, failure);
    }
    a.verdict = Verdict::DoNotMark;
    a.reason = "Rewind could not look in the database, so it cannot confirm that the object exists with the migration's shape.".into();
    a.advice =
        "Give Rewind the database (GitLab's database.yml, or --database-url) and assess again."
            .into();
    a
}

fn judge_without_object(mut a: Assessment, failure: &Failure) -> Assessment {
    a.verdict = Verdict::DoNotMark;
    if failure.version().is_none() {
        a.reason = "the log does not name the migration that failed (no `== <version> <Name>: migrating` line and no db/migrate file in the backtrace), so there is nothing Rewind could mark.".into();
        a.advice = "Run the migration again and keep the whole output (`gitlab-rake db:migrate 2>&1 | tee migrate.log`), then `rewind repair --log migrate.log`.".into();
        return a;
    }
    let (reason, advice) = non_duplicate_advice(failure.kind());
    a.reason = reason;
    a.advice = advice;
    a
}

/// Assess `failure` (which ran on connection `database`) against the live database.
pub fn assess(
    failure: &Failure,
    database: &str,
    client: &mut postgres::Client,
) -> Result<Assessment, AssessError> {
    let mut a = Assessment::base(failure, database);
    let mut db = Db {
        client,
        database: database.to_string(),
    };
    if let Some(v) = failure.version() {
        a.already_marked = mark::is_marked(db.client, v).map_err(|detail| AssessError::Sql {
            database: database.to_string(),
            step: "reading schema_migrations".into(),
            detail,
        })?;
        if a.already_marked.is_none() {
            a.notes.push("there is no schema_migrations table in this database: it is not an initialised GitLab database, or the connection points at the wrong one".into());
        }
    }
    if !failure.kind().is_duplicate_object() || failure.version().is_none() {
        return Ok(judge_without_object(a, failure));
    }
    let Some(object) = a.object.clone() else {
        a.verdict = Verdict::DoNotMark;
        a.reason = "the error does not name an object Rewind can look up, so it cannot confirm that the migration's work is there.".into();
        a.advice = "Compare the database with the migration file by hand before marking it complete (`gitlab-rake gitlab:db:mark_migration_complete[<version>]`).".into();
        return Ok(a);
    };

    // Does the named object exist, and what is it?
    let mut shape_table: Option<String> = None;
    match object.kind {
        ObjectKind::Relation | ObjectKind::Index | ObjectKind::Sequence => {
            match db.relation(&object.name)? {
                Some(rel) => {
                    a.object_exists = Some(true);
                    let word = relkind_word(&rel.relkind);
                    a.object_detail = Some(format!("{word} {}.{}", rel.schema, object.name));
                    if matches!(rel.relkind.as_str(), "r" | "p" | "m") {
                        let n = db.count(&rel, &object.name, None)?;
                        a.rows = Some(n);
                        a.rows_capped = n >= ROW_COUNT_CAP;
                        shape_table = Some(object.name.clone());
                    } else if matches!(rel.relkind.as_str(), "i" | "I") {
                        if let Some(def) = db.exists(
                            "SELECT pg_get_indexdef($1)",
                            &[&rel.oid],
                            "index definition",
                        )? {
                            a.object_detail = Some(def);
                        }
                    }
                }
                None => a.object_exists = Some(false),
            }
        }
        ObjectKind::Column => {
            let table = object
                .table
                .clone()
                .or_else(|| failure.operations.last().and_then(|o| o.table.clone()));
            match table {
                Some(t) => match db.relation(&t)? {
                    Some(rel) => {
                        let found = db
                            .columns(rel.oid)?
                            .into_iter()
                            .find(|(c, _)| *c == object.name);
                        a.object_exists = Some(found.is_some());
                        if let Some((_, ty)) = found {
                            a.object_detail =
                                Some(format!("column {}.{}.{} {ty}", rel.schema, t, object.name));
                            let n = db.count(&rel, &t, Some(&object.name))?;
                            a.rows = Some(n);
                            a.rows_capped = n >= ROW_COUNT_CAP;
                            shape_table = Some(t.clone());
                        }
                    }
                    None => a.object_exists = Some(false),
                },
                None => a
                    .notes
                    .push("the error names the column but not its table".into()),
            }
        }
        ObjectKind::Constraint => {
            let d = db.exists(
                "SELECT conrelid::regclass::text || ': ' || pg_get_constraintdef(oid) FROM pg_constraint
                  WHERE conname = $1 AND ($2::text IS NULL OR conrelid = to_regclass(quote_ident($2::text)))
                  LIMIT 1",
                &[&object.name, &object.table],
                "constraint",
            )?;
            a.object_exists = Some(d.is_some());
            a.object_detail = d.map(|d| format!("constraint {} on {d}", object.name));
        }
        ObjectKind::Type => {
            let d = db.exists(
                "SELECT format_type(oid, NULL) FROM pg_type WHERE typname = $1 LIMIT 1",
                &[&object.name],
                "type",
            )?;
            a.object_exists = Some(d.is_some());
            a.object_detail = d.map(|d| format!("type {d}"));
        }
        ObjectKind::Schema => {
            let d = db.exists(
                "SELECT nspname::text FROM pg_namespace WHERE nspname = $1",
                &[&object.name],
                "schema",
            )?;
            a.object_exists = Some(d.is_some());
            a.object_detail = d.map(|d| format!("schema {d}"));
        }
        ObjectKind::Function => {
            let name = object
                .name
                .split('(')
                .next()
                .unwrap_or(&object.name)
                .to_string();
            let d = db.exists(
                "SELECT p.oid::regprocedure::text FROM pg_proc p WHERE p.proname = $1 LIMIT 1",
                &[&name],
                "function",
            )?;
            a.object_exists = Some(d.is_some());
            a.object_detail = d.map(|d| format!("function {d}"));
        }
        ObjectKind::Trigger => {
            let d = db.exists(
                "SELECT tgrelid::regclass::text FROM pg_trigger WHERE tgname = $1 AND NOT tgisinternal LIMIT 1",
                &[&object.name],
                "trigger",
            )?;
            a.object_exists = Some(d.is_some());
            a.object_detail = d.map(|d| format!("trigger {} on {d}", object.name));
        }
        ObjectKind::Extension => {
            let d = db.exists(
                "SELECT extname::text || ' ' || extversion FROM pg_extension WHERE extname = $1",
                &[&object.name],
                "extension",
            )?;
            a.object_exists = Some(d.is_some());
            a.object_detail = d.map(|d| format!("extension {d}"));
        }
        ObjectKind::Other => {}
    }

    // Shape: the columns the migration creates.
    if let Some(table) = &shape_table {
        let (mut expected, full) = expected_columns(failure, table);
        if object.kind == ObjectKind::Column {
            // Other columns are other steps (checked below), not this object's shape.
            expected.retain(|(c, _)| *c == object.name);
        }
        if let Some(rel) = db.relation(table)? {
            let actual = db.columns(rel.oid)?;
            for (col, ty) in &expected {
                let found = actual
                    .iter()
                    .find(|(c, _)| c == col)
                    .map(|(_, t)| t.clone());
                let status = match (&found, ty) {
                    (None, _) => ColumnStatus::Missing,
                    (Some(f), Some(e)) if !types_match(e, f) => ColumnStatus::TypeDiffers,
                    _ => ColumnStatus::Matches,
                };
                a.shape.push(ColumnCheck {
                    table: table.clone(),
                    column: col.clone(),
                    expected: ty.clone(),
                    found,
                    status,
                });
            }
            if full {
                a.extra_columns = actual
                    .iter()
                    .filter(|(c, _)| !expected.iter().any(|(e, _)| e == c))
                    .map(|(c, _)| c.clone())
                    .collect();
            }
        }
        if expected.is_empty() && object.kind != ObjectKind::Column {
            a.notes.push(format!(
                "the log does not show the columns the migration gives {table}; compare by hand (`\\d {table}` in gitlab-psql) with the migration file if in doubt"
            ));
        }
    }

    // The migration's other printed steps: rolled back with the failed transaction, so they
    // must exist already for marking to be safe.
    for op in &failure.operations {
        let exists = db.step_exists(op)?;
        a.steps.push(StepCheck {
            step: op.text.clone(),
            exists,
        });
    }

    // Verdict.
    let object_word = object.to_string();
    if a.object_exists != Some(true) {
        a.verdict = Verdict::DoNotMark;
        if a.object_exists == Some(false) {
            a.reason = format!("the log says {object_word} already exists, but it does not exist in database {database} now: the log is older than the database's state.");
            a.advice = "Run db:migrate again and repair from its new output instead of marking from this log.".into();
        } else {
            a.reason = format!("Rewind could not check whether {object_word} exists.");
            a.advice = "Check by hand before marking the migration complete.".into();
        }
        return Ok(a);
    }
    let missing: Vec<String> = a
        .shape
        .iter()
        .filter(|c| c.status == ColumnStatus::Missing)
        .map(|c| c.column.clone())
        .collect();
    let differs: Vec<String> = a
        .shape
        .iter()
        .filter(|c| c.status == ColumnStatus::TypeDiffers)
        .map(|c| {
            format!(
                "{} is {} (migration: {})",
                c.column,
                c.found.as_deref().unwrap_or("?"),
                c.expected.as_deref().unwrap_or("?")
            )
        })
        .collect();
    if !missing.is_empty() || !differs.is_empty() {
        a.verdict = Verdict::DoNotMark;
        let mut parts = Vec::new();
        if !missing.is_empty() {
            parts.push(format!("missing columns {}", missing.join(", ")));
        }
        if !differs.is_empty() {
            parts.push(differs.join("; "));
        }
        a.reason = format!(
            "{object_word} exists but not with the shape this migration creates ({}): it is a leftover of another version, and marking would leave it wrong.",
            parts.join("; ")
        );
        a.advice = "Check its rows, then drop it (or restore the backup with the drop-tables step) and run db:migrate again so the migration creates it properly.".into();
        return Ok(a);
    }
    let missing_steps: Vec<String> = a
        .steps
        .iter()
        .filter(|s| s.exists == Some(false))
        .map(|s| s.step.clone())
        .collect();
    if !missing_steps.is_empty() {
        a.verdict = Verdict::DoNotMark;
        a.reason = format!(
            "{object_word} exists, but other steps of this migration did not leave their objects ({}): the failed run's transaction rolled them back, and marking the migration complete would leave them missing.",
            missing_steps.join("; ")
        );
        a.advice = format!("Drop {object_word} (after checking its contents) so the migration can run whole, or restore the backup with the drop-tables step; then run db:migrate again.");
        return Ok(a);
    }
    a.verdict = Verdict::MarkComplete;
    let shape_word = if a.shape.is_empty() {
        "the log does not show its columns".to_string()
    } else {
        "with the columns the migration creates".to_string()
    };
    a.reason = format!(
        "{object_word} already exists in database {database} ({shape_word}): the migration's work is there, left by the failed upgrade's run."
    );
    a.advice = format!(
        "Mark {} complete (GitLab: `gitlab-rake gitlab:db:mark_migration_complete[{}]`) and run db:migrate again.",
        a.version.as_deref().unwrap_or("?"),
        a.version.as_deref().unwrap_or("?")
    );
    if let Some(n) = a.rows {
        if n > 0 {
            a.notes.push(format!(
                "it holds {}{} row(s): data written by the failed upgrade's version; it is kept",
                n,
                if a.rows_capped { "+" } else { "" }
            ));
        } else {
            a.notes.push("it is empty".into());
        }
    }
    if a.already_marked == Some(true) {
        a.notes.push(format!(
            "version {} is already in schema_migrations: this log is older than the database's state; run db:migrate again",
            a.version.as_deref().unwrap_or("?")
        ));
    }
    a.notes.push("the log shows the migration's steps only up to the failure; if the migration does more after it (indexes, columns), check them against db/migrate/<version>_*.rb".into());
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::log::parse_str;
    use crate::pg::cluster::TempCluster;

    #[test]
    fn sql_types_normalise() {
        assert!(types_match("serial", "integer"));
        assert!(types_match("character varying", "character varying(255)"));
        assert!(types_match("timestamp", "timestamp without time zone"));
        assert!(types_match(
            "timestamp without time zone",
            "timestamp(6) without time zone"
        ));
        assert!(!types_match("integer", "bigint"));
        assert!(!types_match("character varying(255)", "text"));
        assert_eq!(
            rails_type_to_sql("integer", Some("{:limit=>2, :null=>false}")).as_deref(),
            Some("smallint")
        );
        assert_eq!(
            rails_type_to_sql("string", None).as_deref(),
            Some("character varying")
        );
    }

    fn setup() -> (TempCluster, postgres::Client) {
        let c = TempCluster::start().unwrap();
        c.create_database("gl").unwrap();
        let mut db = c.connect("gl").unwrap();
        db.batch_execute(
            "CREATE TABLE schema_migrations (version character varying NOT NULL PRIMARY KEY);
             INSERT INTO schema_migrations VALUES ('20151021000000');
             CREATE TABLE lfs_objects (id serial PRIMARY KEY, oid character varying(255) NOT NULL, size integer NOT NULL, created_at timestamp, updated_at timestamp);
             CREATE TABLE pages_domains (id serial PRIMARY KEY, domain text, scope smallint DEFAULT 2 NOT NULL);
             INSERT INTO pages_domains (domain) VALUES ('a.example'), ('b.example');",
        )
        .unwrap();
        (c, db)
    }

    #[test]
    fn duplicate_table_that_exists_is_marked() {
        let (_c, mut db) = setup();
        let r = parse_str("== 20151103134857 CreateLfsObjects: migrating ===\n-- create_table(:lfs_objects)\nrake aborted!\nStandardError: An error has occurred, this and all later migrations canceled:\n\nPG::DuplicateTable: ERROR:  relation \"lfs_objects\" already exists\n: CREATE TABLE \"lfs_objects\" (\"id\" serial primary key, \"oid\" character varying(255) NOT NULL, \"size\" integer NOT NULL, \"created_at\" timestamp, \"updated_at\" timestamp)\n");
        let a = assess(r.first_failure().unwrap(), "main", &mut db).unwrap();
        assert_eq!(a.verdict, Verdict::MarkComplete, "{a:#?}");
        assert_eq!(a.object_exists, Some(true));
        assert_eq!(a.rows, Some(0));
        assert_eq!(a.already_marked, Some(false));
        assert_eq!(a.shape.len(), 5);
        assert!(a.shape.iter().all(|c| c.status == ColumnStatus::Matches));
    }

    #[test]
    fn wrong_shape_missing_object_and_data_errors_are_not_marked() {
        let (_c, mut db) = setup();
        db.batch_execute("DROP TABLE lfs_objects; CREATE TABLE lfs_objects (id bigint, oid text)")
            .unwrap();
        let log = "== 20151103134857 CreateLfsObjects: migrating ===\n-- create_table(:lfs_objects)\nPG::DuplicateTable: ERROR:  relation \"lfs_objects\" already exists\n: CREATE TABLE \"lfs_objects\" (\"id\" serial primary key, \"oid\" character varying(255) NOT NULL, \"size\" integer NOT NULL)\n";
        let a = assess(parse_str(log).first_failure().unwrap(), "main", &mut db).unwrap();
        assert_eq!(a.verdict, Verdict::DoNotMark);
        assert!(a.reason.contains("missing columns size"), "{}", a.reason);

        let log = "== 20200101000000 AddThing: migrating ===\n-- create_table(:things)\nStandardError: An error has occurred, all later migrations canceled:\n\nPG::DuplicateTable: ERROR:  relation \"things\" already exists\n";
        let a = assess(parse_str(log).first_failure().unwrap(), "main", &mut db).unwrap();
        assert_eq!(
            (a.verdict, a.object_exists),
            (Verdict::DoNotMark, Some(false))
        );

        let log = "== 20230801000000 BackfillX: migrating ===\nrake aborted!\nStandardError: An error has occurred, all later migrations canceled:\n\nPG::UniqueViolation: ERROR:  duplicate key value violates unique constraint \"x_pkey\"\nDETAIL:  Key (id)=(9) already exists.\n";
        let a = assess(parse_str(log).first_failure().unwrap(), "main", &mut db).unwrap();
        assert_eq!(a.verdict, Verdict::DoNotMark);
        assert!(a.reason.contains("data, not schema"));

        let log = "== 20230801000001 UseY: migrating ===\nPG::UndefinedTable: ERROR:  relation \"y\" does not exist\n";
        let a = assess(parse_str(log).first_failure().unwrap(), "main", &mut db).unwrap();
        assert_eq!(a.verdict, Verdict::DoNotMark);
        assert!(a.reason.contains("earlier step is missing"));
    }

    #[test]
    fn duplicate_column_checks_type_and_rows_and_rolled_back_steps() {
        let (_c, mut db) = setup();
        let log = "== 20200820000000 AddScopeToPagesDomains: migrating ===\n-- add_column(:pages_domains, :scope, :integer, {:limit=>2, :default=>2, :null=>false})\nrake aborted!\nStandardError: An error has occurred, this and all later migrations canceled:\n\nPG::DuplicateColumn: ERROR:  column \"scope\" of relation \"pages_domains\" already exists\n";
        let a = assess(parse_str(log).first_failure().unwrap(), "main", &mut db).unwrap();
        assert_eq!(a.verdict, Verdict::MarkComplete, "{a:#?}");
        assert_eq!(a.rows, Some(2));
        assert_eq!(a.shape[0].found.as_deref(), Some("smallint"));

        // An earlier step of the same migration was rolled back: do not mark.
        let log = "== 20200820000001 AddUsage: migrating ===\n-- add_column(:pages_domains, :usage, :integer)\n   -> 0.0010s\n-- add_column(:pages_domains, :scope, :integer, {:limit=>2})\nPG::DuplicateColumn: ERROR:  column \"scope\" of relation \"pages_domains\" already exists\n";
        let a = assess(parse_str(log).first_failure().unwrap(), "main", &mut db).unwrap();
        assert_eq!(a.verdict, Verdict::DoNotMark, "{a:#?}");
        assert!(a.reason.contains("rolled them back"));
    }
}
