//! The transaction state manager driven by a fake clock: every state, epoch and error
//! path, markers and completions, without sockets or sleeping.

use std::collections::BTreeSet;

use kafka_protocol::ResponseError as Error;
use tokio::sync::{mpsc, oneshot};

use super::metadata::TxnState;
use super::records;
use super::shard::*;
use crate::coordinator::CoordinatorShard;

const TIMEOUT: i32 = 60_000;

fn config() -> TxnShardConfig {
    TxnShardConfig {
        max_timeout_ms: 900_000,
        id_expiration_ms: 7 * 24 * 3600 * 1000,
        abort_timed_out_interval_ms: 10_000,
        remove_expired_interval_ms: 3_600_000,
    }
}

struct Harness {
    s: TxnShard,
    now: i64,
    /// Every record "written": (transactional id, state or None for a tombstone).
    log: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    jobs: mpsc::UnboundedReceiver<MarkerJob>,
    /// Appends fail with this error instead of succeeding.
    fail: Option<Error>,
    next_pid: i64,
}

fn tps(list: &[(&str, i32)]) -> BTreeSet<TopicPartition> {
    list.iter().map(|(t, p)| (t.to_string(), *p)).collect()
}

impl Harness {
    fn new() -> Harness {
        let (tx, jobs) = mpsc::unbounded_channel();
        let mut s = TxnShard::new(7, 3, config(), tx);
        let now = 1_000_000;
        s.finish_loading(now);
        Harness {
            s,
            now,
            log: Vec::new(),
            jobs,
            fail: None,
            next_pid: 1000,
        }
    }

    fn settle(&mut self, appends: Vec<Append>) {
        let mut work = appends;
        while let Some(a) = work.pop() {
            let outcome = match self.fail {
                Some(e) => Err(e),
                None => {
                    let base = self.log.len() as i64;
                    for r in &a.records {
                        self.log
                            .push((r.key.to_vec(), r.value.as_ref().map(|v| v.to_vec())));
                    }
                    Ok(base)
                }
            };
            work.extend((a.on_done)(&mut self.s, outcome, self.now));
        }
    }

    fn last_state(&self) -> Option<TxnState> {
        let (_, v) = self.log.last()?;
        v.as_ref().map(|v| records::decode_value(v).unwrap().state)
    }

    fn init(&mut self, id: &str, expected: Option<(i64, i16)>) -> Result<(i64, i16), Error> {
        let mut new_pid = None;
        for _ in 0..2 {
            let (tx, mut rx) = oneshot::channel();
            let req = InitRequest {
                transactional_id: id.into(),
                timeout_ms: TIMEOUT,
                expected,
                new_producer_id: new_pid,
            };
            let a = self.s.init_producer_id(req, tx, self.now);
            self.settle(a);
            match rx.try_recv().expect("answered") {
                InitOutcome::Ok(pid, e) => return Ok((pid, e)),
                InitOutcome::Failed(e) => return Err(e),
                InitOutcome::NeedProducerId => {
                    new_pid = Some(self.next_pid);
                    self.next_pid += 1;
                }
            }
        }
        panic!("asked for a producer id twice");
    }

    fn add(&mut self, id: &str, pid: i64, epoch: i16, parts: &[(&str, i32)]) -> Result<(), Error> {
        let (tx, mut rx) = oneshot::channel();
        let a = self
            .s
            .add_partitions(id, pid, epoch, tps(parts), tx, self.now);
        self.settle(a);
        rx.try_recv().expect("answered")
    }

    fn end(&mut self, id: &str, pid: i64, epoch: i16, commit: bool) -> Result<(), Error> {
        let (tx, mut rx) = oneshot::channel();
        let a = self
            .s
            .end_transaction(id, pid, epoch, commit, EndWaiter::EndTxn(tx), self.now);
        self.settle(a);
        rx.try_recv().expect("answered")
    }

    fn job(&mut self) -> MarkerJob {
        self.jobs.try_recv().expect("a marker job")
    }

    fn deliver(&mut self, job: &MarkerJob) {
        let done: Vec<TopicPartition> = job.partitions.iter().cloned().collect();
        let a = self.s.markers_written(job, &done, self.now);
        self.settle(a);
    }

    fn advance(&mut self, ms: i64) {
        self.now += ms;
        let a = self.s.poll_timers(self.now);
        self.settle(a);
    }

    fn state(&self, id: &str) -> TxnState {
        self.s.get(id).unwrap().state
    }
}

#[test]
fn commit_cycle_with_markers_and_completion() {
    let mut h = Harness::new();
    let (pid, epoch) = h.init("t", None).unwrap();
    assert_eq!((pid, epoch), (1000, 0));
    assert_eq!(h.last_state(), Some(TxnState::Empty));
    h.add("t", pid, epoch, &[("a", 0), ("b", 1)]).unwrap();
    assert_eq!(h.state("t"), TxnState::Ongoing);
    // Adding what is in already answers without a write.
    let writes = h.log.len();
    h.add("t", pid, epoch, &[("a", 0)]).unwrap();
    assert_eq!(h.log.len(), writes);
    h.end("t", pid, epoch, true).unwrap();
    assert_eq!(h.last_state(), Some(TxnState::PrepareCommit));
    let job = h.job();
    assert_eq!(
        (
            job.commit,
            job.producer_id,
            job.producer_epoch,
            job.coordinator_epoch,
            job.txn_partition
        ),
        (true, pid, epoch, 3, 7)
    );
    assert_eq!(job.partitions, tps(&[("a", 0), ("b", 1)]));
    // While markers are out, everything else waits.
    assert_eq!(
        h.add("t", pid, epoch, &[("c", 0)]),
        Err(Error::ConcurrentTransactions)
    );
    assert_eq!(
        h.end("t", pid, epoch, true),
        Err(Error::ConcurrentTransactions)
    );
    assert_eq!(h.init("t", None), Err(Error::ConcurrentTransactions));
    // One partition at a time: the completion follows the last.
    let a = h.s.markers_written(&job, &[("a".into(), 0)], h.now);
    h.settle(a);
    assert_eq!(h.state("t"), TxnState::PrepareCommit);
    let a = h.s.markers_written(&job, &[("b".into(), 1)], h.now);
    h.settle(a);
    assert_eq!(h.state("t"), TxnState::CompleteCommit);
    assert_eq!(h.last_state(), Some(TxnState::CompleteCommit));
    // A retried EndTxn(commit) is fine, an abort is not.
    assert_eq!(h.end("t", pid, epoch, true), Ok(()));
    assert_eq!(h.end("t", pid, epoch, false), Err(Error::InvalidTxnState));
    // The job is done: a late report changes nothing.
    assert!(!h.s.job_is_current(&job));
    let d = h.s.describe("t").unwrap();
    assert_eq!(
        (d.state, d.producer_id, d.timeout_ms),
        (TxnState::CompleteCommit, pid, TIMEOUT)
    );
}

#[test]
fn end_txn_errors() {
    let mut h = Harness::new();
    assert_eq!(
        h.end("nobody", 1, 0, true),
        Err(Error::InvalidProducerIdMapping)
    );
    let (pid, epoch) = h.init("t", None).unwrap();
    assert_eq!(
        h.end("t", pid, epoch, true),
        Err(Error::InvalidTxnState),
        "Empty"
    );
    assert_eq!(
        h.end("t", pid + 1, epoch, true),
        Err(Error::InvalidProducerIdMapping)
    );
    h.add("t", pid, epoch, &[("a", 0)]).unwrap();
    assert_eq!(h.end("t", pid, epoch + 1, true), Err(Error::ProducerFenced));
    assert_eq!(
        h.add("t", pid, epoch + 1, &[("a", 1)]),
        Err(Error::ProducerFenced)
    );
    assert_eq!(
        h.add("t", 5, epoch, &[("a", 1)]),
        Err(Error::InvalidProducerIdMapping)
    );
    // A failed write leaves the state as it was and the next attempt may go ahead.
    h.fail = Some(Error::NotEnoughReplicas);
    assert_eq!(
        h.end("t", pid, epoch, false),
        Err(Error::CoordinatorNotAvailable)
    );
    h.fail = Some(Error::NotLeaderOrFollower);
    assert_eq!(h.end("t", pid, epoch, false), Err(Error::NotCoordinator));
    h.fail = None;
    assert_eq!(h.state("t"), TxnState::Ongoing);
    h.end("t", pid, epoch, false).unwrap();
    let job = h.job();
    assert!(!job.commit);
    h.deliver(&job);
    assert_eq!(h.state("t"), TxnState::CompleteAbort);
}

#[test]
fn a_new_producer_fences_the_open_transaction() {
    let mut h = Harness::new();
    let (pid, e0) = h.init("t", None).unwrap();
    h.add("t", pid, e0, &[("a", 0)]).unwrap();
    // The second producer's first attempt aborts the open transaction at a bumped epoch.
    assert_eq!(h.init("t", None), Err(Error::ConcurrentTransactions));
    assert_eq!(h.last_state(), Some(TxnState::PrepareAbort));
    let job = h.job();
    assert_eq!((job.commit, job.producer_epoch), (false, e0 + 1));
    // The old producer is fenced from here on.
    assert_eq!(h.end("t", pid, e0, true), Err(Error::ProducerFenced));
    h.deliver(&job);
    assert_eq!(h.state("t"), TxnState::CompleteAbort);
    let (pid2, e2) = h.init("t", None).unwrap();
    assert_eq!((pid2, e2), (pid, e0 + 2));
    assert_eq!(h.add("t", pid, e0, &[("a", 0)]), Err(Error::ProducerFenced));
}

#[test]
fn kip_360_resume_and_fencing() {
    let mut h = Harness::new();
    let (pid, e0) = h.init("t", None).unwrap();
    // The producer resumes after an error with its own id and epoch: bumped.
    assert_eq!(h.init("t", Some((pid, e0))), Ok((pid, e0 + 1)));
    // A retry of that call (the previous epoch) gets the same answer.
    assert_eq!(h.init("t", Some((pid, e0))), Ok((pid, e0 + 1)));
    // A stranger's id, or a stale epoch, is fenced.
    assert_eq!(h.init("t", Some((pid + 99, 0))), Err(Error::ProducerFenced));
    h.init("t", None).unwrap();
    assert_eq!(h.init("t", Some((pid, e0))), Err(Error::ProducerFenced));
}

#[test]
fn timed_out_transactions_are_aborted_with_a_bumped_epoch() {
    let mut h = Harness::new();
    let (pid, epoch) = h.init("t", None).unwrap();
    h.add("t", pid, epoch, &[("a", 0)]).unwrap();
    h.advance(TIMEOUT as i64 / 2);
    assert_eq!(h.state("t"), TxnState::Ongoing);
    h.advance(TIMEOUT as i64);
    assert_eq!(h.state("t"), TxnState::PrepareAbort);
    let job = h.job();
    assert_eq!(job.producer_epoch, epoch + 1);
    assert_eq!(h.end("t", pid, epoch, true), Err(Error::ProducerFenced));
    h.deliver(&job);
    assert_eq!(h.state("t"), TxnState::CompleteAbort);
    assert_eq!(h.init("t", Some((pid, epoch))), Err(Error::ProducerFenced));
}

#[test]
fn completion_writes_are_retried_and_ids_expire() {
    let mut h = Harness::new();
    let (pid, epoch) = h.init("t", None).unwrap();
    h.add("t", pid, epoch, &[("a", 0)]).unwrap();
    h.end("t", pid, epoch, true).unwrap();
    let job = h.job();
    h.fail = Some(Error::NotEnoughReplicas);
    h.deliver(&job);
    assert_eq!(h.state("t"), TxnState::PrepareCommit);
    h.fail = None;
    h.advance(200);
    assert_eq!(h.state("t"), TxnState::CompleteCommit);
    // transactional.id.expiration.ms later the id is tombstoned and forgotten.
    h.advance(config().id_expiration_ms + config().remove_expired_interval_ms);
    assert!(h.s.get("t").is_none());
    assert_eq!(h.log.last().unwrap().1, None, "a tombstone");
    assert_eq!(h.s.describe("t"), Err(Error::TransactionalIdNotFound));
}

#[test]
fn verification_answers_per_partition() {
    let mut h = Harness::new();
    let (pid, epoch) = h.init("t", None).unwrap();
    h.add("t", pid, epoch, &[("a", 0)]).unwrap();
    let parts = vec![("a".to_string(), 0), ("a".to_string(), 1)];
    assert_eq!(
        h.s.verify_partitions("t", pid, epoch, &parts),
        Ok(vec![
            (parts[0].clone(), None),
            (parts[1].clone(), Some(Error::TransactionAbortable))
        ])
    );
    assert_eq!(
        h.s.verify_partitions("t", pid, epoch + 1, &parts),
        Err(Error::ProducerFenced)
    );
    assert_eq!(
        h.s.verify_partitions("u", pid, epoch, &parts),
        Err(Error::InvalidProducerIdMapping)
    );
    h.end("t", pid, epoch, false).unwrap();
    assert_eq!(
        h.s.verify_partitions("t", pid, epoch, &parts),
        Err(Error::ConcurrentTransactions)
    );
}

#[test]
fn a_reloaded_partition_completes_prepared_transactions_and_lists() {
    let mut h = Harness::new();
    let (pid, epoch) = h.init("t", None).unwrap();
    h.add("t", pid, epoch, &[("a", 0), ("a", 1)]).unwrap();
    h.end("t", pid, epoch, true).unwrap();
    let _lost_with_the_old_coordinator = h.job();
    let (pid2, e2) = h.init("open", None).unwrap();
    h.add("open", pid2, e2, &[("b", 0)]).unwrap();
    // A new coordinator (epoch 4) loads the records.
    let (tx, mut jobs) = mpsc::unbounded_channel();
    let mut s = TxnShard::new(7, 4, config(), tx);
    for (i, (k, v)) in h.log.iter().enumerate() {
        s.replay(k, v.as_deref(), i as i64);
    }
    let appends = s.finish_loading(h.now);
    assert!(appends.is_empty());
    let job = jobs.try_recv().unwrap();
    assert_eq!((job.commit, job.coordinator_epoch), (true, 4));
    assert_eq!(job.partitions, tps(&[("a", 0), ("a", 1)]));
    assert!(
        jobs.try_recv().is_err(),
        "the open transaction needs no markers"
    );
    h.s = s;
    h.deliver(&job);
    assert_eq!(h.state("t"), TxnState::CompleteCommit);
    let all = h.s.list(
        &ListFilter {
            min_duration_ms: -1,
            ..ListFilter::default()
        },
        h.now,
    );
    assert_eq!(all.len(), 2);
    let ongoing = ListFilter {
        states: [TxnState::Ongoing].into(),
        min_duration_ms: -1,
        ..ListFilter::default()
    };
    assert_eq!(
        h.s.list(&ongoing, h.now),
        vec![("open".to_string(), pid2, TxnState::Ongoing)]
    );
    let by_pid = ListFilter {
        producer_ids: [pid].into(),
        min_duration_ms: -1,
        ..ListFilter::default()
    };
    assert_eq!(h.s.list(&by_pid, h.now).len(), 1);
    let long = ListFilter {
        min_duration_ms: 10_000,
        ..ListFilter::default()
    };
    assert!(h.s.list(&long, h.now).is_empty());
    h.now += 20_000;
    assert_eq!(h.s.list(&long, h.now).len(), 2);
}
