//! What a listener does to a connection before serving requests, built once at start-up
//! from its security protocol and its (`listener.name.<l>.`-prefixed) keys: the TLS
//! acceptor, the SSL principal mapping, the SASL mechanisms and their users.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{anyhow, Context};

use super::credentials::ScramCache;
use super::mapping::PrincipalMapper;
use super::sasl::jaas::JaasConfig;
use super::sasl::scram::{ScramCredential, ScramMechanism};
use super::sasl::{self, CredentialStore, Mechanism};
use super::tls::{self, SslSettings};
use super::SecurityProtocol;
use crate::config::{BrokerConfig, Listener};

pub struct ListenerSecurity {
    pub name: Arc<str>,
    pub protocol: SecurityProtocol,
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    pub principal_mapper: PrincipalMapper,
    pub sasl: Option<SaslListener>,
}

pub struct SaslListener {
    pub mechanisms: Vec<Mechanism>,
    pub credentials: ListenerCredentials,
    /// `sasl.server.max.receive.size`: the largest token read before authentication.
    pub max_receive_size: usize,
    /// `connections.max.reauth.ms` (0: sessions do not expire).
    pub max_reauth_ms: u64,
}

/// PLAIN users of this listener and the broker's SCRAM cache.
pub struct ListenerCredentials {
    pub plain: BTreeMap<String, String>,
    pub scram: ScramCache,
}

impl CredentialStore for ListenerCredentials {
    fn plain_password(&self, user: &str) -> Option<String> {
        self.plain.get(user).cloned()
    }

    fn scram_credential(&self, m: ScramMechanism, user: &str) -> Option<ScramCredential> {
        self.scram.get(m, user)
    }
}

impl ListenerSecurity {
    pub fn build(
        config: &BrokerConfig,
        listener: &Listener,
        scram: &ScramCache,
    ) -> anyhow::Result<ListenerSecurity> {
        let get = |key: &str| config.listener_value(&listener.name, key);
        let context = || format!("listener {}", listener.name);
        let tls = if listener.protocol.uses_tls() {
            let settings = SslSettings::from_lookup(get).with_context(context)?;
            let server = tls::server_config(&settings).with_context(context)?;
            Some(tokio_rustls::TlsAcceptor::from(server))
        } else {
            None
        };
        let principal_mapper =
            PrincipalMapper::parse(&get("ssl.principal.mapping.rules").unwrap_or_default())
                .map_err(|e| anyhow!("ssl.principal.mapping.rules: {e}"))
                .with_context(context)?;
        let sasl = if listener.protocol.uses_sasl() {
            let mechanisms =
                sasl::parse_enabled(&get("sasl.enabled.mechanisms").unwrap_or_default())
                    .map_err(|e| anyhow!("sasl.enabled.mechanisms: {e}"))
                    .with_context(context)?;
            let plain = if mechanisms.contains(&Mechanism::Plain) {
                plain_users(config, &listener.name).with_context(context)?
            } else {
                BTreeMap::new()
            };
            Some(SaslListener {
                mechanisms,
                credentials: ListenerCredentials {
                    plain,
                    scram: scram.clone(),
                },
                max_receive_size: get("sasl.server.max.receive.size")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(524_288),
                max_reauth_ms: config.connections_max_reauth_ms,
            })
        } else {
            None
        };
        Ok(ListenerSecurity {
            name: Arc::from(listener.name.as_str()),
            protocol: listener.protocol,
            tls,
            principal_mapper,
            sasl,
        })
    }
}

/// The mechanism's JAAS config of a listener: `listener.name.<l>.<mechanism>.sasl.jaas.config`
/// (Kafka's form), else `listener.name.<l>.sasl.jaas.config`.
pub fn jaas_config(
    config: &BrokerConfig,
    listener: &str,
    mechanism: Mechanism,
) -> anyhow::Result<Option<JaasConfig>> {
    let key = format!("{}.sasl.jaas.config", mechanism.name().to_ascii_lowercase());
    let Some(text) = config
        .listener_value(listener, &key)
        .or_else(|| config.listener_value(listener, "sasl.jaas.config"))
    else {
        return Ok(None);
    };
    JaasConfig::parse(&text)
        .map(Some)
        .map_err(|e| anyhow!("{key}: {e}"))
}

/// PLAIN's accepted users (`user_<name>="password"`).
fn plain_users(config: &BrokerConfig, listener: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let jaas = jaas_config(config, listener, Mechanism::Plain)?.ok_or_else(|| {
        anyhow!(
            "PLAIN is enabled but listener.name.{}.plain.sasl.jaas.config is not set",
            listener.to_ascii_lowercase()
        )
    })?;
    Ok(jaas.plain_users())
}
