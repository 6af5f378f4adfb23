//! Transactions: the records written to the log, and how each is applied to the tree and
//! the session table.
//!
//! A txn is already validated (see `prep`); applying it cannot fail on a consistent
//! state. When replaying a log over a snapshot, a failure is only logged, as ZooKeeper
//! does.

use super::jute::{JuteError, Reader, Writer};
use super::proto::{op, Acl, Code};
use super::session::SessionTable;
use super::tree::{Change, DataTree, Undo};

/// `TxnHeader` (minus the type, carried by [`Txn`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnHeader {
    pub session_id: i64,
    pub cxid: i32,
    pub zxid: i64,
    /// Wall-clock milliseconds when the txn was prepared (ctime/mtime).
    pub time: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Txn {
    CreateSession {
        timeout: i32,
        password: Vec<u8>,
    },
    /// Closes the header's session and deletes its ephemerals. The server writes `paths`
    /// empty: every ephemeral records its owner, so apply (and replay, over the same
    /// tree) derives them, as ZooKeeper's `DataTree.killSession` does. Listing them
    /// made the record grow without bound (a session may own any number of ephemerals,
    /// each with a path up to `jute.maxbuffer`). Older logs with listed paths replay the
    /// same way.
    CloseSession {
        paths: Vec<String>,
    },
    Create {
        path: String,
        data: Option<Vec<u8>>,
        acl: Vec<Acl>,
        ephemeral_owner: i64,
        parent_cversion: i32,
    },
    Delete {
        path: String,
    },
    SetData {
        path: String,
        data: Option<Vec<u8>>,
        version: i32,
    },
    SetAcl {
        path: String,
        acl: Vec<Acl>,
        version: i32,
    },
    Check {
        path: String,
        version: i32,
    },
    Multi(Vec<Txn>),
    /// A write that failed validation: it still takes a zxid, as in ZooKeeper.
    Error {
        code: i32,
    },
}

impl Txn {
    fn type_code(&self) -> i32 {
        match self {
            Txn::CreateSession { .. } => op::CREATE_SESSION,
            Txn::CloseSession { .. } => op::CLOSE_SESSION,
            Txn::Create { .. } => op::CREATE,
            Txn::Delete { .. } => op::DELETE,
            Txn::SetData { .. } => op::SET_DATA,
            Txn::SetAcl { .. } => op::SET_ACL,
            Txn::Check { .. } => op::CHECK,
            Txn::Multi(_) => op::MULTI,
            Txn::Error { .. } => op::ERROR,
        }
    }

    /// The length of [`Txn::encode`]'s output, without encoding (limits are checked
    /// before a txn is accepted).
    pub fn encoded_len(&self) -> usize {
        fn buf(b: Option<&[u8]>) -> usize {
            4 + b.map_or(0, <[u8]>::len)
        }
        fn acls(acl: &[Acl]) -> usize {
            4 + acl
                .iter()
                .map(|a| 4 + buf(Some(a.id.scheme.as_bytes())) + buf(Some(a.id.id.as_bytes())))
                .sum::<usize>()
        }
        4 + match self {
            Txn::CreateSession { password, .. } => 4 + buf(Some(password)),
            Txn::CloseSession { paths } => {
                4 + paths.iter().map(|p| buf(Some(p.as_bytes()))).sum::<usize>()
            }
            Txn::Create {
                path, data, acl, ..
            } => buf(Some(path.as_bytes())) + buf(data.as_deref()) + acls(acl) + 8 + 4,
            Txn::Delete { path } => buf(Some(path.as_bytes())),
            Txn::SetData { path, data, .. } => {
                buf(Some(path.as_bytes())) + buf(data.as_deref()) + 4
            }
            Txn::SetAcl { path, acl, .. } => buf(Some(path.as_bytes())) + acls(acl) + 4,
            Txn::Check { path, .. } => buf(Some(path.as_bytes())) + 4,
            Txn::Multi(txns) => 4 + txns.iter().map(Txn::encoded_len).sum::<usize>(),
            Txn::Error { .. } => 4,
        }
    }

    pub fn encode(&self, w: &mut Writer) {
        w.write_i32(self.type_code());
        match self {
            Txn::CreateSession { timeout, password } => {
                w.write_i32(*timeout);
                w.write_buffer(Some(password));
            }
            Txn::CloseSession { paths } => w.write_string_vec(paths),
            Txn::Create {
                path,
                data,
                acl,
                ephemeral_owner,
                parent_cversion,
            } => {
                w.write_string(path);
                w.write_buffer(data.as_deref());
                Acl::write_vec(acl, w);
                w.write_i64(*ephemeral_owner);
                w.write_i32(*parent_cversion);
            }
            Txn::Delete { path } => w.write_string(path),
            Txn::SetData {
                path,
                data,
                version,
            } => {
                w.write_string(path);
                w.write_buffer(data.as_deref());
                w.write_i32(*version);
            }
            Txn::SetAcl { path, acl, version } => {
                w.write_string(path);
                Acl::write_vec(acl, w);
                w.write_i32(*version);
            }
            Txn::Check { path, version } => {
                w.write_string(path);
                w.write_i32(*version);
            }
            Txn::Multi(txns) => {
                w.write_i32(txns.len() as i32);
                for t in txns {
                    t.encode(w);
                }
            }
            Txn::Error { code } => w.write_i32(*code),
        }
    }

    pub fn decode(r: &mut Reader) -> Result<Txn, JuteError> {
        let ty = r.read_i32()?;
        let s = |r: &mut Reader| -> Result<String, JuteError> {
            Ok(r.read_string()?.unwrap_or_default())
        };
        Ok(match ty {
            op::CREATE_SESSION => Txn::CreateSession {
                timeout: r.read_i32()?,
                password: r.read_buffer()?.unwrap_or_default(),
            },
            op::CLOSE_SESSION => Txn::CloseSession {
                paths: r.read_string_vec()?,
            },
            op::CREATE => Txn::Create {
                path: s(r)?,
                data: r.read_buffer()?,
                acl: Acl::read_vec(r)?.unwrap_or_default(),
                ephemeral_owner: r.read_i64()?,
                parent_cversion: r.read_i32()?,
            },
            op::DELETE => Txn::Delete { path: s(r)? },
            op::SET_DATA => Txn::SetData {
                path: s(r)?,
                data: r.read_buffer()?,
                version: r.read_i32()?,
            },
            op::SET_ACL => Txn::SetAcl {
                path: s(r)?,
                acl: Acl::read_vec(r)?.unwrap_or_default(),
                version: r.read_i32()?,
            },
            op::CHECK => Txn::Check {
                path: s(r)?,
                version: r.read_i32()?,
            },
            op::MULTI => {
                let n = r.read_vec_len(4)?.unwrap_or(0);
                let mut txns = Vec::with_capacity(n);
                for _ in 0..n {
                    txns.push(Txn::decode(r)?);
                }
                Txn::Multi(txns)
            }
            op::ERROR => Txn::Error {
                code: r.read_i32()?,
            },
            other => return Err(JuteError::BadLength(other)),
        })
    }
}

/// Applies `txn` to the tree (and the session table), appending what changed to
/// `changes` and undo records to `undo`.
pub fn apply(
    tree: &mut DataTree,
    sessions: &mut SessionTable,
    hdr: &TxnHeader,
    txn: &Txn,
    changes: &mut Vec<Change>,
    undo: &mut Vec<Undo>,
) -> Result<(), Code> {
    match txn {
        Txn::CreateSession { timeout, password } => {
            sessions.restore(hdr.session_id, *timeout, password.clone());
            Ok(())
        }
        Txn::CloseSession { paths } => {
            let mut paths = if paths.is_empty() {
                tree.ephemerals(hdr.session_id)
            } else {
                paths.clone()
            };
            // Delete deepest first so a (pathological) nested ephemeral cannot block.
            paths.sort_by_key(|p| std::cmp::Reverse(p.len()));
            for p in &paths {
                if let Ok(u) = tree.delete(p, hdr.zxid, changes) {
                    undo.push(u);
                }
            }
            sessions.remove(hdr.session_id);
            Ok(())
        }
        Txn::Create {
            path,
            data,
            acl,
            ephemeral_owner,
            parent_cversion,
        } => {
            let u = tree.create(
                path,
                data.clone(),
                acl.clone(),
                *ephemeral_owner,
                *parent_cversion,
                hdr.zxid,
                hdr.time,
                changes,
            )?;
            undo.push(u);
            Ok(())
        }
        Txn::Delete { path } => {
            undo.push(tree.delete(path, hdr.zxid, changes)?);
            Ok(())
        }
        Txn::SetData {
            path,
            data,
            version,
        } => {
            undo.push(tree.set_data(path, data.clone(), *version, hdr.zxid, hdr.time, changes)?);
            Ok(())
        }
        Txn::SetAcl { path, acl, version } => {
            undo.push(tree.set_acl(path, acl.clone(), *version)?);
            Ok(())
        }
        Txn::Check { .. } | Txn::Error { .. } => Ok(()),
        Txn::Multi(txns) => {
            // A failed multi is logged as all errors: nothing to apply.
            if txns.iter().any(|t| matches!(t, Txn::Error { .. })) {
                return Ok(());
            }
            for t in txns {
                apply(tree, sessions, hdr, t, changes, undo)?;
            }
            Ok(())
        }
    }
}

/// Bytes of a txn record's header (zxid, session, cxid, time).
pub const RECORD_HEADER_LEN: usize = 28;

/// Encodes a txn record payload: header then txn.
pub fn encode_record(hdr: &TxnHeader, txn: &Txn) -> Vec<u8> {
    let mut w = Writer::new();
    w.write_i64(hdr.zxid);
    w.write_i64(hdr.session_id);
    w.write_i32(hdr.cxid);
    w.write_i64(hdr.time);
    txn.encode(&mut w);
    w.into_inner()
}

pub fn decode_record(payload: &[u8]) -> Result<(TxnHeader, Txn), JuteError> {
    let mut r = Reader::new(payload);
    let hdr = TxnHeader {
        zxid: r.read_i64()?,
        session_id: r.read_i64()?,
        cxid: r.read_i32()?,
        time: r.read_i64()?,
    };
    let txn = Txn::decode(&mut r)?;
    Ok((hdr, txn))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zookeeper::proto::perms;

    fn hdr(zxid: i64) -> TxnHeader {
        TxnHeader {
            session_id: 42,
            cxid: 1,
            zxid,
            time: 1000 + zxid,
        }
    }

    #[test]
    fn records_round_trip() {
        let txns = [
            Txn::CreateSession {
                timeout: 6000,
                password: vec![7; 16],
            },
            Txn::Create {
                path: "/a".into(),
                data: None,
                acl: vec![Acl::world(perms::ALL)],
                ephemeral_owner: 42,
                parent_cversion: 3,
            },
            Txn::Multi(vec![
                Txn::SetData {
                    path: "/a".into(),
                    data: Some(b"x".to_vec()),
                    version: 1,
                },
                Txn::Check {
                    path: "/a".into(),
                    version: 1,
                },
                Txn::Delete { path: "/a".into() },
            ]),
            Txn::SetAcl {
                path: "/".into(),
                acl: vec![],
                version: 2,
            },
            Txn::CloseSession {
                paths: vec!["/e".into()],
            },
            Txn::Error { code: -101 },
        ];
        for (i, t) in txns.iter().enumerate() {
            let h = hdr(i as i64 + 1);
            let bytes = encode_record(&h, t);
            assert_eq!(bytes.len(), RECORD_HEADER_LEN + t.encoded_len(), "{t:?}");
            assert_eq!(decode_record(&bytes).unwrap(), (h, t.clone()));
        }
    }

    #[test]
    fn apply_builds_tree_and_sessions() {
        let mut tree = DataTree::new();
        let mut sessions = SessionTable::new(100);
        let mut ch = Vec::new();
        let mut undo = Vec::new();
        let run = |tree: &mut DataTree,
                   s: &mut SessionTable,
                   z,
                   t: Txn,
                   ch: &mut Vec<_>,
                   u: &mut Vec<_>| { apply(tree, s, &hdr(z), &t, ch, u) };
        run(
            &mut tree,
            &mut sessions,
            1,
            Txn::CreateSession {
                timeout: 6000,
                password: vec![1; 16],
            },
            &mut ch,
            &mut undo,
        )
        .unwrap();
        assert!(sessions.get(42).is_some());
        run(
            &mut tree,
            &mut sessions,
            2,
            Txn::Create {
                path: "/e".into(),
                data: Some(b"d".to_vec()),
                acl: vec![Acl::world(perms::ALL)],
                ephemeral_owner: 42,
                parent_cversion: 1,
            },
            &mut ch,
            &mut undo,
        )
        .unwrap();
        // A failed multi changes nothing.
        run(
            &mut tree,
            &mut sessions,
            3,
            Txn::Multi(vec![Txn::Error { code: 0 }, Txn::Error { code: -101 }]),
            &mut ch,
            &mut undo,
        )
        .unwrap();
        assert_eq!(tree.get("/e").unwrap().stat().mzxid, 2);
        // The server writes closeSession without paths: they come from the tree.
        run(
            &mut tree,
            &mut sessions,
            4,
            Txn::CloseSession { paths: vec![] },
            &mut ch,
            &mut undo,
        )
        .unwrap();
        assert!(tree.get("/e").is_none());
        assert!(sessions.get(42).is_none());
        assert_eq!(tree.get("/").unwrap().stat().pzxid, 4);
    }
}
