//! Rewind's front ends: the CLI (clap) and the TUI wizard. All recovery logic lives in
//! `rewind-engine`; this crate parses arguments, calls the engine step by step, and shows
//! what happens.

pub mod cli;
pub mod commands;
pub mod exit;
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
    let (json, verbose) = (cli.global.json, cli.global.verbose);
    // The wizard (no subcommand) can change the host.
    let may_change = cli
        .command
        .as_ref()
        .is_none_or(cli::Command::may_change_host);
    if !may_change {
        // A command that changes nothing ends quietly when its reader goes away
        // (`rewind backups | head`), as other Unix tools do. Commands that change the host
        // keep SIGPIPE ignored: a closed pipe must never stop them between two steps.
        // SAFETY: sets a signal's disposition to its default, before any thread starts.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    match commands::dispatch(cli) {
        Ok(code) => code,
        Err(report) => {
            let code = exit::code_of(&report, may_change);
            if json {
                println!("{}", exit::json(&report, may_change));
            }
            if verbose {
                eprintln!("{report:?}");
            } else {
                eprintln!("rewind: error: {}", exit::one_line(&report));
            }
            exit::code(code)
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
