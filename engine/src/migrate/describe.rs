//! An assessment in words, line by line, as every front end shows it: `rewind repair`
//! prints these lines and the wizard's repair screen draws them, so the two cannot
//! disagree. Also GitLab's own command for the same repair.

use super::assess::{Assessment, ColumnStatus, Verdict};
use super::log::Failure;
use crate::detect::InstallKind;

/// How a fact should look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Plain,
    Strong,
    Good,
    Bad,
    Warn,
    Dim,
}

/// One labelled fact of an assessment (`verdict: mark complete`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact {
    /// Short label (`migration`, `error`, `verdict`, ...); empty continues the line above.
    pub label: &'static str,
    pub text: String,
    pub tone: Tone,
}

fn fact(label: &'static str, text: impl Into<String>, tone: Tone) -> Fact {
    Fact {
        label,
        text: text.into(),
        tone,
    }
}

/// A GitLab rake task as its documentation gives it for the installation kind:
/// `sudo gitlab-rake TASK` on Omnibus, `sudo -u git -H bundle exec rake TASK
/// RAILS_ENV=production` from source.
pub fn rake_command(kind: Option<InstallKind>, task: &str) -> String {
    match kind {
        Some(InstallKind::Source) => {
            format!("sudo -u git -H bundle exec rake {task} RAILS_ENV=production")
        }
        _ => format!("sudo gitlab-rake {task}"),
    }
}

/// GitLab's own command that marks `version` complete, as its documentation gives it:
/// `gitlab-rake gitlab:db:mark_migration_complete[V]` ([`rake_command`]; `…:ci[V]` for
/// one database of a decomposed install).
pub fn gitlab_mark_command(
    kind: Option<InstallKind>,
    connection: Option<&str>,
    version: &str,
) -> String {
    let task = match connection {
        Some(c) if !c.is_empty() => format!("gitlab:db:mark_migration_complete:{c}[{version}]"),
        _ => format!("gitlab:db:mark_migration_complete[{version}]"),
    };
    rake_command(kind, &task)
}

/// GitLab's command for marking `version` on `database` of this installation: the
/// per-database task (`…:ci[V]`) only when the install is decomposed.
pub fn gitlab_mark_command_for(
    inst: Option<&crate::detect::Installation>,
    database: &str,
    version: &str,
) -> String {
    let own: Vec<_> = inst
        .map(|i| i.databases.iter().filter(|d| d.database_tasks).collect())
        .unwrap_or_default();
    let connection = if own.len() > 1 {
        own.iter()
            .find(|d| d.spec.dbname == database)
            .map(|d| d.name.as_str())
    } else {
        None
    };
    gitlab_mark_command(inst.and_then(|i| i.kind), connection, version)
}

/// The facts of an assessment, in the order `rewind repair` prints them. `gitlab_command`
/// is GitLab's equivalent of the marking (see [`gitlab_mark_command`]).
pub fn facts(f: Option<&Failure>, a: &Assessment, gitlab_command: Option<&str>) -> Vec<Fact> {
    let mut v = Vec::new();
    match (&a.version, &a.migration_name) {
        (Some(ver), name) => v.push(fact(
            "migration",
            format!("{ver} {}", name.as_deref().unwrap_or(""))
                .trim_end()
                .to_string(),
            Tone::Strong,
        )),
        (None, _) => v.push(fact("migration", "not named in the log", Tone::Bad)),
    }
    let assumed = f.is_some_and(|f| f.database.is_none());
    v.push(fact(
        "database",
        format!(
            "{}{}",
            a.database,
            if assumed {
                " (the log does not say; assumed)"
            } else {
                ""
            }
        ),
        Tone::Plain,
    ));
    match f.map(|f| (&f.error, &f.error_text)) {
        Some((Some(e), _)) => {
            v.push(fact(
                "error",
                format!("PG::{}: {}", e.class, e.message),
                Tone::Plain,
            ));
            if let Some(d) = &e.detail {
                v.push(fact("", format!("DETAIL: {d}"), Tone::Plain));
            }
        }
        Some((None, Some(t))) => v.push(fact("error", t.clone(), Tone::Plain)),
        _ => {
            if let Some(m) = &a.message {
                v.push(fact("error", m.clone(), Tone::Plain));
            }
        }
    }
    if let Some(o) = &a.object {
        let (state, tone) = match a.object_exists {
            Some(true) => ("exists", Tone::Good),
            Some(false) => ("does not exist", Tone::Warn),
            None => ("not checked", Tone::Plain),
        };
        v.push(fact("object", format!("{o}: {state}"), tone));
    }
    if let Some(d) = &a.object_detail {
        v.push(fact("", d.clone(), Tone::Plain));
    }
    if let Some(n) = a.rows {
        v.push(fact(
            "rows",
            format!(
                "{n}{}",
                if a.rows_capped {
                    "+ (counted up to the cap)"
                } else {
                    ""
                }
            ),
            Tone::Plain,
        ));
    }
    for c in &a.shape {
        let (mark, tone) = match c.status {
            ColumnStatus::Matches => ("ok", Tone::Good),
            ColumnStatus::Missing => ("missing", Tone::Bad),
            ColumnStatus::TypeDiffers => ("differs", Tone::Bad),
        };
        v.push(fact(
            "column",
            format!(
                "{mark:<8} {}.{} expected {} found {}",
                c.table,
                c.column,
                c.expected.as_deref().unwrap_or("?"),
                c.found.as_deref().unwrap_or("-")
            ),
            tone,
        ));
    }
    if !a.extra_columns.is_empty() {
        v.push(fact("extra", a.extra_columns.join(", "), Tone::Plain));
    }
    for st in &a.steps {
        let (e, tone) = match st.exists {
            Some(true) => ("present", Tone::Good),
            Some(false) => ("missing", Tone::Bad),
            None => ("-", Tone::Dim),
        };
        v.push(fact("step", format!("{e} {}", st.step), tone));
    }
    match a.already_marked {
        Some(true) => v.push(fact(
            "marked",
            "yes: the version is already in schema_migrations",
            Tone::Warn,
        )),
        Some(false) => v.push(fact(
            "marked",
            "no: the version is not in schema_migrations",
            Tone::Plain,
        )),
        None => {}
    }
    let (verdict, tone) = match a.verdict {
        Verdict::MarkComplete => ("mark complete", Tone::Good),
        Verdict::DoNotMark => ("do not mark", Tone::Bad),
        Verdict::NothingToDo => ("nothing to do", Tone::Plain),
    };
    v.push(fact("verdict", verdict, tone));
    v.push(fact("why", a.reason.clone(), Tone::Plain));
    v.push(fact("advice", a.advice.clone(), Tone::Plain));
    for n in &a.notes {
        v.push(fact("note", n.clone(), Tone::Dim));
    }
    if a.verdict == Verdict::MarkComplete {
        if let Some(sql) = a.mark_sql() {
            v.push(fact("SQL", sql, Tone::Plain));
        }
        if let Some(cmd) = gitlab_command {
            v.push(fact("GitLab", cmd.to_string(), Tone::Plain));
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gitlab_commands_per_install_kind_and_database() {
        assert_eq!(
            gitlab_mark_command(Some(InstallKind::Omnibus), None, "20240101000000"),
            "sudo gitlab-rake gitlab:db:mark_migration_complete[20240101000000]"
        );
        assert_eq!(
            gitlab_mark_command(Some(InstallKind::Omnibus), Some("ci"), "20240101000000"),
            "sudo gitlab-rake gitlab:db:mark_migration_complete:ci[20240101000000]"
        );
        assert_eq!(
            gitlab_mark_command(Some(InstallKind::Source), None, "1"),
            "sudo -u git -H bundle exec rake gitlab:db:mark_migration_complete[1] RAILS_ENV=production"
        );
    }
}
