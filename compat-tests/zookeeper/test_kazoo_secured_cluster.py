"""A gregor broker with `zookeeper.set.acl=true` and a digest identity, against gregor
zookeeper and a real Apache ZooKeeper 3.8 (the `server` fixture runs both): the cluster
works (kafka-python produces and consumes), kazoo without credentials can read but not
change /brokers, /config, /kafka-acl, /controller and cannot read /config/users; kazoo
with the brokers' digest can. And the four-letter words are off unless whitelisted, with
the same refusal on both servers."""

import uuid
import warnings

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
from kazoo.security import CREATOR_ALL_ACL, OPEN_ACL_UNSAFE, make_digest_acl_credential

from conftest import four_letter, start_gregor, start_real_zookeeper
from gregor_cluster import GregorCluster

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

USER, PASSWORD = "kafka", "broker-secret"
CHROOT = "/kafka"


@pytest.fixture(scope="module")
def secured(server, tmp_path_factory):
    creds = tmp_path_factory.mktemp("creds") / "zk-digest"
    creds.write_text(f"{USER}:{PASSWORD}\n")
    conf = {"zookeeper.set.acl": "true", "zookeeper.digest.credentials.file": str(creds)}
    with GregorCluster(brokers=1, broker_config=conf, zookeeper_hosts=server.hosts,
                       chroot=CHROOT) as c:
        yield c


def kazoo(server, auth=None):
    zk = KazooClient(hosts=server.hosts + CHROOT, timeout=10,
                     auth_data=[("digest", auth)] if auth else None)
    zk.start(timeout=30)
    return zk


def produce_and_consume(secured):
    topic = f"secured-{uuid.uuid4().hex[:8]}"
    p = KafkaProducer(bootstrap_servers=secured.bootstrap, acks="all")
    try:
        # Auto-created: the broker writes the topic's znodes with its ACLs.
        for i in range(3):
            p.send(topic, value=f"v{i}".encode()).get(60)
    finally:
        p.close()
    c = KafkaConsumer(bootstrap_servers=secured.bootstrap, group_id=None,
                      enable_auto_commit=False)
    try:
        tp = TopicPartition(topic, 0)
        c.assign([tp])
        c.seek_to_beginning(tp)
        got = []
        for _ in range(100):
            for batch in c.poll(timeout_ms=300).values():
                got.extend(r.value for r in batch)
            if len(got) >= 3:
                break
        return got
    finally:
        c.close()


@pytest.fixture(scope="module")
def written(secured):
    """The records of a topic auto-created and written on the secured cluster."""
    return produce_and_consume(secured)


def test_secured_cluster_produces_and_consumes(written):
    assert written == [b"v0", b"v1", b"v2"]


def readable_paths(zk):
    broker_id = zk.get_children("/brokers/ids")[0]
    topic = zk.get_children("/brokers/topics")[0]
    return ["/brokers", "/brokers/ids", f"/brokers/ids/{broker_id}", f"/brokers/topics/{topic}",
            f"/brokers/topics/{topic}/partitions/0/state", "/config", "/config/topics",
            f"/config/topics/{topic}", "/config/changes", "/kafka-acl", "/kafka-acl-changes",
            "/controller", "/controller_epoch", "/cluster/id"]


def test_strangers_read_but_cannot_change(written, server):
    zk = kazoo(server)
    try:
        for path in readable_paths(zk):
            zk.get(path)
            with pytest.raises(NoAuthError):
                zk.set(path, b"{}")
            with pytest.raises(NoAuthError):
                zk.delete(path)
            with pytest.raises(NoAuthError):
                zk.create(f"{path}/planted", b"", acl=OPEN_ACL_UNSAFE)
            with pytest.raises(NoAuthError):
                zk.set_acls(path, OPEN_ACL_UNSAFE)
        # SCRAM credentials: not even a look.
        for read in (zk.get, zk.get_children, zk.get_acls):
            with pytest.raises(NoAuthError):
                read("/config/users")
        # exists checks READ since ZooKeeper 3.8.4 / 3.9.2 (ZOOKEEPER-2590), as gregor
        # does; Debian's 3.8.0 predates it.
        if server.kind == "gregor":
            with pytest.raises(NoAuthError):
                zk.exists("/config/users")
        with pytest.raises(NoAuthError):
            zk.create("/config/users/mallory", b"{}", acl=OPEN_ACL_UNSAFE)
        # Who may write is visible, the digest is not (no ADMIN).
        acl, _ = zk.get_acls("/brokers")
        assert sorted((a.id.scheme, a.id.id, a.perms) for a in acl) == [
            ("digest", f"{USER}:x", 31), ("world", "anyone", 1)]
    finally:
        zk.stop()
        zk.close()
    # A wrong password is just another stranger.
    zk = kazoo(server, f"{USER}:guess")
    try:
        with pytest.raises(NoAuthError):
            zk.set("/controller", b"{}")
        with pytest.raises(NoAuthError):
            zk.get("/config/users")
    finally:
        zk.stop()
        zk.close()


def test_the_brokers_digest_can(written, server):
    zk = kazoo(server, f"{USER}:{PASSWORD}")
    try:
        digest = make_digest_acl_credential(USER, PASSWORD)
        for path in readable_paths(zk):
            acl, _ = zk.get_acls(path)
            assert sorted((a.id.scheme, a.id.id, a.perms) for a in acl) == [
                ("digest", digest, 31), ("world", "anyone", 1)], path
        acl, _ = zk.get_acls("/config/users")
        assert [(a.id.scheme, a.id.id, a.perms) for a in acl] == [("digest", digest, 31)]
        zk.create("/config/users/alice", b"{}", acl=CREATOR_ALL_ACL)
        assert zk.get("/config/users/alice")[0] == b"{}"
        zk.delete("/config/users/alice")
        topic = zk.get_children("/config/topics")[0]
        data, st = zk.get(f"/config/topics/{topic}")
        zk.set(f"/config/topics/{topic}", data, version=st.version)
        zk.create("/kafka-acl/Topic", b"")
        zk.delete("/kafka-acl/Topic")
    finally:
        zk.stop()
        zk.close()


@pytest.mark.parametrize("kind", ["gregor", "zookeeper"])
def test_four_letter_words_default_to_srvr_only(kind):
    srv = start_gregor(None) if kind == "gregor" else start_real_zookeeper(None)
    try:
        for cmd in ["ruok", "stat", "cons", "dump", "wchc", "wchp", "wchs", "envi", "conf",
                    "mntr", "crst", "srst", "dirs"]:
            assert four_letter(srv.port, cmd) == \
                f"{cmd} is not executed because it is not in the whitelist.\n", cmd
        assert four_letter(srv.port, "srvr").startswith("Zookeeper version: ")
    finally:
        srv.stop()
