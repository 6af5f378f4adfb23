"""One synchronous interface over three real Kafka consumer clients, so every group
scenario runs unchanged against confluent-kafka (librdkafka), kafka-python and aiokafka.

    m = make_member("kafka-python", bootstrap, group, topic)
    m.poll(0.2)          -> [(partition, offset, value bytes)]
    m.assignment()       -> set of partition numbers
    m.commit({p: next_offset})   synchronous commit
    m.close()            leaves the group
"""

import asyncio
import itertools
import os
import queue
import signal
import subprocess
import threading
import time

KINDS = ["confluent", "kafka-python", "aiokafka"]

SESSION_MS = 6000
HEARTBEAT_MS = 1000


class ConfluentMember:
    def __init__(self, bootstrap, group, topic, session_ms=SESSION_MS, instance_id=None, strategy=None):
        from confluent_kafka import Consumer

        conf = {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": session_ms,
            "heartbeat.interval.ms": HEARTBEAT_MS,
            "client.id": "compat-confluent",
        }
        if instance_id:
            conf["group.instance.id"] = instance_id
        if strategy:
            conf["partition.assignment.strategy"] = strategy
        self.c = Consumer(conf)
        self.revoked = 0
        self.assigned_calls = 0
        self.c.subscribe([topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
        self.topic = topic

    def _on_assign(self, consumer, partitions):
        self.assigned_calls += 1

    def _on_revoke(self, consumer, partitions):
        self.revoked += 1

    def poll(self, timeout):
        out = []
        msgs = self.c.consume(num_messages=500, timeout=timeout)
        for m in msgs:
            if m.error():
                continue
            out.append((m.partition(), m.offset(), m.value()))
        return out

    def assignment(self):
        return {tp.partition for tp in self.c.assignment()}

    def commit(self, offsets):
        from confluent_kafka import TopicPartition

        if offsets:
            self.c.commit(offsets=[TopicPartition(self.topic, p, o) for p, o in offsets.items()], asynchronous=False)

    def committed(self, partitions):
        from confluent_kafka import TopicPartition

        res = self.c.committed([TopicPartition(self.topic, p) for p in partitions], timeout=10)
        return {tp.partition: tp.offset for tp in res}

    def close(self):
        self.c.close()


class KafkaPythonMember:
    """kafka-python with its poll loop in a thread of its own, as a kafka-python application
    runs it: poll() again as soon as the last one returned, with a timeout longer than a
    rebalance round. The test's calls (poll, assignment, commit, close) are served from
    that thread; poll() hands over what the loop received since the last call.

    Why a thread: kafka-python 3.0.12 runs a JoinGroup/SyncGroup round as a task on its IO
    thread and takes its result only inside poll() (KafkaConsumer.poll -> coordinator.poll
    -> join_group_async). A round that completes while no poll() is waiting for it is lost:
      - if the member still needs to rejoin, the next poll() sends a fresh JoinGroup. From
        the leader of a Stable group that starts a new rebalance (in Kafka as in gregor: a
        leader's JoinGroup forces one), which the others must join, and so on: members
        polled in turn from one thread with short timeouts rebalance over and over;
      - if need_rejoin() turned false meanwhile (the leader's own assignment refreshes the
        metadata snapshot it compares against), the result is never applied: heartbeats
        stay disabled and no partitions are assigned until the coordinator expires the
        member's session.
    Polling back to back with a 1 s timeout leaves only the instant between two polls."""

    POLL_MS = 1000

    def __init__(self, bootstrap, group, topic, session_ms=SESSION_MS, instance_id=None, strategy=None):
        from kafka import KafkaConsumer

        kw = dict(
            bootstrap_servers=bootstrap.split(","),
            group_id=group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            session_timeout_ms=session_ms,
            heartbeat_interval_ms=HEARTBEAT_MS,
            client_id="compat-kafka-python",
        )
        if instance_id:
            kw["group_instance_id"] = instance_id
        self.c = KafkaConsumer(**kw)
        self.c.subscribe([topic])
        self.topic = topic
        self._cv = threading.Condition()
        self._inbox = []
        self._assigned = set()
        self._calls = queue.Queue()
        self._error = None
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name=f"kafka-python-member-{group}", daemon=True)
        self._thread.start()

    def _loop(self):
        try:
            while not self._closed:
                self._run_calls()
                if self._closed:
                    break
                got = self.c.poll(timeout_ms=self.POLL_MS, max_records=500)
                assigned = {tp.partition for tp in self.c.assignment()}
                with self._cv:
                    for msgs in got.values():
                        self._inbox.extend((m.partition, m.offset, m.value) for m in msgs)
                    self._assigned = assigned
                    self._cv.notify_all()
        except BaseException as e:  # surfaced to the test's next call
            with self._cv:
                self._error = e
                self._cv.notify_all()
        finally:
            self._fail_pending_calls()

    def _run_calls(self):
        while True:
            try:
                fn, done = self._calls.get_nowait()
            except queue.Empty:
                return
            try:
                done["value"] = fn()
            except BaseException as e:
                done["error"] = e
            done["event"].set()

    def _fail_pending_calls(self):
        while True:
            try:
                _fn, done = self._calls.get_nowait()
            except queue.Empty:
                return
            done["error"] = self._error or RuntimeError("the kafka-python poll loop has stopped")
            done["event"].set()

    def _call(self, fn, timeout=120):
        """Runs fn() on the poll thread, between two polls."""
        if self._error is not None:
            raise self._error
        done = {"event": threading.Event()}
        self._calls.put((fn, done))
        if not self._thread.is_alive():
            self._fail_pending_calls()
        if not done["event"].wait(timeout):
            raise TimeoutError(f"kafka-python poll thread did not run the call within {timeout}s")
        if "error" in done:
            raise done["error"]
        return done.get("value")

    def poll(self, timeout):
        """What the poll loop received since the last call, waiting up to `timeout` s for some."""
        with self._cv:
            self._cv.wait_for(lambda: self._inbox or self._error is not None, timeout)
            if self._error is not None:
                raise self._error
            out, self._inbox = self._inbox, []
        return out

    def assignment(self):
        """The assignment as of the poll loop's last poll."""
        with self._cv:
            if self._error is not None:
                raise self._error
            return set(self._assigned)

    def commit(self, offsets):
        from kafka import TopicPartition
        from kafka.structs import OffsetAndMetadata

        if offsets:
            self._call(lambda: self.c.commit(
                {TopicPartition(self.topic, p): OffsetAndMetadata(o, "", -1) for p, o in offsets.items()}))

    def close(self):
        def close():
            self._closed = True
            self.c.close()

        if self._thread.is_alive() and self._error is None:
            self._call(close)
            self._thread.join(30)
        else:
            self._closed = True
            self.c.close()


class AioMember:
    """aiokafka on its own event loop thread, driven synchronously."""

    def __init__(self, bootstrap, group, topic, session_ms=SESSION_MS, instance_id=None, strategy=None):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.topic = topic

        async def start():
            from aiokafka import AIOKafkaConsumer

            kw = dict(
                bootstrap_servers=bootstrap,
                group_id=group,
                auto_offset_reset="earliest",
                enable_auto_commit=False,
                session_timeout_ms=session_ms,
                heartbeat_interval_ms=HEARTBEAT_MS,
                client_id="compat-aiokafka",
            )
            if instance_id:
                kw["group_instance_id"] = instance_id
            c = AIOKafkaConsumer(topic, **kw)
            await c.start()
            return c

        self.c = self._run(start())

    def _run(self, coro, timeout=60):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def poll(self, timeout):
        async def get():
            res = await self.c.getmany(timeout_ms=int(timeout * 1000), max_records=500)
            return [(m.partition, m.offset, m.value) for msgs in res.values() for m in msgs]

        return self._run(get())

    def assignment(self):
        return {tp.partition for tp in self.c.assignment()}

    def commit(self, offsets):
        from aiokafka import TopicPartition

        if offsets:
            self._run(self.c.commit({TopicPartition(self.topic, p): o for p, o in offsets.items()}))

    def close(self):
        try:
            self._run(self.c.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)


def make_member(kind, bootstrap, group, topic, **kw):
    return {"confluent": ConfluentMember, "kafka-python": KafkaPythonMember, "aiokafka": AioMember}[kind](
        bootstrap, group, topic, **kw
    )


def produce(bootstrap, topic, count, partitions, prefix="m"):
    """Produces `count` messages round-robin over `partitions`; returns their values."""
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    values = []
    for i in range(count):
        v = f"{prefix}-{i}".encode()
        p.produce(topic, value=v, partition=i % partitions)
        values.append(v)
    assert p.flush(30) == 0, "messages not delivered"
    return values


def create_topic(bootstrap, topic, partitions, rf=1):
    from confluent_kafka.admin import NewTopic

    a = admin(bootstrap)
    a.create_topics([NewTopic(topic, partitions, rf)])[topic].result(30)
    # Wait until every partition has a leader (metadata from the cluster).
    deadline = time.time() + 30
    while time.time() < deadline:
        md = a.list_topics(topic, timeout=10)
        t = md.topics.get(topic)
        if t and t.error is None and len(t.partitions) == partitions and all(p.leader >= 0 for p in t.partitions.values()):
            return
        time.sleep(0.05)
    raise TimeoutError(f"topic {topic} not ready")


def describe_group(bootstrap, group):
    """confluent-kafka's DescribeGroups answer for `group`, or None while the coordinator
    cannot answer yet: retriable errors, COORDINATOR_LOAD_IN_PROGRESS (14, while a fresh
    broker loads __consumer_offsets), COORDINATOR_NOT_AVAILABLE (15), NOT_COORDINATOR (16)."""
    from confluent_kafka import KafkaException

    try:
        return admin(bootstrap).describe_consumer_groups([group])[group].result(30)
    except KafkaException as e:
        if e.args[0].retriable() or e.args[0].code() in (14, 15, 16):
            return None
        raise


def group_state(bootstrap, group):
    """(state, [member ids]) via the Kafka admin API; ("UNKNOWN", []) while the coordinator
    cannot answer yet."""
    d = describe_group(bootstrap, group)
    if d is None:
        return "UNKNOWN", []
    return str(d.state.name), [m.member_id for m in d.members]


_admins = {}


def admin(bootstrap):
    from confluent_kafka.admin import AdminClient

    if bootstrap not in _admins:
        _admins[bootstrap] = AdminClient({"bootstrap.servers": bootstrap})
    return _admins[bootstrap]


def broker_assignments(bootstrap, group):
    """(state, [set of partitions per member]) as the coordinator holds them (DescribeGroups);
    ("UNKNOWN", []) while the coordinator cannot answer yet."""
    d = describe_group(bootstrap, group)
    if d is None:
        return "UNKNOWN", []
    parts = [frozenset(tp.partition for tp in m.assignment.topic_partitions) for m in d.members]
    return str(d.state.name), parts


def gregor_describe(bootstrap, group):
    """(text, {partition: (committed, log end, lag)}) from `gregor groups describe`."""
    from gregor_cluster import GREGOR_BIN

    out = subprocess.run(
        [GREGOR_BIN, "groups", "describe", group, "--bootstrap-server", bootstrap],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    rows = {}
    for line in out.stdout.splitlines():
        cols = line.split()
        if len(cols) >= 6 and cols[0] == group and cols[2].isdigit():
            rows[int(cols[2])] = (cols[3], cols[4], cols[5])
    return out.stdout, rows


def parse_parts(s):
    """"0,2,5" -> {0, 2, 5}; "" -> set()."""
    return {int(p) for p in s.split(",")} if s else set()


class DriverMember:
    """A group member run as a driver program (Java, Go) that prints one line per event
    and a final `CLOSED count`; its stdout lines are collected as they come."""

    exit_on_sigterm = 0

    def __init__(self, name, cmd):
        from checks import Driver

        self.name = name
        self.d = Driver(cmd)
        self.lines = []
        self.exited = False

    def pump(self, timeout=0):
        """Collects the lines printed so far (waiting up to `timeout` s for the first)."""
        while True:
            try:
                line = self.d.lines.get(timeout=timeout) if timeout else self.d.lines.get_nowait()
            except queue.Empty:
                return
            timeout = 0
            if line is None:
                self.exited = True
                return
            self.lines.append(line)

    def line_count(self):
        self.pump()
        return len(self.lines)

    def lines_starting(self, prefix, upto=None):
        self.pump()
        return [line for line in self.lines[:upto] if line.startswith(prefix)]

    def records(self):
        from checks import decode_rec

        return [decode_rec(line) for line in self.lines_starting("REC\t")]

    def check_alive(self):
        self.pump()
        if self.exited:
            raise AssertionError(f"{self.name} exited early (rc={self.d.proc.wait()}); "
                                 f"stdout tail {self.lines[-5:]}; stderr:\n{self.d.err_tail()}")

    def wait_line(self, prefix, timeout=60):
        deadline = time.time() + timeout
        while True:
            found = self.lines_starting(prefix)
            if found:
                return found[0]
            self.check_alive()
            assert time.time() < deadline, f"{self.name} printed no {prefix.strip()!r} line in {timeout}s; stdout tail {self.lines[-5:]}"
            self.pump(0.2)

    def finish(self, timeout=120, exit_codes=(0,)):
        """Waits for the program to exit (it stops on its own: count reached, idle timeout);
        returns the count of its CLOSED line."""
        deadline = time.time() + timeout
        while not self.exited:
            assert time.time() < deadline, f"{self.name} did not exit within {timeout}s; stdout tail {self.lines[-5:]}"
            self.pump(0.5)
        rc = self.d.proc.wait(30)
        assert rc in exit_codes, f"{self.name} exited {rc}; stdout tail {self.lines[-5:]}; stderr:\n{self.d.err_tail()}"
        closed = self.lines_starting("CLOSED\t")
        assert closed, f"{self.name} exited without closing its consumer; stderr:\n{self.d.err_tail()}"
        return int(closed[-1].split("\t")[1])

    def terminate(self, timeout=120):
        """SIGTERM: the program closes its consumer (final commit, LeaveGroup) and exits."""
        if self.d.proc.poll() is None:
            self.d.proc.send_signal(signal.SIGTERM)
        return self.finish(timeout, exit_codes=(0, self.exit_on_sigterm))

    def kill(self):
        self.d.close()


def committed_offsets(bootstrap, group):
    """{partition: committed offset} as `gregor groups describe` shows it."""
    _, rows = gregor_describe(bootstrap, group)
    return {p: int(c) for p, (c, _end, _lag) in rows.items() if c.lstrip("-").isdigit()}


def describe_by_client(bootstrap, group):
    """(state, protocol, {client id: set of partitions}) from DescribeGroups, ("UNKNOWN",
    None, {}) while the coordinator cannot answer yet; members' client ids must be unique."""
    d = describe_group(bootstrap, group)
    if d is None:
        return "UNKNOWN", None, {}
    by_client = {m.client_id: {tp.partition for tp in m.assignment.topic_partitions} for m in d.members}
    assert len(by_client) == len(d.members), f"client ids not unique: {[m.client_id for m in d.members]}"
    return str(d.state.name), d.partition_assignor, by_client


_ids = itertools.count()


def uniq(prefix):
    """A topic or group name no other test (or earlier run) uses."""
    return f"{prefix}-{os.getpid()}-{next(_ids)}"


def wait_for(cond, timeout, what, step=None, info=None):
    """Polls `cond` (after `step`, which may itself block briefly) until it is truthy."""
    deadline = time.time() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.time() > deadline:
            detail = f" (last seen: {info()})" if info else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{detail}")
        if step:
            step()
        time.sleep(0.02 if step else 0.05)
