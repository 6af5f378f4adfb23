//! The DataTree: znodes with data, ACL, persisted stat and children, plus the index of
//! ephemeral znodes by owning session.
//!
//! Mutations here are the *apply* half of a transaction: they are told the zxid and time
//! and do not validate versions or ACLs (that is `prep`'s job). Each returns an [`Undo`]
//! so a failing `multi` can roll back, and reports what changed as [`Change`]s for the
//! watch manager. Nothing here touches sockets or clocks.

use std::collections::{BTreeSet, HashMap};

use super::path;
use super::proto::{perms, Acl, Code, Stat};

/// `EphemeralType.CONTAINER_EPHEMERAL_OWNER`.
pub const CONTAINER_OWNER: i64 = i64::MIN;

/// ZooKeeper's `StatPersisted`: what a znode keeps. `cversion` counts child *creations*;
/// the client-visible cversion is derived (see [`Node::stat`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatPersisted {
    pub czxid: i64,
    pub mzxid: i64,
    pub ctime: i64,
    pub mtime: i64,
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
    pub ephemeral_owner: i64,
    pub pzxid: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// `None` is Java's null data (a client may create a znode with null data).
    pub data: Option<Vec<u8>>,
    pub acl: Vec<Acl>,
    pub stat: StatPersisted,
    pub children: BTreeSet<String>,
}

impl Node {
    fn new(data: Option<Vec<u8>>, acl: Vec<Acl>, stat: StatPersisted) -> Node {
        Node {
            data,
            acl,
            stat,
            children: BTreeSet::new(),
        }
    }

    /// The stat a client sees (`DataNode.copyStat`): the persisted cversion counts
    /// creations, the reported one counts creations plus deletions.
    pub fn stat(&self) -> Stat {
        let n = self.children.len() as i32;
        let owner = self.stat.ephemeral_owner;
        Stat {
            czxid: self.stat.czxid,
            mzxid: self.stat.mzxid,
            ctime: self.stat.ctime,
            mtime: self.stat.mtime,
            version: self.stat.version,
            cversion: self.stat.cversion.wrapping_mul(2).wrapping_sub(n),
            aversion: self.stat.aversion,
            ephemeral_owner: if owner == CONTAINER_OWNER { 0 } else { owner },
            data_length: self.data.as_ref().map_or(0, |d| d.len() as i32),
            num_children: n,
            pzxid: self.stat.pzxid,
        }
    }

    /// Owner session if this is an ordinary ephemeral (not a container).
    pub fn ephemeral_session(&self) -> Option<i64> {
        match self.stat.ephemeral_owner {
            0 | CONTAINER_OWNER => None,
            owner => Some(owner),
        }
    }
}

/// What a mutation did, for the watch manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Created(String),
    Deleted(String),
    DataChanged(String),
}

/// How to take a mutation back (used only to roll back a failed `multi`).
#[derive(Debug)]
pub enum Undo {
    Created {
        path: String,
        parent_stat: StatPersisted,
    },
    Deleted {
        path: String,
        node: Node,
        parent_stat: StatPersisted,
    },
    DataSet {
        path: String,
        data: Option<Vec<u8>>,
        stat: StatPersisted,
    },
    AclSet {
        path: String,
        acl: Vec<Acl>,
        stat: StatPersisted,
    },
    Nothing,
}

#[derive(Debug, Clone)]
pub struct DataTree {
    nodes: HashMap<String, Node>,
    ephemerals: HashMap<i64, BTreeSet<String>>,
    containers: BTreeSet<String>,
}

impl Default for DataTree {
    fn default() -> Self {
        Self::new()
    }
}

impl DataTree {
    /// A fresh tree: `/`, `/zookeeper`, `/zookeeper/quota` and `/zookeeper/config`, with
    /// the stats a fresh ZooKeeper 3.8 reports for them.
    pub fn new() -> DataTree {
        let all = vec![Acl::world(perms::ALL)];
        let mut tree = DataTree {
            nodes: HashMap::new(),
            ephemerals: HashMap::new(),
            containers: BTreeSet::new(),
        };
        let zero = StatPersisted::default();
        let mut root = Node::new(Some(Vec::new()), all.clone(), zero);
        root.children.insert("zookeeper".into());
        let mut zk = Node::new(Some(Vec::new()), all.clone(), zero);
        zk.children.insert("quota".into());
        zk.children.insert("config".into());
        let quota = Node::new(Some(Vec::new()), all, zero);
        let config = Node::new(
            Some(Vec::new()),
            vec![Acl::world(perms::READ)],
            StatPersisted {
                aversion: -1,
                ..zero
            },
        );
        tree.nodes.insert("/".into(), root);
        tree.nodes.insert("/zookeeper".into(), zk);
        tree.nodes.insert("/zookeeper/quota".into(), quota);
        tree.nodes.insert("/zookeeper/config".into(), config);
        tree
    }

    /// An empty tree, filled by [`DataTree::insert_raw`] (snapshot loading).
    pub fn empty() -> DataTree {
        DataTree {
            nodes: HashMap::new(),
            ephemerals: HashMap::new(),
            containers: BTreeSet::new(),
        }
    }

    /// Inserts a node as loaded from a snapshot; parents are linked by
    /// [`DataTree::link_children`] once all are loaded.
    pub fn insert_raw(&mut self, path: String, node: Node) {
        self.index(&path, &node);
        self.nodes.insert(path, node);
    }

    /// Rebuilds every node's children set from the paths (after [`insert_raw`]).
    /// Returns the paths whose parent is missing (a corrupt snapshot).
    ///
    /// [`insert_raw`]: DataTree::insert_raw
    pub fn link_children(&mut self) -> Vec<String> {
        let paths: Vec<String> = self.nodes.keys().cloned().collect();
        let mut orphans = Vec::new();
        for p in paths {
            if p == "/" {
                continue;
            }
            let Some(parent) = path::parent(&p) else {
                orphans.push(p);
                continue;
            };
            let name = path::name(&p).to_string();
            match self.nodes.get_mut(parent) {
                Some(n) => {
                    n.children.insert(name);
                }
                None => orphans.push(p),
            }
        }
        orphans
    }

    fn index(&mut self, path: &str, node: &Node) {
        if node.stat.ephemeral_owner == CONTAINER_OWNER {
            self.containers.insert(path.to_string());
        } else if let Some(owner) = node.ephemeral_session() {
            self.ephemerals
                .entry(owner)
                .or_default()
                .insert(path.to_string());
        }
    }

    fn unindex(&mut self, path: &str, node: &Node) {
        if node.stat.ephemeral_owner == CONTAINER_OWNER {
            self.containers.remove(path);
        } else if let Some(owner) = node.ephemeral_session() {
            if let Some(set) = self.ephemerals.get_mut(&owner) {
                set.remove(path);
                if set.is_empty() {
                    self.ephemerals.remove(&owner);
                }
            }
        }
    }

    /// Looks a node up; ZooKeeper also maps the empty path to the root.
    pub fn get(&self, path: &str) -> Option<&Node> {
        if path.is_empty() {
            return self.nodes.get("/");
        }
        self.nodes.get(path)
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    pub fn nodes(&self) -> impl Iterator<Item = (&String, &Node)> {
        self.nodes.iter()
    }

    /// Paths of the ephemerals owned by `session`, sorted.
    pub fn ephemerals(&self, session: i64) -> Vec<String> {
        self.ephemerals
            .get(&session)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub fn ephemeral_count(&self) -> usize {
        self.ephemerals.values().map(BTreeSet::len).sum()
    }

    /// Approximate bytes of paths plus data (`zk_approximate_data_size`).
    pub fn approximate_data_size(&self) -> usize {
        self.nodes
            .iter()
            .map(|(p, n)| p.len() + n.data.as_ref().map_or(0, Vec::len))
            .sum()
    }

    /// Number of descendants of `path` (`getAllChildrenNumber`).
    pub fn all_children_number(&self, path: &str) -> usize {
        let mut count = 0;
        let mut stack = vec![path.to_string()];
        while let Some(p) = stack.pop() {
            if let Some(n) = self.get(&p) {
                for c in &n.children {
                    count += 1;
                    stack.push(path::join(if p.is_empty() { "/" } else { &p }, c));
                }
            }
        }
        count
    }

    /// Creates `path`. `parent_cversion` is the parent's new (persisted) cversion.
    #[allow(clippy::too_many_arguments)]
    pub fn create(
        &mut self,
        path: &str,
        data: Option<Vec<u8>>,
        acl: Vec<Acl>,
        ephemeral_owner: i64,
        parent_cversion: i32,
        zxid: i64,
        time: i64,
        changes: &mut Vec<Change>,
    ) -> Result<Undo, Code> {
        let parent_path = path::parent(path).ok_or(Code::NoNode)?;
        if self.nodes.contains_key(path) {
            return Err(Code::NodeExists);
        }
        let parent = self.nodes.get_mut(parent_path).ok_or(Code::NoNode)?;
        let parent_stat = parent.stat;
        if parent_cversion > parent.stat.cversion {
            parent.stat.cversion = parent_cversion;
            parent.stat.pzxid = zxid;
        }
        parent.children.insert(path::name(path).to_string());
        let stat = StatPersisted {
            czxid: zxid,
            mzxid: zxid,
            ctime: time,
            mtime: time,
            version: 0,
            cversion: 0,
            aversion: 0,
            ephemeral_owner,
            pzxid: zxid,
        };
        let node = Node::new(data, acl, stat);
        self.index(path, &node);
        self.nodes.insert(path.to_string(), node);
        changes.push(Change::Created(path.to_string()));
        Ok(Undo::Created {
            path: path.to_string(),
            parent_stat,
        })
    }

    /// Deletes `path` (which must have no children).
    pub fn delete(
        &mut self,
        path: &str,
        zxid: i64,
        changes: &mut Vec<Change>,
    ) -> Result<Undo, Code> {
        let parent_path = path::parent(path).ok_or(Code::NoNode)?;
        match self.nodes.get(path) {
            None => return Err(Code::NoNode),
            Some(n) if !n.children.is_empty() => return Err(Code::NotEmpty),
            Some(_) => {}
        }
        let parent = self.nodes.get_mut(parent_path).ok_or(Code::NoNode)?;
        let parent_stat = parent.stat;
        parent.children.remove(path::name(path));
        if zxid > parent.stat.pzxid {
            parent.stat.pzxid = zxid;
        }
        let node = self.nodes.remove(path).ok_or(Code::NoNode)?;
        self.unindex(path, &node);
        changes.push(Change::Deleted(path.to_string()));
        Ok(Undo::Deleted {
            path: path.to_string(),
            node,
            parent_stat,
        })
    }

    pub fn set_data(
        &mut self,
        path: &str,
        data: Option<Vec<u8>>,
        version: i32,
        zxid: i64,
        time: i64,
        changes: &mut Vec<Change>,
    ) -> Result<Undo, Code> {
        let node = self.nodes.get_mut(path).ok_or(Code::NoNode)?;
        let undo = Undo::DataSet {
            path: path.to_string(),
            data: std::mem::replace(&mut node.data, data),
            stat: node.stat,
        };
        node.stat.version = version;
        node.stat.mzxid = zxid;
        node.stat.mtime = time;
        changes.push(Change::DataChanged(path.to_string()));
        Ok(undo)
    }

    pub fn set_acl(&mut self, path: &str, acl: Vec<Acl>, aversion: i32) -> Result<Undo, Code> {
        let node = self.nodes.get_mut(path).ok_or(Code::NoNode)?;
        let undo = Undo::AclSet {
            path: path.to_string(),
            acl: std::mem::replace(&mut node.acl, acl),
            stat: node.stat,
        };
        node.stat.aversion = aversion;
        Ok(undo)
    }

    /// Takes back one mutation. Undos must be applied in reverse order.
    pub fn undo(&mut self, undo: Undo) {
        match undo {
            Undo::Created { path, parent_stat } => {
                if let Some(node) = self.nodes.remove(&path) {
                    self.unindex(&path, &node);
                }
                if let Some(parent) = path::parent(&path).and_then(|p| self.nodes.get_mut(p)) {
                    parent.children.remove(path::name(&path));
                    parent.stat = parent_stat;
                }
            }
            Undo::Deleted {
                path,
                node,
                parent_stat,
            } => {
                if let Some(parent) = path::parent(&path).and_then(|p| self.nodes.get_mut(p)) {
                    parent.children.insert(path::name(&path).to_string());
                    parent.stat = parent_stat;
                }
                self.index(&path, &node);
                self.nodes.insert(path, node);
            }
            Undo::DataSet { path, data, stat } => {
                if let Some(n) = self.nodes.get_mut(&path) {
                    n.data = data;
                    n.stat = stat;
                }
            }
            Undo::AclSet { path, acl, stat } => {
                if let Some(n) = self.nodes.get_mut(&path) {
                    n.acl = acl;
                    n.stat = stat;
                }
            }
            Undo::Nothing => {}
        }
    }

    /// Containers that have had children and have none now (candidates for deletion).
    pub fn empty_containers(&self) -> Vec<String> {
        self.containers
            .iter()
            .filter(|p| {
                self.nodes
                    .get(*p)
                    .is_some_and(|n| n.children.is_empty() && n.stat.cversion > 0)
            })
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl() -> Vec<Acl> {
        vec![Acl::world(perms::ALL)]
    }

    #[test]
    fn fresh_tree_matches_zookeeper() {
        let t = DataTree::new();
        let root = t.get("/").unwrap().stat();
        assert_eq!((root.cversion, root.num_children), (-1, 1));
        let zk = t.get("/zookeeper").unwrap().stat();
        assert_eq!((zk.cversion, zk.num_children), (-2, 2));
        let config = t.get("/zookeeper/config").unwrap();
        assert_eq!(config.stat().aversion, -1);
        assert_eq!(config.acl, vec![Acl::world(perms::READ)]);
        assert_eq!(t.get("").unwrap().stat(), root);
        assert_eq!(t.node_count(), 4);
    }

    #[test]
    fn create_delete_update_parent_stats_like_zookeeper() {
        let mut t = DataTree::new();
        let mut ch = Vec::new();
        t.create("/a", Some(b"x".to_vec()), acl(), 0, 1, 2, 100, &mut ch)
            .unwrap();
        let a = t.get("/a").unwrap().stat();
        assert_eq!(
            (a.czxid, a.mzxid, a.pzxid, a.ctime, a.mtime),
            (2, 2, 2, 100, 100)
        );
        assert_eq!((a.version, a.cversion, a.data_length), (0, 0, 1));
        let root = t.get("/").unwrap().stat();
        assert_eq!((root.cversion, root.pzxid, root.num_children), (0, 2, 2));
        t.delete("/a", 3, &mut ch).unwrap();
        let root = t.get("/").unwrap().stat();
        // Deleting a child does not bump the persisted cversion, but the reported one
        // counts it (2 * creations - children).
        assert_eq!((root.cversion, root.pzxid, root.num_children), (1, 3, 1));
        assert_eq!(
            ch,
            vec![Change::Created("/a".into()), Change::Deleted("/a".into())]
        );
    }

    #[test]
    fn errors_and_ephemeral_index() {
        let mut t = DataTree::new();
        let mut ch = Vec::new();
        assert_eq!(
            t.create("/x/y", None, acl(), 0, 1, 2, 0, &mut ch).err(),
            Some(Code::NoNode)
        );
        t.create("/e", None, acl(), 77, 1, 2, 0, &mut ch).unwrap();
        assert_eq!(
            t.create("/e", None, acl(), 77, 2, 3, 0, &mut ch).err(),
            Some(Code::NodeExists)
        );
        assert_eq!(t.ephemerals(77), vec!["/e".to_string()]);
        assert_eq!(t.get("/e").unwrap().stat().ephemeral_owner, 77);
        assert_eq!(t.get("/e").unwrap().stat().data_length, 0);
        t.create("/p", None, acl(), 0, 2, 4, 0, &mut ch).unwrap();
        t.create("/p/c", None, acl(), 0, 1, 5, 0, &mut ch).unwrap();
        assert_eq!(t.delete("/p", 6, &mut ch).err(), Some(Code::NotEmpty));
        t.delete("/e", 6, &mut ch).unwrap();
        assert!(t.ephemerals(77).is_empty());
        assert_eq!(t.all_children_number("/"), 5);
    }

    #[test]
    fn undo_restores_exact_state() {
        let mut t = DataTree::new();
        let mut ch = Vec::new();
        t.create("/a", Some(b"1".to_vec()), acl(), 0, 1, 2, 10, &mut ch)
            .unwrap();
        let before = t.clone();
        let mut undos = vec![
            t.set_data("/a", Some(b"2".to_vec()), 1, 3, 11, &mut ch)
                .unwrap(),
            t.create("/a/b", None, acl(), 9, 1, 3, 11, &mut ch).unwrap(),
            t.delete("/a/b", 3, &mut ch).unwrap(),
            t.create("/c", None, acl(), 0, 2, 3, 11, &mut ch).unwrap(),
            t.set_acl("/c", vec![Acl::world(perms::READ)], 1).unwrap(),
        ];
        while let Some(u) = undos.pop() {
            t.undo(u);
        }
        assert_eq!(t.nodes, before.nodes);
        assert_eq!(t.ephemerals, before.ephemerals);
    }

    #[test]
    fn link_children_rebuilds_structure() {
        let mut t = DataTree::new();
        let mut ch = Vec::new();
        t.create("/a", None, acl(), 0, 1, 2, 0, &mut ch).unwrap();
        t.create("/a/b", None, acl(), 5, 1, 3, 0, &mut ch).unwrap();
        let mut loaded = DataTree::empty();
        for (p, n) in t.nodes() {
            let mut n = n.clone();
            n.children.clear();
            loaded.insert_raw(p.clone(), n);
        }
        assert!(loaded.link_children().is_empty());
        assert_eq!(loaded.nodes, t.nodes);
        assert_eq!(loaded.ephemerals(5), vec!["/a/b".to_string()]);
    }
}
