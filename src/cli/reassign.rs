//! `gregor reassign`: moves partitions between brokers, like `kafka-reassign-partitions`,
//! over AlterPartitionReassignments / ListPartitionReassignments (KIP-455).
//!
//! - `--topic T --partition P --replicas 2,3,4`, or `--reassignment-json-file F` in
//!   Kafka's format (`{"version":1,"partitions":[{"topic","partition","replicas"}]}`):
//!   starts the moves, then follows them until every new replica is in sync and the old
//!   ones are gone, printing each change (`--no-wait` returns at once);
//! - `--throttle BYTES`: caps the moves' replication traffic per broker as Kafka's tool
//!   does: the moving partitions' current replicas as `leader.replication.throttled.replicas`,
//!   the new ones as `follower.replication.throttled.replicas`, and both rates on every
//!   broker involved; removed again once the moves are done (when waiting);
//! - `--list`: the ongoing reassignments; `--cancel` with a partition or a file: reverts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::client::admin::{
    self, ConfigChange, ConfigResource, OngoingReassignment, TopicPartition,
};
use crate::client::cluster::ClusterClient;

use super::{block_on, connect};

#[derive(clap::Args, Debug)]
pub struct ReassignArgs {
    /// Broker(s) to bootstrap from (default: see `gregor::cli::default_bootstrap`).
    #[arg(long, default_value_t = super::default_bootstrap())]
    pub bootstrap_server: String,
    /// The topic of the partition to move.
    #[arg(long, requires = "partition")]
    pub topic: Option<String>,
    /// The partition to move.
    #[arg(long, requires = "topic")]
    pub partition: Option<i32>,
    /// Its target replicas, the preferred leader first (e.g. 2,3,4).
    #[arg(long, value_delimiter = ',')]
    pub replicas: Vec<i32>,
    /// Moves in Kafka's reassignment JSON format.
    #[arg(long, conflicts_with_all = ["topic", "replicas"])]
    pub reassignment_json_file: Option<PathBuf>,
    /// List the ongoing reassignments.
    #[arg(long, conflicts_with_all = ["cancel", "replicas", "reassignment_json_file"])]
    pub list: bool,
    /// Cancel the reassignments of the given partitions (back to their replicas before).
    #[arg(long, conflicts_with = "replicas")]
    pub cancel: bool,
    /// Replication throttle for the moves, in bytes/s per broker.
    #[arg(long, value_name = "BYTES_PER_SEC")]
    pub throttle: Option<u64>,
    /// Return once the moves are started instead of following them.
    #[arg(long)]
    pub no_wait: bool,
    /// Give up following after this long (default: until done).
    #[arg(long)]
    pub timeout_ms: Option<u64>,
}

pub fn run(args: ReassignArgs) -> anyhow::Result<()> {
    block_on(async move {
        let mut c = connect(&args.bootstrap_server).await?;
        if args.list {
            let ongoing = admin::list_reassignments(&mut c, None).await?;
            print_ongoing(&ongoing);
            return Ok(());
        }
        let moves = requested_moves(&args)?;
        if args.cancel {
            let cancels: Vec<_> = moves.into_iter().map(|(tp, _)| (tp, None)).collect();
            report(
                admin::alter_reassignments(&mut c, &cancels).await?,
                "Cancelled",
            )?;
            return Ok(());
        }
        let plan = match args.throttle {
            Some(rate) => {
                c.refresh(None).await?;
                let plan = ThrottlePlan::of(&current_replicas(&c), &moves, rate);
                plan.apply(&mut c).await?;
                println!("Throttled the moves' replication at {rate} bytes/s per broker.");
                Some(plan)
            }
            None => None,
        };
        let targets: Vec<_> = moves
            .iter()
            .map(|(tp, r)| (tp.clone(), Some(r.clone())))
            .collect();
        report(
            admin::alter_reassignments(&mut c, &targets).await?,
            "Started moving",
        )?;
        if args.no_wait {
            if plan.is_some() {
                println!("The throttles stay until removed (gregor configs alter --delete).");
            }
            return Ok(());
        }
        follow(&mut c, &moves, args.timeout_ms.map(Duration::from_millis)).await?;
        if let Some(plan) = plan {
            plan.remove(&mut c).await?;
            println!("Removed the replication throttles.");
        }
        Ok(())
    })
}

/// The moves the arguments ask for: one partition from the flags, or a JSON file's.
fn requested_moves(args: &ReassignArgs) -> anyhow::Result<Vec<(TopicPartition, Vec<i32>)>> {
    if let Some(path) = &args.reassignment_json_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        return parse_reassignment_json(&text).with_context(|| format!("in {}", path.display()));
    }
    let (Some(topic), Some(partition)) = (&args.topic, args.partition) else {
        bail!("name a partition (--topic T --partition P), a --reassignment-json-file, or --list");
    };
    if !args.cancel && args.replicas.is_empty() {
        bail!("--replicas is required to move {topic}-{partition}");
    }
    Ok(vec![((topic.clone(), partition), args.replicas.clone())])
}

#[derive(serde::Deserialize)]
struct ReassignmentFile {
    partitions: Vec<FileEntry>,
}

#[derive(serde::Deserialize)]
struct FileEntry {
    topic: String,
    partition: i32,
    #[serde(default)]
    replicas: Vec<i32>,
}

/// Kafka's reassignment JSON (`log_dirs` and `version` are accepted and ignored).
pub fn parse_reassignment_json(text: &str) -> anyhow::Result<Vec<(TopicPartition, Vec<i32>)>> {
    let file: ReassignmentFile = serde_json::from_str(text)?;
    if file.partitions.is_empty() {
        bail!("no partitions to reassign");
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for e in file.partitions {
        if !seen.insert((e.topic.clone(), e.partition)) {
            bail!("{}-{} is listed twice", e.topic, e.partition);
        }
        out.push(((e.topic, e.partition), e.replicas));
    }
    Ok(out)
}

/// Prints each partition's outcome; fails naming every refused partition.
fn report(results: admin::PartitionResults, verb: &str) -> anyhow::Result<()> {
    let mut failed = Vec::new();
    for ((topic, partition), result) in results {
        match result {
            Ok(()) => println!("{verb} {topic}-{partition}."),
            Err(e) => failed.push(format!("{e:#}")),
        }
    }
    if !failed.is_empty() {
        bail!("{}", failed.join("; "));
    }
    Ok(())
}

fn ids(v: &[i32]) -> String {
    v.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

fn print_ongoing(ongoing: &[OngoingReassignment]) {
    if ongoing.is_empty() {
        println!("No partition reassignments in progress.");
    }
    for r in ongoing {
        println!("{}", describe_ongoing(r, None));
    }
}

/// One line of progress: `t-0: replicas 2,3,4,1 adding 4 removing 1 (isr 2,3,1)`.
fn describe_ongoing(r: &OngoingReassignment, isr: Option<&[i32]>) -> String {
    let mut line = format!(
        "{}-{}: replicas {} adding {} removing {}",
        r.topic,
        r.partition,
        ids(&r.replicas),
        ids(&r.adding),
        ids(&r.removing)
    );
    if let Some(isr) = isr {
        line.push_str(&format!(" (isr {})", ids(isr)));
    }
    line
}

/// Polls until every move is done (not being reassigned, and assigned its target),
/// printing each change of state and each partition as it completes.
async fn follow(
    c: &mut ClusterClient,
    moves: &[(TopicPartition, Vec<i32>)],
    timeout: Option<Duration>,
) -> anyhow::Result<()> {
    let parts: Vec<TopicPartition> = moves.iter().map(|(tp, _)| tp.clone()).collect();
    let parts = parts.as_slice();
    let started = Instant::now();
    let mut last: BTreeMap<TopicPartition, String> = BTreeMap::new();
    let mut done: BTreeSet<TopicPartition> = BTreeSet::new();
    loop {
        let ongoing = admin::list_reassignments(c, Some(parts)).await?;
        c.refresh(None).await?;
        let replicas = current_replicas(c);
        let isrs = current_isrs(c);
        for r in &ongoing {
            let tp = (r.topic.clone(), r.partition);
            let line = describe_ongoing(r, isrs.get(&tp).map(Vec::as_slice));
            if last.get(&tp) != Some(&line) {
                println!("{line}");
                last.insert(tp, line);
            }
        }
        for (tp, target) in moves {
            let moving = ongoing
                .iter()
                .any(|r| (&r.topic, r.partition) == (&tp.0, tp.1));
            let arrived = replicas.get(tp) == Some(target);
            if !moving && arrived && done.insert(tp.clone()) {
                let now = replicas.get(tp).map(|r| ids(r)).unwrap_or_default();
                println!(
                    "Reassignment of {}-{} complete: replicas {now} ({} of {} partitions done).",
                    tp.0,
                    tp.1,
                    done.len(),
                    parts.len()
                );
            }
        }
        if done.len() == parts.len() {
            return Ok(());
        }
        if timeout.is_some_and(|t| started.elapsed() >= t) {
            bail!(
                "{} of {} partitions still moving; follow with `gregor reassign --list`",
                parts.len() - done.len(),
                parts.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn partitions_of(
    c: &ClusterClient,
) -> impl Iterator<
    Item = (
        TopicPartition,
        &kafka_protocol::messages::metadata_response::MetadataResponsePartition,
    ),
> {
    c.metadata.topics.iter().flat_map(|t| {
        let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
        t.partitions
            .iter()
            .map(move |p| ((name.clone(), p.partition_index), p))
    })
}

fn current_replicas(c: &ClusterClient) -> BTreeMap<TopicPartition, Vec<i32>> {
    partitions_of(c)
        .map(|(tp, p)| (tp, p.replica_nodes.iter().map(|b| b.0).collect()))
        .collect()
}

fn current_isrs(c: &ClusterClient) -> BTreeMap<TopicPartition, Vec<i32>> {
    partitions_of(c)
        .map(|(tp, p)| (tp, p.isr_nodes.iter().map(|b| b.0).collect()))
        .collect()
}

/// The throttle configs a set of moves needs (Kafka's `kafka-reassign-partitions
/// --throttle`): per topic, the moving partitions' current replicas as leaders to throttle
/// and their new replicas as followers to throttle; the rate on every broker involved.
#[derive(Debug, PartialEq, Eq)]
pub struct ThrottlePlan {
    /// topic → (leader.replication.throttled.replicas, follower.replication.throttled.replicas)
    pub topics: BTreeMap<String, (String, String)>,
    pub brokers: BTreeSet<i32>,
    pub rate: u64,
}

use crate::config::dynamic::{
    FOLLOWER_THROTTLED_RATE as FOLLOWER_RATE, FOLLOWER_THROTTLED_REPLICAS as FOLLOWER_REPLICAS,
    LEADER_THROTTLED_RATE as LEADER_RATE, LEADER_THROTTLED_REPLICAS as LEADER_REPLICAS,
};

impl ThrottlePlan {
    pub fn of(
        current: &BTreeMap<TopicPartition, Vec<i32>>,
        moves: &[(TopicPartition, Vec<i32>)],
        rate: u64,
    ) -> ThrottlePlan {
        let mut leaders: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut followers: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut brokers = BTreeSet::new();
        for ((topic, partition), target) in moves {
            let now = current
                .get(&(topic.clone(), *partition))
                .cloned()
                .unwrap_or_default();
            for b in &now {
                leaders
                    .entry(topic.clone())
                    .or_default()
                    .push(format!("{partition}:{b}"));
            }
            for b in target.iter().filter(|b| !now.contains(b)) {
                followers
                    .entry(topic.clone())
                    .or_default()
                    .push(format!("{partition}:{b}"));
            }
            brokers.extend(now.iter().chain(target));
        }
        let topics = leaders
            .keys()
            .chain(followers.keys())
            .map(|t| {
                let list = |m: &BTreeMap<String, Vec<String>>| {
                    m.get(t).map(|v| v.join(",")).unwrap_or_default()
                };
                (t.clone(), (list(&leaders), list(&followers)))
            })
            .collect();
        ThrottlePlan {
            topics,
            brokers,
            rate,
        }
    }

    async fn apply(&self, c: &mut ClusterClient) -> anyhow::Result<()> {
        for (topic, (leaders, followers)) in &self.topics {
            let mut changes = Vec::new();
            for (key, value) in [(LEADER_REPLICAS, leaders), (FOLLOWER_REPLICAS, followers)] {
                if !value.is_empty() {
                    changes.push(ConfigChange::Set(key.into(), value.clone()));
                }
            }
            admin::alter_configs(c, &ConfigResource::Topic(topic.clone()), &changes).await?;
        }
        let rate = self.rate.to_string();
        for &b in &self.brokers {
            let changes = [
                ConfigChange::Set(LEADER_RATE.into(), rate.clone()),
                ConfigChange::Set(FOLLOWER_RATE.into(), rate.clone()),
            ];
            admin::alter_configs(c, &ConfigResource::Broker(Some(b)), &changes).await?;
        }
        Ok(())
    }

    async fn remove(&self, c: &mut ClusterClient) -> anyhow::Result<()> {
        for topic in self.topics.keys() {
            let changes = [
                ConfigChange::Delete(LEADER_REPLICAS.into()),
                ConfigChange::Delete(FOLLOWER_REPLICAS.into()),
            ];
            admin::alter_configs(c, &ConfigResource::Topic(topic.clone()), &changes).await?;
        }
        for &b in &self.brokers {
            let changes = [
                ConfigChange::Delete(LEADER_RATE.into()),
                ConfigChange::Delete(FOLLOWER_RATE.into()),
            ];
            admin::alter_configs(c, &ConfigResource::Broker(Some(b)), &changes).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafkas_reassignment_json_is_read_and_duplicates_refused() {
        let moves = parse_reassignment_json(
            r#"{"version":1,"partitions":[{"topic":"t","partition":0,"replicas":[2,3,4],"log_dirs":["any","any","any"]},{"topic":"t","partition":1,"replicas":[4]}]}"#,
        )
        .unwrap();
        assert_eq!(
            moves,
            vec![(("t".into(), 0), vec![2, 3, 4]), (("t".into(), 1), vec![4])]
        );
        assert!(parse_reassignment_json(r#"{"partitions":[]}"#).is_err());
        assert!(parse_reassignment_json(
            r#"{"partitions":[{"topic":"t","partition":0,"replicas":[1]},{"topic":"t","partition":0,"replicas":[2]}]}"#
        )
        .is_err());
    }

    #[test]
    fn a_throttle_covers_current_replicas_as_leaders_and_new_ones_as_followers() {
        let current = BTreeMap::from([
            (("t".to_string(), 0), vec![1, 2, 3]),
            (("t".to_string(), 1), vec![2, 3, 1]),
            (("u".to_string(), 0), vec![1]),
        ]);
        let moves = vec![
            (("t".to_string(), 0), vec![2, 3, 4]),
            (("u".to_string(), 0), vec![1]),
        ];
        let plan = ThrottlePlan::of(&current, &moves, 1000);
        assert_eq!(
            plan.topics["t"],
            ("0:1,0:2,0:3".to_string(), "0:4".to_string())
        );
        // Nothing is added to u-0: only its leaders are throttled.
        assert_eq!(plan.topics["u"], ("0:1".to_string(), String::new()));
        assert_eq!(plan.brokers, BTreeSet::from([1, 2, 3, 4]));
    }
}
