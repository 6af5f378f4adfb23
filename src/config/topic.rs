//! Topic-level configuration: the keys a topic may override (CreateTopics configs,
//! AlterConfigs, `/config/topics/<topic>`), each defaulting to a broker-level key as in
//! Kafka (`retention.ms` ← `log.retention.ms`, ...).

use std::collections::BTreeMap;

use super::broker::{Resolver, TopicDefaults};
use super::keys::{
    parse_bool, split_list, ConfigError, ConfigKey, ConfigType as T, Validator as V,
};
use super::log_keys::COMPRESSION_TYPES;

/// A topic key and the broker key its default comes from (Kafka's
/// `ServerTopicConfigSynonyms`; `None` for the keys without a server default).
pub struct TopicKey {
    pub key: ConfigKey,
    pub broker_key: Option<&'static str>,
}

const fn topic_key(key: ConfigKey, broker_key: &'static str) -> TopicKey {
    TopicKey {
        key,
        broker_key: Some(broker_key),
    }
}

const fn topic_only(key: ConfigKey) -> TopicKey {
    TopicKey {
        key,
        broker_key: None,
    }
}

const LONG_MAX: &str = "9223372036854775807";

/// Every topic config of Kafka 3.9 (`TopicConfig` / `LogConfig.CONFIG`). Anything else
/// is rejected with INVALID_CONFIG, as Kafka rejects unknown topic config names. Where a
/// key has no effect here (tiered storage, preallocation, replication throttles,
/// `message.format.version`) it is accepted, validated, stored and described as Kafka
/// does and otherwise ignored.
pub const TOPIC_KEYS: &[TopicKey] = &[
    topic_key(
        ConfigKey::new("cleanup.policy", T::List, "delete", "delete and/or compact.")
            .check(V::ListOf(&["delete", "compact"])),
        "log.cleanup.policy",
    ),
    topic_key(
        ConfigKey::new(
            "compression.type",
            T::String,
            "producer",
            "Codec batches are stored with: `producer` keeps the producer's; otherwise every batch is recompressed to it on append.",
        )
        .check(V::OneOf(COMPRESSION_TYPES)),
        "compression.type",
    ),
    topic_key(
        ConfigKey::new("compression.gzip.level", T::Int, "-1", "gzip level when compression.type=gzip.")
            .check(V::LevelOr(1, 9, -1)),
        "compression.gzip.level",
    ),
    topic_key(
        ConfigKey::new("compression.lz4.level", T::Int, "9", "lz4 level when compression.type=lz4.")
            .check(V::Between(1, 17)),
        "compression.lz4.level",
    ),
    topic_key(
        ConfigKey::new("compression.zstd.level", T::Int, "3", "zstd level when compression.type=zstd.")
            .check(V::Between(-131072, 22)),
        "compression.zstd.level",
    ),
    topic_key(
        ConfigKey::new("delete.retention.ms", T::Long, "86400000", "How long tombstones are kept on compacted topics.")
            .check(V::AtLeast(0)),
        "log.cleaner.delete.retention.ms",
    ),
    topic_key(
        ConfigKey::new("file.delete.delay.ms", T::Long, "60000", "Delay before deleted segment files are removed.")
            .check(V::AtLeast(0)),
        "log.segment.delete.delay.ms",
    ),
    topic_key(
        ConfigKey::new("flush.messages", T::Long, LONG_MAX, "Messages between forced fsyncs.").check(V::AtLeast(1)),
        "log.flush.interval.messages",
    ),
    topic_key(
        ConfigKey::new("flush.ms", T::Long, LONG_MAX, "Time between forced fsyncs.").check(V::AtLeast(0)),
        "log.flush.interval.ms",
    ),
    topic_only(
        ConfigKey::new(
            "follower.replication.throttled.replicas",
            T::List,
            "",
            "Replicas (partition:broker, or *) whose follower fetches follower.replication.throttled.rate (KIP-73).",
        )
        .check(V::ThrottledReplicas),
    ),
    topic_key(
        ConfigKey::new("index.interval.bytes", T::Int, "4096", "Bytes between offset index entries.")
            .check(V::AtLeast(0)),
        "log.index.interval.bytes",
    ),
    topic_only(
        ConfigKey::new(
            "leader.replication.throttled.replicas",
            T::List,
            "",
            "Replicas (partition:broker, or *) whose leader side follows leader.replication.throttled.rate (KIP-73).",
        )
        .check(V::ThrottledReplicas),
    ),
    topic_key(
        ConfigKey::new("local.retention.bytes", T::Long, "-2", "Tiered storage's local retention (no effect).")
            .check(V::AtLeast(-2)),
        "log.local.retention.bytes",
    ),
    topic_key(
        ConfigKey::new("local.retention.ms", T::Long, "-2", "Tiered storage's local retention (no effect).")
            .check(V::AtLeast(-2)),
        "log.local.retention.ms",
    ),
    topic_key(
        ConfigKey::new(
            "max.compaction.lag.ms",
            T::Long,
            LONG_MAX,
            "A dirty record older than this gets its segment compacted whatever the dirty ratio.",
        )
        .check(V::AtLeast(1)),
        "log.cleaner.max.compaction.lag.ms",
    ),
    topic_key(
        ConfigKey::new("max.message.bytes", T::Int, "1048588", "Largest record batch allowed.").check(V::AtLeast(0)),
        "message.max.bytes",
    ),
    topic_key(
        ConfigKey::new(
            "message.downconversion.enable",
            T::Bool,
            "true",
            "Serve Fetch v0-v3 consumers (message formats v0/v1) by converting batches; false answers them UNSUPPORTED_VERSION.",
        ),
        "log.message.downconversion.enable",
    ),
    topic_key(
        ConfigKey::new(
            "message.format.version",
            T::String,
            "3.0-IV1",
            "Deprecated and ignored: inter-broker protocol 3.0 and later always write format v2.",
        )
        .check(V::MetadataVersion),
        "log.message.format.version",
    ),
    topic_key(
        ConfigKey::new("message.timestamp.after.max.ms", T::Long, LONG_MAX, "How far in the future a CreateTime timestamp may be.")
            .check(V::AtLeast(0)),
        "log.message.timestamp.after.max.ms",
    ),
    topic_key(
        ConfigKey::new("message.timestamp.before.max.ms", T::Long, LONG_MAX, "How far in the past a CreateTime timestamp may be.")
            .check(V::AtLeast(0)),
        "log.message.timestamp.before.max.ms",
    ),
    topic_key(
        ConfigKey::new(
            "message.timestamp.difference.max.ms",
            T::Long,
            LONG_MAX,
            "Deprecated: the bound on both sides when before/after are unset.",
        )
        .check(V::AtLeast(0)),
        "log.message.timestamp.difference.max.ms",
    ),
    topic_key(
        ConfigKey::new("message.timestamp.type", T::String, "CreateTime", "CreateTime or LogAppendTime.")
            .check(V::OneOf(&["CreateTime", "LogAppendTime"])),
        "log.message.timestamp.type",
    ),
    topic_key(
        ConfigKey::new("min.cleanable.dirty.ratio", T::Double, "0.5", "Dirty ratio that triggers compaction.")
            .check(V::Ratio(0.0, 1.0)),
        "log.cleaner.min.cleanable.ratio",
    ),
    topic_key(
        ConfigKey::new("min.compaction.lag.ms", T::Long, "0", "Records younger than this are not compacted.")
            .check(V::AtLeast(0)),
        "log.cleaner.min.compaction.lag.ms",
    ),
    topic_key(
        ConfigKey::new("min.insync.replicas", T::Int, "1", "Minimum ISR size for acks=all writes.").check(V::AtLeast(1)),
        "min.insync.replicas",
    ),
    topic_key(
        ConfigKey::new("preallocate", T::Bool, "false", "Accepted; segments are not preallocated."),
        "log.preallocate",
    ),
    topic_only(ConfigKey::new(
        "remote.log.copy.disable",
        T::Bool,
        "false",
        "Tiered storage (not available in ZooKeeper mode: only false is accepted).",
    )),
    topic_only(ConfigKey::new(
        "remote.log.delete.on.disable",
        T::Bool,
        "false",
        "Tiered storage (not available in ZooKeeper mode: only false is accepted).",
    )),
    topic_only(ConfigKey::new(
        "remote.storage.enable",
        T::Bool,
        "false",
        "Tiered storage (disabled in the broker: only false is accepted).",
    )),
    topic_key(
        ConfigKey::new("retention.bytes", T::Long, "-1", "Maximum partition size; -1 = unbounded."),
        "log.retention.bytes",
    ),
    topic_key(
        ConfigKey::new("retention.ms", T::Long, "604800000", "How long segments are kept; -1 = forever.")
            .check(V::AtLeast(-1)),
        "log.retention.ms",
    ),
    topic_key(
        ConfigKey::new("segment.bytes", T::Int, "1073741824", "Segment file size.").check(V::AtLeast(14)),
        "log.segment.bytes",
    ),
    topic_key(
        ConfigKey::new("segment.index.bytes", T::Int, "10485760", "Offset index size.").check(V::AtLeast(4)),
        "log.index.size.max.bytes",
    ),
    topic_key(
        ConfigKey::new("segment.jitter.ms", T::Long, "0", "Random jitter subtracted from segment.ms.")
            .check(V::AtLeast(0)),
        "log.roll.jitter.ms",
    ),
    topic_key(
        ConfigKey::new("segment.ms", T::Long, "604800000", "Time after which a segment is rolled.").check(V::AtLeast(1)),
        "log.roll.ms",
    ),
    topic_key(
        ConfigKey::new(
            "unclean.leader.election.enable",
            T::Bool,
            "false",
            "Allow out-of-sync replicas to become leader.",
        ),
        "unclean.leader.election.enable",
    ),
];

pub fn topic_key_def(name: &str) -> Option<&'static TopicKey> {
    TOPIC_KEYS.iter().find(|k| k.key.name == name)
}

/// Computes each topic key's broker-level default, honouring Kafka's synonyms
/// (`log.retention.ms` > `.minutes` > `.hours`, `log.roll.ms` > `.hours`, and
/// `log.flush.interval.ms` falling back to the scheduler interval).
pub(crate) fn defaults_from_broker(r: &Resolver<'_>) -> Result<TopicDefaults, ConfigError> {
    let mut out = BTreeMap::new();
    for tk in TOPIC_KEYS {
        let value = match tk.key.name {
            "retention.ms" => match r.raw("log.retention.ms") {
                Some(ms) => ms,
                None => match r.raw("log.retention.minutes") {
                    Some(_) => (r.int("log.retention.minutes")? * 60_000).to_string(),
                    None => (r.int("log.retention.hours")? * 3_600_000).to_string(),
                },
            },
            "segment.ms" => match r.raw("log.roll.ms") {
                Some(ms) => ms,
                None => (r.int("log.roll.hours")? * 3_600_000).to_string(),
            },
            "flush.ms" => match r.raw("log.flush.interval.ms") {
                Some(ms) => ms,
                None => r.string("log.flush.scheduler.interval.ms")?,
            },
            "segment.jitter.ms" => match r.raw("log.roll.jitter.ms") {
                Some(ms) => ms,
                None => (r.int("log.roll.jitter.hours")? * 3_600_000).to_string(),
            },
            // Kafka reports the broker's message.format.version as 3.0-IV1 whatever the
            // broker file says (KafkaConfig.logMessageFormatVersion with IBP >= 3.0).
            "message.format.version" => "3.0-IV1".to_string(),
            _ => match tk.broker_key {
                Some(key) => r.string(key)?,
                None => tk.key.default.unwrap_or_default().to_string(),
            },
        };
        out.insert(tk.key.name, value);
    }
    Ok(out)
}

/// A topic's effective configuration: its overrides over the broker defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicConfig {
    overrides: BTreeMap<String, String>,
    defaults: TopicDefaults,
}

impl TopicConfig {
    /// Validates every override (unknown names and bad values are INVALID_CONFIG).
    pub fn new(
        overrides: BTreeMap<String, String>,
        defaults: &TopicDefaults,
    ) -> Result<TopicConfig, ConfigError> {
        for (name, value) in &overrides {
            let tk = topic_key_def(name).ok_or_else(|| ConfigError::Unknown(name.clone()))?;
            tk.key.validate(value)?;
        }
        let config = TopicConfig {
            overrides,
            defaults: defaults.clone(),
        };
        config.validate_values()?;
        Ok(config)
    }

    /// Kafka's cross-key checks (`LogConfig.validateValues` and, in ZooKeeper mode without
    /// tiered storage, the remote storage keys).
    fn validate_values(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, reason: &str| ConfigError::Invalid {
            key: key.to_string(),
            value: self.value(key),
            reason: reason.to_string(),
        };
        let (min, max) = (
            self.long("min.compaction.lag.ms"),
            self.long("max.compaction.lag.ms"),
        );
        if min > max {
            return Err(invalid(
                "min.compaction.lag.ms",
                &format!("conflict topic config setting min.compaction.lag.ms ({min}) > max.compaction.lag.ms ({max})"),
            ));
        }
        if self.bool("remote.storage.enable") {
            return Err(invalid(
                "remote.storage.enable",
                "Tiered Storage functionality is disabled in the broker. Topic cannot be configured with remote log storage.",
            ));
        }
        for key in ["remote.log.delete.on.disable", "remote.log.copy.disable"] {
            if self.bool(key) {
                return Err(invalid(
                    key,
                    "It is invalid to set `remote.log.delete.on.disable` or `remote.log.copy.disable` under Zookeeper's mode.",
                ));
            }
        }
        Ok(())
    }

    /// A topic with no overrides: always valid.
    pub fn defaults(defaults: &TopicDefaults) -> TopicConfig {
        TopicConfig {
            overrides: BTreeMap::new(),
            defaults: defaults.clone(),
        }
    }

    pub fn overrides(&self) -> &BTreeMap<String, String> {
        &self.overrides
    }

    /// The effective value and whether it is a topic override.
    pub fn get(&self, name: &str) -> Option<(String, bool)> {
        if let Some(v) = self.overrides.get(name) {
            return Some((v.clone(), true));
        }
        self.defaults.get(name).map(|v| (v.clone(), false))
    }

    fn value(&self, name: &str) -> String {
        // Every TOPIC_KEYS name has a default (defaults_from_broker fills them all).
        self.get(name).map(|(v, _)| v).unwrap_or_default()
    }

    pub fn long(&self, name: &str) -> i64 {
        self.value(name).trim().parse().unwrap_or_default()
    }

    pub fn bool(&self, name: &str) -> bool {
        parse_bool(&self.value(name)).unwrap_or(false)
    }

    pub fn double(&self, name: &str) -> f64 {
        self.value(name).trim().parse().unwrap_or_default()
    }

    pub fn string(&self, name: &str) -> String {
        self.value(name)
    }

    pub fn min_insync_replicas(&self) -> i32 {
        self.long("min.insync.replicas") as i32
    }

    pub fn is_compacted(&self) -> bool {
        split_list(&self.value("cleanup.policy")).any(|p| p == "compact")
    }

    pub fn is_delete(&self) -> bool {
        split_list(&self.value("cleanup.policy")).any(|p| p == "delete")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BrokerConfig;

    fn defaults() -> TopicDefaults {
        let values = BTreeMap::from([
            ("broker.id".to_string(), "1".to_string()),
            ("zookeeper.connect".to_string(), "h:1".to_string()),
            ("log.retention.hours".to_string(), "2".to_string()),
        ]);
        BrokerConfig::from_values(values).unwrap().topic_defaults
    }

    #[test]
    fn overrides_win_over_broker_defaults() {
        let d = defaults();
        let c = TopicConfig::new(BTreeMap::new(), &d).unwrap();
        assert_eq!(c.long("retention.ms"), 7_200_000);
        assert_eq!(c.get("retention.ms"), Some(("7200000".into(), false)));
        let c = TopicConfig::new(
            BTreeMap::from([("retention.ms".to_string(), "1000".to_string())]),
            &d,
        )
        .unwrap();
        assert_eq!(c.get("retention.ms"), Some(("1000".into(), true)));
    }

    #[test]
    fn unknown_and_invalid_topic_configs_are_rejected() {
        let d = defaults();
        let bad_name = BTreeMap::from([("retention.msx".to_string(), "1".to_string())]);
        assert_eq!(
            TopicConfig::new(bad_name, &d).unwrap_err(),
            ConfigError::Unknown("retention.msx".into())
        );
        let bad_value = BTreeMap::from([("cleanup.policy".to_string(), "shred".to_string())]);
        assert!(TopicConfig::new(bad_value, &d).is_err());
        let compact = BTreeMap::from([("cleanup.policy".to_string(), "compact".to_string())]);
        assert!(TopicConfig::new(compact, &d).unwrap().is_compacted());
    }

    #[test]
    fn every_kafka_39_topic_key_is_known_with_a_valid_default() {
        let d = defaults();
        assert_eq!(TOPIC_KEYS.len(), 36);
        for tk in TOPIC_KEYS {
            let (value, is_override) = TopicConfig::defaults(&d).get(tk.key.name).unwrap();
            assert!(!is_override);
            tk.key
                .validate(&value)
                .unwrap_or_else(|e| panic!("{}: {e}", tk.key.name));
        }
        assert_eq!(
            TopicConfig::defaults(&d).string("message.format.version"),
            "3.0-IV1"
        );
    }

    #[test]
    fn kafkas_value_checks() {
        let d = defaults();
        let one = |k: &str, v: &str| {
            TopicConfig::new(BTreeMap::from([(k.to_string(), v.to_string())]), &d)
        };
        for (k, good, bad) in [
            ("compression.type", "lz4", "brotli"),
            ("compression.gzip.level", "-1", "0"),
            ("compression.gzip.level", "9", "10"),
            ("compression.lz4.level", "17", "18"),
            ("compression.zstd.level", "-131072", "23"),
            ("message.format.version", "0.10.2", "0.10.9"),
            ("message.format.version", "2.8-IV1", "banana"),
            ("message.format.version", "0.10.2.1", "4.0"),
            ("leader.replication.throttled.replicas", "0:1,1:2", "0-1"),
            ("follower.replication.throttled.replicas", "*", "x:1"),
            ("max.compaction.lag.ms", "1", "0"),
            ("local.retention.ms", "-2", "-3"),
            ("remote.storage.enable", "false", "true"),
            ("remote.log.copy.disable", "false", "true"),
            ("message.downconversion.enable", "false", "maybe"),
            ("segment.jitter.ms", "0", "-1"),
        ] {
            assert!(one(k, good).is_ok(), "{k}={good}");
            assert!(one(k, bad).is_err(), "{k}={bad}");
        }
        let lags = BTreeMap::from([
            ("min.compaction.lag.ms".to_string(), "100".to_string()),
            ("max.compaction.lag.ms".to_string(), "10".to_string()),
        ]);
        assert!(TopicConfig::new(lags, &d).is_err());
    }
}
