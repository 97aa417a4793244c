#!/usr/bin/python3
"""Instructions per setData of a whole 3-node cluster, every node under
valgrind --tool=callgrind (a count that survives the shared machine's noise,
which CPU time does not), interleaved over binaries:

  [CG_RATE=N] [CG_KEEP=DIR] cg-cluster.py KEELBENCH REPS SECONDS NAME=KEELD ...

CG_KEEP=DIR keeps each run's callgrind files under DIR (round 8 used it).

Per run: a fresh cluster (election timeout 10 s: valgrind slows the nodes
~50x), set-sat with 8 sessions x 16 for SECONDS (1 s warm-up excluded by
keelbench, not by callgrind: the count covers the whole life of the nodes,
start-up and the run), then the nodes are stopped (SIGTERM: callgrind writes
its totals) and the instructions (Ir) of the 3 nodes summed; Ir / ops of the
whole run, and the same with the start-up's instructions taken out by an idle
run of the same binary (no load, same life time).
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

SET_SAT = ["--workload", "set", "--sessions", "8", "--outstanding", "16"]
# CG_RATE=N: open loop at N/s instead (the same batching for every binary)
if os.environ.get("CG_RATE"):
    SET_SAT = ["--workload", "set", "--mode", "open", "--rate", os.environ["CG_RATE"],
               "--sessions", "8"]
EXTRA = ["keel.electionTimeoutMs=10000", "keel.heartbeatMs=500", "tickTime=2000"]


def total_ir(outdir):
    ir = 0
    for f in glob.glob(os.path.join(outdir, "cg.*")):
        with open(f) as fh:
            for line in fh:
                if line.startswith("totals:") or line.startswith("summary:"):
                    ir = ir + int(line.split()[1])
                    break
    return ir


def run(kb, keeld, secs, load):
    out = tempfile.mkdtemp(prefix="keel-cg-")
    wrap = os.path.join(out, "keeld")
    with open(wrap, "w") as f:
        f.write("#!/bin/sh\nexec valgrind --tool=callgrind --callgrind-out-file=%s/cg.%%p "
                "%s \"$@\"\n" % (out, keeld))
    os.chmod(wrap, 0o755)
    os.environ["KEEL_KEELD"] = wrap
    ops = 0
    with KeelCluster(3, extra=EXTRA) as cl:
        pids = ",".join(str(n.proc.pid) for n in cl.nodes)
        if load:
            r = subprocess.run([kb, "--servers", cl.connect_string(), "--pids", pids,
                                "--duration", str(secs), "--warmup", "1", "--json", "--quiet"]
                               + SET_SAT, capture_output=True, text=True, timeout=secs + 300)
            for line in r.stdout.splitlines():
                if line.startswith("{"):
                    ops = json.loads(line)["ops"] * (secs + 1) / secs
        else:
            time.sleep(secs + 1)
    time.sleep(1)
    ir = total_ir(out)
    if os.environ.get("CG_KEEP"):
        keep = os.path.join(os.environ["CG_KEEP"], "%s-%d" % (os.path.basename(keeld), int(time.time())))
        subprocess.run(["cp", "-r", out, keep])
    subprocess.run(["rm", "-rf", out])
    return ir, ops


def main():
    kb, reps, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    sides = [s.split("=", 1) for s in sys.argv[4:]]
    for rep in range(reps):
        for name, keeld in sides:
            ir, ops = run(kb, keeld, secs, True)
            print(json.dumps({"side": name, "rep": rep, "ir": ir, "ops": round(ops),
                              "ir_per_op": round(ir / ops) if ops else None}), flush=True)
    for name, keeld in sides:
        ir, _ = run(kb, keeld, secs, False)
        print(json.dumps({"side": name, "idle_ir": ir}), flush=True)


if __name__ == "__main__":
    main()
