//! `rewind services status|stop|start [NAME]`: GitLab's services under `gitlab-ctl`.
//!
//! Also home of [`CliSink`], the progress sink the host commands (`rollback`, `services`,
//! `plan`) print through.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use color_eyre::eyre::WrapErr;
use rewind_engine::detect::{detect, DetectOptions};
use rewind_engine::exec::Runner;
use rewind_engine::journal::Journal;
use rewind_engine::progress::{Event, Level, Sink};
use rewind_engine::services::{
    config_backups, post_restore_steps, GitlabCtl, ServiceStatus, State, SECRETS_WARNING,
};

use super::Ctx;
use crate::output::{print_json, Style};

/// Prints engine events for a CLI command: log lines, and command output indented under
/// the command. With `--json` everything goes to stderr so stdout stays one document.
pub struct CliSink {
    pub style: Style,
    pub to_stderr: bool,
}

impl CliSink {
    /// A sink for `ctx`.
    pub fn new(ctx: &Ctx) -> Self {
        CliSink {
            style: ctx.style,
            to_stderr: ctx.json(),
        }
    }

    fn line(&self, text: &str) {
        if self.to_stderr {
            let _ = writeln!(std::io::stderr().lock(), "{text}");
        } else {
            let _ = writeln!(std::io::stdout().lock(), "{text}");
        }
    }
}

impl Sink for CliSink {
    fn event(&self, event: Event) {
        let s = self.style;
        match event {
            Event::Log { level, message } => match level {
                Level::Info if message.starts_with("$ ") => self.line(&s.bold(&message)),
                Level::Info => self.line(&message),
                Level::Warn => self.line(&s.warn(&format!("warning: {message}"))),
                Level::Error => self.line(&s.bad(&format!("error: {message}"))),
            },
            Event::Output { line } => self.line(&format!("  {} {line}", s.dim("│"))),
            Event::PhaseFinished { .. }
            | Event::PhaseStarted { .. }
            | Event::Progress { .. }
            | Event::SnapshotWritten { .. }
            | Event::Dropped { .. } => {}
        }
    }
}

/// Ask for `yes` on a terminal; `false` on a non-terminal (the caller then only prints).
pub fn confirm(prompt: &str) -> color_eyre::Result<bool> {
    if !std::io::stdin().is_terminal() {
        return Ok(false);
    }
    print!("{prompt} Type `yes` to continue: ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(answer.trim() == "yes")
}

/// Open the journal in `<backup_path>/rewind` under the root.
pub fn open_journal(ctx: &Ctx) -> color_eyre::Result<Journal> {
    let inst = detect(
        &ctx.root,
        &DetectOptions {
            backup_dir: ctx.global.backup_dir.clone(),
            env: None,
        },
    )
    .wrap_err("detecting the GitLab installation")?;
    let dir = Journal::dir_for(&ctx.root.join(&inst.backup_path));
    Journal::open_in(&dir).wrap_err("opening Rewind's journal")
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub action: Action,
}

#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Show each service (gitlab-ctl status): state, pid, time in state.
    Status,
    /// Stop one service (or all): `gitlab-ctl stop [NAME]`.
    Stop {
        /// Service name (puma, sidekiq, ...); all services when omitted.
        name: Option<String>,
        /// Do it without asking.
        #[arg(long)]
        yes: bool,
    },
    /// Start one service (or all): `gitlab-ctl start [NAME]`.
    Start {
        /// Service name; all services when omitted.
        name: Option<String>,
    },
    /// After a restore: `gitlab-ctl reconfigure`, `gitlab-ctl start`, then GitLab's checks
    /// (`gitlab-rake gitlab:check SANITIZE=true`, `gitlab-rake gitlab:doctor:secrets`) with
    /// their output captured in the journal.
    Finish {
        /// Run without asking.
        #[arg(long)]
        yes: bool,
        /// Skip the two gitlab-rake checks.
        #[arg(long)]
        no_checks: bool,
    },
}

fn print_status(ctx: &Ctx, list: &[ServiceStatus]) {
    let s = ctx.style;
    println!(
        "{}",
        s.bold(&format!(
            "{:<20} {:<7} {:>8} {:>10}  note",
            "service", "state", "pid", "uptime"
        ))
    );
    for x in list {
        let state = match &x.state {
            State::Run => s.ok("run"),
            State::Down => s.warn("down"),
            State::Finish => s.warn("finish"),
            State::Fail => s.bad("fail"),
            State::Other(o) => s.bad(o),
        };
        let pad = 7usize.saturating_sub(match &x.state {
            State::Run => 3,
            State::Down => 4,
            State::Finish => 6,
            State::Fail => 4,
            State::Other(o) => o.len(),
        });
        let note = [x.normally.as_deref(), x.want.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(", ");
        println!(
            "{:<20} {state}{} {:>8} {:>10}  {}",
            x.service,
            " ".repeat(pad),
            x.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
            x.uptime_secs
                .map(|u| format!("{u}s"))
                .unwrap_or_else(|| "-".into()),
            s.dim(&note)
        );
    }
}

pub fn run(ctx: &Ctx, args: Args) -> color_eyre::Result<ExitCode> {
    let ctl = GitlabCtl::new(&ctx.root);
    match args.action {
        Action::Status => {
            let list = ctl.status()?;
            if ctx.json() {
                print_json(&list)?;
            } else {
                print_status(ctx, &list);
            }
            Ok(ExitCode::SUCCESS)
        }
        Action::Stop { name, yes } => {
            let cmd = ctl.stop_cmd(name.as_deref())?;
            let what = name.as_deref().unwrap_or("every GitLab service");
            if !yes {
                println!("Will run: {}", cmd.display());
                if !confirm(&format!("This stops {what}."))? {
                    println!("Not run. Pass --yes to stop {what} without asking.");
                    return Ok(ExitCode::SUCCESS);
                }
            }
            let journal = open_journal(ctx)?;
            let sink = CliSink::new(ctx);
            ctl.stop(&Runner::new(&sink, Some(&journal)), name.as_deref())?;
            Ok(ExitCode::SUCCESS)
        }
        Action::Finish { yes, no_checks } => finish(ctx, yes, no_checks),
        Action::Start { name } => {
            let journal = open_journal(ctx)?;
            let sink = CliSink::new(ctx);
            ctl.start(&Runner::new(&sink, Some(&journal)), name.as_deref())?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn finish(ctx: &Ctx, yes: bool, no_checks: bool) -> color_eyre::Result<ExitCode> {
    let s = ctx.style;
    let steps: Vec<_> = post_restore_steps(&ctx.root)
        .into_iter()
        .filter(|st| !no_checks || st.changes_host)
        .collect();
    println!("{}", s.warn(&format!("note: {SECRETS_WARNING}")));
    for c in config_backups(&ctx.root) {
        println!(
            "  configuration backup: {} ({} bytes, {})",
            c.path.display(),
            c.size,
            c.modified.as_deref().unwrap_or("time unknown")
        );
    }
    println!("{}", s.bold("After the restore:"));
    for (i, st) in steps.iter().enumerate() {
        println!("  {}. {}", i + 1, st.what);
        println!("     {}", s.dim(&st.cmd.display()));
    }
    if !yes && !confirm("This reconfigures and starts GitLab.")? {
        println!("Not run. Pass --yes to run these commands.");
        return Ok(ExitCode::SUCCESS);
    }
    let journal = open_journal(ctx)?;
    let sink = CliSink::new(ctx);
    let runner = Runner::new(&sink, Some(&journal));
    let mut failed_checks = Vec::new();
    for st in &steps {
        if st.changes_host {
            runner.run(&st.step, &st.cmd)?;
        } else {
            // A check that fails is reported, not fatal: its output says what to fix.
            let f = runner.run_unchecked(&st.step, &st.cmd)?;
            journal.note(
                &st.step,
                "output captured",
                serde_json::json!({ "exit_code": f.code, "lines": f.lines }),
            )?;
            if !f.success() {
                failed_checks.push(st.cmd.display());
            }
        }
    }
    if failed_checks.is_empty() {
        println!(
            "{}",
            s.ok("GitLab is reconfigured and started; checks passed.")
        );
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "{}",
            s.bad(&format!(
                "These checks reported problems (output above and in {}): {}",
                journal.path().display(),
                failed_checks.join("; ")
            ))
        );
        Ok(ExitCode::FAILURE)
    }
}
