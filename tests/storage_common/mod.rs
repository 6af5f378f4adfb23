//! Helpers shared by the storage integration tests: real v2 batches built with
//! `kafka_protocol::records::RecordBatchEncoder`, decoding, and log setup.
#![allow(dead_code)]

use bytes::{Bytes, BytesMut};
use gregor::storage::{Log, LogConfig, TopicPartition};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use std::path::{Path, PathBuf};

pub const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

/// Producer identity of a batch: (producer id, epoch, base sequence).
pub type Producer = (i64, i16, i32);

/// A batch of `n` records with keys `k{tag}-{i}` and values of `value_size` bytes,
/// timestamps `ts + i`.
pub fn batch_with(
    n: usize,
    value_size: usize,
    ts: i64,
    codec: Compression,
    producer: Option<Producer>,
    tag: &str,
) -> BytesMut {
    let (pid, epoch, seq) = producer.unwrap_or((-1, -1, -1));
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: pid,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // offset - sequence must be constant for the encoder to keep one batch
            sequence: if producer.is_some() {
                seq.wrapping_add(i as i32)
            } else {
                i as i32 - 1
            },
            timestamp: ts + i as i64,
            key: Some(Bytes::from(format!("k{tag}-{i}"))),
            value: Some(Bytes::from(vec![b'a' + (i % 26) as u8; value_size])),
            headers: IndexMap::new(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: codec,
        },
    )
    .expect("encode");
    buf
}

pub fn batch(n: usize, ts: i64) -> BytesMut {
    batch_with(n, 20, ts, Compression::None, None, "")
}

pub fn keyed_batch(pairs: &[(&str, Option<&str>)], ts: i64) -> BytesMut {
    let records: Vec<Record> = pairs
        .iter()
        .enumerate()
        .map(|(i, (k, v))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: i as i32 - 1,
            timestamp: ts + i as i64,
            key: Some(Bytes::from(k.to_string())),
            value: v.map(|v| Bytes::from(v.to_string())),
            headers: IndexMap::new(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("encode");
    buf
}

/// Decodes every record of `bytes`: (offset, timestamp, key, value).
pub fn decode(bytes: &Bytes) -> Vec<(i64, i64, Option<Bytes>, Option<Bytes>)> {
    let mut b = bytes.clone();
    let sets = RecordBatchDecoder::decode_all(&mut b).expect("decode");
    sets.into_iter()
        .flat_map(|s| s.records)
        .map(|r| (r.offset, r.timestamp, r.key, r.value))
        .collect()
}

/// Offsets of all records in `bytes`.
pub fn offsets(bytes: &Bytes) -> Vec<i64> {
    decode(bytes).into_iter().map(|r| r.0).collect()
}

pub fn tp() -> TopicPartition {
    TopicPartition::new("test-topic", 0)
}

pub fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 256,
        ..LogConfig::default()
    }
}

pub fn part_dir(root: &Path) -> PathBuf {
    root.join(tp().dir_name())
}

pub fn new_log(root: &Path, config: LogConfig) -> Log {
    Log::create(&part_dir(root), &tp(), config, Some([7u8; 16]), 0).expect("create")
}

/// Reads the whole log (from log start to LEO).
pub fn read_all(log: &Log) -> Bytes {
    log.read(log.log_start_offset(), usize::MAX, i64::MAX, true)
        .expect("read")
        .records
}

/// Files in `dir` with the given extension, sorted.
pub fn files_with_ext(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(ext))
        .collect();
    v.sort();
    v
}
