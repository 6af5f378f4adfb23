//! Kafka-format log storage: one directory per partition holding segments
//! (`NNNNNNNNNNNNNNNNNNNN.log` + sparse `.index` / `.timeindex`), a leader-epoch
//! checkpoint, producer-state snapshots and `partition.metadata`; log-dir level offset
//! checkpoints and a clean-shutdown marker. The layout follows Apache Kafka's so its
//! `kafka-dump-log` tool can read a partition directory.
//!
//! Modules, one concept each:
//! - [`batch`]: v2 record batch view (header fields, CRC, in-place patching, splitting).
//! - [`offset_index`], [`time_index`] (over [`index_file`]): the sparse indexes.
//! - [`segment`]: one `.log` file with its indexes.
//! - [`log`]: one partition's log ([`Log`]); [`recovery`] loads and repairs it on open;
//!   [`retention`] deletes old segments; [`cleaner`] compacts.
//! - [`producer_state`]: idempotent-producer sequence tracking and snapshots;
//!   [`producer_txn`]: open transactions, markers, the last stable offset, KIP-890
//!   verification; [`control`]: transaction markers; [`txn_index`]: `.txnindex` files.
//! - [`leader_epoch`]: the leader-epoch cache.
//! - [`checkpoint`]: Kafka's checkpoint text files and `partition.metadata`.
//! - [`manager`]: [`LogManager`], the log directories.
//! - [`dir_failure`]: the log-dir failure channel (I/O failure takes a directory offline).
//! - [`legacy`]: message formats v0/v1 (up-conversion on produce, down-conversion on
//!   fetch); [`convert`] and [`builder`]: batches the broker rewrites (LogValidator).
//! - [`config`], [`error`].
//!
//! `storage` knows nothing of sockets or protocol messages; time is always passed in.

pub mod batch;
pub mod builder;
pub mod checkpoint;
pub mod cleaner;
pub mod codec;
pub mod config;
pub mod control;
pub mod convert;
pub mod dir_failure;
pub mod error;
pub mod fileio;
pub mod index_file;
pub mod io_pool;
pub mod leader_epoch;
pub mod legacy;
pub mod log;
pub mod log_txn;
pub mod manager;
pub mod offset_index;
pub mod producer_state;
pub mod producer_txn;
pub mod read_view;
pub mod recovery;
pub mod retention;
pub mod scan;
pub mod segment;
pub mod time_index;
pub mod txn_index;
pub mod validate;

#[cfg(test)]
mod fault_tests;
#[cfg(test)]
mod txn_tests;

use std::fmt;

pub use checkpoint::{CheckpointFile, CheckpointFormat, OffsetCheckpointFile};
pub use config::{CleanupPolicy, Compression, LogConfig, TimestampType};
pub use dir_failure::LogDirFailureChannel;
pub use error::{AppendError, ReadError, RecordError, StorageError};
pub use log::{FollowerAppend, LeaderAppend, Log, ReadResult, TimestampAndOffset};
pub use manager::LogManager;

pub use producer_state::ProducerEntrySummary;

/// A topic partition; its directory is named `"{topic}-{partition}"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }

    /// Parses a partition directory name `topic-N` (the topic may itself contain '-').
    pub fn from_dir_name(name: &str) -> Option<TopicPartition> {
        let (topic, partition) = name.rsplit_once('-')?;
        if topic.is_empty()
            || partition.is_empty()
            || !partition.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        Some(TopicPartition {
            topic: topic.to_string(),
            partition: partition.parse().ok()?,
        })
    }

    /// The partition's directory name.
    pub fn dir_name(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shareable_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        fn assert_send<T: Send>() {}
        assert_send_sync::<LogManager>();
        assert_send::<Log>();
    }

    #[test]
    fn topic_partition_names() {
        let tp = TopicPartition::new("my-topic.v1", 12);
        assert_eq!(tp.to_string(), "my-topic.v1-12");
        assert_eq!(TopicPartition::from_dir_name("my-topic.v1-12"), Some(tp));
        assert_eq!(TopicPartition::from_dir_name("noparts"), None);
        assert_eq!(TopicPartition::from_dir_name("t-"), None);
        assert_eq!(TopicPartition::from_dir_name("-3"), None);
        assert_eq!(TopicPartition::from_dir_name("t-x1"), None);
        assert_eq!(TopicPartition::from_dir_name("t-99999999999"), None);
    }
}
