//! The sandbox: a disposable GitLab-like installation built from real parts, used by
//! `rewind drill` at run time and by the test suite.
//!
//! - [`schema`]: a GitLab-like database schema "as of 16.10.3" (`assets/sandbox/schema.sql`,
//!   embedded in the binary).
//! - [`data`]: a deterministic, seeded data generator with a scale knob, loaded with `COPY`.
//! - [`upgrade`]: "a failed upgrade to 16.11.0" applied on top of a live database, and the
//!   `db:migrate` logs such an upgrade leaves.
//! - [`backup`]: GitLab-format backup archives made the way GitLab makes them (`pg_dump
//!   --clean --if-exists` through gzip -1 or zstd into `db/database.sql.gz`, `tar -C dir -cf
//!   - .` components, `backup_information.yml`, the outer tar).
//! - [`host`]: an Omnibus-like file tree (`VERSION`, version manifest, `gitlab.rb`,
//!   `database.yml`, backup, component and log directories).
//! - [`compare`]: database and file-tree fingerprints with readable diffs.
//! - [`build`]: all of the above in one call on a running cluster ([`build::build_sandbox`]).
//!
//! # Example
//!
//! The whole sandbox in one call (what `rewind drill` starts from):
//!
//! ```no_run
//! use rewind_engine::pg::cluster::TempCluster;
//! use rewind_engine::sandbox::{self, compare, upgrade, SandboxSpec};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let cluster = TempCluster::start()?; // keep alive while the sandbox is used
//! let root = tempfile::tempdir()?;
//! let sb = sandbox::build_sandbox(&cluster, &SandboxSpec::new(root.path()))?;
//! // sb.archive: <root>/var/opt/gitlab/backups/1713607872_2024_04_20_16.10.3-ee_gitlab_backup.tar
//! let expected = compare::fingerprint(&sb.main)?; // what a restore must give back
//!
//! // Break it like a failed upgrade to 16.11.0: database and host side.
//! let mut client = sb.main.connect()?;
//! upgrade::apply_failed_upgrade(&mut client)?;
//! upgrade::mark_upgraded(&sb.layout.root)?;
//! assert!(!expected.diff(&compare::fingerprint(&sb.main)?).is_empty());
//! # Ok(()) }
//! ```
//!
//! Or piece by piece:
//!
//! ```no_run
//! use rewind_engine::pg::cluster::TempCluster;
//! use rewind_engine::sandbox::{self, backup, data::DataSpec, host};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let cluster = TempCluster::start()?;
//! cluster.create_database(sandbox::MAIN_DB)?;
//! let mut client = cluster.connect(sandbox::MAIN_DB)?;
//! sandbox::populate(&mut client, &DataSpec::with_scale(5))?;
//! let main = sandbox::PgTarget::new(cluster.bin_dir(), cluster.conn_spec(sandbox::MAIN_DB));
//! let tree = tempfile::tempdir()?;
//! let layout = host::build_host(&host::HostSpec::new(tree.path(), main.conn.clone()))?;
//! let spec = backup::BackupSpec::new(&layout.backup_dir, main)
//!     .with_components(layout.components.clone())
//!     .with_compression(backup::Compression::Zstd);
//! let archive = backup::build_backup(&spec)?;
//! # let _ = archive; Ok(()) }
//! ```

pub mod backup;
pub mod build;
pub mod compare;
pub mod data;
pub mod host;
pub mod repos;
pub mod schema;
pub mod secrets;
pub mod upgrade;

pub use backup::{build_backup, BackupSpec, Compression};
pub use build::{build_sandbox, Sandbox, SandboxSpec};
pub use compare::{fingerprint, DbFingerprint};
pub use upgrade::{apply_failed_upgrade, failed_migrate_log};

use std::path::PathBuf;
use std::process::Command;

use crate::pg::conn::{describe_pg_error, ConnSpec};

/// The GitLab version the sandbox's schema and backups stand for.
pub const BASE_VERSION: &str = "16.10.3-ee";
/// The version the failed upgrade installs.
pub const UPGRADE_VERSION: &str = "16.11.0-ee";
/// `ActiveRecord::Migrator.current_version` of the sandbox schema (newest
/// `schema_migrations` row after [`populate`]).
pub const DB_VERSION: &str = "20240410123456";
/// Default main database name (Omnibus).
pub const MAIN_DB: &str = "gitlabhq_production";
/// Default ci database name (Omnibus, decomposed).
pub const CI_DB: &str = "gitlabhq_production_ci";

/// Errors of the sandbox builders.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// A SQL statement failed.
    #[error("sandbox: {step} failed: {detail}")]
    Sql { step: String, detail: String },
    /// A file operation failed.
    #[error("sandbox: {step} failed for {path}: {source}")]
    Io {
        step: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An external tool (pg_dump, tar, psql) failed.
    #[error("sandbox: `{tool}` failed while {step} ({status}): {stderr}; check that the PostgreSQL client tools and GNU tar are installed and the database is reachable")]
    Tool {
        tool: String,
        step: String,
        status: String,
        stderr: String,
    },
    /// A value given to a builder is not acceptable.
    #[error("sandbox: invalid {what}: {detail}")]
    Invalid { what: String, detail: String },
}

/// Result type of the sandbox.
pub type Result<T, E = SandboxError> = std::result::Result<T, E>;

pub(crate) fn sql_err(step: impl Into<String>) -> impl FnOnce(postgres::Error) -> SandboxError {
    let step = step.into();
    move |e| SandboxError::Sql {
        step,
        detail: describe_pg_error(&e),
    }
}

pub(crate) fn io_err(
    step: impl Into<String>,
    path: impl Into<PathBuf>,
) -> impl FnOnce(std::io::Error) -> SandboxError {
    let step = step.into();
    let path = path.into();
    move |source| SandboxError::Io { step, path, source }
}

/// A database plus the PostgreSQL client binaries to reach it with (`pg_dump`, `psql`): how
/// the backup builder and the comparison run the real tools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgTarget {
    /// Directory holding `pg_dump`/`psql` of the server's major version (for a
    /// [`crate::pg::cluster::TempCluster`]: its `bin_dir()`).
    pub bin_dir: PathBuf,
    /// Connection settings (the password, if any, is passed as `PGPASSWORD`).
    pub conn: ConnSpec,
}

impl PgTarget {
    /// A target from a bin dir and connection settings.
    pub fn new(bin_dir: impl Into<PathBuf>, conn: ConnSpec) -> Self {
        PgTarget {
            bin_dir: bin_dir.into(),
            conn,
        }
    }

    /// The same server, another database.
    pub fn with_dbname(&self, dbname: &str) -> Self {
        PgTarget {
            bin_dir: self.bin_dir.clone(),
            conn: self.conn.with_dbname(dbname),
        }
    }

    /// A [`Command`] for a client tool (`pg_dump`, `psql`, ...) with the libpq environment
    /// (`PGHOST`, `PGPORT`, `PGUSER`, `PGDATABASE`, `PGPASSWORD` when set) pointing at the
    /// database. Arguments are added by the caller; nothing goes through a shell.
    pub fn command(&self, tool: &str) -> Command {
        self.conn
            .client_command(&self.tool_path(tool), "rewind-sandbox")
    }

    /// Path of a client tool in [`PgTarget::bin_dir`].
    pub fn tool_path(&self, tool: &str) -> PathBuf {
        self.bin_dir.join(tool)
    }

    /// Open a connection.
    pub fn connect(&self) -> Result<postgres::Client> {
        self.conn.connect().map_err(|e| SandboxError::Sql {
            step: format!("connecting to database `{}`", self.conn.dbname),
            detail: e.to_string(),
        })
    }
}

/// What Omnibus's superuser creates in a GitLab database (as `gitlab-psql`): the
/// extensions GitLab needs, and, on installs with PgBouncer authentication, the
/// `public.pg_shadow_lookup` function (so a dump of the database holds `ALTER FUNCTION ...
/// OWNER TO "gitlab-psql"`, which the `gitlab` role may not run).
pub const SUPERUSER_SETUP_SQL: &str = "\
CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public;
CREATE EXTENSION IF NOT EXISTS btree_gist WITH SCHEMA public;
CREATE OR REPLACE FUNCTION public.pg_shadow_lookup(i_username text, OUT username text, OUT password text)
    RETURNS record
    LANGUAGE plpgsql SECURITY DEFINER
    AS $fn$
BEGIN
  SELECT usename, passwd FROM pg_catalog.pg_shadow
   WHERE usename = i_username INTO username, password;
  RETURN;
END;
$fn$;
REVOKE ALL ON FUNCTION public.pg_shadow_lookup(text) FROM PUBLIC;
";

/// Create a GitLab database on a throwaway cluster the way Omnibus has it: owned by the
/// application role ([`TempCluster::app_role`], `gitlab`), with the extensions and
/// `public.pg_shadow_lookup` created by the superuser ([`SUPERUSER_SETUP_SQL`]). Returns
/// the target as GitLab reaches it (the application role).
pub fn create_gitlab_database(
    cluster: &crate::pg::cluster::TempCluster,
    name: &str,
) -> Result<PgTarget> {
    cluster
        .create_database(name)
        .map_err(|e| SandboxError::Sql {
            step: format!("creating database `{name}`"),
            detail: e.to_string(),
        })?;
    let mut admin = cluster.connect(name).map_err(|e| SandboxError::Sql {
        step: format!("connecting to `{name}` as the superuser"),
        detail: e.to_string(),
    })?;
    admin.batch_execute(SUPERUSER_SETUP_SQL).map_err(sql_err(
        "creating the superuser's objects (extensions, pg_shadow_lookup)",
    ))?;
    Ok(PgTarget::new(cluster.bin_dir(), cluster.conn_spec(name)))
}

/// Load the schema, generate the data at `spec`'s scale, record `schema_migrations` up to
/// [`DB_VERSION`] and refresh the populated materialized view. The database should be
/// empty (freshly created).
pub fn populate(client: &mut postgres::Client, spec: &data::DataSpec) -> Result<data::DataStats> {
    schema::load_schema(client)?;
    data::generate(client, spec)
}

/// `ActiveRecord::Migrator.current_version` of a database: its newest `schema_migrations`
/// version (what GitLab writes as `:db_version:`).
pub fn current_db_version(client: &mut postgres::Client) -> Result<String> {
    let row = client
        .query_one(
            "SELECT coalesce(max(version::bigint)::text, '0') FROM schema_migrations",
            &[],
        )
        .map_err(sql_err("reading the newest schema_migrations version"))?;
    Ok(row.get(0))
}

/// Run a command to completion, turning a non-zero exit into [`SandboxError::Tool`].
pub(crate) fn run_tool(mut cmd: Command, tool: &str, step: &str) -> Result<std::process::Output> {
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|source| SandboxError::Io {
            step: format!("starting `{tool}` for {step}"),
            path: PathBuf::from(tool),
            source,
        })?;
    if !out.status.success() {
        return Err(SandboxError::Tool {
            tool: tool.to_string(),
            step: step.to_string(),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
