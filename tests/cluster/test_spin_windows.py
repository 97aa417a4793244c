"""keel.spinWindows (dataplane/node/spin.c, pipeline.c spin_plan): with the
most the key turns on (sync: the leader's windows, one follower's next
AppendEntries and its sync of one write on io_uring, polled), one client's
writes in series at the leader are all answered, in order, and every node
holds the last one; the windows were planned on the nodes that should plan
them (the leader's request window, the spinning follower's -- the voter
with the lowest id other than the leader -- sync window, never the other
follower's); PUT /config keel.spinWindows=off stops all spinning at once
(no wait with a window after it), and writes go on. Counts, never times:
whether a wait's event came inside its window depends on the machine, that
the window was planned (keel_spin_waits_total, any result) does not.
"""
import os
import re
import sys
import time
import unittest
import urllib.request
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zkcluster import KeelCluster, wait_for  # noqa: E402

from kazoo.client import KazooClient  # noqa: E402

WRITES = 400


def waits(node):
    """{window: waits that had a window, any result} from node's /metrics."""
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % node.admin_port,
                                timeout=10) as f:
        text = f.read().decode()
    out = {}
    for m in re.finditer(r'^keel_spin_waits_total\{window="(\w+)",result="\w+"\} (\S+)$',
                         text, re.M):
        out[m.group(1)] = out.get(m.group(1), 0) + float(m.group(2))
    return out


class SpinWindows(unittest.TestCase):
    def test_writes_with_spin_then_off(self):
        with KeelCluster(3, extra=["keel.spinWindows=sync"], admin_token="spin") as cl:
            cl.wait_ready()
            leader = cl.leader()
            self.assertIsNotNone(leader)
            ids = {i: cl.nodes[i].id for i in range(3)}
            spinner = min((i for i in range(3) if i != leader), key=lambda i: ids[i])
            other = [i for i in range(3) if i not in (leader, spinner)][0]
            zk = KazooClient(hosts=cl.connect_string([leader]), timeout=10.0)
            zk.start(timeout=30)
            path = "/spin-" + uuid.uuid4().hex[:8]
            try:
                zk.create(path, b"")
                for n in range(WRITES):
                    st = zk.set(path, b"%d" % n)
                    self.assertEqual(st.version, n + 1)
                # the nodes publish their counters every 100 ms
                wait_for(lambda: waits(cl.nodes[leader]).get("request", 0) > 0 and
                         waits(cl.nodes[spinner]).get("sync", 0) > 0, timeout=20,
                         what="spin windows planned at the leader and the spinner")
                self.assertEqual(waits(cl.nodes[other]).get("sync", 0), 0)
                self.assertEqual(waits(cl.nodes[other]).get("append", 0), 0)
                for i in range(3):
                    code, body = cl.put_config(i, "keel.spinWindows", "off")
                    self.assertEqual(code, 200, body)
                time.sleep(0.3)  # what spun before the change is published
                before = [waits(cl.nodes[i]) for i in range(3)]
                for n in range(WRITES, WRITES + 200):
                    self.assertEqual(zk.set(path, b"%d" % n).version, n + 1)
                last = b"%d" % (WRITES + 199)
                for i in range(3):
                    zr = KazooClient(hosts=cl.connect_string([i]), timeout=10.0)
                    zr.start(timeout=30)
                    try:
                        zr.sync(path)
                        self.assertEqual(zr.get(path)[0], last)
                    finally:
                        zr.stop()
                        zr.close()
                time.sleep(0.3)  # one more publication of the counters
                self.assertEqual([waits(cl.nodes[i]) for i in range(3)], before)
            finally:
                zk.stop()
                zk.close()


if __name__ == "__main__":
    unittest.main()
