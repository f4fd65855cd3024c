//! Rolling GitLab back to the exact version of a backup.
//!
//! Omnibus: stop Puma and Sidekiq (PostgreSQL, Redis and Gitaly keep running, as GitLab's
//! restore needs them), install the exact older package, `gitlab-ctl reconfigure`, then
//! detect the installation again and confirm the installed version. Source installs get a
//! checklist built on `git checkout v<version>`; Docker installs get the image tag to run.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::guard::{self, PgCheck, PgTable, PgTooNew, RbKey};
use super::{
    available, detect_manager, installed, manager_cmd, resolve, Installed, Manager, Offered,
    PackageError,
};
use crate::detect::{self, DetectOptions, InstallKind};
use crate::exec::{Cmd, ExecError, Runner};
use crate::journal::{Journal, JournalError};
use crate::progress::{Sink, SinkExt};
use crate::root::HostRoot;
use crate::services::{ConfigBackup, GitlabCtl, RESTORE_STOPPED};
use crate::version::{Edition, GitLabVersion};

/// Options of a rollback.
#[derive(Debug, Clone, Copy, Default)]
pub struct RollbackOptions {
    /// Allow installing the other edition (EE ↔ CE).
    pub allow_edition_change: bool,
    /// When the data backup was made: the configuration archive nearest before it is
    /// offered.
    pub backup_created: Option<DateTime<Utc>>,
}

/// One command of a plan.
#[derive(Debug, Clone, Serialize)]
pub struct PlanStep {
    /// Journal step (`rollback.stop.puma`, `rollback.install`, ...).
    pub step: String,
    /// What it does, in words.
    pub what: String,
    pub cmd: Cmd,
}

/// The rollback of an Omnibus package.
#[derive(Debug, Clone, Serialize)]
pub struct PackagePlan {
    pub manager: Manager,
    /// The package installed now.
    pub installed: Installed,
    /// The GitLab version to install (edition set).
    pub target: GitLabVersion,
    /// The package version that provides it.
    pub install: Offered,
    /// The commands, in order: stop puma, stop sidekiq, install, reconfigure.
    pub steps: Vec<PlanStep>,
    /// What was checked before the package step.
    pub guard: Guard,
    /// Placed after the rollback is confirmed, so the next unattended upgrade does not
    /// reinstall the failed version.
    pub hold: PlanStep,
    /// The command that releases the hold, for the next planned upgrade.
    pub release: String,
}

/// The downgrade's own checks (see [`guard`]).
#[derive(Debug, Clone, Serialize)]
pub struct Guard {
    /// The PostgreSQL data directory against the majors the target ships (passed, or why
    /// it could not tell; a refusal is an error of [`plan`]).
    pub postgres: PgCheck,
    /// `gitlab.rb` keys the target's `gitlab.rb.template` does not know; `None` when the
    /// template has not been read (yet).
    pub unknown_keys: Option<Vec<RbKey>>,
    /// Why the template was not read, when it was not.
    pub template_note: Option<String>,
    /// The configuration archive nearest before the data backup.
    pub config_backup: Option<ConfigBackup>,
}

impl Guard {
    /// The warnings to show before the package step.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        for k in self.unknown_keys.iter().flatten() {
            w.push(format!(
                "gitlab.rb line {}: {} is not known to the version being installed (its gitlab.rb.template does not name it); its reconfigure may fail on it: comment it out or restore gitlab.rb from the configuration archive",
                k.line, k.key
            ));
        }
        if let Some(c) = &self.config_backup {
            if self.unknown_keys.as_ref().is_some_and(|u| !u.is_empty()) {
                w.push(format!(
                    "the configuration archive nearest before the backup is {}: `tar -xf {} -C /` puts back gitlab.rb and gitlab-secrets.json as they were",
                    c.path.display(),
                    c.path.display()
                ));
            }
        }
        w
    }
}

/// One item of the source-install checklist.
#[derive(Debug, Clone, Serialize)]
pub struct ChecklistItem {
    pub text: String,
    /// The command to run for it, for display (the user runs it).
    pub command: Option<String>,
}

/// What rolling back means on this host.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
// Made once per rollback and passed by reference: the size of the package variant is of no
// consequence.
#[allow(clippy::large_enum_variant)]
pub enum RollbackPlan {
    /// Omnibus package: Rewind runs the steps.
    Package(PackagePlan),
    /// The installed version already is the target.
    AlreadyInstalled { version: GitLabVersion },
    /// Source install: the checkout Rewind can run, and the follow-up checklist.
    Source {
        rails_root: PathBuf,
        target: GitLabVersion,
        checkout: Cmd,
        checklist: Vec<ChecklistItem>,
    },
    /// GitLab in a Docker container: run the image of the backup's version instead.
    Docker {
        target: GitLabVersion,
        image: String,
        note: String,
    },
}

/// What a finished rollback found.
#[derive(Debug, Clone, Serialize)]
pub struct RollbackOutcome {
    /// GitLab version detected after the rollback.
    pub detected: GitLabVersion,
    /// Package version installed after the rollback.
    pub package: Option<Installed>,
    /// The package hold, when placed.
    pub hold: Option<Hold>,
    /// Warnings of the guard and of the hold.
    pub warnings: Vec<String>,
}

/// A package hold placed after the rollback.
#[derive(Debug, Clone, Serialize)]
pub struct Hold {
    /// The command that placed it.
    pub command: String,
    /// The command that releases it (run it before the next upgrade).
    pub release: String,
}

/// Errors of a rollback.
#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    #[error(transparent)]
    Package(#[from] PackageError),
    #[error("detecting the installation: {0}")]
    Detect(#[from] detect::DetectError),
    #[error("no GitLab installation found under {root}: Rewind looked for {version_file}. Nothing to roll back")]
    NotInstalled { root: PathBuf, version_file: String },
    #[error("step `{step}` failed: {source}. Steps before it have run (see the journal); fix the cause and run `rewind rollback` again: it re-plans from the host's current state")]
    Step {
        step: String,
        #[source]
        source: ExecError,
    },
    #[error("{path} not found: Rewind stops Puma and Sidekiq with gitlab-ctl before installing the package")]
    NoGitlabCtl { path: PathBuf },
    #[error("after the rollback GitLab reports version {found} ({path}), not {expected}. Check the package manager's output above; the package may not have been installed")]
    Mismatch {
        expected: GitLabVersion,
        found: String,
        path: String,
    },
    #[error(transparent)]
    PgTooNew(#[from] Box<PgTooNew>),
    #[error("the safety snapshot before the package step failed: {0}. The package was not changed; Puma and Sidekiq are stopped (`gitlab-ctl start puma` and `gitlab-ctl start sidekiq` bring them back)")]
    Snapshot(#[from] crate::restore::snapshot::SnapshotError),
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// The Docker image of a GitLab version: `gitlab/gitlab-ee:16.10.3-ee.0`.
pub fn docker_image(v: &GitLabVersion) -> String {
    let ed = v.edition_or_ce();
    format!("gitlab/{}:{}-{ed}.0", ed.package(), v.base())
}

/// The git tag of a GitLab version: `v16.10.3-ee` (EE), `v16.10.3` (CE).
pub fn git_tag(v: &GitLabVersion) -> String {
    match v.edition_or_ce() {
        Edition::Ee => format!("v{}-ee", v.base()),
        Edition::Ce => format!("v{}", v.base()),
    }
}

fn target_with_edition(
    target: &GitLabVersion,
    installed: Option<Edition>,
    opts: RollbackOptions,
    installed_package: &str,
) -> Result<GitLabVersion, RollbackError> {
    // One rule with the restore's version check: a version without a suffix is CE.
    let t = target.edition_or_ce();
    match installed {
        Some(i) if i != t && !opts.allow_edition_change => Err(PackageError::EditionChange {
            target: target.clone(),
            target_edition: t,
            installed_package: installed_package.to_string(),
        }
        .into()),
        _ => Ok(target.with_edition(t)),
    }
}

/// Plan the rollback of the installation under `root` to `target`.
pub fn plan(
    root: &HostRoot,
    target: &GitLabVersion,
    opts: RollbackOptions,
) -> Result<RollbackPlan, RollbackError> {
    let inst = detect::detect(root, &DetectOptions::default())?;
    let docker = root.join("/.dockerenv").exists();
    match inst.kind {
        Some(InstallKind::Source) => {
            let t = target_with_edition(
                target,
                inst.edition,
                opts,
                inst.package.as_deref().unwrap_or("gitlab"),
            )?;
            return Ok(source_plan(root, &t, inst.version.as_ref()));
        }
        Some(InstallKind::Omnibus) if docker => {
            let t = target_with_edition(
                target,
                inst.edition,
                opts,
                inst.package.as_deref().unwrap_or("gitlab"),
            )?;
            let image = docker_image(&t);
            return Ok(RollbackPlan::Docker {
                note: format!(
                    "GitLab runs in a container: do not downgrade the package inside it. Stop the container and start {image} with the same volumes (/etc/gitlab, /var/log/gitlab, /var/opt/gitlab) and settings, then restore."
                ),
                target: t,
                image,
            });
        }
        _ => {}
    }
    let manager = detect_manager(root).ok_or_else(|| PackageError::NoManager {
        root: root.base().to_path_buf(),
    })?;
    let Some(current) = installed(root, manager)? else {
        if inst.kind.is_none() {
            return Err(RollbackError::NotInstalled {
                root: root.base().to_path_buf(),
                version_file: detect::omnibus::VERSION.into(),
            });
        }
        return Err(PackageError::NotInstalled {
            manager,
            root: root.base().to_path_buf(),
        }
        .into());
    };
    let target = target_with_edition(
        target,
        Some(current.version.edition()),
        opts,
        &current.package,
    )?;
    if current.version.gitlab.same_release(&target) {
        return Ok(RollbackPlan::AlreadyInstalled {
            version: current.version.gitlab.clone(),
        });
    }
    let postgres = guard::check_postgres(root, &PgTable::embedded(), &target).map_err(Box::new)?;
    let package = target.edition_or_ce().package();
    let offered = available(manager, root, package)?;
    let install = resolve(&offered, &target, manager, root)?;
    let mut g = Guard {
        postgres,
        unknown_keys: None,
        template_note: None,
        config_backup: opts
            .backup_created
            .and_then(|t| guard::config_backup_before(root, t)),
    };
    read_template(root, manager, package, &install.version.raw, false, &mut g);
    let (hold, release) = hold_cmds(manager, root, package, &install.version.raw)?;
    let ctl = GitlabCtl::new(root);
    let mut steps = Vec::new();
    for service in RESTORE_STOPPED {
        steps.push(PlanStep {
            step: format!("rollback.stop.{service}"),
            what: format!("stop {service} (PostgreSQL, Redis and Gitaly keep running)"),
            cmd: ctl.cmd(["stop", service]),
        });
    }
    let downgrade = install.version.gitlab.sort_key() < current.version.gitlab.sort_key();
    let pkg_arg = |sep: &str| format!("{package}{sep}{}", install.version.raw);
    let install_cmd = match manager {
        Manager::Apt => manager_cmd(manager, "apt-get", root)?.args([
            "install".to_string(),
            "-y".into(),
            "--allow-downgrades".into(),
            pkg_arg("="),
        ]),
        Manager::Yum => manager_cmd(manager, "yum", root)?.args([
            if downgrade { "downgrade" } else { "install" }.to_string(),
            "-y".into(),
            pkg_arg("-"),
        ]),
        Manager::Dnf => manager_cmd(manager, "dnf", root)?.args([
            "install".to_string(),
            "-y".into(),
            pkg_arg("-"),
        ]),
        Manager::Zypper => manager_cmd(manager, "zypper", root)?.args([
            "--non-interactive".to_string(),
            "install".into(),
            "--oldpackage".into(),
            pkg_arg("="),
        ]),
    };
    steps.push(PlanStep {
        step: "rollback.install".into(),
        what: format!(
            "install {package} {} (now {} {})",
            install.version, current.package, current.version
        ),
        cmd: install_cmd,
    });
    steps.push(PlanStep {
        step: "rollback.reconfigure".into(),
        what: "reconfigure GitLab for the installed version".into(),
        cmd: ctl.reconfigure_cmd(),
    });
    let hold_what = format!(
        "hold {package} at {}, so the next unattended upgrade does not reinstall the failed version",
        install.version
    );
    Ok(RollbackPlan::Package(PackagePlan {
        manager,
        installed: current,
        target,
        install,
        steps,
        guard: g,
        hold: PlanStep {
            step: "rollback.hold".into(),
            what: hold_what,
            cmd: hold,
        },
        release,
    }))
}

/// The hold command of `manager` for `package` at `version`, and the release command (as
/// text).
fn hold_cmds(
    manager: Manager,
    root: &HostRoot,
    package: &str,
    version: &str,
) -> Result<(Cmd, String), PackageError> {
    let pinned = format!("{package}-{version}");
    Ok(match manager {
        Manager::Apt => (
            manager_cmd(manager, "apt-mark", root)?.args(["hold", package]),
            manager_cmd(manager, "apt-mark", root)?
                .args(["unhold", package])
                .display(),
        ),
        Manager::Yum | Manager::Dnf => (
            manager_cmd(manager, manager.program(), root)?.args([
                "versionlock",
                "add",
                pinned.as_str(),
            ]),
            manager_cmd(manager, manager.program(), root)?
                .args(["versionlock", "delete", package])
                .display(),
        ),
        Manager::Zypper => (
            manager_cmd(manager, "zypper", root)?.args(["--non-interactive", "addlock", package]),
            manager_cmd(manager, "zypper", root)?
                .args(["--non-interactive", "removelock", package])
                .display(),
        ),
    })
}

/// Read the target package's `gitlab.rb.template` and compare `gitlab.rb` with it.
/// Without `download`, only a package file already on this host is read.
fn read_template(
    root: &HostRoot,
    manager: Manager,
    package: &str,
    version: &str,
    download: bool,
    g: &mut Guard,
) {
    let rb = match std::fs::read_to_string(root.join(detect::omnibus::GITLAB_RB)) {
        Ok(t) => t,
        Err(e) => {
            g.template_note = Some(format!("gitlab.rb not read: {e}"));
            return;
        }
    };
    let file = if manager != Manager::Apt {
        Ok(None)
    } else if download {
        guard::package_file(manager, root, package, version)
    } else {
        guard::cached_package_file(manager, root, package, version)
    };
    match file {
        Ok(Some(deb)) => match guard::template_from_deb(&deb) {
            Ok(Some(template)) => {
                g.unknown_keys = Some(guard::unknown_keys(&rb, &template));
                g.template_note = None;
            }
            Ok(None) => {
                g.template_note = Some(format!(
                    "{} has no {}: gitlab.rb keys not checked",
                    deb.display(),
                    guard::GITLAB_RB_TEMPLATE
                ))
            }
            Err(e) => g.template_note = Some(format!("gitlab.rb keys not checked: {e}")),
        },
        Ok(None) if manager != Manager::Apt => {
            g.template_note = Some(format!(
                "gitlab.rb keys not checked: Rewind reads the template from .deb packages only ({manager})"
            ))
        }
        Ok(None) => {
            g.template_note = Some(format!(
                "the package file of {package} {version} is not on this host yet: gitlab.rb keys are checked before the package step"
            ))
        }
        Err(e) => g.template_note = Some(format!("gitlab.rb keys not checked: {e}")),
    }
}

fn source_plan(
    root: &HostRoot,
    target: &GitLabVersion,
    current: Option<&GitLabVersion>,
) -> RollbackPlan {
    let rails = detect::source::RAILS_ROOT;
    let rails_dir = root.join(rails);
    let tag = git_tag(target);
    let checkout = Cmd::new("git")
        .arg("-C")
        .arg(&rails_dir)
        .args(["checkout", tag.as_str()]);
    let item = |text: &str, command: Option<&str>| ChecklistItem {
        text: text.to_string(),
        command: command.map(str::to_string),
    };
    let checklist = vec![
        item(
            "Stop GitLab (Puma, Sidekiq, Workhorse); keep PostgreSQL and Redis running",
            Some("sudo service gitlab stop"),
        ),
        item(
            "Fetch the tags of the GitLab repository",
            Some(&format!("sudo -u git -H git -C {rails} fetch --all --tags --prune")),
        ),
        item(
            &format!(
                "Check out the backup's version {tag}{}",
                current
                    .map(|c| format!(" (now {c})"))
                    .unwrap_or_default()
            ),
            Some(&format!("sudo -u git -H git -C {rails} checkout {tag}")),
        ),
        item(
            "Check out and build the GitLab Shell version this release needs",
            Some("cd /home/git/gitlab-shell && sudo -u git -H git fetch --all --tags --prune && sudo -u git -H git checkout v$(</home/git/gitlab/GITLAB_SHELL_VERSION) && sudo -u git -H make build"),
        ),
        item(
            "Rebuild and install GitLab Workhorse",
            Some("cd /home/git/gitlab && sudo -u git -H make -C workhorse && sudo make -C workhorse install"),
        ),
        item(
            "Check out and build the Gitaly version this release needs",
            Some("cd /home/git/gitaly && sudo -u git -H git fetch --all --tags --prune && sudo -u git -H git checkout v$(</home/git/gitlab/GITALY_SERVER_VERSION) && sudo -u git -H make"),
        ),
        item(
            "If you use GitLab Pages, check out and build GITLAB_PAGES_VERSION the same way",
            None,
        ),
        item(
            "Install the gems of this version",
            Some("cd /home/git/gitlab && sudo -u git -H bundle config set --local deployment 'true' && sudo -u git -H bundle config set --local without 'development test kerberos' && sudo -u git -H bundle install && sudo -u git -H bundle clean"),
        ),
        item(
            "Rebuild the frontend assets",
            Some("cd /home/git/gitlab && sudo -u git -H yarn install --production --pure-lockfile && sudo -u git -H bundle exec rake gitlab:assets:compile RAILS_ENV=production NODE_ENV=production NODE_OPTIONS=--max_old_space_size=4096"),
        ),
        item(
            "Do NOT run db:migrate: the restore brings the database schema of this version",
            None,
        ),
        item(
            "Compare config/gitlab.yml, config/database.yml and the init script / systemd units with this version's examples (lib/support)",
            None,
        ),
        item(
            "Start Gitaly (the restore needs it), keep Puma and Sidekiq stopped until the restore is done",
            None,
        ),
    ];
    RollbackPlan::Source {
        rails_root: rails.into(),
        target: target.clone(),
        checkout,
        checklist,
    }
}

/// Run a package rollback plan: every step is shown, streamed, journaled and checked; then
/// the installation is detected again and its version must equal the target.
///
/// `before_package` runs once Puma and Sidekiq are stopped and before the package is
/// installed: the in-place strategy takes its safety snapshots there
/// ([`crate::recovery::snapshot`]), so the databases are kept as the failed upgrade left
/// them before the older package's reconfigure runs. Its failure stops the rollback with the
/// package unchanged.
pub fn run(
    root: &HostRoot,
    plan: &PackagePlan,
    sink: &dyn Sink,
    journal: Option<&Journal>,
    before_package: &mut dyn FnMut() -> Result<(), crate::restore::snapshot::SnapshotError>,
) -> Result<RollbackOutcome, RollbackError> {
    let ctl = GitlabCtl::new(root);
    if !ctl.exists() {
        return Err(RollbackError::NoGitlabCtl {
            path: ctl.path().to_path_buf(),
        });
    }
    if let Some(j) = journal {
        j.begin(
            "rollback",
            format!(
                "roll {} {} back to {}",
                plan.installed.package, plan.installed.version, plan.install.version
            ),
            serde_json::json!({
                "manager": plan.manager,
                "from": plan.installed.version.raw,
                "to": plan.install.version.raw,
                "target": plan.target,
            }),
        )?;
    }
    // The guard again, right before the package step: the host may have changed since the
    // plan was made; the template is read now if the plan could not.
    let mut g = plan.guard.clone();
    g.postgres = match guard::check_postgres(root, &PgTable::embedded(), &plan.target) {
        Ok(p) => p,
        Err(e) => {
            if let Some(j) = journal {
                j.end(
                    "rollback",
                    "refused",
                    serde_json::json!({ "step": "rollback.guard", "error": e.to_string() }),
                )?;
            }
            return Err(Box::new(e).into());
        }
    };
    if g.unknown_keys.is_none() {
        read_template(
            root,
            plan.manager,
            plan.target.edition_or_ce().package(),
            &plan.install.version.raw,
            true,
            &mut g,
        );
    }
    sink.info(format!("rollback.guard: {}", g.postgres.note));
    let mut warnings = g.warnings();
    if let Some(n) = &g.template_note {
        warnings.push(n.clone());
    }
    for w in &warnings {
        sink.warn(w.clone());
    }
    if let Some(j) = journal {
        j.note(
            "rollback.guard",
            "checked before the package step",
            serde_json::json!({
                "postgres": g.postgres,
                "unknown_keys": g.unknown_keys,
                "template_note": g.template_note,
                "config_backup": g.config_backup.as_ref().map(|c| &c.path),
            }),
        )?;
    }
    let runner = Runner::new(sink, journal);
    let mut before = Some(before_package);
    for s in &plan.steps {
        if !s.step.starts_with("rollback.stop.") {
            if let Some(hook) = before.take() {
                if let Err(e) = hook() {
                    if let Some(j) = journal {
                        j.end(
                            "rollback",
                            "refused",
                            serde_json::json!({ "step": "rollback.snapshot", "error": e.to_string() }),
                        )?;
                    }
                    return Err(e.into());
                }
            }
        }
        sink.info(format!("{}: {}", s.step, s.what));
        if let Err(source) = runner.run(&s.step, &s.cmd) {
            if let Some(j) = journal {
                j.end(
                    "rollback",
                    "failed",
                    serde_json::json!({ "step": s.step, "error": source.to_string() }),
                )?;
            }
            return Err(RollbackError::Step {
                step: s.step.clone(),
                source,
            });
        }
    }
    let outcome = verify(root, &plan.target, Some(plan.manager)).map(|mut o| {
        o.hold = place_hold(plan, &runner, sink, journal, &mut warnings);
        o.warnings = warnings;
        o
    });
    if let Some(j) = journal {
        match &outcome {
            Ok(o) => j.end(
                "rollback",
                "ok",
                serde_json::json!({ "detected": o.detected, "package": o.package.as_ref().map(|p| &p.version.raw) }),
            )?,
            Err(e) => j.end(
                "rollback",
                "failed",
                serde_json::json!({ "step": "rollback.verify", "error": e.to_string() }),
            )?,
        }
    }
    let outcome = outcome?;
    sink.info(format!(
        "GitLab {} is installed ({}).",
        outcome.detected,
        outcome
            .package
            .as_ref()
            .map(|p| format!("{} {}", p.package, p.version))
            .unwrap_or_else(|| "package version unknown".into())
    ));
    Ok(outcome)
}

/// Detect the installation again and check that it is `target`.
pub fn verify(
    root: &HostRoot,
    target: &GitLabVersion,
    manager: Option<Manager>,
) -> Result<RollbackOutcome, RollbackError> {
    let inst = detect::detect(root, &DetectOptions::default())?;
    let path = match inst.kind {
        Some(InstallKind::Source) => detect::source::VERSION,
        _ => detect::omnibus::VERSION,
    };
    let Some(found) = inst.version else {
        return Err(RollbackError::Mismatch {
            expected: target.clone(),
            found: "nothing".into(),
            path: path.into(),
        });
    };
    if !found.same_release(target) {
        return Err(RollbackError::Mismatch {
            expected: target.clone(),
            found: found.to_string(),
            path: path.into(),
        });
    }
    let package = match manager {
        Some(m) => installed(root, m)?,
        None => None,
    };
    if let Some(p) = &package {
        if !p.version.gitlab.same_release(target) {
            return Err(RollbackError::Mismatch {
                expected: target.clone(),
                found: format!("package {} {}", p.package, p.version),
                path: "the package database".into(),
            });
        }
    }
    Ok(RollbackOutcome {
        detected: found,
        package,
        hold: None,
        warnings: Vec::new(),
    })
}

/// Place the package hold. A failure is a warning with the command to run by hand: the
/// rollback itself has succeeded.
fn place_hold(
    plan: &PackagePlan,
    runner: &Runner,
    sink: &dyn Sink,
    journal: Option<&Journal>,
    warnings: &mut Vec<String>,
) -> Option<Hold> {
    sink.info(format!("{}: {}", plan.hold.step, plan.hold.what));
    match runner.run(&plan.hold.step, &plan.hold.cmd) {
        Ok(_) => {
            sink.info(format!(
                "{} is held. Before the next upgrade, release it: {}",
                plan.target.edition_or_ce().package(),
                plan.release
            ));
            Some(Hold {
                command: plan.hold.cmd.display(),
                release: plan.release.clone(),
            })
        }
        Err(e) => {
            let w = format!(
                "the package hold was not placed ({e}): run `{}` yourself, or the next unattended upgrade may reinstall the failed version",
                plan.hold.cmd.display()
            );
            sink.warn(w.clone());
            if let Some(j) = journal {
                let _ = j.note(
                    "rollback.hold",
                    "not placed",
                    serde_json::json!({ "error": e.to_string() }),
                );
            }
            warnings.push(w);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_and_tags() {
        let ee: GitLabVersion = "16.10.3-ee".parse().unwrap();
        let ce: GitLabVersion = "16.10.3".parse().unwrap();
        assert_eq!(docker_image(&ee), "gitlab/gitlab-ee:16.10.3-ee.0");
        assert_eq!(docker_image(&ce), "gitlab/gitlab-ce:16.10.3-ce.0");
        assert_eq!(git_tag(&ee), "v16.10.3-ee");
        assert_eq!(git_tag(&ce), "v16.10.3");
    }

    #[test]
    fn edition_change_is_refused_unless_allowed() {
        let ce: GitLabVersion = "16.10.3-ce".parse().unwrap();
        let err = target_with_edition(
            &ce,
            Some(Edition::Ee),
            RollbackOptions::default(),
            "gitlab-ee",
        )
        .unwrap_err();
        assert!(err.to_string().contains("--allow-edition-change"), "{err}");
        let ok = target_with_edition(
            &ce,
            Some(Edition::Ee),
            RollbackOptions {
                allow_edition_change: true,
                ..Default::default()
            },
            "gitlab-ee",
        )
        .unwrap();
        assert_eq!(ok.edition, Some(Edition::Ce));
        // No suffix is CE, as GitLab's restore treats it: on an EE host that is a change.
        let bare: GitLabVersion = "16.10.3".parse().unwrap();
        let err = target_with_edition(
            &bare,
            Some(Edition::Ee),
            RollbackOptions::default(),
            "gitlab-ee",
        )
        .unwrap_err();
        assert!(err.to_string().contains("16.10.3 (ce;"), "{err}");
        let t = target_with_edition(
            &bare,
            Some(Edition::Ce),
            RollbackOptions::default(),
            "gitlab-ce",
        )
        .unwrap();
        assert_eq!(t.to_string(), "16.10.3-ce");
    }

    #[test]
    fn source_and_docker_installs_get_their_own_plans() {
        let dir = tempfile::tempdir().unwrap();
        let root = HostRoot::new(dir.path());
        let f = root.join(detect::source::VERSION);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(&f, "16.11.0-ee\n").unwrap();
        let t: GitLabVersion = "16.10.3-ee".parse().unwrap();
        match plan(&root, &t, RollbackOptions::default()).unwrap() {
            RollbackPlan::Source {
                checkout,
                checklist,
                ..
            } => {
                assert_eq!(
                    checkout.argv()[1..],
                    [
                        "-C".to_string(),
                        root.join("/home/git/gitlab").display().to_string(),
                        "checkout".into(),
                        "v16.10.3-ee".into()
                    ]
                );
                assert!(checklist.iter().any(|c| c.text.contains("db:migrate")));
            }
            other => panic!("{other:?}"),
        }

        let dir = tempfile::tempdir().unwrap();
        let root = HostRoot::new(dir.path());
        let f = root.join(detect::omnibus::VERSION);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(&f, "16.11.0-ee\n").unwrap();
        std::fs::write(root.join("/.dockerenv"), "").unwrap();
        match plan(&root, &t, RollbackOptions::default()).unwrap() {
            RollbackPlan::Docker { image, .. } => {
                assert_eq!(image, "gitlab/gitlab-ee:16.10.3-ee.0")
            }
            other => panic!("{other:?}"),
        }
    }
}
