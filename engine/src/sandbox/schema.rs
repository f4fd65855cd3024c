//! The sandbox's GitLab-like schema (`assets/sandbox/schema.sql`, embedded in the binary).

use super::{sql_err, Result};

/// The schema as of "GitLab 16.10.3": tables in `public`, partitions in
/// `gitlab_partitions_dynamic`/`gitlab_partitions_static`, views, materialized views,
/// sequences, identity and generated columns, foreign keys, triggers, plpgsql functions,
/// `pg_trgm`/`btree_gist`, `schema_migrations` and `ar_internal_metadata`.
pub const SCHEMA_SQL: &str = include_str!("../../../assets/sandbox/schema.sql");

/// Schemas the sandbox creates besides `public`.
pub const PARTITION_SCHEMAS: [&str; 2] = ["gitlab_partitions_dynamic", "gitlab_partitions_static"];

/// Load [`SCHEMA_SQL`] into an empty database, in one transaction. Needs the `pg_trgm` and
/// `btree_gist` extensions available on the server (PostgreSQL contrib).
pub fn load_schema(client: &mut postgres::Client) -> Result<()> {
    let mut tx = client
        .transaction()
        .map_err(sql_err("starting the schema transaction"))?;
    tx.batch_execute(SCHEMA_SQL)
        .map_err(sql_err("loading assets/sandbox/schema.sql"))?;
    tx.commit().map_err(sql_err("committing the schema"))
}
