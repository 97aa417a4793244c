"""A write's ACL is checked in log order (keel only: it slows a link with
keeld's test fault keys).

ZooKeeper checks a write's ACL at the leader against its latest state, so once
a setACL has been acknowledged no later write can pass the old ACL. keeld
checks it at apply, with the requester's identities carried in the txn. Here
the leader's frames to one follower are held 40 ms (dp.test_peer +
dp.test_delay_us), so that follower applies bob's ACL change well after bob
is answered (the leader and the other follower make the quorum). alice,
connected to that follower, writes right after each answer: her setData,
create, delete and multi must all be refused (NoAuth), and none of them may
change anything. Before the check moved to apply, the follower's own stale
view let them through. And the other way round: once bob has opened an ACL
again, alice's write right after his answer passes (a check against the
follower's stale view would refuse it).
"""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zkcluster import Cluster  # noqa: E402

from kazoo.client import KazooClient  # noqa: E402
from kazoo.exceptions import NoAuthError  # noqa: E402
from kazoo.security import make_digest_acl  # noqa: E402

TOKEN = "aclorder"
ROUNDS = 10
DELAY_US = 40000


def client(cl, node, user):
    c = KazooClient(hosts=cl.connect_string([node]), timeout=10.0,
                    auth_data=[("digest", "%s:pw" % user)])
    c.start(timeout=30)
    return c


def multi(c, p):
    t = c.transaction()
    t.check(p, -1)
    t.set_data(p, b"m")
    return t.commit()


class TestAclOrder(unittest.TestCase):
    def test_write_after_acknowledged_acl_change(self):
        if os.environ.get("KEEL_TEST_TARGET", "keel") != "keel":
            self.skipTest("keel's test fault keys")
        with Cluster.create(size=3, admin_token=TOKEN) as cl:
            ld = cl.leader()
            fo = [i for i in range(3) if i != ld][0]
            both = [make_digest_acl("alice", "pw", all=True),
                    make_digest_acl("bob", "pw", all=True)]
            bob_only = [make_digest_acl("bob", "pw", all=True)]
            bob = client(cl, ld, "bob")
            alice = client(cl, fo, "alice")
            try:
                bob.create("/t", acl=both)
                for i in range(ROUNDS):
                    bob.create("/t/n%d" % i, b"bob", acl=both)
                    bob.create("/t/n%d/c" % i, acl=both)
                alice.sync("/t")
                # alice may write all of them now (her follower has them)
                alice.set("/t/n0", b"alice")
                self.assertEqual(alice.get("/t/n0")[0], b"alice")
                # the scope first, then the fault it scopes
                self.assertEqual(cl.put_config(ld, "dp.test_peer", fo + 1)[0], 200)
                self.assertEqual(cl.put_config(ld, "dp.test_delay_us", DELAY_US)[0], 200)
                refused = []
                for i in range(ROUNDS):
                    p = "/t/n%d" % i
                    bob.set_acls(p, bob_only)  # answered: committed at the leader
                    attempts = [
                        ("setData", lambda: alice.set(p, b"alice%d" % i)),
                        ("create", lambda: alice.create(p + "/x")),
                        ("delete", lambda: alice.delete(p + "/c")),
                        ("multi", lambda: multi(alice, p)),
                    ]
                    what, op = attempts[i % len(attempts)]
                    try:
                        res = op()
                    except NoAuthError:
                        refused.append(what)
                        continue
                    if what == "multi":
                        # kazoo returns a multi's errors as results
                        if isinstance(res[0], NoAuthError):
                            refused.append(what)
                            continue
                    self.fail("round %d: alice's %s passed an ACL bob changed before: %r"
                              % (i, what, res))
                self.assertEqual(len(refused), ROUNDS)
                self.assertEqual(cl.put_config(ld, "dp.test_delay_us", 0)[0], 200)
                # nothing of alice's reached the tree
                for i in range(ROUNDS):
                    data, st = bob.get("/t/n%d" % i)
                    self.assertEqual(data, b"alice" if i == 0 else b"bob")
                    self.assertEqual(st.aversion, 1)
                    self.assertEqual(bob.get_children("/t/n%d" % i), ["c"])
                # and the follower agrees, once it caught up
                alice.sync("/t")
                with self.assertRaises(NoAuthError):
                    alice.get("/t/n1")
                # The other direction: bob opens the ACL again; alice's write
                # right after his answer must pass, though her follower's view
                # still has the closed ACL (a check there would refuse it).
                self.assertEqual(cl.put_config(ld, "dp.test_delay_us", DELAY_US)[0], 200)
                for i in range(ROUNDS):
                    p = "/t/n%d" % i
                    bob.set_acls(p, both)
                    alice.set(p, b"open%d" % i)
                self.assertEqual(cl.put_config(ld, "dp.test_delay_us", 0)[0], 200)
                for i in range(ROUNDS):
                    self.assertEqual(bob.get("/t/n%d" % i)[0], b"open%d" % i)
            finally:
                for c in (alice, bob):
                    c.stop()
                    c.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
