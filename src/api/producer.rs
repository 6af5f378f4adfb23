//! InitProducerId (key 22, v0-v5). Without a transactional id: a fresh producer id from
//! this broker's block (claimed through ZooKeeper), epoch 0, as Kafka does. With one: the
//! transaction coordinator's answer (`txn::TransactionCoordinator::init_producer_id`:
//! epoch bumps, fencing, KIP-360 resume with the producer id and epoch, v3+).

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use super::errors::{code, Error};
use super::{RequestContext, Versions};
use crate::broker::Broker;
use crate::security::acl::{AclOperation, ResourceType};

fn idempotent_write_allowed(broker: &Broker, ctx: &RequestContext) -> bool {
    let Some(authorizer) = broker.authorizer() else {
        return true;
    };
    broker.authorize_cluster(ctx, AclOperation::IdempotentWrite)
        || authorizer.authorize_any(
            &ctx.principal,
            &super::authz::client_host(ctx),
            AclOperation::Write,
            ResourceType::Topic,
        )
}

pub const VERSIONS: Versions = Versions::new(0, 5);

pub async fn init_producer_id(
    broker: &Broker,
    ctx: &RequestContext,
    req: InitProducerIdRequest,
) -> Option<InitProducerIdResponse> {
    let failed = |e: Error| {
        InitProducerIdResponse::default()
            .with_error_code(code(e))
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    match &req.transactional_id {
        // KIP-679 (Kafka 3.0+): an idempotent producer needs Cluster IDEMPOTENT_WRITE or
        // WRITE on some topic.
        None if !idempotent_write_allowed(broker, ctx) => {
            return Some(failed(Error::ClusterAuthorizationFailed))
        }
        None => {}
        Some(id)
            if !broker.authorize(ctx, AclOperation::Write, ResourceType::TransactionalId, id) =>
        {
            return Some(failed(Error::TransactionalIdAuthorizationFailed))
        }
        Some(id) => {
            let expected = match (req.producer_id.0, req.producer_epoch) {
                (-1, -1) => None,
                (-1, _) | (_, -1) => return Some(failed(Error::InvalidRequest)),
                (pid, epoch) => Some((pid, epoch)),
            };
            let r = broker
                .txns
                .init_producer_id(id, req.transaction_timeout_ms, expected)
                .await;
            return Some(match r {
                Ok((pid, epoch)) => InitProducerIdResponse::default()
                    .with_producer_id(ProducerId(pid))
                    .with_producer_epoch(epoch),
                // Clients before v4 do not know PRODUCER_FENCED.
                Err(Error::ProducerFenced) if ctx.api_version < 4 => {
                    failed(Error::InvalidProducerEpoch)
                }
                Err(e) => failed(e),
            });
        }
    }
    match broker.producer_ids.next_id().await {
        Ok(id) => Some(
            InitProducerIdResponse::default()
                .with_error_code(0)
                .with_producer_id(ProducerId(id))
                .with_producer_epoch(0),
        ),
        Err(err) => {
            tracing::warn!(error = %err, "cannot allocate a producer id");
            Some(failed(Error::CoordinatorNotAvailable))
        }
    }
}
