//! The drill's stand-in for `gitaly-backup restore`: the same arguments and stdin as
//! GitLab passes, the same JSON log lines, and real bare repositories written with `git`
//! into the sandbox's storage directories (from Gitaly's `config.toml` under the sandbox
//! root). Manifest layout only; `-server-side` is refused (no Gitaly to ask).

use std::io::{BufRead, Write};
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use super::{manifest, storage_paths, valid_storage};
use crate::root::HostRoot;

#[derive(Debug, Default)]
struct Args {
    path: Option<PathBuf>,
    layout: Option<String>,
    id: Option<String>,
    remove_all: Vec<String>,
    parallel: Option<u32>,
    parallel_storage: Option<u32>,
}

fn parse_args(args: &[String]) -> Result<Args, String> {
    let mut a = Args::default();
    let mut it = args.iter();
    match it.next().map(String::as_str) {
        Some("restore") => {}
        Some(other) => {
            return Err(format!(
                "the drill's stand-in supports `restore` only, not `{other}`"
            ))
        }
        None => {
            return Err("usage: gitaly-backup restore -path PATH -layout manifest [-id ID]".into())
        }
    }
    while let Some(flag) = it.next() {
        let mut val = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("flag needs an argument: {flag}"))
        };
        match flag.as_str() {
            "-path" => a.path = Some(PathBuf::from(val()?)),
            "-layout" => a.layout = Some(val()?),
            "-id" => a.id = Some(val()?),
            "-remove-all-repositories" => {
                a.remove_all = val()?.split(',').map(str::to_string).collect()
            }
            "-parallel" => {
                a.parallel = Some(val()?.parse().map_err(|_| "-parallel: not a number")?)
            }
            "-parallel-storage" => {
                a.parallel_storage = Some(
                    val()?
                        .parse()
                        .map_err(|_| "-parallel-storage: not a number")?,
                )
            }
            "-server-side" => {
                return Err(
                    "-server-side: the drill's stand-in has no Gitaly backup storage".into(),
                )
            }
            other => return Err(format!("flag provided but not defined: {other}")),
        }
    }
    if a.path.is_none() {
        return Err("restore: -path is required".into());
    }
    if a.layout.as_deref() != Some("manifest") {
        return Err(format!(
            "the drill's stand-in reads the manifest layout only (-layout {})",
            a.layout.as_deref().unwrap_or("<none>")
        ));
    }
    Ok(a)
}

fn log(out: &mut dyn Write, level: &str, msg: &str, job: &Job, error: Option<&str>) {
    let mut v = serde_json::json!({
        "command": "restore",
        "gl_project_path": job.gl_project_path,
        "level": level,
        "msg": msg,
        "relative_path": job.relative_path,
        "storage_name": job.storage_name,
        "time": chrono::Utc::now().to_rfc3339(),
    });
    if let Some(e) = error {
        v["error"] = serde_json::Value::String(e.to_string());
    }
    let _ = writeln!(out, "{v}");
}

#[derive(Debug, serde::Deserialize)]
struct Job {
    storage_name: String,
    relative_path: String,
    #[serde(default)]
    gl_project_path: String,
    #[serde(default)]
    always_create: bool,
}

fn safe_relative(p: &str) -> bool {
    !p.is_empty()
        && Path::new(p)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

fn git(args: &[&std::ffi::OsStr]) -> Result<(), String> {
    let out = Command::new("git")
        .args(args)
        .output()
        .map_err(|e| format!("running git: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

fn restore_one(path: &Path, storage: &Path, id: Option<&str>, job: &Job) -> Result<bool, String> {
    if !valid_storage(&job.storage_name) || !safe_relative(&job.relative_path) {
        return Err("invalid storage name or relative path".into());
    }
    let mdir = path
        .join("manifests")
        .join(&job.storage_name)
        .join(&job.relative_path);
    let mfile = mdir.join(format!("{}.toml", id.unwrap_or("+latest")));
    let repo = storage.join(&job.relative_path);
    let m = match std::fs::read_to_string(&mfile) {
        Ok(t) => Some(manifest::parse(&t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(format!("manager: read manifest: {e}")),
    };
    let Some(m) = m.filter(|m| !m.non_existent) else {
        if job.always_create {
            let _ = std::fs::remove_dir_all(&repo);
            std::fs::create_dir_all(&repo).map_err(|e| e.to_string())?;
            git(&[
                "init".as_ref(),
                "--quiet".as_ref(),
                "--bare".as_ref(),
                repo.as_os_str(),
            ])?;
            return Ok(true);
        }
        return Ok(false);
    };
    let _ = std::fs::remove_dir_all(&repo);
    std::fs::create_dir_all(&repo).map_err(|e| e.to_string())?;
    let fmt = format!(
        "--object-format={}",
        if m.object_format.is_empty() {
            "sha1"
        } else {
            &m.object_format
        }
    );
    git(&[
        "init".as_ref(),
        "--quiet".as_ref(),
        "--bare".as_ref(),
        fmt.as_ref(),
        repo.as_os_str(),
    ])?;
    for st in &m.steps {
        if !safe_relative(&st.bundle_path) {
            return Err(format!("unsafe bundle path {}", st.bundle_path));
        }
        let bundle = path.join(&st.bundle_path);
        git(&[
            "-C".as_ref(),
            repo.as_os_str(),
            "fetch".as_ref(),
            "--quiet".as_ref(),
            bundle.as_os_str(),
            "+refs/*:refs/*".as_ref(),
        ])
        .map_err(|e| format!("manager: restore bundle: {e}"))?;
    }
    if !m.head_reference.is_empty() {
        git(&[
            "-C".as_ref(),
            repo.as_os_str(),
            "symbolic-ref".as_ref(),
            "HEAD".as_ref(),
            m.head_reference.as_ref(),
        ])?;
    }
    Ok(true)
}

/// Run the stand-in: `args` after the program name, jobs on `input`, log lines to `out`.
/// Returns the exit code (0, or 1 with gitaly-backup's `pipeline: N failures
/// encountered` summary).
pub fn run(root: &HostRoot, args: &[String], input: &mut dyn BufRead, out: &mut dyn Write) -> i32 {
    let a = match parse_args(args) {
        Ok(a) => a,
        Err(e) => {
            let _ = writeln!(out, "{e}");
            return 2;
        }
    };
    if std::env::var_os("GITALY_SERVERS").is_none_or(|v| v.is_empty()) {
        let _ = writeln!(out, "restore: GITALY_SERVERS is not set");
        return 1;
    }
    let storages = storage_paths(root);
    for s in &a.remove_all {
        let Some(dir) = storages.get(s) else {
            let _ = writeln!(
                out,
                "restore: remove all repositories: unknown storage `{s}`"
            );
            return 1;
        };
        let dir = root.join(dir);
        if let Ok(rd) = std::fs::read_dir(&dir) {
            for e in rd.flatten() {
                let p = e.path();
                let r = if e.file_type().is_ok_and(|t| t.is_dir()) {
                    std::fs::remove_dir_all(&p)
                } else {
                    std::fs::remove_file(&p)
                };
                if let Err(err) = r {
                    let _ = writeln!(
                        out,
                        "restore: remove all repositories: {}: {err}",
                        p.display()
                    );
                    return 1;
                }
            }
        }
    }
    let _ = (a.parallel, a.parallel_storage);
    let path = a.path.clone().unwrap_or_default();
    let mut failures = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        match input.read_line(&mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                let _ = writeln!(out, "restore: reading stdin: {e}");
                return 1;
            }
        }
        if line.trim().is_empty() {
            continue;
        }
        let job: Job = match serde_json::from_str(line.trim()) {
            Ok(j) => j,
            Err(e) => {
                let _ = writeln!(out, "restore: read job: {e}");
                return 1;
            }
        };
        log(out, "info", "started restore", &job, None);
        let Some(storage) = storages.get(&job.storage_name) else {
            let e = format!("storage `{}` not configured", job.storage_name);
            log(out, "error", "restore failed", &job, Some(&e));
            failures.push(format!("{}: {e}", job.relative_path));
            continue;
        };
        match restore_one(&path, &root.join(storage), a.id.as_deref(), &job) {
            Ok(true) => log(out, "info", "completed restore", &job, None),
            Ok(false) => log(
                out,
                "warning",
                "skipped restore",
                &job,
                Some("manager: repository skipped: read manifest: doesn't exist"),
            ),
            Err(e) => {
                log(out, "error", "restore failed", &job, Some(&e));
                failures.push(format!("{}: {e}", job.relative_path));
            }
        }
    }
    if failures.is_empty() {
        0
    } else {
        let _ = writeln!(
            out,
            "restore: pipeline: {} failures encountered:",
            failures.len()
        );
        for f in &failures {
            let _ = writeln!(out, " - {f}");
        }
        1
    }
}
