//! Shared pieces of the authorization tests (security_acls*.rs): a cluster with Kafka's
//! ACL authorizer whose brokers (and the admin) connect from 127.0.0.1, principals told
//! apart by client address, and one-line calls of the APIs the matrix checks.
use super::kafka::{batch, topic_name, Client};
use super::{Cluster, Coordinator};
use kafka_protocol::messages::alter_user_scram_credentials_request::ScramCredentialUpsertion;
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;

/// Client addresses: the brokers and the admin connect from 127.0.0.1.
pub const ALICE: &str = "127.0.0.2";
pub const MALLORY: &str = "127.0.0.3";

// Kafka error codes.
pub const TOPIC_AUTHZ: i16 = 29;
pub const GROUP_AUTHZ: i16 = 30;
pub const CLUSTER_AUTHZ: i16 = 31;
pub const INVALID_TOPIC: i16 = 17;
pub const REQUEST_TIMED_OUT: i16 = 7;

pub fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// The authorizer settings every broker of these tests runs with.
pub const AUTHZ: &[(&str, &str)] = &[(
    "authorizer.class.name",
    "kafka.security.authorizer.AclAuthorizer",
)];

/// ZooKeeper up, the brokers' ACLs (everything, from 127.0.0.1) stored, then `n` brokers.
pub fn secured_cluster(n: usize) -> Cluster {
    let mut cluster = Cluster::start(Coordinator::Gregor, 0, &[]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let zk = zookeeper_client::Client::connect(&cluster.zk.connect_string()).await.unwrap();
        let opts = zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all());
        let brokers_json = br#"{"version":1,"acls":[{"principal":"User:ANONYMOUS","permissionType":"Allow","operation":"All","host":"127.0.0.1"}]}"#;
        for (dir, name) in [("Cluster", "kafka-cluster"), ("Topic", "*"), ("Group", "*")] {
            zk.mkdir(&format!("/kafka-acl/{dir}"), &opts).await.unwrap();
            zk.create(&format!("/kafka-acl/{dir}/{name}"), brokers_json, &opts).await.unwrap();
        }
    });
    for id in 1..=n as i32 {
        cluster.add_broker(id, AUTHZ);
    }
    for i in 0..n {
        cluster.wait_for_broker(i);
    }
    cluster
}

pub fn acl(rt: i8, name: &str, pattern: i8, host: &str, op: i8, perm: i8) -> AclCreation {
    AclCreation::default()
        .with_resource_type(rt)
        .with_resource_name(s(name))
        .with_resource_pattern_type(pattern)
        .with_principal(s("User:ANONYMOUS"))
        .with_host(s(host))
        .with_operation(op)
        .with_permission_type(perm)
}

// Kafka's codes: resource TOPIC 2, GROUP 3, CLUSTER 4; pattern LITERAL 3, PREFIXED 4;
// operation ALL 2, READ 3, WRITE 4, DELETE 6, DESCRIBE 8; DENY 2, ALLOW 3.
pub const TOPIC: i8 = 2;
pub const GROUP: i8 = 3;
pub const LITERAL: i8 = 3;
pub const PREFIXED: i8 = 4;
pub const ALL: i8 = 2;
pub const READ: i8 = 3;
pub const WRITE: i8 = 4;
pub const DENY: i8 = 2;
pub const ALLOW: i8 = 3;

pub fn create_acls(c: &mut Client, acls: Vec<AclCreation>) -> Vec<i16> {
    let resp = c
        .send(&CreateAclsRequest::default().with_creations(acls), 3)
        .expect("CreateAcls");
    resp.results.iter().map(|r| r.error_code).collect()
}

pub fn produce_code(c: &mut Client, topic: &str) -> i16 {
    c.produce(topic, 0, batch(&[b"v"], Compression::None), 1).0
}

pub fn latest(c: &mut Client, topic: &str) -> i64 {
    let (err, offset) = c.list_offset(topic, 0, -1);
    assert_eq!(err, 0);
    offset
}

pub fn topic_codes_metadata(c: &mut Client, topics: Option<&[&str]>) -> Vec<(Option<String>, i16)> {
    let md = c.metadata(topics).expect("metadata");
    md.topics
        .iter()
        .map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.error_code))
        .collect()
}

pub fn find_coordinator(c: &mut Client, group: &str) -> i16 {
    let req = FindCoordinatorRequest::default()
        .with_key_type(0)
        .with_coordinator_keys(vec![s(group)]);
    c.send(&req, 4).expect("FindCoordinator").coordinators[0].error_code
}

pub fn commit(c: &mut Client, group: &str, topic: &str, offset: i64) -> i16 {
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(s(""))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(offset)])]);
    c.send(&req, 8).expect("OffsetCommit").topics[0].partitions[0].error_code
}

/// (group error, committed offset of topic-0 or -1).
pub fn committed(c: &mut Client, group: &str, topic: &str) -> (i16, i64) {
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_topics(Some(vec![
            offset_fetch_request::OffsetFetchRequestTopic::default()
                .with_name(topic_name(topic))
                .with_partition_indexes(vec![0]),
        ]));
    let resp = c.send(&req, 7).expect("OffsetFetch");
    let offset = resp
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .map_or(-1, |p| p.committed_offset);
    let perr = resp
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .map_or(0, |p| p.error_code);
    (
        if resp.error_code != 0 {
            resp.error_code
        } else {
            perr
        },
        offset,
    )
}

pub fn partitions_of(c: &mut Client, topic: &str) -> usize {
    c.metadata(Some(&[topic])).unwrap().topics[0]
        .partitions
        .len()
}

pub fn topic_config(c: &mut Client, topic: &str, key: &str) -> (i16, Option<String>) {
    let req =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s(topic))
            .with_configuration_keys(Some(vec![s(key)]))]);
    let r = c.send(&req, 4).expect("DescribeConfigs");
    let res = &r.results[0];
    (
        res.error_code,
        res.configs
            .first()
            .and_then(|c| c.value.as_ref().map(|v| v.to_string())),
    )
}

pub fn alter_config(c: &mut Client, topic: &str, key: &str, value: &str) -> i16 {
    c.set_config(2, topic, key, value)
}

pub fn init_producer_id(c: &mut Client) -> i16 {
    let req = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    c.send(&req, 4).expect("InitProducerId").error_code
}

pub fn consumer_fetch(c: &mut Client, topic: &str) -> i16 {
    c.fetch(topic, 0, 0, 0).0
}

pub fn legacy_alter_config(c: &mut Client, topic: &str, key: &str, value: &str) -> i16 {
    use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
    let req = AlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
        .with_resource_type(2)
        .with_resource_name(s(topic))
        .with_configs(vec![AlterableConfig::default()
            .with_name(s(key))
            .with_value(Some(s(value)))])]);
    c.send(&req, 2).expect("AlterConfigs").responses[0].error_code
}

pub fn consumer_offset_for_leader_epoch(c: &mut Client, topic: &str) -> i16 {
    let req = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![OffsetForLeaderTopic::default()
            .with_topic(topic_name(topic))
            .with_partitions(vec![OffsetForLeaderPartition::default()
                .with_partition(0)
                .with_leader_epoch(0)
                .with_current_leader_epoch(-1)])]);
    c.send(&req, 4).expect("OffsetForLeaderEpoch").topics[0].partitions[0].error_code
}

pub fn describe_scram(c: &mut Client, user: &str) -> (i16, i16) {
    let req = DescribeUserScramCredentialsRequest::default()
        .with_users(Some(vec![UserName::default().with_name(s(user))]));
    let r = c.send(&req, 0).expect("DescribeUserScramCredentials");
    (r.error_code, r.results.first().map_or(0, |u| u.error_code))
}

pub fn upsert_scram(c: &mut Client, user: &str) -> i16 {
    let req = AlterUserScramCredentialsRequest::default().with_upsertions(vec![
        ScramCredentialUpsertion::default()
            .with_name(s(user))
            .with_mechanism(2)
            .with_iterations(4096)
            .with_salt(bytes::Bytes::from_static(b"salt-salt"))
            .with_salted_password(bytes::Bytes::from(vec![7u8; 64])),
    ]);
    c.send(&req, 0).expect("AlterUserScramCredentials").results[0].error_code
}
