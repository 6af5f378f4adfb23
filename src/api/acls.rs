//! ACL administration: CreateAcls (key 30), DescribeAcls (key 29), DeleteAcls (key 31),
//! v0-v3 (v0 knows only LITERAL patterns: its filters default to LITERAL, so its answers
//! never hold another pattern type), as Kafka's
//! `AclApis`: Cluster DESCRIBE to describe and Cluster ALTER to change, else
//! CLUSTER_AUTHORIZATION_FAILED; SECURITY_DISABLED without an authorizer.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::errors::{code, Error};
use super::{RequestContext, Versions};
use crate::broker::Broker;
use crate::security::acl::{
    store, AclBinding, AclEntry, AclFilter, AclOperation, Authorizer, ResourcePattern,
};

pub mod create_acls {
    pub const VERSIONS: super::Versions = super::Versions::new(0, 3);
}
pub mod describe_acls {
    pub const VERSIONS: super::Versions = super::Versions::new(0, 3);
}
pub mod delete_acls {
    pub const VERSIONS: super::Versions = super::Versions::new(0, 3);
}

/// More creations or filters than this in one request are refused (INVALID_REQUEST)
/// before any ZooKeeper work: each costs a conditional write.
const MAX_ITEMS_PER_REQUEST: usize = 10_000;

const NO_AUTHORIZER: &str = "No Authorizer is configured on the broker";

fn msg(s: impl Into<String>) -> Option<StrBytes> {
    Some(StrBytes::from_string(s.into()))
}

/// Why a request-wide check failed: the error and its message.
fn gate<'a>(
    broker: &'a Broker,
    ctx: &RequestContext,
    op: AclOperation,
) -> Result<&'a Authorizer, (Error, String)> {
    if !broker.authorize_cluster(ctx, op) {
        return Err((
            Error::ClusterAuthorizationFailed,
            format!("Cluster {op} is needed to administer ACLs"),
        ));
    }
    broker
        .authorizer()
        .ok_or((Error::SecurityDisabled, NO_AUTHORIZER.to_string()))
}

fn filter_of_describe(req: &DescribeAclsRequest) -> Option<AclFilter> {
    AclFilter::from_wire(
        req.resource_type_filter,
        req.resource_name_filter.as_deref(),
        req.pattern_type_filter,
        req.principal_filter.as_deref(),
        req.host_filter.as_deref(),
        req.operation,
        req.permission_type,
    )
}

pub async fn describe_acls(
    broker: &Broker,
    ctx: &RequestContext,
    req: DescribeAclsRequest,
) -> Option<DescribeAclsResponse> {
    let response = DescribeAclsResponse::default();
    let authorizer = match gate(broker, ctx, AclOperation::Describe) {
        Ok(a) => a,
        Err((e, m)) => return Some(response.with_error_code(code(e)).with_error_message(msg(m))),
    };
    let Some(filter) = filter_of_describe(&req) else {
        return Some(
            response
                .with_error_code(code(Error::InvalidRequest))
                .with_error_message(msg("DescribeAcls filter contains unknown elements")),
        );
    };
    let mut by_pattern: BTreeMap<ResourcePattern, Vec<AclEntry>> = BTreeMap::new();
    for b in authorizer.acls(&filter) {
        by_pattern.entry(b.pattern).or_default().push(b.entry);
    }
    let resources = by_pattern
        .into_iter()
        .map(|(p, entries)| {
            DescribeAclsResource::default()
                .with_resource_type(p.resource_type.code())
                .with_resource_name(StrBytes::from_string(p.name))
                .with_pattern_type(p.pattern_type.code())
                .with_acls(
                    entries
                        .into_iter()
                        .map(|e| {
                            AclDescription::default()
                                .with_principal(StrBytes::from_string(e.principal))
                                .with_host(StrBytes::from_string(e.host))
                                .with_operation(e.operation.code())
                                .with_permission_type(e.permission.code())
                        })
                        .collect(),
                )
        })
        .collect();
    Some(response.with_error_code(0).with_resources(resources))
}

pub async fn create_acls(
    broker: &Broker,
    ctx: &RequestContext,
    req: CreateAclsRequest,
) -> Option<CreateAclsResponse> {
    let failed = |e: Error, m: &str| {
        AclCreationResult::default()
            .with_error_code(code(e))
            .with_error_message(msg(m))
    };
    let authorizer = match gate(broker, ctx, AclOperation::Alter) {
        Ok(a) => a,
        Err((e, m)) => {
            let results = req.creations.iter().map(|_| failed(e, &m)).collect();
            return Some(CreateAclsResponse::default().with_results(results));
        }
    };
    if req.creations.len() > MAX_ITEMS_PER_REQUEST {
        let results = req
            .creations
            .iter()
            .map(|_| {
                failed(
                    Error::InvalidRequest,
                    "Too many ACL creations in one request",
                )
            })
            .collect();
        return Some(CreateAclsResponse::default().with_results(results));
    }
    let mut results: Vec<AclCreationResult> =
        vec![AclCreationResult::default(); req.creations.len()];
    // Valid bindings grouped by pattern: one conditional write per resource (Kafka's
    // `createAcls` groups the same way).
    let mut by_pattern: BTreeMap<ResourcePattern, Vec<(usize, AclEntry)>> = BTreeMap::new();
    for (i, c) in req.creations.iter().enumerate() {
        match AclBinding::from_wire(
            c.resource_type,
            &c.resource_name,
            c.resource_pattern_type,
            &c.principal,
            &c.host,
            c.operation,
            c.permission_type,
        ) {
            Ok(b) => by_pattern.entry(b.pattern).or_default().push((i, b.entry)),
            Err(err) => results[i] = failed(Error::InvalidRequest, &err.to_string()),
        }
    }
    let session = broker.session.current().await;
    for (pattern, items) in by_pattern {
        let added: BTreeSet<AclEntry> = items.iter().map(|(_, e)| e.clone()).collect();
        let outcome = store::update_resource(&session, authorizer, &pattern, |current| {
            current.union(&added).cloned().collect()
        })
        .await;
        if let Err(err) = outcome {
            tracing::warn!(?pattern, error = %err, "CreateAcls: ZooKeeper update failed");
            for (i, _) in &items {
                results[*i] = failed(
                    Error::UnknownServerError,
                    &format!("cannot store the ACL: {err}"),
                );
            }
        }
    }
    Some(CreateAclsResponse::default().with_results(results))
}

pub async fn delete_acls(
    broker: &Broker,
    ctx: &RequestContext,
    req: DeleteAclsRequest,
) -> Option<DeleteAclsResponse> {
    let failed = |e: Error, m: &str| {
        DeleteAclsFilterResult::default()
            .with_error_code(code(e))
            .with_error_message(msg(m))
    };
    let authorizer = match gate(broker, ctx, AclOperation::Alter) {
        Ok(a) => a,
        Err((e, m)) => {
            let results = req.filters.iter().map(|_| failed(e, &m)).collect();
            return Some(DeleteAclsResponse::default().with_filter_results(results));
        }
    };
    if req.filters.len() > MAX_ITEMS_PER_REQUEST {
        let results = req
            .filters
            .iter()
            .map(|_| failed(Error::InvalidRequest, "Too many ACL filters in one request"))
            .collect();
        return Some(DeleteAclsResponse::default().with_filter_results(results));
    }
    let filters: Vec<Option<AclFilter>> = req
        .filters
        .iter()
        .map(|f| {
            AclFilter::from_wire(
                f.resource_type_filter,
                f.resource_name_filter.as_deref(),
                f.pattern_type_filter,
                f.principal_filter.as_deref(),
                f.host_filter.as_deref(),
                f.operation,
                f.permission_type,
            )
        })
        .collect();
    // Candidate patterns: everything cached plus what a filter names exactly (an ACL
    // stored through another broker and not yet seen here is still deleted).
    let mut patterns: BTreeSet<ResourcePattern> = authorizer.snapshot().keys().cloned().collect();
    for f in filters.iter().flatten() {
        patterns.extend(f.pattern.exact_patterns());
    }
    let mut matched: Vec<Vec<AclBinding>> = vec![Vec::new(); filters.len()];
    let mut errors: Vec<Option<String>> = vec![None; filters.len()];
    let session = broker.session.current().await;
    for pattern in patterns {
        let applicable: Vec<(usize, &AclFilter)> = filters
            .iter()
            .enumerate()
            .filter_map(|(i, f)| f.as_ref().map(|f| (i, f)))
            .filter(|(_, f)| f.pattern.matches(&pattern))
            .collect();
        if applicable.is_empty() {
            continue;
        }
        let removed = std::sync::Mutex::new(Vec::new());
        let outcome = store::update_resource(&session, authorizer, &pattern, |current| {
            let mut gone = crate::sync::lock(&removed);
            gone.clear();
            current
                .iter()
                .filter(|e| {
                    let hits: Vec<usize> = applicable
                        .iter()
                        .filter(|(_, f)| f.entry.matches(e))
                        .map(|(i, _)| *i)
                        .collect();
                    if hits.is_empty() {
                        return true;
                    }
                    // An ACL matched by several filters is reported under the first.
                    gone.push((hits[0], (*e).clone()));
                    false
                })
                .cloned()
                .collect()
        })
        .await;
        let gone = removed.into_inner().unwrap_or_else(|e| e.into_inner());
        match outcome {
            Ok(_) => {
                for (i, entry) in gone {
                    matched[i].push(AclBinding {
                        pattern: pattern.clone(),
                        entry,
                    });
                }
            }
            Err(err) => {
                tracing::warn!(?pattern, error = %err, "DeleteAcls: ZooKeeper update failed");
                for (i, _) in applicable {
                    errors[i] = Some(format!("cannot update the ACLs: {err}"));
                }
            }
        }
    }
    let results = filters
        .iter()
        .zip(matched)
        .zip(errors)
        .map(|((f, bindings), err)| match (f, err) {
            (None, _) => failed(
                Error::InvalidRequest,
                "DeleteAcls filter contains unknown elements",
            ),
            (Some(_), Some(m)) => failed(Error::UnknownServerError, &m),
            (Some(_), None) => DeleteAclsFilterResult::default()
                .with_error_code(0)
                .with_matching_acls(bindings.into_iter().map(matching_acl).collect()),
        })
        .collect();
    Some(DeleteAclsResponse::default().with_filter_results(results))
}

fn matching_acl(b: AclBinding) -> DeleteAclsMatchingAcl {
    DeleteAclsMatchingAcl::default()
        .with_error_code(0)
        .with_resource_type(b.pattern.resource_type.code())
        .with_resource_name(StrBytes::from_string(b.pattern.name))
        .with_pattern_type(b.pattern.pattern_type.code())
        .with_principal(StrBytes::from_string(b.entry.principal))
        .with_host(StrBytes::from_string(b.entry.host))
        .with_operation(b.entry.operation.code())
        .with_permission_type(b.entry.permission.code())
}
