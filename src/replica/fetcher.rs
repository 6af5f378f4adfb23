//! Follower replication: one fetcher task per leader broker pulls every partition this
//! broker follows from that leader, with Kafka's Fetch protocol (replica id set, v12 so
//! the leader reports diverging epochs, KIP-595). A diverging epoch means our tail is not
//! the leader's: truncate to the leader's end offset for that epoch and fetch again, so
//! a divergent tail never survives. Fetches use an incremental fetch session (KIP-227,
//! `fetch_session::handler`): after the first full request only partitions whose position
//! changed are sent, and the leader answers only partitions with news. Throttled
//! partitions that have not caught up sit out fetches while the follower replication
//! quota is exceeded (KIP-73, `replica::throttle`).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    BrokerId, FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::{watch, Notify};

use super::partition::Partition;
use super::throttle::ReplicationQuotas;
use crate::client::KafkaConnection;
use crate::clock::now_ms;
use crate::config::BrokerConfig;
use crate::coordination::ClusterImage;
use crate::fetch_session::handler::FetchSessionHandler;
use crate::fetch_session::PartitionParams;
use crate::protocol::errors::Error;
use crate::storage::io_pool::IoPool;
use crate::storage::TopicPartition;
use crate::sync::lock;
use crate::tasks::Tasks;

/// Fetch version followers use: v12 carries `last_fetched_epoch` / diverging epochs and
/// still names topics (v13+ uses topic ids).
const FOLLOWER_FETCH_VERSION: i16 = 12;
const LIST_OFFSETS_VERSION: i16 = 4;

#[derive(Clone)]
struct Followed {
    partition: Arc<Partition>,
    leader_epoch: i32,
    /// Back off this partition until then (leader not ready for our epoch, errors).
    delayed_until_ms: i64,
    /// Our log reached the leader's high watermark at the last answer (Kafka's
    /// `PartitionFetchState.isReplicaInSync`): a caught-up replica is never throttled.
    caught_up: bool,
}

impl Followed {
    /// Left out of fetches while the follower quota is exceeded (KIP-73).
    fn throttled(&self) -> bool {
        self.partition.is_follower_throttled() && !self.caught_up
    }
}

struct FetcherShared {
    partitions: Mutex<BTreeMap<TopicPartition, Followed>>,
    wake: Notify,
    /// Follower appends are storage work: they run on the broker's I/O pool.
    io: Arc<IoPool>,
    /// The follower-side replication quota (KIP-73, `replica::throttle`).
    quotas: Arc<ReplicationQuotas>,
}

pub struct FetcherManager {
    config: Arc<BrokerConfig>,
    image: watch::Receiver<Arc<ClusterImage>>,
    fetchers: Mutex<HashMap<i32, Arc<FetcherShared>>>,
    shutdown: watch::Sender<bool>,
    io: Arc<IoPool>,
    quotas: Arc<ReplicationQuotas>,
    tasks: Tasks,
}

impl FetcherManager {
    pub fn new(
        config: Arc<BrokerConfig>,
        image: watch::Receiver<Arc<ClusterImage>>,
        io: Arc<IoPool>,
        quotas: Arc<ReplicationQuotas>,
        tasks: Tasks,
    ) -> Self {
        FetcherManager {
            config,
            image,
            io,
            quotas,
            tasks,
            fetchers: Mutex::new(HashMap::new()),
            shutdown: watch::channel(false).0,
        }
    }

    fn lock_fetchers(&self) -> std::sync::MutexGuard<'_, HashMap<i32, Arc<FetcherShared>>> {
        crate::sync::lock(&self.fetchers)
    }

    pub fn add(&self, partition: Arc<Partition>, leader: i32, leader_epoch: i32) {
        let shared = self
            .lock_fetchers()
            .entry(leader)
            .or_insert_with(|| {
                let shared = Arc::new(FetcherShared {
                    partitions: Mutex::new(BTreeMap::new()),
                    wake: Notify::new(),
                    io: self.io.clone(),
                    quotas: self.quotas.clone(),
                });
                let dialer = NetworkDialer {
                    config: self.config.clone(),
                    image: self.image.clone(),
                };
                self.tasks.spawn(fetch_loop(
                    self.config.clone(),
                    dialer,
                    leader,
                    shared.clone(),
                    self.shutdown.subscribe(),
                ));
                shared
            })
            .clone();
        let tp = partition.tp.clone();
        lock(&shared.partitions).insert(
            tp,
            Followed {
                partition,
                leader_epoch,
                delayed_until_ms: 0,
                caught_up: false,
            },
        );
        shared.wake.notify_one();
    }

    pub fn remove(&self, tp: &TopicPartition) {
        for shared in self.lock_fetchers().values() {
            lock(&shared.partitions).remove(tp);
        }
    }

    pub fn shutdown(&self) {
        self.shutdown.send_replace(true);
    }
}

/// The fetcher's line to its leader: a Kafka connection in a broker
/// ([`NetworkDialer`]), an in-process leader in tests, so the fetcher's logic (sessions,
/// appends, truncation, resets) is tested without sockets.
pub trait LeaderLink: Send {
    fn fetch(
        &mut self,
        request: &FetchRequest,
        timeout: Duration,
    ) -> impl Future<Output = Result<FetchResponse, String>> + Send;

    fn list_offsets(
        &mut self,
        request: &ListOffsetsRequest,
        timeout: Duration,
    ) -> impl Future<Output = Result<ListOffsetsResponse, String>> + Send;
}

/// Opens a [`LeaderLink`] to a leader broker.
pub trait LeaderDialer: Send + Sync + 'static {
    type Link: LeaderLink;

    fn dial(&self, leader: i32) -> impl Future<Output = Result<Self::Link, String>> + Send;
}

impl LeaderLink for KafkaConnection {
    async fn fetch(
        &mut self,
        request: &FetchRequest,
        timeout: Duration,
    ) -> Result<FetchResponse, String> {
        self.send(request, FOLLOWER_FETCH_VERSION, timeout)
            .await
            .map_err(|e| e.to_string())
    }

    async fn list_offsets(
        &mut self,
        request: &ListOffsetsRequest,
        timeout: Duration,
    ) -> Result<ListOffsetsResponse, String> {
        self.send(request, LIST_OFFSETS_VERSION, timeout)
            .await
            .map_err(|e| e.to_string())
    }
}

/// Dials the leader's inter-broker listener, as the image advertises it.
struct NetworkDialer {
    config: Arc<BrokerConfig>,
    image: watch::Receiver<Arc<ClusterImage>>,
}

impl LeaderDialer for NetworkDialer {
    type Link = KafkaConnection;

    async fn dial(&self, leader: i32) -> Result<KafkaConnection, String> {
        let addr = self
            .image
            .borrow()
            .brokers
            .get(&leader)
            .and_then(|b| b.endpoint(&self.config.inter_broker_listener))
            .map(|(host, port)| format!("{host}:{port}"))
            .ok_or_else(|| format!("broker {leader} has no inter-broker endpoint"))?;
        let security = crate::client::ClientSecurity::inter_broker(&self.config)
            .map_err(|e| format!("inter-broker client security is misconfigured: {e}"))?;
        KafkaConnection::connect_with(
            &addr,
            &format!("broker-{}-fetcher", self.config.broker_id),
            Duration::from_secs(5),
            &security,
        )
        .await
        .map_err(|e| e.to_string())
    }
}

async fn fetch_loop<D: LeaderDialer>(
    config: Arc<BrokerConfig>,
    dialer: D,
    leader: i32,
    shared: Arc<FetcherShared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let backoff = Duration::from_millis(config.replica_fetch_backoff_ms.max(10));
    let mut conn: Option<D::Link> = None;
    // KIP-227: after the first full fetch only changed partitions are sent and answered.
    let mut session = FetchSessionHandler::new();
    loop {
        if *shutdown.borrow() {
            return;
        }
        let now = now_ms();
        let over_quota = shared.quotas.follower.is_exceeded(now);
        let due: Vec<Followed> = lock(&shared.partitions)
            .values()
            .filter(|f| f.delayed_until_ms <= now && !(over_quota && f.throttled()))
            .cloned()
            .collect();
        if due.is_empty() {
            tokio::select! {
                _ = shared.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = shutdown.changed() => {}
            }
            continue;
        }
        if conn.is_none() {
            match dialer.dial(leader).await {
                Ok(c) => conn = Some(c),
                Err(err) => {
                    tracing::debug!(leader, error = %err, "cannot reach leader");
                    tokio::time::sleep(backoff).await;
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let request = build_request(&config, &due, &mut session);
        let timeout = Duration::from_millis(
            config.replica_fetch_wait_max_ms as u64 + config.request_timeout_ms,
        );
        let response = tokio::select! {
            r = c.fetch(&request, timeout) => r,
            _ = shutdown.changed() => return,
        };
        let response = match response {
            Ok(r) => r,
            Err(err) => {
                tracing::debug!(leader, error = %err, "follower fetch failed");
                session.on_failure();
                conn = None;
                tokio::time::sleep(backoff).await;
                continue;
            }
        };
        session.on_response(response.error_code, response.session_id);
        if is_session_error(response.error_code) {
            // The next request is a full one: no need to wait.
            tracing::debug!(leader, error = response.error_code, "fetch session reset");
            continue;
        }
        if response.error_code != 0 {
            tracing::warn!(
                leader,
                error = response.error_code,
                "follower fetch rejected"
            );
            tokio::time::sleep(backoff).await;
            continue;
        }
        let mut fetched = Vec::new();
        // Throttled partitions' leader HWs: whether each has caught up (KIP-73).
        let mut throttled_hws = Vec::new();
        let mut throttled_bytes = 0u64;
        for topic in response.responses {
            for pd in topic.partitions {
                let tp = TopicPartition {
                    topic: topic.topic.0.to_string(),
                    partition: pd.partition_index,
                };
                if let Some(followed) = lock(&shared.partitions).get(&tp).cloned() {
                    if followed.partition.is_follower_throttled() {
                        throttled_bytes += pd.records.as_ref().map_or(0, |r| r.len() as u64);
                        throttled_hws.push((followed.partition.clone(), pd.high_watermark));
                    }
                    fetched.push((followed, pd));
                }
            }
        }
        shared.quotas.follower.record(throttled_bytes, now_ms());
        // One hand-off per response: every partition's append in one I/O-pool job.
        let outcomes = shared
            .io
            .run(move || {
                fetched
                    .into_iter()
                    .map(|(followed, pd)| {
                        let outcome = handle_partition(&followed, pd, backoff);
                        (followed, outcome)
                    })
                    .collect::<Vec<_>>()
            })
            .await;
        // Unthrottled partitions skip this: their log is not locked again here.
        let caught_up: Vec<(TopicPartition, bool)> = throttled_hws
            .into_iter()
            .map(|(p, leader_hw)| (p.tp.clone(), p.log_end_offset() >= leader_hw))
            .collect();
        if !caught_up.is_empty() {
            let mut followed = lock(&shared.partitions);
            for (tp, up) in caught_up {
                if let Some(f) = followed.get_mut(&tp) {
                    f.caught_up = up;
                }
            }
        }
        let mut out_of_range = Vec::new();
        for (followed, outcome) in outcomes {
            match outcome {
                Outcome::Ok => {}
                Outcome::Delay(ms) => {
                    if let Some(f) = lock(&shared.partitions).get_mut(&followed.partition.tp) {
                        f.delayed_until_ms = now_ms() + ms;
                    }
                }
                Outcome::OutOfRange => out_of_range.push(followed),
            }
        }
        for followed in out_of_range {
            if let Err(err) = reset_to_leader_start(c, &config, &followed).await {
                tracing::warn!(partition = %followed.partition.tp, error = %err, "cannot reset out-of-range follower");
                conn = None;
                tokio::time::sleep(backoff).await;
                break;
            }
        }
    }
}

enum Outcome {
    Ok,
    Delay(i64),
    OutOfRange,
}

fn is_session_error(code: i16) -> bool {
    [
        Error::FetchSessionIdNotFound,
        Error::InvalidFetchSessionEpoch,
        Error::FetchSessionTopicIdError,
    ]
    .iter()
    .any(|e| e.code() == code)
}

fn build_request(
    config: &BrokerConfig,
    due: &[Followed],
    session: &mut FetchSessionHandler,
) -> FetchRequest {
    let wanted: BTreeMap<TopicPartition, PartitionParams> = due
        .iter()
        .map(|f| {
            let (fetch_offset, last_epoch, log_start) = f.partition.follower_fetch_position();
            let params = PartitionParams {
                fetch_offset,
                current_leader_epoch: f.leader_epoch,
                last_fetched_epoch: last_epoch,
                log_start_offset: log_start,
                max_bytes: config.replica_fetch_max_bytes,
            };
            (f.partition.tp.clone(), params)
        })
        .collect();
    let next = session.build(wanted);
    let mut topics: BTreeMap<String, Vec<FetchPartition>> = BTreeMap::new();
    for (tp, p) in next.partitions {
        topics.entry(tp.topic).or_default().push(
            FetchPartition::default()
                .with_partition(tp.partition)
                .with_current_leader_epoch(p.current_leader_epoch)
                .with_fetch_offset(p.fetch_offset)
                .with_last_fetched_epoch(p.last_fetched_epoch)
                .with_log_start_offset(p.log_start_offset)
                .with_partition_max_bytes(p.max_bytes),
        );
    }
    let mut forgotten: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for tp in next.forgotten {
        forgotten.entry(tp.topic).or_default().push(tp.partition);
    }
    FetchRequest::default()
        .with_replica_id(BrokerId(config.broker_id))
        .with_max_wait_ms(config.replica_fetch_wait_max_ms)
        .with_min_bytes(config.replica_fetch_min_bytes)
        .with_max_bytes(config.replica_fetch_response_max_bytes)
        .with_isolation_level(0)
        .with_session_id(next.session_id)
        .with_session_epoch(next.epoch)
        .with_topics(
            topics
                .into_iter()
                .map(|(t, partitions)| {
                    FetchTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(t)))
                        .with_partitions(partitions)
                })
                .collect(),
        )
        .with_forgotten_topics_data(
            forgotten
                .into_iter()
                .map(|(t, partitions)| {
                    ForgottenTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(t)))
                        .with_partitions(partitions)
                })
                .collect(),
        )
}

fn handle_partition(
    f: &Followed,
    pd: kafka_protocol::messages::fetch_response::PartitionData,
    backoff: Duration,
) -> Outcome {
    let p = &f.partition;
    let now = now_ms();
    let backoff_ms = backoff.as_millis() as i64;
    match Error::try_from_code(pd.error_code) {
        None => {}
        Some(Error::OffsetOutOfRange) => return Outcome::OutOfRange,
        Some(Error::UnknownLeaderEpoch) => return Outcome::Delay(50),
        Some(err) => {
            tracing::debug!(partition = %p.tp, error = ?err, "follower fetch partition error");
            return Outcome::Delay(backoff_ms);
        }
    }
    if pd.diverging_epoch.epoch >= 0 {
        let diverging = &pd.diverging_epoch;
        if let Err(err) = p.truncate_to_diverging_epoch(diverging.epoch, diverging.end_offset) {
            tracing::error!(partition = %p.tp, error = %err, "truncation failed");
            return Outcome::Delay(backoff_ms);
        }
        return Outcome::Ok;
    }
    let records = pd.records.unwrap_or_default();
    let whole = whole_batches(&records);
    if let Err(err) = p.append_as_follower(
        &records[..whole],
        pd.high_watermark,
        pd.log_start_offset,
        now,
    ) {
        tracing::warn!(partition = %p.tp, error = %err, "follower append failed");
        return Outcome::Delay(backoff_ms);
    }
    Outcome::Ok
}

/// Length of the prefix of `buf` made of whole record batches (a fetch response may end
/// with a partial batch).
fn whole_batches(buf: &[u8]) -> usize {
    let mut pos = 0;
    while buf.len() - pos >= 12 {
        let len = i32::from_be_bytes([buf[pos + 8], buf[pos + 9], buf[pos + 10], buf[pos + 11]]);
        if len < 0 {
            break;
        }
        let size = 12 + len as usize;
        if pos + size > buf.len() {
            break;
        }
        pos += size;
    }
    pos
}

/// Our fetch offset is out of the leader's range: if the leader's log starts after our
/// end, start over at its log start (Kafka's `handleOutOfRangeError`); otherwise
/// truncate to its end.
async fn reset_to_leader_start(
    conn: &mut impl LeaderLink,
    config: &BrokerConfig,
    f: &Followed,
) -> Result<(), String> {
    let ask = |timestamp: i64| {
        ListOffsetsRequest::default()
            .with_replica_id(BrokerId(config.broker_id))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(TopicName(StrBytes::from_string(
                    f.partition.tp.topic.clone(),
                )))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(f.partition.tp.partition)
                    .with_current_leader_epoch(f.leader_epoch)
                    .with_timestamp(timestamp)])])
    };
    let timeout = Duration::from_millis(config.request_timeout_ms);
    let offset_of = |r: kafka_protocol::messages::ListOffsetsResponse| -> Result<i64, String> {
        let p = r
            .topics
            .first()
            .and_then(|t| t.partitions.first())
            .ok_or("empty ListOffsets response")?;
        if p.error_code != 0 {
            return Err(format!("ListOffsets error {}", p.error_code));
        }
        Ok(p.offset)
    };
    let start = offset_of(conn.list_offsets(&ask(-2), timeout).await?)?;
    let end = offset_of(conn.list_offsets(&ask(-1), timeout).await?)?;
    let (leo, _, _) = f.partition.follower_fetch_position();
    if leo > end {
        f.partition.truncate_to(end).map_err(|e| e.to_string())
    } else {
        tracing::info!(partition = %f.partition.tp, leader_start = start, "follower behind the leader's log start; restarting there");
        f.partition
            .truncate_fully_and_start_at(start)
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
#[path = "fetcher_tests.rs"]
mod tests;
