#!/usr/bin/env bash
# The Python clients, pinned, with every compression codec they support.
set -euo pipefail
PKGS=(
  "confluent-kafka==2.16.1"
  "kafka-python[lz4,snappy,zstd,crc32c]==3.0.12"
  "aiokafka[lz4,snappy,zstd]==0.14.0"
  # kafka-python's lz4 for message format v0 (api_version (0, 9)) fixes Kafka's broken
  # frame checksum with it.
  "xxhash==4.1.0"
)
check() {
  python3 - <<'PY'
import importlib.metadata as m, sys
want = {"confluent-kafka": "2.16.1", "kafka-python": "3.0.12", "aiokafka": "0.14.0", "xxhash": "4.1.0"}
for name, version in want.items():
    try:
        if m.version(name) != version:
            sys.exit(1)
    except m.PackageNotFoundError:
        sys.exit(1)
import kafka.codec as k, aiokafka.codec as a
assert all([k.has_snappy(), k.has_lz4(), k.has_zstd(), a.has_snappy(), a.has_lz4(), a.has_zstd()])
PY
}
if ! check 2>/dev/null; then
  echo "pip install ${PKGS[*]}"
  python3 -m pip install --quiet --disable-pip-version-check "${PKGS[@]}"
  check || { echo "FAILED: python kafka clients not importable with all codecs" >&2; exit 1; }
fi
python3 -c "import confluent_kafka, kafka, aiokafka; print('confluent-kafka', confluent_kafka.__version__, 'librdkafka', confluent_kafka.libversion()[0], '/ kafka-python', kafka.__version__, '/ aiokafka', aiokafka.__version__)"
