"""A new cluster numbers sequential nodes by ZooKeeper's rule from its first write.

A new cluster starts at protocol level 2; its leader raises the level (to the newest, 5 or later,
ZooKeeper's sequential numbering) once it has heard every member, about a
TOUCH period after the first election. A write that reached the log before
that level item was numbered by the old rule (the built-in nodes counted as
creates: the first sequential child of / was /s-0000000002, ZooKeeper's is
/s-0000000000). Now the leader of a cluster that has applied no write yet
holds the writes until the level is decided (dataplane/node/README.md,
"Sequential numbering"): the first sequential create, sent the moment the
cluster serves, gets ZooKeeper's name on every node.

tickTime=2000 makes the window wide (TOUCH every second), so the create
lands before the level item unless the leader holds it.

With a member down the wait is bounded (2 ticks): the first write commits
on the two that are up, by the old rule (the cluster cannot rise above the
level of a member it has not heard), and the level rises once the third is up.
"""
import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zkcluster import Cluster, KeelCluster, wait_for  # noqa: E402

from kazoo.client import KazooClient  # noqa: E402


def log_of(cl, i):
    with open(os.path.join(cl.nodes[i].workdir, "out.log"), errors="replace") as f:
        return f.read()


def client(cl, nodes):
    kz = KazooClient(hosts=cl.connect_string(nodes), timeout=10.0)
    kz.start(timeout=30)
    return kz


class FreshClusterNumbering(unittest.TestCase):
    def test_first_sequential_create(self):
        keel = os.environ.get("KEEL_TEST_TARGET", "keel") == "keel"
        with Cluster.create(size=3, tick_ms=2000) as cl:
            lead = cl.leader()
            self.assertIsNotNone(lead)
            kz = client(cl, [lead])
            try:
                first = kz.create("/s-", b"", sequence=True)
                second = kz.create("/s-", b"", sequence=True)
                if keel:
                    # the leader's first /zookeeper/config (written after
                    # the level item too): its version line is its zxid
                    wait_for(lambda: b"version=" in kz.get("/zookeeper/config")[0],
                             timeout=20, what="/zookeeper/config written")
                    data, st = kz.get("/zookeeper/config")
                    ver = re.search(rb"version=([0-9a-f]+)", data).group(1)
                    self.assertEqual(int(ver, 16), st.mzxid, data)
            finally:
                kz.stop()
                kz.close()
            self.assertEqual((first, second), ("/s-0000000000", "/s-0000000001"))
            # every replica applied the same names
            for i in range(cl.size):
                kz = client(cl, [i])
                try:
                    kz.sync("/")
                    kids = sorted(c for c in kz.get_children("/") if c.startswith("s-"))
                finally:
                    kz.stop()
                    kz.close()
                self.assertEqual(kids, ["s-0000000000", "s-0000000001"], "node %d" % (i + 1))
            if keel:
                text = log_of(cl, lead)
                self.assertRegex(text, r"sequential numbering as ZooKeeper's from here")
                self.assertTrue(re.search(r"cluster protocol level 2 -> [0-9]+ at index", text),
                                text[-2000:])

    def test_member_down(self):
        """A new cluster with a member down: the wait is bounded (2 ticks),
        the writes go on by the old rule, and the level rises once the
        member is up."""
        if os.environ.get("KEEL_TEST_TARGET", "keel") != "keel":
            self.skipTest("keel's protocol levels")
        with KeelCluster(3, initial=2) as cl:
            lead = cl.leader()
            kz = client(cl, [lead])
            try:
                # 2 of 3 serve: the write commits, numbered by the old rule
                self.assertEqual(kz.create("/s-", b"", sequence=True), "/s-0000000001")
                text = log_of(cl, lead)
                self.assertNotIn("cluster protocol level 2 ->", text)
                cl.start(2)
                wait_for(lambda: re.search(r"cluster protocol level 2 -> [0-9]+ at index", log_of(cl, lead)),
                         timeout=30, what="the level raised once node 3 is up")
                self.assertEqual(kz.create("/t/s-", b"", sequence=True, makepath=True),
                                 "/t/s-0000000000")
            finally:
                kz.stop()
                kz.close()


if __name__ == "__main__":
    unittest.main()
