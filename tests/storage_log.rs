//! Append/read/retention/truncation behaviour of `storage::Log` with real batches.

mod storage_common;

use bytes::BytesMut;
use gregor::storage::batch::{Batch, HeaderFields};
use gregor::storage::{AppendError, CleanupPolicy, LogConfig, ReadError, TimestampType};
use kafka_protocol::records::Compression;
use storage_common::*;

#[test]
fn round_trip_every_codec_across_segment_rolls() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = new_log(
        dir.path(),
        LogConfig {
            segment_bytes: 1024,
            ..small_config()
        },
    );
    let mut expected = Vec::new();
    let mut ts = 1_000;
    for round in 0..6 {
        for codec in CODECS {
            let b = batch_with(7, 60, ts, codec, None, &format!("{round}"));
            let r = log.append_as_leader(&b, 0, ts).unwrap();
            assert_eq!(r.last_offset - r.base_offset + 1, 7);
            assert_eq!(r.record_count, 7);
            assert!(!r.duplicate);
            for i in 0..7 {
                expected.push((r.base_offset + i, ts + i, format!("k{round}-{i}")));
            }
            ts += 10;
        }
    }
    assert_eq!(log.log_end_offset(), 6 * 5 * 7);
    assert!(
        log.segment_count() > 3,
        "small segment.bytes must roll: {}",
        log.segment_count()
    );
    // Read everything back in small fetches, always continuing after the last batch.
    let mut got = Vec::new();
    let mut next = 0;
    while next < log.log_end_offset() {
        let r = log.read(next, 700, i64::MAX, true).unwrap();
        assert!(!r.records.is_empty());
        for (off, ts, key, _) in decode(&r.records) {
            got.push((off, ts, String::from_utf8(key.unwrap().to_vec()).unwrap()));
        }
        next = got.last().unwrap().0 + 1;
    }
    assert_eq!(got, expected);
    // Each batch read back is byte-identical apart from the patched header fields.
    let all = read_all(&log);
    let mut n = 0;
    for item in gregor::storage::batch::BatchIter::new(&all) {
        let (_, b) = item.unwrap();
        b.verify_crc().unwrap();
        assert_eq!(b.partition_leader_epoch(), 0);
        n += 1;
    }
    assert_eq!(n, 30);
}

#[test]
fn reads_start_mid_batch_and_respect_limits() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = new_log(dir.path(), small_config());
    for i in 0..20 {
        log.append_as_leader(&batch(5, i * 100), 0, 0).unwrap();
    }
    let batch_size = batch(5, 0).len();
    // mid-batch start returns the whole containing batch
    let r = log.read(12, usize::MAX, i64::MAX, false).unwrap();
    assert_eq!(offsets(&r.records)[0], 10);
    assert_eq!(r.log_end_offset, 100);
    // max_bytes: whole batches only
    let r = log.read(0, batch_size * 3 + 10, i64::MAX, false).unwrap();
    assert_eq!(r.records.len(), batch_size * 3);
    // too small for one batch: empty unless min_one_batch (KIP-74)
    assert!(log.read(0, 10, i64::MAX, false).unwrap().records.is_empty());
    let r = log.read(0, 10, i64::MAX, true).unwrap();
    assert_eq!(offsets(&r.records), vec![0, 1, 2, 3, 4]);
    // max_offset is exclusive and only whole batches below it are returned
    let r = log.read(0, usize::MAX, 13, true).unwrap();
    assert_eq!(offsets(&r.records).last(), Some(&9));
    let r = log.read(0, usize::MAX, 15, true).unwrap();
    assert_eq!(offsets(&r.records).last(), Some(&14));
    assert!(log
        .read(15, usize::MAX, 15, true)
        .unwrap()
        .records
        .is_empty());
    // at LEO: empty; beyond: out of range
    assert!(log
        .read(100, 1000, i64::MAX, true)
        .unwrap()
        .records
        .is_empty());
    assert!(matches!(
        log.read(101, 1000, i64::MAX, true),
        Err(ReadError::OffsetOutOfRange {
            log_start_offset: 0,
            log_end_offset: 100
        })
    ));
    // a read spanning segments
    assert!(log.segment_count() > 1);
    assert_eq!(offsets(&read_all(&log)), (0..100).collect::<Vec<_>>());
}

#[test]
fn timestamp_lookups() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = new_log(dir.path(), small_config());
    // batches of 4 records, timestamps 1000+10*i .. +3, mixed codecs
    for i in 0..30i64 {
        let codec = CODECS[(i % 5) as usize];
        log.append_as_leader(
            &batch_with(4, 30, 1000 + 10 * i, codec, None, "t"),
            (i / 10) as i32,
            0,
        )
        .unwrap();
    }
    let t = log.fetch_offset_by_timestamp(1000).unwrap().unwrap();
    assert_eq!((t.timestamp, t.offset, t.leader_epoch), (1000, 0, Some(0)));
    // inside a batch: 1052 is record 2 of batch 5 (offsets 20..23)
    let t = log.fetch_offset_by_timestamp(1052).unwrap().unwrap();
    assert_eq!((t.timestamp, t.offset), (1052, 22));
    // between batches: 1055 -> first record of batch 6
    let t = log.fetch_offset_by_timestamp(1055).unwrap().unwrap();
    assert_eq!((t.timestamp, t.offset, t.leader_epoch), (1060, 24, Some(0)));
    let t = log.fetch_offset_by_timestamp(1250).unwrap().unwrap();
    assert_eq!((t.offset, t.leader_epoch), (100, Some(2)));
    assert_eq!(log.fetch_offset_by_timestamp(5000).unwrap(), None);
    let max = log.max_timestamp_and_offset().unwrap();
    assert_eq!(
        (max.timestamp, max.offset, max.leader_epoch),
        (1293, 119, Some(2))
    );
    // special targets
    assert_eq!(
        log.fetch_offset_by_timestamp(-2).unwrap().unwrap().offset,
        0
    );
    assert_eq!(
        log.fetch_offset_by_timestamp(-1).unwrap().unwrap().offset,
        120
    );
    assert_eq!(
        log.fetch_offset_by_timestamp(-3).unwrap().unwrap().offset,
        119
    );
}

#[test]
fn max_timestamp_is_first_record_with_largest_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = new_log(dir.path(), small_config());
    log.append_as_leader(&batch(3, 5000), 0, 0).unwrap(); // 0..2, ts 5000..5002
    log.append_as_leader(&batch(3, 100), 0, 0).unwrap(); // 3..5
    log.append_as_leader(&batch(3, 5000), 0, 0).unwrap(); // 6..8, same max again
    let max = log.max_timestamp_and_offset().unwrap();
    assert_eq!((max.timestamp, max.offset), (5002, 2));
}

#[test]
fn log_append_time_sets_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        timestamp_type: TimestampType::LogAppendTime,
        ..small_config()
    };
    let mut log = new_log(dir.path(), cfg);
    for (i, codec) in CODECS.into_iter().enumerate() {
        let now = 77_000 + i as i64;
        let r = log
            .append_as_leader(&batch_with(3, 10, 5, codec, None, ""), 0, now)
            .unwrap();
        assert_eq!(r.log_append_time_ms, now);
    }
    let all = read_all(&log);
    for (i, item) in gregor::storage::batch::BatchIter::new(&all).enumerate() {
        let (_, b) = item.unwrap();
        b.verify_crc().unwrap();
        assert!(b.is_log_append_time());
        assert_eq!(b.max_timestamp(), 77_000 + i as i64);
    }
    let t = log.fetch_offset_by_timestamp(77_002).unwrap().unwrap();
    assert_eq!((t.timestamp, t.offset), (77_002, 6));
}

#[test]
fn retention_by_time_and_size_advances_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        retention_ms: 10_000,
        file_delete_delay_ms: 0,
        segment_bytes: 1024,
        ..small_config()
    };
    let mut log = new_log(dir.path(), cfg);
    for i in 0..60i64 {
        log.append_as_leader(&batch(5, i * 1000), 0, i * 1000)
            .unwrap();
    }
    let segs = log.segment_count();
    assert!(segs > 4);
    // Nothing old enough yet at now = 60s? Segments whose max ts < 50s are.
    let deleted = log
        .delete_expired_segments(60_000, log.log_end_offset())
        .unwrap();
    assert!(deleted > 0);
    assert_eq!(log.segment_count(), segs - deleted);
    let start = log.log_start_offset();
    assert!(start > 0);
    assert_eq!(start, log.segment_base_offsets()[0]);
    assert!(matches!(
        log.read(0, 100, i64::MAX, true),
        Err(ReadError::OffsetOutOfRange { .. })
    ));
    assert_eq!(offsets(&read_all(&log))[0], start);
    let sizes_before = log.size_bytes();
    // The high watermark bounds deletion: with max_deletable at log start nothing goes.
    let cfg2 = LogConfig {
        retention_ms: -1,
        retention_bytes: 0,
        file_delete_delay_ms: 0,
        ..small_config()
    };
    log.set_config(cfg2);
    assert_eq!(log.delete_expired_segments(60_000, start).unwrap(), 0);
    assert_eq!(log.size_bytes(), sizes_before);
    // By size with the bound lifted, everything but the active segment goes... and the
    // active one too (Kafka rolls first), leaving an empty segment at LEO.
    let leo = log.log_end_offset();
    let n = log.delete_expired_segments(60_000, leo).unwrap();
    assert!(n > 0);
    assert_eq!(log.log_start_offset(), leo);
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.size_bytes(), 0);
    // still appendable
    let r = log.append_as_leader(&batch(2, 0), 0, 70_000).unwrap();
    assert_eq!(r.base_offset, leo);
    // deleted files are gone
    assert_eq!(files_with_ext(&part_dir(dir.path()), ".log").len(), 1);
    assert!(files_with_ext(&part_dir(dir.path()), ".deleted").is_empty());
}

#[test]
fn deleted_files_wait_for_file_delete_delay() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        retention_ms: 0,
        file_delete_delay_ms: 60_000,
        ..small_config()
    };
    let mut log = new_log(dir.path(), cfg);
    for i in 0..20 {
        log.append_as_leader(&batch(5, i), 0, 0).unwrap();
    }
    let n = log.delete_expired_segments(1_000, i64::MAX).unwrap();
    assert!(n > 0);
    let pd = part_dir(dir.path());
    assert_eq!(files_with_ext(&pd, ".log.deleted").len(), n);
    log.maybe_flush(30_000).unwrap();
    assert_eq!(files_with_ext(&pd, ".log.deleted").len(), n);
    log.maybe_flush(61_000).unwrap();
    assert!(files_with_ext(&pd, ".deleted").is_empty());
}

#[test]
fn delete_records_moves_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        file_delete_delay_ms: 0,
        ..small_config()
    };
    let mut log = new_log(dir.path(), cfg);
    for i in 0..40 {
        log.append_as_leader(&batch(5, i), 0, 0).unwrap();
    }
    let segs = log.segment_count();
    let second = log.segment_base_offsets()[2];
    log.increment_log_start_offset(second + 3).unwrap();
    assert_eq!(log.log_start_offset(), second + 3);
    assert_eq!(
        log.segment_count(),
        segs - 2,
        "segments wholly below are deleted"
    );
    assert!(matches!(
        log.read(second + 2, 100, i64::MAX, true),
        Err(ReadError::OffsetOutOfRange { .. })
    ));
    // the batch containing the new start is returned whole
    let r = log.read(second + 3, 100_000, i64::MAX, true).unwrap();
    assert!(offsets(&r.records)[0] <= second + 3);
    assert!(log.increment_log_start_offset(1_000).is_err());
    log.increment_log_start_offset(5).unwrap(); // going back is a no-op
    assert_eq!(log.log_start_offset(), second + 3);
}

#[test]
fn truncate_and_reappend() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = new_log(dir.path(), small_config());
    for i in 0..30 {
        log.append_as_leader(&batch(4, i), (i / 10) as i32, 0)
            .unwrap();
    }
    assert_eq!(log.epoch_entries(), vec![(0, 0), (1, 40), (2, 80)]);
    let segs = log.segment_count();
    log.truncate_to(60).unwrap();
    assert_eq!(log.log_end_offset(), 60);
    assert!(log.segment_count() < segs);
    assert_eq!(log.epoch_entries(), vec![(0, 0), (1, 40)]);
    assert_eq!(offsets(&read_all(&log)), (0..60).collect::<Vec<_>>());
    let r = log.append_as_leader(&batch(4, 0), 5, 0).unwrap();
    assert_eq!(r.base_offset, 60);
    assert_eq!(log.epoch_entries(), vec![(0, 0), (1, 40), (5, 60)]);
    log.truncate_to(1000).unwrap(); // beyond LEO: no-op
    assert_eq!(log.log_end_offset(), 64);
    log.truncate_fully_and_start_at(500).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (500, 500));
    assert_eq!(log.segment_count(), 1);
    assert!(log.epoch_entries().is_empty());
    let r = log.append_as_leader(&batch(4, 0), 6, 0).unwrap();
    assert_eq!(r.base_offset, 500);
    assert_eq!(offsets(&read_all(&log)), (500..504).collect::<Vec<_>>());
}

/// A broker that became leader (epoch entry at its log end) and appended nothing before
/// losing leadership: truncating to the log end must drop that entry, or its next fetch
/// as a follower names an epoch the new leader never had, forever (Kafka's
/// UnifiedLog.truncateTo does the same).
#[test]
fn truncate_at_log_end_drops_an_empty_trailing_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = new_log(dir.path(), small_config());
    log.append_as_leader(&batch(5, 0), 3, 0).unwrap();
    log.assign_epoch_start_offset(7, 5).unwrap();
    assert_eq!(log.latest_epoch(), Some(7));
    log.truncate_to(5).unwrap();
    assert_eq!(log.log_end_offset(), 5);
    assert_eq!(log.epoch_entries(), vec![(3, 0)]);
    assert_eq!(log.latest_epoch(), Some(3));
}

#[test]
fn leader_epochs_and_end_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = new_log(dir.path(), small_config());
    log.assign_epoch_start_offset(1, 0).unwrap();
    log.append_as_leader(&batch(5, 0), 1, 0).unwrap();
    log.assign_epoch_start_offset(3, 5).unwrap();
    log.append_as_leader(&batch(5, 0), 3, 0).unwrap();
    assert_eq!(log.latest_epoch(), Some(3));
    assert_eq!(log.end_offset_for_epoch(1), Some((1, 5)));
    assert_eq!(log.end_offset_for_epoch(2), Some((1, 5)));
    assert_eq!(log.end_offset_for_epoch(3), Some((3, 10)));
    assert_eq!(log.end_offset_for_epoch(0), Some((0, 0)));
    assert_eq!(log.end_offset_for_epoch(4), None);
    assert!(matches!(
        log.append_as_leader(&batch(1, 0), 2, 0),
        Err(AppendError::FencedLeaderEpoch {
            epoch: 2,
            latest: 3
        })
    ));
    assert!(log.assign_epoch_start_offset(2, 10).is_err());
}

#[test]
fn follower_append_keeps_offsets_and_learns_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let mut leader = new_log(dir.path(), small_config());
    for i in 0..10 {
        leader
            .append_as_leader(&batch(3, i), (i / 4) as i32, 0)
            .unwrap();
    }
    let data = read_all(&leader);
    let dir2 = tempfile::tempdir().unwrap();
    let mut follower = new_log(dir2.path(), small_config());
    let r = follower.append_as_follower(&data[..], 0).unwrap();
    assert_eq!((r.first_offset, r.last_offset), (0, 29));
    assert_eq!(follower.epoch_entries(), leader.epoch_entries());
    assert_eq!(read_all(&follower), data);
    // replaying the same bytes is refused: offsets below LEO
    assert!(matches!(
        follower.append_as_follower(&data[..], 0),
        Err(AppendError::UnexpectedAppendOffset {
            expected: 30,
            found: 0
        })
    ));
    // a flipped bit is caught by the CRC
    let mut more = batch(2, 0);
    gregor::storage::batch::patch::set_base_offset(&mut more, 30);
    let n = more.len();
    more[n - 1] ^= 0x40;
    assert!(matches!(
        follower.append_as_follower(&more, 0),
        Err(AppendError::CorruptMessage(_))
    ));
}

#[test]
fn invalid_produce_requests_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = new_log(dir.path(), small_config());
    // CRC mismatch
    let mut b = batch(3, 0);
    let n = b.len();
    b[n - 2] ^= 1;
    assert!(matches!(
        log.append_as_leader(&b, 0, 0),
        Err(AppendError::CorruptMessage(_))
    ));
    // truncated
    let mut b = batch(3, 0);
    b.truncate(b.len() - 5);
    assert!(matches!(
        log.append_as_leader(&b, 0, 0),
        Err(AppendError::CorruptMessage(_))
    ));
    // garbage
    let b = BytesMut::from(&b"this is not a record batch at all, really not"[..]);
    assert!(log.append_as_leader(&b, 0, 0).is_err());
    // empty
    assert!(matches!(
        log.append_as_leader(&BytesMut::new(), 0, 0),
        Err(AppendError::InvalidRecord(_))
    ));
    // magic 1: read as a v1 message set (Produce v0-v2 may send those), whose CRC-32
    // does not match: CORRUPT_MESSAGE, as Kafka (Produce v3+ refuses it before the log)
    let mut b = batch(3, 0);
    b[16] = 1;
    assert!(matches!(
        log.append_as_leader(&b, 0, 0),
        Err(AppendError::CorruptMessage(_))
    ));
    // too large
    let cfg = LogConfig {
        max_message_bytes: 100,
        ..small_config()
    };
    log.set_config(cfg);
    assert!(matches!(
        log.append_as_leader(&batch(10, 0), 0, 0),
        Err(AppendError::MessageTooLarge { max: 100, .. })
    ));
    log.set_config(small_config());
    // non-zero base offset from a client
    let mut b = batch(3, 0);
    gregor::storage::batch::patch::set_base_offset(&mut b, 9);
    assert!(matches!(
        log.append_as_leader(&b, 0, 0),
        Err(AppendError::InvalidRecord(_))
    ));
    // record count does not match (structural walk), CRC recomputed so only the walk sees it
    let mut b = batch(3, 0);
    b[57..61].copy_from_slice(&2i32.to_be_bytes());
    b[23..27].copy_from_slice(&1i32.to_be_bytes());
    gregor::storage::batch::patch::rewrite_crc(&mut b);
    assert!(matches!(
        log.append_as_leader(&b, 0, 0),
        Err(AppendError::InvalidRecord(_))
    ));
    // transactional
    let mut b = batch(3, 0);
    let attrs = i16::from_be_bytes([b[21], b[22]]) | 0x10;
    b[21..23].copy_from_slice(&attrs.to_be_bytes());
    gregor::storage::batch::patch::rewrite_crc(&mut b);
    assert!(matches!(
        log.append_as_leader(&b, 0, 0),
        Err(AppendError::InvalidRecord(_))
    ));
    // compacted topic needs keys (compressed too)
    log.set_config(LogConfig {
        cleanup_policy: CleanupPolicy::Compact,
        ..small_config()
    });
    for codec in CODECS {
        let b = batch_with(2, 5, 0, codec, None, "");
        let nokey = {
            use kafka_protocol::records::*;
            let r = Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: 0,
                sequence: -1,
                timestamp: 0,
                key: None,
                value: Some(bytes::Bytes::from_static(b"v")),
                headers: Default::default(),
            };
            let mut buf = BytesMut::new();
            RecordBatchEncoder::encode(
                &mut buf,
                [&r],
                &RecordEncodeOptions {
                    version: 2,
                    compression: codec,
                },
            )
            .unwrap();
            buf
        };
        assert!(log.append_as_leader(&b, 0, 0).is_ok(), "{codec:?}");
        // KIP-467: INVALID_RECORD naming the keyless record.
        assert!(
            matches!(
                log.append_as_leader(&nokey, 0, 0),
                Err(AppendError::RecordsRejected { timestamp: false, ref records, .. })
                    if records.len() == 1 && records[0].batch_index == 0
            ),
            "{codec:?}"
        );
    }
    // nothing bad was written
    assert_eq!(log.log_end_offset(), 10);
    let _ = Compression::None;
}

#[test]
fn idempotent_producer_duplicates_and_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = new_log(dir.path(), small_config());
    let p = |seq| Some((1000i64, 0i16, seq));
    let r1 = log
        .append_as_leader(&batch_with(5, 10, 0, Compression::Lz4, p(0), ""), 0, 0)
        .unwrap();
    let r2 = log
        .append_as_leader(&batch_with(5, 10, 0, Compression::None, p(5), ""), 0, 0)
        .unwrap();
    assert_eq!((r2.base_offset, r2.last_offset), (5, 9));
    let end = log.log_end_offset();
    let dup = log
        .append_as_leader(&batch_with(5, 10, 0, Compression::Lz4, p(0), ""), 0, 0)
        .unwrap();
    assert!(dup.duplicate);
    assert_eq!(
        (dup.base_offset, dup.last_offset),
        (r1.base_offset, r1.last_offset)
    );
    assert_eq!(log.log_end_offset(), end, "a duplicate writes nothing");
    assert!(matches!(
        log.append_as_leader(&batch_with(1, 10, 0, Compression::None, p(12), ""), 0, 0),
        Err(AppendError::OutOfOrderSequence { .. })
    ));
    assert!(matches!(
        log.append_as_leader(
            &batch_with(1, 10, 0, Compression::None, Some((1000, -1, 10)), ""),
            0,
            0
        ),
        Err(AppendError::InvalidProducerEpoch { .. })
    ));
    let s = log.producer_state(1000).unwrap();
    assert_eq!(
        (s.producer_epoch, s.last_sequence, s.last_offset),
        (0, 9, 9)
    );
    // a new epoch restarts at 0
    log.append_as_leader(
        &batch_with(2, 10, 0, Compression::None, Some((1000, 1, 0)), ""),
        0,
        0,
    )
    .unwrap();
    assert_eq!(log.producer_state(1000).unwrap().producer_epoch, 1);
    // producers without id are not tracked
    log.append_as_leader(&batch(2, 0), 0, 0).unwrap();
    assert!(log.producer_state(-1).is_none());
}

/// Parses the files of a partition directory against Kafka's on-disk format.
#[test]
fn on_disk_format_matches_kafka() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_bytes: 2000,
        index_interval_bytes: 100,
        ..LogConfig::default()
    };
    let mut log = new_log(dir.path(), cfg);
    for i in 0..40i64 {
        log.append_as_leader(
            &batch_with(
                3,
                30,
                10_000 + i * 5,
                Compression::None,
                Some((7, 0, (i * 3) as i32)),
                "",
            ),
            (i / 20) as i32,
            i,
        )
        .unwrap();
    }
    log.close(100).unwrap();
    let pd = part_dir(dir.path());
    let logs = files_with_ext(&pd, ".log");
    assert!(logs.len() > 2);
    let mut expected_next = 0i64;
    for log_file in &logs {
        let name = log_file.file_name().unwrap().to_str().unwrap();
        assert_eq!(name.len(), 24, "20-digit base offset + .log");
        let base: i64 = name[..20].parse().unwrap();
        assert_eq!(base, expected_next, "segment named by its base offset");
        let data = std::fs::read(log_file).unwrap();
        // batches exactly as on the wire, back to back
        let mut positions = std::collections::HashMap::new();
        for item in gregor::storage::batch::BatchIter::new(&data) {
            let (pos, b) = item.unwrap();
            b.verify_crc().unwrap();
            assert_eq!(b.base_offset(), expected_next);
            positions.insert(pos as u32, b.last_offset());
            expected_next = b.last_offset() + 1;
        }
        // .index: 8-byte BE (relative offset, position) pairs pointing at batch starts
        let idx = std::fs::read(log_file.with_extension("index")).unwrap();
        assert_eq!(idx.len() % 8, 0);
        assert!(
            !idx.is_empty(),
            "index.interval.bytes=100 must produce entries"
        );
        for e in idx.chunks(8) {
            let rel = u32::from_be_bytes(e[0..4].try_into().unwrap()) as i64;
            let pos = u32::from_be_bytes(e[4..8].try_into().unwrap());
            assert_eq!(
                positions.get(&pos),
                Some(&(base + rel)),
                "index entry = batch last offset -> batch position"
            );
        }
        // .timeindex: 12-byte BE (timestamp, relative offset), increasing timestamps
        let tidx = std::fs::read(log_file.with_extension("timeindex")).unwrap();
        assert_eq!(tidx.len() % 12, 0);
        let mut last_ts = i64::MIN;
        for e in tidx.chunks(12) {
            let ts = i64::from_be_bytes(e[0..8].try_into().unwrap());
            let rel = u32::from_be_bytes(e[8..12].try_into().unwrap()) as i64;
            assert!(ts > last_ts);
            assert!(positions.values().any(|&l| l == base + rel));
            last_ts = ts;
        }
    }
    assert_eq!(expected_next, 120);
    let epochs = std::fs::read_to_string(pd.join("leader-epoch-checkpoint")).unwrap();
    assert_eq!(epochs, "0\n2\n0 0\n1 60\n");
    let meta = std::fs::read_to_string(pd.join("partition.metadata")).unwrap();
    assert_eq!(meta, "version: 0\ntopic_id: BwcHBwcHBwcHBwcHBwcHBw");
    // producer snapshot at the log end offset, Kafka's version-1 layout
    let snap = std::fs::read(pd.join("00000000000000000120.snapshot")).unwrap();
    assert_eq!(i16::from_be_bytes([snap[0], snap[1]]), 1);
    assert_eq!(
        u32::from_be_bytes(snap[2..6].try_into().unwrap()),
        crc32c::crc32c(&snap[6..])
    );
    assert_eq!(i32::from_be_bytes(snap[6..10].try_into().unwrap()), 1);
    let e = &snap[10..];
    assert_eq!(i64::from_be_bytes(e[0..8].try_into().unwrap()), 7); // producer id
    assert_eq!(i32::from_be_bytes(e[10..14].try_into().unwrap()), 119); // last sequence
    assert_eq!(i64::from_be_bytes(e[14..22].try_into().unwrap()), 119); // last offset
}

#[test]
fn time_based_roll() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_ms: 1000,
        ..LogConfig::default()
    };
    let mut log = new_log(dir.path(), cfg);
    log.append_as_leader(&batch(1, 10_000), 0, 10_000).unwrap();
    log.append_as_leader(&batch(1, 10_500), 0, 10_500).unwrap();
    assert_eq!(log.segment_count(), 1);
    log.append_as_leader(&batch(1, 11_500), 0, 11_500).unwrap();
    assert_eq!(log.segment_count(), 2);
    assert_eq!(log.segment_base_offsets(), vec![0, 2]);
}

#[test]
fn index_full_rolls() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_index_bytes: 24,
        index_interval_bytes: 1,
        ..LogConfig::default()
    };
    let mut log = new_log(dir.path(), cfg);
    for i in 0..12 {
        log.append_as_leader(&batch(1, i), 0, 0).unwrap();
    }
    assert!(log.segment_count() >= 3, "{}", log.segment_count());
    assert_eq!(offsets(&read_all(&log)), (0..12).collect::<Vec<_>>());
}

#[test]
fn batch_view_agrees_with_kafka_protocol_encoder() {
    let b = batch_with(4, 8, 123, Compression::Gzip, Some((5, 2, 40)), "x");
    let v = Batch::parse(&b).unwrap();
    v.verify_crc().unwrap();
    assert_eq!(v.record_count(), 4);
    assert_eq!(
        (
            v.producer_id(),
            v.producer_epoch(),
            v.base_sequence(),
            v.last_sequence()
        ),
        (5, 2, 40, 43)
    );
    assert_eq!((v.first_timestamp(), v.max_timestamp()), (123, 126));
    assert_eq!(v.compression(), 1);
    let recs = gregor::storage::batch::decode_records(&v, 64 << 20).unwrap();
    assert_eq!(recs.len(), 4);
    assert_eq!(recs[3].key.as_deref(), Some(&b"kx-3"[..]));
}

fn compacted_config() -> LogConfig {
    LogConfig {
        cleanup_policy: CleanupPolicy::Compact,
        segment_bytes: 600,
        delete_retention_ms: 1_000,
        ..small_config()
    }
}

/// Appends 5 rounds over keys k0..k7 (values "r{round}"), mixed codecs; returns
/// key -> (latest offset, latest value).
fn fill_keyed(log: &mut gregor::storage::Log) -> std::collections::BTreeMap<String, (i64, String)> {
    let mut latest = std::collections::BTreeMap::new();
    for round in 0..5 {
        for (c, codec) in CODECS.into_iter().enumerate() {
            // each batch: two keys
            let keys = [format!("k{}", (c * 2) % 8), format!("k{}", (c * 2 + 1) % 8)];
            let vals = [format!("r{round}"), format!("r{round}")];
            let b = {
                use kafka_protocol::records::*;
                let recs: Vec<Record> = (0..2)
                    .map(|i| Record {
                        transactional: false,
                        control: false,
                        delete_horizon: false,
                        partition_leader_epoch: -1,
                        producer_id: -1,
                        producer_epoch: -1,
                        timestamp_type: TimestampType::Creation,
                        offset: i,
                        sequence: i as i32 - 1,
                        timestamp: 100 + i,
                        key: Some(bytes::Bytes::from(keys[i as usize].clone())),
                        value: Some(bytes::Bytes::from(vals[i as usize].clone())),
                        headers: Default::default(),
                    })
                    .collect();
                let mut buf = BytesMut::new();
                RecordBatchEncoder::encode(
                    &mut buf,
                    &recs,
                    &RecordEncodeOptions {
                        version: 2,
                        compression: codec,
                    },
                )
                .unwrap();
                buf
            };
            let r = log.append_as_leader(&b, 0, 0).unwrap();
            latest.insert(keys[0].clone(), (r.base_offset, vals[0].clone()));
            latest.insert(keys[1].clone(), (r.base_offset + 1, vals[1].clone()));
        }
    }
    latest
}

#[test]
fn compaction_keeps_the_latest_record_per_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = new_log(dir.path(), compacted_config());
    let latest = fill_keyed(&mut log);
    let leo = log.log_end_offset();
    let active_base = *log.segment_base_offsets().last().unwrap();
    assert!(log.segment_count() > 3);
    let size_before = log.size_bytes();
    assert!(log.clean(0, i64::MAX).unwrap());
    assert!(log.size_bytes() < size_before);
    assert_eq!(log.log_end_offset(), leo);
    let all = read_all(&log);
    let recs = decode(&all);
    // offsets strictly increase; below the active segment each key appears once, at its
    // latest offset unless a newer one sits in the active segment
    let mut prev = -1;
    let mut seen = std::collections::BTreeMap::new();
    for (off, _, key, value) in &recs {
        assert!(*off > prev);
        prev = *off;
        let key = String::from_utf8(key.clone().unwrap().to_vec()).unwrap();
        let value = String::from_utf8(value.clone().unwrap().to_vec()).unwrap();
        if *off < active_base {
            assert!(
                seen.insert(key.clone(), *off).is_none(),
                "duplicate key {key} below the active segment"
            );
        }
        if latest[&key].0 == *off {
            assert_eq!(latest[&key].1, value);
        }
    }
    for (key, (off, _)) in &latest {
        assert!(
            recs.iter().any(|r| r.0 == *off),
            "latest record of {key} was kept"
        );
    }
    // every batch is valid and every codec survived re-encoding
    let mut codecs = std::collections::BTreeSet::new();
    for item in gregor::storage::batch::BatchIter::new(&all) {
        let (_, b) = item.unwrap();
        b.verify_crc().unwrap();
        codecs.insert(b.compression());
    }
    assert_eq!(codecs.len(), 5);
    // nothing dirty left: a second pass does nothing
    assert!(!log.clean(0, i64::MAX).unwrap());
    // cleaned log survives a crash + recovery
    drop(log);
    let log = gregor::storage::Log::open(
        &part_dir(dir.path()),
        &tp(),
        compacted_config(),
        0,
        0,
        false,
        0,
    )
    .unwrap();
    assert_eq!(read_all(&log), all);
}

#[test]
fn compaction_drops_tombstones_after_delete_retention() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = new_log(dir.path(), compacted_config());
    fill_keyed(&mut log);
    log.append_as_leader(&keyed_batch(&[("k1", None), ("k2", Some("x"))], 200), 0, 0)
        .unwrap();
    let tomb_off = log.log_end_offset() - 2;
    for i in 0..10 {
        log.append_as_leader(&keyed_batch(&[("other", Some("y"))], 300 + i), 0, 0)
            .unwrap();
    }
    // within delete.retention.ms the tombstone stays
    assert!(log.clean(500, i64::MAX).unwrap());
    let recs = decode(&read_all(&log));
    assert!(recs.iter().any(|r| r.0 == tomb_off && r.3.is_none()));
    assert!(!recs
        .iter()
        .any(|r| r.2.as_deref() == Some(&b"k1"[..]) && r.0 < tomb_off));
    // later, it goes (mark everything dirty again by appending and cleaning)
    for i in 0..20 {
        log.append_as_leader(&keyed_batch(&[("other", Some("z"))], 400 + i), 0, 0)
            .unwrap();
    }
    assert!(log.clean(1_000_000, i64::MAX).unwrap());
    let recs = decode(&read_all(&log));
    assert!(!recs.iter().any(|r| r.0 == tomb_off), "tombstone removed");
    assert!(recs.iter().any(|r| r.2.as_deref() == Some(&b"k2"[..])));
}

#[test]
fn compaction_respects_the_high_watermark_bound() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = new_log(dir.path(), compacted_config());
    fill_keyed(&mut log);
    let second = log.segment_base_offsets()[1];
    // only the first segment is wholly below the bound
    assert!(log.clean(0, second).unwrap());
    let bases = log.segment_base_offsets();
    let recs = decode(&read_all(&log));
    assert!(
        recs.iter().filter(|r| r.0 >= bases[1]).count() >= 4,
        "later segments untouched"
    );
    assert!(!log.clean(0, 0).unwrap());
}

#[test]
fn interrupted_swap_is_completed_on_recovery() {
    // Log A is cleaned; log B has the same data plus A's cleaned first segment left as a
    // `.swap` file and a half-written `.cleaned` file, as after a crash mid-swap.
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let mut a = new_log(dir_a.path(), compacted_config());
    let mut b = new_log(dir_b.path(), compacted_config());
    fill_keyed(&mut a);
    fill_keyed(&mut b);
    let first = a.segment_base_offsets()[0];
    let second = a.segment_base_offsets()[1];
    assert!(a.clean(0, second).unwrap());
    let name = format!("{first:020}.log");
    let cleaned = std::fs::read(part_dir(dir_a.path()).join(&name)).unwrap();
    let pb = part_dir(dir_b.path());
    assert_ne!(std::fs::read(pb.join(&name)).unwrap(), cleaned);
    b.close(0).unwrap();
    std::fs::write(pb.join(format!("{name}.swap")), &cleaned).unwrap();
    std::fs::write(pb.join(format!("{second:020}.log.cleaned")), b"partial").unwrap();
    let b = gregor::storage::Log::open(&pb, &tp(), compacted_config(), 0, 0, false, 0).unwrap();
    assert_eq!(std::fs::read(pb.join(&name)).unwrap(), cleaned);
    assert!(files_with_ext(&pb, ".swap").is_empty());
    assert!(files_with_ext(&pb, ".cleaned").is_empty());
    assert_eq!(read_all(&b), read_all(&a));
}

#[test]
fn compaction_keeps_an_emptied_batch_that_is_a_producers_last() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = new_log(
        dir.path(),
        LogConfig {
            segment_bytes: 200,
            ..compacted_config()
        },
    );
    log.append_as_leader(&keyed_batch(&[("a", Some("1"))], 0), 0, 0)
        .unwrap();
    // producer 5's only batch: superseded later by a non-idempotent write of the same key
    let p = batch_with(1, 3, 0, Compression::None, Some((5, 0, 0)), "z");
    let r = log.append_as_leader(&p, 0, 0).unwrap();
    for _ in 0..6 {
        log.append_as_leader(
            &keyed_batch(&[("kz-0", Some("new")), ("a", Some("2"))], 0),
            0,
            0,
        )
        .unwrap();
    }
    assert!(log.clean(0, i64::MAX).unwrap());
    let all = read_all(&log);
    let kept = gregor::storage::batch::BatchIter::new(&all)
        .map(|i| i.unwrap().1)
        .find(|b| b.producer_id() == 5)
        .expect("producer batch header kept");
    assert_eq!(kept.record_count(), 0);
    assert_eq!(
        (kept.base_offset(), kept.last_offset()),
        (r.base_offset, r.last_offset)
    );
    kept.verify_crc().unwrap();
    drop(log);
    let log = gregor::storage::Log::open(
        &part_dir(dir.path()),
        &tp(),
        compacted_config(),
        0,
        0,
        false,
        0,
    )
    .unwrap();
    assert_eq!(log.producer_state(5).unwrap().last_sequence, 0);
}

#[test]
fn compaction_rewrites_without_the_log_and_swaps_only_an_unchanged_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = new_log(dir.path(), compacted_config());
    let latest = fill_keyed(&mut log);
    let size_before = log.size_bytes();
    // Phase 1 under the caller's lock; phase 2 with the log free: the log keeps taking
    // appends (the active segment) while the planned segments are rewritten.
    let plan = log
        .plan_clean(0, i64::MAX)
        .unwrap()
        .expect("something to clean");
    let during = log.append_as_leader(&batch(1, 0), 0, 0).unwrap();
    let rewritten = plan.rewrite(0);
    assert!(log.finish_clean(rewritten).unwrap(), "swapped in");
    assert!(log.size_bytes() < size_before);
    let recs = decode(&read_all(&log));
    for (key, (off, _)) in &latest {
        assert!(recs.iter().any(|r| r.0 == *off), "latest record of {key}");
    }
    assert!(
        recs.iter().any(|r| r.0 == during.base_offset),
        "the append made during phase 2 is there"
    );

    // A truncation between plan and swap throws the pass away: the planned segments
    // may hold other records now.
    let dir = tempfile::tempdir().unwrap();
    let mut log = new_log(dir.path(), compacted_config());
    fill_keyed(&mut log);
    let plan = log
        .plan_clean(0, i64::MAX)
        .unwrap()
        .expect("something to clean");
    let rewritten = plan.rewrite(0);
    log.truncate_to(3).unwrap();
    let after_truncation = read_all(&log);
    assert!(!log.finish_clean(rewritten).unwrap(), "discarded");
    assert_eq!(read_all(&log), after_truncation, "the log is as truncated");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            let n = e.file_name().to_string_lossy().to_string();
            n.ends_with(".cleaned") || n.ends_with(".swap")
        })
        .collect();
    assert!(
        leftovers.is_empty(),
        "the discarded pass left {leftovers:?}"
    );
}

#[test]
fn min_compaction_lag_keeps_young_records_uncompacted() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        min_compaction_lag_ms: 10_000,
        ..compacted_config()
    };
    let mut log = new_log(dir.path(), config);
    fill_keyed(&mut log); // records stamped 100-101
    assert!(!log.clean(5_000, i64::MAX).unwrap(), "younger than the lag");
    assert!(log.clean(20_000, i64::MAX).unwrap(), "older than the lag");
}

#[test]
fn max_compaction_lag_forces_a_cleaning_below_the_dirty_ratio() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        min_cleanable_dirty_ratio: 1.0,
        max_compaction_lag_ms: 60_000,
        ..compacted_config()
    };
    let mut log = new_log(dir.path(), config);
    fill_keyed(&mut log);
    assert!(
        log.clean(0, i64::MAX).unwrap(),
        "everything dirty: ratio reached"
    );
    for i in 0..10 {
        log.append_as_leader(&keyed_batch(&[("k1", Some("late"))], 1_000 + i), 0, 0)
            .unwrap();
    }
    assert!(log.dirty_ratio() < 1.0);
    assert!(
        !log.clean(30_000, i64::MAX).unwrap(),
        "within the lag, below the ratio"
    );
    assert!(
        log.clean(120_000, i64::MAX).unwrap(),
        "past max.compaction.lag.ms"
    );
    let recs = decode(&read_all(&log));
    let active = *log.segment_base_offsets().last().unwrap();
    let k1: Vec<_> = recs
        .iter()
        .filter(|r| r.0 < active && r.2.as_deref() == Some(&b"k1"[..]))
        .collect();
    assert_eq!(k1.len(), 1, "one k1 below the active segment: {k1:?}");
}

#[test]
fn a_compacted_logs_active_segment_rolls_after_max_compaction_lag() {
    let config = LogConfig {
        cleanup_policy: CleanupPolicy::Compact,
        segment_ms: 1_000_000,
        max_compaction_lag_ms: 1_000,
        ..small_config()
    };
    assert_eq!(config.max_segment_ms(), 1_000);
    let delete = LogConfig {
        max_compaction_lag_ms: 1_000,
        segment_ms: 1_000_000,
        ..small_config()
    };
    assert_eq!(delete.max_segment_ms(), 1_000_000);
}

#[test]
fn compression_type_recompresses_batches_keeping_records_and_producer_state() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        compression: gregor::storage::Compression::Codec {
            codec: 3,
            level: None,
        },
        ..small_config()
    };
    let mut log = new_log(dir.path(), config);
    let sent = [
        batch_with(5, 30, 1_000, Compression::Gzip, Some((7, 0, 0)), "g"),
        batch_with(3, 30, 2_000, Compression::None, Some((7, 0, 5)), "n"),
        batch_with(4, 30, 3_000, Compression::Lz4, None, "l"),
    ];
    for b in &sent {
        log.append_as_leader(b, 0, 0).unwrap();
    }
    // A retry of the idempotent batch is still recognised after recompression.
    let dup = log.append_as_leader(&sent[0], 0, 0).unwrap();
    assert!(dup.duplicate && dup.base_offset == 0);
    let stored = read_all(&log);
    let mut pos = 0;
    let mut codecs = Vec::new();
    while pos < stored.len() {
        let b = Batch::parse(&stored[pos..]).unwrap();
        b.verify_crc().unwrap();
        codecs.push((b.compression(), b.producer_id(), b.base_sequence()));
        pos += b.size();
    }
    assert_eq!(codecs, vec![(3, 7, 0), (3, 7, 5), (3, -1, -1)]);
    let want: Vec<_> = sent
        .iter()
        .flat_map(|b| decode(&b.clone().freeze()))
        .collect();
    let got = decode(&stored);
    assert_eq!(
        got.iter()
            .map(|r| (r.1, r.2.clone(), r.3.clone()))
            .collect::<Vec<_>>(),
        want.iter()
            .map(|r| (r.1, r.2.clone(), r.3.clone()))
            .collect::<Vec<_>>(),
        "timestamps, keys and values byte-exact"
    );
    assert_eq!(offsets(&stored), (0..12).collect::<Vec<_>>());
}
