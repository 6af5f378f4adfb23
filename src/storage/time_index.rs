//! Sparse time index (Kafka's `TimeIndex`, `.timeindex` files): 12-byte entries of
//! (timestamp i64 BE, relative offset u32 BE). Only strictly increasing max timestamps are
//! recorded; each maps "largest timestamp so far" to the offset Kafka records with it (the
//! last offset of the batch that carried that timestamp).

use std::path::Path;

use super::error::StorageError;
use super::index_file::{IndexEntry, IndexFile};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEntry {
    pub timestamp: i64,
    pub relative_offset: u32,
}

impl IndexEntry for TimeEntry {
    const SIZE: usize = 12;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.relative_offset.to_be_bytes());
    }
    fn decode(b: &[u8]) -> Self {
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&b[0..8]);
        TimeEntry {
            timestamp: i64::from_be_bytes(ts),
            relative_offset: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
        }
    }
}

/// An absolute (timestamp, offset) pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampOffset {
    pub timestamp: i64,
    pub offset: i64,
}

#[derive(Debug)]
pub struct TimeIndex {
    base_offset: i64,
    file: IndexFile<TimeEntry>,
}

impl TimeIndex {
    pub fn open(path: &Path, base_offset: i64, max_entries: usize) -> Result<Self, StorageError> {
        Ok(TimeIndex {
            base_offset,
            file: IndexFile::open(path, max_entries)?,
        })
    }
    pub fn file(&self) -> &IndexFile<TimeEntry> {
        &self.file
    }
    pub fn file_mut(&mut self) -> &mut IndexFile<TimeEntry> {
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

    fn absolute(&self, e: &TimeEntry) -> TimestampOffset {
        TimestampOffset {
            timestamp: e.timestamp,
            offset: self.base_offset + e.relative_offset as i64,
        }
    }

    pub fn last_entry(&self) -> Option<TimestampOffset> {
        self.file.last().map(|e| self.absolute(&e))
    }

    /// Appends (timestamp, offset) if the timestamp is larger than the last entry's
    /// (Kafka's `maybeAppend`). `skip_full_check` lets the final entry of a rolled segment
    /// in even when the index is full.
    pub fn maybe_append(
        &mut self,
        timestamp: i64,
        offset: i64,
        skip_full_check: bool,
    ) -> Result<(), StorageError> {
        if !skip_full_check && self.is_full() {
            return Ok(());
        }
        let rel = offset - self.base_offset;
        if !(0..=i32::MAX as i64).contains(&rel) {
            return Err(StorageError::InvalidArgument(format!(
                "offset {offset} does not fit the time index of segment {}",
                self.base_offset
            )));
        }
        if let Some(last) = self.last_entry() {
            if offset < last.offset {
                return Err(StorageError::InvalidArgument(format!(
                    "time index offset {offset} below last entry offset {} in {}",
                    last.offset,
                    self.file.path().display()
                )));
            }
            if timestamp <= last.timestamp {
                return Ok(());
            }
        }
        self.file.push(TimeEntry {
            timestamp,
            relative_offset: rel as u32,
        })
    }

    /// Largest entry with timestamp <= target, or (-1, base offset) (Kafka's `lookup`).
    pub fn lookup(&self, target: i64) -> TimestampOffset {
        let entries = self.file.entries();
        let idx = entries.partition_point(|e| e.timestamp <= target);
        if idx == 0 {
            TimestampOffset {
                timestamp: -1,
                offset: self.base_offset,
            }
        } else {
            self.absolute(&entries[idx - 1])
        }
    }

    /// Removes entries with offset >= `offset`.
    pub fn truncate_to(&mut self, offset: i64) -> Result<(), StorageError> {
        let keep = self
            .file
            .entries()
            .partition_point(|e| self.base_offset + (e.relative_offset as i64) < offset);
        self.file.truncate_entries(keep)
    }

    /// Timestamps strictly increasing, offsets non-decreasing and below `next_offset`.
    pub fn sanity_check(&self, next_offset: i64) -> Result<(), String> {
        let mut prev: Option<&TimeEntry> = None;
        for e in self.file.entries().iter() {
            if e.relative_offset > i32::MAX as u32
                || self.base_offset + e.relative_offset as i64
                    >= next_offset.max(self.base_offset + 1)
            {
                return Err(format!(
                    "time index offset {} beyond the segment's data",
                    self.base_offset + e.relative_offset as i64
                ));
            }
            if let Some(p) = prev {
                if e.timestamp <= p.timestamp || e.relative_offset < p.relative_offset {
                    return Err("time index entries are not increasing".into());
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
    fn only_increasing_timestamps_and_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("00000000000000000000.timeindex");
        let mut idx = TimeIndex::open(&p, 0, 100).unwrap();
        idx.maybe_append(1000, 4, false).unwrap();
        idx.maybe_append(900, 9, false).unwrap(); // not larger: skipped
        idx.maybe_append(1000, 9, false).unwrap(); // equal: skipped
        idx.maybe_append(2000, 19, false).unwrap();
        assert!(
            idx.maybe_append(3000, 10, false).is_err(),
            "offset went back"
        );
        assert_eq!(idx.len(), 2);
        assert_eq!(
            idx.lookup(500),
            TimestampOffset {
                timestamp: -1,
                offset: 0
            }
        );
        assert_eq!(
            idx.lookup(1500),
            TimestampOffset {
                timestamp: 1000,
                offset: 4
            }
        );
        assert_eq!(idx.lookup(2000).offset, 19);
        let raw = std::fs::read(&p).unwrap();
        assert_eq!(raw.len(), 24);
        assert_eq!(&raw[0..12], &[0, 0, 0, 0, 0, 0, 0x03, 0xe8, 0, 0, 0, 4]);
        idx.truncate_to(19).unwrap();
        assert_eq!(
            idx.last_entry(),
            Some(TimestampOffset {
                timestamp: 1000,
                offset: 4
            })
        );
        assert!(idx.sanity_check(5).is_ok());
        assert!(idx.sanity_check(4).is_err());
    }
}
