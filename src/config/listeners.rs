//! Listeners as Kafka names them: `NAME://host:port` URIs (`listeners`,
//! `advertised.listeners`), each name mapped to a security protocol by
//! `listener.security.protocol.map`, and the one brokers use between themselves
//! (`inter.broker.listener.name` or `security.inter.broker.protocol`).

use std::collections::BTreeMap;

use super::keys::{split_list, ConfigError};
use crate::security::SecurityProtocol;

/// Kafka's default `listener.security.protocol.map`: every protocol is also a listener name.
pub const DEFAULT_PROTOCOL_MAP: &str =
    "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL";

/// One listener endpoint, `NAME://host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// Upper-cased, as Kafka's `ListenerName.normalised`.
    pub name: String,
    pub host: String,
    pub port: u16,
    pub protocol: SecurityProtocol,
}

impl Listener {
    pub fn parse(
        key: &str,
        uri: &str,
        protocols: &BTreeMap<String, SecurityProtocol>,
    ) -> Result<Listener, ConfigError> {
        let bad = |reason: &str| invalid(key, uri, reason);
        let (name, rest) = uri
            .split_once("://")
            .ok_or_else(|| bad("expected NAME://host:port"))?;
        let name = name.trim().to_ascii_uppercase();
        let protocol = *protocols
            .get(&name)
            .ok_or_else(|| bad("listener name is not in listener.security.protocol.map"))?;
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| bad("expected NAME://host:port"))?;
        let port: u16 = port.parse().map_err(|_| bad("port is not a number"))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        Ok(Listener {
            name,
            host,
            port,
            protocol,
        })
    }

    /// The address to bind: an empty host means every interface, as in Kafka.
    pub fn bind_addr(&self) -> String {
        let host = if self.host.is_empty() {
            "0.0.0.0"
        } else {
            &self.host
        };
        format!("{host}:{}", self.port)
    }

    /// `NAME://host:port`, as in the registration's `endpoints`.
    pub fn uri(&self) -> String {
        format!("{}://{}:{}", self.name, self.host, self.port)
    }
}

fn invalid(key: &str, value: &str, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

/// Parses `listener.security.protocol.map` (`NAME:PROTOCOL,...`).
pub fn parse_protocol_map(
    key: &str,
    value: &str,
) -> Result<BTreeMap<String, SecurityProtocol>, ConfigError> {
    split_list(value)
        .map(|entry| {
            let (name, protocol) = entry
                .split_once(':')
                .ok_or_else(|| invalid(key, entry, "expected NAME:PROTOCOL"))?;
            let protocol = SecurityProtocol::parse(protocol.trim()).ok_or_else(|| {
                invalid(
                    key,
                    entry,
                    "protocol must be PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL",
                )
            })?;
            Ok((name.trim().to_ascii_uppercase(), protocol))
        })
        .collect()
}

/// Parses a listener list, rejecting two listeners with one name or one port (Kafka's
/// `validateUniqueListenerNames` / duplicate port check).
pub fn parse_listeners(
    key: &str,
    value: &str,
    protocols: &BTreeMap<String, SecurityProtocol>,
    unique_ports: bool,
) -> Result<Vec<Listener>, ConfigError> {
    let listeners: Vec<Listener> = split_list(value)
        .map(|uri| Listener::parse(key, uri, protocols))
        .collect::<Result<_, _>>()?;
    for (i, l) in listeners.iter().enumerate() {
        for other in &listeners[..i] {
            if other.name == l.name {
                return Err(invalid(
                    key,
                    value,
                    "each listener must have a distinct name",
                ));
            }
            if unique_ports && other.port == l.port && other.port != 0 {
                return Err(invalid(
                    key,
                    value,
                    "each listener must have a distinct port",
                ));
            }
        }
    }
    Ok(listeners)
}

/// The inter-broker listener's name: `inter.broker.listener.name` if set, else the
/// listener named after `security.inter.broker.protocol` (Kafka's rule; setting both is
/// an error there too).
pub fn inter_broker_listener_name(
    listener_name: Option<&str>,
    protocol: Option<&str>,
    advertised: &[Listener],
) -> Result<String, ConfigError> {
    let name = match (listener_name, protocol) {
        (Some(_), Some(_)) => return Err(invalid(
            "inter.broker.listener.name",
            listener_name.unwrap_or_default(),
            "only one of inter.broker.listener.name and security.inter.broker.protocol may be set",
        )),
        (Some(name), None) => name.trim().to_ascii_uppercase(),
        (None, Some(protocol)) => {
            let p = SecurityProtocol::parse(protocol.trim()).ok_or_else(|| {
                invalid(
                    "security.inter.broker.protocol",
                    protocol,
                    "unknown security protocol",
                )
            })?;
            p.name().to_string()
        }
        (None, None) => SecurityProtocol::Plaintext.name().to_string(),
    };
    if !advertised.iter().any(|l| l.name == name) {
        return Err(invalid(
            "inter.broker.listener.name",
            &name,
            "the inter-broker listener must be one of advertised.listeners",
        ));
    }
    Ok(name)
}

/// Parses an `endpoints` entry of a broker registration (`NAME://host:port`).
pub fn parse_endpoint(uri: &str) -> Option<(String, String, u16)> {
    let (name, rest) = uri.split_once("://")?;
    let (host, port) = rest.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some((
        name.to_ascii_uppercase(),
        host.to_string(),
        port.parse().ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_map() -> BTreeMap<String, SecurityProtocol> {
        parse_protocol_map("m", DEFAULT_PROTOCOL_MAP).unwrap()
    }

    #[test]
    fn named_listeners_take_their_protocol_from_the_map() {
        let map = parse_protocol_map("m", "INTERNAL:SASL_SSL,external:ssl").unwrap();
        let ls = parse_listeners(
            "listeners",
            "INTERNAL://10.0.0.1:9093, external://[::1]:9094",
            &map,
            true,
        )
        .unwrap();
        assert_eq!(ls[0].protocol, SecurityProtocol::SaslSsl);
        assert_eq!(ls[1].name, "EXTERNAL");
        assert_eq!(ls[1].host, "::1");
        assert_eq!(ls[1].protocol, SecurityProtocol::Ssl);
        assert!(parse_listeners("listeners", "OTHER://:1", &map, true).is_err());
    }

    #[test]
    fn duplicate_names_and_ports_are_rejected() {
        let map = default_map();
        assert!(parse_listeners("l", "PLAINTEXT://:1,PLAINTEXT://:2", &map, true).is_err());
        assert!(parse_listeners("l", "PLAINTEXT://:1,SSL://:1", &map, true).is_err());
        assert!(parse_listeners("l", "PLAINTEXT://a:1,SSL://b:1", &map, false).is_ok());
        assert!(parse_protocol_map("m", "A:TLS").is_err());
    }

    #[test]
    fn inter_broker_listener_follows_kafkas_rule() {
        let map = default_map();
        let ls = parse_listeners("l", "PLAINTEXT://:1,SASL_SSL://:2", &map, true).unwrap();
        assert_eq!(
            inter_broker_listener_name(None, None, &ls).unwrap(),
            "PLAINTEXT"
        );
        assert_eq!(
            inter_broker_listener_name(None, Some("SASL_SSL"), &ls).unwrap(),
            "SASL_SSL"
        );
        assert_eq!(
            inter_broker_listener_name(Some("sasl_ssl"), None, &ls).unwrap(),
            "SASL_SSL"
        );
        assert!(inter_broker_listener_name(None, Some("SSL"), &ls).is_err());
        assert!(inter_broker_listener_name(Some("SSL"), Some("SSL"), &ls).is_err());
        let ssl_only = parse_listeners("l", "SSL://:2", &map, true).unwrap();
        assert!(inter_broker_listener_name(None, None, &ssl_only).is_err());
    }

    #[test]
    fn endpoints_parse() {
        assert_eq!(
            parse_endpoint("SASL_SSL://h:9093"),
            Some(("SASL_SSL".into(), "h".into(), 9093))
        );
        assert_eq!(parse_endpoint("garbage"), None);
    }
}
