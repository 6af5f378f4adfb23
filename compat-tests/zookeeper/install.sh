#!/usr/bin/env bash
# Dependencies of the mini-zookeeper compat suite (idempotent: skips what is present):
# - Apache ZooKeeper 3.8 from Debian (the reference server, zkCli.sh, java),
# - kazoo (the Python client) for the interpreter that runs pytest.
set -euo pipefail
if [ ! -f /usr/share/java/zookeeper.jar ] || [ ! -x /usr/share/zookeeper/bin/zkCli.sh ]; then
  echo "installing Debian package zookeeper"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq zookeeper >/dev/null
fi
if ! python3 -c "import kazoo" >/dev/null 2>&1; then
  echo "installing kazoo"
  python3 -m pip install --quiet kazoo
fi
echo "zookeeper compat deps: ok"
