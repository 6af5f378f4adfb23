//! One partition replica on this broker: its log, its role (leader, follower, or no
//! leader known), the leader epoch, the ISR, the high watermark and — when leading — each
//! follower's progress.
//!
//! Invariants (asserted where produced):
//! - HW ≤ LEO, and a leader's HW never decreases;
//! - the leader epoch only increases;
//! - the ISR is a subset of the replicas and, when leading, contains this broker.
//!
//! Lock order: `state` before the log.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use crate::storage::fileio::ReadMode;
use crate::storage::read_view::LogReader;
use crate::storage::{
    AppendError, LeaderAppend, Log, ReadError, ReadResult, StorageError, TopicPartition,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Leader,
    Follower {
        leader: i32,
    },
    /// The controller knows no leader (offline partition).
    NoLeader,
}

/// What the leader knows of one follower (Kafka's `Replica` state).
#[derive(Debug, Clone, Copy)]
pub struct FollowerProgress {
    /// The follower's log end offset: the offset of its last fetch. -1 = unknown.
    pub leo: i64,
    pub last_fetch_ms: i64,
    /// Last time the follower was known to have everything the leader had.
    pub last_caught_up_ms: i64,
    /// Leader LEO at the follower's previous fetch (Kafka's `lastFetchLeaderLogEndOffset`).
    pub leader_leo_at_last_fetch: i64,
}

#[derive(Debug, Clone)]
pub struct ReplicaState {
    pub role: Role,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    /// The ISR as last committed to ZooKeeper (or read from it).
    pub isr: Vec<i32>,
    /// An ISR change written but not yet confirmed.
    pub pending_isr: Option<Vec<i32>>,
    pub zk_version: i32,
    pub controller_epoch: i32,
    pub high_watermark: i64,
    pub followers: BTreeMap<i32, FollowerProgress>,
    /// LEO when this broker became leader of the current epoch.
    pub leader_epoch_start_offset: i64,
    pub min_insync_replicas: i32,
}

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

/// What a follower fetch did to the leader's view.
#[derive(Debug, Default)]
pub struct FollowerUpdate {
    /// The follower is caught up and out of the ISR: propose this ISR.
    pub expand_isr_to: Option<Vec<i32>>,
    pub hw_advanced: bool,
}

pub struct Partition {
    pub tp: TopicPartition,
    pub topic_id: uuid::Uuid,
    broker_id: i32,
    log: Arc<Mutex<Log>>,
    /// The log's read side: fetches read through it without the log's (append) lock.
    reader: Arc<LogReader>,
    state: Mutex<ReplicaState>,
    progress: watch::Sender<u64>,
}

/// Locks a mutex, recovering from poisoning: the data is still consistent because every
/// mutation below is completed before anything that could panic.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Partition {
    pub fn new(
        tp: TopicPartition,
        topic_id: uuid::Uuid,
        broker_id: i32,
        log: Arc<Mutex<Log>>,
        hw_checkpoint: i64,
    ) -> Self {
        let (leo, reader) = {
            let log = lock(&log);
            (log.log_end_offset(), log.reader())
        };
        let state = ReplicaState {
            role: Role::NoLeader,
            leader_epoch: -1,
            replicas: Vec::new(),
            isr: Vec::new(),
            pending_isr: None,
            zk_version: -1,
            controller_epoch: -1,
            high_watermark: hw_checkpoint.clamp(0, leo),
            followers: BTreeMap::new(),
            leader_epoch_start_offset: -1,
            min_insync_replicas: 1,
        };
        Partition {
            tp,
            topic_id,
            broker_id,
            log,
            reader,
            state: Mutex::new(state),
            progress: watch::channel(0).0,
        }
    }

    pub fn log(&self) -> &Arc<Mutex<Log>> {
        &self.log
    }

    pub fn state(&self) -> ReplicaState {
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

    pub fn set_min_insync_replicas(&self, min: i32) {
        lock(&self.state).min_insync_replicas = min.max(1);
    }

    /// Checks a client's `current_leader_epoch` (KIP-320); -1 means "not provided".
    pub fn check_leader_epoch(state: &ReplicaState, requested: i32) -> Result<(), PartitionError> {
        if requested < 0 || requested == state.leader_epoch {
            return Ok(());
        }
        if requested < state.leader_epoch {
            Err(PartitionError::FencedLeaderEpoch {
                requested,
                current: state.leader_epoch,
            })
        } else {
            Err(PartitionError::UnknownLeaderEpoch {
                requested,
                current: state.leader_epoch,
            })
        }
    }

    // ---- role changes, driven by the ZooKeeper state the controller wrote ----

    /// Becomes leader for `leader_epoch` (or refreshes the ISR for the same epoch).
    /// Returns true if this was a role or epoch change.
    pub fn make_leader(
        &self,
        leader_epoch: i32,
        replicas: Vec<i32>,
        isr: Vec<i32>,
        zk_version: i32,
        controller_epoch: i32,
        now_ms: i64,
    ) -> Result<bool, StorageError> {
        let mut st = lock(&self.state);
        debug_assert!(
            leader_epoch >= st.leader_epoch,
            "leader epochs only increase"
        );
        let new_term = st.role != Role::Leader || st.leader_epoch != leader_epoch;
        st.replicas = replicas;
        st.isr = isr;
        st.zk_version = zk_version;
        st.controller_epoch = controller_epoch;
        st.pending_isr = None;
        if new_term {
            let mut log = lock(&self.log);
            let leo = log.log_end_offset();
            log.assign_epoch_start_offset(leader_epoch, leo)?;
            drop(log);
            st.role = Role::Leader;
            st.leader_epoch = leader_epoch;
            st.leader_epoch_start_offset = leo;
            // Kafka resets follower state on election: ISR members count as caught up now,
            // so they are not dropped before they have had a chance to fetch.
            let isr = st.isr.clone();
            st.followers = st
                .replicas
                .iter()
                .filter(|&&r| r != self.broker_id)
                .map(|&r| {
                    let caught_up = if isr.contains(&r) { now_ms } else { 0 };
                    (
                        r,
                        FollowerProgress {
                            leo: -1,
                            last_fetch_ms: 0,
                            last_caught_up_ms: caught_up,
                            leader_leo_at_last_fetch: -1,
                        },
                    )
                })
                .collect();
        }
        debug_assert!(
            st.isr.iter().all(|r| st.replicas.contains(r)),
            "ISR ⊆ replicas"
        );
        drop(st);
        self.maybe_advance_hw();
        self.notify();
        Ok(new_term)
    }

    /// Becomes a follower of `leader` (-1: no leader) at `leader_epoch`. Returns true on a
    /// role or epoch change (the fetcher must then restart for this partition).
    pub fn make_follower(
        &self,
        leader: i32,
        leader_epoch: i32,
        replicas: Vec<i32>,
        isr: Vec<i32>,
        zk_version: i32,
    ) -> bool {
        let mut st = lock(&self.state);
        debug_assert!(
            leader_epoch >= st.leader_epoch,
            "leader epochs only increase"
        );
        let role = if leader >= 0 {
            Role::Follower { leader }
        } else {
            Role::NoLeader
        };
        let changed = st.role != role || st.leader_epoch != leader_epoch;
        st.role = role;
        st.leader_epoch = leader_epoch;
        st.replicas = replicas;
        st.isr = isr;
        st.zk_version = zk_version;
        st.pending_isr = None;
        st.followers.clear();
        drop(st);
        self.notify();
        changed
    }

    // ---- leader: produce ----

    /// Appends a produce request's batches as leader.
    pub fn append_as_leader(
        &self,
        records: &[u8],
        acks: i16,
        now_ms: i64,
    ) -> Result<(LeaderAppend, i32), PartitionError> {
        let st = lock(&self.state);
        if st.role != Role::Leader {
            return Err(PartitionError::NotLeader);
        }
        // Kafka checks min.insync.replicas up front for acks=all.
        if acks == -1 && (st.isr.len() as i32) < st.min_insync_replicas {
            return Err(PartitionError::NotEnoughReplicas {
                isr: st.isr.len(),
                min: st.min_insync_replicas,
            });
        }
        let epoch = st.leader_epoch;
        let appended = lock(&self.log).append_as_leader(records, epoch, now_ms)?;
        drop(st);
        self.maybe_advance_hw();
        self.notify();
        Ok((appended, epoch))
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
            {
                let st = lock(&self.state);
                if st.role != Role::Leader || st.leader_epoch != epoch {
                    return Err(PartitionError::NotLeader);
                }
                if st.high_watermark >= required_offset {
                    // Kafka's DelayedProduce: replicated, but the ISR may have shrunk meanwhile.
                    if (st.isr.len() as i32) < st.min_insync_replicas {
                        return Err(PartitionError::NotEnoughReplicasAfterAppend {
                            isr: st.isr.len(),
                            min: st.min_insync_replicas,
                        });
                    }
                    return Ok(());
                }
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
    ) -> Result<(i64, i64, i32), PartitionError> {
        const LATEST: i64 = -1;
        const EARLIEST: i64 = -2;
        const MAX_TIMESTAMP: i64 = -3;
        const EARLIEST_LOCAL: i64 = -4;
        const LATEST_TIERED: i64 = -5;
        let st = lock(&self.state);
        if st.role != Role::Leader {
            return Err(PartitionError::NotLeader);
        }
        Self::check_leader_epoch(&st, current_leader_epoch)?;
        let log = lock(&self.log);
        let last_fetchable = if from_replica {
            log.log_end_offset()
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
        if require_leader && st.role != Role::Leader {
            return Err(PartitionError::NotLeader);
        }
        Self::check_leader_epoch(&st, current_leader_epoch)?;
        Ok(lock(&self.log)
            .end_offset_for_epoch(epoch)
            .unwrap_or((-1, -1)))
    }

    /// DeleteRecords on the leader: moves the log start to `offset` (-1 = the HW).
    /// Returns the new low watermark.
    pub fn delete_records_before(&self, offset: i64) -> Result<i64, PartitionError> {
        let st = lock(&self.state);
        if st.role != Role::Leader {
            return Err(PartitionError::NotLeader);
        }
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
        if last_fetched_epoch < 0 {
            return None;
        }
        let log = lock(&self.log);
        let (epoch, end) = log.end_offset_for_epoch(last_fetched_epoch)?;
        (epoch < last_fetched_epoch || end < fetch_offset).then_some((epoch, end))
    }

    /// Reads for a consumer (up to the HW) or a follower (up to the LEO). For a follower,
    /// also records its progress; the caller acts on the returned ISR proposal.
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
    ) -> Result<(ReadResult, i64, FollowerUpdate), PartitionError> {
        let (epoch, consumer_limit) = {
            let st = lock(&self.state);
            if st.role != Role::Leader {
                return Err(PartitionError::NotLeader);
            }
            Self::check_leader_epoch(&st, current_leader_epoch)?;
            (st.leader_epoch, st.high_watermark)
        };
        // Consumers read to the HW, followers to the log end.
        let max_offset = follower.is_none().then_some(consumer_limit);
        let result = self
            .reader
            .read(fetch_offset, max_bytes, max_offset, min_one_batch, mode);
        let leo = match &result {
            Ok(r) => Some(r.log_end_offset),
            Err(ReadError::OffsetOutOfRange { log_end_offset, .. }) => Some(*log_end_offset),
            Err(_) => None,
        };
        let mut st = lock(&self.state);
        if st.role != Role::Leader || st.leader_epoch != epoch {
            return Err(PartitionError::NotLeader);
        }
        let mut update = FollowerUpdate::default();
        if let (Some(replica), Some(leo)) = (follower, leo) {
            update = self.record_follower_fetch(&mut st, replica, fetch_offset, leo, now_ms);
        }
        let hw = st.high_watermark;
        drop(st);
        if update.hw_advanced {
            self.notify();
        }
        Ok((result?, hw, update))
    }

    fn record_follower_fetch(
        &self,
        st: &mut ReplicaState,
        replica: i32,
        fetch_offset: i64,
        leader_leo: i64,
        now_ms: i64,
    ) -> FollowerUpdate {
        let mut update = FollowerUpdate::default();
        let Some(p) = st.followers.get_mut(&replica) else {
            return update; // not an assigned replica of this partition
        };
        // Kafka's Replica.updateFetchState: caught up if it fetched from the leader's LEO
        // now, or from the LEO the leader had at its previous fetch.
        if fetch_offset >= leader_leo {
            p.last_caught_up_ms = now_ms;
        } else if fetch_offset >= p.leader_leo_at_last_fetch {
            p.last_caught_up_ms = p.last_caught_up_ms.max(p.last_fetch_ms);
        }
        p.leo = fetch_offset.min(leader_leo);
        p.last_fetch_ms = now_ms;
        p.leader_leo_at_last_fetch = leader_leo;
        let follower_leo = p.leo;
        // ISR expansion (Kafka's isFollowerInSync): caught up to the HW and to the start
        // of the current leader epoch.
        let in_isr = st.isr.contains(&replica)
            || st
                .pending_isr
                .as_ref()
                .is_some_and(|p| p.contains(&replica));
        if !in_isr
            && st.pending_isr.is_none()
            && follower_leo >= st.high_watermark
            && follower_leo >= st.leader_epoch_start_offset
        {
            let mut isr = st.isr.clone();
            isr.push(replica);
            st.pending_isr = Some(isr.clone());
            update.expand_isr_to = Some(isr);
        }
        update.hw_advanced = Self::advance_hw_locked(st, leader_leo);
        update
    }

    /// ISR shrink check: followers in the ISR not caught up for `lag_ms` are proposed out.
    pub fn isr_shrink_proposal(&self, lag_ms: i64, now_ms: i64) -> Option<Vec<i32>> {
        let mut st = lock(&self.state);
        if st.role != Role::Leader || st.pending_isr.is_some() {
            return None;
        }
        let leo = lock(&self.log).log_end_offset();
        let out_of_sync: Vec<i32> = st
            .isr
            .iter()
            .copied()
            .filter(|&r| r != self.broker_id)
            .filter(|r| {
                st.followers.get(r).is_some_and(|p| {
                    // A follower with everything the leader has is in sync however long ago it fetched.
                    p.leo < leo && now_ms - p.last_caught_up_ms > lag_ms
                })
            })
            .collect();
        if out_of_sync.is_empty() {
            return None;
        }
        let isr: Vec<i32> = st
            .isr
            .iter()
            .copied()
            .filter(|r| !out_of_sync.contains(r))
            .collect();
        st.pending_isr = Some(isr.clone());
        Some(isr)
    }

    /// The ISR write for `epoch` landed in ZooKeeper with `zk_version`.
    pub fn isr_committed(&self, epoch: i32, isr: Vec<i32>, zk_version: i32) {
        let mut st = lock(&self.state);
        if st.role != Role::Leader || st.leader_epoch != epoch {
            return;
        }
        st.isr = isr;
        st.zk_version = zk_version;
        st.pending_isr = None;
        drop(st);
        self.maybe_advance_hw();
        self.notify();
    }

    /// The proposal `isr` did not land: allow new proposals (unless a newer one is pending).
    pub fn isr_change_failed(&self, isr: &[i32]) {
        let mut st = lock(&self.state);
        if st.pending_isr.as_deref() == Some(isr) {
            st.pending_isr = None;
        }
    }

    /// Recomputes the leader's high watermark: the minimum LEO over the maximal ISR (the
    /// committed ISR plus a pending expansion, KIP-497).
    pub fn maybe_advance_hw(&self) -> bool {
        let mut st = lock(&self.state);
        if st.role != Role::Leader {
            return false;
        }
        let leo = lock(&self.log).log_end_offset();
        let advanced = Self::advance_hw_locked(&mut st, leo);
        drop(st);
        if advanced {
            self.notify();
        }
        advanced
    }

    fn advance_hw_locked(st: &mut ReplicaState, leader_leo: i64) -> bool {
        let mut members: Vec<i32> = st.isr.clone();
        if let Some(p) = &st.pending_isr {
            for r in p {
                if !members.contains(r) {
                    members.push(*r);
                }
            }
        }
        let mut candidate = leader_leo;
        for r in &members {
            if let Some(p) = st.followers.get(r) {
                candidate = candidate.min(p.leo.max(0).min(leader_leo));
                if p.leo < 0 {
                    candidate = candidate.min(st.high_watermark);
                }
            }
        }
        if candidate > st.high_watermark {
            st.high_watermark = candidate;
            debug_assert!(st.high_watermark <= leader_leo, "HW ≤ LEO");
            return true;
        }
        false
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
        if !matches!(st.role, Role::Follower { .. }) {
            return Err(PartitionError::NotLeader);
        }
        let mut log = lock(&self.log);
        if !records.is_empty() {
            log.append_as_follower(records, now_ms)?;
        }
        if leader_log_start > log.log_start_offset() && leader_log_start <= log.log_end_offset() {
            log.increment_log_start_offset(leader_log_start)?;
        }
        let leo = log.log_end_offset();
        drop(log);
        let hw = leader_hw.min(leo);
        if hw > st.high_watermark || st.high_watermark > leo {
            st.high_watermark = hw;
        }
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
        let target = {
            let log = lock(&self.log);
            let leo = log.log_end_offset();
            match log.end_offset_for_epoch(epoch) {
                Some((ours, our_end)) if ours == epoch => our_end.min(end_offset).min(leo),
                Some((_, our_end)) => our_end.min(leo),
                None => end_offset.min(leo),
            }
        };
        self.truncate_to(target)
    }

    /// Truncates a follower's log to `offset` (divergent tail after a leader change).
    pub fn truncate_to(&self, offset: i64) -> Result<(), StorageError> {
        let mut st = lock(&self.state);
        if !matches!(st.role, Role::Follower { .. }) {
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
        st.high_watermark = st.high_watermark.min(leo);
        Ok(())
    }

    /// The leader's log starts past everything we have: start over at `offset`.
    pub fn truncate_fully_and_start_at(&self, offset: i64) -> Result<(), StorageError> {
        let mut st = lock(&self.state);
        lock(&self.log).truncate_fully_and_start_at(offset)?;
        st.high_watermark = offset;
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
