//! `gregor cluster --secure`: the local cluster with Kafka's security on, set up once.
//!
//! At the first start it writes under `<data>/security/` a CA and a broker certificate
//! (rcgen, valid for the cluster's host, `localhost` and 127.0.0.1) and three random
//! secrets: the `admin` user's password, the brokers' own SCRAM password and the brokers'
//! ZooKeeper digest. Later starts reuse them, so the cluster restarts with the same data
//! directory and client files. Every start then:
//! - stores SCRAM-SHA-256/512 credentials for `admin` and `broker` in ZooKeeper (Kafka's
//!   `/config/users/<user>`, as `kafka-configs --zookeeper` would before brokers start);
//! - gives each broker one SASL_SSL listener (SCRAM only) that clients and the brokers'
//!   replica fetchers (`security.inter.broker.protocol=SASL_SSL`, as `User:broker`) use,
//!   the ACL authorizer with `super.users=User:admin;User:broker`, and
//!   `zookeeper.set.acl=true` under the chroot `/gregor`;
//! - writes `client.properties` (Kafka's Java client keys) and `client-librdkafka.properties`
//!   (librdkafka's keys: kcat `-F`, confluent-kafka) into the data directory.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use rand::Rng;

use crate::client::ClientSecurity;
use crate::coordination::session::connect_once;
use crate::coordination::ZkSecurity;
use crate::security::certs::Ca;
use crate::security::credentials;
use crate::security::sasl::scram::{random_salt, ScramMechanism};

/// The super user clients get in the written client files.
pub const ADMIN_USER: &str = "admin";
/// The brokers' own principal (`User:broker`), a super user.
pub const BROKER_USER: &str = "broker";
/// The brokers' chroot in the mini-zookeeper: ZooKeeper's root stays world-writable.
pub const ZK_CHROOT: &str = "/gregor";
const ZK_DIGEST_USER: &str = "gregor";
/// Kafka's default (and minimum) SCRAM iteration count.
const ITERATIONS: u32 = 4096;
const MECHANISMS: [ScramMechanism; 2] = [ScramMechanism::Sha256, ScramMechanism::Sha512];

pub const CLIENT_PROPERTIES: &str = "client.properties";
pub const LIBRDKAFKA_PROPERTIES: &str = "client-librdkafka.properties";

/// The secured cluster's files and secrets (loaded or created by [`SecureSetup::prepare`]).
pub struct SecureSetup {
    pub dir: PathBuf,
    pub ca: PathBuf,
    pub keystore: PathBuf,
    pub zk_digest_file: PathBuf,
    admin_password: String,
    broker_password: String,
}

impl SecureSetup {
    /// The directory of the secured material, `<data>/security`.
    pub fn dir_of(data: &Path) -> PathBuf {
        data.join("security")
    }

    /// Loads `<data>/security`, creating its certificates and secrets at the first start.
    pub fn prepare(data: &Path, host: &str) -> anyhow::Result<SecureSetup> {
        let dir = Self::dir_of(data);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let ca = dir.join("ca.pem");
        let keystore = dir.join("broker.pem");
        if !(ca.exists() && keystore.exists()) {
            write_certificates(&ca, &keystore, host)?;
        }
        let zk_digest_file = dir.join("zk-digest");
        let zk_password = secret(&dir.join("zk-digest.password"))?;
        write_private(
            &zk_digest_file,
            &format!("{ZK_DIGEST_USER}:{zk_password}\n"),
        )?;
        Ok(SecureSetup {
            admin_password: secret(&dir.join("admin.password"))?,
            broker_password: secret(&dir.join("broker.password"))?,
            dir,
            ca,
            keystore,
            zk_digest_file,
        })
    }

    /// The extra broker config keys (TOML lines) for a broker listening on `host:port`.
    pub fn broker_config(&self, host: &str, port: u16) -> String {
        let mut keys = BTreeMap::new();
        keys.insert("listeners", format!("SASL_SSL://{host}:{port}"));
        keys.insert("security.inter.broker.protocol", "SASL_SSL".into());
        keys.insert(
            "sasl.mechanism.inter.broker.protocol",
            "SCRAM-SHA-512".into(),
        );
        keys.insert(
            "sasl.enabled.mechanisms",
            "SCRAM-SHA-256,SCRAM-SHA-512".into(),
        );
        keys.insert("ssl.keystore.type", "PEM".into());
        keys.insert("ssl.keystore.location", self.keystore.display().to_string());
        keys.insert("ssl.truststore.type", "PEM".into());
        keys.insert("ssl.truststore.location", self.ca.display().to_string());
        keys.insert(
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config",
            scram_jaas(BROKER_USER, &self.broker_password),
        );
        keys.insert(
            "authorizer.class.name",
            "kafka.security.authorizer.AclAuthorizer".into(),
        );
        keys.insert(
            "super.users",
            format!("User:{ADMIN_USER};User:{BROKER_USER}"),
        );
        keys.insert("zookeeper.set.acl", "true".into());
        keys.insert(
            "zookeeper.digest.credentials.file",
            self.zk_digest_file.display().to_string(),
        );
        keys.iter()
            .map(|(k, v)| format!("{} = {}\n", toml_string(k), toml_string(v)))
            .collect()
    }

    /// How the brokers (and this launcher) authenticate to the mini-zookeeper.
    pub fn zk_security(&self) -> anyhow::Result<ZkSecurity> {
        ZkSecurity::load(true, Some(&self.zk_digest_file))
    }

    /// Stores the admin's and the brokers' SCRAM credentials in ZooKeeper (every start:
    /// the stored passwords are re-salted, the users stay the same).
    pub async fn store_users(&self, zk_connect: &str) -> anyhow::Result<()> {
        let security = self.zk_security()?;
        let handle = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            connect_once(zk_connect, std::time::Duration::from_secs(10), &security),
        )
        .await
        .context("no ZooKeeper session within 30 s")?
        .context("cannot connect to ZooKeeper")?;
        for (user, password) in [
            (ADMIN_USER, &self.admin_password),
            (BROKER_USER, &self.broker_password),
        ] {
            let upserts: Vec<_> = MECHANISMS
                .iter()
                .map(|&m| (m, scram_credential(m, password)))
                .collect();
            credentials::alter_user(&handle, user, &upserts, &[])
                .await
                .with_context(|| format!("cannot store the SCRAM credentials of {user}"))?;
        }
        Ok(())
    }

    /// Kafka Java client properties for the admin (`--producer.config`, `--command-config`).
    pub fn client_properties(&self, bootstrap: &str) -> Vec<(&'static str, String)> {
        vec![
            ("bootstrap.servers", bootstrap.to_string()),
            ("security.protocol", "SASL_SSL".into()),
            ("sasl.mechanism", "SCRAM-SHA-512".into()),
            (
                "sasl.jaas.config",
                scram_jaas(ADMIN_USER, &self.admin_password),
            ),
            ("ssl.truststore.type", "PEM".into()),
            ("ssl.truststore.location", self.ca.display().to_string()),
        ]
    }

    /// The same for librdkafka, which refuses `sasl.jaas.config` ("Java JAAS configuration
    /// is not supported") and knows no truststore keys.
    pub fn librdkafka_properties(&self, bootstrap: &str) -> Vec<(&'static str, String)> {
        vec![
            ("bootstrap.servers", bootstrap.to_string()),
            ("security.protocol", "SASL_SSL".into()),
            ("sasl.mechanism", "SCRAM-SHA-512".into()),
            ("sasl.username", ADMIN_USER.into()),
            ("sasl.password", self.admin_password.clone()),
            ("ssl.ca.location", self.ca.display().to_string()),
        ]
    }

    /// Writes both client files into `data`; returns their paths.
    pub fn write_client_files(
        &self,
        data: &Path,
        bootstrap: &str,
    ) -> anyhow::Result<(PathBuf, PathBuf)> {
        let java = data.join(CLIENT_PROPERTIES);
        let rdkafka = data.join(LIBRDKAFKA_PROPERTIES);
        write_private(&java, &properties_text(&self.client_properties(bootstrap)))?;
        write_private(
            &rdkafka,
            &properties_text(&self.librdkafka_properties(bootstrap)),
        )?;
        Ok((java, rdkafka))
    }

    /// The admin's client security, for the launcher's own readiness checks.
    pub fn admin_client(&self, bootstrap: &str) -> anyhow::Result<ClientSecurity> {
        let props: BTreeMap<_, _> = self.client_properties(bootstrap).into_iter().collect();
        ClientSecurity::from_properties(|k| props.get(k).cloned())
    }
}

fn write_certificates(ca_path: &Path, keystore: &Path, host: &str) -> anyhow::Result<()> {
    let ca = Ca::new("gregor cluster CA")?;
    let mut names = vec![host, "localhost", "127.0.0.1"];
    names.dedup();
    names.sort_unstable();
    names.dedup();
    let broker = ca.server(BROKER_USER, &names)?;
    // The keystore first: a crash in between leaves no CA without its broker certificate.
    write_private(keystore, &broker.keystore_pem())?;
    std::fs::write(ca_path, ca.cert_pem())
        .with_context(|| format!("cannot write {}", ca_path.display()))
}

/// A 24-character random password kept in `path` (created at the first call).
fn secret(path: &Path) -> anyhow::Result<String> {
    if let Ok(text) = std::fs::read_to_string(path) {
        let text = text.trim();
        anyhow::ensure!(!text.is_empty(), "{} is empty", path.display());
        return Ok(text.to_string());
    }
    let password: String = rand::rngs::OsRng
        .sample_iter(rand::distributions::Alphanumeric)
        .take(24)
        .map(char::from)
        .collect();
    write_private(path, &format!("{password}\n"))?;
    Ok(password)
}

/// Writes a file readable by its owner only (it holds a secret).
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

fn scram_jaas(user: &str, password: &str) -> String {
    format!(
        "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"{user}\" password=\"{password}\";"
    )
}

fn scram_credential(
    m: ScramMechanism,
    password: &str,
) -> crate::security::sasl::scram::ScramCredential {
    let salt = random_salt();
    let salted = m.salted_password(password.as_bytes(), &salt, ITERATIONS);
    m.credential(&salt, &salted, ITERATIONS as i32)
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Java properties: `key=value` lines (the values here need no escaping but `\`).
fn properties_text(props: &[(&str, String)]) -> String {
    props
        .iter()
        .map(|(k, v)| format!("{k}={}\n", v.replace('\\', "\\\\")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_and_certificates_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let first = SecureSetup::prepare(dir.path(), "127.0.0.1").unwrap();
        let ca = std::fs::read_to_string(&first.ca).unwrap();
        let again = SecureSetup::prepare(dir.path(), "127.0.0.1").unwrap();
        assert_eq!(first.admin_password, again.admin_password);
        assert_eq!(first.broker_password, again.broker_password);
        assert_ne!(first.admin_password, first.broker_password);
        assert_eq!(first.admin_password.len(), 24);
        assert_eq!(std::fs::read_to_string(&again.ca).unwrap(), ca);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("security/admin.password"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "secrets are private");
    }

    #[test]
    fn broker_config_is_valid_toml_with_kafkas_keys() {
        let dir = tempfile::tempdir().unwrap();
        let s = SecureSetup::prepare(dir.path(), "127.0.0.1").unwrap();
        let text = s.broker_config("127.0.0.1", 9092);
        let table: toml::Table = text.parse().unwrap();
        assert_eq!(
            table["listeners"].as_str(),
            Some("SASL_SSL://127.0.0.1:9092")
        );
        assert_eq!(
            table["super.users"].as_str(),
            Some("User:admin;User:broker")
        );
        let jaas = table["listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config"]
            .as_str()
            .unwrap();
        assert!(jaas.contains(&format!("password=\"{}\"", s.broker_password)));
    }

    #[test]
    fn client_files_work_for_gregors_own_client() {
        let dir = tempfile::tempdir().unwrap();
        let s = SecureSetup::prepare(dir.path(), "127.0.0.1").unwrap();
        let (java, rdkafka) = s.write_client_files(dir.path(), "127.0.0.1:9092").unwrap();
        let parsed = ClientSecurity::from_properties_file(&java).unwrap();
        let sasl = parsed.sasl.unwrap();
        assert_eq!(sasl.username, ADMIN_USER);
        assert_eq!(sasl.password, s.admin_password);
        let text = std::fs::read_to_string(rdkafka).unwrap();
        assert!(!text.contains("jaas"), "{text}");
        assert!(text.contains(&format!("sasl.password={}\n", s.admin_password)));
    }
}
