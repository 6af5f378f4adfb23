//! Message formats v0/v1 and the old API versions against a real broker process, with
//! raw requests: old producers' message sets up-converted and read back by old and new
//! fetches, Kafka's errors for bad sets, bounded down-conversion of a stored decompression
//! bomb, `message.downconversion.enable`, zstd topics below Fetch v10, ListOffsets v0,
//! OffsetCommit/OffsetFetch v0 (ZooKeeper), DescribeConfigs v0 and KIP-467 record errors.

mod common;

use std::io::Write;

use bytes::{Bytes, BytesMut};
use common::kafka::{batch, decode, topic_name, Client};
use common::{Cluster, Coordinator};
use gregor::storage::legacy::message::{self, MessageIter};
use indexmap::IndexMap;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

const MIB: u64 = 1 << 20;
const CORRUPT_MESSAGE: i16 = 2;
const INVALID_TIMESTAMP: i16 = 32;
const UNSUPPORTED_VERSION: i16 = 35;
const UNSUPPORTED_COMPRESSION_TYPE: i16 = 76;
const INVALID_RECORD: i16 = 87;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A message set as an old producer writes it: one message each, or one gzip wrapper
/// (magic 1: relative inner offsets, the wrapper at the last).
fn producer_set(magic: u8, gzip: bool, msgs: &[(&str, &str)], ts: i64) -> Bytes {
    let mut inner = Vec::new();
    for (i, (k, v)) in msgs.iter().enumerate() {
        let offset = if gzip { i as i64 } else { 0 };
        message::write(
            &mut inner,
            offset,
            magic,
            0,
            ts,
            Some(k.as_bytes()),
            Some(v.as_bytes()),
        );
    }
    if !gzip {
        return Bytes::from(inner);
    }
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(&inner).unwrap();
    let value = e.finish().unwrap();
    let mut out = Vec::new();
    message::write(
        &mut out,
        msgs.len() as i64 - 1,
        magic,
        1,
        ts,
        None,
        Some(&value),
    );
    Bytes::from(out)
}

fn produce(c: &mut Client, topic: &str, records: Bytes, version: i16) -> PartitionProduceResponse {
    let req = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])]);
    let resp = c.send(&req, version).expect("Produce");
    resp.responses[0].partition_responses[0].clone()
}

fn fetch(c: &mut Client, topic: &str, offset: i64, version: i16, max_bytes: i32) -> PartitionData {
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(max_bytes)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_current_leader_epoch(-1)
                .with_last_fetched_epoch(-1)
                .with_partition_max_bytes(max_bytes)])]);
    let resp = c.send(&req, version).expect("Fetch");
    resp.responses[0].partitions[0].clone()
}

/// (offset, timestamp, key, value) of every message of a v0/v1 set, wrappers expanded.
fn read_set(set: &[u8]) -> Vec<(i64, i64, String, String)> {
    let mut out = Vec::new();
    for m in MessageIter::new(set) {
        let m = m.expect("a whole message");
        assert!(m.crc_ok());
        let s = |b: Option<&[u8]>| String::from_utf8(b.unwrap_or_default().to_vec()).unwrap();
        if m.codec() == 0 {
            out.push((m.offset, m.timestamp, s(m.key), s(m.value)));
            continue;
        }
        let inflated = gregor::storage::codec::decompress_legacy(
            m.codec(),
            m.magic,
            m.value.unwrap(),
            1 << 24,
        )
        .unwrap();
        let inner: Vec<_> = MessageIter::new(&inflated).map(Result::unwrap).collect();
        let last = inner.last().unwrap().offset;
        for i in &inner {
            let offset = if m.magic == 1 {
                m.offset - last + i.offset
            } else {
                i.offset
            };
            out.push((offset, i.timestamp, s(i.key), s(i.value)));
        }
    }
    out
}

fn start() -> (Cluster, Client) {
    let cluster = Cluster::start(Coordinator::Gregor, 1, &[]);
    let c = cluster.client(0);
    (cluster, c)
}

#[test]
fn old_producers_and_consumers_share_v2_storage() {
    let (_cluster, mut c) = start();
    assert_eq!(c.create_topic("legacy", 1, 1, &[]), 0);
    let ts = now_ms() - 1000;
    let r = produce(
        &mut c,
        "legacy",
        producer_set(0, false, &[("a", "0"), ("b", "1")], ts),
        0,
    );
    assert_eq!((r.error_code, r.base_offset), (0, 0));
    let r = produce(
        &mut c,
        "legacy",
        producer_set(1, true, &[("c", "2"), ("d", "3"), ("e", "4")], ts),
        2,
    );
    assert_eq!((r.error_code, r.base_offset), (0, 2));
    let r = produce(&mut c, "legacy", batch(&[b"5", b"6"], Compression::Lz4), 9);
    assert_eq!((r.error_code, r.base_offset), (0, 5));

    // Fetch v0: format v0, no timestamps; v2: format v1; v12: the stored v2 batches.
    let v0 = fetch(&mut c, "legacy", 0, 0, 1 << 20);
    assert_eq!((v0.error_code, v0.high_watermark), (0, 7));
    let got = read_set(&v0.records.unwrap());
    assert_eq!(
        got.iter().map(|r| r.0).collect::<Vec<_>>(),
        (0..7).collect::<Vec<_>>()
    );
    assert_eq!(
        got.iter().map(|r| r.3.as_str()).collect::<Vec<_>>(),
        ["0", "1", "2", "3", "4", "5", "6"]
    );
    assert!(got.iter().all(|r| r.1 == -1), "format v0 has no timestamps");
    let v2 = read_set(&fetch(&mut c, "legacy", 3, 2, 1 << 20).records.unwrap());
    // The compressed batch holding offset 3 comes whole (old consumers skip to 3).
    assert_eq!(v2.iter().map(|r| r.0).collect::<Vec<_>>(), [2, 3, 4, 5, 6]);
    assert_eq!(v2[0].1, ts, "magic 1 keeps the producer's timestamp");
    let modern = decode(fetch(&mut c, "legacy", 0, 12, 1 << 20).records.unwrap());
    assert_eq!(modern.len(), 7);

    // Fetch v3 with a limit below the first message: that message whole (KIP-74); v2:
    // a hard limit, the message cut as Kafka sends it.
    let whole = fetch(&mut c, "legacy", 0, 3, 10).records.unwrap();
    assert_eq!(read_set(&whole).len(), 1);
    assert_eq!(fetch(&mut c, "legacy", 0, 2, 10).records.unwrap().len(), 10);

    // Kafka's answers to bad sets.
    let mut bad = producer_set(1, false, &[("k", "v")], ts).to_vec();
    *bad.last_mut().unwrap() ^= 1;
    assert_eq!(
        produce(&mut c, "legacy", Bytes::from(bad), 2).error_code,
        CORRUPT_MESSAGE
    );
    let two = [
        producer_set(1, true, &[("k", "v")], ts),
        producer_set(1, true, &[("k", "v")], ts),
    ]
    .concat();
    assert_eq!(
        produce(&mut c, "legacy", Bytes::from(two), 2).error_code,
        INVALID_RECORD
    );
    let r = produce(
        &mut c,
        "legacy",
        producer_set(1, false, &[("k", "v")], ts),
        3,
    );
    assert_eq!(
        r.error_code, INVALID_RECORD,
        "Produce v3+ takes v2 batches only"
    );
    assert_eq!(
        fetch(&mut c, "legacy", 0, 12, 1 << 20).high_watermark,
        7,
        "nothing appended"
    );
}

#[test]
fn down_conversion_is_bounded_and_follows_the_topic_configs() {
    let (cluster, mut c) = start();
    assert_eq!(c.create_topic("bomb", 1, 1, &[]), 0);
    // 1 GiB of zeros as a gzip v2 batch under 1 MB, stored unread (its header is sane).
    let zeros = vec![0u8; 64 << 20];
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&zeros).unwrap();
    let payload = gz.finish().unwrap().repeat(15);
    let mut b = Vec::new();
    b.extend_from_slice(&0i64.to_be_bytes());
    b.extend_from_slice(&((49 + payload.len()) as i32).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.push(2);
    b.extend_from_slice(&0u32.to_be_bytes());
    b.extend_from_slice(&1i16.to_be_bytes());
    b.extend_from_slice(&999i32.to_be_bytes());
    b.extend_from_slice(&now_ms().to_be_bytes());
    b.extend_from_slice(&now_ms().to_be_bytes());
    b.extend_from_slice(&(-1i64).to_be_bytes());
    b.extend_from_slice(&(-1i16).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.extend_from_slice(&1000i32.to_be_bytes());
    b.extend_from_slice(&payload);
    gregor::storage::batch::patch::rewrite_crc(&mut b);
    assert_eq!(produce(&mut c, "bomb", Bytes::from(b), 9).error_code, 0);
    let r = fetch(&mut c, "bomb", 0, 2, 1 << 20);
    assert_eq!(r.error_code, CORRUPT_MESSAGE, "the bomb is not converted");
    // The same bomb as a magic 1 wrapper from an old producer.
    let mut set = Vec::new();
    message::write(&mut set, 0, 1, 1, now_ms(), None, Some(&payload));
    assert_eq!(
        produce(&mut c, "bomb", Bytes::from(set), 2).error_code,
        CORRUPT_MESSAGE
    );
    let peak = cluster.brokers[0].process.peak_rss();
    assert!(peak < 512 * MIB, "peak RSS {} MiB", peak / MIB);

    assert_eq!(
        c.create_topic(
            "noconv",
            1,
            1,
            &[("message.downconversion.enable", "false")]
        ),
        0
    );
    produce(&mut c, "noconv", batch(&[b"x"], Compression::None), 9);
    assert_eq!(
        fetch(&mut c, "noconv", 0, 3, 1 << 20).error_code,
        UNSUPPORTED_VERSION
    );
    assert_eq!(fetch(&mut c, "noconv", 0, 4, 1 << 20).error_code, 0);

    assert_eq!(
        c.create_topic("zstd", 1, 1, &[("compression.type", "zstd")]),
        0
    );
    let r = produce(&mut c, "zstd", batch(&[b"z"], Compression::None), 9);
    assert_eq!(r.error_code, 0);
    assert_eq!(
        fetch(&mut c, "zstd", 0, 9, 1 << 20).error_code,
        UNSUPPORTED_COMPRESSION_TYPE
    );
    assert_eq!(
        decode(fetch(&mut c, "zstd", 0, 10, 1 << 20).records.unwrap()).len(),
        1
    );
}

#[test]
fn list_offsets_v0_zookeeper_offsets_and_describe_configs_v0() {
    let (_cluster, mut c) = start();
    assert_eq!(
        c.create_topic("old", 1, 1, &[("retention.ms", "3600000")]),
        0
    );
    for _ in 0..3 {
        produce(&mut c, "old", batch(&[b"a", b"b"], Compression::None), 9);
    }
    let lo = |c: &mut Client, ts: i64, max: i32| {
        let req = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(topic_name("old"))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(ts)
                    .with_max_num_offsets(max)])]);
        let p = c.send(&req, 0).expect("ListOffsets v0").topics[0].partitions[0].clone();
        (p.error_code, p.old_style_offsets)
    };
    assert_eq!(lo(&mut c, -1, 5), (0, vec![6, 0]));
    assert_eq!(lo(&mut c, -2, 5), (0, vec![0]));
    assert_eq!(lo(&mut c, -3, 1).0, UNSUPPORTED_VERSION);

    // OffsetCommit v0 / OffsetFetch v0 use ZooKeeper, not the group coordinator.
    let commit = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("zk-group")))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(topic_name("old"))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(4)])]);
    let r = c.send(&commit, 0).expect("OffsetCommit v0");
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
    let fetch_req = OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("zk-group")))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(topic_name("old"))
            .with_partition_indexes(vec![0, 7])]));
    let fetched = |c: &mut Client, v: i16| {
        let r = c.send(&fetch_req, v).expect("OffsetFetch");
        r.topics[0]
            .partitions
            .iter()
            .map(|p| (p.partition_index, p.committed_offset, p.error_code))
            .collect::<Vec<_>>()
    };
    assert_eq!(fetched(&mut c, 0), vec![(0, 4, 0), (7, -1, 0)]);
    assert_eq!(
        fetched(&mut c, 1)[0].1,
        -1,
        "the coordinator holds no v0 commit"
    );

    let req =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("old"))
            .with_configuration_keys(Some(vec![
                StrBytes::from_static_str("retention.ms"),
                StrBytes::from_static_str("segment.bytes"),
            ]))]);
    let r = c.send(&req, 0).expect("DescribeConfigs v0");
    let entries: Vec<_> = r.results[0]
        .configs
        .iter()
        .map(|e| {
            (
                e.name.to_string(),
                e.value.as_ref().map(|v| v.to_string()),
                e.is_default,
            )
        })
        .collect();
    assert_eq!(
        entries,
        vec![
            ("retention.ms".into(), Some("3600000".into()), false),
            ("segment.bytes".into(), Some("1073741824".into()), true),
        ]
    );
}

fn keyed_batch(keys: &[Option<&str>], ts: i64) -> Bytes {
    let records: Vec<Record> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: i as i32 - 1,
            timestamp: ts,
            key: k.map(|k| Bytes::from(k.to_string())),
            value: Some(Bytes::from_static(b"v")),
            headers: IndexMap::new(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::Gzip,
        },
    )
    .unwrap();
    buf.freeze()
}

#[test]
fn produce_responses_name_the_refused_records() {
    let (_cluster, mut c) = start();
    assert_eq!(
        c.create_topic("keys", 1, 1, &[("cleanup.policy", "compact")]),
        0
    );
    let r = produce(
        &mut c,
        "keys",
        keyed_batch(&[Some("a"), None, Some("c"), None], now_ms()),
        8,
    );
    assert_eq!(r.error_code, INVALID_RECORD);
    let indexes: Vec<i32> = r.record_errors.iter().map(|e| e.batch_index).collect();
    assert_eq!(indexes, [1, 3]);
    assert!(r
        .error_message
        .is_some_and(|m| m.contains("2 record errors")));
    // Before v8 the same error, without the record list.
    let r = produce(&mut c, "keys", keyed_batch(&[None], now_ms()), 7);
    assert_eq!((r.error_code, r.record_errors.len()), (INVALID_RECORD, 0));

    let bounds = [
        ("message.timestamp.before.max.ms", "60000"),
        ("message.timestamp.after.max.ms", "60000"),
    ];
    assert_eq!(c.create_topic("times", 1, 1, &bounds), 0);
    let r = produce(
        &mut c,
        "times",
        keyed_batch(&[Some("a")], now_ms() - 3_600_000),
        9,
    );
    assert_eq!(
        (r.error_code, r.record_errors.len()),
        (INVALID_TIMESTAMP, 1)
    );
    assert_eq!(
        produce(&mut c, "times", keyed_batch(&[Some("a")], now_ms()), 9).error_code,
        0
    );
    // A magic 1 producer's out-of-range timestamp too.
    let set = producer_set(1, true, &[("a", "1"), ("b", "2")], now_ms() + 3_600_000);
    let r = produce(&mut c, "times", set, 2);
    assert_eq!(r.error_code, INVALID_TIMESTAMP);
}
