//! The drill's stand-in for `gitlab-rake db:migrate` of GitLab 16.11.0: it runs the
//! upgrade's migrations against the sandbox database the way Rails does, one by one,
//! skipping those recorded in `schema_migrations`, and fails like Rails when a migration's
//! table or column already exists (what a restore made without dropping tables leaves).
//! Its output has Rails' format, so the repair loop reads it like a real migrate log.

use std::fmt::Write as _;

use crate::detect::{detect, DetectOptions};
use crate::root::HostRoot;
use crate::sandbox::upgrade::{UpgradeMigration, FAILING_MIGRATION, UPGRADE_MIGRATIONS};

/// What a migration does, and how to tell that its object already exists.
struct Step {
    /// SQL returning one boolean: does the object exist already?
    exists: &'static str,
    /// The Rails/PG error when it does: (class, message).
    duplicate: Option<(&'static str, &'static str)>,
    /// SQL applying the migration.
    apply: &'static str,
}

fn step_for(version: &str) -> Option<Step> {
    Some(match version {
        "20240417093215" => Step {
            exists: "SELECT to_regclass('public.zoekt_replicas') IS NOT NULL",
            duplicate: Some(("PG::DuplicateTable", "relation \"zoekt_replicas\" already exists")),
            apply: "CREATE TABLE zoekt_replicas (id bigserial PRIMARY KEY, zoekt_enabled_namespace_id bigint, namespace_id bigint NOT NULL, state smallint DEFAULT 0 NOT NULL, created_at timestamp with time zone NOT NULL, updated_at timestamp with time zone NOT NULL); CREATE INDEX index_zoekt_replicas_on_namespace_id_and_state ON zoekt_replicas USING btree (namespace_id, state)",
        },
        "20240418101500" => Step {
            exists: "SELECT to_regclass('public.ml_model_metadata') IS NOT NULL",
            duplicate: Some(("PG::DuplicateTable", "relation \"ml_model_metadata\" already exists")),
            apply: "CREATE TABLE ml_model_metadata (id bigserial PRIMARY KEY, model_id bigint NOT NULL, project_id bigint NOT NULL REFERENCES projects(id) ON DELETE CASCADE, name text NOT NULL, value text NOT NULL, created_at timestamp with time zone NOT NULL, updated_at timestamp with time zone NOT NULL); CREATE UNIQUE INDEX index_ml_model_metadata_on_model_id_and_name ON ml_model_metadata USING btree (model_id, name)",
        },
        "20240419082037" => Step {
            exists: "SELECT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = 'public' AND table_name = 'projects' AND column_name = 'duo_features_enabled')",
            duplicate: Some(("PG::DuplicateColumn", "column \"duo_features_enabled\" of relation \"projects\" already exists")),
            apply: "ALTER TABLE projects ADD COLUMN duo_features_enabled boolean DEFAULT true NOT NULL",
        },
        // add_concurrent_index checks index_exists? first: an existing index is skipped.
        "20240422142000" => Step {
            exists: "SELECT to_regclass('public.index_issues_on_project_id_and_closed_at') IS NOT NULL",
            duplicate: None,
            apply: "CREATE INDEX index_issues_on_project_id_and_closed_at ON issues USING btree (project_id, closed_at)",
        },
        "20240423064716" => Step {
            exists: "SELECT to_regclass('gitlab_partitions_dynamic.audit_events_202406') IS NOT NULL",
            duplicate: Some(("PG::DuplicateTable", "relation \"audit_events_202406\" already exists")),
            apply: "CREATE TABLE gitlab_partitions_dynamic.audit_events_202406 PARTITION OF audit_events FOR VALUES FROM ('2024-06-01 00:00:00+00') TO ('2024-07-01 00:00:00+00')",
        },
        "20240424120000" => Step {
            exists: "SELECT false",
            duplicate: None,
            apply: "UPDATE projects SET duo_features_enabled = archived IS NOT TRUE",
        },
        _ => return None,
    })
}

fn announce(m: &UpgradeMigration, what: &str) -> String {
    let text = format!("{} {}: {what}", m.version, m.name);
    format!(
        "== {text} {}",
        "=".repeat(75usize.saturating_sub(text.chars().count()))
    )
}

/// Run the stand-in migration against the main database of the host under `root`.
/// Returns the exit code and the output (stdout and stderr, as Rails interleaves them).
pub fn run(root: &HostRoot) -> (i32, String) {
    let mut out = String::new();
    let inst = match detect(root, &DetectOptions::default()) {
        Ok(i) => i,
        Err(e) => return (1, format!("rake aborted!\n{e}\n")),
    };
    let Some(db) = inst.main_db() else {
        return (
            1,
            "rake aborted!\nno main database in database.yml\n".into(),
        );
    };
    let mut client = match db.spec.connect() {
        Ok(c) => c,
        Err(e) => {
            return (
                1,
                format!("rake aborted!\nActiveRecord::ConnectionNotEstablished: {e}\n"),
            )
        }
    };
    let all: Vec<&UpgradeMigration> = UPGRADE_MIGRATIONS
        .iter()
        .chain([&FAILING_MIGRATION])
        .collect();
    for m in all {
        let done: bool = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = $1)",
                &[&m.version],
            )
            .map(|r| r.get(0))
            .unwrap_or(false);
        if done {
            continue;
        }
        let Some(step) = step_for(m.version) else {
            continue;
        };
        let _ = writeln!(out, "{}", announce(m, "migrating"));
        for s in m.steps {
            let _ = writeln!(out, "{s}");
        }
        let exists: bool = client
            .query_one(step.exists, &[])
            .map(|r| r.get(0))
            .unwrap_or(false);
        if exists {
            if let Some((class, message)) = step.duplicate {
                let _ = write!(
                    out,
                    "rake aborted!\nStandardError: An error has occurred, this and all later migrations canceled:\n\n{class}: ERROR:  {message}\n/opt/gitlab/embedded/service/gitlab-rails/db/migrate/{}.rb:8:in `change'\nTasks: TOP => db:migrate\n(See full trace by running task with --trace)\n",
                    m.version
                );
                return (1, out);
            }
        } else {
            let mut tx = match client.transaction() {
                Ok(t) => t,
                Err(e) => return (1, format!("{out}rake aborted!\n{e}\n")),
            };
            let applied = tx
                .batch_execute(step.apply)
                .and_then(|_| {
                    tx.execute(
                        "INSERT INTO schema_migrations (version) VALUES ($1)",
                        &[&m.version],
                    )
                    .map(|_| ())
                })
                .and_then(|_| tx.commit());
            if let Err(e) = applied {
                let _ = write!(
                    out,
                    "rake aborted!\nStandardError: An error has occurred, this and all later migrations canceled:\n\n{}\n",
                    crate::pg::conn::describe_pg_error(&e)
                );
                return (1, out);
            }
            let _ = writeln!(out, "   -> 0.0102s");
            let _ = writeln!(out, "{}\n", announce(m, "migrated (0.0135s)"));
            continue;
        }
        // Existing index skipped by index_exists?: recorded like Rails does.
        let _ = client.execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[&m.version],
        );
        let _ = writeln!(out, "{}\n", announce(m, "migrated (0.0011s)"));
    }
    (0, out)
}
