#!/usr/bin/env bash
# kcat (librdkafka's command-line client) from Debian.
set -euo pipefail
. "$(dirname "$0")/../apt-install.sh"
apt_install kcat
kcat -V | head -1
