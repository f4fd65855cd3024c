//! `rewind rollback` against a sandbox root with real dpkg and apt: two real stand-in
//! `gitlab-ee` packages in a local apt repository, 16.11.0 installed in the sandbox's dpkg
//! database, and a `gitlab-ctl` that records its calls.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rewind_engine::packages::{self, sandbox_repo};
use rewind_engine::root::HostRoot;
use rewind_engine::version::GitLabVersion;

mod common;
use common::text;

fn v(s: &str) -> GitLabVersion {
    s.parse().unwrap()
}

fn rewind(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rewind"))
        .arg("--root")
        .arg(root)
        .arg("--no-color")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

/// Fingerprint of a host file: content and modification time.
fn fingerprint(p: &str) -> Option<(Vec<u8>, std::time::SystemTime)> {
    let md = fs::metadata(p).ok()?;
    Some((fs::read(p).ok()?, md.modified().ok()?))
}

struct Sandbox {
    _dir: tempfile::TempDir,
    root: PathBuf,
    calls: PathBuf,
}

fn sandbox() -> Sandbox {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let repo_dir = dir.path().join("repo");
    fs::create_dir_all(&root).unwrap();
    let host = HostRoot::new(&root);
    let repo = sandbox_repo::build_repo(&repo_dir, &[v("16.10.3-ee"), v("16.11.0-ee")]).unwrap();
    sandbox_repo::prepare_apt_root(&host, &repo).unwrap();
    sandbox_repo::dpkg_install(&host, repo.deb(&v("16.11.0-ee")).unwrap()).unwrap();
    write_pg_version(&host, "14");

    // The test's own gitlab-ctl: records each call with the GitLab version installed at
    // that moment, so the log shows when the package changed.
    let calls = dir.path().join("gitlab-ctl.calls");
    let version_file = host.join("/opt/gitlab/embedded/service/gitlab-rails/VERSION");
    let ctl = host.join("/opt/gitlab/bin/gitlab-ctl");
    fs::create_dir_all(ctl.parent().unwrap()).unwrap();
    fs::write(
        &ctl,
        format!(
            "#!/bin/sh\necho \"$* @$(cat '{}')\" >> '{}'\nexit 0\n",
            version_file.display(),
            calls.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&ctl, fs::Permissions::from_mode(0o755)).unwrap();
    Sandbox {
        _dir: dir,
        root,
        calls,
    }
}

#[test]
fn rolls_back_to_the_backup_version_in_the_sandbox_only() {
    let host_status = fingerprint("/var/lib/dpkg/status");
    let host_log = fingerprint("/var/log/dpkg.log");
    let sb = sandbox();
    let version_file = sb
        .root
        .join("opt/gitlab/embedded/service/gitlab-rails/VERSION");
    assert_eq!(fs::read_to_string(&version_file).unwrap(), "16.11.0-ee\n");

    // Detection sees 16.11.0 first.
    let o = rewind(&sb.root, &["detect"]);
    assert!(text(&o).contains("16.11.0-ee"), "{}", text(&o));

    // Non-terminal without --yes: prints the plan, changes nothing.
    let o = rewind(&sb.root, &["rollback", "--to", "16.10.3-ee"]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("stop puma"), "{out}");
    assert!(out.contains("gitlab-ee=16.10.3-ee.0"), "{out}");
    assert!(out.contains("--allow-downgrades"), "{out}");
    assert!(out.contains("Not run"), "{out}");
    assert!(out.contains("apt-mark"), "{out}");
    assert!(out.contains("PostgreSQL: PostgreSQL 14 data"), "{out}");
    assert_eq!(fs::read_to_string(&version_file).unwrap(), "16.11.0-ee\n");
    assert!(!sb.calls.exists());

    // --dry-run --json: the plan as data.
    let o = rewind(
        &sb.root,
        &["--json", "rollback", "--to", "16.10.3-ee", "--dry-run"],
    );
    let plan: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(plan["kind"], "package");
    assert_eq!(plan["install"]["version"]["raw"], "16.10.3-ee.0");
    let steps: Vec<&str> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        vec![
            "rollback.stop.puma",
            "rollback.stop.sidekiq",
            "rollback.install",
            "rollback.reconfigure"
        ]
    );

    // The safety snapshot before the package step needs the database: this host has no
    // database.yml, so the rollback is refused before anything changes.
    let o = rewind(&sb.root, &["rollback", "--to", "16.10.3-ee", "--yes"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(3), "{out}");
    assert!(out.contains("--no-snapshot"), "{out}");
    assert_eq!(fs::read_to_string(&version_file).unwrap(), "16.11.0-ee\n");
    assert!(!sb.calls.exists(), "nothing may be stopped");

    // The real run (no database here to snapshot).
    let o = rewind(
        &sb.root,
        &["rollback", "--to", "16.10.3-ee", "--yes", "--no-snapshot"],
    );
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("Rolled back: GitLab 16.10.3-ee"), "{out}");
    // Held, and the way to release it shown.
    assert!(out.contains("The package is held"), "{out}");
    assert!(out.contains("apt-mark"), "{out}");
    assert!(out.contains("unhold gitlab-ee"), "{out}");
    // apt's own output was streamed.
    assert!(out.contains("Unpacking gitlab-ee (16.10.3-ee.0)"), "{out}");
    assert_eq!(fs::read_to_string(&version_file).unwrap(), "16.10.3-ee\n");
    let calls = fs::read_to_string(&sb.calls).unwrap();
    assert_eq!(
        calls.lines().collect::<Vec<_>>(),
        vec![
            "stop puma @16.11.0-ee",
            "stop sidekiq @16.11.0-ee",
            "reconfigure @16.10.3-ee",
        ],
        "install must happen between stopping sidekiq and reconfigure"
    );
    // The sandbox's dpkg database says 16.10.3; re-detection reports it.
    let q = Command::new("dpkg-query")
        .arg(format!(
            "--admindir={}",
            sb.root.join("var/lib/dpkg").display()
        ))
        .args(["-W", "-f=${Version}", "gitlab-ee"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&q.stdout), "16.10.3-ee.0");
    let o = rewind(&sb.root, &["--json", "detect"]);
    let d: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(d["version"], "16.10.3-ee");

    // Journaled in order, with argv and exit codes.
    let journal = sb.root.join("var/opt/gitlab/backups/rewind/journal.jsonl");
    let entries: Vec<serde_json::Value> = fs::read_to_string(&journal)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let begun: Vec<&str> = entries
        .iter()
        .filter(|e| e["stage"] == "begin")
        .map(|e| e["step"].as_str().unwrap())
        .collect();
    assert_eq!(
        begun,
        vec![
            "rollback",
            "rollback.stop.puma",
            "rollback.stop.sidekiq",
            "rollback.install",
            "rollback.reconfigure",
            "rollback.hold"
        ]
    );
    assert!(entries
        .iter()
        .any(|e| e["step"] == "rollback.guard" && e["stage"] == "note"));
    let install_end = entries
        .iter()
        .find(|e| e["step"] == "rollback.install" && e["stage"] == "end")
        .unwrap();
    assert_eq!(install_end["detail"]["exit_code"], 0);
    assert_eq!(install_end["detail"]["argv"][0], "apt-get");

    // The hold is in the sandbox's dpkg database, and the next upgrade leaves 16.10.3.
    let q = Command::new("dpkg-query")
        .arg(format!(
            "--admindir={}",
            sb.root.join("var/lib/dpkg").display()
        ))
        .args(["-W", "-f=${db:Status-Want} ${Version}", "gitlab-ee"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&q.stdout), "hold 16.10.3-ee.0");
    let host = HostRoot::new(&sb.root);
    let upgrade = packages::manager_cmd(packages::Manager::Apt, "apt-get", &host)
        .unwrap()
        .args(["-y", "upgrade"]);
    let up = rewind_engine::exec::capture(&upgrade).unwrap();
    assert!(up.success(), "{} {}", up.stdout, up.stderr);
    assert!(up.stdout.contains("kept back"), "{}", up.stdout);
    assert_eq!(fs::read_to_string(&version_file).unwrap(), "16.10.3-ee\n");

    // Already there: nothing to do.
    let o = rewind(&sb.root, &["rollback", "--to", "16.10.3-ee", "--yes"]);
    assert!(text(&o).contains("already installed"), "{}", text(&o));

    // The host's dpkg database and log were not touched.
    assert_eq!(fingerprint("/var/lib/dpkg/status"), host_status);
    assert_eq!(fingerprint("/var/log/dpkg.log"), host_log);
}

#[test]
fn refuses_versions_the_repository_lacks_and_edition_changes() {
    let sb = sandbox();
    let o = rewind(&sb.root, &["rollback", "--to", "16.9.2-ee", "--yes"]);
    let out = text(&o);
    assert!(!o.status.success(), "{out}");
    assert!(out.contains("gitlab-ee 16.9.2-ee is not offered"), "{out}");
    assert!(
        out.contains("Available: 16.11.0-ee.0, 16.10.3-ee.0"),
        "{out}"
    );
    assert!(
        out.contains("packages.gitlab.com/gitlab/gitlab-ee/packages/"),
        "{out}"
    );
    assert!(
        !sb.calls.exists(),
        "nothing may run before the plan is complete"
    );

    let o = rewind(&sb.root, &["rollback", "--to", "16.10.3-ce", "--yes"]);
    let out = text(&o);
    assert!(!o.status.success(), "{out}");
    assert!(out.contains("--allow-edition-change"), "{out}");
    // No suffix is CE, as GitLab's restore reads it: on this EE host that is a change too.
    let o = rewind(&sb.root, &["rollback", "--to", "16.10.3", "--yes"]);
    let out = text(&o);
    assert!(!o.status.success(), "{out}");
    assert!(out.contains("16.10.3 (ce;"), "{out}");
    assert!(out.contains("--allow-edition-change"), "{out}");

    let o = rewind(&sb.root, &["rollback", "--to", "16.10.3; reboot", "--yes"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("not a GitLab version"), "{}", text(&o));
    assert_eq!(
        fs::read_to_string(
            sb.root
                .join("opt/gitlab/embedded/service/gitlab-rails/VERSION")
        )
        .unwrap(),
        "16.11.0-ee\n"
    );
}

fn write_pg_version(host: &HostRoot, major: &str) {
    let d = host.join("/var/opt/gitlab/postgresql/data");
    fs::create_dir_all(&d).unwrap();
    fs::write(d.join("PG_VERSION"), format!("{major}\n")).unwrap();
}

#[test]
fn a_newer_postgresql_data_directory_is_refused_before_anything_changes() {
    let sb = sandbox();
    // The failed upgrade ran pg-upgrade to 16; 16.10.3 ships 13 and 14.
    write_pg_version(&HostRoot::new(&sb.root), "16");
    for args in [
        &["rollback", "--to", "16.10.3-ee", "--yes"][..],
        &["rollback", "--to", "16.10.3-ee", "--dry-run"][..],
    ] {
        let o = rewind(&sb.root, args);
        let out = text(&o);
        assert!(!o.status.success(), "{out}");
        assert!(out.contains("belongs to PostgreSQL 16"), "{out}");
        assert!(out.contains("ships PostgreSQL 13, 14 only"), "{out}");
        assert!(out.contains("gitlab-ctl revert-pg-upgrade -V 14"), "{out}");
        assert!(out.contains("Nothing was changed"), "{out}");
    }
    // Installed version unchanged, no service stopped, no package hold.
    assert_eq!(
        fs::read_to_string(
            sb.root
                .join("opt/gitlab/embedded/service/gitlab-rails/VERSION")
        )
        .unwrap(),
        "16.11.0-ee\n"
    );
    assert!(!sb.calls.exists(), "gitlab-ctl must not have run");
    let q = Command::new("dpkg-query")
        .arg(format!(
            "--admindir={}",
            sb.root.join("var/lib/dpkg").display()
        ))
        .args(["-W", "-f=${db:Status-Want} ${Version}", "gitlab-ee"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&q.stdout), "install 16.11.0-ee.0");
}

#[test]
fn gitlab_rb_keys_the_older_package_does_not_know_are_reported() {
    let sb = sandbox();
    let rb = sb.root.join("etc/gitlab/gitlab.rb");
    fs::create_dir_all(rb.parent().unwrap()).unwrap();
    fs::write(
        &rb,
        "external_url 'https://gitlab.example'\ngitlab_rails['time_zone'] = 'UTC'\ngitlab_kas['new_in_16_11'] = true\n",
    )
    .unwrap();
    // The stand-in 16.10.3 package's own gitlab.rb.template, read from the repository's
    // package file, does not name gitlab_kas['new_in_16_11'].
    let o = rewind(&sb.root, &["rollback", "--to", "16.10.3-ee"]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("gitlab.rb line 3: gitlab_kas['new_in_16_11'] is not known"),
        "{out}"
    );
    assert!(!out.contains("time_zone'] is not known"), "{out}");
    let o = rewind(
        &sb.root,
        &["--json", "rollback", "--to", "16.10.3-ee", "--dry-run"],
    );
    let plan: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        plan["guard"]["unknown_keys"],
        serde_json::json!([{ "key": "gitlab_kas['new_in_16_11']", "line": 3 }])
    );
}

#[test]
fn services_status_parses_gitlab_ctl() {
    let dir = tempfile::tempdir().unwrap();
    let host = HostRoot::new(dir.path());
    let calls = sandbox_repo::write_gitlab_ctl_standin(&host).unwrap();
    let o = rewind(dir.path(), &["services", "stop", "puma", "--yes"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = rewind(dir.path(), &["--json", "services", "status"]);
    assert!(o.status.success(), "{}", text(&o));
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let puma = list
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service"] == "puma")
        .unwrap();
    assert_eq!(puma["state"], "down");
    let redis = list
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service"] == "redis")
        .unwrap();
    assert_eq!(redis["state"], "run");
    assert_eq!(redis["pid"], 200);
    let o = rewind(dir.path(), &["services", "stop", "puma; reboot", "--yes"]);
    assert!(!o.status.success());
    assert_eq!(
        fs::read_to_string(calls)
            .unwrap()
            .lines()
            .collect::<Vec<_>>(),
        vec!["stop puma", "status"]
    );
}

#[test]
fn plan_lists_the_whole_recovery_in_order() {
    let sb = sandbox();
    // A backup of 16.10.3-ee made the way GitLab makes it.
    let bdir = sb.root.join("var/opt/gitlab/backups");
    let work = tempfile::tempdir().unwrap();
    fs::create_dir_all(work.path().join("db")).unwrap();
    fs::write(
        work.path().join("backup_information.yml"),
        ":db_version: '20240410123456'\n:backup_created_at: 2024-04-23 10:15:42 UTC\n:gitlab_version: 16.10.3-ee\n:tar_version: tar (GNU tar) 1.34\n:installation_type: omnibus-gitlab\n:skipped: builds\n:repositories_storages: ''\n:backup_id: 1713867342_2024_04_23_16.10.3-ee\n",
    )
    .unwrap();
    let gz = |name: &str, data: &[u8]| {
        fs::write(work.path().join(name), flate2_like_gzip(data)).unwrap();
    };
    gz("db/database.sql.gz", b"SELECT 1;\n");
    let src = work.path().join("uploads-src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a.txt"), b"a").unwrap();
    let tar = Command::new("tar")
        .arg("-C")
        .arg(&src)
        .args(["-czf"])
        .arg(work.path().join("uploads.tar.gz"))
        .arg(".")
        .status()
        .unwrap();
    assert!(tar.success());
    fs::create_dir_all(&bdir).unwrap();
    let st = Command::new("tar")
        .arg("-C")
        .arg(work.path())
        .arg("-cf")
        .arg(bdir.join("1713867342_2024_04_23_16.10.3-ee_gitlab_backup.tar"))
        .args([
            "backup_information.yml",
            "db/database.sql.gz",
            "uploads.tar.gz",
        ])
        .status()
        .unwrap();
    assert!(st.success());

    // The sandbox has no database server: the plan says so and exits 4 (act on it).
    let o = rewind(&sb.root, &["--json", "plan"]);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    let plan: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(plan["backup"], "1713867342_2024_04_23_16.10.3-ee");
    assert_eq!(plan["installed"], "16.11.0-ee");
    let blocked: Vec<&serde_json::Value> = plan["refusals"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "blocked")
        .collect();
    assert_eq!(blocked.len(), 1, "{plan:#}");
    assert_eq!(blocked[0]["step"], "restore_databases");
    assert!(
        blocked[0]["message"]
            .as_str()
            .unwrap()
            .contains("cannot connect to PostgreSQL"),
        "{plan:#}"
    );
    let steps = plan["steps"].as_array().unwrap();
    let ids: Vec<&str> = steps
        .iter()
        .map(|s| s["step"]["id"].as_str().unwrap())
        .collect();
    let pos = |id: &str| {
        ids.iter()
            .position(|t| *t == id)
            .unwrap_or_else(|| panic!("{id} missing from {ids:?}"))
    };
    let step = |id: &str| &steps[pos(id)];
    assert!(pos("stop_services") < pos("safety_snapshot"));
    assert!(pos("safety_snapshot") < pos("rollback_package"));
    assert_eq!(step("rollback_package")["runs"], true);
    assert_eq!(
        step("rollback_package")["commands"][0],
        "rewind rollback --to 16.10.3-ee"
    );
    assert!(pos("rollback_package") < pos("confirm_drop"));
    assert!(pos("confirm_drop") < pos("restore_databases"));
    assert!(pos("restore_databases") < pos("restore_files"));
    assert!(pos("restore_files") < pos("restore_config"));
    assert!(pos("restore_config") < pos("start_services"));
    assert!(pos("start_services") < pos("post_checks"));
    assert_eq!(
        step("start_services")["does"],
        serde_json::json!([
            "reconfigure GitLab (renders configuration, runs pending migrations)",
            "start every GitLab service"
        ])
    );
    let all = serde_json::to_string(&plan).unwrap();
    assert!(all.contains("gitlab-ee=16.10.3-ee.0"), "{all}");
    assert!(all.contains("gitlab-ctl stop puma"), "{all}");
    assert!(all.contains("gitlab:check SANITIZE=true"), "{all}");
    assert!(all.contains("gitlab:doctor:secrets VERBOSE=1"), "{all}");
    assert!(
        all.contains("uploads.tar.gz → /var/opt/gitlab/gitlab-rails/uploads"),
        "{all}"
    );
    assert!(all.contains("gitlab-secrets.json"), "{all}");
    // Only `gitlab-ctl status` ran (read-only).
    let calls = fs::read_to_string(&sb.calls).unwrap();
    assert!(calls.lines().all(|l| l.starts_with("status ")), "{calls}");
    let human = text(&rewind(&sb.root, &["plan"]));
    assert!(human.contains("Nothing was changed"), "{human}");
}

/// gzip `data` with the system's gzip (as GitLab's backup does).
fn flate2_like_gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new("gzip")
        .arg("-c")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(data).unwrap();
    child.wait_with_output().unwrap().stdout
}

#[test]
fn services_finish_reconfigures_starts_and_captures_checks() {
    let dir = tempfile::tempdir().unwrap();
    let host = HostRoot::new(dir.path());
    // An Omnibus install (its version file), for the hints that follow GitLab's output.
    let version = host.join("/opt/gitlab/embedded/service/gitlab-rails/VERSION");
    fs::create_dir_all(version.parent().unwrap()).unwrap();
    fs::write(&version, "16.10.3-ee\n").unwrap();
    let calls = sandbox_repo::write_gitlab_ctl_standin(&host).unwrap();
    // A gitlab-rake that fails the secrets check.
    let rake = host.join("/opt/gitlab/bin/gitlab-rake");
    fs::write(
        &rake,
        "#!/bin/sh\nif [ \"$1\" = gitlab:doctor:secrets ]; then\necho 'I, [2024-04-20T10:00:00.000001 #42]  INFO -- : Checking encrypted values in the database'\necho 'I, [2024-04-20T10:00:01.000001 #42]  INFO -- : - Ci::Variable failures: 2'\necho 'D, [2024-04-20T10:00:01.000002 #42] DEBUG -- :   - Ci::Variable[4]: value'\necho 'D, [2024-04-20T10:00:01.000003 #42] DEBUG -- :   - Ci::Variable[9]: value'\necho 'I, [2024-04-20T10:00:02.000001 #42]  INFO -- : - User failures: 0'\necho 'I, [2024-04-20T10:00:03.000001 #42]  INFO -- : Total: 2 row(s) affected'\necho 'I, [2024-04-20T10:00:03.000002 #42]  INFO -- : Done!'\nexit 0; fi\necho \"Checking GitLab ... Finished ($*)\"\n",
    )
    .unwrap();
    fs::set_permissions(&rake, fs::Permissions::from_mode(0o755)).unwrap();
    let cb = host.join("/etc/gitlab/config_backup/gitlab_config_1713000000_2024_04_13.tar");
    fs::create_dir_all(cb.parent().unwrap()).unwrap();
    fs::write(&cb, b"tar").unwrap();

    // Non-terminal without --yes: prints only.
    let o = rewind(dir.path(), &["services", "finish"]);
    let out = text(&o);
    assert!(
        out.contains("gitlab-secrets.json") && out.contains("Not run"),
        "{out}"
    );
    assert!(
        out.contains("gitlab_config_1713000000_2024_04_13.tar"),
        "{out}"
    );
    assert!(!calls.exists());

    let o = rewind(
        dir.path(),
        &["services", "finish", "--yes", "--ready-timeout", "0"],
    );
    let out = text(&o);
    // doctor:secrets exits 0 but reports rows: read, tabled, needs acting on.
    assert_eq!(
        o.status.code(),
        Some(4),
        "a failing check is reported: {out}"
    );
    assert!(out.contains("Ci::Variable failures: 2"), "{out}");
    assert!(
        out.contains("2 row(s) cannot be decrypted")
            && out.contains("Reset CI/CD variables")
            && out.contains("DELETE FROM ci_variables"),
        "{out}"
    );
    assert!(
        out.contains("Checking GitLab ... Finished (gitlab:check SANITIZE=true)"),
        "{out}"
    );
    // GitLab's report, then the next steps for this Omnibus host (gitlab-ctl, gitlab-rake).
    let report = out.find("2 row(s) cannot be decrypted").unwrap();
    let after = &out[report..];
    assert!(
        after.contains("`sudo gitlab-ctl reconfigure`")
            && after.contains("`sudo gitlab-rake gitlab:doctor:secrets VERBOSE=1` again"),
        "{out}"
    );
    assert!(!after.contains("bundle exec"), "{out}");
    // gitlab:check passed: no hint for it.
    assert!(
        !after.contains("gitlab:check SANITIZE=true` again"),
        "{out}"
    );
    assert_eq!(
        fs::read_to_string(&calls)
            .unwrap()
            .lines()
            .collect::<Vec<_>>(),
        vec!["reconfigure", "start"]
    );
    let journal = fs::read_to_string(
        dir.path()
            .join("var/opt/gitlab/backups/rewind/journal.jsonl"),
    )
    .unwrap();
    assert!(journal.contains("Ci::Variable failures: 2"), "{journal}");
    assert!(
        journal.contains("values that cannot be decrypted"),
        "{journal}"
    );
}
