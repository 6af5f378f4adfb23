//! The security of gregor's own client connections (replica fetchers, the CLI): TLS with
//! Kafka's client `ssl.*` properties and SASL PLAIN / SCRAM with `sasl.mechanism` and
//! `sasl.jaas.config`, read from a client properties file (`--command-config`) or, for
//! the broker's inter-broker client, from its inter-broker listener's keys.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context};

use crate::config::BrokerConfig;
use crate::security::sasl::jaas::JaasConfig;
use crate::security::sasl::Mechanism;
use crate::security::tls::{self, SslSettings};
use crate::security::SecurityProtocol;

/// The security of connections made without an explicit one (`KafkaConnection::connect`):
/// plaintext, unless a CLI process set its `--command-config` here once at start.
static PROCESS_DEFAULT: std::sync::OnceLock<ClientSecurity> = std::sync::OnceLock::new();

pub fn set_process_default(security: ClientSecurity) {
    let _ = PROCESS_DEFAULT.set(security);
}

pub fn process_default() -> ClientSecurity {
    PROCESS_DEFAULT.get().cloned().unwrap_or_default()
}

#[derive(Clone)]
pub struct SaslCredentials {
    pub mechanism: Mechanism,
    pub username: String,
    pub password: String,
}

#[derive(Clone)]
pub struct ClientSecurity {
    pub protocol: SecurityProtocol,
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub sasl: Option<SaslCredentials>,
}

impl std::fmt::Debug for ClientSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClientSecurity({})", self.protocol.name()) // no secrets in logs
    }
}

impl Default for ClientSecurity {
    fn default() -> Self {
        ClientSecurity::plaintext()
    }
}

impl ClientSecurity {
    pub fn plaintext() -> Self {
        ClientSecurity {
            protocol: SecurityProtocol::Plaintext,
            tls: None,
            sasl: None,
        }
    }

    /// From Kafka client properties (`security.protocol`, `ssl.*`, `sasl.mechanism`,
    /// `sasl.jaas.config`); `get` returns a property's value.
    pub fn from_properties(get: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let protocol = match get("security.protocol") {
            None => SecurityProtocol::Plaintext,
            Some(p) => SecurityProtocol::parse(p.trim())
                .ok_or_else(|| anyhow!("security.protocol={p}: unknown protocol"))?,
        };
        let tls = if protocol.uses_tls() {
            Some(tls::client_config(&SslSettings::from_lookup(&get)?)?)
        } else {
            None
        };
        let sasl = if protocol.uses_sasl() {
            let mechanism = get("sasl.mechanism").unwrap_or_else(|| "GSSAPI".into());
            let mechanism = Mechanism::parse(mechanism.trim()).ok_or_else(|| {
                anyhow!("sasl.mechanism={mechanism}: only PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 are supported")
            })?;
            let jaas = get("sasl.jaas.config")
                .ok_or_else(|| anyhow!("SASL needs sasl.jaas.config with username and password"))?;
            Some(credentials(
                mechanism,
                &JaasConfig::parse(&jaas).map_err(|e| anyhow!(e))?,
            )?)
        } else {
            None
        };
        Ok(ClientSecurity {
            protocol,
            tls,
            sasl,
        })
    }

    /// A Java-style properties file (`key=value` lines, `#` comments).
    pub fn from_properties_file(path: &std::path::Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let props = parse_properties(&text);
        Self::from_properties(|k| props.get(k).cloned())
            .with_context(|| format!("client config {}", path.display()))
    }

    /// The broker's client to its peers' inter-broker listener: that listener's TLS keys
    /// (its keystore as the client certificate) and `sasl.mechanism.inter.broker.protocol`
    /// with the username/password of the listener's `<mechanism>.sasl.jaas.config`.
    pub fn inter_broker(config: &BrokerConfig) -> anyhow::Result<Self> {
        let name = &config.inter_broker_listener;
        let listener = config
            .listeners
            .iter()
            .find(|l| &l.name == name)
            .ok_or_else(|| anyhow!("inter-broker listener {name} is not in listeners"))?;
        let protocol = listener.protocol;
        let get = |k: &str| config.listener_value(name, k);
        let tls = if protocol.uses_tls() {
            let mut settings = SslSettings::from_lookup(get)?;
            settings.client_auth = None;
            Some(tls::client_config(&settings)?)
        } else {
            None
        };
        let sasl = if protocol.uses_sasl() {
            let m = &config.sasl_mechanism_inter_broker_protocol;
            let mechanism = Mechanism::parse(m).ok_or_else(|| {
                anyhow!("sasl.mechanism.inter.broker.protocol={m}: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 needed on a SASL inter-broker listener")
            })?;
            let jaas = crate::security::listener::jaas_config(config, name, mechanism)?
                .ok_or_else(|| {
                    anyhow!(
                        "listener.name.{}.{}.sasl.jaas.config (username, password) is needed for the inter-broker client",
                        name.to_ascii_lowercase(),
                        mechanism.name().to_ascii_lowercase()
                    )
                })?;
            Some(credentials(mechanism, &jaas)?)
        } else {
            None
        };
        Ok(ClientSecurity {
            protocol,
            tls,
            sasl,
        })
    }
}

fn credentials(mechanism: Mechanism, jaas: &JaasConfig) -> anyhow::Result<SaslCredentials> {
    let (Some(username), Some(password)) = (jaas.username(), jaas.password()) else {
        bail!("sasl.jaas.config needs username and password");
    };
    Ok(SaslCredentials {
        mechanism,
        username: username.to_string(),
        password: password.to_string(),
    })
}

/// Java properties, the subset client configs use: `key=value` or `key: value`, `#`/`!`
/// comments, trailing `\` continuing a line.
pub fn parse_properties(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut pending = String::new();
    for line in text.lines() {
        let line = line.trim_start();
        if pending.is_empty() && (line.starts_with('#') || line.starts_with('!')) {
            continue;
        }
        if let Some(cont) = line.strip_suffix('\\') {
            pending.push_str(cont);
            continue;
        }
        pending.push_str(line);
        let entry = std::mem::take(&mut pending);
        let Some(i) = entry.find(['=', ':']) else {
            continue;
        };
        let key = entry[..i].trim();
        if !key.is_empty() {
            out.insert(key.to_string(), entry[i + 1..].trim().to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_client_properties() {
        let p = parse_properties(
            "# comment\nsecurity.protocol=SASL_PLAINTEXT\nsasl.mechanism = SCRAM-SHA-512\nsasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \\\n  username=\"u\" password=\"p\";\n",
        );
        let s = ClientSecurity::from_properties(|k| p.get(k).cloned()).unwrap();
        assert_eq!(s.protocol, SecurityProtocol::SaslPlaintext);
        let sasl = s.sasl.unwrap();
        assert_eq!(sasl.mechanism, Mechanism::ScramSha512);
        assert_eq!((sasl.username.as_str(), sasl.password.as_str()), ("u", "p"));
        assert!(ClientSecurity::from_properties(
            |k| (k == "security.protocol").then(|| "SASL_SSL".into())
        )
        .is_err());
    }
}
