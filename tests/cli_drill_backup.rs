//! `rewind drill --backup` through the built binary on sandbox hosts whose production
//! databases are live (a real cluster): a good (decomposed) backup passes and leaves no
//! cluster, temp directory or process, and production is unchanged; a corrupt member and
//! a dump that fails to load each fail with their step named (exit 4); the secrets step
//! runs the host's gitlab-rake (the sandbox's stand-in) against the throwaway database,
//! reports models that do not decrypt, and is skipped with the reason when the host runs
//! another version; refusals and usage errors have their exit codes.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rewind_engine::pg::cluster::TempCluster;
use rewind_engine::root::HostRoot;
use rewind_engine::sandbox::{self, compare, host, Sandbox, SandboxSpec};

const REWIND: &str = env!("CARGO_BIN_EXE_rewind");

struct Host {
    _cluster: TempCluster,
    dir: tempfile::TempDir,
    sb: Sandbox,
}

impl Host {
    fn new(decomposed: bool) -> Host {
        let cluster = TempCluster::start().expect("cluster");
        let dir = tempfile::tempdir().unwrap();
        let mut spec = SandboxSpec::new(dir.path().join("root"));
        spec.decomposed = decomposed;
        let sb = sandbox::build_sandbox(&cluster, &spec).expect("sandbox");
        rewind_engine::packages::sandbox_repo::write_gitlab_rake_standin(
            &sb.layout.root,
            Path::new(REWIND),
        )
        .unwrap();
        Host {
            _cluster: cluster,
            dir,
            sb,
        }
    }

    fn root(&self) -> &HostRoot {
        &self.sb.layout.root
    }

    /// A fresh work directory for one run (checked empty afterwards).
    fn work(&self, name: &str) -> PathBuf {
        let w = self.dir.path().join(name);
        std::fs::create_dir(&w).unwrap();
        w
    }

    fn drill(&self, backup: &str, work: &Path, extra: &[&str]) -> Output {
        let mut args = vec![
            "drill".to_string(),
            "--backup".into(),
            backup.into(),
            "--root".into(),
            self.root().base().display().to_string(),
            "--work-dir".into(),
            work.display().to_string(),
            "--json".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        Command::new(REWIND)
            .args(&args)
            .env("NO_COLOR", "1")
            .output()
            .expect("run rewind")
    }
}

fn report(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn check<'a>(rep: &'a serde_json::Value, step: &str) -> &'a serde_json::Value {
    rep["report"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["step"] == step)
        .unwrap_or_else(|| panic!("no check `{step}` in {rep:#}"))
}

/// Nothing left in the work directory, and no process running from it.
fn assert_nothing_left(work: &Path) {
    let left: Vec<_> = std::fs::read_dir(work).unwrap().flatten().collect();
    assert!(
        left.is_empty(),
        "left behind in {}: {left:?}",
        work.display()
    );
    let needle = work.display().to_string();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if !e
            .file_name()
            .to_string_lossy()
            .bytes()
            .all(|b| b.is_ascii_digit())
        {
            continue;
        }
        let mut cmd = Vec::new();
        if let Ok(mut f) = std::fs::File::open(e.path().join("cmdline")) {
            let _ = f.read_to_end(&mut cmd);
        }
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        assert!(!cmd.contains(&needle), "process left running: {cmd}");
    }
}

/// Copy of the archive with `member`'s bytes changed by `f` (same length), under a new
/// path.
fn altered(archive: &Path, member: &str, out: &Path, f: impl FnOnce(&mut [u8])) {
    let spans = rewind_engine::files::archive_members(archive).unwrap();
    let span = spans
        .iter()
        .find(|s| s.name.trim_start_matches("./") == member)
        .unwrap_or_else(|| panic!("{member} not in {spans:?}"));
    let mut bytes = std::fs::read(archive).unwrap();
    let (a, b) = (span.offset as usize, (span.offset + span.size) as usize);
    f(&mut bytes[a..b]);
    std::fs::write(out, bytes).unwrap();
}

/// Copy of the archive whose `member` (a gzip'd dump) is replaced: unpacked with tar,
/// changed, packed again in the original member order.
fn with_dump(archive: &Path, member: &str, out: &Path, f: impl FnOnce(String) -> String) {
    let stage = tempfile::tempdir().unwrap();
    let st = Command::new("tar")
        .arg("-xf")
        .arg(archive)
        .arg("-C")
        .arg(stage.path())
        .status()
        .unwrap();
    assert!(st.success());
    let path = stage.path().join(member);
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&path).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(f(text).as_bytes()).unwrap();
    std::fs::write(&path, gz.finish().unwrap()).unwrap();
    let list = Command::new("tar")
        .arg("-tf")
        .arg(archive)
        .output()
        .unwrap();
    let names: Vec<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .filter(|l| !l.ends_with('/'))
        .map(str::to_string)
        .collect();
    let st = Command::new("tar")
        .arg("-cf")
        .arg(out)
        .arg("-C")
        .arg(stage.path())
        .args(&names)
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn a_good_decomposed_backup_restores_and_leaves_nothing_behind() {
    let h = Host::new(true);
    let main_before = compare::fingerprint(&h.sb.main).unwrap();
    let ci_before = compare::fingerprint(h.sb.ci.as_ref().unwrap()).unwrap();
    let work = h.work("good");
    let out = h.drill(&h.sb.backup_id, &work, &[]);
    let rep = report(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{rep:#}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(rep["passed"], true);
    for step in [
        "verify archive",
        "start throwaway cluster",
        "load db/database.sql.gz",
        "load db/ci_database.sql.gz",
        "gitlabhq_production: schema_migrations",
        "gitlabhq_production: row counts",
        "gitlabhq_production: leftovers",
        "gitlabhq_production_ci: row counts",
        "extract uploads.tar.gz",
        "extract lfs.tar.gz",
        "secrets (gitlab:doctor:secrets)",
    ] {
        assert_eq!(check(&rep, step)["status"], "pass", "{step}: {rep:#}");
    }
    let r = &rep["report"];
    let dbs = r["databases"].as_array().unwrap();
    assert_eq!(dbs.len(), 2);
    assert_eq!(dbs[0]["rows"].as_u64().unwrap(), h.sb.stats.total_rows());
    assert!(dbs[0]["size_bytes"].as_u64().unwrap() > 0);
    assert!(dbs[0]["dump_bytes"].as_u64().unwrap() > 0);
    let files = r["files"].as_array().unwrap();
    assert_eq!(files.len(), h.sb.layout.components.len());
    for f in files {
        assert_eq!(f["files"], f["archive_files"]);
        assert!(f["files"].as_u64().unwrap() > 0);
    }
    let phases: Vec<&str> = r["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["phase"].as_str().unwrap())
        .collect();
    assert_eq!(
        phases,
        [
            "verify",
            "cluster",
            "restore databases",
            "extract files",
            "secrets"
        ]
    );
    assert!(r["restore_seconds"].as_f64().unwrap() > 0.0);
    assert!(r["peak_disk_bytes"].as_u64().unwrap() > 1 << 20);
    assert!(r["peak_rss_bytes"].as_u64().unwrap() > 0);
    assert!(r["kept"].is_null());
    assert_nothing_left(&work);
    // Production untouched.
    assert!(compare::fingerprint(&h.sb.main)
        .unwrap()
        .diff(&main_before)
        .is_empty());
    assert!(compare::fingerprint(h.sb.ci.as_ref().unwrap())
        .unwrap()
        .diff(&ci_before)
        .is_empty());

    // The same in text, kept: the cluster keeps running and the report says how to
    // connect; the printed commands stop and remove it.
    let work = h.work("kept");
    let out = Command::new(REWIND)
        .args(["drill", "--backup", &h.sb.backup_id, "--keep", "--root"])
        .arg(h.root().base())
        .arg("--work-dir")
        .arg(&work)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("PASS: backup"), "{text}");
    let line = |key: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(key).map(|s| s.trim().to_string()))
            .unwrap_or_else(|| panic!("no `{key}` in {text}"))
    };
    let connect = line("connect:");
    let q = Command::new("sh")
        .arg("-c")
        .arg(format!("{connect} -Atc 'SELECT count(*) FROM projects'"))
        .output()
        .unwrap();
    assert!(q.status.success(), "{}", String::from_utf8_lossy(&q.stderr));
    assert!(
        String::from_utf8_lossy(&q.stdout)
            .trim()
            .parse::<u64>()
            .unwrap()
            > 0
    );
    for key in ["stop:", "remove:"] {
        let st = Command::new("sh")
            .arg("-c")
            .arg(line(key))
            .status()
            .unwrap();
        assert!(st.success(), "{key}");
    }
    assert_nothing_left(&work);
}

#[test]
fn a_corrupt_member_and_a_dump_that_does_not_load_fail_with_their_step() {
    let h = Host::new(false);
    let before = compare::fingerprint(&h.sb.main).unwrap();
    let bad_dir = h.dir.path().join("elsewhere");
    std::fs::create_dir(&bad_dir).unwrap();

    // A flipped byte inside uploads.tar.gz: the end-to-end verification fails.
    let corrupt = bad_dir.join(format!("{}_gitlab_backup.tar", h.sb.backup_id));
    altered(&h.sb.archive, "uploads.tar.gz", &corrupt, |b| {
        let mid = b.len() / 2;
        b[mid] ^= 0xff;
        b[mid + 1] ^= 0xff;
    });
    let work = h.work("corrupt");
    let out = h.drill(corrupt.to_str().unwrap(), &work, &[]);
    let rep = report(&out);
    assert_eq!(out.status.code(), Some(4), "{rep:#}");
    assert_eq!(rep["passed"], false);
    assert_eq!(rep["failed_step"], "verify archive");
    let c = check(&rep, "verify archive");
    assert_eq!(c["status"], "fail");
    assert!(
        c["detail"].as_str().unwrap().contains("uploads.tar.gz"),
        "{c}"
    );
    assert_nothing_left(&work);

    // A dump with a row its table refuses: the load fails, named.
    std::fs::remove_file(&corrupt).unwrap();
    let broken = bad_dir.join(format!("{}_gitlab_backup.tar", h.sb.backup_id));
    with_dump(&h.sb.archive, "db/database.sql.gz", &broken, |dump| {
        format!("{dump}\nINSERT INTO public.schema_migrations (version) VALUES (NULL);\n")
    });
    let work = h.work("broken");
    let out = h.drill(broken.to_str().unwrap(), &work, &[]);
    let rep = report(&out);
    assert_eq!(
        out.status.code(),
        Some(4),
        "{rep:#}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(rep["failed_step"], "load db/database.sql.gz", "{rep:#}");
    let c = check(&rep, "load db/database.sql.gz");
    assert!(c["detail"].as_str().unwrap().contains("null value"), "{c}");
    assert_eq!(check(&rep, "verify archive")["status"], "pass");
    assert_nothing_left(&work);

    assert!(compare::fingerprint(&h.sb.main)
        .unwrap()
        .diff(&before)
        .is_empty());
}

#[test]
fn secrets_are_checked_on_the_throwaway_and_skipped_on_another_version() {
    let h = Host::new(false);
    // A second backup in which a CI variable no longer decrypts.
    let mut c = h.sb.main.connect().unwrap();
    c.batch_execute(
        "UPDATE ci_pipeline_variables SET encrypted_value = 'not a ciphertext' WHERE id = 3",
    )
    .unwrap();
    let spec = sandbox::BackupSpec::new(&h.sb.layout.backup_dir, h.sb.main.clone())
        .with_components(h.sb.layout.components.clone())
        .with_created_at(sandbox::backup::default_created_at() + chrono::Duration::hours(1));
    let bad = sandbox::build_backup(&spec).unwrap();
    // Production now holds the bad value, the first backup does not: the check of the
    // first backup passes only if it reads the throwaway database.
    let work = h.work("good");
    let out = h.drill(&h.sb.backup_id, &work, &[]);
    let rep = report(&out);
    assert_eq!(out.status.code(), Some(0), "{rep:#}");
    assert_eq!(
        check(&rep, "secrets (gitlab:doctor:secrets)")["status"],
        "pass"
    );

    let work = h.work("bad");
    let out = h.drill(bad.to_str().unwrap(), &work, &[]);
    let rep = report(&out);
    assert_eq!(out.status.code(), Some(4), "{rep:#}");
    assert_eq!(rep["failed_step"], "secrets (gitlab:doctor:secrets)");
    let detail = check(&rep, "secrets (gitlab:doctor:secrets)")["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(detail.contains("Ci::PipelineVariable (1)"), "{detail}");
    assert_nothing_left(&work);

    // Another GitLab version on the host: GitLab's check cannot run; the rest passes.
    host::set_installed_version(h.root(), sandbox::UPGRADE_VERSION).unwrap();
    let work = h.work("other-version");
    let out = h.drill(&h.sb.backup_id, &work, &[]);
    let rep = report(&out);
    assert_eq!(out.status.code(), Some(0), "{rep:#}");
    let c = check(&rep, "secrets (gitlab:doctor:secrets)");
    assert_eq!(c["status"], "skipped");
    assert!(c["detail"].as_str().unwrap().contains("16.11.0"), "{c}");
    assert_nothing_left(&work);
}

#[test]
fn refusals_and_usage_errors() {
    let h = Host::new(false);
    // --scenario and --scale do not apply to a backup test.
    for extra in [["--scenario", "corrupt-backup"], ["--scale", "3"]] {
        let work = h.work(&format!("usage{}", extra[0]));
        let out = h.drill(&h.sb.backup_id, &work, &extra);
        assert_eq!(out.status.code(), Some(2), "{extra:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("cannot be used with"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // A recovery running: the test does not start (exit 3), and says who holds the lock.
    let lock = rewind_engine::recovery::lock::host(h.root(), "rewind restore --backup X").unwrap();
    let work = h.work("locked");
    let out = h.drill(&h.sb.backup_id, &work, &[]);
    assert_eq!(out.status.code(), Some(3));
    let err: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let msg = err["error"]["message"].as_str().unwrap();
    assert!(msg.contains("rewind restore --backup X"), "{msg}");
    assert!(
        msg.contains(&format!("pid {}", std::process::id())),
        "{msg}"
    );
    drop(lock);
    assert_nothing_left(&work);
}
