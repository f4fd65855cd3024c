//! `rewind restore` of the repositories through the built binary, on a sandbox host: a
//! real PostgreSQL cluster with the GitLab-like database, bare repositories made with git
//! in Omnibus' storage, a backup whose `repositories/` is gitaly-backup's manifest layout,
//! and the drill's stand-in gitaly-backup (the same arguments and stdin, real git).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rewind_engine::pg::cluster::TempCluster;
use rewind_engine::repositories::DEFAULT_STORAGE_PATH;
use rewind_engine::root::HostRoot;
use rewind_engine::sandbox::{self, backup, data::DataSpec, host, repos};

struct Fixture {
    _cluster: TempCluster,
    _dir: tempfile::TempDir,
    root: PathBuf,
    storage: PathBuf,
    backup_id: String,
    main: sandbox::PgTarget,
    /// Refs of every repository as the backup holds them.
    backed_up: std::collections::BTreeMap<String, String>,
    /// The repository pushed to after the backup.
    pushed: String,
}

fn fixture() -> Fixture {
    let cluster = TempCluster::start().unwrap();
    let main = sandbox::create_gitlab_database(&cluster, sandbox::MAIN_DB).unwrap();
    sandbox::populate(&mut main.connect().unwrap(), &DataSpec::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let layout = host::build_host(&host::HostSpec::new(&root, main.conn.clone())).unwrap();
    let storage = layout.root.join(DEFAULT_STORAGE_PATH);
    let made = repos::populate(&mut main.connect().unwrap(), &storage, 3).unwrap();
    let spec = backup::BackupSpec::new(&layout.backup_dir, main.clone())
        .with_repositories(vec![("default".into(), storage.clone())]);
    backup::build_backup(&spec).unwrap();
    let backed_up = repos::all_refs(&storage).unwrap();
    rewind_engine::packages::sandbox_repo::write_gitaly_backup_standin(
        &HostRoot::new(&root),
        Path::new(env!("CARGO_BIN_EXE_rewind")),
    )
    .unwrap();
    // gitlab-ctl, so the restore can ask whether Gitaly runs.
    rewind_engine::packages::sandbox_repo::write_gitlab_ctl_standin(&HostRoot::new(&root)).unwrap();
    // A push after the backup: a commit on project 1's repository and its push event.
    let pushed = made[0].clone();
    repos::push_commit(&storage.join(&pushed), "pushed after the backup").unwrap();
    main.connect()
        .unwrap()
        .execute(
            "INSERT INTO events (id, project_id, author_id, action, created_at) \
             SELECT max(id) + 1, 1, 1, 5, now() FROM events",
            &[],
        )
        .unwrap();
    Fixture {
        _cluster: cluster,
        _dir: dir,
        root,
        storage,
        backup_id: spec.backup_id(),
        main,
        backed_up,
        pushed,
    }
}

fn rewind(f: &Fixture, extra: &[&str]) -> Output {
    let mut args = vec![
        "--root",
        f.root.to_str().unwrap(),
        "restore",
        "--backup",
        &f.backup_id,
        "--confirm-drop",
        sandbox::MAIN_DB,
        "--confirm-files",
        "--json",
    ];
    args.extend_from_slice(extra);
    Command::new(env!("CARGO_BIN_EXE_rewind"))
        .args(&args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn projects(f: &Fixture) -> i64 {
    f.main
        .connect()
        .unwrap()
        .query_one("SELECT count(*) FROM projects", &[])
        .unwrap()
        .get(0)
}

fn events(f: &Fixture) -> i64 {
    f.main
        .connect()
        .unwrap()
        .query_one("SELECT count(*) FROM events", &[])
        .unwrap()
        .get(0)
}

#[test]
fn repositories_are_restored_and_the_pushed_ones_bundled_first() {
    let f = fixture();
    let before = repos::all_refs(&f.storage).unwrap();
    assert_ne!(
        before[&f.pushed], f.backed_up[&f.pushed],
        "the push moved main"
    );
    // The projects with a push event after the backup, read independently.
    let since = backup::default_created_at()
        .format("%Y-%m-%d %H:%M:%S")
        .to_string();
    let want_pushed: i64 = f
        .main
        .connect()
        .unwrap()
        .query_one(
            "SELECT count(DISTINCT project_id) FROM events \
              WHERE action = 5 AND project_id IS NOT NULL AND created_at > $1::text::timestamptz",
            &[&since],
        )
        .unwrap()
        .get(0);

    let out = rewind(
        &f,
        &[
            "--confirm-repositories",
            "--bundle-pushed",
            "--repositories-parallel",
            "2",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}: {stderr}", out.status);
    let rep: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = &rep["repositories"];
    let cmd = r["restore"]["command"].as_str().unwrap();
    assert!(cmd.starts_with("GITALY_SERVERS=<redacted> "), "{cmd}");
    assert!(
        cmd.contains(&format!(
            "restore -path {}",
            f.root.join("var/opt/gitlab/backups").display()
        )),
        "{cmd}"
    );
    assert!(
        cmd.ends_with(&format!(
            "-layout manifest -parallel 2 -remove-all-repositories default -id {}",
            f.backup_id
        )),
        "{cmd}"
    );
    let pushed = r["pushed_since_backup"].as_array().unwrap();
    assert_eq!(pushed.len() as i64, want_pushed, "{r}");
    assert!(pushed
        .iter()
        .any(|p| p["relative_path"] == f.pushed.as_str()));
    // The restore: every backed-up repository restored with the backup's refs; the other
    // projects' repositories created empty (always_create), wikis/designs skipped.
    let after = repos::all_refs(&f.storage).unwrap();
    for (repo, refs) in &f.backed_up {
        assert_eq!(&after[repo], refs, "{repo}");
    }
    let restored = r["restore"]["restored"].as_u64().unwrap();
    let expected = r["restore"]["expected"].as_u64().unwrap();
    let skipped = r["restore"]["skipped"].as_u64().unwrap();
    assert_eq!(r["restore"]["failed"], 0);
    assert_eq!(restored + skipped, expected);
    // 50 projects: 50 repositories plus the backed-up wiki.
    assert_eq!(restored, 50 + 1, "{r}");
    assert_eq!(after.len() as u64, restored);
    // The pushed repository's bundle: root-owned directory 0700, file 0600, holding the
    // commit pushed after the backup.
    let dir = f
        .root
        .join(r["bundled_to"].as_str().unwrap().trim_start_matches('/'));
    assert_eq!(
        std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let bundle = r["bundled"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|b| b["bundle"].as_str())
        .map(|b| f.root.join(b.trim_start_matches('/')))
        .unwrap();
    assert_eq!(
        std::fs::metadata(&bundle).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let heads = Command::new("git")
        .args(["bundle", "list-heads"])
        .arg(&bundle)
        .output()
        .unwrap();
    let pushed_main = before[&f.pushed]
        .lines()
        .find(|l| l.ends_with(" refs/heads/main"))
        .unwrap()
        .to_string();
    assert!(
        String::from_utf8_lossy(&heads.stdout).contains(&pushed_main),
        "{pushed_main}"
    );
    // Journaled.
    let journal = std::fs::read_to_string(rep["journal"].as_str().unwrap()).unwrap();
    for step in [
        "repositories.pushed_since_backup",
        "repositories.bundle_pushed",
        "repositories.gitaly_backup",
        "repositories.result",
    ] {
        assert!(journal.contains(step), "{step}");
    }
    // The extraction directory is gone.
    let left: Vec<_> = std::fs::read_dir(f.root.join("var/opt/gitlab/backups"))
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("rewind-repositories.")
        })
        .collect();
    assert!(left.is_empty());
}

#[test]
fn refusals_change_nothing() {
    let f = fixture();
    let refs = repos::all_refs(&f.storage).unwrap();
    let (p, e) = (projects(&f), events(&f));

    // Not confirmed.
    let out = rewind(&f, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("--confirm-repositories"), "{stderr}");
    assert!(stderr.contains("Nothing was changed"), "{stderr}");

    // Gitaly stopped: refused before anything changes, with how to start it.
    let ctl = HostRoot::new(&f.root).join("/opt/gitlab/bin/gitlab-ctl");
    let gitlab_ctl = |verb: &str| {
        let out = Command::new(&ctl).args([verb, "gitaly"]).output().unwrap();
        assert!(out.status.success());
    };
    gitlab_ctl("stop");
    let out = rewind(&f, &["--confirm-repositories"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("Gitaly is not running"), "{stderr}");
    assert!(stderr.contains("gitlab-ctl start gitaly"), "{stderr}");
    assert!(stderr.contains("Nothing was changed"), "{stderr}");
    assert_eq!(repos::all_refs(&f.storage).unwrap(), refs);
    assert_eq!((projects(&f), events(&f)), (p, e));
    gitlab_ctl("start");

    // gitaly-backup missing.
    std::fs::remove_file(HostRoot::new(&f.root).join(rewind_engine::repositories::GITALY_BACKUP))
        .unwrap();
    let out = rewind(&f, &["--confirm-repositories"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("gitaly-backup"), "{stderr}");
    assert!(stderr.contains("Nothing was changed"), "{stderr}");

    assert_eq!(repos::all_refs(&f.storage).unwrap(), refs);
    assert_eq!((projects(&f), events(&f)), (p, e));

    // --skip repositories still restores the rest without asking about repositories.
    let out = rewind(&f, &["--skip", "repositories"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(repos::all_refs(&f.storage).unwrap(), refs);
}
