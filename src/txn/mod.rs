//! The transaction coordinator (Kafka 3.9's `TransactionCoordinator`). The coordinator of
//! a transactional id is the leader of partition `abs(javaHash(id)) % partitions` of the
//! compacted internal topic `__transaction_state`; each id's state is a record there.
//!
//! - [`metadata`]: one id's state machine (Empty, Ongoing, PrepareCommit, PrepareAbort,
//!   CompleteCommit, CompleteAbort, PrepareEpochFence, Dead), epochs and fencing;
//! - [`shard`]: the pure state manager of one partition's ids (InitProducerId,
//!   AddPartitions, EndTxn, verification, timeouts, expiration, loading);
//! - [`records`]: Kafka's `TransactionLogKey`/`TransactionLogValue` schemas;
//! - [`markers`]: WriteTxnMarkers on both sides (the writer retries until every
//!   partition of a transaction has its marker, also after a coordinator failover);
//! - this module: the coordinator over the shared [`crate::coordinator`] runtime, and the
//!   calls the API handlers make.

pub mod markers;
pub mod metadata;
pub mod records;
pub mod shard;
#[cfg(test)]
mod shard_tests;
pub mod verify;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::ResponseError as Error;
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::BrokerConfig;
use crate::coordination::producer_ids::ProducerIdManager;
use crate::coordination::ClusterImage;
use crate::coordinator::loader::{replay, Loaded};
use crate::coordinator::Runtime;
use crate::replica::{Partition, ReplicaManager};
use crate::tasks::Tasks;
use markers::{MarkerOwner, MarkerTarget, MarkerWriter};
use shard::{
    Described, EndWaiter, InitOutcome, InitRequest, ListFilter, MarkerJob, TopicPartition,
    TxnShard, TxnShardConfig,
};

/// Kafka's `Topic.TRANSACTION_STATE_TOPIC_NAME`.
pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";

/// The `__transaction_state` partition of a transactional id (Kafka's `partitionFor`,
/// the same hash as groups).
pub fn partition_for(transactional_id: &str, partitions: i32) -> i32 {
    crate::group::partition_for(transactional_id, partitions)
}

pub struct TransactionCoordinator {
    config: Arc<BrokerConfig>,
    image: watch::Receiver<Arc<ClusterImage>>,
    runtime: Arc<Runtime<TxnShard>>,
    producer_ids: Arc<ProducerIdManager>,
    writer: Arc<MarkerWriter>,
    verifier: verify::Verifier,
}

impl TransactionCoordinator {
    /// Creates the coordinator, its marker writer, and starts following
    /// `__transaction_state` leadership.
    pub fn start(
        config: Arc<BrokerConfig>,
        replicas: Arc<ReplicaManager>,
        image: watch::Receiver<Arc<ClusterImage>>,
        groups: Arc<crate::group::GroupCoordinator>,
        producer_ids: Arc<ProducerIdManager>,
        tasks: &Tasks,
    ) -> Arc<TransactionCoordinator> {
        let (jobs_tx, jobs_rx) = mpsc::unbounded_channel();
        let shard_config = TxnShardConfig {
            max_timeout_ms: config.txn.max_timeout_ms,
            id_expiration_ms: config.txn.id_expiration_ms,
            abort_timed_out_interval_ms: config.txn.abort_timed_out_interval_ms,
            remove_expired_interval_ms: config.txn.remove_expired_interval_ms,
        };
        let runtime = Runtime::start(
            TRANSACTION_STATE_TOPIC,
            replicas.clone(),
            Duration::from_millis(config.request_timeout_ms),
            Box::new(move |p, epoch, replica: &Partition| {
                load_shard(p, epoch, replica, shard_config.clone(), jobs_tx.clone())
            }),
            tasks,
        );
        let target = Arc::new(MarkerTarget {
            replicas,
            groups,
            timeout: Duration::from_millis(config.request_timeout_ms),
        });
        let coordinator = Arc::new(TransactionCoordinator {
            writer: MarkerWriter::new(config.clone(), image.clone(), target, tasks),
            config,
            image,
            runtime,
            producer_ids,
            verifier: verify::Verifier::default(),
        });
        tasks.spawn(job_loop(coordinator.clone(), jobs_rx, tasks.clone()));
        coordinator
    }

    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    /// `transaction.partition.verification.enable`.
    pub fn verification_enabled(&self) -> bool {
        self.config.txn.partition_verification_enable
    }

    /// Where leaders write markers (the WriteTxnMarkers handler).
    pub fn marker_target(&self) -> &Arc<MarkerTarget> {
        self.writer.local()
    }

    /// Partitions of `__transaction_state`: the topic's if it exists, else the config's.
    pub fn num_partitions(&self) -> i32 {
        self.image
            .borrow()
            .topic(TRANSACTION_STATE_TOPIC)
            .map(|t| t.partitions.len() as i32)
            .filter(|n| *n > 0)
            .unwrap_or(self.config.txn.state_log_num_partitions)
    }

    pub fn partition_for(&self, transactional_id: &str) -> i32 {
        partition_for(transactional_id, self.num_partitions())
    }

    fn run<R>(
        &self,
        transactional_id: &str,
        op: impl FnOnce(&mut TxnShard, i64) -> (R, Vec<shard::Append>),
    ) -> Result<R, Error> {
        self.runtime
            .run_on(self.partition_for(transactional_id), op)
    }

    /// Waits for a shard's reply; a dropped reply means the shard was unloaded.
    async fn answer<T>(rx: oneshot::Receiver<T>) -> Result<T, Error> {
        rx.await.map_err(|_| Error::NotCoordinator)
    }

    /// InitProducerId with a transactional id (Kafka's `handleInitProducerId`).
    pub async fn init_producer_id(
        &self,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
    ) -> Result<(i64, i16), Error> {
        if transactional_id.is_empty() {
            return Err(Error::InvalidRequest);
        }
        if timeout_ms <= 0 || timeout_ms > self.config.txn.max_timeout_ms {
            return Err(Error::InvalidTransactionTimeout);
        }
        let mut new_producer_id = None;
        // At most twice: the second time with the fresh producer id the shard asked for.
        for _ in 0..2 {
            let (tx, rx) = oneshot::channel();
            let req = InitRequest {
                transactional_id: transactional_id.to_string(),
                timeout_ms,
                expected,
                new_producer_id,
            };
            self.run(transactional_id, |s, now| {
                ((), s.init_producer_id(req, tx, now))
            })?;
            match Self::answer(rx).await? {
                InitOutcome::Ok(pid, epoch) => return Ok((pid, epoch)),
                InitOutcome::Failed(e) => return Err(e),
                InitOutcome::NeedProducerId => {
                    let pid = self.producer_ids.next_id().await.map_err(|e| {
                        tracing::warn!(error = %e, "cannot allocate a producer id");
                        Error::CoordinatorNotAvailable
                    })?;
                    new_producer_id = Some(pid);
                }
            }
        }
        Err(Error::ConcurrentTransactions)
    }

    /// AddPartitionsToTxn (client versions) and AddOffsetsToTxn.
    pub async fn add_partitions(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: BTreeSet<TopicPartition>,
    ) -> Result<(), Error> {
        if transactional_id.is_empty() {
            return Err(Error::InvalidRequest);
        }
        let (tx, rx) = oneshot::channel();
        self.run(transactional_id, |s, now| {
            (
                (),
                s.add_partitions(
                    transactional_id,
                    producer_id,
                    producer_epoch,
                    partitions,
                    tx,
                    now,
                ),
            )
        })?;
        Self::answer(rx).await?
    }

    /// AddPartitionsToTxn v4+ with `verify_only` (KIP-890).
    pub fn verify_partitions(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[TopicPartition],
    ) -> Result<Vec<(TopicPartition, Option<Error>)>, Error> {
        if transactional_id.is_empty() {
            return Err(Error::InvalidRequest);
        }
        self.run(transactional_id, |s, _| {
            (
                s.verify_partitions(transactional_id, producer_id, producer_epoch, partitions),
                Vec::new(),
            )
        })?
    }

    /// EndTxn (Kafka's `handleEndTransaction`).
    pub async fn end_txn(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
    ) -> Result<(), Error> {
        if transactional_id.is_empty() {
            return Err(Error::InvalidRequest);
        }
        let (tx, rx) = oneshot::channel();
        self.run(transactional_id, |s, now| {
            (
                (),
                s.end_transaction(
                    transactional_id,
                    producer_id,
                    producer_epoch,
                    commit,
                    EndWaiter::EndTxn(tx),
                    now,
                ),
            )
        })?;
        Self::answer(rx).await?
    }

    /// DescribeTransactions for one id.
    pub fn describe(&self, transactional_id: &str) -> Result<Described, Error> {
        if transactional_id.is_empty() {
            return Err(Error::InvalidRequest);
        }
        self.run(transactional_id, |s, _| {
            (s.describe(transactional_id), Vec::new())
        })?
    }

    /// ListTransactions over every partition led here: COORDINATOR_LOAD_IN_PROGRESS
    /// while one loads.
    pub fn list(&self, filter: &ListFilter) -> Result<Vec<(String, i64, String)>, Error> {
        let mut out = Vec::new();
        for shard in self.runtime.shards() {
            let listed = self
                .runtime
                .run(&shard, |s, now| (s.list(filter, now), Vec::new()))
                .or_else(|e| match e {
                    Error::NotCoordinator => Ok(Vec::new()), // resigned meanwhile
                    e => Err(e),
                })?;
            out.extend(
                listed
                    .into_iter()
                    .map(|(id, pid, state)| (id, pid, state.name().to_string())),
            );
        }
        Ok(out)
    }
}

impl MarkerOwner for TransactionCoordinator {
    fn job_is_current(&self, job: &MarkerJob) -> bool {
        self.runtime
            .run_on(job.txn_partition, |s, _| {
                (s.job_is_current(job), Vec::new())
            })
            .unwrap_or(false)
    }

    fn markers_written(&self, job: &MarkerJob, done: Vec<TopicPartition>) {
        let _ = self.runtime.run_on(job.txn_partition, |s, now| {
            ((), s.markers_written(job, &done, now))
        });
    }

    fn markers_abandoned(&self, job: &MarkerJob) {
        let _ = self.runtime.run_on(job.txn_partition, |s, _| {
            s.markers_abandoned(job);
            ((), Vec::new())
        });
    }
}

/// Starts a driver for every marker job the shards emit.
async fn job_loop(
    coordinator: Arc<TransactionCoordinator>,
    mut jobs: mpsc::UnboundedReceiver<MarkerJob>,
    tasks: Tasks,
) {
    while let Some(job) = jobs.recv().await {
        let owner: Arc<dyn MarkerOwner> = coordinator.clone();
        tasks.spawn(markers::drive_job(coordinator.writer.clone(), owner, job));
    }
}

/// Rebuilds a shard from its partition's log (Kafka's `loadTransactionMetadata`).
fn load_shard(
    p: i32,
    epoch: i32,
    replica: &Partition,
    config: TxnShardConfig,
    jobs: mpsc::UnboundedSender<MarkerJob>,
) -> Result<TxnShard, String> {
    let mut s = TxnShard::new(p, epoch, config, jobs);
    let records = replay(TRANSACTION_STATE_TOPIC, p, replica, |loaded, _| {
        if let Loaded::Records { records, .. } = loaded {
            for rec in records {
                match &rec.key {
                    Some(key) => s.replay(key, rec.value.as_deref(), rec.offset),
                    None => tracing::warn!(
                        partition = p,
                        offset = rec.offset,
                        "skipping a keyless __transaction_state record"
                    ),
                }
            }
        }
    })?;
    tracing::debug!(
        partition = p,
        records,
        "replayed __transaction_state records"
    );
    Ok(s)
}
