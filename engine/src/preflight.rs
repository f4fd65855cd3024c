//! Preflight: the checks that run before anything changes, each with a verdict (pass, warn,
//! fail), the reason, and the fix. A failed check blocks every destructive step.
//!
//! The checks are independent functions so front ends can run them one by one and show each
//! result as it arrives; [`run_all`] runs them in order.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::detect::{Connection, Installation};
use crate::packages::rollback::{self, RollbackError, RollbackOptions, RollbackPlan};
use crate::packages::{self, PackageError};
use crate::pg::conn::{describe_pg_error, ConnSpec};
use crate::progress::{Cancel, Sink};
use crate::restore::database::version_mismatch_message;
use crate::root::HostRoot;
use crate::version::GitLabVersion;

/// Verdict of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Warn,
    Fail,
}

impl Status {
    /// `pass`, `warn`, `fail`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

/// Which check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    /// The archive reads end to end: tar index, metadata, every compressed member decodes.
    Archive,
    /// Free disk for the safety snapshot next to the journal.
    FreeDisk,
    /// The database is reachable, with the privileges to drop and create its objects (one
    /// check per database of the installation).
    Database,
    /// The GitLab version the backup needs is installed or installable.
    TargetPackage,
    /// No other sessions write to the database (one check per database).
    Writers,
}

impl CheckKind {
    /// All checks in the order they run.
    pub const ALL: [CheckKind; 5] = [
        CheckKind::Archive,
        CheckKind::FreeDisk,
        CheckKind::Database,
        CheckKind::TargetPackage,
        CheckKind::Writers,
    ];

    /// Short label for screens.
    pub fn label(self) -> &'static str {
        match self {
            CheckKind::Archive => "archive readable end to end",
            CheckKind::FreeDisk => "free disk for the safety snapshot",
            CheckKind::Database => "database reachable with privileges",
            CheckKind::TargetPackage => "target GitLab version available",
            CheckKind::Writers => "writers stopped",
        }
    }
}

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub kind: CheckKind,
    pub status: Status,
    /// What was found.
    pub reason: String,
    /// What to do about it (empty on pass).
    pub fix: String,
    /// The database connection (`main`, `ci`) a per-database check is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
}

impl Check {
    fn new(kind: CheckKind, status: Status, reason: impl Into<String>, fix: &str) -> Check {
        Check {
            kind,
            status,
            reason: reason.into(),
            fix: fix.to_string(),
            database: None,
        }
    }

    fn with_fix(mut self, fix: String) -> Check {
        self.fix = fix;
        self
    }

    fn of_database(mut self, connection: &Connection) -> Check {
        self.database = Some(connection.as_str().to_string());
        self
    }

    /// The check's label, naming its database connection when it has one and `named`.
    pub fn label(&self, named: bool) -> String {
        match (&self.database, named) {
            (Some(db), true) => format!("{} ({db})", self.kind.label()),
            _ => self.kind.label().to_string(),
        }
    }
}

/// Whether any check failed (destructive steps are then blocked).
pub fn any_failed(checks: &[Check]) -> bool {
    checks.iter().any(|c| c.status == Status::Fail)
}

/// What the checks look at.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// The archive (a path on this machine, already mapped through the host root).
    pub archive: PathBuf,
    /// The version the backup was made on.
    pub target: Option<GitLabVersion>,
    /// The installation as detected.
    pub installation: Installation,
    /// The host root the installation is under: the version check plans the rollback
    /// there (read-only).
    pub root: HostRoot,
    /// Every database the restore loads (main first, then ci, ...: the connections with
    /// `database_tasks`), each with its connection name.
    pub databases: Vec<(Connection, ConnSpec)>,
    /// Directory where the safety snapshot will be written (the journal directory, mapped).
    pub snapshot_dir: PathBuf,
}

impl Inputs {
    /// The databases of `inst` the restore loads: every connection with `database_tasks`.
    pub fn databases_of(inst: &Installation) -> Vec<(Connection, ConnSpec)> {
        inst.databases
            .iter()
            .filter(|d| d.database_tasks)
            .map(|d| (d.name.clone(), d.spec.clone()))
            .collect()
    }
}

/// Run every check in order, calling `each` as each one finishes. The database and
/// writers checks run once per database; the checks of one kind all run (cancellation is
/// looked at between kinds).
pub fn run_all(
    inputs: &Inputs,
    sink: &dyn Sink,
    cancel: &Cancel,
    each: &mut dyn FnMut(&Check),
) -> Vec<Check> {
    run_all_keeping(inputs, sink, cancel, each).0
}

/// [`run_all`], also returning the archive's verification with its stamp when the archive
/// check passed, so the recovery that follows need not read the archive again while it is
/// unchanged ([`crate::backup::verify::Verified::still_valid`]).
pub fn run_all_keeping(
    inputs: &Inputs,
    sink: &dyn Sink,
    cancel: &Cancel,
    each: &mut dyn FnMut(&Check),
) -> (Vec<Check>, Option<crate::backup::verify::Verified>) {
    let mut out = Vec::new();
    let mut verified = None;
    for kind in CheckKind::ALL {
        if cancel.is_cancelled() {
            break;
        }
        let checks = match kind {
            CheckKind::Archive => {
                let (check, kept) = check_archive_keeping(&inputs.archive, sink, cancel);
                verified = kept;
                vec![check]
            }
            CheckKind::FreeDisk => {
                // The safety snapshot holds every database: their sizes add up.
                let sizes: Option<Vec<u64>> = inputs
                    .databases
                    .iter()
                    .map(|(_, spec)| database_size(spec))
                    .collect();
                let needed = sizes
                    .filter(|s| !s.is_empty())
                    .map(|s| s.iter().sum::<u64>());
                vec![check_free_disk(&inputs.snapshot_dir, needed)]
            }
            CheckKind::Database if inputs.databases.is_empty() => vec![Check::new(
                kind,
                Status::Fail,
                "no database connection found (database.yml not read)",
                "point Rewind at the database with --database-url, or at the host tree with --root",
            )],
            CheckKind::Database => inputs
                .databases
                .iter()
                .map(|(name, spec)| check_database(spec).of_database(name))
                .collect(),
            CheckKind::TargetPackage => vec![check_target_version(
                &inputs.root,
                &inputs.installation,
                inputs.target.as_ref(),
            )],
            CheckKind::Writers if inputs.databases.is_empty() => vec![Check::new(
                kind,
                Status::Warn,
                "no database connection: cannot see who is connected",
                "stop puma and sidekiq before the restore (the wizard's next step)",
            )],
            CheckKind::Writers => inputs
                .databases
                .iter()
                .map(|(name, spec)| check_writers(spec).of_database(name))
                .collect(),
        };
        for check in checks {
            each(&check);
            out.push(check);
        }
    }
    (out, verified)
}

/// Read the archive end to end with [`crate::backup::verify::verify`]: tar index,
/// `backup_information.yml`, every compressed member decoded. Reports [`Phase::Verify`]
/// progress in bytes of the archive.
pub fn check_archive(path: &Path, sink: &dyn Sink, cancel: &Cancel) -> Check {
    check_archive_keeping(path, sink, cancel).0
}

/// [`check_archive`], with the verification and the archive's stamp when it passed.
fn check_archive_keeping(
    path: &Path,
    sink: &dyn Sink,
    cancel: &Cancel,
) -> (Check, Option<crate::backup::verify::Verified>) {
    let kind = CheckKind::Archive;
    match crate::backup::verify::verify_stamped(path, sink, Some(cancel)) {
        Ok((report, kept)) => {
            let reason = format!(
                "{} members read end to end{}",
                report.members.len(),
                if report.warnings.is_empty() {
                    String::new()
                } else {
                    format!("; {}", report.warnings.join("; "))
                }
            );
            let check = Check::new(
                kind,
                if report.warnings.is_empty() {
                    Status::Pass
                } else {
                    Status::Warn
                },
                reason,
                if report.warnings.is_empty() {
                    ""
                } else {
                    "read the warnings; they do not stop a restore"
                },
            );
            (check, kept)
        }
        Err(e) => (
            Check::new(
                kind,
                Status::Fail,
                e.to_string(),
                "the archive is damaged or incomplete; copy it again from where it is kept, or pick another backup",
            ),
            None,
        ),
    }
}

/// Size of the database in bytes, when it can be read.
pub fn database_size(spec: &ConnSpec) -> Option<u64> {
    let mut client = spec.connect().ok()?;
    let row = client
        .query_one("SELECT pg_database_size(current_database())", &[])
        .ok()?;
    let n: i64 = row.get(0);
    u64::try_from(n).ok()
}

/// Free space in `dir` (or its nearest existing ancestor) against the database size the
/// safety snapshot will need at most.
pub fn check_free_disk(dir: &Path, needed: Option<u64>) -> Check {
    let kind = CheckKind::FreeDisk;
    let mut probe = dir.to_path_buf();
    while !probe.exists() {
        if !probe.pop() {
            break;
        }
    }
    let stat = match nix::sys::statvfs::statvfs(&probe) {
        Ok(s) => s,
        Err(e) => {
            return Check::new(
                kind,
                Status::Warn,
                format!("cannot read free space of {}: {e}", probe.display()),
                "check the free space by hand (df -h) before going on",
            )
        }
    };
    let free = stat.blocks_available() as u64 * stat.fragment_size() as u64;
    match needed {
        None => Check::new(
            kind,
            Status::Warn,
            format!(
                "{} free in {}; database size unknown",
                human(free),
                probe.display()
            ),
            "make sure the free space exceeds the database size before the safety snapshot",
        ),
        Some(need) if free < need => Check::new(
            kind,
            Status::Fail,
            format!(
                "{} free in {}, the database is {}",
                human(free),
                probe.display(),
                human(need)
            ),
            "free space there, or decline the safety snapshot (not recommended)",
        ),
        Some(need) if free < need.saturating_mul(2) => Check::new(
            kind,
            Status::Warn,
            format!(
                "{} free in {}, the database is {}: the snapshot fits with little margin",
                human(free),
                probe.display(),
                human(need)
            ),
            "free more space if you can",
        ),
        Some(need) => Check::new(
            kind,
            Status::Pass,
            format!(
                "{} free in {}, database {}",
                human(free),
                probe.display(),
                human(need)
            ),
            "",
        ),
    }
}

/// Connect and check that the user can drop and recreate the database's objects: a
/// superuser, or the owner of the database.
pub fn check_database(spec: &ConnSpec) -> Check {
    let kind = CheckKind::Database;
    let mut client = match spec.connect() {
        Ok(c) => c,
        Err(e) => {
            return Check::new(
                kind,
                Status::Fail,
                e.to_string(),
                "start PostgreSQL (gitlab-ctl start postgresql), or fix the connection in database.yml / --database-url",
            )
        }
    };
    let row = match client.query_one(
        "SELECT current_user::text, \
                (SELECT rolsuper FROM pg_roles WHERE rolname = current_user), \
                pg_get_userbyid(d.datdba)::text, \
                has_database_privilege(current_user, current_database(), 'CREATE') \
         FROM pg_database d WHERE d.datname = current_database()",
        &[],
    ) {
        Ok(r) => r,
        Err(e) => {
            return Check::new(
                kind,
                Status::Fail,
                format!(
                    "connected to {} on {} but cannot read its privileges: {}",
                    spec.dbname,
                    spec.target(),
                    describe_pg_error(&e)
                ),
                "connect as the database owner or a superuser",
            )
        }
    };
    let user: String = row.get(0);
    let superuser: bool = row.get::<_, Option<bool>>(1).unwrap_or(false);
    let owner: String = row.get(2);
    let create: bool = row.get(3);
    let db = &spec.dbname;
    if superuser {
        Check::new(
            kind,
            Status::Pass,
            format!(
                "{db} on {} as {user} (superuser), connected {}",
                spec.target(),
                spec.connect_as().describe()
            ),
            "",
        )
    } else if owner == user && create {
        Check::new(
            kind,
            Status::Pass,
            format!(
                "{db} on {} as {user} (owner), connected {}",
                spec.target(),
                spec.connect_as().describe()
            ),
            "",
        )
    } else {
        Check::new(
            kind,
            Status::Fail,
            format!("{user} is neither a superuser nor the owner of {db} (owner: {owner})"),
            "connect as the owner (GitLab's database user) or a superuser with --database-url",
        )
    }
}

/// Whether the version the backup needs is installed, or else installable by the rollback
/// step. GitLab refuses to restore a backup made on another version, so this check leads:
///
/// - installed == the backup's release: pass;
/// - another version is installed, and the rollback the wizard would run can be planned
///   (the package manager offers exactly that version; for a source install, the git tag is
///   in the checkout): warn, naming what will be installed;
/// - it cannot be planned (the version is not offered, the edition differs, the PostgreSQL
///   data is too new for it, no package manager, ...): fail, with GitLab's own
///   version-mismatch message, before any service is stopped.
///
/// Read-only: the same planning as `rewind rollback --dry-run` (the package manager is
/// asked which versions its current lists offer; nothing is refreshed or installed).
pub fn check_target_version(
    root: &HostRoot,
    inst: &Installation,
    target: Option<&GitLabVersion>,
) -> Check {
    let kind = CheckKind::TargetPackage;
    let Some(target) = target else {
        return Check::new(
            kind,
            Status::Fail,
            "the backup does not say which GitLab version made it",
            "pick a backup whose backup_information.yml has gitlab_version",
        );
    };
    let installed = match &inst.version {
        Some(installed) if installed.same_release(target) => {
            return Check::new(kind, Status::Pass, format!("{target} is installed"), "")
        }
        Some(installed) => installed,
        None => {
            return Check::new(
                kind,
                Status::Fail,
                "the installed GitLab version is unknown",
                "point Rewind at the host tree with --root",
            )
        }
    };
    let mismatch = || {
        Check::new(
            kind,
            Status::Fail,
            version_mismatch_message(&installed.to_string(), &target.to_string()),
            "",
        )
    };
    match rollback::plan(root, target, RollbackOptions::default()) {
        Ok(RollbackPlan::Package(p)) => Check::new(
            kind,
            Status::Warn,
            format!(
                "{installed} is installed, the backup needs {target}: the rollback step installs {} {} ({})",
                p.target.edition_or_ce().package(),
                p.install.version.raw,
                p.manager
            ),
            "",
        )
        .with_fix(format!(
            "the rollback step runs `{}`; GitLab refuses to restore a backup from another version",
            p.steps
                .iter()
                .find(|s| s.step == "rollback.install")
                .map(|s| s.cmd.display())
                .unwrap_or_default()
        )),
        Ok(RollbackPlan::AlreadyInstalled { version }) => Check::new(
            kind,
            Status::Pass,
            format!("{version} is installed (package database)"),
            "",
        ),
        Ok(RollbackPlan::Source {
            rails_root,
            target: t,
            ..
        }) => {
            let tag = rollback::git_tag(&t);
            let dir = root.join(&rails_root);
            match git_tag_present(&dir, &tag) {
                Ok(()) => Check::new(
                    kind,
                    Status::Warn,
                    format!(
                        "{installed} is installed, the backup needs {target}: the tag {tag} is in {}",
                        rails_root.display()
                    ),
                    "",
                )
                .with_fix(format!(
                    "the rollback step gives the checkout (git checkout {tag}) and the rebuild checklist; GitLab refuses to restore a backup from another version"
                )),
                Err(why) => mismatch().with_fix(format!(
                    "{why}. Fetch the tags (sudo -u git -H git -C {} fetch --all --tags --prune), then `git checkout {tag}`, and run the checks again",
                    rails_root.display()
                )),
            }
        }
        Ok(RollbackPlan::Docker { image, .. }) => Check::new(
            kind,
            Status::Warn,
            format!(
                "{installed} is installed, the backup needs {target}: GitLab runs in a container, the rollback step is to run the image {image}"
            ),
            "make sure the image can be pulled (docker pull) before the services are stopped",
        ),
        Err(RollbackError::Package(PackageError::NotAvailable(u))) => {
            let list = packages::list_cmd(u.manager, root, &u.package)
                .map(|c| c.display())
                .unwrap_or_else(|_| format!("{} {}", u.manager.program(), u.package));
            mismatch().with_fix(format!(
                "{} {} is not offered by the configured {} repositories (offered: {}); `{list}` lists what they offer. Add the repository that has {} (then `{}`), or download {} and install it with `{}`; then run the checks again. Or pick a backup made on an offered version",
                u.package, u.version, u.manager, u.available, u.version, u.refresh, u.url, u.install_file
            ))
        }
        // The editions differ: the rollback step asks; the check says whether the backup's
        // edition can be installed.
        Err(RollbackError::Package(PackageError::EditionChange {
            target_edition,
            installed_package,
            ..
        })) => match rollback::plan(
            root,
            target,
            RollbackOptions {
                allow_edition_change: true,
                ..RollbackOptions::default()
            },
        ) {
            Ok(RollbackPlan::Package(p)) => Check::new(
                kind,
                Status::Warn,
                format!(
                    "the editions differ: {installed_package} is installed, the backup was made on GitLab {} {}: the rollback step asks, and installs {} {} ({})",
                    target_edition.as_str().to_uppercase(),
                    target.base(),
                    p.target.edition_or_ce().package(),
                    p.install.version.raw,
                    p.manager
                ),
                "",
            )
            .with_fix(format!(
                "GitLab restores a backup only into the edition that made it (a version without -ee is CE); the rollback step installs {} in place of {installed_package}",
                target_edition.package()
            )),
            Ok(_) => Check::new(
                kind,
                Status::Warn,
                format!(
                    "the editions differ: {installed_package} is installed, the backup was made on GitLab {}",
                    target_edition.as_str().to_uppercase()
                ),
                "",
            )
            .with_fix("install the backup's edition before the restore: GitLab restores a backup only into the edition that made it".to_string()),
            Err(e) => mismatch().with_fix(format!(
                "the editions differ ({installed_package} installed, the backup made on GitLab {}) and the backup's edition cannot be installed: {e}",
                target_edition.as_str().to_uppercase()
            )),
        },
        Err(e) => mismatch().with_fix(format!("the rollback step cannot install it: {e}")),
    }
}

/// Whether the git checkout `dir` has the tag `tag`: a loose ref or a line of
/// `packed-refs`, read from the files (no git process, no ownership checks).
fn git_tag_present(dir: &Path, tag: &str) -> Result<(), String> {
    let git = dir.join(".git");
    if !git.is_dir() {
        return Err(format!("{} is not a git checkout", dir.display()));
    }
    if git.join("refs/tags").join(tag).is_file() {
        return Ok(());
    }
    let want = format!("refs/tags/{tag}");
    let packed = std::fs::read_to_string(git.join("packed-refs")).unwrap_or_default();
    if packed
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some(want.as_str()))
    {
        return Ok(());
    }
    Err(format!("the tag {tag} is not in {}", dir.display()))
}

/// Other sessions connected to the database (puma, sidekiq, ...).
pub fn check_writers(spec: &ConnSpec) -> Check {
    let kind = CheckKind::Writers;
    let mut client = match spec.connect() {
        Ok(c) => c,
        Err(e) => {
            return Check::new(
                kind,
                Status::Warn,
                format!(
                    "cannot connect to {} to see who is connected: {e}",
                    spec.dbname
                ),
                "stop puma and sidekiq before the restore",
            )
        }
    };
    let rows = match client.query(
        "SELECT coalesce(nullif(application_name, ''), usename::text, 'unknown'), count(*) \
         FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid() \
         GROUP BY 1 ORDER BY 1",
        &[],
    ) {
        Ok(r) => r,
        Err(e) => {
            return Check::new(
                kind,
                Status::Warn,
                format!(
                    "cannot list the sessions of {}: {}",
                    spec.dbname,
                    describe_pg_error(&e)
                ),
                "stop puma and sidekiq before the restore",
            )
        }
    };
    if rows.is_empty() {
        return Check::new(
            kind,
            Status::Pass,
            format!("no other session is connected to {}", spec.dbname),
            "",
        );
    }
    let list: Vec<String> = rows
        .iter()
        .map(|r| format!("{} ({})", r.get::<_, String>(0), r.get::<_, i64>(1)))
        .collect();
    Check::new(
        kind,
        Status::Warn,
        format!(
            "other sessions connected to {}: {}",
            spec.dbname,
            list.join(", ")
        ),
        "the next step stops puma and sidekiq (gitlab-ctl stop puma; gitlab-ctl stop sidekiq)",
    )
}

fn human(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg::cluster::TempCluster;
    use crate::progress::{Event, NullSink, Phase};
    use std::io::Write;

    fn tar_with(members: &[(&str, Vec<u8>)]) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        let mut b = tar::Builder::new(f.reopen().unwrap());
        for (name, data) in members {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o600);
            h.set_cksum();
            b.append_data(&mut h, name, &data[..]).unwrap();
        }
        b.finish().unwrap();
        f
    }

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn a_sound_archive_passes_and_a_corrupt_member_fails() {
        let info = b":db_version: '20240410000000'\n:backup_created_at: 2026-11-15 09:46:40 UTC\n:gitlab_version: 16.10.3-ee\n:tar_version: tar (GNU tar) 1.34\n:installation_type: omnibus-gitlab\n:skipped: ''\n".to_vec();
        let good = tar_with(&[
            ("backup_information.yml", info.clone()),
            ("db/database.sql.gz", gz(b"SELECT 1;\n")),
        ]);
        let events = std::sync::Mutex::new(Vec::new());
        let sink = |e: Event| events.lock().unwrap().push(e);
        let c = check_archive(good.path(), &sink, &Cancel::new());
        assert!(c.status != Status::Fail, "{c:?}");
        assert!(c.reason.contains("members read end to end"), "{}", c.reason);
        assert!(events.lock().unwrap().iter().any(|e| matches!(
            e,
            Event::Progress {
                phase: Phase::Verify,
                ..
            }
        )));

        let mut broken = gz(b"SELECT 1; SELECT 2; SELECT 3;\n");
        let mid = broken.len() / 2;
        broken[mid] ^= 0xff;
        broken[mid + 1] ^= 0xff;
        let bad = tar_with(&[
            ("backup_information.yml", info),
            ("db/database.sql.gz", broken),
        ]);
        let c = check_archive(bad.path(), &NullSink, &Cancel::new());
        assert_eq!(c.status, Status::Fail, "{c:?}");
        assert!(c.reason.contains("db/database.sql.gz"), "{}", c.reason);

        let not_gitlab = tar_with(&[("x.txt", b"x".to_vec())]);
        let c = check_archive(not_gitlab.path(), &NullSink, &Cancel::new());
        assert_eq!(c.status, Status::Fail, "{c:?}");
        assert!(c.reason.contains("backup_information.yml"), "{}", c.reason);
    }

    #[test]
    fn free_disk_compares_with_the_database_size() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("rewind/not/yet");
        assert_eq!(check_free_disk(&missing, Some(1)).status, Status::Pass);
        assert_eq!(
            check_free_disk(&missing, Some(u64::MAX)).status,
            Status::Fail
        );
        assert_eq!(check_free_disk(&missing, None).status, Status::Warn);
    }

    fn v(s: &str) -> GitLabVersion {
        s.parse().unwrap()
    }

    /// A sandbox root with real dpkg and apt: stand-in packages of 16.10.3 and 16.11.0 in
    /// a local repository, 16.11.0 installed (the rollback tests' host).
    fn apt_host() -> (tempfile::TempDir, HostRoot) {
        let dir = tempfile::tempdir().unwrap();
        let root = HostRoot::new(dir.path().join("root"));
        std::fs::create_dir_all(root.base()).unwrap();
        let repo = crate::packages::sandbox_repo::build_repo(
            &dir.path().join("repo"),
            &[v("16.10.3-ee"), v("16.11.0-ee")],
        )
        .unwrap();
        crate::packages::sandbox_repo::prepare_apt_root(&root, &repo).unwrap();
        crate::packages::sandbox_repo::dpkg_install(&root, repo.deb(&v("16.11.0-ee")).unwrap())
            .unwrap();
        (dir, root)
    }

    fn detected(root: &HostRoot) -> Installation {
        crate::detect::detect(root, &crate::detect::DetectOptions::default()).unwrap()
    }

    #[test]
    fn the_version_check_passes_warns_or_fails_as_the_package_manager_can_install() {
        let (_dir, root) = apt_host();
        let inst = detected(&root);
        let status_file = root.join("/var/lib/dpkg/status");
        let before = std::fs::read(&status_file).unwrap();

        // Installed: pass.
        let c = check_target_version(&root, &inst, Some(&v("16.11.0-ee")));
        assert_eq!(c.status, Status::Pass, "{c:?}");

        // Offered by the repository: warn, naming the package version to be installed.
        let c = check_target_version(&root, &inst, Some(&v("16.10.3-ee")));
        assert_eq!(c.status, Status::Warn, "{c:?}");
        assert!(c.reason.contains("gitlab-ee 16.10.3-ee.0"), "{c:?}");
        assert!(c.fix.contains("gitlab-ee=16.10.3-ee.0"), "{c:?}");

        // Neither installed nor offered: fail with GitLab's own message, and the package
        // command that lists what is offered.
        let c = check_target_version(&root, &inst, Some(&v("16.9.2-ee")));
        assert_eq!(c.status, Status::Fail, "{c:?}");
        assert_eq!(
            c.reason,
            crate::restore::database::version_mismatch_message("16.11.0-ee", "16.9.2-ee")
        );
        assert!(
            c.reason.contains(
                "Please switch to the following version and try again:\n  version: 16.9.2-ee"
            ),
            "{c:?}"
        );
        assert!(c.fix.contains("madison gitlab-ee"), "{c:?}");
        assert!(c.fix.contains("16.10.3-ee.0"), "{c:?}");

        // The other edition, which this repository does not offer: the rollback would ask
        // to install it and could not; fail, saying both.
        let c = check_target_version(&root, &inst, Some(&v("16.10.3-ce")));
        assert_eq!(c.status, Status::Fail, "{c:?}");
        assert!(c.fix.contains("the editions differ"), "{c:?}");
        assert!(c.fix.contains("cannot be installed"), "{c:?}");

        // Read-only: the package database is as it was.
        assert_eq!(std::fs::read(&status_file).unwrap(), before);
        assert_eq!(
            detected(&root).version,
            Some(v("16.11.0")).map(|_| v("16.11.0-ee"))
        );
    }

    #[test]
    fn a_source_install_needs_the_tag_in_its_checkout() {
        let dir = tempfile::tempdir().unwrap();
        let root = HostRoot::new(dir.path());
        let f = root.join(crate::detect::source::VERSION);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(&f, "16.11.0-ee\n").unwrap();
        let inst = detected(&root);

        // Not a checkout: fail, with the checkout hint.
        let c = check_target_version(&root, &inst, Some(&v("16.10.3-ee")));
        assert_eq!(c.status, Status::Fail, "{c:?}");
        assert!(c.reason.starts_with("GitLab version mismatch:"), "{c:?}");
        assert!(c.fix.contains("git checkout v16.10.3-ee"), "{c:?}");

        let git = root.join("/home/git/gitlab/.git");
        std::fs::create_dir_all(git.join("refs/tags")).unwrap();
        std::fs::write(
            git.join("packed-refs"),
            "# pack-refs with: peeled fully-peeled sorted\n\
             1111111111111111111111111111111111111111 refs/tags/v16.10.3-ee\n\
             ^2222222222222222222222222222222222222222\n",
        )
        .unwrap();
        std::fs::write(
            git.join("refs/tags/v16.9.2-ee"),
            "3333333333333333333333333333333333333333\n",
        )
        .unwrap();
        for (t, tag) in [("16.10.3-ee", "v16.10.3-ee"), ("16.9.2-ee", "v16.9.2-ee")] {
            let c = check_target_version(&root, &inst, Some(&v(t)));
            assert_eq!(c.status, Status::Warn, "{c:?}");
            assert!(c.reason.contains(tag), "{c:?}");
        }
        let c = check_target_version(&root, &inst, Some(&v("16.8.0-ee")));
        assert_eq!(c.status, Status::Fail, "{c:?}");
        assert!(c.fix.contains("the tag v16.8.0-ee is not in"), "{c:?}");
        assert_eq!(
            check_target_version(&root, &inst, Some(&v("16.11.0-ee"))).status,
            Status::Pass
        );
    }

    #[test]
    fn every_database_is_checked_and_named() {
        let cluster = TempCluster::start().unwrap();
        cluster.create_database("gitlabhq_production").unwrap();
        cluster.create_database("gitlabhq_production_ci").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let archive = tar_with(&[("x.txt", b"x".to_vec())]);
        let inputs = Inputs {
            archive: archive.path().to_path_buf(),
            target: None,
            installation: detected(&HostRoot::new(dir.path())),
            root: HostRoot::new(dir.path()),
            databases: vec![
                (Connection::Main, cluster.conn_spec("gitlabhq_production")),
                (Connection::Ci, cluster.conn_spec("gitlabhq_production_ci")),
            ],
            snapshot_dir: dir.path().to_path_buf(),
        };
        let mut seen = Vec::new();
        let checks = run_all(&inputs, &NullSink, &Cancel::new(), &mut |c| {
            seen.push(c.clone())
        });
        assert_eq!(checks, seen);
        let of = |k: CheckKind| -> Vec<&Check> { checks.iter().filter(|c| c.kind == k).collect() };
        for kind in [CheckKind::Database, CheckKind::Writers] {
            let list = of(kind);
            assert_eq!(list.len(), 2, "{checks:?}");
            assert_eq!(list[0].database.as_deref(), Some("main"));
            assert_eq!(list[1].database.as_deref(), Some("ci"));
            assert_eq!(list[0].status, Status::Pass, "{:?}", list[0]);
            assert!(
                list[0].reason.contains("gitlabhq_production")
                    && !list[0].reason.contains("gitlabhq_production_ci"),
                "{:?}",
                list[0]
            );
            assert!(
                list[1].reason.contains("gitlabhq_production_ci"),
                "{:?}",
                list[1]
            );
            assert_eq!(list[1].label(true), format!("{} (ci)", kind.label()));
        }
        // One check each of the others; the free disk check sums both databases.
        for kind in [
            CheckKind::Archive,
            CheckKind::FreeDisk,
            CheckKind::TargetPackage,
        ] {
            assert_eq!(of(kind).len(), 1, "{checks:?}");
        }
        assert_ne!(of(CheckKind::FreeDisk)[0].status, Status::Warn);
        assert!(any_failed(&checks));
    }

    #[test]
    fn database_privileges_and_writers_are_read_from_the_server() {
        let cluster = TempCluster::start().unwrap();
        cluster.create_database("gitlabhq_production").unwrap();
        let spec = cluster.conn_spec("gitlabhq_production");
        let c = check_database(&spec);
        assert_eq!(c.status, Status::Pass, "{c:?}");
        // Omnibus's model: the non-superuser owner, reached through the peer map.
        assert!(c.reason.contains("as gitlab (owner)"), "{c:?}");
        if crate::pg::cluster::running_as_root() {
            assert!(c.reason.contains("as OS user git"), "{c:?}");
        }

        assert_eq!(check_writers(&spec).status, Status::Pass);
        let mut other = cluster.connect("gitlabhq_production").unwrap();
        other
            .batch_execute("SET application_name = 'puma'")
            .unwrap();
        let w = check_writers(&spec);
        assert_eq!(w.status, Status::Warn);
        assert!(w.reason.contains("puma (1)"), "{}", w.reason);
        drop(other);

        let mut admin = cluster.connect("postgres").unwrap();
        admin
            .batch_execute("CREATE ROLE reader LOGIN; CREATE ROLE git LOGIN")
            .unwrap();
        // A role the peer map admits no OS user for: the connection itself is refused.
        let mut reader = spec.clone();
        reader.user = "reader".into();
        let c = check_database(&reader);
        assert_eq!(c.status, Status::Fail, "{c:?}");
        assert!(c.reason.contains("authentication failed"), "{c:?}");
        if crate::pg::cluster::running_as_root() {
            // Role `git`, reached as OS user git through the map's same-name rule, owns
            // nothing.
            let mut git = spec.clone();
            git.user = "git".into();
            let c = check_database(&git);
            assert_eq!(c.status, Status::Fail, "{c:?}");
            assert!(
                c.reason.contains("neither a superuser nor the owner"),
                "{c:?}"
            );
        }

        let mut nowhere = spec.clone();
        nowhere.port = 1;
        assert_eq!(check_database(&nowhere).status, Status::Fail);
    }
}
