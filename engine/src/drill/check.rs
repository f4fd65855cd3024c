//! The drill's checks of the outcome, against what the scenario expects.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use super::report::DrillReport;
use super::scenario::Scenario;
use super::setup::Sandbox;
use crate::sandbox::{self, compare};

/// The ownership statements the restore's journal says were skipped (the restoring role
/// may not run them; GitLab's restore skips them too).
fn skipped_owner_statements(sb: &Sandbox) -> Vec<String> {
    let journal = crate::journal::Journal::dir_for(&sb.layout.backup_dir).join("journal.jsonl");
    let entries = crate::journal::Journal::read(&journal).unwrap_or_default();
    let mut out = Vec::new();
    for e in entries.iter().filter(|e| e.step.ends_with(".load.skipped")) {
        if let Some(list) = e.detail.as_array() {
            out.extend(
                list.iter()
                    .filter_map(|s| s.get("statement").and_then(|t| t.as_str()))
                    .filter(|t| t.contains(" OWNER TO "))
                    .map(str::to_string),
            );
        }
    }
    out
}

fn db_check(
    report: &mut DrillReport,
    name: &str,
    target: &sandbox::PgTarget,
    want: &compare::DbFingerprint,
    skipped: &[String],
) {
    match compare::fingerprint(target) {
        Ok(got) => {
            let diff = want.diff_except_owners(&got, skipped);
            let detail = if diff.is_empty() {
                format!(
                    "schema and {} tables equal ({} rows)",
                    got.tables.len(),
                    got.total_rows()
                )
            } else {
                let mut d: Vec<String> = diff.iter().take(5).cloned().collect();
                if diff.len() > 5 {
                    d.push(format!("... {} more", diff.len() - 5));
                }
                d.join("; ")
            };
            report.check(name, diff.is_empty(), detail);
        }
        Err(e) => report.check(name, false, e.to_string()),
    }
}

fn installed_version(sb: &Sandbox) -> String {
    fs::read_to_string(sb.root.join(crate::detect::omnibus::VERSION))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|e| format!("unreadable: {e}"))
}

/// The newest `schema_migrations` version and whether the given versions are present.
fn schema_migrations(
    target: &sandbox::PgTarget,
    versions: &[&str],
) -> Result<(String, Vec<bool>), String> {
    let mut c = target.connect().map_err(|e| e.to_string())?;
    let max = sandbox::current_db_version(&mut c).map_err(|e| e.to_string())?;
    let mut present = Vec::new();
    for v in versions {
        let n: i64 = c
            .query_one(
                "SELECT count(*) FROM schema_migrations WHERE version = $1",
                &[v],
            )
            .map_err(|e| e.to_string())?
            .get(0);
        present.push(n == 1);
    }
    Ok((max, present))
}

/// Check the sandbox after a recovery ran, for the sandbox's scenario.
pub fn outcome(sb: &Sandbox, report: &mut DrillReport) {
    match sb.scenario {
        Scenario::FailedUpgrade
        | Scenario::CorruptBackup
        | Scenario::Decomposed
        | Scenario::EditionChange => recovered(sb, report),
        Scenario::VersionMismatch => unchanged(sb, report),
        Scenario::LeftoverTables => repaired(sb, report),
    }
}

fn recovered(sb: &Sandbox, report: &mut DrillReport) {
    let skipped = skipped_owner_statements(sb);
    db_check(
        report,
        "main database equals the backup",
        &sb.main,
        &sb.expected.main,
        &skipped,
    );
    if let (Some(ci), Some(want)) = (&sb.ci, &sb.expected.ci) {
        db_check(report, "ci database equals the backup", ci, want, &skipped);
    }
    match schema_migrations(&sb.main, &[]) {
        Ok((max, _)) => report.check(
            "schema_migrations at the backup's db_version",
            max == sb.expected.db_version,
            format!("newest version {max}, backup's {}", sb.expected.db_version),
        ),
        Err(e) => report.check("schema_migrations at the backup's db_version", false, e),
    }
    // No table the failed upgrade added survives.
    match sb.main.connect() {
        Ok(mut c) => {
            let mut left = Vec::new();
            for t in sandbox::upgrade::LEFTOVER_TABLES {
                let q = format!("public.{}", crate::pg::ident::quote_ident(t));
                let row = c.query_one("SELECT to_regclass($1) IS NOT NULL", &[&q]);
                if row.map(|r| r.get::<_, bool>(0)).unwrap_or(true) {
                    left.push(t);
                }
            }
            report.check(
                "no table of the failed upgrade left",
                left.is_empty(),
                if left.is_empty() {
                    format!("{} gone", sandbox::upgrade::LEFTOVER_TABLES.join(", "))
                } else {
                    format!("still there: {}", left.join(", "))
                },
            );
        }
        Err(e) => report.check("no table of the failed upgrade left", false, e.to_string()),
    }
    for (name, dir, want) in &sb.expected.files {
        match compare::files_fingerprint(dir) {
            Ok(got) => {
                let diff = want.diff(&got);
                report.check(
                    format!("{name} files equal the backup"),
                    diff.is_empty(),
                    if diff.is_empty() {
                        format!("{} entries", got.entries.len())
                    } else {
                        diff.into_iter().take(4).collect::<Vec<_>>().join("; ")
                    },
                );
            }
            Err(e) => report.check(
                format!("{name} files equal the backup"),
                false,
                e.to_string(),
            ),
        }
    }
    repositories_check(sb, report);
    config_check(sb, report);
    doctor_check(sb, report);
    let v = installed_version(sb);
    report.check(
        "installed version is the backup's",
        v == sb.expected.version,
        format!("installed {v}, backup {}", sb.expected.version),
    );
    snapshots_before_package(sb, report);
    private_files(sb, report);
}

/// With the in-place strategy every database's safety snapshot is complete before the
/// package step begins (the older package's reconfigure may migrate), from the journal.
fn snapshots_before_package(sb: &Sandbox, report: &mut DrillReport) {
    use crate::journal::{Journal, Stage};
    const NAME: &str = "safety snapshots taken before the package step";
    let journal = Journal::dir_for(&sb.layout.backup_dir).join("journal.jsonl");
    let entries = Journal::read(&journal).unwrap_or_default();
    let Some(install) = entries
        .iter()
        .position(|e| e.step == "rollback.install" && e.stage == Stage::Begin)
    else {
        report.check(NAME, false, "the journal records no package step");
        return;
    };
    let beside = entries.iter().rev().find(|e| e.step == "recovery.strategy");
    if beside.is_some_and(|e| e.detail["strategy"] == "beside") {
        kept_beside(sb, report, &entries);
        return;
    }
    let mut current: Option<String> = None;
    let mut before = std::collections::BTreeSet::new();
    for e in &entries[..install] {
        match (e.step.as_str(), e.stage) {
            ("snapshot", Stage::Begin) => {
                current = e.detail["database"].as_str().map(str::to_string);
            }
            ("snapshot", Stage::End) if e.result.as_deref() == Some("ok") => {
                before.extend(current.take());
            }
            _ => {}
        }
    }
    let mut want = vec![sb.main.conn.dbname.clone()];
    want.extend(sb.ci.as_ref().map(|c| c.conn.dbname.clone()));
    let missing: Vec<&String> = want.iter().filter(|d| !before.contains(*d)).collect();
    report.check(
        NAME,
        missing.is_empty(),
        if missing.is_empty() {
            format!("{} before rollback.install", want.join(", "))
        } else {
            format!(
                "no snapshot of {} before rollback.install",
                missing
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        },
    );
}

/// gitlab-secrets.json and gitlab.rb are the configuration archive's of the backup (the
/// one nearest before it), as GitLab's restore prerequisites want them before reconfigure.
fn config_check(sb: &Sandbox, report: &mut DrillReport) {
    let name = "gitlab-secrets.json and gitlab.rb are the backup's configuration";
    let before = Some(sandbox::backup::default_created_at());
    let r = crate::recovery::config::choose(&sb.root, None, before)
        .and_then(|a| crate::recovery::config::read_archive(&sb.root, &a))
        .map(|c| crate::recovery::config::diff(&sb.root, &c));
    match r {
        Ok(d) => report.check(
            name,
            d.would_restore.is_empty(),
            if d.would_restore.is_empty() {
                format!("both equal {}", d.archive.name)
            } else {
                format!(
                    "{} differ from {}",
                    d.would_restore.join(" and "),
                    d.archive.name
                )
            },
        ),
        Err(e) => report.check(name, false, e.to_string()),
    }
}

/// `gitlab-rake gitlab:doctor:secrets` through the sandbox's gitlab-rake: every encrypted
/// value of the restored database decrypts with the host's gitlab-secrets.json.
fn doctor_check(sb: &Sandbox, report: &mut DrillReport) {
    let name = "gitlab:doctor:secrets: every encrypted value decrypts";
    let cmd = crate::services::gitlab_rake_cmd(&sb.root, &["gitlab:doctor:secrets"]);
    match crate::exec::capture(&cmd) {
        Ok(c) => {
            let d = crate::recovery::postcheck::parse_doctor_secrets(&format!(
                "{}\n{}",
                c.stdout, c.stderr
            ));
            report.check(
                name,
                d.ok(),
                format!(
                    "{} models, {} row(s) affected",
                    d.models.len(),
                    d.total.map(|t| t.to_string()).unwrap_or_else(|| "?".into())
                ),
            );
        }
        Err(e) => report.check(name, false, e.to_string()),
    }
}

/// With beside-and-swap: no snapshot at all, and each database's failed-upgrade state kept
/// whole under its kept name (the upgrade's newest migration still recorded there).
fn kept_beside(sb: &Sandbox, report: &mut DrillReport, entries: &[crate::journal::Entry]) {
    const NAME: &str = "failed upgrade's databases kept beside (no snapshot needed)";
    let snapshots = entries
        .iter()
        .filter(|e| e.step == "snapshot" && e.stage == crate::journal::Stage::Begin)
        .count();
    let kept = crate::restore::beside::completed(entries);
    let mut want = vec![sb.main.conn.dbname.clone()];
    want.extend(sb.ci.as_ref().map(|c| c.conn.dbname.clone()));
    let mut problems = Vec::new();
    if snapshots > 0 {
        problems.push(format!("{snapshots} snapshot journal entries"));
    }
    let mut found = Vec::new();
    for db in &want {
        let Some(rec) = kept.iter().find(|r| &r.live == db) else {
            problems.push(format!("no swap of {db} in the journal"));
            continue;
        };
        let version = sb
            .main
            .with_dbname(&rec.kept)
            .connect()
            .ok()
            .and_then(|mut c| sandbox::current_db_version(&mut c).ok());
        match version {
            // Same-length version strings: newer than the backup's means the failed
            // upgrade's migrations are still recorded there.
            Some(v) if db != &sb.main.conn.dbname || v.as_str() > sandbox::DB_VERSION => {
                found.push(format!("{db} -> {} (db version {v})", rec.kept))
            }
            Some(v) => problems.push(format!(
                "{} holds db version {v}, not newer than the backup's {}",
                rec.kept,
                sandbox::DB_VERSION
            )),
            None => problems.push(format!("{} cannot be read", rec.kept)),
        }
    }
    report.check(
        NAME,
        problems.is_empty(),
        if problems.is_empty() {
            found.join("; ")
        } else {
            problems.join("; ")
        },
    );
    // The kept main database is the failed upgrade's, whole: its schema (the upgrade's new
    // tables and column) and every table's rows as they were right before the recovery.
    if let Some(rec) = kept.iter().find(|r| r.live == sb.main.conn.dbname) {
        db_check(
            report,
            "kept database equals the failed upgrade's state",
            &sb.main.with_dbname(&rec.kept),
            &sb.before,
            &[],
        );
    }
}

/// The repositories gitaly-backup restored: as many with refs as the backup holds, each
/// with the backup's refs (the push made after the backup gone).
fn repositories_check(sb: &Sandbox, report: &mut DrillReport) {
    let (storage, want) = &sb.expected.repositories;
    let name = "repositories equal the backup (count and refs)";
    match sandbox::repos::all_refs(storage) {
        Ok(got) => {
            let with_refs: Vec<&String> = got
                .iter()
                .filter(|(_, r)| !r.trim().is_empty())
                .map(|(k, _)| k)
                .collect();
            let wrong: Vec<&String> = want
                .iter()
                .filter(|(k, v)| got.get(*k) != Some(*v))
                .map(|(k, _)| k)
                .collect();
            let want_with_refs = want.values().filter(|r| !r.trim().is_empty()).count();
            report.check(
                name,
                wrong.is_empty() && with_refs.len() == want_with_refs,
                format!(
                    "{} repositories with refs (backup {}), {} created empty; {}",
                    with_refs.len(),
                    want_with_refs,
                    got.len() - with_refs.len(),
                    if wrong.is_empty() {
                        "every ref equal".to_string()
                    } else {
                        format!(
                            "refs differ: {}",
                            wrong
                                .iter()
                                .take(3)
                                .map(|s| s.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    }
                ),
            );
        }
        Err(e) => report.check(name, false, e.to_string()),
    }
}

fn private_files(sb: &Sandbox, report: &mut DrillReport) {
    let jdir = crate::journal::Journal::dir_for(&sb.layout.backup_dir);
    let journal = jdir.join("journal.jsonl");
    match fs::metadata(&journal) {
        Ok(m) => {
            let mode = m.permissions().mode() & 0o777;
            let entries = crate::journal::Journal::read(&journal)
                .map(|e| e.len())
                .unwrap_or(0);
            report.check(
                "journal written, mode 0600",
                mode == 0o600 && entries > 0,
                format!("{entries} entries, mode {mode:o}"),
            );
        }
        Err(e) => report.check(
            "journal written, mode 0600",
            false,
            format!("{}: {e}", journal.display()),
        ),
    }
}

fn unchanged(sb: &Sandbox, report: &mut DrillReport) {
    db_check(report, "database unchanged", &sb.main, &sb.before, &[]);
    let v = installed_version(sb);
    report.check(
        "installed version unchanged",
        v == sb.installed_before,
        format!("installed {v}"),
    );
}

fn repaired(sb: &Sandbox, report: &mut DrillReport) {
    let marked: Vec<&str> = sandbox::upgrade::LEFTOVER_TABLES
        .iter()
        .filter_map(|t| {
            sandbox::upgrade::UPGRADE_MIGRATIONS
                .iter()
                .find(|m| m.creates_table == Some(t))
                .map(|m| m.version)
        })
        .collect();
    let all: Vec<&str> = sandbox::upgrade::UPGRADE_MIGRATIONS
        .iter()
        .map(|m| m.version)
        .chain([sandbox::upgrade::FAILING_MIGRATION.version])
        .collect();
    match schema_migrations(&sb.main, &all) {
        Ok((max, present)) => {
            let missing: Vec<&str> = all
                .iter()
                .zip(&present)
                .filter(|(_, p)| !**p)
                .map(|(v, _)| *v)
                .collect();
            report.check(
                "every 16.11.0 migration recorded",
                missing.is_empty(),
                if missing.is_empty() {
                    format!("{} versions, newest {max}", all.len())
                } else {
                    format!("missing {}", missing.join(", "))
                },
            );
        }
        Err(e) => report.check("every 16.11.0 migration recorded", false, e),
    }
    // The journal records the versions marked complete, in order.
    let journal = crate::journal::Journal::dir_for(&sb.layout.backup_dir).join("journal.jsonl");
    let entries = crate::journal::Journal::read(&journal).unwrap_or_default();
    let text: Vec<String> = entries
        .iter()
        .map(|e| serde_json::to_string(e).unwrap_or_default())
        .collect();
    let positions: Vec<Option<usize>> = marked
        .iter()
        .map(|v| {
            text.iter()
                .position(|l| l.contains("mark") && l.contains(v))
        })
        .collect();
    let in_order =
        positions.iter().all(|p| p.is_some()) && positions.windows(2).all(|w| w[0] < w[1]);
    report.check(
        "leftover migrations marked complete, in order, journaled",
        in_order,
        format!("expected {} marked", marked.join(" then ")),
    );
    private_files(sb, report);
}
