//! One task per client connection. Like Kafka's SocketServer, a connection handles one
//! request at a time (Kafka mutes the channel until the response is sent), so responses
//! always leave in request order. A malformed frame or request closes this connection
//! with a log line and touches nothing else.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::{RequestKind, ResponseKind};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use super::Broker;
use crate::api::{self, sasl, RequestContext};
use crate::protocol::errors::{code, Error};
use crate::protocol::{
    decode_request, encode_response, read_frame_body, read_frame_size, FrameError,
};
use crate::security::listener::{ListenerSecurity, SaslListener};
use crate::security::sasl::{Authenticator, HandshakeOutcome, TokenOutcome};
use crate::security::KafkaPrincipal;

static NEXT_CONNECTION_ID: AtomicU64 = AtomicU64::new(1);

/// How long a TLS handshake may take: a plaintext client on a TLS port (or a silent
/// peer) is disconnected after this rather than held open until connections.max.idle.ms.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn serve(
    broker: Arc<Broker>,
    stream: TcpStream,
    peer: SocketAddr,
    listener: Arc<ListenerSecurity>,
) {
    let _ = stream.set_nodelay(true);
    match &listener.tls {
        None => {
            // The plaintext path keeps the split halves of the TcpStream (no lock
            // between reader and writer).
            let (reader, writer) = stream.into_split();
            let principal = Arc::new(KafkaPrincipal::anonymous());
            serve_stream(broker, reader, writer, peer, listener, principal).await
        }
        Some(acceptor) => {
            let tls = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream))
                .await
            {
                Ok(Ok(tls)) => tls,
                Ok(Err(err)) => {
                    if BAD_INPUT_LOG.allow() {
                        tracing::info!(%peer, listener = %listener.name, error = %err, "TLS handshake failed; closing connection");
                    }
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out; closing connection");
                    return;
                }
            };
            let Some(principal) = ssl_principal(&tls, &listener, peer) else {
                return;
            };
            let (reader, writer) = tokio::io::split(tls);
            serve_stream(broker, reader, writer, peer, listener, Arc::new(principal)).await
        }
    }
}

/// The principal of a TLS connection: the client certificate's subject mapped by
/// `ssl.principal.mapping.rules`, `User:ANONYMOUS` without one (Kafka's
/// `DefaultKafkaPrincipalBuilder`). `None`: no rule maps the subject, and the connection
/// is closed (Kafka fails the authentication).
fn ssl_principal(
    tls: &tokio_rustls::server::TlsStream<TcpStream>,
    listener: &ListenerSecurity,
    peer: SocketAddr,
) -> Option<KafkaPrincipal> {
    let Some(cert) = tls.get_ref().1.peer_certificates().and_then(|c| c.first()) else {
        return Some(KafkaPrincipal::anonymous());
    };
    let Some(dn) = crate::security::dn::subject_of(cert) else {
        tracing::info!(%peer, "client certificate subject does not parse; closing connection");
        return None;
    };
    match listener.principal_mapper.name_of(&dn) {
        Some(name) => Some(KafkaPrincipal::user(name)),
        None => {
            tracing::info!(%peer, subject = %dn, "no ssl.principal.mapping.rules rule maps the client certificate; closing connection");
            None
        }
    }
}

/// A SASL connection's authentication state (`None` on PLAINTEXT and SSL listeners).
struct SaslState<'a> {
    listener: &'a SaslListener,
    authenticator: Authenticator,
    /// KIP-368: when the session ends (connections.max.reauth.ms after authentication).
    expires_at: Option<Instant>,
    /// The user of the first authentication: a re-authentication may not change it.
    user: Option<String>,
}

/// What the connection does with a SASL request.
enum SaslAction {
    Respond(ResponseKind),
    /// Answer, then close (Kafka closes after a failed handshake or authentication).
    RespondAndClose(ResponseKind),
    Close,
}

impl<'a> SaslState<'a> {
    fn new(listener: &'a SaslListener) -> Self {
        SaslState {
            listener,
            authenticator: Authenticator::new(listener.mechanisms.clone()),
            expires_at: None,
            user: None,
        }
    }

    fn authenticated(&self) -> bool {
        self.authenticator.is_authenticated()
    }

    fn expired(&self) -> bool {
        self.expires_at.is_some_and(|t| Instant::now() >= t)
    }

    fn handshake(&mut self, version: i16, mechanism: &str) -> SaslAction {
        // A handshake on an authenticated connection is a re-authentication (KIP-368),
        // allowed when sessions expire; it starts a fresh exchange.
        if self.authenticated() && self.listener.max_reauth_ms > 0 && version >= 1 {
            self.authenticator = Authenticator::new(self.listener.mechanisms.clone());
        }
        let names = self.authenticator.enabled_names();
        match self.authenticator.handshake(version, mechanism) {
            HandshakeOutcome::Accepted { .. } => SaslAction::Respond(ResponseKind::SaslHandshake(
                sasl::handshake_response(0, &names),
            )),
            HandshakeOutcome::Unsupported => {
                SaslAction::RespondAndClose(ResponseKind::SaslHandshake(sasl::handshake_response(
                    code(Error::UnsupportedSaslMechanism),
                    &names,
                )))
            }
            HandshakeOutcome::IllegalState => {
                SaslAction::RespondAndClose(ResponseKind::SaslHandshake(sasl::handshake_response(
                    code(Error::IllegalSaslState),
                    &names,
                )))
            }
        }
    }

    /// Feeds a token; `Ok(Some(bytes))` is the reply token.
    fn token(&mut self, raw: bool, token: &[u8], peer: SocketAddr) -> Result<Vec<u8>, String> {
        match self
            .authenticator
            .token(raw, token, &self.listener.credentials)
        {
            TokenOutcome::Challenge(c) => Ok(c),
            TokenOutcome::Complete { user, response } => {
                if self.user.as_ref().is_some_and(|u| *u != user) {
                    return Err("Cannot change principals during re-authentication".into());
                }
                tracing::debug!(%peer, %user, "SASL authentication succeeded");
                self.user = Some(user);
                self.expires_at = (self.listener.max_reauth_ms > 0)
                    .then(|| Instant::now() + Duration::from_millis(self.listener.max_reauth_ms));
                Ok(response)
            }
            TokenOutcome::Failed { message, reason } => {
                if BAD_INPUT_LOG.allow() {
                    tracing::info!(%peer, %reason, "SASL authentication failed");
                }
                Err(message)
            }
            TokenOutcome::IllegalState => Err("Unexpected SASL token".into()),
        }
    }

    fn authenticate(&mut self, token: &[u8], peer: SocketAddr) -> SaslAction {
        match self.token(false, token, peer) {
            Ok(bytes) => {
                let lifetime = if self.authenticated() {
                    self.listener.max_reauth_ms as i64
                } else {
                    0
                };
                SaslAction::Respond(ResponseKind::SaslAuthenticate(sasl::authenticate_ok(
                    bytes, lifetime,
                )))
            }
            Err(message) => SaslAction::RespondAndClose(ResponseKind::SaslAuthenticate(
                sasl::authenticate_error(Error::SaslAuthenticationFailed, &message),
            )),
        }
    }

    /// The SASL handling of a decoded request, or `None` to serve it normally.
    fn intercept(
        &mut self,
        body: &Option<RequestKind>,
        version: i16,
        peer: SocketAddr,
    ) -> Option<SaslAction> {
        let reauth = self.authenticated() && self.listener.max_reauth_ms > 0;
        match body {
            Some(RequestKind::SaslHandshake(req)) if !self.authenticated() || reauth => {
                Some(self.handshake(version, req.mechanism.as_str()))
            }
            Some(RequestKind::SaslAuthenticate(req))
                if !self.authenticated() || self.authenticator.user().is_none() =>
            {
                Some(self.authenticate(&req.auth_bytes, peer))
            }
            _ if self.authenticated() => {
                if self.expired() {
                    // KIP-368: a request after the session expired closes the connection.
                    tracing::debug!(%peer, "SASL session expired; closing connection");
                    return Some(SaslAction::Close);
                }
                None
            }
            // Before authentication only ApiVersions is served besides SASL (Kafka's
            // SaslServerAuthenticator closes the connection on anything else).
            Some(RequestKind::ApiVersions(_)) | None => None,
            _ => {
                if BAD_INPUT_LOG.allow() {
                    tracing::info!(%peer, "request before SASL authentication; closing connection");
                }
                Some(SaslAction::Close)
            }
        }
    }
}

async fn serve_stream<R, W>(
    broker: Arc<Broker>,
    reader: R,
    writer: W,
    peer: SocketAddr,
    listener: Arc<ListenerSecurity>,
    mut principal: Arc<KafkaPrincipal>,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let connection_id = NEXT_CONNECTION_ID.fetch_add(1, Ordering::Relaxed);
    let _counted = crate::metrics::ConnectionGuard::open(&listener.name);
    let mut reader = BufReader::with_capacity(64 * 1024, reader);
    let mut writer = BufWriter::with_capacity(64 * 1024, writer);
    let max_frame = broker.config.socket_request_max_bytes;
    let idle = Duration::from_millis(broker.config.connections_max_idle_ms);
    let listener_name = listener.name.clone();
    let mut sasl = listener.sasl.as_ref().map(SaslState::new);
    loop {
        // Before authentication a frame is bounded by sasl.server.max.receive.size.
        let max_frame = match &sasl {
            Some(s) if !s.authenticated() => s.listener.max_receive_size.min(max_frame),
            _ => max_frame,
        };
        // Between requests: at shutdown, stop here (never in the middle of a request).
        let frame = tokio::select! {
            frame = read_frame_size(&mut reader, max_frame, idle) => frame,
            _ = broker.network.stopping() => break,
        };
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
        if let Some(state) = sasl
            .as_mut()
            .filter(|s| s.authenticator.expects_raw_token())
        {
            // After a v0 handshake the tokens are raw frames, answered with raw frames;
            // a failure just closes the connection (there is no error field to send).
            match state.token(true, &frame, peer) {
                Ok(reply) => {
                    if state.authenticated() {
                        principal =
                            Arc::new(KafkaPrincipal::user(state.user.clone().unwrap_or_default()));
                    }
                    let mut out = Vec::with_capacity(4 + reply.len());
                    out.extend_from_slice(&(reply.len() as u32).to_be_bytes());
                    out.extend_from_slice(&reply);
                    if writer.write_all(&out).await.is_err() || writer.flush().await.is_err() {
                        break;
                    }
                    continue;
                }
                Err(_) => break,
            }
        }
        let received = std::time::Instant::now();
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
        // Which API versions clients really use (`RUST_LOG=gregor::requests=debug`).
        tracing::debug!(target: "gregor::requests", api = ?ctx.api_key, version = ctx.api_version, client = %ctx.client_id, "request");
        // An ApiVersions request of a version we do not serve is answered in v0 (KIP-511).
        let response_version = if request.body.is_none() {
            0
        } else {
            ctx.api_version
        };
        let mut close_after = false;
        let started = std::time::Instant::now();
        let mut remote = Duration::ZERO;
        let sasl_action = sasl
            .as_mut()
            .and_then(|s| s.intercept(&request.body, ctx.api_version, peer));
        let response = match sasl_action {
            Some(SaslAction::Close) => break,
            Some(SaslAction::Respond(r)) => r,
            Some(SaslAction::RespondAndClose(r)) => {
                close_after = true;
                r
            }
            None => {
                let acks_zero =
                    matches!(&request.body, Some(RequestKind::Produce(p)) if p.acks == 0);
                let (response, waited) =
                    crate::metrics::requests::measure(api::handle(&broker, &ctx, request.body))
                        .await;
                remote = waited;
                let Some(response) = response else {
                    continue; // acks=0 produce: no response, as in Kafka
                };
                if acks_zero {
                    // The produce handler answers an acks=0 request only when it failed:
                    // Kafka then closes the connection instead of answering
                    // (KafkaApis.handleProduceRequest).
                    if BAD_INPUT_LOG.allow() {
                        tracing::info!(%peer, "closing connection after a failed acks=0 produce");
                    }
                    break;
                }
                response
            }
        };
        if let Some(s) = &sasl {
            if let (true, Some(user)) = (s.authenticated(), &s.user) {
                if principal.name != *user || principal.principal_type != KafkaPrincipal::USER_TYPE
                {
                    principal = Arc::new(KafkaPrincipal::user(user.clone()));
                }
            }
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
        let handled = std::time::Instant::now();
        // Small chunks coalesce in the writer's buffer; large record chunks go straight
        // from the segment read buffer to the socket.
        let mut failed = false;
        for chunk in &bytes.chunks {
            if writer.write_all(chunk).await.is_err() {
                failed = true;
                break;
            }
        }
        if failed || writer.flush().await.is_err() || close_after {
            break;
        }
        let timing = crate::metrics::requests::Timing {
            received,
            started,
            handled,
            remote,
        };
        crate::metrics::requests::record(ctx.api_key, ctx.api_version, Some(&response), &timing);
    }
    // Closing a TLS stream sends close_notify; a plain one just closes.
    let _ = writer.shutdown().await;
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
        let now = crate::clock::now_ms() / 1000;
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
