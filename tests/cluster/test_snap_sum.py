"""The whole image's checksum on a snapshot transfer (keel only; level 6).

A leader sends a follower of protocol level 6 each InstallSnapshot chunk
with the whole image's length and CRC32C ahead of it (KEELD_MSG_SNAP); the
follower compares the CRC32C of what it received with it before it
installs. Node 3 claims level 5 (keel.test.protocolLevel), so the cluster
level stays 5 and the leader sends node 3 the plain chunks a level-5 keeld
reads.

1. keel.test.snapshotCorruptAfter=2 at the leader flips a byte of the 2nd
   chunk it reads of its image, before the frame is made (the frame's CRC
   covers the flipped byte, as it would a byte the leader's disk or page
   cache changed after the write). The level-6 follower refuses the image:
   counted as keel_snapshot_failures_total{stage="install"}, /status's last
   failure says why, logged once; the leader sends the image again and the
   follower installs it (checked), with every znode.
2. Node 3 (level 5) gets an image without a sum and installs it as before.
3. An image whose term is older than the leader's (leadership moved to node
   3 and back after the snapshot) is still sent and checked with its sum.
"""
import contextlib
import os
import re
import sys
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zkcluster import KeelCluster, wait_for  # noqa: E402
import test_membership as tm  # noqa: E402  (its helpers; a module: no tests collected)
from test_snap_robust import TOKEN, admin, log_of, snapshot_failures, status  # noqa: E402

from kazoo.client import KazooClient  # noqa: E402



class Level5Node3(KeelCluster):
    def configure(self, n):
        super().configure(n)
        if n.id == 3:
            with open(os.path.join(n.workdir, "zoo.cfg"), "a") as f:
                f.write("keel.test.protocolLevel=5\n")


def install_failures(node):
    return snapshot_failures(node, "install")


def tree_of(zk, root):
    return {n: zk.get("%s/%s" % (root, n))[0] for n in zk.get_children(root)}


@contextlib.contextmanager
def writer(cl, leader, prefix):
    """The leader snapshots keeping 5 entries (a few writes need an image);
    a client of it and a fresh root under prefix, (zk, root)."""
    code, text = cl.put_config(leader, "keel.test.snapshotKeepEntries", 5)
    assert code == 200, text
    zk = KazooClient(hosts=cl.connect_string([leader]), timeout=10.0)
    zk.start(timeout=30)
    try:
        root = prefix + uuid.uuid4().hex[:8]
        zk.create(root)
        yield zk, root
    finally:
        zk.stop()
        zk.close()


class SnapshotSum(unittest.TestCase):
    def installed_unchecked(self, cl, i, snap, what):
        """Node i installed snap from a leader that sent no sum (a level-5
        end), with no install failure counted."""
        wait_for(lambda: "installed snapshot %d " % snap in log_of(cl, i), 60, what)
        self.assertRegex(log_of(cl, i), r"installed snapshot %d \(term \d+, \d+ bytes\) "
                         r"from the leader \(not checked: the leader sent no sum\)" % snap)
        self.assertEqual(install_failures(cl.nodes[i]), 0)

    def behind(self, cl, zk, leader, victim, root, tag):
        """victim down while the leader writes ~300 KB (5 chunks of image)
        and snapshots keeping 5 entries: the victim needs the image."""
        cl.kill(victim)
        for i in range(15):
            zk.create("%s/%s%02d" % (root, tag, i), os.urandom(20000))
        code, text = admin(cl.nodes[leader], "POST", "/snapshot")
        self.assertEqual(code, 200, text)
        return int(re.search(r"snapshot at index (\d+)", text).group(1))

    def check_same(self, cl, victim, root, want):
        zv = KazooClient(hosts=cl.connect_string([victim]), timeout=10.0)
        zv.start(timeout=30)
        try:
            zv.sync(root)
            got = {n: zv.get("%s/%s" % (root, n))[0] for n in zv.get_children(root)}
            self.assertEqual(got, want)
        finally:
            zv.stop()
            zv.close()

    def test_image_checksum(self):
        if os.environ.get("KEEL_TEST_TARGET", "keel") != "keel":
            self.skipTest("keel's snapshot keys")
        with Level5Node3(3, admin_token=TOKEN) as cl:
            leader = cl.leader()
            if leader == 2:  # node 3 (level 5) must follow for step 2
                cl.kill(2)
                wait_for(lambda: cl.leader() not in (None, 2), 30, "another leader")
                cl.start(2)
                leader = cl.leader()
            victim = 1 if leader == 0 else 0
            ln = cl.nodes[leader]
            with writer(cl, leader, "/s-") as (zk, root):
                self.assertEqual(install_failures(cl.nodes[victim]), 0)

                # 1. A byte flipped at the sender: refused, counted, sent again.
                s1 = self.behind(cl, zk, leader, victim, root, "a")
                self.assertEqual(
                    cl.put_config(leader, "keel.test.snapshotCorruptAfter", 2)[0], 200)
                cl.start(victim)
                wait_for(lambda: "installed snapshot %d " % s1 in log_of(cl, victim), 60,
                         "the follower installed snapshot %d" % s1)
                self.assertIn("test: keel.test.snapshotCorruptAfter: a byte flipped",
                              log_of(cl, leader))
                vlog = log_of(cl, victim)
                refused = re.findall(r"snapshot %d from the leader: checking the image "
                                     r"\(CRC32C ([0-9a-f]{8}) of (\d+) bytes received, the "
                                     r"leader's image ([0-9a-f]{8}) of (\d+) bytes\) of \S+"
                                     r"\.tmp failed" % s1, vlog)
                self.assertEqual(len(refused), 1, vlog[-3000:])
                got, n1, want, n2 = refused[0]
                self.assertNotEqual(got, want)
                self.assertEqual(n1, n2)
                self.assertRegex(vlog, r"installed snapshot %d \(term \d+, %s bytes\) from the "
                                 r"leader \(CRC32C %s checked\)" % (s1, n2, want))
                vn = cl.nodes[victim]
                # the refused image's .tmp was removed (and the good one published)
                tmps = [f for _, _, fs in os.walk(vn.workdir) for f in fs
                        if f.startswith("snap-") and f.endswith(".tmp")]
                self.assertEqual(tmps, [])
                self.assertEqual(install_failures(vn), 1)
                # /status is the pipeline's last published view: a bounded wait
                wait_for(lambda: status(vn)["snapshot_failures"]["install"] == 1, 10,
                         "/status shows the refused install")
                st = status(vn)
                self.assertEqual(st["snapshot_failures"]["install"], 1)
                self.assertEqual(st["snapshot_last_failure"]["stage"], "install")
                self.assertIn("CRC32C", st["snapshot_last_failure"]["reason"])
                want_tree = tree_of(zk, root)
                self.assertEqual(len(want_tree), 15)
                self.check_same(cl, victim, root, want_tree)

                # 2. The level-5 follower: plain chunks, no sum, installed as before.
                s2 = self.behind(cl, zk, leader, 2, root, "b")
                cl.start(2)
                self.installed_unchecked(cl, 2, s2, "node 3 installed snapshot %d" % s2)
                self.assertEqual(status(ln)["cluster_level"], 5)
                want_tree = tree_of(zk, root)
                self.assertEqual(len(want_tree), 30)
                self.check_same(cl, 2, root, want_tree)
                # 3. An image of an older term than the leader's: leadership
                #    to node 3 and back after the snapshot, so the chunks go in
                #    a later term than the image's. Still checked (before, the
                #    follower looked the sum up by the message's term, not the
                #    image's, and installed such images unchecked -- the case
                #    of a leader change, where a splice is most likely).
                s3 = self.behind(cl, zk, leader, victim, root, "c")
                for frm, to in ((leader, 2), (2, leader)):
                    code, text = tm.http(cl.nodes[frm].admin_port, "POST", "/leader/transfer",
                                         {"id": to + 1}, token=TOKEN)
                    self.assertEqual(code, 200, text)
                    wait_for(lambda: cl.leader() == to, 30, "node %d leads" % (to + 1))
                cl.start(victim)
                wait_for(lambda: "installed snapshot %d " % s3 in log_of(cl, victim), 60,
                         "the follower installed snapshot %d" % s3)
                m = re.search(r"installed snapshot %d \(term (\d+), \d+ bytes\) from the "
                              r"leader \(([^)]*)\)" % s3, log_of(cl, victim))
                self.assertGreater(status(ln)["term"], int(m.group(1)))
                self.assertRegex(m.group(2), r"^CRC32C [0-9a-f]{8} checked$")
                self.assertEqual(install_failures(cl.nodes[victim]), 0)  # restarted since step 1
                want_tree = tree_of(zk, root)
                self.assertEqual(len(want_tree), 45)
                self.check_same(cl, victim, root, want_tree)

                # The transport's probes ran all along (kernel UDP, dp.mtu=auto on
                # loopback): no black hole seen, no peer limit below lo's MTU.
                for n in cl.nodes:
                    code, text = admin(n, "GET", "/metrics", timeout=10)
                    self.assertEqual(code, 200, text)
                    for ev in ("blackhole", "blackhole_cleared", "peer_limit"):
                        self.assertIn('keel_transport_mtu_path_total{event="%s"} 0\n' % ev,
                                      text)


if __name__ == "__main__":
    unittest.main()
