//! Authorization matrix against real broker processes with Kafka's ACL authorizer.
//!
//! Every connection on a PLAINTEXT listener is `User:ANONYMOUS`, so principals are told
//! apart by client address, which ACL hosts match: the brokers (and the admin) connect
//! from 127.0.0.1, "alice" from 127.0.0.2 and "mallory" (no ACLs) from 127.0.0.3
//! (`common::authz`; SASL principals are checked by the compat tests). The
//! brokers' own ACLs are written straight into ZooKeeper in Kafka's layout before the
//! first broker starts, as `kafka-acls --authorizer-properties zookeeper.connect=…` does.

mod common;

use std::time::Duration;

use common::authz::*;
use common::kafka::{batch, topic_name, Client};
use common::{wait_until, Cluster, Coordinator};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::records::Compression;

#[test]
fn every_api_refuses_a_principal_without_acls_and_leaves_state_unchanged() {
    let cluster = secured_cluster(1);
    let addr = cluster.brokers[0].addr();
    let mut admin = cluster.client(0);
    assert_eq!(admin.create_topic("t", 1, 1, &[]), 0);
    assert_eq!(admin.create_topic("logs-a", 1, 1, &[]), 0);
    assert_eq!(produce_code(&mut admin, "t"), 0);
    wait_until(Duration::from_secs(20), "the group coordinator", || {
        find_coordinator(&mut admin, "g") == 0
    });
    wait_until(Duration::from_secs(20), "a first commit", || {
        commit(&mut admin, "g", "t", 1) == 0
    });
    let mut m = Client::connect_from(&addr, MALLORY).unwrap();

    // Metadata: hidden from the all-topics list, TOPIC_AUTHORIZATION_FAILED by name.
    assert!(topic_codes_metadata(&mut m, None).is_empty());
    assert_eq!(
        topic_codes_metadata(&mut m, Some(&["t"])),
        vec![(Some("t".into()), TOPIC_AUTHZ)]
    );
    // Produce / Fetch / ListOffsets / DeleteRecords: per partition, nothing written or deleted.
    assert_eq!(produce_code(&mut m, "t"), TOPIC_AUTHZ);
    assert_eq!(latest(&mut admin, "t"), 1);
    assert_eq!(consumer_fetch(&mut m, "t"), TOPIC_AUTHZ);
    assert_eq!(m.list_offset("t", 0, -1).0, TOPIC_AUTHZ);
    assert_eq!(consumer_offset_for_leader_epoch(&mut m, "t"), TOPIC_AUTHZ);
    let del = DeleteRecordsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![DeleteRecordsTopic::default()
            .with_name(topic_name("t"))
            .with_partitions(vec![DeleteRecordsPartition::default()
                .with_partition_index(0)
                .with_offset(1)])]);
    assert_eq!(
        m.send(&del, 2).unwrap().topics[0].partitions[0].error_code,
        TOPIC_AUTHZ
    );
    assert_eq!(admin.list_offset("t", 0, -2), (0, 0), "log start unchanged");
    // Topic administration.
    assert_eq!(m.create_topic("m1", 1, 1, &[]), TOPIC_AUTHZ);
    assert_eq!(
        topic_codes_metadata(&mut admin, Some(&["m1"]))[0].1,
        3,
        "m1 was not created"
    );
    let dt = DeleteTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![
            DeleteTopicState::default().with_name(Some(topic_name("t")))
        ]);
    assert_eq!(m.send(&dt, 6).unwrap().responses[0].error_code, TOPIC_AUTHZ);
    let cp = CreatePartitionsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![CreatePartitionsTopic::default()
            .with_name(topic_name("t"))
            .with_count(2)]);
    assert_eq!(m.send(&cp, 3).unwrap().results[0].error_code, TOPIC_AUTHZ);
    assert_eq!(
        partitions_of(&mut admin, "t"),
        1,
        "t still exists with one partition"
    );
    // Configs.
    assert_eq!(topic_config(&mut m, "t", "retention.ms").0, TOPIC_AUTHZ);
    assert_eq!(
        alter_config(&mut m, "t", "retention.ms", "1000"),
        TOPIC_AUTHZ
    );
    assert_eq!(
        legacy_alter_config(&mut m, "t", "retention.ms", "1000"),
        TOPIC_AUTHZ
    );
    assert_eq!(
        topic_config(&mut admin, "t", "retention.ms").1.as_deref(),
        Some("604800000")
    );
    let broker_cfg =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(s("1"))]);
    assert_eq!(
        m.send(&broker_cfg, 4).unwrap().results[0].error_code,
        CLUSTER_AUTHZ
    );
    // Cluster.
    assert_eq!(
        m.send(&DescribeClusterRequest::default().with_endpoint_type(1), 1)
            .unwrap()
            .error_code,
        CLUSTER_AUTHZ
    );
    assert_eq!(init_producer_id(&mut m), CLUSTER_AUTHZ);
    // SCRAM credentials: Cluster DESCRIBE / ALTER; nobody was created.
    assert_eq!(describe_scram(&mut m, "mallory").0, CLUSTER_AUTHZ);
    assert_eq!(upsert_scram(&mut m, "mallory"), CLUSTER_AUTHZ);
    assert_eq!(describe_scram(&mut admin, "mallory"), (0, 91));
    // Groups.
    assert_eq!(find_coordinator(&mut m, "g"), GROUP_AUTHZ);
    let join = JoinGroupRequest::default()
        .with_group_id(GroupId(s("g")))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(s(""))
        .with_protocol_type(s("consumer"));
    assert_eq!(m.send(&join, 5).unwrap().error_code, GROUP_AUTHZ);
    let hb = HeartbeatRequest::default()
        .with_group_id(GroupId(s("g")))
        .with_member_id(s("x"));
    assert_eq!(m.send(&hb, 4).unwrap().error_code, GROUP_AUTHZ);
    let sync = SyncGroupRequest::default()
        .with_group_id(GroupId(s("g")))
        .with_member_id(s("x"));
    assert_eq!(m.send(&sync, 3).unwrap().error_code, GROUP_AUTHZ);
    let leave = LeaveGroupRequest::default()
        .with_group_id(GroupId(s("g")))
        .with_members(vec![
            leave_group_request::MemberIdentity::default().with_member_id(s("x"))
        ]);
    assert_eq!(m.send(&leave, 3).unwrap().error_code, GROUP_AUTHZ);
    assert_eq!(commit(&mut m, "g", "t", 0), GROUP_AUTHZ);
    assert_eq!(
        committed(&mut admin, "g", "t"),
        (0, 1),
        "offset not overwritten"
    );
    assert_eq!(committed(&mut m, "g", "t").0, GROUP_AUTHZ);
    let dg = DescribeGroupsRequest::default().with_groups(vec![GroupId(s("g"))]);
    assert_eq!(m.send(&dg, 5).unwrap().groups[0].error_code, GROUP_AUTHZ);
    assert!(
        m.send(&ListGroupsRequest::default(), 4)
            .unwrap()
            .groups
            .is_empty(),
        "no group disclosed"
    );
    let od = OffsetDeleteRequest::default()
        .with_group_id(GroupId(s("g")))
        .with_topics(vec![OffsetDeleteRequestTopic::default()
            .with_name(topic_name("t"))
            .with_partitions(vec![
                OffsetDeleteRequestPartition::default().with_partition_index(0)
            ])]);
    assert_eq!(m.send(&od, 0).unwrap().error_code, GROUP_AUTHZ);
    let delg = DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s("g"))]);
    assert_eq!(m.send(&delg, 2).unwrap().results[0].error_code, GROUP_AUTHZ);
    assert_eq!(
        committed(&mut admin, "g", "t"),
        (0, 1),
        "group and offset still there"
    );
    // ACL administration needs Cluster ALTER / DESCRIBE.
    assert_eq!(
        create_acls(&mut m, vec![acl(TOPIC, "t", LITERAL, "*", ALL, ALLOW)]),
        vec![CLUSTER_AUTHZ]
    );
    let describe_all = DescribeAclsRequest::default()
        .with_resource_type_filter(1)
        .with_resource_name_filter(None)
        .with_pattern_type_filter(1)
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_operation(1)
        .with_permission_type(1);
    assert_eq!(m.send(&describe_all, 3).unwrap().error_code, CLUSTER_AUTHZ);
    let all_filter = DeleteAclsFilter::default()
        .with_resource_type_filter(1)
        .with_resource_name_filter(None)
        .with_pattern_type_filter(1)
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_operation(1)
        .with_permission_type(1);
    let del_all = DeleteAclsRequest::default().with_filters(vec![all_filter.clone()]);
    assert_eq!(
        m.send(&del_all, 3).unwrap().filter_results[0].error_code,
        CLUSTER_AUTHZ
    );
    assert_eq!(
        admin.send(&describe_all, 3).unwrap().resources.len(),
        3,
        "the brokers' ACLs are intact"
    );
    // Nobody produces into an internal topic, however authorized.
    assert_eq!(
        produce_code(&mut admin, "__consumer_offsets"),
        INVALID_TOPIC
    );

    // Alice: READ+WRITE on t, ALL on the prefix logs-, READ on group g.
    assert_eq!(
        create_acls(
            &mut admin,
            vec![
                acl(TOPIC, "t", LITERAL, ALICE, READ, ALLOW),
                acl(TOPIC, "t", LITERAL, ALICE, WRITE, ALLOW),
                acl(TOPIC, "logs-", PREFIXED, ALICE, ALL, ALLOW),
                acl(GROUP, "g", LITERAL, ALICE, READ, ALLOW),
                acl(4, "other-cluster", LITERAL, ALICE, ALL, ALLOW),
            ]
        ),
        vec![0, 0, 0, 0, 42]
    );
    let mut a = Client::connect_from(&addr, ALICE).unwrap();
    let mut visible: Vec<_> = topic_codes_metadata(&mut a, None)
        .into_iter()
        .map(|(n, e)| (n.unwrap(), e))
        .collect();
    visible.sort();
    assert_eq!(
        visible,
        vec![("logs-a".to_string(), 0), ("t".to_string(), 0)]
    );
    assert_eq!(produce_code(&mut a, "t"), 0);
    assert_eq!(consumer_fetch(&mut a, "t"), 0);
    assert_eq!(produce_code(&mut a, "logs-a"), 0);
    assert_eq!(
        init_producer_id(&mut a),
        0,
        "WRITE on some topic allows idempotence"
    );
    assert_eq!(find_coordinator(&mut a, "g"), 0, "READ implies DESCRIBE");
    assert_eq!(commit(&mut a, "g", "t", 2), 0);
    assert_eq!(committed(&mut a, "g", "t"), (0, 2));
    assert_eq!(m.send(&dt, 6).unwrap().responses[0].error_code, TOPIC_AUTHZ);
    let mut ad = Client::connect_from(&addr, ALICE).unwrap();
    assert_eq!(
        ad.send(&dt, 6).unwrap().responses[0].error_code,
        TOPIC_AUTHZ,
        "no DELETE on t"
    );
    assert_eq!(
        alter_config(&mut a, "logs-a", "retention.ms", "100000"),
        0,
        "prefixed ALL"
    );

    // A DENY overrides the prefixed ALLOW, for everyone; removing it restores access.
    assert_eq!(
        create_acls(
            &mut admin,
            vec![acl(TOPIC, "logs-a", LITERAL, "*", WRITE, DENY)]
        ),
        vec![0]
    );
    assert_eq!(produce_code(&mut a, "logs-a"), TOPIC_AUTHZ);
    assert_eq!(consumer_fetch(&mut a, "logs-a"), 0, "READ is still allowed");
    let deny_filter = all_filter.clone().with_permission_type(DENY);
    let resp = admin
        .send(
            &DeleteAclsRequest::default().with_filters(vec![deny_filter]),
            3,
        )
        .unwrap();
    assert_eq!(resp.filter_results[0].error_code, 0);
    assert_eq!(resp.filter_results[0].matching_acls.len(), 1);
    assert_eq!(produce_code(&mut a, "logs-a"), 0);
    // DescribeAcls with a MATCH filter finds what applies to logs-a: the prefix and the brokers' `*`.
    let matching = admin
        .send(
            &describe_all
                .clone()
                .with_resource_type_filter(TOPIC)
                .with_resource_name_filter(Some(s("logs-a")))
                .with_pattern_type_filter(2),
            3,
        )
        .unwrap();
    let mut names: Vec<String> = matching
        .resources
        .iter()
        .map(|r| r.resource_name.to_string())
        .collect();
    names.sort();
    assert_eq!(names, vec!["*".to_string(), "logs-".to_string()]);
}

#[test]
fn a_client_posing_as_a_follower_is_refused_and_acks_all_still_waits() {
    let mut cluster = secured_cluster(2);
    let mut admin = cluster.client(0);
    assert_eq!(admin.create_topic("r", 1, 2, &[]), 0);
    let leader = {
        let mut id = -1;
        wait_until(
            Duration::from_secs(20),
            "a leader with both replicas in the ISR",
            || {
                let md = admin.metadata(Some(&["r"])).unwrap();
                let p = &md.topics[0].partitions[0];
                id = p.leader_id.0;
                id >= 0 && p.isr_nodes.len() == 2
            },
        );
        id
    };
    let li = cluster.broker_index(leader);
    let follower = cluster.brokers[1 - li].id;
    let mut admin = cluster.client(li);
    assert_eq!(
        admin
            .produce("r", 0, batch(&[b"a"], Compression::None), -1)
            .0,
        0
    );
    let hw = latest(&mut admin, "r");
    // The real follower goes away; it stays in the ISR for replica.lag.time.max.ms.
    cluster.brokers[1 - li].process.kill();
    let addr = cluster.brokers[li].addr();
    let mut m = Client::connect_from(&addr, MALLORY).unwrap();
    let poser = FetchRequest::default()
        .with_replica_id(BrokerId(follower))
        .with_replica_state(
            fetch_request::ReplicaState::default()
                .with_replica_id(BrokerId(follower))
                .with_replica_epoch(-1),
        )
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name("r"))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(1_000_000)
                .with_current_leader_epoch(-1)
                .with_last_fetched_epoch(-1)
                .with_partition_max_bytes(1 << 20)])]);
    let resp = m.send(&poser, 12).unwrap();
    // Kafka 3.9 answers an unauthorized follower fetch per partition with TOPIC_AUTHORIZATION_FAILED.
    assert_eq!(resp.responses[0].partitions[0].error_code, TOPIC_AUTHZ);
    // OffsetForLeaderEpoch in its follower form is inter-broker too.
    let ofle = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(follower))
        .with_topics(vec![
            offset_for_leader_epoch_request::OffsetForLeaderTopic::default()
                .with_topic(topic_name("r"))
                .with_partitions(vec![
                    offset_for_leader_epoch_request::OffsetForLeaderPartition::default()
                        .with_partition(0)
                        .with_leader_epoch(0)
                        .with_current_leader_epoch(-1),
                ]),
        ]);
    assert_eq!(
        m.send(&ofle, 4).unwrap().topics[0].partitions[0].error_code,
        CLUSTER_AUTHZ
    );
    // acks=all waits for the real (dead) follower: it times out, the HW does not move.
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(1500)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(topic_name("r"))
            .with_partition_data(vec![
                produce_request::PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(batch(&[b"b"], Compression::None))),
            ])]);
    let _ = m.send(&poser, 12).unwrap();
    assert_eq!(
        admin.send(&req, 9).unwrap().responses[0].partition_responses[0].error_code,
        REQUEST_TIMED_OUT
    );
    assert_eq!(
        latest(&mut admin, "r"),
        hw,
        "the high watermark did not move"
    );
}

#[test]
fn acls_live_in_zookeeper_reach_every_broker_and_survive_a_restart() {
    let mut cluster = secured_cluster(2);
    let mut admin1 = cluster.client(0);
    assert_eq!(admin1.create_topic("z", 1, 1, &[]), 0);
    let b2 = cluster.brokers[1].addr();
    let leader = admin1.leader("z", 0);
    let leader_addr = cluster.brokers[cluster.broker_index(leader)].addr();
    let mut a = Client::connect_from(&leader_addr, ALICE).unwrap();
    assert_eq!(produce_code(&mut a, "z"), TOPIC_AUTHZ);
    // Added through broker 1, in effect on broker 2 (change notification) for Metadata.
    assert_eq!(
        create_acls(
            &mut admin1,
            vec![acl(TOPIC, "z", LITERAL, ALICE, WRITE, ALLOW)]
        ),
        vec![0]
    );
    let mut a2 = Client::connect_from(&b2, ALICE).unwrap();
    wait_until(Duration::from_secs(10), "the ACL to reach broker 2", || {
        topic_codes_metadata(&mut a2, Some(&["z"]))[0].1 == 0
    });
    wait_until(
        Duration::from_secs(10),
        "the ACL to reach the leader",
        || produce_code(&mut a, "z") == 0,
    );
    // Kafka's layout and JSON, and a change notification.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (json, changes) = rt.block_on(async {
        let zk = zookeeper_client::Client::connect(&cluster.zk.connect_string())
            .await
            .unwrap();
        let (data, _) = zk.get_data("/kafka-acl/Topic/z").await.unwrap();
        (
            String::from_utf8(data).unwrap(),
            zk.list_children("/kafka-acl-changes").await.unwrap(),
        )
    });
    assert_eq!(
        json,
        r#"{"version":1,"acls":[{"principal":"User:ANONYMOUS","permissionType":"Allow","operation":"Write","host":"127.0.0.2"}]}"#
    );
    assert!(
        changes.iter().any(|c| c.starts_with("acl_changes_")),
        "{changes:?}"
    );
    // Restart broker 2: its cache is loaded from ZooKeeper.
    cluster.brokers[1]
        .process
        .terminate(Duration::from_secs(10));
    cluster.brokers[1].process.start();
    cluster.wait_for_broker(1);
    let mut a2 = Client::connect_from(&b2, ALICE).unwrap();
    assert_eq!(
        topic_codes_metadata(&mut a2, Some(&["z"]))[0].1,
        0,
        "WRITE implies DESCRIBE after a restart"
    );
    let mut m2 = Client::connect_from(&b2, MALLORY).unwrap();
    assert_eq!(
        topic_codes_metadata(&mut m2, Some(&["z"]))[0].1,
        TOPIC_AUTHZ
    );
}

#[test]
fn acl_apis_answer_security_disabled_without_an_authorizer() {
    let cluster = Cluster::start(Coordinator::Gregor, 1, &[]);
    let mut c = cluster.client(0);
    assert_eq!(
        create_acls(&mut c, vec![acl(TOPIC, "t", LITERAL, "*", ALL, ALLOW)]),
        vec![54]
    );
    let describe = DescribeAclsRequest::default()
        .with_resource_type_filter(1)
        .with_resource_name_filter(None)
        .with_pattern_type_filter(1)
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_operation(1)
        .with_permission_type(1);
    assert_eq!(c.send(&describe, 3).unwrap().error_code, 54);
    // Without an authorizer everything is allowed, as before.
    assert_eq!(c.create_topic("free", 1, 1, &[]), 0);
    assert_eq!(produce_code(&mut c, "free"), 0);
}

fn gregor_acls(bootstrap: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(common::GREGOR)
        .args(["acls", "--bootstrap-server", bootstrap])
        .args(args)
        .output()
        .expect("run gregor acls");
    assert!(
        out.status.success(),
        "gregor acls {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn gregor_acls_cli_adds_lists_and_removes() {
    let cluster = secured_cluster(1);
    let b = cluster.brokers[0].addr();
    let mut admin = cluster.client(0);
    assert_eq!(admin.create_topic("cli-t", 1, 1, &[]), 0);
    let mut a = Client::connect_from(&b, ALICE).unwrap();
    assert_eq!(produce_code(&mut a, "cli-t"), TOPIC_AUTHZ);
    let add = [
        "add",
        "--principal",
        "User:ANONYMOUS",
        "--host",
        ALICE,
        "--operation",
        "Write",
        "--topic",
        "cli-",
        "--prefixed",
    ];
    gregor_acls(&b, &add);
    let listed = gregor_acls(&b, &["list", "--topic", "cli-", "--prefixed"]);
    assert!(
        listed.contains("Topic:Prefixed:cli-")
            && listed.contains("User:ANONYMOUS Allow Write from host 127.0.0.2"),
        "{listed}"
    );
    assert_eq!(produce_code(&mut a, "cli-t"), 0);
    let mut remove = add;
    remove[0] = "remove";
    assert!(gregor_acls(&b, &remove).contains("Removed 1 ACL(s)"));
    assert_eq!(produce_code(&mut a, "cli-t"), TOPIC_AUTHZ);
}
