#!/usr/bin/python3
"""Symbol shares of two sets of `perf report --no-children --sort sym --stdio`
outputs (each set averaged), largest change first:
  prof-diff.py A1.txt,A2.txt B1.txt,B2.txt [N]"""
import re
import sys


def load(n):
    d = {}
    for line in open(n):
        m = re.match(r"\s*([\d.]+)%\s+\[(.)\]\s+(.*)", line)
        if m:
            d[m.group(3).strip()] = d.get(m.group(3).strip(), 0) + float(m.group(1))
    return d


a = [load(f) for f in sys.argv[1].split(",")]
b = [load(f) for f in sys.argv[2].split(",")]
rows = []
for k in set().union(*a, *b):
    pa = sum(x.get(k, 0) for x in a) / len(a)
    pb = sum(x.get(k, 0) for x in b) / len(b)
    rows.append((pb - pa, pa, pb, k))
rows.sort(key=lambda r: -abs(r[0]))
print("%6s %6s %6s  %s" % ("B-A", "A %", "B %", "symbol"))
for r in rows[:int(sys.argv[3]) if len(sys.argv) > 3 else 30]:
    print("%+6.2f %6.2f %6.2f  %s" % r)
