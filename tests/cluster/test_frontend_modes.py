"""keel.frontend: the ZooKeeper client front end on the pipeline thread
(pipeline) and on its own thread (thread) serve the same. Whichever the
default (auto) picks on this machine, the rest of the cluster suite runs
that one; this test runs each explicitly through one short scenario: kazoo
clients on a follower and on the leader, writes (forwarded and local), reads,
data and child watches across clients, an ephemeral node gone with its
session, sync, four-letter words, then the leader killed -9: a new leader,
every acknowledged write still there, writes resume, and the killed node
rejoins and serves what it missed. Reads at the follower right after writes
at the leader, under CPU hogs, see them (the peer-news check over kernel UDP).
"""
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from read_after_write import stale_reads  # noqa: E402
from zkcluster import KeelCluster, wait_for  # noqa: E402

from kazoo.client import KazooClient  # noqa: E402
from kazoo.exceptions import NodeExistsError  # noqa: E402
from kazoo.retry import KazooRetry  # noqa: E402

STALE_PAIRS = 150
TOKEN = "fe-test-" + uuid.uuid4().hex[:8]
LOG_LINE = {"pipeline": "epoll front end on the pipeline thread",
            "thread": "epoll front end on its own thread"}


def client(hosts):
    zk = KazooClient(hosts=hosts, timeout=10.0,
                     connection_retry=KazooRetry(max_tries=-1, max_delay=0.5))
    zk.start(timeout=30)
    return zk


class FrontendModes(unittest.TestCase):
    def scenario(self, mode):
        with KeelCluster(3, extra=["keel.frontend=" + mode], admin_token=TOKEN) as cl:
            for n in cl.nodes:
                self.assertIn(LOG_LINE[mode], cl.tail(n, 400),
                              "node %d did not start its front end %s" % (n.idx, mode))
            leader = cl.leader()
            self.assertIsNotNone(leader)
            follower = next(i for i in range(3) if i != leader)
            other = next(i for i in range(3) if i not in (leader, follower))
            zf = client(cl.connect_string([follower]))
            zl = client(cl.connect_string([leader]))
            zo = client(cl.connect_string([other]))
            root = "/fe-" + uuid.uuid4().hex[:8]

            zf.create(root, b"r")
            zf.sync(root)
            for i in range(20):  # forwarded by the follower
                zf.create("%s/f%02d" % (root, i), b"%d" % i)
            for i in range(20):  # proposed at the leader
                zl.set(root, b"v%d" % i)
            zf.sync(root)
            self.assertEqual(zf.get(root)[0], b"v19")
            self.assertEqual(len(zf.get_children(root)), 20)
            # a read at the follower right after a write at the leader sees
            # it (the peer-news check over kernel UDP, in this mode)
            stale = stale_reads(cl, leader, follower, zl, zf, root + "-news", STALE_PAIRS)
            self.assertEqual(stale, [], "reads at node %d right after writes at node %d" %
                             (follower + 1, leader + 1))

            # watches: one client's write fires another's, at a third node
            fired = {"data": threading.Event(), "child": threading.Event()}
            zo.sync(root)
            self.assertEqual(zo.get(root, watch=lambda e: fired["data"].set())[0], b"v19")
            zo.get_children(root, watch=lambda e: fired["child"].set())
            zl.set(root, b"changed")
            zf.create(root + "/late", b"")
            self.assertTrue(fired["data"].wait(10), "data watch did not fire")
            self.assertTrue(fired["child"].wait(10), "child watch did not fire")

            # an ephemeral node leaves with its session's close
            zeph = client(cl.connect_string([follower]))
            seq = zeph.create(root + "/e-", b"", ephemeral=True, sequence=True)
            zo.sync(root)
            self.assertIsNotNone(zo.exists(seq))
            zeph.stop()
            zeph.close()
            wait_for(lambda: zo.sync(root) is not None and zo.exists(seq) is None, 20,
                     "the ephemeral node to go with its session")

            for i in range(3):
                self.assertEqual(cl.four_letter(i, "ruok"), "imok")
                self.assertIn("Zookeeper version", cl.four_letter(i, "srvr"))
            # cons lists the asking connection and the sessions (the engine's
            # table, read from inside its own callback)
            self.assertIn("queued=", cl.four_letter(follower, "cons"))

            # failover: the leader killed; the others go on
            zl.stop()
            zl.close()
            cl.kill(leader)
            cl.wait_new_leader(leader, 30)
            try:  # forwarded to the new leader; a retry may find its first try done
                zf.retry(zf.create, root + "/after", b"x")
            except NodeExistsError:
                pass
            zo.sync(root)
            self.assertEqual(zo.get(root)[0], b"changed")
            self.assertEqual(len(zo.get_children(root)), 22)  # f00..f19, late, after
            cl.start(leader)
            zb = client(cl.connect_string([leader]))
            zb.sync(root)
            self.assertEqual(zb.get(root + "/after")[0], b"x")
            self.assertEqual(len(zb.get_children(root)), 22)
            for zk in (zb, zf, zo):
                zk.stop()
                zk.close()

    def test_key(self):
        """--help names it; --check-config prints it; a bad value is refused
        naming it."""
        keeld = KeelCluster.keeld(None)
        r = subprocess.run([keeld, "--help"], capture_output=True, text=True, timeout=30)
        self.assertIn("keel.frontend=auto|pipeline|thread", r.stdout)
        d = tempfile.mkdtemp(prefix="keeld-fe-")
        try:
            for value, ok in (("pipeline", True), ("thread", True), ("auto", True),
                              ("both", False)):
                p = os.path.join(d, "zoo.cfg")
                with open(p, "w") as f:
                    f.write("dataDir=%s/d\nclientPort=2999\nkeel.frontend=%s\n"
                            "server.1=127.0.0.1:3001\nserver.2=127.0.0.1:3002\n" % (d, value))
                r = subprocess.run([keeld, "--config", p, "--myid", "1", "--check-config"],
                                   capture_output=True, text=True, timeout=30)
                if ok:
                    self.assertEqual(r.returncode, 0, r.stderr)
                    self.assertIn("keel.frontend=%s" % value, r.stdout)
                else:
                    self.assertNotEqual(r.returncode, 0)
                    self.assertIn("keel.frontend", r.stderr)
        finally:
            shutil.rmtree(d)

    def test_pipeline(self):
        self.scenario("pipeline")

    def test_thread(self):
        self.scenario("thread")


if __name__ == "__main__":
    unittest.main(verbosity=2)
