//! TLS with rustls from Kafka's `ssl.*` keys (PEM keystores and truststores only): the
//! server config of an SSL / SASL_SSL listener and the client config of gregor's own
//! connections (replica fetchers, CLI).

use std::sync::Arc;

use anyhow::{anyhow, bail, Context};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};

/// `ssl.client.auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    Requested,
    Required,
}

/// The `ssl.*` settings of one listener or client.
#[derive(Debug, Clone, Default)]
pub struct SslSettings {
    pub keystore_location: Option<String>,
    pub keystore_certificate_chain: Option<String>,
    pub keystore_key: Option<String>,
    pub key_password: Option<String>,
    pub truststore_location: Option<String>,
    pub truststore_certificates: Option<String>,
    pub enabled_protocols: Vec<String>,
    pub client_auth: Option<ClientAuth>,
    /// `ssl.endpoint.identification.algorithm=https` (the default): clients check the
    /// server's host name.
    pub endpoint_identification: bool,
}

impl SslSettings {
    /// Reads the settings through `get` (a listener's or a client properties file's view
    /// of the keys, defaults included).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let nonempty = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        for (key, want) in [("ssl.keystore.type", "PEM"), ("ssl.truststore.type", "PEM")] {
            if let Some(v) = nonempty(key) {
                if !v.eq_ignore_ascii_case(want) {
                    bail!("{key}={v}: only PEM is supported");
                }
            }
        }
        let client_auth = match nonempty("ssl.client.auth").as_deref() {
            None | Some("none") => None,
            Some("requested") => Some(ClientAuth::Requested),
            Some("required") => Some(ClientAuth::Required),
            Some(other) => bail!("ssl.client.auth={other}: expected none, requested or required"),
        };
        Ok(SslSettings {
            keystore_location: nonempty("ssl.keystore.location"),
            keystore_certificate_chain: nonempty("ssl.keystore.certificate.chain"),
            keystore_key: nonempty("ssl.keystore.key"),
            key_password: nonempty("ssl.key.password"),
            truststore_location: nonempty("ssl.truststore.location"),
            truststore_certificates: nonempty("ssl.truststore.certificates"),
            enabled_protocols: nonempty("ssl.enabled.protocols")
                .unwrap_or_else(|| "TLSv1.2,TLSv1.3".into())
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            client_auth,
            endpoint_identification: get("ssl.endpoint.identification.algorithm")
                .map(|v| !v.trim().is_empty())
                .unwrap_or(true),
        })
    }

    fn versions(&self) -> anyhow::Result<Vec<&'static rustls::SupportedProtocolVersion>> {
        let mut out = Vec::new();
        for p in &self.enabled_protocols {
            match p.as_str() {
                "TLSv1.2" => out.push(&rustls::version::TLS12),
                "TLSv1.3" => out.push(&rustls::version::TLS13),
                other => {
                    bail!("ssl.enabled.protocols: {other} is not supported (TLSv1.2, TLSv1.3)")
                }
            }
        }
        if out.is_empty() {
            bail!("ssl.enabled.protocols is empty");
        }
        Ok(out)
    }

    /// The key and chain, from `ssl.keystore.location` (one PEM file holding both) or
    /// the inline `ssl.keystore.certificate.chain` / `ssl.keystore.key`. `None`: no keystore.
    fn identity(
        &self,
    ) -> anyhow::Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>> {
        if self.key_password.is_some() {
            // rustls has no decryption of encrypted PKCS#8 keys; no well-kept crate does
            // it without OpenSSL. Say so rather than fail later with a parse error.
            bail!("ssl.key.password: encrypted private keys are not supported; use an unencrypted PEM key");
        }
        let (chain_pem, key_pem) = match (
            &self.keystore_location,
            &self.keystore_certificate_chain,
            &self.keystore_key,
        ) {
            (Some(path), None, None) => {
                let pem = std::fs::read(path)
                    .with_context(|| format!("ssl.keystore.location {path}"))?;
                (pem.clone(), pem)
            }
            (None, Some(chain), Some(key)) => (chain.as_bytes().to_vec(), key.as_bytes().to_vec()),
            (None, None, None) => return Ok(None),
            _ => bail!("set either ssl.keystore.location or both ssl.keystore.certificate.chain and ssl.keystore.key"),
        };
        let chain = CertificateDer::pem_slice_iter(&chain_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow!("keystore certificate chain: {e}"))?;
        if chain.is_empty() {
            bail!("the keystore holds no certificate");
        }
        let key = PrivateKeyDer::from_pem_slice(&key_pem)
            .map_err(|e| anyhow!("keystore private key: {e}"))?;
        Ok(Some((chain, key)))
    }

    fn trust_roots(&self) -> anyhow::Result<Option<Arc<RootCertStore>>> {
        let pem = match (&self.truststore_location, &self.truststore_certificates) {
            (Some(path), None) => {
                std::fs::read(path).with_context(|| format!("ssl.truststore.location {path}"))?
            }
            (None, Some(inline)) => inline.as_bytes().to_vec(),
            (None, None) => return Ok(None),
            _ => bail!("set only one of ssl.truststore.location and ssl.truststore.certificates"),
        };
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| anyhow!("truststore: {e}"))?;
            roots.add(cert).map_err(|e| anyhow!("truststore: {e}"))?;
        }
        if roots.is_empty() {
            bail!("the truststore holds no certificate");
        }
        Ok(Some(Arc::new(roots)))
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The TLS server config of an SSL or SASL_SSL listener.
pub fn server_config(s: &SslSettings) -> anyhow::Result<Arc<ServerConfig>> {
    let (chain, key) = s
        .identity()?
        .ok_or_else(|| anyhow!("a TLS listener needs ssl.keystore.location (or ssl.keystore.certificate.chain and ssl.keystore.key)"))?;
    let builder =
        ServerConfig::builder_with_provider(provider()).with_protocol_versions(&s.versions()?)?;
    let builder = match s.client_auth {
        None => builder.with_no_client_auth(),
        Some(mode) => {
            let roots = s.trust_roots()?.ok_or_else(|| {
                anyhow!("ssl.client.auth needs a truststore (ssl.truststore.location) of the client certificates' CAs")
            })?;
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider());
            let verifier = if mode == ClientAuth::Requested {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(verifier.build()?)
        }
    };
    Ok(Arc::new(builder.with_single_cert(chain, key)?))
}

/// The TLS client config of gregor's own connections to an SSL or SASL_SSL listener.
pub fn client_config(s: &SslSettings) -> anyhow::Result<Arc<ClientConfig>> {
    let roots = s
        .trust_roots()?
        .ok_or_else(|| anyhow!("TLS needs ssl.truststore.location (PEM) of the brokers' CA"))?;
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider()).build()?;
    let builder =
        ClientConfig::builder_with_provider(provider()).with_protocol_versions(&s.versions()?)?;
    let builder = if s.endpoint_identification {
        builder.with_webpki_verifier(verifier)
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoHostnameCheck(verifier)))
    };
    let config = match s.identity()? {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key)?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// `ssl.endpoint.identification.algorithm=` (empty): the chain is verified against the
/// truststore, but not the host name (Kafka's behaviour with the algorithm disabled).
#[derive(Debug)]
struct NoHostnameCheck(Arc<rustls::client::WebPkiServerVerifier>);

impl ServerCertVerifier for NoHostnameCheck {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
