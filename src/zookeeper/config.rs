//! `config/zookeeper.toml`: the server's settings, with ZooKeeper's defaults, validated
//! with errors that name the offending key.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::Deserialize;

/// The TOML file as written (every key optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub client_port: Option<u16>,
    pub client_address: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub tick_time_ms: Option<u64>,
    pub min_session_timeout_ms: Option<u64>,
    pub max_session_timeout_ms: Option<u64>,
    pub snapshot_interval_txns: Option<u64>,
    pub snapshot_retain_count: Option<usize>,
    pub max_client_connections: Option<usize>,
    /// ZooKeeper: `maxClientCnxns` (also accepted under that name).
    #[serde(alias = "maxClientCnxns")]
    pub max_client_cnxns: Option<usize>,
    /// ZooKeeper: `jute.maxbuffer` (also accepted as `"jute.maxbuffer"`, a `[jute]`
    /// table with `maxbuffer`, or the older `max_request_bytes`).
    #[serde(alias = "jute.maxbuffer", alias = "max_request_bytes")]
    pub jute_maxbuffer: Option<usize>,
    pub jute: Option<JuteTable>,
    pub max_outstanding_requests: Option<usize>,
    pub max_reply_bytes: Option<usize>,
    pub max_outstanding_request_bytes: Option<usize>,
    pub global_outstanding_request_bytes: Option<usize>,
    pub connection_outbound_max_bytes: Option<usize>,
    /// ZooKeeper: `zookeeper.nio.sessionlessCnxnTimeout`.
    pub sessionless_cnxn_timeout_ms: Option<u64>,
    /// ZooKeeper: `zookeeper.snapSizeLimitInKb`.
    pub snap_size_limit_kb: Option<u64>,
    pub max_watch_bytes_per_connection: Option<usize>,
    pub max_auth_ids_per_connection: Option<usize>,
    pub enforce_acl: Option<bool>,
    pub container_check_interval_ms: Option<u64>,
    /// ZooKeeper: `4lw.commands.whitelist` (also accepted under that name).
    #[serde(alias = "4lw.commands.whitelist")]
    pub four_letter_word_whitelist: Option<String>,
    /// ZooKeeper: `zookeeper.DigestAuthenticationProvider.superDigest` (also accepted
    /// under that name).
    #[serde(alias = "zookeeper.DigestAuthenticationProvider.superDigest")]
    pub super_digest: Option<String>,
    /// `host:port` of the HTTP listener serving Prometheus metrics at /metrics (ZooKeeper:
    /// `metricsProvider.httpHost`/`httpPort`); unset: off.
    pub metrics_listener: Option<String>,
}

/// `jute.maxbuffer = N` written as a TOML dotted key.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JuteTable {
    pub maxbuffer: Option<usize>,
}

/// The largest `jute.maxbuffer` accepted: every txn (at most
/// [`Config::max_txn_bytes`]) must stay below what recovery reads
/// ([`super::txnlog::MAX_RECORD`]).
pub const MAX_JUTE_MAXBUFFER: usize = 32 * 1024 * 1024;

/// How much a reply may exceed `jute.maxbuffer`: a getData of a node written by a
/// maximal request carries the reply header and a stat on top of the data.
pub const REPLY_SLACK: usize = 1024;

/// The effective configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub client_port: u16,
    pub client_address: IpAddr,
    pub data_dir: PathBuf,
    pub tick_time_ms: u64,
    pub min_session_timeout_ms: u64,
    pub max_session_timeout_ms: u64,
    pub snapshot_interval_txns: u64,
    pub snapshot_retain_count: usize,
    /// All client connections (a server-wide cap on top of `max_client_cnxns`).
    pub max_client_connections: usize,
    /// Connections per client IP, 0 = unlimited (ZooKeeper: `maxClientCnxns`, 60).
    pub max_client_cnxns: usize,
    /// Largest request frame (ZooKeeper: `jute.maxbuffer`, 0xfffff): a bigger one closes
    /// the connection, as ZooKeeper's `NIOServerCnxn.readLength` does.
    pub jute_maxbuffer: usize,
    /// Largest reply frame (default `jute.maxbuffer` + [`REPLY_SLACK`]). ZooKeeper
    /// has no server-side bound: a client drops a packet over its own `jute.maxbuffer`
    /// (Kafka's ZooKeeper client uses 4 MiB), so raise this with the clients'.
    pub max_reply_bytes: usize,
    /// Requests in flight per connection (ZooKeeper: `globalOutstandingLimit`, 1000).
    pub max_outstanding_requests: usize,
    /// Bytes of requests in flight per connection (one request is always let through).
    pub max_outstanding_request_bytes: usize,
    /// Bytes of requests in flight over all connections (the role of ZooKeeper's
    /// server-wide `globalOutstandingLimit`, in bytes): past it connections wait to hand
    /// over more.
    pub global_outstanding_request_bytes: usize,
    /// Bytes of replies and notifications queued for one connection; a client that lets
    /// more pile up (it does not read) is disconnected.
    pub connection_outbound_max_bytes: usize,
    /// A connection must complete its handshake within this (ZooKeeper:
    /// `zookeeper.nio.sessionlessCnxnTimeout`, 10 s).
    pub sessionless_cnxn_timeout_ms: u64,
    /// A log file larger than this triggers a snapshot and a new log file, like
    /// `snapshot_interval_txns` (ZooKeeper: `zookeeper.snapSizeLimitInKb`, 4 GiB).
    pub snap_size_limit_kb: u64,
    /// Bytes of watched paths one connection may register (a watch on a path that does
    /// not exist costs memory too); past it the connection is closed. ZooKeeper has no
    /// such limit.
    pub max_watch_bytes_per_connection: usize,
    /// Distinct `addauth` identities one connection may hold; one more fails with
    /// AUTHFAILED and closes it, as a failed addauth does. ZooKeeper has no such limit.
    pub max_auth_ids_per_connection: usize,
    pub enforce_acl: bool,
    pub container_check_interval_ms: u64,
    /// The four-letter words that answer (ZooKeeper: `4lw.commands.whitelist`, `srvr`).
    pub four_letter_words: super::fourlw::Whitelist,
    /// A digest id (`super:base64(sha1(super:password))`, what ZooKeeper's
    /// `DigestAuthenticationProvider` prints): a connection that authenticates as it
    /// passes every ACL check (ZooKeeper: `zookeeper.DigestAuthenticationProvider.superDigest`).
    pub super_digest: Option<String>,
    pub metrics_listener: Option<String>,
}

impl Config {
    /// The largest txn record a request may produce (checked when it is prepared):
    /// twice `jute.maxbuffer` leaves room for expanded `auth` ACLs and sequential
    /// suffixes, and stays far below what recovery reads.
    pub fn max_txn_bytes(&self) -> usize {
        2 * self.jute_maxbuffer + REPLY_SLACK
    }
}

impl FileConfig {
    pub fn load(path: &Path) -> anyhow::Result<FileConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("in config {}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<FileConfig> {
        toml::from_str(text).map_err(|e| {
            anyhow::anyhow!(
                "{}",
                e.message().trim().to_string() + &span_hint(text, e.span())
            )
        })
    }

    /// Fills in defaults (ZooKeeper's where it has one) and validates.
    pub fn resolve(self) -> anyhow::Result<Config> {
        let tick = self.tick_time_ms.unwrap_or(2000);
        if tick == 0 {
            bail!("tick_time_ms must be positive");
        }
        let min = self.min_session_timeout_ms.unwrap_or(2 * tick);
        let max = self.max_session_timeout_ms.unwrap_or(20 * tick);
        if min == 0 {
            bail!("min_session_timeout_ms must be positive");
        }
        if min > max {
            bail!("min_session_timeout_ms ({min}) is larger than max_session_timeout_ms ({max})");
        }
        if max > i32::MAX as u64 {
            bail!("max_session_timeout_ms ({max}) is too large");
        }
        let address = self.client_address.unwrap_or_else(|| "127.0.0.1".into());
        let client_address: IpAddr = address
            .parse()
            .map_err(|_| anyhow::anyhow!("client_address {address:?} is not an IP address"))?;
        let positive = |name: &str, v: u64| -> anyhow::Result<u64> {
            if v == 0 {
                bail!("{name} must be positive");
            }
            Ok(v)
        };
        let jute_maxbuffer = match (self.jute_maxbuffer, self.jute.and_then(|j| j.maxbuffer)) {
            (Some(_), Some(_)) => bail!("jute.maxbuffer is given twice"),
            (a, b) => a.or(b).unwrap_or(0xfffff),
        };
        if jute_maxbuffer == 0 || jute_maxbuffer > MAX_JUTE_MAXBUFFER {
            bail!("jute.maxbuffer ({jute_maxbuffer}) must be between 1 and {MAX_JUTE_MAXBUFFER}");
        }
        let four_letter_words = match &self.four_letter_word_whitelist {
            Some(list) => super::fourlw::Whitelist::parse(list)
                .map_err(|e| anyhow::anyhow!("4lw.commands.whitelist: {e}"))?,
            None => super::fourlw::Whitelist::default(),
        };
        let super_digest = match self.super_digest {
            Some(d) if d.trim().is_empty() => None,
            Some(d) => {
                let d = d.trim().to_string();
                // ZooKeeper compares the whole id; the `user:` part must be there.
                match d.split_once(':') {
                    Some((user, hash)) if !user.is_empty() && !hash.is_empty() => Some(d),
                    _ => bail!(
                        "zookeeper.DigestAuthenticationProvider.superDigest must be user:base64(sha1(user:password))"
                    ),
                }
            }
            None => None,
        };
        let cfg = Config {
            client_port: self.client_port.unwrap_or(2181),
            client_address,
            data_dir: self
                .data_dir
                .unwrap_or_else(|| PathBuf::from("data/zookeeper")),
            tick_time_ms: tick,
            min_session_timeout_ms: min,
            max_session_timeout_ms: max,
            snapshot_interval_txns: positive(
                "snapshot_interval_txns",
                self.snapshot_interval_txns.unwrap_or(100_000),
            )?,
            snapshot_retain_count: self.snapshot_retain_count.unwrap_or(3),
            max_client_connections: positive(
                "max_client_connections",
                self.max_client_connections.unwrap_or(1024) as u64,
            )? as usize,
            max_client_cnxns: self.max_client_cnxns.unwrap_or(60),
            max_reply_bytes: self.max_reply_bytes.unwrap_or(jute_maxbuffer + REPLY_SLACK),
            jute_maxbuffer,
            max_outstanding_requests: positive(
                "max_outstanding_requests",
                self.max_outstanding_requests.unwrap_or(1000) as u64,
            )? as usize,
            max_outstanding_request_bytes: positive(
                "max_outstanding_request_bytes",
                self.max_outstanding_request_bytes
                    .unwrap_or(4 * jute_maxbuffer) as u64,
            )? as usize,
            global_outstanding_request_bytes: self
                .global_outstanding_request_bytes
                .unwrap_or((64 * 1024 * 1024).max(16 * jute_maxbuffer)),
            connection_outbound_max_bytes: self
                .connection_outbound_max_bytes
                .unwrap_or((16 * 1024 * 1024).max(4 * jute_maxbuffer)),
            sessionless_cnxn_timeout_ms: positive(
                "sessionless_cnxn_timeout_ms",
                self.sessionless_cnxn_timeout_ms.unwrap_or(10_000),
            )?,
            max_watch_bytes_per_connection: positive(
                "max_watch_bytes_per_connection",
                self.max_watch_bytes_per_connection
                    .unwrap_or(32 * 1024 * 1024) as u64,
            )? as usize,
            max_auth_ids_per_connection: positive(
                "max_auth_ids_per_connection",
                self.max_auth_ids_per_connection.unwrap_or(32) as u64,
            )? as usize,
            snap_size_limit_kb: positive(
                "snap_size_limit_kb",
                self.snap_size_limit_kb.unwrap_or(4 * 1024 * 1024),
            )?,
            enforce_acl: self.enforce_acl.unwrap_or(true),
            container_check_interval_ms: positive(
                "container_check_interval_ms",
                self.container_check_interval_ms.unwrap_or(60_000),
            )?,
            four_letter_words,
            super_digest,
            metrics_listener: self
                .metrics_listener
                .clone()
                .filter(|s| !s.trim().is_empty()),
        };
        if cfg.snapshot_retain_count < 2 {
            bail!(
                "snapshot_retain_count must be at least 2 (got {})",
                cfg.snapshot_retain_count
            );
        }
        if cfg.global_outstanding_request_bytes
            < cfg.max_outstanding_request_bytes.max(cfg.jute_maxbuffer)
        {
            bail!(
                "global_outstanding_request_bytes ({}) must be at least max_outstanding_request_bytes and jute.maxbuffer",
                cfg.global_outstanding_request_bytes
            );
        }
        if cfg.max_reply_bytes < 1024 || cfg.max_reply_bytes > i32::MAX as usize {
            bail!(
                "max_reply_bytes ({}) must be between 1024 and {}",
                cfg.max_reply_bytes,
                i32::MAX
            );
        }
        if cfg.connection_outbound_max_bytes < cfg.max_reply_bytes {
            bail!(
                "connection_outbound_max_bytes ({}) must hold at least one reply (max_reply_bytes = {})",
                cfg.connection_outbound_max_bytes,
                cfg.max_reply_bytes
            );
        }
        if cfg.data_dir.as_os_str().is_empty() {
            bail!("data_dir must not be empty");
        }
        Ok(cfg)
    }
}

fn span_hint(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    let Some(span) = span else {
        return String::new();
    };
    let start = span.start.min(text.len());
    let line_no = text[..start].matches('\n').count() + 1;
    let line = text.lines().nth(line_no - 1).unwrap_or_default().trim();
    format!(" (line {line_no}: `{line}`)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_zookeeper() {
        let c = FileConfig::parse("").unwrap().resolve().unwrap();
        assert_eq!(c.client_port, 2181);
        assert_eq!(c.tick_time_ms, 2000);
        assert_eq!(c.min_session_timeout_ms, 4000);
        assert_eq!(c.max_session_timeout_ms, 40000);
        assert_eq!(c.jute_maxbuffer, 0xfffff);
        assert_eq!(c.max_client_cnxns, 60);
        assert_eq!(c.sessionless_cnxn_timeout_ms, 10_000);
        assert_eq!(c.snap_size_limit_kb, 4 * 1024 * 1024);
        assert_eq!(c.max_reply_bytes, 0xfffff + REPLY_SLACK);
        assert!(c.max_txn_bytes() < crate::zookeeper::txnlog::MAX_RECORD);
        let c = FileConfig::parse("tick_time_ms = 500")
            .unwrap()
            .resolve()
            .unwrap();
        assert_eq!(
            (c.min_session_timeout_ms, c.max_session_timeout_ms),
            (1000, 10000)
        );
    }

    #[test]
    fn the_shipped_config_states_the_defaults() {
        let shipped = FileConfig::parse(include_str!("../../config/zookeeper.toml"))
            .unwrap()
            .resolve()
            .unwrap();
        let d = FileConfig::default().resolve().unwrap();
        assert_eq!(format!("{shipped:?}"), format!("{d:?}"));
    }

    #[test]
    fn zookeeper_spellings_are_accepted() {
        for text in [
            "jute_maxbuffer = 4096",
            "\"jute.maxbuffer\" = 4096",
            "jute.maxbuffer = 4096",
            "max_request_bytes = 4096",
        ] {
            let c = FileConfig::parse(text).unwrap().resolve().unwrap();
            assert_eq!(c.jute_maxbuffer, 4096, "{text}");
        }
        let c = FileConfig::parse("maxClientCnxns = 0")
            .unwrap()
            .resolve()
            .unwrap();
        assert_eq!(c.max_client_cnxns, 0);
        let e = FileConfig::parse("jute.maxbuffer = 4096\njute_maxbuffer = 4096")
            .unwrap()
            .resolve()
            .unwrap_err()
            .to_string();
        assert!(e.contains("jute.maxbuffer"), "{e}");
        let e = FileConfig::parse("jute_maxbuffer = 1000000000")
            .unwrap()
            .resolve()
            .unwrap_err()
            .to_string();
        assert!(e.contains("jute.maxbuffer"), "{e}");
        let c = FileConfig::parse(
            "\"4lw.commands.whitelist\" = \"ruok, mntr\"\n\"zookeeper.DigestAuthenticationProvider.superDigest\" = \"super:D/InIHSb7yEEbrWz8b9l71RjZJU=\"",
        )
        .unwrap()
        .resolve()
        .unwrap();
        assert!(c.four_letter_words.allows("mntr") && !c.four_letter_words.allows("cons"));
        assert_eq!(
            c.super_digest.as_deref(),
            Some("super:D/InIHSb7yEEbrWz8b9l71RjZJU=")
        );
        let e = FileConfig::parse("four_letter_word_whitelist = \"ruok,bogus\"")
            .unwrap()
            .resolve()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("4lw.commands.whitelist") && e.contains("bogus"),
            "{e}"
        );
        let e = FileConfig::parse("super_digest = \"nocolon\"")
            .unwrap()
            .resolve()
            .unwrap_err()
            .to_string();
        assert!(e.contains("superDigest"), "{e}");
        let e = FileConfig::parse("connection_outbound_max_bytes = 10")
            .unwrap()
            .resolve()
            .unwrap_err()
            .to_string();
        assert!(e.contains("connection_outbound_max_bytes"), "{e}");
    }

    #[test]
    fn errors_name_the_key() {
        let e = FileConfig::parse("client_prot = 1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("client_prot"), "{e}");
        let e = FileConfig::parse("client_port = \"x\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("client_port"), "{e}");
        let e = FileConfig::parse("min_session_timeout_ms = 9000\nmax_session_timeout_ms = 100")
            .unwrap()
            .resolve()
            .unwrap_err()
            .to_string();
        assert!(e.contains("min_session_timeout_ms"), "{e}");
        let e = FileConfig::parse("client_address = \"nope\"")
            .unwrap()
            .resolve()
            .unwrap_err()
            .to_string();
        assert!(e.contains("client_address"), "{e}");
        let e = FileConfig::parse("tick_time_ms = 0")
            .unwrap()
            .resolve()
            .unwrap_err()
            .to_string();
        assert!(e.contains("tick_time_ms"), "{e}");
    }
}
