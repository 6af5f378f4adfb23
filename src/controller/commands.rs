//! Requests the admin APIs hand to the controller (ElectLeaders, AlterPartitionReassignments)
//! through an in-process channel, as Kafka's ZooKeeper-mode `KafkaController` takes them
//! as events; a broker that is not the controller answers NOT_CONTROLLER.

use std::collections::BTreeSet;

use tokio::sync::{mpsc, oneshot};
use zookeeper_client as zk;

use super::election::{elect, ElectError, ElectionType};
use super::legacy_reassign::Started;
use super::reassign::{self, ReassignError, Step};
use super::{ControllerRole, Fence, Resigned, WriteOutcome};
use crate::coordination::znodes::*;
use crate::coordination::{ClusterImage, SessionHandle};

pub type Partitions = Vec<(String, i32)>;

pub enum Command {
    Elect {
        kind: ElectionType,
        partitions: Partitions,
        reply: oneshot::Sender<Vec<Result<(), ElectError>>>,
    },
    Reassign {
        /// (topic, partition, target replicas or None to cancel)
        changes: Vec<(String, i32, Option<Vec<i32>>)>,
        reply: oneshot::Sender<Vec<Result<(), ReassignError>>>,
    },
}

/// Why the controller did not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotAnswered {
    NotController,
}

/// The admin APIs' way to the controller running on this broker.
#[derive(Clone)]
pub struct ControllerHandle {
    tx: mpsc::Sender<Command>,
}

impl ControllerHandle {
    pub fn channel() -> (ControllerHandle, mpsc::Receiver<Command>) {
        let (tx, rx) = mpsc::channel(64);
        (ControllerHandle { tx }, rx)
    }

    pub async fn elect(
        &self,
        kind: ElectionType,
        partitions: Partitions,
    ) -> Result<Vec<Result<(), ElectError>>, NotAnswered> {
        let (reply, answer) = oneshot::channel();
        let cmd = Command::Elect {
            kind,
            partitions,
            reply,
        };
        self.tx
            .send(cmd)
            .await
            .map_err(|_| NotAnswered::NotController)?;
        answer.await.map_err(|_| NotAnswered::NotController)
    }

    pub async fn reassign(
        &self,
        changes: Vec<(String, i32, Option<Vec<i32>>)>,
    ) -> Result<Vec<Result<(), ReassignError>>, NotAnswered> {
        let (reply, answer) = oneshot::channel();
        let cmd = Command::Reassign { changes, reply };
        self.tx
            .send(cmd)
            .await
            .map_err(|_| NotAnswered::NotController)?;
        answer.await.map_err(|_| NotAnswered::NotController)
    }
}

impl ControllerRole {
    /// Carries out one admin command as the active controller.
    pub(super) async fn command(
        &mut self,
        image: &ClusterImage,
        cmd: Command,
    ) -> Result<(), Resigned> {
        match cmd {
            Command::Elect {
                kind,
                partitions,
                reply,
            } => {
                let mut results = Vec::with_capacity(partitions.len());
                let mut transitions = Vec::new();
                for (topic, p) in &partitions {
                    match elect(image, &self.overlay, &self.exclusions, kind, topic, *p) {
                        Ok(t) => {
                            results.push(Ok(()));
                            transitions.push(t);
                        }
                        Err(e) => results.push(Err(e)),
                    }
                }
                self.apply(transitions).await?;
                let _ = reply.send(results);
            }
            Command::Reassign { changes, reply } => {
                let mut results = Vec::with_capacity(changes.len());
                let mut accepted = BTreeSet::new();
                for (topic, p, target) in &changes {
                    let started = self
                        .start_reassignment(image, topic, *p, target.as_deref())
                        .await?;
                    results.push(match started {
                        Started::Yes => {
                            accepted.insert((topic.clone(), *p));
                            Ok(())
                        }
                        Started::Raced => Err(ReassignError::InvalidReplicaAssignment(
                            "the partition changed meanwhile; retry".into(),
                        )),
                        Started::Refused(e) => Err(e),
                    });
                }
                // The latest reassignment wins: these partitions leave
                // `/admin/reassign_partitions` (Kafka's `processApiPartitionReassignment`).
                self.zk_reassign.supersede(&accepted);
                self.tidy_zk_reassignment(image).await?;
                let _ = reply.send(results);
            }
        }
        Ok(())
    }

    /// Starts (or, `target` None, cancels) one partition's reassignment, as requested by
    /// AlterPartitionReassignments or `/admin/reassign_partitions`.
    pub(super) async fn start_reassignment(
        &mut self,
        image: &ClusterImage,
        topic: &str,
        partition: i32,
        target: Option<&[i32]>,
    ) -> Result<Started, Resigned> {
        Ok(
            match reassign::request(image, &self.overlay, topic, partition, target) {
                Ok(None) => Started::Yes,
                Ok(Some(step)) => match self.write_step(&step).await? {
                    true => Started::Yes,
                    false => Started::Raced,
                },
                Err(e) => Started::Refused(e),
            },
        )
    }

    /// Completes the reassignments whose target replicas are all in sync.
    pub(super) async fn advance_reassignments(
        &mut self,
        image: &ClusterImage,
    ) -> Result<(), Resigned> {
        let usable = |b: i32| image.is_alive(b) && !self.exclusions.shutting_down.contains(&b);
        for step in reassign::completions(image, &self.overlay, usable) {
            self.write_step(&step).await?;
        }
        Ok(())
    }

    /// Writes a reassignment step: the partition's entry in the topic znode and its state,
    /// in one `multi` fenced by the controller epoch. Returns false on a lost race.
    async fn write_step(&mut self, step: &Step) -> Result<bool, Resigned> {
        let t = &step.state;
        match write_step(&self.handle, self.fence, step).await {
            WriteOutcome::Done(state) => {
                tracing::info!(topic = %t.topic, partition = t.partition, replicas = ?step.replicas,
                    adding = ?step.adding, removing = ?step.removing, leader = t.leader,
                    leader_epoch = t.leader_epoch, isr = ?t.isr, reason = t.reason, "partition reassignment");
                self.overlay.insert((t.topic.clone(), t.partition), state);
                Ok(true)
            }
            WriteOutcome::Conflict => Ok(false),
            WriteOutcome::Fenced => Err(Resigned::Fenced),
        }
    }
}

async fn write_step(handle: &SessionHandle, fence: Fence, step: &Step) -> WriteOutcome {
    let t = &step.state;
    let client = &handle.client;
    let path = topic_path(&t.topic);
    let Ok((data, stat)) = client.get_data(&path).await else {
        return WriteOutcome::Conflict;
    };
    let Ok(mut znode) = TopicZnode::decode(&path, &data) else {
        return WriteOutcome::Conflict;
    };
    let key = t.partition.to_string();
    znode.partitions.insert(key.clone(), step.replicas.clone());
    for (map, value) in [
        (&mut znode.adding_replicas, &step.adding),
        (&mut znode.removing_replicas, &step.removing),
    ] {
        if value.is_empty() {
            map.remove(&key);
        } else {
            map.insert(key.clone(), value.clone());
        }
    }
    let state = PartitionStateZnode {
        version: 1,
        leader: t.leader,
        leader_epoch: t.leader_epoch,
        isr: t.isr.clone(),
        controller_epoch: fence.epoch,
    };
    let Some(expected) = t.expected_version else {
        return WriteOutcome::Conflict;
    };
    let mut multi = client.new_multi_writer();
    let built = (|| -> Result<(), zk::Error> {
        multi.add_check_version(CONTROLLER_EPOCH, fence.zk_version)?;
        multi.add_set_data(&path, &znode.encode(), Some(stat.version))?;
        multi.add_set_data(
            &partition_state_path(&t.topic, t.partition),
            &state.encode(),
            Some(expected),
        )
    })();
    if built.is_err() {
        return WriteOutcome::Conflict;
    }
    match multi.commit().await {
        Ok(results) => {
            let zk_version = match results.get(2) {
                Some(zk::MultiWriteResult::SetData { stat }) => stat.version,
                _ => expected + 1,
            };
            WriteOutcome::Done(crate::coordination::PartitionState {
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
