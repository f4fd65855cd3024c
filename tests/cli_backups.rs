//! `rewind backups` and `rewind inspect` on real GitLab-format archives, through the built
//! binary: archives made the way GitLab makes them (GNU tar outer archive, a real
//! `pg_dump --clean --if-exists` of a throwaway cluster through `gzip -c -1` or through
//! zstd under the `.gz` name, `tar -C dir -cf - . | gzip` components), on a root made like
//! an Omnibus host.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use rewind_engine::pg::cluster::{running_as_root, TempCluster};

const ID: &str = "1713867342_2024_04_23_16.10.3-ee";
const BACKUPS: &str = "var/opt/gitlab/backups";

/// A plain SQL dump of a small database, made once per test binary.
fn sql_dump() -> &'static Path {
    static DUMP: OnceLock<PathBuf> = OnceLock::new();
    DUMP.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir").keep();
        let cluster = TempCluster::start().expect("start a throwaway PostgreSQL cluster");
        cluster
            .create_database("gitlabhq_production")
            .expect("create database");
        let mut c = cluster.connect("gitlabhq_production").expect("connect");
        c.batch_execute(
            "CREATE TABLE issues (id bigserial PRIMARY KEY, title text NOT NULL, description text);
             INSERT INTO issues (title, description)
               SELECT 'issue ' || g, md5(g::text) || ' ' || md5((g * 31)::text) FROM generate_series(1, 30000) g;
             CREATE TABLE schema_migrations (version varchar PRIMARY KEY);
             INSERT INTO schema_migrations SELECT (20240101000000 + g)::text FROM generate_series(1, 300) g;",
        )
        .expect("fill database");
        let out = cluster
            .command(
                "pg_dump",
                &[
                    "--clean".as_ref(),
                    "--if-exists".as_ref(),
                    "gitlabhq_production".as_ref(),
                ],
            )
            .stderr(Stdio::inherit())
            .output()
            .expect("run pg_dump");
        assert!(out.status.success(), "pg_dump failed");
        let path = dir.join("database.sql");
        fs::write(&path, &out.stdout).expect("write dump");
        path
    })
}

fn pipe(cmd: &mut Command, input: &Path, out: &Path) {
    let status = cmd
        .stdin(fs::File::open(input).expect("open input"))
        .stdout(fs::File::create(out).expect("create output"))
        .status()
        .expect("run compressor");
    assert!(status.success(), "{cmd:?} failed");
}

#[derive(Clone, Copy, PartialEq)]
enum Dump {
    Gzip,
    Zstd,
}

fn manifest(version: &str) -> String {
    format!(
        ":db_version: '20240410123456'
:backup_created_at: !ruby/object:ActiveSupport::TimeWithZone
  utc: 2024-04-23 10:15:42.123456789 Z
  zone: !ruby/object:ActiveSupport::TimeZone
    name: Etc/UTC
  time: 2024-04-23 10:15:42.123456789 Z
:gitlab_version: {version}
:tar_version: tar (GNU tar) 1.34
:installation_type: omnibus-gitlab
:skipped: ''
:repositories_storages: ''
:repositories_paths: ''
:skip_repositories_paths: ''
:repositories_server_side: false
:full_backup_id:
"
    )
}

/// Stage a backup's members in a directory, GitLab's way.
fn stage(dir: &Path, manifest_text: Option<&str>, dump: Dump) {
    fs::create_dir_all(dir.join("db")).unwrap();
    if let Some(m) = manifest_text {
        fs::write(dir.join("backup_information.yml"), m).unwrap();
    }
    let gz = dir.join("db/database.sql.gz");
    match dump {
        Dump::Gzip => pipe(Command::new("gzip").args(["-c", "-1"]), sql_dump(), &gz),
        Dump::Zstd => pipe(Command::new("zstd").args(["-q", "-c"]), sql_dump(), &gz),
    }
    let uploads = dir.parent().unwrap().join("uploads-src");
    fs::create_dir_all(uploads.join("@hashed/12/34")).unwrap();
    let mut f = fs::File::create(uploads.join("@hashed/12/34/avatar.png")).unwrap();
    for i in 0..3000 {
        writeln!(f, "pixel row {i}").unwrap();
    }
    // tar -C dir -cf - . | gzip
    let mut tar = Command::new("tar")
        .arg("-C")
        .arg(&uploads)
        .args(["-cf", "-", "."])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let status = Command::new("gzip")
        .stdin(tar.stdout.take().unwrap())
        .stdout(fs::File::create(dir.join("uploads.tar.gz")).unwrap())
        .status()
        .unwrap();
    assert!(status.success());
    assert!(tar.wait().unwrap().success());
}

/// `tar -C staging -cf out backup_information.yml db uploads.tar.gz`.
fn outer_tar(staging: &Path, out: &Path) {
    let mut args: Vec<&str> = Vec::new();
    for m in ["backup_information.yml", "db", "uploads.tar.gz"] {
        if staging.join(m).exists() {
            args.push(m);
        }
    }
    let status = Command::new("tar")
        .arg("-C")
        .arg(staging)
        .arg("-cf")
        .arg(out)
        .args(&args)
        .status()
        .unwrap();
    assert!(status.success());
}

/// A root made like an Omnibus GitLab 16.10.3-ee host, with an empty backup directory.
fn gitlab_root() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    fs::set_permissions(root.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let rails = root.path().join("opt/gitlab/embedded/service/gitlab-rails");
    fs::create_dir_all(&rails).unwrap();
    fs::write(rails.join("VERSION"), "16.10.3-ee\n").unwrap();
    fs::write(
        root.path().join("opt/gitlab/version-manifest.txt"),
        "gitlab-ee 16.10.3\n",
    )
    .unwrap();
    fs::create_dir_all(root.path().join(BACKUPS)).unwrap();
    root
}

/// Put a backup `<id>_gitlab_backup.tar` into the root's backup directory.
fn add_backup(root: &Path, id: &str, manifest_text: Option<&str>, dump: Dump) -> PathBuf {
    let work = tempfile::tempdir().unwrap();
    let staging = work.path().join("staging");
    stage(&staging, manifest_text, dump);
    let out = root.join(BACKUPS).join(format!("{id}_gitlab_backup.tar"));
    outer_tar(&staging, &out);
    out
}

fn rewind(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rewind"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run rewind")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Every file under `dir` with its size and modification time: proves nothing was written.
fn tree_state(dir: &Path) -> BTreeMap<PathBuf, (u64, std::time::SystemTime)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let md = e.path().symlink_metadata().unwrap();
            if md.is_dir() {
                stack.push(e.path());
            }
            out.insert(e.path(), (md.len(), md.modified().unwrap()));
        }
    }
    out
}

/// Find a member's byte range with GNU tar's own block numbers.
fn member_range(archive: &Path, member: &str) -> (u64, u64) {
    let out = Command::new("tar")
        .args(["-tvR", "-f"])
        .arg(archive)
        .output()
        .unwrap();
    for line in text(&out.stdout).lines() {
        // "block 1: -rw-r--r-- root/root 12345 2024-... db/database.sql.gz"
        if line.ends_with(&format!(" {member}")) {
            let block: u64 = line
                .trim_start_matches("block ")
                .split(':')
                .next()
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            let size: u64 = line.split_whitespace().nth(4).unwrap().parse().unwrap();
            return ((block + 1) * 512, size);
        }
    }
    panic!("{member} not in {}", archive.display());
}

#[test]
fn the_issue_check_zstd_dump_on_a_16_10_3_host() {
    let root = gitlab_root();
    let r = root.path().to_str().unwrap();
    let archive = add_backup(root.path(), ID, Some(&manifest("16.10.3-ee")), Dump::Zstd);
    let before = tree_state(root.path());

    let out = rewind(&["backups", "--root", r, "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let b = &doc["backups"][0];
    assert_eq!(b["id"], ID);
    assert_eq!(b["version"], "16.10.3-ee");
    assert_eq!(b["version_matches"], true);
    assert_eq!(b["databases"][0], "main");
    assert_eq!(b["components"][0], "uploads");
    assert_eq!(doc["installed_version"], "16.10.3-ee");

    let out = rewind(&["inspect", ID, "--root", r, "--verify"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("db/database.sql.gz"), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("db/database.sql.gz") && l.contains("zstd")),
        "{stdout}"
    );
    assert!(stdout.contains("Verified"), "{stdout}");

    let out = rewind(&["inspect", "1713867", "--root", r, "--verify", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["backup"]["databases"][0]["compression"], "zstd");
    let members = doc["verify"]["members"].as_array().unwrap();
    let db = members
        .iter()
        .find(|m| m["name"] == "db/database.sql.gz")
        .unwrap();
    assert_eq!(db["compression"], "zstd");
    assert_eq!(db["decoded_bytes"], fs::metadata(sql_dump()).unwrap().len());
    assert_eq!(tree_state(root.path()), before, "inspect wrote something");

    // The same archive truncated to 200 kB fails, naming the member.
    let (offset, size) = member_range(&archive, "db/database.sql.gz");
    assert!(offset + size > 200_000, "dump too small for this check");
    fs::OpenOptions::new()
        .write(true)
        .open(&archive)
        .unwrap()
        .set_len(200_000)
        .unwrap();
    let out = rewind(&["inspect", ID, "--root", r, "--verify"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("db/database.sql.gz"), "{err}");
    assert!(err.contains(&format!("{ID}_gitlab_backup.tar")), "{err}");
    assert!(err.contains("truncated"), "{err}");
    // The listing notices it from the headers and says so.
    let out = rewind(&["backups", "--root", r, "--json"]);
    assert!(!out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(doc["backups"][0]["error"]
        .as_str()
        .unwrap()
        .contains("db/database.sql.gz"));
}

#[test]
fn listing_is_newest_first_with_versions_and_human_table() {
    let root = gitlab_root();
    let r = root.path().to_str().unwrap();
    add_backup(root.path(), ID, Some(&manifest("16.10.3-ee")), Dump::Gzip);
    let older = manifest("16.9.2-ee").replace("2024-04-23", "2024-03-01");
    add_backup(
        root.path(),
        "1709251200_2024_03_01_16.9.2-ee",
        Some(&older),
        Dump::Gzip,
    );
    let out = rewind(&["backups", "--root", r, "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<&str> = doc["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![ID, "1709251200_2024_03_01_16.9.2-ee"]);
    assert_eq!(doc["backups"][1]["version_matches"], false);
    let out = rewind(&["backups", "--root", r]);
    let table = text(&out.stdout);
    let first = table.lines().position(|l| l.contains(ID)).unwrap();
    let second = table
        .lines()
        .position(|l| l.contains("1709251200"))
        .unwrap();
    assert!(first < second, "{table}");
    assert!(table.contains("16.9.2-ee"), "{table}");

    // --backup-dir points elsewhere (a host path under the root).
    let other = root.path().join("srv/backups");
    fs::create_dir_all(&other).unwrap();
    let out = rewind(&["backups", "--root", r, "--backup-dir", "/srv/backups"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("no GitLab backups here"), "{err}");
}

#[test]
fn damaged_archives_fail_naming_archive_and_member() {
    let root = gitlab_root();
    let r = root.path().to_str().unwrap();
    let dir = root.path().join(BACKUPS);

    // One byte flipped inside the gzip dump.
    let a = add_backup(
        root.path(),
        "1700000001",
        Some(&manifest("16.10.3-ee")),
        Dump::Gzip,
    );
    let (offset, size) = member_range(&a, "db/database.sql.gz");
    let mut bytes = fs::read(&a).unwrap();
    bytes[(offset + size / 2) as usize] ^= 0x40;
    fs::write(&a, bytes).unwrap();
    let out = rewind(&["inspect", "1700000001", "--root", r, "--verify"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("1700000001_gitlab_backup.tar") && err.contains("db/database.sql.gz"),
        "{err}"
    );
    assert!(err.contains("gzip"), "{err}");
    // Without --verify only headers are read: it inspects fine.
    let out = rewind(&["inspect", "1700000001", "--root", r]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    // A zstd dump cut short inside an intact tar.
    let work = tempfile::tempdir().unwrap();
    let staging = work.path().join("s");
    stage(&staging, Some(&manifest("16.10.3-ee")), Dump::Zstd);
    let dump = staging.join("db/database.sql.gz");
    let len = fs::metadata(&dump).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&dump)
        .unwrap()
        .set_len(len / 3)
        .unwrap();
    let b = dir.join("1700000002_gitlab_backup.tar");
    outer_tar(&staging, &b);
    let out = rewind(&["inspect", b.to_str().unwrap(), "--verify"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("db/database.sql.gz") && err.contains("zstd"),
        "{err}"
    );
    assert!(err.contains("1700000002_gitlab_backup.tar"), "{err}");

    // Missing manifest.
    let c = add_backup(root.path(), "1700000003", None, Dump::Gzip);
    let out = rewind(&["inspect", c.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("backup_information.yml") && err.contains("1700000003"),
        "{err}"
    );

    // Malformed manifest.
    add_backup(
        root.path(),
        "1700000004",
        Some(":db_version: '2024\n:gitlab_version: [16.10.3\n"),
        Dump::Gzip,
    );
    let out = rewind(&["inspect", "1700000004", "--root", r]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("backup_information.yml") && err.contains("malformed"),
        "{err}"
    );

    // Not a tar.
    let e = dir.join("1700000005_gitlab_backup.tar");
    fs::write(&e, "<html>404 Not Found</html>\n".repeat(50)).unwrap();
    let out = rewind(&["inspect", "1700000005", "--root", r, "--verify"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("not a tar archive") && err.contains("1700000005"),
        "{err}"
    );

    // The listing shows all five, marks the broken ones, and exits non-zero.
    let out = rewind(&["backups", "--root", r, "--json"]);
    assert!(!out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let backups = doc["backups"].as_array().unwrap();
    assert_eq!(backups.len(), 5);
    let broken: Vec<&str> = backups
        .iter()
        .filter(|b| !b["error"].is_null())
        .map(|b| b["id"].as_str().unwrap())
        .collect();
    // The flipped byte and the cut zstd frame need --verify; headers are intact.
    assert_eq!(broken.len(), 3, "{broken:?}");
}

#[test]
fn ids_matching_nothing_or_several_and_an_empty_directory() {
    let root = gitlab_root();
    let r = root.path().to_str().unwrap();
    let out = rewind(&["backups", "--root", r]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("no GitLab backups here"));
    let out = rewind(&["inspect", "1713", "--root", r]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("no GitLab backups here"));

    let a = add_backup(root.path(), ID, Some(&manifest("16.10.3-ee")), Dump::Gzip);
    let second = "1713869999_2024_04_23_16.10.3-ee";
    fs::copy(
        &a,
        root.path()
            .join(BACKUPS)
            .join(format!("{second}_gitlab_backup.tar")),
    )
    .unwrap();
    let out = rewind(&["inspect", "171386", "--root", r]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("Found more than one backup"), "{err}");
    assert!(err.contains(ID) && err.contains(second), "{err}");
    let out = rewind(&["inspect", "1600000000", "--root", r]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("no backup matches `1600000000`") && err.contains(ID),
        "{err}"
    );
    let out = rewind(&["inspect", "1713869", "--root", r, "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["backup"]["id"], second);
}

#[test]
fn an_unreadable_file_is_refused_with_the_reason() {
    let root = gitlab_root();
    let a = add_backup(root.path(), ID, Some(&manifest("16.10.3-ee")), Dump::Gzip);
    fs::set_permissions(&a, fs::Permissions::from_mode(0o000)).unwrap();
    // Root reads anything; run the binary as `nobody` then (the root tree is 0755, the
    // archive 0000), as the unprivileged user who would meet this.
    let out = if running_as_root() {
        Command::new("runuser")
            .args(["-u", "nobody", "--"])
            .arg(env!("CARGO_BIN_EXE_rewind"))
            .args(["inspect", "--verify"])
            .arg(&a)
            .output()
            .unwrap()
    } else {
        rewind(&["inspect", "--verify", a.to_str().unwrap()])
    };
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("cannot read") && err.contains(&format!("{ID}_gitlab_backup.tar")),
        "{err}"
    );
    assert!(err.to_lowercase().contains("permission denied"), "{err}");
}

#[test]
fn an_unpacked_backup_directory_is_listed_and_verified() {
    let root = gitlab_root();
    let r = root.path().to_str().unwrap();
    let staging = root.path().join(BACKUPS).join("unpacked");
    stage(&staging, Some(&manifest("16.10.3-ee")), Dump::Gzip);
    let out = rewind(&["backups", "--root", r, "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["backups"][0]["kind"], "directory");
    let out = rewind(&[
        "inspect",
        "--root",
        r,
        "--verify",
        "/var/opt/gitlab/backups/unpacked",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("gzip"));
}
