//! One transactional id's state (Kafka's `TransactionMetadata`, `TxnTransitMetadata`,
//! `TransactionState`): every change is prepared as a [`TxnTransit`] (which sets the
//! pending state, refusing a second concurrent change), written to `__transaction_state`,
//! and applied with [`TxnMetadata::complete_transition`] once replicated.
//!
//! ```text
//! Empty ──AddPartitions──► Ongoing ──EndTxn(commit)──► PrepareCommit ──markers──► CompleteCommit
//!   ▲                        │ └────EndTxn(abort)───► PrepareAbort ──markers──► CompleteAbort
//!   └──InitProducerId────────┘   (timeout / fencing: PrepareEpochFence ─► PrepareAbort)
//! Empty, CompleteCommit, CompleteAbort ──transactional.id.expiration.ms──► Dead (tombstone)
//! ```

use std::collections::BTreeSet;

use kafka_protocol::ResponseError as Error;

pub const NO_PRODUCER_ID: i64 = -1;
pub const NO_PRODUCER_EPOCH: i16 = -1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    Dead,
    PrepareEpochFence,
}

impl TxnState {
    pub const ALL: [TxnState; 8] = [
        TxnState::Empty,
        TxnState::Ongoing,
        TxnState::PrepareCommit,
        TxnState::PrepareAbort,
        TxnState::CompleteCommit,
        TxnState::CompleteAbort,
        TxnState::Dead,
        TxnState::PrepareEpochFence,
    ];

    /// The id stored in `__transaction_state`.
    pub fn id(self) -> i8 {
        match self {
            TxnState::Empty => 0,
            TxnState::Ongoing => 1,
            TxnState::PrepareCommit => 2,
            TxnState::PrepareAbort => 3,
            TxnState::CompleteCommit => 4,
            TxnState::CompleteAbort => 5,
            TxnState::Dead => 6,
            TxnState::PrepareEpochFence => 7,
        }
    }

    pub fn from_id(id: i8) -> Option<TxnState> {
        TxnState::ALL.into_iter().find(|s| s.id() == id)
    }

    /// The name DescribeTransactions and ListTransactions show.
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    pub fn from_name(name: &str) -> Option<TxnState> {
        TxnState::ALL.into_iter().find(|s| s.name() == name)
    }

    fn valid_previous(self) -> &'static [TxnState] {
        use TxnState::*;
        match self {
            Empty => &[Empty, CompleteCommit, CompleteAbort],
            Ongoing => &[Ongoing, Empty, CompleteCommit, CompleteAbort],
            PrepareCommit => &[Ongoing],
            PrepareAbort => &[Ongoing, PrepareEpochFence],
            CompleteCommit => &[PrepareCommit],
            CompleteAbort => &[PrepareAbort],
            Dead => &[Empty, CompleteAbort, CompleteCommit],
            PrepareEpochFence => &[Ongoing],
        }
    }

    /// Whether a transactional id in this state may expire.
    pub fn expiration_allowed(self) -> bool {
        matches!(
            self,
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
        )
    }
}

/// Kafka's `isEpochExhausted`: epochs stop at i16::MAX - 1 so a fence always fits.
pub fn epoch_exhausted(epoch: i16) -> bool {
    epoch >= i16::MAX - 1
}

/// The target of a state change (Kafka's `TxnTransitMetadata`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnTransit {
    pub producer_id: i64,
    pub last_producer_id: i64,
    pub producer_epoch: i16,
    pub last_producer_epoch: i16,
    pub txn_timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<(String, i32)>,
    pub txn_start_timestamp: i64,
    pub txn_last_update_timestamp: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMetadata {
    pub transactional_id: String,
    pub producer_id: i64,
    pub last_producer_id: i64,
    pub producer_epoch: i16,
    pub last_producer_epoch: i16,
    pub txn_timeout_ms: i32,
    pub state: TxnState,
    /// The state a change in flight goes to (blocks other changes).
    pub pending_state: Option<TxnState>,
    pub partitions: BTreeSet<(String, i32)>,
    pub txn_start_timestamp: i64,
    pub txn_last_update_timestamp: i64,
    /// A fencing epoch bump may not have reached the log: do not bump again.
    pub has_failed_epoch_fence: bool,
}

impl TxnMetadata {
    /// A new transactional id: Empty, no epoch yet.
    pub fn new(transactional_id: &str, producer_id: i64, txn_timeout_ms: i32, now: i64) -> Self {
        TxnMetadata {
            transactional_id: transactional_id.to_string(),
            producer_id,
            last_producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            last_producer_epoch: NO_PRODUCER_EPOCH,
            txn_timeout_ms,
            state: TxnState::Empty,
            pending_state: None,
            partitions: BTreeSet::new(),
            txn_start_timestamp: -1,
            txn_last_update_timestamp: now,
            has_failed_epoch_fence: false,
        }
    }

    /// As loaded from a `__transaction_state` record (the last ids/epochs are not stored
    /// there, as in Kafka).
    pub fn loaded(transactional_id: &str, v: super::records::TxnValue) -> Self {
        TxnMetadata {
            transactional_id: transactional_id.to_string(),
            producer_id: v.producer_id,
            last_producer_id: NO_PRODUCER_ID,
            producer_epoch: v.producer_epoch,
            last_producer_epoch: NO_PRODUCER_EPOCH,
            txn_timeout_ms: v.txn_timeout_ms,
            state: v.state,
            pending_state: None,
            partitions: v.partitions,
            txn_start_timestamp: v.start_ms,
            txn_last_update_timestamp: v.last_update_ms,
            has_failed_epoch_fence: false,
        }
    }

    pub fn pending_transition_in_progress(&self) -> bool {
        self.pending_state.is_some()
    }

    pub fn epoch_exhausted(&self) -> bool {
        epoch_exhausted(self.producer_epoch)
    }

    /// Ongoing, PrepareAbort or PrepareCommit.
    pub fn has_pending_transaction(&self) -> bool {
        matches!(
            self.state,
            TxnState::Ongoing | TxnState::PrepareAbort | TxnState::PrepareCommit
        )
    }

    pub fn remove_partition(&mut self, tp: &(String, i32)) {
        assert!(
            matches!(self.state, TxnState::PrepareCommit | TxnState::PrepareAbort),
            "{}: removing a partition whose marker was written in state {:?}",
            self.transactional_id,
            self.state
        );
        self.partitions.remove(tp);
    }

    /// Kafka's `prepareFenceProducerEpoch`: bump the epoch (once, even if retried after
    /// a failed write) to fence the current producer before aborting its transaction.
    pub fn prepare_fence_producer_epoch(&mut self) -> Result<TxnTransit, Error> {
        if self.producer_epoch == i16::MAX {
            tracing::error!(transactional_id = %self.transactional_id, "cannot fence a producer at epoch i16::MAX");
            return Err(Error::UnknownServerError);
        }
        let bumped = if self.has_failed_epoch_fence {
            self.producer_epoch
        } else {
            self.producer_epoch + 1
        };
        self.prepare_transition_to(
            TxnState::PrepareEpochFence,
            self.producer_id,
            bumped,
            NO_PRODUCER_EPOCH,
            self.txn_timeout_ms,
            self.partitions.clone(),
            self.txn_start_timestamp,
            self.txn_last_update_timestamp,
        )
    }

    /// Kafka's `prepareIncrementProducerEpoch` (InitProducerId), with KIP-360's resume:
    /// a producer naming the current epoch (or none) gets the next one; naming the last
    /// epoch it is a retry of a bump it never saw; any other epoch is PRODUCER_FENCED.
    pub fn prepare_increment_producer_epoch(
        &mut self,
        new_timeout_ms: i32,
        expected_epoch: Option<i16>,
        now: i64,
    ) -> Result<TxnTransit, Error> {
        if self.epoch_exhausted() {
            tracing::error!(transactional_id = %self.transactional_id, "producer epochs exhausted");
            return Err(Error::UnknownServerError);
        }
        let bumped = self.producer_epoch + 1;
        let (next, last) = match expected_epoch {
            None => (bumped, NO_PRODUCER_EPOCH),
            Some(e) if self.producer_epoch == NO_PRODUCER_EPOCH || e == self.producer_epoch => {
                (bumped, self.producer_epoch)
            }
            Some(e) if e == self.last_producer_epoch => {
                (self.producer_epoch, self.last_producer_epoch)
            }
            Some(e) => {
                tracing::info!(transactional_id = %self.transactional_id, expected = e, current = self.producer_epoch, last = self.last_producer_epoch, "fenced producer epoch");
                return Err(Error::ProducerFenced);
            }
        };
        self.prepare_transition_to(
            TxnState::Empty,
            self.producer_id,
            next,
            last,
            new_timeout_ms,
            BTreeSet::new(),
            -1,
            now,
        )
    }

    /// Kafka's `prepareProducerIdRotation`: a new producer id once the epochs of the
    /// current one are exhausted.
    pub fn prepare_producer_id_rotation(
        &mut self,
        new_producer_id: i64,
        new_timeout_ms: i32,
        now: i64,
        record_last_epoch: bool,
    ) -> Result<TxnTransit, Error> {
        if self.has_pending_transaction() {
            tracing::error!(transactional_id = %self.transactional_id, "cannot rotate producer ids with a transaction pending");
            return Err(Error::UnknownServerError);
        }
        let last_epoch = if record_last_epoch {
            self.producer_epoch
        } else {
            NO_PRODUCER_EPOCH
        };
        self.prepare_transition_to(
            TxnState::Empty,
            new_producer_id,
            0,
            last_epoch,
            new_timeout_ms,
            BTreeSet::new(),
            -1,
            now,
        )
    }

    pub fn prepare_add_partitions(
        &mut self,
        added: &BTreeSet<(String, i32)>,
        now: i64,
    ) -> Result<TxnTransit, Error> {
        let start = match self.state {
            TxnState::Empty | TxnState::CompleteAbort | TxnState::CompleteCommit => now,
            _ => self.txn_start_timestamp,
        };
        let partitions = self.partitions.union(added).cloned().collect();
        self.prepare_transition_to(
            TxnState::Ongoing,
            self.producer_id,
            self.producer_epoch,
            self.last_producer_epoch,
            self.txn_timeout_ms,
            partitions,
            start,
            now,
        )
    }

    pub fn prepare_abort_or_commit(
        &mut self,
        state: TxnState,
        now: i64,
    ) -> Result<TxnTransit, Error> {
        self.prepare_transition_to(
            state,
            self.producer_id,
            self.producer_epoch,
            self.last_producer_epoch,
            self.txn_timeout_ms,
            self.partitions.clone(),
            self.txn_start_timestamp,
            now,
        )
    }

    /// After every marker is written: CompleteCommit or CompleteAbort.
    pub fn prepare_complete(&mut self, now: i64) -> Result<TxnTransit, Error> {
        let state = if self.state == TxnState::PrepareCommit {
            TxnState::CompleteCommit
        } else {
            TxnState::CompleteAbort
        };
        // The change reached the log: a failed fence is no longer in doubt.
        self.has_failed_epoch_fence = false;
        self.prepare_transition_to(
            state,
            self.producer_id,
            self.producer_epoch,
            self.last_producer_epoch,
            self.txn_timeout_ms,
            BTreeSet::new(),
            self.txn_start_timestamp,
            now,
        )
    }

    pub fn prepare_dead(&mut self) -> Result<TxnTransit, Error> {
        self.prepare_transition_to(
            TxnState::Dead,
            self.producer_id,
            self.producer_epoch,
            self.last_producer_epoch,
            self.txn_timeout_ms,
            BTreeSet::new(),
            self.txn_start_timestamp,
            self.txn_last_update_timestamp,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn prepare_transition_to(
        &mut self,
        state: TxnState,
        producer_id: i64,
        producer_epoch: i16,
        last_producer_epoch: i16,
        txn_timeout_ms: i32,
        partitions: BTreeSet<(String, i32)>,
        txn_start_timestamp: i64,
        now: i64,
    ) -> Result<TxnTransit, Error> {
        let illegal = |why: String| {
            tracing::error!(transactional_id = %self.transactional_id, "{why}");
            Err(Error::UnknownServerError)
        };
        if let Some(pending) = self.pending_state {
            return illegal(format!(
                "transition to {state:?} while {pending:?} is pending"
            ));
        }
        if producer_id < 0 || (state != TxnState::Dead && producer_epoch < 0) {
            return illegal(format!(
                "transition to producer id {producer_id} epoch {producer_epoch}"
            ));
        }
        if !state.valid_previous().contains(&self.state) {
            return illegal(format!(
                "transition from {:?} to {state:?} is not allowed",
                self.state
            ));
        }
        self.pending_state = Some(state);
        Ok(TxnTransit {
            producer_id,
            last_producer_id: self.producer_id,
            producer_epoch,
            last_producer_epoch,
            txn_timeout_ms,
            state,
            partitions,
            txn_start_timestamp,
            txn_last_update_timestamp: now,
        })
    }

    /// Kafka's `completeTransitionTo`, after the transit's record is replicated. The
    /// checks are invariants of the state machine: a failure is a bug.
    pub fn complete_transition(&mut self, t: &TxnTransit) {
        let id = &self.transactional_id;
        assert_eq!(
            self.pending_state,
            Some(t.state),
            "{id}: completing {:?} without it pending",
            t.state
        );
        let same_producer =
            t.producer_epoch == self.producer_epoch && t.producer_id == self.producer_id;
        match t.state {
            TxnState::Empty => {
                let bump = t.producer_epoch == self.producer_epoch.wrapping_add(1)
                    || (t.producer_epoch == 0 && t.producer_id != self.producer_id);
                assert!(
                    (t.producer_epoch == self.producer_epoch || bump)
                        && t.partitions.is_empty()
                        && t.txn_start_timestamp == -1,
                    "{id}: bad InitProducerId transition {t:?} from {self:?}"
                );
                self.txn_timeout_ms = t.txn_timeout_ms;
                self.producer_epoch = t.producer_epoch;
                self.last_producer_epoch = t.last_producer_epoch;
                self.producer_id = t.producer_id;
                self.last_producer_id = t.last_producer_id;
            }
            TxnState::Ongoing => {
                assert!(
                    same_producer
                        && self.partitions.is_subset(&t.partitions)
                        && self.txn_timeout_ms == t.txn_timeout_ms,
                    "{id}: bad AddPartitions transition {t:?} from {self:?}"
                );
                self.txn_start_timestamp = t.txn_start_timestamp;
                self.partitions.extend(t.partitions.iter().cloned());
            }
            TxnState::PrepareAbort | TxnState::PrepareCommit => {
                assert!(
                    same_producer
                        && self.partitions == t.partitions
                        && self.txn_timeout_ms == t.txn_timeout_ms
                        && self.txn_start_timestamp == t.txn_start_timestamp,
                    "{id}: bad EndTxn transition {t:?} from {self:?}"
                );
            }
            TxnState::CompleteAbort | TxnState::CompleteCommit => {
                assert!(
                    same_producer
                        && self.txn_timeout_ms == t.txn_timeout_ms
                        && t.txn_start_timestamp != -1,
                    "{id}: bad completion transition {t:?} from {self:?}"
                );
                self.txn_start_timestamp = t.txn_start_timestamp;
                self.partitions.clear();
            }
            TxnState::PrepareEpochFence | TxnState::Dead => {
                panic!("{id}: a transition to {:?} is never completed", t.state)
            }
        }
        self.txn_last_update_timestamp = t.txn_last_update_timestamp;
        self.pending_state = None;
        self.state = t.state;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(p: i32) -> BTreeSet<(String, i32)> {
        [("t".to_string(), p)].into()
    }

    /// Prepares a transition on `m` and completes it (its record "replicated").
    macro_rules! step {
        ($m:ident . $f:ident ( $($arg:expr),* )) => {{
            let t = $m.$f($($arg),*).unwrap();
            $m.complete_transition(&t);
            t
        }};
    }

    #[test]
    fn a_full_commit_cycle() {
        let mut m = TxnMetadata::new("t1", 100, 60_000, 1);
        let t = step!(m.prepare_increment_producer_epoch(60_000, None, 2));
        assert_eq!(
            (t.producer_epoch, m.producer_epoch, m.state),
            (0, 0, TxnState::Empty)
        );
        step!(m.prepare_add_partitions(&tp(0), 3));
        assert_eq!((m.state, m.txn_start_timestamp), (TxnState::Ongoing, 3));
        // A second change while one is pending is refused.
        let pending = m.prepare_add_partitions(&tp(1), 4).unwrap();
        assert!(m
            .prepare_abort_or_commit(TxnState::PrepareCommit, 4)
            .is_err());
        m.complete_transition(&pending);
        assert_eq!(m.partitions.len(), 2);
        step!(m.prepare_abort_or_commit(TxnState::PrepareCommit, 5));
        m.remove_partition(&("t".into(), 0));
        let done = step!(m.prepare_complete(6));
        assert_eq!(done.state, TxnState::CompleteCommit);
        assert!(m.partitions.is_empty());
        assert!(m.state.expiration_allowed());
    }

    #[test]
    fn kip_360_epochs() {
        let mut m = TxnMetadata::new("t1", 100, 1000, 0);
        step!(m.prepare_increment_producer_epoch(1000, None, 1));
        step!(m.prepare_increment_producer_epoch(1000, Some(0), 2));
        assert_eq!((m.producer_epoch, m.last_producer_epoch), (1, 0));
        // A retry naming the previous epoch gets the current one back, unbumped.
        let t = m
            .prepare_increment_producer_epoch(1000, Some(0), 3)
            .unwrap();
        assert_eq!((t.producer_epoch, t.last_producer_epoch), (1, 0));
        m.pending_state = None;
        // Any other epoch is fenced.
        assert_eq!(
            m.prepare_increment_producer_epoch(1000, Some(7), 3),
            Err(Error::ProducerFenced)
        );
        // Exhausted epochs rotate the producer id.
        m.producer_epoch = i16::MAX - 1;
        assert!(m.epoch_exhausted());
        let t = m.prepare_producer_id_rotation(200, 1000, 4, true).unwrap();
        assert_eq!(
            (t.producer_id, t.producer_epoch, t.last_producer_epoch),
            (200, 0, i16::MAX - 1)
        );
        m.complete_transition(&t);
        assert_eq!((m.producer_id, m.last_producer_id), (200, 100));
    }

    #[test]
    fn fencing_bumps_once() {
        let mut m = TxnMetadata::new("t1", 100, 1000, 0);
        step!(m.prepare_increment_producer_epoch(1000, None, 1));
        step!(m.prepare_add_partitions(&tp(0), 2));
        let fence = m.prepare_fence_producer_epoch().unwrap();
        assert_eq!(
            (fence.state, fence.producer_epoch),
            (TxnState::PrepareEpochFence, 1)
        );
        m.pending_state = None;
        m.has_failed_epoch_fence = true;
        assert_eq!(m.prepare_fence_producer_epoch().unwrap().producer_epoch, 0);
        // Unknown state ids and names map nowhere.
        assert_eq!(TxnState::from_id(9), None);
        assert_eq!(TxnState::from_name("Ongoing"), Some(TxnState::Ongoing));
        assert!(!TxnState::Ongoing.expiration_allowed());
    }
}
