"""keel snapshots (keel only: the keys are keel's): with a small
keel.snapshotThresholdBytes every node snapshots; a follower that was down
while the leader compacted its log past it is caught up by InstallSnapshot;
a restart of every node recovers from snapshot + log.
"""
import glob
import os
import sys
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zkcluster import Cluster, wait_for  # noqa: E402

from kazoo.client import KazooClient  # noqa: E402


def client(cl, nodes=None):
    c = KazooClient(hosts=cl.connect_string(nodes), timeout=10.0)
    c.start(timeout=30)
    return c


def log_of(cl, i):
    with open(os.path.join(cl.nodes[i].workdir, "out.log"), "rb") as f:
        return f.read().decode(errors="replace")


class Snapshots(unittest.TestCase):
    def test_snapshot_install_and_restart(self):
        if os.environ.get("KEEL_TEST_TARGET", "keel") != "keel":
            self.skipTest("keel's snapshot keys")
        with Cluster.create(size=3, extra=["keel.snapshotThresholdBytes=65536"]) as cl:
            root = "/s-" + uuid.uuid4().hex[:8]
            zk = client(cl)
            zk.create(root)
            big = b"x" * 1024
            for i in range(300):
                zk.create("%s/big%03d" % (root, i), big)
            # every node passed the threshold several times: snapshot files
            wait_for(lambda: all(glob.glob(os.path.join(n.workdir, "data", "*.snap"))
                                 for n in cl.nodes), 30, "a snapshot on every node")

            # a follower down while the log moves far past what the leader keeps
            leader = cl.leader()
            victim = (leader + 1) % cl.size
            # the writer must not be connected to the node about to be killed:
            # its in-flight create would end in ConnectionLoss (ZooKeeper too)
            zk.stop()
            zk.close()
            zk = client(cl, [n for n in range(cl.size) if n != victim])
            cl.kill(victim)
            for i in range(1100):
                zk.create("%s/small%04d" % (root, i), b"%d" % i)
            cl.start(victim)
            only = client(cl, [victim])
            wait_for(lambda: len(only.get_children(root)) == 1400, 60,
                     "the restarted follower caught up")
            self.assertEqual(only.get("%s/big123" % root)[0], big)
            self.assertEqual(only.get("%s/small1099" % root)[0], b"1099")
            self.assertIn("installed snapshot", log_of(cl, victim))
            only.stop()
            only.close()
            zk.stop()
            zk.close()

            # every node restarts from its snapshot + log
            for i in range(cl.size):
                cl.stop(i)
            for i in range(cl.size):
                cl.start(i, wait=False)
            for i in range(cl.size):
                wait_for(lambda: cl.mode(i) is not None, 60, "node %d back" % (i + 1))
            cl.wait_ready()
            for i in range(cl.size):
                c = client(cl, [i])
                c.sync(root)
                self.assertEqual(len(c.get_children(root)), 1400, "node %d" % (i + 1))
                self.assertEqual(c.get("%s/small0500" % root)[0], b"500")
                c.stop()
                c.close()
                self.assertIn("restored", log_of(cl, i))
            # writes go on after the restart
            c = client(cl)
            c.create("%s/after" % root, b"a")
            self.assertEqual(c.get("%s/after" % root)[0], b"a")
            c.stop()
            c.close()


if __name__ == "__main__":
    unittest.main()
