//! The core's writes: each op prepared (`prep`), charged against the txn size limit,
//! applied to the tree; a multi is all or nothing, rolled back op by op on failure.

use super::*;

impl Core {
    /// Preps and applies one write op; on success returns its txn and result.
    pub(super) fn exec(
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
    pub(super) fn charge(&self, txn_bytes: &mut usize, txn: &Txn) -> Result<(), Code> {
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

    pub(super) fn write(&mut self, conn: ConnId, sid: i64, xid: i32, req: Request, now: Now) {
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
}
