//! File component restore on fixture backups made the way GitLab makes them: each component
//! is `tar -C <dir> -cf - . | gzip` (or zstd), the backup is an uncompressed tar of them.
//! Hostile archives (a `../` entry, an absolute entry, symlinks pointing out) are crafted
//! with python3's tarfile module.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rewind_engine::detect::InstallKind;
use rewind_engine::files::{self, OwnerPolicy, RestoreOptions};
use rewind_engine::journal::Journal;
use rewind_engine::progress::{Event, NullSink};
use rewind_engine::root::HostRoot;

const BACKUP_PATH: &str = "/var/opt/gitlab/backups";

/// `tar -C dir -cf - . | <compressor>` into `out`.
fn component(dir: &Path, out: &Path, compressor: &[&str]) {
    let mut tar = Command::new("tar")
        .arg("-C")
        .arg(dir)
        .args(["-cf", "-", "."])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let comp = Command::new(compressor[0])
        .args(&compressor[1..])
        .stdin(tar.stdout.take().unwrap())
        .stdout(fs::File::create(out).unwrap())
        .status()
        .unwrap();
    assert!(tar.wait().unwrap().success() && comp.success());
}

/// The outer backup tar: `tar -C backup_dir -cf <archive> <members>`.
fn outer(backup_dir: &Path, archive: &Path, members: &[&str]) {
    let st = Command::new("tar")
        .arg("-C")
        .arg(backup_dir)
        .arg("-cf")
        .arg(archive)
        .args(members)
        .status()
        .unwrap();
    assert!(st.success());
}

fn write(p: &Path, content: &[u8]) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, content).unwrap();
}

/// All regular files under `dir` with their content, relative paths sorted.
fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                out.push((
                    e.path().strip_prefix(dir).unwrap().to_path_buf(),
                    fs::read(e.path()).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn restores_components_to_omnibus_paths_and_keeps_previous_contents() {
    let work = tempfile::tempdir().unwrap();
    let rootdir = work.path().join("root");
    let root = HostRoot::new(&rootdir);
    let staging = work.path().join("make");

    // Component sources.
    let up = staging.join("uploads-src");
    write(&up.join("@hashed/ab/cd/abcd/file.png"), &[7u8; 70_000]);
    write(&up.join("-/system/user/avatar/1/a.png"), b"avatar");
    write(&up.join(".hidden"), b"dot file");
    fs::create_dir_all(up.join("empty-dir")).unwrap();
    std::os::unix::fs::symlink("@hashed/ab/cd/abcd/file.png", up.join("inside-link")).unwrap();
    fs::hard_link(up.join(".hidden"), up.join("hidden-hardlink")).unwrap();
    let lfs = staging.join("lfs-src");
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    write(
        &lfs.join("4d/7a/214614ab2935c2f7a1fbd4d8d0a1e1ebd4d9e3a3"),
        &big,
    );
    let builds = staging.join("builds-src");
    write(&builds.join("2024_04/1/2.log"), b"job log\n");

    let bdir = staging.join("backup");
    fs::create_dir_all(&bdir).unwrap();
    component(&up, &bdir.join("uploads.tar.gz"), &["gzip", "-c"]);
    // GitLab with COMPRESS_CMD=zstd keeps the .tar.gz name.
    component(&lfs, &bdir.join("lfs.tar.gz"), &["zstd", "-q", "-c"]);
    component(&builds, &bdir.join("builds.tar.gz"), &["gzip", "-c"]);
    write(
        &bdir.join("backup_information.yml"),
        b":gitlab_version: 16.10.3-ee\n:skipped: builds\n",
    );
    let archive = work
        .path()
        .join("1712345678_2024_04_05_16.10.3-ee_gitlab_backup.tar");
    outer(
        &bdir,
        &archive,
        &[
            "backup_information.yml",
            "uploads.tar.gz",
            "builds.tar.gz",
            "lfs.tar.gz",
        ],
    );

    // Existing contents on the host.
    let uploads_target = root.join("/var/opt/gitlab/gitlab-rails/uploads");
    write(&uploads_target.join("old/stale.txt"), b"stale upload");
    write(&uploads_target.join(".old-dotfile"), b"x");

    let members: Vec<String> = files::archive_members(&archive)
        .unwrap()
        .into_iter()
        .map(|m| m.name)
        .collect();
    // The backup skipped builds: it is not selected.
    let comps =
        files::select_components(&members, &["builds".to_string()], &[], InstallKind::Omnibus);
    assert_eq!(
        comps.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        vec!["uploads", "lfs"]
    );
    let journal = Journal::open_in(&root.join(BACKUP_PATH).join("rewind")).unwrap();
    let events = std::sync::Mutex::new(Vec::new());
    let sink = |e: Event| events.lock().unwrap().push(e);
    let reports = files::restore_components(
        &archive,
        &comps,
        &root,
        Path::new(BACKUP_PATH),
        &RestoreOptions {
            owner: OwnerPolicy::Current,
            epoch: Some(1_712_999_999),
            cancel: None,
        },
        &sink,
        Some(&journal),
    )
    .unwrap();

    // Content equal to the archive, at the Omnibus paths.
    assert_eq!(tree(&uploads_target), tree(&up));
    let lfs_target = root.join("/var/opt/gitlab/gitlab-rails/shared/lfs-objects");
    assert_eq!(tree(&lfs_target), tree(&lfs));
    assert!(uploads_target.join("empty-dir").is_dir());
    assert_eq!(
        fs::read_link(uploads_target.join("inside-link")).unwrap(),
        PathBuf::from("@hashed/ab/cd/abcd/file.png")
    );
    assert!(!root.join("/var/opt/gitlab/gitlab-ci/builds").exists());

    // Previous contents moved aside, not deleted.
    let aside = root.join("/var/opt/gitlab/backups/tmp/uploads.1712999999/uploads");
    assert_eq!(
        fs::read(aside.join("old/stale.txt")).unwrap(),
        b"stale upload"
    );
    assert!(aside.join(".old-dotfile").exists());
    let r = &reports[0];
    assert_eq!(
        r.moved_aside.as_ref().unwrap().path,
        PathBuf::from("/var/opt/gitlab/backups/tmp/uploads.1712999999/uploads")
    );
    assert_eq!(r.moved_aside.as_ref().unwrap().files, 2);
    assert_eq!(r.compression, "gzip");
    assert_eq!(reports[1].compression, "zstd");
    // Verify: counts equal the archive's (hardlink counted as a file).
    assert_eq!(r.archive.files, 4);
    assert_eq!(r.archive.hardlinks, 1);
    assert_eq!(r.archive.symlinks, 1);
    assert_eq!(r.restored_files, 4);
    assert_eq!(r.restored_bytes, r.archive.bytes);
    assert_eq!(reports[1].archive.bytes, 3_000_000);
    assert!(r.verify_line().ends_with("equal"), "{}", r.verify_line());
    // No staging directory left behind.
    let parent = root.join("/var/opt/gitlab/gitlab-rails");
    for e in fs::read_dir(&parent).unwrap() {
        let n = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!n.contains("rewind-staging"), "{n} left behind");
    }
    // Progress and journal.
    let ev = events.lock().unwrap();
    assert!(ev
        .iter()
        .any(|e| matches!(e, Event::Log { message, .. } if message.contains("uploads: 4 files"))));
    let entries = Journal::read(journal.path()).unwrap();
    assert_eq!(
        entries
            .iter()
            .map(|e| format!("{}:{:?}", e.step, e.stage))
            .collect::<Vec<_>>(),
        vec![
            "files.uploads:Begin",
            "files.uploads:End",
            "files.lfs:Begin",
            "files.lfs:End"
        ]
    );
}

/// Build a hostile component with python3's tarfile module: `entries` is python code
/// adding members to `t`.
fn hostile(out: &Path, entries: &str) {
    let script = format!(
        "import tarfile, io, sys\nt = tarfile.open(sys.argv[1], 'w:gz')\ndef f(name, data=b'pwned'):\n    i = tarfile.TarInfo(name); i.size = len(data); t.addfile(i, io.BytesIO(data))\ndef d(name):\n    i = tarfile.TarInfo(name); i.type = tarfile.DIRTYPE; i.mode = 0o755; t.addfile(i)\ndef l(name, target, kind=tarfile.SYMTYPE):\n    i = tarfile.TarInfo(name); i.type = kind; i.linkname = target; t.addfile(i)\nd('.')\nf('./good.txt', b'good')\n{entries}\nt.close()\n"
    );
    let st = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(out)
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn refuses_hostile_archives_and_writes_nothing_outside() {
    let cases: [(&str, &str, &str); 7] = [
        ("dotdot", "f('./../../../../escaped-dotdot')", "`..`"),
        ("absolute", "f('/tmp/rewind-escaped-absolute')", "absolute"),
        ("symlink-out", "l('./out', '../../../../../escaped-link')", "outside"),
        ("symlink-abs", "l('./etc', '/etc')", "absolute"),
        (
            "symlink-then-write",
            "l('./sub', '.')\nf('./sub/../../escaped-through')",
            "`..`",
        ),
        (
            "symlink-chain",
            "d('./deep')\nl('./deep/up', '..')\nl('./m', 'deep/up/..')",
            "outside",
        ),
        ("device", "i = tarfile.TarInfo('./dev'); i.type = tarfile.CHRTYPE; i.devmajor = 1; i.devminor = 3; t.addfile(i)", "device"),
    ];
    for (name, entries, expect) in cases {
        let work = tempfile::tempdir().unwrap();
        let rootdir = work.path().join("a/b/root");
        let root = HostRoot::new(&rootdir);
        let bdir = work.path().join("backup");
        fs::create_dir_all(&bdir).unwrap();
        hostile(&bdir.join("uploads.tar.gz"), entries);
        let archive = work.path().join("1_gitlab_backup.tar");
        outer(&bdir, &archive, &["uploads.tar.gz"]);
        let target = root.join("/var/opt/gitlab/gitlab-rails/uploads");
        write(&target.join("keep.txt"), b"still here");
        let comps = files::select_components(
            &["uploads.tar.gz".to_string()],
            &[],
            &[],
            InstallKind::Omnibus,
        );
        let before = tree(work.path());
        let err = files::restore_components(
            &archive,
            &comps,
            &root,
            Path::new(BACKUP_PATH),
            &RestoreOptions {
                owner: OwnerPolicy::Current,
                epoch: Some(5),
                cancel: None,
            },
            &NullSink,
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("unsafe entry"), "{name}: {err}");
        assert!(err.contains(expect), "{name}: {err}");
        // The target is untouched, nothing was moved aside, nothing new exists anywhere.
        assert_eq!(fs::read(target.join("keep.txt")).unwrap(), b"still here");
        assert!(!root.join("/var/opt/gitlab/backups/tmp").exists(), "{name}");
        assert_eq!(tree(work.path()), before, "{name}: files changed");
        assert!(!Path::new("/tmp/rewind-escaped-absolute").exists());
        let mut leftovers = Vec::new();
        for e in fs::read_dir(target.parent().unwrap()).unwrap() {
            leftovers.push(e.unwrap().file_name().to_string_lossy().into_owned());
        }
        assert_eq!(leftovers, vec!["uploads"], "{name}: staging left behind");
    }
}
