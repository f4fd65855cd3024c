//! `rewind sandbox`: build a disposable GitLab-like host tree with a 16.10.3 backup, for
//! trying Rewind's read-only commands and for benchmarks (`--scale`).
//!
//! The databases live in a throwaway PostgreSQL cluster that exists only while the command
//! runs; what stays under `--root` is the tree: version files, `gitlab.rb`, `database.yml`,
//! file components, logs and the backup archive.

use std::process::ExitCode;
use std::time::Instant;

use color_eyre::eyre::{bail, WrapErr};
use rewind_engine::pg::cluster::{ClusterAuth, ClusterOptions, PeerUsers, TempCluster};
use rewind_engine::sandbox::{self, backup::Compression, data::DataSpec, upgrade};
use serde::Serialize;

use super::Ctx;
use crate::output::{human_bytes, print_json};

/// Compressor of the backup's dumps and component tarballs.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum CompressionArg {
    /// gzip -1 (GitLab's default)
    Gzip,
    /// zstd under the `.gz` name (a COMPRESS_CMD)
    Zstd,
    /// plain (COMPRESS_CMD=cat), still named `.gz`
    None,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Rows per table grow linearly with this: about 1.9 MB of plain dump per unit (1 builds in
    /// seconds; ~550 gives a 1 GB dump).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub scale: u32,
    /// Seed of the data generator.
    #[arg(long, default_value_t = DataSpec::default().seed)]
    pub seed: u64,
    /// Compression of the dumps and component tarballs.
    #[arg(long, value_enum, default_value_t = CompressionArg::Gzip)]
    pub compression: CompressionArg,
    /// A separate ci database (`db/ci_database.sql.gz`).
    #[arg(long)]
    pub decomposed: bool,
    /// After the backup, mark 16.11.0-ee as installed and write the failed migrate log.
    #[arg(long)]
    pub failed_upgrade: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    root: String,
    archive: String,
    backup_id: String,
    archive_bytes: u64,
    rows: u64,
    seconds: f64,
    installed_version: String,
    migrate_log: Option<String>,
}

pub fn run(ctx: &Ctx, args: Args) -> color_eyre::Result<ExitCode> {
    if ctx.root.is_system() {
        bail!("`rewind sandbox` builds a GitLab-like tree and needs --root DIR (an empty or new directory); it never writes into /");
    }
    let base = ctx.root.base().to_path_buf();
    if base.exists() {
        let non_empty = std::fs::read_dir(&base)
            .wrap_err_with(|| format!("reading {}", base.display()))?
            .next()
            .is_some();
        if non_empty {
            bail!(
                "{} is not empty; give --root a new or empty directory",
                base.display()
            );
        }
    }
    let started = Instant::now();
    // Omnibus's database model with accounts that already exist (none is created).
    let users = PeerUsers::existing().wrap_err("choosing the OS users of the peer map")?;
    let cluster = TempCluster::start_with(ClusterOptions {
        auth: Some(ClusterAuth::OmnibusPeer(users)),
        ..ClusterOptions::default()
    })
    .wrap_err("starting a throwaway PostgreSQL cluster")?;
    let spec = sandbox::SandboxSpec {
        root: base.clone(),
        data: DataSpec {
            scale: args.scale,
            seed: args.seed,
        },
        compression: match args.compression {
            CompressionArg::Gzip => Compression::Gzip,
            CompressionArg::Zstd => Compression::Zstd,
            CompressionArg::None => Compression::None,
        },
        decomposed: args.decomposed,
        files_per_component: 6,
    };
    let sb = sandbox::build_sandbox(&cluster, &spec).wrap_err("building the sandbox")?;
    // gitlab-rake for `rewind drill --backup`'s secrets check (and the drill's db:migrate).
    let rewind = std::env::current_exe().wrap_err("finding the Rewind binary")?;
    rewind_engine::packages::sandbox_repo::write_gitlab_rake_standin(&sb.layout.root, &rewind)
        .wrap_err("writing the gitlab-rake stand-in")?;
    let mut installed = sandbox::BASE_VERSION.to_string();
    let mut migrate_log = None;
    if args.failed_upgrade {
        let log = upgrade::mark_upgraded(&sb.layout.root)?;
        installed = sandbox::UPGRADE_VERSION.to_string();
        migrate_log = Some(sb.layout.root.host_path(&log).display().to_string());
    }
    drop(cluster);
    let report = Report {
        root: base.display().to_string(),
        archive: sb.layout.root.host_path(&sb.archive).display().to_string(),
        backup_id: sb.backup_id.clone(),
        archive_bytes: std::fs::metadata(&sb.archive).map(|m| m.len()).unwrap_or(0),
        rows: sb.stats.total_rows(),
        seconds: started.elapsed().as_secs_f64(),
        installed_version: installed,
        migrate_log,
    };
    if ctx.json() {
        print_json(&report)?;
    } else {
        let s = ctx.style;
        println!("{}", s.bold("Sandbox built"));
        println!("  root:       {}", report.root);
        println!("  installed:  {}", report.installed_version);
        println!(
            "  backup:     {} ({})",
            report.archive,
            human_bytes(report.archive_bytes)
        );
        println!("  rows:       {}", report.rows);
        if let Some(l) = &report.migrate_log {
            println!("  migrate log: {l}");
        }
        println!("  time:       {:.1}s", report.seconds);
        println!(
            "{}",
            s.dim(
                "The sandbox's PostgreSQL cluster is gone; database.yml points at its old socket."
            )
        );
    }
    Ok(ExitCode::SUCCESS)
}
