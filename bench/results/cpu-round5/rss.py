#!/usr/bin/python3
# RSS of node 1 and its /status log_bytes every 2 s of a 12 s set-sat run: rss.py KEELD [key=value ...]
import os, subprocess, sys, time, json, urllib.request
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, ROOT + "/tests/cluster")
os.environ["KEEL_KEELD"] = sys.argv[1]
from zkcluster import KeelCluster
KB = ROOT + "/build/release/bench/keelbench/keelbench"
with KeelCluster(3, admin_token="t", extra=sys.argv[2:]) as cl:
    pids = ",".join(str(n.proc.pid) for n in cl.nodes)
    kb = subprocess.Popen([KB, "--servers", cl.connect_string(), "--pids", pids, "--workload", "set",
                           "--sessions", "8", "--outstanding", "16", "--duration", "12",
                           "--warmup", "1", "--quiet"], stdout=subprocess.PIPE, text=True)
    n = cl.nodes[0]
    for i in range(6):
        time.sleep(2)
        rss = [l for l in open("/proc/%d/status" % n.proc.pid) if l.startswith("VmRSS")][0].split()[1]
        st = json.loads(urllib.request.urlopen("http://127.0.0.1:%d/status" % n.admin_port).read())
        print("t=%d rss_kb=%s log_bytes=%d applied=%d" % (2*i+2, rss, st["log_bytes"], st["applied_index"]))
    print(kb.communicate()[0].strip().splitlines()[-1])
