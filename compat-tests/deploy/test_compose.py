"""docker-compose.yml is valid and runs the same cluster as config/: one mini-zookeeper and
three brokers, each started with its config file, with ids and ports matching.
docker-compose.ensemble.yml (the production layout) is valid too: three Apache ZooKeeper
servers whose ZOO_MY_ID / ZOO_SERVERS form one ensemble, and three brokers started with
config/ensemble/, each naming all three servers (and a chroot) in zookeeper.connect."""

import re
import subprocess
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def compose_config(name="docker-compose.yml"):
    out = subprocess.run(
        ["docker-compose", "-f", str(REPO / name), "config"],
        cwd=REPO, capture_output=True, text=True, check=True,
    )
    return yaml.safe_load(out.stdout)


def test_compose_file_is_valid_and_matches_config_dir():
    cfg = compose_config()
    services = cfg["services"]
    assert set(services) == {"zookeeper", "broker-1", "broker-2", "broker-3"}
    assert services["zookeeper"]["command"] == ["zookeeper", "--config", "/etc/gregor/zookeeper.toml"]
    zk = tomllib.loads((REPO / "config" / "zookeeper.toml").read_text())
    ports = set()
    for i in (1, 2, 3):
        svc = services[f"broker-{i}"]
        assert svc["command"] == ["broker", "--config", f"/etc/gregor/broker-{i}.toml"]
        assert svc["network_mode"] == "host"
        assert "zookeeper" in svc["depends_on"]
        broker = tomllib.loads((REPO / "config" / f"broker-{i}.toml").read_text())
        assert broker["broker"]["id"] == i
        assert broker["zookeeper"]["connect"] == f"{zk['client_address']}:{zk['client_port']}"
        ports.add(int(re.search(r":(\d+)$", broker["listeners"]).group(1)))
    assert len(ports) == 3, "each broker listens on its own port"
    # The image has the binary and the configs.
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "cargo build --release --bin gregor" in dockerfile
    assert "COPY config /etc/gregor" in dockerfile


def test_ensemble_compose_file_is_one_ensemble_and_brokers_use_all_of_it():
    cfg = compose_config("docker-compose.ensemble.yml")
    services = cfg["services"]
    zks = {n for n in services if n.startswith("zk-")}
    assert zks == {"zk-1", "zk-2", "zk-3"}
    assert set(services) == zks | {"broker-1", "broker-2", "broker-3"}
    servers = None
    for name in sorted(zks):
        svc = services[name]
        assert svc["image"].startswith("zookeeper:3.8"), svc["image"]
        env = svc["environment"]
        assert env["ZOO_MY_ID"] == name.split("-")[1]
        # ZOO_SERVERS: "server.<id>=<host>:<quorum>:<election>;<client>" for every server,
        # the same on each, and each server's own id names its own service.
        entries = dict(e.split("=", 1) for e in env["ZOO_SERVERS"].split())
        servers = servers or entries
        assert entries == servers, f"{name}: ZOO_SERVERS differs"
        assert entries[f"server.{env['ZOO_MY_ID']}"].split(":")[0] == name
        assert "mntr" in env["ZOO_4LW_COMMANDS_WHITELIST"].split(",")
    assert set(servers) == {"server.1", "server.2", "server.3"}
    client = {}
    for key, addr in servers.items():
        host, quorum, election_and_client = addr.split(":", 2)
        election, client_port = election_and_client.split(";")
        assert quorum != election
        client[host] = int(client_port)
    ids, ports = set(), set()
    for i in (1, 2, 3):
        svc = services[f"broker-{i}"]
        path = f"/etc/gregor/ensemble/broker-{i}.toml"
        assert svc["command"] == ["broker", "--config", path]
        assert f"{REPO / 'config'}:/etc/gregor:ro" in svc["volumes"]
        assert set(svc["depends_on"]) == zks
        broker = tomllib.loads((REPO / "config" / "ensemble" / f"broker-{i}.toml").read_text())
        assert broker["broker"]["id"] == i
        ids.add(broker["broker"]["id"])
        hosts, chroot = broker["zookeeper"]["connect"].split("/", 1)
        assert chroot, "a chroot keeps the brokers' znodes apart"
        named = dict((h.split(":")[0], int(h.split(":")[1])) for h in hosts.split(","))
        assert named == client, f"broker {i}: zookeeper.connect {hosts} is not the ensemble {client}"
        # The external listener's port is published as itself, so what is advertised works
        # from the host; the internal one names the service.
        advertised = dict(l.split("://") for l in broker["advertised"]["listeners"].split(","))
        assert advertised["INTERNAL"].split(":")[0] == f"broker-{i}"
        ext_port = int(advertised["EXTERNAL"].rsplit(":", 1)[1])
        assert {"published": ext_port, "target": ext_port} in [
            {k: int(v) for k, v in p.items() if k in ("published", "target")} for p in svc["ports"]]
        ports.add(ext_port)
        assert broker["min"]["insync"]["replicas"] == 2
        assert broker["default"]["replication"]["factor"] == 3
    assert ids == {1, 2, 3} and len(ports) == 3


def test_shipped_configs_are_accepted_and_bad_keys_are_named(tmp_path):
    """Each config/ and config/ensemble/ file passes validation (the broker gets as far as
    connecting to ZooKeeper; the ports and hosts in them may be taken or unknown on a
    developer machine, so log.dirs and zookeeper.connect are overridden), and a misspelled
    key stops start-up naming it."""
    import os
    import socket

    gregor = os.environ.get("GREGOR_BIN", str(REPO / "target" / "release" / "gregor"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]  # nothing listens here once closed
    configs = [REPO / "config" / f"broker-{i}.toml" for i in (1, 2, 3)]
    configs += [REPO / "config" / "ensemble" / f"broker-{i}.toml" for i in (1, 2, 3)]
    for n, config in enumerate(configs):
        r = subprocess.run(
            [gregor, "broker", "--config", str(config),
             "--override", f"log.dirs={tmp_path / f'b{n}'}",
             "--override", f"zookeeper.connect=127.0.0.1:{dead_port}",
             "--override", "zookeeper.connection.timeout.ms=1000"],
            capture_output=True, text=True, timeout=60,
        )
        assert r.returncode != 0, config
        assert "timed out connecting to ZooKeeper" in r.stderr, f"{config}: {r.stderr}"
    bad = tmp_path / "bad.toml"
    bad.write_text((REPO / "config" / "broker-1.toml").read_text() + "\nlog.segmnet.bytes = 5\n")
    r = subprocess.run([gregor, "broker", "--config", str(bad)], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "log.segmnet.bytes" in r.stderr, r.stderr
