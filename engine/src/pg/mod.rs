//! PostgreSQL: connection settings, throwaway clusters, and (in later modules) inventory,
//! drop, snapshot and restore.

pub mod cluster;
pub mod conn;
pub mod ident;
pub mod peer;
pub mod tls;
pub mod tools;
mod url;

#[cfg(test)]
mod tls_tests;
