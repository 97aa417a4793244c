#!/usr/bin/python3
# interleave: scripts/cluster (udp) vs zkcluster KeelCluster, same keeld, set-sat
import os, subprocess, sys, json, statistics, shutil
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, ROOT + "/tests/cluster")
from zkcluster import KeelCluster
KB = ROOT + "/build/release/bench/keelbench/keelbench"
os.environ.setdefault("KEEL_KEELD", ROOT + "/build/release/dataplane/node/keeld")
extra = [x for x in sys.argv[2:]]
reps = int(sys.argv[1])
LOAD = ["--workload", "set", "--sessions", "8", "--outstanding", "16", "--duration", "8", "--warmup", "2", "--json", "--quiet"]
def bench(servers, pids):
    out = subprocess.run([KB, "--servers", servers, "--pids", pids] + LOAD, capture_output=True, text=True)
    for l in out.stdout.splitlines():
        if l.startswith("{"): return json.loads(l)
    raise RuntimeError(out.stdout + out.stderr)
def sc():
    D = os.path.join(os.environ.get("TMPDIR", "/tmp"), "keel-setup-ab"); shutil.rmtree(D, ignore_errors=True)
    env = dict(os.environ, KEEL_CLIENT_BASE="23181", KEEL_PEER_BASE="23888", KEEL_ADMIN_BASE="23081")
    subprocess.run([ROOT + "/scripts/cluster", "start", "--dir", D, "--transport", "udp"], env=env, capture_output=True, check=True)
    try:
        pids = subprocess.run([ROOT + "/scripts/cluster", "pids", "--dir", D], env=env, capture_output=True, text=True).stdout.split()
        return bench("127.0.0.1:23181,127.0.0.1:23182,127.0.0.1:23183", ",".join(pids))
    finally:
        subprocess.run([ROOT + "/scripts/cluster", "stop", "--dir", D], env=env, capture_output=True)
def zk():
    with KeelCluster(3, extra=extra) as cl:
        return bench(cl.connect_string(), ",".join(str(n.proc.pid) for n in cl.nodes))
res = {}
for r in range(reps):
    for name, f in (("scripts", sc), ("zkcluster", zk)):
        x = f(); res.setdefault(name, []).append(x)
        print(name, r, x["ops_per_s"], x["server_cpu_us_per_op"], x["p50_us"], flush=True)
for k, v in res.items():
    print(k, "median ops/s %.0f cpu us/op %.2f" % (statistics.median(x["ops_per_s"] for x in v), statistics.median(x["server_cpu_us_per_op"] for x in v)))
