//! Storage benchmarks (no assertions): append throughput for 16 KB batches of 100 B and
//! 1 KB records, sequential read throughput, and crash-recovery time per GB.
//! `GREGOR_BENCH_MB` sets the data volume per run (default 512).

use std::time::Instant;

use bytes::{Bytes, BytesMut};
use gregor::storage::{Log, LogConfig, TopicPartition};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

fn batch_of(record_size: usize, batch_bytes: usize) -> BytesMut {
    let n = (batch_bytes / (record_size + 10)).max(1);
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: i as i32 - 1,
            timestamp: 1_700_000_000_000 + i as i64,
            key: None,
            value: Some(Bytes::from(vec![(i % 251) as u8; record_size])),
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

fn mb(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn main() {
    let total_mb: u64 = std::env::var("GREGOR_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512);
    let total = total_mb * 1024 * 1024;
    let tp = TopicPartition::new("bench", 0);
    let config = LogConfig {
        segment_bytes: 128 * 1024 * 1024,
        ..LogConfig::default()
    };
    println!("storage bench: {total_mb} MB per run, segment.bytes = 128 MB, page cache (no fsync per append)");
    for record_size in [100usize, 1024] {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("bench-0");
        let mut log = Log::create(&dir, &tp, config.clone(), None, 0).expect("create");
        let template = batch_of(record_size, 16 * 1024);
        let batch_len = template.len() as u64;
        let batches = total / batch_len;
        let start = Instant::now();
        for _ in 0..batches {
            let b = template.clone();
            log.append_as_leader(&b, 0, 0).expect("append");
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "append  {record_size:>5} B records, {batch_len} B batches: {:>8.1} MB/s {:>9.0} batches/s ({} batches, {:.2} s)",
            mb(batches * batch_len) / secs,
            batches as f64 / secs,
            batches,
            secs
        );
        let start = Instant::now();
        log.flush(0).expect("flush");
        println!(
            "flush (fsync {:.0} MB): {:.2} s",
            mb(log.size_bytes()),
            start.elapsed().as_secs_f64()
        );

        let start = Instant::now();
        let mut offset = 0;
        let mut read = 0u64;
        while offset < log.log_end_offset() {
            let r = log.read(offset, 1024 * 1024, i64::MAX, true).expect("read");
            read += r.records.len() as u64;
            // continue after the last batch returned
            let last = gregor::storage::batch::BatchIter::new(&r.records)
                .last()
                .expect("batch")
                .expect("ok")
                .1;
            use gregor::storage::batch::HeaderFields;
            offset = last.next_offset();
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "read    {record_size:>5} B records, 1 MB fetches:  {:>8.1} MB/s",
            mb(read) / secs
        );

        let size = log.size_bytes();
        drop(log); // crash: no clean shutdown, recover everything from offset 0
        let start = Instant::now();
        let log = Log::open(&dir, &tp, config.clone(), 0, 0, false, 0).expect("recover");
        let secs = start.elapsed().as_secs_f64();
        println!(
            "recover {record_size:>5} B records: {:.2} s for {:.0} MB = {:.2} s/GB (CRC of every batch, index rebuild, producer scan)",
            secs,
            mb(size),
            secs / (size as f64 / (1u64 << 30) as f64)
        );
        let start = Instant::now();
        log.close(0).expect("close");
        let log = Log::open(&dir, &tp, config.clone(), i64::MAX, 0, true, 0).expect("clean open");
        println!(
            "clean reopen: {:.3} s ({} segments)",
            start.elapsed().as_secs_f64(),
            log.segment_count()
        );
    }
}
