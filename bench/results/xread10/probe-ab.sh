cd /work/wt/xread10
for r in 1 2; do for b in base fix; do
  echo "== $b run $r $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
  KEEL_KEELD=/tmp/keeld.$b timeout 500 /usr/bin/python3 -W ignore tests/cluster/probe_cross_reads.py 200 2>&1 | grep -v "^  set's\|^$\|leader by term"
done; done
