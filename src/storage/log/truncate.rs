//! Removing records: the tail (`truncate_to`, `truncate_fully_and_start_at`, when a
//! follower's log diverges from its leader's) and the front (`increment_log_start_offset`,
//! DeleteRecords and retention).

use super::*;

impl Log {
    /// Kafka's `truncateTo`: removes everything at or above `offset` (the batch containing
    /// it included). The log end offset becomes `offset`. Followers use this.
    pub fn truncate_to(&mut self, offset: i64) -> Result<(), StorageError> {
        let reader = self.reader.clone();
        let _no_reads = reader.lock_for_truncation();
        let r = self.truncate_to_unguarded(offset);
        self.publish();
        self.guarded(r)
    }

    pub(super) fn truncate_to_unguarded(&mut self, offset: i64) -> Result<(), StorageError> {
        self.check_open()?;
        if offset < 0 {
            return Err(StorageError::InvalidArgument(format!(
                "cannot truncate to {offset}"
            )));
        }
        if offset >= self.next_offset {
            // Nothing to cut, but an epoch entry may start at the log end: this broker
            // led an epoch and appended nothing before losing leadership. Left in place it
            // would be sent as the last fetched epoch forever and the leader would answer
            // with the same diverging epoch each time (Kafka's UnifiedLog.truncateTo
            // always truncates the epoch cache for this reason).
            return self.epochs.truncate_from_end(self.next_offset);
        }
        let first_base = self.segments.keys().next().copied();
        let first_base = first_base.ok_or_else(|| StorageError::Closed(self.tp.to_string()))?;
        if first_base > offset {
            // The caller holds the truncation lock already.
            return self.truncate_fully_and_start_at_unguarded(offset);
        }
        tracing::info!(partition = %self.tp, offset, log_end_offset = self.next_offset, "truncating log");
        self.truncations += 1;
        let now = self.last_now_ms;
        let doomed: Vec<i64> = self.segments.range(offset + 1..).map(|(&b, _)| b).collect();
        for base in doomed {
            if let Some(seg) = self.segments.remove(&base) {
                seg.delete_files()?;
            }
        }
        self.active_mut()?.truncate_to(offset, now)?;
        self.next_offset = offset;
        self.log_start_offset = self.log_start_offset.min(offset);
        self.recovery_point = self.recovery_point.min(offset);
        self.epochs.truncate_from_end(offset)?;
        self.rebuild_producer_state(i64::MIN, i64::MAX)?;
        self.dir_dirty = true;
        Ok(())
    }

    /// Deletes all data and restarts the log empty at `offset` (log start = end = offset).
    pub fn truncate_fully_and_start_at(&mut self, offset: i64) -> Result<(), StorageError> {
        let reader = self.reader.clone();
        let _no_reads = reader.lock_for_truncation();
        let r = self.truncate_fully_and_start_at_unguarded(offset);
        self.publish();
        self.guarded(r)
    }

    pub(super) fn truncate_fully_and_start_at_unguarded(
        &mut self,
        offset: i64,
    ) -> Result<(), StorageError> {
        self.check_open()?;
        if offset < 0 {
            return Err(StorageError::InvalidArgument(format!(
                "cannot start log at {offset}"
            )));
        }
        tracing::info!(partition = %self.tp, offset, "truncating log fully");
        self.truncations += 1;
        // Kafka's `truncateFullyAndStartAt` / `replaceSegments` order: the new segment
        // exists (as `.cleaned`, which recovery discards) and is in the map before the old
        // ones are removed, so an I/O error at any step leaves a log with an active
        // segment; the error takes the directory offline and recovery repairs the rest.
        let fresh = Segment::create(
            &self.dir,
            offset,
            &self.config,
            crate::storage::segment::CLEANED_SUFFIX,
            self.last_now_ms,
        )?;
        let old = std::mem::replace(&mut self.segments, BTreeMap::from([(offset, fresh)]));
        self.next_offset = offset;
        self.log_start_offset = offset;
        self.recovery_point = offset;
        self.unflushed_messages = 0;
        self.dir_dirty = true;
        for (_, seg) in old {
            seg.delete_files()?;
        }
        self.active_mut()?.change_suffix("")?;
        self.epochs.clear()?;
        self.producers.truncate_fully_and_start_at(offset)?;
        Ok(())
    }

    /// DeleteRecords: moves the log start offset forward (never beyond the log end
    /// offset; the caller checks the high watermark) and deletes segments wholly below it.
    pub fn increment_log_start_offset(&mut self, new_start: i64) -> Result<(), StorageError> {
        let r = self.increment_log_start_offset_unguarded(new_start);
        self.publish();
        self.guarded(r)
    }

    pub(super) fn increment_log_start_offset_unguarded(
        &mut self,
        new_start: i64,
    ) -> Result<(), StorageError> {
        self.check_open()?;
        if new_start > self.next_offset {
            return Err(StorageError::OffsetOutOfRange {
                offset: new_start,
                log_start_offset: self.log_start_offset,
                log_end_offset: self.next_offset,
            });
        }
        if new_start <= self.log_start_offset {
            return Ok(());
        }
        tracing::info!(partition = %self.tp, new_start, "incrementing log start offset");
        self.log_start_offset = new_start;
        self.epochs.truncate_from_start(new_start)?;
        let now = self.last_now_ms;
        self.delete_log_start_breached_segments(now)?;
        Ok(())
    }
}
