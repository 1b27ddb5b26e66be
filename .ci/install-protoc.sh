#!/usr/bin/env bash
# install-protoc.sh installs protoc and the protobuf well-known types from
# Debian's packages, which is all scripts/genproto.sh needs besides Go. CI does
# not need it: the generated code is committed, and the up-to-date test in
# pkg/wire skips itself when protoc is missing.
set -euo pipefail
sudo=""
if [[ "$(id -u)" != 0 ]]; then sudo=sudo; fi
$sudo apt-get update
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y protobuf-compiler libprotobuf-dev
protoc --version
