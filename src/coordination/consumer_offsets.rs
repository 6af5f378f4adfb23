//! Offsets committed with OffsetCommit v0 and read with OffsetFetch v0: ZooKeeper-mode
//! Kafka keeps those in ZooKeeper, not in `__consumer_offsets`
//! (`/consumers/<group>/offsets/<topic>/<partition>`, the offset as decimal text; Kafka's
//! `ZkData.ConsumerOffset`), so pre-0.8.2 clients and tools reading that path see them.

use zookeeper_client as zk;

use super::ZkSession;

/// `/consumers`, created world-writable as Kafka does even with `zookeeper.set.acl`.
pub const CONSUMERS_PATH: &str = "/consumers";

pub fn offset_path(group: &str, topic: &str, partition: i32) -> String {
    format!("{CONSUMERS_PATH}/{group}/offsets/{topic}/{partition}")
}

/// Kafka's `setOrCreateConsumerOffset`: sets the znode, creating it and its parents.
pub async fn set_offset(
    session: &ZkSession,
    group: &str,
    topic: &str,
    partition: i32,
    offset: i64,
) -> Result<(), zk::Error> {
    let handle = session.current().await;
    let path = offset_path(group, topic, partition);
    let data = offset.to_string().into_bytes();
    match handle.client.set_data(&path, &data, None).await {
        Ok(_) => return Ok(()),
        Err(zk::Error::NoNode) => {}
        Err(e) => return Err(e),
    }
    // Parents first (Kafka's createRecursive), each tolerating a concurrent creator.
    let mut at = 0;
    while let Some(i) = path[at + 1..].find('/') {
        at += i + 1;
        let parent = &path[..at];
        let options = handle.create_options(zk::CreateMode::Persistent, parent);
        match handle.client.create(parent, &[], &options).await {
            Ok(_) | Err(zk::Error::NodeExists) => {}
            Err(e) => return Err(e),
        }
    }
    let options = handle.create_options(zk::CreateMode::Persistent, &path);
    match handle.client.create(&path, &data, &options).await {
        Ok(_) => Ok(()),
        Err(zk::Error::NodeExists) => handle.client.set_data(&path, &data, None).await.map(|_| ()),
        Err(e) => Err(e),
    }
}

/// The offset stored for a group's partition, if any (garbage reads as none).
pub async fn get_offset(
    session: &ZkSession,
    group: &str,
    topic: &str,
    partition: i32,
) -> Result<Option<i64>, zk::Error> {
    let handle = session.current().await;
    match handle
        .client
        .get_data(&offset_path(group, topic, partition))
        .await
    {
        Ok((data, _)) => Ok(std::str::from_utf8(&data)
            .ok()
            .and_then(|s| s.trim().parse().ok())),
        Err(zk::Error::NoNode) => Ok(None),
        Err(e) => Err(e),
    }
}
