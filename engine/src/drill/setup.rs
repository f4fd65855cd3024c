//! Building the drill's sandbox host.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::report::{DrillReport, StepReport};
use super::scenario::Scenario;
use super::{setup_err, DrillError, DrillOptions};
use crate::packages::sandbox_repo;
use crate::pg::cluster::{ClusterAuth, ClusterOptions, PeerUsers, TempCluster};
use crate::progress::{Sink, SinkExt};
use crate::root::HostRoot;
use crate::sandbox::{self, backup, compare, data::DataSpec, host, PgTarget};
use crate::version::GitLabVersion;

/// The CE version the edition-change scenario's instance ran and backed up.
const CE_BASE_VERSION: &str = "16.10.3";

/// What a good recovery must end with (or, for refusing scenarios, what must not change).
#[derive(Debug, Clone)]
pub struct Expected {
    /// Fingerprint of the main database as the backup holds it.
    pub main: compare::DbFingerprint,
    /// Fingerprint of the ci database as the backup holds it (decomposed).
    pub ci: Option<compare::DbFingerprint>,
    /// Each file component's directory and its fingerprint as the backup holds it.
    pub files: Vec<(String, PathBuf, compare::FilesFingerprint)>,
    /// The backup's `db_version`.
    pub db_version: String,
    /// The version the host must end on.
    pub version: String,
    /// The storage directory (real path) and the refs of each repository in it, as the
    /// backup holds them.
    pub repositories: (PathBuf, std::collections::BTreeMap<String, String>),
}

/// The sandbox host of one drill. Dropping it stops the cluster and removes everything,
/// unless it was kept.
pub struct Sandbox {
    // Field order matters: the cluster stops before its directory is removed.
    cluster: Option<TempCluster>,
    dir: Option<tempfile::TempDir>,
    kept: Option<PathBuf>,
    pub scenario: Scenario,
    pub root: HostRoot,
    pub layout: host::HostLayout,
    /// All backups made, oldest first.
    pub archives: Vec<PathBuf>,
    /// The backup a careful engineer ends up restoring.
    pub good_backup: PathBuf,
    /// The main database.
    pub main: PgTarget,
    /// The ci database (decomposed).
    pub ci: Option<PgTarget>,
    pub expected: Expected,
    /// State right before the recovery starts (refusing scenarios compare against it).
    pub before: compare::DbFingerprint,
    /// The failed `db:migrate` log written into the GitLab log dir.
    pub migrate_log: Option<PathBuf>,
    /// The installed version right before the recovery.
    pub installed_before: String,
}

impl Sandbox {
    /// The sandbox cluster's administrator as `--db-admin` names it (`OSUSER:ROLE`): the
    /// superuser, reached by peer as the OS user the server runs as.
    pub fn db_admin(&self) -> Option<String> {
        let c = self.cluster.as_ref()?;
        Some(format!("{}:{}", c.server_os_user()?, c.superuser()))
    }
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("scenario", &self.scenario)
            .field("root", &self.root)
            .finish()
    }
}

fn timed<T>(
    report: &mut DrillReport,
    sink: &dyn Sink,
    opts: &DrillOptions,
    name: &str,
    f: impl FnOnce() -> Result<(T, String), DrillError>,
) -> Result<T, DrillError> {
    if opts.cancel.is_cancelled() {
        return Err(DrillError::Cancelled(name.to_string()));
    }
    sink.info(format!("drill: {name} ..."));
    let start = Instant::now();
    let r = f();
    let (ok, detail) = match &r {
        Ok((_, d)) => (true, d.clone()),
        Err(e) => (false, e.to_string()),
    };
    report.steps.push(StepReport {
        name: name.to_string(),
        duration: start.elapsed(),
        ok,
        detail,
    });
    r.map(|(t, _)| t)
}

impl Sandbox {
    /// The directory holding everything (host tree and cluster).
    pub fn dir(&self) -> &Path {
        self.kept
            .as_deref()
            .or_else(|| self.dir.as_ref().map(|d| d.path()))
            .unwrap_or(Path::new("/"))
    }

    /// The running cluster.
    pub fn cluster(&self) -> &TempCluster {
        self.cluster.as_ref().expect("drill cluster")
    }

    /// Keep everything (cluster running) after the drill; returns where.
    pub fn keep(&mut self) -> PathBuf {
        if let Some(c) = self.cluster.take() {
            c.into_kept();
        }
        if let Some(d) = self.dir.take() {
            self.kept = Some(d.keep());
        }
        self.dir().to_path_buf()
    }

    /// Build the sandbox for `opts.scenario`.
    pub fn prepare(
        opts: &DrillOptions,
        sink: &dyn Sink,
        report: &mut DrillReport,
    ) -> Result<Sandbox, DrillError> {
        let scenario = opts.scenario;
        let missing = super::prereq::check(true);
        if !missing.is_empty() {
            return Err(DrillError::Prerequisites(super::prereq::message(&missing)));
        }
        let dir = tempfile::Builder::new()
            .prefix("rewind-drill-")
            .tempdir()
            .map_err(setup_err("creating the sandbox directory"))?;
        sink.info(format!("drill: sandbox in {}", dir.path().display()));
        let host_dir = dir.path().join("host");
        fs::create_dir(&host_dir).map_err(setup_err("creating the sandbox host tree"))?;

        let cluster = timed(report, sink, opts, "start PostgreSQL", || {
            // Omnibus's database model (peer map, non-superuser `gitlab` owner), with
            // accounts that already exist: the drill creates none on the user's machine.
            let users = PeerUsers::existing()
                .map_err(setup_err("choosing the OS users of the peer map"))?;
            let c = TempCluster::start_with(ClusterOptions {
                parent: Some(dir.path().to_path_buf()),
                auth: Some(ClusterAuth::OmnibusPeer(users)),
                ..ClusterOptions::default()
            })
            .map_err(setup_err("starting the sandbox PostgreSQL cluster"))?;
            let detail = format!(
                "throwaway cluster on {}, peer map={} (role {} as OS user {})",
                c.socket_dir().display(),
                crate::pg::cluster::OMNIBUS_MAP,
                c.app_role(),
                c.conn_spec(sandbox::MAIN_DB)
                    .connect_as()
                    .os_user()
                    .map(|u| u.name.clone())
                    .unwrap_or_else(|| "of this process".into())
            );
            Ok((c, detail))
        })?;
        let bin = cluster.bin_dir().to_path_buf();
        let main = PgTarget::new(&bin, cluster.conn_spec(sandbox::MAIN_DB));
        let decomposed = scenario == Scenario::Decomposed;
        let ci = decomposed.then(|| PgTarget::new(&bin, cluster.conn_spec(sandbox::CI_DB)));

        let spec = DataSpec::with_scale(opts.scale);
        timed(report, sink, opts, "load GitLab 16.10.3 database", || {
            sandbox::create_gitlab_database(&cluster, sandbox::MAIN_DB)
                .map_err(setup_err("creating the main database"))?;
            let mut client = main
                .connect()
                .map_err(setup_err("connecting to the main database"))?;
            let stats = sandbox::populate(&mut client, &spec)
                .map_err(setup_err("loading the GitLab-like schema and data"))?;
            if let Some(ci) = &ci {
                sandbox::create_gitlab_database(&cluster, sandbox::CI_DB)
                    .map_err(setup_err("creating the ci database"))?;
                let mut c = ci
                    .connect()
                    .map_err(setup_err("connecting to the ci database"))?;
                sandbox::populate(
                    &mut c,
                    &DataSpec {
                        seed: spec.seed ^ 0xC1,
                        ..spec
                    },
                )
                .map_err(setup_err("loading the ci database"))?;
            }
            Ok((
                (),
                format!("{} rows (scale {})", stats.total_rows(), opts.scale),
            ))
        })?;

        let layout = timed(report, sink, opts, "build Omnibus-like host tree", || {
            let mut hs = host::HostSpec::new(&host_dir, main.conn.clone());
            hs.ci = ci.as_ref().map(|c| c.conn.clone());
            if scenario == Scenario::EditionChange {
                hs.version = CE_BASE_VERSION.to_string();
            }
            let layout = host::build_host(&hs).map_err(setup_err("building the host tree"))?;
            // The encrypted columns under the host's gitlab-secrets.json, so the stand-in
            // gitlab:doctor:secrets finds a wrong one.
            let key = sandbox::secrets::db_key_base(&layout.root)
                .map_err(setup_err("reading the sandbox's gitlab-secrets.json"))?;
            let mut c = main
                .connect()
                .map_err(setup_err("connecting to the main database"))?;
            sandbox::secrets::seal(&mut c, &key)
                .map_err(setup_err("sealing the encrypted columns"))?;
            Ok((
                layout,
                format!("GitLab {} (Omnibus layout)", sandbox::BASE_VERSION),
            ))
        })?;
        let root = layout.root.clone();
        // The edition-change scenario ran CE before the failed upgrade to EE.
        let base: GitLabVersion = if scenario == Scenario::EditionChange {
            CE_BASE_VERSION
        } else {
            sandbox::BASE_VERSION
        }
        .parse()
        .map_err(setup_err("base version"))?;
        let upgrade: GitLabVersion = sandbox::UPGRADE_VERSION
            .parse()
            .map_err(setup_err("upgrade version"))?;
        let repo = timed(
            report,
            sink,
            opts,
            &format!(
                "install {} {} package",
                base.edition_or_ce().package(),
                base
            ),
            || {
                let repo = sandbox_repo::setup_sandbox(
                    &root,
                    &dir.path().join("apt-repo"),
                    &base,
                    &[base.clone(), upgrade.clone()],
                )
                .map_err(setup_err(
                    "building the stand-in packages and the sandbox's dpkg",
                ))?;
                // gitlab-rake db:migrate runs this binary's `drill-migrate` on the sandbox,
                // so the wizard's repair and --auto run the same default command.
                let rewind = std::env::current_exe().map_err(setup_err(
                    "finding the Rewind binary for the gitlab-rake stand-in",
                ))?;
                sandbox_repo::write_gitlab_rake_standin(&root, &rewind)
                    .map_err(setup_err("writing the gitlab-rake stand-in"))?;
                sandbox_repo::write_gitaly_backup_standin(&root, &rewind)
                    .map_err(setup_err("writing the gitaly-backup stand-in"))?;
                Ok((repo, format!("stand-in .debs of {base} and {upgrade} in a local apt repository; {base} installed with dpkg; gitlab-ctl, gitlab-rake and gitaly-backup stand-ins")))
            },
        )?;

        // Repositories: real bare repositories for some projects, in Omnibus' storage.
        let storage = root.join(crate::repositories::DEFAULT_STORAGE_PATH);
        timed(report, sink, opts, "create Git repositories", || {
            let mut client = main
                .connect()
                .map_err(setup_err("connecting to the main database"))?;
            let made = sandbox::repos::populate(&mut client, &storage, 4)
                .map_err(setup_err("creating the sandbox's repositories"))?;
            Ok((
                (),
                format!("{} bare repositories made with git", made.len()),
            ))
        })?;

        // Backups.
        let mut archives = Vec::new();
        let good_backup = timed(report, sink, opts, "make backup on 16.10.3", || {
            let created = backup::default_created_at();
            // `gitlab-ctl backup-etc`, as the package's upgrade runs it beside the backup.
            crate::recovery::config::backup_etc(&root, created.timestamp() - 1)
                .map_err(setup_err("making the configuration archive (backup-etc)"))?;
            let mut bs = backup::BackupSpec::new(&layout.backup_dir, main.clone())
                .with_components(layout.components.clone())
                .with_repositories(vec![("default".to_string(), storage.clone())])
                .with_created_at(created);
            if scenario == Scenario::VersionMismatch {
                bs = bs.with_version("16.9.2-ee");
            }
            if scenario == Scenario::EditionChange {
                bs = bs.with_version(CE_BASE_VERSION);
            }
            if let Some(ci) = &ci {
                bs = bs.with_ci(ci.clone());
            }
            let path = backup::build_backup(&bs).map_err(setup_err("making the backup"))?;
            let size = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            Ok((
                path.clone(),
                format!("{} ({} bytes)", file_name(&path), size),
            ))
        })?;
        archives.push(good_backup.clone());

        let expected = Expected {
            main: compare::fingerprint(&main)
                .map_err(setup_err("fingerprinting the backup's database"))?,
            ci: match &ci {
                Some(c) => Some(
                    compare::fingerprint(c).map_err(setup_err("fingerprinting the ci database"))?,
                ),
                None => None,
            },
            files: layout
                .components
                .iter()
                .map(|c| {
                    compare::files_fingerprint(&c.dir)
                        .map(|fp| (c.name.clone(), c.dir.clone(), fp))
                        .map_err(setup_err("fingerprinting the file components"))
                })
                .collect::<Result<_, _>>()?,
            db_version: sandbox::DB_VERSION.to_string(),
            version: base.to_string(),
            repositories: (
                storage.clone(),
                sandbox::repos::all_refs(&storage)
                    .map_err(setup_err("reading the repositories' refs"))?,
            ),
        };

        if scenario == Scenario::CorruptBackup {
            let bad = timed(report, sink, opts, "make newer backup, truncated", || {
                let created = backup::default_created_at() + chrono::Duration::hours(6);
                let bs = backup::BackupSpec::new(&layout.backup_dir, main.clone())
                    .with_components(layout.components.clone())
                    .with_created_at(created);
                let path =
                    backup::build_backup(&bs).map_err(setup_err("making the second backup"))?;
                let len = fs::metadata(&path)
                    .map_err(setup_err("reading the second backup"))?
                    .len();
                let cut = (len / 2).max(1024);
                fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_len(cut))
                    .map_err(setup_err("truncating the second backup"))?;
                Ok((
                    path.clone(),
                    format!("{} cut from {len} to {cut} bytes", file_name(&path)),
                ))
            })?;
            archives.push(bad);
        }

        // The failure.
        let migrate_log = timed(report, sink, opts, "fail an upgrade to 16.11.0", || {
            let deb = repo.deb(&upgrade).ok_or_else(|| DrillError::Setup {
                step: "installing 16.11.0".into(),
                detail: "no stand-in package".into(),
            })?;
            sandbox_repo::dpkg_install(&root, deb)
                .map_err(setup_err("installing gitlab-ee 16.11.0 with dpkg"))?;
            let mut client = main
                .connect()
                .map_err(setup_err("connecting to the main database"))?;
            sandbox::upgrade::apply_failed_upgrade(&mut client)
                .map_err(setup_err("applying the failed upgrade"))?;
            if scenario == Scenario::LeftoverTables {
                // The backup was restored the old way: its dump over the database, no drop.
                // The upgrade's tables survive; schema_migrations is the backup's again.
                restore_without_drop(&main, &good_backup)?;
                let deb = repo.deb(&base).ok_or_else(|| DrillError::Setup {
                    step: "reinstalling 16.10.3".into(),
                    detail: "no stand-in package".into(),
                })?;
                sandbox_repo::dpkg_install(&root, deb)
                    .map_err(setup_err("reinstalling gitlab-ee 16.10.3 with dpkg"))?;
            }
            // Someone pushed to the first repository after the backup (a push event too).
            let restores = matches!(
                scenario,
                Scenario::FailedUpgrade | Scenario::CorruptBackup | Scenario::Decomposed
            );
            if let Some(first) = expected
                .repositories
                .1
                .keys()
                .find(|r| restores && !r.ends_with(".wiki.git"))
            {
                sandbox::repos::push_commit(
                    &storage.join(first),
                    "pushed while 16.11.0 was half-migrated",
                )
                .map_err(setup_err("pushing to a repository"))?;
                client
                    .execute(
                        "INSERT INTO events (id, project_id, author_id, action, created_at) \
                         SELECT COALESCE(max(id), 0) + 1, 1, 1, 5, now() FROM events",
                        &[],
                    )
                    .map_err(setup_err("recording the push event"))?;
            }
            // 16.11's reconfigure wrote its new secret and the admin edited gitlab.rb for it:
            // the configuration no longer matches the backup's.
            let secrets_path = root.join(sandbox::secrets::SECRETS);
            let mut v: serde_json::Value = fs::read(&secrets_path)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .ok_or_else(|| DrillError::Setup {
                    step: "changing gitlab-secrets.json".into(),
                    detail: "unreadable".into(),
                })?;
            v["gitlab_rails"]["active_record_encryption_primary_key"] =
                serde_json::json!(["written-by-16.11-reconfigure"]);
            fs::write(
                &secrets_path,
                serde_json::to_vec_pretty(&v).unwrap_or_default(),
            )
            .map_err(setup_err("changing gitlab-secrets.json"))?;
            let rb = root.join(crate::detect::omnibus::GITLAB_RB);
            let mut text = fs::read_to_string(&rb).map_err(setup_err("reading gitlab.rb"))?;
            text.push_str("gitlab_rails['new_in_16_11'] = true\n");
            fs::write(&rb, text).map_err(setup_err("changing gitlab.rb"))?;
            // Users kept working on the broken instance: the upload dirs changed.
            for (_, dir, _) in &expected.files {
                fs::write(
                    dir.join("written-after-the-backup.txt"),
                    b"uploaded while 16.11.0 was half-migrated\n",
                )
                .map_err(setup_err("changing the file components"))?;
            }
            let log_text = if scenario == Scenario::LeftoverTables {
                sandbox::upgrade::failed_migrate_log()
            } else {
                sandbox::upgrade::upgrade_migrate_log()
            };
            let log = host::write_migrate_log(&root, chrono::Utc::now(), &log_text)
                .map_err(setup_err("writing the migrate log"))?;
            Ok((
                log,
                "new tables, a new column and schema_migrations rows; migrate log written"
                    .to_string(),
            ))
        })?;

        let before =
            compare::fingerprint(&main).map_err(setup_err("fingerprinting the broken database"))?;
        let installed_before = fs::read_to_string(root.join(crate::detect::omnibus::VERSION))
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        Ok(Sandbox {
            cluster: Some(cluster),
            dir: Some(dir),
            kept: None,
            scenario,
            root,
            layout,
            archives,
            good_backup,
            main,
            ci,
            expected,
            before,
            migrate_log: Some(migrate_log),
            installed_before,
        })
    }
}

/// `gzip -dc db/database.sql.gz | psql`, as a pre-Rewind restore would have done, for the
/// leftover-tables scenario. Streams the member out of the archive with GNU tar.
fn restore_without_drop(main: &PgTarget, archive: &Path) -> Result<(), DrillError> {
    use std::process::{Command, Stdio};
    let mut tar = Command::new("tar")
        .arg("-xOf")
        .arg(archive)
        .arg("db/database.sql.gz")
        .stdout(Stdio::piped())
        .spawn()
        .map_err(setup_err("running tar"))?;
    let mut gunzip = Command::new("gzip")
        .arg("-dc")
        .stdin(tar.stdout.take().ok_or_else(|| DrillError::Setup {
            step: "running tar".into(),
            detail: "no stdout".into(),
        })?)
        .stdout(Stdio::piped())
        .spawn()
        .map_err(setup_err("running gzip"))?;
    let out = main
        .command("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=0"])
        .stdin(gunzip.stdout.take().ok_or_else(|| DrillError::Setup {
            step: "running gzip".into(),
            detail: "no stdout".into(),
        })?)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(setup_err("running psql"))?;
    let _ = tar.wait();
    let _ = gunzip.wait();
    if !out.status.success() {
        return Err(DrillError::Setup {
            step: "restoring the backup without the drop".into(),
            detail: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(())
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
