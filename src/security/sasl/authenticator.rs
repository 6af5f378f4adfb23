//! One connection's SASL flow, as Kafka's `SaslServerAuthenticator`: ApiVersions and a
//! SaslHandshake naming an enabled mechanism, then the mechanism's tokens, carried in
//! SaslAuthenticate requests (handshake v1) or as raw length-prefixed frames (handshake
//! v0, what old clients send). Pure: the connection task does the I/O.

use super::scram::{ScramServer, ScramStep};
use super::{plain, CredentialStore, Mechanism};

#[derive(Debug)]
enum State {
    /// Waiting for SaslHandshake (ApiVersions may come first).
    Handshake,
    /// Waiting for the mechanism's next token.
    Token {
        mechanism: Mechanism,
        scram: Option<ScramServer>,
        raw: bool,
    },
    Authenticated {
        user: String,
    },
    Failed,
}

#[derive(Debug)]
pub struct Authenticator {
    enabled: Vec<Mechanism>,
    state: State,
}

#[derive(Debug, PartialEq, Eq)]
pub enum HandshakeOutcome {
    /// Accepted; the tokens follow (raw frames if `raw`).
    Accepted { raw: bool },
    /// UNSUPPORTED_SASL_MECHANISM: answered, then the connection is closed.
    Unsupported,
    /// ILLEGAL_SASL_STATE: a handshake where none is expected; answered, then closed.
    IllegalState,
}

#[derive(Debug, PartialEq, Eq)]
pub enum TokenOutcome {
    /// Send this challenge; more tokens follow.
    Challenge(Vec<u8>),
    /// Authenticated as `user`; send `response` (may be empty).
    Complete { user: String, response: Vec<u8> },
    /// SASL_AUTHENTICATION_FAILED with Kafka's message; answered, then closed.
    Failed { message: String, reason: String },
    /// ILLEGAL_SASL_STATE: a token where none is expected.
    IllegalState,
}

impl Authenticator {
    pub fn new(enabled: Vec<Mechanism>) -> Self {
        Authenticator {
            enabled,
            state: State::Handshake,
        }
    }

    pub fn enabled_names(&self) -> Vec<&'static str> {
        self.enabled.iter().map(|m| m.name()).collect()
    }

    pub fn is_authenticated(&self) -> bool {
        matches!(self.state, State::Authenticated { .. })
    }

    pub fn user(&self) -> Option<&str> {
        match &self.state {
            State::Authenticated { user } => Some(user),
            _ => None,
        }
    }

    /// True when the next frame is a raw SASL token (after a v0 handshake).
    pub fn expects_raw_token(&self) -> bool {
        matches!(self.state, State::Token { raw: true, .. })
    }

    pub fn handshake(&mut self, version: i16, mechanism: &str) -> HandshakeOutcome {
        if !matches!(self.state, State::Handshake) {
            self.state = State::Failed;
            return HandshakeOutcome::IllegalState;
        }
        match Mechanism::parse(mechanism).filter(|m| self.enabled.contains(m)) {
            Some(m) => {
                let raw = version == 0;
                self.state = State::Token {
                    mechanism: m,
                    scram: m.scram().map(ScramServer::new),
                    raw,
                };
                HandshakeOutcome::Accepted { raw }
            }
            None => {
                self.state = State::Failed;
                HandshakeOutcome::Unsupported
            }
        }
    }

    /// A token from SaslAuthenticate (`raw == false`) or a raw frame (`raw == true`).
    pub fn token(&mut self, raw: bool, token: &[u8], store: &dyn CredentialStore) -> TokenOutcome {
        let State::Token {
            mechanism,
            scram,
            raw: expect_raw,
        } = &mut self.state
        else {
            self.state = State::Failed;
            return TokenOutcome::IllegalState;
        };
        if raw != *expect_raw {
            self.state = State::Failed;
            return TokenOutcome::IllegalState;
        }
        let mechanism = *mechanism;
        let outcome = match scram {
            None => match plain::authenticate(token, store) {
                Ok(user) => TokenOutcome::Complete {
                    user,
                    response: Vec::new(),
                },
                Err(message) => TokenOutcome::Failed {
                    reason: message.clone(),
                    message,
                },
            },
            Some(server) => match server.step(token, store) {
                ScramStep::Challenge(c) => TokenOutcome::Challenge(c),
                ScramStep::Success { user, response } => TokenOutcome::Complete { user, response },
                // Kafka wraps a SCRAM failure in this message, whatever the reason
                // (SaslServerAuthenticator.handleSaslToken).
                ScramStep::Failure(reason) => TokenOutcome::Failed {
                    message: format!(
                        "Authentication failed during authentication due to invalid credentials with SASL mechanism {}",
                        mechanism.name()
                    ),
                    reason,
                },
            },
        };
        match &outcome {
            TokenOutcome::Complete { user, .. } => {
                self.state = State::Authenticated { user: user.clone() }
            }
            TokenOutcome::Failed { .. } | TokenOutcome::IllegalState => self.state = State::Failed,
            TokenOutcome::Challenge(_) => {}
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::super::plain::tests::Store;
    use super::*;

    fn store() -> Store {
        let mut s = Store::default();
        s.plain.insert("alice".into(), "pw".into());
        s
    }

    #[test]
    fn plain_over_authenticate_requests() {
        let s = store();
        let mut a = Authenticator::new(vec![Mechanism::Plain]);
        assert_eq!(
            a.handshake(1, "PLAIN"),
            HandshakeOutcome::Accepted { raw: false }
        );
        assert!(!a.expects_raw_token());
        assert_eq!(
            a.token(false, b"\0alice\0pw", &s),
            TokenOutcome::Complete {
                user: "alice".into(),
                response: vec![]
            }
        );
        assert_eq!(a.user(), Some("alice"));
        // A second handshake on an authenticated connection (no re-authentication here).
        assert_eq!(a.handshake(1, "PLAIN"), HandshakeOutcome::IllegalState);
    }

    #[test]
    fn v0_handshake_expects_raw_tokens() {
        let s = store();
        let mut a = Authenticator::new(vec![Mechanism::Plain]);
        assert_eq!(
            a.handshake(0, "PLAIN"),
            HandshakeOutcome::Accepted { raw: true }
        );
        assert!(a.expects_raw_token());
        assert!(matches!(
            a.token(true, b"\0alice\0pw", &s),
            TokenOutcome::Complete { .. }
        ));
    }

    #[test]
    fn failures_end_the_flow() {
        let s = store();
        let mut a = Authenticator::new(vec![Mechanism::Plain]);
        assert_eq!(
            a.handshake(1, "SCRAM-SHA-512"),
            HandshakeOutcome::Unsupported
        );
        let mut a = Authenticator::new(vec![Mechanism::Plain]);
        assert_eq!(a.token(false, b"x", &s), TokenOutcome::IllegalState);
        let mut a = Authenticator::new(vec![Mechanism::Plain, Mechanism::ScramSha512]);
        a.handshake(1, "PLAIN");
        assert!(matches!(
            a.token(false, b"\0alice\0no", &s),
            TokenOutcome::Failed { .. }
        ));
        assert!(!a.is_authenticated());
        assert_eq!(
            a.token(false, b"\0alice\0pw", &s),
            TokenOutcome::IllegalState
        );
        let mut a = Authenticator::new(vec![Mechanism::ScramSha512]);
        a.handshake(1, "SCRAM-SHA-512");
        let TokenOutcome::Failed { message, .. } = a.token(false, b"n,,n=alice,r=x", &s) else {
            panic!("unknown SCRAM user accepted")
        };
        assert!(message.contains("SCRAM-SHA-512"), "{message}");
    }
}
