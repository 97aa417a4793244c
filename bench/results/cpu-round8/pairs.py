#!/usr/bin/python3
"""Per-rep figures of an ab-keeld output: pairs.py FILE"""
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
sides = list(dict.fromkeys(r["binary"] for r in rows))
for wl in dict.fromkeys(r["wl"] for r in rows):
    per = {b: [r for r in rows if r["wl"] == wl and r["binary"] == b] for b in sides}
    for key, fmt in (("server_cpu_us_per_op", "%.2f"), ("ops_per_s", "%.0f"), ("p50_us", "%.0f"),
                     ("p99_us", "%.0f")):
        print("%-8s %-22s" % (wl, key), " | ".join(
            "%s: %s (median %s)" % (b, " ".join(fmt % r[key] for r in per[b]),
                                    fmt % sorted(r[key] for r in per[b])[len(per[b]) // 2])
            for b in sides))
    a, b = per[sides[0]], per[sides[1]]
    lower = sum(1 for x, y in zip(a, b) if y["server_cpu_us_per_op"] < x["server_cpu_us_per_op"])
    print("%-8s %s lower CPU/op in %d of %d pairs" % (wl, sides[1], lower, len(a)))
