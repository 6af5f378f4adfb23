//! The broker's ZooKeeper session. One supervisor task keeps a session open: it connects
//! (retrying while ZooKeeper is unreachable), publishes the client, and when the session
//! expires it publishes `None`, connects again and publishes the new client with a higher
//! generation. Everything built on the session (broker registration, watches, the
//! controller role) reacts to the generation change by starting over.

use std::time::Duration;

use tokio::sync::watch;
use zookeeper_client as zk;

/// A live session's client, tagged with a generation that increases per new session.
#[derive(Clone)]
pub struct SessionHandle {
    pub generation: u64,
    pub client: zk::Client,
}

#[derive(Clone)]
pub struct ZkSession {
    current: watch::Receiver<Option<SessionHandle>>,
}

impl ZkSession {
    /// Starts the supervisor. Returns at once; `current()` waits for the first session.
    ///
    /// The session (its socket, pings and timers) runs on a runtime of its own, on a
    /// thread of its own, like the ZooKeeper client threads of a Kafka broker: however
    /// busy or stuck the request workers are, pings keep going and the broker is not
    /// declared dead. Requests from any runtime reach it through the client's channels.
    pub fn start(connect: String, session_timeout: Duration) -> ZkSession {
        let (tx, rx) = watch::channel(None);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        match runtime {
            Ok(runtime) => {
                let spawned = std::thread::Builder::new()
                    .name("gregor-zk-session".into())
                    .spawn(move || runtime.block_on(supervise(connect, session_timeout, tx)));
                if let Err(err) = spawned {
                    // No session will come: start-up then fails on
                    // zookeeper.connection.timeout.ms with a clear message.
                    tracing::error!(error = %err, "cannot start the ZooKeeper session thread");
                }
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot build the ZooKeeper session runtime");
                tokio::spawn(supervise(connect, session_timeout, tx));
            }
        }
        ZkSession { current: rx }
    }

    /// The live session, waiting while there is none.
    pub async fn current(&self) -> SessionHandle {
        let mut rx = self.current.clone();
        loop {
            if let Some(handle) = rx.borrow_and_update().clone() {
                return handle;
            }
            if rx.changed().await.is_err() {
                // The supervisor never exits while the runtime lives; park forever.
                std::future::pending::<()>().await;
            }
        }
    }

    /// The live session if there is one right now.
    pub fn try_current(&self) -> Option<SessionHandle> {
        self.current.borrow().clone()
    }

    /// A receiver that changes whenever a session ends or begins.
    pub fn subscribe(&self) -> watch::Receiver<Option<SessionHandle>> {
        self.current.clone()
    }
}

async fn supervise(
    connect: String,
    session_timeout: Duration,
    tx: watch::Sender<Option<SessionHandle>>,
) {
    let mut generation = 0u64;
    let mut backoff = Duration::from_millis(100);
    loop {
        let connector = zk::Client::connector().with_session_timeout(session_timeout);
        let client = match ensure_chroot_and_connect(connector, &connect).await {
            Ok(client) => client,
            Err(err) => {
                tracing::warn!(%connect, error = %err, "cannot reach ZooKeeper; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        generation += 1;
        tracing::info!(
            session_id = %format!("{:#x}", client.session_id().0),
            generation,
            "ZooKeeper session established"
        );
        let mut states = client.state_watcher();
        tx.send_replace(Some(SessionHandle {
            generation,
            client: client.clone(),
        }));
        loop {
            match states.changed().await {
                zk::SessionState::Expired
                | zk::SessionState::Closed
                | zk::SessionState::AuthFailed => break,
                zk::SessionState::Disconnected => {
                    tracing::warn!("disconnected from ZooKeeper; the client is reconnecting")
                }
                zk::SessionState::SyncConnected => tracing::info!("reconnected to ZooKeeper"),
                _ => {}
            }
        }
        tracing::warn!(generation, "ZooKeeper session ended; starting a new one");
        tx.send_replace(None);
    }
}

/// Connects; if the connect string has a chroot (`host:port/kafka`) that does not exist
/// yet, creates it first, as Kafka does.
async fn ensure_chroot_and_connect(
    connector: zk::Connector,
    connect: &str,
) -> Result<zk::Client, zk::Error> {
    if let Some(slash) = connect.find('/') {
        let (hosts, chroot) = connect.split_at(slash);
        if chroot.len() > 1 {
            let root = zk::Client::connector()
                .with_session_timeout(Duration::from_secs(6))
                .connect(hosts)
                .await?;
            let options = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
            match root.mkdir(chroot.trim_end_matches('/'), &options).await {
                Ok(()) | Err(zk::Error::NodeExists) => {}
                Err(err) => return Err(err),
            }
        }
    }
    connector.connect(connect).await
}
