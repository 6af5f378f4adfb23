//! The mini-zookeeper: a single-node coordination service speaking Apache ZooKeeper's
//! client wire protocol (jute over TCP), so `zkCli.sh`, kazoo and the `zookeeper-client`
//! crate work against it and a real ZooKeeper can replace it.
//!
//! Map of the module (read top to bottom):
//! - [`config`]: `config/zookeeper.toml`, defaults, validation.
//! - [`jute`]: the byte codec; [`proto`]: op codes, error codes, request/response records.
//! - [`path`]: znode path rules; [`acl`]: ACL validation/checks and `addauth`.
//! - [`tree`]: the DataTree (znodes, stats, children, ephemerals by session).
//! - [`txn`]: transactions and how they apply; [`prep`]: request → txn with
//!   ZooKeeper's checks and error codes.
//! - [`session`]: the session table and bucketed expiry; [`watch`]: the watch manager.
//! - [`server`]: the pure state machine ([`server::Core`]).
//! - [`txnlog`]: the CRC'd, group-committed log; [`snapshot`]: snapshot files.
//! - [`state`]: the thread that owns the core, the log and snapshots (recovery too).
//! - [`connection`]: one task per TCP connection; [`fourlw`]: four-letter words.
//!
//! Hostile input (no single client takes the server down, nothing acknowledged is lost),
//! every limit in [`config`] with ZooKeeper's name and default where it has one:
//! connections per address (`maxClientCnxns`) and in all, a handshake deadline
//! (`zookeeper.nio.sessionlessCnxnTimeout`), request frames and replies bounded by
//! `jute.maxbuffer`, txns bounded when prepared (so the log never holds a record recovery
//! would refuse), requests in flight and replies queued per connection (a client that
//! does not read is disconnected), watched paths and auth ids per connection, and watch
//! events delivered only to watchers that may READ the node (CVE-2024-23944). Recovery
//! streams the log and refuses to start on corruption; only a torn tail is cut.

pub mod acl;
pub mod config;
pub mod connection;
pub mod fourlw;
pub mod jute;
pub mod path;
pub mod prep;
pub mod proto;
pub mod server;
pub mod session;
pub mod snapshot;
pub mod state;
pub mod tree;
pub mod txn;
pub mod txnlog;
pub mod watch;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{info, warn};

use config::{Config, FileConfig};

#[derive(clap::Args, Debug, Default)]
pub struct ServerArgs {
    /// Path to the TOML config (see config/zookeeper.toml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override `client_port` (0 picks a free port; the bound address is logged).
    #[arg(long)]
    pub port: Option<u16>,
    /// Override `client_address`.
    #[arg(long)]
    pub bind: Option<String>,
    /// Override `data_dir`.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Override `tick_time_ms`.
    #[arg(long)]
    pub tick_time_ms: Option<u64>,
    /// Override `min_session_timeout_ms`.
    #[arg(long)]
    pub min_session_timeout_ms: Option<u64>,
    /// Override `max_session_timeout_ms`.
    #[arg(long)]
    pub max_session_timeout_ms: Option<u64>,
    /// Override `snapshot_interval_txns`.
    #[arg(long)]
    pub snapshot_interval_txns: Option<u64>,
    /// Override `four_letter_word_whitelist` (ZooKeeper's `4lw.commands.whitelist`:
    /// comma-separated, `*` for all; default `srvr`).
    #[arg(long = "4lw-commands-whitelist")]
    pub four_letter_word_whitelist: Option<String>,
}

impl ServerArgs {
    /// The effective config: the file (if any), then command-line overrides.
    pub fn resolve(&self) -> anyhow::Result<Config> {
        let mut file = match &self.config {
            Some(p) => FileConfig::load(p)?,
            None => FileConfig::default(),
        };
        if let Some(v) = self.port {
            file.client_port = Some(v);
        }
        if let Some(v) = &self.bind {
            file.client_address = Some(v.clone());
        }
        if let Some(v) = &self.data_dir {
            file.data_dir = Some(v.clone());
        }
        if let Some(v) = self.tick_time_ms {
            file.tick_time_ms = Some(v);
        }
        if let Some(v) = self.min_session_timeout_ms {
            file.min_session_timeout_ms = Some(v);
        }
        if let Some(v) = self.max_session_timeout_ms {
            file.max_session_timeout_ms = Some(v);
        }
        if let Some(v) = self.snapshot_interval_txns {
            file.snapshot_interval_txns = Some(v);
        }
        if let Some(v) = &self.four_letter_word_whitelist {
            file.four_letter_word_whitelist = Some(v.clone());
        }
        file.resolve()
    }
}

/// Connections per client IP (`maxClientCnxns`, 0 = unlimited, as in ZooKeeper).
#[derive(Clone)]
struct PerIp {
    max: usize,
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One connection's place in the per-IP count; given back on drop.
struct IpSlot {
    ip: IpAddr,
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl PerIp {
    fn new(max: usize) -> PerIp {
        PerIp {
            max,
            counts: Arc::default(),
        }
    }

    fn acquire(&self, ip: IpAddr) -> Option<IpSlot> {
        // A poisoned lock only means another task panicked mid-update of a counter.
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let n = counts.entry(ip).or_insert(0);
        if self.max > 0 && *n >= self.max {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            ip,
            counts: self.counts.clone(),
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = counts.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// `gregor zookeeper`: recover the data dir, then serve until killed.
pub fn run(args: ServerArgs) -> anyhow::Result<()> {
    let cfg = args.resolve()?;
    let recovered = state::recover(&cfg)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let listener = rt
        .block_on(TcpListener::bind(SocketAddr::new(
            cfg.client_address,
            cfg.client_port,
        )))
        .with_context(|| {
            format!(
                "binding client port {}:{}",
                cfg.client_address, cfg.client_port
            )
        })?;
    let local = listener.local_addr()?;
    let (tx, rx) = std::sync::mpsc::channel();
    let state_cfg = cfg.clone();
    let state = std::thread::Builder::new()
        .name("zk-state".into())
        .spawn(move || state::run(recovered, state_cfg, rx))
        .context("starting the state machine thread")?;
    info!(
        address = %local,
        data_dir = %cfg.data_dir.display(),
        "mini-zookeeper listening on {local}"
    );
    if let Some(addr) = cfg.metrics_listener.clone() {
        let tx = tx.clone();
        let scrape: crate::metrics::http::ScrapeFn = Arc::new(move || {
            let tx = tx.clone();
            Box::pin(crate::metrics::zookeeper::collect(tx))
        });
        let listener = rt.block_on(crate::metrics::http::bind("metrics_listener", &addr))?;
        let _guard = rt.enter();
        rt.spawn(crate::metrics::http::serve(
            listener,
            crate::metrics::http::metrics_router(scrape),
            "metrics",
        ));
    }
    let shared = Arc::new(connection::Shared {
        tx,
        max_request_bytes: cfg.jute_maxbuffer,
        max_outstanding: cfg.max_outstanding_requests,
        max_outstanding_bytes: cfg.max_outstanding_request_bytes,
        global_outstanding: Arc::new(Semaphore::new(cfg.global_outstanding_request_bytes)),
        max_outbound_bytes: cfg.connection_outbound_max_bytes,
        handshake_timeout: Duration::from_millis(cfg.sessionless_cnxn_timeout_ms),
        write_stall_timeout: Duration::from_millis(cfg.max_session_timeout_ms),
    });
    let limit = Arc::new(Semaphore::new(cfg.max_client_connections));
    let per_ip = PerIp::new(cfg.max_client_cnxns);
    let accept = async move {
        let mut next_conn: u64 = 1;
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            // ZooKeeper: "Too many connections from <ip> - max is <maxClientCnxns>".
            let Some(ip_slot) = per_ip.acquire(peer.ip()) else {
                warn!(%peer, max = per_ip.max, "too many connections from {} (maxClientCnxns); closing", peer.ip());
                drop(stream);
                continue;
            };
            let Ok(permit) = limit.clone().try_acquire_owned() else {
                warn!(%peer, "too many connections (max_client_connections); closing");
                drop(stream);
                continue;
            };
            let conn = next_conn;
            next_conn += 1;
            let shared = shared.clone();
            tokio::spawn(async move {
                connection::serve(stream, conn, peer, shared).await;
                drop(permit);
                drop(ip_slot);
            });
        }
    };
    // The state thread only returns on a fatal error (it outlives every sender otherwise).
    let watcher = async {
        loop {
            if state.is_finished() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    rt.block_on(async {
        tokio::select! {
            _ = accept => {}
            _ = watcher => {}
        }
    });
    match state.join() {
        Ok(r) => r,
        Err(_) => anyhow::bail!("the state machine thread panicked"),
    }
}
