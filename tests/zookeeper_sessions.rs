//! Sessions: expiry after a client dies (`kill -9` of a real child process), reconnect
//! with id + password, what an expired or unknown session gets, timeout negotiation.

mod common_zk;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common_zk::{client, mode, open_acl, wait_for, wait_for_async, RawClient, ZkServer};
use zookeeper_client::{Client, CreateMode, Error, EventType};

/// Not a test of its own: the child process of `ephemeral_goes_after_client_is_killed`.
/// It creates an ephemeral with a 6 s session, says READY, and waits to be killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "helper process, run by ephemeral_goes_after_client_is_killed"]
async fn child_holds_ephemeral() {
    let addr = std::env::var("ZK_CHILD_ADDR").expect("ZK_CHILD_ADDR");
    let c = Client::connector()
        .with_session_timeout(Duration::from_secs(6))
        .connect(&addr)
        .await
        .expect("connect");
    c.create("/owned-by-child", b"", &mode(CreateMode::Ephemeral))
        .await
        .expect("create ephemeral");
    println!(
        "READY {} {}",
        c.session_id().0,
        c.session_timeout().as_millis()
    );
    tokio::time::sleep(Duration::from_secs(600)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephemeral_goes_after_client_is_killed() {
    let zk = ZkServer::start(&[]);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "child_holds_ephemeral",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("ZK_CHILD_ADDR", zk.addr())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = loop {
        let line = lines.next().expect("child exited before READY").unwrap();
        // libtest may print "test child_holds_ephemeral ... " on the same line.
        if let Some(i) = line.find("READY ") {
            break line[i + 6..].to_string();
        }
    };
    let mut parts = ready.split_whitespace();
    let child_session: i64 = parts.next().unwrap().parse().unwrap();
    let negotiated: u64 = parts.next().unwrap().parse().unwrap();
    assert_eq!(negotiated, 6000);

    let c = client(&zk.addr()).await;
    let (stat, watch) = c.check_and_watch_stat("/owned-by-child").await.unwrap();
    assert_eq!(stat.unwrap().ephemeral_owner, child_session);

    // kill -9: no closeSession, the socket just dies.
    child.kill().unwrap();
    child.wait().unwrap();
    let killed = Instant::now();
    let event = tokio::time::timeout(Duration::from_secs(15), watch.changed())
        .await
        .expect("the ephemeral's NodeDeleted within 15 s");
    let took = killed.elapsed();
    assert_eq!(event.event_type, EventType::NodeDeleted);
    assert_eq!(c.check_stat("/owned-by-child").await.unwrap(), None);
    // The session lived out its timeout (pings stopped at most ~1 s before the kill),
    // and expiry came promptly after it.
    assert!(
        took >= Duration::from_secs(4),
        "expired too early: {took:?}"
    );
    assert!(took <= Duration::from_secs(8), "expired too late: {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_with_session_id_and_password() {
    let zk = ZkServer::start(&[]);
    let c = Client::connector()
        .with_session_timeout(Duration::from_secs(10))
        .with_detached()
        .connect(&zk.addr())
        .await
        .unwrap();
    c.create("/mine", b"", &mode(CreateMode::Ephemeral))
        .await
        .unwrap();
    let id = c.session_id();
    let info = c.into_session();

    let again = Client::connector()
        .with_session_timeout(Duration::from_secs(10))
        .with_session(info.clone())
        .connect(&zk.addr())
        .await
        .unwrap();
    assert_eq!(again.session_id(), id);
    let stat = again.check_stat("/mine").await.unwrap().unwrap();
    assert_eq!(stat.ephemeral_owner, id.0);
    // The session is alive: it can still write.
    again
        .create("/mine2", b"", &mode(CreateMode::Ephemeral))
        .await
        .unwrap();
    drop(again);

    // Closed by the client: ephemerals gone, the session cannot be resumed.
    let c = client(&zk.addr()).await;
    wait_for_async(
        Duration::from_secs(10),
        "closeSession to delete ephemerals",
        || async { (c.check_stat("/mine").await.unwrap().is_none()).then_some(()) },
    )
    .await;
    let resumed = Client::connector()
        .with_session(info)
        .connect(&zk.addr())
        .await;
    assert!(matches!(resumed, Err(Error::SessionExpired)), "{resumed:?}");
}

#[test]
fn expired_or_unknown_session_gets_timeout_zero_then_close() {
    let zk = ZkServer::start(&["--min-session-timeout-ms", "1000"]);
    // Timeout negotiation: clamped into [min, max] = [1000, 40000].
    let low = RawClient::connect_with(zk.port, 0, vec![0; 16], 10, 0).unwrap();
    assert_eq!(low.timeout, 1000);
    let high = RawClient::connect_with(zk.port, 0, vec![0; 16], 999_999, 0).unwrap();
    assert_eq!(high.timeout, 40000);
    assert_ne!(low.session_id, 0);
    assert_eq!(low.password.len(), 16);

    // Wrong password.
    let mut bad = RawClient::connect_with(zk.port, low.session_id, vec![1; 16], 1000, 0).unwrap();
    assert_eq!((bad.timeout, bad.session_id), (0, 0));
    assert_eq!(bad.password, vec![0; 16]);
    assert!(bad.is_closed());

    // Unknown session.
    let mut unknown = RawClient::connect_with(zk.port, 0x1234, vec![0; 16], 1000, 0).unwrap();
    assert_eq!((unknown.timeout, unknown.session_id), (0, 0));
    assert!(unknown.is_closed());

    // Expired: let the 1 s session lapse without pings (watching the session count, since
    // a reconnect attempt with the right password would itself keep it alive).
    let (sid, pw) = (low.session_id, low.password.clone());
    drop(low);
    let start = Instant::now();
    let port = zk.port;
    wait_for(Duration::from_secs(10), "the 1 s session to expire", || {
        let mntr = common_zk::four_letter(port, "mntr").ok()?;
        mntr.contains("zk_global_sessions\t1\n").then_some(())
    });
    assert!(start.elapsed() < Duration::from_secs(5));
    let mut expired = RawClient::connect_with(zk.port, sid, pw, 1000, 0).unwrap();
    assert_eq!((expired.timeout, expired.session_id), (0, 0));
    assert!(expired.is_closed());

    // A client that has seen a newer zxid than the server is refused (connection closed).
    let refused = RawClient::connect_with(zk.port, 0, vec![0; 16], 1000, 1 << 40);
    assert!(refused.is_err());
    drop(high);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_session_survives_server_restart_and_a_dead_one_expires() {
    let mut zk = ZkServer::start(&[]);
    let live = Client::connector()
        .with_session_timeout(Duration::from_secs(8))
        .with_detached()
        .connect(&zk.addr())
        .await
        .unwrap();
    live.create("/live", b"", &mode(CreateMode::Ephemeral))
        .await
        .unwrap();
    let dead = Client::connector()
        .with_session_timeout(Duration::from_secs(4))
        .with_detached()
        .connect(&zk.addr())
        .await
        .unwrap();
    dead.create("/dead", b"", &mode(CreateMode::Ephemeral))
        .await
        .unwrap();
    let live_info = live.into_session();
    drop(dead.into_session());

    zk.restart();
    let again = Client::connector()
        .with_session_timeout(Duration::from_secs(8))
        .with_session(live_info)
        .connect(&zk.addr())
        .await
        .expect("the session restored from disk accepts its owner back");
    let observer = client(&zk.addr()).await;
    wait_for_async(
        Duration::from_secs(15),
        "the abandoned session to expire",
        || async { (observer.check_stat("/dead").await.unwrap().is_none()).then_some(()) },
    )
    .await;
    assert!(again.check_stat("/live").await.unwrap().is_some());
    // Still alive after the other one expired: its owner kept pinging.
    again.create("/x", b"", &open_acl()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_survive_reconnect_via_set_watches() {
    let mut zk = ZkServer::start(&[]);
    let setup = client(&zk.addr()).await;
    setup.create("/rw", b"0", &open_acl()).await.unwrap();
    setup.create("/rw2", b"0", &open_acl()).await.unwrap();
    drop(setup);
    let a = Client::connector()
        .with_session_timeout(Duration::from_secs(20))
        .connect(&zk.addr())
        .await
        .unwrap();
    let (_, _, changed_while_away) = a.get_and_watch_data("/rw").await.unwrap();
    let (_, _, changed_after) = a.get_and_watch_data("/rw2").await.unwrap();
    let (_, created) = a.check_and_watch_stat("/rw-new").await.unwrap();

    // The server dies; while a is cut off, /rw changes and /rw-new appears.
    zk.restart();
    let b = client(&zk.addr()).await;
    b.set_data("/rw", b"1", None).await.unwrap();
    b.create("/rw-new", b"", &open_acl()).await.unwrap();
    // a reconnects with setWatches(relativeZxid = last zxid it saw): the server fires
    // what changed since at once and re-registers the rest.
    let e = tokio::time::timeout(Duration::from_secs(20), changed_while_away.changed())
        .await
        .expect("NodeDataChanged for the change made while disconnected");
    assert_eq!(
        (e.event_type, e.path.as_str()),
        (EventType::NodeDataChanged, "/rw")
    );
    let e = tokio::time::timeout(Duration::from_secs(20), created.changed())
        .await
        .expect("NodeCreated for the node created while disconnected");
    assert_eq!(
        (e.event_type, e.path.as_str()),
        (EventType::NodeCreated, "/rw-new")
    );
    b.set_data("/rw2", b"1", None).await.unwrap();
    let e = tokio::time::timeout(Duration::from_secs(20), changed_after.changed())
        .await
        .expect("the re-registered watch fires on the next change");
    assert_eq!(
        (e.event_type, e.path.as_str()),
        (EventType::NodeDataChanged, "/rw2")
    );
}
