//! Per-topic log configuration (Kafka's `LogConfig`), with Kafka's defaults.

/// `message.timestamp.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimestampType {
    #[default]
    CreateTime,
    LogAppendTime,
}

/// `cleanup.policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CleanupPolicy {
    #[default]
    Delete,
    Compact,
    /// `compact,delete`.
    Both,
}

impl CleanupPolicy {
    /// True when time/size retention applies.
    pub fn deletes(self) -> bool {
        matches!(self, CleanupPolicy::Delete | CleanupPolicy::Both)
    }
    /// True when the cleaner compacts the log.
    pub fn compacts(self) -> bool {
        matches!(self, CleanupPolicy::Compact | CleanupPolicy::Both)
    }
}

/// `compression.type`: keep what the producer sent, or store every batch with one codec
/// (0 = `uncompressed`) at a level (`compression.<codec>.level`, the codec's default if
/// `None`), recompressing on append as Kafka's LogValidator does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    #[default]
    Producer,
    Codec {
        codec: u8,
        level: Option<i32>,
    },
}

/// Kafka's `producer.id.expiration.ms` default (1 day).
pub const DEFAULT_PRODUCER_ID_EXPIRATION_MS: i64 = 86_400_000;

/// Topic-level configuration of one log. Topic config names in comments.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// segment.bytes
    pub segment_bytes: u64,
    /// segment.ms
    pub segment_ms: i64,
    /// segment.index.bytes (a segment rolls when its index is full)
    pub segment_index_bytes: u64,
    /// index.interval.bytes
    pub index_interval_bytes: u64,
    /// retention.ms (-1 = forever)
    pub retention_ms: i64,
    /// retention.bytes (-1 = unlimited)
    pub retention_bytes: i64,
    /// flush.messages
    pub flush_interval_messages: u64,
    /// flush.ms
    pub flush_interval_ms: i64,
    /// max.message.bytes
    pub max_message_bytes: usize,
    /// message.timestamp.type
    pub timestamp_type: TimestampType,
    /// cleanup.policy
    pub cleanup_policy: CleanupPolicy,
    /// delete.retention.ms (how long tombstones survive compaction)
    pub delete_retention_ms: i64,
    /// min.cleanable.dirty.ratio
    pub min_cleanable_dirty_ratio: f64,
    /// file.delete.delay.ms
    pub file_delete_delay_ms: i64,
    /// producer.id.expiration.ms (a broker config in Kafka; per log here)
    pub producer_id_expiration_ms: i64,
    /// compression.type (+ compression.gzip/lz4/zstd.level)
    pub compression: Compression,
    /// message.timestamp.before.max.ms (or the deprecated difference.max.ms)
    pub timestamp_before_max_ms: i64,
    /// message.timestamp.after.max.ms (or the deprecated difference.max.ms)
    pub timestamp_after_max_ms: i64,
    /// min.compaction.lag.ms: records younger than this stay uncompacted.
    pub min_compaction_lag_ms: i64,
    /// max.compaction.lag.ms: a dirty segment older than this is compacted whatever the
    /// dirty ratio (KIP-354).
    pub max_compaction_lag_ms: i64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1_073_741_824,
            segment_ms: 604_800_000,
            segment_index_bytes: 10_485_760,
            index_interval_bytes: 4096,
            retention_ms: 604_800_000,
            retention_bytes: -1,
            flush_interval_messages: i64::MAX as u64,
            flush_interval_ms: i64::MAX,
            max_message_bytes: 1_048_588,
            timestamp_type: TimestampType::CreateTime,
            cleanup_policy: CleanupPolicy::Delete,
            delete_retention_ms: 86_400_000,
            min_cleanable_dirty_ratio: 0.5,
            file_delete_delay_ms: 60_000,
            producer_id_expiration_ms: DEFAULT_PRODUCER_ID_EXPIRATION_MS,
            compression: Compression::Producer,
            timestamp_before_max_ms: i64::MAX,
            timestamp_after_max_ms: i64::MAX,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
        }
    }
}

impl LogConfig {
    /// Kafka's lower bounds (segment.bytes >= 14, segment.index.bytes >= 4, ...).
    pub fn validate(&self) -> Result<(), String> {
        if self.segment_bytes < 14 {
            return Err(format!("segment.bytes {} < 14", self.segment_bytes));
        }
        if self.segment_bytes > i32::MAX as u64 {
            return Err(format!(
                "segment.bytes {} > {}",
                self.segment_bytes,
                i32::MAX
            ));
        }
        if self.segment_ms < 1 {
            return Err(format!("segment.ms {} < 1", self.segment_ms));
        }
        if self.segment_index_bytes < 12 {
            return Err(format!(
                "segment.index.bytes {} < 12",
                self.segment_index_bytes
            ));
        }
        if !(0.0..=1.0).contains(&self.min_cleanable_dirty_ratio) {
            return Err(format!(
                "min.cleanable.dirty.ratio {} not in [0,1]",
                self.min_cleanable_dirty_ratio
            ));
        }
        Ok(())
    }

    /// True when records' CreateTime timestamps must be checked against the append time.
    pub fn bounds_timestamps(&self) -> bool {
        self.timestamp_type == TimestampType::CreateTime
            && (self.timestamp_before_max_ms != i64::MAX || self.timestamp_after_max_ms != i64::MAX)
    }

    /// Kafka's `maxSegmentMs`: a compacted log's active segment also rolls after
    /// max.compaction.lag.ms, so its records can become cleanable in time (KIP-354).
    pub fn max_segment_ms(&self) -> i64 {
        if self.cleanup_policy.compacts() && self.max_compaction_lag_ms > 0 {
            self.max_compaction_lag_ms.min(self.segment_ms)
        } else {
            self.segment_ms
        }
    }

    /// Offset-index capacity in entries (8 bytes each).
    pub(crate) fn max_offset_index_entries(&self) -> usize {
        (self.segment_index_bytes / 8).max(1) as usize
    }

    /// Time-index capacity in entries (12 bytes each).
    pub(crate) fn max_time_index_entries(&self) -> usize {
        (self.segment_index_bytes / 12).max(1) as usize
    }
}
