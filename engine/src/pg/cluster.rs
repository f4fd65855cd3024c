//! Throwaway PostgreSQL clusters: `initdb` + `pg_ctl` in a temporary directory, listening
//! only on a unix socket in that directory (unless [`ClusterOptions::listen_tcp`] adds
//! 127.0.0.1, e.g. with TLS for the TLS tests). Used by the test suite and by `rewind drill`.
//!
//! By default a cluster models Omnibus's database ([`ClusterAuth::OmnibusPeer`]): local
//! connections authenticate by `peer map=gitlab`; the map admits one unprivileged OS user
//! for the role `gitlab` (a non-superuser, which owns the databases
//! [`TempCluster::create_database`] makes) and the server's OS user for the superuser role
//! `gitlab-psql`, and every other OS user for the role of its own name, as Omnibus's
//! `pg_ident.conf` does. Root cannot log in directly: Rewind must connect as the mapped
//! user, as it must on a real Omnibus host.
//!
//! When the process runs as root, the server binaries run as an unprivileged OS user (via
//! `runuser`), since PostgreSQL refuses to run as root. The cluster is stopped (immediate
//! mode) and its directory removed when the [`TempCluster`] is dropped, also on panic.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Errors starting or using a throwaway cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("no PostgreSQL server binaries found (looked for initdb in {searched}); install the PostgreSQL server package, e.g. `apt-get install postgresql` (Debian/Ubuntu) or `dnf install postgresql-server`")]
    NoServerBinaries { searched: String },
    #[error("running as root but there is no `{0}` user to run the server as; create it (`useradd --system {0}`) or install the PostgreSQL server package")]
    NoOsUser(String),
    #[error("{step} failed: {detail}")]
    Step { step: String, detail: String },
    #[error("I/O error during {step}: {source}")]
    Io {
        step: String,
        #[source]
        source: std::io::Error,
    },
}

fn io(step: &str) -> impl FnOnce(std::io::Error) -> ClusterError + '_ {
    move |source| ClusterError::Io {
        step: step.to_string(),
        source,
    }
}

/// Where PostgreSQL server binaries live: `REWIND_PG_BIN` if set, then the newest
/// `/usr/lib/postgresql/*/bin`, `/usr/pgsql-*/bin`, then on a GitLab host Omnibus's own
/// (`/opt/gitlab/embedded/postgresql/*/bin`, `/opt/gitlab/embedded/bin`), then `PATH`.
pub fn find_server_bin_dir() -> Result<PathBuf, ClusterError> {
    if let Some(dir) = std::env::var_os("REWIND_PG_BIN") {
        let dir = PathBuf::from(dir);
        if dir.join("initdb").is_file() {
            return Ok(dir);
        }
        return find_server_bin_dir_in(Path::new("/")).map_err(|e| match e {
            ClusterError::NoServerBinaries { searched } => ClusterError::NoServerBinaries {
                searched: format!("{} (REWIND_PG_BIN), {searched}", dir.display()),
            },
            other => other,
        });
    }
    find_server_bin_dir_in(Path::new("/"))
}

/// [`find_server_bin_dir`] under `base` (`/` on a host), without `REWIND_PG_BIN`.
fn find_server_bin_dir_in(base: &Path) -> Result<PathBuf, ClusterError> {
    let mut searched = Vec::new();
    let mut candidates = Vec::new();
    for (parent, prefix) in [("usr/lib/postgresql", ""), ("usr", "pgsql-")] {
        let parent = base.join(parent);
        let parent = parent.display().to_string();
        if let Ok(rd) = fs::read_dir(&parent) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                if let Some(ver) = name.strip_prefix(prefix) {
                    if let Ok(major) = ver.parse::<u32>() {
                        let bin = e.path().join("bin");
                        if bin.join("initdb").is_file() {
                            candidates.push((major, bin));
                        }
                    }
                }
            }
        }
        searched.push(format!("{parent}/{prefix}*/bin"));
    }
    candidates.sort();
    if let Some((_, bin)) = candidates.pop() {
        return Ok(bin);
    }
    // A GitLab host without a system PostgreSQL: Omnibus's embedded server binaries.
    let mut embedded = Vec::new();
    let versions = base.join("opt/gitlab/embedded/postgresql");
    if let Ok(rd) = fs::read_dir(&versions) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if let Ok(major) = name.parse::<u32>() {
                let bin = e.path().join("bin");
                if bin.join("initdb").is_file() && bin.join("pg_ctl").is_file() {
                    embedded.push((major, bin));
                }
            }
        }
    }
    searched.push(format!("{}/*/bin", versions.display()));
    embedded.sort();
    if let Some((_, bin)) = embedded.pop() {
        return Ok(bin);
    }
    let bin = base.join("opt/gitlab/embedded/bin");
    if bin.join("initdb").is_file() && bin.join("pg_ctl").is_file() {
        return Ok(bin);
    }
    searched.push(bin.display().to_string());
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join("initdb").is_file() && dir.join("pg_ctl").is_file() {
                return Ok(dir);
            }
        }
    }
    searched.push("$PATH".into());
    Err(ClusterError::NoServerBinaries {
        searched: searched.join(", "),
    })
}

/// Whether this process runs as root.
pub fn running_as_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A running throwaway cluster.
#[derive(Debug)]
pub struct TempCluster {
    dir: Option<tempfile::TempDir>,
    bin: PathBuf,
    port: u16,
    /// OS user the server runs as, when this process is root (`runuser -u`).
    server_user: Option<String>,
    superuser: String,
    /// The application role (`gitlab` in the Omnibus model, else the superuser).
    app_role: String,
    auth: ClusterAuth,
    stopped: bool,
}

/// The superuser role of an Omnibus-model cluster, as Omnibus names it.
pub const OMNIBUS_SUPERUSER: &str = "gitlab-psql";
/// The application role of an Omnibus-model cluster (database.yml's `username`).
pub const OMNIBUS_APP_ROLE: &str = "gitlab";
/// The ident map name Omnibus uses.
pub const OMNIBUS_MAP: &str = "gitlab";

/// How a throwaway cluster authenticates local connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterAuth {
    /// `trust` for every local connection; the superuser is the only role.
    Trust,
    /// Omnibus's model: `local all all peer map=gitlab`, a non-superuser `gitlab` role that
    /// owns the databases, and the superuser `gitlab-psql`.
    OmnibusPeer(PeerUsers),
}

/// The OS users of an Omnibus-model cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerUsers {
    /// OS user mapped to the role `gitlab` (Omnibus: `git`).
    pub app: String,
    /// OS user the server runs as, mapped to the superuser `gitlab-psql` (Omnibus:
    /// `gitlab-psql`). Ignored when not root (the server runs as this process's user).
    pub admin: String,
}

impl PeerUsers {
    /// For the test suite: as root, Omnibus's own users `git` and `gitlab-psql`, created as
    /// system users when missing; otherwise this process's user for both.
    pub fn for_tests() -> Result<PeerUsers, ClusterError> {
        if !running_as_root() {
            return Ok(PeerUsers::current_user());
        }
        for name in ["git", OMNIBUS_SUPERUSER] {
            ensure_system_user(name)?;
        }
        Ok(PeerUsers {
            app: "git".into(),
            admin: OMNIBUS_SUPERUSER.into(),
        })
    }

    /// Without creating any account (the drill on a user's machine): as root, `nobody` for
    /// `gitlab` and `postgres` (the server package's user) for the server; otherwise this
    /// process's user for both.
    pub fn existing() -> Result<PeerUsers, ClusterError> {
        if !running_as_root() {
            return Ok(PeerUsers::current_user());
        }
        if nix::unistd::User::from_name("nobody")
            .ok()
            .flatten()
            .is_none()
        {
            return Err(ClusterError::NoOsUser("nobody".into()));
        }
        // The server package's user, or on a GitLab host without one Omnibus's own.
        let admin = first_existing_user(&["postgres", OMNIBUS_SUPERUSER])
            .ok_or_else(|| ClusterError::NoOsUser(format!("postgres (or {OMNIBUS_SUPERUSER})")))?;
        Ok(PeerUsers {
            app: "nobody".into(),
            admin,
        })
    }

    fn current_user() -> PeerUsers {
        let me = current_user_name();
        PeerUsers {
            app: me.clone(),
            admin: me,
        }
    }
}

/// The first of `names` that is an account on this host.
fn first_existing_user(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find(|n| nix::unistd::User::from_name(n).ok().flatten().is_some())
        .map(|n| n.to_string())
}

fn current_user_name() -> String {
    nix::unistd::User::from_uid(nix::unistd::geteuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| "postgres".into())
}

/// Create a system account (no home, no login shell) unless it exists. Serialised within
/// the process; a concurrent creation by another process counts as success.
fn ensure_system_user(name: &str) -> Result<(), ClusterError> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _g = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let exists = || nix::unistd::User::from_name(name).ok().flatten().is_some();
    let mut last = String::new();
    for _ in 0..20 {
        if exists() {
            return Ok(());
        }
        match Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                name,
            ])
            .stdin(Stdio::null())
            .output()
        {
            Ok(o) if o.status.success() => return Ok(()),
            Ok(o) => last = String::from_utf8_lossy(&o.stderr).trim().to_string(),
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if exists() {
        return Ok(());
    }
    Err(ClusterError::Step {
        step: format!("creating the system user `{name}`"),
        detail: last,
    })
}

/// Options for [`TempCluster::start_with`].
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Parent directory of the cluster's temp dir (default: the system temp dir).
    pub parent: Option<PathBuf>,
    /// Extra server settings written to `postgresql.conf`.
    pub settings: Vec<(String, String)>,
    /// Authentication model (default: Omnibus's peer map, with [`PeerUsers::for_tests`]).
    pub auth: Option<ClusterAuth>,
    /// Also listen on TCP at 127.0.0.1, on a free port ([`TempCluster::port`]); default:
    /// the unix socket only.
    pub listen_tcp: bool,
    /// Turn TLS on with this certificate and key.
    pub tls: Option<ServerTls>,
    /// Lines appended to `pg_hba.conf` (e.g. `hostssl all all 127.0.0.1/32 trust`).
    pub hba_lines: Vec<String>,
    /// Server binaries to use (`initdb`, `pg_ctl`, ...); default [`find_server_bin_dir`].
    pub bin_dir: Option<PathBuf>,
    /// Port number for the socket file (`.s.PGSQL.<port>`); default 5432, or a free TCP
    /// port with [`ClusterOptions::listen_tcp`].
    pub port: Option<u16>,
}

/// A throwaway cluster's TLS material (PEM), written into its data directory.
#[derive(Debug, Clone)]
pub struct ServerTls {
    pub cert_pem: String,
    pub key_pem: String,
    /// CA for client certificates (`ssl_ca_file`), for `cert` authentication.
    pub client_ca_pem: Option<String>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            parent: None,
            settings: vec![
                ("fsync".into(), "off".into()),
                ("full_page_writes".into(), "off".into()),
                ("synchronous_commit".into(), "off".into()),
                ("max_connections".into(), "60".into()),
                ("shared_buffers".into(), "64MB".into()),
                ("max_wal_size".into(), "2GB".into()),
            ],
            auth: None,
            listen_tcp: false,
            tls: None,
            hba_lines: Vec::new(),
            bin_dir: None,
            port: None,
        }
    }
}

impl TempCluster {
    /// Start a cluster with default options (non-durable settings: test data only).
    pub fn start() -> Result<Self, ClusterError> {
        Self::start_with(ClusterOptions::default())
    }

    /// Start a cluster.
    pub fn start_with(opts: ClusterOptions) -> Result<Self, ClusterError> {
        let bin = match &opts.bin_dir {
            Some(b) => b.clone(),
            None => find_server_bin_dir()?,
        };
        let auth = match opts.auth.clone() {
            Some(a) => a,
            None => ClusterAuth::OmnibusPeer(PeerUsers::for_tests()?),
        };
        let server_user = if running_as_root() {
            let name = match &auth {
                ClusterAuth::OmnibusPeer(u) => u.admin.clone(),
                ClusterAuth::Trust => "postgres".to_string(),
            };
            Some(name)
        } else {
            None
        };
        let mut builder = tempfile::Builder::new();
        builder.prefix("rewind-pg-");
        let dir = match &opts.parent {
            Some(p) => builder.tempdir_in(p),
            None => builder.tempdir(),
        }
        .map_err(io("creating the cluster directory"))?;
        let root = dir.path().to_path_buf();
        let data = root.join("data");
        let sock = root.join("sock");
        fs::create_dir(&sock).map_err(io("creating the socket directory"))?;
        if let Some(name) = &server_user {
            // The server's user must be able to reach and own the cluster directory.
            let user = nix::unistd::User::from_name(name)
                .ok()
                .flatten()
                .ok_or_else(|| ClusterError::NoOsUser(name.clone()))?;
            for p in [&root, &sock] {
                nix::unistd::chown(p.as_path(), Some(user.uid), Some(user.gid)).map_err(|e| {
                    ClusterError::Step {
                        step: format!("chown of the cluster directory to {name}"),
                        detail: e.to_string(),
                    }
                })?;
            }
            fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).map_err(io("chmod"))?;
            ensure_traversable(&root);
        }
        let superuser = match (&auth, &server_user) {
            (ClusterAuth::OmnibusPeer(_), _) => OMNIBUS_SUPERUSER.to_string(),
            (ClusterAuth::Trust, Some(name)) => name.clone(),
            (ClusterAuth::Trust, None) => current_user_name(),
        };
        let app_role = match &auth {
            ClusterAuth::OmnibusPeer(_) => OMNIBUS_APP_ROLE.to_string(),
            ClusterAuth::Trust => superuser.clone(),
        };
        let port = if let Some(p) = opts.port {
            p
        } else if opts.listen_tcp {
            std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(io("finding a free TCP port"))?
                .port()
        } else {
            5432
        };
        let mut cluster = TempCluster {
            dir: Some(dir),
            bin,
            port,
            server_user,
            superuser: superuser.clone(),
            app_role,
            auth: auth.clone(),
            stopped: true,
        };
        cluster.run_tool(
            "initdb",
            &[
                OsStr::new("-D"),
                data.as_os_str(),
                OsStr::new("-U"),
                OsStr::new(&superuser),
                OsStr::new("--auth=trust"),
                OsStr::new("--encoding=UTF8"),
                OsStr::new("--locale=C"),
                OsStr::new("--no-sync"),
            ],
        )?;
        let mut conf = format!(
            "listen_addresses = '{}'\nunix_socket_directories = '{}'\nport = {}\n",
            if opts.listen_tcp { "127.0.0.1" } else { "" },
            sock.display(),
            cluster.port
        );
        if let Some(tls) = &opts.tls {
            let mut files = vec![("server.crt", &tls.cert_pem), ("server.key", &tls.key_pem)];
            conf.push_str("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
            if let Some(ca) = &tls.client_ca_pem {
                files.push(("client_ca.crt", ca));
                conf.push_str("ssl_ca_file = 'client_ca.crt'\n");
            }
            for (name, pem) in files {
                cluster.write_server_file(&data.join(name), pem.as_bytes())?;
            }
        }
        for (k, v) in &opts.settings {
            conf.push_str(&format!("{k} = '{v}'\n"));
        }
        cluster.append_conf(&data.join("postgresql.conf"), &conf)?;
        if let ClusterAuth::OmnibusPeer(users) = &auth {
            cluster.write_peer_auth(&data, users)?;
        }
        if !opts.hba_lines.is_empty() {
            let lines: String = opts.hba_lines.iter().map(|l| format!("{l}\n")).collect();
            cluster.append_conf(&data.join("pg_hba.conf"), &lines)?;
        }
        let log = root.join("server.log");
        if let Some(name) = &cluster.server_user {
            // Create the log file so the server's user can append to it.
            fs::write(&log, b"").map_err(io("creating the server log"))?;
            let user = nix::unistd::User::from_name(name)
                .ok()
                .flatten()
                .ok_or_else(|| ClusterError::NoOsUser(name.clone()))?;
            let _ = nix::unistd::chown(log.as_path(), Some(user.uid), Some(user.gid));
        }
        cluster.run_tool(
            "pg_ctl",
            &[
                OsStr::new("-D"),
                data.as_os_str(),
                OsStr::new("-l"),
                log.as_os_str(),
                OsStr::new("-w"),
                OsStr::new("-t"),
                OsStr::new("60"),
                OsStr::new("start"),
            ],
        )?;
        cluster.stopped = false;
        cluster.wait_ready(Duration::from_secs(30))?;
        if matches!(cluster.auth, ClusterAuth::OmnibusPeer(_)) {
            let mut c = cluster
                .connect("postgres")
                .map_err(|e| ClusterError::Step {
                    step: "connecting as the superuser".into(),
                    detail: e.to_string(),
                })?;
            c.batch_execute(&format!(
                "CREATE ROLE {} LOGIN",
                super::ident::quote_ident(OMNIBUS_APP_ROLE)
            ))
            .map_err(|e| ClusterError::Step {
                step: format!("CREATE ROLE {OMNIBUS_APP_ROLE}"),
                detail: e.to_string(),
            })?;
        }
        Ok(cluster)
    }

    /// A file the server reads (key, certificates): mode 0600, owned by the server's user.
    fn write_server_file(&self, path: &Path, bytes: &[u8]) -> Result<(), ClusterError> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(io("writing the server's TLS files"))?;
        std::io::Write::write_all(&mut f, bytes).map_err(io("writing the server's TLS files"))?;
        if let Some(name) = &self.server_user {
            let user = nix::unistd::User::from_name(name)
                .ok()
                .flatten()
                .ok_or_else(|| ClusterError::NoOsUser(name.clone()))?;
            nix::unistd::chown(path, Some(user.uid), Some(user.gid)).map_err(|e| {
                ClusterError::Step {
                    step: format!("chown of {} to {name}", path.display()),
                    detail: e.to_string(),
                }
            })?;
        }
        Ok(())
    }

    fn append_conf(&self, path: &Path, text: &str) -> Result<(), ClusterError> {
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(io("writing postgresql.conf"))?;
        std::io::Write::write_all(&mut f, text.as_bytes()).map_err(io("writing postgresql.conf"))
    }

    /// Omnibus's `pg_hba.conf` and `pg_ident.conf` (`pg_ident.conf.erb`), with the map
    /// naming this cluster's OS users.
    fn write_peer_auth(&self, data: &Path, users: &PeerUsers) -> Result<(), ClusterError> {
        let hba = format!(
            "# Rewind throwaway cluster: Omnibus's authentication model\n\
             # TYPE  DATABASE    USER        CIDR-ADDRESS          METHOD\n\
             local   all         all                               peer map={OMNIBUS_MAP}\n"
        );
        let (app, admin) = match &self.server_user {
            Some(_) => (users.app.clone(), users.admin.clone()),
            None => (current_user_name(), current_user_name()),
        };
        let mut ident = format!(
            "# MAPNAME       SYSTEM-USERNAME         PG-USERNAME\n\
             {OMNIBUS_MAP}          {app}          {OMNIBUS_APP_ROLE}\n"
        );
        if admin != OMNIBUS_SUPERUSER {
            ident.push_str(&format!(
                "{OMNIBUS_MAP}          {admin}          {OMNIBUS_SUPERUSER}\n"
            ));
        }
        ident.push_str(&format!("{OMNIBUS_MAP}          /^(.*)$          \\1\n"));
        fs::write(data.join("pg_hba.conf"), hba).map_err(io("writing pg_hba.conf"))?;
        fs::write(data.join("pg_ident.conf"), ident).map_err(io("writing pg_ident.conf"))
    }

    fn wait_ready(&self, timeout: Duration) -> Result<(), ClusterError> {
        let start = Instant::now();
        loop {
            if self.connect("postgres").is_ok() {
                return Ok(());
            }
            if start.elapsed() > timeout {
                return Err(ClusterError::Step {
                    step: "waiting for the cluster to accept connections".into(),
                    detail: self.server_log_tail(),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Run a server binary (initdb, pg_ctl, ...) as the cluster's OS user.
    fn run_tool(&self, tool: &str, args: &[&OsStr]) -> Result<(), ClusterError> {
        let out = self
            .command(tool, args)
            .stdin(Stdio::null())
            .output()
            .map_err(io(tool))?;
        if !out.status.success() {
            return Err(ClusterError::Step {
                step: tool.to_string(),
                detail: format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stderr).trim(),
                    if tool == "pg_ctl" {
                        format!("\nserver log:\n{}", self.server_log_tail())
                    } else {
                        String::new()
                    }
                ),
            });
        }
        Ok(())
    }

    /// A [`Command`] for a PostgreSQL binary of this cluster's version (`pg_dump`, `psql`,
    /// ...), run as the cluster's OS user, with the environment pointing at this cluster.
    pub fn command(&self, tool: &str, args: &[&OsStr]) -> Command {
        let exe = self.tool_path(tool);
        let mut cmd = if let Some(user) = &self.server_user {
            let mut c = Command::new("runuser");
            c.arg("-u").arg(user).arg("--").arg(exe);
            c
        } else {
            Command::new(exe)
        };
        cmd.args(args);
        cmd.env("PGHOST", self.socket_dir())
            .env("PGPORT", self.port.to_string())
            .env("PGUSER", &self.superuser)
            .env_remove("PGPASSWORD")
            .env_remove("PGDATABASE");
        // runuser keeps the cwd; make sure the postgres user can stat it.
        cmd.current_dir(self.dir());
        cmd
    }

    /// Path of a PostgreSQL binary in the server's bin dir.
    pub fn tool_path(&self, tool: &str) -> PathBuf {
        self.bin.join(tool)
    }

    /// The server bin dir in use.
    pub fn bin_dir(&self) -> &Path {
        &self.bin
    }

    /// The cluster's directory.
    pub fn dir(&self) -> &Path {
        self.dir
            .as_ref()
            .map(|d| d.path())
            .unwrap_or(Path::new("/"))
    }

    /// The unix socket directory (use as `host`).
    pub fn socket_dir(&self) -> PathBuf {
        self.dir().join("sock")
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir().join("data")
    }

    /// Port (part of the socket file name).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Superuser role name (`gitlab-psql` in the Omnibus model).
    pub fn superuser(&self) -> &str {
        &self.superuser
    }

    /// The role GitLab connects as (`gitlab` in the Omnibus model: no superuser, owner of
    /// the databases this cluster creates).
    pub fn app_role(&self) -> &str {
        &self.app_role
    }

    /// OS user the server runs as (when this process is root).
    pub fn server_os_user(&self) -> Option<&str> {
        self.server_user.as_deref()
    }

    /// The authentication model.
    pub fn auth(&self) -> &ClusterAuth {
        &self.auth
    }

    /// A libpq/`postgres` crate connection string for a database of this cluster, as the
    /// superuser. Values are quoted as libpq requires. (With peer authentication only the
    /// mapped OS user may use it: see [`TempCluster::connect`].)
    pub fn conn_string(&self, dbname: &str) -> String {
        let q = |v: &str| format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"));
        format!(
            "host={} port={} user={} dbname={}",
            q(&self.socket_dir().display().to_string()),
            self.port,
            q(&self.superuser),
            q(dbname)
        )
    }

    /// Connection settings for a database of this cluster as GitLab has them: the
    /// application role ([`TempCluster::app_role`]) on the socket, no password.
    pub fn conn_spec(&self, dbname: &str) -> super::conn::ConnSpec {
        super::conn::ConnSpec {
            user: self.app_role.clone(),
            ..self.admin_conn_spec(dbname)
        }
    }

    /// Connection settings for a database of this cluster, as the superuser.
    pub fn admin_conn_spec(&self, dbname: &str) -> super::conn::ConnSpec {
        super::conn::ConnSpec {
            host: self.socket_dir().display().to_string(),
            port: self.port,
            user: self.superuser.clone(),
            password: super::conn::Secret::default(),
            dbname: dbname.to_string(),
            ..super::conn::ConnSpec::omnibus_default()
        }
    }

    /// Connect as the superuser (through the peer map when this process is root, as
    /// Rewind does).
    pub fn connect(&self, dbname: &str) -> Result<postgres::Client, super::conn::ConnError> {
        self.admin_conn_spec(dbname).connect()
    }

    /// Connect as the application role.
    pub fn connect_app(&self, dbname: &str) -> Result<postgres::Client, super::conn::ConnError> {
        self.conn_spec(dbname).connect()
    }

    /// `CREATE DATABASE ... OWNER <app role>` (identifiers quoted).
    pub fn create_database(&self, name: &str) -> Result<(), ClusterError> {
        let mut c = self.connect("postgres").map_err(|e| ClusterError::Step {
            step: "connecting to create a database".into(),
            detail: e.to_string(),
        })?;
        c.batch_execute(&format!(
            "CREATE DATABASE {} OWNER {}",
            super::ident::quote_ident(name),
            super::ident::quote_ident(&self.app_role)
        ))
        .map_err(|e| ClusterError::Step {
            step: format!("CREATE DATABASE {name}"),
            detail: e.to_string(),
        })
    }

    /// Last lines of the server log, for error messages.
    pub fn server_log_tail(&self) -> String {
        let text = fs::read_to_string(self.dir().join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// Kill the postmaster at once (SIGKILL) — for fault-injection tests.
    pub fn kill(&mut self) {
        if let Ok(pid) = fs::read_to_string(self.data_dir().join("postmaster.pid")) {
            if let Some(pid) = pid
                .lines()
                .next()
                .and_then(|l| l.trim().parse::<i32>().ok())
            {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        // Wait for the postmaster to be gone.
        std::thread::sleep(Duration::from_millis(300));
        self.stopped = true;
    }

    /// Start again after [`TempCluster::stop`] or [`TempCluster::kill`].
    pub fn restart(&mut self) -> Result<(), ClusterError> {
        let data = self.data_dir();
        let log = self.dir().join("server.log");
        let _ = fs::remove_file(data.join("postmaster.pid"));
        self.run_tool(
            "pg_ctl",
            &[
                OsStr::new("-D"),
                data.as_os_str(),
                OsStr::new("-l"),
                log.as_os_str(),
                OsStr::new("-w"),
                OsStr::new("-t"),
                OsStr::new("60"),
                OsStr::new("start"),
            ],
        )?;
        self.stopped = false;
        self.wait_ready(Duration::from_secs(30))
    }

    /// Stop the server (fast mode).
    pub fn stop(&mut self) -> Result<(), ClusterError> {
        if self.stopped {
            return Ok(());
        }
        let data = self.data_dir();
        let r = self.run_tool(
            "pg_ctl",
            &[
                OsStr::new("-D"),
                data.as_os_str(),
                OsStr::new("-m"),
                OsStr::new("immediate"),
                OsStr::new("-w"),
                OsStr::new("stop"),
            ],
        );
        self.stopped = true;
        r
    }

    /// Leave the cluster running and its directory in place; returns the directory.
    pub fn into_kept(mut self) -> PathBuf {
        self.stopped = true;
        let d = self.dir.take().expect("cluster dir");
        d.keep()
    }
}

/// Make every ancestor of `path` traversable (o+x) so the `postgres` user can reach it.
/// Only adds the search bit to directories under the system temp dir.
fn ensure_traversable(path: &Path) {
    let tmp = std::env::temp_dir();
    let mut p = path.parent();
    while let Some(dir) = p {
        if !dir.starts_with(&tmp) || dir == tmp {
            break;
        }
        if let Ok(meta) = fs::metadata(dir) {
            let mode = meta.permissions().mode();
            if mode & 0o001 == 0 {
                let _ = fs::set_permissions(dir, fs::Permissions::from_mode(mode | 0o011));
            }
        }
        p = dir.parent();
    }
}

impl Drop for TempCluster {
    fn drop(&mut self) {
        if self.dir.is_some() && !self.stopped {
            let _ = self.stop();
        }
    }
}

#[cfg(test)]
mod tests {

    /// On a GitLab host without a system PostgreSQL, Omnibus's embedded server binaries
    /// are used (the versioned directory first, then `embedded/bin`); a system one wins.
    #[test]
    fn embedded_server_binaries_are_found_when_no_system_postgresql_is_installed() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path();
        let touch = |p: &Path| {
            fs::create_dir_all(p).unwrap();
            for tool in ["initdb", "pg_ctl"] {
                fs::write(p.join(tool), "#!/bin/sh\n").unwrap();
            }
        };
        let flat = base.join("opt/gitlab/embedded/bin");
        touch(&flat);
        assert_eq!(find_server_bin_dir_in(base).unwrap(), flat);
        let versioned = base.join("opt/gitlab/embedded/postgresql/16/bin");
        touch(&versioned);
        touch(&base.join("opt/gitlab/embedded/postgresql/14/bin"));
        assert_eq!(find_server_bin_dir_in(base).unwrap(), versioned);
        let system = base.join("usr/lib/postgresql/15/bin");
        touch(&system);
        assert_eq!(find_server_bin_dir_in(base).unwrap(), system);
    }

    #[test]
    fn the_server_user_is_the_first_account_that_exists() {
        assert_eq!(
            first_existing_user(&["rewind-no-such-user", "root"]).as_deref(),
            Some("root")
        );
        assert_eq!(first_existing_user(&["rewind-no-such-user"]), None);
    }

    use super::*;

    #[test]
    fn starts_queries_and_cleans_up() {
        let c = TempCluster::start().expect("cluster");
        let dir = c.dir().to_path_buf();
        let mut client = c.connect("postgres").unwrap();
        let row = client
            .query_one("SELECT current_setting('server_version_num')::int", &[])
            .unwrap();
        let v: i32 = row.get(0);
        assert!(v >= 100000);
        c.create_database("we\"ird db").unwrap();
        // Omnibus's model: the application role is no superuser and owns the database;
        // this process's own user is not in the peer map when it is root.
        let mut app = c.connect_app("we\"ird db").unwrap();
        let row = app
            .query_one(
                "SELECT r.rolsuper, pg_get_userbyid(d.datdba) FROM pg_roles r, pg_database d \
                 WHERE r.rolname = current_user AND d.datname = current_database()",
                &[],
            )
            .unwrap();
        assert!(!row.get::<_, bool>(0));
        assert_eq!(row.get::<_, String>(1), OMNIBUS_APP_ROLE);
        if running_as_root() {
            let raw = format!("{} user={OMNIBUS_APP_ROLE}", c.conn_string("postgres"));
            let Err(err) = postgres::Client::connect(&raw, postgres::NoTls) else {
                panic!("root logged in as {OMNIBUS_APP_ROLE} without the peer map");
            };
            let msg = crate::pg::conn::describe_pg_error(&err);
            assert!(msg.contains("Peer authentication failed"), "{msg}");
            let who = c.conn_spec("postgres").connect_as();
            assert_eq!(
                who.os_user().map(|u| u.name.as_str()),
                Some("git"),
                "{who:?}"
            );
            assert!(who.why().contains("pg_ident.conf"), "{}", who.why());
        }
        assert!(c.connect("we\"ird db").is_ok());
        drop(client);
        drop(c);
        assert!(!dir.exists(), "cluster dir left behind");
    }
}
