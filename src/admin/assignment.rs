//! Replica assignment for new topics and partitions, following Kafka's
//! `AdminUtils.assignReplicasToBrokers`: leaders spread round-robin from a start index,
//! followers shifted so that replicas of consecutive partitions land on different brokers;
//! with racks on every broker, brokers are interleaved by rack and a partition's replicas
//! go to distinct racks while possible.

use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerSlot {
    pub id: i32,
    pub rack: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AssignmentError {
    #[error("Number of partitions must be larger than 0.")]
    NoPartitions,
    #[error("Replication factor must be larger than 0.")]
    NoReplicas,
    #[error("Replication factor: {rf} larger than available brokers: {brokers}.")]
    NotEnoughBrokers { rf: i32, brokers: usize },
}

/// Assigns `partitions` partitions numbered from `first_partition`. `start_index` and
/// `shift` are Kafka's random start index and replica shift (pass random values in
/// production, fixed ones in tests).
pub fn assign(
    brokers: &[BrokerSlot],
    partitions: i32,
    replication_factor: i32,
    first_partition: i32,
    start_index: usize,
    shift: usize,
) -> Result<BTreeMap<i32, Vec<i32>>, AssignmentError> {
    if partitions <= 0 {
        return Err(AssignmentError::NoPartitions);
    }
    if replication_factor <= 0 {
        return Err(AssignmentError::NoReplicas);
    }
    if replication_factor as usize > brokers.len() {
        return Err(AssignmentError::NotEnoughBrokers {
            rf: replication_factor,
            brokers: brokers.len(),
        });
    }
    let rack_aware = brokers.iter().all(|b| b.rack.is_some());
    if rack_aware {
        Ok(assign_rack_aware(
            brokers,
            partitions,
            replication_factor as usize,
            first_partition,
            start_index,
            shift,
        ))
    } else {
        let mut ids: Vec<i32> = brokers.iter().map(|b| b.id).collect();
        ids.sort_unstable();
        Ok(assign_rack_unaware(
            &ids,
            partitions,
            replication_factor as usize,
            first_partition,
            start_index,
            shift,
        ))
    }
}

fn replica_index(first: usize, shift: usize, j: usize, n: usize) -> usize {
    let step = 1 + (shift + j) % (n - 1);
    (first + step) % n
}

fn assign_rack_unaware(
    ids: &[i32],
    partitions: i32,
    rf: usize,
    first_partition: i32,
    start_index: usize,
    shift: usize,
) -> BTreeMap<i32, Vec<i32>> {
    let n = ids.len();
    let start = start_index % n;
    let mut next_shift = shift % n;
    let first_partition = first_partition.max(0) as usize;
    let mut out = BTreeMap::new();
    for current in first_partition..first_partition + partitions as usize {
        if current > 0 && current.is_multiple_of(n) {
            next_shift += 1;
        }
        let first = (current + start) % n;
        let mut replicas = vec![ids[first]];
        for j in 0..rf - 1 {
            replicas.push(ids[replica_index(first, next_shift, j, n)]);
        }
        out.insert(current as i32, replicas);
    }
    out
}

/// Orders brokers so racks alternate: r1-b1, r2-b1, r3-b1, r1-b2, ... (Kafka's
/// `getRackAlternatedBrokerList`).
fn rack_alternated(brokers: &[BrokerSlot]) -> Vec<(i32, String)> {
    let mut by_rack: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for b in brokers {
        by_rack
            .entry(b.rack.clone().unwrap_or_default())
            .or_default()
            .push(b.id);
    }
    for ids in by_rack.values_mut() {
        ids.sort_unstable();
    }
    let mut out = Vec::with_capacity(brokers.len());
    let mut round = 0;
    while out.len() < brokers.len() {
        for (rack, ids) in &by_rack {
            if let Some(id) = ids.get(round) {
                out.push((*id, rack.clone()));
            }
        }
        round += 1;
    }
    out
}

fn assign_rack_aware(
    brokers: &[BrokerSlot],
    partitions: i32,
    rf: usize,
    first_partition: i32,
    start_index: usize,
    shift: usize,
) -> BTreeMap<i32, Vec<i32>> {
    let list = rack_alternated(brokers);
    let n = list.len();
    let num_racks = list.iter().map(|(_, r)| r).collect::<BTreeSet<_>>().len();
    let start = start_index % n;
    let mut next_shift = shift % n;
    let first_partition = first_partition.max(0) as usize;
    let mut out = BTreeMap::new();
    for current in first_partition..first_partition + partitions as usize {
        if current > 0 && current.is_multiple_of(n) {
            next_shift += 1;
        }
        let first = (current + start) % n;
        let (leader, leader_rack) = &list[first];
        let mut replicas = vec![*leader];
        let mut racks: BTreeSet<&str> = BTreeSet::from([leader_rack.as_str()]);
        let mut chosen: BTreeSet<i32> = BTreeSet::from([*leader]);
        let mut k = 0;
        while replicas.len() < rf {
            let (id, rack) = &list[replica_index(first, next_shift * num_racks, k, n)];
            k += 1;
            // Skip a broker whose rack already holds a replica, unless every rack does;
            // skip a broker already chosen unless every broker is.
            let rack_ok = !racks.contains(rack.as_str()) || racks.len() == num_racks;
            let broker_ok = !chosen.contains(id) || chosen.len() == n;
            if rack_ok && broker_ok && !chosen.contains(id) {
                replicas.push(*id);
                racks.insert(rack.as_str());
                chosen.insert(*id);
                if racks.len() == num_racks {
                    racks.clear();
                }
            }
            if k > 4 * n {
                // Defensive bound: fill from any unchosen broker.
                for (id, _) in &list {
                    if replicas.len() < rf && !chosen.contains(id) {
                        replicas.push(*id);
                        chosen.insert(*id);
                    }
                }
            }
        }
        out.insert(current as i32, replicas);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slots(ids: &[i32]) -> Vec<BrokerSlot> {
        ids.iter()
            .map(|&id| BrokerSlot { id, rack: None })
            .collect()
    }

    #[test]
    fn matches_kafkas_rack_unaware_layout() {
        // Kafka's AdminRackAwareTest/assignReplicasToBrokers example: 5 brokers, 10
        // partitions, rf 3, startIndex 0, shift 0.
        let a = assign(&slots(&[0, 1, 2, 3, 4]), 10, 3, 0, 0, 0).unwrap();
        assert_eq!(a[&0], vec![0, 1, 2]);
        assert_eq!(a[&1], vec![1, 2, 3]);
        assert_eq!(a[&4], vec![4, 0, 1]);
        assert_eq!(a[&5], vec![0, 2, 3]);
        assert_eq!(a[&9], vec![4, 1, 2]);
    }

    #[test]
    fn every_partition_has_distinct_replicas_and_leaders_spread() {
        for rf in 1..=3 {
            let a = assign(&slots(&[1, 2, 3]), 6, rf, 0, 1, 2).unwrap();
            let mut leaders = BTreeMap::new();
            for replicas in a.values() {
                assert_eq!(replicas.len(), rf as usize);
                let distinct: BTreeSet<_> = replicas.iter().collect();
                assert_eq!(distinct.len(), replicas.len());
                *leaders.entry(replicas[0]).or_insert(0) += 1;
            }
            assert!(leaders.values().all(|&n| n == 2), "{leaders:?}");
        }
    }

    #[test]
    fn rack_aware_puts_replicas_on_distinct_racks() {
        let brokers: Vec<BrokerSlot> = [(1, "a"), (2, "a"), (3, "b"), (4, "b"), (5, "c"), (6, "c")]
            .iter()
            .map(|(id, r)| BrokerSlot {
                id: *id,
                rack: Some(r.to_string()),
            })
            .collect();
        let rack_of = |id: i32| brokers.iter().find(|b| b.id == id).unwrap().rack.clone();
        let a = assign(&brokers, 12, 3, 0, 0, 0).unwrap();
        for replicas in a.values() {
            let racks: BTreeSet<_> = replicas.iter().map(|&id| rack_of(id)).collect();
            assert_eq!(racks.len(), 3, "{replicas:?}");
        }
    }

    #[test]
    fn errors_are_kafkas() {
        assert_eq!(
            assign(&slots(&[1]), 1, 2, 0, 0, 0),
            Err(AssignmentError::NotEnoughBrokers { rf: 2, brokers: 1 })
        );
        assert_eq!(
            assign(&slots(&[1]), 0, 1, 0, 0, 0),
            Err(AssignmentError::NoPartitions)
        );
        assert_eq!(
            assign(&slots(&[1]), 1, 0, 0, 0, 0),
            Err(AssignmentError::NoReplicas)
        );
    }
}
