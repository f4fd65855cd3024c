//! How Rewind connects to a GitLab database.
//!
//! Settings come from GitLab's `database.yml` (see [`crate::detect`]), from
//! `--database-url`, and from the environment the way GitLab's backup tooling reads it:
//! libpq variables (`PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`, `PGDATABASE`, `PGSSLMODE`,
//! `PGSSLROOTCERT`, `PGSSLCERT`, `PGSSLKEY`, `PGSSLCRL`, `PGCONNECT_TIMEOUT`, `PGAPPNAME`)
//! and the overrides `GITLAB_BACKUP_<VAR>` / `GITLAB_BACKUP_<MAIN|CI>_<VAR>` (also with the
//! `GITLAB_OVERRIDE_` prefix). The password is kept in a [`Secret`] that never prints.
//!
//! TCP connections use TLS as libpq's `sslmode` says (see [`crate::pg::tls`]); unix-socket
//! connections never do, as with libpq.

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
    /// libpq `sslmode` (`disable`, `allow`, `prefer`, `require`, `verify-ca`,
    /// `verify-full`; unset means `prefer`). Ignored for unix sockets, as libpq does.
    pub sslmode: Option<String>,
    /// libpq `sslrootcert`: CA certificate(s) the server's certificate must chain to, or
    /// `system`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sslrootcert: Option<String>,
    /// libpq `sslcert`: client certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sslcert: Option<String>,
    /// libpq `sslkey`: the client certificate's private key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sslkey: Option<String>,
    /// libpq `sslcrl`: certificate revocation list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sslcrl: Option<String>,
    /// libpq `connect_timeout` in seconds (unset: Rewind's 10 s; 0: none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<u64>,
    /// libpq `application_name` (unset: Rewind names its own connections).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub application_name: Option<String>,
    /// libpq `options` (server settings sent at connection start, e.g. `-c ...`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub options: Option<String>,
    /// libpq `channel_binding` when not the default (`disable`, `require`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel_binding: Option<String>,
    /// libpq `target_session_attrs` when not the default (`read-write`, `read-only`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_session_attrs: Option<String>,
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
    #[error("TLS settings for {target}: {detail}")]
    Tls { target: String, detail: String },
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
            sslrootcert: None,
            sslcert: None,
            sslkey: None,
            sslcrl: None,
            connect_timeout: None,
            application_name: None,
            options: None,
            channel_binding: None,
            target_session_attrs: None,
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

    /// Parse `postgresql://user:pw@host:port/db?host=/sock&sslmode=...` or libpq key=value;
    /// TLS settings, `connect_timeout` and `application_name` the URL leaves out come from
    /// libpq's environment (`PGSSLMODE`, ...), as libpq would take them.
    pub fn from_url(url: &str) -> Result<Self, ConnError> {
        Self::from_url_with_env(url, &|k| std::env::var(k).ok())
    }

    /// [`ConnSpec::from_url`] with the environment given. Parameters that matter are kept
    /// (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`, `sslcrl`, `connect_timeout`,
    /// `application_name`, `options`, `channel_binding`, `target_session_attrs`); an
    /// unknown parameter, a value libpq would refuse, or several hosts are errors.
    pub fn from_url_with_env(
        url: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConnError> {
        let (rest, extra) = super::url::take_params(url, TLS_PARAMS)
            .map_err(|e| ConnError::BadUrl(redact_url_error(&e, url)))?;
        let cfg: postgres::Config = rest.parse().map_err(|e: postgres::Error| {
            ConnError::BadUrl(redact_url_error(&describe_pg_error(&e), url))
        })?;
        if cfg.get_hosts().len() > 1 {
            return Err(ConnError::BadUrl(
                "it names several hosts; Rewind restores into one server: give the primary's host"
                    .into(),
            ));
        }
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
        if let Some(t) = cfg.get_connect_timeout() {
            spec.connect_timeout = Some(t.as_secs());
        }
        spec.application_name = cfg.get_application_name().map(str::to_string);
        spec.options = cfg.get_options().map(str::to_string);
        spec.channel_binding = match cfg.get_channel_binding() {
            postgres::config::ChannelBinding::Disable => Some("disable".into()),
            postgres::config::ChannelBinding::Require => Some("require".into()),
            _ => None,
        };
        spec.target_session_attrs = match cfg.get_target_session_attrs() {
            postgres::config::TargetSessionAttrs::ReadWrite => Some("read-write".into()),
            postgres::config::TargetSessionAttrs::ReadOnly => Some("read-only".into()),
            _ => None,
        };
        for (k, v) in extra {
            match k.as_str() {
                "sslmode" => spec.sslmode = Some(v),
                "sslrootcert" => spec.sslrootcert = Some(v),
                "sslcert" => spec.sslcert = Some(v),
                "sslkey" => spec.sslkey = Some(v),
                "sslcrl" => spec.sslcrl = Some(v),
                _ => {}
            }
        }
        // libpq: the environment supplies what the connection string does not.
        for (var, unset) in [
            ("PGSSLMODE", spec.sslmode.is_none()),
            ("PGSSLROOTCERT", spec.sslrootcert.is_none()),
            ("PGSSLCERT", spec.sslcert.is_none()),
            ("PGSSLKEY", spec.sslkey.is_none()),
            ("PGSSLCRL", spec.sslcrl.is_none()),
            ("PGCONNECT_TIMEOUT", spec.connect_timeout.is_none()),
            ("PGAPPNAME", spec.application_name.is_none()),
        ] {
            if unset {
                if let Some(v) = env(var).filter(|v| !v.is_empty()) {
                    spec.set_pg_var(var, v);
                }
            }
        }
        spec.tls_settings_valid()?;
        Ok(spec)
    }

    /// The TLS settings as [`crate::pg::tls`] takes them.
    pub fn tls_settings(&self) -> super::tls::TlsSettings<'_> {
        super::tls::TlsSettings {
            sslmode: self.sslmode.as_deref(),
            sslrootcert: self.sslrootcert.as_deref(),
            sslcert: self.sslcert.as_deref(),
            sslkey: self.sslkey.as_deref(),
            sslcrl: self.sslcrl.as_deref(),
        }
    }

    /// Refuse an `sslmode` libpq would refuse (a typo must not mean plain text).
    pub fn tls_settings_valid(&self) -> Result<(), ConnError> {
        super::tls::effective_mode(&self.tls_settings())
            .map(|_| ())
            .map_err(|detail| ConnError::Tls {
                target: self.target(),
                detail,
            })
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
            "PGSSLROOTCERT",
            "PGSSLCERT",
            "PGSSLKEY",
            "PGSSLCRL",
            "PGCONNECT_TIMEOUT",
            "PGAPPNAME",
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
            "PGSSLROOTCERT",
            "PGSSLCERT",
            "PGSSLKEY",
            "PGSSLCRL",
            "PGCONNECT_TIMEOUT",
            "PGAPPNAME",
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
            "PGSSLROOTCERT" => self.sslrootcert = Some(v),
            "PGSSLCERT" => self.sslcert = Some(v),
            "PGSSLKEY" => self.sslkey = Some(v),
            "PGSSLCRL" => self.sslcrl = Some(v),
            "PGCONNECT_TIMEOUT" => {
                if let Ok(t) = v.trim().parse() {
                    self.connect_timeout = Some(t)
                }
            }
            "PGAPPNAME" => self.application_name = Some(v),
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

    /// Whether this connects over a unix socket (never with TLS).
    pub fn is_socket(&self) -> bool {
        self.host.starts_with('/')
    }

    /// A `postgres::Config` for these settings (without TLS: see [`ConnSpec::connect`]).
    pub fn config(&self) -> Result<postgres::Config, ConnError> {
        self.tls_settings_valid()?;
        let mut cfg = postgres::Config::new();
        cfg.host(&self.host)
            .port(self.port)
            .user(&self.user)
            .dbname(&self.dbname)
            .application_name(self.application_name.as_deref().unwrap_or("rewind"))
            .ssl_mode(postgres::config::SslMode::Disable);
        // libpq: 0 waits for ever, and less than 2 s counts as 2 s.
        match self.connect_timeout {
            None => {
                cfg.connect_timeout(Duration::from_secs(10));
            }
            Some(0) => {}
            Some(t) => {
                cfg.connect_timeout(Duration::from_secs(t.max(2)));
            }
        }
        if let Some(o) = &self.options {
            cfg.options(o);
        }
        match self.channel_binding.as_deref() {
            Some("disable") => {
                cfg.channel_binding(postgres::config::ChannelBinding::Disable);
            }
            Some("require") => {
                cfg.channel_binding(postgres::config::ChannelBinding::Require);
            }
            _ => {}
        }
        match self.target_session_attrs.as_deref() {
            Some("read-write") => {
                cfg.target_session_attrs(postgres::config::TargetSessionAttrs::ReadWrite);
            }
            Some("read-only") => {
                cfg.target_session_attrs(postgres::config::TargetSessionAttrs::ReadOnly);
            }
            _ => {}
        }
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
        if self.is_socket() {
            // libpq never uses TLS on a unix socket, whatever sslmode says.
            let result = match who.os_user() {
                Some(u) => peer::on_thread_as(u, || cfg.connect(postgres::NoTls))
                    .map_err(|e| err(e.to_string()))?,
                None => cfg.connect(postgres::NoTls),
            };
            return result.map_err(|e| err(describe_pg_error(&e)));
        }
        let plan = super::tls::plan(&self.tls_settings()).map_err(|detail| ConnError::Tls {
            target: self.target(),
            detail,
        })?;
        self.connect_tcp(cfg, plan).map_err(err)
    }

    /// libpq's order of attempts: `allow` tries plain text first and TLS when the server
    /// refuses; `prefer` the other way round; `require` and `verify-*` TLS only.
    fn connect_tcp(
        &self,
        mut cfg: postgres::Config,
        plan: super::tls::TlsPlan,
    ) -> Result<postgres::Client, String> {
        use super::tls::SslMode as M;
        use postgres::config::SslMode as Wire;
        let tls_hint = |e: &postgres::Error| {
            let d = describe_pg_error(e);
            if is_tls_failure(&d) {
                format!(
                    "{d} (sslmode={}; checked: {}{})",
                    plan.mode,
                    plan.checks,
                    if plan.mode == M::VerifyFull {
                        format!("; the certificate must name `{}`", self.host)
                    } else {
                        String::new()
                    }
                )
            } else {
                d
            }
        };
        let Some(connector) = plan.connector.clone() else {
            return cfg
                .connect(postgres::NoTls)
                .map_err(|e| describe_pg_error(&e));
        };
        let retry =
            |e: &postgres::Error| e.as_db_error().is_some() || is_tls_failure(&e.to_string());
        match plan.mode {
            // Both attempts' errors are told: the first is often the one that explains.
            M::Allow => match cfg.connect(postgres::NoTls) {
                Ok(c) => Ok(c),
                Err(plain) if plain.as_db_error().is_some() => cfg
                    .ssl_mode(Wire::Require)
                    .connect(connector)
                    .map_err(|tls| {
                        format!(
                            "without TLS: {}; then with TLS: {}",
                            describe_pg_error(&plain),
                            tls_hint(&tls)
                        )
                    }),
                Err(e) => Err(describe_pg_error(&e)),
            },
            M::Prefer => match cfg.ssl_mode(Wire::Prefer).connect(connector) {
                Ok(c) => Ok(c),
                Err(tls) if retry(&tls) => cfg
                    .ssl_mode(Wire::Disable)
                    .connect(postgres::NoTls)
                    .map_err(|plain| {
                        format!(
                            "with TLS: {}; then without TLS: {}",
                            tls_hint(&tls),
                            describe_pg_error(&plain)
                        )
                    }),
                Err(e) => Err(tls_hint(&e)),
            },
            _ => cfg
                .ssl_mode(Wire::Require)
                .connect(connector)
                .map_err(|e| tls_hint(&e)),
        }
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
            "PGSSLROOTCERT",
            "PGSSLCERT",
            "PGSSLKEY",
            "PGSSLCRL",
            "PGCONNECT_TIMEOUT",
            "PGCHANNELBINDING",
            "PGTARGETSESSIONATTRS",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("PGHOST", &self.host)
            .env("PGPORT", self.port.to_string())
            .env("PGUSER", &self.user)
            .env("PGDATABASE", &self.dbname)
            .env(
                "PGAPPNAME",
                self.application_name.as_deref().unwrap_or(app_name),
            );
        if let Some(pw) = self.password.expose() {
            cmd.env("PGPASSWORD", pw);
        }
        for (var, value) in [
            ("PGSSLMODE", &self.sslmode),
            ("PGSSLROOTCERT", &self.sslrootcert),
            ("PGSSLCERT", &self.sslcert),
            ("PGSSLKEY", &self.sslkey),
            ("PGSSLCRL", &self.sslcrl),
            ("PGOPTIONS", &self.options),
            ("PGCHANNELBINDING", &self.channel_binding),
            ("PGTARGETSESSIONATTRS", &self.target_session_attrs),
        ] {
            if let Some(v) = value {
                cmd.env(var, v);
            }
        }
        if let Some(t) = self.connect_timeout {
            cmd.env("PGCONNECT_TIMEOUT", t.to_string());
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

/// The libpq parameters Rewind reads itself (the `postgres` crate does not know them).
const TLS_PARAMS: &[&str] = &["sslmode", "sslrootcert", "sslcert", "sslkey", "sslcrl"];

/// Whether a connection error comes from TLS (handshake or certificate).
fn is_tls_failure(detail: &str) -> bool {
    detail.contains("TLS handshake")
        || detail.contains("invalid peer certificate")
        || detail.contains("server does not support TLS")
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
    fn url_tls_params_and_libpq_env() {
        let env: HashMap<&str, &str> = [
            ("PGSSLMODE", "require"),
            ("PGSSLCERT", "/etc/client.crt"),
            ("PGCONNECT_TIMEOUT", "7"),
        ]
        .into();
        let get = |k: &str| env.get(k).map(|v| v.to_string());
        let s = ConnSpec::from_url_with_env(
            "postgresql://u:hunter2@db.example/x?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&application_name=me",
            &get,
        )
        .unwrap();
        // The URL wins; the environment fills in the rest.
        assert_eq!(s.sslmode.as_deref(), Some("verify-full"));
        assert_eq!(s.sslrootcert.as_deref(), Some("/etc/ca.pem"));
        assert_eq!(s.sslcert.as_deref(), Some("/etc/client.crt"));
        assert_eq!(s.connect_timeout, Some(7));
        assert_eq!(s.application_name.as_deref(), Some("me"));
        assert_eq!(s.password.expose(), Some("hunter2"));
        let s =
            ConnSpec::from_url_with_env("host=db sslmode=verify-ca dbname=x", &|_| None).unwrap();
        assert_eq!(
            (s.host.as_str(), s.sslmode.as_deref()),
            ("db", Some("verify-ca"))
        );
        // An sslmode libpq does not know is refused, never ignored.
        let e =
            ConnSpec::from_url_with_env("postgresql://u:hunter2@db/x?sslmode=requir", &|_| None)
                .unwrap_err()
                .to_string();
        assert!(e.contains("requir") && !e.contains("hunter2"), "{e}");
        let e = ConnSpec::from_url_with_env("postgresql://u:hunter2@db/x?sslfoo=1", &|_| None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("sslfoo") && !e.contains("hunter2"), "{e}");
        // Settings that matter to security or to which server is used are kept, not dropped.
        let s = ConnSpec::from_url_with_env(
            "postgresql://u@db.example/x?channel_binding=require&target_session_attrs=read-write",
            &|_| None,
        )
        .unwrap();
        assert_eq!(s.channel_binding.as_deref(), Some("require"));
        assert_eq!(s.target_session_attrs.as_deref(), Some("read-write"));
        let cmd = s.client_command(std::path::Path::new("/bin/true"), "x");
        assert!(cmd
            .get_envs()
            .any(|(k, v)| k == "PGCHANNELBINDING" && v == Some("require".as_ref())));
        let e = ConnSpec::from_url_with_env("postgresql://u:hunter2@a,b/x", &|_| None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("several hosts") && !e.contains("hunter2"), "{e}");
    }

    #[test]
    fn client_command_carries_the_tls_settings() {
        let mut s = ConnSpec::from_url_with_env(
            "postgresql://u@db.example/x?sslmode=verify-full&sslrootcert=/ca.pem&sslcert=/c.crt&sslkey=/c.key&connect_timeout=4",
            &|_| None,
        )
        .unwrap();
        s.password = Secret::new(Some("pw".into()));
        let cmd = s.client_command(std::path::Path::new("/bin/true"), "rewind-x");
        let envs: HashMap<String, Option<String>> = cmd
            .get_envs()
            .map(|(k, v)| {
                (
                    k.to_string_lossy().into(),
                    v.map(|v| v.to_string_lossy().into()),
                )
            })
            .collect();
        for (k, v) in [
            ("PGSSLMODE", "verify-full"),
            ("PGSSLROOTCERT", "/ca.pem"),
            ("PGSSLCERT", "/c.crt"),
            ("PGSSLKEY", "/c.key"),
            ("PGCONNECT_TIMEOUT", "4"),
            ("PGAPPNAME", "rewind-x"),
        ] {
            assert_eq!(envs.get(k), Some(&Some(v.to_string())), "{k}");
        }
        // Inherited settings Rewind did not choose are removed.
        assert_eq!(envs.get("PGSSLCRL"), Some(&None));
        assert!(cmd.get_args().all(|a| a != "pw"));
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
