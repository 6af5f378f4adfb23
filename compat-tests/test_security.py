"""Listeners, TLS and SASL with real clients: a broker with PLAINTEXT, SSL (mTLS
required), SASL_PLAINTEXT and SASL_SSL listeners; certificates from `gregor certs`
(rcgen); SCRAM users written to ZooKeeper in Kafka's own layout (and through
AlterUserScramCredentials); PLAIN users from the listener's JAAS config. Every client
produces and consumes in a group, and wrong passwords, unknown users and untrusted CAs
fail with the client's authentication error while nothing is served."""

import base64
import hashlib
import hmac
import json
import os
import socket
import ssl
import subprocess
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from gregor_cluster import GREGOR_BIN, GregorCluster, free_port

ADMIN_PW = "admin-secret"
ALICE_PW = "alice-secret"
PLAIN_JAAS = (
    "org.apache.kafka.common.security.plain.PlainLoginModule required "
    f'username="admin" password="{ADMIN_PW}" user_admin="{ADMIN_PW}" user_alice="{ALICE_PW}";'
)
SCRAM_USER, SCRAM_PW = "scrammy", "scram-secret"


def scram_credential(mechanism, password, salt=None, iterations=4096):
    """Kafka's ZooKeeper form of a SCRAM credential (RFC 5802 keys)."""
    h = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}[mechanism]
    salt = salt or os.urandom(16)
    salted = hashlib.pbkdf2_hmac(h, password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", h).digest()
    stored_key = hashlib.new(h, client_key).digest()
    server_key = hmac.new(salted, b"Server Key", h).digest()
    b = lambda x: base64.b64encode(x).decode()
    return f"salt={b(salt)},stored_key={b(stored_key)},server_key={b(server_key)},iterations={iterations}"


class SecureCluster(GregorCluster):
    """Brokers with all four listener kinds; PLAINTEXT stays on `ports` (readiness)."""

    def __init__(self, brokers=1, inter_broker="PLAINTEXT", extra=None):
        super().__init__(brokers=brokers)
        self.certs = self.dir / "certs"
        subprocess.run(
            [GREGOR_BIN, "certs", "--dir", str(self.certs), "--client", "alice=CN=alice,OU=eng,O=acme"],
            check=True,
            capture_output=True,
        )
        other = self.dir / "other-ca"
        subprocess.run([GREGOR_BIN, "certs", "--dir", str(other), "--client", "mallory=CN=mallory"], check=True, capture_output=True)
        self.other_ca = other
        self.inter_broker = inter_broker
        self.more = dict(extra or {})
        self.lports = {
            i: {name: free_port() for name in ("SSL", "SASL_PLAINTEXT", "SASL_SSL")} for i in self.ports
        }

    def bootstrap_for(self, listener):
        return ",".join(f"127.0.0.1:{self.lports[i][listener]}" for i in self.ports)

    def start(self, broker_id, wait=True):
        p = self.lports[broker_id]
        listeners = (
            f"PLAINTEXT://127.0.0.1:{self.ports[broker_id]},SSL://127.0.0.1:{p['SSL']},"
            f"SASL_PLAINTEXT://127.0.0.1:{p['SASL_PLAINTEXT']},SASL_SSL://127.0.0.1:{p['SASL_SSL']}"
        )
        conf = {
            "broker.id": broker_id,
            "listeners": listeners,
            "log.dirs": str(self.dir / f"broker-{broker_id}"),
            "zookeeper.connect": self.zookeeper,
            "zookeeper.session.timeout.ms": self.session_timeout_ms,
            "offsets.topic.replication.factor": min(3, self.n),
            "default.replication.factor": min(3, self.n),
            "group.initial.rebalance.delay.ms": 0,
            "security.inter.broker.protocol": self.inter_broker,
            "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-512",
            "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
            "ssl.keystore.location": str(self.certs / "broker.pem"),
            "ssl.truststore.location": str(self.certs / "ca.pem"),
            "listener.name.ssl.ssl.client.auth": "required",
            "listener.name.ssl.ssl.principal.mapping.rules": "RULE:^CN=([^,]+),.*$/$1/L,DEFAULT",
            "listener.name.sasl_plaintext.plain.sasl.jaas.config": PLAIN_JAAS,
            "listener.name.sasl_ssl.plain.sasl.jaas.config": PLAIN_JAAS,
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required "
                f'username="{SCRAM_USER}" password="{SCRAM_PW}";'
            ),
        }
        conf.update(self.more)
        lines = []
        for k, v in conf.items():
            if isinstance(v, int):
                lines.append(f'"{k}" = {v}')
            else:
                lines.append(f"\"{k}\" = '{v}'")
        self.broker_config_path(broker_id).write_text("\n".join(lines) + "\n")
        self._spawn(f"broker-{broker_id}", [GREGOR_BIN, "broker", "--config", str(self.broker_config_path(broker_id))])
        if wait:
            self.wait_ready(broker_id)

    def add_scram_user_in_zk(self, user, password, mechanisms=("SCRAM-SHA-256", "SCRAM-SHA-512")):
        """What Kafka's `kafka-configs --zookeeper` writes: the user znode, then a change notification."""
        from kazoo.client import KazooClient

        zk = KazooClient(hosts=self.zookeeper)
        zk.start(timeout=10)
        try:
            config = {m: scram_credential(m, password) for m in mechanisms}
            data = json.dumps({"version": 1, "config": config}).encode()
            path = f"/config/users/{user}"
            if zk.exists(path):
                zk.set(path, data)
            else:
                zk.create(path, data, makepath=True)
            zk.create(
                "/config/changes/config_change_",
                json.dumps({"version": 2, "entity_path": f"users/{user}"}).encode(),
                sequence=True,
                makepath=True,
            )
        finally:
            zk.stop()


@pytest.fixture(scope="module")
def sec():
    with SecureCluster(brokers=1) as c:
        c.add_scram_user_in_zk(SCRAM_USER, SCRAM_PW)
        time.sleep(0.5)  # the broker reloads on the change notification
        yield c


def ck_conf(sec, listener, mechanism=None, user=None, password=None, ca=None, cert=None):
    conf = {"bootstrap.servers": sec.bootstrap_for(listener), "security.protocol": listener}
    if listener.endswith("SSL"):
        conf["ssl.ca.location"] = str(ca or sec.certs / "ca.pem")
    if cert:
        conf["ssl.certificate.location"] = str(cert.parent / (cert.stem + "-cert.pem"))
        conf["ssl.key.location"] = str(cert.parent / (cert.stem + "-key.pem"))
    if mechanism:
        conf.update({"sasl.mechanism": mechanism, "sasl.username": user, "sasl.password": password})
    return conf


def ck_roundtrip(conf, n=20):
    topic = f"sec-{uuid.uuid4().hex[:8]}"
    admin = AdminClient(conf)
    admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(30)
    p = Producer(dict(conf, acks="all"))
    acked = []
    for i in range(n):
        p.produce(topic, key=str(i).encode(), value=f"v{i}".encode(), on_delivery=lambda e, m: acked.append(e))
    p.flush(30)
    assert len(acked) == n and all(e is None for e in acked), acked
    c = Consumer(dict(conf, **{"group.id": f"g-{topic}", "auto.offset.reset": "earliest"}))
    c.subscribe([topic])
    got = set()
    deadline = time.time() + 60
    while len(got) < n and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            got.add(m.value())
    c.commit(asynchronous=False)
    c.close()
    assert got == {f"v{i}".encode() for i in range(n)}


def ck_auth_error(conf, timeout=20):
    """The first error librdkafka reports; nothing must be served."""
    errors = []
    admin = AdminClient(dict(conf, error_cb=errors.append))
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=5)
    deadline = time.time() + timeout
    while not errors and time.time() < deadline:
        admin.poll(0.2)
    assert errors, "no error reported"
    return errors[0]


@pytest.mark.parametrize("mechanism,user,password", [
    ("PLAIN", "alice", ALICE_PW),
    ("SCRAM-SHA-256", SCRAM_USER, SCRAM_PW),
    ("SCRAM-SHA-512", SCRAM_USER, SCRAM_PW),
])
@pytest.mark.parametrize("listener", ["SASL_SSL", "SASL_PLAINTEXT"])
def test_confluent_sasl_produce_consume_group(sec, listener, mechanism, user, password):
    ck_roundtrip(ck_conf(sec, listener, mechanism, user, password))


def test_confluent_mtls_produce_consume_group(sec):
    ck_roundtrip(ck_conf(sec, "SSL", cert=sec.certs / "client-alice.pem"))


@pytest.mark.parametrize("mechanism,user,password", [
    ("PLAIN", "alice", "wrong"),
    ("PLAIN", "nobody", ALICE_PW),
    ("SCRAM-SHA-512", SCRAM_USER, "wrong"),
    ("SCRAM-SHA-512", "nobody", SCRAM_PW),
])
def test_confluent_bad_credentials_fail_with_authentication_error(sec, mechanism, user, password):
    err = ck_auth_error(ck_conf(sec, "SASL_SSL", mechanism, user, password))
    assert err.code() == KafkaError._AUTHENTICATION, err
    assert "Authentication failed" in err.str(), err


def test_confluent_untrusted_ca_fails(sec):
    err = ck_auth_error(ck_conf(sec, "SASL_SSL", "PLAIN", "alice", ALICE_PW, ca=sec.other_ca / "ca.pem"))
    assert err.code() in (KafkaError._SSL, KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN), err
    assert "certificate verify failed" in err.str() or "SSL handshake failed" in err.str(), err


def test_confluent_mtls_without_or_with_foreign_cert_fails(sec):
    ck_auth_error(ck_conf(sec, "SSL"))
    ck_auth_error(ck_conf(sec, "SSL", cert=sec.other_ca / "client-mallory.pem"))


def kafka_request(api_key, version, body=b"", correlation=7):
    header = api_key.to_bytes(2, "big") + version.to_bytes(2, "big") + correlation.to_bytes(4, "big") + b"\x00\x04test"
    frame = header + body
    return len(frame).to_bytes(4, "big") + frame


def recv_frame(sock):
    size = b""
    while len(size) < 4:
        chunk = sock.recv(4 - len(size))
        if not chunk:
            return None
        size += chunk
    n = int.from_bytes(size, "big")
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def test_plaintext_client_on_tls_port_and_tls_client_on_plaintext_port_are_closed(sec):
    port = sec.lports[1]["SASL_SSL"]
    with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
        s.sendall(kafka_request(18, 0))  # ApiVersions in the clear
        data = b""
        try:
            while chunk := s.recv(4096):
                data += chunk
        except ConnectionResetError:
            pass
        # Closed, at most after a TLS alert record (content type 21); never an answer.
        assert data == b"" or data[0] == 21, data
    ctx = ssl.create_default_context(cafile=str(sec.certs / "ca.pem"))
    with socket.create_connection(("127.0.0.1", sec.ports[1]), timeout=15) as raw:
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    # The broker still serves.
    AdminClient({"bootstrap.servers": sec.bootstrap}).list_topics(timeout=10)


def test_nothing_but_apiversions_is_served_before_authentication(sec):
    with socket.create_connection(("127.0.0.1", sec.lports[1]["SASL_PLAINTEXT"]), timeout=10) as s:
        s.sendall(kafka_request(18, 0))
        assert recv_frame(s) is not None  # ApiVersions is answered
        s.sendall(kafka_request(3, 0, b"\x00\x00\x00\x00"))  # Metadata v0, all topics
        assert recv_frame(s) is None  # closed, not answered


def test_sasl_handshake_v0_raw_plain_token(sec):
    """Old clients: SaslHandshake v0, then the PLAIN token as a raw length-prefixed frame."""
    with socket.create_connection(("127.0.0.1", sec.lports[1]["SASL_PLAINTEXT"]), timeout=10) as s:
        mech = b"PLAIN"
        s.sendall(kafka_request(17, 0, len(mech).to_bytes(2, "big") + mech))
        resp = recv_frame(s)
        assert resp[4:6] == b"\x00\x00", resp  # error_code 0 after the correlation id
        token = b"\x00alice\x00" + ALICE_PW.encode()
        s.sendall(len(token).to_bytes(4, "big") + token)
        assert recv_frame(s) == b""  # PLAIN's empty server reply
        s.sendall(kafka_request(3, 0, b"\x00\x00\x00\x00"))
        assert recv_frame(s) is not None  # authenticated: Metadata is served


# ---------------------------------------------------------------- AlterUserScramCredentials


def test_confluent_admin_alters_and_describes_scram_credentials(sec):
    from confluent_kafka.admin import (
        ScramCredentialInfo,
        ScramMechanism,
        UserScramCredentialDeletion,
        UserScramCredentialUpsertion,
    )

    admin = AdminClient(ck_conf(sec, "SASL_SSL", "PLAIN", "admin", ADMIN_PW))
    user = f"u{uuid.uuid4().hex[:6]}"
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192)
    futs = admin.alter_user_scram_credentials([UserScramCredentialUpsertion(user, info, b"pw-1", b"salt-salt")])
    futs[user].result(30)
    desc = admin.describe_user_scram_credentials([user])[user].result(30)
    assert [(i.mechanism, i.iterations) for i in desc.scram_credential_infos] == [(ScramMechanism.SCRAM_SHA_512, 8192)]
    # The new user authenticates at once (the broker reloads on the change notification).
    deadline = time.time() + 10
    while True:
        try:
            AdminClient(ck_conf(sec, "SASL_SSL", "SCRAM-SHA-512", user, "pw-1")).list_topics(timeout=5)
            break
        except KafkaException:
            assert time.time() < deadline, "the new SCRAM user cannot authenticate"
    # Kafka's validation errors.
    few = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 1000)
    with pytest.raises(KafkaException) as e:
        admin.alter_user_scram_credentials([UserScramCredentialUpsertion(user, few, b"x")])[user].result(30)
    assert e.value.args[0].code() == KafkaError.UNACCEPTABLE_CREDENTIAL
    with pytest.raises(KafkaException) as e:
        admin.alter_user_scram_credentials(
            [UserScramCredentialDeletion("nobody-" + user, ScramMechanism.SCRAM_SHA_256)]
        )["nobody-" + user].result(30)
    assert e.value.args[0].code() == KafkaError.RESOURCE_NOT_FOUND
    with pytest.raises(KafkaException) as e:
        admin.describe_user_scram_credentials(["nobody-" + user])["nobody-" + user].result(30)
    assert e.value.args[0].code() == KafkaError.RESOURCE_NOT_FOUND
    # Deleted: authentication fails again.
    admin.alter_user_scram_credentials([UserScramCredentialDeletion(user, ScramMechanism.SCRAM_SHA_512)])[user].result(30)
    time.sleep(0.5)
    err = ck_auth_error(ck_conf(sec, "SASL_SSL", "SCRAM-SHA-512", user, "pw-1"))
    assert err.code() == KafkaError._AUTHENTICATION, err


# ---------------------------------------------------------------- the Java client 3.9.1


def java_props(sec, listener, mechanism=None, user=None, password=None, cert=None, ca=None):
    props = {"security.protocol": listener}
    if listener.endswith("SSL"):
        props["ssl.truststore.type"] = "PEM"
        props["ssl.truststore.location"] = str(ca or sec.certs / "ca.pem")
    if cert:
        props["ssl.keystore.type"] = "PEM"
        props["ssl.keystore.location"] = str(cert)
    if mechanism:
        module = "plain.PlainLoginModule" if mechanism == "PLAIN" else "scram.ScramLoginModule"
        props["sasl.mechanism"] = mechanism
        props["sasl.jaas.config"] = (
            f'org.apache.kafka.common.security.{module} required username="{user}" password="{password}";'
        )
    return props


def java_roundtrip(sec, listener, props, n=20):
    from builds import java_cmd
    from checks import Driver, Msg, encode_msg, parse_acks

    topic = f"java-{uuid.uuid4().hex[:8]}"
    bs = sec.bootstrap_for(listener)
    msgs = [Msg(key=f"k{i}".encode(), value=f"v{i}".encode()) for i in range(n)]
    pargs = ["--bootstrap-server", bs, "--topic", topic]
    cargs = ["--bootstrap-server", bs, "--topic", topic, "--group", f"g-{topic}", "--from-beginning",
             "--max-messages", n, "--timeout-ms", 30000]
    for k, v in props.items():
        pargs += ["--producer-property", f"{k}={v}"]
        cargs += ["--consumer-property", f"{k}={v}"]
    d = Driver(java_cmd("ConsoleProducer", *pargs), stdin_lines=[encode_msg(m) for m in msgs])
    lines = d.all_lines(timeout=120)
    acks = parse_acks(lines, n)
    assert len(acks) == n, lines[-5:]
    c = Driver(java_cmd("GroupConsumer", *cargs))
    recs = c.records(n, timeout=90)
    c.close()
    assert sorted(r.value for r in recs) == sorted(m.value for m in msgs)


def test_java_scram_sha_512_over_tls(sec):
    java_roundtrip(sec, "SASL_SSL", java_props(sec, "SASL_SSL", "SCRAM-SHA-512", SCRAM_USER, SCRAM_PW))


def test_java_mtls(sec):
    java_roundtrip(sec, "SSL", java_props(sec, "SSL", cert=sec.certs / "client-alice.pem"))


def test_java_wrong_password_fails_with_authentication_exception(sec):
    from builds import java_cmd
    from checks import Driver, Msg, encode_msg

    props = java_props(sec, "SASL_SSL", "SCRAM-SHA-512", SCRAM_USER, "wrong")
    args = ["--bootstrap-server", sec.bootstrap_for("SASL_SSL"), "--topic", f"java-{uuid.uuid4().hex[:8]}",
            "--producer-property", "max.block.ms=10000"]
    for k, v in props.items():
        args += ["--producer-property", f"{k}={v}"]
    d = Driver(java_cmd("ConsoleProducer", *args), stdin_lines=[encode_msg(Msg(key=b"k", value=b"v"))])
    out = []
    while (line := d.next_line(time.time() + 60)) is not None:
        out.append(line)
    text = "\n".join(out) + d.err_tail(200)
    assert "SaslAuthenticationException" in text or "Authentication failed" in text, text[-2000:]
    assert not any(l.startswith("ACK") for l in out), out


# ---------------------------------------------------------------- replication over SASL_SSL


def broker_connections_to(cluster, ports):
    """Established connections the broker processes opened to these local ports."""
    pids = {cluster.procs[f"broker-{i}"].pid for i in cluster.ports}
    out = subprocess.run(["ss", "-tnpH", "state", "established"], capture_output=True, text=True, check=True).stdout
    n = 0
    for line in out.splitlines():
        fields = line.split()
        peer_port = int(fields[3].rsplit(":", 1)[1])
        if peer_port in ports and any(f"pid={pid}," in line for pid in pids):
            n += 1
    return n


def test_replication_with_the_inter_broker_listener_on_sasl_ssl():
    """3 brokers whose replica fetchers authenticate with SCRAM-SHA-512 over TLS: RF 3,
    acks=all, the leader killed, nothing acknowledged is lost."""
    with SecureCluster(brokers=3, inter_broker="SASL_SSL") as c:
        c.add_scram_user_in_zk(SCRAM_USER, SCRAM_PW)
        conf = ck_conf(c, "SASL_SSL", "SCRAM-SHA-512", SCRAM_USER, SCRAM_PW)
        admin = AdminClient(conf)
        topic = f"repl-{uuid.uuid4().hex[:6]}"
        admin.create_topics([NewTopic(topic, 1, 3, config={"min.insync.replicas": "2"})])[topic].result(30)

        def partition():
            return admin.list_topics(topic, timeout=10).topics[topic].partitions[0]

        deadline = time.time() + 60
        while len(partition().isrs) < 3:
            assert time.time() < deadline, f"followers never joined the ISR over SASL_SSL: {partition().isrs}"
            time.sleep(0.3)

        def produce(values):
            p = Producer(dict(conf, acks="all", **{"message.timeout.ms": 30000}))
            errs = []
            for v in values:
                p.produce(topic, value=v, on_delivery=lambda e, m: errs.append(e))
            p.flush(60)
            assert len(errs) == len(values) and all(e is None for e in errs), errs

        first = [f"a{i}".encode() for i in range(50)]
        produce(first)
        # The followers' fetches carried the data: the ISR is still complete after acks=all.
        assert len(partition().isrs) == 3
        # ...over the SASL_SSL listeners: the brokers' own outgoing connections go there,
        # none to a PLAINTEXT port.
        assert broker_connections_to(c, [c.lports[i]["SASL_SSL"] for i in c.ports]) > 0
        assert broker_connections_to(c, list(c.ports.values())) == 0
        leader = partition().leader
        c.kill(leader)
        deadline = time.time() + 60
        while partition().leader in (leader, -1):
            assert time.time() < deadline, "no new leader"
            time.sleep(0.3)
        second = [f"b{i}".encode() for i in range(50)]
        produce(second)
        cons = Consumer(dict(conf, **{"group.id": f"g-{topic}", "auto.offset.reset": "earliest"}))
        cons.subscribe([topic])
        got = []
        deadline = time.time() + 60
        while len(got) < 100 and time.time() < deadline:
            m = cons.poll(0.5)
            if m is not None and m.error() is None:
                got.append(m.value())
        cons.close()
        assert sorted(got) == sorted(first + second)


# ---------------------------------------------------------------- gregor's own CLI


def write_props(path, props):
    path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
    return path


def test_gregor_cli_with_command_config_and_users(sec):
    admin_cfg = write_props(sec.dir / "admin.properties", java_props(sec, "SASL_SSL", "PLAIN", "admin", ADMIN_PW))
    bs = ["--bootstrap-server", sec.bootstrap_for("SASL_SSL")]
    run = lambda *a, **kw: subprocess.run([GREGOR_BIN, *a], capture_output=True, text=True, timeout=60, **kw)
    user = f"cli{uuid.uuid4().hex[:6]}"
    r = run("users", *bs, "--command-config", str(admin_cfg), "add", user, "--password", "cli-pw")
    assert r.returncode == 0, r.stderr
    r = run("users", *bs, "--command-config", str(admin_cfg), "list", user)
    assert r.returncode == 0 and "SCRAM-SHA-512(iterations=4096)" in r.stdout, (r.stdout, r.stderr)
    time.sleep(0.5)
    user_cfg = write_props(sec.dir / "user.properties", java_props(sec, "SASL_SSL", "SCRAM-SHA-512", user, "cli-pw"))
    topic = f"cli-{uuid.uuid4().hex[:6]}"
    r = run("topics", *bs, "--command-config", str(user_cfg), "create", topic, "--partitions", "1", "--replication-factor", "1")
    assert r.returncode == 0, r.stderr
    r = run("produce", *bs, "--command-config", str(user_cfg), "--topic", topic, input="one\ntwo\n")
    assert r.returncode == 0, r.stderr
    r = run("consume", *bs, "--command-config", str(user_cfg), "--topic", topic, "--from-beginning",
            "--max-messages", "2", "--timeout-ms", "10000")
    assert r.returncode == 0 and r.stdout.split() == ["one", "two"], (r.stdout, r.stderr)
    bad_cfg = write_props(sec.dir / "bad.properties", java_props(sec, "SASL_SSL", "SCRAM-SHA-512", user, "nope"))
    r = run("topics", *bs, "--command-config", str(bad_cfg), "list")
    assert r.returncode != 0 and "Authentication failed" in r.stderr, r.stderr
    r = run("users", *bs, "--command-config", str(admin_cfg), "remove", user)
    assert r.returncode == 0, r.stderr


# ---------------------------------------------------------------- kafka-python, aiokafka


def kp_conf(sec, listener, mechanism, user, password):
    conf = {"bootstrap_servers": sec.bootstrap_for(listener), "security_protocol": listener,
            "sasl_mechanism": mechanism, "sasl_plain_username": user, "sasl_plain_password": password}
    if listener.endswith("SSL"):
        conf["ssl_cafile"] = str(sec.certs / "ca.pem")
    return conf


@pytest.mark.parametrize("listener,mechanism,user,password", [
    ("SASL_SSL", "SCRAM-SHA-512", SCRAM_USER, SCRAM_PW),
    ("SASL_PLAINTEXT", "PLAIN", "alice", ALICE_PW),
])
def test_kafka_python_sasl_produce_consume_group(sec, listener, mechanism, user, password):
    from kafka import KafkaConsumer, KafkaProducer

    topic = f"kp-{uuid.uuid4().hex[:8]}"
    admin = AdminClient(ck_conf(sec, listener, mechanism, user, password))
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    conf = kp_conf(sec, listener, mechanism, user, password)
    p = KafkaProducer(acks="all", **conf)
    for i in range(10):
        p.send(topic, f"v{i}".encode()).get(30)
    p.close()
    c = KafkaConsumer(topic, group_id=f"g-{topic}", auto_offset_reset="earliest", consumer_timeout_ms=20000, **conf)
    got = set()
    for m in c:
        got.add(m.value)
        if len(got) == 10:
            break
    c.commit()
    c.close()
    assert got == {f"v{i}".encode() for i in range(10)}


def test_aiokafka_scram_over_tls_produce_consume_group(sec):
    import asyncio

    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.helpers import create_ssl_context

    topic = f"aio-{uuid.uuid4().hex[:8]}"
    admin = AdminClient(ck_conf(sec, "SASL_SSL", "SCRAM-SHA-256", SCRAM_USER, SCRAM_PW))
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)

    async def main():
        conf = dict(bootstrap_servers=sec.bootstrap_for("SASL_SSL"), security_protocol="SASL_SSL",
                    sasl_mechanism="SCRAM-SHA-256", sasl_plain_username=SCRAM_USER, sasl_plain_password=SCRAM_PW,
                    ssl_context=create_ssl_context(cafile=str(sec.certs / "ca.pem")))
        p = AIOKafkaProducer(acks="all", **conf)
        await p.start()
        for i in range(10):
            await p.send_and_wait(topic, f"v{i}".encode())
        await p.stop()
        c = AIOKafkaConsumer(topic, group_id=f"g-{topic}", auto_offset_reset="earliest", **conf)
        await c.start()
        got = set()
        try:
            async with asyncio.timeout(30):
                async for m in c:
                    got.add(m.value)
                    if len(got) == 10:
                        break
            await c.commit()
        finally:
            await c.stop()
        return got

    assert asyncio.run(main()) == {f"v{i}".encode() for i in range(10)}
