//! Protocol-level behaviour of one broker, against real processes: ApiVersions, Metadata,
//! produce/fetch round trips in every codec, Kafka's error codes for bad requests, and
//! malformed frames that must close only the offending connection.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::kafka::{batch, decode, Client};
use common::{Cluster, Coordinator};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest};
use kafka_protocol::records::Compression;

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const CORRUPT_MESSAGE: i16 = 2;
const MESSAGE_TOO_LARGE: i16 = 10;
const OFFSET_OUT_OF_RANGE: i16 = 1;
const TOPIC_ALREADY_EXISTS: i16 = 36;
const INVALID_TOPIC_EXCEPTION: i16 = 17;
const INVALID_PARTITIONS: i16 = 37;
const INVALID_REPLICATION_FACTOR: i16 = 38;
const INVALID_CONFIG: i16 = 40;
const UNSUPPORTED_VERSION: i16 = 35;

#[test]
fn api_versions_advertises_served_ranges_and_answers_future_versions() {
    let cluster = Cluster::start(Coordinator::Gregor, 1, &[]);
    let mut c = cluster.client(0);
    for v in 0..=3 {
        let r = c.send(&ApiVersionsRequest::default(), v).unwrap();
        assert_eq!(r.error_code, 0);
        let produce = r
            .api_keys
            .iter()
            .find(|k| k.api_key == ApiKey::Produce as i16)
            .expect("Produce advertised");
        assert_eq!((produce.min_version, produce.max_version), (0, 11));
        let fetch = r
            .api_keys
            .iter()
            .find(|k| k.api_key == ApiKey::Fetch as i16)
            .expect("Fetch advertised");
        assert_eq!((fetch.min_version, fetch.max_version), (0, 17));
    }
    // A version we do not serve: v0 body, UNSUPPORTED_VERSION, our ranges (KIP-511).
    let mut raw = TcpStream::connect(cluster.brokers[0].addr()).unwrap();
    let mut req = Vec::new();
    req.extend_from_slice(&18i16.to_be_bytes()); // ApiVersions
    req.extend_from_slice(&9i16.to_be_bytes()); // version 9
    req.extend_from_slice(&42i32.to_be_bytes()); // correlation id
    req.extend_from_slice(&(-1i16).to_be_bytes()); // null client id
    req.push(0); // tagged fields
    raw.write_all(&(req.len() as i32).to_be_bytes()).unwrap();
    raw.write_all(&req).unwrap();
    let mut size = [0u8; 4];
    raw.read_exact(&mut size).unwrap();
    let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
    raw.read_exact(&mut body).unwrap();
    assert_eq!(i32::from_be_bytes(body[0..4].try_into().unwrap()), 42);
    assert_eq!(
        i16::from_be_bytes(body[4..6].try_into().unwrap()),
        UNSUPPORTED_VERSION
    );
    let count = i32::from_be_bytes(body[6..10].try_into().unwrap());
    assert!(count > 10, "expected our API ranges, got {count}");
}

#[test]
fn produce_and_fetch_round_trip_in_every_codec_with_real_zookeeper() {
    // Apache ZooKeeper as the coordinator: a real ZooKeeper must keep working.
    let cluster = Cluster::start(Coordinator::Apache, 1, &[]);
    let mut c = cluster.client(0);
    assert_eq!(c.create_topic("codecs", 1, 1, &[]), 0);
    let codecs = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];
    let mut expected = Vec::new();
    for (i, codec) in codecs.iter().enumerate() {
        let values: Vec<Vec<u8>> = (0..10)
            .map(|j| format!("{codec:?}-{i}-{j}").into_bytes())
            .collect();
        let refs: Vec<&[u8]> = values.iter().map(|v| v.as_slice()).collect();
        let (err, base) = c.produce("codecs", 0, batch(&refs, *codec), -1);
        assert_eq!(err, 0);
        assert_eq!(base, (i * 10) as i64, "contiguous offsets");
        expected.extend(values);
    }
    let got = c.read_all("codecs", 0, 0);
    assert_eq!(got.len(), 50);
    for (i, (offset, value)) in got.iter().enumerate() {
        assert_eq!(*offset, i as i64);
        assert_eq!(value.as_deref(), Some(expected[i].as_slice()));
    }
    // Fetching from the middle of a compressed batch returns the whole batch.
    let (err, _, records) = c.fetch("codecs", 0, 25, 0);
    assert_eq!(err, 0);
    assert_eq!(decode(records).first().map(|r| r.0), Some(20));
    assert_eq!(c.list_offset("codecs", 0, -2), (0, 0));
    assert_eq!(c.list_offset("codecs", 0, -1), (0, 50));
}

#[test]
fn bad_requests_get_kafkas_error_codes() {
    let cluster = Cluster::start(Coordinator::Gregor, 1, &[]);
    let mut c = cluster.client(0);
    assert_eq!(
        c.create_topic("t", 2, 1, &[("max.message.bytes", "2000")]),
        0
    );
    assert_eq!(c.create_topic("t", 2, 1, &[]), TOPIC_ALREADY_EXISTS);
    assert_eq!(
        c.create_topic("bad name!", 1, 1, &[]),
        INVALID_TOPIC_EXCEPTION
    );
    assert_eq!(c.create_topic("zero", 0, 1, &[]), INVALID_PARTITIONS);
    assert_eq!(c.create_topic("rf", 1, 3, &[]), INVALID_REPLICATION_FACTOR);
    assert_eq!(
        c.create_topic("cfg", 1, 1, &[("retention.ms", "soon")]),
        INVALID_CONFIG
    );
    assert_eq!(
        c.create_topic("cfg", 1, 1, &[("no.such.config", "1")]),
        INVALID_CONFIG
    );

    let ok = batch(&[b"hello"], Compression::None);
    assert_eq!(
        c.produce("missing", 0, ok.clone(), 1).0,
        UNKNOWN_TOPIC_OR_PARTITION
    );
    assert_eq!(
        c.produce("t", 7, ok.clone(), 1).0,
        UNKNOWN_TOPIC_OR_PARTITION
    );

    let mut corrupt = ok.to_vec();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff; // breaks the CRC
    assert_eq!(c.produce("t", 0, corrupt.into(), 1).0, CORRUPT_MESSAGE);

    let big = vec![b'x'; 5000];
    assert_eq!(
        c.produce("t", 0, batch(&[&big], Compression::None), 1).0,
        MESSAGE_TOO_LARGE
    );

    // Nothing bad was written: the partition holds exactly the good batch.
    assert_eq!(c.produce("t", 0, ok, 1), (0, 0));
    assert_eq!(c.read_all("t", 0, 0).len(), 1);
    assert_eq!(c.fetch("t", 0, 5, 0).0, OFFSET_OUT_OF_RANGE);
    assert_eq!(c.fetch("missing", 0, 0, 0).0, UNKNOWN_TOPIC_OR_PARTITION);
}

#[test]
fn malformed_frames_close_only_their_connection() {
    let cluster = Cluster::start(
        Coordinator::Gregor,
        1,
        &[("socket.request.max.bytes", "1048576")],
    );
    let mut healthy = cluster.client(0);
    assert_eq!(healthy.create_topic("m", 1, 1, &[]), 0);

    let garbage: Vec<Vec<u8>> = vec![
        vec![0x7f, 0xff, 0xff, 0xff], // frame size over the limit
        vec![0xff, 0xff, 0xff, 0xf0], // negative size
        [&8i32.to_be_bytes()[..], &[0x7f, 0x7f, 0, 0, 0, 0, 0, 1]].concat(), // unknown api key
        [
            &10i32.to_be_bytes()[..],
            &[0, 0, 0, 9, 0, 0, 0, 1, 0xff, 0xff],
        ]
        .concat(), // produce v9, truncated body
        [&6i32.to_be_bytes()[..], &[0, 3, 0, 12, 0, 0]].concat(), // metadata v12, truncated header
    ];
    for bytes in garbage {
        let mut s = TcpStream::connect(cluster.brokers[0].addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(&bytes).unwrap();
        let mut buf = [0u8; 16];
        // The broker closes the connection (read returns 0 or an error), it does not hang.
        let n = s.read(&mut buf).unwrap_or(0);
        assert_eq!(n, 0, "expected the connection to be closed after {bytes:?}");
    }
    // Other clients are unaffected and the broker is alive.
    assert_eq!(
        healthy.produce("m", 0, batch(&[b"still fine"], Compression::None), 1),
        (0, 0)
    );
    let mut fresh = Client::connect(&cluster.brokers[0].addr()).unwrap();
    assert_eq!(fresh.read_all("m", 0, 0).len(), 1);
}
