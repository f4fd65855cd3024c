//! `rewind backups` (being built).

use std::process::ExitCode;

use super::Ctx;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_ctx: &Ctx, _args: Args) -> color_eyre::Result<ExitCode> {
    color_eyre::eyre::bail!("`rewind backups` is not available in this build")
}
