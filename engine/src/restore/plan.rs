//! The plan of a restore, computed without changing anything: what `--dry-run` prints and
//! what the confirmation screen shows. Per database: the snapshot path, every statement of
//! the drop with the failed upgrade's leftovers marked, and the phases; per component:
//! whether this command restores it, and if not why (never silently skipped).

use std::path::PathBuf;

use serde::Serialize;

use super::database::{
    catalog_and_leftovers, check_version, DatabaseJob, DumpSource, RestoreFacts, RestoreOptions,
};
use super::drop::{DropConfirmation, DropPlan};
use super::inventory::inventory;
use super::leftovers::{CatalogCost, LeftoverKind, Leftovers};
use super::loss::{since_backup, LossOptions, LossReport};
use super::privileges::{check_privileges, PrivilegeReport};
use super::snapshot::snapshot_path;
use crate::journal::Journal;

/// GitLab's restore order of backup components (`lib/backup/manager.rb`).
pub const COMPONENT_ORDER: [&str; 12] = [
    "db",
    "repositories",
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

/// What `rewind restore` does with a file component: extracts it, previous contents moved
/// aside to `<backup_path>/tmp/<name>.<epoch>/<dir>` (see `files::restore_components`).
pub const FILES_RESTORED: &str = "restore (previous contents moved aside to <backup_path>/tmp)";

/// What `rewind restore` does with `repositories/`: gitaly-backup restores them (see
/// `recovery::restore`), after `--confirm-repositories`.
pub const REPOSITORIES_RESTORED: &str =
    "restore with gitaly-backup (every repository on the storages is replaced; needs --confirm-repositories)";

/// The phases of a database restore, in order.
pub const PHASES: [&str; 6] = ["catalog", "snapshot", "drop", "load", "verify", "summary"];

/// One component of the backup and what happens to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ComponentPlan {
    pub name: String,
    /// `restore`, `skipped (--skip)`, `skipped (not in the backup: ...)` or
    /// [`FILES_RESTORED`] or [`REPOSITORIES_RESTORED`].
    pub status: String,
}

/// One statement of the drop, marked when it removes a leftover.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedDrop {
    pub sql: String,
    pub class: String,
    pub object: String,
    /// The object is not in the backup (the failed upgrade added it).
    pub leftover: bool,
    /// Row estimate and size, for tables.
    pub rows: Option<u64>,
    pub bytes: Option<u64>,
}

/// The plan for one database.
#[derive(Debug, Clone, Serialize)]
pub struct DatabasePlan {
    pub connection: crate::detect::Connection,
    pub database: String,
    /// Where the database is (socket or host), never the password.
    pub target: String,
    pub member: String,
    /// Whether the backup holds the member.
    pub present: bool,
    /// What happens: `restore`, GitLab's skip message, or why it cannot run.
    pub status: String,
    /// `--confirm-drop` names this database.
    pub confirmed: bool,
    pub snapshot_path: Option<PathBuf>,
    pub database_size: Option<u64>,
    pub drop: Vec<PlannedDrop>,
    pub leftovers: Option<Leftovers>,
    pub catalog_cost: Option<CatalogCost>,
    /// What the restoring role may do with the dump (roles, extensions).
    pub privileges: Option<PrivilegeReport>,
    /// Lines about it to show (statements that will be skipped, ...).
    pub privilege_warnings: Vec<String>,
    /// What the restore throws away: written since the backup (read-only counts).
    pub since_backup: Option<LossReport>,
    /// Why there is no such report (no backup time, or it could not be read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since_backup_error: Option<String>,
    pub phases: Vec<String>,
}

/// The whole plan.
#[derive(Debug, Clone, Serialize)]
pub struct RestorePlan {
    pub backup: String,
    pub backup_version: Option<String>,
    pub installed_version: Option<String>,
    /// `None` when the versions match or the mismatch is allowed; else GitLab's message.
    pub version_problem: Option<String>,
    pub db_version: Option<String>,
    pub jobs: usize,
    pub snapshot: bool,
    pub continue_on_error: bool,
    pub journal: PathBuf,
    pub databases: Vec<DatabasePlan>,
    pub components: Vec<ComponentPlan>,
}

impl RestorePlan {
    /// Whether the plan could run as it stands (versions, confirmations, databases).
    pub fn runnable(&self) -> bool {
        self.version_problem.is_none()
            && self
                .databases
                .iter()
                .all(|d| !d.present || (d.confirmed && d.status == "restore"))
    }
}

/// Status of every component: present in the backup (`members`), skipped when the backup
/// was made (`skipped_at_backup`), or by `--skip`.
pub fn component_plan(
    present: &[String],
    skipped_at_backup: &[String],
    skip: &[String],
) -> Vec<ComponentPlan> {
    let mut out = Vec::new();
    for name in COMPONENT_ORDER {
        let has = present.iter().any(|p| p == name);
        let status = if skip.iter().any(|s| s == name) {
            "skipped (--skip)".to_string()
        } else if skipped_at_backup.iter().any(|s| s == name) {
            "skipped (not in the backup: skipped when it was made)".to_string()
        } else if !has {
            continue;
        } else if name == "db" {
            "restore".to_string()
        } else if name == "repositories" {
            REPOSITORIES_RESTORED.to_string()
        } else {
            FILES_RESTORED.to_string()
        };
        out.push(ComponentPlan {
            name: name.to_string(),
            status,
        });
    }
    // Components GitLab does not know (newer versions) are listed too, never dropped.
    for p in present {
        if !COMPONENT_ORDER.contains(&p.as_str()) {
            out.push(ComponentPlan {
                name: p.clone(),
                status: FILES_RESTORED.to_string(),
            });
        }
    }
    out
}

/// Inputs of [`build_plan`] about the backup.
#[derive(Debug, Clone)]
pub struct BackupFacts {
    pub id: String,
    /// Components present (`db` when a database dump is there, file components by name,
    /// `repositories`).
    pub components: Vec<String>,
    pub skipped_at_backup: Vec<String>,
    /// `backup_created_at` of `backup_information.yml`: what was written after it is lost.
    pub created_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Compute the plan: connects read-only to each database, reads each dump once for its
/// catalogue. Changes nothing.
pub fn build_plan(
    source: &dyn DumpSource,
    jobs: &[DatabaseJob],
    backup: &BackupFacts,
    facts: &RestoreFacts,
    opts: &RestoreOptions,
    skip: &[String],
) -> RestorePlan {
    let version_problem = check_version(facts, opts.allow_version_mismatch)
        .err()
        .map(|e| e.to_string());
    let mut databases = Vec::new();
    let skip_db = skip.iter().any(|s| s == "db");
    let mut stop = false;
    for job in jobs {
        let present = source.has(&job.member);
        let confirmed = opts
            .confirm_drop
            .iter()
            .any(|c| DropConfirmation::new(Some(c), &job.spec.dbname).is_ok());
        let mut plan = DatabasePlan {
            connection: job.connection.clone(),
            database: job.spec.dbname.clone(),
            target: job.spec.target(),
            member: job.member.clone(),
            present,
            status: "restore".into(),
            confirmed,
            snapshot_path: None,
            database_size: None,
            drop: Vec::new(),
            leftovers: None,
            catalog_cost: None,
            privileges: None,
            privilege_warnings: Vec::new(),
            since_backup: None,
            since_backup_error: None,
            phases: Vec::new(),
        };
        if skip_db {
            plan.status = "skipped (--skip db)".into();
            databases.push(plan);
            continue;
        }
        if stop {
            plan.status =
                "not tried (an earlier database's dump is missing, as GitLab does)".into();
            databases.push(plan);
            continue;
        }
        if !present {
            plan.status = if job.connection == "main" {
                format!("Source database file does not exist {}", job.member)
            } else {
                stop = true;
                super::database::skipping_message(&job.connection)
            };
            databases.push(plan);
            continue;
        }
        let inv = match job
            .spec
            .connect()
            .map_err(|e| e.to_string())
            .and_then(|mut c| inventory(&mut c).map_err(|e| e.to_string()))
        {
            Ok(i) => i,
            Err(e) => {
                plan.status = format!("cannot plan: {e}");
                databases.push(plan);
                continue;
            }
        };
        plan.database_size = Some(inv.database_size);
        // The catalogue read while the archive was verified, when there is one.
        let first = catalog_and_leftovers(
            opts.catalogs.get(&job.member),
            source,
            &job.member,
            &job.spec,
            &inv,
            facts.db_version.as_deref(),
        );
        let left = match first {
            Ok((catalog, cost, left)) => {
                plan.catalog_cost = Some(cost);
                match job
                    .spec
                    .connect()
                    .map_err(|e| e.to_string())
                    .and_then(|mut c| check_privileges(&mut c, &catalog).map_err(|e| e.to_string()))
                {
                    Ok(p) => {
                        if let Some(refusal) = p.refusal() {
                            plan.status = format!("refused: {refusal}");
                        }
                        plan.privilege_warnings = p.warnings();
                        plan.privileges = Some(p);
                    }
                    Err(e) => plan.status = format!("cannot plan: {e}"),
                }
                match backup.created_at {
                    Some(at) => match job.spec.connect().map_err(|e| e.to_string()).and_then(|mut c| {
                        since_backup(&mut c, at, &catalog, &left, &LossOptions::default())
                            .map_err(|e| e.to_string())
                    }) {
                        Ok(r) => plan.since_backup = Some(r),
                        Err(e) => plan.since_backup_error = Some(e),
                    },
                    None => {
                        plan.since_backup_error = Some(
                            "the backup's time is unknown (no readable backup_created_at in backup_information.yml): what was written since is not counted".into(),
                        )
                    }
                }
                Some(left)
            }
            Err(e) => {
                plan.status = format!("cannot plan: {e}");
                None
            }
        };
        let is_left = |kind: LeftoverKind, schema: &str, name: &str| {
            left.as_ref()
                .is_some_and(|l| l.contains(kind, schema, name))
        };
        for st in DropPlan::from_inventory(&inv).statements {
            // Row estimates and sizes mean something for tables only.
            let rel = inv.relation(&st.schema, &st.name).filter(|r| {
                r.kind.is_table() || r.kind == super::inventory::RelKind::MaterializedView
            });
            let leftover = match st.class {
                "DROP TABLE" => is_left(LeftoverKind::Table, &st.schema, &st.name),
                "DROP VIEW" => is_left(LeftoverKind::View, &st.schema, &st.name),
                "DROP MATERIALIZED VIEW" => {
                    is_left(LeftoverKind::MaterializedView, &st.schema, &st.name)
                }
                "DROP SCHEMA" => is_left(LeftoverKind::Schema, "", &st.name),
                _ => false,
            };
            plan.drop.push(PlannedDrop {
                object: if st.schema.is_empty() {
                    st.name.clone()
                } else {
                    format!("{}.{}", st.schema, st.name)
                },
                sql: st.sql,
                class: st.class.to_string(),
                leftover,
                rows: rel.map(|r| r.row_estimate),
                bytes: rel.map(|r| r.size_bytes),
            });
        }
        plan.leftovers = left;
        if opts.snapshot {
            plan.snapshot_path = Some(snapshot_path(
                &facts.backup_path,
                &job.spec.dbname,
                chrono::Utc::now(),
            ));
        }
        plan.phases = PHASES
            .iter()
            .filter(|p| opts.snapshot || **p != "snapshot")
            .map(|p| p.to_string())
            .collect();
        if !confirmed && plan.status == "restore" {
            plan.status = format!("restore (needs --confirm-drop {} to run)", job.spec.dbname);
        }
        databases.push(plan);
    }
    RestorePlan {
        backup: backup.id.clone(),
        backup_version: facts
            .backup_version
            .as_ref()
            .map(|v| v.to_string())
            .or_else(|| facts.backup_version_text.clone()),
        installed_version: facts.installed_version.as_ref().map(|v| v.to_string()),
        version_problem,
        db_version: facts.db_version.clone(),
        jobs: opts.jobs,
        snapshot: opts.snapshot,
        continue_on_error: opts.continue_on_error,
        journal: Journal::dir_for(&facts.backup_path).join("journal.jsonl"),
        databases,
        components: component_plan(&backup.components, &backup.skipped_at_backup, skip),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg::cluster::TempCluster;
    use crate::restore::database::tests::{dump_gz, schema_of, FAILED_UPGRADE, SCHEMA};
    use crate::restore::database::{member_for, DirSource};
    use crate::restore::drop::DropOptions;
    use crate::version::GitLabVersion;

    #[test]
    fn components_are_never_silently_skipped() {
        let present: Vec<String> = ["db", "uploads", "repositories", "lfs", "newthing"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let plan = component_plan(&present, &["builds".into()], &["lfs".into()]);
        let got: Vec<(&str, &str)> = plan
            .iter()
            .map(|c| (c.name.as_str(), c.status.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("db", "restore"),
                ("repositories", REPOSITORIES_RESTORED),
                ("uploads", FILES_RESTORED),
                (
                    "builds",
                    "skipped (not in the backup: skipped when it was made)"
                ),
                ("lfs", "skipped (--skip)"),
                ("newthing", FILES_RESTORED),
            ]
        );
    }

    #[test]
    fn dry_run_plan_marks_leftovers_and_changes_nothing() {
        let c = TempCluster::start().unwrap();
        c.create_database("gitlabhq_production").unwrap();
        c.connect_app("gitlabhq_production")
            .unwrap()
            .batch_execute(SCHEMA)
            .unwrap();
        let backup = tempfile::tempdir().unwrap();
        dump_gz(
            &c,
            "gitlabhq_production",
            &backup.path().join("db/database.sql.gz"),
        );
        c.connect_app("gitlabhq_production")
            .unwrap()
            .batch_execute(FAILED_UPGRADE)
            .unwrap();
        let before = schema_of(&c, "gitlabhq_production");
        let v: GitLabVersion = "16.10.3-ee".parse().unwrap();
        let backup_path = tempfile::tempdir().unwrap();
        let facts = RestoreFacts {
            backup_version: Some(v.clone()),
            backup_version_text: None,
            installed_version: Some(v),
            db_version: Some("20240301000000".into()),
            backup_path: backup_path.path().to_path_buf(),
        };
        let opts = RestoreOptions {
            confirm_drop: vec![],
            snapshot: true,
            reuse_snapshots: Default::default(),
            jobs: 3,
            continue_on_error: false,
            allow_version_mismatch: false,
            drop: DropOptions::default(),
            throwaway: false,
            beside: None,
            catalogs: Default::default(),
        };
        let jobs = vec![DatabaseJob {
            connection: "main".into(),
            spec: c.conn_spec("gitlabhq_production"),
            member: member_for("main"),
        }];
        let plan = build_plan(
            &DirSource {
                dir: backup.path().to_path_buf(),
            },
            &jobs,
            &BackupFacts {
                id: "1_2024_01_01_16.10.3-ee".into(),
                components: vec!["db".into(), "uploads".into()],
                skipped_at_backup: vec![],
                created_at: Some(chrono::Utc::now() - chrono::Duration::hours(1)),
            },
            &facts,
            &opts,
            &[],
        );
        let db = &plan.databases[0];
        assert!(!db.confirmed);
        assert!(db.status.contains("--confirm-drop gitlabhq_production"));
        assert!(!plan.runnable());
        let lfs = db
            .drop
            .iter()
            .find(|d| d.object == "public.lfs_objects")
            .unwrap();
        assert!(lfs.leftover);
        let projects = db
            .drop
            .iter()
            .find(|d| d.object == "public.projects")
            .unwrap();
        assert!(!projects.leftover);
        assert!(projects.rows.is_some());
        assert!(db
            .drop
            .iter()
            .any(|d| d.object == "public.lfs_view" && d.leftover));
        assert!(db
            .snapshot_path
            .as_ref()
            .unwrap()
            .starts_with(backup_path.path().join("rewind/snapshots")));
        // What the restore throws away: the failed upgrade's table, empty.
        let loss = db.since_backup.as_ref().unwrap();
        assert_eq!(loss.new_tables.len(), 1, "{loss:?}");
        assert_eq!(loss.new_tables[0].table, "lfs_objects");
        assert_eq!(loss.new_tables[0].rows, Some(0));
        assert_eq!(plan.jobs, 3);
        assert_eq!(plan.components[1].status, FILES_RESTORED);
        // Nothing changed, nothing written.
        assert_eq!(schema_of(&c, "gitlabhq_production"), before);
        assert!(!backup_path.path().join("rewind").exists());
    }
}
