//! Reaching a server that authenticates local connections by *peer*, as Omnibus's bundled
//! PostgreSQL does.
//!
//! Omnibus listens on a unix socket only, with `local all all peer map=gitlab` in
//! `pg_hba.conf`; its `pg_ident.conf` maps OS user `git` to role `gitlab` and every other
//! OS user to the role of the same name. Rewind runs as root, which that map does not
//! admit, so it must connect as the OS user the server's map allows for the role, exactly
//! as GitLab's own tools do (`gitlab-rake` runs as `git`, `gitlab-psql` as `gitlab-psql`).
//!
//! [`resolve`] works out whom to connect as: it finds the server's data directory from the
//! socket's lock file (`.s.PGSQL.<port>.lock`, second line), its `pg_hba.conf` and
//! `pg_ident.conf` (also where `postmaster.opts` names another `config_file`, as Debian's
//! clusters do), and reads the first `local` rule that matches the database and role. When
//! those files cannot be read it falls back to Omnibus's defaults. [`connect_as`] then opens
//! the connection on a short-lived thread whose own credentials are switched to that user
//! with the raw `setresuid`/`setresgid` system calls: Linux keeps credentials per thread,
//! and the kernel records the connecting thread's effective uid as the socket's peer
//! credentials (`SO_PEERCRED`), which is what the server checks. The rest of the process
//! keeps running as root, and the thread ends right after the connection is made.
//! Client programs (`pg_dump`, `psql`) run as that user through [`ConnectAs::apply`].

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// An OS account of this host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OsUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    #[serde(skip)]
    pub home: PathBuf,
}

impl OsUser {
    /// Look an account up by name (`None` when there is none).
    pub fn lookup(name: &str) -> Option<OsUser> {
        let u = nix::unistd::User::from_name(name).ok().flatten()?;
        Some(OsUser {
            name: u.name,
            uid: u.uid.as_raw(),
            gid: u.gid.as_raw(),
            home: u.dir,
        })
    }
}

/// Whom Rewind connects as, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "as", rename_all = "snake_case")]
pub enum ConnectAs {
    /// As this process's own user (not root, a TCP host, or a rule other than peer).
    Process { why: String },
    /// As another OS user, whom the server's peer rule admits for the role.
    OsUser { user: OsUser, why: String },
}

impl ConnectAs {
    /// The OS user to switch to, if any.
    pub fn os_user(&self) -> Option<&OsUser> {
        match self {
            ConnectAs::OsUser { user, .. } => Some(user),
            ConnectAs::Process { .. } => None,
        }
    }

    /// Why this identity was chosen.
    pub fn why(&self) -> &str {
        match self {
            ConnectAs::Process { why } | ConnectAs::OsUser { why, .. } => why,
        }
    }

    /// One line for `rewind detect` and the journal.
    pub fn describe(&self) -> String {
        match self {
            ConnectAs::Process { why } => format!("as this process's user ({why})"),
            ConnectAs::OsUser { user, why } => format!("as OS user {} ({why})", user.name),
        }
    }

    /// Make a client program (`pg_dump`, `psql`) run as this identity: uid, gid (std drops
    /// the supplementary groups), `HOME`/`USER`/`LOGNAME` of that user, and a working
    /// directory it can enter.
    pub fn apply(&self, cmd: &mut std::process::Command) {
        use std::os::unix::process::CommandExt;
        if let Some(u) = self.os_user() {
            cmd.uid(u.uid)
                .gid(u.gid)
                .current_dir("/")
                .env("HOME", &u.home)
                .env("USER", &u.name)
                .env("LOGNAME", &u.name);
        }
    }
}

/// Largest configuration file read (pg_hba.conf, pg_ident.conf, postgresql.conf).
const MAX_CONF: u64 = 4 << 20;

fn read_small(path: &Path) -> std::io::Result<String> {
    let f = fs::File::open(path)?;
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    let mut s = String::new();
    f.take(MAX_CONF).read_to_string(&mut s)?;
    Ok(s)
}

/// Where the server keeps its authentication files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthFiles {
    pub data_dir: PathBuf,
    pub hba: PathBuf,
    pub ident: PathBuf,
}

/// Find the authentication files of the server listening on `socket_dir`/`port`, from its
/// socket lock file. `None` when the lock file is missing or unreadable.
pub fn auth_files(socket_dir: &Path, port: u16) -> Option<AuthFiles> {
    let lock = socket_dir.join(format!(".s.PGSQL.{port}.lock"));
    let text = read_small(&lock).ok()?;
    let data_dir = PathBuf::from(text.lines().nth(1)?.trim());
    if !data_dir.is_absolute() {
        return None;
    }
    // A cluster started with `-c config_file=...` (Debian) keeps its configuration elsewhere.
    let config_file = read_small(&data_dir.join("postmaster.opts"))
        .ok()
        .and_then(|opts| opts_config_file(&opts))
        .unwrap_or_else(|| data_dir.join("postgresql.conf"));
    let conf = read_small(&config_file).unwrap_or_default();
    let conf_dir = config_file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| data_dir.clone());
    let setting = |key: &str| {
        conf_setting(&conf, key).map(|v| {
            let p = PathBuf::from(v);
            if p.is_absolute() {
                p
            } else {
                conf_dir.join(p)
            }
        })
    };
    Some(AuthFiles {
        hba: setting("hba_file").unwrap_or_else(|| data_dir.join("pg_hba.conf")),
        ident: setting("ident_file").unwrap_or_else(|| data_dir.join("pg_ident.conf")),
        data_dir,
    })
}

/// `config_file=...` from a `postmaster.opts` line (`"-c" "config_file=/etc/..."`).
fn opts_config_file(opts: &str) -> Option<PathBuf> {
    let i = opts.find("config_file=")?;
    let rest = &opts[i + "config_file=".len()..];
    let v: String = rest.chars().take_while(|c| *c != '"').collect();
    let v = v.trim();
    (!v.is_empty()).then(|| PathBuf::from(v))
}

/// The last value of `key` in a postgresql.conf (`key = 'value'` or `key value`).
fn conf_setting(conf: &str, key: &str) -> Option<String> {
    let mut found = None;
    for line in conf.lines() {
        let line = strip_comment(line);
        let line = line.trim();
        let Some(rest) = line.strip_prefix(key) else {
            continue;
        };
        let rest = rest.trim_start();
        if !(rest.starts_with('=') || rest.starts_with('\'')) {
            continue;
        }
        let v = rest.trim_start_matches('=').trim();
        let v = v
            .strip_prefix('\'')
            .and_then(|v| v.strip_suffix('\''))
            .unwrap_or(v);
        found = Some(v.replace("''", "'"));
    }
    found
}

fn strip_comment(line: &str) -> &str {
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' | '\'' => quoted = !quoted,
            '#' if !quoted => return &line[..i],
            _ => {}
        }
    }
    line
}

/// Split a pg_hba/pg_ident line into fields; each field is a list of comma-separated
/// tokens, a token remembering whether it was quoted (a quoted `all` is a name).
fn fields(line: &str) -> Vec<Vec<(String, bool)>> {
    let mut out: Vec<Vec<(String, bool)>> = Vec::new();
    let mut cur: Vec<(String, bool)> = Vec::new();
    let mut tok = String::new();
    let mut quoted_tok = false;
    let mut in_quotes = false;
    let mut pending_comma = false;
    let flush_tok = |cur: &mut Vec<(String, bool)>, tok: &mut String, q: &mut bool| {
        if !tok.is_empty() || *q {
            cur.push((std::mem::take(tok), *q));
        }
        *q = false;
    };
    for c in strip_comment_hba(line).chars() {
        if in_quotes {
            if c == '"' {
                in_quotes = false;
            } else {
                tok.push(c);
            }
            continue;
        }
        match c {
            '"' => {
                in_quotes = true;
                quoted_tok = true;
                pending_comma = false;
            }
            ',' => {
                flush_tok(&mut cur, &mut tok, &mut quoted_tok);
                pending_comma = true;
            }
            c if c.is_whitespace() => {
                if !tok.is_empty() || quoted_tok {
                    flush_tok(&mut cur, &mut tok, &mut quoted_tok);
                    if !pending_comma {
                        out.push(std::mem::take(&mut cur));
                    }
                } else if !pending_comma && !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => {
                pending_comma = false;
                tok.push(c);
            }
        }
    }
    flush_tok(&mut cur, &mut tok, &mut quoted_tok);
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn strip_comment_hba(line: &str) -> &str {
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '#' if !quoted => return &line[..i],
            _ => {}
        }
    }
    line
}

/// The first `local` rule of a pg_hba.conf that applies to `database` and `role`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HbaRule {
    /// 1-based line number.
    pub line: usize,
    pub text: String,
    pub method: String,
    /// `map=` option of a peer/ident rule.
    pub map: Option<String>,
}

/// Find the first `local` line matching `database` and `role` (as the server does: first
/// match wins). Group (`+role`) and `samerole` entries are taken as matching, since only
/// the server can tell; `@file` entries are skipped.
pub fn hba_rule(hba: &str, database: &str, role: &str) -> Option<HbaRule> {
    for (n, raw) in hba.lines().enumerate() {
        let f = fields(raw);
        if f.len() < 4 {
            continue;
        }
        let Some((kind, false)) = f[0].first().cloned() else {
            continue;
        };
        if kind != "local" {
            continue;
        }
        let db_ok = f[1].iter().any(|(t, q)| match (t.as_str(), q) {
            (_, true) => t == database,
            ("all", false) => true,
            ("sameuser", false) => database == role,
            ("samerole" | "samegroup", false) => true,
            ("replication", false) => false,
            (t, false) if t.starts_with('@') => false,
            (t, false) if t.starts_with('/') => regex_match(&t[1..], database),
            (t, false) => t == database,
        });
        let user_ok = f[2].iter().any(|(t, q)| match (t.as_str(), q) {
            (_, true) => t == role,
            ("all", false) => true,
            (t, false) if t.starts_with('+') => true,
            (t, false) if t.starts_with('@') => false,
            (t, false) if t.starts_with('/') => regex_match(&t[1..], role),
            (t, false) => t == role,
        });
        if !(db_ok && user_ok) {
            continue;
        }
        let method = f[3].first().map(|t| t.0.clone()).unwrap_or_default();
        let map = f[4..]
            .iter()
            .flatten()
            .find_map(|(t, _)| t.strip_prefix("map=").map(str::to_string));
        return Some(HbaRule {
            line: n + 1,
            text: raw.trim().to_string(),
            method,
            map,
        });
    }
    None
}

fn regex_match(re: &str, value: &str) -> bool {
    regex::Regex::new(re).is_ok_and(|r| r.is_match(value))
}

/// An entry of pg_ident.conf that lets `os_user` log in as a role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentMatch {
    pub line: usize,
    pub os_user: String,
}

/// OS users the ident map `map` admits for `role`, in file order. Exact entries give their
/// system user; a regular-expression entry (`/^(.*)$  \1`) gives the OS user of the same
/// name as the role when the expression maps that name to the role.
pub fn ident_candidates(ident: &str, map: &str, role: &str) -> Vec<IdentMatch> {
    let mut out = Vec::new();
    for (n, raw) in ident.lines().enumerate() {
        let f = fields(raw);
        if f.len() < 3 {
            continue;
        }
        let (Some(m), Some(sys), Some(db)) = (f[0].first(), f[1].first(), f[2].first()) else {
            continue;
        };
        if m.0 != map {
            continue;
        }
        let db_all = !db.1 && db.0 == "all";
        if let Some(re) = sys.0.strip_prefix('/').filter(|_| !sys.1) {
            let Ok(r) = regex::Regex::new(re) else {
                continue;
            };
            if let Some(caps) = r.captures(role) {
                let mapped = match caps.get(1) {
                    Some(c) => db.0.replace("\\1", c.as_str()),
                    None => db.0.clone(),
                };
                if db_all || mapped == role {
                    out.push(IdentMatch {
                        line: n + 1,
                        os_user: role.to_string(),
                    });
                }
            }
        } else if db_all || db.0 == role {
            out.push(IdentMatch {
                line: n + 1,
                os_user: sys.0.clone(),
            });
        }
    }
    out
}

/// Omnibus's role for the GitLab application and the OS user its ident map admits for it.
pub const OMNIBUS_APP_ROLE: &str = "gitlab";
pub const OMNIBUS_APP_OS_USER: &str = "git";

/// Whom to connect as for `role` on the server at `host` (a socket directory or a host
/// name), `port`, `database`.
pub fn resolve(host: &str, port: u16, database: &str, role: &str) -> ConnectAs {
    if !nix::unistd::geteuid().is_root() {
        return ConnectAs::Process {
            why: "not running as root".into(),
        };
    }
    if !host.starts_with('/') {
        return ConnectAs::Process {
            why: format!("TCP connection to {host}"),
        };
    }
    resolve_with(
        auth_files(Path::new(host), port).as_ref(),
        database,
        role,
        &|n| OsUser::lookup(n),
    )
}

/// [`resolve`] on given files and account lookup (testable without root).
pub fn resolve_with(
    files: Option<&AuthFiles>,
    database: &str,
    role: &str,
    lookup: &dyn Fn(&str) -> Option<OsUser>,
) -> ConnectAs {
    let hba_text = files.and_then(|f| read_small(&f.hba).ok().map(|t| (f, t)));
    let Some((files, hba)) = hba_text else {
        return omnibus_default(role, lookup, files.map(|f| f.hba.as_path()));
    };
    let Some(rule) = hba_rule(&hba, database, role) else {
        return ConnectAs::Process {
            why: format!(
                "no `local` rule in {} matches database {database}, role {role}",
                files.hba.display()
            ),
        };
    };
    let where_rule = format!(
        "{} line {}: `{}`",
        files.hba.display(),
        rule.line,
        rule.text
    );
    if rule.method != "peer" && rule.method != "ident" {
        return ConnectAs::Process { why: where_rule };
    }
    let Some(map) = &rule.map else {
        return match lookup(role) {
            Some(user) if user.uid != 0 => ConnectAs::OsUser {
                why: format!("{where_rule}, the OS user of the role's name"),
                user,
            },
            _ => ConnectAs::Process {
                why: format!("{where_rule}, but there is no OS user {role}"),
            },
        };
    };
    let ident = match read_small(&files.ident) {
        Ok(t) => t,
        Err(e) => {
            return omnibus_default(role, lookup, Some(&files.ident)).with_note(&format!(
                "{where_rule}; {} not readable: {e}",
                files.ident.display()
            ))
        }
    };
    for m in ident_candidates(&ident, map, role) {
        if let Some(user) = lookup(&m.os_user).filter(|u| u.uid != 0) {
            return ConnectAs::OsUser {
                why: format!(
                    "{where_rule}; {} line {} maps OS user {} to role {role}",
                    files.ident.display(),
                    m.line,
                    user.name
                ),
                user,
            };
        }
    }
    ConnectAs::Process {
        why: format!(
            "{where_rule}, but map `{map}` in {} admits no existing OS user for role {role}",
            files.ident.display()
        ),
    }
}

impl ConnectAs {
    fn with_note(self, note: &str) -> ConnectAs {
        match self {
            ConnectAs::Process { why } => ConnectAs::Process {
                why: format!("{note}; {why}"),
            },
            ConnectAs::OsUser { user, why } => ConnectAs::OsUser {
                user,
                why: format!("{note}; {why}"),
            },
        }
    }
}

/// Omnibus's defaults when the server's files cannot be read: `git` for `gitlab`, the OS
/// user of the role's name otherwise.
fn omnibus_default(
    role: &str,
    lookup: &dyn Fn(&str) -> Option<OsUser>,
    unread: Option<&Path>,
) -> ConnectAs {
    let why_files = match unread {
        Some(p) => format!("{} not readable", p.display()),
        None => "the server's pg_hba.conf was not found".to_string(),
    };
    let candidate = if role == OMNIBUS_APP_ROLE {
        OMNIBUS_APP_OS_USER
    } else {
        role
    };
    match lookup(candidate).filter(|u| u.uid != 0) {
        Some(user) => ConnectAs::OsUser {
            why: format!(
                "{why_files}; Omnibus's peer map admits OS user {} for role {role}",
                user.name
            ),
            user,
        },
        None => ConnectAs::Process {
            why: format!("{why_files}; no OS user {candidate} for role {role}"),
        },
    }
}

/// Errors switching a thread's credentials.
#[derive(Debug, thiserror::Error)]
#[error("cannot act as OS user {user} to connect: {source}")]
pub struct SwitchError {
    pub user: String,
    #[source]
    pub source: std::io::Error,
}

/// Run `f` on a new thread whose own credentials are those of `user` (effective uid and
/// gid, and its groups), then return its result. Only that thread changes: the raw system
/// calls are used, not libc's wrappers, which would change every thread of the process.
pub fn on_thread_as<T: Send>(
    user: &OsUser,
    f: impl FnOnce() -> T + Send,
) -> Result<T, SwitchError> {
    let groups = nix::unistd::getgrouplist(
        &std::ffi::CString::new(user.name.clone()).map_err(|e| SwitchError {
            user: user.name.clone(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
        })?,
        nix::unistd::Gid::from_raw(user.gid),
    )
    .map(|g| g.into_iter().map(|g| g.as_raw()).collect::<Vec<_>>())
    .unwrap_or_else(|_| vec![user.gid]);
    std::thread::scope(|s| {
        s.spawn(|| {
            switch_thread(user, &groups)?;
            Ok(f())
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

fn switch_thread(user: &OsUser, groups: &[u32]) -> Result<(), SwitchError> {
    use nix::libc;
    let err = |what: &str| SwitchError {
        user: user.name.clone(),
        source: std::io::Error::other(format!("{what}: {}", std::io::Error::last_os_error())),
    };
    const KEEP: libc::c_long = -1;
    // SAFETY: plain system calls on the calling thread's own credentials; the pointers
    // are valid for the length passed.
    unsafe {
        if libc::syscall(
            libc::SYS_setgroups,
            groups.len() as libc::c_long,
            groups.as_ptr(),
        ) != 0
        {
            return Err(err("setgroups"));
        }
        if libc::syscall(libc::SYS_setresgid, KEEP, user.gid as libc::c_long, KEEP) != 0 {
            return Err(err("setresgid"));
        }
        if libc::syscall(libc::SYS_setresuid, KEEP, user.uid as libc::c_long, KEEP) != 0 {
            return Err(err("setresuid"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const OMNIBUS_HBA: &str = "# This file was generated by GitLab\n\
        # TYPE  DATABASE    USER        CIDR-ADDRESS          METHOD\n\
        local   all         all                               peer map=gitlab\n";
    const OMNIBUS_IDENT: &str = "# MAPNAME       SYSTEM-USERNAME         PG-USERNAME\n\
        gitlab          git                     gitlab\n\
        gitlab          /^(.*)$                 \\1\n";

    fn users(name: &str) -> Option<OsUser> {
        let uid = match name {
            "git" => 998,
            "gitlab-psql" => 996,
            "root" => 0,
            _ => return None,
        };
        Some(OsUser {
            name: name.into(),
            uid,
            gid: uid,
            home: PathBuf::from("/"),
        })
    }

    fn files(dir: &Path, hba: &str, ident: &str) -> AuthFiles {
        fs::write(dir.join("pg_hba.conf"), hba).unwrap();
        fs::write(dir.join("pg_ident.conf"), ident).unwrap();
        AuthFiles {
            data_dir: dir.to_path_buf(),
            hba: dir.join("pg_hba.conf"),
            ident: dir.join("pg_ident.conf"),
        }
    }

    #[test]
    fn omnibus_map_gives_git_for_gitlab_and_same_name_otherwise() {
        let d = tempfile::tempdir().unwrap();
        let f = files(d.path(), OMNIBUS_HBA, OMNIBUS_IDENT);
        let a = resolve_with(Some(&f), "gitlabhq_production", "gitlab", &users);
        assert_eq!(a.os_user().unwrap().name, "git", "{a:?}");
        assert!(a.why().contains("line 3"), "{}", a.why());
        assert!(
            a.why().contains("maps OS user git to role gitlab"),
            "{}",
            a.why()
        );
        let a = resolve_with(Some(&f), "gitlabhq_production", "gitlab-psql", &users);
        assert_eq!(a.os_user().unwrap().name, "gitlab-psql");
        // A role with no OS user of its name: as the process, saying why.
        let a = resolve_with(Some(&f), "gitlabhq_production", "nobody-here", &users);
        assert!(a.os_user().is_none());
        assert!(
            a.why().contains("admits no existing OS user"),
            "{}",
            a.why()
        );
    }

    #[test]
    fn password_and_trust_rules_connect_as_the_process() {
        let d = tempfile::tempdir().unwrap();
        let hba = "local gitlabhq_production gitlab scram-sha-256\nlocal all all peer\n";
        let f = files(d.path(), hba, "");
        let a = resolve_with(Some(&f), "gitlabhq_production", "gitlab", &users);
        assert!(a.os_user().is_none());
        assert!(a.why().contains("scram-sha-256"));
        // The second rule applies to other databases: peer without a map, same name.
        let a = resolve_with(Some(&f), "other", "git", &users);
        assert_eq!(a.os_user().unwrap().name, "git");
    }

    #[test]
    fn unreadable_files_fall_back_to_omnibus_defaults() {
        let a = resolve_with(None, "gitlabhq_production", "gitlab", &users);
        assert_eq!(a.os_user().unwrap().name, "git");
        assert!(a.why().contains("Omnibus"), "{}", a.why());
        // Never root, whatever the map says.
        let a = resolve_with(None, "x", "root", &users);
        assert!(a.os_user().is_none());
    }

    #[test]
    fn hba_fields_quotes_lists_and_comments() {
        let hba = "local \"all\" gitlab trust # a database named all\n\
                   local sales,gitlabhq_production +admins,gitlab ident map=m # c\n";
        assert!(hba_rule(hba, "gitlabhq_production", "gitlab")
            .is_some_and(|r| r.method == "ident" && r.map.as_deref() == Some("m") && r.line == 2));
        assert!(hba_rule(hba, "all", "gitlab").is_some_and(|r| r.method == "trust"));
        assert!(hba_rule("host all all 127.0.0.1/32 trust\n", "x", "y").is_none());
    }

    #[test]
    fn finds_files_from_the_socket_lock() {
        let d = tempfile::tempdir().unwrap();
        let data = d.path().join("data");
        let etc = d.path().join("etc");
        fs::create_dir_all(&data).unwrap();
        fs::create_dir_all(&etc).unwrap();
        fs::write(
            d.path().join(".s.PGSQL.5432.lock"),
            format!("1234\n{}\n1700000000\n5432\n", data.display()),
        )
        .unwrap();
        let f = auth_files(d.path(), 5432).unwrap();
        assert_eq!(f.hba, data.join("pg_hba.conf"));
        // Debian: configuration elsewhere, named in postmaster.opts and postgresql.conf.
        fs::write(
            data.join("postmaster.opts"),
            format!(
                "/usr/lib/postgresql/15/bin/postgres \"-D\" \"{}\" \"-c\" \"config_file={}/postgresql.conf\"\n",
                data.display(),
                etc.display()
            ),
        )
        .unwrap();
        fs::write(
            etc.join("postgresql.conf"),
            "hba_file = 'hba.conf'  # relative to the config dir\nident_file='/x/ident'\n",
        )
        .unwrap();
        let f = auth_files(d.path(), 5432).unwrap();
        assert_eq!(f.hba, etc.join("hba.conf"));
        assert_eq!(f.ident, PathBuf::from("/x/ident"));
        assert!(auth_files(d.path(), 5433).is_none());
    }

    #[test]
    fn thread_switch_changes_only_that_thread() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let nobody = OsUser::lookup("nobody").expect("nobody user");
        let inner = on_thread_as(&nobody, || nix::unistd::geteuid().as_raw()).unwrap();
        assert_eq!(inner, nobody.uid);
        assert!(nix::unistd::geteuid().is_root());
    }
}
