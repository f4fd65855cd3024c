//! Autovacuum kept off the large tables while they load and their indexes build.
//!
//! A table's committed COPY makes it a candidate for autovacuum (insert and analyze
//! thresholds; Omnibus lowers them tenfold). An autovacuum worker that gets to it holds
//! SHARE UPDATE EXCLUSIVE, which every index build, key and foreign key on that table
//! conflicts with: the build waits until the deadlock detector cancels the worker, one
//! `deadlock_timeout` later (5 s on Omnibus), each time a worker comes back between two
//! builds. Measured on the skewed benchmark under Omnibus's settings: two key builds
//! waited 4.5 s and 5.4 s.
//!
//! So a large table this load created (a plain table, created without storage options)
//! gets `autovacuum_enabled = false` just before its data is sent, and the option is
//! reset once the whole dump has run, before the load reports success; a load that fails
//! resets it as far as the connection allows (the restore must run again then anyway: it
//! drops every table). The catalogue ends as psql leaves it: `pg_dump -s` shows no
//! storage option.

use crate::dump::{classify, creates_partitioned_table, Kind, QualifiedName};

/// The table a successful `CREATE TABLE` statement created, when autovacuum may be switched
/// off for it: schema-qualified, not partitioned (no storage), no storage options of its
/// own (`WITH (...)`, which the reset must never touch).
pub(crate) fn candidate(sql: &str) -> Option<QualifiedName> {
    let head = sql.trim_start();
    let create = head
        .get(..6)
        .is_some_and(|w| w.eq_ignore_ascii_case("CREATE"));
    if !create {
        return None;
    }
    let Kind::CreateTable { table } = classify(sql, None) else {
        return None;
    };
    table.schema.as_ref()?;
    let upper = sql.to_ascii_uppercase();
    if upper.contains("WITH (")
        || upper.contains("WITH(")
        || upper.contains("AUTOVACUUM")
        || upper.contains("IF NOT EXISTS")
        || creates_partitioned_table(sql)
    {
        return None;
    }
    Some(table)
}

/// Switch autovacuum off for `table`.
pub(crate) fn off_sql(table: &QualifiedName) -> String {
    format!(
        "ALTER TABLE ONLY {} SET (autovacuum_enabled = false);",
        table.quoted()
    )
}

/// Give `table` back its default (no storage option).
pub(crate) fn reset_sql(table: &QualifiedName) -> String {
    format!(
        "ALTER TABLE IF EXISTS ONLY {} RESET (autovacuum_enabled);",
        table.quoted()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_tables_without_options() {
        let t = QualifiedName::new(Some("public"), "notes");
        assert_eq!(
            candidate("CREATE TABLE public.notes (\n    id bigint NOT NULL,\n    note text\n);"),
            Some(t.clone())
        );
        assert_eq!(
            candidate("CREATE UNLOGGED TABLE public.notes (id bigint);"),
            Some(t.clone())
        );
        assert_eq!(
            candidate("CREATE TABLE public.p_2024 PARTITION OF public.p FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');"),
            Some(QualifiedName::new(Some("public"), "p_2024"))
        );
        for sql in [
            "CREATE TABLE public.notes (id bigint) WITH (fillfactor='70');",
            "CREATE TABLE public.notes (id bigint)\nWITH (autovacuum_enabled='false');",
            "CREATE TABLE public.p (id bigint, at date) PARTITION BY RANGE (at);",
            "CREATE TABLE notes (id bigint);",
            "CREATE INDEX i ON public.notes (id);",
            "ALTER TABLE public.notes SET (autovacuum_enabled = false);",
            "CREATE FOREIGN TABLE public.f (id bigint) SERVER s;",
            // may have created nothing: the table would be somebody else's
            "CREATE TABLE IF NOT EXISTS public.notes (id bigint);",
        ] {
            assert_eq!(candidate(sql), None, "{sql}");
        }
        assert_eq!(
            off_sql(&t),
            "ALTER TABLE ONLY \"public\".\"notes\" SET (autovacuum_enabled = false);"
        );
        assert_eq!(
            reset_sql(&t),
            "ALTER TABLE IF EXISTS ONLY \"public\".\"notes\" RESET (autovacuum_enabled);"
        );
    }
}
