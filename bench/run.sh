#!/usr/bin/env bash
# Builds the release binaries (rkube and rkube-bench) and runs every rkube
# benchmark scenario, printing a markdown table: header and one row per
# scenario on stdout, progress on stderr. Each scenario starts its own
# rkube server (and etcd) on loopback and kills it at the end.
#
#   bench/run.sh            full scenarios (about 30 minutes on 2 cores)
#   bench/run.sh --quick    shorter variants (about 5 minutes)
#
# Needs etcd (Debian package etcd-server) for the etcd scenarios, protoc
# (protobuf-compiler) to build, and for pod-startup (root only) runc, the CNI
# plugins, iptables, iproute2, docker-registry and busybox-static; installs
# them with apt when run as root.
# Before each scenario it waits (up to QUIET_WAIT seconds, default 300) for
# the rest of the machine to go quiet; each row reports "others" CPU use.
set -uo pipefail
cd "$(dirname "$0")/.."

quick=0
for arg in "$@"; do
  case "$arg" in
    --quick) quick=1 ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $arg (try --help)" >&2; exit 2 ;;
  esac
done

need=()
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
command -v protoc >/dev/null 2>&1 || need+=(protobuf-compiler)
command -v runc >/dev/null 2>&1 || need+=(runc)
[ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
command -v iptables >/dev/null 2>&1 || need+=(iptables)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v docker-registry >/dev/null 2>&1 || need+=(docker-registry)
[ -x /bin/busybox ] || need+=(busybox-static)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "missing: ${need[*]} (e.g. sudo apt-get install -y ${need[*]})" >&2
  fi
fi

cargo build --release -p rkube -p rkube-bench >&2 || exit 1
# 1,000 watches are 1,000 TLS connections on each side; sim-nodes raises the
# agent's own limit the same way.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

if [ "$quick" = 1 ]; then
  scenarios=(
    "writes --clients 64 --seconds 5 --store embedded"
    "writes --clients 64 --seconds 5 --store etcd"
    "etcd-ratio --clients 64 --seconds 5"
    "watchers --watchers 1000 --rate 500 --seconds 5"
    "list-pods --pods 10000 --page 500"
    "sim-nodes --nodes 1000 --pods 20000 --window-seconds 20"
    "scheduler-algorithm --workload SchedulingBasic --nodes 1000 --pods 2000 --init-pods 200"
    "scheduler --workload SchedulingBasic --nodes 1000 --pods 2000 --init-pods 200"
    "scheduler --workload TopologySpreading --nodes 1000 --pods 1000 --init-pods 1000"
    "scheduler --workload SchedulingPodAntiAffinity --nodes 1000 --pods 1000 --init-pods 200"
    "scheduler --workload Unschedulable --nodes 1000 --pods 2000 --init-pods 50"
    "scheduler --workload PreemptionBasic --nodes 100 --pods 400 --init-pods 400"
    "pod-startup --pods 20 --window-seconds 10"
    "idle-rss"
  )
else
  scenarios=(
    "writes --clients 64 --seconds 20 --store embedded"
    "writes --clients 64 --seconds 20 --store etcd"
    "etcd-ratio --clients 64 --seconds 20"
    "watchers --watchers 1000 --rate 500 --seconds 20"
    "list-pods --pods 100000 --page 500"
    "sim-nodes --nodes 5000 --pods 150000 --window-seconds 60"
    "scheduler-algorithm --workload SchedulingBasic"
    "scheduler-algorithm --workload TopologySpreading"
    "scheduler-algorithm --workload SchedulingPodAntiAffinity"
    "scheduler-algorithm --workload Unschedulable"
    "scheduler-algorithm --workload PreemptionBasic"
    "scheduler --workload SchedulingBasic"
    "scheduler --workload TopologySpreading"
    "scheduler --workload SchedulingPodAntiAffinity"
    "scheduler --workload Unschedulable"
    "scheduler --workload PreemptionBasic"
    "pod-startup --pods 100"
    "pod-startup --pods 100 --interval-ms 0"
    "idle-rss"
  )
fi

bench=target/release/rkube-bench
"$bench" header
status=0
for s in "${scenarios[@]}"; do
  echo "== rkube-bench $s" >&2
  # shellcheck disable=SC2086 # word splitting of the scenario's arguments is intended
  "$bench" --no-header --quiet-wait-seconds "${QUIET_WAIT:-300}" $s || status=1
done
exit "$status"
