//! Dynamic broker configs (KIP-226, ZooKeeper mode): the broker keys that can change
//! without a restart, kept in `/config/brokers/<id>` (one broker) and
//! `/config/brokers/<default>` (every broker), each `{"version":1,"config":{..}}`.
//! A value takes the first of: the broker's own entry, the default entry, the config
//! file, the key's default (Kafka's DYNAMIC_BROKER_CONFIG > DYNAMIC_DEFAULT_BROKER_CONFIG
//! > STATIC_BROKER_CONFIG > DEFAULT_CONFIG).
//!
//! gregor's dynamic keys are the replication throttles; Kafka refuses a dynamic update of
//! any other key with "Cannot update these configs dynamically", and so does gregor.

use std::collections::BTreeMap;

use super::broker::key_def;
use super::ConfigError;

pub const LEADER_THROTTLED_RATE: &str = "leader.replication.throttled.rate";
pub const FOLLOWER_THROTTLED_RATE: &str = "follower.replication.throttled.rate";

/// The topic keys naming the throttled replicas (see `replica::throttle`).
pub const LEADER_THROTTLED_REPLICAS: &str = "leader.replication.throttled.replicas";
pub const FOLLOWER_THROTTLED_REPLICAS: &str = "follower.replication.throttled.replicas";

/// Broker keys that may be changed at runtime.
pub const DYNAMIC_BROKER_KEYS: &[&str] = &[LEADER_THROTTLED_RATE, FOLLOWER_THROTTLED_RATE];

pub fn is_dynamic(key: &str) -> bool {
    DYNAMIC_BROKER_KEYS.contains(&key)
}

/// The znode child name of a dynamic config entity: a broker id, or `<default>`.
pub fn entity_name(broker: Option<i32>) -> String {
    broker.map_or_else(|| DEFAULT_ENTITY.to_string(), |id| id.to_string())
}

pub const DEFAULT_ENTITY: &str = "<default>";

/// Checks a whole override set for one entity: every key dynamic, every value valid.
pub fn validate(overrides: &BTreeMap<String, String>) -> Result<(), ConfigError> {
    let not_dynamic: Vec<&str> = overrides
        .keys()
        .map(String::as_str)
        .filter(|k| !is_dynamic(k))
        .collect();
    if !not_dynamic.is_empty() {
        return Err(ConfigError::NotDynamic(not_dynamic.join(", ")));
    }
    for (k, v) in overrides {
        if let Some(def) = key_def(k) {
            def.validate(v)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_throttle_rates_are_dynamic_and_their_values_are_checked() {
        let set = |k: &str, v: &str| BTreeMap::from([(k.to_string(), v.to_string())]);
        assert!(validate(&set(LEADER_THROTTLED_RATE, "1048576")).is_ok());
        assert!(validate(&set(FOLLOWER_THROTTLED_RATE, "-1")).is_err());
        assert!(validate(&set(LEADER_THROTTLED_RATE, "fast")).is_err());
        let err = validate(&set("log.retention.hours", "1")).unwrap_err();
        assert!(err
            .to_string()
            .contains("Cannot update these configs dynamically"));
        assert_eq!(entity_name(None), "<default>");
        assert_eq!(entity_name(Some(3)), "3");
    }
}
