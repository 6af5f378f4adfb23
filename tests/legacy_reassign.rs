//! Kafka's ZooKeeper-mode legacy reassignment with real processes: an operator (old
//! `kafka-reassign-partitions --zookeeper`, zkCli) writes `/admin/reassign_partitions`
//! straight into ZooKeeper; the active controller carries the reassignments out, takes
//! each partition out of the znode when it is done (or refused, or superseded by the
//! AlterPartitionReassignments API) and deletes the znode when none is left, also across
//! a controller failover.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use bytes::Bytes;
use common::kafka::{batch, decode, topic_name, Client};
use common::{wait_until, Cluster, Coordinator};
use gregor::coordination::znodes::{
    partition_state_path, topic_path, ControllerZnode, PartitionStateZnode, TopicZnode, CONTROLLER,
    REASSIGN_PARTITIONS,
};
use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::AlterPartitionReassignmentsRequest;
use kafka_protocol::records::Compression;
use zookeeper_client as zk;

const TOPIC: &str = "moving";
const WAIT: Duration = Duration::from_secs(90);

/// A ZooKeeper session of the test's own, as an operator's zkCli would have.
struct Zk {
    rt: tokio::runtime::Runtime,
    client: zk::Client,
}

impl Zk {
    fn connect(cluster: &Cluster) -> Zk {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let addr = cluster.zk.connect_string();
        let client = rt.block_on(async {
            zk::Client::connector()
                .with_session_timeout(Duration::from_secs(30))
                .connect(&addr)
                .await
                .expect("connect to ZooKeeper")
        });
        Zk { rt, client }
    }

    /// Creates `/admin/reassign_partitions` as zkCli does (world-writable).
    fn request_reassignment(&self, json: &str) {
        let options = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
        self.rt
            .block_on(
                self.client
                    .create(REASSIGN_PARTITIONS, json.as_bytes(), &options),
            )
            .expect("create /admin/reassign_partitions");
    }

    fn get(&self, path: &str) -> Option<Vec<u8>> {
        match self.rt.block_on(self.client.get_data(path)) {
            Ok((data, _)) => Some(data),
            Err(zk::Error::NoNode) => None,
            Err(err) => panic!("get {path}: {err}"),
        }
    }

    fn topic(&self, topic: &str) -> TopicZnode {
        let path = topic_path(topic);
        TopicZnode::decode(&path, &self.get(&path).expect("topic znode")).unwrap()
    }

    fn state(&self, topic: &str, p: i32) -> PartitionStateZnode {
        let path = partition_state_path(topic, p);
        PartitionStateZnode::decode(&path, &self.get(&path).expect("state znode")).unwrap()
    }

    fn controller(&self) -> Option<i32> {
        self.get(CONTROLLER).map(|d| {
            ControllerZnode::decode(&d)
                .expect("controller znode")
                .brokerid
        })
    }

    fn wait_for_no_reassignment(&self, what: &str) {
        wait_until(WAIT, what, || self.get(REASSIGN_PARTITIONS).is_none());
    }
}

fn entry(topic: &str, p: i32, replicas: &[i32]) -> String {
    format!(r#"{{"topic":"{topic}","partition":{p},"replicas":{replicas:?}}}"#)
}

fn request(entries: &[String]) -> String {
    format!(r#"{{"version":1,"partitions":[{}]}}"#, entries.join(","))
}

/// Three brokers, `TOPIC` with `partitions` partitions on all three ({1,2,3}), then a
/// fourth broker to move onto.
fn cluster_with_topic(kind: Coordinator, partitions: i32) -> Cluster {
    let mut cluster = Cluster::start(kind, 3, &[]);
    let mut c = cluster.client(0);
    assert_eq!(c.create_topic(TOPIC, partitions, 3, &[]), 0);
    wait_until(Duration::from_secs(30), "leaders", || {
        (0..partitions).all(|p| c.leader(TOPIC, p) >= 0)
    });
    cluster.add_broker(4, &[]);
    cluster.wait_for_broker(3);
    cluster
}

/// Produces `n` single-record batches (acks=all) to partition 0 through its leader.
fn produce(cluster: &Cluster, zk: &Zk, prefix: &str, n: usize) -> Vec<Bytes> {
    let mut sent = Vec::new();
    for i in 0..n {
        let value = format!("{prefix}-{i}");
        wait_until(Duration::from_secs(30), "an acknowledged produce", || {
            let leader = zk.state(TOPIC, 0).leader;
            let Ok(mut c) = Client::connect(&cluster.brokers[cluster.broker_index(leader)].addr())
            else {
                return false;
            };
            let body = batch(&[value.as_bytes()], Compression::None);
            matches!(c.try_produce(TOPIC, 0, body, -1), Ok((0, _)))
        });
        sent.push(Bytes::from(value));
    }
    sent
}

/// Every record value of partition 0 up to the high watermark, from broker `id`.
fn read_from(cluster: &Cluster, id: i32) -> Option<Vec<Bytes>> {
    let mut c = Client::connect(&cluster.brokers[cluster.broker_index(id)].addr()).ok()?;
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let (err, hw, records) = c.try_fetch(TOPIC, 0, offset, 0).ok()?;
        if err != 0 {
            return None;
        }
        if offset >= hw {
            return Some(out);
        }
        let records = decode(records);
        if records.is_empty() {
            return None;
        }
        for (o, v) in records {
            if o >= offset {
                out.extend(v);
                offset = o + 1;
            }
        }
    }
}

fn partition_dir(cluster: &Cluster, id: i32, p: i32) -> std::path::PathBuf {
    cluster.brokers[cluster.broker_index(id)]
        .data
        .join(format!("{TOPIC}-{p}"))
}

/// The reassignment of partition 0 from {1,2,3} to {2,3,4} is complete: assignment, ISR,
/// leader, every record `sent` readable from the new leader (and more can be written),
/// broker 1's replica deleted.
fn assert_moved_to_2_3_4(cluster: &Cluster, zk: &Zk, mut sent: Vec<Bytes>) {
    let topic = zk.topic(TOPIC);
    assert_eq!(topic.partitions["0"], vec![2, 3, 4]);
    assert!(
        topic.adding_replicas.is_empty() && topic.removing_replicas.is_empty(),
        "{topic:?}"
    );
    let state = zk.state(TOPIC, 0);
    let new = BTreeSet::from([2, 3, 4]);
    assert!(new.contains(&state.leader), "{state:?}");
    assert!(state.isr.iter().all(|r| new.contains(r)), "{state:?}");
    sent.extend(produce(cluster, zk, "after", 5));
    wait_until(WAIT, "every record readable from the new leader", || {
        let leader = zk.state(TOPIC, 0).leader;
        read_from(cluster, leader).is_some_and(|got| got == sent)
    });
    wait_until(WAIT, "broker 1's replica deleted", || {
        !partition_dir(cluster, 1, 0).exists()
    });
    assert!(partition_dir(cluster, 4, 0).exists());
}

fn signal(cluster: &Cluster, id: i32, sig: libc::c_int) {
    let pid = cluster.brokers[cluster.broker_index(id)].process.pid();
    // SAFETY: sending a signal to a child process this test started.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, sig) }, 0);
}

fn broker_log(cluster: &Cluster, id: i32) -> String {
    let b = &cluster.brokers[cluster.broker_index(id)];
    std::fs::read_to_string(&b.process.log).unwrap_or_default()
}

fn logs_contain(cluster: &Cluster, needle: &str) -> usize {
    cluster
        .brokers
        .iter()
        .map(|b| broker_log(cluster, b.id).matches(needle).count())
        .sum()
}

fn reassignment_written_to_zookeeper(kind: Coordinator) {
    let cluster = cluster_with_topic(kind, 1);
    let zk = Zk::connect(&cluster);
    let sent = produce(&cluster, &zk, "before", 50);
    zk.request_reassignment(&request(&[entry(TOPIC, 0, &[2, 3, 4])]));
    zk.wait_for_no_reassignment("the controller to finish and delete /admin/reassign_partitions");
    assert_moved_to_2_3_4(&cluster, &zk, sent);
}

#[test]
fn a_reassignment_written_to_zookeeper_is_carried_out_and_the_znode_removed() {
    reassignment_written_to_zookeeper(Coordinator::Gregor);
}

#[test]
fn a_reassignment_written_to_apache_zookeeper_is_carried_out_and_the_znode_removed() {
    reassignment_written_to_zookeeper(Coordinator::Apache);
}

#[test]
fn a_new_controller_finishes_a_reassignment_its_predecessor_started() {
    let mut cluster = cluster_with_topic(Coordinator::Gregor, 1);
    let zk = Zk::connect(&cluster);
    let sent = produce(&cluster, &zk, "before", 50);
    // Broker 4 frozen (still registered): the reassignment starts but cannot complete.
    signal(&cluster, 4, libc::SIGSTOP);
    zk.request_reassignment(&request(&[entry(TOPIC, 0, &[2, 3, 4])]));
    wait_until(WAIT, "the reassignment to start", || {
        zk.topic(TOPIC).adding_replicas.get("0") == Some(&vec![4])
    });
    let old = zk.controller().expect("a controller");
    let i = cluster.broker_index(old);
    cluster.brokers[i].process.kill();
    signal(&cluster, 4, libc::SIGCONT);
    assert!(
        zk.get(REASSIGN_PARTITIONS).is_some(),
        "finished before the failover"
    );
    wait_until(WAIT, "a new controller", || {
        zk.controller().is_some_and(|c| c != old)
    });
    // The old controller comes back (it may be a target replica the reassignment needs).
    cluster.brokers[i].process.start();
    cluster.wait_for_broker(i);
    zk.wait_for_no_reassignment("the new controller to finish the reassignment");
    // It read the znode when elected, resumed the entry under way, and deleted the znode.
    let now = zk.controller().expect("a controller");
    let log = broker_log(&cluster, now);
    assert!(log.contains("resumed=1"), "{now} resumed the reassignment");
    assert!(
        log.contains("no more partitions to reassign"),
        "{now} deleted the znode"
    );
    assert_moved_to_2_3_4(&cluster, &zk, sent);
}

#[test]
fn invalid_entries_are_dropped_and_the_znode_still_goes_away() {
    let cluster = cluster_with_topic(Coordinator::Gregor, 3);
    let zk = Zk::connect(&cluster);
    let sent = produce(&cluster, &zk, "before", 10);
    let before = zk.topic(TOPIC).partitions;
    zk.request_reassignment(&request(&[
        entry(TOPIC, 0, &[2, 3, 4]),
        entry(TOPIC, 1, &[2, 2, 3]),
        entry(TOPIC, 2, &[1, 2, 9]),
        entry("no-such-topic", 0, &[1, 2]),
    ]));
    zk.wait_for_no_reassignment("/admin/reassign_partitions to go away");
    let after = zk.topic(TOPIC).partitions;
    assert_eq!(after["1"], before["1"], "duplicate replicas: refused");
    assert_eq!(
        after["2"], before["2"],
        "a broker that is not alive: refused"
    );
    for needle in [
        "Duplicate replica ids",
        "not alive",
        "UnknownTopicOrPartition",
    ] {
        assert!(
            logs_contain(&cluster, needle) > 0,
            "the refusal ({needle}) is logged"
        );
    }
    assert_moved_to_2_3_4(&cluster, &zk, sent);
    // A znode no controller can read is deleted, so the next request can be written.
    zk.request_reassignment("not json");
    zk.wait_for_no_reassignment("the malformed znode to be deleted");
}

#[test]
fn an_api_reassignment_supersedes_the_znode_entry() {
    let cluster = cluster_with_topic(Coordinator::Gregor, 1);
    let zk = Zk::connect(&cluster);
    signal(&cluster, 4, libc::SIGSTOP);
    zk.request_reassignment(&request(&[entry(TOPIC, 0, &[2, 3, 4])]));
    wait_until(WAIT, "the reassignment to start", || {
        zk.topic(TOPIC).adding_replicas.get("0") == Some(&vec![4])
    });
    // Cancelled through AlterPartitionReassignments: the entry leaves the znode, which,
    // left empty, is deleted.
    let controller = zk.controller().expect("a controller");
    let mut c = Client::connect(&cluster.brokers[cluster.broker_index(controller)].addr())
        .expect("connect to the controller");
    let cancel = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![ReassignableTopic::default()
            .with_name(topic_name(TOPIC))
            .with_partitions(vec![ReassignablePartition::default()
                .with_partition_index(0)
                .with_replicas(None)])]);
    let resp = c.send(&cancel, 0).expect("AlterPartitionReassignments");
    assert_eq!(resp.error_code, 0);
    assert_eq!(resp.responses[0].partitions[0].error_code, 0);
    signal(&cluster, 4, libc::SIGCONT);
    zk.wait_for_no_reassignment("the superseded entry to leave the znode");
    let topic = zk.topic(TOPIC);
    assert_eq!(
        topic.partitions["0"]
            .iter()
            .copied()
            .collect::<BTreeSet<_>>(),
        BTreeSet::from([1, 2, 3])
    );
    assert!(topic.adding_replicas.is_empty() && topic.removing_replicas.is_empty());
}
