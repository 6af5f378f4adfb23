"""Shared pytest fixtures for compat-tests: real gregor clusters."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gregor_cluster import GregorCluster  # noqa: E402


@pytest.fixture(scope="module")
def cluster():
    """One broker and a mini-zookeeper, shared by a test module."""
    with GregorCluster(brokers=1) as c:
        yield c


@pytest.fixture(scope="module")
def cluster3():
    """Three brokers and a mini-zookeeper, shared by a test module."""
    with GregorCluster(brokers=3) as c:
        yield c


@pytest.fixture
def fresh_cluster():
    """A one-broker cluster of its own, for tests that restart or kill processes."""
    with GregorCluster(brokers=1) as c:
        yield c
