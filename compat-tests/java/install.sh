#!/usr/bin/env bash
# The official Java client (kafka-clients 3.9.1) and its runtime jars, taken from the PyPI
# wheel that ships them, into compat-tests/.deps/java/; a JDK 17 with javac.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/../apt-install.sh"
DEST="$HERE/../.deps/java"
WHEEL="shigawire-apache-flink-libraries==2.0.0.post1"
JARS=(kafka-clients.jar slf4j-api.jar lz4-java.jar snappy-java.jar zstd-jni.jar)

if ! command -v javac >/dev/null || ! javac -version 2>&1 | grep -Eq 'javac (1[7-9]|2[0-9])'; then
  apt_install openjdk-17-jdk-headless
fi

have_jars() {
  for j in "${JARS[@]}"; do [ -s "$DEST/$j" ] || return 1; done
  unzip -p "$DEST/kafka-clients.jar" kafka/kafka-version.properties 2>/dev/null | grep -q '^version=3.9.1$'
}
if ! have_jars; then
  command -v unzip >/dev/null || apt_install unzip
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  echo "pip download $WHEEL (kafka-clients 3.9.1 jars)"
  python3 -m pip download --quiet --disable-pip-version-check --no-deps -d "$tmp" "$WHEEL"
  mkdir -p "$DEST"
  unzip -q -o -j -d "$DEST" "$tmp"/*.whl "${JARS[@]/#/pyflink/lib/}"
  have_jars || { echo "FAILED: kafka-clients 3.9.1 jars not found in $WHEEL" >&2; exit 1; }
fi
echo "java: $(javac -version 2>&1), kafka-clients $(unzip -p "$DEST/kafka-clients.jar" kafka/kafka-version.properties | sed -n 's/^version=//p')"
