"""keeld with peer traffic over DPDK virtual devices (vhost-user links between
the 3 nodes, see zkcluster.KeelCluster.dpdk_lines): every node says it runs
the dpdk transport (GET /status and its log), kazoo writes at one node are read
at the others, a read at a follower right after a write at the leader sees it
(the front end's peer-news check on DPDK), kill -9 of the leader under a write load loses no acknowledged
write, and the killed node restarts, reconnects its links and catches up over
DPDK; then a node starts while one of its peers is down (its link to that peer
joins later). Skipped (with the reason) only when EAL cannot start here.
"""
import json
import os
import sys
import threading
import time
import unittest
import urllib.error
import urllib.request
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from read_after_write import stale_reads  # noqa: E402
from zkcluster import Cluster, check_creates_everywhere, wait_for  # noqa: E402

from kazoo.client import KazooClient  # noqa: E402
from kazoo.exceptions import NodeExistsError  # noqa: E402
from kazoo.retry import KazooRetry  # noqa: E402

WRITERS = 3
STALE_PAIRS = int(os.environ.get("KEEL_TEST_STALE_PAIRS", "300"))
TOKEN = "dpdk-test-" + uuid.uuid4().hex[:8]


def status(cl, i):
    """The node's /status. A node just started answers 503 until its pipeline
    has published a first status (its admin API listens before that; at load
    ~18 the test's first read right after a restart met it twice): wait for
    it, bounded."""
    req = urllib.request.Request("http://127.0.0.1:%d/status" % cl.nodes[i].admin_port,
                                 headers={"Authorization": "Bearer " + TOKEN})
    deadline = time.monotonic() + 15
    while True:
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                return json.load(r)
        except urllib.error.HTTPError as e:
            if e.code != 503 or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def log_text(cl, i):
    with open(os.path.join(cl.nodes[i].workdir, "out.log"), "rb") as f:
        return f.read().decode(errors="replace")


def start_cluster():
    """The cluster, or a skip when EAL itself cannot run here."""
    cl = Cluster.create(size=3, transport="dpdk", admin_token=TOKEN)
    try:
        return cl.__enter__()
    except RuntimeError as e:
        logs = ""
        for n in cl.nodes:
            try:
                with open(os.path.join(n.workdir, "out.log"), "rb") as f:
                    logs += f.read().decode(errors="replace")
            except OSError:
                pass
        cl.destroy()
        for why in ("EAL init failed", "this build has no DPDK"):
            if why in logs:
                line = [ln for ln in logs.splitlines() if why in ln][0]
                raise unittest.SkipTest("DPDK cannot run here: " + line)
        raise RuntimeError("%s; logs:\n%s" % (e, logs[-3000:]))


def wait_caught_up(cl, i, leader, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        a, b = status(cl, i), status(cl, leader)
        if a["applied_index"] >= b["commit_index"] > 0 and a["leader"] == b["id"]:
            return a
        time.sleep(0.1)
    raise AssertionError("node %d did not catch up: %s vs leader %s" %
                         (i + 1, status(cl, i), status(cl, leader)))


class DpdkCluster(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if os.environ.get("KEEL_TEST_TARGET", "keel") != "keel":
            raise unittest.SkipTest("DPDK peer transport is keel's (KEEL_TEST_TARGET=%s)" %
                                    os.environ["KEEL_TEST_TARGET"])

    def test_dpdk_cluster_failover(self):
        t0 = time.monotonic()
        cl = start_cluster()
        ok = False
        try:
            self.run_checks(cl)
            ok = True
        finally:
            cl.destroy(keep_logs=not ok)  # a rare failure (CI) can be read
        for n in cl.nodes:
            self.assertFalse(os.path.exists(os.path.join("/var/run/dpdk", cl.dpdk_prefix(n))))
        print("\ndpdk cluster: %.1f s in all" % (time.monotonic() - t0), file=sys.stderr)

    def run_checks(self, cl):
        # Every node runs the DPDK transport, on its two vhost-user links (a
        # virtio-user server port comes up once its peer has connected).
        for i in range(cl.size):
            self.assertEqual(status(cl, i)["transport"], "dpdk")
            deadline = time.monotonic() + 20
            while True:
                log = log_text(cl, i)
                if log.count("dataplane dpdk: port ") == 2 or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            self.assertIn("transport: dpdk, node %d" % (i + 1), log)
            self.assertEqual(log.count("dataplane dpdk: port "), 2, log)

        # Writes at each node are read at the others (sync: through the leader).
        root = "/dpdk-" + uuid.uuid4().hex[:10]
        zks = []
        for i in range(cl.size):
            zk = KazooClient(hosts=cl.connect_string([i]), timeout=10.0)
            zk.start(timeout=30)
            zks.append(zk)
        zks[0].create(root)
        for i, zk in enumerate(zks):
            zk.create("%s/from-%d" % (root, i + 1), b"node %d" % (i + 1))
        for i, zk in enumerate(zks):
            zk.sync(root)
            self.assertEqual(sorted(zk.get_children(root)), ["from-1", "from-2", "from-3"])
            for j in range(cl.size):
                self.assertEqual(zk.get("%s/from-%d" % (root, j + 1))[0], b"node %d" % (j + 1))
        # A follower hears of a commit before the leader's client does, and its
        # front end holds a read while peer news is pending (dp_news_fd: the
        # links' rx interrupt set): a read there right after a write at the
        # leader sees it (f4d104b, the check off on DPDK: 6-88 stale of 500).
        leader = next(i for i in range(cl.size) if status(cl, i)["role"] == "leader")
        follower = (leader + 1) % cl.size
        stale = stale_reads(cl, leader, follower, zks[leader], zks[follower], root + "/news",
                            STALE_PAIRS)
        self.assertEqual(stale, [], "reads at node %d right after writes at node %d" %
                         (follower + 1, leader + 1))
        for zk in zks:
            zk.stop()
            zk.close()

        # kill -9 of the leader under a write load.
        acked = [set() for _ in range(WRITERS)]
        stop = threading.Event()
        errors = []

        def writer(w):
            try:
                zk = KazooClient(hosts=cl.connect_string(), timeout=10.0,
                                 connection_retry=KazooRetry(max_tries=-1, max_delay=0.5))
                zk.start(timeout=30)
                n = 0
                while not stop.is_set():
                    path = "%s/w%d-%06d" % (root, w, n)
                    try:
                        zk.create(path, b"%d" % n)
                        acked[w].add(path)
                    except NodeExistsError:
                        acked[w].add(path)  # an earlier, unanswered attempt took effect
                    except Exception:
                        time.sleep(0.05)  # outcome unknown: retry the same path
                        continue
                    n += 1
                zk.stop()
                zk.close()
            except Exception as e:  # reported by the main thread
                errors.append(e)

        ts = [threading.Thread(target=writer, args=(w,)) for w in range(WRITERS)]
        for t in ts:
            t.start()
        try:
            deadline = time.monotonic() + 20
            while sum(len(a) for a in acked) < 30 and time.monotonic() < deadline:
                time.sleep(0.05)
            self.assertGreaterEqual(sum(len(a) for a in acked), 30,
                                    "writes over DPDK did not get going")
            leader = cl.leader()
            self.assertIsNotNone(leader)
            t_kill = time.monotonic()
            cl.kill(leader)
            new_leader = cl.wait_new_leader(leader, 20)
            elect_s = time.monotonic() - t_kill

            mark = sum(len(a) for a in acked)
            wait_for(lambda: sum(len(a) for a in acked) >= mark + 20, 20,
                     "writes to resume after the failover")

            # The killed node restarts on DPDK (its peers' drivers reconnect
            # its links) while the writes go on.
            t_restart = time.monotonic()
            cl.start(leader)
            self.assertEqual(status(cl, leader)["transport"], "dpdk")
            mark = sum(len(a) for a in acked)
            deadline = time.monotonic() + 10
            while sum(len(a) for a in acked) < mark + 10 and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            stop.set()
            for t in ts:
                t.join(60)
        self.assertEqual(errors, [])
        st = wait_caught_up(cl, leader, new_leader, 30)
        catch_s = time.monotonic() - t_restart
        # The new leader took office while the node was dead (its match
        # index for it started at 0): acknowledgements came over the
        # restarted node's DPDK links.
        self.assertEqual(st["transport"], "dpdk")
        deadline = time.monotonic() + 10
        while True:
            peer = [p for p in status(cl, new_leader)["peers"] if p["id"] == leader + 1][0]
            if peer["match_index"] > 0 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.assertGreater(peer["match_index"], 0, "the leader heard nothing from node %d" %
                           (leader + 1))

        # Every acknowledged create is there, read at every node.
        want = set().union(*acked)
        check_creates_everywhere(cl, root, want)
        print("\ndpdk failover: %d acknowledged creates, new leader after %.2f s, "
              "restarted node caught up %.2f s after its start" %
              (len(want), elect_s, catch_s), file=sys.stderr)

        # A node starts while one of its peers is down: node 1 serves both
        # its links (virtio-user servers, whose probe waits for the peer);
        # with node 3 dead it must still start, on its link to node 2 alone,
        # after removing the sockets its killed self left behind.
        t_partial = time.monotonic()
        cl.kill(2)
        cl.kill(0)
        cl.start(0)
        self.assertIn("removed stale socket", log_text(cl, 0))
        zk = KazooClient(hosts=cl.connect_string([0, 1]), timeout=10.0,
                         connection_retry=KazooRetry(max_tries=-1, max_delay=0.5))
        zk.start(timeout=30)
        two = "%s/with-node-3-down" % root
        zk.create(two, b"1 and 2")
        zk.stop()
        zk.close()
        # ... and node 3's link joins when it starts.
        cl.start(2)
        leader = None
        deadline = time.monotonic() + 20
        while leader is None and time.monotonic() < deadline:
            leader = cl.leader()
            time.sleep(0.1)
        self.assertIsNotNone(leader)
        for i in range(cl.size):
            if i != leader:
                wait_caught_up(cl, i, leader, 30)
        self.assertRegex(log_text(cl, 0), r"dp\.device\.1: net_virtio_user1 is up")
        zk = KazooClient(hosts=cl.connect_string([2]), timeout=10.0)
        zk.start(timeout=30)
        zk.sync(root)
        self.assertEqual(zk.get(two)[0], b"1 and 2")
        self.assertEqual(want - set("%s/%s" % (root, c) for c in zk.get_children(root)), set())
        zk.stop()
        zk.close()
        print("dpdk: node 1 started with node 3 down, then node 3 joined: %.2f s" %
              (time.monotonic() - t_partial), file=sys.stderr)


if __name__ == "__main__":
    unittest.main()
