//! Test and local-cluster certificates with rcgen: a CA, and certificates it signs for
//! brokers (host names and IPs as subject alternative names) and clients (a subject DN
//! for the SSL principal). Written as PEM files Kafka's clients read
//! (`ssl.truststore.type=PEM`, `ssl.keystore.type=PEM` with key and chain in one file).

use std::path::Path;

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

pub struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

/// A signed certificate and its key, in PEM.
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

impl Issued {
    /// Key then certificate in one PEM file (`ssl.keystore.location`).
    pub fn keystore_pem(&self) -> String {
        format!("{}{}", self.key_pem, self.cert_pem)
    }
}

impl Ca {
    pub fn new(common_name: &str) -> anyhow::Result<Ca> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = dn(&[(DnType::CommonName, common_name)]);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok(Ca { cert, key })
    }

    pub fn cert_pem(&self) -> String {
        self.cert.pem()
    }

    /// A server certificate for these DNS names / IP addresses.
    pub fn server(&self, common_name: &str, names: &[&str]) -> anyhow::Result<Issued> {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())?;
        params.distinguished_name = dn(&[(DnType::CommonName, common_name)]);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        self.issue(params)
    }

    /// A client certificate with this subject (most general attribute first, e.g.
    /// `[(O, "acme"), (OU, "eng"), (CN, "alice")]`, which Java prints
    /// `CN=alice,OU=eng,O=acme`).
    pub fn client(&self, subject: &[(DnType, &str)]) -> anyhow::Result<Issued> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = dn(subject);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(params)
    }

    fn issue(&self, params: CertificateParams) -> anyhow::Result<Issued> {
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.cert, &self.key)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

fn dn(attrs: &[(DnType, &str)]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    for (t, v) in attrs {
        dn.push(t.clone(), *v);
    }
    dn
}

/// Writes `ca.pem`, `broker.pem` (key + chain) for `names` into `dir`; returns their paths.
pub fn write_broker_set(
    dir: &Path,
    names: &[&str],
) -> anyhow::Result<(Ca, std::path::PathBuf, std::path::PathBuf)> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let ca = Ca::new("gregor test CA")?;
    let broker = ca.server("broker", names)?;
    let ca_path = dir.join("ca.pem");
    let broker_path = dir.join("broker.pem");
    std::fs::write(&ca_path, ca.cert_pem())?;
    std::fs::write(&broker_path, broker.keystore_pem())?;
    Ok((ca, ca_path, broker_path))
}
