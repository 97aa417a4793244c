# RSS of each keeld after ~61 MiB of setData (4000-byte values), a snapshot on each node, then
# after 3 s and 13 s idle (keeld_entbuf_trim unmaps kept chunks after 10 s).
import os, sys, time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "tests", "cluster"))
from zkcluster import KeelCluster
from kazoo.client import KazooClient

def rss(pid):
    with open("/proc/%d/status" % pid) as f:
        for l in f:
            if l.startswith("VmRSS"):
                return int(l.split()[1]) // 1024
def hp(pid):
    tot = 0
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for l in f:
            if l.startswith("AnonHugePages"):
                tot += int(l.split()[1])
    return tot // 1024

import urllib.request
def snap(c, i):
    req = urllib.request.Request("http://127.0.0.1:%d/snapshot" % c.nodes[i].admin_port,
        method="POST", data=b"", headers={"Authorization": "Bearer t"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.read().decode().strip()
with KeelCluster(3, admin_token="t", extra=["keel.snapshotThresholdBytes=67108864"]) as c:
    zk = KazooClient(hosts=c.connect_string()); zk.start()
    zk.create("/r", b"")
    val = b"x" * 4000
    t0 = time.time()
    for rnd in range(16):
        fs = [zk.set_async("/r", val) for _ in range(1000)]
        for f in fs: f.get()
    pids = [n.proc.pid for n in c.nodes]
    print("wrote %.0f MiB in %.1f s" % (16000 * 4000 / 2**20, time.time() - t0))
    print("RSS before POST /snapshot", [rss(p) for p in pids])
    for i in range(3):
        print(snap(c, i))
    for label, wait in (("just after", 0), ("idle 3 s", 3), ("idle 13 s", 10)):
        time.sleep(wait)
        print("%-10s RSS MiB %s  AnonHugePages MiB %s" % (label, [rss(p) for p in pids], [hp(p) for p in pids]))
    zk.stop()
