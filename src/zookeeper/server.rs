//! The state machine: sessions, the tree and watches, driven one input at a time.
//!
//! [`Core`] is pure logic: it is handed inputs and the current time and leaves behind
//! txns to log ([`Core::take_txns`]) and frames to send ([`Core::take_outbox`]). The owner
//! (see `state.rs`) must make the txns durable *before* it sends the frames: that is what
//! makes every acknowledged write (and every read that saw it) survive a crash.

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

    fn read(&mut self, conn: ConnId, sid: i64, xid: i32, req: Request) {
        let auth = self.caller_auth(conn);
        let mut w = Writer::new();
        match self.read_op(conn, sid, req, &auth, &mut w) {
            Ok(()) => {
                let body = w.into_inner();
                self.reply(conn, xid, 0, &body);
            }
            Err(ReadFail::Code(code)) => self.reply(conn, xid, code.as_i32(), &[]),
            Err(ReadFail::TooLarge(len)) => self.refuse_reply(conn, xid, len),
            Err(ReadFail::WatchLimit) => self.watch_limit(conn),
        }
    }

    /// Serves a read (or a watch-only request) into `w`; FinalRequestProcessor's rules.
    fn read_op(
        &mut self,
        conn: ConnId,
        sid: i64,
        req: Request,
        auth: &[Id],
        w: &mut Writer,
    ) -> Result<(), ReadFail> {
        use super::proto::perms::{ADMIN, READ};
        let enforce = self.settings.enforce_acl;
        let max_reply = self.settings.max_reply_bytes;
        match req {
            Request::Exists { path, watch } => {
                if path.contains('\0') {
                    return Err(Code::BadArguments.into());
                }
                if let Some(n) = self.tree.get(&path) {
                    check_acl(enforce, &n.acl, READ, auth)?;
                }
                // The watch is set whether or not the node exists (that is the point).
                if watch {
                    if !self.may_watch(conn, path.len()) {
                        return Err(ReadFail::WatchLimit);
                    }
                    self.watches.add_data(&path, conn);
                }
                let n = self.tree.get(&path).ok_or(Code::NoNode)?;
                n.stat().write(w);
            }
            Request::GetData { path, watch } => {
                let n = self.tree.get(&path).ok_or(Code::NoNode)?;
                check_acl(enforce, &n.acl, READ, auth)?;
                w.write_buffer(n.data.as_deref());
                n.stat().write(w);
                if watch {
                    if !self.may_watch(conn, path.len()) {
                        return Err(ReadFail::WatchLimit);
                    }
                    self.watches.add_data(&path, conn);
                }
            }
            Request::GetChildren {
                path,
                watch,
                with_stat,
            } => {
                let n = self.tree.get(&path).ok_or(Code::NoNode)?;
                check_acl(enforce, &n.acl, READ, auth)?;
                // Sized before it is built: a node may have any number of children.
                let len = children_len(n);
                if REPLY_HEADER_LEN + len > max_reply {
                    return Err(ReadFail::TooLarge(REPLY_HEADER_LEN + len));
                }
                let children: Vec<&String> = n.children.iter().collect();
                w.write_string_vec(&children);
                if with_stat {
                    n.stat().write(w);
                }
                if watch {
                    if !self.may_watch(conn, path.len()) {
                        return Err(ReadFail::WatchLimit);
                    }
                    self.watches.add_child(&path, conn);
                }
            }
            Request::GetAcl { path } => {
                let n = self.tree.get(&path).ok_or(Code::NoNode)?;
                check_acl(enforce, &n.acl, READ | ADMIN, auth)?;
                if check_acl(enforce, &n.acl, ADMIN, auth).is_ok() {
                    Acl::write_vec(&n.acl, w);
                } else {
                    // Without ADMIN, digest ids are masked (`user:x`).
                    let masked: Vec<Acl> = n
                        .acl
                        .iter()
                        .map(|a| {
                            let mut a = a.clone();
                            if a.id.scheme == "digest" {
                                if let Some((user, _)) = a.id.id.split_once(':') {
                                    a.id.id = format!("{user}:x");
                                }
                            }
                            a
                        })
                        .collect();
                    Acl::write_vec(&masked, w);
                }
                n.stat().write(w);
            }
            Request::Sync { path } => w.write_string(&path),
            Request::GetAllChildrenNumber { path } => {
                let n = self.tree.get(&path).ok_or(Code::NoNode)?;
                check_acl(enforce, &n.acl, READ, auth)?;
                w.write_i32(self.tree.all_children_number(&path) as i32);
            }
            Request::GetEphemerals { prefix } => {
                let all = self.tree.ephemerals(sid);
                let p = prefix.trim();
                let list: Vec<String> = if p.is_empty() || p == "/" {
                    all
                } else {
                    all.into_iter().filter(|e| e.starts_with(&prefix)).collect()
                };
                w.write_string_vec(&list);
            }
            Request::WhoAmI => {
                w.write_i32(auth.len() as i32);
                for id in auth {
                    w.write_string(&id.scheme);
                    w.write_string(&id.id);
                }
            }
            Request::SetWatches(sw) => {
                let lists = [&sw.data, &sw.exist, &sw.child];
                let mut bytes: usize = lists.iter().flat_map(|l| l.iter()).map(String::len).sum();
                bytes += [&sw.persistent, &sw.persistent_recursive]
                    .iter()
                    .flat_map(|l| l.iter())
                    .map(|p| 2 * p.len())
                    .sum::<usize>();
                if !self.may_watch(conn, bytes) {
                    return Err(ReadFail::WatchLimit);
                }
                self.set_watches(conn, sw)
            }
            Request::AddWatch { path, mode } => {
                let recursive = match mode {
                    0 => false,
                    1 => true,
                    _ => return Err(Code::MarshallingError.into()),
                };
                if !self.may_watch(conn, 2 * path.len()) {
                    return Err(ReadFail::WatchLimit);
                }
                self.watches.add_persistent(&path, conn, recursive);
                w.write_i32(0);
            }
            Request::CheckWatches { path, kind } => {
                let t = WatcherType::from_i32(kind).ok_or(Code::MarshallingError)?;
                if !self.watches.contains(&path, conn, t) {
                    return Err(Code::NoWatcher.into());
                }
            }
            Request::RemoveWatches { path, kind } => {
                let t = WatcherType::from_i32(kind).ok_or(Code::MarshallingError)?;
                if !self.watches.remove(&path, conn, t) {
                    return Err(Code::NoWatcher.into());
                }
            }
            Request::MultiRead(ops) => {
                // A multiRead of many large reads could build a reply of any size: stop
                // as soon as it passes the limit (the connection is then closed).
                for op_ in ops {
                    if REPLY_HEADER_LEN + w.len() > max_reply {
                        return Err(ReadFail::TooLarge(REPLY_HEADER_LEN + w.len()));
                    }
                    let (ty, path) = match &op_ {
                        ReadOp::GetData { path } => (op::GET_DATA, path),
                        ReadOp::GetChildren { path } => (op::GET_CHILDREN, path),
                    };
                    let Some(n) = self.tree.get(path) else {
                        multi_error(w, Code::NoNode.as_i32());
                        continue;
                    };
                    if let Err(code) = check_acl(enforce, &n.acl, READ, auth) {
                        multi_error(w, code.as_i32());
                        continue;
                    }
                    let len = if ty == op::GET_DATA {
                        4 + n.data.as_ref().map_or(0, Vec::len) + STAT_LEN
                    } else {
                        children_len(n)
                    };
                    if REPLY_HEADER_LEN + w.len() + len > max_reply {
                        return Err(ReadFail::TooLarge(REPLY_HEADER_LEN + w.len() + len));
                    }
                    multi_header(w, ty, 0);
                    if ty == op::GET_DATA {
                        w.write_buffer(n.data.as_deref());
                        n.stat().write(w);
                    } else {
                        let children: Vec<&String> = n.children.iter().collect();
                        w.write_string_vec(&children);
                    }
                }
                multi_done(w);
            }
            _ => return Err(Code::Unimplemented.into()),
        }
        Ok(())
    }

    /// `DataTree.setWatches`: re-registers a reconnecting client's watches, firing at once
    /// those whose condition changed after `relative_zxid`.
    fn set_watches(&mut self, conn: ConnId, sw: SetWatches) {
        use super::proto::EventType::*;
        let mut fire = Vec::new();
        for p in &sw.data {
            match self.tree.get(p) {
                None => fire.push((NodeDeleted, p.clone())),
                Some(n) if n.stat.mzxid > sw.relative_zxid => {
                    fire.push((NodeDataChanged, p.clone()))
                }
                Some(_) => self.watches.add_data(p, conn),
            }
        }
        for p in &sw.exist {
            match self.tree.get(p) {
                Some(_) => fire.push((NodeCreated, p.clone())),
                None => self.watches.add_data(p, conn),
            }
        }
        for p in &sw.child {
            match self.tree.get(p) {
                None => fire.push((NodeDeleted, p.clone())),
                Some(n) if n.stat.pzxid > sw.relative_zxid => {
                    fire.push((NodeChildrenChanged, p.clone()))
                }
                Some(_) => self.watches.add_child(p, conn),
            }
        }
        for p in &sw.persistent {
            self.watches.add_persistent(p, conn, false);
        }
        for p in &sw.persistent_recursive {
            self.watches.add_persistent(p, conn, true);
        }
        let auth = self.caller_auth(conn);
        for (event, p) in fire {
            // The same READ check as for live events (a deleted node has no ACL left).
            let denied = self.settings.enforce_acl
                && self
                    .tree
                    .get(&p)
                    .is_some_and(|n| acl::check(&n.acl, perms::READ, &auth).is_err());
            if !denied {
                self.send(conn, Outbound::Notification(encode_notification(event, &p)));
            }
        }
    }

    /// Preps and applies one write op; on success returns its txn and result.
    fn exec(
        &mut self,
        hdr: &TxnHeader,
        caller: &Caller,
        op_: &MultiOp,
        changes: &mut Vec<Change>,
        undo: &mut Vec<Undo>,
        txn_bytes: &mut usize,
    ) -> Result<(Txn, OpResult), Code> {
        let txn = match op_ {
            MultiOp::Create(c) => prep::create(&self.tree, caller, c)?,
            MultiOp::Delete { path, version } => prep::delete(&self.tree, caller, path, *version)?,
            MultiOp::SetData(s) => prep::set_data(&self.tree, caller, &s.path, &s.data, s.version)?,
            MultiOp::Check { path, version } => prep::check(&self.tree, caller, path, *version)?,
        };
        self.charge(txn_bytes, &txn)?;
        txn::apply(&mut self.tree, &mut self.sessions, hdr, &txn, changes, undo)?;
        let stat_of = |tree: &DataTree, p: &str| tree.get(p).map(|n| n.stat()).unwrap_or_default();
        let result = match (&txn, op_) {
            (Txn::Create { path, .. }, MultiOp::Create(c)) => OpResult::Create {
                op: c.op,
                path: path.clone(),
                stat: stat_of(&self.tree, path),
            },
            (Txn::Delete { .. }, _) => OpResult::Delete,
            (Txn::SetData { path, .. }, _) => OpResult::SetData(stat_of(&self.tree, path)),
            _ => OpResult::Check,
        };
        Ok((txn, result))
    }

    /// Adds `txn` to the size of the record being prepared; fails if it would pass
    /// `max_txn_bytes` (an `auth` ACL expands to every id of the caller, a sequential
    /// create adds a suffix: a request within jute.maxbuffer can still make a bigger txn).
    fn charge(&self, txn_bytes: &mut usize, txn: &Txn) -> Result<(), Code> {
        *txn_bytes = txn_bytes.saturating_add(txn.encoded_len());
        if *txn_bytes > self.settings.max_txn_bytes {
            warn!(
                bytes = *txn_bytes,
                max = self.settings.max_txn_bytes,
                "write refused: its txn would exceed the txn size limit"
            );
            return Err(Code::BadArguments);
        }
        Ok(())
    }

    fn write(&mut self, conn: ConnId, sid: i64, xid: i32, req: Request, now: Now) {
        let hdr = self.next_header(sid, xid, now);
        let auth = self.caller_auth(conn);
        let caller = Caller {
            session_id: sid,
            auth: &auth,
            enforce_acl: self.settings.enforce_acl,
        };
        let mut changes = Vec::new();
        let mut undo = Vec::new();
        let mut w = Writer::new();
        // The record header and a multi's type and count.
        let mut txn_bytes = txn::RECORD_HEADER_LEN + 8;
        let (txn, err) = match req {
            Request::Multi(ops) => {
                let mut txns = Vec::new();
                let mut results = Vec::new();
                let mut failed = None;
                for (i, o) in ops.iter().enumerate() {
                    match self.exec(&hdr, &caller, o, &mut changes, &mut undo, &mut txn_bytes) {
                        Ok((t, r)) => {
                            txns.push(t);
                            results.push(r);
                        }
                        Err(code) => {
                            failed = Some((i, code));
                            break;
                        }
                    }
                }
                match failed {
                    None => {
                        for r in &results {
                            write_multi_result(&mut w, r);
                        }
                        multi_done(&mut w);
                        (Txn::Multi(txns), 0)
                    }
                    Some((at, code)) => {
                        // All or nothing: roll back, and report OK for the ops before the
                        // failing one, its code for it, RUNTIMEINCONSISTENCY after it.
                        while let Some(u) = undo.pop() {
                            self.tree.undo(u);
                        }
                        changes.clear();
                        let mut errs = Vec::new();
                        for i in 0..ops.len() {
                            let e = match i.cmp(&at) {
                                std::cmp::Ordering::Less => 0,
                                std::cmp::Ordering::Equal => code.as_i32(),
                                std::cmp::Ordering::Greater => Code::RuntimeInconsistency.as_i32(),
                            };
                            multi_error(&mut w, e);
                            errs.push(Txn::Error { code: e });
                        }
                        multi_done(&mut w);
                        // The reply header of a failed multi still says OK.
                        (Txn::Multi(errs), 0)
                    }
                }
            }
            Request::Reconfig => (
                Txn::Error {
                    code: Code::ReconfigDisabled.as_i32(),
                },
                Code::ReconfigDisabled.as_i32(),
            ),
            Request::SetAcl { path, acl, version } => {
                match prep::set_acl(&self.tree, &caller, &path, acl.as_deref(), version)
                    .and_then(|t| self.charge(&mut txn_bytes, &t).map(|()| t))
                    .and_then(|t| {
                        txn::apply(
                            &mut self.tree,
                            &mut self.sessions,
                            &hdr,
                            &t,
                            &mut changes,
                            &mut undo,
                        )
                        .map(|()| t)
                    }) {
                    Ok(t) => {
                        if let Some(n) = self.tree.get(&path) {
                            n.stat().write(&mut w);
                        }
                        (t, 0)
                    }
                    Err(code) => (
                        Txn::Error {
                            code: code.as_i32(),
                        },
                        code.as_i32(),
                    ),
                }
            }
            single => {
                let op_ = match single {
                    Request::Create(c) => MultiOp::Create(c),
                    Request::Delete { path, version } => MultiOp::Delete { path, version },
                    Request::SetData(s) => MultiOp::SetData(s),
                    _ => MultiOp::Check {
                        path: String::new(),
                        version: -1,
                    },
                };
                match self.exec(&hdr, &caller, &op_, &mut changes, &mut undo, &mut txn_bytes) {
                    Ok((t, r)) => {
                        match r {
                            OpResult::Create { op, path, stat } => {
                                w.write_string(&path);
                                if op != op::CREATE {
                                    stat.write(&mut w);
                                }
                            }
                            OpResult::SetData(stat) => stat.write(&mut w),
                            OpResult::Delete | OpResult::Check => {}
                        }
                        (t, 0)
                    }
                    Err(code) => (
                        Txn::Error {
                            code: code.as_i32(),
                        },
                        code.as_i32(),
                    ),
                }
            }
        };
        self.txns.push((hdr, txn));
        self.notify(&changes, &undo);
        let body = if err == 0 { w.into_inner() } else { Vec::new() };
        self.reply(conn, xid, err, &body);
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

/// Encoded size of a node's children list.
fn children_len(n: &super::tree::Node) -> usize {
    4 + n.children.iter().map(|c| 4 + c.len()).sum::<usize>()
}

fn check_acl(enforce: bool, acl_: &[Acl], perm: i32, auth: &[Id]) -> Result<(), Code> {
    if enforce {
        acl::check(acl_, perm, auth)
    } else {
        Ok(())
    }
}

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
mod tests {
    use super::*;
    use crate::zookeeper::proto::{CreateRequest, EventType, SetDataRequest, NOTIFICATION_XID};

    fn settings() -> Settings {
        Settings {
            min_session_timeout: 1000,
            max_session_timeout: 10_000,
            enforce_acl: true,
            max_txn_bytes: 4096,
            max_reply_bytes: 4096,
            max_outbound_bytes: 64 * 1024,
            max_watch_bytes: 1000,
            max_auth_ids: 100,
            super_digest: None,
        }
    }

    fn now() -> Now {
        Now { mono: 0, wall: 0 }
    }

    fn core(s: Settings) -> Core {
        use rand::SeedableRng;
        let rng = rand::rngs::StdRng::seed_from_u64(7);
        Core::new(s, DataTree::new(), SessionTable::new(10), 0, Box::new(rng))
    }

    /// Connects `conn` with a new session and drops the connect response.
    fn connect(c: &mut Core, conn: ConnId) {
        c.handle(
            Input::Connect {
                conn,
                addr: format!("127.0.0.1:{}", 1000 + conn),
                req: ConnectRequest {
                    protocol_version: 0,
                    last_zxid_seen: 0,
                    timeout: 5000,
                    session_id: 0,
                    password: vec![0; 16],
                    read_only: false,
                },
            },
            now(),
        );
        c.take_outbox();
        c.take_txns();
    }

    fn req(c: &mut Core, conn: ConnId, xid: i32, req: Request) {
        c.handle(Input::Request { conn, xid, req }, now());
    }

    fn create(path: &str, data: usize, flags: i32, acl: Vec<Acl>) -> CreateRequest {
        CreateRequest {
            op: op::CREATE,
            path: path.into(),
            data: Some(vec![1; data]),
            acl: Some(acl),
            flags,
            ttl: -1,
        }
    }

    fn auth_acl() -> Vec<Acl> {
        vec![Acl {
            perms: perms::ALL,
            id: Id {
                scheme: "auth".into(),
                id: String::new(),
            },
        }]
    }

    /// (xid, err) of every reply in the outbox for `conn`; notification paths apart.
    fn replies(out: &[(ConnId, Outbound)], conn: ConnId) -> Vec<(i32, i32)> {
        out.iter()
            .filter(|(c, _)| *c == conn)
            .filter_map(|(_, o)| match o {
                Outbound::Response(f) => Some((
                    i32::from_be_bytes(f[4..8].try_into().unwrap()),
                    i32::from_be_bytes(f[16..20].try_into().unwrap()),
                )),
                _ => None,
            })
            .collect()
    }

    fn notified_paths(out: &[(ConnId, Outbound)], conn: ConnId) -> Vec<(i32, String)> {
        out.iter()
            .filter(|(c, _)| *c == conn)
            .filter_map(|(_, o)| match o {
                Outbound::Notification(f) => {
                    let mut r = super::super::jute::Reader::new(&f[4..]);
                    assert_eq!(r.read_i32().unwrap(), NOTIFICATION_XID);
                    r.read_i64().unwrap();
                    r.read_i32().unwrap();
                    let ty = r.read_i32().unwrap();
                    r.read_i32().unwrap();
                    Some((ty, r.read_string().unwrap().unwrap()))
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_write_whose_txn_would_pass_the_limit_is_refused_and_changes_nothing() {
        let mut c = core(settings());
        connect(&mut c, 1);
        // 80 digest ids: an `auth` ACL expands to all of them (~4 KiB of ACL).
        for i in 0..80 {
            let auth = format!("user{i}:pw").into_bytes();
            req(
                &mut c,
                1,
                -4,
                Request::Auth {
                    scheme: "digest".into(),
                    auth,
                },
            );
        }
        c.take_outbox();
        req(
            &mut c,
            1,
            1,
            Request::Create(create("/a", 10, 0, auth_acl())),
        );
        assert_eq!(
            replies(&c.take_outbox(), 1),
            vec![(1, Code::BadArguments.as_i32())]
        );
        let txns = c.take_txns();
        assert_eq!(txns.len(), 1);
        assert!(matches!(txns[0].1, Txn::Error { .. }), "{:?}", txns[0].1);
        assert!(c.tree().get("/a").is_none());
        // The same create with an open ACL fits.
        req(
            &mut c,
            1,
            2,
            Request::Create(create("/a", 10, 0, vec![Acl::world(31)])),
        );
        assert_eq!(replies(&c.take_outbox(), 1), vec![(2, 0)]);
        assert!(c.tree().get("/a").is_some());
    }

    #[test]
    fn a_multi_is_charged_op_by_op_and_rolled_back_when_over() {
        let mut c = core(settings());
        connect(&mut c, 1);
        let ops = (0..5)
            .map(|i| MultiOp::Create(create(&format!("/m{i}"), 1000, 0, vec![Acl::world(31)])))
            .collect();
        req(&mut c, 1, 1, Request::Multi(ops));
        let out = c.take_outbox();
        // A failed multi's header says OK; the ops carry the codes.
        assert_eq!(replies(&out, 1), vec![(1, 0)]);
        let txns = c.take_txns();
        match &txns[0].1 {
            Txn::Multi(t) => {
                assert_eq!(t.len(), 5);
                assert!(t.iter().all(|t| matches!(t, Txn::Error { .. })));
                // The fourth op passes the 4 KiB limit; the fifth is never tried.
                assert_eq!(
                    t[3],
                    Txn::Error {
                        code: Code::BadArguments.as_i32()
                    }
                );
                assert_eq!(
                    t[4],
                    Txn::Error {
                        code: Code::RuntimeInconsistency.as_i32()
                    }
                );
            }
            other => panic!("{other:?}"),
        }
        for i in 0..5 {
            assert!(c.tree().get(&format!("/m{i}")).is_none());
        }
    }

    #[test]
    fn close_session_txn_does_not_list_the_ephemerals() {
        let mut c = core(Settings {
            max_txn_bytes: 64 * 1024,
            ..settings()
        });
        connect(&mut c, 1);
        for i in 0..200 {
            let path = format!("/e{i}-{}", "x".repeat(2000));
            req(
                &mut c,
                1,
                i,
                Request::Create(create(&path, 0, 1, vec![Acl::world(31)])),
            );
            assert_eq!(replies(&c.take_outbox(), 1), vec![(i, 0)]);
        }
        assert_eq!(c.tree().ephemeral_count(), 200);
        c.take_txns();
        c.take_outbox();
        req(&mut c, 1, 999, Request::CloseSession);
        let txns = c.take_txns();
        assert_eq!(txns.len(), 1);
        assert_eq!(txns[0].1, Txn::CloseSession { paths: vec![] });
        assert!(txns[0].1.encoded_len() < 16);
        assert_eq!(c.tree().ephemeral_count(), 0);
        assert_eq!(c.tree().node_count(), DataTree::new().node_count());
    }

    #[test]
    fn replies_over_the_limit_close_the_connection_instead() {
        let mut c = core(Settings {
            max_txn_bytes: 64 * 1024,
            ..settings()
        });
        connect(&mut c, 1);
        req(
            &mut c,
            1,
            1,
            Request::Create(create("/big", 3000, 0, vec![Acl::world(31)])),
        );
        c.take_outbox();
        // One read fits; a multiRead of two does not and is never built.
        req(
            &mut c,
            1,
            2,
            Request::GetData {
                path: "/big".into(),
                watch: false,
            },
        );
        assert_eq!(replies(&c.take_outbox(), 1), vec![(2, 0)]);
        let two = vec![
            ReadOp::GetData {
                path: "/big".into(),
            },
            ReadOp::GetData {
                path: "/big".into(),
            },
        ];
        req(&mut c, 1, 3, Request::MultiRead(two));
        assert_eq!(c.take_outbox(), vec![(1, Outbound::Close)]);
        // The connection is gone: what it pipelined after is dropped.
        req(
            &mut c,
            1,
            4,
            Request::GetData {
                path: "/big".into(),
                watch: false,
            },
        );
        assert!(c.take_outbox().is_empty());
        // So does a getChildren whose list would be too long.
        connect(&mut c, 2);
        for i in 0..100 {
            let p = format!("/big/{i:040}");
            req(
                &mut c,
                2,
                i,
                Request::Create(create(&p, 0, 0, vec![Acl::world(31)])),
            );
        }
        c.take_outbox();
        req(
            &mut c,
            2,
            200,
            Request::GetChildren {
                path: "/big".into(),
                watch: false,
                with_stat: false,
            },
        );
        assert_eq!(c.take_outbox(), vec![(2, Outbound::Close)]);
    }

    #[test]
    fn what_one_connection_may_queue_in_a_batch_is_bounded() {
        let mut c = core(Settings {
            max_txn_bytes: 64 * 1024,
            max_outbound_bytes: 10_000,
            ..settings()
        });
        connect(&mut c, 1);
        connect(&mut c, 2);
        req(
            &mut c,
            1,
            1,
            Request::Create(create("/d", 3000, 0, vec![Acl::world(31)])),
        );
        c.take_outbox();
        for xid in 0..100 {
            req(
                &mut c,
                1,
                xid,
                Request::GetData {
                    path: "/d".into(),
                    watch: false,
                },
            );
        }
        req(
            &mut c,
            2,
            1,
            Request::GetData {
                path: "/d".into(),
                watch: false,
            },
        );
        let out = c.take_outbox();
        let for_1: Vec<_> = out.iter().filter(|(c, _)| *c == 1).collect();
        assert_eq!(for_1, vec![&(1, Outbound::Abort)], "queued replies dropped");
        assert_eq!(replies(&out, 2), vec![(1, 0)], "the other client is served");
        assert_eq!(c.connections().len(), 1);
    }

    fn digest(user_pw: &str) -> Request {
        Request::Auth {
            scheme: "digest".into(),
            auth: user_pw.as_bytes().to_vec(),
        }
    }

    /// The ACL list in the body of the last reply to `conn` (a getACL reply).
    fn acl_reply(out: &[(ConnId, Outbound)], conn: ConnId) -> Vec<(i32, String, String)> {
        let f = out
            .iter()
            .rev()
            .find_map(|(c, o)| match o {
                Outbound::Response(f) if *c == conn => Some(f),
                _ => None,
            })
            .expect("a reply");
        let mut r = super::super::jute::Reader::new(&f[20..]);
        let n = r.read_i32().unwrap();
        (0..n)
            .map(|_| {
                let perms = r.read_i32().unwrap();
                let scheme = r.read_string().unwrap().unwrap();
                let id = r.read_string().unwrap().unwrap();
                (perms, scheme, id)
            })
            .collect()
    }

    /// The first non-zero error among the results of the multi reply `xid`.
    fn first_multi_error(out: &[(ConnId, Outbound)], conn: ConnId, xid: i32) -> i32 {
        let f = out
            .iter()
            .find_map(|(c, o)| match o {
                Outbound::Response(f)
                    if *c == conn && i32::from_be_bytes(f[4..8].try_into().unwrap()) == xid =>
                {
                    Some(f)
                }
                _ => None,
            })
            .expect("the multi reply");
        let mut r = super::super::jute::Reader::new(&f[20..]);
        loop {
            let ty = r.read_i32().unwrap();
            let done = r.read_bool().unwrap();
            let err = r.read_i32().unwrap();
            if done {
                return 0;
            }
            if ty == op::ERROR {
                let code = r.read_i32().unwrap();
                if code != 0 {
                    return code;
                }
            } else if ty == op::SET_DATA {
                for _ in 0..STAT_LEN {
                    r.read_u8().unwrap();
                }
            } else if ty != op::CHECK {
                panic!("unexpected result type {ty} (err {err})");
            }
        }
    }

    /// What ZooKeeper-mode Kafka relies on with `zookeeper.set.acl=true`: znodes created
    /// `auth` ALL + `world` READ by the brokers' digest, and `auth` ALL alone for secrets.
    /// Every op checks what ZooKeeper 3.8 checks (CREATE / DELETE on the parent, WRITE,
    /// ADMIN, READ), inside a multi too, and the super digest passes every check.
    #[test]
    fn secured_znodes_as_kafka_creates_them() {
        let mut s = settings();
        // super:test (the example in ZooKeeper's admin guide).
        s.super_digest = Some("super:D/InIHSb7yEEbrWz8b9l71RjZJU=".into());
        let mut c = core(s);
        let (broker, stranger, other_broker, admin, wrong) = (1, 2, 3, 4, 5);
        for conn in 1..=5 {
            connect(&mut c, conn);
        }
        req(&mut c, broker, -4, digest("kafka:secret"));
        req(&mut c, other_broker, -4, digest("kafka:secret"));
        req(&mut c, admin, -4, digest("super:test"));
        req(&mut c, wrong, -4, digest("kafka:guess"));
        let secure = vec![auth_acl()[0].clone(), Acl::world(perms::READ)];
        req(
            &mut c,
            broker,
            1,
            Request::Create(create("/brokers", 1, 0, secure.clone())),
        );
        req(
            &mut c,
            broker,
            2,
            Request::Create(create("/brokers/ids", 1, 0, secure.clone())),
        );
        req(
            &mut c,
            broker,
            3,
            Request::Create(create("/brokers/ids/1", 1, 1, secure.clone())),
        );
        req(
            &mut c,
            broker,
            4,
            Request::Create(create("/users", 1, 0, auth_acl())),
        );
        assert_eq!(
            replies(&c.take_outbox(), broker),
            vec![(-4, 0), (1, 0), (2, 0), (3, 0), (4, 0)]
        );
        // `auth` became the brokers' digest id.
        req(
            &mut c,
            broker,
            5,
            Request::GetAcl {
                path: "/brokers".into(),
            },
        );
        let kafka_id = "kafka:".to_string() + &acl::base64(&acl::sha1(b"kafka:secret"));
        assert_eq!(
            acl_reply(&c.take_outbox(), broker),
            vec![
                (perms::ALL, "digest".into(), kafka_id.clone()),
                (perms::READ, "world".into(), "anyone".into())
            ]
        );

        let set = |path: &str| {
            Request::SetData(SetDataRequest {
                path: path.into(),
                data: Some(b"x".to_vec()),
                version: -1,
            })
        };
        let attempts = |c: &mut Core, conn: ConnId| -> Vec<(i32, i32)> {
            let ops = vec![
                // Reads of a world-readable znode.
                Request::GetData {
                    path: "/brokers/ids/1".into(),
                    watch: false,
                },
                Request::GetChildren {
                    path: "/brokers/ids".into(),
                    watch: true,
                    with_stat: false,
                },
                Request::Sync {
                    path: "/brokers".into(),
                },
                // Writes: WRITE on the node, CREATE / DELETE on the parent, ADMIN.
                set("/brokers/ids/1"),
                Request::Create(create("/brokers/ids/9", 1, 1, vec![Acl::world(perms::ALL)])),
                Request::Delete {
                    path: "/brokers/ids/1".into(),
                    version: -1,
                },
                Request::SetAcl {
                    path: "/brokers".into(),
                    acl: Some(vec![Acl::world(perms::ALL)]),
                    version: -1,
                },
                Request::Multi(vec![
                    MultiOp::Check {
                        path: "/brokers".into(),
                        version: 0,
                    },
                    MultiOp::SetData(SetDataRequest {
                        path: "/brokers/ids".into(),
                        data: None,
                        version: -1,
                    }),
                ]),
                // The secret: not even its existence.
                Request::GetData {
                    path: "/users".into(),
                    watch: false,
                },
                Request::Exists {
                    path: "/users".into(),
                    watch: false,
                },
                Request::GetChildren {
                    path: "/users".into(),
                    watch: false,
                    with_stat: false,
                },
                Request::GetAcl {
                    path: "/users".into(),
                },
            ];
            for (i, op_) in ops.into_iter().enumerate() {
                req(c, conn, 100 + i as i32, op_);
            }
            let out = c.take_outbox();
            replies(&out, conn)
                .into_iter()
                .filter(|(xid, _)| *xid >= 100)
                // The multi (xid 107) answers per op: its first error counts.
                .map(|(xid, err)| match xid {
                    107 => (xid, first_multi_error(&out, conn, xid)),
                    _ => (xid, err),
                })
                .collect()
        };
        let no_auth = Code::NoAuth.as_i32();
        let expected_stranger: Vec<(i32, i32)> = [
            0, 0, 0, no_auth, no_auth, no_auth, no_auth, no_auth, no_auth, no_auth, no_auth,
            no_auth,
        ]
        .into_iter()
        .enumerate()
        .map(|(i, e)| (100 + i as i32, e))
        .collect();
        assert_eq!(attempts(&mut c, stranger), expected_stranger);
        // A wrong password is just another identity.
        assert_eq!(attempts(&mut c, wrong), expected_stranger);
        // The stranger sees who may write, not the digest (no ADMIN: masked).
        req(
            &mut c,
            stranger,
            200,
            Request::GetAcl {
                path: "/brokers".into(),
            },
        );
        assert_eq!(
            acl_reply(&c.take_outbox(), stranger),
            vec![
                (perms::ALL, "digest".into(), "kafka:x".into()),
                (perms::READ, "world".into(), "anyone".into())
            ]
        );
        // An `auth` ACL without an authenticated id is INVALIDACL (before the parent's
        // CREATE check).
        req(
            &mut c,
            stranger,
            201,
            Request::Create(create("/mine", 0, 0, auth_acl())),
        );
        assert_eq!(
            replies(&c.take_outbox(), stranger),
            vec![(201, Code::InvalidAcl.as_i32())]
        );
        // Nothing changed.
        assert_eq!(
            c.tree().get("/brokers/ids/1").unwrap().data.as_deref(),
            Some(&[1u8][..])
        );
        assert!(c.tree().get("/brokers/ids/9").is_none());

        // Another session with the brokers' digest, and the super user, may do it all
        // (the delete of /brokers/ids/1 and the ACL change go last).
        let ok: Vec<(i32, i32)> = (0..12).map(|i| (100 + i, 0)).collect();
        let got = attempts(&mut c, other_broker);
        assert_eq!(got, ok);
        assert_eq!(
            c.tree().get("/brokers").unwrap().acl,
            vec![Acl::world(perms::ALL)]
        );
        req(
            &mut c,
            admin,
            300,
            Request::SetAcl {
                path: "/users".into(),
                acl: Some(vec![Acl::world(perms::READ)]),
                version: -1,
            },
        );
        req(
            &mut c,
            admin,
            301,
            Request::GetData {
                path: "/users".into(),
                watch: false,
            },
        );
        assert_eq!(replies(&c.take_outbox(), admin), vec![(300, 0), (301, 0)]);
    }

    #[test]
    fn watch_events_go_only_to_watchers_that_may_read_the_node() {
        let mut c = core(settings());
        for conn in 1..=3 {
            connect(&mut c, conn);
        }
        for conn in [1, 3] {
            req(
                &mut c,
                conn,
                -4,
                Request::Auth {
                    scheme: "digest".into(),
                    auth: b"alice:pw".to_vec(),
                },
            );
        }
        req(
            &mut c,
            1,
            1,
            Request::Create(create("/s", 0, 0, auth_acl())),
        );
        req(
            &mut c,
            1,
            2,
            Request::Create(create("/o", 0, 0, vec![Acl::world(31)])),
        );
        for conn in [2, 3] {
            req(
                &mut c,
                conn,
                1,
                Request::AddWatch {
                    path: "/".into(),
                    mode: 1,
                },
            );
        }
        // A child watch on /s by the stranger is refused with the read itself; an
        // exists watch on a path that does not exist yet is set.
        req(
            &mut c,
            2,
            2,
            Request::Exists {
                path: "/s/x".into(),
                watch: true,
            },
        );
        c.take_outbox();
        req(
            &mut c,
            1,
            3,
            Request::Create(create("/s/x", 0, 0, auth_acl())),
        );
        req(
            &mut c,
            1,
            4,
            Request::Delete {
                path: "/s/x".into(),
                version: -1,
            },
        );
        req(
            &mut c,
            1,
            5,
            Request::Create(create("/o/x", 0, 0, vec![Acl::world(31)])),
        );
        let out = c.take_outbox();
        let created = EventType::NodeCreated as i32;
        let deleted = EventType::NodeDeleted as i32;
        assert_eq!(notified_paths(&out, 2), vec![(created, "/o/x".to_string())]);
        assert_eq!(
            notified_paths(&out, 3),
            vec![
                (created, "/s/x".to_string()),
                (deleted, "/s/x".to_string()),
                (created, "/o/x".to_string())
            ]
        );
    }

    #[test]
    fn watches_and_auth_ids_per_connection_are_bounded() {
        let mut c = core(Settings {
            max_auth_ids: 3,
            ..settings()
        });
        connect(&mut c, 1);
        // exists-watches on paths that do not exist, 100 bytes each: the 11th passes
        // the 1000-byte budget and closes the connection.
        for i in 0..10 {
            let path = format!("/{i:099}");
            req(&mut c, 1, i, Request::Exists { path, watch: true });
        }
        assert!(c.take_outbox().iter().all(|(_, o)| *o != Outbound::Close));
        assert_eq!(c.watch_count(), 10);
        let path = format!("/{:099}", 10);
        req(&mut c, 1, 10, Request::Exists { path, watch: true });
        assert_eq!(c.take_outbox(), vec![(1, Outbound::Close)]);
        assert_eq!(c.watch_count(), 0, "its watches went with it");

        connect(&mut c, 2);
        for (i, user) in ["a", "b", "c", "a"].iter().enumerate() {
            let auth = format!("{user}:pw").into_bytes();
            req(
                &mut c,
                2,
                i as i32,
                Request::Auth {
                    scheme: "digest".into(),
                    auth,
                },
            );
        }
        assert_eq!(
            replies(&c.take_outbox(), 2),
            vec![(0, 0), (1, 0), (2, 0), (3, 0)]
        );
        req(
            &mut c,
            2,
            9,
            Request::Auth {
                scheme: "digest".into(),
                auth: b"d:pw".to_vec(),
            },
        );
        let out = c.take_outbox();
        assert_eq!(replies(&out, 2), vec![(9, Code::AuthFailed.as_i32())]);
        assert_eq!(out.last(), Some(&(2, Outbound::Close)));
    }
}
