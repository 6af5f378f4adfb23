//! One partition replica on this broker: the shell around its [`PartitionState`]. It
//! owns the state's lock and the log, reads what the state machine needs of the log,
//! carries out what it decides (epoch entries, appends, truncations) and wakes waiters.
//! The rules themselves, and the invariants they keep, live in `state.rs`.
//!
//! Lock order: `state` before the log.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

pub use super::state::Role;
use super::state::{
    self, FollowerUpdate, LeaderAndIsr, LogView, PartitionState, Replication, StateError,
    Transition,
};
use crate::storage::control::Marker;
use crate::storage::fileio::ReadMode;
use crate::storage::producer_state::AppendOrigin;
use crate::storage::read_view::LogReader;
use crate::storage::{
    AppendError, LeaderAppend, Log, ReadError, ReadResult, StorageError, TopicPartition,
};
use crate::sync::lock;

/// A partition-level failure, mapped to a Kafka error code by the API layer.
#[derive(Debug, thiserror::Error)]
pub enum PartitionError {
    #[error("this broker is not the leader of the partition")]
    NotLeader,
    #[error("request leader epoch {requested} is older than the current {current}")]
    FencedLeaderEpoch { requested: i32, current: i32 },
    #[error("request leader epoch {requested} is newer than the current {current}")]
    UnknownLeaderEpoch { requested: i32, current: i32 },
    #[error("ISR has {isr} replicas, fewer than min.insync.replicas={min}")]
    NotEnoughReplicas { isr: usize, min: i32 },
    #[error("ISR shrank to {isr} replicas, below min.insync.replicas={min}, after the append")]
    NotEnoughReplicasAfterAppend { isr: usize, min: i32 },
    #[error("timed out waiting for replication")]
    Timeout,
    #[error(transparent)]
    Append(#[from] AppendError),
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<StateError> for PartitionError {
    fn from(e: StateError) -> Self {
        match e {
            StateError::NotLeader => PartitionError::NotLeader,
            StateError::FencedLeaderEpoch { requested, current } => {
                PartitionError::FencedLeaderEpoch { requested, current }
            }
            StateError::UnknownLeaderEpoch { requested, current } => {
                PartitionError::UnknownLeaderEpoch { requested, current }
            }
            StateError::NotEnoughReplicas { isr, min } => {
                PartitionError::NotEnoughReplicas { isr, min }
            }
            StateError::NotEnoughReplicasAfterAppend { isr, min } => {
                PartitionError::NotEnoughReplicasAfterAppend { isr, min }
            }
        }
    }
}

impl LogView for Log {
    fn log_end_offset(&self) -> i64 {
        Log::log_end_offset(self)
    }

    fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, i64)> {
        Log::end_offset_for_epoch(self, epoch)
    }
}

pub struct Partition {
    pub tp: TopicPartition,
    pub topic_id: uuid::Uuid,
    log: Arc<Mutex<Log>>,
    /// The log's read side: fetches read through it without the log's (append) lock.
    reader: Arc<LogReader>,
    state: Mutex<PartitionState>,
    progress: watch::Sender<u64>,
    /// This topic's BrokerTopicMetrics counters (see `crate::metrics`).
    pub stats: Arc<crate::metrics::TopicStats>,
    /// Whether this broker's replica is throttled as leader / as follower (the topic's
    /// `*.replication.throttled.replicas`, see `replica::throttle`).
    leader_throttled: AtomicBool,
    follower_throttled: AtomicBool,
}

impl Partition {
    pub fn new(
        tp: TopicPartition,
        topic_id: uuid::Uuid,
        broker_id: i32,
        log: Arc<Mutex<Log>>,
        hw_checkpoint: i64,
    ) -> Self {
        let stats = crate::metrics::topic(&tp.topic);
        let (leo, reader) = {
            let log = lock(&log);
            (log.log_end_offset(), log.reader())
        };
        Partition {
            tp,
            topic_id,
            log,
            reader,
            state: Mutex::new(PartitionState::new(broker_id, hw_checkpoint, leo)),
            progress: watch::channel(0).0,
            stats,
            leader_throttled: AtomicBool::new(false),
            follower_throttled: AtomicBool::new(false),
        }
    }

    pub fn log(&self) -> &Arc<Mutex<Log>> {
        &self.log
    }

    pub fn state(&self) -> PartitionState {
        lock(&self.state).clone()
    }

    pub fn role(&self) -> Role {
        lock(&self.state).role
    }

    pub fn leader_epoch(&self) -> i32 {
        lock(&self.state).leader_epoch
    }

    pub fn high_watermark(&self) -> i64 {
        lock(&self.state).high_watermark
    }

    pub fn log_end_offset(&self) -> i64 {
        lock(&self.log).log_end_offset()
    }

    pub fn log_start_offset(&self) -> i64 {
        lock(&self.log).log_start_offset()
    }

    /// Wakes everything waiting on this partition's progress (delayed fetch and produce).
    pub fn notify(&self) {
        self.progress.send_modify(|v| *v = v.wrapping_add(1));
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.progress.subscribe()
    }

    pub fn set_replication_throttles(&self, as_leader: bool, as_follower: bool) {
        self.leader_throttled.store(as_leader, Ordering::Relaxed);
        self.follower_throttled
            .store(as_follower, Ordering::Relaxed);
    }

    pub fn is_leader_throttled(&self) -> bool {
        self.leader_throttled.load(Ordering::Relaxed)
    }

    pub fn is_follower_throttled(&self) -> bool {
        self.follower_throttled.load(Ordering::Relaxed)
    }

    /// Whether `replica` is in this (leader's) ISR.
    pub fn is_in_sync(&self, replica: i32) -> bool {
        lock(&self.state).isr.contains(&replica)
    }

    pub fn set_min_insync_replicas(&self, min: i32) {
        lock(&self.state).set_min_insync_replicas(min);
    }

    // ---- role changes, driven by the ZooKeeper state the controller wrote ----

    /// Applies the controller's state for this partition. A new leader term first records
    /// its epoch in the log at the log end (nothing changes if that write fails).
    pub fn apply(&self, s: &LeaderAndIsr, now_ms: i64) -> Result<Transition, StorageError> {
        let mut st = lock(&self.state);
        let transition = st.classify(s);
        if transition == Transition::Stale {
            return Ok(transition);
        }
        let leo = {
            let mut log = lock(&self.log);
            if transition == Transition::BecameLeader {
                let leo = log.log_end_offset();
                log.assign_epoch_start_offset(s.leader_epoch, leo)?;
            }
            log.log_end_offset()
        };
        st.apply(s, leo, now_ms);
        drop(st);
        self.notify();
        Ok(transition)
    }

    /// Stops serving this partition here (deleted, or its log directory failed): waiting
    /// produces and fetches end with NotLeader.
    pub fn retire(&self) {
        let leo = lock(&self.log).log_end_offset();
        lock(&self.state).retire(leo);
        self.notify();
    }

    // ---- leader: produce ----

    /// Appends a produce request's batches as leader.
    pub fn append_as_leader(
        &self,
        records: &[u8],
        acks: i16,
        now_ms: i64,
    ) -> Result<(LeaderAppend, i32), PartitionError> {
        self.append_as_leader_with(records, acks, AppendOrigin::Client, None, now_ms)
    }

    /// [`Self::append_as_leader`] for `origin`, with a KIP-890 verification `guard`.
    pub fn append_as_leader_with(
        &self,
        records: &[u8],
        acks: i16,
        origin: AppendOrigin,
        guard: Option<u64>,
        now_ms: i64,
    ) -> Result<(LeaderAppend, i32), PartitionError> {
        let mut st = lock(&self.state);
        let epoch = st.check_append(acks)?;
        let mut log = lock(&self.log);
        let appended = log.append_as_leader_with(records, epoch, origin, guard, now_ms)?;
        st.advance_hw(log.log_end_offset());
        log.on_high_watermark_updated(st.high_watermark);
        drop(log);
        drop(st);
        self.stats.appended(
            records.len(),
            appended.last_offset - appended.base_offset + 1,
        );
        self.notify();
        Ok((appended, epoch))
    }

    /// Appends a transaction marker as leader (WriteTxnMarkers). Like an acks=all
    /// produce it needs `min.insync.replicas`.
    pub fn append_marker(
        &self,
        marker: &Marker,
        now_ms: i64,
    ) -> Result<(LeaderAppend, i32), PartitionError> {
        let mut st = lock(&self.state);
        let epoch = st.check_append(-1)?;
        let mut log = lock(&self.log);
        let appended = log.append_marker(marker, epoch, now_ms)?;
        st.advance_hw(log.log_end_offset());
        log.on_high_watermark_updated(st.high_watermark);
        drop(log);
        drop(st);
        self.notify();
        Ok((appended, epoch))
    }

    /// KIP-890: starts verifying that `producer_id`'s transaction includes this
    /// partition; `Ok(None)` when it already has an open transaction here.
    pub fn start_verification(
        &self,
        producer_id: i64,
        sequence: i32,
        epoch: i16,
        now_ms: i64,
    ) -> Result<Option<u64>, PartitionError> {
        let st = lock(&self.state);
        st.check_leader()?;
        let guard = lock(&self.log).start_verification(producer_id, sequence, epoch, now_ms);
        drop(st);
        Ok(guard)
    }

    /// The last stable offset (leader): below it every transaction is decided and its
    /// marker replicated.
    pub fn last_stable_offset(&self) -> i64 {
        let st = lock(&self.state);
        self.reader.view().last_stable_offset(st.high_watermark)
    }

    /// Waits until the high watermark reaches `required_offset` (acks=all), the leader
    /// changes, or `deadline` passes.
    pub async fn wait_for_replication(
        &self,
        required_offset: i64,
        epoch: i32,
        deadline: tokio::time::Instant,
    ) -> Result<(), PartitionError> {
        let mut rx = self.subscribe();
        loop {
            let outcome = lock(&self.state).replication(required_offset, epoch);
            match outcome {
                Replication::Done => return Ok(()),
                Replication::Failed(e) => return Err(e.into()),
                Replication::Pending => {}
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => continue,
                Ok(Err(_)) => return Err(PartitionError::NotLeader),
                Err(_) => return Err(PartitionError::Timeout),
            }
        }
    }

    // ---- leader: offsets ----

    /// ListOffsets: resolves a timestamp query on the leader (Kafka's
    /// `fetchOffsetForTimestamp`). Consumers see offsets up to the HW; replicas (and
    /// `replica_id >= 0`) up to the LEO. Returns (timestamp, offset, leader epoch).
    pub fn offset_for_timestamp(
        &self,
        timestamp: i64,
        current_leader_epoch: i32,
        from_replica: bool,
        read_committed: bool,
    ) -> Result<(i64, i64, i32), PartitionError> {
        const LATEST: i64 = -1;
        const EARLIEST: i64 = -2;
        const MAX_TIMESTAMP: i64 = -3;
        const EARLIEST_LOCAL: i64 = -4;
        const LATEST_TIERED: i64 = -5;
        let st = lock(&self.state);
        st.check_read(current_leader_epoch)?;
        let log = lock(&self.log);
        // Kafka's lastFetchableOffset: the LSO for read_committed consumers.
        let last_fetchable = if from_replica {
            log.log_end_offset()
        } else if read_committed {
            self.reader.view().last_stable_offset(st.high_watermark)
        } else {
            st.high_watermark
        };
        let epoch_of = |offset: i64| -> i32 {
            log.epoch_entries()
                .iter()
                .rev()
                .find(|(_, start)| *start <= offset)
                .map_or(-1, |(e, _)| *e)
        };
        Ok(match timestamp {
            LATEST => (-1, last_fetchable, log.latest_epoch().unwrap_or(-1)),
            EARLIEST | EARLIEST_LOCAL => {
                let start = log.log_start_offset();
                (-1, start, epoch_of(start))
            }
            // No tiered storage: nothing has been tiered (KIP-1005 answers -1).
            LATEST_TIERED => (-1, -1, -1),
            MAX_TIMESTAMP => match log.max_timestamp_and_offset() {
                Some(t) if t.offset < last_fetchable => {
                    (t.timestamp, t.offset, t.leader_epoch.unwrap_or(-1))
                }
                _ => (-1, -1, -1),
            },
            ts => match log.fetch_offset_by_timestamp(ts)? {
                Some(t) if t.offset < last_fetchable => {
                    (t.timestamp, t.offset, t.leader_epoch.unwrap_or(-1))
                }
                _ => (-1, -1, -1),
            },
        })
    }

    /// OffsetForLeaderEpoch on the leader: the end offset of `epoch` in our log.
    /// ListOffsets v0 (Kafka's `Partition.legacyFetchOffsetsForTimestamp`): up to
    /// `max_num_offsets` segment start offsets before `timestamp`, newest first; for
    /// consumers capped at the high watermark. Only the leader answers unless
    /// `only_leader` is false (the debugging replica id -2).
    pub fn legacy_offsets_before(
        &self,
        timestamp: i64,
        max_num_offsets: i32,
        from_consumer: bool,
        only_leader: bool,
        now_ms: i64,
    ) -> Result<Vec<i64>, PartitionError> {
        let st = lock(&self.state);
        if only_leader && st.role != Role::Leader {
            return Err(PartitionError::NotLeader);
        }
        let hw = st.high_watermark;
        let log = lock(&self.log);
        let offsets = crate::storage::legacy::offsets::offsets_before(
            &log.segment_times(),
            log.log_start_offset(),
            log.log_end_offset(),
            now_ms,
            timestamp,
            max_num_offsets,
        );
        Ok(if from_consumer {
            crate::storage::legacy::offsets::cap_at_high_watermark(offsets, hw)
        } else {
            offsets
        })
    }

    pub fn end_offset_for_epoch(
        &self,
        epoch: i32,
        current_leader_epoch: i32,
        require_leader: bool,
    ) -> Result<(i32, i64), PartitionError> {
        let st = lock(&self.state);
        if require_leader {
            st.check_leader()?;
        }
        st.check_leader_epoch(current_leader_epoch)?;
        Ok(lock(&self.log)
            .end_offset_for_epoch(epoch)
            .unwrap_or((-1, -1)))
    }

    /// DeleteRecords on the leader: moves the log start to `offset` (-1 = the HW).
    /// Returns the new low watermark.
    pub fn delete_records_before(&self, offset: i64) -> Result<i64, PartitionError> {
        let st = lock(&self.state);
        st.check_leader()?;
        let target = if offset == -1 {
            st.high_watermark
        } else {
            offset
        };
        if target < 0 || target > st.high_watermark {
            let log = lock(&self.log);
            return Err(PartitionError::Read(ReadError::OffsetOutOfRange {
                log_start_offset: log.log_start_offset(),
                log_end_offset: log.log_end_offset(),
            }));
        }
        let mut log = lock(&self.log);
        if target > log.log_start_offset() {
            log.increment_log_start_offset(target)?;
        }
        Ok(log.log_start_offset())
    }

    // ---- leader: fetch ----

    /// Kafka's diverging-epoch check (KIP-595, Fetch v12+): if the fetcher's last epoch
    /// ends earlier on this leader than its fetch offset (or is unknown here), returns the
    /// epoch and end offset it must truncate to.
    pub fn diverging_epoch(
        &self,
        fetch_offset: i64,
        last_fetched_epoch: i32,
    ) -> Option<(i32, i64)> {
        state::diverging_epoch(&*lock(&self.log), fetch_offset, last_fetched_epoch)
    }

    /// Reads for a consumer (up to the HW, or the LSO with `read_committed`, which also
    /// lists the aborted transactions read) or a follower (up to the LEO). For a
    /// follower, also records its progress; the caller acts on the returned ISR proposal.
    /// Returns the read, the HW and the LSO.
    ///
    /// Neither lock is held while reading: the role and epoch are checked, the read goes
    /// to the log's published view (appends continue meanwhile), and a follower's progress
    /// is recorded only if the leader epoch is still the one the read was checked
    /// against. With `ReadMode::NoWait` a read that needs the disk returns
    /// `ReadError::WouldBlock` and changes nothing.
    #[allow(clippy::too_many_arguments)]
    pub fn read(
        &self,
        fetch_offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
        current_leader_epoch: i32,
        follower: Option<i32>,
        now_ms: i64,
        mode: ReadMode,
        read_committed: bool,
    ) -> Result<(ReadResult, i64, i64, FollowerUpdate), PartitionError> {
        let (epoch, hw, lso) = {
            let st = lock(&self.state);
            let (epoch, hw) = st.check_read(current_leader_epoch)?;
            // Under the state lock: every change of the open transactions happens under it.
            (epoch, hw, self.reader.view().last_stable_offset(hw))
        };
        // Consumers read to the HW (read_committed: the LSO), followers to the log end.
        let read_committed = read_committed && follower.is_none();
        let max_offset = follower
            .is_none()
            .then_some(if read_committed { lso } else { hw });
        let result = self.reader.read_isolated(
            fetch_offset,
            max_bytes,
            max_offset,
            min_one_batch,
            mode,
            read_committed,
        );
        let leo = match &result {
            Ok(r) => Some(r.log_end_offset),
            Err(ReadError::OffsetOutOfRange { log_end_offset, .. }) => Some(*log_end_offset),
            Err(_) => None,
        };
        let mut st = lock(&self.state);
        st.check_leader()?;
        let update = match (follower, leo) {
            (Some(replica), Some(leo)) => {
                st.on_follower_fetch(epoch, replica, fetch_offset, leo, now_ms)?
            }
            _ if st.leader_epoch != epoch => return Err(PartitionError::NotLeader),
            _ => FollowerUpdate::default(),
        };
        let hw = st.high_watermark;
        let lso = lso.min(hw);
        drop(st);
        if update.hw_advanced {
            self.notify();
        }
        Ok((result?, hw, lso, update))
    }

    /// ISR shrink check: followers in the ISR not caught up for `lag_ms` are proposed out.
    pub fn isr_shrink_proposal(&self, lag_ms: i64, now_ms: i64) -> Option<Vec<i32>> {
        let mut st = lock(&self.state);
        let leo = lock(&self.log).log_end_offset();
        st.isr_shrink_proposal(leo, lag_ms, now_ms)
    }

    /// The ISR write for `epoch` landed in ZooKeeper with `zk_version`.
    pub fn isr_committed(&self, epoch: i32, isr: Vec<i32>, zk_version: i32) {
        let mut st = lock(&self.state);
        let mut log = lock(&self.log);
        st.isr_committed(epoch, isr, zk_version, log.log_end_offset());
        log.on_high_watermark_updated(st.high_watermark);
        drop(log);
        drop(st);
        self.notify();
    }

    /// The proposal `isr` did not land: allow new proposals (unless a newer one is pending).
    pub fn isr_change_failed(&self, isr: &[i32]) {
        let mut st = lock(&self.state);
        let leo = lock(&self.log).log_end_offset();
        if st.isr_change_failed(isr, leo) {
            drop(st);
            self.notify();
        }
    }

    // ---- follower ----

    /// Appends batches fetched from the leader and adopts the leader's HW (bounded by
    /// our LEO).
    pub fn append_as_follower(
        &self,
        records: &[u8],
        leader_hw: i64,
        leader_log_start: i64,
        now_ms: i64,
    ) -> Result<(), PartitionError> {
        let mut st = lock(&self.state);
        st.check_follower()?;
        let mut log = lock(&self.log);
        if !records.is_empty() {
            log.append_as_follower(records, now_ms)?;
            self.stats.replicated_in(records.len());
        }
        if leader_log_start > log.log_start_offset() && leader_log_start <= log.log_end_offset() {
            log.increment_log_start_offset(leader_log_start)?;
        }
        let leo = log.log_end_offset();
        st.on_follower_append(leader_hw, leo);
        log.on_high_watermark_updated(st.high_watermark);
        drop(log);
        drop(st);
        self.notify();
        Ok(())
    }

    /// The leader answered our fetch with a diverging epoch: its log ends `end_offset` for
    /// the largest epoch <= `epoch` it has. Truncate to where the two logs agree (Kafka's
    /// `AbstractFetcherThread.getOffsetTruncationState`): if we know `epoch`, to the smaller
    /// of both ends for it; if not, to our end of the largest epoch below it, and the
    /// next fetch (with that epoch as the last fetched one) narrows it further.
    pub fn truncate_to_diverging_epoch(
        &self,
        epoch: i32,
        end_offset: i64,
    ) -> Result<(), StorageError> {
        let target = state::diverging_truncation_offset(&*lock(&self.log), epoch, end_offset);
        self.truncate_to(target)
    }

    /// Truncates a follower's log to `offset` (divergent tail after a leader change).
    pub fn truncate_to(&self, offset: i64) -> Result<(), StorageError> {
        let mut st = lock(&self.state);
        if st.check_follower().is_err() {
            // A late fetch response after this broker became leader: its log is the truth now.
            return Ok(());
        }
        let mut log = lock(&self.log);
        if offset < log.log_end_offset() {
            tracing::info!(partition = %self.tp, from = log.log_end_offset(), to = offset, "truncating divergent log tail");
        }
        // Also when nothing is cut: drops an epoch entry starting at the log end.
        log.truncate_to(offset)?;
        let leo = log.log_end_offset();
        drop(log);
        st.on_truncated(leo);
        Ok(())
    }

    /// The leader's log starts past everything we have: start over at `offset`.
    pub fn truncate_fully_and_start_at(&self, offset: i64) -> Result<(), StorageError> {
        let mut st = lock(&self.state);
        if st.check_follower().is_err() {
            return Ok(());
        }
        lock(&self.log).truncate_fully_and_start_at(offset)?;
        st.on_restarted_at(offset);
        Ok(())
    }

    /// (fetch offset, last fetched epoch, log start) for the follower's next fetch.
    pub fn follower_fetch_position(&self) -> (i64, i32, i64) {
        let log = lock(&self.log);
        (
            log.log_end_offset(),
            log.latest_epoch().unwrap_or(-1),
            log.log_start_offset(),
        )
    }
}
