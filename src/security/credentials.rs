//! SCRAM credentials as Kafka's ZooKeeper mode keeps them: `/config/users/<user>` holds
//! `{"version":1,"config":{"SCRAM-SHA-512":"salt=…,stored_key=…,server_key=…,iterations=…"}}`
//! (other user configs, e.g. quotas, live beside them), and every change is announced by
//! a sequential `/config/changes/config_change_` znode `{"version":2,"entity_path":"users/<user>"}`.
//! Every broker caches the credentials and reloads a user when a notification names it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::{json, Map, Value};
use zookeeper_client as zk;

use super::sasl::scram::{ScramCredential, ScramMechanism};
use crate::coordination::{SessionHandle, ZkSession};

pub const CONFIG_USERS: &str = "/config/users";
pub const CONFIG_CHANGES: &str = "/config/changes";
const CHANGE_PREFIX: &str = "/config/changes/config_change_";

pub type UserCredentials = BTreeMap<ScramMechanism, ScramCredential>;

/// The cache every SASL listener reads.
#[derive(Debug, Default, Clone)]
pub struct ScramCache {
    users: Arc<RwLock<HashMap<String, UserCredentials>>>,
}

impl ScramCache {
    pub fn get(&self, mechanism: ScramMechanism, user: &str) -> Option<ScramCredential> {
        let users = self.users.read().unwrap_or_else(|e| e.into_inner());
        users.get(user)?.get(&mechanism).cloned()
    }

    fn replace_all(&self, all: HashMap<String, UserCredentials>) {
        *self.users.write().unwrap_or_else(|e| e.into_inner()) = all;
    }

    /// Keeps the cache in step with ZooKeeper for the broker's lifetime.
    pub fn start(session: ZkSession, tasks: &crate::broker::tasks::Tasks) -> ScramCache {
        let cache = ScramCache::default();
        tasks.spawn(watch_loop(session, cache.clone()));
        cache
    }
}

/// The SCRAM credentials in a `/config/users/<user>` znode (other keys are ignored).
pub fn parse_user_config(data: &[u8]) -> UserCredentials {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return UserCredentials::new();
    };
    let mut out = UserCredentials::new();
    if let Some(config) = value.get("config").and_then(Value::as_object) {
        for (k, v) in config {
            if let (Some(m), Some(s)) = (ScramMechanism::parse(k), v.as_str()) {
                if let Some(c) = ScramCredential::from_zk_string(s) {
                    out.insert(m, c);
                }
            }
        }
    }
    out
}

async fn load_all(client: &zk::Client) -> Result<HashMap<String, UserCredentials>, zk::Error> {
    let users = match client.list_children(CONFIG_USERS).await {
        Ok(users) => users,
        Err(zk::Error::NoNode) => return Ok(HashMap::new()),
        Err(e) => return Err(e),
    };
    let mut out = HashMap::new();
    for user in users {
        match client.get_data(&user_path(&user)).await {
            Ok((data, _)) => {
                let creds = parse_user_config(&data);
                if !creds.is_empty() {
                    out.insert(user, creds);
                }
            }
            Err(zk::Error::NoNode) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Reloads every user whenever `/config/changes` changes (a handful of users: a full
/// reload is simpler than tracking notification sequence numbers and costs nothing).
async fn watch_loop(session: ZkSession, cache: ScramCache) {
    loop {
        let handle = session.current().await;
        let client = &handle.client;
        let _ = ensure_parents(&handle).await;
        let watcher = match client.get_and_watch_children(CONFIG_CHANGES).await {
            Ok((_, _, w)) => Some(w),
            Err(zk::Error::NoNode) => None,
            Err(err) => {
                tracing::debug!(error = %err, "cannot watch {CONFIG_CHANGES}");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        match load_all(client).await {
            Ok(all) => cache.replace_all(all),
            Err(err) => {
                tracing::warn!(error = %err, "cannot load SCRAM credentials");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        }
        match watcher {
            Some(w) => {
                w.changed().await;
            }
            None => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

/// The parents of credentials and change notifications, each with the ACL its path calls
/// for (`zookeeper.set.acl`: `/config/users` is never world-readable).
async fn ensure_parents(handle: &SessionHandle) -> Result<(), zk::Error> {
    for parent in ["/config", CONFIG_USERS, CONFIG_CHANGES] {
        let options = handle.create_options(zk::CreateMode::Persistent, parent);
        match handle.client.create(parent, &[], &options).await {
            Ok(_) | Err(zk::Error::NodeExists) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

pub fn user_path(user: &str) -> String {
    format!("{CONFIG_USERS}/{user}")
}

/// Applies upserts and deletions to one user's config znode, keeping its other keys,
/// then announces the change. Deleting the last key removes nothing else Kafka keeps:
/// the znode stays with an empty config, as Kafka's `AdminZkClient` leaves it.
pub async fn alter_user(
    handle: &SessionHandle,
    user: &str,
    upserts: &[(ScramMechanism, ScramCredential)],
    deletions: &[ScramMechanism],
) -> Result<(), zk::Error> {
    let client = &handle.client;
    ensure_parents(handle).await?;
    let path = user_path(user);
    let options = handle.create_options(zk::CreateMode::Persistent, &path);
    loop {
        let (mut config, version) = match client.get_data(&path).await {
            Ok((data, stat)) => (config_map(&data), Some(stat.version)),
            Err(zk::Error::NoNode) => (Map::new(), None),
            Err(e) => return Err(e),
        };
        for m in deletions {
            config.remove(m.name());
        }
        for (m, c) in upserts {
            config.insert(m.name().to_string(), Value::String(c.to_zk_string()));
        }
        let data =
            serde_json::to_vec(&json!({"version": 1, "config": config})).expect("JSON of strings");
        let written = match version {
            Some(v) => client.set_data(&path, &data, Some(v)).await.map(|_| ()),
            None => client.create(&path, &data, &options).await.map(|_| ()),
        };
        match written {
            Ok(()) => break,
            // Raced with another writer: read again.
            Err(zk::Error::BadVersion) | Err(zk::Error::NodeExists) | Err(zk::Error::NoNode) => {
                continue
            }
            Err(e) => return Err(e),
        }
    }
    let notification =
        serde_json::to_vec(&json!({"version": 2, "entity_path": format!("users/{user}")}))
            .expect("JSON of strings");
    let seq = handle.create_options(zk::CreateMode::PersistentSequential, CHANGE_PREFIX);
    client.create(CHANGE_PREFIX, &notification, &seq).await?;
    Ok(())
}

fn config_map(data: &[u8]) -> Map<String, Value> {
    serde_json::from_slice::<Value>(data)
        .ok()
        .and_then(|v| v.get("config").and_then(Value::as_object).cloned())
        .unwrap_or_default()
}

/// Every user's credentials, read straight from ZooKeeper (DescribeUserScramCredentials
/// answers from ZooKeeper, not a possibly lagging cache, as Kafka's ZK-mode handler does).
pub async fn describe_all(
    client: &zk::Client,
) -> Result<HashMap<String, UserCredentials>, zk::Error> {
    load_all(client).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_kafkas_user_znode() {
        let m = ScramMechanism::Sha512;
        let c = m.credential(b"salt", &m.salted_password(b"pw", b"salt", 4096), 4096);
        let data = serde_json::to_vec(&json!({
            "version": 1,
            "config": {"SCRAM-SHA-512": c.to_zk_string(), "producer_byte_rate": "1024"}
        }))
        .unwrap();
        let parsed = parse_user_config(&data);
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[&m], c);
        assert!(parse_user_config(b"garbage").is_empty());
        assert!(parse_user_config(br#"{"config":{"SCRAM-SHA-256":"salt=!!"}}"#).is_empty());
    }
}
