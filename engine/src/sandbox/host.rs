//! An Omnibus-like GitLab host tree under a sandbox root: what [`crate::detect::detect`]
//! reads (`VERSION`, `REVISION`, `version-manifest.txt`, `gitlab.rb`, `database.yml`), the
//! PostgreSQL data directory's `PG_VERSION` the rollback's guard reads, the
//! backup directory, file component directories with deterministic sample files, and the
//! Rails log directory.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::backup::FileComponent;
use super::data::XorShift;
use super::{io_err, Result, SandboxError, BASE_VERSION};
use crate::detect::omnibus;
use crate::pg::conn::ConnSpec;
use crate::root::HostRoot;
use crate::version::{Edition, GitLabVersion};

/// Host paths of the file components Omnibus backs up, as `(task name, host path)`.
pub const COMPONENT_DIRS: &[(&str, &str)] = &[
    ("uploads", "/var/opt/gitlab/gitlab-rails/uploads"),
    ("builds", "/var/opt/gitlab/gitlab-ci/builds"),
    ("artifacts", "/var/opt/gitlab/gitlab-rails/shared/artifacts"),
    ("lfs", "/var/opt/gitlab/gitlab-rails/shared/lfs-objects"),
];

/// The PostgreSQL major of the sandbox's data directory (`PG_VERSION`).
pub const SANDBOX_PG_MAJOR: &str = "14";

/// What to build.
#[derive(Debug, Clone)]
pub struct HostSpec {
    /// The directory standing for `/`.
    pub root: PathBuf,
    /// The main database `database.yml` points at.
    pub main: ConnSpec,
    /// The ci database (decomposed installations).
    pub ci: Option<ConnSpec>,
    /// Installed version, e.g. `16.10.3-ee`.
    pub version: String,
    /// Sample files per component (at least 1).
    pub files_per_component: u32,
}

impl HostSpec {
    /// A 16.10.3-ee host under `root` with main database `main`.
    pub fn new(root: impl Into<PathBuf>, main: ConnSpec) -> Self {
        HostSpec {
            root: root.into(),
            main,
            ci: None,
            version: BASE_VERSION.to_string(),
            files_per_component: 6,
        }
    }
}

/// Where things are in a built tree (real paths under the root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostLayout {
    /// The root.
    pub root: HostRoot,
    /// `var/opt/gitlab/backups` under the root.
    pub backup_dir: PathBuf,
    /// `var/log/gitlab/gitlab-rails` under the root.
    pub log_dir: PathBuf,
    /// The file components (real dirs), for [`super::backup::BackupSpec::components`].
    pub components: Vec<FileComponent>,
}

fn write(path: &Path, content: impl AsRef<[u8]>) -> Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(io_err("creating directory", parent))?;
    }
    fs::write(path, content).map_err(io_err("writing", path))
}

fn parse_version(version: &str) -> Result<GitLabVersion> {
    version
        .parse::<GitLabVersion>()
        .map_err(|e| SandboxError::Invalid {
            what: "installed version".into(),
            detail: e.to_string(),
        })
}

/// Build the tree. Existing files of the same names are overwritten; nothing outside
/// `spec.root` is touched.
pub fn build_host(spec: &HostSpec) -> Result<HostLayout> {
    let root = HostRoot::new(&spec.root);
    set_installed_version(&root, &spec.version)?;
    write(
        &root.join(omnibus::REVISION),
        format!("{}\n", revision_for(&spec.version)),
    )?;
    write(
        &root.join("/opt/gitlab/embedded/service/gitlab-rails/INSTALLATION_TYPE"),
        "omnibus-gitlab\n",
    )?;

    let mut rb = String::from(
        "## GitLab configuration settings (Rewind sandbox)\n\
         external_url 'https://gitlab.sandbox.example'\n\n\
         ### Backup Settings\n\
         # gitlab_rails['manage_backup_path'] = true\n\
         # gitlab_rails['backup_path'] = \"/var/opt/gitlab/backups\"\n\
         # gitlab_rails['backup_archive_permissions'] = 0644\n\n\
         ### GitLab database settings\n\
         # gitlab_rails['db_database'] = \"gitlabhq_production\"\n",
    );
    if spec.ci.is_some() {
        rb.push_str(
            "gitlab_rails['databases']['ci']['enable'] = true\n\
             gitlab_rails['databases']['ci']['db_database'] = 'gitlabhq_production_ci'\n",
        );
    }
    write(&root.join(omnibus::GITLAB_RB), rb)?;
    // As the package installs it: root's only.
    fs::set_permissions(
        root.join(omnibus::GITLAB_RB),
        fs::Permissions::from_mode(0o600),
    )
    .map_err(io_err("chmod", root.join(omnibus::GITLAB_RB)))?;
    super::secrets::write_secrets(&root, &format!("rewind-sandbox:{}", spec.root.display()))?;
    write(
        &root.join(omnibus::DATABASE_YML),
        database_yml(&spec.main, spec.ci.as_ref()),
    )?;
    write(
        &root.join("/opt/gitlab/etc/gitlab-psql-rc"),
        format!(
            "psql_user='gitlab-psql'\npsql_group='gitlab-psql'\npsql_host='{}'\npsql_port='{}'\npsql_dbname='{}'\n",
            spec.main.host, spec.main.port, spec.main.dbname
        ),
    )?;

    // The bundled PostgreSQL's data directory as GitLab 16.10 leaves it: PostgreSQL 14, a
    // major the 16.10 package ships (13 and 14), so the rollback's guard lets it pass.
    write(
        &root.join(format!(
            "{}/PG_VERSION",
            crate::packages::guard::DEFAULT_PG_DATA_DIR
        )),
        format!("{SANDBOX_PG_MAJOR}\n"),
    )?;
    let backup_dir = root.join(omnibus::DEFAULT_BACKUP_PATH);
    fs::create_dir_all(&backup_dir).map_err(io_err("creating", &backup_dir))?;
    fs::set_permissions(&backup_dir, fs::Permissions::from_mode(0o700))
        .map_err(io_err("chmod", &backup_dir))?;
    let log_dir = root.join(omnibus::RAILS_LOG_DIR);
    write(
        &log_dir.join("production.log"),
        "Started GET \"/-/readiness\" for 127.0.0.1 at 2024-04-20 10:00:00 +0000\n",
    )?;

    let mut components = Vec::new();
    for (i, (name, host_path)) in COMPONENT_DIRS.iter().enumerate() {
        let dir = root.join(host_path);
        sample_files(name, &dir, spec.files_per_component.max(1), i as u64 + 1)?;
        components.push(FileComponent::new(*name, dir));
    }
    Ok(HostLayout {
        root,
        backup_dir,
        log_dir,
        components,
    })
}

/// An 11-character revision derived from the version (deterministic).
fn revision_for(version: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in version.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")[..11].to_string()
}

/// Rewrite the installed version: `VERSION` (`16.11.0-ee`; CE without suffix, as current
/// CE writes it), `REVISION`, and the version manifest's first line
/// (`gitlab-ee 16.11.0`) and components.
pub fn set_installed_version(root: &HostRoot, version: &str) -> Result<()> {
    let v = parse_version(version)?;
    let edition = v.edition_or_ce();
    let version_text = match edition {
        Edition::Ee => format!("{}-ee", v.base()),
        Edition::Ce => v.base(),
    };
    write(&root.join(omnibus::VERSION), format!("{version_text}\n"))?;
    write(
        &root.join(omnibus::REVISION),
        format!("{}\n", revision_for(&version_text)),
    )?;
    let base = v.base();
    write(
        &root.join(omnibus::MANIFEST),
        format!(
            "{} {base}\n\ngitlab-rails v{base}{}\ngitaly v{base}\ngitlab-shell v14.34.0\npostgresql 14.11\nredis 7.0.15\n",
            edition.package(),
            if edition == Edition::Ee { "-ee" } else { "" },
        ),
    )
}

/// Render Omnibus' `database.yml` for main (and ci).
pub fn database_yml(main: &ConnSpec, ci: Option<&ConnSpec>) -> String {
    let mut y = String::from(
        "# This file is managed by gitlab-ctl. Manual changes will be\n\
         # erased! To change the contents below, edit /etc/gitlab/gitlab.rb\n\
         # and run `sudo gitlab-ctl reconfigure`.\n\nproduction:\n",
    );
    for (name, spec) in std::iter::once(("main", main)).chain(ci.map(|c| ("ci", c))) {
        y.push_str(&format!(
            "  {name}:\n    adapter: postgresql\n    encoding: unicode\n    collation:\n    database: {}\n    username: {}\n    password:\n    host: {}\n    port: {}\n    socket:\n    sslmode:\n    application_name:\n    prepared_statements: false\n    database_tasks: true\n",
            yaml_quote(&spec.dbname),
            yaml_quote(&spec.user),
            yaml_quote(&spec.host),
            spec.port
        ));
    }
    y
}

fn yaml_quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Deterministic sample content for a component: nested dirs, a dotfile, binary files,
/// a unicode name, an empty directory.
fn sample_files(component: &str, dir: &Path, n: u32, seed: u64) -> Result<()> {
    fs::create_dir_all(dir).map_err(io_err("creating", dir))?;
    let mut rng = XorShift::new(0xF11E_5000 + seed);
    write(&dir.join(".gitkeep"), "")?;
    fs::create_dir_all(dir.join("empty-dir")).map_err(io_err("creating", dir))?;
    for i in 0..n {
        let a = rng.next_u64();
        let h = format!("{a:016x}{:016x}", rng.next_u64());
        let size = 64 + rng.below(8_192) as usize;
        let mut bytes = Vec::with_capacity(size);
        while bytes.len() < size {
            bytes.extend_from_slice(&rng.next_u64().to_le_bytes());
        }
        bytes.truncate(size);
        let rel = match component {
            "uploads" => format!(
                "@hashed/{}/{}/{h}/{}/screenshot {i} «ünïcødé».png",
                &h[..2],
                &h[2..4],
                &h[..32]
            ),
            "lfs" => format!("{}/{}/{}", &h[..2], &h[2..4], &h[4..]),
            "artifacts" => format!(
                "{}/{}/{h}/2024_04_{:02}/{}/{}/artifacts.zip",
                &h[..2],
                &h[2..4],
                1 + i % 28,
                100 + i,
                200 + i
            ),
            "builds" => {
                bytes = format!(
                    "\u{1b}[0KRunning with gitlab-runner 16.10.0\n\u{1b}[32;1m$ bundle exec rspec\u{1b}[0;m\r\njob {i} output line\twith tab\n"
                )
                .into_bytes();
                format!("2024_04/{}/{}.log", 1 + i % 3, 1000 + i)
            }
            other => format!("{other}/file-{i}.bin"),
        };
        write(&dir.join(rel), &bytes)?;
    }
    Ok(())
}

/// Write a `db:migrate` log the way Omnibus names it
/// (`gitlab-rails-db-migrate-YYYY-MM-DD-HH-MM-SS.log` in the Rails log dir); returns its
/// real path.
pub fn write_migrate_log(root: &HostRoot, at: DateTime<Utc>, text: &str) -> Result<PathBuf> {
    let path = root.join(omnibus::RAILS_LOG_DIR).join(format!(
        "gitlab-rails-db-migrate-{}.log",
        at.format("%Y-%m-%d-%H-%M-%S")
    ));
    write(&path, text)?;
    Ok(path)
}
