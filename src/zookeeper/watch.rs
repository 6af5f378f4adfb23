//! The watch manager: which connection watches which path, and who gets notified when a
//! txn changes the tree.
//!
//! Like ZooKeeper there are two tables, data watches (set by getData/exists) and child
//! watches (set by getChildren); a watch is one-shot (standard) unless added with
//! `addWatch` as persistent or persistent-recursive. Watches belong to the *connection*:
//! when it closes they go, and a reconnecting client re-registers them with setWatches.

use std::collections::{HashMap, HashSet};

use super::path;
use super::proto::EventType;
use super::session::ConnId;
use super::tree::Change;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Standard,
    Persistent,
    PersistentRecursive,
}

#[derive(Debug, Default)]
struct Table {
    by_path: HashMap<String, HashMap<ConnId, Mode>>,
    by_conn: HashMap<ConnId, HashSet<String>>,
    /// Bytes of watched paths per connection (what its registrations cost).
    bytes: HashMap<ConnId, usize>,
    recursive: usize,
}

impl Table {
    fn add(&mut self, path: &str, conn: ConnId, mode: Mode) {
        let entry = self.by_path.entry(path.to_string()).or_default();
        // One mode per (connection, path): the latest wins, as in ZooKeeper 3.8.
        match entry.insert(conn, mode) {
            Some(old) => {
                if old == Mode::PersistentRecursive {
                    self.recursive -= 1;
                }
            }
            None => *self.bytes.entry(conn).or_default() += path.len(),
        }
        if mode == Mode::PersistentRecursive {
            self.recursive += 1;
        }
        self.by_conn
            .entry(conn)
            .or_default()
            .insert(path.to_string());
    }

    fn remove(&mut self, path: &str, conn: ConnId) -> bool {
        let Some(entry) = self.by_path.get_mut(path) else {
            return false;
        };
        let Some(mode) = entry.remove(&conn) else {
            return false;
        };
        if mode == Mode::PersistentRecursive {
            self.recursive -= 1;
        }
        let empty = entry.is_empty();
        self.uncount(conn, path.len());
        if empty {
            self.by_path.remove(path);
        }
        if let Some(paths) = self.by_conn.get_mut(&conn) {
            paths.remove(path);
            if paths.is_empty() {
                self.by_conn.remove(&conn);
            }
        }
        true
    }

    fn contains(&self, path: &str, conn: ConnId) -> bool {
        self.by_path
            .get(path)
            .is_some_and(|e| e.contains_key(&conn))
    }

    fn uncount(&mut self, conn: ConnId, n: usize) {
        if let Some(b) = self.bytes.get_mut(&conn) {
            *b = b.saturating_sub(n);
            if *b == 0 {
                self.bytes.remove(&conn);
            }
        }
    }

    fn remove_conn(&mut self, conn: ConnId) {
        self.bytes.remove(&conn);
        if let Some(paths) = self.by_conn.remove(&conn) {
            for p in paths {
                if let Some(entry) = self.by_path.get_mut(&p) {
                    if entry.remove(&conn) == Some(Mode::PersistentRecursive) {
                        self.recursive -= 1;
                    }
                    if entry.is_empty() {
                        self.by_path.remove(&p);
                    }
                }
            }
        }
    }

    /// `WatchManager.triggerWatch`: the connections to notify of `event` on `path`.
    /// Standard watches on `path` fire once and are removed; recursive watches on `path`
    /// or an ancestor fire for everything but child-list changes.
    fn trigger(&mut self, path: &str, event: EventType, out: &mut Vec<ConnId>) {
        let mut p = path.to_string();
        let mut at_leaf = true;
        loop {
            if let Some(entry) = self.by_path.get_mut(&p) {
                let mut fired_once = Vec::new();
                for (&conn, &mode) in entry.iter() {
                    match mode {
                        Mode::PersistentRecursive if event != EventType::NodeChildrenChanged => {
                            out.push(conn);
                        }
                        Mode::Persistent if at_leaf => out.push(conn),
                        Mode::Standard if at_leaf => {
                            out.push(conn);
                            fired_once.push(conn);
                        }
                        _ => {}
                    }
                }
                for conn in fired_once {
                    entry.remove(&conn);
                    if let Some(b) = self.bytes.get_mut(&conn) {
                        *b = b.saturating_sub(p.len());
                        if *b == 0 {
                            self.bytes.remove(&conn);
                        }
                    }
                    if let Some(paths) = self.by_conn.get_mut(&conn) {
                        paths.remove(&p);
                        if paths.is_empty() {
                            self.by_conn.remove(&conn);
                        }
                    }
                }
                if entry.is_empty() {
                    self.by_path.remove(&p);
                }
            }
            if self.recursive == 0 || p == "/" {
                break;
            }
            match path::parent(&p) {
                Some(parent) => p = parent.to_string(),
                None => break,
            }
            at_leaf = false;
        }
    }

    fn count(&self) -> usize {
        self.by_conn.values().map(HashSet::len).sum()
    }
}

/// A notification to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub conn: ConnId,
    pub event: EventType,
    pub path: String,
}

/// `WatcherType` of checkWatches/removeWatches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatcherType {
    Children,
    Data,
    Any,
}

impl WatcherType {
    pub fn from_i32(v: i32) -> Option<WatcherType> {
        match v {
            1 => Some(WatcherType::Children),
            2 => Some(WatcherType::Data),
            3 => Some(WatcherType::Any),
            _ => None,
        }
    }
}

#[derive(Debug, Default)]
pub struct WatchManager {
    data: Table,
    child: Table,
}

impl WatchManager {
    pub fn new() -> Self {
        Self::default()
    }

    /// A one-shot watch from getData/exists.
    pub fn add_data(&mut self, path: &str, conn: ConnId) {
        self.data.add(path, conn, Mode::Standard);
    }

    /// A one-shot watch from getChildren.
    pub fn add_child(&mut self, path: &str, conn: ConnId) {
        self.child.add(path, conn, Mode::Standard);
    }

    /// `addWatch`: a persistent watch lives in both tables.
    pub fn add_persistent(&mut self, path: &str, conn: ConnId, recursive: bool) {
        let mode = if recursive {
            Mode::PersistentRecursive
        } else {
            Mode::Persistent
        };
        self.child.add(path, conn, mode);
        self.data.add(path, conn, mode);
    }

    pub fn remove_conn(&mut self, conn: ConnId) {
        self.data.remove_conn(conn);
        self.child.remove_conn(conn);
    }

    pub fn contains(&self, path: &str, conn: ConnId, kind: WatcherType) -> bool {
        match kind {
            WatcherType::Children => self.child.contains(path, conn),
            WatcherType::Data => self.data.contains(path, conn),
            WatcherType::Any => self.child.contains(path, conn) || self.data.contains(path, conn),
        }
    }

    pub fn remove(&mut self, path: &str, conn: ConnId, kind: WatcherType) -> bool {
        match kind {
            WatcherType::Children => self.child.remove(path, conn),
            WatcherType::Data => self.data.remove(path, conn),
            WatcherType::Any => {
                let c = self.child.remove(path, conn);
                let d = self.data.remove(path, conn);
                c || d
            }
        }
    }

    /// Bytes of paths `conn` watches, over both tables (bounded by the server's
    /// `max_watch_bytes_per_connection`).
    pub fn conn_bytes(&self, conn: ConnId) -> usize {
        self.data.bytes.get(&conn).copied().unwrap_or(0)
            + self.child.bytes.get(&conn).copied().unwrap_or(0)
    }

    /// Number of (connection, path) watch registrations.
    pub fn count(&self) -> usize {
        self.data.count() + self.child.count()
    }

    /// The notifications one tree change causes, in ZooKeeper's order (`DataTree`'s
    /// createNode / deleteNode / setData). Each connection hears of an event at most once.
    pub fn on_change(&mut self, change: &Change, out: &mut Vec<Notification>) {
        let emit = |conns: Vec<ConnId>,
                    event: EventType,
                    path: &str,
                    out: &mut Vec<_>,
                    seen: &mut HashSet<ConnId>| {
            for conn in conns {
                if seen.insert(conn) {
                    out.push(Notification {
                        conn,
                        event,
                        path: path.to_string(),
                    });
                }
            }
        };
        match change {
            Change::Created(p) => {
                let mut hit = Vec::new();
                self.data.trigger(p, EventType::NodeCreated, &mut hit);
                emit(hit, EventType::NodeCreated, p, out, &mut HashSet::new());
                let parent = path::parent(p).unwrap_or("/");
                let mut hit = Vec::new();
                self.child
                    .trigger(parent, EventType::NodeChildrenChanged, &mut hit);
                emit(
                    hit,
                    EventType::NodeChildrenChanged,
                    parent,
                    out,
                    &mut HashSet::new(),
                );
            }
            Change::Deleted(p) => {
                // Data and child watchers of the node itself hear one NodeDeleted.
                let mut seen = HashSet::new();
                let mut hit = Vec::new();
                self.data.trigger(p, EventType::NodeDeleted, &mut hit);
                self.child.trigger(p, EventType::NodeDeleted, &mut hit);
                emit(hit, EventType::NodeDeleted, p, out, &mut seen);
                let parent = path::parent(p).unwrap_or("/");
                let mut hit = Vec::new();
                self.child
                    .trigger(parent, EventType::NodeChildrenChanged, &mut hit);
                emit(
                    hit,
                    EventType::NodeChildrenChanged,
                    parent,
                    out,
                    &mut HashSet::new(),
                );
            }
            Change::DataChanged(p) => {
                let mut hit = Vec::new();
                self.data.trigger(p, EventType::NodeDataChanged, &mut hit);
                emit(hit, EventType::NodeDataChanged, p, out, &mut HashSet::new());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fire(w: &mut WatchManager, c: Change) -> Vec<(ConnId, EventType, String)> {
        let mut out = Vec::new();
        w.on_change(&c, &mut out);
        let mut v: Vec<_> = out.into_iter().map(|n| (n.conn, n.event, n.path)).collect();
        v.sort_by_key(|(c, e, p)| (*c, *e as i32, p.clone()));
        v
    }

    #[test]
    fn one_shot_watches_fire_once() {
        let mut w = WatchManager::new();
        w.add_data("/a", 1);
        w.add_child("/", 2);
        assert_eq!(
            fire(&mut w, Change::Created("/a".into())),
            vec![
                (1, EventType::NodeCreated, "/a".into()),
                (2, EventType::NodeChildrenChanged, "/".into())
            ]
        );
        assert!(fire(&mut w, Change::DataChanged("/a".into())).is_empty());
        assert_eq!(w.count(), 0);
        // Fired one-shot watches no longer count against their connection.
        assert_eq!((w.conn_bytes(1), w.conn_bytes(2)), (0, 0));
    }

    #[test]
    fn delete_notifies_each_connection_once() {
        let mut w = WatchManager::new();
        w.add_data("/a", 1);
        w.add_child("/a", 1);
        w.add_child("/a", 2);
        assert_eq!(
            fire(&mut w, Change::Deleted("/a".into())),
            vec![
                (1, EventType::NodeDeleted, "/a".into()),
                (2, EventType::NodeDeleted, "/a".into())
            ]
        );
    }

    #[test]
    fn persistent_and_recursive() {
        let mut w = WatchManager::new();
        w.add_persistent("/a", 1, false);
        w.add_persistent("/a", 2, true);
        for _ in 0..2 {
            assert_eq!(
                fire(&mut w, Change::DataChanged("/a".into())),
                vec![
                    (1, EventType::NodeDataChanged, "/a".into()),
                    (2, EventType::NodeDataChanged, "/a".into())
                ]
            );
        }
        // A grandchild: only the recursive watcher hears it, and not as a child change.
        assert_eq!(
            fire(&mut w, Change::Created("/a/b/c".into())),
            vec![(2, EventType::NodeCreated, "/a/b/c".into())]
        );
        // A child: the persistent (non-recursive) watcher hears the child change.
        assert_eq!(
            fire(&mut w, Change::Created("/a/b".into())),
            vec![
                (1, EventType::NodeChildrenChanged, "/a".into()),
                (2, EventType::NodeCreated, "/a/b".into())
            ]
        );
        assert_eq!(w.conn_bytes(2), 4, "/a in both tables");
        assert!(w.remove("/a", 2, WatcherType::Any));
        assert!(!w.remove("/a", 2, WatcherType::Any));
        assert_eq!(w.conn_bytes(2), 0);
        w.remove_conn(1);
        assert_eq!(w.count(), 0);
        assert_eq!(w.conn_bytes(1), 0);
        assert!(fire(&mut w, Change::Created("/a/x".into())).is_empty());
    }

    #[test]
    fn contains_and_remove_by_type() {
        let mut w = WatchManager::new();
        w.add_data("/a", 1);
        assert!(w.contains("/a", 1, WatcherType::Data));
        assert!(!w.contains("/a", 1, WatcherType::Children));
        assert!(w.contains("/a", 1, WatcherType::Any));
        assert!(!w.remove("/a", 1, WatcherType::Children));
        assert!(w.remove("/a", 1, WatcherType::Data));
        assert_eq!(WatcherType::from_i32(4), None);
    }
}
