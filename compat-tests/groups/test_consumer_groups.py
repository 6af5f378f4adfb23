"""Consumer groups with real clients against real gregor processes: confluent-kafka
(librdkafka), kafka-python, aiokafka and kcat's balanced consumer. Conditions are polled
with deadlines; nothing sleeps a fixed time to wait for one."""

import collections
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from clients import HEARTBEAT_MS, KINDS, SESSION_MS, admin, broker_assignments, create_topic, gregor_describe, group_state, make_member, produce, uniq, wait_for  # noqa: E402



class MemberProcess:
    """`member.py` as a child process; its output lines are collected by a thread."""

    def __init__(self, kind, bootstrap, group, topic, instance_id=None, session_ms=SESSION_MS):
        args = [sys.executable, os.path.join(HERE, "member.py"), kind, bootstrap, group, topic, "--session-ms", str(session_ms)]
        if instance_id:
            args += ["--instance-id", instance_id]
        self.p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.lines = []
        self.lock = threading.Lock()
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.p.stdout:
            with self.lock:
                self.lines.append(line.strip())

    def assignment(self):
        with self.lock:
            a = [line for line in self.lines if line.startswith("ASSIGNED")]
        if not a:
            return None
        rest = a[-1][len("ASSIGNED"):].strip()
        return {int(x) for x in rest.split(",")} if rest else set()

    def saw(self, text):
        with self.lock:
            return text in self.lines

    def kill9(self):
        self.p.send_signal(signal.SIGKILL)
        self.p.wait(30)

    def terminate(self):
        self.p.send_signal(signal.SIGTERM)
        return self.p.wait(60)

    def __del__(self):
        if self.p.poll() is None:
            self.p.kill()


def consume(member, received, commit=True, timeout=0.1):
    """One poll: records (partition, offset, value) in `received`, commits what it got."""
    msgs = member.poll(timeout)
    nxt = {}
    for p, o, v in msgs:
        received.append((p, o, v))
        nxt[p] = max(nxt.get(p, 0), o + 1)
    if commit and nxt:
        member.commit(nxt)
    return msgs


def java_partition(group, n):
    """Kafka's abs(group.hashCode()) % n."""
    h = 0
    data = group.encode("utf-16-be")
    for i in range(0, len(data), 2):
        h = (h * 31 + int.from_bytes(data[i:i + 2], "big")) & 0xFFFFFFFF
    if h >= 1 << 31:
        h -= 1 << 32
    return (0 if h == -(1 << 31) else abs(h)) % n


def rebalances_logged(cluster, group):
    """Rebalances the broker logged for `group` (the coordinator's INFO line)."""
    text = ""
    for name in cluster.procs:
        if name.startswith("broker"):
            try:
                text += (cluster.dir / f"{name}.log").read_text(errors="replace")
            except FileNotFoundError:
                pass
    return text.count(f"preparing to rebalance group group={group} ")


# --------------------------------------------------------------------------- scenarios


@pytest.mark.parametrize("kind", KINDS)
def test_consume_half_commit_close_then_resume_exactly(cluster, kind):
    topic, group = uniq("resume"), uniq("g-resume")
    create_topic(cluster.bootstrap, topic, 3)
    values = produce(cluster.bootstrap, topic, 90, 3)

    first, done = [], {}
    m = make_member(kind, cluster.bootstrap, group, topic)
    # Process exactly 45 messages; anything fetched beyond them is not processed.
    wait_for(lambda: len(first) >= 45, 60, "45 messages", step=lambda: [
        (first.append((p, o, v)), done.__setitem__(p, o + 1))
        for p, o, v in m.poll(0.2) if len(first) < 45
    ])
    m.commit(done)
    m.close()

    second = []
    m2 = make_member(kind, cluster.bootstrap, group, topic)
    wait_for(lambda: len(first) + len(second) >= 90, 60, "the other 45", step=lambda: second.extend(m2.poll(0.2)))
    m2.close()
    # The new member started at the committed offsets: nothing lost, nothing twice.
    for p in range(3):
        offsets = sorted(o for q, o, _ in second if q == p)
        if offsets:
            assert offsets[0] == done.get(p, 0), f"partition {p} resumed at {offsets[0]}, committed {done.get(p, 0)}"
    got = [v for _, _, v in first] + [v for _, _, v in second]
    assert len(got) == 90
    assert sorted(got) == sorted(values)


_last_split = []


def _stable_split(bootstrap, group, members, expect_each=None):
    """True when the coordinator holds a Stable generation of `len(members)` members whose
    assignments cover all 6 partitions with none owned twice, and every client has
    applied its share."""
    state, parts = broker_assignments(bootstrap, group)
    _last_split[:] = [state, parts, [m.assignment() for m in members]]
    union = set().union(*parts) if parts else set()
    # Whatever the moment, the coordinator never hands a partition to two members.
    assert sum(len(x) for x in parts) == len(union), f"a partition is owned twice: {parts}"
    if state != "STABLE" or len(parts) != len(members) or union != set(range(6)) or not all(parts):
        return False
    if expect_each is not None and not all(len(x) == expect_each for x in parts):
        return False
    return sorted(map(sorted, parts)) == sorted(sorted(m.assignment()) for m in members)


@pytest.mark.parametrize("kind,strategy", [
    ("confluent", None),
    ("confluent", "cooperative-sticky"),
    # kafka-python members poll in threads of their own (clients.KafkaPythonMember says why).
    ("kafka-python", None),
    ("aiokafka", None),
])
def test_two_then_three_members_split_six_partitions(cluster, kind, strategy):
    topic, group = uniq("split"), uniq("g-split")
    create_topic(cluster.bootstrap, topic, 6)
    # A long session: this test is about the split, not about failure detection.
    kw = {"session_ms": 30000}
    if strategy:
        kw["strategy"] = strategy
    members = [make_member(kind, cluster.bootstrap, group, topic, **kw)]
    received = collections.defaultdict(list)

    def step():
        for i, m in enumerate(members):
            consume(m, received[i])

    try:
        # Members arrive one at a time, as consumers of a scaling service do.
        wait_for(lambda: _stable_split(cluster.bootstrap, group, members), 60,
                 "the first member owning all 6 partitions", step=step, info=lambda: _last_split)
        members.append(make_member(kind, cluster.bootstrap, group, topic, **kw))
        wait_for(lambda: _stable_split(cluster.bootstrap, group, members), 60,
                 "two members splitting 6 partitions", step=step, info=lambda: _last_split)
        first = produce(cluster.bootstrap, topic, 300, 6, prefix="a")
        total = lambda: sum(len(v) for v in received.values())  # noqa: E731
        wait_for(lambda: total() >= 300, 60, "phase 1 messages", step=step)

        members.append(make_member(kind, cluster.bootstrap, group, topic, **kw))
        wait_for(lambda: _stable_split(cluster.bootstrap, group, members, expect_each=2), 90,
                 "three members, two partitions each", step=step, info=lambda: _last_split)
        second = produce(cluster.bootstrap, topic, 300, 6, prefix="b")
        wait_for(lambda: total() >= 600, 60, "phase 2 messages", step=step)
        # A little more polling must not bring duplicates.
        for _ in range(5):
            step()
        counts = collections.Counter(v for msgs in received.values() for _, _, v in msgs)
        assert set(counts) == set(first) | set(second)
        dupes = [v for v, n in counts.items() if n > 1]
        assert not dupes, f"consumed twice: {dupes[:5]}"
        # Each message came from the partition its consumer owned in the end (phase 2).
        owners = {p: i for i, m in enumerate(members) for p in m.assignment()}
        for i, msgs in received.items():
            for p, _, v in msgs:
                if v.startswith(b"b-"):
                    assert owners[p] == i, f"{v} from partition {p} read by member {i}"
    finally:
        for m in members:
            m.close()


def _member_and_survivor(cluster, kind, session_ms):
    topic, group = uniq("fail"), uniq("g-fail")
    create_topic(cluster.bootstrap, topic, 4)
    survivor = make_member(kind, cluster.bootstrap, group, topic, session_ms=session_ms)
    proc = MemberProcess(kind, cluster.bootstrap, group, topic, session_ms=session_ms)
    got = []
    try:
        wait_for(
            lambda: proc.assignment() and survivor.assignment()
            and proc.assignment() | survivor.assignment() == set(range(4))
            and not (proc.assignment() & survivor.assignment()),
            90, "both members assigned", step=lambda: consume(survivor, got),
        )
    except BaseException:
        # A failed test keeps its frames alive: do not leave the member process behind.
        proc.kill9()
        survivor.close()
        raise
    return survivor, proc, got


@pytest.mark.parametrize("kind", KINDS)
def test_killed_member_loses_its_partitions_after_the_session_timeout(cluster, kind):
    survivor, proc, got = _member_and_survivor(cluster, kind, SESSION_MS)
    try:
        killed_at = time.time()
        proc.kill9()
        wait_for(lambda: survivor.assignment() == set(range(4)), 60, "the survivor to take everything",
                 step=lambda: consume(survivor, got))
        took = time.time() - killed_at
        # The coordinator waited for the dead member's session to expire: its last
        # heartbeat was at most one heartbeat interval before the kill.
        assert took >= (SESSION_MS - HEARTBEAT_MS) / 1000 - 0.5, f"taken over after {took:.1f}s"
    finally:
        survivor.close()


@pytest.mark.parametrize("kind", KINDS)
def test_member_leaving_cleanly_hands_over_at_once(cluster, kind):
    session_ms = 60000
    survivor, proc, got = _member_and_survivor(cluster, kind, session_ms)
    try:
        left_at = time.time()
        assert proc.terminate() == 0
        assert proc.saw("CLOSED")
        wait_for(lambda: survivor.assignment() == set(range(4)), 45, "the survivor to take everything",
                 step=lambda: consume(survivor, got))
        took = time.time() - left_at
        assert took < session_ms / 1000 / 2, f"handover took {took:.1f}s: the leave was not seen"
    finally:
        if proc.p.poll() is None:
            proc.kill9()
        survivor.close()


def test_two_groups_on_one_topic_progress_independently(cluster):
    topic, ga, gb = uniq("indep"), uniq("g-a"), uniq("g-b")
    create_topic(cluster.bootstrap, topic, 2)
    produce(cluster.bootstrap, topic, 40, 2)
    a, b = make_member("confluent", cluster.bootstrap, ga, topic), make_member("confluent", cluster.bootstrap, gb, topic)
    got_a, got_b = [], []
    wait_for(lambda: len(got_a) >= 40, 60, "group A reads everything", step=lambda: consume(a, got_a))
    # Group B processes 10 messages of partition 0 only.
    b_done = {}
    wait_for(lambda: len(got_b) >= 10, 60, "group B reads 10", step=lambda: [
        (got_b.append((p, o, v)), b_done.__setitem__(p, o + 1)) for p, o, v in b.poll(0.2) if p == 0 and len(got_b) < 10
    ])
    b.commit(b_done)
    a.close()
    b.close()
    _, rows_a = gregor_describe(cluster.bootstrap, ga)
    _, rows_b = gregor_describe(cluster.bootstrap, gb)
    assert rows_a == {0: ("20", "20", "0"), 1: ("20", "20", "0")}, rows_a
    assert rows_b == {0: ("10", "20", "10")}, rows_b
    produce(cluster.bootstrap, topic, 10, 2, prefix="late")
    a2 = make_member("confluent", cluster.bootstrap, ga, topic)
    more_a = []
    wait_for(lambda: len(more_a) >= 10, 60, "group A reads only the new messages", step=lambda: consume(a2, more_a))
    assert all(v.startswith(b"late-") for _, _, v in more_a)
    a2.close()


@pytest.mark.parametrize("kind", ["confluent", "kafka-python"])
def test_broker_restart_keeps_committed_offsets_and_the_group_resumes(fresh_cluster, kind):
    c = fresh_cluster
    topic, group = uniq("restart"), uniq("g-restart")
    create_topic(c.bootstrap, topic, 2)
    values = produce(c.bootstrap, topic, 60, 2)
    m = make_member(kind, c.bootstrap, group, topic)
    first, done = [], {}
    wait_for(lambda: len(first) >= 30, 60, "30 messages", step=lambda: [
        (first.append((p, o, v)), done.__setitem__(p, o + 1)) for p, o, v in m.poll(0.2) if len(first) < 30
    ])
    m.commit(done)
    m.close()
    c.stop(1)
    c.start(1)
    # The offsets came back from __consumer_offsets.
    _, rows = wait_for(lambda: (lambda r: r if r[1] else None)(gregor_describe(c.bootstrap, group)), 60, "describe after restart")
    assert {p: int(v[0]) for p, v in rows.items()} == {p: o for p, o in done.items()}
    second = []
    m2 = make_member(kind, c.bootstrap, group, topic)
    wait_for(lambda: len(first) + len(second) >= 60, 90, "the rest", step=lambda: second.extend(m2.poll(0.2)))
    m2.close()
    assert sorted(v for *_, v in first + second) == sorted(values)


@pytest.mark.parametrize("kind", ["confluent", "aiokafka"])
def test_static_member_restart_keeps_its_assignment_without_a_rebalance(cluster, kind):
    topic, group = uniq("static"), uniq("g-static")
    create_topic(cluster.bootstrap, topic, 4)
    session_ms = 30000
    other = make_member(kind, cluster.bootstrap, group, topic, session_ms=session_ms, instance_id="b")
    proc = MemberProcess(kind, cluster.bootstrap, group, topic, instance_id="a", session_ms=session_ms)
    got = []
    try:
        wait_for(
            lambda: proc.assignment() and other.assignment() and proc.assignment() | other.assignment() == set(range(4)),
            90, "both static members assigned", step=lambda: consume(other, got),
        )
        wait_for(lambda: group_state(cluster.bootstrap, group)[0] == "STABLE", 30, "a stable group",
                 step=lambda: consume(other, got))
        before_proc, before_other = proc.assignment(), other.assignment()
        rebalances = rebalances_logged(cluster, group)
        revoked = getattr(other, "revoked", 0)
        proc.kill9()
        restarted = MemberProcess(kind, cluster.bootstrap, group, topic, instance_id="a", session_ms=session_ms)
        wait_for(lambda: restarted.assignment(), 60, "the restarted member's assignment", step=lambda: consume(other, got))
        assert restarted.assignment() == before_proc
        for _ in range(10):
            consume(other, got)
        assert other.assignment() == before_other
        assert rebalances_logged(cluster, group) == rebalances, "the restart caused a rebalance"
        if kind == "confluent":
            assert other.revoked == revoked, "the other member lost its partitions"
        restarted.terminate()
    finally:
        other.close()


def test_kcat_balanced_consumer_resumes_at_the_committed_offset(cluster):
    topic, group = uniq("kcat"), uniq("g-kcat")
    create_topic(cluster.bootstrap, topic, 2)
    first = produce(cluster.bootstrap, topic, 20, 2)
    kcat = ["kcat", "-b", cluster.bootstrap, "-G", group, "-f", "%s\\n", "-X", "auto.offset.reset=earliest", "-q"]
    out = subprocess.run(kcat + ["-c", "20", topic], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert sorted(out.stdout.split()) == sorted(v.decode() for v in first)
    second = produce(cluster.bootstrap, topic, 10, 2, prefix="more")
    out = subprocess.run(kcat + ["-c", "10", topic], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert sorted(out.stdout.split()) == sorted(v.decode() for v in second)
    _, rows = gregor_describe(cluster.bootstrap, group)
    assert rows == {0: ("15", "15", "0"), 1: ("15", "15", "0")}, rows


def test_two_kcat_balanced_consumers_split_a_topic(cluster):
    topic, group = uniq("kcat2"), uniq("g-kcat2")
    create_topic(cluster.bootstrap, topic, 6)
    cmd = ["kcat", "-b", cluster.bootstrap, "-G", group, "-f", "%p %s\\n", "-X", "auto.offset.reset=earliest",
           "-X", "session.timeout.ms=6000", "-X", "heartbeat.interval.ms=1000", "-u", topic]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) for _ in range(2)]
    lines = [[], []]

    def reader(i):
        for line in procs[i].stdout:
            lines[i].append(line.split())

    threads = [threading.Thread(target=reader, args=(i,), daemon=True) for i in range(2)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: (lambda s: s[0] == "STABLE" and len(s[1]) == 2)(group_state(cluster.bootstrap, group)), 60,
                 "two kcat members in a stable group")
        values = produce(cluster.bootstrap, topic, 120, 6)
        wait_for(lambda: len(lines[0]) + len(lines[1]) >= 120, 60, "every message")
        got = [v for ls in lines for _, v in ls]
        assert sorted(got) == sorted(v.decode() for v in values), "each message exactly once"
        parts = [{int(p) for p, _ in ls} for ls in lines]
        assert parts[0] and parts[1] and not (parts[0] & parts[1]), f"partitions shared: {parts}"
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()


def test_coordinator_failover_on_three_brokers(cluster3):
    c = cluster3
    topic, group = uniq("failover"), uniq("g-failover")
    create_topic(c.bootstrap, topic, 3, rf=3)
    values = produce(c.bootstrap, topic, 60, 3)
    m = make_member("confluent", c.bootstrap, group, topic)
    first, done = [], {}
    wait_for(lambda: len(first) >= 30, 60, "30 messages", step=lambda: [
        (first.append((p, o, v)), done.__setitem__(p, o + 1)) for p, o, v in m.poll(0.2) if len(first) < 30
    ])
    m.commit(done)
    m.close()
    # The coordinator is the leader of the group's __consumer_offsets partition.
    md = admin(c.bootstrap).list_topics("__consumer_offsets", timeout=30)
    partitions = md.topics["__consumer_offsets"].partitions
    coord = partitions[java_partition(group, len(partitions))].leader
    assert coord in c.ports
    c.kill(coord)
    try:
        survivors = ",".join(c.addr(b) for b in c.ports if b != coord)
        second = []
        m2 = make_member("confluent", survivors, group, topic)
        wait_for(lambda: len(first) + len(second) >= 60, 120, "the rest from a new coordinator",
                 step=lambda: second.extend(m2.poll(0.2)))
        m2.close()
        assert sorted(v for *_, v in first + second) == sorted(values)
    finally:
        c.start(coord)
