//! The controller role. Every broker runs `run`: it competes for the ephemeral
//! `/controller` znode (in one `multi` that also bumps `/controller_epoch`); the winner
//! reconciles partition states with the live brokers until its session ends or a write
//! finds the controller epoch moved on (it was deposed). Every controller write is a
//! `multi` that first checks `/controller_epoch`'s version, so a deposed controller cannot
//! write anything (Kafka's ZooKeeper-mode fencing).
//!
//! A broker shutting down announces it with the ephemeral
//! `/admin/controlled_shutdown/<id>`; the controller then moves its leaderships away and
//! takes it out of ISRs before it stops (Kafka's controlled shutdown, through ZooKeeper
//! rather than an RPC).
//!
//! Reassignments come from AlterPartitionReassignments (through `commands`) or from the
//! `/admin/reassign_partitions` znode (`legacy_reassign`), and are carried out by
//! `reassign`'s decisions.
//!
//! The decisions themselves are pure functions in `decisions`.

pub mod commands;
pub mod decisions;
pub mod election;
mod legacy_reassign;
pub mod reassign;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use zookeeper_client as zk;

use crate::config::{BrokerConfig, TopicConfig};
use crate::coordination::znodes::*;
use crate::coordination::{ClusterImage, PartitionState, SessionHandle, ZkSession};
use decisions::{preferred_elections, reconcile, Exclusions, Overlay, Transition};

/// Starts this broker's candidacy for the controller role; the handle takes admin
/// commands (elections, reassignments) to it while it is the controller.
pub fn start(
    config: Arc<BrokerConfig>,
    session: ZkSession,
    image: watch::Receiver<Arc<ClusterImage>>,
    tasks: &crate::tasks::Tasks,
) -> commands::ControllerHandle {
    let (handle, rx) = commands::ControllerHandle::channel();
    tasks.spawn(run(config, session, image, rx));
    handle
}

async fn run(
    config: Arc<BrokerConfig>,
    session: ZkSession,
    image: watch::Receiver<Arc<ClusterImage>>,
    mut commands: tokio::sync::mpsc::Receiver<commands::Command>,
) {
    loop {
        let handle = session.current().await;
        match try_elect(&handle, config.broker_id).await {
            Ok(Some(fence)) => {
                tracing::info!(
                    broker = config.broker_id,
                    epoch = fence.epoch,
                    "elected controller"
                );
                let mut role = ControllerRole {
                    config: config.clone(),
                    handle: handle.clone(),
                    fence,
                    overlay: Overlay::new(),
                    exclusions: Exclusions::default(),
                    broker_epochs: BTreeMap::new(),
                    deleted: Default::default(),
                    zk_reassign: legacy_reassign::ZkReassignment::new(),
                };
                let reason = role.serve(&session, image.clone(), &mut commands).await;
                tracing::warn!(broker = config.broker_id, %reason, "no longer controller");
            }
            Ok(None) => {
                // Commands sent meanwhile are dropped unanswered: NOT_CONTROLLER.
                let change = wait_for_controller_change(&session, &handle);
                tokio::pin!(change);
                loop {
                    tokio::select! {
                        _ = &mut change => break,
                        cmd = commands.recv() => drop(cmd),
                    }
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "controller election failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// The controller epoch this controller holds and the version of `/controller_epoch`
/// every write is conditional on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fence {
    epoch: i32,
    zk_version: i32,
}

async fn try_elect(handle: &SessionHandle, broker_id: i32) -> Result<Option<Fence>, zk::Error> {
    let client = &handle.client;
    let persistent = handle.create_options(zk::CreateMode::Persistent, CONTROLLER_EPOCH);
    let ephemeral = handle.create_options(zk::CreateMode::Ephemeral, CONTROLLER);
    loop {
        if client.check_stat(CONTROLLER).await?.is_some() {
            return Ok(None);
        }
        let (epoch, version) = match client.get_data(CONTROLLER_EPOCH).await {
            Ok((data, stat)) => {
                let epoch = std::str::from_utf8(&data)
                    .ok()
                    .and_then(|s| s.trim().parse::<i32>().ok())
                    .unwrap_or(0);
                (epoch, stat.version)
            }
            Err(zk::Error::NoNode) => {
                match client.create(CONTROLLER_EPOCH, b"0", &persistent).await {
                    Ok(_) | Err(zk::Error::NodeExists) => continue,
                    Err(err) => return Err(err),
                }
            }
            Err(err) => return Err(err),
        };
        let new_epoch = epoch + 1;
        let znode = ControllerZnode {
            version: 1,
            brokerid: broker_id,
            epoch: new_epoch,
            timestamp: crate::clock::now_ms().to_string(),
        };
        let mut multi = client.new_multi_writer();
        multi.add_create(CONTROLLER, &znode.encode(), &ephemeral)?;
        multi.add_set_data(
            CONTROLLER_EPOCH,
            new_epoch.to_string().as_bytes(),
            Some(version),
        )?;
        match multi.commit().await {
            Ok(results) => {
                let zk_version = match results.get(1) {
                    Some(zk::MultiWriteResult::SetData { stat }) => stat.version,
                    _ => version + 1,
                };
                return Ok(Some(Fence {
                    epoch: new_epoch,
                    zk_version,
                }));
            }
            Err(zk::MultiWriteError::OperationFailed {
                index: 0,
                source: zk::Error::NodeExists,
            }) => return Ok(None),
            Err(zk::MultiWriteError::OperationFailed {
                index: 1,
                source: zk::Error::BadVersion,
            }) => continue,
            Err(err) => return Err(err.into()),
        }
    }
}

/// Waits until `/controller` disappears or the session changes.
async fn wait_for_controller_change(session: &ZkSession, handle: &SessionHandle) {
    let mut sessions = session.subscribe();
    let watcher = match handle.client.check_and_watch_stat(CONTROLLER).await {
        Ok((None, _)) => return,
        Ok((Some(_), watcher)) => watcher,
        Err(_) => {
            tokio::time::sleep(Duration::from_millis(200)).await;
            return;
        }
    };
    let changed = watcher.changed();
    tokio::pin!(changed);
    loop {
        tokio::select! {
            _ = &mut changed => return,
            r = sessions.changed() => {
                if r.is_err() || sessions.borrow().as_ref().map(|h| h.generation) != Some(handle.generation) {
                    return;
                }
            }
        }
    }
}

/// Why a controller stopped being one.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Resigned {
    #[error("ZooKeeper session ended")]
    SessionEnded,
    #[error("controller epoch moved on: deposed")]
    Fenced,
}

pub(crate) struct ControllerRole {
    config: Arc<BrokerConfig>,
    handle: SessionHandle,
    fence: Fence,
    overlay: Overlay,
    exclusions: Exclusions,
    /// Last seen broker epoch (registration czxid) per live broker, to spot restarts.
    broker_epochs: BTreeMap<i32, i64>,
    /// Topics this controller deleted that the image still shows (it lags our writes).
    deleted: std::collections::BTreeSet<String>,
    /// The `/admin/reassign_partitions` znode's reassignment.
    zk_reassign: legacy_reassign::ZkReassignment,
}

pub(crate) enum WriteOutcome {
    Done(PartitionState),
    Conflict,
    Fenced,
}

impl ControllerRole {
    async fn serve(
        &mut self,
        session: &ZkSession,
        mut image_rx: watch::Receiver<Arc<ClusterImage>>,
        commands: &mut tokio::sync::mpsc::Receiver<commands::Command>,
    ) -> Resigned {
        let mut sessions = session.subscribe();
        let mut rebalance = tokio::time::interval(Duration::from_millis(
            self.config.leader_imbalance_check_interval_ms,
        ));
        rebalance.tick().await;
        // Retry pass for writes that lost a race with the image.
        let mut retry = tokio::time::interval(Duration::from_secs(1));
        // The exists watch on `/admin/reassign_partitions`, armed on the first pass.
        let mut zk_reassign_watch = None;
        loop {
            let image = image_rx.borrow_and_update().clone();
            if image.loaded {
                self.note_broker_epochs(&image);
                if let Err(r) = self.reconcile_once(&image).await {
                    return r;
                }
                if let Some(watch) = self.check_zk_reassignment(&image).await {
                    zk_reassign_watch = Some(watch);
                }
                if let Err(r) = self.advance_zk_reassignment(&image).await {
                    return r;
                }
            }
            tokio::select! {
                r = image_rx.changed() => if r.is_err() { return Resigned::SessionEnded },
                r = sessions.changed() => {
                    if r.is_err() || sessions.borrow().as_ref().map(|h| h.generation) != Some(self.handle.generation) {
                        return Resigned::SessionEnded;
                    }
                }
                _ = rebalance.tick() => {
                    if self.config.auto_leader_rebalance_enable {
                        let image = image_rx.borrow().clone();
                        let moves = preferred_elections(&image, &self.overlay, &self.exclusions, self.config.leader_imbalance_per_broker_percentage);
                        if let Err(r) = self.apply(moves).await { return r; }
                    }
                }
                _ = retry.tick() => {}
                _ = legacy_reassign::fired(&mut zk_reassign_watch) => {
                    zk_reassign_watch = None;
                    self.zk_reassign.check = true;
                }
                Some(cmd) = commands.recv() => {
                    let image = image_rx.borrow().clone();
                    if let Err(r) = self.command(&image, cmd).await { return r; }
                }
            }
        }
    }

    fn note_broker_epochs(&mut self, image: &ClusterImage) {
        for (id, info) in &image.brokers {
            match self.broker_epochs.insert(*id, info.epoch) {
                Some(old) if old != info.epoch => {
                    tracing::info!(
                        broker = id,
                        "broker restarted (new epoch): its leaderships are re-elected"
                    );
                    self.exclusions.bounced.insert(*id);
                }
                _ => {}
            }
        }
        self.broker_epochs
            .retain(|id, _| image.brokers.contains_key(id));
        // Brokers announcing a controlled shutdown lose leadership and leave ISRs first.
        self.exclusions.shutting_down = image.shutting_down.clone();
    }

    async fn reconcile_once(&mut self, image: &ClusterImage) -> Result<(), Resigned> {
        self.overlay.retain(|(t, p), o| {
            image
                .partition(t, *p)
                .and_then(|info| info.state.as_ref())
                .is_none_or(|s| (o.leader_epoch, o.zk_version) > (s.leader_epoch, s.zk_version))
        });
        let defaults = &self.config.topic_defaults;
        let unclean_for = |topic: &str| {
            image
                .topic(topic)
                .and_then(|t| TopicConfig::new(t.config.clone(), defaults).ok())
                .is_some_and(|c| c.bool("unclean.leader.election.enable"))
        };
        let transitions = reconcile(image, &self.overlay, &self.exclusions, unclean_for);
        self.apply(transitions).await?;
        self.advance_reassignments(image).await?;
        // Failure notifications of brokers that re-registered since are void (their
        // directories were recovered at the restart, or failed again and re-announced).
        for child in image.stale_log_dir_events() {
            let path = crate::coordination::log_dir_events::event_path(&child);
            let _ = self.handle.client.delete(&path, None).await;
        }
        // A bounced broker has been re-elected away from (or re-elected itself); from now
        // on it is an ordinary live broker again.
        self.exclusions.bounced.clear();
        self.deleted.retain(|t| image.topics.contains_key(t));
        let to_delete: Vec<String> = image
            .topics
            .values()
            .filter(|t| t.deleting && !self.deleted.contains(&t.name))
            .map(|t| t.name.clone())
            .collect();
        for topic in to_delete {
            if self.delete_topic(&topic).await? {
                self.deleted.insert(topic);
            }
        }
        Ok(())
    }

    async fn apply(&mut self, transitions: Vec<Transition>) -> Result<(), Resigned> {
        let handle = self.handle.clone();
        let fence = self.fence;
        let writes = transitions
            .iter()
            .map(|t| write_transition(&handle, fence, t));
        let outcomes = futures::future::join_all(writes).await;
        for (t, outcome) in transitions.iter().zip(outcomes) {
            match outcome {
                WriteOutcome::Done(state) => {
                    tracing::info!(
                        topic = %t.topic, partition = t.partition, leader = t.leader,
                        leader_epoch = t.leader_epoch, isr = ?t.isr, reason = t.reason,
                        "partition state changed"
                    );
                    self.overlay.insert((t.topic.clone(), t.partition), state);
                }
                WriteOutcome::Conflict => {}
                WriteOutcome::Fenced => return Err(Resigned::Fenced),
            }
        }
        Ok(())
    }

    /// Removes a topic whose deletion was requested: its partition states, partitions,
    /// assignment, config and the deletion marker, in one fenced `multi`. Brokers see the
    /// topic vanish and delete their logs. Returns whether the topic is gone.
    async fn delete_topic(&mut self, topic: &str) -> Result<bool, Resigned> {
        let client = &self.handle.client;
        // Delete what exists (a partition may never have been initialised), fenced.
        let existing = existing_partition_paths(client, topic).await;
        let mut multi = client.new_multi_writer();
        let build = (|| -> Result<(), zk::Error> {
            multi.add_check_version(CONTROLLER_EPOCH, self.fence.zk_version)?;
            for path in &existing {
                multi.add_delete(path, None)?;
            }
            multi.add_delete(&topic_path(topic), None)?;
            Ok(())
        })();
        if build.is_err() {
            return Ok(false);
        }
        match multi.commit().await {
            Ok(_) => tracing::info!(%topic, "topic deleted"),
            Err(zk::MultiWriteError::OperationFailed { index: 0, .. }) => {
                return Err(Resigned::Fenced)
            }
            // Already gone (an earlier pass deleted it): only the markers remain.
            Err(zk::MultiWriteError::OperationFailed {
                source: zk::Error::NoNode,
                ..
            }) if client
                .check_stat(&topic_path(topic))
                .await
                .ok()
                .flatten()
                .is_none() => {}
            Err(err) => {
                tracing::warn!(%topic, error = %err, "topic deletion failed; will retry");
                return Ok(false);
            }
        }
        for path in [topic_config_path(topic), delete_topic_path(topic)] {
            let _ = client.delete(&path, None).await;
        }
        // Forget the states this controller wrote for the topic: a topic re-created under
        // the same name before the image saw it go has no state, and a leftover overlay
        // entry would pass for one, so its partitions would never be initialised.
        self.overlay.retain(|(t, _), _| t != topic);
        Ok(true)
    }
}

/// Paths under `/brokers/topics/<topic>` deepest first, so a `multi` can delete them.
async fn existing_partition_paths(client: &zk::Client, topic: &str) -> Vec<String> {
    let mut out = Vec::new();
    let parent = partitions_path(topic);
    let Ok(children) = client.list_children(&parent).await else {
        return out;
    };
    for child in children {
        let p = format!("{parent}/{child}");
        if let Ok(grand) = client.list_children(&p).await {
            for g in grand {
                out.push(format!("{p}/{g}"));
            }
        }
        out.push(p);
    }
    out.push(parent);
    out
}

async fn write_transition(handle: &SessionHandle, fence: Fence, t: &Transition) -> WriteOutcome {
    let client = &handle.client;
    let znode = PartitionStateZnode {
        version: 1,
        leader: t.leader,
        leader_epoch: t.leader_epoch,
        isr: t.isr.clone(),
        controller_epoch: fence.epoch,
    };
    let path = partition_state_path(&t.topic, t.partition);
    if t.expected_version.is_none() {
        // New partition: its parents may not exist yet.
        for parent in [
            partitions_path(&t.topic),
            partition_path(&t.topic, t.partition),
        ] {
            let options = handle.create_options(zk::CreateMode::Persistent, &parent);
            match client.create(&parent, &[], &options).await {
                Ok(_) | Err(zk::Error::NodeExists) => {}
                Err(_) => return WriteOutcome::Conflict,
            }
        }
    }
    let mut multi = client.new_multi_writer();
    let options = handle.create_options(zk::CreateMode::Persistent, &path);
    let built = (|| -> Result<(), zk::Error> {
        multi.add_check_version(CONTROLLER_EPOCH, fence.zk_version)?;
        match t.expected_version {
            None => multi.add_create(&path, &znode.encode(), &options),
            Some(v) => multi.add_set_data(&path, &znode.encode(), Some(v)),
        }
    })();
    if built.is_err() {
        return WriteOutcome::Conflict;
    }
    match multi.commit().await {
        Ok(results) => {
            // A create inside a multi returns no stat on ZooKeeper 3.8 (ZOOKEEPER-4026): a
            // fresh znode has version 0.
            let zk_version = match results.get(1) {
                Some(zk::MultiWriteResult::SetData { stat }) => stat.version,
                _ => t.expected_version.map_or(0, |v| v + 1),
            };
            WriteOutcome::Done(PartitionState {
                leader: t.leader,
                leader_epoch: t.leader_epoch,
                isr: t.isr.clone(),
                controller_epoch: fence.epoch,
                zk_version,
            })
        }
        Err(zk::MultiWriteError::OperationFailed { index: 0, .. }) => WriteOutcome::Fenced,
        Err(_) => WriteOutcome::Conflict,
    }
}
