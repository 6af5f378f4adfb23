//! Listener security keys (`config::broker::SECURITY_KEYS`): which key names are valid,
//! with or without the `listener.name.<listener>.` prefix.

use crate::config::broker::SECURITY_KEYS;
use crate::config::keys::{ConfigError, ConfigKey};

const LISTENER_PREFIX: &str = "listener.name.";
const JAAS_SUFFIX: &str = "sasl.jaas.config";

/// The key without its listener prefix, if it is a listener security key.
fn unprefixed(key: &str) -> &str {
    match key.strip_prefix(LISTENER_PREFIX) {
        Some(rest) => rest.split_once('.').map_or(rest, |(_, k)| k),
        None => key,
    }
}

fn def(key: &str) -> Option<&'static ConfigKey> {
    SECURITY_KEYS.iter().find(|k| k.name == key)
}

/// `<mechanism>.sasl.jaas.config`, or `sasl.jaas.config` itself (Kafka: listener-prefixed
/// only on brokers).
fn is_jaas_key(key: &str) -> bool {
    key == JAAS_SUFFIX
        || key
            .strip_suffix(JAAS_SUFFIX)
            .and_then(|m| m.strip_suffix('.'))
            .is_some_and(|m| !m.is_empty() && !m.contains('.'))
}

/// True for every key this module validates (so `BrokerConfig` does not call it unknown).
pub fn is_security_key(key: &str) -> bool {
    let k = unprefixed(key);
    let prefixed = key.starts_with(LISTENER_PREFIX);
    def(k).is_some() || (prefixed && is_jaas_key(k))
}

pub fn validate_key(key: &str, value: &str) -> Result<(), ConfigError> {
    match def(unprefixed(key)) {
        Some(def) => def.validate(value).map_err(|e| match e {
            ConfigError::Invalid { value, reason, .. } => ConfigError::Invalid {
                key: key.to_string(),
                value,
                reason,
            },
            other => other,
        }),
        None => Ok(()), // a JAAS config: parsed when the listener starts
    }
}

pub fn default_of(key: &str) -> Option<&'static str> {
    def(key).and_then(|d| d.default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixed_and_jaas_keys_are_recognised() {
        assert!(is_security_key("ssl.client.auth"));
        assert!(is_security_key(
            "listener.name.internal.ssl.keystore.location"
        ));
        assert!(is_security_key(
            "listener.name.sasl_ssl.plain.sasl.jaas.config"
        ));
        assert!(is_security_key(
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config"
        ));
        assert!(!is_security_key("plain.sasl.jaas.config"));
        assert!(!is_security_key("listener.name.x.log.dirs"));
        assert!(validate_key("listener.name.x.ssl.client.auth", "bogus").is_err());
    }
}
