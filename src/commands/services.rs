//! `rewind services status|stop|start [NAME]`: GitLab's services under `gitlab-ctl`.
//!
//! Also home of [`CliSink`], the progress sink the host commands (`rollback`, `services`,
//! `plan`) print through.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use color_eyre::eyre::WrapErr;
use rewind_engine::backup::catalogue;
use rewind_engine::detect::{detect, DetectOptions, InstallKind};
use rewind_engine::exec::Runner;
use rewind_engine::hints::{self, MessageClass};
use rewind_engine::journal::Journal;
use rewind_engine::progress::{Event, Level, Sink};
use rewind_engine::recovery::config;
use rewind_engine::recovery::postcheck::{
    self, fix_for, parse_doctor_secrets, DoctorSecrets, RESTORE_SECRETS_FIRST,
};
use rewind_engine::services::{
    post_restore_steps, GitlabCtl, ServiceStatus, State, SECRETS_WARNING,
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
            | Event::Dropped { .. }
            | Event::Worker { .. }
            | Event::TableLoaded { .. } => {}
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
    /// After a restore: the configuration archive compared (and with --restore-config put
    /// back), `gitlab-ctl reconfigure`, `gitlab-ctl start`, waiting for /-/readiness, then
    /// GitLab's checks (`gitlab:check SANITIZE=true`, `gitlab:doctor:secrets` read into a
    /// table with GitLab's fix per model) with their output captured in the journal.
    Finish {
        /// Run without asking.
        #[arg(long)]
        yes: bool,
        /// Skip the gitlab-rake checks.
        #[arg(long)]
        no_checks: bool,
        /// First restore gitlab-secrets.json and gitlab.rb from the configuration archive
        /// nearest before the newest backup, when they differ (see `rewind config`).
        #[arg(long)]
        restore_config: bool,
        /// Also run gitlab:artifacts:check, gitlab:lfs:check and gitlab:uploads:check.
        #[arg(long)]
        integrity: bool,
        /// Also rebuild authorized_keys (`gitlab-rake gitlab:shell:setup`), when in use.
        #[arg(long)]
        shell_setup: bool,
        /// Seconds to wait for GitLab to answer /-/readiness before the checks (0: do not wait).
        #[arg(long, default_value_t = 300)]
        ready_timeout: u64,
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
            let _lock = ctx.host_lock()?;
            let journal = open_journal(ctx)?;
            let sink = CliSink::new(ctx);
            ctl.stop(&Runner::new(&sink, Some(&journal)), name.as_deref())?;
            Ok(ExitCode::SUCCESS)
        }
        Action::Finish {
            yes,
            no_checks,
            restore_config,
            integrity,
            shell_setup,
            ready_timeout,
        } => finish(
            ctx,
            &FinishOpts {
                yes,
                no_checks,
                restore_config,
                integrity,
                shell_setup,
                ready_timeout,
            },
        ),
        Action::Start { name } => {
            let _lock = ctx.host_lock()?;
            let journal = open_journal(ctx)?;
            let sink = CliSink::new(ctx);
            ctl.start(&Runner::new(&sink, Some(&journal)), name.as_deref())?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `services finish` options.
pub struct FinishOpts {
    pub yes: bool,
    pub no_checks: bool,
    pub restore_config: bool,
    pub integrity: bool,
    pub shell_setup: bool,
    pub ready_timeout: u64,
}

/// The doctor:secrets table: models with failures and GitLab's fix for each.
pub fn print_doctor(ctx: &Ctx, d: &DoctorSecrets, kind: Option<InstallKind>) {
    let s = ctx.style;
    if !d.done {
        println!(
            "{}",
            s.bad(
                "gitlab:doctor:secrets did not run to its end (no `Done!`): read its output above"
            )
        );
        return;
    }
    if d.ok() {
        println!(
            "{}",
            s.ok(&format!(
                "gitlab:doctor:secrets: every encrypted value decrypts ({} models checked)",
                d.models.len()
            ))
        );
        return;
    }
    println!(
        "{}",
        s.bad(&format!(
            "gitlab:doctor:secrets: {} row(s) cannot be decrypted with this host's gitlab-secrets.json",
            d.total.unwrap_or_else(|| d.failing().map(|m| m.failures).sum())
        ))
    );
    println!(
        "{}",
        s.bold(&format!(
            "  {:<28} {:>8}  what breaks / GitLab's fix",
            "model", "rows"
        ))
    );
    for m in d.failing() {
        let f = fix_for(&m.model);
        println!("  {:<28} {:>8}  {}", m.model, m.failures, f.breaks);
        println!("  {:<28} {:>8}  {}: {}", "", "", f.section, s.dim(f.fix));
    }
    // GitLab's report above; the next step for this installation kind.
    let hint = hints::hint(kind, &MessageClass::SecretsUndecryptable)
        .unwrap_or_else(|| RESTORE_SECRETS_FIRST.to_string());
    println!("  {}", s.warn(&hint));
}

fn finish(ctx: &Ctx, o: &FinishOpts) -> color_eyre::Result<ExitCode> {
    let s = ctx.style;
    let steps: Vec<_> = post_restore_steps(&ctx.root)
        .into_iter()
        .filter(|st| st.changes_host)
        .collect();
    let checks: Vec<_> = if o.no_checks {
        Vec::new()
    } else {
        postcheck::checks(&ctx.root)
            .into_iter()
            .filter(|c| {
                c.default || (o.integrity && !c.changes_host) || (o.shell_setup && c.changes_host)
            })
            .collect()
    };
    println!("{}", s.warn(&format!("note: {SECRETS_WARNING}")));
    // The configuration archive that matches the newest backup, compared with /etc/gitlab.
    let inst = detect(
        &ctx.root,
        &DetectOptions {
            backup_dir: ctx.global.backup_dir.clone(),
            env: None,
        },
    )
    .ok();
    let before = inst.as_ref().and_then(|i| {
        catalogue::list_backups(&ctx.root.join(&i.backup_path), i.version.as_ref())
            .ok()
            .and_then(|l| l.into_iter().find(|b| b.error.is_none()))
            .and_then(|b| b.backup_created_at())
    });
    for c in config::list(&ctx.root, before) {
        println!(
            "  configuration backup: {} ({} bytes, {}){}",
            c.path.display(),
            c.size,
            c.created.as_deref().unwrap_or("time unknown"),
            if c.nearest {
                " ← nearest before the backup"
            } else {
                ""
            }
        );
    }
    let mut config_restore = None;
    match config::choose(&ctx.root, None, before).and_then(|a| config::read_archive(&ctx.root, &a))
    {
        Ok(contents) => {
            let d = config::diff(&ctx.root, &contents);
            if d.would_restore.is_empty() {
                println!(
                    "  gitlab-secrets.json and gitlab.rb match {}",
                    contents.archive.name
                );
            } else {
                let keys = d
                    .secrets
                    .as_ref()
                    .map(|sd| {
                        format!(
                            " (gitlab-secrets.json: {} different, {} missing, {} only live; `rewind config` lists the key names)",
                            sd.different.len(),
                            sd.missing_live.len(),
                            sd.only_live.len()
                        )
                    })
                    .unwrap_or_default();
                println!(
                    "{}",
                    s.warn(&format!(
                        "  {} differ from {}{keys}",
                        d.would_restore.join(" and "),
                        contents.archive.name
                    ))
                );
                if o.restore_config {
                    config_restore = Some((contents, d.would_restore.clone()));
                } else {
                    println!("  (--restore-config restores them before reconfigure)");
                }
            }
        }
        Err(e) => println!("  {}", s.dim(&e.to_string())),
    }
    println!("{}", s.bold("After the restore:"));
    let mut n = 0;
    if let Some((c, names)) = &config_restore {
        n += 1;
        println!(
            "  {n}. restore {} from {} (live files moved aside)",
            names.join(" and "),
            c.archive.path.display()
        );
    }
    for st in &steps {
        n += 1;
        println!("  {n}. {}", st.what);
        println!("     {}", s.dim(&st.cmd.display()));
    }
    if o.ready_timeout > 0 {
        n += 1;
        println!(
            "  {n}. wait up to {} s for GitLab to answer /-/readiness",
            o.ready_timeout
        );
    }
    for c in &checks {
        n += 1;
        println!("  {n}. {}", c.what);
        println!("     {}", s.dim(&c.cmd.display()));
    }
    if !o.yes && !confirm("This reconfigures and starts GitLab.")? {
        println!("Not run. Pass --yes to run these commands.");
        return Ok(ExitCode::SUCCESS);
    }
    let _lock = ctx.host_lock()?;
    let journal = open_journal(ctx)?;
    let sink = CliSink::new(ctx);
    let runner = Runner::new(&sink, Some(&journal));
    if let Some((c, names)) = &config_restore {
        config::restore(&ctx.root, c, names, &journal, &sink)?;
    }
    for st in &steps {
        runner.run(&st.step, &st.cmd)?;
    }
    if o.ready_timeout > 0 {
        journal.begin(
            "post.readiness",
            "wait for GitLab to answer /-/readiness",
            serde_json::json!({"timeout_secs": o.ready_timeout}),
        )?;
        match postcheck::wait_ready(
            &ctx.root,
            std::time::Duration::from_secs(o.ready_timeout),
            std::time::Duration::from_secs(2),
            &sink,
            None,
        ) {
            Ok(r) => {
                journal.end("post.readiness", "ok", serde_json::to_value(&r)?)?;
                println!(
                    "{}",
                    s.ok(&format!(
                        "GitLab answers ready ({}, after {} s)",
                        r.endpoint,
                        r.waited_ms / 1000
                    ))
                );
            }
            Err(e) => {
                journal.end(
                    "post.readiness",
                    "failed",
                    serde_json::json!({"error": e.to_string()}),
                )?;
                return Err(e.into());
            }
        }
    }
    let mut failed_checks = Vec::new();
    // gitlab:check itself reported problems (its hint follows the list).
    let mut check_failed = false;
    for c in &checks {
        // A check that fails is reported, not fatal: its output says what to fix.
        let f = runner.run_unchecked(c.step, &c.cmd)?;
        journal.note(
            c.step,
            "output captured",
            serde_json::json!({ "exit_code": f.code, "lines": f.lines }),
        )?;
        let mut ok = f.success();
        if c.step == "post.doctor_secrets" {
            let d = parse_doctor_secrets(&f.lines.join("\n"));
            journal.note(
                c.step,
                if d.ok() {
                    "every value decrypts"
                } else {
                    "values that cannot be decrypted"
                },
                serde_json::to_value(&d)?,
            )?;
            print_doctor(ctx, &d, inst.as_ref().and_then(|i| i.kind));
            ok = ok && d.ok();
        }
        if !ok {
            failed_checks.push(c.cmd.display());
            check_failed |= c.step == "post.check";
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
        if let Some(h) = hints::hint(
            inst.as_ref().and_then(|i| i.kind),
            &MessageClass::CheckFailed,
        )
        .filter(|_| check_failed)
        {
            println!("{h}");
        }
        Ok(crate::exit::code(crate::exit::ACT))
    }
}
