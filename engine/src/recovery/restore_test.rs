//! A restore test of one of the host's own backups (`rewind drill --backup`): proof that it
//! restores, and how long that takes on this host, without touching production.
//!
//! The same steps and checks as a real recovery, against things made for the test only:
//! the archive is verified end to end ([`crate::backup::verify`]); its database(s) are
//! loaded into a throwaway PostgreSQL cluster (PostgreSQL of the dump's major or newer,
//! in a temp directory, on a unix socket) by the same [`RestoreRun`] and loader as
//! `rewind restore` (catalogue, privileges, drop, load, verify: schema_migrations, row
//! counts, leftovers); the file components are extracted into a temp directory with the
//! same safe extraction ([`files::restore_components`] under a temp root); and, when the
//! host runs the backup's GitLab version, GitLab's own `gitlab-rake gitlab:doctor:secrets`
//! runs against the throwaway database (the connection given through the environment
//! Rails reads).
//!
//! It takes no recovery lock and gives way: a recovery holding the host lock
//! ([`lock::host_holder`], read without taking it) stops the test, which then removes what
//! it made. Refusals before anything was made ([`TestError`]) change nothing; a check that
//! fails is in the [`TestReport`], not an error.

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::lock::{self, Holder};
use super::runner::components_of;
use crate::backup::catalogue::BackupEntry;
use crate::detect::{omnibus, InstallKind, Installation};
use crate::exec::{Cmd, Runner};
use crate::files;
use crate::journal::Journal;
use crate::pg::cluster::{ClusterAuth, ClusterOptions, PeerUsers, TempCluster};
use crate::pg::tools::{self, ServerBin, ToolError};
use crate::progress::{Cancel, Sink, SinkExt};
use crate::restore::database::{
    ArchiveSource, DatabaseJob, DumpSource, ParallelLoader, RestoreError, RestoreFacts,
    RestoreOptions, RestoreRun,
};
use crate::restore::drop::DropOptions;
use crate::restore::plan::ComponentPlan;
use crate::restore::verify::Status;
use crate::root::HostRoot;

/// What to test.
#[derive(Debug, Clone)]
pub struct TestRequest<'a> {
    pub root: &'a HostRoot,
    pub installation: &'a Installation,
    pub backup: &'a BackupEntry,
    /// The host's databases (main first, [`super::databases_for`]): their names and the
    /// dump member of each. Only the names are used: nothing connects to them.
    pub databases: Vec<DatabaseJob>,
    /// Where the throwaway cluster and the extraction go (a real path; default: the
    /// system temp dir).
    pub work_dir: PathBuf,
    pub jobs: usize,
    /// Leave the cluster running and the extracted files in place.
    pub keep: bool,
}

/// The result of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Pass,
    Fail,
    Skipped,
}

impl CheckStatus {
    pub fn label(self) -> &'static str {
        match self {
            CheckStatus::Pass => "PASS",
            CheckStatus::Fail => "FAIL",
            CheckStatus::Skipped => "SKIP",
        }
    }
}

/// One check of the test, named after the step it checks.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub step: String,
    pub status: CheckStatus,
    pub detail: String,
}

/// How long a phase took.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseTime {
    pub phase: String,
    pub seconds: f64,
    pub ok: bool,
}

/// One database as the test restored it.
#[derive(Debug, Clone, Serialize)]
pub struct DatabaseResult {
    pub connection: String,
    pub database: String,
    pub member: String,
    /// Bytes of the dump after decompression.
    pub dump_bytes: u64,
    /// `pg_database_size` after the load.
    pub size_bytes: u64,
    pub tables: usize,
    pub rows: u64,
    pub load_seconds: f64,
}

/// One file component as extracted.
#[derive(Debug, Clone, Serialize)]
pub struct FileResult {
    pub name: String,
    pub files: u64,
    pub bytes: u64,
    pub archive_files: u64,
    pub archive_bytes: u64,
}

/// The free-space check made before anything was created.
#[derive(Debug, Clone, Serialize)]
pub struct SpaceCheck {
    pub dir: PathBuf,
    pub needed: u64,
    pub available: u64,
}

/// What was kept (`--keep`) and how to reach it.
#[derive(Debug, Clone, Serialize)]
pub struct Kept {
    pub cluster_dir: PathBuf,
    pub files_dir: Option<PathBuf>,
    pub socket_dir: PathBuf,
    pub port: u16,
    /// Commands to connect (psql as the superuser, as the runuser-mapped OS user), to
    /// stop the cluster, and to remove everything.
    pub connect: String,
    pub stop: String,
    pub remove: String,
}

/// Everything the test found and measured.
#[derive(Debug, Clone, Serialize)]
pub struct TestReport {
    pub backup: String,
    pub archive: PathBuf,
    pub backup_version: Option<String>,
    pub host_version: Option<String>,
    /// The dump's `pg_dump` major (from its header), when read.
    pub dump_pg_major: Option<u32>,
    /// The server binaries the throwaway cluster ran.
    pub server: Option<ServerBin>,
    pub space: Option<SpaceCheck>,
    pub phases: Vec<PhaseTime>,
    pub checks: Vec<Check>,
    /// Databases loaded and verified plus file components extracted: the measured
    /// restore time on this host.
    pub restore_seconds: f64,
    pub databases: Vec<DatabaseResult>,
    pub files: Vec<FileResult>,
    /// What a recovery from this backup would restore.
    pub components: Vec<ComponentPlan>,
    /// Largest disk use of the throwaway cluster and the extraction, sampled after each
    /// phase.
    pub peak_disk_bytes: u64,
    /// Peak resident memory of Rewind itself (`VmHWM`), not counting PostgreSQL.
    pub peak_rss_bytes: Option<u64>,
    /// A recovery started while the test ran; the test stopped for it.
    pub gave_way_to: Option<Holder>,
    pub kept: Option<Kept>,
}

impl TestReport {
    /// The backup restores: every check ran and none failed.
    pub fn passed(&self) -> bool {
        self.gave_way_to.is_none()
            && !self.checks.is_empty()
            && self.checks.iter().all(|c| c.status != CheckStatus::Fail)
    }

    /// The first failed step.
    pub fn failed_step(&self) -> Option<&str> {
        self.checks
            .iter()
            .find(|c| c.status == CheckStatus::Fail)
            .map(|c| c.step.as_str())
    }

    fn check(&mut self, step: impl Into<String>, status: CheckStatus, detail: impl Into<String>) {
        self.checks.push(Check {
            step: step.into(),
            status,
            detail: detail.into(),
        });
    }
}

/// Why the test did not start (nothing was made), or stopped on a signal.
#[derive(Debug, thiserror::Error)]
pub enum TestError {
    #[error("a recovery is running on this host (pid {}, `{}`): the restore test gives way to it and did not start. Run it again when the recovery is over", .0.pid, .0.command)]
    RecoveryRunning(Holder),
    #[error(transparent)]
    NoServer(ToolError),
    #[error("not enough free space in {dir} for the restore test: {needed} bytes needed (twice the decompressed dump(s) for the database and its indexes, the file components, 64 MiB per cluster and database), {available} available. Free some space or point --work-dir at a larger file system; nothing was made")]
    DiskSpace {
        dir: PathBuf,
        needed: u64,
        available: u64,
    },
    #[error("the work directory {dir}: {detail}. Nothing was made")]
    WorkDir { dir: PathBuf, detail: String },
    #[error("restore test interrupted during `{0}`; the throwaway cluster and the temp directory were removed")]
    Interrupted(String),
}

impl TestError {
    /// Whether the test was interrupted (signal) rather than refused.
    pub fn interrupted(&self) -> bool {
        matches!(self, TestError::Interrupted(_))
    }
}

/// Everything the test made, removed when dropped unless kept. Field order matters: the
/// cluster stops before the directories go.
struct Made {
    cluster: Option<TempCluster>,
    work: tempfile::TempDir,
}

impl Made {
    fn disk_bytes(&self) -> u64 {
        let mut n = disk_usage(self.work.path());
        if let Some(c) = &self.cluster {
            n += disk_usage(c.dir());
        }
        n
    }
}

/// Bytes allocated under `dir` (blocks, not apparent sizes), links not followed.
pub fn disk_usage(dir: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(dir) else {
        return 0;
    };
    let mut total = meta.blocks() * 512;
    if meta.is_dir() {
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                total += disk_usage(&e.path());
            }
        }
    }
    total
}

/// Peak resident memory of this process (`VmHWM` of `/proc/self/status`), in bytes.
pub fn peak_rss() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The PostgreSQL major of the `pg_dump` that wrote a plain dump, from its header
/// (`-- Dumped by pg_dump version 16.2 (...)`; else `-- Dumped from database version`).
pub fn dump_pg_major(head: &str) -> Option<u32> {
    let find = |prefix: &str| {
        head.lines().find_map(|l| {
            let v = l.strip_prefix(prefix)?.trim();
            v.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse::<u32>()
                .ok()
        })
    };
    find("-- Dumped by pg_dump version").or_else(|| find("-- Dumped from database version"))
}

fn read_head(source: &dyn DumpSource, member: &str) -> Result<String, String> {
    let opened = source.open(member)?;
    let mut buf = Vec::new();
    opened
        .reader
        .take(64 * 1024)
        .read_to_end(&mut buf)
        .map_err(|e| format!("reading {member}: {e}"))?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// A free port number for the cluster's socket (`.s.PGSQL.<port>`).
fn free_port() -> Option<u16> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .ok()
}

/// The OS users of the throwaway cluster's peer map: Omnibus's (`git` for the role
/// `gitlab`, the server as `gitlab-psql`) when they exist, as GitLab's tools connect on
/// Omnibus; else the server package's `postgres` and `nobody`.
fn peer_users() -> Result<PeerUsers, TestError> {
    let exists = |n: &str| nix::unistd::User::from_name(n).ok().flatten().is_some();
    let mut users = PeerUsers::existing().map_err(|e| TestError::WorkDir {
        dir: PathBuf::from("/"),
        detail: e.to_string(),
    })?;
    if crate::pg::cluster::running_as_root() {
        if exists("git") {
            users.app = "git".into();
        }
        if exists(crate::pg::cluster::OMNIBUS_SUPERUSER) {
            users.admin = crate::pg::cluster::OMNIBUS_SUPERUSER.into();
        }
    }
    Ok(users)
}

/// `postgresql://<role>@/<db>?host=<socket dir>&port=<port>`, values percent-encoded.
pub fn socket_url(role: &str, dbname: &str, socket_dir: &Path, port: u16) -> String {
    format!(
        "postgresql://{}@/{}?host={}&port={port}",
        pct(role),
        pct(dbname),
        pct(&socket_dir.display().to_string())
    )
}

fn pct(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The models `gitlab:doctor:secrets` reports as not decrypting: its lines
/// `- <Model> failures: <n>` with n > 0, read by the post-restore check's parser
/// ([`super::postcheck::parse_doctor_secrets`]). Returns the models checked and those failing.
pub fn secrets_failures(lines: &[String]) -> (usize, Vec<(String, u64)>) {
    let d = super::postcheck::parse_doctor_secrets(&lines.join("\n"));
    let failed = d.failing().map(|m| (m.model.clone(), m.failures)).collect();
    (d.models.len(), failed)
}

/// Run the restore test. `cancel` is set by signals; a recovery starting sets it too (the
/// test gives way and says so in the report).
pub fn run(
    req: &TestRequest<'_>,
    sink: &dyn Sink,
    cancel: &Cancel,
) -> Result<TestReport, TestError> {
    if let Some(h) = lock::host_holder(req.root) {
        return Err(TestError::RecoveryRunning(h));
    }
    let gave_way: Mutex<Option<Holder>> = Mutex::new(None);
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                if let Some(h) = lock::host_holder(req.root) {
                    *gave_way.lock().unwrap_or_else(|p| p.into_inner()) = Some(h);
                    cancel.cancel();
                    return;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        let r = run_inner(req, sink, cancel, &gave_way);
        stop.store(true, Ordering::Relaxed);
        r
    })
}

fn run_inner(
    req: &TestRequest<'_>,
    sink: &dyn Sink,
    cancel: &Cancel,
    gave_way: &Mutex<Option<Holder>>,
) -> Result<TestReport, TestError> {
    let backup = req.backup;
    let info = backup.information.clone().unwrap_or_default();
    let backup_version = info.gitlab_version.clone().or(backup.version.clone());
    let mut report = TestReport {
        backup: backup.id.clone(),
        archive: backup.path.clone(),
        backup_version: backup_version
            .as_ref()
            .map(|v| v.to_string())
            .or(backup.version_text.clone()),
        host_version: req.installation.version.as_ref().map(|v| v.to_string()),
        dump_pg_major: None,
        server: None,
        space: None,
        phases: Vec::new(),
        checks: Vec::new(),
        restore_seconds: 0.0,
        databases: Vec::new(),
        files: Vec::new(),
        components: components_of(backup, &[]),
        peak_disk_bytes: 0,
        peak_rss_bytes: None,
        gave_way_to: None,
        kept: None,
    };
    // A stop: a recovery started (the report says so), or a signal (an error).
    let stopped = |report: &mut TestReport, phase: &str| -> Option<Result<(), TestError>> {
        if !cancel.is_cancelled() {
            return None;
        }
        let holder = gave_way.lock().unwrap_or_else(|p| p.into_inner()).clone();
        Some(match holder {
            Some(h) => {
                report.check(
                    "give way to a recovery",
                    CheckStatus::Fail,
                    format!(
                        "a recovery started during `{phase}` (pid {}, `{}`): the test stopped and removed what it made; run it again later",
                        h.pid, h.command
                    ),
                );
                report.gave_way_to = Some(h);
                Ok(())
            }
            None => Err(TestError::Interrupted(phase.to_string())),
        })
    };
    macro_rules! stop_point {
        ($phase:expr) => {
            if let Some(r) = stopped(&mut report, $phase) {
                r?;
                report.peak_rss_bytes = peak_rss();
                return Ok(report);
            }
        };
    }

    // 1. Verify the archive end to end (read-only).
    sink.info(format!(
        "Verifying {} end to end ...",
        backup.path.display()
    ));
    let t = Instant::now();
    let verified = crate::backup::verify::verify(&backup.path, sink, Some(cancel));
    report.phases.push(PhaseTime {
        phase: "verify".into(),
        seconds: t.elapsed().as_secs_f64(),
        ok: verified.is_ok(),
    });
    stop_point!("verify");
    let verified = match verified {
        Ok(v) => v,
        Err(e) => {
            report.check("verify archive", CheckStatus::Fail, e.to_string());
            report.peak_rss_bytes = peak_rss();
            return Ok(report);
        }
    };
    report.check(
        "verify archive",
        CheckStatus::Pass,
        format!(
            "{} members decode end to end ({} bytes read){}",
            verified.members.len(),
            verified.bytes_read,
            if verified.warnings.is_empty() {
                String::new()
            } else {
                format!("; warnings: {}", verified.warnings.join("; "))
            }
        ),
    );
    let decoded: HashMap<String, u64> = verified
        .members
        .iter()
        .map(|m| {
            (
                m.name.strip_prefix("./").unwrap_or(&m.name).to_string(),
                m.decoded_bytes.unwrap_or(m.size),
            )
        })
        .collect();
    let decoded_of = |member: &str| {
        decoded
            .get(member.strip_prefix("./").unwrap_or(member))
            .copied()
            .unwrap_or(0)
    };

    // 2. Which PostgreSQL: the dump's major or newer.
    let source = ArchiveSource::new(backup);
    let present: Vec<&DatabaseJob> = req
        .databases
        .iter()
        .filter(|j| source.has(&j.member))
        .collect();
    let mut min_major = 0;
    for job in &present {
        match read_head(&source, &job.member) {
            Ok(head) => {
                if let Some(m) = dump_pg_major(&head) {
                    min_major = min_major.max(m);
                }
            }
            Err(e) => {
                report.check(
                    format!("read {}", job.member),
                    CheckStatus::Fail,
                    e.to_string(),
                );
                report.peak_rss_bytes = peak_rss();
                return Ok(report);
            }
        }
    }
    report.dump_pg_major = (min_major > 0).then_some(min_major);
    let server = tools::find_server_bin(req.root, min_major).map_err(TestError::NoServer)?;
    sink.info(format!(
        "PostgreSQL for the throwaway cluster: {} ({})",
        server.dir.display(),
        server.version_line
    ));
    report.server = Some(server.clone());

    // 3. Free space, before anything is made.
    let members: Vec<String> = backup.components.iter().map(|c| c.member.clone()).collect();
    let components = files::select_components(
        &members,
        &backup.skipped,
        &[],
        req.installation.kind.unwrap_or(InstallKind::Omnibus),
    );
    let db_bytes: u64 = present.iter().map(|j| decoded_of(&j.member)).sum();
    let file_bytes: u64 = components.iter().map(|c| decoded_of(&c.member)).sum();
    let needed =
        db_bytes * 2 + file_bytes + file_bytes / 20 + (64 << 20) * (1 + present.len() as u64);
    let st = nix::sys::statvfs::statvfs(&req.work_dir).map_err(|e| TestError::WorkDir {
        dir: req.work_dir.clone(),
        detail: e.to_string(),
    })?;
    let available = st.blocks_available() * st.fragment_size();
    report.space = Some(SpaceCheck {
        dir: req.work_dir.clone(),
        needed,
        available,
    });
    if needed > available {
        return Err(TestError::DiskSpace {
            dir: req.work_dir.clone(),
            needed,
            available,
        });
    }

    // 4. The throwaway cluster and the work directory.
    let work = tempfile::Builder::new()
        .prefix("rewind-restore-test-")
        .tempdir_in(&req.work_dir)
        .map_err(|e| TestError::WorkDir {
            dir: req.work_dir.clone(),
            detail: e.to_string(),
        })?;
    let mut made = Made {
        cluster: None,
        work,
    };
    let journal =
        Journal::open_in(&made.work.path().join("journal")).map_err(|e| TestError::WorkDir {
            dir: made.work.path().to_path_buf(),
            detail: e.to_string(),
        })?;
    let t = Instant::now();
    sink.info("Starting a throwaway PostgreSQL cluster ...");
    let started = peer_users().and_then(|users| {
        TempCluster::start_with(ClusterOptions {
            parent: Some(req.work_dir.clone()),
            auth: Some(ClusterAuth::OmnibusPeer(users)),
            bin_dir: Some(server.dir.clone()),
            port: free_port(),
            ..ClusterOptions::default()
        })
        .map_err(|e| TestError::WorkDir {
            dir: req.work_dir.clone(),
            detail: e.to_string(),
        })
    });
    let cluster = match started {
        Ok(c) => c,
        Err(e) => {
            report.phases.push(PhaseTime {
                phase: "cluster".into(),
                seconds: t.elapsed().as_secs_f64(),
                ok: false,
            });
            report.check("start throwaway cluster", CheckStatus::Fail, e.to_string());
            report.peak_rss_bytes = peak_rss();
            return Ok(report);
        }
    };
    let _ = journal.note(
        "test.cluster",
        format!("throwaway cluster in {}", cluster.dir().display()),
        serde_json::json!({"bin": server.dir, "port": cluster.port()}),
    );
    // The databases as Omnibus has them: owned by `gitlab`, the extensions GitLab needs
    // created by the superuser.
    let mut jobs = Vec::new();
    let mut db_err = None;
    for job in &present {
        let name = &job.spec.dbname;
        let r = cluster
            .create_database(name)
            .map_err(|e| e.to_string())
            .and_then(|_| cluster.connect(name).map_err(|e| e.to_string()))
            .and_then(|mut c| {
                c.batch_execute(
                    "CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public;\n\
                     CREATE EXTENSION IF NOT EXISTS btree_gist WITH SCHEMA public;",
                )
                .map_err(|e| crate::pg::conn::describe_pg_error(&e))
            });
        if let Err(e) = r {
            db_err = Some(format!("creating `{name}`: {e}"));
            break;
        }
        jobs.push(DatabaseJob {
            connection: job.connection.clone(),
            spec: cluster.conn_spec(name),
            member: job.member.clone(),
        });
    }
    made.cluster = Some(cluster);
    report.phases.push(PhaseTime {
        phase: "cluster".into(),
        seconds: t.elapsed().as_secs_f64(),
        ok: db_err.is_none(),
    });
    report.peak_disk_bytes = report.peak_disk_bytes.max(made.disk_bytes());
    if let Some(e) = db_err {
        report.check("start throwaway cluster", CheckStatus::Fail, e);
        return finish(report, made, req.keep);
    }
    report.check(
        "start throwaway cluster",
        CheckStatus::Pass,
        format!(
            "{} on a unix socket in {}",
            server.version_line,
            made.cluster
                .as_ref()
                .map(|c| c.dir().display().to_string())
                .unwrap_or_default()
        ),
    );
    stop_point!("cluster");

    // 5. The databases: the same run as a real restore, into the throwaway.
    let restore_started = Instant::now();
    let facts = RestoreFacts {
        backup_version: backup_version.clone(),
        backup_version_text: info
            .gitlab_version_raw
            .clone()
            .or(backup.version_text.clone()),
        // The throwaway stands for a host of the backup's version; the host's own
        // version only decides whether the secrets check can run (below).
        installed_version: backup_version.clone(),
        db_version: info.db_version.clone(),
        backup_path: made.work.path().to_path_buf(),
    };
    let opts = RestoreOptions {
        confirm_drop: jobs.iter().map(|j| j.spec.dbname.clone()).collect(),
        snapshot: false,
        reuse_snapshots: Default::default(),
        jobs: req.jobs.max(1),
        continue_on_error: false,
        allow_version_mismatch: backup_version.is_none(),
        drop: DropOptions::default(),
        throwaway: true,
        beside: None,
        catalogs: Default::default(),
    };
    let t = Instant::now();
    let run = RestoreRun {
        root: req.root,
        source: &source,
        loader: &ParallelLoader,
        facts: &facts,
        opts: &opts,
        journal: &journal,
        sink,
        cancel,
    };
    let outcome = if jobs.is_empty() {
        Ok(Vec::new())
    } else {
        run.run(&jobs)
    };
    report.phases.push(PhaseTime {
        phase: "restore databases".into(),
        seconds: t.elapsed().as_secs_f64(),
        ok: outcome
            .as_ref()
            .is_ok_and(|o| o.iter().all(|d| d.verify.as_ref().is_none_or(|v| v.ok()))),
    });
    report.peak_disk_bytes = report.peak_disk_bytes.max(made.disk_bytes());
    stop_point!("restore databases");
    match outcome {
        Err(e) => {
            let (step, detail) = describe_restore_error(&e);
            report.check(step, CheckStatus::Fail, detail);
            return finish(report, made, req.keep);
        }
        Ok(outcomes) => {
            if present.is_empty() {
                report.check(
                    "restore databases",
                    CheckStatus::Fail,
                    "the backup holds no database dump (db/database.sql.gz)",
                );
            }
            for o in &outcomes {
                let Some(v) = &o.verify else {
                    report.check(
                        format!("restore {}", o.member),
                        CheckStatus::Skipped,
                        o.status.clone(),
                    );
                    continue;
                };
                let load = o.load.as_ref();
                let size_bytes = made
                    .cluster
                    .as_ref()
                    .and_then(|c| c.connect(&o.database).ok())
                    .and_then(|mut c| {
                        c.query_one("SELECT pg_database_size(current_database())", &[])
                            .ok()
                    })
                    .map(|r| r.get::<_, i64>(0).max(0) as u64)
                    .unwrap_or(0);
                report.databases.push(DatabaseResult {
                    connection: o.connection.as_str().to_string(),
                    database: o.database.clone(),
                    member: o.member.clone(),
                    dump_bytes: decoded_of(&o.member),
                    size_bytes,
                    tables: load.map(|l| l.tables.len()).unwrap_or(0),
                    rows: load
                        .map(|l| l.tables.iter().map(|t| t.rows).sum())
                        .unwrap_or(0),
                    load_seconds: load.map(|l| l.seconds).unwrap_or(0.0),
                });
                report.check(
                    format!("load {}", o.member),
                    CheckStatus::Pass,
                    format!(
                        "{} tables, {} rows into `{}`",
                        load.map(|l| l.tables.len()).unwrap_or(0),
                        load.map(|l| l.tables.iter().map(|t| t.rows).sum::<u64>())
                            .unwrap_or(0),
                        o.database
                    ),
                );
                // The version line compares the installed GitLab with the backup's: the
                // throwaway has none (the secrets check below covers the host's).
                for line in v.lines.iter().filter(|l| l.check != "gitlab version") {
                    let status = match line.status {
                        Status::Pass | Status::Warn => CheckStatus::Pass,
                        Status::Fail => CheckStatus::Fail,
                        Status::Skipped => CheckStatus::Skipped,
                    };
                    report.check(
                        format!("{}: {}", o.database, line.check),
                        status,
                        line.detail.clone(),
                    );
                }
            }
        }
    }

    // 6. The file components, extracted under a temp root with the restore's extraction.
    let t = Instant::now();
    let files_root = HostRoot::new(made.work.path().join("files"));
    if let Err(e) = std::fs::DirBuilder::new()
        .mode(0o700)
        .create(files_root.base())
    {
        report.check("extract files", CheckStatus::Fail, e.to_string());
        return finish(report, made, req.keep);
    }
    let extracted = if components.is_empty() {
        Ok(Vec::new())
    } else {
        files::restore_components(
            &backup.path,
            &components,
            &files_root,
            Path::new("/rewind-restore-test"),
            &files::RestoreOptions {
                owner: files::OwnerPolicy::Current,
                epoch: None,
                cancel: Some(cancel.clone()),
            },
            sink,
            Some(&journal),
        )
    };
    report.phases.push(PhaseTime {
        phase: "extract files".into(),
        seconds: t.elapsed().as_secs_f64(),
        ok: extracted.is_ok(),
    });
    report.restore_seconds = restore_started.elapsed().as_secs_f64();
    report.peak_disk_bytes = report.peak_disk_bytes.max(made.disk_bytes());
    stop_point!("extract files");
    match extracted {
        Err(e) => {
            report.check("extract files", CheckStatus::Fail, e.to_string());
            return finish(report, made, req.keep);
        }
        Ok(reports) => {
            if components.is_empty() {
                report.check(
                    "extract files",
                    CheckStatus::Skipped,
                    "the backup holds no file components",
                );
            }
            for r in reports {
                let equal =
                    r.restored_files == r.archive.files && r.restored_bytes == r.archive.bytes;
                report.check(
                    format!("extract {}", r.member),
                    if equal {
                        CheckStatus::Pass
                    } else {
                        CheckStatus::Fail
                    },
                    format!(
                        "{} files, {} bytes extracted; the archive holds {} files, {} bytes",
                        r.restored_files, r.restored_bytes, r.archive.files, r.archive.bytes
                    ),
                );
                report.files.push(FileResult {
                    name: r.name,
                    files: r.restored_files,
                    bytes: r.restored_bytes,
                    archive_files: r.archive.files,
                    archive_bytes: r.archive.bytes,
                });
            }
        }
    }

    // 7. Secrets, with GitLab's own check, when the host runs the backup's version.
    let t = Instant::now();
    secrets_check(req, &mut report, &made, &jobs, &journal, sink);
    report.phases.push(PhaseTime {
        phase: "secrets".into(),
        seconds: t.elapsed().as_secs_f64(),
        ok: report
            .checks
            .last()
            .is_some_and(|c| c.status != CheckStatus::Fail),
    });
    stop_point!("secrets");
    finish(report, made, req.keep)
}

fn secrets_check(
    req: &TestRequest<'_>,
    report: &mut TestReport,
    made: &Made,
    jobs: &[DatabaseJob],
    journal: &Journal,
    sink: &dyn Sink,
) {
    const STEP: &str = "secrets (gitlab:doctor:secrets)";
    let backup_version = req
        .backup
        .information
        .as_ref()
        .and_then(|i| i.gitlab_version.clone())
        .or(req.backup.version.clone());
    let same = match (&req.installation.version, &backup_version) {
        (Some(h), Some(b)) => h.same_release(b),
        _ => false,
    };
    if !same {
        report.check(
            STEP,
            CheckStatus::Skipped,
            format!(
                "GitLab's check runs the installed code, which must be the backup's version: this host runs {}, the backup is {}",
                req.installation
                    .version
                    .as_ref()
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "an unknown version".into()),
                backup_version
                    .as_ref()
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "of an unknown version".into())
            ),
        );
        return;
    }
    let rake = req.root.join(omnibus::GITLAB_RAKE);
    if !rake.is_file() {
        report.check(
            STEP,
            CheckStatus::Skipped,
            format!(
                "{} not found (not an Omnibus install?)",
                req.root.host_path(&rake).display()
            ),
        );
        return;
    }
    let Some(cluster) = &made.cluster else {
        return;
    };
    // Rails reads DATABASE_URL for its primary connection and <NAME>_DATABASE_URL for
    // each named one (main, ci); each replaces database.yml's host, port and database.
    let mut cmd = Cmd::new(&rake).arg("gitlab:doctor:secrets");
    for job in jobs {
        let url = socket_url(
            cluster.app_role(),
            &job.spec.dbname,
            &cluster.socket_dir(),
            cluster.port(),
        );
        if job.connection.is_main() {
            cmd = cmd.env("DATABASE_URL", &url);
        }
        cmd = cmd.env(
            format!("{}_DATABASE_URL", job.connection.as_str().to_uppercase()),
            &url,
        );
    }
    match Runner::new(sink, Some(journal)).run_unchecked("test.secrets", &cmd) {
        Err(e) => report.check(STEP, CheckStatus::Fail, e.to_string()),
        Ok(f) => {
            let (models, failed) = secrets_failures(&f.lines);
            if !f.success() {
                let tail: Vec<&String> = f.lines.iter().rev().take(5).collect();
                report.check(
                    STEP,
                    CheckStatus::Fail,
                    format!(
                        "{} ended with {}: {}",
                        cmd.display(),
                        f.code
                            .map(|c| format!("exit code {c}"))
                            .unwrap_or_else(|| "a signal".into()),
                        tail.into_iter()
                            .rev()
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(" / ")
                    ),
                );
            } else if !failed.is_empty() {
                report.check(
                    STEP,
                    CheckStatus::Fail,
                    format!(
                        "do not decrypt with this host's gitlab-secrets.json: {}",
                        failed
                            .iter()
                            .map(|(m, n)| format!("{m} ({n})"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
            } else if models == 0 {
                report.check(
                    STEP,
                    CheckStatus::Fail,
                    "the check printed no `- <Model> failures: N` line; see its output above",
                );
            } else {
                report.check(
                    STEP,
                    CheckStatus::Pass,
                    format!("{models} models checked, every encrypted value decrypts"),
                );
            }
        }
    }
}

/// The step a restore error stopped at, and what happened.
fn describe_restore_error(e: &RestoreError) -> (String, String) {
    match e {
        RestoreError::Load { member, detail, .. } => (format!("load {member}"), detail.clone()),
        RestoreError::LoadErrors {
            member,
            count,
            first,
            ..
        } => (
            format!("load {member}"),
            format!("{count} error(s) outside GitLab's ignore list; first: {first}"),
        ),
        RestoreError::Catalog { member, detail } => (format!("read {member}"), detail.clone()),
        RestoreError::Verify { database, detail } => (format!("verify {database}"), detail.clone()),
        RestoreError::MissingMain { member, .. } => (format!("read {member}"), e.to_string()),
        RestoreError::Privileges(_) => ("privileges".into(), e.to_string()),
        other => ("restore databases".into(), other.to_string()),
    }
}

/// Keep or remove what was made; the last measurements.
fn finish(mut report: TestReport, made: Made, keep: bool) -> Result<TestReport, TestError> {
    report.peak_disk_bytes = report.peak_disk_bytes.max(made.disk_bytes());
    report.peak_rss_bytes = peak_rss();
    if keep {
        let Made { cluster, work } = made;
        let files_dir = work.path().join("files");
        let work_dir = work.keep();
        if let Some(c) = cluster {
            let sock = c.socket_dir();
            let port = c.port();
            let bin = c.bin_dir().to_path_buf();
            let user = c.server_os_user().map(str::to_string);
            let superuser = c.superuser().to_string();
            let db = report
                .databases
                .first()
                .map(|d| d.database.clone())
                .unwrap_or_else(|| "postgres".into());
            let data = c.data_dir();
            let runas = |tool: &str| match &user {
                Some(u) => format!("runuser -u {u} -- {}", bin.join(tool).display()),
                None => bin.join(tool).display().to_string(),
            };
            let dir = c.into_kept();
            report.kept = Some(Kept {
                cluster_dir: dir.clone(),
                files_dir: files_dir.is_dir().then_some(files_dir),
                socket_dir: sock.clone(),
                port,
                connect: format!(
                    "{} -h {} -p {port} -U {} {}",
                    runas("psql"),
                    crate::exec::shell_quote(&sock.display().to_string()),
                    crate::exec::shell_quote(&superuser),
                    crate::exec::shell_quote(&db)
                ),
                stop: format!(
                    "{} -D {} -m fast stop",
                    runas("pg_ctl"),
                    crate::exec::shell_quote(&data.display().to_string())
                ),
                remove: format!(
                    "rm -rf -- {} {}",
                    crate::exec::shell_quote(&dir.display().to_string()),
                    crate::exec::shell_quote(&work_dir.display().to_string())
                ),
            });
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_dump_header_and_doctor_output() {
        let head = "--\n-- PostgreSQL database dump\n--\n\n-- Dumped from database version 14.11\n-- Dumped by pg_dump version 16.2 (Debian 16.2-1)\n";
        assert_eq!(dump_pg_major(head), Some(16));
        assert_eq!(
            dump_pg_major("-- Dumped from database version 13.4\n"),
            Some(13)
        );
        assert_eq!(dump_pg_major("SET x = 1;\n"), None);
        let out: Vec<String> = [
            "I, [2024-04-23T16:00:00 #1]  INFO -- : Checking encrypted values in the database",
            "I, [2024-04-23T16:00:01 #1]  INFO -- : - ApplicationSetting failures: 0",
            "I, [2024-04-23T16:00:01 #1]  INFO -- : - Ci::PipelineVariable failures: 3",
            "I, [2024-04-23T16:00:02 #1]  INFO -- : Total: 3 row(s) affected",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let (models, failed) = secrets_failures(&out);
        assert_eq!(models, 2);
        assert_eq!(failed, vec![("Ci::PipelineVariable".to_string(), 3)]);
        assert_eq!(
            socket_url("gitlab", "gitlabhq_production", Path::new("/t/a b"), 5433),
            "postgresql://gitlab@/gitlabhq_production?host=%2Ft%2Fa%20b&port=5433"
        );
    }
}
