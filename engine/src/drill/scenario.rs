//! The drill's scenarios: what goes wrong in the sandbox, and what a good recovery ends with.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// A rehearsal scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// The default: an upgrade to 16.11.0 failed; roll back, confirm the drop, restore, verify.
    FailedUpgrade,
    /// The backup was restored without dropping the failed upgrade's tables; the next
    /// upgrade's migrate fails with `PG::DuplicateTable`; repair migration state.
    LeftoverTables,
    /// The newest backup is truncated; preflight refuses it before anything is destroyed and
    /// the older good one is used.
    CorruptBackup,
    /// The backup's version is neither installed nor in the package repository: Rewind
    /// refuses and says what to do; nothing changes.
    VersionMismatch,
    /// A decomposed installation: main and ci databases, both restored.
    Decomposed,
    /// The failed upgrade also moved the instance from CE to EE; the backup was made on CE.
    /// Rewind says the editions differ, asks, and installs the backup's edition.
    EditionChange,
}

impl Scenario {
    /// Every scenario, in the order `--list` shows them.
    pub const ALL: [Scenario; 6] = [
        Scenario::FailedUpgrade,
        Scenario::LeftoverTables,
        Scenario::CorruptBackup,
        Scenario::VersionMismatch,
        Scenario::Decomposed,
        Scenario::EditionChange,
    ];

    /// The name given to `--scenario`.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::FailedUpgrade => "failed-upgrade",
            Scenario::LeftoverTables => "leftover-tables",
            Scenario::CorruptBackup => "corrupt-backup",
            Scenario::VersionMismatch => "version-mismatch",
            Scenario::Decomposed => "decomposed",
            Scenario::EditionChange => "edition-change",
        }
    }

    /// One paragraph for `--list`.
    pub fn description(self) -> &'static str {
        match self {
            Scenario::FailedUpgrade => "GitLab 16.10.3 was upgraded to 16.11.0 and the upgrade failed half-way: new tables, a new column and new schema_migrations rows are in the database. Roll the package back to 16.10.3, confirm dropping every table, restore the 16.10.3 backup, verify.",
            Scenario::LeftoverTables => "The 16.10.3 backup was restored earlier without dropping the failed upgrade's tables. The next upgrade's db:migrate fails with PG::DuplicateTable. Read the migrate log, assess, and mark the migration complete, round after round, until migrate succeeds.",
            Scenario::CorruptBackup => "The newest backup is truncated (a disk filled up while it was copied). Preflight must refuse it before anything is destroyed; recover from the older, good backup instead.",
            Scenario::VersionMismatch => "The only backup was made on 16.9.2, which is neither installed nor offered by the package repository. Rewind must refuse to restore it and say what to do; nothing on the host may change.",
            Scenario::Decomposed => "A decomposed installation with main and ci databases (gitlabhq_production and gitlabhq_production_ci). Both dumps are restored, main first, as GitLab does.",
            Scenario::EditionChange => "GitLab CE 16.10.3 was upgraded to EE 16.11.0 in one step and the upgrade failed; the backup was made on CE. GitLab restores a backup only into the edition that made it: Rewind must say that the editions differ, ask which to install, and roll back to gitlab-ce 16.10.3 before the restore.",
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown scenario name.
#[derive(Debug, thiserror::Error)]
#[error("unknown drill scenario `{0}`; `rewind drill --list` shows the scenarios: failed-upgrade, leftover-tables, corrupt-backup, version-mismatch, decomposed, edition-change")]
pub struct UnknownScenario(pub String);

impl FromStr for Scenario {
    type Err = UnknownScenario;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scenario::ALL
            .into_iter()
            .find(|sc| sc.name() == s)
            .ok_or_else(|| UnknownScenario(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in Scenario::ALL {
            assert_eq!(s.name().parse::<Scenario>().unwrap(), s);
        }
        assert!("nope".parse::<Scenario>().is_err());
    }
}
