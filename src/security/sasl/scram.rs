//! SCRAM-SHA-256 / SCRAM-SHA-512 (RFC 5802, RFC 7677): the server exchange, the client
//! exchange gregor's own connections use, and credentials as Kafka stores them
//! (`salt=…,stored_key=…,server_key=…,iterations=…` in ZooKeeper `/config/users/<user>`).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ScramMechanism {
    Sha256,
    Sha512,
}

/// Kafka's bounds on iterations (`ScramMechanism.minIterations` / AlterUserScramCredentials).
pub const MIN_ITERATIONS: i32 = 4096;
pub const MAX_ITERATIONS: i32 = 16384;

impl ScramMechanism {
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "SCRAM-SHA-256",
            Self::Sha512 => "SCRAM-SHA-512",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "SCRAM-SHA-256" => Some(Self::Sha256),
            "SCRAM-SHA-512" => Some(Self::Sha512),
            _ => None,
        }
    }

    /// The protocol's `ScramMechanism` code (DescribeUserScramCredentials).
    pub fn code(self) -> i8 {
        match self {
            Self::Sha256 => 1,
            Self::Sha512 => 2,
        }
    }

    pub fn from_code(code: i8) -> Option<Self> {
        match code {
            1 => Some(Self::Sha256),
            2 => Some(Self::Sha512),
            _ => None,
        }
    }

    pub fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha256 => {
                let mut m = <Hmac<Sha256>>::new_from_slice(key).expect("HMAC takes any key");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
            Self::Sha512 => {
                let mut m = <Hmac<Sha512>>::new_from_slice(key).expect("HMAC takes any key");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
        }
    }

    pub fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha256 => Sha256::digest(data).to_vec(),
            Self::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// `Hi(password, salt, i)`: PBKDF2 with this HMAC (RFC 5802 section 2.2).
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            Self::Sha256 => {
                let mut out = vec![0; 32];
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out);
                out
            }
            Self::Sha512 => {
                let mut out = vec![0; 64];
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out);
                out
            }
        }
    }

    /// The stored credential for a salted password.
    pub fn credential(
        self,
        salt: &[u8],
        salted_password: &[u8],
        iterations: i32,
    ) -> ScramCredential {
        let client_key = self.hmac(salted_password, b"Client Key");
        ScramCredential {
            salt: salt.to_vec(),
            stored_key: self.hash(&client_key),
            server_key: self.hmac(salted_password, b"Server Key"),
            iterations,
        }
    }
}

/// What the server keeps for a user (never the password).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramCredential {
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
    pub iterations: i32,
}

impl ScramCredential {
    /// Kafka's ZooKeeper form (`ScramCredentialUtils.credentialToString`).
    pub fn to_zk_string(&self) -> String {
        format!(
            "salt={},stored_key={},server_key={},iterations={}",
            B64.encode(&self.salt),
            B64.encode(&self.stored_key),
            B64.encode(&self.server_key),
            self.iterations
        )
    }

    pub fn from_zk_string(s: &str) -> Option<Self> {
        let (mut salt, mut stored, mut server, mut iterations) = (None, None, None, None);
        for part in s.split(',') {
            let (k, v) = part.split_once('=')?;
            match k {
                "salt" => salt = Some(B64.decode(v).ok()?),
                "stored_key" => stored = Some(B64.decode(v).ok()?),
                "server_key" => server = Some(B64.decode(v).ok()?),
                "iterations" => iterations = Some(v.parse().ok()?),
                _ => {}
            }
        }
        Some(ScramCredential {
            salt: salt?,
            stored_key: stored?,
            server_key: server?,
            iterations: iterations?,
        })
    }
}

pub fn random_nonce() -> String {
    let mut bytes = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    B64.encode(bytes)
}

pub fn random_salt() -> Vec<u8> {
    let mut bytes = vec![0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes
}

/// RFC 5802 `saslname` decoding: `=2C` is `,`, `=3D` is `=`; any other `=` is malformed.
fn decode_saslname(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match rest.get(i + 1..i + 3) {
            Some("2C") => out.push(','),
            Some("3D") => out.push('='),
            _ => return None,
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Some(out)
}

fn encode_saslname(s: &str) -> String {
    s.replace('=', "=3D").replace(',', "=2C")
}

/// A parsed client-first message.
#[derive(Debug)]
struct ClientFirst<'a> {
    gs2_header: &'a str,
    bare: &'a str,
    user: String,
    nonce: &'a str,
}

fn parse_client_first(msg: &str) -> Option<ClientFirst<'_>> {
    // gs2-header = gs2-cbind-flag "," [ authzid ] ","; channel binding ("p=") is refused.
    let (flag, rest) = msg.split_once(',')?;
    if flag != "n" && flag != "y" {
        return None;
    }
    let (authzid, bare) = rest.split_once(',')?;
    let header_len = flag.len() + 1 + authzid.len() + 1;
    let authzid = match authzid {
        "" => None,
        a => Some(decode_saslname(a.strip_prefix("a=")?)?),
    };
    let mut attrs = bare.split(',');
    let user = decode_saslname(attrs.next()?.strip_prefix("n=")?)?;
    let nonce = attrs.next()?.strip_prefix("r=")?;
    if user.is_empty() || nonce.is_empty() || nonce.contains(',') {
        return None;
    }
    // Extensions (Kafka's `tokenauth=true` for delegation tokens) are allowed but
    // token authentication is not served: refuse it.
    for ext in attrs {
        if ext.starts_with("tokenauth=") && ext != "tokenauth=false" {
            return None;
        }
    }
    if authzid.as_ref().is_some_and(|a| *a != user) {
        return None;
    }
    Some(ClientFirst {
        gs2_header: &msg[..header_len],
        bare,
        user,
        nonce,
    })
}

/// The server side of one exchange: client-first → server-first, client-final →
/// server-final. Any failure ends it.
#[derive(Debug)]
pub struct ScramServer {
    mechanism: ScramMechanism,
    state: ServerState,
}

#[derive(Debug)]
enum ServerState {
    First,
    Final {
        user: String,
        credential: ScramCredential,
        nonce: String,
        gs2_header: String,
        client_first_bare: String,
        server_first: String,
    },
    Done,
}

/// One step's result.
#[derive(Debug, PartialEq, Eq)]
pub enum ScramStep {
    /// Send this challenge and wait for the client's next message.
    Challenge(Vec<u8>),
    /// Authenticated as the user; send this last message (server-final).
    Success { user: String, response: Vec<u8> },
    /// Authentication failed (the reason is for the log; clients get Kafka's message).
    Failure(String),
}

impl ScramServer {
    pub fn new(mechanism: ScramMechanism) -> Self {
        ScramServer {
            mechanism,
            state: ServerState::First,
        }
    }

    pub fn step(&mut self, msg: &[u8], store: &dyn super::CredentialStore) -> ScramStep {
        self.step_with_nonce(msg, store, random_nonce)
    }

    fn step_with_nonce(
        &mut self,
        msg: &[u8],
        store: &dyn super::CredentialStore,
        nonce: impl FnOnce() -> String,
    ) -> ScramStep {
        let state = std::mem::replace(&mut self.state, ServerState::Done);
        let Ok(msg) = std::str::from_utf8(msg) else {
            return ScramStep::Failure("message is not UTF-8".into());
        };
        match state {
            ServerState::First => {
                let Some(first) = parse_client_first(msg) else {
                    return ScramStep::Failure("invalid client-first message".into());
                };
                let Some(credential) = store.scram_credential(self.mechanism, &first.user) else {
                    return ScramStep::Failure(format!("unknown user {}", first.user));
                };
                let nonce = format!("{}{}", first.nonce, nonce());
                let server_first = format!(
                    "r={nonce},s={},i={}",
                    B64.encode(&credential.salt),
                    credential.iterations
                );
                let challenge = server_first.clone().into_bytes();
                self.state = ServerState::Final {
                    user: first.user,
                    credential,
                    nonce,
                    gs2_header: first.gs2_header.to_string(),
                    client_first_bare: first.bare.to_string(),
                    server_first,
                };
                ScramStep::Challenge(challenge)
            }
            ServerState::Final {
                user,
                credential,
                nonce,
                gs2_header,
                client_first_bare,
                server_first,
            } => {
                let Some((without_proof, proof)) = msg.rsplit_once(",p=") else {
                    return ScramStep::Failure("client-final message without proof".into());
                };
                let mut attrs = without_proof.split(',');
                let channel = attrs.next().and_then(|c| c.strip_prefix("c="));
                let client_nonce = attrs.next().and_then(|r| r.strip_prefix("r="));
                if channel.and_then(|c| B64.decode(c).ok()).as_deref()
                    != Some(gs2_header.as_bytes())
                {
                    return ScramStep::Failure("channel binding does not match".into());
                }
                // `endsWith`, as Kafka since 3.8.1: librdkafka before 2.6.1 sends the
                // client nonce once more in front of the combined one (librdkafka #4895,
                // KAFKA-17154); the proof covers the message as sent either way.
                if !client_nonce.is_some_and(|n| n.ends_with(nonce.as_str())) {
                    return ScramStep::Failure("nonce does not match".into());
                }
                let Ok(proof) = B64.decode(proof) else {
                    return ScramStep::Failure("proof is not base64".into());
                };
                let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
                let m = self.mechanism;
                let signature = m.hmac(&credential.stored_key, auth_message.as_bytes());
                if proof.len() != signature.len() {
                    return ScramStep::Failure("proof has the wrong length".into());
                }
                let client_key: Vec<u8> =
                    proof.iter().zip(&signature).map(|(a, b)| a ^ b).collect();
                if !bool::from(m.hash(&client_key).ct_eq(&credential.stored_key)) {
                    return ScramStep::Failure("invalid proof".into());
                }
                let server_signature = m.hmac(&credential.server_key, auth_message.as_bytes());
                ScramStep::Success {
                    user,
                    response: format!("v={}", B64.encode(server_signature)).into_bytes(),
                }
            }
            ServerState::Done => ScramStep::Failure("exchange already finished".into()),
        }
    }
}

/// The client side, for gregor's own connections.
#[derive(Debug)]
pub struct ScramClient {
    mechanism: ScramMechanism,
    password: String,
    nonce: String,
    client_first_bare: String,
    server_signature: Option<Vec<u8>>,
}

impl ScramClient {
    pub fn new(mechanism: ScramMechanism, user: &str, password: &str) -> Self {
        Self::with_nonce(mechanism, user, password, random_nonce())
    }

    fn with_nonce(mechanism: ScramMechanism, user: &str, password: &str, nonce: String) -> Self {
        ScramClient {
            mechanism,
            password: password.to_string(),
            client_first_bare: format!("n={},r={nonce}", encode_saslname(user)),
            nonce,
            server_signature: None,
        }
    }

    pub fn client_first(&self) -> Vec<u8> {
        format!("n,,{}", self.client_first_bare).into_bytes()
    }

    /// The client-final message for the server-first `challenge`.
    pub fn client_final(&mut self, challenge: &[u8]) -> Result<Vec<u8>, String> {
        let server_first =
            std::str::from_utf8(challenge).map_err(|_| "server-first is not UTF-8")?;
        let mut attrs = server_first.split(',');
        let nonce = attrs
            .next()
            .and_then(|r| r.strip_prefix("r="))
            .ok_or("server-first without nonce")?;
        let salt = attrs
            .next()
            .and_then(|s| s.strip_prefix("s="))
            .and_then(|s| B64.decode(s).ok())
            .ok_or("server-first without salt")?;
        let iterations: u32 = attrs
            .next()
            .and_then(|i| i.strip_prefix("i="))
            .and_then(|i| i.parse().ok())
            .ok_or("server-first without iterations")?;
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return Err("server nonce does not extend the client's".into());
        }
        if !(1..=1_000_000).contains(&iterations) {
            return Err(format!("implausible iteration count {iterations}"));
        }
        let m = self.mechanism;
        let salted = m.salted_password(self.password.as_bytes(), &salt, iterations);
        let without_proof = format!("c={},r={nonce}", B64.encode("n,,"));
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let client_key = m.hmac(&salted, b"Client Key");
        let stored_key = m.hash(&client_key);
        let signature = m.hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = m.hmac(&salted, b"Server Key");
        self.server_signature = Some(m.hmac(&server_key, auth_message.as_bytes()));
        Ok(format!("{without_proof},p={}", B64.encode(proof)).into_bytes())
    }

    /// Checks the server-final message (the server proves it knows the credential).
    pub fn verify_server_final(&self, msg: &[u8]) -> Result<(), String> {
        let msg = std::str::from_utf8(msg).map_err(|_| "server-final is not UTF-8")?;
        if let Some(e) = msg.strip_prefix("e=") {
            return Err(format!("server rejected the authentication: {e}"));
        }
        let v = msg
            .strip_prefix("v=")
            .and_then(|v| B64.decode(v).ok())
            .ok_or("malformed server-final")?;
        match &self.server_signature {
            Some(expected) if bool::from(expected.ct_eq(&v)) => Ok(()),
            _ => Err("server signature does not verify".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::plain::tests::Store;
    use super::*;

    /// RFC 7677 section 3's SCRAM-SHA-256 example: user "user", password "pencil".
    const CLIENT_FIRST: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
    const SERVER_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
    const SERVER_FIRST: &str =
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    const CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    const SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

    fn rfc_store() -> Store {
        let m = ScramMechanism::Sha256;
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let salted = m.salted_password(b"pencil", &salt, 4096);
        let mut s = Store::default();
        s.scram
            .insert((m, "user".into()), m.credential(&salt, &salted, 4096));
        s
    }

    #[test]
    fn rfc7677_server_exchange() {
        let store = rfc_store();
        let mut server = ScramServer::new(ScramMechanism::Sha256);
        let step = server.step_with_nonce(CLIENT_FIRST.as_bytes(), &store, || SERVER_NONCE.into());
        assert_eq!(step, ScramStep::Challenge(SERVER_FIRST.as_bytes().to_vec()));
        let step = server.step(CLIENT_FINAL.as_bytes(), &store);
        assert_eq!(
            step,
            ScramStep::Success {
                user: "user".into(),
                response: SERVER_FINAL.as_bytes().to_vec()
            }
        );
        // Nothing more is accepted once done.
        assert!(matches!(
            server.step(CLIENT_FINAL.as_bytes(), &store),
            ScramStep::Failure(_)
        ));
    }

    #[test]
    fn rfc7677_client_exchange() {
        let mut client = ScramClient::with_nonce(
            ScramMechanism::Sha256,
            "user",
            "pencil",
            "rOprNGfwEbeRWgbNEkqO".into(),
        );
        assert_eq!(client.client_first(), CLIENT_FIRST.as_bytes());
        let fin = client.client_final(SERVER_FIRST.as_bytes()).unwrap();
        assert_eq!(fin, CLIENT_FINAL.as_bytes());
        client.verify_server_final(SERVER_FINAL.as_bytes()).unwrap();
        assert!(client.verify_server_final(b"v=AAAA").is_err());
    }

    #[test]
    fn bad_proof_and_replayed_nonce_fail() {
        let store = rfc_store();
        let mut server = ScramServer::new(ScramMechanism::Sha256);
        server.step_with_nonce(CLIENT_FIRST.as_bytes(), &store, || SERVER_NONCE.into());
        let bad = CLIENT_FINAL.replace("p=dHz", "p=dHy");
        assert!(matches!(
            server.step(bad.as_bytes(), &store),
            ScramStep::Failure(_)
        ));
        // A recorded client-final replayed against a fresh exchange: the server's nonce
        // differs, so it fails.
        let mut server = ScramServer::new(ScramMechanism::Sha256);
        assert!(matches!(
            server.step(CLIENT_FIRST.as_bytes(), &store),
            ScramStep::Challenge(_)
        ));
        assert!(matches!(
            server.step(CLIENT_FINAL.as_bytes(), &store),
            ScramStep::Failure(_)
        ));
    }

    /// librdkafka before 2.6.1 puts its own nonce in front of the combined nonce once
    /// more in client-final (and signs that message): Kafka 3.8.1+ accepts it, so do we.
    #[test]
    fn librdkafka_doubled_client_nonce_is_accepted() {
        let store = rfc_store();
        let m = ScramMechanism::Sha256;
        let cnonce = "rOprNGfwEbeRWgbNEkqO";
        let mut server = ScramServer::new(m);
        server.step_with_nonce(CLIENT_FIRST.as_bytes(), &store, || SERVER_NONCE.into());
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let salted = m.salted_password(b"pencil", &salt, 4096);
        let without_proof = format!("c=biws,r={cnonce}{cnonce}{SERVER_NONCE}");
        let auth = format!("n=user,r={cnonce},{SERVER_FIRST},{without_proof}");
        let client_key = m.hmac(&salted, b"Client Key");
        let signature = m.hmac(&m.hash(&client_key), auth.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let fin = format!("{without_proof},p={}", B64.encode(proof));
        assert!(matches!(
            server.step(fin.as_bytes(), &store),
            ScramStep::Success { .. }
        ));
        // A nonce that does not end with the server's is still refused.
        let mut server = ScramServer::new(m);
        server.step_with_nonce(CLIENT_FIRST.as_bytes(), &store, || SERVER_NONCE.into());
        let wrong = CLIENT_FINAL.replace("$k0,p=", "$k1,p=");
        assert_eq!(
            server.step(wrong.as_bytes(), &store),
            ScramStep::Failure("nonce does not match".into())
        );
    }

    #[test]
    fn malformed_and_unknown_fail() {
        let store = rfc_store();
        for msg in [
            "",
            "n,,",
            "x,,n=user,r=abc",
            "p=tls-unique,,n=user,r=abc",
            "n,,r=abc",
            "n,,n=user",
            "n,,n=us=er,r=abc",
            "n,a=other,n=user,r=abc",
            "n,,n=user,r=abc,tokenauth=true",
            "n,,n=nobody,r=abc",
        ] {
            let mut server = ScramServer::new(ScramMechanism::Sha256);
            assert!(
                matches!(server.step(msg.as_bytes(), &store), ScramStep::Failure(_)),
                "{msg}"
            );
        }
        let mut server = ScramServer::new(ScramMechanism::Sha256);
        server.step(CLIENT_FIRST.as_bytes(), &store);
        assert!(matches!(
            server.step(b"c=biws", &store),
            ScramStep::Failure(_)
        ));
        // A SHA-256 credential does not serve SCRAM-SHA-512.
        let mut server = ScramServer::new(ScramMechanism::Sha512);
        assert!(matches!(
            server.step(CLIENT_FIRST.as_bytes(), &store),
            ScramStep::Failure(_)
        ));
    }

    #[test]
    fn sha512_round_trip_and_zk_form() {
        let m = ScramMechanism::Sha512;
        let salt = random_salt();
        let cred = m.credential(&salt, &m.salted_password(b"pw", &salt, 4096), 4096);
        let parsed = ScramCredential::from_zk_string(&cred.to_zk_string()).unwrap();
        assert_eq!(parsed, cred);
        let mut store = Store::default();
        store.scram.insert((m, "a,b".into()), cred);
        let mut client = ScramClient::new(m, "a,b", "pw");
        let mut server = ScramServer::new(m);
        let ScramStep::Challenge(c) = server.step(&client.client_first(), &store) else {
            panic!("no challenge")
        };
        let fin = client.client_final(&c).unwrap();
        let ScramStep::Success { user, response } = server.step(&fin, &store) else {
            panic!("not authenticated")
        };
        assert_eq!(user, "a,b");
        client.verify_server_final(&response).unwrap();
        let mut wrong = ScramClient::new(m, "a,b", "nope");
        let mut server = ScramServer::new(m);
        let ScramStep::Challenge(c) = server.step(&wrong.client_first(), &store) else {
            panic!("no challenge")
        };
        let fin = wrong.client_final(&c).unwrap();
        assert!(matches!(server.step(&fin, &store), ScramStep::Failure(_)));
    }
}
