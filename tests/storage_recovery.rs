//! Reopening logs after clean shutdown, crashes and on-disk corruption; LogManager.

mod storage_common;

use std::fs::OpenOptions;
use std::io::Write;

use gregor::storage::{Log, LogConfig, LogManager, StorageError, TopicPartition};
use kafka_protocol::records::Compression;
use storage_common::*;

fn cfg() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        index_interval_bytes: 128,
        ..LogConfig::default()
    }
}

fn reopen(root: &std::path::Path, clean: bool) -> Log {
    Log::open(&part_dir(root), &tp(), cfg(), 0, 0, clean, 1_000).expect("reopen")
}

/// Appends 40 batches of 3 records (mixed codecs); returns the bytes read back.
fn fill(log: &mut Log) -> bytes::Bytes {
    for i in 0..40i64 {
        let codec = CODECS[(i % 5) as usize];
        log.append_as_leader(
            &batch_with(3, 40, 1000 + i, codec, Some((9, 0, (i * 3) as i32)), ""),
            (i / 15) as i32,
            0,
        )
        .unwrap();
    }
    read_all(log)
}

fn active_log_file(root: &std::path::Path) -> std::path::PathBuf {
    files_with_ext(&part_dir(root), ".log").pop().unwrap()
}

#[test]
fn reopen_after_clean_close() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = new_log(dir.path(), cfg());
    let data = fill(&mut log);
    let epochs = log.epoch_entries();
    let segs = log.segment_count();
    log.close(500).unwrap();
    let mut log = reopen(dir.path(), true);
    assert_eq!(log.log_end_offset(), 120);
    assert_eq!(log.segment_count(), segs);
    assert_eq!(read_all(&log), data);
    assert_eq!(log.epoch_entries(), epochs);
    assert_eq!(log.topic_id(), Some([7u8; 16]));
    // the producer's last batch is still recognised as a duplicate
    let dup = log
        .append_as_leader(
            &batch_with(3, 40, 1039, Compression::Zstd, Some((9, 0, 117)), ""),
            2,
            0,
        )
        .unwrap();
    assert!(dup.duplicate);
    assert_eq!((dup.base_offset, dup.last_offset), (117, 119));
    let next = log
        .append_as_leader(
            &batch_with(1, 40, 2000, Compression::None, Some((9, 0, 120)), ""),
            2,
            0,
        )
        .unwrap();
    assert_eq!(next.base_offset, 120);
}

#[test]
fn reopen_after_crash_without_close() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = new_log(dir.path(), cfg());
    let data = fill(&mut log);
    drop(log); // no flush, no snapshot at the end, no clean marker
    let mut log = reopen(dir.path(), false);
    assert_eq!(log.log_end_offset(), 120);
    assert_eq!(read_all(&log), data);
    assert_eq!(log.recovery_point(), 120);
    // producer state rebuilt from the log: a retry of the last batches is a duplicate
    for (seq, base) in [(114, 114), (117, 117)] {
        let dup = log
            .append_as_leader(
                &batch_with(3, 40, 0, Compression::None, Some((9, 0, seq)), ""),
                2,
                0,
            )
            .unwrap();
        assert!(dup.duplicate);
        assert_eq!(dup.base_offset, base);
    }
    assert_eq!(log.producer_state(9).unwrap().last_sequence, 119);
}

#[test]
fn garbage_appended_to_tail_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = new_log(dir.path(), cfg());
    let data = fill(&mut log);
    drop(log);
    let path = active_log_file(dir.path());
    let len = std::fs::metadata(&path).unwrap().len();
    let mut f = OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(&[0xAB; 37]).unwrap();
    drop(f);
    let log = reopen(dir.path(), false);
    assert_eq!(log.log_end_offset(), 120);
    assert_eq!(read_all(&log), data);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), len);
}

#[test]
fn flipped_byte_in_last_batch_drops_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = new_log(dir.path(), cfg());
    let data = fill(&mut log);
    drop(log);
    let path = active_log_file(dir.path());
    let mut raw = std::fs::read(&path).unwrap();
    let n = raw.len();
    raw[n - 3] ^= 0x10;
    std::fs::write(&path, &raw).unwrap();
    let mut log = reopen(dir.path(), false);
    assert_eq!(log.log_end_offset(), 117);
    let got = read_all(&log);
    assert_eq!(&got[..], &data[..got.len()]);
    assert_eq!(offsets(&got), (0..117).collect::<Vec<_>>());
    // appends continue at the recovered end; the dropped batch's producer state is gone
    let r = log
        .append_as_leader(
            &batch_with(3, 40, 0, Compression::None, Some((9, 0, 117)), ""),
            2,
            0,
        )
        .unwrap();
    assert!(!r.duplicate);
    assert_eq!(r.base_offset, 117);
}

#[test]
fn truncated_last_batch_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = new_log(dir.path(), cfg());
    fill(&mut log);
    drop(log);
    let path = active_log_file(dir.path());
    let len = std::fs::metadata(&path).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - 10)
        .unwrap();
    let log = reopen(dir.path(), false);
    assert_eq!(log.log_end_offset(), 117);
    assert_eq!(offsets(&read_all(&log)), (0..117).collect::<Vec<_>>());
}

#[test]
fn corruption_in_middle_segment_drops_later_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = new_log(dir.path(), cfg());
    fill(&mut log);
    let bases = log.segment_base_offsets();
    assert!(bases.len() >= 3);
    drop(log);
    let victim = &files_with_ext(&part_dir(dir.path()), ".log")[1];
    let mut raw = std::fs::read(victim).unwrap();
    // corrupt the second batch of segment 1
    let first = gregor::storage::batch::Batch::parse(&raw).unwrap();
    use gregor::storage::batch::HeaderFields;
    let second_pos = first.size();
    let second_base = i64::from_be_bytes(raw[second_pos..second_pos + 8].try_into().unwrap());
    raw[second_pos + 70] ^= 0xff;
    std::fs::write(victim, &raw).unwrap();
    let log = reopen(dir.path(), false);
    assert_eq!(log.log_end_offset(), second_base);
    assert_eq!(log.segment_count(), 2);
    assert_eq!(
        offsets(&read_all(&log)),
        (0..second_base).collect::<Vec<_>>()
    );
    assert!(log
        .epoch_entries()
        .iter()
        .all(|&(_, start)| start < second_base));
}

#[test]
fn missing_or_corrupt_indexes_are_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = new_log(dir.path(), cfg());
    let data = fill(&mut log);
    log.close(0).unwrap();
    let pd = part_dir(dir.path());
    let idx = files_with_ext(&pd, ".index");
    let tidx = files_with_ext(&pd, ".timeindex");
    let good_idx = std::fs::read(&idx[0]).unwrap();
    assert!(!good_idx.is_empty());
    std::fs::remove_file(&idx[0]).unwrap();
    std::fs::write(&idx[1], [1, 2, 3]).unwrap(); // not a multiple of 8
    std::fs::write(&tidx[2], [0u8; 12 * 3]).unwrap(); // zeros: offsets out of order/range
    let log = reopen(dir.path(), true);
    assert_eq!(std::fs::read(&idx[0]).unwrap(), good_idx);
    assert_eq!(std::fs::metadata(&idx[1]).unwrap().len() % 8, 0);
    assert_eq!(read_all(&log), data);
    for off in [0, 1, 50, 77, 119] {
        let r = log.read(off, 1, i64::MAX, true).unwrap();
        assert!(offsets(&r.records).contains(&off));
    }
    let t = log.fetch_offset_by_timestamp(1020).unwrap().unwrap();
    assert_eq!((t.timestamp, t.offset), (1020, 56));
}

#[test]
fn unclean_open_ignores_stale_index_entries_past_the_tail() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = new_log(dir.path(), cfg());
    fill(&mut log);
    drop(log);
    // an index claiming more data than the log has (e.g. index written, log not)
    let pd = part_dir(dir.path());
    let idx = files_with_ext(&pd, ".index").pop().unwrap();
    let mut f = OpenOptions::new().append(true).open(&idx).unwrap();
    f.write_all(&[0x7f, 0, 0, 0, 0x7f, 0, 0, 0]).unwrap();
    drop(f);
    let log = reopen(dir.path(), false);
    assert_eq!(log.log_end_offset(), 120);
    assert_eq!(offsets(&read_all(&log)).len(), 120);
}

#[test]
fn recovery_point_limits_the_scan_and_snapshots_survive() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = new_log(dir.path(), cfg());
    fill(&mut log);
    log.flush(10).unwrap();
    let rp = log.recovery_point();
    assert_eq!(rp, 120);
    // snapshots were taken at each roll
    assert!(files_with_ext(&part_dir(dir.path()), ".snapshot").len() >= 2);
    drop(log);
    let log = Log::open(&part_dir(dir.path()), &tp(), cfg(), rp, 0, false, 2_000).unwrap();
    assert_eq!(log.log_end_offset(), 120);
    assert_eq!(log.producer_state(9).unwrap().last_offset, 119);
}

#[test]
fn log_manager_lifecycle_and_offline_partitions() {
    let root = tempfile::tempdir().unwrap();
    let dirs = vec![root.path().join("d1"), root.path().join("d2")];
    let mgr = LogManager::open(&dirs, 0).unwrap();
    // a second manager cannot lock the same directories
    assert!(matches!(
        LogManager::open(&dirs, 0),
        Err(StorageError::DirLocked(_))
    ));
    let tps: Vec<TopicPartition> = (0..4).map(|p| TopicPartition::new("orders", p)).collect();
    for tp in &tps {
        let log = mgr.get_or_create(tp, cfg(), Some([1; 16]), 0).unwrap();
        let mut log = log.lock().unwrap();
        for i in 0..10 {
            log.append_as_leader(&batch(4, i), 0, 0).unwrap();
        }
    }
    // spread over both directories
    let in_d1 = tps
        .iter()
        .filter(|tp| mgr.log_dir_of(tp) == Some(dirs[0].clone()))
        .count();
    assert_eq!(in_d1, 2);
    assert_eq!(mgr.all().len(), 4);
    mgr.checkpoint_recovery_points().unwrap();
    mgr.shutdown(100).unwrap();
    drop(mgr);
    for d in &dirs {
        assert!(d.join(".kafka_cleanshutdown").exists());
        let cp = std::fs::read_to_string(d.join("recovery-point-offset-checkpoint")).unwrap();
        assert!(cp.starts_with("0\n2\norders "), "{cp}");
        assert!(cp.contains(" 40\n"));
        assert!(d.join("log-start-offset-checkpoint").exists());
    }
    // corrupt one partition beyond recovery; it is reported offline, others load
    let victim = mgr_dir_of(&dirs, &tps[1]);
    std::fs::write(victim.join("partition.metadata"), "garbage").unwrap();
    let mgr = LogManager::open(&dirs, 200).unwrap();
    for d in &dirs {
        assert!(
            !d.join(".kafka_cleanshutdown").exists(),
            "marker is consumed at open"
        );
    }
    let offline = mgr.offline_partitions();
    assert_eq!(offline.len(), 1);
    assert_eq!(offline[0].0, tps[1]);
    assert!(offline[0].1.contains("partition.metadata"));
    assert_eq!(mgr.all().len(), 3);
    for tp in [&tps[0], &tps[2], &tps[3]] {
        let log = mgr.get(tp).unwrap();
        let log = log.lock().unwrap();
        assert_eq!(log.log_end_offset(), 40);
        assert_eq!(offsets(&read_all(&log)), (0..40).collect::<Vec<_>>());
    }
    assert!(mgr.get_or_create(&tps[1], cfg(), None, 0).is_err());
    // delete a live partition and the offline one
    mgr.delete(&tps[0]).unwrap();
    mgr.delete(&tps[1]).unwrap();
    assert!(mgr.get(&tps[0]).is_none());
    assert!(mgr.offline_partitions().is_empty());
    assert!(!victim.exists());
    // retention / flush / cleaner entry points run
    assert_eq!(mgr.run_retention(1_000, |_| i64::MAX), 0);
    mgr.flush_due(1_000);
    mgr.run_cleaner(1_000);
    // crash (no shutdown): the next open recovers
    drop(mgr);
    let mgr = LogManager::open(&dirs, 300).unwrap();
    assert_eq!(mgr.all().len(), 2);
    for (_, log) in mgr.all() {
        assert_eq!(log.lock().unwrap().log_end_offset(), 40);
    }
    mgr.shutdown(400).unwrap();
}

fn mgr_dir_of(dirs: &[std::path::PathBuf], tp: &TopicPartition) -> std::path::PathBuf {
    dirs.iter()
        .map(|d| d.join(tp.dir_name()))
        .find(|p| p.exists())
        .unwrap()
}

#[test]
fn corrupt_epoch_checkpoint_is_rebuilt_from_batches() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = new_log(dir.path(), cfg());
    fill(&mut log);
    let epochs = log.epoch_entries();
    log.close(0).unwrap();
    std::fs::write(
        part_dir(dir.path()).join("leader-epoch-checkpoint"),
        "0\n9\nnonsense",
    )
    .unwrap();
    let log = reopen(dir.path(), true);
    assert_eq!(log.epoch_entries(), epochs);
}

#[test]
fn log_start_checkpoint_is_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        file_delete_delay_ms: 0,
        ..cfg()
    };
    let mut log = new_log(dir.path(), cfg.clone());
    fill(&mut log);
    log.increment_log_start_offset(50).unwrap();
    log.close(0).unwrap();
    let log = Log::open(&part_dir(dir.path()), &tp(), cfg, 120, 50, true, 0).unwrap();
    assert_eq!(log.log_start_offset(), 50);
    assert!(log.read(49, 100, i64::MAX, true).is_err());
}
