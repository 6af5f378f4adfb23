//! The coordinator runtime shared by the group coordinator (`__consumer_offsets`) and the
//! transaction coordinator (`__transaction_state`), as Kafka's `CoordinatorRuntime`: a
//! state machine ("shard") per partition of the internal topic this broker leads.
//!
//! - a shard is loaded from its partition's log when this broker becomes the leader
//!   (COORDINATOR_LOAD_IN_PROGRESS meanwhile) and dropped when it stops leading
//!   (NOT_COORDINATOR from then on);
//! - operations run on the shard under its lock with the current time and return
//!   [`Append`]s: records appended through the partition leader — in the order the state
//!   machine produced them — whose continuation runs with the shard once the high
//!   watermark passes them (acks=all) or the append failed;
//! - the shard's timers fire at their deadlines on the wall clock.
//!
//! The shards themselves are pure (time passed in, replies through channels); this
//! module is the I/O around them.

pub mod loader;
pub mod record;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use kafka_protocol::ResponseError as Error;
use tokio::sync::{watch, Notify};

use crate::clock::now_ms;
use crate::replica::errors::partition_error;
use crate::replica::{Partition, ReplicaManager, Role};
use crate::storage::producer_state::AppendOrigin;
use crate::tasks::Tasks;
use record::{BatchProducer, Record};

/// Outcome of an append: the base offset of the records, or the partition error.
pub type AppendResult = Result<i64, Error>;

/// Continuation of an [`Append`]: runs with the shard once the records are replicated
/// (or failed); may ask for more appends.
pub type OnAppend<S> = Box<dyn FnOnce(&mut S, AppendResult, i64) -> Vec<Append<S>> + Send>;

/// Records to append to a shard's partition.
pub struct Append<S> {
    pub records: Vec<Record>,
    /// A transactional batch of this producer (transactional offset commits), with the
    /// KIP-890 verification guard of the producer's first write to the partition.
    pub producer: Option<(BatchProducer, Option<u64>)>,
    pub on_done: OnAppend<S>,
}

impl<S> Append<S> {
    pub fn new(
        records: Vec<Record>,
        on_done: impl FnOnce(&mut S, AppendResult, i64) -> Vec<Append<S>> + Send + 'static,
    ) -> Append<S> {
        Append {
            records,
            producer: None,
            on_done: Box::new(on_done),
        }
    }

    /// The records as a transactional batch of `producer`.
    pub fn transactional(mut self, producer: BatchProducer, guard: Option<u64>) -> Append<S> {
        self.producer = Some((producer, guard));
        self
    }
}

/// Maps a failed append to the error Kafka's coordinators answer with
/// (`GroupMetadataManager`, `TransactionStateManager.appendTransactionToLog`).
pub fn coordinator_error(e: Error) -> Error {
    match e {
        Error::UnknownTopicOrPartition
        | Error::NotEnoughReplicas
        | Error::NotEnoughReplicasAfterAppend
        | Error::RequestTimedOut => Error::CoordinatorNotAvailable,
        Error::NotLeaderOrFollower | Error::KafkaStorageError => Error::NotCoordinator,
        Error::MessageTooLarge | Error::RecordListTooLarge | Error::InvalidFetchSize => {
            Error::UnknownServerError
        }
        other => other,
    }
}

/// What the runtime needs of a shard.
pub trait CoordinatorShard: Send + Sized + 'static {
    /// Runs once the shard is loaded and serves requests (resumes what the log left
    /// half done).
    fn finish_loading(&mut self, now: i64) -> Vec<Append<Self>>;
    /// Leadership moved away: answer everything parked with NOT_COORDINATOR.
    fn unload(&mut self, now: i64);
    /// The earliest timer deadline.
    fn next_deadline(&self) -> Option<i64>;
    /// Runs every timer due at `now`.
    fn poll_timers(&mut self, now: i64) -> Vec<Append<Self>>;
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every mutation of a shard completes before anything that could panic.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

enum ShardState<S> {
    Loading,
    Active(Box<S>),
    Unloaded,
}

/// The runtime's handle on one partition this broker leads.
pub struct Shard<S> {
    pub partition: i32,
    /// The leader epoch this broker leads the partition at (Kafka's coordinator epoch).
    pub epoch: i32,
    replica: Arc<Partition>,
    state: Mutex<ShardState<S>>,
    /// Wakes the timer driver when an earlier deadline appears (or on unload).
    wake: Notify,
    /// The deadline the driver sleeps towards (ms; i64::MAX = none).
    driver_deadline: AtomicI64,
    /// Bumped whenever an append completes.
    progress: watch::Sender<u64>,
    tasks: Tasks,
}

/// Loads a shard from its partition's log (blocking; runs on a blocking thread).
pub type Loader<S> = dyn Fn(i32, i32, &Partition) -> Result<S, String> + Send + Sync;

pub struct Runtime<S: CoordinatorShard> {
    topic: &'static str,
    replicas: Arc<ReplicaManager>,
    shards: RwLock<HashMap<i32, Arc<Shard<S>>>>,
    append_timeout: Duration,
    load: Box<Loader<S>>,
    /// Owner of the runtime's tasks (stopped at broker shutdown).
    tasks: Tasks,
}

impl<S: CoordinatorShard> Runtime<S> {
    /// Creates the runtime for `topic` and starts following its leadership.
    pub fn start(
        topic: &'static str,
        replicas: Arc<ReplicaManager>,
        append_timeout: Duration,
        load: Box<Loader<S>>,
        tasks: &Tasks,
    ) -> Arc<Runtime<S>> {
        let runtime = Arc::new(Runtime {
            topic,
            replicas,
            shards: RwLock::new(HashMap::new()),
            append_timeout,
            load,
            tasks: tasks.clone(),
        });
        // Subscribe before the first scan so no change falls between the two.
        let rx = runtime.replicas.subscribe_leadership();
        tasks.spawn(leadership_loop(runtime.clone(), rx));
        runtime
    }

    pub fn topic(&self) -> &'static str {
        self.topic
    }

    fn read_shards(&self) -> std::sync::RwLockReadGuard<'_, HashMap<i32, Arc<Shard<S>>>> {
        self.shards.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_shards(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<i32, Arc<Shard<S>>>> {
        self.shards.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The shard of partition `p`, or NOT_COORDINATOR.
    pub fn shard(&self, p: i32) -> Result<Arc<Shard<S>>, Error> {
        self.read_shards()
            .get(&p)
            .cloned()
            .ok_or(Error::NotCoordinator)
    }

    /// Every shard this broker currently leads (loaded or loading).
    pub fn shards(&self) -> Vec<Arc<Shard<S>>> {
        let mut v: Vec<Arc<Shard<S>>> = self.read_shards().values().cloned().collect();
        v.sort_by_key(|s| s.partition);
        v
    }

    /// Runs `op` on a shard and starts the appends it asks for: NOT_COORDINATOR once
    /// the shard is unloaded, COORDINATOR_LOAD_IN_PROGRESS while it loads.
    pub fn run<R>(
        &self,
        shard: &Arc<Shard<S>>,
        op: impl FnOnce(&mut S, i64) -> (R, Vec<Append<S>>),
    ) -> Result<R, Error> {
        let mut st = lock(&shard.state);
        let s = match &mut *st {
            ShardState::Active(s) => s,
            ShardState::Loading => return Err(Error::CoordinatorLoadInProgress),
            ShardState::Unloaded => return Err(Error::NotCoordinator),
        };
        let now = now_ms();
        let (result, appends) = op(s, now);
        start_appends(shard, s, appends, now, self.append_timeout);
        shard.maybe_wake_driver(s);
        Ok(result)
    }

    /// [`Self::run`] on the shard of partition `p`.
    pub fn run_on<R>(
        &self,
        p: i32,
        op: impl FnOnce(&mut S, i64) -> (R, Vec<Append<S>>),
    ) -> Result<R, Error> {
        let shard = self.shard(p)?;
        self.run(&shard, op)
    }

    // ---------------------------------------------------------------- leadership

    /// This broker now leads partition `p`: load it.
    fn elect(self: &Arc<Self>, p: i32, replica: Arc<Partition>) {
        {
            let shards = self.read_shards();
            if let Some(existing) = shards.get(&p) {
                if Arc::ptr_eq(&existing.replica, &replica)
                    && existing.epoch == replica.leader_epoch()
                {
                    return; // already loading or loaded for this replica and epoch
                }
            }
        }
        self.resign(p);
        let epoch = replica.leader_epoch();
        let shard = Arc::new(Shard {
            partition: p,
            epoch,
            replica: replica.clone(),
            state: Mutex::new(ShardState::Loading),
            wake: Notify::new(),
            driver_deadline: AtomicI64::new(i64::MAX),
            progress: watch::channel(0).0,
            tasks: self.tasks.clone(),
        });
        self.write_shards().insert(p, shard.clone());
        let topic = self.topic;
        tracing::info!(topic, partition = p, epoch, "elected coordinator; loading");
        self.tasks.spawn(drive_timers(self.clone(), shard.clone()));
        let runtime = self.clone();
        self.tasks.spawn(async move {
            let started = std::time::Instant::now();
            let loader = runtime.clone();
            let loaded =
                tokio::task::spawn_blocking(move || (loader.load)(p, epoch, &replica)).await;
            let mut s = match loaded {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::error!(topic, partition = p, error = %e, "cannot load the partition; its coordinator stays unavailable here");
                    return;
                }
                Err(e) => {
                    tracing::error!(topic, partition = p, error = %e, "loading task failed");
                    return;
                }
            };
            let mut st = lock(&shard.state);
            if !matches!(*st, ShardState::Loading) {
                return; // resigned while loading
            }
            let now = now_ms();
            let appends = s.finish_loading(now);
            tracing::info!(
                topic,
                partition = p,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "finished loading"
            );
            start_appends(&shard, &mut s, appends, now, runtime.append_timeout);
            *st = ShardState::Active(Box::new(s));
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
        if let ShardState::Active(s) = &mut *st {
            s.unload(now_ms());
        }
        *st = ShardState::Unloaded;
        drop(st);
        shard.wake.notify_one();
        shard.progress.send_modify(|v| *v = v.wrapping_add(1));
        tracing::info!(
            topic = self.topic,
            partition = p,
            "resigned as coordinator; unloaded"
        );
    }

    /// Brings the shards in line with the replicas this broker leads now.
    fn resync(self: &Arc<Self>) {
        let mut leading = HashMap::new();
        for part in self.replicas.all_partitions() {
            if part.tp.topic == self.topic && part.role() == Role::Leader {
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

impl<S: CoordinatorShard> Shard<S> {
    /// An append finished: run its continuation with the shard (if still loaded).
    fn complete(self: &Arc<Self>, on_done: OnAppend<S>, outcome: AppendResult, timeout: Duration) {
        let mut st = lock(&self.state);
        if let ShardState::Active(s) = &mut *st {
            let now = now_ms();
            let more = on_done(s, outcome, now);
            start_appends(self, s, more, now, timeout);
            self.maybe_wake_driver(s);
        }
        // Unloaded: the continuation (and any reply it holds) is dropped; the waiting
        // handler answers NOT_COORDINATOR.
        drop(st);
        self.progress.send_modify(|v| *v = v.wrapping_add(1));
    }

    fn maybe_wake_driver(&self, s: &S) {
        if let Some(next) = s.next_deadline() {
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

    /// The partition replica this shard writes to.
    pub fn replica(&self) -> &Arc<Partition> {
        &self.replica
    }
}

/// Appends each record set through the partition leader — under the shard lock, so the
/// records land in the order the state machine produced them — and completes it once the
/// high watermark passes it (acks=all) or `timeout` expires; failures complete at once.
fn start_appends<S: CoordinatorShard>(
    shard: &Arc<Shard<S>>,
    s: &mut S,
    appends: Vec<Append<S>>,
    now: i64,
    timeout: Duration,
) {
    let mut work: VecDeque<Append<S>> = appends.into();
    while let Some(append) = work.pop_front() {
        let producer = append.producer.map(|(p, _)| p);
        let batch = record::build_batch_for(&append.records, now, producer);
        let (origin, guard) = match append.producer {
            Some((_, guard)) => (AppendOrigin::Coordinator, guard),
            None => (AppendOrigin::Coordinator, None),
        };
        match shard
            .replica
            .append_as_leader_with(&batch, -1, origin, guard, now)
        {
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
                tracing::warn!(partition = shard.partition, error = %e, "coordinator append failed");
                work.extend((append.on_done)(s, Err(partition_error(&e)), now));
            }
        }
    }
}

/// Follows leadership changes of the runtime's topic.
async fn leadership_loop<S: CoordinatorShard>(
    runtime: Arc<Runtime<S>>,
    mut rx: tokio::sync::broadcast::Receiver<crate::replica::manager::LeadershipChange>,
) {
    use tokio::sync::broadcast::error::RecvError;
    runtime.resync();
    loop {
        match rx.recv().await {
            Ok(change) if change.tp.topic == runtime.topic => {
                let p = change.tp.partition;
                match runtime.replicas.partition(runtime.topic, p) {
                    Some(r) if r.role() == Role::Leader => runtime.elect(p, r),
                    _ => runtime.resign(p),
                }
            }
            Ok(_) => {}
            Err(RecvError::Lagged(_)) => runtime.resync(),
            Err(RecvError::Closed) => return,
        }
    }
}

/// Fires the shard's timers at their deadlines until the shard is unloaded.
async fn drive_timers<S: CoordinatorShard>(runtime: Arc<Runtime<S>>, shard: Arc<Shard<S>>) {
    loop {
        let next = {
            let st = lock(&shard.state);
            match &*st {
                ShardState::Active(s) => s.next_deadline(),
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
        let result = runtime.run(&shard, |s, now| ((), s.poll_timers(now)));
        if matches!(result, Err(Error::NotCoordinator)) {
            return;
        }
    }
}
