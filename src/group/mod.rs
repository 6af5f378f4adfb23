//! The group coordinator (Kafka's classic group protocol). The coordinator of a group is
//! the leader of partition `abs(javaHash(group)) % partitions` of `__consumer_offsets`;
//! group metadata and committed offsets are records in that partition.
//!
//! - [`shard`]: the state machine of one partition's groups (pure: time passed in,
//!   replies through channels, records returned as appends) — unit-tested with a fake
//!   clock;
//! - [`classic`]: one group's members and rebalance state;
//! - [`records`]: Kafka's `OffsetCommit*`/`GroupMetadata*` record schemas;
//! - [`consumer_protocol`]: reading the embedded consumer subscription/assignment;
//! - [`timer`]: the keyed, clock-driven timer;
//! - this module: the runtime that owns a shard per partition this broker leads —
//!   loading it from the log on election (COORDINATOR_LOAD_IN_PROGRESS meanwhile),
//!   dropping it on resignation (NOT_COORDINATOR), appending records through the
//!   partition leader and completing them once the high watermark passes them
//!   (acks=all), and firing timers and offset expiration on the wall clock.

pub mod classic;
pub mod consumer_protocol;
pub mod records;
pub mod shard;
pub mod timer;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use kafka_protocol::ResponseError as Error;
use tokio::sync::{watch, Notify};

use crate::api::errors::partition_error;
use crate::broker::tasks::Tasks;
use crate::config::BrokerConfig;
use crate::coordination::{ClusterImage, OFFSETS_TOPIC};
use crate::replica::{Partition, ReplicaManager, Role};
use crate::storage::batch::{decode_records, BatchIter, HeaderFields};
use shard::{Append, GroupConfig, GroupShard};

/// Kafka's `String.hashCode()` over UTF-16 code units.
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32))
}

/// The `__consumer_offsets` partition of a group: Kafka's
/// `Utils.abs(groupId.hashCode) % partitions` (with `abs(i32::MIN) = 0`).
pub fn partition_for(group_id: &str, partitions: i32) -> i32 {
    let h = java_string_hash(group_id);
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % partitions.max(1)
}

fn now_ms() -> i64 {
    crate::broker::registration::now_ms()
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every mutation of the shard completes before anything that could panic.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

enum ShardState {
    Loading,
    Active(Box<GroupShard>),
    Unloaded,
}

/// The coordinator's handle on one `__consumer_offsets` partition it leads.
pub struct Shard {
    pub partition: i32,
    replica: Arc<Partition>,
    state: Mutex<ShardState>,
    /// Wakes the timer driver when an earlier deadline appears (or on unload).
    wake: Notify,
    /// The deadline the driver sleeps towards (ms; i64::MAX = none).
    driver_deadline: AtomicI64,
    /// Bumped whenever an append completes (OffsetFetch `require_stable` waits on it).
    progress: watch::Sender<u64>,
    tasks: Tasks,
}

pub struct GroupCoordinator {
    config: Arc<BrokerConfig>,
    group_config: GroupConfig,
    replicas: Arc<ReplicaManager>,
    image: watch::Receiver<Arc<ClusterImage>>,
    shards: RwLock<HashMap<i32, Arc<Shard>>>,
    commit_timeout: Duration,
    /// Owner of the coordinator's tasks (stopped at broker shutdown).
    tasks: Tasks,
}

impl GroupCoordinator {
    /// Creates the coordinator and starts following `__consumer_offsets` leadership.
    pub fn start(
        config: Arc<BrokerConfig>,
        replicas: Arc<ReplicaManager>,
        image: watch::Receiver<Arc<ClusterImage>>,
        tasks: &Tasks,
    ) -> Arc<GroupCoordinator> {
        let coordinator = Arc::new(GroupCoordinator {
            group_config: GroupConfig::from_broker(&config),
            commit_timeout: Duration::from_millis(config.offsets_commit_timeout_ms),
            config,
            replicas,
            image,
            shards: RwLock::new(HashMap::new()),
            tasks: tasks.clone(),
        });
        // Subscribe before the first scan so no change falls between the two.
        let rx = coordinator.replicas.subscribe_leadership();
        tasks.spawn(leadership_loop(coordinator.clone(), rx));
        tasks.spawn(expiration_loop(coordinator.clone()));
        tasks.spawn(deleted_topics_loop(coordinator.clone()));
        coordinator
    }

    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    pub fn group_config(&self) -> &GroupConfig {
        &self.group_config
    }

    /// Partitions of `__consumer_offsets`: the topic's if it exists, else the config's.
    pub fn num_partitions(&self) -> i32 {
        self.image
            .borrow()
            .topic(OFFSETS_TOPIC)
            .map(|t| t.partitions.len() as i32)
            .filter(|n| *n > 0)
            .unwrap_or(self.config.offsets_topic_num_partitions)
    }

    pub fn partition_for(&self, group_id: &str) -> i32 {
        partition_for(group_id, self.num_partitions())
    }

    fn read_shards(&self) -> std::sync::RwLockReadGuard<'_, HashMap<i32, Arc<Shard>>> {
        self.shards.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_shards(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<i32, Arc<Shard>>> {
        self.shards.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The shard coordinating `group_id`, or NOT_COORDINATOR.
    pub fn shard_for(&self, group_id: &str) -> Result<Arc<Shard>, Error> {
        let p = self.partition_for(group_id);
        self.read_shards()
            .get(&p)
            .cloned()
            .ok_or(Error::NotCoordinator)
    }

    /// Every shard this broker currently leads (loaded or loading).
    pub fn shards(&self) -> Vec<Arc<Shard>> {
        let mut v: Vec<Arc<Shard>> = self.read_shards().values().cloned().collect();
        v.sort_by_key(|s| s.partition);
        v
    }

    /// Runs `op` on the shard of `group_id`: NOT_COORDINATOR if this broker does not lead
    /// the group's partition, COORDINATOR_LOAD_IN_PROGRESS while it loads.
    pub fn with_group<R>(
        &self,
        group_id: &str,
        op: impl FnOnce(&mut GroupShard, i64) -> (R, Vec<Append>),
    ) -> Result<R, Error> {
        let shard = self.shard_for(group_id)?;
        self.run(&shard, op)
    }

    /// Runs `op` on a shard and starts the appends it asks for.
    pub fn run<R>(
        &self,
        shard: &Arc<Shard>,
        op: impl FnOnce(&mut GroupShard, i64) -> (R, Vec<Append>),
    ) -> Result<R, Error> {
        let mut st = lock(&shard.state);
        let gs = match &mut *st {
            ShardState::Active(gs) => gs,
            ShardState::Loading => return Err(Error::CoordinatorLoadInProgress),
            ShardState::Unloaded => return Err(Error::NotCoordinator),
        };
        let now = now_ms();
        let (result, appends) = op(gs, now);
        self.process_appends(shard, gs, appends, now);
        shard.maybe_wake_driver(gs);
        Ok(result)
    }

    /// Appends each record set through the partition leader and completes it once
    /// replicated; see [`start_appends`].
    fn process_appends(
        &self,
        shard: &Arc<Shard>,
        gs: &mut GroupShard,
        appends: Vec<Append>,
        now: i64,
    ) {
        start_appends(shard, gs, appends, now, self.commit_timeout);
    }

    // ---------------------------------------------------------------- leadership

    /// This broker now leads `__consumer_offsets` partition `p`: load it.
    fn elect(self: &Arc<Self>, p: i32, replica: Arc<Partition>) {
        {
            let shards = self.read_shards();
            if let Some(existing) = shards.get(&p) {
                if Arc::ptr_eq(&existing.replica, &replica) {
                    return; // already loading or loaded for this replica
                }
            }
        }
        self.resign(p);
        let shard = Arc::new(Shard {
            partition: p,
            replica: replica.clone(),
            state: Mutex::new(ShardState::Loading),
            wake: Notify::new(),
            driver_deadline: AtomicI64::new(i64::MAX),
            progress: watch::channel(0).0,
            tasks: self.tasks.clone(),
        });
        self.write_shards().insert(p, shard.clone());
        tracing::info!(
            partition = p,
            epoch = replica.leader_epoch(),
            "elected group coordinator; loading groups and offsets"
        );
        self.tasks.spawn(drive_timers(self.clone(), shard.clone()));
        let coordinator = self.clone();
        self.tasks.spawn(async move {
            let config = coordinator.group_config.clone();
            let started = std::time::Instant::now();
            let replica2 = replica.clone();
            let loaded =
                tokio::task::spawn_blocking(move || load_shard(p, &replica2, config)).await;
            let mut gs = match loaded {
                Ok(Ok(gs)) => gs,
                Ok(Err(e)) => {
                    tracing::error!(partition = p, error = %e, "cannot load __consumer_offsets partition; groups stay unavailable here");
                    return;
                }
                Err(e) => {
                    tracing::error!(partition = p, error = %e, "group loading task failed");
                    return;
                }
            };
            let mut st = lock(&shard.state);
            if !matches!(*st, ShardState::Loading) {
                return; // resigned while loading
            }
            let now = now_ms();
            let appends = gs.finish_loading(now);
            tracing::info!(
                partition = p,
                groups = gs.group_count(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "finished loading groups and offsets"
            );
            coordinator.process_appends(&shard, &mut gs, appends, now);
            *st = ShardState::Active(Box::new(gs));
            drop(st);
            shard.wake.notify_one();
        });
    }

    /// This broker no longer leads partition `p`: answer everything parked with
    /// NOT_COORDINATOR and drop the state.
    fn resign(&self, p: i32) {
        let Some(shard) = self.write_shards().remove(&p) else {
            return;
        };
        let mut st = lock(&shard.state);
        if let ShardState::Active(gs) = &mut *st {
            gs.unload(now_ms());
        }
        *st = ShardState::Unloaded;
        drop(st);
        shard.wake.notify_one();
        shard.progress.send_modify(|v| *v = v.wrapping_add(1));
        tracing::info!(
            partition = p,
            "resigned as group coordinator; groups unloaded"
        );
    }

    /// Brings the shards in line with the replicas this broker leads now.
    fn resync(self: &Arc<Self>) {
        let mut leading = HashMap::new();
        for part in self.replicas.all_partitions() {
            if part.tp.topic == OFFSETS_TOPIC && part.role() == Role::Leader {
                leading.insert(part.tp.partition, part);
            }
        }
        let current: Vec<i32> = self.read_shards().keys().copied().collect();
        for p in current {
            if !leading.contains_key(&p) {
                self.resign(p);
            }
        }
        for (p, part) in leading {
            self.elect(p, part);
        }
    }
}

impl Shard {
    /// An append finished: run its continuation with the shard (if still loaded).
    fn complete(
        self: &Arc<Self>,
        on_done: shard::OnAppend,
        outcome: shard::AppendResult,
        timeout: Duration,
    ) {
        let mut st = lock(&self.state);
        if let ShardState::Active(gs) = &mut *st {
            let now = now_ms();
            let more = on_done(gs, outcome, now);
            start_appends(self, gs, more, now, timeout);
            self.maybe_wake_driver(gs);
        }
        // Unloaded: the continuation (and any reply it holds) is dropped; the waiting
        // handler answers NOT_COORDINATOR.
        drop(st);
        self.progress.send_modify(|v| *v = v.wrapping_add(1));
    }

    fn maybe_wake_driver(&self, gs: &GroupShard) {
        if let Some(next) = gs.next_deadline() {
            if next < self.driver_deadline.load(Ordering::Acquire) {
                self.wake.notify_one();
            }
        }
    }

    /// Subscribes to append completions.
    pub fn progress(&self) -> watch::Receiver<u64> {
        self.progress.subscribe()
    }

    pub fn is_loading(&self) -> bool {
        matches!(*lock(&self.state), ShardState::Loading)
    }
}

/// Appends each record set through the partition leader — under the shard lock, so the
/// records land in the order the state machine produced them — and completes it once the
/// high watermark passes it (acks=all) or `timeout` expires; failures complete at once.
fn start_appends(
    shard: &Arc<Shard>,
    gs: &mut GroupShard,
    appends: Vec<Append>,
    now: i64,
    timeout: Duration,
) {
    let mut work: VecDeque<Append> = appends.into();
    while let Some(append) = work.pop_front() {
        let batch = records::build_batch(&append.records, now);
        match shard.replica.append_as_leader(&batch, -1, now) {
            Ok((appended, epoch)) => {
                let shard = shard.clone();
                let on_done = append.on_done;
                shard.tasks.clone().spawn(async move {
                    let deadline = tokio::time::Instant::now() + timeout;
                    let outcome = shard
                        .replica
                        .wait_for_replication(appended.last_offset + 1, epoch, deadline)
                        .await
                        .map(|()| appended.base_offset)
                        .map_err(|e| partition_error(&e));
                    shard.complete(on_done, outcome, timeout);
                });
            }
            Err(e) => {
                tracing::warn!(partition = shard.partition, error = %e, "cannot append to __consumer_offsets");
                work.extend((append.on_done)(gs, Err(partition_error(&e)), now));
            }
        }
    }
}

/// Follows leadership changes of `__consumer_offsets` partitions.
async fn leadership_loop(
    coordinator: Arc<GroupCoordinator>,
    mut rx: tokio::sync::broadcast::Receiver<crate::replica::manager::LeadershipChange>,
) {
    use tokio::sync::broadcast::error::RecvError;
    coordinator.resync();
    loop {
        match rx.recv().await {
            Ok(change) if change.tp.topic == OFFSETS_TOPIC => {
                let p = change.tp.partition;
                let replica = coordinator.replicas.partition(OFFSETS_TOPIC, p);
                match replica {
                    Some(r) if change.is_leader && r.role() == Role::Leader => {
                        coordinator.elect(p, r)
                    }
                    Some(r) if r.role() == Role::Leader => {
                        // A stale event: we lead again already.
                        coordinator.elect(p, r)
                    }
                    _ => coordinator.resign(p),
                }
            }
            Ok(_) => {}
            Err(RecvError::Lagged(_)) => coordinator.resync(),
            Err(RecvError::Closed) => return,
        }
    }
}

/// Fires the shard's timers at their deadlines until the shard is unloaded.
async fn drive_timers(coordinator: Arc<GroupCoordinator>, shard: Arc<Shard>) {
    loop {
        let next = {
            let st = lock(&shard.state);
            match &*st {
                ShardState::Active(gs) => gs.next_deadline(),
                ShardState::Loading => None,
                ShardState::Unloaded => return,
            }
        };
        shard
            .driver_deadline
            .store(next.unwrap_or(i64::MAX), Ordering::Release);
        let wait = match next {
            Some(deadline) => Duration::from_millis((deadline - now_ms()).max(0) as u64),
            None => Duration::from_secs(3600),
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shard.wake.notified() => {}
        }
        let result = coordinator.run(&shard, |gs, now| ((), gs.poll_timers(now)));
        if matches!(result, Err(Error::NotCoordinator)) {
            return;
        }
    }
}

/// Expires old offsets on every shard every `offsets.retention.check.interval.ms`.
async fn expiration_loop(coordinator: Arc<GroupCoordinator>) {
    let period = Duration::from_millis(
        coordinator
            .config
            .offsets_retention_check_interval_ms
            .max(1),
    );
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        tick.tick().await;
        for shard in coordinator.shards() {
            let _ = coordinator.run(&shard, |gs, now| ((), gs.cleanup_expired_offsets(now)));
        }
    }
}

/// Removes the committed offsets of topics that get deleted (Kafka's
/// `onPartitionsDeleted`). Only topics seen in a loaded image and then gone count.
async fn deleted_topics_loop(coordinator: Arc<GroupCoordinator>) {
    let mut rx = coordinator.image.clone();
    let mut known: Option<std::collections::BTreeSet<String>> = None;
    loop {
        let current = {
            let img = rx.borrow_and_update();
            img.loaded.then(|| {
                img.topics
                    .keys()
                    .cloned()
                    .collect::<std::collections::BTreeSet<String>>()
            })
        };
        if let Some(current) = current {
            if let Some(previous) = &known {
                let deleted: Vec<String> = previous
                    .difference(&current)
                    .filter(|t| t.as_str() != OFFSETS_TOPIC)
                    .cloned()
                    .collect();
                if !deleted.is_empty() {
                    for shard in coordinator.shards() {
                        let _ = coordinator
                            .run(&shard, |gs, _| ((), gs.remove_offsets_of_topics(&deleted)));
                    }
                }
            }
            known = Some(current);
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Rebuilds a shard's state from its partition's log (start to end).
fn load_shard(p: i32, replica: &Partition, config: GroupConfig) -> Result<GroupShard, String> {
    const READ_BYTES: usize = 4 * 1024 * 1024;
    let mut gs = GroupShard::new(p, config);
    let now = now_ms();
    let log = replica.log();
    let (mut offset, end, decompress_limit) = {
        let l = lock(log);
        (
            l.log_start_offset(),
            l.log_end_offset(),
            l.decompress_limit(),
        )
    };
    let mut records = 0u64;
    while offset < end {
        let read = {
            let l = lock(log);
            if offset < l.log_start_offset() {
                offset = l.log_start_offset();
            }
            l.read(offset, READ_BYTES, end, true)
                .map_err(|e| format!("read at offset {offset}: {e}"))?
        };
        if read.records.is_empty() {
            break;
        }
        let mut advanced = false;
        for item in BatchIter::new(&read.records) {
            let (_, batch) =
                item.map_err(|e| format!("corrupt batch near offset {offset}: {e}"))?;
            let next = batch.next_offset();
            if batch.is_control() {
                offset = offset.max(next);
                advanced = true;
                continue;
            }
            let decoded = match decode_records(&batch, decompress_limit) {
                Ok(decoded) => decoded,
                Err(e) => {
                    // The coordinator never writes such a batch: a client produced it
                    // (a bomb, or garbage under a valid CRC). Skipping it keeps the
                    // coordinator available; failing would keep it loading forever.
                    tracing::error!(partition = p, error = %e, "skipping an unreadable __consumer_offsets batch");
                    offset = offset.max(next);
                    advanced = true;
                    continue;
                }
            };
            for rec in decoded {
                if rec.offset < offset {
                    continue;
                }
                match &rec.key {
                    Some(key) => gs.replay(key, rec.value.as_deref(), rec.offset, now),
                    None => tracing::warn!(
                        partition = p,
                        offset = rec.offset,
                        "skipping a keyless __consumer_offsets record"
                    ),
                }
                records += 1;
            }
            offset = offset.max(next);
            advanced = true;
        }
        if !advanced {
            break;
        }
    }
    tracing::debug!(
        partition = p,
        records,
        "replayed __consumer_offsets records"
    );
    Ok(gs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_matches_kafkas_hash() {
        // Values from Java: "group".hashCode() == 98629247, "".hashCode() == 0.
        assert_eq!(java_string_hash("group"), 98629247);
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(partition_for("group", 50), 98629247 % 50);
        // A negative hash: Kafka takes Math.abs, not the low 31 bits.
        assert_eq!(java_string_hash("my-group"), -1906497762);
        assert_eq!(partition_for("my-group", 50), 1906497762 % 50);
        // "polygenelubricants" hashes to i32::MIN: Utils.abs maps it to 0.
        assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        // Non-ASCII: UTF-16 code units, including surrogate pairs.
        assert_eq!(java_string_hash("é"), 0xe9);
        assert_eq!(java_string_hash("😀"), 0xd83d * 31 + 0xde00);
    }
}
