//! The log directories of a broker (Kafka's `LogManager`): locks each directory, discovers
//! and recovers partition directories (a partition that cannot load is reported offline,
//! the others load), creates logs in the directory with the fewest partitions, writes the
//! log-dir level checkpoints and the clean-shutdown marker, and runs retention, flushing
//! and cleaning when the broker's timers call it. A directory with an I/O failure (at
//! load, or later in any of its logs, reported through the [`LogDirFailureChannel`]) is
//! offline until restart: its logs are no longer listed or served and nothing more is
//! written there. Internally synchronized; share it in an `Arc`. Locking order: the
//! manager's own lock is never held while a log is locked.

use crate::sync::lock;
use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::checkpoint::{
    atomic_write, fsync_dir, OffsetCheckpointFile, CLEAN_SHUTDOWN_FILE,
    LOG_START_OFFSET_CHECKPOINT_FILE, RECOVERY_POINT_CHECKPOINT_FILE,
};
use super::config::LogConfig;
use super::dir_failure::{DirFailureHook, LogDirFailureChannel};
use super::error::{IoContext, StorageError};
use super::log::Log;
use super::TopicPartition;

/// Name of the per-directory lock file (held with an exclusive advisory lock).
pub const LOCK_FILE: &str = ".lock";
/// Suffix Kafka gives a partition directory pending deletion.
pub const DELETE_DIR_SUFFIX: &str = "-delete";

#[derive(Debug)]
struct Entry {
    dir_idx: usize,
    log: Arc<Mutex<Log>>,
}

#[derive(Debug, Default)]
struct State {
    logs: HashMap<TopicPartition, Entry>,
    offline: BTreeMap<TopicPartition, (usize, String)>,
    shut_down: bool,
}

#[derive(Debug)]
pub struct LogManager {
    dirs: Vec<PathBuf>,
    locks: Mutex<Vec<Option<File>>>,
    state: Mutex<State>,
    /// Directories taken offline by an I/O failure (Kafka's `LogDirFailureChannel`).
    failures: Arc<LogDirFailureChannel>,
    /// Directories that failed while loading: which partitions they hold is unknown.
    failed_at_load: Vec<bool>,
    /// `log.cleaner.dedupe.buffer.size`: memory of one cleaning pass's offset map.
    dedupe_buffer_bytes: std::sync::atomic::AtomicUsize,
}

impl LogManager {
    /// Opens the log directories, loading every partition with `LogConfig::default()`
    /// (call `Log::set_config` once topic configs are known).
    pub fn open(log_dirs: &[PathBuf], now_ms: i64) -> Result<LogManager, StorageError> {
        Self::open_with_config(log_dirs, |_| LogConfig::default(), now_ms)
    }

    /// Opens the log directories, loading each partition with `config_for(tp)`.
    pub fn open_with_config(
        log_dirs: &[PathBuf],
        config_for: impl Fn(&TopicPartition) -> LogConfig,
        now_ms: i64,
    ) -> Result<LogManager, StorageError> {
        if log_dirs.is_empty() {
            return Err(StorageError::InvalidArgument(
                "no log directories given".into(),
            ));
        }
        let mut locks = Vec::new();
        let mut unusable: Vec<Option<StorageError>> = Vec::new();
        for dir in log_dirs {
            match lock_dir(dir) {
                Ok(f) => {
                    locks.push(Some(f));
                    unusable.push(None);
                }
                // Another broker owns it, or it is the only directory: do not start.
                Err(e @ StorageError::DirLocked(_)) => return Err(e),
                Err(e) if log_dirs.len() == 1 => return Err(e),
                // Kafka: a directory that cannot be created or locked is offline.
                Err(e) => {
                    locks.push(None);
                    unusable.push(Some(e));
                }
            }
        }
        let mut state = State::default();
        let failures = LogDirFailureChannel::new(log_dirs);
        let mut failed_at_load = vec![false; log_dirs.len()];
        for (idx, dir) in log_dirs.iter().enumerate() {
            if let Some(e) = &unusable[idx] {
                failures.fail(idx, &e.to_string());
                failed_at_load[idx] = true;
                continue;
            }
            if let Err(e) = load_dir(idx, dir, &config_for, now_ms, &mut state, &failures) {
                // Kafka: a directory that cannot be loaded is offline; the broker starts
                // with the others and stops only if none is left.
                if !matches!(e, StorageError::Io(..)) || log_dirs.len() == 1 {
                    return Err(e);
                }
                failures.fail(idx, &e.to_string());
                failed_at_load[idx] = true;
                state.logs.retain(|_, entry| entry.dir_idx != idx);
            }
        }
        if failures.all_offline() {
            return Err(StorageError::InvalidArgument(
                "every log directory failed to load".into(),
            ));
        }
        Ok(LogManager {
            dirs: log_dirs.to_vec(),
            locks: Mutex::new(locks),
            state: Mutex::new(state),
            failures,
            failed_at_load,
            dedupe_buffer_bytes: std::sync::atomic::AtomicUsize::new(
                super::cleaner::DEDUPE_BUFFER_BYTES,
            ),
        })
    }

    /// Sets `log.cleaner.dedupe.buffer.size` for the passes that follow.
    pub fn set_dedupe_buffer_bytes(&self, bytes: usize) {
        self.dedupe_buffer_bytes
            .store(bytes, std::sync::atomic::Ordering::Relaxed);
    }

    /// The failure channel of the log directories: subscribe to learn of failed ones.
    pub fn failure_channel(&self) -> &Arc<LogDirFailureChannel> {
        &self.failures
    }

    /// Takes a log directory offline after an I/O failure seen outside a log (e.g. the
    /// replica layer's high-watermark checkpoint). Returns false for an unknown path.
    pub fn fail_dir(&self, dir: &Path, why: &str) -> bool {
        match self.failures.dir_index(dir) {
            Some(idx) => {
                self.failures.fail(idx, why);
                true
            }
            None => false,
        }
    }

    /// The online log directories.
    pub fn live_log_dirs(&self) -> Vec<PathBuf> {
        (0..self.dirs.len())
            .filter(|&i| !self.failures.is_offline(i))
            .map(|i| self.dirs[i].clone())
            .collect()
    }

    pub fn log_dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// The log directory holding `tp`.
    pub fn log_dir_of(&self, tp: &TopicPartition) -> Option<PathBuf> {
        let st = lock(&self.state);
        st.logs.get(tp).map(|e| self.dirs[e.dir_idx].clone())
    }

    /// The log of `tp`, unless its directory is offline.
    pub fn get(&self, tp: &TopicPartition) -> Option<Arc<Mutex<Log>>> {
        lock(&self.state)
            .logs
            .get(tp)
            .filter(|e| !self.failures.is_offline(e.dir_idx))
            .map(|e| e.log.clone())
    }

    /// The existing log, or a new one in the online directory with the fewest partitions.
    ///
    /// KIP-516: an existing log whose `partition.metadata` names another topic id belongs
    /// to an earlier topic of the same name (deleted and re-created while this broker was
    /// away). It is never served: its directory is renamed aside for deletion
    /// (`<topic>-<p>.<uniqueId>-delete`, removed now or at the next start, as Kafka's
    /// `LogManager.asyncDelete`) and a fresh log is created, which replication refills
    /// from the leader. A log without a topic id (written before ids) adopts this one.
    pub fn get_or_create(
        &self,
        tp: &TopicPartition,
        config: LogConfig,
        topic_id: Option<[u8; 16]>,
        now_ms: i64,
    ) -> Result<Arc<Mutex<Log>>, StorageError> {
        // Lock order: the manager's lock is never held while a log is locked, so the
        // existing log is looked at with the manager's lock released.
        let existing = {
            let st = lock(&self.state);
            if st.shut_down {
                return Err(StorageError::Closed("log manager".into()));
            }
            st.logs.get(tp).map(|e| (e.dir_idx, e.log.clone()))
        };
        let mut replace = None;
        if let Some((dir_idx, log)) = existing {
            if self.failures.is_offline(dir_idx) {
                return Err(StorageError::LogDirOffline(tp.to_string()));
            }
            let existing_id = lock(&log).topic_id();
            match (existing_id, topic_id) {
                (Some(old), Some(new)) if old != new => {
                    self.rename_for_deletion(tp, dir_idx, &log)?;
                    replace = Some((dir_idx, log));
                }
                (None, Some(new)) => {
                    lock(&log).set_topic_id(new)?;
                    return Ok(log);
                }
                _ => return Ok(log),
            }
        }
        let mut st = lock(&self.state);
        if st.shut_down {
            return Err(StorageError::Closed("log manager".into()));
        }
        let dir_idx = match replace {
            Some((dir_idx, old)) => {
                if st.logs.get(tp).is_some_and(|e| Arc::ptr_eq(&e.log, &old)) {
                    st.logs.remove(tp);
                }
                dir_idx
            }
            None => {
                if let Some(e) = st.logs.get(tp) {
                    return Ok(e.log.clone()); // created meanwhile
                }
                if let Some((_, why)) = st.offline.get(tp) {
                    return Err(StorageError::InvalidArgument(format!(
                        "partition {tp} is offline: {why}"
                    )));
                }
                // Kafka's `getOrCreateLog`: while a directory whose contents are unknown
                // (it failed to load) is offline, an existing replica may be in it, and an
                // empty stand-in elsewhere could be elected leader and lose its data.
                if let Some(idx) = self.failed_at_load.iter().position(|&f| f) {
                    return Err(StorageError::LogDirOffline(format!(
                        "{tp}: cannot create its log while {} (failed to load) is offline",
                        self.dirs[idx].display()
                    )));
                }
                let mut counts = vec![0usize; self.dirs.len()];
                for e in st.logs.values() {
                    counts[e.dir_idx] += 1;
                }
                (0..self.dirs.len())
                    .filter(|&i| !self.failures.is_offline(i))
                    .min_by_key(|&i| counts[i])
                    .ok_or_else(|| StorageError::LogDirOffline(tp.to_string()))?
            }
        };
        let path = self.dirs[dir_idx].join(tp.dir_name());
        let mut log = match Log::create(&path, tp, config, topic_id, now_ms) {
            Ok(log) => log,
            Err(e) => {
                if let StorageError::Io(..) = e {
                    self.failures.fail(dir_idx, &format!("creating {tp}: {e}"));
                }
                return Err(e);
            }
        };
        log.set_failure_hook(DirFailureHook::new(self.failures.clone(), dir_idx));
        tracing::info!(partition = %tp, dir = %self.dirs[dir_idx].display(), "created log");
        let log = Arc::new(Mutex::new(log));
        st.logs.insert(
            tp.clone(),
            Entry {
                dir_idx,
                log: log.clone(),
            },
        );
        Ok(log)
    }

    /// Renames a stale log's directory to `<topic>-<p>.<uniqueId>-delete` and removes it
    /// (a failure to remove leaves it for the next start, which deletes `-delete` dirs).
    fn rename_for_deletion(
        &self,
        tp: &TopicPartition,
        dir_idx: usize,
        log: &Arc<Mutex<Log>>,
    ) -> Result<(), StorageError> {
        let mut log = lock(log);
        let from = log.dir().to_path_buf();
        let unique = uuid::Uuid::new_v4().simple().to_string();
        let to = self.dirs[dir_idx].join(format!("{}.{unique}{DELETE_DIR_SUFFIX}", tp.dir_name()));
        tracing::warn!(partition = %tp, from = %from.display(), to = %to.display(), "log belongs to an earlier topic of the same name (topic id differs); renaming it for deletion");
        let renamed = fs::rename(&from, &to)
            .ctx(&from)
            .and_then(|()| fsync_dir(&self.dirs[dir_idx]));
        if let Err(e) = renamed {
            self.failures.fail(dir_idx, &e.to_string());
            return Err(e);
        }
        log.mark_closed();
        if let Err(e) = fs::remove_dir_all(&to) {
            tracing::warn!(dir = %to.display(), error = %e, "cannot remove stale log now; removed at the next start");
        }
        Ok(())
    }

    /// Every log in an online directory.
    pub fn all(&self) -> Vec<(TopicPartition, Arc<Mutex<Log>>)> {
        let st = lock(&self.state);
        let mut v: Vec<_> = st
            .logs
            .iter()
            .filter(|(_, e)| !self.failures.is_offline(e.dir_idx))
            .map(|(tp, e)| (tp.clone(), e.log.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    fn all_with_dirs(&self) -> Vec<(TopicPartition, usize, Arc<Mutex<Log>>)> {
        let st = lock(&self.state);
        st.logs
            .iter()
            .filter(|(_, e)| !self.failures.is_offline(e.dir_idx))
            .map(|(tp, e)| (tp.clone(), e.dir_idx, e.log.clone()))
            .collect()
    }

    /// Deletes a partition's data from disk (also an offline partition's directory).
    pub fn delete(&self, tp: &TopicPartition) -> Result<(), StorageError> {
        let (entry, offline) = {
            let mut st = lock(&self.state);
            if let Some(e) = st.logs.get(tp) {
                if self.failures.is_offline(e.dir_idx) {
                    // Nothing is written to a failed directory (Kafka cannot delete there
                    // either); the next start, with the directory repaired, does it.
                    return Err(StorageError::LogDirOffline(tp.to_string()));
                }
            }
            (st.logs.remove(tp), st.offline.remove(tp))
        };
        if let Some(e) = entry {
            if let Err(err) = lock(&e.log).delete_in_place() {
                if let StorageError::Io(..) = err {
                    self.failures
                        .fail(e.dir_idx, &format!("deleting {tp}: {err}"));
                }
                return Err(err);
            }
            tracing::info!(partition = %tp, "deleted log");
        } else if let Some((idx, _)) = offline {
            let path = self.dirs[idx].join(tp.dir_name());
            match fs::remove_dir_all(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StorageError::io(&path, e)),
            }
        }
        Ok(())
    }

    /// Partitions that failed to load or whose directory is offline, with the reason.
    pub fn offline_partitions(&self) -> Vec<(TopicPartition, String)> {
        let st = lock(&self.state);
        let mut out: Vec<_> = st
            .offline
            .iter()
            .map(|(tp, (_, why))| (tp.clone(), why.clone()))
            .collect();
        for (tp, e) in &st.logs {
            if let Some(why) = self.failures.reason(e.dir_idx) {
                out.push((tp.clone(), format!("log directory offline: {why}")));
            }
        }
        out
    }

    /// True if `tp` failed to load or lives in an offline directory.
    pub fn is_offline(&self, tp: &TopicPartition) -> bool {
        let st = lock(&self.state);
        st.offline.contains_key(tp)
            || st
                .logs
                .get(tp)
                .is_some_and(|e| self.failures.is_offline(e.dir_idx))
    }

    /// The partitions hosted in log directory `dir`.
    pub fn partitions_in(&self, dir: &Path) -> Vec<TopicPartition> {
        let Some(idx) = self.failures.dir_index(dir) else {
            return Vec::new();
        };
        let st = lock(&self.state);
        st.logs
            .iter()
            .filter(|(_, e)| e.dir_idx == idx)
            .map(|(tp, _)| tp.clone())
            .collect()
    }

    fn write_offset_checkpoint(
        &self,
        file: &str,
        value: impl Fn(&Log) -> i64,
    ) -> Result<(), StorageError> {
        let mut per_dir: Vec<BTreeMap<TopicPartition, i64>> =
            vec![BTreeMap::new(); self.dirs.len()];
        for (tp, idx, log) in self.all_with_dirs() {
            let log = lock(&log);
            if !log.dir().exists() {
                continue;
            }
            per_dir[idx].insert(tp, value(&log));
        }
        let mut first_err = None;
        for (idx, (dir, map)) in self.dirs.iter().zip(per_dir).enumerate() {
            if self.failures.is_offline(idx) {
                continue; // nothing more is written to a failed directory
            }
            if let Err(e) = OffsetCheckpointFile::new(dir.join(file)).write(&map) {
                self.failures.fail(idx, &e.to_string());
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Writes `recovery-point-offset-checkpoint` in every log directory.
    pub fn checkpoint_recovery_points(&self) -> Result<(), StorageError> {
        self.write_offset_checkpoint(RECOVERY_POINT_CHECKPOINT_FILE, |l| l.recovery_point())
    }

    /// Writes `log-start-offset-checkpoint` in every log directory.
    pub fn checkpoint_log_start_offsets(&self) -> Result<(), StorageError> {
        self.write_offset_checkpoint(LOG_START_OFFSET_CHECKPOINT_FILE, |l| l.log_start_offset())
    }

    /// Applies retention to every log; `max_deletable(tp)` is the partition's high
    /// watermark. Also expires idle producers. Returns the number of deleted segments.
    pub fn run_retention(
        &self,
        now_ms: i64,
        max_deletable: impl Fn(&TopicPartition) -> i64,
    ) -> usize {
        let mut total = 0;
        for (tp, log) in self.all() {
            let mut log = lock(&log);
            if log.is_closed() {
                continue;
            }
            log.remove_expired_producers(now_ms);
            match log.delete_expired_segments(now_ms, max_deletable(&tp)) {
                Ok(n) => total += n,
                Err(e) => tracing::error!(partition = %tp, error = %e, "retention failed"),
            }
        }
        total
    }

    /// Flushes logs whose flush.ms / flush.messages is due and rolled segments not yet
    /// flushed; removes deleted files whose delay has passed.
    pub fn flush_due(&self, now_ms: i64) {
        for (tp, log) in self.all() {
            let mut log = lock(&log);
            if log.is_closed() {
                continue;
            }
            if let Err(e) = log.maybe_flush(now_ms) {
                tracing::error!(partition = %tp, error = %e, "flush failed");
            }
        }
    }

    /// Compacts logs with cleanup.policy=compact whose dirty ratio is high enough,
    /// cleaning only inactive segments. Prefer [`LogManager::run_cleaner_bounded`] with the
    /// high watermark so unreplicated data is never compacted away.
    pub fn run_cleaner(&self, now_ms: i64) {
        self.run_cleaner_bounded(now_ms, |_| i64::MAX)
    }

    /// Like `run_cleaner`, but only segments wholly below `max_cleanable(tp)` (the high
    /// watermark) are cleaned.
    pub fn run_cleaner_bounded(&self, now_ms: i64, max_cleanable: impl Fn(&TopicPartition) -> i64) {
        for (tp, log) in self.all() {
            // The log's lock is held to plan and to swap, not while segments are read,
            // rewritten and fsynced: appends and fetches of the partition go on.
            let plan = {
                let mut log = lock(&log);
                if log.is_closed() || !log.config().cleanup_policy.compacts() {
                    continue;
                }
                log.plan_clean(now_ms, max_cleanable(&tp))
            };
            let result = match plan {
                Ok(None) => continue,
                Ok(Some(plan)) => {
                    let buffer = self
                        .dedupe_buffer_bytes
                        .load(std::sync::atomic::Ordering::Relaxed);
                    let rewritten = plan.with_dedupe_buffer(buffer).rewrite(now_ms);
                    lock(&log).finish_clean(rewritten)
                }
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                tracing::error!(partition = %tp, error = %e, "log cleaning failed");
            }
        }
    }

    /// Closes every log, writes both checkpoints and, in each directory whose logs all
    /// closed cleanly, the clean-shutdown marker; then releases the directory locks.
    pub fn shutdown(&self, now_ms: i64) -> Result<(), StorageError> {
        lock(&self.state).shut_down = true;
        let mut first_err = None;
        // A failed directory gets no flush, checkpoint or clean-shutdown marker: its next
        // start recovers it (Kafka closes only the live directories).
        let mut dir_ok: Vec<bool> = (0..self.dirs.len())
            .map(|i| !self.failures.is_offline(i))
            .collect();
        for (tp, idx, log) in self.all_with_dirs() {
            if let Err(e) = lock(&log).close_in_place(now_ms) {
                tracing::error!(partition = %tp, error = %e, "failed to close log");
                dir_ok[idx] = false;
                first_err.get_or_insert(e);
            }
        }
        self.checkpoint_recovery_points()?;
        self.checkpoint_log_start_offsets()?;
        for (idx, (dir, ok)) in self.dirs.iter().zip(dir_ok).enumerate() {
            if ok && !self.failures.is_offline(idx) {
                atomic_write(
                    &dir.join(CLEAN_SHUTDOWN_FILE),
                    br#"{"version":0,"broker_epoch":-1}"#,
                )?;
            }
        }
        for l in lock(&self.locks).iter_mut() {
            *l = None;
        }
        tracing::info!("log manager shut down");
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Creates (if missing) and locks a log directory.
fn lock_dir(dir: &Path) -> Result<File, StorageError> {
    fs::create_dir_all(dir).ctx(dir)?;
    let lock_path = dir.join(LOCK_FILE);
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .ctx(&lock_path)?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(fs::TryLockError::WouldBlock) => Err(StorageError::DirLocked(dir.to_path_buf())),
        Err(fs::TryLockError::Error(e)) => Err(StorageError::io(&lock_path, e)),
    }
}

/// Loads one log directory into `state`.
fn load_dir(
    idx: usize,
    dir: &Path,
    config_for: &impl Fn(&TopicPartition) -> LogConfig,
    now_ms: i64,
    state: &mut State,
    failures: &Arc<LogDirFailureChannel>,
) -> Result<(), StorageError> {
    let read_cp = |name: &str| match OffsetCheckpointFile::new(dir.join(name)).read() {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "unreadable checkpoint; recovering all logs in this directory");
            BTreeMap::new()
        }
    };
    let recovery_points = read_cp(RECOVERY_POINT_CHECKPOINT_FILE);
    let log_starts = read_cp(LOG_START_OFFSET_CHECKPOINT_FILE);
    let marker = dir.join(CLEAN_SHUTDOWN_FILE);
    let clean = marker.exists();
    if clean {
        // Consumed: a crash from now on must be detected at the next start.
        fs::remove_file(&marker).ctx(&marker)?;
        fsync_dir(dir)?;
    }
    tracing::info!(dir = %dir.display(), clean_shutdown = clean, "loading log directory");
    let mut entries: Vec<(String, PathBuf)> = Vec::new();
    for entry in fs::read_dir(dir).ctx(dir)? {
        let entry = entry.ctx(dir)?;
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        entries.push((name, path));
    }
    entries.sort();
    for (name, path) in entries {
        if name.ends_with(DELETE_DIR_SUFFIX) {
            tracing::info!(dir = %path.display(), "removing partition directory pending deletion");
            fs::remove_dir_all(&path).ctx(&path)?;
            continue;
        }
        let Some(tp) = TopicPartition::from_dir_name(&name) else {
            tracing::warn!(dir = %path.display(), "ignoring directory that is not a partition");
            continue;
        };
        if state.logs.contains_key(&tp) || state.offline.contains_key(&tp) {
            let why = format!("duplicate log directory for {tp} at {}", path.display());
            tracing::error!("{why}");
            state.offline.insert(tp, (idx, why));
            continue;
        }
        let rp = recovery_points.get(&tp).copied().unwrap_or(0);
        let ls = log_starts.get(&tp).copied().unwrap_or(0);
        match Log::open(&path, &tp, config_for(&tp), rp, ls, clean, now_ms) {
            Ok(mut log) => {
                log.set_failure_hook(DirFailureHook::new(failures.clone(), idx));
                state.logs.insert(
                    tp,
                    Entry {
                        dir_idx: idx,
                        log: Arc::new(Mutex::new(log)),
                    },
                );
            }
            Err(e) => {
                tracing::error!(partition = %tp, error = %e, "partition could not be loaded; marking it offline");
                state.offline.insert(tp, (idx, e.to_string()));
            }
        }
    }
    Ok(())
}
