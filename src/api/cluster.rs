//! DescribeCluster (key 60, v0-v1): cluster id, controller and live brokers.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;

use super::errors::{code, Error};
use super::{RequestContext, Versions};
use crate::broker::Broker;
use crate::security::acl::{AclOperation, ResourceType, CLUSTER_NAME};

pub mod describe_cluster {
    pub const VERSIONS: super::Versions = super::Versions::new(0, 1);
}

/// DescribeCluster v1 `endpoint_type`: 1 = brokers (KIP-919; 2 = controllers is KRaft-only).
const ENDPOINT_TYPE_BROKERS: i8 = 1;

pub async fn describe_cluster(
    broker: &Broker,
    ctx: &RequestContext,
    req: DescribeClusterRequest,
) -> Option<DescribeClusterResponse> {
    // Cluster DESCRIBE, request-wide (KafkaApis.handleDescribeCluster).
    if !broker.authorize_cluster(ctx, AclOperation::Describe) {
        return Some(
            DescribeClusterResponse::default()
                .with_error_code(code(Error::ClusterAuthorizationFailed))
                .with_cluster_authorized_operations(i32::MIN),
        );
    }
    let image = broker.image();
    let ops = broker.authorized_operations(
        ctx,
        req.include_cluster_authorized_operations,
        ResourceType::Cluster,
        CLUSTER_NAME,
    );
    let response = DescribeClusterResponse::default()
        .with_endpoint_type(ENDPOINT_TYPE_BROKERS)
        .with_cluster_id(StrBytes::from_string(image.cluster_id.clone()))
        .with_controller_id(BrokerId(image.controller_id.unwrap_or(-1)))
        .with_cluster_authorized_operations(ops);
    if req.endpoint_type != ENDPOINT_TYPE_BROKERS {
        return Some(
            response
                .with_error_code(code(Error::UnsupportedEndpointType))
                .with_error_message(Some(StrBytes::from_static_str(
                    "Only brokers can be described: there are no KRaft controllers here",
                ))),
        );
    }
    let brokers = image
        .brokers
        .values()
        .filter_map(|b| {
            let (host, port) = b.endpoint(&ctx.listener_name)?;
            Some(
                DescribeClusterBroker::default()
                    .with_broker_id(BrokerId(b.id))
                    .with_host(StrBytes::from_string(host.to_string()))
                    .with_port(i32::from(port))
                    .with_rack(b.rack.clone().map(StrBytes::from_string)),
            )
        })
        .collect();
    Some(response.with_error_code(0).with_brokers(brokers))
}
