//! Every screen rendered with ratatui's `TestBackend` at 80x24 and at a wide size, compared
//! with the snapshots in `src/tui/snapshots/`.

use std::time::Duration;

use crossterm::event::KeyCode;
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use rewind_engine::preflight::Status;
use rewind_engine::progress::Phase;
use rewind_engine::session::{BackupIdentity, Session, SessionStep};

use rewind_engine::migrate::describe::{Fact, Tone};

use super::event::{ActionPlan, Event, Msg, RestoreSummary};
use super::fixtures::*;
use super::state::{Loadable, RepairItem, ResumeOffer, State, Step, VerifyLine};
use super::update::update;
use super::view::view;

const STARTED: &str = "2026-11-25T09:12:40Z";
const SNAP: &str =
    "/var/opt/gitlab/backups/rewind/snapshot-20261125091240-gitlabhq_production.dump";

/// Make time-dependent fields fixed.
fn settle(s: &mut State) {
    if let Some(sess) = s.session.as_mut() {
        sess.started = STARTED.into();
        for d in &mut sess.done {
            d.at = STARTED.into();
        }
    }
    for p in s.snapshots_taken.values_mut() {
        *p = SNAP.into();
    }
}

fn render(s: &State, w: u16, h: u16) -> String {
    let mut t = Terminal::new(TestBackend::new(w, h)).expect("test terminal");
    t.draw(|f| view(s, f)).expect("draw");
    let buf = t.backend().buffer().clone();
    let mut out = String::new();
    for y in 0..h {
        let mut line = String::new();
        for x in 0..w {
            line.push_str(buf[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Snapshot a state at 80x24 and 120x34; at both sizes nothing is cut without the detail
/// view offered and holding the whole text ([`assert_readable`]).
fn check(name: &str, mut s: State) {
    settle(&mut s);
    insta::assert_snapshot!(format!("{name}_80x24"), render(&s, 80, 24));
    insta::assert_snapshot!(format!("{name}_120x34"), render(&s, 120, 34));
    assert_readable(name, &s, 80, 24);
    assert_readable(name, &s, 120, 34);
}

/// `text` without any whitespace (table columns and wrapping space words differently in
/// the detail view).
fn squeeze(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

/// At most `n` characters of `text` next to a cut, within its box (up to a border).
fn near(text: &[char], n: usize) -> String {
    let s: String = text.iter().collect();
    let s = s.rsplit('│').next().unwrap_or_default().to_string();
    let c: Vec<char> = s.chars().collect();
    c[c.len().saturating_sub(n)..].iter().collect()
}

/// Every line of the screen at `w`x`h` either fits or the screen offers the detail key
/// and the detail view holds the line's text in full. A line is cut where a `…` joins a
/// word that the detail view does not show with `…` (the shorteners' mark, at the end or,
/// for paths, at the start), or where text runs into a box's right border. Where nothing
/// is cut, the key bar does not offer the view.
fn assert_readable(name: &str, s: &State, w: u16, h: u16) {
    let screen = render(s, w, h);
    let rows: Vec<&str> = screen.lines().collect();
    let (keybar, body) = rows.split_last().expect("rows");
    let offered = keybar.contains("v details") || keybar.contains("F3 details");
    if s.modal.is_some() || s.help || s.overview || s.detail.is_some() {
        return;
    }
    let mut d = s.clone();
    d.size = (w, h);
    let a = super::detail::text_area(d.size);
    let full: String = super::detail::lines(&d, a.width - 1)
        .0
        .iter()
        .flat_map(|l| l.spans.iter().map(|sp| sp.content.to_string()))
        .collect();
    let full = squeeze(&full);
    let mut cuts = Vec::new();
    for row in body {
        let c: Vec<char> = row.chars().collect();
        for (i, ch) in c.iter().enumerate() {
            if *ch != '…' {
                continue;
            }
            let before = c[..i]
                .last()
                .is_some_and(|p| !p.is_whitespace() && *p != '│');
            let after = c
                .get(i + 1)
                .is_some_and(|p| !p.is_whitespace() && *p != '│');
            if before {
                // Cut at the end: the words before it.
                let words = squeeze(&near(&c[..i], 30));
                if !full.contains(&format!("{words}…")) {
                    cuts.push((row.to_string(), words));
                }
            } else if after {
                // Cut at the start (a path keeps its end): the text after it.
                let rest: String = c[i + 1..].iter().take_while(|p| **p != '│').collect();
                let words = squeeze(&rest.chars().take(30).collect::<String>());
                if !full.contains(&format!("…{words}")) {
                    cuts.push((row.to_string(), words));
                }
            }
        }
        let n = c.len();
        // Text up to the border (a `…` there was taken above).
        if n == w as usize
            && c[n - 1] == '│'
            && !c[n - 2].is_whitespace()
            && !matches!(c[n - 2], '─' | '…')
        {
            cuts.push((row.to_string(), squeeze(&near(&c[..n - 1], 30))));
        }
    }
    if cuts.is_empty() {
        assert!(
            !offered,
            "{name} at {w}x{h}: nothing is cut, yet the key bar offers the detail view:\n{screen}"
        );
        return;
    }
    assert!(
        offered,
        "{name} at {w}x{h}: {} line(s) cut without the detail key, first {:?}:\n{screen}",
        cuts.len(),
        cuts[0].0
    );
    for (row, words) in cuts {
        assert!(
            full.contains(&words),
            "{name} at {w}x{h}: the detail view lacks the text of the cut line {row:?} ({words:?})"
        );
    }
}

#[test]
fn detect() {
    let mut s = at_backups();
    s.step = Step::Detect;
    check("detect", s);
}

/// An upgrade since the backup failed on an unfinished batched background migration: fix
/// forward, with GitLab's finalize command.
#[test]
fn detect_failed_upgrade_fix_forward() {
    let mut s = at_backups();
    s.step = Step::Detect;
    s.triage = Loadable::Ready(triage("bbm-unfinished.log"));
    check("detect_failed_upgrade_fix_forward", s);
}

/// A failure Rewind does not recognise as fixable forward: a rollback is needed.
#[test]
fn detect_failed_upgrade_rollback() {
    let mut s = at_backups();
    s.step = Step::Detect;
    s.triage = Loadable::Ready(triage("pg-unsupported-version.log"));
    if let Loadable::Ready(t) = &mut s.triage {
        let text = rewind_engine::sandbox::upgrade::upgrade_migrate_log();
        t.classification = rewind_engine::migrate::triage::classify(
            &text,
            &rewind_engine::migrate::log::parse_str(&text),
            None,
            "migrate.log",
        );
    }
    check("detect_failed_upgrade_rollback", s);
}

#[test]
fn detect_nothing_found() {
    let mut s = at_backups();
    s.step = Step::Detect;
    if let Loadable::Ready(i) = &mut s.installation {
        i.kind = None;
        i.version = None;
        i.edition = None;
        i.package = None;
        i.databases.clear();
        i.findings.iter_mut().for_each(|f| {
            f.found = false;
            f.note = "does not exist".into();
        });
    }
    check("detect_nothing_found", s);
}

#[test]
fn select_backup() {
    let mut s = at_backups();
    update(&mut s, ch('j'));
    check("select_backup", s);
}

#[test]
fn preflight_running() {
    let mut s = at_backups();
    update(&mut s, key(KeyCode::Enter));
    update(
        &mut s,
        Event::Engine(Msg::Progress(rewind_engine::progress::Event::Progress {
            phase: Phase::Verify,
            done: 301_989_888,
            total: Some(734_003_200),
            current: None,
            rows: None,
        })),
    );
    check("preflight_running", s);
}

#[test]
fn preflight_failed() {
    let mut s = at_preflight(Status::Fail);
    update(&mut s, key(KeyCode::Enter));
    check("preflight_failed", s);
}

/// A decomposed installation (main and ci checked one by one) whose backup's version is
/// neither installed nor offered: the version check fails with GitLab's message, the
/// cursor is on it, and Enter is refused with its fix.
#[test]
fn preflight_version_unavailable_decomposed() {
    use rewind_engine::preflight::{Check, CheckKind};
    let mut s = at_backups();
    update(&mut s, key(KeyCode::Enter));
    let c = |kind, status, reason: &str, fix: &str, db: Option<&str>| Check {
        kind,
        status,
        reason: reason.into(),
        fix: fix.into(),
        database: db.map(str::to_string),
    };
    let checks = vec![
        c(CheckKind::Archive, Status::Pass, "9 members read end to end", "", None),
        c(CheckKind::FreeDisk, Status::Pass, "41.2 GiB free in /var/opt/gitlab/backups, database 2.3 GiB", "", None),
        c(CheckKind::Database, Status::Pass, "gitlabhq_production on socket /var/opt/gitlab/postgresql/.s.PGSQL.5432 as gitlab (owner)", "", Some("main")),
        c(CheckKind::Database, Status::Pass, "gitlabhq_production_ci on socket /var/opt/gitlab/postgresql/.s.PGSQL.5432 as gitlab (owner)", "", Some("ci")),
        c(
            CheckKind::TargetPackage,
            Status::Fail,
            &rewind_engine::restore::database::version_mismatch_message("16.11.1-ee", "16.9.2-ee"),
            "gitlab-ee 16.9.2-ee is not offered by the configured apt/dpkg repositories (offered: 16.11.1-ee.0, 16.10.3-ee.0); `apt-cache madison gitlab-ee` lists what they offer. Add the repository that has 16.9.2-ee (then `apt-get update`), or download the package file and install it; then run the checks again. Or pick a backup made on an offered version",
            None,
        ),
        c(CheckKind::Writers, Status::Pass, "no other session is connected to gitlabhq_production", "", Some("main")),
        c(CheckKind::Writers, Status::Pass, "no other session is connected to gitlabhq_production_ci", "", Some("ci")),
    ];
    for ch in checks {
        update(&mut s, Event::Engine(Msg::PreflightCheck(ch)));
    }
    update(&mut s, Event::Engine(Msg::PreflightDone));
    assert!(update(&mut s, key(KeyCode::Enter)).is_empty());
    assert_eq!(s.step, Step::Preflight);
    check("preflight_version_unavailable_decomposed", s);
}

#[test]
fn stop_services_running() {
    let mut s = at_preflight(Status::Pass);
    update(&mut s, key(KeyCode::Enter));
    update(
        &mut s,
        Event::Engine(Msg::ActionPlanned {
            step: Step::StopServices,
            result: Ok(ActionPlan {
                commands: plan_commands(Step::StopServices),
                skip: None,
            }),
        }),
    );
    update(&mut s, key(KeyCode::Enter));
    update(&mut s, ch('y'));
    update(
        &mut s,
        Event::Engine(Msg::Progress(rewind_engine::progress::Event::Output {
            line: "ok: down: puma: 0s, normally up".into(),
        })),
    );
    check("stop_services_running", s);
}

#[test]
fn rollback_confirm_modal() {
    let mut s = at_preflight(Status::Pass);
    update(&mut s, key(KeyCode::Enter));
    s.stop.status = super::state::ActionStatus::Succeeded;
    update(&mut s, key(KeyCode::Enter));
    update(
        &mut s,
        Event::Engine(Msg::ActionPlanned {
            step: Step::RollbackPackage,
            result: Ok(ActionPlan {
                commands: plan_commands(Step::RollbackPackage),
                skip: None,
            }),
        }),
    );
    update(&mut s, key(KeyCode::Enter));
    check("rollback_confirm_modal", s);
}

#[test]
fn rollback_skipped() {
    let mut s = at_preflight(Status::Pass);
    update(&mut s, key(KeyCode::Enter));
    s.stop.status = super::state::ActionStatus::Succeeded;
    update(&mut s, key(KeyCode::Enter));
    update(
        &mut s,
        Event::Engine(Msg::ActionPlanned {
            step: Step::RollbackPackage,
            result: Ok(ActionPlan {
                commands: vec![],
                skip: Some(
                    "GitLab 16.10.3-ee is installed, the version the backup was made on".into(),
                ),
            }),
        }),
    );
    check("rollback_skipped", s);
}

#[test]
fn confirm_drop_typing() {
    let mut s = at_confirm();
    typed(&mut s, "gitlabhq_prod");
    check("confirm_drop_typing", s);
}

#[test]
fn confirm_drop_enabled() {
    let mut s = at_confirm();
    typed(&mut s, DB);
    check("confirm_drop_enabled", s);
}

#[test]
fn rollback_confirm_modal_beside() {
    let mut s = at_preflight_with(Status::Pass, beside());
    update(&mut s, key(KeyCode::Enter));
    s.stop.status = super::state::ActionStatus::Succeeded;
    update(&mut s, key(KeyCode::Enter));
    update(
        &mut s,
        Event::Engine(Msg::ActionPlanned {
            step: Step::RollbackPackage,
            result: Ok(ActionPlan {
                commands: plan_commands(Step::RollbackPackage),
                skip: None,
            }),
        }),
    );
    update(&mut s, key(KeyCode::Enter));
    check("rollback_confirm_modal_beside", s);
}

#[test]
fn confirm_drop_beside() {
    let mut s = at_confirm_with(beside());
    typed(&mut s, DB);
    check("confirm_drop_beside", s);
}

#[test]
fn safety_snapshot_beside() {
    let mut s = at_confirm_with(beside());
    typed(&mut s, DB);
    update(&mut s, key(KeyCode::Enter));
    check("safety_snapshot_beside", s);
}

#[test]
fn done_beside() {
    let mut s = at_confirm_with(beside());
    typed(&mut s, DB);
    update(&mut s, key(KeyCode::Enter));
    update(&mut s, key(KeyCode::Enter));
    update(
        &mut s,
        Event::Engine(Msg::RestoreDone(Ok(RestoreSummary {
            text: "1 database(s), 1873220 rows in 1:42".into(),
            verify: Vec::new(),
            rows: 0,
            tables: 0,
            kept: vec![format!("{DB}_before_rewind_20261130T031502")],
        }))),
    );
    s.step = Step::Done;
    check("done_beside", s);
}

#[test]
fn detect_interrupted_swap() {
    let mut s = State::new(rewind_engine::root::HostRoot::system(), None);
    s.color = false;
    super::update::start(&mut s);
    update(
        &mut s,
        Event::Engine(Msg::Detected(Ok(Box::new(installation())))),
    );
    update(
        &mut s,
        Event::Engine(Msg::InterruptedSwaps(Ok(vec![format!(
            "`{DB}` was renamed to `{DB}_before_rewind_20261130T031502`, but the restore `{DB}_rewind_20261130T031502` was not yet renamed to `{DB}`"
        )]))),
    );
    check("detect_interrupted_swap", s);
}

#[test]
fn safety_snapshot() {
    let mut s = at_confirm();
    typed(&mut s, DB);
    update(&mut s, key(KeyCode::Enter));
    check("safety_snapshot", s);
}

#[test]
fn restore_mid_data() {
    let mut s = mid_restore();
    update(&mut s, Event::Tick(Duration::from_secs(190)));
    check("restore_mid_data", s);
}

#[test]
fn restore_cancel_modal() {
    let mut s = mid_restore();
    update(&mut s, ctrl('c'));
    check("restore_cancel_modal", s);
}

#[test]
fn verify() {
    let mut s = mid_restore();
    update(
        &mut s,
        Event::Engine(Msg::RestoreDone(Ok(RestoreSummary {
            text: "1412 objects, 1 873 220 rows in 1:42".into(),
            verify: Vec::new(),
            rows: 0,
            tables: 0,
            kept: Vec::new(),
        }))),
    );
    update(&mut s, key(KeyCode::Enter));
    update(
        &mut s,
        Event::Engine(Msg::Verified(Ok(vec![
            VerifyLine { ok: true, text: "schema_migrations: 2718 versions, latest 20240412091512 = the backup's db_version".into() },
            VerifyLine { ok: true, text: "row counts: 412 tables match what the dump loaded".into() },
            VerifyLine { ok: true, text: "no table outside the backup's schema remains".into() },
            VerifyLine { ok: false, text: "installed version 16.11.1-ee, the backup's is 16.10.3-ee".into() },
        ]))),
    );
    check("verify", s);
}

#[test]
fn done() {
    let mut s = mid_restore();
    update(
        &mut s,
        Event::Engine(Msg::RestoreDone(Ok(RestoreSummary {
            text: "1412 objects, 1873220 rows in 1:42".into(),
            verify: Vec::new(),
            rows: 0,
            tables: 0,
            kept: Vec::new(),
        }))),
    );
    s.step = Step::Done;
    s.installation = Loadable::Ready({
        let mut i = installation();
        i.version = Some("16.10.3-ee".parse().unwrap());
        i
    });
    check("done", s);
}

#[test]
fn repair_assessed() {
    let mut s = at_backups();
    s.step = Step::Detect;
    update(&mut s, ch('m'));
    update(
        &mut s,
        Event::Engine(Msg::MigrateLogs {
            logs: Vec::new(),
            migrate_cmd: vec!["/opt/gitlab/bin/gitlab-rake".into(), "db:migrate".into()],
        }),
    );
    typed(
        &mut s,
        "/var/log/gitlab/gitlab-rails/gitlab-rails-db-migrate-2026-11-25.log",
    );
    update(&mut s, key(KeyCode::Enter));
    update(
        &mut s,
        Event::Engine(Msg::RepairAssessed(Ok(vec![RepairItem {
            version: "20151103134857".into(),
            name: "CreateLfsObjects".into(),
            error: "PG::DuplicateTable: ERROR: relation \"lfs_objects\" already exists".into(),
            verdict:
                "lfs_objects exists with the columns the migration creates: safe to mark complete"
                    .into(),
            markable: true,
            already_marked: false,
            sql: "INSERT INTO schema_migrations (version) VALUES ($1)".into(),
            facts: vec![
                fact("migration", "20151103134857 CreateLfsObjects", Tone::Strong),
                fact("database", "gitlabhq_production", Tone::Plain),
                fact(
                    "error",
                    "PG::DuplicateTable: relation \"lfs_objects\" already exists",
                    Tone::Plain,
                ),
                fact("object", "table public.lfs_objects: exists", Tone::Good),
                fact(
                    "marked",
                    "no: the version is not in schema_migrations",
                    Tone::Plain,
                ),
                fact("verdict", "mark complete", Tone::Good),
                fact(
                    "GitLab",
                    "gitlab-rake gitlab:db:mark_migration_complete[20151103134857]",
                    Tone::Plain,
                ),
            ],
            gitlab_command: "gitlab-rake gitlab:db:mark_migration_complete[20151103134857]".into(),
        }]))),
    );
    typed(&mut s, "2015");
    check("repair_assessed", s);
}

#[test]
fn resume_offer() {
    let mut s = at_backups();
    s.step = Step::Detect;
    let row = backups()[0].clone();
    let mut sess = session_with(
        &[
            SessionStep::Preflight,
            SessionStep::StopServices,
            SessionStep::RollbackPackage,
            SessionStep::SafetySnapshot,
            SessionStep::Drop,
        ],
        SessionStep::Restore,
    );
    sess.snapshots.insert(DB.into(), SNAP.into());
    let point = sess
        .resume_point(Some(&identity(&row)), Some(&"16.10.3-ee".parse().unwrap()))
        .unwrap();
    update(
        &mut s,
        Event::Engine(Msg::SessionFound(Box::new(ResumeOffer {
            session: sess,
            decision: Ok(point),
        }))),
    );
    check("resume_offer", s);
}

#[test]
fn help_and_drill_banner_and_log() {
    let mut s = at_backups();
    s.banner = Some("DRILL: sandbox at /tmp/rewind-drill, nothing on this host is touched".into());
    update(&mut s, ch('l'));
    update(&mut s, ch('?'));
    check("help_drill_log", s);
}

#[test]
fn no_color_draws_no_colour() {
    let s = at_confirm();
    assert!(!s.color);
    let mut t = Terminal::new(TestBackend::new(80, 24)).unwrap();
    t.draw(|f| view(&s, f)).unwrap();
    let buf = t.backend().buffer();
    for cell in buf.content() {
        assert_eq!(cell.fg, ratatui::style::Color::Reset, "{cell:?}");
        assert_eq!(cell.bg, ratatui::style::Color::Reset, "{cell:?}");
    }
}

/// Detect and SelectBackup drawn from a real sandbox: an Omnibus-like host tree, a real
/// cluster and a GitLab-format backup made by the fixture builder (temp paths filtered).
#[test]
fn sandbox_detect_and_backups() {
    use rewind_engine::pg::cluster::TempCluster;
    use rewind_engine::root::HostRoot;
    use rewind_engine::sandbox::{self, backup, data::DataSpec, host, PgTarget};

    let cluster = TempCluster::start().expect("cluster");
    let target = sandbox::create_gitlab_database(&cluster, DB).expect("db");
    let mut client = target.connect().expect("connect");
    sandbox::populate(&mut client, &DataSpec::default()).expect("populate");
    let tree = tempfile::tempdir().expect("tree");
    let main = cluster.conn_spec(DB);
    let layout = host::build_host(&host::HostSpec::new(tree.path(), main.clone())).expect("host");
    let spec = backup::BackupSpec::new(&layout.backup_dir, PgTarget::new(cluster.bin_dir(), main))
        .with_components(layout.components.clone());
    backup::build_backup(&spec).expect("backup");

    let root = HostRoot::new(tree.path());
    let inst = super::exec::detect_with(&super::exec::ExecOptions {
        root: root.clone(),
        backup_dir: None,
        database_url: None,
        in_place: false,
        db_admin: None,
    })
    .expect("detect");
    let rows = super::catalogue::list(&root.join(&inst.backup_path), inst.version.as_ref())
        .expect("backups");
    assert_eq!(rows.len(), 1);
    let mut s = State::new(
        root,
        Some("DRILL: sandbox, nothing on this host is touched".into()),
    );
    s.color = false;
    super::update::start(&mut s);
    update(&mut s, Event::Engine(Msg::Detected(Ok(Box::new(inst)))));
    // The sandbox's journal, read as the executor reads it: no swap was interrupted.
    let swaps = super::exec::interrupted_swaps(&s.host().expect("host"));
    assert_eq!(swaps, Ok(Vec::new()));
    update(&mut s, Event::Engine(Msg::InterruptedSwaps(swaps)));
    update(&mut s, Event::Engine(Msg::Backups(Ok(rows))));
    let base = tree.path().display().to_string();
    let filters = [
        (regex_escape(&base), "[ROOT]".to_string()),
        (
            r"/tmp/rewind-pg-[A-Za-z0-9]+".to_string(),
            "[PGDIR]".to_string(),
        ),
        // The same directory cut from the left on a narrow screen (`…ind-pg-XXXXXX`).
        (
            r"…[a-z-]*pg-[A-Za-z0-9]{6}".to_string(),
            "…[PGDIR]".to_string(),
        ),
        (
            r"port=\d+|:\d{4,5}\b|\.s\.PGSQL\.\d+".to_string(),
            "[PORT]".to_string(),
        ),
        (r"\d+\.\d (KiB|MiB)".to_string(), "[SIZE]".to_string()),
    ];
    let filters: Vec<(&str, &str)> = filters
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    insta::with_settings!({ filters => filters }, {
        insta::assert_snapshot!("sandbox_detect_80x24", render(&s, 80, 24));
        insta::assert_snapshot!("sandbox_detect_120x34", render(&s, 120, 34));
        update(&mut s, key(KeyCode::Enter));
        insta::assert_snapshot!("sandbox_backups_80x24", render(&s, 80, 24));
        insta::assert_snapshot!("sandbox_backups_120x34", render(&s, 120, 34));
    });
    drop(cluster);
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if "\\.+*?()|[]{}^$".contains(c) {
                vec!['\\', c]
            } else {
                vec![c]
            }
        })
        .collect()
}

fn fact(label: &'static str, text: &str, tone: Tone) -> Fact {
    Fact {
        label,
        text: text.into(),
        tone,
    }
}

#[test]
fn confirm_drop_second_database() {
    let mut s = at_confirm();
    let mut ci = inventory();
    ci.database = "gitlabhq_production_ci".into();
    update(
        &mut s,
        Event::Engine(Msg::Inventory(Ok(vec![inventory(), ci]))),
    );
    typed(&mut s, DB);
    update(&mut s, key(KeyCode::Enter));
    typed(&mut s, "gitlabhq_production_ci");
    check("confirm_drop_second_database", s);
}

#[test]
fn repair_pick_log() {
    let mut s = at_backups();
    s.step = Step::Detect;
    update(&mut s, ch('m'));
    update(
        &mut s,
        Event::Engine(Msg::MigrateLogs {
            logs: vec![
                "/var/log/gitlab/gitlab-rails/gitlab-rails-db-migrate-2026-11-25-10-00-00.log"
                    .into(),
            ],
            migrate_cmd: vec!["/opt/gitlab/bin/gitlab-rake".into(), "db:migrate".into()],
        }),
    );
    update(&mut s, key(KeyCode::Tab));
    check("repair_pick_log", s);
}

#[test]
fn repair_already_marked() {
    let mut s = at_backups();
    s.step = Step::Detect;
    update(&mut s, ch('m'));
    typed(
        &mut s,
        "/var/log/gitlab/gitlab-rails/gitlab-rails-db-migrate-2026-11-25.log",
    );
    update(&mut s, key(KeyCode::Enter));
    update(
        &mut s,
        Event::Engine(Msg::RepairAssessed(Ok(vec![RepairItem {
            version: "20151103134857".into(),
            name: "CreateLfsObjects".into(),
            error: "PG::DuplicateTable: ERROR: relation \"lfs_objects\" already exists".into(),
            verdict: "version 20151103134857 is already in schema_migrations".into(),
            markable: false,
            already_marked: true,
            sql: String::new(),
            facts: vec![
                fact("migration", "20151103134857 CreateLfsObjects", Tone::Strong),
                fact(
                    "marked",
                    "yes: the version is already in schema_migrations",
                    Tone::Warn,
                ),
                fact("verdict", "do not mark", Tone::Bad),
            ],
            gitlab_command: "gitlab-rake gitlab:db:mark_migration_complete[20151103134857]".into(),
        }]))),
    );
    check("repair_already_marked", s);
}

#[test]
fn resume_discard_asks() {
    let mut s = at_backups();
    s.step = Step::Detect;
    let sess = session_with(&[SessionStep::Preflight], SessionStep::Drop);
    update(
        &mut s,
        Event::Engine(Msg::SessionFound(Box::new(ResumeOffer {
            session: sess,
            decision: Err(vec!["the backup file changed".into()]),
        }))),
    );
    update(&mut s, ch('n'));
    check("resume_discard_asks", s);
}

#[test]
fn quit_lists_every_change() {
    let mut s = at_confirm();
    update(&mut s, ctrl('c'));
    check("quit_lists_every_change", s);
}

#[test]
fn step_overview() {
    let mut s = mid_restore();
    update(&mut s, key(KeyCode::F(2)));
    check("step_overview", s);
}

fn identity(row: &crate::tui::state::BackupRow) -> BackupIdentity {
    BackupIdentity {
        path: row.path.clone(),
        size: row.size,
        mtime: row.mtime,
    }
}

/// A saved session of the newest backup with `done` finished and `running` begun, at a
/// fixed time.
fn session_with(done: &[SessionStep], running: SessionStep) -> Session {
    let row = backups()[0].clone();
    let mut sess = Session::new(
        identity(&row),
        row.version.clone(),
        Some("16.10.3-ee".parse().unwrap()),
        Some(DB.into()),
    );
    for st in done {
        sess.finish(*st, "ok");
    }
    sess.begin(running);
    sess.started = STARTED.into();
    for d in &mut sess.done {
        d.at = STARTED.into();
    }
    sess
}

/// The repositories page of the drop confirmation, after the database name.
#[test]
fn confirm_repositories() {
    let mut s = at_confirm_with_repositories();
    for c in "gitlabhq_production".chars() {
        update(&mut s, ch(c));
    }
    update(&mut s, key(KeyCode::Enter));
    assert!(s.on_repo_page());
    check("confirm_repositories", s);
}

/// The repositories page when the pushed ones could not be listed, bundling turned off.
#[test]
fn confirm_repositories_not_listed() {
    let mut s = at_confirm();
    let mut plan = repo_plan();
    plan.pushed = Err("connecting to gitlabhq_production: connection refused".into());
    update(&mut s, Event::Engine(Msg::Repositories(Ok(Some(plan)))));
    for c in "gitlabhq_production".chars() {
        update(&mut s, ch(c));
    }
    update(&mut s, key(KeyCode::Enter));
    update(&mut s, ch('b'));
    check("confirm_repositories_not_listed", s);
}

/// At the configuration step with the nearest archive compared.
fn at_config_diffed() -> State {
    let mut s = mid_restore();
    update(
        &mut s,
        Event::Engine(Msg::RestoreDone(Ok(RestoreSummary {
            text: "1412 objects, 1873220 rows in 1:42".into(),
            verify: Vec::new(),
            rows: 0,
            tables: 0,
            kept: Vec::new(),
        }))),
    );
    update(&mut s, key(KeyCode::Enter));
    update(
        &mut s,
        Event::Engine(Msg::Verified(Ok(vec![VerifyLine {
            ok: true,
            text: "row counts".into(),
        }]))),
    );
    update(&mut s, key(KeyCode::Enter));
    update(
        &mut s,
        Event::Engine(Msg::ConfigListed(Ok(config_archives()))),
    );
    update(
        &mut s,
        Event::Engine(Msg::ConfigDiffed {
            name: config_archives()[1].name.clone(),
            result: Ok(Box::new(config_diff())),
        }),
    );
    assert_eq!(s.step, Step::RestoreConfig);
    s
}

#[test]
fn config_compared() {
    check("config_compared", at_config_diffed());
}

#[test]
fn config_confirm_modal() {
    let mut s = at_config_diffed();
    update(&mut s, ch('y'));
    check("config_confirm_modal", s);
}

#[test]
fn config_restored() {
    let mut s = at_config_diffed();
    update(&mut s, ch('y'));
    update(&mut s, ch('y'));
    update(
        &mut s,
        Event::Engine(Msg::ConfigRestored(Ok(
            "/etc/gitlab/gitlab-secrets.json restored (previous: /etc/gitlab/gitlab-secrets.json.rewind-20261125T101502Z); /etc/gitlab/gitlab.rb restored (previous: /etc/gitlab/gitlab.rb.rewind-20261125T101502Z)".into(),
        ))),
    );
    check("config_restored", s);
}

/// No archive on the host.
#[test]
fn config_none() {
    let mut s = at_config_diffed();
    s.config = Default::default();
    update(&mut s, Event::Engine(Msg::ConfigListed(Ok(Vec::new()))));
    check("config_none", s);
}

/// At the checks screen, planned.
fn at_checks() -> State {
    let mut s = at_config_diffed();
    update(&mut s, ch('s'));
    s.start.status = super::state::ActionStatus::Succeeded;
    s.start.result = Some("GitLab reconfigured and started".into());
    update(&mut s, key(KeyCode::Enter));
    update(&mut s, Event::Engine(Msg::PostPlanned(Ok(post_rows()))));
    assert_eq!(s.step, Step::PostChecks);
    s
}

#[test]
fn checks_planned() {
    check("checks_planned", at_checks());
}

/// gitlab:check running, its output streaming, after the readiness wait.
#[test]
fn checks_running() {
    let mut s = at_checks();
    update(&mut s, key(KeyCode::Enter));
    update(
        &mut s,
        Event::Engine(Msg::PostStarted {
            step: "post.readiness".into(),
        }),
    );
    for l in [
        "waiting for GitLab: http://localhost/-/readiness on /var/opt/gitlab/gitlab-workhorse/sockets/socket: HTTP 502 GitLab is not responding",
        "http://localhost/-/readiness on /var/opt/gitlab/gitlab-workhorse/sockets/socket: HTTP 200 {\"status\":\"ok\"}",
    ] {
        update(&mut s, Event::Engine(Msg::Progress(rewind_engine::progress::Event::Output { line: l.into() })));
    }
    update(
        &mut s,
        Event::Engine(Msg::PostDone {
            step: "post.readiness".into(),
            result: Ok("GitLab answers ready after 14 s (http://localhost/-/readiness on /var/opt/gitlab/gitlab-workhorse/sockets/socket)".into()),
            doctor: None,
        }),
    );
    update(
        &mut s,
        Event::Engine(Msg::PostStarted {
            step: "post.check".into(),
        }),
    );
    for l in [
        "Checking GitLab subtasks ...",
        "",
        "Checking GitLab Shell ...",
        "GitLab Shell: ... GitLab Shell version >= 14.34.0 ? ... OK (14.34.0)",
        "Running /opt/gitlab/embedded/service/gitlab-shell/bin/gitlab-shell-check",
        "Internal API available: OK",
        "Redis available via internal API: OK",
        "gitlab-shell self-check successful",
        "Checking GitLab Shell ... Finished",
        "",
        "Checking Gitaly ...",
        "Gitaly: ... default ... OK",
        "Checking Gitaly ... Finished",
        "",
        "Checking Sidekiq ...",
        "Sidekiq: ... Running? ... yes",
        "Number of Sidekiq processes (cluster/worker) ... 1/1",
    ] {
        update(
            &mut s,
            Event::Engine(Msg::Progress(rewind_engine::progress::Event::Output {
                line: l.into(),
            })),
        );
    }
    check("checks_running", s);
}

/// gitlab:doctor:secrets found rows it cannot decrypt: the table with GitLab's fixes.
#[test]
fn checks_doctor_failures() {
    let mut s = at_checks();
    update(&mut s, key(KeyCode::Enter));
    let text = "I, [2026-11-25T10:15:54.951815 #27148]  INFO -- : Checking encrypted values in the database
I, [2026-11-25T10:16:12.677708 #27148]  INFO -- : - ApplicationSetting failures: 0
I, [2026-11-25T10:16:12.823692 #27148]  INFO -- : - User failures: 0
I, [2026-11-25T10:16:14.938335 #27148]  INFO -- : - Ci::Variable failures: 4
I, [2026-11-25T10:16:14.938335 #27148]  INFO -- : - Group failures: 1
D, [2026-11-25T10:16:14.938335 #27148] DEBUG -- :   - Group[10]: runners_token
I, [2026-11-25T10:16:15.575678 #27148]  INFO -- : Total: 5 row(s) affected
I, [2026-11-25T10:16:15.575711 #27148]  INFO -- : Done!";
    for (step, ok) in [("post.readiness", true), ("post.check", true)] {
        update(
            &mut s,
            Event::Engine(Msg::PostStarted { step: step.into() }),
        );
        update(
            &mut s,
            Event::Engine(Msg::PostDone {
                step: step.into(),
                result: if ok {
                    Ok(if step == "post.readiness" {
                        "GitLab answers ready after 2 s".into()
                    } else {
                        "exit code 0".into()
                    })
                } else {
                    Err("exit code 1".into())
                },
                doctor: None,
            }),
        );
    }
    update(
        &mut s,
        Event::Engine(Msg::PostStarted {
            step: "post.doctor_secrets".into(),
        }),
    );
    for l in text.lines() {
        update(
            &mut s,
            Event::Engine(Msg::Progress(rewind_engine::progress::Event::Output {
                line: l.into(),
            })),
        );
    }
    let d = rewind_engine::recovery::postcheck::parse_doctor_secrets(text);
    update(
        &mut s,
        Event::Engine(Msg::PostDone {
            step: "post.doctor_secrets".into(),
            result: Err("5 row(s) cannot be decrypted with this host's gitlab-secrets.json".into()),
            doctor: Some(Box::new(d)),
        }),
    );
    update(&mut s, Event::Engine(Msg::PostFinished));
    check("checks_doctor_failures", s);
}

/// Done after the checks ran and gitlab:doctor:secrets reported rows, the configuration
/// skipped.
#[test]
fn done_after_checks() {
    let mut s = at_checks();
    update(&mut s, key(KeyCode::Enter));
    for (step, r) in [
        (
            "post.readiness",
            Ok("GitLab answers ready after 2 s".to_string()),
        ),
        ("post.check", Ok("exit code 0".to_string())),
        (
            "post.doctor_secrets",
            Err("5 row(s) cannot be decrypted".to_string()),
        ),
    ] {
        update(
            &mut s,
            Event::Engine(Msg::PostStarted { step: step.into() }),
        );
        update(
            &mut s,
            Event::Engine(Msg::PostDone {
                step: step.into(),
                result: r,
                doctor: None,
            }),
        );
    }
    update(&mut s, Event::Engine(Msg::PostFinished));
    update(&mut s, key(KeyCode::Enter));
    assert_eq!(s.step, Step::Done);
    s.installation = Loadable::Ready({
        let mut i = installation();
        i.version = Some("16.10.3-ee".parse().unwrap());
        i
    });
    check("done_after_checks", s);
}

/// The backup was made on CE, gitlab-ee is installed: the Roll back step asks first.
#[test]
fn rollback_edition_question() {
    let mut s = at_preflight(Status::Pass);
    update(&mut s, key(KeyCode::Enter));
    s.stop.status = super::state::ActionStatus::Succeeded;
    update(&mut s, key(KeyCode::Enter));
    update(
        &mut s,
        Event::Engine(Msg::EditionDiffers(crate::tui::state::EditionQuestion {
            installed_package: "gitlab-ee".into(),
            backup_package: "gitlab-ce".into(),
            backup_version: "16.10.3".into(),
        })),
    );
    check("rollback_edition_question", s);
}

fn salvaged() -> crate::tui::state::Salvaged {
    crate::tui::state::Salvaged {
        dir: std::path::PathBuf::from(
            "/var/opt/gitlab/backups/rewind/salvage-1713867342_2024_04_23_16.10.3-ee-20240425T091500Z",
        ),
        rows: 101,
        tables: 4,
        import_command: "rewind salvage --import /var/opt/gitlab/backups/rewind/salvage-1713867342_2024_04_23_16.10.3-ee-20240425T091500Z".into(),
    }
}

/// The drop screen after Ctrl-S: where the rows created since the backup were kept.
#[test]
fn confirm_drop_salvaged() {
    let mut s = at_confirm();
    update(&mut s, ctrl('s'));
    update(&mut s, Event::Engine(Msg::Salvaged(Ok(salvaged()))));
    typed(&mut s, "gitlabhq_prod");
    check("confirm_drop_salvaged", s);
}

/// Done, after a salvage: the import command is named.
#[test]
fn done_with_salvage() {
    let mut s = mid_restore();
    s.salvage = Loadable::Ready(salvaged());
    update(
        &mut s,
        Event::Engine(Msg::RestoreDone(Ok(RestoreSummary {
            text: "1412 objects, 1873220 rows in 1:42".into(),
            verify: Vec::new(),
            rows: 0,
            tables: 0,
            kept: Vec::new(),
        }))),
    );
    s.step = Step::Done;
    s.installation = Loadable::Ready({
        let mut i = installation();
        i.version = Some("16.10.3-ee".parse().unwrap());
        i
    });
    check("done_with_salvage", s);
}

// ---------------------------------------------------------------- Long content (issue #17)

/// An inventory of `n` tables with long names, the failed upgrade's `new` ones among them
/// (every seventh), in the engine's order (the new ones not first).
fn long_inventory(database: &str, n: usize) -> super::state::Inventory {
    use super::state::DropItem;
    let mut items = vec![DropItem {
        kind: "schema".into(),
        name: "public".into(),
        rows: None,
        bytes: None,
        leftover: false,
    }];
    for i in 0..n {
        items.push(DropItem {
            kind: if i % 9 == 4 {
                "materialized view".into()
            } else {
                "table".into()
            },
            name: format!(
                "public.ci_pipeline_schedule_variables_partitioned_by_project_and_created_at_{i:02}"
            ),
            rows: Some((i as i64 + 1) * 12_345),
            bytes: Some((i as u64 + 1) * 3_145_728),
            leftover: i % 7 == 6,
        });
    }
    items.push(DropItem {
        kind: "sequence".into(),
        name: "public.ci_pipeline_schedule_variables_id_seq".into(),
        rows: None,
        bytes: None,
        leftover: false,
    });
    super::state::Inventory {
        database: database.into(),
        items,
        since_backup: Some(loss_report().summary()),
        created_since: loss_report().created_total(),
    }
}

/// At the drop screen of a decomposed install (main and ci), 40 tables each.
fn at_long_drop() -> State {
    let mut s = at_confirm();
    update(
        &mut s,
        Event::Engine(Msg::Inventory(Ok(vec![
            long_inventory(DB, 40),
            long_inventory("gitlabhq_production_ci", 40),
        ]))),
    );
    s
}

#[test]
fn drop_forty_tables_two_databases() {
    let mut s = at_long_drop();
    // The new objects come first: the cursor on the last of them, then further down.
    for _ in 0..4 {
        update(&mut s, key(KeyCode::Down));
    }
    check("drop_forty_tables_main", s.clone());
    for _ in 0..30 {
        update(&mut s, key(KeyCode::Down));
    }
    check("drop_forty_tables_main_scrolled", s.clone());
    typed(&mut s, DB);
    update(&mut s, key(KeyCode::Enter));
    assert_eq!(s.confirm_index, 1);
    assert_eq!(s.drop_cursor, 0, "the ci list starts at its top");
    check("drop_forty_tables_ci", s);
}

#[test]
fn detail_view_of_the_drop_list() {
    let mut s = at_long_drop();
    s.size = (80, 24);
    for _ in 0..6 {
        update(&mut s, key(KeyCode::Down));
    }
    update(&mut s, key(KeyCode::F(3)));
    assert!(s.detail.is_some());
    insta::assert_snapshot!("detail_drop_list_80x24", render(&s, 80, 24));
    update(&mut s, key(KeyCode::End));
    insta::assert_snapshot!("detail_drop_list_end_80x24", render(&s, 80, 24));
    s.size = (120, 34);
    update(&mut s, key(KeyCode::Home));
    insta::assert_snapshot!("detail_drop_list_120x34", render(&s, 120, 34));
}

/// Roll back with a long package version, a long command and long output lines.
#[test]
fn rollback_long_package_version() {
    let mut s = at_preflight(Status::Pass);
    update(&mut s, key(KeyCode::Enter));
    s.stop.status = super::state::ActionStatus::Succeeded;
    update(&mut s, key(KeyCode::Enter));
    let version = "16.10.3-ee.0+focal.20261115T094612Z.7f3c2a1b9d8e4f60a1b2c3d4e5f60718";
    update(
        &mut s,
        Event::Engine(Msg::ActionPlanned {
            step: Step::RollbackPackage,
            result: Ok(ActionPlan {
                commands: vec![format!(
                    "apt-get install -y --allow-downgrades -o Dpkg::Options::=--force-confold gitlab-ee={version}"
                )],
                skip: None,
            }),
        }),
    );
    update(&mut s, key(KeyCode::Enter));
    update(&mut s, ch('y'));
    for line in [
        "Reading package lists...".to_string(),
        format!("Preparing to unpack .../gitlab-ee_{version}_amd64.deb ..."),
        format!("Unpacking gitlab-ee ({version}) over (16.11.1-ee.0+focal.20261120T101010Z.aaaaaaaaaaaaaaaa) ..."),
    ] {
        update(
            &mut s,
            Event::Engine(Msg::Progress(rewind_engine::progress::Event::Output { line })),
        );
    }
    check("rollback_long_package_version", s);
}

/// The restore at 42% of the index builds: the ETA is the indexes' and the constraints
/// are still to come; the rows are those of all tables.
#[test]
fn restore_indexes_with_long_names() {
    use rewind_engine::progress::Event as P;
    let mut s = mid_restore();
    let long = "public.ci_pipeline_schedule_variables_partitioned_by_project_and_created_at_39";
    let at = |s: &mut State, secs: u64, e: P| {
        update(s, Event::Tick(Duration::from_secs(secs)));
        update(s, Event::Engine(Msg::Progress(e)));
    };
    for i in 0..39u64 {
        at(
            &mut s,
            180,
            P::TableLoaded {
                table: format!("public.t{i}"),
                rows: 16_318,
            },
        );
    }
    at(
        &mut s,
        230,
        P::Log {
            level: rewind_engine::progress::Level::Warn,
            message: format!("{long}: 3 rows skipped: duplicate key value violates unique constraint \"index_ci_pipeline_schedule_variables_on_schedule_id_and_key\""),
        },
    );
    at(
        &mut s,
        240,
        P::PhaseFinished {
            phase: Phase::Data,
            ok: true,
        },
    );
    at(
        &mut s,
        240,
        P::PhaseStarted {
            phase: Phase::Indexes,
            total: Some(100),
        },
    );
    at(
        &mut s,
        282,
        P::Progress {
            phase: Phase::Indexes,
            done: 42,
            total: Some(100),
            current: Some(long.into()),
            rows: None,
        },
    );
    // Both connections of the post-data pool at work.
    at(
        &mut s,
        282,
        P::Worker {
            slot: 0,
            phase: Phase::Indexes,
            what: Some(format!("INDEX public.index_notes_on_note_trigram ({long})")),
        },
    );
    at(
        &mut s,
        282,
        P::Worker {
            slot: 1,
            phase: Phase::Indexes,
            what: Some("FK CONSTRAINT public.merge_requests fk_rails_a1b2c3d4e5".into()),
        },
    );
    assert_eq!(s.restore.tables_loaded, 40);
    check("restore_indexes_long_names", s);
}

/// The finished restore: the rows of all tables, as the restore counted them.
#[test]
fn restore_finished_totals() {
    let mut s = mid_restore();
    update(&mut s, Event::Tick(Duration::from_secs(400)));
    update(
        &mut s,
        Event::Engine(Msg::RestoreDone(Ok(RestoreSummary {
            text: "1 database(s), 669,701 rows in 40 tables, in 5:00".into(),
            verify: Vec::new(),
            rows: 669_701,
            tables: 40,
            kept: Vec::new(),
        }))),
    );
    s.step = Step::Restore;
    check("restore_finished_totals", s);
}

/// Backups with long paths and ids.
#[test]
fn select_backup_long_paths() {
    let mut s = at_backups();
    update(&mut s, key(KeyCode::Esc));
    let mut rows = backups();
    for r in &mut rows {
        r.path = format!(
            "/mnt/nfs/gitlab-backups/production/eu-west-1/omnibus/{}_gitlab_backup.tar",
            r.id
        )
        .into();
        r.details.push((
            "custom_hooks".into(),
            "/var/opt/gitlab/gitaly/custom_hooks/pre-receive.d/reject-large-files-and-secrets"
                .into(),
        ));
    }
    update(&mut s, Event::Engine(Msg::Backups(Ok(rows))));
    s.step = Step::SelectBackup;
    check("select_backup_long_paths", s);
}
