#!/usr/bin/python3
# interleave set-sat: plain vs with 2 SCHED_IDLE spinners (vCPUs never halt)
import os, subprocess, sys, json, statistics
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, ROOT + "/tests/cluster")
from zkcluster import KeelCluster
KB = ROOT + "/build/release/bench/keelbench/keelbench"
os.environ["KEEL_KEELD"] = sys.argv[2]
reps = int(sys.argv[1])
SET = ["--workload", "set", "--sessions", "8", "--outstanding", "16", "--duration", "6", "--warmup", "2"]
res = {}
for r in range(reps):
    for name in ("plain", "spin"):
        spin = []
        if name == "spin":
            spin = [subprocess.Popen(["chrt", "--idle", "0", "sh", "-c", "while :; do :; done"]) for _ in range(2)]
        try:
            with KeelCluster(3) as cl:
                pids = ",".join(str(n.proc.pid) for n in cl.nodes)
                out = subprocess.run([KB, "--servers", cl.connect_string(), "--pids", pids, "--json", "--quiet"] + SET, capture_output=True, text=True)
                x = [json.loads(l) for l in out.stdout.splitlines() if l.startswith("{")][0]
        finally:
            for p in spin:
                p.kill(); p.wait()
        res.setdefault(name, []).append(x)
        print(name, r, "%.0f ops/s %.2f us/op p50 %.0f" % (x["ops_per_s"], x["server_cpu_us_per_op"], x["p50_us"]), "load %.1f" % os.getloadavg()[0], flush=True)
for k, v in res.items():
    print(k, "median ops/s %.0f cpu us/op %.2f" % (statistics.median(x["ops_per_s"] for x in v), statistics.median(x["server_cpu_us_per_op"] for x in v)))
