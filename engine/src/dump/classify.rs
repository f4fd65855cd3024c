//! What a dump statement does, read from the statement itself (TOC headers only help).
//!
//! A small SQL tokenizer reads the first words of a statement (skipping comments, folding
//! unquoted identifiers to lower case, unescaping quoted ones) so that names containing
//! `;`, spaces or quotes are read correctly.

use std::fmt;

use serde::Serialize;

use super::toc::TocHeader;
use crate::pg::ident::quote_ident;

/// A possibly schema-qualified relation name, as PostgreSQL resolves it (unquoted parts
/// folded to lower case).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct QualifiedName {
    pub schema: Option<String>,
    pub name: String,
}

impl QualifiedName {
    pub fn new(schema: Option<&str>, name: &str) -> Self {
        QualifiedName {
            schema: schema.map(str::to_string),
            name: name.to_string(),
        }
    }

    /// The name quoted for SQL: `"schema"."name"`.
    pub fn quoted(&self) -> String {
        match &self.schema {
            Some(s) => format!("{}.{}", quote_ident(s), quote_ident(&self.name)),
            None => quote_ident(&self.name),
        }
    }
}

impl fmt::Display for QualifiedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.schema {
            Some(s) => write!(f, "{s}.{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    /// Unquoted word, as written.
    Word(String),
    /// Quoted identifier, unescaped.
    Ident(String),
    /// String literal, unescaped (standard strings).
    Str(String),
    Punct(char),
    Other,
}

impl Tok {
    fn is_kw(&self, kw: &str) -> bool {
        matches!(self, Tok::Word(w) if w.eq_ignore_ascii_case(kw))
    }
    fn name(&self) -> Option<String> {
        match self {
            Tok::Word(w) => Some(w.to_ascii_lowercase()),
            Tok::Ident(s) => Some(s.clone()),
            _ => None,
        }
    }
}

/// The first `max` tokens of `sql`.
fn tokens(sql: &str, max: usize) -> Vec<Tok> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() && out.len() < max {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'-' && b.get(i + 1) == Some(&b'-') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == b'"' || c == b'\'' {
            let mut s = Vec::new();
            i += 1;
            while i < b.len() {
                if b[i] == c {
                    if b.get(i + 1) == Some(&c) {
                        s.push(c);
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                s.push(b[i]);
                i += 1;
            }
            let s = String::from_utf8_lossy(&s).into_owned();
            out.push(if c == b'"' {
                Tok::Ident(s)
            } else {
                Tok::Str(s)
            });
        } else if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 {
            let st = i;
            while i < b.len()
                && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'$' || b[i] >= 0x80)
            {
                i += 1;
            }
            out.push(Tok::Word(String::from_utf8_lossy(&b[st..i]).into_owned()));
        } else if c.is_ascii_digit() {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.') {
                i += 1;
            }
            out.push(Tok::Other);
        } else {
            out.push(Tok::Punct(c as char));
            i += 1;
        }
    }
    out
}

/// A qualified name at `toks[i..]`; returns it and the index after it.
fn qualified_at(toks: &[Tok], i: usize) -> Option<(QualifiedName, usize)> {
    let first = toks.get(i)?.name()?;
    if toks.get(i + 1) == Some(&Tok::Punct('.')) {
        let second = toks.get(i + 2)?.name()?;
        Some((
            QualifiedName {
                schema: Some(first),
                name: second,
            },
            i + 3,
        ))
    } else {
        Some((
            QualifiedName {
                schema: None,
                name: first,
            },
            i + 1,
        ))
    }
}

/// The table of a `COPY table [(cols)] FROM stdin;` statement.
pub fn parse_copy_header(sql: &str) -> Result<QualifiedName, String> {
    let toks = tokens(sql, 8);
    if !toks.first().is_some_and(|t| t.is_kw("COPY")) {
        return Err("it does not start with COPY".into());
    }
    let (name, next) =
        qualified_at(&toks, 1).ok_or_else(|| "no table name after COPY".to_string())?;
    match toks.get(next) {
        Some(Tok::Punct('(')) => Ok(name),
        Some(t) if t.is_kw("FROM") => Ok(name),
        _ => Err("expected a column list or FROM after the table name".into()),
    }
}

/// What a statement does, as far as scheduling is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// `SET name ...`, `RESET name`, `SELECT pg_catalog.set_config('name', ..., false)`:
    /// session state every connection must replay. `key` identifies the setting.
    Session { key: String },
    /// `CREATE [UNLOGGED] TABLE name ...`.
    CreateTable { table: QualifiedName },
    /// `SELECT pg_catalog.setval(...)`: sequence state, independent of table data.
    SequenceSet,
    /// `CREATE [UNIQUE] INDEX ... ON [ONLY] table ...`: can run beside other index builds,
    /// also on the same table.
    Index { table: QualifiedName },
    /// `ALTER TABLE [ONLY] table ADD CONSTRAINT name PRIMARY KEY|UNIQUE|EXCLUDE ...`:
    /// builds an index under an exclusive lock on the table.
    KeyConstraint { table: QualifiedName },
    /// Another statement of pg_dump's post-data section (foreign keys, triggers, rules,
    /// index attachment, policies, publications, materialized view refresh, ...).
    PostData,
    /// Anything else.
    Other,
}

/// TOC types that pg_dump puts in its post-data section.
const POST_DATA_TOC: &[&str] = &[
    "INDEX",
    "CONSTRAINT",
    "FK CONSTRAINT",
    "TRIGGER",
    "RULE",
    "INDEX ATTACH",
    "MATERIALIZED VIEW DATA",
    "POLICY",
    "ROW SECURITY",
    "PUBLICATION",
    "PUBLICATION TABLE",
    "PUBLICATION TABLES IN SCHEMA",
    "EVENT TRIGGER",
    "STATISTICS",
    "SUBSCRIPTION",
];

/// Classify one statement (`toc` is the header in force, a hint only).
pub fn classify(sql: &str, toc: Option<&TocHeader>) -> Kind {
    let t = tokens(sql, 16);
    let kw = |i: usize, k: &str| t.get(i).is_some_and(|x| x.is_kw(k));
    if kw(0, "SET") {
        let mut i = 1;
        if kw(1, "LOCAL") || kw(1, "CONSTRAINTS") || kw(1, "TRANSACTION") {
            return Kind::Other;
        }
        if kw(1, "SESSION") {
            if kw(2, "AUTHORIZATION") {
                return Kind::Session {
                    key: "session authorization".into(),
                };
            }
            if kw(2, "CHARACTERISTICS") {
                return Kind::Other;
            }
            i = 2;
        }
        if kw(i, "TIME") && kw(i + 1, "ZONE") {
            return Kind::Session {
                key: "timezone".into(),
            };
        }
        return match setting_name(&t, i) {
            Some(key) => Kind::Session { key },
            None => Kind::Other,
        };
    }
    if kw(0, "RESET") {
        if kw(1, "SESSION") && kw(2, "AUTHORIZATION") {
            return Kind::Session {
                key: "session authorization".into(),
            };
        }
        return match setting_name(&t, 1) {
            Some(key) if key != "all" => Kind::Session { key },
            _ => Kind::Other,
        };
    }
    if kw(0, "SELECT") {
        let mut i = 1;
        if kw(1, "pg_catalog") && t.get(2) == Some(&Tok::Punct('.')) {
            i = 3;
        }
        if kw(i, "setval") && t.get(i + 1) == Some(&Tok::Punct('(')) {
            return Kind::SequenceSet;
        }
        if kw(i, "set_config") && t.get(i + 1) == Some(&Tok::Punct('(')) {
            if let (Some(Tok::Str(name)), Some(Tok::Punct(',')), Some(Tok::Str(_))) =
                (t.get(i + 2), t.get(i + 3), t.get(i + 4))
            {
                if t.get(i + 5) == Some(&Tok::Punct(',')) && kw(i + 6, "false") {
                    return Kind::Session {
                        key: name.to_ascii_lowercase(),
                    };
                }
            }
        }
        return Kind::Other;
    }
    if kw(0, "CREATE") {
        let mut i = 1;
        if kw(1, "UNIQUE") {
            i = 2;
        }
        if kw(i, "INDEX") {
            // CREATE [UNIQUE] INDEX [CONCURRENTLY] [[IF NOT EXISTS] name] ON [ONLY] table
            let on = (i + 1..t.len().min(i + 8)).find(|&j| kw(j, "ON"));
            if let Some(on) = on {
                let at = if kw(on + 1, "ONLY") { on + 2 } else { on + 1 };
                if let Some((table, _)) = qualified_at(&t, at) {
                    return Kind::Index { table };
                }
            }
            return Kind::PostData;
        }
        let mut i = 1;
        if kw(1, "UNLOGGED") {
            i = 2;
        }
        if kw(i, "TABLE") {
            let at = if kw(i + 1, "IF") && kw(i + 2, "NOT") && kw(i + 3, "EXISTS") {
                i + 4
            } else {
                i + 1
            };
            if let Some((table, next)) = qualified_at(&t, at) {
                if !kw(next, "AS") {
                    return Kind::CreateTable { table };
                }
            }
            return Kind::Other;
        }
        let mut i = 1;
        if kw(1, "OR") && kw(2, "REPLACE") {
            i = 3;
        }
        if kw(i, "TRIGGER")
            || (kw(i, "CONSTRAINT") && kw(i + 1, "TRIGGER"))
            || kw(i, "RULE")
            || kw(i, "POLICY")
            || kw(i, "PUBLICATION")
            || kw(i, "STATISTICS")
            || (kw(i, "EVENT") && kw(i + 1, "TRIGGER"))
        {
            return Kind::PostData;
        }
    }
    if kw(0, "REFRESH") && kw(1, "MATERIALIZED") {
        return Kind::PostData;
    }
    if kw(0, "ALTER") && kw(1, "INDEX") && t.iter().any(|x| x.is_kw("ATTACH")) {
        return Kind::PostData;
    }
    if kw(0, "ALTER") && kw(1, "PUBLICATION") {
        return Kind::PostData;
    }
    if kw(0, "ALTER") && kw(1, "TABLE") {
        let mut i = 2;
        if kw(i, "IF") && kw(i + 1, "EXISTS") {
            i += 2;
        }
        if kw(i, "ONLY") {
            i += 1;
        }
        if let Some((table, next)) = qualified_at(&t, i) {
            if kw(next, "ADD") && kw(next + 1, "CONSTRAINT") && t.get(next + 2).is_some() {
                let c = next + 3;
                if (kw(c, "PRIMARY") && kw(c + 1, "KEY")) || kw(c, "UNIQUE") || kw(c, "EXCLUDE") {
                    return Kind::KeyConstraint { table };
                }
                if kw(c, "FOREIGN") {
                    return Kind::PostData;
                }
            }
        }
    }
    if toc.is_some_and(|h| !h.data && POST_DATA_TOC.contains(&h.kind.as_str())) {
        return Kind::PostData;
    }
    Kind::Other
}

/// A foreign key added in post-data: `ALTER TABLE [IF EXISTS] [ONLY] table ADD CONSTRAINT
/// name FOREIGN KEY (cols) REFERENCES [ONLY] other [(cols)] [options]`, one action only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignKey {
    /// The table the constraint is declared on.
    pub table: QualifiedName,
    /// The referenced table.
    pub references: QualifiedName,
    /// `ALTER TABLE ONLY`: pg_dump writes it for every table but a partitioned one (whose
    /// foreign key recurses to, and locks, its partitions).
    pub only: bool,
}

/// The foreign key `sql` adds, if it is one `ADD CONSTRAINT ... FOREIGN KEY` and nothing
/// else (a second action after a top-level comma makes it `None`).
pub fn foreign_key(sql: &str) -> Option<ForeignKey> {
    let t = tokens(sql, 4096);
    let kw = |i: usize, k: &str| t.get(i).is_some_and(|x| x.is_kw(k));
    if !(kw(0, "ALTER") && kw(1, "TABLE")) {
        return None;
    }
    let mut i = 2;
    if kw(i, "IF") && kw(i + 1, "EXISTS") {
        i += 2;
    }
    let only = kw(i, "ONLY");
    if only {
        i += 1;
    }
    let (table, next) = qualified_at(&t, i)?;
    if !(kw(next, "ADD") && kw(next + 1, "CONSTRAINT")) {
        return None;
    }
    t.get(next + 2)?.name()?;
    let mut i = next + 3;
    if !(kw(i, "FOREIGN") && kw(i + 1, "KEY") && t.get(i + 2) == Some(&Tok::Punct('('))) {
        return None;
    }
    i += 3;
    while t.get(i)? != &Tok::Punct(')') {
        i += 1;
    }
    i += 1;
    if !kw(i, "REFERENCES") {
        return None;
    }
    i += 1;
    if kw(i, "ONLY") {
        i += 1;
    }
    let (references, mut i) = qualified_at(&t, i)?;
    let mut depth = 0usize;
    while let Some(x) = t.get(i) {
        match x {
            Tok::Punct('(') => depth += 1,
            Tok::Punct(')') => depth = depth.checked_sub(1)?,
            Tok::Punct(',') if depth == 0 => return None,
            Tok::Punct(';') if depth == 0 => break,
            _ => {}
        }
        i += 1;
    }
    if t.len() >= 4096 {
        return None;
    }
    Some(ForeignKey {
        table,
        references,
        only,
    })
}

/// Whether a `CREATE TABLE` makes a partitioned table (`PARTITION BY` outside parentheses).
pub fn creates_partitioned_table(sql: &str) -> bool {
    let t = tokens(sql, usize::MAX);
    if !matches!(classify(sql, None), Kind::CreateTable { .. }) {
        return false;
    }
    let mut depth = 0usize;
    for (i, x) in t.iter().enumerate() {
        match x {
            Tok::Punct('(') => depth += 1,
            Tok::Punct(')') => depth = depth.saturating_sub(1),
            Tok::Word(w)
                if depth == 0
                    && w.eq_ignore_ascii_case("PARTITION")
                    && t.get(i + 1).is_some_and(|n| n.is_kw("BY")) =>
            {
                return true;
            }
            _ => {}
        }
    }
    false
}

/// An ownership or privilege statement: one the restoring role may not be allowed to run
/// (GitLab's psql restore fails on it too, and the database is the same without it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PrivilegeStatement {
    /// `ALTER <object> ... OWNER TO role`.
    OwnerTo { role: String },
    /// `COMMENT ON EXTENSION name IS ...` (only the extension's owner may).
    CommentOnExtension { extension: String },
    /// `GRANT ... TO roles`.
    Grant { roles: Vec<String> },
    /// `REVOKE ... FROM roles`.
    Revoke { roles: Vec<String> },
    /// `ALTER DEFAULT PRIVILEGES [FOR ROLE roles] ...`.
    AlterDefaultPrivileges { roles: Vec<String> },
    /// `SECURITY LABEL ...`.
    SecurityLabel,
}

impl PrivilegeStatement {
    /// The roles the statement names (not `PUBLIC`, `CURRENT_USER`, ...).
    pub fn roles(&self) -> &[String] {
        match self {
            PrivilegeStatement::OwnerTo { role } => std::slice::from_ref(role),
            PrivilegeStatement::Grant { roles }
            | PrivilegeStatement::Revoke { roles }
            | PrivilegeStatement::AlterDefaultPrivileges { roles } => roles,
            PrivilegeStatement::CommentOnExtension { .. } | PrivilegeStatement::SecurityLabel => {
                &[]
            }
        }
    }
}

/// Whether `t` is a role specification that names no role (`PUBLIC`, `CURRENT_USER`, ...).
fn pseudo_role(t: &Tok) -> bool {
    [
        "public",
        "current_user",
        "current_role",
        "session_user",
        "group",
    ]
    .iter()
    .any(|k| t.is_kw(k))
}

/// Role names from `toks[i..]` up to the end of the list (`;`, `WITH`, `GRANTED`, ...).
fn role_list(toks: &[Tok], mut i: usize) -> Vec<String> {
    let mut roles = Vec::new();
    while let Some(t) = toks.get(i) {
        match t {
            Tok::Punct(',') => {}
            Tok::Word(_) if pseudo_role(t) => {}
            Tok::Word(w)
                if [
                    "with", "granted", "cascade", "restrict", "in", "grant", "revoke",
                ]
                .iter()
                .any(|k| w.eq_ignore_ascii_case(k)) =>
            {
                break
            }
            Tok::Word(_) | Tok::Ident(_) => roles.extend(t.name()),
            _ => break,
        }
        i += 1;
    }
    roles
}

/// Index of the last `kw` at parenthesis depth 0.
fn last_top_level(toks: &[Tok], kw: &str) -> Option<usize> {
    let mut depth = 0i32;
    let mut found = None;
    for (i, t) in toks.iter().enumerate() {
        match t {
            Tok::Punct('(') => depth += 1,
            Tok::Punct(')') => depth -= 1,
            _ if depth == 0 && t.is_kw(kw) => found = Some(i),
            _ => {}
        }
    }
    found
}

/// Statements longer than this are never ownership or privilege statements of pg_dump.
const PRIVILEGE_TOKENS: usize = 4096;

/// The ownership or privilege statement `sql` is, if it is one.
pub fn privilege_statement(sql: &str) -> Option<PrivilegeStatement> {
    let head = tokens(sql, 3);
    let kw = |t: &[Tok], i: usize, k: &str| t.get(i).is_some_and(|x| x.is_kw(k));
    let first = head.first()?;
    let wanted = ["ALTER", "GRANT", "REVOKE", "COMMENT", "SECURITY"];
    if !wanted.iter().any(|k| first.is_kw(k)) {
        return None;
    }
    if kw(&head, 0, "SECURITY") {
        return kw(&head, 1, "LABEL").then_some(PrivilegeStatement::SecurityLabel);
    }
    if kw(&head, 0, "COMMENT") {
        if kw(&head, 1, "ON") && kw(&head, 2, "EXTENSION") {
            let t = tokens(sql, 4);
            return Some(PrivilegeStatement::CommentOnExtension {
                extension: t.get(3)?.name()?,
            });
        }
        return None;
    }
    let t = tokens(sql, PRIVILEGE_TOKENS);
    if t.len() >= PRIVILEGE_TOKENS {
        return None;
    }
    if kw(&t, 0, "GRANT") {
        let to = last_top_level(&t, "TO")?;
        return Some(PrivilegeStatement::Grant {
            roles: role_list(&t, to + 1),
        });
    }
    if kw(&t, 0, "REVOKE") {
        let from = last_top_level(&t, "FROM")?;
        return Some(PrivilegeStatement::Revoke {
            roles: role_list(&t, from + 1),
        });
    }
    // ALTER ...
    if kw(&t, 1, "DEFAULT") && kw(&t, 2, "PRIVILEGES") {
        let roles = if kw(&t, 3, "FOR") && (kw(&t, 4, "ROLE") || kw(&t, 4, "USER")) {
            role_list(&t, 5)
        } else {
            Vec::new()
        };
        return Some(PrivilegeStatement::AlterDefaultPrivileges { roles });
    }
    // `... OWNER TO role` at the very end (pg_dump writes nothing after it).
    let mut end = t.len();
    if end > 0 && t[end - 1] == Tok::Punct(';') {
        end -= 1;
    }
    if end >= 4 && t[end - 3].is_kw("OWNER") && t[end - 2].is_kw("TO") {
        let r = &t[end - 1];
        if pseudo_role(r) {
            return None;
        }
        return Some(PrivilegeStatement::OwnerTo { role: r.name()? });
    }
    None
}

/// The role a `SET ROLE r` or `SET SESSION AUTHORIZATION 'r'` switches to.
pub fn session_role(sql: &str) -> Option<String> {
    let t = tokens(sql, 5);
    let kw = |i: usize, k: &str| t.get(i).is_some_and(|x| x.is_kw(k));
    if !kw(0, "SET") {
        return None;
    }
    let at = if kw(1, "ROLE") {
        2
    } else if kw(1, "SESSION") && (kw(2, "AUTHORIZATION") || kw(2, "ROLE")) {
        3
    } else {
        return None;
    };
    match t.get(at)? {
        Tok::Str(s) | Tok::Ident(s) => Some(s.clone()),
        w @ Tok::Word(_) if !w.is_kw("none") && !w.is_kw("default") => w.name(),
        _ => None,
    }
}

/// `CREATE EXTENSION [IF NOT EXISTS] name [WITH] [SCHEMA s] ...`: the extension and its
/// schema.
pub fn create_extension(sql: &str) -> Option<(String, Option<String>)> {
    let t = tokens(sql, 12);
    let kw = |i: usize, k: &str| t.get(i).is_some_and(|x| x.is_kw(k));
    if !(kw(0, "CREATE") && kw(1, "EXTENSION")) {
        return None;
    }
    let at = if kw(2, "IF") && kw(3, "NOT") && kw(4, "EXISTS") {
        5
    } else {
        2
    };
    let name = t.get(at)?.name()?;
    let schema = (at + 1..t.len())
        .find(|&i| kw(i, "SCHEMA"))
        .and_then(|i| t.get(i + 1)?.name());
    Some((name, schema))
}

/// An object a `DROP` or `CREATE` works on: its type (`FUNCTION`, `TABLE`, ...) and
/// name (without argument types).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ObjectKey {
    pub kind: String,
    pub name: QualifiedName,
}

/// Object types whose `DROP`/`CREATE` name the object directly (not `name ON table`).
const OBJECT_TYPES: &[&[&str]] = &[
    &["MATERIALIZED", "VIEW"],
    &["FOREIGN", "TABLE"],
    &["TEXT", "SEARCH", "CONFIGURATION"],
    &["TEXT", "SEARCH", "DICTIONARY"],
    &["TEXT", "SEARCH", "PARSER"],
    &["TEXT", "SEARCH", "TEMPLATE"],
    &["EVENT", "TRIGGER"],
    &["FOREIGN", "DATA", "WRAPPER"],
    &["FUNCTION"],
    &["PROCEDURE"],
    &["AGGREGATE"],
    &["TABLE"],
    &["VIEW"],
    &["SEQUENCE"],
    &["TYPE"],
    &["DOMAIN"],
    &["SCHEMA"],
    &["INDEX"],
    &["COLLATION"],
    &["CONVERSION"],
    &["EXTENSION"],
    &["SERVER"],
    &["PUBLICATION"],
    &["STATISTICS"],
];

fn object_at(t: &[Tok], i: usize, if_words: &[&str]) -> Option<ObjectKey> {
    let typ = OBJECT_TYPES.iter().find(|words| {
        words
            .iter()
            .enumerate()
            .all(|(k, w)| t.get(i + k).is_some_and(|x| x.is_kw(w)))
    })?;
    let mut at = i + typ.len();
    if if_words
        .iter()
        .enumerate()
        .all(|(k, w)| t.get(at + k).is_some_and(|x| x.is_kw(w)))
    {
        at += if_words.len();
    }
    let (name, _) = qualified_at(t, at)?;
    Some(ObjectKey {
        kind: typ.join(" "),
        name,
    })
}

/// The object of a `DROP <type> [IF EXISTS] name ...`.
pub fn dropped_object(sql: &str) -> Option<ObjectKey> {
    let t = tokens(sql, 12);
    if !t.first().is_some_and(|x| x.is_kw("DROP")) {
        return None;
    }
    object_at(&t, 1, &["IF", "EXISTS"])
}

/// The object of a `CREATE [OR REPLACE] [UNLOGGED] [UNIQUE] <type> [IF NOT EXISTS] name ...`.
pub fn created_object(sql: &str) -> Option<ObjectKey> {
    let t = tokens(sql, 14);
    if !t.first().is_some_and(|x| x.is_kw("CREATE")) {
        return None;
    }
    let mut i = 1;
    if t.get(1).is_some_and(|x| x.is_kw("OR")) && t.get(2).is_some_and(|x| x.is_kw("REPLACE")) {
        i = 3;
    }
    while t
        .get(i)
        .is_some_and(|x| x.is_kw("UNLOGGED") || x.is_kw("UNIQUE") || x.is_kw("TRUSTED"))
    {
        i += 1;
    }
    object_at(&t, i, &["IF", "NOT", "EXISTS"])
}

/// `name` or `ext.name` of a `SET`/`RESET`, lower-cased.
fn setting_name(t: &[Tok], i: usize) -> Option<String> {
    let first = t.get(i)?.name()?;
    if t.get(i + 1) == Some(&Tok::Punct('.')) {
        let second = t.get(i + 2)?.name()?;
        return Some(format!("{first}.{second}"));
    }
    Some(first)
}

/// A short description of the object a statement works on, for messages: from the TOC
/// header when there is one, else the statement's first words.
pub fn describe(sql: &str, toc: Option<&TocHeader>) -> String {
    if let Some(h) = toc {
        return h.describe();
    }
    let words: Vec<&str> = sql.split_whitespace().take(4).collect();
    let s = words.join(" ");
    if s.chars().count() > 80 {
        s.chars().take(80).collect::<String>() + "..."
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: Option<&str>, n: &str) -> QualifiedName {
        QualifiedName::new(s, n)
    }

    #[test]
    fn foreign_keys_as_pg_dump_writes_them() {
        let fk = foreign_key(
            "ALTER TABLE ONLY public.notes\n    ADD CONSTRAINT \"fk_rails_9;x\" FOREIGN KEY (project_id, \"Odd)\") REFERENCES public.projects(id) ON DELETE CASCADE NOT VALID;",
        )
        .expect("fk");
        assert_eq!(fk.table, q(Some("public"), "notes"));
        assert_eq!(fk.references, q(Some("public"), "projects"));
        assert!(fk.only);
        // A partitioned table's foreign key: no ONLY.
        let fk = foreign_key(
            "ALTER TABLE public.audit_events ADD CONSTRAINT fk FOREIGN KEY (author_id) REFERENCES public.users(id);",
        )
        .expect("fk");
        assert!(!fk.only);
        // Self-reference, quoted names.
        let fk = foreign_key(
            "ALTER TABLE ONLY \"S\".\"T t\" ADD CONSTRAINT c FOREIGN KEY (parent_id) REFERENCES \"S\".\"T t\"(id) DEFERRABLE;",
        )
        .expect("fk");
        assert_eq!(fk.table, fk.references);
        assert_eq!(fk.table, q(Some("S"), "T t"));
        // Not one foreign key: other constraints, two actions.
        for sql in [
            "ALTER TABLE ONLY public.t ADD CONSTRAINT t_pkey PRIMARY KEY (id);",
            "ALTER TABLE public.t ADD CONSTRAINT c CHECK (a > 0) NOT VALID;",
            "ALTER TABLE ONLY public.t ADD CONSTRAINT a FOREIGN KEY (x) REFERENCES public.u(id), ADD CONSTRAINT b FOREIGN KEY (y) REFERENCES public.v(id);",
            "ALTER TABLE ONLY public.t CLUSTER ON t_pkey;",
            "CREATE INDEX i ON public.t (a);",
        ] {
            assert_eq!(foreign_key(sql), None, "{sql}");
        }
    }

    #[test]
    fn partitioned_tables() {
        assert!(creates_partitioned_table(
            "CREATE TABLE public.events (\n    id bigint NOT NULL,\n    created_at date NOT NULL\n)\nPARTITION BY RANGE (created_at);"
        ));
        assert!(creates_partitioned_table(
            "CREATE TABLE s.p2 PARTITION OF s.p FOR VALUES FROM (1) TO (2) PARTITION BY LIST (k);"
        ));
        assert!(!creates_partitioned_table(
            "CREATE TABLE s.p1 PARTITION OF s.p FOR VALUES FROM (1) TO (2);"
        ));
        assert!(!creates_partitioned_table(
            "CREATE TABLE public.t (\"partition\" text, by text DEFAULT 'PARTITION BY');"
        ));
        assert!(!creates_partitioned_table(
            "CREATE INDEX i ON public.t (a);"
        ));
    }

    #[test]
    fn copy_headers() {
        assert_eq!(
            parse_copy_header("COPY public.users (id, name) FROM stdin;").unwrap(),
            q(Some("public"), "users")
        );
        assert_eq!(
            parse_copy_header("COPY \"we; ird\".\"A \"\"b\"\"\" FROM stdin;").unwrap(),
            q(Some("we; ird"), "A \"b\"")
        );
        assert_eq!(
            parse_copy_header("COPY Mixed FROM stdin;").unwrap(),
            q(None, "mixed")
        );
        assert!(parse_copy_header("COPY FROM stdin;").is_err());
    }

    #[test]
    fn sessions_and_sequences() {
        let k = |s: &str| classify(s, None);
        assert_eq!(
            k("SET statement_timeout = 0;"),
            Kind::Session {
                key: "statement_timeout".into()
            }
        );
        assert_eq!(
            k("SELECT pg_catalog.set_config('search_path', '', false);"),
            Kind::Session {
                key: "search_path".into()
            }
        );
        assert_eq!(
            k("SELECT pg_catalog.set_config('search_path', '', true);"),
            Kind::Other
        );
        assert_eq!(k("SET LOCAL work_mem = '1GB';"), Kind::Other);
        assert_eq!(
            k("SET SESSION AUTHORIZATION 'gitlab';"),
            Kind::Session {
                key: "session authorization".into()
            }
        );
        assert_eq!(
            k("SELECT pg_catalog.setval('public.users_id_seq', 42, true);"),
            Kind::SequenceSet
        );
    }

    #[test]
    fn post_data() {
        let k = |s: &str| classify(s, None);
        assert_eq!(
            k("CREATE UNIQUE INDEX index_users_on_email ON public.users USING btree (email);"),
            Kind::Index {
                table: q(Some("public"), "users")
            }
        );
        assert_eq!(
            k("CREATE INDEX i ON ONLY public.p USING btree (a);"),
            Kind::Index {
                table: q(Some("public"), "p")
            }
        );
        assert_eq!(
            k("ALTER TABLE ONLY public.\"a; b\"\n    ADD CONSTRAINT \"a; b_pkey\" PRIMARY KEY (id);"),
            Kind::KeyConstraint {
                table: q(Some("public"), "a; b")
            }
        );
        assert_eq!(
            k("ALTER TABLE ONLY public.t ADD CONSTRAINT u UNIQUE (a) DEFERRABLE INITIALLY DEFERRED;"),
            Kind::KeyConstraint {
                table: q(Some("public"), "t")
            }
        );
        assert_eq!(
            k("ALTER TABLE ONLY public.t ADD CONSTRAINT fk FOREIGN KEY (a) REFERENCES public.u(id);"),
            Kind::PostData
        );
        assert_eq!(
            k("ALTER TABLE ONLY public.t ADD CONSTRAINT c CHECK ((a > 0));"),
            Kind::Other
        );
        assert_eq!(
            k("ALTER INDEX public.p_pkey ATTACH PARTITION gitlab_partitions_static.p1_pkey;"),
            Kind::PostData
        );
        assert_eq!(k("REFRESH MATERIALIZED VIEW public.mv;"), Kind::PostData);
        assert_eq!(
            k("CREATE TRIGGER t BEFORE INSERT ON public.x FOR EACH ROW EXECUTE FUNCTION f();"),
            Kind::PostData
        );
        assert_eq!(
            k("CREATE TABLE public.users (\n id bigint\n);"),
            Kind::CreateTable {
                table: q(Some("public"), "users")
            }
        );
        assert_eq!(k("CREATE TABLE public.x AS SELECT 1;"), Kind::Other);
        assert_eq!(k("COMMENT ON TABLE public.users IS 'x';"), Kind::Other);
    }

    #[test]
    fn privilege_statements() {
        use PrivilegeStatement::*;
        let p = privilege_statement;
        assert_eq!(
            p("ALTER FUNCTION public.pg_shadow_lookup(i_username text, OUT username text, OUT password text) OWNER TO \"gitlab-psql\";"),
            Some(OwnerTo { role: "gitlab-psql".into() })
        );
        assert_eq!(
            p("ALTER TABLE public.users OWNER TO GitLab;"),
            Some(OwnerTo {
                role: "gitlab".into()
            })
        );
        assert_eq!(
            p("ALTER TABLE ONLY public.t ADD CONSTRAINT \"OWNER TO x\" CHECK (a > 0);"),
            None
        );
        assert_eq!(
            p("COMMENT ON EXTENSION pg_trgm IS 'text similarity';"),
            Some(CommentOnExtension {
                extension: "pg_trgm".into()
            })
        );
        assert_eq!(p("COMMENT ON TABLE public.t IS 'x';"), None);
        assert_eq!(
            p("GRANT ALL ON FUNCTION public.f(\"to\" text) TO pgbouncer, PUBLIC WITH GRANT OPTION;"),
            Some(Grant { roles: vec!["pgbouncer".into()] })
        );
        assert_eq!(
            p("REVOKE ALL ON FUNCTION public.f(text) FROM PUBLIC;"),
            Some(Revoke { roles: vec![] })
        );
        assert_eq!(
            p("REVOKE USAGE ON SCHEMA s FROM \"gitlab-psql\", x CASCADE;"),
            Some(Revoke {
                roles: vec!["gitlab-psql".into(), "x".into()]
            })
        );
        assert_eq!(
            p("ALTER DEFAULT PRIVILEGES FOR ROLE \"gitlab-psql\" IN SCHEMA public GRANT SELECT ON TABLES TO gitlab;"),
            Some(AlterDefaultPrivileges { roles: vec!["gitlab-psql".into()] })
        );
        assert_eq!(
            p("SECURITY LABEL FOR selinux ON TABLE t IS 'x';"),
            Some(SecurityLabel)
        );
        assert_eq!(p("CREATE TABLE public.owner (\"to\" int);"), None);
        assert_eq!(p("SELECT 1;"), None);
    }

    #[test]
    fn roles_extensions_and_objects() {
        assert_eq!(
            session_role("SET ROLE \"gitlab-psql\";").as_deref(),
            Some("gitlab-psql")
        );
        assert_eq!(
            session_role("SET SESSION AUTHORIZATION 'gitlab';").as_deref(),
            Some("gitlab")
        );
        assert_eq!(session_role("SET ROLE NONE;"), None);
        assert_eq!(session_role("SET search_path = x;"), None);
        assert_eq!(
            create_extension("CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public;"),
            Some(("pg_trgm".into(), Some("public".into())))
        );
        assert_eq!(
            create_extension("CREATE EXTENSION \"uuid-ossp\";"),
            Some(("uuid-ossp".into(), None))
        );
        let f = ObjectKey {
            kind: "FUNCTION".into(),
            name: q(Some("public"), "pg_shadow_lookup"),
        };
        assert_eq!(
            dropped_object("DROP FUNCTION IF EXISTS public.pg_shadow_lookup(i_username text, OUT username text, OUT password text);"),
            Some(f.clone())
        );
        assert_eq!(
            created_object("CREATE FUNCTION public.pg_shadow_lookup(i_username text, OUT username text, OUT password text) RETURNS record"),
            Some(f)
        );
        assert_eq!(
            created_object("CREATE UNLOGGED TABLE IF NOT EXISTS s.t (a int);")
                .map(|k| (k.kind, k.name)),
            Some(("TABLE".into(), q(Some("s"), "t")))
        );
        assert_eq!(
            dropped_object("DROP MATERIALIZED VIEW IF EXISTS public.mv;").map(|k| k.kind),
            Some("MATERIALIZED VIEW".into())
        );
        assert_eq!(
            dropped_object("DROP TRIGGER IF EXISTS t ON public.x;"),
            None
        );
    }

    #[test]
    fn describe_uses_header() {
        let h =
            TocHeader::parse("-- Name: users; Type: TABLE; Schema: public; Owner: gitlab").unwrap();
        assert_eq!(describe("CREATE TABLE ...", Some(&h)), "TABLE public.users");
        assert_eq!(
            describe(
                "CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public;",
                None
            ),
            "CREATE EXTENSION IF NOT"
        );
    }
}
