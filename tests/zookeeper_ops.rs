//! Every operation through the `zookeeper-client` crate against the real
//! `gregor zookeeper` process: results, stat fields, error codes, watches, multi.

mod common_zk;

use std::time::Duration;

use common_zk::{client, mode, open_acl, wait_for_async, ZkServer};
use zookeeper_client::{
    Acl, Acls, AddWatchMode, AuthId, CreateMode, Error, EventType, MultiReadResult,
    MultiWriteError, MultiWriteResult, Permission,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_get_set_delete_and_stats() {
    let zk = ZkServer::start(&[]);
    let c = client(&zk.addr()).await;

    // Fresh server: the system nodes and their stats, as a fresh ZooKeeper 3.8 has them.
    let (root_children, root) = c.get_children("/").await.unwrap();
    assert_eq!(root_children, vec!["zookeeper".to_string()]);
    assert_eq!((root.cversion, root.num_children, root.czxid), (-1, 1, 0));
    let mut zkc = c.list_children("/zookeeper").await.unwrap();
    zkc.sort();
    assert_eq!(zkc, vec!["config", "quota"]);

    let (stat, seq) = c.create("/a", b"hello", &open_acl()).await.unwrap();
    assert_eq!(seq.into_i64(), -1);
    assert_eq!(stat.czxid, stat.mzxid);
    assert_eq!(stat.czxid, stat.pzxid);
    assert_eq!((stat.version, stat.cversion, stat.aversion), (0, 0, 0));
    assert_eq!(
        (stat.data_length, stat.num_children, stat.ephemeral_owner),
        (5, 0, 0)
    );
    assert!(stat.ctime > 1_600_000_000_000 && stat.ctime == stat.mtime);

    let (data, s2) = c.get_data("/a").await.unwrap();
    assert_eq!(data, b"hello");
    assert_eq!(s2, stat);

    // setData bumps version and mzxid only.
    let s3 = c.set_data("/a", b"world!", Some(0)).await.unwrap();
    assert_eq!(s3.version, 1);
    assert!(s3.mzxid > stat.mzxid);
    assert_eq!(
        (s3.czxid, s3.pzxid, s3.ctime),
        (stat.czxid, stat.pzxid, stat.ctime)
    );
    assert_eq!(s3.data_length, 6);
    assert_eq!(
        c.set_data("/a", b"x", Some(0)).await,
        Err(Error::BadVersion)
    );
    assert_eq!(c.set_data("/nope", b"x", None).await, Err(Error::NoNode));

    // Children change the parent's cversion, pzxid, numChildren.
    let (cs, _) = c.create("/a/c1", b"", &open_acl()).await.unwrap();
    c.create("/a/c2", b"", &open_acl()).await.unwrap();
    let (mut kids, parent) = c.get_children("/a").await.unwrap();
    kids.sort();
    assert_eq!(kids, vec!["c1", "c2"]);
    assert_eq!((parent.cversion, parent.num_children), (2, 2));
    assert!(parent.pzxid > cs.czxid);
    assert_eq!(parent.version, 1, "children do not change the data version");

    // Delete: version check, NOTEMPTY, and the parent's reported cversion counts it.
    assert_eq!(c.delete("/a", None).await, Err(Error::NotEmpty));
    assert_eq!(c.delete("/a/c1", Some(3)).await, Err(Error::BadVersion));
    c.delete("/a/c1", Some(0)).await.unwrap();
    let p2 = c.check_stat("/a").await.unwrap().unwrap();
    assert_eq!((p2.cversion, p2.num_children), (3, 1));
    assert!(p2.pzxid > parent.pzxid);
    assert_eq!(c.delete("/a/c1", None).await, Err(Error::NoNode));
    assert_eq!(c.check_stat("/a/c1").await.unwrap(), None);

    // Create errors.
    assert_eq!(
        c.create("/a", b"", &open_acl()).await,
        Err(Error::NodeExists)
    );
    assert_eq!(c.create("/x/y", b"", &open_acl()).await, Err(Error::NoNode));
    // The system nodes cannot be deleted.
    assert!(matches!(
        c.delete("/zookeeper", None).await,
        Err(Error::BadArguments(_))
    ));

    // sync, getAllChildrenNumber.
    c.sync("/a").await.unwrap();
    c.create("/a/c2/d", b"", &open_acl()).await.unwrap();
    assert_eq!(c.count_descendants_number("/a").await.unwrap(), 2);
    assert_eq!(
        c.count_descendants_number("/nope").await,
        Err(Error::NoNode)
    );

    // Data is binary-safe and large values round-trip.
    let big = vec![0xA5u8; 500_000];
    c.set_data("/a", &big, None).await.unwrap();
    assert_eq!(c.get_data("/a").await.unwrap().0, big);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_ephemeral_and_container_nodes() {
    let zk = ZkServer::start(&[]);
    let c = client(&zk.addr()).await;
    c.create("/q", b"", &open_acl()).await.unwrap();
    let (_, s0) = c
        .create("/q/item-", b"", &mode(CreateMode::PersistentSequential))
        .await
        .unwrap();
    let (_, s1) = c
        .create("/q/item-", b"", &mode(CreateMode::PersistentSequential))
        .await
        .unwrap();
    assert_eq!((s0.into_i64(), s1.into_i64()), (0, 1));
    c.delete("/q/item-0000000001", None).await.unwrap();
    // Numbers come from the parent's cversion: never reused.
    let (_, s2) = c
        .create("/q/item-", b"", &mode(CreateMode::EphemeralSequential))
        .await
        .unwrap();
    assert_eq!(s2.into_i64(), 2);
    let (e, _) = c
        .create("/q/eph", b"e", &mode(CreateMode::Ephemeral))
        .await
        .unwrap();
    assert_eq!(e.ephemeral_owner, c.session_id().0);
    assert_eq!(
        c.create("/q/eph/child", b"", &open_acl()).await,
        Err(Error::NoChildrenForEphemerals)
    );
    let mut eph = c.list_ephemerals("/").await.unwrap();
    eph.sort();
    assert_eq!(eph, vec!["/q/eph", "/q/item-0000000002"]);
    assert_eq!(c.list_ephemerals("/q/e").await.unwrap(), vec!["/q/eph"]);

    // Containers are created (owner shown as 0); TTL nodes are not enabled, as in ZooKeeper.
    let (cs, _) = c
        .create("/box", b"", &mode(CreateMode::Container))
        .await
        .unwrap();
    assert_eq!(cs.ephemeral_owner, 0);
    let ttl = mode(CreateMode::Persistent).with_ttl(Duration::from_secs(5));
    assert_eq!(c.create("/ttl", b"", &ttl).await, Err(Error::Unimplemented));

    // Closing the session removes its ephemerals.
    drop(c);
    let c2 = client(&zk.addr()).await;
    wait_for_async(Duration::from_secs(10), "ephemerals to go", || async {
        (c2.list_children("/q").await.unwrap() == vec!["item-0000000000"]).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acls_and_auth() {
    let zk = ZkServer::start(&[]);
    let c = client(&zk.addr()).await;
    let (acl, stat) = c.get_acl("/").await.unwrap();
    assert_eq!(acl, vec![Acl::new(Permission::ALL, AuthId::anyone())]);
    assert_eq!(stat.aversion, 0);
    let read_only = [Acl::new(Permission::READ, AuthId::anyone())];
    c.create(
        "/ro",
        b"r",
        &CreateMode::Persistent.with_acls(Acls::new(&read_only)),
    )
    .await
    .unwrap();
    assert_eq!(c.set_data("/ro", b"w", None).await, Err(Error::NoAuth));
    assert_eq!(
        c.create("/ro/x", b"", &open_acl()).await,
        Err(Error::NoAuth)
    );
    assert_eq!(c.get_data("/ro").await.unwrap().0, b"r");
    assert_eq!(
        c.set_acl("/ro", &read_only, Some(0)).await,
        Err(Error::NoAuth)
    );

    c.create("/open", b"", &open_acl()).await.unwrap();
    assert_eq!(
        c.set_acl("/open", &read_only, Some(7)).await,
        Err(Error::BadVersion)
    );
    let s = c.set_acl("/open", &read_only, Some(0)).await.unwrap();
    assert_eq!(s.aversion, 1);
    assert_eq!(c.get_acl("/open").await.unwrap().0, read_only.to_vec());

    // digest auth: the `auth` scheme expands to the caller's digest id.
    c.auth("digest", b"alice:secret").await.unwrap();
    let mine = [Acl::new(Permission::ALL, AuthId::authed())];
    c.create(
        "/mine",
        b"m",
        &CreateMode::Persistent.with_acls(Acls::new(&mine)),
    )
    .await
    .unwrap();
    let (acl, _) = c.get_acl("/mine").await.unwrap();
    assert_eq!(acl.len(), 1);
    assert_eq!(acl[0].scheme(), "digest");
    assert!(acl[0].id().starts_with("alice:"));
    c.set_data("/mine", b"ok", None).await.unwrap();
    let other = client(&zk.addr()).await;
    assert_eq!(other.get_data("/mine").await, Err(Error::NoAuth));
    let users = c.list_auth_users().await.unwrap();
    assert!(users
        .iter()
        .any(|u| u.scheme() == "digest" && u.user().starts_with("alice:")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_is_all_or_nothing() {
    let zk = ZkServer::start(&[]);
    let c = client(&zk.addr()).await;
    c.create("/m", b"0", &open_acl()).await.unwrap();

    let mut w = c.new_multi_writer();
    w.add_check_version("/m", 0).unwrap();
    w.add_create("/m/a", b"a", &open_acl()).unwrap();
    w.add_set_data("/m", b"1", Some(0)).unwrap();
    w.add_create("/m/s-", b"", &mode(CreateMode::PersistentSequential))
        .unwrap();
    w.add_delete("/m/a", None).unwrap();
    let results = w.commit().await.unwrap();
    assert_eq!(results.len(), 5);
    assert!(matches!(results[0], MultiWriteResult::Check));
    let MultiWriteResult::Create { path, stat } = &results[1] else {
        panic!("{:?}", results[1])
    };
    assert_eq!(path, "/m/a");
    // As ZooKeeper 3.8 does (ZOOKEEPER-4026), a create in a multi carries no stat.
    assert!(stat.is_invalid());
    let MultiWriteResult::SetData { stat: set } = &results[2] else {
        panic!("{:?}", results[2])
    };
    assert_eq!(set.version, 1);
    // One txn: every op has the same zxid.
    let (_, created) = c.get_data("/m/s-0000000001").await.unwrap();
    assert_eq!(set.mzxid, created.czxid);
    let MultiWriteResult::Create { path, .. } = &results[3] else {
        panic!("{:?}", results[3])
    };
    assert_eq!(path, "/m/s-0000000001");
    assert!(matches!(results[4], MultiWriteResult::Delete));
    assert_eq!(c.list_children("/m").await.unwrap(), vec!["s-0000000001"]);

    // Failure at index 2: nothing applies, and the error names the failing op.
    let before = c.get_data("/m").await.unwrap();
    let mut w = c.new_multi_writer();
    w.add_create("/m/b", b"", &open_acl()).unwrap();
    w.add_set_data("/m", b"2", None).unwrap();
    w.add_check_version("/m", 99).unwrap();
    w.add_delete("/m/s-0000000001", None).unwrap();
    assert_eq!(
        w.commit().await,
        Err(MultiWriteError::OperationFailed {
            index: 2,
            source: Error::BadVersion
        })
    );
    assert_eq!(c.get_data("/m").await.unwrap(), before);
    assert_eq!(c.check_stat("/m/b").await.unwrap(), None);
    assert_eq!(c.list_children("/m").await.unwrap(), vec!["s-0000000001"]);

    // A failed sequential create in a multi does not consume a sequence number.
    let mut w = c.new_multi_writer();
    w.add_create("/m/s-", b"", &mode(CreateMode::PersistentSequential))
        .unwrap();
    w.add_create("/nope/x", b"", &open_acl()).unwrap();
    assert!(matches!(
        w.commit().await,
        Err(MultiWriteError::OperationFailed {
            index: 1,
            source: Error::NoNode
        })
    ));
    let (_, seq) = c
        .create("/m/s-", b"", &mode(CreateMode::PersistentSequential))
        .await
        .unwrap();
    assert_eq!(seq.into_i64(), 2);

    // multiRead.
    let mut r = c.new_multi_reader();
    r.add_get_data("/m").unwrap();
    r.add_get_children("/m").unwrap();
    r.add_get_data("/missing").unwrap();
    let out = r.commit().await.unwrap();
    assert!(matches!(&out[0], MultiReadResult::Data { data, .. } if data == b"1"));
    assert!(matches!(&out[1], MultiReadResult::Children { children } if children.len() == 2));
    assert!(matches!(
        &out[2],
        MultiReadResult::Error { err: Error::NoNode }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oneshot_watches_fire_once_for_every_session() {
    let zk = ZkServer::start(&[]);
    let a = client(&zk.addr()).await;
    let b = client(&zk.addr()).await;
    let writer = client(&zk.addr()).await;

    // exists watch on a missing node -> NodeCreated, to both sessions.
    let (none, wa) = a.check_and_watch_stat("/w").await.unwrap();
    assert!(none.is_none());
    let (_, wb) = b.check_and_watch_stat("/w").await.unwrap();
    writer.create("/w", b"1", &open_acl()).await.unwrap();
    for w in [wa, wb] {
        let e = w.changed().await;
        assert_eq!(
            (e.event_type, e.path.as_str()),
            (EventType::NodeCreated, "/w")
        );
    }

    // data watch -> NodeDataChanged; child watch -> NodeChildrenChanged.
    let (_, _, dw) = a.get_and_watch_data("/w").await.unwrap();
    let (_, _, cw) = b.get_and_watch_children("/w").await.unwrap();
    writer.set_data("/w", b"2", None).await.unwrap();
    let e = dw.changed().await;
    assert_eq!(
        (e.event_type, e.path.as_str()),
        (EventType::NodeDataChanged, "/w")
    );
    writer.create("/w/c", b"", &open_acl()).await.unwrap();
    let e = cw.changed().await;
    assert_eq!(
        (e.event_type, e.path.as_str()),
        (EventType::NodeChildrenChanged, "/w")
    );

    // delete -> NodeDeleted to data and child watchers; parent gets NodeChildrenChanged.
    let (_, _, dw) = a.get_and_watch_data("/w/c").await.unwrap();
    let (_, _, cw) = b.get_and_watch_children("/w/c").await.unwrap();
    let (_, _, pw) = a.get_and_watch_children("/w").await.unwrap();
    writer.delete("/w/c", None).await.unwrap();
    assert_eq!(dw.changed().await.event_type, EventType::NodeDeleted);
    assert_eq!(cw.changed().await.event_type, EventType::NodeDeleted);
    let e = pw.changed().await;
    assert_eq!(
        (e.event_type, e.path.as_str()),
        (EventType::NodeChildrenChanged, "/w")
    );

    // One-shot: a second change does not fire a watch that already fired, and a watch
    // set after the change only sees the next one.
    let (_, _, dw) = a.get_and_watch_data("/w").await.unwrap();
    writer.set_data("/w", b"3", None).await.unwrap();
    writer.set_data("/w", b"4", None).await.unwrap();
    assert_eq!(dw.changed().await.event_type, EventType::NodeDataChanged);
    assert_eq!(a.get_data("/w").await.unwrap().0, b"4");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_and_recursive_watches() {
    let zk = ZkServer::start(&[]);
    let c = client(&zk.addr()).await;
    // One session per watch mode: a ZooKeeper 3.8 connection keeps one mode per path.
    let w1 = client(&zk.addr()).await;
    let w2 = client(&zk.addr()).await;
    c.create("/p", b"", &open_acl()).await.unwrap();
    let mut pers = w1.watch("/p", AddWatchMode::Persistent).await.unwrap();
    let mut rec = w2
        .watch("/p", AddWatchMode::PersistentRecursive)
        .await
        .unwrap();

    c.set_data("/p", b"1", None).await.unwrap();
    c.create("/p/a", b"", &open_acl()).await.unwrap();
    c.create("/p/a/b", b"", &open_acl()).await.unwrap();
    c.set_data("/p/a/b", b"x", None).await.unwrap();
    c.delete("/p/a/b", None).await.unwrap();
    c.set_data("/p", b"2", None).await.unwrap();

    // Persistent: the node's own data and child-list changes, every time, nothing deeper.
    let mut got = Vec::new();
    for _ in 0..3 {
        let e = pers.changed().await;
        got.push((e.event_type, e.path));
    }
    assert_eq!(
        got,
        vec![
            (EventType::NodeDataChanged, "/p".to_string()),
            (EventType::NodeChildrenChanged, "/p".to_string()),
            (EventType::NodeDataChanged, "/p".to_string()),
        ]
    );
    // Recursive: everything under it except child-list changes.
    let mut rgot = Vec::new();
    for _ in 0..6 {
        let e = rec.changed().await;
        rgot.push((e.event_type, e.path));
    }
    assert_eq!(
        rgot,
        vec![
            (EventType::NodeDataChanged, "/p".to_string()),
            (EventType::NodeCreated, "/p/a".to_string()),
            (EventType::NodeCreated, "/p/a/b".to_string()),
            (EventType::NodeDataChanged, "/p/a/b".to_string()),
            (EventType::NodeDeleted, "/p/a/b".to_string()),
            (EventType::NodeDataChanged, "/p".to_string()),
        ]
    );
    // Removing the watches: the server forgets them, the next change reaches nobody.
    // Dropping a watcher makes the client send removeWatches.
    drop(rec);
    drop(pers);
    let port = zk.port;
    common_zk::wait_for(
        Duration::from_secs(10),
        "the server to forget the watches",
        || (four_letter_watch_count(port) == 0).then_some(()),
    );
}

fn four_letter_watch_count(port: u16) -> usize {
    let out = common_zk::four_letter(port, "mntr").unwrap();
    out.lines()
        .find_map(|l| l.strip_prefix("zk_watch_count\t"))
        .and_then(|v| v.trim().parse().ok())
        .expect("zk_watch_count in mntr")
}
