#!/usr/bin/python3
"""Unit tests of faults.py's pure parts: the seeded schedule and the shapes
of the faults it applies (on a fake cluster that records calls; no root, no
servers)."""

import os
import random
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faults  # noqa: E402


class FakeNet:
    def __init__(self):
        self.calls = []

    def partition(self, groups):
        self.calls.append(("partition", groups))

    def isolate(self, i):
        self.calls.append(("isolate", i))

    def loss(self, i, pct):
        self.calls.append(("loss", i, pct))


class FakeCluster:
    def __init__(self, n):
        self.n = n
        self.net = FakeNet()
        self.killed, self.paused, self.filled = [], [], []
        self.injected = {}
        self.lead = n - 1

    @property
    def client_node(self):
        return self.n

    def leader(self, limit_s=60):
        return self.lead

    def kill(self, i):
        self.killed.append(i)

    def pause(self, i):
        self.paused.append(i)

    def fill_disk(self, i):
        self.filled.append(i)

    def injectable(self, i):
        return i not in self.killed and i not in self.paused

    def proxy_admin(self):
        return "admin"  # keel: each admin API behind the proxy too

    with_admin = faults.Cluster.with_admin

    def inject(self, i, settings):
        self.injected.setdefault(i, set()).update(settings)
        self.net.calls.append(("inject", i, dict(settings)))

    def set_config(self, i, pairs):
        self.net.calls.append(("set", i, dict(pairs)))
        return ""

    def proxy(self, cmd):
        self.net.calls.append(("proxy", cmd))
        return {"ok": True}

    def background(self, fn):
        self.net.calls.append(("background",))
        self.bg = getattr(self, "bg", []) + [fn]


class Stop:
    """A stop event for a background fault: not set for the first n waits
    (which return at once), set after."""

    def __init__(self, n):
        self.n = n

    def wait(self, _timeout):
        self.n -= 1
        return self.n < 0


class Plan(unittest.TestCase):
    def test_same_seed_same_schedule(self):
        for seed in range(20):
            self.assertEqual(faults.plan(seed, 300), faults.plan(seed, 300))
        self.assertNotEqual(faults.plan(1, 300), faults.plan(2, 300))

    def test_every_fault_alone_first_then_mixed(self):
        for seed in range(50):
            p = faults.plan(seed, 600)
            first = [f for f, *_ in p[:len(faults.FAULTS)]]
            self.assertTrue(all(len(f) == 1 for f in first))
            self.assertEqual(sorted(f[0] for f in first), sorted(faults.FAULTS))
            self.assertTrue(any(len(f) == 2 and f[0] != f[1] for f, *_ in p))

    def test_only_restricts_the_faults(self):
        kinds = ["kill", "split", "loss"]
        for seed in range(30):
            p = faults.plan(seed, 300, kinds=kinds)
            self.assertTrue(all(x in kinds for f, *_ in p for x in f))
            self.assertEqual(sorted(f[0] for f, *_ in p[:3]), sorted(kinds))
        p = faults.plan(5, 100, kinds=["disk_full"])
        self.assertTrue(all(f == ["disk_full"] for f, *_ in p))

    def test_budget_and_hold(self):
        for seed in range(50):
            for budget in (10, 45, 150, 600):
                p = faults.plan(seed, budget)
                self.assertGreaterEqual(len(p), 1)
                # the estimate stays within budget (one fault at least)
                if len(p) > 1:
                    self.assertLessEqual(sum(h + 6.0 for _, h, *_ in p), budget)
                # pauses/partitions outlast the session (and election) timeout
                self.assertTrue(all(h > faults.SESSION_TIMEOUT_S + 1.0 for _, h, *_ in p))
        self.assertEqual(len(faults.plan(7, 10, n_faults=12)), 12)


    def test_live_faults_only_where_offered(self):
        self.assertEqual(faults.KeelServers.faults, faults.FAULTS + faults.EXTRA_FAULTS)
        for f in faults.LIVE_FAULTS + faults.EXTRA_FAULTS:
            self.assertNotIn(f, faults.ZooKeeperServers.faults)
        for f in faults.LIVE_FAULTS:
            self.assertIn(f, faults.FAULTS)

    def test_extra_faults_only_when_asked(self):
        for seed in range(30):
            p = faults.plan(seed, 600)
            self.assertFalse(any(x in faults.EXTRA_FAULTS for f, *_ in p for x in f))
        p = faults.plan(3, 100, kinds=["clock_far"])
        self.assertTrue(all(f == ["clock_far"] for f, *_ in p))


class Shapes(unittest.TestCase):
    def test_split_minority_majority_clients_see_both(self):
        for n in (3, 5):
            for seed in range(30):
                c = FakeCluster(n)
                faults.apply(c, "split", random.Random(seed))
                (_, (a, b)), = c.net.calls
                self.assertIn(n, a)
                self.assertIn(n, b)
                sa, sb = set(a) - {n}, set(b) - {n}
                self.assertFalse(sa & sb)
                self.assertEqual(sa | sb, set(range(n)))
                self.assertEqual(len(sa), n // 2)

    def test_bridge_node_sees_both_sides(self):
        for n in (3, 5):
            for seed in range(30):
                c = FakeCluster(n)
                faults.apply(c, "bridge", random.Random(seed))
                (_, (a, b)), = c.net.calls
                shared = (set(a) & set(b)) - {n}
                self.assertEqual(len(shared), 1)
                self.assertEqual((set(a) | set(b)) - {n}, set(range(n)))
                self.assertTrue(set(a) - shared - {n} and set(b) - shared - {n})

    def test_leader_faults_hit_the_leader(self):
        for f, attr in (("kill_leader", "killed"), ("pause_leader", "paused")):
            c = FakeCluster(3)
            faults.apply(c, f, random.Random(1))
            self.assertEqual(getattr(c, attr), [c.lead])
        c = FakeCluster(5)
        faults.apply(c, "isolate_leader", random.Random(1))
        self.assertEqual(c.net.calls, [("isolate", c.lead)])

    def test_loss_and_disk(self):
        c = FakeCluster(3)
        for seed in range(20):
            faults.apply(c, "loss", random.Random(seed))
        self.assertTrue(all(call[0] == "loss" and 30 <= call[2] <= 60 for call in c.net.calls))
        faults.apply(c, "disk_full", random.Random(3))
        self.assertEqual(len(c.filled), 1)
        with self.assertRaises(ValueError):
            faults.apply(c, "no_such_fault", random.Random(3))

    def test_live_faults_set_the_injection_keys(self):
        want = {"delay": {"dp.test_delay_us", "dp.test_jitter_us"},
                "reorder": {"dp.test_reorder_ppm", "dp.test_jitter_us"},
                "dup": {"dp.test_dup_ppm", "dp.test_jitter_us"},
                "slow_fsync": {"keel.test.fsyncDelayUs", "keel.test.inlineSyncDelayUs"}}
        for n in (3, 5):
            for f, keys in want.items():
                every = one = 0
                for seed in range(40):
                    c = FakeCluster(n)
                    c.paused.append(1)  # a paused node takes no PUT
                    faults.apply(c, f, random.Random(seed))
                    nodes = [call[1] for call in c.net.calls]
                    self.assertNotIn(1, nodes)
                    self.assertEqual(len(set(nodes)), len(nodes))
                    every += len(nodes) == n - 1
                    one += len(nodes) == 1
                    for _, _, settings in c.net.calls:
                        self.assertEqual(set(settings), keys)
                        self.assertTrue(all(v > 0 for v in settings.values()))
                self.assertTrue(every and one, (f, every, one))
        c = FakeCluster(3)
        c.paused += [0, 1, 2]
        self.assertIn("no running node", faults.apply(c, "delay", random.Random(1)))
        self.assertEqual(c.net.calls, [])


class NewFaults(unittest.TestCase):
    def test_link_is_one_direction_of_one_link(self):
        kinds = set()
        for n in (3, 5):
            for seed in range(60):
                c = FakeCluster(n)
                what = faults.apply(c, "link", random.Random(seed))
                (_, a, settings), = c.net.calls
                # the scope comes first, so the fault never hits every peer
                self.assertEqual(next(iter(settings)), "dp.test_peer")
                b = settings["dp.test_peer"] - 1  # server ids are index + 1
                self.assertNotEqual(a, b)
                self.assertTrue(0 <= b < n)
                self.assertIn("node %d -> node %d" % (a, b), what)
                rest = set(settings) - {"dp.test_peer"}
                self.assertIn(rest, ({"dp.test_delay_us", "dp.test_jitter_us"},
                                     {"dp.test_reorder_ppm", "dp.test_jitter_us"},
                                     {"dp.test_loss_ppm"}))
                kinds.add(frozenset(rest))
                self.assertTrue(all(v > 0 for v in settings.values()))
        self.assertEqual(len(kinds), 3)

    def test_scopes_never_mix_on_one_node(self):
        for seed in range(40):
            c = FakeCluster(3)
            for f in ("link", "delay", "dup", "link", "reorder", "link"):
                faults.apply(c, f, random.Random(seed * 7 + len(c.net.calls)))
            for i, keys in c.injected.items():
                if "dp.test_peer" in keys:
                    others = [call for call in c.net.calls if call[1] == i]
                    self.assertEqual(len(others), 1, (i, others))

    def test_clock_within_the_lease_bound(self):
        # consensus/README.md: a clock runs at most 20 % slower than another
        rates, leader_hit = set(), 0
        for seed in range(60):
            c = FakeCluster(5)
            faults.apply(c, "clock", random.Random(seed))
            (_, node, settings), = c.net.calls
            ppm = settings["keel.test.clockRatePpm"]
            self.assertTrue(ppm != 0 and -200000 < ppm < 200000)
            rates.add(ppm > 0)
            leader_hit += node == c.lead
        self.assertEqual(rates, {True, False})
        self.assertTrue(0 < leader_hit < 60)
        for seed in range(20):
            c = FakeCluster(3)
            faults.apply(c, "clock_far", random.Random(seed))
            (_, _, settings), = c.net.calls
            ppm = settings["keel.test.clockRatePpm"]
            self.assertTrue(ppm <= -500000 or ppm >= 1000000)

    def test_clock_jumps(self):
        walls, jumps, leader_hit = set(), set(), 0
        for seed in range(60):
            c = FakeCluster(3)
            faults.apply(c, "wall_jump", random.Random(seed))
            (kind, node, settings), = c.net.calls
            self.assertEqual(kind, "inject")  # set back to 0 at heal
            walls.add(settings["keel.test.wallJumpMs"])
            leader_hit += node == c.lead
            c = FakeCluster(3)
            faults.apply(c, "clock_jump", random.Random(seed))
            (kind, node, settings), = c.net.calls
            self.assertEqual(kind, "set")  # once: nothing to undo
            self.assertEqual(c.injected, {})
            jumps.add(settings["keel.test.clockJumpMs"])
        self.assertTrue(all(abs(ms) >= 3600000 for ms in walls))
        self.assertEqual({ms > 0 for ms in walls}, {True, False})
        # forward below the election timeout (1 s), past twice it, and back
        self.assertTrue(any(0 < ms < 1000 for ms in jumps))
        self.assertTrue(any(ms >= 2000 for ms in jumps))
        self.assertTrue(any(ms < 0 for ms in jumps))
        self.assertTrue(0 < leader_hit < 60)

    def test_client_faults(self):
        for f in faults.CLIENT_FAULTS:
            self.assertIn(f, faults.ZooKeeperServers.faults)  # any server
        cmds = {}
        for seed in range(40):
            for f in faults.CLIENT_FAULTS:
                c = FakeCluster(3)
                faults.apply(c, f, random.Random(seed))
                for fn in getattr(c, "bg", []):
                    fn(Stop(2))  # the hold: two turns of the background fault
                proxied = [call[1] for call in c.net.calls if call[0] == "proxy"]
                cmds.setdefault(f, []).append((c, proxied))
        for c, p in cmds["client_delay"]:
            self.assertEqual(p[0]["cmd"], "delay")
            self.assertIn(p[0]["ms"], (20, 100, 300))
        # stalls outlast the session timeout (the hold), then delivered or reset
        self.assertEqual({c.stall_reset for c, _ in cmds["client_stall"]}, {True, False})
        for c, p in cmds["client_reset"]:
            self.assertTrue(all(x["cmd"] == "reset" and x["mode"] in ("before", "after")
                                for x in p))
            self.assertGreater(len(p), 1)  # again and again during the hold
        for c, p in cmds["client_halfopen"]:
            self.assertEqual([x["cmd"] for x in p], ["halfopen", "halfopen"])
        # stalls and half-open connections hit the servers' admin APIs (proxy
        # targets n + i) with their client ports: 4lw and /status go through
        for c, p in cmds["client_stall"] + cmds["client_halfopen"]:
            for x in p:
                zk = [t for t in x["targets"] if t < c.n]
                self.assertTrue(zk)
                self.assertEqual(sorted(x["targets"]), sorted(zk + [c.n + t for t in zk]))
        for c, p in cmds["client_delay"]:
            self.assertTrue(all(t < c.n for t in p[0]["targets"]))
        for c, p in cmds["client_lagging"]:
            (_, groups), = [x for x in c.net.calls if x[0] == "partition"]
            lagging = [g for g in groups if len(g) == 2][0][0]
            self.assertNotEqual(lagging, c.lead)  # a follower falls behind
            self.assertTrue(all(c.client_node in g for g in groups))  # clients see both
            redirects = [x for x in p if x["cmd"] == "redirect"]
            self.assertEqual(len(redirects), 2)
            for r in redirects:
                self.assertTrue(r["drop"])
                self.assertEqual(len(r["map"]), 2)  # every address but one
                self.assertEqual(set(r["map"].values()), {lagging})
        # the targets are one server or every one
        self.assertEqual({len(p[0].get("targets", [])) for c, p in cmds["client_delay"]},
                         {1, 3})

    def test_slow_election_holds_every_disk_and_isolates_the_leader(self):
        c = FakeCluster(5)
        faults.apply(c, "slow_election", random.Random(2))
        injects = [call for call in c.net.calls if call[0] == "inject"]
        self.assertEqual(sorted(call[1] for call in injects), list(range(5)))
        self.assertTrue(all(call[2]["keel.test.fsyncDelayUs"] >= 100000 for call in injects))
        self.assertIn(("isolate", c.lead), c.net.calls)


class KeptWork(unittest.TestCase):
    """A failed run's work directory: its history and logs outlive it. The
    finally of run() removed the work directory on every path, so the
    "history and logs kept in <work>" a failure printed named a directory
    already gone (review11b). Now they are copied to a bounded tree of the
    cluster tests' kept-logs root (zkcluster.new_logs_dir), the nodes'
    data left out."""

    def setUp(self):
        import shutil
        import tempfile
        self.tmp = tempfile.mkdtemp(prefix="test-faults-kept-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.root = os.path.join(self.tmp, "logs")
        old = os.environ.get("KEEL_TEST_LOGS")
        os.environ["KEEL_TEST_LOGS"] = self.root
        self.addCleanup(lambda: os.environ.__setitem__("KEEL_TEST_LOGS", old) if old
                        else os.environ.pop("KEEL_TEST_LOGS", None))
        self.work = os.path.join(self.tmp, "keel-faults-x")
        os.makedirs(os.path.join(self.work, "node0", "disk", "version-2"))
        for name, text in (("history.jsonl", '{"op": 1}\n'), ("recorder.log", "rec\n"),
                           ("node0/server.log", "srv\n"), ("node0/disk/log.1", "data"),
                           ("node0/disk/version-2/snap", "data")):
            with open(os.path.join(self.work, name), "w") as f:
                f.write(text)

    def test_failed_run_keeps_logs_not_data(self):
        kept = faults.keep_work(self.work)
        self.assertEqual(os.path.dirname(kept), self.root)
        self.assertRegex(os.path.basename(kept), r"^[A-Za-z0-9_.]+-%d(-\d+)?$" % os.getpid())
        self.addCleanup(lambda: faults.zkcluster._kept.remove(kept))
        # run()'s finally removes the work directory: the copy is what stays
        import shutil
        shutil.rmtree(self.work)
        with open(os.path.join(kept, "history.jsonl")) as f:
            self.assertEqual(f.read(), '{"op": 1}\n')
        with open(os.path.join(kept, "node0", "server.log")) as f:
            self.assertEqual(f.read(), "srv\n")
        self.assertTrue(os.path.exists(os.path.join(kept, "recorder.log")))
        self.assertFalse(os.path.exists(os.path.join(kept, "node0", "disk")))

    def test_bounded_with_the_cluster_tests(self):
        # trees of ended processes past the bound go when another is kept
        os.makedirs(self.root)
        dead = []
        for i in range(faults.zkcluster.LOGS_KEEP + 3):
            d = os.path.join(self.root, "faults-%d" % (5000000 + i))  # above any pid_max
            os.mkdir(d)
            os.utime(d, (1000 + i, 1000 + i))
            dead.append(d)
        kept = faults.keep_work(self.work)
        self.addCleanup(lambda: faults.zkcluster._kept.remove(kept))
        left = os.listdir(self.root)
        self.assertLessEqual(len(left), faults.zkcluster.LOGS_KEEP, left)
        self.assertIn(os.path.basename(kept), left)

    def test_keep_names_its_own_directory(self):
        dest = os.path.join(self.tmp, "mine")
        self.assertEqual(faults.keep_work(self.work, dest), dest)
        self.assertTrue(os.path.exists(os.path.join(dest, "node0", "disk", "log.1")))
        self.assertFalse(os.path.exists(self.root))


if __name__ == "__main__":
    unittest.main(verbosity=1)
