//! The sandbox's stand-in for `gitlab-rake gitlab:doctor:secrets`: like GitLab's, it
//! connects to the database Rails would use (database.yml, with `DATABASE_URL` /
//! `MAIN_DATABASE_URL` from the environment taking precedence, as Rails merges them),
//! tries every encrypted value of the models the sandbox has, and prints GitLab's lines
//! (`- <Model> failures: <n>`, `Total: <n> row(s) affected`). The sandbox's "cipher" is
//! its data generator's: a value decrypts when it has the form the generator writes
//! (a 64-hex-digit ciphertext with a 24-hex-digit IV).

use std::fmt::Write as _;

use crate::detect::{detect, DetectOptions};
use crate::pg::conn::ConnSpec;
use crate::root::HostRoot;

/// `(model, table, SQL counting the rows that do not decrypt)`.
const MODELS: &[(&str, &str, &str)] = &[
    (
        "Ci::PipelineVariable",
        "ci_pipeline_variables",
        "SELECT count(*) FROM ci_pipeline_variables \
         WHERE encrypted_value IS NOT NULL \
           AND (encrypted_value !~ '^[0-9a-f]{64}$' OR coalesce(encrypted_value_iv, '') !~ '^[0-9a-f]{24}$')",
    ),
    (
        "ApplicationSetting",
        "application_settings",
        "SELECT count(*) FROM application_settings \
         WHERE encrypted_ci_jwt_signing_key IS NOT NULL AND length(encrypted_ci_jwt_signing_key) = 0",
    ),
];

fn log(out: &mut String, msg: &str) {
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6f");
    let _ = writeln!(out, "I, [{now} #{}]  INFO -- : {msg}", std::process::id());
}

/// Run the check; returns the exit code and the output.
pub fn run(root: &HostRoot) -> (i32, String) {
    let mut out = String::new();
    let url = std::env::var("MAIN_DATABASE_URL")
        .ok()
        .or_else(|| std::env::var("DATABASE_URL").ok());
    let spec = match url {
        Some(u) => ConnSpec::from_url(&u).map_err(|e| e.to_string()),
        None => detect(root, &DetectOptions::default())
            .map_err(|e| e.to_string())
            .and_then(|inst| {
                inst.main_db()
                    .map(|d| d.spec.clone())
                    .ok_or_else(|| "no main database in database.yml".to_string())
            }),
    };
    let mut client = match spec.and_then(|s| s.connect().map_err(|e| e.to_string())) {
        Ok(c) => c,
        Err(e) => {
            let _ = writeln!(
                out,
                "rake aborted!\nActiveRecord::ConnectionNotEstablished: {e}"
            );
            return (1, out);
        }
    };
    log(&mut out, "Checking encrypted values in the database");
    let mut total = 0i64;
    for (model, table, sql) in MODELS {
        let exists = client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[table])
            .map(|r| r.get::<_, bool>(0))
            .unwrap_or(false);
        if !exists {
            continue;
        }
        match client.query_one(*sql, &[]) {
            Ok(r) => {
                let n: i64 = r.get(0);
                total += n;
                log(&mut out, &format!("- {model} failures: {n}"));
            }
            Err(e) => {
                let _ = writeln!(out, "rake aborted!\n{model}: {e}");
                return (1, out);
            }
        }
    }
    log(&mut out, &format!("Total: {total} row(s) affected"));
    log(&mut out, "Done!");
    (0, out)
}
