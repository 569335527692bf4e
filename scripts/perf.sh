#!/usr/bin/env bash
# Measurement campaign: the Go benchmarks of every package that has any
# (custom metrics via b.ReportMetric) and the end-to-end timings of the real
# binary (dev restart over 1000 checkpoints of history; a 4-validator local
# network; the kill -9 restart-to-vote campaign of the local chain).
# Prints the results; docs/performance.md records the numbers measured.
#
#   scripts/perf.sh            # everything: about 15 minutes on 2 cores, an estimate
#                              # from its parts (not timed as a whole): about 10 for
#                              # the former benchmark packages + dev restart + local
#                              # network, about 1 for the node, cmd/flare-node and
#                              # integration/sim benchmarks, about 3.5 for
#                              # TestPerfRestartToVote (20 kill -9 cycles of 1-15 s)
#   scripts/perf.sh bench      # only go test -bench
#   scripts/perf.sh e2e        # only the real-binary campaigns
#   scripts/perf.sh latency    # time to finality of 4 and 21 validators (scripts/finality-latency.sh all)
# FLARE_PERF_DURATION (default 90s) sets the local network's measurement window.
# FLARE_PERF_RESTARTS (default 20) sets the kill -9 cycles of TestPerfRestartToVote;
# BENCHTIME (e.g. 1x) is passed to go test -benchtime.
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-all}"
if [ "$what" = all ] || [ "$what" = bench ]; then
  # every package with a func Benchmark in its tests
  mapfile -t pkgs < <(grep -rl --include='*_test.go' '^func Benchmark' . | xargs -n1 dirname | sort -u)
  go test -run '^$' -bench . ${BENCHTIME:+-benchtime $BENCHTIME} "${pkgs[@]}" 2>&1 | grep -Ev '^(goos|goarch|pkg|cpu):'
fi
if [ "$what" = all ] || [ "$what" = e2e ]; then
  FLARE_PERF=1 go test -count=1 -run 'TestPerfDevRestart|TestPerfLocalNetwork|TestPerfRestartToVote' -v -timeout 30m ./integration/ 2>&1 \
    | grep -Ev '^(=== RUN|--- PASS|PASS|ok )'
fi
if [ "$what" = latency ]; then
  bash scripts/finality-latency.sh all
fi
