"""A leader whose snapshot image cannot be read keeps serving (keel only).

The image a leader sends to a follower too far behind is read from the
durable snapshot file chunk by chunk (pread). It used to be a read-only
mapping, where a page the disk cannot read (EIO) or a file truncated by
someone else was a SIGBUS that stopped the leader. Here:

0. a snapshot that cannot be taken (over keel.test.snapshotMaxBytes):
   keel_snapshot_failures_total{stage="take"} and /status;
1. a read that fails once (keel.test.snapshotReadFailAfter=1: the next chunk
   read fails with EIO, as the disk would): counted in
   keel_snapshot_failures_total{stage="send"}, shown as /status's
   snapshot_last_failure, logged with the file's path; Raft sends the chunk
   again and the follower installs that same image;
2. the image truncated under the running, idle leader: reads of it fail
   (counted, logged once), and without any write the leader takes a new
   snapshot at the same index that replaces the image (the same bytes as
   the file before it was cut); the follower installs it;
3. a follower cut off from the leader (the leader drops its frames to it,
   dp.test_loss_ppm) needs the next image, and its disk fails it at every
   stage (EIO, injected): a chunk in the middle
   (keel.test.snapshotWriteFailAfter=2: the transfer starts again from the
   first chunk), then the last chunk's write
   (keel.test.snapshotLastWriteFailAfter), the final sync
   (keel.test.snapshotSyncFailAfter) and the restore
   (keel.test.snapshotRestoreFailAfter) of three installs in a row. Each is
   counted as stage "install" and logged with the file; the follower stays
   up, serves its old state meanwhile, installs on the fourth try and then
   has every znode the leader has (data and stat compared).
keelctl status prints the counts and the last failure.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zkcluster import Cluster, wait_for  # noqa: E402
import test_membership as tm  # noqa: E402  (its helpers; a module: no tests collected)

from kazoo.client import KazooClient  # noqa: E402

TOKEN = "snaprobust"


def client(cl, nodes=None):
    c = KazooClient(hosts=cl.connect_string(nodes), timeout=10.0)
    c.start(timeout=30)
    return c


def log_of(cl, i):
    with open(os.path.join(cl.nodes[i].workdir, "out.log"), "rb") as f:
        return f.read().decode(errors="replace")


def admin(node, method, path, timeout=60):
    return tm.http(node.admin_port, method, path, token=TOKEN, timeout=timeout)


def status(node):
    code, body = admin(node, "GET", "/status", timeout=10)
    assert code == 200, body
    return json.loads(body)


def snapshot_failures(node, stage):
    """keel_snapshot_failures_total{stage=STAGE} from /metrics."""
    code, text = admin(node, "GET", "/metrics", timeout=10)
    assert code == 200, text
    m = re.search(r'^keel_snapshot_failures_total\{stage="%s"\} (\d+)' % stage, text, re.M)
    assert m, "no %s failure series in /metrics" % stage
    return int(m.group(1))


def send_failures(node):
    return snapshot_failures(node, "send")


def installed(cl, i):
    return [int(x) for x in re.findall(r"installed snapshot (\d+) ", log_of(cl, i))]


def payload(path):
    """A snapshot file without its header (which carries the membership)."""
    with open(path, "rb") as f:
        b = f.read()
    memb = int.from_bytes(b[12:16], "little")
    return b[64 + memb:]


def tree(zk, root):
    """Every znode under root: path -> (data, stat without the local fields)."""
    names = zk.get_children(root)
    asyncs = [(n, zk.get_async("%s/%s" % (root, n))) for n in names]
    out = {}
    for n, a in asyncs:
        data, st = a.get(timeout=30)
        out[n] = (data, st.czxid, st.mzxid, st.ctime, st.mtime, st.version, st.cversion,
                  st.aversion, st.ephemeralOwner, st.dataLength, st.numChildren, st.pzxid)
    return out


class SnapshotReadFailures(unittest.TestCase):
    def fall_behind(self, cl, zk, leader, victim, root, tag):
        """victim down while the leader's log moves past the 1000 entries a
        snapshot keeps (one create per entry), then a snapshot: the victim
        needs the image. Returns its index."""
        cl.kill(victim)
        for i in range(1050):
            zk.create("%s/%s%04d" % (root, tag, i), b"%d" % i)
        code, text = admin(cl.nodes[leader], "POST", "/snapshot")
        self.assertEqual(code, 200, text)
        return int(re.search(r"snapshot at index (\d+)", text).group(1))

    def test_unreadable_image(self):
        if os.environ.get("KEEL_TEST_TARGET", "keel") != "keel":
            self.skipTest("keel's snapshot keys")
        with Cluster.create(size=3, admin_token=TOKEN) as cl:
            root = "/r-" + uuid.uuid4().hex[:8]
            leader = cl.leader()
            victim = (leader + 1) % cl.size
            ln = cl.nodes[leader]
            # the writer must not be connected to the node about to be killed
            zk = client(cl, [leader])
            zk.create(root)
            self.assertEqual(send_failures(ln), 0)
            self.assertIsNone(status(ln)["snapshot_last_failure"])

            # 0. taking a snapshot fails (an image over keel.test.snapshotMaxBytes,
            # as a full disk would fail it): counted as stage "take"; the
            # threshold's automatic ones back off (1 s, then 2 s, ...) instead
            # of starting again every turn; POST /snapshot is not held back.
            self.assertEqual(cl.put_config(leader, "keel.test.snapshotMaxBytes", 1000)[0], 200)
            self.assertEqual(cl.put_config(leader, "keel.snapshotThresholdBytes", 65536)[0], 200)
            for i in range(20):  # past the threshold
                zk.create("%s/x%02d" % (root, i), b"x" * 4000)
            wait_for(lambda: status(ln)["snapshot_failures"]["take"] >= 2, 20,
                     "two automatic snapshots failed")
            log = log_of(cl, leader)
            self.assertRegex(log, r"failed \(1 failed so far\): .*; the next automatic one "
                             r"in 1 s at the earliest")
            self.assertRegex(log, r"failed \(2 failed so far\): .*; the next automatic one "
                             r"in 2 s at the earliest")
            took = status(ln)["snapshot_failures"]["take"]
            code, text = admin(ln, "POST", "/snapshot")
            self.assertNotEqual(code, 200, text)
            self.assertEqual(cl.put_config(leader, "keel.test.snapshotMaxBytes", 0)[0], 200)
            code, text = admin(ln, "DELETE", "/config/keel.snapshotThresholdBytes")
            self.assertEqual(code, 200, text)
            wait_for(lambda: status(ln)["snapshot_failures"]["take"] > took, 10,
                     "/status shows the failed POST /snapshot")
            takes = status(ln)["snapshot_failures"]["take"]
            last = status(ln)["snapshot_last_failure"]
            self.assertEqual(last["stage"], "take")
            self.assertIn("keel.test.snapshotMaxBytes", last["reason"])
            code, text = admin(ln, "GET", "/metrics", timeout=10)
            self.assertIn('keel_snapshot_failures_total{stage="take"} %d\n' % takes, text)

            # 1. one read fails with EIO; Raft sends the chunk again.
            s1 = self.fall_behind(cl, zk, leader, victim, root, "a")
            code, text = cl.put_config(leader, "keel.test.snapshotReadFailAfter", 1)
            self.assertEqual(code, 200, text)
            cl.start(victim)
            # (at s1, or at a newer index if the leader's next write came first)
            wait_for(lambda: any(i >= s1 for i in installed(cl, victim)), 60,
                     "the follower installed snapshot %d" % s1)
            self.assertEqual(send_failures(ln), 1)
            # /status is published every 100 ms
            wait_for(lambda: status(ln)["snapshot_failures"]["send"] == 1, 10,
                     "/status shows the failure")
            st = status(ln)
            self.assertEqual(st["snapshot_failures"], {"take": takes, "send": 1, "install": 0})
            last = st["snapshot_last_failure"]
            snap = os.path.join(ln.workdir, "data", "snap-%016x.snap" % s1)
            self.assertEqual(last["stage"], "send")
            self.assertIn(snap, last["reason"])
            self.assertIn("Input/output error", last["reason"])
            self.assertLess(abs(last["time_ms"] / 1000.0 - time.time()), 300)
            self.assertIn("snapshot %d: cannot read %s" % (s1, snap), log_of(cl, leader))

            # 2. the image truncated under the running, idle leader.
            s2 = self.fall_behind(cl, zk, leader, victim, root, "b")
            snap = os.path.join(ln.workdir, "data", "snap-%016x.snap" % s2)
            size = os.path.getsize(snap)
            self.assertGreater(size, 4096)
            whole = payload(snap)
            os.truncate(snap, size // 2)
            before = send_failures(ln)
            cl.start(victim)
            # No write: the leader replaces the image at the same index.
            wait_for(lambda: s2 in installed(cl, victim), 60,
                     "the follower installed snapshot %d without a write" % s2)
            self.assertGreater(send_failures(ln), before)
            wait_for(lambda: "truncated" in status(ln)["snapshot_last_failure"]["reason"], 10,
                     "/status shows the truncated image")
            log = log_of(cl, leader)
            self.assertEqual(log.count("snapshot %d: cannot read" % s2), 1, "logged once per image")
            self.assertIn("taking a new one at index %d to replace the unreadable image at %d "
                          "(nothing applied since: the same index)" % (s2, s2), log)
            self.assertEqual(payload(snap), whole, "the new image is the same bytes")
            self.assertEqual(status(ln)["snapshot_failures"]["take"], takes)

            # 3. a follower whose disk fails the image at every stage.
            vn = cl.nodes[victim]
            old = client(cl, [victim])
            old.sync(root)
            seen = len(old.get_children(root))
            for key, value in (("dp.test_peer", vn.id), ("dp.test_loss_ppm", 1000000)):
                self.assertEqual(cl.put_config(leader, key, value)[0], 200)
            for i in range(1050):
                zk.create("%s/c%04d" % (root, i), b"%d" % i)
            code, text = admin(ln, "POST", "/snapshot")
            self.assertEqual(code, 200, text)
            s3 = int(re.search(r"snapshot at index (\d+)", text).group(1))
            for key in ("snapshotWriteFailAfter", "snapshotLastWriteFailAfter",
                        "snapshotSyncFailAfter", "snapshotRestoreFailAfter"):
                code, text = cl.put_config(victim, "keel.test." + key, 2 if "Write" in key
                                           and "Last" not in key else 1)
                self.assertEqual(code, 200, text)
            self.assertEqual(cl.put_config(leader, "dp.test_loss_ppm", 0)[0], 200)
            vsnap = os.path.join(vn.workdir, "data", "snap-%016x.snap" % s3)
            vtmp = os.path.join(vn.workdir, "data", "snap-%016x.tmp" % s3)
            wait_for(lambda: "snapshot %d from the leader: syncing %s" % (s3, vtmp)
                     in log_of(cl, victim), 30, "the follower's second install failed")
            # meanwhile it serves its old state
            self.assertEqual(len(old.get_children(root)), seen)
            self.assertTrue(vn.running, "the follower still runs")
            wait_for(lambda: s3 in installed(cl, victim), 60,
                     "the follower installed snapshot %d on its fourth try" % s3)
            vlog = log_of(cl, victim)
            self.assertIn("snapshot %d from the leader: the chunk at 65536 (65536 bytes): "
                          "Input/output error; the transfer starts again" % s3, vlog)
            self.assertRegex(vlog, r"snapshot %d from the leader: the chunk at \d+ \(\d+ bytes\): "
                             r"Input/output error; it was the last one: this install fails" % s3)
            for stage, path in (("writing the last chunk of", vsnap), ("syncing", vtmp),
                                ("restoring the store from", vtmp)):
                self.assertIn("snapshot %d from the leader: %s %s failed: Input/output "
                              "error; the node keeps its state" % (s3, stage, path), vlog)
            self.assertIn("the image is asked for again now (1 failed in a row)", vlog)
            self.assertIn("the image is asked for again in 1 s (2 failed in a row)", vlog)
            self.assertIn("the image is asked for again in 2 s (3 failed in a row)", vlog)
            wait_for(lambda: status(vn)["snapshot_failures"]["install"] == 4, 10,
                     "the follower's /status shows its four failures")
            vlast = status(vn)["snapshot_last_failure"]
            self.assertEqual(vlast["stage"], "install")
            self.assertIn("restoring the store from %s: Input/output error" % vtmp,
                          vlast["reason"])
            code, text = admin(vn, "GET", "/metrics", timeout=10)
            self.assertIn('keel_snapshot_failures_total{stage="install"} 4\n', text)
            zk.create("%s/after" % root, b"after")
            only = client(cl, [victim])
            only.sync(root)
            theirs = tree(only, root)
            self.assertEqual(len(theirs), 3 * 1050 + 21)
            self.assertEqual(theirs["after"][0], b"after")
            self.assertEqual(theirs, tree(zk, root), "every znode the same at both")
            self.assertEqual(status(vn)["snapshot_failures"], {"take": 0, "send": 0, "install": 4})
            self.assertTrue(vn.running, "the follower still runs")
            old.stop()
            old.close()
            only.stop()
            only.close()
            zk.stop()
            zk.close()
            self.assertTrue(ln.running, "the leader still runs")
            # keelctl status prints the counts and the last failure under its table
            p = subprocess.run([tm.keelctl(), "--only", "--admin",
                                "127.0.0.1:%d" % ln.admin_port, "status"],
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertRegex(p.stdout, r"node %d: snapshot failures take [1-9]\d*, send [1-9]\d*, "
                             r"install 0; last \d{4}-\d\d-\d\dT[0-9:]+Z \(send\): reading "
                             % ln.id)

    def test_restart_after_failed_restore(self):
        """A deposed leader whose log runs past the image with entries of its
        own term: the install's restore fails, which leaves no image (it is
        published only once restored), and the node is killed before it is
        taken again. The image is then put in place as a crash just after an
        install's rename leaves it: at start-up the image is the store, and
        the log it replaced is dropped after it (its entry at the image's
        index is of another term, so what follows it is of another history:
        never committed); the node then catches up."""
        if os.environ.get("KEEL_TEST_TARGET", "keel") != "keel":
            self.skipTest("keel's snapshot keys")
        with Cluster.create(size=3, admin_token=TOKEN) as cl:
            root = "/f-" + uuid.uuid4().hex[:8]
            a = cl.leader()
            an = cl.nodes[a]
            zk = client(cl, [(a + 1) % cl.size, (a + 2) % cl.size])
            zk.create(root)
            for i in range(cl.size):  # images keep 5 entries: a few writes need one
                self.assertEqual(cl.put_config(i, "keel.test.snapshotKeepEntries", 5)[0], 200)
            alone = KazooClient(hosts=cl.connect_string([a]), timeout=10.0)
            alone.start(timeout=30)
            alone.sync(root)
            # a leads alone: its frames to its peers and theirs to it lost, its
            # quorum check slow; it appends its client's writes, one entry each
            # (one a turn), while the others elect a leader among themselves
            self.assertEqual(cl.put_config(a, "keel.electionTimeoutMs", 5000)[0], 200)
            others = [i for i in range(cl.size) if i != a]
            for i, peer in [(a, 0)] + [(i, an.id) for i in others]:
                for key, value in (("dp.test_peer", peer), ("dp.test_loss_ppm", 1000000)):
                    self.assertEqual(cl.put_config(i, key, value)[0], 200)
            base = status(an)["last_index"]
            for i in range(70):  # (a loaded node may still batch two in a turn)
                alone.create_async("%s/lost%02d" % (root, i), b"lost")
                time.sleep(0.015)
            wait_for(lambda: status(an)["last_index"] >= base + 30, 10,
                     lambda: "the isolated leader appended its writes (from %d: %s)"
                     % (base, status(an)))
            b = wait_for(lambda: [i for i in others if cl.mode(i) == "leader"], 30,
                         "a leader among the others")[0]
            for i in range(10):
                zk.create("%s/k%02d" % (root, i), b"%d" % i)
            code, text = admin(cl.nodes[b], "POST", "/snapshot")
            self.assertEqual(code, 200, text)
            s = int(re.search(r"snapshot at index (\d+)", text).group(1))
            # the image's index is in a's log, at a's (older) term
            self.assertLess(s, status(an)["last_index"])
            self.assertGreater(s, base + 5)
            self.assertEqual(cl.put_config(a, "keel.test.snapshotRestoreFailAfter", 1)[0], 200)
            self.assertEqual(cl.put_config(a, "keel.test.snapshotSyncFailAfter", 2)[0], 200)
            for i in range(cl.size):
                self.assertEqual(cl.put_config(i, "dp.test_loss_ppm", 0)[0], 200)
            # the first install is durable and fails at its restore; the second
            # at its sync (1 s of back-off follows): killed there
            wait_for(lambda: "(2 failed in a row)" in log_of(cl, a), 30,
                     "the node's second install failed")
            cl.kill(a)
            log = log_of(cl, a)
            asnap = os.path.join(an.workdir, "data", "snap-%016x.snap" % s)
            atmp = os.path.join(an.workdir, "data", "snap-%016x.tmp" % s)
            self.assertIn("snapshot %d from the leader: restoring the store from %s failed"
                          % (s, atmp), log)
            self.assertNotIn("installed snapshot %d " % s, log)
            # the image is published only once its restore held: nothing of it
            # is left (until 2026-11-22 it was, and refused every older image)
            self.assertFalse(os.path.exists(asnap))
            self.assertFalse(os.path.exists(atmp))
            # a crash just after an install's rename, before the log's drop:
            # the leader's file (the same image) stands for the renamed one
            bsnap = os.path.join(cl.nodes[b].workdir, "data", "snap-%016x.snap" % s)
            shutil.copyfile(bsnap, asnap)
            cl.start(a)
            wait_for(lambda: "are of the history it replaced; dropped" in log_of(cl, a), 10,
                     "the restarted node dropped the log after the image")
            self.assertRegex(log_of(cl, a), r"wal: entry %d is of term \d+, snapshot %d of "
                             r"term \d+ \(stopped after an install that failed\): entries "
                             r"%d\.\.\d+ are of the history" % (s, s, s + 1))
            zk.create("%s/after" % root, b"after")
            only = client(cl, [a])
            only.sync(root)
            theirs = tree(only, root)
            self.assertEqual(theirs, tree(zk, root), "every znode the same at both")
            # (the isolated leader's writes, sent on to the new one, may be in)
            self.assertEqual(len([n for n in theirs if not n.startswith("lost")]), 11)
            for c in (only, zk, alone):
                try:
                    c.stop()
                    c.close()
                except Exception:
                    pass


if __name__ == "__main__":
    unittest.main()
