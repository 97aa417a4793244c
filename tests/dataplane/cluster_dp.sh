#!/usr/bin/env bash
# 3 dp_peer processes exchange verified messages (64 B .. 1 MiB) in a full mesh.
#   cluster_dp.sh DP_PEER udp     kernel UDP on loopback, with 2% frame loss and
#                                 0.5% frame corruption injected at every sender
#   cluster_dp.sh DP_PEER memif   DPDK, one memif link per pair (2 ports per node)
#   cluster_dp.sh DP_PEER vhost   DPDK, vhost-user <-> virtio-user links
# DPDK modes run --no-huge with a distinct --file-prefix per node.
# Passes when every node exits 0: no message arrived damaged, something got
# through, and (memif/vhost, no loss injected) nothing was lost. Every process
# this script starts is killed, and its directory removed, even on failure.
set -uo pipefail
PEER=$1
MODE=$2
. "$(dirname "$0")/dp_net.sh"
trap dp_net_cleanup EXIT INT TERM

dp_net_init "$MODE" 3
for i in 1 2 3; do
	dp_net_conf $i "dp.poll=adaptive"
	dp_net_conf $i "dp.spin_us=50"
	dp_net_conf $i "dp.reasm_timeout_ms=200"
	if [ "$MODE" = udp ]; then
		dp_net_conf $i "dp.sleep_us=1000"
		dp_net_conf $i "dp.test_loss_ppm=20000"
		dp_net_conf $i "dp.test_corrupt_ppm=5000"
		dp_net_conf $i "dp.test_seed=$((i * 7919))"
	else
		dp_net_conf $i "dp.sleep_us=50"
		dp_net_conf $i "dp.lcores=0@(0-1)"
	fi
done
DIR=$DP_DIR
dp_net_start "$PEER" mesh "${DP_CLUSTER_MSGS:-28}" || exit 1
status=0
dp_net_wait || status=1
# A node that exits 0 has checked every byte it received; make sure all
# three really ran the exchange.
for i in 1 2 3; do
	grep -q "node $i \[" "$DIR/out$i" || status=1
done
exit $status
