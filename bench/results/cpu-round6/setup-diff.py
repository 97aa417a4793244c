#!/usr/bin/python3
"""Why is keel dearer per setData inside scripts/bench-compare than in ab-keeld?
One keeld binary, set-sat measured under three set-ups, interleaved per repetition:

  ab   a fresh tests/cluster/zkcluster.py KeelCluster per run (what ab-keeld does)
  cl   a fresh `scripts/cluster start --transport udp` per run (bench-compare's
       configuration: tickTime 2000, heartbeat 100 ms, admin API), set-sat at once
  bc   ONE scripts/cluster for the whole script, primed as bench-compare primes
       (5 s set-sat, 5 s get-sat), then per repetition bench-compare's default
       workload order (set-1, get-1, set-sat, get-sat, create-sat --verify
       --cleanup, mixed-sat, multi-sat), 5 s + 1 s each; set-sat's figures kept

  setup-diff.py KEELBENCH KEELD REPS [SETUPS=ab,cl,bc]

Per run: keelbench's server CPU per op, and the nodes' CPU per op split by
thread name (/proc/PID/task/*/stat over the measured window is approximated by
the whole keelbench run; "gone" = threads that exited, e.g. io_uring workers),
and snapshots logged by the nodes during the run.
"""
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, os.path.join(ROOT, "tests", "cluster"))
from zkcluster import KeelCluster, free_port_block  # noqa: E402

CLUSTER = os.path.join(ROOT, "scripts", "cluster")
WL = {
    "set-1": ["--workload", "set", "--sessions", "1", "--outstanding", "1"],
    "get-1": ["--workload", "get", "--sessions", "1", "--outstanding", "1"],
    "set-sat": ["--workload", "set", "--sessions", "8", "--outstanding", "16"],
    "get-sat": ["--workload", "get", "--sessions", "8", "--outstanding", "16"],
    "create-sat": ["--workload", "create", "--sessions", "8", "--outstanding", "16",
                   "--verify", "--cleanup"],
    "mixed-sat": ["--workload", "mixed", "--read-pct", "90", "--sessions", "8",
                  "--outstanding", "16"],
    "multi-sat": ["--workload", "multi", "--multi-ops", "4", "--sessions", "8",
                  "--outstanding", "16"],
}
HZ = os.sysconf("SC_CLK_TCK")


def threads(pids):
    """{thread name: ticks} over the PIDs' live threads, plus 'total' (the processes)."""
    t = collections.Counter()
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                x = f.read().rsplit(")", 1)[1].split()
            t["total"] += int(x[11]) + int(x[12])
            for tid in os.listdir("/proc/%d/task" % pid):
                with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                    s = f.read()
                name = s[s.index("(") + 1:s.rindex(")")]
                x = s.rsplit(")", 1)[1].split()
                name = "iou-wrk" if name.startswith("iou-wrk") else name
                t[name] += int(x[11]) + int(x[12])
        except (OSError, ValueError):
            pass
    return t


def keelbench(kb, servers, pids, wl, dur=5, warm=1):
    t0 = threads(pids)
    out = subprocess.run([kb, "--servers", servers, "--pids", ",".join(map(str, pids)),
                          "--duration", str(dur), "--warmup", str(warm), "--json", "--quiet"]
                         + WL[wl], capture_output=True, text=True, timeout=dur + warm + 120)
    t1 = threads(pids)
    for line in out.stdout.splitlines():
        if line.startswith("{"):
            r = json.loads(line)
            ops = r["ops"] * (dur + warm) / dur  # the whole run's ops, roughly
            d = {k: (t1[k] - t0[k]) / HZ * 1e6 / ops for k in t1}
            live = sum(v for k, v in d.items() if k != "total")
            d["gone"] = d.get("total", 0) - live
            r["threads_us_per_op"] = {k: round(v, 2) for k, v in d.items() if abs(v) >= 0.05}
            return r
    raise RuntimeError("keelbench %s: %s %s" % (wl, out.stdout, out.stderr))


def settle(pids, window=0.3, most=10.0):
    t0 = time.monotonic()
    os.sync()
    while time.monotonic() - t0 < most:
        a = threads(pids)["total"]
        time.sleep(window)
        if (threads(pids)["total"] - a) / HZ <= 0.1 * window:
            break


class ScriptCluster:
    """scripts/cluster in a temporary directory, on free ports."""

    def __init__(self, keeld):
        self.dir = tempfile.mkdtemp(prefix="keel-setupdiff-")
        base = free_port_block(9)
        self.env = dict(os.environ, KEEL_KEELD=keeld, KEEL_CLIENT_BASE=str(base),
                        KEEL_PEER_BASE=str(base + 3), KEEL_ADMIN_BASE=str(base + 6))
        self.servers = ",".join("127.0.0.1:%d" % (base + i) for i in range(3))

    def __enter__(self):
        subprocess.run([CLUSTER, "start", "--dir", self.dir, "--transport", "udp"], env=self.env,
                       check=True, stdout=subprocess.DEVNULL)
        p = subprocess.run([CLUSTER, "pids", "--dir", self.dir], env=self.env,
                           capture_output=True, text=True, check=True)
        self.pids = [int(x) for x in p.stdout.split()]
        return self

    def snaps(self):
        n = 0
        for i in (1, 2, 3):
            with open(os.path.join(self.dir, "n%d" % i, "keeld.log"), "rb") as f:
                n += f.read().count(b"snapshot at index")
        return n

    def __exit__(self, *exc):
        subprocess.run([CLUSTER, "stop", "--dir", self.dir], env=self.env, check=False,
                       stdout=subprocess.DEVNULL)
        shutil.rmtree(self.dir, ignore_errors=True)


def main():
    kb, keeld, reps = sys.argv[1], sys.argv[2], int(sys.argv[3])
    setups = (sys.argv[4] if len(sys.argv) > 4 else "ab,cl,bc").split(",")
    bc = None
    try:
        if "bc" in setups:
            bc = ScriptCluster(keeld).__enter__()
            for w in ("set-sat", "get-sat"):
                keelbench(kb, bc.servers, bc.pids, w, 5, 0)
        for rep in range(reps):
            for s in setups:
                if s == "ab":
                    os.environ["KEEL_KEELD"] = keeld
                    with KeelCluster(3) as cl:
                        pids = [n.proc.pid for n in cl.nodes]
                        settle(pids)
                        r = keelbench(kb, cl.connect_string(), pids, "set-sat")
                elif s == "cl":
                    with ScriptCluster(keeld) as cl:
                        settle(cl.pids)
                        r = keelbench(kb, cl.servers, cl.pids, "set-sat")
                        r["snapshots"] = cl.snaps()
                else:
                    for w in ("set-1", "get-1", "set-sat", "get-sat", "create-sat",
                              "mixed-sat", "multi-sat"):
                        settle(bc.pids)
                        s0 = bc.snaps()
                        x = keelbench(kb, bc.servers, bc.pids, w)
                        if w == "set-sat":
                            r = x
                            r["snapshots"] = bc.snaps() - s0
                r.update(setup=s, rep=rep, load=os.getloadavg()[0])
                print(json.dumps(r), flush=True)
    finally:
        if bc:
            bc.__exit__(None, None, None)


if __name__ == "__main__":
    main()
