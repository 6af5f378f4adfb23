#!/usr/bin/env bash
# docker-compose (Debian's package) to validate docker-compose.yml; Docker itself cannot
# run on this machine, so the file is checked with `docker-compose config`.
set -euo pipefail
if ! command -v docker-compose >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null
fi
python3 -c "import yaml" 2>/dev/null || python3 -m pip install --quiet pyyaml
