//! What the restoring role may do with a dump, checked in the first (read-only) pass,
//! before the snapshot and the drop.
//!
//! On Omnibus the restore runs as `gitlab`, which owns the database but is no superuser;
//! extensions and, with PgBouncer, `public.pg_shadow_lookup(...)` belong to the superuser
//! `gitlab-psql`. A dump then names roles `gitlab` is not a member of (`ALTER ... OWNER TO
//! "gitlab-psql"`): those statements fail for GitLab's psql restore too and leave the same
//! database, so the load skips them (reported, see `load::SkipReason`); here they become a
//! warning. An extension the dump needs that is not installed and that the role may not
//! create would leave the database without it (and without what depends on it): that is
//! refused here, while nothing has changed yet.

use postgres::GenericClient;
use serde::Serialize;

use super::leftovers::{DumpCatalog, RoleUse};
use crate::pg::conn::describe_pg_error;
use crate::pg::ident::quote_ident;

/// A role the dump names that the restoring role cannot act as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ForeignRole {
    pub role: String,
    /// Whether the role exists on the server at all.
    pub exists: bool,
    /// How the dump names it.
    pub uses: RoleUse,
}

/// Whether an extension the dump creates will be there after the load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExtensionState {
    /// Installed in the database (the dump's `CREATE EXTENSION IF NOT EXISTS` keeps it).
    Installed,
    /// Not installed; the restoring role may create it (superuser, or a trusted extension
    /// and CREATE on the database).
    Creatable,
    /// Not installed, and the restoring role may not create it.
    NotPermitted,
    /// The server does not have it (no control file).
    Unavailable,
}

/// One extension of the dump.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExtensionCheck {
    pub name: String,
    /// The schema the dump creates it in (`WITH SCHEMA s`).
    pub schema: Option<String>,
    pub state: ExtensionState,
    /// Marked trusted by the server (`pg_available_extension_versions.trusted`).
    pub trusted: bool,
}

impl ExtensionCheck {
    /// What a superuser runs to create it, e.g. `CREATE EXTENSION "pg_trgm" WITH SCHEMA
    /// "public"`.
    pub fn create_sql(&self) -> String {
        match &self.schema {
            Some(s) => format!(
                "CREATE EXTENSION {} WITH SCHEMA {}",
                quote_ident(&self.name),
                quote_ident(s)
            ),
            None => format!("CREATE EXTENSION {}", quote_ident(&self.name)),
        }
    }
}

/// What the restoring role may do with the dump.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PrivilegeReport {
    /// The restoring role (`current_user`).
    pub role: String,
    pub database: String,
    pub superuser: bool,
    /// May create objects (and trusted extensions) in the database.
    pub create_on_database: bool,
    /// Roles the dump names that the restoring role is not a member of (or that do not
    /// exist).
    pub foreign_roles: Vec<ForeignRole>,
    /// Every extension the dump creates.
    pub extensions: Vec<ExtensionCheck>,
}

/// Why a restore is refused before anything changed.
#[derive(Debug, thiserror::Error)]
pub enum PrecheckError {
    #[error(
        "checking what role `{role}` may do in `{database}` failed: {detail}. Nothing was changed"
    )]
    Query {
        role: String,
        database: String,
        detail: String,
    },
    #[error("{}", refusal_text(.0))]
    Extensions(Box<PrivilegeReport>),
}

fn refusal_text(r: &PrivilegeReport) -> String {
    let mut lines = vec![format!(
        "the dump needs extensions that role `{}` cannot have in `{}`; the load would leave the database without them and what depends on them. Nothing was changed.",
        r.role, r.database
    )];
    for e in r.problems() {
        lines.push(match e.state {
            ExtensionState::Unavailable => format!(
                "  - extension `{}` is not available on this PostgreSQL server: install the package that provides it on the database server, then run the restore again",
                e.name
            ),
            _ => format!(
                "  - extension `{}` is not installed and `{}` may not create it ({}): create it as a superuser first, e.g. on Omnibus: gitlab-psql -d {} -c '{}'",
                e.name,
                r.role,
                if !e.trusted {
                    "it is not a trusted extension and the role is not a superuser"
                } else {
                    "the role lacks CREATE on the database"
                },
                r.database,
                e.create_sql()
            ),
        });
    }
    lines.join("\n")
}

impl PrivilegeReport {
    /// Ownership statements (and `SET ROLE`s) naming roles the restoring role cannot act
    /// as: they fail, and are skipped as GitLab's restore skips them.
    pub fn skipped_statements(&self) -> usize {
        self.foreign_roles
            .iter()
            .map(|r| r.uses.ownership + r.uses.session)
            .sum()
    }

    /// Extensions the load would not be able to create.
    pub fn problems(&self) -> impl Iterator<Item = &ExtensionCheck> {
        self.extensions.iter().filter(|e| {
            matches!(
                e.state,
                ExtensionState::NotPermitted | ExtensionState::Unavailable
            )
        })
    }

    /// Lines to show before the restore (nothing is refused for them).
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        let n = self.skipped_statements();
        if n > 0 {
            let names: Vec<String> = self
                .foreign_roles
                .iter()
                .filter(|r| r.uses.ownership + r.uses.session > 0)
                .map(|r| format!("`{}`", r.role))
                .collect();
            out.push(format!(
                "{n} ownership statement(s) will be skipped, as GitLab's restore skips them: they name {} of which `{}` is not a member",
                names.join(", "),
                self.role
            ));
        }
        for r in self.foreign_roles.iter().filter(|r| !r.exists) {
            out.push(format!(
                "role `{}` named by the dump does not exist on this server: its statements fail with `does not exist`, which GitLab's restore ignores",
                r.role
            ));
        }
        out
    }

    /// The refusal, when an extension the dump needs cannot be had.
    pub fn refusal(&self) -> Option<PrecheckError> {
        self.problems()
            .next()
            .map(|_| PrecheckError::Extensions(Box::new(self.clone())))
    }
}

/// Check, as the restoring role connected through `client`, the roles and extensions of
/// `catalog`. Read-only.
pub fn check_privileges(
    client: &mut impl GenericClient,
    catalog: &DumpCatalog,
) -> Result<PrivilegeReport, PrecheckError> {
    let (role, database, superuser, create_on_database, version) = {
        let row = client
            .query_one(
                "SELECT current_user::text, current_database()::text, \
                 COALESCE((SELECT rolsuper FROM pg_roles WHERE rolname = current_user), false), \
                 has_database_privilege(current_database(), 'CREATE'), \
                 current_setting('server_version_num')::int",
                &[],
            )
            .map_err(|e| PrecheckError::Query {
                role: "(current user)".into(),
                database: "(current database)".into(),
                detail: describe_pg_error(&e),
            })?;
        (
            row.get::<_, String>(0),
            row.get::<_, String>(1),
            row.get::<_, bool>(2),
            row.get::<_, bool>(3),
            row.get::<_, i32>(4),
        )
    };
    let fail = |e: postgres::Error| PrecheckError::Query {
        role: role.clone(),
        database: database.clone(),
        detail: describe_pg_error(&e),
    };
    // PostgreSQL 16 asks for the right to SET ROLE (a member may lack it).
    let mode = if version >= 160000 { "SET" } else { "MEMBER" };
    let names: Vec<String> = catalog.roles.keys().cloned().collect();
    let rows = client
        .query(
            "SELECT r.name, ro.oid IS NOT NULL, \
             CASE WHEN ro.oid IS NULL THEN false ELSE pg_has_role(current_user, ro.oid, $2) END \
             FROM unnest($1::text[]) AS r(name) LEFT JOIN pg_roles ro ON ro.rolname = r.name \
             ORDER BY 1",
            &[&names, &mode],
        )
        .map_err(fail)?;
    let mut foreign_roles = Vec::new();
    for row in rows {
        let (name, exists, member): (String, bool, bool) = (row.get(0), row.get(1), row.get(2));
        if !member {
            foreign_roles.push(ForeignRole {
                uses: catalog.roles.get(&name).cloned().unwrap_or_default(),
                role: name,
                exists,
            });
        }
    }
    let trusted = if version >= 130000 {
        "COALESCE((SELECT v.trusted FROM pg_available_extension_versions v \
           JOIN pg_available_extensions a ON a.name = v.name AND a.default_version = v.version \
           WHERE v.name = e.name), false)"
    } else {
        "false"
    };
    let sql = format!(
        "SELECT e.name, \
           EXISTS (SELECT 1 FROM pg_extension x WHERE x.extname = e.name), \
           EXISTS (SELECT 1 FROM pg_extension x JOIN pg_roles o ON o.oid = x.extowner \
                   WHERE x.extname = e.name AND o.rolname = current_user), \
           EXISTS (SELECT 1 FROM pg_available_extensions a WHERE a.name = e.name), \
           {trusted} \
         FROM unnest($1::text[]) AS e(name) ORDER BY 1"
    );
    let names: Vec<String> = catalog.extensions.keys().cloned().collect();
    let rows = client.query(&sql, &[&names]).map_err(fail)?;
    let mut extensions = Vec::new();
    for row in rows {
        let name: String = row.get(0);
        let (installed, owned, available, trusted): (bool, bool, bool, bool) =
            (row.get(1), row.get(2), row.get(3), row.get(4));
        let may_create = available && (superuser || (trusted && create_on_database));
        // An extension the role owns is dropped by the dump's `DROP EXTENSION IF EXISTS`
        // and must be created again.
        let state = if installed && (!owned || may_create) {
            ExtensionState::Installed
        } else if !available {
            ExtensionState::Unavailable
        } else if may_create {
            ExtensionState::Creatable
        } else {
            ExtensionState::NotPermitted
        };
        extensions.push(ExtensionCheck {
            schema: catalog.extensions.get(&name).cloned().flatten(),
            name,
            state,
            trusted,
        });
    }
    Ok(PrivilegeReport {
        role,
        database,
        superuser,
        create_on_database,
        foreign_roles,
        extensions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg::cluster::TempCluster;

    #[test]
    fn roles_and_extensions_as_a_non_superuser_owner() {
        let c = TempCluster::start().unwrap();
        // Omnibus's model: `gitlab` owns the database, `gitlab-psql` is the superuser.
        c.create_database("gl").unwrap();
        c.connect("gl")
            .unwrap()
            .batch_execute("CREATE EXTENSION btree_gist")
            .unwrap();
        let mut catalog = DumpCatalog::default();
        for sql in [
            "CREATE EXTENSION IF NOT EXISTS btree_gist WITH SCHEMA public;",
            "CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public;",
            "CREATE EXTENSION IF NOT EXISTS postgres_fdw WITH SCHEMA public;",
            "CREATE EXTENSION IF NOT EXISTS no_such_ext;",
            "ALTER FUNCTION public.f() OWNER TO \"gitlab-psql\";",
            "ALTER TABLE public.t OWNER TO gitlab;",
            "GRANT ALL ON TABLE public.t TO nobody_here;",
        ] {
            catalog.add_statement_roles(sql);
        }
        let spec = c.conn_spec("gl");
        let mut client = spec.connect().unwrap();
        let r = check_privileges(&mut client, &catalog).unwrap();
        assert_eq!(r.role, "gitlab");
        assert!(!r.superuser && r.create_on_database);
        let roles: Vec<(&str, bool)> = r
            .foreign_roles
            .iter()
            .map(|f| (f.role.as_str(), f.exists))
            .collect();
        assert_eq!(roles, vec![("gitlab-psql", true), ("nobody_here", false)]);
        assert_eq!(r.skipped_statements(), 1);
        let w = r.warnings();
        assert!(
            w[0].starts_with(
                "1 ownership statement(s) will be skipped, as GitLab's restore skips them"
            ) && w[0].contains("`gitlab-psql`"),
            "{w:?}"
        );
        let states: Vec<(&str, ExtensionState)> = r
            .extensions
            .iter()
            .map(|e| (e.name.as_str(), e.state))
            .collect();
        assert_eq!(
            states,
            vec![
                ("btree_gist", ExtensionState::Installed),
                ("no_such_ext", ExtensionState::Unavailable),
                ("pg_trgm", ExtensionState::Creatable),
                ("postgres_fdw", ExtensionState::NotPermitted),
            ]
        );
        let msg = r.refusal().unwrap().to_string();
        assert!(
            msg.contains("`postgres_fdw` is not installed")
                && msg.contains(
                    "gitlab-psql -d gl -c 'CREATE EXTENSION \"postgres_fdw\" WITH SCHEMA \"public\"'"
                )
                && msg.contains("`no_such_ext` is not available")
                && msg.contains("Nothing was changed"),
            "{msg}"
        );
        // As the superuser: every available extension may be created; no foreign roles
        // but the missing one.
        let mut su_db = c.connect("gl").unwrap();
        let r = check_privileges(&mut su_db, &catalog).unwrap();
        assert!(r.superuser);
        assert_eq!(r.foreign_roles.len(), 1);
        assert_eq!(r.skipped_statements(), 0);
        assert_eq!(r.problems().count(), 1);
    }
}
