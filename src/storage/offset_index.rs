//! Sparse offset index (Kafka's `OffsetIndex`, `.index` files): 8-byte entries of
//! (relative offset u32 BE, file position u32 BE). An entry maps the LAST offset of a batch
//! to the position where that batch starts (what `LogSegment.append`/`recover` write), so a
//! floor lookup gives a position at or before the batch containing any target offset.

use std::path::Path;

use super::error::StorageError;
use super::index_file::{IndexEntry, IndexFile};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetEntry {
    pub relative_offset: u32,
    pub position: u32,
}

impl IndexEntry for OffsetEntry {
    const SIZE: usize = 8;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.relative_offset.to_be_bytes());
        out.extend_from_slice(&self.position.to_be_bytes());
    }
    fn decode(b: &[u8]) -> Self {
        OffsetEntry {
            relative_offset: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            position: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        }
    }
}

/// An absolute offset and the file position of the batch it indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetPosition {
    pub offset: i64,
    pub position: u32,
}

#[derive(Debug)]
pub struct OffsetIndex {
    base_offset: i64,
    file: IndexFile<OffsetEntry>,
}

impl OffsetIndex {
    pub fn open(path: &Path, base_offset: i64, max_entries: usize) -> Result<Self, StorageError> {
        Ok(OffsetIndex {
            base_offset,
            file: IndexFile::open(path, max_entries)?,
        })
    }

    pub fn file(&self) -> &IndexFile<OffsetEntry> {
        &self.file
    }
    pub fn file_mut(&mut self) -> &mut IndexFile<OffsetEntry> {
        &mut self.file
    }
    pub fn is_full(&self) -> bool {
        self.file.is_full()
    }
    pub fn len(&self) -> usize {
        self.file.len()
    }
    pub fn is_empty(&self) -> bool {
        self.file.is_empty()
    }

    fn absolute(&self, e: &OffsetEntry) -> OffsetPosition {
        OffsetPosition {
            offset: self.base_offset + e.relative_offset as i64,
            position: e.position,
        }
    }

    pub fn last_entry(&self) -> Option<OffsetPosition> {
        self.file.last().map(|e| self.absolute(&e))
    }

    /// Largest entry with offset <= target, or (base offset, 0) (Kafka's `lookup`).
    pub fn lookup(&self, target: i64) -> OffsetPosition {
        let entries = self.file.entries();
        let idx =
            entries.partition_point(|e| self.base_offset + (e.relative_offset as i64) <= target);
        if idx == 0 {
            OffsetPosition {
                offset: self.base_offset,
                position: 0,
            }
        } else {
            self.absolute(&entries[idx - 1])
        }
    }

    /// Appends an entry; offsets and positions must strictly increase.
    pub fn append(&mut self, offset: i64, position: u32) -> Result<(), StorageError> {
        let rel = offset - self.base_offset;
        if !(0..=i32::MAX as i64).contains(&rel) {
            return Err(StorageError::InvalidArgument(format!(
                "offset {offset} does not fit the index of segment {}",
                self.base_offset
            )));
        }
        if let Some(last) = self.last_entry() {
            if offset <= last.offset || position <= last.position {
                return Err(StorageError::InvalidArgument(format!(
                    "index entry ({offset}, {position}) does not follow ({}, {}) in {}",
                    last.offset,
                    last.position,
                    self.file.path().display()
                )));
            }
        }
        self.file.push(OffsetEntry {
            relative_offset: rel as u32,
            position,
        })
    }

    /// Removes entries with offset >= `offset` (Kafka's `truncateTo`).
    pub fn truncate_to(&mut self, offset: i64) -> Result<(), StorageError> {
        let keep = self
            .file
            .entries()
            .partition_point(|e| self.base_offset + (e.relative_offset as i64) < offset);
        self.file.truncate_entries(keep)
    }

    /// Kafka's sanity check plus monotonicity: entries strictly increasing and every
    /// position inside the log file.
    pub fn sanity_check(&self, log_size: u64) -> Result<(), String> {
        let mut prev: Option<&OffsetEntry> = None;
        for e in self.file.entries().iter() {
            if e.relative_offset > i32::MAX as u32 {
                return Err(format!(
                    "relative offset {} out of range",
                    e.relative_offset
                ));
            }
            if e.position as u64 >= log_size {
                return Err(format!(
                    "entry position {} beyond log size {log_size}",
                    e.position
                ));
            }
            if let Some(p) = prev {
                if e.relative_offset <= p.relative_offset || e.position <= p.position {
                    return Err("entries are not strictly increasing".into());
                }
            }
            prev = Some(e);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_truncate_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("00000000000000000100.index");
        let mut idx = OffsetIndex::open(&p, 100, 10).unwrap();
        assert_eq!(
            idx.lookup(150),
            OffsetPosition {
                offset: 100,
                position: 0
            }
        );
        idx.append(110, 1000).unwrap();
        idx.append(120, 2000).unwrap();
        idx.append(130, 3000).unwrap();
        assert!(idx.append(130, 4000).is_err(), "offsets must increase");
        assert!(idx.append(140, 3000).is_err(), "positions must increase");
        assert!(idx.append(99, 5000).is_err(), "below base offset");
        assert_eq!(idx.lookup(105).position, 0);
        assert_eq!(idx.lookup(110).position, 1000);
        assert_eq!(
            idx.lookup(125),
            OffsetPosition {
                offset: 120,
                position: 2000
            }
        );
        assert_eq!(idx.lookup(10_000).position, 3000);
        // file format: 8-byte big-endian entries
        let raw = std::fs::read(&p).unwrap();
        assert_eq!(raw.len(), 24);
        assert_eq!(&raw[0..8], &[0, 0, 0, 10, 0, 0, 0x03, 0xe8]);
        idx.truncate_to(120).unwrap();
        assert_eq!(idx.len(), 1);
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 8);
        drop(idx);
        let idx = OffsetIndex::open(&p, 100, 10).unwrap();
        assert_eq!(
            idx.last_entry(),
            Some(OffsetPosition {
                offset: 110,
                position: 1000
            })
        );
        assert!(idx.sanity_check(1001).is_ok());
        assert!(idx.sanity_check(1000).is_err());
        std::fs::write(&p, [1, 2, 3]).unwrap();
        assert!(OffsetIndex::open(&p, 100, 10).is_err());
    }

    #[test]
    fn full_index() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = OffsetIndex::open(&dir.path().join("0.index"), 0, 2).unwrap();
        idx.append(1, 10).unwrap();
        assert!(!idx.is_full());
        idx.append(2, 20).unwrap();
        assert!(idx.is_full());
    }
}
