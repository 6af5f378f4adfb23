//! Fetch (key 1), v0-v17, for consumers and for follower replicas. v0-v3 clients read
//! message formats v0 (Fetch v0-v1) and v1 (v2-v3): their partitions are down-converted
//! (`storage::legacy::down`) on an I/O thread, unless the topic's
//! `message.downconversion.enable` is false (UNSUPPORTED_VERSION); below v10 a topic
//! whose `compression.type` is zstd answers UNSUPPORTED_COMPRESSION_TYPE, and below v6
//! KAFKA_STORAGE_ERROR is answered as NOT_LEADER_OR_FOLLOWER (Kafka's `KafkaApis`).
//!
//! Returns whole record batches as stored (the batch containing the fetch offset first),
//! never past the high watermark for consumers (followers read to the log end), within
//! `max_bytes` and `partition_max_bytes` except that the first batch of the first
//! non-empty partition is always returned (KIP-74). With fewer than `min_bytes` ready, the
//! request waits up to `max_wait_ms` for an append or HW move on any of its partitions.
//!
//! Fetch sessions (KIP-227, v7+): a full request may create a session
//! (`fetch_session::cache`); an incremental one reads every partition of its session and
//! answers only those with news.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use indexmap::IndexMap;
use kafka_protocol::messages::fetch_response::{
    EpochEndOffset, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::errors::{code, partition_error, Error};
use super::{RequestContext, Versions};
use crate::broker::Broker;
use crate::clock::now_ms;
use crate::coordination::{ClusterImage, TopicInfo};
use crate::fetch_session::cache::{FetchContext, FetchRequestView};
use crate::fetch_session::{PartitionKey, PartitionParams, PartitionSummary, TopicRef};
use crate::replica::throttle::ReplicationQuotas;
use crate::replica::{Partition, PartitionError};
use crate::security::acl::AclOperation;
use crate::storage::fileio::ReadMode;
use crate::storage::ReadError;

pub const VERSIONS: Versions = Versions::new(0, 17);

/// The longest a fetch long-polls, whatever `max_wait_ms` it sends: a request naming
/// i32::MAX would otherwise hold its connection's task for 24 days. (Kafka clients send
/// `fetch.max.wait.ms`, 500 ms by default; followers `replica.fetch.wait.max.ms`.)
const MAX_FETCH_WAIT: Duration = Duration::from_secs(30);

struct Slot {
    topic_index: usize,
    partition: Option<Arc<Partition>>,
    partition_index: i32,
    fetch_offset: i64,
    last_fetched_epoch: i32,
    current_leader_epoch: i32,
    partition_max_bytes: usize,
    /// An error that does not change while waiting (unknown topic, ...).
    fixed_error: Option<Error>,
    /// Down-conversion for Fetch v0-v3.
    convert: Option<Convert>,
}

/// How a Fetch v0-v3 partition is converted.
#[derive(Clone, Copy)]
struct Convert {
    magic: u8,
    /// Fetch v3 returns the first message whole (KIP-74); v0-v2 have a hard limit.
    min_one: bool,
    decompress_limit: usize,
}

/// A topic's effective config value: its override, else the broker default.
fn topic_setting<'a>(
    broker: &'a Broker,
    info: Option<&'a TopicInfo>,
    key: &str,
) -> Option<&'a str> {
    info.and_then(|i| i.config.get(key))
        .or_else(|| broker.config.topic_defaults.get(key))
        .map(String::as_str)
}

/// Kafka's `maybeConvertFetchedData` decisions for requests below v10: a zstd topic is
/// refused, v0-v3 consumers get converted data or UNSUPPORTED_VERSION when the topic
/// disables down-conversion.
fn legacy_fetch(
    broker: &Broker,
    info: Option<&TopicInfo>,
    version: i16,
    follower: bool,
) -> Result<Option<Convert>, Error> {
    if topic_setting(broker, info, "compression.type") == Some("zstd") {
        return Err(Error::UnsupportedCompressionType);
    }
    if version > 3 {
        return Ok(None);
    }
    let enabled = topic_setting(broker, info, "message.downconversion.enable") != Some("false");
    if !follower && !enabled {
        return Err(Error::UnsupportedVersion);
    }
    let max_message_bytes = topic_setting(broker, info, "max.message.bytes")
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(1_048_588);
    Ok(Some(Convert {
        magic: if version <= 1 { 0 } else { 1 },
        min_one: version >= 3,
        decompress_limit: crate::storage::codec::limit_for(max_message_bytes),
    }))
}

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: FetchRequest,
) -> Option<FetchResponse> {
    let version = ctx.api_version;
    let replica_id = if version >= 15 {
        req.replica_state.replica_id.0
    } else {
        req.replica_id.0
    };
    let follower = (replica_id >= 0).then_some(replica_id);
    let requested = requested_partitions(&req, version);
    let session = if version >= 7 {
        let forgotten = forgotten_partitions(&req, version);
        let view = FetchRequestView {
            session_id: req.session_id,
            epoch: req.session_epoch,
            uses_topic_ids: version >= 13,
            partitions: &requested,
            forgotten: &forgotten,
        };
        crate::sync::lock(&broker.fetch_sessions).begin(&view, now_ms())
    } else {
        FetchContext::Sessionless
    };
    let wanted = match &session {
        FetchContext::Error(error) => return Some(session_error(*error)),
        FetchContext::Incremental { partitions, .. } => partitions.as_slice(),
        FetchContext::Sessionless | FetchContext::Full => requested.as_slice(),
    };
    let image = broker.image();
    if needs_catch_up(broker, &image, wanted) {
        broker
            .replicas
            .caught_up_with_image(Duration::from_millis(1000))
            .await;
    }
    let image = broker.image();
    let (topics, slots) = build_slots(broker, ctx, &image, follower, wanted);
    let max_bytes = (req.max_bytes.max(0) as usize).min(broker.config.fetch_max_bytes as usize);
    let min_bytes = req.min_bytes.max(0) as usize;
    let wait = Duration::from_millis(req.max_wait_ms.max(0) as u64).min(MAX_FETCH_WAIT);
    let deadline = tokio::time::Instant::now() + wait;
    // Subscribe before the first read so no append between read and wait is missed.
    let slots = Arc::new(slots);
    let mut receivers: Vec<_> = slots
        .iter()
        .filter_map(|s| s.partition.as_ref().map(|p| p.subscribe()))
        .collect();
    loop {
        let isolation_level = req.isolation_level;
        // What the page cache holds is read right here; a read that would wait for the
        // disk goes to an I/O thread (see `storage::io_pool`).
        // Down-conversion is CPU work: Fetch v0-v3 reads and converts on an I/O thread.
        let first_pass = if version <= 3 {
            Err(Vec::new())
        } else {
            read_all(
                &slots,
                max_bytes,
                follower,
                &broker.replicas.quotas,
                isolation_level,
                ReadMode::NoWait,
                version,
            )
        };
        let read = match first_pass {
            Ok(read) => read,
            Err(first_pass) => {
                // The partitions read before the miss may have asked for an ISR expansion
                // already (and marked it pending, so the second pass will not ask again).
                for (partition, isr) in first_pass {
                    broker.replicas.propose_isr(partition, isr);
                }
                let reading = slots.clone();
                let quotas = broker.replicas.quotas.clone();
                broker
                    .replicas
                    .io
                    .run(move || {
                        read_all(
                            &reading,
                            max_bytes,
                            follower,
                            &quotas,
                            isolation_level,
                            ReadMode::Blocking,
                            version,
                        )
                    })
                    .await
                    .unwrap_or_else(|_| unreachable!("a blocking read never would-block"))
            }
        };
        for (partition, isr) in read.isr_expansions {
            broker.replicas.propose_isr(partition, isr);
        }
        let (results, bytes, any_error) = (read.partitions, read.bytes, read.any_error);
        let expired = tokio::time::Instant::now() >= deadline;
        if bytes >= min_bytes
            || any_error
            || expired
            || receivers.is_empty()
            || req.max_wait_ms <= 0
        {
            for (slot, data) in slots.iter().zip(&results) {
                crate::metrics::fetched(slot.partition.as_deref(), data, follower.is_some());
            }
            if follower.is_some() {
                record_throttled(&broker.replicas.quotas, &slots, &results);
            }
            return Some(respond(
                broker, &session, wanted, &slots, results, topics, follower, version,
            ));
        }
        let changes = receivers.iter_mut().map(|rx| Box::pin(rx.changed()));
        let wait = tokio::time::timeout_at(deadline, futures::future::select_all(changes));
        let _ = crate::metrics::requests::remote(wait).await;
    }
}

/// Counts what a follower fetch sent of throttled replicas toward the leader quota
/// (in-sync followers' bytes too, as Kafka's `sizeOfThrottledPartitions`).
fn record_throttled(quotas: &ReplicationQuotas, slots: &[Slot], results: &[PartitionData]) {
    let bytes: usize = slots
        .iter()
        .zip(results)
        .filter(|(slot, _)| {
            slot.partition
                .as_ref()
                .is_some_and(|p| p.is_leader_throttled())
        })
        .map(|(_, data)| data.records.as_ref().map_or(0, |r| r.len()))
        .sum();
    if bytes > 0 {
        quotas.leader.record(bytes as u64, now_ms());
    }
}

/// The request's partitions, each once (Kafka keys the fetch data by partition, a later
/// entry replacing an earlier one): a request repeating one partition a million times
/// costs one read and answers one entry.
fn requested_partitions(req: &FetchRequest, version: i16) -> Vec<(PartitionKey, PartitionParams)> {
    let mut out: IndexMap<PartitionKey, PartitionParams> = IndexMap::new();
    for t in &req.topics {
        let topic = topic_ref(&t.topic, t.topic_id, version);
        for p in &t.partitions {
            let params = PartitionParams {
                fetch_offset: p.fetch_offset,
                current_leader_epoch: p.current_leader_epoch,
                last_fetched_epoch: if version >= 12 {
                    p.last_fetched_epoch
                } else {
                    -1
                },
                log_start_offset: p.log_start_offset,
                max_bytes: p.partition_max_bytes,
            };
            out.insert((topic.clone(), p.partition), params);
        }
    }
    out.into_iter().collect()
}

/// The partitions an incremental request drops from its session.
fn forgotten_partitions(req: &FetchRequest, version: i16) -> Vec<PartitionKey> {
    req.forgotten_topics_data
        .iter()
        .flat_map(|t| {
            let topic = topic_ref(&t.topic, t.topic_id, version);
            t.partitions.iter().map(move |p| (topic.clone(), *p))
        })
        .collect()
}

fn topic_ref(name: &TopicName, id: uuid::Uuid, version: i16) -> TopicRef {
    if version >= 13 {
        TopicRef::Id(id)
    } else {
        TopicRef::Name(name.0.to_string())
    }
}

/// A top-level session error: nothing read, no session (Kafka's `SessionErrorContext`).
fn session_error(error: Error) -> FetchResponse {
    FetchResponse::default()
        .with_error_code(code(error))
        .with_session_id(0)
}

/// True if a partition of the fetch is led here according to the image but not yet
/// locally (see `ReplicaManager::caught_up_with_image`).
fn needs_catch_up(
    broker: &Broker,
    image: &ClusterImage,
    wanted: &[(PartitionKey, PartitionParams)],
) -> bool {
    let me = broker.config.broker_id;
    wanted.iter().any(|((topic, partition), _)| {
        let name = match topic {
            TopicRef::Name(name) => name.as_str(),
            TopicRef::Id(id) => match image.topic_by_id(id) {
                Some(info) => info.name.as_str(),
                None => return false,
            },
        };
        image
            .partition(name, *partition)
            .and_then(|i| i.state.as_ref())
            .is_some_and(|s| s.leader == me)
            && broker
                .replicas
                .partition(name, *partition)
                .is_none_or(|part| part.role() != crate::replica::Role::Leader)
    })
}

/// What a fetch needs to know of one topic, looked up once per topic.
struct TopicSlot {
    index: usize,
    name: String,
    unknown_error: Option<Error>,
    legacy: Result<Option<Convert>, Error>,
    authorized: bool,
}

/// One slot per wanted partition (in the same order), and the response's topics (with
/// no partitions yet) the slots point into.
fn build_slots(
    broker: &Broker,
    ctx: &RequestContext,
    image: &ClusterImage,
    follower: Option<i32>,
    wanted: &[(PartitionKey, PartitionParams)],
) -> (Vec<FetchableTopicResponse>, Vec<Slot>) {
    let version = ctx.api_version;
    // A follower's fetch needs Cluster CLUSTER_ACTION, else every partition is
    // TOPIC_AUTHORIZATION_FAILED and nothing is read, so a client posing as a replica
    // moves neither the ISR nor the high watermark (KafkaApis.handleFetchRequest).
    let follower_allowed =
        follower.is_none() || broker.authorize_cluster(ctx, AclOperation::ClusterAction);
    let mut topics: Vec<FetchableTopicResponse> = Vec::new();
    let mut topic_slots: HashMap<&TopicRef, TopicSlot> = HashMap::new();
    let mut slots = Vec::with_capacity(wanted.len());
    for ((topic, partition), params) in wanted {
        let t = topic_slots.entry(topic).or_insert_with(|| {
            let (name, unknown_error) = match topic {
                TopicRef::Id(id) => match image.topic_by_id(id) {
                    Some(info) => (info.name.clone(), None),
                    None => (String::new(), Some(Error::UnknownTopicId)),
                },
                TopicRef::Name(name) => (
                    name.clone(),
                    image
                        .topic(name)
                        .is_none()
                        .then_some(Error::UnknownTopicOrPartition),
                ),
            };
            let mut resp = FetchableTopicResponse::default();
            match topic {
                TopicRef::Id(id) => resp.topic_id = *id,
                TopicRef::Name(name) => resp.topic = TopicName(StrBytes::from_string(name.clone())),
            }
            topics.push(resp);
            let legacy = if version < 10 {
                legacy_fetch(broker, image.topic(&name), version, follower.is_some())
            } else {
                Ok(None)
            };
            let authorized = match follower {
                Some(_) => follower_allowed,
                None => {
                    unknown_error.is_some()
                        || broker.authorize_topic(ctx, AclOperation::Read, &name)
                }
            };
            TopicSlot {
                index: topics.len() - 1,
                name,
                unknown_error,
                legacy,
                authorized,
            }
        });
        slots.push(slot_for(broker, image, t, *partition, params));
    }
    (topics, slots)
}

fn slot_for(
    broker: &Broker,
    image: &ClusterImage,
    t: &TopicSlot,
    partition_index: i32,
    params: &PartitionParams,
) -> Slot {
    if !t.authorized {
        return Slot {
            topic_index: t.index,
            partition: None,
            partition_index,
            fetch_offset: params.fetch_offset,
            last_fetched_epoch: -1,
            current_leader_epoch: params.current_leader_epoch,
            partition_max_bytes: 0,
            fixed_error: Some(Error::TopicAuthorizationFailed),
            convert: None,
        };
    }
    let partition = broker.replicas.partition(&t.name, partition_index);
    let fixed_error = t
        .unknown_error
        .or(t.legacy.err())
        .or_else(|| match &partition {
            Some(_) => None,
            None if broker.replicas.is_offline(&t.name, partition_index) => {
                Some(Error::KafkaStorageError)
            }
            None if image.partition(&t.name, partition_index).is_some() => {
                Some(Error::NotLeaderOrFollower)
            }
            None => Some(Error::UnknownTopicOrPartition),
        });
    Slot {
        topic_index: t.index,
        partition,
        partition_index,
        fetch_offset: params.fetch_offset,
        last_fetched_epoch: params.last_fetched_epoch,
        current_leader_epoch: params.current_leader_epoch,
        partition_max_bytes: params.max_bytes.max(0) as usize,
        fixed_error,
        convert: t.legacy.unwrap_or(None),
    }
}

/// The response: every partition for a sessionless or full fetch (creating a session for
/// a full one if the cache has room), only the changed ones for an incremental fetch.
#[allow(clippy::too_many_arguments)]
fn respond(
    broker: &Broker,
    session: &FetchContext,
    wanted: &[(PartitionKey, PartitionParams)],
    slots: &[Slot],
    results: Vec<PartitionData>,
    mut topics: Vec<FetchableTopicResponse>,
    follower: Option<i32>,
    version: i16,
) -> FetchResponse {
    assert_eq!(
        wanted.len(),
        results.len(),
        "one answer per fetched partition"
    );
    let mut session_id = 0;
    let include: Vec<bool> = match session {
        FetchContext::Incremental {
            session_id: id,
            epoch,
            ..
        } => {
            let summaries: Vec<_> = wanted
                .iter()
                .zip(&results)
                .map(|((key, _), data)| (key.clone(), PartitionSummary::of(data)))
                .collect();
            let finished = crate::sync::lock(&broker.fetch_sessions)
                .finish_incremental(*id, *epoch, &summaries);
            match finished {
                Ok(include) => {
                    session_id = *id;
                    include
                }
                Err(error) => return session_error(error),
            }
        }
        FetchContext::Full => {
            let entries = wanted
                .iter()
                .zip(&results)
                .map(|((key, params), data)| {
                    (key.clone(), params.clone(), PartitionSummary::of(data))
                })
                .collect();
            session_id = crate::sync::lock(&broker.fetch_sessions).finish_full(
                follower.is_some(),
                version >= 13,
                entries,
                now_ms(),
                &mut || rand::random::<i32>(),
            );
            vec![true; results.len()]
        }
        FetchContext::Sessionless | FetchContext::Error(_) => vec![true; results.len()],
    };
    for ((slot, data), carried) in slots.iter().zip(results).zip(include) {
        if carried {
            topics[slot.topic_index].partitions.push(data);
        }
    }
    if matches!(session, FetchContext::Incremental { .. }) {
        topics.retain(|t| !t.partitions.is_empty());
    }
    FetchResponse::default()
        .with_error_code(0)
        .with_session_id(session_id)
        .with_responses(topics)
}

/// The response's `aborted_transactions` (producer id, first offset).
fn aborted_transactions(
    aborted: &[crate::storage::txn_index::AbortedTxn],
) -> Vec<kafka_protocol::messages::fetch_response::AbortedTransaction> {
    aborted
        .iter()
        .map(|t| {
            kafka_protocol::messages::fetch_response::AbortedTransaction::default()
                .with_producer_id(kafka_protocol::messages::ProducerId(t.producer_id))
                .with_first_offset(t.first_offset)
        })
        .collect()
}

/// One pass over every partition of a fetch.
struct ReadAll {
    partitions: Vec<PartitionData>,
    /// Record bytes gathered.
    bytes: usize,
    /// Some partition failed: Kafka answers at once then.
    any_error: bool,
    /// Followers that caught up, to propose into the ISR.
    isr_expansions: IsrExpansions,
}

type IsrExpansions = Vec<(Arc<Partition>, Vec<i32>)>;

/// Reads every slot once. `Err` if a `NoWait` read would have waited for the disk: the
/// caller proposes the ISR expansions gathered so far and reads again on an I/O thread
/// (what this pass recorded of a follower's progress is recorded again then, unchanged).
#[allow(clippy::too_many_arguments)]
fn read_all(
    slots: &[Slot],
    max_bytes: usize,
    follower: Option<i32>,
    quotas: &ReplicationQuotas,
    isolation_level: i8,
    mode: ReadMode,
    version: i16,
) -> Result<ReadAll, IsrExpansions> {
    let mut isr_expansions = Vec::new();
    let mut remaining = max_bytes;
    let mut gathered = 0usize;
    let mut any_error = false;
    let now = now_ms();
    let mut out = Vec::with_capacity(slots.len());
    for slot in slots {
        let base = PartitionData::default().with_partition_index(slot.partition_index);
        let error_data = |error: Error| {
            // Clients before Fetch v6 do not know KAFKA_STORAGE_ERROR (KIP-112).
            let error = match error {
                Error::KafkaStorageError if version <= 5 => Error::NotLeaderOrFollower,
                e => e,
            };
            base.clone()
                .with_error_code(code(error))
                .with_high_watermark(-1)
                .with_last_stable_offset(-1)
                .with_log_start_offset(-1)
                .with_preferred_read_replica(kafka_protocol::messages::BrokerId(-1))
                .with_records(Some(Bytes::new()))
        };
        if let Some(error) = slot.fixed_error {
            any_error = true;
            out.push(error_data(error));
            continue;
        }
        let Some(partition) = &slot.partition else {
            continue;
        };
        if let Some((epoch, end_offset)) =
            partition.diverging_epoch(slot.fetch_offset, slot.last_fetched_epoch)
        {
            any_error = true; // answer at once so the fetcher truncates
            out.push(
                base.with_error_code(0)
                    .with_high_watermark(partition.high_watermark())
                    .with_last_stable_offset(partition.high_watermark())
                    .with_log_start_offset(partition.log_start_offset())
                    .with_diverging_epoch(
                        EpochEndOffset::default()
                            .with_epoch(epoch)
                            .with_end_offset(end_offset),
                    )
                    .with_preferred_read_replica(kafka_protocol::messages::BrokerId(-1))
                    .with_records(Some(Bytes::new())),
            );
            continue;
        }
        // KIP-73: an out-of-sync follower of a throttled replica gets no records while
        // the leader quota is exceeded (its position is still recorded).
        let throttled = follower.is_some_and(|f| {
            partition.is_leader_throttled()
                && quotas.leader.is_exceeded(now)
                && !partition.is_in_sync(f)
        });
        let limit = if throttled {
            0
        } else {
            slot.partition_max_bytes.min(remaining)
        };
        let min_one = gathered == 0 && !throttled;
        match partition.read(
            slot.fetch_offset,
            limit,
            min_one,
            slot.current_leader_epoch,
            follower,
            now,
            mode,
            isolation_level == 1,
        ) {
            Err(PartitionError::Read(ReadError::WouldBlock)) => return Err(isr_expansions),
            Ok((result, hw, lso, update)) => {
                if let Some(isr) = update.expand_isr_to {
                    isr_expansions.push((partition.clone(), isr));
                }
                let mut result = result;
                if let Some(c) = slot.convert {
                    match down_convert(&result.records, slot.fetch_offset, limit, c) {
                        Ok(converted) => result.records = converted,
                        Err(error) => {
                            any_error = true;
                            out.push(error_data(error));
                            continue;
                        }
                    }
                }
                let n = result.records.len();
                gathered += n;
                remaining = remaining.saturating_sub(n);
                let mut data = base
                    .with_error_code(0)
                    .with_high_watermark(hw)
                    .with_last_stable_offset(lso)
                    .with_log_start_offset(result.log_start_offset)
                    .with_preferred_read_replica(kafka_protocol::messages::BrokerId(-1))
                    .with_records(Some(result.records));
                if let Some(aborted) = result.aborted_transactions {
                    data.aborted_transactions = Some(aborted_transactions(&aborted));
                }
                out.push(data);
            }
            Err(err) => {
                any_error = true;
                out.push(error_data(partition_error(&err)));
            }
        }
    }
    Ok(ReadAll {
        partitions: out,
        bytes: gathered,
        any_error,
        isr_expansions,
    })
}

/// Converts one partition's v2 batches for a Fetch v0-v3 client.
fn down_convert(
    records: &Bytes,
    fetch_offset: i64,
    limit: usize,
    c: Convert,
) -> Result<Bytes, Error> {
    use crate::storage::legacy::down::{self, DownConvertError};
    if records.is_empty() {
        return Ok(records.clone());
    }
    match down::down_convert(
        records,
        c.magic,
        fetch_offset,
        limit,
        c.min_one,
        c.decompress_limit,
    ) {
        Ok(converted) => Ok(Bytes::from(converted.records)),
        Err(DownConvertError::UnsupportedCompression(_)) => Err(Error::UnsupportedCompressionType),
        Err(e @ DownConvertError::Corrupt(_)) => {
            tracing::warn!(error = %e, "down-conversion failed");
            Err(Error::CorruptMessage)
        }
    }
}
