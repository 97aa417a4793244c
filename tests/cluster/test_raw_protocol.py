"""ZooKeeper wire-protocol corners no client library here reaches, spoken by
hand (jute records over a socket), against keel by default or ZooKeeper
(KEEL_TEST_TARGET=zookeeper): multiRead (opcode 22), a client whose last
seen zxid is ahead of the server being refused (connection closed), and
reconfig (opcode 16) refused with ZRECONFIGDISABLED when reconfigEnabled is
off (the default; kazoo cannot be used: it does not know that error code).
"""
import os
import socket
import struct
import sys
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zkcluster import Cluster  # noqa: E402

from kazoo.client import KazooClient  # noqa: E402

CLUSTER = None


def setUpModule():
    global CLUSTER
    CLUSTER = Cluster.create(size=3).__enter__()


def tearDownModule():
    if CLUSTER:
        CLUSTER.destroy()


def ustr(s):
    b = s.encode()
    return struct.pack(">i", len(b)) + b


def frame(body):
    return struct.pack(">i", len(body)) + body


def recv_exact(s, n):
    out = b""
    while len(out) < n:
        d = s.recv(n - len(out))
        if not d:
            raise EOFError("connection closed")
        out += d
    return out


def recv_frame(s):
    (n,) = struct.unpack(">i", recv_exact(s, 4))
    return recv_exact(s, n)


def connect(port, last_zxid=0):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    body = struct.pack(">iqiq", 0, last_zxid, 10000, 0) + struct.pack(">i", 16) + b"\0" * 16 + b"\0"
    s.sendall(frame(body))
    return s


class Raw(unittest.TestCase):
    def test_multi_read(self):
        root = "/raw-" + uuid.uuid4().hex[:8]
        zk = KazooClient(hosts=CLUSTER.connect_string())
        zk.start(timeout=30)
        try:
            zk.create(root, b"top")
            zk.create(root + "/a", b"A")
            zk.create(root + "/b")
            port = CLUSTER.nodes[0].client_port
            s = connect(port)
            resp = recv_frame(s)
            (_, timeout, sid) = struct.unpack(">iiq", resp[:16])
            self.assertNotEqual(sid, 0)
            s.sendall(frame(struct.pack(">ii", 1, 9) + ustr(root)))  # sync first
            recv_frame(s)
            ops = b""
            for typ, path in ((4, root + "/a"), (8, root), (4, root + "/nope")):
                ops += struct.pack(">i?i", typ, False, -1) + ustr(path) + b"\0"
            ops += struct.pack(">i?i", -1, True, -1)
            s.sendall(frame(struct.pack(">ii", 2, 22) + ops))
            r = recv_frame(s)
            xid, zxid, err = struct.unpack(">iqi", r[:16])
            self.assertEqual((xid, err), (2, 0))
            off = 16
            # getData /a
            typ, done, e = struct.unpack(">i?i", r[off:off + 9]); off += 9
            self.assertEqual((typ, done, e), (4, False, 0))
            (n,) = struct.unpack(">i", r[off:off + 4]); off += 4
            self.assertEqual(r[off:off + n], b"A"); off += n
            version = struct.unpack(">i", r[off + 32:off + 36])[0]
            self.assertEqual(version, 0)
            off += 68
            # getChildren root
            typ, done, e = struct.unpack(">i?i", r[off:off + 9]); off += 9
            self.assertEqual(typ, 8)
            (cnt,) = struct.unpack(">i", r[off:off + 4]); off += 4
            names = []
            for _ in range(cnt):
                (n,) = struct.unpack(">i", r[off:off + 4]); off += 4
                names.append(r[off:off + n].decode()); off += n
            self.assertEqual(sorted(names), ["a", "b"])
            # getData of a missing node: an error result, the others unaffected
            typ, done, e = struct.unpack(">i?i", r[off:off + 9]); off += 9
            self.assertEqual((typ, e), (-1, -101))
            (zerr,) = struct.unpack(">i", r[off:off + 4]); off += 4
            self.assertEqual(zerr, -101)
            typ, done, e = struct.unpack(">i?i", r[off:off + 9])
            self.assertEqual((typ, done), (-1, True))
            s.close()
        finally:
            zk.delete(root, recursive=True)
            zk.stop()
            zk.close()

    def test_client_ahead_is_refused(self):
        port = CLUSTER.nodes[1].client_port
        s = connect(port, last_zxid=0x7fff000000000000)
        with self.assertRaises((EOFError, ConnectionResetError)):
            recv_frame(s)
        s.close()
        # an ordinary client is served
        s = connect(port)
        (_, _, sid) = struct.unpack(">iiq", recv_frame(s)[:16])
        self.assertNotEqual(sid, 0)
        s.close()

    def test_reconfig_disabled(self):
        s = connect(CLUSTER.nodes[0].client_port)
        try:
            recv_frame(s)
            null = struct.pack(">i", -1)
            # ReconfigRequest: joiningServers, leavingServers, newMembers, curConfigId
            body = struct.pack(">ii", 7, 16) + null + ustr("3") + null + struct.pack(">q", -1)
            s.sendall(frame(body))
            xid, _, err = struct.unpack(">iqi", recv_frame(s)[:16])
            self.assertEqual((xid, err), (7, -123))
        finally:
            s.close()


if __name__ == "__main__":
    unittest.main()
