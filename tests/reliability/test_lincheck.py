#!/usr/bin/python3
"""Unit tests of lincheck.py (suite 'unit').

Hand-made histories (valid and invalid), a brute-force oracle on small
random histories, random histories from real executions (must pass) and the
same with injected bugs (must fail), the direct checks, and the CLI."""

import io
import json
import os
import random
import sys
import tempfile
import time
import unittest
from contextlib import redirect_stdout, redirect_stderr

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import histgen  # noqa: E402
import lincheck  # noqa: E402


class H:
    """Builds a history: h.op(p, f, call, ret, args=..., result=...)."""

    def __init__(self, key="/k"):
        self.ev = []
        self.key = key

    def op(self, p, f, call, ret=None, args=None, result=None, error=None, status=None,
           key=None, final=False):
        inv = {"type": "invoke", "process": p, "key": key or self.key, "f": f,
               "args": args or {}, "time": call}
        if final:
            inv["final"] = True
        self.ev.append(inv)
        if status is None:
            status = "fail" if error else "ok"
        if ret is not None:
            c = {"type": status, "process": p, "time": ret}
            if status == "ok":
                c["result"] = result or {}
            else:
                c["error"] = error or "connectionLoss"
            self.ev.append(c)
        return self

    def create(self, p, call, ret, value="v0", **kw):
        return self.op(p, "create", call, ret, args={"value": value}, **kw)

    def ops(self):
        self.ev.sort(key=lambda e: e["time"])  # stable: invoke stays first
        return lincheck.parse_events(json.dumps(e) for e in self.ev)

    def lin(self):
        return lincheck.check_linearizable(self.ops())


def brute_force(ops):
    """Oracle: is there an order of all relevant ops that respects real time
    and the model?  Exponential; for a handful of ops only."""
    ops = [o for o in ops if lincheck._relevant(o)]
    dead = set()  # (remaining ops, states) known to lead nowhere

    def rec(rest, states):
        if not rest:
            return True
        if (rest, states) in dead:
            return False
        for o in rest:
            if any(r.ret < o.call for r in rest if r is not o):
                continue
            nxt = set()
            for s in states:
                nxt.update(lincheck.znode_step(s, o))
            if nxt and rec(tuple(r for r in rest if r is not o), frozenset(nxt)):
                return True
        dead.add((rest, states))
        return False

    return rec(tuple(ops), frozenset([None]))


class HandMade(unittest.TestCase):
    def assertLin(self, h, valid):
        r = h.lin()
        self.assertEqual(r["valid"], valid, json.dumps(r, indent=1))
        return r

    def test_sequential_ok(self):
        h = H().create(1, 0, 1, "a")
        h.op(1, "write", 2, 3, args={"value": "b"}, result={"version": 1})
        h.op(2, "read", 4, 5, result={"value": "b", "version": 1})
        h.op(2, "cas", 6, 7, args={"value": "c", "version": 1}, result={"version": 2})
        h.op(1, "cas", 8, 9, args={"value": "d", "version": 1}, error="badVersion")
        h.op(1, "delete", 10, 11, args={"version": 2})
        h.op(2, "exists", 12, 13, result={"exists": False})
        h.op(2, "read", 14, 15, error="noNode")
        self.assertLin(h, True)

    def test_stale_read(self):
        h = H().create(1, 0, 1, "a")
        h.op(1, "write", 2, 3, args={"value": "b"})
        h.op(2, "read", 4, 5, result={"value": "a", "version": 0})
        r = self.assertLin(h, False)
        f = r["failures"][0]
        self.assertEqual(f["key"], "/k")
        self.assertIn("read", f["must_precede_return"])
        self.assertIn('data="b"', f["state"])

    def test_lost_write_seen_by_later_read(self):
        h = H().create(1, 0, 1, "a")
        h.op(1, "write", 2, 3, args={"value": "b"}, result={"version": 1})
        h.op(2, "write", 4, 5, args={"value": "c"}, result={"version": 2})
        # the write of c was acknowledged, then vanished
        h.op(3, "read", 6, 7, result={"value": "b", "version": 1})
        self.assertLin(h, False)

    def test_version_must_match_count_of_writes(self):
        h = H().create(1, 0, 1, "a")
        h.op(1, "write", 2, 3, args={"value": "b"}, result={"version": 2})
        self.assertLin(h, False)

    def test_cas_anomaly_two_winners(self):
        h = H().create(1, 0, 1, "a")
        h.op(1, "cas", 2, 10, args={"value": "b", "version": 0})
        h.op(2, "cas", 3, 11, args={"value": "c", "version": 0})
        self.assertLin(h, False)

    def test_cas_badversion_must_be_true(self):
        h = H().create(1, 0, 1, "a")
        # nothing changed the version: a badVersion for version 0 is a lie
        h.op(1, "cas", 2, 3, args={"value": "b", "version": 0}, error="badVersion")
        self.assertLin(h, False)

    @staticmethod
    def _overlapping_writes(last_read):
        # writes of b and c overlap each other and three reads; the first
        # two reads see c then b, which is fine if b is linearized after c
        h = H().create(0, 0, 1, "a")
        h.op(1, "write", 2, 20, args={"value": "b"})
        h.op(2, "write", 3, 21, args={"value": "c"})
        h.op(3, "read", 4, 6, result={"value": "c", "version": 1})
        h.op(3, "read", 7, 9, result={"value": "b", "version": 2})
        h.op(4, "read", *last_read)
        return h

    def test_concurrent_overlapping_linearizable(self):
        self.assertLin(self._overlapping_writes((22, 23, None, {"value": "b", "version": 2})),
                       True)

    def test_concurrent_reads_disagree_on_order(self):
        # a later read going back to c is not linearizable
        self.assertLin(self._overlapping_writes((10, 12, None, {"value": "c", "version": 1})),
                       False)

    def test_create_create_race(self):
        h = H()
        h.create(1, 0, 10, "a")
        h.op(2, "create", 1, 11, args={"value": "b"}, error="nodeExists")
        h.op(3, "read", 12, 13, result={"value": "a", "version": 0})
        self.assertLin(h, True)
        h = H()
        h.create(1, 0, 10, "a")
        h.create(2, 1, 11, "b")  # both creates succeeded
        self.assertLin(h, False)

    def test_create_without_parent_says_nothing(self):
        h = H().create(1, 0, 1, "a")
        h.op(2, "create", 2, 3, args={"value": "b"}, error="noNode")
        h.op(2, "read", 4, 5, result={"value": "a", "version": 0})
        self.assertLin(h, True)

    def test_delete_then_exists(self):
        h = H().create(1, 0, 1, "a")
        h.op(1, "delete", 2, 3, args={"version": -1})
        h.op(2, "exists", 4, 5, result={"exists": True, "version": 0})
        self.assertLin(h, False)

    def test_unknown_write_may_take_effect_late(self):
        h = H().create(1, 0, 1, "a")
        h.op(1, "write", 2, 3, args={"value": "b"}, status="info")
        h.op(2, "read", 10, 11, result={"value": "a", "version": 0})
        h.op(2, "read", 20, 21, result={"value": "b", "version": 1})
        self.assertLin(h, True)

    def test_unknown_write_may_never_happen(self):
        h = H().create(1, 0, 1, "a")
        h.op(1, "write", 2, 3, args={"value": "b"}, status="info")
        h.op(2, "read", 10, 11, result={"value": "a", "version": 0})
        self.assertLin(h, True)

    def test_unknown_write_cannot_happen_before_invoke(self):
        h = H().create(1, 0, 1, "a")
        h.op(2, "read", 2, 3, result={"value": "b", "version": 1})
        h.op(1, "write", 4, 5, args={"value": "b"}, status="info")
        self.assertLin(h, False)

    def test_unknown_write_takes_effect_once(self):
        h = H().create(1, 0, 1, "a")
        h.op(1, "write", 2, 3, args={"value": "b"}, status="info")
        h.op(2, "read", 10, 11, result={"value": "b", "version": 1})
        h.op(2, "write", 12, 13, args={"value": "c"})
        h.op(2, "read", 14, 15, result={"value": "b", "version": 1})
        self.assertLin(h, False)

    def test_never_completed_counts_as_unknown(self):
        h = H().create(1, 0, 1, "a")
        h.op(1, "cas", 2, None, args={"value": "b", "version": 0})
        h.op(2, "read", 10, 11, result={"value": "b", "version": 1})
        self.assertLin(h, True)

    def test_fail_with_other_error_has_no_effect(self):
        h = H().create(1, 0, 1, "a")
        h.op(1, "write", 2, 3, args={"value": "b"}, error="marshallingError")
        h.op(2, "read", 10, 11, result={"value": "b", "version": 1})
        self.assertLin(h, False)

    def test_keys_are_independent_and_named(self):
        h = H()
        h.create(1, 0, 1, "a", key="/x")
        h.create(1, 2, 3, "a", key="/y")
        h.op(2, "read", 4, 5, result={"value": "a", "version": 0}, key="/x")
        h.op(2, "read", 6, 7, result={"value": "zz", "version": 0}, key="/y")
        r = h.lin()
        self.assertFalse(r["valid"])
        self.assertEqual(r["keys"], 2)
        self.assertEqual([f["key"] for f in r["failures"]], ["/y"])

    def test_bad_history_rejected(self):
        with self.assertRaises(lincheck.HistoryError):
            lincheck.parse_events(['{"type":"ok","process":1,"time":1}'])
        with self.assertRaises(lincheck.HistoryError):
            lincheck.parse_events([
                '{"type":"invoke","process":1,"f":"read","key":"/k","time":1}',
                '{"type":"invoke","process":1,"f":"read","key":"/k","time":2}'])
        with self.assertRaises(lincheck.HistoryError):
            lincheck.parse_events(['{"type":"invoke","process":1,"f":"read","time":"x"}'])
        with self.assertRaises(lincheck.HistoryError):
            lincheck.check_key(lincheck.parse_events([
                '{"type":"invoke","process":1,"f":"frob","key":"/k","time":1}',
                '{"type":"ok","process":1,"time":2}']))


def random_small(rnd):
    """A small history of random ops with random (often wrong) results."""
    h = H()
    t = 0
    for p in range(rnd.randint(2, 4)):
        t = rnd.randint(0, 4)
        for _ in range(rnd.randint(1, 3)):
            call = t + rnd.randint(0, 3)
            ret = call + rnd.randint(0, 6)
            t = ret + 1
            f = rnd.choice(["create", "delete", "read", "write", "cas", "exists"])
            args = {}
            if f in ("create", "write", "cas"):
                args["value"] = rnd.choice("ab")
            if f in ("cas", "delete"):
                args["version"] = rnd.choice([-1, 0, 1]) if f == "delete" else rnd.choice([0, 1])
            st = rnd.choice(["ok", "ok", "ok", "fail", "info"])
            res, err = {}, None
            if st == "fail":
                err = rnd.choice(["noNode", "nodeExists", "badVersion"])
            elif st == "ok" and f == "read":
                res = {"value": rnd.choice("ab"), "version": rnd.choice([0, 1])}
            elif st == "ok" and f == "exists":
                res = {"exists": rnd.random() < 0.5}
            elif st == "ok" and f in ("write", "cas") and rnd.random() < 0.5:
                res = {"version": rnd.choice([1, 2])}
            h.op(p, f, call, ret, args=args, result=res, error=err, status=st)
    return h


class Oracle(unittest.TestCase):
    def test_agrees_with_brute_force(self):
        rnd = random.Random(20261122)
        seen = {True: 0, False: 0}
        for i in range(1500):
            h = random_small(rnd)
            ops = h.ops()
            want = brute_force(ops)
            got, _ = lincheck.check_key(ops)
            self.assertEqual(got, want, "case %d:\n%s" % (i, "\n".join(json.dumps(e) for e in h.ev)))
            seen[want] += 1
        # the generator must exercise both answers
        self.assertGreater(seen[True], 50)
        self.assertGreater(seen[False], 100)


def check_events(events):
    return lincheck.check_all(lincheck.parse_events(histgen.to_lines(events)))


class RandomExecutions(unittest.TestCase):
    def test_real_executions_pass(self):
        for seed in range(25):
            ev = histgen.generate(seed, nproc=2 + seed % 5, nops=150, info_rate=0.05 * (seed % 3))
            for r in check_events(ev):
                self.assertTrue(r["valid"], "seed %d: %s" % (seed, json.dumps(r, indent=1)))

    def _injected(self, **kw):
        found = 0
        for seed in range(200):
            ev = histgen.generate(seed, nproc=4, nops=120, deletes=False, **kw)
            if ev is None:
                continue
            found += 1
            r = lincheck.check_linearizable(lincheck.parse_events(histgen.to_lines(ev)))
            self.assertFalse(r["valid"], "seed %d: %s not caught" % (seed, kw))
            self.assertEqual(r["failures"][0]["key"], "/k")
            if found == 25:
                break
        self.assertEqual(found, 25)

    def test_stale_read_caught(self):
        self._injected(stale_read=True)

    def test_lost_write_caught(self):
        self._injected(lost_write=True)

    def test_cas_anomaly_caught(self):
        self._injected(cas_anomaly=True)

    def test_thousands_of_ops_per_key(self):
        ev = histgen.generate(7, nproc=6, nops=4000, info_rate=0.02)
        ops = lincheck.parse_events(histgen.to_lines(ev))
        t0 = time.monotonic()
        r = lincheck.check_linearizable(ops)
        dt = time.monotonic() - t0
        self.assertTrue(r["valid"])
        self.assertEqual(r["ops"], 4001)
        print("\n4001 ops on one key, 6 processes, 2%% unknown: %.2f s" % dt, file=sys.stderr)
        ev = histgen.generate(7, nproc=6, nops=4000, deletes=False, stale_read=True)
        t0 = time.monotonic()
        r = lincheck.check_linearizable(lincheck.parse_events(histgen.to_lines(ev)))
        print("4001 ops with a stale read: %.2f s" % (time.monotonic() - t0), file=sys.stderr)
        self.assertFalse(r["valid"])


class DirectChecks(unittest.TestCase):
    def test_lost_ack_found_by_final_read(self):
        h = H().create(1, 0, 1, "a")
        h.op(1, "write", 2, 3, args={"value": "b"})
        h.op(2, "write", 4, 5, args={"value": "c"}, status="info")
        h.op(9, "read", 10, 11, result={"value": "c", "version": 2}, final=True)
        self.assertTrue(lincheck.check_lost_acks(h.ops())["valid"])
        h = H().create(1, 0, 1, "a")
        h.op(1, "write", 2, 3, args={"value": "b"})
        h.op(9, "read", 10, 11, result={"value": "a", "version": 0}, final=True)
        r = lincheck.check_lost_acks(h.ops())
        self.assertFalse(r["valid"])
        self.assertIn('"b"', r["failures"][0]["lost"][0])

    def test_lost_create(self):
        h = H().create(1, 0, 1, "a")
        h.op(9, "exists", 10, 11, result={"exists": False}, final=True)
        self.assertFalse(lincheck.check_lost_acks(h.ops())["valid"])
        h.op(2, "delete", 2, None, args={"version": -1})  # may have deleted it
        self.assertTrue(lincheck.check_lost_acks(h.ops())["valid"])
        h = H().create(1, 0, 1, "a")
        h.op(9, "read", 10, 11, error="noNode", final=True)
        self.assertFalse(lincheck.check_lost_acks(h.ops())["valid"])

    def _seq(self, items):
        h = H()
        for p, call, ret, n in items:
            h.op(p, "create", call, ret, args={"value": "x", "sequential": True},
                 result={"path": "/q/item-%010d" % n}, key="/q/item-")
        r = lincheck.check_sequential(h.ops())
        r["ops"] = h.ops()
        return r

    def test_sequential_numbers(self):
        self.assertTrue(self._seq([(1, 0, 10, 1), (2, 1, 5, 0), (1, 11, 12, 2)])["valid"])
        r = self._seq([(1, 0, 1, 0), (2, 2, 3, 0)])
        # sequential creates are not creates of one key for linearizability
        self.assertTrue(lincheck.check_linearizable(r["ops"])["valid"])
        self.assertFalse(r["valid"])
        self.assertEqual(r["failures"][0]["duplicate"], 0)
        r = self._seq([(1, 0, 1, 5), (2, 2, 3, 4)])
        self.assertFalse(r["valid"])
        self.assertEqual(r["failures"][0]["not_increasing"], [5, 4])

    def test_lock_holders(self):
        h = H(key="/lock")
        h.op(1, "acquire", 0, 2)
        h.op(2, "acquire", 1, 6)  # granted after p1 invoked its release
        h.op(1, "release", 5, 7)
        h.op(2, "release", 8, 9)
        self.assertTrue(lincheck.check_locks(h.ops())["valid"])
        h = H(key="/lock")
        h.op(1, "acquire", 0, 2)
        h.op(2, "acquire", 1, 3)
        h.op(1, "release", 5, 7)
        r = lincheck.check_locks(h.ops())
        self.assertFalse(r["valid"])
        self.assertEqual(r["failures"][0]["lock"], "/lock")
        # a holder whose session may have been lost stops counting as holder
        h = H(key="/lock")
        h.op(1, "acquire", 0, 2)
        h.op(1, "read", 3, 4, status="info", key="/other")
        h.op(2, "acquire", 5, 6)
        self.assertTrue(lincheck.check_locks(h.ops())["valid"])

    def test_session_order(self):
        def rd(h, p, t, v, sess="a", plain=True, end=None):
            h.op(p, "read", t, t + 1, args={"plain": plain, "sess": sess},
                 result={"value": "x", "version": v, "sess": end or sess})
        h = H().create(1, 0, 1, "x")
        h.op(1, "write", 2, 3, args={"value": "y", "sess": "a"},
             result={"version": 1, "sess": "a"})
        rd(h, 1, 4, 1)
        rd(h, 2, 4, 0, sess="b")  # another session may be behind
        rd(h, 1, 6, 1)
        r = lincheck.check_session_order(h.ops())
        self.assertTrue(r["valid"], r)
        self.assertEqual(r["ops"], 4)
        # plain reads are not part of linearizability (p2's would fail it)
        self.assertTrue(lincheck.check_linearizable(h.ops())["valid"])
        # a session that misses its own write (a reconnect to a server behind)
        rd(h, 1, 8, 0)
        r = lincheck.check_session_order(h.ops())
        self.assertFalse(r["valid"])
        self.assertIn("version=0", r["failures"][0]["op"])
        # ... unless the read ran in another session, or the key is deleted
        h = H().create(1, 0, 1, "x")
        rd(h, 1, 2, 3)
        rd(h, 1, 4, 2, end="c")
        rd(h, 1, 6, 2, sess="c")
        self.assertTrue(lincheck.check_session_order(h.ops())["valid"])
        h.op(3, "delete", 8, 9, args={"version": -1})
        rd(h, 1, 10, 0)
        self.assertTrue(lincheck.check_session_order(h.ops())["valid"])
        # a write must make a newer version than the session saw
        h = H().create(1, 0, 1, "x")
        rd(h, 1, 2, 4, plain=False)
        h.op(1, "cas", 4, 5, args={"value": "z", "version": 3, "sess": "a"},
             result={"version": 4, "sess": "a"})
        self.assertFalse(lincheck.check_session_order(h.ops())["valid"])

    def test_session_writes_apply_in_order(self):
        def hist(late_version):
            h = H().create(1, 0, 1, "x")
            # p1's write "a" gets no answer (its connection died) ...
            h.op(1, "write", 2, 3, args={"value": "a", "sess": "s"}, status="info")
            # ... then p1, same session, writes "b" (acknowledged: version 1)
            h.op(1, "write", 4, 5, args={"value": "b", "sess": "s"},
                 result={"version": 1, "sess": "s"})
            h.op(2, "read", 6, 7, result={"value": "a", "version": late_version})
            return lincheck.check_session_order(h.ops())
        # "a" seen at a version not above b's: not this check's business
        # (linearizability judges it)
        self.assertTrue(hist(1)["valid"])
        # "a" applied after "b": the session's order broken
        r = hist(2)
        self.assertFalse(r["valid"])
        self.assertIn("applied_late", r["failures"][0])

    def test_own_ephemerals(self):
        h = H(key="/e/p1-1")
        h.op(1, "create", 0, 1, args={"value": "v", "ephemeral": True}, result={"sess": "a"})
        h.op(1, "exists", 2, 3, args={"own": True, "sess": "a"},
             result={"exists": True, "sess": "a"})
        # a read that ended in a new session tells nothing (the old expired)
        h.op(1, "exists", 4, 5, args={"own": True, "sess": "a"},
             result={"exists": False, "sess": "b"})
        r = lincheck.check_own_ephemerals(h.ops())
        self.assertTrue(r["valid"], r)
        self.assertEqual(r["reads"], 1)
        # own reads stay out of linearizability (expiry deletes outside it)
        self.assertTrue(lincheck.check_linearizable(h.ops())["valid"])
        h.op(1, "exists", 6, 7, args={"own": True, "sess": "a"},
             result={"exists": False, "sess": "a"})
        r = lincheck.check_own_ephemerals(h.ops())
        self.assertFalse(r["valid"])
        self.assertEqual(r["failures"][0]["session"], "a")

class Cli(unittest.TestCase):
    def run_cli(self, events):
        with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
            f.write("\n".join(json.dumps(e) for e in events) + "\n")
        try:
            out, err = io.StringIO(), io.StringIO()
            with redirect_stdout(out), redirect_stderr(err):
                rc = lincheck.main([f.name])
            return rc, out.getvalue() + err.getvalue()
        finally:
            os.unlink(f.name)

    def test_exit_codes(self):
        h = H().create(1, 0, 1, "a")
        rc, out = self.run_cli(h.ev)
        self.assertEqual(rc, 0, out)
        self.assertIn("is valid", out)
        h.op(2, "read", 2, 3, result={"value": "q", "version": 0})
        rc, out = self.run_cli(h.ev)
        self.assertEqual(rc, 1, out)
        self.assertIn("NOT valid", out)
        rc, out = self.run_cli([{"type": "bogus", "process": 1, "time": 0}])
        self.assertEqual(rc, 2, out)


if __name__ == "__main__":
    unittest.main(verbosity=1)
