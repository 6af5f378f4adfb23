"""Config fidelity: every topic config of Kafka 3.9 (`TopicConfig` / `LogConfig.CONFIG`,
listed here from Kafka's sources, not from gregor's) is accepted by CreateTopics and
IncrementalAlterConfigs with a valid value, refused with INVALID_CONFIG for an invalid
one, and reported by DescribeConfigs with its value, source and default, through
confluent-kafka's AdminClient; and the effect of `compression.type`: a gzip producer's
batches stored as lz4, read back byte-exact."""

import uuid

import pytest
from confluent_kafka import Consumer, KafkaError
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource, NewTopic

from checks import Rec, assert_stored_codec, ck_produce, make_messages, verify_roundtrip, wait_for

# Kafka 3.9's topic configs with a valid value (not the default) and an invalid one.
KAFKA_39_TOPIC_CONFIGS = {
    "cleanup.policy": ("compact,delete", "shred"),
    "compression.type": ("lz4", "brotli"),
    "compression.gzip.level": ("5", "10"),
    "compression.lz4.level": ("12", "0"),
    "compression.zstd.level": ("-5", "23"),
    "delete.retention.ms": ("1000", "-1"),
    "file.delete.delay.ms": ("1000", "-1"),
    "flush.messages": ("100", "0"),
    "flush.ms": ("1000", "-1"),
    "follower.replication.throttled.replicas": ("0:1,1:1", "0-1"),
    "index.interval.bytes": ("8192", "-1"),
    "leader.replication.throttled.replicas": ("*", "a:b"),
    "local.retention.bytes": ("100000", "-3"),
    "local.retention.ms": ("100000", "-3"),
    "max.compaction.lag.ms": ("86400000", "0"),
    "max.message.bytes": ("2000000", "-1"),
    "message.downconversion.enable": ("false", "maybe"),
    "message.format.version": ("0.10.2", "0.10.9"),
    "message.timestamp.after.max.ms": ("3600000", "-1"),
    "message.timestamp.before.max.ms": ("3600000", "-1"),
    "message.timestamp.difference.max.ms": ("3600000", "-1"),
    "message.timestamp.type": ("LogAppendTime", "SomeTime"),
    "min.cleanable.dirty.ratio": ("0.3", "1.5"),
    "min.compaction.lag.ms": ("1000", "-1"),
    "min.insync.replicas": ("2", "0"),
    "preallocate": ("true", "yes"),
    "remote.log.copy.disable": ("false", "true"),  # true: refused in ZooKeeper mode
    "remote.log.delete.on.disable": ("false", "true"),
    "remote.storage.enable": ("false", "true"),  # true: tiered storage is off in the broker
    "retention.bytes": ("1000000", "abc"),
    "retention.ms": ("3600000", "-2"),
    "segment.bytes": ("1048576", "13"),
    "segment.index.bytes": ("65536", "3"),
    "segment.jitter.ms": ("1000", "-1"),
    "segment.ms": ("3600000", "0"),
    "unclean.leader.election.enable": ("true", "sometimes"),
}

# Defaults as Kafka 3.9 with inter.broker.protocol.version >= 3.0 reports them.
DEFAULTS = {
    "cleanup.policy": "delete",
    "compression.type": "producer",
    "message.format.version": "3.0-IV1",
    "message.downconversion.enable": "true",
    "max.compaction.lag.ms": "9223372036854775807",
    "min.compaction.lag.ms": "0",
    "local.retention.ms": "-2",
    "remote.storage.enable": "false",
    "leader.replication.throttled.replicas": "",
}


@pytest.fixture(scope="module")
def admin(cluster):
    return AdminClient({"bootstrap.servers": cluster.bootstrap})


def uniq(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def topic_name(key, tag):
    return f"cfg-{tag}-{key.replace('.', '-')}-{uuid.uuid4().hex[:4]}"


def create(admin, topics):
    futures = admin.create_topics(topics, operation_timeout=30)
    out = {}
    for name, f in futures.items():
        try:
            f.result(60)
            out[name] = None
        except Exception as e:  # KafkaException wrapping a KafkaError
            out[name] = e.args[0]
    return out


def describe(admin, topic):
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    return admin.describe_configs([res])[res].result(30)


def test_every_key_created_valid_and_refused_invalid(admin):
    valid = {key: topic_name(key, "ok") for key in KAFKA_39_TOPIC_CONFIGS}
    results = create(admin, [NewTopic(t, 1, 1, config={k: KAFKA_39_TOPIC_CONFIGS[k][0]}) for k, t in valid.items()])
    assert {t: e for t, e in results.items() if e is not None} == {}
    for key, t in valid.items():
        entry = describe(admin, t)[key]
        assert entry.value == KAFKA_39_TOPIC_CONFIGS[key][0], (key, entry.value)
        assert entry.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value and not entry.is_default, (key, entry)
    invalid = {key: topic_name(key, "bad") for key in KAFKA_39_TOPIC_CONFIGS}
    results = create(admin, [NewTopic(t, 1, 1, config={k: KAFKA_39_TOPIC_CONFIGS[k][1]}) for k, t in invalid.items()])
    for key, t in invalid.items():
        err = results[t]
        assert err is not None and err.code() == KafkaError.INVALID_CONFIG, (key, err)
    assert not set(invalid.values()) & set(admin.list_topics(timeout=10).topics), "refused topics must not exist"


def test_unknown_keys_and_conflicting_lags_are_refused(admin):
    t = uniq("cfg-unknown")
    assert create(admin, [NewTopic(t, 1, 1, config={"retention.msx": "1"})])[t].code() == KafkaError.INVALID_CONFIG
    t = uniq("cfg-lags")
    lags = {"min.compaction.lag.ms": "100000", "max.compaction.lag.ms": "1000"}
    assert create(admin, [NewTopic(t, 1, 1, config=lags)])[t].code() == KafkaError.INVALID_CONFIG


def test_describe_reports_every_key_with_source_and_default(admin, cluster):
    t = uniq("cfg-defaults")
    assert create(admin, [NewTopic(t, 1, 1)]) == {t: None}
    entries = describe(admin, t)
    assert set(KAFKA_39_TOPIC_CONFIGS) <= set(entries), set(KAFKA_39_TOPIC_CONFIGS) - set(entries)
    for key, value in DEFAULTS.items():
        assert entries[key].value == value, (key, entries[key].value)
    for key in KAFKA_39_TOPIC_CONFIGS:
        e = entries[key]
        assert e.source in (ConfigSource.DEFAULT_CONFIG.value, ConfigSource.STATIC_BROKER_CONFIG.value), (key, e.source)
        assert not e.is_read_only and not e.is_sensitive


def test_incremental_alter_every_key(admin):
    topics = {key: topic_name(key, "alt") for key in KAFKA_39_TOPIC_CONFIGS}
    assert all(e is None for e in create(admin, [NewTopic(t, 1, 1) for t in topics.values()]).values())

    def alter(values):
        resources = [
            ConfigResource(ConfigResource.Type.TOPIC, topics[k],
                           incremental_configs=[ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET)])
            for k, v in values.items()
        ]
        out = {}
        for res, f in admin.incremental_alter_configs(resources).items():
            try:
                f.result(30)
                out[res.name] = None
            except Exception as e:
                out[res.name] = e.args[0]
        return out

    ok = alter({k: v[0] for k, v in KAFKA_39_TOPIC_CONFIGS.items()})
    assert {t: e for t, e in ok.items() if e is not None} == {}
    bad = alter({k: v[1] for k, v in KAFKA_39_TOPIC_CONFIGS.items()})
    for key, t in topics.items():
        assert bad[t] is not None and bad[t].code() == KafkaError.INVALID_CONFIG, (key, bad[t])
        # The refused value left the valid one in place.
        assert describe(admin, t)[key].value == KAFKA_39_TOPIC_CONFIGS[key][0], key


def test_compression_type_lz4_recompresses_a_gzip_producers_batches(admin, cluster):
    t = uniq("cfg-lz4")
    assert create(admin, [NewTopic(t, 3, 1, config={"compression.type": "lz4"})]) == {t: None}
    msgs = make_messages("cfg-lz4", n=60)
    acks = ck_produce(cluster.bootstrap, t, msgs, **{"compression.type": "gzip"})
    assert_stored_codec(cluster, t, range(3), "lz4")
    c = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": uniq("g-lz4"), "auto.offset.reset": "earliest"})
    c.subscribe([t])
    recs = []

    def poll():
        m = c.poll(0.5)
        if m is not None and not m.error():
            recs.append(Rec(m.partition(), m.offset(), m.key(), m.value(), [(k, v) for k, v in m.headers() or []], m.timestamp()[1]))
        return len(recs) >= len(msgs)

    wait_for(poll, 60, "the lz4 topic's records", interval=0)
    c.close()
    verify_roundtrip(msgs, recs, acks=acks)
