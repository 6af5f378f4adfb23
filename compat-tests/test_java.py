"""The official Java client (kafka-clients 3.9.1) against a 3-broker gregor cluster:
a kafka-console-producer equivalent on the producer's DEFAULT config (acks=all,
idempotence on), a console consumer with assign/seek, and kafka-topics / kafka-configs /
kafka-delete-records style flows through the Admin client."""

import json
import time
import uuid

import pytest

from builds import java_cmd
from checks import (
    CODECS,
    Driver,
    assert_stored_codec,
    encode_msg,
    expected_offsets_by_ts,
    large_message,
    make_messages,
    Msg,
    parse_acks,
    stored_batches,
    verify_only_new,
    verify_roundtrip,
    wait_for,
)

RF = 3


@pytest.fixture(scope="module")
def bs(cluster3):
    return cluster3.bootstrap


_ADMIN = {}


@pytest.fixture(scope="module", autouse=True)
def admin_session(bs):
    """One AdminTool JVM (one Admin client) for the module, fed commands on stdin."""
    d = Driver(java_cmd("AdminTool", bs))
    _ADMIN[bs] = d
    yield d
    d.close()
    del _ADMIN[bs]


def admin(bs, *args, expect_error=False):
    d = _ADMIN[bs]
    d.send(["\t".join(map(str, args))])
    line = d.next_line(time.time() + 120)
    assert line is not None, f"AdminTool exited; stderr:\n{d.err_tail()}"
    out = json.loads(line)
    if expect_error:
        assert "error" in out, f"AdminTool {args}: expected an error, got {out}"
    else:
        assert "error" not in out, f"AdminTool {args} failed: {out}"
    return out


def produce(bs, topic, msgs, codec=None, partition=None):
    args = ["--bootstrap-server", bs, "--topic", topic]
    if codec and codec != "none":
        args += ["--compression-codec", codec]
    d = Driver(java_cmd("ConsoleProducer", *args), stdin_lines=[encode_msg(m, partition) for m in msgs])
    lines = d.all_lines(timeout=120)
    config = next(l for l in lines if l.startswith("CONFIG"))
    return parse_acks(lines, len(msgs)), config


def consumer(bs, topic, offset="earliest", max_messages=None, timeout_ms=15000):
    args = ["--bootstrap-server", bs, "--topic", topic, "--offset", offset, "--timeout-ms", timeout_ms]
    if max_messages is not None:
        args += ["--max-messages", max_messages]
    return Driver(java_cmd("ConsoleConsumer", *args))


def consume_all(bs, topic, n):
    d = consumer(bs, topic, "earliest", n)
    try:
        d.wait_line("READY", 60)
        return d.records(n, timeout=60)
    finally:
        d.close()


def create_topic(bs, topic, partitions=3, *configs):
    out = admin(bs, "create-topic", topic, partitions, RF, *configs)
    assert out["partitions"] == partitions and out["replicationFactor"] == RF
    wait_isr(bs, topic, partitions)
    return out


def wait_isr(bs, topic, partitions):
    def full():
        # The broker the Admin client asks may learn of a new topic a moment after the
        # one that created it (UNKNOWN_TOPIC_OR_PARTITION, retriable, as with Kafka).
        d = _ADMIN[bs]
        d.send(["\t".join(["describe-topic", topic])])
        line = d.next_line(time.time() + 120)
        assert line is not None, f"AdminTool exited; stderr:\n{d.err_tail()}"
        d = json.loads(line)
        if d.get("error", "").startswith("UnknownTopicOrPartitionException"):
            return False
        assert "error" not in d, f"describe-topic {topic} failed: {d}"
        ps = d["partitions"]
        return len(ps) == partitions and all(p["leader"] in p["replicas"] and sorted(p["isr"]) == sorted(p["replicas"]) for p in ps) and d

    return wait_for(full, 60, f"{topic}: every partition led with a full ISR", interval=0.3)


def test_describe_cluster(bs, cluster3):
    out = admin(bs, "describe-cluster")
    assert out["clusterId"]
    assert sorted(n["id"] for n in out["nodes"]) == [1, 2, 3]
    for n in out["nodes"]:
        assert (n["host"], n["port"]) == ("127.0.0.1", cluster3.ports[n["id"]])
    assert out["controller"] in (1, 2, 3)


def test_topic_lifecycle(bs):
    topic = "java-admin-" + uuid.uuid4().hex[:6]
    created = create_topic(bs, topic, 4, "retention.ms=123456")
    # Java prints Uuid as URL-safe base64; the zero Uuid is AAAAAAAAAAAAAAAAAAAAAA.
    assert len(created["topicId"]) == 22 and created["topicId"] != "A" * 22, created
    assert topic in admin(bs, "list-topics")["topics"]
    d = wait_isr(bs, topic, 4)
    assert d["name"] == topic and d["internal"] is False and d["topicId"] == created["topicId"]
    assert [p["partition"] for p in d["partitions"]] == [0, 1, 2, 3]
    for p in d["partitions"]:
        assert sorted(p["replicas"]) == [1, 2, 3]
    by_id = admin(bs, "describe-topic-id", created["topicId"])
    assert by_id == {"name": topic, "topicId": created["topicId"], "partitions": 4}
    err = admin(bs, "create-topic", topic, 4, RF, expect_error=True)
    assert err["error"].startswith("TopicExistsException"), err
    admin(bs, "delete-topic", topic)
    wait_for(lambda: topic not in admin(bs, "list-topics")["topics"], 30, "deleted topic to leave the listing", interval=0.3)
    err = admin(bs, "describe-topic", topic, expect_error=True)
    assert err["error"].startswith("UnknownTopicOrPartitionException"), err
    err = admin(bs, "delete-topic", topic, expect_error=True)
    assert err["error"].startswith("UnknownTopicOrPartitionException"), err
    err = admin(bs, "create-topic", "java-bad-rf-" + uuid.uuid4().hex[:6], 1, 4, expect_error=True)
    assert err["error"].startswith("InvalidReplicationFactorException"), err


def test_describe_configs_defaults_and_sources(bs):
    topic = "java-configs-" + uuid.uuid4().hex[:6]
    create_topic(bs, topic, 1, "retention.ms=123456", "cleanup.policy=compact")
    cfg = {c["name"]: c for c in admin(bs, "describe-configs", "topic", topic)["configs"]}
    r = cfg["retention.ms"]
    assert (r["value"], r["source"], r["isDefault"], r["readOnly"], r["type"]) == ("123456", "DYNAMIC_TOPIC_CONFIG", False, False, "LONG")
    assert r["synonyms"][0] == {"name": "retention.ms", "value": "123456", "source": "DYNAMIC_TOPIC_CONFIG"}
    # Kafka lists a topic key's broker synonyms from its first broker key on: nothing sets
    # log.retention.ms here (log.retention.hours is only a default), so nothing follows.
    assert r["synonyms"][1:] == [], r["synonyms"]
    assert r["documentation"], "includeDocumentation asked for documentation"
    assert cfg["cleanup.policy"]["value"] == "compact" and cfg["cleanup.policy"]["type"] == "LIST"
    seg = cfg["segment.bytes"]
    assert seg["source"] == "DEFAULT_CONFIG" and seg["isDefault"] is True and seg["value"] == "1073741824"
    assert seg["synonyms"] and seg["synonyms"][-1]["source"] == "DEFAULT_CONFIG" and seg["synonyms"][-1]["name"] == "log.segment.bytes"
    for name in ("min.insync.replicas", "max.message.bytes", "message.timestamp.type", "compression.type"):
        assert name in cfg, f"{name} missing from topic configs"
    assert cfg["compression.type"]["value"] == "producer"
    assert cfg["message.timestamp.type"]["value"] == "CreateTime"
    broker = {c["name"]: c for c in admin(bs, "describe-configs", "broker", "1")["configs"]}
    assert broker["broker.id"]["value"] == "1" and broker["broker.id"]["readOnly"] is True
    assert broker["num.partitions"]["value"] == "1"
    assert broker["default.replication.factor"]["source"] == "STATIC_BROKER_CONFIG"
    # Synonyms level by level (Kafka's DynamicBrokerReconfigurationTest checks the same).
    assert [s["source"] for s in broker["default.replication.factor"]["synonyms"]] == [
        "STATIC_BROKER_CONFIG", "DEFAULT_CONFIG"]
    assert [(s["name"], s["source"], s["value"]) for s in broker["log.retention.hours"]["synonyms"]] == [
        ("log.retention.hours", "DEFAULT_CONFIG", "168")]


def test_incremental_alter_configs(bs):
    topic = "java-alter-" + uuid.uuid4().hex[:6]
    create_topic(bs, topic, 1)
    admin(bs, "alter-config", topic, "retention.ms=7777", "max.message.bytes=2000000")

    def altered():
        cfg = {c["name"]: c for c in admin(bs, "describe-configs", "topic", topic)["configs"]}
        return cfg if cfg["retention.ms"]["value"] == "7777" else None

    cfg = wait_for(altered, 30, "altered config to show", interval=0.3)
    assert cfg["retention.ms"]["source"] == "DYNAMIC_TOPIC_CONFIG"
    assert cfg["max.message.bytes"]["value"] == "2000000"
    admin(bs, "alter-config", topic, "retention.ms")  # DELETE → back to the default

    def reverted():
        cfg = {c["name"]: c for c in admin(bs, "describe-configs", "topic", topic)["configs"]}
        return cfg if cfg["retention.ms"]["source"] != "DYNAMIC_TOPIC_CONFIG" else None

    cfg = wait_for(reverted, 30, "deleted override to revert", interval=0.3)
    assert cfg["retention.ms"]["value"] == "604800000" and cfg["retention.ms"]["isDefault"] is True
    assert cfg["max.message.bytes"]["value"] == "2000000"


def test_create_partitions(bs):
    topic = "java-grow-" + uuid.uuid4().hex[:6]
    create_topic(bs, topic, 3)
    admin(bs, "create-partitions", topic, 5)
    wait_isr(bs, topic, 5)
    err = admin(bs, "create-partitions", topic, 2, expect_error=True)
    assert err["error"].startswith("InvalidPartitionsException"), err
    msgs = make_messages("grow", n=5)
    acks, _ = produce(bs, topic, msgs, partition=4)
    assert acks == [(4, i) for i in range(5)]
    recs = consume_all(bs, topic, 5)
    verify_roundtrip(msgs, recs, acks=acks, min_partitions=1)


@pytest.mark.parametrize("codec", CODECS)
def test_console_producer_defaults_roundtrip(bs, cluster3, codec):
    topic = f"java-{codec}-" + uuid.uuid4().hex[:6]
    create_topic(bs, topic, 3)
    msgs = make_messages(f"java-{codec}", n=60)
    acks, config = produce(bs, topic, msgs, codec=codec)
    assert "acks=-1" in config and "enable.idempotence=true" in config, config
    recs = consume_all(bs, topic, len(msgs))
    verify_roundtrip(msgs, recs, acks=acks)
    assert_stored_codec(cluster3, topic, range(3), codec)
    # Idempotence really in effect: every stored batch carries the producer id the broker
    # handed out and per-partition sequences starting at 0.
    for p in range(3):
        batches = stored_batches(cluster3, topic, p)
        if not batches:
            continue
        assert all(b.producer_id >= 0 and b.producer_epoch >= 0 for b in batches), batches
        assert batches[0].base_sequence == 0, batches[0]
        seq = 0
        for b in batches:
            assert b.base_sequence == seq, f"partition {p}: sequence gap at {b}"
            seq += b.record_count


def test_consume_from_end_sees_only_new(bs):
    topic = "java-end-" + uuid.uuid4().hex[:6]
    create_topic(bs, topic, 3)
    old = make_messages("java-old", n=30)
    produce(bs, topic, old)
    new = make_messages("java-new", n=12)
    d = consumer(bs, topic, "latest", len(new))
    try:
        ready = d.wait_line("READY", 60)
        positions = dict(tuple(map(int, x.split(":"))) for x in ready.split("\t")[1:])
        assert sum(positions.values()) == len(old), f"end positions {positions} should cover the {len(old)} old messages"
        produce(bs, topic, new)
        recs = d.records(len(new), timeout=60)
    finally:
        d.close()
    verify_only_new(old, new, recs)
    verify_roundtrip(new, recs, start_offsets=positions)


def test_list_offsets(bs):
    topic = "java-offsets-" + uuid.uuid4().hex[:6]
    create_topic(bs, topic, 3)
    msgs = make_messages("java-lo", n=45)
    acks, _ = produce(bs, topic, msgs)
    recs = consume_all(bs, topic, len(msgs))
    by_ts = expected_offsets_by_ts(recs)
    counts = {p: len(v) for p, v in by_ts.items()}

    def offsets(spec):
        return {o["partition"]: o for o in admin(bs, "list-offsets", topic, spec)["offsets"]}

    assert {p: o["offset"] for p, o in offsets("earliest").items()} == {0: 0, 1: 0, 2: 0}
    assert {p: o["offset"] for p, o in offsets("earliest-local").items()} == {0: 0, 1: 0, 2: 0}
    assert {p: o["offset"] for p, o in offsets("latest").items()} == {p: counts.get(p, 0) for p in range(3)}
    mx = offsets("max-timestamp")
    for p, entries in by_ts.items():
        ts, off = max(entries)
        assert (mx[p]["offset"], mx[p]["timestamp"]) == (off, ts), f"partition {p}: max-timestamp {mx[p]}"
    # By timestamp: the first offset whose timestamp is >= the asked one.
    for p, entries in by_ts.items():
        ts, off = entries[len(entries) // 2]
        got = offsets(f"ts:{ts}")[p]
        assert (got["offset"], got["timestamp"]) == (off, ts), f"partition {p} ts {ts}: {got}"
        got = offsets(f"ts:{ts - 1}")[p]
        assert got["offset"] == off, f"partition {p} ts {ts - 1}: {got}"
    future = max(m.ts for m in msgs) + 10_000
    assert all(o["offset"] == -1 for o in offsets(f"ts:{future}").values())
    assert all(o["leaderEpoch"] >= 0 for o in offsets("latest").values())


def test_delete_records(bs):
    topic = "java-delrec-" + uuid.uuid4().hex[:6]
    create_topic(bs, topic, 1)
    msgs = make_messages("java-dr", n=10)
    produce(bs, topic, msgs)
    assert admin(bs, "delete-records", topic, 0, 4)["lowWatermark"] == 4
    assert admin(bs, "list-offsets", topic, "earliest")["offsets"][0]["offset"] == 4
    assert admin(bs, "list-offsets", topic, "latest")["offsets"][0]["offset"] == 10
    recs = consume_all(bs, topic, 6)
    assert [r.offset for r in recs] == list(range(4, 10))
    assert [r.value for r in recs] == [m.value for m in msgs[4:]]
    # A consumer positioned below the log start gets OFFSET_OUT_OF_RANGE and, with
    # auto.offset.reset=earliest, resets to the new log start.
    args = ["--bootstrap-server", bs, "--topic", topic, "--offset", "1", "--max-messages", 6,
            "--consumer-property", "auto.offset.reset=earliest"]
    d = Driver(java_cmd("ConsoleConsumer", *args))
    try:
        d.wait_line("READY", 60)
        assert [r.offset for r in d.records(6, timeout=60)] == list(range(4, 10))
    finally:
        d.close()
    err = admin(bs, "delete-records", topic, 0, 11, expect_error=True)
    assert err["error"].startswith("OffsetOutOfRangeException"), err


def test_large_message(bs, cluster3):
    topic = "java-large-" + uuid.uuid4().hex[:6]
    create_topic(bs, topic, 1)
    for codec in ("none", "zstd"):
        big = large_message(f"java-{codec}")
        acks, _ = produce(bs, topic, [big], codec=codec)
        recs = consume_all(bs, topic, acks[0][1] + 1)
        assert len(recs[-1].value) == 900 * 1024 and recs[-1].value == big.value and recs[-1].key == big.key
    assert any(b.size > 900 * 1024 for b in stored_batches(cluster3, topic, 0))


def test_null_key_and_null_value(bs):
    topic = "java-nulls-" + uuid.uuid4().hex[:6]
    create_topic(bs, topic, 1)
    msgs = [
        Msg(key=None, value=b"java-no-key", headers=[("h", None)], ts=1_700_000_000_000),
        Msg(key=b"java-tombstone", value=None, headers=[], ts=1_700_000_000_001),
        Msg(key=b"", value=b"", headers=[("", b"")], ts=1_700_000_000_002),
    ]
    acks, _ = produce(bs, topic, msgs)
    recs = consume_all(bs, topic, 3)
    assert [(r.key, r.value, r.headers, r.ts) for r in recs] == [(m.key, m.value, m.headers, m.ts) for m in msgs]
    assert [(r.partition, r.offset) for r in recs] == acks


def test_log_append_time(bs):
    topic = "java-lat-" + uuid.uuid4().hex[:6]
    create_topic(bs, topic, 1, "message.timestamp.type=LogAppendTime")
    msgs = make_messages("java-lat", n=10)
    t0 = int(time.time() * 1000)
    acks, _ = produce(bs, topic, msgs, codec="lz4")
    t1 = int(time.time() * 1000)
    recs = consume_all(bs, topic, 10)
    assert all(r.ts_type == 1 and t0 - 50 <= r.ts <= t1 + 50 for r in recs), [(r.ts_type, r.ts) for r in recs]


def test_record_too_large_for_topic(bs):
    topic = "java-toolarge-" + uuid.uuid4().hex[:6]
    create_topic(bs, topic, 1, "max.message.bytes=100000")
    big = Msg(key=b"k", value=b"x" * 200_000, headers=[], ts=None)
    args = ["--bootstrap-server", bs, "--topic", topic, "--producer-property", "max.request.size=1000000"]
    d = Driver(java_cmd("ConsoleProducer", *args), stdin_lines=[encode_msg(big)])
    lines = []
    while True:
        line = d.next_line(time.time() + 120)
        if line is None:
            break
        lines.append(line)
    assert d.proc.wait(30) == 1
    errs = [l for l in lines if l.startswith("ERR")]
    assert len(errs) == 1 and "RecordTooLargeException" in errs[0], lines
    assert admin(bs, "list-offsets", topic, "latest")["offsets"][0]["offset"] == 0
