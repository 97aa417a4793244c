"""A restarted node serves what it knew was committed (keel's log keeps a commit record).

Raft's commit index is volatile; keel's log writes it down with the group
commits that carry entries anyway (a lower bound, at most one group behind)
and, at a clean stop, on its own. A node restarting alone -- the whole
cluster down, no quorum, no leader to tell it the commit -- applies that
much of its log at start-up:

* clean stop of all three, one follower back alone: its /status applied
  index is what it had applied before the stop, srvr's Zxid the one it
  had; in read-only mode (readonlymode.enabled) a kazoo read_only client
  reads every znode written, and a client that saw that zxid attaches
  (ZooKeeper refuses one that saw more: one zxid more is refused);
* kill -9 of all three (no clean stop) right after one acknowledged write
  (its client still open: no closeSession after it), the former leader back
  alone: it applies that write too -- its commit rode no later group, the
  leader wrote it down while idle (wal_idle_commit, page cache) --, never
  more than its log holds; then the two others come back, a leader is
  elected and every node has every znode.

Before the commit record both failed: a node alone applied only its
snapshot (here none: nothing).
"""
import os
import re
import socket
import struct
import sys
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zkcluster import Cluster, wait_for  # noqa: E402
from test_raw_protocol import frame, recv_frame  # noqa: E402
from test_snap_robust import TOKEN, client, log_of, status  # noqa: E402

from kazoo.client import KazooClient  # noqa: E402
from kazoo.protocol.states import KeeperState  # noqa: E402

WAIT_S = 60  # fail-safe for each wait below; never a timing assertion
N = 20


def connect_seen(port, last_zxid):
    """A read-only-capable ConnectRequest having seen last_zxid: its session id, or None (closed)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    try:
        body = (struct.pack(">iqiq", 0, last_zxid, 10000, 0) + struct.pack(">i", 16) +
                b"\0" * 16 + b"\1")
        s.sendall(frame(body))
        try:
            r = recv_frame(s)
        except (EOFError, ConnectionResetError):
            return None
        return struct.unpack(">q", r[8:16])[0]
    finally:
        s.close()


def status_now(node):
    """/status, or None while the node does not answer it yet (503 before its first publish)."""
    try:
        return status(node)
    except (AssertionError, OSError):
        return None


def srvr_zxid(cl, i):
    srvr = cl.four_letter(i, "srvr")
    m = re.search(r"Zxid: (0x[0-9a-f]+)", srvr)
    assert m, srvr
    return int(m.group(1), 16)


def seqs(cl, nodes):
    """Each node's /status publication number now (it republishes every ~100 ms)."""
    return {i: status(cl.nodes[i])["status_seq"] for i in nodes}


def settled(cl, after):
    """Every node i in after has published twice since after[i] (so what it
    shows postdates the writes before) and applied the whole log."""
    st = [status_now(cl.nodes[i]) for i in after]
    if not all(st) or any(s["status_seq"] < after[i] + 2 for s, i in zip(st, after)):
        return False
    last = max(s["last_index"] for s in st)
    return all(s["applied_index"] == last for s in st)


class RestartCommit(unittest.TestCase):
    def write(self, cl):
        root = "/rc-" + uuid.uuid4().hex[:8]
        zk = client(cl)
        zk.create(root)
        zxid = 0
        for i in range(N):
            zk.create("%s/c%02d" % (root, i), b"%d" % i)
            zxid = zk.exists("%s/c%02d" % (root, i)).mzxid
        zk.stop()
        zk.close()
        return root, zxid

    def test_clean_stop_one_alone_read_only(self):
        if os.environ.get("KEEL_TEST_TARGET", "keel") != "keel":
            self.skipTest("keel's /status")
        with Cluster.create(size=3, admin_token=TOKEN,
                            extra=["readonlymode.enabled=true"]) as cl:
            root, zxid = self.write(cl)
            after = seqs(cl, range(3))
            wait_for(lambda: settled(cl, after), WAIT_S, "every node applied every write")
            leader = cl.leader()
            f = (leader + 1) % 3
            fn = cl.nodes[f]
            before = status(fn)
            zxid_before = srvr_zxid(cl, f)
            self.assertGreaterEqual(zxid_before, zxid)  # (the sessions' closes came after)
            self.assertEqual(before["snapshot_index"], 0, before)  # nothing but the log
            for i in range(3):
                cl.stop(i)
            mark = len(log_of(cl, f))
            cl.start(f)
            wait_for(lambda: (status_now(fn) or {}).get("applied_index", 0) >=
                     before["applied_index"], WAIT_S,
                     lambda: "the follower alone applied %d as before the stop (applied %s)" %
                     (before["applied_index"], (status_now(fn) or {}).get("applied_index")))
            st = status(fn)
            # alone (no leader, no quorum): what it applied before the stop
            self.assertEqual(st["leader"], 0, st)
            self.assertEqual(st["last_index"], before["last_index"], st)
            self.assertEqual(st["applied_index"], before["applied_index"], st)
            self.assertIn("committed up to %d" % before["applied_index"], log_of(cl, f)[mark:])
            # read-only mode: a read_only client reads every znode written
            wait_for(lambda: cl.four_letter(f, "isro") == "ro", WAIT_S, "read-only mode")
            self.assertEqual(srvr_zxid(cl, f), zxid_before)
            zk = KazooClient(hosts=cl.connect_string([f]), read_only=True, timeout=10.0)
            zk.start(timeout=30)
            try:
                self.assertEqual(zk.client_state, KeeperState.CONNECTED_RO)
                kids = sorted(zk.get_children(root))
                self.assertEqual(kids, ["c%02d" % i for i in range(N)])
                self.assertEqual(zk.get("%s/c%02d" % (root, N - 1))[0], b"%d" % (N - 1))
            finally:
                zk.stop()
                zk.close()
            # a client that saw everything it had seen attaches; one that saw more does not
            self.assertTrue(connect_seen(fn.client_port, zxid_before))
            self.assertIsNone(connect_seen(fn.client_port, zxid_before + 1))

    def test_killed_all_leader_alone(self):
        if os.environ.get("KEEL_TEST_TARGET", "keel") != "keel":
            self.skipTest("keel's /status")
        with Cluster.create(size=3, admin_token=TOKEN) as cl:
            root, _ = self.write(cl)
            after = seqs(cl, range(3))
            wait_for(lambda: settled(cl, after), WAIT_S, "every node applied every write")
            leader = cl.leader()
            ln = cl.nodes[leader]
            acked = status(ln)["applied_index"]  # every write before the fence
            # the last write: its session stays open, so no entry follows it
            # (its commit rides no later group) until the kill
            zk = client(cl, [leader])
            zk.create(root + "/fence", b"f")
            after = seqs(cl, range(3))
            wait_for(lambda: settled(cl, after), WAIT_S, "every node applied the fence")
            fence = status(ln)["applied_index"]
            self.assertGreater(fence, acked)
            for i in range(3):
                cl.kill(i)
            zk.stop()
            zk.close()
            cl.start(leader)
            wait_for(lambda: (status_now(ln) or {}).get("applied_index", 0) >= fence, WAIT_S,
                     lambda: "the former leader alone applied %d, the last acknowledged "
                     "write (applied %s)" % (fence, (status_now(ln) or {}).get("applied_index")))
            st = status(ln)
            self.assertEqual(st["leader"], 0, st)  # alone: no leader told it anything
            self.assertLessEqual(st["applied_index"], st["last_index"], st)
            # the others back: one history, every znode everywhere
            for i in range(3):
                cl.start(i)
            cl.wait_ready()
            zk = client(cl)
            zk.create(root + "/after", b"a")
            zk.stop()
            zk.close()
            after = seqs(cl, range(3))
            wait_for(lambda: settled(cl, after), WAIT_S, "every node caught up")
            want = sorted(["c%02d" % i for i in range(N)] + ["fence", "after"])
            for i in range(3):
                c = client(cl, [i])
                try:
                    c.sync(root)
                    self.assertEqual(sorted(c.get_children(root)), want)
                finally:
                    c.stop()
                    c.close()


if __name__ == "__main__":
    unittest.main()
