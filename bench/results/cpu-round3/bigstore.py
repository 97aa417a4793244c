#!/usr/bin/python3
# interleave: set-sat on a fresh cluster vs on a cluster that first ran 12 s of create-sat (as bench-compare's long-lived cluster)
import os, subprocess, sys, json, statistics
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, ROOT + "/tests/cluster")
from zkcluster import KeelCluster
KB = ROOT + "/build/release/bench/keelbench/keelbench"
os.environ["KEEL_KEELD"] = sys.argv[2]
reps = int(sys.argv[1])
def kb(cl, args):
    pids = ",".join(str(n.proc.pid) for n in cl.nodes)
    out = subprocess.run([KB, "--servers", cl.connect_string(), "--pids", pids, "--json", "--quiet"] + args, capture_output=True, text=True)
    for l in out.stdout.splitlines():
        if l.startswith("{"): return json.loads(l)
    raise RuntimeError(out.stdout + out.stderr)
SET = ["--workload", "set", "--sessions", "8", "--outstanding", "16", "--duration", "6", "--warmup", "2"]
res = {}
for r in range(reps):
    for name in ("fresh", "big"):
        with KeelCluster(3) as cl:
            extra = ""
            if name == "big":
                c = kb(cl, ["--workload", "create", "--sessions", "8", "--outstanding", "16", "--duration", "12", "--warmup", "0"])
                extra = "created %d" % c["ops"]
            x = kb(cl, SET)
        res.setdefault(name, []).append(x)
        print(name, r, "%.0f ops/s %.2f us/op" % (x["ops_per_s"], x["server_cpu_us_per_op"]), extra, os.getloadavg()[0], flush=True)
for k, v in res.items():
    print(k, "median ops/s %.0f cpu us/op %.2f" % (statistics.median(x["ops_per_s"] for x in v), statistics.median(x["server_cpu_us_per_op"] for x in v)))
