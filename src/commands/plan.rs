//! `rewind plan [--backup ID]`: the whole recovery plan for this host, in order, with the
//! exact commands: stop services, roll back, snapshot and drop, restore (databases,
//! repositories, files), reconfigure, start, check. Prints only; changes nothing.

use std::path::Path;
use std::process::ExitCode;

use color_eyre::eyre::WrapErr;
use rewind_engine::backup::catalogue::{self, BackupEntry};
use rewind_engine::detect::{detect, DetectOptions, InstallKind};
use rewind_engine::files;
use rewind_engine::packages::rollback::{self, RollbackOptions, RollbackPlan};
use rewind_engine::recovery::{
    self,
    steps::{StepId, Undo},
};
use rewind_engine::repositories;
use rewind_engine::services::{self, GitlabCtl, RESTORE_STOPPED, SECRETS_WARNING};
use serde::Serialize;

use super::Ctx;
use crate::output::{human_bytes, print_json};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The backup to plan for (id or path); default: the newest readable one.
    #[arg(long, value_name = "ID")]
    pub backup: Option<String>,
    /// Components not to restore (comma-separated: uploads,builds,...).
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    pub skip: Vec<String>,
    /// gitaly-backup's -parallel, as `rewind restore --repositories-parallel`.
    #[arg(long, value_name = "N")]
    pub repositories_parallel: Option<u32>,
    /// gitaly-backup's -parallel-storage, as `rewind restore --repositories-parallel-storage`.
    #[arg(long, value_name = "N")]
    pub repositories_parallel_storage: Option<u32>,
}

/// One step of the plan.
#[derive(Debug, Serialize)]
pub struct Step {
    pub title: String,
    /// The step of the engine's recovery this stands for, with GitLab's step, what it
    /// changes and how it is undone ([`recovery::steps::STEPS`]).
    pub step: Option<&'static recovery::steps::Step>,
    /// Exact commands, in order.
    pub commands: Vec<String>,
    pub notes: Vec<String>,
}

/// The plan.
#[derive(Debug, Serialize)]
pub struct RecoveryPlan {
    pub installed: Option<String>,
    pub backup: Option<String>,
    pub backup_version: Option<String>,
    /// Which restore strategy will run, and why (`None`: no database connection).
    pub strategy: Option<rewind_engine::restore::beside::StrategyDecision>,
    pub steps: Vec<Step>,
    pub warnings: Vec<String>,
}

fn step(title: impl Into<String>, commands: Vec<String>, notes: Vec<String>) -> Step {
    Step {
        title: title.into(),
        step: None,
        commands,
        notes,
    }
}

/// A plan step that stands for a step of the engine's recovery.
fn recovery_step(
    id: StepId,
    title: impl Into<String>,
    commands: Vec<String>,
    notes: Vec<String>,
) -> Step {
    Step {
        step: Some(recovery::steps::step(id)),
        ..step(title, commands, notes)
    }
}

pub fn run(ctx: &Ctx, args: Args) -> color_eyre::Result<ExitCode> {
    let root = &ctx.root;
    let inst = detect(
        root,
        &DetectOptions {
            backup_dir: ctx.global.backup_dir.clone(),
            env: None,
        },
    )
    .wrap_err("detecting the GitLab installation")?;
    let backup: Option<BackupEntry> = match &args.backup {
        Some(id) => Some(
            catalogue::resolve(root, &inst.backup_path, id, inst.version.as_ref(), false)
                .wrap_err("finding the backup")?,
        ),
        None => catalogue::list_backups(&root.join(&inst.backup_path), inst.version.as_ref())
            .ok()
            .and_then(|l| l.into_iter().find(|b| b.error.is_none())),
    };
    let id = backup.as_ref().map(|b| b.id.clone());
    let restore_cmd = format!(
        "rewind restore --backup {} --confirm-drop {} --confirm-files",
        id.as_deref().unwrap_or("<ID>"),
        inst.databases
            .iter()
            .filter(|d| d.database_tasks)
            .map(|d| d.spec.dbname.as_str())
            .collect::<Vec<_>>()
            .join(" --confirm-drop ")
    );
    let ctl = GitlabCtl::new(root);
    let mut steps = Vec::new();
    let mut warnings = Vec::new();

    // 1-2. Services.
    let mut notes = Vec::new();
    match ctl.status() {
        Ok(list) => {
            let down: Vec<String> = list
                .iter()
                .filter(|s| !s.is_running())
                .map(|s| s.service.clone())
                .collect();
            notes.push(if down.is_empty() {
                "every service runs".to_string()
            } else {
                format!("not running now: {}", down.join(", "))
            });
        }
        Err(e) => notes.push(e.to_string()),
    }
    steps.push(step(
        "Check GitLab's services",
        vec![ctl.cmd(["status"]).display()],
        notes,
    ));
    let mut stop_notes = vec![
        "PostgreSQL, Redis and Gitaly keep running: the restore needs them".to_string(),
        format!(
            "before the drop Rewind lists any other client still connected to {} (pg_stat_activity)",
            inst.databases
                .iter()
                .map(|d| d.spec.dbname.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ];
    if inst.kind == Some(InstallKind::Source) {
        stop_notes.push("source install: stop Puma and Sidekiq with your init system (`sudo service gitlab stop`), then start Gitaly again".into());
    }
    steps.push(recovery_step(
        StepId::StopServices,
        "Stop Puma and Sidekiq",
        RESTORE_STOPPED
            .iter()
            .map(|s| ctl.cmd(["stop", s]).display())
            .collect(),
        stop_notes,
    ));

    // 3. Roll back.
    let backup_version = backup.as_ref().and_then(|b| b.version.clone());
    let rollback_needed = matches!((&backup_version, &inst.version), (Some(bv), Some(iv)) if !bv.same_release(iv))
        || (backup_version.is_some() && inst.version.is_none());
    if rollback_needed {
        steps.push(recovery_step(
            StepId::SafetySnapshot,
            format!(
                "Safety snapshot of {}, before the package step",
                inst.databases
                    .iter()
                    .filter(|d| d.database_tasks)
                    .map(|d| d.spec.dbname.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            vec![],
            vec![
                "taken by `rewind rollback` once Puma and Sidekiq are stopped (pg_dump -Fc, 0600): the database as the failed upgrade left it, before the older package's reconfigure runs; `--no-snapshot` skips it".into(),
                "`rewind restore --reuse-snapshot DB=PATH` (as `rewind rollback` prints) uses it instead of taking another".into(),
            ],
        ));
    }
    match (&backup_version, &inst.version) {
        (Some(bv), Some(iv)) if bv.same_release(iv) => steps.push(step(
            format!("Roll back GitLab: not needed, {iv} is installed"),
            vec![],
            vec![],
        )),
        (Some(bv), _) => {
            let mut commands = vec![format!("rewind rollback --to {bv}")];
            let mut notes = Vec::new();
            match rollback::plan(root, bv, RollbackOptions::default()) {
                Ok(RollbackPlan::Package(p)) => {
                    commands.extend(
                        p.steps
                            .iter()
                            .filter(|s| !s.step.starts_with("rollback.stop."))
                            .map(|s| s.cmd.display()),
                    );
                    notes.push(format!(
                        "{} {} → {} ({})",
                        p.installed.package, p.installed.version, p.install.version, p.manager
                    ));
                }
                Ok(RollbackPlan::AlreadyInstalled { version }) => {
                    notes.push(format!("{version} is already installed"))
                }
                Ok(RollbackPlan::Source {
                    checkout,
                    checklist,
                    ..
                }) => {
                    commands = vec![checkout.display()];
                    notes.extend(checklist.into_iter().map(|c| match c.command {
                        Some(cmd) => format!("[ ] {}: {cmd}", c.text),
                        None => format!("[ ] {}", c.text),
                    }));
                }
                Ok(RollbackPlan::Docker { note, .. }) => {
                    commands.clear();
                    notes.push(note);
                }
                Err(e) => notes.push(format!("cannot plan the rollback yet: {e}")),
            }
            steps.push(recovery_step(
                StepId::RollbackPackage,
                format!("Roll back GitLab to {bv}"),
                commands,
                notes,
            ));
        }
        (None, _) => steps.push(step(
            "Roll back GitLab to the backup's version",
            vec!["rewind rollback --to <backup version>".into()],
            vec!["no backup chosen: pass --backup ID".into()],
        )),
    }

    // 4-5. Databases.
    let db_notes: Vec<String> = match &backup {
        Some(b) if !b.databases.is_empty() => b
            .databases
            .iter()
            .map(|d| {
                let target = inst
                    .databases
                    .iter()
                    .find(|c| c.name == d.name.as_str())
                    .map(|c| c.spec.dbname.clone())
                    .unwrap_or_else(|| format!("the `{}` database", d.name));
                format!("{} ({}) → {target}", d.member, human_bytes(d.size))
            })
            .collect(),
        Some(_) => vec!["the backup holds no database dump (skipped at backup time)".into()],
        None => vec![],
    };
    if rollback_needed {
        steps.push(recovery_step(
            StepId::ConfirmDrop,
            "Drop GitLab's tables (schema_migrations emptied with TRUNCATE, not dropped, as GitLab does)",
            vec![restore_cmd.clone()],
            vec!["you type the database name to confirm the drop; the snapshot taken before the package step is the way back".into()],
        ));
    } else {
        steps.push(recovery_step(
            StepId::SafetySnapshot,
            "Safety snapshot, then drop GitLab's tables (schema_migrations emptied with TRUNCATE, not dropped, as GitLab does)",
            vec![restore_cmd.clone()],
            vec!["you type the database name to confirm the drop".into()],
        ));
    }
    steps.push(recovery_step(
        StepId::RestoreDatabases,
        "Restore the databases",
        vec![restore_cmd.clone()],
        db_notes,
    ));

    // 6. Repositories.
    if let Some(b) = &backup {
        if b.repositories {
            let opts = repositories::RepoOptions::for_backup(
                b.information.as_ref(),
                &repositories::configured_storages(root),
                args.repositories_parallel,
                args.repositories_parallel_storage,
            );
            let mut notes = vec![repositories::warning(&opts.remove_all)];
            let path = inst
                .backup_path
                .join("rewind-repositories.<unique>/repositories");
            let commands = match repositories::plan(root, &path, &opts) {
                Ok(p) => vec![p.cmd.display()],
                Err(e) => {
                    notes.push(e.to_string());
                    vec![]
                }
            };
            notes.push(format!(
                "repositories/ is extracted from the archive to {} (root-only) first, after a free-space check; stdin: the restored database's projects, wikis, designs, snippets and group wikis",
                path.display()
            ));
            notes.push("needs --confirm-repositories; --bundle-pushed first bundles the repositories pushed to since the backup into the backup directory".into());
            steps.push(recovery_step(
                StepId::RestoreRepositories,
                "Restore the repositories",
                commands,
                notes,
            ));
        }
    }

    // 7. Files.
    if let Some(b) = &backup {
        // The members the restore itself uses (the backup's file components).
        let members: Vec<String> = b.components.iter().map(|c| c.member.clone()).collect();
        let kind = inst.kind.unwrap_or(InstallKind::Omnibus);
        let comps = files::select_components(&members, &b.skipped, &args.skip, kind);
        let notes: Vec<String> = comps
            .iter()
            .map(|c| {
                format!(
                    "{} → {}{} (existing contents → {}/tmp/{}.<epoch>, kept)",
                    c.member,
                    c.target.display(),
                    if c.assumed_target { " (assumed)" } else { "" },
                    inst.backup_path.display(),
                    c.name
                )
            })
            .collect();
        if !notes.is_empty() {
            steps.push(recovery_step(
                StepId::RestoreFiles,
                "Restore the file components",
                vec![restore_cmd],
                notes,
            ));
        }
    }

    // 8. Configuration: the archive nearest before the backup, compared.
    let before = backup.as_ref().and_then(|b| b.backup_created_at());
    let mut config_notes = Vec::new();
    let mut config_cmds = Vec::new();
    match recovery::config::choose(root, None, before)
        .and_then(|a| recovery::config::read_archive(root, &a))
    {
        Ok(c) => {
            let d = recovery::config::diff(root, &c);
            config_notes.push(format!(
                "{} ({}): {}",
                c.archive.name,
                c.archive.created.as_deref().unwrap_or("time unknown"),
                if d.would_restore.is_empty() {
                    "gitlab-secrets.json and gitlab.rb match the live files".to_string()
                } else {
                    format!(
                        "{} differ (`rewind config` lists what)",
                        d.would_restore.join(" and ")
                    )
                }
            ));
            if !d.would_restore.is_empty() {
                config_cmds.push(format!(
                    "rewind config --archive {} --restore --yes",
                    c.archive.name
                ));
            }
        }
        Err(e) => config_notes.push(e.to_string()),
    }
    steps.push(recovery_step(
        StepId::RestoreConfig,
        "Restore gitlab-secrets.json and gitlab.rb",
        config_cmds,
        config_notes,
    ));

    // 9-10. After.
    for s in services::post_restore_steps(root)
        .into_iter()
        .filter(|s| s.changes_host)
    {
        steps.push(step(s.what, vec![s.cmd.display()], vec![]));
    }
    let checks = recovery::postcheck::checks(root);
    steps.push(recovery_step(
        StepId::PostChecks,
        "Wait for /-/readiness, then check",
        checks.iter().map(|c| c.cmd.display()).collect(),
        checks
            .iter()
            .map(|c| format!("{}{}", c.what, if c.default { "" } else { " (offered)" }))
            .collect(),
    ));

    warnings.push(SECRETS_WARNING.to_string());
    for c in services::config_backups(root) {
        warnings.push(format!(
            "configuration backup: {} ({})",
            c.path.display(),
            human_bytes(c.size)
        ));
    }

    let strategy = recovery::databases_for(root, &inst, ctx.global.database_url.as_deref())
        .ok()
        .map(|jobs| recovery::strategy(root, &inst, &jobs, false, None, Default::default()));
    if let Some(d) = &strategy {
        if d.strategy == rewind_engine::restore::beside::Strategy::Beside {
            for st in steps
                .iter_mut()
                .filter(|st| st.step.is_some_and(|r| r.id == StepId::SafetySnapshot))
            {
                st.notes.insert(
                    0,
                    "beside and swap will run: no snapshot and no drop (the live database is renamed aside and kept; `rewind restore --in-place` does what this step says)".into(),
                );
            }
        }
    }
    let plan = RecoveryPlan {
        strategy,
        installed: inst.version.as_ref().map(|v| v.to_string()),
        backup: id,
        backup_version: backup_version.map(|v| v.to_string()),
        steps,
        warnings,
    };
    if ctx.json() {
        print_json(&plan)?;
    } else {
        print_plan(ctx, &plan, &inst.backup_path);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_plan(ctx: &Ctx, plan: &RecoveryPlan, backup_path: &Path) {
    let s = ctx.style;
    println!(
        "{}",
        s.bold(&format!(
            "Recovery plan: GitLab {} installed, backup {} ({}) in {}",
            plan.installed.as_deref().unwrap_or("unknown"),
            plan.backup.as_deref().unwrap_or("none found"),
            plan.backup_version.as_deref().unwrap_or("version unknown"),
            backup_path.display()
        ))
    );
    if let Some(d) = &plan.strategy {
        println!(
            "{}",
            s.bold(&format!("Restore strategy: {}", d.strategy.label()))
        );
        for r in &d.reasons {
            println!("  {r}");
        }
    }
    for (i, st) in plan.steps.iter().enumerate() {
        println!();
        println!("{}", s.bold(&format!("{:>2}. {}", i + 1, st.title)));
        if let Some(r) = st.step {
            println!(
                "    {}",
                s.dim(&format!(
                    "GitLab: {}; changes: {:?}; undo: {}",
                    r.gitlab,
                    r.changes,
                    match r.undo {
                        Undo::NotNeeded => "nothing to undo",
                        Undo::Inverse => "by the inverse step",
                        Undo::FromSnapshot => "from the safety snapshot",
                        Undo::MovedAside => "move the kept contents back",
                        Undo::No => "cannot be undone",
                    }
                ))
            );
        }
        for c in &st.commands {
            println!("    $ {c}");
        }
        for n in &st.notes {
            println!("    {}", s.dim(n));
        }
    }
    println!();
    for w in &plan.warnings {
        println!("{}", s.warn(&format!("note: {w}")));
    }
    println!();
    println!("This only prints. Nothing was changed.");
}
