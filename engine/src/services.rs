//! GitLab's services under `gitlab-ctl` (Omnibus): status, stop and start single services,
//! who else is connected to the database, and the steps after a restore (reconfigure,
//! start, checks).
//!
//! GitLab's restore needs everything running except Puma and Sidekiq: PostgreSQL, Redis and
//! Gitaly must stay up. [`RESTORE_STOPPED`] are the services Rewind stops.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::detect::omnibus;
use crate::exec::{self, Cmd, ExecError, Finished, Runner};
use crate::root::HostRoot;

/// The services GitLab's restore documentation stops (in this order).
pub const RESTORE_STOPPED: [&str; 2] = ["puma", "sidekiq"];

/// Where `gitlab-ctl backup-etc` writes its archives.
pub const CONFIG_BACKUP_DIR: &str = "/etc/gitlab/config_backup";

/// The warning GitLab prints after every backup and restore, in Rewind's words.
pub const SECRETS_WARNING: &str = "gitlab.rb and gitlab-secrets.json are not in the backup. If this host lost them, restore them from your own copy (or an /etc/gitlab/config_backup archive) and run `gitlab-ctl reconfigure` before starting GitLab: without the same gitlab-secrets.json, CI variables, 2FA and other encrypted columns cannot be decrypted.";

/// State of a runit service as `gitlab-ctl status` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// `run:`
    Run,
    /// `down:`
    Down,
    /// `finish:` (the finish script is running)
    Finish,
    /// `fail:` (runsv not running, ...)
    Fail,
    /// Anything else GitLab prints (`warning:`, `timeout:`).
    Other(String),
}

/// One line of `gitlab-ctl status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceStatus {
    pub service: String,
    pub state: State,
    pub pid: Option<u32>,
    /// Seconds in the current state.
    pub uptime_secs: Option<u64>,
    /// `normally up` / `normally down`, when printed.
    pub normally: Option<String>,
    /// `want up` / `want down`, when printed.
    pub want: Option<String>,
    /// Whether the service's log process runs.
    pub log_running: Option<bool>,
    /// The line as printed.
    pub raw: String,
}

impl ServiceStatus {
    /// Whether the service is running.
    pub fn is_running(&self) -> bool {
        self.state == State::Run
    }
}

/// Errors of service operations.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("`{name}` is not a service name (lowercase letters, digits, `-` and `_` only)")]
    BadName { name: String },
    #[error("{path} not found: this does not look like an Omnibus GitLab host under {root}. On a source install, stop and start GitLab with `sudo service gitlab stop|start` (or systemctl)")]
    NoGitlabCtl { path: PathBuf, root: PathBuf },
    #[error(
        "`gitlab-ctl status` printed nothing Rewind could read (exit code {code:?}): {output}"
    )]
    Unparsed { code: Option<i32>, output: String },
    #[error(transparent)]
    Exec(#[from] ExecError),
    #[error("querying pg_stat_activity: {0}. Rewind connects as the GitLab database user; the check needs permission to read pg_stat_activity")]
    Db(#[from] postgres::Error),
}

fn parse_state(word: &str) -> State {
    match word {
        "run" => State::Run,
        "down" => State::Down,
        "finish" => State::Finish,
        "fail" => State::Fail,
        other => State::Other(other.to_string()),
    }
}

/// Parse `(pid 1234) 5678s, normally down, want up` into its parts.
fn parse_detail(s: &str) -> (Option<u32>, Option<u64>, Option<String>, Option<String>) {
    let mut pid = None;
    let mut rest = s.trim();
    if let Some(r) = rest.strip_prefix("(pid ") {
        if let Some(end) = r.find(')') {
            pid = r[..end].trim().parse().ok();
            rest = r[end + 1..].trim();
        }
    }
    let mut uptime = None;
    let mut normally = None;
    let mut want = None;
    for (i, part) in rest.split(',').map(str::trim).enumerate() {
        if i == 0 {
            if let Some(n) = part.strip_suffix('s') {
                uptime = n.parse().ok();
            }
        } else if part.starts_with("normally ") {
            normally = Some(part.to_string());
        } else if part.starts_with("want ") {
            want = Some(part.to_string());
        }
    }
    (pid, uptime, normally, want)
}

/// Parse the output of `gitlab-ctl status`, e.g.
/// `run: puma: (pid 1234) 5678s; run: log: (pid 99) 9999s` and
/// `down: sidekiq: 3s, normally up; run: log: (pid 99) 9999s`. Lines that are not service
/// lines are skipped.
pub fn parse_status(text: &str) -> Vec<ServiceStatus> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        let mut parts = line.splitn(2, "; ");
        let main = parts.next().unwrap_or("");
        let log = parts.next();
        // Lines like `ok: down: sidekiq: 0s, normally up` (after stop) carry a prefix.
        let main = main.strip_prefix("ok: ").unwrap_or(main);
        let mut fields = main.splitn(3, ':');
        let (Some(state), Some(name), detail) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let state = state.trim();
        let name = name.trim();
        if state.is_empty()
            || !state.bytes().all(|b| b.is_ascii_lowercase())
            || !valid_service_name(name)
        {
            continue;
        }
        let (pid, uptime_secs, normally, want) = parse_detail(detail.unwrap_or(""));
        let log_running = log.map(|l| l.trim_start().starts_with("run: log:"));
        out.push(ServiceStatus {
            service: name.to_string(),
            state: parse_state(state),
            pid,
            uptime_secs,
            normally,
            want,
            log_running,
            raw: line.to_string(),
        });
    }
    out
}

fn valid_service_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// `gitlab-ctl` of the host under a root.
#[derive(Debug, Clone)]
pub struct GitlabCtl {
    path: PathBuf,
    root: HostRoot,
}

impl GitlabCtl {
    /// `gitlab-ctl` at `/opt/gitlab/bin/gitlab-ctl` under `root` (whether or not it exists).
    pub fn new(root: &HostRoot) -> Self {
        GitlabCtl {
            path: root.join(omnibus::GITLAB_CTL),
            root: root.clone(),
        }
    }

    /// Path of the program.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether it exists.
    pub fn exists(&self) -> bool {
        self.path.is_file()
    }

    fn require(&self) -> Result<(), ServiceError> {
        if self.exists() {
            Ok(())
        } else {
            Err(ServiceError::NoGitlabCtl {
                path: self.path.clone(),
                root: self.root.base().to_path_buf(),
            })
        }
    }

    /// `gitlab-ctl <args>`.
    pub fn cmd<I: IntoIterator<Item = S>, S: AsRef<std::ffi::OsStr>>(&self, args: I) -> Cmd {
        Cmd::new(&self.path).args(args)
    }

    /// `gitlab-ctl stop <service>` (`None`: all services).
    pub fn stop_cmd(&self, service: Option<&str>) -> Result<Cmd, ServiceError> {
        self.service_cmd("stop", service)
    }

    /// `gitlab-ctl start <service>` (`None`: all services).
    pub fn start_cmd(&self, service: Option<&str>) -> Result<Cmd, ServiceError> {
        self.service_cmd("start", service)
    }

    fn service_cmd(&self, verb: &str, service: Option<&str>) -> Result<Cmd, ServiceError> {
        let mut c = self.cmd([verb]);
        if let Some(s) = service {
            if !valid_service_name(s) {
                return Err(ServiceError::BadName { name: s.into() });
            }
            c = c.arg(s);
        }
        Ok(c)
    }

    /// `gitlab-ctl reconfigure`.
    pub fn reconfigure_cmd(&self) -> Cmd {
        self.cmd(["reconfigure"])
    }

    /// Run `gitlab-ctl status` quietly and parse it. runit's status exits non-zero when a
    /// service is down; that is not an error as long as the output parses.
    pub fn status(&self) -> Result<Vec<ServiceStatus>, ServiceError> {
        self.require()?;
        let c = exec::capture(&self.cmd(["status"]))?;
        let parsed = parse_status(&c.stdout);
        if parsed.is_empty() {
            return Err(ServiceError::Unparsed {
                code: c.code,
                output: format!("{}{}", c.stdout, c.stderr).trim().to_string(),
            });
        }
        Ok(parsed)
    }

    /// `gitlab-ctl status <service>`, quietly: the service's line, `None` when gitlab-ctl
    /// does not list it. runit exits non-zero for a service that is down; the output is
    /// what counts.
    pub fn service_status(&self, service: &str) -> Result<Option<ServiceStatus>, ServiceError> {
        self.require()?;
        if !valid_service_name(service) {
            return Err(ServiceError::BadName {
                name: service.into(),
            });
        }
        let c = exec::capture(&self.cmd(["status", service]))?;
        let parsed = parse_status(&c.stdout);
        if parsed.is_empty() && !c.stdout.trim().is_empty() {
            return Err(ServiceError::Unparsed {
                code: c.code,
                output: format!("{}{}", c.stdout, c.stderr).trim().to_string(),
            });
        }
        Ok(parsed.into_iter().find(|s| s.service == service))
    }

    /// Stop one service (or all), shown, streamed and journaled.
    pub fn stop(&self, runner: &Runner, service: Option<&str>) -> Result<Finished, ServiceError> {
        self.require()?;
        Ok(runner.run("services.stop", &self.stop_cmd(service)?)?)
    }

    /// Start one service (or all), shown, streamed and journaled.
    pub fn start(&self, runner: &Runner, service: Option<&str>) -> Result<Finished, ServiceError> {
        self.require()?;
        Ok(runner.run("services.start", &self.start_cmd(service)?)?)
    }

    /// Run `gitlab-ctl reconfigure`.
    pub fn reconfigure(&self, runner: &Runner) -> Result<Finished, ServiceError> {
        self.require()?;
        Ok(runner.run("services.reconfigure", &self.reconfigure_cmd())?)
    }
}

/// `gitlab-rake <args>` of the host under a root.
pub fn gitlab_rake_cmd(root: &HostRoot, args: &[&str]) -> Cmd {
    Cmd::new(root.join(omnibus::GITLAB_RAKE)).args(args)
}

/// A command Rewind offers after the restore, with what it is for.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// Journal step name (`post.reconfigure`, ...).
    pub step: String,
    pub what: String,
    pub cmd: Cmd,
    /// Whether it changes the host (reconfigure, start) or only checks.
    pub changes_host: bool,
}

/// The steps after a restore, in GitLab's documented order: `gitlab-ctl reconfigure`,
/// `gitlab-ctl start`, then the checks `gitlab-rake gitlab:check SANITIZE=true` and
/// `gitlab-rake gitlab:doctor:secrets` (their output is captured).
pub fn post_restore_steps(root: &HostRoot) -> Vec<Step> {
    let ctl = GitlabCtl::new(root);
    vec![
        Step {
            step: "post.reconfigure".into(),
            what: "reconfigure GitLab (renders configuration, runs pending migrations)".into(),
            cmd: ctl.reconfigure_cmd(),
            changes_host: true,
        },
        Step {
            step: "post.start".into(),
            what: "start every GitLab service".into(),
            cmd: ctl.cmd(["start"]),
            changes_host: true,
        },
        Step {
            step: "post.check".into(),
            what: "GitLab's self check".into(),
            cmd: gitlab_rake_cmd(root, &["gitlab:check", "SANITIZE=true"]),
            changes_host: false,
        },
        Step {
            step: "post.doctor_secrets".into(),
            what: "check that encrypted columns decrypt with this host's gitlab-secrets.json"
                .into(),
            cmd: gitlab_rake_cmd(root, &["gitlab:doctor:secrets"]),
            changes_host: false,
        },
    ]
}

/// An archive made by `gitlab-ctl backup-etc`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigBackup {
    /// Host path.
    pub path: PathBuf,
    pub size: u64,
    /// Modification time, RFC 3339.
    pub modified: Option<String>,
}

/// The archives in `/etc/gitlab/config_backup/` (newest first); empty when there is none.
pub fn config_backups(root: &HostRoot) -> Vec<ConfigBackup> {
    let dir = root.join(CONFIG_BACKUP_DIR);
    let mut out: Vec<(std::time::SystemTime, ConfigBackup)> = Vec::new();
    if let Ok(rd) = fs::read_dir(&dir) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.ends_with(".tar") {
                continue;
            }
            let Ok(md) = e.metadata() else { continue };
            if !md.is_file() {
                continue;
            }
            let mtime = md.modified().unwrap_or(std::time::UNIX_EPOCH);
            out.push((
                mtime,
                ConfigBackup {
                    path: Path::new(CONFIG_BACKUP_DIR).join(&name),
                    size: md.len(),
                    modified: Some(
                        chrono::DateTime::<chrono::Utc>::from(mtime)
                            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    ),
                },
            ));
        }
    }
    out.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| b.1.path.cmp(&a.1.path)));
    out.into_iter().map(|(_, c)| c).collect()
}

/// A client connected to a GitLab database, other than Rewind's own connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DbClient {
    pub pid: i32,
    pub database: String,
    pub user: Option<String>,
    pub application: Option<String>,
    pub client_addr: Option<String>,
    pub state: Option<String>,
    pub backend_start: Option<String>,
}

impl std::fmt::Display for DbClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pid {} on {} as {} ({}) from {}, {}",
            self.pid,
            self.database,
            self.user.as_deref().unwrap_or("?"),
            self.application
                .as_deref()
                .filter(|a| !a.is_empty())
                .unwrap_or("no application name"),
            self.client_addr.as_deref().unwrap_or("local socket"),
            self.state.as_deref().unwrap_or("unknown state")
        )
    }
}

/// The other client sessions connected to `databases` (from `pg_stat_activity`, excluding
/// this connection and background workers). Before a restore this should be empty: Puma and
/// Sidekiq stopped, nothing else writing.
pub fn other_db_clients(
    client: &mut postgres::Client,
    databases: &[String],
) -> Result<Vec<DbClient>, ServiceError> {
    let rows = client.query(
        "SELECT pid, datname::text, usename::text, application_name, client_addr::text, \
                state, backend_start::text \
           FROM pg_stat_activity \
          WHERE datname = ANY($1) \
            AND pid <> pg_backend_pid() \
            AND backend_type = 'client backend' \
          ORDER BY datname, pid",
        &[&databases],
    )?;
    Ok(rows
        .iter()
        .map(|r| DbClient {
            pid: r.get(0),
            database: r.get::<_, Option<String>>(1).unwrap_or_default(),
            user: r.get(2),
            application: r.get(3),
            client_addr: r.get(4),
            state: r.get(5),
            backend_start: r.get(6),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "run: alertmanager: (pid 1134) 8125s; run: log: (pid 1133) 8125s
run: gitaly: (pid 1118) 8125s; run: log: (pid 1117) 8125s
run: gitlab-workhorse: (pid 1126) 8125s; run: log: (pid 1125) 8125s
run: logrotate: (pid 22781) 2525s; run: log: (pid 1109) 8125s
run: postgresql: (pid 1112) 8125s; run: log: (pid 1111) 8125s
down: puma: 3s, normally up; run: log: (pid 1113) 8125s
run: redis: (pid 1110) 8125s; run: log: (pid 1108) 8125s
down: sidekiq: 12s, normally up, want up; run: log: (pid 1121) 8125s
run: sshd: (pid 40) 8125s, normally down; run: log: (pid 39) 8125s
fail: mattermost: runsv not running
warning: registry: unable to open supervise/ok: file does not exist
";

    #[test]
    fn parses_gitlab_ctl_status() {
        let s = parse_status(STATUS);
        assert_eq!(s.len(), 11);
        assert_eq!(s[0].service, "alertmanager");
        assert_eq!(s[0].state, State::Run);
        assert_eq!(s[0].pid, Some(1134));
        assert_eq!(s[0].uptime_secs, Some(8125));
        assert_eq!(s[0].log_running, Some(true));
        let puma = s.iter().find(|x| x.service == "puma").unwrap();
        assert_eq!(puma.state, State::Down);
        assert_eq!(puma.pid, None);
        assert_eq!(puma.uptime_secs, Some(3));
        assert_eq!(puma.normally.as_deref(), Some("normally up"));
        let sk = s.iter().find(|x| x.service == "sidekiq").unwrap();
        assert_eq!(sk.want.as_deref(), Some("want up"));
        let sshd = s.iter().find(|x| x.service == "sshd").unwrap();
        assert!(sshd.is_running());
        assert_eq!(sshd.normally.as_deref(), Some("normally down"));
        assert_eq!(s[9].state, State::Fail);
        assert_eq!(s[9].log_running, None);
        assert_eq!(s[10].state, State::Other("warning".into()));
        // After `gitlab-ctl stop puma`:
        let s = parse_status("ok: down: puma: 0s, normally up\n");
        assert_eq!(s[0].service, "puma");
        assert_eq!(s[0].state, State::Down);
        // Noise is skipped.
        assert!(parse_status("\nfoo\nThe command failed: Bar\n").is_empty());
    }

    #[test]
    fn service_names_are_validated() {
        let ctl = GitlabCtl::new(&HostRoot::new("/tmp/sandbox"));
        assert_eq!(
            ctl.stop_cmd(Some("puma")).unwrap().display(),
            "/tmp/sandbox/opt/gitlab/bin/gitlab-ctl stop puma"
        );
        assert!(ctl.stop_cmd(Some("puma; reboot")).is_err());
        assert!(ctl.start_cmd(Some("../x")).is_err());
        assert_eq!(
            ctl.start_cmd(None).unwrap().argv(),
            vec!["/tmp/sandbox/opt/gitlab/bin/gitlab-ctl", "start"]
        );
        let err = ctl.status().unwrap_err();
        assert!(err.to_string().contains("gitlab-ctl"), "{err}");
    }

    #[test]
    fn post_restore_steps_follow_gitlab_order() {
        let root = HostRoot::system();
        let s: Vec<String> = post_restore_steps(&root)
            .iter()
            .map(|s| s.cmd.display())
            .collect();
        assert_eq!(
            s,
            vec![
                "/opt/gitlab/bin/gitlab-ctl reconfigure",
                "/opt/gitlab/bin/gitlab-ctl start",
                "/opt/gitlab/bin/gitlab-rake gitlab:check SANITIZE=true",
                "/opt/gitlab/bin/gitlab-rake gitlab:doctor:secrets",
            ]
        );
    }

    #[test]
    fn lists_config_backups_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let root = HostRoot::new(dir.path());
        assert!(config_backups(&root).is_empty());
        let d = root.join(CONFIG_BACKUP_DIR);
        fs::create_dir_all(&d).unwrap();
        let old = d.join("gitlab_config_1712000000_2024_04_01.tar");
        let new = d.join("gitlab_config_1713000000_2024_04_13.tar");
        fs::write(&old, b"x").unwrap();
        fs::write(&new, b"xyz").unwrap();
        fs::write(d.join("notes.txt"), b"").unwrap();
        let t = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        fs::File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(t)
            .unwrap();
        let b = config_backups(&root);
        assert_eq!(b.len(), 2);
        assert_eq!(
            b[0].path,
            PathBuf::from("/etc/gitlab/config_backup/gitlab_config_1713000000_2024_04_13.tar")
        );
        assert_eq!(b[0].size, 3);
    }

    #[test]
    fn lists_other_clients_but_not_itself() {
        let cluster = crate::pg::cluster::TempCluster::start().unwrap();
        cluster.create_database("gitlabhq_production").unwrap();
        let mut me = cluster.connect("gitlabhq_production").unwrap();
        let dbs = vec!["gitlabhq_production".to_string()];
        assert!(other_db_clients(&mut me, &dbs).unwrap().is_empty());
        let mut other = cluster.connect("gitlabhq_production").unwrap();
        other
            .batch_execute("SET application_name = 'puma: cluster worker 0'")
            .unwrap();
        let found = other_db_clients(&mut me, &dbs).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].application.as_deref(),
            Some("puma: cluster worker 0")
        );
        assert!(found[0].to_string().contains("gitlabhq_production"));
        drop(other);
    }
}
