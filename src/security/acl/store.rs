//! The ACLs in ZooKeeper: conditional (versioned) updates of one resource's znode, the
//! change notification every update leaves, and the task that keeps a broker's cache
//! in step (full load per session, then the resources named by new notifications), as
//! Kafka's `AclAuthorizer` with its `ZkNodeChangeNotificationListener`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use zookeeper_client as zk;

use super::authorizer::{AclMap, Authorizer};
use super::model::{AclEntry, ResourcePattern, ResourceType};
use super::znode::*;
use crate::coordination::{SessionHandle, ZkSession};

type ZkResult<T> = Result<T, zk::Error>;

/// Notifications older than this are deleted by whichever broker sees them (Kafka's
/// `ZkNodeChangeNotificationListener` change expiration, 15 minutes).
const CHANGE_EXPIRATION_MS: i64 = 15 * 60 * 1000;
/// Conflicting writers retry this often before giving up (Kafka's `maxUpdateRetries`).
const MAX_UPDATE_RETRIES: usize = 10;

/// Persistent znodes of the ACL store carry the ACL their path calls for
/// (`zookeeper.set.acl`: only brokers may change ACLs).
fn options(handle: &SessionHandle, path: &str) -> zk::CreateOptions<'static> {
    handle.create_options(zk::CreateMode::Persistent, path)
}

/// Reads one resource's ACLs and its znode version (`None`: no znode).
pub async fn read_resource(
    client: &zk::Client,
    p: &ResourcePattern,
) -> ZkResult<(BTreeSet<AclEntry>, Option<i32>)> {
    match client.get_data(&resource_path(p)).await {
        Ok((data, stat)) => {
            let entries = decode_acls(&data).unwrap_or_else(|err| {
                tracing::warn!(path = %resource_path(p), %err, "ignoring unreadable ACL znode");
                BTreeSet::new()
            });
            Ok((entries, Some(stat.version)))
        }
        Err(zk::Error::NoNode) => Ok((BTreeSet::new(), None)),
        Err(err) => Err(err),
    }
}

/// Every ACL in ZooKeeper.
pub async fn load_all(client: &zk::Client) -> ZkResult<AclMap> {
    let mut map = AclMap::new();
    for (root, pattern_type) in ROOTS {
        let types = match client.list_children(root).await {
            Ok(t) => t,
            Err(zk::Error::NoNode) => continue,
            Err(err) => return Err(err),
        };
        for type_name in types {
            let Some(resource_type) = ResourceType::parse(&type_name) else {
                tracing::warn!(%type_name, "ignoring unknown ACL resource type");
                continue;
            };
            let names = match client.list_children(&format!("{root}/{type_name}")).await {
                Ok(n) => n,
                Err(zk::Error::NoNode) => continue,
                Err(err) => return Err(err),
            };
            for name in names {
                let pattern = ResourcePattern::new(resource_type, name, pattern_type);
                let (entries, _) = read_resource(client, &pattern).await?;
                if !entries.is_empty() {
                    map.insert(pattern, entries);
                }
            }
        }
    }
    Ok(map)
}

/// Applies `change` to the ACLs of `p` with a conditional write (create, set with the
/// read version, or delete when none are left), retrying on a concurrent update; then
/// leaves a change notification and updates `authorizer`'s cache. Returns the new set.
pub async fn update_resource(
    handle: &SessionHandle,
    authorizer: &Authorizer,
    p: &ResourcePattern,
    change: impl Fn(&BTreeSet<AclEntry>) -> BTreeSet<AclEntry>,
) -> ZkResult<BTreeSet<AclEntry>> {
    let client = &handle.client;
    let path = resource_path(p);
    for _ in 0..MAX_UPDATE_RETRIES {
        let (current, version) = read_resource(client, p).await?;
        let next = change(&current);
        if next == current {
            authorizer.set_resource(p.clone(), next.clone());
            return Ok(next);
        }
        let written = match (next.is_empty(), version) {
            (true, Some(v)) => client.delete(&path, Some(v)).await,
            (true, None) => Ok(()),
            (false, Some(v)) => client
                .set_data(&path, &encode_acls(&next), Some(v))
                .await
                .map(|_| ()),
            (false, None) => create_with_parents(handle, &path, &encode_acls(&next)).await,
        };
        match written {
            Ok(()) | Err(zk::Error::NoNode) if next.is_empty() => {}
            Ok(()) => {}
            Err(zk::Error::BadVersion | zk::Error::NodeExists | zk::Error::NoNode) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            Err(err) => return Err(err),
        }
        notify(handle, p).await?;
        authorizer.set_resource(p.clone(), next.clone());
        return Ok(next);
    }
    Err(zk::Error::BadVersion)
}

async fn create_with_parents(handle: &SessionHandle, path: &str, data: &[u8]) -> ZkResult<()> {
    let client = &handle.client;
    match client.create(path, data, &options(handle, path)).await {
        Ok(_) => Ok(()),
        Err(zk::Error::NoNode) => {
            let parent = &path[..path.rfind('/').unwrap_or(0)];
            client.mkdir(parent, &options(handle, parent)).await?;
            client
                .create(path, data, &options(handle, path))
                .await
                .map(|_| ())
        }
        Err(err) => Err(err),
    }
}

async fn notify(handle: &SessionHandle, p: &ResourcePattern) -> ZkResult<()> {
    let client = &handle.client;
    let dir = change_dir(p);
    let seq_path = format!("{dir}/{CHANGE_PREFIX}");
    let seq = handle.create_options(zk::CreateMode::PersistentSequential, &seq_path);
    match client.create(&seq_path, &encode_change(p), &seq).await {
        Err(zk::Error::NoNode) => {
            client.mkdir(dir, &options(handle, dir)).await?;
            client
                .create(&seq_path, &encode_change(p), &seq)
                .await
                .map(|_| ())
        }
        other => other.map(|_| ()),
    }
}

/// Keeps `authorizer`'s cache in step with ZooKeeper for as long as the broker runs.
pub fn start(session: ZkSession, authorizer: Arc<Authorizer>, tasks: &crate::tasks::Tasks) {
    tasks.spawn(async move {
        loop {
            let handle = session.current().await;
            let generation = handle.generation;
            if let Err(err) = follow(&handle, &authorizer, &session, generation).await {
                tracing::debug!(error = %err, "ACL cache: ZooKeeper read failed; reloading");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    });
}

/// One session: arm the watches, load everything, then process notifications until
/// the session changes (or a read fails: the caller starts over with a full load).
async fn follow(
    handle: &SessionHandle,
    authorizer: &Authorizer,
    session: &ZkSession,
    generation: u64,
) -> ZkResult<()> {
    let client = &handle.client;
    for dir in [
        LITERAL_CHANGES,
        EXTENDED_CHANGES,
        LITERAL_ROOT,
        PREFIXED_ROOT,
    ] {
        client.mkdir(dir, &options(handle, dir)).await?;
    }
    let mut last_seen: [Option<u64>; 2] = [None, None];
    let mut watchers = Vec::new();
    for (i, dir) in [LITERAL_CHANGES, EXTENDED_CHANGES].into_iter().enumerate() {
        let (children, _, w) = client.get_and_watch_children(dir).await?;
        last_seen[i] = children.iter().filter_map(|c| change_seq(c)).max();
        watchers.push(w);
    }
    // Watches are armed before the load: any change after it fires one of them.
    authorizer.replace_all(load_all(client).await?);
    let mut sessions = session.subscribe();
    loop {
        let mut pending: Vec<_> = watchers.drain(..).map(|w| Box::pin(w.changed())).collect();
        tokio::select! {
            (event, _, _) = futures::future::select_all(pending.iter_mut()) => {
                if event.event_type == zk::EventType::Session {
                    return Ok(());
                }
            }
            _ = sessions.changed() => {}
        }
        drop(pending);
        if sessions.borrow().as_ref().map(|h| h.generation) != Some(generation) {
            return Ok(());
        }
        for (i, dir) in [LITERAL_CHANGES, EXTENDED_CHANGES].into_iter().enumerate() {
            let (children, _, w) = client.get_and_watch_children(dir).await?;
            watchers.push(w);
            last_seen[i] = process_changes(client, authorizer, dir, children, last_seen[i]).await?;
        }
    }
}

/// Reloads the resource named by each notification newer than `last`; deletes expired
/// notifications. Returns the newest sequence number seen.
async fn process_changes(
    client: &zk::Client,
    authorizer: &Authorizer,
    dir: &str,
    children: Vec<String>,
    last: Option<u64>,
) -> ZkResult<Option<u64>> {
    let mut seqs: Vec<(u64, String)> = children
        .into_iter()
        .filter_map(|c| change_seq(&c).map(|s| (s, c)))
        .collect();
    seqs.sort();
    let now = crate::clock::now_ms();
    let mut newest = last;
    for (seq, child) in seqs {
        let path = format!("{dir}/{child}");
        let fresh = last.is_none_or(|l| seq > l);
        let (data, stat) = match client.get_data(&path).await {
            Ok(found) => found,
            Err(zk::Error::NoNode) => continue,
            Err(err) => return Err(err),
        };
        if fresh {
            match decode_change(dir, &data) {
                Some(pattern) => {
                    let (entries, _) = read_resource(client, &pattern).await?;
                    authorizer.set_resource(pattern, entries);
                }
                None => tracing::warn!(%path, "ignoring unreadable ACL change notification"),
            }
            newest = Some(seq);
        }
        if now - stat.ctime > CHANGE_EXPIRATION_MS {
            let _ = client.delete(&path, None).await;
        }
    }
    Ok(newest)
}
