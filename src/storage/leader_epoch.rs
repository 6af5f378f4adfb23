//! Leader-epoch cache (Kafka's `LeaderEpochFileCache`): epoch → start offset, persisted in
//! `leader-epoch-checkpoint` after every change.

use std::path::{Path, PathBuf};

use super::checkpoint::{CheckpointFile, EpochEntry, LEADER_EPOCH_CHECKPOINT_FILE};
use super::error::StorageError;

/// Kafka's `LeaderEpochFileCache.endOffsetFor` over epoch entries (epoch, start offset),
/// ascending: the largest epoch <= `requested` with its end offset (the start of the next
/// epoch, or `log_end_offset` for the latest epoch). A requested epoch older than every
/// entry ends where the first entry starts (its data is gone, and the follower must
/// truncate to there); one newer than every entry is unknown. `None` stands for
/// (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET). Pure, so the replication model log uses it
/// too.
pub fn end_offset_for<E>(
    entries: &[E],
    key: impl Fn(&E) -> (i32, i64),
    requested: i32,
    log_end_offset: i64,
) -> Option<(i32, i64)> {
    if requested < 0 {
        return None;
    }
    let (latest, _) = key(entries.last()?);
    if latest == requested {
        return Some((requested, log_end_offset));
    }
    // First entry with epoch > requested.
    let hi = entries.partition_point(|e| key(e).0 <= requested);
    let (_, higher_start) = key(entries.get(hi)?);
    if hi == 0 {
        Some((requested, higher_start))
    } else {
        Some((key(&entries[hi - 1]).0, higher_start))
    }
}

#[derive(Debug)]
pub struct LeaderEpochCache {
    /// Sorted by epoch; start offsets strictly increase with epoch.
    entries: Vec<EpochEntry>,
    checkpoint: CheckpointFile,
}

impl LeaderEpochCache {
    /// Loads the cache from `<dir>/leader-epoch-checkpoint` (missing file = empty). A
    /// malformed file is reported as `Corrupt`; the caller may rebuild from the log.
    pub fn load(dir: &Path) -> Result<Self, StorageError> {
        let checkpoint = CheckpointFile::new(dir.join(LEADER_EPOCH_CHECKPOINT_FILE));
        let raw: Vec<EpochEntry> = checkpoint.read()?;
        let mut cache = LeaderEpochCache {
            entries: Vec::new(),
            checkpoint,
        };
        for e in raw {
            cache.assign_in_memory(e.epoch, e.start_offset);
        }
        Ok(cache)
    }

    /// An empty cache writing to `<dir>/leader-epoch-checkpoint`.
    pub fn empty(dir: &Path) -> Self {
        LeaderEpochCache {
            entries: Vec::new(),
            checkpoint: CheckpointFile::new(dir.join(LEADER_EPOCH_CHECKPOINT_FILE)),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.checkpoint.path().to_path_buf()
    }

    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub fn latest_entry(&self) -> Option<EpochEntry> {
        self.entries.last().copied()
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.epoch)
    }

    /// Kafka's `assign`: no-op when `epoch` is the latest and the start offset does not go
    /// back; otherwise drops entries that would break monotonicity (epoch >= new epoch or
    /// start offset >= new start offset) and appends. Negative values are ignored (batches
    /// from before leader epochs existed). Returns whether anything changed.
    pub fn assign_in_memory(&mut self, epoch: i32, start_offset: i64) -> bool {
        if epoch < 0 || start_offset < 0 {
            return false;
        }
        if let Some(last) = self.entries.last() {
            if last.epoch == epoch && start_offset >= last.start_offset {
                return false;
            }
        }
        let before = self.entries.len();
        while let Some(last) = self.entries.last() {
            if last.epoch >= epoch || last.start_offset >= start_offset {
                self.entries.pop();
            } else {
                break;
            }
        }
        let removed = before - self.entries.len();
        if removed > 1 {
            tracing::warn!(
                epoch,
                start_offset,
                removed,
                path = %self.checkpoint.path().display(),
                "new leader epoch entry truncated conflicting entries"
            );
        }
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        debug_assert!(self.is_monotonic());
        true
    }

    /// `assign_in_memory` + checkpoint write when something changed.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> Result<bool, StorageError> {
        let changed = self.assign_in_memory(epoch, start_offset);
        if changed {
            self.write()?;
        }
        Ok(changed)
    }

    fn is_monotonic(&self) -> bool {
        self.entries
            .windows(2)
            .all(|w| w[0].epoch < w[1].epoch && w[0].start_offset < w[1].start_offset)
    }

    /// Kafka's `endOffsetFor` (see [`end_offset_for`]).
    pub fn end_offset_for(&self, requested: i32, log_end_offset: i64) -> Option<(i32, i64)> {
        end_offset_for(
            &self.entries,
            |e| (e.epoch, e.start_offset),
            requested,
            log_end_offset,
        )
    }

    /// Kafka's `epochForOffset`.
    pub fn epoch_for_offset(&self, offset: i64) -> Option<i32> {
        let idx = self.entries.partition_point(|e| e.start_offset <= offset);
        if idx == 0 {
            None
        } else {
            Some(self.entries[idx - 1].epoch)
        }
    }

    /// Removes entries whose start offset >= `end_offset` (Kafka's `truncateFromEnd`).
    pub fn truncate_from_end(&mut self, end_offset: i64) -> Result<(), StorageError> {
        let before = self.entries.len();
        self.entries.retain(|e| e.start_offset < end_offset);
        if self.entries.len() != before {
            self.write()?;
        }
        Ok(())
    }

    /// Kafka's `truncateFromStart`: removes entries starting at or before `start_offset`,
    /// keeping the last of them re-based to `start_offset`.
    pub fn truncate_from_start(&mut self, start_offset: i64) -> Result<(), StorageError> {
        let n = self
            .entries
            .partition_point(|e| e.start_offset <= start_offset);
        if n == 0 {
            return Ok(());
        }
        let keep_epoch = self.entries[n - 1].epoch;
        let unchanged = n == 1 && self.entries[0].start_offset == start_offset;
        if unchanged {
            return Ok(());
        }
        self.entries.drain(..n);
        self.entries.insert(
            0,
            EpochEntry {
                epoch: keep_epoch,
                start_offset,
            },
        );
        debug_assert!(self.is_monotonic());
        self.write()
    }

    /// Drops everything (and writes the empty checkpoint).
    pub fn clear(&mut self) -> Result<(), StorageError> {
        self.entries.clear();
        self.write()
    }

    /// Writes the checkpoint file atomically.
    pub fn write(&self) -> Result<(), StorageError> {
        self.checkpoint.write(&self.entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, i64)]) -> (tempfile::TempDir, LeaderEpochCache) {
        let dir = tempfile::tempdir().unwrap();
        let mut c = LeaderEpochCache::empty(dir.path());
        for &(e, o) in entries {
            c.assign(e, o).unwrap();
        }
        (dir, c)
    }

    fn pairs(c: &LeaderEpochCache) -> Vec<(i32, i64)> {
        c.entries()
            .iter()
            .map(|e| (e.epoch, e.start_offset))
            .collect()
    }

    // Cases from Kafka's LeaderEpochFileCacheTest.
    #[test]
    fn end_offset_for_latest_epoch_is_leo() {
        let (_d, c) = cache(&[(2, 6)]);
        assert_eq!(c.end_offset_for(2, 11), Some((2, 11)));
    }

    #[test]
    fn end_offset_for_undefined_or_empty() {
        let (_d, c) = cache(&[]);
        assert_eq!(c.end_offset_for(0, 0), None);
        let (_d, c) = cache(&[(2, 6)]);
        assert_eq!(c.end_offset_for(-1, 0), None);
    }

    #[test]
    fn end_offset_for_unknown_later_epoch_is_undefined() {
        let (_d, c) = cache(&[(2, 6)]);
        assert_eq!(c.end_offset_for(3, 100), None);
    }

    #[test]
    fn end_offset_for_epoch_below_first_returns_first_start() {
        let (_d, c) = cache(&[(5, 11), (6, 12), (7, 13)]);
        assert_eq!(c.end_offset_for(4, 0), Some((4, 11)));
        assert_eq!(c.end_offset_for(0, 0), Some((0, 11)));
    }

    #[test]
    fn end_offset_for_gap_returns_previous_epoch() {
        // epochs 2 and 6 known, 3..5 never led
        let (_d, c) = cache(&[(2, 6), (6, 10)]);
        assert_eq!(c.end_offset_for(4, 100), Some((2, 10)));
        assert_eq!(c.end_offset_for(2, 100), Some((2, 10)));
        assert_eq!(c.end_offset_for(6, 100), Some((6, 100)));
    }

    #[test]
    fn assign_rules() {
        let (_d, mut c) = cache(&[(2, 6)]);
        assert!(!c.assign(2, 7).unwrap(), "same epoch, later offset: no-op");
        assert!(
            c.assign(2, 5).unwrap(),
            "same epoch, earlier offset: replaced"
        );
        assert_eq!(pairs(&c), vec![(2, 5)]);
        assert!(c.assign(3, 8).unwrap());
        assert!(c.assign(4, 9).unwrap());
        // a lower epoch truncates conflicting entries
        assert!(c.assign(3, 8).unwrap());
        assert_eq!(pairs(&c), vec![(2, 5), (3, 8)]);
        // a higher epoch at a lower offset drops entries at/after that offset
        assert!(c.assign(5, 6).unwrap());
        assert_eq!(pairs(&c), vec![(2, 5), (5, 6)]);
        assert!(!c.assign(-1, 10).unwrap());
        assert_eq!(c.latest_epoch(), Some(5));
    }

    #[test]
    fn truncation_and_persistence() {
        let (d, mut c) = cache(&[(2, 6), (3, 8), (4, 11)]);
        c.truncate_from_end(9).unwrap();
        assert_eq!(pairs(&c), vec![(2, 6), (3, 8)]);
        c.truncate_from_start(7).unwrap();
        assert_eq!(pairs(&c), vec![(2, 7), (3, 8)]);
        c.truncate_from_start(9).unwrap();
        assert_eq!(pairs(&c), vec![(3, 9)]);
        c.truncate_from_start(1).unwrap();
        assert_eq!(pairs(&c), vec![(3, 9)]);
        let reloaded = LeaderEpochCache::load(d.path()).unwrap();
        assert_eq!(pairs(&reloaded), vec![(3, 9)]);
        let text = std::fs::read_to_string(d.path().join(LEADER_EPOCH_CHECKPOINT_FILE)).unwrap();
        assert_eq!(text, "0\n1\n3 9\n");
        assert_eq!(reloaded.epoch_for_offset(8), None);
        assert_eq!(reloaded.epoch_for_offset(100), Some(3));
    }
}
