"""Incremental fetch sessions (KIP-227) with the official Java consumer (kafka-clients
3.9.1, which uses them by default) on 3 brokers at RF 3: the consumer reads every record
once while records keep arriving over many fetch rounds, and each broker creates about
one session for it (plus one per follower) instead of one per round, as its
FetchSessionCache metrics show."""

import time
import uuid

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from builds import java_cmd
from checks import Driver
from gregor_cluster import GregorCluster, wait_until
from test_ops_metrics import scrape, value

PARTITIONS = 12
ROUNDS = 15
PER_ROUND = 40


@pytest.fixture(scope="module")
def cluster():
    with GregorCluster(brokers=3, metrics=True) as c:
        yield c


def metric_sum(c, name):
    return sum(value(scrape(c.metrics_url(b)), name) or 0 for b in c.ports)


def test_java_consumer_reads_everything_through_incremental_sessions(cluster):
    topic = "sessions-" + uuid.uuid4().hex[:6]
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=3)])[topic].result(30)
    producer = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all", "linger.ms": 0})
    # Followers create their sessions with the first fetches of the new topic's leaders.
    wait_until(lambda: metric_sum(cluster, "kafka_server_fetchsessioncache_numincrementalfetchsessions") >= 6,
               30, "follower sessions on every broker")
    created_before = metric_sum(cluster, "gregor_fetch_session_creations_total")

    total = ROUNDS * PER_ROUND
    consumer = Driver(java_cmd("ConsoleConsumer", "--bootstrap-server", cluster.bootstrap, "--topic", topic,
                               "--from-beginning", "--max-messages", total, "--timeout-ms", 30000))
    try:
        consumer.wait_line("READY", 60)
        seen = []
        for r in range(ROUNDS):
            for i in range(PER_ROUND):
                n = r * PER_ROUND + i
                producer.produce(topic, key=str(n).encode(), value=f"v{n}".encode())
            assert producer.flush(30) == 0
            # Each round is read before the next is written: many fetch rounds per broker.
            seen += consumer.records(PER_ROUND, timeout=60)
        assert consumer.wait_line("DONE", 30)
    finally:
        consumer.close()

    # Every record once, in order per partition.
    assert sorted(r.value for r in seen) == sorted(f"v{n}".encode() for n in range(total))
    by_partition = {}
    for rec in seen:
        by_partition.setdefault(rec.partition, []).append(rec.offset)
    for offsets in by_partition.values():
        assert offsets == list(range(len(offsets)))

    # The consumer fetched from each of the three leaders for ROUNDS rounds or more; with
    # sessions kept it created about one per broker (a consumer whose session were
    # refused or reset every round would have created dozens).
    created = metric_sum(cluster, "gregor_fetch_session_creations_total") - created_before
    assert 3 <= created <= 6, created
    # The followers kept theirs all along.
    assert metric_sum(cluster, "kafka_server_fetchsessioncache_incrementalfetchsessionevictions_total") == 0
