//! Elections an administrator asks for (ElectLeaders, KIP-460), as pure decisions over
//! the image: preferred (the first assigned replica leads if it is alive and in the ISR)
//! and unclean (only for a partition without a live leader: an ISR member if any, else
//! any live replica, Kafka's `OfflinePartitionLeaderElectionStrategy` with unclean
//! allowed).

use super::decisions::{current_state, Exclusions, Overlay, Transition};
use crate::coordination::ClusterImage;

/// ElectLeaders' `election_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElectionType {
    Preferred,
    Unclean,
}

impl ElectionType {
    pub fn from_code(code: i8) -> Option<ElectionType> {
        match code {
            0 => Some(ElectionType::Preferred),
            1 => Some(ElectionType::Unclean),
            _ => None,
        }
    }
}

/// Why a partition gets no election (Kafka's error for it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElectError {
    UnknownTopicOrPartition,
    /// The partition already has the leader the election would pick.
    ElectionNotNeeded,
    PreferredLeaderNotAvailable(String),
    EligibleLeadersNotAvailable(String),
}

pub fn elect(
    image: &ClusterImage,
    overlay: &Overlay,
    exclusions: &Exclusions,
    kind: ElectionType,
    topic: &str,
    partition: i32,
) -> Result<Transition, ElectError> {
    let info = image
        .topic(topic)
        .filter(|t| !t.deleting)
        .and_then(|t| t.partitions.get(&partition))
        .ok_or(ElectError::UnknownTopicOrPartition)?;
    let key = (topic.to_string(), partition);
    let state = current_state(info.state.as_ref(), overlay.get(&key))
        .ok_or(ElectError::UnknownTopicOrPartition)?;
    let usable = |b: i32| {
        image.is_alive(b)
            && !exclusions.shutting_down.contains(&b)
            && !image.is_replica_offline(b, topic, partition)
    };
    let (leader, isr, reason) = match kind {
        ElectionType::Preferred => {
            let preferred = *info
                .replicas
                .first()
                .ok_or(ElectError::UnknownTopicOrPartition)?;
            if state.leader == preferred {
                return Err(ElectError::ElectionNotNeeded);
            }
            if !usable(preferred) || !state.isr.contains(&preferred) {
                return Err(ElectError::PreferredLeaderNotAvailable(format!(
                    "Failed to elect leader for partition {topic}-{partition} under strategy PreferredReplicaPartitionLeaderElectionStrategy"
                )));
            }
            (
                preferred,
                state.isr.clone(),
                "preferred replica election (admin)",
            )
        }
        ElectionType::Unclean => {
            if state.leader >= 0 && usable(state.leader) {
                return Err(ElectError::ElectionNotNeeded);
            }
            let from_isr = info
                .replicas
                .iter()
                .copied()
                .find(|&r| state.isr.contains(&r) && usable(r));
            match from_isr.or_else(|| info.replicas.iter().copied().find(|&r| usable(r))) {
                Some(leader) if state.isr.contains(&leader) => {
                    let isr = state.isr.iter().copied().filter(|&r| usable(r)).collect();
                    (leader, isr, "leader election (admin)")
                }
                Some(leader) => (leader, vec![leader], "unclean leader election (admin)"),
                None => {
                    return Err(ElectError::EligibleLeadersNotAvailable(format!(
                        "Failed to elect leader for partition {topic}-{partition} under strategy OfflinePartitionLeaderElectionStrategy(true)"
                    )))
                }
            }
        }
    };
    Ok(Transition {
        topic: topic.to_string(),
        partition,
        expected_version: Some(state.zk_version),
        leader,
        leader_epoch: state.leader_epoch + 1,
        isr,
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::decisions::tests::image;

    #[test]
    fn preferred_election_moves_leadership_back_when_the_preferred_replica_is_in_sync() {
        let img = image(&[1, 2, 3], &[(vec![1, 2, 3], Some((2, vec![1, 2, 3])))]);
        let t = elect(
            &img,
            &Overlay::new(),
            &Exclusions::default(),
            ElectionType::Preferred,
            "t",
            0,
        )
        .unwrap();
        assert_eq!((t.leader, t.leader_epoch), (1, 4));
        assert_eq!(t.isr, vec![1, 2, 3]);
    }

    #[test]
    fn preferred_election_errors_are_kafkas() {
        let o = Overlay::new();
        let e = Exclusions::default();
        let led = image(&[1, 2], &[(vec![1, 2], Some((1, vec![1, 2])))]);
        assert_eq!(
            elect(&led, &o, &e, ElectionType::Preferred, "t", 0),
            Err(ElectError::ElectionNotNeeded)
        );
        let out_of_isr = image(&[1, 2], &[(vec![1, 2], Some((2, vec![2])))]);
        assert!(matches!(
            elect(&out_of_isr, &o, &e, ElectionType::Preferred, "t", 0),
            Err(ElectError::PreferredLeaderNotAvailable(_))
        ));
        let dead = image(&[2], &[(vec![1, 2], Some((2, vec![1, 2])))]);
        assert!(matches!(
            elect(&dead, &o, &e, ElectionType::Preferred, "t", 0),
            Err(ElectError::PreferredLeaderNotAvailable(_))
        ));
        assert_eq!(
            elect(&led, &o, &e, ElectionType::Preferred, "t", 9),
            Err(ElectError::UnknownTopicOrPartition)
        );
        assert_eq!(
            elect(&led, &o, &e, ElectionType::Preferred, "x", 0),
            Err(ElectError::UnknownTopicOrPartition)
        );
    }

    #[test]
    fn unclean_election_only_for_leaderless_partitions_and_prefers_the_isr() {
        let o = Overlay::new();
        let e = Exclusions::default();
        let led = image(&[1, 2], &[(vec![1, 2], Some((1, vec![1, 2])))]);
        assert_eq!(
            elect(&led, &o, &e, ElectionType::Unclean, "t", 0),
            Err(ElectError::ElectionNotNeeded)
        );
        // Offline: the last ISR member (1) is dead, 2 is alive but out of sync.
        let offline = image(&[2, 3], &[(vec![1, 2, 3], Some((-1, vec![1])))]);
        let t = elect(&offline, &o, &e, ElectionType::Unclean, "t", 0).unwrap();
        assert_eq!((t.leader, t.isr.clone()), (2, vec![2]));
        let none = image(&[4], &[(vec![1, 2], Some((-1, vec![1])))]);
        assert!(matches!(
            elect(&none, &o, &e, ElectionType::Unclean, "t", 0),
            Err(ElectError::EligibleLeadersNotAvailable(_))
        ));
    }
}
