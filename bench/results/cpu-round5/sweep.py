#!/usr/bin/python3
"""N configurations of keeld under the same keelbench load, interleaved (ab-keeld for
more than two sides), with perf stat of the 3 nodes: syscalls and context switches
per op next to keelbench's server CPU per op.

  sweep.py KEELBENCH REPS DURATION WORKLOADS NAME=KEELD[:key=value,...] ...

KEELD may be a script that execs keeld (same PID), e.g. to set MALLOC_CONF.

perf counts the whole run (warm-up 1 s included); per-op figures divide by the
ops of the measured window scaled to the whole run (ops * (dur + 1) / dur).
"""
import importlib.machinery
import importlib.util
import json
import os
import signal
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
loader = importlib.machinery.SourceFileLoader("abk", os.path.join(ROOT, "bench/keelbench/ab-keeld"))
spec = importlib.util.spec_from_loader("abk", loader)
abk = importlib.util.module_from_spec(spec)
loader.exec_module(abk)
KeelCluster = abk.KeelCluster


def run(kb, keeld, wl, dur, extra):
    os.environ["KEEL_KEELD"] = keeld
    with KeelCluster(3, extra=extra) as cl:
        pids = ",".join(str(n.proc.pid) for n in cl.nodes)
        perf = subprocess.Popen(["perf", "stat", "-x", ",", "-e",
                                 "task-clock,context-switches,page-faults,raw_syscalls:sys_enter",
                                 "-p", pids], stderr=subprocess.PIPE, text=True)
        out = subprocess.run([kb, "--servers", cl.connect_string(), "--pids", pids,
                              "--duration", str(dur), "--warmup", "1", "--json", "--quiet"]
                             + abk.WORKLOADS[wl], capture_output=True, text=True,
                             timeout=dur + 60)
        perf.send_signal(signal.SIGINT)
        _, err = perf.communicate()
        ev = {}
        for line in err.splitlines():
            f = line.split(",")
            if len(f) > 3 and f[0].replace(".", "").isdigit():
                ev[f[2]] = float(f[0])
        for line in out.stdout.splitlines():
            if line.startswith("{"):
                r = json.loads(line)
                ops = r["ops"] * (dur + 1) / dur
                r["cs_per_op"] = ev.get("context-switches", 0) / ops
                r["sys_per_op"] = ev.get("raw_syscalls:sys_enter", 0) / ops
                r["pf_per_op"] = ev.get("page-faults", 0) / ops
                return r
        raise RuntimeError(out.stdout + out.stderr)


def main():
    kb, reps, dur, wls = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    sides = []
    for s in sys.argv[5:]:
        name, rest = s.split("=", 1)
        path, _, kv = rest.partition(":")
        sides.append((name, path, [x for x in kv.split(",") if x]))
    res = {}
    for rep in range(reps):
        for w in wls.split(","):
            for name, path, extra in sides:
                r = run(kb, path, w, dur, extra)
                r.update(binary=name, wl=w, rep=rep)
                print(json.dumps(r), flush=True)
                res.setdefault((w, name), []).append(r)
    print("%-10s %-11s %8s %7s %8s %7s %7s %7s  per rep (CPU us/op)" % (
        "side", "workload", "ops/s", "p50 us", "CPU us/op", "sys/op", "cs/op", "pf/op"))
    for (w, name), rs in sorted(res.items()):
        med = lambda f: statistics.median(r[f] for r in rs)  # noqa: E731
        print("%-10s %-11s %8.0f %7.0f %8.1f %7.2f %7.2f %7.3f  %s" % (
            name, w, med("ops_per_s"), med("p50_us"), med("server_cpu_us_per_op"),
            med("sys_per_op"), med("cs_per_op"), med("pf_per_op"),
            " ".join("%.1f" % r["server_cpu_us_per_op"] for r in rs)))


if __name__ == "__main__":
    main()
