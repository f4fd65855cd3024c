//! `rewind drill --auto`, the README's first command, for every scenario: the built binary
//! builds a sandbox with a real PostgreSQL cluster, recovers it, checks the outcome, and
//! leaves nothing behind.

use std::process::Command;

/// The sandbox directory the drill names in its report (`.../rewind-drill-XXXX/...`).
fn sandbox_dir(report: &str) -> Option<std::path::PathBuf> {
    let at = report.find("rewind-drill-")?;
    let start = report[..at]
        .rfind(char::is_whitespace)
        .map(|i| i + 1)
        .unwrap_or(0);
    let end = at + report[at..].find('/')?;
    Some(std::path::PathBuf::from(&report[start..end]))
}

fn run_scenario(name: &str, must_mention: &[&str]) -> String {
    run_scenario_with(name, &[], must_mention)
}

fn run_scenario_with(name: &str, extra: &[&str], must_mention: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_rewind"))
        .args(["drill", "--auto", "--scenario", name])
        .args(extra)
        .env("NO_COLOR", "1")
        .output()
        .expect("run rewind drill");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "drill {name} failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("DRILL PASSED"), "{stdout}");
    for m in must_mention {
        assert!(
            stdout.contains(m),
            "report of {name} lacks `{m}`:\n{stdout}"
        );
    }
    let dir = sandbox_dir(&stdout).expect("the report names the sandbox");
    assert!(!dir.exists(), "drill {name} left {} behind", dir.display());
    format!("{stdout}{stderr}")
}

#[test]
fn failed_upgrade_is_recovered() {
    run_scenario(
        "failed-upgrade",
        &[
            "main database equals the backup",
            "installed version is the backup's",
            "package held (release: ",
            "no table of the failed upgrade left",
            "uploads files equal the backup",
            "restored /etc/gitlab/gitlab-secrets.json, /etc/gitlab/gitlab.rb",
            "gitlab:doctor:secrets: every encrypted value decrypts",
            "failed upgrade's databases kept beside (no snapshot needed)",
            "_before_rewind_",
            "pass kept database equals the failed upgrade's state",
        ],
    );
}

#[test]
fn failed_upgrade_is_recovered_in_place() {
    run_scenario_with(
        "failed-upgrade",
        &["--in-place"],
        &[
            "main database equals the backup",
            "safety snapshots taken before the package step",
        ],
    );
}

#[test]
fn corrupt_backup_is_refused_and_the_older_one_used() {
    run_scenario(
        "corrupt-backup",
        &[
            "corrupt backup refused before anything changed",
            "main database equals the backup",
        ],
    );
}

#[test]
fn version_mismatch_is_refused_and_nothing_changes() {
    run_scenario(
        "version-mismatch",
        &[
            "preflight fails the version check before any service is touched",
            "rollback to a version the repository lacks is refused",
            "database unchanged",
        ],
    );
}

#[test]
fn leftover_tables_are_repaired_by_marking_migrations() {
    run_scenario(
        "leftover-tables",
        &[
            "leftover migrations marked complete, in order, journaled",
            // The wizard's default command: the sandbox's gitlab-rake stand-in.
            "/opt/gitlab/bin/gitlab-rake db:migrate` succeeded",
        ],
    );
}

#[test]
fn decomposed_main_and_ci_are_both_restored() {
    run_scenario("decomposed", &["ci database equals the backup"]);
}

/// CE 16.10.3 upgraded to EE 16.11.0, the backup made on CE: preflight says the editions
/// differ, the rollback installs gitlab-ce (the backup's edition, removing gitlab-ee), and
/// the restore passes GitLab's version check.
#[test]
fn edition_change_installs_the_backups_edition() {
    let out = run_scenario(
        "edition-change",
        &[
            "the editions differ: gitlab-ee is installed, the backup was made on GitLab CE 16.10.3",
            "roll back gitlab-ce to 16.10.3-ce.0",
            "installed 16.10.3, backup 16.10.3",
        ],
    );
    assert!(out.contains("unhold gitlab-ce"), "{out}");
}

/// The sandbox's `gitlab-rake` stand-in is what the wizard's default migrate command finds:
/// `db:migrate` execs `rewind drill-migrate` on that root (its output and exit code pass
/// through), any other task is refused. The root's name has a quote and a space: the
/// script quotes the paths it was written with.
#[test]
fn the_gitlab_rake_stand_in_is_the_default_migrate_command() {
    use rewind_engine::migrate::repair::default_migrate_cmd;
    use rewind_engine::packages::sandbox_repo::write_gitlab_rake_standin;
    use rewind_engine::root::HostRoot;

    let dir = tempfile::Builder::new()
        .prefix("rewind it's a root ")
        .tempdir()
        .unwrap();
    let root = HostRoot::new(dir.path());
    let rake = write_gitlab_rake_standin(&root, std::path::Path::new(env!("CARGO_BIN_EXE_rewind")))
        .unwrap();
    let argv = default_migrate_cmd(&root);
    assert_eq!(argv[0], rake.as_os_str());
    assert_eq!(argv[1..], ["db:migrate"]);

    // No database.yml under this root: the stand-in migrate fails the way rake does, and
    // the failure comes back through the script.
    let out = Command::new(&argv[0]).args(&argv[1..]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.starts_with("rake aborted!"), "{stdout}");
    // What runs is `rewind --root <this root> drill-migrate`.
    let direct = Command::new(env!("CARGO_BIN_EXE_rewind"))
        .arg("--root")
        .arg(dir.path())
        .arg("drill-migrate")
        .output()
        .unwrap();
    assert_eq!(direct.stdout, out.stdout);

    // The checks after a restore run the drill's stand-in tasks; others are refused.
    let other = Command::new(&rake)
        .args(["gitlab:shell:check"])
        .output()
        .unwrap();
    assert_eq!(other.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&other.stderr)
        .contains("gitlab-rake gitlab:shell:check: not supported by the drill's stand-in"));
}

#[test]
fn list_describes_every_scenario_and_bad_names_are_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_rewind"))
        .args(["drill", "--list"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for s in [
        "failed-upgrade",
        "leftover-tables",
        "corrupt-backup",
        "version-mismatch",
        "decomposed",
    ] {
        assert!(text.contains(s), "{text}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_rewind"))
        .args(["drill", "--auto", "--scenario", "nope"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--list"));
}

/// Ctrl-C (SIGINT) while the sandbox is being built: the drill stops at the next step,
/// exits non-zero, and removes its directory and stops its PostgreSQL.
#[test]
fn interrupted_drill_leaves_nothing_behind() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let mut child = Command::new(env!("CARGO_BIN_EXE_rewind"))
        .args(["drill", "--auto", "--scale", "3"])
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start rewind drill");
    let stderr = child.stderr.take().unwrap();
    let mut sandbox = None;
    let mut lines = BufReader::new(stderr).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(p) = line.strip_prefix("drill: sandbox in ") {
            sandbox = Some(std::path::PathBuf::from(p.trim()));
        }
        if line.contains("load GitLab 16.10.3 database") {
            break;
        }
    }
    let sandbox = sandbox.expect("the drill names its sandbox");
    assert!(sandbox.exists());
    nix_kill(child.id());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "an interrupted drill must not pass: {rest:?}"
    );
    assert!(!sandbox.exists(), "{} left behind", sandbox.display());
    // No server of that sandbox still runs.
    let ours = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(&*sandbox.to_string_lossy()))
        .count();
    assert_eq!(ours, 0, "a process of the interrupted drill still runs");
}

fn nix_kill(pid: u32) {
    let status = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}
