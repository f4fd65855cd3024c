//! Test support: GitLab-format backups made the way GitLab makes them (real `pg_dump
//! --clean --if-exists` of a throwaway cluster through `gzip -c -1` or `zstd`, component
//! archives with `tar -C dir -cf - . | gzip`, the outer tar with GNU tar).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use chrono::{TimeZone, Utc};

use super::metadata::{BackupInformation, CreatedAt};
use crate::pg::cluster::TempCluster;

/// A plain SQL dump of a small database, made once per test run.
pub fn sql_dump() -> &'static Path {
    static DUMP: OnceLock<PathBuf> = OnceLock::new();
    DUMP.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("rewind-dump")
            .tempdir()
            .expect("temp dir")
            .keep();
        let cluster = TempCluster::start().expect("start a throwaway PostgreSQL cluster");
        cluster
            .create_database("gitlabhq_production")
            .expect("create database");
        let mut c = cluster.connect("gitlabhq_production").expect("connect");
        c.batch_execute(
            "CREATE TABLE projects (id bigserial PRIMARY KEY, name text NOT NULL, path text, created_at timestamptz DEFAULT now());
             INSERT INTO projects (name, path) SELECT 'project ' || g, md5(g::text) || md5((g * 7)::text) FROM generate_series(1, 30000) g;
             CREATE TABLE schema_migrations (version varchar PRIMARY KEY);
             INSERT INTO schema_migrations SELECT (20240101000000 + g)::text FROM generate_series(1, 500) g;",
        )
        .expect("fill database");
        let out = cluster
            .command(
                "pg_dump",
                &["--clean".as_ref(), "--if-exists".as_ref(), "gitlabhq_production".as_ref()],
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

/// How the database dump is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DumpCompression {
    /// `gzip -c -1` (GitLab's default).
    Gzip,
    /// `zstd` through `COMPRESS_CMD`, still named `.gz`.
    Zstd,
}

/// Run `cmd` with `input` on stdin, writing stdout to `out`.
pub fn pipe_file(cmd: &mut Command, input: &Path, out: &Path) {
    let status = cmd
        .stdin(fs::File::open(input).expect("open input"))
        .stdout(fs::File::create(out).expect("create output"))
        .status()
        .expect("run compressor");
    assert!(status.success(), "{cmd:?} failed");
}

/// The manifest GitLab 16.10.3-ee would write.
pub fn information(version: &str, skipped: &[&str]) -> BackupInformation {
    BackupInformation {
        db_version: Some("20240410123456".into()),
        created_at: Some(CreatedAt::Time(
            Utc.with_ymd_and_hms(2024, 4, 23, 10, 15, 42)
                .single()
                .expect("time"),
        )),
        gitlab_version: version.parse().ok(),
        gitlab_version_raw: Some(version.into()),
        tar_version: Some("tar (GNU tar) 1.34".into()),
        installation_type: Some("omnibus-gitlab".into()),
        skipped: skipped.iter().map(|s| s.to_string()).collect(),
        repositories_server_side: Some(false),
        ..Default::default()
    }
}

/// A backup being assembled in a staging directory (which is also an unpacked backup).
pub struct Staging {
    pub dir: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Staging {
    /// Stage `backup_information.yml` (when given), `db/database.sql.gz` and
    /// `uploads.tar.gz`.
    pub fn new(info: Option<&BackupInformation>, dump: DumpCompression) -> Self {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().join("staging");
        fs::create_dir_all(dir.join("db")).expect("mkdir db");
        if let Some(info) = info {
            fs::write(dir.join("backup_information.yml"), info.to_yaml()).expect("write yml");
        }
        let gz = dir.join("db/database.sql.gz");
        match dump {
            DumpCompression::Gzip => {
                pipe_file(Command::new("gzip").args(["-c", "-1"]), sql_dump(), &gz)
            }
            DumpCompression::Zstd => {
                pipe_file(Command::new("zstd").args(["-q", "-c"]), sql_dump(), &gz)
            }
        }
        // uploads: tar -C dir -cf - . | gzip
        let uploads = tmp.path().join("uploads");
        fs::create_dir_all(uploads.join("@hashed/ab/cd")).expect("mkdir uploads");
        for i in 0..5 {
            let mut f = fs::File::create(uploads.join(format!("@hashed/ab/cd/file{i}.txt")))
                .expect("create upload");
            for j in 0..2000 {
                writeln!(f, "upload {i} line {j}").expect("write upload");
            }
        }
        let raw = tmp.path().join("uploads.tar");
        let status = Command::new("tar")
            .arg("-C")
            .arg(&uploads)
            .args(["-cf"])
            .arg(&raw)
            .arg(".")
            .status()
            .expect("tar uploads");
        assert!(status.success());
        pipe_file(&mut Command::new("gzip"), &raw, &dir.join("uploads.tar.gz"));
        fs::remove_file(&raw).expect("rm");
        Staging { dir, _tmp: tmp }
    }

    /// The outer tar, as GitLab builds it: `tar -C staging -cf out <members>`.
    pub fn tar(&self, out: &Path) {
        let mut members: Vec<String> = Vec::new();
        for m in [
            "backup_information.yml",
            "db",
            "uploads.tar.gz",
            "repositories",
        ] {
            if self.dir.join(m).exists() {
                members.push(m.into());
            }
        }
        let status = Command::new("tar")
            .arg("-C")
            .arg(&self.dir)
            .arg("-cf")
            .arg(out)
            .args(&members)
            .status()
            .expect("run tar");
        assert!(status.success(), "tar failed");
    }
}

/// Build `<dir>/<id>_gitlab_backup.tar` with a dump compressed as asked.
pub fn gitlab_archive(dir: &Path, id: &str, version: &str, dump: DumpCompression) -> PathBuf {
    let staging = Staging::new(Some(&information(version, &[])), dump);
    let out = dir.join(format!("{id}_gitlab_backup.tar"));
    staging.tar(&out);
    out
}

/// Cut `path` to `len` bytes.
pub fn truncate(path: &Path, len: u64) {
    fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open")
        .set_len(len)
        .expect("truncate");
}
