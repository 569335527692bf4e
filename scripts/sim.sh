#!/usr/bin/env bash
# Deterministic network simulator (integration/sim): the whole consensus
# stack of N nodes in one process, simulated clock and network, faults and
# byzantine validators drawn from a seed.
#
#   scripts/sim.sh [--seeds N] [--seed S] [--mutants] [--scenario NAME] [--scenarios]
#                  [--mutant NAME] [--trace FILE] [--parallel P]
#
# Prints "sim: seeds=N violations=V steps=... sim_seconds=... wall=...s trace=<hex>"
# (with --seed S, trace is that seed's trace hash), one line per violation with
# its replay command; with --mutants, one line per mutant and
# "mutants: caught=K/N". Exits non-zero on any violation or uncaught mutant.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
case $tmp in /*) ;; *) tmp=$PWD/$tmp ;; esac
trap 'rm -rf "$tmp"' EXIT
(cd "$root" && go build -o "$tmp/flare-sim" ./integration/sim/cmd/flare-sim)
"$tmp/flare-sim" "$@"
