#!/usr/bin/env python3
"""Transactions on gregor, measured with confluent-kafka (librdkafka) on a 3-broker
cluster (RF 3, __transaction_state replicated): transactions per second and records per
second with 1, 10 and 100 records per transaction next to the idempotent producer on the
same topic in the same run, and the end-to-end latency a read_committed consumer adds
over a read_uncommitted one reading the same transactional stream.

    python3 benches/txn_bench.py [--seconds 10]

Nothing here asserts a timing: the numbers are for the closing note.
"""

import argparse
import sys
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "compat-tests"))
from gregor_cluster import GregorCluster  # noqa: E402

from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

VALUE = b"x" * 100


def create(bs, topic, partitions=6):
    admin = AdminClient({"bootstrap.servers": bs})  # kept alive until the result is in
    admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=3)])[topic].result(30)


def transactional(bs, topic, per_txn, seconds):
    p = Producer({"bootstrap.servers": bs, "transactional.id": f"bench-{uuid.uuid4().hex[:8]}",
                  "linger.ms": 1})
    p.init_transactions(30)
    txns = records = 0
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        p.begin_transaction()
        for _ in range(per_txn):
            p.produce(topic, VALUE)
        p.commit_transaction(30)
        txns += 1
        records += per_txn
    elapsed = time.monotonic() - start
    return txns / elapsed, records / elapsed


def idempotent(bs, topic, seconds):
    p = Producer({"bootstrap.servers": bs, "enable.idempotence": True, "linger.ms": 1})
    records = 0
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        for _ in range(1000):
            while True:
                try:
                    p.produce(topic, VALUE)
                    break
                except BufferError:
                    p.poll(0.01)
        records += 1000
        p.poll(0)
    p.flush(60)
    return records / (time.monotonic() - start)


def latency(bs, topic, seconds, per_txn=10, rate_txn=50):
    """A transactional producer stamps each record with its send time; one consumer per
    isolation level reads the same stream; latency = receive time - send time."""
    lat = {"read_committed": [], "read_uncommitted": []}
    stop = threading.Event()
    ready = []

    def consume(isolation):
        c = Consumer({"bootstrap.servers": bs, "group.id": f"lat-{isolation}-{uuid.uuid4().hex[:6]}",
                      "isolation.level": isolation, "enable.auto.commit": False,
                      "fetch.wait.max.ms": 10, "auto.offset.reset": "latest"})
        md = c.list_topics(topic, timeout=10)
        c.assign([TopicPartition(topic, p, -1) for p in md.topics[topic].partitions])
        c.poll(0.5)
        ready.append(isolation)
        while not stop.is_set():
            m = c.poll(0.1)
            if m is None or m.error():
                continue
            sent = float(m.value().decode())
            lat[isolation].append(time.time() - sent)
        c.close()

    threads = [threading.Thread(target=consume, args=(i,)) for i in lat]
    for t in threads:
        t.start()
    while len(ready) < 2:
        time.sleep(0.1)
    time.sleep(1)
    p = Producer({"bootstrap.servers": bs, "transactional.id": f"lat-{uuid.uuid4().hex[:8]}", "linger.ms": 0})
    p.init_transactions(30)
    start = time.monotonic()
    n = 0
    while time.monotonic() - start < seconds:
        p.begin_transaction()
        for _ in range(per_txn):
            p.produce(topic, repr(time.time()).encode())
        p.commit_transaction(30)
        n += 1
        time.sleep(max(0.0, start + n / rate_txn - time.monotonic()))
    time.sleep(2)
    stop.set()
    for t in threads:
        t.join()
    out = {}
    for k, v in lat.items():
        v.sort()
        q = lambda x: v[min(len(v) - 1, int(len(v) * x))] * 1000 if v else float("nan")
        out[k] = (q(0.5), q(0.99), len(v))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10)
    args = ap.parse_args()
    rows = []
    with GregorCluster(brokers=3, broker_config={"transaction.state.log.num.partitions": "6"}) as c:
        bs = c.bootstrap
        create(bs, "idem")
        rows.append(("idempotent producer", "-", f"{idempotent(bs, 'idem', args.seconds):,.0f} rec/s"))
        for n in (1, 10, 100):
            topic = f"txn-{n}"
            create(bs, topic)
            tps, rps = transactional(bs, topic, n, args.seconds)
            rows.append((f"transactions of {n}", f"{tps:,.0f} txn/s", f"{rps:,.0f} rec/s"))
        create(bs, "lat")
        lat = latency(bs, "lat", args.seconds)
    print("\n| workload | transactions | records |\n|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    print("\n| consumer | p50 ms | p99 ms | records |\n|---|---|---|---|")
    for k, (p50, p99, n) in lat.items():
        print(f"| {k} | {p50:.1f} | {p99:.1f} | {n} |")


if __name__ == "__main__":
    main()
