"""The official Java consumer (kafka-clients 3.9.1) in consumer groups, run as
kafka-console-consumer runs it (java/GroupConsumer.java: subscribe, the consumer's default
group settings — assignors [range, cooperative-sticky], auto commit on, commit on close),
against a real gregor broker. Records are written by the Java console producer
(java/ConsoleProducer.java, acks=all, idempotence on). Conditions are polled with
deadlines; nothing sleeps a fixed time to wait for one."""

import collections
import os
import re
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from builds import java_cmd  # noqa: E402
from checks import Driver, encode_msg, make_messages, parse_acks, verify_roundtrip  # noqa: E402
from clients import DriverMember, committed_offsets, create_topic, describe_by_client, parse_parts, uniq, wait_for  # noqa: E402



def java_produce(bs, topic, msgs):
    """kafka-console-producer equivalent; returns [(partition, offset)] in send order."""
    d = Driver(java_cmd("ConsoleProducer", "--bootstrap-server", bs, "--topic", topic),
               stdin_lines=[encode_msg(m) for m in msgs])
    return parse_acks(d.all_lines(timeout=180), len(msgs))


class Member(DriverMember):
    """A GroupConsumer JVM (see java/GroupConsumer.java for its output lines)."""

    exit_on_sigterm = 143  # the JVM exits 128 + SIGTERM once its shutdown hook has run

    def __init__(self, bs, topic, group=None, max_messages=None, timeout_ms=600_000, props=()):
        args = ["--bootstrap-server", bs, "--topic", topic, "--from-beginning", "--timeout-ms", timeout_ms]
        if group:
            args += ["--group", group]
        if max_messages is not None:
            args += ["--max-messages", max_messages]
        for p in props:
            args += ["--consumer-property", p]
        super().__init__("GroupConsumer", java_cmd("GroupConsumer", *args))

    def owns(self):
        """The member's assignment after its last rebalance callback (None before one)."""
        owns = self.lines_starting("OWNS\t")
        return None if not owns else parse_parts(owns[-1].split("\t")[2])

    def ownership(self):
        """[(ms, set of partitions owned from then on)] in callback order."""
        return [(int(l.split("\t")[1]), parse_parts(l.split("\t")[2])) for l in self.lines_starting("OWNS\t")]

    def callbacks(self, kind, upto=None):
        """The partitions of each `kind` (REVOKED, ASSIGNED, LOST) callback, among the first
        `upto` output lines (all by default)."""
        return [parse_parts(l.split("\t")[2]) for l in self.lines_starting(kind + "\t", upto)]

    def header(self):
        return self.wait_line("GROUP\t")


# --------------------------------------------------------------------------- scenarios


def test_console_consumer_from_beginning_reads_what_the_console_producer_wrote(cluster):
    bs = cluster.bootstrap
    topic = uniq("java-group-all")
    create_topic(bs, topic, 3)
    sent = make_messages("jg", 200)
    acks = java_produce(bs, topic, sent)
    # No --group and no --max-messages: a generated group, then it runs until nothing
    # came for 10 s; a duplicate would be printed too.
    m = Member(bs, topic, timeout_ms=10_000)
    try:
        header = m.header()
        assert re.fullmatch(r"GROUP\tconsole-consumer-\d{1,5}\tautocommit=false\tstrategies=\[range, cooperative-sticky\]", header), header
        count = m.finish(timeout=120)
        recs = m.records()
        assert count == len(recs) == len(sent), f"printed {len(recs)} records (CLOSED says {count}), produced {len(sent)}"
        verify_roundtrip(sent, recs, acks=acks)
        assert m.callbacks("ASSIGNED") and m.callbacks("ASSIGNED")[0] == {0, 1, 2}, m.lines[:3]
    finally:
        m.kill()


def test_consume_half_close_and_a_new_member_resumes_at_the_committed_offsets(cluster):
    bs = cluster.bootstrap
    topic, group = uniq("java-group-resume"), uniq("g-java-resume")
    create_topic(bs, topic, 3)
    sent = make_messages("jr", 90)
    acks = java_produce(bs, topic, sent)
    first = Member(bs, topic, group, max_messages=45, timeout_ms=60_000)
    try:
        assert first.finish(timeout=120) == 45
    finally:
        first.kill()
    got1 = first.records()
    assert len(got1) == 45, f"first consumer printed {len(got1)} records, asked for 45"
    # Auto commit on close committed exactly what was printed: per partition the offset
    # after the last printed record.
    printed_end = collections.defaultdict(int)
    for r in got1:
        printed_end[r.partition] = max(printed_end[r.partition], r.offset + 1)
    commits = committed_offsets(bs, group)
    for p in range(3):
        assert commits.get(p, 0) == printed_end[p], (
            f"partition {p}: committed {commits.get(p)} after printing up to offset {printed_end[p]} (all commits {commits})")

    second = Member(bs, topic, group, timeout_ms=10_000)
    try:
        second.finish(timeout=120)
    finally:
        second.kill()
    got2 = second.records()
    for p in range(3):
        offsets = sorted(r.offset for r in got2 if r.partition == p)
        if offsets:
            assert offsets[0] == printed_end[p], f"partition {p}: the new member started at {offsets[0]}, committed {printed_end[p]}"
    verify_roundtrip(sent, got1 + got2, acks=acks)
    ends = collections.Counter(p for p, _ in acks)
    assert committed_offsets(bs, group) == dict(ends), "the second member's close committed the log end of every partition"


@pytest.mark.parametrize("strategy,want_protocol", [
    # The default [range, cooperative-sticky]: every member votes for its first choice,
    # range, and the consumer runs the protocol both assignors support, eager.
    (None, "range"),
    ("org.apache.kafka.clients.consumer.CooperativeStickyAssignor", "cooperative-sticky"),
], ids=["default-assignors", "cooperative-sticky"])
def test_two_members_split_six_partitions(cluster, strategy, want_protocol):
    bs = cluster.bootstrap
    topic, group = uniq("java-group-split"), uniq("g-java-split")
    create_topic(bs, topic, 6)
    props = [f"partition.assignment.strategy={strategy}"] if strategy else []
    a = Member(bs, topic, group, props=props + ["client.id=member-a"])
    members = [a]
    try:
        a.header()
        wait_for(lambda: a.owns() == set(range(6)) and describe_by_client(bs, group)[0] == "STABLE", 90,
                 "member a to own all 6 partitions", step=a.check_alive, info=lambda: (a.owns(), describe_by_client(bs, group)))
        phase1 = make_messages("js1", 300, keys=30)
        java_produce(bs, topic, phase1)
        wait_for(lambda: len(a.records()) >= 300, 90, "member a to read phase 1", info=lambda: len(a.records()))

        b = Member(bs, topic, group, props=props + ["client.id=member-b"])
        members.append(b)

        def split():
            state, protocol, owners = describe_by_client(bs, group)
            parts = list(owners.values())
            # At no moment does the coordinator hand a partition to two members.
            assert sum(map(len, parts)) == len(set().union(*parts)), f"a partition is owned twice: {owners}"
            return (state == "STABLE" and protocol == want_protocol and set(owners) == {"member-a", "member-b"}
                    and set().union(*parts) == set(range(6)) and all(len(p) == 3 for p in parts)
                    and owners["member-a"] == a.owns() and owners["member-b"] == b.owns()) and owners

        owners = wait_for(split, 120, "a stable 3+3 split that both members applied",
                          step=lambda: [m.check_alive() for m in members],
                          info=lambda: (describe_by_client(bs, group), a.owns(), b.owns()))
        phase2 = make_messages("js2", 300, keys=30)
        java_produce(bs, topic, phase2)
        total = lambda: len(a.records()) + len(b.records())  # noqa: E731
        wait_for(lambda: total() >= 600, 90, "both members to read phase 2", info=total)
        # Still the same split after the last records.
        assert (a.owns(), b.owns()) == (owners["member-a"], owners["member-b"])
        before_close = {"member-a": a.line_count(), "member-b": b.line_count()}
        a.terminate()
        b.terminate()
    finally:
        for m in members:
            m.kill()

    recs = {"member-a": a.records(), "member-b": b.records()}
    counts = collections.Counter(r.value for rs in recs.values() for r in rs)
    dupes = [v[:20] for v, n in counts.items() if n > 1]
    assert not dupes, f"consumed twice: {dupes[:5]}"
    assert set(counts) == {m.value for m in phase1 + phase2}, "every message of both phases consumed"
    phase2_values = {m.value for m in phase2}
    for name, rs in recs.items():
        for r in rs:
            if r.value in phase2_values:
                assert r.partition in owners[name], f"{r.value[:20]} from partition {r.partition} read by {name}, which owns {owners[name]}"

    # Ownership as the members saw it, over time (one clock): a partition never belonged
    # to both at once. With cooperative-sticky, b gets its partitions only in the round
    # after a revoked them; a keeps the others throughout.
    for p in range(6):
        spans = []
        for name, m in (("member-a", a), ("member-b", b)):
            start = None
            for ms, owned in m.ownership():
                if p in owned and start is None:
                    start = ms
                elif p not in owned and start is not None:
                    spans.append((start, ms, name))
                    start = None
            if start is not None:
                spans.append((start, float("inf"), name))
        spans.sort()
        for (s1, e1, n1), (s2, e2, n2) in zip(spans, spans[1:]):
            assert n1 == n2 or e1 <= s2, f"partition {p} owned by {n1} until {e1} and by {n2} from {s2}"
    # Before the members closed (close revokes everything they own):
    revoked_by_a = set().union(set(), *a.callbacks("REVOKED", before_close["member-a"]))
    if want_protocol == "cooperative-sticky":
        assert revoked_by_a == owners["member-b"], f"a revoked {revoked_by_a}; cooperative-sticky revokes only what moves"
    else:
        assert revoked_by_a == set(range(6)), f"eager range revokes everything on a rebalance, a revoked {revoked_by_a}"
    assert not a.callbacks("LOST") and not b.callbacks("LOST"), "a member lost its partitions (session or generation lost)"

    # Both closed with auto commit: everything is committed.
    ends = collections.Counter(r.partition for rs in recs.values() for r in rs)
    assert committed_offsets(bs, group) == dict(ends), "commits on close cover every record read"
