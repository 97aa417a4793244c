"""keel snapshots (keel only: the keys are keel's): with a small
keel.snapshotThresholdBytes every node snapshots; a follower that was down
while the leader compacted its log past it is caught up by InstallSnapshot;
a restart of every node recovers from snapshot + log.

A store of several MiB (larger than the snapshot writer's bounded buffer:
the image is streamed to the file, and sent and restored by reading
it) snapshots on POST /snapshot, is installed on a follower that fell
behind and restored by a restarted leader, contents compared byte for byte;
an image over the size limit (lowered with keel.test.snapshotMaxBytes) is
refused with a clear error, keeping the previous snapshot and the log.

A follower stopped inside an install (the image durable, its log still
ending below it) goes on after the snapshot when restarted.

Each stopped follower is restarted only once every live node's snapshot is
more than the 1000 kept entries past the last index it can hold (read from
/status as published after the stop), so whichever node leads then can only
send it the image: a fixed count of writes did not make that certain under
load (a slower snapshot job, or a leader change to a node with no such
snapshot).
"""
import glob
import json
import os
import random
import re
import sys
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zkcluster import Cluster, wait_for  # noqa: E402
import test_membership as tm  # noqa: E402  (its helpers; a module: no tests collected)

from kazoo.client import KazooClient  # noqa: E402


def client(cl, nodes=None):
    c = KazooClient(hosts=cl.connect_string(nodes), timeout=10.0)
    c.start(timeout=30)
    return c


def log_of(cl, i):
    with open(os.path.join(cl.nodes[i].workdir, "out.log"), "rb") as f:
        return f.read().decode(errors="replace")


TOKEN = "snapshot"


def admin(node, method, path, timeout=60):
    return tm.http(node.admin_port, method, path, token=TOKEN, timeout=timeout)


def status(node):
    code, body = admin(node, "GET", "/status", timeout=10)
    assert code == 200, body
    return json.loads(body)


def snap_index(node):
    return status(node)["snapshot_index"]


# The entries a snapshot keeps in the log before it (SNAP_KEEP_ENTRIES in
# dataplane/node/pipeline.c): a node whose snapshot is at S sends entries
# from S - KEEP + 1 on, and an image to a follower whose log ends before that.
KEEP = 1000


def fresh_status(node):
    """/status as published after this call (republished every ~100 ms)."""
    seq = status(node)["status_seq"]
    return wait_for(lambda: [st for st in [status(node)] if st["status_seq"] >= seq + 2],
                    30, "node %d publishing /status again" % node.id)[0]


def log_end_bound(cl, live):
    """Past the last index a node stopped before this call holds: every entry
    it was sent came from a leader among the live nodes, whose logs are read
    as published after the stop."""
    return max(fresh_status(cl.nodes[i])["last_index"] for i in live)


def compacted_past(cl, live, v):
    """Every live node's snapshot is more than KEEP entries past index v: its
    log starts after v, so whichever of them leads when the node whose log
    ends at v comes back can only catch it up with an image (a check of the
    leader alone is not enough: under load the leader may change meanwhile,
    and a new leader whose log still holds v + 1 sends entries)."""
    snaps = [status(cl.nodes[i])["snapshot_index"] for i in live]
    return all(s > v + KEEP for s in snaps), snaps


def wait_compacted_past(cl, live, v, timeout=60):
    def what():
        return ("every live node's snapshot past %d + %d (the stopped node's log ends at "
                "%d at most): snapshot indexes %s" % (v, KEEP, v,
                                                      compacted_past(cl, live, v)[1]))
    wait_for(lambda: compacted_past(cl, live, v)[0], timeout, what)


def snapshot_all(cl, live, at):
    """POST /snapshot on each live node once it applied index at: every one
    of them then holds an image at or past it, whichever leads next."""
    for i in live:
        n = cl.nodes[i]
        wait_for(lambda: status(n)["applied_index"] >= at, 60,
                 "node %d applying index %d" % (n.id, at))
        code, text = admin(n, "POST", "/snapshot")
        assert code == 200, text


class Snapshots(unittest.TestCase):
    def test_snapshot_install_and_restart(self):
        if os.environ.get("KEEL_TEST_TARGET", "keel") != "keel":
            self.skipTest("keel's snapshot keys")
        with Cluster.create(size=3, admin_token=TOKEN,
                            extra=["keel.snapshotThresholdBytes=65536"]) as cl:
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
            live = [n for n in range(cl.size) if n != victim]
            v_end = log_end_bound(cl, live)
            # Writes until every live node's own threshold-driven snapshot is
            # more than KEEP entries past the victim's log. A snapshot comes
            # every ~395 of these creates (64 KiB of log), so after a fixed
            # 1100 one had to fall in the last ~100 of them: on a quiet machine
            # at ~v + 1035 (1341 for 1307 needed), but where the thresholds
            # fall moves (a loaded pipeline applies several entries a turn and
            # passes the threshold by more), and at load ~15 one run in a few
            # ended with the leader's last snapshot at v + 711 (its log still
            # held the victim's next entry: caught up from the log, no image).
            n, at_1100 = 0, None
            while n < 1100 or not compacted_past(cl, live, v_end)[0]:
                if n == 1100:
                    at_1100 = compacted_past(cl, live, v_end)[1]
                if n >= 20000:
                    self.fail("no snapshot past %d + %d on every live node after %d creates: "
                              "%s" % (v_end, KEEP, n, compacted_past(cl, live, v_end)[1]))
                for i in range(n, n + 100):
                    zk.create("%s/small%04d" % (root, i), b"%d" % i)
                n += 100
            if n > 1100:  # the premise the old fixed count took for granted was not met
                print("\ntest_snapshot: %d creates, not 1100, before every live node's snapshot "
                      "passed the victim's log (%d + %d); after 1100 they were at %s"
                      % (n, v_end, KEEP, at_1100), file=sys.stderr)
            cl.start(victim)
            only = client(cl, [victim])
            wait_for(lambda: len(only.get_children(root)) == 300 + n, 60,
                     "the restarted follower caught up")
            self.assertEqual(only.get("%s/big123" % root)[0], big)
            self.assertEqual(only.get("%s/small%04d" % (root, n - 1))[0], b"%d" % (n - 1))
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
                self.assertEqual(len(c.get_children(root)), 300 + n, "node %d" % (i + 1))
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

    def test_large_image_streamed_installed_restored(self):
        if os.environ.get("KEEL_TEST_TARGET", "keel") != "keel":
            self.skipTest("keel's snapshot keys")
        with Cluster.create(size=3, admin_token=TOKEN) as cl:
            root = "/L-" + uuid.uuid4().hex[:8]
            rnd = random.Random(8)
            # 6 MiB of values nothing compresses or repeats: 24x the writer's buffer
            values = {"%s/v%03d" % (root, i): rnd.randbytes(16384) for i in range(384)}
            leader = cl.leader()
            victim = (leader + 1) % cl.size
            zk = client(cl, [leader])
            zk.create(root)
            for r in [zk.create_async(k, v) for k, v in values.items()]:
                r.get(timeout=60)
            cl.kill(victim)
            live = [n for n in range(cl.size) if n != victim]
            v_end = log_end_bound(cl, live)
            # past the 1000 entries a snapshot keeps: the victim needs the image
            # (one at a time: concurrent creates would share entries)
            for i in range(1100):
                zk.create("%s/s%04d" % (root, i), b"%d" % i)
            values.update({"%s/s%04d" % (root, i): b"%d" % i for i in range(1100)})
            ln = cl.nodes[leader]
            before = snap_index(ln)

            # An image over the limit: refused, nothing replaced, writes go on.
            code, text = cl.put_config(leader, "keel.test.snapshotMaxBytes", 1 << 20)
            self.assertEqual(code, 200, text)
            code, text = admin(ln, "POST", "/snapshot")
            self.assertNotEqual(code, 200, text)
            self.assertIn("too large", text)
            self.assertIn("bytes, the limit keel.test.snapshotMaxBytes sets; the previous "
                          "snapshot and the log are kept",
                          log_of(cl, leader))
            self.assertEqual(snap_index(ln), before)
            self.assertEqual(glob.glob(os.path.join(ln.workdir, "data", "*.tmp")), [])
            code, text = cl.put_config(leader, "keel.test.snapshotMaxBytes", 0)
            self.assertEqual(code, 200, text)

            code, text = admin(ln, "POST", "/snapshot")
            self.assertEqual(code, 200, text)
            at = int(re.search(r"snapshot at index (\d+)", text).group(1))
            self.assertGreater(at, before)
            m = re.search(r"snapshot at index %d .*?: (\d+) bytes" % at, log_of(cl, leader))
            self.assertGreater(int(m.group(1)), 6 << 20)

            def same(c, who):
                c.sync(root)
                self.assertEqual(len(c.get_children(root)), len(values), who)
                for k, v in values.items():
                    self.assertEqual(c.get(k)[0], v, "%s: %s" % (who, k))

            # The victim is sent the leader's image (read from its file). The
            # other live node takes one too, so that a new leader, if the
            # leader changes, has none of the victim's missing entries in its
            # log either.
            snapshot_all(cl, [i for i in live if i != leader], at)
            wait_compacted_past(cl, live, v_end)
            cl.start(victim)
            only = client(cl, [victim])
            wait_for(lambda: len(only.get_children(root)) == len(values), 60,
                     "the restarted follower caught up")
            same(only, "follower %d" % (victim + 1))
            m = re.search(r"installed snapshot (\d+) \(term \d+, (\d+) bytes\)",
                          log_of(cl, victim))
            self.assertIsNotNone(m, "InstallSnapshot on the follower")
            self.assertGreaterEqual(int(m.group(1)), at)
            self.assertGreater(int(m.group(2)), 6 << 20)
            only.stop()
            only.close()
            zk.stop()
            zk.close()

            # The leader restarts from its snapshot file (and the log after it).
            cl.stop(leader)
            cl.start(leader)
            cl.wait_ready()
            self.assertIsNotNone(re.search(r"snapshot %d \(term \d+, \d+ bytes\) restored" % at,
                                           log_of(cl, leader)))
            c = client(cl, [leader])
            same(c, "restarted node %d" % (leader + 1))
            c.create("%s/after" % root, b"a")
            c.stop()
            c.close()

    def test_restart_inside_install(self):
        """A follower stopped after an installed image became durable but before
        its log's jump past the image did (its log still ends below the
        snapshot: the segments of before the install are put back) goes on
        after the snapshot on restart, instead of refusing every append."""
        if os.environ.get("KEEL_TEST_TARGET", "keel") != "keel":
            self.skipTest("keel's snapshot files")
        with Cluster.create(size=3, admin_token=TOKEN) as cl:
            root = "/I-" + uuid.uuid4().hex[:8]
            leader = cl.leader()
            victim = (leader + 1) % cl.size
            vn = cl.nodes[victim]
            zk = client(cl, [leader])
            zk.create(root)
            # The cluster level raised first: after the install the leader
            # appends nothing, so the victim acknowledges nothing past the
            # image (as in the crash this stands for: its log ends below it).
            wait_for(lambda: json.loads(admin(cl.nodes[leader], "GET", "/status")[1])
                     ["cluster_level"] >= 3, 30, "cluster level 3 or more")
            cl.stop(victim)
            live = [n for n in range(cl.size) if n != victim]
            v_end = log_end_bound(cl, live)
            segs = {}
            for p in glob.glob(os.path.join(vn.workdir, "data", "**", "*.wal"), recursive=True):
                with open(p, "rb") as f:
                    segs[p] = f.read()
            self.assertTrue(segs)
            # past the 1000 entries a snapshot keeps: the victim needs the image
            for i in range(1100):
                zk.create("%s/s%04d" % (root, i), b"%d" % i)
            code, text = admin(cl.nodes[leader], "POST", "/snapshot")
            self.assertEqual(code, 200, text)
            at = int(re.search(r"snapshot at index (\d+)", text).group(1))
            # the other live node too: a new leader would not send entries either
            snapshot_all(cl, [i for i in live if i != leader], at)
            wait_compacted_past(cl, live, v_end)
            cl.start(victim)
            wait_for(lambda: "installed snapshot" in log_of(cl, victim), 60,
                     "InstallSnapshot on the follower")
            cl.stop(victim)
            self.assertNotIn("cluster protocol level 2 -> ",
                             log_of(cl, victim).split("installed snapshot")[-1])
            self.assertTrue(glob.glob(os.path.join(vn.workdir, "data", "**", "snap-*.snap"),
                                      recursive=True))
            # The log as it was before the install; the snapshot file stays.
            for p in glob.glob(os.path.join(vn.workdir, "data", "**", "*.wal"), recursive=True):
                os.unlink(p)
            for p, b in segs.items():
                with open(p, "wb") as f:
                    f.write(b)
            cl.start(victim)

            def leader_status():
                # the leader now (under load it may have changed since)
                ld = wait_for(lambda: [x for x in [cl.leader()] if x is not None], 30,
                              "a leader")[0]
                return status(cl.nodes[ld])
            c0 = leader_status()["commit_index"]
            zk.create("%s/after" % root, b"a")
            # /status is published by the pipeline now and then: wait for it
            wait_for(lambda: leader_status()["commit_index"] > c0, 30, "the create in /status")
            target = leader_status()["commit_index"]

            def acked():
                st = leader_status()
                peer = [p for p in st["peers"] if p["id"] == vn.id][0]
                return peer["match_index"] >= target
            # Applying is not enough: it must make the entries durable and say so
            # (a log it cannot append to takes nothing, acknowledges nothing).
            wait_for(acked, 30, "the restarted follower acknowledging new entries")
            self.assertNotIn("gap in log indexes", log_of(cl, victim))
            self.assertRegex(log_of(cl, victim), r"wal: the log ends at \d+, before snapshot \d+")
            c = client(cl, [victim])
            c.sync(root)
            self.assertEqual(c.get("%s/after" % root)[0], b"a")
            c.stop()
            c.close()
            zk.stop()
            zk.close()


if __name__ == "__main__":
    unittest.main()
