//! Stand-in GitLab packages, a local apt repository of them, and a sandbox root whose dpkg
//! database has one of them installed: what `rewind drill` and the tests roll back with real
//! apt and dpkg.
//!
//! A stand-in package is a real `.deb` named `gitlab-ee`/`gitlab-ce` with GitLab's package
//! version (`16.10.3-ee.0`) that installs `opt/gitlab/embedded/service/gitlab-rails/VERSION`
//! and `opt/gitlab/version-manifest.txt`, the files Rewind's detection reads, and
//! `opt/gitlab/etc/gitlab.rb.template`, which the rollback's guard reads. The repository
//! index is written by Rewind (the control fields from `dpkg-deb -f`, plus `Filename`, `Size`
//! and `SHA256`), so neither `apt-ftparchive` nor `dpkg-scanpackages` is needed.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{apt_sandbox, PackageError};
use crate::detect::omnibus;
use crate::exec::{self, Cmd};
use crate::root::HostRoot;
use crate::version::{Edition, GitLabVersion};

/// The Debian package version of a GitLab version: `16.10.3-ee.0`.
pub fn deb_version(v: &GitLabVersion) -> String {
    format!("{}-{}.0", v.base(), v.edition_or_ce())
}

/// What GitLab writes into `VERSION`: `16.10.3-ee` for EE, `16.10.3` for current CE.
fn version_file_text(v: &GitLabVersion) -> String {
    match v.edition_or_ce() {
        Edition::Ee => format!("{}-ee", v.base()),
        Edition::Ce => v.base(),
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> PackageError + '_ {
    move |source| PackageError::Sandbox {
        path: path.to_path_buf(),
        source,
    }
}

fn write_file(path: &Path, text: &str) -> Result<(), PackageError> {
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).map_err(io_err(p))?;
    }
    fs::write(path, text).map_err(io_err(path))
}

fn run_quiet(cmd: &Cmd) -> Result<exec::Captured, PackageError> {
    let out = exec::capture(cmd)?;
    if !out.success() {
        return Err(PackageError::Query {
            command: out.command,
            code: out.code,
            stderr: format!("{}{}", out.stdout, out.stderr).trim().to_string(),
        });
    }
    Ok(out)
}

/// Build the stand-in package of `v` into `out_dir` with `dpkg-deb --build`; returns the
/// `.deb` path (`gitlab-ee_16.10.3-ee.0_all.deb`).
pub fn build_standin_deb(v: &GitLabVersion, out_dir: &Path) -> Result<PathBuf, PackageError> {
    let ed = v.edition_or_ce();
    let package = ed.package();
    let other = match ed {
        Edition::Ee => Edition::Ce.package(),
        Edition::Ce => Edition::Ee.package(),
    };
    let version = deb_version(v);
    fs::create_dir_all(out_dir).map_err(io_err(out_dir))?;
    let tree = tempfile::Builder::new()
        .prefix("rewind-standin-")
        .tempdir_in(out_dir)
        .map_err(io_err(out_dir))?;
    let t = HostRoot::new(tree.path());
    write_file(
        &t.join("/DEBIAN/control"),
        &format!(
            "Package: {package}\nVersion: {version}\nArchitecture: all\nMaintainer: Rewind <rewind@localhost>\nSection: misc\nPriority: optional\nConflicts: {other}\nReplaces: {other}\nDescription: stand-in for the GitLab {ed} Omnibus package (Rewind drill)\n This package only installs GitLab's VERSION file and version manifest.\n",
            ed = ed.as_str().to_uppercase()
        ),
    )?;
    write_file(
        &t.join(omnibus::VERSION),
        &format!("{}\n", version_file_text(v)),
    )?;
    write_file(&t.join(omnibus::REVISION), "0000000000a\n")?;
    write_file(
        &t.join(omnibus::MANIFEST),
        &format!(
            "{package} {}\n\ngitlab-rails v{}\ngitaly v{}\n",
            v.base(),
            v.base(),
            v.base()
        ),
    )?;
    write_file(
        &t.join(super::guard::GITLAB_RB_TEMPLATE),
        &standin_template(v),
    )?;
    let deb = out_dir.join(format!("{package}_{version}_all.deb"));
    run_quiet(
        &Cmd::new("dpkg-deb")
            .args(["--root-owner-group", "-Zgzip", "--build"])
            .arg(tree.path())
            .arg(&deb),
    )?;
    Ok(deb)
}

/// The stand-in's `gitlab.rb.template`: the settings the sandbox's `gitlab.rb` uses, written
/// as GitLab's template writes them (commented out, with their defaults).
fn standin_template(v: &GitLabVersion) -> String {
    format!(
        "## GitLab configuration settings (stand-in template of GitLab {v}, Rewind drill)\n\
         external_url 'GENERATED_EXTERNAL_URL'\n\
         # roles ['application_role']\n\
         # gitlab_rails['time_zone'] = 'UTC'\n\
         # gitlab_rails['manage_backup_path'] = true\n\
         # gitlab_rails['backup_path'] = \"/var/opt/gitlab/backups\"\n\
         # gitlab_rails['backup_archive_permissions'] = 0644\n\
         # gitlab_rails['db_database'] = \"gitlabhq_production\"\n\
         # gitlab_rails['databases']['ci']['enable'] = true\n\
         # postgresql['enable'] = true\n\
         # postgresql['data_dir'] = \"/var/opt/gitlab/postgresql/data\"\n\
         # postgresql['version'] = nil\n"
    )
}

fn sha256_file(path: &Path) -> Result<(String, u64), PackageError> {
    let mut f = fs::File::open(path).map_err(io_err(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok((hex, size))
}

/// Write the `Packages` index of the `.deb` files in `dir` (a flat repository:
/// `deb [trusted=yes] file:<dir> ./`).
pub fn write_packages_index(dir: &Path) -> Result<(), PackageError> {
    let mut debs: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(io_err(dir))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "deb"))
        .collect();
    debs.sort();
    let mut index = String::new();
    for deb in debs {
        let control = run_quiet(&Cmd::new("dpkg-deb").arg("-f").arg(&deb))?.stdout;
        let (sha, size) = sha256_file(&deb)?;
        let name = deb
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        index.push_str(control.trim_end());
        index.push_str(&format!(
            "\nFilename: ./{name}\nSize: {size}\nSHA256: {sha}\n\n"
        ));
    }
    let path = dir.join("Packages");
    let mut f = fs::File::create(&path).map_err(io_err(&path))?;
    f.write_all(index.as_bytes()).map_err(io_err(&path))
}

/// A local apt repository of stand-in packages.
#[derive(Debug, Clone)]
pub struct StandInRepo {
    /// The repository directory (absolute).
    pub dir: PathBuf,
    /// The packages, by GitLab version.
    pub debs: Vec<(GitLabVersion, PathBuf)>,
}

impl StandInRepo {
    /// The `.deb` of a version.
    pub fn deb(&self, v: &GitLabVersion) -> Option<&Path> {
        self.debs
            .iter()
            .find(|(x, _)| x.same_release(v))
            .map(|(_, p)| p.as_path())
    }

    /// The apt source line of this repository.
    pub fn source_line(&self) -> String {
        format!("deb [trusted=yes] file:{} ./\n", self.dir.display())
    }
}

/// Build stand-in packages of `versions` and their index in `dir`.
pub fn build_repo(dir: &Path, versions: &[GitLabVersion]) -> Result<StandInRepo, PackageError> {
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let dir = fs::canonicalize(dir).map_err(io_err(dir))?;
    let mut debs = Vec::new();
    for v in versions {
        let v = if v.edition.is_some() {
            v.clone()
        } else {
            v.with_edition(Edition::Ce)
        };
        let deb = build_standin_deb(&v, &dir)?;
        debs.push((v, deb));
    }
    write_packages_index(&dir)?;
    Ok(StandInRepo { dir, debs })
}

/// Make `root` an apt/dpkg sandbox using `repo` as its only source, and refresh its lists
/// (`apt-get update`, confined to the sandbox).
pub fn prepare_apt_root(root: &HostRoot, repo: &StandInRepo) -> Result<(), PackageError> {
    apt_sandbox::ensure_dirs(root)?;
    write_file(&root.join("/etc/apt/sources.list"), &repo.source_line())?;
    let update = super::refresh_cmd(super::Manager::Apt, root)?;
    run_quiet(&update)?;
    Ok(())
}

/// Install a `.deb` into the sandbox with `dpkg -i`, confined to the sandbox.
pub fn dpkg_install(root: &HostRoot, deb: &Path) -> Result<(), PackageError> {
    apt_sandbox::ensure_dirs(root)?;
    run_quiet(
        &Cmd::new("dpkg")
            .args(apt_sandbox::dpkg_args(root))
            .arg("-i")
            .arg(deb),
    )?;
    Ok(())
}

/// Host path of the file the stand-in `gitlab-ctl` appends its calls to.
pub const GITLAB_CTL_CALLS: &str = "/var/log/gitlab/rewind-standin/gitlab-ctl.calls";

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Write a stand-in `gitlab-ctl` at `/opt/gitlab/bin/gitlab-ctl` under `root`: it appends
/// each call's arguments as one line to [`GITLAB_CTL_CALLS`], keeps per-service run/down
/// state for `stop`/`start`, and answers `status` in gitlab-ctl's format. Returns the
/// calls file.
pub fn write_gitlab_ctl_standin(root: &HostRoot) -> Result<PathBuf, PackageError> {
    let calls = root.join(GITLAB_CTL_CALLS);
    let state = root.join("/var/log/gitlab/rewind-standin/down");
    fs::create_dir_all(&state).map_err(io_err(&state))?;
    let script = format!(
        r#"#!/bin/sh
# Stand-in for gitlab-ctl written by Rewind (drill and tests): records every call.
calls={calls}
state={state}
echo "$*" >> "$calls"
services="gitaly gitlab-workhorse logrotate nginx postgresql puma redis sidekiq"
case "$1" in
  stop|start)
    targets="$2"; [ -n "$targets" ] || targets="$services"
    for s in $targets; do
      if [ "$1" = stop ]; then : > "$state/$s"; echo "ok: down: $s: 0s, normally up"
      else rm -f "$state/$s"; echo "ok: run: $s: (pid 4242) 0s"; fi
    done ;;
  status)
    rc=0
    targets="$2"; [ -n "$targets" ] || targets="$services"
    for s in $targets; do
      if [ -e "$state/$s" ]; then echo "down: $s: 5s, normally up; run: log: (pid 100) 9999s"; rc=6
      else echo "run: $s: (pid 200) 9999s; run: log: (pid 100) 9999s"; fi
    done
    exit $rc ;;
  reconfigure) echo "gitlab Reconfigured!" ;;
  *) ;;
esac
exit 0
"#,
        calls = sh_quote(&calls.display().to_string()),
        state = sh_quote(&state.display().to_string()),
    );
    let path = root.join(omnibus::GITLAB_CTL);
    write_file(&path, &script)?;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).map_err(io_err(&path))?;
    Ok(calls)
}

/// Write a stand-in `gitlab-rake` at `/opt/gitlab/bin/gitlab-rake` under `root`, where
/// [`crate::migrate::repair::default_migrate_cmd`] finds it: `gitlab-rake db:migrate` execs
/// `<rewind> --root <root> drill-migrate` (the drill's migration stand-in against this
/// sandbox; its output and exit code are the stand-in's), any other task execs
/// `<rewind> --root <root> drill-rake -- <args>` ([`crate::drill::standin_rake`], which
/// refuses tasks it does not know with exit code 1). `rewind` is the Rewind binary (the drill passes
/// `std::env::current_exe()`). The only values written into the script are these two
/// paths, single-quoted; the arguments it is given are compared, never evaluated. Returns
/// the script's path.
pub fn write_gitlab_rake_standin(root: &HostRoot, rewind: &Path) -> Result<PathBuf, PackageError> {
    let script = format!(
        r#"#!/bin/sh
# Stand-in for gitlab-rake written by Rewind's drill: db:migrate runs the drill's
# migration stand-in against this sandbox; the checks after a restore run the drill's
# stand-in tasks (drill-rake); the arguments are passed on, never evaluated.
if [ "$#" -eq 1 ] && [ "$1" = "db:migrate" ]; then
  exec {rewind} --root {root} drill-migrate
fi
exec {rewind} --root {root} drill-rake -- "$@"
"#,
        rewind = sh_quote(&rewind.display().to_string()),
        root = sh_quote(&root.base().display().to_string()),
    );
    let path = root.join(omnibus::GITLAB_RAKE);
    write_file(&path, &script)?;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).map_err(io_err(&path))?;
    Ok(path)
}

/// Write a stand-in `gitaly-backup` at `/opt/gitlab/embedded/bin/gitaly-backup` under
/// `root`: it execs `<rewind> --root <root> drill-gitaly-backup` with its arguments (the
/// stand-in honours gitaly-backup's restore arguments and stdin and writes bare
/// repositories with git into the sandbox's storage). Only the two paths are written into
/// the script, single-quoted. Returns the script's path.
pub fn write_gitaly_backup_standin(
    root: &HostRoot,
    rewind: &Path,
) -> Result<PathBuf, PackageError> {
    let script = format!(
        r#"#!/bin/sh
# Stand-in for gitaly-backup written by Rewind's drill: restores into the sandbox's
# storage with git.
exec {rewind} --root {root} drill-gitaly-backup "$@"
"#,
        rewind = sh_quote(&rewind.display().to_string()),
        root = sh_quote(&root.base().display().to_string()),
    );
    let path = root.join(crate::repositories::GITALY_BACKUP);
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).map_err(io_err(p))?;
    }
    write_file(&path, &script)?;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).map_err(io_err(&path))?;
    Ok(path)
}

/// Everything at once: build stand-in packages of `offered` in `repo_dir`, make `root` an
/// apt sandbox with that repository, install `installed` into it with dpkg, and write the
/// stand-in `gitlab-ctl`. Returns the repository.
pub fn setup_sandbox(
    root: &HostRoot,
    repo_dir: &Path,
    installed: &GitLabVersion,
    offered: &[GitLabVersion],
) -> Result<StandInRepo, PackageError> {
    let mut all: Vec<GitLabVersion> = offered.to_vec();
    if !all.iter().any(|v| v.same_release(installed)) {
        all.push(installed.clone());
    }
    let repo = build_repo(repo_dir, &all)?;
    prepare_apt_root(root, &repo)?;
    let deb = repo.deb(installed).ok_or_else(|| PackageError::Sandbox {
        path: repo.dir.clone(),
        source: std::io::Error::other(format!("no stand-in package of {installed}")),
    })?;
    dpkg_install(root, deb)?;
    write_gitlab_ctl_standin(root)?;
    Ok(repo)
}
