//! Session state of a dump (`SET ...`, `set_config(..., false)`) replayed on every
//! connection the loader opens, plus the statement execution rules shared by all
//! connections (psql's autocommit semantics, GitLab's ignore list, fatal errors).

use std::sync::Arc;

use postgres::Client;

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
}

/// How a statement ended.
pub(crate) enum Outcome {
    Ok,
    /// Failed with an error GitLab's restore ignores (`does not exist`, `must be owner of`).
    Ignored(String),
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

/// Classify a `postgres` error.
pub(crate) fn outcome_of(client: &Client, e: &postgres::Error) -> Outcome {
    match e.as_db_error() {
        Some(db) => {
            let code = db.code().code();
            if client.is_closed() || code.starts_with("57P") || code.starts_with("08") {
                return Outcome::Fatal(describe_pg_error(e));
            }
            if ignored_by_gitlab(db.message()) {
                Outcome::Ignored(describe_pg_error(e))
            } else {
                Outcome::Failed(describe_pg_error(e), Some(code.to_string()))
            }
        }
        None => Outcome::Fatal(describe_pg_error(e)),
    }
}

impl Conn {
    pub fn new(client: Client, role: Role, mwm: Option<String>) -> Result<Conn, String> {
        let mut c = Conn {
            client,
            applied: 0,
            role,
            mwm,
        };
        c.own_settings()?;
        Ok(c)
    }

    fn own_settings(&mut self) -> Result<(), String> {
        self.client
            .batch_execute("SET synchronous_commit = off")
            .map_err(|e| describe_pg_error(&e))?;
        if self.role == Role::Index {
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
