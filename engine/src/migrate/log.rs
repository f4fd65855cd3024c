//! Parser for failed `db:migrate` output: a log file, stdin, Omnibus's
//! `gitlab-rails-db-migrate-*.log`, `gitlab-ctl reconfigure` output, or docker logs.
//!
//! Rails prints `== <version> <Name>: migrating ====`, one `-- op(args)` line per schema
//! statement, and `== <version> <Name>: migrated (0.01s) ==` when done. A failure is
//! `rake aborted!` / `StandardError: An error has occurred, this and all later migrations
//! canceled:` (newer Rails: `..., all later migrations canceled:`) followed by the error,
//! e.g. `PG::DuplicateTable: ERROR:  relation "lfs_objects" already exists`. The failed
//! migration is the last `migrating` line without its `migrated` line before the abort.
//!
//! The parser works line by line ([`Parser::feed`]) so a migrate command's output can be
//! parsed while it streams. Lines are matched anywhere, not anchored, so timestamp prefixes,
//! `gitlab_1 | ` docker prefixes, Chef's `STDOUT:` and multi-database `main: ` / `ci: `
//! prefixes are all tolerated; ANSI colour codes and `\r` are removed first.

use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;

use crate::detect::omnibus;
use crate::root::HostRoot;

/// Errors reading a log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("cannot read the migrate log {path}: {source}. Pass the log with --log FILE (or - for stdin)")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no gitlab-rails-db-migrate-*.log in {dir} (looked at host path {host_dir}). Omnibus writes one per `gitlab-ctl reconfigure`; pass the failed output with --log FILE")]
    NoOmnibusLog { dir: PathBuf, host_dir: PathBuf },
}

/// A migration named in a log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Migration {
    /// The version (timestamp) as printed, e.g. `20151103134857`.
    pub version: String,
    /// The class name, e.g. `CreateLfsObjects`.
    pub name: String,
}

/// What kind of PostgreSQL error stopped the migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ErrorKind {
    DuplicateTable,
    DuplicateColumn,
    DuplicateObject,
    DuplicateSchema,
    DuplicateFunction,
    UniqueViolation,
    UndefinedTable,
    UndefinedColumn,
    UndefinedObject,
    UndefinedFunction,
    InsufficientPrivilege,
    DependentObjectsStillExist,
    QueryCanceled,
    /// Any other class.
    Other,
}

impl ErrorKind {
    /// Classify from the Ruby class (`DuplicateTable` of `PG::DuplicateTable`) and, for the
    /// old catch-all `PG::Error`, from the message.
    pub fn classify(class: &str, message: &str) -> ErrorKind {
        use ErrorKind::*;
        match class {
            "DuplicateTable" => DuplicateTable,
            "DuplicateColumn" => DuplicateColumn,
            "DuplicateObject" => DuplicateObject,
            "DuplicateSchema" => DuplicateSchema,
            "DuplicateFunction" => DuplicateFunction,
            "UniqueViolation" => UniqueViolation,
            "UndefinedTable" => UndefinedTable,
            "UndefinedColumn" => UndefinedColumn,
            "UndefinedObject" => UndefinedObject,
            "UndefinedFunction" => UndefinedFunction,
            "InsufficientPrivilege" => InsufficientPrivilege,
            "DependentObjectsStillExist" => DependentObjectsStillExist,
            "QueryCanceled" => QueryCanceled,
            _ => Self::from_message(message),
        }
    }

    /// Classify PostgreSQL's English message text (used for `PG::Error` of old GitLab).
    pub fn from_message(message: &str) -> ErrorKind {
        use ErrorKind::*;
        let m = message;
        if m.contains("duplicate key value violates unique constraint") {
            UniqueViolation
        } else if m.starts_with("column ") && m.contains("already exists") {
            DuplicateColumn
        } else if m.starts_with("relation ") && m.contains("already exists") {
            DuplicateTable
        } else if m.starts_with("schema ") && m.contains("already exists") {
            DuplicateSchema
        } else if m.starts_with("function ") && m.contains("already exists") {
            DuplicateFunction
        } else if m.contains("already exists") {
            DuplicateObject
        } else if m.starts_with("relation ") && m.contains("does not exist") {
            UndefinedTable
        } else if m.starts_with("column ") && m.contains("does not exist") {
            UndefinedColumn
        } else if m.starts_with("function ") && m.contains("does not exist") {
            UndefinedFunction
        } else if m.contains("does not exist") {
            UndefinedObject
        } else if m.starts_with("permission denied") || m.starts_with("must be owner") {
            InsufficientPrivilege
        } else if m.starts_with("cannot drop") && m.contains("depend") {
            DependentObjectsStillExist
        } else if m.starts_with("canceling statement") {
            QueryCanceled
        } else {
            Other
        }
    }

    /// Whether the error says an object the migration creates is already there: the only
    /// errors marking the migration complete can be right for.
    pub fn is_duplicate_object(self) -> bool {
        matches!(
            self,
            ErrorKind::DuplicateTable
                | ErrorKind::DuplicateColumn
                | ErrorKind::DuplicateObject
                | ErrorKind::DuplicateSchema
                | ErrorKind::DuplicateFunction
        )
    }
}

/// Kind of database object an error names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectKind {
    /// A table, index, sequence or view (PostgreSQL says "relation" for all of them).
    Relation,
    Column,
    Index,
    Constraint,
    Type,
    Schema,
    Function,
    Trigger,
    Extension,
    Sequence,
    Other,
}

/// The object an error message names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DbObject {
    pub kind: ObjectKind,
    pub name: String,
    /// The table, for columns, constraints and triggers (`column "x" of relation "y"`).
    pub table: Option<String>,
}

impl std::fmt::Display for DbObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = format!("{:?}", self.kind).to_lowercase();
        match &self.table {
            Some(t) => write!(f, "{kind} {}.{}", t, self.name),
            None => write!(f, "{kind} {}", self.name),
        }
    }
}

/// The PostgreSQL error of a failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PgError {
    /// Ruby class without `PG::`, e.g. `DuplicateTable` (`Error` in old GitLab).
    pub class: String,
    pub kind: ErrorKind,
    /// PostgreSQL's message, e.g. `relation "lfs_objects" already exists`.
    pub message: String,
    /// The `DETAIL:` line, when printed.
    pub detail: Option<String>,
    /// The failed SQL statement, when the log printed it (`: CREATE TABLE ...`).
    pub statement: Option<String>,
    /// The object named in the message.
    pub object: Option<DbObject>,
}

/// One `-- op(args)` line of a migration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SchemaOp {
    /// `create_table`, `add_column`, `add_index`, `add_concurrent_index`, `execute`, ...
    pub op: String,
    /// First argument when it names a table.
    pub table: Option<String>,
    /// `add_column`/`add_reference`: the column.
    pub column: Option<String>,
    /// `add_column`: the Rails type (`integer`, `string`, ...).
    pub column_type: Option<String>,
    /// `add_column`: the options as printed (`{:limit=>2, :null=>false}`).
    pub options: Option<String>,
    /// `add_index`: the indexed columns.
    pub columns: Vec<String>,
    /// `add_index`: the `name:` option.
    pub index_name: Option<String>,
    /// The line as printed, without prefixes.
    pub text: String,
}

/// A failed migration run found in a log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// The migration that failed, when the log names it.
    pub migration: Option<Migration>,
    /// `main`, `ci`, ... when the log says which database.
    pub database: Option<String>,
    /// The PostgreSQL error, when there is one.
    pub error: Option<PgError>,
    /// The error line when the failure is not a PostgreSQL error (e.g. `NoMethodError: ...`).
    pub error_text: Option<String>,
    /// The failed migration's `-- op(...)` lines, in order (the last one is the one that failed).
    pub operations: Vec<SchemaOp>,
    /// 1-based line number of the abort (or error) line.
    pub line: usize,
}

impl Failure {
    /// The version of the failed migration, if known.
    pub fn version(&self) -> Option<&str> {
        self.migration.as_ref().map(|m| m.version.as_str())
    }

    /// The error kind, [`ErrorKind::Other`] when not a PostgreSQL error.
    pub fn kind(&self) -> ErrorKind {
        self.error
            .as_ref()
            .map(|e| e.kind)
            .unwrap_or(ErrorKind::Other)
    }

    /// One line: `20151103134857 CreateLfsObjects (main): PG::DuplicateTable: relation ...`.
    pub fn summary(&self) -> String {
        let mig = match &self.migration {
            Some(m) => format!("{} {}", m.version, m.name),
            None => "unknown migration".into(),
        };
        let db = self
            .database
            .as_deref()
            .map(|d| format!(" on database {d}"))
            .unwrap_or_default();
        let err = match (&self.error, &self.error_text) {
            (Some(e), _) => format!("PG::{}: {}", e.class, e.message),
            (None, Some(t)) => t.clone(),
            (None, None) => "error not shown in the log".into(),
        };
        format!("{mig}{db}: {err}")
    }
}

/// What a log says.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LogReport {
    /// Lines read.
    pub lines: usize,
    /// Migrations that completed (`migrated` lines), in order.
    pub migrated: Vec<Migration>,
    /// Failures, in order; the first is the one to repair.
    pub failures: Vec<Failure>,
    /// A migration that started and never finished, with no abort line (a killed run).
    pub unfinished: Option<Migration>,
}

impl LogReport {
    /// The first failure in the log: the one to repair.
    pub fn first_failure(&self) -> Option<&Failure> {
        self.failures.first()
    }

    /// Whether the log shows no failure.
    pub fn succeeded(&self) -> bool {
        self.failures.is_empty()
    }

    /// One line for people.
    pub fn summary(&self) -> String {
        match self.first_failure() {
            Some(f) => {
                let more = if self.failures.len() > 1 {
                    format!(
                        " ({} failures in the log; the first is shown)",
                        self.failures.len()
                    )
                } else {
                    String::new()
                };
                format!("migration failed: {}{more}", f.summary())
            }
            None => match &self.unfinished {
                Some(m) => format!(
                    "no failure in the log, but migration {} {} started and never finished (was the run killed?)",
                    m.version, m.name
                ),
                None => format!(
                    "no failed migration in the log ({} migration(s) completed)",
                    self.migrated.len()
                ),
            },
        }
    }
}

static ANSI: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
        .expect("regex")
});
const DB_NAMES: &str = "main|ci|sec|geo|embedding|jh";
static MIGRATING: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"(?:\b({DB_NAMES}): )?== (\d+) (\w+): migrating\b"
    ))
    .expect("regex")
});
static MIGRATED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(r"(?:\b({DB_NAMES}): )?== (\d+) (\w+): migrated\b")).expect("regex")
});
static OP: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"(?:^|\s)(?:(?:{DB_NAMES}): )?-- ([a-z_]\w*[?!]?)\((.*)\)\s*$"
    ))
    .expect("regex")
});
static RAKE_ABORT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b(?:rake|rails) aborted!").expect("regex"));
static STD_ABORT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?:StandardError: )?An error has occurred, (?:this and )?all later migrations canceled",
    )
    .expect("regex")
});
static PG_ERR: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\bPG::([A-Z]\w*): (?:ERROR|FATAL):\s+(.*?)\s*$").expect("regex"));
static INLINE_STATEMENT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(.*?)\s+:\s+((?i:CREATE|ALTER|DROP|INSERT|UPDATE|DELETE|SELECT|WITH|COMMENT|TRUNCATE|GRANT|REVOKE)\b.*)$")
        .expect("regex")
});
static STATEMENT_LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:^|[\s|]): ((?i:CREATE|ALTER|DROP|INSERT|UPDATE|DELETE|SELECT|WITH|COMMENT|TRUNCATE|GRANT|REVOKE)\b.*)$")
        .expect("regex")
});
static TRAILING_BACKTRACE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\s*/[^\s:]+\.rb:\d+:in\s.*$").expect("regex"));
static LINE_PREFIX: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:\S+\s+\|\s?|\d{4}-\d\d-\d\d[T ][\d:.,+\-Z]*\s*|STD(?:OUT|ERR):\s*)+")
        .expect("regex")
});
static TRAILING_CLASS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\s*\((?:PG|ActiveRecord)::\w+\)\s*$").expect("regex"));
static DETAIL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\bDETAIL:\s+(.*?)\s*$").expect("regex"));
static BACKTRACE_MIGRATION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\bdb/(?:post_)?migrate/(\d{14})_(\w+)\.rb:\d+").expect("regex"));
static TASK_DB: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!(r"\bdb:migrate:({DB_NAMES})\b")).expect("regex"));
static OBJECT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"\b(relation|column|index|constraint|type|schema|function|trigger|extension|sequence|table|view) "([^"]+)"(?: (?:of|for|on) (?:relation|table) "([^"]+)")?"#)
        .expect("regex")
});
static UNIQUE_CONSTRAINT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"violates unique constraint "([^"]+)""#).expect("regex"));
static PERMISSION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:permission denied for|must be owner of) (relation|table|schema|sequence|function|type|database|view) (\S+)")
        .expect("regex")
});
static INDEX_NAME_OPT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"(?::name\s*=>\s*|\bname:\s*)["':]?([\w.]+)"#).expect("regex"));

/// Remove ANSI escape sequences and carriage returns (CRLF, progress redraws).
pub fn clean_line(raw: &str) -> String {
    let no_ansi = ANSI.replace_all(raw, "");
    let s = no_ansi.trim_end_matches(['\r', '\n']);
    // A `\r` inside a line is a terminal redraw: what shows is the part after it.
    let s = s.rsplit('\r').next().unwrap_or(s);
    s.to_string()
}

/// The object an error message names: `relation "x"`, `column "c" of relation "t"`, the
/// constraint of a unique violation, the object of a permission error.
pub fn object_in_message(message: &str) -> Option<DbObject> {
    if let Some(c) = UNIQUE_CONSTRAINT.captures(message) {
        return Some(DbObject {
            kind: ObjectKind::Constraint,
            name: c[1].to_string(),
            table: None,
        });
    }
    if let Some(c) = OBJECT.captures(message) {
        let kind = match &c[1] {
            "relation" | "table" | "view" => ObjectKind::Relation,
            "column" => ObjectKind::Column,
            "index" => ObjectKind::Index,
            "constraint" => ObjectKind::Constraint,
            "type" => ObjectKind::Type,
            "schema" => ObjectKind::Schema,
            "function" => ObjectKind::Function,
            "trigger" => ObjectKind::Trigger,
            "extension" => ObjectKind::Extension,
            "sequence" => ObjectKind::Sequence,
            _ => ObjectKind::Other,
        };
        return Some(DbObject {
            kind,
            name: c[2].to_string(),
            table: c.get(3).map(|m| m.as_str().to_string()),
        });
    }
    if let Some(c) = PERMISSION.captures(message) {
        let kind = match &c[1] {
            "schema" => ObjectKind::Schema,
            "sequence" => ObjectKind::Sequence,
            "function" => ObjectKind::Function,
            "type" => ObjectKind::Type,
            "database" => ObjectKind::Other,
            _ => ObjectKind::Relation,
        };
        let name = c[2].trim_matches(|ch| ch == '"' || ch == ',').to_string();
        return Some(DbObject {
            kind,
            name,
            table: None,
        });
    }
    None
}

/// Split a Ruby argument list (`:t, :c, :integer, {:limit=>2}`) at top-level commas.
fn split_args(args: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    let mut cur = String::new();
    let mut prev = '\0';
    for ch in args.chars() {
        match quote {
            Some(q) => {
                cur.push(ch);
                if ch == q && prev != '\\' {
                    quote = None;
                }
            }
            None => match ch {
                '"' | '\'' => {
                    quote = Some(ch);
                    cur.push(ch);
                }
                '(' | '[' | '{' => {
                    depth += 1;
                    cur.push(ch);
                }
                ')' | ']' | '}' => {
                    depth -= 1;
                    cur.push(ch);
                }
                ',' if depth == 0 => {
                    out.push(cur.trim().to_string());
                    cur.clear();
                }
                _ => cur.push(ch),
            },
        }
        prev = ch;
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

/// A Ruby symbol or string literal's value (`:t` → `t`, `"t"` → `t`); `None` for others.
fn ruby_name(token: &str) -> Option<String> {
    let t = token.trim();
    let v = if let Some(s) = t.strip_prefix(':') {
        s.trim_matches('"')
    } else if t.len() >= 2
        && ((t.starts_with('"') && t.ends_with('"')) || (t.starts_with('\'') && t.ends_with('\'')))
    {
        &t[1..t.len() - 1]
    } else {
        return None;
    };
    if v.is_empty() || v.contains(char::is_whitespace) {
        None
    } else {
        Some(v.to_string())
    }
}

/// Parse one `-- op(args)` line's op name and argument text.
pub fn parse_op(op: &str, args: &str, text: &str) -> SchemaOp {
    let parts = split_args(args);
    let mut s = SchemaOp {
        op: op.to_string(),
        table: None,
        column: None,
        column_type: None,
        options: None,
        columns: Vec::new(),
        index_name: None,
        text: text.to_string(),
    };
    let first = parts.first().and_then(|p| ruby_name(p));
    match op {
        "create_table" | "drop_table" | "rename_table" | "change_table" => s.table = first,
        "add_column" | "add_column_with_default" | "change_column" | "remove_column" => {
            s.table = first;
            s.column = parts.get(1).and_then(|p| ruby_name(p));
            s.column_type = parts.get(2).and_then(|p| ruby_name(p));
            s.options = parts.get(3).cloned();
        }
        "add_reference" | "add_belongs_to" => {
            s.table = first;
            s.column = parts
                .get(1)
                .and_then(|p| ruby_name(p))
                .map(|r| format!("{r}_id"));
        }
        "add_index" | "add_concurrent_index" | "remove_index" | "remove_concurrent_index" => {
            s.table = first;
            if let Some(cols) = parts.get(1) {
                let inner = cols.trim().trim_start_matches('[').trim_end_matches(']');
                s.columns = split_args(inner)
                    .iter()
                    .filter_map(|c| ruby_name(c))
                    .collect();
            }
            s.index_name = INDEX_NAME_OPT.captures(args).map(|c| c[1].to_string());
        }
        _ => {
            // Many helpers take the table first (add_foreign_key, add_timestamps, ...).
            if op.starts_with("add_") || op.starts_with("remove_") || op.starts_with("create_") {
                s.table = first;
            }
        }
    }
    s
}

/// Columns and types of a `CREATE TABLE "t" ("id" serial primary key, "oid" character
/// varying(255) NOT NULL, ...)` statement, as `(table, [(column, type)])`.
pub fn create_table_columns(statement: &str) -> Option<(String, Vec<(String, String)>)> {
    static CREATE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r#"(?is)^\s*CREATE\s+(?:UNLOGGED\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?((?:"[^"]+"|\w+)(?:\.(?:"[^"]+"|\w+))?)\s*\((.*)\)"#)
            .expect("regex")
    });
    let c = CREATE.captures(statement)?;
    let table = c[1]
        .rsplit('.')
        .next()
        .unwrap_or(&c[1])
        .trim_matches('"')
        .to_string();
    let body = &c[2];
    let mut cols = Vec::new();
    for item in split_sql_list(body) {
        if let Some((name, ty)) = column_def(&item) {
            cols.push((name, ty));
        }
    }
    Some((table, cols))
}

/// The column of an `ALTER TABLE "t" ADD [COLUMN] "c" type ...` statement.
pub fn alter_add_column(statement: &str) -> Option<(String, String, String)> {
    static ALTER: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r#"(?is)^\s*ALTER\s+TABLE\s+(?:ONLY\s+)?((?:"[^"]+"|\w+)(?:\.(?:"[^"]+"|\w+))?)\s+ADD\s+(?:COLUMN\s+)?(?:IF\s+NOT\s+EXISTS\s+)?(.*)$"#)
            .expect("regex")
    });
    let c = ALTER.captures(statement)?;
    let table = c[1]
        .rsplit('.')
        .next()
        .unwrap_or(&c[1])
        .trim_matches('"')
        .to_string();
    let first = split_sql_list(&c[2]).into_iter().next()?;
    let (col, ty) = column_def(&first)?;
    Some((table, col, ty))
}

fn split_sql_list(body: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut in_q: Option<char> = None;
    let mut cur = String::new();
    for ch in body.chars() {
        match in_q {
            Some(q) => {
                cur.push(ch);
                if ch == q {
                    in_q = None;
                }
            }
            None => match ch {
                '"' | '\'' => {
                    in_q = Some(ch);
                    cur.push(ch);
                }
                '(' => {
                    depth += 1;
                    cur.push(ch);
                }
                ')' => {
                    depth -= 1;
                    cur.push(ch);
                }
                ',' if depth == 0 => {
                    out.push(cur.trim().to_string());
                    cur.clear();
                }
                _ => cur.push(ch),
            },
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

/// `"oid" character varying(255) NOT NULL` → (`oid`, `character varying(255)`); table
/// constraints (`PRIMARY KEY (...)`, `CONSTRAINT ...`) → `None`.
fn column_def(item: &str) -> Option<(String, String)> {
    let item = item.trim();
    let (name, rest) = if let Some(stripped) = item.strip_prefix('"') {
        let end = stripped.find('"')?;
        (stripped[..end].to_string(), &stripped[end + 1..])
    } else {
        let end = item.find(char::is_whitespace)?;
        let word = &item[..end];
        let upper = word.to_ascii_uppercase();
        if matches!(
            upper.as_str(),
            "CONSTRAINT" | "PRIMARY" | "FOREIGN" | "UNIQUE" | "CHECK" | "EXCLUDE" | "LIKE"
        ) {
            return None;
        }
        (word.to_string(), &item[end..])
    };
    let mut ty = Vec::new();
    for word in rest.split_whitespace() {
        let u = word.to_ascii_uppercase();
        if matches!(
            u.as_str(),
            "NOT"
                | "NULL"
                | "DEFAULT"
                | "PRIMARY"
                | "REFERENCES"
                | "CONSTRAINT"
                | "UNIQUE"
                | "CHECK"
                | "COLLATE"
                | "GENERATED"
        ) {
            break;
        }
        ty.push(word);
    }
    if ty.is_empty() {
        return None;
    }
    Some((name, ty.join(" ")))
}

/// `update_retried_for_ci_build` → `UpdateRetriedForCiBuild`.
fn camel_case(snake: &str) -> String {
    snake
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

#[derive(Debug)]
struct Pending {
    migration: Migration,
    database: Option<String>,
    ops: Vec<SchemaOp>,
}

/// Incremental parser: feed lines as they come, then [`Parser::finish`].
#[derive(Debug, Default)]
pub struct Parser {
    line_no: usize,
    current_db: Option<String>,
    pending: Option<Pending>,
    migrated: Vec<Migration>,
    failures: Vec<Failure>,
    in_failure: bool,
    /// After an abort line: the next non-empty line is the error.
    awaiting_error: bool,
    /// Lines since the PostgreSQL error (for its DETAIL and statement lines).
    since_error: Option<usize>,
}

impl Parser {
    /// A new parser.
    pub fn new() -> Self {
        Self::default()
    }

    fn current_failure(&mut self) -> Option<&mut Failure> {
        if self.in_failure {
            self.failures.last_mut()
        } else {
            None
        }
    }

    fn start_failure(&mut self) {
        let pending = self.pending.take();
        let (migration, database, operations) = match pending {
            Some(p) => (Some(p.migration), p.database, p.ops),
            None => (None, None, Vec::new()),
        };
        self.failures.push(Failure {
            migration,
            database: database.or_else(|| self.current_db.clone()),
            error: None,
            error_text: None,
            operations,
            line: self.line_no,
        });
        self.in_failure = true;
        self.since_error = None;
    }

    fn failure_has_error(&self) -> bool {
        self.in_failure
            && self
                .failures
                .last()
                .is_some_and(|f| f.error.is_some() || f.error_text.is_some())
    }

    /// Feed one line (with or without its line ending).
    pub fn feed(&mut self, raw: &str) {
        self.line_no += 1;
        let line = clean_line(raw);
        let text = line.trim();
        if let Some(n) = self.since_error.as_mut() {
            *n += 1;
        }

        if let Some(c) = TASK_DB.captures(text) {
            let db = c[1].to_string();
            if let Some(f) = self.current_failure() {
                if f.database.is_none() {
                    f.database = Some(db.clone());
                }
            }
            if text.contains("Running db:migrate:") {
                self.current_db = Some(db);
            }
        }

        if let Some(c) = MIGRATING.captures(text) {
            self.in_failure = false;
            self.awaiting_error = false;
            self.since_error = None;
            let db = c.get(1).map(|m| m.as_str().to_string());
            if db.is_some() {
                self.current_db = db.clone();
            }
            self.pending = Some(Pending {
                migration: Migration {
                    version: c[2].to_string(),
                    name: c[3].to_string(),
                },
                database: db.or_else(|| self.current_db.clone()),
                ops: Vec::new(),
            });
            return;
        }
        if let Some(c) = MIGRATED.captures(text) {
            let m = Migration {
                version: c[2].to_string(),
                name: c[3].to_string(),
            };
            if self
                .pending
                .as_ref()
                .is_some_and(|p| p.migration.version == m.version)
            {
                self.pending = None;
            }
            self.migrated.push(m);
            return;
        }
        if !self.in_failure {
            if let Some(c) = OP.captures(text) {
                if let Some(p) = self.pending.as_mut() {
                    let shown = text[c.get(0).map(|m| m.start()).unwrap_or(0)..]
                        .trim()
                        .to_string();
                    let shown = shown
                        .split_once("-- ")
                        .map(|(_, r)| format!("-- {r}"))
                        .unwrap_or(shown);
                    p.ops.push(parse_op(&c[1], &c[2], &shown));
                }
                return;
            }
        }

        let rake_abort = RAKE_ABORT.is_match(text);
        let std_abort = STD_ABORT.is_match(text);
        if rake_abort || std_abort {
            if !self.in_failure || self.failure_has_error() {
                self.start_failure();
            }
            self.awaiting_error = true;
            return;
        }

        if let Some(c) = PG_ERR.captures(text) {
            if !self.in_failure {
                self.start_failure();
            }
            let class = c[1].to_string();
            let raw_msg = TRAILING_CLASS.replace(&c[2], "").to_string();
            let raw_msg = TRAILING_BACKTRACE.replace(&raw_msg, "").to_string();
            let (message, statement) = match INLINE_STATEMENT.captures(&raw_msg) {
                Some(s) => (s[1].to_string(), Some(s[2].trim().to_string())),
                None => (raw_msg.trim().to_string(), None),
            };
            let line_no = self.line_no;
            if let Some(f) = self.current_failure() {
                if f.error.is_none() {
                    let kind = ErrorKind::classify(&class, &message);
                    let mut object = object_in_message(&message);
                    // `column "x" already exists` (old PostgreSQL) names no table: take it
                    // from the statement or the failed op.
                    if let Some(o) = object.as_mut() {
                        if o.kind == ObjectKind::Column && o.table.is_none() {
                            o.table = statement
                                .as_deref()
                                .and_then(alter_add_column)
                                .map(|(t, _, _)| t)
                                .or_else(|| f.operations.last().and_then(|op| op.table.clone()));
                        }
                    }
                    f.error = Some(PgError {
                        class,
                        kind,
                        message,
                        detail: None,
                        statement,
                        object,
                    });
                    f.line = f.line.min(line_no);
                    self.since_error = Some(0);
                }
            }
            self.awaiting_error = false;
            return;
        }

        if self.in_failure {
            // DETAIL and `: STATEMENT` lines right after the error.
            if self.since_error.is_some_and(|n| n <= 4) {
                if let Some(c) = DETAIL.captures(text) {
                    if let Some(e) = self.current_failure().and_then(|f| f.error.as_mut()) {
                        if e.detail.is_none() {
                            e.detail = Some(c[1].to_string());
                        }
                    }
                } else if let Some(c) = STATEMENT_LINE.captures(text) {
                    let stmt = TRAILING_BACKTRACE.replace(&c[1], "").trim().to_string();
                    if let Some(e) = self.current_failure().and_then(|f| f.error.as_mut()) {
                        if e.statement.is_none() {
                            if let Some(o) = e.object.as_mut() {
                                if o.kind == ObjectKind::Column && o.table.is_none() {
                                    o.table = alter_add_column(&stmt).map(|(t, _, _)| t);
                                }
                            }
                            e.statement = Some(stmt);
                        }
                    }
                }
            }
            if let Some(c) = BACKTRACE_MIGRATION.captures(text) {
                let m = Migration {
                    version: c[1].to_string(),
                    name: camel_case(&c[2]),
                };
                if let Some(f) = self.current_failure() {
                    if f.migration.is_none() {
                        f.migration = Some(m);
                    }
                }
            }
            if self.awaiting_error && !text.is_empty() {
                // Not a PostgreSQL error: keep the line that says what went wrong.
                let strip = LINE_PREFIX.replace(text, "");
                let strip = strip.trim();
                if !strip.is_empty() && !strip.starts_with('/') {
                    let shown: String = strip.chars().take(300).collect();
                    if let Some(f) = self.current_failure() {
                        if f.error_text.is_none() {
                            f.error_text = Some(shown);
                        }
                    }
                    self.awaiting_error = false;
                }
            }
        }
    }

    /// Finish: the report of everything fed.
    pub fn finish(mut self) -> LogReport {
        let unfinished = self.pending.take().map(|p| p.migration);
        // When stdout reached the log after stderr (buffered), the failed migration's
        // `migrating` line comes after the abort: attach it.
        let mut unfinished = unfinished;
        if let Some(first) = self.failures.first_mut() {
            if first.migration.is_none() {
                if let Some(m) = unfinished.take() {
                    first.migration = Some(m);
                }
            }
        }
        if !self.failures.is_empty() {
            unfinished = None;
        }
        LogReport {
            lines: self.line_no,
            migrated: self.migrated,
            failures: self.failures,
            unfinished,
        }
    }
}

/// Largest migrate log Rewind reads (a failed `db:migrate`'s output is far smaller).
pub const MAX_LOG: u64 = 256 << 20;
/// Longest line kept; the rest of a longer line is skipped.
const MAX_LINE: usize = 1 << 20;

/// A migrate log larger than [`MAX_LOG`] (e.g. `--log /dev/zero`).
#[derive(Debug, thiserror::Error)]
#[error(
    "it is larger than {}, the most Rewind reads from a migrate log",
    crate::limited::human(MAX_LOG)
)]
pub struct LogTooLarge;

/// Parse a whole log from a reader, line by line (invalid UTF-8 is replaced), reading at
/// most [`MAX_LOG`] bytes ([`LogTooLarge`] past that) and keeping at most 1 MiB of a line.
pub fn parse_reader<R: BufRead>(r: R) -> std::io::Result<LogReport> {
    parse_reader_limited(r, MAX_LOG)
}

fn parse_reader_limited<R: BufRead>(mut r: R, limit: u64) -> std::io::Result<LogReport> {
    let mut p = Parser::new();
    let mut line = Vec::new();
    let mut total = 0u64;
    loop {
        let chunk = match r.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            break;
        }
        let (take, end_of_line) = match chunk.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        total += take as u64;
        if total > limit {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                LogTooLarge,
            ));
        }
        let room = MAX_LINE.saturating_sub(line.len());
        line.extend_from_slice(&chunk[..take.min(room)]);
        r.consume(take);
        if end_of_line {
            p.feed(&String::from_utf8_lossy(&line));
            line.clear();
        }
    }
    if !line.is_empty() {
        p.feed(&String::from_utf8_lossy(&line));
    }
    Ok(p.finish())
}

/// Parse a log held in a string.
pub fn parse_str(text: &str) -> LogReport {
    let mut p = Parser::new();
    for l in text.split('\n') {
        p.feed(l);
    }
    p.finish()
}

/// Parse a log file.
pub fn parse_file(path: &Path) -> Result<LogReport, LogError> {
    let err = |source| LogError::Read {
        path: path.to_path_buf(),
        source,
    };
    let f = File::open(path).map_err(err)?;
    parse_reader(BufReader::new(f)).map_err(err)
}

/// GitLab's Rails log dir under `root` (`log_dir` host path, default
/// `/var/log/gitlab/gitlab-rails`), and its `gitlab-rails-db-migrate-YYYY-MM-DD-HH-MM-SS.log`
/// files, newest first: regular files only (links are not followed). The timestamp in the
/// name sorts by time; ties fall back to the modification time.
fn migrate_logs(root: &HostRoot, log_dir: Option<&Path>) -> (PathBuf, PathBuf, Vec<PathBuf>) {
    let host_dir = log_dir
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(omnibus::RAILS_LOG_DIR));
    let dir = root.join(&host_dir);
    let mut found: Vec<(String, std::time::SystemTime, PathBuf)> = Vec::new();
    if let Ok(rd) = fs::read_dir(&dir) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if !(name.starts_with("gitlab-rails-db-migrate-") && name.ends_with(".log")) {
                continue;
            }
            // `file_type` of a directory entry does not follow links.
            if !e.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            let mtime = e
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            found.push((name, mtime, e.path()));
        }
    }
    found.sort_by(|a, b| (b.0.as_str(), b.1).cmp(&(a.0.as_str(), a.1)));
    (
        dir,
        host_dir,
        found.into_iter().map(|(_, _, p)| p).collect(),
    )
}

/// The newest `gitlab-rails-db-migrate-YYYY-MM-DD-HH-MM-SS.log` in GitLab's Rails log dir
/// (`log_dir` host path, default `/var/log/gitlab/gitlab-rails`), under `root`.
pub fn latest_omnibus_log(root: &HostRoot, log_dir: Option<&Path>) -> Result<PathBuf, LogError> {
    let (dir, host_dir, logs) = migrate_logs(root, log_dir);
    logs.into_iter()
        .next()
        .ok_or(LogError::NoOmnibusLog { dir, host_dir })
}

/// How many of the newest migrate logs are read to find the failed ones.
pub const FAILED_LOGS_READ: usize = 20;

/// The migrate logs in GitLab's Rails log dir whose run failed, newest first (paths on
/// this machine). Only the newest [`FAILED_LOGS_READ`] are read; each is opened without
/// following links.
pub fn failed_migrate_logs(root: &HostRoot, log_dir: Option<&Path>) -> Vec<PathBuf> {
    let (_, _, logs) = migrate_logs(root, log_dir);
    logs.into_iter()
        .take(FAILED_LOGS_READ)
        .filter(|p| {
            use std::os::unix::fs::OpenOptionsExt;
            fs::OpenOptions::new()
                .read(true)
                .custom_flags(nix::libc::O_NOFOLLOW)
                .open(p)
                .ok()
                .and_then(|f| parse_reader(BufReader::new(f)).ok())
                .is_some_and(|r| r.first_failure().is_some())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISSUE_EXAMPLE: &str =
        "== 20151103134857 CreateLfsObjects: migrating =================================
-- create_table(:lfs_objects)
rake aborted!
StandardError: An error has occurred, this and all later migrations canceled:

PG::DuplicateTable: ERROR:  relation \"lfs_objects\" already exists
";

    #[test]
    fn the_issue_example() {
        let r = parse_str(ISSUE_EXAMPLE);
        let f = r.first_failure().expect("failure");
        assert_eq!(f.version(), Some("20151103134857"));
        assert_eq!(f.migration.as_ref().unwrap().name, "CreateLfsObjects");
        let e = f.error.as_ref().unwrap();
        assert_eq!(e.kind, ErrorKind::DuplicateTable);
        assert_eq!(e.class, "DuplicateTable");
        assert_eq!(e.message, "relation \"lfs_objects\" already exists");
        let o = e.object.as_ref().unwrap();
        assert_eq!(
            (o.kind, o.name.as_str()),
            (ObjectKind::Relation, "lfs_objects")
        );
        assert_eq!(f.operations.len(), 1);
        assert_eq!(f.operations[0].op, "create_table");
        assert_eq!(f.operations[0].table.as_deref(), Some("lfs_objects"));
        assert_eq!(f.database, None);
    }

    #[test]
    fn ops_are_parsed() {
        let op = parse_op(
            "add_column",
            ":pages_domains, :scope, :integer, {:limit=>2, :default=>2, :null=>false}",
            "",
        );
        assert_eq!(op.table.as_deref(), Some("pages_domains"));
        assert_eq!(op.column.as_deref(), Some("scope"));
        assert_eq!(op.column_type.as_deref(), Some("integer"));
        let op = parse_op(
            "add_index",
            "\"ci_builds\", [:project_id, :status], {name: \"index_ci_builds_on_x\", unique: true}",
            "",
        );
        assert_eq!(op.table.as_deref(), Some("ci_builds"));
        assert_eq!(op.columns, vec!["project_id", "status"]);
        assert_eq!(op.index_name.as_deref(), Some("index_ci_builds_on_x"));
    }

    #[test]
    fn create_table_statement_columns() {
        let (t, cols) = create_table_columns("CREATE TABLE \"lfs_objects\" (\"id\" serial primary key, \"oid\" character varying(255) NOT NULL, \"size\" integer NOT NULL, \"created_at\" timestamp, \"updated_at\" timestamp, CONSTRAINT x CHECK (size > 0))").unwrap();
        assert_eq!(t, "lfs_objects");
        assert_eq!(
            cols,
            vec![
                ("id".into(), "serial".into()),
                ("oid".into(), "character varying(255)".into()),
                ("size".into(), "integer".into()),
                ("created_at".into(), "timestamp".into()),
                ("updated_at".into(), "timestamp".into()),
            ]
        );
        assert_eq!(
            alter_add_column("ALTER TABLE \"versions\" ADD \"comment\" text"),
            Some(("versions".into(), "comment".into(), "text".into()))
        );
    }

    #[test]
    fn messages_name_objects() {
        let o = object_in_message("column \"scope\" of relation \"pages_domains\" already exists")
            .unwrap();
        assert_eq!(o.kind, ObjectKind::Column);
        assert_eq!(o.name, "scope");
        assert_eq!(o.table.as_deref(), Some("pages_domains"));
        let o = object_in_message(
            "duplicate key value violates unique constraint \"postgres_async_foreign_key_validations_pkey\"",
        )
        .unwrap();
        assert_eq!(o.kind, ObjectKind::Constraint);
        assert_eq!(
            ErrorKind::from_message("relation \"x\" does not exist"),
            ErrorKind::UndefinedTable
        );
        let o = object_in_message("permission denied for table users").unwrap();
        assert_eq!((o.kind, o.name.as_str()), (ObjectKind::Relation, "users"));
    }

    #[test]
    fn clean_lines() {
        assert_eq!(
            clean_line("\x1b[31mrake aborted!\x1b[0m\r\n"),
            "rake aborted!"
        );
        assert_eq!(clean_line("50%\r100%"), "100%");
    }

    #[test]
    fn latest_log_by_name() {
        let d = tempfile::tempdir().unwrap();
        let root = HostRoot::new(d.path());
        let dir = root.join(omnibus::RAILS_LOG_DIR);
        fs::create_dir_all(&dir).unwrap();
        for n in [
            "gitlab-rails-db-migrate-2024-01-02-10-00-00.log",
            "gitlab-rails-db-migrate-2024-03-01-09-30-00.log",
            "gitlab-rails-db-migrate-2023-12-31-23-59-59.log",
            "production.log",
        ] {
            fs::write(dir.join(n), "x").unwrap();
        }
        let p = latest_omnibus_log(&root, None).unwrap();
        assert!(p.ends_with("gitlab-rails-db-migrate-2024-03-01-09-30-00.log"));
        let empty = tempfile::tempdir().unwrap();
        let e = latest_omnibus_log(&HostRoot::new(empty.path()), None).unwrap_err();
        assert!(
            e.to_string().contains("/var/log/gitlab/gitlab-rails"),
            "{e}"
        );
    }

    #[test]
    fn reads_are_bounded() {
        // `--log /dev/zero`: a clear error naming the file and the limit, not a hang.
        let e = parse_file(Path::new("/dev/zero")).unwrap_err().to_string();
        assert!(e.contains("/dev/zero") && e.contains("256 MiB"), "{e}");
        // A huge line is cut, the lines after it still parse.
        let mut text = vec![b'x'; 3 << 20];
        text.extend_from_slice(b"\n== 20240101000000 AddFoo: migrating ====\n");
        let r = parse_reader_limited(&text[..], 8 << 20).unwrap();
        assert_eq!(r.lines, 2);
        assert_eq!(
            r.unfinished.as_ref().map(|m| m.version.as_str()),
            Some("20240101000000"),
            "{r:?}"
        );
        assert!(parse_reader_limited(&text[..], 1 << 20).is_err());
    }
}
