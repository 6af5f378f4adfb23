//! The transactional side of a [`Log`] (Kafka's `UnifiedLog` transaction handling):
//! appending COMMIT/ABORT markers as the leader, applying the producer state of
//! replicated and recovered batches (markers included) in log order, recording aborted
//! transactions in the `.txnindex` of the segment holding their marker, the high
//! watermark's effect on the last stable offset, and KIP-890 verification.

use super::batch::{patch, Batch, HeaderFields};
use super::control::{build_marker_batch, parse_marker, Marker};
use super::error::{AppendError, StorageError};
use super::log::{LeaderAppend, Log};
use super::producer_state::{AppendOrigin, ProducerBatch};
use super::producer_txn::CompletedTxn;
use super::txn_index::AbortedTxn;

/// One producer-state change of a batch, in log order.
#[derive(Debug, Clone, Copy)]
pub(super) enum ProducerEvent {
    Data(ProducerBatch),
    /// A marker and its offset and timestamp.
    Marker(Marker, i64, i64),
}

impl ProducerEvent {
    /// The producer-state event of a batch whose offsets are final; `Err` for a control
    /// batch whose marker cannot be read.
    pub(super) fn of(b: &Batch<'_>) -> Result<Option<ProducerEvent>, String> {
        if !b.has_producer_id() {
            return Ok(None);
        }
        if b.is_control() {
            return Ok(parse_marker(b)?
                .map(|m| ProducerEvent::Marker(m, b.base_offset(), b.max_timestamp())));
        }
        Ok(
            ProducerBatch::from_batch(b, b.base_offset(), b.max_timestamp())
                .map(ProducerEvent::Data),
        )
    }
}

impl Log {
    /// Appends a transaction marker as the leader for `leader_epoch` (WriteTxnMarkers,
    /// origin COORDINATOR): checks the producer and coordinator epochs, writes the control
    /// batch, completes the producer's transaction and, for an abort, records it in the
    /// transaction index.
    pub fn append_marker(
        &mut self,
        marker: &Marker,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<LeaderAppend, AppendError> {
        let r = self.append_marker_unguarded(marker, leader_epoch, now_ms);
        self.publish();
        self.guarded(r)
    }

    fn append_marker_unguarded(
        &mut self,
        marker: &Marker,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<LeaderAppend, AppendError> {
        self.check_open()?;
        self.touch(now_ms);
        if let Some(latest) = self.epochs.latest_epoch() {
            if leader_epoch < latest {
                return Err(AppendError::FencedLeaderEpoch {
                    epoch: leader_epoch,
                    latest,
                });
            }
        }
        self.producers
            .check_marker(marker, AppendOrigin::Coordinator)?;
        let offset = self.next_offset;
        let mut bytes = build_marker_batch(marker, now_ms);
        patch::set_base_offset(&mut bytes, offset);
        patch::set_partition_leader_epoch(&mut bytes, leader_epoch);
        self.maybe_roll(bytes.len() as u64, now_ms, offset, offset, now_ms)?;
        self.epochs.assign(leader_epoch, offset)?;
        self.active_mut()?.append(&bytes, now_ms)?;
        self.next_offset = offset + 1;
        self.apply_events(&[ProducerEvent::Marker(*marker, offset, now_ms)])?;
        self.producers.update_map_end_offset(self.next_offset);
        self.after_append(1, now_ms)?;
        Ok(LeaderAppend {
            base_offset: offset,
            last_offset: offset,
            log_append_time_ms: -1,
            log_start_offset: self.log_start_offset,
            duplicate: false,
            record_count: 1,
        })
    }

    /// Applies replicated or recovered producer-state events in log order; each marker's
    /// aborted transaction goes to the index of the segment holding the marker.
    pub(super) fn apply_events(&mut self, events: &[ProducerEvent]) -> Result<(), StorageError> {
        for e in events {
            match e {
                ProducerEvent::Data(b) => self.producers.apply_replicated(b),
                ProducerEvent::Marker(m, offset, ts) => {
                    if let Some(done) = self.producers.apply_marker(m, *offset, *ts) {
                        self.complete_txn(&done)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Kafka's `updateTxnIndex` + `completeTxn`: the last stable offset is computed while
    /// the transaction still counts as open.
    fn complete_txn(&mut self, done: &CompletedTxn) -> Result<(), StorageError> {
        if done.aborted {
            let entry = AbortedTxn {
                producer_id: done.producer_id,
                first_offset: done.first_offset,
                last_offset: done.last_offset,
                last_stable_offset: self.producers.last_stable_offset_for(done),
            };
            let seg = self
                .segments
                .range_mut(..=done.last_offset)
                .next_back()
                .map(|(_, s)| s)
                .ok_or_else(|| StorageError::Closed(format!("{} (no segment)", self.tp)))?;
            seg.txn_index_mut().append(entry)?;
        }
        self.producers.complete_txn(done);
        Ok(())
    }

    /// Reloads producer state from the newest snapshot at or below both the log end
    /// offset and `txn_index_from`, drops the aborted-transaction entries from there on
    /// and replays the batches after it, rebuilding those entries (Kafka's
    /// `rebuildProducerState`, and the transaction-index part of segment recovery).
    pub(super) fn rebuild_producer_state(
        &mut self,
        now_ms: i64,
        txn_index_from: i64,
    ) -> Result<(), StorageError> {
        let end = self.next_offset;
        let from = self.producers.reload_from_snapshot(
            end,
            txn_index_from.min(end),
            self.log_start_offset,
            now_ms,
        )?;
        for seg in self.segments.values_mut() {
            if seg.next_offset() > from || seg.base_offset() >= from {
                seg.txn_index_mut().truncate_to(from)?;
            }
        }
        let mut events = Vec::new();
        for seg in self.segments.values() {
            if seg.next_offset() <= from || seg.base_offset() >= end {
                continue;
            }
            let start = if seg.base_offset() >= from {
                0
            } else {
                match seg.translate_offset(from)? {
                    Some((pos, _)) => pos,
                    None => continue,
                }
            };
            let mut controls = Vec::new();
            seg.headers_from(start).for_each(|pos, h| {
                if h.last_offset() < from || h.base_offset() >= end || !h.has_producer_id() {
                    return;
                }
                if h.is_control() {
                    controls.push((events.len(), pos, *h));
                    events.push(None);
                } else {
                    events.push(
                        ProducerBatch::from_batch(h, h.base_offset(), h.max_timestamp())
                            .map(ProducerEvent::Data),
                    );
                }
            })?;
            // Markers need their record: read those (small) batches whole.
            for (at, pos, h) in controls {
                let bytes = seg.read_batch(pos, &h)?;
                let b = Batch::parse(&bytes).map_err(|e| {
                    StorageError::Corrupt(format!("{} at {pos}: {e}", seg.log_path().display()))
                })?;
                events[at] = ProducerEvent::of(&b).map_err(|e| {
                    StorageError::Corrupt(format!("{} at {pos}: {e}", seg.log_path().display()))
                })?;
            }
        }
        let events: Vec<ProducerEvent> = events.into_iter().flatten().collect();
        self.apply_events(&events)?;
        self.producers.update_map_end_offset(end);
        if now_ms != i64::MIN {
            self.producers.remove_expired(now_ms);
        }
        Ok(())
    }

    /// The high watermark moved: transactions completed below it are stable.
    pub fn on_high_watermark_updated(&mut self, high_watermark: i64) {
        if self.producers.first_unstable_offset().is_some() {
            self.producers.on_high_watermark_updated(high_watermark);
            self.publish();
        }
    }

    /// Kafka's `maybeStartTransactionVerification` (see
    /// [`super::producer_state::ProducerStateManager::start_verification`]).
    pub fn start_verification(
        &mut self,
        producer_id: i64,
        sequence: i32,
        epoch: i16,
        now_ms: i64,
    ) -> Option<u64> {
        self.producers
            .start_verification(producer_id, sequence, epoch, now_ms)
    }

    /// `transaction.partition.verification.enable`.
    pub fn set_verification_enabled(&mut self, enabled: bool) {
        self.producers.set_verification_enabled(enabled);
    }

    pub fn has_ongoing_txn(&self, producer_id: i64) -> bool {
        self.producers.has_ongoing_txn(producer_id)
    }

    /// The first offset of the oldest transaction not yet decided (the cleaner's bound).
    pub fn first_undecided_offset(&self) -> Option<i64> {
        self.producers.first_undecided_offset()
    }

    /// The first offset of the oldest open or unreplicated transaction.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.producers.first_unstable_offset()
    }

    /// Every aborted transaction in the transaction indexes, oldest marker first.
    pub fn aborted_transactions(&self) -> Vec<AbortedTxn> {
        self.segments
            .values()
            .flat_map(|s| s.txn_index().entries())
            .collect()
    }
}
