//! The steps of a recovery after a failed upgrade, as data: their order, the step of
//! GitLab's procedure each one stands for, what it changes and whether it can be undone.
//! [`super::plan::plan`] builds `rewind plan`'s and `rewind restore --dry-run`'s plan from
//! them; the runner and the front ends name steps by [`StepId`].

use serde::Serialize;

/// A step of the recovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepId {
    Detect,
    SelectBackup,
    Preflight,
    StopServices,
    RollbackPackage,
    ConfirmDrop,
    SafetySnapshot,
    RestoreDatabases,
    RestoreFiles,
    RestoreRepositories,
    Verify,
    RestoreConfig,
    StartServices,
    PostChecks,
    RepairMigrations,
}

/// What a step changes on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Changes {
    Nothing,
    Services,
    Package,
    Database,
    Files,
    Repositories,
    Configuration,
}

/// Whether, and how, a step can be undone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Undo {
    /// Changes nothing.
    NotNeeded,
    /// By running the step's inverse (start what was stopped, install the other version).
    Inverse,
    /// From the safety snapshot (`pg_restore` of it).
    FromSnapshot,
    /// The previous contents are kept (moved aside) and can be moved back.
    MovedAside,
    /// Cannot be undone.
    No,
}

/// One row of the recovery's table.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Step {
    pub id: StepId,
    pub title: &'static str,
    /// The step of GitLab's "Restoring from backup after a failed upgrade" it stands for.
    pub gitlab: &'static str,
    pub changes: Changes,
    pub undo: Undo,
    /// What must hold before it runs.
    pub requires: &'static str,
}

/// The recovery, in order.
pub const STEPS: &[Step] = &[
    Step {
        id: StepId::Detect,
        title: "Detect the installation",
        gitlab: "(before the procedure) know the installed version and the database",
        changes: Changes::Nothing,
        undo: Undo::NotNeeded,
        requires: "",
    },
    Step {
        id: StepId::SelectBackup,
        title: "Select the backup",
        gitlab: "restore a backup made on the older version",
        changes: Changes::Nothing,
        undo: Undo::NotNeeded,
        requires: "a backup whose manifest names its GitLab version",
    },
    Step {
        id: StepId::Preflight,
        title: "Preflight checks",
        gitlab: "GitLab refuses a backup of another version; every member must decode",
        changes: Changes::Nothing,
        undo: Undo::NotNeeded,
        requires: "the selected backup",
    },
    Step {
        id: StepId::StopServices,
        title: "Stop the services that write to the database",
        gitlab: "stop Puma and Sidekiq before restoring",
        changes: Changes::Services,
        undo: Undo::Inverse,
        requires: "preflight passed",
    },
    Step {
        id: StepId::SafetySnapshot,
        title: "Safety snapshot",
        gitlab: "(Rewind) pg_dump -Fc of the failed-upgrade database, before the package step (the older package's reconfigure migrates); the restore reuses it",
        changes: Changes::Nothing,
        undo: Undo::NotNeeded,
        requires: "services stopped (nothing writes); free disk for the snapshot",
    },
    Step {
        id: StepId::RollbackPackage,
        title: "Roll the package back",
        gitlab: "roll back the code or package to the older version",
        changes: Changes::Package,
        undo: Undo::Inverse,
        requires: "services stopped; snapshot taken or declined; the exact older version available",
    },
    Step {
        id: StepId::ConfirmDrop,
        title: "Confirm dropping every table",
        gitlab: "drop all tables before importing the backup",
        changes: Changes::Nothing,
        undo: Undo::NotNeeded,
        requires: "installed version equals the backup's",
    },
    Step {
        id: StepId::RestoreDatabases,
        title: "Restore the database(s)",
        gitlab: "gitlab-backup restore: drop_tables, then the dump through psql",
        changes: Changes::Database,
        undo: Undo::FromSnapshot,
        requires: "drop confirmed by database name; snapshot taken or declined",
    },
    Step {
        id: StepId::RestoreFiles,
        title: "Restore the file components",
        gitlab: "gitlab-backup restore: uploads, builds, artifacts, pages, lfs, ...",
        changes: Changes::Files,
        undo: Undo::MovedAside,
        requires: "file components confirmed; free disk for the extraction",
    },
    Step {
        id: StepId::RestoreRepositories,
        title: "Restore the repositories",
        gitlab: "gitlab-backup restore: repositories through gitaly-backup",
        changes: Changes::Repositories,
        undo: Undo::No,
        requires: "Gitaly running",
    },
    Step {
        id: StepId::Verify,
        title: "Verify",
        gitlab: "(Rewind) schema_migrations, row counts, no leftover tables",
        changes: Changes::Nothing,
        undo: Undo::NotNeeded,
        requires: "",
    },
    Step {
        id: StepId::RestoreConfig,
        title: "Restore gitlab-secrets.json and gitlab.rb",
        gitlab: "restore /etc/gitlab/gitlab-secrets.json (and gitlab.rb) from the configuration backup, before reconfigure",
        changes: Changes::Configuration,
        undo: Undo::MovedAside,
        requires: "the configuration archive nearest before the data backup; its differences shown; confirmed",
    },
    Step {
        id: StepId::StartServices,
        title: "Reconfigure, start and check",
        gitlab: "gitlab-ctl reconfigure, gitlab-ctl restart, wait for /-/readiness",
        changes: Changes::Services,
        undo: Undo::Inverse,
        requires: "restore verified",
    },
    Step {
        id: StepId::PostChecks,
        title: "Check the restored GitLab",
        gitlab: "gitlab:check SANITIZE=true, gitlab:doctor:secrets; optional artifacts/lfs/uploads checks, gitlab:shell:setup",
        changes: Changes::Nothing,
        undo: Undo::NotNeeded,
        requires: "GitLab answers /-/readiness",
    },
    Step {
        id: StepId::RepairMigrations,
        title: "Repair migration state",
        gitlab: "mark_migration_complete[V] for each DuplicateTable, then db:migrate",
        changes: Changes::Database,
        undo: Undo::No,
        requires: "a failed db:migrate log; typed confirmation of each version",
    },
];

/// The row of a step.
pub fn step(id: StepId) -> &'static Step {
    STEPS
        .iter()
        .find(|s| s.id == id)
        .expect("every StepId has a row")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_step_once_in_gitlabs_order() {
        let ids: Vec<StepId> = STEPS.iter().map(|s| s.id).collect();
        let mut dedup = ids.clone();
        dedup.dedup();
        assert_eq!(ids, dedup);
        let pos = |id| ids.iter().position(|x| *x == id).unwrap();
        // Destructive steps come after the checks and the confirmation they need.
        assert!(pos(StepId::Preflight) < pos(StepId::StopServices));
        // The in-place strategy's snapshot comes before the package step, whose reconfigure
        // may touch the database, and so before any drop.
        assert!(pos(StepId::StopServices) < pos(StepId::SafetySnapshot));
        assert!(pos(StepId::SafetySnapshot) < pos(StepId::RollbackPackage));
        assert!(pos(StepId::ConfirmDrop) < pos(StepId::RestoreDatabases));
        assert_eq!(step(StepId::RestoreDatabases).undo, Undo::FromSnapshot);
        // GitLab: secrets back before reconfigure; checks once it runs.
        assert!(pos(StepId::RestoreConfig) < pos(StepId::StartServices));
        assert!(pos(StepId::StartServices) < pos(StepId::PostChecks));
        assert!(STEPS
            .iter()
            .filter(|s| s.changes != Changes::Nothing)
            .all(|s| !s.requires.is_empty()));
    }
}
