#!/bin/bash
# The script behind "CPU per write" in bench/RESULTS.md (2026-11-22), kept as
# the exact command: BINS names binaries /tmp/keeld-<name> (copies of
# build/release/dataplane/node/keeld at each commit compared); each runs in
# turn on a fresh 3-node cluster (scripts/cluster, own ports) and gets the same
# keelbench closed loops; perf stat counts the 3 servers' syscalls, context
# switches and CPU over 4 s inside the measured window.
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export KEEL_CLIENT_BASE=23181 KEEL_PEER_BASE=23888 KEEL_ADMIN_BASE=23081
KB=$ROOT/build/release/bench/keelbench/keelbench
SRV=127.0.0.1:23181,127.0.0.1:23182,127.0.0.1:23183
D=/tmp/perf-cl
cl() { "$ROOT/scripts/cluster" "$1" --dir $D; }
W=${W:-set}
for rep in $(seq 1 ${REPS:-3}); do for b in ${BINS:-old new}; do
 for wl in sat one; do
  cl stop >/dev/null 2>&1; rm -rf $D/n*/data
  KEEL_KEELD=/tmp/keeld-$b cl start >/dev/null; cl pids > $D/pids
  if [ $wl = sat ]; then a="--sessions 8 --outstanding 16"; else a="--sessions 1 --outstanding 1"; fi
  $KB --servers $SRV --workload $W $a --duration 6 --warmup 1 --quiet --pidfile $D/pids > $D/kb.out &
  kbp=$!
  sleep 2.5
  perf stat -x, -e raw_syscalls:sys_enter,context-switches,task-clock -p $(paste -sd, $D/pids) -- sleep 4 2> $D/stat.out
  wait $kbp
  ops=$(tr ' ' '\n' < $D/kb.out | sed -n 's/^ops_per_s=//p')
  sc=$(grep sys_enter $D/stat.out | cut -d, -f1); cs=$(grep context-sw $D/stat.out | cut -d, -f1); tc=$(grep task-clock $D/stat.out | cut -d, -f1)
  echo "$rep $b $W-$wl load=$(cut -d' ' -f1 /proc/loadavg) ops/s=$ops $(tr ' ' '\n' < $D/kb.out | grep -E 'p50_us|p99_us|server_cpu' | tr '\n' ' ') perf: syscalls/op=$(echo "$sc/($ops*4)" | bc -l | cut -c1-5) cs/op=$(echo "$cs/($ops*4)" | bc -l | cut -c1-5) cpu_us/op=$(echo "$tc*1000/($ops*4)" | bc -l | cut -c1-6)"
 done
done; done
cl stop >/dev/null 2>&1
