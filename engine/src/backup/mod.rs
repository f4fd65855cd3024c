//! GitLab backup archives: the manifest ([`metadata`]), the backup directory
//! ([`catalogue`]), member compression and streaming ([`compression`]), and end-to-end
//! verification ([`verify`]).
//!
//! A GitLab backup is an uncompressed tar (`<id>_gitlab_backup.tar`) holding
//! `backup_information.yml`, `db/[<name>_]database.sql.gz` (a plain SQL dump through
//! `gzip -c -1`, or any `COMPRESS_CMD` such as zstd while keeping the `.gz` name),
//! `<component>.tar.gz` archives of file components, and `repositories/`. It may also be
//! unpacked in place ("non tarred" backup). Nothing here writes anything; archives are read
//! by walking tar headers and seeking, or by streaming with flat memory.

use std::path::{Path, PathBuf};

pub mod catalogue;
pub mod compression;
pub mod metadata;
pub mod stream;
pub mod tar_headers;
pub mod verify;

pub use catalogue::{BackupEntry, BackupKind, MemberInfo};
pub use compression::{open_member, Compression, CountingReader, OpenMember};
pub use metadata::{BackupInformation, CreatedAt};

/// File name suffix of a tarred backup.
pub const FILE_NAME_SUFFIX: &str = "_gitlab_backup.tar";

/// What to tell the user when an archive is damaged.
const PICK_ANOTHER: &str =
    "this backup cannot be restored as it is; pick another backup (`rewind backups` lists them) or copy this one again from where it was stored";

/// Errors reading a backup. Every message names the archive (and the member when there is
/// one) and says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The file is not a tar archive at all.
    #[error("{archive}: not a tar archive ({detail}); a GitLab backup is the uncompressed `<id>_gitlab_backup.tar` that `gitlab-backup create` writes: point Rewind at that file")]
    NotATar { archive: PathBuf, detail: String },

    /// The archive ends before a member's data (or its header) does.
    #[error("{archive}: archive is truncated: it ends inside member `{member}` ({detail}); {PICK_ANOTHER}")]
    Truncated {
        archive: PathBuf,
        member: String,
        detail: String,
    },

    /// The archive ends without the tar end-of-archive marker.
    #[error("{archive}: archive is truncated: it ends after member `{last_member}` without tar's end-of-archive marker, so members may be missing; {PICK_ANOTHER}")]
    MissingEnd {
        archive: PathBuf,
        last_member: String,
    },

    /// A tar header inside the archive is damaged.
    #[error("{archive}: damaged tar header {where_}: {detail}; {PICK_ANOTHER}")]
    BadHeader {
        archive: PathBuf,
        where_: String,
        detail: String,
    },

    /// A gzip member fails to inflate or its CRC does not match.
    #[error("{archive}: member `{member}` is corrupt: gzip data does not decompress ({detail}); {PICK_ANOTHER}")]
    CorruptGzip {
        archive: PathBuf,
        member: String,
        detail: String,
    },

    /// A zstd member fails to decode, is cut short, or its checksum does not match.
    #[error("{archive}: member `{member}` is corrupt: zstd data does not decompress ({detail}); {PICK_ANOTHER}")]
    CorruptZstd {
        archive: PathBuf,
        member: String,
        detail: String,
    },

    /// A nested `<component>.tar.gz` holds a damaged or unsafe tar.
    #[error("{archive}: member `{member}`: {detail}; {PICK_ANOTHER}")]
    CorruptNested {
        archive: PathBuf,
        member: String,
        detail: String,
    },

    /// `backup_information.yml` is absent.
    #[error("{archive}: no `backup_information.yml` in this backup, so its GitLab version and contents are unknown; GitLab refuses to restore it too. Pick another backup, or one made by `gitlab-backup create`")]
    MissingInformation { archive: PathBuf },

    /// `backup_information.yml` cannot be read.
    #[error("{archive}: member `backup_information.yml` is malformed: {detail}; GitLab cannot restore this backup either: pick another backup")]
    MalformedInformation { archive: PathBuf, detail: String },

    /// A member asked for is not in the archive.
    #[error("{archive}: no member `{member}` in this backup (it has: {available}); {hint}")]
    MemberNotFound {
        archive: PathBuf,
        member: String,
        available: String,
        hint: String,
    },

    /// The backup directory holds no backups.
    #[error("{dir}: no GitLab backups here (no `*_gitlab_backup.tar` and no unpacked backup with `backup_information.yml`); give the directory that holds them with --backup-dir, or a backup file path")]
    EmptyDir { dir: PathBuf },

    /// The backup directory does not exist.
    #[error("{dir}: backup directory does not exist: {source}; give the directory with --backup-dir (GitLab's `gitlab_rails['backup_path']`)")]
    NoDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A file cannot be read (permissions, a directory where a file was expected, I/O).
    #[error("{path}: cannot read: {source}; {hint}")]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
        hint: &'static str,
    },

    /// An id that matches no backup.
    #[error("no backup matches `{id}` in {dir}; the backups there are: {available}")]
    NoSuchBackup {
        id: String,
        dir: PathBuf,
        available: String,
    },

    /// An id that matches several backups.
    #[error("Found more than one backup matching `{id}`:\n  {matches}\nGive the full id (one of the above) or the path of the file")]
    Ambiguous { id: String, matches: String },

    /// A database dump that is not one (neither gzip, zstd nor plain SQL inside).
    #[error("{archive}: member `{member}` is unreadable: {detail}; {PICK_ANOTHER}")]
    NotADump {
        archive: PathBuf,
        member: String,
        detail: String,
    },

    /// A member stored twice: readers would take the first, GNU tar extracts the last.
    #[error("{archive}: member `{member}` is in the archive twice; Rewind would read the first copy where GNU tar (and so GitLab) extracts the last, so it refuses to guess; {PICK_ANOTHER}")]
    DuplicateMember { archive: PathBuf, member: String },

    /// A member name that would leave its directory.
    #[error("`{member}` is not a safe member name (absolute or containing `..`)")]
    UnsafeMemberName { member: String },
}

impl BackupError {
    pub(crate) fn unreadable(path: &Path, source: std::io::Error) -> Self {
        let hint = match source.kind() {
            std::io::ErrorKind::PermissionDenied => {
                "run Rewind as root (or as the `git` user that owns GitLab's backups)"
            }
            std::io::ErrorKind::NotFound => "check the path",
            _ if path.is_dir() => "a directory is there where a backup file was expected",
            _ => "check the file and the disk it is on",
        };
        BackupError::Unreadable {
            path: path.to_path_buf(),
            source,
            hint,
        }
    }

    /// The archive member the error is about, when there is one.
    pub fn member(&self) -> Option<&str> {
        match self {
            BackupError::Truncated { member, .. }
            | BackupError::CorruptGzip { member, .. }
            | BackupError::CorruptZstd { member, .. }
            | BackupError::CorruptNested { member, .. }
            | BackupError::NotADump { member, .. }
            | BackupError::DuplicateMember { member, .. }
            | BackupError::MemberNotFound { member, .. } => Some(member),
            BackupError::MissingEnd { last_member, .. } => Some(last_member),
            BackupError::MissingInformation { .. } | BackupError::MalformedInformation { .. } => {
                Some(metadata::MANIFEST_NAME)
            }
            _ => None,
        }
    }
}

/// The typed error for a tar walking failure in `archive`.
pub(crate) fn tar_error(archive: &Path, e: tar_headers::TarError) -> BackupError {
    use tar_headers::TarError;
    match e {
        TarError::Io(e) => match stream::input_ended(&e) {
            Some(ended) => BackupError::Truncated {
                archive: archive.to_path_buf(),
                member: "(unknown)".into(),
                detail: ended.to_string(),
            },
            None => BackupError::unreadable(archive, e),
        },
        TarError::NotATar(detail) => BackupError::NotATar {
            archive: archive.to_path_buf(),
            detail,
        },
        TarError::Truncated { member, detail } => BackupError::Truncated {
            archive: archive.to_path_buf(),
            member,
            detail,
        },
        TarError::MissingEnd { last_member } => BackupError::MissingEnd {
            archive: archive.to_path_buf(),
            last_member,
        },
        TarError::BadHeader {
            offset,
            after,
            detail,
        } => BackupError::BadHeader {
            archive: archive.to_path_buf(),
            where_: format!("at byte {offset}, after member `{after}`"),
            detail,
        },
    }
}

#[cfg(test)]
mod testkit;
#[cfg(test)]
mod tests;
