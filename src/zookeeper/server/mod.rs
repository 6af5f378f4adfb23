//! The state machine: sessions, the tree and watches, driven one input at a time.
//!
//! [`Core`] is pure logic: it is handed inputs and the current time and leaves behind
//! txns to log ([`Core::take_txns`]) and frames to send ([`Core::take_outbox`]). The owner
//! (see `state.rs`) must make the txns durable *before* it sends the frames: that is what
//! makes every acknowledged write (and every read that saw it) survive a crash.
//!
//! This file holds the core's state, connections, sessions and request routing;
//! `reads.rs` serves reads and sets watches, `writes.rs` prepares, charges and applies
//! writes; `tests.rs` drives the core with inputs and a clock, no sockets.

use std::collections::HashMap;

use rand::RngCore;
use tracing::{info, warn};

use super::acl;
use super::jute::Writer;
use super::prep::{self, Caller};
use super::proto::{
    encode_connect_response, encode_notification, encode_reply, op, perms, Acl, Code,
    ConnectRequest, EventType, Id, MultiOp, ReadOp, Request, SetWatches, Stat, PING_XID,
};
use super::session::{ConnId, SessionTable};
use super::tree::{Change, DataTree, Undo};
use super::txn::{self, Txn, TxnHeader};
use super::watch::{Notification, WatchManager, WatcherType};

mod reads;
mod writes;

/// The time, as the owner of the core sees it.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    /// Monotonic milliseconds (session expiry).
    pub mono: u64,
    /// Wall-clock milliseconds since the epoch (ctime/mtime).
    pub wall: i64,
}

/// Server-wide knobs the core needs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub min_session_timeout: i32,
    pub max_session_timeout: i32,
    pub enforce_acl: bool,
    /// The largest txn record a request may produce (`Config::max_txn_bytes`): a write
    /// that would produce more fails with BADARGUMENTS and changes nothing, so no record
    /// ever exceeds what recovery reads.
    pub max_txn_bytes: usize,
    /// The largest reply frame (`max_reply_bytes`). A client drops a larger
    /// packet and closes the connection ("Packet len is out of range"); the server closes
    /// it instead of building the reply.
    pub max_reply_bytes: usize,
    /// Bytes the core may queue for one connection within one batch
    /// (`connection_outbound_max_bytes`); past it the connection is aborted. The owner
    /// bounds what is queued across batches the same way.
    pub max_outbound_bytes: usize,
    /// Bytes of watched paths per connection; past it the connection is closed.
    pub max_watch_bytes: usize,
    /// Distinct auth ids per connection; one more fails the addauth (and closes).
    pub max_auth_ids: usize,
    /// `zookeeper.DigestAuthenticationProvider.superDigest`.
    pub super_digest: Option<String>,
}

/// Why a read produced no normal reply.
enum ReadFail {
    Code(Code),
    /// The reply would pass `max_reply_bytes` (at least this many bytes).
    TooLarge(usize),
    /// The watch would take the connection past `max_watch_bytes`.
    WatchLimit,
}

impl From<Code> for ReadFail {
    fn from(c: Code) -> Self {
        ReadFail::Code(c)
    }
}

/// What a connection task sends in.
#[derive(Debug)]
pub enum Input {
    Connect {
        conn: ConnId,
        addr: String,
        req: ConnectRequest,
    },
    Request {
        conn: ConnId,
        xid: i32,
        req: Request,
    },
    Disconnected {
        conn: ConnId,
    },
}

/// What goes back to a connection task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outbound {
    /// The reply to one request (releases one outstanding-request slot).
    Response(Vec<u8>),
    /// A watch notification.
    Notification(Vec<u8>),
    /// Close the connection once everything before this is written.
    Close,
    /// Close the connection now, dropping whatever is still queued for it (a client
    /// that does not read its replies).
    Abort,
}

#[derive(Debug)]
struct Conn {
    session: Option<i64>,
    addr: String,
    auth: Vec<Id>,
    received: u64,
    sent: u64,
    last_zxid: i64,
}

/// The result body of one successful write op.
enum OpResult {
    Create { op: i32, path: String, stat: Stat },
    Delete,
    SetData(Stat),
    Check,
}

/// Counters for the four-letter words.
#[derive(Debug, Default, Clone)]
pub struct Counters {
    pub received: u64,
    pub sent: u64,
}

pub struct Core {
    settings: Settings,
    tree: DataTree,
    sessions: SessionTable,
    watches: WatchManager,
    conns: HashMap<ConnId, Conn>,
    zxid: i64,
    txns: Vec<(TxnHeader, Txn)>,
    outbox: Vec<(ConnId, Outbound)>,
    /// Bytes in `outbox` per connection.
    outbox_bytes: HashMap<ConnId, usize>,
    /// Session passwords. The OS random source in the server (`state::recover`): a
    /// password is all that stands between a stranger and someone else's session
    /// (ephemerals, watches and `addauth` identities), so it must not be predictable.
    rng: Box<dyn RngCore + Send>,
    counters: Counters,
}

impl Core {
    /// A core over a recovered tree and session table whose last txn was `zxid`.
    pub fn new(
        settings: Settings,
        tree: DataTree,
        sessions: SessionTable,
        zxid: i64,
        rng: Box<dyn RngCore + Send>,
    ) -> Core {
        Core {
            settings,
            tree,
            sessions,
            watches: WatchManager::new(),
            conns: HashMap::new(),
            zxid,
            txns: Vec::new(),
            outbox: Vec::new(),
            outbox_bytes: HashMap::new(),
            rng,
            counters: Counters::default(),
        }
    }

    pub fn zxid(&self) -> i64 {
        self.zxid
    }

    pub fn tree(&self) -> &DataTree {
        &self.tree
    }

    pub fn sessions(&self) -> &SessionTable {
        &self.sessions
    }

    pub fn watch_count(&self) -> usize {
        self.watches.count()
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Per connection: (address, session, packets received, packets sent, last zxid).
    pub fn connections(&self) -> Vec<(String, Option<i64>, u64, u64, i64)> {
        let mut v: Vec<_> = self
            .conns
            .values()
            .map(|c| (c.addr.clone(), c.session, c.received, c.sent, c.last_zxid))
            .collect();
        v.sort();
        v
    }

    /// Txns produced since the last call, in zxid order: log them durably before sending
    /// the outbox.
    pub fn take_txns(&mut self) -> Vec<(TxnHeader, Txn)> {
        std::mem::take(&mut self.txns)
    }

    /// Frames to send, in order.
    pub fn take_outbox(&mut self) -> Vec<(ConnId, Outbound)> {
        self.outbox_bytes.clear();
        std::mem::take(&mut self.outbox)
    }

    fn send(&mut self, conn: ConnId, out: Outbound) {
        if let Outbound::Response(f) | Outbound::Notification(f) = &out {
            let queued = self.outbox_bytes.entry(conn).or_default();
            *queued += f.len();
            if *queued > self.settings.max_outbound_bytes {
                let queued = *queued;
                self.abort_conn(conn, queued);
                return;
            }
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            if !matches!(out, Outbound::Close) {
                c.sent += 1;
                self.counters.sent += 1;
            }
        }
        self.outbox.push((conn, out));
    }

    fn reply(&mut self, conn: ConnId, xid: i32, err: i32, body: &[u8]) {
        if REPLY_HEADER_LEN + body.len() > self.settings.max_reply_bytes {
            self.refuse_reply(conn, xid, REPLY_HEADER_LEN + body.len());
            return;
        }
        let zxid = self.zxid;
        if let Some(c) = self.conns.get_mut(&conn) {
            c.last_zxid = zxid;
        }
        self.send(conn, Outbound::Response(encode_reply(xid, zxid, err, body)));
    }

    /// A reply too large to send: the connection is closed, as the client would do on
    /// receiving it.
    fn refuse_reply(&mut self, conn: ConnId, xid: i32, len: usize) {
        warn!(
            conn,
            xid,
            len,
            max = self.settings.max_reply_bytes,
            "reply larger than jute.maxbuffer; closing the connection"
        );
        self.close_conn(conn);
    }

    /// Whether `conn` may register watches on `extra` more bytes of paths.
    fn may_watch(&self, conn: ConnId, extra: usize) -> bool {
        self.watches.conn_bytes(conn).saturating_add(extra) <= self.settings.max_watch_bytes
    }

    fn watch_limit(&mut self, conn: ConnId) {
        warn!(
            conn,
            watched = self.watches.conn_bytes(conn),
            max = self.settings.max_watch_bytes,
            "connection watches too many paths (max_watch_bytes_per_connection); closing it"
        );
        self.close_conn(conn);
    }

    /// Drops a connection that lets its replies pile up: what is queued for it goes, and
    /// so do its watches; its session lives on until it expires, as after a disconnect.
    fn abort_conn(&mut self, conn: ConnId, queued: usize) {
        warn!(
            conn,
            queued,
            max = self.settings.max_outbound_bytes,
            "client does not read its replies: outbound queue full; disconnecting it"
        );
        self.outbox.retain(|(c, _)| *c != conn);
        self.outbox_bytes.remove(&conn);
        self.forget_conn(conn);
        self.outbox.push((conn, Outbound::Abort));
    }

    /// Removes a connection's watches and detaches it from its session.
    fn forget_conn(&mut self, conn: ConnId) {
        self.watches.remove_conn(conn);
        if let Some(c) = self.conns.remove(&conn) {
            if let Some(s) = c.session.and_then(|sid| self.sessions.get_mut(sid)) {
                if s.conn == Some(conn) {
                    s.conn = None;
                }
            }
        }
    }

    fn close_conn(&mut self, conn: ConnId) {
        self.watches.remove_conn(conn);
        if let Some(c) = self.conns.remove(&conn) {
            if let Some(sid) = c.session {
                if let Some(s) = self.sessions.get_mut(sid) {
                    if s.conn == Some(conn) {
                        s.conn = None;
                    }
                }
            }
        }
        self.outbox.push((conn, Outbound::Close));
    }

    /// Records a txn with the next zxid and returns its header.
    fn next_header(&mut self, session_id: i64, cxid: i32, now: Now) -> TxnHeader {
        self.zxid += 1;
        TxnHeader {
            session_id,
            cxid,
            zxid: self.zxid,
            time: now.wall,
        }
    }

    /// Sends the watch events `changes` cause. Each goes only to a watcher whose
    /// connection may READ the node the event names (for a child event, the parent), as
    /// ZooKeeper does since CVE-2024-23944 (`ServerCnxn.process(event, znodeAcl)`): a
    /// persistent recursive watch on `/` must not reveal paths under protected nodes.
    /// `undo` holds the nodes the same txn deleted, for their ACLs.
    fn notify(&mut self, changes: &[Change], undo: &[Undo]) {
        let mut notes: Vec<Notification> = Vec::new();
        for c in changes {
            self.watches.on_change(c, &mut notes);
        }
        if notes.is_empty() {
            return;
        }
        let deleted: HashMap<&str, &[Acl]> = undo
            .iter()
            .filter_map(|u| match u {
                Undo::Deleted { path, node, .. } => Some((path.as_str(), node.acl.as_slice())),
                _ => None,
            })
            .collect();
        for n in notes {
            if self.settings.enforce_acl {
                // A deleted node's ACL as it was; otherwise the node's current one.
                let acl = match (n.event, deleted.get(n.path.as_str())) {
                    (EventType::NodeDeleted, Some(a)) => Some(*a),
                    (_, d) => self
                        .tree
                        .get(&n.path)
                        .map(|x| x.acl.as_slice())
                        .or(d.copied()),
                };
                let auth = self.conns.get(&n.conn).map(|c| c.auth.as_slice());
                let allowed = match (acl, auth) {
                    (Some(acl), Some(auth)) => acl::check(acl, perms::READ, auth).is_ok(),
                    (None, Some(_)) => true,
                    (_, None) => false,
                };
                if !allowed {
                    continue;
                }
            }
            let frame = encode_notification(n.event, &n.path);
            self.send(n.conn, Outbound::Notification(frame));
        }
    }

    pub fn handle(&mut self, input: Input, now: Now) {
        self.sessions.set_now(now.mono);
        match input {
            Input::Connect { conn, addr, req } => self.connect(conn, addr, req, now),
            Input::Request { conn, xid, req } => self.request(conn, xid, req, now),
            Input::Disconnected { conn } => self.forget_conn(conn),
        }
    }

    fn connect(&mut self, conn: ConnId, addr: String, req: ConnectRequest, now: Now) {
        self.counters.received += 1;
        if req.last_zxid_seen > self.zxid {
            info!(
                client = %addr,
                "refusing session request: client has seen zxid {:#x}, our last zxid is {:#x}",
                req.last_zxid_seen,
                self.zxid
            );
            self.outbox.push((conn, Outbound::Close));
            return;
        }
        let timeout = req.timeout.clamp(
            self.settings.min_session_timeout,
            self.settings.max_session_timeout,
        );
        let ip = addr
            .rsplit_once(':')
            .map(|(h, _)| h.trim_matches(|c| c == '[' || c == ']').to_string())
            .unwrap_or_default();
        self.conns.insert(
            conn,
            Conn {
                session: None,
                addr: addr.clone(),
                auth: vec![Id {
                    scheme: "ip".into(),
                    id: ip,
                }],
                received: 1,
                sent: 0,
                last_zxid: self.zxid,
            },
        );
        if req.session_id == 0 {
            let id = self.sessions.allocate_id();
            let mut password = vec![0u8; 16];
            if let Err(err) = self.rng.try_fill_bytes(&mut password[..]) {
                // No password that is not guessable: no session.
                warn!(client = %addr, error = %err, "the OS random source failed; refusing the session");
                self.close_conn(conn);
                return;
            }
            let hdr = self.next_header(id, 0, now);
            let txn = Txn::CreateSession {
                timeout,
                password: password.clone(),
            };
            let _ = txn::apply(
                &mut self.tree,
                &mut self.sessions,
                &hdr,
                &txn,
                &mut Vec::new(),
                &mut Vec::new(),
            );
            self.txns.push((hdr, txn));
            self.sessions.touch(id, now.mono, None);
            self.attach(conn, id);
            info!(session = format!("{id:#x}"), timeout, client = %addr, "session created");
            self.send(
                conn,
                Outbound::Response(encode_connect_response(timeout, id, &password)),
            );
            return;
        }
        let id = req.session_id;
        let valid = self
            .sessions
            .get(id)
            .is_some_and(|s| s.password == req.password && s.expires_at != u64::MAX);
        if !valid {
            info!(
                session = format!("{id:#x}"),
                client = %addr,
                "invalid session on reconnect, probably expired"
            );
            self.send(
                conn,
                Outbound::Response(encode_connect_response(0, 0, &[0u8; 16])),
            );
            self.close_conn(conn);
            return;
        }
        // A session has one connection: the previous one (if still open) is closed.
        if let Some(old) = self.sessions.get(id).and_then(|s| s.conn) {
            if old != conn {
                self.close_conn(old);
            }
        }
        self.sessions.touch(id, now.mono, Some(timeout));
        self.attach(conn, id);
        let password = self
            .sessions
            .get(id)
            .map(|s| s.password.clone())
            .unwrap_or_default();
        info!(session = format!("{id:#x}"), timeout, client = %addr, "session reconnected");
        self.send(
            conn,
            Outbound::Response(encode_connect_response(timeout, id, &password)),
        );
    }

    fn attach(&mut self, conn: ConnId, id: i64) {
        if let Some(s) = self.sessions.get_mut(id) {
            s.conn = Some(conn);
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            c.session = Some(id);
        }
    }

    fn request(&mut self, conn: ConnId, xid: i32, req: Request, now: Now) {
        let Some(c) = self.conns.get_mut(&conn) else {
            // The connection was closed (e.g. after closeSession); drop what it pipelined.
            return;
        };
        c.received += 1;
        self.counters.received += 1;
        let Some(sid) = c.session else {
            warn!(client = %c.addr, "request before session established; closing");
            self.close_conn(conn);
            return;
        };
        if !self.sessions.touch(sid, now.mono, None) {
            self.reply(conn, xid, Code::SessionExpired.as_i32(), &[]);
            self.close_conn(conn);
            return;
        }
        match req {
            Request::Ping => {
                let zxid = self.zxid;
                self.send(
                    conn,
                    Outbound::Response(encode_reply(PING_XID, zxid, 0, &[])),
                );
            }
            Request::Auth { scheme, auth } => self.auth(conn, xid, &scheme, &auth),
            Request::Sasl => {
                self.send(
                    conn,
                    Outbound::Response(encode_reply(xid, 0, Code::AuthFailed.as_i32(), &[])),
                );
                self.close_conn(conn);
            }
            Request::Unknown { op } => {
                warn!(op, "unknown request type; closing connection");
                self.send(
                    conn,
                    Outbound::Response(encode_reply(xid, -1, Code::Unimplemented.as_i32(), &[])),
                );
                self.close_conn(conn);
            }
            Request::Malformed { op } => {
                if Request::is_write_op(op) {
                    let hdr = self.next_header(sid, xid, now);
                    self.txns.push((
                        hdr,
                        Txn::Error {
                            code: Code::MarshallingError.as_i32(),
                        },
                    ));
                }
                self.reply(conn, xid, Code::MarshallingError.as_i32(), &[]);
            }
            Request::CloseSession => {
                self.close_session(sid, xid, now, "closed by client");
                self.reply(conn, xid, 0, &[]);
                self.close_conn(conn);
            }
            Request::Create(_)
            | Request::Delete { .. }
            | Request::SetData(_)
            | Request::SetAcl { .. }
            | Request::Multi(_)
            | Request::Reconfig => self.write(conn, sid, xid, req, now),
            Request::Check { .. } => {
                // A standalone check is not a valid request type for ZooKeeper.
                self.send(
                    conn,
                    Outbound::Response(encode_reply(xid, -1, Code::Unimplemented.as_i32(), &[])),
                );
                self.close_conn(conn);
            }
            other => self.read(conn, sid, xid, other),
        }
    }

    fn auth(&mut self, conn: ConnId, xid: i32, scheme: &str, auth: &[u8]) {
        let ip = self
            .conns
            .get(&conn)
            .and_then(|c| c.auth.iter().find(|i| i.scheme == "ip"))
            .map(|i| i.id.clone())
            .unwrap_or_default();
        match acl::authenticate(scheme, auth, &ip, self.settings.super_digest.as_deref()) {
            Some(ids) => {
                let max = self.settings.max_auth_ids;
                let full = self.conns.get_mut(&conn).is_some_and(|c| {
                    for id in ids {
                        if c.auth.contains(&id) {
                            continue;
                        }
                        // The implicit `ip` id does not count.
                        if c.auth.len() > max {
                            return true;
                        }
                        c.auth.push(id);
                    }
                    false
                });
                if full {
                    warn!(conn, max, "too many auth ids on one connection; closing it");
                    self.send(
                        conn,
                        Outbound::Response(encode_reply(xid, 0, Code::AuthFailed.as_i32(), &[])),
                    );
                    self.close_conn(conn);
                    return;
                }
                self.send(conn, Outbound::Response(encode_reply(xid, 0, 0, &[])));
            }
            None => {
                warn!(scheme, "authentication failed: no provider for scheme");
                self.send(
                    conn,
                    Outbound::Response(encode_reply(xid, 0, Code::AuthFailed.as_i32(), &[])),
                );
                self.close_conn(conn);
            }
        }
    }

    fn caller_auth(&self, conn: ConnId) -> Vec<Id> {
        self.conns
            .get(&conn)
            .map(|c| c.auth.clone())
            .unwrap_or_default()
    }

    /// Closes a session as a txn: its ephemerals go (firing their watches), then it does.
    /// The txn lists no paths: apply and replay derive them from the tree, so its size
    /// does not grow with the session's ephemerals (see [`Txn::CloseSession`]).
    fn close_session(&mut self, sid: i64, cxid: i32, now: Now, why: &str) {
        let hdr = self.next_header(sid, cxid, now);
        let txn = Txn::CloseSession { paths: Vec::new() };
        let mut changes = Vec::new();
        let mut undo = Vec::new();
        let _ = txn::apply(
            &mut self.tree,
            &mut self.sessions,
            &hdr,
            &txn,
            &mut changes,
            &mut undo,
        );
        info!(
            session = format!("{sid:#x}"),
            zxid = hdr.zxid,
            "session {why}"
        );
        self.txns.push((hdr, txn));
        self.notify(&changes, &undo);
    }

    /// Expires every session whose deadline passed, closing its connection.
    pub fn expire_sessions(&mut self, now: Now) {
        self.sessions.set_now(now.mono);
        for sid in self.sessions.take_expired(now.mono) {
            let conn = self.sessions.get(sid).and_then(|s| s.conn);
            self.close_session(sid, 0, now, "expired");
            if let Some(conn) = conn {
                self.close_conn(conn);
            }
        }
    }

    /// When the next session may expire.
    pub fn next_expiry(&self) -> Option<u64> {
        self.sessions.next_deadline()
    }

    /// Deletes containers that had children and have none left (ContainerManager).
    pub fn reap_containers(&mut self, now: Now) {
        for path in self.tree.empty_containers() {
            let hdr = self.next_header(0, 0, now);
            let mut changes = Vec::new();
            match self.tree.delete(&path, hdr.zxid, &mut changes) {
                Ok(u) => {
                    self.txns.push((hdr, Txn::Delete { path }));
                    self.notify(&changes, &[u]);
                }
                Err(_) => {
                    self.txns.push((
                        hdr,
                        Txn::Error {
                            code: Code::NotEmpty.as_i32(),
                        },
                    ));
                }
            }
        }
    }
}

/// `ReplyHeader`: xid, zxid, err (the frame length not counted).
const REPLY_HEADER_LEN: usize = 16;
/// An encoded `Stat`.
const STAT_LEN: usize = 68;

fn write_multi_result(w: &mut Writer, r: &OpResult) {
    match r {
        // ZooKeeper 3.8 answers every create inside a multi (create2 and container ones
        // too) with a plain CreateResult: the path, no stat (ZOOKEEPER-4026).
        OpResult::Create { path, .. } => {
            multi_header(w, op::CREATE, 0);
            w.write_string(path);
        }
        OpResult::Delete => multi_header(w, op::DELETE, 0),
        OpResult::SetData(stat) => {
            multi_header(w, op::SET_DATA, 0);
            stat.write(w);
        }
        OpResult::Check => multi_header(w, op::CHECK, 0),
    }
}

fn multi_header(w: &mut Writer, ty: i32, err: i32) {
    w.write_i32(ty);
    w.write_bool(false);
    w.write_i32(err);
}

fn multi_error(w: &mut Writer, err: i32) {
    multi_header(w, op::ERROR, err);
    w.write_i32(err);
}

fn multi_done(w: &mut Writer) {
    w.write_i32(-1);
    w.write_bool(true);
    w.write_i32(-1);
}

#[cfg(test)]
mod tests;
