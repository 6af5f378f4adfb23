//! Hostile requests against a real broker process, sent as an attacker would: tiny
//! requests asking for huge work, repeated names, decompression bombs (rejected, and
//! stored then triggered by ListOffsets, compaction and a restart). Each case checks the
//! Kafka error (or a closed connection), the broker's peak resident memory (VmHWM), that
//! other clients are still served and that acknowledged records are still there.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::kafka::{batch, topic_name, Client};
use common::{wait_until, Cluster, Coordinator};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;

const MIB: u64 = 1 << 20;
const CORRUPT_MESSAGE: i16 = 2;
const INVALID_REQUEST: i16 = 42;
const POLICY_VIOLATION: i16 = 44;

fn assert_peak_below(cluster: &Cluster, limit: u64, what: &str) {
    let peak = cluster.brokers[0].process.peak_rss();
    eprintln!("{what}: broker peak RSS {} MiB", peak / MIB);
    assert!(
        peak < limit,
        "{what}: broker peak RSS {} MiB exceeds {} MiB",
        peak / MIB,
        limit / MIB
    );
}

/// The broker still answers a new client, and `topic`'s records are all there.
fn still_serving(cluster: &Cluster, topic: &str, expected: usize) {
    let mut c = cluster.client(0);
    let got = c.read_all(topic, 0, 0);
    assert_eq!(got.len(), expected, "records of {topic}");
}

fn single_broker(extra: &[(&str, &str)]) -> (Cluster, Client) {
    let cluster = Cluster::start(Coordinator::Gregor, 1, extra);
    let mut c = cluster.client(0);
    assert_eq!(c.create_topic("acked", 1, 1, &[]), 0);
    let (err, _) = c.produce("acked", 0, batch(&[b"one", b"two"], Compression::None), -1);
    assert_eq!(err, 0);
    (cluster, c)
}

#[test]
fn huge_partition_counts_are_refused_before_any_work() {
    let (cluster, mut c) = single_broker(&[]);
    let started = Instant::now();
    // ~60 bytes asking for 2^31-1 partitions, validate only.
    let req = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic_name("huge"))
            .with_num_partitions(i32::MAX)
            .with_replication_factor(1)])
        .with_timeout_ms(5000)
        .with_validate_only(true);
    let resp = c.send(&req, 2).expect("CreateTopics answered");
    assert_eq!(resp.topics[0].error_code, POLICY_VIOLATION);
    // Many topics adding up past the bound are refused together.
    let many = CreateTopicsRequest::default()
        .with_topics(
            (0..3)
                .map(|i| {
                    CreatableTopic::default()
                        .with_name(topic_name(&format!("many-{i}")))
                        .with_num_partitions(4000)
                        .with_replication_factor(1)
                })
                .collect(),
        )
        .with_timeout_ms(5000);
    let resp = c.send(&many, 7).expect("CreateTopics answered");
    assert!(resp.topics.iter().all(|t| t.error_code == POLICY_VIOLATION));
    let req = CreatePartitionsRequest::default()
        .with_topics(vec![CreatePartitionsTopic::default()
            .with_name(topic_name("acked"))
            .with_count(i32::MAX)])
        .with_timeout_ms(5000)
        .with_validate_only(true);
    let resp = c.send(&req, 3).expect("CreatePartitions answered");
    assert_eq!(resp.results[0].error_code, POLICY_VIOLATION);
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(c.metadata(Some(&["many-0"])).unwrap().topics[0].error_code != 0);
    assert_peak_below(&cluster, 256 * MIB, "huge partition counts");
    still_serving(&cluster, "acked", 2);
}

#[test]
fn repeated_names_are_answered_once() {
    let (cluster, mut c) = single_broker(&[]);
    assert_eq!(c.create_topic("wide", 50, 1, &[]), 0);
    // Metadata v1 naming one 50-partition topic 200,000 times (2.6 MB).
    let req = MetadataRequest::default().with_topics(Some(
        (0..200_000)
            .map(|_| MetadataRequestTopic::default().with_name(Some(topic_name("wide"))))
            .collect(),
    ));
    let resp = c.send(&req, 1).expect("Metadata answered");
    assert_eq!(resp.topics.len(), 1);
    assert_eq!(resp.topics[0].partitions.len(), 50);

    // DescribeConfigs with 200,000 copies of the broker resource (broker 1's own: the
    // cluster default "" lists only its dynamic keys, none here).
    let req = DescribeConfigsRequest::default().with_resources(
        (0..200_000)
            .map(|_| {
                DescribeConfigsResource::default()
                    .with_resource_type(4)
                    .with_resource_name(StrBytes::from_static_str("1"))
                    .with_configuration_keys(None)
            })
            .collect(),
    );
    let resp = c.send(&req, 1).expect("DescribeConfigs answered");
    assert_eq!(resp.results.len(), 1);
    assert_eq!(resp.results[0].error_code, 0);
    assert!(!resp.results[0].configs.is_empty());

    // IncrementalAlterConfigs naming one topic 200,000 times: INVALID_REQUEST for each,
    // as Kafka, and not one ZooKeeper write (the topic keeps its configs).
    let req = IncrementalAlterConfigsRequest::default().with_resources(
        (0..200_000)
            .map(|i| {
                incremental_alter_configs_request::AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(StrBytes::from_static_str("wide"))
                    .with_configs(vec![
                        incremental_alter_configs_request::AlterableConfig::default()
                            .with_name(StrBytes::from_static_str("retention.ms"))
                            .with_config_operation(0)
                            .with_value(Some(StrBytes::from_string(format!("{}", 1000 + i)))),
                    ])
            })
            .collect(),
    );
    let resp = c.send(&req, 1).expect("IncrementalAlterConfigs answered");
    assert_eq!(resp.responses.len(), 200_000);
    assert!(resp
        .responses
        .iter()
        .all(|r| r.error_code == INVALID_REQUEST));
    let overrides = c.configs(2, "wide");
    assert!(
        overrides
            .iter()
            .all(|(k, _, source)| k != "retention.ms" || *source != 1),
        "no override was written"
    );

    // DescribeGroups naming one group 200,000 times: described once.
    let req = DescribeGroupsRequest::default().with_groups(
        (0..200_000)
            .map(|_| GroupId(StrBytes::from_static_str("g")))
            .collect(),
    );
    let resp = c.send(&req, 5).expect("DescribeGroups answered");
    assert_eq!(resp.groups.len(), 1);

    // Fetch naming one partition 300,000 times: read once, answered once.
    let partition = || {
        FetchPartition::default()
            .with_partition(0)
            .with_fetch_offset(0)
            .with_current_leader_epoch(-1)
            .with_last_fetched_epoch(-1)
            .with_partition_max_bytes(1 << 20)
    };
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_max_bytes(50 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name("acked"))
            .with_partitions((0..300_000).map(|_| partition()).collect())]);
    let resp = c.send(&req, 12).expect("Fetch answered");
    assert_eq!(resp.responses.len(), 1);
    assert_eq!(resp.responses[0].partitions.len(), 1);
    assert_eq!(
        common::kafka::decode(resp.responses[0].partitions[0].records.clone().unwrap()).len(),
        2
    );

    // ListOffsets naming one partition 300,000 times: INVALID_REQUEST for each, as Kafka.
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic_name("acked"))
            .with_partitions(
                (0..300_000)
                    .map(|_| {
                        ListOffsetsPartition::default()
                            .with_partition_index(0)
                            .with_timestamp(-1)
                    })
                    .collect(),
            )]);
    let resp = c.send(&req, 7).expect("ListOffsets answered");
    assert!(resp.topics[0]
        .partitions
        .iter()
        .all(|p| p.error_code == INVALID_REQUEST));
    assert_peak_below(&cluster, 512 * MIB, "repeated names");
    still_serving(&cluster, "acked", 2);
}

/// A v2 batch around an arbitrary (compressed) records payload; `max_timestamp_unset`
/// sends -1 as the header's max timestamp (as sarama does), which makes the broker read
/// the records to recompute it.
fn raw_batch(codec: i16, payload: &[u8], records: i32, max_timestamp_unset: bool) -> Bytes {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut b = Vec::with_capacity(61 + payload.len());
    b.extend_from_slice(&0i64.to_be_bytes());
    b.extend_from_slice(&((49 + payload.len()) as i32).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.push(2);
    b.extend_from_slice(&0u32.to_be_bytes()); // crc, below
    b.extend_from_slice(&codec.to_be_bytes());
    b.extend_from_slice(&(records - 1).to_be_bytes());
    b.extend_from_slice(&now.to_be_bytes());
    let max = if max_timestamp_unset { -1 } else { now };
    b.extend_from_slice(&max.to_be_bytes());
    b.extend_from_slice(&(-1i64).to_be_bytes());
    b.extend_from_slice(&(-1i16).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.extend_from_slice(&records.to_be_bytes());
    b.extend_from_slice(payload);
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(b)
}

/// Compressed streams of zeros expanding far past any sane batch, each under 1 MB.
fn bombs() -> Vec<(&'static str, i16, Vec<u8>)> {
    let zeros = vec![0u8; 64 << 20];
    // zstd and gzip decoders read concatenated frames/members: one compressed 64 MiB of
    // zeros repeated gives 4 GiB (zstd) and ~1 GiB (gzip) from a small batch.
    let zstd_frame = zstd::stream::encode_all(&zeros[..], 3).unwrap();
    let zstd = zstd_frame.repeat(64);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&zeros).unwrap();
    let gzip = gz.finish().unwrap().repeat(15);
    let mut lz = lz4::EncoderBuilder::new()
        .level(9)
        .build(Vec::new())
        .unwrap();
    for _ in 0..3 {
        lz.write_all(&zeros).unwrap();
    }
    let (lz4, res) = lz.finish();
    res.unwrap();
    // A raw snappy block whose header claims 4 GiB - 1 bytes, inside xerial framing.
    let mut block = vec![0xff, 0xff, 0xff, 0xff, 0x0f];
    block.extend_from_slice(&[0u8; 64]);
    let mut snappy = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01".to_vec();
    snappy.extend_from_slice(&(block.len() as u32).to_be_bytes());
    snappy.extend_from_slice(&block);
    for (name, b) in [("zstd", &zstd), ("gzip", &gzip), ("lz4", &lz4)] {
        assert!(b.len() < 1_000_000, "{name} bomb is {} bytes", b.len());
    }
    vec![
        ("zstd", 4, zstd),
        ("gzip", 1, gzip),
        ("lz4", 3, lz4),
        ("snappy", 2, snappy),
    ]
}

#[test]
fn decompression_bombs_are_rejected_and_stored_ones_never_go_off() {
    let (mut cluster, mut c) = single_broker(&[("log.cleaner.backoff.ms", "100")]);
    assert_eq!(
        c.create_topic("compacted", 1, 1, &[("cleanup.policy", "compact")]),
        0
    );
    let bombs = bombs();
    for (name, codec, payload) in &bombs {
        // Read to recompute an unset max timestamp, and read for keys on a compacted topic.
        for (topic, unset) in [("acked", true), ("compacted", false)] {
            let (err, _) = c.produce(topic, 0, raw_batch(*codec, payload, 1000, unset), -1);
            assert_eq!(err, CORRUPT_MESSAGE, "{name} bomb into {topic}");
        }
    }
    assert_peak_below(&cluster, 512 * MIB, "bombs on produce");
    still_serving(&cluster, "acked", 2);

    // Stored: a well-formed header is appended as sent, unread (bytes in, bytes out).
    // Two bombs fill the first segment, a normal batch rolls it.
    let (_, codec, zstd) = &bombs[0];
    // Room for one bomb batch and a small one: the second bomb rolls the segment.
    let segment_bytes = (zstd.len() + 61 + 200).to_string();
    assert_eq!(
        c.create_topic("stored", 1, 1, &[("segment.bytes", &segment_bytes)]),
        0
    );
    for _ in 0..2 {
        let (err, _) = c.produce("stored", 0, raw_batch(*codec, zstd, 1000, false), -1);
        assert_eq!(err, 0, "a stored bomb is accepted unread");
    }
    let (err, normal_offset) = c.produce("stored", 0, batch(&[b"after"], Compression::None), -1);
    assert_eq!((err, normal_offset), (0, 2000));

    // ListOffsets by timestamp: answered from the batch header.
    let (err, offset) = c.list_offset("stored", 0, 0);
    assert_eq!((err, offset), (0, 0));
    assert_peak_below(&cluster, 512 * MIB, "ListOffsets over a stored bomb");

    // Compaction: the cleaner keeps what it cannot read within the bound.
    let req = AlterConfigsRequest::default().with_resources(vec![
        kafka_protocol::messages::alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("stored"))
            .with_configs(
                [
                    ("cleanup.policy", "compact"),
                    ("segment.bytes", segment_bytes.as_str()),
                    ("min.cleanable.dirty.ratio", "0.01"),
                ]
                .iter()
                .map(|(k, v)| {
                    kafka_protocol::messages::alter_configs_request::AlterableConfig::default()
                        .with_name(StrBytes::from_string(k.to_string()))
                        .with_value(Some(StrBytes::from_string(v.to_string())))
                })
                .collect(),
            ),
    ]);
    let resp = c.send(&req, 1).expect("AlterConfigs");
    assert_eq!(resp.responses[0].error_code, 0);
    let log = cluster.brokers[0].process.log.clone();
    wait_until(
        Duration::from_secs(30),
        "the cleaner to meet the bomb",
        || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("compaction keeps a batch too large to decompress")
        },
    );
    assert_peak_below(&cluster, 512 * MIB, "compaction over a stored bomb");

    // Restart: recovery and the cleaner meet the bomb again.
    cluster.brokers[0].process.kill();
    cluster.brokers[0].process.start();
    cluster.wait_for_broker(0);
    let mut c = cluster.client(0);
    wait_until(
        Duration::from_secs(30),
        "the stored topic to be served",
        || c.list_offset("stored", 0, -1) == (0, 2001),
    );
    let (err, _, records) = c.fetch("stored", 0, 2000, 0);
    assert_eq!(err, 0);
    let after = common::kafka::decode(records);
    assert_eq!(after.last().map(|r| r.0), Some(2000));
    assert_peak_below(&cluster, 512 * MIB, "restart over a stored bomb");
    still_serving(&cluster, "acked", 2);
}

/// Opens a raw connection and announces a 100 MB frame, sending only its first bytes.
fn stalled_frame(addr: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(&100_000_000i32.to_be_bytes()).unwrap();
    s.write_all(&[0, 3, 0, 12]).unwrap();
    s
}

#[test]
fn a_claimed_frame_costs_what_arrives_and_idle_connections_close() {
    let (cluster, _c) = single_broker(&[("connections.max.idle.ms", "3000")]);
    let addr = cluster.brokers[0].addr();
    let mut stalled: Vec<TcpStream> = (0..200).map(|_| stalled_frame(&addr)).collect();
    // Trickle: a byte a second for a few seconds on some of them; still no memory.
    for _ in 0..2 {
        std::thread::sleep(Duration::from_secs(1));
        for s in stalled.iter_mut().take(20) {
            let _ = s.write_all(&[0]);
        }
    }
    // 200 x 100 MB claimed, a few KB sent: the broker holds what it received.
    assert_peak_below(&cluster, 256 * MIB, "200 stalled 100 MB frames");
    still_serving(&cluster, "acked", 2);
    // connections.max.idle.ms closes them (read returns end of stream).
    for s in &mut stalled {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut buf = [0u8; 1];
        let n = s.read(&mut buf).unwrap_or(0);
        assert_eq!(n, 0, "an idle connection is closed, not answered");
    }
}

#[test]
fn ten_thousand_connections_under_a_small_fd_limit_leave_the_broker_working() {
    let (mut cluster, _) = single_broker(&[]);
    // Restart the broker with ulimit -n 1024.
    cluster.brokers[0].process.kill();
    cluster.brokers[0].process.nofile = Some(1024);
    cluster.brokers[0].process.start();
    cluster.wait_for_broker(0);
    let addr = cluster.brokers[0].addr();
    let mut producer = cluster.client(0);
    raise_own_fd_limit();
    let mut idle = Vec::new();
    let target: std::net::SocketAddr = addr.parse().unwrap();
    let mut attempts = 0;
    let mut failed_in_a_row = 0;
    while attempts < 10_000 && failed_in_a_row < 200 {
        // Past the cap the broker stops accepting; the kernel backlog then fills and
        // connects time out (after 200 in a row the listener is saturated: more
        // attempts add nothing). Either way the broker must simply keep working.
        attempts += 1;
        match TcpStream::connect_timeout(&target, Duration::from_millis(20)) {
            Ok(s) => {
                idle.push(s);
                failed_in_a_row = 0;
            }
            Err(_) => failed_in_a_row += 1,
        }
    }
    eprintln!("{} of {attempts} connections established", idle.len());
    assert!(
        attempts > 1024,
        "more connections than the broker has descriptors for were attempted"
    );
    assert!(
        idle.len() >= 768,
        "the broker accepted up to its cap (1024 descriptors less the reserve)"
    );
    // The connected producer keeps writing, and the broker can still open new segment
    // files and reach ZooKeeper: creating a topic needs both.
    for i in 0..20 {
        let (err, _) = producer.produce("acked", 0, batch(&[b"more"], Compression::None), -1);
        assert_eq!(err, 0, "produce {i} with 10,000 connections open");
    }
    assert_eq!(producer.create_topic("after-flood", 3, 1, &[]), 0);
    let (err, _) = producer.produce("after-flood", 2, batch(&[b"x"], Compression::None), -1);
    assert_eq!(err, 0);
    assert!(cluster.brokers[0].process.is_running());
    drop(idle);
    // With the flood gone a new client is served again.
    wait_until(
        Duration::from_secs(30),
        "a new connection to be served",
        || {
            Client::connect(&addr)
                .ok()
                .and_then(|mut c| c.metadata(None).ok())
                .is_some()
        },
    );
    still_serving(&cluster, "acked", 22);
}

fn raise_own_fd_limit() {
    // SAFETY: getrlimit/setrlimit read and write only the struct passed.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
}

#[test]
fn max_connections_per_ip_closes_the_excess() {
    let (cluster, mut c) = single_broker(&[("max.connections.per.ip", "5")]);
    let addr = cluster.brokers[0].addr();
    // `c` holds one; four more fit, the sixth is closed at once.
    let held: Vec<Client> = (0..4).map(|_| Client::connect(&addr).unwrap()).collect();
    let mut extra = TcpStream::connect(&addr).unwrap();
    extra
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 1];
    assert_eq!(extra.read(&mut buf).unwrap_or(0), 0, "closed by the broker");
    assert!(c.metadata(None).is_ok(), "admitted connections are served");
    drop(held);
}

#[test]
fn a_failed_acks0_produce_closes_the_connection() {
    let cluster = Cluster::start(Coordinator::Gregor, 2, &[]);
    let mut c = cluster.client(0);
    assert_eq!(c.create_topic("zero", 1, 1, &[]), 0);
    let leader = c.leader("zero", 0);
    let other = cluster.brokers.iter().find(|b| b.id != leader).unwrap();
    // Raw acks=0 Produce v9 to the broker that does not lead the partition.
    let mut s = TcpStream::connect(other.addr()).unwrap();
    s.write_all(&acks0_produce("zero", b"lost?")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 1];
    assert_eq!(
        s.read(&mut buf).unwrap_or(1),
        0,
        "the non-leader closes the connection of a failed acks=0 produce"
    );
    // A successful acks=0 produce to the leader keeps its connection open.
    let mut to_leader = cluster.client(cluster.broker_index(leader));
    let mut s = TcpStream::connect(cluster.brokers[cluster.broker_index(leader)].addr()).unwrap();
    s.write_all(&acks0_produce("zero", b"kept")).unwrap();
    wait_until(Duration::from_secs(10), "the acks=0 record", || {
        to_leader.list_offset("zero", 0, -1) == (0, 1)
    });
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    match s.read(&mut buf) {
        Ok(0) => panic!("a successful acks=0 produce closed its connection"),
        Ok(_) => panic!("acks=0 got a response"),
        Err(e) => assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "{e}"
        ),
    }
}

/// A raw acks=0 Produce v9 frame of one record to partition 0 of `topic`.
fn acks0_produce(topic: &str, value: &[u8]) -> Vec<u8> {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    let req = ProduceRequest::default()
        .with_acks(0)
        .with_timeout_ms(1000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(batch(&[value], Compression::None)))])]);
    encode_request(ApiKey::Produce, 9, &RequestKind::Produce(req))
}

/// A request frame: size, header v1, body.
fn encode_request(key: ApiKey, version: i16, body: &RequestKind) -> Vec<u8> {
    use kafka_protocol::protocol::Encodable;
    let mut buf = bytes::BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("hostile")))
        .encode(&mut buf, key.request_header_version(version))
        .unwrap();
    body.encode(&mut buf, version).unwrap();
    let mut out = (buf.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(&buf);
    out
}

#[test]
fn queued_max_request_bytes_bounds_frames_in_memory() {
    let (cluster, _c) = single_broker(&[("queued.max.request.bytes", "1000000")]);
    let addr = cluster.brokers[0].addr();
    // A frame larger than the whole pool closes its connection.
    let mut big = TcpStream::connect(&addr).unwrap();
    big.write_all(&2_000_000i32.to_be_bytes()).unwrap();
    big.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 1];
    assert_eq!(
        big.read(&mut buf).unwrap_or(0),
        0,
        "oversized frame: closed"
    );

    // One connection holds almost all of the pool with a frame it never finishes...
    let mut hog = TcpStream::connect(&addr).unwrap();
    hog.write_all(&999_990i32.to_be_bytes()).unwrap();
    hog.write_all(&[0; 100]).unwrap();
    // ...so another client's request waits for room rather than being read. (Until the
    // broker has read the hog's size a probe may still be answered: probe again.)
    let metadata = || {
        let req = MetadataRequest::default().with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(topic_name("acked"))),
        ]));
        encode_request(ApiKey::Metadata, 1, &RequestKind::Metadata(req))
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut waiting = loop {
        let mut probe = TcpStream::connect(&addr).unwrap();
        probe.write_all(&metadata()).unwrap();
        probe
            .set_read_timeout(Some(Duration::from_millis(1500)))
            .unwrap();
        if probe.read(&mut buf).is_err() {
            break probe; // no answer while the pool is held
        }
        assert!(
            Instant::now() < deadline,
            "requests were answered while the pool was held"
        );
    };
    drop(hog);
    waiting
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut size = [0u8; 4];
    waiting
        .read_exact(&mut size)
        .expect("answered once the pool frees");
    assert!(i32::from_be_bytes(size) > 0);
    still_serving(&cluster, "acked", 2);
}
