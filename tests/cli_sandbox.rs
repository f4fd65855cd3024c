//! `rewind sandbox` through the built binary: it refuses `/` and non-empty roots, and the
//! tree it builds is what `rewind detect`, `rewind backups` and `rewind inspect --verify`
//! read as a GitLab 16.10.3 host with a zstd backup, and after `--failed-upgrade` as a
//! 16.11.0 host whose backup no longer matches.

use std::process::{Command, Output};

fn rewind(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rewind"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run rewind")
}

fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON document")
}

#[test]
fn refuses_the_real_root_and_non_empty_directories() {
    let out = rewind(&["sandbox"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs --root DIR"));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keep-me"), "x").unwrap();
    let out = rewind(&["sandbox", "--root", dir.path().to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not empty"));
    assert_eq!(std::fs::read(dir.path().join("keep-me")).unwrap(), b"x");
}

#[test]
fn builds_a_host_the_other_commands_read() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let r = root.to_str().unwrap();
    let rep = json(&rewind(&[
        "sandbox",
        "--root",
        r,
        "--compression",
        "zstd",
        "--failed-upgrade",
        "--json",
    ]));
    let id = rep["backup_id"].as_str().unwrap().to_string();
    assert_eq!(id, "1713607872_2024_04_20_16.10.3-ee");
    assert!(rep["rows"].as_u64().unwrap() > 5_000);
    assert_eq!(rep["installed_version"], "16.11.0-ee");
    let log = rep["migrate_log"].as_str().unwrap();
    let log_text = std::fs::read_to_string(root.join(log.trim_start_matches('/'))).unwrap();
    assert!(log_text.contains("rake aborted!"));

    let det = json(&rewind(&["detect", "--root", r, "--json"]));
    assert_eq!(det["kind"], "omnibus");
    assert_eq!(det["package"], "gitlab-ee");

    let list = rewind(&["backups", "--root", r, "--json"]);
    let text = String::from_utf8_lossy(&list.stdout).to_string();
    assert!(
        list.status.success(),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );
    assert!(text.contains(&id) && text.contains("16.10.3-ee"), "{text}");

    let out = rewind(&["inspect", &id, "--root", r, "--verify"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("zstd"), "{text}");
}
