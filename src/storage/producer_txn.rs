//! The transaction side of producer state (Kafka's `ProducerStateManager` ongoing and
//! unreplicated transactions, `ProducerAppendInfo.appendEndTxnMarker`, KIP-890's
//! `VerificationStateEntry`).
//!
//! A transaction is *ongoing* from its first transactional batch in this partition until
//! its marker, then *unreplicated* until the high watermark passes the marker. The first
//! offset of the oldest of either is the first unstable offset; the last stable offset
//! (LSO) is the smaller of it and the high watermark, and `read_committed` consumers read
//! below it only.

use std::collections::BTreeMap;

use super::control::Marker;
use super::error::AppendError;
use super::producer_state::{AppendOrigin, ProducerEntry, ProducerStateManager};

/// Open and completed-but-unreplicated transactions, by first offset.
#[derive(Debug, Default, Clone)]
pub struct TxnTracker {
    /// first offset -> producer id.
    ongoing: BTreeMap<i64, i64>,
    /// first offset -> (producer id, marker offset).
    unreplicated: BTreeMap<i64, (i64, i64)>,
}

impl TxnTracker {
    pub fn start(&mut self, producer_id: i64, first_offset: i64) {
        self.ongoing.insert(first_offset, producer_id);
    }

    /// The transaction starting at `first_offset` got its marker at `last_offset`.
    pub fn complete(&mut self, producer_id: i64, first_offset: i64, last_offset: i64) {
        let removed = self.ongoing.remove(&first_offset);
        assert_eq!(
            removed,
            Some(producer_id),
            "completing a transaction at {first_offset} that was not started"
        );
        assert!(last_offset > first_offset, "a marker follows its data");
        self.unreplicated
            .insert(first_offset, (producer_id, last_offset));
    }

    /// Kafka's `lastStableOffset(completedTxn)`: the first offset of the oldest open
    /// transaction of another producer, else the offset after the marker.
    pub fn last_stable_offset_for(&self, producer_id: i64, marker_offset: i64) -> i64 {
        self.ongoing
            .iter()
            .find(|(_, &pid)| pid != producer_id)
            .map_or(marker_offset + 1, |(&first, _)| first)
    }

    /// Drops completed transactions whose marker is below `high_watermark`.
    pub fn on_high_watermark_updated(&mut self, high_watermark: i64) {
        self.unreplicated
            .retain(|_, (_, last)| *last >= high_watermark);
    }

    pub fn first_unstable_offset(&self) -> Option<i64> {
        let a = self.ongoing.keys().next().copied();
        let b = self.unreplicated.keys().next().copied();
        match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn first_undecided_offset(&self) -> Option<i64> {
        self.ongoing.keys().next().copied()
    }

    pub fn ongoing_count(&self) -> usize {
        self.ongoing.len()
    }

    pub fn clear(&mut self) {
        self.ongoing.clear();
        self.unreplicated.clear();
    }

    /// What read views need to compute the LSO without the log's lock.
    pub fn view(&self) -> TxnView {
        let mut bounds: Vec<(i64, i64)> = self
            .ongoing
            .keys()
            .map(|&first| (first, i64::MAX))
            .chain(self.unreplicated.iter().map(|(&f, &(_, last))| (f, last)))
            .collect();
        bounds.sort_unstable();
        TxnView { bounds }
    }
}

/// The unstable transactions as a read view sees them: (first offset, marker offset or
/// `i64::MAX` while undecided).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TxnView {
    bounds: Vec<(i64, i64)>,
}

impl TxnView {
    /// The last stable offset for `high_watermark`: completed transactions whose marker
    /// is below it are stable.
    pub fn last_stable_offset(&self, high_watermark: i64) -> i64 {
        self.bounds
            .iter()
            .find(|(_, last)| *last >= high_watermark)
            .map_or(high_watermark, |(first, _)| (*first).min(high_watermark))
    }
}

/// KIP-890 part 1: a producer's pending verification (Kafka's `VerificationStateEntry`).
/// `guard` is unique per entry, so a verification that raced with a marker (the entry
/// was dropped and maybe recreated) no longer matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerificationEntry {
    pub guard: u64,
    pub lowest_seq: i32,
    pub epoch: i16,
    pub timestamp: i64,
}

/// A marker's effect on the producer state: the transaction it completes, if the
/// producer had data in this partition (`None` for an empty transaction).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompletedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
    pub aborted: bool,
}

static NEXT_GUARD: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl ProducerStateManager {
    /// Kafka's `hasOngoingTransaction`.
    pub fn has_ongoing_txn(&self, producer_id: i64) -> bool {
        self.producers
            .get(&producer_id)
            .is_some_and(|e| e.current_txn_first_offset.is_some())
    }

    pub fn set_verification_enabled(&mut self, enabled: bool) {
        self.verification_enabled = enabled;
    }

    /// Kafka's `batchMissingRequiredVerification`.
    pub(super) fn missing_verification(&self, producer_id: i64, guard: Option<u64>) -> bool {
        if !self.verification_enabled {
            return false;
        }
        match (self.verifications.get(&producer_id), guard) {
            (Some(v), Some(g)) => v.guard != g,
            _ => true,
        }
    }

    /// Kafka's `maybeStartTransactionVerification`: `None` when the producer has an open
    /// transaction here (no verification needed), else the guard the append must bring
    /// back after the coordinator confirmed the partition is in the transaction.
    pub fn start_verification(
        &mut self,
        producer_id: i64,
        sequence: i32,
        epoch: i16,
        now_ms: i64,
    ) -> Option<u64> {
        if self.has_ongoing_txn(producer_id) {
            return None;
        }
        let v = self
            .verifications
            .entry(producer_id)
            .or_insert_with(|| VerificationEntry {
                guard: NEXT_GUARD.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                lowest_seq: sequence,
                epoch,
                timestamp: now_ms,
            });
        // Kafka's maybeUpdateLowestSequenceAndEpoch.
        if epoch > v.epoch {
            v.epoch = epoch;
            v.lowest_seq = sequence;
        } else if epoch == v.epoch && sequence < v.lowest_seq {
            v.lowest_seq = sequence;
        }
        v.timestamp = now_ms;
        Some(v.guard)
    }

    /// Validates a marker (Kafka's `appendEndTxnMarker` checks): an older producer epoch
    /// is INVALID_PRODUCER_EPOCH, an older coordinator epoch
    /// TRANSACTION_COORDINATOR_FENCED — for the coordinator's appends; replicated markers
    /// are only logged.
    pub fn check_marker(&self, m: &Marker, origin: AppendOrigin) -> Result<(), AppendError> {
        let Some(entry) = self.producers.get(&m.producer_id) else {
            return Ok(());
        };
        if m.producer_epoch < entry.epoch {
            if origin == AppendOrigin::Replication {
                tracing::warn!(
                    producer_id = m.producer_id,
                    epoch = m.producer_epoch,
                    current = entry.epoch,
                    "replicated marker has an older producer epoch"
                );
            } else {
                return Err(AppendError::InvalidProducerEpoch {
                    producer_id: m.producer_id,
                    epoch: m.producer_epoch,
                    current: entry.epoch,
                });
            }
        }
        if m.coordinator_epoch < entry.coordinator_epoch {
            if origin == AppendOrigin::Replication {
                tracing::info!(
                    producer_id = m.producer_id,
                    epoch = m.coordinator_epoch,
                    current = entry.coordinator_epoch,
                    "replicated marker has an older coordinator epoch"
                );
            } else {
                return Err(AppendError::TransactionCoordinatorFenced {
                    producer_id: m.producer_id,
                    epoch: m.coordinator_epoch,
                    current: entry.coordinator_epoch,
                });
            }
        }
        Ok(())
    }

    /// Applies a marker written at `offset` (checked already) and returns the
    /// transaction it completes. The caller records it in the transaction index, then
    /// calls [`Self::complete_txn`].
    pub fn apply_marker(
        &mut self,
        m: &Marker,
        offset: i64,
        timestamp: i64,
    ) -> Option<CompletedTxn> {
        let entry = self
            .producers
            .entry(m.producer_id)
            .or_insert_with(ProducerEntry::empty);
        let completed = entry.current_txn_first_offset.map(|first| CompletedTxn {
            producer_id: m.producer_id,
            first_offset: first,
            last_offset: offset,
            aborted: !m.commit,
        });
        // Kafka's ProducerStateEntry.update(epoch, coordinatorEpoch, timestamp).
        entry.maybe_update_epoch(m.producer_epoch);
        entry.coordinator_epoch = m.coordinator_epoch;
        entry.current_txn_first_offset = None;
        entry.last_timestamp = timestamp;
        self.verifications.remove(&m.producer_id);
        if offset + 1 > self.map_end_offset() {
            self.update_map_end_offset(offset + 1);
        }
        completed
    }

    /// The LSO to record with an aborted transaction (Kafka's `lastStableOffset`).
    pub fn last_stable_offset_for(&self, t: &CompletedTxn) -> i64 {
        self.txns
            .last_stable_offset_for(t.producer_id, t.last_offset)
    }

    /// Kafka's `completeTxn`.
    pub fn complete_txn(&mut self, t: &CompletedTxn) {
        self.txns
            .complete(t.producer_id, t.first_offset, t.last_offset);
    }

    pub fn on_high_watermark_updated(&mut self, high_watermark: i64) {
        self.txns.on_high_watermark_updated(high_watermark);
    }

    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.txns.first_unstable_offset()
    }

    pub fn first_undecided_offset(&self) -> Option<i64> {
        self.txns.first_undecided_offset()
    }

    pub fn txn_view(&self) -> TxnView {
        self.txns.view()
    }

    pub fn ongoing_txn_count(&self) -> usize {
        self.txns.ongoing_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lso_follows_open_and_unreplicated_transactions() {
        let mut t = TxnTracker::default();
        assert_eq!(t.view().last_stable_offset(10), 10);
        t.start(1, 3);
        t.start(2, 5);
        assert_eq!(t.first_unstable_offset(), Some(3));
        assert_eq!(t.view().last_stable_offset(10), 3);
        assert_eq!(t.view().last_stable_offset(2), 2, "never above the HW");
        // Producer 1 aborts at 8: its entry's LSO is producer 2's first offset.
        assert_eq!(t.last_stable_offset_for(1, 8), 5);
        t.complete(1, 3, 8);
        assert_eq!(t.view().last_stable_offset(8), 3, "marker not replicated");
        assert_eq!(t.view().last_stable_offset(10), 5, "producer 2 still open");
        t.complete(2, 5, 9);
        assert_eq!(t.last_stable_offset_for(2, 9), 10);
        // HW 9: the marker at 8 is replicated, the one at 9 is not.
        assert_eq!(t.view().last_stable_offset(9), 5);
        assert_eq!(t.view().last_stable_offset(10), 10);
        t.on_high_watermark_updated(9);
        assert_eq!(t.first_unstable_offset(), Some(5));
        t.on_high_watermark_updated(10);
        assert_eq!(t.first_unstable_offset(), None);
    }

    #[test]
    #[should_panic(expected = "not started")]
    fn completing_an_unknown_transaction_is_a_bug() {
        TxnTracker::default().complete(1, 0, 5);
    }
}
