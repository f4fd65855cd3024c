//! The interactive drill: the production wizard, started against the drill's sandbox host
//! with a banner saying it is a drill, and GitLab's readiness endpoint answered by
//! [`rewind_engine::drill::standin_ready`] for the wizard's checks.

use rewind_engine::drill::{DrillOptions, Sandbox};

use crate::tui::{run_wizard, WizardOptions};

/// Run the wizard on the sandbox. Returns when the engineer leaves the wizard.
pub fn run(sandbox: &Sandbox, opts: &DrillOptions) -> color_eyre::Result<()> {
    let mut w = WizardOptions::new(sandbox.root.clone());
    w.banner = Some(format!(
        "DRILL ({}): a disposable sandbox host; nothing outside it is touched",
        opts.scenario
    ));
    w.summary = false;
    // The strategy as the automatic drill runs it: beside-and-swap through the sandbox
    // cluster's administrator, in place with --in-place.
    w.in_place = opts.in_place;
    w.db_admin = sandbox.db_admin();
    // GitLab's readiness endpoint, answered on the sandbox's Workhorse socket from the
    // stand-in gitlab-ctl's service state while the wizard runs (its checks wait for it).
    let _ready = rewind_engine::drill::standin_ready::serve(&sandbox.root).map_err(|e| {
        color_eyre::eyre::eyre!(
            "starting the drill's readiness stand-in on {}: {e}",
            sandbox
                .root
                .join(rewind_engine::recovery::postcheck::WORKHORSE_SOCKET)
                .display()
        )
    })?;
    run_wizard(w)?;
    Ok(())
}
