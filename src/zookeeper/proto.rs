//! The client wire protocol: op codes, error codes, and the request/response records of
//! `zookeeper.jute` this server speaks, decoded from and encoded to jute.
//!
//! Decoding is done by the connection task, so the state machine only ever sees a parsed
//! [`Request`] (or [`Request::Malformed`]).

use super::jute::{JuteError, Reader, Writer};

/// `ZooDefs.OpCode`.
pub mod op {
    pub const NOTIFICATION: i32 = 0;
    pub const CREATE: i32 = 1;
    pub const DELETE: i32 = 2;
    pub const EXISTS: i32 = 3;
    pub const GET_DATA: i32 = 4;
    pub const SET_DATA: i32 = 5;
    pub const GET_ACL: i32 = 6;
    pub const SET_ACL: i32 = 7;
    pub const GET_CHILDREN: i32 = 8;
    pub const SYNC: i32 = 9;
    pub const PING: i32 = 11;
    pub const GET_CHILDREN2: i32 = 12;
    pub const CHECK: i32 = 13;
    pub const MULTI: i32 = 14;
    pub const CREATE2: i32 = 15;
    pub const RECONFIG: i32 = 16;
    pub const CHECK_WATCHES: i32 = 17;
    pub const REMOVE_WATCHES: i32 = 18;
    pub const CREATE_CONTAINER: i32 = 19;
    pub const DELETE_CONTAINER: i32 = 20;
    pub const CREATE_TTL: i32 = 21;
    pub const MULTI_READ: i32 = 22;
    pub const AUTH: i32 = 100;
    pub const SET_WATCHES: i32 = 101;
    pub const SASL: i32 = 102;
    pub const GET_EPHEMERALS: i32 = 103;
    pub const GET_ALL_CHILDREN_NUMBER: i32 = 104;
    pub const SET_WATCHES2: i32 = 105;
    pub const ADD_WATCH: i32 = 106;
    pub const WHO_AM_I: i32 = 107;
    pub const CREATE_SESSION: i32 = -10;
    pub const CLOSE_SESSION: i32 = -11;
    pub const ERROR: i32 = -1;
}

/// Reserved xids (`ClientCnxn`).
pub const NOTIFICATION_XID: i32 = -1;
pub const PING_XID: i32 = -2;

/// `KeeperException.Code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum Code {
    Ok = 0,
    SystemError = -1,
    RuntimeInconsistency = -2,
    MarshallingError = -5,
    Unimplemented = -6,
    BadArguments = -8,
    NoNode = -101,
    NoAuth = -102,
    BadVersion = -103,
    NoChildrenForEphemerals = -108,
    NodeExists = -110,
    NotEmpty = -111,
    SessionExpired = -112,
    InvalidAcl = -114,
    AuthFailed = -115,
    NoWatcher = -121,
    ReconfigDisabled = -123,
}

impl Code {
    pub fn as_i32(self) -> i32 {
        self as i32
    }
}

/// `Watcher.Event.EventType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum EventType {
    NodeCreated = 1,
    NodeDeleted = 2,
    NodeDataChanged = 3,
    NodeChildrenChanged = 4,
}

/// `Watcher.Event.KeeperState.SyncConnected`.
pub const STATE_SYNC_CONNECTED: i32 = 3;

/// Create flags (`CreateMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateMode {
    Persistent,
    Ephemeral,
    PersistentSequential,
    EphemeralSequential,
    Container,
    PersistentWithTtl,
    PersistentSequentialWithTtl,
}

impl CreateMode {
    pub fn from_flags(flags: i32) -> Option<CreateMode> {
        Some(match flags {
            0 => CreateMode::Persistent,
            1 => CreateMode::Ephemeral,
            2 => CreateMode::PersistentSequential,
            3 => CreateMode::EphemeralSequential,
            4 => CreateMode::Container,
            5 => CreateMode::PersistentWithTtl,
            6 => CreateMode::PersistentSequentialWithTtl,
            _ => return None,
        })
    }

    pub fn is_ephemeral(self) -> bool {
        matches!(
            self,
            CreateMode::Ephemeral | CreateMode::EphemeralSequential
        )
    }

    pub fn is_sequential(self) -> bool {
        matches!(
            self,
            CreateMode::PersistentSequential
                | CreateMode::EphemeralSequential
                | CreateMode::PersistentSequentialWithTtl
        )
    }

    pub fn is_ttl(self) -> bool {
        matches!(
            self,
            CreateMode::PersistentWithTtl | CreateMode::PersistentSequentialWithTtl
        )
    }
}

/// `org.apache.zookeeper.data.Id`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Id {
    pub scheme: String,
    pub id: String,
}

/// `org.apache.zookeeper.data.ACL`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Acl {
    pub perms: i32,
    pub id: Id,
}

pub mod perms {
    pub const READ: i32 = 1;
    pub const WRITE: i32 = 2;
    pub const CREATE: i32 = 4;
    pub const DELETE: i32 = 8;
    pub const ADMIN: i32 = 16;
    pub const ALL: i32 = 31;
}

impl Acl {
    pub fn world(perms: i32) -> Acl {
        Acl {
            perms,
            id: Id {
                scheme: "world".into(),
                id: "anyone".into(),
            },
        }
    }

    pub fn read(r: &mut Reader) -> Result<Acl, JuteError> {
        let perms = r.read_i32()?;
        let scheme = r.read_string()?.unwrap_or_default();
        let id = r.read_string()?.unwrap_or_default();
        Ok(Acl {
            perms,
            id: Id { scheme, id },
        })
    }

    pub fn write(&self, w: &mut Writer) {
        w.write_i32(self.perms);
        w.write_string(&self.id.scheme);
        w.write_string(&self.id.id);
    }

    /// A vector of ACLs; `None` for the null vector.
    pub fn read_vec(r: &mut Reader) -> Result<Option<Vec<Acl>>, JuteError> {
        let Some(n) = r.read_vec_len(12)? else {
            return Ok(None);
        };
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(Acl::read(r)?);
        }
        Ok(Some(out))
    }

    pub fn write_vec(acl: &[Acl], w: &mut Writer) {
        w.write_i32(acl.len() as i32);
        for a in acl {
            a.write(w);
        }
    }
}

/// `org.apache.zookeeper.data.Stat`, as a client sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stat {
    pub czxid: i64,
    pub mzxid: i64,
    pub ctime: i64,
    pub mtime: i64,
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
    pub ephemeral_owner: i64,
    pub data_length: i32,
    pub num_children: i32,
    pub pzxid: i64,
}

impl Stat {
    pub fn write(&self, w: &mut Writer) {
        w.write_i64(self.czxid);
        w.write_i64(self.mzxid);
        w.write_i64(self.ctime);
        w.write_i64(self.mtime);
        w.write_i32(self.version);
        w.write_i32(self.cversion);
        w.write_i32(self.aversion);
        w.write_i64(self.ephemeral_owner);
        w.write_i32(self.data_length);
        w.write_i32(self.num_children);
        w.write_i64(self.pzxid);
    }

    pub fn read(r: &mut Reader) -> Result<Stat, JuteError> {
        Ok(Stat {
            czxid: r.read_i64()?,
            mzxid: r.read_i64()?,
            ctime: r.read_i64()?,
            mtime: r.read_i64()?,
            version: r.read_i32()?,
            cversion: r.read_i32()?,
            aversion: r.read_i32()?,
            ephemeral_owner: r.read_i64()?,
            data_length: r.read_i32()?,
            num_children: r.read_i32()?,
            pzxid: r.read_i64()?,
        })
    }
}

/// `ConnectRequest` (plus the trailing `readOnly` flag newer clients send).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectRequest {
    pub protocol_version: i32,
    pub last_zxid_seen: i64,
    pub timeout: i32,
    pub session_id: i64,
    pub password: Vec<u8>,
    pub read_only: bool,
}

impl ConnectRequest {
    pub fn decode(body: &[u8]) -> Result<ConnectRequest, JuteError> {
        let mut r = Reader::new(body);
        let protocol_version = r.read_i32()?;
        let last_zxid_seen = r.read_i64()?;
        let timeout = r.read_i32()?;
        let session_id = r.read_i64()?;
        let password = r.read_buffer()?.unwrap_or_default();
        // Old clients omit the flag.
        let read_only = if r.is_empty() { false } else { r.read_bool()? };
        Ok(ConnectRequest {
            protocol_version,
            last_zxid_seen,
            timeout,
            session_id,
            password,
            read_only,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::framed();
        w.write_i32(self.protocol_version);
        w.write_i64(self.last_zxid_seen);
        w.write_i32(self.timeout);
        w.write_i64(self.session_id);
        w.write_buffer(Some(&self.password));
        w.write_bool(self.read_only);
        w.finish_frame()
    }
}

/// `ConnectResponse` framed for the wire (with the `readOnly` flag, always false here).
pub fn encode_connect_response(timeout: i32, session_id: i64, password: &[u8]) -> Vec<u8> {
    let mut w = Writer::framed();
    w.write_i32(0);
    w.write_i32(timeout);
    w.write_i64(session_id);
    w.write_buffer(Some(password));
    w.write_bool(false);
    w.finish_frame()
}

/// One write op inside a `multi`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultiOp {
    Create(CreateRequest),
    Delete { path: String, version: i32 },
    SetData(SetDataRequest),
    Check { path: String, version: i32 },
}

/// One read op inside a `multiRead`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadOp {
    GetData { path: String },
    GetChildren { path: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateRequest {
    /// create, create2, createContainer or createTTL: decides the response shape.
    pub op: i32,
    pub path: String,
    pub data: Option<Vec<u8>>,
    pub acl: Option<Vec<Acl>>,
    pub flags: i32,
    pub ttl: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetDataRequest {
    pub path: String,
    pub data: Option<Vec<u8>>,
    pub version: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SetWatches {
    pub relative_zxid: i64,
    pub data: Vec<String>,
    pub exist: Vec<String>,
    pub child: Vec<String>,
    pub persistent: Vec<String>,
    pub persistent_recursive: Vec<String>,
}

/// A decoded client request (the body after the `RequestHeader`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Ping,
    Create(CreateRequest),
    Delete {
        path: String,
        version: i32,
    },
    Exists {
        path: String,
        watch: bool,
    },
    GetData {
        path: String,
        watch: bool,
    },
    SetData(SetDataRequest),
    GetAcl {
        path: String,
    },
    SetAcl {
        path: String,
        acl: Option<Vec<Acl>>,
        version: i32,
    },
    GetChildren {
        path: String,
        watch: bool,
        with_stat: bool,
    },
    Sync {
        path: String,
    },
    Check {
        path: String,
        version: i32,
    },
    Multi(Vec<MultiOp>),
    MultiRead(Vec<ReadOp>),
    CloseSession,
    SetWatches(SetWatches),
    AddWatch {
        path: String,
        mode: i32,
    },
    CheckWatches {
        path: String,
        kind: i32,
    },
    RemoveWatches {
        path: String,
        kind: i32,
    },
    GetEphemerals {
        prefix: String,
    },
    GetAllChildrenNumber {
        path: String,
    },
    WhoAmI,
    Auth {
        scheme: String,
        auth: Vec<u8>,
    },
    Sasl,
    Reconfig,
    /// A known op code whose body did not decode.
    Malformed {
        op: i32,
    },
    /// An op code this server does not know.
    Unknown {
        op: i32,
    },
}

impl Request {
    /// Whether ZooKeeper turns this op into a transaction (and so gives it a zxid even when
    /// it fails).
    pub fn is_write_op(op: i32) -> bool {
        matches!(
            op,
            op::CREATE
                | op::CREATE2
                | op::CREATE_CONTAINER
                | op::CREATE_TTL
                | op::DELETE
                | op::SET_DATA
                | op::SET_ACL
                | op::CHECK
                | op::MULTI
                | op::RECONFIG
        )
    }
}

/// A decoding failure of a request body.
#[derive(Debug)]
pub struct Malformed;

impl From<JuteError> for Malformed {
    fn from(_: JuteError) -> Self {
        Malformed
    }
}

fn read_path(r: &mut Reader) -> Result<String, Malformed> {
    // A null path makes ZooKeeper's request processing fail with a marshalling error.
    r.read_string()?.ok_or(Malformed)
}

fn read_create(r: &mut Reader, op: i32) -> Result<CreateRequest, Malformed> {
    let path = read_path(r)?;
    let data = r.read_buffer()?;
    let acl = Acl::read_vec(r)?;
    let flags = r.read_i32()?;
    let ttl = if op == op::CREATE_TTL {
        r.read_i64()?
    } else {
        -1
    };
    Ok(CreateRequest {
        op,
        path,
        data,
        acl,
        flags,
        ttl,
    })
}

fn read_set_data(r: &mut Reader) -> Result<SetDataRequest, Malformed> {
    Ok(SetDataRequest {
        path: read_path(r)?,
        data: r.read_buffer()?,
        version: r.read_i32()?,
    })
}

/// A `MultiOperationRecord`: `(MultiHeader, op)*` ended by a header with `done` set.
/// Returns the ops as (type, reader-positioned body decoder).
fn read_multi(r: &mut Reader) -> Result<Vec<MultiOp>, Malformed> {
    let mut ops = Vec::new();
    loop {
        let ty = r.read_i32()?;
        let done = r.read_bool()?;
        let _err = r.read_i32()?;
        if done {
            return Ok(ops);
        }
        let op = match ty {
            op::CREATE | op::CREATE2 | op::CREATE_CONTAINER | op::CREATE_TTL => {
                MultiOp::Create(read_create(r, ty)?)
            }
            op::DELETE => MultiOp::Delete {
                path: read_path(r)?,
                version: r.read_i32()?,
            },
            op::SET_DATA => MultiOp::SetData(read_set_data(r)?),
            op::CHECK => MultiOp::Check {
                path: read_path(r)?,
                version: r.read_i32()?,
            },
            // Read ops in a write multi ("mixing different kind of ops") or anything else.
            _ => return Err(Malformed),
        };
        ops.push(op);
    }
}

fn read_multi_read(r: &mut Reader) -> Result<Vec<ReadOp>, Malformed> {
    let mut ops = Vec::new();
    loop {
        let ty = r.read_i32()?;
        let done = r.read_bool()?;
        let _err = r.read_i32()?;
        if done {
            return Ok(ops);
        }
        let op = match ty {
            op::GET_DATA => {
                let path = read_path(r)?;
                let _watch = r.read_bool()?;
                ReadOp::GetData { path }
            }
            op::GET_CHILDREN => {
                let path = read_path(r)?;
                let _watch = r.read_bool()?;
                ReadOp::GetChildren { path }
            }
            _ => return Err(Malformed),
        };
        ops.push(op);
    }
}

impl Request {
    /// Decodes the body of a request whose header carried op code `op`.
    pub fn decode(op: i32, body: &[u8]) -> Request {
        let mut r = Reader::new(body);
        match Self::decode_inner(op, &mut r) {
            Ok(req) => req,
            Err(Malformed) => Request::Malformed { op },
        }
    }

    fn decode_inner(op: i32, r: &mut Reader) -> Result<Request, Malformed> {
        Ok(match op {
            op::PING => Request::Ping,
            op::CREATE | op::CREATE2 | op::CREATE_CONTAINER | op::CREATE_TTL => {
                Request::Create(read_create(r, op)?)
            }
            op::DELETE => Request::Delete {
                path: read_path(r)?,
                version: r.read_i32()?,
            },
            op::EXISTS => Request::Exists {
                path: read_path(r)?,
                watch: r.read_bool()?,
            },
            op::GET_DATA => Request::GetData {
                path: read_path(r)?,
                watch: r.read_bool()?,
            },
            op::SET_DATA => Request::SetData(read_set_data(r)?),
            op::GET_ACL => Request::GetAcl {
                path: read_path(r)?,
            },
            op::SET_ACL => Request::SetAcl {
                path: read_path(r)?,
                acl: Acl::read_vec(r)?,
                version: r.read_i32()?,
            },
            op::GET_CHILDREN | op::GET_CHILDREN2 => Request::GetChildren {
                path: read_path(r)?,
                watch: r.read_bool()?,
                with_stat: op == op::GET_CHILDREN2,
            },
            op::SYNC => Request::Sync {
                path: read_path(r)?,
            },
            op::CHECK => Request::Check {
                path: read_path(r)?,
                version: r.read_i32()?,
            },
            op::MULTI => Request::Multi(read_multi(r)?),
            op::MULTI_READ => Request::MultiRead(read_multi_read(r)?),
            op::CLOSE_SESSION => Request::CloseSession,
            op::SET_WATCHES | op::SET_WATCHES2 => {
                let mut sw = SetWatches {
                    relative_zxid: r.read_i64()?,
                    data: r.read_string_vec()?,
                    exist: r.read_string_vec()?,
                    child: r.read_string_vec()?,
                    ..SetWatches::default()
                };
                if op == op::SET_WATCHES2 {
                    sw.persistent = r.read_string_vec()?;
                    sw.persistent_recursive = r.read_string_vec()?;
                }
                Request::SetWatches(sw)
            }
            op::ADD_WATCH => Request::AddWatch {
                path: read_path(r)?,
                mode: r.read_i32()?,
            },
            op::CHECK_WATCHES => Request::CheckWatches {
                path: read_path(r)?,
                kind: r.read_i32()?,
            },
            op::REMOVE_WATCHES => Request::RemoveWatches {
                path: read_path(r)?,
                kind: r.read_i32()?,
            },
            op::GET_EPHEMERALS => Request::GetEphemerals {
                prefix: r.read_string()?.unwrap_or_default(),
            },
            op::GET_ALL_CHILDREN_NUMBER => Request::GetAllChildrenNumber {
                path: read_path(r)?,
            },
            op::WHO_AM_I => Request::WhoAmI,
            op::AUTH => {
                let _type = r.read_i32()?;
                let scheme = r.read_string()?.unwrap_or_default();
                let auth = r.read_buffer()?.unwrap_or_default();
                Request::Auth { scheme, auth }
            }
            op::SASL => Request::Sasl,
            op::RECONFIG => Request::Reconfig,
            _ => Request::Unknown { op },
        })
    }
}

/// Encodes a reply frame: `ReplyHeader` followed by `body`.
pub fn encode_reply(xid: i32, zxid: i64, err: i32, body: &[u8]) -> Vec<u8> {
    let mut w = Writer::framed();
    w.write_i32(xid);
    w.write_i64(zxid);
    w.write_i32(err);
    w.write_raw(body);
    w.finish_frame()
}

/// Encodes a watch notification frame (`WatcherEvent` with xid -1, zxid -1).
pub fn encode_notification(event: EventType, path: &str) -> Vec<u8> {
    let mut w = Writer::framed();
    w.write_i32(NOTIFICATION_XID);
    w.write_i64(-1);
    w.write_i32(0);
    w.write_i32(event as i32);
    w.write_i32(STATE_SYNC_CONNECTED);
    w.write_string(path);
    w.finish_frame()
}

/// Helpers to build request frames (used by tests and the benchmark).
pub mod client {
    use super::*;

    pub fn frame(xid: i32, op: i32, body: impl FnOnce(&mut Writer)) -> Vec<u8> {
        let mut w = Writer::framed();
        w.write_i32(xid);
        w.write_i32(op);
        body(&mut w);
        w.finish_frame()
    }

    pub fn create(xid: i32, path: &str, data: &[u8], flags: i32) -> Vec<u8> {
        frame(xid, op::CREATE, |w| {
            w.write_string(path);
            w.write_buffer(Some(data));
            Acl::write_vec(&[Acl::world(perms::ALL)], w);
            w.write_i32(flags);
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_of(frame: &[u8]) -> (i32, i32, &[u8]) {
        let mut r = Reader::new(&frame[4..]);
        let xid = r.read_i32().unwrap();
        let op = r.read_i32().unwrap();
        (xid, op, r.rest())
    }

    #[test]
    fn create_request_decodes() {
        let f = client::create(7, "/a", b"x", 3);
        let (xid, op, body) = body_of(&f);
        assert_eq!((xid, op), (7, op::CREATE));
        match Request::decode(op, body) {
            Request::Create(c) => {
                assert_eq!(c.path, "/a");
                assert_eq!(c.data.as_deref(), Some(&b"x"[..]));
                assert_eq!(c.acl, Some(vec![Acl::world(perms::ALL)]));
                assert_eq!(c.flags, 3);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn truncated_body_is_malformed() {
        let f = client::create(7, "/a", b"x", 3);
        let (_, op, body) = body_of(&f);
        assert_eq!(
            Request::decode(op, &body[..body.len() - 2]),
            Request::Malformed { op }
        );
        assert_eq!(Request::decode(999, &[]), Request::Unknown { op: 999 });
    }

    #[test]
    fn multi_round_trip_and_mixing_rejected() {
        let mut w = Writer::new();
        // check /a v1
        w.write_i32(op::CHECK);
        w.write_bool(false);
        w.write_i32(-1);
        w.write_string("/a");
        w.write_i32(1);
        // delete /b v-1
        w.write_i32(op::DELETE);
        w.write_bool(false);
        w.write_i32(-1);
        w.write_string("/b");
        w.write_i32(-1);
        w.write_i32(-1);
        w.write_bool(true);
        w.write_i32(-1);
        let body = w.into_inner();
        assert_eq!(
            Request::decode(op::MULTI, &body),
            Request::Multi(vec![
                MultiOp::Check {
                    path: "/a".into(),
                    version: 1
                },
                MultiOp::Delete {
                    path: "/b".into(),
                    version: -1
                },
            ])
        );
        let mut w = Writer::new();
        w.write_i32(op::GET_DATA);
        w.write_bool(false);
        w.write_i32(-1);
        w.write_string("/a");
        w.write_bool(false);
        w.write_i32(-1);
        w.write_bool(true);
        w.write_i32(-1);
        let body = w.into_inner();
        assert_eq!(
            Request::decode(op::MULTI, &body),
            Request::Malformed { op: op::MULTI }
        );
        assert_eq!(
            Request::decode(op::MULTI_READ, &body),
            Request::MultiRead(vec![ReadOp::GetData { path: "/a".into() }])
        );
    }

    #[test]
    fn connect_request_round_trip() {
        let req = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 5,
            timeout: 6000,
            session_id: 0x1234,
            password: vec![1; 16],
            read_only: false,
        };
        let f = req.encode();
        assert_eq!(ConnectRequest::decode(&f[4..]).unwrap(), req);
        // Without the trailing readOnly byte (old clients).
        assert_eq!(ConnectRequest::decode(&f[4..f.len() - 1]).unwrap(), req);
    }

    #[test]
    fn stat_round_trip() {
        let s = Stat {
            czxid: 1,
            mzxid: 2,
            ctime: 3,
            mtime: 4,
            version: 5,
            cversion: -6,
            aversion: 7,
            ephemeral_owner: 8,
            data_length: 9,
            num_children: 10,
            pzxid: 11,
        };
        let mut w = Writer::new();
        s.write(&mut w);
        let b = w.into_inner();
        assert_eq!(b.len(), 68);
        assert_eq!(Stat::read(&mut Reader::new(&b)).unwrap(), s);
    }
}
