//! The console's pages: what they show is read with ordinary Kafka requests.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::RecordBatchDecoder;

use super::actions::connect;
use super::html::{esc, message, render_bytes, table, url};
use super::Console;
use crate::client::cluster::ClusterClient;

type Page = Result<String, String>;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn sparklines() -> String {
    ["messages", "bytesin", "bytesout"]
        .iter()
        .zip(["Messages in", "Bytes in", "Bytes out"])
        .map(|(m, label)| {
            format!("<div>{label}<br><img class=\"spark\" id=\"spark-{m}\" src=\"/sparkline.svg?metric={m}\" data-src=\"/sparkline.svg?metric={m}\"></div>")
        })
        .collect::<Vec<_>>()
        .join("")
}

pub async fn overview(c: &Console) -> Page {
    let md = &connect(c).await?.metadata;
    let controller = md.controller_id.0;
    let brokers: Vec<Vec<String>> = md
        .brokers
        .iter()
        .map(|b| {
            let role = if b.node_id.0 == controller {
                "controller"
            } else {
                ""
            };
            vec![
                b.node_id.0.to_string(),
                esc(&format!("{}:{}", b.host, b.port)),
                b.rack.as_deref().map(esc).unwrap_or_default(),
                role.into(),
            ]
        })
        .collect();
    let mut urp = Vec::new();
    let mut partitions = 0;
    for t in &md.topics {
        let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
        for p in &t.partitions {
            partitions += 1;
            if p.isr_nodes.len() < p.replica_nodes.len() {
                urp.push(vec![
                    format!("<a href=\"/topics/{}\">{}</a>", url(&name), esc(&name)),
                    p.partition_index.to_string(),
                    ids(&p.replica_nodes),
                    ids(&p.isr_nodes),
                ]);
            }
        }
    }
    Ok(format!(
        "<p>Cluster id <code>{}</code>; controller: broker <b id=\"controller\">{controller}</b>; {} topics, {partitions} partitions.</p>\
         <h2>Throughput</h2><div style=\"display:flex;gap:2em\">{}</div><h2>Brokers</h2>{}<h2>Under-replicated partitions (<span id=\"urp-count\">{}</span>)</h2>{}",
        esc(md.cluster_id.as_deref().unwrap_or("")),
        md.topics.len(),
        sparklines(),
        table("brokers", &["id", "address", "rack", "role"], &brokers),
        urp.len(),
        table("urp", &["topic", "partition", "replicas", "ISR"], &urp),
    ))
}

fn ids(v: &[BrokerId]) -> String {
    v.iter()
        .map(|b| b.0.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

pub async fn topics(c: &Console, result: Page) -> Page {
    let md = &connect(c).await?.metadata;
    let mut rows: Vec<Vec<String>> = md
        .topics
        .iter()
        .map(|t| {
            let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
            let urp = t
                .partitions
                .iter()
                .filter(|p| p.isr_nodes.len() < p.replica_nodes.len())
                .count();
            vec![
                format!("<a href=\"/topics/{}\">{}</a>", url(&name), esc(&name)),
                t.partitions.len().to_string(),
                t.partitions
                    .first()
                    .map_or(0, |p| p.replica_nodes.len())
                    .to_string(),
                urp.to_string(),
            ]
        })
        .collect();
    rows.sort();
    Ok(format!(
        "{}<h2>Create a topic</h2><form method=\"post\" action=\"/topics\" id=\"create-topic\">\
         name <input name=\"name\" id=\"new-name\"> partitions <input name=\"partitions\" id=\"new-partitions\" size=\"4\">\
         replication factor <input name=\"replication_factor\" id=\"new-rf\" size=\"4\"> configs (k=v, comma separated) <input name=\"configs\" id=\"new-configs\">\
         <button type=\"submit\" id=\"create\">Create</button></form>{}",
        message(&result),
        table("topics", &["topic", "partitions", "replication factor", "under-replicated"], &rows),
    ))
}

async fn offsets(client: &mut ClusterClient, topic: &str, partition: i32) -> (String, String) {
    let mut out = Vec::new();
    for ts in [-2, -1] {
        let o = crate::client::tools::list_offset(client, topic, partition, ts).await;
        out.push(o.map(|o| o.to_string()).unwrap_or_else(|_| "?".into()));
    }
    (out[0].clone(), out[1].clone())
}

/// Replica sizes of `topic` by (broker, partition), from DescribeLogDirs on each broker.
async fn sizes(client: &mut ClusterClient, topic: &str) -> BTreeMap<(i32, i32), i64> {
    let mut out = BTreeMap::new();
    let brokers: Vec<i32> = client
        .metadata
        .brokers
        .iter()
        .map(|b| b.node_id.0)
        .collect();
    for b in brokers {
        let req = DescribeLogDirsRequest::default().with_topics(None);
        if let Ok(r) = client.send_to(b, &req, 4).await {
            for d in r.results {
                for t in d.topics.iter().filter(|t| t.name.0.as_str() == topic) {
                    for p in &t.partitions {
                        out.insert((b, p.partition_index), p.partition_size);
                    }
                }
            }
        }
    }
    out
}

pub async fn topic(c: &Console, name: &str, result: Page) -> Page {
    let mut client = connect(c).await?;
    let t = client
        .metadata
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == name))
        .cloned()
        .filter(|t| t.error_code == 0)
        .ok_or_else(|| format!("Topic {name} does not exist."))?;
    let sizes = sizes(&mut client, name).await;
    let mut rows = Vec::new();
    for p in &t.partitions {
        let (start, end) = offsets(&mut client, name, p.partition_index).await;
        let size = sizes
            .get(&(p.leader_id.0, p.partition_index))
            .map_or("?".into(), |s| s.to_string());
        rows.push(vec![
            format!(
                "<a href=\"/topics/{}/messages?partition={}\">{}</a>",
                url(name),
                p.partition_index,
                p.partition_index
            ),
            p.leader_id.0.to_string(),
            ids(&p.replica_nodes),
            format!("<span class=\"isr\">{}</span>", ids(&p.isr_nodes)),
            p.leader_epoch.to_string(),
            start,
            end,
            size,
        ]);
    }
    let req =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s(name))
            .with_configuration_keys(None)]);
    let configs = client.send_any(&req, 4).await.map_err(err)?;
    let config_rows: Vec<Vec<String>> = configs
        .results
        .iter()
        .flat_map(|r| &r.configs)
        .map(|e| {
            let source = if e.config_source == 1 {
                "topic"
            } else {
                "default"
            };
            vec![
                esc(&e.name),
                e.value.as_deref().map(esc).unwrap_or_default(),
                source.into(),
            ]
        })
        .collect();
    Ok(format!(
        "{}<h2>Partitions</h2>{}<h2>Configs</h2><form method=\"post\" action=\"/topics/{u}/config\" id=\"alter-config\">\
         key <input name=\"key\" id=\"config-key\"> value <input name=\"value\" id=\"config-value\"> <button type=\"submit\" id=\"set-config\">Set</button> (empty value: back to the default)</form>{}\
         <form method=\"post\" action=\"/topics/{u}/delete\" id=\"delete-topic\"><button type=\"submit\" id=\"delete\">Delete topic {n}</button></form>",
        message(&result),
        table("partitions", &["partition", "leader", "replicas", "ISR", "leader epoch", "log start", "log end", "size (leader)"], &rows),
        table("configs", &["config", "value", "source"], &config_rows),
        u = url(name),
        n = esc(name),
    ))
}

#[derive(serde::Deserialize, Default)]
pub struct Browse {
    #[serde(default)]
    pub partition: Option<String>,
    #[serde(default)]
    pub offset: Option<String>,
    /// Milliseconds since the epoch: start at the first record at or after it.
    #[serde(default)]
    pub timestamp: Option<String>,
    #[serde(default)]
    pub format: Option<String>,
    #[serde(default)]
    pub limit: Option<String>,
}

fn field(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

pub async fn messages(c: &Console, name: &str, q: &Browse) -> Page {
    let mut client = connect(c).await?;
    let partition: i32 = field(&q.partition)
        .unwrap_or("0")
        .parse()
        .map_err(|_| "partition: not a number")?;
    let limit: usize = field(&q.limit)
        .unwrap_or("50")
        .parse::<usize>()
        .map_err(|_| "limit: not a number")?
        .clamp(1, 500);
    let format = field(&q.format).unwrap_or("text");
    let start = match (field(&q.offset), field(&q.timestamp)) {
        (Some(o), _) => o.parse::<i64>().map_err(|_| "offset: not a number")?,
        (None, Some(ts)) => {
            let ts = ts
                .parse::<i64>()
                .map_err(|_| "timestamp: not a number (ms since the epoch)")?;
            crate::client::tools::list_offset(&mut client, name, partition, ts)
                .await
                .map_err(err)?
        }
        (None, None) => crate::client::tools::list_offset(&mut client, name, partition, -2)
            .await
            .map_err(err)?,
    };
    // ListOffsets answers -1 for a timestamp after every record: nothing to show.
    let fetch_from = (start >= 0).then_some(start);
    let leader = client
        .leader(name, partition)
        .ok_or_else(|| format!("{name}-{partition} has no leader"))?;
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(100)
        .with_min_bytes(1)
        .with_max_bytes(4 * 1024 * 1024)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(s(name)))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(start.max(0))
                .with_current_leader_epoch(-1)
                .with_last_fetched_epoch(-1)
                .with_partition_max_bytes(1024 * 1024)])]);
    let mut rows = Vec::new();
    let responses = match fetch_from {
        Some(_) => {
            client
                .send_to(leader, &req, 12)
                .await
                .map_err(err)?
                .responses
        }
        None => Vec::new(),
    };
    for t in responses {
        for p in t.partitions {
            crate::client::tools::check(p.error_code, "fetch", None).map_err(err)?;
            let mut records = p.records.unwrap_or_default();
            let sets = RecordBatchDecoder::decode_all(&mut records).map_err(err)?;
            for r in sets
                .into_iter()
                .flat_map(|set| set.records)
                .filter(|r| r.offset >= start)
                .take(limit)
            {
                let headers: Vec<String> = r
                    .headers
                    .iter()
                    .map(|(k, v)| {
                        format!("{}={}", esc(k.as_str()), render_bytes(v.as_deref(), "text"))
                    })
                    .collect();
                rows.push(vec![
                    r.offset.to_string(),
                    r.timestamp.to_string(),
                    render_bytes(
                        r.key.as_deref(),
                        if format == "json" { "text" } else { format },
                    ),
                    render_bytes(r.value.as_deref(), format),
                    headers.join("<br>"),
                ]);
            }
        }
    }
    let sel = |f: &str| if f == format { " selected" } else { "" };
    Ok(format!(
        "<form method=\"get\" id=\"browse\">partition <input name=\"partition\" id=\"browse-partition\" size=\"4\" value=\"{partition}\">\
         offset <input name=\"offset\" id=\"browse-offset\" size=\"8\"> or timestamp (ms) <input name=\"timestamp\" id=\"browse-timestamp\" size=\"14\">\
         as <select name=\"format\" id=\"browse-format\"><option{}>text</option><option{}>json</option><option{}>hex</option></select>\
         limit <input name=\"limit\" size=\"4\" value=\"{limit}\"> <button type=\"submit\" id=\"browse-go\">Show</button></form>\
         <p>{} record(s) of <a href=\"/topics/{}\">{}</a>-{partition} from offset {start}.</p>{}",
        sel("text"),
        sel("json"),
        sel("hex"),
        rows.len(),
        url(name),
        esc(name),
        table("messages", &["offset", "timestamp", "key", "value", "headers"], &rows),
    ))
}

pub async fn groups(c: &Console) -> Page {
    let mut text = String::new();
    crate::cli::groups::list(&c.bootstrap, true, &mut text)
        .await
        .map_err(err)?;
    let rows: Vec<Vec<String>> = text
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(char::is_whitespace))
        .map(|(g, state)| {
            vec![
                format!("<a href=\"/groups/{}\">{}</a>", url(g), esc(g)),
                esc(state.trim()),
            ]
        })
        .collect();
    Ok(table("groups", &["group", "state"], &rows))
}

pub async fn group(c: &Console, id: &str, result: Page) -> Page {
    let mut text = String::new();
    crate::cli::groups::describe(&c.bootstrap, id, &mut text)
        .await
        .map_err(err)?;
    Ok(format!(
        "{}<pre id=\"group-describe\">{}</pre><h2>Reset offsets (inactive group only)</h2>\
         <form method=\"post\" action=\"/groups/{}/reset\" id=\"reset-offsets\">topic <input name=\"topic\" id=\"reset-topic\">\
         partition <input name=\"partition\" id=\"reset-partition\" size=\"4\"> offset <input name=\"offset\" id=\"reset-offset\" size=\"8\">\
         <button type=\"submit\" id=\"reset\">Reset</button></form>",
        message(&result),
        esc(&text),
        url(id),
    ))
}
