#!/usr/bin/env bash
# Starts a single-node rkube cluster from this checkout: installs what is
# missing (protoc, for the etcd client's generated code; runc, the CNI
# plugins, iptables and iproute2 for the node agent's real containers),
# builds rkube, and runs `rkube server` with its data in ./.rkube: the API
# server, scheduler, controllers and a real node agent (run as root).
# Extra arguments go to `rkube server` (e.g. --listen 0.0.0.0:6443, or
# --no-agent --simulated-nodes 3 for simulated nodes only).
# Upstream's default hard eviction thresholds put a node whose disk is more
# than 85% full under DiskPressure (tainted: new pods stay Pending); on a
# developer machine this script lowers the disk thresholds to 5% unless
# --eviction-hard is given.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v protoc >/dev/null 2>&1 || need+=(protobuf-compiler)
command -v runc >/dev/null 2>&1 || need+=(runc)
[ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
command -v iptables >/dev/null 2>&1 || need+=(iptables)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
  else
    echo "missing: ${need[*]} (sudo apt-get install -y ${need[*]})" >&2
    exit 1
  fi
fi
cargo build --release -p rkube
extra=(--eviction-hard 'memory.available<100Mi,nodefs.available<5%,imagefs.available<5%')
for a in "$@"; do
  case "$a" in --eviction-hard|--eviction-hard=*) extra=() ;; esac
done
exec ./target/release/rkube server --data-dir "$PWD/.rkube" "${extra[@]}" "$@"
