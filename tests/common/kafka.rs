//! A blocking Kafka client for tests, over `gregor::client::KafkaConnection` (our own
//! encoder: protocol-level checks only; compatibility is proved in compat-tests/ with
//! real third-party clients).

#![allow(dead_code)]

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use gregor::client::{ClientError, KafkaConnection};
use indexmap::IndexMap;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Request, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

pub struct Client {
    rt: tokio::runtime::Runtime,
    conn: KafkaConnection,
}

const TIMEOUT: Duration = Duration::from_secs(30);

pub fn topic_name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

impl Client {
    pub fn connect(addr: &str) -> Result<Client, ClientError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let conn = rt.block_on(KafkaConnection::connect(
            addr,
            "gregor-test",
            Duration::from_secs(5),
        ))?;
        Ok(Client { rt, conn })
    }

    /// Connects from local address `ip` (e.g. `127.0.0.2`): ACL host checks see it.
    pub fn connect_from(addr: &str, ip: &str) -> Result<Client, ClientError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let conn = rt.block_on(KafkaConnection::connect_from(
            addr,
            Some(ip.parse().expect("ip")),
            "gregor-test",
            Duration::from_secs(5),
        ))?;
        Ok(Client { rt, conn })
    }

    pub fn send<R: Request>(&mut self, req: &R, version: i16) -> Result<R::Response, ClientError> {
        self.rt.block_on(self.conn.send(req, version, TIMEOUT))
    }

    pub fn metadata(&mut self, topics: Option<&[&str]>) -> Result<MetadataResponse, ClientError> {
        let req = MetadataRequest::default()
            .with_topics(topics.map(|ts| {
                ts.iter()
                    .map(|t| MetadataRequestTopic::default().with_name(Some(topic_name(t))))
                    .collect()
            }))
            .with_allow_auto_topic_creation(false);
        self.send(&req, 12)
    }

    /// IncrementalAlterConfigs SET of one key on one resource (2 topic, 4 broker): the
    /// resource's error code.
    pub fn set_config(&mut self, resource_type: i8, name: &str, key: &str, value: &str) -> i16 {
        use kafka_protocol::messages::incremental_alter_configs_request::{
            AlterConfigsResource, AlterableConfig,
        };
        let s = |v: &str| StrBytes::from_string(v.to_string());
        let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(s(name))
                .with_configs(vec![AlterableConfig::default()
                    .with_name(s(key))
                    .with_config_operation(0)
                    .with_value(Some(s(value)))]),
        ]);
        let resp = self.send(&req, 1).expect("IncrementalAlterConfigs");
        resp.responses[0].error_code
    }

    /// Every config of a resource (2 topic, 4 broker): (key, value, source code).
    pub fn configs(&mut self, resource_type: i8, name: &str) -> Vec<(String, String, i8)> {
        use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
        let req = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(StrBytes::from_string(name.to_string()))
                .with_configuration_keys(None),
        ]);
        let resp = self.send(&req, 4).expect("DescribeConfigs");
        let result = &resp.results[0];
        assert_eq!(result.error_code, 0, "{:?}", result.error_message);
        result
            .configs
            .iter()
            .map(|e| {
                let value = e.value.as_deref().unwrap_or_default().to_string();
                (e.name.to_string(), value, e.config_source)
            })
            .collect()
    }

    /// Grows a topic to `count` partitions (CreatePartitions, placed by the broker): the
    /// topic's error code. With `timeout_ms` 0 the broker answers once the change is
    /// written, without waiting for the new partitions' leaders.
    pub fn create_partitions(&mut self, topic: &str, count: i32, timeout_ms: i32) -> i16 {
        use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
        let req = CreatePartitionsRequest::default()
            .with_timeout_ms(timeout_ms)
            .with_topics(vec![CreatePartitionsTopic::default()
                .with_name(topic_name(topic))
                .with_count(count)
                .with_assignments(None)]);
        let resp = self.send(&req, 3).expect("CreatePartitions");
        resp.results[0].error_code
    }

    /// Creates a topic and returns the per-topic error code.
    pub fn create_topic(
        &mut self,
        name: &str,
        partitions: i32,
        rf: i16,
        configs: &[(&str, &str)],
    ) -> i16 {
        self.create_topic_within(name, partitions, rf, configs, 30_000)
    }

    /// As `create_topic`, waiting up to `timeout_ms` for the leaders (0: the broker
    /// answers once the topic is written).
    pub fn create_topic_within(
        &mut self,
        name: &str,
        partitions: i32,
        rf: i16,
        configs: &[(&str, &str)],
        timeout_ms: i32,
    ) -> i16 {
        let topic = CreatableTopic::default()
            .with_name(topic_name(name))
            .with_num_partitions(partitions)
            .with_replication_factor(rf)
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        CreatableTopicConfig::default()
                            .with_name(StrBytes::from_string(k.to_string()))
                            .with_value(Some(StrBytes::from_string(v.to_string())))
                    })
                    .collect(),
            );
        let req = CreateTopicsRequest::default()
            .with_topics(vec![topic])
            .with_timeout_ms(timeout_ms);
        let resp = self.send(&req, 7).expect("CreateTopics");
        resp.topics[0].error_code
    }

    /// Leader broker id of a partition (-1 if none).
    pub fn leader(&mut self, topic: &str, partition: i32) -> i32 {
        let md = self.metadata(Some(&[topic])).expect("metadata");
        md.topics
            .first()
            .and_then(|t| t.partitions.iter().find(|p| p.partition_index == partition))
            .map(|p| p.leader_id.0)
            .unwrap_or(-1)
    }

    /// Produces one batch; returns (error code, base offset).
    pub fn produce(&mut self, topic: &str, partition: i32, batch: Bytes, acks: i16) -> (i16, i64) {
        self.try_produce(topic, partition, batch, acks)
            .expect("Produce")
    }

    /// [`Client::produce`], with a transport failure (a closed connection) as an error.
    pub fn try_produce(
        &mut self,
        topic: &str,
        partition: i32,
        batch: Bytes,
        acks: i16,
    ) -> Result<(i16, i64), ClientError> {
        let req = ProduceRequest::default()
            .with_acks(acks)
            .with_timeout_ms(10_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(topic_name(topic))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(batch))])]);
        let resp = self.send(&req, 9)?;
        let p = &resp.responses[0].partition_responses[0];
        if p.error_code != 0 {
            eprintln!(
                "produce to {topic}-{partition}: error {} {:?}",
                p.error_code, p.error_message
            );
        }
        Ok((p.error_code, p.base_offset))
    }

    /// Fetches from `offset`; returns (error code, high watermark, raw records).
    pub fn fetch(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_wait_ms: i32,
    ) -> (i16, i64, Bytes) {
        self.try_fetch(topic, partition, offset, max_wait_ms)
            .expect("Fetch")
    }

    /// [`Client::fetch`], with a transport failure (a closed connection) as an error.
    pub fn try_fetch(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_wait_ms: i32,
    ) -> Result<(i16, i64, Bytes), ClientError> {
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(max_wait_ms)
            .with_min_bytes(1)
            .with_max_bytes(64 * 1024 * 1024)
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(partition)
                    .with_fetch_offset(offset)
                    .with_current_leader_epoch(-1)
                    .with_last_fetched_epoch(-1)
                    .with_partition_max_bytes(16 * 1024 * 1024)])]);
        let resp = self.send(&req, 12)?;
        let p = &resp.responses[0].partitions[0];
        Ok((
            p.error_code,
            p.high_watermark,
            p.records.clone().unwrap_or_default(),
        ))
    }

    /// ListOffsets for one partition: (error, offset).
    pub fn list_offset(&mut self, topic: &str, partition: i32, timestamp: i64) -> (i16, i64) {
        let req = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(partition)
                    .with_timestamp(timestamp)
                    .with_current_leader_epoch(-1)])]);
        let resp = self.send(&req, 7).expect("ListOffsets");
        let p = &resp.topics[0].partitions[0];
        (p.error_code, p.offset)
    }

    /// Reads every record value of a partition from `from` up to the high watermark.
    pub fn read_all(
        &mut self,
        topic: &str,
        partition: i32,
        from: i64,
    ) -> Vec<(i64, Option<Bytes>)> {
        let mut out = Vec::new();
        let mut offset = from;
        loop {
            let (err, hw, records) = self.fetch(topic, partition, offset, 0);
            assert_eq!(err, 0, "fetch error {err} at offset {offset}");
            if offset >= hw {
                return out;
            }
            let decoded = decode(records);
            assert!(
                !decoded.is_empty(),
                "no records below the high watermark {hw} at {offset}"
            );
            for (o, v) in decoded {
                if o >= offset {
                    out.push((o, v));
                    offset = o + 1;
                }
            }
        }
    }
}

/// Builds one v2 record batch of `values` (keys `k<i>`), offsets from 0.
pub fn batch(values: &[&[u8]], compression: Compression) -> Bytes {
    batch_with_producer(values, compression, -1, -1, -1)
}

pub fn batch_with_producer(
    values: &[&[u8]],
    compression: Compression,
    producer_id: i64,
    epoch: i16,
    base_sequence: i32,
) -> Bytes {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // kafka-protocol keeps records in one batch only while offset - sequence is constant.
            sequence: base_sequence.max(0) + i as i32,
            timestamp: now,
            key: Some(Bytes::from(format!("k{i}"))),
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
            compression,
        },
    )
    .expect("encode");
    buf.freeze()
}

/// Decodes every record of a fetch response's records: (offset, value).
pub fn decode(mut records: Bytes) -> Vec<(i64, Option<Bytes>)> {
    let mut out = Vec::new();
    if records.is_empty() {
        return out;
    }
    let sets = RecordBatchDecoder::decode_all(&mut records).expect("decode records");
    for set in sets {
        for r in set.records {
            out.push((r.offset, r.value));
        }
    }
    out
}
