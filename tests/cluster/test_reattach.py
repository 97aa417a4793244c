"""A client that reattaches its session at a server lagging behind the
session's creation keeps its session (keel and ZooKeeper alike): the server
first applies what the leader had committed (a sync marker through the log,
as ZooKeeper revalidates a reattach at the leader), then looks the session up
again. Without that, a follower that had not applied the createSession yet
answered "session expired" for a live session.

Node 3 is paused (SIGSTOP) while a client on node 1 opens a session and
writes; right after SIGCONT the same session reattaches at node 3, whose
pipeline then still has the backlog to apply. Repeated a few times: the lag
window is short, the outcome must be the same every time.
"""
import os
import sys
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zkcluster import Cluster  # noqa: E402

from kazoo.client import KazooClient  # noqa: E402


class Reattach(unittest.TestCase):
    def test_reattach_at_a_lagging_follower(self):
        with Cluster.create(size=3) as cl:
            cl.wait_ready()
            root = "/reattach-%s" % uuid.uuid4().hex[:8]
            for rnd in range(5):
                lag = 2
                cl.pause(lag)
                try:
                    a = KazooClient(hosts=cl.connect_string([0]), timeout=10.0)
                    a.start(timeout=30)
                    a.ensure_path(root)
                    for i in range(20):
                        a.create("%s/r%d-%d" % (root, rnd, i), b"x")
                    sid, pw = a.client_id
                finally:
                    cl.resume(lag)
                b = KazooClient(hosts=cl.connect_string([lag]), client_id=(sid, pw),
                                timeout=10.0)
                b.start(timeout=30)
                self.assertEqual(b.client_id[0], sid, "round %d: a new session" % rnd)
                b.sync(root)
                self.assertIsNotNone(b.exists("%s/r%d-19" % (root, rnd)))
                b.create("%s/after-%d" % (root, rnd), b"y")  # the session is alive
                b.stop()
                b.close()
                a.stop()
                a.close()
                time.sleep(0.2)


if __name__ == "__main__":
    unittest.main(verbosity=2)
