//! The sandbox's Git repositories: real bare repositories made with `git` in the storage
//! directory (Omnibus' `/var/opt/gitlab/git-data/repositories` under the sandbox root) for
//! some of the database's projects, and the backup's `repositories/` tree in the layout
//! gitaly-backup's manifest layout writes: `<storage>/<relative path>/<backup id>/001.bundle`
//! and `001.refs`, `manifests/<storage>/<relative path>/<backup id>.toml` and
//! `+latest.toml`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{io_err, Result, SandboxError};
use crate::repositories::{self, manifest};

fn git(args: &[&std::ffi::OsStr], step: &str) -> Result<Vec<u8>> {
    let out = Command::new("git")
        .args(args)
        .env("GIT_AUTHOR_NAME", "Rewind Sandbox")
        .env("GIT_AUTHOR_EMAIL", "sandbox@example.com")
        .env("GIT_COMMITTER_NAME", "Rewind Sandbox")
        .env("GIT_COMMITTER_EMAIL", "sandbox@example.com")
        .env("GIT_AUTHOR_DATE", "2024-04-01T12:00:00Z")
        .env("GIT_COMMITTER_DATE", "2024-04-01T12:00:00Z")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .map_err(|e| SandboxError::Tool {
            tool: "git".into(),
            step: step.into(),
            status: "not started".into(),
            stderr: format!("{e}; install git"),
        })?;
    if !out.status.success() {
        return Err(SandboxError::Tool {
            tool: "git".into(),
            step: step.into(),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(out.stdout)
}

/// Create a bare repository at `repo` with `commits` commits on `main` (and a tag and a
/// second branch), deterministic content. `label` goes into the files.
pub fn make_repository(repo: &Path, label: &str, commits: usize) -> Result<()> {
    let work = tempfile::tempdir().map_err(io_err("creating a work tree", repo))?;
    let w = work.path();
    git(
        &[
            "init".as_ref(),
            "--quiet".as_ref(),
            "-b".as_ref(),
            "main".as_ref(),
            w.as_os_str(),
        ],
        "creating a sandbox repository",
    )?;
    for i in 0..commits.max(1) {
        fs::write(w.join("README.md"), format!("# {label}\n\nrevision {i}\n"))
            .map_err(io_err("writing", w.join("README.md")))?;
        let c = w.as_os_str();
        git(
            &["-C".as_ref(), c, "add".as_ref(), "README.md".as_ref()],
            "git add",
        )?;
        let msg = format!("{label}: revision {i}");
        git(
            &[
                "-C".as_ref(),
                c,
                "commit".as_ref(),
                "--quiet".as_ref(),
                "-m".as_ref(),
                msg.as_ref(),
            ],
            "git commit",
        )?;
        if i == 0 {
            git(
                &["-C".as_ref(), c, "tag".as_ref(), "v1.0".as_ref()],
                "git tag",
            )?;
            git(
                &["-C".as_ref(), c, "branch".as_ref(), "feature".as_ref()],
                "git branch",
            )?;
        }
    }
    if let Some(p) = repo.parent() {
        fs::create_dir_all(p).map_err(io_err("creating", p))?;
    }
    git(
        &[
            "clone".as_ref(),
            "--quiet".as_ref(),
            "--bare".as_ref(),
            w.as_os_str(),
            repo.as_os_str(),
        ],
        "git clone --bare",
    )?;
    Ok(())
}

/// Add a commit to the bare repository `repo` on `main` (a push after the backup).
pub fn push_commit(repo: &Path, label: &str) -> Result<()> {
    let work = tempfile::tempdir().map_err(io_err("creating a work tree", repo))?;
    let w = work.path().join("w");
    git(
        &[
            "clone".as_ref(),
            "--quiet".as_ref(),
            repo.as_os_str(),
            w.as_os_str(),
        ],
        "git clone",
    )?;
    fs::write(w.join("PUSHED.md"), format!("{label}\n")).map_err(io_err("writing", &w))?;
    let c = w.as_os_str();
    git(
        &["-C".as_ref(), c, "add".as_ref(), "PUSHED.md".as_ref()],
        "git add",
    )?;
    git(
        &[
            "-C".as_ref(),
            c,
            "commit".as_ref(),
            "--quiet".as_ref(),
            "-m".as_ref(),
            label.as_ref(),
        ],
        "git commit",
    )?;
    git(
        &[
            "-C".as_ref(),
            c,
            "push".as_ref(),
            "--quiet".as_ref(),
            "origin".as_ref(),
            "main".as_ref(),
        ],
        "git push",
    )?;
    Ok(())
}

/// `git show-ref --head` of a bare repository: its refs and their objects (empty for an
/// empty repository).
pub fn refs(repo: &Path) -> Result<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["-c", "safe.directory=*", "show-ref", "--head"])
        .output()
        .map_err(io_err("running git show-ref in", repo))?;
    // Exit 1 with no output: no refs.
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The bare repositories under a storage directory (relative paths ending in `.git`).
pub fn list(storage: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let Ok(rd) = fs::read_dir(storage.join(&rel)) else {
            continue;
        };
        for e in rd.flatten() {
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let r = rel.join(e.file_name());
            if e.file_name().to_string_lossy().ends_with(".git") {
                out.push(r.to_string_lossy().into_owned());
            } else {
                stack.push(r);
            }
        }
    }
    out.sort();
    out
}

/// The refs of every repository under `storage`, by relative path.
pub fn all_refs(storage: &Path) -> Result<BTreeMap<String, String>> {
    list(storage)
        .into_iter()
        .map(|r| refs(&storage.join(&r)).map(|f| (r, f)))
        .collect()
}

/// Write `repositories/` for the backup `backup_id` into `dest` from the bare repositories
/// of each `(storage name, storage directory)`, as gitaly-backup's manifest layout does.
/// Returns how many repositories it holds.
pub fn write_backup_tree(
    dest: &Path,
    storages: &[(String, PathBuf)],
    backup_id: &str,
) -> Result<usize> {
    let mut n = 0;
    for (name, dir) in storages {
        for rel in list(dir) {
            let repo = dir.join(&rel);
            let step_dir = format!("{name}/{rel}/{backup_id}");
            let abs = dest.join(&step_dir);
            fs::create_dir_all(&abs).map_err(io_err("creating", &abs))?;
            let refs_text = refs(&repo)?;
            let empty = refs_text.trim().is_empty();
            let mut m = manifest::Manifest {
                empty,
                non_existent: false,
                object_format: "sha1".into(),
                head_reference: String::new(),
                steps: Vec::new(),
            };
            if !empty {
                let head = git(
                    &[
                        "-C".as_ref(),
                        repo.as_os_str(),
                        "symbolic-ref".as_ref(),
                        "HEAD".as_ref(),
                    ],
                    "reading HEAD",
                )?;
                m.head_reference = String::from_utf8_lossy(&head).trim().to_string();
                let bundle = abs.join("001.bundle");
                git(
                    &[
                        "-C".as_ref(),
                        repo.as_os_str(),
                        "bundle".as_ref(),
                        "create".as_ref(),
                        bundle.as_os_str(),
                        "--all".as_ref(),
                    ],
                    "git bundle create",
                )?;
                fs::write(abs.join("001.refs"), &refs_text)
                    .map_err(io_err("writing", abs.join("001.refs")))?;
                m.steps.push(manifest::Step {
                    bundle_path: format!("{step_dir}/001.bundle"),
                    ref_path: format!("{step_dir}/001.refs"),
                    custom_hooks_path: format!("{step_dir}/001.custom_hooks.tar"),
                });
            }
            let mdir = dest.join("manifests").join(name).join(&rel);
            fs::create_dir_all(&mdir).map_err(io_err("creating", &mdir))?;
            let text = manifest::write(&m);
            for f in [format!("{backup_id}.toml"), "+latest.toml".to_string()] {
                fs::write(mdir.join(&f), &text).map_err(io_err("writing", mdir.join(&f)))?;
            }
            n += 1;
        }
    }
    Ok(n)
}

/// Make repositories for the first `projects` projects of the database (and the first
/// one's wiki) in the storage directory `storage` (a real path), at the relative paths
/// GitLab uses. Returns their relative paths.
pub fn populate(
    client: &mut postgres::Client,
    storage: &Path,
    projects: usize,
) -> Result<Vec<String>> {
    let repos = repositories::repositories_from_db(client).map_err(|e| SandboxError::Invalid {
        what: "repositories".into(),
        detail: e.to_string(),
    })?;
    let mut made = Vec::new();
    let project_repos: Vec<_> = repos
        .iter()
        .filter(|r| r.always_create)
        .take(projects)
        .collect();
    for (i, r) in project_repos.iter().enumerate() {
        make_repository(
            &storage.join(&r.relative_path),
            &r.gl_project_path,
            1 + i % 3,
        )?;
        made.push(r.relative_path.clone());
    }
    if let Some(first) = project_repos.first() {
        let wiki = first.relative_path.replace(".git", ".wiki.git");
        make_repository(
            &storage.join(&wiki),
            &format!("{} wiki", first.gl_project_path),
            1,
        )?;
        made.push(wiki);
    }
    Ok(made)
}
