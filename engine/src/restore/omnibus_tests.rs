//! Restores as Omnibus runs them: as the role `gitlab`, which owns the database but is no
//! superuser, with extensions and PgBouncer's `public.pg_shadow_lookup(...)` owned by the
//! superuser `gitlab-psql`. The result must equal GitLab's pipeline (`gzip -dc | psql`
//! run as `gitlab`), and what cannot be restored must be refused before the drop.

use std::io::{Read, Write};
use std::path::Path;
use std::process::Stdio;

use super::database::tests::{data_of, schema_of};
use super::database::{
    member_for, DatabaseJob, DirSource, Loader, ParallelLoader, PsqlLoader, RestoreError,
    RestoreFacts, RestoreOptions, RestoreRun,
};
use super::drop::DropOptions;
use super::load::SkipReason;
use super::plan::{build_plan, BackupFacts};
use crate::journal::Journal;
use crate::pg::cluster::TempCluster;
use crate::pg::conn::ConnSpec;
use crate::progress::{Cancel, NullSink};
use crate::root::HostRoot;
use crate::version::GitLabVersion;

/// The throwaway cluster already has Omnibus's `gitlab` and `gitlab-psql` (and its peer
/// map); PgBouncer's role comes on top.
const ROLES: &str = "CREATE ROLE pgbouncer LOGIN;";

/// What `gitlab-psql` sets up in the database (Omnibus with PgBouncer).
const SUPERUSER_SETUP: &str = r#"
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
    CREATE EXTENSION IF NOT EXISTS btree_gist;
    CREATE OR REPLACE FUNCTION public.pg_shadow_lookup(i_username text, OUT username text, OUT password text)
        RETURNS record LANGUAGE plpgsql SECURITY DEFINER AS $$
    BEGIN
        SELECT usename, passwd FROM pg_catalog.pg_shadow WHERE usename = i_username
            INTO username, password;
        RETURN;
    END;
    $$;
    ALTER FUNCTION public.pg_shadow_lookup(text) OWNER TO "gitlab-psql";
    REVOKE ALL ON FUNCTION public.pg_shadow_lookup(text) FROM PUBLIC;
    GRANT EXECUTE ON FUNCTION public.pg_shadow_lookup(text) TO pgbouncer;
"#;

/// A database created before PostgreSQL 15 and upgraded: `public` belongs to the
/// superuser and everyone may create in it. Then `gitlab` cannot drop gitlab-psql's
/// function (on a new database it owns `public` and can).
const UPGRADED_PUBLIC: &str = r#"
    ALTER SCHEMA public OWNER TO "gitlab-psql";
    GRANT CREATE, USAGE ON SCHEMA public TO PUBLIC;
"#;

/// What `gitlab` (the migrations) creates.
const GITLAB_TABLES: &str = r#"
    CREATE TABLE schema_migrations (version character varying NOT NULL PRIMARY KEY);
    INSERT INTO schema_migrations VALUES ('20240101000000'), ('20240301000000');
    CREATE TABLE projects (id bigserial PRIMARY KEY, name text NOT NULL);
    INSERT INTO projects (name) SELECT 'project ' || g FROM generate_series(1, 200) g;
    CREATE INDEX index_projects_on_name_trigram ON projects USING gin (name gin_trgm_ops);
    COMMENT ON TABLE projects IS 'projects; of gitlab';
    CREATE TABLE reservations (id bigserial PRIMARY KEY, room int, during tsrange,
        EXCLUDE USING gist (room WITH =, during WITH &&));
    INSERT INTO reservations (room, during) VALUES (1, '[2024-01-01,2024-01-02)'),
        (1, '[2024-01-02,2024-01-03)');
"#;

fn as_user(c: &TempCluster, db: &str, user: &str) -> ConnSpec {
    let mut s = c.conn_spec(db);
    s.user = user.into();
    s
}

fn run_sql(spec: &ConnSpec, sql: &str) {
    spec.connect().unwrap().batch_execute(sql).unwrap();
}

/// A database owned by `gitlab` as Omnibus sets it up: `superuser_setup` by the
/// superuser, then `tables` by `gitlab`.
fn omnibus_database(c: &TempCluster, db: &str, superuser_setup: &str, tables: &str) {
    c.connect("postgres")
        .unwrap()
        .batch_execute(&format!("CREATE DATABASE \"{db}\" OWNER gitlab"))
        .unwrap();
    if !superuser_setup.is_empty() {
        c.connect(db)
            .unwrap()
            .batch_execute(superuser_setup)
            .unwrap();
    }
    if !tables.is_empty() {
        run_sql(&as_user(c, db, "gitlab"), tables);
    }
}

/// GitLab's pipeline: `gzip -dc | psql <db>` as `gitlab`, errors printed, exit 0.
fn gitlab_psql_restore(c: &TempCluster, gz: &Path, db: &str) -> String {
    let mut sql = Vec::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(gz).unwrap())
        .read_to_end(&mut sql)
        .unwrap();
    let mut child = as_user(c, db, "gitlab")
        .client_command(&c.tool_path("psql"), "psql-reference")
        .args(["-X", "-q"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&sql);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn facts(backup_path: &Path) -> RestoreFacts {
    let v: GitLabVersion = "17.5.1-ee".parse().unwrap();
    RestoreFacts {
        backup_version: Some(v.clone()),
        backup_version_text: Some("17.5.1-ee".into()),
        installed_version: Some(v),
        db_version: Some("20240301000000".into()),
        backup_path: backup_path.to_path_buf(),
    }
}

fn opts(db: &str, snapshot: bool) -> RestoreOptions {
    RestoreOptions {
        confirm_drop: vec![db.to_string()],
        snapshot,
        reuse_snapshots: Default::default(),
        jobs: 2,
        continue_on_error: false,
        allow_version_mismatch: false,
        drop: DropOptions::default(),
        throwaway: false,
        beside: None,
        catalogs: Default::default(),
    }
}

fn restore_as_gitlab(
    c: &TempCluster,
    backup: &Path,
    db: &str,
    loader: &dyn Loader,
    snapshot: bool,
) -> Result<Vec<super::database::DatabaseOutcome>, RestoreError> {
    let backup_path = tempfile::tempdir().unwrap();
    let journal = Journal::open_in(&Journal::dir_for(backup_path.path())).unwrap();
    let facts = facts(backup_path.path());
    let o = opts(db, snapshot);
    RestoreRun {
        root: &HostRoot::system(),
        source: &DirSource {
            dir: backup.to_path_buf(),
        },
        loader,
        facts: &facts,
        opts: &o,
        journal: &journal,
        sink: &NullSink,
        cancel: &Cancel::new(),
    }
    .run(&[DatabaseJob {
        connection: "main".into(),
        spec: as_user(c, db, "gitlab"),
        member: member_for("main"),
    }])
}

fn function_owner(c: &TempCluster, db: &str) -> String {
    c.connect(db)
        .unwrap()
        .query_one(
            "SELECT pg_get_userbyid(proowner)::text FROM pg_proc WHERE proname = 'pg_shadow_lookup'",
            &[],
        )
        .unwrap()
        .get(0)
}

#[test]
fn restore_as_non_superuser_owner_equals_gitlabs_psql_pipeline() {
    let c = TempCluster::start().unwrap();
    c.connect("postgres").unwrap().batch_execute(ROLES).unwrap();
    let db = "gitlabhq_production";
    let setup = format!("{UPGRADED_PUBLIC}{SUPERUSER_SETUP}");
    omnibus_database(&c, db, &setup, GITLAB_TABLES);
    let backup = tempfile::tempdir().unwrap();
    let gz = backup.path().join("db/database.sql.gz");
    super::database::tests::dump_gz(&c, db, &gz);

    // GitLab's restore over the populated database: its drop leaves the function and the
    // extensions (gitlab-psql's), psql prints the errors and goes on.
    omnibus_database(&c, "reference", &setup, "");
    let stderr = gitlab_psql_restore(&c, &gz, "reference");
    assert!(
        stderr.contains("must be owner of function public.pg_shadow_lookup")
            && stderr.contains("already exists with same argument types"),
        "{stderr}"
    );

    // Rewind, as gitlab, over the populated database (snapshot, drop, load, verify).
    run_sql(
        &as_user(&c, db, "gitlab"),
        "UPDATE projects SET name = 'changed' WHERE id < 10",
    );
    let out = restore_as_gitlab(&c, backup.path(), db, &ParallelLoader, true).unwrap();
    let main = &out[0];
    assert!(main.verify.as_ref().unwrap().ok(), "{:?}", main.verify);
    let load = main.load.as_ref().unwrap();
    assert!(load.errors.is_empty(), "{:?}", load.errors);
    let skipped = &load.skipped_privilege;
    let find = |reason: SkipReason, stmt: &str| {
        skipped
            .iter()
            .find(|s| s.reason == reason && s.error.statement.starts_with(stmt))
    };
    // The function stays gitlab-psql's: its DROP fails ("must be owner of", ignored),
    // CREATE finds it there (skipped), ALTER ... OWNER TO its own owner is a no-op, and
    // gitlab may not GRANT/REVOKE on it (skipped).
    let grant = find(
        SkipReason::NotPermitted,
        "GRANT ALL ON FUNCTION public.pg_shadow_lookup",
    )
    .or_else(|| {
        find(
            SkipReason::NotPermitted,
            "REVOKE ALL ON FUNCTION public.pg_shadow_lookup",
        )
    })
    .unwrap_or_else(|| panic!("{skipped:#?}"));
    assert!(
        grant.error.object.contains("pg_shadow_lookup")
            && grant
                .error
                .message
                .contains("permission denied for function"),
        "{grant:?}"
    );
    assert_eq!(grant.error.sqlstate.as_deref(), Some("42501"));
    let create = find(
        SkipReason::OwnedByAnotherRole,
        "CREATE FUNCTION public.pg_shadow_lookup",
    )
    .unwrap_or_else(|| panic!("{skipped:#?}"));
    assert_eq!(create.error.sqlstate.as_deref(), Some("42723"));
    assert!(
        find(SkipReason::NotPermitted, "COMMENT ON EXTENSION").is_some(),
        "{skipped:#?}"
    );
    let privileges = main.privileges.as_ref().unwrap();
    assert_eq!(privileges.role, "gitlab");
    assert!(
        privileges.warnings()[0].contains("will be skipped, as GitLab's restore skips them"),
        "{:?}",
        privileges.warnings()
    );
    assert_eq!(schema_of(&c, db), schema_of(&c, "reference"));
    assert_eq!(data_of(&c, db), data_of(&c, "reference"));
    assert_eq!(function_owner(&c, db), "gitlab-psql");

    // GitLab's own pipeline through the same orchestration: the same errors are skipped
    // (recognised by psql's line numbers), none is left, the same database.
    let psql = PsqlLoader {
        root: HostRoot::system(),
    };
    let out = restore_as_gitlab(&c, backup.path(), db, &psql, false).unwrap();
    let load = out[0].load.as_ref().unwrap();
    assert_eq!(load.loader, "psql");
    assert!(load.errors.is_empty(), "{:?}", load.errors);
    let kinds: Vec<(SkipReason, String)> = load
        .skipped_privilege
        .iter()
        .map(|s| (s.reason, s.error.object.clone()))
        .collect();
    let parallel: Vec<(SkipReason, String)> = skipped
        .iter()
        .map(|s| (s.reason, s.error.object.clone()))
        .collect();
    assert_eq!(kinds, parallel);
    assert_eq!(schema_of(&c, db), schema_of(&c, "reference"));
    assert_eq!(data_of(&c, db), data_of(&c, "reference"));
}

#[test]
fn restore_as_non_superuser_owner_into_an_empty_database_equals_psql() {
    let c = TempCluster::start().unwrap();
    c.connect("postgres").unwrap().batch_execute(ROLES).unwrap();
    omnibus_database(&c, "source", SUPERUSER_SETUP, GITLAB_TABLES);
    let backup = tempfile::tempdir().unwrap();
    let gz = backup.path().join("db/database.sql.gz");
    super::database::tests::dump_gz(&c, "source", &gz);

    // New databases owned by gitlab, nothing in them: gitlab creates the (trusted)
    // extensions and the function itself; only OWNER TO "gitlab-psql" fails.
    omnibus_database(&c, "reference", "", "");
    let stderr = gitlab_psql_restore(&c, &gz, "reference");
    assert!(
        stderr.contains("must be member of role \"gitlab-psql\""),
        "{stderr}"
    );
    omnibus_database(&c, "fresh", "", "");
    let out = restore_as_gitlab(&c, backup.path(), "fresh", &ParallelLoader, false).unwrap();
    let main = &out[0];
    assert!(main.verify.as_ref().unwrap().ok(), "{:?}", main.verify);
    let load = main.load.as_ref().unwrap();
    assert!(load.errors.is_empty(), "{:?}", load.errors);
    let owner: Vec<_> = load
        .skipped_privilege
        .iter()
        .filter(|s| {
            s.error
                .message
                .contains("must be member of role \"gitlab-psql\"")
        })
        .collect();
    assert_eq!(owner.len(), 1, "{:#?}", load.skipped_privilege);
    assert_eq!(owner[0].reason, SkipReason::NotPermitted);
    assert!(owner[0]
        .error
        .object
        .contains("FUNCTION public.pg_shadow_lookup"));
    let p = main.privileges.as_ref().unwrap();
    assert!(p
        .extensions
        .iter()
        .all(|e| e.state == super::privileges::ExtensionState::Creatable));
    assert_eq!(schema_of(&c, "fresh"), schema_of(&c, "reference"));
    assert_eq!(data_of(&c, "fresh"), data_of(&c, "reference"));
    assert_eq!(function_owner(&c, "fresh"), "gitlab");
}

#[test]
fn extension_the_role_may_not_create_is_refused_before_the_drop() {
    let c = TempCluster::start().unwrap();
    c.connect("postgres").unwrap().batch_execute(ROLES).unwrap();
    let db = "gitlabhq_production";
    let setup = format!("{SUPERUSER_SETUP}\nCREATE EXTENSION postgres_fdw;");
    omnibus_database(&c, db, &setup, GITLAB_TABLES);
    let backup = tempfile::tempdir().unwrap();
    super::database::tests::dump_gz(&c, db, &backup.path().join("db/database.sql.gz"));
    // The server the backup is restored on does not have it installed.
    c.connect(db)
        .unwrap()
        .batch_execute("DROP EXTENSION postgres_fdw")
        .unwrap();
    let before = (schema_of(&c, db), data_of(&c, db));

    // The dry run says so.
    let backup_path = tempfile::tempdir().unwrap();
    let job = DatabaseJob {
        connection: "main".into(),
        spec: as_user(&c, db, "gitlab"),
        member: member_for("main"),
    };
    let plan = build_plan(
        &DirSource {
            dir: backup.path().to_path_buf(),
        },
        std::slice::from_ref(&job),
        &BackupFacts {
            id: "1_2024_01_01_17.5.1-ee".into(),
            components: vec!["db".into()],
            skipped_at_backup: vec![],
            created_at: Some(chrono::Utc::now()),
        },
        &facts(backup_path.path()),
        &opts(db, true),
        &[],
    );
    let dbp = &plan.databases[0];
    assert!(
        dbp.status.starts_with("refused:") && dbp.status.contains("postgres_fdw"),
        "{}",
        dbp.status
    );
    assert!(!plan.runnable());
    // The loss report reads as the application role, refused restore or not.
    assert!(dbp.since_backup.is_some(), "{:?}", dbp.since_backup_error);
    assert!(
        dbp.privilege_warnings
            .iter()
            .any(|w| w.contains("will be skipped")),
        "{:?}",
        dbp.privilege_warnings
    );

    // The restore refuses before the snapshot and the drop.
    let e = restore_as_gitlab(&c, backup.path(), db, &ParallelLoader, true).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, RestoreError::Privileges(_)), "{msg}");
    assert!(
        msg.contains("`postgres_fdw` is not installed")
            && msg.contains(
                "gitlab-psql -d gitlabhq_production -c 'CREATE EXTENSION \"postgres_fdw\""
            )
            && msg.contains("Nothing was changed"),
        "{msg}"
    );
    assert_eq!((schema_of(&c, db), data_of(&c, db)), before);
    let tables: i64 = c
        .connect(db)
        .unwrap()
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(tables, 3);

    // Once a superuser created it, the restore runs.
    c.connect(db)
        .unwrap()
        .batch_execute("CREATE EXTENSION postgres_fdw")
        .unwrap();
    let out = restore_as_gitlab(&c, backup.path(), db, &ParallelLoader, false).unwrap();
    assert!(out[0].verify.as_ref().unwrap().ok());
}
