"""kcat 1.7.1 (Debian, librdkafka 2.0.2) against a one-broker gregor cluster: -L metadata,
produce keyed messages with headers in every codec, consume them back (-C -J), from the
end, by timestamp (-o s@ts), offset queries (-Q), a 900 KB message, null key / value.

kcat has no topic admin: topics are created with confluent-kafka's AdminClient."""

import json
import subprocess
import time
import uuid

import pytest

from checks import (
    CODECS,
    Driver,
    Msg,
    Rec,
    assert_stored_codec,
    create_topic,
    from_end_with_markers,
    large_message,
    make_messages,
    now_ms,
    stored_batches,
    verify_roundtrip,
)


@pytest.fixture(scope="module")
def bs(cluster):
    return cluster.bootstrap


def kcat(bs, *args, input=None, timeout=60):
    r = subprocess.run(["kcat", "-b", bs, *map(str, args)], input=input, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"kcat {args} exited {r.returncode}: {r.stderr[-2000:]}"
    return r


def new_topic(bs, prefix, partitions=3):
    topic = f"kcat-{prefix}-{uuid.uuid4().hex[:6]}"
    create_topic(bs, topic, partitions)
    return topic


HEADERS = [("src", b"kcat"), ("nul", None)]


def produce(bs, topic, msgs, codec="none", partition=None):
    """One kcat -P run: key<TAB>value lines, -Z (empty key/value → NULL), constant -H headers."""
    args = ["-P", "-t", topic, "-K", "\t", "-Z", "-H", "src=kcat", "-H", "nul"]
    if codec != "none":
        args += ["-z", codec]
    if partition is not None:
        args += ["-p", partition]
    lines = "".join(f"{(m.key or b'').decode()}\t{(m.value or b'').decode()}\n" for m in msgs)
    kcat(bs, *args, input=lines)


def to_rec(j):
    hs = j.get("headers") or []
    headers = [(hs[i], None if hs[i + 1] is None else hs[i + 1].encode()) for i in range(0, len(hs), 2)]
    enc = lambda s: None if s is None else s.encode()
    return Rec(j["partition"], j["offset"], enc(j["key"]), enc(j["payload"]), headers, j["ts"], 0 if j["tstype"] == "create" else 1)


def consume(bs, topic, *extra):
    """kcat -C -J -e from the beginning (or `extra` offset options) until every partition's end."""
    out = kcat(bs, "-C", "-J", "-e", "-t", topic, *(extra or ("-o", "beginning")), timeout=120).stdout
    return [to_rec(json.loads(l)) for l in out.splitlines() if l.strip()]


def kcat_msgs(tag, n=60):
    return [Msg(m.key, m.value, HEADERS, None) for m in make_messages(tag, n=n)]


def test_metadata(bs, cluster):
    topic = new_topic(bs, "md")
    md = json.loads(kcat(bs, "-L", "-J").stdout)
    assert md["brokers"] == [{"id": 1, "name": f"127.0.0.1:{cluster.ports[1]}"}]
    assert md["controllerid"] == 1
    t = next(t for t in md["topics"] if t["topic"] == topic)
    assert [p["partition"] for p in t["partitions"]] == [0, 1, 2]
    for p in t["partitions"]:
        assert p["leader"] == 1 and p["replicas"] == [{"id": 1}] and p["isrs"] == [{"id": 1}]
    one = json.loads(kcat(bs, "-L", "-J", "-t", topic).stdout)
    assert [t["topic"] for t in one["topics"]] == [topic]
    text = kcat(bs, "-L", "-t", topic).stdout
    assert f'topic "{topic}" with 3 partitions:' in text and "partition 0, leader 1, replicas: 1, isrs: 1" in text


@pytest.mark.parametrize("codec", CODECS)
def test_roundtrip(bs, cluster, codec):
    topic = new_topic(bs, codec)
    msgs = kcat_msgs(f"kcat-{codec}")
    t0 = now_ms()
    produce(bs, topic, msgs[:30], codec)
    produce(bs, topic, msgs[30:], codec)
    t1 = now_ms()
    recs = consume(bs, topic)
    verify_roundtrip(msgs, recs)
    assert all(t0 - 1000 <= r.ts <= t1 + 1000 and r.ts_type == 0 for r in recs), "CreateTime stamped by kcat"
    # librdkafka < 2.8 (Debian's 2.0.2) enables gzip/snappy/lz4 only if the broker
    # advertises Produce v0 (librdkafka issue #4956), which Kafka 3.9 and gregor do.
    assert_stored_codec(cluster, topic, range(3), codec)


def test_consume_from_end(bs):
    topic = new_topic(bs, "end")
    old = kcat_msgs("kcat-old", n=30)
    produce(bs, topic, old)
    d = Driver(["kcat", "-b", bs, "-C", "-J", "-u", "-o", "end", "-t", topic])

    def poll():
        recs = []
        while not d.lines.empty():
            line = d.lines.get()
            assert line is not None, f"kcat consumer exited: {d.err_tail()}"
            recs.append(to_rec(json.loads(line)))
        if not recs:
            time.sleep(0.2)
        return recs

    try:
        from_end_with_markers(lambda msgs, p: produce(bs, topic, msgs, partition=p), poll, range(3), old, kcat_msgs("kcat-new", 12), "kcat")
    finally:
        d.close()


def test_offsets_query_and_timestamp_start(bs):
    topic = new_topic(bs, "offsets")
    first = kcat_msgs("kcat-a", n=20)
    produce(bs, topic, first)
    recs = consume(bs, topic)
    counts = {p: sum(1 for r in recs if r.partition == p) for p in range(3)}
    split = max(r.ts for r in recs) + 1
    while now_ms() <= split:  # the second batch must be stamped strictly later
        pass
    second = kcat_msgs("kcat-b", n=20)
    produce(bs, topic, second)
    recs2 = consume(bs, topic)
    by_p = {p: sorted((r for r in recs2 if r.partition == p), key=lambda r: r.offset) for p in range(3)}

    def query(ts):
        out = kcat(bs, "-Q", *sum((["-t", f"{topic}:{p}:{ts}"] for p in range(3)), [])).stdout
        got = {}
        for line in out.splitlines():  # "<topic> [<p>] offset <n>"
            parts = line.split()
            got[int(parts[1].strip("[]"))] = int(parts[3])
        return got

    assert query(-2) == {0: 0, 1: 0, 2: 0}  # earliest
    assert query(-1) == {p: len(by_p[p]) for p in range(3)}  # latest
    assert query(split) == {p: counts[p] if counts[p] < len(by_p[p]) else -1 for p in range(3)}
    assert query(now_ms() + 60_000) == {0: -1, 1: -1, 2: -1}
    later = consume(bs, topic, "-o", f"s@{split}")
    assert sorted(r.value for r in later) == sorted(m.value for m in second)


def test_large_message(bs, cluster):
    topic = new_topic(bs, "large", partitions=1)
    big = large_message("kcat")
    produce(bs, topic, [big])
    produce(bs, topic, [big], codec="zstd")
    recs = consume(bs, topic, "-X", "fetch.message.max.bytes=2000000")
    assert [(r.offset, r.key, r.value) for r in recs] == [(0, big.key, big.value), (1, big.key, big.value)]
    assert [b.codec for b in stored_batches(cluster, topic, 0)] == [0, 4]


def test_null_key_and_value(bs):
    topic = new_topic(bs, "nulls", partitions=1)
    msgs = [Msg(None, b"kcat-no-key", HEADERS), Msg(b"kcat-tombstone", None, HEADERS), Msg(None, None, HEADERS)]
    produce(bs, topic, msgs)
    recs = consume(bs, topic)
    assert [(r.offset, r.key, r.value, r.headers) for r in recs] == [(i, m.key, m.value, HEADERS) for i, m in enumerate(msgs)]
