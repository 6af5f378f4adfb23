//! Kafka's checkpoint text format (`CheckpointFile`): a version line, a count line, then one
//! entry per line, written atomically (tmp file + fsync + rename + fsync of the directory).
//! Used for `leader-epoch-checkpoint` (`epoch startOffset`), the log-dir level
//! `recovery-point-offset-checkpoint` / `log-start-offset-checkpoint` and, by the replica
//! layer, `replication-offset-checkpoint` (`topic partition offset`). Also holds the
//! `partition.metadata` file (`version: 0\ntopic_id: <base64url uuid>`).

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::error::{IoContext, StorageError};
use super::TopicPartition;

/// Writes `contents` to `path` atomically: `<path>.tmp`, fsync, rename, fsync parent dir.
pub fn atomic_write(path: &Path, contents: &[u8]) -> Result<(), StorageError> {
    let tmp = tmp_path(path);
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .ctx(&tmp)?;
        f.write_all(contents).ctx(&tmp)?;
        super::fileio::sync(&f, &tmp, false).ctx(&tmp)?;
    }
    fs::rename(&tmp, path).ctx(path)?;
    if let Some(parent) = path.parent() {
        fsync_dir(parent)?;
    }
    Ok(())
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(".tmp");
    PathBuf::from(s)
}

/// fsyncs a directory so renames/creations in it are durable.
pub fn fsync_dir(dir: &Path) -> Result<(), StorageError> {
    // The fault hook probes the parents of the path it is given: hand it a child name.
    File::open(dir)
        .and_then(|d| super::fileio::sync(&d, &dir.join("_"), false))
        .ctx(dir)
}

/// A checkpoint file holding lines of type `T`.
pub trait CheckpointFormat: Sized {
    /// Formats one entry as a line (no newline).
    fn format_line(&self) -> String;
    /// Parses one line; `None` if malformed.
    fn parse_line(line: &str) -> Option<Self>;
}

/// Generic reader/writer of Kafka checkpoint files (version 0 unless told otherwise).
#[derive(Debug, Clone)]
pub struct CheckpointFile {
    path: PathBuf,
    version: i32,
}

impl CheckpointFile {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        CheckpointFile {
            path: path.into(),
            version: 0,
        }
    }
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes all entries atomically.
    pub fn write<T: CheckpointFormat>(&self, entries: &[T]) -> Result<(), StorageError> {
        let mut s = format!("{}\n{}\n", self.version, entries.len());
        for e in entries {
            s.push_str(&e.format_line());
            s.push('\n');
        }
        atomic_write(&self.path, s.as_bytes())
    }

    /// Reads the entries; a missing file reads as empty. Any malformed content (unknown
    /// version, bad count, bad line, count mismatch) is `StorageError::Corrupt`.
    pub fn read<T: CheckpointFormat>(&self) -> Result<Vec<T>, StorageError> {
        let text = match fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StorageError::io(&self.path, e)),
        };
        let corrupt = |why: &str| {
            StorageError::Corrupt(format!(
                "malformed checkpoint file {}: {why}",
                self.path.display()
            ))
        };
        let text = std::str::from_utf8(&text).map_err(|_| corrupt("not UTF-8"))?;
        let mut lines = text.lines();
        let version: i32 = lines
            .next()
            .and_then(|l| l.trim().parse().ok())
            .ok_or_else(|| corrupt("missing version line"))?;
        if version != self.version {
            return Err(corrupt(&format!("unrecognized version {version}")));
        }
        let count: usize = lines
            .next()
            .and_then(|l| l.trim().parse().ok())
            .ok_or_else(|| corrupt("missing count line"))?;
        let mut out = Vec::new();
        for line in lines {
            if line.trim().is_empty() {
                continue;
            }
            let e = T::parse_line(line).ok_or_else(|| corrupt(&format!("bad line {line:?}")))?;
            out.push(e);
            if out.len() > count {
                return Err(corrupt(&format!("more than the {count} declared entries")));
            }
        }
        if out.len() != count {
            return Err(corrupt(&format!(
                "expected {count} entries, found {}",
                out.len()
            )));
        }
        Ok(out)
    }
}

/// `epoch startOffset` line of `leader-epoch-checkpoint`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

impl CheckpointFormat for EpochEntry {
    fn format_line(&self) -> String {
        format!("{} {}", self.epoch, self.start_offset)
    }
    fn parse_line(line: &str) -> Option<Self> {
        let mut it = line.split_whitespace();
        let epoch = it.next()?.parse().ok()?;
        let start_offset = it.next()?.parse().ok()?;
        if it.next().is_some() || epoch < 0 || start_offset < 0 {
            return None;
        }
        Some(EpochEntry {
            epoch,
            start_offset,
        })
    }
}

/// `topic partition offset` line of the offset checkpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionOffset {
    pub tp: TopicPartition,
    pub offset: i64,
}

impl CheckpointFormat for PartitionOffset {
    fn format_line(&self) -> String {
        format!("{} {} {}", self.tp.topic, self.tp.partition, self.offset)
    }
    fn parse_line(line: &str) -> Option<Self> {
        let mut it = line.split_whitespace();
        let topic = it.next()?.to_string();
        let partition = it.next()?.parse().ok()?;
        let offset = it.next()?.parse().ok()?;
        if it.next().is_some() {
            return None;
        }
        Some(PartitionOffset {
            tp: TopicPartition { topic, partition },
            offset,
        })
    }
}

/// An offset checkpoint (`recovery-point-offset-checkpoint`, `log-start-offset-checkpoint`,
/// `replication-offset-checkpoint`): a map from partition to offset.
#[derive(Debug, Clone)]
pub struct OffsetCheckpointFile {
    file: CheckpointFile,
}

impl OffsetCheckpointFile {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        OffsetCheckpointFile {
            file: CheckpointFile::new(path),
        }
    }
    pub fn path(&self) -> &Path {
        self.file.path()
    }
    pub fn write(&self, offsets: &BTreeMap<TopicPartition, i64>) -> Result<(), StorageError> {
        let entries: Vec<PartitionOffset> = offsets
            .iter()
            .map(|(tp, &offset)| PartitionOffset {
                tp: tp.clone(),
                offset,
            })
            .collect();
        self.file.write(&entries)
    }
    pub fn read(&self) -> Result<BTreeMap<TopicPartition, i64>, StorageError> {
        Ok(self
            .file
            .read::<PartitionOffset>()?
            .into_iter()
            .map(|e| (e.tp, e.offset))
            .collect())
    }
}

const BASE64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Kafka's `Uuid.toString()`: URL-safe base64 without padding (22 characters).
pub fn uuid_to_base64url(id: &[u8; 16]) -> String {
    let mut out = String::with_capacity(22);
    let mut bits: u32 = 0;
    let mut nbits = 0;
    for &b in id {
        bits = (bits << 8) | b as u32;
        nbits += 8;
        while nbits >= 6 {
            nbits -= 6;
            out.push(BASE64URL[((bits >> nbits) & 0x3f) as usize] as char);
        }
    }
    if nbits > 0 {
        out.push(BASE64URL[((bits << (6 - nbits)) & 0x3f) as usize] as char);
    }
    out
}

/// Inverse of [`uuid_to_base64url`].
pub fn uuid_from_base64url(s: &str) -> Option<[u8; 16]> {
    let s = s.trim_end_matches('=');
    if s.len() != 22 {
        return None;
    }
    let mut out = Vec::with_capacity(16);
    let mut bits: u32 = 0;
    let mut nbits = 0;
    for c in s.bytes() {
        let v = BASE64URL.iter().position(|&x| x == c)? as u32;
        bits = (bits << 6) | v;
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            out.push(((bits >> nbits) & 0xff) as u8);
        }
    }
    out.try_into().ok()
}

/// `partition.metadata`: `version: 0\ntopic_id: <base64url uuid>`.
pub fn write_partition_metadata(dir: &Path, topic_id: &[u8; 16]) -> Result<(), StorageError> {
    let body = format!("version: 0\ntopic_id: {}", uuid_to_base64url(topic_id));
    atomic_write(&dir.join(PARTITION_METADATA_FILE), body.as_bytes())
}

/// Reads `partition.metadata` if present.
pub fn read_partition_metadata(dir: &Path) -> Result<Option<[u8; 16]>, StorageError> {
    let path = dir.join(PARTITION_METADATA_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            return Err(StorageError::Corrupt(format!(
                "{} is not UTF-8",
                path.display()
            )))
        }
        Err(e) => return Err(StorageError::io(&path, e)),
    };
    let corrupt = |why: &str| StorageError::Corrupt(format!("{}: {why}", path.display()));
    let mut version = None;
    let mut id = None;
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            return Err(corrupt(&format!("malformed line {line:?}")));
        };
        match k.trim() {
            "version" => version = Some(v.trim().to_string()),
            "topic_id" => id = Some(v.trim().to_string()),
            other => return Err(corrupt(&format!("unknown key {other:?}"))),
        }
    }
    if version.as_deref() != Some("0") {
        return Err(corrupt("unsupported or missing version"));
    }
    let id = id.ok_or_else(|| corrupt("missing topic_id"))?;
    uuid_from_base64url(&id)
        .map(Some)
        .ok_or_else(|| corrupt(&format!("invalid topic id {id:?}")))
}

pub const PARTITION_METADATA_FILE: &str = "partition.metadata";
pub const LEADER_EPOCH_CHECKPOINT_FILE: &str = "leader-epoch-checkpoint";
pub const RECOVERY_POINT_CHECKPOINT_FILE: &str = "recovery-point-offset-checkpoint";
pub const LOG_START_OFFSET_CHECKPOINT_FILE: &str = "log-start-offset-checkpoint";
pub const CLEAN_SHUTDOWN_FILE: &str = ".kafka_cleanshutdown";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_checkpoint_round_trip_and_format() {
        let dir = tempfile::tempdir().unwrap();
        let f = OffsetCheckpointFile::new(dir.path().join("cp"));
        assert!(f.read().unwrap().is_empty(), "missing file reads empty");
        let mut m = BTreeMap::new();
        m.insert(TopicPartition::new("a-b.c", 3), 42);
        m.insert(TopicPartition::new("x", 0), 0);
        f.write(&m).unwrap();
        assert_eq!(f.read().unwrap(), m);
        let text = fs::read_to_string(f.path()).unwrap();
        assert_eq!(text, "0\n2\na-b.c 3 42\nx 0 0\n");
        assert!(!dir.path().join("cp.tmp").exists());
    }

    #[test]
    fn checkpoint_rejects_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cp");
        let f = CheckpointFile::new(&p);
        for bad in [
            "",
            "1\n0\n",
            "0\n2\n1 5\n",
            "0\n1\n1 5\n2 6\n",
            "0\nx\n",
            "0\n1\nfoo bar\n",
            "\u{0}\u{1}",
        ] {
            fs::write(&p, bad).unwrap();
            assert!(
                matches!(f.read::<EpochEntry>(), Err(StorageError::Corrupt(_))),
                "{bad:?}"
            );
        }
        fs::write(&p, "0\n2\n0 0\n3 150\n").unwrap();
        assert_eq!(
            f.read::<EpochEntry>().unwrap(),
            vec![
                EpochEntry {
                    epoch: 0,
                    start_offset: 0
                },
                EpochEntry {
                    epoch: 3,
                    start_offset: 150
                }
            ]
        );
    }

    #[test]
    fn uuid_base64url() {
        let id = [0xffu8; 16];
        let s = uuid_to_base64url(&id);
        assert_eq!(s.len(), 22);
        assert_eq!(s, "_____________________w");
        let id: [u8; 16] = core::array::from_fn(|i| (i * 17) as u8);
        assert_eq!(uuid_from_base64url(&uuid_to_base64url(&id)), Some(id));
        assert_eq!(uuid_from_base64url("short"), None);
        let dir = tempfile::tempdir().unwrap();
        write_partition_metadata(dir.path(), &id).unwrap();
        assert_eq!(read_partition_metadata(dir.path()).unwrap(), Some(id));
        fs::write(dir.path().join(PARTITION_METADATA_FILE), "garbage").unwrap();
        assert!(read_partition_metadata(dir.path()).is_err());
    }
}
