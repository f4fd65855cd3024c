//! Checks after a database restore: `schema_migrations` ends at the backup's `db_version`,
//! every table holds the rows its `COPY` block carried, no leftover of the failed upgrade
//! remains, and the installed GitLab version is the backup's. Each check is a pass/fail
//! line; the report serialises for `--json`.

use postgres::GenericClient;
use serde::{Deserialize, Serialize};

use super::inventory::inventory;
use super::leftovers::{self, DumpCatalog, LeftoverKind, Leftovers};
use crate::pg::conn::describe_pg_error;
use crate::pg::ident::qualified;
use crate::version::GitLabVersion;

/// Outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    /// Worth knowing, not a failure (e.g. functions a failed upgrade added, which GitLab's
    /// restore leaves in place too).
    Warn,
    /// Could not be checked (the fact it needs is missing); says why.
    Skipped,
}

/// One line of the verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    /// `schema_migrations`, `row counts`, `leftovers`, `gitlab version`.
    pub check: String,
    pub status: Status,
    pub detail: String,
}

/// All checks of one database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    pub database: String,
    pub lines: Vec<Line>,
}

impl VerifyReport {
    /// No check failed.
    pub fn ok(&self) -> bool {
        self.lines.iter().all(|l| l.status != Status::Fail)
    }
}

/// Errors that stop verification itself (a check failing is not one).
#[derive(Debug, thiserror::Error)]
#[error("verifying database `{database}` failed while {step}: {detail}")]
pub struct VerifyError {
    pub database: String,
    pub step: String,
    pub detail: String,
}

/// Rows one table received from the dump.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableRows {
    pub schema: String,
    pub table: String,
    pub rows: u64,
}

/// What the checks compare against.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// The backup's `db_version` (highest migration it contains).
    pub db_version: Option<&'a str>,
    /// Rows per table, as the dump's `COPY` blocks carried them.
    pub table_rows: &'a [TableRows],
    /// What the dump creates, for the leftover check.
    pub dump: Option<&'a DumpCatalog>,
    /// Leftovers found before the restore.
    pub leftovers_before: Option<&'a Leftovers>,
    pub backup_version: Option<&'a GitLabVersion>,
    pub installed_version: Option<&'a GitLabVersion>,
}

/// Highest `schema_migrations` version, compared as a number; `None` when the table is
/// missing or empty.
pub fn max_migration(client: &mut impl GenericClient) -> Result<Option<String>, String> {
    let exists: bool = client
        .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])
        .map_err(|e| describe_pg_error(&e))?
        .get(0);
    if !exists {
        return Ok(None);
    }
    let row = client
        .query_opt(
            "SELECT version::text FROM schema_migrations \
             ORDER BY length(ltrim(version::text, '0')) DESC, ltrim(version::text, '0') DESC LIMIT 1",
            &[],
        )
        .map_err(|e| describe_pg_error(&e))?;
    Ok(row.map(|r| r.get(0)))
}

/// Run every check.
pub fn verify(
    client: &mut impl GenericClient,
    database: &str,
    expected: &Expected<'_>,
) -> Result<VerifyReport, VerifyError> {
    let err = |step: &str, detail: String| VerifyError {
        database: database.to_string(),
        step: step.to_string(),
        detail,
    };
    let mut lines = Vec::new();
    // Counting every row of a large table takes as long as it takes: the server's default
    // (Omnibus sets `statement_timeout` to 60 s) would fail the check on a large
    // database, after the whole load. For this session only; it only reads.
    client
        .batch_execute("SET statement_timeout = 0")
        .map_err(|e| err("setting statement_timeout", describe_pg_error(&e)))?;

    // 1. schema_migrations
    let max = max_migration(client).map_err(|d| err("reading schema_migrations", d))?;
    lines.push(match (expected.db_version, max) {
        (None, _) => Line {
            check: "schema_migrations".into(),
            status: Status::Skipped,
            detail: "the backup's metadata has no db_version".into(),
        },
        (Some(want), Some(got)) if got.trim_start_matches('0') == want.trim_start_matches('0') => {
            Line {
                check: "schema_migrations".into(),
                status: Status::Pass,
                detail: format!("highest migration is {got}, the backup's db_version"),
            }
        }
        (Some(want), got) => Line {
            check: "schema_migrations".into(),
            status: Status::Fail,
            detail: format!(
                "highest migration is {}, the backup's db_version is {want}",
                got.as_deref().unwrap_or("(none: table missing or empty)")
            ),
        },
    });

    // 2. rows per table
    if expected.table_rows.is_empty() {
        lines.push(Line {
            check: "row counts".into(),
            status: Status::Skipped,
            detail: "no table data was loaded".into(),
        });
    } else {
        let mut bad = Vec::new();
        for t in expected.table_rows {
            // ONLY: an inheritance parent's COPY carried its own rows; a partitioned
            // table (loaded through its root) counts its partitions.
            let name = qualified(&t.schema, &t.table);
            let partitioned = client
                .query_opt(
                    "SELECT 1 FROM pg_class WHERE oid = to_regclass($1) AND relkind = 'p'",
                    &[&name],
                )
                .map(|r| r.is_some())
                .unwrap_or(false);
            let only = if partitioned { "" } else { "ONLY " };
            let sql = format!("SELECT count(*) FROM {only}{name}");
            match client.query_one(sql.as_str(), &[]) {
                Ok(r) => {
                    let n = r.get::<_, i64>(0).max(0) as u64;
                    if n != t.rows {
                        bad.push(format!(
                            "{}.{}: {n} rows, dump has {}",
                            t.schema, t.table, t.rows
                        ));
                    }
                }
                Err(e) => bad.push(format!(
                    "{}.{}: {}",
                    t.schema,
                    t.table,
                    describe_pg_error(&e)
                )),
            }
        }
        let total: u64 = expected.table_rows.iter().map(|t| t.rows).sum();
        lines.push(if bad.is_empty() {
            Line {
                check: "row counts".into(),
                status: Status::Pass,
                detail: format!(
                    "{} tables hold the {total} rows their COPY blocks carried",
                    expected.table_rows.len()
                ),
            }
        } else {
            let more = bad.len().saturating_sub(10);
            let mut detail = bad.iter().take(10).cloned().collect::<Vec<_>>().join("; ");
            if more > 0 {
                detail.push_str(&format!("; and {more} more"));
            }
            Line {
                check: "row counts".into(),
                status: Status::Fail,
                detail,
            }
        });
    }

    // 3. leftovers
    match (expected.dump, expected.leftovers_before) {
        (Some(dump), Some(before)) => {
            let inv = inventory(client).map_err(|e| err("reading the inventory", e.to_string()))?;
            let newer = match expected.db_version {
                Some(v) => leftovers::newer_migrations(client, v)
                    .map_err(|d| err("reading schema_migrations", d))?,
                None => Vec::new(),
            };
            let now = leftovers::compute(&inv, dump, &newer);
            // Functions and types are not dropped by GitLab's restore either: a warning.
            let soft = |k: LeftoverKind| matches!(k, LeftoverKind::Function | LeftoverKind::Type);
            let still: Vec<&leftovers::Leftover> = before
                .items
                .iter()
                .filter(|l| now.contains(l.kind, &l.schema, &l.name))
                .collect();
            let name =
                |l: &&leftovers::Leftover| format!("{} {}", l.kind.label(), l.display_name());
            let remaining: Vec<String> = still.iter().filter(|l| !soft(l.kind)).map(name).collect();
            let soft_left: Vec<String> = still.iter().filter(|l| soft(l.kind)).map(name).collect();
            lines.push(if remaining.is_empty() {
                Line {
                    check: "leftovers".into(),
                    status: Status::Pass,
                    detail: format!(
                        "none of the {} tables, views, sequences, schemas, columns and migrations the backup does not have remains",
                        before.items.iter().filter(|l| !soft(l.kind)).count()
                    ),
                }
            } else {
                Line {
                    check: "leftovers".into(),
                    status: Status::Fail,
                    detail: format!(
                        "still present (GitLab's drop does not remove them; drop them by hand once sure they are not needed): {}",
                        remaining.join(", ")
                    ),
                }
            });
            if !soft_left.is_empty() {
                lines.push(Line {
                    check: "leftover routines".into(),
                    status: Status::Warn,
                    detail: format!(
                        "not in the backup and still present, as after GitLab's own restore (harmless unless the next upgrade creates them without OR REPLACE): {}",
                        soft_left.join(", ")
                    ),
                });
            }
        }
        _ => lines.push(Line {
            check: "leftovers".into(),
            status: Status::Skipped,
            detail: "no inventory was taken before the restore".into(),
        }),
    }

    // 4. version
    lines.push(
        match (expected.backup_version, expected.installed_version) {
            (Some(b), Some(i)) if b.same_release(i) => Line {
                check: "gitlab version".into(),
                status: Status::Pass,
                detail: format!("installed {i} equals the backup's {b}"),
            },
            (Some(b), Some(i)) => Line {
                check: "gitlab version".into(),
                status: Status::Fail,
                detail: format!(
                    "installed {i}, the backup is {b}: install {b} before starting GitLab"
                ),
            },
            (b, i) => Line {
                check: "gitlab version".into(),
                status: Status::Skipped,
                detail: format!(
                    "unknown {}",
                    if b.is_none() {
                        "backup version"
                    } else if i.is_none() {
                        "installed version"
                    } else {
                        "version"
                    }
                ),
            },
        },
    );

    Ok(VerifyReport {
        database: database.to_string(),
        lines,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg::cluster::TempCluster;
    use crate::restore::leftovers::{compute, DumpCatalog};

    /// Omnibus runs the server with `statement_timeout = 60s`; the row counts of a large
    /// table take longer than that on a large database. Here new sessions get 1 ms.
    #[test]
    fn row_counts_are_not_cut_by_the_servers_statement_timeout() {
        let c = TempCluster::start().unwrap();
        c.create_database("gl").unwrap();
        let mut db = c.connect("gl").unwrap();
        db.batch_execute(
            "CREATE TABLE notes (id bigint, note text);
             INSERT INTO notes SELECT g, repeat('x', 200) FROM generate_series(1, 300000) g;
             ALTER DATABASE gl SET statement_timeout = '1ms';",
        )
        .unwrap();
        drop(db);
        // What a plain session gets: the server's 1 ms.
        let mut plain = c.connect("gl").unwrap();
        let e = plain
            .query_one("SELECT count(*) FROM notes", &[])
            .unwrap_err();
        assert!(describe_pg_error(&e).contains("statement timeout"), "{e}");
        let rows = vec![TableRows {
            schema: "public".into(),
            table: "notes".into(),
            rows: 300000,
        }];
        let exp = Expected {
            db_version: None,
            table_rows: &rows,
            dump: None,
            leftovers_before: None,
            backup_version: None,
            installed_version: None,
        };
        let mut db = c.connect("gl").unwrap();
        let r = verify(&mut db, "gl", &exp).unwrap();
        let counts = r.lines.iter().find(|l| l.check == "row counts").unwrap();
        assert_eq!(counts.status, Status::Pass, "{}", counts.detail);
    }

    #[test]
    fn passes_and_fails_for_the_right_reasons() {
        let c = TempCluster::start().unwrap();
        c.create_database("gl").unwrap();
        let mut db = c.connect("gl").unwrap();
        db.batch_execute(
            "CREATE TABLE schema_migrations (version varchar PRIMARY KEY);
             INSERT INTO schema_migrations VALUES ('20240101000000'), ('9');
             CREATE TABLE projects (id int);
             INSERT INTO projects SELECT generate_series(1, 7);
             CREATE TABLE lfs_objects (id int);",
        )
        .unwrap();
        let mut dump = DumpCatalog::default();
        dump.add_object("TABLE", Some("public"), "schema_migrations");
        dump.add_object("TABLE", Some("public"), "projects");
        let inv = inventory(&mut db).unwrap();
        let before = compute(&inv, &dump, &[]);
        assert_eq!(before.len(), 1);
        let v: GitLabVersion = "16.10.3-ee".parse().unwrap();
        let rows = vec![TableRows {
            schema: "public".into(),
            table: "projects".into(),
            rows: 7,
        }];
        let exp = Expected {
            db_version: Some("20240101000000"),
            table_rows: &rows,
            dump: Some(&dump),
            leftovers_before: Some(&before),
            backup_version: Some(&v),
            installed_version: Some(&v),
        };
        let r = verify(&mut db, "gl", &exp).unwrap();
        let st: Vec<Status> = r.lines.iter().map(|l| l.status).collect();
        assert_eq!(
            st,
            vec![Status::Pass, Status::Pass, Status::Fail, Status::Pass]
        );
        assert!(r.lines[2].detail.contains("public.lfs_objects"));
        assert!(!r.ok());

        db.batch_execute(
            "DROP TABLE lfs_objects; INSERT INTO projects VALUES (8);
             INSERT INTO schema_migrations VALUES ('20250101000000');",
        )
        .unwrap();
        let newer: GitLabVersion = "16.11.0-ee".parse().unwrap();
        let exp = Expected {
            installed_version: Some(&newer),
            ..exp
        };
        let r = verify(&mut db, "gl", &exp).unwrap();
        let st: Vec<Status> = r.lines.iter().map(|l| l.status).collect();
        assert_eq!(
            st,
            vec![Status::Fail, Status::Fail, Status::Pass, Status::Fail]
        );
        assert!(r.lines[0].detail.contains("20250101000000"));
        assert!(r.lines[1].detail.contains("8 rows, dump has 7"));
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["lines"][0]["status"], "fail");
    }
}
