//! Round trips through both converters: message sets as old producers write them,
//! up-converted to v2 as on produce, then down-converted as on fetch and read back as an
//! old consumer reads them; random content with proptest.

use proptest::prelude::*;

use super::super::batch::{patch, Batch, HeaderFields};
use super::super::codec::{self, decompress_legacy, lz4_legacy};
use super::super::config::{CleanupPolicy, Compression, LogConfig, TimestampType};
use super::super::error::AppendError;
use super::down::{down_convert, DownConvertError};
use super::message::{self, MessageIter, TIMESTAMP_TYPE_MASK};
use super::up::up_convert;

type Rec = (Option<Vec<u8>>, Option<Vec<u8>>, i64);

/// A message set as a magic 0/1 producer sends it: one message per record, or one
/// wrapper (magic 1: relative inner offsets and the wrapper at the last one).
fn producer_set(magic: u8, codec: u8, recs: &[Rec]) -> Vec<u8> {
    let mut inner = Vec::new();
    for (i, (k, v, ts)) in recs.iter().enumerate() {
        let offset = if codec == 0 { 0 } else { i as i64 };
        message::write(
            &mut inner,
            offset,
            magic,
            0,
            *ts,
            k.as_deref(),
            v.as_deref(),
        );
    }
    if codec == 0 {
        return inner;
    }
    let mut value = codec::compress(codec, &inner, None).unwrap();
    if codec == 3 && magic == 0 {
        lz4_legacy::set_header_checksum(&mut value, true);
    }
    let mut out = Vec::new();
    let max_ts = recs.iter().map(|r| r.2).max().unwrap_or(-1);
    message::write(
        &mut out,
        recs.len() as i64 - 1,
        magic,
        codec,
        max_ts,
        None,
        Some(&value),
    );
    out
}

/// What an old consumer reads from a message set: (offset, timestamp, key, value),
/// wrappers expanded.
/// (offset, timestamp, key, value) as an old consumer sees a message.
type Read = (i64, i64, Option<Vec<u8>>, Option<Vec<u8>>);

fn consumer_read(set: &[u8]) -> Vec<Read> {
    let mut out = Vec::new();
    for m in MessageIter::new(set) {
        let m = m.unwrap();
        assert!(m.crc_ok());
        if m.codec() == 0 {
            out.push((
                m.offset,
                m.timestamp,
                m.key.map(<[u8]>::to_vec),
                m.value.map(<[u8]>::to_vec),
            ));
            continue;
        }
        let inflated = decompress_legacy(m.codec(), m.magic, m.value.unwrap(), 1 << 26).unwrap();
        let inner: Vec<_> = MessageIter::new(&inflated).map(Result::unwrap).collect();
        let last = inner.last().unwrap().offset;
        for i in &inner {
            assert!(i.crc_ok());
            let offset = if m.magic == 1 {
                m.offset - last + i.offset
            } else {
                i.offset
            };
            let ts = if m.is_log_append_time() {
                m.timestamp
            } else {
                i.timestamp
            };
            out.push((
                offset,
                ts,
                i.key.map(<[u8]>::to_vec),
                i.value.map(<[u8]>::to_vec),
            ));
        }
    }
    out
}

/// Up-converts and stamps the batch at `base` as the log would.
fn appended(set: &[u8], config: &LogConfig, base: i64) -> Vec<u8> {
    let mut batch = up_convert(set, config, 1_700_000_000_000).unwrap();
    patch::set_base_offset(&mut batch, base);
    batch
}

fn rec(k: &str, v: &str, ts: i64) -> Rec {
    (Some(k.as_bytes().to_vec()), Some(v.as_bytes().to_vec()), ts)
}

#[test]
fn every_magic_and_codec_round_trips() {
    let recs = vec![rec("a", "1", 1000), (None, None, 1002), rec("", "", 1001)];
    for magic in 0..=1u8 {
        for codec in 0..=3u8 {
            let set = producer_set(magic, codec, &recs);
            let batch = appended(&set, &LogConfig::default(), 100);
            let b = Batch::parse(&batch).unwrap();
            assert_eq!(
                (b.compression(), b.record_count(), b.last_offset()),
                (codec, 3, 102)
            );
            let down = down_convert(&batch, magic, 100, 1 << 20, true, 1 << 20).unwrap();
            let read = consumer_read(&down.records);
            let want: Vec<_> = recs
                .iter()
                .enumerate()
                .map(|(i, (k, v, ts))| {
                    (
                        100 + i as i64,
                        if magic == 0 { -1 } else { *ts },
                        k.clone(),
                        v.clone(),
                    )
                })
                .collect();
            assert_eq!(read, want, "magic {magic} codec {codec}");
        }
    }
}

#[test]
fn the_topic_codec_wins_and_zstd_cannot_go_down() {
    let set = producer_set(1, 1, &[rec("k", "v", 5)]);
    let zstd = LogConfig {
        compression: Compression::Codec {
            codec: 4,
            level: None,
        },
        ..LogConfig::default()
    };
    let batch = appended(&set, &zstd, 0);
    assert_eq!(Batch::parse(&batch).unwrap().compression(), 4);
    assert_eq!(
        down_convert(&batch, 1, 0, 1 << 20, true, 1 << 20).unwrap_err(),
        DownConvertError::UnsupportedCompression(1)
    );
    let lz4 = LogConfig {
        compression: Compression::Codec {
            codec: 3,
            level: Some(1),
        },
        ..LogConfig::default()
    };
    let plain = producer_set(0, 0, &[rec("k", "v", 5), rec("k2", "v2", 6)]);
    let batch = appended(&plain, &lz4, 7);
    assert_eq!(Batch::parse(&batch).unwrap().compression(), 3);
    assert_eq!(
        consumer_read(
            &down_convert(&batch, 0, 7, 1 << 20, true, 1 << 20)
                .unwrap()
                .records
        )
        .len(),
        2
    );
}

#[test]
fn uncompressed_batches_start_at_the_fetch_offset_and_stop_at_the_limit() {
    let recs: Vec<Rec> = (0..10).map(|i| rec("key", "value", i)).collect();
    let batch = appended(&producer_set(1, 0, &recs), &LogConfig::default(), 50);
    let all = down_convert(&batch, 1, 53, 1 << 20, true, 1 << 20).unwrap();
    assert_eq!(
        consumer_read(&all.records)
            .iter()
            .map(|r| r.0)
            .collect::<Vec<_>>(),
        (53..60).collect::<Vec<_>>()
    );
    let one = all.records.len() / 7;
    let some = down_convert(&batch, 1, 53, one * 3 + 5, true, 1 << 20).unwrap();
    assert_eq!(some.records.len(), one * 3, "whole messages only");
    // Below one message: v3 returns it whole, v0-v2 cut at the limit.
    assert_eq!(
        down_convert(&batch, 1, 53, 10, true, 1 << 20)
            .unwrap()
            .records
            .len(),
        one
    );
    assert_eq!(
        down_convert(&batch, 1, 53, 10, false, 1 << 20)
            .unwrap()
            .records
            .len(),
        10
    );
    // Compressed: the whole wrapper, records before the fetch offset included.
    let gz = appended(&producer_set(1, 1, &recs), &LogConfig::default(), 50);
    let read = consumer_read(
        &down_convert(&gz, 1, 55, 1 << 20, true, 1 << 20)
            .unwrap()
            .records,
    );
    assert_eq!(read.first().map(|r| r.0), Some(50));
    assert_eq!(read.len(), 10);
}

#[test]
fn log_append_time_batches_keep_their_time() {
    let mut batch = appended(
        &producer_set(1, 0, &[rec("k", "v", 5)]),
        &LogConfig::default(),
        0,
    );
    patch::set_log_append_time(&mut batch, 777);
    let down = down_convert(&batch, 1, 0, 1 << 20, true, 1 << 20).unwrap();
    let m = MessageIter::new(&down.records).next().unwrap().unwrap();
    assert_eq!(
        (m.timestamp, m.attributes & TIMESTAMP_TYPE_MASK),
        (777, TIMESTAMP_TYPE_MASK)
    );
}

#[test]
fn kafkas_errors_for_bad_sets() {
    let cfg = LogConfig::default();
    let good = producer_set(1, 0, &[rec("k", "v", 5)]);
    let mut bad_crc = good.clone();
    *bad_crc.last_mut().unwrap() ^= 1;
    assert!(matches!(
        up_convert(&bad_crc, &cfg, 0),
        Err(AppendError::CorruptMessage(_))
    ));
    let mut mixed = good.clone();
    mixed.extend_from_slice(&producer_set(0, 0, &[rec("k", "v", 5)]));
    assert!(matches!(
        up_convert(&mixed, &cfg, 0),
        Err(AppendError::InvalidRecord(_))
    ));
    let two_wrappers = [
        producer_set(1, 1, &[rec("a", "b", 1)]),
        producer_set(1, 1, &[rec("a", "b", 1)]),
    ]
    .concat();
    assert!(matches!(
        up_convert(&two_wrappers, &cfg, 0),
        Err(AppendError::InvalidRecord(_))
    ));
    let small = LogConfig {
        max_message_bytes: 10,
        ..LogConfig::default()
    };
    assert!(matches!(
        up_convert(&good, &small, 0),
        Err(AppendError::MessageTooLarge { .. })
    ));
    // A corrupt inner message: the wrapper's CRC is fine, the inner one is not.
    let mut inner = Vec::new();
    message::write(&mut inner, 0, 1, 0, 5, Some(b"k"), Some(b"v"));
    *inner.last_mut().unwrap() ^= 1;
    let mut set = Vec::new();
    message::write(
        &mut set,
        0,
        1,
        1,
        5,
        None,
        Some(&codec::compress(1, &inner, None).unwrap()),
    );
    assert!(matches!(
        up_convert(&set, &cfg, 0),
        Err(AppendError::CorruptMessage(_))
    ));
}

#[test]
fn record_errors_name_the_refused_records() {
    let compacted = LogConfig {
        cleanup_policy: CleanupPolicy::Compact,
        ..LogConfig::default()
    };
    let set = producer_set(
        1,
        1,
        &[
            rec("k", "v", 5),
            (None, Some(b"v".to_vec()), 6),
            (None, None, 7),
        ],
    );
    match up_convert(&set, &compacted, 0) {
        Err(AppendError::RecordsRejected {
            timestamp: false,
            records,
            ..
        }) => {
            assert_eq!(
                records.iter().map(|r| r.batch_index).collect::<Vec<_>>(),
                vec![1, 2]
            );
        }
        other => panic!("{other:?}"),
    }
    let bounded = LogConfig {
        timestamp_before_max_ms: 1000,
        timestamp_after_max_ms: 1000,
        ..LogConfig::default()
    };
    let now = 1_700_000_000_000;
    let set = producer_set(
        1,
        2,
        &[
            rec("k", "v", now),
            rec("k", "v", now - 5000),
            rec("k", "v", -1),
        ],
    );
    match up_convert(&set, &bounded, now) {
        Err(AppendError::RecordsRejected {
            timestamp: true,
            records,
            ..
        }) => {
            assert_eq!(
                records.iter().map(|r| r.batch_index).collect::<Vec<_>>(),
                vec![1]
            );
        }
        other => panic!("{other:?}"),
    }
    // A producer may not claim LogAppendTime on a LogAppendTime topic.
    let lat_topic = LogConfig {
        timestamp_type: TimestampType::LogAppendTime,
        ..LogConfig::default()
    };
    let mut lat = Vec::new();
    message::write(
        &mut lat,
        0,
        1,
        TIMESTAMP_TYPE_MASK,
        5,
        Some(b"k"),
        Some(b"v"),
    );
    assert!(matches!(
        up_convert(&lat, &lat_topic, 0),
        Err(AppendError::RecordsRejected {
            timestamp: true,
            ..
        })
    ));
    // Magic 0 has no timestamps: nothing to refuse.
    assert!(up_convert(&producer_set(0, 0, &[rec("k", "v", 1)]), &bounded, now).is_ok());
}

fn arb_rec() -> impl Strategy<Value = Rec> {
    (
        proptest::option::weighted(0.9, proptest::collection::vec(any::<u8>(), 0..40)),
        proptest::option::weighted(0.9, proptest::collection::vec(any::<u8>(), 0..300)),
        prop_oneof![Just(-1i64), 0i64..4_000_000_000_000],
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn random_sets_round_trip(
        recs in proptest::collection::vec(arb_rec(), 1..25),
        magic in 0u8..=1,
        codec in 0u8..=3,
        stored in prop_oneof![Just(None), (0u8..=3).prop_map(Some)],
        base in 0i64..1_000_000_000,
    ) {
        let config = LogConfig {
            compression: stored.map_or(Compression::Producer, |codec| Compression::Codec { codec, level: None }),
            ..LogConfig::default()
        };
        let batch = appended(&producer_set(magic, codec, &recs), &config, base);
        let b = Batch::parse(&batch).unwrap();
        b.verify_crc().unwrap();
        prop_assert_eq!(b.compression(), stored.unwrap_or(codec));
        for to in 0..=1u8 {
            let down = down_convert(&batch, to, base, usize::MAX, true, 1 << 26).unwrap();
            prop_assert_eq!(down.record_count, recs.len());
            let read = consumer_read(&down.records);
            let want: Vec<_> = recs
                .iter()
                .enumerate()
                .map(|(i, (k, v, ts))| (base + i as i64, if magic == 0 || to == 0 { -1 } else { *ts }, k.clone(), v.clone()))
                .collect();
            prop_assert_eq!(read, want);
        }
    }

    #[test]
    fn garbage_is_refused_never_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200), magic in 0u8..=1) {
        let mut set = bytes;
        if set.len() > message::MAGIC_OFFSET {
            set[message::MAGIC_OFFSET] = magic;
        }
        let _ = up_convert(&set, &LogConfig::default(), 0);
        let _ = down_convert(&set, magic, 0, 1000, false, 1 << 20);
    }
}
