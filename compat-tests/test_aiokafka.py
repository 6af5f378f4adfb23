"""aiokafka 0.14 against a one-broker gregor cluster: metadata, AIOKafkaAdminClient topic /
config / records flows, every codec, idempotent producer, assign-based consumers from
the beginning and from the end, offsets_for_times, 900 KB and nulls."""

import asyncio
import time
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic, RecordsToDelete
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

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
)

TOPIC_ALREADY_EXISTS, UNKNOWN_TOPIC_OR_PARTITION = 36, 3
DYNAMIC_TOPIC_CONFIG, DEFAULT_CONFIG = 1, 5


@pytest.fixture(scope="module")
def bs(cluster):
    return cluster.bootstrap


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 120))


async def until(cond, timeout, what):
    deadline = time.time() + timeout
    while not await cond():
        assert time.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


class Admin:
    def __init__(self, bs):
        self.a = AIOKafkaAdminClient(bootstrap_servers=bs, client_id="aio-admin")

    async def __aenter__(self):
        await self.a.start()
        return self.a

    async def __aexit__(self, *exc):
        await self.a.close()


async def new_topic(a, prefix, partitions=3, configs=None):
    topic = f"aio-{prefix}-{uuid.uuid4().hex[:6]}"
    r = await a.create_topics([NewTopic(topic, partitions, 1, topic_configs=configs or {})])
    assert [e[1] for e in r.topic_errors] == [0], r

    async def ready():
        d = (await a.describe_topics([topic]))[0]
        return d["error_code"] == 0 and len(d["partitions"]) == partitions and all(p["leader"] == 1 for p in d["partitions"])

    await until(ready, 30, f"{topic} leaders")
    return topic


async def produce(bs, topic, msgs, partition=None, **conf):
    p = AIOKafkaProducer(bootstrap_servers=bs, linger_ms=5, **conf)
    await p.start()
    try:
        futs = [
            await p.send(topic, key=m.key, value=m.value, headers=[(k, v) for k, v in m.headers], timestamp_ms=m.ts, partition=partition)
            for m in msgs
        ]
        return [(md.partition, md.offset) for md in await asyncio.gather(*futs)]
    finally:
        await p.stop()


def to_rec(r):
    return Rec(r.partition, r.offset, r.key, r.value, [(k, v) for k, v in r.headers], r.timestamp, r.timestamp_type)


async def consumer(bs, topic, partitions, where="beginning"):
    c = AIOKafkaConsumer(bootstrap_servers=bs, enable_auto_commit=False, client_id="aio-consumer")
    await c.start()
    tps = [TopicPartition(topic, p) for p in partitions]
    c.assign(tps)
    await (c.seek_to_beginning if where == "beginning" else c.seek_to_end)(*tps)
    positions = {tp.partition: await c.position(tp) for tp in tps}
    return c, positions


async def poll(c, n, timeout=60):
    recs = []
    deadline = time.time() + timeout
    while len(recs) < n:
        assert time.time() < deadline, f"got {len(recs)}/{n} records"
        for batch in (await c.getmany(timeout_ms=300)).values():
            recs.extend(to_rec(r) for r in batch)
    return recs


async def consume(bs, topic, partitions, n):
    c, _ = await consumer(bs, topic, partitions)
    try:
        return await poll(c, n)
    finally:
        await c.stop()


def test_metadata(bs, cluster):
    async def go():
        async with Admin(bs) as a:
            topic = await new_topic(a, "md")
            cl = await a.describe_cluster()
            assert cl["cluster_id"] and cl["controller_id"] == 1
            assert [(b["node_id"], b["host"], b["port"]) for b in cl["brokers"]] == [(1, "127.0.0.1", cluster.ports[1])]
            assert topic in await a.list_topics()
            d = (await a.describe_topics([topic]))[0]
            assert [(p["partition"], p["leader"], p["replicas"], p["isr"]) for p in d["partitions"]] == [(i, 1, [1], [1]) for i in range(3)]
        c = AIOKafkaConsumer(bootstrap_servers=bs)
        await c.start()
        try:
            assert topic in await c.topics()
        finally:
            await c.stop()
        p = AIOKafkaProducer(bootstrap_servers=bs)
        await p.start()
        try:
            assert await p.partitions_for(topic) == {0, 1, 2}
        finally:
            await p.stop()

    run(go())


def test_topic_admin(bs):
    async def go():
        async with Admin(bs) as a:
            topic = await new_topic(a, "admin", partitions=2, configs={"retention.ms": "86400000"})
            r = await a.create_topics([NewTopic(topic, 2, 1)])
            assert r.topic_errors[0][1] == TOPIC_ALREADY_EXISTS
            res = await a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)], include_synonyms=True)
            entries = {e[0]: e for e in res[0].resources[0][4]}
            assert entries["retention.ms"][1] == "86400000" and entries["retention.ms"][3] == DYNAMIC_TOPIC_CONFIG
            assert entries["cleanup.policy"][1] == "delete" and entries["cleanup.policy"][3] == DEFAULT_CONFIG
            await a.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs={"retention.ms": "5000"})])

            async def altered():
                res = await a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
                return {e[0]: e[1] for e in res[0].resources[0][4]}["retention.ms"] == "5000"

            await until(altered, 30, "altered retention.ms")
            await a.create_partitions({topic: NewPartitions(4)})

            async def grown():
                return len((await a.describe_topics([topic]))[0]["partitions"]) == 4

            await until(grown, 30, "4 partitions")
            r = await a.delete_topics([topic])
            assert r.topic_error_codes[0][1] == 0

            async def gone():
                return topic not in await a.list_topics()

            await until(gone, 30, "deleted topic gone")
            r = await a.delete_topics([topic])
            assert r.topic_error_codes[0][1] == UNKNOWN_TOPIC_OR_PARTITION

    run(go())


@pytest.mark.parametrize("codec", CODECS)
def test_roundtrip(bs, cluster, codec):
    async def go():
        async with Admin(bs) as a:
            topic = await new_topic(a, codec)
        msgs = make_messages(f"aio-{codec}", n=60)
        acks = await produce(bs, topic, msgs, compression_type=None if codec == "none" else codec)
        verify_roundtrip(msgs, await consume(bs, topic, range(3), len(msgs)), acks=acks)
        assert_stored_codec(cluster, topic, range(3), codec)

    run(go())


def test_idempotent_producer(bs, cluster):
    async def go():
        async with Admin(bs) as a:
            topic = await new_topic(a, "idem")
        msgs = make_messages("aio-idem", n=40)
        acks = await produce(bs, topic, msgs, enable_idempotence=True, compression_type="snappy")
        verify_roundtrip(msgs, await consume(bs, topic, range(3), len(msgs)), acks=acks)
        for p in range(3):
            batches = stored_batches(cluster, topic, p)
            assert all(b.producer_id >= 0 for b in batches) and (not batches or batches[0].base_sequence == 0), batches

    run(go())


def test_consume_from_end(bs):
    async def go():
        async with Admin(bs) as a:
            topic = await new_topic(a, "end")
        old = make_messages("aio-old", n=30)
        await produce(bs, topic, old)
        c, positions = await consumer(bs, topic, range(3), where="end")
        try:
            assert sum(positions.values()) == len(old)
            new = make_messages("aio-new", n=12)
            await produce(bs, topic, new)
            recs = await poll(c, len(new))
        finally:
            await c.stop()
        verify_only_new(old, new, recs)
        verify_roundtrip(new, recs, start_offsets=positions)

    run(go())


def test_list_offsets(bs):
    async def go():
        async with Admin(bs) as a:
            topic = await new_topic(a, "offsets")
        msgs = make_messages("aio-lo", n=45)
        await produce(bs, topic, msgs)
        by_ts = expected_offsets_by_ts(await consume(bs, topic, range(3), len(msgs)))
        tps = [TopicPartition(topic, p) for p in range(3)]
        c = AIOKafkaConsumer(bootstrap_servers=bs)
        await c.start()
        try:
            assert await c.beginning_offsets(tps) == {tp: 0 for tp in tps}
            assert await c.end_offsets(tps) == {tp: len(by_ts.get(tp.partition, [])) for tp in tps}
            probes = {p: e[len(e) // 2] for p, e in by_ts.items()}
            got = await c.offsets_for_times({TopicPartition(topic, p): ts for p, (ts, _) in probes.items()})
            assert {tp.partition: (o.offset, o.timestamp) for tp, o in got.items()} == {p: (off, ts) for p, (ts, off) in probes.items()}
            future = max(m.ts for m in msgs) + 10_000
            assert all(v is None for v in (await c.offsets_for_times({tp: future for tp in tps})).values())
        finally:
            await c.stop()

    run(go())


def test_delete_records(bs):
    async def go():
        async with Admin(bs) as a:
            topic = await new_topic(a, "delrec", partitions=1)
            await produce(bs, topic, make_messages("aio-dr", n=10))
            tp = TopicPartition(topic, 0)
            assert await a.delete_records({tp: RecordsToDelete(5)}) == {tp: 5}
        assert [r.offset for r in await consume(bs, topic, [0], 5)] == [5, 6, 7, 8, 9]

    run(go())


def test_large_message(bs, cluster):
    async def go():
        async with Admin(bs) as a:
            topic = await new_topic(a, "large", partitions=1)
        sent = [large_message("aio-none"), large_message("aio-zstd")]
        acks = await produce(bs, topic, sent[:1]) + await produce(bs, topic, sent[1:], compression_type="zstd")
        assert acks == [(0, 0), (0, 1)]
        recs = await consume(bs, topic, [0], 2)
        assert [(r.key, r.value) for r in recs] == [(m.key, m.value) for m in sent]
        assert [b.codec for b in stored_batches(cluster, topic, 0)] == [0, 4]

    run(go())


def test_null_key_and_value(bs):
    async def go():
        async with Admin(bs) as a:
            topic = await new_topic(a, "nulls", partitions=1)
        msgs = [
            Msg(key=None, value=b"aio-no-key", headers=[("h", None)], ts=1_700_000_000_000),
            Msg(key=b"aio-tombstone", value=None, headers=[], ts=1_700_000_000_001),
            Msg(key=b"", value=b"", headers=[("", b"")], ts=1_700_000_000_002),
        ]
        await produce(bs, topic, msgs, partition=0)
        recs = await consume(bs, topic, [0], 3)
        assert [(r.key, r.value, r.headers, r.ts, r.ts_type) for r in recs] == [(m.key, m.value, m.headers, m.ts, 0) for m in msgs]

    run(go())
