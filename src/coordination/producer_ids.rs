//! Producer ids for idempotent producers, unique cluster-wide: each broker claims blocks
//! of ids through `/latest_producer_id_block` with a conditional write (Kafka's
//! ZooKeeper-mode `ProducerIdManager`), then hands them out from memory.

use std::sync::Mutex;

use zookeeper_client as zk;

use super::znodes::{ProducerIdBlockZnode, PRODUCER_ID_BLOCK};
use super::ZkSession;

/// Kafka's block size.
pub const BLOCK_SIZE: i64 = 1000;

#[derive(Debug, thiserror::Error)]
pub enum ProducerIdError {
    #[error("ZooKeeper: {0}")]
    Zk(#[from] zk::Error),
    #[error("producer id space exhausted")]
    Exhausted,
    #[error("unreadable {PRODUCER_ID_BLOCK}: {0}")]
    Corrupt(String),
}

pub struct ProducerIdManager {
    broker_id: i32,
    session: ZkSession,
    /// Next id to hand out and the end (inclusive) of the current block.
    block: Mutex<Option<(i64, i64)>>,
    claim: tokio::sync::Mutex<()>,
}

impl ProducerIdManager {
    pub fn new(broker_id: i32, session: ZkSession) -> Self {
        ProducerIdManager {
            broker_id,
            session,
            block: Mutex::new(None),
            claim: tokio::sync::Mutex::new(()),
        }
    }

    pub async fn next_id(&self) -> Result<i64, ProducerIdError> {
        loop {
            if let Some(id) = self.take_from_block() {
                return Ok(id);
            }
            let _guard = self.claim.lock().await;
            if self.block_has_ids() {
                continue;
            }
            let (start, end) = self.claim_block().await?;
            tracing::info!(
                broker = self.broker_id,
                start,
                end,
                "claimed producer id block"
            );
            *self.lock() = Some((start, end));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(i64, i64)>> {
        // The guarded value is plain data; a panic elsewhere cannot leave it inconsistent.
        crate::sync::lock(&self.block)
    }

    fn take_from_block(&self) -> Option<i64> {
        let mut block = self.lock();
        let (next, end) = block.as_mut()?;
        if *next > *end {
            return None;
        }
        let id = *next;
        *next += 1;
        Some(id)
    }

    fn block_has_ids(&self) -> bool {
        matches!(*self.lock(), Some((next, end)) if next <= end)
    }

    async fn claim_block(&self) -> Result<(i64, i64), ProducerIdError> {
        let handle = self.session.current().await;
        let client = &handle.client;
        let options = handle.create_options(zk::CreateMode::Persistent, PRODUCER_ID_BLOCK);
        loop {
            let current = match client.get_data(PRODUCER_ID_BLOCK).await {
                Ok((data, stat)) => Some((data, stat.version)),
                Err(zk::Error::NoNode) => None,
                Err(err) => return Err(err.into()),
            };
            let start = match &current {
                Some((data, _)) if !data.is_empty() => {
                    let z = ProducerIdBlockZnode::decode(data)
                        .map_err(|e| ProducerIdError::Corrupt(e.to_string()))?;
                    let end: i64 = z
                        .block_end
                        .parse()
                        .map_err(|_| ProducerIdError::Corrupt(z.block_end.clone()))?;
                    end.checked_add(1).ok_or(ProducerIdError::Exhausted)?
                }
                _ => 0,
            };
            let end = start
                .checked_add(BLOCK_SIZE - 1)
                .ok_or(ProducerIdError::Exhausted)?;
            let znode = ProducerIdBlockZnode {
                version: 1,
                broker: self.broker_id,
                block_start: start.to_string(),
                block_end: end.to_string(),
            };
            let written = match &current {
                Some((_, version)) => client
                    .set_data(PRODUCER_ID_BLOCK, &znode.encode(), Some(*version))
                    .await
                    .map(|_| ()),
                None => client
                    .create(PRODUCER_ID_BLOCK, &znode.encode(), &options)
                    .await
                    .map(|_| ()),
            };
            match written {
                Ok(()) => return Ok((start, end)),
                Err(zk::Error::BadVersion) | Err(zk::Error::NodeExists) => continue,
                Err(err) => return Err(err.into()),
            }
        }
    }
}
