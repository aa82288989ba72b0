//! The embedded file store. SIGNATURES ONLY (placeholder bodies).

use std::path::{Path, PathBuf};

use super::{Change, Persistence, StoreError};

pub struct FileStore {
    _dir: PathBuf,
}

impl FileStore {
    /// Opens (creating if needed) the store under `dir`. Takes an exclusive lock on the directory.
    pub fn open(dir: &Path) -> Result<FileStore, StoreError> {
        Ok(FileStore {
            _dir: dir.to_owned(),
        })
    }
}

impl Persistence for FileStore {
    fn load(&mut self) -> Result<Vec<Change>, StoreError> {
        Ok(vec![])
    }

    fn append(&mut self, changes: &[Change]) -> Result<(), StoreError> {
        let _ = changes;
        Ok(())
    }
}
