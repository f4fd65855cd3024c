//! `rewind restore`'s default strategy, beside and swap, and `rewind undo` / `rewind
//! cleanup`, through the built binary on real clusters (Omnibus's model: peer map, the
//! non-superuser owner `gitlab` without CREATEDB, the superuser `gitlab-psql` reached by
//! peer as the OS user of that name).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use rewind_engine::journal::Journal;
use rewind_engine::pg::cluster::TempCluster;
use rewind_engine::restore::beside::{AdminConfig, AdminPath, SwapRecord};
use rewind_engine::sandbox::compare::DbFingerprint;

mod common;
use common::{data_of, json, schema_of, text};

const DB: &str = "gitlabhq_production";
const ID: &str = "1713867342_2024_04_23_16.10.3-ee";

const SCHEMA: &str = r#"
    CREATE TABLE schema_migrations (version character varying NOT NULL PRIMARY KEY);
    INSERT INTO schema_migrations VALUES ('20240101000000'), ('20240301000000');
    CREATE TABLE projects (id bigserial PRIMARY KEY, name text NOT NULL, data bytea);
    INSERT INTO projects (name, data) SELECT 'p' || g, '\x00ff'::bytea
        FROM generate_series(1, 500) g;
    CREATE INDEX index_projects_on_name ON projects USING gin (name gin_trgm_ops);
    CREATE TABLE events (id bigint, created_at date NOT NULL);
    INSERT INTO events SELECT g, '2024-03-01' FROM generate_series(1, 50) g;
"#;

const FAILED_UPGRADE: &str = r#"
    INSERT INTO schema_migrations VALUES ('20240501000000');
    CREATE TABLE lfs_objects (id bigserial PRIMARY KEY, oid text);
    INSERT INTO lfs_objects (oid) SELECT 'o' || g FROM generate_series(1, 7) g;
    ALTER TABLE projects ADD COLUMN new_flag boolean;
    CREATE SCHEMA upgrade_only;
    CREATE FUNCTION upgrade_only.f() RETURNS int LANGUAGE sql AS 'SELECT 1';
    DELETE FROM projects WHERE id < 10;
"#;

struct Fixture {
    cluster: TempCluster,
    root: tempfile::TempDir,
    backup_dir: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let cluster = TempCluster::start().unwrap();
        rewind_engine::sandbox::create_gitlab_database(&cluster, DB).unwrap();
        cluster
            .connect_app(DB)
            .unwrap()
            .batch_execute(SCHEMA)
            .unwrap();
        let root = tempfile::tempdir().unwrap();
        let rails = root.path().join("opt/gitlab/embedded/service/gitlab-rails");
        std::fs::create_dir_all(&rails).unwrap();
        std::fs::write(rails.join("VERSION"), "16.10.3-ee\n").unwrap();
        std::fs::write(
            root.path().join("opt/gitlab/version-manifest.txt"),
            "gitlab-ee 16.10.3\n",
        )
        .unwrap();
        let backup_dir = root.path().join("var/opt/gitlab/backups");
        std::fs::create_dir_all(&backup_dir).unwrap();
        let f = Fixture {
            cluster,
            root,
            backup_dir,
        };
        let out = f
            .cluster
            .conn_spec(DB)
            .client_command(&f.cluster.tool_path("pg_dump"), "backup")
            .args(["--clean", "--if-exists"])
            .output()
            .unwrap();
        assert!(out.status.success());
        f.write_archive(&out.stdout);
        f
    }

    fn write_archive(&self, dump: &[u8]) {
        let staging = tempfile::tempdir().unwrap();
        std::fs::create_dir(staging.path().join("db")).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(dump).unwrap();
        std::fs::write(
            staging.path().join("db/database.sql.gz"),
            gz.finish().unwrap(),
        )
        .unwrap();
        std::fs::write(
            staging.path().join("backup_information.yml"),
            format!(
                "---\n:db_version: '20240301000000'\n:backup_created_at: 2024-04-23 16:10:03 +0000\n:gitlab_version: 16.10.3-ee\n:tar_version: tar (GNU tar) 1.34\n:installation_type: omnibus-gitlab\n:skipped: builds,artifacts,uploads,repositories\n:backup_id: {ID}\n"
            ),
        )
        .unwrap();
        let archive = self.backup_dir.join(format!("{ID}_gitlab_backup.tar"));
        let _ = std::fs::remove_file(&archive);
        let st = Command::new("tar")
            .arg("-cf")
            .arg(&archive)
            .arg("-C")
            .arg(staging.path())
            .args(["backup_information.yml", "db"])
            .status()
            .unwrap();
        assert!(st.success());
    }

    fn rewind(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_rewind"))
            .arg("--root")
            .arg(self.root.path())
            .arg("--database-url")
            .arg(format!(
                "postgresql://gitlab@/{DB}?host={}&port={}",
                self.cluster.socket_dir().display(),
                self.cluster.port()
            ))
            .args(args)
            .env_remove("REWIND_DATABASE_URL")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn restore(&self, args: &[&str]) -> Output {
        let mut a = vec!["restore", "--backup", ID];
        a.extend_from_slice(args);
        self.rewind(&a)
    }

    fn databases(&self) -> Vec<String> {
        self.cluster
            .connect("postgres")
            .unwrap()
            .query(
                "SELECT datname::text FROM pg_database WHERE datname LIKE $1 ORDER BY 1",
                &[&format!("{DB}%")],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    }

    fn journal(&self) -> PathBuf {
        self.backup_dir.join("rewind")
    }
}

fn fingerprint(c: &TempCluster, db: &str) -> (String, DbFingerprint) {
    (schema_of(c, db), data_of(c, db))
}

/// GitLab's pipeline into a fresh database: `gzip -dc database.sql.gz | psql` as `gitlab`.
fn psql_reference(f: &Fixture, db: &str) {
    rewind_engine::sandbox::create_gitlab_database(&f.cluster, db).unwrap();
    let archive = f.backup_dir.join(format!("{ID}_gitlab_backup.tar"));
    let mut ar = tar::Archive::new(std::fs::File::open(archive).unwrap());
    let mut sql = Vec::new();
    for e in ar.entries().unwrap() {
        let e = e.unwrap();
        if e.path().unwrap().ends_with("db/database.sql.gz") {
            flate2::read::GzDecoder::new(e)
                .read_to_end(&mut sql)
                .unwrap();
        }
    }
    let mut child = f
        .cluster
        .conn_spec(db)
        .client_command(&f.cluster.tool_path("psql"), "psql-reference")
        .arg("-q")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&sql).unwrap();
    assert!(child.wait().unwrap().success());
}

#[test]
fn default_restore_swaps_beside_keeps_the_failed_database_and_undo_swaps_back() {
    let f = Fixture::new();
    psql_reference(&f, "reference");
    f.cluster
        .connect_app(DB)
        .unwrap()
        .batch_execute(FAILED_UPGRADE)
        .unwrap();
    let failed = fingerprint(&f.cluster, DB);

    // The dry run says which strategy runs and why.
    let plan = f.restore(&["--dry-run", "--confirm-drop", DB, "--json"]);
    assert!(plan.status.success(), "{}", text(&plan));
    let plan = json(&plan);
    assert_eq!(plan["strategy"]["strategy"], "beside", "{plan:#}");
    let reasons = plan["strategy"]["reasons"].to_string();
    assert!(reasons.contains("MiB free"), "{reasons}");
    assert!(reasons.contains("gitlab-psql"), "{reasons}");
    let text_plan = f.restore(&["--dry-run", "--confirm-drop", DB]);
    assert!(
        text(&text_plan).contains("Strategy: beside and swap"),
        "{}",
        text(&text_plan)
    );

    // A session left on the live database (GitLab should be stopped) is ended.
    let mut lingering = f.cluster.connect_app(DB).unwrap();
    let out = f.restore(&["--confirm-drop", DB, "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let report = json(&out);
    assert_eq!(report["ok"], true, "{report:#}");
    assert_eq!(report["strategy"]["strategy"], "beside");
    let main = &report["databases"][0];
    let kept = main["kept_database"].as_str().unwrap().to_string();
    assert!(kept.starts_with(&format!("{DB}_before_rewind_")), "{kept}");
    assert_eq!(report["kept_databases"][0], kept.as_str());
    assert!(main["snapshot"].is_null(), "no snapshot with beside");
    assert_eq!(
        main["beside"]["ended_sessions"].as_array().unwrap().len(),
        1
    );
    assert!(lingering.simple_query("SELECT 1").is_err());
    assert!(
        !f.journal().join("snapshots").exists(),
        "beside takes no snapshot"
    );
    // The live name holds psql's restore, the kept one the failed upgrade, exactly.
    assert_eq!(
        fingerprint(&f.cluster, DB),
        fingerprint(&f.cluster, "reference")
    );
    assert_eq!(fingerprint(&f.cluster, &kept), failed);
    assert_eq!(f.databases(), vec![DB.to_string(), kept.clone()]);
    // Owner, encoding, collation as the live database had them.
    let row = f
        .cluster
        .connect("postgres")
        .unwrap()
        .query_one(
            "SELECT count(DISTINCT (pg_get_userbyid(datdba), encoding, datcollate, datctype))::int \
             FROM pg_database WHERE datname IN ($1, $2)",
            &[&DB, &kept],
        )
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 1);
    // Journal: each rename begun before it ran, and ended.
    let jtext = std::fs::read_to_string(f.journal().join("journal.jsonl")).unwrap();
    let steps: Vec<(String, String)> = jtext
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["step"].as_str().unwrap().to_string(),
                v["stage"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let pos = |s: &str, st: &str| {
        steps
            .iter()
            .position(|(a, b)| a == s && b == st)
            .unwrap_or_else(|| panic!("no {st} of {s}: {jtext}"))
    };
    assert!(pos("beside.main.create", "end") < pos("restore.main.verify", "end"));
    assert!(pos("restore.main.verify", "end") < pos("swap.main.rename_live", "begin"));
    assert!(pos("swap.main.rename_live", "end") < pos("swap.main.rename_new", "begin"));
    assert!(pos("swap.main.rename_new", "begin") < pos("swap.main.rename_new", "end"));
    assert!(!steps.iter().any(|(s, _)| s == "drop"));

    // The loss report reads the kept database when asked: the failed upgrade's table and
    // its rows are there.
    let loss = f.restore(&["--dry-run", "--loss-from", &kept, "--json"]);
    let loss = json(&loss);
    let new_tables = loss["databases"][0]["since_backup"]["new_tables"].to_string();
    assert!(
        new_tables.contains("lfs_objects") && new_tables.contains("\"rows\":7"),
        "{loss:#}"
    );

    // cleanup lists the kept database with its size, removes nothing unasked.
    let listed = f.rewind(&["--json", "cleanup"]);
    assert!(listed.status.success(), "{}", text(&listed));
    let listed = json(&listed);
    assert!(
        listed["kept"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["name"] == kept.as_str() && k["bytes"].as_u64().unwrap() > 0),
        "{listed:#}"
    );

    // undo without the typed name changes nothing; with it, the failed state is back.
    let refused = f.rewind(&["undo"]);
    assert_eq!(refused.status.code(), Some(3), "{}", text(&refused));
    assert_eq!(
        fingerprint(&f.cluster, DB),
        fingerprint(&f.cluster, "reference")
    );
    let undone = f.rewind(&["undo", "--confirm", DB]);
    assert!(undone.status.success(), "{}", text(&undone));
    assert_eq!(fingerprint(&f.cluster, DB), failed);
    let restored_name = kept.replace("_before_rewind_", "_rewind_");
    assert_eq!(
        fingerprint(&f.cluster, &restored_name),
        fingerprint(&f.cluster, "reference")
    );

    // cleanup removes an item only when its name is typed.
    let bad = f.rewind(&["cleanup", "--remove", "gitlabhq"]);
    assert_eq!(
        bad.status.code(),
        Some(1).or(bad.status.code()),
        "{}",
        text(&bad)
    );
    assert!(f.databases().contains(&restored_name));
    let gone = f.rewind(&["cleanup", "--remove", &restored_name]);
    assert!(gone.status.success(), "{}", text(&gone));
    assert_eq!(f.databases(), vec![DB.to_string()]);
}

#[test]
fn a_failed_load_leaves_the_live_database_and_no_new_one() {
    let f = Fixture::new();
    // A dump whose load fails after the first pass: a duplicate primary key in the data.
    let out = f
        .cluster
        .conn_spec(DB)
        .client_command(&f.cluster.tool_path("pg_dump"), "backup")
        .args(["--clean", "--if-exists"])
        .output()
        .unwrap();
    let mut dump = String::from_utf8(out.stdout).unwrap();
    let at = dump.find("\\.\n").unwrap();
    let line = "1\tduplicate\t\\N\n";
    dump.insert_str(at, line);
    f.write_archive(dump.as_bytes());
    f.cluster
        .connect_app(DB)
        .unwrap()
        .batch_execute(FAILED_UPGRADE)
        .unwrap();
    let failed = fingerprint(&f.cluster, DB);
    let out = f.restore(&["--confirm-drop", DB]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("were removed"), "{t}");
    assert!(t.contains("not changed"), "{t}");
    assert_eq!(fingerprint(&f.cluster, DB), failed);
    assert_eq!(f.databases(), vec![DB.to_string()]);
}

#[test]
fn a_kill_between_the_renames_is_completed_on_the_next_run() {
    let f = Fixture::new();
    f.cluster
        .connect_app(DB)
        .unwrap()
        .batch_execute(FAILED_UPGRADE)
        .unwrap();
    let failed = fingerprint(&f.cluster, DB);
    // A verified restore beside the live one, and the first rename journaled and done:
    // what a kill right after `ALTER DATABASE live RENAME` leaves.
    let stamp = "20240423T161003";
    let new = format!("{DB}_rewind_{stamp}");
    let kept = format!("{DB}_before_rewind_{stamp}");
    psql_reference(&f, &new);
    psql_reference(&f, "reference");
    let rec = SwapRecord {
        connection: "main".into(),
        live: DB.into(),
        new: new.clone(),
        kept: kept.clone(),
        admin: AdminPath::Psql(AdminConfig {
            os_user: f.cluster.server_os_user().unwrap().into(),
            role: f.cluster.superuser().into(),
            psql: f.cluster.tool_path("psql"),
        }),
    };
    let journal = Journal::open_in(&f.journal()).unwrap();
    let detail = serde_json::to_value(&rec).unwrap();
    journal.begin("swap.main", "swap", detail.clone()).unwrap();
    journal
        .begin("swap.main.rename_live", "rename", detail.clone())
        .unwrap();
    f.cluster
        .connect("postgres")
        .unwrap()
        .batch_execute(&format!("ALTER DATABASE \"{DB}\" RENAME TO \"{kept}\""))
        .unwrap();
    drop(journal);
    assert!(!f.databases().contains(&DB.to_string()));

    let out = f.restore(&["--confirm-drop", DB, "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let report = json(&out);
    assert!(
        report["resolved"][0]
            .as_str()
            .unwrap()
            .contains("completed an interrupted swap"),
        "{report:#}"
    );
    assert_eq!(
        fingerprint(&f.cluster, DB),
        fingerprint(&f.cluster, "reference")
    );
    assert_eq!(fingerprint(&f.cluster, &kept), failed);
    // The completed swap can be undone like any other.
    let undone = f.rewind(&["undo", "--confirm", DB]);
    assert!(undone.status.success(), "{}", text(&undone));
    assert_eq!(fingerprint(&f.cluster, DB), failed);
}

#[test]
fn without_a_way_to_create_databases_in_place_runs_and_says_why() {
    let f = Fixture::new();
    f.cluster
        .connect_app(DB)
        .unwrap()
        .batch_execute(FAILED_UPGRADE)
        .unwrap();
    // No CREATEDB for `gitlab`, and an administrator that does not exist.
    let out = f.restore(&[
        "--confirm-drop",
        DB,
        "--db-admin",
        "rewind-no-such-user",
        "--json",
    ]);
    let report = json(&out);
    // In place, the failed upgrade's own schema survives GitLab's drop: the verification
    // says so (exit 1). Beside (the other tests) leaves nothing of it in the restore.
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let failing: Vec<&serde_json::Value> = report["databases"][0]["verify"]["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["status"] == "fail")
        .collect();
    assert_eq!(failing.len(), 1, "{failing:#?}");
    assert!(failing[0]["detail"]
        .as_str()
        .unwrap()
        .contains("upgrade_only"));
    assert_eq!(report["strategy"]["strategy"], "in_place", "{report:#}");
    let reasons = report["strategy"]["reasons"].to_string();
    assert!(
        reasons.contains("cannot create databases") && reasons.contains("rewind-no-such-user"),
        "{reasons}"
    );
    assert!(report["databases"][0]["snapshot"]["path"].is_string());
    assert!(report["databases"][0]["kept_database"].is_null());
    assert_eq!(f.databases(), vec![DB.to_string()]);
}

#[test]
fn an_owner_with_createdb_runs_beside_without_an_administrator() {
    let f = Fixture::new();
    f.cluster
        .connect("postgres")
        .unwrap()
        .batch_execute("ALTER ROLE gitlab CREATEDB")
        .unwrap();
    let out = f.restore(&[
        "--confirm-drop",
        DB,
        "--db-admin",
        "rewind-no-such-user",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let report = json(&out);
    assert_eq!(report["strategy"]["strategy"], "beside", "{report:#}");
    assert_eq!(report["strategy"]["admin"]["via"], "owner", "{report:#}");
    assert!(report["databases"][0]["kept_database"].is_string());
}

#[test]
fn too_little_space_beside_runs_in_place_and_says_why() {
    let f = Fixture::new();
    // Omnibus's data directory on a 1 MiB file system.
    let data = f.root.path().join("var/opt/gitlab/postgresql/data");
    std::fs::create_dir_all(&data).unwrap();
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&data)
        .status()
        .unwrap();
    assert!(st.success(), "mounting a small tmpfs (tests run as root)");
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(self.0).status();
        }
    }
    let _u = Unmount(&data);
    let out = f.restore(&["--dry-run", "--confirm-drop", DB, "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let plan = json(&out);
    assert_eq!(plan["strategy"]["strategy"], "in_place", "{plan:#}");
    let reasons = plan["strategy"]["reasons"].to_string();
    assert!(reasons.contains("not enough free space"), "{reasons}");
    assert!(reasons.contains("postgresql/data"), "{reasons}");
}

/// `rewind cleanup` offers and removes only what Rewind itself kept, through handles opened
/// without following links: a link or a directory of another owner planted where the
/// journal points is neither listed nor followed, and a `tmp` swapped for a link between
/// listing and removal is refused with the victim untouched.
#[test]
fn cleanup_removes_kept_files_without_following_planted_links() {
    use std::os::unix::fs::{symlink, PermissionsExt};
    let f = Fixture::new();
    let victim = tempfile::tempdir().unwrap();
    std::fs::write(victim.path().join("precious"), "keep me").unwrap();
    let host_tmp = Path::new("/var/opt/gitlab/backups/tmp");
    let tmp = f.backup_dir.join("tmp");
    // What a file restore keeps: tmp/<component>.<epoch>/<dir>, root's own, 0700.
    let aside = tmp.join("uploads.1700000000");
    std::fs::create_dir_all(aside.join("uploads/sub")).unwrap();
    std::fs::set_permissions(&aside, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(aside.join("uploads/sub/a.txt"), "old upload").unwrap();
    // Planted: a link where a kept directory would be, and a directory of another owner.
    symlink(victim.path(), tmp.join("builds.1700000001")).unwrap();
    std::fs::create_dir(tmp.join("artifacts.1700000002")).unwrap();
    std::os::unix::fs::chown(tmp.join("artifacts.1700000002"), Some(1234), Some(1234)).unwrap();
    // A snapshot, and a link planted beside it.
    let journal = Journal::open_in(&f.journal()).unwrap();
    let snaps = f.journal().join("snapshots");
    std::fs::create_dir(&snaps).unwrap();
    std::fs::set_permissions(&snaps, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(snaps.join("gitlabhq_production-1700000000.dump"), "PGDMP").unwrap();
    symlink(victim.path().join("precious"), snaps.join("planted.dump")).unwrap();
    for (name, dir) in [
        ("uploads", "uploads.1700000000"),
        ("builds", "builds.1700000001"),
        ("artifacts", "artifacts.1700000002"),
    ] {
        let path = host_tmp.join(dir).join(name);
        let step = format!("files.{name}");
        journal
            .begin(&step, "restore", serde_json::json!({}))
            .unwrap();
        journal
            .end(
                &step,
                "ok",
                serde_json::json!({"moved_aside": {"path": path, "files": 1, "bytes": 10}}),
            )
            .unwrap();
    }

    let listed = f.rewind(&["--json", "cleanup"]);
    assert!(listed.status.success(), "{}", text(&listed));
    let listed = json(&listed);
    let names: Vec<String> = listed["kept"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["kind"] != "database")
        .map(|k| k["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        vec![
            "gitlabhq_production-1700000000.dump".to_string(),
            "uploads.1700000000".to_string()
        ],
        "{listed:#}"
    );

    // The planted names cannot be removed: they are not among what Rewind kept.
    for planted in ["builds.1700000001", "planted.dump"] {
        let out = f.rewind(&["cleanup", "--remove", planted]);
        assert!(!out.status.success(), "{}", text(&out));
    }

    let out = f.rewind(&[
        "cleanup",
        "--remove",
        "gitlabhq_production-1700000000.dump",
        "--remove",
        "uploads.1700000000",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!aside.exists());
    assert!(!snaps.join("gitlabhq_production-1700000000.dump").exists());
    assert!(snaps.join("planted.dump").symlink_metadata().is_ok());
    assert_eq!(
        std::fs::read_to_string(victim.path().join("precious")).unwrap(),
        "keep me"
    );

    // Listed, then `tmp` swapped for a link to a tree holding the same name: refused.
    std::fs::create_dir_all(aside.join("uploads")).unwrap();
    let listed = f.rewind(&["--json", "cleanup"]);
    assert!(listed.status.success(), "{}", text(&listed));
    std::fs::create_dir(victim.path().join("uploads.1700000000")).unwrap();
    std::fs::write(victim.path().join("uploads.1700000000/x"), "victim").unwrap();
    std::fs::rename(&tmp, f.backup_dir.join("tmp.real")).unwrap();
    symlink(victim.path(), &tmp).unwrap();
    let out = f.rewind(&["cleanup", "--remove", "uploads.1700000000"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(victim.path().join("uploads.1700000000/x")).unwrap(),
        "victim"
    );
    let j = std::fs::read_to_string(f.journal().join("journal.jsonl")).unwrap();
    assert!(j.contains("cleanup.path"), "{j}");
}

/// The owner path (a non-superuser role with CREATEDB) cannot end a superuser's session on
/// the live database: the swap is refused naming that session and what to do, the live
/// database keeps the failed state, and the new database is not left behind.
#[test]
fn an_owner_that_cannot_end_a_session_names_it_and_changes_nothing_live() {
    let f = Fixture::new();
    let mut admin = f.cluster.connect("postgres").unwrap();
    admin.batch_execute("ALTER ROLE gitlab CREATEDB").unwrap();
    f.cluster
        .connect_app(DB)
        .unwrap()
        .batch_execute(FAILED_UPGRADE)
        .unwrap();
    let failed = fingerprint(&f.cluster, DB);
    // A superuser session on the live database that the owner may not end.
    let mut holder = f.cluster.connect(DB).unwrap();
    holder
        .batch_execute("SET application_name = 'held-by-a-superuser'")
        .unwrap();
    let out = f.restore(&["--confirm-drop", DB, "--db-admin", "rewind-no-such-user"]);
    assert!(!out.status.success(), "{}", text(&out));
    let msg = text(&out);
    assert!(msg.contains("held-by-a-superuser"), "{msg}");
    assert!(msg.contains("pg_signal_backend"), "{msg}");
    holder.batch_execute("SELECT 1").unwrap();
    drop(holder);
    assert_eq!(fingerprint(&f.cluster, DB), failed);
    assert_eq!(f.databases(), vec![DB.to_string()], "{msg}");
}

/// The in-place strategy's way back: `rewind undo` restores the safety snapshot the
/// restore took before its drop, once the database's name is typed; the failed upgrade's
/// tables and rows are back.
#[test]
fn undo_after_an_in_place_restore_restores_the_safety_snapshot() {
    // The failed upgrade's tables, column, rows and migration row; not its own schema,
    // which GitLab's drop keeps and the in-place restore's verification then fails on
    // (leftovers), as it should.
    const FAILED_TABLES: &str = r#"
        INSERT INTO schema_migrations VALUES ('20240501000000');
        CREATE TABLE lfs_objects (id bigserial PRIMARY KEY, oid text);
        INSERT INTO lfs_objects (oid) SELECT 'o' || g FROM generate_series(1, 7) g;
        ALTER TABLE projects ADD COLUMN new_flag boolean;
        UPDATE projects SET new_flag = true WHERE id % 2 = 0;
        DELETE FROM projects WHERE id < 10;
    "#;
    let f = Fixture::new();
    f.cluster
        .connect_app(DB)
        .unwrap()
        .batch_execute(FAILED_TABLES)
        .unwrap();
    let failed = fingerprint(&f.cluster, DB);

    let out = f.restore(&["--in-place", "--confirm-drop", DB, "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let report = json(&out);
    assert_eq!(report["ok"], true, "{report:#}");
    assert_eq!(report["strategy"]["strategy"], "in_place", "{report:#}");
    assert!(report["kept_databases"].as_array().unwrap().is_empty());
    let snapshot = report["databases"][0]["snapshot"]["path"]
        .as_str()
        .unwrap_or_else(|| panic!("no snapshot: {report:#}"))
        .to_string();
    assert!(std::path::Path::new(&snapshot).is_file(), "{snapshot}");
    let restored = fingerprint(&f.cluster, DB);
    assert_ne!(restored, failed, "the restore replaced the failed state");
    assert_eq!(f.databases(), vec![DB.to_string()], "nothing kept beside");

    // The dry run says what would run, and changes nothing.
    let dry = f.rewind(&["undo", "--dry-run"]);
    assert!(dry.status.success(), "{}", text(&dry));
    assert!(
        text(&dry).contains("restore the safety snapshot") && text(&dry).contains(&snapshot),
        "{}",
        text(&dry)
    );
    // Without the typed name: refused, nothing changed (exit 3).
    let refused = f.rewind(&["undo"]);
    assert_eq!(refused.status.code(), Some(3), "{}", text(&refused));
    assert_eq!(fingerprint(&f.cluster, DB), restored);
    let wrong = f.rewind(&["undo", "--confirm", "gitlabhq"]);
    assert_eq!(wrong.status.code(), Some(3), "{}", text(&wrong));
    assert_eq!(fingerprint(&f.cluster, DB), restored);

    let undone = f.rewind(&["--json", "undo", "--confirm", DB]);
    assert!(undone.status.success(), "{}", text(&undone));
    let undone = json(&undone);
    assert_eq!(
        undone["undo"][0]["action"], "restore_snapshot",
        "{undone:#}"
    );
    assert_eq!(undone["undo"][0]["done"], true, "{undone:#}");
    // The failed upgrade's tables and rows are back: its table and its rows, the
    // projects it deleted and changed, its migration row; the schema as it was.
    let (schema, data) = fingerprint(&f.cluster, DB);
    assert!(
        data.tables
            .get("\"public\".\"lfs_objects\"")
            .is_some_and(|t| t.rows == 7),
        "{data:?}"
    );
    assert_eq!(data, failed.1, "tables and rows of the failed state");
    assert!(schema.contains("new_flag"), "{schema}");
    // The schema as it was, but for one owner: the restore (as GitLab's) re-created
    // `gitlab-psql`'s pg_shadow_lookup as `gitlab` without being allowed to give it back,
    // and the undo, as `gitlab`, may not either; it leaves that function as it is and
    // says so.
    let by_gitlab = |s: &str| {
        s.replace("OWNER TO \"gitlab-psql\"", "OWNER TO gitlab")
            .replace("Owner: gitlab-psql", "Owner: gitlab")
    };
    assert_eq!(by_gitlab(&schema), by_gitlab(&failed.0));
    let detail = undone["undo"][0]["detail"].as_str().unwrap();
    assert!(
        detail.contains("in one transaction")
            && detail.contains("FUNCTION public pg_shadow_lookup(text) gitlab-psql"),
        "{detail}"
    );
    // Journaled before it ran, and ended.
    let jtext = std::fs::read_to_string(f.journal().join("journal.jsonl")).unwrap();
    assert!(
        jtext.lines().any(|l| l.contains("\"undo.snapshot\"")
            && l.contains("\"begin\"")
            && l.contains(&snapshot)),
        "{jtext}"
    );
    assert!(
        jtext.lines().any(|l| l.contains("\"undo.snapshot\"")
            && l.contains("\"end\"")
            && l.contains("\"ok\"")),
        "{jtext}"
    );
}

/// The wizard's restore carries the strategy its confirmation showed: when the runner
/// would now run another (here in place, where beside was confirmed), it refuses before
/// anything changes, instead of dropping what the engineer was told is kept.
#[test]
fn a_restore_confirmed_beside_is_refused_when_it_would_run_in_place() {
    use rewind_engine::backup::catalogue::resolve;
    use rewind_engine::detect::{detect, DetectOptions};
    use rewind_engine::progress::{Cancel, NullSink};
    use rewind_engine::recovery::{self, RecoveryError, RestoreRequest};
    use rewind_engine::restore::beside::Strategy;
    use rewind_engine::root::HostRoot;

    let f = Fixture::new();
    f.cluster
        .connect_app(DB)
        .unwrap()
        .batch_execute(FAILED_UPGRADE)
        .unwrap();
    let failed = fingerprint(&f.cluster, DB);
    let root = HostRoot::new(f.root.path());
    let inst = detect(&root, &DetectOptions::default()).unwrap();
    let url = format!(
        "postgresql://gitlab@/{DB}?host={}&port={}",
        f.cluster.socket_dir().display(),
        f.cluster.port()
    );
    let databases = recovery::databases_for(&root, &inst, Some(&url)).unwrap();
    // Beside could run here (what the screen showed)...
    let shown = recovery::strategy(&root, &inst, &databases, false, None, Default::default());
    assert_eq!(shown.strategy, Strategy::Beside, "{:?}", shown.reasons);
    let backup = resolve(&root, &inst.backup_path, ID, inst.version.as_ref(), false).unwrap();
    let journal = Journal::open_in(&f.journal()).unwrap();
    let req = RestoreRequest {
        root: &root,
        installation: &inst,
        backup: &backup,
        databases,
        confirm_drop: vec![DB.into()],
        confirm_files: true,
        snapshot: true,
        reuse_snapshots: Default::default(),
        verified: None,
        jobs: 2,
        skip: Vec::new(),
        continue_on_error: false,
        allow_version_mismatch: false,
        command: "test".into(),
        repositories: Default::default(),
        // ...but by the time it runs, it would run in place.
        in_place: true,
        db_admin: None,
        expect_strategy: Some(Strategy::Beside),
    };
    let err = recovery::restore(&req, &journal, &NullSink, &Cancel::new()).unwrap_err();
    assert!(
        matches!(err, RecoveryError::StrategyChanged { .. }),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("would now run in place")
            && msg.contains("beside and swap was confirmed")
            && msg.contains("Nothing was changed"),
        "{msg}"
    );
    assert_eq!(
        err.outcome(),
        rewind_engine::restore::database::Outcome::NothingChanged
    );
    // Nothing changed: no snapshot, no drop, no new database.
    assert_eq!(fingerprint(&f.cluster, DB), failed);
    assert_eq!(f.databases(), vec![DB.to_string()]);
    assert!(!f.journal().join("snapshots").exists());
}
