//! The transactional part of Produce (Kafka's `KafkaApis.handleProduceRequest` and
//! `ReplicaManager.handleProduceAppend`): a request with transactional batches needs a
//! transactional id the principal may WRITE, one producer for all its batches, and —
//! KIP-890 part 1 — each partition where the producer has no open transaction yet is
//! verified with the transaction coordinator before the append, which must then bring
//! the verification guard.

use kafka_protocol::messages::ProduceRequest;

use super::errors::Error;
use super::RequestContext;
use crate::broker::Broker;
use crate::replica::Partition;
use crate::security::acl::{AclOperation, ResourceType};
use crate::storage::batch::{BatchIter, HeaderFields};
use crate::txn::verify::{produce_error, ErrorStyle};

/// The producer of a request's transactional batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnProducer {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
}

/// (producer id, epoch, base sequence of the first transactional batch) of a
/// partition's records, if any batch is transactional. Only batch headers are read;
/// malformed input is left to the storage validator.
pub fn transactional_batch(records: &[u8]) -> Option<(i64, i16, i32)> {
    BatchIter::new(records)
        .map_while(Result::ok)
        .find(|(_, b)| b.magic() == 2 && b.is_transactional())
        .map(|(_, b)| (b.producer_id(), b.producer_epoch(), b.base_sequence()))
}

/// Checks a request with transactional batches: `Ok(None)` when it has none,
/// `Ok(Some(producer))`, or the error every partition answers (Kafka fails the whole
/// request: TRANSACTIONAL_ID_AUTHORIZATION_FAILED without a permitted transactional id,
/// INVALID_PRODUCER_ID_MAPPING for batches of more than one producer).
pub fn check(
    broker: &Broker,
    ctx: &RequestContext,
    req: &ProduceRequest,
) -> Result<Option<TxnProducer>, Error> {
    let mut producer: Option<(i64, i16)> = None;
    for t in &req.topic_data {
        for p in &t.partition_data {
            let Some(records) = p.records.as_ref() else {
                continue;
            };
            if let Some((pid, epoch, _)) = transactional_batch(records) {
                match producer {
                    Some(seen) if seen != (pid, epoch) => {
                        return Err(Error::InvalidProducerIdMapping)
                    }
                    _ => producer = Some((pid, epoch)),
                }
            }
        }
    }
    let Some((producer_id, producer_epoch)) = producer else {
        return Ok(None);
    };
    let id = match req.transactional_id.as_ref() {
        Some(id)
            if broker.authorize(ctx, AclOperation::Write, ResourceType::TransactionalId, id) =>
        {
            id.to_string()
        }
        _ => return Err(Error::TransactionalIdAuthorizationFailed),
    };
    Ok(Some(TxnProducer {
        transactional_id: id,
        producer_id,
        producer_epoch,
    }))
}

/// KIP-890 verification of the partitions of one request (`(index, partition,
/// records)`): per entry the guard to append with, or the error it answers.
pub async fn verify(
    broker: &Broker,
    ctx: &RequestContext,
    producer: &TxnProducer,
    partitions: &[(usize, &Partition, &[u8])],
) -> Vec<Result<Option<u64>, Error>> {
    let now = crate::clock::now_ms();
    let mut out: Vec<Result<Option<u64>, Error>> = Vec::with_capacity(partitions.len());
    let mut to_verify = Vec::new();
    for (i, (_, partition, records)) in partitions.iter().enumerate() {
        let Some((pid, epoch, seq)) = transactional_batch(records) else {
            out.push(Ok(None));
            continue;
        };
        if !broker.txns.verification_enabled() {
            out.push(Ok(None));
            continue;
        }
        match partition.start_verification(pid, seq, epoch, now) {
            Ok(None) => out.push(Ok(None)),
            Ok(Some(guard)) => {
                out.push(Ok(Some(guard)));
                to_verify.push((i, (partition.tp.topic.clone(), partition.tp.partition)));
            }
            Err(e) => out.push(Err(super::errors::partition_error(&e))),
        }
    }
    if to_verify.is_empty() {
        return out;
    }
    // Produce v11 clients know TRANSACTION_ABORTABLE (Kafka's genericError).
    let style = if ctx.api_version > 10 {
        ErrorStyle::Generic
    } else {
        ErrorStyle::Default
    };
    let verified = broker
        .txns
        .verify_for_append(
            &producer.transactional_id,
            producer.producer_id,
            producer.producer_epoch,
            to_verify.iter().map(|(_, tp)| tp.clone()).collect(),
            style,
        )
        .await;
    for ((i, _), (_, error)) in to_verify.iter().zip(verified) {
        if let Some(e) = error {
            out[*i] = Err(produce_error(e));
        }
    }
    out
}
