"""The wire protocol byte for byte, against gregor zookeeper and a real ZooKeeper 3.8:
reply headers, zxids of failed writes, multi result layout, bad input."""

import struct

import pytest

from conftest import OPEN_ACL, Raw, create_body, jbuf, jstr

CREATE, DELETE, EXISTS, GET_DATA, SET_DATA, GET_CHILDREN, SYNC, PING = 1, 2, 3, 4, 5, 8, 9, 11
CHECK, MULTI, CREATE2, CHECK_WATCHES, REMOVE_WATCHES, CREATE_TTL = 13, 14, 15, 17, 18, 21
SET_WATCHES, GET_EPHEMERALS, GET_ALL_CHILDREN_NUMBER, ADD_WATCH = 101, 103, 104, 106


def path_watch(path, watch=False):
    return jstr(path) + (b"\1" if watch else b"\0")


def multi(*ops):
    body = b""
    for ty, rec in ops:
        body += struct.pack(">i?i", ty, False, -1) + rec
    return body + struct.pack(">i?i", -1, True, -1)


@pytest.fixture
def raw(server):
    r = Raw(server.port)
    yield r
    r.close()


def test_failed_writes_take_a_zxid(raw, unique):
    _, z1, err, _ = raw.call(1, CREATE, create_body(unique))
    assert err == 0
    _, z2, err, body = raw.call(2, CREATE, create_body(unique))
    assert (err, z2, body) == (-110, z1 + 1, b"")
    _, z3, err, _ = raw.call(3, SET_DATA, jstr(unique + "/no") + jbuf(b"") + struct.pack(">i", -1))
    assert (err, z3) == (-101, z2 + 1)
    # Reads report the last zxid and do not take one.
    _, z4, err, _ = raw.call(4, EXISTS, path_watch(unique))
    assert (err, z4) == (0, z3)
    xid, z5, err, _ = raw.call(-2, PING)
    assert (xid, z5, err) == (-2, z3, 0)


def test_create_validation_codes(raw, unique):
    raw.call(1, CREATE, create_body(unique))
    assert raw.call(2, CREATE, create_body("noslash"))[2] == -8
    assert raw.call(3, CREATE, create_body("a/b"))[2] == -101
    assert raw.call(4, CREATE, create_body(unique + "/"))[2] == -8
    assert raw.call(5, CREATE, create_body(unique + "/x/"))[2] == -101
    assert raw.call(6, CREATE, create_body(unique + "/x", flags=42))[2] == -8
    assert raw.call(7, CREATE, create_body(unique + "/x", acl=struct.pack(">i", 0)))[2] == -114
    assert raw.call(8, CREATE, create_body(unique + "/x/../y"))[2] == -101
    assert raw.call(9, CREATE, create_body(unique + "/.."))[2] == -8
    assert raw.call(10, CREATE, create_body("/"))[2] == -110
    assert raw.call(11, DELETE, jstr("/") + struct.pack(">i", -1))[2] == -8
    assert raw.call(12, DELETE, jstr("/zookeeper/quota") + struct.pack(">i", -1))[2] == -8
    # TTL nodes are off by default in ZooKeeper: UNIMPLEMENTED; a ttl on a plain mode: bad args.
    assert raw.call(13, CREATE_TTL, create_body(unique + "/t", flags=5) + struct.pack(">q", 1000))[2] == -6
    assert raw.call(14, CREATE, create_body(unique + "/t", flags=5))[2] == -6
    assert raw.call(15, CREATE_TTL, create_body(unique + "/t", flags=0) + struct.pack(">q", 1000))[2] == -8
    # create2 returns the path and a stat.
    _, zxid, err, body = raw.call(16, CREATE2, create_body(unique + "/c2", b"abc"))
    assert err == 0
    (n,) = struct.unpack(">i", body[:4])
    assert body[4:4 + n] == (unique + "/c2").encode()
    czxid, mzxid = struct.unpack(">qq", body[4 + n:4 + n + 16])
    assert czxid == mzxid == zxid
    assert len(body) == 4 + n + 68


def test_null_data_and_sync(raw, unique):
    assert raw.call(1, CREATE, jstr(unique) + jbuf(None) + OPEN_ACL + struct.pack(">i", 0))[2] == 0
    _, _, err, body = raw.call(2, GET_DATA, path_watch(unique))
    assert err == 0 and body[:4] == struct.pack(">i", -1)
    _, _, err, body = raw.call(3, SYNC, jstr(unique))
    assert (err, body) == (0, jstr(unique))


def test_multi_layouts(raw, unique):
    raw.call(1, CREATE, create_body(unique, b"0"))
    ok = multi((CREATE, create_body(unique + "/a")),
               (CREATE2, create_body(unique + "/b")),
               (SET_DATA, jstr(unique) + jbuf(b"1") + struct.pack(">i", 0)),
               (CHECK, jstr(unique) + struct.pack(">i", 1)),
               (DELETE, jstr(unique + "/a") + struct.pack(">i", -1)))
    _, zxid, err, body = raw.call(2, MULTI, ok)
    assert err == 0
    types = []
    pos = 0
    while True:
        ty, done, e = struct.unpack(">i?i", body[pos:pos + 9])
        pos += 9
        if done:
            break
        types.append((ty, e))
        if ty in (CREATE, CREATE2):
            (n,) = struct.unpack(">i", body[pos:pos + 4])
            pos += 4 + n + (68 if ty == CREATE2 else 0)
        elif ty == SET_DATA:
            pos += 68
    # ZooKeeper 3.8 reports a create2 inside a multi as a plain create (ZOOKEEPER-4026).
    assert types == [(CREATE, 0), (CREATE, 0), (SET_DATA, 0), (CHECK, 0), (DELETE, 0)]
    assert pos == len(body)

    bad = multi((CREATE, create_body(unique + "/c")),
                (SET_DATA, jstr(unique) + jbuf(b"2") + struct.pack(">i", 7)),
                (DELETE, jstr(unique + "/b") + struct.pack(">i", -1)))
    _, zxid2, err, body = raw.call(3, MULTI, bad)
    assert (err, zxid2) == (0, zxid + 1)
    results = [struct.unpack(">i?ii", body[i * 13:(i + 1) * 13]) for i in range(3)]
    assert results == [(-1, False, 0, 0), (-1, False, -103, -103), (-1, False, -2, -2)]
    assert raw.call(4, EXISTS, path_watch(unique + "/c"))[2] == -101
    # A read op inside a write multi: the whole multi is a marshalling error.
    assert raw.call(5, MULTI, multi((GET_DATA, path_watch(unique))))[2] == -5
    # An unknown create flag fails that op (BADARGUMENTS) like any other check.
    _, _, err, body = raw.call(6, MULTI, multi((CREATE, create_body(unique + "/d", flags=99))))
    assert (err, struct.unpack(">i?ii", body[:13])) == (0, (-1, False, -8, -8))
    # An empty multi succeeds (and is a txn).
    _, z, err, body = raw.call(7, MULTI, multi())
    assert (err, body) == (0, struct.pack(">i?i", -1, True, -1))
    assert z == zxid2 + 3, "the malformed multi, the failed one and the empty one each took a zxid"


def test_watch_requests(raw, server, unique):
    raw.call(1, CREATE, create_body(unique))
    # addWatch answers with an int 0 body; the path need not exist.
    assert raw.call(2, ADD_WATCH, jstr(unique + "/later") + struct.pack(">i", 0))[2:] == (0, struct.pack(">i", 0))
    assert raw.call(3, CHECK_WATCHES, jstr(unique) + struct.pack(">i", 3))[2] == -121
    raw.call(4, GET_DATA, path_watch(unique, True))
    assert raw.call(5, CHECK_WATCHES, jstr(unique) + struct.pack(">i", 2))[2] == 0
    assert raw.call(6, REMOVE_WATCHES, jstr(unique) + struct.pack(">i", 1))[2] == -121
    assert raw.call(7, REMOVE_WATCHES, jstr(unique) + struct.pack(">i", 2))[2] == 0
    assert raw.call(8, REMOVE_WATCHES, jstr(unique) + struct.pack(">i", 2))[2] == -121
    # setWatches with an old relativeZxid fires at once for what changed since.
    _, zxid, _, _ = raw.call(9, SET_DATA, jstr(unique) + jbuf(b"x") + struct.pack(">i", -1))
    sw = struct.pack(">q", zxid - 1)
    sw += struct.pack(">i", 2) + jstr(unique) + jstr(unique + "/gone")     # data
    sw += struct.pack(">i", 1) + jstr(unique)                              # exist
    sw += struct.pack(">i", 0)                                             # child
    raw.send(-8, SET_WATCHES, sw)
    frames = [raw.recv() for _ in range(4)]
    events = sorted(struct.unpack(">ii", f[3][:8])[0] for f in frames if f[0] == -1)
    assert events == [1, 2, 3]  # created (exists), deleted (/gone), data changed
    reply = [f for f in frames if f[0] != -1]
    assert [(f[0], f[2]) for f in reply] == [(-8, 0)]
    assert [f[1] for f in frames if f[0] == -1] == [-1, -1, -1]


def test_ephemerals_and_counts(raw, unique):
    raw.call(1, CREATE, create_body(unique))
    raw.call(2, CREATE, create_body(unique + "/e1", flags=1))
    raw.call(3, CREATE, create_body(unique + "/p"))
    raw.call(4, CREATE, create_body(unique + "/p/e2", flags=1))
    _, _, err, body = raw.call(5, GET_EPHEMERALS, jstr(unique + "/p"))
    assert (err, body) == (0, struct.pack(">i", 1) + jstr(unique + "/p/e2"))
    _, _, err, body = raw.call(6, GET_ALL_CHILDREN_NUMBER, jstr(unique))
    assert (err, body) == (0, struct.pack(">i", 3))
    assert raw.call(7, GET_ALL_CHILDREN_NUMBER, jstr(unique + "/nope"))[2] == -101


def test_bad_input_closes_only_that_connection(server, raw, unique):
    # Unknown op code: UNIMPLEMENTED with zxid -1, then close.
    r = Raw(server.port)
    assert r.call(7, 999) [:3] == (7, -1, -6)
    assert r.closed()
    # A truncated create body: MARSHALLINGERROR, the connection stays.
    r = Raw(server.port)
    assert r.call(9, CREATE, struct.pack(">i", 100))[2] == -5
    assert r.call(10, EXISTS, path_watch("/"))[2] == 0
    r.close()
    # Frames beyond jute.maxbuffer, or negative: closed.
    for n in (0x100000, -5):
        r = Raw(server.port)
        r.sock.sendall(struct.pack(">i", n))
        assert r.closed()
    # The first connection never noticed.
    assert raw.call(1, CREATE, create_body(unique))[2] == 0


def test_client_ahead_of_server_is_refused(server):
    with pytest.raises((EOFError, ConnectionResetError)):
        Raw(server.port, last_zxid=1 << 40)
