//! `gregor produce`: a line producer. Each stdin line is a record (`key<sep>value` with
//! `--key-separator`); keyed records go where Kafka's default partitioner puts them, others
//! round-robin. Lines are sent in batches (one v2 record batch per partition per request).

use std::collections::BTreeMap;
use std::io::BufRead;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use super::partitioner::partition_for_key;
use super::{block_on, check, connect};

#[derive(clap::Args, Debug)]
pub struct ProduceArgs {
    /// Broker(s) to bootstrap from (default: see `gregor::cli::default_bootstrap`).
    #[arg(long, default_value_t = super::default_bootstrap())]
    pub bootstrap_server: String,
    #[arg(long)]
    pub topic: String,
    /// Split each line into key and value at the first occurrence of this string.
    #[arg(long)]
    pub key_separator: Option<String>,
    /// 1 or all (-1).
    #[arg(long, default_value = "all")]
    pub acks: String,
    /// none, gzip, snappy, lz4 or zstd.
    #[arg(long, default_value = "none")]
    pub compression: String,
    /// Lines per request.
    #[arg(long, default_value_t = 500)]
    pub batch_lines: usize,
}

pub fn run(args: ProduceArgs) -> anyhow::Result<()> {
    let acks: i16 = match args.acks.as_str() {
        "all" | "-1" => -1,
        "1" => 1,
        other => anyhow::bail!(
            "--acks {other}: expected 1 or all (this CLI always waits for acknowledgement)"
        ),
    };
    let compression = match args.compression.as_str() {
        "none" => Compression::None,
        "gzip" => Compression::Gzip,
        "snappy" => Compression::Snappy,
        "lz4" => Compression::Lz4,
        "zstd" => Compression::Zstd,
        other => anyhow::bail!("--compression {other}: expected none, gzip, snappy, lz4 or zstd"),
    };
    block_on(async move {
        let mut c = connect(&args.bootstrap_server).await?;
        c.refresh(Some(std::slice::from_ref(&args.topic))).await?;
        let partitions = super::partition_count(&c, &args.topic)?;
        let stdin = std::io::stdin();
        let mut lines = stdin.lock().lines();
        let mut round_robin = 0i32;
        let mut sent = 0usize;
        loop {
            let mut by_partition: BTreeMap<i32, Vec<(Option<Bytes>, Bytes)>> = BTreeMap::new();
            let mut n = 0;
            for line in lines.by_ref() {
                let line = line?;
                let (key, value) = match &args.key_separator {
                    Some(sep) => match line.split_once(sep.as_str()) {
                        Some((k, v)) => {
                            (Some(Bytes::from(k.to_string())), Bytes::from(v.to_string()))
                        }
                        None => (None, Bytes::from(line)),
                    },
                    None => (None, Bytes::from(line)),
                };
                let p = match &key {
                    Some(k) => partition_for_key(k, partitions),
                    None => {
                        round_robin = (round_robin + 1) % partitions;
                        round_robin
                    }
                };
                by_partition.entry(p).or_default().push((key, value));
                n += 1;
                if n >= args.batch_lines {
                    break;
                }
            }
            if n == 0 {
                break;
            }
            for (p, records) in by_partition {
                send_batch(&mut c, &args.topic, p, &records, acks, compression).await?;
            }
            sent += n;
        }
        eprintln!("produced {sent} record(s) to {}", args.topic);
        Ok(())
    })
}

async fn send_batch(
    c: &mut crate::client::cluster::ClusterClient,
    topic: &str,
    partition: i32,
    records: &[(Option<Bytes>, Bytes)],
    acks: i16,
    compression: Compression,
) -> anyhow::Result<()> {
    let now = crate::clock::now_ms();
    let recs: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (k, v))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: i as i32,
            timestamp: now,
            key: k.clone(),
            value: Some(v.clone()),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        recs.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )?;
    let batch = buf.freeze();
    // Retry retriable errors (leader moves) a few times, refreshing metadata.
    for attempt in 0..10 {
        let Some(leader) = c.leader(topic, partition) else {
            c.refresh(Some(&[topic.to_string()])).await?;
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            continue;
        };
        let req = ProduceRequest::default()
            .with_acks(acks)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(batch.clone()))])]);
        match c.send_to(leader, &req, 9).await {
            Ok(resp) => {
                let r = &resp.responses[0].partition_responses[0];
                let retriable = kafka_protocol::ResponseError::try_from_code(r.error_code)
                    .is_some_and(|e| e.is_retriable());
                if r.error_code == 0 || !retriable || attempt == 9 {
                    return check(
                        r.error_code,
                        &format!("produce to {topic}-{partition}"),
                        r.error_message.as_deref(),
                    );
                }
            }
            Err(e) if attempt == 9 => return Err(e.into()),
            Err(_) => {}
        }
        c.refresh(Some(&[topic.to_string()])).await?;
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    anyhow::bail!("produce to {topic}-{partition}: no leader")
}
