#!/usr/bin/env bash
# Time to finality on a real network of N flare-node processes on 127.0.0.1:
# `flare-node testnet --validators N` with the given slot and checkpoint
# interval (node0 is every other node's only bootnode; the rest is found by
# peer discovery). For every block authored in the measurement window it
# takes the "Authored block #N" log time at its producer and the time of the
# first "FINALITY ADVANCED" line covering it at each node, and prints
# p50/p99, blocks per slot, forks, and CPU per node per finalized checkpoint
# (utime+stime from /proc/<pid>/stat). docs/performance.md records results.
#
#   scripts/finality-latency.sh [N] [SLOT] [INTERVAL] [WINDOW]
#   scripts/finality-latency.sh 4 250ms 1 60s      # the defaults
#   scripts/finality-latency.sh 21 250ms 1 90s
#   scripts/finality-latency.sh all                # the configurations of docs/performance.md (~8 min)
#
# FLARE_LAT_WARMUP (default 15s, or 6 checkpoint intervals if longer) is the time the network gets to form before
# the window opens. With more nodes than CPUs every node process runs with
# GOMAXPROCS=1 (each emulates a machine of its own on a share of the cores);
# FLARE_LAT_GOMAXPROCS=N sets another value, 0 the Go default.
# FLARE_LAT_PROFILE=FILE saves a 20 s CPU profile of node1 (--pprof).
# The nodes' base paths are under $TMPDIR: TMPDIR=/dev/shm puts them on tmpfs,
# which removes the cost of the N nodes' synced writes sharing one disk (an
# isolation experiment: a real validator has a disk of its own).
set -euo pipefail
cd "$(dirname "$0")/.."

run() {
	FLARE_PERF=1 FLARE_LAT_VALIDATORS="$1" FLARE_LAT_SLOT="$2" FLARE_LAT_INTERVAL="$3" FLARE_PERF_DURATION="$4" \
		go test -count=1 -run '^TestPerfFinalityLatency$' -v -timeout 30m ./integration/ 2>&1 |
		grep -Ev '^(=== RUN|--- PASS|PASS|ok )'
}

if [ "${1:-}" = all ]; then
	run 4 250ms 1 60s
	run 4 100ms 1 60s
	run 21 250ms 1 90s
	run 4 1s 4 60s # the builtin local chain's timing
	exit 0
fi
run "${1:-4}" "${2:-250ms}" "${3:-1}" "${4:-60s}"
