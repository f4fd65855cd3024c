//! The drill's report: the steps it ran with their times, and the checks of the outcome.

use std::time::Duration;

use serde::Serialize;

use super::scenario::Scenario;

/// One step of the rehearsal.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub name: String,
    #[serde(serialize_with = "secs")]
    pub duration: Duration,
    pub ok: bool,
    pub detail: String,
}

/// One check of the outcome.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct DrillReport {
    pub scenario: Scenario,
    pub scale: u32,
    pub steps: Vec<StepReport>,
    pub checks: Vec<CheckReport>,
    /// Where the sandbox is, when kept.
    pub kept_at: Option<std::path::PathBuf>,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1000.0).round() / 1000.0)
}

impl DrillReport {
    pub fn new(scenario: Scenario, scale: u32) -> Self {
        DrillReport {
            scenario,
            scale,
            steps: Vec::new(),
            checks: Vec::new(),
            kept_at: None,
        }
    }

    /// Passed: every step ran and every check passed (and there was at least one check).
    pub fn passed(&self) -> bool {
        !self.checks.is_empty()
            && self.steps.iter().all(|s| s.ok)
            && self.checks.iter().all(|c| c.ok)
    }

    pub fn check(&mut self, name: impl Into<String>, ok: bool, detail: impl Into<String>) {
        self.checks.push(CheckReport {
            name: name.into(),
            ok,
            detail: detail.into(),
        });
    }

    /// Plain-text rendering for the terminal.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "Drill report: scenario {} (scale {})\n\nSteps\n",
            self.scenario, self.scale
        ));
        let total: Duration = self.steps.iter().map(|s| s.duration).sum();
        for s in &self.steps {
            out.push_str(&format!(
                "  {} {:<34} {:>7.1}s  {}\n",
                if s.ok { "ok  " } else { "FAIL" },
                s.name,
                s.duration.as_secs_f64(),
                s.detail
            ));
        }
        out.push_str(&format!(
            "  {:<39} {:>7.1}s\n\nChecks\n",
            "total",
            total.as_secs_f64()
        ));
        for c in &self.checks {
            out.push_str(&format!(
                "  {} {:<34} {}\n",
                if c.ok { "pass" } else { "FAIL" },
                c.name,
                c.detail
            ));
        }
        let passed = self.checks.iter().filter(|c| c.ok).count();
        out.push_str(&format!(
            "\n{}: {passed}/{} checks passed\n",
            if self.passed() {
                "DRILL PASSED"
            } else {
                "DRILL FAILED"
            },
            self.checks.len()
        ));
        if let Some(p) = &self.kept_at {
            out.push_str(&format!("Sandbox kept at {}\n", p.display()));
        }
        out
    }
}
