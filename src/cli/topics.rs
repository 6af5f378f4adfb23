//! `gregor topics`: list, create, describe (leader, leader epoch, replicas, ISR per
//! partition, non-default configs, and the cluster's under-replicated partitions), delete,
//! alter (more partitions, config changes).

use std::collections::BTreeMap;

use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::{
    CreateTopicsRequest, DeleteTopicsRequest, DescribeConfigsRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::{block_on, check, connect};
use crate::client::admin::{self, ConfigResource};

#[derive(clap::Args, Debug)]
pub struct TopicsArgs {
    /// Broker(s) to bootstrap from (default: see `gregor::cli::default_bootstrap`).
    #[arg(long, global = true, default_value_t = super::default_bootstrap())]
    pub bootstrap_server: String,
    #[command(subcommand)]
    pub command: TopicsCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum TopicsCommand {
    /// List topic names.
    List,
    /// Create a topic.
    Create {
        name: String,
        #[arg(long, default_value_t = -1)]
        partitions: i32,
        #[arg(long, default_value_t = -1)]
        replication_factor: i16,
        /// Topic config override, `key=value` (repeatable).
        #[arg(long = "config", value_name = "KEY=VALUE")]
        configs: Vec<String>,
    },
    /// Describe topics (all if none named): partitions, leaders, ISR.
    Describe { names: Vec<String> },
    /// Delete a topic.
    Delete { name: String },
    /// Add partitions to a topic and change its configs.
    Alter {
        name: String,
        /// The new partition count (only grows, as in Kafka).
        #[arg(long)]
        partitions: Option<i32>,
        /// Topic config to set, `key=value` (repeatable).
        #[arg(long = "config", value_name = "KEY=VALUE")]
        configs: Vec<String>,
        /// Topic config to remove, back to the broker default (repeatable).
        #[arg(long = "delete-config", value_name = "KEY")]
        delete_configs: Vec<String>,
    },
}

pub fn run(args: TopicsArgs) -> anyhow::Result<()> {
    block_on(async move {
        let mut c = connect(&args.bootstrap_server).await?;
        match args.command {
            TopicsCommand::List => {
                let mut names: Vec<String> = c
                    .metadata
                    .topics
                    .iter()
                    .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
                    .collect();
                names.sort();
                for n in names {
                    println!("{n}");
                }
            }
            TopicsCommand::Create {
                name,
                partitions,
                replication_factor,
                configs,
            } => {
                let mut cfgs = Vec::new();
                for kv in &configs {
                    let (k, v) = kv
                        .split_once('=')
                        .ok_or_else(|| anyhow::anyhow!("--config `{kv}`: expected KEY=VALUE"))?;
                    cfgs.push(
                        CreatableTopicConfig::default()
                            .with_name(StrBytes::from_string(k.into()))
                            .with_value(Some(StrBytes::from_string(v.into()))),
                    );
                }
                let req = CreateTopicsRequest::default()
                    .with_timeout_ms(30_000)
                    .with_topics(vec![CreatableTopic::default()
                        .with_name(TopicName(StrBytes::from_string(name.clone())))
                        .with_num_partitions(partitions)
                        .with_replication_factor(replication_factor)
                        .with_configs(cfgs)]);
                let resp = c.send_any(&req, 7).await?;
                let r = &resp.topics[0];
                check(
                    r.error_code,
                    &format!("create topic {name}"),
                    r.error_message.as_deref(),
                )?;
                println!(
                    "Created topic {name} ({} partitions, replication factor {}).",
                    r.num_partitions, r.replication_factor
                );
            }
            TopicsCommand::Describe { names } => {
                c.refresh(if names.is_empty() { None } else { Some(&names) })
                    .await?;
                let md = c.metadata.clone();
                for t in &md.topics {
                    let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
                    check(t.error_code, &format!("topic {name}"), None)?;
                    let overrides = non_default_configs(&mut c, &name).await.unwrap_or_default();
                    print_topic(&md, t, &overrides);
                }
                let under: Vec<String> = md
                    .topics
                    .iter()
                    .flat_map(|t| {
                        let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
                        t.partitions
                            .iter()
                            .filter(|p| p.isr_nodes.len() < p.replica_nodes.len())
                            .map(move |p| format!("{name}-{}", p.partition_index))
                    })
                    .collect();
                if under.is_empty() {
                    println!("Under-replicated partitions: none");
                } else {
                    println!("Under-replicated partitions: {}", under.join(", "));
                }
            }
            TopicsCommand::Delete { name } => {
                let req = DeleteTopicsRequest::default()
                    .with_timeout_ms(30_000)
                    .with_topics(vec![DeleteTopicState::default()
                        .with_name(Some(TopicName(StrBytes::from_string(name.clone()))))]);
                let resp = c.send_any(&req, 6).await?;
                let r = &resp.responses[0];
                check(
                    r.error_code,
                    &format!("delete topic {name}"),
                    r.error_message.as_deref(),
                )?;
                println!("Deleted topic {name}.");
            }
            TopicsCommand::Alter {
                name,
                partitions,
                configs,
                delete_configs,
            } => alter(&mut c, &name, partitions, &configs, &delete_configs).await?,
        }
        Ok(())
    })
}

/// `topics alter`: the partition count first (CreatePartitions), then the configs
/// (IncrementalAlterConfigs), as `kafka-topics --alter` and `kafka-configs --alter` would.
async fn alter(
    c: &mut crate::client::cluster::ClusterClient,
    name: &str,
    partitions: Option<i32>,
    configs: &[String],
    delete_configs: &[String],
) -> anyhow::Result<()> {
    if partitions.is_none() && configs.is_empty() && delete_configs.is_empty() {
        anyhow::bail!("nothing to alter: give --partitions, --config or --delete-config");
    }
    if let Some(n) = partitions {
        admin::create_partitions(c, name, n).await?;
        println!("Topic {name} now has {n} partitions.");
    }
    if !configs.is_empty() || !delete_configs.is_empty() {
        let changes = super::configs::changes(configs, delete_configs)?;
        admin::alter_configs(c, &ConfigResource::Topic(name.to_string()), &changes).await?;
        println!("Updated the configs of topic {name}.");
    }
    Ok(())
}

async fn non_default_configs(
    c: &mut crate::client::cluster::ClusterClient,
    topic: &str,
) -> anyhow::Result<BTreeMap<String, String>> {
    let req =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_string(topic.to_string()))
            .with_configuration_keys(None)]);
    let resp = c.send_any(&req, 4).await?;
    let mut out = BTreeMap::new();
    for r in resp.results {
        for cfg in r.configs {
            if cfg.config_source == 1 {
                out.insert(
                    cfg.name.to_string(),
                    cfg.value.map(|v| v.to_string()).unwrap_or_default(),
                );
            }
        }
    }
    Ok(out)
}

fn print_topic(
    md: &MetadataResponse,
    t: &kafka_protocol::messages::metadata_response::MetadataResponseTopic,
    overrides: &BTreeMap<String, String>,
) {
    let _ = md;
    let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
    let rf = t.partitions.first().map_or(0, |p| p.replica_nodes.len());
    let configs: Vec<String> = overrides.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!(
        "Topic: {name}\tTopicId: {}\tPartitionCount: {}\tReplicationFactor: {rf}\tConfigs: {}",
        crate::coordination::znodes::encode_topic_id(t.topic_id),
        t.partitions.len(),
        configs.join(",")
    );
    let mut partitions = t.partitions.clone();
    partitions.sort_by_key(|p| p.partition_index);
    let ids = |v: &[kafka_protocol::messages::BrokerId]| {
        v.iter()
            .map(|b| b.0.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    for p in &partitions {
        let mut line =
            format!(
            "\tTopic: {name}\tPartition: {}\tLeader: {}\tLeaderEpoch: {}\tReplicas: {}\tIsr: {}",
            p.partition_index,
            if p.leader_id.0 >= 0 { p.leader_id.0.to_string() } else { "none".into() },
            p.leader_epoch,
            ids(&p.replica_nodes),
            ids(&p.isr_nodes)
        );
        if !p.offline_replicas.is_empty() {
            line.push_str(&format!("\tOffline: {}", ids(&p.offline_replicas)));
        }
        println!("{line}");
    }
}
