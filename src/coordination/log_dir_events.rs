//! Log directory failure notifications (Kafka's ZooKeeper-mode
//! `/log_dir_event_notification/log_dir_event_<seq>`, written by
//! `ReplicaManager.handleLogDirFailure`). Kafka's znode is `{"version":1,"broker":B,
//! "event":1}` and its controller then asks the broker, with LeaderAndIsr, which replicas
//! are offline. gregor has no LeaderAndIsr (brokers follow ZooKeeper), so the znode also
//! names the offline partitions and the broker epoch (registration czxid) of the broker
//! that lost them: the controller treats those replicas as offline for as long as that
//! broker registration lives (an offline directory stays offline until the broker
//! restarts), elects other leaders and drops them from ISRs. Notifications of an earlier
//! broker epoch are stale and the controller deletes them.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use zookeeper_client as zk;

use super::znodes::broker_path;
use super::ZkSession;
use crate::storage::TopicPartition;

pub const LOG_DIR_EVENT_NOTIFICATION: &str = "/log_dir_event_notification";
pub const LOG_DIR_EVENT_PREFIX: &str = "log_dir_event_";
/// Kafka's `LogDirEventNotificationHandler.LogDirFailureEvent`.
pub const LOG_DIR_FAILURE_EVENT: i32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfflinePartition {
    pub topic: String,
    pub partition: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogDirEventZnode {
    pub version: i32,
    pub broker: i32,
    pub event: i32,
    /// Registration czxid of the broker when it lost the directory.
    #[serde(default = "unknown_epoch")]
    pub broker_epoch: i64,
    #[serde(default)]
    pub offline_partitions: Vec<OfflinePartition>,
}

fn unknown_epoch() -> i64 {
    -1
}

impl LogDirEventZnode {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
    pub fn decode(data: &[u8]) -> Option<Self> {
        serde_json::from_slice(data).ok()
    }
}

pub fn event_path(child: &str) -> String {
    format!("{LOG_DIR_EVENT_NOTIFICATION}/{child}")
}

/// Writes a failure notification for `partitions` of this broker, retrying for a bounded
/// time while ZooKeeper is unreachable. Returns whether it was written.
pub async fn announce(session: &ZkSession, broker_id: i32, partitions: &[TopicPartition]) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        match try_announce(session, broker_id, partitions).await {
            Ok(path) => {
                tracing::info!(%path, partitions = partitions.len(), "offline replicas announced to the controller");
                return true;
            }
            Err(err) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(error = %err, "cannot write the log directory failure notification; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(err) => {
                tracing::error!(error = %err, "giving up on the log directory failure notification");
                return false;
            }
        }
    }
}

async fn try_announce(
    session: &ZkSession,
    broker_id: i32,
    partitions: &[TopicPartition],
) -> Result<String, zk::Error> {
    let handle = session.try_current().ok_or(zk::Error::ConnectionLoss)?;
    let client = &handle.client;
    let timeout = Duration::from_secs(10);
    let bounded = |e: tokio::time::error::Elapsed| {
        let _ = e;
        zk::Error::Timeout
    };
    let epoch = match tokio::time::timeout(timeout, client.check_stat(&broker_path(broker_id)))
        .await
        .map_err(bounded)??
    {
        // Only this session's own registration: a previous incarnation's may linger
        // until its session expires, and its epoch would make the notification stale.
        Some(stat) if stat.ephemeral_owner == client.session_id().0 => stat.czxid,
        _ => return Err(zk::Error::NoNode), // not registered (yet): retry
    };
    let persistent = handle.create_options(zk::CreateMode::Persistent, LOG_DIR_EVENT_NOTIFICATION);
    match tokio::time::timeout(
        timeout,
        client.create(LOG_DIR_EVENT_NOTIFICATION, &[], &persistent),
    )
    .await
    .map_err(bounded)?
    {
        Ok(_) | Err(zk::Error::NodeExists) => {}
        Err(e) => return Err(e),
    }
    let znode = LogDirEventZnode {
        version: 1,
        broker: broker_id,
        event: LOG_DIR_FAILURE_EVENT,
        broker_epoch: epoch,
        offline_partitions: partitions
            .iter()
            .map(|tp| OfflinePartition {
                topic: tp.topic.clone(),
                partition: tp.partition,
            })
            .collect(),
    };
    let prefix = event_path(LOG_DIR_EVENT_PREFIX);
    let sequential = handle.create_options(zk::CreateMode::PersistentSequential, &prefix);
    let (_, seq) = tokio::time::timeout(
        timeout,
        client.create(&prefix, &znode.encode(), &sequential),
    )
    .await
    .map_err(bounded)??;
    Ok(format!("{prefix}{seq}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_kafkas_notification_and_ours() {
        let kafka = LogDirEventZnode::decode(br#"{"version":1,"broker":3,"event":1}"#).unwrap();
        assert_eq!((kafka.broker, kafka.broker_epoch), (3, -1));
        assert!(kafka.offline_partitions.is_empty());
        let ours = LogDirEventZnode {
            version: 1,
            broker: 2,
            event: 1,
            broker_epoch: 77,
            offline_partitions: vec![OfflinePartition {
                topic: "t".into(),
                partition: 4,
            }],
        };
        assert_eq!(LogDirEventZnode::decode(&ours.encode()), Some(ours));
    }
}
