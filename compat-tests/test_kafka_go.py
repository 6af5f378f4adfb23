"""kafka-go 0.2.1 (Debian bookworm's golang-github-segmentio-kafka-go-dev) against a
one-broker gregor cluster.

This kafka-go predates message format v2: it creates topics with CreateTopics v0,
produces message format v1 with Produce v2 (one compressed wrapper per request with
gzip/snappy/lz4), fetches with Fetch v2 (gregor down-converts its v2 batches) and runs
consumer groups with JoinGroup v1 / SyncGroup v0 / Heartbeat v0 / OffsetCommit v2 /
OffsetFetch v1. Kafka 3.9 serves all of these, and so does gregor: every message once,
in order, at contiguous offsets, committed offsets surviving a restart, a rebalance
splitting the partitions. Newer kafka-go releases are not packaged in Debian."""

import json
import queue
import subprocess
import time
import uuid

import pytest

from builds import go_binary
from checks import Driver, ck_produce, create_topic, make_messages, stored_batches, wait_for
import legacy
from legacy import logged_cluster

CODECS = ["none", "gzip", "snappy", "lz4"]


@pytest.fixture(scope="module")
def cluster():
    """One broker logging the API version of every request."""
    with logged_cluster() as c:
        yield c


@pytest.fixture(scope="module")
def bs(cluster):
    return cluster.bootstrap


@pytest.fixture(scope="module")
def kgo():
    return go_binary("kafkago")


def run(kgo, cmd, bs, *args, input=None, expect_error=False):
    r = subprocess.run([kgo, cmd, "-brokers", bs, *map(str, args)], input=input, capture_output=True, text=True, timeout=90)
    lines = [json.loads(l) for l in r.stdout.strip().splitlines() if l.startswith("{")]
    out = lines[-1] if lines else {}
    if expect_error:
        assert r.returncode == 2 and "error" in out, (r.returncode, out, r.stderr[-1000:])
    else:
        assert r.returncode == 0 and "error" not in out, (r.returncode, out, r.stderr[-1000:])
    return out if cmd not in ("read", "group") else lines


def versions_used(cluster):
    return legacy.versions_used(cluster, "segmentio/kafka-go")


def lines_of(msgs):
    return "".join(f"{k}\t{v}\n" for k, v in msgs)


@pytest.fixture(scope="module")
def topic(bs):
    """A 3-partition topic holding 45 records written by confluent-kafka."""
    t = f"kgo-{uuid.uuid4().hex[:6]}"
    create_topic(bs, t, 3)
    msgs = make_messages("kgo", n=45)
    acks = ck_produce(bs, t, msgs)
    return t, msgs, acks


def test_metadata(kgo, bs, cluster, topic):
    t, _, _ = topic
    md = run(kgo, "metadata", bs, "-topic", t)
    assert md["partitions"] == [{"partition": i, "leader": 1, "replicas": [1], "isr": [1]} for i in range(3)]
    assert md["leaders"] == [{"id": 1, "host": "127.0.0.1", "port": cluster.ports[1]}]


def test_list_offsets(kgo, bs, topic):
    t, msgs, acks = topic
    by_p = {p: sorted((o, m.ts) for m, (q, o) in zip(msgs, acks) if q == p) for p in range(3)}
    for p in range(3):
        entries = [(ts, o) for o, ts in by_p[p]]
        assert run(kgo, "offsets", bs, "-topic", t, "-partition", p, "-time", "first") == {"offset": 0}
        assert run(kgo, "offsets", bs, "-topic", t, "-partition", p, "-time", "last") == {"offset": len(entries)}
        if entries:
            ts, off = entries[len(entries) // 2]
            assert run(kgo, "offsets", bs, "-topic", t, "-partition", p, "-time", ts) == {"offset": off}


def test_delete_topic(kgo, bs):
    t = f"kgo-del-{uuid.uuid4().hex[:6]}"
    create_topic(bs, t, 1)
    run(kgo, "delete-topic", bs, "-topic", t)
    from confluent_kafka.admin import AdminClient

    a = AdminClient({"bootstrap.servers": bs})
    wait_for(lambda: t not in a.list_topics(timeout=10).topics, 30, "deleted topic gone")


def test_create_produce_and_consume_with_every_codec(kgo, bs, cluster):
    """CreateTopics v0, then per codec one Produce v2 request of keyed message-format-v1
    messages into each partition; Fetch v2 reads every message back once, in order, at
    contiguous offsets; the broker stored v2 batches with the producer's codec."""
    t = f"kgo-codecs-{uuid.uuid4().hex[:6]}"
    assert run(kgo, "create-topic", bs, "-topic", t, "-partitions", 3) == {"created": t}
    wait_for(lambda: len(run(kgo, "metadata", bs, "-topic", t)["partitions"] or []) == 3, 30, "partitions")
    sent = {p: [] for p in range(3)}
    for i, codec in enumerate(CODECS):
        for p in range(3):
            msgs = [(f"key-{j % 4}", f"{codec}-p{p}-{j}-" + "kafka-go " * 20) for j in range(12)]
            run(kgo, "produce", bs, "-topic", t, "-partition", p, "-codec", codec, input=lines_of(msgs))
            sent[p] += msgs
    for p in range(3):
        recs = run(kgo, "read", bs, "-topic", t, "-partition", p, "-from", "first", "-count", len(sent[p]), "-idle-ms", 5000)
        recs = [r for r in recs if "offset" in r]
        assert [r["offset"] for r in recs] == list(range(len(sent[p])))
        assert [(r["key"], r["value"]) for r in recs] == sent[p]
    used = versions_used(cluster)
    assert {("CreateTopics", 0), ("Produce", 2), ("Fetch", 2)} <= used, used
    # Four produce requests per partition, one per codec, each stored as one v2 batch.
    for p in range(3):
        assert [b.codec for b in stored_batches(cluster, t, p)] == [0, 1, 2, 3]
        assert all(b.magic == 2 and b.record_count == 12 for b in stored_batches(cluster, t, p))


def test_consume_from_the_end(kgo, bs, topic):
    t, _, acks = topic
    end = sum(1 for p, _ in acks if p == 1)
    d = Driver([kgo, "read", "-brokers", bs, "-topic", t, "-partition", 1, "-from", "last", "-count", 5, "-idle-ms", 20000])
    try:
        d.wait_line('{"ready"', 30)
        new = [(f"new-{j}", f"after-the-end-{j}") for j in range(5)]
        run(kgo, "produce", bs, "-topic", t, "-partition", 1, "-codec", "gzip", input=lines_of(new))
        recs = [json.loads(l) for l in d.all_lines(60) if '"offset"' in l]
    finally:
        d.close()
    assert [(r["offset"], r["key"], r["value"]) for r in recs] == [(end + j, k, v) for j, (k, v) in enumerate(new)]


def group(kgo, bs, t, g, count=-1, idle_ms=8000):
    return Driver([kgo, "group", "-brokers", bs, "-topic", t, "-group", g, "-count", count, "-idle-ms", idle_ms])


def group_recs(lines):
    return [json.loads(l) for l in lines if '"offset"' in l]


def read_until(members, total, timeout=120):
    """Records printed by several running members until `total` arrived in all."""
    deadline = time.time() + timeout
    got = [[] for _ in members]
    while sum(map(len, got)) < total:
        assert time.time() < deadline, f"only {sum(map(len, got))}/{total} records: {[len(g) for g in got]}"
        for i, d in enumerate(members):
            try:
                line = d.lines.get(timeout=0.05)
            except queue.Empty:
                continue
            assert line is not None, f"member {i} exited early: {d.err_tail()}"
            if '"offset"' in line:
                got[i].append(json.loads(line))
    return got


def test_consumer_group_resume_and_rebalance(kgo, bs, cluster):
    """A kafka-go group member commits what it read; a restarted member resumes after it
    (nothing redelivered); two members split the partitions between them and together
    read every new message exactly once."""
    t = f"kgo-group-{uuid.uuid4().hex[:6]}"
    create_topic(bs, t, 3)
    first = {p: [(f"k{p}", f"first-p{p}-{j}") for j in range(10)] for p in range(3)}
    for p, msgs in first.items():
        run(kgo, "produce", bs, "-topic", t, "-partition", p, "-codec", "snappy", input=lines_of(msgs))
    g = f"kgo-g-{uuid.uuid4().hex[:6]}"
    d = group(kgo, bs, t, g, count=12)
    part1 = group_recs(d.all_lines(90))
    assert len(part1) == 12
    d = group(kgo, bs, t, g, count=18)
    part2 = group_recs(d.all_lines(90))
    seen = [(r["partition"], r["offset"]) for r in part1 + part2]
    assert len(seen) == len(set(seen)) == 30, f"resume redelivered or lost: {sorted(seen)}"
    for p in range(3):
        mine = sorted((r["offset"], r["value"]) for r in part1 + part2 if r["partition"] == p)
        assert mine == [(j, v) for j, (_, v) in enumerate(first[p])]
    # Two members: the partitions are split, each new message is read once.
    a, b = group(kgo, bs, t, g), group(kgo, bs, t, g)
    try:
        second = {p: [(f"k{p}", f"second-p{p}-{j}") for j in range(10)] for p in range(3)}
        for p, msgs in second.items():
            run(kgo, "produce", bs, "-topic", t, "-partition", p, input=lines_of(msgs))
        ra, rb = read_until([a, b], 30)
    finally:
        a.close()
        b.close()
    got = sorted((r["partition"], r["offset"], r["value"]) for r in ra + rb)
    assert got == sorted((p, 10 + j, v) for p, msgs in second.items() for j, (_, v) in enumerate(msgs))
    assert ra and rb, f"one member read everything: {len(ra)} / {len(rb)}"
    assert not {r["partition"] for r in ra} & {r["partition"] for r in rb}, "a partition read by both"
    used = versions_used(cluster)
    assert {("JoinGroup", 1), ("SyncGroup", 0), ("OffsetCommit", 2), ("OffsetFetch", 1)} <= used, used
