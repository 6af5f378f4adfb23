//! Idempotent produce against real brokers: producer ids unique across brokers (blocks
//! claimed through ZooKeeper), a retried batch is acknowledged with its original offset and
//! never written twice — also after a broker restart — sequence gaps and stale epochs get
//! Kafka's errors.

mod common;

use std::collections::HashSet;

use common::kafka::{batch_with_producer, Client};
use common::{Cluster, Coordinator};
use kafka_protocol::messages::InitProducerIdRequest;
use kafka_protocol::records::Compression;

const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
const INVALID_PRODUCER_EPOCH: i16 = 47;

fn producer_id(c: &mut Client) -> i64 {
    let r = c
        .send(
            &InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(60_000),
            4,
        )
        .expect("InitProducerId");
    assert_eq!(r.error_code, 0);
    assert_eq!(r.producer_epoch, 0);
    r.producer_id.0
}

#[test]
fn producer_ids_are_unique_across_brokers() {
    let cluster = Cluster::start(Coordinator::Gregor, 2, &[]);
    let mut a = cluster.client(0);
    let mut b = cluster.client(1);
    let mut ids = HashSet::new();
    for _ in 0..50 {
        assert!(ids.insert(producer_id(&mut a)));
        assert!(ids.insert(producer_id(&mut b)));
    }
}

#[test]
fn retries_are_deduplicated_even_across_restart_and_bad_sequences_are_refused() {
    let mut cluster = Cluster::start(Coordinator::Gregor, 1, &[]);
    let mut c = cluster.client(0);
    assert_eq!(c.create_topic("idem", 1, 1, &[]), 0);
    let pid = producer_id(&mut c);

    let first = batch_with_producer(&[b"a", b"b", b"c"], Compression::Zstd, pid, 0, 0);
    assert_eq!(c.produce("idem", 0, first.clone(), -1), (0, 0));
    // The same batch again (a retry): original offset, nothing appended.
    assert_eq!(c.produce("idem", 0, first.clone(), -1), (0, 0));
    let second = batch_with_producer(&[b"d"], Compression::None, pid, 0, 3);
    assert_eq!(c.produce("idem", 0, second.clone(), -1), (0, 3));
    assert_eq!(c.read_all("idem", 0, 0).len(), 4);

    // A gap in the sequence.
    let gap = batch_with_producer(&[b"x"], Compression::None, pid, 0, 9);
    assert_eq!(
        c.produce("idem", 0, gap, -1).0,
        OUT_OF_ORDER_SEQUENCE_NUMBER
    );

    // Producer state survives a crash: the retry is still recognised.
    cluster.brokers[0].process.kill();
    cluster.brokers[0].process.start();
    cluster.wait_for_broker(0);
    let mut c = cluster.client(0);
    common::wait_until(
        std::time::Duration::from_secs(30),
        "leader after restart",
        || c.leader("idem", 0) == 1,
    );
    assert_eq!(c.produce("idem", 0, second, -1), (0, 3));
    assert_eq!(c.produce("idem", 0, first, -1), (0, 0));
    assert_eq!(
        c.read_all("idem", 0, 0).len(),
        4,
        "no duplicates after restart"
    );

    // A newer epoch fences the older one.
    let bumped = batch_with_producer(&[b"e"], Compression::None, pid, 1, 0);
    assert_eq!(c.produce("idem", 0, bumped, -1), (0, 4));
    let stale = batch_with_producer(&[b"f"], Compression::None, pid, 0, 4);
    assert_eq!(c.produce("idem", 0, stale, -1).0, INVALID_PRODUCER_EPOCH);
    assert_eq!(c.read_all("idem", 0, 0).len(), 5);
}
