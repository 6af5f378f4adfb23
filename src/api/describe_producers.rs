//! DescribeProducers (key 61, v0; KIP-664, `kafka-transactions describe-producers`): the
//! producer state a partition leader keeps (id, epoch, last sequence and timestamp,
//! coordinator epoch; `current_txn_start_offset` -1: no ongoing transaction is tracked).
//! Topic READ is required (TOPIC_AUTHORIZATION_FAILED); a partition not led here answers
//! NOT_LEADER_OR_FOLLOWER, an unknown one UNKNOWN_TOPIC_OR_PARTITION.

use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};

use super::errors::{code, Error};
use super::{RequestContext, Versions};
use crate::broker::Broker;
use crate::replica::Role;
use crate::security::acl::AclOperation;

pub const VERSIONS: Versions = Versions::new(0, 0);

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: DescribeProducersRequest,
) -> Option<DescribeProducersResponse> {
    let image = broker.image();
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let allowed = broker.authorize_topic(ctx, AclOperation::Read, &t.name);
            let partitions = t
                .partition_indexes
                .iter()
                .map(|&p| {
                    let base = PartitionResponse::default().with_partition_index(p);
                    let fail = |e: Error| base.clone().with_error_code(code(e));
                    if !allowed {
                        return fail(Error::TopicAuthorizationFailed);
                    }
                    if image.partition(&t.name, p).is_none() {
                        return fail(Error::UnknownTopicOrPartition);
                    }
                    let Some(partition) = broker.replicas.partition(&t.name, p) else {
                        return fail(Error::NotLeaderOrFollower);
                    };
                    if partition.role() != Role::Leader {
                        return fail(Error::NotLeaderOrFollower);
                    }
                    let producers = partition
                        .log()
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .active_producers();
                    base.with_error_code(0).with_active_producers(
                        producers
                            .into_iter()
                            .map(|(id, s)| {
                                ProducerState::default()
                                    .with_producer_id(ProducerId(id))
                                    .with_producer_epoch(i32::from(s.producer_epoch))
                                    .with_last_sequence(s.last_sequence)
                                    .with_last_timestamp(s.last_timestamp)
                                    .with_coordinator_epoch(s.coordinator_epoch)
                                    .with_current_txn_start_offset(-1)
                            })
                            .collect(),
                    )
                })
                .collect();
            TopicResponse::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    Some(DescribeProducersResponse::default().with_topics(topics))
}
