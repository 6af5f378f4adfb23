//! Topic configuration → the storage layer's `LogConfig`.

use crate::config::TopicConfig;
use crate::storage::{CleanupPolicy, LogConfig, TimestampType};

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
        ..LogConfig::default()
    }
}
