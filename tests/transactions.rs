//! Transactions at the protocol level against a real broker: the error codes Kafka 3.9
//! answers for bad input (unknown transactional ids, wrong epochs, oversized timeouts,
//! partitions not in the transaction — KIP-890's defence against hanging transactions —,
//! fenced markers), and that nothing refused is ever visible to read_committed.

mod common;

use std::time::{Duration, Instant};

use common::kafka::{topic_name, Client};
use common::txn::{read_committed, txn_batch, TxnProducer};
use common::{wait_until, Cluster, Coordinator};
use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

const INVALID_REQUEST: i16 = 42;
const INVALID_TRANSACTION_TIMEOUT: i16 = 50;
const INVALID_PRODUCER_ID_MAPPING: i16 = 49;
const INVALID_PRODUCER_EPOCH: i16 = 47;
const PRODUCER_FENCED: i16 = 90;
const INVALID_TXN_STATE: i16 = 48;
const TRANSACTION_ABORTABLE: i16 = 120;
const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;
const TRANSACTIONAL_ID_NOT_FOUND: i16 = 105;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const OPERATION_NOT_ATTEMPTED: i16 = 55;
const TRANSACTION_COORDINATOR_FENCED: i16 = 52;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn init(
    c: &mut Client,
    id: &str,
    timeout_ms: i32,
    pid: i64,
    epoch: i16,
    version: i16,
) -> InitProducerIdResponse {
    c.send(
        &InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(s(id))))
            .with_transaction_timeout_ms(timeout_ms)
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch),
        version,
    )
    .expect("InitProducerId")
}

fn end_txn(c: &mut Client, id: &str, pid: i64, epoch: i16, commit: bool, version: i16) -> i16 {
    c.send(
        &EndTxnRequest::default()
            .with_transactional_id(TransactionalId(s(id)))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_committed(commit),
        version,
    )
    .expect("EndTxn")
    .error_code
}

/// A transactional produce of one value: its error code.
#[allow(clippy::too_many_arguments)]
fn produce_txn(
    c: &mut Client,
    id: Option<&str>,
    topic: &str,
    p: i32,
    pid: i64,
    epoch: i16,
    seq: i32,
    version: i16,
) -> i16 {
    let req = ProduceRequest::default()
        .with_transactional_id(id.map(|i| TransactionalId(s(i))))
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(p)
                .with_records(Some(txn_batch(&[b"v"], pid, epoch, seq)))])]);
    c.send(&req, version).expect("Produce").responses[0].partition_responses[0].error_code
}

/// `attempt`'s error code once the coordinator serves it (every `__transaction_state`
/// partition loads at election: NOT_COORDINATOR / COORDINATOR_LOAD_IN_PROGRESS until then).
fn loaded(mut attempt: impl FnMut() -> i16) -> i16 {
    let mut code = -1;
    wait_until(Duration::from_secs(30), "the coordinator to load", || {
        code = attempt();
        !matches!(code, 14..=16)
    });
    code
}

fn one_broker() -> (Cluster, Client) {
    let cluster = Cluster::start(
        Coordinator::Gregor,
        1,
        &[("transaction.max.timeout.ms", "60000")],
    );
    let c = cluster.client(0);
    (cluster, c)
}

/// A producer for `id`, initialized (the coordinator loaded).
fn producer(cluster: &Cluster, id: &str, topic: &str) -> TxnProducer {
    let mut p = TxnProducer::new(id, topic, vec![cluster.brokers[0].addr()], 60_000);
    p.init(Instant::now() + Duration::from_secs(60))
        .expect("InitProducerId");
    assert!(p.brokers.refresh(topic));
    p
}

#[test]
fn bad_requests_get_kafkas_errors() {
    let (cluster, mut c) = one_broker();
    assert_eq!(c.create_topic("t", 2, 1, &[]), 0);
    let mut p = producer(&cluster, "good", "t");
    let coordinator = &mut c;
    assert_eq!(
        init(coordinator, "", 1000, -1, -1, 4).error_code,
        INVALID_REQUEST
    );
    assert_eq!(
        init(coordinator, "x", 0, -1, -1, 4).error_code,
        INVALID_TRANSACTION_TIMEOUT
    );
    assert_eq!(
        init(coordinator, "x", 60_001, -1, -1, 4).error_code,
        INVALID_TRANSACTION_TIMEOUT
    );
    assert_eq!(
        init(coordinator, "x", 1000, 5, -1, 4).error_code,
        INVALID_REQUEST,
        "an id without an epoch"
    );
    // KIP-360: resuming with a producer id that is not this transactional id's.
    assert_eq!(
        init(coordinator, "good", 1000, p.producer_id + 7, 0, 4).error_code,
        PRODUCER_FENCED
    );
    assert_eq!(
        init(coordinator, "good", 1000, p.producer_id + 7, 0, 3).error_code,
        INVALID_PRODUCER_EPOCH,
        "v3 clients do not know PRODUCER_FENCED"
    );
    p.init(Instant::now() + Duration::from_secs(30)).unwrap();

    assert_eq!(
        loaded(|| end_txn(coordinator, "nobody", 1, 0, true, 3)),
        INVALID_PRODUCER_ID_MAPPING
    );
    assert_eq!(
        end_txn(coordinator, "good", p.producer_id, p.epoch, true, 3),
        INVALID_TXN_STATE,
        "nothing to end"
    );
    assert_eq!(
        end_txn(coordinator, "good", p.producer_id, p.epoch - 1, true, 3),
        PRODUCER_FENCED
    );
    assert_eq!(
        end_txn(coordinator, "good", p.producer_id, p.epoch - 1, true, 1),
        INVALID_PRODUCER_EPOCH
    );

    // AddPartitionsToTxn: an unknown partition fails the request; the others are not attempted.
    let add = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(TransactionalId(s("good")))
        .with_v3_and_below_producer_id(ProducerId(p.producer_id))
        .with_v3_and_below_producer_epoch(p.epoch)
        .with_v3_and_below_topics(vec![
            AddPartitionsToTxnTopic::default()
                .with_name(topic_name("t"))
                .with_partitions(vec![0]),
            AddPartitionsToTxnTopic::default()
                .with_name(topic_name("missing"))
                .with_partitions(vec![0]),
        ]);
    let r = coordinator.send(&add, 3).unwrap();
    let codes: Vec<(String, i16)> = r
        .results_by_topic_v3_and_below
        .iter()
        .flat_map(|t| {
            t.results_by_partition
                .iter()
                .map(move |p| (t.name.0.to_string(), p.partition_error_code))
        })
        .collect();
    assert!(
        codes.contains(&("t".into(), OPERATION_NOT_ATTEMPTED)),
        "{codes:?}"
    );
    assert!(
        codes.contains(&("missing".into(), UNKNOWN_TOPIC_OR_PARTITION)),
        "{codes:?}"
    );

    // Describe / List.
    let code = loaded(|| {
        let d = coordinator
            .send(
                &DescribeTransactionsRequest::default()
                    .with_transactional_ids(vec![TransactionalId(s("nobody"))]),
                0,
            )
            .unwrap();
        d.transaction_states[0].error_code
    });
    assert_eq!(code, TRANSACTIONAL_ID_NOT_FOUND);
    let l = coordinator
        .send(
            &ListTransactionsRequest::default().with_state_filters(vec![s("Ongoing"), s("Bogus")]),
            0,
        )
        .unwrap();
    assert_eq!(l.error_code, 0);
    assert_eq!(l.unknown_state_filters, vec![s("Bogus")]);

    // A transactional batch needs the request's transactional id.
    assert_eq!(
        produce_txn(coordinator, None, "t", 0, p.producer_id, p.epoch, 0, 9),
        TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    );
    drop(cluster);
}

/// KIP-890 part 1: a produce to a partition the coordinator does not have in the
/// transaction is refused — before AddPartitionsToTxn, and after the transaction ended
/// (a late or stale produce cannot open a "hanging" transaction nobody will end).
#[test]
fn produce_outside_the_transaction_is_refused_and_never_visible() {
    let (cluster, mut c) = one_broker();
    assert_eq!(c.create_topic("t", 2, 1, &[]), 0);
    let mut p = producer(&cluster, "tx", "t");
    let (pid, epoch) = (p.producer_id, p.epoch);
    let leader = cluster.brokers[0].addr();
    let mut to_leader = Client::connect(&leader).unwrap();
    assert_eq!(
        produce_txn(&mut to_leader, Some("tx"), "t", 0, pid, epoch, 0, 9),
        INVALID_TXN_STATE
    );
    assert_eq!(
        produce_txn(&mut to_leader, Some("tx"), "t", 0, pid, epoch, 0, 11),
        TRANSACTION_ABORTABLE
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    p.add_partitions(&[0], deadline).unwrap();
    assert_eq!(p.produce(0, "in").unwrap(), 0);
    // Partition 1 was never added.
    assert_eq!(
        produce_txn(&mut to_leader, Some("tx"), "t", 1, pid, epoch, 0, 11),
        TRANSACTION_ABORTABLE
    );
    p.end(true, deadline).unwrap();
    // Once the commit is written, a late retry of a produce for the old transaction.
    wait_until(Duration::from_secs(30), "the commit marker", || {
        read_committed(&mut to_leader, "t", 0).is_ok_and(|(r, _)| r.len() == 1)
    });
    assert_eq!(
        produce_txn(&mut to_leader, Some("tx"), "t", 0, pid, epoch, 1, 11),
        TRANSACTION_ABORTABLE
    );
    // Nothing refused was written: the LSO is the log end and only "in" is there.
    for part in [0, 1] {
        let (records, lso) = read_committed(&mut to_leader, "t", part).unwrap();
        let (_, hw) = to_leader.list_offset("t", part, -1);
        assert_eq!(lso, hw, "partition {part}: no transaction left open");
        let values: Vec<&[u8]> = records.iter().map(|(_, v)| &v[..]).collect();
        assert_eq!(values, if part == 0 { vec![&b"in"[..]] } else { vec![] });
    }
    drop(cluster);
}

#[test]
fn markers_from_an_older_coordinator_or_producer_epoch_are_fenced() {
    let (cluster, mut c) = one_broker();
    assert_eq!(c.create_topic("t", 1, 1, &[]), 0);
    let mut p = producer(&cluster, "m", "t");
    let deadline = Instant::now() + Duration::from_secs(30);
    p.add_partitions(&[0], deadline).unwrap();
    p.produce(0, "x").unwrap();
    p.end(false, deadline).unwrap();
    let mut to_leader = Client::connect(&cluster.brokers[0].addr()).unwrap();
    wait_until(Duration::from_secs(30), "the abort marker", || {
        read_committed(&mut to_leader, "t", 0).is_ok_and(|(_, lso)| lso == 2)
    });
    let marker = |pid: i64, epoch: i16, coordinator_epoch: i32| {
        WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_transaction_result(true)
            .with_coordinator_epoch(coordinator_epoch)
            .with_topics(vec![WritableTxnMarkerTopic::default()
                .with_name(topic_name("t"))
                .with_partition_indexes(vec![0])])])
    };
    let code = |r: WriteTxnMarkersResponse| r.markers[0].topics[0].partitions[0].error_code;
    // The coordinator of "m" wrote its marker at coordinator epoch 0 (the partition's
    // leader epoch); an older producer epoch is refused too.
    let r = to_leader
        .send(&marker(p.producer_id, p.epoch - 1, 0), 1)
        .unwrap();
    assert_eq!(code(r), INVALID_PRODUCER_EPOCH);
    let r = to_leader
        .send(&marker(p.producer_id, p.epoch, -5), 1)
        .unwrap();
    assert_eq!(code(r), TRANSACTION_COORDINATOR_FENCED);
    // AddPartitionsToTxn v4 verification of an unknown transaction.
    let verify = AddPartitionsToTxnRequest::default().with_transactions(vec![
        AddPartitionsToTxnTransaction::default()
            .with_transactional_id(TransactionalId(s("nobody")))
            .with_producer_id(ProducerId(1))
            .with_producer_epoch(0)
            .with_verify_only(true)
            .with_topics(vec![AddPartitionsToTxnTopic::default()
                .with_name(topic_name("t"))
                .with_partitions(vec![0])]),
    ]);
    let code = loaded(|| {
        let r = to_leader.send(&verify, 4).unwrap();
        r.results_by_transaction[0].topic_results[0].results_by_partition[0].partition_error_code
    });
    assert_eq!(code, INVALID_PRODUCER_ID_MAPPING);
    drop(cluster);
}

/// Kafka's ACL checks for transactions: TransactionalId WRITE for the producer's
/// requests (DESCRIBE to find its coordinator and describe it), Cluster CLUSTER_ACTION
/// for the inter-broker ones (WriteTxnMarkers, AddPartitionsToTxn v4+).
#[test]
fn acls_guard_transactional_ids_and_the_inter_broker_apis() {
    use common::authz::{
        acl, create_acls, secured_cluster, ALICE, ALLOW, LITERAL, MALLORY, TOPIC, WRITE,
    };
    const TRANSACTIONAL_ID: i8 = 5;
    const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
    let cluster = secured_cluster(1);
    let addr = cluster.brokers[0].addr();
    let mut admin = cluster.client(0);
    assert_eq!(admin.create_topic("t", 1, 1, &[]), 0);
    assert_eq!(
        create_acls(
            &mut admin,
            vec![
                acl(TRANSACTIONAL_ID, "alice-txn", LITERAL, ALICE, WRITE, ALLOW),
                acl(TOPIC, "t", LITERAL, ALICE, WRITE, ALLOW),
            ]
        ),
        vec![0, 0]
    );
    let mut mallory = Client::connect_from(&addr, MALLORY).unwrap();
    let mut alice = Client::connect_from(&addr, ALICE).unwrap();
    // ACL changes reach the authorizer through ZooKeeper: wait for Alice's.
    let mut r = InitProducerIdResponse::default();
    let find = FindCoordinatorRequest::default()
        .with_key_type(1)
        .with_key(s("alice-txn"));
    wait_until(
        Duration::from_secs(30),
        "Alice's transactional id to be usable",
        || {
            // The first FindCoordinator creates __transaction_state.
            let _ = alice.send(&find, 3);
            r = init(&mut alice, "alice-txn", 10_000, -1, -1, 4);
            r.error_code == 0
        },
    );
    assert_eq!(
        init(&mut mallory, "alice-txn", 10_000, -1, -1, 4).error_code,
        TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    );
    assert_eq!(
        end_txn(
            &mut mallory,
            "alice-txn",
            r.producer_id.0,
            r.producer_epoch,
            true,
            3
        ),
        TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    );
    assert_eq!(
        mallory.send(&find, 3).unwrap().error_code,
        TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    );
    assert_eq!(
        alice.send(&find, 3).unwrap().error_code,
        0,
        "WRITE implies DESCRIBE"
    );
    let describe = DescribeTransactionsRequest::default()
        .with_transactional_ids(vec![TransactionalId(s("alice-txn"))]);
    assert_eq!(
        mallory.send(&describe, 0).unwrap().transaction_states[0].error_code,
        TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    );
    assert_eq!(
        alice.send(&describe, 0).unwrap().transaction_states[0].error_code,
        0
    );
    // ListTransactions shows only the ids the principal may describe.
    let list = ListTransactionsRequest::default();
    let ids = |c: &mut Client| -> Vec<String> {
        c.send(&list, 0)
            .unwrap()
            .transaction_states
            .iter()
            .map(|t| t.transactional_id.0.to_string())
            .collect()
    };
    assert_eq!(ids(&mut alice), vec!["alice-txn".to_string()]);
    assert!(ids(&mut mallory).is_empty());
    // Markers and verification are for brokers only.
    let markers =
        WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
            .with_producer_id(r.producer_id)
            .with_producer_epoch(r.producer_epoch)
            .with_transaction_result(true)
            .with_coordinator_epoch(0)
            .with_topics(vec![WritableTxnMarkerTopic::default()
                .with_name(topic_name("t"))
                .with_partition_indexes(vec![0])])]);
    let got = alice.send(&markers, 1).unwrap();
    assert_eq!(
        got.markers[0].topics[0].partitions[0].error_code,
        CLUSTER_AUTHORIZATION_FAILED
    );
    let verify = AddPartitionsToTxnRequest::default().with_transactions(vec![
        AddPartitionsToTxnTransaction::default()
            .with_transactional_id(TransactionalId(s("alice-txn")))
            .with_producer_id(r.producer_id)
            .with_producer_epoch(r.producer_epoch)
            .with_verify_only(true)
            .with_topics(vec![AddPartitionsToTxnTopic::default()
                .with_name(topic_name("t"))
                .with_partitions(vec![0])]),
    ]);
    assert_eq!(
        alice.send(&verify, 4).unwrap().error_code,
        CLUSTER_AUTHORIZATION_FAILED
    );
    // No marker was written: the partition holds nothing.
    assert_eq!(common::authz::latest(&mut admin, "t"), 0);
    drop(cluster);
}
