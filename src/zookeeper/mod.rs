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

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
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
        file.resolve()
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
    let shared = Arc::new(connection::Shared {
        tx,
        max_request_bytes: cfg.max_request_bytes,
        max_outstanding: cfg.max_outstanding_requests,
        handshake_timeout: Duration::from_millis(cfg.max_session_timeout_ms.max(10_000)),
    });
    let limit = Arc::new(Semaphore::new(cfg.max_client_connections));
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
