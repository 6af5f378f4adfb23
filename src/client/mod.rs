//! A minimal Kafka protocol client: one connection, request/response with correlation
//! ids, bounded frames. Brokers use it to talk to each other (follower fetches,
//! controlled shutdown) and the `gregor` CLI uses it to talk to a cluster.

use std::time::Duration;

pub mod cluster;

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
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

pub struct KafkaConnection {
    addr: String,
    client_id: String,
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    next_correlation_id: i32,
}

impl KafkaConnection {
    pub async fn connect(
        addr: &str,
        client_id: &str,
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        Self::connect_from(addr, None, client_id, timeout).await
    }

    /// Connects from a chosen local address (`None`: the system's choice), as a client
    /// on a multi-homed host does; ACLs match the address the broker sees.
    pub async fn connect_from(
        addr: &str,
        local: Option<std::net::IpAddr>,
        client_id: &str,
        timeout: Duration,
    ) -> Result<Self, ClientError> {
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
        let (r, w) = stream.into_split();
        Ok(KafkaConnection {
            addr: addr.to_string(),
            client_id: client_id.to_string(),
            reader: BufReader::with_capacity(256 * 1024, r),
            writer: w,
            next_correlation_id: 1,
        })
    }

    pub fn addr(&self) -> &str {
        &self.addr
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
