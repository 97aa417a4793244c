"""A REFUSED message (protocol levels) stops a node only when its leader sends it.

Node F, a follower, is stopped and its peer UDP address taken over by this
test, which sends follower V well-formed keel frames from F: a REFUSED naming
cluster level RELEASE_LEVEL + 1 (above V's level, which would stop V), one naming
level 0 (no level at all) and another above V's. F is a member but not V's leader, so V ignores both, logs
them as ignored, and keeps serving: a former leader's or a broken peer's
refusal must not take a usable node out of the cluster.

Then, still as F, one well-formed keel frame (header, CRC32C) of each peer
message type keeld decodes with a body that does not decode: Raft, SNAP,
TOUCH, FWD_REFUSED and an unknown type to V, FORWARD to the leader (only a
leader reads one). Each is dropped and counted
(keel_peer_messages_malformed_total{type}, /status peer_messages_malformed,
mntr keel_peer_messages_malformed), logged with the peer and the type, and
the cluster keeps serving. The level-0 REFUSED above is one of them (no
level); the ones above V's level decode and are not. A type V does not know counts
as `newer` while F's last TOUCH said a protocol level above V's, as
`unknown` again once F says V's own.
"""
import json
import os
import re
import socket
import struct
import sys
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zkcluster import KeelCluster, wait_for  # noqa: E402

from kazoo.client import KazooClient  # noqa: E402

# This release's protocol level, as keeld is built (node.h): the levels the
# test names are relative to it, so a bump needs no edit here.
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                       "dataplane", "node", "node.h")) as _h:
    RELEASE_LEVEL = int(re.search(r"#define NODE_PROTOCOL_LEVEL\s+(\d+)", _h.read()).group(1))

DP_MAGIC = 0x4B45454C
MSG_RAFT, MSG_FORWARD, MSG_TOUCH, MSG_REFUSED, MSG_SNAP, MSG_FWD_REFUSED = 1, 2, 3, 5, 6, 7
# (type, to the leader?, body, label): each body fails its decoder
MALFORMED = [
    (MSG_RAFT, False, b"\x07\x01\x02", "raft"),                 # no Raft message
    (MSG_SNAP, False, b"\x00" * 8, "snap"),                       # no image sum
    (MSG_TOUCH, False, b"\x00\x00\x00\x00\x01\x02\x03", "touch"),  # a torn level trailer
    (MSG_FWD_REFUSED, False, b"\x01\x00\x00\x00", "fwd_refused"),   # shorter than its header
    (99, False, b"hello", "unknown"),                            # no such type
    (MSG_FORWARD, True, b"\x01" * 8, "fwd"),                      # shorter than its header
]


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


def malformed(node):
    """keel_peer_messages_malformed_total by type, from node's /metrics."""
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % node.admin_port,
                                timeout=10) as r:
        text = r.read().decode()
    return {m.group(1): int(m.group(2)) for m in re.finditer(
        r'^keel_peer_messages_malformed_total\{type="(\w+)"\} (\d+)$', text, re.M)}


def out_log(node):
    with open(os.path.join(node.workdir, "out.log"), errors="replace") as f:
        return f.read()


class RefusedForgedTest(unittest.TestCase):
    def test_refused_not_from_leader_is_ignored(self):
        assert crc32c(b"123456789") == 0xE3069283
        with KeelCluster(3, admin_token="forged") as cl:
            lead = cl.leader()
            followers = [i for i in range(3) if i != lead]
            v, f = followers
            nv, nf = cl.nodes[v], cl.nodes[f]
            cl.stop(f)
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                s.bind(("127.0.0.1", nf.peer_port))
                # Logged at the 1st, 3rd, 7th... ignored one: 3 are all seen.
                for k, level in enumerate((RELEASE_LEVEL + 1, 0, RELEASE_LEVEL + 1)):
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
                nl = cl.nodes[lead]
                for k, (mtype, to_leader, body, _) in enumerate(MALFORMED):
                    dst = nl if to_leader else nv
                    s.sendto(frame(mtype, nf.id, dst.id, 0x7F000010 + k, body),
                             ("127.0.0.1", dst.peer_port))
                want_v = {"raft": 1, "snap": 1, "touch": 1, "fwd_refused": 1,
                          "removed": 0, "newer": 0, "unknown": 1, "refused": 1, "fwd": 0}
                wait_for(lambda: malformed(nv) == want_v and malformed(nl)["fwd"] == 1,
                         30, "the malformed messages counted (%s at V, %s at the leader)"
                         % (malformed(nv), malformed(nl)))
                # A TOUCH whose level trailer decodes but whose settings item
                # does not (3 bytes, not 4): counted (it was not).
                body = (struct.pack("<III", 0, 6, 2) + bytes([2, 3, 1, 2, 3]))
                s.sendto(frame(MSG_TOUCH, nf.id, nv.id, 0x7F000021, body),
                         ("127.0.0.1", nv.peer_port))
                want_v["touch"] = 2
                wait_for(lambda: malformed(nv) == want_v, 30,
                         "V counting the TOUCH with a torn settings item (%s)" % malformed(nv))
                # F says (TOUCH) it speaks a level above this release's
                # (RELEASE_LEVEL): a type V does not know from it counts as
                # newer (an upgrade under way), not unknown; once F says
                # this release's level again, unknown.
                def says_level_then_98(level, msg_id):
                    for mtype, body in ((MSG_TOUCH, struct.pack("<III", 0, level, 2)),
                                        (98, b"later")):
                        s.sendto(frame(mtype, nf.id, nv.id, msg_id, body),
                                 ("127.0.0.1", nv.peer_port))
                        msg_id += 1

                says_level_then_98(RELEASE_LEVEL + 1, 0x7F000022)
                want_v["newer"] = 1
                wait_for(lambda: malformed(nv) == want_v, 30,
                         "V counting a type it does not know from a newer peer (%s)"
                         % malformed(nv))
                self.assertRegex(out_log(nv), r"peer message from node %d of type 98 \(newer, 5 "
                                 r"bytes\): a type this node does not know: dropped \(1 of "
                                 r"the type so far\)" % nf.id)
                says_level_then_98(RELEASE_LEVEL, 0x7F000024)
                want_v["unknown"] = 2
                wait_for(lambda: malformed(nv) == want_v, 30,
                         "V counting it as unknown again (%s)" % malformed(nv))
                # A FORWARD in the leader's term whose first item is no
                # request (a level item) and whose second runs past the end:
                # one message, counted once (it was twice).
                with urllib.request.urlopen("http://127.0.0.1:%d/status" % nl.admin_port,
                                            timeout=10) as r:
                    term = json.loads(r.read())["term"]
                body = (struct.pack("<IQQ", 2 | 0x80000000, term, 0)
                        + struct.pack("<IQI", 0x04000000, 1, 0)
                        + struct.pack("<IQI", 0, 2, 100))
                s.sendto(frame(MSG_FORWARD, nf.id, nl.id, 0x7F000020, body),
                         ("127.0.0.1", nl.peer_port))
                # both counts, had there been two, fold in the same turn
                wait_for(lambda: malformed(nl)["fwd"] >= 2, 30,
                         "the leader counting the FORWARD of two bad items")
                self.assertEqual(malformed(nl)["fwd"], 2, cl.tail(nl))
                for _, to_leader, body, label in MALFORMED:
                    at = nl if to_leader else nv
                    # FWD_REFUSED keeps its own line (as REFUSED does, above)
                    want = (r"FWD_REFUSED from node %d \(%d bytes\): shorter than its "
                            r"header: ignored \(1 so far\)" % (nf.id, len(body))
                            if label == "fwd_refused" else
                            r"peer message from node %d of type \d+ \(%s, %d bytes\): "
                            r".*: dropped \(1 of the type so far\)" % (nf.id, label, len(body)))
                    self.assertRegex(out_log(at), want)
                with urllib.request.urlopen("http://127.0.0.1:%d/status" % nv.admin_port,
                                            timeout=10) as r:
                    st = json.loads(r.read())
                self.assertEqual(st["peer_messages_malformed"], dict(want_v, total=9))
                self.assertIn("keel_peer_messages_malformed\t9\n", cl.four_letter(v, "mntr"))
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
