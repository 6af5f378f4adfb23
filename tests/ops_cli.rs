//! The operator's CLI against a real 4-broker cluster: `gregor configs` (topic and
//! dynamic broker configs), `gregor topics alter`, `gregor reassign` with a replication
//! throttle (KIP-73) and `gregor elect-leaders`, each checked by what the cluster then
//! reports through the Kafka protocol, not only by the command's own words.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::kafka::{batch, Client};
use common::{wait_until, Cluster, Coordinator};
use kafka_protocol::records::Compression;

const WAIT: Duration = Duration::from_secs(90);

/// Runs `gregor ARGS --bootstrap-server B`: (succeeded, stdout + stderr).
fn gregor(cluster: &Cluster, args: &[&str]) -> (bool, String) {
    let bootstrap = cluster.bootstrap();
    let args: Vec<&str> = args
        .iter()
        .copied()
        .chain(["--bootstrap-server", &bootstrap])
        .collect();
    common::run_cli(&args, None)
}

/// A throttle rate's default: Long.MAX_VALUE, no throttle.
const UNLIMITED: i64 = i64::MAX;

fn ok(cluster: &Cluster, args: &[&str]) -> String {
    let (success, out) = gregor(cluster, args);
    assert!(success, "gregor {args:?} failed:\n{out}");
    out
}

/// (replicas, isr, leader) of a partition, from Metadata.
fn partition(client: &mut Client, topic: &str, p: i32) -> (Vec<i32>, Vec<i32>, i32) {
    let md = client.metadata(Some(&[topic])).unwrap();
    let t = &md.topics[0];
    let part = t
        .partitions
        .iter()
        .find(|x| x.partition_index == p)
        .unwrap_or_else(|| panic!("{topic}-{p} not in metadata"));
    (
        part.replica_nodes.iter().map(|b| b.0).collect(),
        part.isr_nodes.iter().map(|b| b.0).collect(),
        part.leader_id.0,
    )
}

fn partition_count(client: &mut Client, topic: &str) -> usize {
    client.metadata(Some(&[topic])).unwrap().topics[0]
        .partitions
        .len()
}

#[test]
fn configs_and_topics_alter_change_what_the_cluster_reports() {
    let cluster = Cluster::start(Coordinator::Gregor, 2, &[]);
    let mut client = cluster.client(0);
    assert_eq!(client.create_topic("t", 2, 2, &[]), 0);

    // Topic configs: set, seen by describe, deleted.
    ok(
        &cluster,
        &[
            "configs",
            "alter",
            "--topic",
            "t",
            "--set",
            "retention.ms=60000",
        ],
    );
    let described = ok(&cluster, &["configs", "describe", "--topic", "t"]);
    assert!(described.contains("retention.ms=60000"), "{described}");
    ok(
        &cluster,
        &[
            "configs",
            "alter",
            "--topic",
            "t",
            "--delete",
            "retention.ms",
        ],
    );
    let all = ok(&cluster, &["configs", "describe", "--topic", "t", "--all"]);
    assert!(
        // Nothing sets log.retention.ms (only log.retention.hours has a default), so as in
        // Kafka no broker synonym follows; cleanup.policy has its broker key's default.
        all.contains("  retention.ms=604800000 sensitive=false synonyms={}\n")
            && all.contains(
                "  cleanup.policy=delete sensitive=false \
                 synonyms={DEFAULT_CONFIG:log.cleanup.policy=delete}\n"
            ),
        "{all}"
    );
    let (success, out) = gregor(
        &cluster,
        &[
            "configs",
            "alter",
            "--topic",
            "t",
            "--set",
            "retention.ms=soon",
        ],
    );
    assert!(!success && out.contains("InvalidConfig"), "{out}");

    // Dynamic broker configs: the throttle rates only, per broker or for all.
    ok(
        &cluster,
        &[
            "configs",
            "alter",
            "--broker",
            "1",
            "--set",
            "leader.replication.throttled.rate=1000000",
        ],
    );
    ok(
        &cluster,
        &[
            "configs",
            "alter",
            "--broker-defaults",
            "--set",
            "follower.replication.throttled.rate=2000000",
        ],
    );
    wait_until(WAIT, "broker 1 to apply its dynamic configs", || {
        let all = ok(&cluster, &["configs", "describe", "--broker", "1", "--all"]);
        // Each key in force at its highest level, every level as a synonym (KIP-226).
        all.contains(&format!(
            "  leader.replication.throttled.rate=1000000 sensitive=false synonyms=\
             {{DYNAMIC_BROKER_CONFIG:leader.replication.throttled.rate=1000000, \
             DEFAULT_CONFIG:leader.replication.throttled.rate={UNLIMITED}}}"
        )) && all.contains(&format!(
            "  follower.replication.throttled.rate=2000000 sensitive=false synonyms=\
             {{DYNAMIC_DEFAULT_BROKER_CONFIG:follower.replication.throttled.rate=2000000, \
             DEFAULT_CONFIG:follower.replication.throttled.rate={UNLIMITED}}}"
        ))
    });
    // The cluster default lists only what it sets, at its own level only (Kafka's
    // `perBrokerConfig = false`), never a broker's own value.
    let defaults = ok(&cluster, &["configs", "describe", "--broker-defaults"]);
    assert_eq!(
        defaults,
        "Default configs for brokers in the cluster are:\n  \
         follower.replication.throttled.rate=2000000 sensitive=false synonyms=\
         {DYNAMIC_DEFAULT_BROKER_CONFIG:follower.replication.throttled.rate=2000000}\n"
    );
    let broker2 = ok(&cluster, &["configs", "describe", "--broker", "2", "--all"]);
    assert!(
        broker2.contains(&format!(
            "  leader.replication.throttled.rate={UNLIMITED} sensitive=false \
             synonyms={{DEFAULT_CONFIG:leader.replication.throttled.rate={UNLIMITED}}}\n"
        )),
        "{broker2}"
    );
    let (success, out) = gregor(
        &cluster,
        &[
            "configs",
            "alter",
            "--broker",
            "1",
            "--set",
            "log.retention.hours=1",
        ],
    );
    assert!(!success, "{out}");
    assert!(
        out.contains("Cannot update these configs dynamically"),
        "{out}"
    );
    ok(
        &cluster,
        &[
            "configs",
            "alter",
            "--broker",
            "1",
            "--delete",
            "leader.replication.throttled.rate",
        ],
    );
    let dynamic = ok(&cluster, &["configs", "describe", "--broker", "1"]);
    assert!(
        !dynamic.contains("leader.replication.throttled.rate"),
        "{dynamic}"
    );

    // topics alter: more partitions and a config in one command.
    ok(
        &cluster,
        &[
            "topics",
            "alter",
            "t",
            "--partitions",
            "5",
            "--config",
            "cleanup.policy=compact",
        ],
    );
    wait_until(WAIT, "t to have 5 partitions", || {
        partition_count(&mut client, "t") == 5
    });
    let described = ok(&cluster, &["configs", "describe", "--topic", "t"]);
    assert!(described.contains("cleanup.policy=compact"), "{described}");
    let (success, out) = gregor(&cluster, &["topics", "alter", "t", "--partitions", "3"]);
    assert!(!success && out.contains("InvalidPartitions"), "{out}");
}

#[test]
fn a_throttled_reassignment_moves_a_partition_at_the_throttled_rate_and_lifts_the_throttle() {
    let mut cluster = Cluster::start(Coordinator::Gregor, 3, &[]);
    cluster.add_broker(4, &[]);
    cluster.wait_for_broker(3);
    let mut client = cluster.client(0);
    assert_eq!(client.create_topic("moving", 1, 2, &[]), 0);
    wait_until(WAIT, "moving-0 to have a leader", || {
        partition(&mut client, "moving", 0).2 >= 0
    });
    let (before, _, leader) = partition(&mut client, "moving", 0);
    let mut leader_client =
        Client::connect(&cluster.brokers[cluster.broker_index(leader)].addr()).unwrap();
    // 2 MB in 64 KB batches.
    let value = vec![b'x'; 16 * 1024];
    let values: Vec<&[u8]> = (0..4).map(|_| value.as_slice()).collect();
    for _ in 0..32 {
        // NOT_LEADER_OR_FOLLOWER (6) while the leader learns of its leadership: retriable.
        wait_until(WAIT, "a produce to moving-0", || {
            let (code, _) =
                leader_client.produce("moving", 0, batch(&values, Compression::None), -1);
            assert!(code == 0 || code == 6, "produce error {code}");
            code == 0
        });
    }
    let target: Vec<i32> = (1..=4).filter(|b| !before.contains(b)).take(2).collect();
    let target_arg = target
        .iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    const RATE: u64 = 500_000;

    let started = Instant::now();
    let out = ok(
        &cluster,
        &[
            "reassign",
            "--topic",
            "moving",
            "--partition",
            "0",
            "--replicas",
            &target_arg,
            "--throttle",
            &RATE.to_string(),
            "--timeout-ms",
            "120000",
        ],
    );
    let took = started.elapsed();
    eprintln!("reassignment took {took:?}:\n{out}");
    assert!(
        out.contains("Throttled the moves' replication at 500000 bytes/s"),
        "{out}"
    );
    assert!(out.contains("Started moving moving-0."), "{out}");
    assert!(
        out.contains("moving-0: replicas "),
        "progress is shown:\n{out}"
    );
    assert!(
        out.contains(&format!(
            "Reassignment of moving-0 complete: replicas {target_arg}"
        )),
        "{out}"
    );
    assert!(out.contains("Removed the replication throttles."), "{out}");
    // Two new replicas copy 2 MB each, 4 MB out of the leader at 500 KB/s: about eight
    // seconds, never less than a few (one second's worth and one fetch per follower may
    // go before the rate is measured over them); unthrottled it takes well under one.
    assert!(
        took >= Duration::from_secs(3),
        "2 MB moved twice in {took:?} despite a {RATE} B/s throttle"
    );

    let (replicas, isr, leader) = partition(&mut client, "moving", 0);
    assert_eq!(replicas, target);
    assert!(isr.iter().all(|b| target.contains(b)), "isr {isr:?}");
    assert!(target.contains(&leader));
    // Every record is on the new leader.
    let mut new_leader =
        Client::connect(&cluster.brokers[cluster.broker_index(leader)].addr()).unwrap();
    let records = new_leader.read_all("moving", 0, 0);
    assert_eq!(records.len(), 32 * 4);
    assert!(records
        .iter()
        .all(|(_, v)| v.as_ref() == Some(&Bytes::from(value.clone()))));
    // The throttles are gone again: no dynamic broker config, no throttled replicas.
    for b in before.iter().chain(&target) {
        let dynamic = ok(
            &cluster,
            &["configs", "describe", "--broker", &b.to_string()],
        );
        assert!(!dynamic.contains("throttled.rate"), "broker {b}: {dynamic}");
    }
    let topic = ok(&cluster, &["configs", "describe", "--topic", "moving"]);
    assert!(!topic.contains("throttled.replicas"), "{topic}");
    assert!(
        ok(&cluster, &["reassign", "--list"]).contains("No partition reassignments in progress.")
    );
}

#[test]
fn elect_leaders_moves_leadership_back_to_the_preferred_replicas() {
    let mut cluster = Cluster::start(Coordinator::Gregor, 3, &[]);
    let mut client = cluster.client(0);
    assert_eq!(client.create_topic("e", 6, 3, &[]), 0);
    let preferred_everywhere = |client: &mut Client| {
        (0..6).all(|p| {
            let (replicas, isr, leader) = partition(client, "e", p);
            leader == replicas[0] && isr.len() == 3
        })
    };
    wait_until(WAIT, "every partition led by its preferred replica", || {
        preferred_everywhere(&mut client)
    });
    // Broker 1 dies: its partitions move; it comes back as a follower only.
    let i = cluster.broker_index(1);
    cluster.brokers[i].process.kill();
    let mut client = cluster.client(cluster.broker_index(2));
    wait_until(WAIT, "leaders to move off broker 1", || {
        (0..6).all(|p| partition(&mut client, "e", p).2 != 1)
    });
    cluster.brokers[i].process.start();
    cluster.wait_for_broker(i);
    wait_until(WAIT, "broker 1 back in every ISR", || {
        (0..6).all(|p| partition(&mut client, "e", p).1.contains(&1))
    });
    assert!(
        !preferred_everywhere(&mut client),
        "broker 1 leads nothing yet"
    );

    let out = ok(&cluster, &["elect-leaders", "--topic", "e"]);
    assert!(
        out.contains("Successfully completed leader election (PREFERRED) for partitions"),
        "{out}"
    );
    wait_until(WAIT, "preferred leaders everywhere", || {
        preferred_everywhere(&mut client)
    });
    // Nothing left to do: every partition answers "already elected".
    let again = ok(
        &cluster,
        &["elect-leaders", "--topic", "e", "--partition", "0"],
    );
    assert!(
        again.contains("Valid replica already elected for partitions e-0"),
        "{again}"
    );
}

/// Config changes and added partitions sent in a row through different brokers all
/// survive: each broker reads the current state from ZooKeeper, not from its own
/// metadata, which may not show the change another broker wrote a moment ago (it did:
/// a later config change dropped the earlier key, a later CreatePartitions failed as
/// "changed concurrently", a change to a topic just created elsewhere was refused as
/// unknown).
#[test]
fn admin_changes_through_different_brokers_in_a_row_all_survive() {
    const TOPIC: i8 = 2;
    const BROKER: i8 = 4;
    const DYNAMIC_TOPIC_CONFIG: i8 = 1;
    let cluster = Cluster::start(Coordinator::Gregor, 3, &[]);
    let mut clients: Vec<Client> = (0..3).map(|i| cluster.client(i)).collect();
    assert_eq!(clients[0].create_topic("c", 1, 3, &[]), 0);
    for c in clients.iter_mut() {
        wait_until(WAIT, "every broker to know topic c", || {
            partition_count(c, "c") == 1
        });
    }
    let wanted = [
        ("retention.ms", "3600000"),
        ("segment.ms", "7200000"),
        ("max.message.bytes", "2000000"),
        ("retention.bytes", "123456789"),
        ("delete.retention.ms", "1000"),
        ("file.delete.delay.ms", "2000"),
        ("flush.messages", "500"),
        ("min.insync.replicas", "2"),
        ("segment.bytes", "52428800"),
    ];
    for (i, (key, value)) in wanted.iter().enumerate() {
        assert_eq!(
            clients[i % 3].set_config(TOPIC, "c", key, value),
            0,
            "{key}"
        );
    }
    wait_until(WAIT, "every change in the topic's overrides", || {
        let now = clients[0].configs(TOPIC, "c");
        wanted.iter().all(|(k, v)| {
            now.iter().any(|(name, value, source)| {
                name == k && value == v && *source == DYNAMIC_TOPIC_CONFIG
            })
        })
    });

    // Partitions added through each broker in turn, each answered as soon as it is
    // written (timeout 0): each starts from what the previous one wrote, not from a
    // broker's metadata that may not show it yet.
    for (i, count) in (2..=7).enumerate() {
        assert_eq!(
            clients[i % 3].create_partitions("c", count, 0),
            0,
            "to {count}"
        );
    }
    wait_until(WAIT, "topic c to have 7 partitions", || {
        partition_count(&mut clients[0], "c") == 7
    });

    // A topic created through one broker (answered once written) is at once known to
    // the next broker's config change and the one after's CreatePartitions.
    for i in 0..6 {
        let name = format!("fresh-{i}");
        assert_eq!(clients[i % 3].create_topic_within(&name, 1, 3, &[], 0), 0);
        let set = clients[(i + 1) % 3].set_config(TOPIC, &name, "retention.ms", "1000");
        assert_eq!(set, 0, "{name}: config change");
        let grown = clients[(i + 2) % 3].create_partitions(&name, 2, 0);
        assert_eq!(grown, 0, "{name}: more partitions");
    }

    // The cluster-wide dynamic broker default, through two brokers in a row.
    let rates = [
        ("leader.replication.throttled.rate", "1000000"),
        ("follower.replication.throttled.rate", "2000000"),
    ];
    for (i, (key, value)) in rates.iter().enumerate() {
        assert_eq!(
            clients[i + 1].set_config(BROKER, "", key, value),
            0,
            "{key}"
        );
    }
    wait_until(WAIT, "both rates in the broker default", || {
        let now = clients[0].configs(BROKER, "");
        rates
            .iter()
            .all(|(k, v)| now.iter().any(|(name, value, _)| name == k && value == v))
    });
}
