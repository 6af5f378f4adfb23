//! Snapshots: the whole tree and session table at one zxid, in one CRC-checked file.
//!
//! Layout of `snapshot.<zxid, 16 hex digits>`: `GZKS`, version, zxid, the sessions
//! `(id, timeout, password)`, the znodes `(path, data, acl, stat)`, and a trailing
//! crc32c of everything before it. Written to a temp file, fsynced, renamed, and the
//! directory fsynced, so a snapshot file either is whole or does not exist; loading still
//! checks the CRC and falls back to an older snapshot if the newest is damaged.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use tracing::warn;

use super::jute::{JuteError, Reader, Writer};
use super::proto::Acl;
use super::session::SessionTable;
use super::tree::{DataTree, Node, StatPersisted};
use super::txnlog::{fsync_dir, list};

const MAGIC: &[u8; 4] = b"GZKS";
const VERSION: i32 = 1;

pub fn snapshot_name(zxid: i64) -> String {
    format!("snapshot.{zxid:016x}")
}

/// A session as stored in a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedSession {
    pub id: i64,
    pub timeout: i32,
    pub password: Vec<u8>,
}

/// Serializes the state at `zxid` (cheap enough to do on the state machine thread; the
/// writing to disk can happen elsewhere).
pub fn serialize(zxid: i64, tree: &DataTree, sessions: &SessionTable) -> Vec<u8> {
    let mut w = Writer::new();
    w.write_raw(MAGIC);
    w.write_i32(VERSION);
    w.write_i64(zxid);
    let mut ss: Vec<_> = sessions.iter().collect();
    ss.sort_by_key(|s| s.id);
    w.write_i32(ss.len() as i32);
    for s in ss {
        w.write_i64(s.id);
        w.write_i32(s.timeout);
        w.write_buffer(Some(&s.password));
    }
    let mut nodes: Vec<_> = tree.nodes().collect();
    nodes.sort_by(|a, b| a.0.cmp(b.0));
    w.write_i32(nodes.len() as i32);
    for (path, n) in nodes {
        w.write_string(path);
        w.write_buffer(n.data.as_deref());
        Acl::write_vec(&n.acl, &mut w);
        let s = &n.stat;
        w.write_i64(s.czxid);
        w.write_i64(s.mzxid);
        w.write_i64(s.ctime);
        w.write_i64(s.mtime);
        w.write_i32(s.version);
        w.write_i32(s.cversion);
        w.write_i32(s.aversion);
        w.write_i64(s.ephemeral_owner);
        w.write_i64(s.pzxid);
    }
    let mut bytes = w.into_inner();
    let crc = crc32c::crc32c(&bytes);
    bytes.extend_from_slice(&crc.to_be_bytes());
    bytes
}

/// A loaded snapshot.
#[derive(Debug)]
pub struct Loaded {
    pub zxid: i64,
    pub tree: DataTree,
    pub sessions: Vec<SavedSession>,
}

pub fn deserialize(bytes: &[u8]) -> anyhow::Result<Loaded> {
    if bytes.len() < 4 + 4 + 8 + 4 {
        bail!("snapshot too short");
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    let want = u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if crc32c::crc32c(body) != want {
        bail!("snapshot checksum mismatch");
    }
    if &body[..4] != MAGIC {
        bail!("not a snapshot file");
    }
    let parse = || -> Result<Loaded, JuteError> {
        let mut r = Reader::new(&body[4..]);
        let version = r.read_i32()?;
        if version != VERSION {
            return Err(JuteError::BadLength(version));
        }
        let zxid = r.read_i64()?;
        let n = r.read_vec_len(12)?.unwrap_or(0);
        let mut sessions = Vec::with_capacity(n);
        for _ in 0..n {
            sessions.push(SavedSession {
                id: r.read_i64()?,
                timeout: r.read_i32()?,
                password: r.read_buffer()?.unwrap_or_default(),
            });
        }
        let n = r.read_vec_len(16)?.unwrap_or(0);
        let mut tree = DataTree::empty();
        for _ in 0..n {
            let path = r.read_string()?.unwrap_or_default();
            let data = r.read_buffer()?;
            let acl = Acl::read_vec(&mut r)?.unwrap_or_default();
            let stat = StatPersisted {
                czxid: r.read_i64()?,
                mzxid: r.read_i64()?,
                ctime: r.read_i64()?,
                mtime: r.read_i64()?,
                version: r.read_i32()?,
                cversion: r.read_i32()?,
                aversion: r.read_i32()?,
                ephemeral_owner: r.read_i64()?,
                pzxid: r.read_i64()?,
            };
            tree.insert_raw(
                path,
                Node {
                    data,
                    acl,
                    stat,
                    children: Default::default(),
                },
            );
        }
        Ok(Loaded {
            zxid,
            tree,
            sessions,
        })
    };
    let mut loaded = parse().map_err(|e| anyhow::anyhow!("snapshot undecodable: {e}"))?;
    let orphans = loaded.tree.link_children();
    if !orphans.is_empty() || loaded.tree.get("/").is_none() {
        bail!("snapshot has nodes without parents: {orphans:?}");
    }
    Ok(loaded)
}

/// Writes a serialized snapshot durably; returns its path.
pub fn write(dir: &Path, zxid: i64, bytes: &[u8]) -> anyhow::Result<PathBuf> {
    let path = dir.join(snapshot_name(zxid));
    let tmp = dir.join(format!("{}.tmp", snapshot_name(zxid)));
    let mut f = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, &path)?;
    fsync_dir(dir)?;
    Ok(path)
}

/// Loads the newest snapshot that is intact, or `None` if there is none at all.
pub fn load_latest(dir: &Path) -> anyhow::Result<Option<Loaded>> {
    let snaps = list(dir, "snapshot")?;
    for (_, path) in snaps.iter().rev() {
        let mut bytes = Vec::new();
        File::open(path)?.read_to_end(&mut bytes)?;
        match deserialize(&bytes) {
            Ok(l) => return Ok(Some(l)),
            Err(e) => warn!(file = %path.display(), "skipping damaged snapshot: {e:#}"),
        }
    }
    Ok(None)
}

/// Deletes all but the newest `keep` snapshots, and the logs only they needed.
pub fn purge(dir: &Path, keep: usize) -> anyhow::Result<()> {
    let snaps = list(dir, "snapshot")?;
    if snaps.len() <= keep {
        return Ok(());
    }
    let oldest_kept = snaps[snaps.len() - keep].0;
    for (_, p) in &snaps[..snaps.len() - keep] {
        fs::remove_file(p)?;
    }
    // A log file starts right after the snapshot it follows; those starting at or below
    // the oldest kept snapshot's zxid hold nothing that snapshot lacks.
    for (start, p) in list(dir, "log")? {
        if start <= oldest_kept {
            fs::remove_file(p)?;
        }
    }
    // Leftover temp files from a crash mid-snapshot.
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().ends_with(".tmp") {
            let _ = fs::remove_file(entry.path());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zookeeper::proto::perms;

    fn sample() -> (DataTree, SessionTable) {
        let mut t = DataTree::new();
        let mut ch = Vec::new();
        t.create(
            "/a",
            None,
            vec![Acl::world(perms::ALL)],
            0,
            1,
            2,
            5,
            &mut ch,
        )
        .unwrap();
        t.create(
            "/a/e",
            Some(b"x".to_vec()),
            vec![Acl::world(perms::READ)],
            77,
            1,
            3,
            6,
            &mut ch,
        )
        .unwrap();
        let mut s = SessionTable::new(10);
        s.restore(77, 6000, vec![9; 16]);
        (t, s)
    }

    #[test]
    fn round_trip() {
        let (t, s) = sample();
        let bytes = serialize(3, &t, &s);
        let l = deserialize(&bytes).unwrap();
        assert_eq!(l.zxid, 3);
        assert_eq!(
            l.sessions,
            vec![SavedSession {
                id: 77,
                timeout: 6000,
                password: vec![9; 16]
            }]
        );
        for (p, n) in t.nodes() {
            assert_eq!(l.tree.get(p), Some(n), "{p}");
        }
        assert_eq!(l.tree.node_count(), t.node_count());
        assert_eq!(l.tree.ephemerals(77), vec!["/a/e".to_string()]);
    }

    #[test]
    fn damaged_newest_falls_back_and_purge_keeps_needed_logs() {
        let dir = tempfile::tempdir().unwrap();
        let (t, s) = sample();
        write(dir.path(), 3, &serialize(3, &t, &s)).unwrap();
        let p = write(dir.path(), 9, &serialize(9, &t, &s)).unwrap();
        let mut bytes = fs::read(&p).unwrap();
        bytes[20] ^= 1;
        fs::write(&p, bytes).unwrap();
        assert_eq!(load_latest(dir.path()).unwrap().unwrap().zxid, 3);

        for start in [1i64, 4, 10] {
            fs::write(
                dir.path().join(crate::zookeeper::txnlog::log_name(start)),
                b"",
            )
            .unwrap();
        }
        write(dir.path(), 12, &serialize(12, &t, &s)).unwrap();
        purge(dir.path(), 2).unwrap();
        let snaps: Vec<i64> = list(dir.path(), "snapshot")
            .unwrap()
            .into_iter()
            .map(|x| x.0)
            .collect();
        assert_eq!(snaps, vec![9, 12]);
        let logs: Vec<i64> = list(dir.path(), "log")
            .unwrap()
            .into_iter()
            .map(|x| x.0)
            .collect();
        assert_eq!(logs, vec![10]);
    }
}
