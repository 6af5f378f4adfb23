//! Four-letter words: a new connection whose first four bytes are a known command gets a
//! text answer and is closed, as in ZooKeeper (`ruok`, `srvr`, `stat`, `mntr`, `isro`,
//! `cons`, `conf`, `envi`, `wchs`, `dirs`). The other commands ZooKeeper knows get its
//! "not in the whitelist" answer.

use super::config::Config;
use super::server::Core;

pub const VERSION: &str = "3.8.0-gregor, built for gregor";

/// Commands ZooKeeper recognises (`FourLetterCommands`).
const KNOWN: &[&str] = &[
    "conf", "cons", "crst", "dump", "envi", "gtmk", "ruok", "stmk", "srvr", "srst", "stat", "wchc",
    "wchp", "wchs", "mntr", "isro", "hash", "dirs",
];

/// The command, if the first four bytes of a connection are one.
pub fn command(first: [u8; 4]) -> Option<&'static str> {
    KNOWN.iter().copied().find(|c| c.as_bytes() == first)
}

/// Figures only the state machine loop has.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub uptime_ms: u64,
    pub latency_min: u64,
    pub latency_max: u64,
    pub latency_avg: f64,
    pub open_connections: usize,
    pub asking_peer: String,
}

fn server_stats(core: &Core, stats: &Stats) -> String {
    let c = core.counters();
    format!(
        "Latency min/avg/max: {}/{:.4}/{}\nReceived: {}\nSent: {}\nConnections: {}\nOutstanding: 0\nZxid: {:#x}\nMode: standalone\nNode count: {}\n",
        stats.latency_min,
        stats.latency_avg,
        stats.latency_max,
        c.received,
        c.sent,
        stats.open_connections,
        core.zxid(),
        core.tree().node_count()
    )
}

fn connections(core: &Core, stats: &Stats) -> String {
    let mut out = format!(" /{}[0](queued=0,recved=1,sent=0)\n", stats.asking_peer);
    for (addr, session, recv, sent, zxid) in core.connections() {
        match session {
            Some(sid) => out.push_str(&format!(
                " /{addr}[1](queued=0,recved={recv},sent={sent},sid={sid:#x},lzxid={zxid:#x})\n"
            )),
            None => out.push_str(&format!(
                " /{addr}[0](queued=0,recved={recv},sent={sent})\n"
            )),
        }
    }
    out
}

pub fn render(cmd: &str, core: &Core, stats: &Stats, cfg: &Config) -> String {
    match cmd {
        "ruok" => "imok".to_string(),
        "isro" => "rw".to_string(),
        "srvr" => format!("Zookeeper version: {VERSION}\n{}", server_stats(core, stats)),
        "stat" => format!(
            "Zookeeper version: {VERSION}\nClients:\n{}\n{}",
            connections(core, stats),
            server_stats(core, stats)
        ),
        "cons" => format!("{}\n", connections(core, stats)),
        "conf" => format!(
            "clientPort={}\nclientPortAddress={}\ndataDir={}\ndataLogDir={}\ntickTime={}\nmaxClientCnxns={}\nminSessionTimeout={}\nmaxSessionTimeout={}\nserverId=0\n",
            cfg.client_port,
            cfg.client_address,
            cfg.data_dir.display(),
            cfg.data_dir.display(),
            cfg.tick_time_ms,
            // ZooKeeper's maxClientCnxns is the per-address limit.
            cfg.max_client_cnxns,
            cfg.min_session_timeout_ms,
            cfg.max_session_timeout_ms
        ),
        "envi" => format!(
            "Environment:\nzookeeper.version={VERSION}\nos.name={}\nos.arch={}\n",
            std::env::consts::OS,
            std::env::consts::ARCH
        ),
        "wchs" => format!(
            "{} connections watching\nTotal watches:{}\n",
            core.connections().len(),
            core.watch_count()
        ),
        "dirs" => "datadir_size: 0\nlogdir_size: 0\n".to_string(),
        "mntr" => {
            let c = core.counters();
            let tree = core.tree();
            let rows: Vec<(&str, String)> = vec![
                ("version", VERSION.to_string()),
                ("avg_latency", format!("{:.4}", stats.latency_avg)),
                ("max_latency", stats.latency_max.to_string()),
                ("min_latency", stats.latency_min.to_string()),
                ("packets_received", c.received.to_string()),
                ("packets_sent", c.sent.to_string()),
                ("num_alive_connections", stats.open_connections.to_string()),
                ("outstanding_requests", "0".to_string()),
                ("server_state", "standalone".to_string()),
                ("znode_count", tree.node_count().to_string()),
                ("watch_count", core.watch_count().to_string()),
                ("ephemerals_count", tree.ephemeral_count().to_string()),
                ("approximate_data_size", tree.approximate_data_size().to_string()),
                ("global_sessions", core.sessions().len().to_string()),
                ("local_sessions", "0".to_string()),
                ("uptime", stats.uptime_ms.to_string()),
                ("last_zxid", format!("{:#x}", core.zxid())),
            ];
            rows.iter()
                .map(|(k, v)| format!("zk_{k}\t{v}\n"))
                .collect()
        }
        other => format!("{other} is not executed because it is not in the whitelist.\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_commands() {
        assert_eq!(command(*b"ruok"), Some("ruok"));
        assert_eq!(command(*b"mntr"), Some("mntr"));
        assert_eq!(command([0, 0, 0, 45]), None);
    }
}
