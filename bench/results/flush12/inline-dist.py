#!/usr/bin/python3
"""How long an inline log group's sync takes in a running cluster.

  inline-dist.py KEELD KEELBENCH WORKLOAD [SECONDS] [--threshold-ms 2,5]

A fresh 3-node cluster (tests/cluster/zkcluster.py, admin API on), keelbench
WORKLOAD (set-1: one session, one outstanding setData; set-sat: 8 sessions x
16 outstanding; mixed-sat: 90 % reads) for SECONDS + 6 s with 2 s warm-up;
from its 3rd second `perf trace -e pwritev2` of every node for SECONDS
(default 4). keeld's only pwritev2 with RWF_DSYNC is an inline group's write
and sync (log/wal.c group_run_plain): each such call's duration is one
inline sync. Prints per role (leader, followers) the count, p50 / p90 / p99
/ p99.9 / max in us and the share over each threshold, and the nodes'
keel_wal_* counters over the traced window. perf trace's own cost (a
tracepoint per syscall of the node) is in the figures. Run by hand.
"""
import json
import os
import re
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
sys.path.insert(0, ROOT + "/tests/cluster")
os.environ["KEEL_KEELD"] = os.path.abspath(sys.argv[1])
from zkcluster import KeelCluster  # noqa: E402

KB = os.path.abspath(sys.argv[2])
WL = sys.argv[3]
SECS = float(sys.argv[4]) if len(sys.argv) > 4 and not sys.argv[4].startswith("-") else 4.0
THR = [2.0, 5.0]
if "--threshold-ms" in sys.argv:
    THR = [float(x) for x in sys.argv[sys.argv.index("--threshold-ms") + 1].split(",")]
WORKLOADS = {
    "set-1": ["--workload", "set", "--sessions", "1", "--outstanding", "1"],
    "set-sat": ["--workload", "set", "--sessions", "8", "--outstanding", "16"],
    "mixed-sat": ["--workload", "mixed", "--read-pct", "90", "--sessions", "8",
                  "--outstanding", "16"],
}
COUNTERS = ("keel_wal_inline_syncs_total", "keel_wal_slow_flushes_total",
            "keel_wal_inline_backoffs_total")
LINE = re.compile(r"\(\s*([0-9.]+) ms\): .*pwritev2\((?:.*flags: (\w+))?")


def counts(n):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % n.admin_port, timeout=5) as f:
        t = f.read().decode()
    return [int(float(re.search(r"^%s (\S+)$" % c, t, re.M).group(1))) for c in COUNTERS]


def pct(v, q):
    return v[min(len(v) - 1, int(q * len(v)))] if v else float("nan")


with KeelCluster(3, admin_token="dist") as cl:
    cl.wait_ready()
    lead = cl.leader()
    pids = [n.proc.pid for n in cl.nodes]
    kb = subprocess.Popen([KB, "--servers", cl.connect_string(), "--pids",
                           ",".join(map(str, pids)), "--duration", str(SECS + 4),
                           "--warmup", "2", "--json", "--quiet"] + WORKLOADS[WL],
                          stdout=subprocess.PIPE, text=True)
    time.sleep(3)
    c0 = [counts(n) for n in cl.nodes]
    out = "/tmp/inline-dist-%d" % os.getpid()
    tr = [subprocess.Popen(["perf", "trace", "-e", "pwritev2", "-p", str(p), "-o",
                            "%s-%d.txt" % (out, p), "--", "sleep", str(SECS)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for p in pids]
    for t in tr:
        t.wait()
    c1 = [counts(n) for n in cl.nodes]
    res = kb.communicate()[0]
    kbj = [json.loads(x) for x in res.splitlines() if x.startswith("{")]
    rows = {}
    flags = {}
    for i, p in enumerate(pids):
        role = "leader" if i == lead else "followers"
        with open("%s-%d.txt" % (out, p), errors="replace") as f:
            for line in f:
                m = LINE.search(line)
                if not m:
                    continue
                fl = m.group(2) or "0"
                flags[fl] = flags.get(fl, 0) + 1
                if "DSYNC" in fl or fl == "2":
                    rows.setdefault(role, []).append(float(m.group(1)) * 1000.0)
        os.unlink("%s-%d.txt" % (out, p))
    print(json.dumps({"workload": WL, "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                      "load": open("/proc/loadavg").read().strip(), "traced_s": SECS,
                      "pwritev2_flags": flags,
                      "keelbench": {k: kbj[-1].get(k) for k in ("ops_per_s", "p50_us",
                                                                "p99_us", "server_cpu_us_per_op")}
                      if kbj else None}))
    print("%-10s %7s %8s %8s %8s %8s %8s %s" % ("role", "syncs", "p50 us", "p90 us", "p99 us",
                                             "p99.9 us", "max us", " ".join(
                                                 "> %g ms" % t for t in THR)))
    for role, v in sorted(rows.items()):
        v.sort()
        over = " ".join("%6.2f%%" % (100.0 * sum(1 for x in v if x > t * 1000) / len(v))
                        for t in THR)
        print("%-10s %7d %8.0f %8.0f %8.0f %8.0f %8.0f %s" % (
            role, len(v), pct(v, 0.5), pct(v, 0.9), pct(v, 0.99), pct(v, 0.999), v[-1], over))
    for i, n in enumerate(cl.nodes):
        d = [b - a for a, b in zip(c0[i], c1[i])]
        print("node %d%s: inline syncs %d, slow flushes %d, back-offs %d (traced window)" % (
            n.id, " (leader)" if i == lead else "", d[0], d[1], d[2]))
