//! The group coordinator (Kafka's classic group protocol). The coordinator of a group is
//! the leader of partition `abs(javaHash(group)) % partitions` of `__consumer_offsets`;
//! group metadata and committed offsets are records in that partition.
//!
//! - [`shard`]: the state machine of one partition's groups (pure: time passed in,
//!   replies through channels, records returned as appends) — unit-tested with a fake
//!   clock;
//! - [`classic`]: one group's members and rebalance state;
//! - [`records`]: Kafka's `OffsetCommit*`/`GroupMetadata*` record schemas;
//! - [`consumer_protocol`]: reading the embedded consumer subscription/assignment;
//! - [`timer`]: the keyed, clock-driven timer;
//! - this module: the group coordinator over the shared [`crate::coordinator`] runtime
//!   (loading on election, NOT_COORDINATOR after resignation, appends completed once
//!   replicated, timers), plus offset expiration and deleted topics.

pub mod classic;
pub mod consumer_protocol;
pub mod records;
pub mod shard;
pub mod timer;

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::ResponseError as Error;
use tokio::sync::watch;

use crate::config::BrokerConfig;
use crate::coordination::{ClusterImage, OFFSETS_TOPIC};
use crate::coordinator::loader::{replay, Loaded};
use crate::coordinator::Runtime;
use crate::replica::{Partition, ReplicaManager};
use crate::tasks::Tasks;
use shard::{Append, GroupConfig, GroupShard};

/// Kafka's `String.hashCode()` over UTF-16 code units.
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32))
}

/// The `__consumer_offsets` partition of a group: Kafka's
/// `Utils.abs(groupId.hashCode) % partitions` (with `abs(i32::MIN) = 0`).
pub fn partition_for(group_id: &str, partitions: i32) -> i32 {
    let h = java_string_hash(group_id);
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % partitions.max(1)
}

/// The coordinator's handle on one `__consumer_offsets` partition it leads.
pub type Shard = crate::coordinator::Shard<GroupShard>;

pub struct GroupCoordinator {
    config: Arc<BrokerConfig>,
    group_config: GroupConfig,
    image: watch::Receiver<Arc<ClusterImage>>,
    runtime: Arc<Runtime<GroupShard>>,
}

impl GroupCoordinator {
    /// Creates the coordinator and starts following `__consumer_offsets` leadership.
    pub fn start(
        config: Arc<BrokerConfig>,
        replicas: Arc<ReplicaManager>,
        image: watch::Receiver<Arc<ClusterImage>>,
        tasks: &Tasks,
    ) -> Arc<GroupCoordinator> {
        let group_config = GroupConfig::from_broker(&config);
        let loading_config = group_config.clone();
        let runtime = Runtime::start(
            OFFSETS_TOPIC,
            replicas,
            Duration::from_millis(config.offsets_commit_timeout_ms),
            Box::new(move |p, _epoch, replica: &Partition| {
                load_shard(p, replica, loading_config.clone())
            }),
            tasks,
        );
        let coordinator = Arc::new(GroupCoordinator {
            group_config,
            config,
            image,
            runtime,
        });
        tasks.spawn(expiration_loop(coordinator.clone()));
        tasks.spawn(deleted_topics_loop(coordinator.clone()));
        coordinator
    }

    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    pub fn group_config(&self) -> &GroupConfig {
        &self.group_config
    }

    /// Partitions of `__consumer_offsets`: the topic's if it exists, else the config's.
    pub fn num_partitions(&self) -> i32 {
        self.image
            .borrow()
            .topic(OFFSETS_TOPIC)
            .map(|t| t.partitions.len() as i32)
            .filter(|n| *n > 0)
            .unwrap_or(self.config.offsets_topic_num_partitions)
    }

    pub fn partition_for(&self, group_id: &str) -> i32 {
        partition_for(group_id, self.num_partitions())
    }

    /// The shard coordinating `group_id`, or NOT_COORDINATOR.
    pub fn shard_for(&self, group_id: &str) -> Result<Arc<Shard>, Error> {
        self.runtime.shard(self.partition_for(group_id))
    }

    /// The shard of `__consumer_offsets` partition `p`, or NOT_COORDINATOR.
    pub fn shard(&self, p: i32) -> Result<Arc<Shard>, Error> {
        self.runtime.shard(p)
    }

    /// Every shard this broker currently leads (loaded or loading).
    pub fn shards(&self) -> Vec<Arc<Shard>> {
        self.runtime.shards()
    }

    /// Runs `op` on the shard of `group_id`: NOT_COORDINATOR if this broker does not lead
    /// the group's partition, COORDINATOR_LOAD_IN_PROGRESS while it loads.
    pub fn with_group<R>(
        &self,
        group_id: &str,
        op: impl FnOnce(&mut GroupShard, i64) -> (R, Vec<Append>),
    ) -> Result<R, Error> {
        let shard = self.shard_for(group_id)?;
        self.run(&shard, op)
    }

    /// Runs `op` on a shard and starts the appends it asks for.
    pub fn run<R>(
        &self,
        shard: &Arc<Shard>,
        op: impl FnOnce(&mut GroupShard, i64) -> (R, Vec<Append>),
    ) -> Result<R, Error> {
        self.runtime.run(shard, op)
    }
}

/// Expires old offsets on every shard every `offsets.retention.check.interval.ms`.
async fn expiration_loop(coordinator: Arc<GroupCoordinator>) {
    let period = Duration::from_millis(
        coordinator
            .config
            .offsets_retention_check_interval_ms
            .max(1),
    );
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        tick.tick().await;
        for shard in coordinator.shards() {
            let _ = coordinator.run(&shard, |gs, now| ((), gs.cleanup_expired_offsets(now)));
        }
    }
}

/// Removes the committed offsets of topics that get deleted (Kafka's
/// `onPartitionsDeleted`). Only topics seen in a loaded image and then gone count.
async fn deleted_topics_loop(coordinator: Arc<GroupCoordinator>) {
    let mut rx = coordinator.image.clone();
    let mut known: Option<std::collections::BTreeSet<String>> = None;
    loop {
        let current = {
            let img = rx.borrow_and_update();
            img.loaded.then(|| {
                img.topics
                    .keys()
                    .cloned()
                    .collect::<std::collections::BTreeSet<String>>()
            })
        };
        if let Some(current) = current {
            if let Some(previous) = &known {
                let deleted: Vec<String> = previous
                    .difference(&current)
                    .filter(|t| t.as_str() != OFFSETS_TOPIC)
                    .cloned()
                    .collect();
                if !deleted.is_empty() {
                    for shard in coordinator.shards() {
                        let _ = coordinator
                            .run(&shard, |gs, _| ((), gs.remove_offsets_of_topics(&deleted)));
                    }
                }
            }
            known = Some(current);
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Rebuilds a shard's state from its partition's log (start to end).
fn load_shard(p: i32, replica: &Partition, config: GroupConfig) -> Result<GroupShard, String> {
    let mut gs = GroupShard::new(p, config);
    let now = crate::clock::now_ms();
    let records = replay(OFFSETS_TOPIC, p, replica, |loaded, _| match loaded {
        Loaded::Records { producer, records } => {
            for rec in records {
                match (&rec.key, producer) {
                    (Some(key), None) => gs.replay(key, rec.value.as_deref(), rec.offset, now),
                    (Some(key), Some((pid, _))) => {
                        gs.replay_txn_offset(pid, key, rec.value.as_deref(), rec.offset, now)
                    }
                    (None, _) => tracing::warn!(
                        partition = p,
                        offset = rec.offset,
                        "skipping a keyless __consumer_offsets record"
                    ),
                }
            }
        }
        Loaded::Marker(m) => gs.complete_txn_offsets(m.producer_id, m.commit),
    })?;
    tracing::debug!(
        partition = p,
        records,
        "replayed __consumer_offsets records"
    );
    Ok(gs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_matches_kafkas_hash() {
        // Values from Java: "group".hashCode() == 98629247, "".hashCode() == 0.
        assert_eq!(java_string_hash("group"), 98629247);
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(partition_for("group", 50), 98629247 % 50);
        // A negative hash: Kafka takes Math.abs, not the low 31 bits.
        assert_eq!(java_string_hash("my-group"), -1906497762);
        assert_eq!(partition_for("my-group", 50), 1906497762 % 50);
        // "polygenelubricants" hashes to i32::MIN: Utils.abs maps it to 0.
        assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        // Non-ASCII: UTF-16 code units, including surrogate pairs.
        assert_eq!(java_string_hash("é"), 0xe9);
        assert_eq!(java_string_hash("😀"), 0xd83d * 31 + 0xde00);
    }
}
