//! OffsetCommit v0 and OffsetFetch v0, which ZooKeeper-mode Kafka serves from ZooKeeper
//! rather than from the group coordinator (`KafkaApis.commitOffsetsToZookeeper`,
//! `handleOffsetFetchRequestFromZookeeper`): no group membership, no generation, the
//! offsets under `/consumers/<group>/offsets/...` (see `coordination::consumer_offsets`).

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponsePartition, OffsetFetchResponseTopic,
};
use kafka_protocol::messages::{
    OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::errors::{code, Error};
use super::RequestContext;
use crate::broker::Broker;
use crate::coordination::consumer_offsets;
use crate::security::acl::AclOperation;

fn zk_error(e: zookeeper_client::Error) -> Error {
    tracing::warn!(error = %e, "ZooKeeper-stored consumer offset operation failed");
    Error::UnknownServerError
}

/// OffsetCommit v0: Group READ, Topic READ, known partitions, metadata within
/// `offset.metadata.max.bytes`; each offset written to ZooKeeper.
pub async fn offset_commit_v0(
    broker: &Broker,
    ctx: &RequestContext,
    req: OffsetCommitRequest,
) -> Option<OffsetCommitResponse> {
    let group = req.group_id.0.to_string();
    let group_allowed = broker.authorize_group(ctx, AclOperation::Read, &group);
    let image = broker.image();
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in &req.topics {
        let topic_error = if !group_allowed {
            Some(Error::GroupAuthorizationFailed)
        } else if !broker.authorize_topic(ctx, AclOperation::Read, &t.name) {
            Some(Error::TopicAuthorizationFailed)
        } else {
            None
        };
        let info = image.topic(&t.name);
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let too_large = p.committed_metadata.as_ref().is_some_and(|m| {
                m.encode_utf16().count() > broker.config.offset_metadata_max_bytes
            });
            let error = if let Some(e) = topic_error {
                Some(e)
            } else if !info.is_some_and(|i| i.partitions.contains_key(&p.partition_index)) {
                Some(Error::UnknownTopicOrPartition)
            } else if too_large {
                Some(Error::OffsetMetadataTooLarge)
            } else {
                consumer_offsets::set_offset(
                    &broker.session,
                    &group,
                    &t.name,
                    p.partition_index,
                    p.committed_offset,
                )
                .await
                .err()
                .map(zk_error)
            };
            partitions.push(
                OffsetCommitResponsePartition::default()
                    .with_partition_index(p.partition_index)
                    .with_error_code(error.map_or(0, code)),
            );
        }
        topics.push(
            OffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(partitions),
        );
    }
    Some(OffsetCommitResponse::default().with_topics(topics))
}

/// OffsetFetch v0: Group DESCRIBE (else every partition GROUP_AUTHORIZATION_FAILED),
/// Topic DESCRIBE per topic; an unknown partition or one without a stored offset is
/// answered -1 without error, as Kafka's `OffsetFetchResponse.UNKNOWN_PARTITION`.
pub async fn offset_fetch_v0(
    broker: &Broker,
    ctx: &RequestContext,
    req: OffsetFetchRequest,
) -> Option<OffsetFetchResponse> {
    let group = req.group_id.0.to_string();
    let group_allowed = broker.authorize_group(ctx, AclOperation::Describe, &group);
    let image = broker.image();
    let mut topics = Vec::new();
    for t in req.topics.iter().flatten() {
        let described = broker.authorize_topic(ctx, AclOperation::Describe, &t.name);
        let info = image.topic(&t.name);
        let mut partitions = Vec::with_capacity(t.partition_indexes.len());
        for &p in &t.partition_indexes {
            let (offset, error) = if !group_allowed {
                (-1, Some(Error::GroupAuthorizationFailed))
            } else if !described {
                (-1, Some(Error::TopicAuthorizationFailed))
            } else if !info.is_some_and(|i| i.partitions.contains_key(&p)) {
                (-1, None)
            } else {
                match consumer_offsets::get_offset(&broker.session, &group, &t.name, p).await {
                    Ok(offset) => (offset.unwrap_or(-1), None),
                    Err(e) => (-1, Some(zk_error(e))),
                }
            };
            partitions.push(
                OffsetFetchResponsePartition::default()
                    .with_partition_index(p)
                    .with_committed_offset(offset)
                    .with_metadata(Some(StrBytes::from_static_str("")))
                    .with_error_code(error.map_or(0, code)),
            );
        }
        topics.push(
            OffsetFetchResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(partitions),
        );
    }
    Some(OffsetFetchResponse::default().with_topics(topics))
}
