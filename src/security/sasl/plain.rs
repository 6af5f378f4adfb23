//! SASL PLAIN (RFC 4616) on the server: one message `[authzid] NUL authcid NUL passwd`,
//! checked against the listener's JAAS users. Error texts are Kafka's `PlainSaslServer`'s.

use subtle::ConstantTimeEq;

use super::CredentialStore;

/// The authenticated user name, or Kafka's error message.
pub fn authenticate(token: &[u8], store: &dyn CredentialStore) -> Result<String, String> {
    let text = std::str::from_utf8(token)
        .map_err(|_| "Authentication failed: invalid SASL/PLAIN message".to_string())?;
    let mut parts = text.split('\u{0}');
    let (Some(authzid), Some(user), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("Invalid SASL/PLAIN response: expected 3 tokens".into());
    };
    if user.is_empty() {
        return Err("Authentication failed: username not specified".into());
    }
    if password.is_empty() {
        return Err("Authentication failed: password not specified".into());
    }
    let expected = store.plain_password(user);
    // Compare in constant time; an unknown user costs the same as a wrong password.
    let ok = match &expected {
        Some(expected) => bool::from(expected.as_bytes().ct_eq(password.as_bytes())),
        None => {
            let _ = password.as_bytes().ct_eq(password.as_bytes());
            false
        }
    };
    if !ok {
        return Err("Authentication failed: Invalid username or password".into());
    }
    if !authzid.is_empty() && authzid != user {
        return Err(
            "Authentication failed: Client requested an authorization id that is different from username"
                .into(),
        );
    }
    Ok(user.to_string())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::scram::{ScramCredential, ScramMechanism};
    use super::*;
    use std::collections::HashMap;

    #[derive(Default)]
    pub(crate) struct Store {
        pub plain: HashMap<String, String>,
        pub scram: HashMap<(ScramMechanism, String), ScramCredential>,
    }

    impl CredentialStore for Store {
        fn plain_password(&self, user: &str) -> Option<String> {
            self.plain.get(user).cloned()
        }
        fn scram_credential(&self, m: ScramMechanism, user: &str) -> Option<ScramCredential> {
            self.scram.get(&(m, user.to_string())).cloned()
        }
    }

    fn store() -> Store {
        let mut s = Store::default();
        s.plain.insert("alice".into(), "alice-secret".into());
        s
    }

    #[test]
    fn accepts_the_right_password_only() {
        let s = store();
        assert_eq!(authenticate(b"\0alice\0alice-secret", &s).unwrap(), "alice");
        assert_eq!(
            authenticate(b"alice\0alice\0alice-secret", &s).unwrap(),
            "alice"
        );
        assert_eq!(
            authenticate(b"\0alice\0wrong", &s).unwrap_err(),
            "Authentication failed: Invalid username or password"
        );
        assert!(authenticate(b"\0bob\0alice-secret", &s).is_err());
        assert!(authenticate(b"bob\0alice\0alice-secret", &s).is_err());
    }

    #[test]
    fn malformed_messages_fail() {
        let s = store();
        assert!(authenticate(b"alice", &s).is_err());
        assert!(authenticate(b"\0\0pw", &s).is_err());
        assert!(authenticate(b"\0alice\0", &s).is_err());
        assert!(authenticate(b"\0alice\0alice-secret\0x", &s).is_err());
        assert!(authenticate(&[0, 0xff, 0, 0xfe], &s).is_err());
    }
}
