//! The wire protocol seen raw: notification-before-reply ordering, reply headers, multi
//! result layout, and bad input (malformed, oversize, unknown op codes) that must close or
//! fail one connection without disturbing others.

mod common_zk;

use std::io::Write;
use std::net::TcpStream;

use common_zk::{four_letter, RawClient, ZkServer};
use gregor::zookeeper::jute::{Reader, Writer};
use gregor::zookeeper::proto::{op, perms, Acl};

fn create_body<'a>(path: &'a str, data: &'a [u8], flags: i32) -> impl FnOnce(&mut Writer) + 'a {
    move |w: &mut Writer| {
        w.write_string(path);
        w.write_buffer(Some(data));
        Acl::write_vec(&[Acl::world(perms::ALL)], w);
        w.write_i32(flags);
    }
}

fn path_watch(path: &str, watch: bool) -> impl FnOnce(&mut Writer) + '_ {
    move |w: &mut Writer| {
        w.write_string(path);
        w.write_bool(watch);
    }
}

#[test]
fn notification_precedes_the_reply_of_the_write_that_caused_it() {
    let zk = ZkServer::start(&[]);
    let mut a = RawClient::connect(zk.port);
    let mut b = RawClient::connect(zk.port);
    assert_eq!(a.call(1, op::CREATE, create_body("/o", b"1", 0)).err, 0);
    // a watches /o, then a itself changes it: the event comes before the setData reply.
    assert_eq!(a.call(2, op::GET_DATA, path_watch("/o", true)).err, 0);
    assert_eq!(b.call(1, op::EXISTS, path_watch("/o", true)).err, 0);
    a.send(3, op::SET_DATA, |w| {
        w.write_string("/o");
        w.write_buffer(Some(b"2"));
        w.write_i32(-1);
    });
    let first = a.recv().unwrap();
    assert_eq!((first.xid, first.zxid, first.err), (-1, -1, 0));
    let mut r = Reader::new(&first.body);
    assert_eq!(r.read_i32().unwrap(), 3, "NodeDataChanged");
    assert_eq!(r.read_i32().unwrap(), 3, "SyncConnected");
    assert_eq!(r.read_string().unwrap().unwrap(), "/o");
    let reply = a.recv().unwrap();
    assert_eq!((reply.xid, reply.err), (3, 0));
    // b, which only watched, sees the event before the answer to its next read, whose
    // data is the new value.
    b.send(2, op::GET_DATA, path_watch("/o", false));
    assert_eq!(b.recv().unwrap().xid, -1);
    let read = b.recv().unwrap();
    assert_eq!(read.xid, 2);
    assert_eq!(
        Reader::new(&read.body).read_buffer().unwrap().unwrap(),
        b"2"
    );
    assert_eq!(read.zxid, reply.zxid, "a read reports the last zxid");
}

#[test]
fn reply_headers_ping_and_error_codes() {
    let zk = ZkServer::start(&[]);
    let mut c = RawClient::connect(zk.port);
    let created = c.call(1, op::CREATE, create_body("/h", b"", 0));
    assert_eq!((created.xid, created.err), (1, 0));
    let ping = c.call(-2, op::PING, |_| {});
    assert_eq!((ping.xid, ping.err, ping.zxid), (-2, 0, created.zxid));
    // Failed writes still take a zxid, as in ZooKeeper.
    let exists = c.call(2, op::CREATE, create_body("/h", b"", 0));
    assert_eq!(exists.err, -110);
    assert_eq!(exists.zxid, created.zxid + 1);
    assert!(exists.body.is_empty());
    assert_eq!(c.call(3, op::CREATE, create_body("bad", b"", 0)).err, -8);
    assert_eq!(c.call(4, op::CREATE, create_body("/h/", b"", 0)).err, -8);
    assert_eq!(c.call(5, op::CREATE, create_body("/h", b"", 42)).err, -8);
    assert_eq!(
        c.call(6, op::GET_DATA, path_watch("/nope", false)).err,
        -101
    );
    assert_eq!(
        c.call(7, op::DELETE, |w| {
            w.write_string("/");
            w.write_i32(-1);
        })
        .err,
        -8
    );
    // Empty ACL list.
    let r = c.call(8, op::CREATE, |w| {
        w.write_string("/acl");
        w.write_buffer(Some(b""));
        w.write_i32(0);
        w.write_i32(0);
    });
    assert_eq!(r.err, -114);
    // A truncated body: marshalling error, the connection stays usable.
    c.send_raw(&{
        let mut w = Writer::framed();
        w.write_i32(9);
        w.write_i32(op::CREATE);
        w.write_i32(100);
        w.finish_frame()
    });
    assert_eq!(c.recv().unwrap().err, -5);
    assert_eq!(c.call(10, op::EXISTS, path_watch("/h", false)).err, 0);
    // Null data round-trips as null (length -1), as zkCli's `create /x` makes it.
    let r = c.call(11, op::CREATE, |w| {
        w.write_string("/null");
        w.write_buffer(None);
        Acl::write_vec(&[Acl::world(perms::ALL)], w);
        w.write_i32(0);
    });
    assert_eq!(r.err, 0);
    let r = c.call(12, op::GET_DATA, path_watch("/null", false));
    assert_eq!(Reader::new(&r.body).read_buffer().unwrap(), None);
    // A sync echoes the path.
    let r = c.call(13, op::SYNC, |w| w.write_string("/h"));
    assert_eq!(Reader::new(&r.body).read_string().unwrap().unwrap(), "/h");
}

#[test]
fn multi_failure_layout_matches_zookeeper() {
    let zk = ZkServer::start(&[]);
    let mut c = RawClient::connect(zk.port);
    let r = c.call(1, op::MULTI, |w| {
        for (ty, path) in [
            (op::CREATE, "/ok"),
            (op::CREATE, "/no/such"),
            (op::CREATE, "/later"),
        ] {
            w.write_i32(ty);
            w.write_bool(false);
            w.write_i32(-1);
            create_body(path, b"", 0)(w);
        }
        w.write_i32(-1);
        w.write_bool(true);
        w.write_i32(-1);
    });
    // The header says OK; each result is an error: OK before the failure, the failure's
    // code, RUNTIMEINCONSISTENCY after.
    assert_eq!(r.err, 0);
    let mut rd = Reader::new(&r.body);
    for want in [0, -101, -2] {
        assert_eq!(rd.read_i32().unwrap(), -1, "type error");
        assert!(!rd.read_bool().unwrap());
        assert_eq!(rd.read_i32().unwrap(), want);
        assert_eq!(rd.read_i32().unwrap(), want);
    }
    assert_eq!(rd.read_i32().unwrap(), -1);
    assert!(rd.read_bool().unwrap());
    assert_eq!(c.call(2, op::EXISTS, path_watch("/ok", false)).err, -101);
    // A read op inside a write multi is a marshalling error.
    let r = c.call(3, op::MULTI, |w| {
        w.write_i32(op::GET_DATA);
        w.write_bool(false);
        w.write_i32(-1);
        path_watch("/", false)(w);
        w.write_i32(-1);
        w.write_bool(true);
        w.write_i32(-1);
    });
    assert_eq!(r.err, -5);
}

#[test]
fn bad_input_closes_only_that_connection() {
    let zk = ZkServer::start(&[]);
    let mut healthy = RawClient::connect(zk.port);

    // Unknown op code: UNIMPLEMENTED, then the connection is closed.
    let mut c = RawClient::connect(zk.port);
    let r = c.call(1, 999, |_| {});
    assert_eq!((r.xid, r.err), (1, -6));
    assert!(c.is_closed());

    // Oversize and negative frame lengths close the connection.
    let mut c = RawClient::connect(zk.port);
    c.send_raw(&(0x100000i32).to_be_bytes());
    assert!(c.is_closed());
    let mut c = RawClient::connect(zk.port);
    c.send_raw(&(-7i32).to_be_bytes());
    assert!(c.is_closed());

    // A frame too short for a request header.
    let mut c = RawClient::connect(zk.port);
    c.send_raw(&[0, 0, 0, 2, 1, 1]);
    assert!(c.is_closed());

    // Garbage instead of a connect request.
    let mut s = TcpStream::connect(("127.0.0.1", zk.port)).unwrap();
    s.write_all(&[0, 0, 0, 3, 1, 2, 3]).unwrap();
    let mut raw = RawClient {
        stream: s,
        session_id: 0,
        password: vec![],
        timeout: 0,
    };
    assert!(raw.is_closed());

    // Random bytes after a good handshake, many times: never a crash.
    for seed in 0..20u32 {
        let mut c = RawClient::connect(zk.port);
        let mut x = seed.wrapping_mul(2654435761).wrapping_add(1);
        let mut junk = Vec::new();
        for _ in 0..64 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            junk.push(x as u8);
        }
        let mut frame = (junk.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(&junk);
        c.send_raw(&frame);
    }

    // The healthy session never noticed.
    let r = healthy.call(1, op::CREATE, create_body("/still-fine", b"", 0));
    assert_eq!(r.err, 0);
    assert_eq!(four_letter(zk.port, "ruok").unwrap(), "imok");
}

#[test]
fn four_letter_words() {
    let zk = ZkServer::start(&[]);
    let _c = RawClient::connect(zk.port);
    assert_eq!(four_letter(zk.port, "ruok").unwrap(), "imok");
    let srvr = four_letter(zk.port, "srvr").unwrap();
    for key in [
        "Zookeeper version:",
        "Latency min/avg/max:",
        "Received:",
        "Sent:",
        "Connections:",
        "Outstanding:",
        "Zxid: 0x",
        "Mode: standalone",
        "Node count: 4",
    ] {
        assert!(srvr.contains(key), "srvr lacks {key}: {srvr}");
    }
    let stat = four_letter(zk.port, "stat").unwrap();
    assert!(stat.contains("Clients:\n /127.0.0.1:"), "{stat}");
    let mntr = four_letter(zk.port, "mntr").unwrap();
    assert!(mntr.contains("zk_server_state\tstandalone\n"), "{mntr}");
    assert!(mntr.contains("zk_znode_count\t4\n"), "{mntr}");
    assert!(mntr.contains("zk_global_sessions\t1\n"), "{mntr}");
    assert_eq!(four_letter(zk.port, "isro").unwrap(), "rw");
    assert!(four_letter(zk.port, "dump")
        .unwrap()
        .contains("not in the whitelist"));
}

#[test]
fn config_errors_name_the_key_and_exit_nonzero() {
    let dir = tempfile::tempdir().unwrap();
    for (text, key) in [
        ("client_prot = 2181\n", "client_prot"),
        ("tick_time_ms = \"fast\"\n", "tick_time_ms"),
        (
            "min_session_timeout_ms = 9000\nmax_session_timeout_ms = 10\n",
            "min_session_timeout_ms",
        ),
    ] {
        let cfg = dir.path().join("zk.toml");
        std::fs::write(&cfg, text).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_gregor"))
            .args(["zookeeper", "--config"])
            .arg(&cfg)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{text}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(key),
            "error for {text:?} does not name {key}: {err}"
        );
    }
}

#[test]
fn connection_limit_is_enforced_and_frees_up() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("zk.toml");
    std::fs::write(&cfg, "max_client_connections = 2\n").unwrap();
    let zk = ZkServer::start(&["--config", cfg.to_str().unwrap()]);
    let first = RawClient::connect(zk.port);
    let _second = RawClient::connect(zk.port);
    // The third is closed at once (ZooKeeper drops connections over maxClientCnxns).
    assert!(RawClient::connect_with(zk.port, 0, vec![0; 16], 10_000, 0).is_err());
    drop(first);
    let port = zk.port;
    common_zk::wait_for(
        std::time::Duration::from_secs(10),
        "a slot to free up",
        || RawClient::connect_with(port, 0, vec![0; 16], 10_000, 0).ok(),
    );
}
