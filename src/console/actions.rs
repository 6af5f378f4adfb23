//! The console's actions, as Kafka requests through gregor's client: the brokers'
//! CreateTopics / DeleteTopics / IncrementalAlterConfigs / OffsetCommit handlers validate
//! them exactly as they validate any client's.

use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::Console;
use crate::client::admin::{self, ConfigChange, ConfigResource};
use crate::client::cluster::ClusterClient;
use crate::client::KafkaConnection;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

pub async fn connect(c: &Console) -> Result<ClusterClient, String> {
    ClusterClient::connect(&c.bootstrap, "gregor-console")
        .await
        .map_err(|e| format!("cannot reach the cluster at {}: {e}", c.bootstrap))
}

fn check(code: i16, message: Option<&StrBytes>) -> Result<(), String> {
    crate::client::tools::check(code, "refused", message.map(|m| m.as_str()))
        .map_err(|e| e.to_string())
}

#[derive(serde::Deserialize)]
pub struct CreateTopic {
    pub name: String,
    pub partitions: String,
    pub replication_factor: String,
    #[serde(default)]
    pub configs: String,
}

fn number<T: std::str::FromStr>(what: &str, v: &str, default: T) -> Result<T, String> {
    if v.trim().is_empty() {
        return Ok(default);
    }
    v.trim()
        .parse()
        .map_err(|_| format!("{what}: `{v}` is not a number"))
}

pub async fn create_topic(c: &Console, f: &CreateTopic) -> Result<String, String> {
    let mut configs = Vec::new();
    for kv in f
        .configs
        .split([',', '\n'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
    {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| format!("config `{kv}`: expected key=value"))?;
        configs.push(
            CreatableTopicConfig::default()
                .with_name(s(k.trim()))
                .with_value(Some(s(v.trim()))),
        );
    }
    let topic = CreatableTopic::default()
        .with_name(TopicName(s(f.name.trim())))
        .with_num_partitions(number("partitions", &f.partitions, -1)?)
        .with_replication_factor(number("replication factor", &f.replication_factor, -1)?)
        .with_configs(configs);
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![topic]);
    let r = connect(c)
        .await?
        .send_any(&req, 7)
        .await
        .map_err(|e| e.to_string())?;
    let t = r.topics.first().ok_or("no answer")?;
    check(t.error_code, t.error_message.as_ref())?;
    Ok(format!("Created topic {}.", f.name.trim()))
}

pub async fn delete_topic(c: &Console, name: &str) -> Result<(), String> {
    let req = DeleteTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![
            DeleteTopicState::default().with_name(Some(TopicName(s(name))))
        ]);
    let r = connect(c)
        .await?
        .send_any(&req, 6)
        .await
        .map_err(|e| e.to_string())?;
    let t = r.responses.first().ok_or("no answer")?;
    check(t.error_code, t.error_message.as_ref())
}

#[derive(serde::Deserialize)]
pub struct AlterConfig {
    pub key: String,
    #[serde(default)]
    pub value: String,
}

/// IncrementalAlterConfigs SET (DELETE when the value is empty), as `gregor configs alter`.
pub async fn alter_config(c: &Console, topic: &str, f: &AlterConfig) -> Result<String, String> {
    let key = f.key.trim().to_string();
    let change = match f.value.trim() {
        "" => ConfigChange::Delete(key.clone()),
        value => ConfigChange::Set(key.clone(), value.to_string()),
    };
    let mut client = connect(c).await?;
    admin::alter_configs(
        &mut client,
        &ConfigResource::Topic(topic.to_string()),
        &[change],
    )
    .await
    .map_err(|e| format!("{e:#}"))?;
    Ok(format!("Set {key} on {topic}."))
}

#[derive(serde::Deserialize)]
pub struct ResetOffsets {
    pub topic: String,
    pub partition: String,
    pub offset: String,
}

/// kafka-consumer-groups --reset-offsets: only for an inactive (Empty or Dead) group, as
/// the tool requires; an OffsetCommit without generation through the coordinator.
pub async fn reset_offsets(c: &Console, group: &str, f: &ResetOffsets) -> Result<String, String> {
    let partition: i32 = number("partition", &f.partition, -1)?;
    let offset: i64 = number("offset", &f.offset, -1)?;
    if partition < 0 || offset < 0 {
        return Err("partition and offset are required".into());
    }
    let mut conn = crate::client::tools::connect_any(&c.bootstrap)
        .await
        .map_err(|e| e.to_string())?;
    let addr = crate::client::tools::coordinator(&mut conn, group)
        .await
        .map_err(|e| e.to_string())?;
    let mut coord =
        KafkaConnection::connect(&addr, "gregor-console", std::time::Duration::from_secs(5))
            .await
            .map_err(|e| e.to_string())?;
    let t = crate::client::cluster::TIMEOUT;
    let d = coord
        .send(
            &DescribeGroupsRequest::default().with_groups(vec![GroupId(s(group))]),
            5,
            t,
        )
        .await
        .map_err(|e| e.to_string())?;
    let state = d
        .groups
        .first()
        .map(|g| g.group_state.to_string())
        .unwrap_or_default();
    if !matches!(state.as_str(), "Empty" | "Dead") {
        return Err(format!("Assignments can only be reset if the group '{group}' is inactive, but the current state is {state}."));
    }
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(s(""))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(TopicName(s(&f.topic)))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(partition)
                .with_committed_offset(offset)])]);
    let r = coord.send(&req, 8, t).await.map_err(|e| e.to_string())?;
    let code = r
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .map_or(0, |p| p.error_code);
    check(code, None)?;
    Ok(format!(
        "Reset {group} on {}-{partition} to offset {offset}.",
        f.topic
    ))
}

/// A plain HTTP/1.1 GET of `http://host:port/path` (the brokers' /metrics), bounded.
pub async fn http_get(url: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://")?;
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let fetch = async {
        let mut stream = tokio::net::TcpStream::connect(host).await.ok()?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        stream.write_all(req.as_bytes()).await.ok()?;
        let mut body = Vec::new();
        stream
            .take(64 * 1024 * 1024)
            .read_to_end(&mut body)
            .await
            .ok()?;
        let text = String::from_utf8_lossy(&body).into_owned();
        text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
    };
    tokio::time::timeout(std::time::Duration::from_secs(5), fetch)
        .await
        .ok()?
}
