"""kafka-go 0.2.1 (Debian bookworm's golang-github-segmentio-kafka-go-dev) against a
one-broker gregor cluster.

This kafka-go predates record format v2: it produces with Produce v2 and fetches with
Fetch v2 (message format v1), and creates topics with CreateTopics v0. Kafka 4 removed
those versions (KIP-896) and gregor, whose floor is Kafka 4's, refuses them the same way:
the connection is closed and the client reports an error, while the broker keeps serving.
What this kafka-go can do against a Kafka 4 broker works: metadata (Metadata v1), offset
lookups earliest / latest / by timestamp (ListOffsets v1), topic deletion (DeleteTopics v1).
Newer kafka-go releases are not packaged in Debian and the Go module proxy is out of reach."""

import json
import subprocess
import uuid

import pytest

from builds import go_binary
from checks import ck_produce, create_topic, make_messages, wait_for


@pytest.fixture(scope="module")
def bs(cluster):
    return cluster.bootstrap


@pytest.fixture(scope="module")
def kgo():
    return go_binary("kafkago")


def run(kgo, cmd, bs, *args, input=None, expect_error=False):
    r = subprocess.run([kgo, cmd, "-brokers", bs, *map(str, args)], input=input, capture_output=True, text=True, timeout=60)
    out = json.loads(r.stdout.strip().splitlines()[-1]) if r.stdout.strip() else {}
    if expect_error:
        assert r.returncode == 2 and "error" in out, (r.returncode, out, r.stderr[-1000:])
    else:
        assert r.returncode == 0 and "error" not in out, (r.returncode, out, r.stderr[-1000:])
    return out


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


@pytest.mark.parametrize(
    "cmd,args",
    [
        ("produce", ["-partition", 0]),  # Produce v2, message format v1
        ("consume", ["-partition", 0]),  # Fetch v2
        ("create-topic", ["-partitions", 1]),  # CreateTopics v0
    ],
)
def test_pre_kafka4_versions_refused_like_kafka4(kgo, bs, cluster, topic, cmd, args):
    t = topic[0] if cmd != "create-topic" else f"kgo-new-{uuid.uuid4().hex[:6]}"
    err = run(kgo, cmd, bs, "-topic", t, *args, input="k\tv\n", expect_error=True)
    assert "EOF" in err["error"] or "reset" in err["error"] or "closed" in err["error"], err
    log = (cluster.dir / "broker-1.log").read_text()
    key = {"produce": "Produce", "consume": "Fetch", "create-topic": "CreateTopics"}[cmd]
    assert f"of {key}" in log and "unsupported version" in log
    # The broker is unharmed: a modern client still works, and nothing was written.
    assert run(kgo, "offsets", bs, "-topic", topic[0], "-partition", 0, "-time", "last")["offset"] == sum(
        1 for p, _ in topic[2] if p == 0
    )
