//! Deterministic data for the sandbox schema, loaded with `COPY ... FROM STDIN`.
//!
//! The same [`DataSpec`] always gives the same rows (a seeded xorshift generator, fixed
//! timestamps), so two sandboxes built alike have equal fingerprints. Row counts grow
//! linearly with [`DataSpec::scale`]: scale 1 is a few MB and builds in seconds; benchmarks
//! use scales in the hundreds for a dump of a gigabyte or more.
//!
//! The data is awkward on purpose ([`AWKWARD_TEXTS`]): quotes, unicode and emoji, tabs,
//! backslashes, strings that look like COPY's `\N` and end-of-data `\.` markers, CR/LF,
//! empty strings next to NULLs, bytea, jsonb, arrays and ranges.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufWriter, Write};

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::{sql_err, Result, SandboxError, DB_VERSION};

/// Texts every sandbox database holds (in `notes.note`, the first rows, and elsewhere):
/// restore and comparison code must carry them through unchanged.
pub const AWKWARD_TEXTS: &[&str] = &[
    "It's a \"quoted\" 'string' with `backticks`",
    "Ünïcødé: 日本語のテキスト, Ελληνικά, עברית, Кириллица — 🦊🚀💥👩‍💻",
    "tab\tseparated\tvalues\t",
    "back\\slash C:\\Users\\git\\ and \\\\ double and trailing \\",
    "\\N",
    "line one\n\\.\nline three",
    "\\.",
    "windows\r\nline endings\r\n",
    "",
    "NULL",
    "semi; colon; DROP TABLE users; --",
    "$$ dollar $fn$ quotes $_$ $$",
    "  leading and trailing spaces  ",
    "multi\nline\n\nwith a blank line\n",
    "control \u{1}\u{7}\u{1b}[31m chars \u{7f}",
    "COPY notes (id, note) FROM stdin;\n1\tfake\n\\.\n",
    "\\x41424344 looks like bytea",
    "{\"looks\": \"like json\"}",
    "{array,\"like\",NULL}",
];

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataSpec {
    /// Rows per table grow linearly with this (minimum 1).
    pub scale: u32,
    /// Seed of the pseudo-random generator.
    pub seed: u64,
}

impl Default for DataSpec {
    fn default() -> Self {
        DataSpec {
            scale: 1,
            seed: 0x5EED_2024_0410,
        }
    }
}

impl DataSpec {
    /// The default seed at a given scale.
    pub fn with_scale(scale: u32) -> Self {
        DataSpec {
            scale,
            ..Default::default()
        }
    }
}

/// Rows written per table (qualified name as written in the COPY statement).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DataStats {
    pub rows: BTreeMap<String, u64>,
}

impl DataStats {
    /// Total rows over all tables.
    pub fn total_rows(&self) -> u64 {
        self.rows.values().sum()
    }
}

/// A small xorshift64* generator: deterministic, no external crate.
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    /// A generator from a seed (0 is replaced by a fixed non-zero value).
    pub fn new(seed: u64) -> Self {
        XorShift(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    /// `true` with probability `1/n`.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }
    /// A random element.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

const WORDS: &[&str] = &[
    "pipeline",
    "merge",
    "request",
    "runner",
    "deploy",
    "review",
    "branch",
    "commit",
    "issue",
    "label",
    "milestone",
    "epic",
    "backup",
    "restore",
    "upgrade",
    "migration",
    "database",
    "gitaly",
    "praefect",
    "sidekiq",
    "puma",
    "workhorse",
    "registry",
    "package",
    "artifact",
    "cache",
    "index",
    "partition",
    "vacuum",
    "query",
    "latency",
    "timeout",
    "regression",
    "flaky",
    "test",
    "fix",
    "refactor",
    "docs",
    "security",
    "token",
    "webhook",
    "api",
    "größe",
    "café",
    "naïve",
    "日本",
    "данные",
    "🦊",
    "ümlaut",
    "façade",
];

/// Seconds since the epoch of 2024-01-01T00:00:00Z.
const T_2024: i64 = 1_704_067_200;
/// Seconds since the epoch of 2023-12-01T00:00:00Z.
const T_DEC_2023: i64 = 1_701_388_800;
/// 2024-05-31T23:59:59Z.
const T_END: i64 = 1_717_199_999;

fn ts(secs: i64) -> String {
    DateTime::<Utc>::from_timestamp(secs, 0)
        .unwrap_or_default()
        .format("%Y-%m-%d %H:%M:%S+00")
        .to_string()
}

fn sentence(rng: &mut XorShift, words: usize) -> String {
    let mut s = String::new();
    for i in 0..words {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(WORDS[rng.below(WORDS.len() as u64) as usize]);
    }
    s
}

fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// One line of COPY text format being built: fields are escaped as COPY requires.
#[derive(Debug, Default)]
pub(crate) struct Row {
    buf: String,
    fields: usize,
}

impl Row {
    fn sep(&mut self) {
        if self.fields > 0 {
            self.buf.push('\t');
        }
        self.fields += 1;
    }
    fn escaped(&mut self, s: &str) {
        for c in s.chars() {
            match c {
                '\\' => self.buf.push_str("\\\\"),
                '\t' => self.buf.push_str("\\t"),
                '\n' => self.buf.push_str("\\n"),
                '\r' => self.buf.push_str("\\r"),
                c => self.buf.push(c),
            }
        }
    }
    fn null(&mut self) -> &mut Self {
        self.sep();
        self.buf.push_str("\\N");
        self
    }
    fn int(&mut self, v: i64) -> &mut Self {
        self.sep();
        let _ = write!(self.buf, "{v}");
        self
    }
    fn opt_int(&mut self, v: Option<i64>) -> &mut Self {
        match v {
            Some(v) => self.int(v),
            None => self.null(),
        }
    }
    fn float(&mut self, v: f64) -> &mut Self {
        self.sep();
        let _ = write!(self.buf, "{v}");
        self
    }
    fn boolean(&mut self, v: bool) -> &mut Self {
        self.sep();
        self.buf.push(if v { 't' } else { 'f' });
        self
    }
    fn text(&mut self, s: &str) -> &mut Self {
        self.sep();
        self.escaped(s);
        self
    }
    fn opt_text(&mut self, s: Option<&str>) -> &mut Self {
        match s {
            Some(s) => self.text(s),
            None => self.null(),
        }
    }
    fn ts(&mut self, secs: i64) -> &mut Self {
        self.sep();
        self.buf.push_str(&ts(secs));
        self
    }
    fn opt_ts(&mut self, secs: Option<i64>) -> &mut Self {
        match secs {
            Some(s) => self.ts(s),
            None => self.null(),
        }
    }
    fn bytea(&mut self, bytes: &[u8]) -> &mut Self {
        self.sep();
        // bytea hex input `\x..`, its backslash escaped for COPY.
        self.buf.push_str("\\\\x");
        self.buf.push_str(&hex(bytes));
        self
    }
    fn json(&mut self, v: &serde_json::Value) -> &mut Self {
        self.text(&v.to_string())
    }
    fn text_array(&mut self, items: &[Option<&str>]) -> &mut Self {
        let mut lit = String::from("{");
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                lit.push(',');
            }
            match item {
                None => lit.push_str("NULL"),
                Some(s) => {
                    lit.push('"');
                    for c in s.chars() {
                        if c == '"' || c == '\\' {
                            lit.push('\\');
                        }
                        lit.push(c);
                    }
                    lit.push('"');
                }
            }
        }
        lit.push('}');
        self.text(&lit)
    }
    fn int_array(&mut self, items: &[i64]) -> &mut Self {
        let inner: Vec<String> = items.iter().map(|i| i.to_string()).collect();
        self.text(&format!("{{{}}}", inner.join(",")))
    }
}

/// Stream `n` rows into `table (cols)` with COPY; `f` fills row `i` (0-based).
fn copy_rows(
    tx: &mut postgres::Transaction<'_>,
    stats: &mut DataStats,
    table: &str,
    cols: &[&str],
    n: u64,
    mut f: impl FnMut(u64, &mut Row),
) -> Result<()> {
    let stmt = format!("COPY {table} ({}) FROM STDIN", cols.join(", "));
    let step = format!("loading {table}");
    let writer = tx.copy_in(&stmt).map_err(sql_err(step.clone()))?;
    let mut w = BufWriter::with_capacity(256 * 1024, writer);
    let mut row = Row::default();
    for i in 0..n {
        row.buf.clear();
        row.fields = 0;
        f(i, &mut row);
        if row.fields != cols.len() {
            return Err(SandboxError::Invalid {
                what: format!("row {i} of {table}"),
                detail: format!("{} fields for {} columns", row.fields, cols.len()),
            });
        }
        row.buf.push('\n');
        w.write_all(row.buf.as_bytes())
            .map_err(|e| SandboxError::Sql {
                step: step.clone(),
                detail: e.to_string(),
            })?;
    }
    let writer = w.into_inner().map_err(|e| SandboxError::Sql {
        step: step.clone(),
        detail: e.error().to_string(),
    })?;
    writer.finish().map_err(sql_err(step))?;
    *stats.rows.entry(table.to_string()).or_default() += n;
    Ok(())
}

/// The `schema_migrations` versions of the sandbox schema: a few hundred 14-digit
/// timestamps, strictly increasing, ending at [`DB_VERSION`].
pub fn schema_migration_versions() -> Vec<String> {
    let mut rng = XorShift::new(0x5C4E_3A11);
    let mut t = 1_672_531_200i64; // 2023-01-01
    let limit = DateTime::parse_from_str(&format!("{DB_VERSION} +0000"), "%Y%m%d%H%M%S %z")
        .map(|d| d.timestamp())
        .unwrap_or(T_2024);
    let mut out = Vec::new();
    loop {
        t += 3_600 + rng.below(36 * 3_600) as i64;
        if t >= limit {
            break;
        }
        out.push(
            DateTime::<Utc>::from_timestamp(t, 0)
                .unwrap_or_default()
                .format("%Y%m%d%H%M%S")
                .to_string(),
        );
    }
    out.push(DB_VERSION.to_string());
    out
}

/// Generate and load all data into a database holding the freshly loaded sandbox schema
/// (see [`super::schema::load_schema`]), in one transaction; then set the sequences past
/// the generated ids and refresh `project_issue_counts` (`user_activity_summaries` stays
/// unpopulated).
pub fn generate(client: &mut postgres::Client, spec: &DataSpec) -> Result<DataStats> {
    let s = u64::from(spec.scale.max(1));
    let mut rng = XorShift::new(spec.seed);
    let mut stats = DataStats::default();
    let mut tx = client
        .transaction()
        .map_err(sql_err("starting the data transaction"))?;

    // users ------------------------------------------------------------------------------
    let n_users = 20 + 30 * s;
    let special_names = ["o'brien", "zoë", "李小龙", "robert\"); drop", "tab\tname"];
    copy_rows(
        &mut tx,
        &mut stats,
        "users",
        &[
            "id",
            "username",
            "email",
            "name",
            "state",
            "admin",
            "projects_limit",
            "bio",
            "preferences",
            "otp_secret",
            "created_at",
            "updated_at",
        ],
        n_users,
        |i, r| {
            let id = i as i64 + 1;
            let username = match special_names.get(i as usize) {
                Some(n) => n.to_string(),
                None => format!("user{id}"),
            };
            let created = T_DEC_2023 + rng.below(90 * 86_400) as i64;
            r.int(id)
                .text(&username)
                .text(&format!("user{id}@example.com"))
                .opt_text(if i % 7 == 3 {
                    None
                } else {
                    Some(AWKWARD_TEXTS[i as usize % 2])
                })
                .text(if i % 13 == 5 { "blocked" } else { "active" })
                .boolean(i == 0)
                .int(100_000)
                .opt_text(if i % 3 == 0 {
                    Some(AWKWARD_TEXTS[(i as usize) % AWKWARD_TEXTS.len()])
                } else {
                    None
                })
                .json(&serde_json::json!({
                    "theme_id": i % 11,
                    "time_display_relative": i % 2 == 0,
                    "tab_width": 8,
                    "markdown": "**bold**\n\t`code` \\ \"q\"",
                }))
                .bytea(&sha256(&[b"otp", &id.to_le_bytes()])[..16])
                .ts(created)
                .ts(created + 3_600);
        },
    )?;

    // namespaces: one per user, then groups (some nested) -------------------------------
    let n_groups = 5 + 10 * s;
    let n_ns = n_users + n_groups;
    copy_rows(
        &mut tx,
        &mut stats,
        "namespaces",
        &[
            "id",
            "name",
            "path",
            "type",
            "owner_id",
            "parent_id",
            "traversal_ids",
            "visibility_level",
            "created_at",
            "updated_at",
        ],
        n_ns,
        |i, r| {
            let id = i as i64 + 1;
            let created = T_DEC_2023 + (i as i64) * 600;
            if i < n_users {
                r.int(id)
                    .text(&format!("user{id}"))
                    .text(&format!("user{id}"))
                    .text("User")
                    .int(id)
                    .null()
                    .int_array(&[id]);
            } else {
                let g = i - n_users; // group index
                let parent = if g >= 5 {
                    Some((n_users + g % 5) as i64 + 1)
                } else {
                    None
                };
                let traversal: Vec<i64> = match parent {
                    Some(p) => vec![p, id],
                    None => vec![id],
                };
                r.int(id)
                    .text(&format!("Group {g} «ünïcødé»"))
                    .text(&format!("group-{g}"))
                    .text("Group")
                    .int(1 + (g % n_users) as i64)
                    .opt_int(parent)
                    .int_array(&traversal);
            }
            r.int([0, 10, 20][i as usize % 3])
                .ts(created)
                .ts(created + 60);
        },
    )?;
    let ns_path = |ns: u64| -> String {
        if ns <= n_users {
            format!("user{ns}")
        } else {
            let g = ns - n_users - 1;
            if g >= 5 {
                format!("group-{}/group-{g}", g % 5)
            } else {
                format!("group-{g}")
            }
        }
    };

    // projects ---------------------------------------------------------------------------
    let n_projects = 50 * s;
    let project_ns = |p: u64| -> u64 { 1 + (p * 7) % n_ns };
    copy_rows(
        &mut tx,
        &mut stats,
        "projects",
        &[
            "id",
            "name",
            "path",
            "namespace_id",
            "creator_id",
            "description",
            "visibility_level",
            "archived",
            "topics",
            "star_count",
            "repository_size_limit",
            "created_at",
            "updated_at",
        ],
        n_projects,
        |i, r| {
            let id = i as i64 + 1;
            let created = T_2024 + (i as i64) * 900;
            let topics: Vec<Option<&str>> = match i % 4 {
                0 => vec![],
                1 => vec![Some("ruby"), Some("rails")],
                2 => vec![
                    Some("with \"quote\""),
                    Some("back\\slash"),
                    Some("comma,topic"),
                ],
                _ => vec![Some("ünïcødé 🦊"), Some("")],
            };
            r.int(id)
                .text(&format!("Project {id}"))
                .text(&format!("project-{id}"))
                .int(project_ns(i) as i64)
                .opt_int(if i % 9 == 4 {
                    None
                } else {
                    Some(1 + (i % n_users) as i64)
                })
                .opt_text(if i % 5 == 0 {
                    None
                } else {
                    Some(AWKWARD_TEXTS[i as usize % AWKWARD_TEXTS.len()])
                })
                .int([0, 10, 20][i as usize % 3])
                .boolean(i % 17 == 0)
                .text_array(&topics)
                .int((i % 50) as i64)
                .opt_int(if i % 6 == 0 {
                    Some(10_737_418_240)
                } else {
                    None
                })
                .ts(created)
                .ts(created + 86_400);
        },
    )?;

    // routes: namespaces then projects --------------------------------------------------
    copy_rows(
        &mut tx,
        &mut stats,
        "routes",
        &[
            "id",
            "source_id",
            "source_type",
            "path",
            "name",
            "created_at",
            "updated_at",
        ],
        n_ns + n_projects,
        |i, r| {
            let id = i as i64 + 1;
            if i < n_ns {
                let ns = i + 1;
                r.int(id)
                    .int(ns as i64)
                    .text("Namespace")
                    .text(&ns_path(ns))
                    .text(&format!("Namespace {ns}"));
            } else {
                let p = i - n_ns;
                r.int(id)
                    .int(p as i64 + 1)
                    .text("Project")
                    .text(&format!("{}/project-{}", ns_path(project_ns(p)), p + 1))
                    .text(&format!("Project {}", p + 1));
            }
            r.ts(T_2024).ts(T_2024);
        },
    )?;

    // members ----------------------------------------------------------------------------
    copy_rows(
        &mut tx,
        &mut stats,
        "members",
        &[
            "id",
            "access_level",
            "source_id",
            "source_type",
            "user_id",
            "expires_at",
            "created_at",
            "updated_at",
        ],
        100 * s,
        |i, r| {
            r.int(i as i64 + 1)
                .int([10, 20, 30, 40, 50][i as usize % 5])
                .int(1 + (i % n_projects) as i64)
                .text("Project")
                .int(1 + (i * 3 % n_users) as i64)
                .opt_text(if i % 4 == 0 { Some("2025-12-31") } else { None })
                .ts(T_2024 + i as i64)
                .ts(T_2024 + i as i64);
        },
    )?;

    // labels: 5 per project --------------------------------------------------------------
    let label_titles = [
        "bug",
        "feature",
        "~\"quoted\" label",
        "ünïcødé 🏷",
        "priority::1",
    ];
    let n_labels = n_projects * 5;
    copy_rows(
        &mut tx,
        &mut stats,
        "labels",
        &[
            "id",
            "title",
            "color",
            "project_id",
            "description",
            "created_at",
            "updated_at",
        ],
        n_labels,
        |i, r| {
            r.int(i as i64 + 1)
                .text(label_titles[i as usize % 5])
                .text(["#ff0000", "#00ff00", "#0000ff", "#abcdef", "#123456"][i as usize % 5])
                .int((i / 5) as i64 + 1)
                .opt_text(if i % 2 == 0 {
                    Some("Label with\ttab")
                } else {
                    None
                })
                .ts(T_2024)
                .ts(T_2024);
        },
    )?;

    // issues -----------------------------------------------------------------------------
    let n_issues = 400 * s;
    let mut issue_project = Vec::with_capacity(n_issues as usize);
    copy_rows(
        &mut tx,
        &mut stats,
        "issues",
        &[
            "id",
            "project_id",
            "author_id",
            "iid",
            "title",
            "description",
            "state_id",
            "confidential",
            "weight",
            "due_date",
            "time_estimate",
            "created_at",
            "updated_at",
            "closed_at",
        ],
        n_issues,
        |i, r| {
            let id = i as i64 + 1;
            let project = (i % n_projects) as i64 + 1;
            issue_project.push(project);
            let iid = (i / n_projects) as i64 + 1;
            let created = T_2024 + rng.below(150 * 86_400) as i64;
            let title = if (i as usize) < AWKWARD_TEXTS.len() {
                AWKWARD_TEXTS[i as usize].to_string()
            } else {
                let w = 3 + rng.below(8) as usize;
                sentence(&mut rng, w)
            };
            let desc_words = 20 + rng.below(60) as usize;
            let description = sentence(&mut rng, desc_words);
            let closed = i % 3 == 0;
            r.int(id)
                .int(project)
                .opt_int(if i % 31 == 7 {
                    None
                } else {
                    Some(1 + (i % n_users) as i64)
                })
                .int(iid)
                .text(&title)
                .opt_text(if i % 10 == 9 {
                    None
                } else {
                    Some(&description)
                })
                .int(if closed { 2 } else { 1 })
                .boolean(i % 23 == 0)
                .opt_int(if i % 4 == 0 {
                    Some((i % 13) as i64)
                } else {
                    None
                })
                .opt_text(if i % 8 == 0 { Some("2024-07-01") } else { None })
                .text(&format!("{}.{:02}", i % 40, i % 100))
                .ts(created)
                .ts(created + 7_200)
                .opt_ts(if closed { Some(created + 86_400) } else { None });
        },
    )?;

    // label_links ------------------------------------------------------------------------
    copy_rows(
        &mut tx,
        &mut stats,
        "label_links",
        &["id", "label_id", "target_id", "target_type", "created_at"],
        n_issues,
        |i, r| {
            let project = issue_project[i as usize] as u64;
            r.int(i as i64 + 1)
                .int(((project - 1) * 5 + i % 5) as i64 + 1)
                .int(i as i64 + 1)
                .text("Issue")
                .ts(T_2024 + i as i64);
        },
    )?;

    // merge_requests ---------------------------------------------------------------------
    let n_mrs = 200 * s;
    copy_rows(
        &mut tx,
        &mut stats,
        "merge_requests",
        &[
            "id",
            "target_project_id",
            "source_project_id",
            "iid",
            "source_branch",
            "target_branch",
            "title",
            "description",
            "state_id",
            "author_id",
            "merge_params",
            "squash",
            "merge_commit_sha",
            "created_at",
            "updated_at",
        ],
        n_mrs,
        |i, r| {
            let id = i as i64 + 1;
            let project = (i % n_projects) as i64 + 1;
            let created = T_2024 + rng.below(150 * 86_400) as i64;
            let words = 4 + rng.below(6) as usize;
            let title = sentence(&mut rng, words);
            let desc_words = 30 + rng.below(100) as usize;
            r.int(id)
                .int(project)
                .opt_int(if i % 11 == 0 { None } else { Some(project) })
                .int((i / n_projects) as i64 + 1)
                .text(&format!("feature/{id}-ünïcødé-branch"))
                .text("main")
                .text(&title)
                .opt_text(Some(&sentence(&mut rng, desc_words)))
                .int(1 + (i % 4) as i64)
                .int(1 + (i % n_users) as i64)
                .json(&serde_json::json!({
                    "force_remove_source_branch": i % 2 == 0,
                    "commit_message": format!("Merge branch 'feature/{id}'\n\nSee merge request !{id}"),
                    "sha": hex(&sha256(&[b"mr", &id.to_le_bytes()])[..20]),
                    "nested": {"list": [1, null, "two", {"three": 3.5}]},
                }))
                .boolean(i % 3 == 0)
                .bytea(&sha256(&[b"merge", &id.to_le_bytes()])[..20])
                .ts(created)
                .ts(created + 3_600);
        },
    )?;

    // notes: the bulk of the data --------------------------------------------------------
    let n_notes = 1_200 * s;
    copy_rows(
        &mut tx,
        &mut stats,
        "notes",
        &[
            "id",
            "note",
            "noteable_type",
            "noteable_id",
            "project_id",
            "author_id",
            "system",
            "position",
            "line_code",
            "created_at",
            "updated_at",
        ],
        n_notes,
        |i, r| {
            let id = i as i64 + 1;
            let note = if (i as usize) < AWKWARD_TEXTS.len() {
                Some(AWKWARD_TEXTS[i as usize].to_string())
            } else if i % 97 == 0 {
                None
            } else if i % 29 == 0 {
                Some(AWKWARD_TEXTS[(i / 29) as usize % AWKWARD_TEXTS.len()].to_string())
            } else {
                let w = 10 + rng.below(50) as usize;
                let mut t = sentence(&mut rng, w);
                if i % 5 == 0 {
                    t.push_str("\n\n```ruby\nputs \"hello\\tworld\"\n```\n");
                }
                Some(t)
            };
            let on_mr = i % 3 == 0;
            let (ty, target) = if on_mr {
                ("MergeRequest", 1 + (i % n_mrs) as i64)
            } else {
                ("Issue", 1 + (i % n_issues) as i64)
            };
            let created = T_2024 + rng.below(150 * 86_400) as i64;
            r.int(id)
                .opt_text(note.as_deref())
                .text(ty)
                .int(target)
                .int(1 + (i % n_projects) as i64)
                .int(1 + (i % n_users) as i64)
                .boolean(i % 6 == 0);
            if on_mr && i % 2 == 0 {
                r.json(&serde_json::json!({
                    "base_sha": hex(&sha256(&[&id.to_le_bytes()])[..20]),
                    "new_path": "app/models/ünïcødé \"file\".rb",
                    "new_line": i % 500,
                    "position_type": "text",
                }))
                .text(&format!(
                    "{}_{}_{}",
                    hex(&sha256(&[b"lc", &id.to_le_bytes()])[..20]),
                    i % 90,
                    i % 91
                ));
            } else {
                r.null().null();
            }
            r.ts(created).ts(created + 60);
        },
    )?;

    // events -----------------------------------------------------------------------------
    copy_rows(
        &mut tx,
        &mut stats,
        "events",
        &[
            "id",
            "project_id",
            "author_id",
            "target_id",
            "target_type",
            "action",
            "fingerprint",
            "created_at",
        ],
        1_000 * s,
        |i, r| {
            let id = i as i64 + 1;
            let targeted = i % 4 != 0;
            r.int(id)
                .opt_int(if i % 50 == 0 {
                    None
                } else {
                    Some(1 + (i % n_projects) as i64)
                })
                .int(1 + (i % n_users) as i64)
                .opt_int(if targeted {
                    Some(1 + (i % n_issues) as i64)
                } else {
                    None
                })
                .opt_text(if targeted { Some("Issue") } else { None })
                .int(1 + (i % 12) as i64);
            if i % 5 == 0 {
                r.bytea(&sha256(&[b"ev", &id.to_le_bytes()])[..8]);
            } else {
                r.null();
            }
            r.ts(T_2024 + rng.below(150 * 86_400) as i64);
        },
    )?;

    // keys: SSH public keys (text with a trailing newline) -------------------------------
    copy_rows(
        &mut tx,
        &mut stats,
        "keys",
        &[
            "id",
            "user_id",
            "key",
            "title",
            "fingerprint_sha256",
            "usage_type",
            "created_at",
            "updated_at",
        ],
        n_users,
        |i, r| {
            let id = i as i64 + 1;
            let body = hex(&sha256(&[b"key", &id.to_le_bytes()]));
            r.int(id)
                .int(id)
                .text(&format!(
                    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA{body} user{id}@host\n"
                ))
                .text(&format!("Laptop «{id}»"))
                .bytea(&sha256(&[b"fp", &id.to_le_bytes()]))
                .int((i % 3) as i64)
                .ts(T_2024)
                .ts(T_2024);
        },
    )?;

    // ci_pipelines -----------------------------------------------------------------------
    let n_pipelines = 200 * s;
    copy_rows(
        &mut tx,
        &mut stats,
        "ci_pipelines",
        &[
            "id",
            "project_id",
            "ref",
            "sha",
            "status",
            "source",
            "tag",
            "duration",
            "yaml_errors",
            "created_at",
            "updated_at",
        ],
        n_pipelines,
        |i, r| {
            let id = i as i64 + 1;
            let created = T_2024 + rng.below(150 * 86_400) as i64;
            r.int(id)
                .int(1 + (i % n_projects) as i64)
                .text(if i % 5 == 0 { "v16.10.3" } else { "main" })
                .text(&hex(&sha256(&[b"sha", &id.to_le_bytes()])[..20]))
                .text(["success", "failed", "canceled", "running", "skipped"][i as usize % 5])
                .int((i % 15) as i64)
                .boolean(i % 5 == 0)
                .opt_int(if i % 5 == 3 {
                    None
                } else {
                    Some(rng.below(3_600) as i64)
                })
                .opt_text(if i % 41 == 0 {
                    Some("jobs:build config contains unknown keys: scrpit\nline 2: \"quoted\"")
                } else {
                    None
                })
                .ts(created)
                .ts(created + 600);
        },
    )?;

    // ci_builds (GENERATED ALWAYS identity: COPY supplies the ids, as pg_dump does) ------
    let n_builds = 800 * s;
    copy_rows(
        &mut tx,
        &mut stats,
        "ci_builds",
        &[
            "id",
            "commit_id",
            "project_id",
            "name",
            "stage",
            "status",
            "options",
            "tag_list",
            "allow_failure",
            "started_at",
            "finished_at",
            "queued_duration",
            "created_at",
            "updated_at",
        ],
        n_builds,
        |i, r| {
            let id = i as i64 + 1;
            let pipeline = 1 + (i % n_pipelines) as i64;
            let created = T_2024 + rng.below(150 * 86_400) as i64;
            let started = if i % 7 == 0 { None } else { Some(created + 30) };
            let script = format!(
                "echo \"build {id}\"\nbundle exec rspec spec/ünïcødé_spec.rb\tTAB\nprintf '%s\\n' done"
            );
            r.int(id)
                .int(pipeline)
                .int(1 + ((pipeline as u64 - 1) % n_projects) as i64)
                .text(
                    ["rspec 1/4", "rubocop", "build: docker", "deploy production"][i as usize % 4],
                )
                .text(["test", "lint", "build", "deploy"][i as usize % 4])
                .text(["success", "failed", "canceled", "pending"][i as usize % 4])
                .json(&serde_json::json!({
                    "image": {"name": "ruby:3.1"},
                    "script": [script],
                    "artifacts": {"paths": ["coverage/"], "expire_in": "1 week"},
                    "retry": {"max": 2, "when": ["runner_system_failure"]},
                }))
                .text_array(&[
                    Some("docker"),
                    Some("linux"),
                    if i % 3 == 0 { None } else { Some("gpu") },
                ])
                .boolean(i % 9 == 0)
                .opt_ts(started)
                .opt_ts(started.map(|s| s + 60 + rng.below(1_800) as i64))
                .opt_text(if i % 2 == 0 {
                    Some("00:01:23.456789")
                } else {
                    None
                })
                .ts(created)
                .ts(created + 120);
        },
    )?;

    // ci_job_artifacts -------------------------------------------------------------------
    copy_rows(
        &mut tx,
        &mut stats,
        "ci_job_artifacts",
        &[
            "id",
            "project_id",
            "job_id",
            "file_type",
            "size",
            "file",
            "file_sha256",
            "expire_at",
            "created_at",
        ],
        n_builds / 2,
        |i, r| {
            let id = i as i64 + 1;
            let job = i as i64 * 2 + 1;
            r.int(id)
                .int(1 + (i % n_projects) as i64)
                .int(job)
                .int(if i % 2 == 0 { 1 } else { 3 })
                .int(1_024 + rng.below(10_000_000) as i64)
                .text(if i % 2 == 0 {
                    "artifacts.zip"
                } else {
                    "job.log"
                })
                .bytea(&sha256(&[b"artifact", &id.to_le_bytes()]))
                .opt_ts(if i % 3 == 0 { None } else { Some(T_END) })
                .ts(T_2024 + i as i64 * 60);
        },
    )?;

    // ci_pipeline_variables --------------------------------------------------------------
    copy_rows(
        &mut tx,
        &mut stats,
        "ci_pipeline_variables",
        &[
            "id",
            "key",
            "value",
            "encrypted_value",
            "encrypted_value_iv",
            "pipeline_id",
            "variable_type",
            "raw",
        ],
        100 * s,
        |i, r| {
            let id = i as i64 + 1;
            r.int(id)
                .text(&format!("VAR_{id}"))
                .opt_text(if i % 2 == 0 {
                    Some("value with $DOLLAR and \\backslash")
                } else {
                    None
                })
                .text(&hex(&sha256(&[b"enc", &id.to_le_bytes()])))
                .text(&hex(&sha256(&[b"iv", &id.to_le_bytes()])[..12]))
                .int(1 + (i % n_pipelines) as i64)
                .int(1 + (i % 2) as i64)
                .boolean(i % 4 == 0);
        },
    )?;

    // ci_freeze_periods: non-overlapping ranges per project (exclusion constraint) -------
    copy_rows(
        &mut tx,
        &mut stats,
        "ci_freeze_periods",
        &["id", "project_id", "period", "cron_timezone"],
        n_projects,
        |i, r| {
            let start = T_2024 + (i % 20) as i64 * 7 * 86_400;
            r.int(i as i64 + 1)
                .int(1 + i as i64)
                .text(&format!(
                    "[\"{}\",\"{}\")",
                    ts(start),
                    ts(start + 2 * 86_400)
                ))
                .opt_text(if i % 2 == 0 {
                    Some("Europe/Zürich")
                } else {
                    None
                });
        },
    )?;

    // lfs_objects + lfs_objects_projects -------------------------------------------------
    let n_lfs = 50 * s;
    copy_rows(
        &mut tx,
        &mut stats,
        "lfs_objects",
        &[
            "id",
            "oid",
            "size",
            "file",
            "file_store",
            "created_at",
            "updated_at",
        ],
        n_lfs,
        |i, r| {
            let id = i as i64 + 1;
            let oid = hex(&sha256(&[b"lfs", &id.to_le_bytes()]));
            r.int(id)
                .text(&oid)
                .int(1 + rng.below(50_000_000) as i64)
                .text(&oid[4..])
                .int(1)
                .ts(T_2024)
                .ts(T_2024);
        },
    )?;
    copy_rows(
        &mut tx,
        &mut stats,
        "lfs_objects_projects",
        &[
            "id",
            "lfs_object_id",
            "project_id",
            "repository_type",
            "created_at",
        ],
        n_lfs,
        |i, r| {
            r.int(i as i64 + 1)
                .int(i as i64 + 1)
                .int(1 + (i % n_projects) as i64)
                .opt_int(if i % 2 == 0 { Some(0) } else { None })
                .ts(T_2024);
        },
    )?;

    // uploads ----------------------------------------------------------------------------
    copy_rows(
        &mut tx,
        &mut stats,
        "uploads",
        &[
            "id",
            "size",
            "path",
            "checksum",
            "model_id",
            "model_type",
            "uploader",
            "mount_point",
            "secret",
            "created_at",
        ],
        50 * s,
        |i, r| {
            let id = i as i64 + 1;
            let secret = hex(&sha256(&[b"upload", &id.to_le_bytes()])[..16]);
            r.int(id)
                .int(1 + rng.below(5_000_000) as i64)
                .text(&format!("{secret}/screenshot {id} «ünïcødé».png"))
                .text(&hex(&sha256(&[b"sum", &id.to_le_bytes()])))
                .int(1 + (i % n_projects) as i64)
                .text("Project")
                .text("FileUploader")
                .null()
                .text(&secret)
                .ts(T_2024 + i as i64 * 3_600);
        },
    )?;

    // loose_foreign_keys_deleted_records -------------------------------------------------
    copy_rows(
        &mut tx,
        &mut stats,
        "loose_foreign_keys_deleted_records",
        &[
            "id",
            "fully_qualified_table_name",
            "primary_key_value",
            "status",
            "created_at",
        ],
        10,
        |i, r| {
            r.int(i as i64 + 1)
                .text("public.projects")
                .int(1_000_000 + i as i64)
                .int(1 + (i % 2) as i64)
                .ts(T_2024 + i as i64);
        },
    )?;

    // application_settings (GENERATED ALWAYS identity) -----------------------------------
    copy_rows(
        &mut tx,
        &mut stats,
        "application_settings",
        &[
            "id",
            "default_branch_name",
            "restricted_visibility_levels",
            "domain_allowlist",
            "sign_in_text",
            "rate_limits",
            "encrypted_ci_jwt_signing_key",
            "created_at",
            "updated_at",
        ],
        1,
        |_, r| {
            r.int(1)
                .text("main")
                .int_array(&[20])
                .text_array(&[Some("example.com"), Some("ünïcødé.example"), None])
                .text("Welcome to **GitLab**!\n\n\\. is not the end\n\\N is not NULL\n\tindented")
                .json(&serde_json::json!({
                    "notes_create_limit": 300,
                    "search_rate_limit": 30,
                    "users_get_by_id_limit_allowlist": ["root", "o'brien", "zoë"],
                    "html": "<a href=\"x\">\\u0000 not a nul</a>",
                }))
                .bytea(&[0, 1, 2, 0xfe, 0xff, b'\\', b'\t', b'\n', 0x7f, 0x80])
                .ts(T_2024)
                .ts(T_2024);
        },
    )?;

    // ar_internal_metadata ---------------------------------------------------------------
    copy_rows(
        &mut tx,
        &mut stats,
        "ar_internal_metadata",
        &["key", "value", "created_at", "updated_at"],
        2,
        |i, r| {
            let (k, v) = if i == 0 {
                ("environment", "production")
            } else {
                ("schema_sha1", "f3f0a3e4b61d6b3cbd4c3b49b0b0c7f0d5a1c9e2")
            };
            r.text(k)
                .text(v)
                .text("2023-05-22 10:11:12.123456")
                .text("2024-04-10 12:34:56.654321");
        },
    )?;

    // "legacy_diffs; archive": big text blobs ---------------------------------------------
    copy_rows(
        &mut tx,
        &mut stats,
        "\"legacy_diffs; archive\"",
        &[
            "id",
            "merge_request_diff_id",
            "\"diff; text\"",
            "\"binary\"",
        ],
        100 * s,
        |i, r| {
            let mut diff = String::from("@@ -1,5 +1,6 @@\n");
            let lines = 10 + rng.below(30);
            for l in 0..lines {
                let words = 4 + rng.below(10) as usize;
                let sign = ["+", "-", " "][(l % 3) as usize];
                let _ = writeln!(diff, "{sign}\t{}", sentence(&mut rng, words));
            }
            if i % 10 == 0 {
                diff.push_str("\\ No newline at end of file\n\\.\n");
            }
            r.int(i as i64 + 1)
                .int(1 + (i % n_mrs) as i64)
                .text(&diff)
                .boolean(i % 20 == 0);
        },
    )?;

    // "Ünïcødé ""Quoted"" Table": one row per awkward text -------------------------------
    copy_rows(
        &mut tx,
        &mut stats,
        "\"Ünïcødé \"\"Quoted\"\" Table\"",
        &[
            "id",
            "\"naïve column\"",
            "\"Mixed Case\"",
            "\"emoji 🦊\"",
            "\"select\"",
        ],
        AWKWARD_TEXTS.len() as u64 + 1,
        |i, r| {
            r.int(i as i64 + 1)
                .opt_text(AWKWARD_TEXTS.get(i as usize).copied())
                .opt_int(if i % 3 == 0 { None } else { Some(i as i64 * 7) })
                .text(["🦊", "🚀💥", "👩‍💻", "❄️"][i as usize % 4])
                .boolean(i % 2 == 0);
        },
    )?;

    // audit_events: spread over every partition (000000 holds December 2023) ------------
    copy_rows(
        &mut tx,
        &mut stats,
        "audit_events",
        &[
            "id",
            "author_id",
            "entity_id",
            "entity_type",
            "details",
            "ip_address",
            "author_name",
            "target_details",
            "created_at",
            "entity_path",
        ],
        500 * s,
        |i, r| {
            let id = i as i64 + 1;
            let created = T_DEC_2023 + rng.below((T_END - T_DEC_2023) as u64) as i64;
            let author = 1 + (i % n_users) as i64;
            r.int(id)
                .int(author)
                .int(1 + (i % n_projects) as i64)
                .text(if i % 2 == 0 { "Project" } else { "Group" })
                .text(&format!(
                    "---\n:change: visibility\n:from: Private\n:to: \"Public\"\n:author_name: user{author}\n"
                ))
                .opt_text(if i % 4 == 0 {
                    None
                } else if i % 4 == 1 {
                    Some("2001:db8::1")
                } else {
                    Some("192.0.2.17")
                })
                .text(&format!("user{author}"))
                .opt_text(if i % 3 == 0 { Some("ünïcødé target 🦊") } else { None })
                .ts(created)
                .text(&format!("group-{}/project-{}", i % 5, 1 + i % n_projects));
        },
    )?;

    // web_hook_logs: March-May 2024 --------------------------------------------------------
    let t_mar = 1_709_251_200i64; // 2024-03-01
    copy_rows(
        &mut tx,
        &mut stats,
        "web_hook_logs",
        &[
            "id",
            "web_hook_id",
            "trigger",
            "url",
            "request_headers",
            "request_data",
            "response_headers",
            "response_body",
            "response_status",
            "execution_duration",
            "internal_error_message",
            "created_at",
            "updated_at",
        ],
        200 * s,
        |i, r| {
            let id = i as i64 + 1;
            let created = t_mar + rng.below((T_END - t_mar) as u64) as i64;
            let body_words = 20 + rng.below(40) as usize;
            r.int(id)
                .int(1 + (i % 20) as i64)
                .text(["push_hooks", "issue_hooks", "merge_request_hooks"][i as usize % 3])
                .text(&format!("https://hooks.example/{id}?token=[REDACTED]&q=\"x\""))
                .text("Content-Type: application/json\r\nX-Gitlab-Event: Push Hook\r\n")
                .json(&serde_json::json!({
                    "object_kind": "push",
                    "ref": "refs/heads/main",
                    "commits": [{"message": sentence(&mut rng, body_words), "author": {"name": "Zoë \"Z\" O'Brien"}}],
                }))
                .text("Server: nginx\r\n")
                .opt_text(if i % 6 == 0 { None } else { Some("{\"ok\":true}\n") })
                .text(if i % 9 == 0 { "internal error" } else { "200" })
                .float((i % 1_000) as f64 / 7.0)
                .opt_text(if i % 9 == 0 {
                    Some("Net::ReadTimeout with #<TCPSocket:(closed)>")
                } else {
                    None
                })
                .ts(created)
                .ts(created);
        },
    )?;

    // analytics_cycle_analytics_issue_stage_events: hash partitions ----------------------
    copy_rows(
        &mut tx,
        &mut stats,
        "analytics_cycle_analytics_issue_stage_events",
        &[
            "stage_event_hash_id",
            "issue_id",
            "group_id",
            "project_id",
            "milestone_id",
            "author_id",
            "start_event_timestamp",
            "end_event_timestamp",
            "state_id",
        ],
        n_issues,
        |i, r| {
            let start = T_2024 + rng.below(120 * 86_400) as i64;
            r.int(1 + (i % 13) as i64)
                .int(i as i64 + 1)
                .int(n_users as i64 + 1 + (i % n_groups) as i64)
                .int(issue_project[i as usize])
                .opt_int(if i % 3 == 0 {
                    Some((i % 9) as i64)
                } else {
                    None
                })
                .int(1 + (i % n_users) as i64)
                .ts(start)
                .opt_ts(if i % 4 == 0 {
                    None
                } else {
                    Some(start + 3 * 86_400)
                })
                .int(1 + (i % 2) as i64);
        },
    )?;

    // schema_migrations ------------------------------------------------------------------
    let versions = schema_migration_versions();
    copy_rows(
        &mut tx,
        &mut stats,
        "schema_migrations",
        &["version", "finished_at"],
        versions.len() as u64,
        |i, r| {
            r.text(&versions[i as usize])
                .ts(T_DEC_2023 + i as i64 * 600);
        },
    )?;

    // Sequences past the generated ids; the populated materialized view.
    tx.batch_execute(SEQUENCE_FIXUP)
        .map_err(sql_err("setting sequences past the generated ids"))?;
    tx.batch_execute("REFRESH MATERIALIZED VIEW project_issue_counts;")
        .map_err(sql_err("refreshing project_issue_counts"))?;
    tx.commit()
        .map_err(sql_err("committing the sandbox data"))?;
    Ok(stats)
}

/// `setval` of every sequence owned by an `id` column to that column's maximum.
const SEQUENCE_FIXUP: &str = r#"
DO $fix$
DECLARE
  r record;
  m bigint;
BEGIN
  FOR r IN
    SELECT c.oid::regclass AS tbl, a.attname AS col, pg_get_serial_sequence(c.oid::regclass::text, a.attname) AS seq
      FROM pg_class c
      JOIN pg_namespace n ON n.oid = c.relnamespace
      JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
     WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND a.attname = 'id'
  LOOP
    CONTINUE WHEN r.seq IS NULL;
    EXECUTE format('SELECT max(%I) FROM %s', r.col, r.tbl) INTO m;
    IF m IS NOT NULL THEN
      PERFORM setval(r.seq, m);
    END IF;
  END LOOP;
END
$fix$;
"#;
