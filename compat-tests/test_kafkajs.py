"""kafkajs 2.2.4 (npm, with kafkajs-snappy and kafkajs-lz4) against a one-broker gregor
cluster: admin metadata / topic / config / offsets / records flows, none, gzip, snappy and
lz4 round trips (kafkajs has no working zstd codec on Node 20: @kafkajs/zstd needs the
unmaintained native cppzst, which does not build), idempotent producer, consumption from
the beginning and from the end, 900 KB and null records.

kafkajs has no manual assignment (its consumer only runs in a consumer group), so the
driver consumes through kafkajs's own Cluster / Broker.fetch / Batch code (see
node/driver.js)."""

import json
import subprocess
import uuid

import pytest

from builds import node_driver
from checks import (
    Driver,
    Msg,
    assert_stored_codec,
    encode_msg,
    expected_offsets_by_ts,
    large_message,
    make_messages,
    parse_acks,
    stored_batches,
    verify_only_new,
    verify_roundtrip,
    wait_for,
)

KAFKAJS_CODECS = ["none", "gzip", "snappy", "lz4"]


@pytest.fixture(scope="module")
def bs(cluster):
    return cluster.bootstrap


@pytest.fixture(scope="module")
def node():
    return node_driver()


def admin(node, bs, *args, expect_error=False):
    r = subprocess.run([*node, "admin", "--brokers", bs, *map(str, args)], capture_output=True, text=True, timeout=120)
    out = json.loads(r.stdout.strip().splitlines()[-1]) if r.stdout.strip() else {}
    if expect_error:
        assert r.returncode == 2 and "error" in out, (r.returncode, out, r.stderr[-1500:])
    else:
        assert r.returncode == 0 and "error" not in out, (r.returncode, out, r.stderr[-1500:])
    return out


def new_topic(node, bs, prefix, partitions=3, *configs):
    topic = f"kjs-{prefix}-{uuid.uuid4().hex[:6]}"
    assert admin(node, bs, "create-topic", topic, partitions, *configs) == {"created": True}
    return topic


def produce(node, bs, topic, msgs, codec="none", idempotent=False):
    args = ["produce", "--brokers", bs, "--topic", topic, "--codec", codec]
    if idempotent:
        args.append("--idempotent")
    d = Driver([*node, *args], stdin_lines=[encode_msg(m) for m in msgs])
    return parse_acks(d.all_lines(timeout=120), len(msgs))


def consumer(node, bs, topic, where="beginning", count=None):
    args = ["consume", "--brokers", bs, "--topic", topic, "--from", where, "--idle-ms", 15000]
    if count is not None:
        args += ["--count", count]
    return Driver([*node, *args])


def consume(node, bs, topic, n):
    d = consumer(node, bs, topic, "beginning", n)
    try:
        d.wait_line("READY", 60)
        return d.records(n, timeout=60)
    finally:
        d.close()


def test_metadata(node, bs, cluster):
    topic = new_topic(node, bs, "md")
    cl = admin(node, bs, "describe-cluster")
    assert cl["clusterId"] and cl["controller"] == 1
    assert cl["brokers"] == [{"nodeId": 1, "host": "127.0.0.1", "port": cluster.ports[1]}]
    assert topic in admin(node, bs, "list-topics")["topics"]
    d = admin(node, bs, "describe-topic", topic)
    assert d["name"] == topic
    assert [(p["partitionId"], p["leader"], p["replicas"], p["isr"], p["partitionErrorCode"]) for p in d["partitions"]] == [
        (i, 1, [1], [1], 0) for i in range(3)
    ]


def test_topic_admin(node, bs):
    topic = new_topic(node, bs, "admin", 2, "retention.ms=86400000")
    assert admin(node, bs, "create-topic", topic, 2) == {"created": False}  # kafkajs: already exists
    res = admin(node, bs, "describe-configs", topic)["resources"][0]
    assert res["errorCode"] == 0
    entries = {e["configName"]: e for e in res["configEntries"]}
    assert entries["retention.ms"]["configValue"] == "86400000" and entries["retention.ms"]["configSource"] == 1
    assert entries["retention.ms"]["isDefault"] is False
    assert entries["cleanup.policy"]["configValue"] == "delete" and entries["cleanup.policy"]["isDefault"] is True
    assert entries["cleanup.policy"]["configSynonyms"] == [{"configName": "log.cleanup.policy", "configValue": "delete", "configSource": 5}]
    admin(node, bs, "alter-config", topic, "retention.ms=5000")

    def altered():
        res = admin(node, bs, "describe-configs", topic)["resources"][0]
        return {e["configName"]: e["configValue"] for e in res["configEntries"]}["retention.ms"] == "5000"

    wait_for(altered, 30, "altered retention.ms")
    admin(node, bs, "create-partitions", topic, 4)
    wait_for(lambda: len(admin(node, bs, "describe-topic", topic)["partitions"]) == 4, 30, "4 partitions")
    admin(node, bs, "delete-topic", topic)
    wait_for(lambda: topic not in admin(node, bs, "list-topics")["topics"], 30, "deleted topic gone")
    err = admin(node, bs, "delete-topic", topic, expect_error=True)
    # UNKNOWN_TOPIC_OR_PARTITION is retriable for kafkajs: it retries, then reports it
    assert "does not host this topic-partition" in err["error"], err


@pytest.mark.parametrize("codec", KAFKAJS_CODECS)
def test_roundtrip(node, bs, cluster, codec):
    topic = new_topic(node, bs, codec)
    msgs = make_messages(f"kjs-{codec}", n=60)
    acks = produce(node, bs, topic, msgs, codec)
    recs = consume(node, bs, topic, len(msgs))
    verify_roundtrip(msgs, recs, acks=acks)
    assert_stored_codec(cluster, topic, range(3), codec)


def test_idempotent_producer(node, bs, cluster):
    topic = new_topic(node, bs, "idem")
    msgs = make_messages("kjs-idem", n=40)
    acks = produce(node, bs, topic, msgs, "gzip", idempotent=True)
    verify_roundtrip(msgs, consume(node, bs, topic, len(msgs)), acks=acks)
    for p in range(3):
        batches = stored_batches(cluster, topic, p)
        assert all(b.producer_id >= 0 for b in batches) and (not batches or batches[0].base_sequence == 0), batches


def test_consume_from_end(node, bs):
    topic = new_topic(node, bs, "end")
    old = make_messages("kjs-old", n=30)
    produce(node, bs, topic, old)
    new = make_messages("kjs-new", n=12)
    d = consumer(node, bs, topic, "end", len(new))
    try:
        ready = d.wait_line("READY", 60)
        positions = dict(tuple(map(int, x.split(":"))) for x in ready.split("\t")[1:])
        assert sum(positions.values()) == len(old)
        produce(node, bs, topic, new)
        recs = d.records(len(new), timeout=60)
    finally:
        d.close()
    verify_only_new(old, new, recs)
    verify_roundtrip(new, recs, start_offsets=positions)


def test_list_offsets(node, bs):
    topic = new_topic(node, bs, "offsets")
    msgs = make_messages("kjs-lo", n=45)
    produce(node, bs, topic, msgs)
    by_ts = expected_offsets_by_ts(consume(node, bs, topic, len(msgs)))
    offs = admin(node, bs, "offsets", topic)["offsets"]
    assert [(o["partition"], o["low"], o["high"], o["offset"]) for o in offs] == [
        (p, "0", str(len(by_ts.get(p, []))), str(len(by_ts.get(p, [])))) for p in range(3)
    ]
    for p, entries in by_ts.items():
        ts, off = entries[len(entries) // 2]
        got = {o["partition"]: o["offset"] for o in admin(node, bs, "offsets-by-time", topic, ts)["offsets"]}
        assert got[p] == str(off), (p, ts, got)
    future = max(m.ts for m in msgs) + 10_000
    got = admin(node, bs, "offsets-by-time", topic, future)["offsets"]
    # kafkajs maps "no such record" (-1) to the partition's high watermark.
    assert {o["partition"]: o["offset"] for o in got} == {p: str(len(by_ts.get(p, []))) for p in range(3)}


def test_delete_records(node, bs):
    topic = new_topic(node, bs, "delrec", 1)
    produce(node, bs, topic, make_messages("kjs-dr", n=10))
    admin(node, bs, "delete-records", topic, 0, 8)
    assert admin(node, bs, "offsets", topic)["offsets"][0]["low"] == "8"
    assert [r.offset for r in consume(node, bs, topic, 2)] == [8, 9]


def test_large_message(node, bs, cluster):
    topic = new_topic(node, bs, "large", 1)
    sent = [large_message("kjs-none"), large_message("kjs-gzip")]
    acks = produce(node, bs, topic, sent[:1]) + produce(node, bs, topic, sent[1:], "gzip")
    assert acks == [(0, 0), (0, 1)]
    recs = consume(node, bs, topic, 2)
    assert [(r.key, r.value) for r in recs] == [(m.key, m.value) for m in sent]
    assert [b.codec for b in stored_batches(cluster, topic, 0)] == [0, 1]


def test_null_key_and_value(node, bs):
    topic = new_topic(node, bs, "nulls", 1)
    msgs = [
        Msg(key=None, value=b"kjs-no-key", headers=[("h", b"")], ts=1_700_000_000_000),
        Msg(key=b"kjs-tombstone", value=None, headers=[], ts=1_700_000_000_001),
        Msg(key=b"", value=b"", headers=[("", b"x")], ts=1_700_000_000_002),
    ]
    produce(node, bs, topic, msgs)
    recs = consume(node, bs, topic, 3)
    assert [(r.key, r.value, r.headers, r.ts) for r in recs] == [(m.key, m.value, m.headers, m.ts) for m in msgs]
