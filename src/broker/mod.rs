//! The broker process: start-up, the shared state every request handler reads, and
//! shutdown. Start-up order follows Kafka's: logs recovered, ZooKeeper session and
//! metadata, listener bound, then the broker registers itself and joins the controller
//! election.

pub mod connection;
pub mod registration;
pub mod server;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::{keys::flatten_toml, BrokerConfig};
use crate::controller::{self, ControllerHandle};
use crate::coordination::{watcher, ClusterImage, ZkSession};

#[derive(clap::Args, Debug)]
pub struct BrokerArgs {
    /// Path to the broker's TOML config (Kafka key names, e.g. config/broker-1.toml).
    #[arg(long)]
    pub config: PathBuf,
    /// Override a config key: `--override key=value` (repeatable), as kafka-server-start.
    #[arg(long = "override", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
}

/// State shared by every connection and background task of one broker.
pub struct Broker {
    pub config: Arc<BrokerConfig>,
    pub session: ZkSession,
    pub image: watch::Receiver<Arc<ClusterImage>>,
    pub controller: ControllerHandle,
}

impl Broker {
    /// The latest cluster metadata.
    pub fn image(&self) -> Arc<ClusterImage> {
        self.image.borrow().clone()
    }

    pub fn admin(&self) -> crate::admin::Admin<'_> {
        crate::admin::Admin {
            config: &self.config,
            session: &self.session,
            image: &self.image,
        }
    }
}

pub fn load_config(args: &BrokerArgs) -> anyhow::Result<BrokerConfig> {
    let text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("cannot read config file {}", args.config.display()))?;
    let mut values: BTreeMap<String, String> = flatten_toml(&text)
        .map_err(|e| anyhow::anyhow!("config file {}: {e}", args.config.display()))?;
    for o in &args.overrides {
        let (k, v) = o
            .split_once('=')
            .with_context(|| format!("--override `{o}`: expected KEY=VALUE"))?;
        values.insert(k.trim().to_string(), v.trim().to_string());
    }
    Ok(BrokerConfig::from_values(values)?)
}

/// `gregor broker`: runs until SIGINT/SIGTERM.
pub fn run(args: BrokerArgs) -> anyhow::Result<()> {
    let config = load_config(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("gregor-broker")
        .build()?;
    runtime.block_on(async move {
        let broker = start(config).await?;
        wait_for_signal().await;
        tracing::info!(broker = broker.config.broker_id, "shutting down");
        Ok(())
    })
}

/// Starts every part of the broker and returns once it serves requests.
pub async fn start(config: BrokerConfig) -> anyhow::Result<Arc<Broker>> {
    let config = Arc::new(config);
    let session = ZkSession::start(
        config.zookeeper_connect.clone(),
        Duration::from_millis(config.zookeeper_session_timeout_ms),
    );
    let first = tokio::time::timeout(
        Duration::from_millis(config.zookeeper_connection_timeout_ms),
        session.current(),
    )
    .await
    .with_context(|| {
        format!(
            "timed out connecting to ZooKeeper at {} (zookeeper.connection.timeout.ms)",
            config.zookeeper_connect
        )
    })?;
    registration::ensure_cluster_layout(&first.client).await?;
    let image = watcher::start(session.clone());

    let listener_config = &config.listeners[0];
    let listener = TcpListener::bind(listener_config.bind_addr())
        .await
        .with_context(|| format!("cannot listen on {}", listener_config.bind_addr()))?;
    let controller = controller::start(config.clone(), session.clone(), image.clone());
    let broker = Arc::new(Broker {
        config: config.clone(),
        session: session.clone(),
        image,
        controller,
    });
    tokio::spawn(server::accept_loop(broker.clone(), listener));
    tokio::spawn(registration::keep_registered(
        session.clone(),
        config.clone(),
    ));
    tracing::info!(
        broker = config.broker_id,
        listener = %listener_config.bind_addr(),
        "broker started"
    );
    Ok(broker)
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        // Without signal handlers, run until killed.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
