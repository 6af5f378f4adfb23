//! The broker's presence in ZooKeeper: the persistent layout every cluster needs, the
//! cluster id, and the ephemeral `/brokers/ids/<id>` registration, renewed for every new
//! session.

use std::sync::Arc;
use std::time::Duration;

use zookeeper_client as zk;

use crate::clock::now_ms;
use crate::config::BrokerConfig;
use crate::coordination::znodes::*;
use crate::coordination::{SessionHandle, ZkSession};

/// Creates the persistent parents and `/cluster/id` if missing. Idempotent.
pub async fn ensure_cluster_layout(handle: &SessionHandle) -> anyhow::Result<String> {
    let client = &handle.client;
    for path in PERSISTENT_PATHS {
        let options = handle.create_options(zk::CreateMode::Persistent, path);
        match client.create(path, &[], &options).await {
            Ok(_) | Err(zk::Error::NodeExists) => {}
            Err(err) => anyhow::bail!("cannot create {path} in ZooKeeper: {err}"),
        }
    }
    let fresh = ClusterIdZnode {
        version: "1".into(),
        id: new_cluster_id(),
    };
    let options = handle.create_options(zk::CreateMode::Persistent, CLUSTER_ID);
    match client.create(CLUSTER_ID, &fresh.encode(), &options).await {
        Ok(_) => {
            tracing::info!(cluster_id = %fresh.id, "new cluster id");
            Ok(fresh.id)
        }
        Err(zk::Error::NodeExists) => {
            let (data, _) = client.get_data(CLUSTER_ID).await?;
            Ok(ClusterIdZnode::decode(&data)?.id)
        }
        Err(err) => anyhow::bail!("cannot create {CLUSTER_ID}: {err}"),
    }
}

/// A cluster id the way Kafka prints them: a base64url UUID.
fn new_cluster_id() -> String {
    encode_topic_id(uuid::Uuid::new_v4())
}

/// Registers this broker for every session the supervisor opens. If a previous
/// incarnation's registration is still there (its session not yet expired after a crash),
/// waits for it to go rather than failing start-up.
pub async fn keep_registered(session: ZkSession, config: Arc<BrokerConfig>) {
    let mut sessions = session.subscribe();
    loop {
        let handle = session.current().await;
        let znode = BrokerZnode::with_listeners(
            &config.advertised_listeners,
            config.rack.clone(),
            now_ms(),
        );
        let path = broker_path(config.broker_id);
        let options = handle.create_options(zk::CreateMode::Ephemeral, &path);
        let mut warned = false;
        loop {
            match handle.client.create(&path, &znode.encode(), &options).await {
                Ok((stat, _)) => {
                    tracing::info!(
                        broker = config.broker_id,
                        epoch = stat.czxid,
                        "registered in ZooKeeper"
                    );
                    break;
                }
                Err(zk::Error::NodeExists) => {
                    if let Ok(Some(stat)) = handle.client.check_stat(&path).await {
                        if stat.ephemeral_owner == handle.client.session_id().0 {
                            break; // already ours (a retried create)
                        }
                    }
                    if !warned {
                        tracing::warn!(broker = config.broker_id, "a previous registration of this broker id is still live; waiting for its session to expire");
                        warned = true;
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(err) => {
                    tracing::warn!(error = %err, "broker registration failed; retrying");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
            if sessions.borrow().as_ref().map(|h| h.generation) != Some(handle.generation) {
                break;
            }
        }
        // Wait for this session to end, then register again in the next one.
        loop {
            if sessions.borrow_and_update().as_ref().map(|h| h.generation)
                != Some(handle.generation)
            {
                break;
            }
            if sessions.changed().await.is_err() {
                return;
            }
        }
    }
}
