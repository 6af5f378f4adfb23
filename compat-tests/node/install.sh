#!/usr/bin/env bash
# kafkajs 2.2.4 with its snappy and lz4 codec packages (lz4 builds a native addon with
# node-gyp), from the committed package-lock.json into compat-tests/node/node_modules.
set -euo pipefail
cd "$(dirname "$0")"
. ../apt-install.sh
command -v node >/dev/null && command -v npm >/dev/null || apt_install nodejs npm
STAMP=node_modules/.gregor-lock-sha256
want="$(sha256sum package-lock.json | cut -d' ' -f1)"
works() {
  node -e '
    const { Kafka, CompressionTypes, CompressionCodecs } = require("kafkajs");
    const SnappyCodec = require("kafkajs-snappy"), LZ4Codec = require("kafkajs-lz4");
    const lz4 = new LZ4Codec().codec();
    lz4.compress({ buffer: Buffer.from("gregor gregor gregor") })
      .then(b => lz4.decompress(b))
      .then(b => { if (b.toString() !== "gregor gregor gregor") process.exit(1) })
  ' 2>/dev/null
}
if [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ] || ! works; then
  echo "npm ci (kafkajs, kafkajs-snappy, kafkajs-lz4)"
  npm ci --no-audit --no-fund --loglevel=error
  works || npm rebuild lz4 --loglevel=error
  works || { echo "FAILED: kafkajs with its snappy/lz4 codecs does not load" >&2; exit 1; }
  echo "$want" > "$STAMP"
fi
echo "node $(node --version), kafkajs $(node -p 'require("kafkajs/package.json").version')"
