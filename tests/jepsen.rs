//! A Jepsen-style check of acknowledged-write safety, repeatable with a seed.
//!
//! Three producers write unique values with acks=all to a 6-partition topic with
//! replication factor 3 and min.insync.replicas=2. Meanwhile a nemesis kills (-9) and
//! restarts random brokers — leaders and the controller included — and cuts brokers off
//! from their peers and the mini-zookeeper (network namespaces; producers can still reach
//! a cut-off broker, which must not acknowledge what it cannot replicate), then heals.
//! A value is sent once and never retried, so a duplicate can only come from the
//! brokers. At the end a reader checks every partition:
//! - every acknowledged value is present exactly once, at the offset it was acknowledged at;
//! - per partition, log order matches acknowledgement order (for writes where one was
//!   acknowledged before the other was sent);
//! - nothing appears that was never sent.
//!
//! A second workload runs transactional producers (several partitions per transaction,
//! some aborted on purpose) under the same nemesis and checks what read_committed
//! readers see: committed transactions whole and once, aborted ones never.
//!
//! `GREGOR_JEPSEN_SEED` replays a run; `GREGOR_JEPSEN_SECS` sets the nemesis duration
//! (default 60).

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::kafka::{batch, decode, topic_name, Client};
use common::netns::{InterBroker, NamespaceGuard, NetCluster, INTERNAL_PORT};
use common::txn::{read_committed, Brokers as TxnBrokers, Outcome, TxnProducer};
use common::wait_until;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::ProduceRequest;
use kafka_protocol::records::Compression;
use rand::{Rng, SeedableRng};

const TOPIC: &str = "jepsen";
const PARTITIONS: i32 = 6;
const PRODUCERS: usize = 3;

#[derive(Debug, Clone)]
struct Ack {
    value: String,
    partition: i32,
    offset: i64,
    sent_at: Instant,
    acked_at: Instant,
}

/// Keeps one connection per broker address and a metadata view, like a client would.
struct Router {
    addrs: Vec<String>,
    conns: HashMap<String, Client>,
    leaders: BTreeMap<i32, String>,
}

impl Router {
    fn new(addrs: Vec<String>) -> Self {
        Router {
            addrs,
            conns: HashMap::new(),
            leaders: BTreeMap::new(),
        }
    }

    fn conn(&mut self, addr: &str) -> Option<&mut Client> {
        if !self.conns.contains_key(addr) {
            let c = Client::connect(addr).ok()?;
            self.conns.insert(addr.to_string(), c);
        }
        self.conns.get_mut(addr)
    }

    fn refresh(&mut self) {
        for addr in self.addrs.clone() {
            let Some(c) = self.conn(&addr) else { continue };
            match c.metadata(Some(&[TOPIC])) {
                Ok(md) => {
                    let brokers: HashMap<i32, String> = md
                        .brokers
                        .iter()
                        .map(|b| (b.node_id.0, format!("{}:{}", b.host, b.port)))
                        .collect();
                    self.leaders.clear();
                    if let Some(t) = md.topics.first() {
                        for p in &t.partitions {
                            if let Some(a) = brokers.get(&p.leader_id.0) {
                                self.leaders.insert(p.partition_index, a.clone());
                            }
                        }
                    }
                    return;
                }
                Err(_) => {
                    self.conns.remove(&addr);
                }
            }
        }
    }

    /// Sends one value once. Ok(offset) only when acknowledged with acks=all.
    fn send_once(&mut self, partition: i32, value: &str) -> Result<i64, ()> {
        let Some(addr) = self.leaders.get(&partition).cloned() else {
            return Err(());
        };
        let Some(c) = self.conn(&addr) else {
            return Err(());
        };
        let req = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(3000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(topic_name(TOPIC))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(batch(&[value.as_bytes()], Compression::None)))])]);
        match c.send(&req, 9) {
            Ok(resp) => {
                let p = &resp.responses[0].partition_responses[0];
                if p.error_code == 0 {
                    Ok(p.base_offset)
                } else {
                    Err(())
                }
            }
            Err(_) => {
                self.conns.remove(&addr);
                Err(())
            }
        }
    }
}

fn producer(
    id: usize,
    addrs: Vec<String>,
    stop: Arc<AtomicBool>,
    sent: Arc<Mutex<HashSet<String>>>,
) -> Vec<Ack> {
    let mut router = Router::new(addrs);
    router.refresh();
    let mut acks = Vec::new();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let partition = (n % PARTITIONS as u64) as i32;
        let value = format!("p{id}-{n}");
        n += 1;
        sent.lock().unwrap().insert(value.clone());
        let sent_at = Instant::now();
        match router.send_once(partition, &value) {
            Ok(offset) => acks.push(Ack {
                value,
                partition,
                offset,
                sent_at,
                acked_at: Instant::now(),
            }),
            Err(()) => {
                router.refresh();
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    acks
}

fn read_partition(addrs: &[String], partition: i32) -> Vec<(i64, String)> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut router = Router::new(addrs.to_vec());
        router.refresh();
        if let Some(addr) = router.leaders.get(&partition).cloned() {
            if let Some(c) = router.conn(&addr) {
                let mut out = Vec::new();
                let mut offset = 0;
                let ok = loop {
                    let (err, hw, records) = c.fetch(TOPIC, partition, offset, 0);
                    if err != 0 {
                        break false;
                    }
                    if offset >= hw {
                        break true;
                    }
                    for (o, v) in decode(records) {
                        if o >= offset {
                            out.push((
                                o,
                                String::from_utf8(v.unwrap_or_default().to_vec()).unwrap(),
                            ));
                            offset = o + 1;
                        }
                    }
                };
                if ok {
                    return out;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "cannot read partition {partition}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The nemesis: one fault at a time, each lasting a few seconds, then heal — a broker
/// killed (-9) and restarted, or cut off from its peers and the mini-zookeeper.
fn nemesis(cluster: &mut NetCluster, rng: &mut rand::rngs::StdRng, secs: u64, addrs: &[String]) {
    let end = Instant::now() + Duration::from_secs(secs);
    let mut faults = Vec::new();
    let mut long_cuts = 0;
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(rng.gen_range(1000..3000)));
        let victim = rng.gen_range(0..3usize);
        if rng.gen_bool(0.5) {
            faults.push(format!("kill -9 broker {}", victim + 1));
            cluster.brokers[victim].kill();
            std::thread::sleep(Duration::from_millis(rng.gen_range(1000..6000)));
            cluster.brokers[victim].start();
        } else {
            faults.push(format!("cut broker {}", victim + 1));
            cluster.cut(victim);
            let hold = Duration::from_millis(rng.gen_range(3000..12000));
            let until = Instant::now() + hold;
            // Evidence the cut is real: past the 6 s session timeout, the peers drop it.
            let mut vanished = false;
            while Instant::now() < until {
                if !vanished && hold > Duration::from_secs(9) {
                    let peer = (victim + 1) % 3;
                    vanished = Client::connect(&addrs[peer])
                        .ok()
                        .and_then(|mut c| c.metadata(None).ok())
                        .is_some_and(|m| {
                            !m.brokers.iter().any(|b| b.node_id.0 == victim as i32 + 1)
                        });
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            if hold > Duration::from_secs(9) {
                assert!(
                    vanished,
                    "broker {} was cut for {hold:?} but its peers still listed it",
                    victim + 1
                );
                long_cuts += 1;
            }
            cluster.heal();
        }
    }
    eprintln!("jepsen: faults: {} ({long_cuts} cuts long enough to expire the victim's session, each verified)", faults.join(", "));
}

/// Waits until every broker is back and in every ISR of `topic`.
fn settle(addrs: &[String], topic: &str) {
    let settled = |report: bool| {
        addrs.iter().any(|a| {
            Client::connect(a)
                .ok()
                .and_then(|mut c| c.metadata(Some(&[topic])).ok())
                .is_some_and(|m| {
                    let ok = m.brokers.len() == 3
                        && m.topics[0]
                            .partitions
                            .iter()
                            .all(|p| p.leader_id.0 >= 0 && p.isr_nodes.len() == 3);
                    if !ok && report {
                        let state: Vec<String> = m.topics[0]
                            .partitions
                            .iter()
                            .map(|p| {
                                let isr: Vec<i32> = p.isr_nodes.iter().map(|b| b.0).collect();
                                format!(
                                    "p{} leader {} epoch {} isr {isr:?}",
                                    p.partition_index, p.leader_id.0, p.leader_epoch
                                )
                            })
                            .collect();
                        let brokers: Vec<i32> = m.brokers.iter().map(|b| b.node_id.0).collect();
                        eprintln!("from {a}: brokers {brokers:?}; {}", state.join("; "));
                    }
                    ok
                })
        })
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while !settled(false) {
        if Instant::now() > deadline {
            settled(true);
            panic!("the cluster did not settle: every broker back in every ISR");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn acknowledged_writes_survive_kills_and_partitions() {
    jepsen(InterBroker::Plaintext, 60);
}

/// The same with the brokers replicating over a SASL_SSL listener (SCRAM-SHA-512, TLS):
/// every restarted or reconnected follower authenticates again. A shorter nemesis window
/// keeps CI's time in check (`GREGOR_JEPSEN_SECS` sets both).
#[test]
fn acknowledged_writes_survive_with_the_inter_broker_listener_on_sasl_ssl() {
    jepsen(InterBroker::SaslSsl, 30);
}

fn jepsen(inter_broker: InterBroker, default_secs: u64) {
    if let Err(e) = NetCluster::available() {
        panic!("this test needs network namespaces (root + iproute2): {e}");
    }
    let seed: u64 = std::env::var("GREGOR_JEPSEN_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    let secs: u64 = std::env::var("GREGOR_JEPSEN_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default_secs);
    eprintln!("jepsen ({inter_broker:?} replication): seed {seed} (replay with GREGOR_JEPSEN_SEED={seed}), nemesis for {secs}s");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);

    let mut cluster = NetCluster::start_with(
        3,
        &[
            ("min.insync.replicas", "2"),
            ("replica.lag.time.max.ms", "10000"),
            ("leader.imbalance.check.interval.seconds", "5"),
        ],
        inter_broker,
    );
    // This thread and the producer threads it spawns are the test clients.
    let _clients = NamespaceGuard::enter(&cluster.clients.ns);
    let addrs = cluster.bootstrap();
    let mut admin = None;
    wait_until(Duration::from_secs(60), "a broker to answer", || {
        admin = addrs.iter().find_map(|a| Client::connect(a).ok());
        admin.as_mut().is_some_and(|c| {
            c.metadata(None)
                .map(|m| m.brokers.len() == 3)
                .unwrap_or(false)
        })
    });
    let mut admin = admin.unwrap();
    assert_eq!(
        admin.create_topic(TOPIC, PARTITIONS, 3, &[("min.insync.replicas", "2")]),
        0
    );
    wait_until(Duration::from_secs(60), "full ISRs", || {
        admin
            .metadata(Some(&[TOPIC]))
            .map(|m| {
                m.topics[0]
                    .partitions
                    .iter()
                    .all(|p| p.isr_nodes.len() == 3)
            })
            .unwrap_or(false)
    });

    if inter_broker == InterBroker::SaslSsl {
        // The followers that filled the ISRs fetch over the INTERNAL listener.
        let internal: usize = (0..3)
            .map(|i| cluster.connections_to(i, INTERNAL_PORT))
            .sum();
        assert!(
            internal > 0,
            "no replica fetcher connected to an INTERNAL (SASL_SSL) listener"
        );
    }

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(Mutex::new(HashSet::new()));
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|id| {
            let (addrs, stop, sent) = (addrs.clone(), stop.clone(), sent.clone());
            std::thread::spawn(move || producer(id, addrs, stop, sent))
        })
        .collect();

    nemesis(&mut cluster, &mut rng, secs, &addrs);
    // Let the cluster settle with every broker back, then stop the producers.
    settle(&addrs, TOPIC);
    std::thread::sleep(Duration::from_secs(2)); // a little clean traffic after the storm
    stop.store(true, Ordering::Relaxed);
    let acks: Vec<Ack> = producers
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let sent = sent.lock().unwrap().clone();

    // Read everything back and check.
    let mut log: BTreeMap<i32, Vec<(i64, String)>> = BTreeMap::new();
    for p in 0..PARTITIONS {
        log.insert(p, read_partition(&addrs, p));
    }
    let mut occurrences: HashMap<&str, Vec<(i32, i64)>> = HashMap::new();
    for (p, records) in &log {
        for (o, v) in records {
            occurrences.entry(v.as_str()).or_default().push((*p, *o));
        }
    }
    let mut lost = 0;
    let mut duplicated = 0;
    let mut misplaced = 0;
    for a in &acks {
        match occurrences.get(a.value.as_str()).map(Vec::as_slice) {
            None | Some([]) => {
                lost += 1;
                eprintln!("LOST {a:?}");
            }
            Some([(p, o)]) => {
                if (*p, *o) != (a.partition, a.offset) {
                    misplaced += 1;
                    eprintln!("MISPLACED {a:?} found at {p}/{o}");
                }
            }
            Some(many) => {
                duplicated += 1;
                eprintln!("DUPLICATED {a:?} at {many:?}");
            }
        }
    }
    let unacked_dups = occurrences
        .iter()
        .filter(|(v, at)| at.len() > 1 && !acks.iter().any(|a| a.value == **v))
        .count();
    let phantom = occurrences.keys().filter(|v| !sent.contains(**v)).count();
    // Real-time order: if a was acknowledged before b was sent (same partition), a comes first.
    let mut reordered = 0;
    let mut by_partition: BTreeMap<i32, Vec<&Ack>> = BTreeMap::new();
    for a in &acks {
        by_partition.entry(a.partition).or_default().push(a);
    }
    for list in by_partition.values_mut() {
        list.sort_by_key(|a| a.acked_at);
        for w in list.windows(2) {
            if w[0].acked_at < w[1].sent_at && w[0].offset >= w[1].offset {
                reordered += 1;
                eprintln!("REORDERED {:?} before {:?}", w[0], w[1]);
            }
        }
    }
    eprintln!(
        "jepsen: sent {}, acknowledged {}, lost {lost}, duplicated {}, reordered {}, never-sent {phantom}",
        sent.len(),
        acks.len(),
        duplicated + unacked_dups,
        reordered + misplaced
    );
    assert!(
        acks.len() > 1000,
        "too few acknowledged writes ({}) for a meaningful check",
        acks.len()
    );
    assert_eq!(lost, 0, "acknowledged writes lost");
    assert_eq!(duplicated + unacked_dups, 0, "values duplicated");
    assert_eq!(
        reordered + misplaced,
        0,
        "acknowledged writes reordered or moved"
    );
    assert_eq!(phantom, 0, "values that were never sent");
}

/// A leader cut off from its peers and the mini-zookeeper keeps serving clients that
/// still reach it, but cannot acknowledge acks=all writes (its followers cannot fetch);
/// what it takes with acks=1 meanwhile is a divergent tail, truncated when it rejoins
/// under the new leader's epoch.
#[test]
fn cut_off_leader_cannot_acknowledge_and_its_divergent_tail_is_truncated() {
    if let Err(e) = NetCluster::available() {
        panic!("this test needs network namespaces (root + iproute2): {e}");
    }
    let mut cluster = NetCluster::start(
        3,
        &[
            ("min.insync.replicas", "2"),
            ("leader.imbalance.check.interval.seconds", "1"),
        ],
    );
    // This thread and the producer threads it spawns are the test clients.
    let _clients = NamespaceGuard::enter(&cluster.clients.ns);
    let addrs = cluster.bootstrap();
    let mut admin = None;
    wait_until(Duration::from_secs(60), "three brokers", || {
        admin = addrs.iter().find_map(|a| Client::connect(a).ok());
        admin.as_mut().is_some_and(|c| {
            c.metadata(None)
                .map(|m| m.brokers.len() == 3)
                .unwrap_or(false)
        })
    });
    let mut admin = admin.unwrap();
    assert_eq!(admin.create_topic("fence", 1, 3, &[]), 0);
    wait_until(Duration::from_secs(60), "full ISR", || {
        admin
            .metadata(Some(&["fence"]))
            .map(|m| m.topics[0].partitions[0].isr_nodes.len() == 3)
            .unwrap_or(false)
    });
    let old_leader = admin.leader("fence", 0);
    let old = (old_leader - 1) as usize;
    let mut to_old = Client::connect(&addrs[old]).unwrap();
    assert_eq!(produce_acks_all_once_led(&mut to_old, b"committed"), (0, 0));

    cluster.cut(old);
    // The isolated leader cannot replicate: acks=all is never acknowledged.
    let (err, _) = to_old.produce("fence", 0, batch(&[b"never-acked"], Compression::None), -1);
    assert_ne!(err, 0, "a cut-off leader acknowledged an acks=all write");
    // acks=1 lands only in its own log: a divergent tail.
    assert_eq!(
        to_old
            .produce("fence", 0, batch(&[b"divergent"], Compression::None), 1)
            .0,
        0
    );

    // The others elect a new leader (after the old one's session expires) and move on.
    let peer = (old + 1) % 3;
    let mut to_peer = Client::connect(&addrs[peer]).unwrap();
    wait_until(Duration::from_secs(30), "a new leader", || {
        let l = to_peer.leader("fence", 0);
        l > 0 && l != old_leader
    });
    let new_leader = to_peer.leader("fence", 0);
    let mut to_new = Client::connect(&addrs[(new_leader - 1) as usize]).unwrap();
    assert_eq!(produce_acks_all_once_led(&mut to_new, b"after"), (0, 1));

    // Heal: the old leader rejoins as a follower, truncates, catches up; preferred
    // leader election may even give it leadership back. Either way the log is the same.
    cluster.heal();
    wait_until(
        Duration::from_secs(60),
        "old leader back in the ISR",
        || {
            to_new = Client::connect(&addrs[peer]).unwrap();
            to_new
                .metadata(Some(&["fence"]))
                .map(|m| m.topics[0].partitions[0].isr_nodes.len() == 3)
                .unwrap_or(false)
        },
    );
    for i in 0..3 {
        // Ask every broker for the leader and read from it.
        let mut c = Client::connect(&addrs[i]).unwrap();
        let leader = c.leader("fence", 0);
        let mut lc = Client::connect(&addrs[(leader - 1) as usize]).unwrap();
        let values: Vec<String> = lc
            .read_all("fence", 0, 0)
            .into_iter()
            .map(|(_, v)| String::from_utf8(v.unwrap().to_vec()).unwrap())
            .collect();
        assert_eq!(
            values,
            vec!["committed", "after"],
            "divergent or unacknowledged data survived"
        );
    }
    // Make the old leader lead again and read its own log: the divergent tail is gone.
    wait_until(Duration::from_secs(60), "preferred leader back", || {
        to_peer.leader("fence", 0) == old_leader
    });
    let mut back = Client::connect(&addrs[old]).unwrap();
    let values: Vec<String> = back
        .read_all("fence", 0, 0)
        .into_iter()
        .map(|(_, v)| String::from_utf8(v.unwrap().to_vec()).unwrap())
        .collect();
    assert_eq!(values, vec!["committed", "after"]);
}

/// An acks=all write of `value` to fence-0 through a broker that metadata names as its
/// leader. Metadata may name it before the broker has applied its election
/// (UNKNOWN_TOPIC_OR_PARTITION, then NOT_LEADER_OR_FOLLOWER until then), as with Kafka:
/// those mean "not yet" and nothing was written, so retry them.
fn produce_acks_all_once_led(client: &mut Client, value: &[u8]) -> (i16, i64) {
    let mut result = (-1, -1);
    wait_until(
        Duration::from_secs(30),
        "the leader to apply its election",
        || {
            result = client.produce("fence", 0, batch(&[value], Compression::None), -1);
            result.0 != 3 && result.0 != 6
        },
    );
    result
}

// ---------------------------------------------------------------- transactions

const TXN_TOPIC: &str = "jepsen-txn";
const TXN_PRODUCERS: usize = 2;

/// One transaction as its producer saw it: the values it sent (partition, value) and
/// how it ended.
#[derive(Debug, Clone)]
#[allow(dead_code)] // producer and n are printed with a failing transaction
struct TxnRecord {
    producer: usize,
    n: u64,
    values: Vec<(i32, String)>,
    outcome: Outcome,
}

/// Transactions over 3 of the topic's partitions, 2 values each, every fourth one
/// aborted on purpose. Any failure aborts the transaction (EndTxn(abort), or a new
/// InitProducerId, which fences and aborts it); an EndTxn(commit) without a definite
/// answer is Unknown.
fn txn_producer(id: usize, addrs: Vec<String>, stop: Arc<AtomicBool>) -> Vec<TxnRecord> {
    let mut p = TxnProducer::new(&format!("jepsen-txn-{id}"), TXN_TOPIC, addrs, 10_000);
    let reinit = |p: &mut TxnProducer| {
        while p.init(Instant::now() + Duration::from_secs(20)).is_err() {
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    reinit(&mut p);
    p.brokers.refresh(TXN_TOPIC);
    let mut out = Vec::new();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let parts = [(n % 6) as i32, ((n + 1) % 6) as i32, ((n + 3) % 6) as i32];
        let values: Vec<(i32, String)> = parts
            .iter()
            .flat_map(|&part| (0..2).map(move |k| (part, format!("t{id}-{n}-{part}-{k}"))))
            .collect();
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut failed = p.add_partitions(&parts, deadline).is_err();
        let mut sent = Vec::new();
        for (part, v) in &values {
            if failed {
                break;
            }
            sent.push((*part, v.clone()));
            failed = p.produce(*part, v).is_err();
        }
        let commit = !failed && !n.is_multiple_of(4);
        let outcome = if commit {
            match p.end(true, deadline) {
                Ok(()) => Outcome::Committed,
                // Fenced or refused: a coordinator timeout aborted it (bumping the epoch).
                Err(code) if code > 0 => Outcome::Aborted,
                Err(_) => Outcome::Unknown,
            }
        } else {
            // Never committed: aborted now, by the next InitProducerId, or by its timeout.
            if p.end(false, deadline).is_err() {
                reinit(&mut p);
            }
            Outcome::Aborted
        };
        if outcome != Outcome::Committed && (failed || outcome == Outcome::Unknown) {
            reinit(&mut p);
        }
        out.push(TxnRecord {
            producer: id,
            n,
            values: sent,
            outcome,
        });
    }
    out
}

/// Transactional producers writing to several partitions per transaction under the same
/// nemesis: at the end a read_committed reader (Fetch READ_COMMITTED with the aborted
/// transactions dropped, as clients do) sees every committed transaction completely and
/// once, never a record of an aborted one, a transaction without a definite outcome all
/// or nothing, and every partition's LSO reaches its high watermark (no transaction left
/// hanging).
#[test]
fn transactions_stay_atomic_under_kills_and_partitions() {
    if let Err(e) = NetCluster::available() {
        panic!("this test needs network namespaces (root + iproute2): {e}");
    }
    let seed: u64 = std::env::var("GREGOR_JEPSEN_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    let secs: u64 = std::env::var("GREGOR_JEPSEN_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    eprintln!("jepsen (transactions): seed {seed} (replay with GREGOR_JEPSEN_SEED={seed}), nemesis for {secs}s");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut cluster = NetCluster::start(
        3,
        &[
            ("min.insync.replicas", "2"),
            ("replica.lag.time.max.ms", "10000"),
            ("leader.imbalance.check.interval.seconds", "5"),
            (
                "transaction.abort.timed.out.transaction.cleanup.interval.ms",
                "1000",
            ),
        ],
    );
    let _clients = NamespaceGuard::enter(&cluster.clients.ns);
    let addrs = cluster.bootstrap();
    let mut admin = None;
    wait_until(Duration::from_secs(60), "three brokers", || {
        admin = addrs.iter().find_map(|a| Client::connect(a).ok());
        admin.as_mut().is_some_and(|c| {
            c.metadata(None)
                .map(|m| m.brokers.len() == 3)
                .unwrap_or(false)
        })
    });
    let mut admin = admin.unwrap();
    assert_eq!(
        admin.create_topic(TXN_TOPIC, PARTITIONS, 3, &[("min.insync.replicas", "2")]),
        0
    );
    wait_until(Duration::from_secs(60), "full ISRs", || {
        admin
            .metadata(Some(&[TXN_TOPIC]))
            .map(|m| {
                m.topics[0]
                    .partitions
                    .iter()
                    .all(|p| p.isr_nodes.len() == 3)
            })
            .unwrap_or(false)
    });
    let stop = Arc::new(AtomicBool::new(false));
    let producers: Vec<_> = (0..TXN_PRODUCERS)
        .map(|id| {
            let (addrs, stop) = (addrs.clone(), stop.clone());
            std::thread::spawn(move || txn_producer(id, addrs, stop))
        })
        .collect();
    nemesis(&mut cluster, &mut rng, secs, &addrs);
    settle(&addrs, TXN_TOPIC);
    std::thread::sleep(Duration::from_secs(2)); // a little clean traffic after the storm
    stop.store(true, Ordering::Relaxed);
    let txns: Vec<TxnRecord> = producers
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();

    // Every transaction is decided once the coordinators are done: the LSO reaches the
    // high watermark everywhere (a timed-out one within its 10 s timeout).
    let mut visible: HashMap<String, Vec<(i32, i64)>> = HashMap::new();
    for part in 0..PARTITIONS {
        let mut brokers = TxnBrokers::new(addrs.clone());
        let mut read = None;
        let mut last = String::new();
        let deadline = Instant::now() + Duration::from_secs(90);
        let mut done = || {
            brokers.refresh(TXN_TOPIC);
            let Some(addr) = brokers.leaders.get(&part).cloned() else {
                return false;
            };
            let Some(c) = brokers.conn(&addr) else {
                return false;
            };
            let (err, hw) = c.list_offset(TXN_TOPIC, part, -1);
            match read_committed(c, TXN_TOPIC, part) {
                Ok((records, lso)) if err == 0 && lso == hw => {
                    read = Some(records);
                    true
                }
                other => {
                    last = format!(
                        "partition {part} at {addr}: hw {hw} (error {err}), read {:?}",
                        other.map(|(r, lso)| (r.len(), lso))
                    );
                    brokers.drop_conn(&addr);
                    false
                }
            }
        };
        while !done() {
            if Instant::now() > deadline {
                eprintln!("{}", cluster.logs_tail());
                panic!("the LSO never reached the high watermark: {last}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        for (offset, v) in read.unwrap() {
            let v = String::from_utf8(v.to_vec()).unwrap();
            visible.entry(v).or_default().push((part, offset));
        }
    }
    let (mut committed, mut aborted, mut unknown, mut partial, mut leaked, mut lost) =
        (0, 0, 0, 0, 0, 0);
    let mut known: HashSet<&str> = HashSet::new();
    for t in &txns {
        let seen: Vec<&(i32, String)> = t
            .values
            .iter()
            .filter(|(_, v)| visible.contains_key(v))
            .collect();
        for (part, v) in &t.values {
            known.insert(v.as_str());
            if let Some(at) = visible.get(v) {
                assert!(
                    at.iter().all(|(p, _)| p == part),
                    "{v} visible in another partition: {at:?}"
                );
            }
        }
        match t.outcome {
            Outcome::Committed => {
                committed += 1;
                if seen.len() != t.values.len() {
                    lost += 1;
                    eprintln!("COMMITTED BUT NOT (FULLY) VISIBLE {t:?}: saw {seen:?}");
                }
            }
            Outcome::Aborted => {
                aborted += 1;
                if !seen.is_empty() {
                    leaked += 1;
                    eprintln!("ABORTED BUT VISIBLE {t:?}: saw {seen:?}");
                }
            }
            Outcome::Unknown => {
                unknown += 1;
                if !seen.is_empty() && seen.len() != t.values.len() {
                    partial += 1;
                    eprintln!("PARTIAL {t:?}: saw {seen:?}");
                }
            }
        }
    }
    let duplicated = visible.iter().filter(|(_, at)| at.len() > 1).count();
    let phantom = visible
        .keys()
        .filter(|v| !known.contains(v.as_str()))
        .count();
    eprintln!(
        "jepsen (transactions): {} transactions — committed {committed}, aborted {aborted}, unknown {unknown}; lost {lost}, leaked {leaked}, partial {partial}, duplicated {duplicated}, never-sent {phantom}",
        txns.len()
    );
    assert!(
        committed > 20,
        "too few committed transactions ({committed}) for a meaningful check"
    );
    assert_eq!(lost, 0, "committed transactions not completely visible");
    assert_eq!(leaked, 0, "aborted transactions visible to read_committed");
    assert_eq!(partial, 0, "transactions partly visible");
    assert_eq!(duplicated, 0, "values visible twice");
    assert_eq!(phantom, 0, "values never sent");
}
