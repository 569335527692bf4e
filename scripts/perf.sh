#!/usr/bin/env bash
# Measurement campaign: the Go benchmarks of every package (custom metrics
# via b.ReportMetric) and the end-to-end timings of the real binary (dev
# restart over 1000 checkpoints of history; a 4-validator local network).
# Prints the results; docs/performance.md records the numbers measured.
#
#   scripts/perf.sh            # everything (about 10 minutes)
#   scripts/perf.sh bench      # only go test -bench
#   scripts/perf.sh e2e        # only the real-binary campaigns
#   scripts/perf.sh latency    # time to finality of 4 and 21 validators (scripts/finality-latency.sh all)
# FLARE_PERF_DURATION (default 90s) sets the local network's measurement window.
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-all}"
if [ "$what" = all ] || [ "$what" = bench ]; then
  go test -run '^$' -bench . ${BENCHTIME:+-benchtime $BENCHTIME} ./checkpointdb/ ./consensus/... ./p2p/ ./config/ 2>&1 | grep -Ev '^(goos|goarch|pkg|cpu):'
fi
if [ "$what" = all ] || [ "$what" = e2e ]; then
  FLARE_PERF=1 go test -count=1 -run 'TestPerfDevRestart|TestPerfLocalNetwork' -v -timeout 30m ./integration/ 2>&1 \
    | grep -Ev '^(=== RUN|--- PASS|PASS|ok )'
fi
if [ "$what" = latency ]; then
  bash scripts/finality-latency.sh all
fi
