//! Command-line interface (clap derive). Each subcommand's arguments live with its
//! implementation in `commands/`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::commands;

/// Rewind: recover a GitLab instance after a failed upgrade.
///
/// Without a subcommand, starts the wizard on a terminal (on a non-terminal, prints the plan).
#[derive(Debug, Parser)]
#[command(name = "rewind", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOpts,
    #[command(flatten)]
    pub wizard: WizardOpts,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The wizard's options (`rewind` without a subcommand).
#[derive(Debug, Clone, Default, Args)]
pub struct WizardOpts {
    /// Wizard: restore in place (GitLab's way: safety snapshot, drop, load) even where
    /// beside-and-swap can run.
    #[arg(long)]
    pub in_place: bool,
    /// Wizard: the administrator that creates and renames databases for beside-and-swap
    /// (default: Omnibus's gitlab-psql through the embedded psql).
    #[arg(long, value_name = "OSUSER[:ROLE]")]
    pub db_admin: Option<String>,
}

/// Options every command honours.
#[derive(Debug, Clone, Args)]
pub struct GlobalOpts {
    /// Prefix for every host path Rewind reads or writes (a sandbox tree made like a GitLab host).
    #[arg(long, global = true, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// Machine-readable output: one JSON document on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// Backup directory (host path), instead of the one GitLab is configured with.
    #[arg(long, global = true, value_name = "DIR")]
    pub backup_dir: Option<PathBuf>,
    /// Connect to this database instead of the one in GitLab's database.yml
    /// (postgresql://user@host:port/db?sslmode=verify-full&sslrootcert=FILE or key=value
    /// form; libpq's parameters and PGSSL* variables apply).
    #[arg(
        long,
        global = true,
        value_name = "URL",
        env = "REWIND_DATABASE_URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// Disable colours (also honoured: the NO_COLOR environment variable).
    #[arg(long, global = true)]
    pub no_color: bool,
    /// On error, print every cause and where it came from, not one line.
    #[arg(long, short = 'v', global = true)]
    pub verbose: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Restore a backup's database(s): by default into a new database beside the live one,
    /// verified, then swapped in by renaming (the live one is kept); in place (snapshot,
    /// drop, load) when that cannot run or with --in-place. Needs --confirm-drop <dbname>;
    /// --dry-run prints the plan and the strategy.
    Restore(commands::restore::Args),
    /// Go back to the failed upgrade's database: swap the kept database back in (beside),
    /// or restore the safety snapshot (in place). Needs --confirm <dbname>.
    Undo(commands::undo::Args),
    /// List what recoveries kept (databases, safety snapshots, moved-aside files) with
    /// sizes; --remove NAME removes one.
    Cleanup(commands::cleanup::Args),
    /// Show what Rewind detects on this host: installation, version, databases, backups.
    Detect(commands::detect::Args),
    /// List the backups in the backup directory, newest first.
    Backups(commands::backups::Args),
    /// Show one backup's metadata and members; --verify checks it end to end.
    Inspect(commands::inspect::Args),
    /// Mark a migration complete in schema_migrations, as GitLab's
    /// gitlab:db:mark_migration_complete does (journaled).
    MarkMigration(commands::mark_migration::Args),
    /// Repair a failed db:migrate: read its log, assess, mark complete (confirmed), migrate
    /// again, until the migrations run clean.
    Repair(commands::repair::Args),
    /// Print the whole recovery plan for this host with the exact commands (changes nothing).
    Plan(commands::plan::Args),
    /// Install the exact GitLab version of a backup (stop Puma/Sidekiq, install, reconfigure, confirm).
    Rollback(commands::rollback::Args),
    /// GitLab's services (gitlab-ctl): status, stop, start.
    Services(commands::services::Args),
    /// The configuration archive nearest before the data backup, what differs from
    /// /etc/gitlab (gitlab-secrets.json key names, never values), and --restore of
    /// gitlab-secrets.json and gitlab.rb from it.
    Config(commands::config::Args),
    /// Build a disposable GitLab-like host tree with a 16.10.3 backup under --root (for trying
    /// Rewind and for benchmarks).
    Sandbox(commands::sandbox::Args),
    /// Before the next upgrade: what the live database holds that the backup does not
    /// create (tables, columns, indexes, schemas, newer migrations), with advice.
    CheckLeftovers(commands::check_leftovers::Args),
    /// Is a rollback needed? Classify the failed db:migrate/reconfigure output and compare
    /// the host with the newest backup: "a rollback is needed" or "fix forward: ...".
    Triage(commands::triage::Args),
    /// Before the restore: write the rows created since the backup to a private directory
    /// under the backup directory (CSV + manifest); after it, --import DIR brings them back
    /// (conflicting and orphaned rows skipped and listed).
    Salvage(commands::salvage::Args),
    /// Rehearse a whole recovery on a disposable sandbox host (see --list for scenarios);
    /// with --backup ID|PATH, test that one of this host's backups restores, and time it.
    Drill(commands::drill::Args),
    /// The drill's stand-in for `gitlab-rake db:migrate` (used by the drill only).
    #[command(hide = true, name = "drill-migrate")]
    DrillMigrate,
    /// The drill's stand-in for `gitaly-backup` (used by the drill only).
    #[command(hide = true, name = "drill-gitaly-backup")]
    DrillGitalyBackup {
        /// gitaly-backup's own arguments (`restore -path ... -layout manifest ...`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// The drill's stand-in for the `gitlab-rake` checks (used by the drill only).
    #[command(hide = true, name = "drill-rake")]
    DrillRake {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

impl Command {
    /// Whether the command can change the host. An error from one that cannot has changed
    /// nothing, whatever it is (exit code 3, see `exit`).
    pub fn may_change_host(&self) -> bool {
        match self {
            Command::Detect(_)
            | Command::Backups(_)
            | Command::Inspect(_)
            | Command::Plan(_)
            | Command::CheckLeftovers(_)
            | Command::Triage(_) => false,
            Command::Restore(a) => !a.dry_run,
            Command::Rollback(a) => !a.dry_run,
            // A restore test changes nothing on the host: what it makes is its own.
            Command::Drill(a) => !a.list && a.backup.is_none(),
            Command::Config(a) => a.restore,
            Command::Salvage(a) => !a.dry_run,
            Command::Undo(a) => !a.dry_run,
            Command::Cleanup(a) => !a.remove.is_empty(),
            _ => true,
        }
    }
}
