//! The checks after a restore, as GitLab's "Restore GitLab" page lists them: `gitlab-rake
//! gitlab:check SANITIZE=true` and `gitlab-rake gitlab:doctor:secrets`, the integrity checks
//! it offers (`gitlab:artifacts:check`, `gitlab:lfs:check`, `gitlab:uploads:check`),
//! `gitlab:shell:setup` when SSH keys live in `authorized_keys`, and waiting until GitLab
//! answers its readiness endpoint.
//!
//! `gitlab:doctor:secrets` prints, through Ruby's Logger
//! (`lib/gitlab/doctor/secrets.rb`):
//!
//! ```text
//! I, [2020-06-11T17:17:54.951815 #27148]  INFO -- : Checking encrypted values in the database
//! I, [2020-06-11T17:18:12.677708 #27148]  INFO -- : - ApplicationSetting failures: 0
//! I, [2020-06-11T17:18:14.938335 #27148]  INFO -- : - Group failures: 1
//! D, [2020-06-11T17:19:53.225267 #27351] DEBUG -- :   - Group[10]: runners_token
//! I, [2020-06-11T17:18:15.575678 #27148]  INFO -- : Total: 1 row(s) affected
//! I, [2020-06-11T17:18:15.575711 #27148]  INFO -- : Done!
//! ```
//!
//! (the `DEBUG` rows with `VERBOSE=1`). [`parse_doctor_secrets`] reads it into a table, and
//! [`fix_for`] gives, per model, what breaks and the fix GitLab documents in "When the
//! secrets file is lost" (troubleshooting_backup_gitlab.md).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::exec::Cmd;
use crate::progress::{Cancel, Sink, SinkExt};
use crate::root::HostRoot;
use crate::services::gitlab_rake_cmd;

/// One model's line of `gitlab:doctor:secrets`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelFailures {
    pub model: String,
    /// Rows that could not be decrypted.
    pub failures: u64,
    /// `Model[id]: attr, attr` rows printed with `VERBOSE=1`: (id, attributes).
    pub rows: Vec<(String, Vec<String>)>,
}

/// `gitlab:doctor:secrets` read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DoctorSecrets {
    /// Every model checked, in GitLab's order.
    pub models: Vec<ModelFailures>,
    /// `Total: N row(s) affected`.
    pub total: Option<u64>,
    /// `Done!` was printed (the task ran to its end).
    pub done: bool,
}

impl DoctorSecrets {
    /// Models with failures.
    pub fn failing(&self) -> impl Iterator<Item = &ModelFailures> {
        self.models.iter().filter(|m| m.failures > 0)
    }

    /// Ran to the end and nothing failed.
    pub fn ok(&self) -> bool {
        self.done && self.failing().next().is_none() && self.total.unwrap_or(0) == 0
    }
}

/// Remove ANSI colour sequences (Rainbow colours the lines on a terminal).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// The message of a Logger line (`I, [...]  INFO -- : <message>`), or the line itself.
fn message(line: &str) -> &str {
    match line.find(" -- : ") {
        Some(i) => &line[i + 6..],
        None => line,
    }
}

/// Parse the output of `gitlab-rake gitlab:doctor:secrets` (with or without `VERBOSE=1`).
pub fn parse_doctor_secrets(text: &str) -> DoctorSecrets {
    let mut d = DoctorSecrets::default();
    for raw in text.lines() {
        let line = strip_ansi(raw);
        let msg = message(&line);
        let t = msg.trim();
        if let Some(rest) = t.strip_prefix("- ") {
            // `- Model failures: N` or (verbose) `- Model[id]: attr, attr`.
            if let Some((model, n)) = rest.rsplit_once(" failures: ") {
                if let Ok(n) = n.trim().parse::<u64>() {
                    d.models.push(ModelFailures {
                        model: model.trim().to_string(),
                        failures: n,
                        rows: Vec::new(),
                    });
                    continue;
                }
            }
            if let Some((head, attrs)) = rest.split_once("]: ") {
                if let Some((model, id)) = head.split_once('[') {
                    let attrs = attrs.split(',').map(|a| a.trim().to_string()).collect();
                    let id = id.to_string();
                    // The rows follow their model's line.
                    match d.models.last_mut() {
                        Some(m) if m.model == model => m.rows.push((id, attrs)),
                        _ => d.models.push(ModelFailures {
                            model: model.to_string(),
                            failures: 0,
                            rows: vec![(id, attrs)],
                        }),
                    }
                }
            }
        } else if let Some(rest) = t.strip_prefix("Total: ") {
            d.total = rest.split_whitespace().next().and_then(|n| n.parse().ok());
        } else if t == "Done!" {
            d.done = true;
        }
    }
    d
}

/// What breaks when a model's rows cannot be decrypted, and GitLab's documented fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fix {
    pub breaks: &'static str,
    /// The section of "When the secrets file is lost" (troubleshooting_backup_gitlab.md).
    pub section: &'static str,
    /// What to run (in `sudo gitlab-rails dbconsole --database main` for SQL).
    pub fix: &'static str,
}

/// First fix for every model: the secrets that match the backup.
pub const RESTORE_SECRETS_FIRST: &str = "First restore the gitlab-secrets.json that matches the backup (`rewind config --restore`), run `gitlab-ctl reconfigure` and `gitlab-ctl restart`, and run the check again. Only when that file is lost, use GitLab's fixes below: they delete or reset the values that cannot be decrypted (take a database backup first).";

/// GitLab's documented fix for a model of `gitlab:doctor:secrets`.
pub fn fix_for(model: &str) -> Fix {
    let m = model;
    if m.starts_with("Ci::") && m.ends_with("Variable") {
        return Fix {
            breaks: "CI/CD variables: jobs fail or stay stuck, CI settings pages return 500",
            section: "Reset CI/CD variables",
            fix: "DELETE FROM ci_group_variables; DELETE FROM ci_variables; (or with WHERE group_id = / project_id = for one group or project)",
        };
    }
    match m {
        "User" => Fix {
            breaks: "two-factor authentication: users with 2FA cannot sign in",
            section: "Disable user two-factor authentication (2FA)",
            fix: "sudo gitlab-rake gitlab:two_factor:disable_for_all_users (users then enable 2FA again)",
        },
        "Project" | "Group" | "Namespace" | "ApplicationSetting" | "Ci::Runner" => Fix {
            breaks: "runner registration and authentication, CI JWT: runners cannot pick up jobs",
            section: "Reset runner registration tokens",
            fix: "UPDATE projects SET runners_token = null, runners_token_encrypted = null; UPDATE namespaces SET runners_token = null, runners_token_encrypted = null; UPDATE application_settings SET runners_registration_token_encrypted = null; UPDATE application_settings SET encrypted_ci_jwt_signing_key = null; UPDATE ci_runners SET token = null, token_encrypted = null; (then register the runners again; since 16.6 also gitlab-rake gitlab:doctor:reset_encrypted_tokens MODEL_NAMES=... TOKEN_NAMES=...)",
        },
        "Ci::Build" => Fix {
            breaks: "pending pipeline jobs",
            section: "Reset pending pipeline jobs",
            fix: "UPDATE ci_builds SET token_encrypted = null; (15.3 and earlier: SET token = null, token_encrypted = null)",
        },
        "DeployToken" => Fix {
            breaks: "deploy tokens",
            section: "When the secrets file is lost (deploy tokens)",
            fix: "revoke the deploy tokens and create new ones",
        },
        _ if m.starts_with("Integration")
            || m.ends_with("Hook")
            || m.ends_with("TrackerData")
            || m == "SlackIntegration"
            || m == "ChatName"
            || m == "WebHookLog" =>
        {
            Fix {
                breaks: "integrations and webhooks: their settings pages and pushes to affected projects return 500",
                section: "Fix integrations and webhooks",
                fix: "TRUNCATE integrations, chat_names, issue_tracker_data, jira_tracker_data, slack_integrations, web_hooks, zentao_tracker_data, web_hook_logs CASCADE; (deletes every integration and webhook)",
            }
        }
        _ => Fix {
            breaks: "the encrypted columns of this model",
            section: "When the secrets file is lost",
            fix: "clear the values that cannot be decrypted (GitLab: \"a similar strategy can be employed for the remaining features\"); gitlab-rake gitlab:doctor:secrets VERBOSE=1 names the rows",
        },
    }
}

/// A check offered after the restore.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Journal step name.
    pub step: &'static str,
    pub what: &'static str,
    pub cmd: Cmd,
    /// Run by default (`false`: offered, run when asked).
    pub default: bool,
    /// Changes the host (only `gitlab:shell:setup`, which rewrites authorized_keys).
    pub changes_host: bool,
}

/// Where GitLab Shell's `authorized_keys` is on Omnibus (the `git` user's home).
pub const AUTHORIZED_KEYS: &str = "/var/opt/gitlab/.ssh/authorized_keys";

/// Whether SSH keys are served from `authorized_keys` (the file exists, or gitlab.rb names
/// another `auth_file`), so a restored database needs `gitlab:shell:setup` to rebuild it.
pub fn authorized_keys_in_use(root: &HostRoot) -> Option<PathBuf> {
    let rb =
        std::fs::read_to_string(root.join(crate::detect::omnibus::GITLAB_RB)).unwrap_or_default();
    for line in rb.lines() {
        let l = line.trim();
        if l.starts_with('#') {
            continue;
        }
        if let Some(rest) = l.strip_prefix("gitlab_shell['auth_file']") {
            let v = rest.trim_start().trim_start_matches('=').trim();
            let v = v.trim_matches(|c| c == '\'' || c == '"');
            if v.starts_with('/') {
                return Some(PathBuf::from(v));
            }
        }
    }
    let p = root.join(AUTHORIZED_KEYS);
    std::fs::symlink_metadata(&p)
        .ok()
        .filter(|m| m.is_file())
        .map(|_| PathBuf::from(AUTHORIZED_KEYS))
}

/// The checks, in GitLab's order.
pub fn checks(root: &HostRoot) -> Vec<Check> {
    let mut v = vec![
        Check {
            step: "post.check",
            what: "GitLab's self check",
            cmd: gitlab_rake_cmd(root, &["gitlab:check", "SANITIZE=true"]),
            default: true,
            changes_host: false,
        },
        Check {
            step: "post.doctor_secrets",
            what: "encrypted columns decrypt with this host's gitlab-secrets.json",
            cmd: gitlab_rake_cmd(root, &["gitlab:doctor:secrets", "VERBOSE=1"]),
            default: true,
            changes_host: false,
        },
        Check {
            step: "post.artifacts_check",
            what: "integrity of job artifacts (checksums of the restored files)",
            cmd: gitlab_rake_cmd(root, &["gitlab:artifacts:check"]),
            default: false,
            changes_host: false,
        },
        Check {
            step: "post.lfs_check",
            what: "integrity of LFS objects",
            cmd: gitlab_rake_cmd(root, &["gitlab:lfs:check"]),
            default: false,
            changes_host: false,
        },
        Check {
            step: "post.uploads_check",
            what: "integrity of uploads",
            cmd: gitlab_rake_cmd(root, &["gitlab:uploads:check"]),
            default: false,
            changes_host: false,
        },
    ];
    if authorized_keys_in_use(root).is_some() {
        v.push(Check {
            step: "post.shell_setup",
            what: "rebuild authorized_keys from the restored database's SSH keys",
            // force=yes: GitLab's own prompt is answered by Rewind's confirmation.
            cmd: gitlab_rake_cmd(root, &["gitlab:shell:setup", "force=yes"]),
            default: false,
            changes_host: true,
        });
    }
    v
}

/// Where Rewind asks for `/-/readiness`, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "at")]
pub enum Endpoint {
    /// A Unix socket (Workhorse's), host path.
    Unix(PathBuf),
    /// `host:port` over TCP.
    Tcp(String),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "http://localhost/-/readiness on {}", p.display()),
            Endpoint::Tcp(a) => write!(f, "http://{a}/-/readiness"),
        }
    }
}

/// Workhorse's socket on Omnibus (13.x and later; older: `.../gitlab-workhorse/socket`).
pub const WORKHORSE_SOCKET: &str = "/var/opt/gitlab/gitlab-workhorse/sockets/socket";
const WORKHORSE_SOCKET_OLD: &str = "/var/opt/gitlab/gitlab-workhorse/socket";

/// The endpoints to try: Workhorse's socket (when present), then `localhost:80`.
pub fn endpoints(root: &HostRoot) -> Vec<Endpoint> {
    let mut v = Vec::new();
    for s in [WORKHORSE_SOCKET, WORKHORSE_SOCKET_OLD] {
        if std::fs::symlink_metadata(root.join(s)).is_ok() {
            v.push(Endpoint::Unix(PathBuf::from(s)));
        }
    }
    if root.is_system() || v.is_empty() {
        v.push(Endpoint::Tcp("localhost:80".into()));
    }
    v
}

/// One answer of the endpoint: the status code and the start of the body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

fn ask<S: Read + Write>(mut s: S) -> std::io::Result<Answer> {
    s.write_all(b"GET /-/readiness HTTP/1.0\r\nHost: localhost\r\nUser-Agent: rewind\r\nConnection: close\r\n\r\n")?;
    let mut buf = Vec::new();
    s.take(64 * 1024).read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf);
    let status = text
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("not an HTTP answer"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.trim().chars().take(300).collect())
        .unwrap_or_default();
    Ok(Answer { status, body })
}

/// Ask `/-/readiness` once.
pub fn readiness(root: &HostRoot, ep: &Endpoint) -> std::io::Result<Answer> {
    let t = Some(Duration::from_secs(10));
    match ep {
        Endpoint::Unix(p) => {
            let s = UnixStream::connect(root.join(p))?;
            s.set_read_timeout(t)?;
            s.set_write_timeout(t)?;
            ask(s)
        }
        Endpoint::Tcp(a) => {
            let s = TcpStream::connect(a.as_str())?;
            s.set_read_timeout(t)?;
            s.set_write_timeout(t)?;
            ask(s)
        }
    }
}

/// GitLab did not answer ready in time.
#[derive(Debug, thiserror::Error)]
pub enum ReadyError {
    #[error("GitLab did not answer ready within {secs} s (asked {tried}); last answer: {last}. Puma may still be booting or failing: look at `gitlab-ctl status` and `gitlab-ctl tail puma`, then wait longer with --ready-timeout SECONDS")]
    Timeout {
        secs: u64,
        tried: String,
        last: String,
    },
    #[error("cancelled while waiting for GitLab to answer ready")]
    Cancelled,
}

/// Ready: where and after how long.
#[derive(Debug, Clone, Serialize)]
pub struct Ready {
    pub endpoint: Endpoint,
    pub answer: Answer,
    pub waited_ms: u64,
}

/// Wait until an endpoint answers 200, asking every `every`.
pub fn wait_ready(
    root: &HostRoot,
    timeout: Duration,
    every: Duration,
    sink: &dyn Sink,
    cancel: Option<&Cancel>,
) -> Result<Ready, ReadyError> {
    let start = Instant::now();
    let mut last = String::from("no answer yet");
    let mut said = String::new();
    loop {
        let eps = endpoints(root);
        for ep in &eps {
            match readiness(root, ep) {
                Ok(a) if a.status == 200 => {
                    return Ok(Ready {
                        endpoint: ep.clone(),
                        answer: a,
                        waited_ms: start.elapsed().as_millis() as u64,
                    })
                }
                Ok(a) => last = format!("{ep}: HTTP {} {}", a.status, a.body),
                Err(e) => last = format!("{ep}: {e}"),
            }
        }
        if last != said {
            sink.info(format!("waiting for GitLab: {last}"));
            said = last.clone();
        }
        if cancel.is_some_and(|c| c.is_cancelled()) {
            return Err(ReadyError::Cancelled);
        }
        if start.elapsed() >= timeout {
            return Err(ReadyError::Timeout {
                secs: timeout.as_secs(),
                tried: eps
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                last,
            });
        }
        std::thread::sleep(
            every
                .min(timeout.saturating_sub(start.elapsed()))
                .max(Duration::from_millis(50)),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // GitLab's documented example output (doc/administration/raketasks/check.md).
    const DOC: &str = "I, [2020-06-11T17:17:54.951815 #27148]  INFO -- : Checking encrypted values in the database
I, [2020-06-11T17:18:12.677708 #27148]  INFO -- : - ApplicationSetting failures: 0
I, [2020-06-11T17:18:12.823692 #27148]  INFO -- : - User failures: 0
I, [2020-06-11T17:18:14.938335 #27148]  INFO -- : - Group failures: 1
I, [2020-06-11T17:18:15.559162 #27148]  INFO -- : - Operations::FeatureFlagsClient failures: 0
I, [2020-06-11T17:18:15.575533 #27148]  INFO -- : - ScimOauthAccessToken failures: 0
I, [2020-06-11T17:18:15.575678 #27148]  INFO -- : Total: 1 row(s) affected
I, [2020-06-11T17:18:15.575711 #27148]  INFO -- : Done!
";

    // VERBOSE=1, with Rainbow's colours as on a terminal.
    const VERBOSE: &str = "I, [2024-01-25T07:48:52.989123 #1762]  INFO -- : Checking encrypted values in the database
I, [2024-01-25T07:48:52.997455 #1762]  INFO -- : \u{1b}[32m- Ci::InstanceVariable failures: 0\u{1b}[0m
I, [2024-01-25T07:48:53.013345 #1762]  INFO -- : \u{1b}[31m- Ci::Variable failures: 2\u{1b}[0m
D, [2024-01-25T07:48:53.013400 #1762] DEBUG -- : \u{1b}[31m  - Ci::Variable[3]: value\u{1b}[0m
D, [2024-01-25T07:48:53.013410 #1762] DEBUG -- : \u{1b}[31m  - Ci::Variable[7]: value\u{1b}[0m
I, [2024-01-25T07:48:53.044861 #1762]  INFO -- : \u{1b}[31m- ApplicationSetting failures: 1\u{1b}[0m
D, [2024-01-25T07:48:53.044900 #1762] DEBUG -- : \u{1b}[31m  - ApplicationSetting[1]: runners_registration_token, encrypted_ci_jwt_signing_key\u{1b}[0m
I, [2024-01-25T07:48:53.577136 #1762]  INFO -- : \u{1b}[32m- User failures: 0\u{1b}[0m
I, [2024-01-25T07:48:53.622879 #1762]  INFO -- : \u{1b}[31m- Integrations::Jira failures: 1\u{1b}[0m
D, [2024-01-25T07:48:53.622900 #1762] DEBUG -- : \u{1b}[31m  - Integrations::Jira[12]: properties\u{1b}[0m
I, [2024-01-25T07:48:53.700000 #1762]  INFO -- : \u{1b}[34mTotal: 4 row(s) affected\u{1b}[0m
I, [2024-01-25T07:48:53.700100 #1762]  INFO -- : Done!
";

    #[test]
    fn parses_the_documented_output() {
        let d = parse_doctor_secrets(DOC);
        assert_eq!(d.models.len(), 5);
        assert_eq!(d.total, Some(1));
        assert!(d.done);
        assert!(!d.ok());
        let f: Vec<_> = d.failing().collect();
        assert_eq!(f.len(), 1);
        assert_eq!((f[0].model.as_str(), f[0].failures), ("Group", 1));
        assert_eq!(fix_for("Group").section, "Reset runner registration tokens");
    }

    #[test]
    fn parses_verbose_coloured_output_with_rows() {
        let d = parse_doctor_secrets(VERBOSE);
        assert_eq!(d.total, Some(4));
        let f: Vec<_> = d
            .failing()
            .map(|m| (m.model.as_str(), m.failures))
            .collect();
        assert_eq!(
            f,
            vec![
                ("Ci::Variable", 2),
                ("ApplicationSetting", 1),
                ("Integrations::Jira", 1)
            ]
        );
        let ci = &d.models[1];
        assert_eq!(
            ci.rows,
            vec![
                ("3".into(), vec!["value".into()]),
                ("7".into(), vec!["value".into()])
            ]
        );
        assert_eq!(
            d.models[2].rows[0].1,
            vec!["runners_registration_token", "encrypted_ci_jwt_signing_key"]
        );
        assert_eq!(fix_for("Ci::Variable").section, "Reset CI/CD variables");
        assert_eq!(
            fix_for("Integrations::Jira").section,
            "Fix integrations and webhooks"
        );
        assert_eq!(
            fix_for("ProjectHook").section,
            "Fix integrations and webhooks"
        );
        assert!(fix_for("User").fix.contains("disable_for_all_users"));
    }

    #[test]
    fn a_clean_run_is_ok_and_a_cut_run_is_not() {
        let clean = DOC
            .replace("Group failures: 1", "Group failures: 0")
            .replace("Total: 1", "Total: 0");
        assert!(parse_doctor_secrets(&clean).ok());
        let cut: String = clean.lines().take(3).map(|l| format!("{l}\n")).collect();
        let d = parse_doctor_secrets(&cut);
        assert!(!d.done);
        assert!(!d.ok());
        assert!(
            parse_doctor_secrets("rake aborted!\nActiveRecord::NoDatabaseError")
                .models
                .is_empty()
        );
    }

    #[test]
    fn authorized_keys_is_found_in_its_default_place_or_gitlab_rb() {
        let dir = tempfile::tempdir().unwrap();
        let root = HostRoot::new(dir.path());
        assert!(authorized_keys_in_use(&root).is_none());
        assert!(!checks(&root).iter().any(|c| c.step == "post.shell_setup"));
        let p = root.join(AUTHORIZED_KEYS);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, "command=\"...\" ssh-ed25519 AAAA\n").unwrap();
        assert_eq!(
            authorized_keys_in_use(&root),
            Some(PathBuf::from(AUTHORIZED_KEYS))
        );
        let c = checks(&root);
        let s = c.iter().find(|c| c.step == "post.shell_setup").unwrap();
        assert!(s.changes_host && !s.default);
        assert!(s
            .cmd
            .display()
            .ends_with("gitlab-rake gitlab:shell:setup force=yes"));
        std::fs::remove_file(&p).unwrap();
        let rb = root.join(crate::detect::omnibus::GITLAB_RB);
        std::fs::create_dir_all(rb.parent().unwrap()).unwrap();
        std::fs::write(&rb, "# gitlab_shell['auth_file'] = \"/x\"\ngitlab_shell['auth_file'] = \"/srv/git/.ssh/authorized_keys\"\n").unwrap();
        assert_eq!(
            authorized_keys_in_use(&root),
            Some(PathBuf::from("/srv/git/.ssh/authorized_keys"))
        );
    }

    #[test]
    fn readiness_is_awaited_on_the_workhorse_socket_with_a_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let root = HostRoot::new(dir.path());
        let sock = root.join(WORKHORSE_SOCKET);
        std::fs::create_dir_all(sock.parent().unwrap()).unwrap();
        let l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let sink = crate::progress::NullSink;
        // 503 twice, then 200.
        let server = std::thread::spawn(move || {
            for i in 0..3 {
                let (mut s, _) = l.accept().unwrap();
                let mut b = [0u8; 1024];
                let n = s.read(&mut b).unwrap();
                assert!(
                    String::from_utf8_lossy(&b[..n]).starts_with("GET /-/readiness HTTP/1.0\r\n")
                );
                let (code, body) = if i < 2 {
                    ("503 Service Unavailable", r#"{"status":"failed"}"#)
                } else {
                    (
                        "200 OK",
                        r#"{"status":"ok","master_check":[{"status":"ok"}]}"#,
                    )
                };
                write!(
                    s,
                    "HTTP/1.1 {code}\r\nContent-Type: application/json\r\n\r\n{body}"
                )
                .unwrap();
            }
        });
        let r = wait_ready(
            &root,
            Duration::from_secs(20),
            Duration::from_millis(50),
            &sink,
            None,
        )
        .unwrap();
        server.join().unwrap();
        assert_eq!(r.endpoint, Endpoint::Unix(PathBuf::from(WORKHORSE_SOCKET)));
        assert!(r.answer.body.contains("\"ok\""));
        // Nobody listening any more: a timeout naming where it asked.
        let e = wait_ready(
            &root,
            Duration::from_millis(200),
            Duration::from_millis(50),
            &sink,
            None,
        )
        .unwrap_err();
        let t = e.to_string();
        assert!(
            t.contains("within 0 s")
                && t.contains(WORKHORSE_SOCKET)
                && t.contains("gitlab-ctl tail puma"),
            "{t}"
        );
    }
}
