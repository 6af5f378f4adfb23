"""TLS and SASL with the clients test_security.py does not drive: kcat (librdkafka 2.0.2,
Debian) with -X properties, sarama 1.22.1 (Debian; SCRAM through xdg-go/scram, as
sarama's own example does) and kafkajs 2.2.4, each over SASL_SSL with PLAIN,
SCRAM-SHA-256 and SCRAM-SHA-512: produce, consume in a consumer group (offsets committed
and visible to the admin), and a wrong password fails with the client's authentication
error without anything being served. The broker is test_security's: PLAINTEXT, SSL
(mTLS), SASL_PLAINTEXT and SASL_SSL listeners, PLAIN users in the JAAS config, SCRAM
users in ZooKeeper.

kafka-go 0.2.1 (Debian, test_kafka_go.py) has no SASL and no TLS settings at all
(its Dialer has neither), so it has no case here."""

import json
import subprocess
import time
import uuid

import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from builds import go_binary, node_driver
from checks import Driver, encode_msg, make_messages, parse_acks, verify_roundtrip
from test_security import ALICE_PW, SCRAM_PW, SCRAM_USER, SecureCluster, ck_conf

CASES = [
    ("PLAIN", "alice", ALICE_PW),
    ("SCRAM-SHA-256", SCRAM_USER, SCRAM_PW),
    ("SCRAM-SHA-512", SCRAM_USER, SCRAM_PW),
]
IDS = [c[0] for c in CASES]


@pytest.fixture(scope="module")
def sec():
    with SecureCluster(brokers=1) as c:
        c.add_scram_user_in_zk(SCRAM_USER, SCRAM_PW)
        # The broker reloads SCRAM users on the change notification: wait until it has.
        deadline = time.time() + 20
        while True:
            try:
                AdminClient(ck_conf(c, "SASL_SSL", "SCRAM-SHA-512", SCRAM_USER, SCRAM_PW)).list_topics(timeout=5)
                break
            except Exception:
                assert time.time() < deadline, "the SCRAM user never authenticated"
        yield c


def new_topic(sec, prefix, partitions=2):
    topic = f"{prefix}-{uuid.uuid4().hex[:8]}"
    admin = AdminClient(ck_conf(sec, "SASL_SSL", "PLAIN", "admin", "admin-secret"))
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(30)
    return topic


def committed(sec, group, topic, partitions=2):
    """The group's committed offsets, as the admin sees them."""
    from confluent_kafka import Consumer

    c = Consumer(dict(ck_conf(sec, "SASL_SSL", "PLAIN", "admin", "admin-secret"), **{"group.id": group}))
    try:
        res = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=20)
        return {tp.partition: tp.offset for tp in res}
    finally:
        c.close()


def assert_group_committed(sec, group, topic, n):
    offsets = committed(sec, group, topic)
    assert sum(o for o in offsets.values() if o > 0) == n, f"group {group} committed {offsets}, {n} records consumed"


# ---------------------------------------------------------------- kcat (librdkafka 2.0.2)


def kcat_props(sec, mechanism, user, password):
    return ["-X", "security.protocol=SASL_SSL", "-X", f"ssl.ca.location={sec.certs / 'ca.pem'}",
            "-X", f"sasl.mechanism={mechanism}", "-X", f"sasl.username={user}", "-X", f"sasl.password={password}"]


@pytest.mark.parametrize("mechanism,user,password", CASES, ids=IDS)
def test_kcat_sasl_ssl_produce_and_consume_in_a_group(sec, mechanism, user, password):
    topic = new_topic(sec, "kcat")
    props = kcat_props(sec, mechanism, user, password)
    bs = sec.bootstrap_for("SASL_SSL")
    values = [f"{mechanism}-{i}" for i in range(20)]
    r = subprocess.run(["kcat", "-b", bs, *props, "-P", "-t", topic], input="".join(v + "\n" for v in values),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    group = f"g-{topic}"
    r = subprocess.run(["kcat", "-b", bs, *props, "-G", group, "-o", "beginning", "-c", str(len(values)),
                        "-f", "%s\n", topic], capture_output=True, text=True, timeout=90)
    assert r.returncode == 0, r.stderr[-2000:]
    assert sorted(r.stdout.split()) == sorted(values)
    assert_group_committed(sec, group, topic, len(values))


def test_kcat_wrong_password_fails_with_an_authentication_error(sec):
    topic = new_topic(sec, "kcat-bad")
    for mechanism, user, _ in CASES:
        r = subprocess.run(["kcat", "-b", sec.bootstrap_for("SASL_SSL"), *kcat_props(sec, mechanism, user, "wrong"),
                            "-C", "-t", topic, "-o", "beginning", "-e", "-m", "5"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode != 0, r.stdout
        assert "SASL authentication error: Authentication failed" in r.stderr, r.stderr[-1500:]


# ---------------------------------------------------------------- sarama 1.22.1


def sarama_flags(sec, mechanism, user, password):
    return ["-tls-ca", sec.certs / "ca.pem", "-sasl-mechanism", mechanism, "-sasl-user", user, "-sasl-password", password]


@pytest.mark.parametrize("mechanism,user,password", CASES, ids=IDS)
def test_sarama_sasl_ssl_produce_and_consume_in_a_group(sec, mechanism, user, password):
    topic = new_topic(sec, "sarama")
    bs = sec.bootstrap_for("SASL_SSL")
    flags = sarama_flags(sec, mechanism, user, password)
    msgs = make_messages(topic, n=30, headers=True)
    p = Driver([go_binary("sarama"), "produce", "-brokers", bs, "-topic", topic, *flags],
               stdin_lines=[encode_msg(m) for m in msgs])
    acks = parse_acks(p.all_lines(timeout=90), len(msgs))
    group = f"g-{topic}"
    c = Driver([go_binary("saramagroup"), "-brokers", bs, "-group", group, "-topic", topic,
                "-count", len(msgs), "-idle-ms", 20000, "-commit-ms", 200, *flags])
    recs = c.records(len(msgs), timeout=90)
    closed = c.wait_line("CLOSED", timeout=60)
    c.close()
    assert closed == f"CLOSED\t{len(msgs)}", closed
    verify_roundtrip(msgs, recs, acks=acks, check_ts=False)
    assert_group_committed(sec, group, topic, len(msgs))


@pytest.mark.parametrize("mechanism,user", [("PLAIN", "alice"), ("SCRAM-SHA-512", SCRAM_USER)])
def test_sarama_wrong_password_fails_with_an_authentication_error(sec, mechanism, user):
    r = subprocess.run([go_binary("sarama"), "metadata", "-brokers", sec.bootstrap_for("SASL_SSL"),
                        *map(str, sarama_flags(sec, mechanism, user, "wrong"))],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0, r.stdout
    # sarama's error for SASL_AUTHENTICATION_FAILED (58) from SaslAuthenticate.
    assert "SASL Authentication failed" in r.stderr, r.stderr[-1500:]


# ---------------------------------------------------------------- kafkajs 2.2.4


def kjs_flags(sec, mechanism, user, password):
    return ["--tls-ca", str(sec.certs / "ca.pem"), "--sasl-mechanism", mechanism.lower(),
            "--sasl-user", user, "--sasl-password", password]


@pytest.mark.parametrize("mechanism,user,password", CASES, ids=IDS)
def test_kafkajs_sasl_ssl_produce_and_consume_in_a_group(sec, mechanism, user, password):
    node = node_driver()
    topic = new_topic(sec, "kjs")
    bs = sec.bootstrap_for("SASL_SSL")
    flags = kjs_flags(sec, mechanism, user, password)
    msgs = make_messages(topic, n=30, headers=True)
    p = Driver([*node, "produce", "--brokers", bs, "--topic", topic, *flags], stdin_lines=[encode_msg(m) for m in msgs])
    acks = parse_acks(p.all_lines(timeout=90), len(msgs))
    group = f"g-{topic}"
    c = Driver([*node, "group", "--brokers", bs, "--topic", topic, "--group", group, "--count", str(len(msgs)), *flags])
    recs = c.records(len(msgs), timeout=90)
    done = c.wait_line("DONE", timeout=60)
    c.close()
    assert done == f"DONE\t{len(msgs)}", done
    verify_roundtrip(msgs, recs, acks=acks)
    assert_group_committed(sec, group, topic, len(msgs))


@pytest.mark.parametrize("mechanism,user", [("PLAIN", "alice"), ("SCRAM-SHA-256", SCRAM_USER)])
def test_kafkajs_wrong_password_fails_with_an_authentication_error(sec, mechanism, user):
    node = node_driver()
    r = subprocess.run([*node, "admin", "--brokers", sec.bootstrap_for("SASL_SSL"), *kjs_flags(sec, mechanism, user, "wrong"),
                        "list-topics"], capture_output=True, text=True, timeout=90)
    assert r.returncode != 0, r.stdout
    assert "KafkaJSSASLAuthenticationError" in r.stderr, r.stderr[-1500:]
    assert "topics" not in r.stdout, r.stdout


# ---------------------------------------------------------------- KIP-368: re-authentication

REAUTH_MS = 3000


@pytest.fixture(scope="module")
def reauth_sec():
    with SecureCluster(brokers=1, extra={"connections.max.reauth.ms": REAUTH_MS}) as c:
        yield c


def java_connections(pid, port):
    """Local ports of the process's established connections to the broker's port."""
    out = subprocess.run(["ss", "-tnpH", "state", "established", "dst", f"127.0.0.1:{port}"],
                         capture_output=True, text=True, check=True).stdout
    return {line.split()[2].rsplit(":", 1)[1] for line in out.splitlines() if f"pid={pid}," in line}


def lines_until(driver, until):
    """(time, line) of every stdout line the driver prints before `until`."""
    import queue

    out = []
    while (left := until - time.time()) > 0:
        try:
            line = driver.lines.get(timeout=min(left, 0.5))
        except queue.Empty:
            continue
        if line is None:
            break
        out.append((time.time(), line))
    return out


@pytest.mark.parametrize("change", ["deleted", "password changed"])
def test_java_reauthenticates_and_is_cut_off_when_its_credentials_go(reauth_sec, change):
    """The Java producer and group consumer re-authenticate on their connections every
    connections.max.reauth.ms (the broker tells them the session lifetime); once the
    user's SCRAM credential is deleted or its password changed, the next
    re-authentication fails: the consumer's poll throws SaslAuthenticationException and
    nothing more is acknowledged to the producer."""
    from builds import java_cmd

    sec = reauth_sec
    user = f"reauth{uuid.uuid4().hex[:6]}"
    sec.add_scram_user_in_zk(user, "pw-1", mechanisms=("SCRAM-SHA-512",))
    topic = new_topic(sec, "reauth", partitions=1)
    port = sec.lports[1]["SASL_SSL"]
    bs = sec.bootstrap_for("SASL_SSL")
    props = {
        "security.protocol": "SASL_SSL", "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(sec.certs / "ca.pem"), "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.jaas.config": f'org.apache.kafka.common.security.scram.ScramLoginModule required username="{user}" password="pw-1";',
    }
    pargs = ["--bootstrap-server", bs, "--topic", topic, "--prefix", "v", "--interval-ms", 20]
    for k, v in dict(props, **{"max.block.ms": 5000, "delivery.timeout.ms": 10000, "request.timeout.ms": 5000}).items():
        pargs += ["--producer-property", f"{k}={v}"]
    cargs = ["--bootstrap-server", bs, "--topic", topic, "--group", f"g-{topic}", "--from-beginning",
             "--timeout-ms", 120000]
    for k, v in props.items():
        cargs += ["--consumer-property", f"{k}={v}"]
    deadline = time.time() + 60
    while True:  # the broker loads the new user on its change notification
        producer = Driver(java_cmd("SteadyProducer", *pargs))
        first = producer.next_line(time.time() + 60)
        if first and first.startswith("ACK"):
            break
        producer.send(["stop"])
        producer.close()
        assert time.time() < deadline, f"{user} never authenticated: {first} {producer.err_tail()}"
    consumer = Driver(java_cmd("GroupConsumer", *cargs))
    try:
        consumer.records(1, timeout=60)
        before = {d: java_connections(d.proc.pid, port) for d in (producer, consumer)}
        assert all(before.values()), f"no connections to the SASL_SSL listener: {before}"
        # Two and a half session lifetimes: every write is acknowledged and records keep
        # coming on the same connections: the clients re-authenticated in place (KIP-368),
        # they were not cut off and reconnected.
        lines = []
        until = time.time() + 2.5 * REAUTH_MS / 1000
        while time.time() < until:
            lines.append(producer.next_line(time.time() + 10))
        assert lines and all(l.startswith("ACK") for l in lines), [l for l in lines if not l.startswith("ACK")][:3]
        consumer.records(len(lines) // 2, timeout=30)
        for d in (producer, consumer):
            assert java_connections(d.proc.pid, port) <= before[d], "a client had to reconnect"

        if change == "deleted":
            from confluent_kafka.admin import ScramMechanism, UserScramCredentialDeletion

            admin = AdminClient(ck_conf(sec, "SASL_SSL", "PLAIN", "admin", "admin-secret"))
            admin.alter_user_scram_credentials([UserScramCredentialDeletion(user, ScramMechanism.SCRAM_SHA_512)])[user].result(30)
        else:
            sec.add_scram_user_in_zk(user, "pw-2", mechanisms=("SCRAM-SHA-512",))
        changed_at = time.time()
        # The consumer's next re-authentication fails: poll() throws the authentication
        # error and the consumer exits.
        while (line := consumer.next_line(changed_at + REAUTH_MS / 1000 + 30)) is not None:
            pass
        assert consumer.proc.wait(timeout=60) != 0
        err = consumer.err_tail(200)
        assert "SaslAuthenticationException" in err and "Authentication failed" in err, err[-2000:]
        # The producer's connection failed its re-authentication too: after a session
        # lifetime (and a margin for the broker's reload), nothing is acknowledged.
        cutoff = changed_at + REAUTH_MS / 1000 + 5
        late = [line for at, line in lines_until(producer, cutoff + 3) if at > cutoff and line.startswith("ACK")]
        assert not late, f"acknowledged after the credentials went: {late[:3]}"
    finally:
        producer.send(["stop"])
        producer.close()
        consumer.close()


def test_a_client_that_does_not_reauthenticate_is_disconnected_after_its_session(reauth_sec):
    """Raw SaslHandshake v1 + SaslAuthenticate v1 (PLAIN): the answer carries the session
    lifetime; a request after it expires closes the connection; a re-authentication before
    it expires keeps the connection, and one as another user is refused."""
    import socket
    import struct

    from test_security import kafka_request, recv_frame

    def handshake(s, corr):
        mech = b"PLAIN"
        s.sendall(kafka_request(17, 1, struct.pack(">h", len(mech)) + mech, correlation=corr))
        resp = recv_frame(s)
        assert resp[4:6] == b"\x00\x00", resp

    def authenticate(s, user, password, corr):
        token = b"\x00" + user.encode() + b"\x00" + password.encode()
        s.sendall(kafka_request(36, 1, struct.pack(">i", len(token)) + token, correlation=corr))
        resp = recv_frame(s)
        if resp is None:
            return None, None
        error = struct.unpack_from(">h", resp, 4)[0]
        msg_len = struct.unpack_from(">h", resp, 6)[0]
        pos = 8 + max(msg_len, 0)
        auth_len = struct.unpack_from(">i", resp, pos)[0]
        lifetime = struct.unpack_from(">q", resp, pos + 4 + auth_len)[0]
        return error, lifetime

    metadata = kafka_request(3, 0, b"\x00\x00\x00\x00", correlation=99)
    port = reauth_sec.lports[1]["SASL_PLAINTEXT"]
    with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
        handshake(s, 1)
        error, lifetime = authenticate(s, "alice", ALICE_PW, 2)
        assert (error, lifetime) == (0, REAUTH_MS)
        started = time.time()
        s.sendall(metadata)
        assert recv_frame(s) is not None
        # Re-authenticate before expiry: the connection lives on past the first session.
        time.sleep(REAUTH_MS / 2000)
        handshake(s, 3)
        assert authenticate(s, "alice", ALICE_PW, 4) == (0, REAUTH_MS)
        renewed = time.time()
        while time.time() < started + REAUTH_MS / 1000 + 0.5:
            time.sleep(0.1)
        assert time.time() < renewed + REAUTH_MS / 1000
        s.sendall(metadata)
        assert recv_frame(s) is not None, "closed although re-authenticated"
        # Now let the renewed session run out: the next request closes the connection.
        while time.time() < renewed + REAUTH_MS / 1000 + 0.5:
            time.sleep(0.1)
        s.sendall(metadata)
        assert recv_frame(s) is None, "served after the session expired"
    with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
        handshake(s, 1)
        assert authenticate(s, "alice", ALICE_PW, 2)[0] == 0
        handshake(s, 3)
        error, _ = authenticate(s, "admin", "admin-secret", 4)
        assert error == 58, "re-authenticated as another principal"
        assert recv_frame(s) is None
