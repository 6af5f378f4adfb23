//! The group coordinator against a real broker process, with our own client: the full
//! join/sync/heartbeat/commit/fetch round trip, every admin API, and Kafka's error codes
//! for bad input.

mod common;
mod groups_common;

use std::time::Duration;

use common::kafka::Client;
use common::{Cluster, Coordinator};
use groups_common::*;
use kafka_protocol::messages::*;

const EXTRA: &[(&str, &str)] = &[("offsets.topic.num.partitions", "5")];

fn cluster_with_topic(topic: &str, partitions: i32) -> (Cluster, Client) {
    let cluster = Cluster::start(Coordinator::Gregor, 1, EXTRA);
    let mut c = cluster.client(0);
    assert_eq!(c.create_topic(topic, partitions, 1, &[]), 0);
    // Every __consumer_offsets partition is on this broker: wait until all are loaded.
    find_coordinator(&mut c, "any");
    poll(Duration::from_secs(30), "groups loaded", || {
        let r = c.send(&ListGroupsRequest::default(), 4).unwrap();
        (r.error_code == 0).then_some(())
    });
    (cluster, c)
}

#[test]
fn find_coordinator_creates_the_offsets_topic_and_answers_every_key_type() {
    let cluster = Cluster::start(Coordinator::Gregor, 1, EXTRA);
    let mut c = cluster.client(0);
    // The first lookup creates __consumer_offsets and answers COORDINATOR_NOT_AVAILABLE.
    let first = c
        .send(
            &FindCoordinatorRequest::default()
                .with_key(s("g"))
                .with_key_type(0),
            3,
        )
        .unwrap();
    assert_eq!(first.error_code, COORDINATOR_NOT_AVAILABLE);
    assert_eq!(first.node_id.0, -1);
    let (node, addr) = find_coordinator(&mut c, "g");
    assert_eq!(node, 1);
    assert_eq!(addr, cluster.brokers[0].addr());
    let md = c.metadata(Some(&["__consumer_offsets"])).unwrap();
    let t = &md.topics[0];
    assert_eq!(t.error_code, 0);
    assert!(t.is_internal);
    assert_eq!(t.partitions.len(), 5);

    // Batched lookup (v4+): one answer per key.
    let r = c
        .send(
            &FindCoordinatorRequest::default()
                .with_key_type(0)
                .with_coordinator_keys(vec![s("a"), s("b")]),
            4,
        )
        .unwrap();
    assert_eq!(r.coordinators.len(), 2);
    for k in &r.coordinators {
        assert_eq!(
            (k.error_code, k.node_id.0, k.port),
            (0, 1, cluster.brokers[0].port as i32)
        );
    }
    // No transaction coordinator: Kafka's answer when it cannot serve the key.
    let r = c
        .send(
            &FindCoordinatorRequest::default()
                .with_key_type(1)
                .with_coordinator_keys(vec![s("txn")]),
            4,
        )
        .unwrap();
    assert_eq!(r.coordinators[0].error_code, COORDINATOR_NOT_AVAILABLE);
    let r = c
        .send(
            &FindCoordinatorRequest::default()
                .with_key(s("txn"))
                .with_key_type(1),
            2,
        )
        .unwrap();
    assert_eq!(r.error_code, COORDINATOR_NOT_AVAILABLE);
    // Share keys: invalid before v6, not available from v6; unknown types invalid.
    for (key_type, version, expected) in [
        (2, 5, INVALID_REQUEST),
        (2, 6, COORDINATOR_NOT_AVAILABLE),
        (9, 6, INVALID_REQUEST),
    ] {
        let r = c
            .send(
                &FindCoordinatorRequest::default()
                    .with_key_type(key_type)
                    .with_coordinator_keys(vec![s("k")]),
                version,
            )
            .unwrap();
        assert_eq!(
            r.coordinators[0].error_code, expected,
            "key type {key_type} v{version}"
        );
    }
    // v0 (no key type field): a group lookup.
    let r = c
        .send(&FindCoordinatorRequest::default().with_key(s("g")), 0)
        .unwrap();
    assert_eq!((r.error_code, r.node_id.0), (0, 1));
}

#[test]
fn join_sync_heartbeat_commit_fetch_describe_list_leave_delete() {
    let (cluster, mut boot) = cluster_with_topic("t", 3);
    let mut c = coordinator_client(&mut boot, "g");
    let join = Join::new("g", range_protocol(&["t"]));
    let r = join.send_new(&mut c, 5);
    assert_eq!(r.error_code, 0);
    assert_eq!(r.generation_id, 1);
    assert_eq!(r.leader, r.member_id, "the only member leads");
    assert_eq!(r.protocol_name.as_deref(), Some("range"));
    assert_eq!(r.members.len(), 1);
    assert_eq!(r.members[0].metadata, subscription(&["t"]));
    let me = r.member_id.to_string();

    let a = assignment(&[("t", &[0, 1, 2])]);
    let sr = sync(&mut c, "g", 1, &me, vec![(me.clone(), a.clone())], 5);
    assert_eq!(sr.error_code, 0);
    assert_eq!(sr.assignment, a);
    assert_eq!(sr.protocol_type.as_deref(), Some("consumer"));
    assert_eq!(heartbeat(&mut c, "g", 1, &me), 0);

    let committed = commit(
        &mut c,
        "g",
        1,
        &me,
        &[
            ("t", 0, 10, Some("m0")),
            ("t", 1, 11, None),
            ("t", 2, 12, Some("")),
        ],
        8,
    );
    assert!(committed.iter().all(|r| r.2 == 0), "{committed:?}");
    let (err, rows) = fetch(&mut c, "g", Some(&[("t", 0), ("t", 1), ("t", 2)]));
    assert_eq!(err, 0);
    let offsets: Vec<(i64, &str)> = rows.iter().map(|r| (r.2, r.3.as_str())).collect();
    assert_eq!(offsets, vec![(10, "m0"), (11, ""), (12, "")]);
    let (_, all) = fetch(&mut c, "g", None);
    assert_eq!(all.len(), 3);
    // The single-group form (v5) and v1 answer the same.
    for v in [1, 5] {
        let r = c
            .send(
                &OffsetFetchRequest::default()
                    .with_group_id(gid("g"))
                    .with_topics(Some(vec![
                        offset_fetch_request::OffsetFetchRequestTopic::default()
                            .with_name(common::kafka::topic_name("t"))
                            .with_partition_indexes(vec![1, 7]),
                    ])),
                v,
            )
            .unwrap();
        assert_eq!(r.error_code, 0);
        let p = &r.topics[0].partitions;
        assert_eq!((p[0].committed_offset, p[1].committed_offset), (11, -1));
    }

    let d = describe(&mut c, "g");
    assert_eq!(d.error_code, 0);
    assert_eq!(d.group_state.as_str(), "Stable");
    assert_eq!(d.protocol_type.as_str(), "consumer");
    assert_eq!(d.protocol_data.as_str(), "range");
    assert_eq!(d.members.len(), 1);
    assert_eq!(d.members[0].client_id.as_str(), "gregor-test");
    assert_eq!(d.members[0].client_host.as_str(), "/127.0.0.1");
    assert_eq!(d.members[0].member_assignment, a);
    let listed = c
        .send(
            &ListGroupsRequest::default().with_states_filter(vec![s("stable")]),
            4,
        )
        .unwrap();
    assert_eq!(listed.groups.len(), 1);
    assert_eq!(listed.groups[0].group_id.0.as_str(), "g");
    assert_eq!(listed.groups[0].group_state.as_str(), "Stable");
    let none = c
        .send(
            &ListGroupsRequest::default().with_states_filter(vec![s("Empty")]),
            4,
        )
        .unwrap();
    assert!(none.groups.is_empty());

    // An active group cannot be deleted.
    let del = c
        .send(
            &DeleteGroupsRequest::default().with_groups_names(vec![gid("g"), gid("nope")]),
            2,
        )
        .unwrap();
    assert_eq!(del.results[0].error_code, NON_EMPTY_GROUP);
    assert_eq!(del.results[1].error_code, GROUP_ID_NOT_FOUND);

    let l = leave(&mut c, "g", &[&me]);
    assert_eq!(l.error_code, 0);
    assert_eq!(l.members[0].error_code, 0);
    let d = describe(&mut c, "g");
    assert_eq!(d.group_state.as_str(), "Empty");
    assert!(d.members.is_empty());
    // Offsets outlive the members.
    assert_eq!(fetch(&mut c, "g", Some(&[("t", 0)])).1[0].2, 10);

    let del = c
        .send(
            &DeleteGroupsRequest::default().with_groups_names(vec![gid("g")]),
            2,
        )
        .unwrap();
    assert_eq!(del.results[0].error_code, 0);
    assert_eq!(fetch(&mut c, "g", Some(&[("t", 0)])).1[0].2, -1);
    assert_eq!(describe(&mut c, "g").group_state.as_str(), "Dead");
    drop(cluster);
}

#[test]
fn two_members_split_partitions_and_a_silent_member_is_expired() {
    let (cluster, mut boot) = cluster_with_topic("t", 4);
    let _ = coordinator_client(&mut boot, "g");
    let (_, addr) = find_coordinator(&mut boot, "g");
    // The first member forms generation 1 alone.
    let mut leader = Client::connect(&addr).unwrap();
    let r = Join::new("g", range_protocol(&["t"])).send_new(&mut leader, 7);
    assert_eq!((r.error_code, r.generation_id), (0, 1));
    let leader_id = r.member_id.to_string();
    let a = assignment(&[("t", &[0, 1, 2, 3])]);
    assert_eq!(
        sync(
            &mut leader,
            "g",
            1,
            &leader_id,
            vec![(leader_id.clone(), a)],
            5
        )
        .error_code,
        0
    );
    // A second member joins: its JoinGroup is parked until the leader rejoins.
    let joiner = {
        let addr = addr.clone();
        std::thread::spawn(move || {
            let mut c = Client::connect(&addr).unwrap();
            let r = Join::new("g", range_protocol(&["t"])).send_new(&mut c, 7);
            (c, r)
        })
    };
    // The leader learns of the rebalance from its heartbeat, as a real consumer does.
    poll(Duration::from_secs(20), "REBALANCE_IN_PROGRESS", || {
        let e = heartbeat(&mut leader, "g", 1, &leader_id);
        assert!(e == 0 || e == REBALANCE_IN_PROGRESS, "heartbeat error {e}");
        (e == REBALANCE_IN_PROGRESS).then_some(())
    });
    let r = Join {
        member_id: &leader_id,
        ..Join::new("g", range_protocol(&["t"]))
    }
    .send(&mut leader, 7);
    assert_eq!((r.error_code, r.generation_id), (0, 2));
    assert_eq!(r.leader.as_str(), leader_id.as_str());
    assert_eq!(r.members.len(), 2, "the leader sees both members");
    let (mut follower, rf) = joiner.join().unwrap();
    assert_eq!((rf.error_code, rf.generation_id), (0, 2));
    assert!(rf.members.is_empty());
    assert_eq!(rf.leader.as_str(), leader_id.as_str());
    let generation = 2;
    let follower_id = rf.member_id.to_string();

    let follower_thread = {
        let follower_id = follower_id.clone();
        std::thread::spawn(move || {
            let r = sync(&mut follower, "g", generation, &follower_id, vec![], 5);
            (follower, r)
        })
    };
    let sl = sync(
        &mut leader,
        "g",
        generation,
        &leader_id,
        vec![
            (leader_id.clone(), assignment(&[("t", &[0, 1])])),
            (follower_id.clone(), assignment(&[("t", &[2, 3])])),
        ],
        5,
    );
    assert_eq!(sl.error_code, 0);
    assert_eq!(sl.assignment, assignment(&[("t", &[0, 1])]));
    let (mut follower, sf) = follower_thread.join().unwrap();
    assert_eq!(sf.error_code, 0);
    assert_eq!(sf.assignment, assignment(&[("t", &[2, 3])]));
    assert_eq!(heartbeat(&mut follower, "g", generation, &follower_id), 0);

    // The follower goes silent; the leader's heartbeats turn into REBALANCE_IN_PROGRESS
    // once the follower's 6 s session expires.
    poll(
        Duration::from_secs(20),
        "the silent member's expiry",
        || {
            let e = heartbeat(&mut leader, "g", generation, &leader_id);
            assert!(e == 0 || e == REBALANCE_IN_PROGRESS, "heartbeat error {e}");
            (e == REBALANCE_IN_PROGRESS).then_some(())
        },
    );
    let r = Join {
        member_id: &leader_id,
        ..Join::new("g", range_protocol(&["t"]))
    }
    .send(&mut leader, 7);
    assert_eq!(r.error_code, 0);
    assert_eq!(r.generation_id, generation + 1);
    assert_eq!(r.members.len(), 1);
    assert_eq!(
        heartbeat(&mut follower, "g", generation, &follower_id),
        UNKNOWN_MEMBER_ID
    );
    drop(cluster);
}

#[test]
fn bad_inputs_get_kafkas_error_codes() {
    let (cluster, mut boot) = cluster_with_topic("t", 2);
    let mut c = coordinator_client(&mut boot, "g");
    let r = Join::new("g", range_protocol(&["t"])).send_new(&mut c, 9);
    assert_eq!(r.error_code, 0);
    let me = r.member_id.to_string();
    let generation = r.generation_id;
    assert_eq!(sync(&mut c, "g", generation, &me, vec![], 5).error_code, 0);

    // Commits: unknown topic and partition fail per partition, the rest succeed.
    let res = commit(
        &mut c,
        "g",
        generation,
        &me,
        &[
            ("missing", 0, 1, None),
            ("t", 0, 5, None),
            ("t", 9, 5, None),
        ],
        8,
    );
    assert_eq!(
        res,
        vec![
            ("missing".to_string(), 0, UNKNOWN_TOPIC_OR_PARTITION),
            ("t".to_string(), 0, 0),
            ("t".to_string(), 9, UNKNOWN_TOPIC_OR_PARTITION),
        ]
    );
    // Wrong generation, unknown member, oversized metadata (offset.metadata.max.bytes=4096).
    let res = commit(&mut c, "g", generation + 1, &me, &[("t", 0, 6, None)], 8);
    assert_eq!(res[0].2, ILLEGAL_GENERATION);
    let res = commit(&mut c, "g", generation, "stranger", &[("t", 0, 6, None)], 8);
    assert_eq!(res[0].2, UNKNOWN_MEMBER_ID);
    let big = "m".repeat(4097);
    let res = commit(
        &mut c,
        "g",
        generation,
        &me,
        &[("t", 0, 6, Some(&big)), ("t", 1, 6, None)],
        8,
    );
    assert_eq!((res[0].2, res[1].2), (OFFSET_METADATA_TOO_LARGE, 0));
    assert_eq!(fetch(&mut c, "g", Some(&[("t", 0)])).1[0].2, 5);
    // A non-member (generation -1) may not commit to an active group...
    let res = commit(&mut c, "g", -1, "", &[("t", 0, 6, None)], 8);
    assert_eq!(res[0].2, UNKNOWN_MEMBER_ID);
    // ...but may to a group nobody manages (a simple consumer).
    let res = commit(&mut c, "simple", -1, "", &[("t", 0, 6, None)], 8);
    assert_eq!(res[0].2, 0);
    // A generation for a group that does not exist: ILLEGAL_GENERATION before v9.
    let res = commit(&mut c, "ghost", 3, "m", &[("t", 0, 1, None)], 8);
    assert_eq!(res[0].2, ILLEGAL_GENERATION);
    let res = commit(&mut c, "ghost", 3, "m", &[("t", 0, 1, None)], 9);
    assert_eq!(res[0].2, GROUP_ID_NOT_FOUND);

    assert_eq!(
        heartbeat(&mut c, "g", generation + 5, &me),
        ILLEGAL_GENERATION
    );
    assert_eq!(
        heartbeat(&mut c, "g", generation, "stranger"),
        UNKNOWN_MEMBER_ID
    );

    // Joins: another protocol type, no common protocol, empty type, session bounds,
    // empty group id.
    let mut other = Join::new("g", range_protocol(&["t"]));
    other.protocol_type = "connect";
    assert_eq!(
        other.send(&mut c, 5).error_code,
        INCONSISTENT_GROUP_PROTOCOL
    );
    let no_common = Join::new("g", vec![("roundrobin".to_string(), subscription(&["t"]))]);
    assert_eq!(
        no_common.send(&mut c, 5).error_code,
        INCONSISTENT_GROUP_PROTOCOL
    );
    let mut empty_type = Join::new("fresh", range_protocol(&["t"]));
    empty_type.protocol_type = "";
    assert_eq!(
        empty_type.send(&mut c, 3).error_code,
        INCONSISTENT_GROUP_PROTOCOL
    );
    let mut short = Join::new("g", range_protocol(&["t"]));
    short.session_timeout_ms = 1_000;
    assert_eq!(short.send(&mut c, 5).error_code, INVALID_SESSION_TIMEOUT);
    assert_eq!(
        Join::new("", range_protocol(&["t"]))
            .send(&mut c, 5)
            .error_code,
        INVALID_GROUP_ID
    );
    // Before v7 a failed join still carries a non-null protocol name.
    let r = other.send(&mut c, 2);
    assert_eq!(r.protocol_name.as_deref(), Some(""));

    // SyncGroup v5 requires protocol type and name.
    let r = c
        .send(
            &SyncGroupRequest::default()
                .with_group_id(gid("g"))
                .with_generation_id(generation)
                .with_member_id(s(&me)),
            5,
        )
        .unwrap();
    assert_eq!(r.error_code, INCONSISTENT_GROUP_PROTOCOL);
    let r = sync(&mut c, "g", generation + 1, &me, vec![], 4);
    assert_eq!(r.error_code, ILLEGAL_GENERATION);

    // OffsetDelete: the group consumes "t".
    let r = c
        .send(
            &OffsetDeleteRequest::default()
                .with_group_id(gid("g"))
                .with_topics(vec![
                    offset_delete_request::OffsetDeleteRequestTopic::default()
                        .with_name(common::kafka::topic_name("t"))
                        .with_partitions(vec![
                            offset_delete_request::OffsetDeleteRequestPartition::default()
                                .with_partition_index(0),
                        ]),
                ]),
            0,
        )
        .unwrap();
    assert_eq!(r.error_code, 0);
    assert_eq!(
        r.topics[0].partitions[0].error_code,
        GROUP_SUBSCRIBED_TO_TOPIC
    );

    // LeaveGroup v0: the member's error is the top-level error.
    let r = c
        .send(
            &LeaveGroupRequest::default()
                .with_group_id(gid("g"))
                .with_member_id(s("stranger")),
            0,
        )
        .unwrap();
    assert_eq!(r.error_code, UNKNOWN_MEMBER_ID);
    drop(cluster);
}

#[test]
fn static_member_rejoins_without_a_rebalance_and_fences_its_old_id() {
    let (cluster, mut boot) = cluster_with_topic("t", 2);
    let mut c = coordinator_client(&mut boot, "g");
    let join = Join {
        instance: Some("i-1"),
        ..Join::new("g", range_protocol(&["t"]))
    };
    let r = join.send(&mut c, 9);
    assert_eq!(r.error_code, 0, "static members get no MEMBER_ID_REQUIRED");
    let old_id = r.member_id.to_string();
    let a = assignment(&[("t", &[0, 1])]);
    assert_eq!(
        sync(
            &mut c,
            "g",
            1,
            &old_id,
            vec![(old_id.clone(), a.clone())],
            5
        )
        .error_code,
        0
    );

    // Restarted: same instance id, no member id.
    let mut c2 = coordinator_client(&mut boot, "g");
    let r = join.send(&mut c2, 9);
    assert_eq!(r.error_code, 0);
    assert_eq!(r.generation_id, 1, "no rebalance");
    assert!(r.skip_assignment);
    let new_id = r.member_id.to_string();
    assert_ne!(new_id, old_id);
    let sr = sync(&mut c2, "g", 1, &new_id, vec![], 5);
    assert_eq!((sr.error_code, sr.assignment), (0, a));
    let fenced = c
        .send(
            &HeartbeatRequest::default()
                .with_group_id(gid("g"))
                .with_generation_id(1)
                .with_member_id(s(&old_id))
                .with_group_instance_id(Some(s("i-1"))),
            4,
        )
        .unwrap();
    assert_eq!(fenced.error_code, FENCED_INSTANCE_ID);
    assert_eq!(describe(&mut c, "g").group_state.as_str(), "Stable");
    // Administrative removal by instance id (LeaveGroup v3+, empty member id).
    let r = c
        .send(
            &LeaveGroupRequest::default()
                .with_group_id(gid("g"))
                .with_members(vec![leave_group_request::MemberIdentity::default()
                    .with_member_id(s(""))
                    .with_group_instance_id(Some(s("i-1")))]),
            4,
        )
        .unwrap();
    assert_eq!((r.error_code, r.members[0].error_code), (0, 0));
    assert_eq!(describe(&mut c, "g").group_state.as_str(), "Empty");
    drop(cluster);
}

#[test]
fn api_versions_advertise_the_group_apis() {
    let cluster = Cluster::start(Coordinator::Gregor, 1, EXTRA);
    let mut c = cluster.client(0);
    let r = c.send(&ApiVersionsRequest::default(), 3).unwrap();
    let range = |key: ApiKey| {
        let k = r
            .api_keys
            .iter()
            .find(|k| k.api_key == key as i16)
            .unwrap_or_else(|| panic!("{key:?} advertised"));
        (k.min_version, k.max_version)
    };
    assert_eq!(range(ApiKey::FindCoordinator), (0, 6));
    assert_eq!(range(ApiKey::JoinGroup), (0, 9));
    assert_eq!(range(ApiKey::SyncGroup), (0, 5));
    assert_eq!(range(ApiKey::Heartbeat), (0, 4));
    assert_eq!(range(ApiKey::LeaveGroup), (0, 5));
    assert_eq!(range(ApiKey::OffsetCommit), (0, 9));
    assert_eq!(range(ApiKey::OffsetFetch), (0, 9));
    assert_eq!(range(ApiKey::DescribeGroups), (0, 5));
    assert_eq!(range(ApiKey::ListGroups), (0, 5));
    assert_eq!(range(ApiKey::DeleteGroups), (0, 2));
    assert_eq!(range(ApiKey::OffsetDelete), (0, 0));
}

#[test]
fn offsets_of_a_deleted_topic_are_removed() {
    let (cluster, mut boot) = cluster_with_topic("doomed", 2);
    assert_eq!(boot.create_topic("kept", 1, 1, &[]), 0);
    let mut c = coordinator_client(&mut boot, "g");
    let res = commit(
        &mut c,
        "g",
        -1,
        "",
        &[
            ("doomed", 0, 5, None),
            ("doomed", 1, 6, None),
            ("kept", 0, 7, None),
        ],
        8,
    );
    assert!(res.iter().all(|r| r.2 == 0), "{res:?}");
    let r = boot
        .send(
            &DeleteTopicsRequest::default()
                .with_topic_names(vec![common::kafka::topic_name("doomed")])
                .with_timeout_ms(30_000),
            4,
        )
        .unwrap();
    assert_eq!(r.responses[0].error_code, 0);
    poll(
        Duration::from_secs(30),
        "the deleted topic's offsets to go",
        || {
            let (_, rows) = fetch(&mut c, "g", Some(&[("doomed", 0), ("doomed", 1)]));
            rows.iter().all(|r| r.2 == -1).then_some(())
        },
    );
    assert_eq!(fetch(&mut c, "g", Some(&[("kept", 0)])).1[0].2, 7);
    drop(cluster);
}
