//! Hostile clients against the real `gregor zookeeper` process (issue 8): no single
//! client takes the mini-zookeeper down, and nothing acknowledged is lost. Every case
//! checks that the process is still running, that another client is still served, and
//! that peak memory (`VmHWM`) stays under a stated ceiling. Attackers speak raw jute.

mod common_zk;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common_zk::{four_letter, wait_for, RawClient, Reply, ZkServer};
use gregor::zookeeper::jute::{Reader, Writer};
use gregor::zookeeper::proto::{op, perms, Acl, ConnectRequest, Id};

/// `jute.maxbuffer`'s default, ZooKeeper's 0xfffff.
const JUTE_MAXBUFFER: usize = 0xfffff;
const NO_NODE: i32 = -101;

fn create_body<'a>(
    path: &'a str,
    data: &'a [u8],
    flags: i32,
    acl: Vec<Acl>,
) -> impl FnOnce(&mut Writer) + 'a {
    move |w: &mut Writer| {
        w.write_string(path);
        w.write_buffer(Some(data));
        Acl::write_vec(&acl, w);
        w.write_i32(flags);
    }
}

fn open() -> Vec<Acl> {
    vec![Acl::world(perms::ALL)]
}

fn path_watch(path: &str, watch: bool) -> impl FnOnce(&mut Writer) + '_ {
    move |w: &mut Writer| {
        w.write_string(path);
        w.write_bool(watch);
    }
}

fn get_data(c: &mut RawClient, xid: i32, path: &str) -> (i32, Vec<u8>) {
    let r = c.call(xid, op::GET_DATA, path_watch(path, false));
    let data = if r.err == 0 {
        Reader::new(&r.body)
            .read_buffer()
            .unwrap()
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    (r.err, data)
}

fn exists(c: &mut RawClient, xid: i32, path: &str) -> i32 {
    c.call(xid, op::EXISTS, path_watch(path, false)).err
}

/// A config file with `text`, kept alive with the returned guard.
fn config(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("zk.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

/// Another client gets a full round trip: the server still serves everyone else.
fn assert_served(zk: &ZkServer, tag: &str) {
    let mut c = RawClient::connect(zk.port);
    let path = format!("/served-{tag}");
    let r = c.call(1, op::CREATE, create_body(&path, tag.as_bytes(), 0, open()));
    assert_eq!(r.err, 0, "another client's create ({tag})");
    assert_eq!(get_data(&mut c, 2, &path), (0, tag.as_bytes().to_vec()));
}

/// Reads (and discards) until the server closes the connection; false if it is still
/// open at the deadline.
fn closed_by_server(s: &mut TcpStream, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = vec![0u8; 1 << 16];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return true, // reset
        }
    }
    false
}

fn assert_memory_below(zk: &ZkServer, ceiling_mib: u64, what: &str) -> u64 {
    let hwm = zk.vm_hwm_kib();
    eprintln!("{what}: server VmHWM {} MiB", hwm / 1024);
    assert!(
        hwm < ceiling_mib * 1024,
        "{what}: VmHWM {hwm} KiB is over the {ceiling_mib} MiB ceiling"
    );
    hwm
}

/// 70 ephemerals with the longest paths a create within jute.maxbuffer can carry
/// (70 MiB of paths, more than the 64 MiB the log reader once took for a torn record),
/// then closeSession, then acknowledged writes, then kill -9: the writes survive and the
/// ephemerals are gone. The closeSession txn no longer lists the paths.
#[test]
fn close_session_of_70_huge_ephemerals_loses_no_later_write() {
    let mut zk = ZkServer::start(&[]);
    // A create frame is the path plus 51 bytes (header, empty data, open ACL, flags).
    let name_len = JUTE_MAXBUFFER - 51 - "/e00-".len();
    let paths: Vec<String> = (0..70)
        .map(|i| format!("/e{i:02}-{}", "x".repeat(name_len)))
        .collect();
    assert_eq!(paths[0].len() + 51, JUTE_MAXBUFFER);
    let mut owner = RawClient::connect(zk.port);
    for (i, p) in paths.iter().enumerate() {
        let r = owner.call(i as i32 + 1, op::CREATE, create_body(p, b"", 1, open()));
        assert_eq!(r.err, 0, "ephemeral {i}");
    }
    let r = owner.call(1000, op::CLOSE_SESSION, |_| {});
    assert_eq!(r.err, 0, "closeSession");
    assert!(closed_by_server(&mut owner.stream, Duration::from_secs(10)));

    let mut writer = RawClient::connect(zk.port);
    for i in 0..10 {
        let path = format!("/after-{i}");
        let r = writer.call(i + 1, op::CREATE, create_body(&path, b"kept", 0, open()));
        assert_eq!(r.err, 0, "acknowledged write {i}");
    }
    assert_eq!(exists(&mut writer, 20, &paths[0]), NO_NODE);
    assert!(zk.is_running());
    let before = assert_memory_below(&zk, 512, "70 x 1 MiB ephemerals");

    zk.restart();
    let mut c = RawClient::connect(zk.port);
    for i in 0..10 {
        assert_eq!(
            get_data(&mut c, i + 1, &format!("/after-{i}")),
            (0, b"kept".to_vec()),
            "write {i} after the closeSession survived"
        );
    }
    for (i, p) in paths.iter().enumerate().step_by(23) {
        assert_eq!(exists(&mut c, 100 + i as i32, p), NO_NODE, "ephemeral {i}");
    }
    let log = zk.log();
    assert!(!log.contains("corrupt"), "{log}");
    assert!(!log.contains("truncating"), "nothing was torn: {log}");
    // The replay went through every big record (session, 70 creates, close, ...).
    let replayed: u64 = log
        .rsplit("replayed=")
        .next()
        .and_then(|t| t.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("recovery line");
    assert!(replayed >= 83, "replayed {replayed} txns");
    let after = assert_memory_below(&zk, 512, "recovery of 70 MiB of ephemerals");
    eprintln!("VmHWM before crash {before} KiB, after recovery {after} KiB");
    assert_served(&zk, "ephemerals");
}

fn multi_read(ops: usize, path: &str) -> impl FnOnce(&mut Writer) + '_ {
    move |w: &mut Writer| {
        for _ in 0..ops {
            w.write_i32(op::GET_DATA);
            w.write_bool(false);
            w.write_i32(-1);
            w.write_string(path);
            w.write_bool(false);
        }
        w.write_i32(-1);
        w.write_bool(true);
        w.write_i32(-1);
    }
}

/// A multiRead of 65,000 getData of a 1 MB node (a 1 MB request whose reply would be
/// 65 GB) is refused: the server stops building it at jute.maxbuffer and closes that
/// connection, as the client would on a packet over its jute.maxbuffer. A request over
/// jute.maxbuffer closes the connection before it is read, as in ZooKeeper.
#[test]
fn multi_read_of_65k_large_reads_is_refused() {
    let mut zk = ZkServer::start(&[]);
    let mut c = RawClient::connect(zk.port);
    let data = vec![7u8; 1_000_000];
    assert_eq!(
        c.call(1, op::CREATE, create_body("/b", &data, 0, open()))
            .err,
        0
    );
    // One large read in a multiRead is fine.
    let ok = c.call(2, op::MULTI_READ, multi_read(1, "/b"));
    assert_eq!(ok.err, 0);
    assert!(ok.body.len() > 1_000_000);

    let mut hostile = RawClient::connect(zk.port);
    let mut w = Writer::framed();
    w.write_i32(3);
    w.write_i32(op::MULTI_READ);
    multi_read(65_000, "/b")(&mut w);
    let frame = w.finish_frame();
    assert!(
        frame.len() - 4 <= JUTE_MAXBUFFER,
        "the request itself is legal"
    );
    hostile.send_raw(&frame);
    match hostile.recv() {
        Err(e) => assert!(
            matches!(
                e.kind(),
                ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset
            ),
            "closed, not timed out: {e}"
        ),
        Ok(r) => panic!(
            "got a reply to a 65 GB multiRead: xid {} err {}",
            r.xid, r.err
        ),
    }
    assert!(zk.log().contains("reply larger than jute.maxbuffer"));

    // 65,536 ops make a frame over jute.maxbuffer: closed before it is even read.
    let mut bigger = RawClient::connect(zk.port);
    let mut w = Writer::framed();
    w.write_i32(4);
    w.write_i32(op::MULTI_READ);
    multi_read(65_536, "/b")(&mut w);
    let frame = w.finish_frame();
    assert!(frame.len() - 4 > JUTE_MAXBUFFER);
    let _ = bigger.stream.write_all(&frame);
    assert!(closed_by_server(
        &mut bigger.stream,
        Duration::from_secs(10)
    ));

    assert!(zk.is_running());
    assert_eq!(get_data(&mut c, 5, "/b"), (0, data));
    assert_served(&zk, "multiread");
    assert_memory_below(&zk, 128, "multiRead of 65,000 x 1 MB");
}

/// 1000 pipelined getData of a 512 KiB node from a client that never reads: its
/// replies (500 MB) pile up past connection_outbound_max_bytes (16 MiB) and it is
/// disconnected; the others are served and memory stays bounded.
#[test]
fn client_that_never_reads_its_replies_is_disconnected() {
    let mut zk = ZkServer::start(&[]);
    let mut c = RawClient::connect(zk.port);
    let data = vec![3u8; 512 * 1024];
    assert_eq!(
        c.call(1, op::CREATE, create_body("/r", &data, 0, open()))
            .err,
        0
    );
    let mut hog = RawClient::connect(zk.port);
    let sid = format!("sid={:#x}", hog.session_id);
    let port = zk.port;
    assert!(four_letter(port, "cons").unwrap().contains(&sid));
    let mut frames = Vec::new();
    for xid in 1..=1000 {
        let mut w = Writer::framed();
        w.write_i32(xid);
        w.write_i32(op::GET_DATA);
        path_watch("/r", false)(&mut w);
        frames.extend_from_slice(&w.finish_frame());
    }
    hog.send_raw(&frames);
    // Without reading a byte: the server drops the connection, well within the hog's
    // 10 s session timeout (so not because its session expired).
    assert_eq!(hog.timeout, 10_000);
    wait_for(Duration::from_secs(5), "the hog to be disconnected", || {
        (!four_letter(port, "cons").ok()?.contains(&sid)).then_some(())
    });
    assert!(zk.log().contains("does not read its replies"));
    assert!(closed_by_server(&mut hog.stream, Duration::from_secs(10)));
    assert!(zk.is_running());
    assert_eq!(get_data(&mut c, 2, "/r"), (0, data));
    assert_served(&zk, "hog");
    assert_memory_below(&zk, 128, "1000 unread 512 KiB replies");
}

/// Opens `n` TCP connections from `source` that never send a byte.
async fn idle_connections(port: u16, source: &str, n: usize) -> Vec<TcpStream> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind(format!("{source}:0").parse().unwrap()).unwrap();
        let s = sock
            .connect(format!("127.0.0.1:{port}").parse().unwrap())
            .await
            .unwrap();
        out.push(s.into_std().unwrap());
    }
    out
}

fn still_open(conns: &mut [TcpStream]) -> usize {
    conns
        .iter_mut()
        .filter(|s| {
            s.set_nonblocking(true).unwrap();
            let mut b = [0u8; 1];
            let mut r: &TcpStream = s;
            matches!(r.read(&mut b), Err(e) if e.kind() == ErrorKind::WouldBlock)
        })
        .count()
}

/// Default config: 1024 handshake-only connections from one address (127.0.0.2) get
/// maxClientCnxns (60) slots and the rest are closed at once, so a client from another
/// address connects and works meanwhile; the 60 are closed when the sessionless
/// timeout (10 s) passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_only_connections_do_not_lock_clients_out_default_limits() {
    let mut zk = ZkServer::start(&[]);
    let started = Instant::now();
    let mut idle = idle_connections(zk.port, "127.0.0.2", 1024).await;
    let open = wait_for(
        Duration::from_secs(10),
        "the server to refuse all but 60",
        || {
            let n = still_open(&mut idle);
            (n <= 60).then_some(n)
        },
    );
    assert_eq!(open, 60, "maxClientCnxns = 60 per address");
    let zk_ref = &zk;
    tokio::task::block_in_place(|| assert_served(zk_ref, "during-flood"));
    // The 60 are dropped by the handshake deadline (accepted after `started`).
    wait_for(
        Duration::from_secs(20),
        "idle connections to time out",
        || (still_open(&mut idle) == 0).then_some(()),
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(9_900),
        "closed after {waited:?}, before the 10 s sessionless timeout"
    );
    // The address has its slots back: a real session from 127.0.0.2.
    let mut s = idle_connections(zk.port, "127.0.0.2", 1).await.remove(0);
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let req = ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0,
        timeout: 10_000,
        session_id: 0,
        password: vec![0; 16],
        read_only: false,
    };
    s.write_all(&req.encode()).unwrap();
    let resp = common_zk::read_frame(&mut s).expect("a ConnectResponse");
    let mut r = Reader::new(&resp);
    let _proto = r.read_i32().unwrap();
    assert!(r.read_i32().unwrap() > 0, "a session with a timeout");
    assert!(zk.is_running());
    assert_memory_below(&zk, 128, "1024 handshake-only connections");
}

/// Lowered config (no per-IP limit, 50 connections server-wide, 500 ms to complete a
/// handshake): 1024 handshake-only connections from the client's own address fill every
/// slot, and the client gets in as soon as the deadline frees them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_deadline_frees_slots_held_by_idle_connections() {
    let (_dir, cfg) = config(
        "max_client_cnxns = 0\nmax_client_connections = 50\nsessionless_cnxn_timeout_ms = 500\n",
    );
    let mut zk = ZkServer::start(&["--config", cfg.to_str().unwrap()]);
    let mut idle = idle_connections(zk.port, "127.0.0.1", 1024).await;
    let port = zk.port;
    let start = Instant::now();
    let mut client = tokio::task::block_in_place(|| {
        wait_for(Duration::from_secs(10), "a slot for a real client", || {
            RawClient::connect_with(port, 0, vec![0; 16], 10_000, 0).ok()
        })
    });
    eprintln!("real client connected after {:?}", start.elapsed());
    let r = client.call(1, op::CREATE, create_body("/in", b"1", 0, open()));
    assert_eq!(r.err, 0);
    wait_for(
        Duration::from_secs(10),
        "every idle connection closed",
        || (still_open(&mut idle) == 0).then_some(()),
    );
    assert!(zk.is_running());
    assert_memory_below(&zk, 128, "1024 idle connections, lowered limits");
}

fn add_auth(c: &mut RawClient, user: &str) {
    let r = c.call(-4, op::AUTH, |w| {
        w.write_i32(0);
        w.write_string("digest");
        w.write_buffer(Some(format!("{user}:pw").as_bytes()));
    });
    assert_eq!(r.err, 0, "addauth");
}

fn add_watch(c: &mut RawClient, xid: i32, path: &str, mode: i32) {
    let r = c.call(xid, op::ADD_WATCH, |w| {
        w.write_string(path);
        w.write_i32(mode);
    });
    assert_eq!(r.err, 0, "addWatch {path}");
}

/// (event type, path) of every notification up to the one for `marker`.
fn events_until(c: &mut RawClient, marker: &str) -> Vec<(i32, String)> {
    let mut out = Vec::new();
    loop {
        let r: Reply = c.recv().expect("a notification");
        if r.xid != -1 {
            continue;
        }
        let mut rd = Reader::new(&r.body);
        let kind = rd.read_i32().unwrap();
        let _state = rd.read_i32().unwrap();
        let path = rd.read_string().unwrap().unwrap_or_default();
        let done = path == marker;
        out.push((kind, path));
        if done {
            return out;
        }
    }
}

/// CVE-2024-23944: a persistent recursive watch on `/` from an unauthenticated client
/// must not reveal changes under an ACL-protected subtree; an authorized watcher sees
/// them. Likewise a one-shot exists-watch on a protected path that gets created.
#[test]
fn recursive_watch_hears_only_what_it_may_read() {
    let mut zk = ZkServer::start(&[]);
    let mut owner = RawClient::connect(zk.port);
    add_auth(&mut owner, "alice");
    let mine = vec![Acl {
        perms: perms::ALL,
        id: Id {
            scheme: "auth".into(),
            id: String::new(),
        },
    }];
    for p in ["/secure", "/secure/x"] {
        assert_eq!(
            owner
                .call(1, op::CREATE, create_body(p, b"s", 0, mine.clone()))
                .err,
            0
        );
    }
    assert_eq!(
        owner
            .call(2, op::CREATE, create_body("/open", b"", 0, open()))
            .err,
        0
    );

    let mut stranger = RawClient::connect(zk.port);
    add_watch(&mut stranger, 1, "/", 1);
    assert_eq!(exists(&mut stranger, 2, "/secure/q"), NO_NODE);
    // exists with a watch on a path that does not exist yet sets the watch.
    let r = stranger.call(3, op::EXISTS, path_watch("/secure/q", true));
    assert_eq!(r.err, NO_NODE);
    let mut friend = RawClient::connect(zk.port);
    add_auth(&mut friend, "alice");
    add_watch(&mut friend, 1, "/", 1);

    // Changes under /secure, then a marker under /open.
    let set = owner.call(3, op::SET_DATA, |w| {
        w.write_string("/secure/x");
        w.write_buffer(Some(b"t"));
        w.write_i32(-1);
    });
    assert_eq!(set.err, 0);
    for (xid, p) in [(4, "/secure/y"), (5, "/secure/q")] {
        assert_eq!(
            owner
                .call(xid, op::CREATE, create_body(p, b"", 0, mine.clone()))
                .err,
            0
        );
    }
    let del = owner.call(6, op::DELETE, |w| {
        w.write_string("/secure/y");
        w.write_i32(-1);
    });
    assert_eq!(del.err, 0);
    assert_eq!(
        owner
            .call(7, op::CREATE, create_body("/open/marker", b"", 0, open()))
            .err,
        0
    );

    let seen = events_until(&mut stranger, "/open/marker");
    assert!(
        seen.iter().all(|(_, p)| !p.starts_with("/secure")),
        "an unauthorized watcher heard of {seen:?}"
    );
    assert_eq!(seen, vec![(1, "/open/marker".to_string())]);
    let heard = events_until(&mut friend, "/open/marker");
    for want in [
        (3, "/secure/x"),
        (1, "/secure/y"),
        (1, "/secure/q"),
        (2, "/secure/y"),
    ] {
        assert!(
            heard.contains(&(want.0, want.1.to_string())),
            "the authorized watcher missed {want:?}: {heard:?}"
        );
    }
    assert!(zk.is_running());
    assert_served(&zk, "watches");
}

fn set_data(c: &mut RawClient, xid: i32, path: &str, data: &[u8]) -> i32 {
    c.call(xid, op::SET_DATA, |w| {
        w.write_string(path);
        w.write_buffer(Some(data));
        w.write_i32(-1);
    })
    .err
}

fn log_files(zk: &ZkServer) -> Vec<(String, u64)> {
    let mut v: Vec<_> = std::fs::read_dir(zk.data_dir())
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let name = e.file_name().into_string().ok()?;
            name.starts_with("log.")
                .then(|| (name, e.metadata().unwrap().len()))
        })
        .collect();
    v.sort();
    v
}

/// 200 setData of 1 MB on one node make a 200 MB log; after kill -9 recovery streams it
/// (one record at a time), so peak memory is far below the log's size, and the last
/// acknowledged value is there.
#[test]
fn recovery_streams_a_200_mb_log_in_bounded_memory() {
    let mut zk = ZkServer::start(&[]);
    let mut c = RawClient::connect(zk.port);
    assert_eq!(
        c.call(1, op::CREATE, create_body("/v", b"", 0, open())).err,
        0
    );
    for i in 0..200u8 {
        assert_eq!(set_data(&mut c, 2 + i as i32, "/v", &vec![i; 1_000_000]), 0);
    }
    let logs = log_files(&zk);
    let total: u64 = logs.iter().map(|(_, n)| n).sum();
    assert!(total > 200_000_000, "{logs:?}");
    zk.restart();
    let mut c = RawClient::connect(zk.port);
    assert_eq!(get_data(&mut c, 1, "/v"), (0, vec![199u8; 1_000_000]));
    assert_memory_below(&zk, 96, "recovery of a 200 MB log");
}

/// With `snap_size_limit_kb` lowered to 20 MiB, 200 MB of writes roll the log by size
/// (a snapshot and a new file each time), although far fewer txns than
/// snapshot_interval_txns were written; a restart still finds the last value.
#[test]
fn logs_roll_by_size() {
    let (_dir, cfg) = config("snap_size_limit_kb = 20480\nsnapshot_interval_txns = 1000000\n");
    let mut zk = ZkServer::start(&["--config", cfg.to_str().unwrap()]);
    let mut c = RawClient::connect(zk.port);
    assert_eq!(
        c.call(1, op::CREATE, create_body("/v", b"", 0, open())).err,
        0
    );
    for i in 0..200u8 {
        assert_eq!(set_data(&mut c, 2 + i as i32, "/v", &vec![i; 1_000_000]), 0);
    }
    // Older logs go with the snapshots that no longer need them (3 kept).
    let logs = wait_for(Duration::from_secs(20), "a rolled log", || {
        let l = log_files(&zk);
        (l.len() >= 2).then_some(l)
    });
    let snapshots = std::fs::read_dir(zk.data_dir())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("snapshot.")
        })
        .count();
    assert!(snapshots >= 2, "{snapshots} snapshots");
    for (name, len) in &logs {
        assert!(*len <= 22 * 1024 * 1024, "{name} is {len} bytes");
    }
    zk.restart();
    let mut c = RawClient::connect(zk.port);
    assert_eq!(get_data(&mut c, 1, "/v"), (0, vec![199u8; 1_000_000]));
    assert!(zk.is_running());
}

/// 1000 setData of 1 MB pipelined in one burst: the server takes in at most
/// max_outstanding_request_bytes (4 x jute.maxbuffer) of them at a time (not 1000 in
/// flight, as max_outstanding_requests alone allowed), so memory stays far below the
/// 1 GB sent, and every write is acknowledged in order. (Measured: 50-58 MiB. Before
/// read buffers were sized by the frame, `BytesMut`'s doubling grew each pipelining
/// connection's buffer to 8 MiB and peaks ranged 100-370 MiB.)
#[test]
fn pipelined_large_writes_are_taken_in_a_few_at_a_time() {
    let mut zk = ZkServer::start(&[]);
    let mut c = RawClient::connect(zk.port);
    assert_eq!(
        c.call(1, op::CREATE, create_body("/p", b"", 0, open())).err,
        0
    );
    let mut out = c.stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        for i in 0..1000 {
            let mut w = Writer::framed();
            w.write_i32(100 + i);
            w.write_i32(op::SET_DATA);
            w.write_string("/p");
            w.write_buffer(Some(&vec![i as u8; 1_000_000]));
            w.write_i32(-1);
            out.write_all(&w.finish_frame()).unwrap();
        }
    });
    for i in 0..1000 {
        let r = c.recv().expect("a reply");
        assert_eq!((r.xid, r.err), (100 + i, 0), "reply {i}");
    }
    sender.join().unwrap();
    assert_eq!(
        get_data(&mut c, 2, "/p"),
        (0, vec![(999 % 256) as u8; 1_000_000])
    );
    assert!(zk.is_running());
    assert_memory_below(&zk, 128, "1000 pipelined 1 MB writes");
}

/// Four clients pipelining 100 writes of 1 MB each at once, with the server-wide
/// in-flight pool lowered to two requests' worth: they take turns (no deadlock), every
/// write is acknowledged in order, memory stays bounded.
#[test]
fn the_global_in_flight_pool_is_shared_without_deadlock() {
    let (_dir, cfg) = config(&format!(
        "global_outstanding_request_bytes = {}\nmax_outstanding_request_bytes = {}\n",
        2 * JUTE_MAXBUFFER,
        2 * JUTE_MAXBUFFER
    ));
    let mut zk = ZkServer::start(&["--config", cfg.to_str().unwrap()]);
    let port = zk.port;
    let workers: Vec<_> = (0..4)
        .map(|k| {
            std::thread::spawn(move || {
                let mut c = RawClient::connect(port);
                let path = format!("/g{k}");
                assert_eq!(
                    c.call(1, op::CREATE, create_body(&path, b"", 0, open()))
                        .err,
                    0
                );
                let mut out = c.stream.try_clone().unwrap();
                let p = path.clone();
                let sender = std::thread::spawn(move || {
                    for i in 0..100 {
                        let mut w = Writer::framed();
                        w.write_i32(100 + i);
                        w.write_i32(op::SET_DATA);
                        w.write_string(&p);
                        w.write_buffer(Some(&vec![i as u8; 1_000_000]));
                        w.write_i32(-1);
                        out.write_all(&w.finish_frame()).unwrap();
                    }
                });
                for i in 0..100 {
                    let r = c.recv().expect("a reply");
                    assert_eq!((r.xid, r.err), (100 + i, 0), "client {k} reply {i}");
                }
                sender.join().unwrap();
                assert_eq!(get_data(&mut c, 2, &path), (0, vec![99u8; 1_000_000]));
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    assert!(zk.is_running());
    assert_served(&zk, "global");
    assert_memory_below(&zk, 128, "4 x 100 pipelined 1 MB writes, shared pool");
}

/// `max_reply_bytes` raised to 4 MiB (as for Kafka's ZooKeeper client, whose
/// jute.maxbuffer is 4 MiB): a 3 MB multiRead goes through, the 65 GB one is still
/// refused.
#[test]
fn raised_max_reply_bytes_lets_bigger_replies_through() {
    let (_dir, cfg) = config("max_reply_bytes = 4194304\n");
    let mut zk = ZkServer::start(&["--config", cfg.to_str().unwrap()]);
    let mut c = RawClient::connect(zk.port);
    let data = vec![9u8; 1_000_000];
    assert_eq!(
        c.call(1, op::CREATE, create_body("/b", &data, 0, open()))
            .err,
        0
    );
    let three = c.call(2, op::MULTI_READ, multi_read(3, "/b"));
    assert_eq!(three.err, 0);
    assert!(three.body.len() > 3_000_000);
    let mut hostile = RawClient::connect(zk.port);
    hostile.send(3, op::MULTI_READ, multi_read(65_000, "/b"));
    assert!(hostile.recv().is_err(), "the 65 GB multiRead is refused");
    assert!(zk.is_running());
    assert_eq!(get_data(&mut c, 4, "/b"), (0, data));
}
