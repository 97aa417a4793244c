#!/usr/bin/python3
"""Per-rep pairs of an ab-keeld output: server us/op and ops/s, side by side.
   pairs.py FILE [FIGURE]"""
import json
import sys
fig = sys.argv[2] if len(sys.argv) > 2 else "server_cpu_us_per_op"
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
by = {}
for r in rows:
    by.setdefault((r["wl"], r["rep"]), {})[r["binary"]] = r
for (wl, rep), d in sorted(by.items()):
    print(wl, rep, "  ".join(f"{b}={d[b][fig]:.2f} ({d[b]['ops_per_s']/1000:.0f}k/s)" for b in sorted(d)))
