//! A segment's transaction index (Kafka's `TransactionIndex`, `<base>.txnindex`): one
//! 34-byte entry per aborted transaction whose ABORT marker lies in the segment —
//! `{version: i16 = 0, producer_id: i64, first_offset: i64, last_offset: i64,
//! last_stable_offset: i64}`, in marker order. A `read_committed` fetch collects the
//! entries that overlap what it returns, so the consumer can drop aborted records.
//!
//! As in Kafka the file exists only once an entry was written. The entries also live in
//! memory, shared with the log's read views like the offset index's, so fetches search
//! them without the log's lock; the file is opened only to write, which keeps a file
//! descriptor per segment free.

use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, RwLockWriteGuard};

use super::error::{IoContext, StorageError};
use super::index_file::{read_entries, remove_if_exists, SharedEntries};

pub const TXN_INDEX_EXT: &str = ".txnindex";

/// Kafka's `AbortedTxn.CURRENT_VERSION`.
const VERSION: i16 = 0;
/// Kafka's `AbortedTxn.TOTAL_SIZE`.
pub const ENTRY_SIZE: usize = 2 + 8 + 8 + 8 + 8;

/// One aborted transaction: its producer, its first data offset, the offset of its ABORT
/// marker, and the last stable offset when it was aborted (the first offset of the next
/// still-open transaction, or the marker's offset + 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
    pub last_stable_offset: i64,
}

impl AbortedTxn {
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&VERSION.to_be_bytes());
        out.extend_from_slice(&self.producer_id.to_be_bytes());
        out.extend_from_slice(&self.first_offset.to_be_bytes());
        out.extend_from_slice(&self.last_offset.to_be_bytes());
        out.extend_from_slice(&self.last_stable_offset.to_be_bytes());
    }

    fn decode(b: &[u8]) -> Result<AbortedTxn, String> {
        let version = i16::from_be_bytes([b[0], b[1]]);
        if version > VERSION {
            return Err(format!("unexpected aborted transaction version {version}"));
        }
        let at = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[i..i + 8]);
            i64::from_be_bytes(a)
        };
        Ok(AbortedTxn {
            producer_id: at(2),
            first_offset: at(10),
            last_offset: at(18),
            last_stable_offset: at(26),
        })
    }
}

/// Kafka's `TransactionIndex.collectAbortedTxns` over entries: those overlapping
/// `[fetch_offset, upper_bound)`, and whether the search is complete (an entry's last
/// stable offset reached the bound, so later segments cannot add any).
pub fn collect_aborted(
    entries: &[AbortedTxn],
    fetch_offset: i64,
    upper_bound: i64,
    out: &mut Vec<AbortedTxn>,
) -> bool {
    for e in entries {
        if e.last_offset >= fetch_offset && e.first_offset < upper_bound {
            out.push(*e);
        }
        if e.last_stable_offset >= upper_bound {
            return true;
        }
    }
    false
}

#[derive(Debug)]
pub struct TxnIndex {
    path: PathBuf,
    base_offset: i64,
    entries: SharedEntries<AbortedTxn>,
    dirty: bool,
}

impl TxnIndex {
    /// Loads the index at `path` if the file exists (an empty index otherwise). A length
    /// that is not whole entries, an unknown version or an entry ending before the
    /// segment is `Corrupt` (Kafka's `sanityCheck`).
    pub fn open(path: &Path, base_offset: i64) -> Result<TxnIndex, StorageError> {
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(StorageError::io(path, e)),
        };
        let corrupt = |why: String| StorageError::Corrupt(format!("{}: {why}", path.display()));
        if bytes.len() % ENTRY_SIZE != 0 {
            return Err(corrupt(format!(
                "length {} is not a multiple of {ENTRY_SIZE}",
                bytes.len()
            )));
        }
        let mut entries = Vec::with_capacity(bytes.len() / ENTRY_SIZE);
        for chunk in bytes.chunks_exact(ENTRY_SIZE) {
            let e = AbortedTxn::decode(chunk).map_err(corrupt)?;
            if e.last_offset < base_offset {
                return Err(corrupt(format!(
                    "aborted transaction ending at {} lies before the segment base {base_offset}",
                    e.last_offset
                )));
            }
            entries.push(e);
        }
        Ok(TxnIndex {
            path: path.to_path_buf(),
            base_offset,
            entries: Arc::new(RwLock::new(entries)),
            dirty: false,
        })
    }

    /// An empty index whose file does not exist yet.
    pub fn empty(path: &Path, base_offset: i64) -> TxnIndex {
        TxnIndex {
            path: path.to_path_buf(),
            base_offset,
            entries: Arc::new(RwLock::new(Vec::new())),
            dirty: false,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The entries, for read views (searched without the log's lock).
    pub fn shared_entries(&self) -> SharedEntries<AbortedTxn> {
        self.entries.clone()
    }

    pub fn entries(&self) -> Vec<AbortedTxn> {
        read_entries(&self.entries).clone()
    }

    pub fn len(&self) -> usize {
        read_entries(&self.entries).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn entries_mut(&self) -> RwLockWriteGuard<'_, Vec<AbortedTxn>> {
        self.entries.write().unwrap_or_else(|e| e.into_inner())
    }

    fn open_file(&self) -> Result<fs::File, StorageError> {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.path)
            .ctx(&self.path)
    }

    /// Appends an entry; marker offsets only grow within an index (Kafka refuses
    /// otherwise).
    pub fn append(&mut self, e: AbortedTxn) -> Result<(), StorageError> {
        let n = self.len();
        if let Some(last) = read_entries(&self.entries).last() {
            if last.last_offset >= e.last_offset {
                return Err(StorageError::InvalidArgument(format!(
                    "{}: aborted transaction ending at {} after one ending at {}",
                    self.path.display(),
                    e.last_offset,
                    last.last_offset
                )));
            }
        }
        assert!(
            e.last_offset >= self.base_offset && e.first_offset <= e.last_offset,
            "aborted transaction {e:?} outside segment {}",
            self.base_offset
        );
        let mut buf = Vec::with_capacity(ENTRY_SIZE);
        e.encode(&mut buf);
        let file = self.open_file()?;
        if let Err(err) = file.write_all_at(&buf, (n * ENTRY_SIZE) as u64) {
            let _ = file.set_len((n * ENTRY_SIZE) as u64);
            return Err(StorageError::io(&self.path, err));
        }
        self.entries_mut().push(e);
        self.dirty = true;
        Ok(())
    }

    /// Keeps the entries whose marker lies below `offset` (Kafka's `truncateTo`).
    pub fn truncate_to(&mut self, offset: i64) -> Result<(), StorageError> {
        let keep = read_entries(&self.entries)
            .iter()
            .take_while(|e| e.last_offset < offset)
            .count();
        if keep == self.len() {
            return Ok(());
        }
        self.entries_mut().truncate(keep);
        if self.path.exists() {
            self.open_file()?
                .set_len((keep * ENTRY_SIZE) as u64)
                .ctx(&self.path)?;
        }
        self.dirty = true;
        Ok(())
    }

    /// Replaces every entry (a cleaned segment copies its source's).
    pub fn replace_all(&mut self, entries: Vec<AbortedTxn>) -> Result<(), StorageError> {
        if entries.is_empty() && !self.path.exists() {
            self.entries_mut().clear();
            return Ok(());
        }
        let mut buf = Vec::with_capacity(entries.len() * ENTRY_SIZE);
        for e in &entries {
            e.encode(&mut buf);
        }
        let file = self.open_file()?;
        file.set_len(0).ctx(&self.path)?;
        file.write_all_at(&buf, 0).ctx(&self.path)?;
        *self.entries_mut() = entries;
        self.dirty = true;
        Ok(())
    }

    /// fsyncs the file if it changed since the last flush.
    pub fn flush(&mut self) -> Result<(), StorageError> {
        if self.dirty {
            if self.path.exists() {
                let file = OpenOptions::new()
                    .write(true)
                    .open(&self.path)
                    .ctx(&self.path)?;
                super::fileio::sync(&file, &self.path, true).ctx(&self.path)?;
            }
            self.dirty = false;
        }
        Ok(())
    }

    /// Renames the file, if there is one.
    pub fn rename_to(&mut self, new_path: &Path) -> Result<(), StorageError> {
        match fs::rename(&self.path, new_path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StorageError::io(&self.path, e)),
        }
        self.path = new_path.to_path_buf();
        Ok(())
    }

    /// Removes the file.
    pub fn delete(&self) -> Result<(), StorageError> {
        remove_if_exists(&self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(pid: i64, first: i64, last: i64, lso: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id: pid,
            first_offset: first,
            last_offset: last,
            last_stable_offset: lso,
        }
    }

    #[test]
    fn file_appears_with_the_first_entry_and_round_trips() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("00000000000000000100.txnindex");
        let mut idx = TxnIndex::open(&path, 100).unwrap();
        assert!(idx.is_empty() && !path.exists());
        idx.append(txn(1, 100, 105, 106)).unwrap();
        idx.append(txn(2, 101, 110, 111)).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 2 * 34);
        // Kafka's layout: version 0, then the four longs.
        let raw = std::fs::read(&path).unwrap();
        assert_eq!(&raw[0..2], &[0, 0]);
        assert_eq!(i64::from_be_bytes(raw[2..10].try_into().unwrap()), 1);
        assert_eq!(i64::from_be_bytes(raw[26..34].try_into().unwrap()), 106);
        let back = TxnIndex::open(&path, 100).unwrap();
        assert_eq!(back.entries(), idx.entries());
        assert!(
            idx.append(txn(3, 102, 110, 111)).is_err(),
            "marker offsets grow"
        );
        idx.truncate_to(106).unwrap();
        assert_eq!(idx.entries(), vec![txn(1, 100, 105, 106)]);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 34);
    }

    #[test]
    fn corrupt_files_are_reported() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("x.txnindex");
        std::fs::write(&path, [0u8; 33]).unwrap();
        assert!(matches!(
            TxnIndex::open(&path, 0),
            Err(StorageError::Corrupt(_))
        ));
        let mut buf = Vec::new();
        txn(1, 5, 9, 10).encode(&mut buf);
        std::fs::write(&path, &buf).unwrap();
        assert!(TxnIndex::open(&path, 0).is_ok());
        assert!(matches!(
            TxnIndex::open(&path, 50),
            Err(StorageError::Corrupt(_))
        ));
        buf[1] = 9; // version 9
        std::fs::write(&path, &buf).unwrap();
        assert!(matches!(
            TxnIndex::open(&path, 0),
            Err(StorageError::Corrupt(_))
        ));
    }

    #[test]
    fn collection_stops_once_the_lso_passes_the_bound() {
        let entries = [
            txn(1, 0, 5, 3),
            txn(2, 3, 8, 9),
            txn(3, 20, 25, 26),
            txn(4, 30, 31, 32),
        ];
        let mut out = Vec::new();
        assert!(collect_aborted(&entries, 4, 9, &mut out));
        assert_eq!(out, vec![entries[0], entries[1]]);
        let mut out = Vec::new();
        assert!(!collect_aborted(&entries, 26, 100, &mut out));
        assert_eq!(out, vec![entries[3]]);
    }
}
