//! Mark a migration complete, with the semantics of GitLab's
//! `gitlab-rake gitlab:db:mark_migration_complete[VERSION]` (lib/tasks/gitlab/db.rake):
//! a version that is not a non-zero integer is refused with "Must give a version argument
//! that is a non-zero integer" and nothing is written; otherwise, per database,
//! `INSERT INTO schema_migrations (version) VALUES ($1)` prints "Successfully marked
//! '<v>' as complete on database <name>", and a version already there prints "Migration
//! version '<v>' is already marked complete on database <name>" (not an error).
//!
//! Rewind is stricter than Ruby's `to_i` on the argument: digits only, at most 14 (the
//! width of a Rails migration timestamp), so `12abc` or `1; DROP TABLE x` never reach the
//! database. The value is bound as a parameter, never spliced into SQL.

use postgres::error::SqlState;
use serde::Serialize;

use crate::journal::{Journal, JournalError};
use crate::pg::conn::describe_pg_error;

/// The statement Rewind runs (the version is bound as `$1`).
pub const MARK_SQL: &str = "INSERT INTO schema_migrations (version) VALUES ($1)";

/// GitLab's message for a bad version argument.
pub const BAD_VERSION_MESSAGE: &str = "Must give a version argument that is a non-zero integer";

/// Errors marking a migration.
#[derive(Debug, thiserror::Error)]
pub enum MarkError {
    /// The version is not a non-zero integer of at most 14 digits.
    #[error("Must give a version argument that is a non-zero integer (got `{0}`; a migration version is the 14-digit number of the `== <version> <Name>: migrating` line)")]
    BadVersion(String),
    #[error("database {database}: there is no schema_migrations table; this is not an initialised GitLab database (check the connection settings), so there is nothing to mark")]
    NoSchemaMigrations { database: String },
    #[error("database {database}: schema_migrations.version has type {ty}, which Rewind does not know how to write; mark the migration with `gitlab-rake gitlab:db:mark_migration_complete[<version>]` instead")]
    UnexpectedColumnType { database: String, ty: String },
    #[error("database {database}: {step} failed: {detail}")]
    Sql {
        database: String,
        step: String,
        detail: String,
    },
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// Check a version argument: digits only, at most 14, not zero. Returns it unchanged (as
/// GitLab inserts the argument as given).
pub fn validate_version(version: &str) -> Result<&str, MarkError> {
    let v = version;
    if v.is_empty() || v.len() > 14 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(MarkError::BadVersion(v.to_string()));
    }
    if v.bytes().all(|b| b == b'0') {
        return Err(MarkError::BadVersion(v.to_string()));
    }
    Ok(v)
}

/// What marking did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MarkOutcome {
    /// The row was inserted.
    Marked,
    /// The version was already in schema_migrations; nothing written.
    AlreadyMarked,
}

/// The result of marking one version on one database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MarkResult {
    /// Connection name (`main`, `ci`), as GitLab names it in its messages.
    pub database: String,
    pub version: String,
    pub outcome: MarkOutcome,
}

impl MarkResult {
    /// GitLab's message for this result.
    pub fn message(&self) -> String {
        match self.outcome {
            MarkOutcome::Marked => format!(
                "Successfully marked '{}' as complete on database {}",
                self.version, self.database
            ),
            MarkOutcome::AlreadyMarked => format!(
                "Migration version '{}' is already marked complete on database {}",
                self.version, self.database
            ),
        }
    }
}

/// Whether `version` is in `schema_migrations`; `None` when the table does not exist.
pub fn is_marked(client: &mut postgres::Client, version: &str) -> Result<Option<bool>, String> {
    let ty = version_column_type(client)?;
    let Some(ty) = ty else { return Ok(None) };
    let row = if is_text_type(&ty) {
        client.query_one(
            "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = $1)",
            &[&version],
        )
    } else {
        let n: i64 = version
            .parse()
            .map_err(|_| format!("bad version {version}"))?;
        client.query_one(
            "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version::bigint = $1)",
            &[&n],
        )
    }
    .map_err(|e| describe_pg_error(&e))?;
    Ok(Some(row.get(0)))
}

/// The type of `schema_migrations.version` in the search path (GitLab: `character
/// varying`), or `None` when the table does not exist.
pub fn version_column_type(client: &mut postgres::Client) -> Result<Option<String>, String> {
    let row = client
        .query_opt(
            "SELECT format_type(a.atttypid, a.atttypmod)
               FROM pg_attribute a
              WHERE a.attrelid = to_regclass('schema_migrations')
                AND a.attname = 'version' AND NOT a.attisdropped",
            &[],
        )
        .map_err(|e| describe_pg_error(&e))?;
    Ok(row.map(|r| r.get::<_, String>(0)))
}

fn is_text_type(ty: &str) -> bool {
    ty.starts_with("character varying") || ty == "text" || ty.starts_with("character(")
}

/// Insert `version` into `schema_migrations` on one database (connection `database`),
/// journaled (step `migrate.mark`) when a journal is given. The version must already have
/// passed [`validate_version`] (it is checked again here).
pub fn mark_complete(
    client: &mut postgres::Client,
    database: &str,
    version: &str,
    journal: Option<&Journal>,
) -> Result<MarkResult, MarkError> {
    let version = validate_version(version)?;
    let sql_err = |step: &str, detail: String| MarkError::Sql {
        database: database.to_string(),
        step: step.to_string(),
        detail,
    };
    let ty = version_column_type(client)
        .map_err(|d| sql_err("reading the type of schema_migrations.version", d))?
        .ok_or_else(|| MarkError::NoSchemaMigrations {
            database: database.to_string(),
        })?;
    let integer = matches!(ty.as_str(), "bigint" | "integer" | "numeric");
    if !is_text_type(&ty) && !integer {
        return Err(MarkError::UnexpectedColumnType {
            database: database.to_string(),
            ty,
        });
    }
    let detail = serde_json::json!({
        "database": database,
        "version": version,
        "sql": MARK_SQL,
    });
    if let Some(j) = journal {
        j.begin("migrate.mark", MARK_SQL, detail.clone())?;
    }
    let result = if integer {
        let n: i64 = version
            .parse()
            .map_err(|_| MarkError::BadVersion(version.to_string()))?;
        if ty == "numeric" {
            client.execute(
                "INSERT INTO schema_migrations (version) VALUES ($1::bigint)",
                &[&n],
            )
        } else if ty == "integer" {
            let n = i32::try_from(n).map_err(|_| MarkError::BadVersion(version.to_string()))?;
            client.execute(MARK_SQL, &[&n])
        } else {
            client.execute(MARK_SQL, &[&n])
        }
    } else {
        client.execute(MARK_SQL, &[&version])
    };
    let outcome = match result {
        Ok(_) => MarkOutcome::Marked,
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => MarkOutcome::AlreadyMarked,
        Err(e) => {
            let d = describe_pg_error(&e);
            if let Some(j) = journal {
                j.end("migrate.mark", "failed", serde_json::json!({"error": d}))?;
            }
            return Err(sql_err("INSERT INTO schema_migrations", d));
        }
    };
    if let Some(j) = journal {
        let r = match outcome {
            MarkOutcome::Marked => "ok",
            MarkOutcome::AlreadyMarked => "already_marked",
        };
        j.end("migrate.mark", r, detail)?;
    }
    Ok(MarkResult {
        database: database.to_string(),
        version: version.to_string(),
        outcome,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg::cluster::TempCluster;

    #[test]
    fn versions_are_checked_like_gitlab_but_stricter() {
        for bad in [
            "0",
            "000",
            "abc",
            "-5",
            "1; DROP TABLE x",
            "",
            "12abc",
            "123456789012345",
            " 1",
        ] {
            let e = validate_version(bad).unwrap_err();
            assert!(e.to_string().starts_with(BAD_VERSION_MESSAGE), "{bad}: {e}");
        }
        assert_eq!(
            validate_version("20151103134857").unwrap(),
            "20151103134857"
        );
        assert_eq!(validate_version("7").unwrap(), "7");
    }

    #[test]
    fn marks_once_then_says_already_marked_and_journals() {
        let c = TempCluster::start().unwrap();
        c.create_database("gl").unwrap();
        let mut db = c.connect("gl").unwrap();
        db.batch_execute(
            "CREATE TABLE schema_migrations (version character varying NOT NULL PRIMARY KEY)",
        )
        .unwrap();
        let jd = tempfile::tempdir().unwrap();
        let j = Journal::open_in(jd.path()).unwrap();
        let r = mark_complete(&mut db, "main", "20151103134857", Some(&j)).unwrap();
        assert_eq!(r.outcome, MarkOutcome::Marked);
        assert_eq!(
            r.message(),
            "Successfully marked '20151103134857' as complete on database main"
        );
        let r = mark_complete(&mut db, "main", "20151103134857", Some(&j)).unwrap();
        assert_eq!(r.outcome, MarkOutcome::AlreadyMarked);
        assert_eq!(
            r.message(),
            "Migration version '20151103134857' is already marked complete on database main"
        );
        let n: i64 = db
            .query_one("SELECT count(*) FROM schema_migrations", &[])
            .unwrap()
            .get(0);
        assert_eq!(n, 1);
        assert_eq!(is_marked(&mut db, "20151103134857").unwrap(), Some(true));
        assert_eq!(is_marked(&mut db, "20151103134858").unwrap(), Some(false));
        let e = mark_complete(&mut db, "main", "1; DROP TABLE x", Some(&j)).unwrap_err();
        assert!(matches!(e, MarkError::BadVersion(_)));
        let entries = Journal::read(j.path()).unwrap();
        let results: Vec<_> = entries.iter().filter_map(|e| e.result.clone()).collect();
        assert_eq!(results, vec!["ok", "already_marked"]);

        // No schema_migrations: a clear error, nothing journaled as begun.
        c.create_database("empty").unwrap();
        let mut empty = c.connect("empty").unwrap();
        let e = mark_complete(&mut empty, "ci", "20151103134857", None).unwrap_err();
        assert!(e.to_string().contains("no schema_migrations"), "{e}");
    }
}
