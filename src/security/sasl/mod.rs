//! SASL authentication (Kafka's `SaslServerAuthenticator`): the mechanisms as pure state
//! machines (`plain`, `scram`) and the per-connection flow that drives them
//! (`authenticator`). The connection task only moves bytes.

pub mod authenticator;
pub mod jaas;
pub mod plain;
pub mod scram;

pub use authenticator::{Authenticator, HandshakeOutcome, TokenOutcome};

/// The mechanisms gregor serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mechanism {
    Plain,
    ScramSha256,
    ScramSha512,
}

impl Mechanism {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "PLAIN" => Some(Self::Plain),
            "SCRAM-SHA-256" => Some(Self::ScramSha256),
            "SCRAM-SHA-512" => Some(Self::ScramSha512),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::ScramSha256 => "SCRAM-SHA-256",
            Self::ScramSha512 => "SCRAM-SHA-512",
        }
    }

    pub fn scram(self) -> Option<scram::ScramMechanism> {
        match self {
            Self::Plain => None,
            Self::ScramSha256 => Some(scram::ScramMechanism::Sha256),
            Self::ScramSha512 => Some(scram::ScramMechanism::Sha512),
        }
    }
}

/// Where the mechanisms look up users: PLAIN passwords of a listener (JAAS `user_<name>`)
/// and SCRAM credentials (ZooKeeper `/config/users`).
pub trait CredentialStore: Send + Sync {
    fn plain_password(&self, user: &str) -> Option<String>;
    fn scram_credential(
        &self,
        mechanism: scram::ScramMechanism,
        user: &str,
    ) -> Option<scram::ScramCredential>;
}

/// Parses `sasl.enabled.mechanisms`. GSSAPI (Kafka's default) is refused with a message:
/// gregor has no Kerberos.
pub fn parse_enabled(list: &str) -> Result<Vec<Mechanism>, String> {
    let mut out = Vec::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match Mechanism::parse(name) {
            Some(m) if !out.contains(&m) => out.push(m),
            Some(_) => {}
            None if name == "GSSAPI" => {
                return Err("GSSAPI (Kerberos) is not supported; set sasl.enabled.mechanisms to PLAIN, SCRAM-SHA-256 and/or SCRAM-SHA-512".into())
            }
            None => return Err(format!("unsupported SASL mechanism {name}")),
        }
    }
    if out.is_empty() {
        return Err("sasl.enabled.mechanisms is empty".into());
    }
    Ok(out)
}
