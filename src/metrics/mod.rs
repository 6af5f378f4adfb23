//! Prometheus metrics (`metrics.listener`). Names map one to one to Apache Kafka's JMX
//! metrics as the Prometheus JMX exporter's usual Kafka rules print them
//! (`kafka.server:type=BrokerTopicMetrics,name=BytesInPerSec,topic=T` becomes
//! `kafka_server_brokertopicmetrics_bytesin_total{topic="T"}`), so existing dashboards
//! translate; the mini-zookeeper exports ZooKeeper's `mntr` keys under the names of
//! ZooKeeper's own Prometheus provider (`znode_count`, `watch_count`, ...).
//!
//! Cost on the produce/fetch path: a relaxed load of [`enabled`] and, when on, a few
//! relaxed atomic adds (per-topic counters held by the partition, per-API histograms
//! in a static table). Everything else (ISR counts, log sizes and end offsets, leader
//! count, consumer lag, ZooKeeper state) is computed at scrape time from state the broker
//! already keeps (`broker::collect`).

pub mod broker;
pub mod histogram;
pub mod http;
pub mod requests;
pub mod text;
pub mod zookeeper;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether anything records: true once a metrics or console listener is configured.
/// With metrics off the hot path does one relaxed load per request and nothing else.
#[inline]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// Kafka's `BrokerTopicMetrics` of one topic (the all-topics values are their sums).
#[derive(Debug, Default)]
pub struct TopicStats {
    pub messages_in: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub replication_bytes_in: AtomicU64,
    pub replication_bytes_out: AtomicU64,
    pub produce_requests: AtomicU64,
    pub fetch_requests: AtomicU64,
    pub failed_produce_requests: AtomicU64,
    pub failed_fetch_requests: AtomicU64,
}

impl TopicStats {
    /// A leader append of `bytes` holding `messages` records.
    #[inline]
    pub fn appended(&self, bytes: usize, messages: i64) {
        if enabled() {
            self.messages_in
                .fetch_add(messages.max(0) as u64, Ordering::Relaxed);
            self.bytes_in.fetch_add(bytes as u64, Ordering::Relaxed);
            self.produce_requests.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A follower append of `bytes` fetched from the leader.
    #[inline]
    pub fn replicated_in(&self, bytes: usize) {
        if enabled() && bytes > 0 {
            self.replication_bytes_in
                .fetch_add(bytes as u64, Ordering::Relaxed);
        }
    }
}

static TOPICS: RwLock<Option<HashMap<String, Arc<TopicStats>>>> = RwLock::new(None);

/// The counters of `topic`, created on first use. Partitions keep the `Arc`, so the
/// produce path never looks it up.
pub fn topic(topic: &str) -> Arc<TopicStats> {
    if let Some(s) = TOPICS
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .and_then(|m| m.get(topic))
    {
        return s.clone();
    }
    let mut map = TOPICS.write().unwrap_or_else(|e| e.into_inner());
    map.get_or_insert_with(HashMap::new)
        .entry(topic.to_string())
        .or_default()
        .clone()
}

/// Every topic's counters, forgetting topics `keep` rejects (deleted ones: Kafka removes
/// a deleted topic's metrics too).
pub fn topics_retain(keep: impl Fn(&str) -> bool) -> Vec<(String, Arc<TopicStats>)> {
    let mut map = TOPICS.write().unwrap_or_else(|e| e.into_inner());
    let map = map.get_or_insert_with(HashMap::new);
    map.retain(|t, _| keep(t));
    let mut out: Vec<_> = map.iter().map(|(t, s)| (t.clone(), s.clone())).collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// A partition's part of a Fetch response: consumer fetches count as BytesOut,
/// follower fetches as ReplicationBytesOut (Kafka's `updateBytesOut`); an error as a
/// failed fetch.
#[inline]
pub fn fetched(
    partition: Option<&crate::replica::Partition>,
    data: &kafka_protocol::messages::fetch_response::PartitionData,
    from_follower: bool,
) {
    if !enabled() {
        return;
    }
    let Some(p) = partition else { return };
    let s = &p.stats;
    if data.error_code != 0 {
        s.failed_fetch_requests.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let bytes = data.records.as_ref().map_or(0, |r| r.len()) as u64;
    if from_follower {
        s.replication_bytes_out.fetch_add(bytes, Ordering::Relaxed);
    } else {
        s.bytes_out.fetch_add(bytes, Ordering::Relaxed);
        s.fetch_requests.fetch_add(1, Ordering::Relaxed);
    }
}

/// `ReplicaManager` IsrShrinksPerSec / IsrExpandsPerSec.
pub static ISR_SHRINKS: AtomicU64 = AtomicU64::new(0);
pub static ISR_EXPANDS: AtomicU64 = AtomicU64::new(0);

/// An ISR change this broker committed to ZooKeeper, as a shrink or an expansion.
pub fn isr_changed(old: usize, new: usize) {
    if new < old {
        ISR_SHRINKS.fetch_add(1, Ordering::Relaxed);
    } else if new > old {
        ISR_EXPANDS.fetch_add(1, Ordering::Relaxed);
    }
}

/// Open connections per listener and connections created (SocketServer metrics).
#[derive(Debug, Default)]
pub struct ListenerStats {
    pub open: AtomicI64,
    pub created: AtomicU64,
    pub closed: AtomicU64,
}

static LISTENERS: RwLock<Option<HashMap<String, Arc<ListenerStats>>>> = RwLock::new(None);

pub fn listener(name: &str) -> Arc<ListenerStats> {
    let mut map = LISTENERS.write().unwrap_or_else(|e| e.into_inner());
    map.get_or_insert_with(HashMap::new)
        .entry(name.to_string())
        .or_default()
        .clone()
}

pub fn listeners() -> Vec<(String, Arc<ListenerStats>)> {
    let map = LISTENERS.read().unwrap_or_else(|e| e.into_inner());
    let mut out: Vec<_> = map
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Counts one connection on a listener for as long as it lives.
pub struct ConnectionGuard(Arc<ListenerStats>);

impl ConnectionGuard {
    pub fn open(listener_name: &str) -> ConnectionGuard {
        let s = listener(listener_name);
        s.open.fetch_add(1, Ordering::Relaxed);
        s.created.fetch_add(1, Ordering::Relaxed);
        ConnectionGuard(s)
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
        self.0.closed.fetch_add(1, Ordering::Relaxed);
    }
}

/// The broker's ZooKeeper client latency (Kafka's ZooKeeperRequestLatencyMs), sampled
/// by the metrics task's periodic probe and by every ISR write.
pub static ZK_LATENCY: histogram::Histogram = histogram::Histogram::new();
