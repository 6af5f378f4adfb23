//! Log compaction (not yet implemented).

use super::error::StorageError;
use super::log::Log;

impl Log {
    /// Compacts the log if its dirty ratio exceeds min.cleanable.dirty.ratio. Returns
    /// whether anything was cleaned.
    pub fn clean(&mut self, _now_ms: i64) -> Result<bool, StorageError> {
        Ok(false)
    }
}
