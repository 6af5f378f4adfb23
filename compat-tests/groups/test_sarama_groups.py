"""sarama's ConsumerGroup (Debian sarama 1.22.1, go/saramagroup/main.go) against a real
gregor broker: Consume in a loop, MarkMessage per record, sarama's offset manager
committing what was marked (every second and when a session ends), Close leaving the
group. sarama speaks the oldest group protocol versions gregor serves (JoinGroup v1,
SyncGroup/Heartbeat/LeaveGroup v0, OffsetFetch v1, OffsetCommit v1) and assigns with its
own range strategy. Conditions are polled with deadlines; nothing sleeps a fixed time to
wait for one."""

import collections
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from builds import go_binary  # noqa: E402
from checks import ck_produce, make_messages, verify_roundtrip  # noqa: E402
from clients import DriverMember, committed_offsets, create_topic, describe_by_client, parse_parts, uniq, wait_for  # noqa: E402



class Member(DriverMember):
    """One saramagroup process (see go/saramagroup/main.go for its output lines)."""

    def __init__(self, bs, group, topic, count=None, idle_ms=600_000, client_id="sarama-group"):
        args = ["-brokers", bs, "-group", group, "-topic", topic, "-idle-ms", idle_ms, "-client-id", client_id]
        if count is not None:
            args += ["-count", count]
        super().__init__(f"saramagroup {client_id}", [go_binary("saramagroup"), *map(str, args)])

    def sessions(self):
        """[(ms, generation, partitions)] per SETUP (a session began) and CLEANUP (ended,
        partitions None)."""
        out = []
        for line in self.lines_starting(("SETUP\t", "CLEANUP\t")):
            f = line.split("\t")
            if f[0] == "SETUP":
                out.append((int(f[1]), int(f[2]), parse_parts(f[4])))
            else:
                out.append((int(f[1]), int(f[2]), None))
        return out

    def owns(self):
        """The claims of the current session; set() between sessions, None before one."""
        s = self.sessions()
        if not s:
            return None
        return s[-1][2] if s[-1][2] is not None else set()

    def errors(self):
        return self.lines_starting("ERR\t")


def printed_ends(recs):
    """{partition: offset after the last record printed}."""
    ends = collections.defaultdict(int)
    for r in recs:
        ends[r.partition] = max(ends[r.partition], r.offset + 1)
    return dict(ends)


# --------------------------------------------------------------------------- scenarios


def test_one_member_reads_everything_once_and_commits_on_close(cluster):
    bs = cluster.bootstrap
    topic, group = uniq("sarama-group-all"), uniq("g-sarama-all")
    create_topic(bs, topic, 3)
    sent = make_messages("sg", 150)
    acks = ck_produce(bs, topic, sent)
    # No count: it runs until nothing came for 8 s, so a duplicate would be printed too.
    m = Member(bs, group, topic, idle_ms=8000)
    try:
        count = m.finish(timeout=120)
    finally:
        m.kill()
    recs = m.records()
    assert count == len(recs) == len(sent), f"printed {len(recs)} records (CLOSED says {count}), produced {len(sent)}"
    verify_roundtrip(sent, recs, acks=acks)
    assert m.sessions()[0][2] == {0, 1, 2}, f"the only member claims every partition: {m.sessions()}"
    assert committed_offsets(bs, group) == printed_ends(recs), "the offsets marked were committed when the session ended"


def test_a_restarted_member_resumes_at_the_committed_offsets(cluster):
    bs = cluster.bootstrap
    topic, group = uniq("sarama-group-resume"), uniq("g-sarama-resume")
    create_topic(bs, topic, 3)
    sent = make_messages("sr", 90)
    acks = ck_produce(bs, topic, sent)
    first = Member(bs, group, topic, count=45, idle_ms=60_000)
    try:
        assert first.finish(timeout=120) == 45
    finally:
        first.kill()
    got1 = first.records()
    assert len(got1) == 45, f"the first member printed {len(got1)} records, asked for 45"
    ends = printed_ends(got1)
    commits = committed_offsets(bs, group)
    assert {p: commits.get(p, 0) for p in range(3)} == {p: ends.get(p, 0) for p in range(3)}, (
        f"committed {commits}, but the first member marked up to {ends}")

    second = Member(bs, group, topic, idle_ms=8000)
    try:
        second.finish(timeout=120)
    finally:
        second.kill()
    got2 = second.records()
    for p in range(3):
        offsets = sorted(r.offset for r in got2 if r.partition == p)
        if offsets:
            assert offsets[0] == ends.get(p, 0), f"partition {p}: the restarted member began at {offsets[0]}, committed {ends.get(p, 0)}"
    verify_roundtrip(sent, got1 + got2, acks=acks)
    assert committed_offsets(bs, group) == printed_ends(got1 + got2)


def test_two_members_split_six_partitions(cluster):
    bs = cluster.bootstrap
    topic, group = uniq("sarama-group-split"), uniq("g-sarama-split")
    create_topic(bs, topic, 6)
    a = Member(bs, group, topic, client_id="sarama-a")
    members = [a]
    try:
        wait_for(lambda: a.owns() == set(range(6)) and describe_by_client(bs, group)[0] == "STABLE", 90,
                 "member a to claim all 6 partitions", step=a.check_alive, info=lambda: (a.sessions(), describe_by_client(bs, group)))
        phase1 = make_messages("ss1", 300, keys=30)
        ck_produce(bs, topic, phase1)
        wait_for(lambda: len(a.records()) >= 300, 90, "member a to read phase 1", info=lambda: len(a.records()))

        b = Member(bs, group, topic, client_id="sarama-b")
        members.append(b)

        def split():
            state, protocol, owners = describe_by_client(bs, group)
            parts = list(owners.values())
            assert sum(map(len, parts)) == len(set().union(set(), *parts)), f"a partition is owned twice: {owners}"
            return (state == "STABLE" and protocol == "range" and set(owners) == {"sarama-a", "sarama-b"}
                    and set().union(*parts) == set(range(6)) and all(len(p) == 3 for p in parts)
                    and owners["sarama-a"] == a.owns() and owners["sarama-b"] == b.owns()) and owners

        owners = wait_for(split, 120, "a stable 3+3 split that both members applied",
                          step=lambda: [m.check_alive() for m in members],
                          info=lambda: (describe_by_client(bs, group), a.sessions(), b.sessions()))
        phase2 = make_messages("ss2", 300, keys=30)
        ck_produce(bs, topic, phase2)
        total = lambda: len(a.records()) + len(b.records())  # noqa: E731
        wait_for(lambda: total() >= 600, 90, "both members to read phase 2", info=total)
        assert (a.owns(), b.owns()) == (owners["sarama-a"], owners["sarama-b"]), "the split changed while reading phase 2"
        a.terminate()
        b.terminate()
    finally:
        for m in members:
            m.kill()

    recs = {"sarama-a": a.records(), "sarama-b": b.records()}
    counts = collections.Counter(r.value for rs in recs.values() for r in rs)
    dupes = [v[:20] for v, n in counts.items() if n > 1]
    assert not dupes, f"consumed twice: {dupes[:5]}"
    assert set(counts) == {m.value for m in phase1 + phase2}, "every message of both phases consumed"
    phase2_values = {m.value for m in phase2}
    for name, rs in recs.items():
        for r in rs:
            if r.value in phase2_values:
                assert r.partition in owners[name], f"{r.value[:20]} from partition {r.partition} read by {name}, which claims {owners[name]}"

    # Claims over time (one clock): a session's partitions are released (CLEANUP) before
    # another member's session claims them (SETUP).
    for p in range(6):
        spans = []
        for name, m in (("sarama-a", a), ("sarama-b", b)):
            start = None
            for ms, _gen, claimed in m.sessions():
                if claimed is not None and p in claimed:
                    start = ms
                elif claimed is None and start is not None:
                    spans.append((start, ms, name))
                    start = None
            assert start is None, f"{name} ended with an open session: {m.sessions()}"
        spans.sort()
        for (s1, e1, n1), (s2, e2, n2) in zip(spans, spans[1:]):
            assert n1 == n2 or e1 <= s2, f"partition {p} claimed by {n1} until {e1} and by {n2} from {s2}"
    assert committed_offsets(bs, group) == printed_ends(recs["sarama-a"] + recs["sarama-b"]), "commits cover every record read"
