//! Fuzzing the request decoder and the API layer's inputs with seeded random data: random
//! frames, and valid requests of every served API and version with bytes flipped,
//! truncated or extended. Decoding must return a value or an error, never panic.

use bytes::{Bytes, BytesMut};
use gregor::api::served_versions;
use gregor::protocol::decode_request;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};
use rand::{Rng, SeedableRng};

fn seed() -> u64 {
    std::env::var("GREGOR_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random)
}

/// A valid request frame (header + body, without the size prefix).
fn frame(key: ApiKey, version: i16, body: &RequestKind) -> Option<Bytes> {
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_static_str("fuzz")));
    let mut buf = BytesMut::new();
    header
        .encode(&mut buf, key.request_header_version(version))
        .ok()?;
    body.encode(&mut buf, version).ok()?;
    Some(buf.freeze())
}

fn samples() -> Vec<(ApiKey, RequestKind)> {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    let topic = TopicName(StrBytes::from_static_str("topic"));
    vec![
        (
            ApiKey::ApiVersions,
            RequestKind::ApiVersions(ApiVersionsRequest::default()),
        ),
        (
            ApiKey::Metadata,
            RequestKind::Metadata(MetadataRequest::default().with_topics(None)),
        ),
        (
            ApiKey::Produce,
            RequestKind::Produce(ProduceRequest::default().with_acks(-1).with_topic_data(
                vec![TopicProduceData::default()
                        .with_name(topic.clone())
                        .with_partition_data(vec![PartitionProduceData::default()
                            .with_index(0)
                            .with_records(Some(Bytes::from_static(&[0u8; 80])))])],
            )),
        ),
        (
            ApiKey::Fetch,
            RequestKind::Fetch(FetchRequest::default().with_max_wait_ms(10)),
        ),
        (
            ApiKey::ListOffsets,
            RequestKind::ListOffsets(ListOffsetsRequest::default()),
        ),
        (
            ApiKey::CreateTopics,
            RequestKind::CreateTopics(CreateTopicsRequest::default()),
        ),
        (
            ApiKey::DeleteTopics,
            RequestKind::DeleteTopics(DeleteTopicsRequest::default()),
        ),
        (
            ApiKey::DescribeConfigs,
            RequestKind::DescribeConfigs(DescribeConfigsRequest::default()),
        ),
        (
            ApiKey::InitProducerId,
            RequestKind::InitProducerId(
                InitProducerIdRequest::default().with_transactional_id(None),
            ),
        ),
        (
            ApiKey::OffsetForLeaderEpoch,
            RequestKind::OffsetForLeaderEpoch(OffsetForLeaderEpochRequest::default()),
        ),
        (
            ApiKey::DeleteRecords,
            RequestKind::DeleteRecords(DeleteRecordsRequest::default()),
        ),
        (
            ApiKey::CreatePartitions,
            RequestKind::CreatePartitions(CreatePartitionsRequest::default()),
        ),
    ]
}

#[test]
fn random_and_mutated_frames_never_panic_the_decoder() {
    let seed = seed();
    eprintln!("fuzz seed {seed} (GREGOR_FUZZ_SEED={seed})");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    // Pure noise of every small length.
    for _ in 0..50_000 {
        let len = rng.gen_range(0..64);
        let bytes: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        let _ = decode_request(Bytes::from(bytes), served_versions);
    }
    // Valid requests of every served version, mutated.
    let mut decoded_ok = 0;
    for (key, body) in samples() {
        let Some((min, max)) = served_versions(key) else {
            continue;
        };
        for version in min..=max {
            let Some(valid) = frame(key, version, &body) else {
                continue;
            };
            assert!(
                decode_request(valid.clone(), served_versions).is_ok(),
                "{key:?} v{version} must decode"
            );
            for _ in 0..2_000 {
                let mut m = valid.to_vec();
                match rng.gen_range(0..4) {
                    0 => {
                        let i = rng.gen_range(0..m.len());
                        m[i] = rng.gen();
                    }
                    1 => m.truncate(rng.gen_range(0..m.len())),
                    2 => m.extend((0..rng.gen_range(1..16)).map(|_| rng.gen::<u8>())),
                    _ => {
                        // Lengths and counts are where decoders go wrong: set a big-endian
                        // i16/i32 somewhere to an extreme.
                        let i = rng.gen_range(0..m.len().saturating_sub(4).max(1));
                        let v: [u8; 4] = [0x7f, 0xff, 0xff, rng.gen()];
                        for (j, b) in v.iter().enumerate() {
                            if i + j < m.len() {
                                m[i + j] = *b;
                            }
                        }
                    }
                }
                if decode_request(Bytes::from(m), served_versions).is_ok() {
                    decoded_ok += 1;
                }
            }
        }
    }
    eprintln!("{decoded_ok} mutated frames still decoded (and would be answered)");
}
