#!/usr/bin/env bash
# Regenerates the message modules of the APIs whose versions below Kafka 4's floors gregor
# serves (Kafka 3.9's range; KIP-896 removed them from Kafka 4 and so from kafka-protocol
# 0.18). Needs a Kafka git dir (branch 3.9) and a kafka-protocol-rs checkout (0.17/0.18,
# whose protocol_codegen generated this crate); the codegen's main.rs is swapped for one
# that reads a JSON directory (argv[1]) and writes messages to argv[2] instead of cloning
# Kafka. Only the files listed below are copied; messages.rs keeps 4.1's maxima and gets
# Kafka 3.9's floors for these APIs.
set -euo pipefail
KAFKA_GIT=${1:?kafka git dir}; CODEGEN_REPO=${2:?kafka-protocol-rs checkout}
HERE=$(cd "$(dirname "$0")" && pwd); W=$(mktemp -d)
git -C "$KAFKA_GIT" archive 3.9 clients/src/main/resources/common/message | tar x -C "$W"
J="$W/clients/src/main/resources/common/message"
python3 "$HERE/merge_json.py" "$J"
cp -r "$CODEGEN_REPO/protocol_codegen" "$W/codegen"
sed -i '/^git2/d' "$W/codegen/Cargo.toml"
cp "$HERE/codegen_main.rs" "$W/codegen/src/main.rs"
(cd "$W/codegen" && cargo build --release -q)
"$W/codegen/target/release/protocol_codegen" "$J" "$W/out/messages" >/dev/null
for api in produce fetch list_offsets offset_commit offset_fetch create_topics delete_topics \
    describe_configs offset_for_leader_epoch describe_acls create_acls delete_acls describe_log_dirs \
    write_txn_markers; do
  for k in request response; do
    # From $W: the crate's rust-toolchain.toml pins a toolchain that may not be installed.
    (cd "$W" && rustfmt --edition 2021 "$W/out/messages/${api}_$k.rs")
    cp "$W/out/messages/${api}_$k.rs" "$HERE/../src/messages/"
  done
done
python3 - "$HERE/../src/messages.rs" <<'PY'
import re, sys
p = sys.argv[1]; s = open(p).read()
for k in ["Produce", "Fetch", "ListOffsets", "OffsetCommit", "OffsetFetch", "CreateTopics", "DeleteTopics",
          "DescribeConfigs", "OffsetForLeaderEpoch", "DescribeAcls", "CreateAcls", "DeleteAcls",
          "DescribeLogDirs", "WriteTxnMarkers"]:
    s, n = re.subn(r"(ApiKey::%s => VersionRange \{ min: )\d+" % k, r"\g<1>0", s)
    assert n == 1, k
open(p, "w").write(s)
PY
rm -rf "$W"
