#!/bin/bash
# CPU of 3 idle keeld nodes: DPDK (this build and f4d104b) and kernel UDP, started together, data on tmpfs.
cd "$(dirname "$0")/../.."
start() { # name transport base keeld
  rm -rf /dev/shm/ki-$1; mkdir -p /dev/shm/ki-$1
  KEEL_KEELD=$4 KEEL_CLIENT_BASE=$3 KEEL_PEER_BASE=$(($3+700)) KEEL_ADMIN_BASE=$(($3-100)) scripts/cluster start --dir /dev/shm/ki-$1 --transport $2 >/dev/null 2>&1 || echo "$1: start failed"
}
stop() { KEEL_CLIENT_BASE=$3 KEEL_PEER_BASE=$(($3+700)) KEEL_ADMIN_BASE=$(($3-100)) scripts/cluster stop --dir /dev/shm/ki-$1 >/dev/null 2>&1; rm -rf /dev/shm/ki-$1; }
cpu() { local s=0; for p in $(cat /dev/shm/ki-$1/n*/keeld.pid); do s=$((s + $(awk '{print $14+$15}' /proc/$p/stat))); done; echo $s; }
NEW=$PWD/build/release/dataplane/node/keeld OLD=${OLD_KEELD:?set OLD_KEELD to the keeld to compare}
start dpdk-new dpdk 27181 $NEW; start dpdk-old dpdk 28181 $OLD; start udp udp 29181 $NEW
sleep 3
a1=$(cpu dpdk-new); a2=$(cpu dpdk-old); a3=$(cpu udp); t0=$(date +%s.%N)
sleep ${SECS:-20}
b1=$(cpu dpdk-new); b2=$(cpu dpdk-old); b3=$(cpu udp); t1=$(date +%s.%N)
hz=$(getconf CLK_TCK)
for x in "dpdk-new $a1 $b1" "dpdk-old $a2 $b2" "udp $a3 $b3"; do set -- $x
  echo "$1: $(echo "scale=2; ($3-$2)*100/$hz/($t1-$t0)/3" | bc) % of one CPU per node (3 idle nodes, $(echo "$t1-$t0" | bc | cut -c1-5) s)"; done
stop dpdk-new x 27181; stop dpdk-old x 28181; stop udp x 29181
