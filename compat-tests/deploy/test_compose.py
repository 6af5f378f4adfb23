"""docker-compose.yml is valid and runs the same cluster as config/: one mini-zookeeper and
three brokers, each started with its config file, with ids and ports matching."""

import re
import subprocess
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def compose_config():
    out = subprocess.run(
        ["docker-compose", "-f", str(REPO / "docker-compose.yml"), "config"],
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


def test_shipped_configs_are_accepted_and_bad_keys_are_named(tmp_path):
    """Each config/ file passes validation (the broker gets as far as connecting to
    ZooKeeper; the ports in config/ may be taken on a developer machine, so they are
    overridden), and a misspelled key stops start-up naming it."""
    import os
    import socket

    gregor = os.environ.get("GREGOR_BIN", str(REPO / "target" / "release" / "gregor"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]  # nothing listens here once closed
    for i in (1, 2, 3):
        r = subprocess.run(
            [gregor, "broker", "--config", str(REPO / "config" / f"broker-{i}.toml"),
             "--override", f"log.dirs={tmp_path / f'b{i}'}",
             "--override", f"zookeeper.connect=127.0.0.1:{dead_port}",
             "--override", "zookeeper.connection.timeout.ms=1000"],
            capture_output=True, text=True, timeout=60,
        )
        assert r.returncode != 0
        assert "timed out connecting to ZooKeeper" in r.stderr, r.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text((REPO / "config" / "broker-1.toml").read_text() + "\nlog.segmnet.bytes = 5\n")
    r = subprocess.run([gregor, "broker", "--config", str(bad)], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "log.segmnet.bytes" in r.stderr, r.stderr
