//! Idempotent-producer state (Kafka's `ProducerStateManager`, `ProducerStateEntry`,
//! `ProducerAppendInfo`): per producer id the epoch and the last 5 batches' sequence and
//! offset ranges, used to detect duplicates and sequence gaps. Persisted in
//! `NNNNNNNNNNNNNNNNNNNN.snapshot` files in Kafka's format (version 1, CRC32C), with each
//! producer's coordinator epoch and the first offset of its open transaction. The
//! transaction side (open and unreplicated transactions, markers, KIP-890 verification)
//! is [`super::producer_txn`].

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};

use super::batch::{decrement_sequence, HeaderFields, NO_SEQUENCE};
use super::checkpoint::atomic_write;
use super::error::{AppendError, IoContext, StorageError};
use super::index_file::remove_if_exists;
use super::producer_txn::{TxnTracker, VerificationEntry};

/// Kafka's `ProducerStateEntry.NUM_BATCHES_TO_RETAIN`.
pub const NUM_BATCHES_TO_RETAIN: usize = 5;
/// Kafka's `RecordBatch.NO_PRODUCER_EPOCH`.
pub const NO_PRODUCER_EPOCH: i16 = -1;

const SNAPSHOT_VERSION: i16 = 1;
const SNAPSHOT_HEADER: usize = 2 + 4 + 4; // version, crc, array length
const SNAPSHOT_ENTRY: usize = 8 + 2 + 4 + 8 + 4 + 8 + 4 + 8;
pub const SNAPSHOT_SUFFIX: &str = ".snapshot";

/// Kafka's `BatchMetadata`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMetadata {
    pub last_seq: i32,
    pub last_offset: i64,
    pub offset_delta: i32,
    pub timestamp: i64,
}

impl BatchMetadata {
    pub fn first_seq(&self) -> i32 {
        decrement_sequence(self.last_seq, self.offset_delta)
    }
    pub fn first_offset(&self) -> i64 {
        self.last_offset - self.offset_delta as i64
    }
}

/// State of one producer id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    pub epoch: i16,
    pub batches: VecDeque<BatchMetadata>,
    pub last_timestamp: i64,
    pub coordinator_epoch: i32,
    /// First offset of the producer's open transaction in this partition.
    pub current_txn_first_offset: Option<i64>,
}

impl ProducerEntry {
    pub(super) fn empty() -> Self {
        ProducerEntry {
            epoch: NO_PRODUCER_EPOCH,
            batches: VecDeque::new(),
            last_timestamp: -1,
            coordinator_epoch: -1,
            current_txn_first_offset: None,
        }
    }
    pub fn last_seq(&self) -> i32 {
        self.batches.back().map_or(NO_SEQUENCE, |b| b.last_seq)
    }
    pub fn last_offset(&self) -> i64 {
        self.batches.back().map_or(-1, |b| b.last_offset)
    }
    pub(super) fn maybe_update_epoch(&mut self, epoch: i16) {
        if self.epoch != epoch {
            self.batches.clear();
            self.epoch = epoch;
        }
    }
    fn push_batch(&mut self, b: BatchMetadata) {
        if self.batches.len() == NUM_BATCHES_TO_RETAIN {
            self.batches.pop_front();
        }
        self.batches.push_back(b);
    }
    fn add_batch(&mut self, epoch: i16, meta: BatchMetadata) {
        self.maybe_update_epoch(epoch);
        self.push_batch(meta);
        self.last_timestamp = meta.timestamp;
    }
    /// Kafka's `findDuplicateBatch`: same epoch and exact sequence range.
    fn find_duplicate(&self, epoch: i16, first_seq: i32, last_seq: i32) -> Option<BatchMetadata> {
        if epoch != self.epoch {
            return None;
        }
        self.batches
            .iter()
            .find(|b| b.first_seq() == first_seq && b.last_seq == last_seq)
            .copied()
    }
}

/// What DescribeProducers / tests see of a producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerEntrySummary {
    pub producer_epoch: i16,
    pub last_sequence: i32,
    pub last_offset: i64,
    pub last_timestamp: i64,
    pub coordinator_epoch: i32,
    pub current_txn_start_offset: i64,
}

/// Who appends (Kafka's `AppendOrigin`): clients get sequence and duplicate checks,
/// coordinators (transactional offset commits, markers) epoch checks only, replication
/// and recovery none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOrigin {
    Client,
    Coordinator,
    Replication,
}

/// The producer fields of one batch being appended.
#[derive(Debug, Clone, Copy)]
pub struct ProducerBatch {
    pub producer_id: i64,
    pub epoch: i16,
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    pub max_timestamp: i64,
    pub transactional: bool,
}

impl ProducerBatch {
    /// From a batch whose offsets are final (follower/recovery) or `first_offset` given.
    pub fn from_batch(
        b: &impl HeaderFields,
        first_offset: i64,
        max_timestamp: i64,
    ) -> Option<Self> {
        if !b.has_producer_id() || b.is_control() {
            return None;
        }
        Some(ProducerBatch {
            producer_id: b.producer_id(),
            epoch: b.producer_epoch(),
            first_seq: b.base_sequence(),
            last_seq: b.last_sequence(),
            first_offset,
            last_offset: first_offset + b.last_offset_delta() as i64,
            max_timestamp,
            transactional: b.is_transactional(),
        })
    }
    fn meta(&self) -> BatchMetadata {
        BatchMetadata {
            last_seq: self.last_seq,
            last_offset: self.last_offset,
            offset_delta: (self.last_offset - self.first_offset) as i32,
            timestamp: self.max_timestamp,
        }
    }
}

/// Result of validating a leader append against producer state.
#[derive(Debug)]
pub enum LeaderCheck {
    /// Apply these updated entries after writing.
    Ok(PendingUpdate),
    /// A batch of the append duplicates a cached one: answer with its original offsets.
    Duplicate(BatchMetadata),
}

/// Updated producer entries computed by a validation, applied after the write succeeds,
/// and the transactions the append starts: (producer id, first offset).
#[derive(Debug, Default)]
pub struct PendingUpdate {
    updates: Vec<(i64, ProducerEntry)>,
    pub(super) started_txns: Vec<(i64, i64)>,
}

#[derive(Debug)]
pub struct ProducerStateManager {
    dir: PathBuf,
    pub(super) producers: HashMap<i64, ProducerEntry>,
    /// Open transactions and completed ones not yet below the high watermark.
    pub(super) txns: TxnTracker,
    /// KIP-890 verification state per producer (Kafka's `VerificationStateEntry`).
    pub(super) verifications: HashMap<i64, VerificationEntry>,
    /// `transaction.partition.verification.enable`.
    pub(super) verification_enabled: bool,
    /// Offset up to which the state reflects the log (exclusive).
    map_end_offset: i64,
    last_snap_offset: i64,
    snapshots: BTreeSet<i64>,
    expiration_ms: i64,
}

/// `<dir>/<20-digit offset>.snapshot`.
pub fn snapshot_path(dir: &Path, offset: i64) -> PathBuf {
    dir.join(format!("{offset:020}{SNAPSHOT_SUFFIX}"))
}

fn in_sequence(last_seq: i32, next_seq: i32) -> bool {
    next_seq as i64 == last_seq as i64 + 1 || (next_seq == 0 && last_seq == i32::MAX)
}

impl ProducerStateManager {
    /// Scans `dir` for snapshot files; state starts empty at `start_offset`.
    pub fn new(dir: &Path, start_offset: i64, expiration_ms: i64) -> Result<Self, StorageError> {
        let mut snapshots = BTreeSet::new();
        for entry in fs::read_dir(dir).ctx(dir)? {
            let entry = entry.ctx(dir)?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(stem) = name.strip_suffix(SNAPSHOT_SUFFIX) {
                if let Ok(off) = stem.parse::<i64>() {
                    snapshots.insert(off);
                }
            }
        }
        Ok(ProducerStateManager {
            dir: dir.to_path_buf(),
            producers: HashMap::new(),
            map_end_offset: start_offset,
            last_snap_offset: start_offset,
            snapshots,
            expiration_ms,
            txns: TxnTracker::default(),
            verifications: HashMap::new(),
            verification_enabled: true,
        })
    }

    pub fn set_dir(&mut self, dir: &Path) {
        self.dir = dir.to_path_buf();
    }
    pub fn set_expiration_ms(&mut self, ms: i64) {
        self.expiration_ms = ms;
    }
    pub fn map_end_offset(&self) -> i64 {
        self.map_end_offset
    }
    pub fn update_map_end_offset(&mut self, offset: i64) {
        self.map_end_offset = offset;
    }
    pub fn snapshot_offsets(&self) -> Vec<i64> {
        self.snapshots.iter().copied().collect()
    }
    pub fn producer_count(&self) -> usize {
        self.producers.len()
    }

    /// Each producer's last offset (the cleaner keeps a producer's last batch even when
    /// compaction empties it).
    pub fn last_offsets(&self) -> HashMap<i64, i64> {
        self.producers
            .iter()
            .map(|(&id, e)| (id, e.last_offset()))
            .collect()
    }

    pub fn summary(&self, producer_id: i64) -> Option<ProducerEntrySummary> {
        self.producers
            .get(&producer_id)
            .map(|e| ProducerEntrySummary {
                producer_epoch: e.epoch,
                last_sequence: e.last_seq(),
                last_offset: e.last_offset(),
                last_timestamp: e.last_timestamp,
                coordinator_epoch: e.coordinator_epoch,
                current_txn_start_offset: e.current_txn_first_offset.unwrap_or(-1),
            })
    }

    /// Validates a leader append (Kafka's `analyzeAndValidateProducerState`): for a client
    /// the first batch that duplicates a cached batch makes the whole append a duplicate;
    /// epochs (and for clients sequences) are checked batch by batch against the state as
    /// updated by the earlier batches of the same append. A transactional batch needs an
    /// open transaction of its producer here or a matching KIP-890 verification `guard`;
    /// a producer with an open transaction may only write transactional batches.
    pub fn check_leader_append(
        &self,
        batches: &[ProducerBatch],
        origin: AppendOrigin,
        guard: Option<u64>,
    ) -> Result<LeaderCheck, AppendError> {
        let mut pending: Vec<(i64, ProducerEntry, ProducerEntry)> = Vec::new(); // (pid, current, updated)
        let mut started_txns = Vec::new();
        for b in batches {
            if origin == AppendOrigin::Client {
                if let Some(current) = self.producers.get(&b.producer_id) {
                    if let Some(dup) = current.find_duplicate(b.epoch, b.first_seq, b.last_seq) {
                        return Ok(LeaderCheck::Duplicate(dup));
                    }
                }
            }
            if origin != AppendOrigin::Replication
                && b.transactional
                && !self.has_ongoing_txn(b.producer_id)
                && self.missing_verification(b.producer_id, guard)
            {
                return Err(AppendError::InvalidTxnState(format!(
                    "record of producer {} was not part of an ongoing transaction",
                    b.producer_id
                )));
            }
            let idx = match pending.iter().position(|(pid, _, _)| *pid == b.producer_id) {
                Some(i) => i,
                None => {
                    let current = self
                        .producers
                        .get(&b.producer_id)
                        .cloned()
                        .unwrap_or_else(ProducerEntry::empty);
                    let updated = ProducerEntry {
                        batches: VecDeque::new(),
                        ..current.clone()
                    };
                    pending.push((b.producer_id, current, updated));
                    pending.len() - 1
                }
            };
            let (_, current, updated) = &mut pending[idx];
            check_epoch(b, updated)?;
            if origin == AppendOrigin::Client {
                if let Some(v) = self.verifications.get(&b.producer_id) {
                    // Kafka's checkSequence: a verified request never starts past the
                    // lowest sequence seen by its verification.
                    if b.first_seq > v.lowest_seq {
                        return Err(AppendError::OutOfOrderSequence {
                            producer_id: b.producer_id,
                            epoch: b.epoch,
                            found: b.first_seq,
                            last_seq: v.lowest_seq,
                        });
                    }
                }
                check_sequence(b, current, updated)?;
            }
            updated.add_batch(b.epoch, b.meta());
            match (updated.current_txn_first_offset, b.transactional) {
                (Some(_), false) => {
                    return Err(AppendError::InvalidTxnState(format!(
                        "expected a transactional write from producer {}",
                        b.producer_id
                    )))
                }
                (None, true) => {
                    updated.current_txn_first_offset = Some(b.first_offset);
                    started_txns.push((b.producer_id, b.first_offset));
                }
                _ => {}
            }
        }
        Ok(LeaderCheck::Ok(PendingUpdate {
            updates: pending.into_iter().map(|(pid, _, u)| (pid, u)).collect(),
            started_txns,
        }))
    }

    /// Applies a validated leader append (Kafka's `update`: merges the new batches into
    /// the current entry, resetting it on an epoch change), registers the transactions
    /// it started and drops their producers' verification state.
    pub fn apply(&mut self, update: PendingUpdate, end_offset: i64) {
        for (pid, updated) in update.updates {
            let entry = self
                .producers
                .entry(pid)
                .or_insert_with(ProducerEntry::empty);
            entry.maybe_update_epoch(updated.epoch);
            for b in updated.batches {
                entry.push_batch(b);
            }
            entry.last_timestamp = updated.last_timestamp;
            entry.coordinator_epoch = updated.coordinator_epoch;
            entry.current_txn_first_offset = updated.current_txn_first_offset;
            if updated.current_txn_first_offset.is_some() {
                self.verifications.remove(&pid);
            }
        }
        for (pid, first) in update.started_txns {
            self.txns.start(pid, first);
        }
        self.map_end_offset = end_offset;
    }

    /// Replication / recovery update (origin REPLICATION): no sequence validation; an
    /// older epoch is logged and applied, as Kafka does. A transactional batch opens its
    /// producer's transaction if none is open.
    pub fn apply_replicated(&mut self, b: &ProducerBatch) {
        let entry = self
            .producers
            .entry(b.producer_id)
            .or_insert_with(ProducerEntry::empty);
        if b.epoch < entry.epoch {
            tracing::warn!(
                producer_id = b.producer_id,
                epoch = b.epoch,
                current = entry.epoch,
                offset = b.first_offset,
                "replicated batch has an older producer epoch"
            );
        }
        entry.add_batch(b.epoch, b.meta());
        match (entry.current_txn_first_offset, b.transactional) {
            (None, true) => {
                entry.current_txn_first_offset = Some(b.first_offset);
                self.txns.start(b.producer_id, b.first_offset);
            }
            (Some(_), false) => tracing::warn!(
                producer_id = b.producer_id,
                offset = b.first_offset,
                "replicated non-transactional batch inside an open transaction"
            ),
            _ => {}
        }
        if b.transactional {
            self.verifications.remove(&b.producer_id);
        }
        if b.last_offset + 1 > self.map_end_offset {
            self.map_end_offset = b.last_offset + 1;
        }
    }

    /// Kafka's `removeExpiredProducers`: drops producers idle for producer.id.expiration.ms
    /// (judged by the max timestamp of their last batch).
    pub fn remove_expired(&mut self, now_ms: i64) -> usize {
        let exp = self.expiration_ms;
        let before = self.producers.len();
        // A producer with an open transaction never expires (Kafka's isProducerExpired).
        self.producers.retain(|_, e| {
            e.current_txn_first_offset.is_some() || now_ms.saturating_sub(e.last_timestamp) < exp
        });
        self.verifications
            .retain(|_, v| now_ms.saturating_sub(v.timestamp) < exp);
        before - self.producers.len()
    }

    /// Forgets all state and deletes every snapshot (Kafka's `truncateFullyAndStartAt`).
    pub fn truncate_fully_and_start_at(&mut self, offset: i64) -> Result<(), StorageError> {
        self.producers.clear();
        self.txns.clear();
        for off in std::mem::take(&mut self.snapshots) {
            remove_if_exists(&snapshot_path(&self.dir, off))?;
        }
        self.map_end_offset = offset;
        self.last_snap_offset = offset;
        Ok(())
    }

    /// Deletes snapshots with offset > `end_offset` (they describe data that is gone).
    pub fn delete_snapshots_after(&mut self, end_offset: i64) -> Result<(), StorageError> {
        let doomed: Vec<i64> = self.snapshots.range(end_offset + 1..).copied().collect();
        for off in doomed {
            self.snapshots.remove(&off);
            remove_if_exists(&snapshot_path(&self.dir, off))?;
        }
        Ok(())
    }

    /// Deletes snapshots with offset < `offset` (their segments were deleted).
    pub fn delete_snapshots_before(&mut self, offset: i64) -> Result<(), StorageError> {
        let doomed: Vec<i64> = self.snapshots.range(..offset).copied().collect();
        for off in doomed {
            self.snapshots.remove(&off);
            remove_if_exists(&snapshot_path(&self.dir, off))?;
        }
        Ok(())
    }

    /// Clears the in-memory state, deletes the snapshots past `max_offset` (they describe
    /// data that is gone) and loads the newest readable snapshot at or below
    /// `load_at_or_below` (corrupt ones are deleted with a warning; Kafka's
    /// `loadFromSnapshot`). Returns the offset the state now reflects; the caller replays
    /// the log from there.
    pub fn reload_from_snapshot(
        &mut self,
        max_offset: i64,
        load_at_or_below: i64,
        log_start_offset: i64,
        now_ms: i64,
    ) -> Result<i64, StorageError> {
        self.producers.clear();
        self.txns.clear();
        self.delete_snapshots_after(max_offset)?;
        while let Some(&off) = self.snapshots.range(..=load_at_or_below).next_back() {
            let path = snapshot_path(&self.dir, off);
            match read_snapshot(&path) {
                Ok(entries) => {
                    for (pid, e) in entries {
                        let open = e.current_txn_first_offset;
                        if open.is_some()
                            || now_ms.saturating_sub(e.last_timestamp) < self.expiration_ms
                        {
                            if let Some(first) = open {
                                self.txns.start(pid, first);
                            }
                            self.producers.insert(pid, e);
                        }
                    }
                    self.map_end_offset = off;
                    self.last_snap_offset = off;
                    tracing::info!(path = %path.display(), producers = self.producers.len(), "loaded producer state snapshot");
                    return Ok(off);
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "deleting unreadable producer snapshot");
                    self.snapshots.remove(&off);
                    remove_if_exists(&path)?;
                }
            }
        }
        self.map_end_offset = log_start_offset;
        self.last_snap_offset = log_start_offset;
        Ok(log_start_offset)
    }

    /// Writes a snapshot at the current map end offset unless one exists there (Kafka's
    /// `takeSnapshot`).
    pub fn take_snapshot(&mut self) -> Result<(), StorageError> {
        let off = self.map_end_offset;
        if self.snapshots.contains(&off) && off <= self.last_snap_offset {
            return Ok(());
        }
        let path = snapshot_path(&self.dir, off);
        atomic_write(&path, &encode_snapshot(&self.producers))?;
        self.snapshots.insert(off);
        self.last_snap_offset = off;
        Ok(())
    }
}

fn check_epoch(b: &ProducerBatch, updated: &ProducerEntry) -> Result<(), AppendError> {
    if b.epoch < updated.epoch {
        return Err(AppendError::InvalidProducerEpoch {
            producer_id: b.producer_id,
            epoch: b.epoch,
            current: updated.epoch,
        });
    }
    Ok(())
}

/// Kafka's `ProducerAppendInfo.checkSequence`.
fn check_sequence(
    b: &ProducerBatch,
    current: &ProducerEntry,
    updated: &ProducerEntry,
) -> Result<(), AppendError> {
    let err = |last_seq| AppendError::OutOfOrderSequence {
        producer_id: b.producer_id,
        epoch: b.epoch,
        found: b.first_seq,
        last_seq,
    };
    if b.epoch != updated.epoch {
        // A new epoch must start at sequence 0, unless the producer is unknown.
        if b.first_seq != 0 && updated.epoch != NO_PRODUCER_EPOCH {
            return Err(err(updated.last_seq()));
        }
        return Ok(());
    }
    let current_last_seq = if !updated.batches.is_empty() {
        updated.last_seq()
    } else if b.epoch == current.epoch {
        current.last_seq()
    } else {
        NO_SEQUENCE
    };
    // With no known epoch (state lost to retention/DeleteRecords) any sequence is accepted.
    if current.epoch == NO_PRODUCER_EPOCH || in_sequence(current_last_seq, b.first_seq) {
        Ok(())
    } else {
        Err(err(current_last_seq))
    }
}

/// Kafka's snapshot layout: version i16, crc u32 (CRC32C of everything after it), then an
/// array (i32 count) of entries {producer_id i64, epoch i16, last_sequence i32,
/// last_offset i64, offset_delta i32, timestamp i64, coordinator_epoch i32,
/// current_txn_first_offset i64}. Only the last batch of each producer is kept.
pub fn encode_snapshot(producers: &HashMap<i64, ProducerEntry>) -> Vec<u8> {
    let mut ids: Vec<&i64> = producers.keys().collect();
    ids.sort();
    let mut out = Vec::with_capacity(SNAPSHOT_HEADER + ids.len() * SNAPSHOT_ENTRY);
    out.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&(ids.len() as i32).to_be_bytes());
    for pid in ids {
        let e = &producers[pid];
        let last = e.batches.back();
        out.extend_from_slice(&pid.to_be_bytes());
        out.extend_from_slice(&e.epoch.to_be_bytes());
        out.extend_from_slice(&last.map_or(NO_SEQUENCE, |b| b.last_seq).to_be_bytes());
        out.extend_from_slice(&last.map_or(-1i64, |b| b.last_offset).to_be_bytes());
        out.extend_from_slice(&last.map_or(0i32, |b| b.offset_delta).to_be_bytes());
        out.extend_from_slice(&e.last_timestamp.to_be_bytes());
        out.extend_from_slice(&e.coordinator_epoch.to_be_bytes());
        out.extend_from_slice(&e.current_txn_first_offset.unwrap_or(-1).to_be_bytes());
    }
    let crc = crc32c::crc32c(&out[6..]);
    out[2..6].copy_from_slice(&crc.to_be_bytes());
    out
}

/// Parses a snapshot file; any deviation from the format is `Corrupt`.
pub fn read_snapshot(path: &Path) -> Result<Vec<(i64, ProducerEntry)>, StorageError> {
    let bytes = fs::read(path).ctx(path)?;
    decode_snapshot(&bytes).map_err(|why| {
        StorageError::Corrupt(format!("producer snapshot {}: {why}", path.display()))
    })
}

pub fn decode_snapshot(bytes: &[u8]) -> Result<Vec<(i64, ProducerEntry)>, String> {
    if bytes.len() < SNAPSHOT_HEADER {
        return Err(format!("{} bytes is too short", bytes.len()));
    }
    let version = i16::from_be_bytes([bytes[0], bytes[1]]);
    if version != SNAPSHOT_VERSION {
        return Err(format!("unknown version {version}"));
    }
    let stored = u32::from_be_bytes([bytes[2], bytes[3], bytes[4], bytes[5]]);
    let computed = crc32c::crc32c(&bytes[6..]);
    if stored != computed {
        return Err(format!(
            "CRC mismatch (stored {stored}, computed {computed})"
        ));
    }
    let count = i32::from_be_bytes([bytes[6], bytes[7], bytes[8], bytes[9]]);
    if count < 0 || (bytes.len() - SNAPSHOT_HEADER) != count as usize * SNAPSHOT_ENTRY {
        return Err(format!(
            "entry count {count} does not match the file length"
        ));
    }
    let mut out = Vec::with_capacity(count as usize);
    for chunk in bytes[SNAPSHOT_HEADER..].chunks_exact(SNAPSHOT_ENTRY) {
        let i64_at = |at: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&chunk[at..at + 8]);
            i64::from_be_bytes(a)
        };
        let i32_at = |at: usize| {
            i32::from_be_bytes([chunk[at], chunk[at + 1], chunk[at + 2], chunk[at + 3]])
        };
        let pid = i64_at(0);
        let epoch = i16::from_be_bytes([chunk[8], chunk[9]]);
        let last_seq = i32_at(10);
        let last_offset = i64_at(14);
        let offset_delta = i32_at(22);
        let timestamp = i64_at(26);
        let coordinator_epoch = i32_at(34);
        let current_txn_first_offset = i64_at(38);
        let mut batches = VecDeque::new();
        if last_offset >= 0 {
            batches.push_back(BatchMetadata {
                last_seq,
                last_offset,
                offset_delta,
                timestamp,
            });
        }
        out.push((
            pid,
            ProducerEntry {
                epoch,
                batches,
                last_timestamp: timestamp,
                coordinator_epoch,
                current_txn_first_offset: (current_txn_first_offset >= 0)
                    .then_some(current_txn_first_offset),
            },
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pb(pid: i64, epoch: i16, first_seq: i32, n: i32, first_offset: i64) -> ProducerBatch {
        ProducerBatch {
            producer_id: pid,
            epoch,
            first_seq,
            last_seq: super::super::batch::increment_sequence(first_seq, n - 1),
            first_offset,
            last_offset: first_offset + n as i64 - 1,
            max_timestamp: 1000,
            transactional: false,
        }
    }

    fn mgr() -> (tempfile::TempDir, ProducerStateManager) {
        let d = tempfile::tempdir().unwrap();
        let m = ProducerStateManager::new(d.path(), 0, 86_400_000).unwrap();
        (d, m)
    }

    fn append(m: &mut ProducerStateManager, b: ProducerBatch) -> Result<LeaderCheck, AppendError> {
        let r = m.check_leader_append(&[b], AppendOrigin::Client, None)?;
        if let LeaderCheck::Ok(u) = r {
            m.apply(u, b.last_offset + 1);
            return Ok(LeaderCheck::Ok(PendingUpdate::default()));
        }
        Ok(r)
    }

    #[test]
    fn unknown_producer_accepts_any_first_sequence() {
        let (_d, mut m) = mgr();
        assert!(matches!(
            append(&mut m, pb(1, 0, 17, 3, 0)),
            Ok(LeaderCheck::Ok(_))
        ));
        assert_eq!(m.summary(1).unwrap().last_sequence, 19);
    }

    #[test]
    fn in_sequence_gap_and_duplicate() {
        let (_d, mut m) = mgr();
        append(&mut m, pb(1, 0, 0, 5, 0)).unwrap();
        append(&mut m, pb(1, 0, 5, 5, 5)).unwrap();
        // retry of the first batch: duplicate with its original offsets
        match append(&mut m, pb(1, 0, 0, 5, 100)).unwrap() {
            LeaderCheck::Duplicate(d) => {
                assert_eq!((d.first_offset(), d.last_offset), (0, 4));
            }
            _ => panic!("expected duplicate"),
        }
        // gap
        assert!(matches!(
            append(&mut m, pb(1, 0, 11, 1, 10)),
            Err(AppendError::OutOfOrderSequence {
                found: 11,
                last_seq: 9,
                ..
            })
        ));
        // overlapping but not identical range: out of order, not duplicate
        assert!(matches!(
            append(&mut m, pb(1, 0, 3, 5, 10)),
            Err(AppendError::OutOfOrderSequence { .. })
        ));
        append(&mut m, pb(1, 0, 10, 1, 10)).unwrap();
    }

    #[test]
    fn only_last_five_batches_are_deduplicated() {
        let (_d, mut m) = mgr();
        for i in 0..6 {
            append(&mut m, pb(1, 0, i, 1, i as i64)).unwrap();
        }
        assert!(matches!(
            append(&mut m, pb(1, 0, 1, 1, 50)).unwrap(),
            LeaderCheck::Duplicate(_)
        ));
        assert!(matches!(
            append(&mut m, pb(1, 0, 0, 1, 50)),
            Err(AppendError::OutOfOrderSequence { .. })
        ));
    }

    #[test]
    fn epoch_rules() {
        let (_d, mut m) = mgr();
        append(&mut m, pb(1, 3, 0, 2, 0)).unwrap();
        assert!(matches!(
            append(&mut m, pb(1, 2, 2, 1, 2)),
            Err(AppendError::InvalidProducerEpoch {
                epoch: 2,
                current: 3,
                ..
            })
        ));
        assert!(matches!(
            append(&mut m, pb(1, 4, 5, 1, 2)),
            Err(AppendError::OutOfOrderSequence { .. })
        ));
        append(&mut m, pb(1, 4, 0, 1, 2)).unwrap();
        assert_eq!(m.summary(1).unwrap().producer_epoch, 4);
        // old epoch's batches are no longer duplicates candidates
        assert!(matches!(
            append(&mut m, pb(1, 3, 0, 2, 3)),
            Err(AppendError::InvalidProducerEpoch { .. })
        ));
    }

    #[test]
    fn sequence_wraps_at_int_max() {
        let (_d, mut m) = mgr();
        append(&mut m, pb(1, 0, i32::MAX - 1, 2, 0)).unwrap();
        assert_eq!(m.summary(1).unwrap().last_sequence, i32::MAX);
        append(&mut m, pb(1, 0, 0, 1, 2)).unwrap();
        // a batch spanning the wrap
        append(&mut m, pb(1, 0, 1, 1, 3)).unwrap();
        let (_d2, mut m2) = mgr();
        append(&mut m2, pb(2, 0, i32::MAX - 1, 4, 0)).unwrap();
        assert_eq!(m2.summary(2).unwrap().last_sequence, 1);
        assert!(matches!(
            append(&mut m2, pb(2, 0, i32::MAX - 1, 4, 9)).unwrap(),
            LeaderCheck::Duplicate(_)
        ));
        append(&mut m2, pb(2, 0, 2, 1, 4)).unwrap();
    }

    #[test]
    fn multi_batch_append_checks_against_updated_state() {
        let (_d, mut m) = mgr();
        append(&mut m, pb(1, 0, 0, 1, 0)).unwrap();
        let ok = m
            .check_leader_append(
                &[pb(1, 0, 1, 1, 1), pb(1, 0, 2, 1, 2)],
                AppendOrigin::Client,
                None,
            )
            .unwrap();
        assert!(matches!(ok, LeaderCheck::Ok(_)));
        assert!(m
            .check_leader_append(
                &[pb(1, 0, 1, 1, 1), pb(1, 0, 3, 1, 2)],
                AppendOrigin::Client,
                None
            )
            .is_err());
    }

    #[test]
    fn snapshot_round_trip_and_expiry() {
        let (d, mut m) = mgr();
        append(&mut m, pb(1, 0, 0, 5, 0)).unwrap();
        append(&mut m, pb(2, 7, 3, 2, 5)).unwrap();
        m.take_snapshot().unwrap();
        let path = snapshot_path(d.path(), 7);
        assert!(path.exists());
        let loaded = read_snapshot(&path).unwrap();
        assert_eq!(loaded.len(), 2);
        let mut m2 = ProducerStateManager::new(d.path(), 0, 86_400_000).unwrap();
        assert_eq!(m2.reload_from_snapshot(100, 100, 0, 1000).unwrap(), 7);
        assert_eq!(m2.summary(2).unwrap().last_sequence, 4);
        // the last batch survives a reload, so its retry is still a duplicate
        assert!(matches!(
            m2.check_leader_append(&[pb(2, 7, 3, 2, 50)], AppendOrigin::Client, None)
                .unwrap(),
            LeaderCheck::Duplicate(_)
        ));
        assert_eq!(m2.remove_expired(1000 + 86_400_000), 2);
        // corrupt snapshot is deleted and ignored
        let mut raw = std::fs::read(&path).unwrap();
        let n = raw.len();
        raw[n - 1] ^= 1;
        std::fs::write(&path, raw).unwrap();
        let mut m3 = ProducerStateManager::new(d.path(), 0, 86_400_000).unwrap();
        assert_eq!(m3.reload_from_snapshot(100, 100, 0, 1000).unwrap(), 0);
        assert!(!path.exists());
        assert!(decode_snapshot(&[0, 1, 2]).is_err());
    }
}
