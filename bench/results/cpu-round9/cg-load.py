#!/usr/bin/python3
"""Instructions per setData of each node of a 3-node cluster, every node under
valgrind --tool=callgrind with instrumentation off until the load starts
(callgrind_control -i on), so start-up is not counted and no idle run is
needed (round 6's cg-cluster.py subtracts one):

  [CG_RATE=800] [CG_SESSIONS=8] cg-load.py KEELBENCH REPS SECONDS OUTDIR NAME=KEELD ...

Per run: a fresh cluster (election timeout 10 s: valgrind slows the nodes
~50x), instrumentation switched on in the 3 nodes, an open-loop setData load at
CG_RATE/s for SECONDS (the same batching for every binary, which a closed
loop under valgrind would not give), instrumentation off, nodes stopped (SIGTERM:
callgrind writes its file). Prints Ir per op of the leader, the followers and
all, and keeps the callgrind files as OUTDIR/NAME-REP-ROLE-ID for
callgrind_annotate (a function-level diff of two binaries).
"""
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, os.path.join(ROOT, "tests", "cluster"))
from zkcluster import KeelCluster  # noqa: E402

RATE = os.environ.get("CG_RATE", "800")
LOAD = ["--workload", "set", "--mode", "open", "--rate", RATE,
        "--sessions", os.environ.get("CG_SESSIONS", "8")]
EXTRA = ["keel.electionTimeoutMs=10000", "keel.heartbeatMs=500", "tickTime=2000"]


def total_ir(f):
    # "summary:" at the top says 0 when instrumentation started late; "totals:" at the end counts
    ir = 0
    with open(f) as fh:
        for line in fh:
            if line.startswith("totals:") or line.startswith("summary:"):
                ir = max(ir, int(line.split()[1]))
    return ir


def control(pids, opt):
    for pid in pids:
        r = subprocess.run(["callgrind_control"] + opt.split() + [str(pid)],
                           capture_output=True, text=True, timeout=60)
        if r.returncode or "OK" not in r.stdout:
            print("callgrind_control %s %d: %s%s" % (opt, pid, r.stdout, r.stderr), file=sys.stderr)


def run(kb, name, rep, keeld, secs, keep):
    out = tempfile.mkdtemp(prefix="keel-cg9-")
    wrap = os.path.join(out, "keeld")
    with open(wrap, "w") as f:
        f.write("#!/bin/sh\nexec valgrind --tool=callgrind --instr-atstart=no "
                "--callgrind-out-file=%s/cg.%%p %s \"$@\"\n" % (out, keeld))
    os.chmod(wrap, 0o755)
    os.environ["KEEL_KEELD"] = wrap
    ops = 0
    roles = {}
    with KeelCluster(3, extra=EXTRA) as cl:
        lead = cl.leader()
        pids = [n.proc.pid for n in cl.nodes]
        for n in cl.nodes:
            roles[n.proc.pid] = "leader" if n.idx == lead else "follower"
        control(pids, "-i on")
        r = subprocess.run([kb, "--servers", cl.connect_string(), "--duration", str(secs),
                            "--warmup", "0", "--json", "--quiet"] + LOAD,
                           capture_output=True, text=True, timeout=secs + 300)
        control(pids, "-i off")
        for line in r.stdout.splitlines():
            if line.startswith("{"):
                ops = json.loads(line)["ops"]
    time.sleep(1)
    res = {"side": name, "rep": rep, "ops": ops}
    ir = {"leader": 0, "follower": 0}
    for f in glob.glob(os.path.join(out, "cg.*")):
        pid = int(f.rsplit(".", 1)[1])
        role = roles.get(pid, "?")
        ir[role] = ir.get(role, 0) + total_ir(f)
        subprocess.run(["cp", f, os.path.join(keep, "%s-%d-%s-%d" % (name, rep, role, pid))])
    subprocess.run(["rm", "-rf", out])
    for role, v in ir.items():
        res[role + "_ir_per_op"] = round(v / ops) if ops else None
    res["all_ir_per_op"] = round(sum(ir.values()) / ops) if ops else None
    return res


def main():
    kb, reps, secs, keep = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    os.makedirs(keep, exist_ok=True)
    sides = [s.split("=", 1) for s in sys.argv[5:]]
    for rep in range(reps):
        for name, keeld in sides:
            print(json.dumps(run(kb, name, rep, keeld, secs, keep)), flush=True)


if __name__ == "__main__":
    main()
