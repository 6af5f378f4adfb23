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
    pub max_request_bytes: Option<usize>,
    pub max_outstanding_requests: Option<usize>,
    pub enforce_acl: Option<bool>,
    pub container_check_interval_ms: Option<u64>,
}

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
    pub max_client_connections: usize,
    pub max_request_bytes: usize,
    pub max_outstanding_requests: usize,
    pub enforce_acl: bool,
    pub container_check_interval_ms: u64,
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
            max_request_bytes: positive(
                "max_request_bytes",
                self.max_request_bytes.unwrap_or(0xfffff) as u64,
            )? as usize,
            max_outstanding_requests: positive(
                "max_outstanding_requests",
                self.max_outstanding_requests.unwrap_or(1000) as u64,
            )? as usize,
            enforce_acl: self.enforce_acl.unwrap_or(true),
            container_check_interval_ms: positive(
                "container_check_interval_ms",
                self.container_check_interval_ms.unwrap_or(60_000),
            )?,
        };
        if cfg.snapshot_retain_count < 2 {
            bail!(
                "snapshot_retain_count must be at least 2 (got {})",
                cfg.snapshot_retain_count
            );
        }
        if cfg.max_request_bytes > i32::MAX as usize {
            bail!("max_request_bytes is too large");
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
        assert_eq!(c.max_request_bytes, 0xfffff);
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
