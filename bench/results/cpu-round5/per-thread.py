#!/usr/bin/python3
"""perf stat --per-thread of a fresh 3-node cluster under set-sat, 3 s in the middle of
an 8 s run: CPU per op by thread name (summed over the 3 nodes).
  per-thread.py KEELD [key=value ...]"""
import collections, os, subprocess, sys, time
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, ROOT + "/tests/cluster")
os.environ["KEEL_KEELD"] = sys.argv[1]
from zkcluster import KeelCluster  # noqa: E402
KB = ROOT + "/build/release/bench/keelbench/keelbench"
with KeelCluster(3, extra=sys.argv[2:]) as cl:
    pids = ",".join(str(n.proc.pid) for n in cl.nodes)
    kb = subprocess.Popen([KB, "--servers", cl.connect_string(), "--pids", pids, "--workload", "set",
                           "--sessions", "8", "--outstanding", "16", "--duration", "8",
                           "--warmup", "1", "--quiet"], stdout=subprocess.PIPE, text=True)
    time.sleep(3)
    out = subprocess.run(["perf", "stat", "--per-thread", "-x", ",", "-e",
                          "task-clock,context-switches,raw_syscalls:sys_enter", "-p", pids,
                          "--", "sleep", "3"], capture_output=True, text=True).stderr
    line = kb.communicate()[0].strip().splitlines()[-1]
    ops_s = float(line.split("ops_per_s=")[1].split()[0])
    agg = collections.defaultdict(lambda: collections.defaultdict(float))
    for l in out.splitlines():
        f = l.split(",")
        if len(f) > 3 and f[1].replace(".", "").isdigit():
            name = f[0].rsplit("-", 1)[0]
            name = "iou-wrk" if name.startswith("iou-wrk") else name
            agg[name][f[3]] += float(f[1])
    ops = ops_s * 3
    print(line)
    print("%-16s %10s %8s %8s" % ("thread", "CPU us/op", "cs/op", "sys/op"))
    for name, ev in sorted(agg.items(), key=lambda kv: -kv[1]["task-clock"]):
        print("%-16s %10.2f %8.3f %8.3f" % (name, ev["task-clock"] * 1e3 / ops,
                                            ev["context-switches"] / ops,
                                            ev["raw_syscalls:sys_enter"] / ops))
