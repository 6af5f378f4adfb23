"""Failover with real clients: the official Java producer (default config: acks=all,
idempotent) and a Java group consumer keep running against a 3-broker cluster while
the partition leader, then the controller, then the mini-zookeeper are killed with
kill -9 and restarted. The producer must never see a failed delivery, and the consumer
must end up with every acknowledged record; the log must hold each acknowledged value
exactly once, at the offset it was acknowledged at."""

import collections
import queue
import time

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from builds import java_cmd
from checks import Driver
from gregor_cluster import GregorCluster

TOPIC = "failover"
PARTITIONS = 3


class Clients:
    """The two Java processes and what they have printed so far."""

    def __init__(self, bootstrap):
        self.producer = Driver(java_cmd("SteadyProducer", "--bootstrap-server", bootstrap, "--topic", TOPIC,
                                        "--prefix", "fo", "--interval-ms", 5))
        self.consumer = Driver(java_cmd("SteadyGroupConsumer", "--bootstrap-server", bootstrap, "--topic", TOPIC,
                                        "--group", "failover-readers"))
        self.acks = {}  # value -> (partition, offset)
        self.errors = []
        self.consumed = collections.Counter()
        self.producer_done = self.consumer_done = False

    def drain(self):
        for driver, handle in ((self.producer, self._producer_line), (self.consumer, self._consumer_line)):
            while True:
                try:
                    line = driver.lines.get_nowait()
                except queue.Empty:
                    break
                handle(line)

    def _producer_line(self, line):
        if line is None or line == "DONE":
            self.producer_done = True
            return
        f = line.split("\t")
        if f[0] == "ACK":
            self.acks[f[1]] = (int(f[2]), int(f[3]))
        elif f[0] == "ERR":
            self.errors.append(line)

    def _consumer_line(self, line):
        if line is None or line == "DONE":
            self.consumer_done = True
            return
        f = line.split("\t")
        if f[0] == "REC":
            self.consumed[f[3]] += 1

    def wait(self, cond, timeout, what):
        deadline = time.time() + timeout
        while True:
            self.drain()
            assert not self.errors, f"the producer saw failed deliveries: {self.errors[:3]}"
            if cond():
                return
            if time.time() > deadline:
                raise AssertionError(
                    f"timed out after {timeout}s waiting for {what} ({len(self.acks)} acked, "
                    f"{len(self.consumed)} consumed)\nproducer stderr:\n{self.producer.err_tail()}\n"
                    f"consumer stderr:\n{self.consumer.err_tail()}")
            time.sleep(0.1)

    def more_acks(self, n, what, partition=None):
        """Waits for n more acknowledgements (on `partition`, if given)."""
        def count():
            return sum(1 for p, _ in self.acks.values() if partition is None or p == partition)
        target, start = count() + n, time.time()
        self.wait(lambda: count() >= target, 120, f"{n} more acks {what}")
        print(f"failover: {n} more acks {what} in {time.time() - start:.1f}s")


def admin(c):
    """One admin client per cluster (a future outlives only the client it came from)."""
    if not hasattr(c, "admin_client"):
        c.admin_client = AdminClient({"bootstrap.servers": c.bootstrap})
    return c.admin_client


def partition_state(c):
    md = admin(c).list_topics(TOPIC, timeout=10)
    return len(md.brokers), {p.id: (p.leader, sorted(p.isrs)) for p in md.topics[TOPIC].partitions.values()}


def wait_fully_replicated(c, what):
    def ok():
        try:
            brokers, parts = partition_state(c)
        except Exception:
            return False
        return brokers == 3 and len(parts) == PARTITIONS and all(leader >= 0 and len(isr) == 3 for leader, isr in parts.values())
    deadline = time.time() + 120
    while not ok():
        assert time.time() < deadline, f"not fully replicated {what}: {partition_state(c)}"
        time.sleep(0.2)


def controller_id(c):
    return admin(c).describe_cluster(request_timeout=10).result().controller.id


def read_log(c):
    """Every record of the topic, by partition, straight from the logs (no group)."""
    consumer = Consumer({"bootstrap.servers": c.bootstrap, "group.id": "failover-audit", "enable.auto.commit": False})
    try:
        ends = {p: consumer.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=10)[1] for p in range(PARTITIONS)}
        consumer.assign([TopicPartition(TOPIC, p, 0) for p in range(PARTITIONS)])
        got = collections.defaultdict(list)
        deadline = time.time() + 120
        while any(len(got[p]) < ends[p] for p in range(PARTITIONS)):
            assert time.time() < deadline, f"reading the log: {[(p, len(got[p]), ends[p]) for p in range(PARTITIONS)]}"
            for m in consumer.consume(1000, 0.5):
                assert m.error() is None, m.error()
                got[m.partition()].append((m.offset(), m.value().decode()))
        return got
    finally:
        consumer.close()


def test_java_clients_ride_through_leader_controller_and_zookeeper_failures():
    with GregorCluster(brokers=3, broker_config={"min.insync.replicas": "2"}) as c:
        fs = admin(c).create_topics([NewTopic(TOPIC, PARTITIONS, 3)])
        fs[TOPIC].result(30)
        wait_fully_replicated(c, "after creation")
        clients = Clients(c.bootstrap)
        try:
            clients.wait(lambda: len(clients.acks) >= 200 and clients.consumed, 120, "the clients to start")

            # 1. The leader of partition 0 dies: its partitions move, the producer retries.
            _, parts = partition_state(c)
            leader = parts[0][0]
            c.kill(leader)
            clients.more_acks(100, f"on partition 0 after kill -9 of its leader {leader}", partition=0)
            c.start(leader)
            wait_fully_replicated(c, f"after broker {leader} restarted")
            clients.more_acks(100, "after the old leader rejoined")

            # 2. The controller dies: another broker takes over and keeps the cluster managed.
            controller = controller_id(c)
            c.kill(controller)
            clients.more_acks(300, f"after kill -9 of the controller {controller}")
            c.start(controller)
            wait_fully_replicated(c, f"after the controller {controller} restarted")

            # 3. The mini-zookeeper dies: leaders keep serving; on its return sessions resume.
            c.kill_zookeeper()
            down_at = time.time()
            # Down for longer than a session timeout (6 s): writes go on all along.
            while time.time() - down_at < 2 * c.session_timeout_ms / 1000:
                clients.more_acks(300, "while the mini-zookeeper is down")
            c.start_zookeeper()
            clients.more_acks(300, "after the mini-zookeeper restarted")
            wait_fully_replicated(c, "after the mini-zookeeper restarted")

            clients.producer.send(["stop"])
            clients.wait(lambda: clients.producer_done, 180, "the producer to flush and exit")
            assert clients.producer.proc.wait(30) == 0, clients.producer.err_tail()
            acked = dict(clients.acks)
            assert len(acked) > 1300
            clients.wait(lambda: all(v in clients.consumed for v in acked), 180,
                         "the group consumer to read every acknowledged record")
            clients.consumer.send(["stop"])
            clients.wait(lambda: clients.consumer_done, 60, "the consumer to close")
        finally:
            for d in (clients.producer, clients.consumer):
                if d.proc.poll() is None:
                    d.proc.kill()

        # Every send was acknowledged (flush returned, no ERR), so the consumer read nothing
        # else. It may reread after a rebalance: consumer groups are at-least-once.
        assert set(clients.consumed) <= set(acked), set(clients.consumed) - set(acked)
        # The log: each acknowledged value exactly once, at its acknowledged offset.
        log = read_log(c)
        where = collections.defaultdict(list)
        for p, records in log.items():
            for offset, value in records:
                where[value].append((p, offset))
        lost = [v for v in acked if v not in where]
        duplicated = [v for v, places in where.items() if len(places) > 1]
        moved = [v for v, at in acked.items() if v in where and where[v] != [at]]
        print(f"failover: {len(acked)} acknowledged, {len(lost)} lost, {len(duplicated)} duplicated, "
              f"{len(moved)} at another offset, {sum(clients.consumed.values()) - len(clients.consumed)} reread by the group")
        assert not lost, f"lost: {lost[:5]}"
        assert not duplicated, f"duplicated: {duplicated[:5]}"
        assert not moved, f"not at the acknowledged offset: {[(v, acked[v], where[v]) for v in moved[:5]]}"
