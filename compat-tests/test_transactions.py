"""Transactions (exactly-once) with real clients against a 3-broker gregor cluster, RF 3:
the Java client 3.9.1, confluent-kafka (librdkafka), kafka-python, aiokafka and kafkajs.

For each client:
- commit one transaction, abort one, commit another: a read_committed reader sees exactly
  the committed records in order, read_uncommitted sees all, each transaction is followed
  by exactly one control record (COMMIT/ABORT, read from the segment files), the client's
  own read_committed consumer agrees, and no partition's LSO stays behind;
- consume-transform-produce with sendOffsetsToTransaction: an aborted round moves neither
  the group's offsets nor the output, a committed one moves both;
- fencing: a second producer with the same transactional.id fences the first
  (PRODUCER_FENCED), whose open transaction is aborted.

The readers are confluent-kafka (librdkafka) consumers with explicit assignment; the
on-disk check parses Kafka's batch format directly."""

import asyncio
import json
import struct
import subprocess
import time
import uuid

import pytest

from builds import java_cmd, node_driver
from checks import Driver, wait_for

CLIENTS = ["java", "confluent", "kafka-python", "aiokafka", "kafkajs"]
RF = 3


@pytest.fixture(scope="module")
def c(cluster3):
    return cluster3


def new_topic(c, prefix, partitions=2):
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = f"txn-{prefix}-{uuid.uuid4().hex[:6]}"
    admin = AdminClient({"bootstrap.servers": c.bootstrap})
    admin.create_topics([NewTopic(topic, partitions, RF)])[topic].result(30)
    return topic


# ---------------------------------------------------------------- readers


def read(c, topic, isolation, expect, partitions=2, timeout=30):
    """(partition, offset, value) of every record a librdkafka consumer with
    `isolation` reads from the beginning, waiting until `expect` arrived (then a little
    longer, so extra records would show)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": c.bootstrap,
            "group.id": f"reader-{uuid.uuid4().hex[:6]}",
            "isolation.level": isolation,
            "enable.auto.commit": False,
            "enable.partition.eof": False,
        }
    )
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    got = []
    deadline = time.time() + timeout
    settle = None
    while time.time() < deadline:
        m = consumer.poll(0.2)
        if m is not None and m.error() is None:
            got.append((m.partition(), m.offset(), m.value().decode()))
        if len(got) >= expect:
            settle = settle or time.time() + 1.0
            if time.time() > settle:
                break
    consumer.close()
    return sorted(got)


def values(records, partition):
    return [v for p, _, v in sorted(records) if p == partition]


def end_offsets(c, topic, partitions=2):
    """(LSO, HW) per partition through ListOffsets (kafka-python: read_committed asks for
    the last stable offset, read_uncommitted for the high watermark)."""
    from kafka import KafkaConsumer, TopicPartition as TP

    tps = [TP(topic, p) for p in range(partitions)]
    out = {}
    for iso in ("read_committed", "read_uncommitted"):
        k = KafkaConsumer(bootstrap_servers=c.bootstrap, isolation_level=iso)
        out[iso] = k.end_offsets(tps)
        k.close()
    return {p: (out["read_committed"][TP(topic, p)], out["read_uncommitted"][TP(topic, p)]) for p in range(partitions)}


def batches_on_disk(c, topic, partition):
    """The partition's batches as stored by a replica (all replicas hold the same bytes):
    ("data", base, last, producer id) or ("COMMIT"/"ABORT", offset, producer id, epoch)."""
    for b in c.ports:
        d = c.dir / f"broker-{b}" / f"{topic}-{partition}"
        if d.is_dir():
            break
    else:
        raise AssertionError(f"no replica of {topic}-{partition}")
    out = []
    for seg in sorted(d.glob("*.log")):
        data = seg.read_bytes()
        pos = 0
        while pos + 61 <= len(data):
            base, length = struct.unpack_from(">qi", data, pos)
            if length <= 0 or pos + 12 + length > len(data):
                break
            attrs, last_delta = struct.unpack_from(">hi", data, pos + 21)
            pid, epoch = struct.unpack_from(">qh", data, pos + 43)
            if attrs & 0x20:
                # One control record: length varint, attributes, ts delta, offset delta,
                # key length varint (4 -> 8), key {version i16, type i16}.
                body = data[pos + 61 : pos + 12 + length]
                i = 0
                for _ in range(4):  # length, attributes, timestamp delta, offset delta
                    while body[i] & 0x80:
                        i += 1
                    i += 1
                assert body[i] == 8, "control key of 4 bytes"
                kind = struct.unpack_from(">h", body, i + 3)[0]
                out.append(({0: "ABORT", 1: "COMMIT"}[kind], base, pid, epoch))
            else:
                assert attrs & 0x10, "every batch of these topics is transactional"
                out.append(("data", base, base + last_delta, pid))
            pos += 12 + length
    return out


def markers_follow_each_transaction(c, topic, partition, expected):
    """The partition holds transactions of one or more data batches each followed by one
    marker, of the kinds `expected`; the markers' offsets directly follow their data."""
    seq = batches_on_disk(c, topic, partition)
    kinds = [b[0] for b in seq if b[0] != "data"]
    assert kinds == expected, seq
    prev_data = False
    for b in seq:
        if b[0] == "data":
            prev_data = True
        else:
            assert prev_data, f"a marker without data before it: {seq}"
            prev_data = False
    return seq


def assert_stable(c, topic, partitions=2):
    """No partition's LSO stays behind its high watermark once everything is decided."""
    wait_for(
        lambda: all(lso == hw for lso, hw in end_offsets(c, topic, partitions).values()),
        30,
        f"LSO of {topic} to reach the high watermark",
    )


# ---------------------------------------------------------------- clients


def java_run(mode, *args):
    lines = Driver(java_cmd("Transactions", mode, *args)).all_lines(timeout=180)
    assert any(l.startswith(f"OK {mode}") for l in lines), lines
    return lines


def node_run(mode, *args):
    node = node_driver()
    script = node[1].replace("driver.js", "txn.js")
    r = subprocess.run([node[0], script, mode, *map(str, args)], capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-2000:])
    return json.loads(r.stdout.strip().splitlines()[-1])


def cac(client, c, topic, txn_id, tag):
    bs = c.bootstrap
    plan = [("c1", True), ("a", False), ("c2", True)]
    if client == "java":
        java_run("cac", "--bootstrap-server", bs, "--topic", topic, "--txn-id", txn_id, "--tag", tag)
    elif client == "kafkajs":
        assert node_run("cac", "--brokers", bs, "--topic", topic, "--txn-id", txn_id, "--tag", tag) == {"ok": "cac"}
    elif client == "confluent":
        from confluent_kafka import Producer

        p = Producer({"bootstrap.servers": bs, "transactional.id": txn_id})
        p.init_transactions(60)
        for kind, commit in plan:
            p.begin_transaction()
            for i in range(3):
                p.produce(topic, value=f"{tag}-{kind}-{i}".encode(), partition=i % 2)
            p.flush(30)  # librdkafka drops unsent records on abort
            (p.commit_transaction if commit else p.abort_transaction)(60)
    elif client == "kafka-python":
        from kafka import KafkaProducer

        p = KafkaProducer(bootstrap_servers=bs, transactional_id=txn_id)
        p.init_transactions()
        for kind, commit in plan:
            p.begin_transaction()
            for i in range(3):
                p.send(topic, f"{tag}-{kind}-{i}".encode(), partition=i % 2)
            p.flush()
            p.commit_transaction() if commit else p.abort_transaction()
        p.close()
    elif client == "aiokafka":
        import aiokafka

        async def run():
            p = aiokafka.AIOKafkaProducer(bootstrap_servers=bs, transactional_id=txn_id)
            await p.start()
            try:
                for kind, commit in plan:
                    await p.begin_transaction()
                    for i in range(3):
                        await p.send_and_wait(topic, f"{tag}-{kind}-{i}".encode(), partition=i % 2)
                    await (p.commit_transaction() if commit else p.abort_transaction())
            finally:
                await p.stop()

        asyncio.run(run())


def own_read_committed(client, c, topic, expect):
    """The client's own read_committed consumer: the values it returns."""
    bs = c.bootstrap
    if client == "java":
        d = Driver(
            java_cmd(
                "ConsoleConsumer", "--bootstrap-server", bs, "--topic", topic, "--from-beginning",
                "--max-messages", expect, "--timeout-ms", 5000,
                "--consumer-property", "isolation.level=read_committed",
            )
        )
        lines = d.all_lines(timeout=120)
        from checks import decode_rec

        return sorted(decode_rec(l).value.decode() for l in lines if l.startswith("REC\t"))
    if client == "kafkajs":
        out = node_run("read", "--brokers", bs, "--topic", topic, "--group", f"r-{uuid.uuid4().hex[:6]}", "--count", expect)
        return sorted(r["value"] for r in out["records"])
    if client == "kafka-python":
        from kafka import KafkaConsumer, TopicPartition as TP

        k = KafkaConsumer(bootstrap_servers=bs, isolation_level="read_committed", auto_offset_reset="earliest", consumer_timeout_ms=3000)
        k.assign([TP(topic, 0), TP(topic, 1)])
        got = sorted(m.value.decode() for m in k)
        k.close()
        return got
    if client == "aiokafka":
        import aiokafka

        async def run():
            k = aiokafka.AIOKafkaConsumer(bootstrap_servers=bs, isolation_level="read_committed", auto_offset_reset="earliest")
            await k.start()
            k.assign([aiokafka.TopicPartition(topic, 0), aiokafka.TopicPartition(topic, 1)])
            got = []
            deadline = time.time() + 20
            while time.time() < deadline:
                batch = await k.getmany(timeout_ms=500)
                got += [m.value.decode() for ms in batch.values() for m in ms]
                if len(got) >= expect:
                    got += [m.value.decode() for ms in (await k.getmany(timeout_ms=500)).values() for m in ms]
                    break
            await k.stop()
            return sorted(got)

        return asyncio.run(run())
    return sorted(v for _, _, v in read(c, topic, "read_committed", expect))


@pytest.mark.parametrize("client", CLIENTS)
def test_commit_abort_commit(c, client):
    topic = new_topic(c, "cac")
    tag = client
    cac(client, c, topic, f"txn-cac-{client}-{uuid.uuid4().hex[:6]}", tag)
    committed = read(c, topic, "read_committed", 6)
    assert values(committed, 0) == [f"{tag}-c1-0", f"{tag}-c1-2", f"{tag}-c2-0", f"{tag}-c2-2"]
    assert values(committed, 1) == [f"{tag}-c1-1", f"{tag}-c2-1"]
    everything = read(c, topic, "read_uncommitted", 9)
    assert values(everything, 0) == [f"{tag}-{k}-{i}" for k in ("c1", "a", "c2") for i in (0, 2)]
    assert values(everything, 1) == [f"{tag}-{k}-1" for k in ("c1", "a", "c2")]
    for p in (0, 1):
        markers_follow_each_transaction(c, topic, p, ["COMMIT", "ABORT", "COMMIT"])
    assert own_read_committed(client, c, topic, 6) == sorted(v for _, _, v in committed)
    assert_stable(c, topic)


# ---------------------------------------------------------------- consume-transform-produce


def fill_input(c, topic, n=6):
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": c.bootstrap})
    for i in range(n):
        p.produce(topic, value=f"in-{i}".encode(), partition=i % 2)
    assert p.flush(30) == 0


def committed_offsets(c, topic, group):
    from kafka import KafkaConsumer, TopicPartition as TP

    k = KafkaConsumer(bootstrap_servers=c.bootstrap, group_id=group, enable_auto_commit=False)
    out = {p: k.committed(TP(topic, p)) for p in (0, 1)}
    k.close()
    return out


def ctp(client, c, src, dst, group, txn_id, commit, n=6):
    bs = c.bootstrap
    if client == "java":
        java_run(
            "ctp", "--bootstrap-server", bs, "--input", src, "--output", dst, "--group", group,
            "--txn-id", txn_id, "--count", n, "--commit", str(commit).lower(),
        )
    elif client == "kafkajs":
        out = node_run(
            "ctp", "--brokers", bs, "--input", src, "--output", dst, "--group", group,
            "--txn-id", txn_id, "--count", n, "--commit", str(commit).lower(),
        )
        assert out == {"ok": "ctp", "consumed": n}, out
    elif client == "confluent":
        from confluent_kafka import Consumer, Producer, TopicPartition

        consumer = Consumer(
            {
                "bootstrap.servers": bs, "group.id": group, "isolation.level": "read_committed",
                "enable.auto.commit": False, "auto.offset.reset": "earliest",
            }
        )
        consumer.subscribe([src])
        p = Producer({"bootstrap.servers": bs, "transactional.id": txn_id})
        p.init_transactions(60)
        got = []
        deadline = time.time() + 60
        while len(got) < n and time.time() < deadline:
            m = consumer.poll(0.2)
            if m is not None and m.error() is None:
                got.append(m)
        assert len(got) == n
        p.begin_transaction()
        for m in got:
            p.produce(dst, value=m.value().upper(), partition=m.partition())
        offsets = {}
        for m in got:
            offsets[m.partition()] = max(offsets.get(m.partition(), 0), m.offset() + 1)
        p.send_offsets_to_transaction(
            [TopicPartition(src, part, off) for part, off in offsets.items()], consumer.consumer_group_metadata(), 60
        )
        p.flush(30)
        (p.commit_transaction if commit else p.abort_transaction)(60)
        consumer.close()
    elif client == "kafka-python":
        from kafka import KafkaConsumer, KafkaProducer, TopicPartition as TP
        from kafka.structs import OffsetAndMetadata

        consumer = KafkaConsumer(
            src, bootstrap_servers=bs, group_id=group, isolation_level="read_committed",
            enable_auto_commit=False, auto_offset_reset="earliest",
        )
        p = KafkaProducer(bootstrap_servers=bs, transactional_id=txn_id)
        p.init_transactions()
        got = []
        deadline = time.time() + 60
        while len(got) < n and time.time() < deadline:
            for ms in consumer.poll(timeout_ms=200, max_records=n - len(got)).values():
                got += ms
        assert len(got) == n
        p.begin_transaction()
        offsets = {}
        for m in got:
            p.send(dst, m.value.upper(), partition=m.partition)
            tp = TP(src, m.partition)
            offsets[tp] = OffsetAndMetadata(max(offsets[tp].offset if tp in offsets else 0, m.offset + 1), "", -1)
        p.send_offsets_to_transaction(offsets, consumer.group_metadata())
        p.flush()
        p.commit_transaction() if commit else p.abort_transaction()
        p.close()
        consumer.close()
    elif client == "aiokafka":
        import aiokafka

        async def run():
            consumer = aiokafka.AIOKafkaConsumer(
                src, bootstrap_servers=bs, group_id=group, isolation_level="read_committed",
                enable_auto_commit=False, auto_offset_reset="earliest",
            )
            p = aiokafka.AIOKafkaProducer(bootstrap_servers=bs, transactional_id=txn_id)
            await consumer.start()
            await p.start()
            try:
                got = []
                deadline = time.time() + 60
                while len(got) < n and time.time() < deadline:
                    for ms in (await consumer.getmany(timeout_ms=200, max_records=n - len(got))).values():
                        got += ms
                assert len(got) == n
                await p.begin_transaction()
                offsets = {}
                for m in got:
                    await p.send_and_wait(dst, m.value.upper(), partition=m.partition)
                    tp = aiokafka.TopicPartition(src, m.partition)
                    offsets[tp] = max(offsets.get(tp, 0), m.offset + 1)
                await p.send_offsets_to_transaction(offsets, group)
                await (p.commit_transaction() if commit else p.abort_transaction())
            finally:
                await p.stop()
                await consumer.stop()

        asyncio.run(run())


@pytest.mark.parametrize("client", CLIENTS)
def test_consume_transform_produce(c, client):
    src, dst = new_topic(c, "in"), new_topic(c, "out")
    group = f"ctp-{client}-{uuid.uuid4().hex[:6]}"
    txn_id = f"txn-ctp-{client}-{uuid.uuid4().hex[:6]}"
    fill_input(c, src)
    # Aborted: neither the group's offsets nor the output move.
    ctp(client, c, src, dst, group, txn_id, commit=False)
    assert committed_offsets(c, src, group) == {0: None, 1: None}
    assert read(c, dst, "read_committed", 1, timeout=3) == []
    assert len(read(c, dst, "read_uncommitted", 6)) == 6, "the aborted records are in the log"
    # Committed: both move together.
    ctp(client, c, src, dst, group, txn_id, commit=True)
    wait_for(lambda: committed_offsets(c, src, group) == {0: 3, 1: 3}, 30, "the transactional offsets to be committed")
    out = read(c, dst, "read_committed", 6)
    assert sorted(v for _, _, v in out) == sorted(f"IN-{i}" for i in range(6))
    assert_stable(c, dst)


# ---------------------------------------------------------------- fencing


def fence(client, c, topic, txn_id, tag):
    """Returns the error the fenced producer got."""
    bs = c.bootstrap
    if client == "java":
        lines = java_run("fence", "--bootstrap-server", bs, "--topic", topic, "--txn-id", txn_id, "--tag", tag)
        return next(l for l in lines if l.startswith("FENCED")).split()[1]
    if client == "kafkajs":
        return node_run("fence", "--brokers", bs, "--topic", topic, "--txn-id", txn_id, "--tag", tag)["fenced"]
    if client == "confluent":
        from confluent_kafka import KafkaException, Producer

        a = Producer({"bootstrap.servers": bs, "transactional.id": txn_id})
        a.init_transactions(60)
        a.begin_transaction()
        for i in range(3):
            a.produce(topic, value=f"{tag}-zombie-{i}".encode(), partition=i % 2)
        a.flush(30)
        b = Producer({"bootstrap.servers": bs, "transactional.id": txn_id})
        b.init_transactions(60)
        b.begin_transaction()
        for i in range(3):
            b.produce(topic, value=f"{tag}-winner-{i}".encode(), partition=i % 2)
        b.commit_transaction(60)
        try:
            a.commit_transaction(60)
        except KafkaException as e:
            return e.args[0].name()
        return None
    if client == "kafka-python":
        from kafka import KafkaProducer
        from kafka.errors import ProducerFencedError

        a = KafkaProducer(bootstrap_servers=bs, transactional_id=txn_id)
        a.init_transactions()
        a.begin_transaction()
        for i in range(3):
            a.send(topic, f"{tag}-zombie-{i}".encode(), partition=i % 2)
        a.flush()
        b = KafkaProducer(bootstrap_servers=bs, transactional_id=txn_id)
        b.init_transactions()
        b.begin_transaction()
        for i in range(3):
            b.send(topic, f"{tag}-winner-{i}".encode(), partition=i % 2)
        b.commit_transaction()
        b.close()
        try:
            a.commit_transaction()
        except ProducerFencedError as e:
            return type(e).__name__
        finally:
            a.close(timeout=1)
        return None
    if client == "aiokafka":
        import aiokafka
        from aiokafka.errors import ProducerFenced

        async def run():
            a = aiokafka.AIOKafkaProducer(bootstrap_servers=bs, transactional_id=txn_id)
            await a.start()
            await a.begin_transaction()
            for i in range(3):
                await a.send_and_wait(topic, f"{tag}-zombie-{i}".encode(), partition=i % 2)
            b = aiokafka.AIOKafkaProducer(bootstrap_servers=bs, transactional_id=txn_id)
            await b.start()
            async with b.transaction():
                for i in range(3):
                    await b.send_and_wait(topic, f"{tag}-winner-{i}".encode(), partition=i % 2)
            await b.stop()
            try:
                await a.commit_transaction()
            except ProducerFenced as e:
                return type(e).__name__
            finally:
                await a.stop()
            return None

        return asyncio.run(run())


FENCED = {
    "java": {"ProducerFencedException"},
    "confluent": {"_FENCED"},
    "kafka-python": {"ProducerFencedError"},
    "aiokafka": {"ProducerFenced"},
    # kafkajs sends EndTxn v0, which reports a fenced producer as INVALID_PRODUCER_EPOCH.
    "kafkajs": {"PRODUCER_FENCED", "INVALID_PRODUCER_EPOCH"},
}


@pytest.mark.parametrize("client", CLIENTS)
def test_a_second_producer_fences_the_first(c, client):
    topic = new_topic(c, "fence")
    tag = client
    error = fence(client, c, topic, f"txn-fence-{client}-{uuid.uuid4().hex[:6]}", tag)
    assert error in FENCED[client], error
    committed = read(c, topic, "read_committed", 3)
    assert sorted(v for _, _, v in committed) == sorted(f"{tag}-winner-{i}" for i in range(3))
    everything = read(c, topic, "read_uncommitted", 6)
    assert sorted(v for _, _, v in everything if "zombie" in v) == sorted(f"{tag}-zombie-{i}" for i in range(3))
    for p in (0, 1):
        seq = markers_follow_each_transaction(c, topic, p, ["ABORT", "COMMIT"])
        zombie_pid = next(b[3] for b in seq if b[0] == "data")
        abort = next(b for b in seq if b[0] == "ABORT")
        assert abort[2] == zombie_pid, "the zombie's transaction is aborted"
    assert_stable(c, topic)


# ---------------------------------------------------------------- gregor transactions


def gregor_cli(*args):
    from gregor_cluster import GREGOR_BIN

    r = subprocess.run([GREGOR_BIN, *map(str, args)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return [l.split() for l in r.stdout.strip().splitlines()]


def test_gregor_transactions_list_and_describe(c):
    """The CLI over ListTransactions / DescribeTransactions, as kafka-transactions.sh
    shows them, while a transaction is open and after it commits."""
    from confluent_kafka import Producer

    topic = new_topic(c, "cli")
    txn_id = f"txn-cli-{uuid.uuid4().hex[:6]}"
    p = Producer({"bootstrap.servers": c.bootstrap, "transactional.id": txn_id})
    p.init_transactions(60)
    p.begin_transaction()
    for i in range(2):
        p.produce(topic, value=b"v", partition=i)
    p.flush(30)
    listed = gregor_cli("transactions", "list", "--bootstrap-server", c.bootstrap, "--state", "Ongoing")
    assert listed[0] == ["TransactionalId", "Coordinator", "ProducerId", "TransactionState"]
    mine = [row for row in listed[1:] if row[0] == txn_id]
    assert len(mine) == 1 and mine[0][3] == "Ongoing", listed
    described = gregor_cli("transactions", "describe", "--transactional-id", txn_id, "--bootstrap-server", c.bootstrap)
    header, row = described
    assert header[:5] == ["CoordinatorId", "TransactionalId", "ProducerId", "ProducerEpoch", "TransactionState"]
    fields = dict(zip(header, row))
    assert fields["CoordinatorId"] == mine[0][1] and fields["ProducerId"] == mine[0][2]
    assert fields["TransactionState"] == "Ongoing"
    assert sorted(fields["TopicPartitions"].split(",")) == [f"{topic}-0", f"{topic}-1"]
    p.commit_transaction(60)
    wait_for(
        lambda: dict(zip(*gregor_cli("transactions", "describe", "--transactional-id", txn_id, "--bootstrap-server", c.bootstrap)))["TransactionState"]
        == "CompleteCommit",
        30,
        "the transaction to complete",
    )
    assert not [r for r in gregor_cli("transactions", "list", "--bootstrap-server", c.bootstrap, "--state", "Ongoing")[1:] if r[0] == txn_id]
