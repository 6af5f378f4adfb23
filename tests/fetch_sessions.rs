//! Incremental fetch sessions (KIP-227) against real brokers: a consumer's session
//! answers only partitions with news and Kafka's session errors; the cache honours
//! `max.incremental.fetch.session.cache.slots`; followers replicate through sessions.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::kafka::{batch, topic_name, Client};
use common::{free_port, wait_until, Cluster, Coordinator};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse};
use kafka_protocol::records::Compression;

const FETCH_SESSION_ID_NOT_FOUND: i16 = 70;
const INVALID_FETCH_SESSION_EPOCH: i16 = 71;

/// A consumer fetch of `partitions` of `topic` (each from its offset) in a session.
fn fetch(
    c: &mut Client,
    topic: &str,
    session: (i32, i32),
    partitions: &[(i32, i64)],
    forgotten: &[i32],
) -> FetchResponse {
    let mut req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(1 << 20)
        .with_session_id(session.0)
        .with_session_epoch(session.1);
    if !partitions.is_empty() {
        req.topics = vec![FetchTopic::default()
            .with_topic(topic_name(topic))
            .with_partitions(
                partitions
                    .iter()
                    .map(|(p, offset)| {
                        FetchPartition::default()
                            .with_partition(*p)
                            .with_fetch_offset(*offset)
                            .with_current_leader_epoch(-1)
                            .with_last_fetched_epoch(-1)
                            .with_partition_max_bytes(1 << 16)
                    })
                    .collect(),
            )];
    }
    if !forgotten.is_empty() {
        req.forgotten_topics_data = vec![ForgottenTopic::default()
            .with_topic(topic_name(topic))
            .with_partitions(forgotten.to_vec())];
    }
    c.send(&req, 12).expect("Fetch")
}

/// The partitions a response carries, with whether each has records.
fn carried(resp: &FetchResponse) -> Vec<(i32, bool)> {
    let mut out: Vec<(i32, bool)> = resp
        .responses
        .iter()
        .flat_map(|t| t.partitions.iter())
        .map(|p| {
            assert_eq!(p.error_code, 0, "partition {} error", p.partition_index);
            let has = p.records.as_ref().is_some_and(|r| !r.is_empty());
            (p.partition_index, has)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn a_consumer_session_answers_only_partitions_with_news() {
    let cluster = Cluster::start(Coordinator::Gregor, 1, &[]);
    let mut c = cluster.client(0);
    assert_eq!(c.create_topic("s", 4, 1, &[]), 0);
    for p in 0..2 {
        assert_eq!(
            c.produce("s", p, batch(&[b"a"], Compression::None), -1).0,
            0
        );
    }
    let all: Vec<(i32, i64)> = (0..4).map(|p| (p, 0)).collect();
    // Full request, epoch 0: a new session, every partition answered.
    let first = fetch(&mut c, "s", (0, 0), &all, &[]);
    assert_eq!(first.error_code, 0);
    let id = first.session_id;
    assert!(id > 0, "no session created");
    assert_eq!(
        carried(&first),
        vec![(0, true), (1, true), (2, false), (3, false)]
    );

    // Epoch 1: the consumer moved past the records of 0 and 1; nothing else is new.
    let second = fetch(&mut c, "s", (id, 1), &[(0, 1), (1, 1)], &[]);
    assert_eq!((second.error_code, second.session_id), (0, id));
    assert_eq!(carried(&second), vec![]);

    // A record on partition 2: epoch 2 names no partition and gets just that one.
    assert_eq!(
        c.produce("s", 2, batch(&[b"b"], Compression::None), -1).0,
        0
    );
    let third = fetch(&mut c, "s", (id, 2), &[], &[]);
    assert_eq!(carried(&third), vec![(2, true)]);

    // The same epoch again, an unknown session: Kafka's errors, nothing read.
    let again = fetch(&mut c, "s", (id, 2), &[], &[]);
    assert_eq!(again.error_code, INVALID_FETCH_SESSION_EPOCH);
    assert!(again.responses.is_empty());
    let unknown = fetch(&mut c, "s", (id.wrapping_add(1).max(1), 1), &[], &[]);
    assert_eq!(unknown.error_code, FETCH_SESSION_ID_NOT_FOUND);

    // Forget partition 3: its records are not answered any more.
    let fourth = fetch(&mut c, "s", (id, 3), &[(2, 1)], &[3]);
    assert_eq!(fourth.error_code, 0);
    assert_eq!(
        c.produce("s", 3, batch(&[b"c"], Compression::None), -1).0,
        0
    );
    let fifth = fetch(&mut c, "s", (id, 4), &[], &[]);
    assert_eq!(carried(&fifth), vec![]);

    // Epoch -1 closes the session and is answered in full, sessionless.
    let last = fetch(&mut c, "s", (id, -1), &[(3, 0)], &[]);
    assert_eq!((last.error_code, last.session_id), (0, 0));
    assert_eq!(carried(&last), vec![(3, true)]);
    let closed = fetch(&mut c, "s", (id, 5), &[], &[]);
    assert_eq!(closed.error_code, FETCH_SESSION_ID_NOT_FOUND);
}

#[test]
fn the_session_cache_keeps_at_most_its_slots() {
    let cluster = Cluster::start(
        Coordinator::Gregor,
        1,
        &[("max.incremental.fetch.session.cache.slots", "1")],
    );
    let mut a = cluster.client(0);
    let mut b = cluster.client(0);
    assert_eq!(a.create_topic("slots", 2, 1, &[]), 0);
    let first = fetch(&mut a, "slots", (0, 0), &[(0, 0), (1, 0)], &[]);
    assert!(first.session_id > 0);
    // The only slot holds a young consumer session: the second consumer is served in
    // full without a session, and the first keeps its session.
    let second = fetch(&mut b, "slots", (0, 0), &[(0, 0), (1, 0)], &[]);
    assert_eq!((second.error_code, second.session_id), (0, 0));
    assert_eq!(carried(&second), vec![(0, false), (1, false)]);
    let still = fetch(&mut a, "slots", (first.session_id, 1), &[], &[]);
    assert_eq!((still.error_code, still.session_id), (0, first.session_id));
}

/// The value of an unlabelled metric in a Prometheus scrape of `addr`.
fn metric(addr: &str, name: &str) -> Option<f64> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[test]
fn followers_replicate_through_incremental_sessions() {
    let mut cluster = Cluster::start(Coordinator::Gregor, 0, &[]);
    let mut metrics = Vec::new();
    for id in 1..=3 {
        let addr = format!("127.0.0.1:{}", free_port());
        cluster.add_broker(id, &[("metrics.listener", addr.as_str())]);
        metrics.push(addr);
    }
    for i in 0..3 {
        cluster.wait_for_broker(i);
    }
    let mut c = cluster.client(0);
    assert_eq!(
        c.create_topic("r", 6, 3, &[("min.insync.replicas", "3")]),
        0
    );
    // acks=all with min ISR 3: every append waits for both followers, which fetch it
    // through their sessions (a follower whose session answers were wrong would stall
    // and fail these produces).
    for round in 0..20 {
        for p in 0..6 {
            let leader = cluster.broker_index(c.leader("r", p));
            let mut l = cluster.client(leader);
            let value = format!("{round}-{p}");
            let (err, offset) =
                l.produce("r", p, batch(&[value.as_bytes()], Compression::None), -1);
            assert_eq!((err, offset), (0, round));
        }
    }
    // Every broker leads some of the six partitions and so holds the sessions of the two
    // followers fetching from it (Kafka's metric names).
    wait_until(
        Duration::from_secs(30),
        "two follower sessions per broker",
        || {
            metrics.iter().all(|addr| {
                metric(
                    addr,
                    "kafka_server_fetchsessioncache_numincrementalfetchsessions",
                ) == Some(2.0)
            })
        },
    );
    for addr in &metrics {
        let cached = metric(
            addr,
            "kafka_server_fetchsessioncache_numincrementalfetchpartitionscached",
        )
        .unwrap();
        assert!(cached >= 2.0, "{addr}: {cached} partitions cached");
        // Two followers, each keeping one session through all those fetch rounds (a
        // session refused or reset every round would be recreated every round).
        let created = metric(addr, "gregor_fetch_session_creations_total").unwrap();
        assert!(created <= 4.0, "{addr}: {created} sessions created");
    }
    for p in 0..6 {
        let leader = cluster.broker_index(c.leader("r", p));
        let got = cluster.client(leader).read_all("r", p, 0);
        assert_eq!(got.len(), 20);
    }
}
