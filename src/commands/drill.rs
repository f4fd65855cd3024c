//! `rewind drill`: rehearse a whole recovery on a disposable sandbox host.

use std::io::IsTerminal;
use std::process::ExitCode;

use color_eyre::eyre::{bail, WrapErr};
use rewind_engine::drill::{self, DrillOptions, DrillReport, Sandbox, Scenario};
use rewind_engine::progress::{Event, Level};

use super::Ctx;
use crate::output::print_json;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Which failure to rehearse (see --list).
    #[arg(
        long,
        default_value = "failed-upgrade",
        value_name = "NAME",
        conflicts_with = "backup"
    )]
    pub scenario: String,
    /// Describe the scenarios and exit.
    #[arg(long)]
    pub list: bool,
    /// Restore in place (safety snapshot before the package step, drop, load) instead of
    /// the default beside-and-swap.
    #[arg(long, conflicts_with = "backup")]
    pub in_place: bool,
    /// Run the recovery without keys, the way a careful engineer would (what CI runs).
    /// Without a terminal the drill always runs this way.
    #[arg(long)]
    pub auto: bool,
    /// Data size: rows per table grow linearly with it.
    #[arg(long, default_value_t = drill::DEFAULT_SCALE, value_parser = clap::value_parser!(u32).range(1..=100_000), conflicts_with = "backup")]
    pub scale: u32,
    /// Parallel restore connections (default: number of cores).
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Keep the sandbox (and its PostgreSQL running) afterwards, and print where. With
    /// --backup: keep the throwaway cluster running and the extracted files, and print how
    /// to connect.
    #[arg(long)]
    pub keep: bool,
    /// Test that this host's backup restores (its id in the backup directory, or a path),
    /// and measure how long: verify, load into a throwaway PostgreSQL cluster, extract the
    /// files into a temp directory, check the secrets. Production is not touched.
    #[arg(long, value_name = "ID|PATH", conflicts_with_all = ["list", "auto"])]
    pub backup: Option<String>,
    /// With --backup: where the throwaway cluster and the extracted files go (default:
    /// the system temp directory, $TMPDIR).
    #[arg(long, value_name = "DIR", requires = "backup")]
    pub work_dir: Option<std::path::PathBuf>,
}

pub fn run(ctx: &Ctx, args: Args) -> color_eyre::Result<ExitCode> {
    if args.list {
        if ctx.json() {
            let list: Vec<_> = Scenario::ALL
                .iter()
                .map(|s| serde_json::json!({"name": s.name(), "description": s.description()}))
                .collect();
            print_json(&list)?;
        } else {
            println!("Drill scenarios (rewind drill --scenario NAME):\n");
            for s in Scenario::ALL {
                println!(
                    "  {}{}",
                    s.name(),
                    if s == Scenario::FailedUpgrade {
                        " (default)"
                    } else {
                        ""
                    }
                );
                for line in wrap(s.description(), 74) {
                    println!("      {line}");
                }
                println!();
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(id) = &args.backup {
        return super::drill_backup::run(ctx, id, &args);
    }
    if !ctx.root.is_system() {
        bail!("`rewind drill` builds its own sandbox host; --root cannot be used with it (only with --backup)");
    }
    let scenario: Scenario = args.scenario.parse()?;
    let interactive = !args.auto
        && std::io::stdin().is_terminal()
        && std::io::stdout().is_terminal()
        && !ctx.json();
    if !args.auto && !interactive && !ctx.json() {
        eprintln!("rewind drill: no terminal, running the recovery automatically (--auto)");
    }
    let mut opts = DrillOptions::new(scenario);
    opts.scale = args.scale;
    opts.keep = args.keep;
    opts.in_place = args.in_place;
    if let Some(j) = args.jobs {
        opts.jobs = j.max(1);
    }
    // Ctrl-C / SIGTERM / SIGHUP: stop at the next step, then clean up.
    super::cancel_on_signals(&opts.cancel, None).wrap_err("installing the signal handler")?;

    let quiet = ctx.json();
    let style = ctx.style;
    let sink = move |ev: Event| {
        if quiet {
            return;
        }
        match ev {
            Event::Log { level, message } => match level {
                Level::Info => eprintln!("{}", style.dim(&message)),
                Level::Warn => eprintln!("{}", style.warn(&message)),
                Level::Error => eprintln!("{}", style.bad(&message)),
            },
            Event::Output { line } => eprintln!("  | {line}"),
            _ => {}
        }
    };

    let mut report = DrillReport::new(scenario, opts.scale);
    if !quiet {
        eprintln!(
            "{}",
            style.bold(&format!("Rewind drill: {scenario}. A disposable sandbox host; nothing outside it is touched."))
        );
    }
    let mut sandbox = match Sandbox::prepare(&opts, &sink, &mut report) {
        Ok(sb) => sb,
        Err(e) => {
            if !quiet {
                eprint!("{}", report.render());
            }
            return Err(e).wrap_err("preparing the drill sandbox");
        }
    };
    let result = if interactive {
        crate::commands::drill_wizard::run(&sandbox, &opts)
    } else {
        drill::auto::run(&sandbox, &opts, &sink, &mut report).map_err(color_eyre::Report::from)
    };
    if opts.cancel.is_cancelled() {
        drop(sandbox);
        bail!("drill interrupted; the sandbox and its PostgreSQL were removed");
    }
    if let Err(e) = &result {
        report.steps.push(drill::report::StepReport {
            name: "recovery".into(),
            duration: std::time::Duration::ZERO,
            ok: false,
            detail: format!("{e:#}"),
        });
    }
    drill::check::outcome(&sandbox, &mut report);
    if opts.keep {
        report.kept_at = Some(sandbox.keep());
    }
    drop(sandbox);
    if ctx.json() {
        print_json(&serde_json::json!({"passed": report.passed(), "report": report}))?;
    } else {
        print!("{}", report.render());
    }
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// `rewind drill-migrate` (hidden): the drill's stand-in for `gitlab-rake db:migrate`,
/// against the sandbox host given with `--root`.
pub fn run_standin_migrate(ctx: &Ctx) -> color_eyre::Result<ExitCode> {
    if ctx.root.is_system() {
        bail!("drill-migrate only runs against a drill sandbox (--root)");
    }
    let (code, out) = drill::standin_migrate::run(&ctx.root);
    print!("{out}");
    Ok(if code == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `rewind drill-gitaly-backup ARGS` (hidden): the drill's stand-in for `gitaly-backup`,
/// writing bare repositories with git into the sandbox host given with `--root`.
pub fn run_standin_gitaly_backup(ctx: &Ctx, args: Vec<String>) -> color_eyre::Result<ExitCode> {
    if ctx.root.is_system() {
        bail!("drill-gitaly-backup only runs against a drill sandbox (--root)");
    }
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut out = std::io::stdout().lock();
    let code = rewind_engine::repositories::standin::run(&ctx.root, &args, &mut input, &mut out);
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}

/// `rewind drill-rake -- TASK [ARGS]` (hidden): the drill's stand-in for the `gitlab-rake`
/// checks after a restore, against the sandbox host given with `--root`.
pub fn run_standin_rake(ctx: &Ctx, args: &[String]) -> color_eyre::Result<ExitCode> {
    if ctx.root.is_system() {
        bail!("drill-rake only runs against a drill sandbox (--root)");
    }
    let (code, out) = drill::standin_rake::run(&ctx.root, args);
    if code == 0 {
        print!("{out}");
        Ok(ExitCode::SUCCESS)
    } else {
        eprint!("{out}");
        Ok(ExitCode::FAILURE)
    }
}
