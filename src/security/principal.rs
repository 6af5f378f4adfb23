//! Kafka's principal: a type and a name, written `User:alice` in ACLs and `super.users`.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KafkaPrincipal {
    pub principal_type: String,
    pub name: String,
}

impl KafkaPrincipal {
    /// The principal type of every user principal Kafka builds.
    pub const USER_TYPE: &'static str = "User";

    pub fn user(name: impl Into<String>) -> Self {
        KafkaPrincipal {
            principal_type: Self::USER_TYPE.to_string(),
            name: name.into(),
        }
    }

    /// What an unauthenticated connection (PLAINTEXT, or SSL without a client
    /// certificate) is: `User:ANONYMOUS`, as in Kafka.
    pub fn anonymous() -> Self {
        Self::user("ANONYMOUS")
    }

    /// Parses `Type:name` (the name may itself contain ':'), as Kafka's
    /// `SecurityUtils.parseKafkaPrincipal`.
    pub fn parse(s: &str) -> Option<Self> {
        let (principal_type, name) = s.split_once(':')?;
        if principal_type.is_empty() {
            return None;
        }
        Some(KafkaPrincipal {
            principal_type: principal_type.to_string(),
            name: name.to_string(),
        })
    }
}

impl fmt::Display for KafkaPrincipal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.principal_type, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_type_and_name() {
        let p = KafkaPrincipal::parse("User:CN=broker,O=gregor").unwrap();
        assert_eq!(p.principal_type, "User");
        assert_eq!(p.name, "CN=broker,O=gregor");
        assert_eq!(p.to_string(), "User:CN=broker,O=gregor");
        assert_eq!(KafkaPrincipal::parse("alice"), None);
        assert_eq!(KafkaPrincipal::parse(":alice"), None);
        assert_eq!(KafkaPrincipal::anonymous().to_string(), "User:ANONYMOUS");
    }
}
