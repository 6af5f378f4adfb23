"""A real gregor cluster for compat tests: `gregor zookeeper` plus N `gregor broker`
processes on free loopback ports, each with its own data dir and log file.

Used through the `cluster` fixtures in conftest.py, or directly:

    with GregorCluster(brokers=3) as c:
        c.bootstrap            # "127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3"
        c.kill(1); c.start(1)  # kill -9 broker 1, restart it
"""

import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GREGOR_BIN = os.environ.get("GREGOR_BIN", str(REPO / "target" / "release" / "gregor"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(cond, timeout, what):
    deadline = time.time() + timeout
    while True:
        if cond():
            return
        if time.time() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def four_letter(port, cmd, timeout=5.0):
    """A ZooKeeper four-letter word's answer (the server closes the connection after it)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(cmd.encode())
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out.decode(errors="replace")
            out += chunk


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def metadata_brokers_and_controller(port):
    """A raw Metadata v1 request asking for no topics: (broker ids, controller id), or None
    if the broker does not answer. No client library, so readiness never depends on one."""
    client_id = b"gregor-compat"
    body = struct.pack(">hhih", 3, 1, 7, len(client_id)) + client_id + struct.pack(">i", 0)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(struct.pack(">i", len(body)) + body)
            data = b""
            while len(data) < 4 or len(data) < 4 + struct.unpack(">i", data[:4])[0]:
                chunk = s.recv(65536)
                if not chunk:
                    return None
                data += chunk
    except OSError:
        return None
    pos = 8  # size, correlation id
    (count,) = struct.unpack_from(">i", data, pos)
    pos += 4
    ids = []
    for _ in range(count):
        (node,) = struct.unpack_from(">i", data, pos)
        (host_len,) = struct.unpack_from(">h", data, pos + 4)
        pos += 6 + host_len + 4
        (rack_len,) = struct.unpack_from(">h", data, pos)
        pos += 2 + max(rack_len, 0)
        ids.append(node)
    (controller,) = struct.unpack_from(">i", data, pos)
    return ids, controller


class GregorCluster:
    def __init__(self, brokers=1, broker_config=None, session_timeout_ms=6000, keep_dir=False,
                 zookeeper_hosts=None, chroot="", metrics=False, console=False, gregor_bin=None):
        """`zookeeper_hosts`: an already running ZooKeeper (e.g. Apache ZooKeeper, or an
        ensemble as "h1:p1,h2:p2,h3:p3") to use instead of starting `gregor zookeeper`;
        `chroot`: the brokers' chroot in it. `gregor_bin`: the binary to run (default
        $GREGOR_BIN), e.g. a private copy a concurrent rebuild cannot replace mid-test."""
        self.bin = gregor_bin or GREGOR_BIN
        self.external_zookeeper = zookeeper_hosts
        self.chroot = chroot
        self.n = brokers
        self.extra = dict(broker_config or {})
        self.session_timeout_ms = session_timeout_ms
        self.dir = Path(tempfile.mkdtemp(prefix="gregor-compat-"))
        self.keep_dir = keep_dir
        self.zk_port = free_port()
        self.ports = {i: free_port() for i in range(1, brokers + 1)}
        self.procs = {}
        # metrics=True: every broker serves /metrics (metrics.listener) and so does the
        # mini-zookeeper (metrics_listener), on ports of their own.
        self.metrics_ports = {i: free_port() for i in self.ports} if metrics else {}
        self.zk_metrics_port = free_port() if metrics else None
        # console=True: the web console on each broker's metrics listener.
        self.console = console and metrics

    # ---- lifecycle ----
    def __enter__(self):
        if self.external_zookeeper is None:
            self.start_zookeeper()
        for i in self.ports:
            self.start(i, wait=False)
        for i in self.ports:
            self.wait_ready(i)
        # Every broker's metadata lists every broker: clients bootstrapped from any of
        # them see the whole cluster (CreateTopics finds enough brokers for its RF).
        for i in self.ports:
            wait_until(lambda: len(self._metadata(i)[0]) == self.n, 60, f"broker {i} to see {self.n} brokers")
        return self

    def __exit__(self, *exc):
        self.stop_all()
        if not self.keep_dir and not os.environ.get("GREGOR_KEEP_TEST_DIRS"):
            shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def bootstrap(self):
        return ",".join(f"127.0.0.1:{p}" for p in self.ports.values())

    def metrics_url(self, broker_id=None):
        """/metrics of a broker, or of the mini-zookeeper when `broker_id` is None."""
        port = self.zk_metrics_port if broker_id is None else self.metrics_ports[broker_id]
        return f"http://127.0.0.1:{port}/metrics"

    @property
    def zookeeper(self):
        hosts = self.external_zookeeper or f"127.0.0.1:{self.zk_port}"
        return hosts + self.chroot

    def addr(self, broker_id):
        return f"127.0.0.1:{self.ports[broker_id]}"

    def _spawn(self, name, args):
        log = open(self.dir / f"{name}.log", "ab")
        env = dict(os.environ, RUST_LOG=os.environ.get("GREGOR_TEST_LOG", "info"))
        self.procs[name] = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)

    def start_zookeeper(self):
        cfg = self.dir / "zookeeper.toml"
        cfg.write_text(
            f'client_port = {self.zk_port}\ndata_dir = "{self.dir / "zookeeper"}"\n'
            "tick_time_ms = 500\nmin_session_timeout_ms = 1000\n"
            + (f'metrics_listener = "127.0.0.1:{self.zk_metrics_port}"\n' if self.zk_metrics_port else "")
        )
        self._spawn("zookeeper", [self.bin, "zookeeper", "--config", str(cfg)])
        wait_until(lambda: port_open(self.zk_port), 30, "zookeeper")

    def broker_config_path(self, broker_id):
        return self.dir / f"broker-{broker_id}.toml"

    def start(self, broker_id, wait=True):
        cfg = self.broker_config_path(broker_id)
        lines = [
            f"broker.id = {broker_id}",
            f'listeners = "PLAINTEXT://127.0.0.1:{self.ports[broker_id]}"',
            f'log.dirs = "{self.dir / f"broker-{broker_id}"}"',
            f'zookeeper.connect = "{self.zookeeper}"',
            f"zookeeper.session.timeout.ms = {self.session_timeout_ms}",
            f"offsets.topic.replication.factor = {min(3, self.n)}",
            f"default.replication.factor = {min(3, self.n)}",
            "group.initial.rebalance.delay.ms = 0",
        ]
        if broker_id in self.metrics_ports:
            lines.append(f'"metrics.listener" = "127.0.0.1:{self.metrics_ports[broker_id]}"')
            if self.console:
                lines.append(f'"console.listener" = "127.0.0.1:{self.metrics_ports[broker_id]}"')
        for k, v in self.extra.items():
            lines.append(f'"{k}" = "{v}"')
        cfg.write_text("\n".join(lines) + "\n")
        self._spawn(f"broker-{broker_id}", [self.bin, "broker", "--config", str(cfg)])
        if wait:
            self.wait_ready(broker_id)

    def wait_ready(self, broker_id, timeout=60):
        proc = self.procs[f"broker-{broker_id}"]

        def ready():
            if proc.poll() is not None:
                raise RuntimeError(f"broker {broker_id} exited:\n{self.log_tail(f'broker-{broker_id}')}")
            if not (port_open(self.ports[broker_id]) and self._registered(broker_id)):
                return False
            # Registered is not usable yet: until the broker's image holds the controller
            # and itself, admin clients get "controller not available" (as from a Kafka
            # broker before its first UpdateMetadata).
            ids, controller = self._metadata(broker_id)
            return controller >= 0 and broker_id in ids

        wait_until(ready, timeout, f"broker {broker_id}")

    def _metadata(self, broker_id):
        return metadata_brokers_and_controller(self.ports[broker_id]) or ([], -1)

    def _registered(self, broker_id):
        log = (self.dir / f"broker-{broker_id}.log").read_text(errors="replace")
        return "registered in ZooKeeper" in log

    def kill(self, broker_id):
        """kill -9 a broker."""
        self._signal(f"broker-{broker_id}", signal.SIGKILL)

    def stop(self, broker_id, timeout=60):
        """SIGTERM (controlled shutdown) and wait."""
        self._signal(f"broker-{broker_id}", signal.SIGTERM, timeout)

    def kill_zookeeper(self):
        self._signal("zookeeper", signal.SIGKILL)

    def _signal(self, name, sig, timeout=30):
        p = self.procs.get(name)
        if p is None or p.poll() is not None:
            return
        p.send_signal(sig)
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()

    def stop_all(self):
        for name in list(self.procs):
            if name != "zookeeper":
                self._signal(name, signal.SIGKILL)
        self._signal("zookeeper", signal.SIGKILL)

    def log_tail(self, name, lines=40):
        try:
            text = (self.dir / f"{name}.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])
