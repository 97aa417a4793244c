"""A restarted node never hands out a session id its previous run did.

The flake of test_dpdk_cluster.py's "node starts with a peer down" step (the
first create after node 1's restart failed with SessionExpired, 1 run in
10-30): keeld formed session ids from the wall clock in whole seconds plus a
counter that starts at 1 in every run. Node 1, killed and restarted within
the second in which its previous run had made (and closed) session A, gave
the next new client A's id again. Having restarted, it applied its log again
only once it heard a leader -- after that client's ConnectRequest -- so it
applied the old closeSession of A over the new session's entry in its front
end; the new createSession still committed and the client was connected,
but its first request was answered "session expired" (not held here).

Here, deterministically: node 1 makes and closes session A just after a
whole second; nodes 2 and 3 are paused so that node 1, killed and restarted
at once, cannot hear a leader; client B connects to it (its ConnectRequest
is seen received, in cons); then 2 and 3 resume. B must get a new id and its
first create must succeed. A round in which A and B did not fall in the same
wall-clock second proves nothing about the old ids and is repeated (up to 4).
Then the counted, logged reasons for "session expired": a reattach with an
unknown id and one with a wrong password (mntr, out.log).
"""
import os
import sys
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from zkcluster import Cluster, wait_for  # noqa: E402

from kazoo.client import KazooClient  # noqa: E402


def connect_pending(cl, i):
    """Node i holds a connection whose ConnectRequest it read (recved=1)
    and has not answered (no session yet); cons is served on the thread
    that handles the ConnectRequest, so it has been handled."""
    try:
        text = cl.four_letter(i, "cons")
    except OSError:
        return False
    return any("[1](" in ln and "recved=1," in ln and "sid=" not in ln
               for ln in text.splitlines())


def mntr(cl, i):
    out = {}
    for ln in cl.four_letter(i, "mntr").splitlines():
        if "\t" in ln:
            key, val = ln.split("\t", 1)
            out[key] = val
    return out


def log_text(cl, i):
    with open(os.path.join(cl.nodes[i].workdir, "out.log"), "rb") as f:
        return f.read().decode(errors="replace")


class SessionIds(unittest.TestCase):
    def one_round(self, cl, root, rnd):
        """True when A's and B's ids were drawn in the same second (the
        old ids would have been equal)."""
        time.sleep(1.02 - time.time() % 1.0)  # just past a whole second
        t_a = time.time()
        a = KazooClient(hosts=cl.connect_string([0]), timeout=10.0)
        a.start(timeout=30)
        sid_a = a.client_id[0]
        a.stop()  # closeSession, committed
        a.close()
        cl.pause(1)
        cl.pause(2)
        b = None
        try:
            cl.kill(0)
            cl.start(0)  # answers ruok; no leader to hear
            b = KazooClient(hosts=cl.connect_string([0]), timeout=10.0)
            ev = b.start_async()
            wait_for(lambda: connect_pending(cl, 0), 20, "node 1 reading B's ConnectRequest")
            t_b = time.time()
        finally:
            cl.resume(1)
            cl.resume(2)
        try:
            ev.wait(30)
            self.assertTrue(b.connected, "round %d: B not connected" % rnd)
            sid_b = b.client_id[0]
            err = None
            try:
                b.create("%s/b%d" % (root, rnd), b"b")
            except Exception as e:
                err = e
            self.assertNotEqual(sid_b, sid_a, "round %d: node 1 gave its previous run's "
                                "session id 0x%x out again (first create: %r)" %
                                (rnd, sid_a, err))
            self.assertIsNone(err, "round %d: B's first create (session 0x%x)" % (rnd, sid_b))
            self.assertEqual(b.client_id[0], sid_b)
        finally:
            b.stop()
            b.close()
        self.assertEqual(mntr(cl, 0)["keel_session_expired_unknown"], "0")
        return int(t_a) == int(t_b)

    def test_restart_makes_new_session_ids(self):
        t0 = time.monotonic()
        if os.environ.get("KEEL_TEST_TARGET", "keel") != "keel":
            self.skipTest("the mntr counters and log lines are keel's")
        with Cluster.create(size=3) as cl:
            root = "/sids-" + uuid.uuid4().hex[:8]
            z = KazooClient(hosts=cl.connect_string([1]), timeout=10.0)
            z.start(timeout=30)
            z.create(root)
            # Sessions made at node 1 so far: none (counter at 0), as for
            # a node just restarted.
            conclusive = 0
            for rnd in range(4):
                if rnd:
                    cl.kill(0)
                    cl.start(0)
                    wait_for(lambda: cl.mode(0), 30, "node 1 serving")
                if self.one_round(cl, root, rnd):
                    conclusive += 1
                    break
            print("\nsession ids: %d round(s), %d in one second (old ids equal)" %
                  (rnd + 1, conclusive), file=sys.stderr)

            # "session expired" answers are counted by reason and logged.
            wait_for(lambda: cl.mode(0), 30, "node 1 serving")
            before = mntr(cl, 0)
            sid, pw = z.client_id
            fake = KazooClient(hosts=cl.connect_string([0]), timeout=10.0,
                               client_id=(sid ^ 0x5a5a5a, pw))
            fake.start(timeout=30)  # kazoo starts a new session after "expired"
            self.assertNotEqual(fake.client_id[0], sid ^ 0x5a5a5a)
            fake.stop()
            fake.close()
            wrong = KazooClient(hosts=cl.connect_string([0]), timeout=10.0,
                                client_id=(sid, b"\0" * 16))
            wrong.start(timeout=30)
            self.assertNotEqual(wrong.client_id[0], sid)
            wrong.stop()
            wrong.close()
            after = mntr(cl, 0)
            for key in ("keel_session_expired_not_found", "keel_session_expired_password"):
                self.assertEqual(int(after[key]), int(before[key]) + 1, key)
            log = log_text(cl, 0)
            self.assertIn("session 0x%x: answered \"session expired\" (reattach: not in the "
                          "replicated store" % (sid ^ 0x5a5a5a), log)
            self.assertIn("session 0x%x: answered \"session expired\" (reattach: wrong "
                          "password)" % sid, log)
            z.create(root + "/alive")  # z's session was not disturbed
            z.stop()
            z.close()
        print("session ids: %.1f s in all" % (time.monotonic() - t0), file=sys.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
