//! I/O fault tests of the storage layer: a failed append rolls back to the last good
//! position (offsets never reused, no half-written batch), segment replacement creates
//! before it deletes (a failure half-way leaves a log with segments and a `.swap` that
//! recovery completes), any I/O failure takes the log directory offline, and a log of an
//! earlier topic with the same name is never served (KIP-516).

use std::path::Path;

use super::batch::test_util::build_batch;
use super::batch::HeaderFields;
use super::config::{CleanupPolicy, LogConfig};
use super::error::{AppendError, StorageError};
use super::log::Log;
use super::manager::LogManager;
use super::segment::{fail_next_rename_for_test, Segment};
use super::TopicPartition;

fn tp() -> TopicPartition {
    TopicPartition::new("faults", 0)
}

fn values(n: usize, tag: &str) -> Vec<Vec<u8>> {
    (0..n).map(|i| format!("{tag}-{i}").into_bytes()).collect()
}

/// A client batch (offsets from 0) of `n` records keyed `k<i>`.
fn client_batch(n: usize, tag: &str) -> Vec<u8> {
    let vals = values(n, tag);
    let keys: Vec<Vec<u8>> = (0..n).map(|i| format!("k{i}").into_bytes()).collect();
    let recs: Vec<_> = keys
        .iter()
        .zip(&vals)
        .map(|(k, v)| (Some(&k[..]), Some(&v[..])))
        .collect();
    build_batch(0, 1_000, (-1, -1, -1), &recs)
}

fn config() -> LogConfig {
    LogConfig {
        index_interval_bytes: 1,
        segment_bytes: 1 << 20,
        ..LogConfig::default()
    }
}

/// (offset, value) of every record in the log.
fn contents(log: &Log) -> Vec<(i64, Vec<u8>)> {
    let r = log
        .read(log.log_start_offset(), usize::MAX, i64::MAX, true)
        .expect("read");
    let mut out = Vec::new();
    let mut pos = 0usize;
    let bytes = &r.records[..];
    while pos < bytes.len() {
        let b = super::batch::Batch::parse(&bytes[pos..]).expect("batch");
        for rec in super::batch::decode_records(&b, 64 << 20).expect("records") {
            out.push((
                rec.offset,
                rec.value.map(|v| v.to_vec()).unwrap_or_default(),
            ));
        }
        pos += b.size();
    }
    out
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

#[test]
fn failed_index_append_rolls_the_segment_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut seg = Segment::create(dir.path(), 0, &config(), "", 0).unwrap();
    let mut first = build_batch(0, 5, (-1, -1, -1), &[(Some(b"a"), Some(b"1"))]);
    super::batch::patch::set_base_offset(&mut first, 0);
    seg.append(&first, 0).unwrap();
    let (size, next, entries) = (seg.size(), seg.next_offset(), seg.offset_index().len());
    // The data write succeeds, the index entry write fails (read-only handle): ENOSPC on
    // the index after the data, the case of issue 8.
    seg.break_files_for_test(false, true);
    let mut second = build_batch(1, 6, (-1, -1, -1), &[(Some(b"b"), Some(b"2"))]);
    super::batch::patch::set_base_offset(&mut second, 1);
    assert!(seg.append(&second, 0).is_err(), "the index write must fail");
    assert_eq!(seg.size(), size, "size rolled back");
    assert_eq!(seg.next_offset(), next, "next offset not advanced");
    assert_eq!(
        seg.offset_index().len(),
        entries,
        "index entries rolled back"
    );
    assert_eq!(
        file_len(&seg.log_path()),
        size,
        "the written batch was cut off"
    );
    // The data write itself fails: nothing stays either.
    seg.break_files_for_test(true, false);
    assert!(seg.append(&second, 0).is_err(), "the data write must fail");
    assert_eq!(file_len(&seg.log_path()), size);
    assert_eq!(seg.next_offset(), next);
    // Repaired: the retry gets the same offset once, and recovery finds exactly two batches.
    seg.break_files_for_test(false, false);
    seg.append(&second, 0).unwrap();
    assert_eq!(seg.next_offset(), 2);
    let mut seen = Vec::new();
    let out = seg.recover(0, &mut |b| seen.push(b.base_offset())).unwrap();
    assert_eq!(out.truncated_bytes, 0);
    assert_eq!(seen, vec![0, 1]);
}

#[test]
fn failed_log_append_never_reuses_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let pdir = dir.path().join(tp().dir_name());
    let mut log = Log::create(&pdir, &tp(), config(), Some([1; 16]), 0).unwrap();
    let a = log.append_as_leader(&client_batch(3, "a"), 0, 10).unwrap();
    assert_eq!((a.base_offset, a.last_offset), (0, 2));
    log.break_active_for_test(false, true);
    match log.append_as_leader(&client_batch(2, "lost"), 0, 11) {
        Err(AppendError::Storage(_)) => {}
        other => panic!("expected a storage error, got {other:?}"),
    }
    assert_eq!(
        log.log_end_offset(),
        3,
        "a failed append hands out no offsets"
    );
    log.break_active_for_test(false, false);
    let b = log.append_as_leader(&client_batch(2, "b"), 0, 12).unwrap();
    assert_eq!((b.base_offset, b.last_offset), (3, 4));
    let want: Vec<(i64, Vec<u8>)> = values(3, "a")
        .into_iter()
        .chain(values(2, "b"))
        .enumerate()
        .map(|(i, v)| (i as i64, v))
        .collect();
    assert_eq!(contents(&log), want);
    // A restart (unclean: everything recovered) sees the same log, no duplicate offsets.
    drop(log);
    let log = Log::open(&pdir, &tp(), config(), 0, 0, false, 20).unwrap();
    assert_eq!(contents(&log), want);
}

#[test]
fn io_failure_takes_the_log_dir_offline() {
    let root = tempfile::tempdir().unwrap();
    let dirs = vec![root.path().join("d0")];
    let mgr = LogManager::open(&dirs, 0).unwrap();
    let log = mgr
        .get_or_create(&tp(), config(), Some([1; 16]), 0)
        .unwrap();
    log.lock()
        .unwrap()
        .append_as_leader(&client_batch(1, "x"), 0, 1)
        .unwrap();
    let events = mgr.failure_channel().subscribe();
    log.lock().unwrap().break_active_for_test(true, false);
    assert!(log
        .lock()
        .unwrap()
        .append_as_leader(&client_batch(1, "y"), 0, 2)
        .is_err());
    assert!(events.has_changed().unwrap(), "subscribers are told");
    assert!(mgr.failure_channel().is_offline(0));
    assert!(mgr.is_offline(&tp()));
    assert!(mgr.get(&tp()).is_none());
    assert!(mgr.all().is_empty());
    // Every later operation of that log fails, even once the disk "works" again.
    log.lock().unwrap().break_active_for_test(false, false);
    assert!(matches!(
        log.lock()
            .unwrap()
            .append_as_leader(&client_batch(1, "z"), 0, 3),
        Err(AppendError::Storage(_))
    ));
    assert!(matches!(
        log.lock().unwrap().flush(3),
        Err(StorageError::LogDirOffline(_))
    ));
    assert!(mgr
        .get_or_create(&tp(), config(), Some([1; 16]), 4)
        .is_err());
    // Shutdown writes nothing into the failed directory: no clean-shutdown marker, so the
    // next start recovers it.
    let _ = mgr.shutdown(5);
    assert!(!dirs[0]
        .join(super::checkpoint::CLEAN_SHUTDOWN_FILE)
        .exists());
    drop(mgr);
    let mgr = LogManager::open(&dirs, 6).unwrap();
    let log = mgr.get(&tp()).expect("loaded again");
    assert_eq!(log.lock().unwrap().log_end_offset(), 1);
}

#[test]
fn only_disk_errors_count_as_dir_failures() {
    use super::dir_failure::DiskFailure;
    let eio = || std::io::Error::from_raw_os_error(libc::EIO);
    assert!(StorageError::io("/x", eio()).disk_failure().is_some());
    assert!(StorageError::Closed("t".into()).disk_failure().is_none());
    assert!(StorageError::Corrupt("bad crc".into())
        .disk_failure()
        .is_none());
    // Append and read errors carry storage errors as io::Error: the kinds survive.
    let closed: std::io::Error = StorageError::Closed("t".into()).into();
    assert!(
        closed.disk_failure().is_none(),
        "a closed log is no disk failure"
    );
    let full: std::io::Error =
        StorageError::io("/x", std::io::Error::from_raw_os_error(libc::ENOSPC)).into();
    assert!(full.disk_failure().is_some(), "ENOSPC is one");
    assert!(AppendError::Storage(eio()).disk_failure().is_some());
    assert!(AppendError::InvalidRecord("x".into())
        .disk_failure()
        .is_none());
}

fn compacted() -> LogConfig {
    LogConfig {
        cleanup_policy: CleanupPolicy::Compact,
        min_cleanable_dirty_ratio: 0.0,
        ..config()
    }
}

#[test]
fn cleaner_swap_failure_keeps_the_log_and_recovery_completes_it() {
    let dir = tempfile::tempdir().unwrap();
    let pdir = dir.path().join(tp().dir_name());
    let mut log = Log::create(&pdir, &tp(), compacted(), Some([1; 16]), 0).unwrap();
    // Two segments of the same keys, then an active one.
    log.append_as_leader(&client_batch(4, "old"), 0, 1).unwrap();
    log.roll(None, 1).unwrap();
    log.append_as_leader(&client_batch(4, "new"), 0, 2).unwrap();
    log.roll(None, 2).unwrap();
    log.append_as_leader(&client_batch(1, "active"), 0, 3)
        .unwrap();
    let before = log.segment_base_offsets();
    // The rename of the first cleaned segment's `.swap` into place fails (renames:
    // .cleaned -> .swap, then, after the old files went, .swap -> .log).
    fail_next_rename_for_test(1);
    let err = log.clean(10, i64::MAX);
    assert!(err.is_err(), "the injected rename failure surfaces");
    // No panic, the log still has its segments and an active one.
    assert_eq!(log.segment_base_offsets(), before);
    assert!(log.read(0, usize::MAX, i64::MAX, true).is_ok());
    let swaps = std::fs::read_dir(&pdir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".swap")
        })
        .count();
    assert!(swaps > 0, "the .swap file is left for recovery");
    drop(log);
    // Recovery completes the swap: the cleaned segment replaces the old one, nothing of
    // the newer data is lost.
    let log = Log::open(&pdir, &tp(), compacted(), 0, 0, false, 20).unwrap();
    let got = contents(&log);
    let newest: Vec<Vec<u8>> = values(4, "new")
        .into_iter()
        .chain(values(1, "active"))
        .collect();
    let got_values: Vec<Vec<u8>> = got.iter().map(|(_, v)| v.clone()).collect();
    for v in &newest {
        assert!(
            got_values.contains(v),
            "lost {:?}",
            String::from_utf8_lossy(v)
        );
    }
    assert!(got.windows(2).all(|w| w[0].0 < w[1].0), "offsets increase");
}

#[test]
fn truncate_fully_failure_keeps_an_active_segment() {
    let dir = tempfile::tempdir().unwrap();
    let pdir = dir.path().join(tp().dir_name());
    let mut log = Log::create(&pdir, &tp(), config(), Some([1; 16]), 0).unwrap();
    log.append_as_leader(&client_batch(3, "a"), 0, 1).unwrap();
    // The rename of the fresh segment into place fails after the old ones are gone.
    fail_next_rename_for_test(0);
    assert!(log.truncate_fully_and_start_at(50).is_err());
    // The log still answers (no "log has an active segment" panic) and is empty at 50.
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.log_end_offset(), 50);
    assert!(log.read(50, 1024, i64::MAX, true).is_ok());
    assert!(log.roll(None, 2).is_ok());
    drop(log);
    // Recovery discards the half-made `.cleaned` segment and opens an empty log.
    let log = Log::open(&pdir, &tp(), config(), 0, 50, false, 3).unwrap();
    assert_eq!(contents(&log), Vec::<(i64, Vec<u8>)>::new());
    assert_eq!(log.log_end_offset(), 50);
}

#[test]
fn recreated_topic_never_serves_the_old_log() {
    let root = tempfile::tempdir().unwrap();
    let dirs = vec![root.path().join("d0")];
    let (old_id, new_id) = ([1u8; 16], [2u8; 16]);
    {
        let mgr = LogManager::open(&dirs, 0).unwrap();
        let log = mgr.get_or_create(&tp(), config(), Some(old_id), 0).unwrap();
        log.lock()
            .unwrap()
            .append_as_leader(&client_batch(5, "old-topic"), 0, 1)
            .unwrap();
        mgr.shutdown(2).unwrap();
    }
    // The broker restarts after the topic was deleted and re-created with a new id.
    let mgr = LogManager::open(&dirs, 3).unwrap();
    assert_eq!(
        mgr.get(&tp()).unwrap().lock().unwrap().topic_id(),
        Some(old_id)
    );
    let log = mgr.get_or_create(&tp(), config(), Some(new_id), 4).unwrap();
    {
        let log = log.lock().unwrap();
        assert_eq!(log.topic_id(), Some(new_id));
        assert_eq!(
            log.log_end_offset(),
            0,
            "a fresh log, refilled by replication"
        );
        assert!(contents(&log).is_empty());
    }
    assert_eq!(
        super::checkpoint::read_partition_metadata(&dirs[0].join(tp().dir_name())).unwrap(),
        Some(new_id)
    );
    // The old directory is gone (renamed `-delete`, then removed).
    let left: Vec<String> = std::fs::read_dir(&dirs[0])
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("faults-0"))
        .collect();
    assert_eq!(left, vec!["faults-0".to_string()]);
    // Same id again: the same log.
    let again = mgr.get_or_create(&tp(), config(), Some(new_id), 5).unwrap();
    assert!(std::sync::Arc::ptr_eq(&log, &again));
}

#[test]
fn log_without_topic_id_adopts_it() {
    let root = tempfile::tempdir().unwrap();
    let dirs = vec![root.path().join("d0")];
    let mgr = LogManager::open(&dirs, 0).unwrap();
    let log = mgr.get_or_create(&tp(), config(), None, 0).unwrap();
    log.lock()
        .unwrap()
        .append_as_leader(&client_batch(2, "kept"), 0, 1)
        .unwrap();
    let same = mgr
        .get_or_create(&tp(), config(), Some([9; 16]), 2)
        .unwrap();
    assert!(std::sync::Arc::ptr_eq(&log, &same));
    assert_eq!(same.lock().unwrap().topic_id(), Some([9; 16]));
    assert_eq!(same.lock().unwrap().log_end_offset(), 2);
}

#[test]
fn a_dir_failing_at_load_is_offline_and_blocks_new_logs() {
    let root = tempfile::tempdir().unwrap();
    let dirs = vec![root.path().join("d0"), root.path().join("d1")];
    {
        let mgr = LogManager::open(&dirs, 0).unwrap();
        mgr.get_or_create(&tp(), config(), Some([1; 16]), 0)
            .unwrap();
        mgr.shutdown(1).unwrap();
    }
    // d1 cannot be loaded: its clean-shutdown marker cannot be removed (an I/O error).
    let marker = dirs[1].join(super::checkpoint::CLEAN_SHUTDOWN_FILE);
    let _ = std::fs::remove_file(&marker);
    std::fs::create_dir_all(marker.join("x")).unwrap();
    let mgr = LogManager::open(&dirs, 2).unwrap();
    assert!(mgr.failure_channel().is_offline(1));
    assert!(!mgr.failure_channel().is_offline(0));
    assert_eq!(mgr.live_log_dirs(), vec![dirs[0].clone()]);
    // The existing log in d0 is served; a log that might live in d1 is not re-created
    // empty elsewhere (an empty stand-in could be elected leader and lose its data).
    assert!(mgr.get(&tp()).is_some());
    match mgr.get_or_create(&TopicPartition::new("other", 0), config(), None, 3) {
        Err(StorageError::LogDirOffline(_)) => {}
        other => panic!("expected LogDirOffline, got {other:?}"),
    }
    // A directory that cannot even be created is offline too (here: a file is in its way).
    mgr.shutdown(4).unwrap();
    drop(mgr);
    let blocked = root.path().join("not-a-dir");
    std::fs::write(&blocked, b"").unwrap();
    let with_blocked = vec![dirs[0].clone(), blocked];
    let mgr = LogManager::open(&with_blocked, 4).unwrap();
    assert!(mgr.failure_channel().is_offline(1));
    assert!(mgr.get(&tp()).is_some());
    // With every directory failing to load the manager does not open (Kafka halts).
    let marker0 = dirs[0].join(super::checkpoint::CLEAN_SHUTDOWN_FILE);
    mgr.shutdown(4).unwrap();
    drop(mgr);
    let _ = std::fs::remove_file(&marker0);
    std::fs::create_dir_all(marker0.join("x")).unwrap();
    assert!(LogManager::open(&dirs, 5).is_err());
}

#[test]
fn random_append_failures_never_reuse_offsets_or_leave_half_batches() {
    use rand::{Rng, SeedableRng};
    let seed: u64 = std::env::var("GREGOR_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("append fault seed {seed} (rerun with GREGOR_FAULT_SEED={seed})");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let pdir = dir.path().join(tp().dir_name());
    let small = LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 64,
        ..config()
    };
    let mut log = Log::create(&pdir, &tp(), small.clone(), Some([1; 16]), 0).unwrap();
    let mut want: Vec<(i64, Vec<u8>)> = Vec::new();
    for i in 0..300 {
        let (break_log, break_index) = match rng.gen_range(0..6) {
            0 => (true, false),
            1 => (false, true),
            _ => (false, false),
        };
        log.break_active_for_test(break_log, break_index);
        let n = rng.gen_range(1..4);
        let tag = format!("r{i}");
        match log.append_as_leader(&client_batch(n, &tag), 0, i) {
            Ok(a) => {
                assert_eq!(a.base_offset, want.len() as i64, "offsets are contiguous");
                want.extend(
                    values(n, &tag)
                        .into_iter()
                        .enumerate()
                        .map(|(j, v)| (a.base_offset + j as i64, v)),
                );
            }
            Err(AppendError::Storage(_)) => {
                assert!(break_log || break_index, "only injected failures");
            }
            Err(e) => panic!("unexpected {e}"),
        }
        assert_eq!(log.log_end_offset(), want.len() as i64);
        log.break_active_for_test(false, false);
    }
    assert_eq!(contents(&log), want);
    drop(log);
    // A crash-restart recovers exactly the acknowledged records.
    let log = Log::open(&pdir, &tp(), small, 0, 0, false, 1_000).unwrap();
    assert_eq!(contents(&log), want);
}
