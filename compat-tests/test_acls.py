"""ACL administration with real clients against a broker running Kafka's ACL authorizer
(`authorizer.class.name=kafka.security.authorizer.AclAuthorizer`): the Java Admin
client's createAcls / describeAcls / deleteAcls, exactly what `kafka-acls
--bootstrap-server … --add --allow-principal User:alice --operation Read --topic t`
sends, and confluent-kafka's admin ACL calls. Every connection is User:ANONYMOUS here,
made a super user so it may administer ACLs."""

import json
import subprocess

import pytest
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from builds import java_cmd
from gregor_cluster import GregorCluster

SECURED = {
    "authorizer.class.name": "kafka.security.authorizer.AclAuthorizer",
    "super.users": "User:ANONYMOUS",
}


@pytest.fixture(scope="module")
def secured():
    with GregorCluster(brokers=1, broker_config=SECURED) as c:
        yield c


def acl_tool(bs, *args):
    r = subprocess.run(java_cmd("AclTool", bs, *args), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_java_admin_acls_add_list_remove(secured):
    bs = secured.bootstrap
    assert acl_tool(bs, "add", "User:alice", "READ", "ALLOW", "TOPIC", "t", "LITERAL") == {"ok": True}
    assert acl_tool(bs, "add", "User:bob", "WRITE", "DENY", "TOPIC", "logs-", "PREFIXED") == {"ok": True}
    acls = acl_tool(bs, "list")["acls"]
    assert ["TOPIC", "t", "LITERAL", "User:alice", "*", "READ", "ALLOW"] in acls
    assert ["TOPIC", "logs-", "PREFIXED", "User:bob", "*", "WRITE", "DENY"] in acls
    # MATCH finds every pattern that applies to a topic name (kafka-acls --list --topic logs-app).
    matched = acl_tool(bs, "list", "TOPIC", "logs-app", "MATCH")["acls"]
    assert matched == [["TOPIC", "logs-", "PREFIXED", "User:bob", "*", "WRITE", "DENY"]]
    gone = acl_tool(bs, "remove", "User:alice", "READ", "ALLOW", "TOPIC", "t", "LITERAL")["deleted"]
    assert gone == [["TOPIC", "t", "LITERAL", "User:alice", "*", "READ", "ALLOW"]]
    assert ["TOPIC", "t", "LITERAL", "User:alice", "*", "READ", "ALLOW"] not in acl_tool(bs, "list")["acls"]


def test_java_admin_acls_without_authorizer_is_security_disabled(cluster):
    assert acl_tool(cluster.bootstrap, "list") == {"error": "SecurityDisabledException"}


def test_confluent_kafka_admin_acls(secured):
    admin = AdminClient({"bootstrap.servers": secured.bootstrap})
    binding = AclBinding(
        ResourceType.GROUP, "g1", ResourcePatternType.LITERAL, "User:carol", "*", AclOperation.READ, AclPermissionType.ALLOW
    )
    for f in admin.create_acls([binding], request_timeout=30).values():
        assert f.result() is None
    flt = AclBindingFilter(
        ResourceType.GROUP, "g1", ResourcePatternType.ANY, None, None, AclOperation.ANY, AclPermissionType.ANY
    )
    found = admin.describe_acls(flt, request_timeout=30).result()
    assert [(b.name, b.principal, b.operation, b.permission_type) for b in found] == [
        ("g1", "User:carol", AclOperation.READ, AclPermissionType.ALLOW)
    ]
    deleted = list(admin.delete_acls([flt], request_timeout=30).values())[0].result()
    assert [(b.name, b.principal) for b in deleted] == [("g1", "User:carol")]
    assert admin.describe_acls(flt, request_timeout=30).result() == []
