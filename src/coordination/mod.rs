//! The broker's side of coordination: its ZooKeeper session (`session`), the znode
//! layout and codecs (`znodes`), and the cluster metadata image kept in step with
//! ZooKeeper by watches (`image`, `watcher`), and the ACL of every znode the brokers
//! create (`acls`); OffsetCommit/OffsetFetch v0 offsets kept in ZooKeeper
//! (`consumer_offsets`).

pub mod acls;
pub mod consumer_offsets;
pub mod image;
pub mod log_dir_events;
pub mod producer_ids;
pub mod session;
pub mod watcher;
pub mod znodes;

pub use acls::ZnodeAcls;
pub use image::{BrokerInfo, ClusterImage, PartitionInfo, PartitionState, TopicInfo};
pub use session::{SessionHandle, ZkSecurity, ZkSession};

/// The internal topic holding consumer group metadata and committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// The internal topic of transaction state (Kafka's; reserved here too).
pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";

/// Kafka's `Topic.isInternal`: clients never produce into these.
pub fn is_internal_topic(name: &str) -> bool {
    name == OFFSETS_TOPIC || name == TRANSACTION_STATE_TOPIC
}
