//! A minimal transactional producer and read_committed reader over the raw protocol, for
//! tests that need to control every step (when each request is sent, what is retried)
//! — Jepsen-style checks under a nemesis. Compatibility with real clients is proved in
//! compat-tests/.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use indexmap::IndexMap;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use super::kafka::{topic_name, Client};

/// Errors worth retrying the same request for (after finding the coordinator again).
const RETRIABLE: &[i16] = &[
    7,  // REQUEST_TIMED_OUT
    14, // COORDINATOR_LOAD_IN_PROGRESS
    15, // COORDINATOR_NOT_AVAILABLE
    16, // NOT_COORDINATOR
    19, // NOT_ENOUGH_REPLICAS
    20, // NOT_ENOUGH_REPLICAS_AFTER_APPEND
    51, // CONCURRENT_TRANSACTIONS
];

/// A transaction's outcome as the producer knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Committed,
    Aborted,
    /// EndTxn(commit) never got a definite answer.
    Unknown,
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// Connections to brokers by address, with a leader map for one topic.
pub struct Brokers {
    pub addrs: Vec<String>,
    conns: HashMap<String, Client>,
    pub leaders: BTreeMap<i32, String>,
}

impl Brokers {
    pub fn new(addrs: Vec<String>) -> Brokers {
        Brokers {
            addrs,
            conns: HashMap::new(),
            leaders: BTreeMap::new(),
        }
    }

    pub fn conn(&mut self, addr: &str) -> Option<&mut Client> {
        if !self.conns.contains_key(addr) {
            let c = Client::connect(addr).ok()?;
            self.conns.insert(addr.to_string(), c);
        }
        self.conns.get_mut(addr)
    }

    pub fn drop_conn(&mut self, addr: &str) {
        self.conns.remove(addr);
    }

    /// Refreshes the leaders of `topic`; false if no broker answered.
    pub fn refresh(&mut self, topic: &str) -> bool {
        for addr in self.addrs.clone() {
            let Some(c) = self.conn(&addr) else { continue };
            match c.metadata(Some(&[topic])) {
                Ok(md) => {
                    let brokers: HashMap<i32, String> = md
                        .brokers
                        .iter()
                        .map(|b| (b.node_id.0, format!("{}:{}", b.host, b.port)))
                        .collect();
                    self.leaders.clear();
                    if let Some(t) = md.topics.first() {
                        for p in &t.partitions {
                            if let Some(a) = brokers.get(&p.leader_id.0) {
                                self.leaders.insert(p.partition_index, a.clone());
                            }
                        }
                    }
                    return true;
                }
                Err(_) => self.drop_conn(&addr),
            }
        }
        false
    }

    /// Sends to any broker that answers.
    pub fn send_any<R: kafka_protocol::protocol::Request>(
        &mut self,
        req: &R,
        version: i16,
    ) -> Option<R::Response> {
        for addr in self.addrs.clone() {
            let Some(c) = self.conn(&addr) else { continue };
            match c.send(req, version) {
                Ok(r) => return Some(r),
                Err(_) => self.drop_conn(&addr),
            }
        }
        None
    }
}

/// One v2 transactional batch of `values` for (`producer_id`, `epoch`) from `sequence`.
pub fn txn_batch(values: &[&[u8]], producer_id: i64, epoch: i16, sequence: i32) -> Bytes {
    // The current time: retention and segment.ms judge by record timestamps.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            transactional: true,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: sequence + i as i32,
            timestamp: now,
            key: None,
            value: Some(Bytes::copy_from_slice(v)),
            headers: IndexMap::new(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("encode");
    buf.freeze()
}

/// A transactional producer: InitProducerId, AddPartitionsToTxn, transactional Produce
/// and EndTxn, sent once each except for the retries a client makes.
pub struct TxnProducer {
    pub txn_id: String,
    pub topic: String,
    pub brokers: Brokers,
    coordinator: Option<String>,
    pub producer_id: i64,
    pub epoch: i16,
    sequences: HashMap<i32, i32>,
    timeout_ms: i32,
}

impl TxnProducer {
    pub fn new(txn_id: &str, topic: &str, addrs: Vec<String>, timeout_ms: i32) -> TxnProducer {
        TxnProducer {
            txn_id: txn_id.to_string(),
            topic: topic.to_string(),
            brokers: Brokers::new(addrs),
            coordinator: None,
            producer_id: -1,
            epoch: -1,
            sequences: HashMap::new(),
            timeout_ms,
        }
    }

    fn find_coordinator(&mut self) -> bool {
        let req = FindCoordinatorRequest::default()
            .with_key_type(1)
            .with_key(s(&self.txn_id));
        match self.brokers.send_any(&req, 3) {
            Some(r) if r.error_code == 0 => {
                self.coordinator = Some(format!("{}:{}", r.host, r.port));
                true
            }
            _ => false,
        }
    }

    /// Sends a request to the coordinator, finding it first; `None` on a lost connection.
    fn send_coordinator<R: kafka_protocol::protocol::Request>(
        &mut self,
        req: &R,
        version: i16,
    ) -> Option<R::Response> {
        if self.coordinator.is_none() && !self.find_coordinator() {
            return None;
        }
        let addr = self.coordinator.clone()?;
        let r = self
            .brokers
            .conn(&addr)
            .and_then(|c| c.send(req, version).ok());
        if r.is_none() {
            self.brokers.drop_conn(&addr);
            self.coordinator = None;
        }
        r
    }

    /// Retries `attempt` (an error code or `None` for a lost connection) until it
    /// answers something not retriable or `deadline` passes.
    fn retry(
        &mut self,
        deadline: Instant,
        mut attempt: impl FnMut(&mut Self) -> Option<i16>,
    ) -> Result<(), i16> {
        loop {
            match attempt(self) {
                Some(0) => return Ok(()),
                Some(code) if !RETRIABLE.contains(&code) => return Err(code),
                Some(16) => self.coordinator = None,
                _ => {}
            }
            if Instant::now() > deadline {
                return Err(-2);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// InitProducerId (fences and aborts an earlier incarnation's open transaction).
    pub fn init(&mut self, deadline: Instant) -> Result<(), i16> {
        let req = InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(s(&self.txn_id))))
            .with_transaction_timeout_ms(self.timeout_ms)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        let mut got = (-1, -1);
        self.retry(deadline, |p| {
            let r = p.send_coordinator(&req, 4)?;
            got = (r.producer_id.0, r.producer_epoch);
            Some(r.error_code)
        })?;
        (self.producer_id, self.epoch) = got;
        self.sequences.clear();
        Ok(())
    }

    pub fn add_partitions(&mut self, partitions: &[i32], deadline: Instant) -> Result<(), i16> {
        let req = AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(TransactionalId(s(&self.txn_id)))
            .with_v3_and_below_producer_id(ProducerId(self.producer_id))
            .with_v3_and_below_producer_epoch(self.epoch)
            .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
                .with_name(topic_name(&self.topic))
                .with_partitions(partitions.to_vec())]);
        self.retry(deadline, |p| {
            let r = p.send_coordinator(&req, 3)?;
            let codes: Vec<i16> = r
                .results_by_topic_v3_and_below
                .iter()
                .flat_map(|t| {
                    t.results_by_partition
                        .iter()
                        .map(|p| p.partition_error_code)
                })
                .collect();
            Some(codes.into_iter().find(|c| *c != 0).unwrap_or(0))
        })
    }

    /// One transactional produce (acks=all) to `partition`, sent once: the base offset,
    /// or the error (-1: no answer).
    pub fn produce(&mut self, partition: i32, value: &str) -> Result<i64, i16> {
        let Some(addr) = self.brokers.leaders.get(&partition).cloned() else {
            self.brokers.refresh(&self.topic.clone());
            return Err(-1);
        };
        let seq = *self.sequences.get(&partition).unwrap_or(&0);
        let req = ProduceRequest::default()
            .with_transactional_id(Some(TransactionalId(s(&self.txn_id))))
            .with_acks(-1)
            .with_timeout_ms(5000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(topic_name(&self.topic))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(txn_batch(
                        &[value.as_bytes()],
                        self.producer_id,
                        self.epoch,
                        seq,
                    )))])]);
        let Some(c) = self.brokers.conn(&addr) else {
            self.brokers.refresh(&self.topic.clone());
            return Err(-1);
        };
        match c.send(&req, 9) {
            Ok(r) => {
                let p = &r.responses[0].partition_responses[0];
                if p.error_code == 0 {
                    self.sequences.insert(partition, seq + 1);
                    Ok(p.base_offset)
                } else {
                    self.brokers.refresh(&self.topic.clone());
                    Err(p.error_code)
                }
            }
            Err(_) => {
                self.brokers.drop_conn(&addr);
                self.brokers.refresh(&self.topic.clone());
                Err(-1)
            }
        }
    }

    /// EndTxn, retried until a definite answer or `deadline`.
    pub fn end(&mut self, commit: bool, deadline: Instant) -> Result<(), i16> {
        let req = EndTxnRequest::default()
            .with_transactional_id(TransactionalId(s(&self.txn_id)))
            .with_producer_id(ProducerId(self.producer_id))
            .with_producer_epoch(self.epoch)
            .with_committed(commit);
        self.retry(deadline, |p| {
            p.send_coordinator(&req, 3).map(|r| r.error_code)
        })
    }
}

/// Reads a partition up to its last stable offset as a read_committed consumer does:
/// Fetch with isolation READ_COMMITTED, dropping the records of the aborted transactions
/// the response lists (Kafka's `Fetcher` rules) and control batches. Returns (offset,
/// value) of the records kept, and the LSO reached.
pub fn read_committed(
    c: &mut Client,
    topic: &str,
    partition: i32,
) -> Result<(Vec<(i64, Bytes)>, i64), String> {
    let mut out = Vec::new();
    let (err, start) = c.list_offset(topic, partition, -2);
    if err != 0 {
        return Err(format!("ListOffsets earliest: error {err}"));
    }
    let mut offset = start;
    loop {
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_min_bytes(1)
            .with_max_bytes(16 * 1024 * 1024)
            .with_isolation_level(1)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(partition)
                    .with_fetch_offset(offset)
                    .with_current_leader_epoch(-1)
                    .with_last_fetched_epoch(-1)
                    .with_partition_max_bytes(4 * 1024 * 1024)])]);
        let r = c.send(&req, 11).map_err(|e| e.to_string())?;
        let p = &r.responses[0].partitions[0];
        if p.error_code != 0 {
            return Err(format!("fetch error {}", p.error_code));
        }
        let lso = p.last_stable_offset;
        if offset >= lso {
            return Ok((out, lso));
        }
        let mut aborted: Vec<(i64, i64)> = p
            .aborted_transactions
            .as_ref()
            .ok_or("a read_committed fetch without aborted_transactions")?
            .iter()
            .map(|t| (t.first_offset, t.producer_id.0))
            .collect();
        aborted.sort();
        let mut aborted = aborted.into_iter().peekable();
        let mut active: HashSet<i64> = HashSet::new();
        let mut records = p.records.clone().unwrap_or_default();
        let sets = RecordBatchDecoder::decode_all(&mut records).map_err(|e| e.to_string())?;
        if sets.is_empty() {
            return Err(format!("no batch below the LSO {lso} at {offset}"));
        }
        for set in sets {
            let Some(first) = set.records.first() else {
                continue;
            };
            let last_offset = set.records.last().map_or(first.offset, |r| r.offset);
            while let Some(&(first_offset, pid)) = aborted.peek() {
                if first_offset > last_offset {
                    break;
                }
                active.insert(pid);
                aborted.next();
            }
            if first.control {
                // The control record's key: version, type (0 = ABORT).
                let kind = first
                    .key
                    .as_ref()
                    .filter(|k| k.len() >= 4)
                    .map(|k| i16::from_be_bytes([k[2], k[3]]));
                if kind == Some(0) {
                    active.remove(&first.producer_id);
                }
            } else if !(first.transactional && active.contains(&first.producer_id)) {
                for rec in &set.records {
                    if rec.offset >= offset {
                        out.push((rec.offset, rec.value.clone().unwrap_or_default()));
                    }
                }
            }
            offset = offset.max(last_offset + 1);
        }
    }
}
