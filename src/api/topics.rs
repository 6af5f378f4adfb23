//! Topic administration APIs: CreateTopics (key 19, v0-v7), DeleteTopics (key 20,
//! v0-v6) and CreatePartitions (key 37, v0-v3). Validation and the ZooKeeper writes live
//! in `crate::admin`; these handlers translate requests and wait (up to the request's
//! timeout, as Kafka's delayed operations do) for the controller to carry them out.

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::errors::{code, Error};
use super::{RequestContext, Versions};
use crate::admin::{AdminError, CreatedTopic, TopicSpec, MAX_PARTITIONS_PER_REQUEST};
use crate::broker::Broker;
use crate::config::topic::TOPIC_KEYS;
use crate::config::ConfigSource;
use crate::security::acl::AclOperation;

pub mod create_topics {
    pub const VERSIONS: super::Versions = super::Versions::new(0, 7);
}
pub mod delete_topics {
    pub const VERSIONS: super::Versions = super::Versions::new(0, 6);
}
pub mod create_partitions {
    pub const VERSIONS: super::Versions = super::Versions::new(0, 3);
}

fn msg(s: impl Into<String>) -> Option<StrBytes> {
    Some(StrBytes::from_string(s.into()))
}

/// The longest an admin request waits for the controller to carry it out, whatever
/// `timeout_ms` it sends (i32::MAX would hold its connection for 24 days); past it the
/// answer is REQUEST_TIMED_OUT and the work goes on, as after any timeout.
const MAX_ADMIN_WAIT: Duration = Duration::from_secs(120);

fn timeout(ms: i32) -> Duration {
    Duration::from_millis(ms.max(0) as u64).min(MAX_ADMIN_WAIT)
}

const TOO_MANY_PARTITIONS: &str = "Excessively large number of partitions per request.";

/// Partitions a CreateTopics request asks for, `default` standing in for -1.
fn requested_partitions(req: &CreateTopicsRequest, default: i32) -> i64 {
    req.topics
        .iter()
        .map(|t| match (t.assignments.len(), t.num_partitions) {
            (0, -1) => default as i64,
            (0, n) => n.max(0) as i64,
            (rows, _) => rows as i64,
        })
        .sum()
}

pub async fn create_topics(
    broker: &Broker,
    ctx: &RequestContext,
    req: CreateTopicsRequest,
) -> Option<CreateTopicsResponse> {
    if requested_partitions(&req, broker.config.num_partitions) > MAX_PARTITIONS_PER_REQUEST {
        let results = req
            .topics
            .iter()
            .map(|t| {
                CreatableTopicResult::default()
                    .with_name(t.name.clone())
                    .with_num_partitions(-1)
                    .with_replication_factor(-1)
                    .with_error_code(code(Error::PolicyViolation))
                    .with_error_message(msg(TOO_MANY_PARTITIONS))
            })
            .collect();
        return Some(CreateTopicsResponse::default().with_topics(results));
    }
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for t in &req.topics {
        *seen.entry(t.name.0.to_string()).or_default() += 1;
    }
    let mut results = Vec::with_capacity(req.topics.len());
    let mut created_names = Vec::new();
    // Cluster CREATE covers every topic, else CREATE on each (KafkaApis.handleCreateTopicsRequest).
    let cluster_create = broker.authorize_cluster(ctx, AclOperation::Create);
    for t in &req.topics {
        let name = t.name.0.to_string();
        let base = CreatableTopicResult::default()
            .with_name(t.name.clone())
            .with_num_partitions(-1)
            .with_replication_factor(-1);
        if seen[&name] > 1 {
            results.push(
                base.with_error_code(code(Error::InvalidRequest))
                    .with_error_message(msg(format!("Create topics request from client `{}` contains multiple entries for the following topics: {name}", ctx.client_id))),
            );
            continue;
        }
        if !cluster_create && !broker.authorize_topic(ctx, AclOperation::Create, &name) {
            results.push(
                base.with_error_code(code(Error::TopicAuthorizationFailed))
                    .with_error_message(msg("Authorization failed.")),
            );
            continue;
        }
        let configs: BTreeMap<String, String> = t
            .configs
            .iter()
            .filter_map(|c| {
                c.value
                    .as_ref()
                    .map(|v| (c.name.to_string(), v.to_string()))
            })
            .collect();
        let spec = TopicSpec {
            name: name.clone(),
            num_partitions: t.num_partitions,
            replication_factor: t.replication_factor,
            assignments: t
                .assignments
                .iter()
                .map(|a| {
                    (
                        a.partition_index,
                        a.broker_ids.iter().map(|b| b.0).collect(),
                    )
                })
                .collect(),
            configs,
        };
        match broker.admin().create_topic(&spec, req.validate_only).await {
            Ok(created) => {
                if !req.validate_only {
                    created_names.push((name.clone(), created.num_partitions as usize));
                }
                let mut result = success(base, &created, ctx.api_version);
                if ctx.api_version >= 5
                    && !broker.authorize_topic(ctx, AclOperation::DescribeConfigs, &name)
                {
                    // Created, but its configs are not the principal's to see.
                    result.configs = None;
                    result.topic_config_error_code = code(Error::TopicAuthorizationFailed);
                }
                results.push(result);
            }
            Err(AdminError { error, message }) => {
                results.push(
                    base.with_error_code(code(error))
                        .with_error_message(msg(message)),
                );
            }
        }
    }
    if req.timeout_ms > 0 {
        // Like Kafka's DelayedCreatePartitions: wait for leaders, else REQUEST_TIMED_OUT.
        for (name, partitions) in created_names {
            let ready = broker
                .wait_for_topic(&name, true, partitions, timeout(req.timeout_ms))
                .await;
            if !ready {
                if let Some(r) = results.iter_mut().find(|r| r.name.0.as_str() == name) {
                    r.error_code = code(Error::RequestTimedOut);
                    r.error_message =
                        msg(format!("Timed out waiting for leaders of topic {name}."));
                }
            }
        }
    }
    Some(CreateTopicsResponse::default().with_topics(results))
}

fn success(
    base: CreatableTopicResult,
    created: &CreatedTopic,
    version: i16,
) -> CreatableTopicResult {
    let result = base
        .with_error_code(0)
        .with_topic_id(created.topic_id)
        .with_num_partitions(created.num_partitions)
        .with_replication_factor(created.replication_factor);
    if version < 5 {
        return result;
    }
    let configs = TOPIC_KEYS
        .iter()
        .map(|tk| {
            let (value, is_override) = created.config.get(tk.key.name).unwrap_or_default();
            let source = if is_override {
                ConfigSource::TopicConfig
            } else {
                ConfigSource::DefaultConfig
            };
            CreatableTopicConfigs::default()
                .with_name(StrBytes::from_static_str(tk.key.name))
                .with_value(Some(StrBytes::from_string(value)))
                .with_read_only(false)
                .with_config_source(source as i8)
                .with_is_sensitive(false)
        })
        .collect();
    result.with_configs(Some(configs))
}

pub async fn delete_topics(
    broker: &Broker,
    ctx: &RequestContext,
    req: DeleteTopicsRequest,
) -> Option<DeleteTopicsResponse> {
    // v6 names topics by name or id; earlier versions by name only.
    let image = broker.image();
    // (name, id, named by id)
    let targets: Vec<(Option<String>, uuid::Uuid, bool)> = if ctx.api_version >= 6 {
        req.topics
            .iter()
            .map(|t| match &t.name {
                Some(n) => (Some(n.0.to_string()), t.topic_id, false),
                None => (
                    image.topic_by_id(&t.topic_id).map(|i| i.name.clone()),
                    t.topic_id,
                    true,
                ),
            })
            .collect()
    } else {
        req.topic_names
            .iter()
            .map(|n| (Some(n.0.to_string()), uuid::Uuid::nil(), false))
            .collect()
    };
    let mut results = Vec::new();
    let mut pending = Vec::new();
    for (name, id, by_id) in targets {
        let base = DeletableTopicResult::default().with_topic_id(id);
        let Some(name) = name else {
            results.push(
                base.with_error_code(code(Error::UnknownTopicId))
                    .with_error_message(msg("This server does not host this topic ID.")),
            );
            continue;
        };
        // Named by id without DESCRIBE: refused without disclosing the name.
        if by_id && !broker.authorize_topic(ctx, AclOperation::Describe, &name) {
            results.push(base.with_error_code(code(Error::TopicAuthorizationFailed)));
            continue;
        }
        let base = base.with_name(Some(TopicName(StrBytes::from_string(name.clone()))));
        if !broker.authorize_topic(ctx, AclOperation::Delete, &name) {
            results.push(base.with_error_code(code(Error::TopicAuthorizationFailed)));
            continue;
        }
        match broker.admin().delete_topic(&name).await {
            Ok(topic_id) => {
                pending.push(name);
                results.push(base.with_topic_id(topic_id).with_error_code(0));
            }
            Err(AdminError { error, message }) => {
                results.push(
                    base.with_error_code(code(error))
                        .with_error_message(msg(message)),
                );
            }
        }
    }
    for name in pending {
        let gone = broker
            .wait_for_topic(&name, false, 0, timeout(req.timeout_ms))
            .await;
        if !gone {
            if let Some(r) = results
                .iter_mut()
                .find(|r| r.name.as_ref().is_some_and(|n| n.0.as_str() == name))
            {
                r.error_code = code(Error::RequestTimedOut);
                r.error_message = msg(format!("Timed out waiting for deletion of topic {name}."));
            }
        }
    }
    Some(DeleteTopicsResponse::default().with_responses(results))
}

pub async fn create_partitions(
    broker: &Broker,
    ctx: &RequestContext,
    req: CreatePartitionsRequest,
) -> Option<CreatePartitionsResponse> {
    let image = broker.image();
    let added: i64 = req
        .topics
        .iter()
        .map(|t| {
            let current = image
                .topic(&t.name)
                .map_or(0, |i| i.partitions.len() as i64);
            (t.count as i64 - current).max(0)
        })
        .sum();
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for t in &req.topics {
        *seen.entry(t.name.0.as_str()).or_default() += 1;
    }
    let mut results = Vec::with_capacity(req.topics.len());
    let mut pending = Vec::new();
    for t in &req.topics {
        let name = t.name.0.to_string();
        let refused = if added > MAX_PARTITIONS_PER_REQUEST {
            Some((Error::PolicyViolation, TOO_MANY_PARTITIONS.to_string()))
        } else if seen[name.as_str()] > 1 {
            // Kafka's ZkAdminManager: duplicate topics are refused, the rest served.
            Some((
                Error::InvalidRequest,
                "Duplicate topic in request.".to_string(),
            ))
        } else if !broker.authorize_topic(ctx, AclOperation::Alter, &name) {
            Some((
                Error::TopicAuthorizationFailed,
                "The topic authorization is failed.".to_string(),
            ))
        } else {
            None
        };
        if let Some((error, message)) = refused {
            results.push(
                CreatePartitionsTopicResult::default()
                    .with_name(t.name.clone())
                    .with_error_code(code(error))
                    .with_error_message(msg(message)),
            );
            continue;
        }
        let manual = t.assignments.as_ref().map(|rows| {
            rows.iter()
                .map(|a| a.broker_ids.iter().map(|b| b.0).collect())
                .collect()
        });
        let result = CreatePartitionsTopicResult::default().with_name(t.name.clone());
        match broker
            .admin()
            .create_partitions(&name, t.count, manual, req.validate_only)
            .await
        {
            Ok(()) => {
                if !req.validate_only {
                    pending.push((name, t.count as usize));
                }
                results.push(result.with_error_code(0));
            }
            Err(AdminError { error, message }) => {
                results.push(
                    result
                        .with_error_code(code(error))
                        .with_error_message(msg(message)),
                );
            }
        }
    }
    for (name, count) in pending {
        let ready = broker
            .wait_for_topic(&name, true, count, timeout(req.timeout_ms))
            .await;
        if !ready && req.timeout_ms > 0 {
            if let Some(r) = results.iter_mut().find(|r| r.name.0.as_str() == name) {
                r.error_code = code(Error::RequestTimedOut);
                r.error_message = msg(format!("Timed out waiting for new partitions of {name}."));
            }
        }
    }
    Some(CreatePartitionsResponse::default().with_results(results))
}
