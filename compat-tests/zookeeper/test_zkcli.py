"""zkCli.sh (from the Debian ZooKeeper 3.8 package) driven against gregor zookeeper,
with the same commands run against a real ZooKeeper to show the output is the same."""

import re
import subprocess

import pytest

from conftest import ZKCLI


def zkcli(server, commands):
    script = "\n".join(commands + ["quit"]) + "\n"
    proc = subprocess.run([ZKCLI, "-server", server.hosts], input=script, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=120)
    out = proc.stdout
    # Drop the banner: everything up to the connection event.
    marker = "WatchedEvent state:SyncConnected type:None path:null"
    assert marker in out, out
    return out.split(marker, 1)[1]


def stat_block(text):
    return dict(re.findall(r"^(\w+) = (.*)$", text, re.M))


def test_zkcli_session(server):
    p = f"/zkcli-{server.kind}"
    out = zkcli(server, [
        f"create {p} hello",
        f"create {p}/child c",
        f"ls {p}",
        f"get -s {p}",
        f"set {p} world",
        f"stat {p}",
        f"get {p}",
        f"create {p}/child",
        f"delete {p}",
        f"delete {p}/child",
        f"create {p}/a",
        f"create {p}/a/b",
        f"deleteall {p}",
        f"stat {p}",
        "ls /zookeeper",
    ])
    assert f"Created {p}\n" in out
    assert f"Created {p}/child\n" in out
    assert "[child]\n" in out
    lines = out.splitlines()
    # get -s: the data, then the stat block.
    i = lines.index("hello")
    get_stat = stat_block("\n".join(lines[i + 1:i + 12]))
    assert get_stat["dataVersion"] == "0"
    assert get_stat["numChildren"] == "1"
    assert get_stat["cversion"] == "1"
    assert get_stat["dataLength"] == "5"
    assert get_stat["ephemeralOwner"] == "0x0"
    assert get_stat["cZxid"] == get_stat["mZxid"]
    assert re.fullmatch(r"0x[0-9a-f]+", get_stat["pZxid"])
    # stat after set: version 1, new mZxid, same cZxid.
    j = lines.index("cZxid = " + get_stat["cZxid"], i + 12)
    after = stat_block("\n".join(lines[j:j + 11]))
    assert after["dataVersion"] == "1"
    assert after["mZxid"] != get_stat["mZxid"]
    assert after["dataLength"] == "5"
    assert "world" in lines
    assert f"Node already exists: {p}/child" in out
    assert f"Node not empty: {p}" in out
    assert f"Node does not exist: {p}" in out
    assert "[config, quota]" in out
