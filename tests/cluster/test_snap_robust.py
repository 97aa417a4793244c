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
2. the image truncated under the running leader: every read of it fails
   (counted, logged once), the leader keeps answering writes, and the next
   write lets it take a new snapshot that replaces the image; the follower
   installs the new one and has every write; 3. on its way the follower
   fails to write a chunk (keel.test.snapshotWriteFailAfter=2: EIO):
   counted as stage "install", and the transfer starts again from the first
   chunk instead of stopping the follower. keelctl status prints the counts
   and the last failure.
"""
import json
import os
import re
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


def send_failures(node):
    """keel_snapshot_failures_total{stage="send"} from /metrics."""
    code, text = admin(node, "GET", "/metrics", timeout=10)
    assert code == 200, text
    m = re.search(r'^keel_snapshot_failures_total\{stage="send"\} (\d+)', text, re.M)
    assert m, "no send failure series in /metrics"
    return int(m.group(1))


def installed(cl, i):
    return [int(x) for x in re.findall(r"installed snapshot (\d+) ", log_of(cl, i))]


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

            # 2. the image truncated under the running leader.
            s2 = self.fall_behind(cl, zk, leader, victim, root, "b")
            snap = os.path.join(ln.workdir, "data", "snap-%016x.snap" % s2)
            size = os.path.getsize(snap)
            self.assertGreater(size, 4096)
            os.truncate(snap, size // 2)
            before = send_failures(ln)
            cl.start(victim)
            # Raft retries every heartbeat (each read fails and is counted)
            # until a write lets the leader replace the image.
            wait_for(lambda: send_failures(ln) > before, 30,
                     "the leader counted failed reads of the truncated image")
            wait_for(lambda: "truncated" in status(ln)["snapshot_last_failure"]["reason"], 10,
                     "/status shows the truncated image")
            self.assertEqual(log_of(cl, leader).count("snapshot %d: cannot read" % s2), 1,
                             "logged once per image")
            self.assertNotIn(s2, installed(cl, victim))
            self.assertEqual(status(ln)["snapshot_failures"]["take"], takes)
            # 3. the follower fails to write the 2nd chunk of the next image
            # (EIO, injected): counted, and the transfer starts again.
            code, text = cl.put_config(victim, "keel.test.snapshotWriteFailAfter", 2)
            self.assertEqual(code, 200, text)
            # The leader serves; its next write lets it replace the image.
            zk.create("%s/after" % root, b"after")
            self.assertEqual(zk.get("%s/after" % root)[0], b"after")
            wait_for(lambda: any(i > s2 for i in installed(cl, victim)), 60,
                     "the follower installed a snapshot newer than the truncated one")
            self.assertIn("to replace the unreadable image at %d" % s2, log_of(cl, leader))
            vn = cl.nodes[victim]
            wait_for(lambda: status(vn)["snapshot_failures"]["install"] == 1, 10,
                     "the follower's /status shows its failed chunk write")
            vlast = status(vn)["snapshot_last_failure"]
            self.assertEqual(vlast["stage"], "install")
            self.assertIn("the chunk at 65536: Input/output error", vlast["reason"])
            self.assertIn("the transfer starts again from the first chunk", log_of(cl, victim))
            only = client(cl, [victim])
            only.sync(root)
            self.assertEqual(len(only.get_children(root)), 2 * 1050 + 21)
            self.assertEqual(only.get("%s/b1049" % root)[0], b"1049")
            self.assertEqual(only.get("%s/after" % root)[0], b"after")
            self.assertEqual(status(vn)["snapshot_failures"], {"take": 0, "send": 0, "install": 1})
            self.assertTrue(vn.running, "the follower still runs")
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


if __name__ == "__main__":
    unittest.main()
