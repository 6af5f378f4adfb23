"""Helpers for the old-client suites: a cluster whose broker logs the API key and
version of every request (`RUST_LOG=gregor::requests=debug`), so a test can prove which
protocol versions a client really spoke."""

import contextlib
import os
import re

from gregor_cluster import GregorCluster

REQUEST_LINE = re.compile(r"gregor::requests: request api=(\w+) version=(\d+) client=(.*)$")


@contextlib.contextmanager
def logged_cluster(brokers=1):
    old = os.environ.get("GREGOR_TEST_LOG")
    os.environ["GREGOR_TEST_LOG"] = "info,gregor::requests=debug"
    try:
        c = GregorCluster(brokers=brokers).__enter__()
    finally:
        if old is None:
            os.environ.pop("GREGOR_TEST_LOG", None)
        else:
            os.environ["GREGOR_TEST_LOG"] = old
    try:
        yield c
    finally:
        c.__exit__(None, None, None)


def versions_used(cluster, client):
    """{(api, version)} of the requests whose client id contains `client`."""
    out = set()
    for b in cluster.ports:
        for line in (cluster.dir / f"broker-{b}.log").read_text().splitlines():
            m = REQUEST_LINE.search(line)
            if m and client in m.group(3):
                out.add((m.group(1), int(m.group(2))))
    return out


def max_version(used, api):
    return max((v for a, v in used if a == api), default=None)
