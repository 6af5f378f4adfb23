//! Transactional offset commits: pending until the marker, KIP-447 fencing, loading.

use super::*;

impl Harness {
    fn txn_commit(
        &mut self,
        group: &str,
        member: &str,
        generation: i32,
        pid: i64,
        parts: &[(&str, i32, i64)],
    ) -> oneshot::Receiver<CommitResult> {
        let (tx, rx) = oneshot::channel();
        let req = TxnCommitRequest {
            group_id: group.into(),
            member_id: member.into(),
            generation_id: generation,
            group_instance_id: None,
            producer_id: pid,
            producer_epoch: 0,
            partitions: parts
                .iter()
                .map(|(t, p, o)| CommitPartition {
                    topic: t.to_string(),
                    partition: *p,
                    offset: *o,
                    leader_epoch: -1,
                    metadata: None,
                    commit_timestamp: None,
                })
                .collect(),
            guard: None,
        };
        let appends = self.gs.commit_txn_offsets(req, tx, self.now);
        assert!(
            appends.iter().all(|a| a
                .producer
                .is_some_and(|(p, _)| p.producer_id == pid && p.producer_epoch == 0)),
            "written as the producer's transactional batch"
        );
        self.settle(appends);
        rx
    }
}

#[test]
fn transactional_offsets_wait_for_the_marker() {
    let mut h = Harness::new(config());
    h.commit("g", "", -1, &[("t", 0, 5)]);
    let mut c = h.txn_commit("g", "", -1, 42, &[("t", 0, 10), ("t", 1, 11)]);
    assert_eq!(c.try_recv().unwrap()[0].2, None);
    assert_eq!(h.fetch("g", "t", 0), 5, "pending until the marker");
    assert_eq!(
        h.gs.unstable_txn_offsets("g"),
        vec![("t".to_string(), 0), ("t".to_string(), 1)]
    );
    h.gs.complete_txn_offsets(42, true);
    assert_eq!((h.fetch("g", "t", 0), h.fetch("g", "t", 1)), (10, 11));
    assert!(h.gs.unstable_txn_offsets("g").is_empty());
    // An aborted transaction's offsets vanish.
    h.txn_commit("g", "", -1, 43, &[("t", 0, 99)]);
    h.gs.complete_txn_offsets(43, false);
    assert_eq!(h.fetch("g", "t", 0), 10);
    // A plain commit newer than the transactional one wins at the COMMIT.
    h.txn_commit("g", "", -1, 44, &[("t", 0, 50)]);
    h.commit("g", "", -1, &[("t", 0, 60)]);
    h.gs.complete_txn_offsets(44, true);
    assert_eq!(h.fetch("g", "t", 0), 60);
}

#[test]
fn a_failed_append_drops_the_pending_offsets() {
    let mut h = Harness::new(config());
    h.mode = Appends::Hold;
    let mut c = h.txn_commit("g", "", -1, 7, &[("t", 0, 10)]);
    assert_eq!(h.gs.unstable_txn_offsets("g").len(), 1);
    h.release(Err(Error::NotEnoughReplicas));
    assert_eq!(
        c.try_recv().unwrap()[0].2,
        Some(Error::CoordinatorNotAvailable)
    );
    assert!(h.gs.unstable_txn_offsets("g").is_empty());
    h.gs.complete_txn_offsets(7, true);
    assert_eq!(h.fetch("g", "t", 0), -1);
}

#[test]
fn kip_447_fences_zombie_members() {
    let mut h = Harness::new(config());
    let (leader, _follower, generation) = h.stable_pair("g");
    let mut c = h.txn_commit("g", &leader, generation - 1, 1, &[("t", 0, 1)]);
    assert_eq!(c.try_recv().unwrap()[0].2, Some(Error::IllegalGeneration));
    let mut c = h.txn_commit("g", "zombie", generation, 1, &[("t", 0, 1)]);
    assert_eq!(c.try_recv().unwrap()[0].2, Some(Error::UnknownMemberId));
    let mut c = h.txn_commit("g", &leader, generation, 1, &[("t", 0, 1)]);
    assert_eq!(c.try_recv().unwrap()[0].2, None);
    // Old protocol versions send no member: allowed even for a non-empty group.
    let mut c = h.txn_commit("g", "", -1, 2, &[("t", 1, 1)]);
    assert_eq!(c.try_recv().unwrap()[0].2, None);
}

#[test]
fn loading_keeps_undecided_transactions_pending() {
    let mut h = Harness::new(config());
    let mut gs = GroupShard::new(0, config());
    let key = records::offset_commit_key("g", "t", 0);
    let value = |offset: i64| {
        records::offset_commit_value(&records::OffsetCommitValue {
            offset,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp: h.now,
            expire_timestamp: None,
        })
    };
    gs.replay(&key, Some(&value(3)), 0, h.now);
    gs.replay_txn_offset(8, &key, Some(&value(4)), 1, h.now);
    gs.replay_txn_offset(9, &key, Some(&value(5)), 2, h.now);
    gs.complete_txn_offsets(8, true);
    h.gs = gs;
    assert_eq!(h.fetch("g", "t", 0), 4);
    assert_eq!(h.gs.unstable_txn_offsets("g").len(), 1, "9 is undecided");
    h.gs.complete_txn_offsets(9, false);
    assert_eq!(h.fetch("g", "t", 0), 4);
    h.gs.unload(h.now);
    assert!(h.gs.unstable_txn_offsets("g").is_empty());
}
