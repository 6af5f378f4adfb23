//! Transactions in the log: verification, markers, the last stable offset, the
//! transaction index across reads, replication, truncation, recovery and compaction.

use super::batch::test_util::build_batch;
use super::batch::{patch, Batch, BatchIter, HeaderFields};
use super::config::{CleanupPolicy, LogConfig};
use super::control::Marker;
use super::error::AppendError;
use super::fileio::ReadMode;
use super::log::Log;
use super::producer_state::AppendOrigin;
use super::txn_index::AbortedTxn;
use super::TopicPartition;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        index_interval_bytes: 1,
        ..LogConfig::default()
    }
}

fn txn_batch(pid: i64, epoch: i16, seq: i32, keys: &[&str]) -> Vec<u8> {
    let recs: Vec<super::batch::test_util::KeyValue<'_>> = keys
        .iter()
        .map(|k| (Some(k.as_bytes()), Some(&b"value"[..])))
        .collect();
    let mut b = build_batch(0, 1_000, (pid, epoch, seq), &recs);
    b[22] |= 0x10; // transactional
    patch::rewrite_crc(&mut b);
    b
}

fn marker(pid: i64, epoch: i16, coordinator_epoch: i32, commit: bool) -> Marker {
    Marker {
        producer_id: pid,
        producer_epoch: epoch,
        coordinator_epoch,
        commit,
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    tp: TopicPartition,
    log: Log,
}

fn fixture(config: LogConfig) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let tp = TopicPartition::new("txn", 0);
    let path = dir.path().join("txn-0");
    let log = Log::create(&path, &tp, config, None, 1_000).unwrap();
    Fixture {
        _dir: dir,
        path,
        tp,
        log,
    }
}

/// Appends a transactional batch, verifying first when the producer has no open
/// transaction (as the produce path does).
fn produce(log: &mut Log, pid: i64, seq: i32, keys: &[&str]) -> (i64, i64) {
    let guard = log.start_verification(pid, seq, 0, 1_000);
    let a = log
        .append_as_leader_with(
            &txn_batch(pid, 0, seq, keys),
            0,
            AppendOrigin::Client,
            guard,
            1_000,
        )
        .unwrap();
    (a.base_offset, a.last_offset)
}

fn lso(log: &Log, hw: i64) -> i64 {
    log.reader().view().last_stable_offset(hw)
}

fn read_committed(log: &Log, from: i64, hw: i64) -> (Vec<i64>, Vec<AbortedTxn>) {
    let r = log
        .reader()
        .read_isolated(
            from,
            usize::MAX,
            Some(lso(log, hw)),
            true,
            ReadMode::Blocking,
            true,
        )
        .unwrap();
    let offsets = BatchIter::new(&r.records)
        .map(|b| b.unwrap().1.base_offset())
        .collect();
    (offsets, r.aborted_transactions.unwrap())
}

#[test]
fn a_transaction_needs_verification_then_only_its_own_kind_of_batches() {
    let mut f = fixture(config());
    let err = f
        .log
        .append_as_leader_with(
            &txn_batch(7, 0, 0, &["a"]),
            0,
            AppendOrigin::Client,
            None,
            1_000,
        )
        .unwrap_err();
    assert!(matches!(err, AppendError::InvalidTxnState(_)), "{err}");
    // A stale guard (the entry was replaced) does not verify either.
    let stale = f.log.start_verification(7, 0, 0, 1_000).unwrap();
    f.log
        .append_marker(&marker(7, 0, 0, false), 0, 1_000)
        .unwrap();
    let err = f
        .log
        .append_as_leader_with(
            &txn_batch(7, 0, 0, &["a"]),
            0,
            AppendOrigin::Client,
            Some(stale),
            1_000,
        )
        .unwrap_err();
    assert!(matches!(err, AppendError::InvalidTxnState(_)));
    produce(&mut f.log, 7, 0, &["a"]);
    // Open now: no verification needed for more data...
    assert_eq!(f.log.start_verification(7, 1, 0, 1_000), None);
    f.log
        .append_as_leader_with(
            &txn_batch(7, 0, 1, &["b"]),
            0,
            AppendOrigin::Client,
            None,
            1_000,
        )
        .unwrap();
    // ...but no idempotent (non-transactional) batch inside the transaction.
    let plain = build_batch(0, 1_000, (7, 0, 2), &[(Some(b"c"), Some(b"v"))]);
    assert!(matches!(
        f.log.append_as_leader(&plain, 0, 1_000),
        Err(AppendError::InvalidTxnState(_))
    ));
    // With verification disabled, a transactional batch opens a transaction unasked.
    f.log.set_verification_enabled(false);
    f.log
        .append_as_leader_with(
            &txn_batch(8, 0, 0, &["x"]),
            0,
            AppendOrigin::Client,
            None,
            1_000,
        )
        .unwrap();
    assert!(f.log.has_ongoing_txn(8));
}

#[test]
fn markers_are_fenced_by_producer_and_coordinator_epochs() {
    let mut f = fixture(config());
    produce(&mut f.log, 1, 0, &["a"]);
    f.log
        .append_marker(&marker(1, 0, 5, true), 0, 1_000)
        .unwrap();
    assert!(matches!(
        f.log.append_marker(&marker(1, 0, 4, false), 0, 1_000),
        Err(AppendError::TransactionCoordinatorFenced { .. })
    ));
    f.log
        .append_marker(&marker(1, 2, 5, false), 0, 1_000)
        .unwrap();
    assert!(matches!(
        f.log.append_marker(&marker(1, 1, 5, false), 0, 1_000),
        Err(AppendError::InvalidProducerEpoch { .. })
    ));
    // Markers land as control batches with Kafka's attributes.
    let r = f.log.read(0, usize::MAX, i64::MAX, true).unwrap();
    let controls = BatchIter::new(&r.records)
        .filter(|b| b.as_ref().unwrap().1.is_control())
        .count();
    assert_eq!(controls, 2);
}

#[test]
fn read_committed_stops_at_the_lso_and_lists_aborted_transactions() {
    let mut f = fixture(config());
    let (a0, _) = produce(&mut f.log, 1, 0, &["a"]); // 0
    let (b0, _) = produce(&mut f.log, 2, 0, &["b"]); // 1
    produce(&mut f.log, 1, 1, &["a2"]); // 2
    assert_eq!(lso(&f.log, 3), a0);
    let abort = f
        .log
        .append_marker(&marker(1, 0, 0, false), 0, 1_000)
        .unwrap(); // 3
                   // The ABORT of producer 1 is recorded with producer 2's open transaction as LSO.
    let aborted = f.log.aborted_transactions();
    assert_eq!(
        aborted,
        vec![AbortedTxn {
            producer_id: 1,
            first_offset: a0,
            last_offset: abort.base_offset,
            last_stable_offset: b0,
        }]
    );
    assert_eq!(lso(&f.log, 4), b0, "producer 2 is still open");
    assert_eq!(
        lso(&f.log, abort.base_offset),
        a0,
        "the ABORT is not replicated yet"
    );
    let commit = f
        .log
        .append_marker(&marker(2, 0, 0, true), 0, 1_000)
        .unwrap(); // 4
    assert_eq!(
        lso(&f.log, commit.base_offset),
        b0,
        "the COMMIT is not replicated yet"
    );
    assert_eq!(lso(&f.log, 5), 5);
    let (offsets, aborted) = read_committed(&f.log, 0, 5);
    assert_eq!(offsets, vec![0, 1, 2, 3, 4]);
    assert_eq!(aborted.len(), 1);
    // A read past the aborted transaction does not list it.
    let (_, aborted) = read_committed(&f.log, 4, 5);
    assert!(aborted.is_empty());
    // read_uncommitted reads carry no list.
    let r = f.log.read(0, usize::MAX, 5, true).unwrap();
    assert!(r.aborted_transactions.is_none());
    // The HW tells the producer state which completions are replicated.
    f.log.on_high_watermark_updated(5);
    assert_eq!(f.log.first_unstable_offset(), None);
}

#[test]
fn a_follower_rebuilds_the_same_state_from_the_leaders_bytes() {
    let mut leader = fixture(config());
    for i in 0..6 {
        produce(&mut leader.log, 1, i * 2, &["k"]);
        produce(&mut leader.log, 2, i, &["k"]);
        leader
            .log
            .append_marker(&marker(1, 0, 0, i % 2 == 0), 0, 1_000)
            .unwrap();
        leader
            .log
            .append_marker(&marker(2, 0, 0, i % 3 == 0), 0, 1_000)
            .unwrap();
        produce(&mut leader.log, 1, i * 2 + 1, &["k"]);
        leader
            .log
            .append_marker(&marker(1, 0, 0, false), 0, 1_000)
            .unwrap();
    }
    produce(&mut leader.log, 3, 0, &["open"]);
    let end = leader.log.log_end_offset();
    assert!(leader.log.segment_count() > 2, "spans segments");
    let mut follower = fixture(config());
    let mut offset = 0;
    while offset < end {
        let r = leader.log.read(offset, 700, i64::MAX, true).unwrap();
        let fa = follower.log.append_as_follower(&r.records, 1_000).unwrap();
        offset = fa.last_offset + 1;
    }
    assert_eq!(
        follower.log.aborted_transactions(),
        leader.log.aborted_transactions()
    );
    assert_eq!(
        follower.log.first_unstable_offset(),
        leader.log.first_unstable_offset()
    );
    assert!(follower.log.has_ongoing_txn(3));
}

#[test]
fn truncation_drops_index_entries_and_reopens_transactions() {
    let mut f = fixture(config());
    let (first, _) = produce(&mut f.log, 1, 0, &["a"]);
    let abort = f
        .log
        .append_marker(&marker(1, 0, 0, false), 0, 1_000)
        .unwrap();
    assert_eq!(f.log.aborted_transactions().len(), 1);
    f.log.truncate_to(abort.base_offset).unwrap();
    assert!(f.log.aborted_transactions().is_empty());
    assert!(f.log.has_ongoing_txn(1));
    assert_eq!(f.log.first_unstable_offset(), Some(first));
}

fn reopen(f: Fixture, clean: bool, recovery_point: i64) -> Fixture {
    let Fixture {
        _dir,
        path,
        tp,
        log,
    } = f;
    if clean {
        log.close(2_000).unwrap();
    } else {
        drop(log);
    }
    let log = Log::open(&path, &tp, config(), recovery_point, 0, clean, 2_000).unwrap();
    Fixture {
        _dir,
        path,
        tp,
        log,
    }
}

fn busy_log() -> Fixture {
    let mut f = fixture(config());
    for i in 0..8 {
        produce(&mut f.log, 1, i, &["k1"]);
        produce(&mut f.log, 2, i, &["k2"]);
        f.log
            .append_marker(&marker(1, 0, 0, i % 2 == 1), 0, 1_000)
            .unwrap();
        f.log
            .append_marker(&marker(2, 0, 0, false), 0, 1_000)
            .unwrap();
    }
    produce(&mut f.log, 9, 0, &["open"]);
    f
}

#[test]
fn recovery_rebuilds_lost_transaction_indexes_and_open_transactions() {
    let f = busy_log();
    let expected = f.log.aborted_transactions();
    let undecided = f.log.first_undecided_offset();
    assert_eq!(expected.len(), 12);
    // A clean restart keeps everything (the snapshot holds the open transaction).
    let f = reopen(f, true, 0);
    assert_eq!(f.log.aborted_transactions(), expected);
    assert!(f.log.has_ongoing_txn(9));
    assert_eq!(f.log.first_undecided_offset(), undecided);
    // A crash with every .txnindex gone and nothing flushed: all rebuilt from the log.
    for entry in std::fs::read_dir(&f.path).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "txnindex") {
            std::fs::remove_file(p).unwrap();
        }
    }
    let f = reopen(f, false, 0);
    assert_eq!(f.log.aborted_transactions(), expected);
    assert!(f.log.has_ongoing_txn(9));
    // A corrupt .txnindex in a segment the recovery point says is clean is rebuilt too.
    let victim = std::fs::read_dir(&f.path)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "txnindex"))
        .unwrap();
    std::fs::write(&victim, [1u8; 7]).unwrap();
    let end = f.log.log_end_offset();
    let f = reopen(f, false, end);
    assert_eq!(f.log.aborted_transactions(), expected);
}

#[test]
fn compaction_removes_aborted_records_and_keeps_markers() {
    let cfg = LogConfig {
        cleanup_policy: CleanupPolicy::Compact,
        min_cleanable_dirty_ratio: 0.0,
        ..config()
    };
    let mut f = fixture(cfg);
    produce(&mut f.log, 1, 0, &["k", "other"]); // committed value of k
    f.log
        .append_marker(&marker(1, 0, 0, true), 0, 1_000)
        .unwrap();
    produce(&mut f.log, 1, 2, &["k"]); // aborted later value of k
    f.log
        .append_marker(&marker(1, 0, 0, false), 0, 1_000)
        .unwrap();
    for i in 0..30 {
        let b = build_batch(
            0,
            1_000,
            (-1, -1, -1),
            &[(Some(format!("f{i}").as_bytes()), Some(b"v"))],
        );
        f.log.append_as_leader(&b, 0, 1_000).unwrap();
    }
    // Open: nothing from here on is cleaned.
    let (open_at, _) = produce(&mut f.log, 2, 0, &["open"]);
    f.log.on_high_watermark_updated(f.log.log_end_offset());
    f.log.roll(None, 1_000).unwrap();
    assert!(f.log.clean(5_000, i64::MAX).unwrap());
    let r = f.log.read(0, usize::MAX, i64::MAX, true).unwrap();
    let mut kept_k = Vec::new();
    let mut markers = 0;
    for item in BatchIter::new(&r.records) {
        let (_, b) = item.unwrap();
        if b.is_control() {
            markers += 1;
            continue;
        }
        for rec in super::batch::decode_records(&Batch::parse(b.bytes()).unwrap(), 1 << 20).unwrap()
        {
            if rec.key.as_deref() == Some(&b"k"[..]) {
                kept_k.push(rec.offset);
            }
        }
    }
    assert_eq!(
        kept_k,
        vec![0],
        "the aborted value never shadows the committed one"
    );
    assert_eq!(markers, 2);
    assert_eq!(
        f.log.aborted_transactions().len(),
        1,
        "the index survives cleaning"
    );
    assert!(f.log.has_ongoing_txn(2));
    assert_eq!(f.log.first_unstable_offset(), Some(open_at));
}
