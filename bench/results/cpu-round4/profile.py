#!/usr/bin/python3
# perf record of a fresh 3-node cluster under set-sat: profile.py KEELD OUT.data [SECONDS]
# keelbench runs 12 s (2 s warm-up); perf samples all 3 keelds for SECONDS in the middle.
import os, subprocess, sys, time
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, ROOT + "/tests/cluster")
os.environ["KEEL_KEELD"] = os.path.abspath(sys.argv[1])
from zkcluster import KeelCluster
KB = ROOT + "/build/release/bench/keelbench/keelbench"
secs = sys.argv[3] if len(sys.argv) > 3 else "4"
with KeelCluster(3) as cl:
    pids = ",".join(str(n.proc.pid) for n in cl.nodes)
    kb = subprocess.Popen([KB, "--servers", cl.connect_string(), "--pids", pids, "--workload", "set",
                           "--sessions", "8", "--outstanding", "16", "--duration", "10",
                           "--warmup", "2", "--quiet"], stdout=subprocess.PIPE, text=True)
    time.sleep(4)
    subprocess.run(["perf", "record", "-F", "999"] + os.environ.get("PERF_CG", "-g").split() + ["-o", sys.argv[2], "-p", pids, "--", "sleep", secs],
                   capture_output=True)
    print(kb.communicate()[0].strip().splitlines()[-1])
