//! Four-letter words: a new connection whose first four bytes are a known command gets a
//! text answer and is closed, as in ZooKeeper (`ruok`, `srvr`, `stat`, `mntr`, `isro`,
//! `cons`, `conf`, `envi`, `wchs`, `dirs`). The other commands ZooKeeper knows get its
//! "not in the whitelist" answer.
//!
//! Most of them tell a stranger who is connected (`cons`, `stat` list every client
//! address and session id), how the server is set up (`conf`, `envi`) or what is
//! watched, so, as in ZooKeeper 3.5+ (`FourLetterCommands.isEnabled`), only those in
//! `4lw.commands.whitelist` answer; the default is `srvr` alone, `*` enables all, and
//! `srvr` is always enabled (ZooKeeper's scripts depend on it).

use super::config::Config;
use super::server::Core;

pub const VERSION: &str = "3.8.0-gregor, built for gregor";

/// Commands ZooKeeper recognises (`FourLetterCommands`).
const KNOWN: &[&str] = &[
    "conf", "cons", "crst", "dump", "envi", "gtmk", "ruok", "stmk", "srvr", "srst", "stat", "wchc",
    "wchp", "wchs", "mntr", "isro", "hash", "dirs",
];

/// The commands that answer (`4lw.commands.whitelist`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Whitelist {
    enabled: Vec<&'static str>,
}

impl Default for Whitelist {
    fn default() -> Self {
        Whitelist {
            enabled: vec!["srvr"],
        }
    }
}

impl Whitelist {
    /// A comma-separated list as ZooKeeper reads it (blanks ignored, `*` = all). An
    /// unknown command is an error rather than silently ignored, so a typo shows.
    pub fn parse(list: &str) -> Result<Whitelist, String> {
        let mut w = Whitelist::default();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if item == "*" {
                w.enabled = KNOWN.to_vec();
                return Ok(w);
            }
            let cmd = KNOWN
                .iter()
                .copied()
                .find(|c| *c == item)
                .ok_or_else(|| format!("unknown four-letter word {item:?}"))?;
            if !w.enabled.contains(&cmd) {
                w.enabled.push(cmd);
            }
        }
        w.enabled.sort_unstable();
        Ok(w)
    }

    pub fn allows(&self, cmd: &str) -> bool {
        self.enabled.contains(&cmd)
    }
}

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

/// ZooKeeper's answer to a command that is not enabled (`NopCommand`, println).
pub fn refusal(cmd: &str) -> String {
    format!("{cmd} is not executed because it is not in the whitelist.\n")
}

/// ZooKeeper's `mntr` keys (without the `zk_` prefix) and values.
pub fn mntr_rows(core: &Core, stats: &Stats) -> Vec<(&'static str, String)> {
    let c = core.counters();
    let tree = core.tree();
    vec![
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
        (
            "approximate_data_size",
            tree.approximate_data_size().to_string(),
        ),
        ("global_sessions", core.sessions().len().to_string()),
        ("local_sessions", "0".to_string()),
        ("uptime", stats.uptime_ms.to_string()),
        ("last_zxid", format!("{:#x}", core.zxid())),
    ]
}

pub fn render(cmd: &str, core: &Core, stats: &Stats, cfg: &Config) -> String {
    if !cfg.four_letter_words.allows(cmd) {
        return refusal(cmd);
    }
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
        "mntr" => mntr_rows(core, stats)
            .iter()
            .map(|(k, v)| format!("zk_{k}\t{v}\n"))
            .collect(),
        other => refusal(other),
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

    #[test]
    fn whitelist_defaults_to_srvr_and_parses_like_zookeeper() {
        let d = Whitelist::default();
        assert!(d.allows("srvr"));
        for cmd in [
            "ruok", "stat", "cons", "dump", "wchc", "wchp", "envi", "conf", "mntr",
        ] {
            assert!(!d.allows(cmd), "{cmd}");
        }
        let w = Whitelist::parse(" ruok, mntr ,,").unwrap();
        assert!(w.allows("ruok") && w.allows("mntr") && w.allows("srvr"));
        assert!(!w.allows("cons"));
        let all = Whitelist::parse("ruok,*").unwrap();
        assert!(KNOWN.iter().all(|c| all.allows(c)));
        assert_eq!(Whitelist::parse("").unwrap(), d);
        assert!(Whitelist::parse("ruok,sttat")
            .unwrap_err()
            .contains("sttat"));
        assert_eq!(
            refusal("cons"),
            "cons is not executed because it is not in the whitelist.\n"
        );
    }
}
