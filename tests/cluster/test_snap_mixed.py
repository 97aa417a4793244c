"""A level-5 leader sends its snapshot image to a level-6 follower (keel only).

The image's checksum (KEELD_MSG_SNAP, level 6) rides only between level-6
nodes (dataplane/node/README.md, "The image's checksum"). Node 3 claims
level 5 (keel.test.protocolLevel), so the cluster level is 5, and leads
(POST /leader/transfer). A level-6 follower down while node 3 writes ~300 KB
and snapshots keeping 5 entries needs the image when it comes back: node 3,
at level 5, sends the plain chunks. The follower installs them, checked only
by the store stream's CRC at the restore: its log says `(not checked: the
leader sent no sum)`, no install failure is counted
(keel_snapshot_failures_total{stage="install"} 0, /status alike), and it
holds every znode the leader holds. The reverse (a level-6 leader, a level-5
follower) is test_snap_sum.py's step 2.
"""
import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zkcluster import wait_for  # noqa: E402
import test_membership as tm  # noqa: E402  (its helpers; a module: no tests collected)
import test_snap_sum as ss  # noqa: E402  (its helpers, not its test class)
from test_snap_robust import TOKEN, admin, log_of, status  # noqa: E402

from kazoo.client import KazooClient  # noqa: E402


class SnapshotFromLevel5(unittest.TestCase):
    behind = ss.SnapshotSum.behind
    check_same = ss.SnapshotSum.check_same
    installed_unchecked = ss.SnapshotSum.installed_unchecked

    def test_level5_leader_to_level6_follower(self):
        if os.environ.get("KEEL_TEST_TARGET", "keel") != "keel":
            self.skipTest("keel's protocol levels")
        with ss.Level5Node3(3, admin_token=TOKEN) as cl:
            ld = cl.leader()
            if ld != 2:
                code, text = tm.http(cl.nodes[ld].admin_port, "POST", "/leader/transfer",
                                     {"id": 3}, token=TOKEN)
                self.assertEqual(code, 200, text)
                wait_for(lambda: cl.leader() == 2, 30, "node 3 leads")
            leader, victim = 2, 0
            ln, vn = cl.nodes[leader], cl.nodes[victim]
            self.assertEqual(status(ln)["protocol_level"], 5)
            self.assertGreaterEqual(status(vn)["protocol_level"], 6)  # MSG_SNAP from 6 on
            with ss.writer(cl, leader, "/m-") as (zk, root):
                snap = self.behind(cl, zk, leader, victim, root, "a")
                cl.start(victim)
                self.installed_unchecked(
                    cl, victim, snap,
                    "node 1 (level 6) installed snapshot %d from node 3 (level 5)" % snap)
                # the leader still node 3: the image came from the level-5 node
                self.assertEqual(cl.leader(), leader)
                wait_for(lambda: status(vn)["snapshot_index"] >= snap, 10,
                         "node 1's /status showing the image")
                st = status(vn)
                self.assertEqual(st["snapshot_failures"]["install"], 0)
                self.assertIsNone(st["snapshot_last_failure"])
                self.assertEqual(st["cluster_level"], 5)
                self.assertEqual(st["peer_messages_malformed"]["total"], 0)
                want = ss.tree_of(zk, root)
                self.assertEqual(len(want), 15)
                self.check_same(cl, victim, root, want)
                # the follower serves on after it: a write through it commits
                zv = KazooClient(hosts=cl.connect_string([victim]), timeout=10.0)
                zv.start(timeout=30)
                try:
                    zv.create(root + "/after", b"x")
                finally:
                    zv.stop()
                    zv.close()
                zk.sync(root)
                self.assertEqual(zk.get(root + "/after")[0], b"x")
                code, text = admin(vn, "GET", "/metrics", timeout=10)
                self.assertEqual(code, 200, text)
                self.assertTrue(re.search(
                    r'^keel_snapshot_failures_total\{stage="install"\} 0$', text, re.M))


if __name__ == "__main__":
    unittest.main()
