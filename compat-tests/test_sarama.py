"""sarama 1.22.1 (Debian) with config.Version = 2.1.0 against a one-broker gregor cluster:
metadata, ClusterAdmin topic flows, none/gzip/snappy/lz4 round trips (sarama's FNV-1a
hash partitioner), idempotent producer, consumers from oldest and newest, ListOffsets v1,
900 KB and null records.

sarama 1.22 sends Produce v3, Fetch v4, Metadata v5, ListOffsets v1, CreateTopics v2,
DeleteTopics v1, CreatePartitions v0, DeleteRecords v0, AlterConfigs v0 and describes
configs with DescribeConfigs v0 (removed by Kafka 4, served by Kafka 3.9 and gregor).
Older config.Version settings are covered by test_legacy_clients.py."""

import json
import subprocess
import uuid

import pytest

from builds import go_binary
from checks import (
    CODECS,
    Driver,
    Msg,
    assert_stored_codec,
    ck_produce,
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


@pytest.fixture(scope="module")
def bs(cluster):
    return cluster.bootstrap


@pytest.fixture(scope="module")
def sarama():
    return go_binary("sarama")


def run(sarama, *args, input=None, ok=True):
    r = subprocess.run([sarama, *map(str, args)], input=input, capture_output=True, text=True, timeout=120)
    if ok:
        assert r.returncode == 0, f"sarama {args[:3]} exited {r.returncode}: {r.stdout[-1000:]} {r.stderr[-2000:]}"
    return r


def admin(sarama, bs, *args, expect_error=False):
    r = run(sarama, "admin", "-brokers", bs, *args, ok=False)
    out = json.loads(r.stdout.strip().splitlines()[-1]) if r.stdout.strip() else {}
    if expect_error:
        assert r.returncode == 2 and "error" in out, (r.returncode, out, r.stderr[-1000:])
    else:
        assert r.returncode == 0 and "error" not in out, (r.returncode, out, r.stderr[-1000:])
    return out


def new_topic(sarama, bs, prefix, partitions=3, *configs):
    topic = f"sarama-{prefix}-{uuid.uuid4().hex[:6]}"
    admin(sarama, bs, "create-topic", topic, partitions, 1, *configs)
    wait_for(
        lambda: len([p for p in admin(sarama, bs, "describe-topic", topic)["partitions"] or [] if p["leader"] == 1]) == partitions,
        30,
        f"{topic} leaders",
        interval=0.1,
    )
    return topic


def produce(sarama, bs, topic, msgs, codec="none", partition=None, idempotent=False):
    args = ["produce", "-brokers", bs, "-topic", topic, "-codec", codec]
    if partition is not None:
        args += ["-partition", partition]
    if idempotent:
        args += ["-idempotent"]
    r = run(sarama, *args, input="".join(encode_msg(m) + "\n" for m in msgs), ok=False)
    return r, r.stdout.splitlines()


def produce_ok(sarama, bs, topic, msgs, **kw):
    r, lines = produce(sarama, bs, topic, msgs, **kw)
    assert r.returncode == 0, f"sarama produce failed: {lines[-5:]} {r.stderr[-2000:]}"
    return parse_acks(lines, len(msgs))


def consumer(sarama, bs, topic, offset="oldest", count=None, idle_ms=15000):
    args = ["consume", "-brokers", bs, "-topic", topic, "-offset", offset, "-idle-ms", idle_ms]
    if count is not None:
        args += ["-count", count]
    return Driver([sarama, *args])


def consume(sarama, bs, topic, n):
    d = consumer(sarama, bs, topic, "oldest", n)
    try:
        d.wait_line("READY", 60)
        return d.records(n, timeout=60)
    finally:
        d.close()


def test_metadata(sarama, bs, cluster):
    topic = new_topic(sarama, bs, "md")
    md = json.loads(run(sarama, "metadata", "-brokers", bs, "-topic", topic).stdout)
    assert md["brokers"] == [{"id": 1, "addr": f"127.0.0.1:{cluster.ports[1]}"}]
    assert md["controller"] == 1 and topic in md["topics"]
    assert md["partitions"] == [{"partition": i, "leader": 1, "replicas": [1], "isr": [1]} for i in range(3)]


def test_topic_admin(sarama, bs):
    topic = new_topic(sarama, bs, "admin", 2, "retention.ms=86400000")
    err = admin(sarama, bs, "create-topic", topic, 2, 1, expect_error=True)
    assert "already exists" in err["error"], err
    admin(sarama, bs, "alter-config", topic, "retention.ms=5000")
    admin(sarama, bs, "create-partitions", topic, 4)
    wait_for(lambda: len(admin(sarama, bs, "describe-topic", topic)["partitions"] or []) == 4, 30, "4 partitions")
    admin(sarama, bs, "delete-topic", topic)
    wait_for(lambda: topic not in json.loads(run(sarama, "metadata", "-brokers", bs).stdout)["topics"], 30, "deleted topic gone")
    err = admin(sarama, bs, "delete-topic", topic, expect_error=True)
    assert "does not exist" in err["error"] or "Unknown topic" in err["error"] or "unknown topic" in err["error"].lower(), err


def test_describe_config_v0_and_list_topics(sarama, bs):
    """ClusterAdmin.DescribeConfig and ListTopics send DescribeConfigs v0 (Kafka 3.9's
    floor): the overrides come back, and sarama reads `is_default` to leave the
    defaults out of ListTopics' ConfigEntries."""
    topic = new_topic(sarama, bs, "dcv0", 1, "retention.ms=3600000", "cleanup.policy=compact")
    described = admin(sarama, bs, "describe-config", topic)
    assert described["retention.ms"] == "3600000" and described["cleanup.policy"] == "compact"
    assert described["segment.bytes"] == "1073741824", "defaults are described too"
    listed = admin(sarama, bs, "list-topics")
    assert topic in listed["topics"] and listed["retention.ms"][topic] == "3600000"


@pytest.mark.parametrize("codec", [c for c in CODECS if c != "zstd"])
def test_roundtrip(sarama, bs, cluster, codec):
    topic = new_topic(sarama, bs, codec)
    msgs = make_messages(f"sarama-{codec}", n=60)
    acks = produce_ok(sarama, bs, topic, msgs, codec=codec)
    recs = consume(sarama, bs, topic, len(msgs))
    verify_roundtrip(msgs, recs, acks=acks)
    assert_stored_codec(cluster, topic, range(3), codec)


def test_zstd_roundtrip_reading_with_fetch_v4(sarama, bs, cluster):
    """zstd batches written by a Produce v7+ client (confluent-kafka) read back through
    sarama's Fetch v4: Kafka serves them too (it refuses only on topics whose
    compression.type is zstd), and sarama decompresses them."""
    topic = new_topic(sarama, bs, "zstd-read")
    msgs = make_messages("sarama-zstd-read", n=30)
    acks = ck_produce(bs, topic, msgs, **{"compression.type": "zstd"})
    recs = consume(sarama, bs, topic, len(msgs))
    verify_roundtrip(msgs, recs, acks=acks, min_partitions=0)
    assert_stored_codec(cluster, topic, range(3), "zstd")


def test_zstd_on_produce_v3_is_refused(sarama, bs):
    """Kafka only accepts zstd batches from Produce v7 on (KIP-110): ProduceRequest
    validation answers UNSUPPORTED_COMPRESSION_TYPE (76) for older versions. sarama 1.22
    sends zstd in Produce v3."""
    topic = new_topic(sarama, bs, "zstd-v3", 1)
    r, lines = produce(sarama, bs, topic, make_messages("sarama-zstd", n=3), codec="zstd")
    assert r.returncode == 1 and any(l.startswith("ERR") for l in lines), lines
    assert "compression" in "\n".join(lines).lower(), lines


def test_idempotent_producer(sarama, bs, cluster):
    topic = new_topic(sarama, bs, "idem")
    msgs = make_messages("sarama-idem", n=40)
    acks = produce_ok(sarama, bs, topic, msgs, codec="snappy", idempotent=True)
    verify_roundtrip(msgs, consume(sarama, bs, topic, len(msgs)), acks=acks)
    for p in range(3):
        batches = stored_batches(cluster, topic, p)
        assert all(b.producer_id >= 0 for b in batches) and (not batches or batches[0].base_sequence == 0), batches


def test_consume_from_newest(sarama, bs):
    topic = new_topic(sarama, bs, "end")
    old = make_messages("sarama-old", n=30)
    produce_ok(sarama, bs, topic, old)
    new = make_messages("sarama-new", n=12)
    d = consumer(sarama, bs, topic, "newest", len(new))
    try:
        ready = d.wait_line("READY", 60)
        positions = dict(tuple(map(int, x.split(":"))) for x in ready.split("\t")[1:])
        assert sum(positions.values()) == len(old)
        produce_ok(sarama, bs, topic, new)
        recs = d.records(len(new), timeout=60)
    finally:
        d.close()
    verify_only_new(old, new, recs)
    verify_roundtrip(new, recs, start_offsets=positions)


def offsets(sarama, bs, topic, when):
    out = json.loads(run(sarama, "offsets", "-brokers", bs, "-topic", topic, "-time", when).stdout)
    return {int(p): o for p, o in out.items()}


def test_list_offsets(sarama, bs):
    """ListOffsets v1: earliest, latest, and by timestamp (over batches written by
    confluent-kafka, whose headers carry their max timestamp; see the next test)."""
    topic = new_topic(sarama, bs, "offsets")
    msgs = make_messages("sarama-lo", n=45)
    ck_produce(bs, topic, msgs)
    by_ts = expected_offsets_by_ts(consume(sarama, bs, topic, len(msgs)))
    assert offsets(sarama, bs, topic, -2) == {0: 0, 1: 0, 2: 0}
    assert offsets(sarama, bs, topic, -1) == {p: len(by_ts.get(p, [])) for p in range(3)}
    for p, entries in by_ts.items():
        ts, off = entries[len(entries) // 2]
        assert offsets(sarama, bs, topic, ts)[p] == off
        assert offsets(sarama, bs, topic, ts - 1)[p] == off
    assert offsets(sarama, bs, topic, max(m.ts for m in msgs) + 10_000) == {0: -1, 1: -1, 2: -1}


def test_offsets_for_times_on_sarama_batches(sarama, bs, cluster):
    topic = new_topic(sarama, bs, "ts-index", 1)
    msgs = make_messages("sarama-ts", n=10)
    produce_ok(sarama, bs, topic, msgs, partition=0)
    assert offsets(sarama, bs, topic, msgs[4].ts) == {0: 4}
    assert [b.max_timestamp for b in stored_batches(cluster, topic, 0)][-1] == msgs[-1].ts


def test_delete_records(sarama, bs):
    topic = new_topic(sarama, bs, "delrec", 1)
    produce_ok(sarama, bs, topic, make_messages("sarama-dr", n=10))
    admin(sarama, bs, "delete-records", topic, 0, 3)
    assert json.loads(run(sarama, "offsets", "-brokers", bs, "-topic", topic, "-time", -2).stdout) == {"0": 3}
    assert [r.offset for r in consume(sarama, bs, topic, 7)] == list(range(3, 10))


def test_large_message(sarama, bs, cluster):
    topic = new_topic(sarama, bs, "large", 1)
    sent = [large_message("sarama-none"), large_message("sarama-gzip")]
    acks = produce_ok(sarama, bs, topic, sent[:1]) + produce_ok(sarama, bs, topic, sent[1:], codec="gzip")
    assert acks == [(0, 0), (0, 1)]
    recs = consume(sarama, bs, topic, 2)
    assert [(r.key, r.value) for r in recs] == [(m.key, m.value) for m in sent]
    assert [b.codec for b in stored_batches(cluster, topic, 0)] == [0, 1]


def test_null_key_and_value(sarama, bs):
    topic = new_topic(sarama, bs, "nulls", 1)
    msgs = [
        Msg(key=None, value=b"sarama-no-key", headers=[("h", None)], ts=1_700_000_000_000),
        Msg(key=b"sarama-tombstone", value=None, headers=[], ts=1_700_000_000_001),
        Msg(key=b"", value=b"", headers=[("", b"")], ts=1_700_000_000_002),
    ]
    produce_ok(sarama, bs, topic, msgs, partition=0)
    recs = consume(sarama, bs, topic, 3)
    assert [(r.key, r.value, r.headers, r.ts) for r in recs] == [(m.key, m.value, m.headers, m.ts) for m in msgs]
