"""Shared pieces of the client compat suites: the messages every client sends, the
checks every consumed result must pass, the on-disk view of what the broker stored, and
a line protocol for the client driver programs (Java, Go, Node) run as subprocesses.

Driver line protocol (tab-separated, one record a line):
  producer stdin   TS KEY VALUE HEADERS [PARTITION]
  producer stdout  ACK idx partition offset   |   ERR idx message
  consumer stdout  READY   then   REC partition offset ts ts_type KEY VALUE HEADERS
where TS is epoch ms or "-" (client default), KEY and VALUE are base64 or "-" for null,
HEADERS is "" or comma-separated "keyb64:valueb64" pairs (value "-" for null).
"""

import base64
import os
import queue
import struct
import subprocess
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Tuple

HERE = Path(__file__).resolve().parent
DEPS = HERE / ".deps"

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
CODEC_ID = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}

LARGE_VALUE_SIZE = 900 * 1024


@dataclass
class Msg:
    key: Optional[bytes]
    value: Optional[bytes]
    headers: List[Tuple[str, Optional[bytes]]] = field(default_factory=list)
    ts: Optional[int] = None  # epoch ms; None = let the client stamp it


@dataclass
class Rec:
    partition: int
    offset: int
    key: Optional[bytes]
    value: Optional[bytes]
    headers: List[Tuple[str, Optional[bytes]]]
    ts: int
    ts_type: int = 0  # 0 CreateTime, 1 LogAppendTime (-1/None unknown)


def now_ms():
    return int(time.time() * 1000)


def make_messages(tag, n=60, keys=8, ts_base=None, headers=True):
    """n keyed messages with unique values, headers and strictly increasing timestamps.
    Timestamps are in the recent past (1 s apart), so by-timestamp lookups are exact."""
    ts_base = ts_base if ts_base is not None else now_ms() - 3_600_000
    out = []
    for i in range(n):
        hs = [("seq", str(i).encode()), ("src", tag.encode())] if headers else []
        out.append(
            Msg(
                key=f"key-{i % keys}".encode(),
                # compressible padding: clients skip compressing batches that would not shrink
                value=f"{tag}-value-{i}:{'gregor ' * 30}".encode(),
                headers=hs,
                ts=ts_base + i * 1000,
            )
        )
    return out


def large_message(tag):
    """A 900 KB value: incompressible-ish bytes so every codec keeps it large."""
    body = os.urandom(LARGE_VALUE_SIZE // 2).hex().encode()
    return Msg(key=f"{tag}-big".encode(), value=body, headers=[("size", str(len(body)).encode())], ts=None)


# ---------------------------------------------------------------------------- checks


def verify_roundtrip(sent, recs, start_offsets=None, acks=None, check_ts=True, min_partitions=2):
    """The consumed records are exactly the sent messages, once each, with same key →
    same partition, per-partition send order, contiguous offsets from the log start
    (`start_offsets`, default 0), headers and timestamps intact, and acks (partition,
    offset) agreeing with where the records were found."""
    by_value = {}
    for i, m in enumerate(sent):
        assert m.value not in by_value, "test bug: sent values must be unique"
        by_value[m.value] = i
    seen = {}
    for r in recs:
        assert r.value in by_value, f"unexpected record {r.value!r:.80} at {r.partition}/{r.offset}"
        i = by_value[r.value]
        assert i not in seen, f"message {i} ({r.value!r:.60}) consumed twice: {seen[i]} and {(r.partition, r.offset)}"
        seen[i] = (r.partition, r.offset)
        m = sent[i]
        assert r.key == m.key, f"message {i}: key {r.key!r} != sent {m.key!r}"
        assert [(k, v) for k, v in r.headers] == [(k, v) for k, v in m.headers], f"message {i}: headers {r.headers} != {m.headers}"
        if check_ts and m.ts is not None:
            assert r.ts == m.ts, f"message {i}: timestamp {r.ts} != sent {m.ts}"
    missing = sorted(set(range(len(sent))) - set(seen))
    assert not missing, f"{len(missing)} of {len(sent)} messages never consumed, e.g. {[sent[i].value for i in missing[:3]]}"

    key_parts = defaultdict(set)
    for i, (p, _) in seen.items():
        if sent[i].key is not None:
            key_parts[sent[i].key].add(p)
    spread = {k: ps for k, ps in key_parts.items() if len(ps) > 1}
    assert not spread, f"same key landed in several partitions: {spread}"

    per_part = defaultdict(list)
    for r in recs:
        per_part[r.partition].append(r)
    if min_partitions:
        assert len(per_part) >= min_partitions, f"keys should spread over partitions, all in {sorted(per_part)}"
    for p, rs in per_part.items():
        rs.sort(key=lambda r: r.offset)
        order = [by_value[r.value] for r in rs]
        assert order == sorted(order), f"partition {p}: records out of send order: {order}"
        offsets = [r.offset for r in rs]
        first = (start_offsets or {}).get(p, 0)
        assert offsets == list(range(first, first + len(rs))), f"partition {p}: offsets not contiguous from {first}: {offsets}"
    if acks is not None:
        assert len(acks) == len(sent), f"{len(acks)} acks for {len(sent)} messages"
        for i, ack in enumerate(acks):
            assert tuple(ack) == seen[i], f"message {i}: acked at {ack}, consumed at {seen[i]}"
    return per_part


def verify_only_new(old, new, recs):
    """A consumer started at the end saw all `new` messages and none of `old`."""
    old_values = {m.value for m in old}
    stale = [r.value for r in recs if r.value in old_values]
    assert not stale, f"consumer from end saw {len(stale)} old messages, e.g. {stale[:3]}"
    got = [r.value for r in recs]
    assert sorted(got) == sorted(m.value for m in new), f"consumer from end got {got}, expected {[m.value for m in new]}"


def expected_offsets_by_ts(recs):
    """{partition: [(ts, offset), ...]} sorted by offset, from consumed records."""
    out = defaultdict(list)
    for r in sorted(recs, key=lambda r: (r.partition, r.offset)):
        out[r.partition].append((r.ts, r.offset))
    return out


def wait_for(cond, timeout, what, interval=0.05):
    deadline = time.time() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


# ------------------------------------------------------------- what the broker stored


@dataclass
class StoredBatch:
    base_offset: int
    last_offset: int
    magic: int
    codec: int
    timestamp_type: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    record_count: int
    size: int
    base_timestamp: int = -1
    max_timestamp: int = -1


def stored_batches(cluster, topic, partition, broker_id=None):
    """Record batch headers as gregor wrote them to its segment files (Kafka's on-disk
    format), read straight from the broker's log dir."""
    ids = [broker_id] if broker_id else list(cluster.ports)
    for b in ids:
        d = cluster.dir / f"broker-{b}" / f"{topic}-{partition}"
        if d.is_dir():
            break
    else:
        raise AssertionError(f"no log dir for {topic}-{partition} under {cluster.dir}")
    out = []
    for seg in sorted(d.glob("*.log")):
        data = seg.read_bytes()
        pos = 0
        while pos + 61 <= len(data):
            base_offset, length = struct.unpack_from(">qi", data, pos)
            if length <= 0 or pos + 12 + length > len(data):
                break
            (_epoch, magic, _crc, attrs, last_delta, bts, mts, pid, pepoch, bseq, count) = struct.unpack_from(
                ">ibIhiqqqhii", data, pos + 12
            )
            out.append(
                StoredBatch(
                    base_offset, base_offset + last_delta, magic, attrs & 7, (attrs >> 3) & 1, pid, pepoch, bseq, count, 12 + length, bts, mts
                )
            )
            pos += 12 + length
    return out


def assert_stored_codec(cluster, topic, partitions, codec):
    """Every batch stored for the topic carries the codec the client was asked to use:
    the client really compressed with it and the broker kept the bytes as sent."""
    want = CODEC_ID[codec]
    seen = 0
    for p in partitions:
        for b in stored_batches(cluster, topic, p):
            assert b.magic == 2, f"{topic}-{p}@{b.base_offset}: magic {b.magic}"
            assert b.codec == want, f"{topic}-{p}@{b.base_offset}: stored codec {b.codec}, client asked for {codec}"
            seen += 1
    assert seen, f"no batches stored for {topic}"


# ------------------------------------------------------------- driver line protocol


def _b64(b):
    return "-" if b is None else base64.b64encode(b).decode()


def _unb64(s):
    return None if s == "-" else base64.b64decode(s)


def encode_msg(m, partition=None):
    hs = ",".join(f"{_b64(k.encode())}:{_b64(v)}" for k, v in m.headers)
    fields = ["-" if m.ts is None else str(m.ts), _b64(m.key), _b64(m.value), hs]
    if partition is not None:
        fields.append(str(partition))
    return "\t".join(fields)


def decode_rec(line):
    parts = line.rstrip("\n").split("\t")
    assert parts[0] == "REC", line
    _, p, off, ts, tst, k, v = parts[:7]
    hs = parts[7] if len(parts) > 7 else ""
    headers = []
    if hs:
        for pair in hs.split(","):
            hk, hv = pair.split(":")
            headers.append((_unb64(hk).decode(), _unb64(hv)))
    return Rec(int(p), int(off), _unb64(k), _unb64(v), headers, int(ts), int(tst))


class Driver:
    """A client driver subprocess whose stdout is read line by line with deadlines."""

    def __init__(self, args, stdin_lines=None, env=None, cwd=None):
        self.args = [str(a) for a in args]
        self.proc = subprocess.Popen(
            self.args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=cwd,
            bufsize=1,
        )
        self.lines = queue.Queue()
        self.stderr = []
        threading.Thread(target=self._pump, args=(self.proc.stdout, self.lines), daemon=True).start()
        threading.Thread(target=self._drain_err, daemon=True).start()
        if stdin_lines is not None:
            self.send(stdin_lines, close=True)

    @staticmethod
    def _pump(stream, q):
        for line in stream:
            q.put(line.rstrip("\n"))
        q.put(None)

    def _drain_err(self):
        for line in self.proc.stderr:
            self.stderr.append(line)

    def send(self, lines, close=False):
        try:
            for line in lines:
                self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
            if close:
                self.proc.stdin.close()
        except BrokenPipeError:
            pass

    def next_line(self, deadline):
        while True:
            left = deadline - time.time()
            if left <= 0:
                raise AssertionError(f"timed out reading from {self.args[:3]}...; stderr:\n{self.err_tail()}")
            try:
                line = self.lines.get(timeout=min(left, 0.5))
            except queue.Empty:
                continue
            return line

    def wait_line(self, prefix, timeout=60):
        deadline = time.time() + timeout
        while True:
            line = self.next_line(deadline)
            if line is None:
                raise AssertionError(f"{self.args[:3]} exited before {prefix!r} (rc={self.proc.wait()}); stderr:\n{self.err_tail()}")
            if line.startswith(prefix):
                return line

    def all_lines(self, timeout=120):
        """Every stdout line until exit; asserts exit code 0."""
        deadline = time.time() + timeout
        out = []
        while True:
            line = self.next_line(deadline)
            if line is None:
                break
            out.append(line)
        rc = self.proc.wait(timeout=max(1, deadline - time.time()))
        assert rc == 0, f"{' '.join(self.args[:4])} exited {rc}; stdout tail {out[-5:]}; stderr:\n{self.err_tail()}"
        return out

    def records(self, count, timeout=60):
        """Reads REC lines until `count` records arrived."""
        deadline = time.time() + timeout
        recs = []
        while len(recs) < count:
            line = self.next_line(deadline)
            if line is None:
                raise AssertionError(f"consumer exited after {len(recs)}/{count} records; stderr:\n{self.err_tail()}")
            if line.startswith("REC\t"):
                recs.append(decode_rec(line))
        return recs

    def err_tail(self, n=30):
        time.sleep(0.1)
        return "".join(self.stderr[-n:])

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def parse_acks(lines, n):
    """ACK lines from a driver producer → [(partition, offset)] in send order."""
    acks = [None] * n
    errors = [l for l in lines if l.startswith("ERR")]
    assert not errors, f"producer errors: {errors[:5]}"
    for l in lines:
        if l.startswith("ACK\t"):
            _, i, p, off = l.split("\t")[:4]
            acks[int(i)] = (int(p), int(off))
    assert None not in acks, f"missing acks: {[i for i, a in enumerate(acks) if a is None][:10]}"
    return acks


# ------------------------------------------------------------- topic setup (librdkafka)


def create_topic(bootstrap, topic, partitions=3, replication=1, config=None):
    """Creates a topic through confluent-kafka's AdminClient and waits until every
    partition has a leader in the metadata (setup for clients without an admin API)."""
    from confluent_kafka.admin import AdminClient, NewTopic

    a = AdminClient({"bootstrap.servers": bootstrap})
    a.create_topics([NewTopic(topic, partitions, replication, config=config or {})])[topic].result(30)
    wait_leaders(bootstrap, topic, partitions)


def ck_produce(bs, topic, msgs, partition=None, **conf):
    """Produces with confluent-kafka; returns [(partition, offset)] in send order."""
    acks = [None] * len(msgs)
    errors = []
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bs, "linger.ms": 5, **conf})
    for i, m in enumerate(msgs):

        def cb(err, md, i=i):
            if err:
                errors.append((i, err))
            else:
                acks[i] = (md.partition(), md.offset())

        kw = {"partition": partition} if partition is not None else {}
        p.produce(topic, key=m.key, value=m.value, headers=m.headers, timestamp=m.ts or 0, on_delivery=cb, **kw)
        p.poll(0)
    assert p.flush(60) == 0, "messages left unflushed"
    assert not errors, errors[:5]
    return acks


def wait_leaders(bootstrap, topic, partitions):
    from confluent_kafka.admin import AdminClient

    a = AdminClient({"bootstrap.servers": bootstrap})

    def ready():
        md = a.list_topics(topic, timeout=10).topics.get(topic)
        return md is not None and md.error is None and len(md.partitions) == partitions and all(
            p.leader >= 0 and p.error is None for p in md.partitions.values()
        )

    wait_for(ready, 30, f"leaders for {topic}", interval=0.1)


def from_end_with_markers(send, poll, partitions, old, new, tag, timeout=60):
    """For consumers with no way to tell when their "from the end" positions are resolved:
    sends a marker to every partition, round after round, until the consumer has received
    a marker from each (so every position is resolved), then sends `new`. `send(msgs,
    partition)` produces and flushes; `poll()` returns the records received since the last
    call. Asserts the consumer never saw an `old` message and got every `new` one."""
    deadline = time.time() + timeout
    got, marked, rnd = [], set(), 0
    while marked != set(partitions):
        assert time.time() < deadline, f"consumer from end never got markers on {set(partitions) - marked}"
        for p in partitions:
            if p not in marked:
                send([Msg(key=b"marker", value=f"{tag}-marker-{rnd}-{p}".encode(), headers=[])], p)
        rnd += 1
        for _ in range(5):
            recs = poll()
            got += recs
            marked |= {r.partition for r in recs if r.value.startswith(f"{tag}-marker-".encode())}
            if marked == set(partitions):
                break
    send(new, None)
    want = {m.value for m in new}
    while not want <= {r.value for r in got}:
        assert time.time() < deadline, f"consumer from end got {len(want & {r.value for r in got})}/{len(want)} new messages"
        got += poll()
    markers = [r for r in got if r.value.startswith(f"{tag}-marker-".encode())]
    rest = [r for r in got if not r.value.startswith(f"{tag}-marker-".encode())]
    verify_only_new(old, new, rest)
    return markers, rest
