//! AlterPartitionReassignments (key 45, v0) and ListPartitionReassignments (key 46, v0),
//! KIP-455 in ZooKeeper mode: Cluster ALTER / DESCRIBE; the active controller validates
//! and starts (or cancels, with null replicas) each reassignment and answers at once; the
//! controller then carries it out (`controller::reassign`), the progress kept in the topic
//! znode's `adding_replicas` / `removing_replicas` as Kafka keeps it.

use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use std::time::Duration;

use super::errors::{code, Error};
use super::{RequestContext, Versions};
use crate::broker::Broker;
use crate::controller::reassign::ReassignError;
use crate::coordination::ClusterImage;
use crate::security::acl::AclOperation;

pub mod alter {
    pub const VERSIONS: super::Versions = super::Versions::new(0, 0);
}
pub mod list {
    pub const VERSIONS: super::Versions = super::Versions::new(0, 0);
}

fn msg(s: impl Into<String>) -> Option<StrBytes> {
    Some(StrBytes::from_string(s.into()))
}

pub async fn alter_partition_reassignments(
    broker: &Broker,
    ctx: &RequestContext,
    req: AlterPartitionReassignmentsRequest,
) -> Option<AlterPartitionReassignmentsResponse> {
    let changes: Vec<(String, i32, Option<Vec<i32>>)> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                let target = p.replicas.as_ref().map(|r| r.iter().map(|b| b.0).collect());
                (t.name.0.to_string(), p.partition_index, target)
            })
        })
        .collect();
    let fail_all = |error: Error, message: Option<String>| {
        let outcomes = changes
            .iter()
            .map(|_| Err((error, message.clone())))
            .collect();
        respond(&changes, outcomes)
            .with_error_code(code(error))
            .with_error_message(message.clone().and_then(msg))
    };
    if !broker.authorize_cluster(ctx, AclOperation::Alter) {
        return Some(fail_all(Error::ClusterAuthorizationFailed, None));
    }
    if broker.image().controller_id != Some(broker.config.broker_id) {
        return Some(fail_all(Error::NotController, None));
    }
    let Ok(results) = broker.controller.reassign(changes.clone()).await else {
        return Some(fail_all(Error::NotController, None));
    };
    let accepted: Vec<_> = changes
        .iter()
        .zip(&results)
        .filter(|(_, r)| r.is_ok())
        .map(|(c, _)| c)
        .collect();
    let wait = Duration::from_millis(req.timeout_ms.clamp(0, 30_000) as u64);
    let mut rx = broker.image.clone();
    // Answer once this broker's metadata shows the moves, so a ListPartitionReassignments
    // (or Metadata) right after the answer sees them, as Kafka's in-memory controller
    // state would; the moves stand either way.
    crate::coordination::watcher::wait_for(&mut rx, wait, |img| {
        accepted
            .iter()
            .all(|(t, p, target)| shows(img, t, *p, target.as_deref()))
    })
    .await;
    let outcomes = results
        .into_iter()
        .map(|r| {
            r.map_err(|e| match e {
                ReassignError::UnknownTopicOrPartition => (Error::UnknownTopicOrPartition, None),
                ReassignError::InvalidReplicaAssignment(m) => {
                    (Error::InvalidReplicaAssignment, Some(m))
                }
                ReassignError::NoReassignmentInProgress => (Error::NoReassignmentInProgress, None),
            })
        })
        .collect();
    Some(respond(&changes, outcomes))
}

/// Whether `image` shows a partition moving to (or at) `target`, or with its move
/// cancelled (`None`): the target is the assignment without the replicas being removed
/// (KIP-455: RS = TRS ++ (ORS - TRS)).
fn shows(image: &ClusterImage, topic: &str, partition: i32, target: Option<&[i32]>) -> bool {
    let Some(info) = image.partition(topic, partition) else {
        return true; // deleted meanwhile: nothing to wait for
    };
    match target {
        Some(target) => {
            let heading_to: Vec<i32> = info
                .replicas
                .iter()
                .copied()
                .filter(|r| !info.removing.contains(r))
                .collect();
            heading_to == target
        }
        None => info.adding.is_empty() && info.removing.is_empty(),
    }
}

type Outcome = Result<(), (Error, Option<String>)>;

fn respond(
    changes: &[(String, i32, Option<Vec<i32>>)],
    outcomes: Vec<Outcome>,
) -> AlterPartitionReassignmentsResponse {
    let mut topics: Vec<ReassignableTopicResponse> = Vec::new();
    for ((topic, p, _), outcome) in changes.iter().zip(outcomes) {
        let (error, message) = match outcome {
            Ok(()) => (0, None),
            Err((e, m)) => (code(e), m.and_then(msg)),
        };
        let r = ReassignablePartitionResponse::default()
            .with_partition_index(*p)
            .with_error_code(error)
            .with_error_message(message);
        match topics.iter_mut().find(|t| t.name.as_str() == topic) {
            Some(t) => t.partitions.push(r),
            None => topics.push(
                ReassignableTopicResponse::default()
                    .with_name(TopicName(StrBytes::from_string(topic.clone())))
                    .with_partitions(vec![r]),
            ),
        }
    }
    AlterPartitionReassignmentsResponse::default().with_responses(topics)
}

pub async fn list_partition_reassignments(
    broker: &Broker,
    ctx: &RequestContext,
    req: ListPartitionReassignmentsRequest,
) -> Option<ListPartitionReassignmentsResponse> {
    let fail =
        |e: Error| Some(ListPartitionReassignmentsResponse::default().with_error_code(code(e)));
    if !broker.authorize_cluster(ctx, AclOperation::Describe) {
        return fail(Error::ClusterAuthorizationFailed);
    }
    let image = broker.image();
    if image.controller_id != Some(broker.config.broker_id) {
        return fail(Error::NotController);
    }
    let wanted = |topic: &str, p: i32| match &req.topics {
        None => true,
        Some(ts) => ts
            .iter()
            .any(|t| t.name.0.as_str() == topic && t.partition_indexes.contains(&p)),
    };
    let mut topics = Vec::new();
    for t in image.topics.values() {
        let partitions: Vec<OngoingPartitionReassignment> = t
            .partitions
            .iter()
            .filter(|(p, i)| {
                (!i.adding.is_empty() || !i.removing.is_empty()) && wanted(&t.name, **p)
            })
            .map(|(p, i)| {
                let ids = |v: &[i32]| v.iter().map(|b| BrokerId(*b)).collect();
                OngoingPartitionReassignment::default()
                    .with_partition_index(*p)
                    .with_replicas(ids(&i.replicas))
                    .with_adding_replicas(ids(&i.adding))
                    .with_removing_replicas(ids(&i.removing))
            })
            .collect();
        if !partitions.is_empty() {
            topics.push(
                OngoingTopicReassignment::default()
                    .with_name(TopicName(StrBytes::from_string(t.name.clone())))
                    .with_partitions(partitions),
            );
        }
    }
    Some(ListPartitionReassignmentsResponse::default().with_topics(topics))
}
