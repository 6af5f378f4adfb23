#!/usr/bin/env bash
# What the operations tests need: a Prometheus text-format parser (the Prometheus
# project's Python client) and a real browser for the web console (Debian's chromium and
# chromium-driver, driven by selenium's WebDriver client).
set -euo pipefail
cd "$(dirname "$0")"
source ../apt-install.sh
apt_install chromium chromium-driver
PKGS=("prometheus-client==0.21.1" "selenium==4.27.1")
check() {
  python3 - <<'PY'
import importlib.metadata as m, sys
want = {"prometheus-client": "0.21.1", "selenium": "4.27.1"}
for name, version in want.items():
    try:
        if m.version(name) != version:
            sys.exit(1)
    except m.PackageNotFoundError:
        sys.exit(1)
PY
}
if ! check 2>/dev/null; then
  echo "pip install ${PKGS[*]}"
  python3 -m pip install --quiet --disable-pip-version-check "${PKGS[@]}"
  check || { echo "FAILED: prometheus-client / selenium not importable" >&2; exit 1; }
fi
/usr/bin/chromium --version
