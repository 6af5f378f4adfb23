"""Fixtures for the mini-zookeeper compat suite.

Every scenario runs against two servers: `gregor zookeeper` (binary from $GREGOR_BIN,
default target/release/gregor) and a real Apache ZooKeeper 3.8 from the Debian package,
each on a free port with its own temp data dir. Same scenario, same expected result:
that is what proves the scenarios check real ZooKeeper behaviour.
"""

import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from gregor_cluster import four_letter, free_port  # noqa: F401 - the suites import them from here

REPO = Path(__file__).resolve().parents[2]
GREGOR_BIN = os.environ.get("GREGOR_BIN", str(REPO / "target" / "release" / "gregor"))
ZK_JAR = "/usr/share/java/zookeeper.jar"
ZK_CONF_DIR = "/etc/zookeeper/conf"
ZKCLI = "/usr/share/zookeeper/bin/zkCli.sh"
TICK_MS = 2000


def wait_until(what, fn, timeout=30.0, interval=0.05):
    deadline = time.monotonic() + timeout
    last_err = None
    while time.monotonic() < deadline:
        try:
            value = fn()
            if value:
                return value
        except Exception as e:  # noqa: BLE001 - polling: any failure means "not yet"
            last_err = e
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what} (last error: {last_err!r})")


class Server:
    def __init__(self, kind, port, proc, workdir):
        self.kind = kind
        self.port = port
        self.proc = proc
        self.workdir = workdir

    @property
    def hosts(self):
        return f"127.0.0.1:{self.port}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        shutil.rmtree(self.workdir, ignore_errors=True)


def start_gregor(four_letter_words="*"):
    """`four_letter_words`: the 4lw.commands.whitelist (None: the server's default)."""
    if not os.path.exists(GREGOR_BIN):
        pytest.fail(f"gregor binary not found at {GREGOR_BIN}; run `cargo build --release` first")
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="gregor-zk-")
    log = open(os.path.join(workdir, "server.log"), "wb")
    proc = subprocess.Popen(
        [GREGOR_BIN, "zookeeper", "--port", str(port), "--data-dir", os.path.join(workdir, "data"),
         "--tick-time-ms", str(TICK_MS)]
        + ([] if four_letter_words is None else ["--4lw-commands-whitelist", four_letter_words]),
        stdout=subprocess.DEVNULL, stderr=log)
    server = Server("gregor", port, proc, workdir)
    # srvr answers whatever the whitelist.
    wait_until("gregor zookeeper to answer srvr",
               lambda: four_letter(port, "srvr").startswith("Zookeeper version"))
    wait_until("gregor zookeeper to accept sessions", lambda: Raw(port).close() or True)
    return server


def start_real_zookeeper(four_letter_words="*"):
    if not os.path.exists(ZK_JAR):
        pytest.fail(f"{ZK_JAR} missing; run compat-tests/zookeeper/install.sh")
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="real-zk-")
    data = os.path.join(workdir, "data")
    os.makedirs(data)
    cfg = os.path.join(workdir, "zoo.cfg")
    with open(cfg, "w") as f:
        f.write(f"tickTime={TICK_MS}\ndataDir={data}\nclientPort={port}\n"
                "clientPortAddress=127.0.0.1\nadmin.enableServer=false\n"
                "maxClientCnxns=0\n")
        if four_letter_words is not None:
            f.write(f"4lw.commands.whitelist={four_letter_words}\n")
    log = open(os.path.join(workdir, "server.log"), "wb")
    proc = subprocess.Popen(
        ["java", "-Xmx256m", "-cp", f"{ZK_CONF_DIR}:{ZK_JAR}",
         f"-Dzookeeper.log.dir={workdir}", "-Dzookeeper.root.logger=WARN,CONSOLE",
         "org.apache.zookeeper.server.ZooKeeperServerMain", cfg],
        stdout=log, stderr=subprocess.STDOUT)
    server = Server("zookeeper", port, proc, workdir)
    wait_until("ZooKeeper to answer srvr",
               lambda: four_letter(port, "srvr").startswith("Zookeeper version"), timeout=60)
    # It answers before the database is loaded; wait until sessions are accepted.
    wait_until("ZooKeeper to accept sessions", lambda: Raw(port).close() or True, timeout=60)
    return server


@pytest.fixture(scope="module", params=["gregor", "zookeeper"])
def server(request):
    srv = start_gregor() if request.param == "gregor" else start_real_zookeeper()
    yield srv
    srv.stop()


@pytest.fixture
def fresh_server(request):
    """A new server per test (for scenarios that need a pristine tree)."""
    kind = request.param
    srv = start_gregor() if kind == "gregor" else start_real_zookeeper()
    yield srv
    srv.stop()


@pytest.fixture
def zk(server):
    from kazoo.client import KazooClient
    client = KazooClient(hosts=server.hosts, timeout=10)
    client.start(timeout=30)
    yield client
    client.stop()
    client.close()


@pytest.fixture
def unique(request):
    """A path prefix no other test in the module uses."""
    return "/t-" + request.node.name.replace("[", "-").replace("]", "")


# --- a tiny raw-protocol client ------------------------------------------------------


class Raw:
    """Speaks the jute protocol directly, for what kazoo hides."""

    def __init__(self, port, session_id=0, password=b"\0" * 16, timeout_ms=10000, last_zxid=0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        body = struct.pack(">iqiq", 0, last_zxid, timeout_ms, session_id)
        body += struct.pack(">i", len(password)) + password + b"\0"
        self.sock.sendall(struct.pack(">i", len(body)) + body)
        resp = self.read_frame()
        _proto, self.timeout, self.session_id = struct.unpack(">iiq", resp[:16])
        (plen,) = struct.unpack(">i", resp[16:20])
        self.password = resp[20:20 + plen]

    def read_exact(self, n):
        out = b""
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise EOFError("connection closed")
            out += chunk
        return out

    def read_frame(self):
        (n,) = struct.unpack(">i", self.read_exact(4))
        return self.read_exact(n)

    def send(self, xid, op, body=b""):
        frame = struct.pack(">ii", xid, op) + body
        self.sock.sendall(struct.pack(">i", len(frame)) + frame)

    def recv(self):
        f = self.read_frame()
        xid, zxid, err = struct.unpack(">iqi", f[:16])
        return xid, zxid, err, f[16:]

    def call(self, xid, op, body=b""):
        self.send(xid, op, body)
        while True:
            r = self.recv()
            if r[0] != -1:
                return r

    def closed(self):
        try:
            self.sock.settimeout(10)
            return self.sock.recv(1) == b""
        except (ConnectionResetError, BrokenPipeError):
            return True

    def close(self):
        self.sock.close()


def jstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack(">i", len(b)) + b


def jbuf(b):
    return struct.pack(">i", -1) if b is None else struct.pack(">i", len(b)) + b


OPEN_ACL = struct.pack(">i", 1) + struct.pack(">i", 31) + jstr("world") + jstr("anyone")


def create_body(path, data=b"", flags=0, acl=OPEN_ACL):
    return jstr(path) + jbuf(data) + acl + struct.pack(">i", flags)
