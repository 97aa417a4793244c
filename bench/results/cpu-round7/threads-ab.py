#!/usr/bin/python3
"""keeld binaries under set-sat (or another workload), interleaved per repetition, each
on a fresh zkcluster.py KeelCluster: keelbench's server CPU per op and the nodes' CPU
per op by thread name (round 6's setup-diff.py accounting: /proc/PID/task/*/stat over
the keelbench run; "gone" = threads that exited meanwhile, e.g. idle io_uring workers).

  threads-ab.py KEELBENCH REPS WORKLOAD NAME=KEELD ...
"""
import collections
import importlib.machinery
import importlib.util
import json
import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
src = os.path.join(ROOT, "bench/results/cpu-round6/setup-diff.py")
loader = importlib.machinery.SourceFileLoader("sd", src)
spec = importlib.util.spec_from_loader("sd", loader)
sd = importlib.util.module_from_spec(spec)
loader.exec_module(sd)


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    kb, reps, wl = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    sides = [a.split("=", 1) for a in sys.argv[4:]]
    res = collections.defaultdict(list)
    for rep in range(reps):
        for name, keeld in (sides if rep % 2 == 0 else sides[::-1]):
            os.environ["KEEL_KEELD"] = keeld
            with sd.KeelCluster(3) as cl:
                pids = [n.proc.pid for n in cl.nodes]
                sd.settle(pids)
                r = sd.keelbench(kb, cl.connect_string(), pids, wl)
                r["rss_mb"] = round(sum(rss_kb(p) for p in pids) / 1024, 1)
            r.update(binary=name, rep=rep, load=round(os.getloadavg()[0], 2))
            print(json.dumps(r), flush=True)
            res[name].append(r)
    print("%-8s %9s %9s %9s %9s %9s %9s" % ("binary", "ops/s", "us/op", "pipeline", "iou-wrk",
                                             "gone", "RSS MB"))
    for name, _ in sides:
        rs = res[name]
        print("%-8s per rep us/op: %s" % (name, " ".join(
            "%.2f" % r["server_cpu_us_per_op"] for r in rs)))

        def med(f):
            return statistics.median(f(r) for r in rs)
        print("%-8s %9.0f %9.2f %9.2f %9.2f %9.2f %9.1f" % (
            name, med(lambda r: r["ops_per_s"]), med(lambda r: r["server_cpu_us_per_op"]),
            med(lambda r: r["threads_us_per_op"].get("keel-pipeline",
                                                       r["threads_us_per_op"].get("keeld", 0))),
            med(lambda r: r["threads_us_per_op"].get("iou-wrk", 0)),
            med(lambda r: r["threads_us_per_op"].get("gone", 0)), med(lambda r: r["rss_mb"])))


if __name__ == "__main__":
    main()
