//! `rewind repair --log FILE [--yes] [--migrate-cmd WORD ...]`: read the failed migrate
//! log, assess the failed migration against the database, and (confirmed by typing the
//! version, or with `--yes`) mark it complete and run the migrations again, round after
//! round, until they succeed or marking cannot help. Without `--yes` and without a terminal
//! on stdin, it prints the assessment and writes nothing.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use color_eyre::eyre::WrapErr;
use rewind_engine::detect::detect;
use rewind_engine::detect::Installation;
use rewind_engine::migrate::assess::{assess, Assessment};
use rewind_engine::migrate::describe::{facts, gitlab_mark_command_for, Tone};
use rewind_engine::migrate::log::{self, Failure, LogReport};
use rewind_engine::migrate::repair::{
    default_migrate_cmd, migrate_cmd_for, migrate_cmd_from_args, repair, AssumeYes, Confirm,
    Databases, Decision, RepairOptions,
};
use rewind_engine::progress::Event;

use super::mark_migration::{connections, detect_options, open_journal};
use super::Ctx;
use crate::output::{print_json, Style};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The failed migration output: a log file, or `-` for stdin. Default: the newest
    /// gitlab-rails-db-migrate-*.log in GitLab's Rails log directory.
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Mark and migrate without asking (for scripts). Without it, Rewind asks on a terminal
    /// and only prints the assessment elsewhere.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// The migration command, as argv words: repeat for each word
    /// (`--migrate-cmd /opt/gitlab/bin/gitlab-rake --migrate-cmd db:migrate`), or give one
    /// string split at whitespace (no shell). Default: `gitlab-rake db:migrate`.
    #[arg(long = "migrate-cmd", value_name = "WORD", allow_hyphen_values = true)]
    pub migrate_cmd: Vec<String>,
    /// The database to use when the log does not say (`main`, `ci`).
    #[arg(long, value_name = "main|ci")]
    pub database: Option<String>,
    /// Stop after this many rounds.
    #[arg(long, default_value_t = 50)]
    pub max_rounds: usize,
}

fn read_log(ctx: &Ctx, args: &Args) -> color_eyre::Result<(String, LogReport)> {
    match &args.log {
        Some(p) if p.as_os_str() == "-" => {
            let stdin = std::io::stdin();
            let r =
                log::parse_reader(stdin.lock()).wrap_err("reading the migrate log from stdin")?;
            Ok(("stdin".into(), r))
        }
        Some(p) => Ok((p.display().to_string(), log::parse_file(p)?)),
        None => {
            let inst = detect(&ctx.root, &detect_options(ctx))
                .wrap_err("detecting the GitLab installation")?;
            let path = log::latest_omnibus_log(&ctx.root, inst.log_dir.as_deref())?;
            Ok((path.display().to_string(), log::parse_file(&path)?))
        }
    }
}

/// Print an assessment for people: the engine's facts, the same the wizard draws.
pub fn print_assessment(s: Style, f: &Failure, a: &Assessment, inst: Option<&Installation>) {
    println!("{}", s.bold("Failed migration"));
    let gitlab = a
        .version
        .as_deref()
        .map(|v| gitlab_mark_command_for(inst, &a.database, v));
    for fact in facts(Some(f), a, gitlab.as_deref()) {
        let text = match fact.tone {
            Tone::Plain => fact.text,
            Tone::Strong => s.bold(&fact.text),
            Tone::Good => s.ok(&fact.text),
            Tone::Bad => s.bad(&fact.text),
            Tone::Warn => s.warn(&fact.text),
            Tone::Dim => s.dim(&fact.text),
        };
        let label = if fact.label.is_empty() {
            String::new()
        } else {
            format!("{}:", fact.label)
        };
        println!("  {label:<12} {text}");
    }
}

struct Ask {
    style: Style,
    json: bool,
    interactive: bool,
    cmd: String,
}

impl Confirm for Ask {
    fn confirm(&mut self, a: &Assessment, _sql: &str) -> Decision {
        let Some(v) = a.version.clone() else {
            return Decision::Stop;
        };
        if !self.json {
            println!();
            // The failure is in the assessment; print its fields.
            println!(
                "{} {} ({}) on database {}: {}",
                self.style.bold("Round:"),
                v,
                a.migration_name.as_deref().unwrap_or("?"),
                a.database,
                a.message.as_deref().unwrap_or("")
            );
            println!("  verdict:     {}", self.style.ok("mark complete"));
            println!("  why:         {}", a.reason);
            for n in &a.notes {
                println!("  note:        {n}");
            }
            if let Some(sql) = a.mark_sql() {
                println!("  SQL:         {sql}");
            }
            println!("  then runs:   {}", self.cmd);
        }
        if !self.interactive {
            return Decision::Mark;
        }
        eprint!(
            "Type the version {v} to mark it complete and migrate again (anything else stops): "
        );
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        match std::io::stdin().lock().read_line(&mut line) {
            Ok(n) if n > 0 && line.trim() == v => Decision::Mark,
            _ => Decision::Stop,
        }
    }
}

pub fn run(ctx: &Ctx, args: Args) -> color_eyre::Result<ExitCode> {
    let (source, report) = read_log(ctx, &args)?;
    let s = ctx.style;
    let Some(failure) = report.first_failure().cloned() else {
        if ctx.json() {
            print_json(
                &serde_json::json!({"log": source, "parsed": report, "summary": report.summary()}),
            )?;
        } else {
            println!("{source}: {}", report.summary());
        }
        return Ok(ExitCode::SUCCESS);
    };
    if !ctx.json() {
        println!("{source}: {}", report.summary());
        println!();
    }
    let wanted = failure.database.clone().or_else(|| args.database.clone());
    let choice = wanted.clone().unwrap_or_else(|| "main".into());
    // Every connection: later rounds may fail on another database than the first.
    let inst = if ctx.global.database_url.is_some() {
        detect(&ctx.root, &detect_options(ctx)).ok()
    } else {
        Some(
            detect(&ctx.root, &detect_options(ctx))
                .wrap_err("detecting the GitLab installation")?,
        )
    };
    let conns = if ctx.global.database_url.is_some() {
        let name = if choice == "ci" { "ci" } else { "main" };
        connections(ctx, name)?
    } else {
        inst.as_ref()
            .map(|i| i.databases.clone())
            .unwrap_or_default()
    };
    let mut dbs = Databases::new(conns);

    let stdin_tty =
        std::io::stdin().is_terminal() && args.log.as_ref().is_none_or(|p| p.as_os_str() != "-");
    if !args.yes && !stdin_tty {
        // Assessment only: read the database, write nothing.
        let (name, client) = dbs.client(wanted.as_deref())?;
        let a = assess(&failure, &name, client)?;
        if ctx.json() {
            print_json(&serde_json::json!({
                "log": source,
                "summary": report.summary(),
                "failure": failure,
                "assessment": a,
                "written": false,
            }))?;
        } else {
            print_assessment(s, &failure, &a, inst.as_ref());
            println!();
            println!(
                "Nothing was written: stdin is not a terminal and --yes was not given. Run on a terminal to confirm each version, or add --yes."
            );
        }
        return Ok(ExitCode::SUCCESS);
    }

    let argv = if args.migrate_cmd.is_empty() {
        match &inst {
            Some(i) => migrate_cmd_for(&ctx.root, i),
            None => default_migrate_cmd(&ctx.root),
        }
    } else {
        migrate_cmd_from_args(&args.migrate_cmd)
    };
    let cmd_shown = argv
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let journal = open_journal(ctx)?;
    if !ctx.json() {
        // Show the first assessment in full before anything is written.
        let (name, client) = dbs.client(wanted.as_deref())?;
        let a = assess(&failure, &name, client)?;
        print_assessment(s, &failure, &a, inst.as_ref());
    }
    let json = ctx.json();
    let sink = move |e: Event| match e {
        Event::Output { line } => {
            if json {
                eprintln!("{line}");
            } else {
                println!("  | {line}");
            }
        }
        Event::Log { message, .. } => {
            if json {
                eprintln!("{message}");
            } else {
                println!("{}", s.ok(&message));
            }
        }
        _ => {}
    };
    // The engine's repair holds the host lock while it marks and migrates.
    let opts = RepairOptions {
        migrate_cmd: argv,
        max_rounds: args.max_rounds,
        host: Some((
            ctx.root.clone(),
            rewind_engine::recovery::lock::invocation(),
        )),
    };
    let mut ask = Ask {
        style: s,
        json,
        interactive: !args.yes,
        cmd: cmd_shown,
    };
    let mut yes = AssumeYes;
    let confirm: &mut dyn Confirm = if args.yes && json { &mut yes } else { &mut ask };
    let result = repair(
        report.clone(),
        &mut dbs,
        &opts,
        confirm,
        Some(&journal),
        &sink,
    )?;
    if json {
        print_json(&serde_json::json!({
            "log": source,
            "summary": report.summary(),
            "report": result,
            "journal": journal.path(),
        }))?;
    } else {
        println!();
        if let Some(last) = result.rounds.last() {
            if last.marked.is_none() && result.rounds.len() > 1 {
                print_assessment(s, &last.failure, &last.assessment, inst.as_ref());
                println!();
            }
        }
        let line = &result.message;
        if result.succeeded() {
            println!("{}", s.ok(line));
        } else {
            println!("{}", s.bad(line));
        }
        println!("Journal: {}", journal.path().display());
    }
    Ok(if result.succeeded() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
