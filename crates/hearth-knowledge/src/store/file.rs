//! Native persistence: one snapshot file per index directory, replaced atomically.

use std::fs;
use std::io::Write;
use std::path::Path;

use super::SNAPSHOT_FILE;
use crate::index::KnowledgeIndex;
use crate::{KnowledgeError, Result};

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KnowledgeError + '_ {
    move |source| KnowledgeError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl KnowledgeIndex {
    /// Writes `dir/index.hsnap`: into a temporary file, fsynced, then renamed over the old
    /// snapshot (and the directory fsynced), so a crash leaves the old or the new one whole.
    pub fn save(&self, dir: &Path) -> Result<()> {
        fs::create_dir_all(dir).map_err(io(dir))?;
        let bytes = self.to_bytes()?;
        let tmp = dir.join(format!("{SNAPSHOT_FILE}.tmp"));
        let path = dir.join(SNAPSHOT_FILE);
        let mut file = fs::File::create(&tmp).map_err(io(&tmp))?;
        file.write_all(&bytes).map_err(io(&tmp))?;
        file.sync_all().map_err(io(&tmp))?;
        drop(file);
        fs::rename(&tmp, &path).map_err(io(&path))?;
        // The rename itself is durable only once the directory entry is.
        #[cfg(unix)]
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(dir))?;
        Ok(())
    }

    /// Reads `dir/index.hsnap`.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(SNAPSHOT_FILE);
        let bytes = fs::read(&path).map_err(io(&path))?;
        Self::from_bytes(&bytes)
    }
}
