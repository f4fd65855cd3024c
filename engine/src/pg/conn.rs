//! How Rewind connects to a GitLab database.
//!
//! Settings come from GitLab's `database.yml` (see [`crate::detect`]), from
//! `--database-url`, and from the environment the way GitLab's backup tooling reads it:
//! libpq variables (`PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`, `PGDATABASE`, `PGSSLMODE`)
//! and the overrides `GITLAB_BACKUP_<VAR>` / `GITLAB_BACKUP_<MAIN|CI>_<VAR>` (also with the
//! `GITLAB_OVERRIDE_` prefix). The password is kept in a [`Secret`] that never prints.

use std::fmt;
use std::process::Command;
use std::time::Duration;

use serde::{Serialize, Serializer};

use super::peer::{self, ConnectAs};

/// A password: kept out of `Debug`, `Display`, logs, the journal and JSON.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(Option<String>);

impl Secret {
    pub fn new(value: Option<String>) -> Self {
        Secret(value.filter(|v| !v.is_empty()))
    }
    pub fn expose(&self) -> Option<&str> {
        self.0.as_deref()
    }
    pub fn is_set(&self) -> bool {
        self.0.is_some()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "<redacted>"
        } else {
            "<none>"
        })
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bool(self.0.is_some())
    }
}

/// Everything needed to open a connection to one database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConnSpec {
    /// Host name, or a unix socket directory (starts with `/`).
    pub host: String,
    pub port: u16,
    pub user: String,
    /// Serialised as `true`/`false` (whether one is set), never its value.
    pub password: Secret,
    pub dbname: String,
    /// libpq `sslmode` (`disable`, `prefer`, `require`, ...); Rewind connects without TLS
    /// to unix sockets and refuses `require`/`verify-*` it cannot honour.
    pub sslmode: Option<String>,
}

/// Where a connection attempt went and what the server or the system said.
#[derive(Debug)]
pub struct ConnectFailure {
    pub target: String,
    pub dbname: String,
    pub user: String,
    /// Whom Rewind connected as, and why ([`ConnectAs::describe`]).
    pub via: String,
    pub detail: String,
}

/// Errors opening a connection.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("cannot connect to PostgreSQL at {} (database `{}`, user `{}`, {}): {}. Check that the server is running and that the settings in database.yml (or --database-url) are right", .0.target, .0.dbname, .0.user, .0.via, .0.detail)]
    Connect(Box<ConnectFailure>),
    #[error("invalid database URL: {0} (expected postgresql://user[:password]@host[:port]/dbname or host=... key=value form)")]
    BadUrl(String),
    #[error("sslmode `{0}` needs TLS, which Rewind does not speak yet; connect over the unix socket (Omnibus default) or use sslmode=prefer/disable")]
    TlsRequired(String),
}

impl ConnSpec {
    /// Omnibus defaults: socket dir `/var/opt/gitlab/postgresql`, port 5432, user `gitlab`,
    /// database `gitlabhq_production`.
    pub fn omnibus_default() -> Self {
        ConnSpec {
            host: "/var/opt/gitlab/postgresql".into(),
            port: 5432,
            user: "gitlab".into(),
            password: Secret::default(),
            dbname: "gitlabhq_production".into(),
            sslmode: None,
        }
    }

    /// Where this connects, for messages: `socket /var/opt/gitlab/postgresql/.s.PGSQL.5432`
    /// or `host db.example:5432`. Never includes the password.
    pub fn target(&self) -> String {
        if self.host.starts_with('/') {
            format!(
                "socket {}/.s.PGSQL.{}",
                self.host.trim_end_matches('/'),
                self.port
            )
        } else {
            format!("host {}:{}", self.host, self.port)
        }
    }

    /// Parse `postgresql://user:pw@host:port/db?host=/sock&sslmode=...` or libpq key=value.
    pub fn from_url(url: &str) -> Result<Self, ConnError> {
        let cfg: postgres::Config = url.parse().map_err(|e: postgres::Error| {
            ConnError::BadUrl(redact_url_error(&e.to_string(), url))
        })?;
        let mut spec = ConnSpec::omnibus_default();
        if let Some(h) = cfg.get_hosts().first() {
            spec.host = match h {
                postgres::config::Host::Tcp(s) => s.clone(),
                postgres::config::Host::Unix(p) => p.display().to_string(),
            };
        }
        if let Some(p) = cfg.get_ports().first() {
            spec.port = *p;
        }
        if let Some(u) = cfg.get_user() {
            spec.user = u.to_string();
        }
        if let Some(pw) = cfg.get_password() {
            spec.password = Secret::new(Some(String::from_utf8_lossy(pw).into_owned()));
        }
        if let Some(d) = cfg.get_dbname() {
            spec.dbname = d.to_string();
        }
        Ok(spec)
    }

    /// Apply libpq environment variables and GitLab's backup overrides, in GitLab's order:
    /// `PG*` from database.yml is replaced by `GITLAB_BACKUP_<VAR>`, then by the per-database
    /// `GITLAB_BACKUP_<MAIN|CI>_<VAR>` (and the `GITLAB_OVERRIDE_` forms).
    pub fn apply_env(&mut self, connection_name: &str, env: &dyn Fn(&str) -> Option<String>) {
        let db = connection_name.to_ascii_uppercase();
        for var in [
            "PGHOST",
            "PGPORT",
            "PGUSER",
            "PGPASSWORD",
            "PGSSLMODE",
            "PGDATABASE",
        ] {
            let candidates = [
                format!("GITLAB_OVERRIDE_{db}_{var}"),
                format!("GITLAB_BACKUP_{db}_{var}"),
                format!("GITLAB_OVERRIDE_{var}"),
                format!("GITLAB_BACKUP_{var}"),
            ];
            let value = candidates
                .iter()
                .find_map(|k| env(k).filter(|v| !v.is_empty()));
            if let Some(v) = value {
                self.set_pg_var(var, v);
            }
        }
    }

    /// Apply plain libpq variables (`PGHOST`, ...) where present: used when no database.yml
    /// was found, as psql would.
    pub fn apply_libpq_env(&mut self, env: &dyn Fn(&str) -> Option<String>) {
        for var in [
            "PGHOST",
            "PGPORT",
            "PGUSER",
            "PGPASSWORD",
            "PGSSLMODE",
            "PGDATABASE",
        ] {
            if let Some(v) = env(var).filter(|v| !v.is_empty()) {
                self.set_pg_var(var, v);
            }
        }
    }

    fn set_pg_var(&mut self, var: &str, v: String) {
        match var {
            "PGHOST" => self.host = v,
            "PGPORT" => {
                if let Ok(p) = v.parse() {
                    self.port = p
                }
            }
            "PGUSER" => self.user = v,
            "PGPASSWORD" => self.password = Secret::new(Some(v)),
            "PGSSLMODE" => self.sslmode = Some(v),
            "PGDATABASE" => self.dbname = v,
            _ => {}
        }
    }

    /// The same settings for another database of the server (e.g. `postgres`).
    pub fn with_dbname(&self, dbname: &str) -> Self {
        ConnSpec {
            dbname: dbname.to_string(),
            ..self.clone()
        }
    }

    /// A `postgres::Config` for these settings.
    pub fn config(&self) -> Result<postgres::Config, ConnError> {
        if let Some(mode) = &self.sslmode {
            if matches!(mode.as_str(), "require" | "verify-ca" | "verify-full")
                && !self.host.starts_with('/')
            {
                return Err(ConnError::TlsRequired(mode.clone()));
            }
        }
        let mut cfg = postgres::Config::new();
        cfg.host(&self.host)
            .port(self.port)
            .user(&self.user)
            .dbname(&self.dbname)
            .application_name("rewind")
            .connect_timeout(Duration::from_secs(10));
        if let Some(pw) = self.password.expose() {
            cfg.password(pw);
        }
        Ok(cfg)
    }

    /// Whom Rewind connects as for these settings: as root over a unix socket whose server
    /// authenticates by peer, the OS user the server's map admits for the role (see
    /// [`crate::pg::peer`]); otherwise this process's user.
    pub fn connect_as(&self) -> ConnectAs {
        peer::resolve(&self.host, self.port, &self.dbname, &self.user)
    }

    /// Open a connection; errors name the socket/host, database, user and the OS user
    /// connected as, never the password.
    pub fn connect(&self) -> Result<postgres::Client, ConnError> {
        let cfg = self.config()?;
        let who = self.connect_as();
        let err = |detail: String| {
            ConnError::Connect(Box::new(ConnectFailure {
                target: self.target(),
                dbname: self.dbname.clone(),
                user: self.user.clone(),
                via: who.describe(),
                detail,
            }))
        };
        let result = match who.os_user() {
            Some(u) => peer::on_thread_as(u, || cfg.connect(postgres::NoTls))
                .map_err(|e| err(e.to_string()))?,
            None => cfg.connect(postgres::NoTls),
        };
        result.map_err(|e| err(describe_pg_error(&e)))
    }

    /// A client program (`pg_dump`, `psql`, ...) set up for these settings: argv only, the
    /// connection in libpq's environment (`PGPASSWORD` only when a password is set; inherited
    /// service and option variables removed), run as the OS user [`ConnSpec::connect_as`]
    /// names.
    pub fn client_command(&self, exe: &std::path::Path, app_name: &str) -> Command {
        let mut cmd = Command::new(exe);
        for var in [
            "PGSERVICE",
            "PGSERVICEFILE",
            "PGHOSTADDR",
            "PGOPTIONS",
            "PGPASSWORD",
            "PGSSLMODE",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("PGHOST", &self.host)
            .env("PGPORT", self.port.to_string())
            .env("PGUSER", &self.user)
            .env("PGDATABASE", &self.dbname)
            .env("PGAPPNAME", app_name);
        if let Some(pw) = self.password.expose() {
            cmd.env("PGPASSWORD", pw);
        }
        if let Some(mode) = &self.sslmode {
            cmd.env("PGSSLMODE", mode);
        }
        self.connect_as().apply(&mut cmd);
        cmd
    }
}

/// A one-line description of a `postgres` error, with the server's message when there is one.
pub fn describe_pg_error(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut s = format!("{}: {}", db.severity(), db.message());
        if let Some(d) = db.detail() {
            s.push_str(&format!(" ({d})"));
        }
        return s;
    }
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = inner.source();
    }
    s
}

fn redact_url_error(msg: &str, url: &str) -> String {
    // The parser's messages do not echo the URL; still, never let a password through.
    if let Some(at) = url.find('@') {
        if let Some(colon) = url[..at].rfind(':') {
            let pw = &url[colon + 1..at];
            if !pw.is_empty() && !pw.contains('/') {
                return msg.replace(pw, "<redacted>");
            }
        }
    }
    msg.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn password_never_prints() {
        let mut s = ConnSpec::omnibus_default();
        s.password = Secret::new(Some("hunter2".into()));
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(!serde_json::to_string(&s).unwrap().contains("hunter2"));
        assert_eq!(
            s.target(),
            "socket /var/opt/gitlab/postgresql/.s.PGSQL.5432"
        );
    }

    #[test]
    fn url_forms() {
        let s = ConnSpec::from_url("postgresql://gitlab:pw@db.example:5433/gitlabhq_production")
            .unwrap();
        assert_eq!(
            (s.host.as_str(), s.port, s.user.as_str(), s.dbname.as_str()),
            ("db.example", 5433, "gitlab", "gitlabhq_production")
        );
        assert_eq!(s.password.expose(), Some("pw"));
        let s = ConnSpec::from_url("host=/tmp/sock port=5999 dbname=x user=y").unwrap();
        assert_eq!((s.host.as_str(), s.port), ("/tmp/sock", 5999));
    }

    #[test]
    fn gitlab_backup_overrides_win_per_database() {
        let env: HashMap<&str, &str> = [
            ("GITLAB_BACKUP_PGHOST", "shared-host"),
            ("GITLAB_BACKUP_CI_PGHOST", "ci-host"),
            ("GITLAB_BACKUP_PGPORT", "6432"),
        ]
        .into();
        let get = |k: &str| env.get(k).map(|v| v.to_string());
        let mut main = ConnSpec::omnibus_default();
        main.apply_env("main", &get);
        assert_eq!((main.host.as_str(), main.port), ("shared-host", 6432));
        let mut ci = ConnSpec::omnibus_default();
        ci.apply_env("ci", &get);
        assert_eq!(ci.host, "ci-host");
    }
}
