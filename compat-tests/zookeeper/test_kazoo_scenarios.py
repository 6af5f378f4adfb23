"""Kazoo scenarios, each run against gregor zookeeper and a real ZooKeeper 3.8 with the
same expected results."""

import threading
import time

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import (BadArgumentsError, BadVersionError, InvalidACLError,
                              NoAuthError, NoChildrenForEphemeralsError, NodeExistsError,
                              NoNodeError, NotEmptyError, RolledBackError,
                              RuntimeInconsistency)
from kazoo.protocol.states import EventType
from kazoo.security import ACL, Id, make_digest_acl, Permissions, READ_ACL_UNSAFE

from conftest import wait_until


def test_system_nodes(zk):
    data, st = zk.get("/zookeeper")
    assert data == b""
    assert (st.czxid, st.mzxid, st.version, st.cversion, st.numChildren) == (0, 0, 0, -2, 2)
    assert sorted(zk.get_children("/zookeeper")) == ["config", "quota"]
    acl, st = zk.get_acls("/zookeeper/config")
    assert acl == [ACL(Permissions.READ, Id("world", "anyone"))]
    assert st.aversion == -1
    assert zk.get("/zookeeper/quota")[1].cversion == 0
    with pytest.raises(BadArgumentsError):
        zk.delete("/zookeeper/config")


def test_create_set_delete_stats(zk, unique):
    p = unique
    real = zk.create(p, b"v0")
    assert real == p
    data, st = zk.get(p)
    assert data == b"v0"
    assert st.czxid == st.mzxid == st.pzxid
    assert (st.version, st.cversion, st.aversion, st.ephemeralOwner) == (0, 0, 0, 0)
    assert (st.dataLength, st.numChildren) == (2, 0)
    assert st.ctime == st.mtime

    st2 = zk.set(p, b"v1-longer", version=0)
    assert st2.version == 1 and st2.mzxid > st.mzxid and st2.dataLength == 9
    assert (st2.czxid, st2.pzxid, st2.ctime) == (st.czxid, st.pzxid, st.ctime)
    with pytest.raises(BadVersionError):
        zk.set(p, b"x", version=0)

    zk.create(p + "/a")
    zk.create(p + "/b")
    par = zk.exists(p)
    assert (par.cversion, par.numChildren, par.version) == (2, 2, 1)
    zk.delete(p + "/a")
    par2 = zk.exists(p)
    # Reported cversion counts deletions too; pzxid moves to the delete.
    assert (par2.cversion, par2.numChildren) == (3, 1)
    assert par2.pzxid > par.pzxid

    with pytest.raises(NotEmptyError):
        zk.delete(p)
    with pytest.raises(BadVersionError):
        zk.delete(p + "/b", version=5)
    with pytest.raises(NodeExistsError):
        zk.create(p)
    with pytest.raises(NoNodeError):
        zk.create(p + "/x/y")
    with pytest.raises(NoNodeError):
        zk.get(p + "/missing")
    assert zk.exists(p + "/missing") is None
    zk.delete(p, recursive=True)
    assert zk.exists(p) is None


def test_sequential_numbering(zk, unique):
    zk.create(unique)
    zk.create(unique + "/other")
    a = zk.create(unique + "/n-", sequence=True)
    b = zk.create(unique + "/n-", sequence=True)
    assert (a, b) == (unique + "/n-0000000001", unique + "/n-0000000002")
    zk.delete(b)
    c = zk.create(unique + "/n-", sequence=True, ephemeral=True)
    assert c == unique + "/n-0000000003"
    # A sequential name under a trailing slash.
    d = zk.create(unique + "/", sequence=True)
    assert d == unique + "/0000000004"


def test_ephemerals(server, zk, unique):
    zk.create(unique)
    other = KazooClient(hosts=server.hosts, timeout=10)
    other.start()
    try:
        other.create(unique + "/e", b"x", ephemeral=True)
        st = zk.exists(unique + "/e")
        assert st.ephemeralOwner == other.client_id[0]
        with pytest.raises(NoChildrenForEphemeralsError):
            other.create(unique + "/e/child")
        gone = threading.Event()

        def watch(event):
            if event.type == EventType.DELETED:
                gone.set()

        zk.exists(unique + "/e", watch=watch)
    finally:
        other.stop()
        other.close()
    assert gone.wait(10), "closing the session deletes its ephemerals and fires watches"
    assert zk.exists(unique + "/e") is None


def test_watches(server, zk, unique):
    other = KazooClient(hosts=server.hosts, timeout=10)
    other.start()
    events = []
    lock = threading.Lock()

    def rec(tag):
        def f(event):
            with lock:
                events.append((tag, event.type, event.path))
        return f

    try:
        p = unique
        assert zk.exists(p, watch=rec("exists")) is None
        other.create(p, b"1")
        zk.get(p, watch=rec("data"))
        zk.get_children(p, watch=rec("child"))
        other.set(p, b"2")
        other.create(p + "/c")
        zk.get(p + "/c", watch=rec("cdata"))
        zk.get_children(p + "/c", watch=rec("cchild"))
        zk.get_children(p, watch=rec("child2"))
        other.delete(p + "/c")
        # One-shot: these fire nothing.
        other.set(p, b"3")
        other.create(p + "/d")
        wait_until("6 watch events", lambda: len(events) >= 6, timeout=10)
        time.sleep(0.3)  # would-be extra events have time to (wrongly) show up
        with lock:
            got = sorted(events)
        assert got == sorted([
            ("exists", EventType.CREATED, p),
            ("data", EventType.CHANGED, p),
            ("child", EventType.CHILD, p),
            ("cdata", EventType.DELETED, p + "/c"),
            ("cchild", EventType.DELETED, p + "/c"),
            ("child2", EventType.CHILD, p),
        ])
    finally:
        other.stop()
        other.close()


def test_watch_event_seen_before_new_data(server, zk, unique):
    """A client hears about a change before it can read the changed data."""
    zk.create(unique, b"old")
    seen = []
    zk.get(unique, watch=lambda e: seen.append(e.type))
    other = KazooClient(hosts=server.hosts, timeout=10)
    other.start()
    try:
        other.set(unique, b"new")
    finally:
        other.stop()
        other.close()
    data, _ = zk.get(unique)
    assert data == b"new"
    # kazoo dispatches callbacks in order on its event thread; give it a moment.
    wait_until("the data watch", lambda: seen == [EventType.CHANGED], timeout=5)


def test_transactions(zk, unique):
    zk.create(unique, b"0")
    t = zk.transaction()
    t.check(unique, 0)
    t.create(unique + "/a", b"a")
    t.set_data(unique, b"1")
    t.create(unique + "/s-", sequence=True)
    t.delete(unique + "/a")
    res = t.commit()
    assert res[0] is True
    assert res[1] == unique + "/a"
    assert res[2].version == 1
    assert res[3] == unique + "/s-0000000001"
    assert res[4] is True
    assert zk.get_children(unique) == ["s-0000000001"]

    t = zk.transaction()
    t.create(unique + "/b")
    t.set_data(unique, b"2")
    t.check(unique, 99)
    t.delete(unique + "/s-0000000001")
    res = t.commit()
    assert [type(r) for r in res] == [RolledBackError, RolledBackError, BadVersionError,
                                      RuntimeInconsistency]
    assert zk.get(unique)[0] == b"1"
    assert zk.exists(unique + "/b") is None


def test_acls_and_digest_auth(server, zk, unique):
    zk.create(unique, b"r", acl=READ_ACL_UNSAFE)
    with pytest.raises(NoAuthError):
        zk.set(unique, b"w")
    with pytest.raises(NoAuthError):
        zk.create(unique + "/c")
    with pytest.raises(InvalidACLError):
        zk.create(unique + "-bad", acl=[ACL(Permissions.ALL, Id("world", "someone"))])

    acl = make_digest_acl("bob", "pw", all=True)
    zk.add_auth("digest", "bob:pw")
    zk.create(unique + "-bob", b"secret", acl=[acl])
    assert zk.get(unique + "-bob")[0] == b"secret"
    got, st = zk.get_acls(unique + "-bob")
    assert got == [acl]
    stranger = KazooClient(hosts=server.hosts, timeout=10)
    stranger.start()
    try:
        with pytest.raises(NoAuthError):
            stranger.get(unique + "-bob")
    finally:
        stranger.stop()
        stranger.close()
    zk.set_acls(unique + "-bob", [ACL(Permissions.ALL, Id("world", "anyone"))], version=0)
    assert zk.get_acls(unique + "-bob")[1].aversion == 1


def test_session_resume_with_id_and_password(server, zk, unique):
    from conftest import Raw, create_body
    # A raw session creates an ephemeral and its socket dies (no closeSession).
    r = Raw(server.port, timeout_ms=10000)
    assert r.call(1, 1, create_body(unique, b"", flags=1))[2] == 0
    sid, pw = r.session_id, r.password
    r.sock.close()
    # kazoo resumes that very session with id + password: the ephemeral is still its own.
    b = KazooClient(hosts=server.hosts, timeout=10, client_id=(sid, pw))
    b.start()
    assert b.client_id[0] == sid
    assert zk.exists(unique).ephemeralOwner == sid
    b.stop()  # closeSession
    b.close()
    assert zk.exists(unique) is None
    # Resuming a closed session: the server answers "expired", kazoo starts a new one.
    c = KazooClient(hosts=server.hosts, timeout=10, client_id=(sid, pw))
    c.start()
    try:
        assert c.client_id[0] != sid
    finally:
        c.stop()
        c.close()


def test_expired_session_handling(server):
    from conftest import Raw
    r = Raw(server.port, timeout_ms=4000)
    sid, pw = r.session_id, r.password
    assert r.timeout == 4000
    r.close()
    # Wrong password: timeout 0, session 0, then the server closes.
    bad = Raw(server.port, session_id=sid, password=b"\1" * 16)
    assert (bad.timeout, bad.session_id, bad.password) == (0, 0, b"\0" * 16)
    assert bad.closed()
    # Unknown session id.
    unk = Raw(server.port, session_id=0x7fff0000, password=b"\0" * 16)
    assert (unk.timeout, unk.session_id) == (0, 0)
    assert unk.closed()
    # The right password while the session lives resumes it.
    ok = Raw(server.port, session_id=sid, password=pw, timeout_ms=4000)
    assert ok.session_id == sid
    ok.close()


def test_session_expiry_deletes_ephemerals(server, zk, unique):
    from conftest import Raw, create_body
    r = Raw(server.port, timeout_ms=4000)
    xid, zxid, err, _ = r.call(1, 1, create_body(unique, b"", flags=1))
    assert err == 0
    assert zk.exists(unique).ephemeralOwner == r.session_id
    # Vanish without closeSession.
    r.sock.close()
    started = time.monotonic()
    wait_until("the session to expire", lambda: zk.exists(unique) is None, timeout=20)
    took = time.monotonic() - started
    assert 3.0 <= took <= 12.0, took


def test_four_letter_words(server, zk):
    from conftest import four_letter
    assert four_letter(server.port, "ruok") == "imok"
    srvr = four_letter(server.port, "srvr")
    for key in ["Zookeeper version: ", "Latency min/avg/max: ", "Received: ", "Sent: ",
                "Connections: ", "Outstanding: ", "Zxid: 0x", "Mode: standalone", "Node count: "]:
        assert key in srvr
    assert "Clients:" in four_letter(server.port, "stat")
    mntr = dict(line.split("\t", 1) for line in four_letter(server.port, "mntr").splitlines()
                if "\t" in line)
    assert mntr["zk_server_state"] == "standalone"
    assert int(mntr["zk_znode_count"]) >= 4
    assert four_letter(server.port, "isro") == "rw"
