//! Failing disks (issue 8), with real `gregor zookeeper` + `gregor broker` processes:
//!
//! - a log directory on a small tmpfs fills up during acks=all produce: the failed append
//!   is rolled back, the directory goes offline (the broker, whose only directory it is,
//!   halts as Kafka does); after the filesystem is grown and the broker restarted every
//!   acknowledged record is there exactly once, in order, with no offset used twice;
//! - a failing fsync (the storage fault hook: `GREGOR_TEST_STORAGE_FAULTS=1` plus a
//!   `gregor-fail-fsync` file in the log directory) on the leader of an RF3 partition:
//!   its directory goes offline, clients see KAFKA_STORAGE_ERROR / NOT_LEADER, another
//!   replica leads and acks=all writes continue there, nothing acknowledged is lost;
//! - a topic deleted and re-created while a replica's broker is down: when it comes back
//!   it renames its old log aside for deletion and replicates the new topic instead of
//!   serving the old one's records (KIP-516).

mod common;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::kafka::{batch, topic_name, Client};
use common::{wait_until, Cluster, Coordinator, ZooKeeper};
use kafka_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{BrokerId, CreateTopicsRequest, ProduceRequest};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;

const KAFKA_STORAGE_ERROR: i16 = 56;
const NOT_LEADER_OR_FOLLOWER: i16 = 6;

/// One acks=all produce of `value`: Ok(offset) or Err(error code, -1 = no answer).
fn produce_one(c: &mut Client, topic: &str, value: &[u8]) -> Result<i64, i16> {
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(batch(&[value], Compression::None)))])]);
    match c.send(&req, 9) {
        Ok(resp) => {
            let p = &resp.responses[0].partition_responses[0];
            if p.error_code == 0 {
                Ok(p.base_offset)
            } else {
                Err(p.error_code)
            }
        }
        Err(_) => Err(-1),
    }
}

/// Reads the whole partition (retrying while leadership settles): (offset, value).
fn read_everything(addrs: &[String], topic: &str) -> Vec<(i64, String)> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for addr in addrs {
            let Ok(mut c) = Client::connect(addr) else {
                continue;
            };
            let got =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| c.read_all(topic, 0, 0)));
            if let Ok(records) = got {
                return records
                    .into_iter()
                    .map(|(o, v)| {
                        (
                            o,
                            String::from_utf8(v.unwrap_or_default().to_vec()).unwrap(),
                        )
                    })
                    .collect();
            }
        }
        assert!(Instant::now() < deadline, "no broker served {topic}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Every acknowledged value exactly once, in acknowledgement order; offsets strictly
/// increasing; no value (acknowledged or not) twice.
fn assert_acked_once_in_order(acked: &[(i64, String)], got: &[(i64, String)]) {
    assert!(
        got.windows(2).all(|w| w[0].0 < w[1].0),
        "offsets not strictly increasing"
    );
    let mut seen = HashSet::new();
    for (_, v) in got {
        assert!(seen.insert(v.clone()), "duplicate record {v}");
    }
    let index: BTreeMap<&str, (usize, i64)> = got
        .iter()
        .enumerate()
        .map(|(i, (o, v))| (v.as_str(), (i, *o)))
        .collect();
    let mut last = None;
    for (offset, v) in acked {
        let &(pos, o) = index
            .get(v.as_str())
            .unwrap_or_else(|| panic!("acknowledged {v} (offset {offset}) lost"));
        assert_eq!(o, *offset, "{v} moved from its acknowledged offset");
        assert!(last.is_none_or(|l| l < pos), "{v} out of order");
        last = Some(pos);
    }
}

/// The first "log directory failed" line of a broker log (says what failed first).
fn first_dir_failure(log: &str) -> &str {
    log.lines()
        .find(|l| l.contains("log directory failed; taking it offline"))
        .unwrap_or("")
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A tmpfs mounted for the test, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(path).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(path.to_path_buf()))
    }

    fn resize(&self, size: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "remount {} failed", self.0.display());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn disk_full_during_acks_all_produce_loses_and_duplicates_nothing() {
    if !is_root() {
        eprintln!("SKIPPED disk_full_during_acks_all_produce_loses_and_duplicates_nothing: needs root to mount a tmpfs");
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("gregor-test-")
        .tempdir()
        .unwrap();
    let zk = ZooKeeper::start(Coordinator::Gregor, dir.path());
    let mut cluster = Cluster {
        dir,
        zk,
        brokers: Vec::new(),
    };
    // The broker's only log directory (the harness puts it at <dir>/broker-1) on a 3 MiB
    // filesystem.
    let Some(fs) = Tmpfs::mount(&cluster.dir.path().join("broker-1"), "3m") else {
        eprintln!("SKIPPED disk_full_during_acks_all_produce_loses_and_duplicates_nothing: mount -t tmpfs failed");
        return;
    };
    cluster.add_broker(1, &[("log.segment.bytes", "524288")]);
    cluster.wait_for_broker(0);
    let mut c = cluster.client(0);
    assert_eq!(c.create_topic("full", 1, 1, &[]), 0);
    wait_until(Duration::from_secs(30), "a leader", || {
        c.leader("full", 0) == 1
    });

    // Produce 4 KiB values until the disk is full.
    let padding = "x".repeat(4096);
    let mut acked: Vec<(i64, String)> = Vec::new();
    let mut failure = None;
    for i in 0..10_000 {
        let v = format!("v{i}-{padding}");
        match produce_one(&mut c, "full", v.as_bytes()) {
            Ok(offset) => acked.push((offset, v)),
            Err(code) => {
                failure = Some(code);
                break;
            }
        }
    }
    let failure = failure.expect("a 3 MiB filesystem must fill up");
    eprintln!(
        "{} records acknowledged before the disk filled; the failed produce got {failure}",
        acked.len()
    );
    assert!(acked.len() > 50, "progress before the disk filled");
    assert!(
        failure == KAFKA_STORAGE_ERROR || failure == -1,
        "a full disk answers KAFKA_STORAGE_ERROR (or the broker halted first), got {failure}"
    );
    // Its only log directory is offline: the broker halts (Kafka's "all log dirs have
    // failed").
    wait_until(Duration::from_secs(30), "the broker to halt", || {
        !cluster.brokers[0].process.is_running()
    });
    let log = std::fs::read_to_string(&cluster.brokers[0].process.log).unwrap();
    assert!(
        first_dir_failure(&log).contains("partition full-0")
            && first_dir_failure(&log).contains("No space left on device"),
        "the full disk failed the partition's append first:\n{}",
        first_dir_failure(&log)
    );
    assert!(
        log.contains("rolled back a failed append"),
        "the half-written append was rolled back"
    );
    assert!(
        log.contains("all log directories have failed"),
        "the broker log tells why it stopped"
    );

    // More space, restart: recovery keeps every acknowledged record exactly once.
    fs.resize("64m");
    cluster.brokers[0].process.kill(); // reap the exited process
    cluster.brokers[0].process.start();
    cluster.wait_for_broker(0);
    let got = read_everything(&[cluster.brokers[0].addr()], "full");
    assert_acked_once_in_order(&acked, &got);
    assert!(
        got.len() <= acked.len() + 1,
        "at most the one unacknowledged write may be there"
    );
    // And it takes writes again, at the next offset.
    let mut c = cluster.client(0);
    let next = produce_one(&mut c, "full", b"after").expect("produce after the restart");
    assert_eq!(next, got.last().map_or(0, |(o, _)| o + 1));
    cluster.brokers[0].process.kill();
    drop(fs);
}

#[test]
fn failing_fsync_takes_the_dir_offline_and_leadership_moves() {
    // The fault hook is read once per broker process at its first fsync.
    std::env::set_var("GREGOR_TEST_STORAGE_FAULTS", "1");
    let mut cluster = Cluster::start(Coordinator::Gregor, 3, &[("min.insync.replicas", "2")]);
    let mut c = cluster.client(0);
    // flush.messages=1: every append is fsynced, so the fault shows at the next write.
    assert_eq!(c.create_topic("fsync", 1, 3, &[("flush.messages", "1")]), 0);
    wait_until(Duration::from_secs(30), "full ISR", || {
        let md = c.metadata(Some(&["fsync"])).expect("metadata");
        md.topics[0]
            .partitions
            .first()
            .is_some_and(|p| p.isr_nodes.len() == 3 && p.leader_id.0 > 0)
    });
    let first_leader = c.leader("fsync", 0);
    let addrs: Vec<String> = cluster.brokers.iter().map(|b| b.addr()).collect();

    // A producer that follows the leader and never re-sends a value (so an
    // unacknowledged write that did land cannot be duplicated by us).
    let acked: Arc<Mutex<Vec<(i64, String)>>> = Arc::default();
    let errors: Arc<Mutex<Vec<i16>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let producer = {
        let (acked, errors, stop, addrs) =
            (acked.clone(), errors.clone(), stop.clone(), addrs.clone());
        std::thread::spawn(move || {
            let mut i = 0u64;
            let mut conn: Option<(i32, Client)> = None;
            while !stop.load(Ordering::Relaxed) {
                if conn.is_none() {
                    conn = find_leader(&addrs, "fsync");
                    if conn.is_none() {
                        std::thread::sleep(Duration::from_millis(50));
                        continue;
                    }
                }
                let v = format!("w{i}");
                i += 1;
                let (_, c) = conn.as_mut().unwrap();
                match produce_one(c, "fsync", v.as_bytes()) {
                    Ok(offset) => acked.lock().unwrap().push((offset, v)),
                    Err(code) => {
                        errors.lock().unwrap().push(code);
                        conn = None;
                    }
                }
            }
        })
    };
    let acked_count = || acked.lock().unwrap().len();
    wait_until(Duration::from_secs(30), "acks before the fault", || {
        acked_count() >= 50
    });

    // The leader's next fsync fails.
    let li = cluster.broker_index(first_leader);
    std::fs::write(cluster.brokers[li].data.join("gregor-fail-fsync"), b"").unwrap();
    let at_fault = acked_count();
    wait_until(Duration::from_secs(30), "the failed broker to halt", || {
        !cluster.brokers[li].process.is_running()
    });
    let log = std::fs::read_to_string(&cluster.brokers[li].process.log).unwrap();
    assert!(
        first_dir_failure(&log).contains("partition fsync-0")
            && first_dir_failure(&log).contains("Input/output error"),
        "the failed fsync of the partition's append took the directory offline:\n{}",
        cluster.brokers[li].process.log_tail(30)
    );
    // Another replica leads and acks=all writes continue there.
    let others: Vec<String> = (0..3)
        .filter(|&i| i != li)
        .map(|i| cluster.brokers[i].addr())
        .collect();
    wait_until(Duration::from_secs(60), "a new leader", || {
        find_leader(&others, "fsync").is_some_and(|(id, _)| id != first_leader)
    });
    wait_until(
        Duration::from_secs(60),
        "acks=all writes on the new leader",
        || acked_count() >= at_fault + 50,
    );
    stop.store(true, Ordering::Relaxed);
    producer.join().unwrap();

    let errors = errors.lock().unwrap().clone();
    eprintln!(
        "{} acknowledged, errors seen by the producer: {errors:?}",
        acked_count()
    );
    assert!(!errors.is_empty(), "the fault was visible to the producer");
    for e in &errors {
        assert!(
            [KAFKA_STORAGE_ERROR, NOT_LEADER_OR_FOLLOWER, -1].contains(e),
            "unexpected error {e}: clients get KAFKA_STORAGE_ERROR or NOT_LEADER"
        );
    }
    let acked = acked.lock().unwrap().clone();
    let got = read_everything(&others, "fsync");
    assert_acked_once_in_order(&acked, &got);
}

/// A client on the broker that currently leads `topic`-0, with its id.
fn find_leader(addrs: &[String], topic: &str) -> Option<(i32, Client)> {
    for addr in addrs {
        let Ok(mut c) = Client::connect(addr) else {
            continue;
        };
        let Ok(md) = c.metadata(Some(&[topic])) else {
            continue;
        };
        let leader = md.topics.first()?.partitions.first()?.leader_id.0;
        if leader < 0 {
            continue;
        }
        let broker = md.brokers.iter().find(|b| b.node_id.0 == leader)?;
        let addr = format!("{}:{}", broker.host, broker.port);
        if let Ok(lc) = Client::connect(&addr) {
            return Some((leader, lc));
        }
    }
    None
}

#[test]
fn recreated_topic_is_never_served_from_the_old_log() {
    let mut cluster = Cluster::start(Coordinator::Gregor, 2, &[]);
    let mut c = cluster.client(0);
    let zk_addr = cluster.zk.connect_string();
    // A runtime of its own thread, so the test's ZooKeeper session keeps pinging while
    // the test waits.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let zk = rt
        .block_on(zookeeper_client::Client::connect(&zk_addr))
        .expect("zookeeper");

    // Old topic on brokers 1 and 2, with more records than the new one will get.
    let assignment = BTreeMap::from([(0, vec![1, 2])]);
    create_topic_znode(&rt, &zk, "reborn", uuid::Uuid::new_v4(), &assignment);
    wait_until(
        Duration::from_secs(30),
        "old topic fully replicated",
        || isr_of(&mut c, "reborn").len() == 2,
    );
    let leader = c.leader("reborn", 0);
    let mut lc = cluster.client(cluster.broker_index(leader));
    for i in 0..20 {
        produce_one(&mut lc, "reborn", format!("old-{i}").as_bytes()).expect("old produce");
    }
    // Broker 2 goes down, the topic is deleted and re-created with a new id, still
    // assigned to broker 2 (as a ZooKeeper-mode admin tool may do).
    let b2 = cluster.broker_index(2);
    let b2_part_dir = cluster.brokers[b2].data.join("reborn-0");
    wait_until(
        Duration::from_secs(30),
        "broker 2 to have the old data",
        || dir_size(&b2_part_dir) > 0,
    );
    cluster.brokers[b2].process.kill();
    wait_until(
        Duration::from_secs(30),
        "broker 2's session to expire",
        || {
            c.metadata(None)
                .is_ok_and(|md| md.brokers.iter().all(|b| b.node_id.0 != 2))
        },
    );
    rt.block_on(zk.create(
        "/admin/delete_topics/reborn",
        &[],
        &zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all()),
    ))
    .expect("request deletion");
    wait_until(
        Duration::from_secs(30),
        "the old topic to be deleted",
        || {
            rt.block_on(zk.check_stat("/brokers/topics/reborn"))
                .unwrap()
                .is_none()
                && rt
                    .block_on(zk.check_stat("/admin/delete_topics/reborn"))
                    .unwrap()
                    .is_none()
        },
    );
    let new_id = uuid::Uuid::new_v4();
    create_topic_znode(&rt, &zk, "reborn", new_id, &assignment);
    wait_until(
        Duration::from_secs(30),
        "the new topic led by broker 1",
        || c.leader("reborn", 0) == 1,
    );
    let mut lc = cluster.client(0);
    let mut acked = Vec::new();
    for i in 0..5 {
        let v = format!("new-{i}");
        let o = produce_one(&mut lc, "reborn", v.as_bytes()).expect("new produce");
        acked.push((o, v));
    }

    // Broker 2 returns: it must replicate the new topic, not keep the old log.
    cluster.brokers[b2].process.start();
    cluster.wait_for_broker(b2);
    wait_until(Duration::from_secs(60), "broker 2 back in the ISR", || {
        isr_of(&mut c, "reborn").contains(&2)
    });
    let metadata = std::fs::read_to_string(b2_part_dir.join("partition.metadata")).unwrap();
    assert!(
        metadata.contains(&gregor::coordination::znodes::encode_topic_id(new_id)),
        "broker 2's log is the new topic's: {metadata}"
    );
    let log = std::fs::read_to_string(&cluster.brokers[b2].process.log).unwrap();
    assert!(
        log.contains("renaming it for deletion"),
        "the old log was renamed aside"
    );
    let leftovers: Vec<String> = std::fs::read_dir(&cluster.brokers[b2].data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("reborn-0.") && n.ends_with("-delete"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "the renamed old log was removed: {leftovers:?}"
    );

    // Make broker 2 the only one left: what it serves is exactly the new topic.
    cluster.brokers[0].process.kill();
    let addr2 = cluster.brokers[b2].addr();
    let mut c2 = Client::connect(&addr2).unwrap();
    wait_until(Duration::from_secs(60), "broker 2 leads", || {
        c2.leader("reborn", 0) == 2
    });
    let got = read_everything(&[addr2], "reborn");
    assert!(
        got.iter().all(|(_, v)| !v.starts_with("old-")),
        "broker 2 served the deleted topic's records: {got:?}"
    );
    assert_eq!(got, acked);
}

fn isr_of(c: &mut Client, topic: &str) -> Vec<i32> {
    let Ok(md) = c.metadata(Some(&[topic])) else {
        return Vec::new();
    };
    md.topics
        .first()
        .and_then(|t| t.partitions.first())
        .map(|p| p.isr_nodes.iter().map(|b| b.0).collect())
        .unwrap_or_default()
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Creates `/brokers/topics/<topic>` the way ZooKeeper-mode admin tools do (they do not
/// require the assigned brokers to be alive).
fn create_topic_znode(
    rt: &tokio::runtime::Runtime,
    zk: &zookeeper_client::Client,
    topic: &str,
    id: uuid::Uuid,
    assignment: &BTreeMap<i32, Vec<i32>>,
) {
    let options =
        zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all());
    let data = gregor::coordination::znodes::TopicZnode::new(id, assignment).encode();
    rt.block_on(zk.create(&format!("/brokers/topics/{topic}"), &data, &options))
        .expect("create topic znode");
}

/// One acks=all produce of `value` to `topic`-`partition`.
fn produce_to(c: &mut Client, topic: &str, partition: i32, value: &[u8]) -> Result<i64, i16> {
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(batch(&[value], Compression::None)))])]);
    match c.send(&req, 9) {
        Ok(resp) => {
            let p = &resp.responses[0].partition_responses[0];
            if p.error_code == 0 {
                Ok(p.base_offset)
            } else {
                Err(p.error_code)
            }
        }
        Err(_) => Err(-1),
    }
}

/// (leader, isr) of `topic`-`partition` as `c` sees it.
fn leader_and_isr(c: &mut Client, topic: &str, partition: i32) -> (i32, Vec<i32>) {
    let Ok(md) = c.metadata(Some(&[topic])) else {
        return (-1, Vec::new());
    };
    md.topics
        .first()
        .and_then(|t| t.partitions.iter().find(|p| p.partition_index == partition))
        .map(|p| (p.leader_id.0, p.isr_nodes.iter().map(|b| b.0).collect()))
        .unwrap_or((-1, Vec::new()))
}

#[test]
fn failed_dir_of_a_multi_dir_broker_moves_only_its_partitions() {
    std::env::set_var("GREGOR_TEST_STORAGE_FAULTS", "1");
    let mut cluster = Cluster::start(Coordinator::Gregor, 0, &[]);
    // Broker 1 with two log directories; brokers 2 and 3 with one each.
    let root = cluster.dir.path().join("broker-1");
    let dirs = [root.join("d0"), root.join("d1")];
    let port = common::free_port();
    let config = cluster.dir.path().join("broker-1.toml");
    std::fs::write(
        &config,
        format!(
            "broker.id = 1\nlisteners = \"PLAINTEXT://127.0.0.1:{port}\"\nlog.dirs = \"{},{}\"\nzookeeper.connect = \"{}\"\nzookeeper.session.timeout.ms = 6000\noffsets.topic.replication.factor = 1\n\"min.insync.replicas\" = \"2\"\n",
            dirs[0].display(),
            dirs[1].display(),
            cluster.zk.connect_string()
        ),
    )
    .unwrap();
    let process = common::Process::spawn(
        "broker-1",
        Path::new(common::GREGOR),
        &[
            "broker".into(),
            "--config".into(),
            config.display().to_string(),
        ],
        cluster.dir.path().join("broker-1.log"),
    );
    cluster.brokers.push(common::Broker {
        id: 1,
        port,
        process,
        data: root.clone(),
        config,
    });
    cluster.wait_for_broker(0);
    for id in [2, 3] {
        cluster.add_broker(id, &[("min.insync.replicas", "2")]);
        cluster.wait_for_broker(id as usize - 1);
    }
    // Two partitions led by broker 1, every append fsynced.
    let mut c = cluster.client(0);
    // Every broker must be in broker 1's image: a manual assignment names live brokers.
    wait_until(
        Duration::from_secs(30),
        "three brokers in the metadata",
        || c.metadata(None).is_ok_and(|md| md.brokers.len() == 3),
    );
    let assignments = (0..2)
        .map(|p| {
            CreatableReplicaAssignment::default()
                .with_partition_index(p)
                .with_broker_ids(vec![BrokerId(1), BrokerId(2), BrokerId(3)])
        })
        .collect();
    let flush_every_append = CreatableTopicConfig::default()
        .with_name(StrBytes::from_static_str("flush.messages"))
        .with_value(Some(StrBytes::from_static_str("1")));
    let topic = CreatableTopic::default()
        .with_name(topic_name("multi"))
        .with_num_partitions(-1)
        .with_replication_factor(-1)
        .with_assignments(assignments)
        .with_configs(vec![flush_every_append]);
    let req = CreateTopicsRequest::default()
        .with_topics(vec![topic])
        .with_timeout_ms(30_000);
    let resp = c.send(&req, 7).expect("CreateTopics");
    assert_eq!(resp.topics[0].error_code, 0);
    for p in 0..2 {
        wait_until(
            Duration::from_secs(30),
            "led by broker 1 with a full ISR",
            || {
                let (leader, isr) = leader_and_isr(&mut c, "multi", p);
                leader == 1 && isr.len() == 3
            },
        );
    }
    // The partitions live in different directories of broker 1.
    let dir_of = |p: i32| {
        dirs.iter()
            .position(|d| d.join(format!("multi-{p}")).is_dir())
            .expect("partition directory")
    };
    let (d_keep, d_fail) = (dir_of(0), dir_of(1));
    assert_ne!(d_keep, d_fail, "one partition per directory");
    let mut acked: Vec<Vec<(i64, String)>> = vec![Vec::new(), Vec::new()];
    for i in 0..10 {
        for (p, acked) in acked.iter_mut().enumerate() {
            let v = format!("p{p}-before-{i}");
            let o = produce_to(&mut c, "multi", p as i32, v.as_bytes()).expect("produce");
            acked.push((o, v));
        }
    }

    // Partition 1's directory fails its next fsync.
    std::fs::write(dirs[d_fail].join("gregor-fail-fsync"), b"").unwrap();
    let err = produce_to(&mut c, "multi", 1, b"p1-at-fault").unwrap_err();
    assert_eq!(
        err, KAFKA_STORAGE_ERROR,
        "the failed fsync answers KAFKA_STORAGE_ERROR"
    );
    let broker_log = cluster.brokers[0].process.log.clone();
    wait_until(
        Duration::from_secs(10),
        "the directory failure logged",
        || {
            let log = std::fs::read_to_string(&broker_log).unwrap_or_default();
            !first_dir_failure(&log).is_empty()
        },
    );
    let log = std::fs::read_to_string(&broker_log).unwrap();
    assert!(
        first_dir_failure(&log).contains("partition multi-1"),
        "the append's failed fsync took the directory offline:\n{}",
        first_dir_failure(&log)
    );
    // Leadership of partition 1 moves away and broker 1 leaves its ISR; broker 1 stays up.
    wait_until(Duration::from_secs(30), "partition 1 led elsewhere", || {
        let (leader, isr) = leader_and_isr(&mut c, "multi", 1);
        leader > 1 && !isr.contains(&1)
    });
    assert!(
        cluster.brokers[0].process.is_running(),
        "one healthy dir left: no halt"
    );
    assert_eq!(
        produce_to(&mut c, "multi", 1, b"p1-to-offline").unwrap_err(),
        KAFKA_STORAGE_ERROR,
        "broker 1 answers KAFKA_STORAGE_ERROR for its offline replica"
    );
    let (new_leader, _) = leader_and_isr(&mut c, "multi", 1);
    let mut nc = cluster.client(cluster.broker_index(new_leader));
    for i in 0..10 {
        let v = format!("p1-after-{i}");
        let o = produce_to(&mut nc, "multi", 1, v.as_bytes()).expect("acks=all on the new leader");
        acked[1].push((o, v));
    }
    // Partition 0, in the healthy directory, is still led and written by broker 1.
    assert_eq!(leader_and_isr(&mut c, "multi", 0).0, 1);
    for i in 0..10 {
        let v = format!("p0-after-{i}");
        let o = produce_to(&mut c, "multi", 0, v.as_bytes()).expect("acks=all on broker 1");
        acked[0].push((o, v));
    }
    let read = |client: &mut Client, p: i32| -> Vec<(i64, String)> {
        client
            .read_all("multi", p, 0)
            .into_iter()
            .map(|(o, v)| {
                (
                    o,
                    String::from_utf8(v.unwrap_or_default().to_vec()).unwrap(),
                )
            })
            .collect()
    };
    assert_acked_once_in_order(&acked[0], &read(&mut c, 0));
    assert_acked_once_in_order(&acked[1], &read(&mut nc, 1));
}
