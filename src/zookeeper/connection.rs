//! One task per client connection: framing (4-byte big-endian length), the connect
//! handshake, four-letter words, decoding requests for the state machine and writing
//! back what it sends, in order.
//!
//! Limits (each in `config.rs`):
//! - a frame larger than `jute.maxbuffer` (or with a negative length) closes the
//!   connection, as ZooKeeper's `NIOServerCnxn.readLength` does ("Len error");
//! - at most `max_outstanding_requests` requests, and `max_outstanding_request_bytes` of
//!   them, are in flight per connection, and `global_outstanding_request_bytes` over all
//!   connections: the task stops reading until replies go out;
//! - the handshake (a ConnectRequest or a four-letter word) must arrive within
//!   `sessionless_cnxn_timeout_ms` (ZooKeeper: `zookeeper.nio.sessionlessCnxnTimeout`);
//! - replies and notifications waiting to be written are bounded per connection
//!   (`connection_outbound_max_bytes`, see [`Outlet`]); a client that lets more pile up
//!   is disconnected, and so is one that accepts no byte for `max_session_timeout_ms`
//!   (ZooKeeper closes a connection idle that long). Other connections are unaffected.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, Notify, OwnedSemaphorePermit, Semaphore};
use tracing::debug;

use super::fourlw;
use super::jute::Reader;
use super::proto::{ConnectRequest, Request};
use super::server::{Input, Outbound};
use super::session::ConnId;
use super::state::Msg;

/// What every connection task shares.
pub struct Shared {
    pub tx: Sender<Msg>,
    /// `jute.maxbuffer`.
    pub max_request_bytes: usize,
    pub max_outstanding: usize,
    pub max_outstanding_bytes: usize,
    /// Request bytes in flight over all connections (`global_outstanding_request_bytes`
    /// permits).
    pub global_outstanding: Arc<Semaphore>,
    pub max_outbound_bytes: usize,
    pub handshake_timeout: Duration,
    /// A write that makes no progress for this long closes the connection.
    pub write_stall_timeout: Duration,
}

/// The state thread's end of a connection's outbound queue. The queue is a channel
/// (the state thread never blocks on a client) whose queued bytes are counted: a push
/// that would take them past the limit is refused and the connection is told to close
/// at once, dropping what it had queued.
#[derive(Debug)]
pub struct Outlet {
    tx: mpsc::UnboundedSender<Outbound>,
    queued: Arc<AtomicUsize>,
    kill: Arc<Notify>,
    max: usize,
}

impl Outlet {
    /// Queues `out`; false (and the connection is being closed) if over the limit.
    pub fn push(&self, out: Outbound) -> bool {
        let n = match &out {
            Outbound::Response(f) | Outbound::Notification(f) => f.len(),
            Outbound::Close | Outbound::Abort => 0,
        };
        let before = self.queued.fetch_add(n, Ordering::SeqCst);
        if before + n > self.max {
            self.kill.notify_one();
            return false;
        }
        let _ = self.tx.send(out);
        true
    }

    /// Closes the connection now, dropping what is queued.
    pub fn abort(&self) {
        self.kill.notify_one();
    }

    /// Bytes queued and not yet written to the socket.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::SeqCst)
    }
}

/// The connection task's end.
struct Inlet {
    rx: mpsc::UnboundedReceiver<Outbound>,
    queued: Arc<AtomicUsize>,
    kill: Arc<Notify>,
}

fn outbound_queue(max: usize) -> (Outlet, Inlet) {
    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    let kill = Arc::new(Notify::new());
    (
        Outlet {
            tx,
            queued: queued.clone(),
            kill: kill.clone(),
            max,
        },
        Inlet { rx, queued, kill },
    )
}

/// Writes `buf`, failing if the peer accepts no byte for `stall` or the connection is
/// killed meanwhile.
async fn write_bounded(
    wr: &mut OwnedWriteHalf,
    buf: &[u8],
    stall: Duration,
    kill: &Notify,
) -> anyhow::Result<()> {
    let mut pos = 0;
    while pos < buf.len() {
        tokio::select! {
            r = tokio::time::timeout(stall, wr.write(&buf[pos..])) => match r {
                Err(_) => bail!("the client accepted no bytes for {stall:?}; closing"),
                Ok(Ok(0)) => bail!("the socket accepts no more bytes"),
                Ok(Ok(n)) => pos += n,
                Ok(Err(e)) => return Err(e.into()),
            },
            _ = kill.notified() => bail!(OVERFLOW),
        }
    }
    Ok(())
}

const OVERFLOW: &str =
    "the client does not read its replies (outbound queue over connection_outbound_max_bytes)";

pub async fn serve(stream: TcpStream, conn: ConnId, peer: SocketAddr, shared: Arc<Shared>) {
    match serve_inner(stream, conn, peer, &shared).await {
        Ok(()) => debug!(%peer, "connection closed"),
        Err(e) => debug!(%peer, "connection closed: {e:#}"),
    }
    let _ = shared.tx.send(Msg::Input(Input::Disconnected { conn }));
}

/// Reads until `buf` holds at least `n` bytes. Returns false on end of stream.
async fn fill(rd: &mut OwnedReadHalf, buf: &mut BytesMut, n: usize) -> std::io::Result<bool> {
    while buf.len() < n {
        buf.reserve(n - buf.len());
        if rd.read_buf(buf).await? == 0 {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The smallest read buffer, and the step by which it grows towards a frame's size.
const MIN_READ_BUFFER: usize = 64 * 1024;

/// Gives `buf` spare capacity for the next read, never past what the frame being read
/// still lacks (or [`MIN_READ_BUFFER`] between frames), and at most doubling what has
/// arrived: memory follows the bytes a client sends, not the length its header claims,
/// and never the doubling `BytesMut::reserve` would do on a buffer a frame was split
/// off (which grew pipelining connections to 8 MiB each).
fn make_room(buf: &mut BytesMut, max_request_bytes: usize) -> anyhow::Result<()> {
    let spare = buf.capacity() - buf.len();
    let frame_end = frame_len(buf, max_request_bytes)?.map_or(4, |len| 4 + len);
    let missing = frame_end.saturating_sub(buf.len());
    if spare >= missing.clamp(1, 4096) {
        return Ok(());
    }
    let target = frame_end.min((2 * buf.len()).max(MIN_READ_BUFFER));
    let capacity = target.max(buf.len() + 4096);
    let mut fresh = BytesMut::with_capacity(capacity);
    fresh.extend_from_slice(buf);
    *buf = fresh;
    Ok(())
}

fn frame_len(buf: &[u8], max: usize) -> anyhow::Result<Option<usize>> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if len < 0 || len as usize > max {
        bail!("frame length {len} is negative or above max_request_bytes ({max})");
    }
    Ok(Some(len as usize))
}

async fn serve_inner(
    stream: TcpStream,
    conn: ConnId,
    peer: SocketAddr,
    shared: &Shared,
) -> anyhow::Result<()> {
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let mut buf = BytesMut::with_capacity(8192);

    // Handshake: a four-letter word or a ConnectRequest, within the timeout.
    let handshake = async {
        if !fill(&mut rd, &mut buf, 4).await? {
            return Ok::<_, anyhow::Error>(None);
        }
        let first = [buf[0], buf[1], buf[2], buf[3]];
        if let Some(cmd) = fourlw::command(first) {
            return Ok(Some(Err(cmd)));
        }
        let len = frame_len(&buf, shared.max_request_bytes)?.unwrap_or(0);
        if !fill(&mut rd, &mut buf, 4 + len).await? {
            return Ok(None);
        }
        let req = ConnectRequest::decode(&buf[4..4 + len])
            .map_err(|e| anyhow::anyhow!("bad connect request: {e}"))?;
        buf.advance(4 + len);
        Ok(Some(Ok(req)))
    };
    let req = match tokio::time::timeout(shared.handshake_timeout, handshake).await {
        Err(_) => bail!("no handshake within {:?}", shared.handshake_timeout),
        Ok(r) => match r? {
            None => return Ok(()),
            Some(Err(cmd)) => {
                let (reply, answer) = oneshot::channel();
                shared.tx.send(Msg::FourLetter {
                    cmd: cmd.to_string(),
                    peer: peer.to_string(),
                    reply,
                })?;
                let text = answer.await?;
                tokio::time::timeout(shared.write_stall_timeout, async {
                    wr.write_all(text.as_bytes()).await?;
                    wr.shutdown().await
                })
                .await
                .map_err(|_| {
                    anyhow::anyhow!("the client does not read the four-letter answer")
                })??;
                return Ok(());
            }
            Some(Ok(req)) => req,
        },
    };

    let (outlet, inlet) = outbound_queue(shared.max_outbound_bytes);
    let Inlet {
        rx: mut out_rx,
        queued,
        kill,
    } = inlet;
    shared.tx.send(Msg::Register { conn, outlet })?;
    shared.tx.send(Msg::Input(Input::Connect {
        conn,
        addr: peer.to_string(),
        req,
    }))?;
    // The connect response counts as one outstanding reply (of no request bytes). Each
    // request holds its bytes of the global pool until its reply is taken.
    let mut inflight: VecDeque<(usize, Option<OwnedSemaphorePermit>)> = VecDeque::from([(0, None)]);
    let mut inflight_bytes: usize = 0;
    // A frame waiting for the global pool, and the permit once granted.
    let mut need_global: Option<usize> = None;
    let mut granted: Option<OwnedSemaphorePermit> = None;
    let mut out_buf: Vec<u8> = Vec::with_capacity(8192);
    loop {
        // Hand every complete frame to the state machine, within the in-flight limits
        // (one request always goes, whatever its size).
        while inflight.len() < shared.max_outstanding {
            let Some(len) = frame_len(&buf, shared.max_request_bytes)? else {
                break;
            };
            if !inflight.is_empty() && inflight_bytes + len > shared.max_outstanding_bytes {
                break;
            }
            if buf.len() < 4 + len {
                break;
            }
            let permit = match granted.take() {
                Some(p) => p,
                None => match shared
                    .global_outstanding
                    .clone()
                    .try_acquire_many_owned(len as u32)
                {
                    Ok(p) => p,
                    Err(_) => {
                        need_global = Some(len);
                        break;
                    }
                },
            };
            need_global = None;
            let frame = buf.split_to(4 + len);
            let mut r = Reader::new(&frame[4..]);
            let (Ok(xid), Ok(op)) = (r.read_i32(), r.read_i32()) else {
                bail!("request shorter than its header");
            };
            let req = Request::decode(op, r.rest());
            shared
                .tx
                .send(Msg::Input(Input::Request { conn, xid, req }))?;
            inflight.push_back((len, Some(permit)));
            inflight_bytes += len;
        }
        // Read only while there is room for another request and no complete frame is
        // waiting for one: what is buffered stays below one frame (jute.maxbuffer) plus
        // a read.
        let waiting = matches!(frame_len(&buf, shared.max_request_bytes), Ok(Some(len)) if buf.len() >= 4 + len);
        let can_read = inflight.len() < shared.max_outstanding && !waiting;
        if can_read {
            make_room(&mut buf, shared.max_request_bytes)?;
        }
        let global = shared.global_outstanding.clone();
        let want = need_global.unwrap_or(0) as u32;
        tokio::select! {
            _ = kill.notified() => bail!(OVERFLOW),
            p = global.acquire_many_owned(want), if need_global.is_some() => {
                // The semaphore is never closed.
                granted = p.ok();
            }
            r = rd.read_buf(&mut buf), if can_read => {
                if r? == 0 {
                    return Ok(());
                }
            }
            out = out_rx.recv() => {
                let Some(first) = out else { return Ok(()) };
                let mut next = Some(first);
                let mut close = false;
                while let Some(o) = next {
                    match o {
                        Outbound::Response(f) => {
                            if let Some((n, _permit)) = inflight.pop_front() {
                                inflight_bytes -= n;
                            }
                            out_buf.extend_from_slice(&f);
                        }
                        Outbound::Notification(f) => out_buf.extend_from_slice(&f),
                        Outbound::Close => {
                            close = true;
                            break;
                        }
                        Outbound::Abort => bail!(OVERFLOW),
                    }
                    next = out_rx.try_recv().ok();
                }
                if !out_buf.is_empty() {
                    write_bounded(&mut wr, &out_buf, shared.write_stall_timeout, &kill).await?;
                    queued.fetch_sub(out_buf.len(), Ordering::SeqCst);
                    out_buf.clear();
                }
                if close {
                    let _ = wr.shutdown().await;
                    return Ok(());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(len: usize) -> BytesMut {
        BytesMut::from(&(len as i32).to_be_bytes()[..])
    }

    #[test]
    fn read_buffer_grows_with_the_bytes_that_arrive_up_to_the_frame() {
        let max = 1 << 20;
        let mut buf = header(max);
        make_room(&mut buf, max).unwrap();
        assert_eq!(
            buf.capacity(),
            MIN_READ_BUFFER,
            "a claimed 1 MiB reserves 64 KiB"
        );
        // Fill what is there; each step at most doubles, never past the frame's end.
        while buf.len() < 4 + max {
            let fill = (buf.capacity() - buf.len()).min(4 + max - buf.len());
            buf.extend_from_slice(&vec![0u8; fill]);
            let before = buf.len();
            make_room(&mut buf, max).unwrap();
            if buf.len() < 4 + max {
                assert!(buf.capacity() <= (2 * before).max(MIN_READ_BUFFER));
                assert!(
                    buf.capacity() <= 4 + max + 4096,
                    "at most a read past the frame"
                );
                assert!(buf.capacity() > before, "room for the next read");
            }
        }
        assert_eq!(buf.len(), 4 + max);
    }

    #[test]
    fn a_split_off_frame_does_not_make_the_rest_double() {
        let max = 1 << 20;
        let mut buf = header(max);
        buf.extend_from_slice(&vec![7u8; max]);
        buf.extend_from_slice(&header(max)); // the next frame's header
        let frame = buf.split_to(4 + max);
        make_room(&mut buf, max).unwrap();
        assert!(buf.capacity() - buf.len() > 0);
        assert!(buf.capacity() <= 4 + max, "capacity {}", buf.capacity());
        drop(frame);
    }

    #[test]
    fn an_oversized_claim_is_refused() {
        let mut buf = header(2 << 20);
        assert!(make_room(&mut buf, 1 << 20).is_err());
    }
}
