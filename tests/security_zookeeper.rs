//! The coordination service's security with real processes: brokers started with
//! `zookeeper.set.acl=true` and a digest identity run a cluster end to end (topics,
//! acks=all produce, fetch, leader failover), against `gregor zookeeper` and a real
//! Apache ZooKeeper 3.8; a ZooKeeper client without the brokers' digest can read but not
//! change their znodes and cannot read `/config/users`; one with the digest can. And the
//! four-letter words over raw sockets: off unless whitelisted.

mod common;
mod common_zk;

use std::path::Path;
use std::time::Duration;

use common::kafka::{batch, Client};
use common::{wait_until, Cluster, Coordinator};
use common_zk::{four_letter, ZkServer};
use kafka_protocol::records::Compression;
use zookeeper_client as zk;

const BROKER_DIGEST: &str = "kafka:broker-secret";
const CHROOT: &str = "/kafka";

fn secured_cluster(kind: Coordinator, n: usize, creds_dir: &Path) -> Cluster {
    let creds = creds_dir.join("zk-digest");
    std::fs::write(
        &creds,
        format!("# the brokers' ZooKeeper identity\n{BROKER_DIGEST}\n"),
    )
    .unwrap();
    let creds = creds.display().to_string();
    // Under a chroot, as Kafka's docs advise for secured clusters: ZooKeeper's root is
    // world-writable, so without one anyone could delete an empty top-level znode
    // (/controller) even with these ACLs.
    Cluster::start_chrooted(
        kind,
        n,
        CHROOT,
        &[
            ("zookeeper.set.acl", "true"),
            ("zookeeper.digest.credentials.file", creds.as_str()),
        ],
    )
}

async fn zk_client(addr: &str, digest: Option<&str>) -> zk::Client {
    let mut connector = zk::Client::connector().with_session_timeout(Duration::from_secs(10));
    if let Some(d) = digest {
        connector = connector.with_auth("digest", d.as_bytes());
    }
    connector.connect(addr).await.expect("connect to ZooKeeper")
}

/// `user:base64(sha1(user:password))`, the id ZooKeeper derives from an addauth.
fn digest_id(user_password: &str) -> String {
    let user = user_password.split(':').next().unwrap();
    let hash = gregor::zookeeper::acl::sha1(user_password.as_bytes());
    format!("{user}:{}", gregor::zookeeper::acl::base64(&hash))
}

fn acl_rows(acls: &[zk::Acl]) -> Vec<(String, String, String)> {
    let mut rows: Vec<_> = acls
        .iter()
        .map(|a| {
            (
                a.scheme().to_string(),
                a.id().to_string(),
                a.permission().to_string(),
            )
        })
        .collect();
    rows.sort();
    rows
}

fn row(scheme: &str, id: &str, perms: &str) -> (String, String, String) {
    (scheme.into(), id.into(), perms.into())
}

/// Topic create, acks=all produce and fetch on the secured cluster, then the leader is
/// killed and the new leader takes writes and serves everything written.
fn topic_survives_a_leader_failover(cluster: &mut Cluster, topic: &str) {
    let mut c = cluster.client(0);
    assert_eq!(c.create_topic(topic, 1, 3, &[]), 0);
    let mut leader = -1;
    wait_until(Duration::from_secs(30), "a leader", || {
        leader = c.leader(topic, 0);
        leader >= 0
    });
    let mut lc = cluster.client(cluster.broker_index(leader));
    let one = batch(&[b"before"], Compression::None);
    wait_until(Duration::from_secs(30), "an acks=all write", || {
        lc.produce(topic, 0, one.clone(), -1).0 == 0
    });
    let old = leader;
    let i = cluster.broker_index(old);
    cluster.brokers[i].process.kill();
    let other = cluster.brokers.iter().position(|b| b.id != old).unwrap();
    let mut c = cluster.client(other);
    wait_until(Duration::from_secs(30), "a new leader", || {
        leader = c.leader(topic, 0);
        leader >= 0 && leader != old
    });
    let mut lc = Client::connect(&cluster.brokers[cluster.broker_index(leader)].addr()).unwrap();
    let two = batch(&[b"after"], Compression::None);
    wait_until(
        Duration::from_secs(30),
        "an acks=all write to the new leader",
        || lc.produce(topic, 0, two.clone(), -1).0 == 0,
    );
    let values: Vec<_> = lc
        .read_all(topic, 0, 0)
        .into_iter()
        .map(|(_, v)| v.unwrap())
        .collect();
    assert_eq!(values, vec![&b"before"[..], &b"after"[..]]);
}

/// What a stranger and a holder of the brokers' digest may do to the brokers' znodes.
/// `server`: the ZooKeeper address; the brokers' znodes are under [`CHROOT`].
async fn check_znode_acls(server: &str, topic: &str) {
    // The chroot itself: created by the first broker with the brokers' ACL.
    let root = zk_client(server, None).await;
    let (acl, _) = root.get_acl(CHROOT).await.unwrap();
    assert_eq!(
        acl_rows(&acl),
        vec![
            row("digest", "kafka:x", "ALL"),
            row("world", "anyone", "READ")
        ]
    );
    let open = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    assert_eq!(
        root.create(&format!("{CHROOT}/planted"), b"", &open)
            .await
            .unwrap_err(),
        zk::Error::NoAuth
    );
    let addr = format!("{server}{CHROOT}");
    let addr = addr.as_str();
    let stranger = zk_client(addr, None).await;
    let brokers = zk_client(addr, Some(BROKER_DIGEST)).await;
    let broker_ids = stranger.list_children("/brokers/ids").await.unwrap();
    assert!(!broker_ids.is_empty());
    let state = format!("/brokers/topics/{topic}/partitions/0/state");
    let readable = [
        "/cluster/id".to_string(),
        "/controller".into(),
        "/controller_epoch".into(),
        format!("/brokers/ids/{}", broker_ids[0]),
        format!("/brokers/topics/{topic}"),
        state.clone(),
        format!("/config/topics/{topic}"),
        "/kafka-acl".into(),
        "/kafka-acl-changes".into(),
        "/config".into(),
        "/config/changes".into(),
        "/admin/delete_topics".into(),
    ];
    for path in &readable {
        // Anyone may read...
        stranger
            .get_data(path)
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        // ...but not write, delete, add children or change the ACL.
        assert_eq!(
            stranger.set_data(path, b"{}", None).await.unwrap_err(),
            zk::Error::NoAuth,
            "setData {path}"
        );
        assert_eq!(
            stranger.delete(path, None).await.unwrap_err(),
            zk::Error::NoAuth,
            "delete {path}"
        );
        assert_eq!(
            stranger
                .create(&format!("{path}/planted"), b"", &open)
                .await
                .unwrap_err(),
            zk::Error::NoAuth,
            "create under {path}"
        );
        assert_eq!(
            stranger
                .set_acl(path, &zk::Acls::anyone_all(), None)
                .await
                .unwrap_err(),
            zk::Error::NoAuth,
            "setACL {path}"
        );
        // Brokers created it: their digest has ALL, the world READ.
        let (acl, _) = brokers.get_acl(path).await.unwrap();
        assert_eq!(
            acl_rows(&acl),
            vec![
                row("digest", &digest_id(BROKER_DIGEST), "ALL"),
                row("world", "anyone", "READ")
            ],
            "{path}"
        );
    }
    // A holder of the digest may change them (written back unchanged).
    let config = format!("/config/topics/{topic}");
    let (data, stat) = brokers.get_data(&config).await.unwrap();
    brokers
        .set_data(&config, &data, Some(stat.version))
        .await
        .unwrap();
    brokers
        .create("/kafka-acl/Topic", b"", &open)
        .await
        .unwrap();
    brokers.delete("/kafka-acl/Topic", None).await.unwrap();
    // Without ADMIN the stranger sees who may write, not the digest itself.
    let (acl, _) = stranger.get_acl("/brokers").await.unwrap();
    assert_eq!(
        acl_rows(&acl),
        vec![
            row("digest", "kafka:x", "ALL"),
            row("world", "anyone", "READ")
        ]
    );
    // A wrong password is just another stranger.
    let guesser = zk_client(addr, Some("kafka:guess")).await;
    assert_eq!(
        guesser
            .set_data("/controller", b"{}", None)
            .await
            .unwrap_err(),
        zk::Error::NoAuth
    );

    // SCRAM credentials: the stranger may not even look.
    assert_eq!(
        stranger.get_data("/config/users").await.unwrap_err(),
        zk::Error::NoAuth
    );
    assert_eq!(
        stranger.list_children("/config/users").await.unwrap_err(),
        zk::Error::NoAuth
    );
    assert_eq!(
        stranger
            .create("/config/users/mallory", b"{}", &open)
            .await
            .unwrap_err(),
        zk::Error::NoAuth
    );
    let (acl, _) = brokers.get_acl("/config/users").await.unwrap();
    assert_eq!(
        acl_rows(&acl),
        vec![row("digest", &digest_id(BROKER_DIGEST), "ALL")]
    );
    // The brokers' identity can manage them (as the SCRAM admin path will).
    let secret = zk::CreateMode::Persistent.with_acls(zk::Acls::creator_all());
    brokers
        .create("/config/users/alice", b"{}", &secret)
        .await
        .unwrap();
    assert_eq!(
        stranger.get_data("/config/users/alice").await.unwrap_err(),
        zk::Error::NoAuth
    );
    assert_eq!(
        brokers.list_children("/config/users").await.unwrap(),
        vec!["alice"]
    );
    brokers.delete("/config/users/alice", None).await.unwrap();
}

fn secured_cluster_end_to_end(kind: Coordinator) {
    let creds = tempfile::tempdir().unwrap();
    let mut cluster = secured_cluster(kind, 3, creds.path());
    topic_survives_a_leader_failover(&mut cluster, "secured");
    let server = cluster.zk.server_address();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(check_znode_acls(&server, "secured"));
}

#[test]
fn secured_cluster_on_gregor_zookeeper() {
    secured_cluster_end_to_end(Coordinator::Gregor);
}

#[test]
fn secured_cluster_on_apache_zookeeper() {
    secured_cluster_end_to_end(Coordinator::Apache);
}

#[test]
fn secure_acls_without_credentials_refuse_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("broker.toml");
    std::fs::write(
        &config,
        "broker.id = 1\nzookeeper.connect = \"127.0.0.1:1\"\n\"zookeeper.set.acl\" = \"true\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gregor"))
        .args(["broker", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("zookeeper.digest.credentials.file"), "{err}");
}

const REFUSED: &[&str] = &[
    "ruok", "stat", "cons", "dump", "wchc", "wchp", "wchs", "envi", "conf", "mntr", "crst", "srst",
    "dirs", "isro", "gtmk", "stmk", "hash",
];

#[test]
fn four_letter_words_are_off_unless_whitelisted() {
    // ZooKeeper 3.5+'s default whitelist: srvr alone.
    let zk = ZkServer::start(&["--4lw-commands-whitelist=srvr"]);
    let _session = common_zk::RawClient::connect(zk.port);
    for cmd in REFUSED {
        assert_eq!(
            four_letter(zk.port, cmd).unwrap(),
            format!("{cmd} is not executed because it is not in the whitelist.\n"),
        );
    }
    assert!(four_letter(zk.port, "srvr")
        .unwrap()
        .starts_with("Zookeeper version: "));

    // Whitelisted ones answer (and srvr always does).
    let zk = ZkServer::start(&["--4lw-commands-whitelist= ruok, cons "]);
    let _session = common_zk::RawClient::connect(zk.port);
    assert_eq!(four_letter(zk.port, "ruok").unwrap(), "imok");
    assert!(four_letter(zk.port, "cons").unwrap().contains("sid=0x"));
    assert!(four_letter(zk.port, "mntr")
        .unwrap()
        .contains("not in the whitelist"));
    assert!(four_letter(zk.port, "srvr")
        .unwrap()
        .starts_with("Zookeeper version: "));
}

#[test]
fn super_digest_passes_every_acl() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("zk.toml");
    std::fs::write(
        &config,
        format!(
            "\"zookeeper.DigestAuthenticationProvider.superDigest\" = \"{}\"\n",
            digest_id("super:admin-secret")
        ),
    )
    .unwrap();
    let zk = ZkServer::start(&["--config", config.to_str().unwrap()]);
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let owner = zk_client(&zk.addr(), Some("alice:pw")).await;
        let locked = zk::CreateMode::Persistent.with_acls(zk::Acls::creator_all());
        owner.create("/locked", b"x", &locked).await.unwrap();
        let wrong = zk_client(&zk.addr(), Some("super:guess")).await;
        assert_eq!(
            wrong.get_data("/locked").await.unwrap_err(),
            zk::Error::NoAuth
        );
        let admin = zk_client(&zk.addr(), Some("super:admin-secret")).await;
        assert_eq!(admin.get_data("/locked").await.unwrap().0, b"x");
        admin
            .set_acl("/locked", &zk::Acls::anyone_read(), None)
            .await
            .unwrap();
        assert_eq!(wrong.get_data("/locked").await.unwrap().0, b"x");
    });
}
