//! What the controller decides, as pure functions of the cluster image: no ZooKeeper, no
//! clock. Each pass looks at every partition and returns the state changes it needs, in
//! Kafka's terms (ZooKeeper-mode `PartitionStateMachine` / `ReplicaStateMachine`):
//!
//! - a new partition gets its first live replica as leader and its live replicas as ISR;
//! - a partition whose leader is gone (dead, restarted with a new broker epoch, or shutting
//!   down) gets the first replica, in assignment order, that is in the ISR and usable;
//!   with none, the leader becomes -1 and the ISR keeps its last member
//!   (`unclean.leader.election.enable=false`), or any usable replica leads if unclean
//!   election is enabled;
//! - unusable followers leave the ISR (never emptying it);
//! - an offline partition whose ISR member comes back is led again;
//! - on request, leadership moves back to the preferred (first) replica.
//!
//! Every leader or ISR change bumps the leader epoch, as Kafka's `newLeaderAndIsr` does.

use std::collections::{BTreeMap, BTreeSet};

use crate::coordination::{ClusterImage, PartitionState};

/// A partition's next state, to be written conditionally on `expected_version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub topic: String,
    pub partition: i32,
    /// `None` creates the state znode (new partition).
    pub expected_version: Option<i32>,
    pub leader: i32,
    pub leader_epoch: i32,
    pub isr: Vec<i32>,
    pub reason: &'static str,
}

/// Brokers the controller must not count on, beyond the ones missing from the image.
#[derive(Debug, Default, Clone)]
pub struct Exclusions {
    /// Brokers in controlled shutdown: they lose leadership and leave ISRs first.
    pub shutting_down: BTreeSet<i32>,
    /// Brokers seen re-registering with a new epoch (restarted): their old leaderships
    /// and ISR memberships are void.
    pub bounced: BTreeSet<i32>,
}

impl Exclusions {
    fn usable(&self, image: &ClusterImage, broker: i32) -> bool {
        image.is_alive(broker)
            && !self.shutting_down.contains(&broker)
            && !self.bounced.contains(&broker)
    }
}

/// The state the controller should assume for a partition: its own latest write if that
/// is newer than what the image shows.
pub type Overlay = BTreeMap<(String, i32), PartitionState>;

pub fn current_state<'a>(
    image_state: Option<&'a PartitionState>,
    overlay: Option<&'a PartitionState>,
) -> Option<&'a PartitionState> {
    match (image_state, overlay) {
        (Some(i), Some(o)) if (o.leader_epoch, o.zk_version) > (i.leader_epoch, i.zk_version) => {
            Some(o)
        }
        (None, Some(o)) => Some(o),
        (i, _) => i,
    }
}

/// One reconciliation pass over every partition.
pub fn reconcile(
    image: &ClusterImage,
    overlay: &Overlay,
    exclusions: &Exclusions,
    unclean_for: impl Fn(&str) -> bool,
) -> Vec<Transition> {
    let mut out = Vec::new();
    for topic in image.topics.values() {
        if topic.deleting {
            continue;
        }
        for (&p, info) in &topic.partitions {
            let key = (topic.name.clone(), p);
            let state = current_state(info.state.as_ref(), overlay.get(&key));
            // A replica in a failed log directory counts as offline (Kafka's
            // `ReplicaStateMachine` OfflineReplica): no leadership, out of the ISR.
            let usable = |b: i32| {
                exclusions.usable(image, b) && !image.is_replica_offline(b, &topic.name, p)
            };
            let t = match state {
                None => init(&info.replicas, usable),
                Some(s) => next_state(&info.replicas, s, usable, unclean_for(&topic.name)),
            };
            if let Some((leader, isr, reason)) = t {
                out.push(Transition {
                    topic: topic.name.clone(),
                    partition: p,
                    expected_version: state.map(|s| s.zk_version),
                    leader,
                    leader_epoch: state.map_or(0, |s| s.leader_epoch + 1),
                    isr,
                    reason,
                });
            }
        }
    }
    out
}

/// A new (leader, ISR) and why, or nothing to change.
pub type Decision = Option<(i32, Vec<i32>, &'static str)>;

fn init(replicas: &[i32], usable: impl Fn(i32) -> bool) -> Decision {
    let live: Vec<i32> = replicas.iter().copied().filter(|&r| usable(r)).collect();
    let leader = *live.first()?;
    Some((leader, live, "new partition"))
}

/// The next state of one partition whose current state is `s` (see the module doc); pure,
/// so the replication simulation (`replica::sim`) elects leaders with it too.
pub fn next_state(
    replicas: &[i32],
    s: &PartitionState,
    usable: impl Fn(i32) -> bool,
    unclean: bool,
) -> Decision {
    let leader_ok = s.leader >= 0 && usable(s.leader);
    if leader_ok {
        let isr: Vec<i32> = s
            .isr
            .iter()
            .copied()
            .filter(|&r| r == s.leader || usable(r))
            .collect();
        if isr != s.isr {
            return Some((s.leader, isr, "unusable replicas removed from ISR"));
        }
        return None;
    }
    // Leader gone: elect from the ISR in assignment order (Kafka's offline election).
    if let Some(&leader) = replicas.iter().find(|&&r| s.isr.contains(&r) && usable(r)) {
        let isr: Vec<i32> = s.isr.iter().copied().filter(|&r| usable(r)).collect();
        let reason = if s.leader < 0 {
            "offline partition recovered"
        } else {
            "leader unavailable"
        };
        return Some((leader, isr, reason));
    }
    if unclean {
        if let Some(&leader) = replicas.iter().find(|&&r| usable(r)) {
            return Some((leader, vec![leader], "unclean leader election"));
        }
    }
    if s.leader < 0 {
        return None; // already offline; nothing to write
    }
    // No eligible leader: the partition goes offline, the ISR keeps its last member so a
    // clean election is possible when it returns.
    let remaining: Vec<i32> = s.isr.iter().copied().filter(|&r| r != s.leader).collect();
    let isr = if remaining.is_empty() {
        s.isr.clone()
    } else {
        remaining
    };
    Some((-1, isr, "no eligible leader: partition offline"))
}

/// Preferred replica election (`auto.leader.rebalance.enable`): for each broker whose
/// share of "preferred but not leading" partitions exceeds `imbalance_pct`, move those
/// partitions' leadership back to it when it is usable and in the ISR.
pub fn preferred_elections(
    image: &ClusterImage,
    overlay: &Overlay,
    exclusions: &Exclusions,
    imbalance_pct: u32,
) -> Vec<Transition> {
    let mut preferred_total: BTreeMap<i32, usize> = BTreeMap::new();
    let mut candidates: BTreeMap<i32, Vec<Transition>> = BTreeMap::new();
    for topic in image.topics.values() {
        if topic.deleting {
            continue;
        }
        for (&p, info) in &topic.partitions {
            let Some(&preferred) = info.replicas.first() else {
                continue;
            };
            *preferred_total.entry(preferred).or_default() += 1;
            let key = (topic.name.clone(), p);
            let Some(s) = current_state(info.state.as_ref(), overlay.get(&key)) else {
                continue;
            };
            if s.leader != preferred
                && s.isr.contains(&preferred)
                && exclusions.usable(image, preferred)
                && !image.is_replica_offline(preferred, &topic.name, p)
            {
                candidates.entry(preferred).or_default().push(Transition {
                    topic: topic.name.clone(),
                    partition: p,
                    expected_version: Some(s.zk_version),
                    leader: preferred,
                    leader_epoch: s.leader_epoch + 1,
                    isr: s.isr.clone(),
                    reason: "preferred replica election",
                });
            }
        }
    }
    let mut out = Vec::new();
    for (broker, moves) in candidates {
        let total = preferred_total.get(&broker).copied().unwrap_or(1).max(1);
        if moves.len() * 100 > total * imbalance_pct as usize {
            out.extend(moves);
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::coordination::{BrokerInfo, PartitionInfo, TopicInfo};

    /// (replicas, optional (leader, isr)) per partition.
    type Spec = (Vec<i32>, Option<(i32, Vec<i32>)>);

    pub(crate) fn image(live: &[i32], partitions: &[Spec]) -> ClusterImage {
        let mut img = ClusterImage::default();
        for &id in live {
            img.brokers.insert(
                id,
                BrokerInfo {
                    id,
                    host: "h".into(),
                    port: 1,
                    rack: None,
                    epoch: 1,
                    endpoints: Default::default(),
                },
            );
        }
        let mut t = TopicInfo {
            name: "t".into(),
            id: uuid::Uuid::nil(),
            partitions: BTreeMap::new(),
            config: BTreeMap::new(),
            deleting: false,
            zk_version: 0,
        };
        for (i, (replicas, state)) in partitions.iter().enumerate() {
            t.partitions.insert(
                i as i32,
                PartitionInfo {
                    replicas: replicas.clone(),
                    adding: Vec::new(),
                    removing: Vec::new(),
                    state: state.clone().map(|(leader, isr)| PartitionState {
                        leader,
                        leader_epoch: 3,
                        isr,
                        controller_epoch: 1,
                        zk_version: 7,
                    }),
                },
            );
        }
        img.topics.insert("t".into(), t);
        img
    }

    fn run(img: &ClusterImage) -> Vec<Transition> {
        reconcile(img, &Overlay::new(), &Exclusions::default(), |_| false)
    }

    #[test]
    fn replicas_in_a_failed_log_dir_lose_leadership_and_leave_the_isr() {
        use crate::coordination::log_dir_events::{LogDirEventZnode, OfflinePartition};
        let mut img = image(
            &[1, 2, 3],
            &[
                (vec![1, 2, 3], Some((1, vec![1, 2, 3]))),
                (vec![2, 1, 3], Some((2, vec![2, 1, 3]))),
                (vec![1, 2, 3], Some((1, vec![1, 2, 3]))),
            ],
        );
        let offline = |p: i32| OfflinePartition {
            topic: "t".into(),
            partition: p,
        };
        img.log_dir_events.insert(
            "log_dir_event_0000000000".into(),
            LogDirEventZnode {
                version: 1,
                broker: 1,
                event: 1,
                broker_epoch: 1,
                offline_partitions: vec![offline(0), offline(1)],
            },
        );
        let t = run(&img);
        let by_partition: BTreeMap<i32, (i32, Vec<i32>)> = t
            .iter()
            .map(|t| (t.partition, (t.leader, t.isr.clone())))
            .collect();
        // Led from the failed directory: another ISR member leads.
        assert_eq!(by_partition[&0], (2, vec![2, 3]));
        // Followed from it: out of the ISR.
        assert_eq!(by_partition[&1], (2, vec![2, 3]));
        // Partition 2 lives in the broker's healthy directory: untouched.
        assert!(!by_partition.contains_key(&2));
        assert!(img.stale_log_dir_events().is_empty());
        // After a restart (new broker epoch) the notification is stale and ignored.
        img.brokers.get_mut(&1).unwrap().epoch = 2;
        assert!(run(&img).is_empty());
        assert_eq!(img.stale_log_dir_events(), vec!["log_dir_event_0000000000"]);
    }

    #[test]
    fn new_partitions_get_first_live_replica() {
        let t = run(&image(&[2, 3], &[(vec![1, 2, 3], None)]));
        assert_eq!(t.len(), 1);
        assert_eq!(
            (t[0].leader, t[0].isr.clone(), t[0].leader_epoch),
            (2, vec![2, 3], 0)
        );
        assert_eq!(t[0].expected_version, None);
        assert!(run(&image(&[], &[(vec![1], None)])).is_empty());
    }

    #[test]
    fn dead_leader_is_replaced_from_isr_in_assignment_order() {
        let t = run(&image(
            &[2, 3],
            &[(vec![1, 3, 2], Some((1, vec![1, 2, 3])))],
        ));
        assert_eq!((t[0].leader, t[0].isr.clone()), (3, vec![2, 3]));
        assert_eq!(t[0].leader_epoch, 4);
        assert_eq!(t[0].expected_version, Some(7));
    }

    #[test]
    fn no_eligible_leader_goes_offline_keeping_last_isr_member() {
        // Replica 2 is alive but out of sync: clean election must not pick it.
        let t = run(&image(&[2], &[(vec![1, 2], Some((1, vec![1])))]));
        assert_eq!((t[0].leader, t[0].isr.clone()), (-1, vec![1]));
        // Once offline, nothing more is written until an ISR member returns...
        let offline = image(&[2], &[(vec![1, 2], Some((-1, vec![1])))]);
        assert!(run(&offline).is_empty());
        // ...and then it leads again.
        let back = image(&[1, 2], &[(vec![1, 2], Some((-1, vec![1])))]);
        assert_eq!(run(&back)[0].leader, 1);
        // Unclean election takes any live replica.
        let t = reconcile(&offline, &Overlay::new(), &Exclusions::default(), |_| true);
        assert_eq!((t[0].leader, t[0].isr.clone()), (2, vec![2]));
    }

    #[test]
    fn dead_followers_leave_the_isr() {
        let t = run(&image(
            &[1, 2],
            &[(vec![1, 2, 3], Some((1, vec![1, 2, 3])))],
        ));
        assert_eq!((t[0].leader, t[0].isr.clone()), (1, vec![1, 2]));
        assert!(run(&image(
            &[1, 2, 3],
            &[(vec![1, 2, 3], Some((1, vec![1, 2, 3])))]
        ))
        .is_empty());
    }

    #[test]
    fn controlled_shutdown_moves_leadership_away() {
        let img = image(&[1, 2, 3], &[(vec![1, 2, 3], Some((1, vec![1, 2, 3])))]);
        let ex = Exclusions {
            shutting_down: BTreeSet::from([1]),
            ..Default::default()
        };
        let t = reconcile(&img, &Overlay::new(), &ex, |_| false);
        assert_eq!((t[0].leader, t[0].isr.clone()), (2, vec![2, 3]));
    }

    #[test]
    fn overlay_newer_than_image_wins() {
        let img = image(&[2, 3], &[(vec![1, 2, 3], Some((1, vec![1, 2, 3])))]);
        let mut overlay = Overlay::new();
        overlay.insert(
            ("t".into(), 0),
            PartitionState {
                leader: 2,
                leader_epoch: 4,
                isr: vec![2, 3],
                controller_epoch: 1,
                zk_version: 8,
            },
        );
        assert!(reconcile(&img, &overlay, &Exclusions::default(), |_| false).is_empty());
    }

    #[test]
    fn preferred_leaders_come_back_when_imbalanced() {
        let img = image(
            &[1, 2],
            &[
                (vec![1, 2], Some((2, vec![1, 2]))),
                (vec![2, 1], Some((2, vec![2, 1]))),
            ],
        );
        let t = preferred_elections(&img, &Overlay::new(), &Exclusions::default(), 10);
        assert_eq!(t.len(), 1);
        assert_eq!((t[0].partition, t[0].leader), (0, 1));
        // Preferred replica out of the ISR: no move.
        let img = image(&[1, 2], &[(vec![1, 2], Some((2, vec![2])))]);
        assert!(preferred_elections(&img, &Overlay::new(), &Exclusions::default(), 10).is_empty());
    }
}
