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
