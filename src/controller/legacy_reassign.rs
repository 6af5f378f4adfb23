//! `/admin/reassign_partitions`: reassignments requested by writing ZooKeeper directly
//! (`kafka-reassign-partitions --zookeeper` of Kafka 2.x, zkCli), carried out as
//! ZooKeeper-mode Kafka's controller does since KIP-455 (`KafkaController`):
//!
//! - the active controller keeps an exists watch on the znode and reads it when it is
//!   created, and once when it becomes controller (`processZkPartitionReassignment`, from
//!   `PartitionReassignmentHandler.handleCreation` and `initializePartitionReassignments`);
//!   rewrites of an existing znode start nothing, as in Kafka, whose handler only handles
//!   creation;
//! - each entry starts as an AlterPartitionReassignments request for it would (same
//!   validation, same steps, the progress kept in the topic znode); an entry refused is
//!   logged and dropped from the znode; an entry already being carried out to the same
//!   target (a controller taking over) is resumed, not restarted. (Kafka 3.9 checks only
//!   that a znode entry's partition exists, leaving the rest to the tool that wrote it;
//!   a hand-written entry gets the API's checks here: no duplicates, no negative ids,
//!   added replicas alive);
//! - an entry leaves the znode when its reassignment completes
//!   (`removePartitionFromReassigningPartitions`) or when an AlterPartitionReassignments
//!   request names its partition (`processApiPartitionReassignment`: the latest request
//!   wins); the znode is deleted when no entry is left (`maybeRemoveFromZkReassignment`).
//!
//! What to start and what to remove are pure decisions (`reassign::under_way`,
//! `reassign::znode_removals`); this module holds the ZooKeeper reads, writes and watch.
//! Every write is fenced by the controller epoch, like the controller's other writes.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;

use zookeeper_client as zk;

use super::reassign::{under_way, znode_removals};
use super::{ControllerRole, Resigned};
use crate::coordination::znodes::{
    ReassignPartitionsZnode, ReassignTargets, CONTROLLER_EPOCH, REASSIGN_PARTITIONS,
};
use crate::coordination::ClusterImage;

/// The armed exists watch on `/admin/reassign_partitions`.
pub(super) type Watch = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Resolves when `watch` fires; never when there is none.
pub(super) async fn fired(watch: &mut Option<Watch>) {
    match watch {
        Some(w) => w.await,
        None => std::future::pending().await,
    }
}

/// The controller's side of the znode.
#[derive(Debug, Default)]
pub(super) struct ZkReassignment {
    /// The znode is to be looked at: when becoming controller, and when its watch fired.
    pub(super) check: bool,
    /// Creation zxid of the znode whose entries were read (Kafka reads it only when it is
    /// created, so rewrites, the controller's own included, start nothing).
    read: Option<i64>,
    /// Its entries as last read or written.
    targets: ReassignTargets,
    /// Entries still to start (one that lost a race with a partition-state write is tried
    /// again on the next pass).
    pending: BTreeSet<(String, i32)>,
    /// Entries to take out of the znode: refused, or superseded by the API.
    dropped: BTreeSet<(String, i32)>,
}

impl ZkReassignment {
    /// A new controller looks at the znode first thing (a failover may have left one).
    pub(super) fn new() -> Self {
        ZkReassignment {
            check: true,
            ..Default::default()
        }
    }

    fn forget(&mut self) {
        self.read = None;
        self.targets.clear();
        self.pending.clear();
        self.dropped.clear();
    }

    /// Takes in a newly created znode's content: every entry not already under way is to
    /// be started. Malformed JSON counts as no entry (Kafka ignores it; here the empty
    /// znode is then deleted so that the next request can be written).
    fn take(&mut self, image: &ClusterImage, data: &[u8], czxid: i64) {
        self.forget();
        self.read = Some(czxid);
        self.targets = match ReassignPartitionsZnode::decode(data) {
            Ok(znode) => znode.targets(),
            Err(err) => {
                tracing::warn!(error = %err, "ignoring malformed {REASSIGN_PARTITIONS}");
                ReassignTargets::new()
            }
        };
        self.pending = self
            .targets
            .iter()
            .filter(|((topic, p), target)| !under_way(image, topic, *p, target))
            .map(|(key, _)| key.clone())
            .collect();
        tracing::info!(
            partitions = ?self.targets,
            resumed = self.targets.len() - self.pending.len(),
            "partition reassignment requested through {REASSIGN_PARTITIONS}"
        );
    }

    /// Partitions an AlterPartitionReassignments request has just reassigned (or
    /// cancelled) leave the znode: the latest request wins.
    pub(super) fn supersede(&mut self, partitions: &BTreeSet<(String, i32)>) {
        for key in partitions {
            if self.targets.contains_key(key) {
                self.pending.remove(key);
                self.dropped.insert(key.clone());
            }
        }
    }
}

/// How starting one reassignment went.
pub(super) enum Started {
    /// Started, resumed, or nothing to do (the partition is already so assigned).
    Yes,
    /// Refused, with Kafka's error.
    Refused(super::reassign::ReassignError),
    /// The partition's state changed under the controller: try again.
    Raced,
}

impl ControllerRole {
    /// Looks at the znode if due: arms the exists watch (returned) and, if the znode was
    /// created since it was last read, reads its entries. A ZooKeeper error leaves the
    /// check due, for the next pass.
    pub(super) async fn check_zk_reassignment(&mut self, image: &ClusterImage) -> Option<Watch> {
        if !self.zk_reassign.check {
            return None;
        }
        let client = self.handle.client.clone();
        let (stat, watcher) = match client.check_and_watch_stat(REASSIGN_PARTITIONS).await {
            Ok(found) => found,
            Err(err) => {
                tracing::debug!(error = %err, "cannot watch {REASSIGN_PARTITIONS}; will retry");
                return None;
            }
        };
        self.zk_reassign.check = false;
        let watch: Watch = Box::pin(async move {
            watcher.changed().await;
        });
        match stat {
            None => self.zk_reassign.forget(),
            Some(stat) if self.zk_reassign.read == Some(stat.czxid) => {}
            Some(_) => match client.get_data(REASSIGN_PARTITIONS).await {
                Ok((data, stat)) => self.zk_reassign.take(image, &data, stat.czxid),
                // Deleted meanwhile: the watch fires.
                Err(zk::Error::NoNode) => self.zk_reassign.forget(),
                Err(err) => {
                    tracing::debug!(error = %err, "cannot read {REASSIGN_PARTITIONS}; will retry");
                    self.zk_reassign.check = true;
                }
            },
        }
        Some(watch)
    }

    /// One controller pass over the znode's reassignment: starts the entries still to
    /// start, then takes the finished, refused and superseded ones out of the znode.
    pub(super) async fn advance_zk_reassignment(
        &mut self,
        image: &ClusterImage,
    ) -> Result<(), Resigned> {
        for key in std::mem::take(&mut self.zk_reassign.pending) {
            let Some(target) = self.zk_reassign.targets.get(&key).cloned() else {
                continue;
            };
            let (topic, p) = (&key.0, key.1);
            match self
                .start_reassignment(image, topic, p, Some(&target))
                .await?
            {
                Started::Yes => tracing::info!(%topic, partition = p, replicas = ?target,
                    "reassignment from {REASSIGN_PARTITIONS} started"),
                Started::Raced => {
                    self.zk_reassign.pending.insert(key);
                }
                Started::Refused(err) => {
                    tracing::warn!(%topic, partition = p, replicas = ?target, error = ?err,
                        "reassignment from {REASSIGN_PARTITIONS} refused; dropped from it");
                    self.zk_reassign.dropped.insert(key);
                }
            }
        }
        self.tidy_zk_reassignment(image).await
    }

    /// Takes what is over out of the znode, deleting it when nothing is left.
    pub(super) async fn tidy_zk_reassignment(
        &mut self,
        image: &ClusterImage,
    ) -> Result<(), Resigned> {
        let Some(czxid) = self.zk_reassign.read else {
            return Ok(());
        };
        let z = &self.zk_reassign;
        let removals = znode_removals(image, &z.targets, &z.dropped);
        if removals.is_empty() && !z.targets.is_empty() {
            return Ok(());
        }
        self.remove_from_znode(czxid, &removals).await
    }

    /// Kafka's `maybeRemoveFromZkReassignment`: reads the znode again, drops `removals`
    /// and writes the rest back, or deletes the znode when nothing is left. Conditional on
    /// the znode's version: after a concurrent edit it is done again on the next pass.
    async fn remove_from_znode(
        &mut self,
        czxid: i64,
        removals: &BTreeSet<(String, i32)>,
    ) -> Result<(), Resigned> {
        let client = self.handle.client.clone();
        let (data, stat) = match client.get_data(REASSIGN_PARTITIONS).await {
            Ok(found) => found,
            Err(zk::Error::NoNode) => {
                self.zk_reassign.forget();
                return Ok(());
            }
            Err(err) => {
                tracing::debug!(error = %err, "cannot read {REASSIGN_PARTITIONS}; will retry");
                return Ok(());
            }
        };
        if stat.czxid != czxid {
            // A new znode replaced the one read: it is read afresh (its watch fires).
            self.zk_reassign.check = true;
            return Ok(());
        }
        let mut targets = ReassignPartitionsZnode::decode(&data)
            .map(|z| z.targets())
            .unwrap_or_default();
        targets.retain(|key, _| !removals.contains(key));
        let mut multi = client.new_multi_writer();
        let built = (|| -> Result<(), zk::Error> {
            multi.add_check_version(CONTROLLER_EPOCH, self.fence.zk_version)?;
            if targets.is_empty() {
                multi.add_delete(REASSIGN_PARTITIONS, Some(stat.version))
            } else {
                let znode = ReassignPartitionsZnode::new(&targets);
                multi.add_set_data(REASSIGN_PARTITIONS, &znode.encode(), Some(stat.version))
            }
        })();
        if built.is_err() {
            return Ok(());
        }
        match multi.commit().await {
            Ok(_) if targets.is_empty() => {
                tracing::info!(removed = ?removals,
                    "no more partitions to reassign: {REASSIGN_PARTITIONS} deleted");
                self.zk_reassign.forget();
            }
            Ok(_) => {
                tracing::info!(removed = ?removals, left = ?targets,
                    "partitions removed from {REASSIGN_PARTITIONS}");
                let z = &mut self.zk_reassign;
                z.pending.retain(|key| targets.contains_key(key));
                z.dropped.clear();
                z.targets = targets;
            }
            Err(zk::MultiWriteError::OperationFailed { index: 0, .. }) => {
                return Err(Resigned::Fenced)
            }
            Err(err) => {
                tracing::debug!(error = %err, "cannot rewrite {REASSIGN_PARTITIONS}; will retry");
            }
        }
        Ok(())
    }
}
