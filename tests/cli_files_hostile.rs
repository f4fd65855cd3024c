//! File restores as root in directories `git` controls: each hostile tree or archive is
//! built in a temp root; the restore must refuse, naming the path, and change nothing
//! outside the target. Through the built binary (`rewind --root <tmp> restore --skip db`)
//! where a whole run is needed, through the engine for the race.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use rewind_engine::detect::InstallKind;
use rewind_engine::files::{self, OwnerPolicy, RestoreOptions};
use rewind_engine::progress::NullSink;
use rewind_engine::root::HostRoot;

mod common;
use common::text;

const ID: &str = "1713867342_2024_04_23_16.10.3-ee";
const BACKUP_PATH: &str = "/var/opt/gitlab/backups";
const UPLOADS: &str = "/var/opt/gitlab/gitlab-rails/uploads";

/// An Omnibus-like root at 16.10.3-ee with a backup whose `uploads.tar.gz` is made by
/// `python` (code adding members to the tarfile `t`), or from `a.png` when `None`.
struct Host {
    work: tempfile::TempDir,
}

impl Host {
    fn new(python: Option<&str>) -> Host {
        let work = tempfile::tempdir().unwrap();
        let h = Host { work };
        let rails = h.root().join("opt/gitlab/embedded/service/gitlab-rails");
        fs::create_dir_all(&rails).unwrap();
        fs::write(rails.join("VERSION"), "16.10.3-ee\n").unwrap();
        fs::write(
            h.root().join("opt/gitlab/version-manifest.txt"),
            "gitlab-ee 16.10.3\n",
        )
        .unwrap();
        fs::create_dir_all(h.host(BACKUP_PATH)).unwrap();
        fs::create_dir_all(h.host("/var/opt/gitlab/gitlab-rails")).unwrap();
        let st = h.work.path().join("staging");
        fs::create_dir_all(&st).unwrap();
        fs::write(
            st.join("backup_information.yml"),
            format!(":gitlab_version: 16.10.3-ee\n:installation_type: omnibus-gitlab\n:skipped: \n:backup_id: {ID}\n"),
        )
        .unwrap();
        let entries = python.unwrap_or("f('./a.png', b'png')");
        let script = format!(
            "import tarfile, io, sys\nt = tarfile.open(sys.argv[1], 'w:gz')\ndef f(name, data=b'pwned'):\n    i = tarfile.TarInfo(name); i.size = len(data); i.mode = 0o644; t.addfile(i, io.BytesIO(data))\ndef d(name):\n    i = tarfile.TarInfo(name); i.type = tarfile.DIRTYPE; i.mode = 0o755; t.addfile(i)\ndef l(name, target, kind=tarfile.SYMTYPE):\n    i = tarfile.TarInfo(name); i.type = kind; i.linkname = target; t.addfile(i)\nd('.')\n{entries}\nt.close()\n"
        );
        let ok = Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(st.join("uploads.tar.gz"))
            .status()
            .unwrap();
        assert!(ok.success());
        let ok = Command::new("tar")
            .arg("-cf")
            .arg(h.host(&format!("{BACKUP_PATH}/{ID}_gitlab_backup.tar")))
            .arg("-C")
            .arg(&st)
            .args(["backup_information.yml", "uploads.tar.gz"])
            .status()
            .unwrap();
        assert!(ok.success());
        h
    }

    fn root(&self) -> PathBuf {
        self.work.path().join("root")
    }

    fn host(&self, p: &str) -> PathBuf {
        HostRoot::new(self.root()).join(p)
    }

    /// A directory outside the target holding a file, standing for `/etc`.
    fn outside(&self) -> PathBuf {
        let o = self.host("/etc-victim");
        fs::create_dir_all(&o).unwrap();
        fs::write(o.join("victim"), b"do not touch").unwrap();
        fs::set_permissions(o.join("victim"), fs::Permissions::from_mode(0o644)).unwrap();
        o
    }

    fn restore(&self) -> Output {
        Command::new(env!("CARGO_BIN_EXE_rewind"))
            .arg("--root")
            .arg(self.root())
            .arg("restore")
            .args(["--backup", ID, "--skip", "db", "--confirm-files"])
            .env_remove("REWIND_DATABASE_URL")
            .env("RUST_BACKTRACE", "0")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}

/// (path, size, mode, nlink, content) of everything under `dir`, links not followed;
/// Rewind's own host lock (`/run/rewind`, root-owned, outside the git-writable tree) left
/// out.
fn snapshot(dir: &Path) -> Vec<(PathBuf, u64, u32, u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    let own_lock = dir.join("run");
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.path() == own_lock {
                continue;
            }
            let m = fs::symlink_metadata(e.path()).unwrap();
            // Directories: only that they exist (their size and link count follow Rewind's
            // own journal directory); files: content when small.
            let content = if m.is_file() {
                if m.size() <= 4096 {
                    fs::read(e.path()).unwrap()
                } else {
                    Vec::new()
                }
            } else if m.file_type().is_symlink() {
                fs::read_link(e.path())
                    .unwrap()
                    .into_os_string()
                    .into_encoded_bytes()
            } else {
                stack.push(e.path());
                out.push((e.path(), 0, m.mode(), 0, Vec::new()));
                continue;
            };
            out.push((e.path(), m.size(), m.mode(), m.nlink(), content));
        }
    }
    out.sort();
    out
}

#[test]
fn a_target_that_is_a_link_is_refused_and_its_target_untouched() {
    let h = Host::new(None);
    let outside = h.outside();
    std::os::unix::fs::symlink("/etc-victim", h.host(UPLOADS)).unwrap();
    let before = snapshot(&outside);
    let o = h.restore();
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(
        t.contains("refusing /var/opt/gitlab/gitlab-rails/uploads") && t.contains("symbolic link"),
        "{t}"
    );
    assert_eq!(snapshot(&outside), before);
    assert!(fs::symlink_metadata(h.host(UPLOADS))
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(!h.host("/var/opt/gitlab/backups/tmp").exists());
}

#[test]
fn hardlinks_through_chained_symlinks_are_refused() {
    let h = Host::new(Some(
        "l('./a', '.')\nl('./s1', 'a/..')\nl('./s2', 's1/a/..')\nl('./s3', 's2/a/..')\nl('./s4', 's3/a/..')\nl('./s5', 's4/a/..')\nl('./s6', 's5/a/..')\nl('./h', 's6/victim', tarfile.LNKTYPE)\nf('./a', b'x')\nf('./s6', b'x')\nf('./h', b'pwned')",
    ));
    let outside = h.outside();
    // The victim where the chain would lead (the parent of the staging directory).
    let rails_victim = h.host("/var/opt/gitlab/gitlab-rails/victim");
    fs::write(&rails_victim, b"do not touch").unwrap();
    let before = snapshot(&h.root());
    let o = h.restore();
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(t.contains("unsafe entry") && t.contains("./h"), "{t}");
    assert_eq!(fs::read(outside.join("victim")).unwrap(), b"do not touch");
    assert_eq!(fs::metadata(&rails_victim).unwrap().nlink(), 1);
    assert_eq!(fs::read(&rails_victim).unwrap(), b"do not touch");
    // Nothing changed anywhere but Rewind's journal.
    let after: Vec<_> = snapshot(&h.root())
        .into_iter()
        .filter(|e| !e.0.starts_with(h.host("/var/opt/gitlab/backups/rewind")))
        .collect();
    let before: Vec<_> = before
        .into_iter()
        .filter(|e| !e.0.starts_with(h.host("/var/opt/gitlab/backups/rewind")))
        .collect();
    assert_eq!(after, before);
}

#[test]
fn a_linked_journal_snapshot_or_tmp_is_refused_and_its_target_untouched() {
    let h = Host::new(None);
    let outside = h.outside();
    let rewind_dir = h.host("/var/opt/gitlab/backups/rewind");
    fs::create_dir_all(&rewind_dir).unwrap();
    std::os::unix::fs::symlink("/etc-victim/victim", rewind_dir.join("journal.jsonl")).unwrap();
    let before = snapshot(&outside);
    let o = h.restore();
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(
        t.contains("journal.jsonl") && t.contains("symbolic link"),
        "{t}"
    );
    assert_eq!(
        snapshot(&outside),
        before,
        "the journal's link target changed"
    );

    // The whole journal directory a link.
    fs::remove_dir_all(&rewind_dir).unwrap();
    std::os::unix::fs::symlink("/etc-victim", &rewind_dir).unwrap();
    let o = h.restore();
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(
        t.contains("backups/rewind") && t.contains("symbolic link"),
        "{t}"
    );
    assert_eq!(snapshot(&outside), before);

    // `tmp` (where previous contents go) a link: refused before anything moves.
    fs::remove_file(&rewind_dir).unwrap();
    fs::create_dir_all(h.host(UPLOADS)).unwrap();
    fs::write(h.host(UPLOADS).join("old.png"), b"old").unwrap();
    std::os::unix::fs::symlink("/etc-victim", h.host("/var/opt/gitlab/backups/tmp")).unwrap();
    let o = h.restore();
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(
        t.contains("backups/tmp") && t.contains("symbolic link"),
        "{t}"
    );
    assert_eq!(snapshot(&outside), before);
    assert_eq!(fs::read(h.host(UPLOADS).join("old.png")).unwrap(), b"old");
}

#[test]
fn restored_directory_keeps_owner_and_mode_and_aside_names_are_unique() {
    let h = Host::new(None);
    let up = h.host(UPLOADS);
    fs::create_dir_all(&up).unwrap();
    fs::write(up.join("old.png"), b"old").unwrap();
    fs::set_permissions(&up, fs::Permissions::from_mode(0o750)).unwrap();
    let is_root = rewind_engine::safefs::euid() == 0;
    if is_root {
        std::os::unix::fs::chown(&up, Some(4321), Some(4322)).unwrap();
    }
    for _ in 0..2 {
        let o = h.restore();
        assert!(o.status.success(), "{}", text(&o));
        let m = fs::symlink_metadata(&up).unwrap();
        assert!(m.is_dir());
        assert_eq!(m.mode() & 0o7777, 0o750);
        if is_root {
            assert_eq!((m.uid(), m.gid()), (4321, 4322));
            let f = fs::metadata(up.join("a.png")).unwrap();
            assert_eq!((f.uid(), f.gid()), (4321, 4322));
        }
        assert_eq!(fs::read(up.join("a.png")).unwrap(), b"png");
    }
    // Each run moved the previous contents to its own root-owned 0700 directory.
    let tmp = h.host("/var/opt/gitlab/backups/tmp");
    let asides: Vec<_> = fs::read_dir(&tmp)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(asides.len(), 2, "{asides:?}");
    for a in &asides {
        let m = fs::symlink_metadata(a).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o700);
        assert_eq!(m.uid(), rewind_engine::safefs::euid());
        assert!(a.join("uploads").is_dir());
    }
}

/// While an extraction runs, another thread keeps renaming the staging directory away and
/// planting a link to an outside directory in its place (what `git` can do in its parent).
/// Whatever the timing, nothing is written outside and `uploads` is never a link.
#[test]
fn swapping_the_staging_directory_for_a_link_during_extraction_writes_nothing_outside() {
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    for d in 0..20 {
        for f in 0..40 {
            let p = src.join(format!("d{d}/f{f}"));
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, vec![b'x'; 2048]).unwrap();
        }
    }
    let bdir = work.path().join("b");
    fs::create_dir_all(&bdir).unwrap();
    let ok = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "tar -C {} -cf - . | gzip -1 > {}/uploads.tar.gz && tar -C {} -cf {}/1_gitlab_backup.tar uploads.tar.gz",
            src.display(),
            bdir.display(),
            bdir.display(),
            work.path().display()
        ))
        .status()
        .unwrap();
    assert!(ok.success());
    let archive = work.path().join("1_gitlab_backup.tar");
    let comps = files::select_components(
        &["uploads.tar.gz".to_string()],
        &[],
        &[],
        InstallKind::Omnibus,
    );
    for round in 0..25 {
        let rootdir = work.path().join(format!("root{round}"));
        let root = HostRoot::new(&rootdir);
        let parent = root.join("/var/opt/gitlab/gitlab-rails");
        fs::create_dir_all(&parent).unwrap();
        let outside = rootdir.join("outside");
        fs::create_dir_all(&outside).unwrap();
        let stop = std::sync::atomic::AtomicBool::new(false);
        let result = std::thread::scope(|s| {
            s.spawn(|| {
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    if let Ok(rd) = fs::read_dir(&parent) {
                        for e in rd.flatten() {
                            let name = e.file_name().to_string_lossy().into_owned();
                            if name.contains("rewind-staging") && e.path().is_dir() {
                                n += 1;
                                let away = rootdir.join(format!("away{n}"));
                                if fs::rename(e.path(), &away).is_ok() {
                                    let _ = std::os::unix::fs::symlink(&outside, e.path());
                                }
                            }
                        }
                    }
                    // Also try to make `uploads` itself a link before the rename in.
                    let _ = std::os::unix::fs::symlink(&outside, parent.join("uploads-planted"));
                }
            });
            let r = files::restore_components(
                &archive,
                &comps,
                &root,
                Path::new(BACKUP_PATH),
                &RestoreOptions {
                    owner: OwnerPolicy::Current,
                    epoch: Some(1),
                    cancel: None,
                },
                &NullSink,
                None,
            );
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            r
        });
        assert_eq!(
            fs::read_dir(&outside).unwrap().count(),
            0,
            "round {round}: written outside"
        );
        let up = parent.join("uploads");
        match result {
            Ok(r) => {
                assert!(fs::symlink_metadata(&up).unwrap().is_dir(), "round {round}");
                assert_eq!(r[0].restored_files, 800);
                assert_eq!(files::extract::count_tree(&up).unwrap(), (800, 800 * 2048));
            }
            Err(e) => {
                let m = fs::symlink_metadata(&up);
                assert!(
                    m.map(|m| m.is_dir()).unwrap_or(true),
                    "round {round}: uploads became a link ({e})"
                );
            }
        }
    }
}
