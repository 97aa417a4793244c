#!/usr/bin/python3
"""Clock faults on keeld (keel.test.wallJumpMs, keel.test.clockJumpMs) on a
3-node loopback cluster (tests/cluster/zkcluster.py; no root).

keeld's timers (Raft ticks, session expiry, request timeouts) run on
CLOCK_MONOTONIC; only znode times (ctime/mtime) and TTLs read the wall
clock.  So:
- a wall-clock jump (a day forward, then a day back) at the leader shows in
  the ctime of what it creates and changes nothing else: the same leader in
  the same term, a short session (1 s) alive, its ephemeral there, its
  writes acknowledged;
- a monotonic jump forward at the leader, shorter than its election
  timeout: sessions whose timeout the jump passes expire -- by the
  leader's clock -- and their ephemerals go; a session with a longer
  timeout than the jump stays, with its ephemeral; the leader stays;
- a jump forward past the election timeout is a freeze seen from inside (a
  VM paused and resumed): the leader's check-quorum finds nobody answered
  for an election timeout and it steps down before it expires anything;
  the next leader gives every session a full timeout: none expires;
- a monotonic jump back at the leader is its clock standing still: no
  heartbeat for longer than the election timeout, so the followers elect a
  new leader in a later term; every write acknowledged before is still
  there;
- a jump forward moves every timer a pause would, not only Raft's and the
  sessions': a follower's forwarded request stuck behind a stopped leader is
  given up (its client's connection closed) as soon as the follower's
  timers jump past the give-up bound (the longest session timeout);
- a follower's jump forward past its election timeout is a freeze in which
  nothing reached it (not a SIGSTOP, after which the queued heartbeats keep
  its leader: tests/cluster/test_stall_ticks.py): every tick runs, so its
  election timer fires at once -- it forgets its leader and pre-votes --,
  the others refuse (they heard the leader), and it names the same leader
  in the same term again;
and throughout, never two leaders in one term (every node's log).
"""

import os
import re
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "cluster"))
from zkcluster import Cluster, wait_for  # noqa: E402

try:
    from kazoo.client import KazooClient, KazooState
    from kazoo.exceptions import ConnectionLoss
except ImportError:  # pragma: no cover
    print("SKIP: python3-kazoo missing")
    sys.exit(77)

DAY_MS = 86400000


class ClockFaults(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = Cluster.create("keel", 3, admin_token="clock-test",
                               extra=["maxSessionTimeout=60000", "keel.electionTimeoutMs=2000"])
        cls.c.__enter__()
        try:
            cls.c.wait_ready()
        except BaseException:
            cls.c.__exit__(None, None, None)
            raise

    @classmethod
    def tearDownClass(cls):
        cls.c.__exit__(None, None, None)

    def setUp(self):
        self.clients = []

    def tearDown(self):
        for zk in self.clients:
            try:
                zk.stop()
                zk.close()
            except Exception:
                pass
        # never two leaders in one term, whatever the test did
        two = {t: ls for t, ls in self.c.leaders_by_term().items() if len(ls) > 1}
        self.assertEqual(two, {}, "two leaders in one term")

    def client(self, node, timeout_s):
        zk = KazooClient(hosts=self.c.nodes[node].address, timeout=timeout_s,
                         connection_retry={"max_tries": -1, "delay": 0.05, "max_delay": 0.5})
        states = []
        zk.add_listener(states.append)
        zk.start(timeout=30)
        zk.states = states
        self.clients.append(zk)
        return zk

    def put(self, i, key, value):
        code, text = self.c.put_config(i, key, value)
        self.assertEqual(code, 200, text)

    def term(self, i):
        """The term node index i last logged a leader for."""
        return max(t for t, ls in self.c.leaders_by_term().items()
                   if any(i + 1 in who for who in ls.values()))

    def test_0_refusals(self):
        ld = self.c.leader()
        for key, big in (("keel.test.clockJumpMs", 600001), ("keel.test.wallJumpMs",
                                                             3153600000001)):
            for bad in (str(big), str(-big), "x", "", "1.5"):
                code, text = self.c.put_config(ld, key, bad)
                self.assertEqual(code, 400, (key, bad, text))
                self.assertIn(key, text)

    def test_1_wall_jump_changes_nothing(self):
        ld = self.c.leader()
        term = self.term(ld)
        fol = (ld + 1) % 3
        zk = self.client(fol, 1.0)  # a short session, at a follower
        zk.create("/wall-eph", b"e", ephemeral=True)
        sid = zk.client_id[0]
        for jump in (DAY_MS, -DAY_MS):  # far beyond every timeout keeld has
            self.put(ld, "keel.test.wallJumpMs", jump)
            before = time.time() * 1000
            path = zk.create("/wall-%d-" % (jump > 0), b"x", sequence=True)
            ctime = zk.exists(path).ctime
            # the leader stamps the txn with its wall clock: off by the jump
            self.assertGreater(ctime, before + jump - 60000, (jump, ctime, before))
            self.assertLess(ctime, time.time() * 1000 + jump + 60000, (jump, ctime))
            # 1.5 session timeouts pass; the session lives on, its
            # ephemeral stays, writes go on
            deadline = time.monotonic() + 1.5
            while time.monotonic() < deadline:
                zk.set(path, b"y")
                time.sleep(0.1)
            self.assertEqual(zk.client_id[0], sid)
            self.assertIsNotNone(zk.exists("/wall-eph"))
        self.put(ld, "keel.test.wallJumpMs", 0)
        self.assertNotIn(KazooState.LOST, zk.states)
        self.assertEqual(self.c.leader(), ld)
        self.assertEqual(self.term(ld), term)

    def test_2_monotonic_jump_forward_expires_by_the_leaders_clock(self):
        ld = self.c.leader()
        term = self.term(ld)
        fol = (ld + 1) % 3
        short = self.client(fol, 1.0)
        long_ = self.client(fol, 40.0)
        short.create("/mono-short", b"s", ephemeral=True)
        long_.create("/mono-long", b"l", ephemeral=True)
        long_sid = long_.client_id[0]
        # 1.5 s pass at once for the leader (less than its 2 s election
        # timeout: it stays leader): the 1 s session is past its timeout as
        # the leader sees it, the 40 s one is not
        self.put(ld, "keel.test.clockJumpMs", 1500)
        wait_for(lambda: long_.exists("/mono-short") is None, 30,
                 "the short session's ephemeral gone")
        wait_for(lambda: KazooState.LOST in short.states, 30, "the short session expired")
        self.assertIsNotNone(long_.exists("/mono-long"))
        self.assertEqual(long_.client_id[0], long_sid)
        self.assertNotIn(KazooState.LOST, long_.states)
        long_.set("/mono-long", b"still")  # the cluster commits
        self.assertEqual(self.c.leader(), ld)
        self.assertEqual(self.term(ld), term)

    def test_3_monotonic_jump_past_the_election_timeout_is_a_freeze(self):
        ld = self.c.leader()
        term = self.term(ld)
        zk = self.client((ld + 1) % 3, 1.0)
        zk.create("/freeze-eph", b"s", ephemeral=True)
        sid = zk.client_id[0]
        # 10 s at once: the leader's check-quorum finds that nobody answered
        # for an election timeout and it steps down, as after a real freeze;
        # the next leader gives every session a full timeout: none expires
        # though the jump is ten times the 1 s session's timeout
        self.put(ld, "keel.test.clockJumpMs", 10000)
        wait_for(lambda: self.c.leader() is not None and self.term(self.c.leader()) > term,
                 60, "a leader in a later term")
        deadline = time.monotonic() + 2.0  # two session timeouts
        while time.monotonic() < deadline:
            zk.set("/freeze-eph", b"t")
            time.sleep(0.1)
        self.assertNotIn(KazooState.LOST, zk.states)
        self.assertEqual(zk.client_id[0], sid)
        self.assertIsNotNone(zk.exists("/freeze-eph"))

    def test_4_monotonic_jump_back_is_a_stopped_clock(self):
        ld = self.c.leader()
        term = self.term(ld)
        zk = self.client((ld + 1) % 3, 30.0)
        acked = []
        for i in range(20):
            acked.append(zk.create("/back-", b"%d" % i, sequence=True))
        # the leader's timers stand still for 5 s (election timeout 2 s):
        # no heartbeat, the followers elect another leader
        self.put(ld, "keel.test.clockJumpMs", -5000)
        new = self.c.wait_new_leader(ld, 60)
        self.assertGreater(self.term(new), term)
        for i in range(20):
            acked.append(zk.create("/back-", b"n%d" % i, sequence=True))
        for p in acked:
            self.assertIsNotNone(zk.exists(p), p)
        # the old leader follows the new one (it heard the later term)
        wait_for(lambda: self.c.mode(ld) == "follower", 60, "the old leader following")

    def test_5_jump_forward_gives_up_a_stuck_request(self):
        # A follower gives up a forwarded request still unanswered past the
        # longest session timeout (60 s here): its client's connection is
        # closed, the outcome unknown. A 65 s jump of the follower's timers
        # must do it at once -- the request's send time moves with the jump
        # like every other timer (before, only Raft ticks and session
        # deadlines moved and this waited 60 s of true time).
        ld = self.c.leader()
        fol = (ld + 1) % 3
        for i in range(3):  # no election while the leader is stopped
            self.put(i, "keel.electionTimeoutMs", 100000)
        # 60 s: kazoo gives up on a connection whose ping goes unanswered
        # (pings wait behind the stuck request) after 2/3 of it, 40 s
        zk = self.client(fol, 60.0)
        self.c.pause(ld)
        try:
            res = zk.create_async("/stuck", b"x")
            time.sleep(0.5)  # forwarded meanwhile (nothing can answer it)
            self.assertFalse(res.ready())
            self.put(fol, "keel.test.clockJumpMs", 65000)
            # bounded by half of the 40 s kazoo's ping would take and a third
            # of the 60 s the untouched give-up would take
            self.assertTrue(res.wait(20), "the stuck request not given up")
            self.assertIsInstance(res.exception, ConnectionLoss)
        finally:
            self.c.resume(ld)
            for i in range(3):
                self.put(i, "keel.electionTimeoutMs", 2000)
        zk.set("/stuck-after", b"") if zk.exists("/stuck-after") else \
            zk.create("/stuck-after", b"")  # the cluster commits again

    def test_6_follower_jump_fires_its_election_timer(self):
        ld = self.c.leader()
        term = self.term(ld)
        fol = (ld + 1) % 3
        lid = self.c.nodes[ld].id
        log = os.path.join(self.c.nodes[fol].workdir, "out.log")
        with open(log, errors="replace") as f:
            before = len(f.read())
        line = re.compile(r"raft: term %d, leader %d\b" % (term, lid))

        def named_again():
            with open(log, errors="replace") as f:
                return line.search(f.read()[before:])
        # 6 s at once: past the follower's election timeout (2 s, randomised
        # up to 4 s). Had its ticks been capped as after a stall, its timer
        # would not fire and it would never name its leader again.
        self.put(fol, "keel.test.clockJumpMs", 6000)
        wait_for(named_again, 30, "the follower (node %d) forgetting leader %d and "
                 "naming it again in term %d" % (fol + 1, lid, term))
        self.assertEqual(self.c.leader(), ld)
        self.assertEqual(self.term(ld), term)
        zk = self.client(fol, 10.0)
        zk.set("/stuck-after", b"6")  # the cluster commits through it


if __name__ == "__main__":
    unittest.main(verbosity=1)
