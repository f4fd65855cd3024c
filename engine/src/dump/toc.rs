//! pg_dump's table-of-contents comment headers.
//!
//! Before every object a plain dump carries a comment block such as
//!
//! ```text
//! --
//! -- Name: users; Type: TABLE; Schema: public; Owner: gitlab
//! --
//! ```
//!
//! or `-- Data for Name: users; Type: TABLE DATA; Schema: public; Owner: gitlab` before a
//! `COPY` block (`_printTocEntry` in pg_dump's `pg_backup_archiver.c`). Names may contain
//! `; `, so a header is only a hint for messages and classification: the statement that
//! follows is the truth.

use serde::Serialize;

/// One parsed TOC header comment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TocHeader {
    /// The object's name as pg_dump printed it (`users`, `FUNCTION f(integer)`, ...).
    pub name: String,
    /// pg_dump's object type (`TABLE`, `INDEX`, `FK CONSTRAINT`, `TABLE DATA`, ...).
    pub kind: String,
    /// Schema, `None` when pg_dump printed `-`.
    pub schema: Option<String>,
    /// Owner, `None` when pg_dump printed `-` or nothing (`--no-owner`).
    pub owner: Option<String>,
    /// `true` for `-- Data for Name: ...` headers.
    pub data: bool,
}

impl TocHeader {
    /// Parse one comment line (with or without its line end). Returns `None` for any other
    /// comment.
    pub fn parse(line: &str) -> Option<TocHeader> {
        let line = line.trim_end_matches(['\n', '\r']);
        let (rest, data) = if let Some(r) = line.strip_prefix("-- Name: ") {
            (r, false)
        } else if let Some(r) = line.strip_prefix("-- Data for Name: ") {
            (r, true)
        } else {
            return None;
        };
        // Fields after the name have fixed labels; take them from the right so that a
        // name containing `; ` stays whole. An optional `; Tablespace: ...` comes last.
        let rest = match rest.rfind("; Tablespace: ") {
            Some(i) if !rest[i..].contains("; Owner: ") => &rest[..i],
            _ => rest,
        };
        let owner_at = rest.rfind("; Owner: ")?;
        let owner = &rest[owner_at + "; Owner: ".len()..];
        let rest = &rest[..owner_at];
        let schema_at = rest.rfind("; Schema: ")?;
        let schema = &rest[schema_at + "; Schema: ".len()..];
        let rest = &rest[..schema_at];
        let type_at = rest.rfind("; Type: ")?;
        let kind = &rest[type_at + "; Type: ".len()..];
        let name = &rest[..type_at];
        let opt = |s: &str| (!s.is_empty() && s != "-").then(|| s.to_string());
        Some(TocHeader {
            name: name.to_string(),
            kind: kind.to_string(),
            schema: opt(schema),
            owner: opt(owner),
            data,
        })
    }

    /// `TABLE public.users` style description for messages.
    pub fn describe(&self) -> String {
        match &self.schema {
            Some(s) => format!("{} {}.{}", self.kind, s, self.name),
            None => format!("{} {}", self.kind, self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_data_headers() {
        let h = TocHeader::parse("-- Name: users; Type: TABLE; Schema: public; Owner: gitlab\n")
            .unwrap();
        assert_eq!(h.name, "users");
        assert_eq!(h.kind, "TABLE");
        assert_eq!(h.schema.as_deref(), Some("public"));
        assert_eq!(h.owner.as_deref(), Some("gitlab"));
        assert!(!h.data);
        let h = TocHeader::parse(
            "-- Data for Name: ci_builds; Type: TABLE DATA; Schema: public; Owner: -",
        )
        .unwrap();
        assert!(h.data);
        assert_eq!(h.owner, None);
        assert_eq!(h.describe(), "TABLE DATA public.ci_builds");
    }

    #[test]
    fn names_with_separators_and_tablespace() {
        let h = TocHeader::parse(
            "-- Name: a; Type: b; Type: TABLE; Schema: public; Owner: me; Tablespace: fast",
        )
        .unwrap();
        assert_eq!(h.name, "a; Type: b");
        assert_eq!(h.kind, "TABLE");
        let h = TocHeader::parse("-- Name: SCHEMA public; Type: ACL; Schema: -; Owner: postgres")
            .unwrap();
        assert_eq!(h.schema, None);
        assert_eq!(h.name, "SCHEMA public");
        assert!(TocHeader::parse("-- PostgreSQL database dump").is_none());
        assert!(TocHeader::parse("-- Name: broken").is_none());
    }
}
