#!/usr/bin/env bash
# Starts a single-node rkube cluster from this checkout: installs the build
# prerequisite (protoc, for the etcd client's generated code) when missing,
# builds rkube, and runs `rkube server` with its data in ./.rkube.
# Extra arguments go to `rkube server` (e.g. --listen 0.0.0.0:6443).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v protoc >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq protobuf-compiler
  else
    echo "protoc is missing: sudo apt-get install -y protobuf-compiler" >&2
    exit 1
  fi
fi
cargo build --release -p rkube
exec ./target/release/rkube server --data-dir "$PWD/.rkube" --simulated-nodes 1 "$@"
