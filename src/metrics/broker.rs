//! A broker's scrape: the hot-path counters (`super`) plus gauges computed now from the
//! replica manager, the metadata image, the group coordinator and the ZooKeeper session.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::time::Duration;

use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{ApiKey, BrokerId, ListOffsetsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::requests::{api_stats, slot_code};
use super::text::{labels, Family, Scrape, Value};
use crate::broker::Broker;
use crate::replica::Role;

/// The whole text of one scrape of `broker`.
pub async fn collect(broker: &Broker) -> String {
    let mut scrape = Scrape::default();
    let image = broker.image();
    topic_metrics(&mut scrape, &image);
    request_metrics(&mut scrape);
    replica_metrics(&mut scrape, broker);
    controller_metrics(&mut scrape, broker);
    lag_metrics(&mut scrape, broker).await;
    socket_metrics(&mut scrape);
    zookeeper_metrics(&mut scrape, broker);
    fetch_session_metrics(&mut scrape, broker);
    replication_quota_metrics(&mut scrape, broker);
    scrape.encode()
}

/// Kafka's `kafka.server:type=LeaderReplication|FollowerReplication,name=byte-rate`: the
/// throttled replication traffic's measured rate, beside the bound in force (KIP-73).
fn replication_quota_metrics(scrape: &mut Scrape, broker: &Broker) {
    let now = crate::clock::now_ms();
    let quotas = &broker.replicas.quotas;
    let sides = [
        (
            &quotas.leader,
            "kafka_server_leaderreplication_byte_rate",
            "Throttled replication bytes/s sent as leader, over the quota window (LeaderReplication byte-rate)",
            "gregor_leader_replication_throttled_rate",
            "The leader.replication.throttled.rate in force (bytes/s; -1: unlimited)",
        ),
        (
            &quotas.follower,
            "kafka_server_followerreplication_byte_rate",
            "Throttled replication bytes/s fetched as follower, over the quota window (FollowerReplication byte-rate)",
            "gregor_follower_replication_throttled_rate",
            "The follower.replication.throttled.rate in force (bytes/s; -1: unlimited)",
        ),
    ];
    for (quota, rate_name, rate_help, bound_name, bound_help) in sides {
        scrape.push(
            Family::gauge(rate_name, rate_help).with(Vec::new(), Value::Gauge(quota.rate(now))),
        );
        let bound = quota.bound().map_or(-1.0, |b| b as f64);
        scrape.push(Family::gauge(bound_name, bound_help).with(Vec::new(), Value::Gauge(bound)));
    }
}

/// Kafka's `kafka.server:type=FetchSessionCache` metrics.
fn fetch_session_metrics(scrape: &mut Scrape, broker: &Broker) {
    let (sessions, partitions, evictions, created) = {
        let cache = crate::sync::lock(&broker.fetch_sessions);
        (
            cache.len(),
            cache.cached_partitions(),
            cache.evictions(),
            cache.created(),
        )
    };
    scrape.push(
        Family::gauge(
            "kafka_server_fetchsessioncache_numincrementalfetchsessions",
            "Incremental fetch sessions cached (NumIncrementalFetchSessions)",
        )
        .with(Vec::new(), Value::Gauge(sessions as f64)),
    );
    scrape.push(
        Family::gauge(
            "kafka_server_fetchsessioncache_numincrementalfetchpartitionscached",
            "Partitions cached over all fetch sessions (NumIncrementalFetchPartitionsCached)",
        )
        .with(Vec::new(), Value::Gauge(partitions as f64)),
    );
    scrape.push(
        Family::counter(
            "kafka_server_fetchsessioncache_incrementalfetchsessionevictions",
            "Fetch sessions evicted to make room (IncrementalFetchSessionEvictionsPerSec)",
        )
        .with(Vec::new(), Value::Counter(evictions)),
    );
    scrape.push(
        Family::counter(
            "gregor_fetch_session_creations",
            "Incremental fetch sessions created (not a Kafka metric: a fetcher keeping its session creates one)",
        )
        .with(Vec::new(), Value::Counter(created)),
    );
}

fn topic_metrics(scrape: &mut Scrape, image: &crate::coordination::ClusterImage) {
    let topics = super::topics_retain(|t| image.topics.contains_key(t));
    type Field = fn(&super::TopicStats) -> u64;
    let fields: [(&'static str, &'static str, Field); 9] = [
        (
            "kafka_server_brokertopicmetrics_messagesin",
            "Messages appended as leader (MessagesInPerSec)",
            |s| s.messages_in.load(Ordering::Relaxed),
        ),
        (
            "kafka_server_brokertopicmetrics_bytesin",
            "Bytes appended from producers (BytesInPerSec)",
            |s| s.bytes_in.load(Ordering::Relaxed),
        ),
        (
            "kafka_server_brokertopicmetrics_bytesout",
            "Bytes sent to consumers (BytesOutPerSec)",
            |s| s.bytes_out.load(Ordering::Relaxed),
        ),
        (
            "kafka_server_brokertopicmetrics_replicationbytesin",
            "Bytes appended from leaders (ReplicationBytesInPerSec)",
            |s| s.replication_bytes_in.load(Ordering::Relaxed),
        ),
        (
            "kafka_server_brokertopicmetrics_replicationbytesout",
            "Bytes sent to followers (ReplicationBytesOutPerSec)",
            |s| s.replication_bytes_out.load(Ordering::Relaxed),
        ),
        (
            "kafka_server_brokertopicmetrics_totalproducerequests",
            "Partition appends of produce requests (TotalProduceRequestsPerSec)",
            |s| s.produce_requests.load(Ordering::Relaxed),
        ),
        (
            "kafka_server_brokertopicmetrics_totalfetchrequests",
            "Consumer partition fetches answered (TotalFetchRequestsPerSec)",
            |s| s.fetch_requests.load(Ordering::Relaxed),
        ),
        (
            "kafka_server_brokertopicmetrics_failedproducerequests",
            "Failed produce partition appends (FailedProduceRequestsPerSec)",
            |s| s.failed_produce_requests.load(Ordering::Relaxed),
        ),
        (
            "kafka_server_brokertopicmetrics_failedfetchrequests",
            "Failed fetches (FailedFetchRequestsPerSec)",
            |s| s.failed_fetch_requests.load(Ordering::Relaxed),
        ),
    ];
    for (name, help, get) in fields {
        let mut f = Family::counter(name, help);
        let mut all = 0;
        for (topic, stats) in &topics {
            let v = get(stats);
            all += v;
            f.add(labels([("topic", topic)]), Value::Counter(v));
        }
        // The all-topics rate, as Kafka's metric without a topic tag.
        f.add(Vec::new(), Value::Counter(all));
        scrape.push(f);
    }
}

/// `NotLeaderOrFollower` -> `NOT_LEADER_OR_FOLLOWER` (Kafka's `Errors` names).
fn error_name(code: i16) -> String {
    if code == 0 {
        return "NONE".into();
    }
    let Some(e) = kafka_protocol::ResponseError::try_from_code(code) else {
        return format!("UNKNOWN_{code}");
    };
    let debug = format!("{e:?}");
    let mut out = String::new();
    for (i, c) in debug.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

fn request_metrics(scrape: &mut Scrape) {
    let mut requests = Family::counter(
        "kafka_network_requestmetrics_requests",
        "Requests handled, by API and version (RequestsPerSec)",
    );
    let mut errors = Family::counter(
        "kafka_network_requestmetrics_errors",
        "Response error codes, by API and error (ErrorsPerSec)",
    );
    let mut times: Vec<Family> = [
        (
            "kafka_network_requestmetrics_totaltimems",
            "Request total time in ms (TotalTimeMs)",
        ),
        (
            "kafka_network_requestmetrics_requestqueuetimems",
            "Time from a frame read to its handler starting, ms (RequestQueueTimeMs)",
        ),
        (
            "kafka_network_requestmetrics_localtimems",
            "Time the handler worked locally, ms (LocalTimeMs)",
        ),
        (
            "kafka_network_requestmetrics_remotetimems",
            "Time waiting on other brokers or a long poll, ms (RemoteTimeMs)",
        ),
        (
            "kafka_network_requestmetrics_responsesendtimems",
            "Time writing the response, ms (ResponseSendTimeMs)",
        ),
    ]
    .into_iter()
    .map(|(n, h)| Family::histogram(n, h))
    .collect();
    for &(key, _) in crate::api::SERVED_APIS {
        let Some(s) = api_stats(key as i16) else {
            continue;
        };
        let name = api_name(key);
        for (v, c) in s.by_version.iter().enumerate() {
            let c = c.load(Ordering::Relaxed);
            if c > 0 {
                requests.add(
                    labels([("request", &name), ("version", &v.to_string())]),
                    Value::Counter(c),
                );
            }
        }
        for (slot, c) in s.errors.iter().enumerate() {
            let c = c.load(Ordering::Relaxed);
            if c > 0 {
                let error = slot_code(slot).map_or("UNKNOWN".to_string(), error_name);
                errors.add(
                    labels([("request", &name), ("error", &error)]),
                    Value::Counter(c),
                );
            }
        }
        if s.total.count() == 0 {
            continue;
        }
        for (family, h) in times
            .iter_mut()
            .zip([&s.total, &s.queue, &s.local, &s.remote, &s.send])
        {
            let (sum, count, buckets) = h.snapshot();
            family.add(
                labels([("request", &name)]),
                Value::Histogram(sum, count, buckets),
            );
        }
    }
    scrape.push(requests);
    scrape.push(errors);
    for f in times {
        scrape.push(f);
    }
}

/// Kafka's request names: `ApiKey::Produce` -> "Produce".
pub fn api_name(key: ApiKey) -> String {
    format!("{key:?}").trim_end_matches("Key").to_string()
}

fn replica_metrics(scrape: &mut Scrape, broker: &Broker) {
    let partitions = broker.replicas.all_partitions();
    let (mut leaders, mut under_replicated, mut under_min_isr, mut at_min_isr) = (0, 0, 0, 0);
    let mut per_partition_urp = Family::gauge(
        "kafka_cluster_partition_underreplicated",
        "1 if this leader's partition has fewer in-sync replicas than replicas",
    );
    let mut per_partition_umi = Family::gauge(
        "kafka_cluster_partition_underminisr",
        "1 if this leader's partition has fewer in-sync replicas than min.insync.replicas",
    );
    let mut size = Family::gauge(
        "kafka_log_log_size",
        "Bytes of the partition's log on this broker (Log Size)",
    );
    let mut end = Family::gauge(
        "kafka_log_log_logendoffset",
        "The log end offset on this broker (LogEndOffset)",
    );
    let mut start = Family::gauge(
        "kafka_log_log_logstartoffset",
        "The log start offset on this broker (LogStartOffset)",
    );
    let mut segments = Family::gauge(
        "kafka_log_log_numlogsegments",
        "Segments of the log (NumLogSegments)",
    );
    for p in &partitions {
        let (bytes, leo, lso, segs) = {
            let log = crate::sync::lock(p.log());
            (
                log.size_bytes(),
                log.log_end_offset(),
                log.log_start_offset(),
                log.segment_count(),
            )
        };
        let tp = [
            ("topic", p.tp.topic.as_str()),
            ("partition", &p.tp.partition.to_string()),
        ];
        size.add(labels(tp), Value::Gauge(bytes as f64));
        end.add(labels(tp), Value::Gauge(leo as f64));
        start.add(labels(tp), Value::Gauge(lso as f64));
        segments.add(labels(tp), Value::Gauge(segs as f64));
        let st = p.state();
        if st.role != Role::Leader {
            continue;
        }
        leaders += 1;
        let urp = st.isr.len() < st.replicas.len();
        let umi = (st.isr.len() as i32) < st.min_insync_replicas;
        under_replicated += urp as u64;
        under_min_isr += umi as u64;
        at_min_isr += (st.isr.len() as i32 == st.min_insync_replicas) as u64;
        per_partition_urp.add(labels(tp), Value::Gauge(urp as u8 as f64));
        per_partition_umi.add(labels(tp), Value::Gauge(umi as u8 as f64));
    }
    let offline = broker
        .image()
        .topics
        .values()
        .flat_map(|t| t.partitions.keys().map(move |p| (t.name.as_str(), *p)))
        .filter(|(t, p)| broker.replicas.is_offline(t, *p))
        .count();
    let gauges: [(&'static str, &'static str, f64); 6] = [
        ("kafka_server_replicamanager_leadercount", "Partitions led by this broker (LeaderCount)", leaders as f64),
        ("kafka_server_replicamanager_partitioncount", "Partition replicas on this broker (PartitionCount)", partitions.len() as f64),
        ("kafka_server_replicamanager_underreplicatedpartitions", "Partitions led here whose ISR is smaller than the replica set (UnderReplicatedPartitions)", under_replicated as f64),
        ("kafka_server_replicamanager_underminisrpartitioncount", "Partitions led here whose ISR is below min.insync.replicas (UnderMinIsrPartitionCount)", under_min_isr as f64),
        ("kafka_server_replicamanager_atminisrpartitioncount", "Partitions led here whose ISR equals min.insync.replicas (AtMinIsrPartitionCount)", at_min_isr as f64),
        ("kafka_server_replicamanager_offlinereplicacount", "Replicas here in an offline log directory (OfflineReplicaCount)", offline as f64),
    ];
    for (name, help, v) in gauges {
        scrape.push(Family::gauge(name, help).with(Vec::new(), Value::Gauge(v)));
    }
    scrape.push(
        Family::counter(
            "kafka_server_replicamanager_isrshrinks",
            "ISR shrinks written by this broker (IsrShrinksPerSec)",
        )
        .with(
            Vec::new(),
            Value::Counter(super::ISR_SHRINKS.load(Ordering::Relaxed)),
        ),
    );
    scrape.push(
        Family::counter(
            "kafka_server_replicamanager_isrexpands",
            "ISR expansions written by this broker (IsrExpandsPerSec)",
        )
        .with(
            Vec::new(),
            Value::Counter(super::ISR_EXPANDS.load(Ordering::Relaxed)),
        ),
    );
    for f in [
        per_partition_urp,
        per_partition_umi,
        size,
        end,
        start,
        segments,
    ] {
        scrape.push(f);
    }
}

fn controller_metrics(scrape: &mut Scrape, broker: &Broker) {
    let image = broker.image();
    let active = image.controller_id == Some(broker.config.broker_id);
    // Kafka reports the cluster-wide counts on the active controller only (0 elsewhere).
    let (mut offline, mut total, mut imbalance, mut reassigning) = (0, 0, 0, 0);
    if active {
        for t in image.topics.values() {
            for info in t.partitions.values() {
                total += 1;
                if !info.adding.is_empty() || !info.removing.is_empty() {
                    reassigning += 1;
                }
                match &info.state {
                    Some(s) if s.leader >= 0 && image.is_alive(s.leader) => {
                        if info.replicas.first() != Some(&s.leader) {
                            imbalance += 1;
                        }
                    }
                    _ => offline += 1,
                }
            }
        }
    }
    let gauges: [(&'static str, &'static str, f64); 6] = [
        (
            "kafka_controller_kafkacontroller_activecontrollercount",
            "1 on the active controller (ActiveControllerCount)",
            active as u8 as f64,
        ),
        (
            "kafka_controller_kafkacontroller_offlinepartitionscount",
            "Partitions without a live leader (OfflinePartitionsCount)",
            offline as f64,
        ),
        (
            "kafka_controller_kafkacontroller_globalpartitioncount",
            "Partitions in the cluster (GlobalPartitionCount)",
            total as f64,
        ),
        (
            "kafka_controller_kafkacontroller_globaltopiccount",
            "Topics in the cluster (GlobalTopicCount)",
            if active {
                image.topics.len() as f64
            } else {
                0.0
            },
        ),
        (
            "kafka_controller_kafkacontroller_preferredreplicaimbalancecount",
            "Partitions not led by their preferred replica (PreferredReplicaImbalanceCount)",
            imbalance as f64,
        ),
        (
            "kafka_server_replicamanager_reassigningpartitions",
            "Partitions being reassigned (ReassigningPartitions)",
            reassigning as f64,
        ),
    ];
    for (name, help, v) in gauges {
        scrape.push(Family::gauge(name, help).with(Vec::new(), Value::Gauge(v)));
    }
}

/// Committed offsets of the groups this broker coordinates and the lag behind each
/// partition's high watermark (what `kafka-consumer-groups --describe` prints).
async fn lag_metrics(scrape: &mut Scrape, broker: &Broker) {
    let mut committed = Vec::new();
    let mut groups = 0usize;
    for shard in broker.groups.shards() {
        if let Ok((offsets, n)) = broker.groups.run(&shard, |gs, _| {
            ((gs.all_committed(), gs.list_groups(&[]).len()), Vec::new())
        }) {
            committed.extend(offsets);
            groups += n;
        }
    }
    let wanted: BTreeSet<(String, i32)> = committed
        .iter()
        .map(|(_, t, p, _)| (t.clone(), *p))
        .collect();
    let ends = end_offsets(broker, &wanted).await;
    let mut lag = Family::gauge(
        "kafka_consumergroup_lag",
        "High watermark minus the group's committed offset",
    );
    let mut current = Family::gauge(
        "kafka_consumergroup_current_offset",
        "The group's committed offset",
    );
    for (group, topic, partition, offset) in &committed {
        let l = labels([
            ("consumergroup", group),
            ("topic", topic),
            ("partition", &partition.to_string()),
        ]);
        current.add(l.clone(), Value::Gauge(*offset as f64));
        if let Some(end) = ends.get(&(topic.clone(), *partition)) {
            lag.add(l, Value::Gauge((end - offset).max(0) as f64));
        }
    }
    scrape.push(lag);
    scrape.push(current);
    scrape.push(
        Family::gauge(
            "kafka_coordinator_group_groupmetadatamanager_numgroups",
            "Groups coordinated by this broker (NumGroups)",
        )
        .with(Vec::new(), Value::Gauge(groups as f64)),
    );
    scrape.push(
        Family::gauge(
            "kafka_coordinator_group_groupmetadatamanager_numoffsets",
            "Committed offsets held by this broker (NumOffsets)",
        )
        .with(Vec::new(), Value::Gauge(committed.len() as f64)),
    );
}

/// High watermarks of `wanted`: local leaders directly, the others by ListOffsets to
/// their leaders (bounded in time; a partition whose leader does not answer is skipped).
async fn end_offsets(
    broker: &Broker,
    wanted: &BTreeSet<(String, i32)>,
) -> BTreeMap<(String, i32), i64> {
    let mut out = BTreeMap::new();
    let mut remote: BTreeMap<i32, Vec<(String, i32)>> = BTreeMap::new();
    let image = broker.image();
    for (t, p) in wanted {
        match broker.replicas.partition(t, *p) {
            Some(part) if part.role() == Role::Leader => {
                out.insert((t.clone(), *p), part.high_watermark());
            }
            _ => {
                if let Some(leader) = image
                    .partition(t, *p)
                    .and_then(|i| i.state.as_ref())
                    .map(|s| s.leader)
                {
                    if leader >= 0 {
                        remote.entry(leader).or_default().push((t.clone(), *p));
                    }
                }
            }
        }
    }
    let Ok(security) = crate::client::ClientSecurity::inter_broker(&broker.config) else {
        return out;
    };
    for (leader, tps) in remote {
        let Some((host, port)) = image
            .brokers
            .get(&leader)
            .and_then(|b| b.endpoint(&broker.config.inter_broker_listener))
        else {
            continue;
        };
        let addr = format!("{host}:{port}");
        let query = async {
            let mut c = crate::client::KafkaConnection::connect_with(
                &addr,
                "gregor-metrics",
                Duration::from_secs(2),
                &security,
            )
            .await
            .ok()?;
            let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
            for (t, p) in &tps {
                by_topic.entry(t).or_default().push(*p);
            }
            let req = ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(
                    by_topic
                        .iter()
                        .map(|(t, ps)| {
                            ListOffsetsTopic::default()
                                .with_name(TopicName(StrBytes::from_string(t.to_string())))
                                .with_partitions(
                                    ps.iter()
                                        .map(|p| {
                                            ListOffsetsPartition::default()
                                                .with_partition_index(*p)
                                                .with_timestamp(-1)
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                );
            c.send(&req, 5, Duration::from_secs(2)).await.ok()
        };
        if let Ok(Some(r)) = tokio::time::timeout(Duration::from_secs(3), query).await {
            for t in r.topics {
                for p in t.partitions {
                    if p.error_code == 0 {
                        out.insert((t.name.0.to_string(), p.partition_index), p.offset);
                    }
                }
            }
        }
    }
    out
}

fn socket_metrics(scrape: &mut Scrape) {
    let mut open = Family::gauge(
        "kafka_server_socketservermetrics_connection_count",
        "Open connections per listener (connection-count)",
    );
    let mut created = Family::counter(
        "kafka_server_socketservermetrics_connection_creation",
        "Connections accepted per listener (connection-creation-total)",
    );
    let mut closed = Family::counter(
        "kafka_server_socketservermetrics_connection_close",
        "Connections closed per listener (connection-close-total)",
    );
    for (name, s) in super::listeners() {
        let l = labels([("listener", &name)]);
        open.add(
            l.clone(),
            Value::Gauge(s.open.load(Ordering::Relaxed) as f64),
        );
        created.add(l.clone(), Value::Counter(s.created.load(Ordering::Relaxed)));
        closed.add(l, Value::Counter(s.closed.load(Ordering::Relaxed)));
    }
    scrape.push(open);
    scrape.push(created);
    scrape.push(closed);
}

fn zookeeper_metrics(scrape: &mut Scrape, broker: &Broker) {
    let current = broker.session.try_current();
    let state = if current.is_some() {
        "CONNECTED"
    } else {
        "DISCONNECTED"
    };
    // Every session after the first replaced an expired (or lost) one.
    let expires = current.map_or(0, |h| h.generation.saturating_sub(1));
    scrape.push(
        Family::gauge(
            "kafka_server_sessionexpirelistener_sessionstate",
            "1 for the ZooKeeper session's current state (SessionState)",
        )
        .with(labels([("state", state)]), Value::Gauge(1.0)),
    );
    scrape.push(
        Family::counter(
            "kafka_server_sessionexpirelistener_zookeeperexpires",
            "ZooKeeper sessions that expired (ZooKeeperExpiresPerSec)",
        )
        .with(Vec::new(), Value::Counter(expires)),
    );
    let (sum, count, buckets) = super::ZK_LATENCY.snapshot();
    scrape.push(
        Family::histogram("kafka_server_zookeeperclientmetrics_zookeeperrequestlatencyms", "ZooKeeper request latency in ms: periodic probes and ISR writes (ZooKeeperRequestLatencyMs)")
            .with(Vec::new(), Value::Histogram(sum, count, buckets)),
    );
}

/// Probes ZooKeeper every `every` (an `exists` on the root) for the latency histogram.
pub async fn zookeeper_probe(session: crate::coordination::ZkSession, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        if let Some(h) = session.try_current() {
            let start = std::time::Instant::now();
            if let Ok(Ok(_)) =
                tokio::time::timeout(Duration::from_secs(10), h.client.check_stat("/")).await
            {
                super::ZK_LATENCY.observe(start.elapsed());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_and_request_names_are_kafkas() {
        assert_eq!(error_name(0), "NONE");
        assert_eq!(error_name(6), "NOT_LEADER_OR_FOLLOWER");
        assert_eq!(error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(api_name(ApiKey::Produce), "Produce");
        assert_eq!(api_name(ApiKey::OffsetCommit), "OffsetCommit");
    }
}
