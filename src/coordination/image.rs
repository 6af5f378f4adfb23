//! The broker's view of cluster metadata, rebuilt from ZooKeeper watches: live brokers,
//! the controller, topics with their assignment, leader/ISR state and config overrides.
//!
//! An image is immutable; the watcher publishes a new `Arc<ClusterImage>` per change, so
//! request handlers read a consistent snapshot without locks.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    pub id: i32,
    pub host: String,
    pub port: u16,
    pub rack: Option<String>,
    /// czxid of the broker's registration znode (KIP-380 broker epoch).
    pub epoch: i64,
    /// Every advertised listener by name (registration `endpoints`): host and port.
    pub endpoints: BTreeMap<String, (String, u16)>,
}

impl BrokerInfo {
    /// The broker's endpoint on `listener`; `None` if it has no such listener (Kafka
    /// then leaves the broker out of the answer on that listener).
    pub fn endpoint(&self, listener: &str) -> Option<(&str, u16)> {
        match self.endpoints.get(listener) {
            Some((host, port)) => Some((host, *port)),
            // A registration without endpoints (an old writer): its host/port is PLAINTEXT.
            None if self.endpoints.is_empty() && listener == "PLAINTEXT" => {
                Some((&self.host, self.port))
            }
            None => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    /// The full replica set: during a reassignment the target replicas plus the
    /// original ones being removed (Kafka's RS = TRS + ORS).
    pub replicas: Vec<i32>,
    /// KIP-455 reassignment in progress: replicas being added and being removed
    /// (the topic znode's `adding_replicas` / `removing_replicas`).
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
    /// `None` until the controller has written the partition state.
    pub state: Option<PartitionState>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionState {
    /// -1 when no replica can lead.
    pub leader: i32,
    pub leader_epoch: i32,
    pub isr: Vec<i32>,
    pub controller_epoch: i32,
    /// The state znode's version, for conditional updates.
    pub zk_version: i32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TopicInfo {
    pub name: String,
    pub id: Uuid,
    pub partitions: BTreeMap<i32, PartitionInfo>,
    pub config: BTreeMap<String, String>,
    /// Deletion requested (`/admin/delete_topics/<topic>` exists).
    pub deleting: bool,
    /// The topic znode's version, for conditional assignment changes (reassignment).
    pub zk_version: i32,
}

impl TopicInfo {
    pub fn is_internal(&self) -> bool {
        self.name == crate::coordination::OFFSETS_TOPIC
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClusterImage {
    pub cluster_id: String,
    pub controller_id: Option<i32>,
    pub brokers: BTreeMap<i32, BrokerInfo>,
    pub topics: BTreeMap<String, TopicInfo>,
    pub topic_names_by_id: HashMap<Uuid, String>,
    /// Brokers in controlled shutdown (`/admin/controlled_shutdown/<id>`).
    pub shutting_down: BTreeSet<i32>,
    /// Log directory failure notifications (`/log_dir_event_notification/*`), by child
    /// name: which replicas a broker lost with a failed log directory.
    pub log_dir_events: BTreeMap<String, crate::coordination::log_dir_events::LogDirEventZnode>,
    /// Dynamic broker configs (`/config/brokers/<id>` and `<default>`), by entity name.
    pub broker_configs: BTreeMap<String, BTreeMap<String, String>>,
    /// True once the first full load from ZooKeeper finished.
    pub loaded: bool,
}

impl ClusterImage {
    pub fn topic(&self, name: &str) -> Option<&TopicInfo> {
        self.topics.get(name)
    }

    pub fn topic_by_id(&self, id: &Uuid) -> Option<&TopicInfo> {
        self.topic_names_by_id
            .get(id)
            .and_then(|name| self.topics.get(name))
    }

    pub fn partition(&self, topic: &str, partition: i32) -> Option<&PartitionInfo> {
        self.topics.get(topic)?.partitions.get(&partition)
    }

    pub fn is_alive(&self, broker: i32) -> bool {
        self.brokers.contains_key(&broker)
    }

    /// True if `broker`'s replica of `topic`-`partition` is in a log directory that failed
    /// during the broker's current registration (Kafka's offline replicas): it may neither
    /// lead nor stay in the ISR. A notification of an earlier broker epoch is stale.
    pub fn is_replica_offline(&self, broker: i32, topic: &str, partition: i32) -> bool {
        let Some(info) = self.brokers.get(&broker) else {
            return false;
        };
        self.log_dir_events.values().any(|e| {
            e.broker == broker
                && e.broker_epoch == info.epoch
                && e.offline_partitions
                    .iter()
                    .any(|p| p.partition == partition && p.topic == topic)
        })
    }

    /// Notifications of a broker that re-registered since (stale: delete them).
    pub fn stale_log_dir_events(&self) -> Vec<String> {
        self.log_dir_events
            .iter()
            .filter(|(_, e)| {
                self.brokers
                    .get(&e.broker)
                    .is_some_and(|b| b.epoch != e.broker_epoch)
            })
            .map(|(child, _)| child.clone())
            .collect()
    }

    /// Partitions whose ISR is smaller than their replica set.
    pub fn under_replicated(&self) -> Vec<(String, i32)> {
        let mut out = Vec::new();
        for topic in self.topics.values() {
            for (p, info) in &topic.partitions {
                if let Some(state) = &info.state {
                    if state.isr.len() < info.replicas.len() {
                        out.push((topic.name.clone(), *p));
                    }
                }
            }
        }
        out
    }

    /// A dynamic broker config in force for `broker`: its own entry, else the default.
    pub fn dynamic_broker_config(&self, broker: i32, key: &str) -> Option<String> {
        let (own, cluster_default) = self.dynamic_broker_entries(broker, key);
        own.or(cluster_default).map(str::to_string)
    }

    /// A broker key's value in the broker's own dynamic entry and in the cluster-wide
    /// default entry (`/config/brokers/<id>`, `/config/brokers/<default>`).
    pub fn dynamic_broker_entries(&self, broker: i32, key: &str) -> (Option<&str>, Option<&str>) {
        let entry = |entity: &str| {
            self.broker_configs
                .get(entity)
                .and_then(|c| c.get(key))
                .map(String::as_str)
        };
        (
            entry(&broker.to_string()),
            entry(crate::config::dynamic::DEFAULT_ENTITY),
        )
    }

    pub fn rebuild_id_index(&mut self) {
        self.topic_names_by_id = self
            .topics
            .values()
            .map(|t| (t.id, t.name.clone()))
            .collect();
    }
}
