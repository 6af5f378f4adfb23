//! Keeps a `ClusterImage` in step with ZooKeeper.
//!
//! ZooKeeper watches are one-shot: each read that matters is done with a watch, and when
//! the watch fires the node is read again (re-arming it). A fired watch becomes a
//! `Reload` key on a channel; the loop drains the channel, deduplicates, re-reads, and
//! publishes one new image per batch. A new session (after expiry) starts from a full load.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use zookeeper_client as zk;

use crate::tasks::Tasks;

use super::image::{BrokerInfo, ClusterImage, PartitionInfo, PartitionState, TopicInfo};
use super::session::{SessionHandle, ZkSession};
use super::znodes::*;

/// What to re-read from ZooKeeper.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Reload {
    Brokers,
    Controller,
    Topics,
    Topic(String),
    PartitionState(String, i32),
    TopicConfig(String),
    Deletions,
    ShuttingDown,
    LogDirEvents,
    /// The dynamic broker config entities (`/config/brokers` children).
    BrokerConfigs,
    BrokerConfig(String),
}

/// Starts the watcher; the returned receiver always holds the latest image.
pub fn start(session: ZkSession, tasks: &Tasks) -> watch::Receiver<Arc<ClusterImage>> {
    let (tx, rx) = watch::channel(Arc::new(ClusterImage::default()));
    tasks.spawn(run(session, tx, tasks.clone()));
    rx
}

async fn run(session: ZkSession, publish: watch::Sender<Arc<ClusterImage>>, tasks: Tasks) {
    loop {
        let handle = session.current().await;
        let mut sessions = session.subscribe();
        let mut state = WatchState::new(handle.clone(), tasks.clone());
        let (reload_tx, mut reload_rx) = mpsc::unbounded_channel();
        state.reload_tx = Some(reload_tx);
        for key in [
            Reload::Brokers,
            Reload::Controller,
            Reload::Topics,
            Reload::Deletions,
            Reload::ShuttingDown,
            Reload::LogDirEvents,
            Reload::BrokerConfigs,
        ] {
            state.pending.insert(key);
        }
        if let Ok(data) = handle.client.get_data(CLUSTER_ID).await {
            if let Ok(z) = ClusterIdZnode::decode(&data.0) {
                state.image.cluster_id = z.id;
            }
        }
        loop {
            let ok = state.apply_pending().await;
            if ok {
                state.image.loaded = true;
            }
            state.image.rebuild_id_index();
            if **publish.borrow() != state.image {
                publish.send_replace(Arc::new(state.image.clone()));
            }
            if !ok {
                // A read failed (connection loss): retry the remaining keys shortly,
                // unless the session is gone.
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            if session_changed(&sessions, handle.generation) {
                break;
            }
            if state.pending.is_empty() {
                tokio::select! {
                    key = reload_rx.recv() => match key {
                        Some(key) => { state.fired(key); }
                        None => break,
                    },
                    _ = sessions.changed() => {}
                }
            }
            while let Ok(key) = reload_rx.try_recv() {
                state.fired(key);
            }
            if session_changed(&sessions, handle.generation) {
                break;
            }
        }
    }
}

fn session_changed(sessions: &watch::Receiver<Option<SessionHandle>>, generation: u64) -> bool {
    sessions.borrow().as_ref().map(|h| h.generation) != Some(generation)
}

struct WatchState {
    handle: SessionHandle,
    image: ClusterImage,
    /// Keys whose watch is armed: a later reload of the same key reads without a new watch.
    armed: HashSet<Reload>,
    pending: HashSet<Reload>,
    reload_tx: Option<mpsc::UnboundedSender<Reload>>,
    /// Owner of the tasks waiting on armed watches.
    tasks: Tasks,
}

type ZkResult<T> = Result<T, zk::Error>;

impl WatchState {
    fn new(handle: SessionHandle, tasks: Tasks) -> Self {
        WatchState {
            handle,
            image: ClusterImage::default(),
            armed: HashSet::new(),
            pending: HashSet::new(),
            reload_tx: None,
            tasks,
        }
    }

    fn fired(&mut self, key: Reload) {
        self.armed.remove(&key);
        self.pending.insert(key);
    }

    /// Re-reads every pending key. Returns false if some read failed (they stay pending).
    async fn apply_pending(&mut self) -> bool {
        let mut all_ok = true;
        // Topics before their partitions: a topic reload queues its partition states.
        while !self.pending.is_empty() {
            let mut keys: Vec<Reload> = self.pending.drain().collect();
            keys.sort_by_key(|k| match k {
                Reload::Brokers
                | Reload::Controller
                | Reload::Deletions
                | Reload::ShuttingDown
                | Reload::LogDirEvents
                | Reload::BrokerConfigs => 0,
                Reload::Topics => 1,
                Reload::Topic(_) => 2,
                _ => 3,
            });
            let mut failed = Vec::new();
            for key in keys {
                if let Err(err) = self.reload(&key).await {
                    tracing::debug!(?key, error = %err, "ZooKeeper read failed; will retry");
                    failed.push(key);
                }
            }
            if !failed.is_empty() {
                all_ok = false;
                self.pending.extend(failed);
                break;
            }
        }
        all_ok
    }

    fn arm(&mut self, key: Reload, watcher: zk::OneshotWatcher) {
        let Some(tx) = self.reload_tx.clone() else {
            return;
        };
        self.armed.insert(key.clone());
        self.tasks.spawn(async move {
            let event = watcher.changed().await;
            if event.event_type != zk::EventType::Session {
                let _ = tx.send(key);
            }
        });
    }

    /// Reads `path` (data + stat), arming a watch unless one is armed for `key`. A
    /// missing node arms an exists-watch so its creation is seen.
    async fn read(&mut self, key: Reload, path: &str) -> ZkResult<Option<(Vec<u8>, zk::Stat)>> {
        let client = self.handle.client.clone();
        if self.armed.contains(&key) {
            return match client.get_data(path).await {
                Ok(found) => Ok(Some(found)),
                Err(zk::Error::NoNode) => Ok(None),
                Err(err) => Err(err),
            };
        }
        loop {
            match client.get_and_watch_data(path).await {
                Ok((data, stat, watcher)) => {
                    self.arm(key, watcher);
                    return Ok(Some((data, stat)));
                }
                Err(zk::Error::NoNode) => match client.check_and_watch_stat(path).await? {
                    (None, watcher) => {
                        self.arm(key, watcher);
                        return Ok(None);
                    }
                    // Created in between: read it again.
                    (Some(_), _) => continue,
                },
                Err(err) => return Err(err),
            }
        }
    }

    async fn children(&mut self, key: Reload, path: &str) -> ZkResult<Vec<String>> {
        let client = self.handle.client.clone();
        if self.armed.contains(&key) {
            return client.list_children(path).await;
        }
        let (children, _stat, watcher) = client.get_and_watch_children(path).await?;
        self.arm(key, watcher);
        Ok(children)
    }

    async fn reload(&mut self, key: &Reload) -> ZkResult<()> {
        match key {
            Reload::Brokers => self.reload_brokers().await,
            Reload::Controller => {
                let found = self.read(key.clone(), CONTROLLER).await?;
                self.image.controller_id = found
                    .and_then(|(data, _)| ControllerZnode::decode(&data).ok())
                    .map(|z| z.brokerid);
                Ok(())
            }
            Reload::Topics => self.reload_topics().await,
            Reload::Topic(topic) => self.reload_topic(topic).await,
            Reload::PartitionState(topic, p) => self.reload_partition_state(topic, *p).await,
            Reload::TopicConfig(topic) => {
                let found = self.read(key.clone(), &topic_config_path(topic)).await?;
                let config = match found {
                    Some((data, _)) => {
                        match TopicConfigZnode::decode(&topic_config_path(topic), &data) {
                            Ok(z) => z.config,
                            Err(err) => {
                                tracing::warn!(%err, "ignoring unreadable topic config");
                                BTreeMap::new()
                            }
                        }
                    }
                    None => BTreeMap::new(),
                };
                if let Some(t) = self.image.topics.get_mut(topic) {
                    t.config = config;
                }
                Ok(())
            }
            Reload::ShuttingDown => {
                let ids = self.children(key.clone(), CONTROLLED_SHUTDOWN).await?;
                self.image.shutting_down = ids.iter().filter_map(|c| c.parse().ok()).collect();
                Ok(())
            }
            Reload::LogDirEvents => self.reload_log_dir_events().await,
            Reload::BrokerConfigs => {
                let entities = self.children(key.clone(), CONFIG_BROKERS).await?;
                self.image
                    .broker_configs
                    .retain(|name, _| entities.contains(name));
                for entity in entities {
                    self.pending.insert(Reload::BrokerConfig(entity));
                }
                Ok(())
            }
            Reload::BrokerConfig(entity) => {
                let path = broker_config_path(entity);
                match self.read(key.clone(), &path).await? {
                    Some((data, _)) => match BrokerConfigZnode::decode(&path, &data) {
                        Ok(z) => {
                            self.image.broker_configs.insert(entity.clone(), z.config);
                        }
                        Err(err) => {
                            tracing::warn!(%err, "ignoring unreadable dynamic broker config");
                            self.image.broker_configs.remove(entity);
                        }
                    },
                    None => {
                        self.image.broker_configs.remove(entity);
                    }
                }
                Ok(())
            }
            Reload::Deletions => {
                let names: HashSet<String> = self
                    .children(key.clone(), DELETE_TOPICS)
                    .await?
                    .into_iter()
                    .collect();
                for t in self.image.topics.values_mut() {
                    t.deleting = names.contains(&t.name);
                }
                Ok(())
            }
        }
    }

    /// Log directory failure notifications. They are never modified once written, so
    /// only the children are watched; a cluster created before the parent existed gets
    /// an exists-watch on it.
    async fn reload_log_dir_events(&mut self) -> ZkResult<()> {
        use super::log_dir_events::{event_path, LogDirEventZnode, LOG_DIR_EVENT_NOTIFICATION};
        let client = self.handle.client.clone();
        let children = if self.armed.contains(&Reload::LogDirEvents) {
            match client.list_children(LOG_DIR_EVENT_NOTIFICATION).await {
                Ok(c) => c,
                Err(zk::Error::NoNode) => Vec::new(),
                Err(err) => return Err(err),
            }
        } else {
            match client
                .get_and_watch_children(LOG_DIR_EVENT_NOTIFICATION)
                .await
            {
                Ok((children, _, watcher)) => {
                    self.arm(Reload::LogDirEvents, watcher);
                    children
                }
                Err(zk::Error::NoNode) => {
                    let (stat, watcher) = client
                        .check_and_watch_stat(LOG_DIR_EVENT_NOTIFICATION)
                        .await?;
                    self.arm(Reload::LogDirEvents, watcher);
                    if stat.is_some() {
                        // Created in between: read it on the watch's reload.
                        self.pending.insert(Reload::LogDirEvents);
                    }
                    Vec::new()
                }
                Err(err) => return Err(err),
            }
        };
        let mut events = BTreeMap::new();
        for child in children {
            if let Some(known) = self.image.log_dir_events.get(&child) {
                events.insert(child, known.clone());
                continue;
            }
            match client.get_data(&event_path(&child)).await {
                Ok((data, _)) => match LogDirEventZnode::decode(&data) {
                    Some(z) => {
                        events.insert(child, z);
                    }
                    None => tracing::warn!(%child, "ignoring unreadable log dir event"),
                },
                Err(zk::Error::NoNode) => {}
                Err(err) => return Err(err),
            }
        }
        self.image.log_dir_events = events;
        Ok(())
    }

    async fn reload_brokers(&mut self) -> ZkResult<()> {
        let ids = self.children(Reload::Brokers, BROKER_IDS).await?;
        let client = self.handle.client.clone();
        let mut brokers = BTreeMap::new();
        for child in ids {
            let Ok(id) = child.parse::<i32>() else {
                continue;
            };
            let path = broker_path(id);
            let (data, stat) = match client.get_data(&path).await {
                Ok(found) => found,
                Err(zk::Error::NoNode) => continue,
                Err(err) => return Err(err),
            };
            match BrokerZnode::decode(&path, &data) {
                Ok(z) => {
                    brokers.insert(
                        id,
                        BrokerInfo {
                            id,
                            host: z.host,
                            port: z.port,
                            rack: z.rack,
                            epoch: stat.czxid,
                            endpoints: z
                                .endpoints
                                .iter()
                                .filter_map(|e| crate::config::listeners::parse_endpoint(e))
                                .map(|(name, host, port)| (name, (host, port)))
                                .collect(),
                        },
                    );
                }
                Err(err) => tracing::warn!(%err, "ignoring unreadable broker registration"),
            }
        }
        self.image.brokers = brokers;
        Ok(())
    }

    async fn reload_topics(&mut self) -> ZkResult<()> {
        let names: HashSet<String> = self
            .children(Reload::Topics, BROKER_TOPICS)
            .await?
            .into_iter()
            .collect();
        self.image.topics.retain(|name, _| names.contains(name));
        self.armed.retain(|k| match k {
            Reload::Topic(t) | Reload::TopicConfig(t) | Reload::PartitionState(t, _) => {
                names.contains(t)
            }
            _ => true,
        });
        for name in names {
            if !self.image.topics.contains_key(&name) {
                self.pending.insert(Reload::Topic(name.clone()));
                self.pending.insert(Reload::TopicConfig(name));
            }
        }
        self.pending.insert(Reload::Deletions);
        Ok(())
    }

    async fn reload_topic(&mut self, topic: &str) -> ZkResult<()> {
        let path = topic_path(topic);
        let Some((data, stat)) = self.read(Reload::Topic(topic.to_string()), &path).await? else {
            self.image.topics.remove(topic);
            return Ok(());
        };
        let parsed = TopicZnode::decode(&path, &data).and_then(|z| {
            let assignment = z.assignment(&path)?;
            let id = z.topic_uuid(&path)?;
            let moving = |m: &BTreeMap<String, Vec<i32>>| -> BTreeMap<i32, Vec<i32>> {
                m.iter()
                    .filter_map(|(p, r)| p.parse().ok().map(|p| (p, r.clone())))
                    .collect()
            };
            Ok((
                id,
                assignment,
                moving(&z.adding_replicas),
                moving(&z.removing_replicas),
            ))
        });
        let (id, assignment, mut adding, mut removing) = match parsed {
            Ok(found) => found,
            Err(err) => {
                tracing::warn!(%err, "ignoring unreadable topic znode");
                return Ok(());
            }
        };
        let entry = self
            .image
            .topics
            .entry(topic.to_string())
            .or_insert_with(|| TopicInfo {
                name: topic.to_string(),
                id,
                partitions: BTreeMap::new(),
                config: BTreeMap::new(),
                deleting: false,
                zk_version: stat.version,
            });
        entry.id = id;
        entry.zk_version = stat.version;
        entry.partitions.retain(|p, _| assignment.contains_key(p));
        let mut new_partitions = Vec::new();
        for (p, replicas) in assignment {
            let add = adding.remove(&p).unwrap_or_default();
            let remove = removing.remove(&p).unwrap_or_default();
            match entry.partitions.get_mut(&p) {
                Some(info) => {
                    info.replicas = replicas;
                    info.adding = add;
                    info.removing = remove;
                }
                None => {
                    entry.partitions.insert(
                        p,
                        PartitionInfo {
                            replicas,
                            adding: add,
                            removing: remove,
                            state: None,
                        },
                    );
                    new_partitions.push(p);
                }
            }
        }
        for p in new_partitions {
            self.pending
                .insert(Reload::PartitionState(topic.to_string(), p));
        }
        Ok(())
    }

    async fn reload_partition_state(&mut self, topic: &str, partition: i32) -> ZkResult<()> {
        let path = partition_state_path(topic, partition);
        let key = Reload::PartitionState(topic.to_string(), partition);
        let found = self.read(key, &path).await?;
        let state = match found {
            Some((data, stat)) => match PartitionStateZnode::decode(&path, &data) {
                Ok(z) => Some(PartitionState {
                    leader: z.leader,
                    leader_epoch: z.leader_epoch,
                    isr: z.isr,
                    controller_epoch: z.controller_epoch,
                    zk_version: stat.version,
                }),
                Err(err) => {
                    tracing::warn!(%err, "ignoring unreadable partition state");
                    None
                }
            },
            None => None,
        };
        if let Some(info) = self
            .image
            .topics
            .get_mut(topic)
            .and_then(|t| t.partitions.get_mut(&partition))
        {
            // Never go back to an older leader epoch (a stale read racing a newer one).
            let older = match (&info.state, &state) {
                (Some(cur), Some(new)) => {
                    (new.leader_epoch, new.zk_version) < (cur.leader_epoch, cur.zk_version)
                }
                _ => false,
            };
            if !older {
                info.state = state;
            }
        }
        Ok(())
    }
}

/// Used by tests and tools that want to wait for an image condition.
pub async fn wait_for(
    rx: &mut watch::Receiver<Arc<ClusterImage>>,
    timeout: Duration,
    mut cond: impl FnMut(&ClusterImage) -> bool,
) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if cond(&rx.borrow_and_update()) {
            return true;
        }
        match tokio::time::timeout_at(deadline, rx.changed()).await {
            Ok(Ok(())) => continue,
            _ => return false,
        }
    }
}
