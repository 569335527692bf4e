#!/usr/bin/env bash
# Runs a local FlareChain testnet written by `flare-node testnet`.
#
#   flare-node testnet --validators 4 --out DIR   # once: keys, spec, commands
#   scripts/testnet.sh start DIR                   # start every node in the background
#   scripts/testnet.sh status DIR                  # per node: running or not, peers, progress, checkpoints
#   scripts/testnet.sh stop DIR                    # SIGINT, wait for a clean shutdown
#
# Every node i logs to DIR/node<i>.log and records its pid in DIR/node<i>.pid.
# The command lines come from DIR/nodes.env (the same as DIR/commands.txt).
# Environment: FLARE_NODE_BIN overrides the flare-node binary of nodes.env
# (used for `checkpoints list`); STOP_TIMEOUT (seconds, default 30) bounds the
# wait for a clean shutdown before a second signal forces the exit.
set -euo pipefail

usage() {
	echo "usage: $0 start|stop|status DIR" >&2
	exit 2
}

[ $# -eq 2 ] || usage
action=$1
dir=$2
env_file=$dir/nodes.env
if [ ! -f "$env_file" ]; then
	echo "Error: $env_file not found (create the testnet with: flare-node testnet --validators N --out $dir)" >&2
	exit 2
fi
# shellcheck disable=SC1090
. "$env_file"
bin=${FLARE_NODE_BIN:-$FLARE_TESTNET_BIN}
stop_timeout=${STOP_TIMEOUT:-30}
last=$((FLARE_TESTNET_NODES - 1))

# node_var I NAME prints the value of NODE<I>_<NAME> from nodes.env.
node_var() {
	local var="NODE$1_$2"
	printf '%s' "${!var}"
}

pid_file() { printf '%s/node%s.pid' "$dir" "$1"; }
log_file() { printf '%s/node%s.log' "$dir" "$1"; }

# running I prints the pid of node I and succeeds when it is alive.
running() {
	local f
	f=$(pid_file "$1")
	[ -f "$f" ] || return 1
	local pid
	pid=$(cat "$f")
	if kill -0 "$pid" 2>/dev/null; then
		printf '%s' "$pid"
		return 0
	fi
	return 1
}

start() {
	local i pid cmd failed=0
	for i in $(seq 0 "$last"); do
		if pid=$(running "$i"); then
			echo "node$i: already running (pid $pid)"
			continue
		fi
		cmd=$(node_var "$i" CMD)
		# The command line is shell-quoted by flare-node; exec keeps the pid.
		(eval "exec $cmd") >>"$(log_file "$i")" 2>&1 </dev/null &
		echo $! >"$(pid_file "$i")"
		echo "node$i: started (pid $!, p2p port $(node_var "$i" PORT), log $(log_file "$i"))"
	done
	sleep 1
	for i in $(seq 0 "$last"); do
		if ! running "$i" >/dev/null; then
			echo "node$i: exited right after the start; last log lines:" >&2
			tail -n 5 "$(log_file "$i")" >&2 || true
			rm -f "$(pid_file "$i")"
			failed=1
		fi
	done
	return "$failed"
}

stop() {
	local i pid waited status=0
	for i in $(seq "$last" -1 0); do
		if ! pid=$(running "$i"); then
			rm -f "$(pid_file "$i")"
			echo "node$i: not running"
			continue
		fi
		kill -INT "$pid"
		waited=0
		while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt $((stop_timeout * 10)) ]; do
			sleep 0.1
			waited=$((waited + 1))
		done
		if kill -0 "$pid" 2>/dev/null; then
			echo "node$i: no clean shutdown within ${stop_timeout}s; forcing the exit" >&2
			kill -TERM "$pid" 2>/dev/null || true
			status=1
		else
			echo "node$i: stopped"
		fi
		rm -f "$(pid_file "$i")"
	done
	return "$status"
}

# http_get HOST:PORT PATH prints the body of an HTTP/1.0 GET (bash's
# /dev/tcp, so no curl is needed), or fails within 5 seconds.
http_get() {
	timeout 5 bash -c 'exec 3<>"/dev/tcp/${0%:*}/${0##*:}" || exit 1
		printf "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n" "$1" "$0" >&3
		sed "1,/^\r\{0,1\}$/d" <&3' "$1" "$2"
}

# json_num KEY prints the number of "KEY": in the JSON on stdin.
json_num() { sed -n 's/.*"'"$1"'":\([0-9-]*\).*/\1/p'; }

status() {
	local i pid base addr doc
	echo "Testnet $FLARE_TESTNET_DIR: $FLARE_TESTNET_NODES validators, genesis $FLARE_TESTNET_GENESIS"
	for i in $(seq 0 "$last"); do
		base=$(node_var "$i" BASE_PATH)
		addr=$(node_var "$i" METRICS_ADDR)
		echo
		if pid=$(running "$i"); then
			echo "== node$i: running (pid $pid, p2p port $(node_var "$i" PORT))"
			# Peers and progress from the node's /status endpoint.
			if [ -n "$addr" ] && doc=$(http_get "$addr" /status) && [ -n "$doc" ]; then
				printf '   peers: %s (inbound %s, outbound %s)  best: %s  justified: %s  finalized: %s\n' \
					"$(json_num peers <<<"$doc")" "$(json_num peers_inbound <<<"$doc")" "$(json_num peers_outbound <<<"$doc")" \
					"$(json_num best <<<"$doc")" "$(json_num justified <<<"$doc")" "$(json_num finalized <<<"$doc")"
			else
				echo "   peers: unknown (no answer from the metrics address ${addr:-(none)})"
			fi
			# The checkpoint database is locked while the node runs: show
			# its latest progress from the log as well.
			grep -E 'Idle|FINALITY ADVANCED' "$(log_file "$i")" | tail -n 2 | sed 's/^/   /' || true
		else
			echo "== node$i: stopped"
			"$bin" checkpoints list --chain "$FLARE_TESTNET_CHAIN" --base-path "$base" --limit 5 2>&1 | sed 's/^/   /' || true
		fi
	done
}

case $action in
start) start ;;
stop) stop ;;
status) status ;;
*) usage ;;
esac
