//! Transaction markers on the wire (Kafka's `TransactionMarkerChannelManager` and the
//! broker side of WriteTxnMarkers).
//!
//! - [`write_local`]: what a partition leader does with markers — appends the control
//!   batch to each partition it leads, waits until it is replicated (acks=all), and for
//!   `__consumer_offsets` partitions lets the group coordinator materialize or drop the
//!   transaction's offsets. The WriteTxnMarkers handler and the local sender use it.
//! - [`MarkerWriter`]: the coordinator's sender. One task per destination broker batches
//!   the markers queued for it into WriteTxnMarkers requests (markers for partitions
//!   this broker leads skip the network); one task per transaction re-resolves the
//!   leaders and retries until every partition has its marker, then reports to the shard,
//!   which writes the completion record.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{ProducerId, TopicName, WriteTxnMarkersRequest};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError as Error;
use tokio::sync::{mpsc, oneshot, watch};

use super::shard::{MarkerJob, TopicPartition};
use crate::client::KafkaConnection;
use crate::config::BrokerConfig;
use crate::coordination::{ClusterImage, OFFSETS_TOPIC};
use crate::group::GroupCoordinator;
use crate::replica::errors::partition_error;
use crate::replica::ReplicaManager;
use crate::storage::control::Marker;
use crate::tasks::Tasks;

/// The WriteTxnMarkers version brokers send (v0 is the same without flexible fields).
pub const WRITE_TXN_MARKERS_VERSION: i16 = 1;

/// One marker entry: a producer's outcome for some partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkerEntry {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub coordinator_epoch: i32,
    pub commit: bool,
    pub partitions: BTreeSet<TopicPartition>,
}

/// Per partition of an entry: `None` = written and replicated.
pub type MarkerResult = Vec<(TopicPartition, Option<Error>)>;

/// What a leader needs to write markers.
pub struct MarkerTarget {
    pub replicas: Arc<ReplicaManager>,
    pub groups: Arc<GroupCoordinator>,
    pub timeout: Duration,
}

/// Writes every entry's markers to the partitions this broker leads (Kafka's
/// `handleWriteTxnMarkersRequest`): one result per entry, in order.
pub async fn write_local(target: &MarkerTarget, entries: Vec<MarkerEntry>) -> Vec<MarkerResult> {
    let now = crate::clock::now_ms();
    let deadline = tokio::time::Instant::now() + target.timeout;
    let mut waits = Vec::new();
    let mut results: Vec<MarkerResult> = Vec::with_capacity(entries.len());
    // Append every marker first (one I/O-pool job), then wait for all replications.
    let mut jobs = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        results.push(Vec::new());
        let marker = Marker {
            producer_id: e.producer_id,
            producer_epoch: e.producer_epoch,
            coordinator_epoch: e.coordinator_epoch,
            commit: e.commit,
        };
        for tp in &e.partitions {
            match target.replicas.partition(&tp.0, tp.1) {
                Some(p) => jobs.push((i, tp.clone(), p, marker)),
                None => results[i].push((tp.clone(), Some(Error::UnknownTopicOrPartition))),
            }
        }
    }
    let appended = target
        .replicas
        .io
        .run(move || {
            jobs.into_iter()
                .map(|(i, tp, p, m)| {
                    let r = p.append_marker(&m, now);
                    (i, tp, p, m, r)
                })
                .collect::<Vec<_>>()
        })
        .await;
    for (i, tp, p, m, r) in appended {
        match r {
            Ok((a, epoch)) => waits.push(async move {
                let r = p
                    .wait_for_replication(a.last_offset + 1, epoch, deadline)
                    .await;
                (i, tp, m, r)
            }),
            Err(err) => results[i].push((tp, Some(partition_error(&err)))),
        }
    }
    for (i, tp, m, r) in futures::future::join_all(waits).await {
        match r {
            Ok(()) => {
                if tp.0 == OFFSETS_TOPIC {
                    complete_offsets(&target.groups, tp.1, &m, deadline).await;
                }
                results[i].push((tp, None));
            }
            Err(err) => results[i].push((tp, Some(partition_error(&err)))),
        }
    }
    results
}

/// The marker reached `__consumer_offsets` partition `p` (Kafka's
/// `onTransactionCompleted`). While the group shard loads it is retried: the loader may
/// have read the log before the marker.
async fn complete_offsets(
    groups: &GroupCoordinator,
    p: i32,
    m: &Marker,
    deadline: tokio::time::Instant,
) {
    loop {
        let r = groups.shard(p).and_then(|s| {
            groups.run(&s, |gs, _| {
                gs.complete_txn_offsets(m.producer_id, m.commit);
                ((), Vec::new())
            })
        });
        match r {
            Err(Error::CoordinatorLoadInProgress) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            _ => return,
        }
    }
}

// ---------------------------------------------------------------- the writer

/// A marker queued for a destination broker, with who waits for its result.
struct Queued {
    entry: MarkerEntry,
    reply: oneshot::Sender<Result<MarkerResult, String>>,
}

/// Most markers in one WriteTxnMarkers request.
const MAX_MARKERS_PER_REQUEST: usize = 500;

pub struct MarkerWriter {
    config: Arc<BrokerConfig>,
    image: watch::Receiver<Arc<ClusterImage>>,
    local: Arc<MarkerTarget>,
    queues: Mutex<HashMap<i32, mpsc::UnboundedSender<Queued>>>,
    tasks: Tasks,
}

impl MarkerWriter {
    pub fn new(
        config: Arc<BrokerConfig>,
        image: watch::Receiver<Arc<ClusterImage>>,
        local: Arc<MarkerTarget>,
        tasks: &Tasks,
    ) -> Arc<MarkerWriter> {
        Arc::new(MarkerWriter {
            config,
            image,
            local,
            queues: Mutex::new(HashMap::new()),
            tasks: tasks.clone(),
        })
    }

    pub fn local(&self) -> &Arc<MarkerTarget> {
        &self.local
    }

    /// Sends `entry` to broker `dest` (batched with other markers queued for it).
    async fn send(self: &Arc<Self>, dest: i32, entry: MarkerEntry) -> Result<MarkerResult, String> {
        let (tx, rx) = oneshot::channel();
        let queued = Queued { entry, reply: tx };
        {
            let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
            let sender = queues.entry(dest).or_insert_with(|| {
                let (tx, rx) = mpsc::unbounded_channel();
                self.tasks.spawn(broker_sender(self.clone(), dest, rx));
                tx
            });
            if let Err(mpsc::error::SendError(q)) = sender.send(queued) {
                // The sender task ended: start a new one.
                let (tx, rx) = mpsc::unbounded_channel();
                self.tasks.spawn(broker_sender(self.clone(), dest, rx));
                let _ = tx.send(q);
                *sender = tx;
            }
        }
        rx.await
            .unwrap_or_else(|_| Err("marker sender stopped".into()))
    }

    /// The current leader of each partition: `Ok(Some(broker))`, `Ok(None)` when the
    /// partition is gone from the metadata (deleted: its marker is not needed, as in
    /// Kafka), `Err` while it has no live leader.
    fn leaders(
        &self,
        partitions: &BTreeSet<TopicPartition>,
    ) -> Vec<(TopicPartition, Result<Option<i32>, ()>)> {
        let image = self.image.borrow().clone();
        partitions
            .iter()
            .map(|tp| {
                let leader = match image.partition(&tp.0, tp.1) {
                    None if image.loaded => Ok(None),
                    None => Err(()),
                    Some(info) => match info.state.as_ref().map(|s| s.leader) {
                        Some(l) if l >= 0 && image.is_alive(l) => Ok(Some(l)),
                        _ => Err(()),
                    },
                };
                (tp.clone(), leader)
            })
            .collect()
    }
}

/// What the writer needs of the coordinator.
pub trait MarkerOwner: Send + Sync + 'static {
    /// Whether the job is still the shard's pending completion.
    fn job_is_current(&self, job: &MarkerJob) -> bool;
    fn markers_written(&self, job: &MarkerJob, done: Vec<TopicPartition>);
    fn markers_abandoned(&self, job: &MarkerJob);
}

/// Delivers one transaction's markers, retrying (with new leaders) until every partition
/// has its marker or the job stops being current.
pub async fn drive_job(writer: Arc<MarkerWriter>, owner: Arc<dyn MarkerOwner>, job: MarkerJob) {
    let mut remaining = job.partitions.clone();
    let mut backoff = Duration::from_millis(20);
    loop {
        if !owner.job_is_current(&job) {
            return;
        }
        let mut by_dest: BTreeMap<i32, BTreeSet<TopicPartition>> = BTreeMap::new();
        let mut done = Vec::new();
        for (tp, leader) in writer.leaders(&remaining) {
            match leader {
                Ok(Some(l)) => {
                    by_dest.entry(l).or_default().insert(tp);
                }
                Ok(None) => {
                    tracing::info!(transactional_id = %job.transactional_id, topic = %tp.0, partition = tp.1, "partition is gone; skipping its marker");
                    done.push(tp);
                }
                Err(()) => {}
            }
        }
        let sends = by_dest.into_iter().map(|(dest, partitions)| {
            let entry = MarkerEntry {
                producer_id: job.producer_id,
                producer_epoch: job.producer_epoch,
                coordinator_epoch: job.coordinator_epoch,
                commit: job.commit,
                partitions,
            };
            let writer = writer.clone();
            async move { (dest, writer.send(dest, entry).await) }
        });
        let mut abandoned = false;
        for (dest, outcome) in futures::future::join_all(sends).await {
            match outcome {
                Err(e) => tracing::debug!(dest, error = %e, "marker request failed; retrying"),
                Ok(results) => {
                    for (tp, error) in results {
                        match error {
                            None
                            | Some(
                                Error::UnsupportedForMessageFormat | Error::UnsupportedVersion,
                            ) => done.push(tp),
                            Some(
                                Error::InvalidProducerEpoch | Error::TransactionCoordinatorFenced,
                            ) => {
                                tracing::info!(transactional_id = %job.transactional_id, topic = %tp.0, partition = tp.1, ?error, "marker fenced; giving up on this transaction's markers");
                                abandoned = true;
                            }
                            Some(e) => {
                                tracing::debug!(transactional_id = %job.transactional_id, topic = %tp.0, partition = tp.1, error = %e, "marker not written yet; retrying")
                            }
                        }
                    }
                }
            }
        }
        if abandoned {
            owner.markers_abandoned(&job);
            return;
        }
        for tp in &done {
            remaining.remove(tp);
        }
        if !done.is_empty() {
            owner.markers_written(&job, done);
        }
        if remaining.is_empty() {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}

/// Sends the markers queued for broker `dest`, many per request, one request at a time.
async fn broker_sender(
    writer: Arc<MarkerWriter>,
    dest: i32,
    mut rx: mpsc::UnboundedReceiver<Queued>,
) {
    let me = writer.config.broker_id;
    let mut conn: Option<KafkaConnection> = None;
    let mut carried: Vec<Queued> = Vec::new();
    loop {
        let mut batch = std::mem::take(&mut carried);
        if batch.is_empty() {
            match rx.recv().await {
                Some(q) => batch.push(q),
                None => return,
            }
        }
        while batch.len() < MAX_MARKERS_PER_REQUEST {
            match rx.try_recv() {
                Ok(q) => batch.push(q),
                Err(_) => break,
            }
        }
        // One entry per producer id per request (responses are keyed by producer id).
        let mut seen = BTreeSet::new();
        let (batch, later): (Vec<Queued>, Vec<Queued>) = batch
            .into_iter()
            .partition(|q| seen.insert(q.entry.producer_id));
        carried = later;
        let entries: Vec<MarkerEntry> = batch.iter().map(|q| q.entry.clone()).collect();
        let results = if dest == me {
            Ok(write_local(&writer.local, entries).await)
        } else {
            send_remote(&writer, dest, &mut conn, &entries).await
        };
        match results {
            Ok(results) => {
                for (q, r) in batch.into_iter().zip(results) {
                    let _ = q.reply.send(Ok(r));
                }
            }
            Err(e) => {
                conn = None;
                for q in batch {
                    let _ = q.reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// One WriteTxnMarkers request to another broker; results in the order of `entries`.
async fn send_remote(
    writer: &MarkerWriter,
    dest: i32,
    conn: &mut Option<KafkaConnection>,
    entries: &[MarkerEntry],
) -> Result<Vec<MarkerResult>, String> {
    let config = &writer.config;
    let timeout = Duration::from_millis(config.request_timeout_ms);
    if conn.is_none() {
        let addr = writer
            .image
            .borrow()
            .brokers
            .get(&dest)
            .and_then(|b| b.endpoint(&config.inter_broker_listener))
            .map(|(host, port)| format!("{host}:{port}"))
            .ok_or_else(|| {
                format!(
                    "broker {dest} has no {} endpoint",
                    config.inter_broker_listener
                )
            })?;
        let security =
            crate::client::ClientSecurity::inter_broker(config).map_err(|e| e.to_string())?;
        let c = KafkaConnection::connect_with(
            &addr,
            &format!("broker-{}-txn-markers", config.broker_id),
            Duration::from_secs(5),
            &security,
        )
        .await
        .map_err(|e| e.to_string())?;
        *conn = Some(c);
    }
    let Some(c) = conn.as_mut() else {
        return Err("no connection".into());
    };
    let request = WriteTxnMarkersRequest::default().with_markers(
        entries
            .iter()
            .map(|e| {
                let mut topics: Vec<WritableTxnMarkerTopic> = Vec::new();
                for (topic, p) in &e.partitions {
                    match topics.last_mut() {
                        Some(t) if t.name.0.as_str() == topic => t.partition_indexes.push(*p),
                        _ => topics.push(
                            WritableTxnMarkerTopic::default()
                                .with_name(TopicName(StrBytes::from_string(topic.clone())))
                                .with_partition_indexes(vec![*p]),
                        ),
                    }
                }
                WritableTxnMarker::default()
                    .with_producer_id(ProducerId(e.producer_id))
                    .with_producer_epoch(e.producer_epoch)
                    .with_transaction_result(e.commit)
                    .with_coordinator_epoch(e.coordinator_epoch)
                    .with_topics(topics)
            })
            .collect(),
    );
    let response = c
        .send(
            &request,
            WRITE_TXN_MARKERS_VERSION,
            timeout + Duration::from_secs(5),
        )
        .await
        .map_err(|e| e.to_string())?;
    let mut by_pid: HashMap<i64, MarkerResult> = HashMap::new();
    for m in response.markers {
        let r = by_pid.entry(m.producer_id.0).or_default();
        for t in m.topics {
            for p in t.partitions {
                let error = Error::try_from_code(p.error_code);
                r.push(((t.name.0.to_string(), p.partition_index), error));
            }
        }
    }
    Ok(entries
        .iter()
        .map(|e| {
            let got = by_pid.remove(&e.producer_id).unwrap_or_default();
            // A partition the response left out is retried.
            e.partitions
                .iter()
                .map(|tp| {
                    let error = got
                        .iter()
                        .find(|(t, _)| t == tp)
                        .map_or(Some(Error::UnknownServerError), |(_, e)| *e);
                    (tp.clone(), error)
                })
                .collect()
        })
        .collect())
}
