//! The follower fetcher against an in-process leader (no sockets): a real leader
//! `Partition` on its own log, served through the real fetch-session cache, with lost
//! requests and forgotten sessions injected. The follower's log must end up identical to
//! the leader's, the high watermark must reach the follower, and a divergent tail must be
//! truncated away (KIP-320).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{
    EpochEndOffset, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{
    FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use tokio::sync::{watch, Notify};

use super::{fetch_loop, FetcherShared, Followed, LeaderDialer, LeaderLink};
use crate::config::BrokerConfig;
use crate::fetch_session::cache::{FetchContext, FetchRequestView, FetchSessionCache};
use crate::fetch_session::{PartitionKey, PartitionParams, PartitionSummary, TopicRef};
use crate::replica::partition::Partition;
use crate::replica::state::LeaderAndIsr;
use crate::replica::throttle::ReplicationQuotas;
use crate::storage::fileio::ReadMode;
use crate::storage::io_pool::IoPool;
use crate::storage::{LogConfig, LogManager, TopicPartition};

const LEADER: i32 = 1;
const FOLLOWER: i32 = 2;

fn tp() -> TopicPartition {
    TopicPartition::new("t", 0)
}

/// A partition replica of broker `id` on its own log directory.
fn replica(dir: &std::path::Path, id: i32) -> Arc<Partition> {
    let logs = LogManager::open(&[dir.to_path_buf()], 0).unwrap();
    let log = logs
        .get_or_create(&tp(), LogConfig::default(), Some([7; 16]), 0)
        .unwrap();
    Arc::new(Partition::new(tp(), uuid::Uuid::nil(), id, log, 0))
}

fn state(leader: i32, epoch: i32) -> LeaderAndIsr {
    LeaderAndIsr {
        leader,
        leader_epoch: epoch,
        replicas: vec![LEADER, FOLLOWER],
        isr: vec![LEADER, FOLLOWER],
        zk_version: epoch,
        controller_epoch: 1,
    }
}

fn batch(value: &str) -> Bytes {
    let record = Record {
        transactional: false,
        control: false,
        partition_leader_epoch: 0,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: 1_700_000_000_000,
        key: None,
        value: Some(Bytes::from(value.to_string())),
        headers: Default::default(),
        delete_horizon: false,
    };
    let mut buf = bytes::BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        [&record],
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    buf.freeze()
}

/// Every byte of a replica's log from its start.
fn contents(p: &Partition) -> Vec<u8> {
    let log = p.log().lock().unwrap();
    log.read(log.log_start_offset(), usize::MAX, i64::MAX, true)
        .unwrap()
        .records
        .to_vec()
}

/// Faults the in-process leader injects.
#[derive(Default)]
struct Faults {
    requests: u64,
    /// Every n-th request is lost (the fetcher sees a broken connection).
    lose_every: u64,
    /// Every n-th request finds the session cache emptied (a restarted leader).
    forget_every: u64,
}

/// The leader side of a fetch, in process: the session cache and the partition's reads
/// as `api::fetch` does them for a follower.
#[derive(Clone)]
struct InProcessLeader {
    partition: Arc<Partition>,
    sessions: Arc<Mutex<FetchSessionCache>>,
    faults: Arc<Mutex<Faults>>,
}

impl InProcessLeader {
    fn answer(&self, p: &PartitionParams) -> PartitionData {
        let base = PartitionData::default()
            .with_partition_index(0)
            .with_preferred_read_replica(kafka_protocol::messages::BrokerId(-1));
        if let Some((epoch, end_offset)) = self
            .partition
            .diverging_epoch(p.fetch_offset, p.last_fetched_epoch)
        {
            return base
                .with_high_watermark(self.partition.high_watermark())
                .with_log_start_offset(self.partition.log_start_offset())
                .with_diverging_epoch(
                    EpochEndOffset::default()
                        .with_epoch(epoch)
                        .with_end_offset(end_offset),
                )
                .with_records(Some(Bytes::new()));
        }
        match self.partition.read(
            p.fetch_offset,
            p.max_bytes as usize,
            true,
            p.current_leader_epoch,
            Some(FOLLOWER),
            crate::clock::now_ms(),
            ReadMode::Blocking,
            false,
        ) {
            Ok((result, hw, lso, _)) => base
                .with_high_watermark(hw)
                .with_last_stable_offset(lso)
                .with_log_start_offset(result.log_start_offset)
                .with_records(Some(result.records)),
            Err(err) => base
                .with_error_code(crate::replica::errors::partition_error(&err).code())
                .with_high_watermark(-1)
                .with_records(Some(Bytes::new())),
        }
    }
}

fn key() -> PartitionKey {
    (TopicRef::Name("t".into()), 0)
}

impl LeaderLink for InProcessLeader {
    async fn fetch(
        &mut self,
        request: &FetchRequest,
        _timeout: Duration,
    ) -> Result<FetchResponse, String> {
        {
            let mut f = self.faults.lock().unwrap();
            f.requests += 1;
            if f.lose_every > 0 && f.requests.is_multiple_of(f.lose_every) {
                return Err("connection lost".into());
            }
            if f.forget_every > 0 && f.requests.is_multiple_of(f.forget_every) {
                *self.sessions.lock().unwrap() = FetchSessionCache::new(10, 100);
            }
        }
        let requested: Vec<(PartitionKey, PartitionParams)> = request
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter())
            .map(|p| {
                let params = PartitionParams {
                    fetch_offset: p.fetch_offset,
                    current_leader_epoch: p.current_leader_epoch,
                    last_fetched_epoch: p.last_fetched_epoch,
                    log_start_offset: p.log_start_offset,
                    max_bytes: p.partition_max_bytes,
                };
                (key(), params)
            })
            .collect();
        let forgotten: Vec<PartitionKey> = request
            .forgotten_topics_data
            .iter()
            .flat_map(|t| t.partitions.iter().map(|_| key()))
            .collect();
        let view = FetchRequestView {
            session_id: request.session_id,
            epoch: request.session_epoch,
            uses_topic_ids: false,
            partitions: &requested,
            forgotten: &forgotten,
        };
        let context = self
            .sessions
            .lock()
            .unwrap()
            .begin(&view, crate::clock::now_ms());
        let wanted = match &context {
            FetchContext::Error(e) => {
                return Ok(FetchResponse::default().with_error_code(e.code()));
            }
            FetchContext::Incremental { partitions, .. } => partitions.clone(),
            _ => requested.clone(),
        };
        // A short long-poll, so an idle fetcher does not spin.
        let mut changed = self.partition.subscribe();
        let answers: Vec<PartitionData> = wanted.iter().map(|(_, p)| self.answer(p)).collect();
        if answers.iter().all(|a| !PartitionSummary::of(a).has_records) {
            let _ = tokio::time::timeout(Duration::from_millis(20), changed.changed()).await;
        }
        let mut sessions = self.sessions.lock().unwrap();
        let (session_id, include) = match &context {
            FetchContext::Full => {
                let entries = wanted
                    .iter()
                    .zip(&answers)
                    .map(|((k, p), a)| (k.clone(), p.clone(), PartitionSummary::of(a)))
                    .collect();
                let mut next = rand::random::<i32>;
                let id =
                    sessions.finish_full(true, false, entries, crate::clock::now_ms(), &mut next);
                (id, vec![true; answers.len()])
            }
            FetchContext::Incremental {
                session_id, epoch, ..
            } => {
                let summaries: Vec<_> = wanted
                    .iter()
                    .zip(&answers)
                    .map(|((k, _), a)| (k.clone(), PartitionSummary::of(a)))
                    .collect();
                match sessions.finish_incremental(*session_id, *epoch, &summaries) {
                    Ok(include) => (*session_id, include),
                    Err(e) => return Ok(FetchResponse::default().with_error_code(e.code())),
                }
            }
            _ => (0, vec![true; answers.len()]),
        };
        let partitions: Vec<PartitionData> = answers
            .into_iter()
            .zip(include)
            .filter_map(|(a, inc)| inc.then_some(a))
            .collect();
        let mut response = FetchResponse::default().with_session_id(session_id);
        if !partitions.is_empty() {
            response.responses = vec![FetchableTopicResponse::default()
                .with_topic(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(partitions)];
        }
        Ok(response)
    }

    async fn list_offsets(
        &mut self,
        request: &ListOffsetsRequest,
        _timeout: Duration,
    ) -> Result<ListOffsetsResponse, String> {
        let timestamp = request.topics[0].partitions[0].timestamp;
        let offset = if timestamp == -2 {
            self.partition.log_start_offset()
        } else {
            self.partition.log_end_offset()
        };
        Ok(
            ListOffsetsResponse::default().with_topics(vec![ListOffsetsTopicResponse::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(vec![ListOffsetsPartitionResponse::default()
                    .with_partition_index(0)
                    .with_offset(offset)])]),
        )
    }
}

impl LeaderDialer for InProcessLeader {
    type Link = InProcessLeader;

    async fn dial(&self, leader: i32) -> Result<InProcessLeader, String> {
        assert_eq!(leader, LEADER);
        Ok(self.clone())
    }
}

fn config() -> Arc<BrokerConfig> {
    let values: BTreeMap<String, String> = [
        ("broker.id", "2"),
        ("log.dirs", "/nonexistent"),
        ("zookeeper.connect", "127.0.0.1:1"),
        ("replica.fetch.backoff.ms", "10"),
        ("replica.fetch.wait.max.ms", "50"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    Arc::new(BrokerConfig::from_values(values).unwrap())
}

/// Starts a fetcher for `follower` against `leader`; stop it by sending `true`.
fn spawn_fetcher(
    leader: InProcessLeader,
    follower: Arc<Partition>,
    epoch: i32,
    quotas: Arc<ReplicationQuotas>,
) -> (watch::Sender<bool>, tokio::task::JoinHandle<()>) {
    let mut partitions = BTreeMap::new();
    partitions.insert(
        tp(),
        Followed {
            partition: follower,
            leader_epoch: epoch,
            delayed_until_ms: 0,
            caught_up: false,
        },
    );
    let shared = Arc::new(FetcherShared {
        partitions: Mutex::new(partitions),
        wake: Notify::new(),
        io: Arc::new(IoPool::new(2, 16)),
        quotas,
    });
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(fetch_loop(config(), leader, LEADER, shared, stopped));
    (stop, task)
}

/// A leader partition served in-process, with these faults.
fn link_to(leader: &Arc<Partition>, faults: Faults) -> InProcessLeader {
    InProcessLeader {
        partition: leader.clone(),
        sessions: Arc::new(Mutex::new(FetchSessionCache::new(10, 100))),
        faults: Arc::new(Mutex::new(faults)),
    }
}

/// Runs a fetcher for `follower` against `leader` until `done` holds (or 30 s pass).
async fn replicate_until(
    leader: InProcessLeader,
    follower: Arc<Partition>,
    epoch: i32,
    done: impl FnMut() -> bool,
) {
    let fetcher = spawn_fetcher(leader, follower, epoch, Default::default());
    stop_when(fetcher, done).await;
}

/// Waits until `done` holds (or 30 s pass), then stops the fetcher.
async fn stop_when(
    (stop, task): (watch::Sender<bool>, tokio::task::JoinHandle<()>),
    mut done: impl FnMut() -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the follower did not catch up"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.send_replace(true);
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_follower_copies_the_leader_through_lost_requests_and_forgotten_sessions() {
    let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let leader = replica(dirs.0.path(), LEADER);
    let follower = replica(dirs.1.path(), FOLLOWER);
    let now = crate::clock::now_ms();
    leader.apply(&state(LEADER, 1), now).unwrap();
    follower.apply(&state(LEADER, 1), now).unwrap();
    let link = link_to(
        &leader,
        Faults {
            lose_every: 7,
            forget_every: 11,
            ..Faults::default()
        },
    );
    // The leader keeps appending while the fetcher runs.
    let writer = {
        let leader = leader.clone();
        tokio::spawn(async move {
            for i in 0..300u32 {
                leader
                    .append_as_leader(&batch(&format!("v{i}")), 1, crate::clock::now_ms())
                    .unwrap();
                if i.is_multiple_of(20) {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        })
    };
    let (l, f) = (leader.clone(), follower.clone());
    replicate_until(link.clone(), follower.clone(), 1, move || {
        writer.is_finished()
            && f.log_end_offset() == 300
            && l.high_watermark() == 300
            && f.high_watermark() == 300
    })
    .await;
    assert_eq!(contents(&follower), contents(&leader));
    let requests = link.faults.lock().unwrap().requests;
    assert!(requests > 22, "faults were injected ({requests} requests)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_divergent_tail_is_truncated_to_the_new_leaders_epoch_end() {
    let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let leader = replica(dirs.0.path(), LEADER);
    let old = replica(dirs.1.path(), FOLLOWER);
    let now = crate::clock::now_ms();
    // Epoch 1: broker 2 led and both hold three batches; then broker 2 alone took two
    // more that were never replicated.
    let epoch1 = LeaderAndIsr {
        leader: FOLLOWER,
        ..state(FOLLOWER, 1)
    };
    leader.apply(&epoch1, now).unwrap();
    old.apply(&epoch1, now).unwrap();
    for i in 0..3 {
        old.append_as_leader(&batch(&format!("a{i}")), 1, now)
            .unwrap();
    }
    // Broker 1 copies the first three as a follower would.
    leader
        .append_as_follower(&contents(&old), 3, 0, now)
        .unwrap();
    for i in 0..2 {
        old.append_as_leader(&batch(&format!("lost{i}")), 1, now)
            .unwrap();
    }
    assert_eq!(old.log_end_offset(), 5);
    // Epoch 2: broker 1 leads and writes its own tail.
    leader.apply(&state(LEADER, 2), now).unwrap();
    old.apply(&state(LEADER, 2), now).unwrap();
    for i in 0..4 {
        leader
            .append_as_leader(&batch(&format!("b{i}")), 1, now)
            .unwrap();
    }
    let link = link_to(&leader, Faults::default());
    let (l, f) = (leader.clone(), old.clone());
    replicate_until(link, old.clone(), 2, move || {
        f.log_end_offset() == l.log_end_offset() && contents(&f) == contents(&l)
    })
    .await;
    assert_eq!(old.log_end_offset(), 7);
    assert_eq!(contents(&old), contents(&leader));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_follower_sits_out_while_over_quota_and_resumes_when_it_lifts() {
    let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let leader = replica(dirs.0.path(), LEADER);
    let follower = replica(dirs.1.path(), FOLLOWER);
    let now = crate::clock::now_ms();
    leader.apply(&state(LEADER, 1), now).unwrap();
    follower.apply(&state(LEADER, 1), now).unwrap();
    for i in 0..50 {
        leader
            .append_as_leader(&batch(&format!("v{i}")), 1, now)
            .unwrap();
    }
    // The follower's replica is throttled and its quota already spent.
    follower.set_replication_throttles(false, true);
    let quotas = Arc::new(ReplicationQuotas::default());
    quotas.follower.set_bound(Some(1));
    quotas.follower.record(1 << 20, now);
    let link = link_to(&leader, Faults::default());
    let fetcher = spawn_fetcher(link.clone(), follower.clone(), 1, quotas.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(follower.log_end_offset(), 0, "nothing fetched over quota");
    assert_eq!(link.faults.lock().unwrap().requests, 0, "not even asked");
    // An unthrottled replica of the same broker is not held back by the quota.
    follower.set_replication_throttles(false, false);
    let f = follower.clone();
    stop_when(fetcher, move || f.log_end_offset() == 50).await;
    assert_eq!(contents(&follower), contents(&leader));
}
