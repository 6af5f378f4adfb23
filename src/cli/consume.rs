//! `gregor consume`: prints a topic's records, from the beginning or from the end, reading
//! every partition (or one) from its leader. Without a group: offsets are not committed.
//! On a terminal, a progress line on stderr counts the records (against `--max-messages`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::RecordBatchDecoder;

use super::{block_on, check, connect};
pub use crate::client::tools::list_offset;

#[derive(clap::Args, Debug)]
pub struct ConsumeArgs {
    /// Broker(s) to bootstrap from (default: see `gregor::cli::default_bootstrap`).
    #[arg(long, default_value_t = super::default_bootstrap())]
    pub bootstrap_server: String,
    #[arg(long)]
    pub topic: String,
    /// Start at the earliest offset instead of the end.
    #[arg(long)]
    pub from_beginning: bool,
    /// Read only this partition.
    #[arg(long)]
    pub partition: Option<i32>,
    /// Stop after this many records.
    #[arg(long)]
    pub max_messages: Option<usize>,
    /// Stop after this long without new records (default: run until interrupted).
    #[arg(long)]
    pub timeout_ms: Option<u64>,
    /// Print `key<TAB>value`.
    #[arg(long)]
    pub print_key: bool,
}

pub fn run(args: ConsumeArgs) -> anyhow::Result<()> {
    block_on(async move {
        let mut c = connect(&args.bootstrap_server).await?;
        c.refresh(Some(std::slice::from_ref(&args.topic))).await?;
        let count = super::partition_count(&c, &args.topic)?;
        let partitions: Vec<i32> = match args.partition {
            Some(p) if p < 0 || p >= count => {
                anyhow::bail!("partition {p} does not exist ({count} partitions)")
            }
            Some(p) => vec![p],
            None => (0..count).collect(),
        };
        let start_ts = if args.from_beginning { -2 } else { -1 };
        let mut positions = BTreeMap::new();
        for &p in &partitions {
            positions.insert(p, list_offset(&mut c, &args.topic, p, start_ts).await?);
        }
        let mut printed = 0usize;
        let mut progress = super::progress::Progress::new();
        let mut last_data = Instant::now();
        loop {
            let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
            for &p in &partitions {
                match c.leader(&args.topic, p) {
                    Some(l) => by_leader.entry(l).or_default().push(p),
                    None => c.refresh(Some(std::slice::from_ref(&args.topic))).await?,
                }
            }
            let mut got_any = false;
            for (leader, ps) in by_leader {
                let req = FetchRequest::default()
                    .with_replica_id(BrokerId(-1))
                    .with_max_wait_ms(500)
                    .with_min_bytes(1)
                    .with_max_bytes(50 * 1024 * 1024)
                    .with_session_id(0)
                    .with_session_epoch(-1)
                    .with_topics(vec![FetchTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(args.topic.clone())))
                        .with_partitions(
                            ps.iter()
                                .map(|p| {
                                    FetchPartition::default()
                                        .with_partition(*p)
                                        .with_fetch_offset(positions[p])
                                        .with_current_leader_epoch(-1)
                                        .with_last_fetched_epoch(-1)
                                        .with_partition_max_bytes(1024 * 1024)
                                })
                                .collect(),
                        )]);
                let resp = match c.send_to(leader, &req, 12).await {
                    Ok(r) => r,
                    Err(_) => {
                        c.refresh(Some(std::slice::from_ref(&args.topic))).await?;
                        continue;
                    }
                };
                for t in resp.responses {
                    for pd in t.partitions {
                        if pd.error_code != 0 {
                            // Leadership moved: refresh and fetch again. Anything else
                            // (TOPIC_AUTHORIZATION_FAILED, OFFSET_OUT_OF_RANGE) ends the run.
                            let retriable =
                                kafka_protocol::ResponseError::try_from_code(pd.error_code)
                                    .is_some_and(|e| e.is_retriable());
                            if !retriable {
                                check(
                                    pd.error_code,
                                    &format!("fetch {}-{}", args.topic, pd.partition_index),
                                    None,
                                )?;
                            }
                            c.refresh(Some(std::slice::from_ref(&args.topic))).await?;
                            continue;
                        }
                        let mut records = pd.records.unwrap_or_default();
                        if records.is_empty() {
                            continue;
                        }
                        for set in RecordBatchDecoder::decode_all(&mut records)? {
                            for r in set.records {
                                let pos = positions
                                    .get_mut(&pd.partition_index)
                                    .expect("fetched partition");
                                if r.offset < *pos {
                                    continue;
                                }
                                *pos = r.offset + 1;
                                got_any = true;
                                let value = r
                                    .value
                                    .map(|v| String::from_utf8_lossy(&v).into_owned())
                                    .unwrap_or_else(|| "null".into());
                                if args.print_key {
                                    let key = r
                                        .key
                                        .map(|k| String::from_utf8_lossy(&k).into_owned())
                                        .unwrap_or_else(|| "null".into());
                                    println!("{key}\t{value}");
                                } else {
                                    println!("{value}");
                                }
                                printed += 1;
                                progress.show(|| {
                                    format!(
                                        "consumed {}",
                                        super::progress::fraction(
                                            printed as u64,
                                            args.max_messages.map(|m| m as u64)
                                        )
                                    )
                                });
                                if args.max_messages.is_some_and(|m| printed >= m) {
                                    return Ok(());
                                }
                            }
                        }
                    }
                }
            }
            if got_any {
                last_data = Instant::now();
            } else if args
                .timeout_ms
                .is_some_and(|t| last_data.elapsed() >= Duration::from_millis(t))
            {
                return Ok(());
            }
        }
    })
}
