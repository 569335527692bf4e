#!/usr/bin/env bash
# The project's test command (README "Run the tests"): vet, every test, then
# the race detector on the packages with concurrency (RACE=0 skips that step).
set -euo pipefail
cd "$(dirname "$0")/.."
go vet ./...
go test -count=1 -timeout 15m ./...
if [ "${RACE:-1}" = "1" ]; then
  go test -count=1 -race -timeout 20m ./consensus/... ./checkpointdb/... ./p2p/... ./node/...
fi
