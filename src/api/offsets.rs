//! Offset lookups on partition leaders: ListOffsets (key 2, v0-v9; v0 is the
//! `max_num_offsets` form over segment times), OffsetForLeaderEpoch (key 23, v0-v4; v0
//! answers no epoch) and DeleteRecords (key 21, v0-v2).

use std::collections::HashSet;

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{
    DeleteRecordsRequest, DeleteRecordsResponse, ListOffsetsRequest, ListOffsetsResponse,
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse,
};

use super::errors::{code, partition_error, Error};
use super::{RequestContext, Versions};
use crate::broker::Broker;
use crate::security::acl::AclOperation;

pub mod list_offsets {
    pub const VERSIONS: super::Versions = super::Versions::new(0, 9);
}
pub mod offset_for_leader_epoch {
    pub const VERSIONS: super::Versions = super::Versions::new(0, 4);
}
pub mod delete_records {
    pub const VERSIONS: super::Versions = super::Versions::new(0, 2);
}

/// Why a partition is not served here: not hosted although the topic exists, or unknown.
fn missing(broker: &Broker, topic: &str, partition: i32) -> Error {
    if broker.replicas.is_offline(topic, partition) {
        Error::KafkaStorageError
    } else if broker.image().partition(topic, partition).is_some() {
        Error::NotLeaderOrFollower
    } else {
        Error::UnknownTopicOrPartition
    }
}

pub async fn list_offsets(
    broker: &Broker,
    ctx: &RequestContext,
    req: ListOffsetsRequest,
) -> Option<ListOffsetsResponse> {
    let from_replica = req.replica_id.0 >= 0;
    // isolation_level exists from v2: READ_COMMITTED (1) answers below the LSO.
    let read_committed = ctx.api_version >= 2 && req.isolation_level == 1;
    // leader_epoch exists from v4; earlier versions must leave it at its default.
    let epoch_field = |epoch: i32| if ctx.api_version >= 4 { epoch } else { -1 };
    // Kafka answers every entry of a partition named more than once with INVALID_REQUEST
    // and looks none of them up (ListOffsetsRequest.duplicatePartitions).
    let duplicates = duplicate_partitions(&req);
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let described = broker.authorize_topic(ctx, AclOperation::Describe, &t.name);
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let base = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index);
                    let failed = |e: Error| {
                        base.clone()
                            .with_error_code(code(e))
                            .with_timestamp(-1)
                            .with_offset(-1)
                    };
                    if !described {
                        return failed(Error::TopicAuthorizationFailed);
                    }
                    if duplicates.contains(&(t.name.0.as_str(), p.partition_index)) {
                        return failed(Error::InvalidRequest);
                    }
                    let Some(partition) = broker.replicas.partition(&t.name, p.partition_index)
                    else {
                        return failed(missing(broker, &t.name, p.partition_index));
                    };
                    if ctx.api_version == 0 {
                        return list_offsets_v0(&partition, p, req.replica_id.0, base.clone());
                    }
                    let found = super::blocking(|| {
                        partition.offset_for_timestamp(
                            p.timestamp,
                            p.current_leader_epoch,
                            from_replica,
                            read_committed,
                        )
                    });
                    match found {
                        Ok((timestamp, offset, epoch)) => base
                            .with_error_code(0)
                            .with_timestamp(timestamp)
                            .with_offset(offset)
                            .with_leader_epoch(epoch_field(epoch)),
                        Err(err) => failed(partition_error(&err)),
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    Some(ListOffsetsResponse::default().with_topics(topics))
}

/// ListOffsets v0 (`KafkaApis.handleListOffsetRequestV0`): the offsets in
/// `old_style_offsets`; timestamps below -2 are UNSUPPORTED_VERSION. `timestamp` and
/// `offset` stay at -1, which v0 does not carry.
fn list_offsets_v0(
    partition: &crate::replica::Partition,
    p: &kafka_protocol::messages::list_offsets_request::ListOffsetsPartition,
    replica_id: i32,
    base: ListOffsetsPartitionResponse,
) -> ListOffsetsPartitionResponse {
    const CONSUMER: i32 = -1;
    const DEBUGGING: i32 = -2;
    if p.timestamp < -2 {
        return base.with_error_code(code(Error::UnsupportedVersion));
    }
    let now = crate::clock::now_ms();
    let found = super::blocking(|| {
        partition.legacy_offsets_before(
            p.timestamp,
            p.max_num_offsets,
            replica_id == CONSUMER,
            replica_id != DEBUGGING,
            now,
        )
    });
    match found {
        Ok(offsets) => base.with_error_code(0).with_old_style_offsets(offsets),
        Err(err) => base.with_error_code(code(partition_error(&err))),
    }
}

/// The (topic, partition) pairs a ListOffsets request names more than once.
fn duplicate_partitions(req: &ListOffsetsRequest) -> HashSet<(&str, i32)> {
    let mut seen = HashSet::new();
    let mut duplicates = HashSet::new();
    for t in &req.topics {
        for p in &t.partitions {
            let key = (t.name.0.as_str(), p.partition_index);
            if !seen.insert(key) {
                duplicates.insert(key);
            }
        }
    }
    duplicates
}

pub async fn offset_for_leader_epoch(
    broker: &Broker,
    ctx: &RequestContext,
    req: OffsetForLeaderEpochRequest,
) -> Option<OffsetForLeaderEpochResponse> {
    // Consumers (replica id -1 or -2) must ask the leader; a follower replica may ask any replica.
    let require_leader = req.replica_id.0 < 0;
    // The follower form is inter-broker: Cluster CLUSTER_ACTION or every partition fails
    // with CLUSTER_AUTHORIZATION_FAILED (KafkaApis.handleOffsetForLeaderEpochRequest).
    let cluster_refused =
        !require_leader && !broker.authorize_cluster(ctx, AclOperation::ClusterAction);
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let topic_error = if cluster_refused {
                Some(Error::ClusterAuthorizationFailed)
            } else if require_leader
                && !broker.authorize_topic(ctx, AclOperation::Describe, &t.topic)
            {
                Some(Error::TopicAuthorizationFailed)
            } else {
                None
            };
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let base = EpochEndOffset::default().with_partition(p.partition);
                    let failed = |e: Error| {
                        base.clone()
                            .with_error_code(code(e))
                            .with_leader_epoch(-1)
                            .with_end_offset(-1)
                    };
                    if let Some(e) = topic_error {
                        return failed(e);
                    }
                    let Some(partition) = broker.replicas.partition(&t.topic, p.partition) else {
                        return failed(missing(broker, &t.topic, p.partition));
                    };
                    match partition.end_offset_for_epoch(
                        p.leader_epoch,
                        p.current_leader_epoch,
                        require_leader,
                    ) {
                        Ok((epoch, end)) => base
                            .with_error_code(0)
                            .with_leader_epoch(epoch)
                            .with_end_offset(end),
                        Err(err) => failed(partition_error(&err)),
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic.clone())
                .with_partitions(partitions)
        })
        .collect();
    Some(OffsetForLeaderEpochResponse::default().with_topics(topics))
}

pub async fn delete_records(
    broker: &Broker,
    ctx: &RequestContext,
    req: DeleteRecordsRequest,
) -> Option<DeleteRecordsResponse> {
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let deletable = broker.authorize_topic(ctx, AclOperation::Delete, &t.name);
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let base = DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index);
                    if !deletable {
                        return base
                            .with_error_code(code(Error::TopicAuthorizationFailed))
                            .with_low_watermark(-1);
                    }
                    let Some(partition) = broker.replicas.partition(&t.name, p.partition_index)
                    else {
                        return base
                            .with_error_code(code(missing(broker, &t.name, p.partition_index)))
                            .with_low_watermark(-1);
                    };
                    match super::blocking(|| partition.delete_records_before(p.offset)) {
                        Ok(low) => base.with_error_code(0).with_low_watermark(low),
                        Err(err) => base
                            .with_error_code(code(partition_error(&err)))
                            .with_low_watermark(-1),
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    Some(DeleteRecordsResponse::default().with_topics(topics))
}
