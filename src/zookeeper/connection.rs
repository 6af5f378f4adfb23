//! One task per client connection: framing (4-byte big-endian length), the connect
//! handshake, four-letter words, decoding requests for the state machine and writing
//! back what it sends, in order.
//!
//! Limits: a frame larger than `max_request_bytes` (or with a negative length) closes the
//! connection, as ZooKeeper does; at most `max_outstanding_requests` requests are in
//! flight per connection (the task stops reading until replies go out); a connection
//! that does not complete its handshake in time is closed.

use std::net::SocketAddr;
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
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
    pub max_request_bytes: usize,
    pub max_outstanding: usize,
    pub handshake_timeout: Duration,
}

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
                wr.write_all(text.as_bytes()).await?;
                wr.shutdown().await?;
                return Ok(());
            }
            Some(Ok(req)) => req,
        },
    };

    let (out_tx, mut out_rx) = mpsc::unbounded_channel();
    shared.tx.send(Msg::Register { conn, tx: out_tx })?;
    shared.tx.send(Msg::Input(Input::Connect {
        conn,
        addr: peer.to_string(),
        req,
    }))?;
    // The connect response counts as one outstanding reply.
    let mut outstanding: usize = 1;
    let mut out_buf: Vec<u8> = Vec::with_capacity(8192);
    loop {
        // Hand every complete frame to the state machine, within the in-flight limit.
        while outstanding < shared.max_outstanding {
            let Some(len) = frame_len(&buf, shared.max_request_bytes)? else {
                break;
            };
            if buf.len() < 4 + len {
                break;
            }
            let frame = buf.split_to(4 + len);
            let mut r = Reader::new(&frame[4..]);
            let (Ok(xid), Ok(op)) = (r.read_i32(), r.read_i32()) else {
                bail!("request shorter than its header");
            };
            let req = Request::decode(op, r.rest());
            shared
                .tx
                .send(Msg::Input(Input::Request { conn, xid, req }))?;
            outstanding += 1;
        }
        let can_read = outstanding < shared.max_outstanding;
        tokio::select! {
            r = rd.read_buf(&mut buf), if can_read => {
                if r? == 0 {
                    return Ok(());
                }
                if buf.capacity() - buf.len() < 4096 {
                    buf.reserve(8192);
                }
            }
            out = out_rx.recv() => {
                let Some(first) = out else { return Ok(()) };
                let mut next = Some(first);
                let mut close = false;
                while let Some(o) = next {
                    match o {
                        Outbound::Response(f) => {
                            outstanding = outstanding.saturating_sub(1);
                            out_buf.extend_from_slice(&f);
                        }
                        Outbound::Notification(f) => out_buf.extend_from_slice(&f),
                        Outbound::Close => {
                            close = true;
                            break;
                        }
                    }
                    next = out_rx.try_recv().ok();
                }
                if !out_buf.is_empty() {
                    wr.write_all(&out_buf).await?;
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
