"""A follower whose install fails at its restore keeps its older image (keel only).

A follower cut off from the leader (the leader drops its frames to it,
dp.test_peer + dp.test_loss_ppm) while the leader writes and takes a
snapshot needs that image. Its disk fails the install's restore
(keel.test.snapshotRestoreFailAfter=1), then the next install's sync
(keel.test.snapshotSyncFailAfter=2). Meanwhile it keeps its old state and
serves reads of it (a client there sees the old children, and /status its
old znode count), and asks for the image again. It is killed in the
back-off after the second failure: on its disk nothing of the new image
(neither snap-<s>.snap nor its .tmp: an image is published only once its
restore held). Restarted while the leader still drops its frames, it starts
from its disk: its older snapshot and log, every write it had acknowledged
(its log up to the same last index, its snapshot the older one, not s;
the entries after that image that its log's commit record says were
committed applied at start, before any leader speaks: more than the
image, never more than it had applied). The
leader's frames let through, the next install succeeds (the test faults
are not kept across a restart) and it then has every znode the leader has
(data and stat compared), including a write acknowledged after.
"""
import os
import re
import sys
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zkcluster import Cluster, wait_for  # noqa: E402
from test_snap_robust import TOKEN, admin, client, installed, log_of, status, tree  # noqa: E402


class RestoreRestart(unittest.TestCase):
    def test_older_image_after_failed_restore(self):
        if os.environ.get("KEEL_TEST_TARGET", "keel") != "keel":
            self.skipTest("keel's snapshot keys")
        with Cluster.create(size=3, admin_token=TOKEN) as cl:
            root = "/o-" + uuid.uuid4().hex[:8]
            leader = cl.leader()
            victim = (leader + 1) % cl.size
            ln, vn = cl.nodes[leader], cl.nodes[victim]
            zk = client(cl, [leader])
            zk.create(root)
            for i in range(cl.size):  # images keep 5 entries: a few writes need one
                self.assertEqual(cl.put_config(i, "keel.test.snapshotKeepEntries", 5)[0], 200)
            for i in range(10):
                zk.create("%s/a%02d" % (root, i), b"%d" % i)
            # an older image of the victim's own under what it has
            code, text = admin(vn, "POST", "/snapshot")
            self.assertEqual(code, 200, text)
            old_snap = int(re.search(r"snapshot at index (\d+)", text).group(1))
            for i in range(5):
                zk.create("%s/b%02d" % (root, i), b"%d" % i)
            old = client(cl, [victim])
            old.sync(root)
            seen = sorted(old.get_children(root))
            self.assertEqual(len(seen), 15)
            # /status is published every 100 ms (and at each admin answer):
            # until a publication of each node made after these writes
            # (status_seq past the one read now) shows every write. Equal
            # indexes alone are not enough: both nodes may still show a
            # publication from before the b writes, and agree on it (ops11's
            # one failure, load ~15: the victim's from its POST /snapshot
            # answer 54 ms earlier, the leader's from its 100 ms timer, both
            # at the a writes' index; `before` then had 5 znodes too few).
            marks = {n.id: status(n)["status_seq"] for n in (vn, ln)}

            def current():
                v, lead = status(vn), status(ln)
                return (v["status_seq"] > marks[vn.id] and lead["status_seq"] > marks[ln.id] and
                        v["applied_index"] == lead["last_index"] == lead["applied_index"] and
                        v)
            before = wait_for(current, 10, "the follower's /status current")
            # every znode the follower's reader saw: the root's 15 children
            # (stale publications gave 5 fewer)
            self.assertEqual(before["znodes"], status(ln)["znodes"], before)
            # cut off: the leader writes on with the third node, then snapshots
            for key, value in (("dp.test_peer", vn.id), ("dp.test_loss_ppm", 1000000)):
                self.assertEqual(cl.put_config(leader, key, value)[0], 200)
            for i in range(20):
                zk.create("%s/c%02d" % (root, i), b"%d" % i)
            code, text = admin(ln, "POST", "/snapshot")
            self.assertEqual(code, 200, text)
            s = int(re.search(r"snapshot at index (\d+)", text).group(1))
            self.assertGreater(s, before["last_index"] + 5)
            self.assertEqual(cl.put_config(victim, "keel.test.snapshotRestoreFailAfter", 1)[0],
                             200)
            self.assertEqual(cl.put_config(victim, "keel.test.snapshotSyncFailAfter", 2)[0], 200)
            # (a third that fails too, should the leader's frames be cut late)
            self.assertEqual(cl.put_config(victim, "keel.test.snapshotLastWriteFailAfter", 3)[0],
                             200)
            self.assertEqual(cl.put_config(leader, "dp.test_loss_ppm", 0)[0], 200)
            vsnap = os.path.join(vn.workdir, "data", "snap-%016x.snap" % s)
            vtmp = os.path.join(vn.workdir, "data", "snap-%016x.tmp" % s)
            wait_for(lambda: "(1 failed in a row)" in log_of(cl, victim), 30,
                     "the follower's first install failed")
            self.assertIn("snapshot %d from the leader: restoring the store from %s failed: "
                          "Input/output error; the node keeps its state" % (s, vtmp),
                          log_of(cl, victim))
            # it keeps its old state and serves reads of it
            self.assertEqual(sorted(old.get_children(root)), seen)
            self.assertEqual(old.get("%s/b04" % root)[0], b"4")
            st = status(vn)
            self.assertEqual(st["znodes"], before["znodes"])
            self.assertEqual(st["applied_index"], before["applied_index"])
            self.assertLess(st["snapshot_index"], s)
            # and asks again: the second install fails at its sync; in the
            # 1 s back-off that follows the leader drops its frames again
            # (so no third install) and the follower is killed
            wait_for(lambda: "(2 failed in a row)" in log_of(cl, victim), 30,
                     "the follower's second install failed")
            self.assertEqual(cl.put_config(leader, "dp.test_loss_ppm", 1000000)[0], 200)
            self.assertIn("the image is asked for again now (1 failed in a row)",
                          log_of(cl, victim))
            self.assertNotIn("installed snapshot %d " % s, log_of(cl, victim))
            cl.kill(victim)
            old.stop()
            old.close()
            # nothing of the new image on its disk
            self.assertFalse(os.path.exists(vsnap))
            self.assertFalse(os.path.exists(vtmp))
            snaps = [int(m.group(1), 16) for m in
                     (re.match(r"snap-([0-9a-f]{16})\.(snap|tmp)$", n)
                      for n in os.listdir(os.path.join(vn.workdir, "data"))) if m]
            self.assertIn(old_snap, snaps)
            self.assertTrue(all(i < s for i in snaps), snaps)
            # restarted with the leader's frames still dropped: what is on its disk
            mark = len(log_of(cl, victim))
            cl.start(victim)
            # (/status is up once the admin server answers; its first
            # publication may lag the start by 100 ms)
            wait_for(lambda: status(vn)["last_index"] > 0, 30,
                     "the restarted follower's /status")
            st = status(vn)
            # its log holds every entry it had (acknowledged writes
            # included); its store is its own older image, not s, and the
            # entries after it up to its log's commit record (the b writes
            # came after the image) applied with no leader (log/README.md)
            self.assertEqual(st["last_index"], before["last_index"], st)
            self.assertGreaterEqual(st["snapshot_index"], old_snap, st)
            self.assertLess(st["snapshot_index"], s, st)
            wait_for(lambda: status(vn)["applied_index"] > status(vn)["snapshot_index"], 30,
                     "the restarted follower applied its recovered commit")
            st = status(vn)
            self.assertLessEqual(st["applied_index"], before["applied_index"], st)
            # let through: the next install holds (no fault after a restart)
            self.assertEqual(cl.put_config(leader, "dp.test_loss_ppm", 0)[0], 200)
            wait_for(lambda: any(i >= s for i in installed(cl, victim)), 60,
                     "the restarted follower installed snapshot %d" % s)
            self.assertNotIn("failed in a row", log_of(cl, victim)[mark:])
            zk.create("%s/after" % root, b"after")
            only = client(cl, [victim])
            only.sync(root)
            theirs = tree(only, root)
            self.assertEqual(len(theirs), 36)
            self.assertEqual(theirs["after"][0], b"after")
            self.assertEqual(theirs, tree(zk, root), "every znode the same at both")
            wait_for(lambda: status(vn)["znodes"] == status(ln)["znodes"], 10,
                     "the same znode count on both /status")
            for c in (only, zk):
                c.stop()
                c.close()
            self.assertTrue(ln.running and vn.running)


if __name__ == "__main__":
    unittest.main()
