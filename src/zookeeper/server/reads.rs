//! The core's reads: getData, exists, getChildren(2), getACL, the ephemerals and
//! children counts, read-only multis, and the watches they set (FinalRequestProcessor's
//! rules); `set_watches` re-registers a reconnecting client's watches.

use super::*;

impl Core {
    pub(super) fn read(&mut self, conn: ConnId, sid: i64, xid: i32, req: Request) {
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
    pub(super) fn read_op(
        &mut self,
        conn: ConnId,
        sid: i64,
        req: Request,
        auth: &[Id],
        w: &mut Writer,
    ) -> Result<(), ReadFail> {
        use crate::zookeeper::proto::perms::{ADMIN, READ};
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
    pub(super) fn set_watches(&mut self, conn: ConnId, sw: SetWatches) {
        use crate::zookeeper::proto::EventType::*;
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
}

/// Encoded size of a node's children list.
fn children_len(n: &crate::zookeeper::tree::Node) -> usize {
    4 + n.children.iter().map(|c| 4 + c.len()).sum::<usize>()
}

fn check_acl(enforce: bool, acl_: &[Acl], perm: i32, auth: &[Id]) -> Result<(), Code> {
    if enforce {
        acl::check(acl_, perm, auth)
    } else {
        Ok(())
    }
}
