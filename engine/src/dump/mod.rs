//! pg_dump's plain SQL format: a streaming parser ([`parser`]), its table-of-contents
//! comment headers ([`toc`]) and what each statement does ([`classify`]).
//!
//! GitLab backs up each database with `pg_dump --clean --if-exists` into a gzip'd SQL script
//! (`db/database.sql.gz`) and restores it by piping it into `psql`. Rewind reads the same
//! script in one streaming pass and loads it in parallel (see `restore::load`).

pub mod classify;
pub mod parser;
pub mod toc;

pub use classify::{
    classify, create_extension, created_object, creates_partitioned_table, describe,
    dropped_object, foreign_key, privilege_statement, session_role, ForeignKey, Kind, ObjectKey,
    PrivilegeStatement, QualifiedName,
};
pub use parser::{
    CopyChunk, CopyHeader, DumpParser, Item, MetaCommand, ParseError, Position, Statement,
};
pub use toc::TocHeader;
