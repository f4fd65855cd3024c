//! End-to-end tests of `rewind repair` and `rewind mark-migration`: the built binary, a
//! sandbox root made like an Omnibus host whose database.yml points at a throwaway
//! PostgreSQL cluster.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use rewind_engine::journal::Journal;
use rewind_engine::pg::cluster::TempCluster;

mod common;
use common::text;

const ISSUE_LOG: &str =
    "== 20151103134857 CreateLfsObjects: migrating =================================
-- create_table(:lfs_objects)
rake aborted!
StandardError: An error has occurred, this and all later migrations canceled:

PG::DuplicateTable: ERROR:  relation \"lfs_objects\" already exists
";

struct Host {
    cluster: TempCluster,
    dir: tempfile::TempDir,
}

impl Host {
    /// A sandbox root with Omnibus's database.yml pointing at a fresh cluster whose
    /// `gitlabhq_production` has GitLab's schema_migrations and the leftovers of a failed
    /// upgrade (`lfs_objects`, `widgets`, `gadgets.color`).
    fn new() -> Host {
        let cluster = TempCluster::start().expect("cluster");
        cluster.create_database("gitlabhq_production").unwrap();
        let mut db = cluster.connect_app("gitlabhq_production").unwrap();
        db.batch_execute(
            "CREATE TABLE schema_migrations (version character varying NOT NULL, CONSTRAINT schema_migrations_pkey PRIMARY KEY (version));
             INSERT INTO schema_migrations VALUES ('20151021000000'), ('20151030000000');
             CREATE TABLE lfs_objects (id serial PRIMARY KEY, oid character varying(255) NOT NULL, size integer NOT NULL, created_at timestamp, updated_at timestamp);
             CREATE TABLE widgets (id bigserial PRIMARY KEY, name text);
             CREATE TABLE gadgets (id bigserial PRIMARY KEY, color character varying);
             INSERT INTO gadgets (color) VALUES ('red');",
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let yml = dir
            .path()
            .join("var/opt/gitlab/gitlab-rails/etc/database.yml");
        fs::create_dir_all(yml.parent().unwrap()).unwrap();
        fs::write(
            &yml,
            format!(
                "production:\n  main:\n    adapter: postgresql\n    encoding: unicode\n    database: gitlabhq_production\n    username: \"{}\"\n    password:\n    host: \"{}\"\n    port: {}\n    database_tasks: true\n",
                cluster.app_role(),
                cluster.socket_dir().display(),
                cluster.port()
            ),
        )
        .unwrap();
        Host { cluster, dir }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.root().join(name);
        fs::write(&p, text).unwrap();
        p
    }

    fn rewind(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_rewind"))
            .arg("--root")
            .arg(self.root())
            .args(args)
            .stdin(Stdio::null())
            .env("NO_COLOR", "1")
            .env_remove("REWIND_DATABASE_URL")
            .output()
            .unwrap()
    }

    fn versions(&self) -> Vec<String> {
        let mut db = self.cluster.connect_app("gitlabhq_production").unwrap();
        db.query(
            "SELECT version FROM schema_migrations ORDER BY version",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
    }

    fn journal_path(&self) -> PathBuf {
        Journal::dir_for(&self.root().join("var/opt/gitlab/backups")).join("journal.jsonl")
    }
}

#[test]
fn repair_without_yes_on_closed_stdin_names_the_migration_and_writes_nothing() {
    let h = Host::new();
    let log = h.file("migrate.log", ISSUE_LOG);
    let before = h.versions();
    let out = h.rewind(&["repair", "--log", log.to_str().unwrap()]);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("20151103134857"), "{stdout}");
    assert!(stdout.contains("CreateLfsObjects"), "{stdout}");
    assert!(stdout.contains("DuplicateTable"), "{stdout}");
    assert!(stdout.contains("lfs_objects"), "{stdout}");
    assert!(stdout.contains("mark complete"), "{stdout}");
    assert!(stdout.contains("INSERT INTO schema_migrations (version) VALUES ($1)"));
    assert!(stdout.contains("Nothing was written"), "{stdout}");
    assert_eq!(h.versions(), before);
    assert!(
        !h.journal_path().exists(),
        "journal written without confirmation"
    );

    // --json gives the same facts as one document.
    let out = h.rewind(&["--json", "repair", "--log", log.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["failure"]["migration"]["version"], "20151103134857");
    assert_eq!(v["assessment"]["verdict"], "mark_complete");
    assert_eq!(v["assessment"]["object"]["name"], "lfs_objects");
    assert_eq!(v["written"], false);
    assert_eq!(h.versions(), before);
}

#[test]
fn mark_migration_inserts_then_says_already_marked() {
    let h = Host::new();
    let out = h.rewind(&["mark-migration", "20151103134857"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "Successfully marked '20151103134857' as complete on database main"
    );
    assert!(h.versions().contains(&"20151103134857".to_string()));
    let out = h.rewind(&["mark-migration", "20151103134857", "--database", "main"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "Migration version '20151103134857' is already marked complete on database main"
    );
    assert_eq!(h.versions().len(), 3);
    let entries = Journal::read(&h.journal_path()).unwrap();
    let marks: Vec<_> = entries
        .iter()
        .filter(|e| e.step == "migrate.mark" && e.result.is_some())
        .map(|e| e.result.clone().unwrap())
        .collect();
    assert_eq!(marks, ["ok", "already_marked"]);

    // --database-url works without database.yml.
    let url = format!(
        "host={} port={} user={} dbname=gitlabhq_production",
        h.cluster.socket_dir().display(),
        h.cluster.port(),
        h.cluster.app_role()
    );
    fs::remove_file(
        h.root()
            .join("var/opt/gitlab/gitlab-rails/etc/database.yml"),
    )
    .unwrap();
    let out = h.rewind(&[
        "--database-url",
        &url,
        "--json",
        "mark-migration",
        "20240101000009",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["results"][0]["outcome"], "marked");
    assert!(h.versions().contains(&"20240101000009".to_string()));
}

#[test]
fn bad_versions_are_refused_and_nothing_is_written() {
    let h = Host::new();
    let before = h.versions();
    for bad in [
        "0",
        "abc",
        "-5",
        "1; DROP TABLE x",
        "000",
        "123456789012345",
        "12abc",
    ] {
        let out = h.rewind(&["mark-migration", bad]);
        assert!(!out.status.success(), "{bad} accepted");
        assert!(
            String::from_utf8_lossy(&out.stdout)
                .contains("Must give a version argument that is a non-zero integer"),
            "{bad}: {}",
            text(&out)
        );
        assert_eq!(h.versions(), before, "{bad} wrote a row");
    }
    assert!(!h.journal_path().exists());
}

/// `runuser -u <OS user> -- ` when the peer map needs another OS user for the application
/// role (root), as `gitlab-rake` runs as `git` on Omnibus.
fn run_as_app(cluster: &TempCluster) -> String {
    match cluster
        .conn_spec("gitlabhq_production")
        .connect_as()
        .os_user()
    {
        Some(u) => format!("runuser -u {} -- ", u.name),
        None => String::new(),
    }
}

#[test]
fn the_loop_marks_two_versions_in_order_then_migrations_succeed() {
    let h = Host::new();
    let psql = h.cluster.tool_path("psql");
    let script = format!(
        r#"#!/bin/sh
# A stand-in for `gitlab-rake db:migrate`: runs the pending migrations in order, skipping
# the versions schema_migrations holds, like Rails.
marked() {{
  n=$({runas}"{psql}" -X -A -t -h "{sock}" -p {port} -U "{user}" -d gitlabhq_production \
      -c "SELECT count(*) FROM schema_migrations WHERE version = '$1'")
  [ "$n" = "1" ]
}}
if ! marked 20240101000001; then
  echo "== 20240101000001 CreateWidgets: migrating ================================="
  echo "-- create_table(:widgets)"
  echo "rake aborted!" >&2
  echo "StandardError: An error has occurred, this and all later migrations canceled:" >&2
  echo "" >&2
  echo 'PG::DuplicateTable: ERROR:  relation "widgets" already exists' >&2
  exit 1
fi
if ! marked 20240101000002; then
  echo "== 20240101000002 AddColorToGadgets: migrating ============================="
  echo "-- add_column(:gadgets, :color, :string)"
  echo "rake aborted!" >&2
  echo "StandardError: An error has occurred, all later migrations canceled:" >&2
  echo "" >&2
  echo 'PG::DuplicateColumn: ERROR:  column "color" of relation "gadgets" already exists' >&2
  exit 1
fi
echo "== 20240101000003 AddIndexOnGadgetsColor: migrating ========================"
echo "-- add_index(:gadgets, :color)"
echo "   -> 0.0031s"
echo "== 20240101000003 AddIndexOnGadgetsColor: migrated (0.0040s) ==============="
exit 0
"#,
        psql = psql.display(),
        runas = run_as_app(&h.cluster),
        sock = h.cluster.socket_dir().display(),
        port = h.cluster.port(),
        user = h.cluster.app_role(),
    );
    let script = h.file("fake-migrate.sh", &script);
    // The first failure, as the failed upgrade left it.
    let first = Command::new("/bin/sh").arg(&script).output().unwrap();
    assert!(!first.status.success());
    let log = h.file(
        "first.log",
        &format!(
            "{}{}",
            String::from_utf8_lossy(&first.stdout),
            String::from_utf8_lossy(&first.stderr)
        ),
    );
    let out = h.rewind(&[
        "repair",
        "--log",
        log.to_str().unwrap(),
        "--yes",
        "--migrate-cmd",
        "/bin/sh",
        "--migrate-cmd",
        script.to_str().unwrap(),
    ]);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(all.contains("Migrations succeeded"), "{all}");
    assert!(all.contains("Successfully marked '20240101000001' as complete on database main"));
    assert!(all.contains("Successfully marked '20240101000002' as complete on database main"));
    let v = h.versions();
    assert!(v.contains(&"20240101000001".to_string()) && v.contains(&"20240101000002".to_string()));
    assert!(
        !v.contains(&"20240101000003".to_string()),
        "the fake migrate does not record"
    );

    let entries = Journal::read(&h.journal_path()).unwrap();
    let marked: Vec<String> = entries
        .iter()
        .filter(|e| e.step == "migrate.mark" && e.result.as_deref() == Some("ok"))
        .map(|e| e.detail["version"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(marked, ["20240101000001", "20240101000002"]);
    let rounds: Vec<(u64, String)> = entries
        .iter()
        .filter(|e| e.step == "migrate.repair.round" && e.result.is_some())
        .map(|e| {
            (
                e.detail["round"].as_u64().unwrap(),
                e.result.clone().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rounds,
        [
            (1, "migration_failed".to_string()),
            (2, "migrations_succeeded".to_string())
        ]
    );
    let migrate_runs = entries
        .iter()
        .filter(|e| e.step == "migrate.repair.migrate" && e.result.is_some())
        .count();
    assert_eq!(migrate_runs, 2);
}

#[test]
fn the_loop_stops_when_the_same_version_fails_again_or_the_error_is_not_a_duplicate() {
    let h = Host::new();
    // A migrate command that keeps failing on the same version after it is marked.
    let script = h.file(
        "same.sh",
        "#!/bin/sh\necho '== 20151103134857 CreateLfsObjects: migrating ==='\necho '-- create_table(:lfs_objects)'\necho 'PG::DuplicateTable: ERROR:  relation \"lfs_objects\" already exists'\nexit 1\n",
    );
    let log = h.file("m.log", ISSUE_LOG);
    let out = h.rewind(&[
        "repair",
        "--log",
        log.to_str().unwrap(),
        "--yes",
        "--migrate-cmd",
        &format!("/bin/sh {}", script.display()),
    ]);
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    assert!(all.contains("marking did not help"), "{all}");
    assert_eq!(
        h.versions()
            .iter()
            .filter(|v| *v == "20151103134857")
            .count(),
        1
    );

    // A unique violation is not marked, even with --yes.
    let log = h.file("u.log", "== 20230807083334 AddLinkedItems: migrating ===\nrake aborted!\nStandardError: An error has occurred, all later migrations canceled:\n\nPG::UniqueViolation: ERROR:  duplicate key value violates unique constraint \"widgets_pkey\"\nDETAIL:  Key (id)=(9) already exists.\n");
    let before = h.versions();
    let out = h.rewind(&[
        "repair",
        "--log",
        log.to_str().unwrap(),
        "--yes",
        "--migrate-cmd",
        "/bin/false",
    ]);
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    assert!(all.contains("data, not schema"), "{all}");
    assert_eq!(h.versions(), before);
}

#[test]
fn check_leftovers_lists_what_the_backup_does_not_create() {
    use rewind_engine::sandbox::backup::{build_backup, BackupSpec};
    use rewind_engine::sandbox::PgTarget;
    let h = Host::new();
    let spec = BackupSpec::new(
        h.root().join("var/opt/gitlab/backups"),
        PgTarget::new(
            h.cluster.bin_dir(),
            h.cluster.conn_spec("gitlabhq_production"),
        ),
    );
    build_backup(&spec).expect("GitLab-format backup");
    let id = spec.backup_id();
    // Before the failed upgrade's leftovers: clean.
    let out = h.rewind(&["check-leftovers", "--backup", &id]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("nothing left over"),
        "{}",
        text(&out)
    );

    let mut db = h.cluster.connect_app("gitlabhq_production").unwrap();
    db.batch_execute(
        "CREATE TABLE ci_job_annotations (id bigserial PRIMARY KEY, name text);
         ALTER TABLE gadgets ADD COLUMN shape text;
         CREATE INDEX index_gadgets_on_color ON gadgets (color);
         CREATE SCHEMA gitlab_partitions_dynamic;
         INSERT INTO schema_migrations VALUES ('20240101000001'), ('20240101000002');",
    )
    .unwrap();
    let out = h.rewind(&["check-leftovers"]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    // Leftovers found: nothing failed, but they need acting on (exit code 4).
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    for want in [
        "public.ci_job_annotations",
        "public.gadgets.shape",
        "public.index_gadgets_on_color",
        "gitlab_partitions_dynamic",
        "20240101000001",
        "20240101000002",
        "DROP INDEX \"public\".\"index_gadgets_on_color\";",
    ] {
        assert!(stdout.contains(want), "{want} missing:\n{stdout}");
    }
    assert!(
        stdout.contains("newer than the backup's db_version 20151030000000"),
        "{stdout}"
    );

    let out = h.rewind(&["--json", "check-leftovers", "--backup", &id]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["db_version"], "20151030000000");
    let items = v["databases"][0]["items"].as_array().unwrap();
    let kinds: Vec<(&str, &str)> = items
        .iter()
        .map(|i| (i["kind"].as_str().unwrap(), i["name"].as_str().unwrap()))
        .collect();
    assert!(
        kinds.contains(&("table", "public.ci_job_annotations")),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&("index", "public.index_gadgets_on_color")),
        "{kinds:?}"
    );
    assert!(
        !kinds.iter().any(|(_, n)| n.contains("lfs_objects")),
        "{kinds:?}"
    );
}

/// Run `rewind` in a pseudo-terminal, answer the confirmation prompt with `answer`, and
/// return (exit success, everything it printed).
fn rewind_in_pty(root: &Path, args: &[&str], answer: &str) -> (bool, String) {
    use portable_pty::{native_pty_system, CommandBuilder, PtySize};
    use std::io::{Read, Write};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};
    let pair = native_pty_system()
        .openpty(PtySize {
            rows: 50,
            cols: 200,
            pixel_width: 0,
            pixel_height: 0,
        })
        .expect("openpty");
    let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_rewind"));
    cmd.arg("--root");
    cmd.arg(root);
    for a in args {
        cmd.arg(a);
    }
    cmd.env("NO_COLOR", "1");
    cmd.env_remove("REWIND_DATABASE_URL");
    let mut child = pair.slave.spawn_command(cmd).expect("spawn rewind");
    drop(pair.slave);
    let mut reader = pair.master.try_clone_reader().expect("reader");
    let mut writer = pair.master.take_writer().expect("writer");
    let out = Arc::new(Mutex::new(Vec::new()));
    let o2 = out.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            o2.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    let text = || String::from_utf8_lossy(&out.lock().unwrap()).into_owned();
    let end = Instant::now() + Duration::from_secs(60);
    while !text().contains("Type the version") {
        assert!(Instant::now() < end, "no prompt; output:\n{}", text());
        std::thread::sleep(Duration::from_millis(50));
    }
    writer.write_all(format!("{answer}\r").as_bytes()).unwrap();
    writer.flush().unwrap();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < end, "did not exit; output:\n{}", text());
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_millis(200));
    (status.success(), text())
}

#[test]
fn on_a_terminal_the_user_types_the_version_to_mark() {
    let h = Host::new();
    let log = h.file("migrate.log", ISSUE_LOG);
    let script = h.file("ok.sh", "#!/bin/sh\necho '== 20151104000000 AddOidIndex: migrating ==='\necho '== 20151104000000 AddOidIndex: migrated (0.01s) ==='\n");
    let args = [
        "repair",
        "--log",
        log.to_str().unwrap(),
        "--migrate-cmd",
        "/bin/sh",
        "--migrate-cmd",
        script.to_str().unwrap(),
    ];
    let before = h.versions();
    // Anything but the version stops: nothing written.
    let (ok, out) = rewind_in_pty(h.root(), &args, "yes");
    assert!(!ok, "{out}");
    assert!(out.contains("nothing was written"), "{out}");
    assert_eq!(h.versions(), before);
    // The version marks it and the migrations run clean.
    let (ok, out) = rewind_in_pty(h.root(), &args, "20151103134857");
    assert!(ok, "{out}");
    assert!(
        out.contains("Successfully marked '20151103134857' as complete on database main"),
        "{out}"
    );
    assert!(out.contains("AddOidIndex: migrated"), "{out}");
    assert!(h.versions().contains(&"20151103134857".to_string()));
}

#[test]
fn the_log_comes_from_stdin_or_from_omnibus_log_dir() {
    let h = Host::new();
    // stdin (`--log -`).
    let mut child = Command::new(env!("CARGO_BIN_EXE_rewind"))
        .arg("--root")
        .arg(h.root())
        .args(["--json", "repair", "--log", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .env_remove("REWIND_DATABASE_URL")
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(ISSUE_LOG.replace('\n', "\r\n").as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["failure"]["migration"]["version"], "20151103134857");
    assert_eq!(v["written"], false);

    // Omnibus's newest gitlab-rails-db-migrate-*.log when --log is not given.
    let dir = h.root().join("var/log/gitlab/gitlab-rails");
    fs::create_dir_all(&dir).unwrap();
    fs::write(
        dir.join("gitlab-rails-db-migrate-2024-04-20-10-00-00.log"),
        "== 20100101000000 Old: migrating ===\nPG::DuplicateTable: ERROR:  relation \"old\" already exists\n",
    )
    .unwrap();
    fs::write(
        dir.join("gitlab-rails-db-migrate-2024-04-21-09-30-12.log"),
        ISSUE_LOG,
    )
    .unwrap();
    let out = h.rewind(&["repair"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stdout.contains("gitlab-rails-db-migrate-2024-04-21-09-30-12.log"),
        "{stdout}"
    );
    assert!(stdout.contains("20151103134857"), "{stdout}");
}

#[test]
fn a_ci_failure_is_assessed_and_marked_on_the_ci_database() {
    let h = Host::new();
    h.cluster.create_database("gitlabhq_production_ci").unwrap();
    let mut ci = h.cluster.connect_app("gitlabhq_production_ci").unwrap();
    ci.batch_execute(
        "CREATE TABLE schema_migrations (version character varying PRIMARY KEY);
         CREATE TABLE p_ci_job_annotations (id bigint NOT NULL, partition_id bigint NOT NULL, name text);",
    )
    .unwrap();
    let yml = h
        .root()
        .join("var/opt/gitlab/gitlab-rails/etc/database.yml");
    let main_part = fs::read_to_string(&yml).unwrap();
    fs::write(
        &yml,
        format!(
            "{main_part}  ci:\n    adapter: postgresql\n    database: gitlabhq_production_ci\n    username: \"{}\"\n    host: \"{}\"\n    port: {}\n    database_tasks: true\n",
            h.cluster.app_role(),
            h.cluster.socket_dir().display(),
            h.cluster.port()
        ),
    )
    .unwrap();
    let log = h.file(
        "ci.log",
        "ci: == 20231017090012 CreateCiJobAnnotations: migrating ====\nci: -- create_table(:p_ci_job_annotations, {:primary_key=>[:id, :partition_id]})\nrake aborted!\nStandardError: An error has occurred, all later migrations canceled:\n\nPG::DuplicateTable: ERROR:  relation \"p_ci_job_annotations\" already exists\n",
    );
    let out = h.rewind(&["--json", "repair", "--log", log.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["assessment"]["database"], "ci");
    assert_eq!(v["assessment"]["object_exists"], true);
    assert_eq!(v["assessment"]["verdict"], "mark_complete");

    let out = h.rewind(&[
        "repair",
        "--log",
        log.to_str().unwrap(),
        "--yes",
        "--migrate-cmd",
        "/bin/true",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("Successfully marked '20231017090012' as complete on database ci"));
    let n: i64 = ci
        .query_one(
            "SELECT count(*) FROM schema_migrations WHERE version = '20231017090012'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    assert!(
        !h.versions().contains(&"20231017090012".to_string()),
        "marked on main"
    );
}

/// On Omnibus's database (peer map=gitlab, database.yml naming `gitlab` on the socket),
/// `rewind detect` says whom it connects as and why; as root that is OS user `git`, read
/// from the server's own pg_hba.conf and pg_ident.conf; `--json` carries the same.
#[test]
fn detect_names_the_os_user_the_peer_map_admits() {
    let h = Host::new();
    let out = h.rewind(&["detect"]);
    let t = text(&out);
    // This host tree has a database.yml but no VERSION: no GitLab installation is found
    // (exit code 4, act on it), and the database part is still reported.
    assert_eq!(out.status.code(), Some(4), "{t}");
    assert!(t.contains("gitlabhq_production on socket"), "{t}");
    let out = h.rewind(&["--json", "detect"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let who = &v["databases"][0]["connect_as"];
    if rewind_engine::pg::cluster::running_as_root() {
        assert!(t.contains("connects as OS user git ("), "{t}");
        assert!(
            t.contains("pg_hba.conf line 3: `local   all         all"),
            "{t}"
        );
        assert!(t.contains("maps OS user git to role gitlab"), "{t}");
        assert_eq!(who["as"], "os_user", "{who}");
        assert_eq!(who["user"]["name"], "git", "{who}");
        // And it really connects that way: the whole repair path works as root.
        let out = h.rewind(&["mark-migration", "20151030000000"]);
        assert!(
            text(&out).contains("already marked complete"),
            "{}",
            text(&out)
        );
    } else {
        assert_eq!(who["as"], "process", "{who}");
    }
}
