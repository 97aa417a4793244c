"""A REMOVED a node cannot trust does not leave the REMOVED marker.

Since session 13 a node told REMOVED writes `REMOVED` in its dataLogDir and
refuses every later start until an operator wipes its directories: a wrong
REMOVED, which before only made the node exit (a restart undid it), takes
the node out for good. A leader cut off after it removed a node, while a
later leader added it back, tells it REMOVED when the node (a voter again)
asks it for votes. The REMOVED now carries the sender's term; a node whose
log holds an entry of a later term ignores it (a later leader exists).

Follower F is stopped and its peer UDP address taken over by this test,
which sends follower V well-formed keel frames from F (test_refused_forged's
framing):
* a REMOVED whose payload is no term (3 bytes): dropped as malformed,
  counted in keel_peer_messages_malformed_total{type="removed"} (before:
  only logged, no type to count it under), V serving, no marker;
* a REMOVED of a term older than V's last entry: V logs it as ignored, keeps
  serving, no marker (before: V exited 0 and left the marker);
* a REMOVED without a term (an older keeld's): V stops (status 0) without
  the marker, as every REMOVED did before session 13; restarted on the same
  directories it serves again;
* F then removed from the cluster (its address still known to V): a
  REMOVED from it, a non-member, is ignored (V serves, no marker), and one
  that does not decode is counted as malformed all the same (before
  session 14: dropped uncounted, the member check came first).
"""
import contextlib
import os
import re
import socket
import struct
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zkcluster import KeelCluster, wait_for  # noqa: E402
import test_refused_forged as rf  # noqa: E402  (its framing; a module: no tests collected)
import test_membership as tm  # noqa: E402  (its helpers)
import test_removed_restart as rr  # noqa: E402  (its leader(); a module: no tests collected)
from test_membership import status  # noqa: E402

from kazoo.client import KazooClient  # noqa: E402

TOKEN = tm.TOKEN  # tm.status reads /status with it
MSG_REMOVED = 4
WAIT_S = 60  # fail-safe of each wait; never a timing assertion


def marker_path(n):
    return os.path.join(n.workdir, "data", "REMOVED")


@contextlib.contextmanager
def client_at(c, n):
    zk = KazooClient(hosts=c.connect_string([n.idx]), timeout=10.0)
    zk.start(timeout=30)
    try:
        yield zk
    finally:
        zk.stop()
        zk.close()


class RemovedStale(unittest.TestCase):
    def test_stale_removed(self):
        with KeelCluster(3, admin_token=TOKEN) as c:
            try:
                self.run_case(c)
            except BaseException:
                for n in c.nodes:
                    sys.stderr.write("--- node %d log:\n%s\n" % (n.id, c.tail(n, 25)))
                raise

    def run_case(self, c):
        lead = c.leader()
        v, f = [c.nodes[i] for i in range(3) if i != lead]
        with client_at(c, v) as zk:
            zk.create("/w1", b"1")
            zk.sync("/")
            self.assertEqual(zk.get("/w1")[0], b"1")  # V applied it: its last entry's term
        term = status(v)["term"]
        self.assertGreaterEqual(term, 1)
        c.stop(f.idx)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind(("127.0.0.1", f.peer_port))
            # A payload that is no term: malformed, counted by its type.
            s.sendto(rf.frame(MSG_REMOVED, f.id, v.id, 0x7E000000, b"\x01\x02\x03"),
                     ("127.0.0.1", v.peer_port))
            wait_for(lambda: not v.running or rf.malformed(v).get("removed") == 1, WAIT_S,
                     "the malformed REMOVED counted at node %d (%s)"
                     % (v.id, v.running and rf.malformed(v)))
            self.assertTrue(v.running, c.tail(v, 30))
            wait_for(lambda: status(v)["peer_messages_malformed"]["removed"] == 1, WAIT_S,
                     "node %d's /status counting it" % v.id)
            self.assertIn("peer message from node %d of type %d (removed, 3 bytes): its term "
                          "is not 8 bytes: dropped (1 of the type so far)" % (f.id, MSG_REMOVED),
                          rf.out_log(v))
            self.assertFalse(os.path.exists(marker_path(v)))
            # A leader of an older term than V's log: ignored (logged).
            s.sendto(rf.frame(MSG_REMOVED, f.id, v.id, 0x7E000001, struct.pack("<Q", term - 1)),
                     ("127.0.0.1", v.peer_port))
            want = r"REMOVED from node %d of 8 bytes: not from a leader as recent as this " \
                   r"node's log .*ignored \(1 so far\)" % f.id
            wait_for(lambda: not v.running or re.search(want, rf.out_log(v)), WAIT_S,
                     "node %d taking the stale REMOVED" % v.id)
            self.assertTrue(v.running, c.tail(v, 30))
            self.assertFalse(os.path.exists(marker_path(v)))
            with client_at(c, v) as zk:
                zk.create("/w2", b"2")
                self.assertEqual(zk.get("/w2")[0], b"2")

            # Without a term (an older keeld): stops, no marker.
            s.sendto(rf.frame(MSG_REMOVED, f.id, v.id, 0x7E000002, b""),
                     ("127.0.0.1", v.peer_port))
            wait_for(lambda: not v.running, WAIT_S, "node %d to stop" % v.id)
            self.assertEqual(v.proc.returncode, 0, c.tail(v, 30))
            log = rf.out_log(v)
            self.assertIn("removed from the cluster: node %d (the leader) says so" % f.id, log)
            self.assertIn("removed: no %s written" % marker_path(v), log)
            self.assertFalse(os.path.exists(marker_path(v)))
        finally:
            s.close()
        # Restarted on the same directories, beside the others: it serves.
        c.start(f.idx)
        c.start(v.idx)
        with client_at(c, v) as zk:
            zk.sync("/")
            self.assertEqual(zk.get("/w2")[0], b"2")
        self.non_member(c, v, f)

    def non_member(self, c, v, f):
        """F removed (its address still known to V's transport: nothing
        forgets it): a REMOVED from F is not a member's word, ignored; one
        that does not decode is counted all the same (until session 14 the
        member check came first and it went uncounted)."""
        def remove_f():
            n = rr.RemovedRestart.leader(self, c)
            code, body = tm.http(n.admin_port, "POST", "/members",
                                 {"action": "remove", "id": f.id})
            return code == 200 or f.id not in [m["id"] for m in status(v)["peers"]]
        wait_for(remove_f, WAIT_S, "node %d removed" % f.id)
        wait_for(lambda: not f.running, WAIT_S, "removed node %d to stop" % f.id)
        wait_for(lambda: f.id not in [m["id"] for m in status(v)["peers"]], WAIT_S,
                 "node %d's configuration without node %d" % (v.id, f.id))
        before = rf.malformed(v).get("removed")
        self.assertEqual(before, 0)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind(("127.0.0.1", f.peer_port))
            # well-formed, of a term past any: a non-member's, ignored
            s.sendto(rf.frame(MSG_REMOVED, f.id, v.id, 0x7E000010, struct.pack("<Q", 1 << 40)),
                     ("127.0.0.1", v.peer_port))
            # then one that does not decode: counted (V takes them in order)
            s.sendto(rf.frame(MSG_REMOVED, f.id, v.id, 0x7E000011, b"\x01\x02\x03"),
                     ("127.0.0.1", v.peer_port))
            wait_for(lambda: not v.running or rf.malformed(v).get("removed") == 1, WAIT_S,
                     "the non-member's malformed REMOVED counted at node %d (%s)"
                     % (v.id, v.running and rf.malformed(v)))
        finally:
            s.close()
        self.assertTrue(v.running, c.tail(v, 30))
        self.assertFalse(os.path.exists(marker_path(v)))
        self.assertIn("peer message from node %d of type %d (removed, 3 bytes): its term "
                      "is not 8 bytes: dropped (1 of the type so far)" % (f.id, MSG_REMOVED),
                      rf.out_log(v))
        with client_at(c, v) as zk:
            zk.create("/w3", b"3")
            self.assertEqual(zk.get("/w3")[0], b"3")


if __name__ == "__main__":
    unittest.main(verbosity=2)
