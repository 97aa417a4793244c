#!/usr/bin/python3
"""Inclusive instructions per call of functions in cg-load.py's kept
callgrind files, from the call records (calls=N, then the calls' inclusive
cost): a figure that does not depend on how many calls the batching made,
where Ir per op does.

  cg-percall.py 'GLOB_A' 'GLOB_B' [FUNCTION ...]

Without FUNCTIONs: every function called at least 1,000 times in A, largest
change first.
"""
import glob
import re
import sys
from collections import defaultdict

CFN = re.compile(r"^cfn=\((\d+)\)(?: (.*))?$")
FN = re.compile(r"^fn=\((\d+)\)(?: (.*))?$")


def percall(pattern):
    calls, ir = defaultdict(int), defaultdict(int)
    for f in glob.glob(pattern):
        names = {}
        target, pending = None, None
        with open(f) as fh:
            for line in fh:
                m = CFN.match(line) or FN.match(line)
                if m:
                    if m.group(2):
                        names[m.group(1)] = m.group(2).split("'")[0]
                    if line.startswith("cfn"):
                        target = names.get(m.group(1))
                    continue
                if line.startswith("calls="):
                    pending = int(line[6:].split()[0])
                    continue
                if pending is not None:
                    parts = line.split()
                    if len(parts) >= 2 and target:
                        calls[target] += pending
                        ir[target] += int(parts[1])
                    pending = None
    return calls, ir


def main():
    ca, ia = percall(sys.argv[1])
    cb, ib = percall(sys.argv[2])
    fns = sys.argv[3:] or [f for f in ca if ca[f] >= 1000 and cb.get(f)]
    rows = []
    for f in fns:
        a = ia[f] / ca[f] if ca.get(f) else 0
        b = ib[f] / cb[f] if cb.get(f) else 0
        rows.append((a, b, b - a, ca.get(f, 0), cb.get(f, 0), f))
    if not sys.argv[3:]:
        rows.sort(key=lambda r: -abs(r[2]) * min(r[3], r[4]))
    print("%10s %10s %9s %8s %8s  %s" % ("A Ir/call", "B Ir/call", "B-A", "A calls", "B calls",
                                         "function"))
    for r in rows[:60]:
        print("%10.1f %10.1f %+9.1f %8d %8d  %s" % r)


if __name__ == "__main__":
    main()
