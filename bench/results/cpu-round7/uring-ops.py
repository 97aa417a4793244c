#!/usr/bin/python3
"""io_uring requests per setData: keeld binaries under set-sat, interleaved, each on a
fresh zkcluster.py KeelCluster, with perf stat of the 3 nodes' io_uring tracepoints
(submitted requests, requests punted to io-wq workers, completions) and syscalls,
context switches per op. Counts, so the machine's load matters little.

  uring-ops.py KEELBENCH REPS DURATION NAME=KEELD ...
"""
import json
import os
import signal
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, os.path.join(ROOT, "tests", "cluster"))
from zkcluster import KeelCluster  # noqa: E402

EV = ["io_uring:io_uring_submit_req", "io_uring:io_uring_queue_async_work",
      "io_uring:io_uring_complete", "raw_syscalls:sys_enter", "context-switches", "task-clock"]


def run(kb, keeld, dur):
    os.environ["KEEL_KEELD"] = keeld
    with KeelCluster(3) as cl:
        pids = ",".join(str(n.proc.pid) for n in cl.nodes)
        perf = subprocess.Popen(["perf", "stat", "-x", ",", "-e", ",".join(EV), "-p", pids],
                                stderr=subprocess.PIPE, text=True)
        out = subprocess.run([kb, "--servers", cl.connect_string(), "--pids", pids,
                              "--duration", str(dur), "--warmup", "1", "--json", "--quiet",
                              "--workload", "set", "--sessions", "8", "--outstanding", "16"],
                             capture_output=True, text=True, timeout=dur + 120)
        perf.send_signal(signal.SIGINT)
        err = perf.communicate()[1]
    r = [json.loads(x) for x in out.stdout.splitlines() if x.startswith("{")][0]
    ops = r["ops"] * (dur + 1) / dur
    c = {}
    for line in err.splitlines():
        f = line.split(",")
        if len(f) > 2 and f[0].replace(".", "").isdigit():
            c[f[2]] = float(f[0])
    return r, {k.split(":")[-1]: v / ops for k, v in c.items()}


def main():
    kb, reps, dur = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    sides = [a.split("=", 1) for a in sys.argv[4:]]
    for rep in range(reps):
        for name, keeld in (sides if rep % 2 == 0 else sides[::-1]):
            r, per = run(kb, keeld, dur)
            per["task-clock"] = per.get("task-clock", 0) * 1e3  # ms -> us per op
            print(json.dumps({"binary": name, "rep": rep, "ops_per_s": r["ops_per_s"],
                              "server_cpu_us_per_op": r["server_cpu_us_per_op"],
                              "load": os.getloadavg()[0],
                              "per_op": {k: round(v, 4) for k, v in per.items()}}), flush=True)


if __name__ == "__main__":
    main()
