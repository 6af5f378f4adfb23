//! The broker process: start-up, the shared state every request handler reads, and
//! shutdown. Start-up order follows Kafka's: logs recovered, ZooKeeper session and
//! metadata, listener bound, then the broker registers itself and joins the controller
//! election.

pub mod connection;
pub mod limits;
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
use crate::controller;
use crate::coordination::producer_ids::ProducerIdManager;
use crate::coordination::{watcher, ClusterImage, ZkSession};
use crate::group::GroupCoordinator;
use crate::replica::ReplicaManager;
use crate::storage::LogManager;
use crate::tasks::Tasks;

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
    pub replicas: Arc<ReplicaManager>,
    pub producer_ids: Arc<ProducerIdManager>,
    /// The consumer group coordinator (groups of the `__consumer_offsets` partitions led here).
    pub groups: Arc<GroupCoordinator>,
    /// The transaction coordinator (ids of the `__transaction_state` partitions led here).
    pub txns: Arc<crate::txn::TransactionCoordinator>,
    /// `queued.max.request.bytes` as a pool of byte permits (`None`: unbounded, Kafka's -1).
    pub request_memory: Option<Arc<tokio::sync::Semaphore>>,
    /// The ACL authorizer (`authorizer.class.name`); `None`: every request is allowed.
    pub authorizer: Option<Arc<crate::security::acl::Authorizer>>,
    /// Acceptors and connections: stopped first at shutdown (connections finish the
    /// request they are serving).
    pub network: Tasks,
    /// Everything else the broker runs (replication, coordinators, the controller,
    /// watches, timers): stopped after the network, before the logs close.
    pub background: Tasks,
    /// Admin commands to this broker's controller role (elections, reassignments).
    pub controller: crate::controller::commands::ControllerHandle,
    /// Incremental fetch sessions (KIP-227) of consumers and followers fetching here.
    pub fetch_sessions: std::sync::Mutex<crate::fetch_session::cache::FetchSessionCache>,
}

impl Broker {
    /// The latest cluster metadata.
    pub fn image(&self) -> Arc<ClusterImage> {
        self.image.borrow().clone()
    }

    /// Waits until `topic`'s partitions have live leaders and this broker serves those it
    /// leads (or until the topic is gone, for `present == false`).
    pub async fn wait_for_topic(
        &self,
        topic: &str,
        present: bool,
        partitions: usize,
        timeout: Duration,
    ) -> bool {
        let me = self.config.broker_id;
        crate::admin::wait_for_topic(
            &self.image,
            topic,
            present,
            partitions,
            timeout,
            |p, leader| {
                leader != me
                    || self
                        .replicas
                        .partition(topic, p)
                        .is_some_and(|part| part.role() == crate::replica::Role::Leader)
            },
        )
        .await
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
        broker.shutdown().await;
        Ok(())
    })
}

/// Starts every part of the broker and returns once it serves requests.
pub async fn start(config: BrokerConfig) -> anyhow::Result<Arc<Broker>> {
    let config = Arc::new(config);
    let fd_limit = limits::raise_fd_limit();
    // Recover every log before serving anything (Kafka's LogManager start-up).
    let dirs = config.log_dirs.clone();
    let logs = tokio::task::spawn_blocking(move || LogManager::open(&dirs, crate::clock::now_ms()))
        .await?
        .context("cannot open log directories")?;
    for (tp, err) in logs.offline_partitions() {
        tracing::error!(partition = %tp, error = %err, "partition offline: its log could not be recovered");
    }
    logs.set_dedupe_buffer_bytes(config.log_cleaner_dedupe_buffer_size);
    let logs = Arc::new(logs);
    if config.zookeeper_set_acl && !config.zookeeper_connect.contains('/') {
        // ZooKeeper's root is world:anyone ALL: without a chroot (whose znode the brokers
        // create with their ACL) anyone may delete an empty top-level znode such as
        // /controller, whatever the znode's own ACL.
        tracing::warn!(connect = %config.zookeeper_connect, "zookeeper.set.acl=true without a chroot in zookeeper.connect: the top-level znodes stay deletable by anyone; use host:port/kafka");
    }
    let security = crate::coordination::ZkSecurity::load(
        config.zookeeper_set_acl,
        config.zookeeper_digest_credentials_file.as_deref(),
    )?;
    let session = ZkSession::start(
        config.zookeeper_connect.clone(),
        Duration::from_millis(config.zookeeper_session_timeout_ms),
        security,
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
    registration::ensure_cluster_layout(&first).await?;
    let root = Tasks::new();
    let (network, background) = (root.child(), root.child());
    let image = watcher::start(session.clone(), &background);
    let replicas = ReplicaManager::start(
        config.clone(),
        logs,
        session.clone(),
        image.clone(),
        &background,
    );
    let groups =
        GroupCoordinator::start(config.clone(), replicas.clone(), image.clone(), &background);
    let producer_ids = Arc::new(ProducerIdManager::new(config.broker_id, session.clone()));
    let txns = crate::txn::TransactionCoordinator::start(
        config.clone(),
        replicas.clone(),
        image.clone(),
        groups.clone(),
        producer_ids.clone(),
        &background,
    );

    let authorizer = start_authorizer(&config, &session, &first.client, &background).await?;

    // Every listener: its security (TLS keys, SASL users) first, so a bad key stops
    // start-up before anything is bound; then the sockets.
    let scram = crate::security::credentials::ScramCache::start(session.clone(), &background);
    let mut bound = Vec::new();
    for listener_config in &config.listeners {
        let security =
            crate::security::listener::ListenerSecurity::build(&config, listener_config, &scram)?;
        let listener = TcpListener::bind(listener_config.bind_addr())
            .await
            .with_context(|| format!("cannot listen on {}", listener_config.bind_addr()))?;
        bound.push((listener, Arc::new(security)));
    }
    let controller = controller::start(config.clone(), session.clone(), image.clone(), &background);
    let broker = Arc::new(Broker {
        config: config.clone(),
        session: session.clone(),
        image,
        replicas,
        producer_ids,
        groups,
        txns,
        request_memory: (config.queued_max_request_bytes > 0).then(|| {
            let bytes =
                (config.queued_max_request_bytes as usize).min(tokio::sync::Semaphore::MAX_PERMITS);
            Arc::new(tokio::sync::Semaphore::new(bytes))
        }),
        authorizer,
        network: network.clone(),
        background: background.clone(),
        controller,
        fetch_sessions: std::sync::Mutex::new(crate::fetch_session::cache::FetchSessionCache::new(
            config.max_incremental_fetch_session_cache_slots,
            crate::fetch_session::cache::DEFAULT_MAX_PARTITIONS,
        )),
    });
    let admission = server::Admission::new(&config, fd_limit);
    for (listener, security) in bound {
        network.spawn(server::accept_loop(
            broker.clone(),
            listener,
            security,
            admission.clone(),
        ));
    }
    crate::metrics::http::start_broker(&broker).await?;
    background.spawn(registration::keep_registered(
        session.clone(),
        config.clone(),
    ));
    let listeners: Vec<String> = config.listeners.iter().map(|l| l.uri()).collect();
    tracing::info!(
        broker = config.broker_id,
        listeners = %listeners.join(","),
        "broker started"
    );
    Ok(broker)
}

/// Builds the authorizer if one is configured: its cache is loaded before the broker
/// serves anything (as Kafka's `AclAuthorizer.configure`), then follows the change
/// notifications.
async fn start_authorizer(
    config: &BrokerConfig,
    session: &ZkSession,
    client: &zookeeper_client::Client,
    tasks: &Tasks,
) -> anyhow::Result<Option<Arc<crate::security::acl::Authorizer>>> {
    use crate::security::acl::{store, Authorizer};
    let Some(settings) = config.authorizer.clone() else {
        return Ok(None);
    };
    let authorizer = Arc::new(Authorizer::new(settings));
    let acls = store::load_all(client)
        .await
        .context("cannot load the ACLs from ZooKeeper")?;
    authorizer.replace_all(acls);
    store::start(session.clone(), authorizer.clone(), tasks);
    Ok(Some(authorizer))
}

impl Broker {
    /// Stops the broker in Kafka's order (`KafkaServer.shutdown`):
    /// 1. with `controlled.shutdown.enable`, announce the shutdown so the controller moves
    ///    leadership away (clients see no errors), waiting up to the request timeout;
    /// 2. stop accepting, and let every connection finish the request it is serving;
    /// 3. stop the background work: fetchers, timers, coordinators, the controller;
    /// 4. checkpoint and close the logs (nothing can write to them any more);
    /// 5. remove the registration so peers learn at once that this broker is gone, and
    ///    close the ZooKeeper session.
    pub async fn shutdown(&self) {
        let id = self.config.broker_id;
        tracing::info!(broker = id, "shutting down");
        if self.config.controlled_shutdown_enable {
            self.controlled_shutdown().await;
        }
        let grace = Duration::from_millis(self.config.request_timeout_ms);
        let left = self.network.stop(grace).await;
        if left > 0 {
            tracing::warn!(
                connections = left,
                "connections still busy after the grace period"
            );
        }
        let left = self.background.stop(grace).await;
        if left > 0 {
            tracing::warn!(
                tasks = left,
                "background tasks still running after the grace period"
            );
        }
        let replicas = self.replicas.clone();
        let _ = tokio::task::spawn_blocking(move || replicas.shutdown()).await;
        if let Some(handle) = self.session.try_current() {
            let _ = handle
                .client
                .delete(&crate::coordination::znodes::broker_path(id), None)
                .await;
            let _ = handle
                .client
                .delete(
                    &crate::coordination::znodes::controlled_shutdown_path(id),
                    None,
                )
                .await;
        }
        self.session.close();
        tracing::info!(broker = id, "shut down");
    }

    async fn controlled_shutdown(&self) {
        let id = self.config.broker_id;
        let Some(handle) = self.session.try_current() else {
            tracing::warn!("no ZooKeeper session: shutting down without moving leadership");
            return;
        };
        let path = crate::coordination::znodes::controlled_shutdown_path(id);
        let options = handle.create_options(zookeeper_client::CreateMode::Ephemeral, &path);
        match tokio::time::timeout(
            Duration::from_secs(5),
            handle.client.create(&path, &[], &options),
        )
        .await
        {
            Ok(Ok(_)) | Ok(Err(zookeeper_client::Error::NodeExists)) => {}
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "cannot announce controlled shutdown");
                return;
            }
            Err(_) => {
                tracing::warn!("ZooKeeper unreachable: shutting down without moving leadership");
                return;
            }
        }
        let mut rx = self.image.clone();
        let moved = watcher::wait_for(
            &mut rx,
            Duration::from_millis(self.config.request_timeout_ms),
            |img| {
                // Done when no partition with another live replica still has us as leader.
                img.topics.values().all(|t| {
                    t.partitions.values().all(|p| {
                        let leads = p.state.as_ref().is_some_and(|s| s.leader == id);
                        let others = p.replicas.iter().any(|r| *r != id && img.is_alive(*r));
                        !(leads && others)
                    })
                })
            },
        )
        .await;
        if moved {
            tracing::info!(broker = id, "controlled shutdown: leadership moved away");
        } else {
            tracing::warn!(
                broker = id,
                "controlled shutdown timed out; some partitions are still led here"
            );
        }
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers, run until killed.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
