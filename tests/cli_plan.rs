//! `rewind plan` and `rewind restore --dry-run` print one plan (the engine's
//! `recovery::plan`): run through the built binary on one sandbox host (a decomposed
//! Omnibus-like tree over a real PostgreSQL cluster, backups made as GitLab makes them, a
//! failed upgrade applied), their step lists are equal; the exit codes say whether the run
//! would be refused; GitLab's version message is followed by the Omnibus hint.

use rewind_engine::pg::cluster::TempCluster;
use rewind_engine::sandbox::{self, backup, compare, data::DataSpec, host, PgTarget};

mod common;
use common::{json, rewind, text};

/// The steps with the times (snapshot file names) and durations taken out.
fn steps(plan: &serde_json::Value) -> Vec<serde_json::Value> {
    plan["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("no steps: {plan:#}"))
        .iter()
        .map(|s| {
            let norm = |v: &serde_json::Value| -> Vec<String> {
                v.as_array()
                    .unwrap()
                    .iter()
                    .map(|l| no_digits(l.as_str().unwrap()))
                    .collect()
            };
            serde_json::json!({
                "id": s["step"]["id"],
                "runs": s["runs"],
                "why_not": s["why_not"],
                "does": norm(&s["does"]),
                "commands": norm(&s["commands"]),
            })
        })
        .collect()
}

/// `s` with every run of digits replaced by `N`.
fn no_digits(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            if !out.ends_with('N') {
                out.push('N');
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The numbered step lines of the text output (` 1. Detect the installation`).
fn step_lines(out: &str) -> Vec<String> {
    out.lines()
        .filter(|l| {
            let t = l.trim_start();
            l.len() - t.len() <= 1
                && t.split_once(". ")
                    .is_some_and(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn plan_and_dry_run_print_one_plan() {
    let cluster = TempCluster::start().unwrap();
    for db in [sandbox::MAIN_DB, sandbox::CI_DB] {
        let t = sandbox::create_gitlab_database(&cluster, db).unwrap();
        sandbox::populate(&mut t.connect().unwrap(), &DataSpec::default()).unwrap();
    }
    let tree = tempfile::tempdir().unwrap();
    let main = cluster.conn_spec(sandbox::MAIN_DB);
    let ci = cluster.conn_spec(sandbox::CI_DB);
    let mut hs = host::HostSpec::new(tree.path(), main.clone());
    hs.ci = Some(ci.clone());
    let layout = host::build_host(&hs).unwrap();
    let main_t = PgTarget::new(cluster.bin_dir(), main.clone());
    let ci_t = PgTarget::new(cluster.bin_dir(), ci.clone());
    let spec = backup::BackupSpec::new(&layout.backup_dir, main_t.clone())
        .with_ci(ci_t.clone())
        .with_components(layout.components.clone());
    backup::build_backup(&spec).unwrap();
    for db in [sandbox::MAIN_DB, sandbox::CI_DB] {
        sandbox::upgrade::apply_failed_upgrade(&mut cluster.connect_app(db).unwrap()).unwrap();
    }
    let before = (
        compare::fingerprint(&main_t).unwrap(),
        compare::fingerprint(&ci_t).unwrap(),
    );
    let root = tree.path();
    let id = spec.backup_id();

    // The plan, and the dry run with every confirmation its restore command gives.
    let plan_out = rewind(root, &["--json", "plan", "--backup", &id, "--in-place"]);
    assert_eq!(plan_out.status.code(), Some(0), "{}", text(&plan_out));
    let plan = json(&plan_out);
    let confirmed = [
        "--confirm-drop",
        sandbox::MAIN_DB,
        "--confirm-drop",
        sandbox::CI_DB,
        "--confirm-files",
    ];
    let mut args = vec![
        "--json",
        "restore",
        "--backup",
        &id,
        "--dry-run",
        "--in-place",
    ];
    args.extend(confirmed);
    let dry_out = rewind(root, &args);
    assert_eq!(dry_out.status.code(), Some(0), "{}", text(&dry_out));
    let dry = json(&dry_out);
    assert_eq!(steps(&plan), steps(&dry));
    assert_eq!(dry["refusals"], serde_json::json!([]), "{dry:#}");
    // The plan's restore command is the dry run's, confirmations included.
    let cmd = plan["restore_command"].as_str().unwrap();
    for c in confirmed {
        assert!(cmd.contains(c), "{cmd}");
    }

    // Every step of the recovery, in the engine's order, each once.
    let ids: Vec<&str> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "detect",
            "select_backup",
            "preflight",
            "stop_services",
            "safety_snapshot",
            "rollback_package",
            "confirm_drop",
            "restore_databases",
            "restore_files",
            "restore_repositories",
            "verify",
            "restore_config",
            "start_services",
            "post_checks",
            "repair_migrations",
        ]
    );
    let step = |id: &str| {
        plan["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["step"]["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(plan["strategy"]["strategy"], "in_place", "{plan:#}");
    // Same version: no package step. Per database: the drop, and schema_migrations
    // truncated, not dropped, as GitLab does.
    assert_eq!(step("rollback_package")["runs"], false);
    let drop = step("confirm_drop")["does"].to_string();
    for db in [sandbox::MAIN_DB, sandbox::CI_DB] {
        assert!(drop.contains(&format!("{db}: drop ")), "{drop}");
        assert!(
            drop.contains(&format!(
                "{db}: TRUNCATE public.schema_migrations (emptied, not dropped"
            )),
            "{drop}"
        );
    }
    let snap = step("safety_snapshot")["does"].to_string();
    assert!(
        snap.contains(sandbox::MAIN_DB) && snap.contains(sandbox::CI_DB),
        "{snap}"
    );
    assert!(snap.contains("rewind/snapshots"), "{snap}");
    assert_eq!(step("restore_files")["runs"], true);
    assert_eq!(step("restore_repositories")["runs"], false);
    let dbs = step("restore_databases")["does"].to_string();
    assert!(
        dbs.contains("db/database.sql.gz") && dbs.contains("db/ci_database.sql.gz"),
        "{dbs}"
    );
    assert_eq!(plan["databases"].as_array().unwrap().len(), 2);

    // Without the confirmations: the same steps, but the dry run would be refused: 4.
    let refused = rewind(
        root,
        &[
            "--json",
            "restore",
            "--backup",
            &id,
            "--dry-run",
            "--in-place",
        ],
    );
    assert_eq!(refused.status.code(), Some(4), "{}", text(&refused));
    let refused = json(&refused);
    assert_eq!(steps(&plan), steps(&refused));
    let refusals = refused["refusals"].as_array().unwrap();
    let kinds: Vec<(&str, &str)> = refusals
        .iter()
        .map(|r| (r["step"].as_str().unwrap(), r["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("confirm_drop", "confirmation"),
            ("confirm_drop", "confirmation"),
            ("restore_files", "confirmation")
        ],
        "{refusals:#?}"
    );

    // The text outputs list the same numbered steps.
    let plan_text = text(&rewind(root, &["plan", "--backup", &id, "--in-place"]));
    let mut args = vec!["restore", "--backup", &id, "--dry-run", "--in-place"];
    args.extend(confirmed);
    let dry_text = text(&rewind(root, &args));
    assert_eq!(step_lines(&plan_text).len(), 15, "{plan_text}");
    assert_eq!(step_lines(&plan_text), step_lines(&dry_text));
    assert!(plan_text.contains("Nothing was changed"), "{plan_text}");
    assert!(dry_text.contains("nothing was changed"), "{dry_text}");

    // A backup of another version: the dry run is refused with GitLab's message verbatim
    // and, this being Omnibus, the package step after it (exit 4); the plan has the package
    // step and can be followed (exit 0).
    let older = backup::BackupSpec::new(&layout.backup_dir, main_t.clone())
        .with_ci(ci_t.clone())
        .with_version("16.9.2-ee")
        .with_created_at(backup::default_created_at() - chrono::Duration::days(3));
    backup::build_backup(&older).unwrap();
    let old_id = older.backup_id();
    let mut args = vec!["--json", "restore", "--backup", &old_id, "--dry-run"];
    args.extend(confirmed);
    let out = rewind(root, &args);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let v = json(&out);
    let r = v["refusals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "version")
        .unwrap_or_else(|| panic!("{v:#}"));
    let msg = r["message"].as_str().unwrap();
    assert!(msg.contains("GitLab version mismatch"), "{msg}");
    assert!(msg.contains("Hint: git checkout v16.9.2-ee"), "{msg}");
    let hint = r["hint"].as_str().unwrap();
    assert!(hint.contains("rewind rollback --to 16.9.2-ee"), "{hint}");
    assert!(!hint.contains("git checkout"), "{hint}");
    let out = rewind(root, &["--json", "plan", "--backup", &old_id]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let p = json(&out);
    let roll = p["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"]["id"] == "rollback_package")
        .unwrap();
    assert_eq!(roll["runs"], true, "{roll:#}");
    assert!(
        roll["commands"][0]
            .as_str()
            .unwrap()
            .contains("rewind rollback --to 16.9.2-ee"),
        "{roll:#}"
    );
    let human = text(&rewind(
        root,
        &["restore", "--backup", &old_id, "--dry-run"],
    ));
    let gitlab_at = human.find("Hint: git checkout v16.9.2-ee").expect(&human);
    // GitLab's message, then the Omnibus hint right after it.
    let after = &human[gitlab_at..];
    let next = after.find("This is an Omnibus install").expect(&human);
    assert!(
        after[next..].contains("`rewind rollback --to 16.9.2-ee`"),
        "{human}"
    );
    assert!(!after[..next].contains("ConfirmDrop"), "{human}");

    // Read-only, all of it.
    assert!(before
        .0
        .diff(&compare::fingerprint(&main_t).unwrap())
        .is_empty());
    assert!(before
        .1
        .diff(&compare::fingerprint(&ci_t).unwrap())
        .is_empty());
    assert!(!layout.backup_dir.join("rewind").exists());
}
