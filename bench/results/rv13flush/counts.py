#!/usr/bin/python3
"""The inline-sync back-off's counts under a keelbench load, per rule.

  bench/results/rv13flush/counts.py KEELD KEELBENCH RULES WORKLOADS REPS SECONDS

KEELD: a keeld built with measure.diff (wal.c: KEEL_WAL_RULE picks the rule
an io_uring group renews the back-off by -- lb: how long after its
submission a reap still found it unfinished (this branch), reap: its time
to the reap (flush12), inl: never (inline groups only) -- and
KEEL_WAL_MEASURE names a file each wal appends its counts to at close).
RULES, WORKLOADS: comma-separated. For each repetition, workload and rule
(the rules' order turned round in odd repetitions), a fresh 3-node cluster
(tests/cluster/zkcluster.py), keelbench WORKLOAD for SECONDS (+1 s warm-up);
one JSON line per run: the three nodes' keel_wal_* counters over the run
(/metrics), and what measure.diff counted over the nodes' lives: groups on
io_uring and how many of them took over 2 / 5 ms timed to their reap
(ring_reap2, ring_reap5) and by the reap that last found them unfinished
(ring_lb2, ring_lb5), groups synced inline and how many over 2 / 5 ms.
Run by hand, never in CI.
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
sys.path.insert(0, os.path.join(ROOT, "tests", "cluster"))
from zkcluster import KeelCluster  # noqa: E402

WORKLOADS = {
    "set-1": ["--workload", "set", "--sessions", "1", "--outstanding", "1"],
    "set-sat": ["--workload", "set", "--sessions", "8", "--outstanding", "16"],
}
NAMES = ("keel_wal_inline_syncs_total", "keel_wal_slow_flushes_total",
         "keel_wal_inline_backoffs_total")


def wal_counts(cl):
    out = [0, 0, 0]
    for n in cl.nodes:
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % n.admin_port,
                                    timeout=10) as f:
            text = f.read().decode()
        for i, name in enumerate(NAMES):
            out[i] += int(float(re.search(r"^%s (\S+)$" % name, text, re.M).group(1)))
    return out


def run(keeld, keelbench, rule, wl, secs):
    os.environ["KEEL_KEELD"] = keeld
    os.environ["KEEL_WAL_RULE"] = rule
    fd, mpath = tempfile.mkstemp(prefix="rv13flush-measure-")
    os.close(fd)
    os.environ["KEEL_WAL_MEASURE"] = mpath
    try:
        load0 = os.getloadavg()[0]
        with KeelCluster(3, admin_token="rv13flush") as cl:
            cl.wait_ready()
            pids = ",".join(str(n.proc.pid) for n in cl.nodes)
            c0 = wal_counts(cl)
            out = subprocess.run([keelbench, "--servers", cl.connect_string(), "--pids", pids,
                                  "--duration", str(secs), "--warmup", "1", "--json",
                                  "--quiet"] + WORKLOADS[wl],
                                 capture_output=True, text=True, timeout=secs + 60)
            time.sleep(0.3)  # the nodes publish every 100 ms
            c1 = wal_counts(cl)
        r = {"rule": rule, "wl": wl, "load": round(load0, 1),
             "utc": time.strftime("%H:%M:%S", time.gmtime())}
        for line in out.stdout.splitlines():
            if line.startswith("{"):
                b = json.loads(line)
                r.update({k: b.get(k) for k in ("ops_per_s", "p99_us",
                                                  "server_cpu_us_per_op")})
        r.update(inline=c1[0] - c0[0], slow=c1[1] - c0[1], backoffs=c1[2] - c0[2])
        tot = {}
        with open(mpath) as f:
            for line in f:
                for k, v in json.loads(line).items():
                    if k != "rule":
                        tot[k] = tot.get(k, 0) + v
        r["life"] = tot
        return r
    finally:
        os.unlink(mpath)


def main():
    keeld, keelbench, rules, wls, reps, secs = sys.argv[1:7]
    rules = rules.split(",")
    for rep in range(int(reps)):
        for wl in wls.split(","):
            for rule in (rules if rep % 2 == 0 else rules[::-1]):
                print(json.dumps(run(keeld, keelbench, rule, wl, float(secs))), flush=True)


if __name__ == "__main__":
    main()
