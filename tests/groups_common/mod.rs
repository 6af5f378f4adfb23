//! Group-protocol helpers for the `groups_*` integration tests: the consumer protocol
//! encoders and one function per group API over the blocking test client. Everything is
//! sent at explicit versions so each test states what it exercises.

#![allow(dead_code)]

use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTopic;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};

use crate::common::kafka::{topic_name, Client};

pub const NONE: i16 = 0;
pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
pub const OFFSET_METADATA_TOO_LARGE: i16 = 12;
pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
pub const NOT_COORDINATOR: i16 = 16;
pub const ILLEGAL_GENERATION: i16 = 22;
pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
pub const INVALID_GROUP_ID: i16 = 24;
pub const UNKNOWN_MEMBER_ID: i16 = 25;
pub const INVALID_SESSION_TIMEOUT: i16 = 26;
pub const REBALANCE_IN_PROGRESS: i16 = 27;
pub const INVALID_REQUEST: i16 = 42;
pub const NON_EMPTY_GROUP: i16 = 68;
pub const GROUP_ID_NOT_FOUND: i16 = 69;
pub const MEMBER_ID_REQUIRED: i16 = 79;
pub const FENCED_INSTANCE_ID: i16 = 82;
pub const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;

pub fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

pub fn gid(v: &str) -> GroupId {
    GroupId(s(v))
}

/// A consumer-protocol subscription (version 1) to `topics`.
pub fn subscription(topics: &[&str]) -> Bytes {
    let sub =
        ConsumerProtocolSubscription::default().with_topics(topics.iter().map(|t| s(t)).collect());
    let mut out = BytesMut::new();
    out.put_i16(1);
    sub.encode(&mut out, 1).unwrap();
    out.freeze()
}

/// A consumer-protocol assignment (version 1).
pub fn assignment(parts: &[(&str, &[i32])]) -> Bytes {
    let a = ConsumerProtocolAssignment::default().with_assigned_partitions(
        parts
            .iter()
            .map(|(t, p)| {
                AssignedTopic::default()
                    .with_topic(topic_name(t))
                    .with_partitions(p.to_vec())
            })
            .collect(),
    );
    let mut out = BytesMut::new();
    out.put_i16(1);
    a.encode(&mut out, 1).unwrap();
    out.freeze()
}

pub fn range_protocol(topics: &[&str]) -> Vec<(String, Bytes)> {
    vec![("range".to_string(), subscription(topics))]
}

/// Polls FindCoordinator (v3) until the group's coordinator is known: (node id, address).
pub fn find_coordinator(c: &mut Client, group: &str) -> (i32, String) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = c
            .send(
                &FindCoordinatorRequest::default()
                    .with_key(s(group))
                    .with_key_type(0),
                3,
            )
            .expect("FindCoordinator");
        if r.error_code == NONE {
            return (r.node_id.0, format!("{}:{}", r.host, r.port));
        }
        assert!(
            [COORDINATOR_NOT_AVAILABLE, COORDINATOR_LOAD_IN_PROGRESS].contains(&r.error_code),
            "FindCoordinator error {}",
            r.error_code
        );
        assert!(Instant::now() < deadline, "no coordinator for {group}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A client connected to the group's coordinator, once it has loaded the group's
/// partition (a Heartbeat answered with anything but COORDINATOR_LOAD_IN_PROGRESS /
/// NOT_COORDINATOR tells).
pub fn coordinator_client(bootstrap: &mut Client, group: &str) -> Client {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, addr) = find_coordinator(bootstrap, group);
        let mut c = Client::connect(&addr).expect("connect to coordinator");
        let probe = c
            .send(
                &DescribeGroupsRequest::default().with_groups(vec![gid(group)]),
                5,
            )
            .expect("DescribeGroups");
        let code = probe.groups[0].error_code;
        if code == NONE {
            return c;
        }
        assert!(
            [COORDINATOR_LOAD_IN_PROGRESS, NOT_COORDINATOR].contains(&code),
            "DescribeGroups error {code}"
        );
        assert!(
            Instant::now() < deadline,
            "coordinator of {group} never ready"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub struct Join<'a> {
    pub group: &'a str,
    pub member_id: &'a str,
    pub instance: Option<&'a str>,
    pub protocol_type: &'a str,
    pub protocols: Vec<(String, Bytes)>,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
}

impl<'a> Join<'a> {
    pub fn new(group: &'a str, protocols: Vec<(String, Bytes)>) -> Join<'a> {
        Join {
            group,
            member_id: "",
            instance: None,
            protocol_type: "consumer",
            protocols,
            session_timeout_ms: 6_000,
            rebalance_timeout_ms: 20_000,
        }
    }

    pub fn request(&self) -> JoinGroupRequest {
        JoinGroupRequest::default()
            .with_group_id(gid(self.group))
            .with_member_id(s(self.member_id))
            .with_group_instance_id(self.instance.map(s))
            .with_session_timeout_ms(self.session_timeout_ms)
            .with_rebalance_timeout_ms(self.rebalance_timeout_ms)
            .with_protocol_type(s(self.protocol_type))
            .with_protocols(
                self.protocols
                    .iter()
                    .map(|(n, m)| {
                        JoinGroupRequestProtocol::default()
                            .with_name(s(n))
                            .with_metadata(m.clone())
                    })
                    .collect(),
            )
    }

    pub fn send(&self, c: &mut Client, version: i16) -> JoinGroupResponse {
        c.send(&self.request(), version).expect("JoinGroup")
    }

    /// v4+ join of a new dynamic member: MEMBER_ID_REQUIRED, then the real join.
    pub fn send_new(&self, c: &mut Client, version: i16) -> JoinGroupResponse {
        let first = self.send(c, version);
        assert_eq!(first.error_code, MEMBER_ID_REQUIRED);
        assert!(!first.member_id.is_empty());
        let id = first.member_id.to_string();
        Join {
            member_id: &id,
            protocols: self.protocols.clone(),
            ..*self
        }
        .send(c, version)
    }
}

pub fn sync(
    c: &mut Client,
    group: &str,
    generation: i32,
    member: &str,
    assignments: Vec<(String, Bytes)>,
    version: i16,
) -> SyncGroupResponse {
    let mut req = SyncGroupRequest::default()
        .with_group_id(gid(group))
        .with_generation_id(generation)
        .with_member_id(s(member))
        .with_assignments(
            assignments
                .into_iter()
                .map(|(m, a)| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(s(&m))
                        .with_assignment(a)
                })
                .collect(),
        );
    if version >= 5 {
        req = req
            .with_protocol_type(Some(s("consumer")))
            .with_protocol_name(Some(s("range")));
    }
    c.send(&req, version).expect("SyncGroup")
}

pub fn heartbeat(c: &mut Client, group: &str, generation: i32, member: &str) -> i16 {
    c.send(
        &HeartbeatRequest::default()
            .with_group_id(gid(group))
            .with_generation_id(generation)
            .with_member_id(s(member)),
        4,
    )
    .expect("Heartbeat")
    .error_code
}

pub fn leave(c: &mut Client, group: &str, members: &[&str]) -> LeaveGroupResponse {
    c.send(
        &LeaveGroupRequest::default()
            .with_group_id(gid(group))
            .with_members(
                members
                    .iter()
                    .map(|m| MemberIdentity::default().with_member_id(s(m)))
                    .collect(),
            ),
        5,
    )
    .expect("LeaveGroup")
}

/// Commits (topic, partition, offset, metadata); returns (topic, partition, error).
pub fn commit(
    c: &mut Client,
    group: &str,
    generation: i32,
    member: &str,
    offsets: &[(&str, i32, i64, Option<&str>)],
    version: i16,
) -> Vec<(String, i32, i16)> {
    let mut topics: Vec<OffsetCommitRequestTopic> = Vec::new();
    for (t, p, o, m) in offsets {
        let part = OffsetCommitRequestPartition::default()
            .with_partition_index(*p)
            .with_committed_offset(*o)
            .with_committed_leader_epoch(-1)
            .with_committed_metadata(m.map(s));
        match topics.iter_mut().find(|x| x.name.0.as_str() == *t) {
            Some(x) => x.partitions.push(part),
            None => topics.push(
                OffsetCommitRequestTopic::default()
                    .with_name(topic_name(t))
                    .with_partitions(vec![part]),
            ),
        }
    }
    let r = c
        .send(
            &OffsetCommitRequest::default()
                .with_group_id(gid(group))
                .with_generation_id_or_member_epoch(generation)
                .with_member_id(s(member))
                .with_retention_time_ms(-1)
                .with_topics(topics),
            version,
        )
        .expect("OffsetCommit");
    r.topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.name.0.to_string(), p.partition_index, p.error_code))
        })
        .collect()
}

/// (topic, partition, committed offset, metadata, error).
pub type FetchedRow = (String, i32, i64, String, i16);

/// Committed offsets via OffsetFetch v8: (group error, [(topic, partition, offset,
/// metadata, error)]). `None` partitions = all.
pub fn fetch(
    c: &mut Client,
    group: &str,
    partitions: Option<&[(&str, i32)]>,
) -> (i16, Vec<FetchedRow>) {
    let topics = partitions.map(|ps| {
        let mut topics: Vec<OffsetFetchRequestTopics> = Vec::new();
        for (t, p) in ps {
            match topics.iter_mut().find(|x| x.name.0.as_str() == *t) {
                Some(x) => x.partition_indexes.push(*p),
                None => topics.push(
                    OffsetFetchRequestTopics::default()
                        .with_name(topic_name(t))
                        .with_partition_indexes(vec![*p]),
                ),
            }
        }
        topics
    });
    let r = c
        .send(
            &OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
                .with_group_id(gid(group))
                .with_topics(topics)]),
            8,
        )
        .expect("OffsetFetch");
    let g = &r.groups[0];
    let rows = g
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(move |p| {
                (
                    t.name.0.to_string(),
                    p.partition_index,
                    p.committed_offset,
                    p.metadata
                        .as_ref()
                        .map(|m| m.to_string())
                        .unwrap_or_default(),
                    p.error_code,
                )
            })
        })
        .collect();
    (g.error_code, rows)
}

pub fn describe(c: &mut Client, group: &str) -> describe_groups_response::DescribedGroup {
    let r = c
        .send(
            &DescribeGroupsRequest::default().with_groups(vec![gid(group)]),
            5,
        )
        .expect("DescribeGroups");
    r.groups.into_iter().next().expect("one group")
}

/// Polls `f` every 20 ms until it returns `Some`, or panics after `timeout`.
pub fn poll<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
