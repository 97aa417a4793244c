"""A read that waits for its session's earlier writes is served with the
session's setAuth identities (runs against keel and ZooKeeper).

A read on a session with writes in flight waits until they are answered
(keeld_write_done serves it, from a copy of the session taken there); the
copy holds only the identities the session added (fsess_copy), so this
checks that a second and third identity come through: the node's ACL lets
only the third one read. Each round pipelines a setData and a getData on
one connection; the read must see the write's data, never NoAuth.
"""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zkcluster import Cluster  # noqa: E402

from kazoo.client import KazooClient  # noqa: E402
from kazoo.security import make_digest_acl  # noqa: E402

ROUNDS = 40


class TestDeferredReadAuth(unittest.TestCase):
    def test_deferred_read_keeps_identities(self):
        with Cluster.create(size=3) as cl:
            for node in range(3):
                c = KazooClient(hosts=cl.connect_string([node]), timeout=10.0,
                                auth_data=[("digest", "amy:pw"), ("digest", "bob:pw"),
                                           ("digest", "cat:pw")])
                c.start(timeout=30)
                try:
                    p = "/d%d" % node
                    c.create(p, b"0", acl=[make_digest_acl("cat", "pw", all=True)])
                    for i in range(ROUNDS):
                        v = b"v%d" % i
                        w = c.set_async(p, v)
                        r = c.get_async(p)
                        # get() raises NoAuthError if the read lost "cat".
                        self.assertEqual(r.get(timeout=10)[0], v)
                        w.get(timeout=10)
                finally:
                    c.stop()
                    c.close()


if __name__ == "__main__":
    unittest.main()
