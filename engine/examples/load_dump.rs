//! Load a plain pg_dump script (optionally gzip'd) with `restore::load`, for
//! `bench/restore.sh`: `load_dump DUMP[.gz] CONNINFO [--jobs N] [--continue-on-error]`.
//! Prints phase timings to stderr and the report's summary as JSON to stdout.

use std::fs::File;
use std::io::{BufReader, Read};
use std::process::ExitCode;

use rewind_engine::pg::conn::ConnSpec;
use rewind_engine::progress::Event;
use rewind_engine::restore::load::{load_dump, LoadOptions};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!(
            "usage: load_dump DUMP[.gz] CONNINFO [--jobs N] [--continue-on-error] [--sync-commit] [--mwm SIZE]"
        );
        return ExitCode::from(2);
    }
    let spec = match ConnSpec::from_url(&args[1]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let mut opts = LoadOptions::new(spec);
    let mut i = 2;
    while i < args.len() {
        match args[i].as_str() {
            "--jobs" => {
                opts.jobs = args.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or(2);
                i += 1;
            }
            "--continue-on-error" => opts.continue_on_error = true,
            "--sync-commit" => opts.async_commit = false,
            "--pmw" => {
                opts.parallel_maintenance_workers = args.get(i + 1).and_then(|v| v.parse().ok());
                i += 1;
            }
            "--mwm" => {
                opts.maintenance_work_mem = args.get(i + 1).cloned();
                i += 1;
            }
            other => {
                eprintln!("unknown option {other}");
                return ExitCode::from(2);
            }
        }
        i += 1;
    }
    let mut file = match File::open(&args[0]) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{}: {e}", args[0]);
            return ExitCode::from(2);
        }
    };
    let mut magic = [0u8; 2];
    let gz = file.read_exact(&mut magic).is_ok() && magic == [0x1f, 0x8b];
    let file = match File::open(&args[0]) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{}: {e}", args[0]);
            return ExitCode::from(2);
        }
    };
    let input: Box<dyn Read> = if gz {
        Box::new(flate2::read::MultiGzDecoder::new(BufReader::with_capacity(
            256 * 1024,
            file,
        )))
    } else {
        Box::new(file)
    };
    let reader = BufReader::with_capacity(1 << 20, input);
    let start = std::time::Instant::now();
    let sink = move |e: Event| match e {
        Event::PhaseStarted { phase, .. } => {
            eprintln!(
                "[{:7.2}s] {} started",
                start.elapsed().as_secs_f64(),
                phase.label()
            )
        }
        Event::Log { message, .. } => eprintln!("{message}"),
        _ => {}
    };
    match load_dump(reader, &opts, &sink) {
        Ok(report) => {
            for p in &report.phases {
                eprintln!(
                    "{:12} {:8.2}s {:6} statements",
                    p.phase.label(),
                    p.seconds,
                    p.statements
                );
            }
            for c in &report.connections {
                eprintln!(
                    "{:12} connection {} busy {:7.2}s of {:7.2}s, {} units",
                    c.phase.label(),
                    c.slot + 1,
                    c.busy_seconds,
                    c.wall_seconds,
                    c.units
                );
            }
            let rows: u64 = report.tables.iter().map(|t| t.rows).sum();
            let summary = serde_json::json!({
                "seconds": report.seconds,
                "bytes": report.bytes,
                "tables": report.tables.len(),
                "split_tables": report.tables.iter().filter(|t| t.split).count(),
                "rows": rows,
                "phases": report.phases,
                "ignored": report.ignored.len(),
                "failed": report.failed.len(),
                "jobs": report.jobs,
                "connections": report.connections,
            });
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
