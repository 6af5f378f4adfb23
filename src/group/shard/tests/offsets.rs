//! Offset commits, fetches, expiry and deletion; loading state back from the records.

use super::*;

#[test]
fn offset_commit_rules() {
    let mut h = Harness::new(config());
    // A simple consumer (generation -1, no member) may commit to an unknown group.
    let mut c = h.commit("simple", "", -1, &[("t", 0, 10), ("t", 1, 20)]);
    assert_eq!(
        c.try_recv().unwrap(),
        vec![("t".into(), 0, None), ("t".into(), 1, None)]
    );
    assert_eq!(h.fetch("simple", "t", 0), 10);
    assert_eq!(h.fetch("simple", "t", 1), 20);
    assert_eq!(h.fetch("simple", "t", 2), -1);
    assert_eq!(h.fetch("unknown-group", "t", 0), -1);
    // A known generation for a group that does not exist (v8: ILLEGAL_GENERATION).
    let mut c = h.commit("ghost", "m", 3, &[("t", 0, 1)]);
    assert_eq!(c.try_recv().unwrap()[0].2, Some(Error::IllegalGeneration));

    let (leader, _f, generation) = h.stable_pair("g");
    let mut c = h.commit("g", &leader, generation, &[("t", 0, 7)]);
    assert_eq!(c.try_recv().unwrap()[0].2, None);
    let mut c = h.commit("g", &leader, generation - 1, &[("t", 0, 8)]);
    assert_eq!(c.try_recv().unwrap()[0].2, Some(Error::IllegalGeneration));
    let mut c = h.commit("g", "stranger", generation, &[("t", 0, 8)]);
    assert_eq!(c.try_recv().unwrap()[0].2, Some(Error::UnknownMemberId));
    // A non-member cannot commit to an active group.
    let mut c = h.commit("g", "", -1, &[("t", 0, 8)]);
    assert_eq!(c.try_recv().unwrap()[0].2, Some(Error::UnknownMemberId));
    assert_eq!(h.fetch("g", "t", 0), 7);
    // Oversized metadata fails that partition only.
    let mut c = h.commit_with(
        "g",
        &leader,
        generation,
        &[("t", 0, 9)],
        Some("x".repeat(17).as_str()),
        -1,
    );
    assert_eq!(
        c.try_recv().unwrap()[0].2,
        Some(Error::OffsetMetadataTooLarge)
    );
    let mut c = h.commit_with(
        "g",
        &leader,
        generation,
        &[("t", 0, 9)],
        Some("sixteen-bytes-ok"),
        -1,
    );
    assert_eq!(c.try_recv().unwrap()[0].2, None);
    let f = h.gs.fetch_offsets("g", None);
    assert_eq!(f[0].0, "t");
    assert_eq!(f[0].1[0].metadata, "sixteen-bytes-ok");
    assert_eq!(f[0].1[0].leader_epoch, 3);
    // During CompletingRebalance a commit must wait for the new generation.
    let mut j = h.join("g", &leader, range(&["t"]));
    let _follower_join = h.join("g", &_f, range(&["t"]));
    let r = j.try_recv().unwrap();
    assert_eq!(h.state("g"), Some(GroupState::CompletingRebalance));
    let mut c = h.commit("g", &leader, r.generation_id, &[("t", 0, 11)]);
    assert_eq!(c.try_recv().unwrap()[0].2, Some(Error::RebalanceInProgress));
}

#[test]
fn commits_become_visible_only_once_replicated() {
    let mut h = Harness::new(config());
    h.mode = Appends::Hold;
    let mut c = h.commit("simple", "", -1, &[("t", 0, 10)]);
    assert!(c.try_recv().is_err());
    assert_eq!(h.fetch("simple", "t", 0), -1);
    assert!(h
        .gs
        .has_pending_commits("simple", Some(&[("t".into(), vec![0])])));
    assert!(!h
        .gs
        .has_pending_commits("simple", Some(&[("t".into(), vec![1])])));
    h.release(Ok(()));
    assert_eq!(c.try_recv().unwrap()[0].2, None);
    assert_eq!(h.fetch("simple", "t", 0), 10);
    assert!(!h.gs.has_pending_commits("simple", None));
    // A failed append answers with the coordinator error and changes nothing.
    h.mode = Appends::Hold;
    let mut c = h.commit("simple", "", -1, &[("t", 0, 11)]);
    h.release(Err(Error::NotLeaderOrFollower));
    assert_eq!(c.try_recv().unwrap()[0].2, Some(Error::NotCoordinator));
    h.mode = Appends::Hold;
    let mut c = h.commit("simple", "", -1, &[("t", 0, 12)]);
    h.release(Err(Error::RequestTimedOut));
    assert_eq!(
        c.try_recv().unwrap()[0].2,
        Some(Error::CoordinatorNotAvailable)
    );
    assert_eq!(h.fetch("simple", "t", 0), 10);
}

#[test]
fn out_of_order_completions_keep_the_newest_commit() {
    let mut h = Harness::new(config());
    h.mode = Appends::Hold;
    let _c1 = h.commit("simple", "", -1, &[("t", 0, 1)]);
    let _c2 = h.commit("simple", "", -1, &[("t", 0, 2)]);
    // Complete the second append (offset 1) before the first (offset 0).
    let mut held = std::mem::take(&mut h.held);
    let second = held.pop().unwrap();
    let first = held.pop().unwrap();
    h.mode = Appends::Succeed;
    let _ = (second.on_done)(&mut h.gs, Ok(1), h.now);
    let _ = (first.on_done)(&mut h.gs, Ok(0), h.now);
    assert_eq!(h.fetch("simple", "t", 0), 2);
}

#[test]
fn offsets_of_empty_groups_expire_after_the_retention() {
    let mut h = Harness::new(GroupConfig {
        offsets_retention_ms: 60_000,
        ..config()
    });
    let (leader, follower, generation) = h.stable_pair("g");
    let mut c = h.commit("g", &leader, generation, &[("t", 0, 5), ("other", 0, 9)]);
    assert_eq!(c.try_recv().unwrap()[1].2, None);
    // A simple group's offsets expire by commit time.
    let mut c = h.commit("simple", "", -1, &[("t", 0, 1)]);
    assert_eq!(c.try_recv().unwrap()[0].2, None);
    // Members keep heartbeating past the retention: the subscribed topic's offset stays,
    // the unsubscribed one ("other") expires.
    for _ in 0..25 {
        h.advance(3_000);
        assert_eq!(h.heartbeat("g", &leader, generation), None);
        assert_eq!(h.heartbeat("g", &follower, generation), None);
    }
    let appends = h.gs.cleanup_expired_offsets(h.now);
    h.settle(appends);
    assert_eq!(h.fetch("g", "t", 0), 5);
    assert_eq!(h.fetch("g", "other", 0), -1);
    assert!(
        h.gs.group("simple").is_none(),
        "an emptied simple group is deleted"
    );
    assert!(h
        .log
        .iter()
        .any(|(_, r)| r.value.is_none() && r.key == records::offset_commit_key("g", "other", 0)));
    // Everyone leaves: the group is Empty; its offsets expire `retention` after that.
    let (_, a) = h.gs.leave_group(
        "g",
        vec![
            LeaveMember {
                member_id: leader,
                group_instance_id: None,
                reason: None,
            },
            LeaveMember {
                member_id: follower,
                group_instance_id: None,
                reason: None,
            },
        ],
        h.now,
    );
    h.settle(a);
    assert_eq!(h.state("g"), Some(GroupState::Empty));
    h.advance(59_999);
    let appends = h.gs.cleanup_expired_offsets(h.now);
    h.settle(appends);
    assert_eq!(h.fetch("g", "t", 0), 5);
    h.advance(1);
    let appends = h.gs.cleanup_expired_offsets(h.now);
    h.settle(appends);
    assert_eq!(h.fetch("g", "t", 0), -1);
    assert!(h.gs.group("g").is_none());
    assert!(h
        .log
        .iter()
        .any(|(_, r)| r.value.is_none() && r.key == records::group_metadata_key("g")));
}

#[test]
fn explicit_retention_from_old_commit_versions() {
    let mut h = Harness::new(config());
    let mut c = h.commit_with("simple", "", -1, &[("t", 0, 3)], None, 10_000);
    assert_eq!(c.try_recv().unwrap()[0].2, None);
    let (_, rec) = h.log.last().unwrap();
    let v = records::decode_offset_commit_value(rec.value.as_ref().unwrap()).unwrap();
    assert_eq!(v.expire_timestamp, Some(h.now + 10_000));
    h.advance(10_000);
    let appends = h.gs.cleanup_expired_offsets(h.now);
    h.settle(appends);
    assert_eq!(h.fetch("simple", "t", 0), -1);
}

#[test]
fn state_is_rebuilt_from_the_records() {
    let mut h = Harness::new(config());
    let (leader, follower, generation) = h.stable_pair("g");
    let mut c = h.commit("g", &leader, generation, &[("t", 0, 42), ("t", 1, 43)]);
    assert_eq!(c.try_recv().unwrap()[0].2, None);
    let mut c = h.commit("simple", "", -1, &[("x", 0, 1)]);
    assert_eq!(c.try_recv().unwrap()[0].2, None);
    let mut del = h.commit("gone", "", -1, &[("x", 0, 1)]);
    assert_eq!(del.try_recv().unwrap()[0].2, None);
    let (tx, mut rx) = oneshot::channel();
    let a = h.gs.delete_groups(vec!["gone".into()], tx);
    h.settle(a);
    assert_eq!(rx.try_recv().unwrap(), vec![("gone".to_string(), None)]);

    let mut reloaded = GroupShard::new(0, config());
    for (offset, r) in &h.log {
        reloaded.replay(&r.key, r.value.as_deref(), *offset, h.now);
    }
    let _ = reloaded.finish_loading(h.now);
    let g = reloaded.group("g").unwrap();
    assert_eq!(g.state(), GroupState::Stable);
    assert_eq!(g.generation_id, generation);
    assert_eq!(g.leader_id(), Some(leader.as_str()));
    assert!(g.has_member(&follower));
    assert_eq!(
        g.member(&follower).unwrap().assignment,
        assignment(0, &[("t", &[1])])
    );
    assert_eq!(g.protocol_name.as_deref(), Some("range"));
    assert_eq!(reloaded.committed("g", "t", 1).unwrap().offset, 43);
    assert_eq!(reloaded.committed("simple", "x", 0).unwrap().offset, 1);
    assert!(reloaded.group("gone").is_none());
    assert!(reloaded.committed("gone", "x", 0).is_none());
    // Loaded members must heartbeat to the new coordinator within their session.
    let mut h2 = Harness::new(config());
    h2.gs = reloaded;
    h2.now = h.now;
    h2.advance(SESSION as i64 - 1);
    assert_eq!(h2.state("g"), Some(GroupState::Stable));
    h2.advance(1);
    let g = h2.gs.group("g").unwrap();
    assert_eq!(g.size(), 0, "nobody came back");
    assert_eq!(g.state(), GroupState::Empty);
    assert_eq!(g.generation_id, generation + 1);
}

#[test]
fn delete_groups_and_offsets() {
    let mut h = Harness::new(config());
    let (leader, follower, generation) = h.stable_pair("g");
    let mut c = h.commit("g", &leader, generation, &[("t", 0, 1), ("u", 0, 2)]);
    assert_eq!(c.try_recv().unwrap()[0].2, None);
    let (tx, mut rx) = oneshot::channel();
    let a = h.gs.delete_groups(vec!["g".into(), "missing".into()], tx);
    h.settle(a);
    assert_eq!(
        rx.try_recv().unwrap(),
        vec![
            ("g".into(), Some(Error::NonEmptyGroup)),
            ("missing".into(), Some(Error::GroupIdNotFound))
        ]
    );
    // OffsetDelete on an active consumer group: subscribed topics are protected.
    let (tx, mut rx) = oneshot::channel();
    let a =
        h.gs.delete_offsets("g", vec![("t".into(), vec![0]), ("u".into(), vec![0])], tx);
    h.settle(a);
    let r = rx.try_recv().unwrap().unwrap();
    assert_eq!(r[0].1[0].1, Some(Error::GroupSubscribedToTopic));
    assert_eq!(r[1].1[0].1, None);
    assert_eq!(h.fetch("g", "u", 0), -1);
    assert_eq!(h.fetch("g", "t", 0), 1);
    // Once empty, the group and its offsets can be deleted.
    let (_, a) = h.gs.leave_group(
        "g",
        vec![
            LeaveMember {
                member_id: leader,
                group_instance_id: None,
                reason: None,
            },
            LeaveMember {
                member_id: follower,
                group_instance_id: None,
                reason: None,
            },
        ],
        h.now,
    );
    h.settle(a);
    h.mode = Appends::Hold;
    let (tx, mut rx) = oneshot::channel();
    let a = h.gs.delete_groups(vec!["g".into()], tx);
    h.settle(a);
    // A failed write restores the group.
    h.release(Err(Error::NotLeaderOrFollower));
    assert_eq!(rx.try_recv().unwrap()[0].1, Some(Error::NotCoordinator));
    assert_eq!(h.fetch("g", "t", 0), 1);
    let (tx, mut rx) = oneshot::channel();
    let a = h.gs.delete_groups(vec!["g".into()], tx);
    h.settle(a);
    assert_eq!(rx.try_recv().unwrap()[0].1, None);
    assert!(h.gs.group("g").is_none());
    assert_eq!(h.fetch("g", "t", 0), -1);
    let (tx, mut rx) = oneshot::channel();
    let a = h.gs.delete_offsets("g", vec![("t".into(), vec![0])], tx);
    assert!(a.is_empty());
    assert_eq!(rx.try_recv().unwrap(), Err(Error::GroupIdNotFound));
}

#[test]
fn non_consumer_groups_reject_offset_delete_while_active() {
    let mut h = Harness::new(config());
    let mut req = h.join_req("c", "", None, vec![("v0".into(), Bytes::from_static(b"x"))]);
    req.protocol_type = "connect".into();
    req.require_known_member_id = false;
    let mut j = h.join_with(req);
    h.advance(3_000);
    let r = j.try_recv().unwrap();
    let (tx, mut s) = oneshot::channel();
    let a = h.gs.sync_group(
        SyncRequest {
            group_id: "c".into(),
            generation_id: r.generation_id,
            member_id: r.member_id,
            group_instance_id: None,
            protocol_type: None,
            protocol_name: None,
            assignments: vec![],
        },
        tx,
        h.now,
    );
    h.settle(a);
    assert_eq!(s.try_recv().unwrap().error, None);
    let (tx, mut rx) = oneshot::channel();
    h.gs.delete_offsets("c", vec![("t".into(), vec![0])], tx);
    assert_eq!(rx.try_recv().unwrap(), Err(Error::NonEmptyGroup));
}

#[test]
fn describe_and_list() {
    let mut h = Harness::new(config());
    let (leader, _, _) = h.stable_pair("g");
    let mut c = h.commit("simple", "", -1, &[("t", 0, 1)]);
    let _ = c.try_recv();
    let d = h.gs.describe_group("g");
    assert_eq!(d.state, "Stable");
    assert_eq!(d.protocol, "range");
    assert_eq!(d.protocol_type, "consumer");
    assert_eq!(d.members.len(), 2);
    let l = d.members.iter().find(|m| m.member_id == leader).unwrap();
    assert_eq!(l.client_host, "/127.0.0.1");
    assert_eq!(l.assignment, assignment(0, &[("t", &[0])]));
    assert_eq!(h.gs.describe_group("nope").state, "Dead");
    let all = h.gs.list_groups(&[]);
    assert_eq!(all.len(), 2);
    let stable = h.gs.list_groups(&["stable".into()]);
    assert_eq!(
        stable,
        vec![("g".to_string(), "consumer".to_string(), GroupState::Stable)]
    );
    let empty = h.gs.list_groups(&["Empty".into()]);
    assert_eq!(
        empty,
        vec![("simple".to_string(), String::new(), GroupState::Empty)]
    );
}

#[test]
fn unload_answers_parked_requests_with_not_coordinator() {
    let mut h = Harness::new(config());
    let (leader, follower, generation) = h.stable_pair("g");
    let mut j = h.join("g", &leader, range(&["t"]));
    let mut j2 = h.join("g", &follower, range(&["t"]));
    let _ = (j.try_recv(), j2.try_recv());
    let mut s = h.sync("g", &follower, generation + 1, vec![]);
    let (_m3, mut j3) = h.join_new("g", range(&["t"]));
    let _ = s.try_recv();
    h.gs.unload(h.now);
    assert_eq!(j3.try_recv().unwrap().error, Some(Error::NotCoordinator));
    assert_eq!(h.gs.group_count(), 0);
    assert_eq!(h.gs.next_deadline(), None);
}

#[test]
fn offsets_of_deleted_topics_are_removed() {
    let mut h = Harness::new(config());
    let mut c = h.commit(
        "simple",
        "",
        -1,
        &[("gone", 0, 1), ("gone", 1, 2), ("kept", 0, 3)],
    );
    assert_eq!(c.try_recv().unwrap().len(), 3);
    let appends = h.gs.remove_offsets_of_topics(&["gone".to_string()]);
    h.settle(appends);
    assert_eq!(h.fetch("simple", "gone", 0), -1);
    assert_eq!(h.fetch("simple", "gone", 1), -1);
    assert_eq!(h.fetch("simple", "kept", 0), 3);
    assert!(h.log.iter().any(
        |(_, r)| r.value.is_none() && r.key == records::offset_commit_key("simple", "gone", 1)
    ));
    assert!(h
        .gs
        .remove_offsets_of_topics(&["gone".to_string()])
        .is_empty());
}
