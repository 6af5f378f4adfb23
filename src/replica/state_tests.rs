//! The partition state machine driven directly: Kafka's rules case by case, the two
//! replication bugs found by the Jepsen test (each fails on the code before its fix), and
//! random event sequences checked against a reference model of the rules.

use proptest::prelude::*;

use super::model_log::ModelLog;
use super::state::*;

const ME: i32 = 1;
const LAG: i64 = 10_000;

fn lai(leader: i32, epoch: i32, isr: &[i32]) -> LeaderAndIsr {
    LeaderAndIsr {
        leader,
        leader_epoch: epoch,
        replicas: vec![1, 2, 3],
        isr: isr.to_vec(),
        zk_version: epoch,
        controller_epoch: 1,
    }
}

/// Broker 1 leading epoch 1 with ISR {1,2,3}, its log at `leo`, at time 0.
fn leader(leo: i64) -> PartitionState {
    let mut st = PartitionState::new(ME, 0, leo);
    assert_eq!(
        st.apply(&lai(ME, 1, &[1, 2, 3]), leo, 0),
        Transition::BecameLeader
    );
    st
}

#[test]
fn hw_is_the_minimum_leo_of_the_isr_once_every_member_has_fetched() {
    let mut st = leader(0);
    // The leader appends 10; nothing is replicated yet.
    assert!(!st.advance_hw(10));
    assert_eq!(st.high_watermark, 0);
    let u = st.on_follower_fetch(1, 2, 10, 10, 5).unwrap();
    assert!(!u.hw_advanced, "member 3's LEO is still unknown");
    let u = st.on_follower_fetch(1, 3, 7, 10, 6).unwrap();
    assert!(u.hw_advanced);
    assert_eq!(st.high_watermark, 7);
    st.on_follower_fetch(1, 3, 10, 10, 7).unwrap();
    assert_eq!(st.high_watermark, 10);
}

#[test]
fn acks_all_completes_at_the_hw_and_fails_when_the_term_ends() {
    let mut st = leader(0);
    st.set_min_insync_replicas(2);
    let epoch = st.check_append(-1).unwrap();
    assert_eq!(st.replication(5, epoch), Replication::Pending);
    st.on_follower_fetch(epoch, 2, 5, 5, 1).unwrap();
    st.on_follower_fetch(epoch, 3, 5, 5, 1).unwrap();
    assert_eq!(st.replication(5, epoch), Replication::Done);
    st.apply(&lai(2, 2, &[2, 3]), 5, 2);
    assert_eq!(
        st.replication(5, epoch),
        Replication::Failed(StateError::NotLeader)
    );
}

#[test]
fn acks_all_survives_an_epoch_bump_that_keeps_the_leader_but_not_a_lost_leadership() {
    // The controller shrinks the ISR of a leader that stays leader (a dead follower):
    // ZooKeeper-mode Kafka bumps the epoch; the leader's log goes on, so an append made
    // before the bump completes at the HW, as in Kafka (`checkEnoughReplicasReachOffset`).
    let mut st = leader(0);
    let epoch = st.check_append(-1).unwrap();
    st.apply(&lai(ME, epoch + 1, &[1, 2]), 5, 1);
    assert_eq!(st.replication(5, epoch), Replication::Pending);
    st.on_follower_fetch(epoch + 1, 2, 5, 5, 2).unwrap();
    assert_eq!(st.replication(5, epoch), Replication::Done);
    // Leadership lost and regained: the log may have been truncated in between, so an
    // append from before is never acknowledged, even once the new term's HW passes it.
    let appended = st.check_append(-1).unwrap();
    st.apply(&lai(2, appended + 1, &[2, 1]), 7, 3);
    st.apply(&lai(ME, appended + 2, &[1, 2]), 7, 4);
    st.on_follower_fetch(appended + 2, 2, 7, 7, 5).unwrap();
    assert_eq!(st.high_watermark, 7);
    assert_eq!(
        st.replication(7, appended),
        Replication::Failed(StateError::NotLeader)
    );
}

#[test]
fn min_insync_is_checked_before_the_append_and_after_replication() {
    let mut st = PartitionState::new(ME, 0, 0);
    st.apply(&lai(ME, 1, &[1]), 0, 0);
    st.set_min_insync_replicas(2);
    assert_eq!(
        st.check_append(-1),
        Err(StateError::NotEnoughReplicas { isr: 1, min: 2 })
    );
    assert_eq!(st.check_append(1), Ok(1), "acks=1 is not held back");
    // In ISR {1,2} an append reaches the HW, but the ISR shrank to {1} meanwhile.
    st.apply(&lai(ME, 1, &[1, 2]), 0, 0);
    st.on_follower_fetch(1, 2, 3, 3, 1).unwrap();
    st.on_follower_fetch(1, 3, 3, 3, 1).unwrap();
    st.isr_committed(1, vec![1], 3, 3);
    assert_eq!(
        st.replication(3, 1),
        Replication::Failed(StateError::NotEnoughReplicasAfterAppend { isr: 1, min: 2 })
    );
}

#[test]
fn an_older_state_is_refused_and_epochs_never_go_back() {
    let mut st = leader(0);
    st.apply(&lai(2, 5, &[2, 3]), 0, 0);
    assert_eq!(st.apply(&lai(ME, 4, &[1, 2, 3]), 0, 0), Transition::Stale);
    assert_eq!(st.leader_epoch, 5);
    assert_eq!(st.role, Role::Follower { leader: 2 });
    assert_eq!(st.apply(&lai(2, 5, &[2]), 0, 0), Transition::Refreshed);
    assert_eq!(st.isr, vec![2]);
}

#[test]
fn an_isr_from_zookeeper_is_never_trusted_beyond_the_assignment() {
    let mut st = PartitionState::new(ME, 0, 0);
    st.apply(&lai(ME, 1, &[1, 2, 9]), 0, 0);
    assert_eq!(st.isr, vec![1, 2]);
}

#[test]
fn expansion_needs_the_hw_and_the_epoch_start_and_one_change_at_a_time() {
    let mut st = PartitionState::new(ME, 0, 20);
    st.apply(&lai(ME, 1, &[1]), 20, 0);
    // The epoch started at 20: a follower at 15 is not in sync yet.
    let u = st.on_follower_fetch(1, 2, 15, 25, 1).unwrap();
    assert_eq!(u.expand_isr_to, None);
    let u = st.on_follower_fetch(1, 2, 25, 25, 2).unwrap();
    assert_eq!(u.expand_isr_to, Some(vec![1, 2]));
    // A second follower catching up waits for the first change to land.
    let u = st.on_follower_fetch(1, 3, 25, 25, 3).unwrap();
    assert_eq!(u.expand_isr_to, None);
    assert!(st.isr_committed(1, vec![1, 2], 2, 25) || st.high_watermark == 25);
    let u = st.on_follower_fetch(1, 3, 25, 25, 4).unwrap();
    assert_eq!(u.expand_isr_to, Some(vec![1, 2, 3]));
}

#[test]
fn a_pending_expansion_counts_for_the_hw_kip_497() {
    let mut st = PartitionState::new(ME, 0, 0);
    st.apply(&lai(ME, 1, &[1]), 0, 0);
    // Alone in the ISR, the leader's HW follows its LEO.
    assert!(st.advance_hw(10));
    let u = st.on_follower_fetch(1, 2, 10, 12, 1).unwrap();
    assert_eq!(u.expand_isr_to, Some(vec![1, 2]));
    // While the expansion is pending, member 2's LEO holds the HW back.
    assert!(!st.advance_hw(12));
    assert_eq!(st.high_watermark, 10);
}

#[test]
fn shrink_drops_followers_lagging_past_the_lag_time_never_the_leader() {
    let mut st = leader(0);
    // Both count as caught up at the term's start (0); 2 then fetches without catching
    // up, 3 catches up at 100.
    st.on_follower_fetch(1, 2, 0, 5, 100).unwrap();
    st.on_follower_fetch(1, 3, 5, 5, 100).unwrap();
    assert_eq!(st.isr_shrink_proposal(5, LAG, LAG), None, "not yet");
    assert_eq!(st.isr_shrink_proposal(5, LAG, LAG + 1), Some(vec![1, 3]));
    assert_eq!(
        st.isr_shrink_proposal(5, LAG, 100 + 2 * LAG),
        None,
        "one change at a time"
    );
}

#[test]
fn a_follower_with_everything_stays_in_sync_however_long_it_is_idle() {
    let mut st = leader(5);
    st.on_follower_fetch(1, 2, 5, 5, 0).unwrap();
    st.on_follower_fetch(1, 3, 5, 5, 0).unwrap();
    assert_eq!(st.isr_shrink_proposal(5, LAG, 10 * LAG), None);
}

/// Regression for 795a982: a late failure of an older proposal cleared a newer pending
/// one, so a third change could be written while the second was in flight.
#[test]
fn a_failed_proposal_clears_only_itself() {
    let mut st = PartitionState::new(ME, 0, 0);
    st.apply(&lai(ME, 1, &[1]), 0, 0);
    let first = st
        .on_follower_fetch(1, 2, 0, 0, 1)
        .unwrap()
        .expand_isr_to
        .unwrap();
    st.isr_change_failed(&first, 0);
    let second = st
        .on_follower_fetch(1, 3, 0, 0, 2)
        .unwrap()
        .expand_isr_to
        .unwrap();
    assert_eq!(second, vec![1, 3]);
    // The first proposal's failure is reported again (a retried write's late answer).
    st.isr_change_failed(&first, 0);
    assert_eq!(st.pending_isr, Some(second));
    assert_eq!(
        st.on_follower_fetch(1, 2, 0, 0, 3).unwrap().expand_isr_to,
        None,
        "no change while the second is in flight"
    );
}

/// Regression for 4f82911: a broker that led an epoch and appended nothing kept that
/// epoch at its log end and sent it as its last fetched epoch forever; the leader answered
/// the same diverging epoch forever and the follower never rejoined. With Kafka's rules
/// (truncate to our end of the largest epoch below the leader's answer, and truncation
/// drops an epoch entry at the log end) the exchange converges to the leader's log.
#[test]
fn a_follower_with_an_empty_trailing_epoch_converges_to_the_leader() {
    let mut leader_log = ModelLog::default();
    leader_log.append(1, &[1, 2, 3, 4, 5]);
    leader_log.append(2, &[6, 7]);
    let mut follower = ModelLog::default();
    follower.append(1, &[1, 2, 3, 4, 5]);
    follower.assign_epoch(3); // led epoch 3 without appending, then lost leadership
    leader_log.append(4, &[8]);
    let mut rounds = 0;
    loop {
        rounds += 1;
        assert!(rounds < 10, "no convergence: {follower:?}");
        let offset = follower.leo();
        let last = follower.latest_epoch().unwrap_or(-1);
        match diverging_epoch(&leader_log, offset, last) {
            Some((epoch, end)) => {
                let target = diverging_truncation_offset(&follower, epoch, end);
                follower.truncate_to(target);
            }
            None => {
                let copied = leader_log.read(offset, usize::MAX).to_vec();
                if copied.is_empty() {
                    break;
                }
                follower.append_copied(&copied);
            }
        }
    }
    assert_eq!(follower, leader_log);
}

#[test]
fn a_divergent_tail_is_cut_at_the_leaders_end_of_the_shared_epoch() {
    // Follower wrote 3 records in epoch 2 that the new leader (epoch 3) never had.
    let mut leader_log = ModelLog::default();
    leader_log.append(1, &[1, 2]);
    leader_log.append(2, &[3]);
    leader_log.append(3, &[9, 9]);
    let mut follower = ModelLog::default();
    follower.append(1, &[1, 2]);
    follower.append(2, &[3, 4, 5]);
    let (epoch, end) = diverging_epoch(&leader_log, follower.leo(), 2).unwrap();
    assert_eq!((epoch, end), (2, 3));
    assert_eq!(diverging_truncation_offset(&follower, epoch, end), 3);
}

#[test]
fn follower_hw_follows_the_leader_within_its_own_log() {
    let mut st = PartitionState::new(ME, 0, 0);
    st.apply(&lai(2, 1, &[1, 2, 3]), 0, 0);
    st.on_follower_append(50, 30);
    assert_eq!(st.high_watermark, 30);
    st.on_truncated(20);
    assert_eq!(st.high_watermark, 20);
}

#[test]
#[should_panic(expected = "HW")]
fn a_broken_invariant_fails_the_run() {
    let mut st = leader(10);
    st.high_watermark = 11; // a bug elsewhere
    st.advance_hw(10);
}

// ---- random sequences against a reference model ----

#[derive(Debug, Clone)]
enum Event {
    Append(u8),
    Fetch { follower: i32, behind: u8 },
    Tick(u16),
    Shrink,
    CommitPending,
    FailPending,
    NewTerm { leader: i32, isr_mask: u8 },
    Refresh { isr_mask: u8 },
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        4 => (1u8..20).prop_map(Event::Append),
        6 => (2i32..=3, 0u8..5).prop_map(|(follower, behind)| Event::Fetch { follower, behind }),
        2 => (0u16..20_000).prop_map(Event::Tick),
        2 => Just(Event::Shrink),
        2 => Just(Event::CommitPending),
        1 => Just(Event::FailPending),
        1 => (1i32..=3, 1u8..8).prop_map(|(leader, isr_mask)| Event::NewTerm { leader, isr_mask }),
        1 => (1u8..8).prop_map(|isr_mask| Event::Refresh { isr_mask }),
    ]
}

fn members(mask: u8, must: i32) -> Vec<i32> {
    let mut v: Vec<i32> = (1..=3).filter(|r| mask & (1 << (r - 1)) != 0).collect();
    if !v.contains(&must) {
        v.push(must);
        v.sort();
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Broker 1's view of a 3-replica partition under random appends, follower fetches,
    /// clock steps, ISR proposals and their outcomes, and controller changes. Besides the
    /// state's own assertions (always on), checks Kafka's rules against a reference:
    /// - the HW is exactly what the rule says after every step (the maximum of its old
    ///   value and the minimum known LEO over the maximal ISR, while leading);
    /// - every offset acks=all acknowledged is at or below the LEO of every member of the
    ///   ISR at that moment (nothing acknowledged lives on fewer replicas than the ISR);
    /// - shrinks never drop the leader or a follower that fetched within the lag time;
    /// - expansions only add followers caught up to the HW.
    #[test]
    fn random_events_keep_kafkas_rules(events in proptest::collection::vec(event(), 1..80)) {
        let mut st = PartitionState::new(ME, 0, 0);
        let mut leo: i64 = 0;
        let mut now: i64 = 0;
        let mut epoch = 1;
        st.apply(&lai(ME, epoch, &[1, 2, 3]), leo, now);
        let mut follower_leo = std::collections::BTreeMap::from([(2, -1i64), (3, -1i64)]);
        let mut last_fetch = std::collections::BTreeMap::from([(2, 0i64), (3, 0i64)]);
        for e in events {
            let hw_before = st.high_watermark;
            match e {
                Event::Append(n) => {
                    if st.check_append(1).is_ok() {
                        leo += n as i64;
                        st.advance_hw(leo);
                    }
                }
                Event::Fetch { follower, behind } => {
                    let offset = (leo - behind as i64).max(follower_leo[&follower].max(0));
                    if let Ok(u) = st.on_follower_fetch(st.leader_epoch, follower, offset, leo, now) {
                        follower_leo.insert(follower, offset);
                        last_fetch.insert(follower, now);
                        if let Some(isr) = u.expand_isr_to {
                            prop_assert!(isr.contains(&follower));
                            prop_assert!(offset >= hw_before, "expanded with a follower behind the HW");
                        }
                    }
                }
                Event::Tick(ms) => now += ms as i64,
                Event::Shrink => {
                    if let Some(isr) = st.isr_shrink_proposal(leo, LAG, now) {
                        prop_assert!(isr.contains(&ME), "shrink dropped the leader");
                        for dropped in st.isr.iter().filter(|r| !isr.contains(r)) {
                            prop_assert!(now - last_fetch[dropped] > LAG || follower_leo[dropped] < leo);
                        }
                    }
                }
                Event::CommitPending => {
                    if let Some(p) = st.pending_isr.clone() {
                        let ok_epoch = st.leader_epoch;
                        st.isr_committed(ok_epoch, p, st.zk_version + 1, leo);
                    }
                }
                Event::FailPending => {
                    if let Some(p) = st.pending_isr.clone() {
                        st.isr_change_failed(&p, leo);
                    }
                }
                Event::NewTerm { leader, isr_mask } => {
                    epoch += 1;
                    st.apply(&lai(leader, epoch, &members(isr_mask, leader)), leo, now);
                    if st.is_leader() {
                        follower_leo.insert(2, -1);
                        follower_leo.insert(3, -1);
                    }
                }
                Event::Refresh { isr_mask } => {
                    if st.is_leader() {
                        let s = lai(ME, st.leader_epoch, &members(isr_mask, ME));
                        st.apply(&s, leo, now);
                    }
                }
            }
            if st.is_leader() {
                // Reference HW rule.
                let mut maximal = st.isr.clone();
                maximal.extend(st.pending_isr.iter().flatten().filter(|r| !st.isr.contains(r)));
                let known_min = maximal
                    .iter()
                    .filter(|&&r| r != ME)
                    .map(|r| follower_leo[r])
                    .try_fold(leo, |m, l| (l >= 0).then_some(m.min(l)));
                let expected = match known_min {
                    Some(m) => hw_before.max(m),
                    None => hw_before,
                };
                prop_assert_eq!(st.high_watermark, expected.min(leo).max(hw_before));
                // acks=all safety: when the HW moves, every ISR member has what it passes.
                if st.high_watermark > hw_before {
                    for r in maximal.iter().filter(|&&r| r != ME) {
                        prop_assert!(follower_leo[r] >= st.high_watermark,
                            "HW {} passed ISR member {}'s LEO {}", st.high_watermark, r, follower_leo[r]);
                    }
                }
            }
        }
    }
}
