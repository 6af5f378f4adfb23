"""`gregor cluster --secure` as a user runs it: one command, then the client files it
writes work as they are with the Java client (console-producer / consumer equivalents
with --producer.config / --consumer.config client.properties), kcat -F with the
librdkafka file and `gregor ... --command-config`; ACLs are enforced, clients without
(valid) credentials are refused, and a restart with the same data directory keeps the
credentials, the client files and the data."""

import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from gregor_cluster import GREGOR_BIN, free_port

BROKERS = 3


def all_free(ports):
    """True when every port can be bound on loopback right now."""
    socks = []
    try:
        for p in ports:
            if not 0 < p < 65536:
                return False
            s = socket.socket()
            socks.append(s)
            s.bind(("127.0.0.1", p))
        return True
    except OSError:
        return False
    finally:
        for s in socks:
            s.close()


def ports_with_free_http(n):
    """(zookeeper port, base port) such that every port `gregor cluster` derives from them
    is free: the brokers' base .. base+n-1, their metrics ports (9404 + base - 9092 + i)
    and the mini-zookeeper's metrics port (7000 + zk - 2181)."""
    for _ in range(200):
        zk, base = free_port(), free_port()
        brokers = list(range(base, base + n))
        metrics = [p - 9092 + 9404 for p in brokers]
        if zk not in brokers and all_free([zk, zk - 2181 + 7000, *brokers, *metrics]):
            return zk, base
    raise RuntimeError("no free set of ports")


class SecureLauncher:
    """`gregor cluster --secure` as a child process; `start()` returns its printed summary."""

    def __init__(self, data):
        self.data = data
        self.zk_port, self.base = ports_with_free_http(BROKERS)
        self.proc = None

    def start(self, timeout=120):
        self.log = open(self.data.parent / "launcher.err", "ab")
        self.proc = subprocess.Popen(
            [GREGOR_BIN, "cluster", "--secure", "--brokers", str(BROKERS), "--data", str(self.data),
             "--zookeeper-port", str(self.zk_port), "--base-port", str(self.base)],
            stdout=subprocess.PIPE, stderr=self.log, stdin=subprocess.DEVNULL, text=True,
            start_new_session=True,
        )
        lines = []
        deadline = time.time() + timeout
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError(f"gregor cluster --secure exited: {lines}\n{self.err_tail()}")
            lines.append(line.rstrip("\n"))
            if line.startswith("Press Ctrl-C"):
                return lines
        raise AssertionError(f"gregor cluster --secure not up after {timeout}s: {lines}\n{self.err_tail()}")

    def err_tail(self):
        try:
            return (self.data.parent / "launcher.err").read_text(errors="replace")[-3000:]
        except FileNotFoundError:
            return ""

    def stop(self, timeout=90):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            raise


def summary_path(lines, label):
    for line in lines:
        m = re.match(rf"\s*{label}:\s+(\S+)", line)
        if m:
            return Path(m.group(1))
    raise AssertionError(f"no {label!r} line in {lines}")


@pytest.fixture(scope="module")
def secure():
    tmp = Path(tempfile.mkdtemp(prefix="gregor-secure-"))
    launcher = SecureLauncher(tmp / "data")
    lines = launcher.start()
    launcher.lines = lines
    launcher.java_config = summary_path(lines, "client config")
    launcher.rdkafka_config = summary_path(lines, "librdkafka config")
    launcher.bootstrap = summary_path(lines, "bootstrap servers").name
    try:
        yield launcher
    finally:
        launcher.stop()
        if not os.environ.get("GREGOR_KEEP_TEST_DIRS"):
            subprocess.run(["rm", "-rf", str(tmp)])


def props(path):
    out = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            k, v = line.split("=", 1)
            out[k] = v
    return out


def gregor(secure, *args, config=None, input=None, ok=True):
    cmd = [GREGOR_BIN, "--command-config", str(config or secure.java_config), *map(str, args)]
    r = subprocess.run(cmd, capture_output=True, text=True, input=input, timeout=90)
    if ok:
        assert r.returncode == 0, f"{args}: {r.stdout}\n{r.stderr[-2000:]}"
    return r


def kcat(*args, input=None, timeout=60):
    return subprocess.run(["kcat", *map(str, args)], capture_output=True, text=True, input=input, timeout=timeout)


def test_client_files_are_written_with_kafkas_and_librdkafkas_keys(secure):
    assert secure.java_config == secure.data / "client.properties"
    java = props(secure.java_config)
    assert java["bootstrap.servers"] == secure.bootstrap
    assert java["security.protocol"] == "SASL_SSL"
    assert java["sasl.mechanism"] == "SCRAM-SHA-512"
    assert re.fullmatch(r'org\.apache\.kafka\.common\.security\.scram\.ScramLoginModule required '
                        r'username="admin" password="[A-Za-z0-9]+";', java["sasl.jaas.config"])
    assert java["ssl.truststore.type"] == "PEM"
    assert Path(java["ssl.truststore.location"]).read_text().startswith("-----BEGIN CERTIFICATE-----")
    rd = props(secure.rdkafka_config)
    assert rd["sasl.username"] == "admin" and rd["sasl.password"] in java["sasl.jaas.config"]
    assert rd["ssl.ca.location"] == java["ssl.truststore.location"]
    assert not any("jaas" in k or "truststore" in k for k in rd), rd
    for f in (secure.java_config, secure.rdkafka_config):
        assert f.stat().st_mode & 0o077 == 0, f"{f} holds the admin password: owner-only"


def test_java_console_tools_with_client_properties(secure):
    from builds import java_cmd
    from checks import Driver, make_messages, encode_msg, parse_acks, verify_roundtrip

    topic = f"java-{uuid.uuid4().hex[:6]}"
    gregor(secure, "topics", "--bootstrap-server", secure.bootstrap, "create", topic,
           "--partitions", 3, "--replication-factor", 3)
    msgs = make_messages(topic, n=30)
    d = Driver(java_cmd("ConsoleProducer", "--bootstrap-server", secure.bootstrap, "--topic", topic,
                        "--producer.config", secure.java_config),
               stdin_lines=[encode_msg(m) for m in msgs])
    acks = parse_acks(d.all_lines(timeout=120), len(msgs))
    c = Driver(java_cmd("GroupConsumer", "--bootstrap-server", secure.bootstrap, "--topic", topic,
                        "--group", f"g-{topic}", "--from-beginning", "--max-messages", len(msgs),
                        "--timeout-ms", 30000, "--consumer.config", secure.java_config))
    recs = c.records(len(msgs), timeout=90)
    c.wait_line("CLOSED", timeout=60)
    c.close()
    verify_roundtrip(msgs, recs, acks=acks)
    # The group's offsets were committed (over SASL_SSL, to the coordinator).
    r = gregor(secure, "groups", "describe", f"g-{topic}", "--bootstrap-server", secure.bootstrap)
    assert topic in r.stdout, r.stdout


def test_kcat_with_the_librdkafka_file(secure):
    topic = f"kcat-{uuid.uuid4().hex[:6]}"
    gregor(secure, "topics", "--bootstrap-server", secure.bootstrap, "create", topic,
           "--partitions", 2, "--replication-factor", 3)
    values = [f"v{i}" for i in range(20)]
    r = kcat("-F", secure.rdkafka_config, "-P", "-t", topic, input="".join(v + "\n" for v in values))
    assert r.returncode == 0, r.stderr
    # A balanced consumer (-G): JoinGroup/SyncGroup/OffsetCommit over SASL_SSL.
    r = kcat("-F", secure.rdkafka_config, "-G", f"g-{topic}", "-o", "beginning", "-c", len(values),
             "-f", "%s\n", topic, timeout=90)
    assert r.returncode == 0, r.stderr[-2000:]
    assert sorted(r.stdout.split()) == sorted(values), r.stdout
    # Replicated between the brokers over their SASL_SSL listener: full ISRs.
    md = json.loads(kcat("-F", secure.rdkafka_config, "-L", "-J", "-t", topic).stdout)
    isrs = [sorted(r["id"] for r in p["isrs"]) for p in md["topics"][0]["partitions"]]
    assert isrs == [[1, 2, 3]] * 2, md


def test_acls_are_enforced_for_a_new_scram_user(secure):
    topic = f"acl-{uuid.uuid4().hex[:6]}"
    user = f"u{uuid.uuid4().hex[:6]}"
    bs = ["--bootstrap-server", secure.bootstrap]
    gregor(secure, "topics", *bs, "create", topic, "--partitions", 1, "--replication-factor", 3)
    gregor(secure, "users", *bs, "add", user, "--password", "user-pw")
    user_cfg = secure.data.parent / f"{user}.properties"
    java = props(secure.java_config)
    java["sasl.jaas.config"] = (
        f'org.apache.kafka.common.security.scram.ScramLoginModule required username="{user}" password="user-pw";'
    )
    user_cfg.write_text("".join(f"{k}={v}\n" for k, v in java.items()))

    def produce():
        return gregor(secure, "produce", *bs, "--topic", topic, config=user_cfg, input="x\n", ok=False)

    # Authenticated (the user's credentials reach every broker) but not authorized.
    deadline = time.time() + 20
    while "Authentication failed" in (r := produce()).stderr and time.time() < deadline:
        time.sleep(0.3)
    assert r.returncode != 0 and "TopicAuthorizationFailed" in r.stderr, r.stderr
    gregor(secure, "acls", *bs, "add", "--principal", f"User:{user}", "--operation", "Write", "--topic", topic)
    gregor(secure, "acls", *bs, "add", "--principal", f"User:{user}", "--operation", "Describe", "--topic", topic)
    deadline = time.time() + 20
    while (r := produce()).returncode != 0 and time.time() < deadline:
        time.sleep(0.3)
    assert r.returncode == 0, r.stderr
    # Reading needs READ, which the user does not have.
    r = gregor(secure, "consume", *bs, "--topic", topic, "--from-beginning", "--max-messages", 1,
               "--timeout-ms", 5000, config=user_cfg, ok=False)
    assert r.returncode != 0 and "TopicAuthorizationFailed" in r.stderr, r.stderr
    r = gregor(secure, "consume", *bs, "--topic", topic, "--from-beginning", "--max-messages", 1, "--timeout-ms", 10000)
    assert r.stdout.split() == ["x"], r.stdout


def test_clients_without_valid_credentials_are_refused(secure):
    rd = props(secure.rdkafka_config)
    bs = secure.bootstrap
    # Plaintext on the TLS port, TLS without SASL, and SASL with a wrong password.
    attempts = {
        "plaintext": [],
        "tls without SASL": ["-X", "security.protocol=SSL", "-X", f"ssl.ca.location={rd['ssl.ca.location']}"],
        "wrong password": ["-X", "security.protocol=SASL_SSL", "-X", f"ssl.ca.location={rd['ssl.ca.location']}",
                           "-X", "sasl.mechanism=SCRAM-SHA-512", "-X", "sasl.username=admin",
                           "-X", "sasl.password=not-the-password"],
    }
    for what, extra in attempts.items():
        r = kcat("-b", bs, *extra, "-L", "-m", 5, timeout=30)
        assert r.returncode != 0, f"{what}: served\n{r.stdout}"
        assert "Metadata for all topics" not in r.stdout, what
        if what == "wrong password":
            assert "SASL authentication error" in r.stderr, r.stderr[-1000:]
    r = gregor(secure, "topics", "--bootstrap-server", bs, "list",
               config=secure.data.parent / "missing.properties", ok=False)
    assert r.returncode != 0
    plain = secure.data.parent / "plain.properties"
    plain.write_text("security.protocol=PLAINTEXT\n")
    r = subprocess.run([GREGOR_BIN, "--command-config", str(plain), "topics", "--bootstrap-server", bs, "list"],
                       capture_output=True, text=True, timeout=90)
    assert r.returncode != 0, r.stdout


def test_restart_with_the_same_data_directory(secure):
    """Last in this module: the cluster is stopped and started again."""
    topic = f"restart-{uuid.uuid4().hex[:6]}"
    gregor(secure, "topics", "--bootstrap-server", secure.bootstrap, "create", topic,
           "--partitions", 1, "--replication-factor", 3)
    r = kcat("-F", secure.rdkafka_config, "-P", "-t", topic, input="before\n")
    assert r.returncode == 0, r.stderr
    java_before = secure.java_config.read_text()
    ca_before = Path(props(secure.java_config)["ssl.truststore.location"]).read_text()
    secure.stop()
    assert secure.proc.returncode == 0, secure.err_tail()
    secure.start()
    assert secure.java_config.read_text() == java_before, "the admin's password and files are kept"
    assert Path(props(secure.java_config)["ssl.truststore.location"]).read_text() == ca_before
    r = kcat("-F", secure.rdkafka_config, "-C", "-t", topic, "-o", "beginning", "-e", "-f", "%s\n", timeout=60)
    assert r.returncode == 0 and r.stdout.split() == ["before"], (r.stdout, r.stderr[-1000:])
