//! KIP-890 part 1 on the partition leader's side (Kafka's `AddPartitionsToTxnManager`):
//! before a transactional produce (or TxnOffsetCommit) opens a transaction in a
//! partition, the leader asks the transaction coordinator whether the partition was
//! added to the transaction — locally when this broker is the coordinator, otherwise
//! with AddPartitionsToTxn v4 `verify_only` over the inter-broker listener. A produce
//! that a late retry or a stale producer sends after its transaction ended is refused,
//! so it can never join (or hang open) the next transaction.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, ProducerId, TopicName, TransactionalId};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError as Error;

use super::shard::TopicPartition;
use super::{TransactionCoordinator, TRANSACTION_STATE_TOPIC};
use crate::client::KafkaConnection;

/// AddPartitionsToTxn's first broker-only version (verify only, many transactions).
const VERIFY_VERSION: i16 = 4;

/// How a verification failure reads to the client (Kafka's `TransactionSupportedOperation`):
/// Produce v11+ and TxnOffsetCommit v5+ know TRANSACTION_ABORTABLE; older clients get
/// INVALID_TXN_STATE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorStyle {
    Default,
    Generic,
}

/// One connection per coordinator broker, one request at a time on it.
type Conn = Arc<tokio::sync::Mutex<Option<KafkaConnection>>>;

#[derive(Default)]
pub struct Verifier {
    conns: Mutex<HashMap<i32, Conn>>,
}

impl Verifier {
    fn conn(&self, broker: i32) -> Conn {
        self.conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(broker)
            .or_default()
            .clone()
    }
}

impl TransactionCoordinator {
    /// Verifies that `partitions` are in `transactional_id`'s transaction at
    /// (`producer_id`, `producer_epoch`): per partition `None` or the error, translated
    /// as Kafka's `AddPartitionsToTxnManager` does (see [`produce_error`] and
    /// [`offset_commit_error`] for what the caller answers).
    pub async fn verify_for_append(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: Vec<TopicPartition>,
        style: ErrorStyle,
    ) -> Vec<(TopicPartition, Option<Error>)> {
        let p = self.partition_for(transactional_id);
        let coordinator = self
            .image
            .borrow()
            .partition(TRANSACTION_STATE_TOPIC, p)
            .and_then(|i| i.state.as_ref())
            .map(|s| s.leader)
            .filter(|l| *l >= 0);
        let answered = match coordinator {
            None => Err(Error::CoordinatorNotAvailable),
            Some(c) if c == self.config.broker_id => {
                self.verify_partitions(transactional_id, producer_id, producer_epoch, &partitions)
            }
            Some(c) => {
                self.verify_remote(
                    c,
                    transactional_id,
                    producer_id,
                    producer_epoch,
                    &partitions,
                )
                .await
            }
        };
        let per_partition: Vec<(TopicPartition, Option<Error>)> = match answered {
            Ok(r) => r,
            Err(e) => partitions.into_iter().map(|tp| (tp, Some(e))).collect(),
        };
        per_partition
            .into_iter()
            .map(|(tp, e)| (tp, e.map(|e| manager_error(e, style))))
            .collect()
    }

    async fn verify_remote(
        &self,
        coordinator: i32,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[TopicPartition],
    ) -> Result<Vec<(TopicPartition, Option<Error>)>, Error> {
        let mut topics: Vec<AddPartitionsToTxnTopic> = Vec::new();
        for (t, p) in partitions {
            match topics.iter_mut().find(|x| x.name.0.as_str() == t) {
                Some(x) => x.partitions.push(*p),
                None => topics.push(
                    AddPartitionsToTxnTopic::default()
                        .with_name(TopicName(StrBytes::from_string(t.clone())))
                        .with_partitions(vec![*p]),
                ),
            }
        }
        let request = AddPartitionsToTxnRequest::default().with_transactions(vec![
            AddPartitionsToTxnTransaction::default()
                .with_transactional_id(TransactionalId(StrBytes::from_string(
                    transactional_id.to_string(),
                )))
                .with_producer_id(ProducerId(producer_id))
                .with_producer_epoch(producer_epoch)
                .with_verify_only(true)
                .with_topics(topics),
        ]);
        let conn = self.verifier.conn(coordinator);
        let mut guard = conn.lock().await;
        let timeout = Duration::from_millis(self.config.request_timeout_ms);
        if guard.is_none() {
            let addr = self
                .image
                .borrow()
                .brokers
                .get(&coordinator)
                .and_then(|b| b.endpoint(&self.config.inter_broker_listener))
                .map(|(h, p)| format!("{h}:{p}"))
                .ok_or(Error::CoordinatorNotAvailable)?;
            let security = crate::client::ClientSecurity::inter_broker(&self.config)
                .map_err(|_| Error::CoordinatorNotAvailable)?;
            let client_id = format!("broker-{}-txn-verification", self.config.broker_id);
            let c =
                KafkaConnection::connect_with(&addr, &client_id, Duration::from_secs(5), &security)
                    .await
                    .map_err(|_| Error::NetworkException)?;
            *guard = Some(c);
        }
        let Some(c) = guard.as_mut() else {
            return Err(Error::NetworkException);
        };
        let response = match c.send(&request, VERIFY_VERSION, timeout).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(coordinator, error = %e, "transaction verification request failed");
                *guard = None;
                return Err(Error::NetworkException);
            }
        };
        drop(guard);
        if let Some(e) = Error::try_from_code(response.error_code) {
            // A broker refused as a non-broker: not a transaction problem of the client.
            return Err(if e == Error::ClusterAuthorizationFailed {
                Error::InvalidTxnState
            } else {
                e
            });
        }
        let mut found: HashMap<TopicPartition, Option<Error>> = HashMap::new();
        for txn in response.results_by_transaction {
            for t in txn.topic_results {
                for p in t.results_by_partition {
                    found.insert(
                        (t.name.0.to_string(), p.partition_index),
                        Error::try_from_code(p.partition_error_code),
                    );
                }
            }
        }
        Ok(partitions
            .iter()
            .map(|tp| {
                let e = found
                    .get(tp)
                    .copied()
                    .unwrap_or(Some(Error::UnknownServerError));
                (tp.clone(), e)
            })
            .collect())
    }
}

/// Kafka's `AddPartitionsToTxnManager` translations: a fenced producer is
/// INVALID_PRODUCER_EPOCH, a partition not in the transaction TRANSACTION_ABORTABLE
/// (INVALID_TXN_STATE for clients that do not know it).
fn manager_error(e: Error, style: ErrorStyle) -> Error {
    match e {
        Error::ProducerFenced => Error::InvalidProducerEpoch,
        Error::TransactionAbortable if style == ErrorStyle::Default => Error::InvalidTxnState,
        other => other,
    }
}

/// What a produce answers for a failed verification (Kafka's
/// `ReplicaManager.handleProduceAppend`): coordinator trouble is NOT_ENOUGH_REPLICAS,
/// which every client retries without a metadata refresh.
pub fn produce_error(e: Error) -> Error {
    match e {
        Error::ConcurrentTransactions
        | Error::NetworkException
        | Error::CoordinatorLoadInProgress
        | Error::CoordinatorNotAvailable
        | Error::NotCoordinator => Error::NotEnoughReplicas,
        other => other,
    }
}

/// What a TxnOffsetCommit answers for a failed verification (Kafka's
/// `GroupMetadataManager.maybeConvertOffsetCommitError`).
pub fn offset_commit_error(e: Error) -> Error {
    match e {
        Error::NetworkException => Error::CoordinatorLoadInProgress,
        Error::UnknownTopicOrPartition
        | Error::NotEnoughReplicas
        | Error::NotEnoughReplicasAfterAppend => Error::CoordinatorNotAvailable,
        Error::NotLeaderOrFollower | Error::KafkaStorageError => Error::NotCoordinator,
        Error::MessageTooLarge | Error::RecordListTooLarge | Error::InvalidFetchSize => {
            Error::InvalidCommitOffsetSize
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_translate_as_kafkas() {
        assert_eq!(
            manager_error(Error::ProducerFenced, ErrorStyle::Generic),
            Error::InvalidProducerEpoch
        );
        assert_eq!(
            manager_error(Error::TransactionAbortable, ErrorStyle::Default),
            Error::InvalidTxnState
        );
        assert_eq!(
            manager_error(Error::TransactionAbortable, ErrorStyle::Generic),
            Error::TransactionAbortable
        );
        assert_eq!(
            produce_error(Error::CoordinatorLoadInProgress),
            Error::NotEnoughReplicas
        );
        assert_eq!(
            produce_error(Error::InvalidTxnState),
            Error::InvalidTxnState
        );
        assert_eq!(
            offset_commit_error(Error::NetworkException),
            Error::CoordinatorLoadInProgress
        );
        assert_eq!(
            offset_commit_error(Error::NotLeaderOrFollower),
            Error::NotCoordinator
        );
    }
}
