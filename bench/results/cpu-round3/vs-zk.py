#!/usr/bin/python3
"""keel and ZooKeeper set-sat in one run: a 3-node ZooKeeper ensemble
(scripts/zk-ensemble, forceSync on) and fresh 3-node keel clusters
(tests/cluster/zkcluster.py), interleaved, server CPU of each system's own
PIDs; then keel again once the JVMs are stopped.
  vs-zk.py REPS KEELD
With several binaries (round 4), each rep runs a fresh cluster of each, then
ZooKeeper, and nothing after the JVMs are stopped:
  vs-zk.py REPS NAME=KEELD NAME=KEELD ..."""
import json, os, statistics, subprocess, sys, tempfile
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, ROOT + "/tests/cluster")
from zkcluster import KeelCluster  # noqa: E402
KB = ROOT + "/build/release/bench/keelbench/keelbench"
reps = int(sys.argv[1])
bins = [a.split("=", 1) for a in sys.argv[2:]] if "=" in sys.argv[2] else None
if not bins:
    os.environ["KEEL_KEELD"] = sys.argv[2]
os.environ.setdefault("ZK_BASE_PORT", "15181")  # away from bench-compare's 12181
SET = ["--workload", "set", "--sessions", "8", "--outstanding", "16", "--json", "--quiet"]


def kb(servers, pids, dur=6, warm=2):
    out = subprocess.run([KB, "--servers", servers, "--pids", pids, "--duration", str(dur),
                          "--warmup", str(warm)] + SET, capture_output=True, text=True)
    for line in out.stdout.splitlines():
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(out.stdout + out.stderr)


def keel(path=None):
    if path:
        os.environ["KEEL_KEELD"] = path
    with KeelCluster(3) as cl:
        return kb(cl.connect_string(), ",".join(str(n.proc.pid) for n in cl.nodes))


res = {}
def note(name, x):
    res.setdefault(name, []).append(x)
    print(name, "%.0f ops/s %.2f server us/op p50 %.0f us" % (
        x["ops_per_s"], x["server_cpu_us_per_op"], x["p50_us"]),
        "load %.1f" % os.getloadavg()[0], flush=True)


zdir = tempfile.mkdtemp(prefix="keel-vs-zk-")
os.rmdir(zdir)
cs = subprocess.run([ROOT + "/scripts/zk-ensemble", "start", zdir], capture_output=True,
                    text=True, check=True).stdout.strip().splitlines()[-1]
try:
    zpids = ",".join(subprocess.run([ROOT + "/scripts/zk-ensemble", "pids", zdir],
                                    capture_output=True, text=True).stdout.split())
    kb(cs, zpids, 5, 0)  # JIT warm-up of the JVMs, thrown away
    for r in range(reps):
        for name, path in bins or [("(JVMs idle beside)", None)]:
            note("keel " + name, keel(path))
        note("zookeeper", kb(cs, zpids))
finally:
    subprocess.run([ROOT + "/scripts/zk-ensemble", "stop", zdir], capture_output=True)
for r in range(reps if not bins else 0):
    note("keel (no JVMs)", keel())
for k, v in res.items():
    print("%-24s median ops/s %.0f server us/op %.2f" % (
        k, statistics.median(x["ops_per_s"] for x in v),
        statistics.median(x["server_cpu_us_per_op"] for x in v)))
