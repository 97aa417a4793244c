#!/usr/bin/env bash
# Dataplane figures, one run:
#  1. round trip p50/p99, windowed msgs/s and CPU per round trip for 64 B,
#     4 KiB and 1 MiB (fragmented) messages between 2 processes, per polling
#     policy, over kernel UDP (loopback), memif and vhost/virtio-user;
#  2. leader-waits-for-two round trip (64 B), 3 processes on 2 cores, per
#     polling policy (busy, adaptive);
#  3. idle CPU of 3 nodes with no traffic, per policy;
#  4. a leader sends the same 4 KiB / 64 KiB payload to 2 followers, copied
#     per follower (dp_send) or by reference (dp_send_ref), adaptive: CPU per
#     message in the send path and in all.
# Usage: bench/dataplane/bench_dp.sh PATH/TO/dp_bench [modes...]
# DP_BENCH_SECTIONS="4" runs only the listed sections (default: all).
set -uo pipefail
BIN=$1
shift
MODES=${*:-udp memif vhost}
SECTIONS=${DP_BENCH_SECTIONS:-1 2 3 4}
want() { [[ " $SECTIONS " == *" $1 "* ]]; }
. "$(dirname "$0")/../../tests/dataplane/dp_net.sh"
trap dp_net_cleanup EXIT INT TERM
export DP_TIMEOUT=120

policy() { # node mode policy
	dp_net_conf "$1" "dp.poll=$3"
	dp_net_conf "$1" "dp.spin_us=50"
	case $2 in
	memif) dp_net_conf "$1" "dp.sleep_us=20" ;; # no rx interrupt: short timer
	*) dp_net_conf "$1" "dp.sleep_us=1000" ;;   # woken by the socket / rx interrupt
	esac
}

three() { # mode policy: 3 nodes sharing both cores
	dp_net_init "$1" 3
	for i in 1 2 3; do
		policy $i "$1" "$2"
		dp_net_conf $i "dp.lcores=0@(0-1)"
	done
	echo "-- $1, $2"
}

show() { grep -E "^(ping|lead|echo|idle|fan|node)" "$DP_DIR"/out* | sed "s|^$DP_DIR/||"; }

if want 1; then
echo "== 1. two processes, one per core (DPDK pinned), per policy"
for m in $MODES; do
	for p in busy adaptive; do
		for sz in 64 4096 1048576; do
			n=2000
			[ "$sz" = 1048576 ] && n=30
			dp_net_init "$m" 2
			policy 1 "$m" $p
			policy 2 "$m" $p
			dp_net_conf 1 "dp.lcores=0@0"
			dp_net_conf 2 "dp.lcores=0@1"
			echo "-- $m, $p"
			DP_NET_OTHERS=echo dp_net_start "$BIN" ping "$sz" "$n"
			dp_net_wait >/dev/null || echo "($m $p $sz: a node failed)"
			show
			dp_net_cleanup
		done
	done
done

fi
if want 2; then
echo "== 2. three processes on 2 cores, leader waits for both echoes (64 B)"
for m in $MODES; do
	for p in busy adaptive; do
		n=2000
		[ "$p" = busy ] && n=200
		three "$m" $p
		DP_NET_OTHERS=echo dp_net_start "$BIN" lead 64 "$n"
		dp_net_wait >/dev/null || echo "($m $p: a node failed)"
		show
		dp_net_cleanup
	done
done

fi
if want 3; then
echo "== 3. three idle nodes, 3 s"
for m in $MODES; do
	for p in adaptive busy; do
		three "$m" $p
		dp_net_start "$BIN" idle 3
		dp_net_wait >/dev/null || echo "($m $p: a node failed)"
		show
		dp_net_cleanup
	done
done

fi
if want 4; then
echo "== 4. payload to 2 followers, copied per follower vs by reference (adaptive)"
for m in $MODES; do
	for sz in 4096 65536; do
		for how in copy ref; do
			three "$m" adaptive
			DP_NET_OTHERS=echo dp_net_start "$BIN" fan "$sz" 2000 "$how"
			dp_net_wait >/dev/null || echo "($m $sz $how: a node failed)"
			show | grep "^out1:fan"
			dp_net_cleanup
		done
	done
done
fi
