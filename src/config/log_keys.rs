//! Broker keys that are the defaults of topic configs (Kafka's `LogConfig.SERVER_CONFIG_DEF`
//! and `ServerTopicConfigSynonyms`): `log.segment.bytes` for `segment.bytes`, ... Changing
//! one changes every topic that does not override it.

use super::keys::{ConfigKey, ConfigType as T, Validator as V};

/// `compression.type` values (Kafka's `BrokerCompressionType`).
pub const COMPRESSION_TYPES: &[&str] =
    &["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"];

pub const LOG_KEYS: &[ConfigKey] = &[
    ConfigKey::new(
        "log.segment.bytes",
        T::Int,
        "1073741824",
        "Maximum size of a single log segment.",
    )
    .check(V::AtLeast(14)),
    ConfigKey::optional(
        "log.roll.ms",
        T::Long,
        "Time after which a new segment is rolled (overrides log.roll.hours).",
    ),
    ConfigKey::new(
        "log.roll.hours",
        T::Int,
        "168",
        "Time after which a new segment is rolled.",
    )
    .check(V::AtLeast(1)),
    ConfigKey::optional(
        "log.retention.ms",
        T::Long,
        "Time to keep a segment (overrides minutes/hours); -1 = forever.",
    ),
    ConfigKey::optional(
        "log.retention.minutes",
        T::Int,
        "Time to keep a segment in minutes.",
    ),
    ConfigKey::new(
        "log.retention.hours",
        T::Int,
        "168",
        "Time to keep a segment in hours.",
    ),
    ConfigKey::new(
        "log.retention.bytes",
        T::Long,
        "-1",
        "Maximum partition size before old segments are deleted.",
    ),
    ConfigKey::new(
        "log.retention.check.interval.ms",
        T::Long,
        "300000",
        "How often retention runs.",
    )
    .check(V::AtLeast(1)),
    ConfigKey::new(
        "log.flush.interval.messages",
        T::Long,
        "9223372036854775807",
        "Messages accumulated before a flush.",
    )
    .check(V::AtLeast(1)),
    ConfigKey::optional(
        "log.flush.interval.ms",
        T::Long,
        "Max time data sits unflushed (defaults to log.flush.scheduler.interval.ms).",
    ),
    ConfigKey::new(
        "log.flush.scheduler.interval.ms",
        T::Long,
        "9223372036854775807",
        "How often the flusher checks logs.",
    ),
    ConfigKey::new(
        "log.flush.offset.checkpoint.interval.ms",
        T::Int,
        "60000",
        "How often recovery points are checkpointed.",
    )
    .check(V::AtLeast(0)),
    ConfigKey::new(
        "log.flush.start.offset.checkpoint.interval.ms",
        T::Int,
        "60000",
        "How often log start offsets are checkpointed.",
    )
    .check(V::AtLeast(0)),
    ConfigKey::new(
        "log.index.interval.bytes",
        T::Int,
        "4096",
        "Bytes between offset index entries.",
    )
    .check(V::AtLeast(0)),
    ConfigKey::new(
        "log.index.size.max.bytes",
        T::Int,
        "10485760",
        "Maximum offset index size.",
    )
    .check(V::AtLeast(4)),
    ConfigKey::new(
        "log.cleanup.policy",
        T::List,
        "delete",
        "delete and/or compact.",
    )
    .check(V::ListOf(&["delete", "compact"])),
    ConfigKey::new(
        "log.cleaner.enable",
        T::Bool,
        "true",
        "Run the log cleaner for compacted topics.",
    ),
    ConfigKey::new(
        "log.cleaner.delete.retention.ms",
        T::Long,
        "86400000",
        "How long tombstones are kept.",
    )
    .check(V::AtLeast(0)),
    ConfigKey::new(
        "log.cleaner.min.cleanable.ratio",
        T::Double,
        "0.5",
        "Dirty ratio that triggers cleaning.",
    )
    .check(V::Ratio(0.0, 1.0)),
    ConfigKey::new(
        "log.cleaner.dedupe.buffer.size",
        T::Long,
        "134217728",
        "Memory for the cleaner's key -> offset map in one pass; keys beyond it leave later segments dirty for the next pass.",
    )
    .check(V::AtLeast(1 << 20)),
    ConfigKey::new(
        "log.cleaner.backoff.ms",
        T::Long,
        "15000",
        "Sleep when no log needs cleaning.",
    )
    .check(V::AtLeast(0)),
    ConfigKey::new(
        "log.segment.delete.delay.ms",
        T::Long,
        "60000",
        "Delay before a deleted segment's files are removed.",
    )
    .check(V::AtLeast(0)),
    ConfigKey::new(
        "log.message.timestamp.type",
        T::String,
        "CreateTime",
        "CreateTime or LogAppendTime.",
    )
    .check(V::OneOf(&["CreateTime", "LogAppendTime"])),
    ConfigKey::new(
        "compression.type",
        T::String,
        "producer",
        "Codec batches are stored with: `producer` keeps the producer's, `uncompressed`, `gzip`, `snappy`, `lz4`, `zstd` recompress.",
    )
    .check(V::OneOf(COMPRESSION_TYPES)),
    ConfigKey::new(
        "min.insync.replicas",
        T::Int,
        "1",
        "Minimum ISR size for acks=all writes.",
    )
    .check(V::AtLeast(1)),
    ConfigKey::new(
        "unclean.leader.election.enable",
        T::Bool,
        "false",
        "Allow out-of-sync replicas to become leader.",
    ),
    ConfigKey::new("compression.gzip.level", T::Int, "-1", "gzip level for compression.type=gzip (-1: zlib's default).")
        .check(V::LevelOr(1, 9, -1)),
    ConfigKey::new("compression.lz4.level", T::Int, "9", "lz4 level for compression.type=lz4.")
        .check(V::Between(1, 17)),
    ConfigKey::new("compression.zstd.level", T::Int, "3", "zstd level for compression.type=zstd.")
        .check(V::Between(-131072, 22)),
    ConfigKey::new(
        "log.cleaner.min.compaction.lag.ms",
        T::Long,
        "0",
        "Minimum age of a record before the cleaner may compact it.",
    )
    .check(V::AtLeast(0)),
    ConfigKey::new(
        "log.cleaner.max.compaction.lag.ms",
        T::Long,
        "9223372036854775807",
        "Maximum time a record stays uncompacted: older dirty segments are cleaned whatever the dirty ratio.",
    )
    .check(V::AtLeast(1)),
    ConfigKey::new(
        "log.message.downconversion.enable",
        T::Bool,
        "true",
        "Serve Fetch v0-v3 clients by converting batches to message formats v0/v1.",
    ),
    ConfigKey::new(
        "log.message.format.version",
        T::String,
        "3.0-IV1",
        "Deprecated and ignored (inter-broker protocol 3.0+ always writes format v2); any Kafka version is accepted.",
    )
    .check(V::MetadataVersion),
    ConfigKey::new(
        "log.message.timestamp.difference.max.ms",
        T::Long,
        "9223372036854775807",
        "Deprecated: both bounds below when they are unset.",
    )
    .check(V::AtLeast(0)),
    ConfigKey::new(
        "log.message.timestamp.before.max.ms",
        T::Long,
        "9223372036854775807",
        "How far in the past a CreateTime timestamp may be.",
    )
    .check(V::AtLeast(0)),
    ConfigKey::new(
        "log.message.timestamp.after.max.ms",
        T::Long,
        "9223372036854775807",
        "How far in the future a CreateTime timestamp may be.",
    )
    .check(V::AtLeast(0)),
    ConfigKey::new("log.preallocate", T::Bool, "false", "Accepted; segments are not preallocated."),
    ConfigKey::optional("log.roll.jitter.ms", T::Long, "Random jitter subtracted from the roll time (overrides log.roll.jitter.hours)."),
    ConfigKey::new("log.roll.jitter.hours", T::Int, "0", "Roll jitter in hours.").check(V::AtLeast(0)),
    ConfigKey::new(
        "log.local.retention.ms",
        T::Long,
        "-2",
        "Tiered storage's local retention; no effect without tiered storage.",
    )
    .check(V::AtLeast(-2)),
    ConfigKey::new(
        "log.local.retention.bytes",
        T::Long,
        "-2",
        "Tiered storage's local retention; no effect without tiered storage.",
    )
    .check(V::AtLeast(-2)),
];
