//! Partition reassignment (KIP-455, ZooKeeper mode) as pure decisions. A reassignment of
//! a partition from its original replicas (ORS) to target replicas (TRS) goes:
//!
//! 1. begin: the assignment becomes RS = TRS ++ (ORS - TRS) with `adding_replicas` =
//!    TRS - ORS and `removing_replicas` = ORS - TRS in the topic znode, and the leader
//!    epoch is bumped so the leader takes the new replicas as followers;
//! 2. the new replicas fetch from the leader until the leader adds them to the ISR;
//! 3. complete, once TRS ⊆ ISR: the leader moves into TRS if it is not there, the removed
//!    replicas leave the ISR, and the assignment becomes TRS (brokers then delete the
//!    removed replicas' logs).
//!
//! Cancelling (null target) reverts to ORS the same way. Every step is one fenced `multi`
//! writing the topic znode and the partition state together, so the ISR never names a
//! broker outside the assignment.
//!
//! Reassignments requested through the `/admin/reassign_partitions` znode (Kafka's
//! ZooKeeper-mode legacy path) start as API ones do; [`under_way`] and
//! [`znode_removals`] decide what the controller does with the znode's entries.

use std::collections::BTreeSet;

use super::decisions::{current_state, Overlay, Transition};
use crate::coordination::znodes::ReassignTargets;
use crate::coordination::ClusterImage;

/// Why a reassignment request is refused (Kafka's error and message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReassignError {
    UnknownTopicOrPartition,
    InvalidReplicaAssignment(String),
    NoReassignmentInProgress,
}

/// A partition's next assignment and state, written together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub replicas: Vec<i32>,
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
    pub state: Transition,
}

fn minus(a: &[i32], b: &[i32]) -> Vec<i32> {
    a.iter().copied().filter(|x| !b.contains(x)).collect()
}

/// What a reassignment request (`target` = None: cancel) does to a partition now.
/// `Ok(None)`: nothing to do (already assigned so).
pub fn request(
    image: &ClusterImage,
    overlay: &Overlay,
    topic: &str,
    partition: i32,
    target: Option<&[i32]>,
) -> Result<Option<Step>, ReassignError> {
    let info = image
        .topic(topic)
        .filter(|t| !t.deleting)
        .and_then(|t| t.partitions.get(&partition))
        .ok_or(ReassignError::UnknownTopicOrPartition)?;
    let state = current_state(
        info.state.as_ref(),
        overlay.get(&(topic.to_string(), partition)),
    )
    .ok_or(ReassignError::UnknownTopicOrPartition)?;
    let in_progress = !info.adding.is_empty() || !info.removing.is_empty();
    let origin = minus(&info.replicas, &info.adding);
    let target: Vec<i32> = match target {
        None if !in_progress => return Err(ReassignError::NoReassignmentInProgress),
        None => origin.clone(),
        Some(t) => {
            validate(image, &origin, t)?;
            t.to_vec()
        }
    };
    if !in_progress && target == info.replicas {
        return Ok(None);
    }
    let mut replicas = target.clone();
    replicas.extend(origin.iter().copied().filter(|r| !target.contains(r)));
    let adding = minus(&target, &origin);
    let removing = minus(&origin, &target);
    let isr: Vec<i32> = state
        .isr
        .iter()
        .copied()
        .filter(|r| replicas.contains(r))
        .collect();
    let step = Step {
        replicas,
        adding,
        removing,
        state: Transition {
            topic: topic.to_string(),
            partition,
            expected_version: Some(state.zk_version),
            leader: state.leader,
            leader_epoch: state.leader_epoch + 1,
            isr,
            reason: "reassignment started",
        },
    };
    // A target equal to the origin (a cancel, or a new target undoing the old one)
    // finishes at once if the origin is all in sync.
    Ok(Some(complete(&step, &step.state, |_| true).unwrap_or(step)))
}

/// Kafka's `validateReassignment`.
fn validate(image: &ClusterImage, origin: &[i32], target: &[i32]) -> Result<(), ReassignError> {
    let bad = |m: String| Err(ReassignError::InvalidReplicaAssignment(m));
    if target.is_empty() {
        return bad("Empty replica list specified in partition reassignment.".into());
    }
    let mut seen = target.to_vec();
    seen.sort_unstable();
    seen.dedup();
    if seen.len() != target.len() {
        return bad(format!(
            "Duplicate replica ids in partition reassignment replica list: {target:?}"
        ));
    }
    if target.iter().any(|r| *r < 0) {
        return bad(format!("Invalid broker id in replica list: {target:?}"));
    }
    let adding = minus(target, origin);
    if !adding.iter().all(|b| image.is_alive(*b)) {
        let live: Vec<i32> = image.brokers.keys().copied().collect();
        return bad(format!("Replica assignment has brokers that are not alive. Replica list: {adding:?}, live broker list: {live:?}"));
    }
    Ok(())
}

/// The completing step of a partition being reassigned, if its target replicas are all
/// in the ISR and one of them can lead (`usable`: alive and not shutting down).
pub fn complete(current: &Step, state: &Transition, usable: impl Fn(i32) -> bool) -> Option<Step> {
    let target = minus(&current.replicas, &current.removing);
    if current.adding.is_empty() && current.removing.is_empty() {
        return None;
    }
    if !target.iter().all(|r| state.isr.contains(r)) {
        return None;
    }
    let leader = if target.contains(&state.leader) && usable(state.leader) {
        state.leader
    } else {
        *target
            .iter()
            .find(|r| usable(**r) && state.isr.contains(r))?
    };
    let isr = minus(&state.isr, &current.removing);
    assert!(
        isr.iter().all(|r| target.contains(r)),
        "ISR within the target replicas"
    );
    Some(Step {
        replicas: target,
        adding: Vec::new(),
        removing: Vec::new(),
        state: Transition {
            leader,
            isr,
            reason: "reassignment completed",
            ..state.clone()
        },
    })
}

/// Completion steps for every partition of the image being reassigned whose target is in
/// sync (one controller pass).
pub fn completions(
    image: &ClusterImage,
    overlay: &Overlay,
    usable: impl Fn(i32) -> bool,
) -> Vec<Step> {
    let mut out = Vec::new();
    for topic in image.topics.values().filter(|t| !t.deleting) {
        for (&p, info) in &topic.partitions {
            if info.adding.is_empty() && info.removing.is_empty() {
                continue;
            }
            let Some(s) = current_state(info.state.as_ref(), overlay.get(&(topic.name.clone(), p)))
            else {
                continue;
            };
            let current = Step {
                replicas: info.replicas.clone(),
                adding: info.adding.clone(),
                removing: info.removing.clone(),
                state: Transition {
                    topic: topic.name.clone(),
                    partition: p,
                    expected_version: Some(s.zk_version),
                    leader: s.leader,
                    leader_epoch: s.leader_epoch + 1,
                    isr: s.isr.clone(),
                    reason: "",
                },
            };
            if let Some(step) = complete(&current, &current.state, &usable) {
                out.push(step);
            }
        }
    }
    out
}

/// Whether `topic`-`partition` is already being reassigned to exactly `target`: a
/// controller taking over reads `/admin/reassign_partitions` again and resumes such an
/// entry (its completion is watched like any other) rather than starting it anew.
pub fn under_way(image: &ClusterImage, topic: &str, partition: i32, target: &[i32]) -> bool {
    image.partition(topic, partition).is_some_and(|info| {
        (!info.adding.is_empty() || !info.removing.is_empty())
            && minus(&info.replicas, &info.removing) == target
    })
}

/// The partitions that leave `/admin/reassign_partitions` now, among its `targets` (the
/// callers of Kafka's `KafkaController.maybeRemoveFromZkReassignment`):
///
/// - `dropped`: refused when started (`processZkPartitionReassignment` drops the failed
///   ones) or superseded by an AlterPartitionReassignments request for the same partition
///   (`processApiPartitionReassignment`: the latest reassignment wins);
/// - settled: the assignment is the entry's target, in its order, with nothing being
///   added or removed (`removePartitionFromReassigningPartitions` removes the entry whose
///   replicas equal the completed assignment); a target equal to the current assignment
///   settles at once, as Kafka completes it at once;
/// - gone: the topic no longer exists or is being deleted. Kafka keeps a topic under
///   reassignment from being deleted; gregor deletes it, and its entry would never settle.
///
/// The znode is deleted when no entry is left.
pub fn znode_removals(
    image: &ClusterImage,
    targets: &ReassignTargets,
    dropped: &BTreeSet<(String, i32)>,
) -> BTreeSet<(String, i32)> {
    targets
        .iter()
        .filter(|((topic, p), target)| {
            let info = image
                .topic(topic)
                .filter(|t| !t.deleting)
                .and_then(|t| t.partitions.get(p));
            let settled = |info: &crate::coordination::PartitionInfo| {
                info.adding.is_empty() && info.removing.is_empty() && info.replicas == **target
            };
            dropped.contains(&(topic.clone(), *p)) || info.is_none_or(settled)
        })
        .map(|(k, _)| k.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::decisions::tests::image;

    fn reassigning(img: &mut ClusterImage, adding: &[i32], removing: &[i32]) {
        let info = img
            .topics
            .get_mut("t")
            .unwrap()
            .partitions
            .get_mut(&0)
            .unwrap();
        info.adding = adding.to_vec();
        info.removing = removing.to_vec();
    }

    #[test]
    fn begin_adds_the_target_and_records_adding_and_removing() {
        let img = image(&[1, 2, 3, 4], &[(vec![1, 2, 3], Some((1, vec![1, 2, 3])))]);
        let s = request(&img, &Overlay::new(), "t", 0, Some(&[2, 3, 4]))
            .unwrap()
            .unwrap();
        assert_eq!(s.replicas, vec![2, 3, 4, 1]);
        assert_eq!((s.adding.clone(), s.removing.clone()), (vec![4], vec![1]));
        assert_eq!((s.state.leader, s.state.leader_epoch), (1, 4));
        assert_eq!(s.state.isr, vec![1, 2, 3]);
    }

    #[test]
    fn completion_waits_for_the_target_in_the_isr_then_moves_leadership_out_of_removed() {
        let mut img = image(
            &[1, 2, 3, 4],
            &[(vec![2, 3, 4, 1], Some((1, vec![1, 2, 3])))],
        );
        reassigning(&mut img, &[4], &[1]);
        assert!(completions(&img, &Overlay::new(), |_| true).is_empty());
        let mut img = image(
            &[1, 2, 3, 4],
            &[(vec![2, 3, 4, 1], Some((1, vec![1, 2, 3, 4])))],
        );
        reassigning(&mut img, &[4], &[1]);
        let done = completions(&img, &Overlay::new(), |_| true);
        assert_eq!(done.len(), 1);
        let s = &done[0];
        assert_eq!(s.replicas, vec![2, 3, 4]);
        assert!(s.adding.is_empty() && s.removing.is_empty());
        assert_eq!((s.state.leader, s.state.isr.clone()), (2, vec![2, 3, 4]));
        assert_eq!(s.state.leader_epoch, 4);
    }

    #[test]
    fn cancel_reverts_to_the_origin_and_refuses_without_a_reassignment() {
        let img = image(&[1, 2, 3, 4], &[(vec![1, 2, 3], Some((1, vec![1, 2, 3])))]);
        assert_eq!(
            request(&img, &Overlay::new(), "t", 0, None),
            Err(ReassignError::NoReassignmentInProgress)
        );
        let mut img = image(
            &[1, 2, 3, 4],
            &[(vec![2, 3, 4, 1], Some((1, vec![1, 2, 3])))],
        );
        reassigning(&mut img, &[4], &[1]);
        let s = request(&img, &Overlay::new(), "t", 0, None)
            .unwrap()
            .unwrap();
        // The origin is the replica set minus the adding ones, in its current order (as
        // Kafka's `ReplicaAssignment.originReplicas`).
        assert_eq!(s.replicas, vec![2, 3, 1]);
        assert!(s.adding.is_empty() && s.removing.is_empty());
        assert_eq!((s.state.leader, s.state.isr.clone()), (1, vec![1, 2, 3]));
    }

    #[test]
    fn invalid_targets_are_refused_as_kafka_does() {
        let img = image(&[1, 2, 3], &[(vec![1, 2], Some((1, vec![1, 2])))]);
        let o = Overlay::new();
        for bad in [&[][..], &[1, 1], &[1, -2], &[1, 9]] {
            assert!(
                matches!(
                    request(&img, &o, "t", 0, Some(bad)),
                    Err(ReassignError::InvalidReplicaAssignment(_))
                ),
                "{bad:?}"
            );
        }
        assert_eq!(
            request(&img, &o, "t", 5, Some(&[1])),
            Err(ReassignError::UnknownTopicOrPartition)
        );
        assert_eq!(request(&img, &o, "t", 0, Some(&[1, 2])), Ok(None));
    }

    fn key(topic: &str, p: i32) -> (String, i32) {
        (topic.to_string(), p)
    }

    #[test]
    fn a_znode_entry_is_under_way_only_while_reassigning_to_the_same_target() {
        let mut img = image(
            &[1, 2, 3, 4],
            &[(vec![2, 3, 4, 1], Some((1, vec![1, 2, 3])))],
        );
        assert!(!under_way(&img, "t", 0, &[2, 3, 4]), "not being reassigned");
        reassigning(&mut img, &[4], &[1]);
        assert!(under_way(&img, "t", 0, &[2, 3, 4]));
        assert!(!under_way(&img, "t", 0, &[4, 3, 2]), "order matters");
        assert!(!under_way(&img, "t", 0, &[2, 3, 5]));
        assert!(!under_way(&img, "t", 9, &[2, 3, 4]), "no such partition");
        assert!(!under_way(&img, "u", 0, &[2, 3, 4]), "no such topic");
    }

    #[test]
    fn znode_entries_leave_when_settled_dropped_or_gone() {
        // t-0 done, t-1 under way, t-2 not started yet, t-3 refused, t-4 at its target
        // in another order, u-0 of a topic that is no more, t-9 of a partition that never was.
        let mut img = image(
            &[1, 2, 3, 4],
            &[
                (vec![2, 3, 4], Some((2, vec![2, 3, 4]))),
                (vec![2, 3, 4, 1], Some((1, vec![1, 2, 3]))),
                (vec![1, 2, 3], Some((1, vec![1, 2, 3]))),
                (vec![1, 2, 3], Some((1, vec![1, 2, 3]))),
                (vec![2, 3, 4], Some((2, vec![2, 3, 4]))),
            ],
        );
        {
            let info = img.topics.get_mut("t").unwrap().partitions.get_mut(&1);
            let info = info.unwrap();
            info.adding = vec![4];
            info.removing = vec![1];
        }
        let targets: ReassignTargets = [
            (key("t", 0), vec![2, 3, 4]),
            (key("t", 1), vec![2, 3, 4]),
            (key("t", 2), vec![2, 3, 4]),
            (key("t", 3), vec![1, 1, 2]),
            (key("t", 4), vec![4, 3, 2]),
            (key("u", 0), vec![1]),
            (key("t", 9), vec![1]),
        ]
        .into_iter()
        .collect();
        let dropped = BTreeSet::from([key("t", 3), key("v", 0)]);
        assert_eq!(
            znode_removals(&img, &targets, &dropped),
            BTreeSet::from([key("t", 0), key("t", 3), key("u", 0), key("t", 9)])
        );
        // The partition under way settles once its reassignment completes; a topic being
        // deleted takes its entries with it.
        {
            let info = img.topics.get_mut("t").unwrap().partitions.get_mut(&1);
            let info = info.unwrap();
            (info.replicas, info.adding, info.removing) = (vec![2, 3, 4], vec![], vec![]);
        }
        assert!(znode_removals(&img, &targets, &BTreeSet::new()).contains(&key("t", 1)));
        img.topics.get_mut("t").unwrap().deleting = true;
        assert_eq!(
            znode_removals(&img, &targets, &BTreeSet::new()).len(),
            targets.len()
        );
        assert!(znode_removals(&img, &ReassignTargets::new(), &dropped).is_empty());
    }
}
