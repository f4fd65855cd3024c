//! `rewind-engine`: everything Rewind knows about recovering a GitLab instance after a
//! failed upgrade, with no terminal code.
//!
//! The engine is synchronous: PostgreSQL, tar, gzip and zstd are streaming `Read`/`Write`
//! pipelines. Front ends (the CLI and the TUI wizard in the `rewind` crate) run engine calls
//! on worker threads and receive [`progress::Event`]s through a [`progress::Sink`] they
//! provide. Every host path goes through [`root::HostRoot`], so tests and the drill run the
//! real code against a sandbox tree.

pub mod backup;
pub mod detect;
pub mod drill;
pub mod dump;
pub mod exec;
pub mod files;
pub mod hints;
pub mod journal;
pub mod limited;
pub mod migrate;
pub mod packages;
pub mod pg;
pub mod preflight;
pub mod progress;
pub mod recovery;
pub mod repositories;
pub mod restore;
pub mod root;
pub mod safefs;
pub mod sandbox;
pub mod services;
pub mod session;
pub mod version;
