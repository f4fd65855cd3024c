//! Migration repair after a failed upgrade: read the failed `db:migrate` log
//! ([`log`]), look at the database to judge whether the failed migration's work is already
//! there ([`assess`]), mark a migration complete the way GitLab's
//! `gitlab:db:mark_migration_complete` does ([`mark`]), and loop mark → migrate → parse
//! until the migrations run clean ([`repair`]); before the next upgrade, list what the
//! backup does not create ([`check`]).

pub mod assess;
pub mod check;
pub mod describe;
pub mod log;
pub mod mark;
pub mod repair;
pub mod triage;
