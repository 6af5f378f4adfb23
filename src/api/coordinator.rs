//! FindCoordinator (key 10), v0-v6, single and batched (v4+): a group's coordinator is the
//! leader of its `__consumer_offsets` partition, a transactional id's the leader of its
//! `__transaction_state` partition (Kafka's `KafkaApis.getCoordinator`). The first
//! lookup creates the internal topic and answers COORDINATOR_NOT_AVAILABLE, as Kafka
//! does; clients retry. SHARE keys get INVALID_REQUEST before v6 and
//! COORDINATOR_NOT_AVAILABLE from v6 (no share groups), as in Kafka 3.9.

use std::collections::BTreeMap;

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use super::errors::{code, Error};
use super::{RequestContext, Versions};
use crate::admin::TopicSpec;
use crate::broker::Broker;
use crate::coordination::OFFSETS_TOPIC;
use crate::security::acl::{AclOperation, ResourceType};
use crate::txn::TRANSACTION_STATE_TOPIC;

pub const VERSIONS: Versions = Versions::new(0, 6);

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;
const KEY_TYPE_SHARE: i8 = 2;

fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

pub async fn find_coordinator(
    broker: &Broker,
    ctx: &RequestContext,
    req: FindCoordinatorRequest,
) -> Option<FindCoordinatorResponse> {
    let v = ctx.api_version;
    if v >= 4 {
        let mut coordinators = Vec::with_capacity(req.coordinator_keys.len());
        for key in &req.coordinator_keys {
            let c = Coordinator::default().with_key(key.clone());
            coordinators.push(match lookup(broker, ctx, v, req.key_type, key).await {
                Ok((id, host, port)) => c
                    .with_node_id(BrokerId(id))
                    .with_host(s(host))
                    .with_port(port),
                Err(e) => c
                    .with_node_id(BrokerId(-1))
                    .with_host(s(""))
                    .with_port(-1)
                    .with_error_code(code(e))
                    .with_error_message(Some(s(error_message(e)))),
            });
        }
        return Some(FindCoordinatorResponse::default().with_coordinators(coordinators));
    }
    Some(match lookup(broker, ctx, v, req.key_type, &req.key).await {
        Ok((id, host, port)) => FindCoordinatorResponse::default()
            .with_node_id(BrokerId(id))
            .with_host(s(host))
            .with_port(port),
        Err(e) => FindCoordinatorResponse::default()
            .with_error_code(code(e))
            .with_error_message(Some(s(error_message(e))))
            .with_node_id(BrokerId(-1))
            .with_host(s(""))
            .with_port(-1),
    })
}

fn error_message(e: Error) -> &'static str {
    match e {
        Error::CoordinatorNotAvailable => "The coordinator is not available.",
        Error::InvalidRequest => "Unsupported coordinator key type.",
        _ => "",
    }
}

/// The coordinator node (id, host, port) of `key`.
async fn lookup(
    broker: &Broker,
    ctx: &RequestContext,
    version: i16,
    key_type: i8,
    key: &str,
) -> Result<(i32, String, i32), Error> {
    // Group / TransactionalId DESCRIBE (KafkaApis.getCoordinator).
    let topic = match key_type {
        KEY_TYPE_GROUP if !broker.authorize_group(ctx, AclOperation::Describe, key) => {
            return Err(Error::GroupAuthorizationFailed)
        }
        KEY_TYPE_TRANSACTION
            if !broker.authorize(
                ctx,
                AclOperation::Describe,
                ResourceType::TransactionalId,
                key,
            ) =>
        {
            return Err(Error::TransactionalIdAuthorizationFailed)
        }
        KEY_TYPE_GROUP => OFFSETS_TOPIC,
        KEY_TYPE_TRANSACTION => TRANSACTION_STATE_TOPIC,
        KEY_TYPE_SHARE if version < 6 => return Err(Error::InvalidRequest),
        KEY_TYPE_SHARE => return Err(Error::CoordinatorNotAvailable),
        _ => return Err(Error::InvalidRequest),
    };
    let image = broker.image();
    let Some(info) = image.topic(topic) else {
        create_internal_topic(broker, topic).await;
        return Err(Error::CoordinatorNotAvailable);
    };
    let p = crate::group::partition_for(key, info.partitions.len() as i32);
    let leader = info
        .partitions
        .get(&p)
        .and_then(|info| info.state.as_ref())
        .map(|st| st.leader)
        .filter(|l| *l >= 0)
        .ok_or(Error::CoordinatorNotAvailable)?;
    let node = image
        .brokers
        .get(&leader)
        .ok_or(Error::CoordinatorNotAvailable)?;
    // The coordinator as reachable on the client's listener (Kafka answers
    // COORDINATOR_NOT_AVAILABLE when it has no such listener).
    let (host, port) = node
        .endpoint(&ctx.listener_name)
        .ok_or(Error::CoordinatorNotAvailable)?;
    Ok((node.id, host.to_string(), i32::from(port)))
}

/// Creates `__consumer_offsets` or `__transaction_state` as Kafka does on the first
/// FindCoordinator: compacted, the configured partitions and segment size, the
/// replication factor capped by the live brokers; `__transaction_state` also gets
/// `transaction.state.log.min.isr` (capped by its replication factor) and no unclean
/// leader election (Kafka's `transactionTopicConfigs`).
async fn create_internal_topic(broker: &Broker, topic: &str) {
    let c = &broker.config;
    let live = broker.image().brokers.len().max(1) as i16;
    let spec = if topic == OFFSETS_TOPIC {
        TopicSpec {
            name: OFFSETS_TOPIC.to_string(),
            num_partitions: c.offsets_topic_num_partitions,
            replication_factor: c.offsets_topic_replication_factor.min(live),
            assignments: BTreeMap::new(),
            configs: BTreeMap::from([
                ("cleanup.policy".to_string(), "compact".to_string()),
                (
                    "segment.bytes".to_string(),
                    c.offsets_topic_segment_bytes.to_string(),
                ),
                ("compression.type".to_string(), "producer".to_string()),
            ]),
        }
    } else {
        let rf = c.txn.state_log_replication_factor.min(live);
        TopicSpec {
            name: TRANSACTION_STATE_TOPIC.to_string(),
            num_partitions: c.txn.state_log_num_partitions,
            replication_factor: rf,
            assignments: BTreeMap::new(),
            configs: BTreeMap::from([
                ("cleanup.policy".to_string(), "compact".to_string()),
                (
                    "segment.bytes".to_string(),
                    c.txn.state_log_segment_bytes.to_string(),
                ),
                // The coordinator writes uncompressed batches (Kafka enforces
                // `uncompressed`; gregor stores batches as sent).
                ("compression.type".to_string(), "producer".to_string()),
                (
                    "min.insync.replicas".to_string(),
                    c.txn.state_log_min_isr.min(i32::from(rf)).to_string(),
                ),
                (
                    "unclean.leader.election.enable".to_string(),
                    "false".to_string(),
                ),
            ]),
        }
    };
    match broker.admin().create_topic(&spec, false).await {
        Ok(created) => tracing::info!(
            topic,
            partitions = created.num_partitions,
            rf = created.replication_factor,
            "created internal topic"
        ),
        Err(e) if e.error == Error::TopicAlreadyExists => {}
        Err(e) => tracing::warn!(topic, error = %e.message, "cannot create internal topic"),
    }
}
