#!/usr/bin/env bash
# 3 dp_peer processes exchange verified messages (64 B .. 1 MiB) in a full mesh.
#   cluster_dp.sh DP_PEER udp     kernel UDP on loopback, with 2% frame loss and
#                                 0.5% frame corruption injected at every sender
#   cluster_dp.sh DP_PEER memif   DPDK, one memif link per pair (2 ports per node)
#   cluster_dp.sh DP_PEER vhost   DPDK, vhost-user <-> virtio-user links
# DPDK modes run --no-huge with a distinct --file-prefix per node.
# Passes when every node exits 0: no message arrived damaged, something got
# through, (memif/vhost, no loss injected) nothing was lost, and every buffer
# sent by reference (odd sequence numbers, one buffer for both peers) was
# released exactly once, after both sends; and every node really sent
# payloads by reference (the buffers come from dp_buf_alloc: DPDK memory, which
# virtio-user takes by reference too). Every process
# this script starts is killed, and its directory removed, even on failure.
#
#   cluster_dp.sh DP_PEER udp|vhost|vhost-client wake
# Every frame wakes its receiver: node 1 makes paced round trips to both peers
# and every node sleeps only in poll() on dp_wait_fd() (keeld's idle wait,
# without the tick that would hide a lost wake-up), with a guard timeout far
# beyond any wake-up. vhost: node 1 receives on net_vhost ports, nodes 2-3 on
# net_virtio_user ports: both drivers' rx interrupts; vhost-client: the same
# with keeld's pairing (vhost in client mode). Passes when no frame had
# to wait for a guard timeout, the fd the front end polls (dp_news_fd) was
# readable at every wake, most sleeps were on the fd, and every round trip
# came back.
set -uo pipefail
PEER=$1
MODE=$2
. "$(dirname "$0")/dp_net.sh"
trap dp_net_cleanup EXIT INT TERM

dp_net_init "$MODE" 3
if [ "${3:-}" = wake ]; then
	for i in 1 2 3; do
		dp_net_conf $i "dp.rx_intr=1"
		[ "$MODE" = udp ] || dp_net_conf $i "dp.lcores=0@(0-1)"
	done
	export DP_TIMEOUT=100
	DP_NET_OTHERS="wake 0" dp_net_start "$PEER" wake "${DP_WAKE_COUNT:-300}" || exit 1
	dp_net_wait
	exit
fi
for i in 1 2 3; do
	dp_net_conf $i "dp.poll=adaptive"
	dp_net_conf $i "dp.spin_us=50"
	if [ "$MODE" = udp ]; then
		dp_net_conf $i "dp.reasm_timeout_ms=200"

		dp_net_conf $i "dp.sleep_us=1000"
		dp_net_conf $i "dp.test_loss_ppm=20000"
		dp_net_conf $i "dp.test_corrupt_ppm=5000"
		dp_net_conf $i "dp.test_seed=$((i * 7919))"
	else
		# No faults injected: nothing may time out however loaded the machine.
		dp_net_conf $i "dp.reasm_timeout_ms=30000"
		dp_net_conf $i "dp.sleep_us=50"
		dp_net_conf $i "dp.lcores=0@(0-1)"
	fi
done
if [ "$MODE" = memif ]; then
	# Node 3 knows its peers' MACs and ports from configuration: it must
	# never need ARP (node 1 port 1 and node 2 port 1 face it).
	dp_net_conf 3 "dp.peer_mac.1=02:00:00:00:01:01"
	dp_net_conf 3 "dp.peer_port.1=0"
	dp_net_conf 3 "dp.peer_mac.2=02:00:00:00:02:01"
	dp_net_conf 3 "dp.peer_port.2=1"
fi
DIR=$DP_DIR
export DP_TIMEOUT=100
dp_net_start "$PEER" mesh "${DP_CLUSTER_MSGS:-28}" || exit 1
status=0
dp_net_wait || status=1
# A node that exits 0 has checked every byte it received; make sure all
# three really ran the exchange.
for i in 1 2 3; do
	grep -q "node $i \[" "$DIR/out$i" || status=1
done
for i in 1 2 3; do
	grep -q "node $i by-reference buffers: \([0-9]*\) created, \1 released, 0 " "$DIR/out$i" || {
		echo "cluster_dp: node $i lost track of a by-reference buffer" >&2
		status=1
	}
	grep -q "node $i counters:.* tx_bytes_ref=[1-9]" "$DIR/out$i" || {
		echo "cluster_dp: node $i sent nothing by reference" >&2
		status=1
	}
done
if [ "$MODE" = memif ] && grep -q "node 3 counters:.*drop_tx_no_route" "$DIR/out3"; then
	echo "cluster_dp: node 3 has static MACs but still lacked a route" >&2
	status=1
fi
exit $status
