#!/usr/bin/python3
# Interleaved A/B of two keelds under keelbench create (8 sessions x 16 in
# flight; ab-keeld has no create workload): ab-create.py REPS NAME=KEELD NAME=KEELD
import json, os, statistics, subprocess, sys
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, ROOT + "/tests/cluster")
from zkcluster import KeelCluster  # noqa: E402
KB = ROOT + "/build/release/bench/keelbench/keelbench"
reps, bins = int(sys.argv[1]), [a.split("=", 1) for a in sys.argv[2:]]
res = {}
for r in range(reps):
    for name, path in bins:
        os.environ["KEEL_KEELD"] = path
        with KeelCluster(3) as cl:
            out = subprocess.run([KB, "--servers", cl.connect_string(), "--pids",
                                  ",".join(str(n.proc.pid) for n in cl.nodes), "--workload", "create",
                                  "--sessions", "8", "--outstanding", "16", "--duration", "6",
                                  "--warmup", "2", "--json", "--quiet"], capture_output=True, text=True)
        x = next(json.loads(l) for l in out.stdout.splitlines() if l.startswith("{"))
        res.setdefault(name, []).append(x)
        print(name, r, x["ops_per_s"], x["server_cpu_us_per_op"], x["errors"], "load %.1f" % os.getloadavg()[0], flush=True)
for k, v in res.items():
    print("%-8s median ops/s %.0f server us/op %.2f" % (k, statistics.median(x["ops_per_s"] for x in v),
                                                       statistics.median(x["server_cpu_us_per_op"] for x in v)))
