#!/usr/bin/python3
# Where a function's samples go: callees.py SCRIPT.txt FUNC [TID...]
# SCRIPT.txt = `perf script -F pid,tid,comm,ip,sym` of a `perf record -g` run.
# Prints the share of all samples (of the TIDs given, or every thread) under
# FUNC and, for each direct callee of FUNC, its share (children: inclusive).
import sys, collections
path, func = sys.argv[1], sys.argv[2]
tids = set(sys.argv[3:])
samples, cur = [], None
for line in open(path, errors="replace"):
    if not line.strip():
        if cur: samples.append(cur)
        cur = None
        continue
    if not line[0].isspace():
        head = line.split()
        cur = (head[1].split("/")[1], [])
        continue
    parts = line.split(None, 1)
    cur[1].append(parts[1].strip() if len(parts) > 1 else "?")
if cur: samples.append(cur)
if tids:
    samples = [s for s in samples if s[0] in tids]
tot = len(samples)
under, callee = 0, collections.Counter()
for tid, st in samples:
    if func not in st: continue
    under += 1
    i = len(st) - 1 - st[::-1].index(func)  # outermost frame of func
    callee[st[i - 1] if i > 0 else "(self)"] += 1
print(f"{tot} samples, {func}: {100.0*under/max(tot,1):.2f} %")
for k, v in callee.most_common(25):
    print(f"  {100.0*v/max(tot,1):6.2f} %  {k}")
