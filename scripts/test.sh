#!/usr/bin/env bash
# Runs rkube's whole test suite: unit, integration (store conformance against
# the embedded store and a real etcd), and end-to-end tests that drive the real
# rkube binary with the real kubectl and the kube crate.
# Installs the system packages the tests need when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
command -v protoc >/dev/null 2>&1 || need+=(protobuf-compiler)
# Real containers (issue 6): an OCI runtime, CNI plugins, iptables for
# masquerading/hostPorts, iproute2, a registry and busybox for test images.
command -v runc >/dev/null 2>&1 || need+=(runc)
[ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
command -v iptables >/dev/null 2>&1 || need+=(iptables)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v docker-registry >/dev/null 2>&1 || need+=(docker-registry)
[ -x /usr/bin/busybox ] || need+=(busybox-static)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
  else
    echo "missing: ${need[*]} (install them, e.g. sudo apt-get install -y ${need[*]})" >&2
    exit 1
  fi
fi
# Debian's etcd-server starts a system etcd on 2379; the tests start their own.
if command -v systemctl >/dev/null 2>&1; then systemctl stop etcd >/dev/null 2>&1 || true; fi

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  cargo test --workspace --no-fail-fast "$@"
fi
