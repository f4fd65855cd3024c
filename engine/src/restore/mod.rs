//! Restoring a GitLab database from a backup: inventory of the live database, the leftovers
//! of a failed upgrade, the guarded drop of all tables, the safety snapshot, the load, and
//! the verification afterwards.

pub mod beside;
pub mod database;
pub mod drop;
pub mod inventory;
pub mod leftovers;
pub mod load;
pub mod loss;
#[cfg(test)]
mod omnibus_tests;
pub mod plan;
pub mod privileges;
pub mod salvage;
pub mod snapshot;
pub mod verify;
