#!/usr/bin/python3
"""Clock reads (keel_now_ns calls) per setData at saturation, counted with a
uprobe on each binary's keel_now_ns (perf probe -x KEELD --add EVENT=keel_now_ns
first, as root), interleaved:

  [CLK_ADMIN=1] clocks.py KEELBENCH REPS NAME=KEELD:EVENT ...

CLK_ADMIN=1: the nodes' admin API on, so their metrics too (as scripts/cluster
and so scripts/bench-compare start them): the request and commit latency
histograms read the clock as well.

Per run: a fresh 3-node cluster, set-sat 4 s + 1 s warm-up, `perf stat -e
EVENT` over the 3 nodes for the whole run; calls / (ops of the whole run).
The probes slow every call a little (a trap each), so read counts, not CPU.
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

SET_SAT = ["--workload", "set", "--sessions", "8", "--outstanding", "16"]


def run(kb, keeld, event):
    os.environ["KEEL_KEELD"] = keeld
    admin = "t0ken" if os.environ.get("CLK_ADMIN") else None
    with KeelCluster(3, admin_token=admin) as cl:
        pids = ",".join(str(n.proc.pid) for n in cl.nodes)
        perf = subprocess.Popen(["perf", "stat", "-x", ",", "-e", event, "-p", pids],
                                stderr=subprocess.PIPE, text=True)
        out = subprocess.run([kb, "--servers", cl.connect_string(), "--pids", pids,
                              "--duration", "4", "--warmup", "1", "--json", "--quiet"] + SET_SAT,
                             capture_output=True, text=True, timeout=90)
        perf.send_signal(signal.SIGINT)
        _, err = perf.communicate()
        calls = 0.0
        for line in err.splitlines():
            f = line.split(",")
            if len(f) > 3 and f[0].isdigit():
                calls = float(f[0])
        for line in out.stdout.splitlines():
            if line.startswith("{"):
                r = json.loads(line)
                r["clock_reads_per_op"] = calls / (r["ops"] * 5 / 4)
                return r
        raise RuntimeError(out.stdout + out.stderr)


def main():
    kb, reps = sys.argv[1], int(sys.argv[2])
    sides = [s.split("=", 1) for s in sys.argv[3:]]
    for rep in range(reps):
        for name, rest in sides:
            keeld, event = rest.rsplit(":", 1)
            r = run(kb, keeld, "probe_setcpu3:" + event)
            print(json.dumps({"side": name, "rep": rep, "ops_per_s": r["ops_per_s"],
                              "server_cpu_us_per_op": r["server_cpu_us_per_op"],
                              "clock_reads_per_op": round(r["clock_reads_per_op"], 3)}),
                  flush=True)


if __name__ == "__main__":
    main()
