"""The production layout: three gregor brokers against a real three-node Apache ZooKeeper
3.8 ensemble (the Debian package), with a chroot, as docs/operations.md describes.

One run, on loopback:
- three ZooKeeper servers form a quorum (one leader, two followers by `srvr`);
- three brokers connect with `zookeeper.connect=z1,z2,z3/gregor` and create the chroot
  (nothing of theirs lands at the ensemble's root);
- an idempotent confluent-kafka producer (acks=all) writes to a topic with RF=3 and
  min.insync.replicas=2 in a background thread while
  1. the ZooKeeper *leader* is killed with kill -9: the two survivors elect a leader,
     the brokers' sessions move to them, acks continue, and a topic created now (a
     metadata write through the two-node quorum) gets leaders;
  2. the controller broker is killed with kill -9: the remaining two elect a new
     controller through the two-node quorum, agree on it, move leadership, acks continue,
     and a topic created now gets leaders from the new controller;
  3. the killed ZooKeeper server restarts and rejoins as a follower with the whole tree;
- every acknowledged record is then in the log exactly once, at the offset it was
  acknowledged at, in send order per partition, and the producer saw no failed delivery.

ZooKeeper missing is a failure, not a skip: compat-tests/deploy/install.sh installs it.
"""

import collections
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kazoo.client import KazooClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from gregor_cluster import (  # noqa: E402
    GREGOR_BIN, GregorCluster, four_letter, free_port, metadata_brokers_and_controller,
)

ZK_JAR = "/usr/share/java/zookeeper.jar"
ZK_CONF_DIR = "/etc/zookeeper/conf"  # log4j.properties
CHROOT = "/gregor"
TOPIC = "ensemble"
PARTITIONS = 3
TICK_MS = 1000




def wait_for(what, fn, timeout=30.0, interval=0.1):
    """Polls fn until it returns something truthy (exceptions mean "not yet")."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            value = fn()
            if value:
                return value
            last = value
        except Exception as e:  # noqa: BLE001 - polling
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


class Ensemble:
    """Three ZooKeeper servers (QuorumPeerMain) on loopback, each with its own data dir,
    myid file and zoo.cfg naming all three."""

    def __init__(self, root):
        self.root = Path(root)
        self.ids = (1, 2, 3)
        self.client = {i: free_port() for i in self.ids}
        peers = {i: (free_port(), free_port()) for i in self.ids}
        self.procs = {}
        for i in self.ids:
            d = self.root / f"zk-{i}"
            (d / "data").mkdir(parents=True)
            (d / "data" / "myid").write_text(f"{i}\n")
            lines = [
                f"tickTime={TICK_MS}", "initLimit=10", "syncLimit=5",
                f"dataDir={d / 'data'}",
                f"clientPort={self.client[i]}", "clientPortAddress=127.0.0.1",
                "admin.enableServer=false", "4lw.commands.whitelist=*", "maxClientCnxns=0",
            ] + [f"server.{j}=127.0.0.1:{q}:{e}" for j, (q, e) in peers.items()]
            (d / "zoo.cfg").write_text("\n".join(lines) + "\n")

    @property
    def connect(self):
        return ",".join(f"127.0.0.1:{self.client[i]}" for i in self.ids)

    def start(self, i):
        d = self.root / f"zk-{i}"
        log = open(d / "server.log", "ab")
        self.procs[i] = subprocess.Popen(
            ["java", "-Xmx128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
             "-cp", f"{ZK_CONF_DIR}:{ZK_JAR}",
             f"-Dzookeeper.log.dir={d}", "-Dzookeeper.root.logger=INFO,CONSOLE",
             "org.apache.zookeeper.server.quorum.QuorumPeerMain", str(d / "zoo.cfg")],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def kill(self, i):
        p = self.procs[i]
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=30)

    def stop_all(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
                p.wait(timeout=30)

    def mode(self, i):
        """"leader" / "follower" from srvr, or None while not serving (or down)."""
        try:
            out = four_letter(self.client[i], "srvr")
        except OSError:
            return None
        for line in out.splitlines():
            if line.startswith("Mode: "):
                return line[len("Mode: "):].strip()
        return None

    def modes(self, ids=None):
        return {i: self.mode(i) for i in (ids or self.ids)}

    def wait_quorum(self, ids, timeout=60):
        """Waits until the servers `ids` serve with exactly one leader, the rest followers."""
        def formed():
            m = self.modes(ids)
            ok = sorted(m.values(), key=str) == sorted(["leader"] + ["follower"] * (len(ids) - 1))
            return m if ok else None
        return wait_for(f"ZooKeeper servers {list(ids)} to form a quorum (modes: {self.modes(ids)})",
                        formed, timeout)

    def leader(self):
        return next(i for i, m in self.modes().items() if m == "leader")

    def log_tail(self, i, lines=30):
        try:
            text = (self.root / f"zk-{i}" / "server.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


class BackgroundProducer:
    """An idempotent (acks=all) producer writing unique, keyed values in a thread; keeps
    every acknowledgement (value -> (partition, offset)) and every failed delivery."""

    def __init__(self, bootstrap):
        self.producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
                                  "linger.ms": 5, "message.timeout.ms": 120000})
        self.acks = {}
        self.errors = []
        self.sent = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _delivered(self, err, msg):
        if err is not None:
            self.errors.append(f"{msg.value()!r}: {err}")
        else:
            self.acks[msg.value().decode()] = (msg.partition(), msg.offset())

    def _run(self):
        seq = 0
        while not self.stop.is_set():
            try:
                self.producer.produce(TOPIC, key=f"k{seq % 12}".encode(), value=f"v{seq:07d}".encode(),
                                      on_delivery=self._delivered)
                seq += 1
                self.sent = seq
            except BufferError:
                self.producer.poll(0.1)
            self.producer.poll(0)
            time.sleep(0.004)
        self.remaining = self.producer.flush(120)

    def finish(self):
        self.stop.set()
        self.thread.join(150)
        assert not self.thread.is_alive(), "the producer did not flush within 120 s"
        assert self.remaining == 0, f"{self.remaining} records still unacknowledged after flush"

    def acks_on(self, partition=None):
        return sum(1 for p, _ in list(self.acks.values()) if partition is None or p == partition)

    def more_acks(self, n, what, per_partition=False, timeout=60):
        targets = ({p: self.acks_on(p) + n for p in range(PARTITIONS)} if per_partition
                   else {None: self.acks_on() + n})
        start = time.monotonic()
        wait_for(f"{n} more acks{' on every partition' if per_partition else ''} {what} "
                 f"({self.acks_on()} acked of {self.sent} sent, errors: {self.errors[:3]})",
                 lambda: self.errors or all(self.acks_on(p) >= t for p, t in targets.items()), timeout)
        assert not self.errors, f"failed deliveries {what}: {self.errors[:3]}"
        print(f"ensemble: {n} more acks{' per partition' if per_partition else ''} {what} "
              f"in {time.monotonic() - start:.1f}s")


def partitions(admin, topic):
    md = admin.list_topics(topic, timeout=10)
    t = md.topics[topic]
    if t.error is not None:
        return {}
    return {p.id: (p.leader, sorted(p.isrs)) for p in t.partitions.values()}


def wait_led(admin, topic, n, live, isr_size, what):
    """Every partition of `topic` has a live leader and an ISR of `isr_size` live brokers."""
    def ok():
        parts = partitions(admin, topic)
        return len(parts) == n and all(
            leader in live and len(isr) == isr_size and set(isr) <= set(live) for leader, isr in parts.values())
    wait_for(f"{topic} to be led {what}", ok, 60)


def create_topic(admin, name, rf):
    fs = admin.create_topics([NewTopic(name, PARTITIONS, rf, config={"min.insync.replicas": "2"})],
                             request_timeout=30)
    fs[name].result(60)


def produce_some(bootstrap, topic, n):
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
    acked, errors = [], []
    for i in range(n):
        p.produce(topic, value=f"{topic}-{i}".encode(),
                  on_delivery=lambda err, msg: errors.append(err) if err else acked.append(msg.value().decode()))
    assert p.flush(60) == 0
    assert not errors, errors
    return acked


def read_all(bootstrap, topic, n_partitions):
    """Every record of `topic`: partition -> [(offset, value)], read up to the high watermarks."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "ensemble-audit", "enable.auto.commit": False})
    try:
        ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(n_partitions)}
        c.assign([TopicPartition(topic, p, 0) for p in range(n_partitions)])
        got = collections.defaultdict(list)
        deadline = time.monotonic() + 60
        while any(len(got[p]) < ends[p] for p in range(n_partitions)):
            assert time.monotonic() < deadline, f"reading {topic}: {[(p, len(got[p]), ends[p]) for p in ends]}"
            for m in c.consume(1000, 0.5):
                assert m.error() is None, m.error()
                got[m.partition()].append((m.offset(), m.value().decode()))
        return got
    finally:
        c.close()


def broker_log(cluster, broker_id):
    return (cluster.dir / f"broker-{broker_id}.log").read_text(errors="replace")


def controllers(cluster, brokers):
    """Each broker's view of the controller (raw Metadata; -1 if it does not answer)."""
    out = {}
    for b in brokers:
        md = metadata_brokers_and_controller(cluster.ports[b])
        out[b] = md[1] if md else -1
    return out


@pytest.fixture
def ensemble(tmp_path):
    if not os.path.exists(ZK_JAR) or shutil.which("java") is None:
        pytest.fail(f"Apache ZooKeeper ({ZK_JAR}) or java missing: run compat-tests/deploy/install.sh")
    e = Ensemble(tmp_path / "zookeeper")
    try:
        for i in e.ids:
            e.start(i)
        try:
            e.wait_quorum(e.ids, timeout=60)
        except AssertionError:
            raise AssertionError("\n".join(f"--- zk-{i}\n{e.log_tail(i)}" for i in e.ids))
        yield e
    finally:
        e.stop_all()


@pytest.fixture
def gregor_bin(tmp_path):
    """A private copy of the binary: a concurrent `cargo build` cannot swap it mid-run."""
    if not os.path.exists(GREGOR_BIN):
        pytest.fail(f"gregor binary not found at {GREGOR_BIN}; run `cargo build --release` first")
    copy = tmp_path / "gregor"
    shutil.copy2(GREGOR_BIN, copy)
    return str(copy)


def test_brokers_ride_through_zookeeper_leader_and_controller_kills(ensemble, gregor_bin):
    started = time.monotonic()
    with GregorCluster(brokers=3, zookeeper_hosts=ensemble.connect, chroot=CHROOT, gregor_bin=gregor_bin,
                       broker_config={"min.insync.replicas": "2"}) as c:
        try:
            run_scenario(ensemble, c)
        except BaseException:
            for name in sorted(c.procs):
                print(f"--- {name}\n{c.log_tail(name)}")
            for i in ensemble.ids:
                print(f"--- zk-{i}\n{ensemble.log_tail(i)}")
            raise
    print(f"ensemble: whole run {time.monotonic() - started:.1f}s")


def run_scenario(ensemble, c):
    # The brokers made the chroot and keep everything under it.
    zk = KazooClient(hosts=ensemble.connect, timeout=10)
    zk.start(timeout=30)
    try:
        root = set(zk.get_children("/"))
        assert CHROOT.lstrip("/") in root
        assert not root & {"brokers", "controller", "config", "admin"}, f"broker znodes at the root: {root}"
        assert sorted(zk.get_children(f"{CHROOT}/brokers/ids"), key=int) == ["1", "2", "3"]
    finally:
        zk.stop()
        zk.close()

    admin = AdminClient({"bootstrap.servers": c.bootstrap})
    create_topic(admin, TOPIC, 3)
    wait_led(admin, TOPIC, PARTITIONS, {1, 2, 3}, 3, "after creation")

    producer = BackgroundProducer(c.bootstrap)
    try:
        producer.more_acks(200, "before any failure", per_partition=False)

        # 1. kill -9 the ZooKeeper leader: the two others elect a leader among themselves.
        # Followers drop their clients while they have no leader, so every broker is
        # disconnected, whichever server it was on, and must resume its session elsewhere.
        zk_leader = ensemble.leader()
        log_marks = {b: broker_log(c, b) for b in c.ports}
        ensemble.kill(zk_leader)
        survivors = [i for i in ensemble.ids if i != zk_leader]
        t0 = time.monotonic()
        modes = ensemble.wait_quorum(survivors, timeout=30)
        print(f"ensemble: ZooKeeper {zk_leader} (leader) killed; {modes} after {time.monotonic() - t0:.1f}s")
        for b, mark in log_marks.items():
            since = wait_for(f"broker {b} to reconnect to ZooKeeper",
                             lambda: (lambda t: t if "reconnected to ZooKeeper" in t else None)(broker_log(c, b)[len(mark):]),
                             30)
            assert "ZooKeeper session ended" not in since, f"broker {b} lost its session:\n{since[-3000:]}"
        producer.more_acks(200, f"after kill -9 of the ZooKeeper leader {zk_leader}", per_partition=True)
        # A metadata write through the two-node quorum: a topic created now gets leaders.
        create_topic(admin, "ensemble-after-zk-kill", 3)
        wait_led(admin, "ensemble-after-zk-kill", PARTITIONS, {1, 2, 3}, 3, "with two ZooKeeper servers")
        second = produce_some(c.bootstrap, "ensemble-after-zk-kill", 30)

        # 2. kill -9 the controller broker: a new one is elected through the two-node quorum.
        controller = admin.describe_cluster(request_timeout=10).result().controller.id
        assert set(controllers(c, c.ports).values()) == {controller}, controllers(c, c.ports)
        c.kill(controller)
        live = [b for b in c.ports if b != controller]
        t0 = time.monotonic()
        views = wait_for("the remaining brokers to agree on a new controller",
                         lambda: (lambda v: v if len(set(v.values())) == 1 and set(v.values()) <= set(live) else None)(
                             controllers(c, live)), 60)
        print(f"ensemble: controller {controller} killed; brokers' controller views {views} "
              f"after {time.monotonic() - t0:.1f}s")
        live_bootstrap = ",".join(c.addr(b) for b in live)
        admin = AdminClient({"bootstrap.servers": live_bootstrap})
        wait_led(admin, TOPIC, PARTITIONS, set(live), 2, f"after the controller {controller} died")
        producer.more_acks(200, f"after kill -9 of the controller {controller}", per_partition=True)
        # The new controller's writes reach the quorum too: a topic (RF=2) created now is led.
        create_topic(admin, "ensemble-after-controller-kill", 2)
        wait_led(admin, "ensemble-after-controller-kill", PARTITIONS, set(live), 2, "by the new controller")
        third = produce_some(live_bootstrap, "ensemble-after-controller-kill", 30)

        # 3. The killed ZooKeeper server comes back as a follower and catches up.
        ensemble.start(zk_leader)
        ensemble.wait_quorum(ensemble.ids, timeout=45)
        assert ensemble.mode(zk_leader) == "follower"
        producer.more_acks(100, "after the ZooKeeper server rejoined")
    except BaseException:
        producer.stop.set()  # no flush checks: they would hide what failed
        raise
    producer.finish()

    zk = KazooClient(hosts=f"127.0.0.1:{ensemble.client[zk_leader]}", timeout=10)
    zk.start(timeout=30)
    try:
        # The rejoined server has the whole tree, including what was written while it was down.
        zk.sync(CHROOT)
        topics = set(zk.get_children(f"{CHROOT}/brokers/topics"))
        assert {TOPIC, "ensemble-after-zk-kill", "ensemble-after-controller-kill"} <= topics, topics
        ctrl = zk.get(f"{CHROOT}/controller")[0].decode()
        assert f'"brokerid":{views[live[0]]}' in ctrl.replace(" ", ""), ctrl
    finally:
        zk.stop()
        zk.close()

    # Every acknowledged record: exactly once, at its acknowledged offset, in send order.
    assert not producer.errors, producer.errors[:5]
    acked = dict(producer.acks)
    assert len(acked) == producer.sent, f"{producer.sent} sent, {len(acked)} acknowledged"
    log = read_all(live_bootstrap, TOPIC, PARTITIONS)
    where = collections.defaultdict(list)
    for p, records in log.items():
        values = [v for _, v in records]
        assert values == sorted(values), f"partition {p}: records out of send order"
        for offset, value in records:
            where[value].append((p, offset))
    lost = [v for v in acked if v not in where]
    duplicated = [v for v, at in where.items() if len(at) > 1]
    # Every acknowledgement carries its offset: a leader that stays leader through an
    # epoch bump (the controller shrinking its ISR) completes its waiting acks=all
    # requests, so librdkafka never has to ack a batch implicitly.
    no_offset = [v for v, (_, off) in acked.items() if off is None]
    moved = [v for v, (p, off) in acked.items() if v in where and where[v] != [(p, off)]]
    print(f"ensemble: {len(acked)} acknowledged ({len(no_offset)} without an offset), {len(lost)} lost, "
          f"{len(duplicated)} duplicated, {len(moved)} elsewhere than acknowledged")
    assert not no_offset, f"acknowledged without an offset: {no_offset[:5]}"
    assert not lost, f"lost: {lost[:5]}"
    assert not duplicated, f"duplicated: {duplicated[:5]}"
    assert not moved, f"not where acknowledged: {[(v, acked[v], where[v]) for v in moved[:5]]}"
    assert set(where) == set(acked), f"unacknowledged records in the log: {sorted(set(where) - set(acked))[:5]}"

    for topic, sent in (("ensemble-after-zk-kill", second), ("ensemble-after-controller-kill", third)):
        got = [v for records in read_all(live_bootstrap, topic, PARTITIONS).values() for _, v in records]
        assert sorted(got) == sorted(sent), f"{topic}: read {len(got)} records, {len(sent)} acknowledged"
