//! One task per client connection. Like Kafka's SocketServer, a connection handles one
//! request at a time (Kafka mutes the channel until the response is sent), so responses
//! always leave in request order. A malformed frame or request closes this connection
//! with a log line and touches nothing else.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::RequestKind;

use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;

use super::Broker;
use crate::api::{self, RequestContext};
use crate::protocol::{
    decode_request, encode_response, read_frame_body, read_frame_size, FrameError,
};

static NEXT_CONNECTION_ID: AtomicU64 = AtomicU64::new(1);

pub async fn serve(broker: Arc<Broker>, stream: TcpStream, peer: SocketAddr) {
    let connection_id = NEXT_CONNECTION_ID.fetch_add(1, Ordering::Relaxed);
    let _ = stream.set_nodelay(true);
    let (reader, writer) = stream.into_split();
    let mut reader = BufReader::with_capacity(64 * 1024, reader);
    let mut writer = BufWriter::with_capacity(64 * 1024, writer);
    let max_frame = broker.config.socket_request_max_bytes;
    let idle = Duration::from_millis(broker.config.connections_max_idle_ms);
    let principal = Arc::new(crate::security::KafkaPrincipal::anonymous());
    let listener_name: Arc<str> = Arc::from(broker.config.listeners[0].name.as_str());
    loop {
        let frame = read_frame_size(&mut reader, max_frame, idle).await;
        let (frame, _memory) = match frame {
            Ok(Some(size)) => {
                let Some(memory) = reserve_request_memory(&broker, size, peer).await else {
                    break;
                };
                match read_frame_body(&mut reader, size, idle).await {
                    Ok(frame) => (frame, memory),
                    Err(err) => {
                        frame_failed(peer, err);
                        break;
                    }
                }
            }
            Ok(None) => break,
            Err(err) => {
                frame_failed(peer, err);
                break;
            }
        };
        let request = match decode_request(frame, api::served_versions) {
            Ok(request) => request,
            Err(err) => {
                if BAD_INPUT_LOG.allow() {
                    tracing::warn!(%peer, error = %err, "closing connection: bad request");
                }
                break;
            }
        };
        let ctx = RequestContext {
            api_key: request.api_key,
            api_version: request.header.request_api_version,
            correlation_id: request.header.correlation_id,
            client_id: request
                .header
                .client_id
                .as_ref()
                .map(|s| s.to_string())
                .unwrap_or_default(),
            peer,
            connection_id,
            principal: principal.clone(),
            listener_name: listener_name.clone(),
        };
        // An ApiVersions request of a version we do not serve is answered in v0 (KIP-511).
        let response_version = if request.body.is_none() {
            0
        } else {
            ctx.api_version
        };
        let acks_zero = matches!(&request.body, Some(RequestKind::Produce(p)) if p.acks == 0);
        let Some(response) = api::handle(&broker, &ctx, request.body).await else {
            continue; // acks=0 produce: no response, as in Kafka
        };
        if acks_zero {
            // The produce handler answers an acks=0 request only when it failed: Kafka
            // then closes the connection instead of answering (KafkaApis.handleProduceRequest).
            if BAD_INPUT_LOG.allow() {
                tracing::info!(%peer, "closing connection after a failed acks=0 produce");
            }
            break;
        }
        let bytes = match encode_response(
            ctx.api_key,
            response_version,
            ctx.correlation_id,
            &response,
        ) {
            Ok(bytes) => bytes,
            Err(err) => {
                tracing::error!(%peer, api = ?ctx.api_key, error = %err, "cannot encode response; closing connection");
                break;
            }
        };
        // Small chunks coalesce in the writer's buffer; large record chunks go straight
        // from the segment read buffer to the socket.
        let mut failed = false;
        for chunk in &bytes.chunks {
            if writer.write_all(chunk).await.is_err() {
                failed = true;
                break;
            }
        }
        if failed || writer.flush().await.is_err() {
            break;
        }
    }
    tracing::debug!(%peer, connection_id, "connection closed");
}

/// Reserves `size` bytes of `queued.max.request.bytes` for a frame before its body is
/// read (Kafka's request memory pool: a connection waits while the pool is exhausted).
/// `None` closes the connection: the frame is larger than the whole pool.
async fn reserve_request_memory(
    broker: &Broker,
    size: usize,
    peer: SocketAddr,
) -> Option<Option<OwnedSemaphorePermit>> {
    let Some(pool) = &broker.request_memory else {
        return Some(None);
    };
    let permits = u32::try_from(size).ok()?;
    if size > broker.config.queued_max_request_bytes as usize {
        tracing::warn!(%peer, size, "closing connection: frame larger than queued.max.request.bytes");
        return None;
    }
    pool.clone()
        .acquire_many_owned(permits)
        .await
        .ok()
        .map(Some)
}

fn frame_failed(peer: SocketAddr, err: FrameError) {
    match err {
        FrameError::Idle(_) => tracing::debug!(%peer, error = %err, "closing idle connection"),
        // The client went away mid-stream (reset): routine, not a protocol error.
        FrameError::Io(err) => tracing::debug!(%peer, error = %err, "connection lost"),
        err => {
            if BAD_INPUT_LOG.allow() {
                tracing::warn!(%peer, error = %err, "closing connection: bad frame");
            }
        }
    }
}

/// Log lines about bad input, at most [`LogLimiter::PER_SECOND`] a second: every bad
/// frame is worth a line until an attacker sends thousands a second to fill the disk.
static BAD_INPUT_LOG: LogLimiter = LogLimiter::new();

struct LogLimiter {
    second: AtomicI64,
    count: AtomicU64,
}

impl LogLimiter {
    const PER_SECOND: u64 = 10;

    const fn new() -> Self {
        LogLimiter {
            second: AtomicI64::new(0),
            count: AtomicU64::new(0),
        }
    }

    fn allow(&self) -> bool {
        let now = crate::replica::manager::now_ms() / 1000;
        if self.second.swap(now, Ordering::Relaxed) != now {
            let suppressed = self
                .count
                .swap(0, Ordering::Relaxed)
                .saturating_sub(Self::PER_SECOND);
            if suppressed > 0 {
                tracing::warn!(
                    suppressed,
                    "bad-input log lines suppressed in the last second"
                );
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed) < Self::PER_SECOND
    }
}
