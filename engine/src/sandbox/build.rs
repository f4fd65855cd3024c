//! One call that builds a whole sandbox on a running cluster: databases with data, the
//! Omnibus-like tree pointing at them, and a 16.10.3 backup in its backup directory.

use std::path::PathBuf;

use super::backup::{self, BackupSpec, Compression};
use super::data::{DataSpec, DataStats};
use super::host::{self, HostLayout, HostSpec};
use super::{create_gitlab_database, populate, PgTarget, Result, SandboxError, CI_DB, MAIN_DB};
use crate::pg::cluster::TempCluster;

/// What [`build_sandbox`] builds.
#[derive(Debug, Clone)]
pub struct SandboxSpec {
    /// The directory standing for `/` (created if missing).
    pub root: PathBuf,
    /// Data of the main database (ci, when decomposed, uses the same scale and seed + 1).
    pub data: DataSpec,
    /// Compressor of the backup's dumps and component tarballs.
    pub compression: Compression,
    /// Decomposed: a separate ci database (`gitlabhq_production_ci`), dumped into
    /// `db/ci_database.sql.gz`.
    pub decomposed: bool,
    /// Sample files per file component.
    pub files_per_component: u32,
}

impl SandboxSpec {
    /// Scale 1, gzip, single database, under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        SandboxSpec {
            root: root.into(),
            data: DataSpec::default(),
            compression: Compression::Gzip,
            decomposed: false,
            files_per_component: 6,
        }
    }
}

/// A built sandbox.
#[derive(Debug, Clone)]
pub struct Sandbox {
    /// The tree (root, backup dir, log dir, component dirs).
    pub layout: HostLayout,
    /// The main database.
    pub main: PgTarget,
    /// The ci database, when decomposed.
    pub ci: Option<PgTarget>,
    /// The backup archive (in `layout.backup_dir`).
    pub archive: PathBuf,
    /// Its backup id.
    pub backup_id: String,
    /// Rows generated in main.
    pub stats: DataStats,
}

/// Create `gitlabhq_production` (and `gitlabhq_production_ci`) on `cluster` as Omnibus has
/// them ([`create_gitlab_database`]), fill them as the application role,
/// build the host tree under `spec.root` with `database.yml` pointing at the cluster, and
/// make a 16.10.3-ee backup of it all. Keep `cluster` alive while the sandbox is used.
pub fn build_sandbox(cluster: &TempCluster, spec: &SandboxSpec) -> Result<Sandbox> {
    let main = create_gitlab_database(cluster, MAIN_DB)?;
    let mut client = main.connect()?;
    let stats = populate(&mut client, &spec.data)?;
    drop(client);
    let ci = if spec.decomposed {
        let ci = create_gitlab_database(cluster, CI_DB)?;
        let mut client = ci.connect()?;
        populate(
            &mut client,
            &DataSpec {
                scale: spec.data.scale,
                seed: spec.data.seed.wrapping_add(1),
            },
        )?;
        Some(ci)
    } else {
        None
    };
    let mut host_spec = HostSpec::new(&spec.root, main.conn.clone());
    host_spec.ci = ci.as_ref().map(|c| c.conn.clone());
    host_spec.files_per_component = spec.files_per_component;
    let layout = host::build_host(&host_spec)?;
    // The encrypted columns under the host's gitlab-secrets.json.
    let key =
        super::secrets::db_key_base(&layout.root).map_err(|detail| SandboxError::Invalid {
            what: "gitlab-secrets.json".into(),
            detail,
        })?;
    super::secrets::seal(&mut main.connect()?, &key).map_err(|e| SandboxError::Sql {
        step: "sealing the encrypted columns".into(),
        detail: e.to_string(),
    })?;
    let mut backup_spec = BackupSpec::new(&layout.backup_dir, main.clone())
        .with_components(layout.components.clone())
        .with_compression(spec.compression);
    if let Some(ci) = &ci {
        backup_spec = backup_spec.with_ci(ci.clone());
    }
    let archive = backup::build_backup(&backup_spec)?;
    Ok(Sandbox {
        layout,
        main,
        ci,
        archive,
        backup_id: backup_spec.backup_id(),
        stats,
    })
}
