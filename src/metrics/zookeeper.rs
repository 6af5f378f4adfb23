//! The mini-zookeeper's scrape: ZooKeeper's `mntr` keys under the names ZooKeeper's own
//! Prometheus provider uses (`znode_count`, `watch_count`, `outstanding_requests`,
//! `avg_latency`, ...), plus request latency and fsync time histograms (ZooKeeper's
//! `fsynctime` summary).

use tokio::sync::oneshot;

use super::histogram::Histogram;
use super::text::{Family, Scrape, Value};
use crate::zookeeper::state::Msg;

/// Time of each group-commit fsync of the transaction log.
pub static FSYNC: Histogram = Histogram::new();
/// Time from a request batch's start to its replies, one observation per request.
pub static LATENCY: Histogram = Histogram::new();

fn help(key: &str) -> &'static str {
    match key {
        "znode_count" => "Znodes in the tree (mntr zk_znode_count)",
        "watch_count" => "Watches set (mntr zk_watch_count)",
        "outstanding_requests" => "Requests queued and not answered (mntr zk_outstanding_requests)",
        "num_alive_connections" => "Open client connections (mntr zk_num_alive_connections)",
        "ephemerals_count" => "Ephemeral znodes (mntr zk_ephemerals_count)",
        "approximate_data_size" => "Bytes of znode data and paths (mntr zk_approximate_data_size)",
        "global_sessions" => "Open sessions (mntr zk_global_sessions)",
        "avg_latency" => "Mean request latency in ms (mntr zk_avg_latency)",
        "max_latency" => "Largest request latency in ms (mntr zk_max_latency)",
        "min_latency" => "Smallest request latency in ms (mntr zk_min_latency)",
        "packets_received" => "Packets received (mntr zk_packets_received)",
        "packets_sent" => "Packets sent (mntr zk_packets_sent)",
        "uptime" => "Milliseconds since start (mntr zk_uptime)",
        "local_sessions" => {
            "Local sessions: always 0, every session is global (mntr zk_local_sessions)"
        }
        _ => "A ZooKeeper mntr value of the same name (mntr zk_<name>)",
    }
}

/// Turns `mntr` rows into families: numeric keys as gauges (counters for packets),
/// the others (version, server_state, last_zxid) as labels of an info gauge.
pub fn families(rows: &[(&'static str, String)]) -> Scrape {
    let mut scrape = Scrape::default();
    let mut info = Vec::new();
    for (key, value) in rows {
        match value.parse::<f64>() {
            Ok(v) if key.starts_with("packets_") => scrape
                .push(Family::counter(key, help(key)).with(Vec::new(), Value::Counter(v as u64))),
            Ok(v) => scrape.push(Family::gauge(key, help(key)).with(Vec::new(), Value::Gauge(v))),
            Err(_) => info.push((*key, value.clone())),
        }
    }
    scrape.push(
        Family::gauge(
            "zookeeper_server",
            "1, with the server's version, state and last zxid as labels",
        )
        .with(info, Value::Gauge(1.0)),
    );
    let (sum, count, buckets) = FSYNC.snapshot();
    scrape.push(
        Family::histogram(
            "fsynctime",
            "Transaction log fsync time in ms (ZooKeeper fsynctime)",
        )
        .with(Vec::new(), Value::Histogram(sum, count, buckets)),
    );
    let (sum, count, buckets) = LATENCY.snapshot();
    scrape.push(
        Family::histogram(
            "requests_latency_ms",
            "Request latency in ms (one observation per request, all request types together)",
        )
        .with(Vec::new(), Value::Histogram(sum, count, buckets)),
    );
    scrape
}

/// One scrape: asks the state machine thread for its `mntr` rows.
pub async fn collect(tx: std::sync::mpsc::Sender<Msg>) -> String {
    let (reply, answer) = oneshot::channel();
    if tx.send(Msg::Mntr { reply }).is_err() {
        return String::new();
    }
    match answer.await {
        Ok(rows) => families(&rows).encode(),
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mntr_rows_become_families() {
        let rows = vec![
            ("version", "3.8.4".to_string()),
            ("znode_count", "12".to_string()),
            ("packets_sent", "7".to_string()),
        ];
        let text = families(&rows).encode();
        assert!(text.contains("znode_count 12"), "{text}");
        assert!(text.contains("packets_sent_total 7"), "{text}");
        assert!(
            text.contains("zookeeper_server{version=\"3.8.4\"} 1"),
            "{text}"
        );
        assert!(text.contains("fsynctime_count"), "{text}");
        assert!(text.trim_end().ends_with("# EOF"));
    }
}
