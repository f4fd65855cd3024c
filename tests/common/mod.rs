//! Helpers the end-to-end tests share: the binary's output as text or JSON, PostgreSQL's
//! client tools on a test cluster, and what a database holds.
#![allow(dead_code)] // each test crate uses its own part of it

use std::ffi::OsStr;
use std::process::Output;

use rewind_engine::pg::cluster::TempCluster;
use rewind_engine::sandbox::compare::{content_fingerprint, normalize_schema, DbFingerprint};

/// Standard output then standard error, as text.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Standard output as JSON (the test fails with the whole output when it is not).
pub fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(o)))
}

/// Run one of the cluster's client tools; it must succeed.
pub fn run_pg(c: &TempCluster, tool: &str, args: &[&str]) -> Output {
    let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    let out = c.command(tool, &args).output().unwrap();
    assert!(
        out.status.success(),
        "{tool}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `pg_dump -s` of `db`, normalised for comparison.
pub fn schema_of(c: &TempCluster, db: &str) -> String {
    normalize_schema(&String::from_utf8_lossy(
        &run_pg(c, "pg_dump", &["-s", db]).stdout,
    ))
}

/// Every table's rows, materialized views and sequences of `db`.
pub fn data_of(c: &TempCluster, db: &str) -> DbFingerprint {
    content_fingerprint(&mut c.connect(db).unwrap()).unwrap()
}

/// The built binary on a sandbox root: `rewind --root ROOT ARGS...`, no stdin, no colour,
/// no database URL from the environment.
pub fn rewind(root: &std::path::Path, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_rewind"))
        .arg("--root")
        .arg(root)
        .args(args)
        .stdin(std::process::Stdio::null())
        .env("NO_COLOR", "1")
        .env_remove("REWIND_DATABASE_URL")
        .output()
        .unwrap()
}
