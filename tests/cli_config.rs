//! `rewind config` through the binary on a sandbox root: a configuration archive made the
//! way `gitlab-ctl backup-etc` makes it (GNU tar, `--absolute-names`), chosen, compared with
//! the live `/etc/gitlab` by key names only, restored (live files moved aside, 0600, root,
//! links not followed); hostile archives refused with nothing changed.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output};

use rewind_engine::pg::conn::ConnSpec;
use rewind_engine::recovery::config::backup_etc;
use rewind_engine::root::HostRoot;
use rewind_engine::sandbox::host::{build_host, HostSpec};

mod common;
use common::text;

fn rewind(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rewind"))
        .arg("--root")
        .arg(root)
        .arg("--no-color")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

fn host() -> (tempfile::TempDir, HostRoot) {
    let dir = tempfile::tempdir().unwrap();
    let spec = HostSpec::new(
        dir.path(),
        ConnSpec::from_url("postgresql://gitlab@localhost:5432/gitlabhq_production").unwrap(),
    );
    build_host(&spec).unwrap();
    let root = HostRoot::new(dir.path());
    (dir, root)
}

fn secret(root: &HostRoot, pointer: &str) -> String {
    let v: serde_json::Value =
        serde_json::from_slice(&fs::read(root.join("/etc/gitlab/gitlab-secrets.json")).unwrap())
            .unwrap();
    v.pointer(pointer).unwrap().as_str().unwrap().to_string()
}

#[test]
fn archive_is_chosen_diffed_by_key_names_and_restored() {
    let (dir, root) = host();
    let old_key = secret(&root, "/gitlab_rails/db_key_base");
    let rb_before = fs::read(root.join("/etc/gitlab/gitlab.rb")).unwrap();
    let older = backup_etc(&root, 1_712_000_000).unwrap();
    let archive = backup_etc(&root, 1_713_000_000).unwrap();
    assert!(archive.ends_with("gitlab_config_1713000000_2024_04_13.tar"));
    // GitLab's layout: absolute member names under /etc/gitlab, config_backup excluded.
    let listing = Command::new("tar")
        .arg("-tf")
        .arg(&archive)
        .output()
        .unwrap();
    let names = String::from_utf8_lossy(&listing.stdout);
    assert!(
        names
            .lines()
            .any(|l| l == "/etc/gitlab/gitlab-secrets.json"),
        "{names}"
    );
    assert!(!names.contains("config_backup"), "{names}");
    assert_eq!(
        fs::metadata(&archive).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let _ = older;

    // The host loses its secrets: a new db_key_base, otp_key_base gone, a new key.
    let p = root.join("/etc/gitlab/gitlab-secrets.json");
    let mut v: serde_json::Value = serde_json::from_slice(&fs::read(&p).unwrap()).unwrap();
    let rails = v["gitlab_rails"].as_object_mut().unwrap();
    rails.insert("db_key_base".into(), "f00d".repeat(32).into());
    rails.remove("otp_key_base");
    rails.insert(
        "active_record_encryption_primary_key".into(),
        "newer".into(),
    );
    fs::write(&p, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    fs::write(
        root.join("/etc/gitlab/gitlab.rb"),
        "external_url 'https://elsewhere.example'\n",
    )
    .unwrap();
    fs::write(root.join("/etc/gitlab/added-later.txt"), "x").unwrap();

    let o = rewind(dir.path(), &["config"]);
    let out = text(&o);
    assert_eq!(
        o.status.code(),
        Some(4),
        "differences need acting on: {out}"
    );
    assert!(
        out.contains("gitlab_config_1712000000_2024_04_01.tar")
            && out.contains("gitlab_config_1713000000_2024_04_13.tar")
            && out.contains("2024-04-13T"),
        "every archive with its date: {out}"
    );
    assert!(
        out.contains("different value: gitlab_rails.db_key_base"),
        "{out}"
    );
    assert!(
        out.contains("missing from the live file: gitlab_rails.otp_key_base"),
        "{out}"
    );
    assert!(
        out.contains("only in the live file: gitlab_rails.active_record_encryption_primary_key"),
        "{out}"
    );
    assert!(out.contains("added-later.txt"), "{out}");
    assert!(
        !out.contains(&old_key) && !out.contains("f00df00d"),
        "values never shown: {out}"
    );
    // Nothing changed by looking.
    assert_eq!(
        secret(&root, "/gitlab_rails/db_key_base"),
        "f00d".repeat(32)
    );

    // --json: the same, as a document.
    let o = rewind(dir.path(), &["--json", "config"]);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        j["diff"]["would_restore"],
        serde_json::json!(["gitlab-secrets.json", "gitlab.rb"])
    );
    assert!(!String::from_utf8_lossy(&o.stdout).contains(&old_key));

    // Without a terminal and without --yes: not restored.
    let o = rewind(dir.path(), &["config", "--restore"]);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    assert_eq!(
        secret(&root, "/gitlab_rails/db_key_base"),
        "f00d".repeat(32)
    );

    // gitlab.rb made a link to a file elsewhere: moved aside as a link, never written through.
    let outside = dir.path().join("outside.rb");
    fs::write(&outside, "keep me\n").unwrap();
    fs::remove_file(root.join("/etc/gitlab/gitlab.rb")).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("/etc/gitlab/gitlab.rb")).unwrap();

    let o = rewind(
        dir.path(),
        &[
            "config",
            "--archive",
            "gitlab_config_1713000000_2024_04_13.tar",
            "--restore",
            "--yes",
        ],
    );
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert_eq!(secret(&root, "/gitlab_rails/db_key_base"), old_key);
    assert_eq!(
        fs::read(root.join("/etc/gitlab/gitlab.rb")).unwrap(),
        rb_before
    );
    assert_eq!(fs::read_to_string(&outside).unwrap(), "keep me\n");
    for f in ["gitlab-secrets.json", "gitlab.rb"] {
        let md = fs::symlink_metadata(root.join("/etc/gitlab").join(f)).unwrap();
        assert!(md.is_file());
        assert_eq!(md.permissions().mode() & 0o777, 0o600, "{f}");
        assert_eq!((md.uid(), md.gid()), (0, 0), "{f}");
    }
    // The live files were moved aside, not lost.
    let aside: Vec<String> = fs::read_dir(root.join("/etc/gitlab"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".rewind-"))
        .collect();
    assert_eq!(aside.len(), 2, "{aside:?}");
    let rb_aside = aside.iter().find(|n| n.starts_with("gitlab.rb.")).unwrap();
    assert!(
        fs::symlink_metadata(root.join("/etc/gitlab").join(rb_aside))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let journal =
        fs::read_to_string(root.join("/var/opt/gitlab/backups/rewind/journal.jsonl")).unwrap();
    assert_eq!(
        journal.matches("\"config.restore\"").count(),
        4,
        "{journal}"
    );
    assert!(!journal.contains(&old_key));

    // Now they match: nothing to do.
    let o = rewind(dir.path(), &["config"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

/// An archive made with GNU tar whose member names are rewritten (`--transform`).
fn tar_with(root: &HostRoot, name: &str, files: &[(&Path, &str)]) -> String {
    let dir = root.join("/etc/gitlab/config_backup");
    fs::create_dir_all(&dir).unwrap();
    let archive = dir.join(name);
    for (i, (src, member)) in files.iter().enumerate() {
        let st = Command::new("tar")
            .arg("--absolute-names")
            .arg(if i == 0 { "--create" } else { "--append" })
            .arg("--file")
            .arg(&archive)
            .arg(format!("--transform=s|^.*$|{member}|"))
            .arg("--")
            .arg(src)
            .status()
            .unwrap();
        assert!(st.success());
    }
    name.to_string()
}

#[test]
fn hostile_archives_are_refused_and_nothing_changes() {
    let (dir, root) = host();
    let secrets = root.join("/etc/gitlab/gitlab-secrets.json");
    let before = fs::read(&secrets).unwrap();
    let good = dir.path().join("good.json");
    fs::write(&good, br#"{"gitlab_rails":{"db_key_base":"evil"}}"#).unwrap();
    let cases = [
        (
            tar_with(
                &root,
                "gitlab_config_1_dotdot.tar",
                &[(&good, "/etc/gitlab/../../root/evil")],
            ),
            "has a `..` component",
        ),
        (
            tar_with(
                &root,
                "gitlab_config_2_outside.tar",
                &[(&good, "/etc/cron.d/evil")],
            ),
            "outside etc/gitlab",
        ),
        (
            tar_with(
                &root,
                "gitlab_config_3_device.tar",
                &[
                    (&good, "/etc/gitlab/gitlab-secrets.json"),
                    (Path::new("/dev/null"), "/etc/gitlab/null"),
                ],
            ),
            "device, FIFO",
        ),
        (
            tar_with(
                &root,
                "gitlab_config_4_twice.tar",
                &[
                    (&good, "/etc/gitlab/gitlab-secrets.json"),
                    (&good, "/etc/gitlab/gitlab-secrets.json"),
                ],
            ),
            "appears twice",
        ),
    ];
    for (name, why) in &cases {
        let o = rewind(
            dir.path(),
            &["config", "--archive", name, "--restore", "--yes"],
        );
        let out = text(&o);
        assert_eq!(o.status.code(), Some(3), "{name}: {out}");
        assert!(
            out.contains(why) && out.contains("Nothing was changed"),
            "{name}: {out}"
        );
        assert_eq!(fs::read(&secrets).unwrap(), before, "{name}");
    }
    // A link in place of gitlab-secrets.json.
    let link = dir.path().join("link");
    std::os::unix::fs::symlink("/etc/shadow", &link).unwrap();
    let name = tar_with(
        &root,
        "gitlab_config_5_link.tar",
        &[(&link, "/etc/gitlab/gitlab-secrets.json")],
    );
    let o = rewind(
        dir.path(),
        &["config", "--archive", &name, "--restore", "--yes"],
    );
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("is a link, not a file"), "{}", text(&o));
    assert_eq!(fs::read(&secrets).unwrap(), before);
    // The archive itself a link: not followed.
    let cb = root.join("/etc/gitlab/config_backup");
    std::os::unix::fs::symlink(
        cb.join("gitlab_config_2_outside.tar"),
        cb.join("gitlab_config_6_l.tar"),
    )
    .unwrap();
    let o = rewind(
        dir.path(),
        &["config", "--archive", "gitlab_config_6_l.tar"],
    );
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(!fs::read_dir(root.join("/etc/gitlab"))
        .unwrap()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().contains(".rewind-")));
}
