"""Kafka's operations tools' Admin calls, through the Java Admin client 3.9, against a
real 4-broker gregor cluster: a partition reassigned from brokers {1,2,3} to {2,3,4}
under a running producer (no failed delivery, every record readable from the new
replicas alone, the old replica's log deleted), preferred and unclean leader elections,
log dirs whose sizes match the disk, producer state, and consumer-group offset resets."""

import json
import queue
import time

import pytest
from confluent_kafka import Consumer, TopicPartition

from builds import java_cmd
from checks import Driver
from gregor_cluster import GregorCluster, wait_until

TOPIC = "moving"


@pytest.fixture(scope="module")
def cluster4():
    with GregorCluster(brokers=4, broker_config={"offsets.topic.num.partitions": "3"}) as c:
        yield c


@pytest.fixture(scope="module")
def ops(cluster4):
    d = Driver(java_cmd("OpsTool", cluster4.bootstrap))
    call(d, "create-topic-assigned", TOPIC, "1,2,3")
    yield lambda *args, **kw: call(d, *args, **kw)
    d.close()


def call(d, *args, expect_error=None):
    d.send(["\t".join(map(str, args))])
    line = d.next_line(time.time() + 120)
    assert line is not None, f"OpsTool exited; stderr:\n{d.err_tail()}"
    out = json.loads(line)
    if expect_error:
        assert expect_error in out.get("error", ""), f"{args}: expected {expect_error}, got {out}"
    else:
        assert "error" not in out, f"OpsTool {args} failed: {out}"
    return out


def partition(ops, topic=TOPIC):
    return ops("describe-topic", topic)["partitions"][0]


def test_reassignment_under_a_running_producer(cluster4, ops):
    producer = Driver(java_cmd("SteadyProducer", "--bootstrap-server", cluster4.bootstrap, "--topic", TOPIC,
                               "--prefix", "r", "--interval-ms", 5))
    acks, errors = {}, []

    def drain(final=False):
        """Takes the producer's ACK/ERR lines so far (all of them until exit if final)."""
        while True:
            try:
                line = producer.lines.get(timeout=60) if final else producer.lines.get_nowait()
            except queue.Empty:
                return
            if line is None:
                return
            words = line.split()
            if words[0] == "ACK":
                acks[words[1]] = int(words[3])
            elif words[0] == "ERR":
                errors.append(line)

    wait_until(lambda: drain() or len(acks) >= 200, 60, "200 acknowledged records before the move")
    ops("reassign", TOPIC, 0, "2,3,4")
    seen_in_progress = []

    def finished():
        drain()
        ongoing = [r for r in ops("list-reassignments")["reassignments"] if r["topic"] == TOPIC]
        if ongoing:
            seen_in_progress.append(ongoing[0])
        return not ongoing

    wait_until(finished, 90, "the reassignment to complete")
    for r in seen_in_progress:
        assert (r["adding"], r["removing"]) == ([4], [1]) and sorted(r["replicas"]) == [1, 2, 3, 4], r
    # The Admin asks the least loaded broker, whose metadata may trail the controller's by
    # a watch notification (as in Kafka, where UpdateMetadata is asynchronous).
    wait_until(lambda: partition(ops)["replicas"] == [2, 3, 4], 10, "every broker's metadata to show {2,3,4}")
    p = partition(ops)
    assert p["replicas"] == [2, 3, 4] and p["leader"] in (2, 3, 4), p
    wait_until(lambda: sorted(partition(ops)["isr"]) == [2, 3, 4], 60, "ISR {2,3,4}")
    wait_until(lambda: drain() or len(acks) >= 600, 60, "records after the move")
    producer.send(["stop"], close=True)
    drain(final=True)
    assert producer.proc.wait(60) == 0 and not errors, errors[:5]
    # The old replica's log is deleted from broker 1's disk.
    wait_until(lambda: not (cluster4.dir / "broker-1" / f"{TOPIC}-0").exists(), 60, "broker 1 to delete its replica")
    # Log dirs: every new replica holds what the disk holds, the same bytes on each.
    sizes = {}
    for b in (2, 3, 4):
        dirs = ops("log-dirs", b)["brokers"][str(b)]
        (path, d), = dirs.items()
        assert d["error"] is None and d["total"] > 0 and 0 < d["usable"] <= d["total"]
        on_disk = sum(f.stat().st_size for f in (cluster4.dir / f"broker-{b}" / f"{TOPIC}-0").glob("*.log"))
        wait_until(lambda: ops("log-dirs", b)["brokers"][str(b)][path]["replicas"][f"{TOPIC}-0"]["size"] == on_disk,
                   30, f"broker {b}'s reported size to match the disk")
        sizes[b] = on_disk
    assert len(set(sizes.values())) == 1 and sizes[4] > 0, sizes
    assert f"{TOPIC}-0" not in json.dumps(ops("log-dirs", 1))
    # Every acknowledged record is readable from broker 4's copy alone.
    cluster4.stop(2)
    cluster4.stop(3)
    wait_until(lambda: partition(ops)["leader"] == 4, 60, "broker 4 to lead")
    c = Consumer({"bootstrap.servers": cluster4.addr(4), "group.id": "reassign-check", "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    c.assign([TopicPartition(TOPIC, 0, 0)])
    read = {}
    deadline = time.time() + 60
    while len(read) < len(acks) and time.time() < deadline:
        m = c.poll(1)
        if m is not None and m.error() is None:
            read[m.value().decode()] = m.offset()
    c.close()
    missing = [v for v in acks if read.get(v) != acks[v]]
    assert not missing, f"{len(missing)} acknowledged records not on broker 4, e.g. {missing[:3]}"
    cluster4.start(2)
    cluster4.start(3)


def test_reassignment_errors_are_kafkas(ops):
    ops("reassign", TOPIC, 0, "2,9", expect_error="InvalidReplicaAssignmentException")
    ops("reassign", TOPIC, 0, "2,2", expect_error="InvalidReplicaAssignmentException")
    ops("reassign", "no-such-topic", 0, "1", expect_error="UnknownTopicOrPartitionException")
    ops("cancel-reassign", TOPIC, 0, expect_error="NoReassignmentInProgressException")


def test_preferred_and_unclean_elections(cluster4, ops):
    # After the restarts broker 4 leads; the preferred replica is 2.
    wait_until(lambda: sorted(partition(ops)["isr"]) == [2, 3, 4], 60, "ISR {2,3,4} again")
    if partition(ops)["leader"] == 2:
        pytest.skip("broker 2 already leads again")
    out = ops("elect", "preferred", TOPIC, 0)
    assert out["partitions"] == {f"{TOPIC}-0": None}, out
    # The controller answers once its own metadata shows the new leader; the broker the
    # Admin's describeTopics asks may see it a watch notification later (Kafka's own
    # integration tests wait for the leader the same way: TestUtils.assertLeader).
    wait_until(lambda: partition(ops)["leader"] == 2, 10, "every broker's metadata to show leader 2")
    out = ops("elect", "preferred", TOPIC, 0)
    assert out["partitions"][f"{TOPIC}-0"] == "ElectionNotNeededException", out
    # Electing everything answers only partitions that needed an election.
    out = ops("elect", "preferred", "all")
    assert all(v is None for v in out["partitions"].values()), out
    out = ops("elect", "unclean", TOPIC, 0)
    assert out["partitions"][f"{TOPIC}-0"] == "ElectionNotNeededException", out


def test_describe_producers_shows_the_idempotent_producer(ops):
    producers = ops("describe-producers", TOPIC, 0)["producers"]
    assert producers, "the SteadyProducer (idempotent) left producer state"
    assert all(p["producerId"] >= 0 and p["lastSequence"] >= 0 and p["txnStart"] == -1 for p in producers)


def test_consumer_group_offset_reset_and_delete(ops):
    group = "ops-group"
    ops("reset-offsets", group, TOPIC, 0, 5)
    assert ops("group-offsets", group)["offsets"] == {f"{TOPIC}-0": 5}
    ops("reset-offsets", group, TOPIC, 0, 2)
    assert ops("group-offsets", group)["offsets"] == {f"{TOPIC}-0": 2}
    ops("delete-offsets", group, TOPIC, 0)
    assert ops("group-offsets", group)["offsets"] == {}


def test_dynamic_broker_configs_through_the_java_admin(cluster4, ops):
    """kafka-configs --entity-type brokers (and kafka-reassign-partitions --throttle) set
    the replication throttles with IncrementalAlterConfigs on a broker resource: per
    broker, or for every broker through the default; DescribeConfigs reports each with
    Kafka's source; a static key is refused, as Kafka refuses it."""
    rate = "leader.replication.throttled.rate"
    follower = "follower.replication.throttled.rate"
    unlimited = "9223372036854775807"
    assert ops("describe-broker-config", 2, rate) == {
        "value": unlimited, "source": "DEFAULT_CONFIG", "read_only": False,
        "synonyms": [f"DEFAULT_CONFIG:{rate}={unlimited}"]}
    ops("alter-broker-config", 2, "SET", rate, 1048576)
    ops("alter-broker-config", "default", "SET", rate, 4194304)
    ops("alter-broker-config", "default", "SET", follower, 2097152)
    wait_until(lambda: len(ops("describe-broker-config", 2, rate)["synonyms"]) == 3,
               30, "broker 2 to apply its dynamic configs")
    # The value in force first, then every level below it, as Kafka lists synonyms.
    assert ops("describe-broker-config", 2, rate) == {
        "value": "1048576", "source": "DYNAMIC_BROKER_CONFIG", "read_only": False,
        "synonyms": [f"DYNAMIC_BROKER_CONFIG:{rate}=1048576", f"DYNAMIC_DEFAULT_BROKER_CONFIG:{rate}=4194304",
                     f"DEFAULT_CONFIG:{rate}={unlimited}"]}
    ops("alter-broker-config", "default", "DELETE", rate)
    wait_until(lambda: ops("describe-broker-config", 3, follower).get("source") == "DYNAMIC_DEFAULT_BROKER_CONFIG",
               30, "broker 3 to apply the default")
    assert ops("describe-broker-config", 3, follower)["value"] == "2097152"
    # Broker 2's own value never reaches broker 3 (the default rate's deletion may still be
    # on its way to it).
    wait_until(lambda: ops("describe-broker-config", 3, rate)["source"] == "DEFAULT_CONFIG", 30,
               "broker 3 to see only the default rate")
    ops("alter-broker-config", 2, "SET", "log.retention.hours", 1,
        expect_error="Cannot update these configs dynamically")
    assert ops("describe-broker-config", 2, "log.retention.hours")["read_only"] is True
    ops("alter-broker-config", 2, "DELETE", rate)
    ops("alter-broker-config", "default", "DELETE", follower)
    wait_until(lambda: ops("describe-broker-config", 2, rate)["source"] == "DEFAULT_CONFIG"
               and ops("describe-broker-config", 3, follower)["source"] == "DEFAULT_CONFIG",
               30, "the dynamic configs to be gone")
