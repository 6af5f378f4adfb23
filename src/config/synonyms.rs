//! Where a broker key's value comes from, as DescribeConfigs reports it: each level
//! that sets the key or one of its synonyms (`log.retention.hours` for
//! `log.retention.ms`), the one in force first. Kafka lists them level by level, the
//! broker's own dynamic entry, the cluster-wide dynamic default, the config file, the
//! built-in default, and within a level in the synonyms' precedence (its
//! `ConfigHelper.configSynonyms`).

use super::ConfigSource;

/// The levels, highest precedence first.
const LEVELS: [ConfigSource; 4] = [
    ConfigSource::DynamicBrokerConfig,
    ConfigSource::DynamicDefaultBrokerConfig,
    ConfigSource::StaticBrokerConfig,
    ConfigSource::DefaultConfig,
];

/// One level that sets a key: the name it is set under, the value and the level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Level {
    pub name: &'static str,
    pub value: String,
    pub source: ConfigSource,
}

/// The broker keys that set the same thing as `name`, in precedence order (Kafka's
/// `DynamicBrokerConfig.brokerConfigSynonyms`): the time keys in their units.
pub fn broker_synonyms(name: &str) -> &'static [&'static str] {
    const ROLL: &[&str] = &["log.roll.ms", "log.roll.hours"];
    const JITTER: &[&str] = &["log.roll.jitter.ms", "log.roll.jitter.hours"];
    const FLUSH: &[&str] = &["log.flush.interval.ms", "log.flush.scheduler.interval.ms"];
    const RETENTION: &[&str] = &[
        "log.retention.ms",
        "log.retention.minutes",
        "log.retention.hours",
    ];
    match name {
        "log.roll.ms" | "log.roll.hours" => ROLL,
        "log.roll.jitter.ms" | "log.roll.jitter.hours" => JITTER,
        "log.flush.interval.ms" => FLUSH,
        "log.retention.ms" | "log.retention.minutes" | "log.retention.hours" => RETENTION,
        _ => &[],
    }
}

/// Every level that sets `name` or its synonyms, `lookup(level, key)` answering what a
/// level gives a key. As Kafka, the list starts at `name` itself: a synonym that sets a
/// value only above every level of `name` is left out.
pub fn levels(
    name: &'static str,
    lookup: impl Fn(ConfigSource, &str) -> Option<String>,
) -> Vec<Level> {
    let names: &[&'static str] = match broker_synonyms(name) {
        [] => std::slice::from_ref(&name),
        chain => chain,
    };
    let mut out = Vec::new();
    for source in LEVELS {
        for &n in names {
            if let Some(value) = lookup(source, n) {
                out.push(Level {
                    name: n,
                    value,
                    source,
                });
            }
        }
    }
    let first = out.iter().position(|l| l.name == name).unwrap_or(out.len());
    out.drain(..first);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A lookup from (level, key) pairs.
    fn set(pairs: &[(ConfigSource, &str, &str)]) -> impl Fn(ConfigSource, &str) -> Option<String> {
        let map: BTreeMap<(i8, String), String> = pairs
            .iter()
            .map(|(s, k, v)| ((*s as i8, k.to_string()), v.to_string()))
            .collect();
        move |s, k| map.get(&(s as i8, k.to_string())).cloned()
    }

    fn level(name: &'static str, value: &str, source: ConfigSource) -> Level {
        Level {
            name,
            value: value.into(),
            source,
        }
    }

    #[test]
    fn a_plain_key_lists_its_levels_in_kafkas_precedence() {
        use ConfigSource::*;
        let rate = "leader.replication.throttled.rate";
        let lookup = set(&[
            (DefaultConfig, rate, "-1"),
            (StaticBrokerConfig, rate, "30"),
            (DynamicDefaultBrokerConfig, rate, "20"),
            (DynamicBrokerConfig, rate, "10"),
        ]);
        assert_eq!(
            levels(rate, lookup),
            vec![
                level(rate, "10", DynamicBrokerConfig),
                level(rate, "20", DynamicDefaultBrokerConfig),
                level(rate, "30", StaticBrokerConfig),
                level(rate, "-1", DefaultConfig),
            ]
        );
        assert!(levels(rate, set(&[])).is_empty());
    }

    #[test]
    fn synonyms_are_listed_level_by_level_from_the_key_itself() {
        use ConfigSource::*;
        let ms = "log.retention.ms";
        let hours = "log.retention.hours";
        // Only hours set (its default): log.retention.ms has no level, so nothing is
        // listed for it, while log.retention.hours lists its default.
        let defaults = [(DefaultConfig, hours, "168")];
        assert!(levels(ms, set(&defaults)).is_empty());
        assert_eq!(
            levels(hours, set(&defaults)),
            vec![level(hours, "168", DefaultConfig)]
        );
        // The file sets the milliseconds: listed first, then the hours' default.
        let file = [
            (StaticBrokerConfig, ms, "1000"),
            (DefaultConfig, hours, "168"),
        ];
        assert_eq!(
            levels(ms, set(&file)),
            vec![
                level(ms, "1000", StaticBrokerConfig),
                level(hours, "168", DefaultConfig)
            ]
        );
        // Asked for the hours, the milliseconds above them are left out.
        assert_eq!(
            levels(hours, set(&file)),
            vec![level(hours, "168", DefaultConfig)]
        );
        assert_eq!(
            broker_synonyms("log.roll.hours"),
            ["log.roll.ms", "log.roll.hours"]
        );
        assert!(broker_synonyms("log.flush.scheduler.interval.ms").is_empty());
    }
}
