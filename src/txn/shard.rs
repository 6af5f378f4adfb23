//! The transaction coordinator's state machine for one `__transaction_state` partition
//! (Kafka's `TransactionCoordinator` + `TransactionStateManager` for the transactional
//! ids hashing to it). Pure: the time is passed in, replies go through channels, records
//! come back as [`Append`]s whose continuations run once they are replicated, and the
//! markers to write go to the marker writer's channel.
//!
//! Coordinator epochs: a shard lives for one leader epoch of its partition (a new
//! election builds a new shard), so a continuation that runs at all runs at the epoch its
//! append was made at; the marker writer's reports carry the epoch and are ignored by a
//! newer shard.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::ResponseError as Error;
use tokio::sync::{mpsc, oneshot};

use super::metadata::{TxnMetadata, TxnState, TxnTransit, NO_PRODUCER_EPOCH};
use super::records;
use crate::coordinator::record::Record;

pub type Append = crate::coordinator::Append<TxnShard>;
pub type Reply<T> = oneshot::Sender<T>;
pub type TopicPartition = (String, i32);

/// The coordinator's settings (from `config::txn`).
#[derive(Debug, Clone)]
pub struct TxnShardConfig {
    pub max_timeout_ms: i32,
    pub id_expiration_ms: i64,
    pub abort_timed_out_interval_ms: i64,
    pub remove_expired_interval_ms: i64,
}

/// Markers the writer must deliver: one transaction's outcome to each of its partitions
/// (Kafka's `PendingCompleteTxn` and `TxnMarkerEntry`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkerJob {
    pub transactional_id: String,
    pub txn_partition: i32,
    pub coordinator_epoch: i32,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub commit: bool,
    pub partitions: BTreeSet<TopicPartition>,
}

/// InitProducerId as the shard sees it.
#[derive(Debug, Clone)]
pub struct InitRequest {
    pub transactional_id: String,
    pub timeout_ms: i32,
    /// KIP-360: the producer id and epoch the producer had, if any.
    pub expected: Option<(i64, i16)>,
    /// A fresh producer id, when the previous call asked for one.
    pub new_producer_id: Option<i64>,
}

/// InitProducerId's outcome: (producer id, epoch), an error, or the shard needs a fresh
/// producer id first (the caller allocates one and asks again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitOutcome {
    Ok(i64, i16),
    Failed(Error),
    NeedProducerId,
}

/// DescribeTransactions' answer for one id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Described {
    pub state: TxnState,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    pub start_ms: i64,
    pub partitions: BTreeSet<TopicPartition>,
}

/// ListTransactions' filters (empty = all; `min_duration_ms` < 0 = any).
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub states: BTreeSet<TxnState>,
    pub producer_ids: BTreeSet<i64>,
    pub min_duration_ms: i64,
}

/// Who waits for the end of a transaction: an EndTxn, an InitProducerId that fenced
/// an open transaction (answered CONCURRENT_TRANSACTIONS once the abort is prepared, so
/// it retries), or the coordinator's own timeout abort.
pub enum EndWaiter {
    EndTxn(Reply<Result<(), Error>>),
    InitFence(Reply<InitOutcome>),
    Timeout,
}

impl EndWaiter {
    fn is_client(&self) -> bool {
        matches!(self, EndWaiter::EndTxn(_))
    }

    fn send(self, r: Result<(), Error>) {
        match self {
            EndWaiter::EndTxn(tx) => {
                let _ = tx.send(r);
            }
            EndWaiter::InitFence(tx) => {
                let _ = tx.send(InitOutcome::Failed(
                    r.err().unwrap_or(Error::ConcurrentTransactions),
                ));
            }
            EndWaiter::Timeout => match r {
                Ok(()) => tracing::info!("aborting a timed-out transaction"),
                Err(
                    e @ (Error::InvalidProducerIdMapping
                    | Error::ProducerFenced
                    | Error::ConcurrentTransactions),
                ) => {
                    tracing::debug!(error = %e, "timed-out transaction abort cancelled")
                }
                Err(e) => tracing::warn!(error = %e, "timed-out transaction abort failed"),
            },
        }
    }
}

/// A completion waiting for its markers.
struct PendingCompletion {
    transit: TxnTransit,
    /// The append failed with a retriable error: try again at this time.
    retry_at: Option<i64>,
}

pub struct TxnShard {
    pub partition: i32,
    pub coordinator_epoch: i32,
    config: TxnShardConfig,
    txns: BTreeMap<String, TxnMetadata>,
    completions: BTreeMap<String, PendingCompletion>,
    markers: mpsc::UnboundedSender<MarkerJob>,
    next_abort_check: i64,
    next_expiration_check: i64,
}

/// Kafka's `appendTransactionToLog` error translation (the group coordinator's).
pub use crate::coordinator::coordinator_error;

/// Backoff before retrying a completion record that could not be written.
const COMPLETION_RETRY_MS: i64 = 100;

impl TxnShard {
    pub fn new(
        partition: i32,
        coordinator_epoch: i32,
        config: TxnShardConfig,
        markers: mpsc::UnboundedSender<MarkerJob>,
    ) -> TxnShard {
        TxnShard {
            partition,
            coordinator_epoch,
            config,
            txns: BTreeMap::new(),
            completions: BTreeMap::new(),
            markers,
            next_abort_check: i64::MAX,
            next_expiration_check: i64::MAX,
        }
    }

    pub fn get(&self, transactional_id: &str) -> Option<&TxnMetadata> {
        self.txns.get(transactional_id)
    }

    pub fn len(&self) -> usize {
        self.txns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.txns.is_empty()
    }

    /// Kafka's `validateTransactionTimeoutMs`.
    pub fn valid_timeout(&self, timeout_ms: i32) -> bool {
        timeout_ms > 0 && timeout_ms <= self.config.max_timeout_ms
    }

    // ---------------------------------------------------------------- loading

    /// Replays one record (loading): later records win, a tombstone removes the id.
    pub fn replay(&mut self, key: &[u8], value: Option<&[u8]>, offset: i64) {
        let id = match records::decode_key(key) {
            Ok(Some(id)) => id,
            Ok(None) => {
                tracing::warn!(
                    partition = self.partition,
                    offset,
                    "skipping a record with an unknown key version"
                );
                return;
            }
            Err(e) => {
                tracing::warn!(partition = self.partition, offset, error = %e, "skipping an undecodable key");
                return;
            }
        };
        match value.map(records::decode_value) {
            None => {
                self.txns.remove(&id);
            }
            Some(Ok(v)) => {
                self.txns.insert(id.clone(), TxnMetadata::loaded(&id, v));
            }
            Some(Err(e)) => {
                tracing::error!(partition = self.partition, offset, transactional_id = %id, error = %e, "skipping an undecodable transaction state")
            }
        }
    }

    // ---------------------------------------------------------------- InitProducerId

    /// Kafka's `handleInitProducerId` for a transactional id.
    pub fn init_producer_id(
        &mut self,
        req: InitRequest,
        reply: Reply<InitOutcome>,
        now: i64,
    ) -> Vec<Append> {
        let id = req.transactional_id.clone();
        if !self.txns.contains_key(&id) {
            let Some(pid) = req.new_producer_id else {
                let _ = reply.send(InitOutcome::NeedProducerId);
                return Vec::new();
            };
            self.txns
                .insert(id.clone(), TxnMetadata::new(&id, pid, req.timeout_ms, now));
        }
        let Some(m) = self.txns.get_mut(&id) else {
            return Vec::new();
        };
        let transit = match prepare_init(m, &req, now) {
            Ok(t) => t,
            Err(outcome) => {
                let _ = reply.send(outcome);
                return Vec::new();
            }
        };
        if transit.state == TxnState::PrepareEpochFence {
            // Abort the open transaction first; the producer retries (CONCURRENT_TRANSACTIONS)
            // and gets the epoch bumped a second time.
            return self.end_transaction(
                &id,
                transit.producer_id,
                transit.producer_epoch,
                false,
                EndWaiter::InitFence(reply),
                now,
            );
        }
        let result = (transit.producer_id, transit.producer_epoch);
        vec![self.append_transit(&id, transit, move |shard, id, outcome, _| {
            let _ = reply.send(match outcome {
                Ok(()) => {
                    tracing::info!(transactional_id = %id, producer_id = result.0, epoch = result.1, partition = shard.partition, "initialized transactional id");
                    InitOutcome::Ok(result.0, result.1)
                }
                Err(e) => InitOutcome::Failed(e),
            });
            Vec::new()
        })]
    }

    // ---------------------------------------------------------------- partitions

    /// Kafka's `handleAddPartitionsToTransaction` (AddPartitionsToTxn, AddOffsetsToTxn).
    pub fn add_partitions(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: BTreeSet<TopicPartition>,
        reply: Reply<Result<(), Error>>,
        now: i64,
    ) -> Vec<Append> {
        let Some(m) = self.txns.get_mut(transactional_id) else {
            let _ = reply.send(Err(Error::InvalidProducerIdMapping));
            return Vec::new();
        };
        let refused = if m.producer_id != producer_id {
            Some(Err(Error::InvalidProducerIdMapping))
        } else if m.producer_epoch != producer_epoch {
            Some(Err(Error::ProducerFenced))
        } else if m.pending_transition_in_progress()
            || matches!(m.state, TxnState::PrepareCommit | TxnState::PrepareAbort)
        {
            Some(Err(Error::ConcurrentTransactions))
        } else if m.state == TxnState::Ongoing && partitions.is_subset(&m.partitions) {
            Some(Ok(())) // already in: answer at once
        } else {
            None
        };
        if let Some(r) = refused {
            let _ = reply.send(r);
            return Vec::new();
        }
        let transit = match m.prepare_add_partitions(&partitions, now) {
            Ok(t) => t,
            Err(e) => {
                let _ = reply.send(Err(e));
                return Vec::new();
            }
        };
        vec![
            self.append_transit(transactional_id, transit, move |_, _, outcome, _| {
                let _ = reply.send(outcome);
                Vec::new()
            }),
        ]
    }

    /// Kafka's `handleVerifyPartitionsInTransaction` (AddPartitionsToTxn v4+ verify
    /// only, KIP-890): per partition NONE or TRANSACTION_ABORTABLE. Pending changes are
    /// not checked: the partition's own append is the final check.
    pub fn verify_partitions(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[TopicPartition],
    ) -> Result<Vec<(TopicPartition, Option<Error>)>, Error> {
        let m = self
            .txns
            .get(transactional_id)
            .ok_or(Error::InvalidProducerIdMapping)?;
        if m.producer_id != producer_id {
            return Err(Error::InvalidProducerIdMapping);
        }
        if m.producer_epoch != producer_epoch {
            return Err(Error::ProducerFenced);
        }
        if matches!(m.state, TxnState::PrepareCommit | TxnState::PrepareAbort) {
            return Err(Error::ConcurrentTransactions);
        }
        Ok(partitions
            .iter()
            .map(|tp| {
                let error = (!m.partitions.contains(tp)).then_some(Error::TransactionAbortable);
                (tp.clone(), error)
            })
            .collect())
    }

    // ---------------------------------------------------------------- EndTxn

    /// Kafka's `endTransaction`: EndTxn from a client, or an abort the coordinator starts
    /// (fencing, timeout). Once PrepareCommit/PrepareAbort is replicated the reply goes
    /// out and the markers are handed to the writer.
    pub fn end_transaction(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        reply: EndWaiter,
        now: i64,
    ) -> Vec<Append> {
        let from_client = reply.is_client();
        let invalid_state = |state: TxnState| {
            tracing::debug!(
                transactional_id,
                ?state,
                commit,
                "EndTxn in an incompatible state"
            );
            Err(Error::InvalidTxnState)
        };
        let Some(m) = self.txns.get_mut(transactional_id) else {
            reply.send(Err(Error::InvalidProducerIdMapping));
            return Vec::new();
        };
        let mut is_epoch_fence = false;
        let prepared: Result<TxnTransit, Result<(), Error>> = if m.producer_id != producer_id {
            Err(Err(Error::InvalidProducerIdMapping))
        } else if (from_client && producer_epoch != m.producer_epoch)
            || producer_epoch < m.producer_epoch
        {
            Err(Err(Error::ProducerFenced))
        } else if m.pending_transition_in_progress()
            && m.pending_state != Some(TxnState::PrepareEpochFence)
        {
            Err(Err(Error::ConcurrentTransactions))
        } else {
            match (m.state, commit) {
                (TxnState::Ongoing, _) => {
                    let next = if commit {
                        TxnState::PrepareCommit
                    } else {
                        TxnState::PrepareAbort
                    };
                    if !commit && m.pending_state == Some(TxnState::PrepareEpochFence) {
                        // The fence becomes this abort, at the bumped epoch.
                        is_epoch_fence = true;
                        m.pending_state = None;
                        m.producer_epoch = producer_epoch;
                        m.last_producer_epoch = NO_PRODUCER_EPOCH;
                    }
                    m.prepare_abort_or_commit(next, now).map_err(Err)
                }
                (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => Err(Ok(())),
                (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
                    Err(Err(Error::ConcurrentTransactions))
                }
                (
                    s @ (TxnState::CompleteCommit
                    | TxnState::CompleteAbort
                    | TxnState::PrepareCommit
                    | TxnState::PrepareAbort
                    | TxnState::Empty),
                    _,
                ) => Err(invalid_state(s)),
                (s @ (TxnState::Dead | TxnState::PrepareEpochFence), _) => {
                    tracing::error!(transactional_id, state = ?s, "transaction in a state it never settles in");
                    Err(Err(Error::UnknownServerError))
                }
            }
        };
        let transit = match prepared {
            Ok(t) => t,
            Err(r) => {
                reply.send(r);
                return Vec::new();
            }
        };
        vec![self.append_transit(transactional_id, transit, move |shard, id, outcome, now| {
            match outcome {
                Ok(()) => shard.send_markers(id, producer_id, producer_epoch, commit, reply, now),
                Err(e) => {
                    if is_epoch_fence {
                        if let Some(m) = shard.txns.get_mut(id) {
                            m.has_failed_epoch_fence = true;
                            tracing::warn!(transactional_id = %id, error = %e, "the epoch fence was not written; the bumped epoch was never returned");
                        }
                    }
                    reply.send(Err(e));
                    Vec::new()
                }
            }
        })]
    }

    /// PrepareCommit/PrepareAbort is replicated: answer the client and hand the markers to
    /// the writer (Kafka's `sendTxnMarkersCallback`).
    fn send_markers(
        &mut self,
        id: &str,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        reply: EndWaiter,
        now: i64,
    ) -> Vec<Append> {
        let Some(m) = self.txns.get_mut(id) else {
            reply.send(Err(Error::NotCoordinator));
            return Vec::new();
        };
        let expected = if commit {
            TxnState::PrepareCommit
        } else {
            TxnState::PrepareAbort
        };
        let error = if m.producer_id != producer_id {
            Some(Error::InvalidProducerIdMapping)
        } else if m.producer_epoch != producer_epoch {
            Some(Error::ProducerFenced)
        } else if m.pending_transition_in_progress() {
            Some(Error::ConcurrentTransactions)
        } else if m.state != expected {
            Some(Error::InvalidTxnState)
        } else {
            None
        };
        if let Some(e) = error {
            reply.send(Err(e));
            return Vec::new();
        }
        let transit = match m.prepare_complete(now) {
            Ok(t) => t,
            Err(e) => {
                reply.send(Err(e));
                return Vec::new();
            }
        };
        reply.send(Ok(()));
        self.start_completion(id, transit, now)
    }

    /// Hands a prepared completion's markers to the writer; with no partition left the
    /// completion record is written at once (Kafka's `addTxnMarkersToSend`).
    fn start_completion(&mut self, id: &str, transit: TxnTransit, now: i64) -> Vec<Append> {
        let Some(m) = self.txns.get(id) else {
            return Vec::new();
        };
        let job = MarkerJob {
            transactional_id: id.to_string(),
            txn_partition: self.partition,
            coordinator_epoch: self.coordinator_epoch,
            producer_id: m.producer_id,
            producer_epoch: m.producer_epoch,
            commit: transit.state == TxnState::CompleteCommit,
            partitions: m.partitions.clone(),
        };
        self.completions.insert(
            id.to_string(),
            PendingCompletion {
                transit,
                retry_at: None,
            },
        );
        if job.partitions.is_empty() {
            return self.maybe_write_completion(id, now);
        }
        if self.markers.send(job).is_err() {
            tracing::error!(transactional_id = %id, "the marker writer is gone");
        }
        Vec::new()
    }

    /// The writer delivered the markers of `done` (Kafka's `removePartition` on each
    /// success); the completion record follows the last one.
    pub fn markers_written(
        &mut self,
        job: &MarkerJob,
        done: &[TopicPartition],
        now: i64,
    ) -> Vec<Append> {
        if !self.job_is_current(job) {
            return Vec::new();
        }
        if let Some(m) = self.txns.get_mut(&job.transactional_id) {
            for tp in done {
                m.remove_partition(tp);
            }
        }
        self.maybe_write_completion(&job.transactional_id, now)
    }

    /// Whether `job` still describes this shard's pending completion of its transaction.
    pub fn job_is_current(&self, job: &MarkerJob) -> bool {
        job.coordinator_epoch == self.coordinator_epoch
            && self.completions.contains_key(&job.transactional_id)
            && self.txns.get(&job.transactional_id).is_some_and(|m| {
                m.producer_id == job.producer_id
                    && m.producer_epoch == job.producer_epoch
                    && matches!(m.state, TxnState::PrepareCommit | TxnState::PrepareAbort)
            })
    }

    /// The writer gave up on a job (a marker was fenced by a newer producer or
    /// coordinator epoch): the transaction stays prepared, as in Kafka, until the
    /// partition is loaded again.
    pub fn markers_abandoned(&mut self, job: &MarkerJob) {
        if self.job_is_current(job) {
            tracing::warn!(transactional_id = %job.transactional_id, "transaction markers were fenced; the transaction completes when its coordinator reloads");
            self.completions.remove(&job.transactional_id);
        }
    }

    /// Kafka's `maybeWriteTxnCompletion`: once no partition waits for a marker, write
    /// CompleteCommit/CompleteAbort (retried while the log is unavailable).
    fn maybe_write_completion(&mut self, id: &str, now: i64) -> Vec<Append> {
        let ready = self.txns.get(id).is_some_and(|m| m.partitions.is_empty());
        let Some(pending) = self.completions.get_mut(id) else {
            return Vec::new();
        };
        if !ready || pending.retry_at.is_some_and(|at| at > now) {
            return Vec::new();
        }
        pending.retry_at = None;
        let transit = pending.transit.clone();
        let record = completion_record(id, &transit);
        let id = id.to_string();
        vec![Append::new(
            vec![record],
            move |shard: &mut TxnShard, outcome, now| {
                match outcome.map_err(coordinator_error) {
                    Ok(_) => {
                        shard.completions.remove(&id);
                        if let Some(m) = shard.txns.get_mut(&id) {
                            m.complete_transition(&transit);
                            tracing::debug!(transactional_id = %id, state = m.state.name(), "transaction completed");
                        }
                    }
                    Err(Error::CoordinatorNotAvailable) => {
                        if let Some(p) = shard.completions.get_mut(&id) {
                            p.retry_at = Some(now + COMPLETION_RETRY_MS);
                        }
                    }
                    Err(e) => {
                        tracing::info!(error = %e, "not writing a transaction completion");
                    }
                }
                Vec::new()
            },
        )]
    }

    // ---------------------------------------------------------------- appends

    /// The append of `transit`'s record; `then` runs with the outcome (Kafka's
    /// `appendTransactionToLog` + its callback: the metadata completes the transition on
    /// success, drops the pending state on failure).
    fn append_transit(
        &mut self,
        id: &str,
        transit: TxnTransit,
        then: impl FnOnce(&mut TxnShard, &str, Result<(), Error>, i64) -> Vec<Append> + Send + 'static,
    ) -> Append {
        let record = Record {
            key: records::key(id),
            value: Some(records::value(&transit)),
        };
        let id = id.to_string();
        Append::new(vec![record], move |shard: &mut TxnShard, outcome, now| {
            let outcome = outcome.map(|_| ()).map_err(coordinator_error);
            let outcome = match (shard.txns.get_mut(&id), outcome) {
                (Some(m), Ok(())) => {
                    m.complete_transition(&transit);
                    Ok(())
                }
                (Some(m), Err(e)) => {
                    m.pending_state = None;
                    Err(e)
                }
                (None, _) => Err(Error::NotCoordinator),
            };
            then(shard, &id, outcome, now)
        })
    }
}

/// The completion record of `id`.
fn completion_record(id: &str, transit: &TxnTransit) -> Record {
    Record {
        key: records::key(id),
        value: Some(records::value(transit)),
    }
}

/// Kafka's `prepareInitProducerIdTransit`.
fn prepare_init(
    m: &mut TxnMetadata,
    req: &InitRequest,
    now: i64,
) -> Result<TxnTransit, InitOutcome> {
    let failed = |e| Err(InitOutcome::Failed(e));
    if m.pending_transition_in_progress() {
        return failed(Error::ConcurrentTransactions);
    }
    // KIP-360: the producer id must be this one, unless the metadata was just created
    // or the producer retries after a rotation it never saw.
    if let Some((pid, epoch)) = req.expected {
        let valid = m.producer_epoch == NO_PRODUCER_EPOCH
            || pid == m.producer_id
            || (pid == m.last_producer_id && super::metadata::epoch_exhausted(epoch));
        if !valid {
            return failed(Error::ProducerFenced);
        }
    }
    match m.state {
        TxnState::PrepareAbort | TxnState::PrepareCommit => failed(Error::ConcurrentTransactions),
        TxnState::CompleteAbort | TxnState::CompleteCommit | TxnState::Empty => {
            let rotate = m.epoch_exhausted()
                && req
                    .expected
                    .is_none_or(|(_, epoch)| epoch == m.producer_epoch);
            let r = if rotate {
                let Some(new_pid) = req.new_producer_id.filter(|p| *p != m.producer_id) else {
                    return Err(InitOutcome::NeedProducerId);
                };
                m.prepare_producer_id_rotation(new_pid, req.timeout_ms, now, req.expected.is_some())
            } else {
                m.prepare_increment_producer_epoch(
                    req.timeout_ms,
                    req.expected.map(|(_, e)| e),
                    now,
                )
            };
            r.map_err(InitOutcome::Failed)
        }
        TxnState::Ongoing => m
            .prepare_fence_producer_epoch()
            .map_err(InitOutcome::Failed),
        TxnState::Dead | TxnState::PrepareEpochFence => {
            tracing::error!(transactional_id = %m.transactional_id, state = ?m.state, "transaction in a state it never settles in");
            failed(Error::UnknownServerError)
        }
    }
}

impl TxnShard {
    // ---------------------------------------------------------------- admin

    /// Kafka's `handleDescribeTransactions` for one id (a Dead id is gone).
    pub fn describe(&self, transactional_id: &str) -> Result<Described, Error> {
        let m = self
            .txns
            .get(transactional_id)
            .filter(|m| m.state != TxnState::Dead)
            .ok_or(Error::TransactionalIdNotFound)?;
        Ok(Described {
            state: m.state,
            producer_id: m.producer_id,
            producer_epoch: m.producer_epoch,
            timeout_ms: m.txn_timeout_ms,
            start_ms: m.txn_start_timestamp,
            partitions: m.partitions.clone(),
        })
    }

    /// Kafka's `listTransactionStates`: (id, producer id, state) of the matching ids.
    pub fn list(&self, filter: &ListFilter, now: i64) -> Vec<(String, i64, TxnState)> {
        self.txns
            .values()
            .filter(|m| m.state != TxnState::Dead)
            .filter(|m| {
                filter.producer_ids.is_empty() || filter.producer_ids.contains(&m.producer_id)
            })
            .filter(|m| filter.states.is_empty() || filter.states.contains(&m.state))
            .filter(|m| {
                filter.min_duration_ms < 0 || now - m.txn_start_timestamp > filter.min_duration_ms
            })
            .map(|m| (m.transactional_id.clone(), m.producer_id, m.state))
            .collect()
    }

    // ---------------------------------------------------------------- timers

    /// Kafka's `abortTimedOutTransactions`: an Ongoing transaction past its timeout is
    /// fenced (epoch bump) and aborted.
    fn abort_timed_out(&mut self, now: i64) -> Vec<Append> {
        let timed_out: Vec<(String, i64)> = self
            .txns
            .values()
            .filter(|m| {
                !m.pending_transition_in_progress()
                    && m.state == TxnState::Ongoing
                    && m.txn_start_timestamp + (m.txn_timeout_ms as i64) < now
            })
            .map(|m| (m.transactional_id.clone(), m.producer_id))
            .collect();
        let mut out = Vec::new();
        for (id, pid) in timed_out {
            let Some(m) = self.txns.get_mut(&id) else {
                continue;
            };
            let Ok(fence) = m.prepare_fence_producer_epoch() else {
                continue;
            };
            tracing::info!(transactional_id = %id, producer_id = pid, epoch = fence.producer_epoch, "transaction timed out; aborting it");
            out.extend(self.end_transaction(
                &id,
                fence.producer_id,
                fence.producer_epoch,
                false,
                EndWaiter::Timeout,
                now,
            ));
        }
        out
    }

    /// Kafka's `removeExpiredTransactionalIds`: ids idle for transactional.id.expiration.ms
    /// in Empty/CompleteCommit/CompleteAbort get a tombstone and are forgotten.
    fn expire_transactional_ids(&mut self, now: i64) -> Vec<Append> {
        let horizon = now - self.config.id_expiration_ms;
        let expired: Vec<String> = self
            .txns
            .values()
            .filter(|m| {
                m.pending_state.is_none()
                    && m.state.expiration_allowed()
                    && m.txn_last_update_timestamp <= horizon
            })
            .map(|m| m.transactional_id.clone())
            .collect();
        let mut out = Vec::new();
        for id in expired {
            let Some(m) = self.txns.get_mut(&id) else {
                continue;
            };
            let Ok(dead) = m.prepare_dead() else {
                continue;
            };
            let tombstone = Record {
                key: records::key(&id),
                value: None,
            };
            out.push(Append::new(vec![tombstone], move |shard: &mut TxnShard, outcome, _| {
                match shard.txns.get_mut(&id) {
                    Some(m)
                        if outcome.is_ok()
                            && m.pending_state == Some(TxnState::Dead)
                            && m.producer_epoch == dead.producer_epoch =>
                    {
                        tracing::info!(transactional_id = %id, "transactional id expired");
                        shard.txns.remove(&id);
                    }
                    Some(m) => {
                        tracing::warn!(transactional_id = %id, ?outcome, "could not expire the transactional id");
                        m.pending_state = None;
                    }
                    None => {}
                }
                Vec::new()
            }));
        }
        out
    }

    /// Completions whose record write failed and are due again.
    fn retry_completions(&mut self, now: i64) -> Vec<Append> {
        let due: Vec<String> = self
            .completions
            .iter()
            .filter(|(_, p)| p.retry_at.is_some_and(|at| at <= now))
            .map(|(id, _)| id.clone())
            .collect();
        due.into_iter()
            .flat_map(|id| self.maybe_write_completion(&id, now))
            .collect()
    }
}

impl crate::coordinator::CoordinatorShard for TxnShard {
    /// Kafka's `loadTransactionsForTxnTopicPartition` tail: prepared transactions get
    /// their markers (again) and complete.
    fn finish_loading(&mut self, now: i64) -> Vec<Append> {
        self.next_abort_check = now + self.config.abort_timed_out_interval_ms;
        self.next_expiration_check = now + self.config.remove_expired_interval_ms;
        let prepared: Vec<String> = self
            .txns
            .values()
            .filter(|m| matches!(m.state, TxnState::PrepareCommit | TxnState::PrepareAbort))
            .map(|m| m.transactional_id.clone())
            .collect();
        let mut out = Vec::new();
        for id in prepared {
            let Some(m) = self.txns.get_mut(&id) else {
                continue;
            };
            match m.prepare_complete(now) {
                Ok(t) => {
                    tracing::info!(transactional_id = %id, state = m.state.name(), partitions = m.partitions.len(), "resuming transaction markers after loading");
                    out.extend(self.start_completion(&id, t, now));
                }
                Err(e) => {
                    tracing::error!(transactional_id = %id, error = %e, "cannot resume a prepared transaction")
                }
            }
        }
        tracing::info!(
            partition = self.partition,
            epoch = self.coordinator_epoch,
            transactional_ids = self.txns.len(),
            "loaded transaction state"
        );
        out
    }

    fn unload(&mut self, _now: i64) {
        self.txns.clear();
        self.completions.clear();
    }

    fn next_deadline(&self) -> Option<i64> {
        let retry = self.completions.values().filter_map(|p| p.retry_at).min();
        [
            Some(self.next_abort_check),
            Some(self.next_expiration_check),
            retry,
        ]
        .into_iter()
        .flatten()
        .min()
        .filter(|d| *d < i64::MAX)
    }

    fn poll_timers(&mut self, now: i64) -> Vec<Append> {
        let mut out = self.retry_completions(now);
        if now >= self.next_abort_check {
            self.next_abort_check = now + self.config.abort_timed_out_interval_ms;
            out.extend(self.abort_timed_out(now));
        }
        if now >= self.next_expiration_check {
            self.next_expiration_check = now + self.config.remove_expired_interval_ms;
            out.extend(self.expire_transactional_ids(now));
        }
        out
    }
}
