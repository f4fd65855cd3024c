//! Where the wizard's restore reads dumps from: any backup the engine's `backup` module
//! reads (a `_gitlab_backup.tar` or an unpacked backup directory), the member streamed in
//! place and decoded by its magic bytes (nothing is unpacked to disk).

use std::path::PathBuf;
use std::sync::Arc;

use rewind_engine::backup::compression::{locate_member, open_member};
use rewind_engine::restore::database::{DumpSource, OpenedDump};

/// The members of one backup.
#[derive(Debug, Clone)]
pub struct BackupSource {
    pub archive: PathBuf,
}

impl DumpSource for BackupSource {
    fn has(&self, member: &str) -> bool {
        locate_member(&self.archive, member).is_ok()
    }

    fn open(&self, member: &str) -> Result<OpenedDump, String> {
        let m = open_member(&self.archive, member).map_err(|e| e.to_string())?;
        let progress = m.progress.clone();
        Ok(OpenedDump {
            compressed_size: m.compressed_size,
            compressed_read: Arc::new(move || progress.get()),
            reader: Box::new(m),
        })
    }

    fn describe(&self) -> String {
        self.archive.display().to_string()
    }
}

/// A dump source for a backup path.
pub fn source_for(path: &std::path::Path) -> Box<dyn DumpSource + Send + Sync> {
    Box::new(BackupSource {
        archive: path.to_path_buf(),
    })
}
