//! gitaly-backup's manifest files (`repositories/manifests/<storage>/<relative path>/
//! <backup id>.toml` and `+latest.toml`) and the `[[storage]]` tables of Gitaly's
//! `config.toml`: the small part of TOML they use (top-level keys, `[[array]]` tables,
//! single- and double-quoted strings, booleans and numbers, `#` comments).

use std::collections::BTreeMap;

/// One step of a manifest: a bundle, its refs and custom hooks, relative to `-path`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Step {
    pub bundle_path: String,
    pub ref_path: String,
    pub custom_hooks_path: String,
}

/// A repository's manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    pub empty: bool,
    pub non_existent: bool,
    pub object_format: String,
    pub head_reference: String,
    pub steps: Vec<Step>,
}

fn value(raw: &str) -> Option<String> {
    let raw = raw.trim();
    if let Some(r) = raw.strip_prefix('\'') {
        return r.find('\'').map(|e| r[..e].to_string());
    }
    if let Some(r) = raw.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = r.chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => return Some(out),
                '\\' => match chars.next()? {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    other => out.push(other),
                },
                c => out.push(c),
            }
        }
        return None;
    }
    let bare = raw.split('#').next().unwrap_or("").trim();
    (!bare.is_empty()).then(|| bare.to_string())
}

/// Parse into (table name or "" for the top level, index of the table, key, value).
fn entries(text: &str) -> Vec<(String, usize, String, String)> {
    let mut out = Vec::new();
    let mut table = String::new();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut index = 0;
    for line in text.lines() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        if let Some(name) = l.strip_prefix("[[").and_then(|r| r.strip_suffix("]]")) {
            table = name.trim().to_string();
            let n = counts.entry(table.clone()).or_insert(0);
            index = *n;
            *n += 1;
            continue;
        }
        if let Some(name) = l.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            table = name.trim().to_string();
            index = 0;
            continue;
        }
        if let Some((k, v)) = l.split_once('=') {
            if let Some(v) = value(v) {
                out.push((table.clone(), index, k.trim().to_string(), v));
            }
        }
    }
    out
}

/// The `[[name]]` tables of `text`, each as its keys and values.
pub fn tables(text: &str, name: &str) -> Vec<BTreeMap<String, String>> {
    let mut out: Vec<BTreeMap<String, String>> = Vec::new();
    for (t, i, k, v) in entries(text) {
        if t == name {
            while out.len() <= i {
                out.push(BTreeMap::new());
            }
            out[i].insert(k, v);
        }
    }
    out
}

/// Parse a manifest.
pub fn parse(text: &str) -> Manifest {
    let mut m = Manifest::default();
    for (t, _, k, v) in entries(text) {
        if t.is_empty() {
            match k.as_str() {
                "empty" => m.empty = v == "true",
                "non_existent" => m.non_existent = v == "true",
                "object_format" => m.object_format = v,
                "head_reference" => m.head_reference = v,
                _ => {}
            }
        }
    }
    for t in tables(text, "steps") {
        m.steps.push(Step {
            bundle_path: t.get("bundle_path").cloned().unwrap_or_default(),
            ref_path: t.get("ref_path").cloned().unwrap_or_default(),
            custom_hooks_path: t.get("custom_hooks_path").cloned().unwrap_or_default(),
        });
    }
    m
}

fn quote(s: &str) -> String {
    if s.contains('\'') || s.contains('\n') {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        format!("'{s}'")
    }
}

/// A manifest as gitaly-backup writes it.
pub fn write(m: &Manifest) -> String {
    let mut s = format!(
        "empty = {}\nnon_existent = {}\nobject_format = {}\nhead_reference = {}\n",
        m.empty,
        m.non_existent,
        quote(&m.object_format),
        quote(&m.head_reference)
    );
    for st in &m.steps {
        s.push_str(&format!(
            "\n[[steps]]\nbundle_path = {}\nref_path = {}\ncustom_hooks_path = {}\n",
            quote(&st.bundle_path),
            quote(&st.ref_path),
            quote(&st.custom_hooks_path)
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_gitalys_manifest_and_config() {
        // As gitaly-backup 17.x writes it.
        let text = "empty = false\nnon_existent = false\nobject_format = 'sha1'\nhead_reference = 'refs/heads/main'\n\n[[steps]]\nbundle_path = 'default/@hashed/6b/86/x.git/1740143717_2025_02_21_17.8.2/001.bundle'\nref_path = 'default/@hashed/6b/86/x.git/1740143717_2025_02_21_17.8.2/001.refs'\ncustom_hooks_path = 'default/@hashed/6b/86/x.git/1740143717_2025_02_21_17.8.2/001.custom_hooks.tar'\n";
        let m = parse(text);
        assert_eq!(m.object_format, "sha1");
        assert_eq!(m.head_reference, "refs/heads/main");
        assert_eq!(m.steps.len(), 1);
        assert!(m.steps[0].bundle_path.ends_with("/001.bundle"));
        assert_eq!(parse(&write(&m)), m);
        let cfg = "socket_path = \"/var/opt/gitlab/gitaly/gitaly.socket\"\n[logging]\nlevel = 'info'\n[[storage]]\nname = \"default\"\npath = \"/var/opt/gitlab/git-data/repositories\" # comment\n[[storage]]\nname = 'nfs1'\npath = '/mnt/nfs1'\n";
        let t = tables(cfg, "storage");
        assert_eq!(t.len(), 2);
        assert_eq!(t[0]["path"], "/var/opt/gitlab/git-data/repositories");
        assert_eq!(t[1]["name"], "nfs1");
    }
}
