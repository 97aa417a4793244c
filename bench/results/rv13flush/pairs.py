#!/usr/bin/python3
"""ab-keeld's JSON lines as pairs: per workload and repetition, a's and b's
ops/s, p99, p99.9 and server CPU per op, and which side won each.
  bench/results/rv13flush/pairs.py A B < ab-output"""
import json
import sys

a, b = sys.argv[1:3]
runs = {}
for line in sys.stdin:
    if line.startswith("{"):
        r = json.loads(line)
        if "binary" in r:
            runs.setdefault((r["wl"], r["rep"]), {})[r["binary"]] = r
wins = {}
for (wl, rep), p in sorted(runs.items()):
    if a not in p or b not in p:
        continue
    cells = []
    for f, more in (("ops_per_s", True), ("p99_us", False), ("p999_us", False),
                    ("server_cpu_us_per_op", False)):
        x, y = p[a][f], p[b][f]
        bw = (y > x) if more else (y < x)
        wins.setdefault((wl, f), [0, 0])[bw] += 1
        cells.append("%s %.4g/%.4g" % (f, x, y))
    print("%-8s rep %d  %s" % (wl, rep, "  ".join(cells)))
for (wl, f), (aw, bw) in sorted(wins.items()):
    print("%-8s %-22s %s better in %d of %d" % (wl, f, b, bw, aw + bw))
