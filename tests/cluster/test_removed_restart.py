"""A node whose own log says it was removed stops at start-up, saying why.

A node that recovers a committed configuration that drops it (after one that
listed it) used to wait for a leader's REMOVED: with the rest of the cluster
down (or this node partitioned) it served nothing and never said why. Now
it stops at start-up, before the front end, the admin port or a tick, as a
node told REMOVED stops ("removed from the cluster: ..." with the index,
exit status 0, data kept).

The node whose log holds the dropping configuration is the leader that was
removed: it appends C_new itself, commits it, steps down and exits (a
removed follower never receives C_new: the leader stops replicating to it;
its log ends with the joint configuration, and only a leader can tell it).

* four members; the leader L removed by reconfig: it exits (status 0) naming
  index N; every node stopped; L started alone: it exits at once (status 0)
  naming the same N "found at start-up", never ready (no raft line: no
  tick, no campaign), nothing listening on its client port; the others
  started, L started again beside them: the same;
* a follower F removed by reconfig while it is stopped, then started with
  the others up: it asks for votes, the leader tells it, it exits
  (REMOVED: its log does not say so);
* every acknowledged write is on the remaining members.

A node that learns it was removed also writes `REMOVED` in its dataLogDir
(durably, before it stops), and a start that finds it stops at once,
naming the file -- a removed follower's log never says so, and restarted on
its old directories it used to campaign until a leader answered. Checked:
the removed leader's marker (its run-time reason), removed to let its log
alone decide the first restart (which writes it again, "found at start-up"),
then honoured at the second; the removed follower's marker (the leader's
REMOVED), honoured at its restart beside the others (no raft line: it never
campaigns); added back on fresh directories (no marker) it stays.
"""
import os
import re
import shutil
import socket
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zkcluster import KeelCluster, wait_for  # noqa: E402
import test_membership as tm  # noqa: E402  (its helpers; a module: no tests collected)
from test_membership import status  # noqa: E402

from kazoo.client import KazooClient  # noqa: E402
from kazoo.exceptions import (BadArgumentsError, ConnectionLoss, NodeExistsError,  # noqa: E402
                              OperationTimeoutError, ReconfigInProcessError)

TOKEN = tm.TOKEN  # tm.status reads /status with it
SUPER = "super:D/InIHSb7yEEbrWz8b9l71RjZJU="  # digest of super:test
WAIT_S = 60  # fail-safe of each wait; never a timing assertion


def log_of(n):
    with open(os.path.join(n.workdir, "out.log"), errors="replace") as f:
        return f.read()


def marker_path(n):
    return os.path.join(n.workdir, "data", "REMOVED")


def marker(n):
    with open(marker_path(n)) as f:
        return f.read()


def create_acked(zk, path, data):
    """Created and acknowledged (a retry after a lost answer finds it made)."""
    def once():
        try:
            zk.create(path, data)
        except NodeExistsError:
            assert zk.get(path)[0] == data
    zk.retry(once)


def reconfig(su, done, what, **change):
    """su.reconfig(**change) until it is made: retried while another change
    is in flight (a new leader writes /zookeeper/config first) or the answer
    is lost; a retry refused as already made counts once done(config text)
    says so. Returns the configuration text."""
    def once():
        try:
            return su.reconfig(new_members=None, **change)[0]
        except (ReconfigInProcessError, ConnectionLoss, OperationTimeoutError):
            return None
        except BadArgumentsError:
            data = su.get("/zookeeper/config")[0]
            return data if done(data) else None
    data = wait_for(once, WAIT_S, what)
    assert done(data), data
    return data


def reconfig_leave(su, node_id):
    gone = b"server.%d=" % node_id
    return reconfig(su, lambda d: gone not in d, "reconfig removing node %d" % node_id,
                    joining=None, leaving=str(node_id))


def refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


class RemovedRestart(unittest.TestCase):
    def test_removed_restart(self):
        # Elections slower than zkcluster's 300 ms: the removed leader must
        # commit C_new itself (a leader change in between on a loaded machine
        # would leave its log without the committed drop, and the test
        # without its subject).
        extra = ["reconfigEnabled=true", "DigestAuthenticationProvider.superDigest=" + SUPER,
                 "keel.electionTimeoutMs=1000", "keel.heartbeatMs=100"]
        with KeelCluster(4, admin_token=TOKEN, extra=extra) as c:
            try:
                self.run_case(c)
            except BaseException:
                for n in c.nodes:
                    sys.stderr.write("--- node %d log:\n%s\n" % (n.id, c.tail(n, 25)))
                raise

    def client(self, c, idx, auth=False):
        zk = KazooClient(hosts=c.connect_string(idx), timeout=10.0,
                         auth_data=[("digest", "super:test")] if auth else None)
        zk.start(timeout=30)
        return zk

    def leader(self, c):
        def find():
            for n in c.nodes:
                s = n.running and status(n)
                if s and s["role"] == "leader":
                    return n
            return None
        return wait_for(find, WAIT_S, "a leader")

    def run_case(self, c):
        L = self.leader(c)
        others = [n for n in c.nodes if n is not L]
        zk = self.client(c, [n.idx for n in others])
        for i in range(10):
            create_acked(zk, "/before-%d" % i, b"b%d" % i)

        # The leader removed: it commits C_new, steps down and exits, naming it.
        su = self.client(c, [n.idx for n in others], auth=True)
        reconfig_leave(su, L.id)
        wait_for(lambda: not L.running, WAIT_S, "removed leader %d to exit" % L.id)
        self.assertEqual(L.proc.returncode, 0)
        m = re.search(r"removed from the cluster: the configuration committed at index "
                      r"(\d+) does not list node %d" % L.id, log_of(L))
        self.assertTrue(m, c.tail(L, 30))
        drop = int(m.group(1))
        mark = marker(L)
        self.assertIn("node %d removed from the cluster at " % L.id, mark)
        self.assertIn("the configuration committed at index %d does not list" % drop, mark)
        # A node removed by an older keeld has no marker: its log decides.
        os.unlink(marker_path(L))
        for i in range(10):
            create_acked(zk, "/after-%d" % i, b"a%d" % i)
        zk.stop()
        zk.close()
        su.stop()
        su.close()

        # Every node down; the removed one back alone: it stops at start-up
        # by its log, and writes the marker it had lost.
        for n in others:
            c.stop(n.idx)
        self.start_removed(c, L, drop, 1)
        self.assertIn("does not list node %d" % L.id, marker(L))
        self.assertIn("found at start-up", marker(L))

        # The others back; the removed one again beside them: stopped by its
        # marker now, as early, and it disturbs nobody (their term stays).
        for n in others:
            c.start(n.idx, wait=False)
        L2 = self.leader(c)
        self.assertIn(L2, others)
        self.start_marked(c, L)
        self.assertEqual(log_of(L).count("found at start-up; this node does not start"), 1)

        # A follower removed while stopped: started with the others up, it
        # is told by the leader (its own log does not say so).
        F = [n for n in others if n is not L2][0]
        c.stop(F.idx)
        rest = [n for n in others if n is not F]
        su = self.client(c, [n.idx for n in rest], auth=True)
        reconfig_leave(su, F.id)
        su.stop()
        su.close()
        c.start(F.idx, wait=False)
        wait_for(lambda: not F.running, WAIT_S, "follower %d removed while down to exit" % F.id)
        self.assertEqual(F.proc.returncode, 0)
        self.assertIn("removed from the cluster: node", log_of(F))
        self.assertRegex(marker(F), r"^node %d removed from the cluster at \S+: node \d+ "
                         r"\(the leader\) says so\n$" % F.id)

        # Restarted on its old directories: its marker stops it at once (it
        # used to campaign until a leader told it again).
        self.start_marked(c, F)

        # Added back with the same id on fresh directories (as a new member:
        # its zoo.cfg names it an observer), after more writes than one
        # AppendEntries carries: it catches up on the history that lists
        # it, drops it, and lists it again -- and stays.
        zk = self.client(c, [n.idx for n in rest])
        for i in range(40):
            create_acked(zk, "/gap-%d" % i, b"g")
        shutil.rmtree(os.path.join(F.workdir, "data"))
        c.learners = {F.id}
        c.configure(F)
        c.learners = set()
        c.start(F.idx)
        su = self.client(c, [n.idx for n in rest], auth=True)
        joining = "server.%d=127.0.0.1:%d:%d:participant;127.0.0.1:%d" % (
            F.id, F.peer_port, F.election_port, F.client_port)

        data = reconfig(su, lambda d: joining.encode() in d, "node %d added back" % F.id,
                        joining=joining, leaving=None)
        self.assertIn(joining.encode(), data)
        su.stop()
        su.close()
        create_acked(zk, "/readded", b"r")
        zk.stop()
        zk.close()
        rf = self.client(c, [F.idx])
        rf.sync("/")
        self.assertEqual(rf.get("/readded")[0], b"r")
        self.assertEqual(rf.get("/before-3")[0], b"b3")
        rf.stop()
        rf.close()
        self.assertTrue(F.running, c.tail(F, 30))
        self.assertEqual(log_of(F).count("removed from the cluster:"), 2, c.tail(F, 30))
        self.assertFalse(os.path.exists(marker_path(F)))
        rest.append(F)

        # No acknowledged write lost: on each remaining member.
        for n in rest:
            zk = self.client(c, [n.idx])
            zk.sync("/")
            for i in range(10):
                self.assertEqual(zk.get("/before-%d" % i)[0], b"b%d" % i)
                self.assertEqual(zk.get("/after-%d" % i)[0], b"a%d" % i)
            zk.stop()
            zk.close()

    def start_marked(self, c, n):
        """Started on directories holding REMOVED: it stops before anything."""
        c.start(n.idx, wait=False)
        wait_for(lambda: not n.running, WAIT_S, "node %d to stop at its marker" % n.id)
        self.assertEqual(n.proc.returncode, 0, c.tail(n, 30))
        log = log_of(n)
        this_start = log[log.rfind("starting: config"):]
        self.assertIn("removed from the cluster: %s says so (\"node %d removed from the "
                      "cluster at " % (marker_path(n), n.id), this_start)
        self.assertIn("move dataDir and dataLogDir aside", this_start)
        self.assertIn("stopping: this node was removed from the cluster", this_start)
        self.assertFalse([ln for ln in this_start.splitlines() if ln.endswith(" ready")])
        self.assertNotIn("raft: ", this_start)
        self.assertNotIn("keel-wal", this_start)  # the log not even opened
        self.assertTrue(refused(n.client_port))

    def start_removed(self, c, n, drop, times):
        c.start(n.idx, wait=False)
        wait_for(lambda: not n.running, WAIT_S, "node %d to stop at start-up" % n.id)
        self.assertEqual(n.proc.returncode, 0, c.tail(n, 30))
        log = log_of(n)
        found = re.findall(r"removed from the cluster: the configuration at index (\d+) in "
                           r"this node's log does not list node %d, and the log says it was "
                           r"committed \(up to (\d+)\): found at start-up" % n.id, log)
        self.assertEqual(len(found), times, c.tail(n, 30))
        self.assertEqual(int(found[-1][0]), drop)
        self.assertGreaterEqual(int(found[-1][1]), drop)
        this_start = log[log.rfind("starting: config"):]
        self.assertIn("stopping: this node was removed from the cluster", this_start)
        self.assertFalse([ln for ln in this_start.splitlines() if ln.endswith(" ready")])
        self.assertNotIn("raft: term", this_start)
        self.assertTrue(refused(n.client_port))


if __name__ == "__main__":
    unittest.main(verbosity=2)
