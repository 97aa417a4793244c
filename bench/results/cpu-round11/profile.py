#!/usr/bin/python3
"""Whole-machine profile of a fresh 3-node cluster under set-sat, per node role.

  profile.py KEELD OUTDIR [SECONDS]

keelbench (8 sessions x 16 outstanding setData, the set-sat of bench-compare
and ab-keeld) runs 16 s with 2 s warm-up; from its 4th second `perf record -a
-g -F 999` (software cpu-clock: no hardware counters here) samples every CPU
for SECONDS (default 5), kernel included, then `perf trace -s` counts every
syscall of the three nodes for 2 s. OUTDIR gets perf.data, roles.json (pid ->
leader/follower, and the writes in each window from the leader's zxid) and
trace-*.txt. Run by hand, never in CI.
"""
import json, os, subprocess, sys, time
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, ROOT + "/tests/cluster")
os.environ["KEEL_KEELD"] = os.path.abspath(sys.argv[1])
from zkcluster import KeelCluster  # noqa: E402
KB = ROOT + "/build/release/bench/keelbench/keelbench"
out = sys.argv[2]
secs = int(sys.argv[3]) if len(sys.argv) > 3 else 5
os.makedirs(out, exist_ok=True)


def zxid(cl, i):
    for line in cl.four_letter(i, "srvr").splitlines():
        if line.startswith("Zxid:"):
            return int(line.split()[1], 16) & 0xffffffff
    return None


with KeelCluster(3) as cl:
    cl.wait_ready()
    lead = cl.leader()
    pids = [n.proc.pid for n in cl.nodes]
    roles = {str(p): ("leader" if i == lead else "follower") for i, p in enumerate(pids)}
    kb = subprocess.Popen([KB, "--servers", cl.connect_string(), "--pids", ",".join(map(str, pids)),
                           "--workload", "set", "--sessions", "8", "--outstanding", "16",
                           "--duration", "14", "--warmup", "2", "--quiet"],
                          stdout=subprocess.PIPE, text=True)
    time.sleep(4)
    z0 = zxid(cl, lead)
    subprocess.run(["perf", "record", "-a", "-g", "-F", "999", "-o", out + "/perf.data",
                    "--", "sleep", str(secs)], capture_output=True)
    z1 = zxid(cl, lead)
    time.sleep(0.5)
    z2 = zxid(cl, lead)
    tr = [subprocess.Popen(["perf", "trace", "-s", "-p", str(p), "-o", "%s/trace-%s-%d.txt" % (out, roles[str(p)], p),
                            "--", "sleep", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
          for p in pids]
    for t in tr:
        t.wait()
    z3 = zxid(cl, lead)
    res = kb.communicate()[0].strip().splitlines()[-1]
    json.dump({"roles": roles, "leader_pid": pids[lead], "writes_perf": z1 - z0,
               "writes_trace": z3 - z2, "perf_secs": secs, "keelbench": res,
               "load": open("/proc/loadavg").read().strip()}, open(out + "/roles.json", "w"), indent=1)
    print(open(out + "/roles.json").read())
