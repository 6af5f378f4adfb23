//! Topic configuration → the storage layer's `LogConfig`.

use crate::config::TopicConfig;
use crate::storage::{CleanupPolicy, Compression, LogConfig, TimestampType};

/// `compression.type` with its level (`compression.<codec>.level`).
fn compression(c: &TopicConfig) -> Compression {
    let (codec, level_key) = match c.string("compression.type").as_str() {
        "uncompressed" => (0, None),
        "gzip" => (1, Some("compression.gzip.level")),
        "snappy" => (2, None),
        "lz4" => (3, Some("compression.lz4.level")),
        "zstd" => (4, Some("compression.zstd.level")),
        _ => return Compression::Producer,
    };
    // gzip's -1 is zlib's default level.
    let level = level_key.map(|k| c.long(k) as i32).filter(|l| *l != -1);
    Compression::Codec { codec, level }
}

/// Kafka's `LogConfig.getMessageTimestampBeforeMaxMs`/`AfterMaxMs`: the deprecated
/// `message.timestamp.difference.max.ms` applies where the new key is at its default.
fn timestamp_bound(c: &TopicConfig, key: &str) -> i64 {
    match c.long(key) {
        i64::MAX => c.long("message.timestamp.difference.max.ms"),
        v => v,
    }
}

pub fn log_config(c: &TopicConfig) -> LogConfig {
    let cleanup_policy = match (c.is_delete(), c.is_compacted()) {
        (true, true) => CleanupPolicy::Both,
        (false, true) => CleanupPolicy::Compact,
        _ => CleanupPolicy::Delete,
    };
    LogConfig {
        segment_bytes: c.long("segment.bytes").max(14) as u64,
        segment_ms: c.long("segment.ms"),
        segment_index_bytes: c.long("segment.index.bytes").max(8) as u64,
        index_interval_bytes: c.long("index.interval.bytes").max(0) as u64,
        retention_ms: c.long("retention.ms"),
        retention_bytes: c.long("retention.bytes"),
        flush_interval_messages: c.long("flush.messages").max(1) as u64,
        flush_interval_ms: c.long("flush.ms"),
        max_message_bytes: c.long("max.message.bytes").max(0) as usize,
        timestamp_type: if c.string("message.timestamp.type") == "LogAppendTime" {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        },
        cleanup_policy,
        delete_retention_ms: c.long("delete.retention.ms"),
        min_cleanable_dirty_ratio: c.double("min.cleanable.dirty.ratio"),
        file_delete_delay_ms: c.long("file.delete.delay.ms"),
        compression: compression(c),
        timestamp_before_max_ms: timestamp_bound(c, "message.timestamp.before.max.ms"),
        timestamp_after_max_ms: timestamp_bound(c, "message.timestamp.after.max.ms"),
        min_compaction_lag_ms: c.long("min.compaction.lag.ms"),
        max_compaction_lag_ms: c.long("max.compaction.lag.ms"),
        ..LogConfig::default()
    }
}
