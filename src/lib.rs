//! Rewind's front ends: the CLI (clap) and the TUI wizard. All recovery logic lives in
//! `rewind-engine`; this crate parses arguments, calls the engine step by step, and shows
//! what happens.

pub mod cli;
pub mod commands;
pub mod output;
pub mod tui;

use std::process::ExitCode;

use clap::Parser;

/// Entry point of the binary.
pub fn run() -> ExitCode {
    let cli = cli::Cli::parse();
    if let Err(e) = install_error_hooks(&cli.global) {
        eprintln!("rewind: {e}");
    }
    match commands::dispatch(cli) {
        Ok(code) => code,
        Err(report) => {
            eprintln!("{report:?}");
            ExitCode::FAILURE
        }
    }
}

fn install_error_hooks(global: &cli::GlobalOpts) -> color_eyre::Result<()> {
    let theme = if output::color_enabled(global) {
        color_eyre::config::Theme::dark()
    } else {
        color_eyre::config::Theme::new()
    };
    color_eyre::config::HookBuilder::default()
        .theme(theme)
        .display_env_section(false)
        .display_location_section(false)
        .install()
}
