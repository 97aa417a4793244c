"""A leader whose followers have no clients sends its commits to them after
its own replies (pipeline.c, news_first: the commit heartbeat no longer
delays a single client's reply); as soon as a follower shows a client (its
session's create comes as a FORWARD) commits go to the followers first again,
so that a read there right after another client's write was answered sees it
(dataplane/node/README.md, "Followers see commits early").

Each round: a fresh client connects to a follower while the leader sends
after its replies, reads right after writes answered at the leader, and
leaves; the leader's log must show both switches every round, and no read
may miss its write. Wrong (the FORWARD not switching), the first reads of a
round would race the leader's late heartbeat: the reader (this process) is
woken by the reply, often on the leader's CPU, before the leader sends it.
"""
import os
import sys
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zkcluster import KeelCluster, wait_for  # noqa: E402

from kazoo.client import KazooClient  # noqa: E402

ROUNDS = 8
PAIRS = 20
AFTER = "no follower has a client: commits go to peers after replies"
BEFORE = "a follower has a client: commits go to peers before replies"


def client(hosts):
    zk = KazooClient(hosts=hosts, timeout=10.0)
    zk.start(timeout=30)
    return zk


class NewsFirst(unittest.TestCase):
    def test_fresh_follower_client_reads_writes(self):
        with KeelCluster(3) as cl:
            leader = cl.leader()
            self.assertIsNotNone(leader)
            followers = [i for i in range(3) if i != leader]
            ln = cl.nodes[leader]
            zw = client(cl.connect_string([leader]))
            path = "/nf-" + uuid.uuid4().hex[:8]
            zw.create(path, b"")
            stale = []
            try:
                for r in range(ROUNDS):
                    # the leader has heard of no follower client for two ticks
                    wait_for(lambda: cl.tail(ln, 100000).count(AFTER) > r, timeout=20,
                             what="round %d: the leader sending after its replies" % r)
                    zr = client(cl.connect_string([followers[r % 2]]))
                    try:
                        for n in range(PAIRS):
                            v = b"%d-%d" % (r, n)
                            zw.set(path, v)
                            got = zr.get(path)[0]
                            if got != v:
                                stale.append((r, n, v, got))
                    finally:
                        zr.stop()
                        zr.close()
                    self.assertGreater(cl.tail(ln, 100000).count(BEFORE), r,
                                       "round %d: the follower's client did not switch "
                                       "the leader to commits first" % r)
            finally:
                zw.stop()
                zw.close()
            self.assertEqual(stale, [], "reads at a fresh follower client missed writes")


if __name__ == "__main__":
    unittest.main()
