//! `rewind triage` through the built binary on a sandbox host (an Omnibus-like tree, a
//! 16.10.3 backup, a real cluster): before and after a failed upgrade to 16.11.0, and with
//! each class's real-shaped output (`tests/fixtures/triage/`).

use std::path::{Path, PathBuf};
use std::process::Command;

use rewind_engine::pg::cluster::TempCluster;
use rewind_engine::root::HostRoot;
use rewind_engine::sandbox::{self, upgrade, SandboxSpec};

mod common;
use common::{rewind, text};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/triage")
        .join(name)
}

fn json(root: &Path, args: &[&str]) -> (Option<i32>, serde_json::Value) {
    let mut a = vec!["--json", "triage"];
    a.extend_from_slice(args);
    let out = rewind(root, &a);
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    (out.status.code(), v)
}

#[test]
fn triage_before_and_after_a_failed_upgrade_and_for_each_class() {
    let cluster = TempCluster::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sb = sandbox::build_sandbox(&cluster, &SandboxSpec::new(dir.path())).unwrap();
    let root = dir.path();

    // Nothing upgraded, no failed log: nothing failed, exit 0.
    let (code, v) = json(root, &[]);
    assert_eq!(code, Some(0), "{v:#}");
    assert_eq!(v["class"], "no_failure");
    assert_eq!(v["decision"], "nothing_failed");
    assert_eq!(v["upgrade"]["failed_upgrade"], false, "{v:#}");
    assert_eq!(v["upgrade"]["backup_id"], sb.backup_id.as_str());
    assert_eq!(v["upgrade"]["newer_migrations"][0]["count"], 0, "{v:#}");

    // The failed upgrade: 16.11.0 installed, five migrations recorded, a failed log
    // (statement timeout) written after the backup.
    upgrade::apply_failed_upgrade(&mut sb.main.connect().unwrap()).unwrap();
    upgrade::mark_upgraded(&HostRoot::new(root)).unwrap();
    let (code, v) = json(root, &[]);
    assert_eq!(code, Some(4), "{v:#}");
    let u = &v["upgrade"];
    assert_eq!(u["failed_upgrade"], true, "{v:#}");
    assert_eq!(u["installed_newer"], true);
    assert_eq!(u["log_newer"], true);
    assert_eq!(
        u["newer_migrations"][0]["count"],
        upgrade::UPGRADE_MIGRATIONS.len()
    );
    assert_eq!(
        u["newer_migrations"][0]["newest"],
        upgrade::upgraded_db_version()
    );
    assert_eq!(v["class"], "other");
    assert_eq!(v["decision"], "rollback_needed");
    let out = rewind(root, &["triage"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(4), "{t}");
    assert!(t.contains("Verdict: a rollback is needed"), "{t}");
    assert!(
        t.contains("GitLab 16.11.0-ee is installed, the backup is 16.10.3-ee"),
        "{t}"
    );
    assert!(t.contains("PG::QueryCanceled"), "{t}");
    // After the verdict on GitLab's failure: the next step for this Omnibus host.
    let verdict = &t[t.find("Verdict:").unwrap()..];
    assert!(
        verdict.contains("Omnibus: `rewind rollback --to 16.10.3-ee` installs"),
        "{t}"
    );
    assert!(!verdict.contains("bundle exec"), "{t}");
    assert!(
        v["hint"]
            .as_str()
            .is_some_and(|h| h.contains("rewind rollback --to 16.10.3-ee")),
        "{v:#}"
    );

    // Each class's output, given with --log.
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "bbm-unfinished.log",
            "unfinished_background_migration",
            "fix_forward",
            "1. sudo gitlab-rake gitlab:background_migrations:finalize[BackfillProjectNamespaceDetails,projects,id,'[]']",
        ),
        (
            "bbm-unfinished-syslog.log",
            "unfinished_background_migration",
            "fix_forward",
            "gitlab:background_migrations:finalize[ProjectNamespaces::BackfillProjectNamespaces,projects,id,'[null\\,\"up\"]']",
        ),
        (
            "unique-index-duplicated.log",
            "data_problem",
            "fix_forward",
            "evidence:  row: (name) = (bug) is duplicated",
        ),
        (
            "reconfigure-removed-config.log",
            "configuration",
            "fix_forward",
            "evidence:  setting: unicorn['worker_processes'] (removed in 14.0)",
        ),
        (
            "pg-dump-version-mismatch.log",
            "postgresql_version",
            "fix_forward",
            "evidence:  pg_dump 14.11 cannot dump a PostgreSQL 16.2 server",
        ),
        (
            "pg-unsupported-version.log",
            "postgresql_version",
            "fix_forward",
            "Verdict: fix forward: upgrade PostgreSQL to 13 or newer",
        ),
    ];
    for (file, class, decision, shown) in cases {
        let log = fixture(file);
        let log = log.to_str().unwrap();
        let (code, v) = json(root, &["--log", log]);
        assert_eq!(code, Some(4), "{file}: {v:#}");
        assert_eq!(v["class"], *class, "{file}: {v:#}");
        assert_eq!(v["decision"], *decision, "{file}: {v:#}");
        assert!(
            v["verdict"].as_str().unwrap().starts_with("fix forward: "),
            "{file}: {v:#}"
        );
        let out = rewind(root, &["triage", "--log", log]);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(4), "{t}");
        assert!(t.contains(shown), "{file}: {t}");
    }

    // Duplicate objects: the repair path's assessment against the live database decides.
    // The upgrade's zoekt_replicas is there with the migration's shape: mark it.
    let log = fixture("duplicate-table.log");
    let (code, v) = json(root, &["--log", log.to_str().unwrap()]);
    assert_eq!(code, Some(4), "{v:#}");
    assert_eq!(v["class"], "duplicate_objects", "{v:#}");
    assert_eq!(v["decision"], "fix_forward", "{v:#}");
    assert!(
        v["assessment"]
            .as_str()
            .unwrap()
            .starts_with("mark complete"),
        "{v:#}"
    );
    // A column there with another type than the migration gives it: marking would be
    // wrong, and the schema cannot be readily repaired.
    let mut db = sb.main.connect().unwrap();
    db.batch_execute("CREATE TABLE ci_runners (id bigserial PRIMARY KEY, locked text)")
        .unwrap();
    let log = fixture("../migrate-logs/reconfigure-output.log");
    let (code, v) = json(root, &["--log", log.to_str().unwrap()]);
    assert_eq!(code, Some(4), "{v:#}");
    assert_eq!(v["class"], "duplicate_objects", "{v:#}");
    assert_eq!(v["decision"], "rollback_needed", "{v:#}");
    assert!(
        v["assessment"].as_str().unwrap().starts_with("do not mark"),
        "{v:#}"
    );
    // Gone since: the migration can run again.
    db.batch_execute("DROP TABLE zoekt_replicas CASCADE")
        .unwrap();
    let log = fixture("duplicate-table.log");
    let (code, v) = json(root, &["--log", log.to_str().unwrap()]);
    assert_eq!(
        (code, &v["decision"]),
        (Some(4), &"fix_forward".into()),
        "{v:#}"
    );
    assert_eq!(v["commands"][0], "sudo gitlab-rake db:migrate", "{v:#}");

    // Stdin, and a log that shows no failure: exit 0.
    let out = Command::new(env!("CARGO_BIN_EXE_rewind"))
        .arg("--root")
        .arg(root)
        .args(["triage", "--log", "-"])
        .stdin(std::fs::File::open(fixture("../migrate-logs/no-failure.log")).unwrap())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("Verdict: nothing failed"),
        "{}",
        text(&out)
    );

    // A log that cannot be read is an error that changed nothing: exit 3.
    let out = rewind(root, &["triage", "--log", "/nonexistent/migrate.log"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains("/nonexistent/migrate.log"),
        "{}",
        text(&out)
    );
}
