//! The beside-and-swap strategy: load the backup into a new database next to the live one
//! (`<name>_rewind_<ts>`, same owner, encoding, collation and extensions), verify it there,
//! then swap the two by renaming them: the live one becomes `<name>_before_rewind_<ts>` and
//! is kept whole, the new one takes the name. Nothing is dropped; going back is another
//! rename ([`undo`]).
//!
//! Creating and renaming databases needs either a role with CREATEDB that owns the database
//! (it connects as usual), or an administrator: on Omnibus the local superuser
//! `gitlab-psql`, which logs in by peer as the OS user of that name, reached through the
//! embedded `psql` run as that user ([`AdminConfig`]: argv only, identifiers quoted).
//! [`decide`] says, read-only and with reasons, whether the strategy can run; otherwise the
//! in-place strategy (snapshot, drop, load) runs.
//!
//! Each rename is journaled before it runs (`swap.<connection>.rename_live`,
//! `swap.<connection>.rename_new`), so a crash between them is found on the next run
//! ([`interrupted`]) and completed or reversed ([`finish_interrupted`]).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::detect::InstallKind;
use crate::journal::{Entry, Journal, JournalError, Stage};
use crate::pg::conn::{describe_pg_error, ConnSpec};
use crate::pg::ident::{quote_ident, quote_literal};
use crate::progress::{Sink, SinkExt};
use crate::restore::database::DatabaseJob;
use crate::root::HostRoot;

/// Omnibus's local superuser, role and OS user alike.
pub const OMNIBUS_ADMIN: &str = "gitlab-psql";
/// Omnibus's embedded psql.
pub const OMNIBUS_PSQL: &str = "opt/gitlab/embedded/bin/psql";
/// Omnibus's data directory.
pub const OMNIBUS_DATA_DIR: &str = "var/opt/gitlab/postgresql/data";

/// A superuser (or CREATEDB) role reached by running `psql` as an OS user the server's
/// peer map admits for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminConfig {
    /// OS user `psql` runs as (`runuser -u`).
    pub os_user: String,
    /// Role it logs in as.
    pub role: String,
    /// The `psql` to run (host path).
    pub psql: PathBuf,
}

impl AdminConfig {
    /// Omnibus's: `gitlab-psql` through `<root>/opt/gitlab/embedded/bin/psql`, or the
    /// server's major version's psql found on this host when there is none.
    pub fn omnibus(root: &HostRoot, server_version_num: u32) -> Option<AdminConfig> {
        let embedded = root.join(OMNIBUS_PSQL);
        let psql = if embedded.is_file() {
            embedded
        } else {
            crate::pg::tools::find_tool(
                root,
                "psql",
                crate::pg::tools::major_from_version_num(server_version_num),
            )
            .ok()?
            .path
        };
        Some(AdminConfig {
            os_user: OMNIBUS_ADMIN.into(),
            role: OMNIBUS_ADMIN.into(),
            psql,
        })
    }

    /// Parse `OSUSER[:ROLE]` (`--db-admin`); the psql is found as for Omnibus.
    pub fn parse(s: &str, root: &HostRoot, server_version_num: u32) -> Option<AdminConfig> {
        let (os, role) = s.split_once(':').unwrap_or((s, s));
        if os.is_empty() || role.is_empty() {
            return None;
        }
        let mut c = AdminConfig::omnibus(root, server_version_num)?;
        c.os_user = os.into();
        c.role = role.into();
        Some(c)
    }
}

/// How the databases are created and renamed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "via", rename_all = "snake_case")]
pub enum AdminPath {
    /// The owner role has CREATEDB: it connects as usual.
    Owner { role: String },
    /// An administrator through `psql` as an OS user.
    Psql(AdminConfig),
}

impl AdminPath {
    /// For messages.
    pub fn describe(&self) -> String {
        match self {
            AdminPath::Owner { role } => format!("the owner role `{role}` (it has CREATEDB)"),
            AdminPath::Psql(c) => format!(
                "role `{}` through {} run as OS user {}",
                c.role,
                c.psql.display(),
                c.os_user
            ),
        }
    }

    /// Run `sql` in database `db` of the server of `spec`; the first column of each row
    /// returned, one per line.
    pub fn exec(&self, spec: &ConnSpec, db: &str, sql: &str) -> Result<Vec<String>, String> {
        match self {
            AdminPath::Owner { .. } => {
                let mut c = spec.with_dbname(db).connect().map_err(|e| e.to_string())?;
                let msgs = c.simple_query(sql).map_err(|e| describe_pg_error(&e))?;
                Ok(msgs
                    .into_iter()
                    .filter_map(|m| match m {
                        postgres::SimpleQueryMessage::Row(r) => {
                            Some(r.get(0).unwrap_or_default().to_string())
                        }
                        _ => None,
                    })
                    .collect())
            }
            AdminPath::Psql(c) => {
                if !spec.is_socket() {
                    return Err(format!(
                        "{} reaches local servers only, and `{}` is on {}",
                        c.psql.display(),
                        spec.dbname,
                        spec.target()
                    ));
                }
                let mut cmd = Command::new("runuser");
                cmd.arg("-u")
                    .arg(&c.os_user)
                    .arg("--")
                    .arg(&c.psql)
                    .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
                    .arg(&spec.host)
                    .arg("-p")
                    .arg(spec.port.to_string())
                    .arg("-U")
                    .arg(&c.role)
                    .arg("-d")
                    .arg(db)
                    .arg("-c")
                    .arg(sql)
                    .current_dir("/")
                    .env_remove("PGPASSWORD")
                    .env_remove("PGDATABASE")
                    .env_remove("PGUSER")
                    .env_remove("PGHOST")
                    .env_remove("PGSERVICE")
                    .stdin(Stdio::null());
                let out = cmd
                    .output()
                    .map_err(|e| format!("cannot run runuser for {}: {e}", c.psql.display()))?;
                if !out.status.success() {
                    return Err(format!(
                        "psql as {} (role `{}`) exited with {}: {}",
                        c.os_user,
                        c.role,
                        out.status,
                        String::from_utf8_lossy(&out.stderr).trim()
                    ));
                }
                Ok(String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .map(str::to_string)
                    .collect())
            }
        }
    }
}

/// Which strategy a restore runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Load into a new database, verify, swap by renaming; the live one is kept.
    Beside,
    /// GitLab's way: safety snapshot, drop every table, load.
    InPlace,
}

impl Strategy {
    pub fn label(&self) -> &'static str {
        match self {
            Strategy::Beside => "beside and swap",
            Strategy::InPlace => "in place",
        }
    }
}

/// The strategy chosen, and why.
#[derive(Debug, Clone, Serialize)]
pub struct StrategyDecision {
    pub strategy: Strategy,
    /// One line per fact that decided it (space with numbers, the admin path, or what is
    /// missing).
    pub reasons: Vec<String>,
    pub admin: Option<AdminPath>,
    /// Filesystem of the data directory, when known.
    pub data_dir: Option<PathBuf>,
    pub free_bytes: Option<u64>,
    pub needed_bytes: u64,
    /// UTC time stamp of the new and kept databases' names.
    pub stamp: String,
}

/// What the strategy needs to know of a live database.
#[derive(Debug, Clone, Serialize)]
pub struct LiveFacts {
    pub database: String,
    pub owner: String,
    pub encoding: String,
    pub collate: String,
    pub ctype: String,
    pub size: u64,
    pub server_version_num: u32,
    /// The connecting role has CREATEDB and owns the database.
    pub owner_can_create: bool,
    pub connecting_role: String,
    /// `(extension, schema)`, plpgsql left out.
    pub extensions: Vec<(String, String)>,
    /// `data_directory`, when this role may read it.
    pub data_directory: Option<PathBuf>,
}

/// Read the facts of a live database (read-only).
pub fn live_facts(spec: &ConnSpec) -> Result<LiveFacts, String> {
    let mut c = spec.connect().map_err(|e| e.to_string())?;
    let e = |e: postgres::Error| describe_pg_error(&e);
    let r = c
        .query_one(
            "SELECT current_database()::text, pg_get_userbyid(d.datdba)::text, \
             pg_encoding_to_char(d.encoding)::text, d.datcollate::text, d.datctype::text, \
             pg_database_size(d.oid)::int8, current_setting('server_version_num')::int4, \
             (r.rolcreatedb OR r.rolsuper) AND (d.datdba = r.oid OR r.rolsuper), current_user::text \
             FROM pg_database d, pg_roles r \
             WHERE d.datname = current_database() AND r.rolname = current_user",
            &[],
        )
        .map_err(e)?;
    let extensions = c
        .query(
            "SELECT x.extname::text, n.nspname::text FROM pg_extension x \
             JOIN pg_namespace n ON n.oid = x.extnamespace \
             WHERE x.extname <> 'plpgsql' ORDER BY 1",
            &[],
        )
        .map_err(e)?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let data_directory = c
        .query_opt(
            "SELECT setting FROM pg_settings WHERE name = 'data_directory'",
            &[],
        )
        .ok()
        .flatten()
        .map(|r| PathBuf::from(r.get::<_, String>(0)));
    Ok(LiveFacts {
        database: r.get(0),
        owner: r.get(1),
        encoding: r.get(2),
        collate: r.get(3),
        ctype: r.get(4),
        size: r.get::<_, i64>(5).max(0) as u64,
        server_version_num: r.get::<_, i32>(6).max(0) as u32,
        owner_can_create: r.get(7),
        connecting_role: r.get(8),
        extensions,
        data_directory,
    })
}

/// The new and kept databases' names for `live` at `stamp`.
pub fn names(live: &str, stamp: &str) -> (String, String) {
    (
        format!("{live}_rewind_{stamp}"),
        format!("{live}_before_rewind_{stamp}"),
    )
}

/// A time stamp for the names: `20240423T161003`.
pub fn stamp_now() -> String {
    chrono::Utc::now().format("%Y%m%dT%H%M%S").to_string()
}

/// The data directory's filesystem: Omnibus's under the root, else the server's (from its
/// socket lock file, or `data_directory` when readable).
pub fn data_dir_of(
    root: &HostRoot,
    kind: Option<InstallKind>,
    spec: &ConnSpec,
    facts: &LiveFacts,
) -> Option<PathBuf> {
    if kind == Some(InstallKind::Omnibus) {
        let p = root.join(OMNIBUS_DATA_DIR);
        if p.is_dir() {
            return Some(p);
        }
    }
    if spec.is_socket() {
        if let Some(f) = crate::pg::peer::auth_files(Path::new(&spec.host), spec.port) {
            if f.data_dir.is_dir() {
                return Some(f.data_dir);
            }
        }
    }
    facts
        .data_directory
        .as_ref()
        .map(|d| root.join(d))
        .filter(|d| d.is_dir())
}

/// Inputs of the decision that are not read from the server.
#[derive(Debug, Clone, Default)]
pub struct DecideInput {
    /// `--in-place`.
    pub in_place: bool,
    /// An administrator to try (`--db-admin`); Omnibus's is tried otherwise.
    pub admin: Option<AdminConfig>,
    /// Decompressed size of each database's dump, by database name, when known.
    pub dump_bytes: std::collections::BTreeMap<String, u64>,
}

/// Decide the strategy for `jobs` (read-only): beside when the data directory's filesystem
/// has room for every new database and there is a way to create and rename them.
pub fn decide(
    root: &HostRoot,
    kind: Option<InstallKind>,
    jobs: &[DatabaseJob],
    input: &DecideInput,
) -> StrategyDecision {
    let stamp = stamp_now();
    let mut d = StrategyDecision {
        strategy: Strategy::InPlace,
        reasons: Vec::new(),
        admin: None,
        data_dir: None,
        free_bytes: None,
        needed_bytes: 0,
        stamp: stamp.clone(),
    };
    if input.in_place {
        d.reasons.push("--in-place was given".into());
        return d;
    }
    if jobs.is_empty() {
        d.reasons.push("no database to restore".into());
        return d;
    }
    let mut facts = Vec::new();
    for job in jobs {
        match live_facts(&job.spec) {
            Ok(f) => facts.push(f),
            Err(e) => {
                d.reasons.push(format!(
                    "the facts of `{}` could not be read ({e})",
                    job.spec.dbname
                ));
                return d;
            }
        }
        let (new, kept) = names(&job.spec.dbname, &stamp);
        if kept.len() > 63 {
            d.reasons.push(format!(
                "`{new}`/`{kept}` would exceed PostgreSQL's 63-byte names"
            ));
            return d;
        }
    }
    // Space: every new database coexists with its live one until the swap.
    let needed: u64 = jobs
        .iter()
        .zip(&facts)
        .map(|(j, f)| {
            let dump = input.dump_bytes.get(&j.spec.dbname).copied().unwrap_or(0);
            f.size.max(dump)
        })
        .sum();
    d.needed_bytes = needed;
    let Some(dir) = data_dir_of(root, kind, &jobs[0].spec, &facts[0]) else {
        d.reasons.push(format!(
            "the server's data directory could not be found (not under {OMNIBUS_DATA_DIR}, no socket lock file, data_directory not readable by `{}`): free space unknown",
            facts[0].connecting_role
        ));
        return d;
    };
    let free = crate::restore::snapshot::free_bytes(&dir).ok();
    d.data_dir = Some(dir.clone());
    d.free_bytes = free;
    let headroom = needed / 10 + (64 << 20);
    match free {
        Some(f) if f >= needed.saturating_add(headroom) => d.reasons.push(format!(
            "{} has {} MiB free; the new database(s) need about {} MiB (+10 % and 64 MiB headroom)",
            dir.display(),
            f >> 20,
            needed >> 20
        )),
        Some(f) => {
            d.reasons.push(format!(
                "not enough free space beside the live database: {} has {} MiB free, the new database(s) need about {} MiB (+10 % and 64 MiB headroom)",
                dir.display(),
                f >> 20,
                needed >> 20
            ));
            return d;
        }
        None => {
            d.reasons
                .push(format!("free space of {} unknown", dir.display()));
            return d;
        }
    }
    // A way to create and rename.
    if facts.iter().all(|f| f.owner_can_create) {
        d.admin = Some(AdminPath::Owner {
            role: facts[0].connecting_role.clone(),
        });
    } else {
        let candidate = input
            .admin
            .clone()
            .or_else(|| AdminConfig::omnibus(root, facts[0].server_version_num));
        let owner_why = format!(
            "role `{}` cannot create databases (no CREATEDB, or it does not own the database)",
            facts[0].connecting_role
        );
        match candidate {
            None => {
                d.reasons.push(format!(
                    "{owner_why}, and no psql was found to reach an administrator (--db-admin OSUSER[:ROLE])"
                ));
                return d;
            }
            Some(c) => {
                if crate::pg::peer::OsUser::lookup(&c.os_user).is_none() {
                    d.reasons.push(format!(
                        "{owner_why}, and there is no OS user `{}` to reach the administrator role `{}` (--db-admin OSUSER[:ROLE])",
                        c.os_user, c.role
                    ));
                    return d;
                }
                let path = AdminPath::Psql(c.clone());
                match path.exec(
                    &jobs[0].spec,
                    "postgres",
                    "SELECT (rolsuper OR rolcreatedb)::text FROM pg_roles WHERE rolname = current_user",
                ) {
                    Ok(rows) if rows.first().map(String::as_str) == Some("true") => {
                        d.admin = Some(path);
                    }
                    Ok(_) => {
                        d.reasons.push(format!(
                            "{owner_why}, and role `{}` (through psql as OS user {}) has neither SUPERUSER nor CREATEDB",
                            c.role, c.os_user
                        ));
                        return d;
                    }
                    Err(e) => {
                        d.reasons.push(format!(
                            "{owner_why}, and the administrator could not be reached: {e}"
                        ));
                        return d;
                    }
                }
            }
        }
    }
    if let Some(a) = &d.admin {
        d.reasons.push(format!(
            "databases are created and renamed by {}",
            a.describe()
        ));
    }
    d.strategy = Strategy::Beside;
    d
}

/// What the beside strategy did to one database.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BesideOutcome {
    pub live: String,
    /// The new database while it was loaded (now named `live` after the swap).
    pub new: String,
    /// The failed upgrade's database, kept whole under this name after the swap.
    pub kept_database: String,
    pub swapped: bool,
    /// Sessions that were still on the live database and were ended.
    pub ended_sessions: Vec<String>,
}

/// Errors of the beside strategy.
#[derive(Debug, thiserror::Error)]
pub enum BesideError {
    #[error("creating `{new}` beside `{live}` failed: {detail}. `{live}` was not changed")]
    Create {
        live: String,
        new: String,
        detail: String,
    },
    #[error("swapping `{new}` in for `{live}` failed at {step}: {detail}. {state}.")]
    Swap {
        live: String,
        new: String,
        step: String,
        detail: String,
        state: String,
    },
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// `CREATE DATABASE new` like `live`, owned by its owner, and its extensions (as the
/// admin: the owner may not create them).
pub fn create_beside(
    admin: &AdminPath,
    spec: &ConnSpec,
    facts: &LiveFacts,
    new: &str,
    journal: &Journal,
    step: &str,
) -> Result<(), BesideError> {
    let live = &facts.database;
    let err = |detail: String| BesideError::Create {
        live: live.clone(),
        new: new.to_string(),
        detail,
    };
    let create = format!(
        "CREATE DATABASE {} OWNER {} TEMPLATE template0 ENCODING {} LC_COLLATE {} LC_CTYPE {}",
        quote_ident(new),
        quote_ident(&facts.owner),
        quote_literal(&facts.encoding),
        quote_literal(&facts.collate),
        quote_literal(&facts.ctype)
    );
    journal.begin(
        step,
        create.clone(),
        serde_json::json!({"live": live, "new": new, "owner": facts.owner,
            "extensions": facts.extensions, "admin": admin}),
    )?;
    let result = admin.exec(spec, "postgres", &create).and_then(|_| {
        for (ext, schema) in &facts.extensions {
            let sql = format!(
                "DO $rewind$ BEGIN IF EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = {}) THEN \
                 CREATE EXTENSION IF NOT EXISTS {} WITH SCHEMA {}; END IF; END $rewind$",
                quote_literal(schema),
                quote_ident(ext),
                quote_ident(schema)
            );
            admin
                .exec(spec, new, &sql)
                .map_err(|e| format!("extension {ext}: {e}"))?;
        }
        Ok(())
    });
    match result {
        Ok(()) => {
            journal.end(step, "ok", serde_json::json!({"new": new}))?;
            Ok(())
        }
        Err(e) => {
            journal.end(step, "failed", serde_json::json!({"error": e}))?;
            Err(err(e))
        }
    }
}

/// Whether database `name` exists.
pub fn exists(admin: &AdminPath, spec: &ConnSpec, name: &str) -> Result<bool, String> {
    let rows = admin.exec(
        spec,
        "postgres",
        &format!(
            "SELECT count(*)::text FROM pg_database WHERE datname = {}",
            quote_literal(name)
        ),
    )?;
    Ok(rows.first().map(String::as_str) == Some("1"))
}

/// Drop the new database after a failure before the swap (journaled). Sessions of ours
/// still on it are ended first.
pub fn drop_new(
    admin: &AdminPath,
    spec: &ConnSpec,
    new: &str,
    journal: &Journal,
    step: &str,
) -> Result<(), String> {
    let _ = journal.begin(
        step,
        format!("DROP DATABASE IF EXISTS {}", quote_ident(new)),
        serde_json::json!({"new": new}),
    );
    let _ = end_sessions(admin, spec, new);
    let r = admin
        .exec(
            spec,
            "postgres",
            &format!("DROP DATABASE IF EXISTS {}", quote_ident(new)),
        )
        .map(|_| ());
    let _ = journal.end(
        step,
        if r.is_ok() { "ok" } else { "failed" },
        serde_json::json!({"error": r.as_ref().err()}),
    );
    r
}

/// End the sessions connected to `db`: `pid user application client` of each ended.
/// A role that is not a superuser can end only its own roles' sessions (PostgreSQL's
/// `pg_terminate_backend` rule): when it may not end one, nothing is renamed and the
/// error lists who is still connected and what to do.
pub fn end_sessions(admin: &AdminPath, spec: &ConnSpec, db: &str) -> Result<Vec<String>, String> {
    let who = "pid || ' ' || coalesce(usename, '?') || ' ' || coalesce(nullif(application_name, ''), '-') \
               || ' ' || coalesce(client_addr::text, 'local')";
    let r = admin.exec(
        spec,
        "postgres",
        &format!(
            "SELECT {who} || ' ' || pg_terminate_backend(pid)::text \
             FROM pg_stat_activity WHERE datname = {} AND pid <> pg_backend_pid()",
            quote_literal(db)
        ),
    );
    match r {
        Err(e)
            if e.contains("permission denied")
                || e.contains("must be a member of the role")
                || e.contains("must be a superuser") =>
        {
            let still = admin
                .exec(
                    spec,
                    "postgres",
                    &format!(
                        "SELECT {who} FROM pg_stat_activity WHERE datname = {} AND pid <> pg_backend_pid()",
                        quote_literal(db)
                    ),
                )
                .unwrap_or_default();
            Err(format!(
                "{} may not end other roles' sessions ({e}); still connected to `{db}` (pid user application client): {}. Stop those clients (PgBouncer, Puma, Sidekiq, a psql session), or grant that role pg_signal_backend (not enough for a superuser's session), or name a superuser path with --db-admin OSUSER[:ROLE], then run the restore again",
                admin.describe(),
                if still.is_empty() {
                    "none now".to_string()
                } else {
                    still.join("; ")
                }
            ))
        }
        other => other,
    }
}

fn rename(admin: &AdminPath, spec: &ConnSpec, from: &str, to: &str) -> Result<(), String> {
    let sql = format!(
        "ALTER DATABASE {} RENAME TO {}",
        quote_ident(from),
        quote_ident(to)
    );
    let mut last = String::new();
    // A session may still be ending (or reconnect): end them again and retry briefly.
    for _ in 0..10 {
        match admin.exec(spec, "postgres", &sql) {
            Ok(_) => return Ok(()),
            Err(e) if e.contains("being accessed by other users") => {
                last = e;
                let _ = end_sessions(admin, spec, from);
                std::thread::sleep(Duration::from_millis(300));
            }
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// The swap record journaled before each rename.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwapRecord {
    pub connection: String,
    pub live: String,
    pub new: String,
    pub kept: String,
    pub admin: AdminPath,
}

/// End the sessions on `live`, rename it to `kept`, rename `new` to `live`; each rename
/// journaled before it runs.
pub fn swap(
    spec: &ConnSpec,
    rec: &SwapRecord,
    journal: &Journal,
    sink: &dyn Sink,
) -> Result<BesideOutcome, BesideError> {
    let step = format!("swap.{}", rec.connection);
    let detail = serde_json::to_value(rec).unwrap_or_default();
    let fail = |at: &str, e: String, state: String| BesideError::Swap {
        live: rec.live.clone(),
        new: rec.new.clone(),
        step: at.to_string(),
        detail: e,
        state,
    };
    journal.begin(
        &step,
        format!("swap `{}` in for `{}`", rec.new, rec.live),
        detail.clone(),
    )?;
    let ended = end_sessions(&rec.admin, spec, &rec.live).map_err(|e| {
        fail(
            "ending the sessions",
            e,
            format!(
                "`{}` was not renamed; `{}` holds the verified restore",
                rec.live, rec.new
            ),
        )
    })?;
    if !ended.is_empty() {
        sink.warn(format!(
            "ended {} session(s) still on `{}` (pid user application client): {}",
            ended.len(),
            rec.live,
            ended.join("; ")
        ));
    }
    journal.note(
        &format!("{step}.sessions"),
        format!("{} session(s) ended on `{}`", ended.len(), rec.live),
        serde_json::json!({"sessions": ended}),
    )?;
    journal.begin(
        &format!("{step}.rename_live"),
        format!(
            "ALTER DATABASE {} RENAME TO {}",
            quote_ident(&rec.live),
            quote_ident(&rec.kept)
        ),
        detail.clone(),
    )?;
    if let Err(e) = rename(&rec.admin, spec, &rec.live, &rec.kept) {
        journal.end(
            &format!("{step}.rename_live"),
            "failed",
            serde_json::json!({"error": e}),
        )?;
        return Err(fail(
            "renaming the live database",
            e,
            format!("`{}` was not changed", rec.live),
        ));
    }
    journal.end(&format!("{step}.rename_live"), "ok", detail.clone())?;
    journal.begin(
        &format!("{step}.rename_new"),
        format!(
            "ALTER DATABASE {} RENAME TO {}",
            quote_ident(&rec.new),
            quote_ident(&rec.live)
        ),
        detail.clone(),
    )?;
    if let Err(e) = rename(&rec.admin, spec, &rec.new, &rec.live) {
        journal.end(
            &format!("{step}.rename_new"),
            "failed",
            serde_json::json!({"error": e}),
        )?;
        // Put the live one back so GitLab finds its database.
        let back = rename(&rec.admin, spec, &rec.kept, &rec.live);
        journal.note(
            &format!("{step}.reversed"),
            format!("`{}` renamed back to `{}`", rec.kept, rec.live),
            serde_json::json!({"ok": back.is_ok(), "error": back.as_ref().err()}),
        )?;
        return Err(fail(
            "renaming the new database",
            e,
            match back {
                Ok(()) => format!(
                    "`{}` was renamed back and is as it was; `{}` holds the verified restore",
                    rec.live, rec.new
                ),
                Err(b) => format!(
                    "renaming `{}` back failed too ({b}): there is no database `{}` now; run `rewind undo` or rename it by hand",
                    rec.kept, rec.live
                ),
            },
        ));
    }
    journal.end(&format!("{step}.rename_new"), "ok", detail.clone())?;
    journal.end(
        &step,
        "ok",
        serde_json::json!({"live": rec.live, "kept_database": rec.kept}),
    )?;
    sink.info(format!(
        "`{}` now holds the restore; the failed upgrade's database is kept as `{}` (`rewind undo` swaps back)",
        rec.live, rec.kept
    ));
    Ok(BesideOutcome {
        live: rec.live.clone(),
        new: rec.new.clone(),
        kept_database: rec.kept.clone(),
        swapped: true,
        ended_sessions: ended,
    })
}

fn record_of(e: &Entry) -> Option<SwapRecord> {
    serde_json::from_value(e.detail.clone()).ok()
}

/// Swaps whose first rename was journaled but not the end of the second: a crash between
/// the renames (or during one). Later entries for the same live database win.
pub fn interrupted(entries: &[Entry]) -> Vec<SwapRecord> {
    let mut open: Vec<SwapRecord> = Vec::new();
    for e in entries {
        let Some(conn) = e.step.strip_prefix("swap.") else {
            continue;
        };
        if conn.ends_with(".rename_live") && e.stage == Stage::Begin {
            if let Some(r) = record_of(e) {
                open.retain(|o| o.live != r.live);
                open.push(r);
            }
        } else if (conn.ends_with(".rename_new")
            && e.stage == Stage::End
            && e.result.as_deref() == Some("ok"))
            || conn.ends_with(".reversed")
            || (conn.ends_with(".rename_live")
                && e.stage == Stage::End
                && e.result.as_deref() == Some("failed"))
        {
            let c = conn.rsplit_once('.').map(|(c, _)| c).unwrap_or(conn);
            open.retain(|o| o.connection != c);
        } else if e.step.starts_with("undo.") || e.step.starts_with("swap.resolved") {
            if let Some(r) = record_of(e) {
                open.retain(|o| o.live != r.live);
            }
        }
    }
    open
}

/// Which way to resolve an interrupted swap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolve {
    /// Finish it: the restore takes the live name.
    Complete,
    /// Undo it: the failed upgrade's database takes its name back.
    Reverse,
}

/// Finish or reverse an interrupted swap from the databases that exist. Returns what was
/// done, in words; `Ok(None)` when there was nothing to do (it had completed, or the first
/// rename never ran).
pub fn finish_interrupted(
    spec: &ConnSpec,
    rec: &SwapRecord,
    how: Resolve,
    journal: &Journal,
) -> Result<Option<String>, String> {
    let have = |n: &str| exists(&rec.admin, spec, n);
    let (live, new, kept) = (have(&rec.live)?, have(&rec.new)?, have(&rec.kept)?);
    let detail = serde_json::to_value(rec).unwrap_or_default();
    let step = "swap.resolved";
    let done = match (live, new, kept, how) {
        // Between the renames: no live database.
        (false, true, true, Resolve::Complete) => {
            journal
                .begin(
                    step,
                    format!("complete: `{}` -> `{}`", rec.new, rec.live),
                    detail.clone(),
                )
                .map_err(|e| e.to_string())?;
            rename(&rec.admin, spec, &rec.new, &rec.live)?;
            format!(
                "completed an interrupted swap: `{}` now holds the verified restore, the failed upgrade's database is kept as `{}`",
                rec.live, rec.kept
            )
        }
        (false, _, true, Resolve::Reverse) => {
            journal
                .begin(
                    step,
                    format!("reverse: `{}` -> `{}`", rec.kept, rec.live),
                    detail.clone(),
                )
                .map_err(|e| e.to_string())?;
            rename(&rec.admin, spec, &rec.kept, &rec.live)?;
            format!(
                "reversed an interrupted swap: `{}` is the failed upgrade's database again; the restore stays in `{}`",
                rec.live, rec.new
            )
        }
        _ => return Ok(None),
    };
    journal.end(step, "ok", detail).map_err(|e| e.to_string())?;
    Ok(Some(done))
}

/// Completed swaps not undone since, newest last.
pub fn completed(entries: &[Entry]) -> Vec<SwapRecord> {
    let mut out: Vec<SwapRecord> = Vec::new();
    for e in entries {
        let done_swap = e.step.ends_with(".rename_new")
            && e.step.starts_with("swap.")
            && e.stage == Stage::End
            && e.result.as_deref() == Some("ok");
        let resolved = e.step == "swap.resolved"
            && e.stage == Stage::Begin
            && e.action
                .as_deref()
                .is_some_and(|a| a.starts_with("complete"));
        if done_swap || resolved {
            if let Some(r) = record_of(e) {
                out.retain(|o| o.live != r.live);
                out.push(r);
            }
        } else if e.step.starts_with("undo.")
            && e.stage == Stage::End
            && e.result.as_deref() == Some("ok")
        {
            if let Some(r) = record_of(e) {
                out.retain(|o| o.live != r.live);
            }
        }
    }
    out
}

/// Swap back: the restored database (now `live`) goes back to `new`'s name, the kept one
/// takes `live`. Each rename journaled before it runs.
pub fn undo(spec: &ConnSpec, rec: &SwapRecord, journal: &Journal) -> Result<String, String> {
    let step = format!("undo.{}", rec.connection);
    let detail = serde_json::to_value(rec).unwrap_or_default();
    if !exists(&rec.admin, spec, &rec.kept)? {
        return Err(format!(
            "the kept database `{}` no longer exists (removed by `rewind cleanup`?): nothing to swap back to. Nothing was changed",
            rec.kept
        ));
    }
    if exists(&rec.admin, spec, &rec.new)? {
        return Err(format!(
            "a database `{}` exists already: rename or drop it first. Nothing was changed",
            rec.new
        ));
    }
    let je = |e: JournalError| e.to_string();
    journal
        .begin(
            &step,
            format!("swap `{}` back in for `{}`", rec.kept, rec.live),
            detail.clone(),
        )
        .map_err(je)?;
    let ended = end_sessions(&rec.admin, spec, &rec.live)?;
    journal
        .begin(
            &format!("{step}.rename_live"),
            format!("`{}` -> `{}`", rec.live, rec.new),
            detail.clone(),
        )
        .map_err(je)?;
    rename(&rec.admin, spec, &rec.live, &rec.new)?;
    journal
        .begin(
            &format!("{step}.rename_kept"),
            format!("`{}` -> `{}`", rec.kept, rec.live),
            detail.clone(),
        )
        .map_err(je)?;
    if let Err(e) = rename(&rec.admin, spec, &rec.kept, &rec.live) {
        let back = rename(&rec.admin, spec, &rec.new, &rec.live);
        return Err(format!(
            "renaming `{}` to `{}` failed: {e}; {}",
            rec.kept,
            rec.live,
            if back.is_ok() {
                "the restore was put back, nothing changed"
            } else {
                "putting the restore back failed too: rename by hand"
            }
        ));
    }
    journal.end(&step, "ok", detail).map_err(je)?;
    Ok(format!(
        "`{}` is the failed upgrade's database again ({} session(s) ended); the restore is kept as `{}`",
        rec.live,
        ended.len(),
        rec.new
    ))
}

/// Databases a recovery kept (`*_before_rewind_*`, `*_rewind_*`), with their sizes.
pub fn kept_databases(spec: &ConnSpec) -> Result<Vec<(String, u64)>, String> {
    let mut c = spec
        .with_dbname("postgres")
        .connect()
        .or_else(|_| spec.connect())
        .map_err(|e| e.to_string())?;
    let rows = c
        .query(
            "SELECT datname::text, pg_database_size(oid)::int8 FROM pg_database \
             WHERE datname ~ '_(before_)?rewind_[0-9]{8}T[0-9]{6}$' ORDER BY 1",
            &[],
        )
        .map_err(|e| describe_pg_error(&e))?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), r.get::<_, i64>(1).max(0) as u64))
        .collect())
}

/// Drop a kept database (the caller has the user's typed confirmation).
pub fn drop_kept(
    admin: &AdminPath,
    spec: &ConnSpec,
    name: &str,
    journal: &Journal,
) -> Result<(), String> {
    if !(name.contains("_rewind_") || name.contains("_before_rewind_")) {
        return Err(format!("`{name}` is not a database a recovery kept"));
    }
    drop_new(admin, spec, name, journal, "cleanup.database")
}

/// Names of the databases of `jobs` that exist, for messages.
pub fn set_of(names: &[String]) -> BTreeSet<String> {
    names.iter().cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(step: &str, stage: Stage, result: Option<&str>, rec: &SwapRecord) -> Entry {
        Entry {
            time: String::new(),
            step: step.into(),
            stage,
            action: None,
            result: result.map(str::to_string),
            detail: serde_json::to_value(rec).unwrap(),
        }
    }

    #[test]
    fn interrupted_swaps_are_found_from_the_journal() {
        let rec = SwapRecord {
            connection: "main".into(),
            live: "gl".into(),
            new: "gl_rewind_20240101T000000".into(),
            kept: "gl_before_rewind_20240101T000000".into(),
            admin: AdminPath::Owner {
                role: "gitlab".into(),
            },
        };
        let mut e = vec![
            entry("swap.main", Stage::Begin, None, &rec),
            entry("swap.main.rename_live", Stage::Begin, None, &rec),
        ];
        assert_eq!(interrupted(&e), vec![rec.clone()]);
        assert!(completed(&e).is_empty());
        e.push(entry("swap.main.rename_live", Stage::End, Some("ok"), &rec));
        e.push(entry("swap.main.rename_new", Stage::Begin, None, &rec));
        assert_eq!(interrupted(&e), vec![rec.clone()]);
        e.push(entry("swap.main.rename_new", Stage::End, Some("ok"), &rec));
        assert!(interrupted(&e).is_empty());
        assert_eq!(completed(&e), vec![rec.clone()]);
        e.push(entry("undo.main", Stage::End, Some("ok"), &rec));
        assert!(completed(&e).is_empty());
        // A failed first rename changed nothing: not interrupted.
        let f = vec![
            entry("swap.main.rename_live", Stage::Begin, None, &rec),
            entry("swap.main.rename_live", Stage::End, Some("failed"), &rec),
        ];
        assert!(interrupted(&f).is_empty());
    }

    #[test]
    fn names_fit_and_are_distinct() {
        let (n, k) = names("gitlabhq_production_ci", "20240423T161003");
        assert_eq!(n, "gitlabhq_production_ci_rewind_20240423T161003");
        assert_eq!(k, "gitlabhq_production_ci_before_rewind_20240423T161003");
        assert!(k.len() <= 63);
    }
}
