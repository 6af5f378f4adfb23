"""kafka-python 3.0.12 against a one-broker gregor cluster: metadata, KafkaAdminClient
topic / config / offsets / records flows, every codec, idempotent producer, assign-based
consumers from the beginning and from the end, offsets_for_times, 900 KB and nulls."""

import uuid
import warnings

import pytest

with warnings.catch_warnings():
    # kafka-python 3.0 loads its protocol schemas with deprecated importlib.resources calls
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import ConfigResource, ConfigResourceType, NewPartitions, NewTopic, OffsetSpec
    from kafka.errors import TopicAlreadyExistsError, UnknownTopicOrPartitionError

from checks import (
    CODECS,
    Msg,
    Rec,
    assert_stored_codec,
    expected_offsets_by_ts,
    large_message,
    make_messages,
    stored_batches,
    verify_only_new,
    verify_roundtrip,
    wait_for,
)


@pytest.fixture(scope="module")
def bs(cluster):
    return cluster.bootstrap


@pytest.fixture(scope="module")
def admin(bs):
    a = KafkaAdminClient(bootstrap_servers=bs, client_id="kp-admin")
    yield a
    a.close()


def new_topic(admin, prefix, partitions=3, configs=None):
    topic = f"kp-{prefix}-{uuid.uuid4().hex[:6]}"
    admin.create_topics([NewTopic(topic, partitions, 1, topic_configs=configs or {})])

    def ready():
        d = admin.describe_topics([topic])[0]
        return d["error_code"] == 0 and len(d["partitions"]) == partitions and all(p["leader_id"] == 1 for p in d["partitions"])

    wait_for(ready, 30, f"{topic} leaders", interval=0.1)
    return topic


def produce(bs, topic, msgs, partition=None, **conf):
    p = KafkaProducer(bootstrap_servers=bs, linger_ms=5, **conf)
    try:
        futs = [
            p.send(topic, key=m.key, value=m.value, headers=[(k, v) for k, v in m.headers], timestamp_ms=m.ts, partition=partition)
            for m in msgs
        ]
        p.flush(60)
        return [(md.partition, md.offset) for md in (f.get(30) for f in futs)]
    finally:
        p.close()


def to_rec(r):
    return Rec(r.partition, r.offset, r.key, r.value, [(k, v) for k, v in r.headers], r.timestamp, r.timestamp_type)


def consumer(bs, topic, partitions, where="beginning"):
    c = KafkaConsumer(bootstrap_servers=bs, group_id=None, enable_auto_commit=False, client_id="kp-consumer")
    tps = [TopicPartition(topic, p) for p in partitions]
    c.assign(tps)
    (c.seek_to_beginning if where == "beginning" else c.seek_to_end)(*tps)
    positions = {tp.partition: c.position(tp) for tp in tps}  # resolves the positions now
    return c, positions


def poll(c, recs, n, timeout=60):
    def enough():
        for batch in c.poll(timeout_ms=300).values():
            recs.extend(to_rec(r) for r in batch)
        return len(recs) >= n

    wait_for(enough, timeout, f"{n} records (got {len(recs)})", interval=0)
    return recs


def consume(bs, topic, partitions, n):
    c, _ = consumer(bs, topic, partitions)
    try:
        return poll(c, [], n)
    finally:
        c.close()


def test_metadata(admin, bs, cluster):
    topic = new_topic(admin, "md")
    cl = admin.describe_cluster()
    assert cl["cluster_id"] and cl["controller_id"] == 1
    assert [(b["broker_id"], b["host"], b["port"]) for b in cl["brokers"]] == [(1, "127.0.0.1", cluster.ports[1])]
    assert topic in admin.list_topics()
    c = KafkaConsumer(bootstrap_servers=bs, group_id=None)
    try:
        assert c.partitions_for_topic(topic) == {0, 1, 2}
        assert topic in c.topics()
    finally:
        c.close()
    d = admin.describe_topics([topic])[0]
    assert [(p["partition_index"], p["leader_id"], p["replica_nodes"], p["isr_nodes"]) for p in d["partitions"]] == [
        (i, 1, [1], [1]) for i in range(3)
    ]


def test_topic_admin(admin):
    topic = new_topic(admin, "admin", partitions=2, configs={"retention.ms": "86400000"})
    with pytest.raises(TopicAlreadyExistsError):
        admin.create_topics([NewTopic(topic, 2, 1)])
    res = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)], include_synonyms=True, config_filter="all")
    cfg = res["topic"][topic]
    assert cfg["retention.ms"]["value"] == "86400000" and cfg["retention.ms"]["config_source"] == "DYNAMIC_TOPIC_CONFIG"
    assert cfg["retention.ms"]["synonyms"][0]["source"] == "DYNAMIC_TOPIC_CONFIG"
    assert cfg["cleanup.policy"]["value"] == "delete" and cfg["cleanup.policy"]["config_source"] == "DEFAULT_CONFIG"
    assert cfg["cleanup.policy"]["synonyms"] == [{"name": "log.cleanup.policy", "value": "delete", "source": "DEFAULT_CONFIG"}]
    admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs={"retention.ms": "5000"})])

    def altered():
        r = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)], config_filter="all")
        return r["topic"][topic]["retention.ms"]["value"] == "5000"

    wait_for(altered, 30, "altered retention.ms")
    admin.create_partitions({topic: NewPartitions(5)})
    wait_for(lambda: len(admin.describe_topics([topic])[0]["partitions"]) == 5, 30, "5 partitions")
    admin.delete_topics([topic])
    wait_for(lambda: topic not in admin.list_topics(), 30, "deleted topic gone")
    with pytest.raises(UnknownTopicOrPartitionError):
        admin.delete_topics([topic])


@pytest.mark.parametrize("codec", CODECS)
def test_roundtrip(admin, bs, cluster, codec):
    topic = new_topic(admin, codec)
    msgs = make_messages(f"kp-{codec}", n=60)
    acks = produce(bs, topic, msgs, compression_type=None if codec == "none" else codec)
    recs = consume(bs, topic, range(3), len(msgs))
    verify_roundtrip(msgs, recs, acks=acks)
    assert_stored_codec(cluster, topic, range(3), codec)


def test_idempotent_producer(admin, bs, cluster):
    topic = new_topic(admin, "idem")
    msgs = make_messages("kp-idem", n=40)
    acks = produce(bs, topic, msgs, enable_idempotence=True, acks="all", compression_type="gzip")
    verify_roundtrip(msgs, consume(bs, topic, range(3), len(msgs)), acks=acks)
    for p in range(3):
        batches = stored_batches(cluster, topic, p)
        assert all(b.producer_id >= 0 for b in batches) and (not batches or batches[0].base_sequence == 0), batches


def test_consume_from_end(admin, bs):
    topic = new_topic(admin, "end")
    old = make_messages("kp-old", n=30)
    produce(bs, topic, old)
    c, positions = consumer(bs, topic, range(3), where="end")
    try:
        assert sum(positions.values()) == len(old)
        new = make_messages("kp-new", n=12)
        produce(bs, topic, new)
        recs = poll(c, [], len(new))
    finally:
        c.close()
    verify_only_new(old, new, recs)
    verify_roundtrip(new, recs, start_offsets=positions)


def test_list_offsets(admin, bs):
    topic = new_topic(admin, "offsets")
    msgs = make_messages("kp-lo", n=45)
    produce(bs, topic, msgs)
    recs = consume(bs, topic, range(3), len(msgs))
    by_ts = expected_offsets_by_ts(recs)
    tps = [TopicPartition(topic, p) for p in range(3)]
    c = KafkaConsumer(bootstrap_servers=bs, group_id=None)
    try:
        assert c.beginning_offsets(tps) == {tp: 0 for tp in tps}
        assert c.end_offsets(tps) == {tp: len(by_ts.get(tp.partition, [])) for tp in tps}
        probes = {p: e[len(e) // 2] for p, e in by_ts.items()}
        got = c.offsets_for_times({TopicPartition(topic, p): ts for p, (ts, _) in probes.items()})
        assert {tp.partition: (o.offset, o.timestamp) for tp, o in got.items()} == {p: (off, ts) for p, (ts, off) in probes.items()}
        future = max(m.ts for m in msgs) + 10_000
        assert all(v is None for v in c.offsets_for_times({tp: future for tp in tps}).values())
    finally:
        c.close()
    got = admin.list_partition_offsets({tp: OffsetSpec.MAX_TIMESTAMP for tp in tps})
    for tp, o in got.items():
        if tp.partition in by_ts:
            assert (o.offset, o.timestamp) == tuple(reversed(max(by_ts[tp.partition])))
    got = admin.list_partition_offsets({tp: OffsetSpec.LATEST for tp in tps})
    assert {tp.partition: o.offset for tp, o in got.items()} == {p: len(by_ts.get(p, [])) for p in range(3)}


def test_delete_records(admin, bs):
    topic = new_topic(admin, "delrec", partitions=1)
    produce(bs, topic, make_messages("kp-dr", n=10))
    res = admin.delete_records({TopicPartition(topic, 0): 7})
    assert res[TopicPartition(topic, 0)]["low_watermark"] == 7
    assert [r.offset for r in consume(bs, topic, [0], 3)] == [7, 8, 9]


def test_large_message(admin, bs, cluster):
    topic = new_topic(admin, "large", partitions=1)
    sent = [large_message("kp-none"), large_message("kp-gzip")]
    acks = produce(bs, topic, sent[:1]) + produce(bs, topic, sent[1:], compression_type="gzip")
    assert acks == [(0, 0), (0, 1)]
    recs = consume(bs, topic, [0], 2)
    assert [(r.key, r.value) for r in recs] == [(m.key, m.value) for m in sent]
    assert [b.codec for b in stored_batches(cluster, topic, 0)] == [0, 1]


def test_null_key_and_value(admin, bs):
    topic = new_topic(admin, "nulls", partitions=1)
    msgs = [
        # kafka-python only sends (str, bytes) headers: no null header value
        Msg(key=None, value=b"kp-no-key", headers=[("h", b"")], ts=1_700_000_000_000),
        Msg(key=b"kp-tombstone", value=None, headers=[], ts=1_700_000_000_001),
        Msg(key=b"", value=b"", headers=[("", b"")], ts=1_700_000_000_002),
    ]
    produce(bs, topic, msgs, partition=0)
    recs = consume(bs, topic, [0], 3)
    assert [(r.key, r.value, r.headers, r.ts, r.ts_type) for r in recs] == [(m.key, m.value, m.headers, m.ts, 0) for m in msgs]


@pytest.mark.parametrize("acks", [0, 1])
def test_acks_0_and_1(admin, bs, acks):
    """acks=0 gets no response (a response would desynchronise the client's correlation
    ids), acks=1 the leader's answer with the offsets."""
    topic = new_topic(admin, f"acks{acks}")
    msgs = make_messages(f"kp-acks{acks}", n=30)
    got = produce(bs, topic, msgs, acks=acks)
    recs = consume(bs, topic, range(3), len(msgs))
    if acks == 0:  # kafka-python synthesises offsets for acks=0: not the broker's
        verify_roundtrip(msgs, recs)
    else:
        verify_roundtrip(msgs, recs, acks=got)
