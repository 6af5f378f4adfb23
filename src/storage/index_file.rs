//! Shared plumbing of the sparse indexes: entries live in memory (a `Vec`) and in their
//! file, appended with positioned writes. The in-memory entries are shared with the log's
//! read view (`storage::read_view`) behind a reader-writer lock held only for a push or a
//! binary search, so fetches look up positions without the log's append lock. Unlike Kafka we neither pre-allocate nor mmap
//! the file, so its length is always an exact multiple of the entry size and nothing
//! needs trimming on close.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::error::{IoContext, StorageError};

/// A fixed-size index entry.
pub trait IndexEntry: Copy {
    const SIZE: usize;
    fn encode(&self, out: &mut Vec<u8>);
    fn decode(b: &[u8]) -> Self;
}

/// An index's entries, shared between the index (the only writer) and read views.
pub type SharedEntries<E> = Arc<RwLock<Vec<E>>>;

/// Reads shared entries; a writer that panicked left them consistent (every mutation is
/// one `Vec` call), so a poisoned lock is still readable.
pub fn read_entries<E>(entries: &RwLock<Vec<E>>) -> RwLockReadGuard<'_, Vec<E>> {
    crate::sync::read(entries)
}

/// The entries of one index plus its backing file.
#[derive(Debug)]
pub struct IndexFile<E> {
    path: PathBuf,
    file: File,
    entries: SharedEntries<E>,
    max_entries: usize,
    dirty: bool,
}

impl<E: IndexEntry> IndexFile<E> {
    /// Opens (creating if missing) the index at `path`, loading its entries. A length that
    /// is not a multiple of the entry size is reported as corrupt.
    pub fn open(path: &Path, max_entries: usize) -> Result<Self, StorageError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .ctx(path)?;
        let bytes = fs::read(path).ctx(path)?;
        if bytes.len() % E::SIZE != 0 {
            return Err(StorageError::Corrupt(format!(
                "index file {} has length {} which is not a multiple of {}",
                path.display(),
                bytes.len(),
                E::SIZE
            )));
        }
        let entries = Arc::new(RwLock::new(
            bytes.chunks_exact(E::SIZE).map(E::decode).collect(),
        ));
        Ok(IndexFile {
            path: path.to_path_buf(),
            file,
            entries,
            max_entries,
            dirty: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn entries(&self) -> RwLockReadGuard<'_, Vec<E>> {
        read_entries(&self.entries)
    }
    /// The entries, for a read view to search without the log's lock.
    pub fn shared_entries(&self) -> SharedEntries<E> {
        self.entries.clone()
    }
    fn entries_mut(&self) -> RwLockWriteGuard<'_, Vec<E>> {
        crate::sync::write(&self.entries)
    }
    pub fn last(&self) -> Option<E> {
        self.entries().last().copied()
    }
    pub fn len(&self) -> usize {
        self.entries().len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries().is_empty()
    }
    pub fn is_full(&self) -> bool {
        self.len() >= self.max_entries
    }
    pub fn set_max_entries(&mut self, max: usize) {
        self.max_entries = max;
    }

    /// Appends one entry to memory and file.
    pub fn push(&mut self, e: E) -> Result<(), StorageError> {
        let mut buf = Vec::with_capacity(E::SIZE);
        e.encode(&mut buf);
        let pos = (self.len() * E::SIZE) as u64;
        self.file.write_all_at(&buf, pos).ctx(&self.path)?;
        self.entries_mut().push(e);
        self.dirty = true;
        Ok(())
    }

    /// Keeps the first `n` entries.
    pub fn truncate_entries(&mut self, n: usize) -> Result<(), StorageError> {
        if n >= self.len() {
            return Ok(());
        }
        self.entries_mut().truncate(n);
        self.file.set_len((n * E::SIZE) as u64).ctx(&self.path)?;
        self.dirty = true;
        Ok(())
    }

    /// Rolls back to the first `n` entries after a failed append: unlike
    /// `truncate_entries` it always resets the file length, which a partial write of the
    /// entry that failed may have extended.
    pub fn rollback_to(&mut self, n: usize) -> Result<(), StorageError> {
        self.entries_mut().truncate(n);
        self.file.set_len((n * E::SIZE) as u64).ctx(&self.path)?;
        self.dirty = true;
        Ok(())
    }

    #[cfg(test)]
    pub(crate) fn reopen_read_only_for_test(&mut self) {
        self.file = OpenOptions::new().read(true).open(&self.path).unwrap();
    }
    #[cfg(test)]
    pub(crate) fn reopen_for_test(&mut self) {
        self.file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.path)
            .unwrap();
    }

    /// Replaces all entries (index rebuild) with one write.
    pub fn replace_all(&mut self, entries: Vec<E>) -> Result<(), StorageError> {
        let mut buf = Vec::with_capacity(entries.len() * E::SIZE);
        for e in &entries {
            e.encode(&mut buf);
        }
        self.file.set_len(0).ctx(&self.path)?;
        self.file.write_all_at(&buf, 0).ctx(&self.path)?;
        *self.entries_mut() = entries;
        self.dirty = true;
        Ok(())
    }

    /// fsyncs the file if it changed since the last flush.
    pub fn flush(&mut self) -> Result<(), StorageError> {
        if self.dirty {
            super::fileio::sync(&self.file, &self.path, true).ctx(&self.path)?;
            self.dirty = false;
        }
        Ok(())
    }

    /// Renames the backing file (the open handle stays valid).
    pub fn rename_to(&mut self, new_path: &Path) -> Result<(), StorageError> {
        fs::rename(&self.path, new_path).ctx(&self.path)?;
        self.path = new_path.to_path_buf();
        Ok(())
    }

    /// Removes the backing file.
    pub fn delete(&self) -> Result<(), StorageError> {
        remove_if_exists(&self.path)
    }
}

/// `fs::remove_file` that treats a missing file as success.
pub fn remove_if_exists(path: &Path) -> Result<(), StorageError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StorageError::io(path, e)),
    }
}
