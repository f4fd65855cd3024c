//! `rewind salvage` through the built binary on a sandbox host (an Omnibus-like tree with
//! peer authentication, a 16.10.3 backup, a real cluster) after a failed upgrade: the rows
//! created since the backup are written before the restore, `rewind restore` drops them,
//! `rewind salvage --import` brings back exactly those that can come back, and lists the
//! one that conflicts and the one that lost its parent. A hostile salvage directory is
//! refused.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use rewind_engine::pg::cluster::TempCluster;
use rewind_engine::sandbox::{self, upgrade, SandboxSpec};

mod common;
use common::{json, rewind, text};

/// Rows created after the backup (2024-04-20 10:11:12 UTC), as GitLab would: a user with
/// a namespace, a project, two issues (one on a project of the backup) and a note; a user
/// whose name someone takes again after the restore, and a namespace of that user.
const SINCE: &str = "
    INSERT INTO users (id, username, email, name, created_at, updated_at) VALUES
        (900001, 'rescued', 'rescued@example.com', 'Rescued', '2024-06-10 09:00+00', '2024-06-10 09:00+00'),
        (900002, 'taken-again', 'taken@example.com', 'Taken', '2024-06-10 09:01+00', '2024-06-10 09:01+00');
    INSERT INTO namespaces (id, name, path, owner_id, created_at, updated_at) VALUES
        (900001, 'rescued', 'rescued', 900001, '2024-06-10 09:02+00', '2024-06-10 09:02+00'),
        (900002, 'taken', 'taken-again', 900002, '2024-06-10 09:03+00', '2024-06-10 09:03+00');
    INSERT INTO projects (id, name, path, namespace_id, creator_id, description, created_at, updated_at) VALUES
        (900001, 'Rescued', 'rescued', 900001, 900001, E'with, \"quotes\"\nand lines', '2024-06-10 09:04+00', '2024-06-10 09:04+00');
    INSERT INTO issues (id, project_id, author_id, iid, title, created_at, updated_at) VALUES
        (900001, 900001, 900001, 1, 'rescued issue', '2024-06-10 09:05+00', '2024-06-10 09:05+00'),
        (900002, (SELECT min(id) FROM projects), 900001, 900002, 'on an old project', '2024-06-10 09:06+00', '2024-06-10 09:06+00');
    INSERT INTO notes (id, note, noteable_type, noteable_id, project_id, author_id, created_at, updated_at) VALUES
        (900001, 'rescued note', 'Issue', 900001, 900001, 900001, '2024-06-10 09:07+00', '2024-06-10 09:07+00');";

/// Ours: `(table, id)` of the rows that must come back.
const BACK: &[(&str, i64)] = &[
    ("users", 900001),
    ("namespaces", 900001),
    ("projects", 900001),
    ("issues", 900001),
    ("issues", 900002),
    ("notes", 900001),
];

#[test]
fn rows_created_since_the_backup_come_back_after_the_restore() {
    let cluster = TempCluster::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sb = sandbox::build_sandbox(&cluster, &SandboxSpec::new(dir.path())).unwrap();
    let root = dir.path();
    let mut db = sb.main.connect().unwrap();
    upgrade::apply_failed_upgrade(&mut db).unwrap();
    db.batch_execute(SINCE).unwrap();

    // Dry run: what would be written, nothing written.
    let out = rewind(root, &["--json", "salvage", "--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let dry = json(&out);
    assert_eq!(dry["dir"], serde_json::Value::Null);
    let backup_rewind = sb.layout.backup_dir.join("rewind");
    assert!(
        !backup_rewind.exists() || std::fs::read_dir(&backup_rewind).unwrap().next().is_none(),
        "a dry run wrote something"
    );

    // The salvage.
    let out = rewind(root, &["--json", "salvage", "--backup", &sb.backup_id]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let ex = json(&out);
    assert_eq!(ex["manifest"]["backup_created_at"], "2024-04-20T10:11:12Z");
    assert_eq!(ex["manifest"]["backup_id"], sb.backup_id.as_str());
    let salvage_dir = PathBuf::from(ex["dir"].as_str().unwrap());
    assert!(salvage_dir.starts_with(&backup_rewind), "{salvage_dir:?}");
    let meta = std::fs::symlink_metadata(&salvage_dir).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o700);
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), 0);
    let tables = ex["manifest"]["databases"][0]["tables"].as_array().unwrap();
    assert_eq!(ex["manifest"]["databases"][0]["database"], sandbox::MAIN_DB);
    for name in ["users", "namespaces", "projects", "issues", "notes"] {
        let t = tables
            .iter()
            .find(|t| t["table"] == name)
            .unwrap_or_else(|| panic!("{name} not salvaged: {ex:#}"));
        let f = salvage_dir.join(t["file"].as_str().unwrap());
        let m = std::fs::symlink_metadata(&f).unwrap();
        assert_eq!(m.permissions().mode() & 0o7777, 0o600, "{f:?}");
        let csv = std::fs::read_to_string(&f).unwrap();
        assert!(csv.starts_with("id,"), "{csv}");
    }
    // The failed upgrade's new column is in the file (the restored schema lacks it).
    let projects = tables.iter().find(|t| t["table"] == "projects").unwrap();
    assert!(projects["columns"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["name"] == "duo_features_enabled" && c["type"] == "boolean"));
    let cmd = ex["import_command"].as_str().unwrap();
    assert_eq!(
        cmd,
        format!("rewind salvage --import {}", salvage_dir.display())
    );
    let human = text(&rewind(root, &["salvage", "--dry-run"]));
    assert!(
        human.contains("Salvage: rows created since backup"),
        "{human}"
    );
    drop(db);

    // The restore drops them.
    let out = rewind(
        root,
        &[
            "restore",
            "--backup",
            &sb.backup_id,
            "--confirm-drop",
            sandbox::MAIN_DB,
            "--skip",
            "uploads,builds,artifacts,pages,lfs,terraform_state,registry,packages,ci_secure_files,external_diffs",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let mut db = sb.main.connect().unwrap();
    let n: i64 = db
        .query_one("SELECT count(*) FROM users WHERE id >= 900001", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
    // GitLab back up: someone signs up with the salvaged user's name.
    db.batch_execute(
        "INSERT INTO users (username, email, created_at, updated_at)
             VALUES ('taken-again', 'new@example.com', now(), now())",
    )
    .unwrap();

    let sdir = salvage_dir.to_str().unwrap();
    // Without --yes: refused, nothing imported.
    let out = rewind(root, &["salvage", "--import", sdir]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("--dry-run"), "{}", text(&out));

    // Dry run: the same numbers, nothing imported.
    let out = rewind(root, &["--json", "salvage", "--import", sdir, "--dry-run"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let dry = json(&out);
    let n: i64 = db
        .query_one("SELECT count(*) FROM issues WHERE id >= 900001", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 0);

    let out = rewind(root, &["--json", "salvage", "--import", sdir, "--yes"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let r = json(&out);
    assert_eq!(dry["databases"], r["databases"]);
    let rtables = r["databases"][0]["tables"].as_array().unwrap();
    // Exactly ours came back, with their ids; everything else the files hold was already
    // in the backup (the sandbox's data runs past its backup time): a primary-key conflict.
    for (name, id) in BACK {
        let got: i64 = db
            .query_one(
                &format!("SELECT count(*) FROM {name} WHERE id::bigint = $1"),
                &[id],
            )
            .unwrap()
            .get(0);
        assert_eq!(got, 1, "{name} {id} not back: {r:#}");
    }
    let mut imported_total = 0;
    let mut others = Vec::new();
    for t in rtables {
        assert_eq!(t["error"], serde_json::Value::Null, "{t:#}");
        imported_total += t["imported"].as_u64().unwrap();
        for s in t["skipped"].as_array().unwrap() {
            let pk = s["reason"] == "conflict" && s["detail"].as_str().unwrap().contains("_pkey ");
            if !pk {
                others.push((
                    t["table"].as_str().unwrap().to_string(),
                    s["key"].as_str().unwrap().to_string(),
                    s["reason"].as_str().unwrap().to_string(),
                    s["detail"].as_str().unwrap().to_string(),
                ));
            }
        }
        assert_eq!(t["skipped_unlisted"], 0, "{t:#}");
        let (rows, imp, skipped) = (
            t["rows"].as_u64().unwrap(),
            t["imported"].as_u64().unwrap(),
            t["skipped"].as_array().unwrap().len() as u64,
        );
        assert_eq!(rows, imp + skipped, "{t:#}");
    }
    assert_eq!(imported_total, BACK.len() as u64, "{r:#}");
    assert_eq!(
        others,
        vec![
            (
                "users".to_string(),
                "id=900002".to_string(),
                "conflict".to_string(),
                "index_users_on_username (username) is already taken".to_string()
            ),
            (
                "namespaces".to_string(),
                "id=900002".to_string(),
                "orphan".to_string(),
                "no users row with (id) = (900002)".to_string()
            ),
        ],
        "{r:#}"
    );
    let projects = rtables.iter().find(|t| t["table"] == "projects").unwrap();
    assert_eq!(projects["dropped_columns"][0], "duo_features_enabled");
    let desc: String = db
        .query_one("SELECT description FROM projects WHERE id = 900001", &[])
        .unwrap()
        .get(0);
    assert_eq!(desc, "with, \"quotes\"\nand lines");
    // Sequences past the imported ids.
    for t in ["users", "projects", "issues", "notes", "namespaces"] {
        let next: i64 = db
            .query_one(
                &format!("SELECT nextval(pg_get_serial_sequence('{t}', 'id'))::bigint"),
                &[],
            )
            .unwrap()
            .get(0);
        assert!(next > 900001, "{t}: next id {next}");
    }
    // The report file lists the skipped rows.
    let report_file = PathBuf::from(r["report_file"].as_str().unwrap());
    assert!(report_file.starts_with(&salvage_dir));
    let m = std::fs::symlink_metadata(&report_file).unwrap();
    assert_eq!(m.permissions().mode() & 0o7777, 0o600);
    let listed = std::fs::read_to_string(&report_file).unwrap();
    assert!(listed.contains("id=900002"), "{listed}");
    // Human output names them too.
    let out = rewind(root, &["salvage", "--import", sdir, "--dry-run"]);
    let t = text(&out);
    assert!(
        t.contains("skipped id=900002 (no parent): no users row with (id) = (900002)"),
        "{t}"
    );
    assert!(t.contains("cannot come back"), "{t}");
    // A second import brings nothing twice.
    let again = json(&rewind(
        root,
        &["--json", "salvage", "--import", sdir, "--dry-run"],
    ));
    let twice: u64 = again["databases"][0]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["imported"].as_u64().unwrap())
        .sum();
    assert_eq!(twice, 0);
    let journal = std::fs::read_to_string(backup_rewind.join("journal.jsonl")).unwrap();
    assert!(journal.contains("\"salvage.export\""), "{journal}");
    assert!(journal.contains("\"salvage.import\""), "{journal}");

    // Hostile: a file of the directory replaced by a link to a file of the same content.
    let victim = salvage_dir.join(
        tables.iter().find(|t| t["table"] == "issues").unwrap()["file"]
            .as_str()
            .unwrap(),
    );
    let aside = root.join("aside.csv");
    std::fs::copy(&victim, &aside).unwrap();
    std::fs::remove_file(&victim).unwrap();
    std::os::unix::fs::symlink(&aside, &victim).unwrap();
    let before: i64 = db
        .query_one("SELECT count(*) FROM issues", &[])
        .unwrap()
        .get(0);
    let out = rewind(root, &["salvage", "--import", sdir, "--yes"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains("symbolic link") && t.contains(&victim.display().to_string()),
        "{t}"
    );
    let after: i64 = db
        .query_one("SELECT count(*) FROM issues", &[])
        .unwrap()
        .get(0);
    assert_eq!(before, after);
    let ids: BTreeSet<i64> = db
        .query("SELECT id FROM users WHERE id >= 900001", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ids, BTreeSet::from([900001]));
}
