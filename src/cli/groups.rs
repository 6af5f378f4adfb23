//! `gregor groups`: consumer groups of a cluster, like Kafka's `kafka-consumer-groups`.
//!
//! - `gregor groups list --bootstrap-server HOST:PORT [--state]`: every group of every
//!   broker (ListGroups on each);
//! - `gregor groups describe GROUP --bootstrap-server HOST:PORT`: the group's state and,
//!   per partition, the committed offset, the log end offset and the lag, with the
//!   member that owns the partition (decoded from the consumer protocol assignment):
//!   consumer id, host and client id.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{bail, Context};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::client::tools::{connect_any, coordinator};
use crate::client::KafkaConnection;
use crate::group::consumer_protocol;

#[derive(clap::Args, Debug)]
pub struct GroupsArgs {
    #[command(subcommand)]
    pub command: GroupsCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum GroupsCommand {
    /// List every consumer group.
    List {
        /// A broker to start from (host:port; comma-separated list accepted).
        #[arg(long = "bootstrap-server", default_value_t = super::default_bootstrap())]
        bootstrap_server: String,
        /// Also show each group's state.
        #[arg(long)]
        state: bool,
    },
    /// Describe a group: members, assigned partitions, committed offsets and lag.
    Describe {
        group: String,
        /// A broker to start from (host:port; comma-separated list accepted).
        #[arg(long = "bootstrap-server", default_value_t = super::default_bootstrap())]
        bootstrap_server: String,
    },
}

const TIMEOUT: Duration = Duration::from_secs(30);
const CLIENT_ID: &str = "gregor-groups";

pub fn run(args: GroupsArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let mut out = String::new();
        match args.command {
            GroupsCommand::List {
                bootstrap_server,
                state,
            } => list(&bootstrap_server, state, &mut out).await?,
            GroupsCommand::Describe {
                group,
                bootstrap_server,
            } => describe(&bootstrap_server, &group, &mut out).await?,
        }
        print!("{out}");
        Ok(())
    })
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn check(code: i16, what: &str) -> anyhow::Result<()> {
    match ResponseError::try_from_code(code) {
        None => Ok(()),
        Some(e) => bail!("{what}: {e:?} (error code {code})"),
    }
}

/// Brokers of the cluster: id → "host:port".
async fn brokers(conn: &mut KafkaConnection) -> anyhow::Result<BTreeMap<i32, String>> {
    let md = conn
        .send(
            &MetadataRequest::default().with_topics(Some(vec![])),
            12,
            TIMEOUT,
        )
        .await?;
    Ok(md
        .brokers
        .iter()
        .map(|b| (b.node_id.0, format!("{}:{}", b.host, b.port)))
        .collect())
}

pub async fn list(bootstrap: &str, with_state: bool, out: &mut String) -> anyhow::Result<()> {
    let mut conn = connect_any(bootstrap).await?;
    let mut groups: BTreeMap<String, String> = BTreeMap::new();
    for addr in brokers(&mut conn).await?.values() {
        let mut c = KafkaConnection::connect(addr, CLIENT_ID, Duration::from_secs(10))
            .await
            .with_context(|| format!("broker {addr}"))?;
        let r = c.send(&ListGroupsRequest::default(), 4, TIMEOUT).await?;
        check(r.error_code, &format!("ListGroups on {addr}"))?;
        for g in r.groups {
            groups.insert(g.group_id.0.to_string(), g.group_state.to_string());
        }
    }
    if with_state {
        let width = groups.keys().map(String::len).max().unwrap_or(0).max(5);
        out.push_str(&format!("{:width$}  STATE\n", "GROUP"));
        for (g, st) in &groups {
            out.push_str(&format!("{g:width$}  {st}\n"));
        }
    } else {
        for g in groups.keys() {
            out.push_str(g);
            out.push('\n');
        }
    }
    Ok(())
}

struct Owner {
    member_id: String,
    host: String,
    client_id: String,
}

/// Retriable coordinator errors: find the coordinator again and retry.
fn coordinator_moved(e: &anyhow::Error) -> bool {
    let text = e.to_string();
    [
        "NotCoordinator",
        "CoordinatorLoadInProgress",
        "CoordinatorNotAvailable",
    ]
    .iter()
    .any(|k| text.contains(k))
}

pub async fn describe(bootstrap: &str, group: &str, out: &mut String) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let mut text = String::new();
        match describe_once(bootstrap, group, &mut text).await {
            Ok(()) => {
                out.push_str(&text);
                return Ok(());
            }
            Err(e) if coordinator_moved(&e) && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

async fn describe_once(bootstrap: &str, group: &str, out: &mut String) -> anyhow::Result<()> {
    let mut conn = connect_any(bootstrap).await?;
    let addr = coordinator(&mut conn, group).await?;
    let mut coord = KafkaConnection::connect(&addr, CLIENT_ID, Duration::from_secs(10)).await?;

    let described = coord
        .send(
            &DescribeGroupsRequest::default().with_groups(vec![GroupId(s(group))]),
            5,
            TIMEOUT,
        )
        .await?;
    let d = described
        .groups
        .first()
        .context("DescribeGroups: no answer")?;
    check(d.error_code, "DescribeGroups")?;

    let fetched = coord
        .send(
            &OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(s(group)))
                .with_topics(None)]),
            8,
            TIMEOUT,
        )
        .await?;
    let fg = fetched.groups.first().context("OffsetFetch: no answer")?;
    check(fg.error_code, "OffsetFetch")?;

    // Partitions: those with a committed offset and those assigned to a member.
    let mut committed: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for t in &fg.topics {
        for p in &t.partitions {
            if p.committed_offset >= 0 {
                committed.insert(
                    (t.name.0.to_string(), p.partition_index),
                    p.committed_offset,
                );
            }
        }
    }
    let mut owners: BTreeMap<(String, i32), usize> = BTreeMap::new();
    let mut members: Vec<Owner> = Vec::new();
    let mut unassigned_members = Vec::new();
    let consumer = d.protocol_type.as_str() == consumer_protocol::PROTOCOL_TYPE;
    for m in &d.members {
        let idx = members.len();
        members.push(Owner {
            member_id: m.member_id.to_string(),
            host: m.client_host.to_string(),
            client_id: m.client_id.to_string(),
        });
        let assigned = if consumer {
            consumer_protocol::assigned_partitions(&m.member_assignment).unwrap_or_default()
        } else {
            Vec::new()
        };
        if assigned.iter().all(|(_, ps)| ps.is_empty()) {
            unassigned_members.push(idx);
        }
        for (topic, parts) in assigned {
            for p in parts {
                owners.insert((topic.clone(), p), idx);
            }
        }
    }
    let mut partitions: BTreeSet<(String, i32)> = committed.keys().cloned().collect();
    partitions.extend(owners.keys().cloned());

    let end_offsets = log_end_offsets(&mut conn, &partitions).await?;

    out.push_str(&format!(
        "Group '{group}': state {}, protocol type '{}', protocol '{}', {} member(s)\n\n",
        d.group_state,
        d.protocol_type,
        d.protocol_data,
        d.members.len()
    ));
    if d.members.is_empty() {
        out.push_str(&format!(
            "Consumer group '{group}' has no active members.\n\n"
        ));
    }
    let header = [
        "GROUP",
        "TOPIC",
        "PARTITION",
        "CURRENT-OFFSET",
        "LOG-END-OFFSET",
        "LAG",
        "CONSUMER-ID",
        "HOST",
        "CLIENT-ID",
    ];
    let mut rows: Vec<[String; 9]> = Vec::new();
    for tp in &partitions {
        let current = committed.get(tp).copied();
        let end = end_offsets.get(tp).copied();
        let lag = match (current, end) {
            (Some(c), Some(e)) => (e - c).max(0).to_string(),
            _ => "-".into(),
        };
        let owner = owners.get(tp).map(|i| &members[*i]);
        rows.push([
            group.to_string(),
            tp.0.clone(),
            tp.1.to_string(),
            current.map_or("-".into(), |c| c.to_string()),
            end.map_or("-".into(), |e| e.to_string()),
            lag,
            owner.map_or("-".into(), |o| o.member_id.clone()),
            owner.map_or("-".into(), |o| o.host.clone()),
            owner.map_or("-".into(), |o| o.client_id.clone()),
        ]);
    }
    for i in unassigned_members {
        let m = &members[i];
        rows.push([
            group.to_string(),
            "-".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            m.member_id.clone(),
            m.host.clone(),
            m.client_id.clone(),
        ]);
    }
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r.iter()) {
            *w = (*w).max(c.len());
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let mut l = cells
            .iter()
            .zip(widths.iter())
            .map(|(c, w)| format!("{c:w$}"))
            .collect::<Vec<_>>()
            .join("  ");
        l.truncate(l.trim_end().len());
        l.push('\n');
        l
    };
    out.push_str(&line(header.to_vec()));
    for r in &rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    Ok(())
}

/// Log end offsets (what a consumer can read: the high watermark) from the leaders.
async fn log_end_offsets(
    conn: &mut KafkaConnection,
    partitions: &BTreeSet<(String, i32)>,
) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
    let mut out = BTreeMap::new();
    if partitions.is_empty() {
        return Ok(out);
    }
    let topics: BTreeSet<&str> = partitions.iter().map(|(t, _)| t.as_str()).collect();
    let md = conn
        .send(
            &MetadataRequest::default().with_topics(Some(
                topics
                    .iter()
                    .map(|t| MetadataRequestTopic::default().with_name(Some(TopicName(s(t)))))
                    .collect(),
            )),
            12,
            TIMEOUT,
        )
        .await?;
    let addrs: BTreeMap<i32, String> = md
        .brokers
        .iter()
        .map(|b| (b.node_id.0, format!("{}:{}", b.host, b.port)))
        .collect();
    // leader → topic → partitions
    let mut by_leader: BTreeMap<i32, BTreeMap<String, Vec<i32>>> = BTreeMap::new();
    for t in &md.topics {
        let Some(name) = t.name.as_ref().map(|n| n.0.to_string()) else {
            continue;
        };
        for p in &t.partitions {
            if p.leader_id.0 >= 0 && partitions.contains(&(name.clone(), p.partition_index)) {
                by_leader
                    .entry(p.leader_id.0)
                    .or_default()
                    .entry(name.clone())
                    .or_default()
                    .push(p.partition_index);
            }
        }
    }
    for (leader, topics) in by_leader {
        let Some(addr) = addrs.get(&leader) else {
            continue;
        };
        let mut c = KafkaConnection::connect(addr, CLIENT_ID, Duration::from_secs(10)).await?;
        let req = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(
                topics
                    .iter()
                    .map(|(t, ps)| {
                        ListOffsetsTopic::default()
                            .with_name(TopicName(s(t)))
                            .with_partitions(
                                ps.iter()
                                    .map(|p| {
                                        ListOffsetsPartition::default()
                                            .with_partition_index(*p)
                                            .with_timestamp(-1)
                                            .with_current_leader_epoch(-1)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        let r = c.send(&req, 7, TIMEOUT).await?;
        for t in r.topics {
            for p in t.partitions {
                if p.error_code == 0 {
                    out.insert((t.name.0.to_string(), p.partition_index), p.offset);
                }
            }
        }
    }
    Ok(out)
}
