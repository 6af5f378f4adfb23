//! Config APIs: DescribeConfigs (key 32, v0-v4; v0 reports `is_default` instead of a
//! source), AlterConfigs (key 33, v0-v2) and
//! IncrementalAlterConfigs (key 44, v0-v1).
//!
//! Topics: every topic key with its effective value and source (DYNAMIC_TOPIC_CONFIG for
//! an override, STATIC_BROKER_CONFIG when the broker file set the default, else
//! DEFAULT_CONFIG), with synonyms, types and documentation when asked, as
//! `kafka-configs --describe --all` and `kafka-topics --describe` expect. Brokers: the
//! config file's values, with the dynamic configs (KIP-226, `config::dynamic`: the
//! replication throttles) over them; those can be altered, for one broker (sent to it)
//! or for every broker (the empty name), and the rest are refused by name.

use std::collections::{BTreeMap, HashSet};

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{
    alter_configs_response, incremental_alter_configs_response, AlterConfigsRequest,
    AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::errors::{code, Error};
use super::{RequestContext, Versions};
use crate::admin::{AdminError, Overrides};
use crate::broker::Broker;
use crate::config::broker::{all_keys, key_def};
use crate::config::keys::{split_list, ConfigKey};
use crate::config::synonyms::{self, Level};
use crate::config::topic::{topic_key_def, TOPIC_KEYS};
use crate::config::{dynamic, ConfigSource, TopicConfig};
use crate::security::acl::AclOperation;

pub mod describe_configs {
    pub const VERSIONS: super::Versions = super::Versions::new(0, 4);
}
pub mod alter_configs {
    pub const VERSIONS: super::Versions = super::Versions::new(0, 2);
}
pub mod incremental_alter_configs {
    pub const VERSIONS: super::Versions = super::Versions::new(0, 1);
}

/// Kafka's `ConfigResource.Type` codes.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

/// Kafka's config-resource check: Topic or Cluster DESCRIBE_CONFIGS / ALTER_CONFIGS,
/// answered per resource (`KafkaApis.authorizeConfigResource`). Other resource types
/// are left to the handlers' own INVALID_REQUEST.
fn config_refusal(
    broker: &Broker,
    ctx: &RequestContext,
    resource_type: i8,
    name: &str,
    op: AclOperation,
) -> Option<AdminError> {
    match resource_type {
        RESOURCE_TOPIC if !broker.authorize_topic(ctx, op, name) => Some(AdminError::new(
            Error::TopicAuthorizationFailed,
            format!("Topic {op} on {name} is not authorized."),
        )),
        RESOURCE_BROKER if !broker.authorize_cluster(ctx, op) => Some(AdminError::new(
            Error::ClusterAuthorizationFailed,
            format!("Cluster {op} is not authorized."),
        )),
        _ => None,
    }
}

fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

pub async fn describe_configs(
    broker: &Broker,
    ctx: &RequestContext,
    req: DescribeConfigsRequest,
) -> Option<DescribeConfigsResponse> {
    let image = broker.image();
    let mut results = Vec::new();
    // Each distinct resource is described once: 200,000 copies of the broker resource
    // would otherwise answer a gigabyte. (Clients key the results by resource.)
    let mut seen = HashSet::new();
    for resource in &req.resources {
        if !seen.insert((
            resource.resource_type,
            &resource.resource_name,
            &resource.configuration_keys,
        )) {
            continue;
        }
        let keys: Option<HashSet<&str>> = resource
            .configuration_keys
            .as_ref()
            .map(|k| k.iter().map(|s| s.as_str()).collect());
        let wanted = |name: &str| keys.as_ref().is_none_or(|k| k.contains(name));
        let base = DescribeConfigsResult::default()
            .with_resource_type(resource.resource_type)
            .with_resource_name(resource.resource_name.clone());
        if let Some(refused) = config_refusal(
            broker,
            ctx,
            resource.resource_type,
            &resource.resource_name,
            AclOperation::DescribeConfigs,
        ) {
            results.push(
                base.with_error_code(code(refused.error))
                    .with_error_message(Some(s(refused.message))),
            );
            continue;
        }
        let result = match resource.resource_type {
            RESOURCE_TOPIC => match image.topic(&resource.resource_name) {
                None => base
                    .with_error_code(code(Error::UnknownTopicOrPartition))
                    .with_error_message(Some(s(format!(
                        "Topic {} does not exist.",
                        &*resource.resource_name
                    )))),
                Some(topic) => {
                    match TopicConfig::new(topic.config.clone(), &broker.config.topic_defaults) {
                        Ok(config) => base.with_error_code(0).with_configs(
                            TOPIC_KEYS
                                .iter()
                                .filter(|tk| wanted(tk.key.name))
                                .map(|tk| {
                                    topic_entry(
                                        broker,
                                        &image,
                                        &config,
                                        tk.key.name,
                                        &req,
                                        ctx.api_version,
                                    )
                                })
                                .collect(),
                        ),
                        Err(err) => base
                            .with_error_code(code(Error::InvalidConfig))
                            .with_error_message(Some(s(err.to_string()))),
                    }
                }
            },
            RESOURCE_BROKER => match broker_entity(broker, &resource.resource_name) {
                Err(e) => base
                    .with_error_code(code(e.error))
                    .with_error_message(Some(s(e.message))),
                Ok(entity) => base.with_error_code(0).with_configs(
                    all_keys()
                        .filter(|k| wanted(k.name))
                        .filter_map(|key| {
                            let levels = broker_levels(broker, &image, entity, key.name);
                            // The cluster default ("") lists only what it sets, as Kafka's
                            // `currentDynamicDefaultConfigs`.
                            let shown = entity.is_some() || !levels.is_empty();
                            shown.then(|| broker_entry(key, levels, &req, ctx.api_version))
                        })
                        .collect(),
                ),
            },
            other => base
                .with_error_code(code(Error::InvalidRequest))
                .with_error_message(Some(s(format!("Unsupported resource type {other}")))),
        };
        results.push(result);
    }
    Some(DescribeConfigsResponse::default().with_results(results))
}

/// Every level that sets a broker key or its synonyms (`config::synonyms`), as the
/// resource sees it: the cluster default (`entity` None) shows only its own level, as
/// Kafka's `createBrokerConfigEntry(perBrokerConfig = false)`.
fn broker_levels(
    broker: &Broker,
    image: &crate::coordination::ClusterImage,
    entity: Option<i32>,
    name: &'static str,
) -> Vec<Level> {
    let id = broker.config.broker_id;
    let mut levels = synonyms::levels(name, |level, key| {
        let value = match level {
            ConfigSource::DynamicBrokerConfig => {
                entity.and(image.dynamic_broker_entries(id, key).0)
            }
            ConfigSource::DynamicDefaultBrokerConfig => image.dynamic_broker_entries(id, key).1,
            ConfigSource::StaticBrokerConfig => broker.config.file_value(key),
            ConfigSource::DefaultConfig => key_def(key).and_then(|k| k.default),
            ConfigSource::TopicConfig => None,
        };
        value.map(str::to_string)
    });
    if entity.is_none() {
        levels.retain(|l| l.source == ConfigSource::DynamicDefaultBrokerConfig);
    }
    levels
}

/// A config's synonyms in a DescribeConfigs answer.
fn synonym(name: &'static str, value: String, source: ConfigSource) -> DescribeConfigsSynonym {
    DescribeConfigsSynonym::default()
        .with_name(StrBytes::from_static_str(name))
        .with_value(Some(s(value)))
        .with_source(source as i8)
}

/// One broker key as DescribeConfigs reports it: the level in force, and with synonyms
/// every level.
fn broker_entry(
    key: &'static ConfigKey,
    levels: Vec<Level>,
    req: &DescribeConfigsRequest,
    version: i16,
) -> DescribeConfigsResourceResult {
    let (value, source) = levels
        .first()
        .map_or((None, ConfigSource::DefaultConfig), |l| {
            (Some(l.value.clone()), l.source)
        });
    let mut e = DescribeConfigsResourceResult::default()
        .with_name(StrBytes::from_static_str(key.name))
        .with_value(value.map(s))
        .with_read_only(!dynamic::is_dynamic(key.name))
        .with_config_source(source as i8)
        .with_is_default(v0_default(version, source))
        .with_is_sensitive(false)
        .with_config_type(key.ty.protocol_code());
    if req.include_synonyms {
        e.synonyms = levels
            .into_iter()
            .map(|l| synonym(l.name, l.value, l.source))
            .collect();
    }
    if req.include_documentation {
        e.documentation = Some(StrBytes::from_static_str(key.doc));
    }
    e
}

/// The dynamic config entity a broker resource names: `""` the cluster-wide default,
/// else this broker's id (Kafka's ZooKeeper-mode brokers answer only for themselves).
fn broker_entity(broker: &Broker, name: &str) -> Result<Option<i32>, AdminError> {
    if name.is_empty() {
        return Ok(None);
    }
    if name == broker.config.broker_id.to_string() {
        return Ok(Some(broker.config.broker_id));
    }
    Err(AdminError::new(
        Error::InvalidRequest,
        format!(
            "Unexpected broker id, expected {} or empty string, but received {name}",
            broker.config.broker_id
        ),
    ))
}

/// DescribeConfigs v0 has `is_default` where later versions have the source (KIP-226):
/// true for a value nobody set.
fn v0_default(version: i16, source: ConfigSource) -> bool {
    version == 0 && source == ConfigSource::DefaultConfig
}

/// One topic key as DescribeConfigs reports it: the topic's override if it has one,
/// else the broker key it defaults to (Kafka's `ServerTopicConfigSynonyms`), at that
/// key's highest level; with synonyms, the override and then every broker level.
fn topic_entry(
    broker: &Broker,
    image: &crate::coordination::ClusterImage,
    config: &TopicConfig,
    name: &'static str,
    req: &DescribeConfigsRequest,
    version: i16,
) -> DescribeConfigsResourceResult {
    let (value, is_override) = config.get(name).unwrap_or_default();
    let tk = topic_key_def(name);
    let broker_levels = tk.and_then(|t| t.broker_key).map_or_else(Vec::new, |k| {
        broker_levels(broker, image, Some(broker.config.broker_id), k)
    });
    let source = if is_override {
        ConfigSource::TopicConfig
    } else {
        broker_levels
            .first()
            .map_or(ConfigSource::DefaultConfig, |l| l.source)
    };
    let mut entry = DescribeConfigsResourceResult::default()
        .with_name(StrBytes::from_static_str(name))
        .with_value(Some(s(value.clone())))
        .with_read_only(false)
        .with_config_source(source as i8)
        .with_is_default(v0_default(version, source))
        .with_is_sensitive(false);
    if version >= 3 {
        if let Some(tk) = tk {
            entry.config_type = tk.key.ty.protocol_code();
            if req.include_documentation {
                entry.documentation = Some(StrBytes::from_static_str(tk.key.doc));
            }
        }
    }
    if req.include_synonyms {
        let own = is_override.then(|| synonym(name, value, ConfigSource::TopicConfig));
        let inherited = broker_levels
            .into_iter()
            .map(|l| synonym(l.name, l.value, l.source));
        entry.synonyms = own.into_iter().chain(inherited).collect();
    }
    entry
}

/// The outcome of altering one resource.
fn outcome(result: Result<(), AdminError>) -> (i16, Option<StrBytes>) {
    match result {
        Ok(()) => (0, None),
        Err(AdminError { error, message }) => (code(error), Some(s(message))),
    }
}

pub async fn alter_configs(
    broker: &Broker,
    ctx: &RequestContext,
    req: AlterConfigsRequest,
) -> Option<AlterConfigsResponse> {
    let mut responses = Vec::new();
    let repeated = repeated_resources(&req.resources, |r| (r.resource_type, &r.resource_name));
    for resource in &req.resources {
        let replace = |_: Overrides, _: &KeySet<'_>| Ok(replacement(resource));
        let result = alter_resource(
            broker,
            ctx,
            &repeated,
            (resource.resource_type, &resource.resource_name),
            req.validate_only,
            replace,
        )
        .await;
        let (error_code, error_message) = outcome(result);
        responses.push(
            alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone())
                .with_error_code(error_code)
                .with_error_message(error_message),
        );
    }
    Some(AlterConfigsResponse::default().with_responses(responses))
}

/// The resources a request names more than once. Kafka answers every entry of each
/// INVALID_REQUEST (`ConfigAdminManager.preprocess`), so a resource repeated 200,000
/// times costs no ZooKeeper write at all.
fn repeated_resources<'a, R>(
    resources: &'a [R],
    key: impl Fn(&'a R) -> (i8, &'a StrBytes),
) -> HashSet<(i8, &'a str)> {
    let mut seen = HashSet::new();
    resources
        .iter()
        .map(key)
        .filter(|&(t, name)| !seen.insert((t, &**name)))
        .map(|(t, name)| (t, &**name))
        .collect()
}

/// One resource of an AlterConfigs or IncrementalAlterConfigs request: refused if the
/// request repeats it or the principal may not alter it, else its overrides changed by
/// `change` (given the resource kind's keys) in ZooKeeper.
async fn alter_resource(
    broker: &Broker,
    ctx: &RequestContext,
    repeated: &HashSet<(i8, &str)>,
    (resource_type, name): (i8, &str),
    validate_only: bool,
    change: impl Fn(Overrides, &KeySet<'_>) -> Result<Overrides, AdminError>,
) -> Result<(), AdminError> {
    if repeated.contains(&(resource_type, name)) {
        return Err(AdminError::new(
            Error::InvalidRequest,
            "Each resource must appear at most once.",
        ));
    }
    let op = AclOperation::AlterConfigs;
    if let Some(refusal) = config_refusal(broker, ctx, resource_type, name, op) {
        return Err(refusal);
    }
    let admin = broker.admin();
    match resource_type {
        RESOURCE_TOPIC => {
            let keys = topic_keys(broker);
            let change = |current| change(current, &keys);
            admin.update_topic_config(name, change, validate_only).await
        }
        RESOURCE_BROKER => {
            let entity = broker_entity(broker, name)?;
            let keys = broker_keys(broker);
            let change = |current| change(current, &keys);
            admin
                .update_broker_config(entity, change, validate_only)
                .await
        }
        other => Err(AdminError::new(
            Error::InvalidRequest,
            format!("Unsupported resource type {other}"),
        )),
    }
}

/// AlterConfigs replaces a resource's whole override set with the request's (null
/// values dropped).
fn replacement(
    resource: &kafka_protocol::messages::alter_configs_request::AlterConfigsResource,
) -> BTreeMap<String, String> {
    resource
        .configs
        .iter()
        .filter_map(|c| {
            c.value
                .as_ref()
                .map(|v| (c.name.to_string(), v.to_string()))
        })
        .collect()
}

/// IncrementalAlterConfigs operations (KIP-339).
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

pub async fn incremental_alter_configs(
    broker: &Broker,
    ctx: &RequestContext,
    req: IncrementalAlterConfigsRequest,
) -> Option<IncrementalAlterConfigsResponse> {
    let mut responses = Vec::new();
    let repeated = repeated_resources(&req.resources, |r| (r.resource_type, &r.resource_name));
    for resource in &req.resources {
        let edit = |current, keys: &KeySet<'_>| apply_incremental(current, resource, keys);
        let result = alter_resource(
            broker,
            ctx,
            &repeated,
            (resource.resource_type, &resource.resource_name),
            req.validate_only,
            edit,
        )
        .await;
        let (error_code, error_message) = outcome(result);
        responses.push(
            incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone())
                .with_error_code(error_code)
                .with_error_message(error_message),
        );
    }
    Some(IncrementalAlterConfigsResponse::default().with_responses(responses))
}

type DefaultOf<'a> = Box<dyn Fn(&str) -> Option<String> + Send + Sync + 'a>;

/// What IncrementalAlterConfigs needs to know of a resource type's keys.
struct KeySet<'a> {
    /// "topic" or "broker", for errors.
    kind: &'static str,
    type_of: fn(&str) -> Option<crate::config::keys::ConfigType>,
    /// The value a key has without an override (APPEND / SUBTRACT start from it).
    default_of: DefaultOf<'a>,
}

fn topic_keys(broker: &Broker) -> KeySet<'_> {
    KeySet {
        kind: "topic",
        type_of: |name| topic_key_def(name).map(|tk| tk.key.ty),
        default_of: Box::new(|name| broker.config.topic_defaults.get(name).cloned()),
    }
}

fn broker_keys(broker: &Broker) -> KeySet<'_> {
    KeySet {
        kind: "broker",
        type_of: |name| crate::config::broker::key_def(name).map(|k| k.ty),
        default_of: Box::new(|name| broker.config.value(name)),
    }
}

fn apply_incremental(
    mut overrides: BTreeMap<String, String>,
    resource: &kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource,
    keys: &KeySet<'_>,
) -> Result<BTreeMap<String, String>, AdminError> {
    let mut seen = std::collections::BTreeSet::new();
    for op in &resource.configs {
        let name = op.name.to_string();
        if !seen.insert(name.clone()) {
            return Err(AdminError::new(
                Error::InvalidRequest,
                format!("Error due to duplicate config keys: {name}"),
            ));
        }
        let Some(ty) = (keys.type_of)(&name) else {
            return Err(AdminError::new(
                Error::InvalidConfig,
                format!("Unknown {} config name: {name}", keys.kind),
            ));
        };
        let value = op.value.as_ref().map(|v| v.to_string());
        match op.config_operation {
            OP_SET => {
                let v = value.ok_or_else(|| {
                    AdminError::new(
                        Error::InvalidRequest,
                        format!("Null value not supported for : {name}"),
                    )
                })?;
                overrides.insert(name, v);
            }
            OP_DELETE => {
                overrides.remove(&name);
            }
            OP_APPEND | OP_SUBTRACT => {
                if ty != crate::config::keys::ConfigType::List {
                    return Err(AdminError::new(
                        Error::InvalidConfig,
                        format!("Config value append is not allowed for config key: {name}"),
                    ));
                }
                let current = overrides
                    .get(&name)
                    .cloned()
                    .or_else(|| (keys.default_of)(&name))
                    .unwrap_or_default();
                let mut items: Vec<String> = split_list(&current).map(str::to_string).collect();
                for item in split_list(value.as_deref().unwrap_or("")) {
                    if op.config_operation == OP_APPEND {
                        if !items.iter().any(|i| i == item) {
                            items.push(item.to_string());
                        }
                    } else {
                        items.retain(|i| i != item);
                    }
                }
                overrides.insert(name, items.join(","));
            }
            other => {
                return Err(AdminError::new(
                    Error::InvalidRequest,
                    format!("Unknown config operation {other}"),
                ))
            }
        }
    }
    Ok(overrides)
}
