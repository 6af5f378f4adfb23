#!/usr/bin/env bash
# Go and the Debian-packaged Go Kafka clients (sarama, kafka-go), used with
# GOPATH=/usr/share/gocode GO111MODULE=off (xdg-go/scram: SCRAM for sarama, which ships
# none of its own). The driver programs are built by the tests.
set -euo pipefail
. "$(dirname "$0")/../apt-install.sh"
apt_install golang-go golang-github-shopify-sarama-dev golang-github-segmentio-kafka-go-dev golang-github-xdg-go-scram-dev
echo "go: $(go version | awk '{print $3}'), sarama $(dpkg-query -W -f='${Version}' golang-github-shopify-sarama-dev), kafka-go $(dpkg-query -W -f='${Version}' golang-github-segmentio-kafka-go-dev)"
