//! `rewind drill --auto`: the recovery performed without keys, the way a careful engineer
//! would, through the same engine calls as the wizard and the CLI. Every step is timed in
//! the report; refusals the scenario expects are checks, not failures.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use super::report::{DrillReport, StepReport};
use super::scenario::Scenario;
use super::setup::Sandbox;
use super::{DrillError, DrillOptions};
use crate::backup::catalogue::{self, BackupEntry};
use crate::detect::{self, DetectOptions, Installation};
use crate::exec::Runner;
use crate::journal::Journal;
use crate::migrate::{self, repair};
use crate::packages::rollback::{self, RollbackError, RollbackOptions, RollbackPlan};
use crate::packages::PackageError;
use crate::progress::{Sink, SinkExt};
use crate::restore::database as restore_db;
use crate::services::{self, GitlabCtl};

/// A step's result: its one-line detail, or why it failed.
type StepResult<T> = Result<(T, String), String>;

fn step<T>(
    report: &mut DrillReport,
    sink: &dyn Sink,
    opts: &DrillOptions,
    name: &str,
    f: impl FnOnce() -> StepResult<T>,
) -> Result<Option<T>, DrillError> {
    if opts.cancel.is_cancelled() {
        return Err(DrillError::Cancelled(name.to_string()));
    }
    sink.info(format!("==> {name}"));
    let start = Instant::now();
    let r = f();
    let (ok, detail, value) = match r {
        Ok((v, d)) => (true, d, Some(v)),
        Err(e) => (false, e, None),
    };
    if ok {
        sink.info(format!("    ok: {detail}"));
    } else {
        sink.warn(format!("    FAILED: {detail}"));
    }
    report.steps.push(StepReport {
        name: name.to_string(),
        duration: start.elapsed(),
        ok,
        detail,
    });
    Ok(value)
}

fn detect_host(sb: &Sandbox) -> Result<Installation, String> {
    detect::detect(&sb.root, &DetectOptions::default()).map_err(|e| e.to_string())
}

/// Run the recovery of the sandbox's scenario.
pub fn run(
    sb: &Sandbox,
    opts: &DrillOptions,
    sink: &dyn Sink,
    report: &mut DrillReport,
) -> Result<(), DrillError> {
    let journal = Journal::open_in(&Journal::dir_for(&sb.layout.backup_dir)).map_err(|e| {
        DrillError::Setup {
            step: "opening the journal".into(),
            detail: e.to_string(),
        }
    })?;
    let Some(inst) = step(report, sink, opts, "detect installation", || {
        let inst = detect_host(sb)?;
        let v = inst
            .version
            .as_ref()
            .map(|v| v.to_string())
            .unwrap_or_else(|| "unknown".into());
        let dbs: Vec<String> = inst
            .databases
            .iter()
            .map(|d| format!("{} ({})", d.name, d.spec.dbname))
            .collect();
        Ok((
            inst,
            format!("Omnibus GitLab {v}; databases {}", dbs.join(", ")),
        ))
    })?
    else {
        return Ok(());
    };
    if sb.scenario == Scenario::LeftoverTables {
        return repair_migrations(sb, opts, sink, report, &inst, &journal);
    }

    // Select: newest first; a backup that fails verification is refused before anything
    // changes, and the next one is tried.
    let Some(backups) = step(report, sink, opts, "list backups", || {
        let list = catalogue::list_backups(&sb.layout.backup_dir, inst.version.as_ref())
            .map_err(|e| e.to_string())?;
        let names: Vec<String> = list
            .iter()
            .map(|b| format!("{} ({})", b.id, b.version_text.as_deref().unwrap_or("?")))
            .collect();
        Ok((list, names.join(", ")))
    })?
    else {
        return Ok(());
    };
    let mut chosen: Option<BackupEntry> = None;
    for b in backups
        .iter()
        .filter(|b| b.error.is_none() || sb.scenario == Scenario::CorruptBackup)
    {
        let verified = step(
            report,
            sink,
            opts,
            &format!("preflight: verify {}", &b.id),
            || {
                crate::backup::verify::verify(&b.path, sink, Some(&opts.cancel))
                    .map(|_| ((), "every member decodes, checksums match".to_string()))
                    .map_err(|e| e.to_string())
            },
        );
        match verified {
            Ok(Some(())) => {
                chosen = Some(b.clone());
                break;
            }
            Ok(None) if sb.scenario == Scenario::CorruptBackup => {
                // Expected: the truncated newest backup is refused. Not a failed step.
                if let Some(last) = report.steps.last_mut() {
                    last.ok = true;
                    last.detail = format!("refused as expected: {}", last.detail);
                }
                let unchanged = crate::sandbox::compare::fingerprint(&sb.main)
                    .map(|fp| sb.before.diff(&fp).is_empty())
                    .unwrap_or(false);
                report.check(
                    "corrupt backup refused before anything changed",
                    unchanged,
                    format!("{} refused by preflight; database untouched", &b.id),
                );
            }
            Ok(None) => {}
            Err(e) => return Err(e),
        }
    }
    let Some(backup) = chosen else {
        return Ok(());
    };
    let target = match backup.version.clone() {
        Some(v) => v,
        None => {
            report.check("backup names its GitLab version", false, backup.id.clone());
            return Ok(());
        }
    };

    // The version check leads: a version the host cannot get is refused before any
    // service is touched (the wizard's preflight runs the same check).
    let version = step(
        report,
        sink,
        opts,
        &format!("preflight: GitLab version {target}"),
        || {
            let c = crate::preflight::check_target_version(&sb.root, &inst, Some(&target));
            let text = format!("{}: {}", c.status.as_str(), first_line(&c.reason));
            if c.status == crate::preflight::Status::Fail {
                let reason = c.reason.split_whitespace().collect::<Vec<_>>().join(" ");
                // The fix's first clause says why; the whole fix is on the wizard's screen.
                let why = c.fix.split("; ").next().unwrap_or_default();
                Err(format!("{reason} ({why})"))
            } else {
                Ok(((), text))
            }
        },
    )?;
    if sb.scenario == Scenario::VersionMismatch {
        let refused = version.is_none();
        let detail = report
            .steps
            .last()
            .map(|s| s.detail.clone())
            .unwrap_or_default();
        if let Some(last) = report.steps.last_mut() {
            last.ok = refused;
            last.detail = format!("refused as expected: {}", last.detail);
        }
        let calls = std::fs::read_to_string(
            sb.root
                .join(crate::packages::sandbox_repo::GITLAB_CTL_CALLS),
        )
        .unwrap_or_default();
        let untouched = !calls.lines().any(|l| l.starts_with("stop"));
        report.check(
            "preflight fails the version check before any service is touched",
            refused
                && untouched
                && detail.contains("GitLab version mismatch:")
                && detail.contains("version: 16.9.2-ee"),
            format!(
                "FAIL with GitLab's version-mismatch message{}; gitlab-ctl stop {}",
                if detail.contains("version: 16.9.2-ee") {
                    " (version: 16.9.2-ee)"
                } else {
                    ", without `version: 16.9.2-ee`!"
                },
                if untouched {
                    "never called"
                } else {
                    "was called!"
                }
            ),
        );
    } else if version.is_none() {
        return Ok(());
    }

    // Roll the package back (stops puma and sidekiq first, reconfigures after).
    let plan = step(
        report,
        sink,
        opts,
        &format!("plan rollback to {target}"),
        || {
            let ropts = RollbackOptions {
                backup_created: backup.created_at,
                ..Default::default()
            };
            let planned = match rollback::plan(&sb.root, &target, ropts) {
                // The question the wizard asks when the editions differ; the careful
                // engineer installs the backup's edition, the only one GitLab restores it
                // into.
                Err(RollbackError::Package(PackageError::EditionChange {
                    target_edition,
                    installed_package,
                    ..
                })) => {
                    sink.warn(format!(
                        "the editions differ: {installed_package} is installed, the backup was made on GitLab {}; installing {}, the backup's edition (GitLab restores a backup only into the edition that made it)",
                        target_edition.as_str().to_uppercase(),
                        target_edition.package()
                    ));
                    rollback::plan(
                        &sb.root,
                        &target,
                        RollbackOptions {
                            allow_edition_change: true,
                            ..ropts
                        },
                    )
                }
                other => other,
            };
            planned
                .map(|p| {
                    let d = match &p {
                        RollbackPlan::Package(pp) => pp
                            .steps
                            .iter()
                            .map(|s| s.cmd.display())
                            .collect::<Vec<_>>()
                            .join("; "),
                        RollbackPlan::AlreadyInstalled { version } => {
                            format!("{version} already installed")
                        }
                        other => format!("{other:?}"),
                    };
                    (p, d)
                })
                .map_err(|e| e.to_string())
        },
    )?;
    if sb.scenario == Scenario::VersionMismatch {
        refuse_mismatch(sb, report, plan.is_none(), &backup, &inst);
        return Ok(());
    }
    let Some(plan) = plan else { return Ok(()) };
    // The safety snapshots of the in-place strategy are taken before the package step and
    // reused by the restore.
    let mut snapshots: BTreeMap<String, PathBuf> = BTreeMap::new();
    // Beside-and-swap keeps the failed upgrade's database whole: no snapshot then.
    let beside = crate::recovery::databases_for(&sb.root, &inst, None)
        .map(|dbs| {
            crate::recovery::strategy(
                &sb.root,
                &inst,
                &dbs,
                opts.in_place,
                sb.db_admin().as_deref(),
                BTreeMap::new(),
            )
            .strategy
                == crate::restore::beside::Strategy::Beside
        })
        .unwrap_or(false);
    if let RollbackPlan::Package(pp) = &plan {
        let done = step(
            report,
            sink,
            opts,
            &format!(
                "roll back {} to {}",
                pp.target.edition_or_ce().package(),
                pp.install.version
            ),
            || {
                let databases = crate::recovery::databases_for(&sb.root, &inst, None)
                    .map_err(|e| e.to_string())?;
                crate::recovery::snapshot::roll_back(
                    &crate::recovery::snapshot::PackageStep {
                        root: &sb.root,
                        plan: pp,
                        databases: &databases,
                        backup_path: &sb.root.join(&inst.backup_path),
                        snapshot: !beside,
                        no_snapshot_because:
                            "not needed: the restore runs beside the live database and keeps it whole",
                        taken: &BTreeMap::new(),
                    },
                    &journal,
                    sink,
                    &opts.cancel,
                )
                .map(|(o, taken)| {
                    snapshots.extend(taken.into_iter().map(|s| (s.database, s.path)));
                    let hold = o
                        .hold
                        .as_ref()
                        .map(|h| format!("; package held (release: {})", h.release))
                        .unwrap_or_default();
                    (
                        (),
                        format!(
                            "GitLab {} installed{}{hold}",
                            o.detected,
                            if beside {
                                " (no snapshot: the restore goes beside the live database)"
                            } else {
                                " after the safety snapshot"
                            }
                        ),
                    )
                })
                .map_err(|e| e.to_string())
            },
        )?;
        if done.is_none() {
            return Ok(());
        }
    }
    let inst = detect_host(sb).map_err(|e| DrillError::Setup {
        step: "re-detect".into(),
        detail: e,
    })?;

    // Restore the databases and the file components through the recovery runner (its
    // checks first; snapshot, drop confirmed by each database's name, load, verify; then
    // the files, previous contents moved aside), as `rewind restore` does.
    let restored = step(report, sink, opts, "restore databases", || {
        let databases =
            crate::recovery::databases_for(&sb.root, &inst, None).map_err(|e| e.to_string())?;
        let req = crate::recovery::RestoreRequest {
            root: &sb.root,
            installation: &inst,
            backup: &backup,
            // The careful engineer reads the drop screen and types each database's name,
            // and confirms the file components.
            confirm_drop: databases.iter().map(|j| j.spec.dbname.clone()).collect(),
            confirm_files: true,
            databases,
            snapshot: true,
            reuse_snapshots: snapshots.clone(),
            verified: None,
            jobs: opts.jobs,
            skip: Vec::new(),
            continue_on_error: false,
            allow_version_mismatch: false,
            command: format!("rewind drill --auto --scenario {}", sb.scenario.name()),
            // The repositories are confirmed too, and what was pushed since the backup is
            // bundled aside first.
            repositories: crate::recovery::RepositoriesRequest {
                confirm: true,
                bundle_pushed: true,
                parallel: Some(2),
                parallel_storage: Some(1),
            },
            in_place: opts.in_place,
            db_admin: sb.db_admin(),
            expect_strategy: None,
        };
        let out = crate::recovery::restore(&req, &journal, sink, &opts.cancel)
            .map_err(|e| e.to_string())?;
        let d: Vec<String> = out
            .databases
            .iter()
            .map(|o| {
                let rows: u64 = o
                    .load
                    .as_ref()
                    .map(|l| l.tables.iter().map(|t| t.rows).sum())
                    .unwrap_or(0);
                // The status of a beside restore already names the kept database.
                let snap = match &o.snapshot {
                    Some(_) => " after a safety snapshot",
                    None => "",
                };
                format!("{}: {} ({rows} rows){snap}", o.database, o.status)
            })
            .collect();
        Ok((out, d.join("; ")))
    })?;
    let Some(restored) = restored else {
        return Ok(());
    };
    let failed: Vec<String> = restored
        .databases
        .iter()
        .flat_map(|o| o.verify.iter().flat_map(|v| v.lines.iter()))
        .filter(|l| l.status == crate::restore::verify::Status::Fail)
        .map(|l| format!("{}: {}", l.check, l.detail))
        .collect();
    report.check(
        "restore's own verification passed",
        failed.is_empty(),
        if failed.is_empty() {
            "every verify line passed".into()
        } else {
            failed.join("; ")
        },
    );
    // The same run restored the file components after the databases.
    step(report, sink, opts, "restore file components", || {
        let d: Vec<String> = restored.files.iter().map(|r| r.verify_line()).collect();
        Ok(((), d.join("; ")))
    })?;

    // gitlab-secrets.json and gitlab.rb from the configuration archive of the backup,
    // before reconfigure.
    step(
        report,
        sink,
        opts,
        "restore gitlab-secrets.json and gitlab.rb",
        || {
            let c = crate::recovery::config::choose(&sb.root, None, backup.backup_created_at())
                .map_err(|e| e.to_string())?;
            let contents =
                crate::recovery::config::read_archive(&sb.root, &c).map_err(|e| e.to_string())?;
            let d = crate::recovery::config::diff(&sb.root, &contents);
            if d.would_restore.is_empty() {
                return Ok(((), format!("{}: both match the live files", c.name)));
            }
            let r = crate::recovery::config::restore(
                &sb.root,
                &contents,
                &d.would_restore,
                &journal,
                sink,
            )
            .map_err(|e| e.to_string())?;
            Ok((
                (),
                format!(
                    "{}: restored {}",
                    c.name,
                    r.iter()
                        .map(|x| x.path.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ))
        },
    )?;

    // Start GitLab again.
    step(report, sink, opts, "reconfigure and start services", || {
        let runner = Runner::new(sink, Some(&journal));
        for s in services::post_restore_steps(&sb.root)
            .into_iter()
            .filter(|s| s.changes_host)
        {
            runner.run(&s.step, &s.cmd).map_err(|e| e.to_string())?;
        }
        let st = GitlabCtl::new(&sb.root)
            .status()
            .map_err(|e| e.to_string())?;
        let down: Vec<&str> = st
            .iter()
            .filter(|s| !s.is_running())
            .map(|s| s.service.as_str())
            .collect();
        if down.is_empty() {
            Ok(((), format!("{} services running", st.len())))
        } else {
            Err(format!("still down: {}", down.join(", ")))
        }
    })?;
    // GitLab's checks, through the sandbox's gitlab-rake (the outcome checks read
    // gitlab:doctor:secrets again, for every front end).
    step(report, sink, opts, "post-restore checks", || {
        let runner = Runner::new(sink, Some(&journal));
        let mut d = Vec::new();
        for c in crate::recovery::postcheck::checks(&sb.root)
            .into_iter()
            .filter(|c| !c.changes_host)
        {
            let f = runner
                .run_unchecked(c.step, &c.cmd)
                .map_err(|e| e.to_string())?;
            d.push(format!(
                "{}: {}",
                c.cmd.argv().get(1).cloned().unwrap_or_default(),
                if f.success() {
                    "ok".to_string()
                } else {
                    format!("exit {:?}", f.code)
                }
            ));
        }
        Ok(((), d.join("; ")))
    })?;
    Ok(())
}

fn refuse_mismatch(
    sb: &Sandbox,
    report: &mut DrillReport,
    rollback_refused: bool,
    backup: &BackupEntry,
    inst: &Installation,
) {
    let detail = report
        .steps
        .last()
        .map(|s| s.detail.clone())
        .unwrap_or_default();
    if let Some(last) = report.steps.last_mut() {
        last.ok = true;
        last.detail = format!("refused as expected: {}", last.detail);
    }
    report.check(
        "rollback to a version the repository lacks is refused",
        rollback_refused && detail.contains("16.10.3"),
        format!(
            "the refusal lists what is available: {}",
            first_line(&detail)
        ),
    );
    // The restore itself must refuse too, before anything changes: the runner's version
    // gate, with every confirmation given.
    let refused = crate::recovery::databases_for(&sb.root, inst, None).and_then(|databases| {
        let journal = Journal::open_in(&Journal::dir_for(&sb.layout.backup_dir))?;
        let req = crate::recovery::RestoreRequest {
            root: &sb.root,
            installation: inst,
            backup,
            confirm_drop: databases.iter().map(|j| j.spec.dbname.clone()).collect(),
            confirm_files: true,
            databases,
            snapshot: true,
            reuse_snapshots: Default::default(),
            verified: None,
            jobs: 1,
            skip: Vec::new(),
            continue_on_error: false,
            allow_version_mismatch: false,
            command: "rewind drill --auto --scenario version-mismatch".into(),
            repositories: crate::recovery::RepositoriesRequest {
                confirm: true,
                ..Default::default()
            },
            in_place: false,
            db_admin: sb.db_admin(),
            expect_strategy: None,
        };
        crate::recovery::restore(
            &req,
            &journal,
            &crate::progress::NullSink,
            &crate::progress::Cancel::new(),
        )
    });
    report.check(
        "restore of a mismatched backup is refused",
        matches!(
            refused,
            Err(crate::recovery::RecoveryError::Restore(
                restore_db::RestoreError::VersionMismatch(_)
            ))
        ),
        match &refused {
            Err(e) => first_line(&e.to_string()),
            Ok(_) => "accepted!".into(),
        },
    );
}

fn repair_migrations(
    sb: &Sandbox,
    opts: &DrillOptions,
    sink: &dyn Sink,
    report: &mut DrillReport,
    inst: &Installation,
    journal: &Journal,
) -> Result<(), DrillError> {
    let Some(log) = step(report, sink, opts, "read the failed migrate log", || {
        let path = migrate::log::latest_omnibus_log(&sb.root, None).map_err(|e| e.to_string())?;
        let parsed = migrate::log::parse_file(&path).map_err(|e| e.to_string())?;
        let d = match parsed.first_failure() {
            Some(f) => format!(
                "migration {} failed: {}",
                f.version().unwrap_or("?"),
                first_line(f.error_text.as_deref().unwrap_or("no error text"))
            ),
            None => "no failure found".into(),
        };
        Ok((parsed, d))
    })?
    else {
        return Ok(());
    };
    step(report, sink, opts, "repair migration state", || {
        // The default command, as the wizard runs it: the sandbox's gitlab-rake stand-in.
        let ropts = repair::RepairOptions {
            migrate_cmd: repair::default_migrate_cmd(&sb.root),
            max_rounds: 10,
            host: None,
        };
        let command = ropts
            .migrate_cmd
            .iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ");
        let mut dbs = repair::Databases::new(inst.databases.clone());
        let rep = repair::repair(
            log,
            &mut dbs,
            &ropts,
            &mut repair::AssumeYes,
            Some(journal),
            sink,
        )
        .map_err(|e| e.to_string())?;
        let marked: Vec<String> = rep.marked.iter().map(|m| m.version.clone()).collect();
        if rep.succeeded() {
            Ok((
                (),
                format!(
                    "{} rounds; marked {}; `{}` succeeded",
                    rep.rounds.len(),
                    marked.join(", "),
                    command
                ),
            ))
        } else {
            Err(rep.message)
        }
    })?;
    Ok(())
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").to_string()
}
