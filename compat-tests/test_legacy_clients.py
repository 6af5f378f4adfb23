"""Clients written for Kafka 0.9-2.1, speaking their own protocol versions, against one
gregor broker (the ranges Kafka 3.9 serves: Produce v0-v2 with message formats v0/v1
up-converted on append, Fetch v0-v3 down-converted, OffsetCommit v1 timestamps...):

- sarama 1.22 with config.Version 0.10.2 / 0.11.0 / 1.0.0 / 2.1.0 (it does not negotiate:
  each is a different protocol set): admin, produce, consume, a consumer group that
  commits and resumes, ClusterAdmin.ListTopics / DescribeConfig (DescribeConfigs v0);
- kafka-python with api_version=(0, 10, 1) (message format v1) and (0, 9) (format v0,
  no timestamps): produce every codec, a group that commits and resumes;
- librdkafka (confluent-kafka) with api.version.request=false and
  broker.version.fallback=0.9.0 (a modern client speaking Kafka 0.9's protocol) and 0.10.0
  (which librdkafka 2.x takes as "negotiate");
- mixed generations on one topic: a magic-1 producer and a v2 producer, a magic-0
  consumer and a v2 consumer, byte-exact keys and values.

Each: every message exactly once, per-partition order, contiguous offsets, committed
offsets surviving a consumer restart; the broker's request log proves the versions."""

import json
import subprocess
import time
import uuid
import warnings

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka import KafkaConsumer, KafkaProducer

from builds import go_binary
from checks import Driver, Msg, Rec, ck_produce, create_topic, decode_rec, encode_msg, make_messages, parse_acks, stored_batches, verify_roundtrip
from legacy import logged_cluster, max_version, versions_used

@pytest.fixture(scope="module")
def cluster():
    with logged_cluster() as c:
        yield c


@pytest.fixture(scope="module")
def bs(cluster):
    return cluster.bootstrap


def uniq(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def no_headers(msgs):
    return [Msg(m.key, m.value, [], m.ts) for m in msgs]


def exactly_once(sent, recs, acks=None, check_ts=True):
    """verify_roundtrip plus: what each (partition, offset) holds agrees with the acks."""
    verify_roundtrip(sent, recs, acks=acks, check_ts=check_ts)


# --------------------------------------------------------------------------- sarama

SARAMA_VERSIONS = ["0.10.2.0", "0.11.0.0", "1.0.0", "2.1.0"]


def sarama(*args, input=None):
    r = subprocess.run([go_binary("sarama"), *map(str, args)], input=input, capture_output=True, text=True, timeout=120)
    return r


def sarama_admin(bs, version, *args):
    r = sarama("admin", "-brokers", bs, "-version", version, *args)
    out = json.loads(r.stdout.strip().splitlines()[-1]) if r.stdout.strip() else {}
    assert r.returncode == 0 and "error" not in out, (args, r.returncode, out, r.stderr[-1500:])
    return out


def sarama_group(bs, version, group, topic, count=None, idle_ms=8000):
    args = ["-brokers", bs, "-group", group, "-topic", topic, "-version", version, "-idle-ms", idle_ms,
            "-client-id", f"sarama-group-{version}", "-session-ms", 6000, "-heartbeat-ms", 1000]
    if count is not None:
        args += ["-count", count]
    return Driver([go_binary("saramagroup"), *map(str, args)])


@pytest.mark.parametrize("version", SARAMA_VERSIONS)
def test_sarama_versions(bs, cluster, version):
    topic = uniq(f"sarama-{version}")
    sarama_admin(bs, version, "create-topic", topic, 3, 1, "retention.ms=86400000")
    # Message format v1 (sarama < 0.11) has no headers: they are not sent at all.
    msgs = make_messages(f"sarama-{version}", n=40, headers=version >= "0.11")
    r = sarama("produce", "-brokers", bs, "-topic", topic, "-codec", "gzip", "-version", version,
               input="".join(encode_msg(m) + "\n" for m in msgs))
    assert r.returncode == 0, r.stderr[-2000:]
    acks = parse_acks(r.stdout.splitlines(), len(msgs))
    d = Driver([go_binary("sarama"), "consume", "-brokers", bs, "-topic", topic, "-offset", "oldest",
                "-count", len(msgs), "-version", version])
    try:
        d.wait_line("READY", 60)
        recs = d.records(len(msgs), timeout=60)
    finally:
        d.close()
    exactly_once(msgs, recs, acks=acks)
    for p in range(3):
        batches = stored_batches(cluster, topic, p)
        assert batches and all(b.magic == 2 and b.codec == 1 for b in batches), batches

    # A group member commits 15 records and leaves; the next one resumes after them.
    group = uniq("g-sarama")
    first = sarama_group(bs, version, group, topic, count=15)
    part1 = [decode_rec(l) for l in first.all_lines(90) if l.startswith("REC\t")]
    second = sarama_group(bs, version, group, topic, count=len(msgs) - 15)
    part2 = [decode_rec(l) for l in second.all_lines(90) if l.startswith("REC\t")]
    assert len(part1) == 15 and len(part2) == len(msgs) - 15
    exactly_once(msgs, part1 + part2, acks=acks)

    if version >= "0.11":
        # ListTopics reads every topic's overrides with DescribeConfigs v0 (sarama itself
        # refuses DescribeConfigs below config.Version 0.11, as Kafka 0.10 had none).
        listed = sarama_admin(bs, version, "list-topics")
        assert topic in listed["topics"] and listed["retention.ms"][topic] == "86400000"
        assert sarama_admin(bs, version, "describe-config", topic)["retention.ms"] == "86400000"

    used = versions_used(cluster, f"-{version}")
    if version == "0.10.2.0":
        assert {("Produce", 2), ("Fetch", 3), ("CreateTopics", 0), ("OffsetCommit", 1)} <= used, used
    else:
        assert max_version(used, "Produce") >= 3 and max_version(used, "Fetch") >= 4, used
        assert ("OffsetCommit", 1) in used and ("DescribeConfigs", 0) in used, used


# --------------------------------------------------------------------- kafka-python


def kp_consume(bs, topic, group, api_version, n, timeout_ms=8000):
    client_id = "kp-" + ".".join(map(str, api_version)) + "-consumer"
    c = KafkaConsumer(bootstrap_servers=bs, api_version=api_version, group_id=group, client_id=client_id,
                      auto_offset_reset="earliest", enable_auto_commit=False, consumer_timeout_ms=timeout_ms)
    c.subscribe([topic])
    recs = []
    for m in c:
        recs.append(Rec(m.partition, m.offset, m.key, m.value, [], m.timestamp if m.timestamp is not None else -1))
        if len(recs) == n:
            break
    c.commit()
    c.close()
    return recs


@pytest.mark.parametrize("api_version", [(0, 10, 1), (0, 9)], ids=["0.10.1", "0.9"])
def test_kafka_python_old_api_versions(bs, cluster, api_version):
    topic = uniq("kp-old")
    create_topic(bs, topic, 3)
    tag = "kp-" + ".".join(map(str, api_version))
    sent, acks = [], []
    for codec in [None, "gzip", "snappy", "lz4"]:
        msgs = no_headers(make_messages(f"{tag}-{codec}", n=15))
        p = KafkaProducer(bootstrap_servers=bs, api_version=api_version, compression_type=codec, client_id=f"{tag}-producer")
        futures = [p.send(topic, key=m.key, value=m.value, timestamp_ms=m.ts) for m in msgs]
        p.flush()
        acks += [(f.get(10).partition, f.get(10).offset) for f in futures]
        p.close()
        sent += msgs
    group = uniq("g-kp")
    part1 = kp_consume(bs, topic, group, api_version, 25)
    part2 = kp_consume(bs, topic, group, api_version, len(sent) - 25)
    # Magic 0 has no timestamps: (0, 9) reads none.
    exactly_once(sent, part1 + part2, acks=acks, check_ts=api_version >= (0, 10))
    if api_version < (0, 10):
        assert all(r.ts == -1 for r in part1 + part2)
    used = versions_used(cluster, tag)
    want_produce, want_fetch = (1, 1) if api_version < (0, 10) else (2, 3)
    assert max_version(used, "Produce") == want_produce and max_version(used, "Fetch") == want_fetch, used


# ------------------------------------------------------------- librdkafka, old protocol


@pytest.mark.parametrize("fallback", ["0.9.0", "0.10.0"])
def test_librdkafka_with_api_version_request_off(bs, cluster, fallback):
    """api.version.request=false: librdkafka assumes the fallback broker version. With
    0.9.0 it never asks for ApiVersions and speaks Kafka 0.9's protocol (Produce v1 with
    message format v0, Fetch v1, ListOffsets v0, Metadata v0, JoinGroup v0); librdkafka
    2.x treats 0.10.0 and later as "ask the broker" and negotiates as usual."""
    from confluent_kafka import Consumer

    conf = {"api.version.request": False, "broker.version.fallback": fallback, "log_level": 0}
    client = f"rdk-{fallback}"
    topic = uniq("rdk-old")
    create_topic(bs, topic, 3)
    sent, acks = [], []
    for codec in ["none", "gzip", "snappy", "lz4"]:
        msgs = no_headers(make_messages(f"{client}-{codec}", n=15))
        acks += ck_produce(bs, topic, msgs, **conf, **{"compression.type": codec, "client.id": client})
        sent += msgs
    group = uniq("g-rdk")

    def consume(n):
        c = Consumer({"bootstrap.servers": bs, "group.id": group, "client.id": client,
                      "auto.offset.reset": "earliest", "enable.auto.commit": False, **conf})
        c.subscribe([topic])
        recs, deadline = [], time.time() + 60
        while len(recs) < n and time.time() < deadline:
            m = c.poll(0.5)
            if m is None or m.error():
                continue
            ts_type, ts = m.timestamp()
            recs.append(Rec(m.partition(), m.offset(), m.key(), m.value(), [], ts, ts_type))
            c.commit(message=m, asynchronous=False)
        c.close()
        return recs

    part1 = consume(30)
    part2 = consume(len(sent) - 30)
    old = fallback == "0.9.0"
    exactly_once(sent, part1 + part2, acks=acks, check_ts=not old)
    if old:
        used = versions_used(cluster, client)
        assert not any(api == "ApiVersions" for api, _ in used), used
        assert {("Produce", 1), ("Fetch", 1), ("ListOffsets", 0), ("Metadata", 0), ("JoinGroup", 0)} <= used, used
        # TIMESTAMP_NOT_AVAILABLE: message format v0 has no timestamps.
        assert all(r.ts_type == 0 for r in part1 + part2)


# -------------------------------------------------------------------- mixed generations


def test_mixed_generations_share_a_topic(bs, cluster):
    """A magic-1 producer (sarama 0.10.2) and a v2 producer (confluent-kafka, headers)
    write one topic; a magic-0 consumer (kafka-python 0.9) and a v2 consumer both read
    every record, keys and values byte-exact, each at its own offset."""
    from confluent_kafka import Consumer

    topic = uniq("mixed")
    create_topic(bs, topic, 2)
    # Keys of their own per producer: sarama's partitioner (FNV-1a) is not librdkafka's.
    old = [Msg(b"sarama-" + m.key, m.value, [], m.ts) for m in make_messages("mixed-old", n=30)]
    r = sarama("produce", "-brokers", bs, "-topic", topic, "-codec", "snappy", "-version", "0.10.2.0",
               input="".join(encode_msg(m) + "\n" for m in old))
    assert r.returncode == 0, r.stderr[-1000:]
    old_acks = parse_acks(r.stdout.splitlines(), len(old))
    new = make_messages("mixed-new", n=30)
    new_acks = ck_produce(bs, topic, new, **{"compression.type": "lz4"})
    more_old = [Msg(b"sarama-" + m.key, m.value, [], m.ts) for m in make_messages("mixed-old2", n=10)]
    r = sarama("produce", "-brokers", bs, "-topic", topic, "-version", "0.10.2.0",
               input="".join(encode_msg(m) + "\n" for m in more_old))
    old_acks += parse_acks(r.stdout.splitlines(), len(more_old))
    everything = old + new + more_old
    acks = old_acks[:30] + new_acks + old_acks[30:]

    magic0 = kp_consume(bs, topic, uniq("g-mixed-v0"), (0, 9), len(everything))
    verify_roundtrip(no_headers(everything), magic0, acks=acks, check_ts=False)

    c = Consumer({"bootstrap.servers": bs, "group.id": uniq("g-mixed-v2"), "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    modern, deadline = [], time.time() + 60
    while len(modern) < len(everything) and time.time() < deadline:
        m = c.poll(0.5)
        if m is None or m.error():
            continue
        modern.append(Rec(m.partition(), m.offset(), m.key(), m.value(),
                          [(k, v) for k, v in (m.headers() or [])], m.timestamp()[1]))
    c.close()
    verify_roundtrip(everything, modern, acks=acks)
