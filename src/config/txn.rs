//! The transaction coordinator's broker keys (Kafka's `TransactionLogConfigs`,
//! `TransactionStateManagerConfigs`, `transaction.partition.verification.enable`), with
//! Kafka's names and defaults.

use super::broker::Resolver;
use super::keys::{ConfigError, ConfigKey, ConfigType as T, Validator as V};

pub const TXN_KEYS: &[ConfigKey] = &[
    ConfigKey::new(
        "transaction.state.log.num.partitions",
        T::Int,
        "50",
        "Partitions of __transaction_state.",
    )
    .check(V::AtLeast(1)),
    ConfigKey::new(
        "transaction.state.log.replication.factor",
        T::Int,
        "3",
        "Replication factor of __transaction_state (capped by live brokers).",
    )
    .check(V::Between(1, 32767)),
    ConfigKey::new(
        "transaction.state.log.min.isr",
        T::Int,
        "2",
        "min.insync.replicas of __transaction_state (capped by its replication factor).",
    )
    .check(V::AtLeast(1)),
    ConfigKey::new(
        "transaction.state.log.segment.bytes",
        T::Int,
        "104857600",
        "Segment size of __transaction_state.",
    )
    .check(V::AtLeast(1)),
    ConfigKey::new(
        "transaction.max.timeout.ms",
        T::Int,
        "900000",
        "The largest transaction.timeout.ms a producer may ask for.",
    )
    .check(V::AtLeast(1)),
    ConfigKey::new(
        "transactional.id.expiration.ms",
        T::Int,
        "604800000",
        "A transactional id without transaction updates for this long expires.",
    )
    .check(V::AtLeast(1)),
    ConfigKey::new(
        "transaction.abort.timed.out.transaction.cleanup.interval.ms",
        T::Int,
        "10000",
        "How often transactions past their timeout are aborted.",
    )
    .check(V::AtLeast(1)),
    ConfigKey::new(
        "transaction.remove.expired.transaction.cleanup.interval.ms",
        T::Int,
        "3600000",
        "How often expired transactional ids are removed.",
    )
    .check(V::AtLeast(1)),
    ConfigKey::new(
        "transaction.partition.verification.enable",
        T::Bool,
        "true",
        "KIP-890: a transactional produce to a partition is verified with the transaction coordinator first.",
    ),
];

/// The transaction keys, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnConfig {
    pub state_log_num_partitions: i32,
    pub state_log_replication_factor: i16,
    pub state_log_min_isr: i32,
    pub state_log_segment_bytes: i32,
    pub max_timeout_ms: i32,
    pub id_expiration_ms: i64,
    pub abort_timed_out_interval_ms: i64,
    pub remove_expired_interval_ms: i64,
    pub partition_verification_enable: bool,
}

impl TxnConfig {
    pub(crate) fn resolve(r: &Resolver<'_>) -> Result<TxnConfig, ConfigError> {
        Ok(TxnConfig {
            state_log_num_partitions: r.int("transaction.state.log.num.partitions")? as i32,
            state_log_replication_factor: r.int("transaction.state.log.replication.factor")? as i16,
            state_log_min_isr: r.int("transaction.state.log.min.isr")? as i32,
            state_log_segment_bytes: r.int("transaction.state.log.segment.bytes")? as i32,
            max_timeout_ms: r.int("transaction.max.timeout.ms")? as i32,
            id_expiration_ms: r.int("transactional.id.expiration.ms")?,
            abort_timed_out_interval_ms: r
                .int("transaction.abort.timed.out.transaction.cleanup.interval.ms")?,
            remove_expired_interval_ms: r
                .int("transaction.remove.expired.transaction.cleanup.interval.ms")?,
            partition_verification_enable: r.bool("transaction.partition.verification.enable")?,
        })
    }
}
