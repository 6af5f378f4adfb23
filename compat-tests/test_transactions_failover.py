"""Transactions under failures, with real processes (3 brokers, RF 3) and librdkafka's
transactional producer:

- the transaction coordinator is killed (kill -9) after EndTxn succeeded and before the
  last marker was written (one partition's only replica is frozen, so its marker cannot
  land): the next coordinator finishes the commit;
- a partition leader is killed mid-transaction: the transaction continues on the new
  leader, commits, and the followers (including the restarted old leader) serve the same
  committed view;
- a producer dies mid-transaction: the coordinator aborts it after transaction.timeout.ms.

Every time: each committed transaction is completely visible to read_committed, each
aborted or timed-out one not at all, and no partition's LSO stays behind its high
watermark."""

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

from checks import wait_for
from gregor_cluster import GregorCluster
from test_transactions import batches_on_disk, end_offsets, gregor_cli, read

BROKER_CONFIG = {
    # A frozen or dead broker leaves the ISRs quickly.
    "replica.lag.time.max.ms": "3000",
    "transaction.abort.timed.out.transaction.cleanup.interval.ms": "500",
}


@pytest.fixture
def c():
    with GregorCluster(brokers=3, broker_config=BROKER_CONFIG) as cluster:
        yield cluster


def java_hash(s):
    h = 0
    for unit in _utf16_units(s):
        h = (31 * h + unit) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def _utf16_units(s):
    b = s.encode("utf-16-be")
    return [int.from_bytes(b[i : i + 2], "big") for i in range(0, len(b), 2)]


def txn_partition(txn_id, partitions=50):
    h = java_hash(txn_id)
    return 0 if h == -(1 << 31) else abs(h) % partitions


def leader_of(c, topic, partition):
    from confluent_kafka.admin import AdminClient

    md = AdminClient({"bootstrap.servers": c.bootstrap}).list_topics(topic, timeout=10)
    return md.topics[topic].partitions[partition].leader


def create_topic(c, assignment):
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = f"txf-{uuid.uuid4().hex[:6]}"
    admin = AdminClient({"bootstrap.servers": c.bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=len(assignment), replica_assignment=assignment)])[topic].result(30)
    for p in range(len(assignment)):
        wait_for(lambda: leader_of(c, topic, p) >= 0, 30, f"a leader for {topic}-{p}")
    return topic


def producer(c, txn_id, **extra):
    from confluent_kafka import Producer

    conf = {"bootstrap.servers": c.bootstrap, "transactional.id": txn_id, "transaction.timeout.ms": 60000}
    conf.update(extra)
    p = Producer(conf)
    p.init_transactions(60)
    return p


def describe_state(c, txn_id, via=None):
    """`gregor transactions describe` (through broker `via`, or any) as a dict ({} while
    the coordinator is unreachable)."""
    bootstrap = c.addr(via) if via else c.bootstrap
    try:
        header, row = gregor_cli("transactions", "describe", "--transactional-id", txn_id, "--bootstrap-server", bootstrap)[:2]
    except AssertionError:
        return {}
    return dict(zip(header, row))


def assert_views(c, topic, partitions, committed, aborted):
    """read_committed shows exactly `committed`, read_uncommitted `committed + aborted`,
    and every LSO reaches its high watermark."""
    wait_for(
        lambda: all(lso == hw for lso, hw in end_offsets(c, topic, partitions).values()),
        60,
        f"the LSO of every {topic} partition to reach its high watermark",
    )
    got = read(c, topic, "read_committed", len(committed), partitions=partitions, timeout=60)
    assert sorted(v for _, _, v in got) == sorted(committed)
    everything = read(c, topic, "read_uncommitted", len(committed) + len(aborted), partitions=partitions, timeout=60)
    assert sorted(v for _, _, v in everything) == sorted(committed + aborted)


def test_coordinator_killed_between_end_txn_and_the_last_marker(c):
    txn_id = f"txf-coord-{uuid.uuid4().hex[:6]}"
    p = producer(c, txn_id)
    coordinator = leader_of(c, "__transaction_state", txn_partition(txn_id))
    frozen, other = [b for b in c.ports if b != coordinator]
    # `lone` lives only on `frozen`: its marker cannot be written while `frozen` is stopped.
    lone = create_topic(c, [[frozen]])
    spread = create_topic(c, [[coordinator, other, frozen], [other, frozen, coordinator]])
    values = {lone: [f"l{i}" for i in range(3)], spread: [f"s{i}" for i in range(6)]}
    p.begin_transaction()
    for topic, vs in values.items():
        for i, v in enumerate(vs):
            p.produce(topic, value=v.encode(), partition=i % (1 if topic == lone else 2))
    assert p.flush(30) == 0
    frozen_pid = c.procs[f"broker-{frozen}"].pid
    os.kill(frozen_pid, signal.SIGSTOP)
    try:
        p.commit_transaction(120)  # EndTxn: PrepareCommit is replicated once `frozen` left the ISR
        state = describe_state(c, txn_id, via=coordinator)
        assert state.get("TransactionState") == "PrepareCommit", state
        assert state["CoordinatorId"] == str(coordinator)
        c.kill(coordinator)
    finally:
        os.kill(frozen_pid, signal.SIGCONT)
    c.start(coordinator, wait=False)
    wait_for(
        lambda: describe_state(c, txn_id).get("TransactionState") == "CompleteCommit",
        90,
        "the new coordinator to complete the commit",
    )
    c.wait_ready(coordinator)
    assert_views(c, lone, 1, committed=values[lone], aborted=[])
    assert_views(c, spread, 2, committed=values[spread], aborted=[])
    # COMMIT markers after the data: one, or two where the first coordinator's marker had
    # landed before it died (the next one resends every marker, as Kafka's does).
    for topic, parts in ((lone, 1), (spread, 2)):
        for part in range(parts):
            kinds = [b[0] for b in batches_on_disk(c, topic, part)]
            assert kinds[0] == "data" and set(kinds[kinds.index("COMMIT"):]) == {"COMMIT"}, kinds
            assert 1 <= kinds.count("COMMIT") <= 2, kinds
    # The producer goes on with a new transaction.
    p.begin_transaction()
    p.produce(lone, value=b"after", partition=0)
    p.commit_transaction(60)
    assert_views(c, lone, 1, committed=values[lone] + ["after"], aborted=[])


def test_partition_leader_killed_mid_transaction(c):
    topic = create_topic(c, [[1, 2, 3], [2, 3, 1]])
    txn_id = f"txf-leader-{uuid.uuid4().hex[:6]}"
    p = producer(c, txn_id)
    leader = leader_of(c, topic, 0)
    p.begin_transaction()
    first = [f"a{i}" for i in range(4)]
    for i, v in enumerate(first):
        p.produce(topic, value=v.encode(), partition=i % 2)
    assert p.flush(30) == 0
    c.kill(leader)
    wait_for(lambda: leader_of(c, topic, 0) not in (-1, leader), 60, "a new leader")
    second = [f"b{i}" for i in range(4)]
    for i, v in enumerate(second):
        p.produce(topic, value=v.encode(), partition=i % 2)
    assert p.flush(60) == 0
    p.commit_transaction(60)
    # An aborted transaction next to it.
    p.begin_transaction()
    dropped = [f"x{i}" for i in range(2)]
    for i, v in enumerate(dropped):
        p.produce(topic, value=v.encode(), partition=i % 2)
    assert p.flush(30) == 0
    p.abort_transaction(60)
    c.start(leader)
    assert_views(c, topic, 2, committed=first + second, aborted=dropped)
    # The restarted replica caught up, transactions and all: make it serve by killing the
    # current leader, and the views do not change.
    wait_for(
        lambda: all(
            [b[0] for b in batches_on_disk_of(c, leader, topic, part)] == [b[0] for b in batches_on_disk(c, topic, part)]
            for part in (0, 1)
        ),
        60,
        "the restarted replica to catch up",
    )
    current = leader_of(c, topic, 0)
    c.kill(current)
    wait_for(lambda: leader_of(c, topic, 0) not in (-1, current), 60, "another leader")
    assert_views(c, topic, 2, committed=first + second, aborted=dropped)
    c.start(current)


def batches_on_disk_of(c, broker, topic, partition):
    """The batches a given replica holds."""
    d = c.dir / f"broker-{broker}" / f"{topic}-{partition}"
    if not d.is_dir():
        return []
    saved = dict(c.ports)
    try:
        c.ports = {broker: saved[broker]}
        return batches_on_disk(c, topic, partition)
    finally:
        c.ports = saved


ZOMBIE = textwrap.dedent(
    """
    import os, sys
    from confluent_kafka import Producer
    bs, txn_id, topic = sys.argv[1:4]
    p = Producer({"bootstrap.servers": bs, "transactional.id": txn_id, "transaction.timeout.ms": 2000})
    p.init_transactions(60)
    p.begin_transaction()
    for i in range(4):
        p.produce(topic, value=f"zombie-{i}".encode(), partition=i % 2)
    assert p.flush(30) == 0
    print("READY", flush=True)
    os._exit(0)  # dies mid-transaction: no EndTxn
    """
)


def test_a_producer_that_dies_mid_transaction_is_aborted_after_its_timeout(c):
    topic = create_topic(c, [[1, 2, 3], [2, 3, 1]])
    txn_id = f"txf-timeout-{uuid.uuid4().hex[:6]}"
    r = subprocess.run([sys.executable, "-c", ZOMBIE, c.bootstrap, txn_id, topic], capture_output=True, text=True, timeout=120)
    assert "READY" in r.stdout, r.stderr
    zombie = [f"zombie-{i}" for i in range(4)]
    wait_for(lambda: describe_state(c, txn_id).get("TransactionState") == "CompleteAbort", 60, "the timed-out transaction to be aborted")
    assert_views(c, topic, 2, committed=[], aborted=zombie)
    for part in (0, 1):
        seq = batches_on_disk(c, topic, part)
        zombie_pids = {b[3] for b in seq if b[0] == "data"}
        aborts = [b for b in seq if b[0] == "ABORT"]
        assert len(aborts) == 1 and aborts[0][2] in zombie_pids, seq
    # The next producer with the id starts clean and commits.
    p = producer(c, txn_id)
    p.begin_transaction()
    p.produce(topic, value=b"next", partition=0)
    p.commit_transaction(60)
    assert_views(c, topic, 2, committed=["next"], aborted=zombie)
