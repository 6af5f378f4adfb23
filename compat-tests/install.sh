#!/usr/bin/env bash
# Installs every compat suite's dependencies: runs compat-tests/*/install.sh in turn.
# Each suite's install.sh is idempotent (skips what is already present).
set -euo pipefail
cd "$(dirname "$0")"
if ! python3 -m pytest --version >/dev/null 2>&1; then
  python3 -m pip install --quiet pytest
fi
for script in */install.sh; do
  [ -e "$script" ] || continue
  echo "-- $script"
  bash "$script"
done
