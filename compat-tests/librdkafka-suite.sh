#!/usr/bin/env bash
# librdkafka's own integration tests against a live 3-broker gregor cluster: by default
# its transaction tests (0103 producer transactions, 0098 consumer of aborted and
# committed data with the Java and the librdkafka transactional producers, 0129 aborted
# messages in a fetch, 0055 transactional producer latency, 0061 consumer lag with
# transactions, 0137 control messages in batch consume). Not part of CI's default run
# (it builds librdkafka from source).
#
#   compat-tests/librdkafka-suite.sh LIBRDKAFKA_SOURCE_DIR [TESTS]
#
# LIBRDKAFKA_SOURCE_DIR: a librdkafka source tree (`git clone
# https://github.com/confluentinc/librdkafka` at a release tag, e.g. v2.15.0).
# TESTS: space-separated test numbers (default "0103 0098 0129 0055 0061 0137").
# Needs: a C/C++ toolchain, rapidjson-dev (0098), Java 17 and the Java client jars
# (compat-tests/java/install.sh). Prints librdkafka's own per-test summary.
set -euo pipefail
SRC=$(cd "${1:?librdkafka source dir}" && pwd)
TESTS=${2:-"0103 0098 0129 0055 0061 0137"}
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
GREGOR=${GREGOR_BIN:-$REPO/target/release/gregor}
WORK=$(mktemp -d /tmp/gregor-rdkafka-XXXX)
trap 'kill $CLUSTER 2>/dev/null; wait $CLUSTER 2>/dev/null; rm -rf "$WORK"' EXIT

if [ ! -f "$SRC/src/librdkafka.a" ]; then
  (cd "$SRC" && ./configure --disable-ssl --disable-gssapi --disable-curl >/dev/null && make -j"$(nproc)" -C src lib >/dev/null && make -j"$(nproc)" -C src-cpp lib >/dev/null)
fi

# The Java transactional producer of 0098 runs through $KAFKA_PATH/bin/kafka-run-class.sh.
bash "$HERE/java/install.sh" >/dev/null
mkdir -p "$WORK/kafka/bin" "$WORK/kafka/libs"
cp "$HERE"/.deps/java/*.jar "$WORK/kafka/libs/"
cp "$HERE/.deps/java/kafka-clients.jar" "$WORK/kafka/libs/kafka-clients-3.9.1.jar"
cat >"$WORK/kafka/bin/kafka-run-class.sh" <<'EOF'
#!/usr/bin/env bash
exec java -cp "$CLASSPATH:$(dirname "$0")/../libs/*" "$@"
EOF
chmod +x "$WORK/kafka/bin/kafka-run-class.sh"
export KAFKA_PATH="$WORK/kafka" KAFKA_JARS="$WORK/kafka/libs"

# A 3-broker cluster (RF 3 for the transaction log) with min.insync.replicas=1, the
# broker default librdkafka's test clusters run with (its tests create RF 1 topics and
# transactional producers write with acks=all).
ZK=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
BASE=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
"$GREGOR" cluster --brokers 3 --data "$WORK/data" --zookeeper-port "$ZK" --base-port "$BASE" \
  --override auto.create.topics.enable=true --override min.insync.replicas=1 >"$WORK/cluster.out" 2>&1 &
CLUSTER=$!
for _ in $(seq 1 120); do grep -q "Press Ctrl-C" "$WORK/cluster.out" && break; sleep 0.5; done
grep -q "Press Ctrl-C" "$WORK/cluster.out" || { cat "$WORK/cluster.out"; exit 1; }
BOOTSTRAP="127.0.0.1:$BASE,127.0.0.1:$((BASE + 1)),127.0.0.1:$((BASE + 2))"
# The consumer-offsets and transaction-state topics exist before the first test, as in
# librdkafka's long-running test clusters (their first coordinator lookup on a fresh
# cluster creates them and answers COORDINATOR_NOT_AVAILABLE meanwhile).
python3 - "$BOOTSTRAP" <<'PY'
import sys, time
from confluent_kafka import Consumer, Producer
bs = sys.argv[1]
c = Consumer({"bootstrap.servers": bs, "group.id": "warm-up", "auto.offset.reset": "earliest"})
c.subscribe(["warm-up"])
deadline = time.time() + 60
while time.time() < deadline and not c.assignment():
    c.poll(0.5)
c.close()
p = Producer({"bootstrap.servers": bs, "transactional.id": "warm-up"})
p.init_transactions(60)
PY

cd "$SRC/tests"
printf 'metadata.broker.list=%s\ntest.timeout.multiplier=2\n' "$BOOTSTRAP" >test.conf
make -j"$(nproc)" build >/dev/null
rc=0
for t in $TESTS; do
  # -L: the tests that need a broker (not the ones against librdkafka's mock cluster).
  TEST_KAFKA_VERSION=3.9.0 TESTS=$t ./run-test.sh -p1 -L bare || rc=1
done
exit $rc
