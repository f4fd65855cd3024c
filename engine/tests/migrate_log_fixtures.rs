//! The migrate-log parser on real-shaped logs (tests/fixtures/migrate-logs): Omnibus logs,
//! `gitlab-ctl reconfigure` output, docker logs, colour codes, CRLF, timestamps, multi-db.

use std::path::PathBuf;

use rewind_engine::migrate::log::{parse_file, ErrorKind, LogReport, ObjectKind};

fn fixture(name: &str) -> LogReport {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/migrate-logs")
        .join(name);
    parse_file(&p).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[track_caller]
fn check(
    r: &LogReport,
    version: &str,
    name: &str,
    db: Option<&str>,
    kind: ErrorKind,
    obj: (ObjectKind, &str, Option<&str>),
) {
    let f = r.first_failure().expect("a failure");
    let m = f.migration.as_ref().expect("migration named");
    assert_eq!((m.version.as_str(), m.name.as_str()), (version, name));
    assert_eq!(f.database.as_deref(), db);
    let e = f.error.as_ref().expect("PG error");
    assert_eq!(e.kind, kind);
    let o = e.object.as_ref().expect("object");
    assert_eq!((o.kind, o.name.as_str(), o.table.as_deref()), obj);
}

#[test]
fn issue_example_with_statement_and_backtrace() {
    let r = fixture("issue-example.log");
    check(
        &r,
        "20151103134857",
        "CreateLfsObjects",
        None,
        ErrorKind::DuplicateTable,
        (ObjectKind::Relation, "lfs_objects", None),
    );
    let f = r.first_failure().unwrap();
    let e = f.error.as_ref().unwrap();
    assert_eq!(e.message, "relation \"lfs_objects\" already exists");
    let stmt = e.statement.as_deref().unwrap();
    assert!(stmt.starts_with("CREATE TABLE \"lfs_objects\""), "{stmt}");
    assert!(stmt.ends_with("\"updated_at\" timestamp)"), "{stmt}");
    assert_eq!(f.operations[0].text, "-- create_table(:lfs_objects)");
    assert_eq!(r.failures.len(), 1);
}

#[test]
fn colour_codes_and_crlf() {
    let r = fixture("colour-crlf-duplicate-column.log");
    check(
        &r,
        "20200803125340",
        "AddPagesDomainScope",
        None,
        ErrorKind::DuplicateColumn,
        (ObjectKind::Column, "scope", Some("pages_domains")),
    );
    let f = r.first_failure().unwrap();
    let ops: Vec<_> = f.operations.iter().map(|o| o.op.as_str()).collect();
    assert_eq!(ops, ["transaction_open?", "add_column"]);
    assert_eq!(f.operations[1].column_type.as_deref(), Some("integer"));
    assert!(!f.error.as_ref().unwrap().message.contains('\x1b'));
    assert!(!f.error.as_ref().unwrap().message.ends_with('\r'));
    // "Caused by:" repeats the error; still one failure.
    assert_eq!(r.failures.len(), 1);
}

#[test]
fn ci_database_from_multi_db_prefixes() {
    let r = fixture("multi-db-ci-prefixed.log");
    check(
        &r,
        "20231017090012",
        "CreateCiJobAnnotations",
        Some("ci"),
        ErrorKind::DuplicateTable,
        (ObjectKind::Relation, "p_ci_job_annotations", None),
    );
    assert_eq!(r.migrated.len(), 1);
    assert_eq!(r.migrated[0].version, "20231016113101");
    let f = r.first_failure().unwrap();
    assert_eq!(
        f.operations[0].table.as_deref(),
        Some("p_ci_job_annotations")
    );
}

#[test]
fn ci_database_from_the_configure_task() {
    let r = fixture("configure-ci-task.log");
    check(
        &r,
        "20240510101500",
        "AddPartitionIdToCiBuildNeeds",
        Some("ci"),
        ErrorKind::DuplicateColumn,
        (ObjectKind::Column, "partition_id", Some("ci_build_needs")),
    );
    assert_eq!(r.migrated.len(), 1);
}

#[test]
fn no_failure_says_so() {
    let r = fixture("no-failure.log");
    assert!(r.succeeded());
    assert!(r.first_failure().is_none());
    assert_eq!(r.migrated.len(), 2);
    assert!(r.unfinished.is_none());
    assert!(
        r.summary().contains("no failed migration"),
        "{}",
        r.summary()
    );
}

#[test]
fn two_failures_report_the_first_and_timestamps_are_tolerated() {
    let r = fixture("two-failures-timestamps.log");
    assert_eq!(r.failures.len(), 2);
    check(
        &r,
        "20230724164745",
        "AddNamespaceIdToAuditEvents",
        None,
        ErrorKind::DuplicateColumn,
        (
            ObjectKind::Column,
            "namespace_id",
            Some("audit_events_streaming_headers"),
        ),
    );
    let second = &r.failures[1];
    assert_eq!(second.version(), Some("20230801120000"));
    assert_eq!(second.kind(), ErrorKind::DuplicateTable);
    assert!(r.summary().contains("2 failures"), "{}", r.summary());
}

#[test]
fn newer_rails_wording_and_logger_prefixes() {
    let r = fixture("newer-rails-wording.log");
    check(
        &r,
        "20250115103000",
        "CreateDuoWorkflowsCheckpoints",
        None,
        ErrorKind::DuplicateTable,
        (ObjectKind::Relation, "duo_workflows_checkpoints", None),
    );
    let e = r.first_failure().unwrap().error.as_ref().unwrap();
    assert_eq!(
        e.message,
        "relation \"duo_workflows_checkpoints\" already exists"
    );
}

#[test]
fn gitlab_ctl_reconfigure_output() {
    let r = fixture("reconfigure-output.log");
    check(
        &r,
        "20151118162244",
        "AddCiRunnerLocked",
        None,
        ErrorKind::DuplicateColumn,
        (ObjectKind::Column, "locked", Some("ci_runners")),
    );
    let e = r.first_failure().unwrap().error.as_ref().unwrap();
    assert_eq!(
        e.statement.as_deref(),
        Some("ALTER TABLE \"ci_runners\" ADD \"locked\" boolean DEFAULT 'f' NOT NULL")
    );
}

#[test]
fn docker_logs_without_a_migrating_line_take_the_version_from_the_backtrace() {
    let r = fixture("docker-compose-no-migrating-line.log");
    check(
        &r,
        "20151103134857",
        "CreateLfsObjects",
        None,
        ErrorKind::DuplicateTable,
        (ObjectKind::Relation, "lfs_objects", None),
    );
    let f = r.first_failure().unwrap();
    assert!(f.error_text.is_none(), "{:?}", f.error_text);
    assert!(f
        .error
        .as_ref()
        .unwrap()
        .statement
        .as_deref()
        .unwrap()
        .ends_with("\"updated_at\" timestamp)"));
}

#[test]
fn unique_violation_with_detail() {
    let r = fixture("unique-violation.log");
    let f = r.first_failure().unwrap();
    assert_eq!(f.version(), Some("20230807083334"));
    let e = f.error.as_ref().unwrap();
    assert_eq!(e.kind, ErrorKind::UniqueViolation);
    assert_eq!(e.detail.as_deref(), Some("Key (id)=(9) already exists."));
    assert_eq!(
        e.object.as_ref().unwrap().name,
        "postgres_async_foreign_key_validations_pkey"
    );
}

#[test]
fn old_pg_error_class_is_classified_by_message() {
    let r = fixture("old-pg-error.log");
    check(
        &r,
        "20140313092127",
        "MigrateAlreadyImportedProjects",
        None,
        ErrorKind::DuplicateColumn,
        (ObjectKind::Column, "import_status", Some("projects")),
    );
    assert_eq!(
        r.first_failure().unwrap().error.as_ref().unwrap().class,
        "Error"
    );
}
