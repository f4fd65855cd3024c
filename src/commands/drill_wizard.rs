//! The interactive drill: the production wizard, started against the drill's sandbox host
//! with a banner saying it is a drill.

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
    run_wizard(w)?;
    Ok(())
}
