"""The leader's checks of a FORWARD body, item by item (keel only).

A FORWARD (a follower's client requests, sent on to the leader) is read by
on_forward (dataplane/node/pipeline.c), which acts on each item as it reads
it: the item walk is not a pure function of its own (extracting it would put
a call and a second read of each item on the leader's per-write path), so its
refusals are tested here, through a real leader.

Node F, a follower, is stopped and its peer UDP address taken over by this
test, which sends the leader well-formed keel frames from F. Each FORWARD
mixes requests (creates, encoded as keeld encodes a txn) with items that are
not, and shows:
  * a FORWARD of another term: nothing of it proposed, nothing counted;
  * an item flagged as the leader's own (a level item): refused, counted
    (keel_peer_messages_malformed_total{type="fwd"}) and logged; the requests
    before and after it are proposed;
  * an item whose txn does not decode: likewise;
  * an item that runs past the message's end: the walk stops there, the
    requests before it stay proposed, and the message is counted once in
    all (not once per bad item);
  * the same request (origin, id) sent again: proposed once (a copy).
Every created znode is then read at the other follower, so each request
went through the log.
"""
import json
import os
import re
import socket
import struct
import sys
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zkcluster import KeelCluster, wait_for  # noqa: E402
from test_refused_forged import MSG_FORWARD, frame, malformed, out_log  # noqa: E402

from kazoo.client import KazooClient  # noqa: E402

ITEM_LEVEL = 0x04000000
KV_OP_CREATE = 1


def create_txn(path, data, cxid):
    """A create of a persistent node, world:anyone, as kv_txn_encode writes
    it (format 1: no identities)."""
    p = path.encode()
    acl = struct.pack("<Ii", 1, 31) + struct.pack("<I", 5) + b"world" + \
        struct.pack("<I", 6) + b"anyone"
    return (struct.pack("<BbHIqqq", 1, KV_OP_CREATE, 0, cxid, 0, 0, 0)
            + struct.pack("<I", len(p)) + p + struct.pack("<I", len(data)) + data
            + struct.pack("<I", len(acl)) + acl + struct.pack("<iq", 0, 0))


def item(origin, rid, txn):
    return struct.pack("<IQI", origin, rid, len(txn)) + txn


def forward(term, items, count=None):
    return struct.pack("<IQQ", len(items) if count is None else count, term, 0) + b"".join(items)


def status(node):
    with urllib.request.urlopen("http://127.0.0.1:%d/status" % node.admin_port, timeout=10) as r:
        return json.loads(r.read())


class ForwardItemsTest(unittest.TestCase):
    def test_forward_items(self):
        with KeelCluster(3, admin_token="fwditems") as cl:
            lead = cl.leader()
            v, f = [i for i in range(3) if i != lead]
            nl, nv, nf = cl.nodes[lead], cl.nodes[v], cl.nodes[f]
            kz = KazooClient(hosts=cl.connect_string([v]), timeout=10.0)
            kz.start(timeout=30)
            root = "/fwd"
            kz.create(root)
            cl.stop(f)
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            msg_id = [0x7E000000]

            def send(body):
                msg_id[0] += 1
                s.sendto(frame(MSG_FORWARD, nf.id, nl.id, msg_id[0], body),
                         ("127.0.0.1", nl.peer_port))

            def children():
                kz.sync(root)
                return sorted(kz.get_children(root))

            def req(name, rid):
                return item(nf.id, rid, create_txn("%s/%s" % (root, name), name.encode(), rid))

            try:
                s.bind(("127.0.0.1", nf.peer_port))
                term = status(nl)["term"]
                base = malformed(nl).get("fwd", 0)
                # Another term, then a request in this one: once the second
                # is in, the first was read before it and dropped.
                send(forward(term + 1, [req("stale", 0x100)]))
                send(forward(term, [req("a", 0x101)]))
                wait_for(lambda: "a" in children(), 30, "the request of this term")
                self.assertEqual(children(), ["a"])
                self.assertEqual(malformed(nl).get("fwd", 0), base)
                # A level item and a txn that does not decode among requests:
                # each refused, the requests around them proposed, the
                # message counted once.
                garbage = create_txn(root + "/junk", b"j", 0x203)[:-3]  # cut short
                send(forward(term, [req("b", 0x201),
                                    item(nf.id | ITEM_LEVEL, 0x202, struct.pack("<I", 6)),
                                    req("c", 0x203),
                                    item(nf.id, 0x204, garbage),
                                    req("d", 0x205)]))
                wait_for(lambda: "d" in children(), 30, "the requests around the bad items")
                self.assertEqual(children(), ["a", "b", "c", "d"])
                # (/metrics is published every 100 ms)
                wait_for(lambda: malformed(nl).get("fwd", 0) >= base + 1, 10,
                         "the FORWARD with bad items counted")
                self.assertRegex(out_log(nl), r"forward from node %d: an item \(origin "
                                 r"0x%08x, 4 bytes\) that is not a request this leader can "
                                 r"propose: dropped" % (nf.id, nf.id | ITEM_LEVEL))
                # An item running past the end after a request and a level
                # item: the request proposed, the message counted once more
                # (a bad item and a torn one in one message: once).
                torn = req("never", 0x303)
                send(forward(term, [req("e", 0x301),
                                    item(nf.id | ITEM_LEVEL, 0x302, struct.pack("<I", 6)),
                                    torn[:-5]]))
                wait_for(lambda: "e" in children(), 30, "the request before the torn item")
                wait_for(lambda: malformed(nl)["fwd"] >= base + 2, 10, "the torn FORWARD counted")
                # A count beyond the items: the walk stops at the end.
                send(forward(term, [req("f", 0x401)], count=3))
                wait_for(lambda: "f" in children(), 30, "the request before the missing ones")
                wait_for(lambda: malformed(nl)["fwd"] >= base + 3, 10,
                         "the short FORWARD counted")
                # A copy of a request already proposed: dropped, not proposed
                # again (a second create of b would fail, but take a zxid:
                # g's would not follow f's), and counted in the leader's log.
                send(forward(term, [req("b", 0x201), req("g", 0x501)]))
                wait_for(lambda: "g" in children(), 30, "the request after the copy")
                fz = kz.get(root + "/f")[1].czxid
                self.assertEqual(kz.get(root + "/g")[1].czxid, fz + 1,
                                 "the copy of b was proposed again")
                wait_for(lambda: re.search(r"forward: \d+ requests retransmitted to the "
                                           r"leader, [1-9]\d* copies dropped as leader",
                                           out_log(nl)), 10, "the copy counted")
                self.assertEqual(children(), ["a", "b", "c", "d", "e", "f", "g"])
                self.assertEqual(malformed(nl)["fwd"], base + 3)
                for name in "abcdefg":
                    self.assertEqual(kz.get("%s/%s" % (root, name))[0], name.encode())
            finally:
                s.close()
                kz.stop()
                kz.close()
            self.assertIsNone(nl.proc.poll(), cl.tail(nl))
            self.assertIsNone(nv.proc.poll(), cl.tail(nv))
            self.assertNotIn("FATAL", out_log(nl) + out_log(nv))


if __name__ == "__main__":
    unittest.main()
