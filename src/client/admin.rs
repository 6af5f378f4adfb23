//! The admin operations of Kafka's `Admin` client that gregor's tools use (the CLI's
//! `configs`, `topics alter`, `reassign`, `elect-leaders`, and the console): each one
//! request, routed where Kafka's Admin routes it, with its per-resource errors turned
//! into readable ones. Nothing here is gregor-specific: it works against Apache Kafka.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::bail;
use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, BrokerId, CreatePartitionsRequest, DescribeConfigsRequest,
    ElectLeadersRequest, IncrementalAlterConfigsRequest, ListPartitionReassignmentsRequest,
    TopicName,
};
use kafka_protocol::protocol::{Request, StrBytes};

use super::cluster::ClusterClient;
use super::tools::check;
use crate::config::ConfigSource;

/// How long the broker may take for an operation that waits on the controller: less than
/// the client's own request timeout (`cluster::TIMEOUT`), so the answer arrives.
const OPERATION_TIMEOUT_MS: i32 = 20_000;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// A config resource (Kafka's `ConfigResource`): a topic, or one broker (`Broker(None)`:
/// the cluster-wide broker default, `<default>` in ZooKeeper).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigResource {
    Topic(String),
    Broker(Option<i32>),
}

impl ConfigResource {
    fn type_code(&self) -> i8 {
        match self {
            ConfigResource::Topic(_) => 2,
            ConfigResource::Broker(_) => 4,
        }
    }

    fn name(&self) -> String {
        match self {
            ConfigResource::Topic(t) => t.clone(),
            ConfigResource::Broker(Some(id)) => id.to_string(),
            ConfigResource::Broker(None) => String::new(),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            ConfigResource::Topic(t) => format!("topic {t}"),
            ConfigResource::Broker(Some(id)) => format!("broker {id}"),
            ConfigResource::Broker(None) => "the default broker config".into(),
        }
    }

    /// Kafka's Admin sends a broker's config requests to that broker (it answers for its
    /// own configs); topics and the broker default go to any broker.
    async fn send<R: Request>(
        &self,
        c: &mut ClusterClient,
        req: &R,
        version: i16,
    ) -> anyhow::Result<R::Response> {
        Ok(match self {
            ConfigResource::Broker(Some(id)) => c.send_to(*id, req, version).await?,
            _ => c.send_any(req, version).await?,
        })
    }
}

/// One config as DescribeConfigs reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: String,
    pub value: Option<String>,
    /// Kafka's `ConfigSource` name (DYNAMIC_TOPIC_CONFIG, DEFAULT_CONFIG, ...).
    pub source: String,
    pub sensitive: bool,
    /// Every level that sets the key, the one in force first (Kafka's `ConfigSynonym`s).
    pub synonyms: Vec<ConfigSynonym>,
}

/// One level of a config: the key it is set under, its value and its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigSynonym {
    pub name: String,
    pub value: Option<String>,
    pub source: String,
}

/// A `ConfigSource` code as Kafka's Admin names it.
fn source_name(code: i8) -> String {
    ConfigSource::from_code(code).map_or_else(|| format!("UNKNOWN({code})"), |s| s.to_string())
}

/// DescribeConfigs (v4) of one resource: every config with its value, source and
/// synonyms.
pub async fn describe_configs(
    c: &mut ClusterClient,
    resource: &ConfigResource,
) -> anyhow::Result<Vec<ConfigEntry>> {
    let req = DescribeConfigsRequest::default()
        .with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(resource.type_code())
            .with_resource_name(s(&resource.name()))
            .with_configuration_keys(None)])
        .with_include_synonyms(true);
    let resp = resource.send(c, &req, 4).await?;
    let Some(r) = resp.results.into_iter().next() else {
        bail!("describe configs of {}: no answer", resource.describe());
    };
    check(
        r.error_code,
        &format!("describe configs of {}", resource.describe()),
        r.error_message.as_deref(),
    )?;
    let mut entries: Vec<ConfigEntry> = r
        .configs
        .into_iter()
        .map(|e| ConfigEntry {
            name: e.name.to_string(),
            value: e.value.map(|v| v.to_string()),
            source: source_name(e.config_source),
            sensitive: e.is_sensitive,
            synonyms: e
                .synonyms
                .into_iter()
                .map(|y| ConfigSynonym {
                    name: y.name.to_string(),
                    value: y.value.map(|v| v.to_string()),
                    source: source_name(y.source),
                })
                .collect(),
        })
        .collect();
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(entries)
}

/// One IncrementalAlterConfigs operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigChange {
    Set(String, String),
    Delete(String),
}

impl ConfigChange {
    /// `KEY=VALUE` for a set.
    pub fn parse_set(kv: &str) -> anyhow::Result<ConfigChange> {
        match kv.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok(ConfigChange::Set(
                k.trim().to_string(),
                v.trim().to_string(),
            )),
            _ => bail!("`{kv}`: expected KEY=VALUE"),
        }
    }
}

/// IncrementalAlterConfigs (v1) of one resource: all changes or none (the broker
/// validates the whole resource before writing).
pub async fn alter_configs(
    c: &mut ClusterClient,
    resource: &ConfigResource,
    changes: &[ConfigChange],
) -> anyhow::Result<()> {
    let configs = changes
        .iter()
        .map(|change| match change {
            ConfigChange::Set(k, v) => AlterableConfig::default()
                .with_name(s(k))
                .with_config_operation(0)
                .with_value(Some(s(v))),
            ConfigChange::Delete(k) => AlterableConfig::default()
                .with_name(s(k))
                .with_config_operation(1)
                .with_value(None),
        })
        .collect();
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(resource.type_code())
            .with_resource_name(s(&resource.name()))
            .with_configs(configs),
    ]);
    let resp = resource.send(c, &req, 1).await?;
    let Some(r) = resp.responses.into_iter().next() else {
        bail!("alter configs of {}: no answer", resource.describe());
    };
    check(
        r.error_code,
        &format!("alter configs of {}", resource.describe()),
        r.error_message.as_deref(),
    )
}

/// CreatePartitions (v3): grows `topic` to `total` partitions, the broker placing the new
/// replicas. Goes to the controller, as Kafka's Admin sends it.
pub async fn create_partitions(
    c: &mut ClusterClient,
    topic: &str,
    total: i32,
) -> anyhow::Result<()> {
    let req = CreatePartitionsRequest::default()
        .with_timeout_ms(OPERATION_TIMEOUT_MS)
        .with_topics(vec![CreatePartitionsTopic::default()
            .with_name(TopicName(s(topic)))
            .with_count(total)
            .with_assignments(None)]);
    let resp = send_to_controller(c, &req, 3, |r| {
        r.results.first().map_or(0, |t| t.error_code)
    })
    .await?;
    let r = resp
        .results
        .first()
        .ok_or_else(|| anyhow::anyhow!("create partitions: no answer"))?;
    check(
        r.error_code,
        &format!("add partitions to {topic}"),
        r.error_message.as_deref(),
    )
}

/// A partition of a topic.
pub type TopicPartition = (String, i32);

/// Partitions grouped by topic, as requests carry them.
fn by_topic(parts: &[TopicPartition]) -> BTreeMap<&str, Vec<i32>> {
    let mut grouped: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in parts {
        grouped.entry(t).or_default().push(*p);
    }
    grouped
}

/// The outcome per partition of a multi-partition operation.
pub type PartitionResults = Vec<(TopicPartition, anyhow::Result<()>)>;

fn per_partition(
    topic: &str,
    partition: i32,
    code: i16,
    message: Option<&str>,
    what: &str,
) -> (TopicPartition, anyhow::Result<()>) {
    (
        (topic.to_string(), partition),
        check(code, &format!("{what} {topic}-{partition}"), message),
    )
}

/// AlterPartitionReassignments (v0): moves each partition to its target replicas (`None`
/// cancels its ongoing reassignment). The controller answers at once and carries the
/// moves out in the background; `list_reassignments` shows what is still moving.
pub async fn alter_reassignments(
    c: &mut ClusterClient,
    moves: &[(TopicPartition, Option<Vec<i32>>)],
) -> anyhow::Result<PartitionResults> {
    let mut grouped: BTreeMap<&str, Vec<ReassignablePartition>> = BTreeMap::new();
    for ((topic, partition), target) in moves {
        grouped.entry(topic).or_default().push(
            ReassignablePartition::default()
                .with_partition_index(*partition)
                .with_replicas(
                    target
                        .as_ref()
                        .map(|r| r.iter().map(|b| BrokerId(*b)).collect()),
                ),
        );
    }
    let req = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(OPERATION_TIMEOUT_MS)
        .with_topics(
            grouped
                .into_iter()
                .map(|(topic, partitions)| {
                    ReassignableTopic::default()
                        .with_name(TopicName(s(topic)))
                        .with_partitions(partitions)
                })
                .collect(),
        );
    let resp = send_to_controller(c, &req, 0, |r| r.error_code).await?;
    check(
        resp.error_code,
        "alter partition reassignments",
        resp.error_message.as_deref(),
    )?;
    Ok(resp
        .responses
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                per_partition(
                    &t.name,
                    p.partition_index,
                    p.error_code,
                    p.error_message.as_deref(),
                    "reassign",
                )
            })
        })
        .collect())
}

/// An ongoing reassignment (ListPartitionReassignments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OngoingReassignment {
    pub topic: String,
    pub partition: i32,
    pub replicas: Vec<i32>,
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
}

/// ListPartitionReassignments (v0): every ongoing reassignment, or those of `only`.
pub async fn list_reassignments(
    c: &mut ClusterClient,
    only: Option<&[TopicPartition]>,
) -> anyhow::Result<Vec<OngoingReassignment>> {
    let topics = only.map(|parts| {
        by_topic(parts)
            .into_iter()
            .map(|(t, ps)| {
                ListPartitionReassignmentsTopics::default()
                    .with_name(TopicName(s(t)))
                    .with_partition_indexes(ps)
            })
            .collect()
    });
    let req = ListPartitionReassignmentsRequest::default()
        .with_timeout_ms(OPERATION_TIMEOUT_MS)
        .with_topics(topics);
    let resp = send_to_controller(c, &req, 0, |r| r.error_code).await?;
    check(
        resp.error_code,
        "list partition reassignments",
        resp.error_message.as_deref(),
    )?;
    let ids = |v: &[BrokerId]| v.iter().map(|b| b.0).collect::<Vec<_>>();
    let mut out: Vec<OngoingReassignment> = resp
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| OngoingReassignment {
                topic: t.name.to_string(),
                partition: p.partition_index,
                replicas: ids(&p.replicas),
                adding: ids(&p.adding_replicas),
                removing: ids(&p.removing_replicas),
            })
        })
        .collect();
    out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    Ok(out)
}

/// Kafka's `ElectionType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ElectionType {
    Preferred,
    Unclean,
}

/// What an election did for one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElectionOutcome {
    Elected,
    /// The leader already is the one the election would pick (ELECTION_NOT_NEEDED).
    NotNeeded,
    Failed(String),
}

/// ElectLeaders (v2) for `partitions` (`None`: every partition).
pub async fn elect_leaders(
    c: &mut ClusterClient,
    election: ElectionType,
    partitions: Option<&[TopicPartition]>,
) -> anyhow::Result<Vec<(TopicPartition, ElectionOutcome)>> {
    let topic_partitions = partitions.map(|parts| {
        by_topic(parts)
            .into_iter()
            .map(|(t, ps)| {
                TopicPartitions::default()
                    .with_topic(TopicName(s(t)))
                    .with_partitions(ps)
            })
            .collect()
    });
    let req = ElectLeadersRequest::default()
        .with_election_type(match election {
            ElectionType::Preferred => 0,
            ElectionType::Unclean => 1,
        })
        .with_topic_partitions(topic_partitions)
        .with_timeout_ms(OPERATION_TIMEOUT_MS);
    let resp = send_to_controller(c, &req, 2, |r| {
        r.replica_election_results
            .iter()
            .flat_map(|t| t.partition_result.iter())
            .map(|p| p.error_code)
            .find(|&code| code != 0)
            .unwrap_or(r.error_code)
    })
    .await?;
    check(resp.error_code, "elect leaders", None)?;
    const ELECTION_NOT_NEEDED: i16 = 84;
    let mut out: Vec<(TopicPartition, ElectionOutcome)> = resp
        .replica_election_results
        .iter()
        .flat_map(|t| {
            t.partition_result.iter().map(|p| {
                let outcome = match p.error_code {
                    0 => ElectionOutcome::Elected,
                    ELECTION_NOT_NEEDED => ElectionOutcome::NotNeeded,
                    code => ElectionOutcome::Failed(
                        check(code, "election", p.error_message.as_deref())
                            .err()
                            .map(|e| e.to_string())
                            .unwrap_or_default(),
                    ),
                };
                ((t.topic.to_string(), p.partition_id), outcome)
            })
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Sends a controller-only request to the controller Metadata names, refreshing metadata
/// and retrying while the answer is NOT_CONTROLLER (the controller moved, or a broker has
/// not yet learnt who it is), as Kafka's Admin does.
async fn send_to_controller<R: Request>(
    c: &mut ClusterClient,
    req: &R,
    version: i16,
    error_of: impl Fn(&R::Response) -> i16,
) -> anyhow::Result<R::Response> {
    const NOT_CONTROLLER: i16 = 41;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let controller = c.metadata.controller_id.0;
        let resp = if controller >= 0 {
            c.send_to(controller, req, version).await
        } else {
            c.send_any(req, version).await
        };
        let retry = match &resp {
            Ok(r) => error_of(r) == NOT_CONTROLLER,
            Err(_) => true,
        };
        if !retry || tokio::time::Instant::now() >= deadline {
            return Ok(resp?);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        c.refresh(None).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_is_key_equals_value_and_the_value_may_hold_equals_signs() {
        assert_eq!(
            ConfigChange::parse_set("retention.ms=1000").unwrap(),
            ConfigChange::Set("retention.ms".into(), "1000".into())
        );
        assert_eq!(
            ConfigChange::parse_set("sasl.jaas.config=a=b").unwrap(),
            ConfigChange::Set("sasl.jaas.config".into(), "a=b".into())
        );
        assert!(ConfigChange::parse_set("retention.ms").is_err());
        assert!(ConfigChange::parse_set("=1").is_err());
    }

    #[test]
    fn broker_resources_name_the_broker_or_the_default() {
        assert_eq!(ConfigResource::Broker(Some(3)).name(), "3");
        assert_eq!(ConfigResource::Broker(None).name(), "");
        assert_eq!(ConfigResource::Topic("t".into()).type_code(), 2);
        assert_eq!(ConfigResource::Broker(None).type_code(), 4);
    }
}
