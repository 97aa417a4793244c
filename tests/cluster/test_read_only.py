"""Read-only mode (readonlymode.enabled=true) on a 3-node keel cluster.

Two nodes stop: the third, without a quorum, closes its clients after the
grace period and serves read-only clients (canBeReadOnly): reads from its
state, writes and sync answered ZNOTREADONLY, clients that cannot take
read-only refused, isro "ro". The two come back: it leaves the mode, and the
read-only client moves to a read-write server and writes again.
"""
import logging
import os
import socket
import struct
import sys
import threading
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zkcluster import Cluster, wait_for  # noqa: E402
from test_raw_protocol import frame, recv_frame  # noqa: E402

from kazoo.client import KazooClient  # noqa: E402
from kazoo.exceptions import NotReadOnlyCallError  # noqa: E402
from kazoo.protocol.states import KeeperState  # noqa: E402

WAIT_S = 60  # fail-safe for each wait below; never a timing assertion
logging.getLogger("kazoo").setLevel(logging.CRITICAL)  # its reconnects are expected here


def raw_connect(port, read_only, session_id=0, passwd=b"\0" * 16):
    """A ConnectRequest with or without canBeReadOnly; the reply or None (closed)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    try:
        body = (struct.pack(">iqiq", 0, 0, 10000, session_id) + struct.pack(">i", 16) + passwd +
                (b"\1" if read_only else b"\0"))
        s.sendall(frame(body))
        try:
            return recv_frame(s)
        except (EOFError, ConnectionResetError):
            return None
    finally:
        s.close()


class ReadOnly(unittest.TestCase):
    def test_read_only_mode(self):
        with Cluster.create(size=3, extra=["readonlymode.enabled=true"]) as cl:
            root = "/ro-" + uuid.uuid4().hex[:8]
            rw = KazooClient(hosts=cl.connect_string())
            rw.start(timeout=30)
            rw.create(root, b"before")
            rw.stop()
            rw.close()
            self.assertEqual(cl.four_letter(0, "isro"), "rw")

            states = []
            mu = threading.Lock()
            zk = KazooClient(hosts=cl.connect_string([0]), read_only=True)

            def listen(state):
                with mu:
                    states.append(zk.client_state)
            zk.add_listener(listen)
            zk.start(timeout=30)
            try:
                zk.sync(root)
                self.assertEqual(zk.get(root)[0], b"before")
                cl.stop(1)
                cl.stop(2)
                wait_for(lambda: zk.client_state == KeeperState.CONNECTED_RO, WAIT_S,
                         "the client to be CONNECTED_RO")
                self.assertEqual(cl.four_letter(0, "isro"), "ro")
                self.assertIn("Mode: read-only", cl.four_letter(0, "srvr"))
                # reads served from the node's state; writes and sync refused
                self.assertEqual(zk.get(root)[0], b"before")
                self.assertEqual(zk.get_children(root), [])
                with self.assertRaises(NotReadOnlyCallError):
                    zk.create(root + "/x", b"")
                with self.assertRaises(NotReadOnlyCallError):
                    zk.set(root, b"after")
                with self.assertRaises(NotReadOnlyCallError):
                    zk.sync(root)
                # a client that cannot take read-only is refused; one that can
                # gets a session flagged readOnly
                port = cl.nodes[0].client_port
                self.assertIsNone(raw_connect(port, read_only=False))
                r = raw_connect(port, read_only=True)
                self.assertIsNotNone(r)
                (_, _, sid, pwlen) = struct.unpack(">iiqi", r[:20])
                self.assertNotEqual(sid, 0)
                self.assertEqual(r[-1:], b"\1")
                # that session is this node's own: a reconnect with its
                # password keeps it (read-only), a wrong password does not
                pw = r[20:20 + pwlen]
                again = raw_connect(port, True, sid, pw)
                self.assertEqual(struct.unpack(">q", again[8:16])[0], sid)
                self.assertEqual(again[-1:], b"\1")
                bad = raw_connect(port, True, sid, bytes(16))
                self.assertEqual(struct.unpack(">q", bad[8:16])[0], 0)
                # the quorum comes back: the client moves to a read-write server
                cl.start(1)
                cl.start(2)
                wait_for(lambda: zk.client_state == KeeperState.CONNECTED, WAIT_S,
                         "the client to be CONNECTED (read-write)")
                wait_for(lambda: cl.four_letter(0, "isro") == "rw", WAIT_S,
                         "node 1 to leave read-only")
                zk.set(root, b"after")
                self.assertEqual(zk.get(root)[0], b"after")
                with mu:
                    seen = list(states)
                self.assertIn(KeeperState.CONNECTED_RO, seen)
            finally:
                zk.stop()
                zk.close()


if __name__ == "__main__":
    unittest.main()
