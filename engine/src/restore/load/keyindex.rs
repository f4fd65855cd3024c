//! Primary keys and unique constraints built as a unique index first, then attached.
//!
//! `ALTER TABLE ... ADD CONSTRAINT c PRIMARY KEY (cols)` builds its index under ACCESS
//! EXCLUSIVE, so nothing else may touch the table meanwhile: on a large table the key
//! build delays every other index of that table (a long GIN build waits behind it).
//! `CREATE UNIQUE INDEX c ON t USING btree (cols)` builds the same index under SHARE, beside
//! the table's other builds; `ALTER TABLE ONLY t ADD CONSTRAINT c PRIMARY KEY USING INDEX
//! c` then takes ACCESS EXCLUSIVE only to attach it (no build; a primary key still sets
//! `NOT NULL` as the plain form does). The catalogue ends the same: a constraint named `c`
//! owning an index named `c` with the default btree operator classes, which `pg_dump`
//! prints as the dump's own statement. PostgreSQL's documentation gives this form for
//! building a key without blocking (`ALTER TABLE`, "ADD table_constraint_using_index").
//!
//! Only the plain form pg_dump writes for a non-partitioned table is rewritten: a
//! schema-qualified `ALTER TABLE ONLY`, a simple column list and nothing after it (no
//! `INCLUDE`, `WITH`, `USING INDEX TABLESPACE`, `DEFERRABLE`, `NULLS NOT DISTINCT`).
//! Anything else runs as written. When either step fails, the index is dropped and the
//! dump's own statement runs, so errors and their handling stay psql's.

use std::sync::OnceLock;

use regex::Regex;

use crate::dump::QualifiedName;
use crate::pg::ident::quote_ident;

/// The two statements that replace one key constraint, and the undo of the first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyViaIndex {
    /// `CREATE UNIQUE INDEX c ON t USING btree (cols);` (SHARE on the table).
    pub index_sql: String,
    /// `ALTER TABLE ONLY t ADD CONSTRAINT c PRIMARY KEY USING INDEX c;` (ACCESS EXCLUSIVE).
    pub attach_sql: String,
    /// `DROP INDEX IF EXISTS s.c;` when the attach fails.
    pub drop_sql: String,
}

fn pattern() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        // identifier: unquoted (as PostgreSQL folds it) or double-quoted with "" escapes.
        let ident = r#"(?:[A-Za-z_][A-Za-z0-9_$]*|"(?:[^"]|"")+")"#;
        Regex::new(&format!(
            r#"(?is)^\s*ALTER\s+TABLE\s+ONLY\s+{ident}\s*\.\s*{ident}\s+ADD\s+CONSTRAINT\s+(?P<name>{ident})\s+(?P<kind>PRIMARY\s+KEY|UNIQUE)\s*\((?P<cols>\s*{ident}(?:\s*,\s*{ident})*\s*)\)\s*;?\s*$"#
        ))
        .expect("key constraint pattern")
    })
}

/// The rewrite of `sql` (a key constraint on `table`, as classified), or `None` to run it
/// as written.
pub(crate) fn key_via_index(sql: &str, table: &QualifiedName) -> Option<KeyViaIndex> {
    let schema = table.schema.as_deref()?;
    let c = pattern().captures(sql)?;
    let name = c.name("name")?.as_str();
    let kind = if c
        .name("kind")?
        .as_str()
        .to_ascii_uppercase()
        .starts_with('P')
    {
        "PRIMARY KEY"
    } else {
        "UNIQUE"
    };
    let cols = c.name("cols")?.as_str().trim();
    let t = table.quoted();
    Some(KeyViaIndex {
        index_sql: format!("CREATE UNIQUE INDEX {name} ON {t} USING btree ({cols});"),
        attach_sql: format!(
            "ALTER TABLE ONLY {t} ADD CONSTRAINT {name} {kind} USING INDEX {name};"
        ),
        drop_sql: format!("DROP INDEX IF EXISTS {}.{name};", quote_ident(schema)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(schema: &str, name: &str) -> QualifiedName {
        QualifiedName::new(Some(schema), name)
    }

    #[test]
    fn pg_dumps_plain_keys_are_rewritten() {
        let k = key_via_index(
            "ALTER TABLE ONLY public.notes\n    ADD CONSTRAINT notes_pkey PRIMARY KEY (id);",
            &t("public", "notes"),
        )
        .unwrap();
        assert_eq!(
            k.index_sql,
            "CREATE UNIQUE INDEX notes_pkey ON \"public\".\"notes\" USING btree (id);"
        );
        assert_eq!(
            k.attach_sql,
            "ALTER TABLE ONLY \"public\".\"notes\" ADD CONSTRAINT notes_pkey PRIMARY KEY USING INDEX notes_pkey;"
        );
        assert_eq!(k.drop_sql, "DROP INDEX IF EXISTS \"public\".notes_pkey;");

        let k = key_via_index(
            "ALTER TABLE ONLY \"My Schema\".\"Odd \"\"t\"\"\"\n    ADD CONSTRAINT \"Odd key\" UNIQUE (project_id, \"Iid\");",
            &t("My Schema", "Odd \"t\""),
        )
        .unwrap();
        assert_eq!(
            k.index_sql,
            "CREATE UNIQUE INDEX \"Odd key\" ON \"My Schema\".\"Odd \"\"t\"\"\" USING btree (project_id, \"Iid\");"
        );
        assert!(k
            .attach_sql
            .ends_with("ADD CONSTRAINT \"Odd key\" UNIQUE USING INDEX \"Odd key\";"));
        assert_eq!(
            k.drop_sql,
            "DROP INDEX IF EXISTS \"My Schema\".\"Odd key\";"
        );
    }

    #[test]
    fn anything_but_the_plain_form_runs_as_written() {
        let tbl = t("public", "t");
        for sql in [
            // options the index form would lose or change
            "ALTER TABLE ONLY public.t ADD CONSTRAINT k PRIMARY KEY (id) WITH (fillfactor='70');",
            "ALTER TABLE ONLY public.t ADD CONSTRAINT k PRIMARY KEY (id) USING INDEX TABLESPACE x;",
            "ALTER TABLE ONLY public.t ADD CONSTRAINT k UNIQUE (a) DEFERRABLE INITIALLY DEFERRED;",
            "ALTER TABLE ONLY public.t ADD CONSTRAINT k UNIQUE (a) INCLUDE (b);",
            "ALTER TABLE ONLY public.t ADD CONSTRAINT k UNIQUE NULLS NOT DISTINCT (a);",
            "ALTER TABLE ONLY public.t ADD CONSTRAINT k EXCLUDE USING gist (r WITH &&);",
            // not ONLY (a partitioned table's key recurses), not qualified
            "ALTER TABLE public.t ADD CONSTRAINT k PRIMARY KEY (id);",
            "ALTER TABLE ONLY t ADD CONSTRAINT k PRIMARY KEY (id);",
            // a second statement smuggled after it
            "ALTER TABLE ONLY public.t ADD CONSTRAINT k PRIMARY KEY (id); DROP TABLE public.t;",
            // expressions are not columns
            "ALTER TABLE ONLY public.t ADD CONSTRAINT k UNIQUE ((lower(a)));",
        ] {
            assert_eq!(key_via_index(sql, &tbl), None, "{sql}");
        }
        assert_eq!(
            key_via_index(
                "ALTER TABLE ONLY t ADD CONSTRAINT k PRIMARY KEY (id);",
                &QualifiedName::new(None, "t")
            ),
            None
        );
    }
}
