#!/usr/bin/python3
"""perf stat --per-thread of fresh 3-node clusters under set-sat (3 s in the middle
of an 8 s run), binaries interleaved: CPU per op by role (leader / follower) and
thread (pipeline / io_uring workers), plus page faults per op.
  per-node.py KEELBENCH REPS name=KEELD [name=KEELD ...]"""
import collections, os, subprocess, sys, time
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, ROOT + "/tests/cluster")
from zkcluster import KeelCluster  # noqa: E402
KB, REPS = sys.argv[1], int(sys.argv[2])
SIDES = [a.split("=", 1) for a in sys.argv[3:]]


def one(keeld):
    os.environ["KEEL_KEELD"] = keeld
    with KeelCluster(3) as cl:
        lead = cl.leader()
        pids = [n.proc.pid for n in cl.nodes]
        role = {}
        for i, pid in enumerate(pids):
            for t in os.listdir("/proc/%d/task" % pid):
                role[t] = "leader" if cl.nodes[i].idx == lead else "follower"
        kb = subprocess.Popen([KB, "--servers", cl.connect_string(), "--pids",
                               ",".join(map(str, pids)), "--workload", "set", "--sessions", "8",
                               "--outstanding", "16", "--duration", "8", "--warmup", "1",
                               "--quiet"], stdout=subprocess.PIPE, text=True)
        time.sleep(3)
        out = subprocess.run(["perf", "stat", "--per-thread", "-x", ",", "-e",
                              "task-clock,page-faults,raw_syscalls:sys_enter", "-p",
                              ",".join(map(str, pids)), "--", "sleep", "3"],
                             capture_output=True, text=True).stderr
        line = kb.communicate()[0].strip().splitlines()[-1]
        ops = float(line.split("ops_per_s=")[1].split()[0]) * 3
        agg = collections.defaultdict(float)
        for l in out.splitlines():
            f = l.split(",")
            if len(f) > 3 and f[1].replace(".", "").isdigit():
                name, tid = f[0].rsplit("-", 1)
                kind = "iou-wrk" if name.startswith("iou-wrk") else name
                # an io_uring worker is named after its pipeline's tid
                r = role.get(tid) or role.get(name.rsplit("-", 1)[-1], "?")
                agg[(r, kind, f[3])] += float(f[1])
        return line, ops, agg


res = collections.defaultdict(list)
for rep in range(REPS):
    for name, keeld in SIDES:
        line, ops, agg = one(keeld)
        row = {}
        for (r, kind, ev), v in agg.items():
            if ev == "task-clock":
                row["%s %s" % (r, kind)] = row.get("%s %s" % (r, kind), 0) + v * 1e3 / ops
                row["total"] = row.get("total", 0) + v * 1e3 / ops
            elif ev == "page-faults":
                row["pf/op " + r] = row.get("pf/op " + r, 0) + v / ops
        row["ops/s"] = ops / 3
        print(name, rep, " ".join("%s=%.3f" % kv for kv in sorted(row.items())), flush=True)
        res[name].append(row)
keys = sorted({k for rows in res.values() for r in rows for k in r})
print("median over %d reps (CPU us per op, summed over the nodes of that role)" % REPS)
print("%-24s" % "" + "".join("%12s" % n for n, _ in SIDES))
for k in keys:
    vals = []
    for n, _ in SIDES:
        v = sorted(r.get(k, 0) for r in res[n])
        vals.append(v[len(v) // 2])
    print("%-24s" % k + "".join("%12.3f" % v for v in vals))
