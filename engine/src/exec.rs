//! A small runner for the external commands Rewind runs (`gitlab-ctl`, `apt-get`,
//! `gitaly-backup`, ...).
//!
//! Commands are argv only: a program and its arguments, never a shell string. Each command
//! is shown before it runs (a [`Level::Info`] log line `$ <command>`), its stdout and
//! stderr are streamed line by line to the [`Sink`] as [`Event::Output`] while it runs, it is
//! journaled (`begin` with the argv before, `end` with the exit code after), and its exit code
//! is checked.

use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::journal::{Journal, JournalError};
use crate::progress::{Event, Level, Sink, SinkExt};

/// How many output lines a finished command keeps (the last ones) for error messages and
/// callers that parse output.
pub const KEEP_LINES: usize = 20_000;

/// Environment variables whose values are secrets (Gitaly's token is inside
/// `GITALY_SERVERS`): [`Cmd::display`] never shows them.
pub const SECRET_ENV: [&str; 2] = ["GITALY_SERVERS", "PGPASSWORD"];

/// One external command: program, arguments, extra environment, working directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cmd {
    /// Program to run (a path, or a name looked up in `PATH`).
    pub program: PathBuf,
    /// Arguments, each passed as one argv element.
    pub args: Vec<OsString>,
    /// Extra environment variables set for this command only.
    pub env: Vec<(String, OsString)>,
    /// Working directory, if not the current one.
    pub cwd: Option<PathBuf>,
}

impl Cmd {
    /// A command running `program` with no arguments.
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Cmd {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            cwd: None,
        }
    }

    /// Append one argument.
    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Self {
        self.args.push(a.as_ref().to_os_string());
        self
    }

    /// Append arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    /// Set an environment variable for this command.
    pub fn env(mut self, key: impl Into<String>, value: impl AsRef<OsStr>) -> Self {
        self.env.push((key.into(), value.as_ref().to_os_string()));
        self
    }

    /// Run in this directory.
    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// The argv as strings (lossy for non-UTF-8), program first: what the journal records.
    pub fn argv(&self) -> Vec<String> {
        std::iter::once(self.program.to_string_lossy().into_owned())
            .chain(self.args.iter().map(|a| a.to_string_lossy().into_owned()))
            .collect()
    }

    /// The command as a user would type it: environment assignments, then program and
    /// arguments, each quoted for a POSIX shell when needed. For display only: Rewind never
    /// runs a shell.
    /// Values of [`SECRET_ENV`] variables are shown as `<redacted>`.
    pub fn display(&self) -> String {
        let mut parts: Vec<String> = self
            .env
            .iter()
            .map(|(k, v)| {
                if SECRET_ENV.contains(&k.as_str()) {
                    format!("{k}=<redacted>")
                } else {
                    format!("{k}={}", shell_quote(&v.to_string_lossy()))
                }
            })
            .collect();
        parts.extend(self.argv().iter().map(|a| shell_quote(a)));
        parts.join(" ")
    }

    pub(crate) fn command(&self) -> Command {
        let mut c = Command::new(&self.program);
        c.args(&self.args);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        if let Some(d) = &self.cwd {
            c.current_dir(d);
        }
        c
    }
}

impl std::fmt::Display for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display())
    }
}

/// Quote a word for display in a POSIX shell: unchanged when it holds only safe characters,
/// else in single quotes.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%^".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Errors running a command.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(
        "cannot start `{command}`: {source}. Check that {program} is installed and executable"
    )]
    Spawn {
        command: String,
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed with {status}{tail}")]
    Failed {
        command: String,
        /// `exit code N` or `signal N`.
        status: String,
        /// Exit code, when the command exited normally.
        code: Option<i32>,
        /// The last output lines, prefixed with a newline (empty when there was none).
        tail: String,
    },
    #[error("reading the output of `{command}`: {source}")]
    Io {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finished {
    /// The command as displayed.
    pub command: String,
    /// Exit code (`None` when killed by a signal).
    pub code: Option<i32>,
    /// Signal number when killed by one.
    pub signal: Option<i32>,
    /// Output lines (stdout and stderr interleaved as they arrived), the last
    /// [`KEEP_LINES`].
    pub lines: Vec<String>,
}

impl Finished {
    /// Whether the command exited with code 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    fn status_text(&self) -> String {
        match (self.code, self.signal) {
            (Some(c), _) => format!("exit code {c}"),
            (None, Some(s)) => format!("signal {s}"),
            (None, None) => "an unknown status".into(),
        }
    }

    fn tail(&self, n: usize) -> String {
        let start = self.lines.len().saturating_sub(n);
        let mut s = String::new();
        for l in &self.lines[start..] {
            s.push_str("\n  ");
            s.push_str(l);
        }
        s
    }

    /// Turn a non-zero exit into [`ExecError::Failed`].
    pub fn check(self) -> Result<Finished, ExecError> {
        if self.success() {
            Ok(self)
        } else {
            Err(ExecError::Failed {
                command: self.command.clone(),
                status: self.status_text(),
                code: self.code,
                tail: self.tail(15),
            })
        }
    }

    /// All output lines joined with newlines.
    pub fn text(&self) -> String {
        let mut s = self.lines.join("\n");
        if !s.is_empty() {
            s.push('\n');
        }
        s
    }
}

/// Runs commands, reporting to a sink and (optionally) a journal.
pub struct Runner<'a> {
    sink: &'a dyn Sink,
    journal: Option<&'a Journal>,
}

impl<'a> Runner<'a> {
    /// A runner reporting to `sink` and journaling to `journal` when given.
    pub fn new(sink: &'a dyn Sink, journal: Option<&'a Journal>) -> Self {
        Runner { sink, journal }
    }

    /// Show, journal, run and stream `cmd` under journal step `step`; a non-zero exit is an
    /// error ([`ExecError::Failed`]).
    pub fn run(&self, step: &str, cmd: &Cmd) -> Result<Finished, ExecError> {
        self.run_unchecked(step, cmd)?.check()
    }

    /// Like [`Runner::run`] but returns a non-zero exit as a [`Finished`] for the caller to
    /// judge (`gitlab-ctl status` exits non-zero when a service is down).
    pub fn run_unchecked(&self, step: &str, cmd: &Cmd) -> Result<Finished, ExecError> {
        self.run_inner(step, cmd, None)
    }

    /// Like [`Runner::run`], writing `input` to the command's stdin (then closing it).
    pub fn run_with_input(
        &self,
        step: &str,
        cmd: &Cmd,
        input: &[u8],
    ) -> Result<Finished, ExecError> {
        self.run_inner(step, cmd, Some(input))?.check()
    }

    fn run_inner(
        &self,
        step: &str,
        cmd: &Cmd,
        input: Option<&[u8]>,
    ) -> Result<Finished, ExecError> {
        let shown = cmd.display();
        self.sink.log(Level::Info, format!("$ {shown}"));
        if let Some(j) = self.journal {
            j.begin(
                step,
                shown.clone(),
                serde_json::json!({ "argv": cmd.argv() }),
            )?;
        }
        let result = run_streaming(cmd, input, |line| {
            self.sink.event(Event::Output {
                line: line.to_string(),
            })
        });
        if let Some(j) = self.journal {
            match &result {
                Ok(f) => j.end(
                    step,
                    if f.success() { "ok" } else { "failed" },
                    serde_json::json!({ "argv": cmd.argv(), "exit_code": f.code, "signal": f.signal }),
                )?,
                Err(e) => j.end(
                    step,
                    "failed",
                    serde_json::json!({ "argv": cmd.argv(), "error": e.to_string() }),
                )?,
            }
        }
        result
    }
}

/// Run `cmd` quietly (no sink, no journal) and capture its output: for read-only queries
/// such as `dpkg-query` and `apt-cache madison`. Stdout and stderr are kept apart.
pub fn capture(cmd: &Cmd) -> Result<Captured, ExecError> {
    let out = cmd
        .command()
        .stdin(Stdio::null())
        .output()
        .map_err(|source| spawn_error(cmd, source))?;
    Ok(Captured {
        command: cmd.display(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// Output of a captured command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Captured {
    pub command: String,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Captured {
    /// Whether it exited with code 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

fn spawn_error(cmd: &Cmd, source: std::io::Error) -> ExecError {
    ExecError::Spawn {
        command: cmd.display(),
        program: cmd.program.display().to_string(),
        source,
    }
}

/// Whether `program` can be found: a path that exists, or a name found in `PATH`.
pub fn find_program(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        let p = Path::new(program);
        return p.is_file().then(|| p.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| {
        OsString::from("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    });
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// Run `cmd`, calling `on_line` for each output line (stdout and stderr, as they arrive).
fn run_streaming(
    cmd: &Cmd,
    input: Option<&[u8]>,
    on_line: impl Fn(&str) + Sync,
) -> Result<Finished, ExecError> {
    let mut child = cmd
        .command()
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| spawn_error(cmd, source))?;
    let lines = Arc::new(Mutex::new(std::collections::VecDeque::<String>::new()));
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let stdin = child.stdin.take();
    let read_err: Mutex<Option<std::io::Error>> = Mutex::new(None);
    std::thread::scope(|s| {
        if let (Some(mut w), Some(data)) = (stdin, input) {
            s.spawn(move || {
                use std::io::Write;
                // A command that exits without reading all of it closes the pipe: not an
                // error of ours, its exit code tells.
                let _ = w.write_all(data);
            });
        }
        let pump = |r: Box<dyn Read + Send>| {
            let lines = Arc::clone(&lines);
            let on_line = &on_line;
            let read_err = &read_err;
            move || {
                let mut br = BufReader::new(r);
                let mut buf = Vec::new();
                loop {
                    buf.clear();
                    match br.read_until(b'\n', &mut buf) {
                        Ok(0) => break,
                        Ok(_) => {
                            let text = String::from_utf8_lossy(&buf);
                            let line = text.trim_end_matches(['\n', '\r']);
                            on_line(line);
                            let mut l = lines.lock().unwrap_or_else(|e| e.into_inner());
                            if l.len() == KEEP_LINES {
                                l.pop_front();
                            }
                            l.push_back(line.to_string());
                        }
                        Err(e) => {
                            *read_err.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
                            break;
                        }
                    }
                }
            }
        };
        if let Some(o) = stdout {
            s.spawn(pump(Box::new(o)));
        }
        if let Some(e) = stderr {
            s.spawn(pump(Box::new(e)));
        }
    });
    let status = child.wait().map_err(|source| ExecError::Io {
        command: cmd.display(),
        source,
    })?;
    if let Some(source) = read_err.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(ExecError::Io {
            command: cmd.display(),
            source,
        });
    }
    use std::os::unix::process::ExitStatusExt;
    let lines = std::mem::take(&mut *lines.lock().unwrap_or_else(|e| e.into_inner()));
    Ok(Finished {
        command: cmd.display(),
        code: status.code(),
        signal: status.signal(),
        lines: lines.into_iter().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::Stage;

    #[test]
    fn display_quotes_only_what_needs_it() {
        let c = Cmd::new("apt-get")
            .args(["install", "-y", "gitlab-ee=16.10.3-ee.0"])
            .arg("-o")
            .arg("Dir=/tmp/a b/")
            .env("APT_CONFIG", "/tmp/x.conf");
        assert_eq!(
            c.display(),
            "APT_CONFIG=/tmp/x.conf apt-get install -y gitlab-ee=16.10.3-ee.0 -o 'Dir=/tmp/a b/'"
        );
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("$(id)"), "'$(id)'");
    }

    #[test]
    fn streams_lines_journals_and_checks_the_exit_code() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open_in(dir.path()).unwrap();
        let events = Mutex::new(Vec::new());
        let sink = |e: Event| events.lock().unwrap().push(e);
        let runner = Runner::new(&sink, Some(&journal));
        // An argument with shell metacharacters reaches the program unchanged.
        let ok = runner
            .run(
                "test.echo",
                &Cmd::new("printf").args(["%s\\n%s\\n", "one; rm -rf /", "two"]),
            )
            .unwrap();
        assert_eq!(ok.lines, vec!["one; rm -rf /", "two"]);
        let ev = events.lock().unwrap().clone();
        assert!(matches!(&ev[0], Event::Log { message, .. } if message.starts_with("$ printf")));
        assert!(ev.contains(&Event::Output {
            line: "one; rm -rf /".into()
        }));

        let err = runner
            .run(
                "test.fail",
                &Cmd::new("sh").args(["-c", "echo boom >&2; exit 3"]),
            )
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("exit code 3") && msg.contains("boom"), "{msg}");

        let missing = runner
            .run(
                "test.missing",
                &Cmd::new("/nonexistent/rewind-no-such-program"),
            )
            .unwrap_err();
        assert!(matches!(missing, ExecError::Spawn { .. }));

        let entries = Journal::read(journal.path()).unwrap();
        let steps: Vec<(String, Stage, Option<String>)> = entries
            .iter()
            .map(|e| (e.step.clone(), e.stage, e.result.clone()))
            .collect();
        assert_eq!(
            steps,
            vec![
                ("test.echo".into(), Stage::Begin, None),
                ("test.echo".into(), Stage::End, Some("ok".into())),
                ("test.fail".into(), Stage::Begin, None),
                ("test.fail".into(), Stage::End, Some("failed".into())),
                ("test.missing".into(), Stage::Begin, None),
                ("test.missing".into(), Stage::End, Some("failed".into())),
            ]
        );
        assert_eq!(entries[3].detail["exit_code"], 3);
        assert_eq!(entries[0].detail["argv"][2], "one; rm -rf /");
    }

    #[test]
    fn feeds_stdin() {
        let runner = Runner::new(&crate::progress::NullSink, None);
        let f = runner
            .run_with_input("t", &Cmd::new("sort"), b"b\na\n")
            .unwrap();
        assert_eq!(f.lines, vec!["a", "b"]);
    }

    #[test]
    fn capture_keeps_streams_apart() {
        let c = capture(&Cmd::new("sh").args(["-c", "echo out; echo err >&2; exit 1"])).unwrap();
        assert_eq!(c.stdout, "out\n");
        assert_eq!(c.stderr, "err\n");
        assert!(!c.success());
        assert!(find_program("sh").is_some());
        assert!(find_program("rewind-no-such-program").is_none());
    }
}
