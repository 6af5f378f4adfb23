#!/usr/bin/env python3
"""Old-protocol benchmarks: what message format conversion costs the broker.

    python3 benches/legacy_bench.py [--records N] [--value-size B] [--gregor BIN] [--v2-only]

On one gregor broker, the same data read by the same client speaking a v2 fetch and an
old fetch that gregor down-converts (kcat/librdkafka: modern vs
broker.version.fallback=0.9.0 = Fetch v1, message format v0; sarama: config.Version
2.1.0 vs 0.10.2 = Fetch v3, message format v1), uncompressed and lz4; and the same
messages produced as v2 batches and as message format v1/v0 sets the broker up-converts.
Broker CPU is utime+stime of the broker process from /proc, so client CPU does not count.
Numbers only, never assertions (for the closing note)."""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "compat-tests"))
from builds import go_binary  # noqa: E402
from checks import create_topic, encode_msg, Msg  # noqa: E402
from gregor_cluster import GregorCluster  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
OLD_KCAT = ["-X", "api.version.request=false", "-X", "broker.version.fallback=0.9.0"]


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def measure(broker_pid, fn):
    c0, t0 = cpu_seconds(broker_pid), time.time()
    fn()
    return time.time() - t0, cpu_seconds(broker_pid) - c0


def log_bytes(cluster, topic):
    d = cluster.dir / "broker-1"
    return sum(f.stat().st_size for p in d.glob(f"{topic}-*") for f in p.glob("*.log"))


def kcat_consume(bs, topic, n, old):
    args = ["kcat", "-b", bs, "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%o\n",
            "-X", "fetch.message.max.bytes=1048576"] + (OLD_KCAT if old else [])
    r = subprocess.run(args, capture_output=True, text=True, timeout=900)
    got = r.stdout.count("\n")
    assert got == n, f"kcat read {got}/{n}: {r.stderr[-500:]}"


def sarama_consume(bs, topic, n, version):
    r = subprocess.run([go_binary("sarama"), "consume", "-brokers", bs, "-topic", topic, "-offset", "oldest",
                        "-count", str(n), "-version", version, "-idle-ms", "20000"],
                       capture_output=True, text=True, timeout=900)
    got = r.stdout.count("\nREC\t") + r.stdout.startswith("REC\t")
    assert got == n, f"sarama {version} read {got}/{n}: {r.stderr[-500:]}"


def load(bs, topic, n, size, codec):
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": bs, "linger.ms": 20, "batch.size": 1 << 20, "compression.type": codec})
    values = [bench_value(size, i) for i in range(1000)]
    for i in range(n):
        while True:
            try:
                p.produce(topic, key=b"k%d" % (i % 1000), value=values[i % 1000])
                break
            except BufferError:  # the client's queue is full: let it drain
                p.poll(0.1)
        if i % 10000 == 0:
            p.poll(0)
    assert p.flush(120) == 0


def bench_value(size, seed):
    """Hex of pseudo-random bytes: about 2x compressible, like typical payloads."""
    import random
    r = random.Random(seed)
    return bytes(r.getrandbits(8) for _ in range(size // 2)).hex().encode()[:size]


def row(name, gb, secs, cpu):
    return f"| {name} | {gb * 1000 / secs:.1f} | {cpu / gb:.2f} | {secs:.2f} |"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=300_000)
    ap.add_argument("--value-size", type=int, default=200)
    ap.add_argument("--gregor", default=os.environ.get("GREGOR_BIN"))
    ap.add_argument("--v2-only", action="store_true", help="only the v2 paths (to compare a build without old versions)")
    a = ap.parse_args()
    if a.gregor:
        os.environ["GREGOR_BIN"] = a.gregor
    n, size = a.records, a.value_size
    with GregorCluster(brokers=1) as c:
        bs, pid = c.bootstrap, c.procs["broker-1"].pid
        print(f"{n} records of {size} B, one partition; broker CPU from /proc\n")
        print("| fetch | MB/s (stored bytes) | broker CPU-s per GB | seconds |")
        print("|---|---|---|---|")
        for codec in ["none", "lz4"]:
            topic = f"fetch-{codec}"
            create_topic(bs, topic, 1)
            load(bs, topic, n, size, codec)
            gb = log_bytes(c, topic) / 1e9
            for name, fn in [
                (f"kcat v2 fetch ({codec})", lambda: kcat_consume(bs, topic, n, False)),
                (f"kcat Fetch v1 → format v0 ({codec})", lambda: kcat_consume(bs, topic, n, True)),
                (f"sarama 2.1.0, Fetch v10 ({codec})", lambda: sarama_consume(bs, topic, n, "2.1.0")),
                (f"sarama 0.10.2, Fetch v3 → format v1 ({codec})", lambda: sarama_consume(bs, topic, n, "0.10.2.0")),
            ]:
                if a.v2_only and "→" in name:
                    continue
                secs, cpu = measure(pid, fn)
                print(row(name, gb, secs, cpu), flush=True)
        if a.v2_only:
            return
        print("\n| produce | MB/s (payload) | broker CPU-s per GB | seconds |")
        print("|---|---|---|---|")
        pn = n // 3
        values = [bench_value(size, i) for i in range(1000)]
        lines = "".join(encode_msg(Msg(b"k%d" % (i % 1000), values[i % 1000], [], None)) + "\n" for i in range(pn))
        gb = pn * (size + 5) / 1e9
        for version, label in [("2.1.0", "sarama 2.1.0, Produce v3 (v2 batches)"), ("0.10.2.0", "sarama 0.10.2, Produce v2 (format v1, up-converted)")]:
            for codec in ["none", "lz4"]:
                topic = f"produce-{version}-{codec}"
                # sarama's requests hold up to Producer.MaxMessageBytes (2 MB in the driver).
                create_topic(bs, topic, 1, config={"max.message.bytes": "4194304"})

                def produce():
                    r = subprocess.run([go_binary("sarama"), "produce", "-brokers", bs, "-topic", topic, "-codec", codec,
                                        "-version", version], input=lines, capture_output=True, text=True, timeout=900)
                    errors = [l for l in r.stdout.splitlines() if l.startswith("ERR")]
                    assert r.returncode == 0, (errors[:3], len(errors), r.stderr[-500:])

                secs, cpu = measure(pid, produce)
                print(row(f"{label} ({codec})", gb, secs, cpu), flush=True)
        kv = "".join(f"k{i % 1000}\t{values[i % 1000].decode()}\n" for i in range(pn))
        for old, label in [(False, "kcat v2 produce"), (True, "kcat Produce v1 (format v0, up-converted)")]:
            topic = f"produce-kcat-{old}"
            create_topic(bs, topic, 1)

            def produce():
                r = subprocess.run(["kcat", "-b", bs, "-P", "-t", topic, "-K", "\t", "-X", "linger.ms=20"] + (OLD_KCAT if old else []),
                                   input=kv, capture_output=True, text=True, timeout=900)
                assert r.returncode == 0, r.stderr[-500:]

            secs, cpu = measure(pid, produce)
            print(row(label, gb, secs, cpu), flush=True)


if __name__ == "__main__":
    main()
