//! Session state of a dump (`SET ...`, `set_config(..., false)`) replayed on every
//! connection the loader opens, plus the statement execution rules shared by all
//! connections (psql's autocommit semantics, GitLab's ignore list, fatal errors).

use std::collections::HashSet;
use std::sync::Arc;

use postgres::Client;
use serde::Serialize;

use crate::dump::{created_object, dropped_object, privilege_statement, ObjectKey};
use crate::pg::conn::describe_pg_error;

/// The session settings in force at one point of the dump, in the order they were set.
#[derive(Debug, Default)]
pub(crate) struct Session {
    /// Changes whenever a setting changes; connections re-apply when it differs.
    pub gen: u64,
    stmts: Vec<(String, String)>,
}

impl Session {
    /// A new state with `key` set by `sql` (replacing an earlier setting of `key`).
    pub fn with(&self, key: &str, sql: &str) -> Arc<Session> {
        let mut stmts: Vec<(String, String)> = self
            .stmts
            .iter()
            .filter(|(k, _)| k != key)
            .cloned()
            .collect();
        stmts.push((key.to_string(), sql.to_string()));
        Arc::new(Session {
            gen: self.gen + 1,
            stmts,
        })
    }

    /// An empty state after a reconnect (`\connect`).
    pub fn reset(&self) -> Arc<Session> {
        Arc::new(Session {
            gen: self.gen + 1,
            stmts: Vec::new(),
        })
    }
}

/// Settings Rewind adds on its own connections; none changes what is restored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// The connection running statements in dump order.
    Main,
    /// COPY workers.
    Data,
    /// Index and key builders (larger `maintenance_work_mem`).
    Index,
}

/// One connection with the session generation it has applied.
pub(crate) struct Conn {
    pub client: Client,
    applied: u64,
    role: Role,
    mwm: Option<String>,
    async_commit: bool,
    /// `max_parallel_maintenance_workers` on index builders.
    pmw: Option<u32>,
}

/// How a statement ended.
pub(crate) enum Outcome {
    Ok,
    /// Failed with an error GitLab's restore ignores (`does not exist`, `must be owner of`)
    /// (message, SQLSTATE).
    Ignored(String, Option<String>),
    /// Failed with another server error (message, SQLSTATE).
    Failed(String, Option<String>),
    /// The connection is gone (server crashed, killed, network): nothing more can run.
    Fatal(String),
}

/// Whether GitLab's restore would ignore this server message (psql stderr filter in
/// `lib/backup/targets/database.rb`: `WARNING:`, `does not exist$`, `must be owner of`).
pub fn ignored_by_gitlab(message: &str) -> bool {
    let m = message.trim_end();
    m.ends_with("does not exist") || m.contains("must be owner of") || m.starts_with("WARNING:")
}

/// Why a failed statement was skipped although GitLab's ignore list does not name its
/// error: the database is the same as after GitLab's psql restore, which fails on it too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// An ownership or privilege statement (`ALTER ... OWNER TO`, `COMMENT ON EXTENSION`,
    /// `GRANT`/`REVOKE`, `ALTER DEFAULT PRIVILEGES`, `SECURITY LABEL`) the restoring role
    /// may not run (insufficient privilege).
    NotPermitted,
    /// The `CREATE` of an object that is there already, owned by another role: the dump's
    /// `DROP ... IF EXISTS` of it failed with `must be owner of`, so it stays as it was.
    OwnedByAnotherRole,
}

impl SkipReason {
    pub fn label(self) -> &'static str {
        match self {
            SkipReason::NotPermitted => "not permitted to the restoring role",
            SkipReason::OwnedByAnotherRole => "object kept, owned by another role",
        }
    }
}

/// What matters about a statement when it fails: read from the statement itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatementFacts {
    /// An ownership or privilege statement.
    pub privilege: bool,
    /// The object of a `DROP ... IF EXISTS`.
    pub dropped: Option<ObjectKey>,
    /// The object of a `CREATE`.
    pub created: Option<ObjectKey>,
}

impl StatementFacts {
    pub fn of(sql: &str) -> Self {
        StatementFacts {
            privilege: privilege_statement(sql).is_some(),
            dropped: dropped_object(sql),
            created: created_object(sql),
        }
    }

    /// Whether any of it matters (worth keeping).
    pub fn any(&self) -> bool {
        self.privilege || self.dropped.is_some() || self.created.is_some()
    }
}

/// Whether an error is a lack of privilege: SQLSTATE 42501 when known (psql's output has
/// only the message: then the messages PostgreSQL gives for it).
pub fn privilege_error(sqlstate: Option<&str>, message: &str) -> bool {
    match sqlstate {
        Some(code) => code == "42501",
        None => [
            "must be member of role",
            "must be able to SET ROLE",
            "must be owner of",
            "permission denied",
        ]
        .iter()
        .any(|m| message.contains(m)),
    }
}

/// Whether an error says the object exists already (42723 function, 42P07 relation, 42710
/// other object, 42P06 schema; the message when the SQLSTATE is not known).
pub fn already_exists_error(sqlstate: Option<&str>, message: &str) -> bool {
    match sqlstate {
        Some(code) => ["42723", "42P07", "42710", "42P06"].contains(&code),
        None => message.contains("already exists"),
    }
}

/// Objects whose `DROP ... IF EXISTS` failed with `must be owner of` (kept as they are).
pub type OwnedElsewhere = HashSet<ObjectKey>;

/// Whether a failed statement is skipped, and why: by what the statement is AND its error.
/// `kept` holds the objects whose dump `DROP` failed for lack of ownership.
pub fn skip_reason(
    facts: &StatementFacts,
    sqlstate: Option<&str>,
    message: &str,
    kept: &OwnedElsewhere,
) -> Option<SkipReason> {
    if facts.privilege && privilege_error(sqlstate, message) {
        return Some(SkipReason::NotPermitted);
    }
    if facts.created.as_ref().is_some_and(|k| kept.contains(k))
        && already_exists_error(sqlstate, message)
    {
        return Some(SkipReason::OwnedByAnotherRole);
    }
    None
}

/// The object a failed `DROP ... IF EXISTS` leaves in place because the role does not own it.
pub fn kept_by_drop(facts: &StatementFacts, message: &str) -> Option<ObjectKey> {
    if message.contains("must be owner of") {
        facts.dropped.clone()
    } else {
        None
    }
}

/// Classify a `postgres` error.
pub(crate) fn outcome_of(client: &Client, e: &postgres::Error) -> Outcome {
    match e.as_db_error() {
        Some(db) => {
            let code = db.code().code();
            if client.is_closed() || code.starts_with("57P") || code.starts_with("08") {
                return Outcome::Fatal(describe_pg_error(e));
            }
            if ignored_by_gitlab(db.message()) {
                Outcome::Ignored(describe_pg_error(e), Some(code.to_string()))
            } else {
                Outcome::Failed(describe_pg_error(e), Some(code.to_string()))
            }
        }
        None => Outcome::Fatal(describe_pg_error(e)),
    }
}

impl Conn {
    pub fn new(
        client: Client,
        role: Role,
        mwm: Option<String>,
        pmw: Option<u32>,
        async_commit: bool,
    ) -> Result<Conn, String> {
        let mut c = Conn {
            client,
            applied: 0,
            role,
            mwm,
            async_commit,
            pmw,
        };
        c.own_settings()?;
        Ok(c)
    }

    fn own_settings(&mut self) -> Result<(), String> {
        if self.async_commit {
            // Commits return before their WAL is on disk; [`Conn::make_durable`] closes
            // the load.
            self.client
                .batch_execute("SET synchronous_commit = off")
                .map_err(|e| describe_pg_error(&e))?;
        }
        if self.role == Role::Index {
            if let Some(n) = self.pmw {
                self.client
                    .batch_execute(&format!("SET max_parallel_maintenance_workers = {n}"))
                    .map_err(|e| describe_pg_error(&e))?;
            }
            if let Some(mwm) = &self.mwm {
                // Only ever raise it.
                self.client
                    .query(
                        "SELECT set_config('maintenance_work_mem', $1, false) \
                         WHERE pg_size_bytes(current_setting('maintenance_work_mem')) < pg_size_bytes($1)",
                        &[mwm],
                    )
                    .map_err(|e| describe_pg_error(&e))?;
            }
        }
        Ok(())
    }

    pub fn set_role(&mut self, role: Role) -> Result<(), String> {
        if self.role != role {
            self.role = role;
            self.applied = u64::MAX;
        }
        Ok(())
    }

    /// Bring the connection's session to `session` (no-op when already there). Errors of
    /// single settings were reported when the dump's own statement ran; only a lost
    /// connection is an error here.
    pub fn apply(&mut self, session: &Session) -> Result<(), String> {
        if self.applied == session.gen {
            return Ok(());
        }
        if let Err(e) = self.client.batch_execute("RESET ALL") {
            if let Outcome::Fatal(m) = outcome_of(&self.client, &e) {
                return Err(m);
            }
        }
        self.own_settings()?;
        for (_, sql) in &session.stmts {
            if let Err(e) = self.client.batch_execute(sql) {
                if let Outcome::Fatal(m) = outcome_of(&self.client, &e) {
                    return Err(m);
                }
            }
        }
        self.applied = session.gen;
        Ok(())
    }

    /// Mark `session` as applied (the caller ran its statements itself, in dump order).
    pub fn mark_applied(&mut self, session: &Session) {
        self.applied = session.gen;
    }

    /// Make every commit of every connection so far durable: one read-write transaction
    /// that gets a transaction id and commits with `synchronous_commit = on` waits for the
    /// WAL to be flushed up to its commit record, which lies after every earlier commit
    /// (the load's, made with `synchronous_commit = off`). Run once, before success is
    /// reported.
    pub fn make_durable(&mut self) -> Result<(), String> {
        self.client
            .batch_execute(
                "BEGIN READ WRITE; SET LOCAL synchronous_commit = on; \
                 SELECT pg_catalog.txid_current(); COMMIT",
            )
            .map_err(|e| describe_pg_error(&e))
    }

    /// Run one statement as psql does in autocommit mode (its own implicit transaction).
    pub fn run(&mut self, sql: &str) -> Outcome {
        match self.client.batch_execute(sql) {
            Ok(()) => Outcome::Ok,
            Err(e) => outcome_of(&self.client, &e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gitlab_ignore_list() {
        assert!(ignored_by_gitlab("must be owner of extension pg_trgm"));
        assert!(ignored_by_gitlab("relation \"public.x\" does not exist"));
        assert!(!ignored_by_gitlab("relation \"x\" already exists"));
        assert!(!ignored_by_gitlab("does not exist, really"));
    }

    #[test]
    fn privilege_errors_of_pg15_and_pg16_are_skipped_by_statement_kind() {
        let kept = OwnedElsewhere::new();
        let owner = StatementFacts::of(
            "ALTER FUNCTION public.pg_shadow_lookup(i_username text, OUT username text, OUT password text) OWNER TO \"gitlab-psql\";",
        );
        for msg in [
            "must be member of role \"gitlab-psql\"",
            "must be able to SET ROLE \"gitlab-psql\"",
        ] {
            assert_eq!(
                skip_reason(&owner, Some("42501"), msg, &kept),
                Some(SkipReason::NotPermitted)
            );
            // psql's output: no SQLSTATE, the message decides.
            assert_eq!(
                skip_reason(&owner, None, &format!("ERROR:  {msg}"), &kept),
                Some(SkipReason::NotPermitted)
            );
            // Not a privilege statement: the same error stops.
            let table = StatementFacts::of("CREATE TABLE public.t (a int);");
            assert_eq!(skip_reason(&table, Some("42501"), msg, &kept), None);
            assert!(!ignored_by_gitlab(msg));
        }
        // A privilege statement with another error stops.
        assert_eq!(
            skip_reason(&owner, Some("42P01"), "relation \"x\" is gone", &kept),
            None
        );
        let grant = StatementFacts::of("GRANT ALL ON FUNCTION public.f() TO pgbouncer;");
        assert_eq!(
            skip_reason(
                &grant,
                Some("42501"),
                "permission denied for function f",
                &kept
            ),
            Some(SkipReason::NotPermitted)
        );
        let comment = StatementFacts::of("COMMENT ON EXTENSION pg_trgm IS 'x';");
        assert_eq!(
            skip_reason(
                &comment,
                Some("42501"),
                "must be owner of extension pg_trgm",
                &kept
            ),
            Some(SkipReason::NotPermitted)
        );
    }

    #[test]
    fn create_after_a_drop_refused_for_ownership_is_skipped() {
        let mut kept = OwnedElsewhere::new();
        let drop = StatementFacts::of("DROP FUNCTION IF EXISTS public.pg_shadow_lookup(text);");
        let create = StatementFacts::of(
            "CREATE FUNCTION public.pg_shadow_lookup(i_username text) RETURNS record\n LANGUAGE plpgsql AS $$ BEGIN END $$;",
        );
        let exists = "function \"pg_shadow_lookup\" already exists with same argument types";
        assert_eq!(skip_reason(&create, Some("42723"), exists, &kept), None);
        assert_eq!(kept_by_drop(&drop, "relation does not exist"), None);
        kept.extend(kept_by_drop(
            &drop,
            "must be owner of function pg_shadow_lookup",
        ));
        assert_eq!(
            skip_reason(&create, Some("42723"), exists, &kept),
            Some(SkipReason::OwnedByAnotherRole)
        );
        assert_eq!(
            skip_reason(&create, None, &format!("ERROR:  {exists}"), &kept),
            Some(SkipReason::OwnedByAnotherRole)
        );
        // Another error of the same CREATE stops.
        assert_eq!(
            skip_reason(&create, Some("42601"), "syntax error", &kept),
            None
        );
    }

    #[test]
    fn settings_replace_by_key() {
        let s = Session::default();
        let s = s.with(
            "search_path",
            "SELECT pg_catalog.set_config('search_path', '', false);",
        );
        let s = s.with("statement_timeout", "SET statement_timeout = 0;");
        let s = s.with("search_path", "SET search_path = public;");
        assert_eq!(s.gen, 3);
        let keys: Vec<&str> = s.stmts.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, vec!["statement_timeout", "search_path"]);
        assert!(s.reset().stmts.is_empty());
    }
}
