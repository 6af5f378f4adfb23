//! ElectLeaders (key 43, v0-v2; KIP-183 preferred, KIP-460 unclean), served as Kafka's
//! ZooKeeper-mode brokers do: Cluster ALTER required; the active controller elects (any
//! other broker answers NOT_CONTROLLER for every partition); the answer waits, up to the
//! request timeout, until this broker's metadata shows the new leaders. A request for all
//! partitions (null list) answers only the partitions that had an election or an error
//! other than ELECTION_NOT_NEEDED.

use std::time::Duration;

use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::errors::{code, Error};
use super::{RequestContext, Versions};
use crate::broker::Broker;
use crate::controller::election::{ElectError, ElectionType};
use crate::security::acl::AclOperation;

pub const VERSIONS: Versions = Versions::new(0, 2);

const MAX_WAIT: Duration = Duration::from_secs(120);

type Outcome = Result<(), (Error, Option<String>)>;

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: ElectLeadersRequest,
) -> Option<ElectLeadersResponse> {
    let all = req.topic_partitions.is_none();
    let image = broker.image();
    let partitions: Vec<(String, i32)> = match &req.topic_partitions {
        Some(tps) => tps
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| (t.topic.0.to_string(), *p)))
            .collect(),
        None => image
            .topics
            .values()
            .flat_map(|t| t.partitions.keys().map(|p| (t.name.clone(), *p)))
            .collect(),
    };
    // v0 has no election type: preferred.
    let kind = if ctx.api_version == 0 {
        Some(ElectionType::Preferred)
    } else {
        ElectionType::from_code(req.election_type)
    };
    let outcomes: Vec<Outcome> = if !broker.authorize_cluster(ctx, AclOperation::Alter) {
        let response = respond(
            &partitions,
            |_| Err((Error::ClusterAuthorizationFailed, None)),
            false,
        );
        return Some(response.with_error_code(code(Error::ClusterAuthorizationFailed)));
    } else if let Some(kind) = kind {
        elect(broker, kind, &partitions, req.timeout_ms).await
    } else {
        partitions
            .iter()
            .map(|_| {
                Err((
                    Error::InvalidRequest,
                    Some(format!("Unknown election type {}", req.election_type)),
                ))
            })
            .collect()
    };
    let mut it = outcomes.into_iter();
    Some(respond(&partitions, |_| it.next().unwrap_or(Ok(())), all))
}

async fn elect(
    broker: &Broker,
    kind: ElectionType,
    partitions: &[(String, i32)],
    timeout_ms: i32,
) -> Vec<Outcome> {
    let not_controller = || {
        partitions
            .iter()
            .map(|_| Err((Error::NotController, None)))
            .collect()
    };
    if broker.image().controller_id != Some(broker.config.broker_id) {
        return not_controller();
    }
    // Taken before the election: its writes may reach this broker's metadata before
    // `elect` returns, and "moved" means a leader epoch above the one before it.
    let before = broker.image();
    let Ok(results) = broker.controller.elect(kind, partitions.to_vec()).await else {
        return not_controller();
    };
    // Wait until the elected leaders show in the metadata (Kafka's DelayedElectLeader).
    let wait = Duration::from_millis(timeout_ms.max(0) as u64).min(MAX_WAIT);
    let elected: Vec<&(String, i32)> = partitions
        .iter()
        .zip(&results)
        .filter(|(_, r)| r.is_ok())
        .map(|(p, _)| p)
        .collect();
    let mut rx = broker.image.clone();
    let moved = |img: &crate::coordination::ClusterImage, (t, p): &(String, i32)| {
        let old = before
            .partition(t, *p)
            .and_then(|i| i.state.as_ref())
            .map_or(-1, |s| s.leader_epoch);
        img.partition(t, *p)
            .and_then(|i| i.state.as_ref())
            .is_some_and(|s| s.leader_epoch > old)
    };
    let done = crate::coordination::watcher::wait_for(&mut rx, wait, |img| {
        elected.iter().all(|p| moved(img, p))
    })
    .await;
    let now = broker.image();
    results
        .into_iter()
        .zip(partitions)
        .map(|(r, p)| match r {
            Ok(()) if done || moved(&now, p) => Ok(()),
            Ok(()) => Err((Error::RequestTimedOut, None)),
            Err(ElectError::UnknownTopicOrPartition) => Err((Error::UnknownTopicOrPartition, None)),
            Err(ElectError::ElectionNotNeeded) => Err((
                Error::ElectionNotNeeded,
                Some("Leader election not needed for topic partition.".into()),
            )),
            Err(ElectError::PreferredLeaderNotAvailable(m)) => {
                Err((Error::PreferredLeaderNotAvailable, Some(m)))
            }
            Err(ElectError::EligibleLeadersNotAvailable(m)) => {
                Err((Error::EligibleLeadersNotAvailable, Some(m)))
            }
        })
        .collect()
}

fn respond(
    partitions: &[(String, i32)],
    mut outcome: impl FnMut(&(String, i32)) -> Outcome,
    all: bool,
) -> ElectLeadersResponse {
    let mut topics: Vec<ReplicaElectionResult> = Vec::new();
    for tp in partitions {
        let (error, message) = match outcome(tp) {
            Ok(()) => (0, None),
            Err((e, m)) => (code(e), m),
        };
        if all && error == code(Error::ElectionNotNeeded) {
            continue;
        }
        let result = PartitionResult::default()
            .with_partition_id(tp.1)
            .with_error_code(error)
            .with_error_message(message.map(StrBytes::from_string));
        match topics.iter_mut().find(|t| t.topic.0.as_str() == tp.0) {
            Some(t) => t.partition_result.push(result),
            None => topics.push(
                ReplicaElectionResult::default()
                    .with_topic(TopicName(StrBytes::from_string(tp.0.clone())))
                    .with_partition_result(vec![result]),
            ),
        }
    }
    ElectLeadersResponse::default().with_replica_election_results(topics)
}
