//! Retention (Kafka's `UnifiedLog.deleteOldSegments`): whole segments are deleted by time
//! (`retention.ms` against the segment's largest timestamp), by size (`retention.bytes`)
//! and when wholly below the log start offset. A segment is only deletable if all of its
//! offsets are below `max_deletable_offset` (the high watermark: unreplicated data is never
//! retention-deleted). When every segment is deletable the log first rolls a fresh empty
//! active segment, as Kafka does. Deleted files are renamed `.deleted` and removed after
//! `file.delete.delay.ms`.

use super::error::StorageError;
use super::log::Log;
use super::segment::Segment;

impl Log {
    /// Applies retention; returns the number of segments deleted.
    pub fn delete_expired_segments(
        &mut self,
        now_ms: i64,
        max_deletable_offset: i64,
    ) -> Result<usize, StorageError> {
        let r = self.delete_expired_segments_unguarded(now_ms, max_deletable_offset);
        self.publish();
        self.guarded(r)
    }

    fn delete_expired_segments_unguarded(
        &mut self,
        now_ms: i64,
        max_deletable_offset: i64,
    ) -> Result<usize, StorageError> {
        if self.closed {
            return Err(StorageError::Closed(self.tp.to_string()));
        }
        if self.is_dir_offline() {
            return Err(StorageError::LogDirOffline(self.tp.to_string()));
        }
        self.last_now_ms = self.last_now_ms.max(now_ms);
        self.process_pending_deletes(now_ms, false)?;
        let mut deleted = 0;
        if self.config.cleanup_policy.deletes() {
            let retention_ms = self.config.retention_ms;
            if retention_ms >= 0 {
                deleted += self.delete_old_segments(
                    now_ms,
                    max_deletable_offset,
                    "retention.ms",
                    |seg, _| now_ms.saturating_sub(seg.largest_timestamp()) > retention_ms,
                )?;
            }
            let retention_bytes = self.config.retention_bytes;
            let size = self.size_bytes();
            if retention_bytes >= 0 && size > retention_bytes as u64 {
                let mut diff = size - retention_bytes as u64;
                deleted += self.delete_old_segments(
                    now_ms,
                    max_deletable_offset,
                    "retention.bytes",
                    |seg, _| {
                        if diff >= seg.size() {
                            diff -= seg.size();
                            true
                        } else {
                            false
                        }
                    },
                )?;
            }
        }
        deleted += self.delete_log_start_breached_segments(now_ms)?;
        Ok(deleted)
    }

    /// Deletes segments whose successor starts at or below the log start offset.
    pub(super) fn delete_log_start_breached_segments(
        &mut self,
        now_ms: i64,
    ) -> Result<usize, StorageError> {
        let log_start = self.log_start_offset;
        self.delete_old_segments(now_ms, i64::MAX, "log start offset", |_, next| {
            next.is_some_and(|n| n <= log_start)
        })
    }

    /// Kafka's `deleteOldSegments(predicate)`: deletes the longest prefix of segments for
    /// which `predicate(segment, next segment base)` holds and whose offsets all lie below
    /// `upper_bound`.
    fn delete_old_segments(
        &mut self,
        now_ms: i64,
        upper_bound: i64,
        reason: &str,
        mut predicate: impl FnMut(&Segment, Option<i64>) -> bool,
    ) -> Result<usize, StorageError> {
        let bases: Vec<i64> = self.segments.keys().copied().collect();
        let mut deletable = Vec::new();
        for (i, &base) in bases.iter().enumerate() {
            let next = bases.get(i + 1).copied();
            let seg = &self.segments[&base];
            let end = next.unwrap_or(self.next_offset);
            let last_and_empty = next.is_none() && seg.is_empty();
            if end > upper_bound || last_and_empty || !predicate(seg, next) {
                break;
            }
            deletable.push(base);
        }
        if deletable.is_empty() {
            return Ok(0);
        }
        if deletable.len() == self.segments.len() {
            // Keep a (fresh, empty) active segment.
            self.roll(None, now_ms)?;
        }
        let delay = self.config.file_delete_delay_ms.max(0);
        for base in &deletable {
            if let Some(seg) = self.segments.remove(base) {
                tracing::info!(partition = %self.tp, base_offset = base, reason, "deleting segment");
                for path in seg.mark_deleted()? {
                    self.pending_deletes
                        .push((path, now_ms.saturating_add(delay)));
                }
            }
        }
        self.dir_dirty = true;
        // The active segment is never deletable (an empty one stops the prefix, a
        // non-empty one was rolled away from above), so a segment remains.
        let Some(&first_base) = self.segments.keys().next() else {
            return Err(StorageError::Closed(format!(
                "{} (no segment left)",
                self.tp
            )));
        };
        if first_base > self.log_start_offset {
            self.log_start_offset = first_base;
            self.epochs.truncate_from_start(first_base)?;
        }
        self.producers.delete_snapshots_before(first_base)?;
        self.recovery_point = self.recovery_point.max(first_base);
        if delay == 0 {
            self.process_pending_deletes(now_ms, false)?;
        }
        Ok(deletable.len())
    }
}
