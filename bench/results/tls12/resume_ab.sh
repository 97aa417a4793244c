#!/usr/bin/env bash
# keelbench --workload connect against a running TLS server: full handshakes
# against --tls-resume, TLS 1.3 and 1.2, interleaved (order flipped in odd
# repetitions). One JSON line per run on stdout.
# usage: resume_ab.sh KEELBENCH SERVER PIDFILE CERTDIR [REPS] [DURATION]
set -euo pipefail
kb=$1 server=$2 pids=$3 c=$4 reps=${5:-3} dur=${6:-4}
for rep in $(seq 1 "$reps"); do
	order=("off" "on")
	[ $((rep % 2)) = 0 ] && order=("on" "off")
	for v in 1.3 1.2; do
		for r in "${order[@]}"; do
			extra=()
			[ "$r" = on ] && extra=(--tls-resume)
			"$kb" --servers "$server" --tls --tls-ca "$c/ca.pem" --tls-cert "$c/client.crt" \
				--tls-key "$c/client.key" --tls-version "$v" --workload connect \
				--duration "$dur" --warmup 1 --quiet --json --pidfile "$pids" \
				--label "v$v-resume-$r" "${extra[@]}" | grep '^{'
		done
	done
done
