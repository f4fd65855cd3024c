//! Fingerprints of a database and of file trees, with readable differences: how tests and
//! the drill check that a restore gave back exactly what the backup held.
//!
//! A [`DbFingerprint`] holds the schema as `pg_dump --schema-only` prints it (normalised:
//! comment lines, blank lines and the `\restrict`/`\unrestrict` lines carrying random keys
//! removed), and for every table and populated materialized view outside the system
//! schemas its row count and an order-independent content hash, plus every sequence's
//! state. A [`FilesFingerprint`] holds every entry under a directory: kind, size, mode
//! bits and SHA-256 of its content.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::{io_err, sql_err, PgTarget, Result};
use crate::pg::ident::qualified;

/// Row count and content hash of one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableFingerprint {
    pub rows: i64,
    /// md5 over the sorted md5s of the rows' text forms.
    pub hash: String,
}

/// What a database holds, for comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbFingerprint {
    /// Normalised `pg_dump --schema-only` output.
    pub schema: String,
    /// Per table (and populated materialized view), keyed `"schema"."name"`.
    pub tables: BTreeMap<String, TableFingerprint>,
    /// Materialized views that are not populated (`WITH NO DATA`), keyed alike.
    pub unpopulated: Vec<String>,
    /// Sequences: `(last_value, is_called)`, keyed alike.
    pub sequences: BTreeMap<String, (i64, bool)>,
}

impl DbFingerprint {
    /// Differences from `self` (expected) to `other` (actual), one readable line each;
    /// empty when they are equal.
    /// [`DbFingerprint::diff`], less the owner changes of the given ownership statements
    /// (`ALTER ... OWNER TO role`) that a restore reported as skipped because the restoring
    /// role may not run them, as GitLab's restore skips them: the schema lines of those
    /// objects differ only in their `OWNER TO`.
    pub fn diff_except_owners(&self, other: &DbFingerprint, skipped: &[String]) -> Vec<String> {
        let keys: Vec<&str> = skipped
            .iter()
            .filter_map(|s| s.split_once(" OWNER TO ").map(|(k, _)| k.trim()))
            .collect();
        let owner_line = |l: &str| {
            l.strip_prefix("schema: - ")
                .or_else(|| l.strip_prefix("schema: + "))
                .and_then(|t| t.split_once(" OWNER TO "))
                .is_some_and(|(k, _)| keys.contains(&k.trim()))
        };
        let d: Vec<String> = self
            .diff(other)
            .into_iter()
            .filter(|l| !owner_line(l))
            .collect();
        if d.iter().all(|l| l.starts_with("schema differs")) {
            Vec::new()
        } else {
            d
        }
    }

    pub fn diff(&self, other: &DbFingerprint) -> Vec<String> {
        let mut out = Vec::new();
        if self.schema != other.schema {
            out.extend(schema_diff(&self.schema, &other.schema));
        }
        for (name, a) in &self.tables {
            match other.tables.get(name) {
                None => out.push(format!("table {name}: missing (expected {} rows)", a.rows)),
                Some(b) if a.rows != b.rows => out.push(format!(
                    "table {name}: {} rows, expected {}",
                    b.rows, a.rows
                )),
                Some(b) if a.hash != b.hash => out.push(format!(
                    "table {name}: same row count ({}) but different content (hash {} != {})",
                    a.rows, b.hash, a.hash
                )),
                Some(_) => {}
            }
        }
        for (name, b) in &other.tables {
            if !self.tables.contains_key(name) {
                out.push(format!("table {name}: unexpected ({} rows)", b.rows));
            }
        }
        for name in &self.unpopulated {
            if !other.unpopulated.contains(name) {
                out.push(format!(
                    "materialized view {name}: populated, expected WITH NO DATA"
                ));
            }
        }
        for (name, a) in &self.sequences {
            match other.sequences.get(name) {
                None => out.push(format!("sequence {name}: missing")),
                Some(b) if a != b => out.push(format!(
                    "sequence {name}: last_value {} (called {}), expected {} (called {})",
                    b.0, b.1, a.0, a.1
                )),
                Some(_) => {}
            }
        }
        for name in other.sequences.keys() {
            if !self.sequences.contains_key(name) {
                out.push(format!("sequence {name}: unexpected"));
            }
        }
        out
    }

    /// Total rows over all tables.
    pub fn total_rows(&self) -> i64 {
        self.tables.values().map(|t| t.rows).sum()
    }
}

/// Split normalised schema text into statements (lines up to one ending in `;`), each
/// collapsed to one line.
fn statements(schema: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in schema.lines() {
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(line.trim());
        if line.ends_with(';') {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Statements only in one of two schema texts (as a multiset, in order of appearance),
/// prefixed `schema: -` (missing) / `schema: +` (unexpected), at most 40 of each.
fn schema_diff(expected: &str, actual: &str) -> Vec<String> {
    let exp = statements(expected);
    let act = statements(actual);
    let mut counts: BTreeMap<&str, i64> = BTreeMap::new();
    for st in &exp {
        *counts.entry(st).or_default() += 1;
    }
    for st in &act {
        *counts.entry(st).or_default() -= 1;
    }
    let mut out = vec!["schema differs (pg_dump --schema-only):".to_string()];
    let mut pick = |list: &[String], sign: &str, want_positive: bool, out: &mut Vec<String>| {
        let mut shown = 0;
        let mut more = 0;
        for st in list {
            let c = counts.get_mut(st.as_str()).expect("counted");
            let hit = if want_positive { *c > 0 } else { *c < 0 };
            if !hit {
                continue;
            }
            *c += if want_positive { -1 } else { 1 };
            if shown < 40 {
                let text: String = st.chars().take(1_000).collect();
                out.push(format!("schema: {sign} {text}"));
                shown += 1;
            } else {
                more += 1;
            }
        }
        if more > 0 {
            out.push(format!("schema: ... {more} more `{sign}` statements"));
        }
        shown + more
    };
    let missing = pick(&exp, "-", true, &mut out);
    let extra = pick(&act, "+", false, &mut out);
    if missing == 0 && extra == 0 {
        out.push("schema: same statements in a different order".into());
    }
    out
}

/// Normalise `pg_dump --schema-only` text: drop `--` comment lines, blank lines, and
/// `\restrict`/`\unrestrict` lines (newer pg_dump releases put a random key in them).
pub fn normalize_schema(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let t = line.trim_end();
        if t.is_empty()
            || t.starts_with("--")
            || t.starts_with("\\restrict")
            || t.starts_with("\\unrestrict")
        {
            continue;
        }
        out.push_str(t);
        out.push('\n');
    }
    out
}

/// Schemas left out of fingerprints.
const SYSTEM_SCHEMAS: &str =
    "n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND n.nspname NOT LIKE 'pg_temp_%' AND n.nspname NOT LIKE 'pg_toast_temp_%'";

/// Fingerprint a database: `pg_dump --schema-only` from `target.bin_dir`, then per-table
/// counts and hashes over one connection.
pub fn fingerprint(target: &PgTarget) -> Result<DbFingerprint> {
    let mut cmd = target.command("pg_dump");
    cmd.arg("--schema-only");
    let out = super::run_tool(
        cmd,
        "pg_dump",
        &format!("dumping the schema of `{}`", target.conn.dbname),
    )?;
    let schema = normalize_schema(&String::from_utf8_lossy(&out.stdout));
    let mut client = target.connect()?;
    let mut fp = content_fingerprint(&mut client)?;
    fp.schema = schema;
    Ok(fp)
}

/// The content part of a fingerprint (tables, materialized views, sequences) over an open
/// connection; `schema` is left empty.
pub fn content_fingerprint(client: &mut postgres::Client) -> Result<DbFingerprint> {
    let rels = client
        .query(
            &format!(
                "SELECT n.nspname::text, c.relname::text, c.relkind::text, c.relispopulated
                   FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE c.relkind IN ('r', 'm', 'S') AND {SYSTEM_SCHEMAS}
                    AND NOT EXISTS (SELECT 1 FROM pg_depend d
                                     WHERE d.objid = c.oid AND d.deptype = 'e')
                  ORDER BY 1, 2"
            ),
            &[],
        )
        .map_err(sql_err("listing tables for the fingerprint"))?;
    let mut fp = DbFingerprint {
        schema: String::new(),
        tables: BTreeMap::new(),
        unpopulated: Vec::new(),
        sequences: BTreeMap::new(),
    };
    for r in rels {
        let (schema, name, kind, populated): (String, String, String, bool) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        let q = qualified(&schema, &name);
        match kind.as_str() {
            "S" => {
                let row = client
                    .query_one(&format!("SELECT last_value, is_called FROM {q}"), &[])
                    .map_err(sql_err(format!("reading sequence {q}")))?;
                fp.sequences.insert(q, (row.get(0), row.get(1)));
            }
            "m" if !populated => fp.unpopulated.push(q),
            _ => {
                let row = client
                    .query_one(
                        &format!(
                            "SELECT count(*), coalesce(md5(string_agg(h, '' ORDER BY h)), '') \
                             FROM (SELECT md5(t::text) AS h FROM {q} t) s"
                        ),
                        &[],
                    )
                    .map_err(sql_err(format!("hashing table {q}")))?;
                fp.tables.insert(
                    q,
                    TableFingerprint {
                        rows: row.get(0),
                        hash: row.get(1),
                    },
                );
            }
        }
    }
    Ok(fp)
}

/// One entry of a file tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// `file`, `dir` or `symlink`.
    pub kind: &'static str,
    /// Size in bytes (files), 0 otherwise.
    pub size: u64,
    /// Permission bits (`0o7777` part of the mode).
    pub mode: u32,
    /// SHA-256 of the content (files) or the link target (symlinks), hex; empty for dirs.
    pub hash: String,
}

/// Every entry under a directory, keyed by relative path (`a/b.txt`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FilesFingerprint {
    pub entries: BTreeMap<String, FileEntry>,
}

impl FilesFingerprint {
    /// Differences from `self` (expected) to `other` (actual), one line each.
    pub fn diff(&self, other: &FilesFingerprint) -> Vec<String> {
        let mut out = Vec::new();
        for (p, a) in &self.entries {
            match other.entries.get(p) {
                None => out.push(format!("{p}: missing ({})", a.kind)),
                Some(b) if a.kind != b.kind => {
                    out.push(format!("{p}: is a {}, expected a {}", b.kind, a.kind))
                }
                Some(b) if a.size != b.size || a.hash != b.hash => out.push(format!(
                    "{p}: content differs ({} bytes, expected {})",
                    b.size, a.size
                )),
                Some(b) if a.mode != b.mode => {
                    out.push(format!("{p}: mode {:o}, expected {:o}", b.mode, a.mode))
                }
                Some(_) => {}
            }
        }
        for (p, b) in &other.entries {
            if !self.entries.contains_key(p) {
                out.push(format!("{p}: unexpected ({})", b.kind));
            }
        }
        out
    }
}

/// Fingerprint the tree under `dir` (the directory itself is not an entry; symlinks are
/// not followed).
pub fn files_fingerprint(dir: &Path) -> Result<FilesFingerprint> {
    let mut fp = FilesFingerprint::default();
    walk(dir, "", &mut fp)?;
    Ok(fp)
}

fn walk(dir: &Path, prefix: &str, fp: &mut FilesFingerprint) -> Result<()> {
    let rd = fs::read_dir(dir).map_err(io_err("listing", dir))?;
    for entry in rd {
        let entry = entry.map_err(io_err("listing", dir))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let meta = fs::symlink_metadata(&path).map_err(io_err("reading metadata of", &path))?;
        let mode = meta.permissions().mode() & 0o7777;
        let ft = meta.file_type();
        if ft.is_symlink() {
            let target = fs::read_link(&path).map_err(io_err("reading link", &path))?;
            let hash = hex(&Sha256::digest(target.to_string_lossy().as_bytes()));
            fp.entries.insert(
                rel,
                FileEntry {
                    kind: "symlink",
                    size: 0,
                    mode: 0,
                    hash,
                },
            );
        } else if ft.is_dir() {
            fp.entries.insert(
                rel.clone(),
                FileEntry {
                    kind: "dir",
                    size: 0,
                    mode,
                    hash: String::new(),
                },
            );
            walk(&path, &rel, fp)?;
        } else {
            let mut f = fs::File::open(&path).map_err(io_err("opening", &path))?;
            let mut h = Sha256::new();
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = f.read(&mut buf).map_err(io_err("reading", &path))?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
            fp.entries.insert(
                rel,
                FileEntry {
                    kind: "file",
                    size: meta.len(),
                    mode,
                    hash: hex(&h.finalize()),
                },
            );
        }
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}
