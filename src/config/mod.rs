//! Configuration: the broker's static settings (`broker.rs`), topic-level settings with
//! their broker-level defaults (`topic.rs`, `log_keys.rs`), and the typed key table both are built from
//! (`keys.rs`). Names and defaults are Apache Kafka's, so its documentation applies.

pub mod broker;
pub mod dynamic;
pub mod keys;
pub mod listeners;
pub mod log_keys;
pub mod synonyms;
pub mod topic;
pub mod txn;

pub use broker::{BrokerConfig, Listener};
pub use keys::{ConfigError, ConfigSource};
pub use topic::TopicConfig;
