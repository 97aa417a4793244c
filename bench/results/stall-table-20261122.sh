#!/bin/bash
# The write-stall table of bench/RESULTS.md ("The ~100 ms stall is the disk"):
# for each leader (keelctl transfer), one open-loop session of 500 setData/s at
# each node, and the fsyncs over 33 ms (keel_fsync_latency_seconds, 3 nodes)
# during that run.  usage: stall-table-20261122.sh CLUSTER_DIR CLIENT_BASE ADMIN_BASE
# (a cluster from scripts/cluster start --dir CLUSTER_DIR with those KEEL_*_BASE).
dir=$1; cb=$2; ab=$3
B=${BUILD:-build/release}
KC=$B/mgmt/keelctl
KB=$B/bench/keelbench/keelbench
export KEEL_ADMIN=127.0.0.1:$ab,127.0.0.1:$((ab+1)),127.0.0.1:$((ab+2)) KEEL_ADMIN_TOKEN=$(cat $dir/admin.token)
slow() { python3 - $ab <<'P'
import urllib.request,re,sys
ab=int(sys.argv[1]); tot=0
for i in range(3):
    t=urllib.request.urlopen(f'http://127.0.0.1:{ab+i}/metrics').read().decode()
    b={float(m.group(1)):int(float(m.group(2))) for m in re.finditer(r'keel_fsync_latency_seconds_bucket\{le="([^"+]*)"\} (\S+)',t)}
    c=int(float(re.search(r'keel_fsync_latency_seconds_count (\S+)',t).group(1)))
    tot+=c-max(v for k,v in b.items() if k<=0.034)
print(tot)
P
}
for L in ${LEADERS:-1 2 3}; do
  $KC transfer $L >/dev/null 2>&1; sleep 1
  line="leader $L:"
  for s in 0 1 2; do
    a=$(slow)
    r=$($KB --servers 127.0.0.1:$((cb+s)) --workload set --mode open --rate 500 --sessions 1 --duration 4 --warmup 1 --quiet)
    b=$(slow)
    p50=$(echo "$r" | grep -o "p50_us=[0-9]*"); p99=$(echo "$r" | grep -o "p99_us=[0-9]*"); mx=$(echo "$r" | grep -o "max_us=[0-9]*")
    line="$line | n$((s+1)) ${p50#p50_us=}/${p99#p99_us=}/${mx#max_us=} fs>33ms:$((b-a))"
  done
  echo "$line  (load $(cut -d' ' -f1 /proc/loadavg))"
done
