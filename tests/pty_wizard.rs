//! End to end in a pseudo-terminal: the built `rewind` binary on a sandbox root (an
//! Omnibus-like host tree, a real PostgreSQL cluster, a GitLab-format backup, a failed
//! upgrade on top), driven by keystrokes from Detect to Done. The database must then equal
//! what the backup holds, and the terminal must be left sane.

use std::io::{Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portable_pty::{native_pty_system, Child, CommandBuilder, MasterPty, PtySize};
use rewind_engine::pg::cluster::TempCluster;
use rewind_engine::sandbox::{self, backup, compare, data::DataSpec, host, upgrade, PgTarget};

const DB: &str = "gitlabhq_production";
const ROWS: u16 = 30;
const COLS: u16 = 100;

/// The wizard running in a pty, with a screen parser fed by a reader thread.
struct Wizard {
    child: Box<dyn Child + Send + Sync>,
    writer: Box<dyn Write + Send>,
    screen: Arc<Mutex<vt100::Parser>>,
    raw: Arc<Mutex<Vec<u8>>>,
    _master: Box<dyn MasterPty + Send>,
    slave: Box<dyn portable_pty::SlavePty + Send>,
}

impl Wizard {
    fn start(root: &Path) -> Wizard {
        Wizard::start_with(root, &[])
    }

    /// `rewind --root ROOT ARGS...` (the wizard's own options, e.g. `--in-place`).
    fn start_with(root: &Path, args: &[&str]) -> Wizard {
        let pair = native_pty_system()
            .openpty(PtySize {
                rows: ROWS,
                cols: COLS,
                pixel_width: 0,
                pixel_height: 0,
            })
            .expect("openpty");
        let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_rewind"));
        cmd.arg("--root");
        cmd.arg(root);
        cmd.args(args);
        cmd.env("NO_COLOR", "1");
        cmd.env("TERM", "xterm-256color");
        cmd.env_remove("REWIND_DATABASE_URL");
        let child = pair.slave.spawn_command(cmd).expect("spawn rewind");
        let mut reader = pair.master.try_clone_reader().expect("reader");
        let writer = pair.master.take_writer().expect("writer");
        let screen = Arc::new(Mutex::new(vt100::Parser::new(
            std::num::NonZeroU16::new(ROWS).unwrap(),
            std::num::NonZeroU16::new(COLS).unwrap(),
            0,
        )));
        let raw = Arc::new(Mutex::new(Vec::new()));
        let (s2, r2) = (screen.clone(), raw.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                s2.lock().unwrap().process(&buf[..n]);
                r2.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Wizard {
            child,
            writer,
            screen,
            raw,
            _master: pair.master,
            slave: pair.slave,
        }
    }

    fn contents(&self) -> String {
        self.screen.lock().unwrap().screen().contents()
    }

    /// Wait until the screen shows `text` (or fail with the screen).
    fn wait_for(&self, text: &str, timeout: Duration) {
        let end = Instant::now() + timeout;
        loop {
            let c = self.contents();
            if c.contains(text) {
                return;
            }
            if Instant::now() > end {
                panic!("timed out waiting for {text:?}; the screen shows:\n{c}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("write to pty");
        self.writer.flush().expect("flush pty");
    }

    fn enter(&mut self) {
        self.send(b"\r");
    }

    fn wait_exit(&mut self, timeout: Duration) -> portable_pty::ExitStatus {
        let end = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                return st;
            }
            if Instant::now() > end {
                let _ = self.child.kill();
                panic!(
                    "rewind did not exit; the screen shows:\n{}",
                    self.contents()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What the wizard wrote after it left the alternate screen, once that holds every one
    /// of `needles`: the child may have exited before the reader thread read its last
    /// bytes (fails after `timeout` with what arrived).
    fn after_exit_once(&self, needles: &[&str], timeout: Duration) -> String {
        let end = Instant::now() + timeout;
        loop {
            let text = String::from_utf8_lossy(&self.raw.lock().unwrap()).into_owned();
            let after = text
                .rfind("\x1b[?1049l")
                .map(|i| text[i..].to_string())
                .unwrap_or_default();
            if !after.is_empty() && needles.iter().all(|n| after.contains(n)) {
                return after;
            }
            let needle = needles.join(", ");
            if Instant::now() > end {
                panic!("the wizard's output never held {needle:?}:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// After the wizard left: the alternate screen was left, the cursor shown, and the
    /// pty is back in canonical mode with echo (no raw mode), as `stty -a` on it reports.
    fn assert_terminal_sane(&mut self) {
        // The child may have exited before the reader thread read its last bytes.
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end
            && !String::from_utf8_lossy(&self.raw.lock().unwrap()).contains("\x1b[?25h")
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        let text = String::from_utf8_lossy(&self.raw.lock().unwrap()).into_owned();
        assert!(text.contains("\x1b[?1049l"), "alternate screen not left");
        assert!(text.contains("\x1b[?25h"), "cursor not shown again");
        let mark = self.raw.lock().unwrap().len();
        let mut cmd = CommandBuilder::new("stty");
        cmd.arg("-a");
        let mut stty = self.slave.spawn_command(cmd).expect("spawn stty");
        let end = Instant::now() + Duration::from_secs(20);
        while stty.try_wait().expect("try_wait").is_none() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut modes = String::new();
        while Instant::now() < end {
            modes = String::from_utf8_lossy(&self.raw.lock().unwrap()[mark..]).into_owned();
            if modes.contains("icanon") {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let words: Vec<&str> = modes
            .split(|c: char| c.is_whitespace() || c == ';')
            .collect();
        assert!(words.contains(&"icanon"), "pty left in raw mode: {modes}");
        assert!(words.contains(&"echo"), "pty left without echo: {modes}");
    }
}

struct Sandbox {
    cluster: TempCluster,
    tree: tempfile::TempDir,
    target: PgTarget,
    /// The backup's database.
    expected: compare::DbFingerprint,
    /// The failed upgrade's database, as the recovery finds it.
    failed: compare::DbFingerprint,
}

/// A 16.10.3-ee host whose database got a failed upgrade after its backup was made.
fn sandbox(scale: u32) -> Sandbox {
    let cluster = TempCluster::start().expect("cluster");
    let target = sandbox::create_gitlab_database(&cluster, DB).expect("database");
    let mut client = target.connect().expect("connect");
    sandbox::populate(&mut client, &DataSpec::with_scale(scale)).expect("populate");
    let tree = tempfile::tempdir().expect("tree");
    let main = cluster.conn_spec(DB);
    let layout = host::build_host(&host::HostSpec::new(tree.path(), main.clone())).expect("host");
    let target = PgTarget::new(cluster.bin_dir(), main);
    let spec = backup::BackupSpec::new(&layout.backup_dir, target.clone())
        .with_components(layout.components.clone());
    backup::build_backup(&spec).expect("backup");
    let expected = compare::fingerprint(&target).expect("fingerprint");
    upgrade::apply_failed_upgrade(&mut client).expect("failed upgrade");
    let failed = compare::fingerprint(&target).unwrap();
    assert!(!expected.diff(&failed).is_empty());
    Sandbox {
        cluster,
        tree,
        target,
        expected,
        failed,
    }
}

const STEP: Duration = Duration::from_secs(60);

/// The ownership statements the restore's journal reports as skipped (the `gitlab` role may
/// not run them; GitLab's restore skips them too).
fn skipped_owner_statements(sb: &Sandbox) -> Vec<String> {
    let path = sb
        .tree
        .path()
        .join("var/opt/gitlab/backups/rewind/journal.jsonl");
    rewind_engine::journal::Journal::read(&path)
        .unwrap_or_default()
        .iter()
        .filter(|e| e.step.ends_with(".load.skipped"))
        .flat_map(|e| e.detail.as_array().cloned().unwrap_or_default())
        .filter_map(|s| s["statement"].as_str().map(str::to_string))
        .collect()
}

/// The live database holds what the backup holds (but for the ownership statements the
/// restore skipped, as GitLab's does).
fn assert_live_is_the_backup(sb: &Sandbox) {
    let after = compare::fingerprint(&sb.target).expect("fingerprint");
    let diff = sb
        .expected
        .diff_except_owners(&after, &skipped_owner_statements(sb));
    assert!(
        diff.is_empty(),
        "the database differs from the backup: {diff:#?}"
    );
}

/// From Detect to the start of the restore: beside and swap (this sandbox has Omnibus's
/// embedded psql and the `gitlab-psql` OS user to create and rename databases), or in
/// place when the wizard was started with `--in-place`.
fn drive_to_restore(w: &mut Wizard, in_place: bool) {
    w.wait_for("Enter backups", STEP);
    // Enter waits while Detect still reads the journal for an interrupted swap.
    let end = Instant::now() + STEP;
    loop {
        w.enter();
        let retry = Instant::now() + Duration::from_secs(3);
        while Instant::now() < retry && !w.contents().contains("Backups, newest first") {
            std::thread::sleep(Duration::from_millis(50));
        }
        if w.contents().contains("Backups, newest first") {
            break;
        }
        assert!(Instant::now() < end, "no backup list:\n{}", w.contents());
    }
    w.wait_for("16.10.3", STEP);
    w.enter();
    w.wait_for("All checks passed", STEP);
    w.enter();
    // No gitlab-ctl in the sandbox: the services step is done by hand.
    w.wait_for("Stop services", STEP);
    w.wait_for("by hand", STEP);
    w.enter();
    w.wait_for("Skipped: GitLab 16.10.3", STEP);
    w.enter();
    w.wait_for("Type the database name", STEP);
    w.wait_for(" objects, ", STEP);
    if in_place {
        w.wait_for("Danger: this drops every table", STEP);
        w.wait_for("Strategy: in place: --in-place was given", STEP);
        w.send(DB.as_bytes());
        w.wait_for("Drop and restore (Enter)", STEP);
    } else {
        w.wait_for("Replace the database (the live one is kept)", STEP);
        w.wait_for(
            &format!(
                "The live database is kept as {DB}_before_rewind_<UTC time>, nothing is dropped."
            ),
            STEP,
        );
        w.wait_for("Strategy: beside and swap: ", STEP);
        w.send(DB.as_bytes());
        w.wait_for("Restore beside and swap (Enter)", STEP);
    }
    w.enter();
    w.wait_for("Enter starts", STEP);
}

#[test]
fn the_wizard_restores_the_backup_from_detect_to_done() {
    let sb = sandbox(1);
    let mut w = Wizard::start(sb.tree.path());
    drive_to_restore(&mut w, false);
    w.wait_for("No safety snapshot is needed", STEP);
    w.wait_for("load beside, verify, then swap", STEP);
    w.enter();
    w.wait_for("Restore: finished", Duration::from_secs(300));
    w.enter();
    // The verify lines, under the live name the verified database took.
    w.wait_for(&format!("{DB}: gitlab version: installed 16.10.3-ee"), STEP);
    // The file components were restored after the database.
    w.wait_for("uploads:", STEP);
    w.enter();
    // No configuration archive in this sandbox: said, and Enter goes on.
    w.wait_for("Configuration", STEP);
    w.wait_for("No archive to restore from", STEP);
    w.enter();
    w.wait_for("Start services", STEP);
    w.wait_for("by hand", STEP);
    w.enter();
    // No gitlab-rake here either: the checks are listed with their commands and left
    // out (s); Done still names them.
    w.wait_for("Checks after the restore", STEP);
    w.wait_for("gitlab:doctor:secrets", STEP);
    w.send(b"s");
    w.wait_for("gitlab:check SANITIZE=true", STEP);
    w.wait_for("gitlab:doctor:secrets", STEP);
    w.wait_for(&format!("kept      {DB}_before_rewind_2"), STEP);
    w.enter();
    let st = w.wait_exit(STEP);
    assert!(st.success(), "exit status {st:?}");
    // What stays in the terminal after the alternate screen is left (read once the
    // summary's last line has arrived).
    let after_exit = &w.after_exit_once(
        &[
            "Rewind: the recovery finished.",
            "journal.jsonl",
            "kept        gitlabhq_production_before_rewind_",
            "`rewind undo` swaps it back; `rewind cleanup` removes it once GitLab is healthy",
            "gitlab:check SANITIZE=true",
        ],
        Duration::from_secs(10),
    );
    assert!(!after_exit.contains("snapshot    "), "{after_exit}");
    let kept = after_exit
        .split("kept        ")
        .nth(1)
        .and_then(|t| t.split(':').next())
        .expect("the kept database's name")
        .to_string();
    assert!(kept.starts_with(&format!("{DB}_before_rewind_2")), "{kept}");
    w.assert_terminal_sane();
    // The live name holds the backup's data (a new database: nothing the failed upgrade
    // left, not even the functions GitLab's drop keeps); the kept one the failed upgrade's.
    assert_live_is_the_backup(&sb);
    let kept_now = compare::fingerprint(&sb.target.with_dbname(&kept)).expect("kept");
    assert!(
        sb.failed.diff(&kept_now).is_empty(),
        "the kept database is not the failed upgrade's: {:#?}",
        sb.failed.diff(&kept_now)
    );
    // No snapshot; the session is gone.
    let rewind_dir = sb.tree.path().join("var/opt/gitlab/backups/rewind");
    assert!(!rewind_dir.join("wizard-session.json").exists());
    // The restore used the preflight's end-to-end read of the unchanged archive instead of
    // reading it a second time, and the journal says so.
    let journal = std::fs::read_to_string(rewind_dir.join("journal.jsonl")).expect("journal");
    assert!(
        journal
            .lines()
            .any(|l| l.contains("\"recovery.verify\"")
                && l.contains("\"verified_by_preflight\":true")),
        "{journal}"
    );
    assert!(
        !rewind_dir.join("snapshots").exists(),
        "beside takes no snapshot"
    );
    drop(sb.cluster);
}

#[test]
fn a_wizard_killed_during_the_data_phase_resumes_and_completes() {
    // Enough data that the load takes a while.
    let sb = sandbox(40);
    // In place (`--in-place`): the snapshot, the drop, then the load.
    let mut w = Wizard::start_with(sb.tree.path(), &["--in-place"]);
    drive_to_restore(&mut w, true);
    w.wait_for("snapshot, drop, then restore", STEP);
    w.enter();
    // Kill it (SIGKILL: no cleanup at all) while the data phase runs.
    let end = Instant::now() + Duration::from_secs(300);
    loop {
        let c = w.contents();
        if c.lines().any(|l| l.contains("│ data ") && l.contains('%')) {
            break;
        }
        assert!(
            !c.contains("Restore: finished"),
            "the load finished before it could be killed; the screen shows:\n{c}"
        );
        assert!(
            Instant::now() < end,
            "no data phase; the screen shows:\n{c}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let pid = w.child.process_id().expect("pid");
    let st = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
    w.wait_exit(STEP);
    let session = sb
        .tree
        .path()
        .join("var/opt/gitlab/backups/rewind/wizard-session.json");
    assert!(session.exists(), "no session left to resume");

    // Started again: it offers to resume, restarts from the drop, no second snapshot.
    let mut w = Wizard::start_with(sb.tree.path(), &["--in-place"]);
    w.wait_for("Resume an interrupted recovery", STEP);
    w.wait_for("restarts from the drop", STEP);
    w.wait_for("is kept and not taken again", STEP);
    w.enter();
    w.wait_for("Type the database name", STEP);
    w.wait_for(" objects, ", STEP);
    w.wait_for("A safety snapshot was already taken", STEP);
    w.send(DB.as_bytes());
    w.wait_for("Drop and restore (Enter)", STEP);
    w.enter();
    w.wait_for("not taken twice", STEP);
    w.wait_for("drop, then restore", STEP);
    w.enter();
    w.wait_for("Restore: finished", Duration::from_secs(300));
    w.enter();
    w.wait_for("gitlab version: installed 16.10.3-ee", STEP);
    w.enter();
    w.wait_for("No archive to restore from", STEP);
    w.enter();
    w.wait_for("by hand", STEP);
    w.enter();
    w.wait_for("Checks after the restore", STEP);
    w.send(b"s");
    w.wait_for("gitlab:check SANITIZE=true", STEP);
    w.enter();
    let st = w.wait_exit(STEP);
    assert!(st.success(), "exit status {st:?}");
    w.assert_terminal_sane();
    let after = compare::fingerprint(&sb.target).expect("fingerprint");
    let diff = sb
        .expected
        .diff_except_owners(&after, &skipped_owner_statements(&sb));
    assert!(
        diff.iter().all(|d| d.starts_with("schema differs")
            || d.contains("audit_event_partition_name")
            || d.contains("issues_count_for")),
        "the database differs from the backup beyond the functions GitLab's drop keeps: {diff:#?}"
    );
    assert!(!session.exists());
    let snaps = std::fs::read_dir(
        sb.tree
            .path()
            .join("var/opt/gitlab/backups/rewind/snapshots"),
    )
    .expect("snapshots")
    .flatten()
    .count();
    assert_eq!(snaps, 1, "the snapshot was taken twice");
    drop(sb.cluster);
}

#[test]
fn sigterm_and_sighup_leave_the_terminal_sane() {
    for sig in ["-TERM", "-HUP"] {
        let empty = tempfile::tempdir().expect("root");
        let mut w = Wizard::start(empty.path());
        w.wait_for("Looked at", STEP);
        let pid = w.child.process_id().expect("pid");
        let st = std::process::Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .expect("kill");
        assert!(st.success());
        w.wait_exit(STEP);
        w.assert_terminal_sane();
    }
}

/// Another Rewind takes the host lock between the confirmation and the restore: the
/// wizard shows who holds it, changes nothing, and `r` runs the restore once it is free.
#[test]
fn a_restore_refused_by_another_recovery_runs_with_r_once_the_host_is_free() {
    let sb = sandbox(1);
    let mut w = Wizard::start(sb.tree.path());
    drive_to_restore(&mut w, false);
    w.wait_for("No safety snapshot is needed", STEP);
    let root = rewind_engine::root::HostRoot::new(sb.tree.path().to_path_buf());
    let held = rewind_engine::recovery::lock::host(&root, "rewind restore --from=another-terminal")
        .expect("the test takes the host lock");
    w.enter();
    w.wait_for("another Rewind recovery is running", STEP);
    // The holder's command is cut at this width: the detail view shows it whole.
    w.send(b"v");
    w.wait_for("--from=another-terminal", STEP);
    w.send(b"\x1b");
    w.wait_for("Restore: stopped", STEP);
    // Nothing changed: the live database is still the failed upgrade's.
    let now = compare::fingerprint(&sb.target).expect("fingerprint");
    assert!(
        sb.failed.diff(&now).is_empty(),
        "{:#?}",
        sb.failed.diff(&now)
    );
    // Enter says how to go on; r runs it again once the other recovery is gone.
    w.enter();
    w.wait_for("Press r to run the restore again", STEP);
    drop(held);
    w.send(b"r");
    w.wait_for("Restore: finished", Duration::from_secs(300));
    assert_live_is_the_backup(&sb);
    let _ = w.child.kill();
    drop(sb.cluster);
}
