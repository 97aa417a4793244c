"""A leader whose followers have no clients holds its commit heartbeats
until its next message to the follower or the next tick (pipeline.c,
news_first: at one client they cost a wake-up and a pipeline turn per
follower per write, and preempted the leader before its reply); as soon as
a follower shows a client (its session's create comes as a FORWARD) commits
go to the followers at once again, before the replies, so that a read there
right after another client's write was answered sees it
(dataplane/node/README.md, "Followers see commits early").

Each round: a fresh client connects to a follower while the leader holds
its heartbeats, reads right after writes answered at the leader, and
leaves; the leader's log must show both switches every round, and no read
may miss its write. Wrong (the FORWARD not switching), the first reads of a
round would find the follower up to a tick behind.
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
AFTER = "no follower has a client: commit heartbeats held (next message or tick)"
BEFORE = "a follower has a client: commits go to followers at once"


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
                             what="round %d: the leader holding its heartbeats" % r)
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
                                       "the leader to commits at once" % r)
            finally:
                zw.stop()
                zw.close()
            self.assertEqual(stale, [], "reads at a fresh follower client missed writes")


if __name__ == "__main__":
    unittest.main()
