//! Cluster failover with real processes: controller death, controlled shutdown (SIGTERM),
//! the mini-zookeeper going away and coming back, and preferred leaders returning.

mod common;

use std::time::Duration;

use common::kafka::{batch, Client};
use common::{wait_until, Cluster, Coordinator};
use kafka_protocol::records::Compression;

fn controller(c: &mut Client) -> i32 {
    c.metadata(None).map(|m| m.controller_id.0).unwrap_or(-1)
}

fn leaders(c: &mut Client, topic: &str) -> Vec<i32> {
    let md = c.metadata(Some(&[topic])).expect("metadata");
    let mut ps: Vec<_> = md.topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.leader_id.0))
        .collect();
    ps.sort();
    ps.into_iter().map(|(_, l)| l).collect()
}

fn client_other_than(cluster: &Cluster, id: i32) -> Client {
    let b = cluster.brokers.iter().find(|b| b.id != id).unwrap();
    Client::connect(&b.addr()).unwrap()
}

#[test]
fn a_new_controller_takes_over_and_keeps_managing_the_cluster() {
    let mut cluster = Cluster::start(Coordinator::Gregor, 3, &[]);
    let mut c = cluster.client(0);
    wait_until(Duration::from_secs(30), "a controller", || {
        controller(&mut c) >= 0
    });
    let old = controller(&mut c);
    let i = cluster.broker_index(old);
    cluster.brokers[i].process.kill();
    let mut c = client_other_than(&cluster, old);
    // Within the 6 s session timeout plus election.
    wait_until(Duration::from_secs(20), "a new controller", || {
        let now = controller(&mut c);
        now >= 0 && now != old
    });
    // The new controller does the controller's work: new topics get leaders.
    assert_eq!(c.create_topic("after-failover", 4, 2, &[]), 0);
    let ls = leaders(&mut c, "after-failover");
    assert!(ls.iter().all(|&l| l >= 0 && l != old), "{ls:?}");
}

#[test]
fn sigterm_moves_leadership_away_before_the_broker_stops() {
    let mut cluster = Cluster::start(Coordinator::Gregor, 3, &[]);
    let mut c = cluster.client(0);
    assert_eq!(c.create_topic("cs", 6, 3, &[]), 0);
    let victim = cluster.brokers[2].id;
    wait_until(Duration::from_secs(30), "victim leads something", || {
        leaders(&mut c, "cs").contains(&victim)
    });
    // While it shuts down cleanly it must hand over every partition first.
    cluster.brokers[2]
        .process
        .terminate(Duration::from_secs(60));
    let ls = leaders(&mut c, "cs");
    assert!(
        ls.iter().all(|&l| l >= 0 && l != victim),
        "leadership moved before exit: {ls:?}"
    );
    // And the partitions keep taking acks=all writes. The new leader may learn of its
    // leadership a moment after the broker a client asked for metadata: until then it
    // answers NOT_LEADER_OR_FOLLOWER, which clients retry (as with Kafka).
    for p in 0..6 {
        let mut last = -1;
        wait_until(
            Duration::from_secs(10),
            "an acks=all write is taken",
            || {
                let leader = leaders(&mut c, "cs")[p as usize];
                let mut lc = cluster.client(cluster.broker_index(leader));
                last = lc.produce("cs", p, batch(&[b"x"], Compression::None), -1).0;
                assert!(last == 0 || last == 6, "error {last} writing cs-{p}");
                last == 0
            },
        );
        assert_eq!(last, 0);
    }
}

#[test]
fn brokers_keep_serving_while_zookeeper_is_down_and_reconnect_after() {
    let mut cluster = Cluster::start(Coordinator::Gregor, 2, &[]);
    let mut c = cluster.client(0);
    assert_eq!(c.create_topic("zkdown", 2, 2, &[]), 0);
    wait_until(Duration::from_secs(30), "full ISRs", || {
        let md = c.metadata(Some(&["zkdown"])).unwrap();
        md.topics[0]
            .partitions
            .iter()
            .all(|p| p.isr_nodes.len() == 2)
    });
    let ls = leaders(&mut c, "zkdown");
    cluster.zk.process.kill();
    // Produce and fetch keep working on the live leaders.
    for round in 0..3 {
        for (p, &leader) in ls.iter().enumerate() {
            let mut lc = cluster.client(cluster.broker_index(leader));
            let v = format!("during-{round}");
            assert_eq!(
                lc.produce(
                    "zkdown",
                    p as i32,
                    batch(&[v.as_bytes()], Compression::None),
                    -1
                )
                .0,
                0,
                "acks=all while ZooKeeper is down"
            );
        }
    }
    for (p, &leader) in ls.iter().enumerate() {
        let mut lc = cluster.client(cluster.broker_index(leader));
        assert_eq!(lc.read_all("zkdown", p as i32, 0).len(), 3);
    }
    // ZooKeeper returns (same data): brokers reconnect and admin works again.
    cluster.zk.process.start();
    let mut c = cluster.client(0);
    wait_until(
        Duration::from_secs(60),
        "topic creation after ZooKeeper returns",
        || c.create_topic("after-zk", 1, 2, &[]) == 0,
    );
    wait_until(Duration::from_secs(30), "both brokers registered", || {
        c.metadata(None)
            .map(|m| m.brokers.len() == 2)
            .unwrap_or(false)
    });
}

#[test]
fn preferred_leaders_come_back_after_a_restart() {
    let mut cluster = Cluster::start(
        Coordinator::Gregor,
        3,
        &[("leader.imbalance.check.interval.seconds", "1")],
    );
    let mut c = cluster.client(0);
    assert_eq!(c.create_topic("pref", 3, 3, &[]), 0);
    let preferred = leaders(&mut c, "pref");
    let victim = preferred[0];
    let vi = cluster.broker_index(victim);
    cluster.brokers[vi]
        .process
        .terminate(Duration::from_secs(60));
    let mut c = client_other_than(&cluster, victim);
    assert!(!leaders(&mut c, "pref").contains(&victim));
    cluster.brokers[vi].process.start();
    cluster.wait_for_broker(vi);
    wait_until(
        Duration::from_secs(60),
        "preferred leaders restored",
        || leaders(&mut c, "pref") == preferred,
    );
}
