//! One partition's log (Kafka's `UnifiedLog` + `LocalLog`): an ordered set of segments,
//! the log start/end offsets, the recovery point, the leader-epoch cache and the producer
//! state. Not internally synchronized: the caller wraps it in a `Mutex`.
//!
//! `dir` arguments are the PARTITION directory (`<log.dir>/<topic>-<partition>`).
//!
//! Appends are in `append.rs`, removing records (tail and front) in `truncate.rs`; rolling,
//! reads, flushes and closing stay here.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use super::batch::{patch, BatchError, BatchHeader, BatchIter, HeaderFields, BATCH_HEADER_SIZE};
use super::checkpoint::{fsync_dir, write_partition_metadata};
use super::config::{LogConfig, TimestampType};
use super::dir_failure::{DirFailureHook, DiskFailure};
use super::error::{AppendError, IoContext, ReadError, StorageError};
use super::fileio::ReadMode;
use super::index_file::remove_if_exists;
use super::leader_epoch::LeaderEpochCache;
use super::log_txn::ProducerEvent;
use super::producer_state::{
    AppendOrigin, LeaderCheck, ProducerBatch, ProducerEntrySummary, ProducerStateManager,
};
use super::read_view::{LogReader, ReadView, ViewState};
use super::segment::Segment;
use super::txn_index::AbortedTxn;
use super::validate::validate_client_batches;
use super::TopicPartition;

mod append;
mod truncate;

/// ListOffsets special timestamps (Kafka's `ListOffsetsRequest`).
pub const LATEST_TIMESTAMP: i64 = -1;
pub const EARLIEST_TIMESTAMP: i64 = -2;
pub const MAX_TIMESTAMP: i64 = -3;
pub const EARLIEST_LOCAL_TIMESTAMP: i64 = -4;

/// Result of a leader append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderAppend {
    pub base_offset: i64,
    pub last_offset: i64,
    /// -1 unless the topic uses LogAppendTime.
    pub log_append_time_ms: i64,
    pub log_start_offset: i64,
    /// An idempotent retry: the offsets are the original ones and nothing was written.
    pub duplicate: bool,
    pub record_count: u64,
}

/// Result of a follower append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerAppend {
    pub first_offset: i64,
    pub last_offset: i64,
}

/// Bytes of whole batches returned by a read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadResult {
    pub records: Bytes,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    /// `read_committed` reads: the aborted transactions overlapping `records`.
    pub aborted_transactions: Option<Vec<AbortedTxn>>,
}

/// A ListOffsets answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampAndOffset {
    pub timestamp: i64,
    pub offset: i64,
    pub leader_epoch: Option<i32>,
}

fn epoch_opt(e: i32) -> Option<i32> {
    (e >= 0).then_some(e)
}

#[derive(Debug)]
pub struct Log {
    pub(super) dir: PathBuf,
    pub(super) tp: TopicPartition,
    pub(super) config: LogConfig,
    /// Segments by base offset; the last one is the active segment (never empty map).
    pub(super) segments: BTreeMap<i64, Segment>,
    pub(super) log_start_offset: i64,
    pub(super) next_offset: i64,
    pub(super) recovery_point: i64,
    pub(super) epochs: LeaderEpochCache,
    pub(super) producers: ProducerStateManager,
    pub(super) topic_id: Option<[u8; 16]>,
    pub(super) unflushed_messages: u64,
    pub(super) last_flush_ms: i64,
    /// Latest `now_ms` seen, for operations whose signature carries no clock.
    pub(super) last_now_ms: i64,
    /// Files renamed `.deleted`, removed once their time (ms) has come.
    pub(super) pending_deletes: Vec<(PathBuf, i64)>,
    pub(super) dir_dirty: bool,
    pub(super) closed: bool,
    /// Offsets below this were compacted by the last cleaning (in memory only: after a
    /// restart the whole log counts as dirty, which only costs one extra cleaning).
    pub(super) first_dirty_offset: i64,
    /// Bumped by every truncation: a cleaning pass planned before one is discarded (its
    /// segments may hold other records now, even at the same size).
    pub(super) truncations: u64,
    /// The log directory's failure channel (set by the `LogManager`): any I/O failure of
    /// this log takes the whole directory offline, after which every operation fails.
    pub(super) failure: Option<DirFailureHook>,
    /// Where fetches read without this log's lock; every change readers can see is
    /// published to it before the change's method returns.
    pub(super) reader: Arc<LogReader>,
}

impl Log {
    /// Creates a new empty log in the partition directory `dir` (created if missing).
    pub fn create(
        dir: &Path,
        tp: &TopicPartition,
        config: LogConfig,
        topic_id: Option<[u8; 16]>,
        now_ms: i64,
    ) -> Result<Log, StorageError> {
        fs::create_dir_all(dir).ctx(dir)?;
        for entry in fs::read_dir(dir).ctx(dir)? {
            let entry = entry.ctx(dir)?;
            if entry
                .file_name()
                .to_string_lossy()
                .ends_with(super::segment::LOG_EXT)
            {
                return Err(StorageError::InvalidArgument(format!(
                    "cannot create log in {}: it already holds segments",
                    dir.display()
                )));
            }
        }
        if let Some(id) = &topic_id {
            write_partition_metadata(dir, id)?;
        }
        let seg = Segment::create(dir, 0, &config, "", now_ms)?;
        let epochs = LeaderEpochCache::empty(dir);
        epochs.write()?;
        let producers = ProducerStateManager::new(dir, 0, config.producer_id_expiration_ms)?;
        if let Some(parent) = dir.parent() {
            fsync_dir(parent)?;
        }
        fsync_dir(dir)?;
        let mut segments = BTreeMap::new();
        segments.insert(0, seg);
        Ok(Log {
            dir: dir.to_path_buf(),
            tp: tp.clone(),
            config,
            segments,
            log_start_offset: 0,
            next_offset: 0,
            recovery_point: 0,
            epochs,
            producers,
            topic_id,
            unflushed_messages: 0,
            last_flush_ms: now_ms,
            last_now_ms: now_ms,
            pending_deletes: Vec::new(),
            dir_dirty: false,
            closed: false,
            first_dirty_offset: 0,
            truncations: 0,
            failure: None,
            reader: Arc::new(LogReader::new(ReadView::unpublished(&tp.to_string()))),
        }
        .published())
    }

    /// Opens an existing log from the partition directory `dir`, recovering everything
    /// past `recovery_point` (see [`super::recovery`]).
    pub fn open(
        dir: &Path,
        tp: &TopicPartition,
        config: LogConfig,
        recovery_point: i64,
        log_start_offset_hint: i64,
        had_clean_shutdown: bool,
        now_ms: i64,
    ) -> Result<Log, StorageError> {
        super::recovery::load_log(
            dir,
            tp,
            config,
            recovery_point,
            log_start_offset_hint,
            had_clean_shutdown,
            now_ms,
        )
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn topic_partition(&self) -> &TopicPartition {
        &self.tp
    }
    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// How far a batch of this log may expand when its records must be read.
    pub fn decompress_limit(&self) -> usize {
        super::codec::limit_for(self.config.max_message_bytes)
    }
    pub fn topic_id(&self) -> Option<[u8; 16]> {
        self.topic_id
    }
    /// Records the topic id in `partition.metadata`.
    pub fn set_topic_id(&mut self, id: [u8; 16]) -> Result<(), StorageError> {
        let r = self.set_topic_id_unguarded(id);
        self.guarded(r)
    }

    fn set_topic_id_unguarded(&mut self, id: [u8; 16]) -> Result<(), StorageError> {
        write_partition_metadata(&self.dir, &id)?;
        self.topic_id = Some(id);
        Ok(())
    }
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }
    pub fn log_end_offset(&self) -> i64 {
        self.next_offset
    }
    pub fn recovery_point(&self) -> i64 {
        self.recovery_point
    }
    pub fn size_bytes(&self) -> u64 {
        self.segments.values().map(|s| s.size()).sum()
    }
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }
    /// (base offset, last modified ms, size) of each segment, oldest first (ListOffsets v0).
    pub fn segment_times(&self) -> Vec<super::legacy::offsets::SegmentTime> {
        self.segments
            .values()
            .map(|s| (s.base_offset(), s.last_modified_ms(), s.size()))
            .collect()
    }
    /// Base offsets of all segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.segments.keys().copied().collect()
    }
    pub fn is_closed(&self) -> bool {
        self.closed
    }
    pub fn latest_epoch(&self) -> Option<i32> {
        self.epochs.latest_epoch()
    }
    pub fn epoch_entries(&self) -> Vec<(i32, i64)> {
        self.epochs
            .entries()
            .iter()
            .map(|e| (e.epoch, e.start_offset))
            .collect()
    }
    /// Kafka's `endOffsetForEpoch` (OffsetForLeaderEpoch); `None` = UNDEFINED.
    pub fn end_offset_for_epoch(&self, requested_epoch: i32) -> Option<(i32, i64)> {
        self.epochs
            .end_offset_for(requested_epoch, self.next_offset)
    }
    pub fn producer_state(&self, producer_id: i64) -> Option<ProducerEntrySummary> {
        self.producers.summary(producer_id)
    }
    /// Every producer with state in this log (DescribeProducers).
    pub fn active_producers(&self) -> Vec<(i64, ProducerEntrySummary)> {
        let mut ids: Vec<i64> = self.producers.last_offsets().into_keys().collect();
        ids.sort_unstable();
        ids.into_iter()
            .filter_map(|id| self.producers.summary(id).map(|s| (id, s)))
            .collect()
    }

    /// The active (last) segment. Every operation keeps at least one segment in the map
    /// (replacements insert the new segment before removing the old one, Kafka's
    /// `replaceSegments`), so this fails only for a deleted log, but a state reachable by
    /// an I/O fault half-way through an operation is answered with an error, not a panic.
    pub(super) fn active(&self) -> Result<&Segment, StorageError> {
        self.segments
            .values()
            .next_back()
            .ok_or_else(|| StorageError::Closed(format!("{} (no active segment)", self.tp)))
    }
    pub(super) fn active_mut(&mut self) -> Result<&mut Segment, StorageError> {
        let tp = &self.tp;
        self.segments
            .values_mut()
            .next_back()
            .ok_or_else(|| StorageError::Closed(format!("{tp} (no active segment)")))
    }

    pub(super) fn check_open(&self) -> Result<(), StorageError> {
        if self.closed {
            Err(StorageError::Closed(self.tp.to_string()))
        } else if self.is_dir_offline() {
            Err(StorageError::LogDirOffline(self.tp.to_string()))
        } else {
            Ok(())
        }
    }

    /// Refuses every further operation without touching the files (the directory was
    /// renamed for deletion).
    pub(super) fn mark_closed(&mut self) {
        self.closed = true;
        self.publish();
    }

    /// Where fetches read this log without taking its lock (see `read_view`).
    pub fn reader(&self) -> Arc<LogReader> {
        self.reader.clone()
    }

    /// Publishes what readers may see now: the offsets, every segment at its current
    /// size, the open state. The sealed segments' views are reused while they are
    /// unchanged, so an append publishes in time independent of the segment count.
    pub(super) fn publish(&self) {
        let current = self.reader.view();
        let n_sealed = self.segments.len().saturating_sub(1);
        let sealed_now = || self.segments.values().take(n_sealed);
        let unchanged = current.sealed.len() == n_sealed
            && sealed_now()
                .zip(current.sealed.iter())
                .all(|(seg, view)| seg.is_shown_by(view));
        let sealed = if unchanged {
            current.sealed.clone()
        } else {
            sealed_now().map(Segment::view).collect()
        };
        self.reader.publish(ReadView {
            log_start_offset: self.log_start_offset,
            log_end_offset: self.next_offset,
            state: if self.closed {
                ViewState::Closed(self.tp.to_string())
            } else {
                ViewState::Open
            },
            sealed,
            active: self.segments.values().next_back().map(Segment::view),
            failure: self.failure.clone(),
            partition: current.partition.clone(),
            txns: {
                let txns = self.producers.txn_view();
                if *current.txns == txns {
                    current.txns.clone()
                } else {
                    Arc::new(txns)
                }
            },
        });
    }

    /// `self`, published (for constructors).
    pub(super) fn published(self) -> Log {
        self.publish();
        self
    }

    /// The invariant every read relies on: the published view is the log as it is.
    fn assert_view_published(&self) {
        let view = self.reader.view();
        assert_eq!(
            (
                view.log_start_offset,
                view.log_end_offset,
                view.state == ViewState::Open
            ),
            (self.log_start_offset, self.next_offset, !self.closed),
            "{}: read view not published",
            self.tp
        );
        assert!(
            view.segments().count() == self.segments.len()
                && self
                    .segments
                    .values()
                    .zip(view.segments())
                    .all(|(seg, v)| seg.is_shown_by(v)),
            "{}: read view's segments not published",
            self.tp
        );
    }

    /// Test hook: replaces the active segment's log file (`log`) or offset index
    /// (`index`) handle by a read-only one, so the next write to it fails.
    #[cfg(test)]
    pub(crate) fn break_active_for_test(&mut self, log: bool, index: bool) {
        if let Some(seg) = self.segments.values_mut().next_back() {
            seg.break_files_for_test(log, index);
        }
        self.publish();
    }

    /// Links the log to its directory's failure channel.
    pub fn set_failure_hook(&mut self, hook: DirFailureHook) {
        self.failure = Some(hook);
        self.publish();
    }

    /// True once the log's directory went offline.
    pub fn is_dir_offline(&self) -> bool {
        self.failure.as_ref().is_some_and(|h| h.is_offline())
    }

    /// Reports a disk failure in `r` to the directory's failure channel (Kafka's
    /// `LogDirFailureChannel.maybeAddOfflineLogDir`, called wherever an `IOException` is
    /// caught): the directory goes offline, this log with it.
    pub(super) fn guarded<T, E: DiskFailure>(&self, r: Result<T, E>) -> Result<T, E> {
        if let (Err(e), Some(hook)) = (&r, &self.failure) {
            if let Some(why) = e.disk_failure() {
                hook.fail(&format!("partition {}: {why}", self.tp));
            }
        }
        r
    }

    pub(super) fn touch(&mut self, now_ms: i64) {
        self.last_now_ms = self.last_now_ms.max(now_ms);
    }

    /// Applies a new configuration to a live log (AlterConfigs).
    pub fn set_config(&mut self, config: LogConfig) {
        for seg in self.segments.values_mut() {
            seg.set_config(&config);
        }
        self.producers
            .set_expiration_ms(config.producer_id_expiration_ms);
        self.config = config;
    }

    /// Starts a new active segment at `base` (default: the log end offset), snapshotting
    /// producer state there (Kafka's `roll`).
    pub fn roll(&mut self, base: Option<i64>, now_ms: i64) -> Result<(), StorageError> {
        let r = self.roll_unguarded(base, now_ms);
        self.publish();
        self.guarded(r)
    }

    fn roll_unguarded(&mut self, base: Option<i64>, now_ms: i64) -> Result<(), StorageError> {
        self.check_open()?;
        let base = base.unwrap_or(self.next_offset).max(self.next_offset);
        if self.active()?.base_offset() == base {
            // Nothing was written to the active segment since it was created.
            debug_assert!(self.active()?.is_empty());
            return Ok(());
        }
        self.active_mut()?.on_become_inactive()?;
        self.producers.update_map_end_offset(base);
        self.producers.take_snapshot()?;
        let seg = Segment::create(&self.dir, base, &self.config, "", now_ms)?;
        self.segments.insert(base, seg);
        self.dir_dirty = true;
        tracing::info!(partition = %self.tp, base_offset = base, "rolled new log segment");
        Ok(())
    }

    /// Kafka's read: starts at the batch containing `fetch_offset`, returns whole batches
    /// whose last offset is below `max_offset` (exclusive), at most `max_bytes` unless the
    /// first batch alone is larger and `min_one_batch` is set; may span segments.
    pub fn read(
        &self,
        fetch_offset: i64,
        max_bytes: usize,
        max_offset: i64,
        min_one_batch: bool,
    ) -> Result<ReadResult, ReadError> {
        self.assert_view_published();
        self.reader.read(
            fetch_offset,
            max_bytes,
            Some(max_offset),
            min_one_batch,
            ReadMode::Blocking,
        )
    }

    /// ListOffsets by timestamp: the first record with timestamp >= `target_ts` (decoding
    /// the one batch needed). Also answers the special targets: -2 (earliest), -4
    /// (earliest local), -1 (latest: the log end offset; the caller caps it at the high
    /// watermark / LSO) and -3 (max timestamp).
    pub fn fetch_offset_by_timestamp(
        &self,
        target_ts: i64,
    ) -> Result<Option<TimestampAndOffset>, StorageError> {
        let r = self.fetch_offset_by_timestamp_unguarded(target_ts);
        self.guarded(r)
    }

    fn fetch_offset_by_timestamp_unguarded(
        &self,
        target_ts: i64,
    ) -> Result<Option<TimestampAndOffset>, StorageError> {
        self.check_open()?;
        match target_ts {
            EARLIEST_TIMESTAMP | EARLIEST_LOCAL_TIMESTAMP => {
                return Ok(Some(TimestampAndOffset {
                    timestamp: -1,
                    offset: self.log_start_offset,
                    leader_epoch: self.epochs.epoch_for_offset(self.log_start_offset),
                }))
            }
            LATEST_TIMESTAMP => {
                return Ok(Some(TimestampAndOffset {
                    timestamp: -1,
                    offset: self.next_offset,
                    leader_epoch: self.epochs.latest_epoch(),
                }))
            }
            MAX_TIMESTAMP => return Ok(self.max_timestamp_and_offset()),
            t if t < 0 => {
                return Err(StorageError::InvalidArgument(format!(
                    "unsupported timestamp target {t}"
                )))
            }
            _ => {}
        }
        for seg in self.segments.values() {
            if seg.max_timestamp() < target_ts || seg.next_offset() <= self.log_start_offset {
                continue;
            }
            if let Some((ts, off, epoch)) = seg.find_offset_by_timestamp(
                target_ts,
                self.log_start_offset,
                self.decompress_limit(),
            )? {
                return Ok(Some(TimestampAndOffset {
                    timestamp: ts,
                    offset: off,
                    leader_epoch: epoch_opt(epoch),
                }));
            }
        }
        Ok(None)
    }

    /// ListOffsets MAX_TIMESTAMP (KIP-734): the record with the largest timestamp (first
    /// such offset). `None` for an empty log. A batch that cannot be decoded answers with
    /// the batch-level (timestamp, last offset) Kafka keeps in its time index.
    pub fn max_timestamp_and_offset(&self) -> Option<TimestampAndOffset> {
        let mut best: Option<&Segment> = None;
        for seg in self.segments.values() {
            if seg.size() > 0
                && seg.max_timestamp() >= 0
                && best.is_none_or(|b| seg.max_timestamp() > b.max_timestamp())
            {
                best = Some(seg);
            }
        }
        let seg = best?;
        match seg.max_timestamp_record(self.decompress_limit()) {
            Ok(Some((ts, off, epoch))) => Some(TimestampAndOffset {
                timestamp: ts,
                offset: off,
                leader_epoch: epoch_opt(epoch),
            }),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(partition = %self.tp, error = %e, "max timestamp lookup fell back to the index");
                Some(TimestampAndOffset {
                    timestamp: seg.max_timestamp(),
                    offset: seg.offset_of_max_timestamp(),
                    leader_epoch: self.epochs.epoch_for_offset(seg.offset_of_max_timestamp()),
                })
            }
        }
    }

    /// The leader became leader at `epoch` starting at `start_offset` (normally the log
    /// end offset). Epochs may not go backwards.
    pub fn assign_epoch_start_offset(
        &mut self,
        epoch: i32,
        start_offset: i64,
    ) -> Result<(), StorageError> {
        let r = self.assign_epoch_start_offset_unguarded(epoch, start_offset);
        self.guarded(r)
    }

    fn assign_epoch_start_offset_unguarded(
        &mut self,
        epoch: i32,
        start_offset: i64,
    ) -> Result<(), StorageError> {
        self.check_open()?;
        if epoch < 0 || start_offset < 0 || start_offset > self.next_offset {
            return Err(StorageError::InvalidArgument(format!(
                "epoch {epoch} start offset {start_offset} (log end offset {})",
                self.next_offset
            )));
        }
        if let Some(latest) = self.epochs.latest_entry() {
            if epoch < latest.epoch {
                return Err(StorageError::InvalidArgument(format!(
                    "leader epoch {epoch} is older than the cached latest epoch {}",
                    latest.epoch
                )));
            }
        }
        self.epochs.assign(epoch, start_offset)?;
        Ok(())
    }

    /// fsyncs all segments with unflushed data (and the directory when files were created
    /// or removed) and advances the recovery point to the log end offset.
    pub fn flush(&mut self, now_ms: i64) -> Result<(), StorageError> {
        let r = self.flush_unguarded(now_ms);
        self.guarded(r)
    }

    fn flush_unguarded(&mut self, now_ms: i64) -> Result<(), StorageError> {
        self.check_open()?;
        self.touch(now_ms);
        for seg in self.segments.values_mut() {
            if seg.base_offset() >= self.recovery_point || seg.is_dirty() {
                seg.flush()?;
            }
        }
        if self.dir_dirty {
            fsync_dir(&self.dir)?;
            self.dir_dirty = false;
        }
        self.recovery_point = self.next_offset;
        self.unflushed_messages = 0;
        self.last_flush_ms = now_ms;
        Ok(())
    }

    /// Honours flush.messages / flush.ms; also flushes rolled segments that were not yet
    /// flushed (Kafka flushes a segment when it is rolled) and removes files whose
    /// file.delete.delay.ms has passed.
    pub fn maybe_flush(&mut self, now_ms: i64) -> Result<(), StorageError> {
        let r = self.maybe_flush_unguarded(now_ms);
        self.guarded(r)
    }

    fn maybe_flush_unguarded(&mut self, now_ms: i64) -> Result<(), StorageError> {
        self.check_open()?;
        self.touch(now_ms);
        self.process_pending_deletes(now_ms, false)?;
        let dirty = self.recovery_point < self.next_offset || self.unflushed_messages > 0;
        let by_count = self.unflushed_messages >= self.config.flush_interval_messages;
        let by_time = now_ms.saturating_sub(self.last_flush_ms) >= self.config.flush_interval_ms;
        if dirty && (by_count || by_time) {
            return self.flush(now_ms);
        }
        let active_base = self.active()?.base_offset();
        if self.recovery_point < active_base {
            for seg in self.segments.range_mut(..active_base).map(|(_, s)| s) {
                seg.flush()?;
            }
            if self.dir_dirty {
                fsync_dir(&self.dir)?;
                self.dir_dirty = false;
            }
            self.recovery_point = active_base;
        }
        Ok(())
    }

    /// Removes `.deleted` files that are due (or all of them when `all`).
    pub(super) fn process_pending_deletes(
        &mut self,
        now_ms: i64,
        all: bool,
    ) -> Result<(), StorageError> {
        let mut keep = Vec::new();
        for (path, due) in std::mem::take(&mut self.pending_deletes) {
            if all || now_ms >= due {
                remove_if_exists(&path)?;
            } else {
                keep.push((path, due));
            }
        }
        self.pending_deletes = keep;
        Ok(())
    }

    /// Drops producers idle longer than producer.id.expiration.ms.
    pub fn remove_expired_producers(&mut self, now_ms: i64) -> usize {
        self.touch(now_ms);
        self.producers.remove_expired(now_ms)
    }

    /// Clean shutdown of this log, usable through a `Mutex`: flush, final time-index
    /// entry, producer snapshot at the log end offset, epoch checkpoint, pending deletes.
    pub fn close_in_place(&mut self, now_ms: i64) -> Result<(), StorageError> {
        let r = self.close_in_place_unguarded(now_ms);
        self.publish();
        self.guarded(r)
    }

    fn close_in_place_unguarded(&mut self, now_ms: i64) -> Result<(), StorageError> {
        if self.closed {
            return Ok(());
        }
        self.active_mut()?.on_become_inactive()?;
        self.flush(now_ms)?;
        self.producers.update_map_end_offset(self.next_offset);
        self.producers.take_snapshot()?;
        self.epochs.write()?;
        self.process_pending_deletes(now_ms, true)?;
        fsync_dir(&self.dir)?;
        self.closed = true;
        Ok(())
    }

    /// Flushes, snapshots producer state and closes the log.
    pub fn close(mut self, now_ms: i64) -> Result<(), StorageError> {
        self.close_in_place(now_ms)
    }

    /// Removes the partition directory (topic deletion), usable through a `Mutex`.
    pub fn delete_in_place(&mut self) -> Result<(), StorageError> {
        self.closed = true;
        self.segments.clear();
        self.pending_deletes.clear();
        self.publish();
        match fs::remove_dir_all(&self.dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StorageError::io(&self.dir, e)),
        }
        if let Some(parent) = self.dir.parent() {
            fsync_dir(parent)?;
        }
        Ok(())
    }

    /// Removes the partition directory (topic deletion).
    pub fn delete(mut self) -> Result<(), StorageError> {
        self.delete_in_place()
    }
}
