//! The interactive drill, as an engineer rehearses it: `rewind drill` in a pseudo-terminal,
//! the production wizard driven by keystrokes from Detect to Done on the drill's sandbox
//! (real cluster, real apt/dpkg rollback, real archive), then the drill's own checks.

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portable_pty::{native_pty_system, CommandBuilder, PtySize};

const ROWS: u16 = 30;
const COLS: u16 = 100;
const STEP: Duration = Duration::from_secs(120);

struct Term {
    screen: Arc<Mutex<vt100::Parser>>,
    raw: Arc<Mutex<Vec<u8>>>,
    writer: Box<dyn Write + Send>,
}

impl Term {
    fn wait_for(&self, text: &str) {
        let end = Instant::now() + STEP;
        loop {
            let c = self.screen.lock().unwrap().screen().contents();
            if c.contains(text) {
                return;
            }
            assert!(
                Instant::now() < end,
                "timed out waiting for {text:?}; the screen shows:\n{c}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Press Enter until `text` shows: a step still running ("Please wait") ignores keys,
    /// and on a loaded machine the plan of the next step can take a while.
    fn enter_until(&mut self, text: &str) {
        let end = Instant::now() + STEP;
        loop {
            self.send(b"\r");
            let retry = Instant::now() + Duration::from_secs(3);
            while Instant::now() < retry {
                let c = self.screen.lock().unwrap().screen().contents();
                if c.contains(text) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let c = self.screen.lock().unwrap().screen().contents();
            assert!(
                Instant::now() < end,
                "timed out waiting for {text:?}; the screen shows:\n{c}"
            );
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
        self.writer.flush().unwrap();
    }

    fn contents(&self) -> String {
        self.screen.lock().unwrap().screen().contents()
    }

    /// From Detect (once `installed` shows): the backup list, then the newest backup
    /// (once `backup` shows), which runs the preflight. Enter is pressed again while Detect
    /// still reads the journal for an interrupted swap (it waits for that first).
    fn pick_the_newest_backup(&mut self, installed: &str, backup: &str) {
        self.wait_for(installed);
        self.enter_until("Backups, newest first");
        self.wait_for(backup);
        self.send(b"\r");
    }

    /// After the last database name: the repositories page, when the backup has
    /// repositories (what gitaly-backup's -remove-all-repositories deletes, the pushed
    /// ones listed, bundling them first ticked): y replaces them.
    fn confirm_repositories(&mut self) {
        self.wait_for("Confirm the repositories");
        self.wait_for("-remove-all-repositories default");
        self.wait_for("[x] bundle the");
        self.wait_for("Pushed to since the backup");
        self.send(b"y");
    }

    /// From the repositories page: the snapshot screen (what Enter starts: beside, "load
    /// beside, verify, then swap"; in place, the snapshot taken before the package step
    /// reused, "drop, then restore"), the restore; then Verify (once `verified` shows) and
    /// on to the configuration.
    fn restore_and_verify(&mut self, verified: &str) {
        self.confirm_repositories();
        self.wait_for("Enter starts: ");
        self.send(b"\r");
        self.wait_for("restore finished");
        self.send(b"\r");
        self.wait_for(verified);
        self.send(b"\r");
    }

    /// From a passed preflight: stop the services, roll the package back to 16.10.3-ee,
    /// and go on to the drop confirmation.
    fn stop_services_and_roll_back(&mut self) {
        self.wait_for("goes on to stopping the services");
        self.send(b"\r");
        self.wait_for("gitlab-ctl stop sidekiq");
        self.enter_until("Run these commands now?");
        self.send(b"y");
        self.wait_for("puma and sidekiq are stopped");
        self.send(b"\r");
        self.wait_for("Roll back package");
        self.enter_until("Run these commands now?");
        self.send(b"y");
        self.wait_for("GitLab 16.10.3-ee is installed");
        self.send(b"\r");
    }

    /// From Verify: the configuration archive of the backup compared and restored
    /// (gitlab-secrets.json and gitlab.rb), the services started, GitLab's checks run
    /// (the readiness wait first, gitlab:doctor:secrets read), and the wizard left at Done.
    fn start_services_and_finish(&mut self) {
        self.wait_for("← nearest");
        self.wait_for("gitlab-secrets.json differs");
        self.wait_for("(key names only; values are never shown)");
        self.send(b"y");
        self.wait_for("Restore the configuration?");
        self.send(b"y");
        self.wait_for("/etc/gitlab/gitlab-secrets.json restored (previous:");
        self.send(b"\r");
        self.wait_for("Enter runs these commands");
        self.enter_until("Run these commands now?");
        self.send(b"y");
        self.wait_for("ok: run: sidekiq");
        // The output streams before the step ends: wait for its result, not its output.
        self.wait_for("Done. GitLab reconfigured and started");
        self.send(b"\r");
        self.wait_for("Enter runs the ticked ones");
        self.wait_for("$ GET http://localhost/-/readiness on");
        self.send(b"\r");
        self.wait_for("GitLab answers ready after");
        self.wait_for("every encrypted value decrypts");
        self.wait_for("Enter continue");
        let screen = self.screen.lock().unwrap().screen().contents();
        assert!(!screen.contains("✗"), "a check failed:\n{screen}");
        self.send(b"\r");
        self.wait_for("is back on the backup's data");
        self.send(b"\r");
    }

    /// As [`Self::start_services_and_finish`], and the Done screen names the kept
    /// database with `rewind undo` and `rewind cleanup` before the wizard is left.
    fn start_services_and_finish_beside(&mut self) {
        self.wait_for("← nearest");
        self.wait_for("gitlab-secrets.json differs");
        self.send(b"y");
        self.wait_for("Restore the configuration?");
        self.send(b"y");
        self.wait_for("/etc/gitlab/gitlab-secrets.json restored (previous:");
        self.send(b"\r");
        self.wait_for("Enter runs these commands");
        self.enter_until("Run these commands now?");
        self.send(b"y");
        self.wait_for("Done. GitLab reconfigured and started");
        self.send(b"\r");
        self.wait_for("Enter runs the ticked ones");
        self.send(b"\r");
        self.wait_for("every encrypted value decrypts");
        self.wait_for("Enter continue");
        self.send(b"\r");
        self.wait_for("is back on the backup's data");
        self.wait_for("kept      gitlabhq_production_before_rewind_2");
        self.wait_for("`rewind undo` swaps it back");
        self.wait_for("`rewind cleanup` removes it once GitLab is healthy");
        let screen = self.contents();
        assert!(!screen.contains("snapshot  "), "no snapshot:\n{screen}");
        self.send(b"\r");
    }

    fn raw_text(&self) -> String {
        String::from_utf8_lossy(&self.raw.lock().unwrap()).into_owned()
    }
}

/// `rewind drill [args]` in a pseudo-terminal: the terminal and the child.
fn spawn_drill(args: &[&str]) -> (Term, Box<dyn portable_pty::Child + Send + Sync>) {
    let pair = native_pty_system()
        .openpty(PtySize {
            rows: ROWS,
            cols: COLS,
            pixel_width: 0,
            pixel_height: 0,
        })
        .expect("openpty");
    let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_rewind"));
    cmd.arg("drill");
    cmd.args(args);
    cmd.env("NO_COLOR", "1");
    cmd.env("TERM", "xterm-256color");
    let child = pair.slave.spawn_command(cmd).expect("spawn rewind drill");
    let mut reader = pair.master.try_clone_reader().unwrap();
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
    let t = Term {
        screen,
        raw,
        writer: pair.master.take_writer().unwrap(),
    };
    (t, child)
}

fn wait_exit(t: &Term, child: &mut Box<dyn portable_pty::Child + Send + Sync>) -> String {
    let end = Instant::now() + STEP;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > end {
            let _ = child.kill();
            panic!("the drill did not exit:\n{}", t.raw_text());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // The child may have exited before the reader thread read its last bytes: wait for
    // the report's verdict line (a drill that refuses early has none: give it a moment).
    let end = Instant::now() + Duration::from_secs(10);
    let mut out = t.raw_text();
    while !(out.contains("DRILL PASSED") || out.contains("DRILL FAILED")) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
        out = t.raw_text();
    }
    std::thread::sleep(Duration::from_millis(100));
    let out = t.raw_text();
    assert!(status.success(), "drill failed:\n{out}");
    out
}

/// The backup's version is not offered: the wizard's preflight fails the version check
/// with GitLab's message, Enter is refused with the fix, and the user leaves with nothing
/// changed.
#[test]
fn the_interactive_drill_refuses_a_version_the_host_cannot_get_at_preflight() {
    let (mut t, mut child) = spawn_drill(&["--scenario", "version-mismatch"]);
    t.wait_for("DRILL (version-mismatch)");
    t.pick_the_newest_backup("16.11.0-ee", "16.9.2");
    t.wait_for("[FAIL] ›target GitLab version available");
    t.wait_for("GitLab version mismatch: Your current GitLab version (16.11.0-ee)");
    t.wait_for("gitlab-ee 16.9.2-ee is not offered");
    t.send(b"\r");
    t.wait_for("Blocked: target GitLab version available failed");
    let screen = t.screen.lock().unwrap().screen().contents();
    assert!(!screen.contains("Stop services"), "{screen}");
    t.send(b"q");
    let out = wait_exit(&t, &mut child);
    assert!(out.contains("DRILL PASSED"), "{out}");
    assert!(out.contains("database unchanged"), "{out}");
}

/// The default strategy: beside and swap (the sandbox cluster's administrator creates and
/// renames databases). The Roll back confirmation says no snapshot is taken and why, the
/// drop screen that the live database is kept under its `_before_rewind_` name and nothing
/// is dropped, the snapshot screen what Enter starts; Done names the kept database. The
/// drill's checks then read both databases: the live name holds the backup's data, the
/// kept one the failed upgrade's state (schema and rows as before the recovery).
#[test]
fn the_interactive_drill_is_recovered_by_keystrokes() {
    let (mut t, mut child) = spawn_drill(&[]);
    t.wait_for("DRILL (failed-upgrade)");
    t.pick_the_newest_backup("16.11.0-ee", "16.10.3");
    t.wait_for("goes on to stopping the services");
    t.send(b"\r");
    t.wait_for("gitlab-ctl stop sidekiq");
    t.enter_until("Run these commands now?");
    t.send(b"y");
    t.wait_for("puma and sidekiq are stopped");
    t.send(b"\r");
    t.wait_for("Roll back package");
    t.enter_until("Run these commands now?");
    t.wait_for("No safety snapshot: the restore will run beside the live database");
    t.wait_for("databases are created and renamed by");
    let modal = t.contents();
    assert!(!modal.contains("First, a safety snapshot"), "{modal}");
    t.send(b"y");
    t.wait_for("GitLab 16.10.3-ee is installed");
    t.send(b"\r");
    t.wait_for("Replace the database (the live one is kept)");
    t.wait_for("The live database is kept as gitlabhq_production_before_rewind_<UTC time>");
    t.wait_for("nothing is dropped.");
    t.wait_for("Strategy: beside and swap:");
    t.wait_for("Type the database name");
    t.wait_for(" objects, ");
    let drop_screen = t.contents();
    assert!(!drop_screen.contains("Danger"), "{drop_screen}");
    t.send(b"gitlabhq_production");
    t.wait_for("Restore beside and swap (Enter)");
    t.send(b"\r");
    // The repository pushed to while 16.11.0 was half-migrated is listed.
    t.wait_for("Pushed to since the backup: 1");
    t.confirm_repositories();
    t.wait_for("No safety snapshot is needed: the restore runs beside gitlabhq_production");
    t.wait_for("gitlabhq_production -> gitlabhq_production_before_rewind_<UTC time>");
    t.wait_for("Enter starts: load beside, verify, then swap.");
    t.send(b"\r");
    t.wait_for("restore finished");
    t.send(b"\r");
    t.wait_for("gitlab version: installed 16.10.3-ee");
    t.send(b"\r");
    t.start_services_and_finish_beside();

    let out = wait_exit(&t, &mut child);
    assert!(out.contains("DRILL PASSED"), "{out}");
    assert!(
        out.contains("pass main database equals the backup"),
        "{out}"
    );
    assert!(
        out.contains("pass failed upgrade's databases kept beside (no snapshot needed)"),
        "{out}"
    );
    assert!(
        out.contains("pass kept database equals the failed upgrade's state"),
        "{out}"
    );
    assert!(
        out.contains("-> gitlabhq_production_before_rewind_2"),
        "{out}"
    );
    assert!(
        out.contains("pass gitlab-secrets.json and gitlab.rb are the backup's configuration"),
        "{out}"
    );
    assert!(
        out.contains("pass gitlab:doctor:secrets: every encrypted value decrypts"),
        "{out}"
    );
    assert!(out.contains("pass repositories equal the backup"), "{out}");
    assert!(out.contains("\x1b[?1049l"), "alternate screen not left");
}

/// The drop screen offers to salvage what was written since the backup: Ctrl-S writes it
/// (the drop waits), the screen says how many rows and where, and the recovery finishes.
#[test]
fn the_interactive_drill_salvages_the_rows_written_since_the_backup_with_ctrl_s() {
    let (mut t, mut child) = spawn_drill(&[]);
    t.wait_for("DRILL (failed-upgrade)");
    t.pick_the_newest_backup("16.11.0-ee", "16.10.3");
    t.stop_services_and_roll_back();
    t.wait_for("Written since the backup");
    t.wait_for(" objects, ");
    t.send(b"\x13");
    t.wait_for("Salvaged ");
    let screen = t.screen.lock().unwrap().screen().contents();
    assert!(screen.contains("/salvage-"), "{screen}");
    t.send(b"gitlabhq_production");
    t.wait_for("Restore beside and swap (Enter)");
    t.send(b"\r");
    t.wait_for("Pushed to since the backup: 1");
    t.restore_and_verify("gitlab version: installed 16.10.3-ee");
    t.start_services_and_finish();
    let out = wait_exit(&t, &mut child);
    assert!(out.contains("DRILL PASSED"), "{out}");
}

/// The 14-digit version the repair screen asks to type, if it asks.
fn asked_version(screen: &str) -> Option<String> {
    let i = screen.find("Type ")?;
    let rest = &screen[i + 5..];
    let v: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    (v.len() == 14 && rest[14..].starts_with(" to mark it complete")).then_some(v)
}

/// A restore that left the failed upgrade's tables behind: the next db:migrate failed on
/// `PG::DuplicateTable`. From Detect, m opens the repair; Tab completes to the newest failed
/// log; the migrate command is the host's (the drill's gitlab-rake); each version is typed
/// as the loop asks for it until the migrations succeed; the drill's checks then pass.
#[test]
fn the_interactive_drill_repairs_migration_state_by_keystrokes() {
    let (mut t, mut child) = spawn_drill(&["--scenario", "leftover-tables"]);
    t.wait_for("DRILL (leftover-tables)");
    t.wait_for("16.10.3-ee");
    // m waits while Detect still reads the journal for an interrupted swap.
    // (Once the repair screen is open, letters are typed into its log field: press m
    // again only while Detect still shows.)
    let end = Instant::now() + STEP;
    loop {
        t.send(b"m");
        let retry = Instant::now() + Duration::from_secs(3);
        while Instant::now() < retry && !t.contents().contains("Repair migrations") {
            std::thread::sleep(Duration::from_millis(50));
        }
        if t.contents().contains("Repair migrations") {
            break;
        }
        assert!(
            Instant::now() < end,
            "m did not open the repair:\n{}",
            t.contents()
        );
    }
    t.wait_for("1 failed log found");
    t.wait_for("opt/gitlab/bin/gitlab-rake db:migrate");
    t.send(b"\t");
    t.wait_for("gitlab-rails-db-migrate-");
    t.send(b"\r");
    t.wait_for("verdict:     mark complete");
    t.wait_for("gitlab-rake gitlab:db:mark_migration_complete[");
    let mut typed = Vec::new();
    let end = Instant::now() + STEP * 2;
    loop {
        let screen = t.screen.lock().unwrap().screen().contents();
        if screen.contains("Migrations succeeded after marking") {
            break;
        }
        if let Some(v) = asked_version(&screen) {
            if !typed.contains(&v) {
                t.send(v.as_bytes());
                t.send(b"\r");
                typed.push(v);
            }
        }
        assert!(
            Instant::now() < end,
            "the repair did not finish; typed {typed:?}; the screen shows:\n{screen}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(typed.len(), 2, "one version per leftover table: {typed:?}");
    t.send(b"\x1b"); // back to Detect
    t.wait_for("Installation");
    t.send(b"q");
    t.wait_for("This run changed the host:");
    t.wait_for("migration 2024");
    t.send(b"y");
    let out = wait_exit(&t, &mut child);
    assert!(out.contains("DRILL PASSED"), "{out}");
    assert!(out.contains("every 16.11.0 migration recorded"), "{out}");
}

/// A decomposed install (main and ci): the drop is confirmed on one screen per database,
/// main first, each by its own name; both are restored and the drill's checks pass.
#[test]
fn the_interactive_drill_restores_a_decomposed_install_by_keystrokes() {
    let (mut t, mut child) = spawn_drill(&["--scenario", "decomposed"]);
    t.wait_for("DRILL (decomposed)");
    t.pick_the_newest_backup("db ci", "16.10.3");
    t.stop_services_and_roll_back();
    t.wait_for("Database 1 of 2");
    t.wait_for("Type the database name gitlabhq_production to confirm");
    t.send(b"gitlabhq_production");
    t.wait_for("Confirm, next database (Enter)");
    t.send(b"\r");
    t.wait_for("Database 2 of 2");
    t.wait_for("Type the database name gitlabhq_production_ci to confirm");
    t.send(b"gitlabhq_production_ci");
    t.wait_for("Restore beside and swap (Enter)");
    t.send(b"\r");
    t.restore_and_verify("gitlabhq_production_ci: row counts");
    t.start_services_and_finish();
    let out = wait_exit(&t, &mut child);
    assert!(out.contains("DRILL PASSED"), "{out}");
    assert!(out.contains("ci database equals the backup"), "{out}");
}

/// CE 16.10.3 was upgraded to EE 16.11.0 and the backup was made on CE: preflight warns
/// that the editions differ, the Roll back step asks before planning anything (Enter only
/// says what to press), i installs gitlab-ce 16.10.3, and the recovery finishes.
#[test]
fn the_interactive_drill_asks_about_the_edition_and_installs_the_backups() {
    let (mut t, mut child) = spawn_drill(&["--scenario", "edition-change"]);
    t.wait_for("DRILL (edition-change)");
    t.pick_the_newest_backup("16.11.0-ee", "16.10.3");
    t.wait_for("editions differ");
    t.wait_for("goes on to stopping the services");
    t.send(b"\r");
    t.wait_for("gitlab-ctl stop sidekiq");
    t.enter_until("Run these commands now?");
    t.send(b"y");
    t.wait_for("puma and sidekiq are stopped");
    t.send(b"\r");
    t.wait_for("The editions differ: gitlab-ee is installed");
    t.send(b"\r");
    t.wait_for("press i to install gitlab-ce 16.10.3");
    t.send(b"i");
    t.wait_for("gitlab-ce=16.10.3-ce.0");
    t.enter_until("Run these commands now?");
    t.send(b"y");
    t.wait_for("GitLab 16.10.3-ce is installed");
    t.send(b"\r");
    t.wait_for(" objects, ");
    t.send(b"gitlabhq_production");
    t.wait_for("Restore beside and swap (Enter)");
    t.send(b"\r");
    t.restore_and_verify("row counts");
    t.start_services_and_finish();
    let out = wait_exit(&t, &mut child);
    assert!(out.contains("DRILL PASSED"), "{out}");
    assert!(out.contains("installed 16.10.3, backup 16.10.3"), "{out}");
}

/// The newest backup is truncated: preflight fails its archive check before anything is
/// touched, Esc goes back to the list, the older good backup is picked, and the recovery
/// is finished with it, in place (`--in-place`: GitLab's way, the snapshot taken before
/// the package step, then drop and load).
#[test]
fn the_interactive_drill_refuses_a_corrupt_backup_and_recovers_from_the_older_one() {
    let (mut t, mut child) = spawn_drill(&["--scenario", "corrupt-backup", "--in-place"]);
    t.wait_for("DRILL (corrupt-backup)");
    t.pick_the_newest_backup("16.11.0-ee", "16.10.3");
    t.wait_for("[FAIL]");
    t.wait_for("the archive is damaged or incomplete");
    t.send(b"\r"); // refused: nothing goes on
    std::thread::sleep(Duration::from_millis(500));
    let screen = t.screen.lock().unwrap().screen().contents();
    assert!(screen.contains("step 3/13 · Preflight"), "{screen}");
    t.send(b"\x1b"); // back to the list
    t.wait_for("Select backup");
    t.send(b"\x1b[B"); // the older one
    t.send(b"\r");
    t.stop_services_and_roll_back();
    t.wait_for("Danger: this drops every table");
    t.wait_for("Everything in gitlabhq_production is dropped, then the backup is loaded.");
    t.wait_for("A safety snapshot was already taken");
    t.wait_for("Strategy: in place: --in-place was given");
    t.wait_for("Type the database name gitlabhq_production to confirm");
    t.send(b"gitlabhq_production");
    t.wait_for("Drop and restore (Enter)");
    t.send(b"\r");
    t.confirm_repositories();
    t.wait_for("drop, then restore");
    t.send(b"\r");
    t.wait_for("restore finished");
    t.send(b"\r");
    t.wait_for("row counts");
    t.send(b"\r");
    t.start_services_and_finish();
    let out = wait_exit(&t, &mut child);
    assert!(out.contains("DRILL PASSED"), "{out}");
    assert!(out.contains("main database equals the backup"), "{out}");
    assert!(
        out.contains("pass safety snapshots taken before the package step"),
        "{out}"
    );
}

/// Ctrl-C right after the restore starts: the runner stops at its first safe point, before
/// anything is dropped; r runs it again, reusing the safety snapshot the rollback took
/// before the package step (not taken twice), and the recovery finishes.
#[test]
fn a_restore_cancelled_at_once_runs_again_with_the_snapshot_of_the_package_step() {
    let (mut t, mut child) =
        spawn_drill(&["--scenario", "failed-upgrade", "--scale", "5", "--in-place"]);
    t.wait_for("DRILL (failed-upgrade)");
    t.pick_the_newest_backup("16.11.0-ee", "16.10.3");
    t.stop_services_and_roll_back();
    t.wait_for(" objects, ");
    t.send(b"gitlabhq_production");
    t.wait_for("Drop and restore (Enter)");
    t.send(b"\r");
    t.confirm_repositories();
    t.wait_for("taken earlier in this recovery (reused, not taken twice)");
    t.wait_for("drop, then restore");
    // Start, and cancel at once: the runner first reads the dump's catalogue and checks
    // the locks and the connections.
    t.send(b"\r");
    t.send(b"\x03");
    t.send(b"y");
    t.wait_for("cancelled");
    t.send(b"r");
    t.wait_for("restore finished");
    t.send(b"\r");
    t.wait_for("row counts");
    t.send(b"\r");
    t.start_services_and_finish();
    let out = wait_exit(&t, &mut child);
    assert!(out.contains("DRILL PASSED"), "{out}");
    assert!(
        out.contains("safety snapshots taken before the package step"),
        "{out}"
    );
}

/// The configuration step skipped: GitLab starts with the failed upgrade's
/// gitlab-secrets.json and gitlab.rb. The checks step runs gitlab:doctor:secrets, whose
/// output is read and shown (this scenario's 16.11 reconfigure added a key; the sandbox's
/// encrypted column uses db_key_base, which it kept, so every value still decrypts); the
/// drill's own check of the configuration fails and the drill exits non-zero.
#[test]
fn the_interactive_drill_without_the_configuration_fails_its_configuration_check() {
    let (mut t, mut child) = spawn_drill(&[]);
    t.wait_for("DRILL (failed-upgrade)");
    t.pick_the_newest_backup("16.11.0-ee", "16.10.3");
    t.stop_services_and_roll_back();
    t.wait_for(" objects, ");
    t.send(b"gitlabhq_production");
    t.wait_for("Restore beside and swap (Enter)");
    t.send(b"\r");
    t.restore_and_verify("gitlab version: installed 16.10.3-ee");
    t.wait_for("gitlab-secrets.json differs");
    t.wait_for("only live    gitlab_rails.active_record_encryption_primary_key");
    t.send(b"s");
    t.wait_for("Enter runs these commands");
    t.enter_until("Run these commands now?");
    t.send(b"y");
    t.wait_for("Done. GitLab reconfigured and started");
    t.send(b"\r");
    t.wait_for("Enter runs the ticked ones");
    t.send(b"\r");
    t.wait_for("- Ci::PipelineVariable failures: 0");
    t.wait_for("Every encrypted value decrypts (1 models checked).");
    t.wait_for("Enter continue");
    t.send(b"\r");
    t.wait_for("is back on the backup's data");
    t.send(b"\r");
    let end = Instant::now() + STEP;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < end, "the drill did not exit");
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_millis(300));
    let out = t.raw_text();
    assert!(
        !status.success(),
        "the drill passed without the configuration:\n{out}"
    );
    assert!(
        out.contains("FAIL gitlab-secrets.json and gitlab.rb are the backup's configuration"),
        "{out}"
    );
    assert!(
        out.contains("gitlab-secrets.json and gitlab.rb differ from gitlab_config_"),
        "{out}"
    );
    assert!(out.contains("main database equals the backup"), "{out}");
}
