//! InitProducerId (key 22, v0-v5) for idempotent producers: a fresh producer id from this
//! broker's block (claimed through ZooKeeper), epoch 0 — as Kafka does when no
//! transactional id is given. Transactions are not supported: a transactional id is
//! refused.

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
        // Kafka's TransactionCoordinator refuses an empty transactional id.
        Some(id) if id.is_empty() => return Some(failed(Error::InvalidRequest)),
        // No transaction coordinator here: a clear, non-retriable refusal.
        Some(_) => return Some(failed(Error::TransactionalIdAuthorizationFailed)),
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
