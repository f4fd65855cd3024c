//! How the CLI ends: exit codes every command uses, and errors as one line (or as JSON
//! with `--json`), the whole chain only with `--verbose`.
//!
//! | code | meaning |
//! |------|---------|
//! | 0    | done |
//! | 1    | failed after changing something (or it cannot be known that nothing changed) |
//! | 2    | usage error (unknown flag, bad value) |
//! | 3    | refused before changing anything |
//! | 4    | nothing failed, but something needs acting on |
//! | 130  | interrupted (Ctrl-C, SIGTERM, SIGHUP) |

use std::process::ExitCode;

use rewind_engine::recovery::config::ConfigError;
use rewind_engine::recovery::restore_test::TestError;
use rewind_engine::recovery::snapshot::PackageStepError;
use rewind_engine::recovery::RecoveryError;
use rewind_engine::restore::database::{Outcome, RestoreError};
use rewind_engine::restore::salvage::SalvageError;

pub const DONE: u8 = 0;
pub const FAILED: u8 = 1;
pub const USAGE: u8 = 2;
pub const REFUSED: u8 = 3;
pub const ACT: u8 = 4;
pub const INTERRUPTED: u8 = 130;

/// `ExitCode` for one of the codes above.
pub fn code(c: u8) -> ExitCode {
    ExitCode::from(c)
}

/// What an error left behind, from the engine's typed errors in its chain. An error the
/// engine did not classify changed nothing when the command cannot change the host
/// (`may_change` false); otherwise it counts as a failure (it cannot be known that nothing
/// changed).
pub fn outcome(report: &color_eyre::Report, may_change: bool) -> Outcome {
    for cause in report.chain() {
        if let Some(e) = cause.downcast_ref::<RecoveryError>() {
            return e.outcome();
        }
        if let Some(e) = cause.downcast_ref::<PackageStepError>() {
            return match e {
                PackageStepError::Refused(r) => r.outcome(),
                // Puma and Sidekiq may be stopped, the package may be half installed.
                PackageStepError::Rollback(_) => Outcome::Changed,
            };
        }
        if let Some(e) = cause.downcast_ref::<RestoreError>() {
            return e.outcome();
        }
        if let Some(e) = cause.downcast_ref::<SalvageError>() {
            return e.outcome();
        }
        // A restore test refuses before it makes anything; only a signal stops it later.
        if let Some(e) = cause.downcast_ref::<TestError>() {
            return if e.interrupted() {
                Outcome::Interrupted
            } else {
                Outcome::NothingChanged
            };
        }
        // The host lock is taken before anything changes.
        if cause
            .downcast_ref::<rewind_engine::recovery::lock::LockError>()
            .is_some()
            || matches!(
                cause.downcast_ref::<rewind_engine::migrate::repair::RepairError>(),
                Some(rewind_engine::migrate::repair::RepairError::Lock(_))
            )
        {
            return Outcome::NothingChanged;
        }
        if let Some(e) = cause.downcast_ref::<ConfigError>() {
            // Every refusal comes before the first file is moved.
            return match e {
                ConfigError::Safe(_) | ConfigError::Journal(_) => Outcome::Changed,
                _ => Outcome::NothingChanged,
            };
        }
    }
    if may_change {
        Outcome::Changed
    } else {
        Outcome::NothingChanged
    }
}

/// The exit code of an error.
pub fn code_of(report: &color_eyre::Report, may_change: bool) -> u8 {
    match outcome(report, may_change) {
        Outcome::NothingChanged => REFUSED,
        Outcome::Changed => FAILED,
        Outcome::Interrupted => INTERRUPTED,
    }
}

/// The error chain as one line: each cause once (a wrapper that repeats its source's text
/// is not said twice).
pub fn one_line(report: &color_eyre::Report) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in report.chain() {
        let text = cause.to_string();
        if parts.iter().any(|p| p.contains(&text)) {
            continue;
        }
        // A wrapper whose text contains the next cause's is replaced by the fuller one.
        parts.retain(|p| !text.contains(p.as_str()));
        parts.push(text);
    }
    parts.join(": ")
}

/// The error as `--json` prints it: `{"error": {"kind", "message", "exit_code"}}`.
pub fn json(report: &color_eyre::Report, may_change: bool) -> serde_json::Value {
    let kind = match outcome(report, may_change) {
        Outcome::NothingChanged => "refused",
        Outcome::Changed => "failed",
        Outcome::Interrupted => "interrupted",
    };
    serde_json::json!({
        "error": {
            "kind": kind,
            "message": one_line(report),
            "exit_code": code_of(report, may_change),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use color_eyre::eyre::eyre;

    #[test]
    fn refusals_failures_and_interruptions_have_their_codes() {
        let refused: color_eyre::Report = RecoveryError::BadSkip {
            name: "x".into(),
            known: "db".into(),
        }
        .into();
        assert_eq!(code_of(&refused.wrap_err("restoring"), true), REFUSED);
        let cancelled: color_eyre::Report = RecoveryError::Restore(RestoreError::Cancelled {
            database: "gitlabhq_production".into(),
            when: "before the drop".into(),
        })
        .into();
        assert_eq!(code_of(&cancelled, true), INTERRUPTED);
        assert_eq!(code_of(&eyre!("something else"), true), FAILED);
        // A command that cannot change the host changed nothing, whatever failed.
        assert_eq!(code_of(&eyre!("unreadable"), false), REFUSED);
    }

    #[test]
    fn one_line_says_each_cause_once() {
        let e = eyre!("connection refused")
            .wrap_err("connecting to gitlabhq_production: connection refused")
            .wrap_err("restoring");
        assert_eq!(
            one_line(&e),
            "restoring: connecting to gitlabhq_production: connection refused"
        );
        let j = json(&e, true);
        assert_eq!(j["error"]["kind"], "failed");
        assert_eq!(j["error"]["exit_code"], 1);
    }
}
