//! What the journal says about the last recovery: read back by a front end that was
//! restarted after the restore ran (the wizard's Verify step after a resume).

use std::path::Path;

use crate::journal::{Journal, JournalError, Stage};
use crate::restore::verify::VerifyReport;

/// The step that marks the start of a recovery run in the journal.
const RUN_START: &str = "recovery.lock";

/// The verification of each database of the last recovery run in the journal directory
/// `dir`, in the order they were verified. Empty when that run verified nothing (it stopped
/// before, or there is no journal).
pub fn last_verification(dir: &Path) -> Result<Vec<VerifyReport>, JournalError> {
    let Some(entries) = Journal::read_in(dir)? else {
        return Ok(Vec::new());
    };
    let mut reports: Vec<VerifyReport> = Vec::new();
    for e in entries {
        if e.step == RUN_START {
            reports.clear();
            continue;
        }
        let is_verify =
            e.stage == Stage::End && e.step.starts_with("restore.") && e.step.ends_with(".verify");
        if !is_verify {
            continue;
        }
        if let Ok(r) = serde_json::from_value::<VerifyReport>(e.detail) {
            reports.retain(|x| x.database != r.database);
            reports.push(r);
        }
    }
    Ok(reports)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::restore::verify::{Line, Status};

    fn report(db: &str, status: Status) -> VerifyReport {
        VerifyReport {
            database: db.into(),
            lines: vec![Line {
                check: "row counts".into(),
                status,
                detail: "42 tables".into(),
            }],
        }
    }

    #[test]
    fn reads_the_last_runs_verification_per_database() {
        let dir = tempfile::tempdir().unwrap();
        let jdir = dir.path().join("rewind");
        let j = Journal::open_in(&jdir).unwrap();
        // An earlier run: failed verification of main.
        j.note(RUN_START, "host lock taken", serde_json::Value::Null)
            .unwrap();
        j.end(
            "restore.main.verify",
            "failed",
            serde_json::to_value(report("gitlabhq_production", Status::Fail)).unwrap(),
        )
        .unwrap();
        assert_eq!(
            last_verification(&jdir).unwrap(),
            vec![report("gitlabhq_production", Status::Fail)]
        );
        // The retry: both databases verified.
        j.note(RUN_START, "host lock taken", serde_json::Value::Null)
            .unwrap();
        j.begin("restore.main.verify", "verify", serde_json::Value::Null)
            .unwrap();
        j.end(
            "restore.main.verify",
            "ok",
            serde_json::to_value(report("gitlabhq_production", Status::Pass)).unwrap(),
        )
        .unwrap();
        j.end(
            "restore.ci.verify",
            "ok",
            serde_json::to_value(report("gitlabhq_production_ci", Status::Pass)).unwrap(),
        )
        .unwrap();
        let got = last_verification(&jdir).unwrap();
        assert_eq!(
            got,
            vec![
                report("gitlabhq_production", Status::Pass),
                report("gitlabhq_production_ci", Status::Pass)
            ]
        );
        // A run that stopped before verifying says nothing was verified.
        j.note(RUN_START, "host lock taken", serde_json::Value::Null)
            .unwrap();
        assert!(last_verification(&jdir).unwrap().is_empty());
    }

    #[test]
    fn no_journal_is_nothing_verified_and_a_linked_journal_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(last_verification(&dir.path().join("rewind"))
            .unwrap()
            .is_empty());
        let jdir = dir.path().join("j");
        std::fs::create_dir(&jdir).unwrap();
        std::fs::set_permissions(&jdir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .unwrap();
        std::os::unix::fs::symlink("/etc/hostname", jdir.join("journal.jsonl")).unwrap();
        let e = last_verification(&jdir).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
    }
}
