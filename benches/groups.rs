//! Group coordinator benchmarks (no assertions) against a real `gregor zookeeper` +
//! `gregor broker` on loopback:
//!
//! - rebalance: time from N members (3 and 20) sending their first JoinGroup to every one
//!   of them holding its assignment from SyncGroup in one common generation, with the
//!   broker's `group.initial.rebalance.delay.ms` at 0 (members that join late make the
//!   others rejoin, as real consumers do on REBALANCE_IN_PROGRESS);
//! - offset commits per second: OffsetCommit round trips (one partition each, acks=all
//!   through `__consumer_offsets`) from 1 and from 8 connections.
//!
//! `GREGOR_BENCH_ROUNDS` sets the rebalance repetitions (default 5).

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use gregor::client::KafkaConnection;
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTopic;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};

const T: Duration = Duration::from_secs(60);
const PARTITIONS: i32 = 60;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(exe: &str, args: &[&str], log: &Path) -> Proc {
    let out = std::fs::File::create(log).unwrap();
    let err = out.try_clone().unwrap();
    Proc(
        Command::new(exe)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap(),
    )
}

fn wait_port(port: u16) {
    let deadline = Instant::now() + T;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "port {port} never opened");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn subscription() -> Bytes {
    let sub = ConsumerProtocolSubscription::default().with_topics(vec![s("bench")]);
    let mut out = BytesMut::new();
    out.put_i16(1);
    sub.encode(&mut out, 1).unwrap();
    out.freeze()
}

fn assignment(parts: Vec<i32>) -> Bytes {
    let a = ConsumerProtocolAssignment::default().with_assigned_partitions(vec![
        AssignedTopic::default()
            .with_topic(TopicName(s("bench")))
            .with_partitions(parts),
    ]);
    let mut out = BytesMut::new();
    out.put_i16(1);
    a.encode(&mut out, 1).unwrap();
    out.freeze()
}

async fn connect(addr: &str) -> KafkaConnection {
    KafkaConnection::connect(addr, "bench", Duration::from_secs(10))
        .await
        .unwrap()
}

/// Waits until the broker answers FindCoordinator for `group` and has loaded it.
async fn ready(addr: &str, group: &str) {
    let mut c = connect(addr).await;
    let deadline = Instant::now() + T;
    loop {
        let r = c
            .send(&FindCoordinatorRequest::default().with_key(s(group)), 3, T)
            .await
            .unwrap();
        if r.error_code == 0 {
            let d = c
                .send(
                    &DescribeGroupsRequest::default().with_groups(vec![GroupId(s(group))]),
                    5,
                    T,
                )
                .await
                .unwrap();
            if d.groups[0].error_code == 0 {
                return;
            }
        }
        assert!(Instant::now() < deadline, "coordinator never ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn join_req(group: &str, member: &str) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_member_id(s(member))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(30_000)
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(s("range"))
            .with_metadata(subscription())])
}

/// One member: joins, syncs (assigning as leader), and rejoins whenever told to, until
/// `done` says the group settled. Reports each generation it completed.
async fn member(
    addr: String,
    group: String,
    n: usize,
    settled: Arc<tokio::sync::watch::Sender<Vec<(i32, usize)>>>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut c = connect(&addr).await;
    let mut id = String::new();
    loop {
        let mut r = c.send(&join_req(&group, &id), 7, T).await.unwrap();
        if r.error_code == 79 {
            id = r.member_id.to_string();
            r = c.send(&join_req(&group, &id), 7, T).await.unwrap();
        }
        if r.error_code != 0 {
            continue;
        }
        id = r.member_id.to_string();
        let generation = r.generation_id;
        let mut assignments = Vec::new();
        if !r.members.is_empty() {
            let ids: Vec<String> = r.members.iter().map(|m| m.member_id.to_string()).collect();
            for (i, m) in ids.iter().enumerate() {
                let parts = (0..PARTITIONS)
                    .filter(|p| *p as usize % ids.len() == i)
                    .collect();
                assignments.push(
                    SyncGroupRequestAssignment::default()
                        .with_member_id(s(m))
                        .with_assignment(assignment(parts)),
                );
            }
        }
        let group_size = r.members.len();
        let sr = c
            .send(
                &SyncGroupRequest::default()
                    .with_group_id(GroupId(s(&group)))
                    .with_generation_id(generation)
                    .with_member_id(s(&id))
                    .with_protocol_type(Some(s("consumer")))
                    .with_protocol_name(Some(s("range")))
                    .with_assignments(assignments),
                5,
                T,
            )
            .await
            .unwrap();
        if sr.error_code == 0 {
            settled.send_modify(|v| v.push((generation, group_size)));
        }
        // Heartbeat until a rebalance starts or the round is over.
        loop {
            if *stop.borrow() {
                return;
            }
            let hb = c
                .send(
                    &HeartbeatRequest::default()
                        .with_group_id(GroupId(s(&group)))
                        .with_generation_id(generation)
                        .with_member_id(s(&id)),
                    4,
                    T,
                )
                .await
                .unwrap();
            if hb.error_code != 0 {
                break;
            }
            let _ = tokio::time::timeout(Duration::from_millis(20), stop.changed()).await;
        }
        let _ = n;
    }
}

/// Time until all `n` members hold assignments of one generation the leader built for `n`.
async fn rebalance_round(addr: &str, group: &str, n: usize) -> Duration {
    let (tx, mut rx) = tokio::sync::watch::channel(Vec::<(i32, usize)>::new());
    let tx = Arc::new(tx);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let start = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            tokio::spawn(member(
                addr.to_string(),
                group.to_string(),
                n,
                tx.clone(),
                stop_rx.clone(),
            ))
        })
        .collect();
    let elapsed = loop {
        {
            let v = rx.borrow_and_update();
            let full: Vec<i32> = v
                .iter()
                .filter(|(_, size)| *size == n)
                .map(|(g, _)| *g)
                .collect();
            if let Some(g) = full.last() {
                if v.iter().filter(|(gen, _)| gen == g).count() == n {
                    break start.elapsed();
                }
            }
        }
        tokio::time::timeout(T, rx.changed())
            .await
            .unwrap()
            .unwrap();
    };
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    elapsed
}

async fn commits_per_second(addr: &str, connections: usize, duration: Duration) -> f64 {
    let count = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + duration;
    let tasks: Vec<_> = (0..connections)
        .map(|i| {
            let addr = addr.to_string();
            let count = count.clone();
            tokio::spawn(async move {
                let mut c = connect(&addr).await;
                let mut offset = 0i64;
                while Instant::now() < deadline {
                    offset += 1;
                    let r = c
                        .send(
                            &OffsetCommitRequest::default()
                                .with_group_id(GroupId(s("bench-commits")))
                                .with_generation_id_or_member_epoch(-1)
                                .with_topics(vec![OffsetCommitRequestTopic::default()
                                    .with_name(TopicName(s("bench")))
                                    .with_partitions(vec![
                                        OffsetCommitRequestPartition::default()
                                            .with_partition_index(i as i32 % PARTITIONS)
                                            .with_committed_offset(offset),
                                    ])]),
                            8,
                            T,
                        )
                        .await
                        .unwrap();
                    assert_eq!(r.topics[0].partitions[0].error_code, 0);
                    count.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let start = Instant::now();
    for t in tasks {
        t.await.unwrap();
    }
    count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64().max(duration.as_secs_f64())
}

fn main() {
    let exe = env!("CARGO_BIN_EXE_gregor");
    let dir = tempfile::tempdir().unwrap();
    let zk_port = free_port();
    let port = free_port();
    let zk_cfg = dir.path().join("zk.toml");
    std::fs::write(
        &zk_cfg,
        format!(
            "client_port = {zk_port}\ndata_dir = \"{}\"\ntick_time_ms = 500\nmin_session_timeout_ms = 1000\n",
            dir.path().join("zk").display()
        ),
    )
    .unwrap();
    let _zk = spawn(
        exe,
        &["zookeeper", "--config", zk_cfg.to_str().unwrap()],
        &dir.path().join("zk.log"),
    );
    wait_port(zk_port);
    let cfg = dir.path().join("broker.toml");
    std::fs::write(
        &cfg,
        format!(
            "broker.id = 1\nlisteners = \"PLAINTEXT://127.0.0.1:{port}\"\nlog.dirs = \"{}\"\nzookeeper.connect = \"127.0.0.1:{zk_port}\"\noffsets.topic.replication.factor = 1\ngroup.initial.rebalance.delay.ms = 0\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let _broker = spawn(
        exe,
        &["broker", "--config", cfg.to_str().unwrap()],
        &dir.path().join("broker.log"),
    );
    wait_port(port);
    let addr = format!("127.0.0.1:{port}");
    let rounds: usize = std::env::var("GREGOR_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut c = connect(&addr).await;
        let deadline = Instant::now() + T;
        loop {
            let r = c
                .send(
                    &CreateTopicsRequest::default()
                        .with_topics(vec![CreatableTopic::default()
                            .with_name(TopicName(s("bench")))
                            .with_num_partitions(PARTITIONS)
                            .with_replication_factor(1)])
                        .with_timeout_ms(30_000),
                    7,
                    T,
                )
                .await
                .unwrap();
            if r.topics[0].error_code == 0 || r.topics[0].error_code == 36 {
                break;
            }
            assert!(Instant::now() < deadline, "cannot create the bench topic");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for n in [3usize, 20] {
            let mut times = Vec::new();
            for round in 0..rounds {
                let group = format!("bench-{n}-{round}");
                ready(&addr, &group).await;
                times.push(rebalance_round(&addr, &group, n).await);
            }
            times.sort();
            println!(
                "rebalance, {n:>2} members: median {:>7.1} ms  min {:>7.1} ms  max {:>7.1} ms  ({rounds} rounds, join to every member assigned)",
                times[times.len() / 2].as_secs_f64() * 1e3,
                times[0].as_secs_f64() * 1e3,
                times[times.len() - 1].as_secs_f64() * 1e3,
            );
        }
        ready(&addr, "bench-commits").await;
        for conns in [1usize, 8] {
            let rate = commits_per_second(&addr, conns, Duration::from_secs(3)).await;
            println!("offset commits, {conns} connection(s): {rate:>9.0} commits/s (acks=all, 1 partition per commit)");
        }
    });
}
