//! Replication across real broker processes: followers fetch from the leader, the ISR
//! tracks them, acks=all waits for the high watermark, and when the leader is killed
//! with `kill -9` another ISR member takes over with every acknowledged record.

mod common;

use std::time::Duration;

use common::kafka::batch;
use common::{wait_until, Cluster, Coordinator};
use kafka_protocol::records::Compression;

const NOT_ENOUGH_REPLICAS: i16 = 19;

fn isr(c: &mut common::kafka::Client, topic: &str, partition: i32) -> Vec<i32> {
    let md = c.metadata(Some(&[topic])).expect("metadata");
    md.topics[0]
        .partitions
        .iter()
        .find(|p| p.partition_index == partition)
        .map(|p| p.isr_nodes.iter().map(|b| b.0).collect())
        .unwrap_or_default()
}

/// A client connected to any live broker.
fn any_client(cluster: &Cluster) -> common::kafka::Client {
    for b in &cluster.brokers {
        if let Ok(c) = common::kafka::Client::connect(&b.addr()) {
            return c;
        }
    }
    panic!("no broker reachable");
}

/// Produces one acks=all record to `r`-0, retrying NOT_LEADER_OR_FOLLOWER (6) for a
/// while: metadata from one broker can name a leader before that broker has applied its
/// election, and Kafka answers (and clients retry) the same way.
fn produce_once_applied(c: &mut common::kafka::Client, value: &[u8]) -> (i16, i64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (err, base) = c.produce("r", 0, batch(&[value], Compression::None), -1);
        if err != 6 || std::time::Instant::now() > deadline {
            return (err, base);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn acks_all_survives_leader_kill_and_the_old_leader_rejoins() {
    let mut cluster = Cluster::start(Coordinator::Gregor, 3, &[("min.insync.replicas", "2")]);
    let mut c = cluster.client(0);
    assert_eq!(c.create_topic("r", 1, 3, &[]), 0);
    wait_until(Duration::from_secs(30), "full ISR", || {
        isr(&mut c, "r", 0).len() == 3
    });

    let leader = c.leader("r", 0);
    let mut leader_client = cluster.client(cluster.broker_index(leader));
    let mut acked = Vec::new();
    for i in 0..20 {
        let v = format!("before-{i}");
        let (err, base) = produce_once_applied(&mut leader_client, v.as_bytes());
        assert_eq!(err, 0);
        assert_eq!(base, i);
        acked.push(v);
    }

    // kill -9 the leader: another ISR member must take over with everything acknowledged.
    let old = cluster.broker_index(leader);
    cluster.brokers[old].process.kill();
    let mut c = any_client(&cluster);
    wait_until(Duration::from_secs(30), "a new leader", || {
        let l = c.leader("r", 0);
        l >= 0 && l != leader
    });
    let new_leader = c.leader("r", 0);
    let mut nc = cluster.client(cluster.broker_index(new_leader));
    for i in 0..10 {
        let v = format!("after-{i}");
        let (err, _) = produce_once_applied(&mut nc, v.as_bytes());
        assert_eq!(err, 0, "acks=all with 2 of 3 replicas alive");
        acked.push(v);
    }
    let got: Vec<String> = nc
        .read_all("r", 0, 0)
        .into_iter()
        .map(|(_, v)| String::from_utf8(v.unwrap().to_vec()).unwrap())
        .collect();
    assert_eq!(got, acked, "every acknowledged record, once, in order");

    // The old leader restarts, truncates if needed, catches up and rejoins the ISR.
    cluster.brokers[old].process.start();
    wait_until(
        Duration::from_secs(60),
        "old leader back in the ISR",
        || isr(&mut nc, "r", 0).contains(&leader),
    );
}

#[test]
fn min_insync_replicas_refuses_acks_all_up_front() {
    let mut cluster = Cluster::start(
        Coordinator::Gregor,
        2,
        &[
            ("min.insync.replicas", "2"),
            ("replica.lag.time.max.ms", "2000"),
        ],
    );
    let mut c = cluster.client(0);
    assert_eq!(c.create_topic("m", 1, 2, &[]), 0);
    wait_until(Duration::from_secs(30), "full ISR", || {
        isr(&mut c, "m", 0).len() == 2
    });
    let leader = c.leader("m", 0);
    let follower = cluster
        .brokers
        .iter()
        .map(|b| b.id)
        .find(|&id| id != leader)
        .unwrap();
    let fi = cluster.broker_index(follower);
    cluster.brokers[fi].process.kill();
    let li = cluster.broker_index(leader);
    let mut lc = cluster.client(li);
    // The controller removes the dead follower from the ISR once its session expires.
    wait_until(Duration::from_secs(30), "ISR shrink", || {
        isr(&mut lc, "m", 0) == vec![leader]
    });
    assert_eq!(
        lc.produce("m", 0, batch(&[b"x"], Compression::None), -1).0,
        NOT_ENOUGH_REPLICAS
    );
    // acks=1 still works.
    assert_eq!(
        lc.produce("m", 0, batch(&[b"y"], Compression::None), 1).0,
        0
    );
}
