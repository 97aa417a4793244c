"""Where a leader thinks each session's client is (pipeline.c trk_own, mntr
keel_sessions_at_peers): it holds its commit heartbeats (news_first) only
while that count is 0, so a count that reaches 0 while a follower still has
a client lets the follower's reads miss a write answered meanwhile (the
stalled follower of test_news_first.py). A count too high only costs the
held heartbeats.

Each case pauses the follower (SIGSTOP) so that its TOUCH, sent every
tickTime/2, cannot repair the count before it is read:

- a reattach with a wrong password, at the leader, of a session whose client
  is at a follower: answered "session expired" and moving nothing, it used
  to move the count's session to the leader (count 0);
- the same session reattached with its password at the leader (count 0:
  right), then back at the follower (1), then closed (0);
- a store restored from a snapshot: a session made at node L and moved to a
  follower before L's snapshot; L restarted from it used to take the
  session for its own (its id's top byte) -- now it counts it as elsewhere
  until a TOUCH names it.
"""
import os
import re
import socket
import struct
import sys
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zkcluster import KeelCluster, wait_for  # noqa: E402
import test_membership as tm  # noqa: E402  (its helpers; a module: no tests collected)

from kazoo.client import KazooClient  # noqa: E402

TOKEN = "sessowner"


def mntr(cl, i, key):
    m = re.search(r"^%s\t(\d+)$" % key, cl.four_letter(i, "mntr"), re.M)
    assert m, "no %s in node %d's mntr" % (key, i + 1)
    return int(m.group(1))


def at_peers(cl, i):
    return mntr(cl, i, "keel_sessions_at_peers")


def metric(cl, i, name):
    code, text = tm.http(cl.nodes[i].admin_port, "GET", "/metrics", token=TOKEN, timeout=10)
    assert code == 200, text
    m = re.search(r"^%s (\S+)$" % re.escape(name), text, re.M)
    assert m, "no %s on node %d's /metrics" % (name, i + 1)
    return float(m.group(1))


def recv_exact(s, n):
    out = b""
    while len(out) < n:
        d = s.recv(n - len(out))
        if not d:
            raise ConnectionError("closed after %d of %d bytes" % (len(out), n))
        out += d
    return out


def raw_connect(cl, i, sid, pw, timeout_ms=4000):
    """A ZooKeeper ConnectRequest (jute) at node i reattaching sid with pw
    (sid 0: a new session): (the socket, the answer's timeout -- 0 is
    "session expired" --, its session id, its password)."""
    body = struct.pack(">iqiqi", 0, 0, timeout_ms, sid, len(pw)) + pw + b"\0"
    s = socket.create_connection(("127.0.0.1", cl.nodes[i].client_port), timeout=10)
    s.sendall(struct.pack(">i", len(body)) + body)
    n = struct.unpack(">i", recv_exact(s, 4))[0]
    ans = recv_exact(s, n)
    _, tmo, got, n = struct.unpack(">iiqi", ans[:20])
    assert tmo == 0 or not sid or got == sid, (hex(sid), hex(got))
    return s, tmo, got, ans[20:20 + n]


class SessionOwner(unittest.TestCase):
    def test_reattach_moves_count_only_with_password(self):
        with KeelCluster(3, admin_token=TOKEN) as cl:
            leader = cl.leader()
            self.assertIsNotNone(leader)
            f = [i for i in range(3) if i != leader][0]
            zr = KazooClient(hosts=cl.connect_string([f]), timeout=10.0)
            zr.start(timeout=30)
            try:
                zr.exists("/")
                wait_for(lambda: at_peers(cl, leader) == 1, timeout=10,
                         what="the leader counting the follower's session")
                sid, pw = zr.client_id
                expired0 = mntr(cl, leader, "keel_session_expired_password")
                cl.pause(f)
                try:
                    s, tmo, _, _ = raw_connect(cl, leader, sid, bytes(b ^ 0xff for b in pw))
                    s.close()
                    self.assertEqual(tmo, 0, "a wrong password's reattach was not expired")
                    self.assertEqual(mntr(cl, leader, "keel_session_expired_password"),
                                     expired0 + 1)
                    # answered after it applied at the leader: the count is final
                    self.assertEqual(at_peers(cl, leader), 1,
                                     "a wrong password's reattach at the leader took the "
                                     "count of a session whose client is at a follower")
                    # /metrics: set when the pipeline publishes (every 100 ms)
                    wait_for(lambda: metric(cl, leader, "keel_sessions_at_peers") == 1,
                             timeout=5, what="keel_sessions_at_peers 1 on /metrics")
                    # its own password: the session is at the leader now
                    s, tmo, _, _ = raw_connect(cl, leader, sid, pw)
                    self.assertGreater(tmo, 0)
                    self.assertEqual(at_peers(cl, leader), 0)
                    s.close()
                finally:
                    cl.resume(f)
                # the follower lets go of the client's connection; the client
                # (its one server) reattaches there: back at the follower. Its
                # request first (ConnectionLoss retried: the follower's TOUCH
                # may name the session before it applies the move and closes)
                zr.retry(zr.exists, "/")
                self.assertEqual(zr.client_id[0], sid)
                wait_for(lambda: at_peers(cl, leader) == 1, timeout=15,
                         what="the session counted at the follower again")
            finally:
                zr.stop()
                zr.close()
            wait_for(lambda: at_peers(cl, leader) == 0, timeout=10,
                     what="the closed session no longer counted")

    def test_restored_session_counted_until_touched(self):
        with KeelCluster(3, admin_token=TOKEN) as cl:
            L = cl.leader()
            self.assertIsNotNone(L)
            f = [i for i in range(3) if i != L][0]
            # made at L (its id's top byte), then reattached at f, its only
            # server; L closes the first connection as the reattach applies
            s, tmo, sid, pw = raw_connect(cl, L, 0, b"\0" * 16)
            self.assertGreater(tmo, 0)
            self.assertEqual(sid >> 56, cl.nodes[L].id, "made at the leader")
            zr = KazooClient(hosts=cl.connect_string([f]), timeout=10.0, client_id=(sid, pw))
            zr.start(timeout=30)
            s.close()
            try:
                zr.exists("/")
                self.assertEqual(zr.client_id[0], sid)
                wait_for(lambda: at_peers(cl, L) == 1, timeout=15,
                         what="the session at follower %d" % (f + 1))
                # a write after the reattach: the snapshot's index is past it
                # (else the restarted node applies the reattach again)
                zr.create("/so-" + uuid.uuid4().hex[:8], b"")
                code, text = tm.http(cl.nodes[L].admin_port, "POST", "/snapshot",
                                     token=TOKEN, timeout=60)
                self.assertEqual(code, 200, text)
                # f paused: no TOUCH of f's (it may still take L for the
                # leader) names the session at L before the count is read
                cl.pause(f)
                try:
                    cl.stop(L)
                    cl.start(L)
                    wait_for(lambda: cl.mode(L) in ("leader", "follower"), timeout=30,
                             what="node %d back" % (L + 1))
                    self.assertEqual(at_peers(cl, L), 1,
                                     "a session restored from a snapshot taken for the "
                                     "restarted node's own (its id's top byte) while its "
                                     "client is at a follower")
                finally:
                    cl.resume(f)
                zr.retry(zr.exists, "/")  # a reconnect may be under way: ConnectionLoss retried
                self.assertEqual(zr.client_id[0], sid)
            finally:
                zr.stop()
                zr.close()


if __name__ == "__main__":
    unittest.main()
