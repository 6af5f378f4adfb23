"""Prometheus metrics of a real 3-broker cluster and its mini-zookeeper: every scrape
parses with the Prometheus project's own OpenMetrics parser; the counters move by what a
real client (confluent-kafka / librdkafka) sent; consumer lag is the end offset minus the
committed offset; under-replicated partitions follow a killed and restarted follower."""

import urllib.request

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from gregor_cluster import GregorCluster, wait_until

TOPIC = "metered"
RECORDS = 2000
VALUE = b"v" * 1000


def scrape(url):
    """{(sample name, frozenset(labels)): value} of one scrape, through the parser."""
    with urllib.request.urlopen(url, timeout=10) as r:
        assert r.headers["Content-Type"].startswith("application/openmetrics-text")
        text = r.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())))


def total(c, name, **labels):
    return sum(value(scrape(c.metrics_url(b)), name, **labels) or 0 for b in c.ports if b in c.live)


@pytest.fixture(scope="module")
def cluster():
    config = {"offsets.topic.num.partitions": "3", "replica.lag.time.max.ms": "3000"}
    with GregorCluster(brokers=3, metrics=True, broker_config=config) as c:
        c.live = set(c.ports)
        admin = AdminClient({"bootstrap.servers": c.bootstrap})
        admin.create_topics([NewTopic(TOPIC, num_partitions=1, replication_factor=3)])[TOPIC].result(30)
        yield c


def test_scrapes_parse_on_brokers_and_zookeeper(cluster):
    for b in cluster.ports:
        samples = scrape(cluster.metrics_url(b))
        assert value(samples, "kafka_server_sessionexpirelistener_sessionstate", state="CONNECTED") == 1
    zk = scrape(cluster.metrics_url(None))
    assert value(zk, "znode_count") > 10
    assert value(zk, "num_alive_connections") >= 3
    assert value(zk, "fsynctime_count") > 0
    assert sum(value(scrape(cluster.metrics_url(b)), "kafka_controller_kafkacontroller_activecontrollercount")
               for b in cluster.ports) == 1


def test_bytes_and_messages_in_match_what_was_produced(cluster):
    p = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all", "linger.ms": 5,
                  "compression.type": "none"})
    failed = []
    for i in range(RECORDS):
        p.produce(TOPIC, VALUE, callback=lambda err, msg: err and failed.append(err))
    assert p.flush(60) == 0 and not failed
    payload = RECORDS * len(VALUE)
    messages = total(cluster, "kafka_server_brokertopicmetrics_messagesin_total", topic=TOPIC)
    bytes_in = total(cluster, "kafka_server_brokertopicmetrics_bytesin_total", topic=TOPIC)
    assert messages == RECORDS
    # Record batches add headers and per-record framing: a few percent over the payload.
    assert payload <= bytes_in <= payload * 1.05, (bytes_in, payload)
    # The followers appended the same bytes (replication in), the leader sent them out.
    repl_in = total(cluster, "kafka_server_brokertopicmetrics_replicationbytesin_total", topic=TOPIC)
    wait_until(lambda: total(cluster, "kafka_server_brokertopicmetrics_replicationbytesin_total",
                             topic=TOPIC) == 2 * bytes_in, 30, "followers to replicate")
    assert repl_in <= 2 * bytes_in
    produce = total(cluster, "kafka_network_requestmetrics_requests_total", request="Produce", version="9") + \
        total(cluster, "kafka_network_requestmetrics_requests_total", request="Produce", version="10") + \
        total(cluster, "kafka_network_requestmetrics_requests_total", request="Produce", version="11")
    assert produce > 0
    assert total(cluster, "kafka_network_requestmetrics_errors_total", request="Produce", error="NONE") > 0
    assert total(cluster, "kafka_network_requestmetrics_totaltimems_count", request="Produce") >= produce


def test_consumer_lag_is_end_offset_minus_committed(cluster):
    c = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": "lagging",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.assign([TopicPartition(TOPIC, 0, 0)])
    read = 0
    while read < RECORDS:
        m = c.poll(10)
        assert m is not None, f"only {read} records read"
        assert m.error() is None
        read += 1
    bytes_out = total(cluster, "kafka_server_brokertopicmetrics_bytesout_total", topic=TOPIC)
    assert bytes_out >= RECORDS * len(VALUE)
    for committed in (1500, RECORDS):
        c.commit(offsets=[TopicPartition(TOPIC, 0, committed)], asynchronous=False)
        wait_until(lambda: total(cluster, "kafka_consumergroup_lag", consumergroup="lagging",
                                 topic=TOPIC, partition="0") == RECORDS - committed,
                   30, f"lag {RECORDS - committed}")
        assert total(cluster, "kafka_consumergroup_current_offset", consumergroup="lagging",
                     topic=TOPIC, partition="0") == committed
    c.close()


def test_under_replicated_partitions_follow_a_dead_follower(cluster):
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    md = admin.list_topics(timeout=10)
    leader = md.topics[TOPIC].partitions[0].leader
    victim = next(b for b in cluster.ports if b != leader)
    # Every partition with a replica on the victim becomes under-replicated.
    expected = sum(1 for t in md.topics.values() for p in t.partitions.values() if victim in p.replicas)
    assert expected >= 1
    cluster.kill(victim)
    cluster.live.discard(victim)
    wait_until(lambda: total(cluster, "kafka_server_replicamanager_underreplicatedpartitions") == expected,
               60, f"{expected} under-replicated partitions")
    # (Whether the leader shrank the ISR itself, counted as IsrShrinks, or the controller
    # did on the session expiry first, as in Kafka, is a race; expansions are the leader's.)
    cluster.start(victim)
    cluster.live.add(victim)
    wait_until(lambda: total(cluster, "kafka_server_replicamanager_underreplicatedpartitions") == 0,
               60, "no under-replicated partitions")
    assert total(cluster, "kafka_server_replicamanager_isrexpands_total") >= 1
    assert total(cluster, "kafka_server_replicamanager_leadercount") == len(
        [p for t in admin.list_topics(timeout=10).topics.values() for p in t.partitions.values()])
