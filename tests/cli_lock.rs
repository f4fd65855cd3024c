//! One change to a host at a time: every command that changes the host refuses, naming the
//! holder and changing nothing, while another Rewind holds the host lock (a restore, a
//! package step, a repair...), through the built binary on a sandbox host.

use rewind_engine::recovery::lock;
use rewind_engine::root::HostRoot;

mod common;
use common::{rewind, text};

#[test]
fn changing_commands_refuse_while_another_recovery_holds_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let built = rewind(dir.path(), &["sandbox"]);
    assert!(built.status.success(), "{}", text(&built));
    let root = HostRoot::new(dir.path().to_path_buf());
    let held = lock::host(
        &root,
        "rewind restore --database-url postgresql://gitlab:hunter2@db/x",
    )
    .unwrap();
    let rows = dir.path().join("salvaged");
    let rows = rows.to_str().unwrap();
    let log = dir.path().join("db-migrate.log");
    std::fs::write(
        &log,
        "PG::DuplicateTable: ERROR:  relation \"ci_runner_taggings\" already exists\n",
    )
    .unwrap();
    let log = log.to_str().unwrap();
    let refused: &[&[&str]] = &[
        &["services", "stop", "--yes"],
        &["services", "start"],
        &["mark-migration", "20240101000000"],
        &["salvage", "--import", rows, "--yes"],
        // The engine's repair takes the lock before it marks or migrates anything.
        &["--json", "repair", "--log", log, "--yes"],
    ];
    for args in refused {
        let out = rewind(dir.path(), args);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {t}");
        assert!(
            t.contains("another Rewind recovery is running"),
            "{args:?}: {t}"
        );
        assert!(t.contains("rewind restore"), "{args:?}: {t}");
        assert!(!t.contains("hunter2"), "{args:?}: {t}");
    }
    // Nothing was journaled as begun by the refused commands.
    let journal = dir
        .path()
        .join("var/opt/gitlab/backups/rewind/journal.jsonl");
    let j = std::fs::read_to_string(&journal).unwrap_or_default();
    assert!(!j.contains("\"begin\""), "{j}");
    // Once the lock is released, the same command gets past it (here, to the sandbox's
    // missing gitlab-ctl).
    drop(held);
    let out = rewind(dir.path(), &["services", "stop", "--yes"]);
    assert!(
        !text(&out).contains("another Rewind recovery"),
        "{}",
        text(&out)
    );
}
