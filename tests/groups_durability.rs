//! Group state lives in `__consumer_offsets`: it survives a coordinator restart, moves
//! with partition leadership to another broker, and is written in Kafka's own record
//! schemas.

mod common;
mod groups_common;

use std::time::Duration;

use common::kafka::Client;
use common::{Cluster, Coordinator};
use groups_common::*;
use kafka_protocol::records::RecordBatchDecoder;

/// One member in generation 1 with partitions 0..3 of "t", offsets 100+p committed.
fn stable_group_with_offsets(c: &mut Client, group: &str) -> String {
    let r = Join::new(group, range_protocol(&["t"])).send_new(c, 7);
    assert_eq!((r.error_code, r.generation_id), (0, 1));
    let me = r.member_id.to_string();
    let a = assignment(&[("t", &[0, 1, 2])]);
    assert_eq!(
        sync(c, group, 1, &me, vec![(me.clone(), a)], 5).error_code,
        0
    );
    let res = commit(
        c,
        group,
        1,
        &me,
        &[
            ("t", 0, 100, Some("zero")),
            ("t", 1, 101, None),
            ("t", 2, 102, None),
        ],
        8,
    );
    assert!(res.iter().all(|r| r.2 == 0), "{res:?}");
    me
}

fn committed(c: &mut Client, group: &str) -> Vec<(i32, i64, String)> {
    let (err, rows) = fetch(c, group, Some(&[("t", 0), ("t", 1), ("t", 2)]));
    assert_eq!(err, 0);
    rows.into_iter().map(|r| (r.1, r.2, r.3)).collect()
}

#[test]
fn coordinator_restart_keeps_committed_offsets_and_the_group() {
    let mut cluster = Cluster::start(
        Coordinator::Gregor,
        1,
        &[("offsets.topic.num.partitions", "3")],
    );
    let mut boot = cluster.client(0);
    assert_eq!(boot.create_topic("t", 3, 1, &[]), 0);
    let mut c = coordinator_client(&mut boot, "g");
    let me = stable_group_with_offsets(&mut c, "g");
    let before = committed(&mut c, "g");
    assert_eq!(before[0], (0, 100, "zero".to_string()));

    // The records are Kafka's: OffsetCommitKey v1 and GroupMetadataKey v2 keys with
    // OffsetCommitValue v3 and GroupMetadataValue v3 values, in the group's partition.
    let p = gregor::group::partition_for("g", 3);
    let records = boot.read_all("__consumer_offsets", p, 0);
    assert_eq!(records.len(), 4, "group metadata + 3 commits");
    let (_, _, raw) = boot.fetch("__consumer_offsets", p, 0, 0);
    let mut raw = raw;
    let batches = RecordBatchDecoder::decode_all(&mut raw).unwrap();
    let mut key_versions = Vec::new();
    for b in &batches {
        for r in &b.records {
            let key = r.key.as_ref().expect("keyed");
            let value = r.value.as_ref().expect("no tombstones yet");
            key_versions.push((
                i16::from_be_bytes([key[0], key[1]]),
                i16::from_be_bytes([value[0], value[1]]),
            ));
        }
    }
    assert!(
        key_versions.contains(&(2, 3)),
        "GroupMetadataKey v2 / Value v3: {key_versions:?}"
    );
    assert!(
        key_versions.contains(&(1, 3)),
        "OffsetCommitKey v1 / Value v3: {key_versions:?}"
    );

    cluster.brokers[0]
        .process
        .terminate(Duration::from_secs(60));
    cluster.brokers[0].process.start();
    cluster.wait_for_broker(0);
    let mut boot = cluster.client(0);
    let mut c = coordinator_client(&mut boot, "g");
    assert_eq!(committed(&mut c, "g"), before);
    // The group itself was reloaded: Stable, with the member and its assignment.
    let d = describe(&mut c, "g");
    assert_eq!(d.group_state.as_str(), "Stable");
    assert_eq!(d.members.len(), 1);
    assert_eq!(d.members[0].member_id.as_str(), me);
    assert_eq!(
        d.members[0].member_assignment,
        assignment(&[("t", &[0, 1, 2])])
    );
    // The member does not come back: its session (6 s) expires on the new coordinator.
    poll(
        Duration::from_secs(30),
        "the reloaded member to expire",
        || {
            let d = describe(&mut c, "g");
            (d.group_state.as_str() == "Empty").then_some(())
        },
    );
    assert_eq!(
        committed(&mut c, "g"),
        before,
        "offsets outlive the members"
    );
}

#[test]
fn coordination_moves_with_partition_leadership() {
    let mut cluster = Cluster::start(
        Coordinator::Gregor,
        3,
        &[
            ("offsets.topic.num.partitions", "3"),
            ("offsets.topic.replication.factor", "3"),
        ],
    );
    let mut boot = cluster.client(0);
    assert_eq!(boot.create_topic("t", 3, 3, &[]), 0);
    let mut c = coordinator_client(&mut boot, "g");
    let (old_node, _) = find_coordinator(&mut boot, "g");
    let md = boot.metadata(Some(&["__consumer_offsets"])).unwrap();
    assert_eq!(md.topics[0].partitions[0].replica_nodes.len(), 3);
    let me = stable_group_with_offsets(&mut c, "g");
    let before = committed(&mut c, "g");

    // Brokers that do not lead the group's partition are not its coordinator.
    for b in &cluster.brokers {
        if b.id == old_node {
            continue;
        }
        let mut other = Client::connect(&b.addr()).unwrap();
        assert_eq!(heartbeat(&mut other, "g", 1, &me), NOT_COORDINATOR);
        let (err, _) = fetch(&mut other, "g", Some(&[("t", 0)]));
        assert_eq!(err, NOT_COORDINATOR);
        let res = commit(&mut other, "g", 1, &me, &[("t", 0, 5, None)], 8);
        assert_eq!(res[0].2, NOT_COORDINATOR);
    }

    // Controlled shutdown of the coordinator: leadership (and coordination) moves.
    let idx = cluster.broker_index(old_node);
    cluster.brokers[idx]
        .process
        .terminate(Duration::from_secs(60));
    let survivor = (idx + 1) % 3;
    let mut boot = cluster.client(survivor);
    let new_node = poll(Duration::from_secs(60), "a new coordinator", || {
        let (node, _) = find_coordinator(&mut boot, "g");
        (node != old_node).then_some(node)
    });
    assert_ne!(new_node, old_node);
    let mut c = coordinator_client(&mut boot, "g");
    // Offsets were replicated before each commit was acknowledged (acks=all).
    assert_eq!(committed(&mut c, "g"), before);
    let d = describe(&mut c, "g");
    assert_eq!(d.members.len(), 1);
    // The member carries on with its new coordinator: commits keep working.
    let res = commit(&mut c, "g", 1, &me, &[("t", 0, 200, None)], 8);
    assert_eq!(res[0].2, 0);
    assert_eq!(fetch(&mut c, "g", Some(&[("t", 0)])).1[0].2, 200);
    drop(cluster);
}
