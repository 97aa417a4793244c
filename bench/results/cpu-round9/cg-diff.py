#!/usr/bin/python3
"""Function-level diff of cg-load.py's kept callgrind files: exclusive Ir
per op of each function, summed over the files matching each side's glob
(e.g. 'DIR/s7-*-leader-*'), per op of OPS each run:

  cg-diff.py OPS 'GLOB_A' 'GLOB_B' [N]

Prints the N functions whose Ir/op moved most (B - A), and the call counts
of a few per-batch functions (how many batches, flushes, turns).
"""
import glob
import re
import subprocess
import sys
from collections import defaultdict

LINE = re.compile(r"^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(.*)$")


def excl(pattern):
    ir = defaultdict(int)
    files = sorted(glob.glob(pattern))
    for f in files:
        out = subprocess.run(["callgrind_annotate", "--threshold=100", "--inclusive=no", f],
                             capture_output=True, text=True).stdout
        for line in out.splitlines():
            m = LINE.match(line)
            if m and "PROGRAM TOTALS" not in m.group(2):
                fn = m.group(2).split(":", 1)[-1].split(" [")[0]
                ir[fn] += int(m.group(1).replace(",", ""))
    return ir, len(files)


CALLS = ["propose_batch", "propose_items", "raft_propose", "dp_flush", "udp_flush",
         "apply_entry", "ppoll", "sendmmsg", "recvmmsg", "kv_txn_decode", "ctl_turn"]


def calls(pattern):
    c = defaultdict(int)
    for f in glob.glob(pattern):
        cur = None
        fnames = {}
        with open(f) as fh:
            for line in fh:
                m = re.match(r"^cfn=\((\d+)\)(?: (.*))?$", line)
                if m:
                    if m.group(2):
                        fnames[m.group(1)] = m.group(2)
                    cur = fnames.get(m.group(1))
                    continue
                m = re.match(r"^fn=\((\d+)\)(?: (.*))?$", line)
                if m and m.group(2):
                    fnames[m.group(1)] = m.group(2)
                m = re.match(r"^calls=(\d+)", line)
                if m and cur in CALLS:
                    c[cur] += int(m.group(1))
    return c


def main():
    ops = int(sys.argv[1])
    a, na = excl(sys.argv[2])
    b, nb = excl(sys.argv[3])
    n = int(sys.argv[4]) if len(sys.argv) > 4 else 30
    ta, tb = sum(a.values()) / (ops * na), sum(b.values()) / (ops * nb)
    print("files: A %d, B %d; Ir/op A %.0f, B %.0f (B-A %+.0f)" % (na, nb, ta, tb, tb - ta))
    rows = []
    for fn in set(a) | set(b):
        pa, pb = a.get(fn, 0) / (ops * na), b.get(fn, 0) / (ops * nb)
        rows.append((pb - pa, pa, pb, fn))
    rows.sort(key=lambda r: -abs(r[0]))
    print("%9s %9s %9s  %s" % ("A/op", "B/op", "B-A", "function"))
    for d, pa, pb, fn in rows[:n]:
        print("%9.1f %9.1f %+9.1f  %s" % (pa, pb, d, fn))
    ca, cb = calls(sys.argv[2]), calls(sys.argv[3])
    print("calls per op (A, B):")
    for k in CALLS:
        print("  %-16s %8.3f %8.3f" % (k, ca.get(k, 0) / (ops * na), cb.get(k, 0) / (ops * nb)))


if __name__ == "__main__":
    main()
