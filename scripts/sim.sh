#!/usr/bin/env bash
# Deterministic network simulator (integration/sim): the whole consensus
# stack of N nodes in one process, simulated clock and network, faults and
# byzantine validators drawn from a seed. Builds integration/sim/cmd/flare-sim
# and runs it with the arguments unchanged, in the caller's directory (a
# relative --trace FILE is written there). Details: docs/simulation.md.
#
#   scripts/sim.sh [--seeds N] [--first F] [--scenario NAME | --scenarios]
#                  [--mutant NAME] [--parallel P]          sweep seeds F..F+N-1
#   scripts/sim.sh --seed S [--scenario NAME] [--mutant NAME] [--trace FILE] [--logs]
#   scripts/sim.sh --mutants [--mutant NAME] [--seeds N] [--first F] [--parallel P]
#   scripts/sim.sh --help
#
#   --seeds N       seeds of a sweep, 1..1000000 (default 200); with
#                   --scenarios per scenario, with --mutants per mutant
#   --first F       first seed of a sweep, >= 1 (default 1)
#   --seed S        run the one seed S >= 1 (what a replay line gives)
#   --scenario NAME a named scenario instead of a random one
#   --scenarios     every named scenario, N seeds each
#   --mutant NAME   run with this mutant switched on; with --mutants, hunt
#                   only this one
#   --mutants       hunt every mutant until a violation catches it
#   --trace FILE    with --seed: write the step trace to FILE
#   --logs          with --seed: the nodes' logs on stderr
#   --parallel P    seeds run at once, 1..4096 (default: GOMAXPROCS)
#
# Prints "sim: seeds=N violations=V handoff_stalls=H steps=S sim_seconds=T wall=Ws trace=<64 hex>"
# (N counts the runs; H the runs that ended on the documented hand-off split
# limit, not violations; with --seed S, trace is that seed's trace hash),
# after one "violation: ..." line and its "  replay: ..." line per violation
# and one "handoff-stall: ..." line and its replay line per stall. With
# --mutants instead (no "sim:" line): per mutant "mutant NAME: caught by
# seed S (scenario X): ..." and its replay line, or "mutant NAME: NOT caught
# in R runs", then "mutants: caught=K/M wall=Ws". Exit status: 0, 1 on any
# violation or uncaught mutant, 2 on a bad argument (one "Error: ..." line
# on stderr).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
case $tmp in /*) ;; *) tmp=$PWD/$tmp ;; esac
trap 'rm -rf "$tmp"' EXIT
(cd "$root" && go build -o "$tmp/flare-sim" ./integration/sim/cmd/flare-sim)
"$tmp/flare-sim" "$@"
