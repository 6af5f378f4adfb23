//! Consumer group APIs (Kafka's classic group protocol): JoinGroup (11), Heartbeat (12), LeaveGroup (13), SyncGroup (14), DescribeGroups (15),
//! ListGroups (16), OffsetCommit (8), OffsetFetch (9), DeleteGroups (42) and
//! OffsetDelete (47). Handlers translate messages; the group logic is `crate::group`.
//!
//! FindCoordinator is `api::coordinator`.

use std::collections::{BTreeMap, HashMap, HashSet};

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use tokio::sync::oneshot;

use super::errors::{code, Error};
use super::{RequestContext, Versions};
use crate::broker::Broker;
use crate::group::classic::{JoinResult, SyncResult};
use crate::group::shard::{
    CommitPartition, CommitRequest, CommitResult, FetchedOffset, JoinRequest, LeaveMember,
    SyncRequest,
};
use crate::security::acl::{AclOperation, ResourceType};

pub mod join_group {
    pub const VERSIONS: super::Versions = super::Versions::new(0, 9);
}
pub mod sync_group {
    pub const VERSIONS: super::Versions = super::Versions::new(0, 5);
}
pub mod heartbeat {
    pub const VERSIONS: super::Versions = super::Versions::new(0, 4);
}
pub mod leave_group {
    pub const VERSIONS: super::Versions = super::Versions::new(0, 5);
}
pub mod offset_commit {
    pub const VERSIONS: super::Versions = super::Versions::new(0, 9);
}
pub mod offset_fetch {
    pub const VERSIONS: super::Versions = super::Versions::new(0, 9);
}
pub mod describe_groups {
    pub const VERSIONS: super::Versions = super::Versions::new(0, 5);
}
pub mod list_groups {
    pub const VERSIONS: super::Versions = super::Versions::new(0, 5);
}
pub mod delete_groups {
    pub const VERSIONS: super::Versions = super::Versions::new(0, 2);
}
pub mod offset_delete {
    pub const VERSIONS: super::Versions = super::Versions::new(0, 0);
}

fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

fn opt(v: Option<String>) -> Option<StrBytes> {
    v.map(StrBytes::from_string)
}

fn err_code(e: Option<Error>) -> i16 {
    e.map_or(0, code)
}

fn client_host(ctx: &RequestContext) -> String {
    // Kafka reports InetAddress.toString(): "/127.0.0.1".
    format!("/{}", ctx.peer.ip())
}

// ------------------------------------------------------------------ JoinGroup

pub async fn join_group(
    broker: &Broker,
    ctx: &RequestContext,
    req: JoinGroupRequest,
) -> Option<JoinGroupResponse> {
    let v = ctx.api_version;
    let group_id = req.group_id.0.to_string();
    let member_id = req.member_id.to_string();
    let result = if !broker.authorize_group(ctx, AclOperation::Read, &group_id) {
        JoinResult::error(&member_id, Error::GroupAuthorizationFailed)
    } else if group_id.is_empty() {
        JoinResult::error(&member_id, Error::InvalidGroupId)
    } else {
        let join = JoinRequest {
            group_id: group_id.clone(),
            member_id: member_id.clone(),
            group_instance_id: req.group_instance_id.as_ref().map(|s| s.to_string()),
            session_timeout_ms: req.session_timeout_ms,
            // v0 has no rebalance timeout: Kafka uses the session timeout.
            rebalance_timeout_ms: if v == 0 {
                req.session_timeout_ms
            } else {
                req.rebalance_timeout_ms
            },
            protocol_type: req.protocol_type.to_string(),
            protocols: req
                .protocols
                .iter()
                .map(|p| (p.name.to_string(), p.metadata.clone()))
                .collect(),
            client_id: ctx.client_id.clone(),
            client_host: client_host(ctx),
            require_known_member_id: v >= 4,
            supports_skip_assignment: v >= 9,
            reason: req.reason.as_ref().map(|r| r.to_string()),
        };
        let (tx, rx) = oneshot::channel();
        match broker
            .groups
            .with_group(&group_id, |gs, now| ((), gs.join_group(join, tx, now)))
        {
            Ok(()) => rx
                .await
                .unwrap_or_else(|_| JoinResult::error(&member_id, Error::NotCoordinator)),
            Err(e) => JoinResult::error(&member_id, e),
        }
    };
    let members = result
        .members
        .into_iter()
        .map(|m| {
            JoinGroupResponseMember::default()
                .with_member_id(s(m.member_id))
                .with_group_instance_id(opt(m.group_instance_id))
                .with_metadata(m.metadata)
        })
        .collect();
    Some(
        JoinGroupResponse::default()
            .with_error_code(err_code(result.error))
            .with_generation_id(result.generation_id)
            .with_protocol_type(if v >= 7 {
                opt(result.protocol_type)
            } else {
                None
            })
            // Before v7 the protocol name is not nullable: Kafka sends "".
            .with_protocol_name(if v >= 7 {
                opt(result.protocol_name)
            } else {
                Some(s(result.protocol_name.unwrap_or_default()))
            })
            .with_leader(s(result.leader_id))
            .with_skip_assignment(v >= 9 && result.skip_assignment)
            .with_member_id(s(result.member_id))
            .with_members(members),
    )
}

// ------------------------------------------------------------------ SyncGroup

pub async fn sync_group(
    broker: &Broker,
    ctx: &RequestContext,
    req: SyncGroupRequest,
) -> Option<SyncGroupResponse> {
    let v = ctx.api_version;
    let group_id = req.group_id.0.to_string();
    let result = if !broker.authorize_group(ctx, AclOperation::Read, &group_id) {
        SyncResult::error(Error::GroupAuthorizationFailed)
    } else if group_id.is_empty() {
        SyncResult::error(Error::InvalidGroupId)
    } else if v >= 5 && (req.protocol_type.is_none() || req.protocol_name.is_none()) {
        // From v5 both fields are mandatory.
        SyncResult::error(Error::InconsistentGroupProtocol)
    } else {
        let sync = SyncRequest {
            group_id: group_id.clone(),
            generation_id: req.generation_id,
            member_id: req.member_id.to_string(),
            group_instance_id: req.group_instance_id.as_ref().map(|s| s.to_string()),
            protocol_type: req.protocol_type.as_ref().map(|s| s.to_string()),
            protocol_name: req.protocol_name.as_ref().map(|s| s.to_string()),
            assignments: req
                .assignments
                .iter()
                .map(|a| (a.member_id.to_string(), a.assignment.clone()))
                .collect(),
        };
        let (tx, rx) = oneshot::channel();
        match broker
            .groups
            .with_group(&group_id, |gs, now| ((), gs.sync_group(sync, tx, now)))
        {
            Ok(()) => rx
                .await
                .unwrap_or_else(|_| SyncResult::error(Error::NotCoordinator)),
            // The rebalance state was lost with the load: the member must rejoin, and
            // older clients do not expect COORDINATOR_LOAD_IN_PROGRESS here (Kafka's
            // choice too).
            Err(Error::CoordinatorLoadInProgress) => SyncResult::error(Error::RebalanceInProgress),
            Err(e) => SyncResult::error(e),
        }
    };
    Some(
        SyncGroupResponse::default()
            .with_error_code(err_code(result.error))
            .with_protocol_type(opt(result.protocol_type))
            .with_protocol_name(opt(result.protocol_name))
            .with_assignment(result.assignment),
    )
}

// ------------------------------------------------------------------ Heartbeat

pub async fn heartbeat(
    broker: &Broker,
    ctx: &RequestContext,
    req: HeartbeatRequest,
) -> Option<HeartbeatResponse> {
    let group_id = req.group_id.0.to_string();
    let error = if !broker.authorize_group(ctx, AclOperation::Read, &group_id) {
        Some(Error::GroupAuthorizationFailed)
    } else if group_id.is_empty() {
        Some(Error::InvalidGroupId)
    } else {
        let hb = crate::group::shard::HeartbeatRequest {
            group_id: group_id.clone(),
            generation_id: req.generation_id,
            member_id: req.member_id.to_string(),
            group_instance_id: req.group_instance_id.as_ref().map(|s| s.to_string()),
        };
        match broker
            .groups
            .with_group(&group_id, |gs, now| (gs.heartbeat(hb, now), Vec::new()))
        {
            Ok(e) => e,
            // Still loading: answer blindly, as Kafka does.
            Err(Error::CoordinatorLoadInProgress) => None,
            Err(e) => Some(e),
        }
    };
    Some(HeartbeatResponse::default().with_error_code(err_code(error)))
}

// ------------------------------------------------------------------ LeaveGroup

pub async fn leave_group(
    broker: &Broker,
    ctx: &RequestContext,
    req: LeaveGroupRequest,
) -> Option<LeaveGroupResponse> {
    let v = ctx.api_version;
    let group_id = req.group_id.0.to_string();
    let members: Vec<LeaveMember> = if v >= 3 {
        req.members
            .iter()
            .map(|m| LeaveMember {
                member_id: m.member_id.to_string(),
                group_instance_id: m.group_instance_id.as_ref().map(|s| s.to_string()),
                reason: m.reason.as_ref().map(|s| s.to_string()),
            })
            .collect()
    } else {
        vec![LeaveMember {
            member_id: req.member_id.to_string(),
            group_instance_id: None,
            reason: None,
        }]
    };
    let (top, member_results) = if !broker.authorize_group(ctx, AclOperation::Read, &group_id) {
        (Some(Error::GroupAuthorizationFailed), Vec::new())
    } else if group_id.is_empty() {
        (Some(Error::InvalidGroupId), Vec::new())
    } else {
        match broker
            .groups
            .with_group(&group_id, |gs, now| gs.leave_group(&group_id, members, now))
        {
            Ok(r) => (r.error, r.members),
            Err(e) => (Some(e), Vec::new()),
        }
    };
    if v < 3 {
        // One member, no member list: its error becomes the top-level error.
        let error = top.or_else(|| member_results.iter().find_map(|m| m.2));
        return Some(LeaveGroupResponse::default().with_error_code(err_code(error)));
    }
    Some(
        LeaveGroupResponse::default()
            .with_error_code(err_code(top))
            .with_members(
                member_results
                    .into_iter()
                    .map(|(id, instance, e)| {
                        MemberResponse::default()
                            .with_member_id(s(id))
                            .with_group_instance_id(opt(instance))
                            .with_error_code(err_code(e))
                    })
                    .collect(),
            ),
    )
}

// ------------------------------------------------------------------ OffsetCommit

pub async fn offset_commit(
    broker: &Broker,
    ctx: &RequestContext,
    req: OffsetCommitRequest,
) -> Option<OffsetCommitResponse> {
    let v = ctx.api_version;
    if v == 0 {
        return super::zk_offsets::offset_commit_v0(broker, ctx, req).await;
    }
    let image = broker.image();
    let group_id = req.group_id.0.to_string();
    // Errors decided here (unknown topics/partitions) and by the coordinator.
    let mut errors: HashMap<(String, i32), Option<Error>> = HashMap::new();
    let mut valid = Vec::new();
    // Group READ for the request, then Topic READ per topic (KafkaApis.handleOffsetCommitRequest).
    let group_allowed = broker.authorize_group(ctx, AclOperation::Read, &group_id);
    for t in &req.topics {
        let topic = image.topic(&t.name);
        let topic_error = if !group_allowed {
            Some(Error::GroupAuthorizationFailed)
        } else if !broker.authorize_topic(ctx, AclOperation::Read, &t.name) {
            Some(Error::TopicAuthorizationFailed)
        } else {
            None
        };
        for p in &t.partitions {
            let key = (t.name.0.to_string(), p.partition_index);
            if topic_error.is_some() {
                errors.insert(key, topic_error);
            } else if topic.is_some_and(|info| info.partitions.contains_key(&p.partition_index)) {
                valid.push(CommitPartition {
                    topic: key.0.clone(),
                    partition: p.partition_index,
                    offset: p.committed_offset,
                    leader_epoch: if v >= 6 { p.committed_leader_epoch } else { -1 },
                    metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                    // v1 only: the client's commit time (-1: the broker's).
                    commit_timestamp: (v == 1 && p.commit_timestamp != -1)
                        .then_some(p.commit_timestamp),
                });
            } else {
                errors.insert(key, Some(Error::UnknownTopicOrPartition));
            }
        }
    }
    if !valid.is_empty() {
        let fail = |e: Error, valid: &[CommitPartition]| -> CommitResult {
            valid
                .iter()
                .map(|p| (p.topic.clone(), p.partition, Some(e)))
                .collect()
        };
        let commit = CommitRequest {
            group_id: group_id.clone(),
            generation_id: req.generation_id_or_member_epoch,
            member_id: req.member_id.to_string(),
            group_instance_id: if v >= 7 {
                req.group_instance_id.as_ref().map(|s| s.to_string())
            } else {
                None
            },
            retention_time_ms: if v <= 4 { req.retention_time_ms } else { -1 },
            partitions: valid.clone(),
            api_version: v,
        };
        let (tx, rx) = oneshot::channel();
        let results = match broker.groups.with_group(&group_id, |gs, now| {
            ((), gs.commit_offsets(commit, tx, now))
        }) {
            Ok(()) => rx
                .await
                .unwrap_or_else(|_| fail(Error::NotCoordinator, &valid)),
            Err(e) => fail(e, &valid),
        };
        for (topic, partition, e) in results {
            errors.insert((topic, partition), e);
        }
    }
    let topics = req
        .topics
        .iter()
        .map(|t| {
            OffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            let e = errors
                                .get(&(t.name.0.to_string(), p.partition_index))
                                .copied()
                                .flatten();
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(err_code(e))
                        })
                        .collect(),
                )
        })
        .collect();
    Some(OffsetCommitResponse::default().with_topics(topics))
}

// ------------------------------------------------------------------ OffsetFetch

type FetchedTopics = Vec<(String, Vec<FetchedOffset>)>;

/// Committed offsets of one group; with `require_stable`, waits (up to
/// `offsets.commit.timeout.ms`) until no commit for those partitions is in flight, and
/// also returns the partitions with transactional offsets waiting for their marker
/// (answered UNSTABLE_OFFSET_COMMIT, as Kafka's `getOffsets`).
async fn fetch_group(
    broker: &Broker,
    group_id: &str,
    partitions: Option<Vec<(String, Vec<i32>)>>,
    require_stable: bool,
) -> Result<(FetchedTopics, Vec<(String, i32)>), Error> {
    let coordinator = &broker.groups;
    let shard = coordinator.shard_for(group_id)?;
    if require_stable {
        let deadline = tokio::time::Instant::now()
            + std::time::Duration::from_millis(coordinator.config().offsets_commit_timeout_ms);
        loop {
            let mut progress = shard.progress();
            let pending = coordinator.run(&shard, |gs, _| {
                (
                    gs.has_pending_commits(group_id, partitions.as_deref()),
                    Vec::new(),
                )
            })?;
            if !pending {
                break;
            }
            match tokio::time::timeout_at(deadline, progress.changed()).await {
                Ok(Ok(())) => continue,
                Ok(Err(_)) => return Err(Error::NotCoordinator),
                Err(_) => return Err(Error::UnstableOffsetCommit),
            }
        }
    }
    coordinator.run(&shard, |gs, _| {
        let unstable = if require_stable {
            gs.unstable_txn_offsets(group_id)
        } else {
            Vec::new()
        };
        (
            (gs.fetch_offsets(group_id, partitions.as_deref()), unstable),
            Vec::new(),
        )
    })
}

/// Partitions with undecided transactional offsets: no offset, UNSTABLE_OFFSET_COMMIT.
fn mark_unstable(mut shown: ShownTopics, unstable: &[(String, i32)]) -> ShownTopics {
    for (topic, parts) in shown.iter_mut() {
        for (o, error) in parts.iter_mut() {
            if error.is_none()
                && unstable
                    .iter()
                    .any(|(t, p)| t == topic && *p == o.partition)
            {
                o.offset = -1;
                o.leader_epoch = -1;
                o.metadata.clear();
                *error = Some(Error::UnstableOffsetCommit);
            }
        }
    }
    shown
}

type Wanted = Option<Vec<(String, Vec<i32>)>>;

/// Splits the requested topics into those the principal may DESCRIBE and the refused
/// ones (answered TOPIC_AUTHORIZATION_FAILED per partition, as Kafka's OffsetFetch).
fn split_by_describe(
    broker: &Broker,
    ctx: &RequestContext,
    wanted: Wanted,
) -> (Wanted, Vec<(String, Vec<i32>)>) {
    let Some(wanted) = wanted else {
        return (None, Vec::new());
    };
    let (allowed, refused) = wanted
        .into_iter()
        .partition(|(t, _)| broker.authorize_topic(ctx, AclOperation::Describe, t));
    (Some(allowed), refused)
}

/// The fetched offsets the principal may see (all-topics fetches silently skip the
/// others), followed by the refused topics' error entries.
fn visible(
    broker: &Broker,
    ctx: &RequestContext,
    topics: FetchedTopics,
    refused: Vec<(String, Vec<i32>)>,
) -> ShownTopics {
    let mut shown: ShownTopics = topics
        .into_iter()
        .filter(|(t, _)| broker.authorize_topic(ctx, AclOperation::Describe, t))
        .map(|(t, parts)| (t, parts.into_iter().map(|p| (p, None)).collect()))
        .collect();
    shown.extend(refused.into_iter().map(|(t, parts)| {
        let offsets = parts
            .into_iter()
            .map(|partition| {
                let none = FetchedOffset {
                    partition,
                    offset: -1,
                    leader_epoch: -1,
                    metadata: String::new(),
                };
                (none, Some(Error::TopicAuthorizationFailed))
            })
            .collect();
        (t, offsets)
    }));
    shown
}

/// Offsets as answered: each with its partition-level error.
type ShownTopics = Vec<(String, Vec<(FetchedOffset, Option<Error>)>)>;

pub async fn offset_fetch(
    broker: &Broker,
    ctx: &RequestContext,
    req: OffsetFetchRequest,
) -> Option<OffsetFetchResponse> {
    let v = ctx.api_version;
    if v == 0 {
        return super::zk_offsets::offset_fetch_v0(broker, ctx, req).await;
    }
    let require_stable = v >= 7 && req.require_stable;
    if v >= 8 {
        let mut groups = Vec::new();
        // Each group once (Kafka keys the request's groups by id), so repeating a group
        // with every committed offset cannot multiply the answer.
        let mut seen = HashSet::new();
        for g in req.groups.iter().filter(|g| seen.insert(&g.group_id)) {
            let gid = g.group_id.0.to_string();
            let wanted: Option<Vec<(String, Vec<i32>)>> = g.topics.as_ref().map(|ts| {
                ts.iter()
                    .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
                    .collect()
            });
            let entry = OffsetFetchResponseGroup::default().with_group_id(g.group_id.clone());
            if !broker.authorize_group(ctx, AclOperation::Describe, &gid) {
                groups.push(entry.with_error_code(code(Error::GroupAuthorizationFailed)));
                continue;
            }
            let (wanted, refused) = split_by_describe(broker, ctx, wanted);
            let fetched = fetch_group(broker, &gid, wanted, require_stable).await.map(
                |(topics, unstable)| {
                    mark_unstable(visible(broker, ctx, topics, refused), &unstable)
                },
            );
            groups.push(match fetched {
                Ok(topics) => entry.with_topics(
                    topics
                        .into_iter()
                        .map(|(name, parts)| {
                            OffsetFetchResponseTopics::default()
                                .with_name(TopicName(s(name)))
                                .with_partitions(
                                    parts
                                        .into_iter()
                                        .map(|(p, error)| {
                                            OffsetFetchResponsePartitions::default()
                                                .with_partition_index(p.partition)
                                                .with_committed_offset(p.offset)
                                                .with_committed_leader_epoch(p.leader_epoch)
                                                .with_metadata(Some(s(p.metadata)))
                                                .with_error_code(err_code(error))
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                ),
                Err(e) => entry.with_error_code(code(e)),
            });
        }
        return Some(OffsetFetchResponse::default().with_groups(groups));
    }
    let gid = req.group_id.0.to_string();
    // v1 always names partitions; from v2 null means all.
    let wanted: Option<Vec<(String, Vec<i32>)>> = req.topics.as_ref().map(|ts| {
        ts.iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
            .collect()
    });
    let partition = |p: i32, offset: i64, epoch: i32, metadata: String, e: Option<Error>| {
        OffsetFetchResponsePartition::default()
            .with_partition_index(p)
            .with_committed_offset(offset)
            .with_committed_leader_epoch(if v >= 5 { epoch } else { -1 })
            .with_metadata(Some(s(metadata)))
            .with_error_code(err_code(e))
    };
    let fetched = if broker.authorize_group(ctx, AclOperation::Describe, &gid) {
        let (allowed, refused) = split_by_describe(broker, ctx, wanted.clone());
        fetch_group(broker, &gid, allowed, require_stable)
            .await
            .map(|(topics, unstable)| {
                mark_unstable(visible(broker, ctx, topics, refused), &unstable)
            })
    } else {
        Err(Error::GroupAuthorizationFailed)
    };
    let response = match fetched {
        Ok(topics) => OffsetFetchResponse::default().with_topics(
            topics
                .into_iter()
                .map(|(name, parts)| {
                    OffsetFetchResponseTopic::default()
                        .with_name(TopicName(s(name)))
                        .with_partitions(
                            parts
                                .into_iter()
                                .map(|(p, error)| {
                                    partition(
                                        p.partition,
                                        p.offset,
                                        p.leader_epoch,
                                        p.metadata,
                                        error,
                                    )
                                })
                                .collect(),
                        )
                })
                .collect(),
        ),
        // v1 has no top-level error: Kafka puts it on every requested partition.
        Err(e) if v < 2 => OffsetFetchResponse::default().with_topics(
            wanted
                .unwrap_or_default()
                .into_iter()
                .map(|(name, parts)| {
                    OffsetFetchResponseTopic::default()
                        .with_name(TopicName(s(name)))
                        .with_partitions(
                            parts
                                .into_iter()
                                .map(|p| partition(p, -1, -1, String::new(), Some(e)))
                                .collect(),
                        )
                })
                .collect(),
        ),
        Err(e) => OffsetFetchResponse::default().with_error_code(code(e)),
    };
    Some(response)
}

// ------------------------------------------------------------------ DescribeGroups

pub async fn describe_groups(
    broker: &Broker,
    ctx: &RequestContext,
    req: DescribeGroupsRequest,
) -> Option<DescribeGroupsResponse> {
    let v = ctx.api_version;
    // Each group once: a 1 MB request naming a 1,000-member group 100,000 times would
    // otherwise answer gigabytes. (Clients key the answer by group id.)
    let mut seen = HashSet::new();
    let groups = req
        .groups
        .iter()
        .filter(|gid| seen.insert(*gid))
        .map(|gid| {
            let base = DescribedGroup::default().with_group_id(gid.clone());
            if !broker.authorize_group(ctx, AclOperation::Describe, gid) {
                return base.with_error_code(code(Error::GroupAuthorizationFailed));
            }
            match broker
                .groups
                .with_group(gid, |gs, _| (gs.describe_group(gid), Vec::new()))
            {
                Ok(d) => base
                    .with_group_state(s(d.state))
                    .with_protocol_type(s(d.protocol_type))
                    .with_protocol_data(s(d.protocol))
                    .with_members(
                        d.members
                            .into_iter()
                            .map(|m| {
                                DescribedGroupMember::default()
                                    .with_member_id(s(m.member_id))
                                    .with_group_instance_id(opt(m.group_instance_id))
                                    .with_client_id(s(m.client_id))
                                    .with_client_host(s(m.client_host))
                                    .with_member_metadata(m.metadata)
                                    .with_member_assignment(m.assignment)
                            })
                            .collect(),
                    )
                    .with_authorized_operations(broker.authorized_operations(
                        ctx,
                        v >= 3 && req.include_authorized_operations,
                        ResourceType::Group,
                        gid,
                    )),
                Err(e) => base.with_error_code(code(e)),
            }
        })
        .collect();
    Some(DescribeGroupsResponse::default().with_groups(groups))
}

// ------------------------------------------------------------------ ListGroups

pub async fn list_groups(
    broker: &Broker,
    ctx: &RequestContext,
    req: ListGroupsRequest,
) -> Option<ListGroupsResponse> {
    let v = ctx.api_version;
    let states: Vec<String> = if v >= 4 {
        req.states_filter.iter().map(|s| s.to_lowercase()).collect()
    } else {
        Vec::new()
    };
    // Every gregor group is a classic group.
    let types_ok = v < 5
        || req.types_filter.is_empty()
        || req
            .types_filter
            .iter()
            .any(|t| t.trim().eq_ignore_ascii_case("classic"));
    let mut error = None;
    let mut listed = Vec::new();
    if types_ok {
        for shard in broker.groups.shards() {
            match broker
                .groups
                .run(&shard, |gs, _| (gs.list_groups(&states), Vec::new()))
            {
                Ok(groups) => listed.extend(groups),
                Err(Error::NotCoordinator) => {}
                Err(e) => error = Some(e),
            }
        }
    }
    // Cluster DESCRIBE lists every group, else only those the principal may describe.
    if !broker.authorize_cluster(ctx, AclOperation::Describe) {
        listed.retain(|(gid, _, _)| broker.authorize_group(ctx, AclOperation::Describe, gid));
    }
    let groups = listed
        .into_iter()
        .map(|(gid, protocol_type, state)| {
            ListedGroup::default()
                .with_group_id(GroupId(s(gid)))
                .with_protocol_type(s(protocol_type))
                .with_group_state(s(state.as_str()))
                .with_group_type(s("classic"))
        })
        .collect();
    Some(
        ListGroupsResponse::default()
            .with_error_code(err_code(error))
            .with_groups(groups),
    )
}

// ------------------------------------------------------------------ DeleteGroups

pub async fn delete_groups(
    broker: &Broker,
    ctx: &RequestContext,
    req: DeleteGroupsRequest,
) -> Option<DeleteGroupsResponse> {
    let mut names: Vec<String> = Vec::new();
    for g in &req.groups_names {
        let g = g.0.to_string();
        if !names.contains(&g) {
            names.push(g);
        }
    }
    let mut results: HashMap<String, Option<Error>> = HashMap::new();
    let mut by_shard: BTreeMap<i32, (std::sync::Arc<crate::group::Shard>, Vec<String>)> =
        BTreeMap::new();
    for g in &names {
        if !broker.authorize_group(ctx, AclOperation::Delete, g) {
            results.insert(g.clone(), Some(Error::GroupAuthorizationFailed));
            continue;
        }
        match broker.groups.shard_for(g) {
            Ok(shard) => by_shard
                .entry(shard.partition)
                .or_insert_with(|| (shard, Vec::new()))
                .1
                .push(g.clone()),
            Err(e) => {
                results.insert(g.clone(), Some(e));
            }
        }
    }
    for (_, (shard, gids)) in by_shard {
        let (tx, rx) = oneshot::channel();
        let gids2 = gids.clone();
        match broker
            .groups
            .run(&shard, |gs, _| ((), gs.delete_groups(gids2, tx)))
        {
            Ok(()) => match rx.await {
                Ok(r) => results.extend(r),
                Err(_) => {
                    results.extend(gids.into_iter().map(|g| (g, Some(Error::NotCoordinator))))
                }
            },
            Err(e) => results.extend(gids.into_iter().map(|g| (g, Some(e)))),
        }
    }
    Some(
        DeleteGroupsResponse::default().with_results(
            names
                .into_iter()
                .map(|g| {
                    let e = results.get(&g).copied().flatten();
                    DeletableGroupResult::default()
                        .with_group_id(GroupId(s(g)))
                        .with_error_code(err_code(e))
                })
                .collect(),
        ),
    )
}

// ------------------------------------------------------------------ OffsetDelete

pub async fn offset_delete(
    broker: &Broker,
    ctx: &RequestContext,
    req: OffsetDeleteRequest,
) -> Option<OffsetDeleteResponse> {
    let group_id = req.group_id.0.to_string();
    // Group DELETE for the request, Topic READ per topic (KafkaApis.handleOffsetDeleteRequest).
    if !broker.authorize_group(ctx, AclOperation::Delete, &group_id) {
        return Some(
            OffsetDeleteResponse::default().with_error_code(code(Error::GroupAuthorizationFailed)),
        );
    }
    if group_id.is_empty() {
        return Some(OffsetDeleteResponse::default().with_error_code(code(Error::InvalidGroupId)));
    }
    let image = broker.image();
    let mut errors: HashMap<(String, i32), Option<Error>> = HashMap::new();
    let mut valid: Vec<(String, Vec<i32>)> = Vec::new();
    for t in &req.topics {
        let topic = image.topic(&t.name);
        let readable = broker.authorize_topic(ctx, AclOperation::Read, &t.name);
        let mut parts = Vec::new();
        for p in &t.partitions {
            if !readable {
                errors.insert(
                    (t.name.0.to_string(), p.partition_index),
                    Some(Error::TopicAuthorizationFailed),
                );
            } else if topic.is_some_and(|info| info.partitions.contains_key(&p.partition_index)) {
                parts.push(p.partition_index);
            } else {
                errors.insert(
                    (t.name.0.to_string(), p.partition_index),
                    Some(Error::UnknownTopicOrPartition),
                );
            }
        }
        if !parts.is_empty() {
            valid.push((t.name.0.to_string(), parts));
        }
    }
    if !valid.is_empty() {
        let (tx, rx) = oneshot::channel();
        let outcome = match broker.groups.with_group(&group_id, |gs, _| {
            ((), gs.delete_offsets(&group_id, valid, tx))
        }) {
            Ok(()) => rx.await.unwrap_or(Err(Error::NotCoordinator)),
            Err(e) => Err(e),
        };
        match outcome {
            Ok(result) => {
                for (topic, parts) in result {
                    for (p, e) in parts {
                        errors.insert((topic.clone(), p), e);
                    }
                }
            }
            Err(e) => return Some(OffsetDeleteResponse::default().with_error_code(code(e))),
        }
    }
    let topics = req
        .topics
        .iter()
        .map(|t| {
            OffsetDeleteResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            let e = errors
                                .get(&(t.name.0.to_string(), p.partition_index))
                                .copied()
                                .flatten();
                            OffsetDeleteResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(err_code(e))
                        })
                        .collect(),
                )
        })
        .collect();
    Some(OffsetDeleteResponse::default().with_topics(topics))
}
