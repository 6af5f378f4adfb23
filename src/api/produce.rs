//! Produce (key 0), v0-v11. v0-v2 may carry message formats v0/v1, which the log
//! up-converts to a v2 batch (`storage::legacy::up`); from v3 only v2 batches are accepted
//! (Kafka's `ProduceRequest.validateRecords`).
//!
//! Each partition's batches are validated and appended by the partition leader without
//! decoding records (`storage` checks the v2 header and CRC, producer sequences, and
//! stamps offsets and the leader epoch in place). acks=1 answers after the local append;
//! acks=-1 waits, up to the request timeout, until the high watermark passes the batch
//! (Kafka's DelayedProduce); acks=0 gets no response at all, and a failed acks=0 produce
//! closes the connection.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

/// The longest an acks=all produce waits for replication, whatever `timeout_ms` it sends
/// (clients send `request.timeout.ms`, 30 s by default): REQUEST_TIMED_OUT after it, which
/// producers retry.
const MAX_REPLICATION_WAIT: Duration = Duration::from_secs(300);

use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;

use super::errors::{code, partition_error, Error};
use super::{RequestContext, Versions};
use crate::broker::Broker;
use crate::clock::now_ms;
use crate::replica::{Partition, PartitionError};
use crate::security::acl::AclOperation;
use crate::storage::AppendError;

/// The client id Kafka's own admin tooling uses; the one client allowed to write into
/// internal topics (`KafkaApis.handleProduceRequest`, `internalTopicsAllowed`).
const ADMIN_CLIENT_ID: &str = "__admin_client";

pub const VERSIONS: Versions = Versions::new(0, 11);

/// How long a request waits for this broker to apply a leadership change it already
/// advertises in Metadata.
const CATCH_UP_WAIT: Duration = Duration::from_millis(1000);

/// True if some partition of the request is led by this broker according to the image
/// but not (yet) locally.
fn needs_catch_up(broker: &Broker, req: &ProduceRequest) -> bool {
    let image = broker.image();
    let me = broker.config.broker_id;
    req.topic_data.iter().any(|t| {
        t.partition_data.iter().any(|p| {
            let leads_in_image = image
                .partition(&t.name, p.index)
                .and_then(|info| info.state.as_ref())
                .is_some_and(|s| s.leader == me);
            leads_in_image
                && broker
                    .replicas
                    .partition(&t.name, p.index)
                    .is_none_or(|part| part.role() != crate::replica::Role::Leader)
        })
    })
}

/// Where a batch (any format) keeps its magic byte.
const MAGIC_OFFSET: usize = 16;

/// Whether any v2 record batch in `records` is zstd-compressed (attributes codec 4).
/// Only the batch headers are read; malformed input is left to the storage validator.
fn has_zstd_batch(records: &[u8]) -> bool {
    const ATTRIBUTES_AT: usize = 8 + 4 + 4 + 1 + 4; // baseOffset, length, epoch, magic, crc
    let mut pos = 0usize;
    while pos + ATTRIBUTES_AT + 2 <= records.len() {
        let len = i32::from_be_bytes([
            records[pos + 8],
            records[pos + 9],
            records[pos + 10],
            records[pos + 11],
        ]);
        if records[pos + 16] == 2 {
            let attrs = i16::from_be_bytes([
                records[pos + ATTRIBUTES_AT],
                records[pos + ATTRIBUTES_AT + 1],
            ]);
            if attrs & 0x07 == 4 {
                return true;
            }
        }
        if len <= 0 {
            break;
        }
        pos += 12 + len as usize;
    }
    false
}

struct Pending {
    topic_index: usize,
    partition_index: usize,
    required_offset: i64,
    epoch: i32,
    partition: Arc<Partition>,
}

/// A partition's batches, checked and ready to append.
struct Append {
    topic_index: usize,
    partition_index: usize,
    partition: Arc<Partition>,
    records: Bytes,
    /// KIP-890: the verification guard of a transaction's first batch here.
    guard: Option<u64>,
}

/// Appends every partition's batches in one job on the I/O pool (one hand-off per
/// request, not per partition) and fills in their responses. Returns the acks=all
/// appends still waiting for replication.
async fn append_all(
    broker: &Broker,
    appends: Vec<Append>,
    acks: i16,
    now: i64,
    api_version: i16,
    responses: &mut [TopicProduceResponse],
) -> Vec<Pending> {
    if appends.is_empty() {
        return Vec::new();
    }
    let (appends, outcomes) = broker
        .replicas
        .io
        .run(move || {
            let outcomes: Vec<_> = appends
                .iter()
                .map(|a| {
                    a.partition.append_as_leader_with(
                        &a.records,
                        acks,
                        crate::storage::producer_state::AppendOrigin::Client,
                        a.guard,
                        now,
                    )
                })
                .collect();
            (appends, outcomes)
        })
        .await;
    let mut pending = Vec::new();
    for (a, outcome) in appends.into_iter().zip(outcomes) {
        let r = &mut responses[a.topic_index].partition_responses[a.partition_index];
        match outcome {
            Ok((appended, epoch)) => {
                r.error_code = 0;
                r.base_offset = appended.base_offset;
                r.log_append_time_ms = appended.log_append_time_ms;
                r.log_start_offset = appended.log_start_offset;
                if acks == -1 {
                    pending.push(Pending {
                        topic_index: a.topic_index,
                        partition_index: a.partition_index,
                        required_offset: appended.last_offset + 1,
                        epoch,
                        partition: a.partition,
                    });
                }
            }
            Err(err) => {
                let error = partition_error(&err);
                r.error_code = code(error);
                r.error_message = Some(StrBytes::from_string(err.to_string()));
                if let (PartitionError::Append(AppendError::RecordsRejected { records, .. }), 8..) =
                    (&err, api_version)
                {
                    // KIP-467: which records of the batch were refused.
                    r.record_errors = records
                        .iter()
                        .map(|e| {
                            BatchIndexAndErrorMessage::default()
                                .with_batch_index(e.batch_index)
                                .with_batch_index_error_message(Some(StrBytes::from_string(
                                    e.message.clone(),
                                )))
                        })
                        .collect();
                }
            }
        }
    }
    pending
}

/// KIP-890: the appends whose transaction is verified (with their guards); the others
/// answer the verification's error.
async fn verify_transaction(
    broker: &Broker,
    ctx: &RequestContext,
    producer: &super::txn_produce::TxnProducer,
    appends: Vec<Append>,
    responses: &mut [TopicProduceResponse],
) -> Vec<Append> {
    let parts: Vec<(usize, &Partition, &[u8])> = appends
        .iter()
        .enumerate()
        .map(|(i, a)| (i, a.partition.as_ref(), &a.records[..]))
        .collect();
    let verified = super::txn_produce::verify(broker, ctx, producer, &parts).await;
    let mut kept = Vec::with_capacity(appends.len());
    for (mut a, v) in appends.into_iter().zip(verified) {
        match v {
            Ok(guard) => {
                a.guard = guard;
                kept.push(a);
            }
            Err(e) => {
                let r = &mut responses[a.topic_index].partition_responses[a.partition_index];
                r.error_code = code(e);
                if e == Error::InvalidTxnState {
                    r.error_message = Some(StrBytes::from_static_str(
                        "Partition was not added to the transaction",
                    ));
                }
            }
        }
    }
    kept
}

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: ProduceRequest,
) -> Option<ProduceResponse> {
    let acks = req.acks;
    if needs_catch_up(broker, &req) {
        broker.replicas.caught_up_with_image(CATCH_UP_WAIT).await;
    }
    let image = broker.image();
    let txn = super::txn_produce::check(broker, ctx, &req);
    let mut responses: Vec<TopicProduceResponse> = Vec::with_capacity(req.topic_data.len());
    let mut appends: Vec<Append> = Vec::new();
    let now = now_ms();
    for (ti, topic) in req.topic_data.into_iter().enumerate() {
        let mut partitions = Vec::with_capacity(topic.partition_data.len());
        let write_allowed = broker.authorize_topic(ctx, AclOperation::Write, &topic.name);
        // Kafka's ReplicaManager: only the admin client may append to internal topics.
        let internal_refused =
            crate::coordination::is_internal_topic(&topic.name) && ctx.client_id != ADMIN_CLIENT_ID;
        for (pi, data) in topic.partition_data.into_iter().enumerate() {
            let base = PartitionProduceResponse::default()
                .with_index(data.index)
                .with_base_offset(-1)
                .with_log_append_time_ms(-1)
                .with_log_start_offset(-1);
            let fail = |base: PartitionProduceResponse, error: Error, message: Option<String>| {
                base.with_error_code(code(error))
                    .with_error_message(message.map(StrBytes::from_string))
            };
            if !(-1..=1).contains(&acks) {
                partitions.push(fail(base, Error::InvalidRequiredAcks, None));
                continue;
            }
            if let Err(e) = txn {
                partitions.push(fail(base, e, None));
                continue;
            }
            if !write_allowed {
                partitions.push(fail(base, Error::TopicAuthorizationFailed, None));
                continue;
            }
            if internal_refused {
                partitions.push(fail(
                    base,
                    Error::InvalidTopicException,
                    Some(format!(
                        "Cannot append to internal topic {}",
                        topic.name.as_str()
                    )),
                ));
                continue;
            }
            let Some(partition) = broker.replicas.partition(&topic.name, data.index) else {
                let error = if broker.replicas.is_offline(&topic.name, data.index) {
                    Error::KafkaStorageError
                } else if image.partition(&topic.name, data.index).is_some() {
                    Error::NotLeaderOrFollower
                } else {
                    Error::UnknownTopicOrPartition
                };
                partitions.push(fail(base, error, None));
                continue;
            };
            let Some(records) = data.records else {
                partitions.push(fail(
                    base,
                    Error::CorruptMessage,
                    Some("null records".into()),
                ));
                continue;
            };
            if ctx.api_version >= 3 && records.get(MAGIC_OFFSET).is_some_and(|m| *m != 2) {
                partitions.push(fail(
                    base,
                    Error::InvalidRecord,
                    Some(format!(
                        "Produce requests with version {} are only allowed to contain record batches with magic version 2",
                        ctx.api_version
                    )),
                ));
                continue;
            }
            if ctx.api_version < 7 && has_zstd_batch(&records) {
                // KIP-110: zstd only from Produce v7 on, as Kafka's ProduceRequest validation.
                partitions.push(fail(
                    base,
                    Error::UnsupportedCompressionType,
                    Some(format!(
                        "Produce requests with version {} are not allowed to use ZStandard compression",
                        ctx.api_version
                    )),
                ));
                continue;
            }
            appends.push(Append {
                topic_index: ti,
                partition_index: pi,
                partition: partition.clone(),
                records,
                guard: None,
            });
            partitions.push(base);
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic.name)
                .with_partition_responses(partitions),
        );
    }
    if let Ok(Some(producer)) = &txn {
        appends = verify_transaction(broker, ctx, producer, appends, &mut responses).await;
    }
    let pending = append_all(broker, appends, acks, now, ctx.api_version, &mut responses).await;
    if acks == 0 {
        // No response for acks=0. A failure anywhere returns the response instead: the
        // connection then closes without sending it (as Kafka's KafkaApis does), so the
        // producer notices, refreshes its metadata and stops writing into the void.
        let failed = responses
            .iter()
            .flat_map(|t| &t.partition_responses)
            .any(|p| p.error_code != 0);
        return failed.then(|| ProduceResponse::default().with_responses(responses));
    }
    if !pending.is_empty() {
        let wait = Duration::from_millis(req.timeout_ms.max(0) as u64).min(MAX_REPLICATION_WAIT);
        let deadline = tokio::time::Instant::now() + wait;
        let waits = pending.iter().map(|p| {
            p.partition
                .wait_for_replication(p.required_offset, p.epoch, deadline)
        });
        let outcomes = crate::metrics::requests::remote(futures::future::join_all(waits)).await;
        for (p, outcome) in pending.iter().zip(outcomes) {
            if let Err(err) = outcome {
                let r = &mut responses[p.topic_index].partition_responses[p.partition_index];
                let error = partition_error(&err);
                r.error_code = code(error);
                r.error_message = Some(StrBytes::from_string(err.to_string()));
                if matches!(err, PartitionError::NotLeader) {
                    r.base_offset = -1;
                }
            }
        }
    }
    Some(ProduceResponse::default().with_responses(responses))
}
