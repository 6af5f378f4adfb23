//! The ReplicaManager: every partition replica this broker hosts. It applies the
//! partition states the controller wrote (become leader, become follower, stop), keeps the
//! ISR (expansions when followers catch up, shrinks when they lag past
//! `replica.lag.time.max.ms`, written to ZooKeeper conditionally on the state znode
//! version), checkpoints high watermarks, and runs the log's timers (retention, flush,
//! recovery-point checkpoints).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::watch;
use zookeeper_client as zk;

use super::fetcher::FetcherManager;
use super::log_config::log_config;
use super::partition::{Partition, Role};
use super::state::{LeaderAndIsr, Transition};
use super::throttle::{ReplicationQuotas, ThrottledReplicas};
use crate::clock::now_ms;
use crate::config::dynamic::{
    FOLLOWER_THROTTLED_RATE, FOLLOWER_THROTTLED_REPLICAS, LEADER_THROTTLED_RATE,
    LEADER_THROTTLED_REPLICAS,
};
use crate::config::{BrokerConfig, TopicConfig};
use crate::coordination::znodes::{partition_state_path, PartitionStateZnode};
use crate::coordination::{ClusterImage, ZkSession};
use crate::storage::io_pool::IoPool;
use crate::storage::{LogManager, OffsetCheckpointFile, TopicPartition};
use crate::tasks::Tasks;

/// A partition on this broker became leader or stopped being leader (new epoch). The
/// group coordinator follows these for `__consumer_offsets` partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeadershipChange {
    pub tp: TopicPartition,
    pub is_leader: bool,
    pub leader_epoch: i32,
}

pub struct ReplicaManager {
    pub config: Arc<BrokerConfig>,
    pub logs: Arc<LogManager>,
    /// Where produce appends, fetch reads and follower appends run (`num.io.threads`).
    pub io: Arc<IoPool>,
    session: ZkSession,
    image: watch::Receiver<Arc<ClusterImage>>,
    partitions: RwLock<HashMap<TopicPartition, Arc<Partition>>>,
    fetchers: FetcherManager,
    /// High watermarks read at start-up (`replication-offset-checkpoint`).
    hw_checkpoints: BTreeMap<TopicPartition, i64>,
    leadership: tokio::sync::broadcast::Sender<LeadershipChange>,
    /// The last image `apply_image` finished with.
    applied: watch::Sender<Arc<ClusterImage>>,
    /// Assigned partitions whose log cannot be created here while a log directory that
    /// failed to load is offline (Kafka's KafkaStorageException from `getOrCreateLog`).
    unhostable: std::sync::Mutex<std::collections::BTreeSet<TopicPartition>>,
    /// Wakes the offline-replica announcer.
    offline_changed: tokio::sync::Notify,
    /// Owner of the replica manager's tasks (stopped at broker shutdown).
    tasks: Tasks,
    /// This broker's replication quotas (KIP-73), bounds from its dynamic configs.
    pub quotas: Arc<ReplicationQuotas>,
}

const HW_CHECKPOINT_FILE: &str = "replication-offset-checkpoint";

impl ReplicaManager {
    pub fn start(
        config: Arc<BrokerConfig>,
        logs: Arc<LogManager>,
        session: ZkSession,
        image: watch::Receiver<Arc<ClusterImage>>,
        tasks: &Tasks,
    ) -> Arc<ReplicaManager> {
        let mut hw_checkpoints = BTreeMap::new();
        for dir in &config.log_dirs {
            match OffsetCheckpointFile::new(dir.join(HW_CHECKPOINT_FILE)).read() {
                Ok(entries) => hw_checkpoints.extend(entries),
                Err(err) => {
                    tracing::warn!(dir = %dir.display(), error = %err, "ignoring unreadable high watermark checkpoint")
                }
            }
        }
        let io = Arc::new(IoPool::new(
            config.num_io_threads,
            config.queued_max_requests,
        ));
        let quotas = Arc::new(ReplicationQuotas::default());
        let fetchers = FetcherManager::new(
            config.clone(),
            image.clone(),
            io.clone(),
            quotas.clone(),
            tasks.clone(),
        );
        let manager = Arc::new(ReplicaManager {
            config,
            logs,
            io,
            session,
            image,
            partitions: RwLock::new(HashMap::new()),
            fetchers,
            hw_checkpoints,
            leadership: tokio::sync::broadcast::channel(4096).0,
            applied: watch::channel(Arc::new(ClusterImage::default())).0,
            unhostable: Default::default(),
            offline_changed: tokio::sync::Notify::new(),
            tasks: tasks.clone(),
            quotas,
        });
        tasks.spawn(apply_loop(manager.clone()));
        tasks.spawn(isr_shrink_loop(manager.clone()));
        tasks.spawn(maintenance_loop(manager.clone()));
        tasks.spawn(log_dir_failure_loop(manager.clone()));
        tasks.spawn(offline_replica_announcer(manager.clone()));
        manager
    }

    pub fn broker_id(&self) -> i32 {
        self.config.broker_id
    }

    /// Waits (up to `timeout`) until the replica manager has applied the latest metadata
    /// image. Request handlers call it before answering NOT_LEADER_OR_FOLLOWER, so a
    /// client that learned of a leadership change from this broker's Metadata does not
    /// reach it before the change took effect here.
    pub async fn caught_up_with_image(&self, timeout: Duration) {
        let target = self.image.borrow().clone();
        let mut applied = self.applied.subscribe();
        let _ = tokio::time::timeout(timeout, applied.wait_for(|a| Arc::ptr_eq(a, &target))).await;
    }

    /// Leadership changes on this broker, in the order they happen. A receiver that lags
    /// behind gets `Lagged` and should resynchronise from `all_partitions()`.
    pub fn subscribe_leadership(&self) -> tokio::sync::broadcast::Receiver<LeadershipChange> {
        self.leadership.subscribe()
    }

    pub fn partition(&self, topic: &str, partition: i32) -> Option<Arc<Partition>> {
        let tp = TopicPartition {
            topic: topic.to_string(),
            partition,
        };
        self.read_partitions().get(&tp).cloned()
    }

    /// True if this partition's log could not be recovered here (served as
    /// KAFKA_STORAGE_ERROR, like a replica in an offline log dir).
    pub fn is_offline(&self, topic: &str, partition: i32) -> bool {
        let tp = TopicPartition::new(topic, partition);
        self.logs.is_offline(&tp) || self.unhostable_set().contains(&tp)
    }

    fn unhostable_set(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::BTreeSet<TopicPartition>> {
        crate::sync::lock(&self.unhostable)
    }

    /// Kafka's `ReplicaManager.handleLogDirFailure`: the partitions of a failed log
    /// directory stop being served here (their requests get KAFKA_STORAGE_ERROR, as
    /// `is_offline` now says), fetchers for them stop, leaderships end locally, and the
    /// controller is told so it elects other leaders and drops these replicas from ISRs.
    /// When no log directory is left Kafka halts the broker: so do we, after removing
    /// the registration so the controller moves leadership at once instead of after the
    /// session timeout.
    async fn handle_log_dir_failure(self: &Arc<Self>, dir: PathBuf, why: String) {
        let tps = self.logs.partitions_in(&dir);
        tracing::error!(dir = %dir.display(), partitions = tps.len(), error = %why, "log directory offline: its partitions are no longer served here");
        for tp in &tps {
            self.fetchers.remove(tp);
            if let Some(p) = self.write_partitions().remove(tp) {
                // Waiting acks=all produces and fetches end (NotLeader).
                p.retire();
                let _ = self.leadership.send(LeadershipChange {
                    tp: tp.clone(),
                    is_leader: false,
                    leader_epoch: i32::MAX,
                });
            }
        }
        if self.logs.failure_channel().all_offline() {
            tracing::error!(broker = self.broker_id(), "all log directories have failed; halting the broker (Kafka: \"Shutdown broker because all log dirs have failed\")");
            if let Some(handle) = self.session.try_current() {
                let path = crate::coordination::znodes::broker_path(self.broker_id());
                let _ =
                    tokio::time::timeout(Duration::from_secs(3), handle.client.delete(&path, None))
                        .await;
            }
            std::process::exit(1);
        }
        self.offline_changed.notify_one();
    }

    pub fn all_partitions(&self) -> Vec<Arc<Partition>> {
        self.read_partitions().values().cloned().collect()
    }

    fn read_partitions(
        &self,
    ) -> std::sync::RwLockReadGuard<'_, HashMap<TopicPartition, Arc<Partition>>> {
        crate::sync::read(&self.partitions)
    }

    fn write_partitions(
        &self,
    ) -> std::sync::RwLockWriteGuard<'_, HashMap<TopicPartition, Arc<Partition>>> {
        crate::sync::write(&self.partitions)
    }

    /// Applies one image: role changes for every partition this broker replicates, and
    /// removal of partitions that no longer exist here.
    fn apply_image(self: &Arc<Self>, image: &ClusterImage) {
        let me = self.broker_id();
        let now = now_ms();
        self.apply_quota_bounds(image);
        let mut wanted = std::collections::HashSet::new();
        for topic in image.topics.values() {
            let config = match TopicConfig::new(topic.config.clone(), &self.config.topic_defaults) {
                Ok(c) => c,
                Err(err) => {
                    tracing::warn!(topic = %topic.name, error = %err, "invalid topic config in ZooKeeper; using defaults");
                    TopicConfig::defaults(&self.config.topic_defaults)
                }
            };
            // Which of this topic's replicas are throttled (KIP-73), parsed once per topic.
            let leader_throttled =
                ThrottledReplicas::parse(&config.string(LEADER_THROTTLED_REPLICAS));
            let follower_throttled =
                ThrottledReplicas::parse(&config.string(FOLLOWER_THROTTLED_REPLICAS));
            for (&p, info) in &topic.partitions {
                if !info.replicas.contains(&me) {
                    continue;
                }
                let Some(state) = &info.state else { continue };
                let tp = TopicPartition {
                    topic: topic.name.clone(),
                    partition: p,
                };
                wanted.insert(tp.clone());
                if self.logs.is_offline(&tp) {
                    continue; // in a failed log directory (or unloadable): not served here
                }
                let partition = match self.get_or_create(&tp, topic.id, &config) {
                    Ok(p) => p,
                    Err(crate::storage::StorageError::LogDirOffline(why)) => {
                        if self.unhostable_set().insert(tp.clone()) {
                            tracing::error!(partition = %tp, %why, "replica offline here: a log directory is offline");
                            self.offline_changed.notify_one();
                        }
                        continue;
                    }
                    Err(err) => {
                        tracing::error!(partition = %tp, error = %err, "cannot open log; partition offline here");
                        continue;
                    }
                };
                partition.set_min_insync_replicas(config.min_insync_replicas());
                partition.set_replication_throttles(
                    leader_throttled.covers(p, me),
                    follower_throttled.covers(p, me),
                );
                if let Ok(mut log) = partition.log().lock() {
                    log.set_config(log_config(&config));
                }
                let wanted_state = LeaderAndIsr {
                    leader: state.leader,
                    leader_epoch: state.leader_epoch,
                    replicas: info.replicas.clone(),
                    isr: state.isr.clone(),
                    zk_version: state.zk_version,
                    controller_epoch: state.controller_epoch,
                };
                match partition.apply(&wanted_state, now) {
                    Ok(Transition::BecameLeader) => {
                        self.fetchers.remove(&tp);
                        tracing::info!(partition = %tp, epoch = state.leader_epoch, isr = ?state.isr, "became leader");
                        let _ = self.leadership.send(LeadershipChange {
                            tp: tp.clone(),
                            is_leader: true,
                            leader_epoch: state.leader_epoch,
                        });
                    }
                    Ok(Transition::BecameFollower) => {
                        self.fetchers.remove(&tp);
                        let _ = self.leadership.send(LeadershipChange {
                            tp: tp.clone(),
                            is_leader: false,
                            leader_epoch: state.leader_epoch,
                        });
                        if state.leader >= 0 {
                            tracing::info!(partition = %tp, leader = state.leader, epoch = state.leader_epoch, "became follower");
                            self.fetchers
                                .add(partition.clone(), state.leader, state.leader_epoch);
                        }
                    }
                    // Stale: never go back in epochs.
                    Ok(Transition::Refreshed | Transition::Stale) => {}
                    Err(err) => {
                        tracing::error!(partition = %tp, error = %err, "cannot become leader")
                    }
                }
            }
        }
        if image.loaded {
            self.remove_unwanted(&wanted, image);
        }
    }

    /// The replication rates in force for this broker: its dynamic config, else the
    /// cluster-wide dynamic default, else its config file.
    fn apply_quota_bounds(&self, image: &ClusterImage) {
        let me = self.broker_id();
        for (key, quota) in [
            (LEADER_THROTTLED_RATE, &self.quotas.leader),
            (FOLLOWER_THROTTLED_RATE, &self.quotas.follower),
        ] {
            let rate = image
                .dynamic_broker_config(me, key)
                .and_then(|v| v.parse::<u64>().ok())
                .or_else(|| self.config.replication_throttled_rate(key));
            quota.set_bound(rate);
        }
    }

    fn get_or_create(
        &self,
        tp: &TopicPartition,
        topic_id: uuid::Uuid,
        config: &TopicConfig,
    ) -> Result<Arc<Partition>, crate::storage::StorageError> {
        if let Some(p) = self.read_partitions().get(tp) {
            if p.topic_id == topic_id {
                return Ok(p.clone());
            }
        }
        let log = self.logs.get_or_create(
            tp,
            log_config(config),
            Some(*topic_id.as_bytes()),
            now_ms(),
        )?;
        // KIP-890: whether transactional appends need a verification guard.
        log.lock()
            .unwrap_or_else(|e| e.into_inner())
            .set_verification_enabled(self.config.txn.partition_verification_enable);
        let hw = self.hw_checkpoints.get(tp).copied().unwrap_or(0);
        let partition = Arc::new(Partition::new(
            tp.clone(),
            topic_id,
            self.broker_id(),
            log,
            hw,
        ));
        self.write_partitions()
            .insert(tp.clone(), partition.clone());
        Ok(partition)
    }

    /// Deletes replicas of topics that are gone (or no longer assigned here), including
    /// logs found on disk at start-up that no topic claims.
    fn remove_unwanted(
        &self,
        wanted: &std::collections::HashSet<TopicPartition>,
        image: &ClusterImage,
    ) {
        let stale: Vec<TopicPartition> = self
            .read_partitions()
            .keys()
            .filter(|tp| !wanted.contains(*tp))
            .cloned()
            .collect();
        for tp in stale {
            self.fetchers.remove(&tp);
            if let Some(p) = self.write_partitions().remove(&tp) {
                p.retire();
                let _ = self.leadership.send(LeadershipChange {
                    tp: tp.clone(),
                    is_leader: false,
                    leader_epoch: i32::MAX,
                });
            }
            self.delete_log(&tp);
        }
        for (tp, _) in self.logs.all() {
            let claimed = image
                .partition(&tp.topic, tp.partition)
                .is_some_and(|p| p.replicas.contains(&self.broker_id()));
            if !claimed && !wanted.contains(&tp) {
                self.delete_log(&tp);
            }
        }
    }

    fn delete_log(&self, tp: &TopicPartition) {
        match self.logs.delete(tp) {
            Ok(()) => tracing::info!(partition = %tp, "replica deleted"),
            Err(err) => tracing::warn!(partition = %tp, error = %err, "cannot delete replica log"),
        }
    }

    /// Writes a new ISR for a partition this broker leads, conditionally on the state
    /// znode version (Kafka's ZooKeeper-mode `Partition.updateIsr`).
    async fn change_isr(self: Arc<Self>, partition: Arc<Partition>, isr: Vec<i32>) {
        let st = partition.state();
        let znode = PartitionStateZnode {
            version: 1,
            leader: self.broker_id(),
            leader_epoch: st.leader_epoch,
            isr: isr.clone(),
            controller_epoch: st.controller_epoch,
        };
        let path = partition_state_path(&partition.tp.topic, partition.tp.partition);
        let Some(handle) = self.session.try_current() else {
            partition.isr_change_failed(&isr);
            return;
        };
        // Bounded: while ZooKeeper is unreachable the write may never answer, and a
        // pending change blocks every later ISR change of the partition. If it lands late,
        // our next write fails its version check and the image brings the truth.
        let write = handle
            .client
            .set_data(&path, &znode.encode(), Some(st.zk_version));
        let started = std::time::Instant::now();
        let timeout = Duration::from_millis(self.config.zookeeper_session_timeout_ms);
        let Ok(result) = tokio::time::timeout(timeout, write).await else {
            tracing::warn!(partition = %partition.tp, "ISR update timed out");
            partition.isr_change_failed(&isr);
            return;
        };
        match result {
            Ok(stat) => {
                crate::metrics::ZK_LATENCY.observe(started.elapsed());
                crate::metrics::isr_changed(st.isr.len(), isr.len());
                tracing::info!(partition = %partition.tp, old = ?st.isr, new = ?isr, "ISR changed");
                partition.isr_committed(st.leader_epoch, isr, stat.version);
            }
            Err(zk::Error::BadVersion) => {
                // The controller changed the state meanwhile; the image will bring it.
                partition.isr_change_failed(&isr);
            }
            Err(err) => {
                tracing::warn!(partition = %partition.tp, error = %err, "ISR update failed");
                partition.isr_change_failed(&isr);
            }
        }
    }

    /// A follower fetch proposed an ISR expansion: write it in the background.
    pub fn propose_isr(self: &Arc<Self>, partition: Arc<Partition>, isr: Vec<i32>) {
        self.tasks.spawn(self.clone().change_isr(partition, isr));
    }

    fn checkpoint_high_watermarks(&self) {
        let mut per_dir: BTreeMap<PathBuf, BTreeMap<TopicPartition, i64>> = BTreeMap::new();
        for dir in self.logs.live_log_dirs() {
            per_dir.entry(dir).or_default();
        }
        for p in self.all_partitions() {
            let dir = self
                .logs
                .log_dir_of(&p.tp)
                .unwrap_or_else(|| self.config.log_dirs[0].clone());
            if let Some(entries) = per_dir.get_mut(&dir) {
                entries.insert(p.tp.clone(), p.high_watermark());
            }
        }
        // Only live directories (nothing more is written to a failed one); a failed write
        // takes the directory offline, as Kafka's checkpoint failures do.
        for (dir, entries) in per_dir {
            if let Err(err) =
                OffsetCheckpointFile::new(dir.join(HW_CHECKPOINT_FILE)).write(&entries)
            {
                tracing::warn!(dir = %dir.display(), error = %err, "cannot checkpoint high watermarks");
                if matches!(err, crate::storage::StorageError::Io(..)) {
                    self.logs.fail_dir(&dir, &err.to_string());
                }
            }
        }
    }

    /// Stops fetching and checkpoints; called on shutdown.
    pub fn shutdown(&self) {
        self.fetchers.shutdown();
        self.checkpoint_high_watermarks();
        if let Err(err) = self.logs.shutdown(now_ms()) {
            tracing::warn!(error = %err, "log shutdown incomplete");
        }
    }

    pub fn leader_count(&self) -> usize {
        self.all_partitions()
            .iter()
            .filter(|p| p.role() == Role::Leader)
            .count()
    }
}

async fn apply_loop(manager: Arc<ReplicaManager>) {
    let mut rx = manager.image.clone();
    loop {
        let image = rx.borrow_and_update().clone();
        manager.apply_image(&image);
        manager.applied.send_replace(image);
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Follows the log directories' failure channel.
async fn log_dir_failure_loop(manager: Arc<ReplicaManager>) {
    let channel = manager.logs.failure_channel().clone();
    let mut rx = channel.subscribe();
    let mut handled = std::collections::HashSet::new();
    loop {
        rx.borrow_and_update();
        for (dir, why) in channel.offline_dirs() {
            if handled.insert(dir.clone()) {
                manager.handle_log_dir_failure(dir, why).await;
            }
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Tells the controller which replicas are offline here (failed log directories,
/// partitions that could not load or cannot be hosted), once per registration: a
/// notification names the broker epoch it is valid for, so a new ZooKeeper session (a new
/// registration) gets a fresh one.
async fn offline_replica_announcer(m: Arc<ReplicaManager>) {
    let mut sessions = m.session.subscribe();
    let mut failures = m.logs.failure_channel().subscribe();
    let mut last: Option<(u64, std::collections::BTreeSet<TopicPartition>)> = None;
    loop {
        let mut offline: std::collections::BTreeSet<TopicPartition> = m
            .logs
            .offline_partitions()
            .into_iter()
            .map(|(tp, _)| tp)
            .collect();
        offline.extend(m.unhostable_set().iter().cloned());
        if let Some(generation) = m.session.try_current().map(|h| h.generation) {
            let news = last
                .as_ref()
                .is_none_or(|(g, done)| *g != generation || !offline.is_subset(done));
            if !offline.is_empty() && news {
                let tps: Vec<TopicPartition> = offline.iter().cloned().collect();
                if crate::coordination::log_dir_events::announce(&m.session, m.broker_id(), &tps)
                    .await
                {
                    last = Some((generation, offline));
                }
            }
        }
        tokio::select! {
            r = sessions.changed() => if r.is_err() { return },
            r = failures.changed() => if r.is_err() { return },
            _ = m.offline_changed.notified() => {}
        }
    }
}

async fn isr_shrink_loop(manager: Arc<ReplicaManager>) {
    let lag = manager.config.replica_lag_time_max_ms as i64;
    let mut tick = tokio::time::interval(Duration::from_millis((lag / 2).max(100) as u64));
    loop {
        tick.tick().await;
        for p in manager.all_partitions() {
            if let Some(isr) = p.isr_shrink_proposal(lag, now_ms()) {
                manager.clone().change_isr(p, isr).await;
            }
        }
    }
}

/// Retention, flushes and checkpoints on Kafka's intervals.
async fn maintenance_loop(manager: Arc<ReplicaManager>) {
    let c = &manager.config;
    let mut retention = tokio::time::interval(Duration::from_millis(
        c.log_retention_check_interval_ms.max(100),
    ));
    let mut flush = tokio::time::interval(Duration::from_millis(
        c.log_flush_scheduler_interval_ms.clamp(100, 3_600_000),
    ));
    let mut checkpoint = tokio::time::interval(Duration::from_millis(
        c.log_flush_offset_checkpoint_interval_ms.max(100),
    ));
    let mut hw = tokio::time::interval(Duration::from_millis(
        c.replica_high_watermark_checkpoint_interval_ms.max(100),
    ));
    let mut cleaner =
        tokio::time::interval(Duration::from_millis(c.log_cleaner_backoff_ms.max(100)));
    loop {
        let m = manager.clone();
        tokio::select! {
            _ = retention.tick() => {
                let hws: HashMap<TopicPartition, i64> = m.all_partitions().iter().map(|p| (p.tp.clone(), p.high_watermark())).collect();
                let _ = tokio::task::spawn_blocking(move || {
                    // Never delete past the high watermark: unreplicated data is not retention's.
                    m.logs.run_retention(now_ms(), |tp| hws.get(tp).copied().unwrap_or(0))
                }).await;
            }
            _ = flush.tick() => { let _ = tokio::task::spawn_blocking(move || m.logs.flush_due(now_ms())).await; }
            _ = checkpoint.tick() => {
                let _ = tokio::task::spawn_blocking(move || {
                    if let Err(err) = m.logs.checkpoint_recovery_points() { tracing::warn!(error = %err, "recovery point checkpoint failed"); }
                    if let Err(err) = m.logs.checkpoint_log_start_offsets() { tracing::warn!(error = %err, "log start checkpoint failed"); }
                }).await;
            }
            _ = hw.tick() => { let _ = tokio::task::spawn_blocking(move || m.checkpoint_high_watermarks()).await; }
            _ = cleaner.tick() => {
                if m.config.log_cleaner_enable {
                    let hws: HashMap<TopicPartition, i64> = m.all_partitions().iter().map(|p| (p.tp.clone(), p.high_watermark())).collect();
                    let _ = tokio::task::spawn_blocking(move || m.logs.run_cleaner_bounded(now_ms(), |tp| hws.get(tp).copied().unwrap_or(0))).await;
                }
            }
        }
    }
}
