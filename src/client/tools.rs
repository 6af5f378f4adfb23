//! Helpers every Kafka-protocol tool of gregor shares (the CLI, the console): the default
//! bootstrap, readable errors from Kafka codes, a connection to any bootstrap broker, the
//! group coordinator, a partition's offset by time.

use std::time::Duration;

use anyhow::{bail, Context};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, ListOffsetsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::cluster::ClusterClient;
use super::KafkaConnection;

/// Where `gregor cluster` records the bootstrap address of the cluster it runs (under its
/// `--data` directory, removed when it stops).
pub const BOOTSTRAP_FILE: &str = "bootstrap";

/// How long a tool waits for a coordinator.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Every client command's default `--bootstrap-server`: `GREGOR_BOOTSTRAP` if set, else
/// the bootstrap of a `gregor cluster` running from this directory (`gregor-data/bootstrap`),
/// else `127.0.0.1:9092`.
pub fn default_bootstrap() -> String {
    bootstrap_from(
        std::env::var("GREGOR_BOOTSTRAP").ok(),
        std::fs::read_to_string(std::path::Path::new("gregor-data").join(BOOTSTRAP_FILE)).ok(),
    )
}

fn bootstrap_from(env: Option<String>, running: Option<String>) -> String {
    [env, running]
        .into_iter()
        .flatten()
        .map(|s| s.trim().to_string())
        .find(|s| !s.is_empty())
        .unwrap_or_else(|| "127.0.0.1:9092".to_string())
}

/// Turns a Kafka error code into a readable error.
pub fn check(code: i16, what: &str, message: Option<&str>) -> anyhow::Result<()> {
    if code == 0 {
        return Ok(());
    }
    let name = kafka_protocol::ResponseError::try_from_code(code)
        .map(|e| format!("{e:?}"))
        .unwrap_or_default();
    match message {
        Some(m) if !m.is_empty() => anyhow::bail!("{what}: {name} ({code}): {m}"),
        _ => anyhow::bail!("{what}: {name} ({code})"),
    }
}

/// A connection to the first broker of `bootstrap` that answers.
pub async fn connect_any(bootstrap: &str) -> anyhow::Result<KafkaConnection> {
    let mut last = None;
    for addr in bootstrap
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
    {
        match KafkaConnection::connect(addr, "gregor-groups", Duration::from_secs(10)).await {
            Ok(c) => return Ok(c),
            Err(e) => last = Some(e),
        }
    }
    match last {
        Some(e) => Err(e.into()),
        None => bail!("--bootstrap-server is empty"),
    }
}

/// Finds the group's coordinator, retrying while it is being created or loaded.
pub async fn coordinator(conn: &mut KafkaConnection, group: &str) -> anyhow::Result<String> {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let r = conn
            .send(
                &FindCoordinatorRequest::default()
                    .with_key_type(0)
                    .with_coordinator_keys(vec![StrBytes::from_string(group.to_string())]),
                4,
                TIMEOUT,
            )
            .await?;
        let c = r
            .coordinators
            .first()
            .context("FindCoordinator: no answer")?;
        match ResponseError::try_from_code(c.error_code) {
            None => return Ok(format!("{}:{}", c.host, c.port)),
            Some(e) if e.is_retriable() && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Some(e) => bail!("FindCoordinator: {e:?}"),
        }
    }
}

/// The offset of a partition at `timestamp` (-1 latest, -2 earliest), from its leader.
pub async fn list_offset(
    c: &mut ClusterClient,
    topic: &str,
    partition: i32,
    timestamp: i64,
) -> anyhow::Result<i64> {
    let leader = c
        .leader(topic, partition)
        .ok_or_else(|| anyhow::anyhow!("{topic}-{partition} has no leader"))?;
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(partition)
                .with_timestamp(timestamp)
                .with_current_leader_epoch(-1)])]);
    let resp = c.send_to(leader, &req, 7).await?;
    let p = &resp.topics[0].partitions[0];
    check(
        p.error_code,
        &format!("list offsets {topic}-{partition}"),
        None,
    )?;
    Ok(p.offset)
}

#[cfg(test)]
mod tests {
    #[test]
    fn bootstrap_default_prefers_the_environment_then_a_running_cluster() {
        use super::bootstrap_from;
        assert_eq!(bootstrap_from(None, None), "127.0.0.1:9092");
        assert_eq!(bootstrap_from(None, Some("h:1\n".into())), "h:1");
        assert_eq!(
            bootstrap_from(Some("e:2".into()), Some("h:1".into())),
            "e:2"
        );
        assert_eq!(bootstrap_from(Some(" ".into()), Some("h:1".into())), "h:1");
    }
}
