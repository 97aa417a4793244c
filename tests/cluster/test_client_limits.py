"""The client front end's limits and ip ACLs against a 3-node keel cluster
(maxClientCnxns=4, globalOutstandingLimit=2, admin API on):
 - ip ACLs: a node whose ACL is ip:127.0.0.1 is readable by a client on
   loopback, one that only grants ip:10.0.0.0/8 answers NoAuth, a malformed
   ip id is InvalidACL;
 - maxClientCnxns: maxClientCnxns sockets from 127.0.0.1 are served, one more
   is closed at once; counted (mntr, /metrics); a freed slot is usable again;
 - globalOutstandingLimit: a flood of pipelined creates far beyond the limit
   on one socket is throttled, not dropped: every create answered OK, in
   request order, and the throttle is counted.
"""
import os
import re
import socket
import struct
import sys
import time
import unittest
import urllib.request
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zkcluster import Cluster  # noqa: E402

# the jute framing helpers (functions only: its tests stay in its module)
from test_raw_protocol import frame, recv_frame, ustr  # noqa: E402

from kazoo.client import KazooClient  # noqa: E402
from kazoo.exceptions import InvalidACLError, NoAuthError  # noqa: E402
from kazoo.security import make_acl, OPEN_ACL_UNSAFE  # noqa: E402

MAX_CNXNS = 4
CLUSTER = None


def setUpModule():
    global CLUSTER
    CLUSTER = Cluster.create(size=3, admin_token="limits-token",
                             extra=["maxClientCnxns=%d" % MAX_CNXNS,
                                    "globalOutstandingLimit=2"]).__enter__()


def tearDownModule():
    if CLUSTER:
        CLUSTER.destroy()


def session(port):
    """A raw socket with a new session; returns it once the server answered."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    body = struct.pack(">iqiq", 0, 0, 10000, 0) + struct.pack(">i", 16) + b"\0" * 16 + b"\0"
    s.sendall(frame(body))
    (_, _, sid) = struct.unpack(">iiq", recv_frame(s)[:16])
    assert sid != 0
    return s


def create_req(xid, path):
    # CreateRequest: path, data, acl vector (world:anyone ALL), flags
    acl = struct.pack(">i", 1) + struct.pack(">i", 31) + ustr("world") + ustr("anyone")
    return frame(struct.pack(">ii", xid, 1) + ustr(path) + struct.pack(">i", 1) + b"x" +
                 acl + struct.pack(">i", 0))


def mntr(i):
    out = {}
    for line in CLUSTER.four_letter(i, "mntr").splitlines():
        k, _, v = line.partition("\t")
        out[k] = v
    return out


def metric(i, name, reason):
    url = "http://127.0.0.1:%d/metrics" % CLUSTER.nodes[i].admin_port
    with urllib.request.urlopen(url, timeout=20) as r:
        text = r.read().decode()
    m = re.search(r'^%s\{reason="%s"\} (\d+)' % (name, reason), text, re.M)
    return int(m.group(1)) if m else None


class Limits(unittest.TestCase):
    def test_ip_acl(self):
        root = "/ipacl-" + uuid.uuid4().hex[:8]
        zk = KazooClient(hosts=CLUSTER.connect_string())
        zk.start(timeout=30)
        try:
            zk.create(root, b"")
            mine = make_acl("ip", "127.0.0.1", all=True)
            zk.create(root + "/mine", b"local", acl=[mine])
            self.assertEqual(zk.get(root + "/mine")[0], b"local")
            zk.set(root + "/mine", b"changed")
            zk.create(root + "/mine/child", b"")  # CREATE granted by the ip entry
            cidr = make_acl("ip", "127.0.0.0/8", read=True)
            zk.create(root + "/cidr", b"c", acl=[cidr])
            self.assertEqual(zk.get(root + "/cidr")[0], b"c")
            with self.assertRaises(NoAuthError):
                zk.set(root + "/cidr", b"no write permission")
            other = make_acl("ip", "10.0.0.0/8", all=True)
            zk.create(root + "/other", b"remote", acl=[other])
            with self.assertRaises(NoAuthError):
                zk.get(root + "/other")
            with self.assertRaises(NoAuthError):
                zk.set(root + "/other", b"x")
            for bad in ("10.0.0.0/33", "not-an-address", "1.2.3"):
                with self.assertRaises(InvalidACLError):
                    zk.create(root + "/bad", b"", acl=[make_acl("ip", bad, all=True)])
            self.assertIsNone(zk.exists(root + "/bad"))
            with self.assertRaises(NoAuthError):
                zk.set_acls(root + "/other", OPEN_ACL_UNSAFE)  # needs ADMIN on it
        finally:
            # unreadable to us, so not for a recursive delete (it lists children);
            # deleting it takes DELETE on the parent only
            zk.delete(root + "/other")
            zk.delete(root, recursive=True)
            zk.stop()
            zk.close()

    def test_max_client_cnxns(self):
        i = 2
        port = CLUSTER.nodes[i].client_port
        # Connections of earlier tests may still be closing at the server:
        # wait until mntr's own is the only one (a wait, not an assertion).
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and int(mntr(i)["zk_num_alive_connections"]) > 1:
            time.sleep(0.05)
        before = metric(i, "keel_client_limited_total", "maxClientCnxns")
        self.assertEqual(before, 0)
        socks = [session(port) for _ in range(MAX_CNXNS)]
        try:
            extra = socket.create_connection(("127.0.0.1", port), timeout=30)
            # closed at accept, before anything is read: EOF or a reset
            try:
                self.assertEqual(extra.recv(64), b"")
            except ConnectionResetError:
                pass
            extra.close()
            # the others are still served
            for s in socks:
                s.sendall(frame(struct.pack(">ii", -2, 11)))  # ping
                (xid,) = struct.unpack(">i", recv_frame(s)[:4])
                self.assertEqual(xid, -2)
        finally:
            socks.pop().close()
        try:
            # a freed slot is usable again (mntr needs one)
            self.assertEqual(int(mntr(i)["keel_rejected_max_client_cnxns"]), 1)
            self.assertEqual(metric(i, "keel_client_limited_total", "maxClientCnxns"), 1)
        finally:
            for s in socks:
                s.close()

    def test_outstanding_limit_flood(self):
        i = 1
        port = CLUSTER.nodes[i].client_port
        root = "/flood-" + uuid.uuid4().hex[:8]
        n = 300
        s = session(port)
        try:
            reqs = create_req(1, root)
            reqs += b"".join(create_req(2 + k, "%s/n%03d" % (root, k)) for k in range(n))
            s.sendall(reqs)
            for k in range(n + 1):
                r = recv_frame(s)
                xid, zxid, err = struct.unpack(">iqi", r[:16])
                self.assertEqual((xid, err), (1 + k, 0))
                want = root if k == 0 else "%s/n%03d" % (root, k - 1)
                (plen,) = struct.unpack(">i", r[16:20])
                self.assertEqual(r[20:20 + plen].decode(), want)
        finally:
            s.close()
        m = mntr(i)
        self.assertGreaterEqual(int(m["keel_throttled_outstanding"]), 1)
        self.assertEqual(int(m["zk_outstanding_requests"]), 0)
        self.assertGreaterEqual(metric(i, "keel_client_limited_total",
                                       "globalOutstandingLimit"), 1)
        zk = KazooClient(hosts=CLUSTER.connect_string())
        zk.start(timeout=30)
        try:
            zk.sync(root)
            self.assertEqual(len(zk.get_children(root)), n)
        finally:
            zk.delete(root, recursive=True)
            zk.stop()
            zk.close()


if __name__ == "__main__":
    unittest.main()
