//! The next step after one of GitLab's own messages, for the detected installation kind.
//!
//! Rewind shows GitLab's messages verbatim (the version mismatch of `gitlab-backup
//! restore`, a failed `db:migrate`, `gitlab:doctor:secrets`, `gitlab:check`), but GitLab
//! phrases some for one kind of install only: the version mismatch ends with "Hint: git
//! checkout v…", which means nothing on an Omnibus package. [`hint`] gives the line that
//! follows such a message: `gitlab-ctl`, `gitlab-rake` and `rewind rollback --to V` on
//! Omnibus; `sudo -u git -H bundle exec rake … RAILS_ENV=production` and `git checkout vX`
//! from source; both, labelled, when the kind is unknown.

use serde::Serialize;

use crate::detect::InstallKind;

/// The kind of GitLab message a hint follows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "class")]
pub enum MessageClass {
    /// `gitlab-backup restore`: "GitLab version mismatch … Hint: git checkout v<backup>".
    VersionMismatch { backup_version: String },
    /// `db:migrate` failed on something Rewind fixes forward (the cause fixed, migrate
    /// again).
    MigrateFailed,
    /// `db:migrate` failed and GitLab's way back is the backup of the older version.
    RollbackNeeded { backup_version: Option<String> },
    /// `gitlab-ctl reconfigure` stopped on the configuration.
    ReconfigureFailed,
    /// `gitlab:doctor:secrets` found values that cannot be decrypted.
    SecretsUndecryptable,
    /// `gitlab:check` reported problems.
    CheckFailed,
}

/// A rake task as GitLab's documentation gives it for `kind`.
pub fn rake(kind: InstallKind, task: &str) -> String {
    match kind {
        InstallKind::Omnibus => format!("sudo gitlab-rake {task}"),
        InstallKind::Source => {
            format!("sudo -u git -H bundle exec rake {task} RAILS_ENV=production")
        }
    }
}

fn for_kind(kind: InstallKind, class: &MessageClass) -> String {
    use InstallKind::{Omnibus, Source};
    match (kind, class) {
        (Omnibus, MessageClass::VersionMismatch { backup_version: v }) => format!(
            "This is an Omnibus install (the git hint above is for source installs): install GitLab {v} first with `rewind rollback --to {v}` (or the wizard's Roll back package step), which stops Puma and Sidekiq, installs that package version and reconfigures."
        ),
        (Source, MessageClass::VersionMismatch { backup_version: v }) => format!(
            "Source install: in /home/git/gitlab, `sudo -u git -H git checkout v{v}`, then `sudo -u git -H bundle install` and restart GitLab (`sudo service gitlab restart`) before restoring; `rewind rollback --to {v}` prints the whole checklist."
        ),
        (Omnibus, MessageClass::MigrateFailed) => format!(
            "Once the cause is fixed: `{}`, then `sudo gitlab-ctl reconfigure` and `sudo gitlab-ctl restart`.",
            rake(Omnibus, "db:migrate")
        ),
        (Source, MessageClass::MigrateFailed) => format!(
            "Once the cause is fixed: `{}`, then `sudo service gitlab restart`.",
            rake(Source, "db:migrate")
        ),
        (Omnibus, MessageClass::RollbackNeeded { backup_version }) => {
            let v = backup_version.as_deref().unwrap_or("<the backup's version>");
            format!(
                "Omnibus: `rewind rollback --to {v}` installs the backup's package version (snapshot first), then `rewind restore` (or `rewind wizard`) restores the backup."
            )
        }
        (Source, MessageClass::RollbackNeeded { backup_version }) => {
            let v = backup_version.as_deref().unwrap_or("<the backup's version>");
            format!(
                "Source install: `sudo -u git -H git checkout v{v}` in /home/git/gitlab (`rewind rollback --to {v}` prints the checklist), then `rewind restore` restores the backup."
            )
        }
        (Omnibus, MessageClass::ReconfigureFailed) => {
            "Omnibus: fix /etc/gitlab/gitlab.rb as the message says, then `sudo gitlab-ctl reconfigure` again.".into()
        }
        (Source, MessageClass::ReconfigureFailed) => {
            "Source install: there is no gitlab-ctl; fix config/gitlab.yml in /home/git/gitlab and `sudo service gitlab restart`.".into()
        }
        (Omnibus, MessageClass::SecretsUndecryptable) => format!(
            "First restore the gitlab-secrets.json that matches the backup (`rewind config --restore`), run `sudo gitlab-ctl reconfigure` and `sudo gitlab-ctl restart`, then `{}` again. Only when that file is lost, use GitLab's fixes: they delete or reset the values that cannot be decrypted (take a database backup first).",
            rake(Omnibus, "gitlab:doctor:secrets VERBOSE=1")
        ),
        (Source, MessageClass::SecretsUndecryptable) => format!(
            "First restore the config/secrets.yml that matches the backup into /home/git/gitlab, `sudo service gitlab restart`, then `{}` again. Only when that file is lost, use GitLab's fixes: they delete or reset the values that cannot be decrypted (take a database backup first).",
            rake(Source, "gitlab:doctor:secrets VERBOSE=1")
        ),
        (Omnibus, MessageClass::CheckFailed) => format!(
            "Fix what the check marks red, `sudo gitlab-ctl status` and `sudo gitlab-ctl tail` for the services, then `{}` again.",
            rake(Omnibus, "gitlab:check SANITIZE=true")
        ),
        (Source, MessageClass::CheckFailed) => format!(
            "Fix what the check marks red, `sudo service gitlab status` for the services, then `{}` again.",
            rake(Source, "gitlab:check SANITIZE=true")
        ),
    }
}

/// The line that follows GitLab's message of `class` on an installation of `kind`; both
/// kinds' lines, labelled, when the kind is unknown.
pub fn hint(kind: Option<InstallKind>, class: &MessageClass) -> Option<String> {
    match kind {
        Some(k) => Some(for_kind(k, class)),
        None => Some(format!(
            "The installation kind is unknown. Omnibus: {} Source: {}",
            for_kind(InstallKind::Omnibus, class),
            for_kind(InstallKind::Source, class)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classes() -> Vec<MessageClass> {
        vec![
            MessageClass::VersionMismatch {
                backup_version: "16.10.3-ee".into(),
            },
            MessageClass::MigrateFailed,
            MessageClass::RollbackNeeded {
                backup_version: Some("16.10.3-ee".into()),
            },
            MessageClass::ReconfigureFailed,
            MessageClass::SecretsUndecryptable,
            MessageClass::CheckFailed,
        ]
    }

    #[test]
    fn omnibus_hints_name_omnibus_commands_only() {
        for c in classes() {
            let h = hint(Some(InstallKind::Omnibus), &c).unwrap();
            assert!(
                h.contains("gitlab-ctl") || h.contains("gitlab-rake") || h.contains("rewind "),
                "{c:?}: {h}"
            );
            assert!(!h.contains("bundle exec"), "{c:?}: {h}");
            assert!(!h.contains("git checkout"), "{c:?}: {h}");
            assert!(!h.contains("RAILS_ENV"), "{c:?}: {h}");
        }
    }

    #[test]
    fn source_hints_name_source_commands_only() {
        for c in classes() {
            let h = hint(Some(InstallKind::Source), &c).unwrap();
            assert!(!h.contains("gitlab-rake"), "{c:?}: {h}");
            assert!(
                !h.contains("gitlab-ctl reconfigure") && !h.contains("gitlab-ctl restart"),
                "{c:?}: {h}"
            );
        }
    }

    #[test]
    fn each_class_gets_its_own_next_step() {
        let o = |c: &MessageClass| hint(Some(InstallKind::Omnibus), c).unwrap();
        let s = |c: &MessageClass| hint(Some(InstallKind::Source), c).unwrap();
        let [vm, mig, rb, rc, sec, chk]: [MessageClass; 6] = classes().try_into().unwrap();
        assert!(o(&vm).contains("rewind rollback --to 16.10.3-ee"));
        assert!(s(&vm).contains("git checkout v16.10.3-ee"));
        assert!(o(&mig).contains("sudo gitlab-rake db:migrate"));
        assert!(s(&mig).contains("sudo -u git -H bundle exec rake db:migrate RAILS_ENV=production"));
        assert!(o(&rb).contains("rewind rollback --to 16.10.3-ee"));
        assert!(s(&rb).contains("git checkout v16.10.3-ee"));
        assert!(o(&rc).contains("gitlab.rb") && o(&rc).contains("gitlab-ctl reconfigure"));
        assert!(s(&rc).contains("gitlab.yml"));
        assert!(
            o(&sec).contains("gitlab-secrets.json")
                && o(&sec).contains("sudo gitlab-rake gitlab:doctor:secrets VERBOSE=1")
        );
        assert!(s(&sec).contains("secrets.yml")
            && s(&sec).contains(
                "sudo -u git -H bundle exec rake gitlab:doctor:secrets VERBOSE=1 RAILS_ENV=production"
            ));
        assert!(o(&chk).contains("sudo gitlab-rake gitlab:check SANITIZE=true"));
        assert!(s(&chk).contains(
            "sudo -u git -H bundle exec rake gitlab:check SANITIZE=true RAILS_ENV=production"
        ));
        // Every class's hints differ between the kinds.
        for c in classes() {
            assert_ne!(o(&c), s(&c), "{c:?}");
        }
    }

    #[test]
    fn unknown_kind_gives_both_labelled() {
        let h = hint(None, &MessageClass::MigrateFailed).unwrap();
        assert!(h.contains("Omnibus: ") && h.contains("Source: "), "{h}");
        assert!(h.contains("sudo gitlab-rake db:migrate"), "{h}");
        assert!(h.contains("bundle exec rake db:migrate"), "{h}");
    }
}
