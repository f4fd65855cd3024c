//! The drill's stand-in for the `gitlab-rake` checks run after a restore, against the
//! sandbox host, with GitLab's output formats:
//!
//! - `gitlab:doctor:secrets [VERBOSE=1]`: the sandbox's encrypted columns checked against
//!   the live `gitlab-secrets.json` ([`crate::sandbox::secrets`]), printed through a
//!   Logger-format line per model, `Total: N row(s) affected`, `Done!`;
//! - `gitlab:check SANITIZE=true`: the database answers, `schema_migrations` is filled,
//!   the secrets file and `gitlab.rb` are there and 0600, the file components exist;
//! - `gitlab:artifacts:check`, `gitlab:lfs:check`, `gitlab:uploads:check`: every file of the
//!   component read to its end ("Checking integrity of ...", "- 1..N: Failures: F",
//!   "Done!");
//! - `gitlab:shell:setup force=yes`: rewrites `authorized_keys` from nothing (the sandbox
//!   has no SSH keys), as GitLab's does with no keys.
//!
//! Exit codes as GitLab's tasks: 0, or 1 with `rake aborted!`.

use std::fmt::Write as _;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use chrono::Utc;

use crate::detect::{detect, DetectOptions};
use crate::root::HostRoot;
use crate::sandbox::secrets;

fn logger(level: char, msg: &str) -> String {
    let name = if level == 'D' { "DEBUG" } else { " INFO" };
    format!(
        "{level}, [{} #{}] {name} -- : {msg}\n",
        Utc::now().format("%Y-%m-%dT%H:%M:%S%.6f"),
        std::process::id()
    )
}

/// The database Rails would use: `MAIN_DATABASE_URL` / `DATABASE_URL` from the
/// environment when set (Rails merges them over database.yml; the restore test points the
/// checks at its throwaway cluster this way), else database.yml's main connection.
fn connect(root: &HostRoot) -> Result<postgres::Client, String> {
    let url = std::env::var("MAIN_DATABASE_URL")
        .ok()
        .or_else(|| std::env::var("DATABASE_URL").ok());
    let spec = match url {
        Some(u) => crate::pg::conn::ConnSpec::from_url(&u).map_err(|e| e.to_string())?,
        None => {
            let inst = detect(root, &DetectOptions::default()).map_err(|e| e.to_string())?;
            inst.main_db()
                .ok_or("no main database in database.yml")?
                .spec
                .clone()
        }
    };
    spec.connect()
        .map_err(|e| format!("ActiveRecord::ConnectionNotEstablished: {e}"))
}

/// `gitlab:doctor:secrets`.
fn doctor_secrets(root: &HostRoot, verbose: bool) -> (i32, String) {
    let mut out = logger('I', "Checking encrypted values in the database");
    // GitLab cannot decrypt anything without the secrets: with no key, nothing decrypts.
    let key = secrets::db_key_base(root).unwrap_or_default();
    let mut c = match connect(root) {
        Ok(c) => c,
        Err(e) => return (1, format!("{out}rake aborted!\n{e}\n")),
    };
    let found = match secrets::undecryptable(&mut c, &key) {
        Ok(f) => f,
        Err(e) => {
            return (
                1,
                format!("{out}rake aborted!\nActiveRecord::StatementInvalid: {e}\n"),
            )
        }
    };
    let mut total = 0;
    for (model, column, ids) in found {
        total += ids.len();
        out.push_str(&logger('I', &format!("- {model} failures: {}", ids.len())));
        if verbose {
            for id in ids {
                out.push_str(&logger(
                    'D',
                    &format!(
                        "  - {model}[{id}]: {}",
                        column.trim_start_matches("encrypted_")
                    ),
                ));
            }
        }
    }
    out.push_str(&logger('I', &format!("Total: {total} row(s) affected")));
    out.push_str(&logger('I', "Done!"));
    (0, out)
}

fn mode_ok(p: &Path) -> Result<(), String> {
    let m = std::fs::symlink_metadata(p).map_err(|e| e.to_string())?;
    if !m.is_file() {
        return Err("not a regular file".into());
    }
    let mode = m.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!("mode {mode:o}, readable by others"));
    }
    Ok(())
}

/// `gitlab:check SANITIZE=true` (its sections, the sandbox's facts).
fn check(root: &HostRoot) -> (i32, String) {
    let mut out = String::from("Checking GitLab subtasks ...\n\nChecking GitLab App ...\n\n");
    let mut bad = 0;
    let mut line = |name: &str, r: Result<String, String>| match r {
        Ok(s) => {
            let _ = writeln!(out, "{name} ... {s}");
        }
        Err(e) => {
            bad += 1;
            let _ = writeln!(out, "{name} ... no\n  Try fixing it:\n  {e}");
        }
    };
    for f in [secrets::SECRETS, crate::detect::omnibus::GITLAB_RB] {
        line(
            &format!("{f} exists and is private"),
            mode_ok(&root.join(f)).map(|_| "yes".into()),
        );
    }
    match connect(root) {
        Ok(mut c) => {
            line("Database config exists", Ok("yes".into()));
            let n: Result<i64, String> = c
                .query_one("SELECT count(*) FROM schema_migrations", &[])
                .map(|r| r.get(0))
                .map_err(|e| e.to_string());
            line(
                "All migrations up?",
                n.and_then(|n| {
                    if n > 0 {
                        Ok("yes".into())
                    } else {
                        Err("schema_migrations is empty: sudo gitlab-rake db:migrate".into())
                    }
                }),
            );
        }
        Err(e) => line("Database config exists", Err(e)),
    }
    for (name, dir) in crate::sandbox::host::COMPONENT_DIRS {
        let p = root.join(dir);
        line(
            &format!("{name} directory exists"),
            if p.is_dir() {
                Ok("yes".into())
            } else {
                Err(format!("create {dir}"))
            },
        );
    }
    out.push_str("\nChecking GitLab App ... Finished\n\nChecking GitLab subtasks ... Finished\n");
    (if bad == 0 { 0 } else { 1 }, out)
}

/// `gitlab:{artifacts,lfs,uploads}:check`: every file of the component read.
fn integrity(root: &HostRoot, title: &str, component: &str) -> (i32, String) {
    let mut out = format!("Checking integrity of {title}\n");
    let Some((_, dir)) = crate::sandbox::host::COMPONENT_DIRS
        .iter()
        .find(|(n, _)| *n == component)
    else {
        return (1, format!("rake aborted!\nno {component} directory\n"));
    };
    let mut files = Vec::new();
    let mut todo = vec![root.join(dir)];
    while let Some(d) = todo.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => todo.push(e.path()),
                Ok(t) if !t.is_symlink() => files.push(e.path()),
                _ => {}
            }
        }
    }
    files.sort();
    let mut failures = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let r = std::fs::File::open(f).and_then(|mut h| {
            let mut b = [0u8; 65536];
            while h.read(&mut b)? > 0 {}
            Ok(())
        });
        if let Err(e) = r {
            failures.push(format!("  - {title}: {}: #<Errno: {e}>", i + 1));
        }
    }
    if files.is_empty() {
        out.push_str("- no files\n");
    } else {
        let _ = writeln!(out, "- 1..{}: Failures: {}", files.len(), failures.len());
        for f in &failures {
            let _ = writeln!(out, "{f}");
        }
    }
    out.push_str("Done!\n");
    (0, out)
}

/// `gitlab:shell:setup force=yes`: the sandbox has no SSH keys, so the file is emptied.
fn shell_setup(root: &HostRoot) -> (i32, String) {
    let p = root.join(crate::recovery::postcheck::AUTHORIZED_KEYS);
    if let Some(d) = p.parent() {
        let _ = std::fs::create_dir_all(d);
    }
    match std::fs::write(&p, "") {
        Ok(()) => (0, String::new()),
        Err(e) => (1, format!("rake aborted!\n{}: {e}\n", p.display())),
    }
}

/// Run `gitlab-rake <args>` (not `db:migrate`, which is [`super::standin_migrate`]).
pub fn run(root: &HostRoot, args: &[String]) -> (i32, String) {
    let task = args.first().map(String::as_str).unwrap_or("");
    let has = |a: &str| args.iter().skip(1).any(|x| x == a);
    match task {
        "gitlab:doctor:secrets" => doctor_secrets(root, has("VERBOSE=1") || has("VERBOSE=true")),
        "gitlab:check" => check(root),
        "gitlab:artifacts:check" => integrity(root, "Job artifacts", "artifacts"),
        "gitlab:lfs:check" => integrity(root, "LFS objects", "lfs"),
        "gitlab:uploads:check" => integrity(root, "Uploads", "uploads"),
        "gitlab:shell:setup" if has("force=yes") => shell_setup(root),
        _ => (
            1,
            format!(
                "gitlab-rake {}: not supported by the drill's stand-in\n",
                args.join(" ")
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recovery::postcheck::parse_doctor_secrets;
    use crate::sandbox::{build_sandbox, SandboxSpec};

    #[test]
    fn doctor_secrets_finds_a_wrong_secrets_file_in_gitlabs_format() {
        let cluster = crate::pg::cluster::TempCluster::start().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let sb = build_sandbox(&cluster, &SandboxSpec::new(dir.path())).unwrap();
        let root = &sb.layout.root;
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (code, out) = run(root, &args(&["gitlab:doctor:secrets", "VERBOSE=1"]));
        assert_eq!(code, 0, "{out}");
        let d = parse_doctor_secrets(&out);
        assert!(d.ok(), "{out}");
        assert_eq!(d.models[0].model, "Ci::PipelineVariable");

        // Another host's secrets: every sealed row fails, named with VERBOSE=1.
        let rows: i64 = sb
            .main
            .connect()
            .unwrap()
            .query_one("SELECT count(*) FROM ci_pipeline_variables", &[])
            .unwrap()
            .get(0);
        assert!(rows > 0);
        crate::sandbox::secrets::write_secrets(root, "another host").unwrap();
        let (code, out) = run(root, &args(&["gitlab:doctor:secrets", "VERBOSE=1"]));
        assert_eq!(code, 0, "{out}");
        let d = parse_doctor_secrets(&out);
        assert!(!d.ok());
        assert_eq!(d.total, Some(rows as u64));
        assert_eq!(d.models[0].failures, rows as u64);
        assert_eq!(d.models[0].rows.len(), rows as usize);
        assert_eq!(d.models[0].rows[0].1, vec!["value".to_string()]);
        // Without VERBOSE: the counts only.
        let (_, out) = run(root, &args(&["gitlab:doctor:secrets"]));
        assert!(parse_doctor_secrets(&out).models[0].rows.is_empty());
        assert!(out.lines().all(|l| l.contains(" INFO -- : ")), "{out}");

        // The integrity checks read every file; gitlab:check finds the private files.
        let (code, out) = run(root, &args(&["gitlab:uploads:check"]));
        assert_eq!(code, 0);
        assert!(
            out.starts_with("Checking integrity of Uploads\n- 1..") && out.contains("Failures: 0"),
            "{out}"
        );
        let (code, out) = run(root, &args(&["gitlab:check", "SANITIZE=true"]));
        assert_eq!(code, 0, "{out}");
        std::fs::set_permissions(
            root.join(crate::sandbox::secrets::SECRETS),
            std::os::unix::fs::PermissionsExt::from_mode(0o644),
        )
        .unwrap();
        let (code, out) = run(root, &args(&["gitlab:check", "SANITIZE=true"]));
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("readable by others"), "{out}");
    }
}
