#!/usr/bin/python3
"""How much fresh memory the in-memory Raft log takes per setData: a fresh
3-node cluster (admin API on), keelbench set-sat for SECONDS, then from each
node's /status and /metrics the log's size (log_bytes, last_index) and the
entry buffers' chunks (keel_entbuf_*), printed per node with bytes per write.

  entbuf-use.py KEELD KEELBENCH [SECONDS]
"""
import json
import os
import subprocess
import sys
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, os.path.join(ROOT, "tests", "cluster"))
os.environ["KEEL_KEELD"] = os.path.abspath(sys.argv[1])
from zkcluster import KeelCluster  # noqa: E402

TOKEN = "cpu10-entbuf"
secs = sys.argv[3] if len(sys.argv) > 3 else "5"


def get(cl, i, path):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (cl.nodes[i].admin_port, path))
    req.add_header("Authorization", "Bearer " + TOKEN)
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.read().decode()


with KeelCluster(3, admin_token=TOKEN) as cl:
    cl.wait_ready()
    pids = ",".join(str(n.proc.pid) for n in cl.nodes)
    kb = subprocess.run([sys.argv[2], "--servers", cl.connect_string(), "--pids", pids,
                         "--workload", "set", "--sessions", "8", "--outstanding", "16",
                         "--duration", secs, "--warmup", "1", "--quiet"],
                        capture_output=True, text=True)
    last = kb.stdout.strip().splitlines()[-1]
    print(last)
    ops = int(last.split("ops=")[1].split()[0])
    for i in range(3):
        st = json.loads(get(cl, i, "/status"))
        m = {}
        for line in get(cl, i, "/metrics").splitlines():
            if line.startswith("keel_entbuf"):
                k, v = line.rsplit(None, 1)
                m[k] = float(v)
        eb = m.get("keel_entbuf_bytes", 0)
        bufs = m.get('keel_entbuf_buffers_total{from="chunk"}', 0)
        print(json.dumps({"node": i, "role": st["role"], "last_index": st["last_index"],
                          "log_bytes": st["log_bytes"], "entbuf_bytes": eb,
                          "entbuf_bufs": bufs, "entbuf": m,
                          "entbuf_bytes_per_log_byte": round(eb / max(1, st["log_bytes"]), 2)}))
