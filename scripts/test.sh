#!/usr/bin/env bash
# The project's test command (README "Run the tests"): vet, then every test.
# The race detector runs on the packages with concurrency when RACE=1 (CI does
# not by default, to stay well inside its time budget on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
go vet ./...
go test -count=1 -timeout 15m ./...
if [ "${RACE:-0}" = "1" ]; then
  go test -count=1 -race -timeout 20m ./consensus/... ./checkpointdb/... ./p2p/... ./node/...
fi
