//! A minimal Kafka protocol client: one connection, request/response with correlation
//! ids, bounded frames. Brokers use it to talk to each other (follower fetches,
//! controlled shutdown) and the `gregor` CLI uses it to talk to a cluster.

use std::time::Duration;

pub mod admin;
pub mod cluster;
pub mod security;
pub mod tools;

pub use security::ClientSecurity;

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::protocol::read_frame;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("connection to {addr} failed: {reason}")]
    Io { addr: String, reason: String },
    #[error("timed out waiting for {addr}")]
    Timeout { addr: String },
    #[error("bad response from {addr}: {reason}")]
    Protocol { addr: String, reason: String },
}

/// Responses larger than this are refused (a fetch response is bounded by its request).
const MAX_RESPONSE_BYTES: usize = 512 * 1024 * 1024;

type Reader = Box<dyn AsyncRead + Send + Unpin>;
type Writer = Box<dyn AsyncWrite + Send + Unpin>;

pub struct KafkaConnection {
    addr: String,
    client_id: String,
    // Boxed so one type serves plain and TLS streams; a virtual call per read or write
    // syscall is noise next to the syscall.
    reader: BufReader<Reader>,
    writer: Writer,
    next_correlation_id: i32,
}

impl KafkaConnection {
    pub async fn connect(
        addr: &str,
        client_id: &str,
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        Self::connect_with(addr, client_id, timeout, &security::process_default()).await
    }

    /// Connects from a chosen local address (`None`: the system's choice), as a client
    /// on a multi-homed host does; ACLs match the address the broker sees.
    pub async fn connect_from(
        addr: &str,
        local: Option<std::net::IpAddr>,
        client_id: &str,
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        Self::connect_from_with(
            addr,
            local,
            client_id,
            timeout,
            &security::process_default(),
        )
        .await
    }

    /// Connects with TLS and/or SASL as `security` says; returns once authenticated.
    pub async fn connect_with(
        addr: &str,
        client_id: &str,
        timeout: Duration,
        security: &ClientSecurity,
    ) -> Result<Self, ClientError> {
        Self::connect_from_with(addr, None, client_id, timeout, security).await
    }

    async fn connect_from_with(
        addr: &str,
        local: Option<std::net::IpAddr>,
        client_id: &str,
        timeout: Duration,
        security: &ClientSecurity,
    ) -> Result<Self, ClientError> {
        let io = |reason: String| ClientError::Io {
            addr: addr.to_string(),
            reason,
        };
        let open = async {
            let Some(local) = local else {
                return TcpStream::connect(addr).await;
            };
            let remote = tokio::net::lookup_host(addr).await?.next().ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::NotFound, "address did not resolve")
            })?;
            let socket = if remote.is_ipv4() {
                tokio::net::TcpSocket::new_v4()?
            } else {
                tokio::net::TcpSocket::new_v6()?
            };
            socket.bind(std::net::SocketAddr::new(local, 0))?;
            socket.connect(remote).await
        };
        let stream = tokio::time::timeout(timeout, open)
            .await
            .map_err(|_| ClientError::Timeout {
                addr: addr.to_string(),
            })?
            .map_err(|source| ClientError::Connect {
                addr: addr.to_string(),
                source,
            })?;
        let _ = stream.set_nodelay(true);
        let (r, w): (Reader, Writer) = match &security.tls {
            None => {
                let (r, w) = stream.into_split();
                (Box::new(r), Box::new(w))
            }
            Some(config) => {
                let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
                let host = host.trim_start_matches('[').trim_end_matches(']');
                let name = rustls::pki_types::ServerName::try_from(host.to_string())
                    .map_err(|e| io(format!("TLS server name {host}: {e}")))?;
                let connector = tokio_rustls::TlsConnector::from(config.clone());
                let tls = tokio::time::timeout(timeout, connector.connect(name, stream))
                    .await
                    .map_err(|_| ClientError::Timeout {
                        addr: addr.to_string(),
                    })?
                    .map_err(|e| io(format!("TLS handshake failed: {e}")))?;
                let (r, w) = tokio::io::split(tls);
                (Box::new(r), Box::new(w))
            }
        };
        let mut conn = KafkaConnection {
            addr: addr.to_string(),
            client_id: client_id.to_string(),
            reader: BufReader::with_capacity(256 * 1024, r),
            writer: w,
            next_correlation_id: 1,
        };
        if let Some(sasl) = &security.sasl {
            conn.authenticate(sasl, timeout).await?;
        }
        Ok(conn)
    }

    /// SaslHandshake v1 then the mechanism's tokens in SaslAuthenticate v2.
    async fn authenticate(
        &mut self,
        creds: &security::SaslCredentials,
        timeout: Duration,
    ) -> Result<(), ClientError> {
        use crate::security::sasl::scram::ScramClient;
        use kafka_protocol::messages::SaslHandshakeRequest;
        let addr = self.addr.clone();
        let failed = |reason: String| ClientError::Protocol {
            addr: addr.clone(),
            reason,
        };
        let handshake = SaslHandshakeRequest::default()
            .with_mechanism(StrBytes::from_static_str(creds.mechanism.name()));
        let r = self.send(&handshake, 1, timeout).await?;
        if r.error_code != 0 {
            return Err(failed(format!(
                "SASL handshake for {} failed with error {}",
                creds.mechanism.name(),
                r.error_code
            )));
        }
        let mut scram = creds
            .mechanism
            .scram()
            .map(|m| ScramClient::new(m, &creds.username, &creds.password));
        let first = match &scram {
            None => format!("\0{}\0{}", creds.username, creds.password).into_bytes(),
            Some(c) => c.client_first(),
        };
        let reply = self.sasl_step(first, timeout).await?;
        if let Some(client) = scram.as_mut() {
            let fin = client.client_final(&reply).map_err(failed)?;
            let reply = self.sasl_step(fin, timeout).await?;
            client.verify_server_final(&reply).map_err(failed)?;
        }
        Ok(())
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    async fn sasl_step(
        &mut self,
        token: Vec<u8>,
        timeout: Duration,
    ) -> Result<bytes::Bytes, ClientError> {
        let req = kafka_protocol::messages::SaslAuthenticateRequest::default()
            .with_auth_bytes(token.into());
        let r = self.send(&req, 2, timeout).await?;
        if r.error_code != 0 {
            return Err(ClientError::Protocol {
                addr: self.addr.clone(),
                reason: format!(
                    "SASL authentication failed: {}",
                    r.error_message.as_deref().unwrap_or("")
                ),
            });
        }
        Ok(r.auth_bytes)
    }

    /// Sends `request` at `version` and waits (up to `timeout`) for its response.
    pub async fn send<R: Request>(
        &mut self,
        request: &R,
        version: i16,
        timeout: Duration,
    ) -> Result<R::Response, ClientError> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let proto = |reason: String| ClientError::Protocol {
            addr: self.addr.clone(),
            reason,
        };
        let api_key = kafka_protocol::messages::ApiKey::try_from(R::KEY)
            .map_err(|_| proto(format!("unknown api key {}", R::KEY)))?;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_string(self.client_id.clone())));
        let mut buf = BytesMut::with_capacity(256);
        buf.put_i32(0);
        header
            .encode(&mut buf, api_key.request_header_version(version))
            .map_err(|e| proto(e.to_string()))?;
        request
            .encode(&mut buf, version)
            .map_err(|e| proto(e.to_string()))?;
        let size = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&size.to_be_bytes());

        let exchange = async {
            self.writer
                .write_all(&buf)
                .await
                .map_err(|e| e.to_string())?;
            let frame = read_frame(&mut self.reader, MAX_RESPONSE_BYTES, timeout)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| "connection closed".to_string())?;
            Ok::<_, String>(frame)
        };
        let mut frame = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| ClientError::Timeout {
                addr: self.addr.clone(),
            })?
            .map_err(|reason| ClientError::Io {
                addr: self.addr.clone(),
                reason,
            })?;
        let header_version = if api_key == kafka_protocol::messages::ApiKey::ApiVersions {
            0
        } else {
            api_key.response_header_version(version)
        };
        let header =
            ResponseHeader::decode(&mut frame, header_version).map_err(|e| proto(e.to_string()))?;
        if header.correlation_id != correlation_id {
            return Err(proto(format!(
                "correlation id {} does not match request {correlation_id}",
                header.correlation_id
            )));
        }
        R::Response::decode(&mut frame, version).map_err(|e| proto(format!("{e:#}")))
    }
}
