"""The leader's checks of a FORWARD body, through a real leader (keel only).

A FORWARD's frame (a follower's client requests, sent on to the leader) is
checked whole by node_fwd_check (dataplane/node/peermsg.c; its refusals one
by one in tests/node/test_peermsg.c) before on_forward
(dataplane/node/pipeline.c) acts on any item; each item's txn is checked as
it is read (node_fwd_item). This test shows the leader doing so.

Node F, a follower, is stopped and its peer UDP address taken over by this
test, which sends the leader well-formed keel frames from F. Each FORWARD
mixes requests (creates, encoded as keeld encodes a txn) with items that are
not, and shows:
  * a FORWARD of another term: nothing of it proposed, nothing counted;
  * a FORWARD with an item flagged as the leader's own (a level item) and
    one whose txn does not decode among requests: dropped whole -- none of
    its requests proposed, not even those before the bad item -- counted
    once (keel_peer_messages_malformed_total{type="fwd"}) and logged,
    naming the first bad item; its requests sent again in a well-formed
    FORWARD are then proposed (the bad one marked none of them as seen);
  * an item that runs past the message's end, and a count beyond the
    items: likewise dropped whole, counted once each;
  * the same request (origin, id) sent again: proposed once (a copy);
  * an item whose txn does not decode among requests, in a frame that is
    well-formed: that item alone dropped, counted, logged; the requests
    beside it proposed -- also when the same FORWARD comes again, as the
    follower's retransmission carries them (review10a: fwd10 dropped the
    whole FORWARD, so those requests were dropped at every retransmission
    too, until their sessions' timeout); the bad one, sent again
    well-formed, is proposed (it was not marked seen).
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
                # the whole message dropped (none of x, y, z proposed),
                # counted once, logged naming the first bad item.
                garbage = create_txn(root + "/junk", b"j", 0x203)[:-3]  # cut short
                bad = forward(term, [req("x", 0x201),
                                     item(nf.id | ITEM_LEVEL, 0x202, struct.pack("<I", 6)),
                                     req("y", 0x203),
                                     item(nf.id, 0x204, garbage),
                                     req("z", 0x205)])
                send(bad)
                send(forward(term, [req("b", 0x206)]))
                wait_for(lambda: "b" in children(), 30, "the request after the bad FORWARD")
                self.assertEqual(children(), ["a", "b"])
                # (/metrics is published every 100 ms)
                wait_for(lambda: malformed(nl).get("fwd", 0) >= base + 1, 10,
                         "the FORWARD with bad items counted")
                self.assertRegex(out_log(nl), r"forward from node %d \(%d bytes, 5 items\): "
                                 r"item 1: an item that is not a request: dropped whole, "
                                 r"none of its items proposed" % (nf.id, len(bad)))
                # Its requests, well-formed: proposed (none was marked seen).
                send(forward(term, [req("c", 0x201), req("d", 0x203)]))
                wait_for(lambda: "d" in children(), 30, "the requests sent again")
                self.assertEqual(children(), ["a", "b", "c", "d"])
                # An item running past the end after a request: nothing of
                # it proposed, counted once more.
                torn = req("never", 0x303)
                send(forward(term, [req("x", 0x301), torn[:-5]]))
                send(forward(term, [req("e", 0x302)]))
                wait_for(lambda: "e" in children(), 30, "the request after the torn FORWARD")
                wait_for(lambda: malformed(nl)["fwd"] >= base + 2, 10, "the torn FORWARD counted")
                # A count beyond the items: likewise.
                send(forward(term, [req("y", 0x401)], count=3))
                send(forward(term, [req("f", 0x402)]))
                wait_for(lambda: "f" in children(), 30, "the request after the short FORWARD")
                wait_for(lambda: malformed(nl)["fwd"] >= base + 3, 10,
                         "the short FORWARD counted")
                self.assertEqual(children(), ["a", "b", "c", "d", "e", "f"])
                # A copy of a request already proposed: dropped, not proposed
                # again (a second create of b would fail, but take a zxid:
                # g's would not follow f's), and counted in the leader's log.
                send(forward(term, [req("b", 0x206), req("g", 0x501)]))
                wait_for(lambda: "g" in children(), 30, "the request after the copy")
                fz = kz.get(root + "/f")[1].czxid
                self.assertEqual(kz.get(root + "/g")[1].czxid, fz + 1,
                                 "the copy of b was proposed again")
                wait_for(lambda: re.search(r"forward: \d+ requests retransmitted to the "
                                           r"leader, [1-9]\d* copies dropped as leader",
                                           out_log(nl)), 10, "the copy counted")
                self.assertEqual(children(), ["a", "b", "c", "d", "e", "f", "g"])
                self.assertEqual(malformed(nl)["fwd"], base + 3)
                # A txn that does not decode between two requests, the frame
                # well-formed: h and i proposed, the bad item alone dropped.
                cut = create_txn(root + "/junk", b"j", 0x602)[:-3]
                mixed = forward(term, [req("h", 0x601), item(nf.id, 0x602, cut),
                                       req("i", 0x603)])
                send(mixed)
                wait_for(lambda: "i" in children(), 30, "the requests beside the bad txn")
                wait_for(lambda: malformed(nl)["fwd"] >= base + 4, 10, "the bad txn counted")
                self.assertRegex(out_log(nl), r"forward from node %d \(%d bytes, 3 items\): "
                                 r"item 1: an item whose txn does not decode: 1 such "
                                 r"item\(s\) dropped, the others proposed"
                                 % (nf.id, len(mixed)))
                # The follower's retransmission: the same three again, then
                # h and i once more with j -- copies dropped, j proposed.
                send(mixed)
                send(forward(term, [req("h", 0x601), req("i", 0x603), req("j", 0x604)]))
                wait_for(lambda: "j" in children(), 30, "the request after the retransmission")
                wait_for(lambda: malformed(nl)["fwd"] >= base + 5, 10,
                         "the retransmitted bad txn counted")
                # The bad one, well-formed now: proposed (never marked seen).
                send(forward(term, [req("k", 0x602)]))
                wait_for(lambda: "k" in children(), 30, "the bad request sent well-formed")
                self.assertEqual(kz.get(root + "/i")[1].czxid, kz.get(root + "/h")[1].czxid + 1)
                self.assertEqual(kz.get(root + "/j")[1].czxid, kz.get(root + "/i")[1].czxid + 1,
                                 "a copy of h or i was proposed again")
                self.assertEqual(children(), ["a", "b", "c", "d", "e", "f", "g", "h", "i",
                                              "j", "k"])
                self.assertEqual(malformed(nl)["fwd"], base + 5)
                for name in "abcdefghijk":
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
