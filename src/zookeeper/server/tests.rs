use super::*;
use crate::zookeeper::proto::{CreateRequest, EventType, SetDataRequest, NOTIFICATION_XID};

fn settings() -> Settings {
    Settings {
        min_session_timeout: 1000,
        max_session_timeout: 10_000,
        enforce_acl: true,
        max_txn_bytes: 4096,
        max_reply_bytes: 4096,
        max_outbound_bytes: 64 * 1024,
        max_watch_bytes: 1000,
        max_auth_ids: 100,
        super_digest: None,
    }
}

fn now() -> Now {
    Now { mono: 0, wall: 0 }
}

fn core(s: Settings) -> Core {
    use rand::SeedableRng;
    let rng = rand::rngs::StdRng::seed_from_u64(7);
    Core::new(s, DataTree::new(), SessionTable::new(10), 0, Box::new(rng))
}

/// Connects `conn` with a new session and drops the connect response.
fn connect(c: &mut Core, conn: ConnId) {
    c.handle(
        Input::Connect {
            conn,
            addr: format!("127.0.0.1:{}", 1000 + conn),
            req: ConnectRequest {
                protocol_version: 0,
                last_zxid_seen: 0,
                timeout: 5000,
                session_id: 0,
                password: vec![0; 16],
                read_only: false,
            },
        },
        now(),
    );
    c.take_outbox();
    c.take_txns();
}

fn req(c: &mut Core, conn: ConnId, xid: i32, req: Request) {
    c.handle(Input::Request { conn, xid, req }, now());
}

fn create(path: &str, data: usize, flags: i32, acl: Vec<Acl>) -> CreateRequest {
    CreateRequest {
        op: op::CREATE,
        path: path.into(),
        data: Some(vec![1; data]),
        acl: Some(acl),
        flags,
        ttl: -1,
    }
}

fn auth_acl() -> Vec<Acl> {
    vec![Acl {
        perms: perms::ALL,
        id: Id {
            scheme: "auth".into(),
            id: String::new(),
        },
    }]
}

/// (xid, err) of every reply in the outbox for `conn`; notification paths apart.
fn replies(out: &[(ConnId, Outbound)], conn: ConnId) -> Vec<(i32, i32)> {
    out.iter()
        .filter(|(c, _)| *c == conn)
        .filter_map(|(_, o)| match o {
            Outbound::Response(f) => Some((
                i32::from_be_bytes(f[4..8].try_into().unwrap()),
                i32::from_be_bytes(f[16..20].try_into().unwrap()),
            )),
            _ => None,
        })
        .collect()
}

fn notified_paths(out: &[(ConnId, Outbound)], conn: ConnId) -> Vec<(i32, String)> {
    out.iter()
        .filter(|(c, _)| *c == conn)
        .filter_map(|(_, o)| match o {
            Outbound::Notification(f) => {
                let mut r = super::super::jute::Reader::new(&f[4..]);
                assert_eq!(r.read_i32().unwrap(), NOTIFICATION_XID);
                r.read_i64().unwrap();
                r.read_i32().unwrap();
                let ty = r.read_i32().unwrap();
                r.read_i32().unwrap();
                Some((ty, r.read_string().unwrap().unwrap()))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn a_write_whose_txn_would_pass_the_limit_is_refused_and_changes_nothing() {
    let mut c = core(settings());
    connect(&mut c, 1);
    // 80 digest ids: an `auth` ACL expands to all of them (~4 KiB of ACL).
    for i in 0..80 {
        let auth = format!("user{i}:pw").into_bytes();
        req(
            &mut c,
            1,
            -4,
            Request::Auth {
                scheme: "digest".into(),
                auth,
            },
        );
    }
    c.take_outbox();
    req(
        &mut c,
        1,
        1,
        Request::Create(create("/a", 10, 0, auth_acl())),
    );
    assert_eq!(
        replies(&c.take_outbox(), 1),
        vec![(1, Code::BadArguments.as_i32())]
    );
    let txns = c.take_txns();
    assert_eq!(txns.len(), 1);
    assert!(matches!(txns[0].1, Txn::Error { .. }), "{:?}", txns[0].1);
    assert!(c.tree().get("/a").is_none());
    // The same create with an open ACL fits.
    req(
        &mut c,
        1,
        2,
        Request::Create(create("/a", 10, 0, vec![Acl::world(31)])),
    );
    assert_eq!(replies(&c.take_outbox(), 1), vec![(2, 0)]);
    assert!(c.tree().get("/a").is_some());
}

#[test]
fn a_multi_is_charged_op_by_op_and_rolled_back_when_over() {
    let mut c = core(settings());
    connect(&mut c, 1);
    let ops = (0..5)
        .map(|i| MultiOp::Create(create(&format!("/m{i}"), 1000, 0, vec![Acl::world(31)])))
        .collect();
    req(&mut c, 1, 1, Request::Multi(ops));
    let out = c.take_outbox();
    // A failed multi's header says OK; the ops carry the codes.
    assert_eq!(replies(&out, 1), vec![(1, 0)]);
    let txns = c.take_txns();
    match &txns[0].1 {
        Txn::Multi(t) => {
            assert_eq!(t.len(), 5);
            assert!(t.iter().all(|t| matches!(t, Txn::Error { .. })));
            // The fourth op passes the 4 KiB limit; the fifth is never tried.
            assert_eq!(
                t[3],
                Txn::Error {
                    code: Code::BadArguments.as_i32()
                }
            );
            assert_eq!(
                t[4],
                Txn::Error {
                    code: Code::RuntimeInconsistency.as_i32()
                }
            );
        }
        other => panic!("{other:?}"),
    }
    for i in 0..5 {
        assert!(c.tree().get(&format!("/m{i}")).is_none());
    }
}

#[test]
fn close_session_txn_does_not_list_the_ephemerals() {
    let mut c = core(Settings {
        max_txn_bytes: 64 * 1024,
        ..settings()
    });
    connect(&mut c, 1);
    for i in 0..200 {
        let path = format!("/e{i}-{}", "x".repeat(2000));
        req(
            &mut c,
            1,
            i,
            Request::Create(create(&path, 0, 1, vec![Acl::world(31)])),
        );
        assert_eq!(replies(&c.take_outbox(), 1), vec![(i, 0)]);
    }
    assert_eq!(c.tree().ephemeral_count(), 200);
    c.take_txns();
    c.take_outbox();
    req(&mut c, 1, 999, Request::CloseSession);
    let txns = c.take_txns();
    assert_eq!(txns.len(), 1);
    assert_eq!(txns[0].1, Txn::CloseSession { paths: vec![] });
    assert!(txns[0].1.encoded_len() < 16);
    assert_eq!(c.tree().ephemeral_count(), 0);
    assert_eq!(c.tree().node_count(), DataTree::new().node_count());
}

#[test]
fn replies_over_the_limit_close_the_connection_instead() {
    let mut c = core(Settings {
        max_txn_bytes: 64 * 1024,
        ..settings()
    });
    connect(&mut c, 1);
    req(
        &mut c,
        1,
        1,
        Request::Create(create("/big", 3000, 0, vec![Acl::world(31)])),
    );
    c.take_outbox();
    // One read fits; a multiRead of two does not and is never built.
    req(
        &mut c,
        1,
        2,
        Request::GetData {
            path: "/big".into(),
            watch: false,
        },
    );
    assert_eq!(replies(&c.take_outbox(), 1), vec![(2, 0)]);
    let two = vec![
        ReadOp::GetData {
            path: "/big".into(),
        },
        ReadOp::GetData {
            path: "/big".into(),
        },
    ];
    req(&mut c, 1, 3, Request::MultiRead(two));
    assert_eq!(c.take_outbox(), vec![(1, Outbound::Close)]);
    // The connection is gone: what it pipelined after is dropped.
    req(
        &mut c,
        1,
        4,
        Request::GetData {
            path: "/big".into(),
            watch: false,
        },
    );
    assert!(c.take_outbox().is_empty());
    // So does a getChildren whose list would be too long.
    connect(&mut c, 2);
    for i in 0..100 {
        let p = format!("/big/{i:040}");
        req(
            &mut c,
            2,
            i,
            Request::Create(create(&p, 0, 0, vec![Acl::world(31)])),
        );
    }
    c.take_outbox();
    req(
        &mut c,
        2,
        200,
        Request::GetChildren {
            path: "/big".into(),
            watch: false,
            with_stat: false,
        },
    );
    assert_eq!(c.take_outbox(), vec![(2, Outbound::Close)]);
}

#[test]
fn what_one_connection_may_queue_in_a_batch_is_bounded() {
    let mut c = core(Settings {
        max_txn_bytes: 64 * 1024,
        max_outbound_bytes: 10_000,
        ..settings()
    });
    connect(&mut c, 1);
    connect(&mut c, 2);
    req(
        &mut c,
        1,
        1,
        Request::Create(create("/d", 3000, 0, vec![Acl::world(31)])),
    );
    c.take_outbox();
    for xid in 0..100 {
        req(
            &mut c,
            1,
            xid,
            Request::GetData {
                path: "/d".into(),
                watch: false,
            },
        );
    }
    req(
        &mut c,
        2,
        1,
        Request::GetData {
            path: "/d".into(),
            watch: false,
        },
    );
    let out = c.take_outbox();
    let for_1: Vec<_> = out.iter().filter(|(c, _)| *c == 1).collect();
    assert_eq!(for_1, vec![&(1, Outbound::Abort)], "queued replies dropped");
    assert_eq!(replies(&out, 2), vec![(1, 0)], "the other client is served");
    assert_eq!(c.connections().len(), 1);
}

fn digest(user_pw: &str) -> Request {
    Request::Auth {
        scheme: "digest".into(),
        auth: user_pw.as_bytes().to_vec(),
    }
}

/// The ACL list in the body of the last reply to `conn` (a getACL reply).
fn acl_reply(out: &[(ConnId, Outbound)], conn: ConnId) -> Vec<(i32, String, String)> {
    let f = out
        .iter()
        .rev()
        .find_map(|(c, o)| match o {
            Outbound::Response(f) if *c == conn => Some(f),
            _ => None,
        })
        .expect("a reply");
    let mut r = super::super::jute::Reader::new(&f[20..]);
    let n = r.read_i32().unwrap();
    (0..n)
        .map(|_| {
            let perms = r.read_i32().unwrap();
            let scheme = r.read_string().unwrap().unwrap();
            let id = r.read_string().unwrap().unwrap();
            (perms, scheme, id)
        })
        .collect()
}

/// The first non-zero error among the results of the multi reply `xid`.
fn first_multi_error(out: &[(ConnId, Outbound)], conn: ConnId, xid: i32) -> i32 {
    let f = out
        .iter()
        .find_map(|(c, o)| match o {
            Outbound::Response(f)
                if *c == conn && i32::from_be_bytes(f[4..8].try_into().unwrap()) == xid =>
            {
                Some(f)
            }
            _ => None,
        })
        .expect("the multi reply");
    let mut r = super::super::jute::Reader::new(&f[20..]);
    loop {
        let ty = r.read_i32().unwrap();
        let done = r.read_bool().unwrap();
        let err = r.read_i32().unwrap();
        if done {
            return 0;
        }
        if ty == op::ERROR {
            let code = r.read_i32().unwrap();
            if code != 0 {
                return code;
            }
        } else if ty == op::SET_DATA {
            for _ in 0..STAT_LEN {
                r.read_u8().unwrap();
            }
        } else if ty != op::CHECK {
            panic!("unexpected result type {ty} (err {err})");
        }
    }
}

/// What ZooKeeper-mode Kafka relies on with `zookeeper.set.acl=true`: znodes created
/// `auth` ALL + `world` READ by the brokers' digest, and `auth` ALL alone for secrets.
/// Every op checks what ZooKeeper 3.8 checks (CREATE / DELETE on the parent, WRITE,
/// ADMIN, READ), inside a multi too, and the super digest passes every check.
#[test]
fn secured_znodes_as_kafka_creates_them() {
    let mut s = settings();
    // super:test (the example in ZooKeeper's admin guide).
    s.super_digest = Some("super:D/InIHSb7yEEbrWz8b9l71RjZJU=".into());
    let mut c = core(s);
    let (broker, stranger, other_broker, admin, wrong) = (1, 2, 3, 4, 5);
    for conn in 1..=5 {
        connect(&mut c, conn);
    }
    req(&mut c, broker, -4, digest("kafka:secret"));
    req(&mut c, other_broker, -4, digest("kafka:secret"));
    req(&mut c, admin, -4, digest("super:test"));
    req(&mut c, wrong, -4, digest("kafka:guess"));
    let secure = vec![auth_acl()[0].clone(), Acl::world(perms::READ)];
    req(
        &mut c,
        broker,
        1,
        Request::Create(create("/brokers", 1, 0, secure.clone())),
    );
    req(
        &mut c,
        broker,
        2,
        Request::Create(create("/brokers/ids", 1, 0, secure.clone())),
    );
    req(
        &mut c,
        broker,
        3,
        Request::Create(create("/brokers/ids/1", 1, 1, secure.clone())),
    );
    req(
        &mut c,
        broker,
        4,
        Request::Create(create("/users", 1, 0, auth_acl())),
    );
    assert_eq!(
        replies(&c.take_outbox(), broker),
        vec![(-4, 0), (1, 0), (2, 0), (3, 0), (4, 0)]
    );
    // `auth` became the brokers' digest id.
    req(
        &mut c,
        broker,
        5,
        Request::GetAcl {
            path: "/brokers".into(),
        },
    );
    let kafka_id = "kafka:".to_string() + &acl::base64(&acl::sha1(b"kafka:secret"));
    assert_eq!(
        acl_reply(&c.take_outbox(), broker),
        vec![
            (perms::ALL, "digest".into(), kafka_id.clone()),
            (perms::READ, "world".into(), "anyone".into())
        ]
    );

    let set = |path: &str| {
        Request::SetData(SetDataRequest {
            path: path.into(),
            data: Some(b"x".to_vec()),
            version: -1,
        })
    };
    let attempts = |c: &mut Core, conn: ConnId| -> Vec<(i32, i32)> {
        let ops = vec![
            // Reads of a world-readable znode.
            Request::GetData {
                path: "/brokers/ids/1".into(),
                watch: false,
            },
            Request::GetChildren {
                path: "/brokers/ids".into(),
                watch: true,
                with_stat: false,
            },
            Request::Sync {
                path: "/brokers".into(),
            },
            // Writes: WRITE on the node, CREATE / DELETE on the parent, ADMIN.
            set("/brokers/ids/1"),
            Request::Create(create("/brokers/ids/9", 1, 1, vec![Acl::world(perms::ALL)])),
            Request::Delete {
                path: "/brokers/ids/1".into(),
                version: -1,
            },
            Request::SetAcl {
                path: "/brokers".into(),
                acl: Some(vec![Acl::world(perms::ALL)]),
                version: -1,
            },
            Request::Multi(vec![
                MultiOp::Check {
                    path: "/brokers".into(),
                    version: 0,
                },
                MultiOp::SetData(SetDataRequest {
                    path: "/brokers/ids".into(),
                    data: None,
                    version: -1,
                }),
            ]),
            // The secret: not even its existence.
            Request::GetData {
                path: "/users".into(),
                watch: false,
            },
            Request::Exists {
                path: "/users".into(),
                watch: false,
            },
            Request::GetChildren {
                path: "/users".into(),
                watch: false,
                with_stat: false,
            },
            Request::GetAcl {
                path: "/users".into(),
            },
        ];
        for (i, op_) in ops.into_iter().enumerate() {
            req(c, conn, 100 + i as i32, op_);
        }
        let out = c.take_outbox();
        replies(&out, conn)
            .into_iter()
            .filter(|(xid, _)| *xid >= 100)
            // The multi (xid 107) answers per op: its first error counts.
            .map(|(xid, err)| match xid {
                107 => (xid, first_multi_error(&out, conn, xid)),
                _ => (xid, err),
            })
            .collect()
    };
    let no_auth = Code::NoAuth.as_i32();
    let expected_stranger: Vec<(i32, i32)> = [
        0, 0, 0, no_auth, no_auth, no_auth, no_auth, no_auth, no_auth, no_auth, no_auth, no_auth,
    ]
    .into_iter()
    .enumerate()
    .map(|(i, e)| (100 + i as i32, e))
    .collect();
    assert_eq!(attempts(&mut c, stranger), expected_stranger);
    // A wrong password is just another identity.
    assert_eq!(attempts(&mut c, wrong), expected_stranger);
    // The stranger sees who may write, not the digest (no ADMIN: masked).
    req(
        &mut c,
        stranger,
        200,
        Request::GetAcl {
            path: "/brokers".into(),
        },
    );
    assert_eq!(
        acl_reply(&c.take_outbox(), stranger),
        vec![
            (perms::ALL, "digest".into(), "kafka:x".into()),
            (perms::READ, "world".into(), "anyone".into())
        ]
    );
    // An `auth` ACL without an authenticated id is INVALIDACL (before the parent's
    // CREATE check).
    req(
        &mut c,
        stranger,
        201,
        Request::Create(create("/mine", 0, 0, auth_acl())),
    );
    assert_eq!(
        replies(&c.take_outbox(), stranger),
        vec![(201, Code::InvalidAcl.as_i32())]
    );
    // Nothing changed.
    assert_eq!(
        c.tree().get("/brokers/ids/1").unwrap().data.as_deref(),
        Some(&[1u8][..])
    );
    assert!(c.tree().get("/brokers/ids/9").is_none());

    // Another session with the brokers' digest, and the super user, may do it all
    // (the delete of /brokers/ids/1 and the ACL change go last).
    let ok: Vec<(i32, i32)> = (0..12).map(|i| (100 + i, 0)).collect();
    let got = attempts(&mut c, other_broker);
    assert_eq!(got, ok);
    assert_eq!(
        c.tree().get("/brokers").unwrap().acl,
        vec![Acl::world(perms::ALL)]
    );
    req(
        &mut c,
        admin,
        300,
        Request::SetAcl {
            path: "/users".into(),
            acl: Some(vec![Acl::world(perms::READ)]),
            version: -1,
        },
    );
    req(
        &mut c,
        admin,
        301,
        Request::GetData {
            path: "/users".into(),
            watch: false,
        },
    );
    assert_eq!(replies(&c.take_outbox(), admin), vec![(300, 0), (301, 0)]);
}

#[test]
fn watch_events_go_only_to_watchers_that_may_read_the_node() {
    let mut c = core(settings());
    for conn in 1..=3 {
        connect(&mut c, conn);
    }
    for conn in [1, 3] {
        req(
            &mut c,
            conn,
            -4,
            Request::Auth {
                scheme: "digest".into(),
                auth: b"alice:pw".to_vec(),
            },
        );
    }
    req(
        &mut c,
        1,
        1,
        Request::Create(create("/s", 0, 0, auth_acl())),
    );
    req(
        &mut c,
        1,
        2,
        Request::Create(create("/o", 0, 0, vec![Acl::world(31)])),
    );
    for conn in [2, 3] {
        req(
            &mut c,
            conn,
            1,
            Request::AddWatch {
                path: "/".into(),
                mode: 1,
            },
        );
    }
    // A child watch on /s by the stranger is refused with the read itself; an
    // exists watch on a path that does not exist yet is set.
    req(
        &mut c,
        2,
        2,
        Request::Exists {
            path: "/s/x".into(),
            watch: true,
        },
    );
    c.take_outbox();
    req(
        &mut c,
        1,
        3,
        Request::Create(create("/s/x", 0, 0, auth_acl())),
    );
    req(
        &mut c,
        1,
        4,
        Request::Delete {
            path: "/s/x".into(),
            version: -1,
        },
    );
    req(
        &mut c,
        1,
        5,
        Request::Create(create("/o/x", 0, 0, vec![Acl::world(31)])),
    );
    let out = c.take_outbox();
    let created = EventType::NodeCreated as i32;
    let deleted = EventType::NodeDeleted as i32;
    assert_eq!(notified_paths(&out, 2), vec![(created, "/o/x".to_string())]);
    assert_eq!(
        notified_paths(&out, 3),
        vec![
            (created, "/s/x".to_string()),
            (deleted, "/s/x".to_string()),
            (created, "/o/x".to_string())
        ]
    );
}

#[test]
fn watches_and_auth_ids_per_connection_are_bounded() {
    let mut c = core(Settings {
        max_auth_ids: 3,
        ..settings()
    });
    connect(&mut c, 1);
    // exists-watches on paths that do not exist, 100 bytes each: the 11th passes
    // the 1000-byte budget and closes the connection.
    for i in 0..10 {
        let path = format!("/{i:099}");
        req(&mut c, 1, i, Request::Exists { path, watch: true });
    }
    assert!(c.take_outbox().iter().all(|(_, o)| *o != Outbound::Close));
    assert_eq!(c.watch_count(), 10);
    let path = format!("/{:099}", 10);
    req(&mut c, 1, 10, Request::Exists { path, watch: true });
    assert_eq!(c.take_outbox(), vec![(1, Outbound::Close)]);
    assert_eq!(c.watch_count(), 0, "its watches went with it");

    connect(&mut c, 2);
    for (i, user) in ["a", "b", "c", "a"].iter().enumerate() {
        let auth = format!("{user}:pw").into_bytes();
        req(
            &mut c,
            2,
            i as i32,
            Request::Auth {
                scheme: "digest".into(),
                auth,
            },
        );
    }
    assert_eq!(
        replies(&c.take_outbox(), 2),
        vec![(0, 0), (1, 0), (2, 0), (3, 0)]
    );
    req(
        &mut c,
        2,
        9,
        Request::Auth {
            scheme: "digest".into(),
            auth: b"d:pw".to_vec(),
        },
    );
    let out = c.take_outbox();
    assert_eq!(replies(&out, 2), vec![(9, Code::AuthFailed.as_i32())]);
    assert_eq!(out.last(), Some(&(2, Outbound::Close)));
}
