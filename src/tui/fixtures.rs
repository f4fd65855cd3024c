//! Realistic wizard states for the unit and snapshot tests: an Omnibus 16.11.1-ee host that
//! failed its upgrade, with backups made on 16.10.3-ee.

use std::path::PathBuf;
use std::time::Duration;

use rewind_engine::detect::{DatabaseConn, Finding, InstallKind, Installation};
use rewind_engine::pg::conn::{ConnSpec, Secret};
use rewind_engine::preflight::{Check, CheckKind, Status};
use rewind_engine::root::HostRoot;
use rewind_engine::version::Edition;

use super::event::{Event, Msg};
use rewind_engine::restore::beside::Strategy;

use super::state::{BackupRow, DropItem, Inventory, State, StrategyView};
use super::update::{start, update};

pub const DB: &str = "gitlabhq_production";

pub fn installation() -> Installation {
    Installation {
        kind: Some(InstallKind::Omnibus),
        version: Some("16.11.1-ee".parse().expect("version")),
        edition: Some(Edition::Ee),
        package: Some("gitlab-ee".into()),
        rails_root: Some("/opt/gitlab/embedded/service/gitlab-rails".into()),
        backup_path: "/var/opt/gitlab/backups".into(),
        databases: vec![DatabaseConn {
            name: "main".into(),
            spec: ConnSpec {
                host: "/var/opt/gitlab/postgresql".into(),
                port: 5432,
                user: "gitlab".into(),
                password: Secret::new(None),
                dbname: DB.into(),
                ..ConnSpec::omnibus_default()
            },
            database_tasks: true,
        }],
        log_dir: Some("/var/log/gitlab/gitlab-rails".into()),
        findings: vec![
            finding(
                "installed version",
                "/opt/gitlab/embedded/service/gitlab-rails/VERSION",
                true,
                "16.11.1-ee",
            ),
            finding(
                "package",
                "/opt/gitlab/version-manifest.txt",
                true,
                "gitlab-ee 16.11.1",
            ),
            finding(
                "gitlab.rb",
                "/etc/gitlab/gitlab.rb",
                true,
                "backup_path not set: default",
            ),
            finding(
                "database.yml",
                "/var/opt/gitlab/gitlab-rails/etc/database.yml",
                true,
                "main",
            ),
            finding(
                "backup directory",
                "/var/opt/gitlab/backups",
                true,
                "2 archives",
            ),
        ],
    }
}

fn finding(what: &str, path: &str, found: bool, note: &str) -> Finding {
    Finding {
        what: what.into(),
        path: path.into(),
        found,
        note: note.into(),
    }
}

pub fn backups() -> Vec<BackupRow> {
    vec![
        BackupRow {
            id: "1763200000_2026_11_15_16.10.3-ee".into(),
            path: "/var/opt/gitlab/backups/1763200000_2026_11_15_16.10.3-ee_gitlab_backup.tar"
                .into(),
            created: "2026-11-15 09:46".into(),
            backup_created_at: chrono::DateTime::from_timestamp(1794735972, 0),
            version: Some("16.10.3-ee".parse().expect("version")),
            size: 734_003_200,
            mtime: 1_763_200_000,
            components: vec![
                "db".into(),
                "uploads".into(),
                "builds".into(),
                "artifacts".into(),
                "lfs".into(),
                "repositories".into(),
            ],
            skipped: vec!["registry".into()],
            matches_installed: false,
            details: vec![("compression".into(), "gzip".into())],
        },
        BackupRow {
            id: "1762600000_2026_11_08_16.10.2-ee".into(),
            path: "/var/opt/gitlab/backups/1762600000_2026_11_08_16.10.2-ee_gitlab_backup.tar"
                .into(),
            created: "2026-11-08 11:06".into(),
            backup_created_at: chrono::DateTime::from_timestamp(1794136000, 0),
            version: Some("16.10.2-ee".parse().expect("version")),
            size: 712_441_856,
            mtime: 1_762_600_000,
            components: vec!["db".into(), "uploads".into(), "repositories".into()],
            skipped: Vec::new(),
            matches_installed: false,
            details: Vec::new(),
        },
    ]
}

pub fn checks(archive: Status) -> Vec<Check> {
    let c = |kind, status, reason: &str, fix: &str| Check {
        kind,
        status,
        reason: reason.into(),
        fix: fix.into(),
        database: matches!(kind, CheckKind::Database | CheckKind::Writers).then(|| "main".into()),
    };
    vec![
        match archive {
            Status::Fail => c(CheckKind::Archive, Status::Fail, "member db/database.sql.gz: corrupt deflate stream", "the archive is damaged or incomplete; copy it again from where it is kept, or pick another backup"),
            _ => c(CheckKind::Archive, Status::Pass, "9 members read, 6 compressed members decoded", ""),
        },
        c(CheckKind::FreeDisk, Status::Pass, "41.2 GiB free in /var/opt/gitlab/backups, database 1.9 GiB", ""),
        c(CheckKind::Database, Status::Pass, "gitlabhq_production on /var/opt/gitlab/postgresql:5432 as gitlab (owner)", ""),
        c(CheckKind::TargetPackage, Status::Warn, "16.11.1-ee is installed, the backup needs 16.10.3-ee", "the rollback step installs it; GitLab refuses to restore a backup from another version"),
        c(CheckKind::Writers, Status::Warn, "other sessions connected: puma (4), sidekiq (2)", "the next step stops puma and sidekiq (gitlab-ctl stop puma; gitlab-ctl stop sidekiq)"),
    ]
}

pub fn inventory() -> Inventory {
    let item = |kind: &str, name: &str, rows, bytes, leftover| DropItem {
        kind: kind.into(),
        name: name.into(),
        rows,
        bytes,
        leftover,
    };
    Inventory {
        database: DB.into(),
        items: vec![
            item("schema", "public", None, None, false),
            item(
                "table",
                "public.projects",
                Some(18_402),
                Some(9_437_184),
                false,
            ),
            item("table", "public.users", Some(2_311), Some(1_572_864), false),
            item(
                "table",
                "public.ci_builds",
                Some(1_204_877),
                Some(812_646_400),
                false,
            ),
            item(
                "table",
                "public.merge_requests",
                Some(96_120),
                Some(48_234_496),
                false,
            ),
            item(
                "table",
                "public.ci_job_token_authorizations",
                Some(0),
                Some(16_384),
                true,
            ),
            item("table", "public.zoekt_tasks", Some(0), Some(8_192), true),
            item("view", "public.postgres_indexes", None, None, false),
            item("sequence", "public.projects_id_seq", None, None, false),
        ],
        since_backup: Some(loss_report().summary()),
        created_since: loss_report().created_total(),
    }
}

/// What was written since the first backup of [`backups`], as the engine reports it.
pub fn loss_report() -> rewind_engine::restore::loss::LossReport {
    use rewind_engine::restore::loss::{LossReport, NewTable, TableLoss};
    let t = |table: &str, created, updated, estimate| TableLoss {
        table: table.into(),
        created: Some(created),
        updated: Some(updated),
        estimate,
        notes: Vec::new(),
    };
    LossReport {
        backup_created_at: backups()[0].backup_created_at.expect("time"),
        tables: vec![
            t("users", 2, 40, false),
            t("projects", 1, 12, false),
            t("namespaces", 1, 3, false),
            t("issues", 14, 9, false),
            t("merge_requests", 6, 11, false),
            t("notes", 87, 4, false),
            t("ci_pipelines", 35, 35, false),
            t("events", 310, 0, false),
            t("ci_builds", 2480, 2512, true),
        ],
        tables_checked: 412,
        new_tables: vec![
            NewTable {
                table: "ci_job_token_authorizations".into(),
                rows: Some(0),
                estimate: false,
                notes: Vec::new(),
            },
            NewTable {
                table: "zoekt_tasks".into(),
                rows: Some(0),
                estimate: false,
                notes: Vec::new(),
            },
        ],
        pushed_projects: Some(9),
        pushed_project_paths: vec!["gitlab-org/gitlab".into()],
        notes: Vec::new(),
    }
}

pub fn key(c: crossterm::event::KeyCode) -> Event {
    Event::Key(crossterm::event::KeyEvent::from(c))
}

pub fn ch(c: char) -> Event {
    key(crossterm::event::KeyCode::Char(c))
}

pub fn ctrl(c: char) -> Event {
    Event::Key(crossterm::event::KeyEvent::new(
        crossterm::event::KeyCode::Char(c),
        crossterm::event::KeyModifiers::CONTROL,
    ))
}

pub fn typed(s: &mut State, text: &str) {
    for c in text.chars() {
        update(s, ch(c));
    }
}

/// The strategy decision where beside-and-swap cannot run (not enough free space).
pub fn in_place() -> StrategyView {
    StrategyView {
        strategy: Strategy::InPlace,
        reasons: vec![
            "not enough free space beside the live database: /var/opt/gitlab/postgresql/data has 1200 MiB free, the new database(s) need about 2010 MiB (+10 % and 64 MiB headroom)".into(),
        ],
    }
}

/// The strategy decision where beside-and-swap runs (Omnibus's gitlab-psql).
pub fn beside() -> StrategyView {
    StrategyView {
        strategy: Strategy::Beside,
        reasons: vec![
            "/var/opt/gitlab/postgresql/data has 41216 MiB free; the new database(s) need about 2010 MiB (+10 % and 64 MiB headroom)".into(),
            "databases are created and renamed by psql as OS user gitlab-psql (role gitlab-psql)".into(),
        ],
    }
}

/// Detected, the journal read (no interrupted swap), the strategy decided.
pub fn detected_with(strategy: StrategyView) -> State {
    let mut s = State::new(HostRoot::system(), None);
    s.color = false;
    start(&mut s);
    update(
        &mut s,
        Event::Engine(Msg::Detected(Ok(Box::new(installation())))),
    );
    update(&mut s, Event::Engine(Msg::InterruptedSwaps(Ok(Vec::new()))));
    update(&mut s, Event::Engine(Msg::StrategyDecided(Ok(strategy))));
    s
}

/// A detected state showing the backup list (the restore would run in place).
pub fn at_backups() -> State {
    at_backups_with(in_place())
}

/// A detected state showing the backup list, with this strategy.
pub fn at_backups_with(strategy: StrategyView) -> State {
    let mut s = detected_with(strategy);
    update(&mut s, Event::Engine(Msg::Backups(Ok(backups()))));
    update(&mut s, key(crossterm::event::KeyCode::Enter));
    s
}

/// Backup picked, checks done.
pub fn at_preflight(archive: Status) -> State {
    at_preflight_with(archive, in_place())
}

/// Backup picked, checks done, with this strategy.
pub fn at_preflight_with(archive: Status, strategy: StrategyView) -> State {
    let mut s = at_backups_with(strategy);
    update(&mut s, key(crossterm::event::KeyCode::Enter));
    for c in checks(archive) {
        update(&mut s, Event::Engine(Msg::PreflightCheck(c)));
    }
    update(&mut s, Event::Engine(Msg::PreflightDone));
    s
}

/// At ConfirmDrop with the inventory listed (services stopped, package rolled back); the
/// restore runs in place.
pub fn at_confirm() -> State {
    at_confirm_with(in_place())
}

/// At ConfirmDrop with the inventory listed, with this strategy (decided after detection
/// and again when the drop screen opened).
pub fn at_confirm_with(strategy: StrategyView) -> State {
    use super::event::ActionPlan;
    use super::state::Step;
    use crossterm::event::KeyCode;
    let mut s = at_preflight_with(Status::Pass, strategy.clone());
    update(&mut s, key(KeyCode::Enter));
    for step in [Step::StopServices, Step::RollbackPackage] {
        update(
            &mut s,
            Event::Engine(Msg::ActionPlanned {
                step,
                result: Ok(ActionPlan {
                    commands: plan_commands(step),
                    skip: None,
                }),
            }),
        );
        update(&mut s, key(KeyCode::Enter));
        update(&mut s, ch('y'));
        for l in output_lines(step) {
            update(
                &mut s,
                Event::Engine(Msg::Progress(rewind_engine::progress::Event::Output {
                    line: l.into(),
                })),
            );
        }
        let mut inst = installation();
        if step == Step::RollbackPackage {
            inst.version = Some("16.10.3-ee".parse().expect("version"));
        }
        update(
            &mut s,
            Event::Engine(Msg::ActionDone {
                step,
                result: Ok(done_text(step).into()),
                installation: Some(Box::new(inst)),
            }),
        );
        update(&mut s, key(KeyCode::Enter));
    }
    update(&mut s, Event::Engine(Msg::Inventory(Ok(vec![inventory()]))));
    // This backup has no repositories to restore.
    update(&mut s, Event::Engine(Msg::Repositories(Ok(None))));
    update(&mut s, Event::Engine(Msg::StrategyDecided(Ok(strategy))));
    s.journal_dir = Some(PathBuf::from("/var/opt/gitlab/backups/rewind"));
    s
}

/// What restoring the repositories replaces: one storage, two repositories pushed to since
/// the backup.
pub fn repo_plan() -> super::state::RepoPlan {
    super::state::RepoPlan {
        storages: vec!["default".into()],
        server_side: false,
        pushed: Ok(vec![
            super::state::PushedRow {
                project: "gitlab-org/gitlab-runner".into(),
                pushes: 3,
                last_push: "2026-11-25 08:41:07".into(),
            },
            super::state::PushedRow {
                project: "infra/terraform-modules".into(),
                pushes: 1,
                last_push: "2026-11-25 07:02:55".into(),
            },
        ]),
    }
}

/// At the drop confirmation of a backup with repositories.
pub fn at_confirm_with_repositories() -> State {
    let mut s = at_confirm();
    update(
        &mut s,
        Event::Engine(Msg::Repositories(Ok(Some(repo_plan())))),
    );
    s
}

pub fn plan_commands(step: super::state::Step) -> Vec<String> {
    use super::state::Step;
    match step {
        Step::StopServices => vec![
            "/opt/gitlab/bin/gitlab-ctl stop puma".into(),
            "/opt/gitlab/bin/gitlab-ctl stop sidekiq".into(),
        ],
        Step::RollbackPackage => {
            vec!["apt-get install -y --allow-downgrades gitlab-ee=16.10.3-ee.0".into()]
        }
        _ => vec!["/opt/gitlab/bin/gitlab-ctl start".into()],
    }
}

pub fn output_lines(step: super::state::Step) -> Vec<&'static str> {
    use super::state::Step;
    match step {
        Step::StopServices => vec![
            "ok: down: puma: 0s, normally up",
            "ok: down: sidekiq: 1s, normally up",
        ],
        Step::RollbackPackage => vec![
            "Reading package lists...",
            "The following packages will be DOWNGRADED:",
            "  gitlab-ee",
            "Unpacking gitlab-ee (16.10.3-ee.0) over (16.11.1-ee.0) ...",
            "Setting up gitlab-ee (16.10.3-ee.0) ...",
        ],
        _ => vec![
            "ok: run: puma: (pid 4242) 1s",
            "ok: run: sidekiq: (pid 4243) 1s",
        ],
    }
}

pub fn done_text(step: super::state::Step) -> &'static str {
    use super::state::Step;
    match step {
        Step::StopServices => "puma and sidekiq are down",
        Step::RollbackPackage => "installed version is now 16.10.3-ee",
        _ => "all services are up",
    }
}

/// A restore in the middle of the data phase.
pub fn mid_restore() -> State {
    use crossterm::event::KeyCode;
    use rewind_engine::progress::{Event as P, Phase};
    let mut s = at_confirm();
    typed(&mut s, DB);
    update(&mut s, key(KeyCode::Enter));
    update(&mut s, Event::Tick(Duration::from_secs(100)));
    update(&mut s, key(KeyCode::Enter));
    let mut t = 100;
    let mut at = |s: &mut State, secs: u64, e: P| {
        t += secs;
        update(s, Event::Tick(Duration::from_secs(t)));
        update(s, Event::Engine(Msg::Progress(e)));
    };
    at(
        &mut s,
        0,
        P::PhaseStarted {
            phase: Phase::Snapshot,
            total: Some(2_040_109_465),
        },
    );
    at(
        &mut s,
        41,
        P::PhaseFinished {
            phase: Phase::Snapshot,
            ok: true,
        },
    );
    update(
        &mut s,
        Event::Engine(Msg::SnapshotTaken {
            database: DB.into(),
            path:
                "/var/opt/gitlab/backups/rewind/snapshots/gitlabhq_production-20251116T134000Z.dump"
                    .into(),
        }),
    );
    at(
        &mut s,
        0,
        P::PhaseStarted {
            phase: Phase::Drop,
            total: Some(1412),
        },
    );
    at(
        &mut s,
        3,
        P::PhaseFinished {
            phase: Phase::Drop,
            ok: true,
        },
    );
    at(
        &mut s,
        0,
        P::Dropped {
            database: "gitlabhq_production".into(),
        },
    );
    at(
        &mut s,
        0,
        P::PhaseStarted {
            phase: Phase::Schema,
            total: Some(5120),
        },
    );
    at(
        &mut s,
        9,
        P::PhaseFinished {
            phase: Phase::Schema,
            ok: true,
        },
    );
    at(
        &mut s,
        0,
        P::PhaseStarted {
            phase: Phase::Data,
            total: Some(1_610_612_736),
        },
    );
    at(
        &mut s,
        4,
        P::TableLoaded {
            table: "public.projects".into(),
            rows: 18_402,
        },
    );
    at(
        &mut s,
        26,
        P::Progress {
            phase: Phase::Data,
            done: 671_088_640,
            total: Some(1_610_612_736),
            current: Some("public.ci_builds".into()),
            rows: Some(512_334),
        },
    );
    at(
        &mut s,
        0,
        P::Log {
            level: rewind_engine::progress::Level::Info,
            message: "COPY public.projects: 18402 rows".into(),
        },
    );
    at(
        &mut s,
        0,
        P::Log {
            level: rewind_engine::progress::Level::Warn,
            message: "public.zoekt_tasks is not in the backup: dropped, not restored".into(),
        },
    );
    s
}

/// The engine's triage of a failed upgrade to 16.11.1 whose output is `log` (a fixture of
/// `tests/fixtures/triage/`): installed 16.11.1-ee, backup 16.10.3-ee, five migrations
/// newer than the backup's db_version.
pub fn triage(log: &str) -> rewind_engine::migrate::triage::Triage {
    use rewind_engine::migrate::log::parse_str;
    use rewind_engine::migrate::triage::{classify, NewerMigrations, Triage, UpgradeSigns};
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/triage")
        .join(log);
    let text = std::fs::read_to_string(&path).expect("triage fixture");
    let name =
        "/var/log/gitlab/gitlab-rails/gitlab-rails-db-migrate-2024-04-25-09-00-00.log".to_string();
    let classification = classify(
        &text,
        &parse_str(&text),
        Some(rewind_engine::detect::InstallKind::Omnibus),
        &name,
    );
    Triage {
        upgrade: UpgradeSigns {
            installed_version: Some("16.11.1-ee".into()),
            backup_id: Some("1713607872_2024_04_20_16.10.3-ee".into()),
            backup_version: Some("16.10.3-ee".into()),
            backup_db_version: Some("20240415000000".into()),
            installed_newer: Some(true),
            newer_migrations: vec![NewerMigrations {
                database: "main".into(),
                count: 5,
                newest: Some("20240423064716".into()),
            }],
            log: Some(name),
            log_newer: Some(true),
            failed_upgrade: true,
            ..Default::default()
        },
        classification,
        assessment: None,
        hint: None,
    }
}

/// The checks screen's rows as the executor lists them on a host without authorized_keys:
/// the readiness wait and the two default checks ticked, the integrity checks offered.
pub fn post_rows() -> Vec<super::state::PostRow> {
    use super::state::{CheckState, PostRow};
    let row = |step: &str, what: &str, command: &str, selected: bool, changes_host: bool| PostRow {
        step: step.into(),
        what: what.into(),
        command: command.into(),
        selected,
        changes_host,
        state: CheckState::Pending,
        output: Vec::new(),
    };
    vec![
        row(
            "post.readiness",
            "GitLab answers its readiness endpoint (waits up to 300 s)",
            "GET http://localhost/-/readiness on /var/opt/gitlab/gitlab-workhorse/sockets/socket, or http://localhost:80/-/readiness",
            true,
            false,
        ),
        row(
            "post.check",
            "GitLab's self check",
            "/opt/gitlab/bin/gitlab-rake gitlab:check SANITIZE=true",
            true,
            false,
        ),
        row(
            "post.doctor_secrets",
            "encrypted columns decrypt with this host's gitlab-secrets.json",
            "/opt/gitlab/bin/gitlab-rake gitlab:doctor:secrets VERBOSE=1",
            true,
            false,
        ),
        row(
            "post.artifacts_check",
            "integrity of job artifacts (checksums of the restored files)",
            "/opt/gitlab/bin/gitlab-rake gitlab:artifacts:check",
            false,
            false,
        ),
        row(
            "post.lfs_check",
            "integrity of LFS objects",
            "/opt/gitlab/bin/gitlab-rake gitlab:lfs:check",
            false,
            false,
        ),
        row(
            "post.uploads_check",
            "integrity of uploads",
            "/opt/gitlab/bin/gitlab-rake gitlab:uploads:check",
            false,
            false,
        ),
        row(
            "post.shell_setup",
            "rebuild authorized_keys from the restored database's SSH keys",
            "/opt/gitlab/bin/gitlab-rake gitlab:shell:setup force=yes",
            false,
            true,
        ),
    ]
}

/// Configuration archives as `config::list` returns them, newest first: one made after
/// the backup (by the failed upgrade's package), the one nearest before it, an older one.
pub fn config_archives() -> Vec<rewind_engine::recovery::config::ConfigArchive> {
    use rewind_engine::recovery::config::ConfigArchive;
    let a = |epoch: i64, date: &str, created: &str, size: u64, nearest: bool| ConfigArchive {
        path: PathBuf::from(format!(
            "/etc/gitlab/config_backup/gitlab_config_{epoch}_{date}.tar"
        )),
        name: format!("gitlab_config_{epoch}_{date}.tar"),
        size,
        created: Some(created.into()),
        nearest,
    };
    vec![
        a(
            1764055200,
            "2026_11_25",
            "2026-11-25T07:20:00Z",
            40960,
            false,
        ),
        a(
            1763199999,
            "2026_11_15",
            "2026-11-15T09:46:39Z",
            30720,
            true,
        ),
        a(
            1762594000,
            "2026_11_08",
            "2026-11-08T09:26:40Z",
            30720,
            false,
        ),
    ]
}

/// The nearest archive compared with the live /etc/gitlab: the failed upgrade's
/// reconfigure rewrote a secret and added one; gitlab.rb was edited.
pub fn config_diff() -> rewind_engine::recovery::config::ConfigDiff {
    use rewind_engine::recovery::config::{ConfigDiff, FileDiff, FileState, SecretsDiff};
    ConfigDiff {
        archive: config_archives()[1].clone(),
        files: vec![
            FileDiff {
                name: "gitlab-secrets.json".into(),
                state: FileState::Differs,
            },
            FileDiff {
                name: "gitlab.rb".into(),
                state: FileState::Differs,
            },
        ],
        unchanged: 3,
        secrets: Some(SecretsDiff {
            live_readable: true,
            missing_live: Vec::new(),
            only_live: vec!["gitlab_rails.active_record_encryption_deterministic_key".into()],
            different: vec!["gitlab_rails.active_record_encryption_primary_key".into()],
            same: 11,
        }),
        would_restore: vec!["gitlab-secrets.json".into(), "gitlab.rb".into()],
    }
}
