#!/usr/bin/env bash
# Hunts run 2's unanswered requests: a 3-node keel cluster with
# secureClientPort (so keel.frontend=auto runs the front end on its own
# thread) on /dev/shm, plaintext set-sat (8 x 16) runs one after another;
# prints each run's ops/s, errors and keelbench's warning, and mntr of every
# node after a run with errors.
# usage: timeout_hunt.sh KEELBENCH CERTDIR [RUNS] [DURATION]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
kb=$1 c=$2 runs=${3:-10} dur=${4:-8}
export KEEL_CLIENT_BASE=${KEEL_CLIENT_BASE:-22181} KEEL_PEER_BASE=${KEEL_PEER_BASE:-22888}
export KEEL_ADMIN_BASE=${KEEL_ADMIN_BASE:-28081}
d=/dev/shm/tls12-hunt-$$
trap '"$ROOT/scripts/cluster" stop --dir "$d" >/dev/null; rm -rf "$d"' EXIT
KEEL_TLS_DIR=$c "$ROOT/scripts/cluster" start --dir "$d" --transport udp >/dev/null
"$ROOT/scripts/cluster" pids --dir "$d" >"$d/pids.txt"
b=$KEEL_CLIENT_BASE
servers=127.0.0.1:$b,127.0.0.1:$((b + 1)),127.0.0.1:$((b + 2))
for i in $(seq 1 "$runs"); do
	out=$("$kb" --servers "$servers" --workload set --sessions 8 --outstanding 16 \
		--duration "$dur" --warmup 2 --quiet --pidfile "$d/pids.txt" 2>&1 || true)
	echo "run $i: $(grep -o 'ops_per_s=[0-9.]*\|errors_all=[0-9]*\|err_[A-Z_]*=[0-9]*' <<<"$out" | paste -sd' ') $(grep -o 'warning.*' <<<"$out" || true)"
	if grep -q 'errors_all=[1-9]' <<<"$out"; then
		for p in 0 1 2; do
			echo "mntr node $((p + 1)):"
			exec 3<>"/dev/tcp/127.0.0.1/$((KEEL_CLIENT_BASE + p))"
			printf mntr >&3
			timeout 2 cat <&3 | grep -E 'server_state|outstanding|connections|queue' || true
			exec 3<&- 3>&-
		done
	fi
done
