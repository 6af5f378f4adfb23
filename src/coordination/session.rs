//! The broker's ZooKeeper session. One supervisor task keeps a session open: it connects
//! (retrying while ZooKeeper is unreachable), publishes the client, and when the session
//! expires it publishes `None`, connects again and publishes the new client with a higher
//! generation. Everything built on the session (broker registration, watches, the
//! controller role) reacts to the generation change by starting over.
//!
//! With credentials (`zookeeper.digest.credentials.file`) every session, the first and
//! each one after an expiry, is authenticated with `addauth digest user:password` before
//! it is published, so every znode it creates carries the brokers' digest id; the client
//! crate also replays the auth on every reconnect of the same session.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use tokio::sync::watch;
use zookeeper_client as zk;

use super::acls::ZnodeAcls;

/// A live session's client, tagged with a generation that increases per new session.
#[derive(Clone)]
pub struct SessionHandle {
    pub generation: u64,
    pub client: zk::Client,
    /// The ACL policy for every znode created through this session.
    pub acls: ZnodeAcls,
}

impl SessionHandle {
    /// Create options for a znode at `path` with the ACL its path calls for.
    pub fn create_options(&self, mode: zk::CreateMode, path: &str) -> zk::CreateOptions<'static> {
        self.acls.options(mode, path)
    }
}

/// How the broker authenticates to ZooKeeper and protects what it creates.
#[derive(Clone, Default)]
pub struct ZkSecurity {
    /// `zookeeper.set.acl`.
    pub acls: ZnodeAcls,
    /// `user:password` for the `digest` scheme, if configured.
    pub digest: Option<String>,
}

impl std::fmt::Debug for ZkSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the password.
        let user = self
            .digest
            .as_deref()
            .map(|d| d.split(':').next().unwrap_or_default());
        f.debug_struct("ZkSecurity")
            .field("acls", &self.acls)
            .field("digest_user", &user)
            .finish()
    }
}

impl ZkSecurity {
    /// From `zookeeper.set.acl` and `zookeeper.digest.credentials.file` (read here).
    pub fn load(set_acl: bool, credentials_file: Option<&Path>) -> anyhow::Result<ZkSecurity> {
        let digest = match credentials_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| {
                    format!(
                        "cannot read zookeeper.digest.credentials.file {}",
                        path.display()
                    )
                })?;
                Some(parse_digest_credentials(&text).with_context(|| {
                    format!("in zookeeper.digest.credentials.file {}", path.display())
                })?)
            }
            None => None,
        };
        Ok(ZkSecurity {
            acls: ZnodeAcls::new(set_acl),
            digest,
        })
    }

    /// A connector with the session timeout and the digest auth (if any).
    fn connector(&self, session_timeout: Duration) -> zk::Connector {
        let connector = zk::Client::connector().with_session_timeout(session_timeout);
        match &self.digest {
            Some(digest) => connector.with_auth("digest", digest.as_bytes()),
            None => connector,
        }
    }
}

/// The `user:password` of a credentials file: its first non-empty line, trimmed. The
/// digest id ZooKeeper derives is `user:base64(sha1(user:password))`, so the user may not
/// hold a `:` and neither part may be empty.
pub fn parse_digest_credentials(text: &str) -> anyhow::Result<String> {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .ok_or_else(|| anyhow::anyhow!("no `user:password` line"))?;
    match line.split_once(':') {
        Some((user, password)) if !user.is_empty() && !password.is_empty() => Ok(line.to_string()),
        _ => anyhow::bail!("expected `user:password`"),
    }
}

#[derive(Clone)]
pub struct ZkSession {
    current: watch::Receiver<Option<SessionHandle>>,
    /// Tells the supervisor to end the session for good (broker shutdown).
    closing: Arc<watch::Sender<bool>>,
}

impl ZkSession {
    /// Starts the supervisor. Returns at once; `current()` waits for the first session.
    ///
    /// The session (its socket, pings and timers) runs on a runtime of its own, on a
    /// thread of its own, like the ZooKeeper client threads of a Kafka broker: however
    /// busy or stuck the request workers are, pings keep going and the broker is not
    /// declared dead. Requests from any runtime reach it through the client's channels.
    pub fn start(connect: String, session_timeout: Duration, security: ZkSecurity) -> ZkSession {
        let (tx, rx) = watch::channel(None);
        let (closing, closed) = watch::channel(false);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        match runtime {
            Ok(runtime) => {
                let spawned = std::thread::Builder::new()
                    .name("gregor-zk-session".into())
                    .spawn(move || {
                        runtime.block_on(supervise(connect, session_timeout, security, tx, closed))
                    });
                if let Err(err) = spawned {
                    // No session will come: start-up then fails on
                    // zookeeper.connection.timeout.ms with a clear message.
                    tracing::error!(error = %err, "cannot start the ZooKeeper session thread");
                }
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot build the ZooKeeper session runtime");
                tokio::spawn(supervise(connect, session_timeout, security, tx, closed));
            }
        }
        ZkSession {
            current: rx,
            closing: Arc::new(closing),
        }
    }

    /// Ends the session for good: the supervisor drops its client (ZooKeeper removes the
    /// session's ephemeral znodes) and starts no new one. The last step of a shutdown.
    pub fn close(&self) {
        self.closing.send_replace(true);
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
    security: ZkSecurity,
    tx: watch::Sender<Option<SessionHandle>>,
    mut closed: watch::Receiver<bool>,
) {
    let mut generation = 0u64;
    let mut backoff = Duration::from_millis(100);
    loop {
        if *closed.borrow_and_update() {
            tx.send_replace(None);
            return;
        }
        let connected = tokio::select! {
            c = ensure_chroot_and_connect(&security, session_timeout, &connect) => c,
            _ = closed.changed() => continue,
        };
        let client = match connected {
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
            acls: security.acls,
        }));
        loop {
            let state = tokio::select! {
                s = states.changed() => s,
                _ = closed.changed() => break,
            };
            match state {
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
        if !*closed.borrow() {
            tracing::warn!(generation, "ZooKeeper session ended; starting a new one");
        }
        tx.send_replace(None);
    }
}

/// A one-off session (not supervised, no reconnect after expiry) with this security, for
/// tools that write a few znodes before brokers start (`gregor cluster --secure`).
pub async fn connect_once(
    connect: &str,
    session_timeout: Duration,
    security: &ZkSecurity,
) -> Result<SessionHandle, zk::Error> {
    let client = ensure_chroot_and_connect(security, session_timeout, connect).await?;
    Ok(SessionHandle {
        generation: 1,
        client,
        acls: security.acls,
    })
}

/// Connects; if the connect string has a chroot (`host:port/kafka`) that does not exist
/// yet, creates it first (with the ACL of its path, as Kafka's
/// `makeSurePersistentPathExists` does).
async fn ensure_chroot_and_connect(
    security: &ZkSecurity,
    session_timeout: Duration,
    connect: &str,
) -> Result<zk::Client, zk::Error> {
    if let Some(slash) = connect.find('/') {
        let (hosts, chroot) = connect.split_at(slash);
        let chroot = chroot.trim_end_matches('/');
        if !chroot.is_empty() {
            let root = security
                .connector(Duration::from_secs(6))
                .connect(hosts)
                .await?;
            let options = security.acls.options(zk::CreateMode::Persistent, chroot);
            match root.mkdir(chroot, &options).await {
                Ok(()) | Err(zk::Error::NodeExists) => {}
                Err(err) => return Err(err),
            }
        }
    }
    security.connector(session_timeout).connect(connect).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_file_holds_user_and_password() {
        assert_eq!(
            parse_digest_credentials("# brokers\n\n  kafka:s3cr:et \n").unwrap(),
            "kafka:s3cr:et"
        );
        for bad in ["", "# only a comment\n", "kafka", "kafka:", ":secret"] {
            assert!(parse_digest_credentials(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn debug_never_shows_the_password() {
        let s = ZkSecurity {
            acls: ZnodeAcls::new(true),
            digest: Some("kafka:hunter2".into()),
        };
        let shown = format!("{s:?}");
        assert!(
            shown.contains("kafka") && !shown.contains("hunter2"),
            "{shown}"
        );
    }

    #[test]
    fn load_reads_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("zk-digest");
        std::fs::write(&path, "kafka:pw\n").unwrap();
        let s = ZkSecurity::load(true, Some(&path)).unwrap();
        assert_eq!(s.digest.as_deref(), Some("kafka:pw"));
        assert!(s.acls.is_secure());
        let err = ZkSecurity::load(true, Some(&dir.path().join("missing"))).unwrap_err();
        assert!(format!("{err:#}").contains("zookeeper.digest.credentials.file"));
    }
}
