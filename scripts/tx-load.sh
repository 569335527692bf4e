#!/usr/bin/env bash
# Load benchmark: transfers from submit to finality on a local testnet.
#
#   scripts/tx-load.sh VALIDATORS SLOT INTERVAL RATES DURATION
#   scripts/tx-load.sh 4 250ms 1 1000,3000 30s
#
# Builds flare-node, writes a fresh `flare-node testnet` (VALIDATORS
# validators, SLOT slots, a checkpoint every INTERVAL blocks, ACCOUNTS bench
# accounts endowed at genesis) in a temporary directory, starts every node
# with scripts/testnet.sh, waits for finality, and runs
# `flare-node bench tx-load`: for each rate of RATES (transfers/s) it
# pre-signs RATE x DURATION transfers between the bench accounts, submits
# them open-loop round-robin over every node's POST /tx, follows node0's
# finalized blocks and prints one line
#
#   tx-load: validators=N slot=… interval=… rate=R submitted=… finalized=… finalized_tps=…
#            submit_to_finalized_p50_ms=… submit_to_finalized_p99_ms=… p50_ms=… p99_ms=… refused=… cpu_per_node=…
#
# then `tx-load: … saturation_rate=R` (the highest rate whose finalized rate
# stays within 5 % of it with 95 % of its transfers finalized and a p99 at
# most twice the p99 of the first rate of RATES). After the run it compares the
# state root of every finalized checkpoint block across the nodes
# (`tx-load: … state_roots_agree=K checkpoints`; a difference exits 1). It stops everything it
# started and exits 0. Environment: ACCOUNTS (default 2000), KEEP=1 keeps the
# directory, BASE_PORT / METRICS_PORT (defaults 41000 / 42000), DRAIN.
set -euo pipefail

if [ $# -ne 5 ]; then
	echo "usage: $0 VALIDATORS SLOT INTERVAL RATES DURATION   (e.g. $0 4 250ms 1 1000,3000 30s)" >&2
	exit 2
fi
validators=$1 slot=$2 interval=$3 rates=$4 duration=$5
accounts=${ACCOUNTS:-2000}
base_port=${BASE_PORT:-41000}
metrics_port=${METRICS_PORT:-42000}
drain=${DRAIN:-15s}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
bin=$work/flare-node
cleanup() {
	STOP_TIMEOUT=10 "$root/scripts/testnet.sh" stop "$work/net" >/dev/null 2>&1 || true
	if [ "${KEEP:-0}" = 1 ]; then
		echo "tx-load: kept $work" >&2
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT
trap "exit 130" INT TERM

(cd "$root" && go build -o "$bin" ./cmd/flare-node)
"$bin" testnet --validators "$validators" --out "$work/net" --slot-duration "$slot" \
	--checkpoint-interval "$interval" --bench-accounts "$accounts" \
	--base-port "$base_port" --metrics-base-port "$metrics_port" >/dev/null
"$root/scripts/testnet.sh" start "$work/net" >/dev/null

rpcs=() pids=()
for i in $(seq 0 $((validators - 1))); do
	rpcs+=("http://127.0.0.1:$((metrics_port + i))")
	pids+=("$(cat "$work/net/node$i.pid")")
done
rpc_list=$(IFS=,; echo "${rpcs[*]}")
pid_list=$(IFS=,; echo "${pids[*]}")

label="validators=$validators slot=$slot interval=$interval"
"$bin" bench tx-load --chain "$work/net/chainspec.json" --rpc "$rpc_list" --accounts "$accounts" \
	--rates "$rates" --duration "$duration" --drain "$drain" --pids "$pid_list" --label "$label"

