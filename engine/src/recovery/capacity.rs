//! Whether the loader's connections fit: the server's free connections (less those
//! reserved for superusers), the role's connection limit and the database's. Read before
//! anything is dropped, so that "too many clients" can no longer happen after the drop.

use serde::Serialize;

use crate::pg::conn::describe_pg_error;

/// Connections available to the restoring role, as the server counts them now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Capacity {
    pub max_connections: i64,
    /// Reserved for superusers (and, 16+, for `pg_use_reserved_connections`), when the
    /// role is not a superuser.
    pub reserved: i64,
    /// Client connections open on the server (this one included).
    pub in_use: i64,
    /// The role's `CONNECTION LIMIT` and its open connections (`None`: no limit).
    pub role_limit: Option<(i64, i64)>,
    /// The database's `CONNECTION LIMIT` and its open connections.
    pub database_limit: Option<(i64, i64)>,
    /// How many more connections the role may open.
    pub free: i64,
}

/// Read the capacity through `client` (a connection as the restoring role to the target
/// database, which stays open during the run).
pub fn read(client: &mut postgres::Client) -> Result<Capacity, String> {
    let row = client
        .query_one(
            "SELECT current_setting('max_connections')::bigint, \
                    current_setting('superuser_reserved_connections')::bigint, \
                    coalesce(nullif(current_setting('reserved_connections', true), ''), '0')::bigint, \
                    (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'), \
                    r.rolsuper, r.rolconnlimit::bigint, \
                    (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' \
                       AND usename = current_user), \
                    d.datconnlimit::bigint, \
                    (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' \
                       AND datname = current_database()) \
             FROM pg_roles r, pg_database d \
             WHERE r.rolname = current_user AND d.datname = current_database()",
            &[],
        )
        .map_err(|e| describe_pg_error(&e))?;
    let max: i64 = row.get(0);
    let su_reserved: i64 = row.get(1);
    let reserved: i64 = row.get(2);
    let in_use: i64 = row.get(3);
    let superuser: bool = row.get(4);
    let rolconn: i64 = row.get(5);
    let role_in_use: i64 = row.get(6);
    let datconn: i64 = row.get(7);
    let db_in_use: i64 = row.get(8);
    let reserved = if superuser { 0 } else { su_reserved + reserved };
    let role_limit = (rolconn >= 0 && !superuser).then_some((rolconn, role_in_use));
    let database_limit = (datconn >= 0 && !superuser).then_some((datconn, db_in_use));
    let mut free = max - reserved - in_use;
    if let Some((limit, used)) = role_limit {
        free = free.min(limit - used);
    }
    if let Some((limit, used)) = database_limit {
        free = free.min(limit - used);
    }
    Ok(Capacity {
        max_connections: max,
        reserved,
        in_use,
        role_limit,
        database_limit,
        free: free.max(0),
    })
}

/// The connections a load with `jobs` workers opens at once besides the one the capacity
/// was read on (which stays open): the main connection, the workers, and one for the
/// checks that open and close their own.
pub fn needed(jobs: usize) -> i64 {
    jobs as i64 + 2
}

/// Fit `requested` jobs into `cap`: `Ok((jobs, None))` when they fit, `Ok((fewer,
/// Some(why)))` when fewer fit, `Err(why)` when not even one does.
pub fn fit(requested: usize, cap: &Capacity) -> Result<(usize, Option<String>), String> {
    if needed(requested) <= cap.free {
        return Ok((requested, None));
    }
    let limits = describe(cap);
    let possible = cap.free - needed(0);
    if possible >= 1 {
        Ok((
            possible as usize,
            Some(format!(
                "--jobs {requested} needs {} connections but only {} are free ({limits}): using {possible} jobs",
                needed(requested),
                cap.free
            )),
        ))
    } else {
        Err(format!(
            "the restore needs at least {} connections but only {} are free ({limits}); close other sessions, or raise max_connections or the role's CONNECTION LIMIT",
            needed(1),
            cap.free
        ))
    }
}

fn describe(cap: &Capacity) -> String {
    let mut parts = vec![format!(
        "max_connections {}, {} reserved, {} in use",
        cap.max_connections, cap.reserved, cap.in_use
    )];
    if let Some((l, u)) = cap.role_limit {
        parts.push(format!("role limit {l}, {u} in use"));
    }
    if let Some((l, u)) = cap.database_limit {
        parts.push(format!("database limit {l}, {u} in use"));
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap(free: i64) -> Capacity {
        Capacity {
            max_connections: 100,
            reserved: 3,
            in_use: 10,
            role_limit: Some((free + 1, 1)),
            database_limit: None,
            free,
        }
    }

    #[test]
    fn jobs_fit_are_reduced_or_refused() {
        assert_eq!(fit(4, &cap(50)).unwrap(), (4, None));
        let (n, why) = fit(500, &cap(10)).unwrap();
        assert_eq!(n, 8);
        assert!(why.unwrap().contains("role limit 11"));
        assert!(fit(2, &cap(2)).unwrap_err().contains("at least 3"));
    }
}
