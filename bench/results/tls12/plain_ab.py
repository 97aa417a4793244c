#!/usr/bin/python3
"""keelbench's own CPU per op on the PLAINTEXT path, before and after --tls
(two keelbench binaries, A and B), against one running server set,
interleaved (B first in odd repetitions). Prints one JSON line per run and
the medians of driver_cpu_us_per_op, ops_per_s and server_cpu_us_per_op.

usage: plain_ab.py KEELBENCH_A KEELBENCH_B SERVERS PIDFILE [REPS] [DURATION] [WORKLOADS]
"""
import json
import statistics
import subprocess
import sys

A, B, SERVERS, PIDFILE = sys.argv[1:5]
REPS = int(sys.argv[5]) if len(sys.argv) > 5 else 5
DUR = sys.argv[6] if len(sys.argv) > 6 else "4"
WL = {"set-1": ["--workload", "set"],
      "get-sat": ["--workload", "get", "--sessions", "8", "--outstanding", "16"],
      "set-sat": ["--workload", "set", "--sessions", "8", "--outstanding", "16"]}
res = {}
if len(sys.argv) > 7:
    WL = {w: WL[w] for w in sys.argv[7].split(",")}
for rep in range(REPS):
    for w, args in WL.items():
        for name, kb in ((("a", A), ("b", B)) if rep % 2 == 0 else (("b", B), ("a", A))):
            p = subprocess.run([kb, "--servers", SERVERS, "--pidfile", PIDFILE, "--duration", DUR,
                                "--warmup", "1", "--json", "--quiet", "--label", name] + args,
                               capture_output=True, text=True)
            js = [x for x in p.stdout.splitlines() if x.startswith("{")]
            if not js:
                print("failed:", name, w, p.stderr, file=sys.stderr)
                continue
            r = json.loads(js[-1])
            r["wl"], r["rep"] = w, rep
            print(json.dumps(r), flush=True)
            res.setdefault((w, name), []).append(r)
for w in WL:
    pairs = [b["driver_cpu_us_per_op"] / a["driver_cpu_us_per_op"]
             for a, b in zip(res.get((w, "a"), []), res.get((w, "b"), []))]
    if pairs:
        print(f"{w:8} b/a per repetition {[round(x, 2) for x in pairs]} "
              f"median {statistics.median(pairs):.2f}")
for (w, name), rs in sorted(res.items()):
    def m(k):
        return statistics.median(x[k] for x in rs)
    print(f"{w:8} {name}: driver_cpu_us_per_op {m('driver_cpu_us_per_op'):.2f} "
          f"(runs {[x['driver_cpu_us_per_op'] for x in rs]}) ops/s {m('ops_per_s'):.0f} "
          f"srv_cpu {m('server_cpu_us_per_op'):.1f}")
