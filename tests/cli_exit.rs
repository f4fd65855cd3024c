//! The exit codes every command uses (README "Exit codes") and errors as one line or, with
//! `--json`, as a JSON document on stdout.

use std::process::{Command, Output};

fn rewind(root: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rewind"))
        .arg("--root")
        .arg(root)
        .args(args)
        .env_remove("REWIND_DATABASE_URL")
        .output()
        .unwrap()
}

#[test]
fn no_gitlab_found_is_something_to_act_on_not_a_success() {
    let empty = tempfile::tempdir().unwrap();
    let out = rewind(empty.path(), &["detect"]);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    let out = rewind(empty.path(), &["--json", "detect"]);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    let _: serde_json::Value = serde_json::from_slice(&out.stdout).expect("detect's JSON");
}

#[test]
fn a_read_only_command_that_fails_changed_nothing_and_says_so_in_one_line() {
    let empty = tempfile::tempdir().unwrap();
    let out = rewind(empty.path(), &["inspect", "nonexistent_backup"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("rewind: error: "), "{err}");
    assert!(
        !err.contains("Location:") && !err.contains("Backtrace"),
        "{err}"
    );

    let out = rewind(empty.path(), &["--json", "inspect", "nonexistent_backup"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON error");
    assert_eq!(doc["error"]["kind"], "refused");
    assert_eq!(doc["error"]["exit_code"], 3);
    assert!(doc["error"]["message"]
        .as_str()
        .unwrap()
        .contains("backup directory does not exist"));

    // --verbose prints the whole chain.
    let out = rewind(
        empty.path(),
        &["--verbose", "inspect", "nonexistent_backup"],
    );
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(!String::from_utf8_lossy(&out.stderr).starts_with("rewind: error: "));
}

#[test]
fn a_usage_error_is_code_2() {
    let empty = tempfile::tempdir().unwrap();
    let out = rewind(empty.path(), &["restore", "--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    // The wizard's own options before a subcommand: said, not silently ignored.
    for args in [
        &["--in-place", "detect"][..],
        &["--db-admin", "gitlab-psql", "detect"][..],
    ] {
        let out = rewind(empty.path(), args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("are the wizard's"),
            "{out:?}"
        );
    }
}

#[test]
fn a_read_only_command_ends_quietly_when_its_reader_goes_away() {
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_rewind"))
        .args(["drill", "--list"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The reader closes before reading anything (`rewind ... | head -0`).
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.is_empty(), "{err}");
}
