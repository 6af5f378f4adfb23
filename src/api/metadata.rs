//! Metadata (key 3), v0-v12: live brokers, controller, and topics with partition leaders,
//! leader epochs, replicas, ISR and offline replicas, from the ZooKeeper-fed image.
//! Unknown topics are auto-created when both the broker (`auto.create.topics.enable`) and
//! the request (v4+ `allow_auto_topic_creation`) allow it.

use std::time::Duration;

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::errors::{code, Error};
use super::{RequestContext, Versions};
use crate::admin::{topic_name, TopicSpec};
use crate::broker::Broker;
use crate::coordination::{ClusterImage, TopicInfo, OFFSETS_TOPIC};
use crate::security::acl::{AclOperation, ResourceType, CLUSTER_NAME};

pub const VERSIONS: Versions = Versions::new(0, 12);

/// How long a Metadata request that auto-created a topic waits for its leaders before
/// answering LEADER_NOT_AVAILABLE (clients retry on it).
const AUTO_CREATE_WAIT: Duration = Duration::from_millis(1000);

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: MetadataRequest,
) -> Option<MetadataResponse> {
    let mut image = broker.image();
    // v0: an empty list means all topics; v1+: null means all, empty means none.
    let all_topics = match &req.topics {
        None => true,
        Some(t) => t.is_empty() && ctx.api_version == 0,
    };
    // Kafka answers each topic once, however often it is named (KafkaApis turns the list
    // into a set): a request repeating one name 200,000 times gets one entry, not a
    // response of hundreds of megabytes.
    let requested = dedup_topics(req.topics.clone().unwrap_or_default());
    // v12+: topics may be named by id. Like Kafka, any non-zero id switches the request to
    // lookups by id (Java sends the name as "" then, not null) and disables auto-creation.
    let by_id = requested.iter().any(|t| !t.topic_id.is_nil());
    let auto_create = broker.config.auto_create_topics_enable
        && (ctx.api_version < 4 || req.allow_auto_topic_creation)
        && !by_id;

    // Auto-creation needs Cluster CREATE or CREATE on the topic, on top of DESCRIBE
    // (KafkaApis.handleTopicMetadataRequest).
    let cluster_create = broker.authorize_cluster(ctx, AclOperation::Create);
    let describable = |name: &str| broker.authorize_topic(ctx, AclOperation::Describe, name);
    let creatable =
        |name: &str| cluster_create || broker.authorize_topic(ctx, AclOperation::Create, name);
    let include_ops = ctx.api_version >= 8 && req.include_topic_authorized_operations;
    let entry = |image: &ClusterImage, info: &TopicInfo| {
        let ops = broker.authorized_operations(ctx, include_ops, ResourceType::Topic, &info.name);
        topic_entry(image, info).with_topic_authorized_operations(ops)
    };

    if auto_create && !all_topics {
        let mut created = Vec::new();
        // Auto-creation is bounded like an explicit CreateTopics request.
        let per_topic = broker.config.num_partitions.max(1) as i64;
        let mut budget = crate::admin::MAX_PARTITIONS_PER_REQUEST / per_topic;
        for t in &requested {
            let Some(name) = t.name.as_ref().map(|n| n.0.to_string()) else {
                continue;
            };
            if image.topic(&name).is_some()
                || name == OFFSETS_TOPIC
                || topic_name::validate(&name).is_err()
                || !describable(&name)
                || !creatable(&name)
            {
                continue;
            }
            if budget == 0 {
                break;
            }
            budget -= 1;
            if auto_create_topic(broker, &name).await {
                created.push(name);
            }
        }
        // One wait for all of them, not one per topic.
        let deadline = tokio::time::Instant::now() + AUTO_CREATE_WAIT;
        for name in &created {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            broker.wait_for_topic(name, true, 1, left).await;
        }
        if !created.is_empty() {
            image = broker.image();
        }
    }

    let topics = if all_topics {
        // Topics the principal may not describe are not disclosed at all.
        image
            .topics
            .values()
            .filter(|t| describable(&t.name))
            .map(|t| entry(&image, t))
            .collect()
    } else {
        requested
            .iter()
            .map(|t| match &t.name {
                Some(name) if !by_id && !describable(name) => unauthorized(Some(name.clone())),
                Some(name) if !by_id => match image.topic(name) {
                    Some(info) => entry(&image, info),
                    None if auto_create && !creatable(name) => unauthorized(Some(name.clone())),
                    None => missing_topic(name, auto_create),
                },
                _ => match image.topic_by_id(&t.topic_id) {
                    // Topic ids are not secret: the id is echoed, the name is not.
                    Some(info) if !describable(&info.name) => {
                        unauthorized(None).with_topic_id(t.topic_id)
                    }
                    Some(info) => entry(&image, info),
                    None => MetadataResponseTopic::default()
                        .with_error_code(code(Error::UnknownTopicId))
                        .with_topic_id(t.topic_id),
                },
            })
            .collect()
    };
    let cluster_ops = if ctx.api_version >= 8 && req.include_cluster_authorized_operations {
        if broker.authorize_cluster(ctx, AclOperation::Describe) {
            broker.authorized_operations(ctx, true, ResourceType::Cluster, CLUSTER_NAME)
        } else {
            0
        }
    } else {
        i32::MIN
    };

    Some(
        MetadataResponse::default()
            .with_brokers(brokers(&image, &ctx.listener_name))
            .with_cluster_id(Some(StrBytes::from_string(image.cluster_id.clone())))
            .with_controller_id(BrokerId(image.controller_id.unwrap_or(-1)))
            .with_topics(topics)
            .with_cluster_authorized_operations(cluster_ops),
    )
}

/// The requested topics without repeats (by name, or by id for v12 lookups), first
/// occurrence kept.
fn dedup_topics(topics: Vec<MetadataRequestTopic>) -> Vec<MetadataRequestTopic> {
    let mut seen = std::collections::HashSet::new();
    topics
        .into_iter()
        .filter(|t| seen.insert((t.name.clone(), t.topic_id)))
        .collect()
}

/// Creates a topic with the broker defaults. Another broker creating it at the same
/// moment is fine.
async fn auto_create_topic(broker: &Broker, name: &str) -> bool {
    let spec = TopicSpec {
        name: name.to_string(),
        num_partitions: -1,
        replication_factor: -1,
        assignments: Default::default(),
        configs: Default::default(),
    };
    match broker.admin().create_topic(&spec, false).await {
        Ok(_) => true,
        Err(e) if e.error == Error::TopicAlreadyExists => true,
        Err(e) => {
            tracing::warn!(topic = %name, error = %e.message, "auto-creation failed");
            false
        }
    }
}

fn unauthorized(name: Option<TopicName>) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_error_code(code(Error::TopicAuthorizationFailed))
        .with_name(name)
        .with_topic_authorized_operations(i32::MIN)
}

fn missing_topic(name: &TopicName, auto_create: bool) -> MetadataResponseTopic {
    let error = if topic_name::validate(name).is_err() {
        Error::InvalidTopicException
    } else if auto_create && name.0.as_str() != OFFSETS_TOPIC {
        // Being created: clients retry.
        Error::LeaderNotAvailable
    } else {
        Error::UnknownTopicOrPartition
    };
    MetadataResponseTopic::default()
        .with_error_code(code(error))
        .with_name(Some(name.clone()))
        .with_topic_authorized_operations(i32::MIN)
}

/// The brokers as reachable on `listener` (the one the request came in on); brokers
/// without that listener are left out, as in Kafka.
pub fn brokers(image: &ClusterImage, listener: &str) -> Vec<MetadataResponseBroker> {
    image
        .brokers
        .values()
        .filter_map(|b| {
            let (host, port) = b.endpoint(listener)?;
            Some(
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(b.id))
                    .with_host(StrBytes::from_string(host.to_string()))
                    .with_port(i32::from(port))
                    .with_rack(b.rack.clone().map(StrBytes::from_string)),
            )
        })
        .collect()
}

fn topic_entry(image: &ClusterImage, topic: &TopicInfo) -> MetadataResponseTopic {
    let partitions = topic
        .partitions
        .iter()
        .map(|(p, info)| {
            let live = |id: &i32| image.is_alive(*id);
            let replicas: Vec<BrokerId> = info.replicas.iter().copied().map(BrokerId).collect();
            let offline: Vec<BrokerId> = info
                .replicas
                .iter()
                .filter(|id| !live(id))
                .copied()
                .map(BrokerId)
                .collect();
            let entry = MetadataResponsePartition::default()
                .with_partition_index(*p)
                .with_replica_nodes(replicas)
                .with_offline_replicas(offline);
            match &info.state {
                Some(s) if s.leader >= 0 && live(&s.leader) => entry
                    .with_error_code(0)
                    .with_leader_id(BrokerId(s.leader))
                    .with_leader_epoch(s.leader_epoch)
                    .with_isr_nodes(s.isr.iter().copied().map(BrokerId).collect()),
                Some(s) => entry
                    .with_error_code(code(Error::LeaderNotAvailable))
                    .with_leader_id(BrokerId(-1))
                    .with_leader_epoch(s.leader_epoch)
                    .with_isr_nodes(s.isr.iter().copied().map(BrokerId).collect()),
                None => entry
                    .with_error_code(code(Error::LeaderNotAvailable))
                    .with_leader_id(BrokerId(-1))
                    .with_leader_epoch(-1),
            }
        })
        .collect();
    MetadataResponseTopic::default()
        .with_error_code(0)
        .with_name(Some(TopicName(StrBytes::from_string(topic.name.clone()))))
        .with_topic_id(topic.id)
        .with_is_internal(topic.is_internal())
        .with_partitions(partitions)
        .with_topic_authorized_operations(i32::MIN)
}
