//! Kafka's `LogDirFailureChannel`: the one place an I/O failure of a log directory is
//! recorded. After a failed write or fsync the page cache and the files of that directory
//! can no longer be trusted (the "fsyncgate" lesson: a failed fsync may have dropped the
//! dirty pages, and a retried fsync then reports success), so the directory is taken
//! offline for the life of the process: every log in it refuses all further operations
//! (KAFKA_STORAGE_ERROR), nothing more is written there (no checkpoints, no clean-shutdown
//! marker, so the next start recovers it), and the replica layer, which subscribes here,
//! stops serving its partitions and moves leadership away (Kafka's
//! `ReplicaManager.handleLogDirFailure`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::error::StorageError;

#[derive(Debug)]
pub struct LogDirFailureChannel {
    dirs: Vec<PathBuf>,
    /// Why each directory went offline (`None`: online).
    offline: Mutex<Vec<Option<String>>>,
    /// The same as flags, for the check every log operation makes (no shared lock on the
    /// append and fetch paths).
    flags: Vec<AtomicBool>,
    /// Bumped on every newly failed directory.
    events: tokio::sync::watch::Sender<u64>,
}

impl LogDirFailureChannel {
    pub fn new(dirs: &[PathBuf]) -> Arc<Self> {
        Arc::new(LogDirFailureChannel {
            dirs: dirs.to_vec(),
            offline: Mutex::new(vec![None; dirs.len()]),
            flags: dirs.iter().map(|_| AtomicBool::new(false)).collect(),
            events: tokio::sync::watch::channel(0).0,
        })
    }

    fn offline(&self) -> std::sync::MutexGuard<'_, Vec<Option<String>>> {
        // Every mutation is one assignment: a poisoned lock still holds consistent data.
        crate::sync::lock(&self.offline)
    }

    /// Marks directory `idx` offline (idempotent). Returns true if it was online.
    pub fn fail(&self, idx: usize, why: &str) -> bool {
        {
            let mut off = self.offline();
            match off.get_mut(idx) {
                Some(slot @ None) => *slot = Some(why.to_string()),
                _ => return false,
            }
            self.flags[idx].store(true, Ordering::Release);
        }
        tracing::error!(dir = %self.dirs[idx].display(), error = why, "log directory failed; taking it offline");
        self.events.send_modify(|n| *n += 1);
        true
    }

    pub fn is_offline(&self, idx: usize) -> bool {
        self.flags
            .get(idx)
            .is_some_and(|f| f.load(Ordering::Acquire))
    }

    /// Why directory `idx` is offline.
    pub fn reason(&self, idx: usize) -> Option<String> {
        self.offline().get(idx).cloned().flatten()
    }

    /// The offline directories with the reason.
    pub fn offline_dirs(&self) -> Vec<(PathBuf, String)> {
        self.offline()
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.clone().map(|why| (self.dirs[i].clone(), why)))
            .collect()
    }

    /// True when every directory is offline (Kafka then halts the broker).
    pub fn all_offline(&self) -> bool {
        self.flags.iter().all(|f| f.load(Ordering::Acquire))
    }

    pub fn dir_index(&self, dir: &Path) -> Option<usize> {
        self.dirs.iter().position(|d| d == dir)
    }

    /// Fires once per newly failed directory.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.events.subscribe()
    }
}

/// A log's link to the failure channel: which directory it lives in.
#[derive(Debug, Clone)]
pub struct DirFailureHook {
    pub(super) channel: Arc<LogDirFailureChannel>,
    pub(super) dir_idx: usize,
}

impl DirFailureHook {
    pub fn new(channel: Arc<LogDirFailureChannel>, dir_idx: usize) -> Self {
        DirFailureHook { channel, dir_idx }
    }
    pub fn is_offline(&self) -> bool {
        self.channel.is_offline(self.dir_idx)
    }
    pub fn fail(&self, why: &str) {
        self.channel.fail(self.dir_idx, why);
    }
}

/// Whether an error is a failure of the disk (as opposed to a refused argument, corrupt
/// bytes or a closed log): Kafka's `IOException`s.
pub trait DiskFailure {
    fn disk_failure(&self) -> Option<String>;
}

impl DiskFailure for StorageError {
    fn disk_failure(&self) -> Option<String> {
        matches!(self, StorageError::Io(..)).then(|| self.to_string())
    }
}

impl DiskFailure for std::io::Error {
    fn disk_failure(&self) -> Option<String> {
        // `StorageError`s that are not I/O errors are carried as `ErrorKind::Other`, a kind
        // the OS never produces (std's documented contract), so every other kind is real.
        (self.kind() != std::io::ErrorKind::Other).then(|| self.to_string())
    }
}

impl DiskFailure for super::error::AppendError {
    fn disk_failure(&self) -> Option<String> {
        match self {
            super::error::AppendError::Storage(e) => e.disk_failure(),
            _ => None,
        }
    }
}

impl DiskFailure for super::error::ReadError {
    fn disk_failure(&self) -> Option<String> {
        match self {
            super::error::ReadError::Storage(e) => e.disk_failure(),
            _ => None,
        }
    }
}
