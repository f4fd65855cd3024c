//! The drill sandbox's stand-in for Workhorse's readiness endpoint: an HTTP responder on
//! the sandbox's Workhorse socket (`/var/opt/gitlab/gitlab-workhorse/sockets/socket`
//! under the sandbox root), run by the drill process while the wizard runs, so the
//! wizard's readiness wait ([`crate::recovery::postcheck::wait_ready`]) asks a real socket
//! over HTTP. It answers as GitLab does from the state the stand-in `gitlab-ctl` keeps:
//! `200` with `{"status":"ok"}` while Puma runs, `502` while it is stopped (Workhorse's
//! answer when Puma does not respond). Nothing answers outside the sandbox.

use std::io::{self, Read, Write};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::recovery::postcheck::WORKHORSE_SOCKET;
use crate::root::HostRoot;

/// Where the stand-in `gitlab-ctl` marks a stopped service (one empty file per service).
const DOWN_DIR: &str = "/var/log/gitlab/rewind-standin/down";

/// The running responder; stopped and its socket removed when dropped.
pub struct ReadinessStandin {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Serve `/-/readiness` on the sandbox's Workhorse socket. `root` must be a sandbox root
/// (never the system root: the drill's hosts only).
pub fn serve(root: &HostRoot) -> io::Result<ReadinessStandin> {
    if root.is_system() {
        return Err(io::Error::other(
            "the readiness stand-in serves only in a sandbox root",
        ));
    }
    let path = root.join(WORKHORSE_SOCKET);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // A stale socket of an earlier run (never anything else).
    if let Ok(m) = std::fs::symlink_metadata(&path) {
        if m.file_type().is_socket() {
            std::fs::remove_file(&path)?;
        }
    }
    let listener = UnixListener::bind(&path)?;
    listener.set_nonblocking(true)?;
    let stop = Arc::new(AtomicBool::new(false));
    let down = root.join(DOWN_DIR).join("puma");
    let flag = stop.clone();
    let thread = std::thread::spawn(move || {
        while !flag.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((conn, _)) => {
                    let _ = answer(conn, !down.exists());
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    });
    Ok(ReadinessStandin {
        path,
        stop,
        thread: Some(thread),
    })
}

fn answer(mut conn: UnixStream, puma_up: bool) -> io::Result<()> {
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut req = Vec::new();
    let mut buf = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 8192 {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            break;
        }
        req.extend_from_slice(&buf[..n]);
    }
    let first = String::from_utf8_lossy(&req);
    let first = first.lines().next().unwrap_or("");
    let (status, body) = if !first.starts_with("GET /-/readiness") {
        ("404 Not Found", "{\"message\":\"404 Not Found\"}")
    } else if puma_up {
        (
            "200 OK",
            "{\"status\":\"ok\",\"master_check\":[{\"status\":\"ok\"}]}",
        )
    } else {
        ("502 Bad Gateway", "GitLab is not responding")
    };
    write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    conn.flush()
}

impl ReadinessStandin {
    /// The socket's path (host path under the sandbox root).
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

impl Drop for ReadinessStandin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recovery::postcheck::{endpoints, readiness, wait_ready, Endpoint};

    #[test]
    fn answers_ready_while_puma_runs_and_502_while_it_is_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let root = HostRoot::new(dir.path());
        let srv = serve(&root).unwrap();
        let eps = endpoints(&root);
        assert_eq!(eps, vec![Endpoint::Unix(PathBuf::from(WORKHORSE_SOCKET))]);
        let a = readiness(&root, &eps[0]).unwrap();
        assert_eq!(a.status, 200);
        assert!(a.body.contains("\"ok\""), "{}", a.body);
        // The stand-in gitlab-ctl stopped puma.
        std::fs::create_dir_all(root.join(DOWN_DIR)).unwrap();
        std::fs::write(root.join(DOWN_DIR).join("puma"), "").unwrap();
        assert_eq!(readiness(&root, &eps[0]).unwrap().status, 502);
        let e = wait_ready(
            &root,
            Duration::from_millis(300),
            Duration::from_millis(50),
            &crate::progress::NullSink,
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("HTTP 502"), "{e}");
        std::fs::remove_file(root.join(DOWN_DIR).join("puma")).unwrap();
        let r = wait_ready(
            &root,
            Duration::from_secs(5),
            Duration::from_millis(50),
            &crate::progress::NullSink,
            None,
        )
        .unwrap();
        assert_eq!(r.answer.status, 200);
        let path = srv.path().to_path_buf();
        drop(srv);
        assert!(!path.exists(), "the socket is removed");
    }
}
