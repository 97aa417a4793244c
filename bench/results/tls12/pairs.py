#!/usr/bin/python3
"""Per-repetition pairs from a bench-compare --tls results.jsonl: for each
workload and repetition, keel TLS over keel plaintext (server CPU per op, p50,
ops/s) and keel TLS against ZooKeeper TLS (ZooKeeper's figure over keel's for
CPU and p50, keel's over ZooKeeper's for ops/s: >1 = keel better).

usage: pairs.py RESULTS.jsonl"""
import json
import statistics
import sys

runs = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r.get("label") in ("keel", "keel-plain", "zk", "zk-plain"):
        wl = next(k for k, v in {"set-1": ["set", "1", "1"], "set-sat": ["set", "8", "16"],
                                 "get-sat": ["get", "8", "16"],
                                 "connect-1": ["connect", "1", "1"]}.items()
                  if [r["workload"], str(r["sessions"]), str(r["outstanding"])] == v)
        runs.setdefault((wl, r["label"]), []).append(r)
for wl in ("set-1", "set-sat", "get-sat", "connect-1"):
    k, kp, z, zp = (runs.get((wl, s), []) for s in ("keel", "keel-plain", "zk", "zk-plain"))
    n = min(len(k), len(kp), len(z), len(zp))
    if not n:
        continue
    rows = {"keel tls/plain cpu": [k[i]["server_cpu_us_per_op"] / kp[i]["server_cpu_us_per_op"]
                                   for i in range(n)],
            "keel tls/plain p50": [k[i]["p50_us"] / kp[i]["p50_us"] for i in range(n)],
            "keel tls/plain ops": [k[i]["ops_per_s"] / kp[i]["ops_per_s"] for i in range(n)],
            "zk tls/plain cpu": [z[i]["server_cpu_us_per_op"] / zp[i]["server_cpu_us_per_op"]
                                 for i in range(n)],
            "zk tls/plain ops": [z[i]["ops_per_s"] / zp[i]["ops_per_s"] for i in range(n)],
            "zk/keel tls cpu": [z[i]["server_cpu_us_per_op"] / k[i]["server_cpu_us_per_op"]
                                for i in range(n)],
            "zk/keel tls p50": [z[i]["p50_us"] / k[i]["p50_us"] for i in range(n)],
            "keel/zk tls ops": [k[i]["ops_per_s"] / z[i]["ops_per_s"] for i in range(n)],
            "keel cpu us (tls, plain)": [(k[i]["server_cpu_us_per_op"],
                                          kp[i]["server_cpu_us_per_op"]) for i in range(n)]}
    for name, v in rows.items():
        if isinstance(v[0], tuple):
            print(f"{wl:9} {name:26} {v}")
        else:
            print(f"{wl:9} {name:26} reps {[round(x, 2) for x in v]} "
                  f"median {statistics.median(v):.2f}")
