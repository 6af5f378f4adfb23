//! The other half of the authorization matrix (security_acls.rs has the refusals): for
//! every API gregor serves, the ACL Kafka's `AclAuthorizer` asks for lets the request
//! through and it takes effect, while the next weaker ACL does not; and Kafka's
//! precedence holds end to end: DENY from any pattern (literal, prefixed, the `*`
//! wildcard) beats ALLOW from any other, per principal and host, and implied operations
//! allow but never deny. "alice" connects from 127.0.0.2 (`common::authz`).

mod common;

use std::time::Duration;

use common::authz::*;
use common::kafka::{topic_name, Client};
use common::wait_until;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;

// Kafka's AclOperation and ResourceType codes beyond common::authz's.
const CLUSTER: i8 = 4;
const CREATE: i8 = 5;
const DELETE: i8 = 6;
const ALTER: i8 = 7;
const DESCRIBE: i8 = 8;
const DESCRIBE_CONFIGS: i8 = 10;
const ALTER_CONFIGS: i8 = 11;
const IDEMPOTENT_WRITE: i8 = 12;
const CLUSTER_NAME: &str = "kafka-cluster";
const MEMBER_ID_REQUIRED: i16 = 79;

/// Grants alice `op` on a resource, checking the answer.
fn grant(admin: &mut Client, rt: i8, name: &str, pattern: i8, op: i8) {
    assert_eq!(
        create_acls(admin, vec![acl(rt, name, pattern, ALICE, op, ALLOW)]),
        vec![0],
        "CreateAcls {rt}/{name}/{op}"
    );
}

fn describe_configs(c: &mut Client, rt: i8, name: &str) -> i16 {
    let req =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(rt)
            .with_resource_name(s(name))
            .with_configuration_keys(None)]);
    c.send(&req, 4).expect("DescribeConfigs").results[0].error_code
}

fn create_partitions(c: &mut Client, topic: &str, count: i32) -> i16 {
    c.create_partitions(topic, count, 10_000)
}

fn delete_records(c: &mut Client, topic: &str, offset: i64) -> i16 {
    let req = DeleteRecordsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![DeleteRecordsTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![DeleteRecordsPartition::default()
                .with_partition_index(0)
                .with_offset(offset)])]);
    c.send(&req, 2).expect("DeleteRecords").topics[0].partitions[0].error_code
}

fn delete_topic(c: &mut Client, topic: &str) -> i16 {
    let req = DeleteTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![
            DeleteTopicState::default().with_name(Some(topic_name(topic)))
        ]);
    c.send(&req, 6).expect("DeleteTopics").responses[0].error_code
}

fn list_groups(c: &mut Client) -> Vec<String> {
    let mut groups: Vec<String> = c
        .send(&ListGroupsRequest::default(), 4)
        .expect("ListGroups")
        .groups
        .iter()
        .map(|g| g.group_id.to_string())
        .collect();
    groups.sort();
    groups
}

fn describe_group(c: &mut Client, group: &str) -> (i16, String) {
    let req = DescribeGroupsRequest::default().with_groups(vec![GroupId(s(group))]);
    let g = &c.send(&req, 5).expect("DescribeGroups").groups[0];
    (g.error_code, g.group_state.to_string())
}

fn join(c: &mut Client, group: &str, member: &str) -> JoinGroupResponse {
    let req = JoinGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(s(member))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(s("range"))
            .with_metadata(bytes::Bytes::from_static(&[
                0, 1, 0, 0, 0, 0, 0, 0, 0, 0,
            ]))]);
    c.send(&req, 5).expect("JoinGroup")
}

/// A whole member lifecycle (JoinGroup twice for the member id, SyncGroup, Heartbeat,
/// LeaveGroup): the error codes of each step.
fn member_lifecycle(c: &mut Client, group: &str) -> Vec<i16> {
    let first = join(c, group, "");
    if first.error_code != MEMBER_ID_REQUIRED {
        return vec![first.error_code];
    }
    let joined = join(c, group, first.member_id.as_str());
    if joined.error_code != 0 {
        return vec![first.error_code, joined.error_code];
    }
    let member = joined.member_id.clone();
    let sync = SyncGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id(joined.generation_id)
        .with_member_id(member.clone())
        .with_assignments(vec![SyncGroupRequestAssignment::default()
            .with_member_id(member.clone())
            .with_assignment(bytes::Bytes::from_static(&[0, 1, 0, 0, 0, 0, 0, 0]))]);
    let sync = c.send(&sync, 3).expect("SyncGroup").error_code;
    let hb = HeartbeatRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id(joined.generation_id)
        .with_member_id(member.clone());
    let hb = c.send(&hb, 3).expect("Heartbeat").error_code;
    let leave = LeaveGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_members(vec![MemberIdentity::default().with_member_id(member)]);
    let leave = c.send(&leave, 3).expect("LeaveGroup").error_code;
    vec![first.error_code, joined.error_code, sync, hb, leave]
}

fn offset_delete(c: &mut Client, group: &str, topic: &str) -> (i16, i16) {
    let req = OffsetDeleteRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_topics(vec![OffsetDeleteRequestTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![
                OffsetDeleteRequestPartition::default().with_partition_index(0)
            ])]);
    let r = c.send(&req, 0).expect("OffsetDelete");
    let partition = r
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .map_or(0, |p| p.error_code);
    (r.error_code, partition)
}

fn delete_group(c: &mut Client, group: &str) -> i16 {
    let req = DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s(group))]);
    c.send(&req, 2).expect("DeleteGroups").results[0].error_code
}

fn describe_cluster(c: &mut Client) -> i16 {
    c.send(&DescribeClusterRequest::default(), 0)
        .expect("DescribeCluster")
        .error_code
}

fn describe_acls(c: &mut Client) -> (i16, usize) {
    let req = DescribeAclsRequest::default()
        .with_resource_type_filter(1)
        .with_resource_name_filter(None)
        .with_pattern_type_filter(1)
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_operation(1)
        .with_permission_type(1);
    let r = c.send(&req, 3).expect("DescribeAcls");
    (r.error_code, r.resources.len())
}

fn delete_acls_of_topic(c: &mut Client, topic: &str) -> (i16, usize) {
    let filter = DeleteAclsFilter::default()
        .with_resource_type_filter(TOPIC)
        .with_resource_name_filter(Some(s(topic)))
        .with_pattern_type_filter(LITERAL)
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_operation(1)
        .with_permission_type(1);
    let r = c
        .send(&DeleteAclsRequest::default().with_filters(vec![filter]), 3)
        .expect("DeleteAcls");
    let f = &r.filter_results[0];
    (f.error_code, f.matching_acls.len())
}

#[test]
fn every_api_succeeds_with_the_acl_kafka_asks_for() {
    let cluster = secured_cluster(1);
    let addr = cluster.brokers[0].addr();
    let mut admin = cluster.client(0);
    for t in ["t", "d"] {
        assert_eq!(admin.create_topic(t, 1, 1, &[]), 0);
        assert_eq!(produce_code(&mut admin, t), 0);
        assert_eq!(produce_code(&mut admin, t), 0);
    }
    wait_until(Duration::from_secs(20), "the group coordinator", || {
        find_coordinator(&mut admin, "g") == 0
    });
    wait_until(Duration::from_secs(20), "a first commit", || {
        commit(&mut admin, "g", "t", 1) == 0
    });
    let mut a = Client::connect_from(&addr, ALICE).unwrap();

    // Topic DESCRIBE: Metadata by name, ListOffsets, OffsetForLeaderEpoch (consumer form).
    assert_eq!(a.list_offset("t", 0, -1).0, TOPIC_AUTHZ);
    grant(&mut admin, TOPIC, "t", LITERAL, DESCRIBE);
    assert_eq!(topic_codes_metadata(&mut a, Some(&["t"]))[0].1, 0);
    assert_eq!(a.list_offset("t", 0, -1), (0, 2));
    assert_eq!(consumer_offset_for_leader_epoch(&mut a, "t"), 0);
    // ...but DESCRIBE is not READ, WRITE, DESCRIBE_CONFIGS or ALTER.
    assert_eq!(consumer_fetch(&mut a, "t"), TOPIC_AUTHZ);
    assert_eq!(produce_code(&mut a, "t"), TOPIC_AUTHZ);
    assert_eq!(describe_configs(&mut a, 2, "t"), TOPIC_AUTHZ);
    assert_eq!(create_partitions(&mut a, "t", 2), TOPIC_AUTHZ);

    // Topic DESCRIBE_CONFIGS, then ALTER_CONFIGS (AlterConfigs and IncrementalAlterConfigs).
    grant(&mut admin, TOPIC, "t", LITERAL, DESCRIBE_CONFIGS);
    assert_eq!(describe_configs(&mut a, 2, "t"), 0);
    assert_eq!(
        legacy_alter_config(&mut a, "t", "retention.ms", "1000"),
        TOPIC_AUTHZ
    );
    grant(&mut admin, TOPIC, "t", LITERAL, ALTER_CONFIGS);
    assert_eq!(
        legacy_alter_config(&mut a, "t", "retention.ms", "3600000"),
        0
    );
    // The value reaches DescribeConfigs through ZooKeeper (a config change
    // notification), as in Kafka: wait for it.
    wait_until(Duration::from_secs(10), "retention.ms 3600000", || {
        topic_config(&mut admin, "t", "retention.ms").1.as_deref() == Some("3600000")
    });
    assert_eq!(alter_config(&mut a, "t", "retention.ms", "7200000"), 0);
    wait_until(Duration::from_secs(10), "retention.ms 7200000", || {
        topic_config(&mut admin, "t", "retention.ms").1.as_deref() == Some("7200000")
    });
    // ALTER_CONFIGS implies DESCRIBE_CONFIGS (on "d", where alice has nothing else).
    assert_eq!(describe_configs(&mut a, 2, "d"), TOPIC_AUTHZ);
    grant(&mut admin, TOPIC, "d", LITERAL, ALTER_CONFIGS);
    assert_eq!(describe_configs(&mut a, 2, "d"), 0);

    // Topic ALTER: CreatePartitions.
    grant(&mut admin, TOPIC, "t", LITERAL, ALTER);
    assert_eq!(create_partitions(&mut a, "t", 2), 0);
    assert_eq!(partitions_of(&mut admin, "t"), 2);

    // Topic WRITE: Produce, and InitProducerId (WRITE on any topic).
    assert_eq!(init_producer_id(&mut a), CLUSTER_AUTHZ);
    grant(&mut admin, TOPIC, "t", LITERAL, WRITE);
    assert_eq!(produce_code(&mut a, "t"), 0);
    assert_eq!(latest(&mut admin, "t"), 3);
    assert_eq!(init_producer_id(&mut a), 0);

    // Topic READ: Fetch.
    grant(&mut admin, TOPIC, "t", LITERAL, READ);
    assert_eq!(consumer_fetch(&mut a, "t"), 0);

    // Topic DELETE: DeleteRecords, DeleteTopics (on "d").
    assert_eq!(delete_records(&mut a, "d", 1), TOPIC_AUTHZ);
    grant(&mut admin, TOPIC, "d", LITERAL, DELETE);
    assert_eq!(delete_records(&mut a, "d", 1), 0);
    assert_eq!(admin.list_offset("d", 0, -2), (0, 1), "log start moved");
    assert_eq!(delete_topic(&mut a, "d"), 0);
    wait_until(Duration::from_secs(20), "d deleted", || {
        topic_codes_metadata(&mut admin, Some(&["d"]))[0].1 == 3
    });

    // Topic CREATE on a prefix: CreateTopics of matching names only; Cluster CREATE: any.
    grant(&mut admin, TOPIC, "new-", PREFIXED, CREATE);
    assert_eq!(a.create_topic("new-1", 1, 1, &[]), 0);
    assert_eq!(a.create_topic("other-1", 1, 1, &[]), TOPIC_AUTHZ);
    grant(&mut admin, CLUSTER, CLUSTER_NAME, LITERAL, CREATE);
    assert_eq!(a.create_topic("other-1", 1, 1, &[]), 0);

    // Cluster IDEMPOTENT_WRITE alone is enough for InitProducerId (another client host
    // has no topic WRITE at all).
    let bob = "127.0.0.4";
    let mut b = Client::connect_from(&addr, bob).unwrap();
    assert_eq!(init_producer_id(&mut b), CLUSTER_AUTHZ);
    assert_eq!(
        create_acls(
            &mut admin,
            vec![acl(
                CLUSTER,
                CLUSTER_NAME,
                LITERAL,
                bob,
                IDEMPOTENT_WRITE,
                ALLOW
            )]
        ),
        vec![0]
    );
    assert_eq!(init_producer_id(&mut b), 0);

    // Cluster DESCRIBE: DescribeCluster, ListGroups of every group, DescribeAcls,
    // DescribeUserScramCredentials.
    assert_eq!(describe_cluster(&mut a), CLUSTER_AUTHZ);
    assert!(list_groups(&mut a).is_empty());
    assert_eq!(describe_acls(&mut a).0, CLUSTER_AUTHZ);
    assert_eq!(describe_scram(&mut a, "nobody").0, CLUSTER_AUTHZ);
    grant(&mut admin, CLUSTER, CLUSTER_NAME, LITERAL, DESCRIBE);
    assert_eq!(describe_cluster(&mut a), 0);
    assert_eq!(list_groups(&mut a), vec!["g".to_string()]);
    let (err, n) = describe_acls(&mut a);
    assert!(err == 0 && n >= 5, "{err} {n}");
    assert_eq!(
        describe_scram(&mut a, "nobody"),
        (0, 91),
        "RESOURCE_NOT_FOUND: authorized"
    );
    // Broker configs need Cluster DESCRIBE_CONFIGS.
    assert_eq!(describe_configs(&mut a, 4, "1"), CLUSTER_AUTHZ);
    grant(&mut admin, CLUSTER, CLUSTER_NAME, LITERAL, DESCRIBE_CONFIGS);
    assert_eq!(describe_configs(&mut a, 4, "1"), 0);

    // Cluster ALTER: CreateAcls, DeleteAcls, AlterUserScramCredentials.
    assert_eq!(
        create_acls(&mut a, vec![acl(TOPIC, "x", LITERAL, "*", READ, ALLOW)]),
        vec![CLUSTER_AUTHZ]
    );
    assert_eq!(upsert_scram(&mut a, "carol"), CLUSTER_AUTHZ);
    grant(&mut admin, CLUSTER, CLUSTER_NAME, LITERAL, ALTER);
    assert_eq!(
        create_acls(&mut a, vec![acl(TOPIC, "x", LITERAL, "*", READ, ALLOW)]),
        vec![0]
    );
    assert_eq!(delete_acls_of_topic(&mut a, "x"), (0, 1));
    assert_eq!(upsert_scram(&mut a, "carol"), 0);
    assert_eq!(describe_scram(&mut admin, "carol"), (0, 0));

    // Groups. Group DESCRIBE: FindCoordinator, DescribeGroups, ListGroups (without
    // Cluster DESCRIBE, only described groups are listed: seen from bob).
    assert_eq!(find_coordinator(&mut b, "g"), GROUP_AUTHZ);
    assert_eq!(
        create_acls(
            &mut admin,
            vec![acl(GROUP, "g", LITERAL, bob, DESCRIBE, ALLOW)]
        ),
        vec![0]
    );
    assert_eq!(find_coordinator(&mut b, "g"), 0);
    assert_eq!(describe_group(&mut b, "g").0, 0);
    assert_eq!(list_groups(&mut b), vec!["g".to_string()]);
    // DESCRIBE is not READ: no membership, no commits.
    assert_eq!(member_lifecycle(&mut b, "g"), vec![GROUP_AUTHZ]);
    // Group READ: JoinGroup, SyncGroup, Heartbeat, LeaveGroup; with Topic READ, commits.
    assert_eq!(member_lifecycle(&mut a, "m"), vec![GROUP_AUTHZ]);
    grant(&mut admin, GROUP, "m", LITERAL, READ);
    assert_eq!(
        member_lifecycle(&mut a, "m"),
        vec![MEMBER_ID_REQUIRED, 0, 0, 0, 0]
    );
    assert_eq!(commit(&mut a, "m", "t", 2), 0);
    assert_eq!(committed(&mut admin, "m", "t"), (0, 2));
    assert_eq!(describe_group(&mut a, "m"), (0, "Empty".to_string()));
    // Group DELETE (with Topic READ): OffsetDelete, then DeleteGroups.
    assert_eq!(offset_delete(&mut a, "m", "t").0, GROUP_AUTHZ);
    assert_eq!(delete_group(&mut a, "m"), GROUP_AUTHZ);
    grant(&mut admin, GROUP, "m", LITERAL, DELETE);
    assert_eq!(offset_delete(&mut a, "m", "t"), (0, 0));
    assert_eq!(committed(&mut admin, "m", "t"), (0, -1));
    assert_eq!(delete_group(&mut a, "m"), 0);
    assert_eq!(describe_group(&mut admin, "m").1, "Dead");
}

#[test]
fn deny_wins_from_any_pattern_and_only_for_its_principal_and_host() {
    let cluster = secured_cluster(1);
    let addr = cluster.brokers[0].addr();
    let mut admin = cluster.client(0);
    for t in ["p-1", "p-2", "q"] {
        assert_eq!(admin.create_topic(t, 1, 1, &[]), 0);
        assert_eq!(produce_code(&mut admin, t), 0);
    }
    let mut a = Client::connect_from(&addr, ALICE).unwrap();
    let bob = "127.0.0.4";
    let mut b = Client::connect_from(&addr, bob).unwrap();
    // The `*` topic wildcard allows READ for everyone (principal `User:*`, any host).
    let everyone = acl(TOPIC, "*", LITERAL, "*", READ, ALLOW).with_principal(s("User:*"));
    assert_eq!(create_acls(&mut admin, vec![everyone]), vec![0]);
    for t in ["p-1", "p-2", "q"] {
        assert_eq!(consumer_fetch(&mut a, t), 0, "{t}");
        assert_eq!(consumer_fetch(&mut b, t), 0, "{t}");
    }
    // A prefixed DENY for alice's host beats the wildcard and a literal ALLOW...
    assert_eq!(
        create_acls(
            &mut admin,
            vec![
                acl(TOPIC, "p-1", LITERAL, ALICE, READ, ALLOW),
                acl(TOPIC, "p-", PREFIXED, ALICE, READ, DENY),
            ]
        ),
        vec![0, 0]
    );
    assert_eq!(consumer_fetch(&mut a, "p-1"), TOPIC_AUTHZ);
    assert_eq!(consumer_fetch(&mut a, "p-2"), TOPIC_AUTHZ);
    assert_eq!(consumer_fetch(&mut a, "q"), 0, "outside the prefix");
    // ...for alice's host only.
    assert_eq!(consumer_fetch(&mut b, "p-1"), 0);
    // A DENY of READ does not deny the DESCRIBE an ALLOW READ implies (Kafka denies only
    // the operation named, or ALL): Metadata still shows p-1 to alice.
    assert_eq!(topic_codes_metadata(&mut a, Some(&["p-1"]))[0].1, 0);
    // A literal DENY on the wildcard resource denies every topic for its principal.
    assert_eq!(
        create_acls(&mut admin, vec![acl(TOPIC, "*", LITERAL, bob, READ, DENY)]),
        vec![0]
    );
    assert_eq!(consumer_fetch(&mut b, "q"), TOPIC_AUTHZ);
    assert_eq!(consumer_fetch(&mut a, "q"), 0);
    // DENY ALL on a literal topic beats every ALLOW, implied DESCRIBE included: Metadata
    // hides the topic.
    assert_eq!(
        create_acls(&mut admin, vec![acl(TOPIC, "q", LITERAL, ALICE, ALL, DENY)]),
        vec![0]
    );
    assert_eq!(consumer_fetch(&mut a, "q"), TOPIC_AUTHZ);
    assert_eq!(topic_codes_metadata(&mut a, Some(&["q"]))[0].1, TOPIC_AUTHZ);
    // The brokers' own ALL from 127.0.0.1 is untouched.
    assert_eq!(consumer_fetch(&mut admin, "q"), 0);
}
