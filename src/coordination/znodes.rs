//! The znode layout and its JSON codecs. The shapes follow ZooKeeper-mode Kafka
//! (`kafka.zk.ZkData`), so its documentation and tools' expectations carry over:
//!
//! ```text
//! /cluster/id                                   {"version":"1","id":"<cluster id>"}
//! /brokers/ids/<id>            (ephemeral)      {"host","port","rack","endpoints",...}
//! /controller                  (ephemeral)      {"version":1,"brokerid":N,"epoch":E,"timestamp":..}
//! /controller_epoch                             "E" (fencing counter)
//! /brokers/topics/<topic>                       {"version":3,"topic_id":..,"partitions":{"0":[1,2]}}
//! /brokers/topics/<topic>/partitions/<p>/state  {"leader","leader_epoch","isr","controller_epoch","version":1}
//! /config/topics/<topic>                        {"version":1,"config":{..}}
//! /config/brokers/<id>|<default>                {"version":1,"config":{..}} dynamic broker configs
//! /admin/delete_topics/<topic>                  pending deletions
//! /admin/controlled_shutdown/<id> (ephemeral)   broker shutting down: move leaders away
//! /admin/reassign_partitions                    {"version":1,"partitions":[{"topic","partition","replicas"},..]}
//!                                               legacy reassignment request (pre-KIP-455 tools, zkCli):
//!                                               the controller starts it when created, drops each
//!                                               partition once done or refused, deletes it when empty
//! /latest_producer_id_block                     {"version":1,"broker","block_start","block_end"}
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub const CLUSTER_ID: &str = "/cluster/id";
pub const BROKER_IDS: &str = "/brokers/ids";
pub const BROKER_TOPICS: &str = "/brokers/topics";
pub const CONTROLLER: &str = "/controller";
pub const CONTROLLER_EPOCH: &str = "/controller_epoch";
pub const CONFIG_TOPICS: &str = "/config/topics";
pub const CONFIG_BROKERS: &str = "/config/brokers";
pub const DELETE_TOPICS: &str = "/admin/delete_topics";
pub const PRODUCER_ID_BLOCK: &str = "/latest_producer_id_block";
pub const CONTROLLED_SHUTDOWN: &str = "/admin/controlled_shutdown";
/// Kafka's `ReassignPartitionsZNode`: not created at start-up (its existence is the request).
pub const REASSIGN_PARTITIONS: &str = "/admin/reassign_partitions";

/// Persistent parents every cluster needs; created idempotently at start-up.
pub const PERSISTENT_PATHS: &[&str] = &[
    "/cluster",
    "/brokers",
    BROKER_IDS,
    BROKER_TOPICS,
    "/config",
    CONFIG_TOPICS,
    "/admin",
    DELETE_TOPICS,
    CONTROLLED_SHUTDOWN,
    super::log_dir_events::LOG_DIR_EVENT_NOTIFICATION,
    // Kafka's `ZkData.PersistentZkPaths` (every config entity type) and the ACL store's
    // roots: created by the brokers, with the brokers' ACLs, before anyone else can
    // create them world-writable and plant credentials or ACLs beneath.
    "/config/changes",
    "/config/users",
    CONFIG_BROKERS,
    "/config/clients",
    "/config/ips",
    "/kafka-acl",
    "/kafka-acl-changes",
    "/kafka-acl-extended",
    "/kafka-acl-extended-changes",
];

pub fn broker_path(id: i32) -> String {
    format!("{BROKER_IDS}/{id}")
}

pub fn topic_path(topic: &str) -> String {
    format!("{BROKER_TOPICS}/{topic}")
}

pub fn partitions_path(topic: &str) -> String {
    format!("{BROKER_TOPICS}/{topic}/partitions")
}

pub fn partition_path(topic: &str, partition: i32) -> String {
    format!("{BROKER_TOPICS}/{topic}/partitions/{partition}")
}

pub fn partition_state_path(topic: &str, partition: i32) -> String {
    format!("{BROKER_TOPICS}/{topic}/partitions/{partition}/state")
}

pub fn topic_config_path(topic: &str) -> String {
    format!("{CONFIG_TOPICS}/{topic}")
}

/// A dynamic broker config entity's znode (`entity`: a broker id or `<default>`).
pub fn broker_config_path(entity: &str) -> String {
    format!("{CONFIG_BROKERS}/{entity}")
}

pub fn controlled_shutdown_path(broker: i32) -> String {
    format!("{CONTROLLED_SHUTDOWN}/{broker}")
}

pub fn delete_topic_path(topic: &str) -> String {
    format!("{DELETE_TOPICS}/{topic}")
}

#[derive(Debug, thiserror::Error)]
#[error("znode {path}: {reason}")]
pub struct ZnodeDecodeError {
    pub path: String,
    pub reason: String,
}

fn decode<T: for<'de> Deserialize<'de>>(path: &str, data: &[u8]) -> Result<T, ZnodeDecodeError> {
    serde_json::from_slice(data).map_err(|e| ZnodeDecodeError {
        path: path.to_string(),
        reason: e.to_string(),
    })
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing these plain structs (strings, numbers, maps with string keys) cannot fail.
    serde_json::to_vec(value).expect("znode JSON encoding")
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterIdZnode {
    pub version: String,
    pub id: String,
}

impl ClusterIdZnode {
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }
    pub fn decode(data: &[u8]) -> Result<Self, ZnodeDecodeError> {
        decode(CLUSTER_ID, data)
    }
}

/// A live broker's registration. Its epoch is the znode's czxid (KIP-380), not a field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerZnode {
    pub version: i32,
    pub host: String,
    pub port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rack: Option<String>,
    #[serde(default)]
    pub endpoints: Vec<String>,
    #[serde(default)]
    pub listener_security_protocol_map: BTreeMap<String, String>,
    #[serde(default)]
    pub jmx_port: i32,
    #[serde(default)]
    pub timestamp: String,
}

impl BrokerZnode {
    pub fn new(host: &str, port: u16, rack: Option<String>, now_ms: i64) -> Self {
        BrokerZnode {
            version: 5,
            host: host.to_string(),
            port,
            rack,
            endpoints: vec![format!("PLAINTEXT://{host}:{port}")],
            listener_security_protocol_map: BTreeMap::from([(
                "PLAINTEXT".to_string(),
                "PLAINTEXT".to_string(),
            )]),
            jmx_port: -1,
            timestamp: now_ms.to_string(),
        }
    }
    /// A registration with every advertised listener (Kafka's `endpoints` and
    /// `listener_security_protocol_map`); `host`/`port` are the PLAINTEXT endpoint's
    /// as in Kafka, or the first listener's when there is no PLAINTEXT one.
    pub fn with_listeners(
        listeners: &[crate::config::Listener],
        rack: Option<String>,
        now_ms: i64,
    ) -> Self {
        let main = listeners
            .iter()
            .find(|l| l.name == "PLAINTEXT")
            .or(listeners.first());
        let (host, port) = main.map_or((String::new(), 0), |l| (l.host.clone(), l.port));
        let mut z = BrokerZnode::new(&host, port, rack, now_ms);
        z.endpoints = listeners.iter().map(|l| l.uri()).collect();
        z.listener_security_protocol_map = listeners
            .iter()
            .map(|l| (l.name.clone(), l.protocol.name().to_string()))
            .collect();
        z
    }
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }
    pub fn decode(path: &str, data: &[u8]) -> Result<Self, ZnodeDecodeError> {
        decode(path, data)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerZnode {
    pub version: i32,
    pub brokerid: i32,
    #[serde(default)]
    pub epoch: i32,
    #[serde(default)]
    pub timestamp: String,
}

impl ControllerZnode {
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }
    pub fn decode(data: &[u8]) -> Result<Self, ZnodeDecodeError> {
        decode(CONTROLLER, data)
    }
}

/// Replica assignment of a topic: partition → replica broker ids (first = preferred leader).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicZnode {
    pub version: i32,
    /// Kafka's base64url (no padding) topic id.
    pub topic_id: String,
    pub partitions: BTreeMap<String, Vec<i32>>,
    #[serde(default)]
    pub adding_replicas: BTreeMap<String, Vec<i32>>,
    #[serde(default)]
    pub removing_replicas: BTreeMap<String, Vec<i32>>,
}

impl TopicZnode {
    pub fn new(topic_id: uuid::Uuid, assignment: &BTreeMap<i32, Vec<i32>>) -> Self {
        TopicZnode {
            version: 3,
            topic_id: encode_topic_id(topic_id),
            partitions: assignment
                .iter()
                .map(|(p, r)| (p.to_string(), r.clone()))
                .collect(),
            adding_replicas: BTreeMap::new(),
            removing_replicas: BTreeMap::new(),
        }
    }
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }
    pub fn decode(path: &str, data: &[u8]) -> Result<Self, ZnodeDecodeError> {
        decode(path, data)
    }
    /// The assignment with numeric partition ids; non-numeric keys are a decode error.
    pub fn assignment(&self, path: &str) -> Result<BTreeMap<i32, Vec<i32>>, ZnodeDecodeError> {
        self.partitions
            .iter()
            .map(|(p, r)| {
                p.parse::<i32>()
                    .map(|p| (p, r.clone()))
                    .map_err(|_| ZnodeDecodeError {
                        path: path.to_string(),
                        reason: format!("partition key `{p}` is not a number"),
                    })
            })
            .collect()
    }
    pub fn topic_uuid(&self, path: &str) -> Result<uuid::Uuid, ZnodeDecodeError> {
        decode_topic_id(&self.topic_id).ok_or_else(|| ZnodeDecodeError {
            path: path.to_string(),
            reason: format!("bad topic_id `{}`", self.topic_id),
        })
    }
}

/// Leader and ISR of one partition, written by the controller (elections) and by the
/// leader (ISR changes), always conditionally on the znode version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionStateZnode {
    pub version: i32,
    pub leader: i32,
    pub leader_epoch: i32,
    pub isr: Vec<i32>,
    pub controller_epoch: i32,
}

impl PartitionStateZnode {
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }
    pub fn decode(path: &str, data: &[u8]) -> Result<Self, ZnodeDecodeError> {
        decode(path, data)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicConfigZnode {
    pub version: i32,
    pub config: BTreeMap<String, String>,
}

impl TopicConfigZnode {
    pub fn new(config: BTreeMap<String, String>) -> Self {
        TopicConfigZnode { version: 1, config }
    }
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }
    pub fn decode(path: &str, data: &[u8]) -> Result<Self, ZnodeDecodeError> {
        decode(path, data)
    }
}

/// Kafka keeps every config entity (topics, brokers, users) in the same shape.
pub type BrokerConfigZnode = TopicConfigZnode;

/// The last producer-id block handed out (Kafka's `ProducerIdBlockZNode`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerIdBlockZnode {
    pub version: i32,
    pub broker: i32,
    pub block_start: String,
    pub block_end: String,
}

impl ProducerIdBlockZnode {
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }
    pub fn decode(data: &[u8]) -> Result<Self, ZnodeDecodeError> {
        decode(PRODUCER_ID_BLOCK, data)
    }
}

/// `/admin/reassign_partitions`: reassignments requested by writing ZooKeeper directly
/// (Kafka's `ReassignPartitionsZNode`, its `LegacyPartitionAssignment` JSON). `log_dirs`,
/// which some tools add per entry, is accepted and ignored (log directories are chosen
/// with AlterReplicaLogDirs), and not written back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReassignPartitionsZnode {
    pub version: i32,
    pub partitions: Vec<ReassignPartitionEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReassignPartitionEntry {
    pub topic: String,
    pub partition: i32,
    pub replicas: Vec<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_dirs: Option<Vec<String>>,
}

/// The target replicas of each partition named in `/admin/reassign_partitions`.
pub type ReassignTargets = BTreeMap<(String, i32), Vec<i32>>;

impl ReassignPartitionsZnode {
    pub fn new(targets: &ReassignTargets) -> Self {
        ReassignPartitionsZnode {
            version: 1,
            partitions: targets
                .iter()
                .map(|((topic, partition), replicas)| ReassignPartitionEntry {
                    topic: topic.clone(),
                    partition: *partition,
                    replicas: replicas.clone(),
                    log_dirs: None,
                })
                .collect(),
        }
    }
    /// The targets by partition. Kafka decodes the list into a map, so a partition named
    /// twice keeps its last entry.
    pub fn targets(&self) -> ReassignTargets {
        self.partitions
            .iter()
            .map(|e| ((e.topic.clone(), e.partition), e.replicas.clone()))
            .collect()
    }
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }
    pub fn decode(data: &[u8]) -> Result<Self, ZnodeDecodeError> {
        decode(REASSIGN_PARTITIONS, data)
    }
}

/// Kafka prints topic ids as URL-safe base64 without padding.
pub fn encode_topic_id(id: uuid::Uuid) -> String {
    base64_url_encode(id.as_bytes())
}

pub fn decode_topic_id(s: &str) -> Option<uuid::Uuid> {
    let bytes = base64_url_decode(s)?;
    uuid::Uuid::from_slice(&bytes).ok()
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn base64_url_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 4 / 3 + 2);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn base64_url_decode(s: &str) -> Option<Vec<u8>> {
    let mut bits: u32 = 0;
    let mut nbits = 0;
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for c in s.bytes() {
        let v = B64.iter().position(|&b| b == c)? as u32;
        bits = (bits << 6) | v;
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            out.push((bits >> nbits) as u8);
            bits &= (1 << nbits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_ids_round_trip_as_kafka_prints_them() {
        for _ in 0..100 {
            let id = uuid::Uuid::new_v4();
            let s = encode_topic_id(id);
            assert_eq!(s.len(), 22);
            assert_eq!(decode_topic_id(&s), Some(id));
        }
        // A Kafka-printed id (from `kafka-topics --describe`).
        let id = decode_topic_id("AAAAAAAAAAAAAAAAAAAAAQ").unwrap();
        assert_eq!(id.as_u128(), 1);
        assert_eq!(decode_topic_id("not base64!"), None);
    }

    #[test]
    fn partition_state_is_kafkas_json() {
        let s = PartitionStateZnode {
            version: 1,
            leader: 2,
            leader_epoch: 5,
            isr: vec![2, 3],
            controller_epoch: 7,
        };
        let json: serde_json::Value = serde_json::from_slice(&s.encode()).unwrap();
        assert_eq!(json["leader"], 2);
        assert_eq!(json["isr"], serde_json::json!([2, 3]));
        assert_eq!(PartitionStateZnode::decode("p", &s.encode()).unwrap(), s);
        assert!(PartitionStateZnode::decode("p", b"{").is_err());
    }

    #[test]
    fn reassign_partitions_reads_what_kafka_tools_write() {
        // As `kafka-reassign-partitions --zookeeper` (Kafka <= 2.x) writes it, with the
        // optional `log_dirs` and a partition named twice (the last entry wins).
        let data = br#"{"version":1,"partitions":[
            {"topic":"t","partition":0,"replicas":[2,3,4],"log_dirs":["any","any","any"]},
            {"topic":"u","partition":1,"replicas":[1]},
            {"topic":"t","partition":0,"replicas":[4,3,2]}]}"#;
        let z = ReassignPartitionsZnode::decode(data).unwrap();
        assert_eq!(z.partitions.len(), 3);
        assert_eq!(
            z.partitions[0].log_dirs.as_deref(),
            Some(&["any".to_string(), "any".into(), "any".into()][..])
        );
        let targets = z.targets();
        assert_eq!(
            targets,
            BTreeMap::from([
                (("t".to_string(), 0), vec![4, 3, 2]),
                (("u".to_string(), 1), vec![1]),
            ])
        );
        // Written back as Kafka's `ReassignPartitionsZNode.encode`: no log_dirs.
        let json: serde_json::Value =
            serde_json::from_slice(&ReassignPartitionsZnode::new(&targets).encode()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"version":1,"partitions":[
                {"topic":"t","partition":0,"replicas":[4,3,2]},
                {"topic":"u","partition":1,"replicas":[1]}]})
        );
        for bad in [
            &b"{"[..],
            br#"{"version":1}"#,
            br#"{"version":1,"partitions":[{"topic":"t","replicas":[1]}]}"#,
            br#"{"version":1,"partitions":[{"topic":"t","partition":"x","replicas":[1]}]}"#,
        ] {
            assert!(ReassignPartitionsZnode::decode(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn topic_assignment_rejects_bad_partition_keys() {
        let mut z = TopicZnode::new(uuid::Uuid::new_v4(), &BTreeMap::from([(0, vec![1])]));
        assert_eq!(z.assignment("t").unwrap()[&0], vec![1]);
        z.partitions.insert("x".into(), vec![1]);
        assert!(z.assignment("t").is_err());
    }
}
