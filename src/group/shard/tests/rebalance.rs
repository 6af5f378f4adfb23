//! Joins, syncs, heartbeats, leaves, static members and their timeouts.

use super::*;

#[test]
fn member_id_required_then_join_sync_and_heartbeat() {
    let mut h = Harness::new(config());
    let (m1, mut j1) = h.join_new("g", range(&["t"]));
    assert!(m1.starts_with("client-"));
    // The first rebalance of an empty group waits group.initial.rebalance.delay.ms.
    assert_eq!(h.state("g"), Some(GroupState::PreparingRebalance));
    h.advance(2_999);
    assert!(j1.try_recv().is_err(), "answered before the initial delay");
    h.advance(1);
    let r = j1.try_recv().unwrap();
    assert_eq!(r.error, None);
    assert_eq!(r.generation_id, 1);
    assert_eq!(r.leader_id, m1);
    assert_eq!(r.protocol_name.as_deref(), Some("range"));
    assert_eq!(r.protocol_type.as_deref(), Some("consumer"));
    assert_eq!(
        r.members.len(),
        1,
        "the leader gets every member's metadata"
    );
    assert_eq!(r.members[0].metadata, subscription(0, &["t"]));
    assert_eq!(h.state("g"), Some(GroupState::CompletingRebalance));
    assert_eq!(h.heartbeat("g", &m1, 1), None);

    let a = assignment(0, &[("t", &[0, 1])]);
    let mut s = h.sync("g", &m1, 1, vec![(m1.clone(), a.clone())]);
    let sr = s.try_recv().unwrap();
    assert_eq!(sr.error, None);
    assert_eq!(sr.assignment, a);
    assert_eq!(sr.protocol_name.as_deref(), Some("range"));
    assert_eq!(h.state("g"), Some(GroupState::Stable));
    // The assignment is persisted in a GroupMetadataValue record.
    let (_, rec) = h.log.last().unwrap();
    let v = records::decode_group_metadata_value(rec.value.as_ref().unwrap()).unwrap();
    assert_eq!(v.generation, 1);
    assert_eq!(v.members[0].assignment, a);
    assert_eq!(h.heartbeat("g", &m1, 1), None);
    assert_eq!(h.heartbeat("g", &m1, 0), Some(Error::IllegalGeneration));
    assert_eq!(h.heartbeat("g", "nobody", 1), Some(Error::UnknownMemberId));
    assert_eq!(h.heartbeat("missing", &m1, 1), Some(Error::UnknownMemberId));
}

#[test]
fn pending_member_that_never_rejoins_expires() {
    let mut h = Harness::new(config());
    let mut first = h.join("g", "", range(&["t"]));
    let id = first.try_recv().unwrap().member_id;
    assert!(h.gs.group("g").unwrap().is_pending_member(&id));
    h.advance(SESSION as i64);
    assert!(!h.gs.group("g").unwrap().is_pending_member(&id));
    // Rejoining with the expired id is now an unknown member.
    let mut late = h.join("g", &id, range(&["t"]));
    assert_eq!(late.try_recv().unwrap().error, Some(Error::UnknownMemberId));
}

#[test]
fn joins_before_v4_skip_member_id_required() {
    let mut h = Harness::new(config());
    let mut req = h.join_req("g", "", None, range(&["t"]));
    req.require_known_member_id = false;
    let mut rx = h.join_with(req);
    h.advance(3_000);
    let r = rx.try_recv().unwrap();
    assert_eq!(r.error, None);
    assert_eq!(r.generation_id, 1);
}

#[test]
fn initial_delay_extends_while_members_arrive_up_to_the_rebalance_timeout() {
    let mut h = Harness::new(config());
    let start = h.now;
    let (_, mut j1) = h.join_new("g", range(&["t"]));
    h.advance(1_000);
    let (_, mut j2) = h.join_new("g", range(&["t"]));
    // At 3s a member had arrived during the delay: wait another delay (to 6s).
    h.advance_to(start + 5_999);
    assert!(j1.try_recv().is_err());
    h.advance_to(start + 6_000);
    let (r1, r2) = (j1.try_recv().unwrap(), j2.try_recv().unwrap());
    assert_eq!((r1.error, r2.error), (None, None));
    assert_eq!(r1.generation_id, 1);
    assert_eq!(
        r1.members.len() + r2.members.len(),
        2,
        "only the leader gets the member list"
    );
}

#[test]
fn silent_member_is_removed_after_its_session_timeout() {
    let mut h = Harness::new(config());
    let (leader, follower, generation) = h.stable_pair("g");
    // The leader keeps heartbeating; the follower goes silent.
    for _ in 0..3 {
        h.advance(3_000);
        assert_eq!(h.heartbeat("g", &leader, generation), None);
    }
    assert!(h.gs.group("g").unwrap().has_member(&follower));
    h.advance(3_000);
    // 12s > 10s session: the follower is gone and a rebalance started.
    assert!(!h.gs.group("g").unwrap().has_member(&follower));
    assert_eq!(h.state("g"), Some(GroupState::PreparingRebalance));
    assert_eq!(
        h.heartbeat("g", &leader, generation),
        Some(Error::RebalanceInProgress)
    );
    // Offsets of the old generation are still accepted while preparing.
    let mut c = h.commit("g", &leader, generation, &[("t", 0, 5)]);
    assert_eq!(c.try_recv().unwrap()[0].2, None);
    // The remaining member rejoins: everyone joined, next generation at once.
    let mut j = h.join("g", &leader, range(&["t"]));
    let r = j.try_recv().unwrap();
    assert_eq!(r.generation_id, generation + 1);
    assert_eq!(r.members.len(), 1);
}

#[test]
fn members_that_do_not_rejoin_within_the_rebalance_timeout_are_dropped() {
    let mut h = Harness::new(config());
    let (leader, follower, generation) = h.stable_pair("g");
    // The leader rejoins (forces a rebalance); the follower neither rejoins nor heartbeats.
    let mut j = h.join("g", &leader, range(&["t"]));
    assert_eq!(h.state("g"), Some(GroupState::PreparingRebalance));
    h.advance(SESSION as i64 + 1);
    // Its session expired first: removed, and the join completes without it.
    let r = j.try_recv().unwrap();
    assert_eq!(r.error, None);
    assert_eq!(r.generation_id, generation + 1);
    assert_eq!(r.members.len(), 1);
    assert!(!h.gs.group("g").unwrap().has_member(&follower));
}

#[test]
fn rebalance_timeout_completes_the_join_without_laggards() {
    let mut h = Harness::new(config());
    let (leader, follower, generation) = h.stable_pair("g");
    let mut j = h.join("g", &leader, range(&["t"]));
    // The follower keeps heartbeating (REBALANCE_IN_PROGRESS) but never rejoins.
    let deadline = h.now + REBALANCE as i64;
    while h.now + 3_000 < deadline {
        h.advance(3_000);
        assert_eq!(
            h.heartbeat("g", &follower, generation),
            Some(Error::RebalanceInProgress)
        );
        assert!(j.try_recv().is_err());
    }
    h.advance_to(deadline);
    let r = j.try_recv().unwrap();
    assert_eq!(r.error, None);
    assert_eq!(r.members.len(), 1);
    assert_eq!(
        h.heartbeat("g", &follower, generation),
        Some(Error::UnknownMemberId)
    );
}

#[test]
fn followers_must_sync_within_the_rebalance_timeout() {
    let mut h = Harness::new(config());
    let (m1, mut j1) = h.join_new("g", range(&["t"]));
    let (m2, mut j2) = h.join_new("g", range(&["t"]));
    h.advance(6_000);
    let r1 = j1.try_recv().unwrap();
    let _ = j2.try_recv().unwrap();
    let leader = r1.leader_id.clone();
    let other = if leader == m1 { m2 } else { m1 };
    let mut s = h.sync("g", &leader, 1, vec![]);
    assert_eq!(
        s.try_recv().unwrap().error,
        None,
        "leader's sync completes the group"
    );
    // The other member heartbeats but never syncs: after the rebalance timeout it is
    // removed.
    for _ in 0..9 {
        h.advance(3_000);
        assert_eq!(h.heartbeat("g", &leader, 1), None);
        assert_eq!(h.heartbeat("g", &other, 1), None);
    }
    assert!(h.gs.group("g").unwrap().has_member(&other));
    h.advance_to(h.now + 3_001);
    assert!(!h.gs.group("g").unwrap().has_member(&other));
    assert_eq!(h.state("g"), Some(GroupState::PreparingRebalance));
}

#[test]
fn every_member_gets_a_valid_possibly_empty_assignment() {
    let mut h = Harness::new(config());
    let (m1, mut j1) = h.join_new("g", range(&["t"]));
    let (m2, mut j2) = h.join_new("g", range(&["t"]));
    h.advance(6_000);
    let r1 = j1.try_recv().unwrap();
    let _ = j2.try_recv().unwrap();
    let leader = r1.leader_id.clone();
    let other = if leader == m1 { m2 } else { m1 };
    let mut so = h.sync("g", &other, 1, vec![]);
    assert!(so.try_recv().is_err(), "a follower waits for the leader");
    // The leader leaves the other member out: it gets the empty assignment.
    let mut sl = h.sync(
        "g",
        &leader,
        1,
        vec![(leader.clone(), assignment(0, &[("t", &[0, 1])]))],
    );
    assert_eq!(sl.try_recv().unwrap().error, None);
    let r = so.try_recv().unwrap();
    assert_eq!(r.error, None);
    assert!(r.assignment.is_empty());
    // Later syncs in Stable return the stored assignment.
    let mut again = h.sync("g", &leader, 1, vec![]);
    assert_eq!(
        again.try_recv().unwrap().assignment,
        assignment(0, &[("t", &[0, 1])])
    );
}

#[test]
fn sync_errors() {
    let mut h = Harness::new(config());
    let (leader, _follower, generation) = h.stable_pair("g");
    let mut s = h.sync("g", &leader, generation + 1, vec![]);
    assert_eq!(s.try_recv().unwrap().error, Some(Error::IllegalGeneration));
    let mut s = h.sync("g", "stranger", generation, vec![]);
    assert_eq!(s.try_recv().unwrap().error, Some(Error::UnknownMemberId));
    let mut s = h.sync("missing", "x", 1, vec![]);
    assert_eq!(s.try_recv().unwrap().error, Some(Error::UnknownMemberId));
    let (tx, mut rx) = oneshot::channel();
    h.gs.sync_group(
        SyncRequest {
            group_id: "g".into(),
            generation_id: generation,
            member_id: leader.clone(),
            group_instance_id: None,
            protocol_type: Some("consumer".into()),
            protocol_name: Some("roundrobin".into()),
            assignments: vec![],
        },
        tx,
        h.now,
    );
    assert_eq!(
        rx.try_recv().unwrap().error,
        Some(Error::InconsistentGroupProtocol)
    );
    // During PreparingRebalance, SyncGroup says to rejoin.
    let _j = h.join("g", &leader, range(&["t"]));
    let mut s = h.sync("g", &leader, generation, vec![]);
    assert_eq!(
        s.try_recv().unwrap().error,
        Some(Error::RebalanceInProgress)
    );
}

#[test]
fn join_errors() {
    let mut h = Harness::new(config());
    let mut req = h.join_req("g", "", None, range(&["t"]));
    req.session_timeout_ms = 1_000;
    let mut rx = h.join_with(req);
    assert_eq!(
        rx.try_recv().unwrap().error,
        Some(Error::InvalidSessionTimeout)
    );
    let mut req = h.join_req("g", "", None, range(&["t"]));
    req.session_timeout_ms = 1_800_001;
    assert_eq!(
        h.join_with(req).try_recv().unwrap().error,
        Some(Error::InvalidSessionTimeout)
    );
    let req = h.join_req("", "", None, range(&["t"]));
    assert_eq!(
        h.join_with(req).try_recv().unwrap().error,
        Some(Error::InvalidGroupId)
    );
    // Empty protocol type or no protocols: inconsistent.
    let mut req = h.join_req("g", "", None, range(&["t"]));
    req.protocol_type = String::new();
    assert_eq!(
        h.join_with(req).try_recv().unwrap().error,
        Some(Error::InconsistentGroupProtocol)
    );
    let req = h.join_req("g", "", None, vec![]);
    assert_eq!(
        h.join_with(req).try_recv().unwrap().error,
        Some(Error::InconsistentGroupProtocol)
    );
    // A known member id for a group that does not exist.
    let mut rx = h.join("nope", "someone", range(&["t"]));
    assert_eq!(rx.try_recv().unwrap().error, Some(Error::UnknownMemberId));

    let (leader, _, _) = h.stable_pair("g");
    // Another protocol type, or no protocol in common with every member.
    let mut req = h.join_req("g", "", None, range(&["t"]));
    req.protocol_type = "connect".into();
    assert_eq!(
        h.join_with(req).try_recv().unwrap().error,
        Some(Error::InconsistentGroupProtocol)
    );
    let req = h.join_req(
        "g",
        "",
        None,
        vec![("roundrobin".into(), subscription(0, &["t"]))],
    );
    assert_eq!(
        h.join_with(req).try_recv().unwrap().error,
        Some(Error::InconsistentGroupProtocol)
    );
    let mut rx = h.join("g", &format!("{leader}-x"), range(&["t"]));
    assert_eq!(rx.try_recv().unwrap().error, Some(Error::UnknownMemberId));
}

#[test]
fn group_max_size() {
    let mut h = Harness::new(GroupConfig {
        max_size: 1,
        ..config()
    });
    let (_m1, mut j1) = h.join_new("g", range(&["t"]));
    // While preparing, awaiting members count against the limit.
    let mut j2 = h.join("g", "", range(&["t"]));
    let r2 = j2.try_recv().unwrap();
    assert_eq!(r2.error, Some(Error::GroupMaxSizeReached));
    assert_eq!(r2.member_id, "");
    h.advance(3_000);
    assert_eq!(j1.try_recv().unwrap().error, None);
}

#[test]
fn protocol_choice_is_the_common_protocol_with_most_votes() {
    let mut h = Harness::new(config());
    let both = vec![
        ("range".to_string(), subscription(0, &["t"])),
        ("cooperative-sticky".to_string(), subscription(1, &["t"])),
    ];
    let sticky_first = vec![
        ("cooperative-sticky".to_string(), subscription(1, &["t"])),
        ("range".to_string(), subscription(0, &["t"])),
    ];
    let (_, mut j1) = h.join_new("g", both.clone());
    let (_, mut j2) = h.join_new("g", sticky_first.clone());
    let (_, mut j3) = h.join_new("g", sticky_first);
    h.advance(6_000);
    let answers = [
        j1.try_recv().unwrap(),
        j2.try_recv().unwrap(),
        j3.try_recv().unwrap(),
    ];
    for r in &answers {
        assert_eq!(r.protocol_name.as_deref(), Some("cooperative-sticky"));
    }
    let leader = answers.iter().find(|r| !r.members.is_empty()).unwrap();
    assert!(
        leader
            .members
            .iter()
            .all(|m| m.metadata == subscription(1, &["t"])),
        "members' metadata for the chosen protocol"
    );
}

#[test]
fn cooperative_rounds_follower_rejoin_without_change_keeps_the_generation() {
    let mut h = Harness::new(config());
    let (leader, follower, generation) = h.stable_pair("g");
    // A follower rejoining with identical metadata gets the current generation back.
    let mut j = h.join("g", &follower, range(&["t"]));
    let r = j.try_recv().unwrap();
    assert_eq!((r.error, r.generation_id), (None, generation));
    assert_eq!(h.state("g"), Some(GroupState::Stable));
    // With changed metadata (cooperative: fewer owned partitions), a new round starts.
    let mut jf = h.join("g", &follower, range(&["t", "u"]));
    assert!(jf.try_recv().is_err());
    assert_eq!(h.state("g"), Some(GroupState::PreparingRebalance));
    let mut jl = h.join("g", &leader, range(&["t"]));
    let (rf, rl) = (jf.try_recv().unwrap(), jl.try_recv().unwrap());
    assert_eq!(rf.generation_id, generation + 1);
    assert_eq!(rl.generation_id, generation + 1);
    assert_eq!(rl.members.len(), 2);
    // A second immediate round (the cooperative protocol's follow-up) works the same.
    let mut sf = h.sync("g", &follower, generation + 1, vec![]);
    let mut sl = h.sync("g", &leader, generation + 1, vec![]);
    assert_eq!(
        (sf.try_recv().unwrap().error, sl.try_recv().unwrap().error),
        (None, None)
    );
    let mut jl = h.join("g", &leader, range(&["t"]));
    let mut jf = h.join("g", &follower, range(&["t", "u"]));
    assert_eq!(jl.try_recv().unwrap().generation_id, generation + 2);
    assert_eq!(jf.try_recv().unwrap().generation_id, generation + 2);
}

#[test]
fn joining_member_during_completing_rebalance_restarts_it() {
    let mut h = Harness::new(config());
    let (m1, mut j1) = h.join_new("g", range(&["t"]));
    let (m2, mut j2) = h.join_new("g", range(&["t"]));
    h.advance(6_000);
    let r1 = j1.try_recv().unwrap();
    let _ = j2.try_recv().unwrap();
    assert_eq!(h.state("g"), Some(GroupState::CompletingRebalance));
    let follower = if r1.leader_id == m1 {
        m2.clone()
    } else {
        m1.clone()
    };
    let mut sf = h.sync("g", &follower, 1, vec![]);
    assert!(
        sf.try_recv().is_err(),
        "parked until the leader's assignment"
    );
    // A new member arrives before the leader syncs: the parked sync is told to rejoin.
    let (_m3, mut j3) = h.join_new("g", range(&["t"]));
    assert_eq!(
        sf.try_recv().unwrap().error,
        Some(Error::RebalanceInProgress)
    );
    assert_eq!(h.state("g"), Some(GroupState::PreparingRebalance));
    let mut j1 = h.join("g", &m1, range(&["t"]));
    let mut j2 = h.join("g", &m2, range(&["t"]));
    for r in [
        j1.try_recv().unwrap(),
        j2.try_recv().unwrap(),
        j3.try_recv().unwrap(),
    ] {
        assert_eq!((r.error, r.generation_id), (None, 2));
    }
}

#[test]
fn leader_sync_waits_for_the_record_and_a_failed_store_forces_a_rebalance() {
    let mut h = Harness::new(config());
    let (m1, mut j1) = h.join_new("g", range(&["t"]));
    let (m2, mut j2) = h.join_new("g", range(&["t"]));
    h.advance(6_000);
    let r1 = j1.try_recv().unwrap();
    let _ = j2.try_recv().unwrap();
    let leader = r1.leader_id.clone();
    let follower = if leader == m1 { m2 } else { m1 };
    let mut sf = h.sync("g", &follower, 1, vec![]);
    h.mode = Appends::Hold;
    let mut sl = h.sync("g", &leader, 1, vec![]);
    assert!(
        sl.try_recv().is_err(),
        "answered before the group record was replicated"
    );
    assert!(sf.try_recv().is_err());
    h.release(Err(Error::NotLeaderOrFollower));
    assert_eq!(sl.try_recv().unwrap().error, Some(Error::NotCoordinator));
    assert_eq!(sf.try_recv().unwrap().error, Some(Error::NotCoordinator));
    assert_eq!(h.state("g"), Some(GroupState::PreparingRebalance));
}

#[test]
fn static_member_restart_keeps_its_assignment_without_a_rebalance() {
    let mut h = Harness::new(config());
    let mut req = h.join_req("g", "", Some("instance-a"), range(&["t"]));
    req.client_id = "c".into();
    let mut j = h.join_with(req);
    h.advance(3_000);
    let r = j.try_recv().unwrap();
    assert_eq!(r.error, None, "static members skip MEMBER_ID_REQUIRED");
    let old_id = r.member_id.clone();
    assert!(old_id.starts_with("instance-a-"));
    let a = assignment(0, &[("t", &[0, 1, 2])]);
    let mut s = h.sync("g", &old_id, 1, vec![(old_id.clone(), a.clone())]);
    assert_eq!(s.try_recv().unwrap().error, None);
    let records_before = h.log.len();

    // Restart: same instance id, unknown member id, within the session timeout.
    h.advance(5_000);
    let req = h.join_req("g", "", Some("instance-a"), range(&["t"]));
    let mut j = h.join_with(req);
    let r = j.try_recv().unwrap();
    assert_eq!(r.error, None);
    assert_eq!(r.generation_id, 1, "no new generation");
    assert!(
        r.skip_assignment,
        "v9: the static leader is told to skip the assignment"
    );
    let new_id = r.member_id.clone();
    assert_ne!(new_id, old_id);
    assert_eq!(h.state("g"), Some(GroupState::Stable));
    assert_eq!(
        h.log.len(),
        records_before + 1,
        "the new member id is persisted"
    );
    let mut s = h.sync("g", &new_id, 1, vec![]);
    assert_eq!(s.try_recv().unwrap().assignment, a);
    // The old incarnation is fenced.
    let fenced = h.gs.heartbeat(
        HeartbeatRequest {
            group_id: "g".into(),
            generation_id: 1,
            member_id: old_id,
            group_instance_id: Some("instance-a".into()),
        },
        h.now,
    );
    assert_eq!(fenced, Some(Error::FencedInstanceId));
}

#[test]
fn static_member_leaving_by_instance_id_and_batched_leave() {
    let mut h = Harness::new(config());
    let (leader, follower, _) = h.stable_pair("g");
    let (result, _) = h.gs.leave_group(
        "g",
        vec![
            LeaveMember {
                member_id: follower.clone(),
                group_instance_id: None,
                reason: Some("closing".into()),
            },
            LeaveMember {
                member_id: "".into(),
                group_instance_id: Some("nobody".into()),
                reason: None,
            },
        ],
        h.now,
    );
    assert_eq!(result.error, None);
    assert_eq!(result.members[0].2, None);
    assert_eq!(result.members[1].2, Some(Error::UnknownMemberId));
    assert_eq!(h.state("g"), Some(GroupState::PreparingRebalance));
    // The leader leaves too: nobody left, the group is Empty with a new generation.
    let (result, appends) = h.gs.leave_group(
        "g",
        vec![LeaveMember {
            member_id: leader,
            group_instance_id: None,
            reason: None,
        }],
        h.now,
    );
    h.settle(appends);
    assert_eq!(result.members[0].2, None);
    assert_eq!(h.state("g"), Some(GroupState::Empty));
    let (_, rec) = h.log.last().unwrap();
    let v = records::decode_group_metadata_value(rec.value.as_ref().unwrap()).unwrap();
    assert!(v.members.is_empty());
    assert_eq!(v.generation, 2);
    let (missing, _) = h.gs.leave_group(
        "other",
        vec![LeaveMember {
            member_id: "x".into(),
            group_instance_id: None,
            reason: None,
        }],
        h.now,
    );
    assert_eq!(missing.members[0].2, Some(Error::UnknownMemberId));
}
