//! One task per client connection. Like Kafka's SocketServer, a connection handles one
//! request at a time (Kafka mutes the channel until the response is sent), so responses
//! always leave in request order. A malformed frame or request closes this connection
//! with a log line and touches nothing else.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::RequestKind;

use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;

use super::Broker;
use crate::api::{self, RequestContext};
use crate::protocol::{decode_request, encode_response, read_frame};

static NEXT_CONNECTION_ID: AtomicU64 = AtomicU64::new(1);

pub async fn serve(broker: Arc<Broker>, stream: TcpStream, peer: SocketAddr) {
    let connection_id = NEXT_CONNECTION_ID.fetch_add(1, Ordering::Relaxed);
    let _ = stream.set_nodelay(true);
    let (reader, writer) = stream.into_split();
    let mut reader = BufReader::with_capacity(64 * 1024, reader);
    let mut writer = BufWriter::with_capacity(64 * 1024, writer);
    let max_frame = broker.config.socket_request_max_bytes;
    let idle = Duration::from_millis(broker.config.connections_max_idle_ms);
    loop {
        let frame = match read_frame(&mut reader, max_frame, idle).await {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(err @ crate::protocol::FrameError::Idle(_)) => {
                tracing::debug!(%peer, error = %err, "closing idle connection");
                break;
            }
            Err(crate::protocol::FrameError::Io(err)) => {
                // The client went away mid-stream (reset): routine, not a protocol error.
                tracing::debug!(%peer, error = %err, "connection lost");
                break;
            }
            Err(err) => {
                tracing::warn!(%peer, error = %err, "closing connection: bad frame");
                break;
            }
        };
        let request = match decode_request(frame, api::served_versions) {
            Ok(request) => request,
            Err(err) => {
                tracing::warn!(%peer, error = %err, "closing connection: bad request");
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
            tracing::info!(%peer, "closing connection after a failed acks=0 produce");
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
