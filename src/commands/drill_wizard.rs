//! The interactive drill: the production wizard, started against the drill's sandbox host
//! with a banner saying it is a drill.

use color_eyre::eyre::bail;
use rewind_engine::drill::{DrillOptions, Sandbox};

/// Run the wizard on the sandbox. Returns when the engineer leaves the wizard.
pub fn run(_sandbox: &Sandbox, _opts: &DrillOptions) -> color_eyre::Result<()> {
    bail!("the interactive drill needs the wizard, which this build does not have yet; run `rewind drill --auto`")
}
