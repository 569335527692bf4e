#!/usr/bin/env bash
# Crash/corruption campaign of issue 7 (not part of `go test ./...`): it runs
# integration/campaign_test.go with FLARE_CRASH_CAMPAIGN=1.
#
#   1. kill -9 cycles: a validator of a fast dev chain (100 ms slots, a
#      checkpoint every 2 blocks) on one base path, stopped at a random
#      moment 0-3 s after its start with kill -9 (every tenth with SIGINT).
#      Each restart must restore finality >= the last "FINALITY ADVANCED"
#      logged before; the votes of all runs must hold no conflict.
#   2. fault probes: for a stopped and a killed validator, every file kind
#      (chain DB and checkpoint DB: WAL, MANIFEST, sstable, OPTIONS, LOCK,
#      the directory; the node key) x every damage (truncate, bit flip,
#      delete, zero-fill, permission) on a copy of the base path; the node
#      is started on it and the table records the exit code, the first
#      Error line and a verdict.
#
# Usage:
#   scripts/crash-campaign.sh [OUT_DIR]      # both parts (about 10 minutes)
#   PART=crash scripts/crash-campaign.sh     # only the kill -9 cycles
#   PART=probes scripts/crash-campaign.sh    # only the probe table
# Environment: CYCLES (default 100), SEED (default 1), UPDATE_DOCS=1 replaces
# the summary and the table between the crash-summary and fault-probes
# markers in docs/storage.md.
# Run as root to include permission damage (the node then runs as nobody)
# and to run the node unprivileged; as another user permission damage
# still applies to that user.
# Output in OUT_DIR (default: a new /tmp/flare-crash-campaign.*):
# crash-summary.txt, probes.md, go-test.log.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-$(mktemp -d /tmp/flare-crash-campaign.XXXXXX)}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
case "${PART:-all}" in
  all) run='^(TestCrashCampaign|TestFaultProbes)$' ;;
  crash) run='^TestCrashCampaign$' ;;
  probes) run='^TestFaultProbes$' ;;
  *) echo "PART must be all, crash or probes" >&2; exit 2 ;;
esac
echo "crash campaign: output in $out"
status=0
FLARE_CRASH_CAMPAIGN=1 FLARE_CAMPAIGN_OUT="$out" FLARE_CAMPAIGN_CYCLES="${CYCLES:-100}" FLARE_CAMPAIGN_SEED="${SEED:-1}" \
  go test -count=1 -timeout 3h -run "$run" -v ./integration/ >"$out/go-test.log" 2>&1 || status=$?
grep -E '^(--- |ok |FAIL|PASS)' "$out/go-test.log" || true
[ -f "$out/crash-summary.txt" ] && cat "$out/crash-summary.txt"
if [ -f "$out/probes.md" ]; then
  echo; cat "$out/probes.md"
fi
if [ "${UPDATE_DOCS:-0}" = 1 ]; then
  python3 - "$out" docs/storage.md <<'PY'
import os, sys
out, doc = sys.argv[1], sys.argv[2]
s = open(doc).read()
def put(name, text):
    global s
    begin, end = "<!-- %s:begin -->" % name, "<!-- %s:end -->" % name
    i, j = s.index(begin) + len(begin), s.index(end)
    s = s[:i] + "\n" + text + s[j:]
if os.path.exists(os.path.join(out, "crash-summary.txt")):
    put("crash-summary", "```\n" + open(os.path.join(out, "crash-summary.txt")).read() + "```\n")
if os.path.exists(os.path.join(out, "probes.md")):
    put("fault-probes", open(os.path.join(out, "probes.md")).read())
open(doc, "w").write(s)
PY
  echo "docs/storage.md updated"
fi
exit "$status"
