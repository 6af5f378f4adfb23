#!/usr/bin/env bash
# Dependencies of the consumer-group compat tests (idempotent): the Python clients and kcat.
set -euo pipefail
need_pip=()
python3 -c "import confluent_kafka" 2>/dev/null || need_pip+=("confluent-kafka")
python3 -c "import kafka; assert int(kafka.__version__.split('.')[0]) >= 3" 2>/dev/null || need_pip+=("kafka-python>=3")
python3 -c "import aiokafka" 2>/dev/null || need_pip+=("aiokafka")
python3 -m pytest --version >/dev/null 2>&1 || need_pip+=("pytest")
if [ ${#need_pip[@]} -gt 0 ]; then
  python3 -m pip install --quiet "${need_pip[@]}" || python3 -m pip install --quiet --break-system-packages "${need_pip[@]}"
fi
if ! command -v kcat >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq kcat
fi
