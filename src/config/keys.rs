//! A typed table of configuration keys: name, type, default, validation. Values are kept
//! as Kafka keeps them in properties files (strings) and parsed on demand, so the same
//! code reads TOML files, ZooKeeper config znodes and AlterConfigs requests.

use std::collections::BTreeMap;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Bool,
    Int,
    Long,
    Double,
    String,
    List,
}

impl ConfigType {
    /// The type name DescribeConfigs v3+ reports (`ConfigType` in Kafka's protocol:
    /// 1 BOOLEAN, 2 STRING, 3 INT, 4 SHORT, 5 LONG, 6 DOUBLE, 7 LIST, 8 CLASS, 9 PASSWORD).
    pub fn protocol_code(self) -> i8 {
        match self {
            ConfigType::Bool => 1,
            ConfigType::String => 2,
            ConfigType::Int => 3,
            ConfigType::Long => 5,
            ConfigType::Double => 6,
            ConfigType::List => 7,
        }
    }
}

/// Where a config value came from (DescribeConfigs `config_source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    TopicConfig = 1,
    DynamicBrokerConfig = 2,
    DynamicDefaultBrokerConfig = 3,
    StaticBrokerConfig = 4,
    DefaultConfig = 5,
}

impl ConfigSource {
    /// The source a DescribeConfigs answer names (`None`: one gregor never reports,
    /// such as a broker logger's or client metrics').
    pub fn from_code(code: i8) -> Option<ConfigSource> {
        [
            ConfigSource::TopicConfig,
            ConfigSource::DynamicBrokerConfig,
            ConfigSource::DynamicDefaultBrokerConfig,
            ConfigSource::StaticBrokerConfig,
            ConfigSource::DefaultConfig,
        ]
        .into_iter()
        .find(|s| *s as i8 == code)
    }
}

/// How a value must look beyond its type.
#[derive(Debug, Clone, Copy)]
pub enum Validator {
    None,
    /// Inclusive lower bound for numeric keys.
    AtLeast(i64),
    /// Inclusive numeric range.
    Between(i64, i64),
    /// One of these strings (case-sensitive, as Kafka's `ValidString`).
    OneOf(&'static [&'static str]),
    /// A comma-separated list whose every element is one of these.
    ListOf(&'static [&'static str]),
    /// A double in [lo, hi].
    Ratio(f64, f64),
    /// An integer in [lo, hi] or exactly the third value (gzip's -1 default level).
    LevelOr(i64, i64, i64),
    /// A Kafka version (`MetadataVersion.fromVersionString`): `0.10.2`, `2.8-IV1`, `3.0`...
    MetadataVersion,
    /// `*` or `partition:broker,...` (Kafka's `ThrottledReplicaListValidator`).
    ThrottledReplicas,
}

/// Kafka 3.9's `MetadataVersion` inter-broker protocol versions; with the release
/// versions (`0.10.2`, `2.8`, `3.9`) these are what `message.format.version` accepts.
const IBP_VERSIONS: &[&str] = &[
    "0.8.0",
    "0.8.1",
    "0.8.2",
    "0.9.0",
    "0.10.0-IV0",
    "0.10.0-IV1",
    "0.10.1-IV0",
    "0.10.1-IV1",
    "0.10.1-IV2",
    "0.10.2-IV0",
    "0.11.0-IV0",
    "0.11.0-IV1",
    "0.11.0-IV2",
    "1.0-IV0",
    "1.1-IV0",
    "2.0-IV0",
    "2.0-IV1",
    "2.1-IV0",
    "2.1-IV1",
    "2.1-IV2",
    "2.2-IV0",
    "2.2-IV1",
    "2.3-IV0",
    "2.3-IV1",
    "2.4-IV0",
    "2.4-IV1",
    "2.5-IV0",
    "2.6-IV0",
    "2.7-IV0",
    "2.7-IV1",
    "2.7-IV2",
    "2.8-IV0",
    "2.8-IV1",
    "3.0-IV0",
    "3.0-IV1",
    "3.1-IV0",
    "3.2-IV0",
    "3.3-IV0",
    "3.3-IV1",
    "3.3-IV2",
    "3.3-IV3",
    "3.4-IV0",
    "3.5-IV0",
    "3.5-IV1",
    "3.5-IV2",
    "3.6-IV0",
    "3.6-IV1",
    "3.6-IV2",
    "3.7-IV0",
    "3.7-IV1",
    "3.7-IV2",
    "3.7-IV3",
    "3.7-IV4",
    "3.8-IV0",
    "3.9-IV0",
    "4.0-IV0",
    "4.0-IV1",
];

/// Kafka's `MetadataVersion.fromVersionString`: the first three dot-separated parts of a
/// `0.x` version, else the first two, name an inter-broker protocol version or a release.
pub fn is_kafka_version(v: &str) -> bool {
    let parts: Vec<&str> = v.split('.').collect();
    let n = if v.starts_with("0.") { 3 } else { 2 };
    let key = if parts.len() <= n {
        v.to_string()
    } else {
        parts[..n].join(".")
    };
    IBP_VERSIONS.iter().any(|ibp| {
        *ibp == key || (ibp.split("-IV").next() == Some(key.as_str()) && !ibp.starts_with("4."))
    })
}

fn is_throttled_replica_list(v: &str) -> bool {
    let v = v.trim();
    if v.is_empty() || v == "*" {
        return true;
    }
    split_list(v).all(|entry| {
        let mut it = entry.trim().split(':');
        let ok = |p: Option<&str>| {
            p.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        };
        ok(it.next()) && ok(it.next()) && it.next().is_none()
    })
}

#[derive(Debug, Clone, Copy)]
pub struct ConfigKey {
    pub name: &'static str,
    pub ty: ConfigType,
    /// `None` means "no default": the key is required (or nullable, see `nullable`).
    pub default: Option<&'static str>,
    pub nullable: bool,
    pub validator: Validator,
    pub doc: &'static str,
}

impl ConfigKey {
    pub const fn new(
        name: &'static str,
        ty: ConfigType,
        default: &'static str,
        doc: &'static str,
    ) -> Self {
        ConfigKey {
            name,
            ty,
            default: Some(default),
            nullable: false,
            validator: Validator::None,
            doc,
        }
    }

    pub const fn required(name: &'static str, ty: ConfigType, doc: &'static str) -> Self {
        ConfigKey {
            name,
            ty,
            default: None,
            nullable: false,
            validator: Validator::None,
            doc,
        }
    }

    /// A key with no default whose absence is fine (Kafka's `null` default).
    pub const fn optional(name: &'static str, ty: ConfigType, doc: &'static str) -> Self {
        ConfigKey {
            name,
            ty,
            default: None,
            nullable: true,
            validator: Validator::None,
            doc,
        }
    }

    pub const fn check(mut self, validator: Validator) -> Self {
        self.validator = validator;
        self
    }

    /// Checks that `value` parses as this key's type and passes its validator.
    pub fn validate(&self, value: &str) -> Result<(), ConfigError> {
        let bad = |reason: String| ConfigError::Invalid {
            key: self.name.to_string(),
            value: value.to_string(),
            reason,
        };
        match self.ty {
            ConfigType::Bool => {
                parse_bool(value).ok_or_else(|| bad("expected true or false".into()))?;
            }
            ConfigType::Int | ConfigType::Long => {
                let n: i64 = value
                    .trim()
                    .parse()
                    .map_err(|_| bad("expected an integer".into()))?;
                if self.ty == ConfigType::Int && i32::try_from(n).is_err() {
                    return Err(bad("out of range for a 32-bit integer".into()));
                }
                match self.validator {
                    Validator::AtLeast(lo) if n < lo => {
                        return Err(bad(format!("must be at least {lo}")))
                    }
                    Validator::Between(lo, hi) if n < lo || n > hi => {
                        return Err(bad(format!("must be between {lo} and {hi}")))
                    }
                    Validator::LevelOr(lo, hi, or) if n != or && (n < lo || n > hi) => {
                        return Err(bad(format!(
                            "Value must be between {lo} and {hi} or equal to {or}"
                        )))
                    }
                    _ => {}
                }
            }
            ConfigType::Double => {
                let x: f64 = value
                    .trim()
                    .parse()
                    .map_err(|_| bad("expected a number".into()))?;
                if let Validator::Ratio(lo, hi) = self.validator {
                    if !(lo..=hi).contains(&x) {
                        return Err(bad(format!("must be between {lo} and {hi}")));
                    }
                }
            }
            ConfigType::String => match self.validator {
                Validator::OneOf(allowed) if !allowed.contains(&value) => {
                    return Err(bad(format!("must be one of {}", allowed.join(", "))));
                }
                Validator::MetadataVersion if !is_kafka_version(value) => {
                    return Err(bad(format!("Version {value} is not a valid version")));
                }
                _ => {}
            },
            ConfigType::List => {
                if let Validator::ThrottledReplicas = self.validator {
                    if !is_throttled_replica_list(value) {
                        return Err(bad("must be the literal '*' or a list of replicas in the following format: [partitionId]:[brokerId],[partitionId]:[brokerId],...".into()));
                    }
                }
                if let Validator::ListOf(allowed) = self.validator {
                    for item in split_list(value) {
                        if !allowed.contains(&item) {
                            return Err(bad(format!(
                                "every element must be one of {}",
                                allowed.join(", ")
                            )));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("unknown config key `{0}`")]
    Unknown(String),
    #[error("missing required config key `{0}`")]
    Missing(String),
    /// Kafka's answer to a dynamic update of a static broker key.
    #[error("Cannot update these configs dynamically: Set({0})")]
    NotDynamic(String),
    #[error("invalid value `{value}` for config key `{key}`: {reason}")]
    Invalid {
        key: String,
        value: String,
        reason: String,
    },
    #[error("config file {path}: {reason}")]
    File { path: String, reason: String },
}

pub fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

pub fn split_list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// Reads a TOML document into Kafka-style dotted keys. `broker.id = 1`,
/// `"broker.id" = 1` and `[broker] id = 1` all mean the key `broker.id`; arrays become
/// comma-separated lists.
pub fn flatten_toml(text: &str) -> Result<BTreeMap<String, String>, String> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| e.to_string())?;
    let mut out = BTreeMap::new();
    flatten_into("", &toml::Value::Table(table), &mut out)?;
    Ok(out)
}

fn flatten_into(
    prefix: &str,
    value: &toml::Value,
    out: &mut BTreeMap<String, String>,
) -> Result<(), String> {
    let scalar = |v: &toml::Value| -> Result<String, String> {
        match v {
            toml::Value::String(s) => Ok(s.clone()),
            toml::Value::Integer(i) => Ok(i.to_string()),
            toml::Value::Float(f) => Ok(f.to_string()),
            toml::Value::Boolean(b) => Ok(b.to_string()),
            other => Err(format!("`{prefix}`: unsupported value {other}")),
        }
    };
    match value {
        toml::Value::Table(table) => {
            for (k, v) in table {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten_into(&key, v, out)?;
            }
        }
        toml::Value::Array(items) => {
            let parts: Result<Vec<String>, String> = items.iter().map(scalar).collect();
            out.insert(prefix.to_string(), parts?.join(","));
        }
        other => {
            out.insert(prefix.to_string(), scalar(other)?);
        }
    }
    Ok(())
}

impl fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            ConfigSource::TopicConfig => "DYNAMIC_TOPIC_CONFIG",
            ConfigSource::DynamicBrokerConfig => "DYNAMIC_BROKER_CONFIG",
            ConfigSource::DynamicDefaultBrokerConfig => "DYNAMIC_DEFAULT_BROKER_CONFIG",
            ConfigSource::StaticBrokerConfig => "STATIC_BROKER_CONFIG",
            ConfigSource::DefaultConfig => "DEFAULT_CONFIG",
        };
        f.write_str(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flattens_dotted_quoted_and_nested_keys_alike() {
        let flat = flatten_toml(
            "broker.id = 1\n\"log.dirs\" = [\"/a\", \"/b\"]\n[zookeeper]\nconnect = \"h:1\"\n",
        )
        .unwrap();
        assert_eq!(flat["broker.id"], "1");
        assert_eq!(flat["log.dirs"], "/a,/b");
        assert_eq!(flat["zookeeper.connect"], "h:1");
    }

    #[test]
    fn validation_names_the_key() {
        let key =
            ConfigKey::new("num.partitions", ConfigType::Int, "1", "").check(Validator::AtLeast(1));
        let err = key.validate("0").unwrap_err();
        assert!(err.to_string().contains("num.partitions"), "{err}");
        assert!(key.validate("x").is_err());
        assert!(key.validate("3000000000").is_err());
        assert!(key.validate("3").is_ok());
    }
}
