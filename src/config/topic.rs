//! Topic-level configuration: the keys a topic may override (CreateTopics configs,
//! AlterConfigs, `/config/topics/<topic>`), each defaulting to a broker-level key as in
//! Kafka (`retention.ms` ← `log.retention.ms`, ...).

use std::collections::BTreeMap;

use super::broker::{Resolver, TopicDefaults};
use super::keys::{
    parse_bool, split_list, ConfigError, ConfigKey, ConfigType as T, Validator as V,
};

/// A topic key and the broker key its default comes from.
pub struct TopicKey {
    pub key: ConfigKey,
    pub broker_key: &'static str,
}

const fn topic_key(key: ConfigKey, broker_key: &'static str) -> TopicKey {
    TopicKey { key, broker_key }
}

/// The topic configs gregor honours. Anything else is rejected with INVALID_CONFIG, as
/// Kafka rejects unknown topic config names.
pub const TOPIC_KEYS: &[TopicKey] = &[
    topic_key(
        ConfigKey::new(
            "cleanup.policy",
            T::List,
            "delete",
            "delete and/or compact.",
        )
        .check(V::ListOf(&["delete", "compact"])),
        "log.cleanup.policy",
    ),
    topic_key(
        ConfigKey::new(
            "compression.type",
            T::String,
            "producer",
            "Only `producer` is supported: batches are stored as sent.",
        )
        .check(V::OneOf(&["producer"])),
        "compression.type",
    ),
    topic_key(
        ConfigKey::new(
            "delete.retention.ms",
            T::Long,
            "86400000",
            "How long tombstones are kept on compacted topics.",
        )
        .check(V::AtLeast(0)),
        "log.cleaner.delete.retention.ms",
    ),
    topic_key(
        ConfigKey::new(
            "file.delete.delay.ms",
            T::Long,
            "60000",
            "Delay before deleted segment files are removed.",
        )
        .check(V::AtLeast(0)),
        "log.segment.delete.delay.ms",
    ),
    topic_key(
        ConfigKey::new(
            "flush.messages",
            T::Long,
            "9223372036854775807",
            "Messages between forced fsyncs.",
        )
        .check(V::AtLeast(1)),
        "log.flush.interval.messages",
    ),
    topic_key(
        ConfigKey::new(
            "flush.ms",
            T::Long,
            "9223372036854775807",
            "Time between forced fsyncs.",
        )
        .check(V::AtLeast(0)),
        "log.flush.interval.ms",
    ),
    topic_key(
        ConfigKey::new(
            "index.interval.bytes",
            T::Int,
            "4096",
            "Bytes between offset index entries.",
        )
        .check(V::AtLeast(0)),
        "log.index.interval.bytes",
    ),
    topic_key(
        ConfigKey::new(
            "max.message.bytes",
            T::Int,
            "1048588",
            "Largest record batch allowed.",
        )
        .check(V::AtLeast(0)),
        "message.max.bytes",
    ),
    topic_key(
        ConfigKey::new(
            "message.timestamp.type",
            T::String,
            "CreateTime",
            "CreateTime or LogAppendTime.",
        )
        .check(V::OneOf(&["CreateTime", "LogAppendTime"])),
        "log.message.timestamp.type",
    ),
    topic_key(
        ConfigKey::new(
            "min.cleanable.dirty.ratio",
            T::Double,
            "0.5",
            "Dirty ratio that triggers compaction.",
        )
        .check(V::Ratio(0.0, 1.0)),
        "log.cleaner.min.cleanable.ratio",
    ),
    topic_key(
        ConfigKey::new(
            "min.insync.replicas",
            T::Int,
            "1",
            "Minimum ISR size for acks=all writes.",
        )
        .check(V::AtLeast(1)),
        "min.insync.replicas",
    ),
    topic_key(
        ConfigKey::new(
            "retention.bytes",
            T::Long,
            "-1",
            "Maximum partition size; -1 = unbounded.",
        ),
        "log.retention.bytes",
    ),
    topic_key(
        ConfigKey::new(
            "retention.ms",
            T::Long,
            "604800000",
            "How long segments are kept; -1 = forever.",
        )
        .check(V::AtLeast(-1)),
        "log.retention.ms",
    ),
    topic_key(
        ConfigKey::new("segment.bytes", T::Int, "1073741824", "Segment file size.")
            .check(V::AtLeast(14)),
        "log.segment.bytes",
    ),
    topic_key(
        ConfigKey::new(
            "segment.index.bytes",
            T::Int,
            "10485760",
            "Offset index size.",
        )
        .check(V::AtLeast(4)),
        "log.index.size.max.bytes",
    ),
    topic_key(
        ConfigKey::new(
            "segment.ms",
            T::Long,
            "604800000",
            "Time after which a segment is rolled.",
        )
        .check(V::AtLeast(1)),
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
            _ => r.string(tk.broker_key)?,
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
        Ok(TopicConfig {
            overrides,
            defaults: defaults.clone(),
        })
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
}
