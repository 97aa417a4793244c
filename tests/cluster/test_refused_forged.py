"""A REFUSED message (protocol levels) stops a node only when its leader sends it.

Node F, a follower, is stopped and its peer UDP address taken over by this
test, which sends follower V well-formed keel frames from F: a REFUSED naming
cluster level 9 (above V's level, which would stop V), one naming level 0
(no level at all) and another of level 9. F is a member but not V's leader, so V ignores both, logs
them as ignored, and keeps serving: a former leader's or a broken peer's
refusal must not take a usable node out of the cluster.
"""
import os
import re
import socket
import struct
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zkcluster import KeelCluster, wait_for  # noqa: E402

from kazoo.client import KazooClient  # noqa: E402

DP_MAGIC = 0x4B45454C
MSG_REFUSED = 5


def _crc32c_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


_T = _crc32c_table()


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc = _T[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def frame(mtype, src, dst, msg_id, payload, cluster_id=1):
    """One keel frame (dataplane/dp.h): a whole message in one fragment."""
    hdr = struct.pack(">IBBHIHHIIIHH", DP_MAGIC, 1, mtype, 1024, cluster_id, src, dst,
                      msg_id, len(payload), 0, len(payload), 0)
    crc = crc32c(payload, crc32c(hdr))
    return hdr + struct.pack(">I", crc) + payload


def out_log(node):
    with open(os.path.join(node.workdir, "out.log"), errors="replace") as f:
        return f.read()


class RefusedForgedTest(unittest.TestCase):
    def test_refused_not_from_leader_is_ignored(self):
        assert crc32c(b"123456789") == 0xE3069283
        with KeelCluster(3) as cl:
            lead = cl.leader()
            followers = [i for i in range(3) if i != lead]
            v, f = followers
            nv, nf = cl.nodes[v], cl.nodes[f]
            cl.stop(f)
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                s.bind(("127.0.0.1", nf.peer_port))
                # Logged at the 1st, 3rd, 7th... ignored one: 3 are all seen.
                for k, level in enumerate((9, 0, 9)):
                    s.sendto(frame(MSG_REFUSED, nf.id, nv.id, 0x7F000000 + k,
                                   struct.pack("<I", level)),
                             ("127.0.0.1", nv.peer_port))
                    # Ignored (logged), or -- the bug -- the node stops.
                    want = r"REFUSED from node %d .*ignored \(%d so far\)" % (nf.id, k + 1)
                    if k != 1:
                        wait_for(lambda: nv.proc.poll() is not None or
                                 re.search(want, out_log(nv)),
                                 30, "node %d taking the forged REFUSED %d" % (nv.id, k))
                    self.assertIsNone(nv.proc.poll(), cl.tail(nv))
            finally:
                s.close()
            time.sleep(0.5)
            self.assertIsNone(nv.proc.poll(), cl.tail(nv))
            self.assertNotIn("FATAL", out_log(nv))
            # V still serves writes (with the leader: a majority of two).
            kz = KazooClient(hosts=cl.connect_string([v]), timeout=10.0)
            kz.start(timeout=30)
            try:
                kz.create("/after-forged", b"x")
                self.assertEqual(kz.get("/after-forged")[0], b"x")
            finally:
                kz.stop()
            self.assertIsNone(nv.proc.poll(), cl.tail(nv))


if __name__ == "__main__":
    unittest.main()
