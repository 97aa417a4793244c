"""Reattaching a session (keel and ZooKeeper alike, KEEL_TEST_TARGET=zookeeper).

A client that reattaches its session at a server lagging behind the
session's creation keeps its session: the server first applies what the
leader had committed (the reattach goes through the log, as ZooKeeper
revalidates a reattach at the leader), then looks the session up again.
Without that, a follower that had not applied the createSession yet answered
"session expired" for a live session. A follower (node 3, or node 2 if 3
leads) is paused (SIGSTOP) while a raw client on node 1 opens a session and
writes; right after SIGCONT the same session reattaches there (kazoo), and
node 1 closes the first connection. Repeated a few times: the lag window is
short.

A session's older connection does not stay live beside the new one (raw
protocol, so the old socket can be watched):
* reattached at the same server: ZooKeeper 3.8 closes the older connection
  at once (checked against Debian's); keel left it open (`cons` listed two
  lines with the same sid, both got the session's replies and events);
* reattached at another server: the old server's connection is useless to the
  session -- ZooKeeper's leader answers a write on it SessionMovedException,
  a connection-level error on which the old server closes the connection
  without an answer (it never sends SESSIONMOVED, -118); keel closes it as
  soon as the reattach is applied there. Before, keel answered a write on it
  (and delivered the session's watch events to it).
"""
import os
import socket
import struct
import sys
import time
import unittest
import uuid

sys.dont_write_bytecode = True  # test_raw_protocol is imported for its helpers
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zkcluster import Cluster  # noqa: E402

from kazoo.client import KazooClient  # noqa: E402
from test_raw_protocol import frame, recv_frame, ustr  # noqa: E402

CLUSTER = None
KEEL = os.environ.get("KEEL_TEST_TARGET", "keel") != "zookeeper"


def setUpModule():
    global CLUSTER
    CLUSTER = Cluster.create(size=3).__enter__()
    CLUSTER.wait_ready()


def tearDownModule():
    if CLUSTER:
        CLUSTER.destroy()


def connect(node, sid=0, pw=b"\0" * 16):
    """ConnectRequest (asks 30 s; the test timings give at most 4 s). Tried
    again while the server drops it: ZooKeeper closes its clients' connections
    while it elects a leader (after the pause of one in the first test)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            s = socket.create_connection(("127.0.0.1", CLUSTER.nodes[node].client_port),
                                         timeout=20)
            s.sendall(frame(struct.pack(">iqiq", 0, 0, 30000, sid) + ustr_bytes(pw) + b"\0"))
            r = recv_frame(s)
            break
        except (OSError, EOFError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    _, _, got = struct.unpack(">iiq", r[:16])
    (n,) = struct.unpack(">i", r[16:20])
    return s, got, r[20:20 + n]


def ustr_bytes(b):
    return struct.pack(">i", len(b)) + b


def ping(s):
    s.sendall(frame(struct.pack(">ii", -2, 11)))
    while struct.unpack(">i", recv_frame(s)[:4])[0] != -2:
        pass  # a watch event


def closed(s, keep=None):
    """True once the server closed s (EOF or reset); False if it answers
    or sends anything (a watch event, a reply) or stays open for 15 s.
    keep: the session's new connection, pinged meanwhile so that the
    session (4 s timeout at test timings) does not expire and close s."""
    deadline = time.monotonic() + 15
    s.settimeout(0.5)
    while time.monotonic() < deadline:
        try:
            return s.recv(4096) == b""
        except ConnectionResetError:
            return True
        except socket.timeout:
            pass
        if keep:
            ping(keep)
    return False


def get_data(s, xid, path, watch=False):
    s.sendall(frame(struct.pack(">ii", xid, 4) + ustr(path) + struct.pack(">?", watch)))
    return struct.unpack(">iqi", recv_frame(s)[:16])


def create_req(xid, path):
    acl = struct.pack(">i", 1) + struct.pack(">i", 31) + ustr("world") + ustr("anyone")
    return frame(struct.pack(">ii", xid, 1) + ustr(path) + struct.pack(">i", 0) + acl +
                 struct.pack(">i", 0))


def cons_sids(node, sid):
    return CLUSTER.four_letter(node, "cons").count("sid=0x%x," % sid)


class Reattach(unittest.TestCase):
    def setUp(self):
        CLUSTER.wait_ready()

    def test_reattach_at_a_lagging_follower(self):
        cl = CLUSTER
        root = "/reattach-%s" % uuid.uuid4().hex[:8]
        for rnd in range(5):
            # a follower other than node 1 (ZooKeeper drops every client
            # while it elects a new leader)
            CLUSTER.wait_ready()
            lag = 2 if cl.mode(2) == "follower" else 1
            # The session's first connection is raw: a kazoo client would
            # reconnect when it is closed below and take the session back.
            cl.pause(lag)
            try:
                s1, sid, pw = connect(0)
                for i in range(20):
                    s1.sendall(create_req(i + 1, "%s-r%d-%d" % (root, rnd, i)))
                for i in range(20):
                    self.assertEqual(struct.unpack(">iqi", recv_frame(s1)[:16])[::2], (i + 1, 0))
            finally:
                cl.resume(lag)
            b = KazooClient(hosts=cl.connect_string([lag]), client_id=(sid, pw),
                            timeout=10.0)
            b.start(timeout=30)
            self.assertEqual(b.client_id[0], sid, "round %d: a new session" % rnd)
            b.sync("/")
            self.assertIsNotNone(b.exists("%s-r%d-19" % (root, rnd)))
            b.create("%s-after-%d" % (root, rnd), b"y")  # the session is alive
            if KEEL:
                self.assertTrue(closed(s1), "round %d: the first connection left open" % rnd)
            b.stop()
            b.close()
            s1.close()
            time.sleep(0.2)

    def test_same_server_closes_the_older_connection(self):
        s1, sid, pw = connect(0)
        self.assertEqual(get_data(s1, 1, "/")[2], 0)
        s2, sid2, _ = connect(0, sid, pw)
        try:
            self.assertEqual(sid2, sid)
            self.assertTrue(closed(s1, s2), "the older connection stayed open")
            # one line for the session; its statistics as ZooKeeper 3.8 shows
            # them after a reattach (keel showed lop=SESS and lzxid=0xfff...)
            line = [ln for ln in CLUSTER.four_letter(0, "cons").splitlines()
                    if "sid=0x%x," % sid in ln]
            self.assertEqual(len(line), 1, line)
            self.assertIn(",lop=null,", line[0])
            self.assertIn(",lcxid=0x0,lzxid=0x0,lresp=0,llat=0,", line[0])
            self.assertEqual(get_data(s2, 1, "/")[2], 0)  # the new one serves
            # A wrong password takes nothing over (ZooKeeper 3.8 closes the
            # live connection even then; keel does not): answered "expired".
            # Nor at another server (keel: its reattach goes through the log,
            # and every node checks the password before letting go).
            for node in (0, 1):
                s3, sid3, _ = connect(node, sid, b"x" * 16)
                self.assertEqual(sid3, 0)
                s3.close()
            if KEEL:
                # a sync is answered after this node applied the reattaches
                # (they were committed before its marker was proposed)
                s2.sendall(frame(struct.pack(">ii", 2, 9) + ustr("/")))
                self.assertEqual(struct.unpack(">iqi", recv_frame(s2)[:16])[::2], (2, 0))
                self.assertEqual(cons_sids(0, sid), 1)
        finally:
            s1.close()
            s2.close()

    def test_other_server_closes_the_stale_connection(self):
        path = "/moved-%s" % uuid.uuid4().hex[:8]
        for old, new in ((0, 1), (1, 2), (2, 0)):  # the leader is one of them
            with self.subTest(old=old, new=new):
                s1, sid, pw = connect(old)
                # a watch through the old connection, fired below by the
                # new one's create: the old one must not get its event
                s1.sendall(frame(struct.pack(">ii", 1, 3) + ustr("%s-new%d" % (path, new)) +
                                 struct.pack(">?", True)))
                self.assertEqual(struct.unpack(">iqi", recv_frame(s1)[:16])[2], -101)
                s2, sid2, _ = connect(new, sid, pw)
                try:
                    self.assertEqual(sid2, sid)
                    if KEEL:
                        # closed once the reattach is applied there: no
                        # request needed (ZooKeeper waits for a write)
                        self.assertTrue(closed(s1, s2), "stale connection left open")
                        self.assertEqual(cons_sids(old, sid), 0)
                    # a write on the stale connection is not served
                    try:
                        s1.sendall(create_req(2, "%s-stale%d" % (path, old)))
                    except OSError:
                        pass
                    self.assertTrue(closed(s1, s2), "a write on the stale connection answered")
                    # the new connection serves, and the write did not happen
                    self.assertEqual(get_data(s2, 3, "%s-stale%d" % (path, old))[2], -101)
                    s2.sendall(create_req(4, "%s-new%d" % (path, new)))
                    self.assertEqual(struct.unpack(">iqi", recv_frame(s2)[:16])[2], 0)
                finally:
                    s1.close()
                    s2.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
