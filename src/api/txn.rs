//! Transaction APIs (Kafka 3.9's `KafkaApis` handlers): AddPartitionsToTxn (key 24, client
//! v0-v3 and the broker-only v4-v5 with `verify_only`), AddOffsetsToTxn (25), EndTxn (26),
//! TxnOffsetCommit (28), DescribeTransactions (65) and ListTransactions (66). The logic is
//! `crate::txn` (and `crate::group` for transactional offsets); handlers check ACLs and
//! topics, translate messages and map errors for old versions as Kafka does.

use std::collections::BTreeSet;

use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::list_transactions_response::TransactionState as ListedState;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use tokio::sync::oneshot;

use super::errors::{code, Error};
use super::{RequestContext, Versions};
use crate::broker::Broker;
use crate::coordination::{is_internal_topic, OFFSETS_TOPIC};
use crate::group::shard::{CommitPartition, TxnCommitRequest};
use crate::security::acl::{AclOperation, ResourceType};
use crate::txn::shard::{ListFilter, TopicPartition};
use crate::txn::verify::{offset_commit_error, ErrorStyle};

pub mod add_partitions {
    pub const VERSIONS: super::Versions = super::Versions::new(0, 5);
}
pub mod add_offsets {
    pub const VERSIONS: super::Versions = super::Versions::new(0, 4);
}
pub mod end_txn {
    pub const VERSIONS: super::Versions = super::Versions::new(0, 4);
}
pub mod txn_offset_commit {
    pub const VERSIONS: super::Versions = super::Versions::new(0, 4);
}
pub mod describe {
    pub const VERSIONS: super::Versions = super::Versions::new(0, 0);
}
pub mod list {
    pub const VERSIONS: super::Versions = super::Versions::new(0, 1);
}

fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

fn may_write_txn(broker: &Broker, ctx: &RequestContext, id: &str) -> bool {
    broker.authorize(ctx, AclOperation::Write, ResourceType::TransactionalId, id)
}

/// PRODUCER_FENCED is INVALID_PRODUCER_EPOCH for clients that predate it.
fn fenced_for(version: i16, first_version_knowing_it: i16, e: Error) -> Error {
    if e == Error::ProducerFenced && version < first_version_knowing_it {
        Error::InvalidProducerEpoch
    } else {
        e
    }
}

/// (topic, [(partition, error)]) of a TxnOffsetCommit answer.
type TopicErrors = Vec<(String, Vec<(i32, Option<Error>)>)>;

fn result_code(r: Result<(), Error>) -> i16 {
    r.err().map_or(0, code)
}

// ------------------------------------------------------------------ AddPartitionsToTxn

pub async fn add_partitions_to_txn(
    broker: &Broker,
    ctx: &RequestContext,
    req: AddPartitionsToTxnRequest,
) -> Option<AddPartitionsToTxnResponse> {
    let v = ctx.api_version;
    if v < 4 {
        let r = add_one(
            broker,
            ctx,
            v,
            req.v3_and_below_transactional_id.0.as_str(),
            req.v3_and_below_producer_id.0,
            req.v3_and_below_producer_epoch,
            false,
            &req.v3_and_below_topics,
        )
        .await;
        return Some(AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(r));
    }
    // v4+ come from brokers only (KIP-890 verification).
    if !broker.authorize_cluster(ctx, AclOperation::ClusterAction) {
        return Some(
            AddPartitionsToTxnResponse::default()
                .with_error_code(code(Error::ClusterAuthorizationFailed)),
        );
    }
    let mut results = Vec::with_capacity(req.transactions.len());
    for t in &req.transactions {
        let r = add_one(
            broker,
            ctx,
            v,
            t.transactional_id.0.as_str(),
            t.producer_id.0,
            t.producer_epoch,
            t.verify_only,
            &t.topics,
        )
        .await;
        results.push(
            AddPartitionsToTxnResult::default()
                .with_transactional_id(t.transactional_id.clone())
                .with_topic_results(r),
        );
    }
    Some(AddPartitionsToTxnResponse::default().with_results_by_transaction(results))
}

/// One transaction of an AddPartitionsToTxn request (Kafka's per-transaction handling):
/// ACLs (client versions), unknown topics — any failed partition fails the transaction,
/// the others answering OPERATION_NOT_ATTEMPTED — then the coordinator.
#[allow(clippy::too_many_arguments)]
async fn add_one(
    broker: &Broker,
    ctx: &RequestContext,
    version: i16,
    transactional_id: &str,
    producer_id: i64,
    producer_epoch: i16,
    verify_only: bool,
    topics: &[add_partitions_to_txn_request::AddPartitionsToTxnTopic],
) -> Vec<AddPartitionsToTxnTopicResult> {
    let all: Vec<TopicPartition> = topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.name.0.to_string(), *p)))
        .collect();
    let answer = |errors: Vec<(TopicPartition, Option<Error>)>| topic_results(errors);
    if version < 4 && !may_write_txn(broker, ctx, transactional_id) {
        return answer(
            all.into_iter()
                .map(|tp| (tp, Some(Error::TransactionalIdAuthorizationFailed)))
                .collect(),
        );
    }
    let image = broker.image();
    let mut failed = false;
    let mut checked: Vec<(TopicPartition, Option<Error>)> = Vec::with_capacity(all.len());
    for tp in all {
        let error = if version < 4
            && !is_internal_topic(&tp.0)
            && !broker.authorize_topic(ctx, AclOperation::Write, &tp.0)
        {
            Some(Error::TopicAuthorizationFailed)
        } else if image.partition(&tp.0, tp.1).is_none() {
            Some(Error::UnknownTopicOrPartition)
        } else {
            None
        };
        failed |= error.is_some();
        checked.push((tp, error));
    }
    if failed {
        return answer(
            checked
                .into_iter()
                .map(|(tp, e)| (tp, Some(e.unwrap_or(Error::OperationNotAttempted))))
                .collect(),
        );
    }
    let partitions: Vec<TopicPartition> = checked.into_iter().map(|(tp, _)| tp).collect();
    if verify_only {
        let r = broker.txns.verify_partitions(
            transactional_id,
            producer_id,
            producer_epoch,
            &partitions,
        );
        return answer(match r {
            Ok(r) => r,
            Err(e) => partitions.into_iter().map(|tp| (tp, Some(e))).collect(),
        });
    }
    let set: BTreeSet<TopicPartition> = partitions.iter().cloned().collect();
    let r = broker
        .txns
        .add_partitions(transactional_id, producer_id, producer_epoch, set)
        .await
        .map_err(|e| fenced_for(version, 2, e));
    answer(partitions.into_iter().map(|tp| (tp, r.err())).collect())
}

fn topic_results(
    errors: Vec<(TopicPartition, Option<Error>)>,
) -> Vec<AddPartitionsToTxnTopicResult> {
    let mut out: Vec<AddPartitionsToTxnTopicResult> = Vec::new();
    for ((topic, p), e) in errors {
        let result = AddPartitionsToTxnPartitionResult::default()
            .with_partition_index(p)
            .with_partition_error_code(e.map_or(0, code));
        match out.iter_mut().find(|t| t.name.0.as_str() == topic) {
            Some(t) => t.results_by_partition.push(result),
            None => out.push(
                AddPartitionsToTxnTopicResult::default()
                    .with_name(TopicName(s(topic)))
                    .with_results_by_partition(vec![result]),
            ),
        }
    }
    out
}

// ------------------------------------------------------------------ AddOffsetsToTxn

pub async fn add_offsets_to_txn(
    broker: &Broker,
    ctx: &RequestContext,
    req: AddOffsetsToTxnRequest,
) -> Option<AddOffsetsToTxnResponse> {
    let id = req.transactional_id.0.as_str();
    let group = req.group_id.0.as_str();
    let r = if !may_write_txn(broker, ctx, id) {
        Err(Error::TransactionalIdAuthorizationFailed)
    } else if !broker.authorize_group(ctx, AclOperation::Read, group) {
        Err(Error::GroupAuthorizationFailed)
    } else {
        // The group's __consumer_offsets partition joins the transaction.
        let tp = (
            OFFSETS_TOPIC.to_string(),
            broker.groups.partition_for(group),
        );
        broker
            .txns
            .add_partitions(id, req.producer_id.0, req.producer_epoch, [tp].into())
            .await
            .map_err(|e| fenced_for(ctx.api_version, 2, e))
    };
    Some(AddOffsetsToTxnResponse::default().with_error_code(result_code(r)))
}

// ------------------------------------------------------------------ EndTxn

pub async fn end_txn(
    broker: &Broker,
    ctx: &RequestContext,
    req: EndTxnRequest,
) -> Option<EndTxnResponse> {
    let id = req.transactional_id.0.as_str();
    let r = if !may_write_txn(broker, ctx, id) {
        Err(Error::TransactionalIdAuthorizationFailed)
    } else {
        broker
            .txns
            .end_txn(id, req.producer_id.0, req.producer_epoch, req.committed)
            .await
            .map_err(|e| fenced_for(ctx.api_version, 2, e))
    };
    Some(EndTxnResponse::default().with_error_code(result_code(r)))
}

// ------------------------------------------------------------------ TxnOffsetCommit

pub async fn txn_offset_commit(
    broker: &Broker,
    ctx: &RequestContext,
    req: TxnOffsetCommitRequest,
) -> Option<TxnOffsetCommitResponse> {
    let v = ctx.api_version;
    let all_failed = |e: Error| {
        req.topics
            .iter()
            .map(|t| {
                (
                    t.name.0.to_string(),
                    t.partitions
                        .iter()
                        .map(|p| (p.partition_index, Some(e)))
                        .collect(),
                )
            })
            .collect::<TopicErrors>()
    };
    let id = req.transactional_id.0.as_str();
    let gid = req.group_id.0.as_str();
    let results = if !may_write_txn(broker, ctx, id) {
        all_failed(Error::TransactionalIdAuthorizationFailed)
    } else if !broker.authorize_group(ctx, AclOperation::Read, gid) {
        all_failed(Error::GroupAuthorizationFailed)
    } else {
        commit_txn_offsets(broker, ctx, &req).await
    };
    // Clients before v2 crash on COORDINATOR_LOAD_IN_PROGRESS (KAFKA-7296).
    let fix = |e: Option<Error>| match e {
        Some(Error::CoordinatorLoadInProgress) if v < 2 => Some(Error::CoordinatorNotAvailable),
        e => e,
    };
    Some(
        TxnOffsetCommitResponse::default().with_topics(
            results
                .into_iter()
                .map(|(t, parts)| {
                    TxnOffsetCommitResponseTopic::default()
                        .with_name(TopicName(s(t)))
                        .with_partitions(
                            parts
                                .into_iter()
                                .map(|(p, e)| {
                                    TxnOffsetCommitResponsePartition::default()
                                        .with_partition_index(p)
                                        .with_error_code(fix(e).map_or(0, code))
                                })
                                .collect(),
                        )
                })
                .collect(),
        ),
    )
}

/// Topic READ and existence per topic (Kafka's handler), then the group coordinator,
/// after KIP-890 verification of the group's `__consumer_offsets` partition.
async fn commit_txn_offsets(
    broker: &Broker,
    ctx: &RequestContext,
    req: &TxnOffsetCommitRequest,
) -> TopicErrors {
    let image = broker.image();
    let mut results: TopicErrors = Vec::new();
    let mut partitions = Vec::new();
    for t in &req.topics {
        let name = t.name.0.to_string();
        let topic_error = if !broker.authorize_topic(ctx, AclOperation::Read, &name) {
            Some(Error::TopicAuthorizationFailed)
        } else if image.topic(&name).is_none() {
            Some(Error::UnknownTopicOrPartition)
        } else {
            None
        };
        let mut errs = Vec::new();
        for p in &t.partitions {
            let e = topic_error.or_else(|| {
                image
                    .partition(&name, p.partition_index)
                    .is_none()
                    .then_some(Error::UnknownTopicOrPartition)
            });
            match e {
                Some(e) => errs.push((p.partition_index, Some(e))),
                None => partitions.push(CommitPartition {
                    topic: name.clone(),
                    partition: p.partition_index,
                    offset: p.committed_offset,
                    leader_epoch: p.committed_leader_epoch,
                    metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                    // TxnOffsetCommit has no commit time: the coordinator's clock.
                    commit_timestamp: None,
                }),
            }
        }
        if !errs.is_empty() {
            results.push((name, errs));
        }
    }
    if partitions.is_empty() {
        return results;
    }
    let fail_all = |e: Error, partitions: &[CommitPartition]| {
        partitions
            .iter()
            .map(|p| (p.topic.clone(), p.partition, Some(e)))
            .collect::<Vec<_>>()
    };
    let committed = match guard_offsets_partition(broker, ctx, req).await {
        Err(e) => fail_all(e, &partitions),
        Ok(guard) => {
            let (tx, rx) = oneshot::channel();
            let commit = TxnCommitRequest {
                group_id: req.group_id.0.to_string(),
                member_id: req.member_id.to_string(),
                generation_id: req.generation_id,
                group_instance_id: req.group_instance_id.as_ref().map(|i| i.to_string()),
                producer_id: req.producer_id.0,
                producer_epoch: req.producer_epoch,
                partitions: partitions.clone(),
                guard,
            };
            let started = broker
                .groups
                .with_group(&commit.group_id.clone(), |gs, now| {
                    ((), gs.commit_txn_offsets(commit, tx, now))
                });
            match started {
                Err(e) => fail_all(e, &partitions),
                Ok(()) => rx
                    .await
                    .unwrap_or_else(|_| fail_all(Error::NotCoordinator, &partitions)),
            }
        }
    };
    for (t, p, e) in committed {
        match results.iter_mut().find(|(name, _)| *name == t) {
            Some((_, errs)) => errs.push((p, e)),
            None => results.push((t, vec![(p, e)])),
        }
    }
    results
}

/// KIP-890 for TxnOffsetCommit: the group's `__consumer_offsets` partition must be in
/// the transaction (AddOffsetsToTxn) before the producer's first offsets land there.
async fn guard_offsets_partition(
    broker: &Broker,
    ctx: &RequestContext,
    req: &TxnOffsetCommitRequest,
) -> Result<Option<u64>, Error> {
    let gid = req.group_id.0.as_str();
    let p = broker.groups.partition_for(gid);
    let shard = broker.groups.shard(p)?;
    if !broker.txns.verification_enabled() {
        return Ok(None);
    }
    let now = crate::clock::now_ms();
    let guard = shard
        .replica()
        .start_verification(req.producer_id.0, -1, req.producer_epoch, now)
        .map_err(|_| Error::NotCoordinator)?;
    let Some(guard) = guard else {
        return Ok(None); // the producer has offsets open there already
    };
    let style = if ctx.api_version >= 4 {
        ErrorStyle::Generic
    } else {
        ErrorStyle::Default
    };
    let verified = broker
        .txns
        .verify_for_append(
            req.transactional_id.0.as_str(),
            req.producer_id.0,
            req.producer_epoch,
            vec![(OFFSETS_TOPIC.to_string(), p)],
            style,
        )
        .await;
    match verified.into_iter().find_map(|(_, e)| e) {
        Some(e) => Err(offset_commit_error(e)),
        None => Ok(Some(guard)),
    }
}

// ------------------------------------------------------------------ Describe / List

pub async fn describe_transactions(
    broker: &Broker,
    ctx: &RequestContext,
    req: DescribeTransactionsRequest,
) -> Option<DescribeTransactionsResponse> {
    let states = req
        .transactional_ids
        .iter()
        .map(|id| {
            let base = TransactionState::default()
                .with_transactional_id(id.clone())
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1)
                .with_transaction_start_time_ms(-1);
            if !broker.authorize(
                ctx,
                AclOperation::Describe,
                ResourceType::TransactionalId,
                id,
            ) {
                return base.with_error_code(code(Error::TransactionalIdAuthorizationFailed));
            }
            match broker.txns.describe(id) {
                Err(e) => base.with_error_code(code(e)),
                Ok(d) => {
                    let mut topics: Vec<TopicData> = Vec::new();
                    for (topic, p) in d.partitions {
                        // Only topics the principal may describe (Kafka filters them).
                        if !broker.authorize_topic(ctx, AclOperation::Describe, &topic) {
                            continue;
                        }
                        match topics.iter_mut().find(|t| t.topic.0.as_str() == topic) {
                            Some(t) => t.partitions.push(p),
                            None => topics.push(
                                TopicData::default()
                                    .with_topic(TopicName(s(topic)))
                                    .with_partitions(vec![p]),
                            ),
                        }
                    }
                    base.with_transaction_state(s(d.state.name()))
                        .with_transaction_timeout_ms(d.timeout_ms)
                        .with_transaction_start_time_ms(d.start_ms)
                        .with_producer_id(ProducerId(d.producer_id))
                        .with_producer_epoch(d.producer_epoch)
                        .with_topics(topics)
                }
            }
        })
        .collect();
    Some(DescribeTransactionsResponse::default().with_transaction_states(states))
}

pub async fn list_transactions(
    broker: &Broker,
    ctx: &RequestContext,
    req: ListTransactionsRequest,
) -> Option<ListTransactionsResponse> {
    use crate::txn::metadata::TxnState;
    let mut unknown = Vec::new();
    let mut states = BTreeSet::new();
    for name in &req.state_filters {
        match TxnState::from_name(name) {
            Some(s) => {
                states.insert(s);
            }
            None => unknown.push(name.clone()),
        }
    }
    let filter = ListFilter {
        states,
        producer_ids: req.producer_id_filters.iter().map(|p| p.0).collect(),
        min_duration_ms: if ctx.api_version >= 1 {
            req.duration_filter
        } else {
            -1
        },
    };
    let response = ListTransactionsResponse::default().with_unknown_state_filters(unknown);
    // State filters that all name unknown states match nothing.
    if !req.state_filters.is_empty() && filter.states.is_empty() {
        return Some(response);
    }
    Some(match broker.txns.list(&filter) {
        Err(e) => response.with_error_code(code(e)),
        Ok(listed) => response.with_transaction_states(
            listed
                .into_iter()
                .filter(|(id, _, _)| {
                    broker.authorize(
                        ctx,
                        AclOperation::Describe,
                        ResourceType::TransactionalId,
                        id,
                    )
                })
                .map(|(id, pid, state)| {
                    ListedState::default()
                        .with_transactional_id(TransactionalId(s(id)))
                        .with_producer_id(ProducerId(pid))
                        .with_transaction_state(s(state))
                })
                .collect(),
        ),
    })
}
