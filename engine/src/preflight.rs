//! Preflight: the checks that run before anything changes, each with a verdict (pass, warn,
//! fail), the reason, and the fix. A failed check blocks every destructive step.
//!
//! The checks are independent functions so front ends can run them one by one and show each
//! result as it arrives; [`run_all`] runs them in order.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::detect::Installation;
use crate::pg::conn::{describe_pg_error, ConnSpec};
use crate::progress::{Cancel, Sink};
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
    /// The database is reachable, with the privileges to drop and create its objects.
    Database,
    /// The GitLab version the backup needs is installed or installable.
    TargetPackage,
    /// No other sessions write to the database.
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
}

impl Check {
    fn new(kind: CheckKind, status: Status, reason: impl Into<String>, fix: &str) -> Check {
        Check {
            kind,
            status,
            reason: reason.into(),
            fix: fix.to_string(),
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
    /// The database to restore into.
    pub conn: Option<ConnSpec>,
    /// Directory where the safety snapshot will be written (the journal directory, mapped).
    pub snapshot_dir: PathBuf,
}

/// Run every check in order, calling `each` as each one finishes.
pub fn run_all(
    inputs: &Inputs,
    sink: &dyn Sink,
    cancel: &Cancel,
    each: &mut dyn FnMut(&Check),
) -> Vec<Check> {
    let mut out = Vec::new();
    let mut db_size = None;
    for kind in CheckKind::ALL {
        if cancel.is_cancelled() {
            break;
        }
        let check = match kind {
            CheckKind::Archive => check_archive(&inputs.archive, sink, cancel),
            CheckKind::FreeDisk => {
                if let Some(spec) = &inputs.conn {
                    db_size = database_size(spec);
                }
                check_free_disk(&inputs.snapshot_dir, db_size)
            }
            CheckKind::Database => match &inputs.conn {
                Some(spec) => check_database(spec),
                None => Check::new(
                    kind,
                    Status::Fail,
                    "no database connection found (database.yml not read)",
                    "point Rewind at the database with --database-url, or at the host tree with --root",
                ),
            },
            CheckKind::TargetPackage => {
                check_target_version(&inputs.installation, inputs.target.as_ref())
            }
            CheckKind::Writers => match &inputs.conn {
                Some(spec) => check_writers(spec),
                None => Check::new(
                    kind,
                    Status::Warn,
                    "no database connection: cannot see who is connected",
                    "stop puma and sidekiq before the restore (the wizard's next step)",
                ),
            },
        };
        each(&check);
        out.push(check);
    }
    out
}

/// Read the archive end to end with [`crate::backup::verify::verify`]: tar index,
/// `backup_information.yml`, every compressed member decoded. Reports [`Phase::Verify`]
/// progress in bytes of the archive.
pub fn check_archive(path: &Path, sink: &dyn Sink, cancel: &Cancel) -> Check {
    let kind = CheckKind::Archive;
    match crate::backup::verify::verify(path, sink, Some(cancel)) {
        Ok(report) => {
            let reason = format!(
                "{} members read end to end{}",
                report.members.len(),
                if report.warnings.is_empty() {
                    String::new()
                } else {
                    format!("; {}", report.warnings.join("; "))
                }
            );
            Check::new(
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
            )
        }
        Err(e) => Check::new(
            kind,
            Status::Fail,
            e.to_string(),
            "the archive is damaged or incomplete; copy it again from where it is kept, or pick another backup",
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
                    "connected to {} but cannot read its privileges: {}",
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

/// Whether the version the backup needs is installed. When it is not, the rollback step
/// installs it; this check then warns so the operator knows a downgrade comes.
pub fn check_target_version(inst: &Installation, target: Option<&GitLabVersion>) -> Check {
    let kind = CheckKind::TargetPackage;
    let Some(target) = target else {
        return Check::new(
            kind,
            Status::Fail,
            "the backup does not say which GitLab version made it",
            "pick a backup whose backup_information.yml has gitlab_version",
        );
    };
    match &inst.version {
        Some(installed) if installed.same_release(target) => Check::new(
            kind,
            Status::Pass,
            format!("{target} is installed"),
            "",
        ),
        Some(installed) => Check::new(
            kind,
            Status::Warn,
            format!("{installed} is installed, the backup needs {target}"),
            "the rollback step installs it; GitLab refuses to restore a backup from another version",
        ),
        None => Check::new(
            kind,
            Status::Fail,
            "the installed GitLab version is unknown",
            "point Rewind at the host tree with --root",
        ),
    }
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
                format!("cannot connect to see who is connected: {e}"),
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
                format!("cannot list sessions: {}", describe_pg_error(&e)),
                "stop puma and sidekiq before the restore",
            )
        }
    };
    if rows.is_empty() {
        return Check::new(kind, Status::Pass, "no other session is connected", "");
    }
    let list: Vec<String> = rows
        .iter()
        .map(|r| format!("{} ({})", r.get::<_, String>(0), r.get::<_, i64>(1)))
        .collect();
    Check::new(
        kind,
        Status::Warn,
        format!("other sessions connected: {}", list.join(", ")),
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
