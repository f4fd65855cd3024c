//! GitLab-format backup archives, made the way `gitlab-backup create` makes them.
//!
//! - Each database: `pg_dump --clean --if-exists` (libpq environment pointing at the
//!   database) streamed through the compressor into `db/database.sql.gz` (main) or
//!   `db/ci_database.sql.gz` (ci), mode 0600. The compressor is gzip level 1 (GitLab's
//!   default `gzip -c -1`), zstd (a `COMPRESS_CMD`, the name stays `.gz`) or none (`cat`).
//! - Each file component: `tar --exclude=lost+found -C <dir> -cf - .` (GNU tar, entries
//!   `./...`) through the same compressor into `<name>.tar.gz`, mode 0600.
//! - `backup_information.yml` in GitLab's layout (symbol keys, no `---` line).
//! - The outer archive `<backup_id>_gitlab_backup.tar`: `tar -cf - backup_information.yml
//!   db <components...>` in GitLab's member order, written 0600 into the backup directory.
//!
//! Everything streams: a dump never sits in memory or on disk uncompressed.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;

use chrono::{DateTime, TimeZone, Utc};

use super::{io_err, PgTarget, Result, SandboxError, BASE_VERSION};
use crate::version::GitLabVersion;

/// How dumps and component tarballs are compressed (the names keep `.gz` in every case,
/// as GitLab's `COMPRESS_CMD` does).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// `gzip -c -1`, GitLab's default.
    #[default]
    Gzip,
    /// zstd (level 3, with frame checksums), like `COMPRESS_CMD="zstd -c"`.
    Zstd,
    /// No compression (`COMPRESS_CMD=cat`).
    None,
}

/// A file component: `<name>.tar.gz` made from the contents of `dir`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileComponent {
    /// GitLab's task name: `uploads`, `builds`, `artifacts`, `pages`, `lfs`,
    /// `terraform_state`, `registry`, `packages`, `ci_secure_files`, `external_diffs`.
    pub name: String,
    /// The directory whose contents are archived (a real path on this machine).
    pub dir: PathBuf,
}

impl FileComponent {
    /// A component from a task name and directory.
    pub fn new(name: impl Into<String>, dir: impl Into<PathBuf>) -> Self {
        FileComponent {
            name: name.into(),
            dir: dir.into(),
        }
    }
}

/// GitLab's file tasks in the order of its backup definitions (which is the member order
/// of the outer tar).
pub const COMPONENT_ORDER: &[&str] = &[
    "uploads",
    "builds",
    "artifacts",
    "pages",
    "lfs",
    "terraform_state",
    "registry",
    "packages",
    "ci_secure_files",
    "external_diffs",
];

/// The creation time [`BackupSpec::new`] uses: 2024-04-20 10:11:12 UTC (a backup made on
/// 16.10.3 before the upgrade).
pub fn default_created_at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 4, 20, 10, 11, 12)
        .single()
        .unwrap_or_default()
}

/// What to put in a backup.
#[derive(Debug, Clone)]
pub struct BackupSpec {
    /// Directory the archive is written into (created if missing).
    pub backup_dir: PathBuf,
    /// The main database.
    pub main: PgTarget,
    /// The ci database, for decomposed installations (`db/ci_database.sql.gz`).
    pub ci: Option<PgTarget>,
    /// File components, archived in GitLab's member order.
    pub components: Vec<FileComponent>,
    /// `:gitlab_version:` (validated as a GitLab version), e.g. `16.10.3-ee`.
    pub gitlab_version: String,
    /// `:db_version:`; `None` reads the newest `schema_migrations` version of main.
    pub db_version: Option<String>,
    /// `:backup_created_at:` and the date in the backup id.
    pub created_at: DateTime<Utc>,
    /// The backup id; `None` gives GitLab's `<epoch>_<YYYY>_<MM>_<DD>_<version>`.
    pub backup_id: Option<String>,
    /// Compressor of the dumps and component tarballs.
    pub compression: Compression,
    /// `:skipped:` tokens (e.g. `repositories`, `registry`).
    pub skipped: Vec<String>,
    /// `:installation_type:`.
    pub installation_type: String,
    /// Storages `(name, directory)` whose bare repositories go into `repositories/`
    /// (gitaly-backup's manifest layout); empty: no `repositories/`.
    pub repositories: Vec<(String, PathBuf)>,
}

impl BackupSpec {
    /// A 16.10.3-ee backup of `main` into `backup_dir`, gzip, no components, created at
    /// [`default_created_at`], `repositories` skipped (the sandbox has no Gitaly).
    pub fn new(backup_dir: impl Into<PathBuf>, main: PgTarget) -> Self {
        BackupSpec {
            backup_dir: backup_dir.into(),
            main,
            ci: None,
            components: Vec::new(),
            gitlab_version: BASE_VERSION.to_string(),
            db_version: None,
            created_at: default_created_at(),
            backup_id: None,
            compression: Compression::Gzip,
            skipped: vec!["repositories".to_string()],
            installation_type: "omnibus-gitlab".to_string(),
            repositories: Vec::new(),
        }
    }

    /// Put the bare repositories of these storages into `repositories/` (no longer
    /// skipped).
    pub fn with_repositories(mut self, storages: Vec<(String, PathBuf)>) -> Self {
        self.skipped.retain(|s| s != "repositories");
        self.repositories = storages;
        self
    }

    /// Set the file components.
    pub fn with_components(mut self, components: Vec<FileComponent>) -> Self {
        self.components = components;
        self
    }

    /// Set the ci database.
    pub fn with_ci(mut self, ci: PgTarget) -> Self {
        self.ci = Some(ci);
        self
    }

    /// Set the compressor.
    pub fn with_compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// Set the GitLab version.
    pub fn with_version(mut self, version: impl Into<String>) -> Self {
        self.gitlab_version = version.into();
        self
    }

    /// Set the creation time.
    pub fn with_created_at(mut self, created_at: DateTime<Utc>) -> Self {
        self.created_at = created_at;
        self
    }

    /// The backup id: the explicit one, else `<epoch>_<YYYY>_<MM>_<DD>_<gitlab_version>`.
    pub fn backup_id(&self) -> String {
        self.backup_id.clone().unwrap_or_else(|| {
            format!(
                "{}_{}_{}",
                self.created_at.timestamp(),
                self.created_at.format("%Y_%m_%d"),
                self.gitlab_version
            )
        })
    }

    /// Where [`build_backup`] writes the archive.
    pub fn archive_path(&self) -> PathBuf {
        self.backup_dir
            .join(format!("{}_gitlab_backup.tar", self.backup_id()))
    }
}

/// Render `backup_information.yml` as GitLab writes it: a Ruby hash with symbol keys dumped
/// by Psych, the leading `---` removed, `:backup_created_at:` an
/// `ActiveSupport::TimeWithZone` in UTC.
pub fn render_backup_information(spec: &BackupSpec, db_version: &str, tar_version: &str) -> String {
    let t = spec
        .created_at
        .format("%Y-%m-%d %H:%M:%S.%9f Z")
        .to_string();
    let id = spec.backup_id();
    let mut y = String::new();
    y.push_str(&format!(":db_version: {}\n", yaml_str(db_version)));
    y.push_str(":backup_created_at: !ruby/object:ActiveSupport::TimeWithZone\n");
    y.push_str(&format!("  utc: {t}\n"));
    y.push_str("  zone: !ruby/object:ActiveSupport::TimeZone\n    name: Etc/UTC\n");
    y.push_str(&format!("  time: {t}\n"));
    y.push_str(&format!(
        ":gitlab_version: {}\n",
        yaml_str(&spec.gitlab_version)
    ));
    y.push_str(&format!(":tar_version: {}\n", yaml_str(tar_version)));
    y.push_str(&format!(
        ":installation_type: {}\n",
        yaml_str(&spec.installation_type)
    ));
    y.push_str(&format!(
        ":skipped: {}\n",
        yaml_str(&spec.skipped.join(","))
    ));
    y.push_str(":repositories_storages: ''\n");
    y.push_str(":repositories_paths: ''\n");
    y.push_str(":skip_repositories_paths: ''\n");
    y.push_str(":repositories_server_side: false\n");
    y.push_str(&format!(":backup_id: {}\n", yaml_str(&id)));
    y.push_str(&format!(":full_backup_id: {}\n", yaml_str(&id)));
    y
}

/// A YAML scalar as Psych writes a Ruby String: plain when it cannot be read as anything
/// else, single-quoted otherwise (empty, numeric-looking, booleans, special characters).
fn yaml_str(s: &str) -> String {
    let looks_typed = s.is_empty()
        || s.parse::<f64>().is_ok()
        || matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "yes" | "no" | "on" | "off" | "null" | "~" | "y" | "n"
        );
    let special = s.starts_with(|c: char| "!&*-?:,[]{}#|>@`\"'%= ".contains(c))
        || s.ends_with(' ')
        || s.contains(": ")
        || s.contains(" #")
        || s.contains('\n');
    if looks_typed || special {
        format!("'{}'", s.replace('\'', "''"))
    } else {
        s.to_string()
    }
}

/// First line of `tar --version`, as GitLab records it.
pub fn tar_version() -> Result<String> {
    let mut cmd = Command::new("tar");
    cmd.arg("--version");
    let out = super::run_tool(cmd, "tar", "reading `tar --version`")?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .to_string())
}

/// Create a file with mode 0600 (failing if it exists).
fn create_private(path: &Path) -> Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err("creating", path))
}

/// A writer that compresses into a file.
enum Compressor {
    Gzip(flate2::write::GzEncoder<BufWriter<File>>),
    Zstd(zstd::stream::write::Encoder<'static, BufWriter<File>>),
    Plain(BufWriter<File>),
}

impl Compressor {
    fn new(file: File, c: Compression) -> io::Result<Self> {
        let w = BufWriter::with_capacity(256 * 1024, file);
        Ok(match c {
            Compression::Gzip => Compressor::Gzip(flate2::write::GzEncoder::new(
                w,
                flate2::Compression::new(1),
            )),
            Compression::Zstd => {
                let mut e = zstd::stream::write::Encoder::new(w, 3)?;
                e.include_checksum(true)?;
                Compressor::Zstd(e)
            }
            Compression::None => Compressor::Plain(w),
        })
    }

    fn finish(self) -> io::Result<()> {
        let mut w = match self {
            Compressor::Gzip(e) => e.finish()?,
            Compressor::Zstd(e) => e.finish()?,
            Compressor::Plain(w) => w,
        };
        w.flush()?;
        w.into_inner().map_err(|e| e.into_error())?.sync_all()
    }
}

impl Write for Compressor {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Compressor::Gzip(e) => e.write(buf),
            Compressor::Zstd(e) => e.write(buf),
            Compressor::Plain(w) => w.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Compressor::Gzip(e) => e.flush(),
            Compressor::Zstd(e) => e.flush(),
            Compressor::Plain(w) => w.flush(),
        }
    }
}

fn drain_stderr(child: &mut Child) -> JoinHandle<String> {
    let mut err = child.stderr.take();
    std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(e) = err.as_mut() {
            let _ = e.read_to_string(&mut s);
        }
        s
    })
}

/// Run `cmd`, streaming its stdout through `compression` into a new 0600 file at `out`.
/// Returns the number of uncompressed bytes.
pub fn stream_command_to(
    mut cmd: Command,
    tool: &str,
    step: &str,
    out: &Path,
    compression: Compression,
) -> Result<u64> {
    let file = create_private(out)?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| SandboxError::Io {
            step: format!("starting `{tool}` for {step}"),
            path: PathBuf::from(tool),
            source,
        })?;
    let stderr = drain_stderr(&mut child);
    let mut stdout = child.stdout.take().ok_or_else(|| SandboxError::Invalid {
        what: format!("`{tool}` output"),
        detail: "no stdout pipe".into(),
    })?;
    let mut comp = Compressor::new(file, compression).map_err(io_err(step, out))?;
    let copied = io::copy(&mut stdout, &mut comp);
    drop(stdout);
    let status = child.wait().map_err(io_err(step, out))?;
    let err_text = stderr.join().unwrap_or_default();
    if !status.success() {
        return Err(SandboxError::Tool {
            tool: tool.to_string(),
            step: step.to_string(),
            status: status.to_string(),
            stderr: err_text.trim().to_string(),
        });
    }
    let n = copied.map_err(io_err(step, out))?;
    comp.finish().map_err(io_err(step, out))?;
    Ok(n)
}

fn valid_component_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Build a GitLab-format backup archive from `spec`; returns its path
/// ([`BackupSpec::archive_path`]). An existing archive of the same name is not overwritten
/// (error). Staging files live in a private temporary directory inside the backup
/// directory and are removed afterwards, also on failure.
pub fn build_backup(spec: &BackupSpec) -> Result<PathBuf> {
    spec.gitlab_version
        .parse::<GitLabVersion>()
        .map_err(|e| SandboxError::Invalid {
            what: "gitlab_version".into(),
            detail: e.to_string(),
        })?;
    let id = spec.backup_id();
    if id.is_empty() || id.contains('/') || id.starts_with('.') {
        return Err(SandboxError::Invalid {
            what: "backup id".into(),
            detail: format!("`{id}` must be a plain file-name part"),
        });
    }
    for c in &spec.components {
        if !valid_component_name(&c.name) {
            return Err(SandboxError::Invalid {
                what: "component name".into(),
                detail: format!("`{}` (expected a GitLab task name like `uploads`)", c.name),
            });
        }
        if !c.dir.is_dir() {
            return Err(SandboxError::Invalid {
                what: format!("component `{}`", c.name),
                detail: format!("{} is not a directory", c.dir.display()),
            });
        }
    }
    fs::create_dir_all(&spec.backup_dir)
        .map_err(io_err("creating the backup directory", &spec.backup_dir))?;
    let archive = spec.archive_path();
    if archive.exists() {
        return Err(SandboxError::Invalid {
            what: "archive path".into(),
            detail: format!("{} already exists; not overwriting it", archive.display()),
        });
    }

    let db_version = match &spec.db_version {
        Some(v) => v.clone(),
        None => {
            let mut client = spec.main.connect()?;
            super::current_db_version(&mut client)?
        }
    };
    let tar_version = tar_version()?;

    let staging = tempfile::Builder::new()
        .prefix(".rewind-sandbox-backup-")
        .tempdir_in(&spec.backup_dir)
        .map_err(io_err("creating a staging directory", &spec.backup_dir))?;
    let stage = staging.path();
    let mut members: Vec<String> = vec!["backup_information.yml".into(), "db".into()];

    // Databases.
    let db_dir = stage.join("db");
    fs::create_dir(&db_dir).map_err(io_err("creating db/", &db_dir))?;
    let mut dbs = vec![("database.sql.gz", &spec.main)];
    if let Some(ci) = &spec.ci {
        dbs.push(("ci_database.sql.gz", ci));
    }
    for (file, target) in dbs {
        let mut cmd = target.command("pg_dump");
        cmd.arg("--clean").arg("--if-exists");
        stream_command_to(
            cmd,
            "pg_dump",
            &format!("dumping database `{}` into db/{file}", target.conn.dbname),
            &db_dir.join(file),
            spec.compression,
        )?;
    }

    // File components, in GitLab's order; unknown names after the known ones.
    let mut comps: Vec<&FileComponent> = spec.components.iter().collect();
    comps.sort_by_key(|c| {
        COMPONENT_ORDER
            .iter()
            .position(|n| *n == c.name)
            .unwrap_or(COMPONENT_ORDER.len())
    });
    for c in comps {
        let file = format!("{}.tar.gz", c.name);
        let mut cmd = Command::new("tar");
        cmd.arg("--exclude=lost+found");
        if matches!(
            c.name.as_str(),
            "uploads" | "artifacts" | "terraform_state" | "packages" | "ci_secure_files"
        ) {
            cmd.arg("--exclude=./tmp");
        }
        cmd.arg("-C").arg(&c.dir).arg("-cf").arg("-").arg(".");
        stream_command_to(
            cmd,
            "tar",
            &format!("archiving {} into {file}", c.dir.display()),
            &stage.join(&file),
            spec.compression,
        )?;
        members.push(file);
    }

    // Repositories, as gitaly-backup's manifest layout writes them.
    if !spec.repositories.is_empty() {
        let dest = stage.join("repositories");
        fs::create_dir(&dest).map_err(io_err("creating repositories/", &dest))?;
        super::repos::write_backup_tree(&dest, &spec.repositories, &id)?;
        members.insert(2, "repositories".into());
    }

    // backup_information.yml
    let info = stage.join("backup_information.yml");
    let mut f = create_private(&info)?;
    f.write_all(render_backup_information(spec, &db_version, &tar_version).as_bytes())
        .map_err(io_err("writing", &info))?;
    drop(f);

    // The outer tar, written through stdout into a 0600 file as GitLab does.
    let mut cmd = Command::new("tar");
    cmd.arg("-cf").arg("-").args(&members).current_dir(stage);
    let result = stream_command_to(
        cmd,
        "tar",
        &format!("packing {}", archive.display()),
        &archive,
        Compression::None,
    );
    if let Err(e) = result {
        let _ = fs::remove_file(&archive);
        return Err(e);
    }
    Ok(archive)
}
