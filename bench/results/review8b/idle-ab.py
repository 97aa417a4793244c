#!/usr/bin/python3
"""Idle cost of keeld binaries: a fresh 3-node zkcluster.py KeelCluster per
side and repetition (interleaved), default heartbeat (100 ms) and election
(1000 ms) timeouts, no client; after 5 s, each node's CPU (schedstat, all
threads) and context switches (voluntary + not, all threads; the pipeline
thread's alone) over SECONDS.

  idle-ab.py SECONDS REPS NAME=KEELD ...
"""
import glob
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
sys.path.insert(0, os.path.join(ROOT, "tests", "cluster"))
import zkcluster  # noqa: E402


def snap(pids):
    out = {}
    for n, pid in pids.items():
        for t in glob.glob("/proc/%d/task/*" % pid):
            try:
                comm = open(t + "/comm").read().strip()
                run = int(open(t + "/schedstat").read().split()[0])
                st = dict(ln.split(":", 1) for ln in open(t + "/status") if "ctxt" in ln)
                cs = int(st["voluntary_ctxt_switches"]) + int(st["nonvoluntary_ctxt_switches"])
            except OSError:
                continue
            r, c = out.get((n, comm), (0, 0))
            out[(n, comm)] = (r + run, c + cs)
    return out


def run(keeld, secs):
    os.environ["KEEL_KEELD"] = keeld
    with zkcluster.KeelCluster(3, extra=["keel.heartbeatMs=100",
                                         "keel.electionTimeoutMs=1000"]) as cl:
        time.sleep(5)
        pids = {n.id: n.proc.pid for n in cl.nodes}
        a, t0 = snap(pids), time.monotonic()
        time.sleep(secs)
        b, dt = snap(pids), time.monotonic() - t0
        lead = cl.leader()
    res = {}
    for (n, comm), (r1, c1) in b.items():
        r0, c0 = a.get((n, comm), (0, 0))
        role = "leader" if lead is not None and lead + 1 == n else "follower"
        v = res.setdefault((n, role), [0.0, 0.0, 0.0])
        v[0] += (r1 - r0) / dt / 1e3
        v[1] += (c1 - c0) / dt
        if comm == "keel-pipeline":
            v[2] += (c1 - c0) / dt
    return res


def main():
    secs, reps = float(sys.argv[1]), int(sys.argv[2])
    sides = [a.split("=", 1) for a in sys.argv[3:]]
    agg = {}
    for rep in range(reps):
        for name, keeld in (sides if rep % 2 == 0 else sides[::-1]):
            for (n, role), (us, cs, pcs) in sorted(run(keeld, secs).items()):
                print("rep %d %-6s node %d %-8s cpu %7.0f us/s  switches %6.1f/s  "
                      "pipeline %6.1f/s" % (rep, name, n, role, us, cs, pcs), flush=True)
                agg.setdefault((name, role), []).append((us, cs, pcs))
    for (name, role), v in sorted(agg.items()):
        print("median %-6s %-8s cpu %7.0f us/s  switches %6.1f/s  pipeline %6.1f/s  (n=%d)" % (
            name, role, statistics.median(x[0] for x in v),
            statistics.median(x[1] for x in v), statistics.median(x[2] for x in v), len(v)))


if __name__ == "__main__":
    main()
