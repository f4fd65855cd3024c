//! Where the wizard's restore reads dumps from: the engine's [`ArchiveSource`] over any
//! backup the `backup` module reads (a `_gitlab_backup.tar` or an unpacked backup
//! directory), members streamed in place and decoded by their magic bytes.

use rewind_engine::restore::database::ArchiveSource;

/// A dump source for a backup path.
pub fn source_for(path: &std::path::Path) -> Result<ArchiveSource, String> {
    ArchiveSource::from_path(path)
}
