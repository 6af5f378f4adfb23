//! WriteTxnMarkers (key 27), v0-v1 (Kafka 3.9's range; brokers send v1, v0 is the same
//! without flexible fields): inter-broker only — Cluster ALTER or CLUSTER_ACTION, as Kafka's KafkaApis —
//! the transaction coordinator's COMMIT/ABORT markers for the partitions this broker
//! leads. Each marker is appended as a control batch and answered once replicated
//! (acks=all); see `txn::markers::write_local`.

use std::collections::BTreeSet;

use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{TopicName, WriteTxnMarkersRequest, WriteTxnMarkersResponse};

use super::errors::{code, Error};
use super::{RequestContext, Versions};
use crate::broker::Broker;
use crate::security::acl::AclOperation;
use crate::txn::markers::{write_local, MarkerEntry};

pub const VERSIONS: Versions = Versions::new(0, 1);

pub async fn write_txn_markers(
    broker: &Broker,
    ctx: &RequestContext,
    req: WriteTxnMarkersRequest,
) -> Option<WriteTxnMarkersResponse> {
    let allowed = broker.authorize_cluster(ctx, AclOperation::Alter)
        || broker.authorize_cluster(ctx, AclOperation::ClusterAction);
    let entries: Vec<MarkerEntry> = req
        .markers
        .iter()
        .map(|m| MarkerEntry {
            producer_id: m.producer_id.0,
            producer_epoch: m.producer_epoch,
            coordinator_epoch: m.coordinator_epoch,
            commit: m.transaction_result,
            partitions: m
                .topics
                .iter()
                .flat_map(|t| {
                    t.partition_indexes
                        .iter()
                        .map(|p| (t.name.0.to_string(), *p))
                })
                .collect::<BTreeSet<_>>(),
        })
        .collect();
    let results = if allowed {
        write_local(broker.txns.marker_target(), entries.clone()).await
    } else {
        entries
            .iter()
            .map(|e| {
                e.partitions
                    .iter()
                    .map(|tp| (tp.clone(), Some(Error::ClusterAuthorizationFailed)))
                    .collect()
            })
            .collect()
    };
    let markers = entries
        .iter()
        .zip(results)
        .map(|(e, r)| {
            let mut topics: Vec<WritableTxnMarkerTopicResult> = Vec::new();
            for ((topic, p), error) in r {
                let pr = WritableTxnMarkerPartitionResult::default()
                    .with_partition_index(p)
                    .with_error_code(error.map_or(0, code));
                match topics.iter_mut().find(|t| t.name.0.as_str() == topic) {
                    Some(t) => t.partitions.push(pr),
                    None => topics.push(
                        WritableTxnMarkerTopicResult::default()
                            .with_name(TopicName(topic.into()))
                            .with_partitions(vec![pr]),
                    ),
                }
            }
            WritableTxnMarkerResult::default()
                .with_producer_id(kafka_protocol::messages::ProducerId(e.producer_id))
                .with_topics(topics)
        })
        .collect();
    Some(WriteTxnMarkersResponse::default().with_markers(markers))
}
