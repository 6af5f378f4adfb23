//! The handlers' one-line authorization checks: `broker.authorize(ctx, op, type, name)`
//! asks the configured ACL authorizer about the request's principal and client address;
//! with no authorizer (`authorizer.class.name` empty) everything is allowed, as in Kafka.

use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::broker::Broker;
use crate::security::acl::{AclOperation, Authorizer, ResourceType, CLUSTER_NAME};

/// `authorized_operations` when the client did not ask for them (Kafka's `Int.MinValue`).
pub const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;

/// The client's address as ACL hosts name it (an IPv4-mapped IPv6 address as IPv4).
pub fn client_host(ctx: &RequestContext) -> String {
    ctx.peer.ip().to_canonical().to_string()
}

impl Broker {
    pub fn authorizer(&self) -> Option<&Authorizer> {
        self.authorizer.as_deref()
    }

    /// May the request's principal do `op` on the literal resource `name`?
    pub fn authorize(
        &self,
        ctx: &RequestContext,
        op: AclOperation,
        rt: ResourceType,
        name: &str,
    ) -> bool {
        match self.authorizer() {
            None => true,
            Some(a) => a.authorize(&ctx.principal, &client_host(ctx), op, rt, name),
        }
    }

    pub fn authorize_topic(&self, ctx: &RequestContext, op: AclOperation, topic: &str) -> bool {
        self.authorize(ctx, op, ResourceType::Topic, topic)
    }

    pub fn authorize_group(&self, ctx: &RequestContext, op: AclOperation, group: &str) -> bool {
        self.authorize(ctx, op, ResourceType::Group, group)
    }

    /// Cluster-level checks: CLUSTER_ACTION for inter-broker requests, ALTER / DESCRIBE
    /// for ACL and SCRAM credential administration (Kafka's `authorizeClusterOperation`).
    pub fn authorize_cluster(&self, ctx: &RequestContext, op: AclOperation) -> bool {
        self.authorize(ctx, op, ResourceType::Cluster, CLUSTER_NAME)
    }

    /// `Ok(())` or CLUSTER_AUTHORIZATION_FAILED: the request-wide check of the admin APIs
    /// (AlterUserScramCredentials needs ALTER, DescribeUserScramCredentials DESCRIBE).
    pub fn require_cluster(
        &self,
        ctx: &RequestContext,
        op: AclOperation,
    ) -> Result<(), ResponseError> {
        if self.authorize_cluster(ctx, op) {
            Ok(())
        } else {
            Err(ResponseError::ClusterAuthorizationFailed)
        }
    }

    /// The `authorized_operations` bit field of a resource, or
    /// `OPERATIONS_NOT_REQUESTED` when the client did not ask. Without an authorizer
    /// every supported operation is allowed.
    pub fn authorized_operations(
        &self,
        ctx: &RequestContext,
        requested: bool,
        rt: ResourceType,
        name: &str,
    ) -> i32 {
        if !requested {
            return OPERATIONS_NOT_REQUESTED;
        }
        match self.authorizer() {
            Some(a) => a.authorized_operations(&ctx.principal, &client_host(ctx), rt, name),
            None => rt
                .supported_operations()
                .iter()
                .fold(0, |bits, op| bits | (1 << op.code())),
        }
    }
}
