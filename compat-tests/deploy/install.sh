#!/usr/bin/env bash
# Dependencies of the deployment tests (idempotent: skips what is present):
# - docker-compose (Debian's package) to validate docker-compose.yml and
#   docker-compose.ensemble.yml; Docker itself cannot run on this machine, so the files are
#   checked with `docker-compose config`;
# - Apache ZooKeeper 3.8 (Debian's package) and kazoo for test_zk_ensemble.py's
#   three-server ensemble: the zookeeper suite's install.sh, so either order works;
# - confluent-kafka, the client test_zk_ensemble.py produces and consumes with.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if ! command -v docker-compose >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null
fi
python3 -c "import yaml" 2>/dev/null || python3 -m pip install --quiet pyyaml
bash "$here/../zookeeper/install.sh"
python3 -c "import confluent_kafka" 2>/dev/null || python3 -m pip install --quiet "confluent-kafka==2.16.1"
