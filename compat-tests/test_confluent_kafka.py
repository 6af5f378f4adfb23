"""confluent-kafka-python (librdkafka) against a 3-broker gregor cluster (topics with
replication factor 3, so leaders are spread over the brokers and acks=all waits for the
followers): metadata,
AdminClient topic / config / offsets / records flows, every codec, idempotent producer,
assign-based consumers from the beginning and from the end, 900 KB and null records."""

import uuid

import pytest
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
    OffsetSpec,
)

from checks import (
    ck_produce as produce,
    CODECS,
    Msg,
    Rec,
    assert_stored_codec,
    expected_offsets_by_ts,
    from_end_with_markers,
    large_message,
    make_messages,
    now_ms,
    stored_batches,
    verify_roundtrip,
    wait_for,
    wait_leaders,
)


RF = 3


@pytest.fixture(scope="module")
def cluster(cluster3):
    return cluster3


@pytest.fixture(scope="module")
def bs(cluster):
    return cluster.bootstrap


@pytest.fixture(scope="module")
def admin(bs):
    return AdminClient({"bootstrap.servers": bs})


def new_topic(admin, bs, prefix, partitions=3, config=None):
    topic = f"ck-{prefix}-{uuid.uuid4().hex[:6]}"
    admin.create_topics([NewTopic(topic, partitions, RF, config=config or {})])[topic].result(30)
    wait_leaders(bs, topic, partitions)
    return topic


def to_rec(m):
    ts_type, ts = m.timestamp()
    return Rec(m.partition(), m.offset(), m.key(), m.value(), [(k, v) for k, v in (m.headers() or [])], ts, ts_type - 1)


def consumer(bs, **conf):
    # librdkafka insists on a group.id; assign() never joins the group, and auto-commit is off.
    return Consumer({"bootstrap.servers": bs, "group.id": "gregor-compat-assign", "enable.auto.commit": False, **conf})


def consume(bs, topic, partitions, n, offset=OFFSET_BEGINNING, timeout=60):
    c = consumer(bs)
    try:
        c.assign([TopicPartition(topic, p, offset) for p in partitions])
        recs = []

        def enough():
            for m in c.consume(num_messages=500, timeout=0.5):
                assert m.error() is None, m.error()
                recs.append(to_rec(m))
            return len(recs) >= n

        wait_for(enough, timeout, f"{n} records from {topic} (got {len(recs)})", interval=0)
        return recs
    finally:
        c.close()


def test_metadata(admin, bs, cluster):
    topic = new_topic(admin, bs, "md")
    md = admin.list_topics(timeout=10)
    assert {b.id: (b.host, b.port) for b in md.brokers.values()} == {i: ("127.0.0.1", cluster.ports[i]) for i in (1, 2, 3)}
    assert md.controller_id in (1, 2, 3) and md.cluster_id
    t = md.topics[topic]
    assert t.error is None and sorted(t.partitions) == [0, 1, 2]
    for p in t.partitions.values():
        assert p.error is None and sorted(p.replicas) == [1, 2, 3] and p.leader in p.replicas
        assert set(p.isrs) <= set(p.replicas) and p.leader in p.isrs
    assert len({p.leader for p in t.partitions.values()}) > 1, "leaders should be spread over brokers"
    missing = admin.list_topics("ck-missing-" + uuid.uuid4().hex[:6], timeout=10)
    # auto.create.topics.enable: asking for an unknown topic creates it (as Kafka does).
    assert len(missing.topics) == 1


def test_topic_admin(admin, bs):
    topic = new_topic(admin, bs, "admin", partitions=2, config={"retention.ms": "86400000"})
    with pytest.raises(KafkaException) as e:
        admin.create_topics([NewTopic(topic, 2, RF)])[topic].result(30)
    assert e.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS
    from confluent_kafka import TopicCollection

    desc = admin.describe_topics(TopicCollection([topic]))[topic].result(30)
    assert desc.name == topic and len(desc.partitions) == 2 and not desc.is_internal
    assert all(sorted(r.id for r in p.replicas) == [1, 2, 3] and p.leader.id in (1, 2, 3) for p in desc.partitions)
    admin.create_partitions([NewPartitions(topic, 4)])[topic].result(30)
    wait_leaders(bs, topic, 4)
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    cfg = admin.describe_configs([res])[res].result(30)
    assert cfg["retention.ms"].value == "86400000" and cfg["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert cfg["cleanup.policy"].value == "delete" and cfg["cleanup.policy"].is_default
    res = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.ms", "5000", incremental_operation=AlterConfigOpType.SET)])
    admin.incremental_alter_configs([res])[res].result(30)
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    wait_for(lambda: admin.describe_configs([res])[res].result(30)["retention.ms"].value == "5000", 30, "altered retention.ms")
    admin.delete_topics([topic])[topic].result(30)
    wait_for(lambda: topic not in admin.list_topics(timeout=10).topics, 30, "deleted topic gone")
    with pytest.raises(KafkaException) as e:
        admin.delete_topics([topic])[topic].result(30)
    assert e.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART


@pytest.mark.parametrize("codec", CODECS)
def test_roundtrip(admin, bs, cluster, codec):
    topic = new_topic(admin, bs, codec)
    msgs = make_messages(f"ck-{codec}", n=60)
    acks = produce(bs, topic, msgs, **{"compression.type": codec})
    recs = consume(bs, topic, range(3), len(msgs))
    verify_roundtrip(msgs, recs, acks=acks)
    if codec != "lz4":  # see test_lz4_batches_are_compressed
        assert_stored_codec(cluster, topic, range(3), codec)


def test_lz4_batches_are_compressed(admin, bs, cluster):
    topic = new_topic(admin, bs, "lz4c", partitions=1)
    produce(bs, topic, make_messages("ck-lz4c", n=20), **{"compression.type": "lz4"})
    assert_stored_codec(cluster, topic, [0], "lz4")


def test_idempotent_producer(admin, bs, cluster):
    topic = new_topic(admin, bs, "idem")
    msgs = make_messages("ck-idem", n=40)
    acks = produce(bs, topic, msgs, **{"enable.idempotence": True, "compression.type": "lz4"})
    recs = consume(bs, topic, range(3), len(msgs))
    verify_roundtrip(msgs, recs, acks=acks)
    for p in range(3):
        batches = stored_batches(cluster, topic, p)
        assert all(b.producer_id >= 0 for b in batches) and (not batches or batches[0].base_sequence == 0), batches


def test_consume_from_end(admin, bs):
    topic = new_topic(admin, bs, "end")
    old = make_messages("ck-old", n=30)
    produce(bs, topic, old)
    c = consumer(bs)
    try:
        c.assign([TopicPartition(topic, p, OFFSET_END) for p in range(3)])
        from_end_with_markers(
            send=lambda msgs, p: produce(bs, topic, msgs, partition=p),
            poll=lambda: [to_rec(m) for m in c.consume(500, 0.3) if m.error() is None],
            partitions=range(3),
            old=old,
            new=make_messages("ck-new", n=12),
            tag="ck",
        )
    finally:
        c.close()


def test_list_offsets(admin, bs):
    topic = new_topic(admin, bs, "offsets")
    msgs = make_messages("ck-lo", n=45)
    produce(bs, topic, msgs)
    recs = consume(bs, topic, range(3), len(msgs))
    by_ts = expected_offsets_by_ts(recs)
    c = consumer(bs)
    try:
        for p in range(3):
            assert c.get_watermark_offsets(TopicPartition(topic, p), timeout=10) == (0, len(by_ts.get(p, [])))
        probes = {p: e[len(e) // 2] for p, e in by_ts.items()}
        got = c.offsets_for_times([TopicPartition(topic, p, ts) for p, (ts, _) in probes.items()], timeout=10)
        assert {tp.partition: tp.offset for tp in got} == {p: off for p, (_, off) in probes.items()}
        future = max(m.ts for m in msgs) + 10_000
        got = c.offsets_for_times([TopicPartition(topic, p, future) for p in range(3)], timeout=10)
        assert all(tp.offset == -1 for tp in got), got  # no such record: OFFSET_END (-1)
    finally:
        c.close()
    tps = [TopicPartition(topic, p) for p in range(3)]

    def listed(spec):
        res = admin.list_offsets({tp: spec for tp in tps})
        return {tp.partition: f.result(30) for tp, f in res.items()}

    assert {p: r.offset for p, r in listed(OffsetSpec.earliest()).items()} == {0: 0, 1: 0, 2: 0}
    assert {p: r.offset for p, r in listed(OffsetSpec.latest()).items()} == {p: len(by_ts.get(p, [])) for p in range(3)}
    mx = listed(OffsetSpec.max_timestamp())
    for p, e in by_ts.items():
        ts, off = max(e)
        assert (mx[p].offset, mx[p].timestamp) == (off, ts)
    ts, off = probes[0] if 0 in probes else next(iter(probes.values()))
    part = 0 if 0 in probes else next(iter(probes))
    res = admin.list_offsets({TopicPartition(topic, part): OffsetSpec.for_timestamp(ts)})
    assert next(iter(res.values())).result(30).offset == off


def test_delete_records(admin, bs):
    topic = new_topic(admin, bs, "delrec", partitions=1)
    msgs = make_messages("ck-dr", n=10)
    produce(bs, topic, msgs)
    res = admin.delete_records([TopicPartition(topic, 0, 6)])
    assert next(iter(res.values())).result(30).low_watermark == 6
    recs = consume(bs, topic, [0], 4)
    assert [r.offset for r in recs] == [6, 7, 8, 9]


def test_large_message(admin, bs, cluster):
    topic = new_topic(admin, bs, "large", partitions=1)
    sent = [large_message("ck-none"), large_message("ck-gzip")]
    acks = produce(bs, topic, sent[:1]) + produce(bs, topic, sent[1:], **{"compression.type": "gzip"})
    assert acks == [(0, 0), (0, 1)]
    recs = consume(bs, topic, [0], 2)
    assert [(r.key, r.value) for r in recs] == [(m.key, m.value) for m in sent]
    assert [b.codec for b in stored_batches(cluster, topic, 0)] == [0, 1]


def test_null_key_and_value(admin, bs):
    topic = new_topic(admin, bs, "nulls", partitions=1)
    msgs = [
        Msg(key=None, value=b"ck-no-key", headers=[("h", None)], ts=1_700_000_000_000),
        Msg(key=b"ck-tombstone", value=None, headers=[], ts=1_700_000_000_001),
        Msg(key=b"", value=b"", headers=[("", b"")], ts=1_700_000_000_002),
    ]
    produce(bs, topic, msgs)
    recs = consume(bs, topic, [0], 3)
    assert [(r.key, r.value, r.headers, r.ts, r.ts_type) for r in recs] == [(m.key, m.value, m.headers, m.ts, 0) for m in msgs]


def test_auto_create_on_produce(bs):
    """Producing to an unknown topic creates it (auto.create.topics.enable, num.partitions=1)."""
    topic = "ck-auto-" + uuid.uuid4().hex[:6]
    msgs = make_messages("ck-auto", n=5)
    acks = produce(bs, topic, msgs)
    assert acks == [(0, i) for i in range(5)]
    verify_roundtrip(msgs, consume(bs, topic, [0], 5), acks=acks, min_partitions=1)


def test_log_append_time(admin, bs, cluster):
    """message.timestamp.type=LogAppendTime: the broker stamps its own time on the batch;
    consumers see it, with the LogAppendTime type, instead of the producer's."""
    topic = new_topic(admin, bs, "lat", partitions=1, config={"message.timestamp.type": "LogAppendTime"})
    msgs = make_messages("ck-lat", n=10)  # CreateTime an hour ago
    t0 = now_ms()
    produce(bs, topic, msgs, **{"compression.type": "gzip"})
    t1 = now_ms()
    recs = consume(bs, topic, [0], 10)
    assert all(r.ts_type == 1 and t0 - 50 <= r.ts <= t1 + 50 for r in recs), [(r.ts_type, r.ts) for r in recs]
    assert all(b.timestamp_type == 1 for b in stored_batches(cluster, topic, 0))


def test_message_too_large(admin, bs):
    """A record batch over max.message.bytes is refused with MESSAGE_TOO_LARGE."""
    topic = new_topic(admin, bs, "toolarge", partitions=1, config={"max.message.bytes": "100000"})
    errors = []
    p = Producer({"bootstrap.servers": bs, "message.max.bytes": 1_000_000})
    p.produce(topic, value=b"x" * 200_000, on_delivery=lambda err, m: errors.append(err))
    p.flush(30)
    assert len(errors) == 1 and errors[0] is not None and errors[0].code() == KafkaError.MSG_SIZE_TOO_LARGE, errors
    ok = produce(bs, topic, [Msg(key=b"k", value=b"y" * 50_000)])
    assert ok == [(0, 0)]


def test_delete_and_recreate_same_name(admin, bs):
    """A topic deleted and created again under the same name starts empty, with its new
    partition count and a new topic id."""
    from confluent_kafka import TopicCollection

    topic = new_topic(admin, bs, "recreate", partitions=2)
    produce(bs, topic, make_messages("ck-rc-old", n=20))
    old_id = admin.describe_topics(TopicCollection([topic]))[topic].result(30).topic_id
    admin.delete_topics([topic])[topic].result(30)
    wait_for(lambda: topic not in admin.list_topics(timeout=10).topics, 30, "deleted topic gone")

    def recreate():
        try:
            admin.create_topics([NewTopic(topic, 3, RF)])[topic].result(30)
            return True
        except KafkaException as e:  # deletion still finishing on the broker
            assert e.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS, e
            return False

    wait_for(recreate, 30, "re-creating the topic", interval=0.2)
    wait_leaders(bs, topic, 3)
    assert admin.describe_topics(TopicCollection([topic]))[topic].result(30).topic_id != old_id
    msgs = make_messages("ck-rc-new", n=30)
    acks = produce(bs, topic, msgs)
    verify_roundtrip(msgs, consume(bs, topic, range(3), len(msgs)), acks=acks)
    c = consumer(bs)
    try:
        assert sum(c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(3)) == 30
    finally:
        c.close()
