"""review10b scratch: one follower's disk slowed (keel.test.fsyncDelayUs=ARG us), its
client reading right after each write answered at the leader, 3 s; prints the
pairs, the stale reads and the follower's keel_reads_behind delta.
    KEEL_KEELD=build/m/dataplane/node/keeld /usr/bin/python3 bench/results/review10b/lag-reads.py 300000
"""
import os, sys, time, uuid, re
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "tests", "cluster"))
from zkcluster import KeelCluster, wait_for
from kazoo.client import KazooClient
DELAY = int(sys.argv[1])
def behind(cl, i):
    m = re.search(r"keel_reads_behind\t(\d+)", cl.four_letter(i, "mntr"))
    return int(m.group(1)) if m else -1
with KeelCluster(3, admin_token="t") as cl:
    leader = cl.leader()
    f = [i for i in range(3) if i != leader][0]
    zw = KazooClient(hosts=cl.connect_string([leader]), timeout=10.0); zw.start(30)
    zr = KazooClient(hosts=cl.connect_string([f]), timeout=10.0); zr.start(30)
    path = "/lag-" + uuid.uuid4().hex[:6]
    zw.create(path, b"")
    wait_for(lambda: zr.exists(path) is not None, 10, "create seen")
    cl.put_config(f, "keel.test.fsyncDelayUs", DELAY)
    b0 = behind(cl, f)
    stale = 0; n = 0; t0 = time.time()
    while time.time() - t0 < 3:
        v = b"%d" % n
        zw.set(path, v)
        if zr.get(path)[0] != v:
            stale += 1
        n += 1
    print("delay", DELAY, "pairs", n, "stale", stale, "counted behind", behind(cl, f) - b0)
    cl.put_config(f, "keel.test.fsyncDelayUs", 0)
    zr.stop(); zw.stop()
